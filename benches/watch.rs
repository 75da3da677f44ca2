//! Benchmark for `tether watch` (issue 6). Run through `scripts/bench-watch`, which builds this
//! target (release profile, which also builds target/release/tether), starts a small lab of
//! local sshd hosts and stops it again; `cargo bench` alone has no lab to measure against.
//!
//! `watch --config CFG --lab-dir DIR [--saves N] [--idle MS]` starts
//! `tether --format json watch bench` on a recipe whose task runs `date +%s%N` on every lab
//! host, waits for the first (cold) run, then saves the recipe N times (default 20) by atomic
//! rename, `--idle` ms apart (default 300, above the 100 ms debounce). It measures:
//! - latency: from just before the rename to the first remote command *starting* on a host,
//!   timestamped by that command itself (`date +%s%N` on the same machine's clock: this covers
//!   the debounce, the hash check, a fresh Engine and load, the fan-out, the channel open and
//!   sshd starting the command); target: median under 150 ms;
//! - reconnects during those runs: `reconnect` events, plus new "Accepted publickey" lines in
//!   the hosts' sshd logs; target: 0;
//! - every save produced exactly one run.
//!
//! It prints the numbers and exits 1 if a target is missed (2 on a setup error).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The release binary built alongside this bench target.
const TETHER_BIN: &str = env!("CARGO_BIN_EXE_tether");
const LATENCY_TARGET: Duration = Duration::from_millis(150);

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("watch") => Options::parse(&args[1..]).and_then(|o| run(&o)),
        _ => Err(
            "this benchmark needs a lab of sshd hosts: run scripts/bench-watch \
                  (usage: watch --config CFG --lab-dir DIR [--saves N] [--idle MS])"
                .into(),
        ),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("watch bench: {e}");
            ExitCode::from(2)
        }
    }
}

struct Options {
    config: PathBuf,
    lab_dir: PathBuf,
    saves: usize,
    idle: Duration,
}

impl Options {
    fn parse(args: &[String]) -> Res<Self> {
        let mut o = Options {
            config: PathBuf::new(),
            lab_dir: PathBuf::new(),
            saves: 20,
            idle: Duration::from_millis(300),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--config" => o.config = PathBuf::from(value()?),
                "--lab-dir" => o.lab_dir = PathBuf::from(value()?),
                "--saves" => o.saves = value()?.parse().map_err(|e| format!("--saves: {e}"))?,
                "--idle" => {
                    o.idle =
                        Duration::from_millis(value()?.parse().map_err(|e| format!("--idle: {e}"))?)
                }
                _ => return Err(format!("unknown argument {a}")),
            }
        }
        if o.config.as_os_str().is_empty() || o.lab_dir.as_os_str().is_empty() {
            return Err("--config and --lab-dir are required".into());
        }
        Ok(o)
    }
}

/// (name, sshd log) of every lab host, from `<lab>/hosts.tsv`.
fn lab_hosts(dir: &Path) -> Res<Vec<(String, PathBuf)>> {
    let path = dir.join("hosts.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let hosts: Vec<(String, PathBuf)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 5).then(|| (f[0].to_string(), PathBuf::from(f[4])))
        })
        .collect();
    if hosts.is_empty() {
        return Err(format!("no hosts in {}", path.display()));
    }
    Ok(hosts)
}

fn logins(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Accepted publickey for ")
        .count()
}

fn recipe(hosts: &[(String, PathBuf)], version: usize) -> String {
    let mut text = format!("// version {version}\n");
    for (name, _) in hosts {
        text.push_str(&format!("server(\"{name}\", #{{ roles: [\"bench\"] }});\n"));
    }
    text.push_str("task(\"bench\", || { on(\"bench\", \"date +%s%N\"); });\n");
    text
}

/// The value of `"key":"..."` or `"key":N` in one JSON line (enough for tether's events).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    if let Some(s) = rest.strip_prefix('"') {
        s.find('"').map(|e| &s[..e])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(&rest[..end])
    }
}

struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    /// The next event line, within `timeout`.
    fn next(&self, timeout: Duration) -> Res<String> {
        self.lines
            .recv_timeout(timeout)
            .map_err(|_| format!("no output from tether watch within {timeout:?}"))
    }

    /// Reads events until `watch_run_finished` for run `n`; returns the lines read.
    fn until_finished(&self, n: usize) -> Res<Vec<String>> {
        let mut seen = Vec::new();
        loop {
            let line = self.next(Duration::from_secs(30))?;
            let done = field(&line, "type") == Some("watch_run_finished")
                && field(&line, "run") == Some(&n.to_string());
            seen.push(line);
            if done {
                return Ok(seen);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn epoch_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(v: &[Duration]) -> Vec<Duration> {
    let mut s = v.to_vec();
    s.sort();
    s
}

fn median(v: &[Duration]) -> Duration {
    let s = sorted(v);
    match s.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

fn run(o: &Options) -> Res<bool> {
    let hosts = lab_hosts(&o.lab_dir)?;
    let dir = std::env::temp_dir().join(format!("tether-bench-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join("deploy.rhai");
    std::fs::write(&file, recipe(&hosts, 0)).map_err(|e| e.to_string())?;
    let logins_before: Vec<usize> = hosts.iter().map(|(_, log)| logins(log)).collect();

    let mut child = Command::new(TETHER_BIN)
        .arg("-F")
        .arg(&o.config)
        .args(["--format", "json", "watch", "bench"])
        .current_dir(&dir)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {TETHER_BIN}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let watch = Watch { child, lines };
    let cold = Instant::now();
    watch.until_finished(1)?;
    let cold = cold.elapsed();

    let mut latencies = Vec::new();
    let mut reconnects = 0;
    let mut extra_runs = 0;
    for i in 1..=o.saves {
        std::thread::sleep(o.idle);
        let tmp = dir.join(".deploy.rhai.tmp");
        std::fs::write(&tmp, recipe(&hosts, i)).map_err(|e| e.to_string())?;
        let saved = epoch_ns();
        std::fs::rename(&tmp, &file).map_err(|e| e.to_string())?;
        let run = i + 1;
        let events = watch.until_finished(run)?;
        let mut first: Option<u128> = None;
        for line in &events {
            match field(line, "type") {
                Some("output") => {
                    if let Some(ns) = field(line, "line").and_then(|l| l.parse::<u128>().ok()) {
                        first = Some(first.map_or(ns, |f| f.min(ns)));
                    }
                }
                Some("reconnect") => reconnects += 1,
                Some("watch_run_started") if field(line, "run") != Some(&run.to_string()) => {
                    extra_runs += 1
                }
                Some("watch_run_finished") if field(line, "result") != Some("ok") => {
                    return Err(format!("run {run} did not succeed: {line}"));
                }
                _ => {}
            }
        }
        let first = first.ok_or(format!("run {run}: no remote timestamp in its output"))?;
        latencies.push(Duration::from_nanos(first.saturating_sub(saved) as u64));
    }
    // Anything still pending (a second run for one save) shows up within the idle time.
    std::thread::sleep(o.idle);
    while let Ok(line) = watch.lines.try_recv() {
        match field(&line, "type") {
            Some("watch_run_started") => extra_runs += 1,
            Some("reconnect") => reconnects += 1,
            _ => {}
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(watch.child.id() as i32, libc::SIGINT);
    }
    let mut watch = watch;
    let stopping = Instant::now();
    let exit = loop {
        match watch.child.try_wait() {
            Ok(Some(status)) => break status.code(),
            _ if stopping.elapsed() > Duration::from_secs(5) => break None,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if exit != Some(0) {
        return Err(format!("tether watch did not exit 0 on Ctrl-C: {exit:?}"));
    }
    let new_logins: usize = hosts
        .iter()
        .zip(&logins_before)
        .map(|((_, log), before)| logins(log).saturating_sub(*before))
        .sum();
    let _ = std::fs::remove_dir_all(&dir);

    let s = sorted(&latencies);
    let med = median(&latencies);
    let p90 = s[((s.len() - 1) as f64 * 0.9).round() as usize];
    let out = std::io::stdout();
    let mut out = out.lock();
    let _ = writeln!(
        out,
        "tether watch: {} saves by atomic rename, {} host{}, debounce 100 ms, release build",
        o.saves,
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(out, "  first run (cold: connect + run): {:.1} ms", ms(cold));
    let _ = writeln!(
        out,
        "  rename -> first remote command started (remote `date`): median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(med),
        ms(p90),
        ms(s[0]),
        ms(s[s.len() - 1])
    );
    let _ = writeln!(
        out,
        "  reconnects during the {} runs: {reconnects} (reconnect events), {} new sshd logins (beyond the first connection of each host)",
        o.saves,
        new_logins.saturating_sub(hosts.len())
    );
    let _ = writeln!(out, "  runs beyond one per save: {extra_runs}");
    let latency_ok = med < LATENCY_TARGET;
    let reconnects_ok = reconnects == 0 && new_logins <= hosts.len();
    let _ = writeln!(
        out,
        "  targets: median < {} ms: {}; 0 reconnects: {}; one run per save: {}",
        LATENCY_TARGET.as_millis(),
        if latency_ok { "met" } else { "MISSED" },
        if reconnects_ok { "met" } else { "MISSED" },
        if extra_runs == 0 { "met" } else { "MISSED" }
    );
    Ok(latency_ok && reconnects_ok && extra_runs == 0)
}
