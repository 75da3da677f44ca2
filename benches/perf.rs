//! Speed and memory benchmarks, each reported as a ratio against a baseline measured in the
//! same invocation. Run through `scripts/bench`, which builds this target, starts a lab of
//! local sshd hosts and stops it again; `cargo bench` alone has no lab to measure against.
//!
//! `perf all --config CFG --lab-dir DIR [--quick]` measures, in this order:
//! 1. warm per-command overhead: `true` on an open session through a [`Pool`] worker (under
//!    the supervisor, as every command without a PTY runs), against `ssh host true` through an
//!    OpenSSH ControlMaster, against the floor (`true` through the ssh2 crate alone, blocking,
//!    on a session of its own) and without the supervisor (runs interleaved, medians
//!    compared);
//! 2. warm rounds: `true` on 50 hosts at once, 20 rounds (10 with `--quick`), through a Pool
//!    and through 50 raw ssh2 sessions with a thread each (the floor): wall time per round and
//!    this process's CPU time;
//! 3. cold fan-out: `tether run --hosts <20 hosts> -- true`, against 20 plain `ssh host true`
//!    run in parallel (runs interleaved, medians of wall time compared);
//! 4. a jump host: `true` on host2 reached through host1 (ProxyJump: a `direct-tcpip`
//!    tunnel pumped by host1's worker), against `true` on host2 directly (runs interleaved,
//!    medians compared): a tunnel must cost a few round trips, not Linux's 40 ms delayed ACK;
//! 5. a command's output: `seq 1 1000000` on one host, and a quarter of it on four hosts at
//!    once (folded), through `tether run` against plain `ssh` (no target);
//! 6. the recipe's own cost: a dry run of the stdlib's deploy of 100 and of 1000 hosts (no
//!    lab: nothing connects), time per host compared (see [`recipe_scale`]);
//! 7. connecting and idle cost, each in a fresh process of its own (`perf idle ...`): the
//!    time to connect 100 sessions with the heartbeat off (nothing but the handshakes; where
//!    the time went: handshake durations, this process's and the whole machine's CPU), then
//!    CPU time and RSS of holding 100 idle sessions with the default heartbeat, against the
//!    same process before it opened any session;
//! 8. scale (`--scale 1000,3000`): the same for that many sessions, spread as aliases over the
//!    lab's listeners (so each sshd serves N/100): connect time, idle CPU and RSS per
//!    session, each also as a ratio to the 100-session row of the same invocation, and the
//!    connect time against its floor: the same sessions opened through the ssh2 crate alone
//!    (`perf raw-connect`), as many at once as tether's handshake limiter allows. The goals
//!    are issue 17's: 1000 sessions connected in under 8 s, idle under 0.5 % of one core and
//!    under 0.2 MiB RSS per session.
//!
//! It prints what it measured, a table, and exits 1 if a target is missed (2 on a setup error).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether::event::{Event, EventKind};
use tether::host::HostTarget;
use tether::pool::{FanOut, Pool};
use tether::ssh::config::{SshConfig, SYSTEM_CONFIG};
use tether::ssh::exec;
use tether::ssh::limiter::HandshakeLimiter;
use tether::ssh::policy::{Heartbeat, WorkerSettings, DEFAULT_HEARTBEAT, KEEPALIVE_DEFAULT};
use tether::ssh::worker::READ_LIMITS_AFTER;

/// The release binary built alongside this bench target.
const TETHER_BIN: &str = env!("CARGO_BIN_EXE_tether");

/// Targets from the project guide.
const WARM_RATIO_TARGET: f64 = 0.5;
const IDLE_CPU_TARGET_PERCENT: f64 = 1.0;
/// A command through one jump host against the same command directly (about 2.6x measured).
const JUMP_RATIO_TARGET: f64 = 4.0;
/// Issue 17's aim for a warm command against the raw ssh2 floor.
const FLOOR_RATIO_AIM: f64 = 1.3;
/// Hosts of the warm-rounds row.
const ROUND_HOSTS: usize = 50;

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("all") => Options::parse(&args[1..]).and_then(|o| run_all(&o)),
        Some("idle") => Options::parse(&args[1..]).and_then(|o| run_idle(&o).map(|()| true)),
        Some("warm") => Options::parse(&args[1..]).and_then(|o| run_warm(&o)),
        // No lab: a dry run connects to nothing.
        Some("recipe") => recipe_scale(3).map(|row| {
            println!("{}", row.line);
            row.pass
        }),
        Some("raw-connect") => {
            Options::parse(&args[1..]).and_then(|o| run_raw_connect(&o).map(|()| true))
        }
        _ => Err(
            "this benchmark needs a lab of sshd hosts: run scripts/bench \
                  (usage: perf all --config CFG --lab-dir DIR [--quick] | \
                  perf warm --config CFG --lab-dir DIR [--quick] | \
                  perf idle --config CFG --hosts N --seconds S | perf recipe)"
                .into(),
        ),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("perf: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    config: PathBuf,
    lab_dir: Option<PathBuf>,
    quick: bool,
    /// Idle phase: number of sessions and window length.
    hosts: usize,
    seconds: u64,
    /// Idle phase: host names are PREFIX1..PREFIXn.
    prefix: String,
    /// `all`: session counts for the scale rows.
    scale: Vec<usize>,
    /// `idle`: connect with the heartbeat off and stop there (no window).
    connect_only: bool,
}

impl Options {
    fn parse(args: &[String]) -> Res<Self> {
        let mut o = Options {
            config: PathBuf::new(),
            lab_dir: None,
            quick: false,
            hosts: 100,
            seconds: 60,
            prefix: "host".into(),
            scale: Vec::new(),
            connect_only: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--config" => o.config = PathBuf::from(value()?),
                "--lab-dir" => o.lab_dir = Some(PathBuf::from(value()?)),
                "--quick" => o.quick = true,
                "--connect-only" => o.connect_only = true,
                "--hosts" => o.hosts = value()?.parse().map_err(|e| format!("--hosts: {e}"))?,
                "--seconds" => {
                    o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
                }
                "--prefix" => o.prefix = value()?,
                "--scale" => {
                    o.scale = value()?
                        .split(',')
                        .filter(|v| !v.is_empty())
                        .map(|v| v.parse().map_err(|e| format!("--scale {v}: {e}")))
                        .collect::<Res<_>>()?
                }
                _ => return Err(format!("unknown argument {a}")),
            }
        }
        if o.config.as_os_str().is_empty() {
            return Err("--config is required".into());
        }
        Ok(o)
    }
}

// ------------------------------------------------------------------ helpers

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    let n = s.len();
    if n == 0 {
        Duration::ZERO
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    s[i.min(s.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn host_names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

fn targets(names: &[String]) -> Res<Vec<HostTarget>> {
    names.iter().map(|n| HostTarget::parse(n)).collect()
}

fn new_pool(config: &Path) -> Res<(Pool, Receiver<Event>)> {
    new_pool_with(config, WorkerSettings::default())
}

fn new_pool_with(config: &Path, settings: WorkerSettings) -> Res<(Pool, Receiver<Event>)> {
    let ssh_config =
        SshConfig::load(Some(config), Path::new(SYSTEM_CONFIG)).map_err(|e| e.to_string())?;
    let (tx, rx) = tether::sink::collector();
    let pool = Pool::new(
        ssh_config,
        settings,
        HandshakeLimiter::sized_for_this_machine(),
        tx,
        Arc::new(AtomicBool::new(false)),
    );
    Ok((pool, rx))
}

/// Waits for every host's first connection; an unreachable host is a setup error.
fn wait_connected(rx: &Receiver<Event>, n: usize, within: Duration) -> Res<Vec<Event>> {
    let until = Instant::now() + within;
    let mut seen = Vec::new();
    let mut connected = 0;
    while connected < n {
        let left = until.saturating_duration_since(Instant::now());
        let ev = rx
            .recv_timeout(left)
            .map_err(|_| format!("only {connected} of {n} hosts connected within {within:?}"))?;
        match &ev.kind {
            EventKind::Connected { .. } => connected += 1,
            EventKind::ConnectFailed { error, .. } => {
                return Err(format!("connect failed: {error}"))
            }
            _ => {}
        }
        seen.push(ev);
    }
    Ok(seen)
}

fn ssh_cmd(config: &Path) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn run_ok(mut c: Command, what: &str) -> Res<()> {
    let status = c.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Says so when other work competes for the CPUs: both sides of each ratio slow down, but not
/// equally (a forked `ssh` suffers more than an in-process call), so the ratios get noisier.
fn warn_if_busy() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let one_min: f64 = loadavg()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0);
    if one_min > cores {
        println!(
            "WARNING: load average {one_min:.2} on {cores} cores: other work is competing for \
             the CPUs; absolute times are inflated and ratios noisier than on an idle machine"
        );
    }
}

/// CPU time (user + system) of this whole process, all threads.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// This process's resident set size in KiB, from /proc/self/status.
fn vm_rss_kib() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

// ------------------------------------------------------------------ the raw ssh2 floor

/// A blocking session to `host` through the ssh2 crate alone, reached as the lab's ssh config
/// says (HostName, Port, User, the first IdentityFile): the floor tether is measured against.
/// The host key is not checked (the lab's own servers).
fn raw_session(config: &SshConfig, host: &str) -> Res<Raw> {
    let cfg = config
        .resolve(host, None, None)
        .map_err(|e| format!("{host}: {e}"))?;
    let tcp = std::net::TcpStream::connect((cfg.hostname.as_str(), cfg.port))
        .map_err(|e| format!("{host}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
    let mut session = ssh2::Session::new().map_err(|e| e.to_string())?;
    session.set_tcp_stream(tcp);
    session.handshake().map_err(|e| format!("{host}: {e}"))?;
    let key = cfg
        .identity_files
        .first()
        .ok_or(format!("{host} has no IdentityFile"))?;
    session
        .userauth_pubkey_file(&cfg.user, None, key, None)
        .map_err(|e| format!("{host}: {e}"))?;
    Ok(Raw { session, fd })
}

/// A raw session and its socket (owned by the session).
struct Raw {
    session: ssh2::Session,
    fd: std::os::fd::RawFd,
}

/// `true` on a raw session, read to its close. sshd leaves Nagle on, so each wait first asks
/// for a quick ACK as tether's worker does: without it Linux's delayed ACK adds ~40 ms and
/// this would be no floor.
fn raw_true(raw: &Raw) -> Res<()> {
    use std::io::Read as _;
    let session = &raw.session;
    let quick_ack = || {
        let on: libc::c_int = 1;
        // SAFETY: the session's open socket; the option value is a c_int.
        unsafe {
            libc::setsockopt(
                raw.fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    };
    let fail = |e: ssh2::Error| format!("raw ssh2 `true`: {e}");
    quick_ack();
    let mut channel = session.channel_session().map_err(fail)?;
    quick_ack();
    channel.exec("true").map_err(fail)?;
    quick_ack();
    let mut sink = Vec::new();
    channel
        .read_to_end(&mut sink)
        .map_err(|e| format!("raw ssh2 `true`: {e}"))?;
    channel.wait_close().map_err(fail)?;
    match channel.exit_status().map_err(fail)? {
        0 => Ok(()),
        n => Err(format!("raw ssh2 `true` exited {n}")),
    }
}

/// 2. Warm rounds: `true` on hosts 1..50 at once, `rounds` times, through a [`Pool`] and
///    through raw ssh2 sessions (one thread each, a round waits for all), rounds interleaved;
///    wall time and this process's CPU time of each side.
fn rounds(o: &Options, rounds: usize) -> Res<Row> {
    println!();
    println!(
        "-- warm rounds: {rounds} rounds of `true` on host1..host{ROUND_HOSTS} at once, through \
         one Pool (fan_out, supervised) and through {ROUND_HOSTS} raw ssh2 sessions (a thread \
         each), rounds interleaved after 2 warm-up rounds each; CPU is this process's \
         getrusage user+sys during each side's rounds"
    );
    let names = host_names("host", ROUND_HOSTS);
    let (pool, rx) = new_pool(&o.config)?;
    pool.ensure(&targets(&names)?);
    wait_connected(&rx, ROUND_HOSTS, Duration::from_secs(30))?;
    let ssh_config =
        SshConfig::load(Some(&o.config), Path::new(SYSTEM_CONFIG)).map_err(|e| e.to_string())?;
    // One thread per raw session, told to run a round; answers when its `true` is done.
    let mut raws = Vec::with_capacity(ROUND_HOSTS);
    for name in &names {
        let session = raw_session(&ssh_config, name)?;
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Res<()>>();
        std::thread::spawn(move || {
            for () in go_rx {
                if done_tx.send(raw_true(&session)).is_err() {
                    break;
                }
            }
        });
        raws.push((go_tx, done_rx));
    }
    let jobs: Vec<(String, String)> = names.iter().map(|h| (h.clone(), "true".into())).collect();
    let how = FanOut::default();
    let tether_round = || -> Res<(Duration, Duration)> {
        let (t, c) = (Instant::now(), process_cpu());
        let results = pool.fan_out(&jobs, &how);
        let took = (t.elapsed(), process_cpu() - c);
        if let Some(bad) = results.iter().find(|r| !r.ok()) {
            return Err(format!("tether round: {}: {:?}", bad.host, bad.result));
        }
        rx.try_iter().for_each(drop);
        Ok(took)
    };
    let raw_round = || -> Res<(Duration, Duration)> {
        let (t, c) = (Instant::now(), process_cpu());
        for (go, _) in &raws {
            go.send(()).map_err(|_| "a raw session thread ended")?;
        }
        for (_, done) in &raws {
            done.recv().map_err(|_| "a raw session thread ended")??;
        }
        Ok((t.elapsed(), process_cpu() - c))
    };
    for _ in 0..2 {
        tether_round()?;
        raw_round()?;
    }
    let (mut tw, mut tc, mut rw, mut rc) = (Vec::new(), Duration::ZERO, Vec::new(), Duration::ZERO);
    for _ in 0..rounds {
        let (w, c) = tether_round()?;
        tw.push(w);
        tc += c;
        let (w, c) = raw_round()?;
        rw.push(w);
        rc += c;
    }
    drop(raws);
    drop(pool);
    let (sum_t, sum_r): (Duration, Duration) = (tw.iter().sum(), rw.iter().sum());
    println!(
        "tether: {rounds} rounds in {:.0} ms (median round {:.1} ms), client CPU {:.0} ms",
        ms(sum_t),
        ms(median(&tw)),
        ms(tc)
    );
    println!(
        "raw ssh2: {rounds} rounds in {:.0} ms (median round {:.1} ms), client CPU {:.0} ms",
        ms(sum_r),
        ms(median(&rw)),
        ms(rc)
    );
    let wall = median(&tw).as_secs_f64() / median(&rw).as_secs_f64();
    let cpu = tc.as_secs_f64() / rc.as_secs_f64().max(1e-9);
    Ok(Row {
        line: format!(
            "warm rounds {ROUND_HOSTS} hosts  tether {:.1} ms/round, CPU {:.1} ms/round   raw ssh2 \
             {:.1} ms/round, CPU {:.1} ms/round   ratios {wall:.2}x wall, {cpu:.2}x CPU  (no target)",
            ms(median(&tw)),
            ms(tc) / rounds as f64,
            ms(median(&rw)),
            ms(rc) / rounds as f64
        ),
        pass: true,
    })
}

// ------------------------------------------------------------------ all

#[derive(Clone)]
struct Row {
    line: String,
    pass: bool,
}

/// `perf warm`: the warm per-command rows alone (host1 of the lab).
fn run_warm(o: &Options) -> Res<bool> {
    let lab = o
        .lab_dir
        .clone()
        .ok_or("--lab-dir is required for `warm`")?;
    let mut rows = warm(o, &lab, if o.quick { 100 } else { 300 })?;
    rows.push(reattach(o, &lab, if o.quick { 3 } else { 5 })?);
    println!();
    for row in &rows {
        println!("{}", row.line);
    }
    Ok(rows.iter().all(|r| r.pass))
}

fn run_all(o: &Options) -> Res<bool> {
    let lab = o.lab_dir.clone().ok_or("--lab-dir is required for `all`")?;
    let (warm_iters, cold_runs) = if o.quick { (100, 3) } else { (300, 5) };
    // The lab's servers need only keepalives: one window is a whole cycle of their heartbeats
    // (three keepalives, then a bare channel), else the idle CPU would leave beats out.
    let idle_secs = 4 * KEEPALIVE_DEFAULT.as_secs();
    let ssh_version = Command::new("ssh")
        .arg("-V")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stderr).trim().to_string())
        .unwrap_or_else(|e| format!("ssh -V failed: {e}"));
    println!(
        "== tether benchmarks{}",
        if o.quick { " (--quick)" } else { "" }
    );
    println!(
        "machine: {} cores, load average {} at start; client and server: {ssh_version}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "lab: {} (sshd on 127.0.0.1, one listener per host)",
        lab.display()
    );
    let setenv = std::fs::read_to_string(lab.join("hosts/host1/sshd_config"))
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("SetEnv ") && l.contains(" HOME="))
                .map(str::to_string)
        })
        .ok_or("lab host1's sshd_config has no `SetEnv ... HOME=` line")?;
    println!(
        "remote shell: root's login shell (bash) with `{setenv}` in each lab sshd_config, so \
         root's ~/.bashrc (pyenv, ~75 ms) is NOT read: these numbers exclude rc-file time"
    );
    println!("binary: {TETHER_BIN}");
    warn_if_busy();

    let mut rows = warm(o, &lab, warm_iters)?;
    rows.push(reattach(o, &lab, if o.quick { 3 } else { 5 })?);
    rows.push(rounds(o, if o.quick { 10 } else { 20 })?);
    rows.push(cold(o, cold_runs)?);
    rows.push(jump(o, warm_iters)?);
    rows.push(output(o, cold_runs)?);
    rows.push(recipe_scale(if o.quick { 1 } else { 3 })?);
    let base = idle_child(&o.config, "host", o.hosts, idle_secs)?;
    rows.push(base.row.clone());
    for &n in &o.scale {
        rows.push(scale(&lab, n, idle_secs, &base)?);
    }

    println!("load average at end: {}", loadavg());
    warn_if_busy();
    println!();
    for r in &rows {
        println!("{}", r.line);
    }
    let pass = rows.iter().all(|r| r.pass);
    println!(
        "{}",
        if pass {
            "all targets met"
        } else {
            "TARGET MISSED"
        }
    );
    Ok(pass)
}

/// The listener pid of lab host `name` (scripts/lab's `hosts.tsv`: name, port, pid, ...).
fn listener_pid(lab: &Path, name: &str) -> Res<u32> {
    let path = lab.join("hosts.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .skip(1)
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .ok_or(format!("{} names no listener for {name}", path.display()))
}

/// The per-connection sshd processes of the listener `listener`: its live children.
fn connection_pids(listener: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command's name in parentheses: its state, then its parent.
            let mut fields = stat.rsplit_once(") ").map_or("", |(_, r)| r).split(' ');
            let (state, ppid) = (fields.next(), fields.next());
            state != Some("Z") && ppid.and_then(|p| p.parse().ok()) == Some(listener)
        })
        .collect()
}

/// Issue 13's measure of re-attaching: a command printing a line every 0.25 s for 2 s on lab
/// host2, whose connection (the per-connection sshd process) is killed 0.8 s in; the time from
/// the connection found dead to re-attached, reconnecting included (the `reattach` event's
/// `took`), and from the kill. Every run must end with all eight lines once and exit 0.
fn reattach(o: &Options, lab: &Path, runs: usize) -> Res<Row> {
    println!();
    println!(
        "-- re-attach after a kill: {runs} runs of a 2 s command on host2 (a line every 0.25 s), \
         its connection's sshd process sent SIGKILL 0.8 s in"
    );
    let listener = listener_pid(lab, "host2")?;
    let (pool, rx) = new_pool(&o.config)?;
    pool.ensure(&targets(&["host2".to_string()])?);
    wait_connected(&rx, 1, Duration::from_secs(15))?;
    let command = "i=1; while [ $i -le 8 ]; do echo $i; i=$((i+1)); sleep 0.25; done";
    let want: String = (1..=8).map(|i| format!("{i}\n")).collect();
    let (mut took, mut from_kill) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            let pids = connection_pids(listener);
            let mut kill = Command::new("kill");
            kill.arg("-KILL").args(pids.iter().map(u32::to_string));
            let killed = !pids.is_empty() && kill.status().is_ok_and(|s| s.success());
            (killed, Instant::now())
        });
        let jobs = [("host2".to_string(), command.to_string())];
        let result = pool.fan_out(&jobs, &FanOut::default()).into_iter().next();
        let (killed, killed_at) = killer
            .join()
            .map_err(|_| "the killing thread panicked".to_string())?;
        if !killed {
            return Err(format!("run {run}: no connection of host2 to kill"));
        }
        match result.and_then(|h| h.result) {
            Some(Ok(out)) if out.status.success() && out.stdout == want.as_bytes() => {}
            other => return Err(format!("run {run}: not every line once, exit 0: {other:?}")),
        }
        let event = rx.try_iter().find_map(|ev| match ev.kind {
            EventKind::Reattached { took, .. } => Some((took, ev.at)),
            _ => None,
        });
        let Some((t, at)) = event else {
            return Err(format!("run {run}: the command ended without a re-attach"));
        };
        println!(
            "run {run}: re-attached {:.0} ms after the connection was found dead, {:.0} ms after \
             the kill",
            ms(t),
            ms(at.saturating_duration_since(killed_at))
        );
        took.push(t);
        from_kill.push(at.saturating_duration_since(killed_at));
    }
    Ok(Row {
        line: format!(
            "re-attach after a kill  median {:.0} ms from found dead ({:.0} ms from the kill), \
             {runs} runs, every line once  PASS",
            ms(median(&took)),
            ms(median(&from_kill))
        ),
        pass: true,
    })
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// 4. A command through a jump host against the same command directly.
fn jump(o: &Options, iters: usize) -> Res<Row> {
    println!();
    println!(
        "-- jump host: {iters} sequential `true` on host2 through host1 (ProxyJump) and directly, \
         interleaved, after 20 warm-up runs each"
    );
    let (direct, rx_direct) = new_pool(&o.config)?;
    let (jumped, rx_jumped) = new_pool(&o.config)?;
    let target = HostTarget::parse("host2").map_err(|e| e.to_string())?;
    direct.ensure(std::slice::from_ref(&target));
    jumped.ensure(&[target.with_via(Some("host1".into()))]);
    // host2 on both pools, and host1 as the jump host of the second.
    wait_connected(&rx_direct, 1, Duration::from_secs(15))?;
    wait_connected(&rx_jumped, 2, Duration::from_secs(15))?;
    let how = FanOut::default();
    let one = |pool: &Pool| -> Res<Duration> {
        let jobs = [("host2".to_string(), "true".to_string())];
        let t = Instant::now();
        let r = pool.fan_out(&jobs, &how);
        let took = t.elapsed();
        match r.first() {
            Some(h) if h.ok() => Ok(took),
            Some(h) => Err(format!("`true` on host2 failed: {:?}", h.result)),
            None => Err("fan_out returned nothing".into()),
        }
    };
    for _ in 0..20 {
        one(&direct)?;
        one(&jumped)?;
    }
    let (mut d, mut j) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        d.push(one(&direct)?);
        j.push(one(&jumped)?);
        rx_direct.try_iter().for_each(drop);
        rx_jumped.try_iter().for_each(drop);
    }
    let (md, mj) = (median(&d), median(&j));
    let ratio = mj.as_secs_f64() / md.as_secs_f64();
    let pass = ratio <= JUMP_RATIO_TARGET;
    println!(
        "direct: median {:.2} ms (p90 {:.2}); through host1: median {:.2} ms (p90 {:.2})",
        ms(md),
        ms(percentile(&d, 0.9)),
        ms(mj),
        ms(percentile(&j, 0.9))
    );
    Ok(Row {
        line: format!(
            "jump host per command    {ratio:.2}x direct (target <= {JUMP_RATIO_TARGET}x)  {}",
            verdict(pass)
        ),
        pass,
    })
}

/// 1. Warm per-command overhead.
fn warm(o: &Options, lab: &Path, iters: usize) -> Res<Vec<Row>> {
    println!();
    println!(
        "-- warm per-command: {iters} sequential `true` on host1, tether and ControlMaster runs \
         interleaved, after 20 warm-up runs each"
    );
    let (pool, rx) = new_pool(&o.config)?;
    let host = targets(&["host1".to_string()])?;
    pool.ensure(&host);
    let connected = wait_connected(&rx, 1, Duration::from_secs(15))?;
    if let Some(EventKind::Connected { setup }) = connected
        .iter()
        .map(|e| &e.kind)
        .find(|k| matches!(k, EventKind::Connected { .. }))
    {
        println!(
            "tether: session to host1 set up in {:.1} ms (TCP + handshake + auth)",
            ms(*setup)
        );
    }
    let how = FanOut::default();
    let one = |cmd: &str| -> Res<(Duration, String)> {
        let jobs = [("host1".to_string(), cmd.to_string())];
        let t = Instant::now();
        let r = pool.fan_out(&jobs, &how);
        let took = t.elapsed();
        match r.into_iter().next() {
            Some(h) if h.ok() => {
                let out = match h.result {
                    Some(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
                    _ => String::new(),
                };
                Ok((took, out))
            }
            Some(h) => Err(format!("tether `{cmd}` on host1 failed: {:?}", h.result)),
            None => Err("fan_out returned nothing".into()),
        }
    };
    let (_, home) =
        one("printf '%s' \"$HOME\"; test -e \"$HOME/.bashrc\" && printf ' (has .bashrc)'; :")?;
    println!("remote $HOME seen by commands: {home}");

    let cm_path = lab.join("cm-%C");
    let cm = |remote: &str| {
        let mut c = ssh_cmd(&o.config);
        c.arg("-o")
            .arg("ControlMaster=auto")
            .arg("-o")
            .arg(format!("ControlPath={}", cm_path.display()))
            .args(["-o", "ControlPersist=60", "host1", remote]);
        c
    };
    // Open the master (ControlPersist puts it in the background) and check it.
    run_ok(cm("true"), "opening the ControlMaster")?;
    let mut check = ssh_cmd(&o.config);
    check
        .arg("-o")
        .arg(format!("ControlPath={}", cm_path.display()))
        .args(["-O", "check", "host1"]);
    run_ok(check, "ssh -O check (ControlMaster not running)")?;

    let time_cm = |remote: &str| -> Res<Duration> {
        let t = Instant::now();
        run_ok(cm(remote), "ssh through the ControlMaster")?;
        Ok(t.elapsed())
    };
    for _ in 0..20 {
        one("true")?;
        time_cm("true")?;
    }
    // The floor: `true` on a session of the bench's own through the ssh2 crate, blocking, no
    // wrapper, no worker thread: what libssh2 and the server cost.
    let ssh_config =
        SshConfig::load(Some(&o.config), Path::new(SYSTEM_CONFIG)).map_err(|e| e.to_string())?;
    let raw = raw_session(&ssh_config, "host1")?;
    let time_raw = || -> Res<Duration> {
        let t = Instant::now();
        raw_true(&raw)?;
        Ok(t.elapsed())
    };
    // Without the supervisor: a command whose events are not reported runs under the status
    // wrapper only (see ssh/worker.rs), as tether's own probes do.
    let bare = |cmd: &str| -> Res<Duration> {
        let opts = exec::ExecOptions {
            echo: exec::Echo::Nothing,
            ..exec::ExecOptions::default()
        };
        let t = Instant::now();
        let out = pool
            .exec_one("host1", cmd, opts)
            .map_err(|e| format!("tether `{cmd}` (unsupervised) on host1: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tether `{cmd}` (unsupervised) on host1: {:?}",
                out.status
            ));
        }
        Ok(t.elapsed())
    };
    for _ in 0..20 {
        time_raw()?;
        bare("true")?;
    }
    let (mut tt, mut tc) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    let (mut tr, mut tb) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        tt.push(one("true")?.0);
        tc.push(time_cm("true")?);
        tr.push(time_raw()?);
        tb.push(bare("true")?);
        // The events of each command (Started, Finished) are not needed here.
        rx.try_iter().for_each(drop);
    }
    // Where tether's time goes, part 1: the remote cost of tether's status wrapper (an extra
    // `sh` exec and a subshell per command), measured through the ControlMaster as the
    // wrapped command minus plain `true`.
    let wrapped = exec::wrap("true");
    let (mut plain, mut wrap) = (Vec::new(), Vec::new());
    for _ in 0..iters / 3 {
        plain.push(time_cm("true")?);
        wrap.push(time_cm(&wrapped)?);
    }
    let mut exit = ssh_cmd(&o.config);
    exit.arg("-o")
        .arg(format!("ControlPath={}", cm_path.display()))
        .args(["-O", "exit", "host1"]);
    let _ = exit.status();
    drop(pool);

    let (mt, mc) = (median(&tt), median(&tc));
    let ratio = mt.as_secs_f64() / mc.as_secs_f64();
    println!(
        "tether (Pool::fan_out, in-process, command wrapped in tether's `sh -c` status wrapper): \
         median {:.2} ms, p10 {:.2}, p90 {:.2}",
        ms(mt),
        ms(percentile(&tt, 0.1)),
        ms(percentile(&tt, 0.9))
    );
    println!(
        "ControlMaster (`ssh -o ControlMaster=auto -o ControlPersist=60 host1 true`, a new ssh \
         process per run): median {:.2} ms, p10 {:.2}, p90 {:.2}",
        ms(mc),
        ms(percentile(&tc, 0.1)),
        ms(percentile(&tc, 0.9))
    );
    // Median of the paired differences: each pair ran back to back, so load hits both.
    let mut diffs: Vec<f64> = wrap
        .iter()
        .zip(&plain)
        .map(|(w, p)| ms(*w) - ms(*p))
        .collect();
    diffs.sort_by(f64::total_cmp);
    println!(
        "of tether's time, the remote status wrapper (`sh -c '(CMD\\n); s=$?; printf ...'`) \
         costs about {:.2} ms (median of paired differences): ControlMaster with the wrapped \
         `true` {:.2} ms vs plain `true` {:.2} ms ({} runs each, interleaved)",
        diffs.get(diffs.len() / 2).copied().unwrap_or(0.0),
        ms(median(&wrap)),
        ms(median(&plain)),
        plain.len()
    );
    let (mr, mb) = (median(&tr), median(&tb));
    println!(
        "floor (ssh2 crate on a session of its own, blocking, `true` unwrapped): median {:.2} ms, \
         p10 {:.2}, p90 {:.2}",
        ms(mr),
        ms(percentile(&tr, 0.1)),
        ms(percentile(&tr, 0.9))
    );
    println!(
        "tether without the supervisor (status wrapper only, events off): median {:.2} ms, \
         p10 {:.2}, p90 {:.2}",
        ms(mb),
        ms(percentile(&tb, 0.1)),
        ms(percentile(&tb, 0.9))
    );
    let floor_ratio = mt.as_secs_f64() / mr.as_secs_f64();
    let bare_ratio = mb.as_secs_f64() / mr.as_secs_f64();
    let pass = ratio <= WARM_RATIO_TARGET;
    let floor_pass = floor_ratio <= FLOOR_RATIO_AIM;
    Ok(vec![
        Row {
            line: format!(
                "warm per-command   tether (supervised) {:.2} ms   ControlMaster {:.2} ms   ratio \
                 {ratio:.2}  (target <= {WARM_RATIO_TARGET})  {}",
                ms(mt),
                ms(mc),
                verdict(pass)
            ),
            pass,
        },
        Row {
            line: format!(
                "warm vs floor      tether (supervised) {:.2} ms   unsupervised {:.2} ms   raw ssh2 \
                 {:.2} ms   ratios {floor_ratio:.2}x / {bare_ratio:.2}x the floor  (aim <= \
                 {FLOOR_RATIO_AIM}x, supervised)  {}",
                ms(mt),
                ms(mb),
                ms(mr),
                verdict(floor_pass)
            ),
            pass: floor_pass,
        },
    ])
}

/// 3. Cold fan-out over 20 hosts.
fn cold(o: &Options, runs: usize) -> Res<Row> {
    const N: usize = 20;
    println!();
    println!(
        "-- cold 20 hosts: wall time of `tether -F CFG run --hosts host1..host{N} -- true` \
         (new process, new sessions) vs {N} plain `ssh -F CFG hostN true` started together and \
         waited for (no ControlMaster); {runs} runs each, interleaved, after one warm-up each"
    );
    let names = host_names("host", N);
    let tether_run = || -> Res<Duration> {
        let t = Instant::now();
        let out = Command::new(TETHER_BIN)
            .arg("-F")
            .arg(&o.config)
            .args(["run", "--hosts", &names.join(","), "--", "true"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{TETHER_BIN}: {e}"))?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "tether run failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    };
    let ssh_run = || -> Res<Duration> {
        let t = Instant::now();
        let mut children = Vec::with_capacity(N);
        for h in &names {
            let mut c = ssh_cmd(&o.config);
            c.args([
                "-o",
                "ControlMaster=no",
                "-o",
                "ControlPath=none",
                h,
                "true",
            ]);
            children.push((h, c.spawn().map_err(|e| format!("ssh: {e}"))?));
        }
        let mut failed = Vec::new();
        for (h, mut c) in children {
            match c.wait() {
                Ok(s) if s.success() => {}
                Ok(s) => failed.push(format!("{h}: {s}")),
                Err(e) => failed.push(format!("{h}: {e}")),
            }
        }
        let took = t.elapsed();
        if failed.is_empty() {
            Ok(took)
        } else {
            Err(format!("plain ssh failed: {}", failed.join(", ")))
        }
    };
    tether_run()?;
    ssh_run()?;
    let (mut tt, mut ts) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        tt.push(tether_run()?);
        ts.push(ssh_run()?);
    }
    let (mt, msh) = (median(&tt), median(&ts));
    let ratio = mt.as_secs_f64() / msh.as_secs_f64();
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("tether run: {} ms", list(&tt));
    println!("{N}x ssh:    {} ms", list(&ts));
    Ok(Row {
        line: format!(
            "cold {N} hosts      tether {:.0} ms   {N}x ssh {:.0} ms   ratio {ratio:.2}  (no target)",
            ms(mt),
            ms(msh)
        ),
        pass: true,
    })
}

/// 5. A command's output streamed: `seq 1 N` printed by one host, and by four at once
///    (folded), through `tether run` (stdout to a file), against plain `ssh` to the same
///    hosts; medians of `runs` runs each, interleaved, after one warm-up each.
fn output(o: &Options, runs: usize) -> Res<Row> {
    const LINES: usize = 1_000_000;
    const HOSTS: usize = 4;
    println!();
    println!(
        "-- output: `seq 1 {LINES}` on host1, then `seq 1 {}` on host1..host{HOSTS} at once: \
         `tether run` (its stdout a file; folded, the default, where there are several hosts) \
         vs plain `ssh` (no ControlMaster; one per host, started together); {runs} runs each, \
         interleaved, after one warm-up each",
        LINES / HOSTS
    );
    let sink = std::env::temp_dir().join(format!("tether-bench-output.{}", std::process::id()));
    let tether_run = |hosts: &[String], lines: usize| -> Res<Duration> {
        let file = std::fs::File::create(&sink).map_err(|e| e.to_string())?;
        let t = Instant::now();
        let out = Command::new(TETHER_BIN)
            .arg("-F")
            .arg(&o.config)
            .args(["run", "--hosts", &hosts.join(","), "--"])
            .arg(format!("seq 1 {lines}"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file)
            .output()
            .map_err(|e| format!("{TETHER_BIN}: {e}"))?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "tether run failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    };
    let ssh_run = |hosts: &[String], lines: usize| -> Res<Duration> {
        let t = Instant::now();
        let mut children = Vec::new();
        for h in hosts {
            let file = std::fs::File::create(sink.with_extension(h)).map_err(|e| e.to_string())?;
            let mut c = ssh_cmd(&o.config);
            c.args(["-o", "ControlMaster=no", "-o", "ControlPath=none", h])
                .arg(format!("seq 1 {lines}"))
                .stdout(file);
            children.push(c.spawn().map_err(|e| format!("ssh: {e}"))?);
        }
        for mut c in children {
            match c.wait() {
                Ok(s) if s.success() => {}
                Ok(s) => return Err(format!("plain ssh failed: {s}")),
                Err(e) => return Err(format!("plain ssh: {e}")),
            }
        }
        Ok(t.elapsed())
    };
    let measure = |hosts: &[String], lines: usize| -> Res<(Duration, Duration)> {
        tether_run(hosts, lines)?;
        ssh_run(hosts, lines)?;
        let (mut tt, mut ts) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            tt.push(tether_run(hosts, lines)?);
            ts.push(ssh_run(hosts, lines)?);
        }
        println!(
            "{} host(s): tether {:.0} ms, ssh {:.0} ms (medians)",
            hosts.len(),
            ms(median(&tt)),
            ms(median(&ts))
        );
        Ok((median(&tt), median(&ts)))
    };
    let one = measure(&host_names("host", 1), LINES);
    let four = measure(&host_names("host", HOSTS), LINES / HOSTS);
    let _ = std::fs::remove_file(&sink);
    for h in host_names("host", HOSTS) {
        let _ = std::fs::remove_file(sink.with_extension(h));
    }
    let ((t1, s1), (t4, s4)) = (one?, four?);
    let ratio = |t: Duration, s: Duration| t.as_secs_f64() / s.as_secs_f64().max(1e-9);
    Ok(Row {
        line: format!(
            "output {LINES} lines  1 host: tether {:.0} ms, ssh {:.0} ms, ratio {:.2}   {HOSTS} \
             hosts folded: tether {:.0} ms, ssh {:.0} ms, ratio {:.2}  (no target)",
            ms(t1),
            ms(s1),
            ratio(t1, s1),
            ms(t4),
            ms(s4),
            ratio(t4, s4)
        ),
        pass: true,
    })
}

/// The most a host may cost the recipe in a dry run of 1000 hosts, as a ratio to what it
/// costs in one of 100: near 1 where the recipe's work grows with the fleet, 10 where it grows
/// with its square.
const RECIPE_SCALE_TARGET: f64 = 1.5;

/// The recipe's own cost at scale: `tether -n deploy` of the stdlib's release flow (copy
/// strategy: nothing to clone) for `small` and for `large` hosts, each declared in the recipe
/// and given its own address by a generated ssh config (a dry run connects to none); wall
/// time per host, medians of `runs` runs after one warm-up. The recipe runs every host's
/// closures and the stdlib's lists of hosts: what grows with the square of the fleet shows
/// in the ratio of the two.
fn recipe_scale(runs: usize) -> Res<Row> {
    let (small, large) = (100, 1000);
    println!();
    println!(
        "-- recipe at scale: `tether -n deploy` (stdlib, copy strategy) of {small} and of \
         {large} hosts, time per host; {runs} runs each after one warm-up"
    );
    let dir = std::env::temp_dir().join(format!("tether-bench-recipe.{}", std::process::id()));
    let made = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir.join("site"))?;
        std::fs::write(dir.join("site/index.html"), "<title>bench</title>\n")?;
        let mut config = String::new();
        for i in 1..=large {
            config += &format!(
                "Host web{i}\n  HostName 10.9.{}.{}\n\n",
                i / 250,
                i % 250 + 1
            );
        }
        std::fs::write(dir.join("ssh_config"), config)?;
        for n in [small, large] {
            let mut recipe = String::from(
                "import \"deploy\" as deploy;\nset(\"application\", \"site\");\n\
                 set(\"deploy_to\", \"/srv/site\");\nset(\"strategy\", \"copy\");\n\
                 set(\"copy_source\", \"site\");\nset(\"linked_dirs\", [\"logs\"]);\n",
            );
            for i in 1..=n {
                recipe += &format!("server(\"web{i}\", #{{ roles: [\"web\"] }});\n");
            }
            std::fs::write(dir.join(format!("deploy{n}.rhai")), recipe)?;
        }
        Ok(())
    })();
    let dry_run = |n: usize| -> Res<Duration> {
        let t = Instant::now();
        let out = Command::new(TETHER_BIN)
            .current_dir(&dir)
            .args([
                "-f",
                &format!("deploy{n}.rhai"),
                "-F",
                "ssh_config",
                "-n",
                "deploy",
            ])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{TETHER_BIN}: {e}"))?;
        let took = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "tether -n deploy of {n} hosts failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    };
    let measured = made
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|()| {
            let mut per_host = Vec::new();
            for n in [small, large] {
                dry_run(n)?;
                let times = (0..runs).map(|_| dry_run(n)).collect::<Res<Vec<_>>>()?;
                let took = median(&times);
                println!(
                    "{n} hosts: {:.2} s, {:.2} ms per host (median)",
                    took.as_secs_f64(),
                    ms(took) / n as f64
                );
                per_host.push(took.as_secs_f64() / n as f64);
            }
            Ok(per_host)
        });
    let _ = std::fs::remove_dir_all(&dir);
    let per_host = measured?;
    let ratio = per_host[1] / per_host[0].max(1e-9);
    let pass = ratio <= RECIPE_SCALE_TARGET;
    Ok(Row {
        line: format!(
            "recipe dry run         {:.2} ms per host at {large}, {:.2} ms at {small}: ratio \
             {ratio:.2}  (target <= {RECIPE_SCALE_TARGET})  {}",
            per_host[1] * 1e3,
            per_host[0] * 1e3,
            verdict(pass)
        ),
        pass,
    })
}

/// What one idle process measured.
struct Idle {
    row: Row,
    hosts: usize,
    connect_ms: f64,
    /// This process's CPU time while connecting.
    connect_cpu_ms: f64,
    cpu_pct: f64,
    rss_per_kib: f64,
    /// Heartbeats that ran `true` in the window.
    commands: u64,
    /// Sessions lost and connected again in the window.
    reconnects: u64,
}

/// Runs this binary's `idle` (or, with `connect_only`, `idle --connect-only`), or `sub` when
/// given (`raw-connect`), for `n` sessions `PREFIX1..`, its lines printed but for the `result`
/// ones, which it returns in its whole output.
fn child(
    config: &Path,
    prefix: &str,
    n: usize,
    secs: u64,
    connect_only: bool,
    sub: Option<&str>,
) -> Res<String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Command::new(exe);
    c.arg(sub.unwrap_or("idle"))
        .arg("--config")
        .arg(config)
        .args(["--hosts", &n.to_string(), "--seconds", &secs.to_string()])
        .args(["--prefix", prefix]);
    if connect_only {
        c.arg("--connect-only");
    }
    let out = c
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("idle process: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("idle process failed ({}):\n{text}", out.status));
    }
    for l in text.lines().filter(|l| !l.starts_with("result ")) {
        println!("{l}");
    }
    Ok(text)
}

/// The value of `result KEY=VALUE` in a child's output.
fn result(text: &str, key: &str) -> Res<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("result "))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .ok_or(format!("idle process printed no {key}:\n{text}"))
}

/// 6. Connecting, then idle cost, each measured in a fresh process (so that its "before"
///    RSS is a clean baseline).
fn idle_child(config: &Path, prefix: &str, n: usize, secs: u64) -> Res<Idle> {
    println!();
    println!(
        "-- connect {n} sessions: a fresh process (this binary, `idle --connect-only`) opens {n} \
         sessions through one Pool with the heartbeat off, so that nothing but the handshakes \
         runs (no heartbeat reads the servers' limits while others still connect)"
    );
    let text = child(config, prefix, n, 0, true, None)?;
    let (connect_ms, connect_cpu_ms) = (
        result(&text, "connect_ms")?,
        result(&text, "connect_cpu_ms")?,
    );
    println!();
    println!(
        "-- idle {n} sessions: a fresh process (this binary, `idle`) opens {n} sessions through \
         one Pool (default settings: heartbeat {}s, {}s on hosts kept by keepalives), then \
         sleeps {secs} s; CPU time is \
         getrusage(RUSAGE_SELF) user+sys of the whole process from {} ms after the last session \
         connected, RSS is VmRSS from /proc/self/status before connecting vs after the window",
        DEFAULT_HEARTBEAT.as_secs(),
        KEEPALIVE_DEFAULT.as_secs(),
        SETTLE.as_millis()
    );
    let text = child(config, prefix, n, secs, false, None)?;
    let get = |k: &str| result(&text, k);
    let cpu_pct = get("cpu_percent")?;
    let rss_per = get("rss_kib_per_session")?;
    let hb = get("heartbeats")? as u64;
    let timed = get("timed_heartbeats")? as u64;
    let hb_hosts = get("hosts_with_heartbeat")? as usize;
    // Issue 17: an idle session is kept, never lost and connected again.
    let reconnects = get("reconnects")? as u64;
    // The lab's servers set no `UnusedConnectionTimeout`: keepalives keep them.
    let per_host = secs / KEEPALIVE_DEFAULT.as_secs();
    // Every host owes floor(window / interval) heartbeats on the interval; allow a tenth to
    // fall just outside the window (each heartbeat shifts the next by its round trip).
    let hb_expected = per_host * n as u64;
    let hb_ok = timed * 10 >= hb_expected * 9 && hb_hosts == n;
    let cpu_ok = cpu_pct < IDLE_CPU_TARGET_PERCENT;
    let pass = hb_ok && cpu_ok && reconnects == 0;
    let row = Row {
        line: format!(
            "idle {n} sessions  connect {:.2} s (heartbeat off)  CPU {cpu_pct:.2} % of one core over {secs} s (target < \
             {IDLE_CPU_TARGET_PERCENT} %)  RSS {:.2} MiB/session  heartbeats {hb} ({timed} \
             on the interval, expect ~{hb_expected}; {hb_hosts}/{n} hosts)  reconnects \
             {reconnects} (target 0)  {}",
            connect_ms / 1000.0,
            rss_per / 1024.0,
            verdict(pass)
        ),
        pass,
    };
    Ok(Idle {
        row,
        hosts: n,
        connect_ms,
        connect_cpu_ms,
        cpu_pct,
        rss_per_kib: rss_per,
        commands: get("heartbeat_commands")? as u64,
        reconnects,
    })
}

/// Issue 17's goals for 1000 sessions.
const SCALE_CONNECT_GOAL: Duration = Duration::from_secs(8);
const SCALE_CPU_GOAL_PERCENT: f64 = 0.5;
const SCALE_RSS_GOAL_KIB: f64 = 0.2 * 1024.0;

/// `n` idle sessions as aliases spread over the lab's listeners, against the 100-session
/// process `base` of the same invocation.
fn scale(lab: &Path, n: usize, secs: u64, base: &Idle) -> Res<Row> {
    let config = alias_config(lab, n)?;
    println!();
    println!("-- scale: {n} sessions as aliases s1..s{n} over the lab's listeners");
    let it = idle_child(&config, "s", n, secs)?;
    println!();
    println!(
        "-- the floor of connecting {n} sessions: a fresh process (this binary, `raw-connect`) \
         opens them through the ssh2 crate alone, as many at once as tether's handshake limiter \
         allows on this machine"
    );
    let floor_ms = result(
        &child(&config, "s", n, 0, false, Some("raw-connect"))?,
        "connect_ms",
    )?;
    let per = |v: f64, count: usize| v / count as f64;
    let cpu_ratio = per(it.cpu_pct, n) / per(base.cpu_pct, base.hosts).max(f64::EPSILON);
    let connect_ratio = per(it.connect_ms, n) / per(base.connect_ms, base.hosts).max(f64::EPSILON);
    let rss_ratio = it.rss_per_kib / base.rss_per_kib.max(1.0);
    let goals = n > 1000
        || (Duration::from_secs_f64(it.connect_ms / 1000.0) < SCALE_CONNECT_GOAL
            && it.cpu_pct < SCALE_CPU_GOAL_PERCENT
            && it.rss_per_kib < SCALE_RSS_GOAL_KIB);
    let pass = it.row.pass && goals;
    Ok(Row {
        line: format!(
            "scale {n} sessions  connect {:.2} s, heartbeat off ({:.2}x the raw ssh2 floor of {:.2} s, \
             {connect_ratio:.2}x the 100-session row per session), client CPU {:.2} ms/session  idle CPU {:.3} % ({cpu_ratio:.2}x per \
             session)  RSS {:.0} KiB/session ({rss_ratio:.2}x)  `true` heartbeats {}  reconnects {}{}  {}",
            it.connect_ms / 1000.0,
            it.connect_ms / floor_ms.max(f64::EPSILON),
            floor_ms / 1000.0,
            it.connect_cpu_ms / n as f64,
            it.cpu_pct,
            it.rss_per_kib,
            it.commands,
            it.reconnects,
            if n <= 1000 {
                format!(
                    "  (goals at 1000: < {} s, < {SCALE_CPU_GOAL_PERCENT} %, < {SCALE_RSS_GOAL_KIB:.0} KiB)",
                    SCALE_CONNECT_GOAL.as_secs()
                )
            } else {
                String::new()
            },
            verdict(pass)
        ),
        pass,
    })
}

/// An ssh config with aliases `s1..sN`, alias `i` reaching lab host `(i - 1) % H + 1` with that
/// host's options (its known_hosts entry is keyed by address and port, so it matches).
fn alias_config(lab: &Path, n: usize) -> Res<PathBuf> {
    let text = std::fs::read_to_string(lab.join("ssh_config")).map_err(|e| e.to_string())?;
    let mut bodies: Vec<String> = Vec::new();
    for block in text.split("\nHost ").skip(1) {
        let body: Vec<&str> = block
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        bodies.push(body.join("\n"));
    }
    if bodies.is_empty() {
        return Err(format!(
            "no Host blocks in {}",
            lab.join("ssh_config").display()
        ));
    }
    let mut out = String::new();
    for i in 1..=n {
        out.push_str(&format!(
            "Host s{i}\n{}\n\n",
            bodies[(i - 1) % bodies.len()]
        ));
    }
    let path = lab.join(format!("scale-{n}.ssh_config"));
    std::fs::write(&path, out).map_err(|e| e.to_string())?;
    Ok(path)
}

// ------------------------------------------------------------------ idle

/// Busy CPU time of the whole machine since boot (all cores: user, nice, system, irq, softirq,
/// steal from /proc/stat), or `None` when it cannot be read.
fn machine_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum::<u64>();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_millis(busy * 1000 / hz))
}

/// Where connecting `n` sessions went: how long the handshakes took (TCP + KEX + auth, the
/// `connected` event's setup time) against the wall time, so the rest is waiting (for the
/// handshake limiter, for a CPU); what this process and the whole machine spent; and which
/// heartbeats ran meanwhile (each a round trip, a limit read forks a few processes on the
/// server).
fn connect_phases(
    events: &[Event],
    t0: Instant,
    ensured: Duration,
    took: Duration,
    client_cpu: Duration,
    machine: Option<Duration>,
) {
    let mut setups = Vec::new();
    let mut at = Vec::new();
    let (mut command, mut limits, mut channel, mut keepalive) = (0, 0, 0, 0);
    for ev in events {
        match &ev.kind {
            EventKind::Connected { setup } => {
                setups.push(*setup);
                at.push(ev.at.saturating_duration_since(t0));
            }
            EventKind::Heartbeat { beat, .. } => match beat {
                tether::event::Beat::Command => command += 1,
                tether::event::Beat::Limits => limits += 1,
                tether::event::Beat::Channel => channel += 1,
                tether::event::Beat::Keepalive => keepalive += 1,
            },
            _ => {}
        }
    }
    let n = setups.len().max(1);
    let in_flight: Duration = setups.iter().sum();
    println!(
        "connect phases: Pool::ensure (config + threads) {:.0} ms; first session {:.0} ms, \
         half {:.0} ms, last {:.0} ms; handshake (TCP+KEX+auth) median {:.1} ms, p90 {:.1}, max \
         {:.1}; on average {:.1} handshakes in flight",
        ms(ensured),
        ms(at.iter().min().copied().unwrap_or_default()),
        ms(percentile(&at, 0.5)),
        ms(took),
        ms(median(&setups)),
        ms(percentile(&setups, 0.9)),
        ms(setups.iter().max().copied().unwrap_or_default()),
        in_flight.as_secs_f64() / took.as_secs_f64().max(1e-9)
    );
    let machine_text = match machine {
        Some(m) => format!(
            "the whole machine {:.0} ms ({:.2} ms per session, {:.0} % of its cores' time; \
             the sshds, the shells they start, and whatever else runs)",
            ms(m),
            ms(m) / n as f64,
            m.as_secs_f64()
                / (took.as_secs_f64()
                    * std::thread::available_parallelism().map_or(1, |c| c.get()) as f64)
                * 100.0
        ),
        None => "the whole machine: /proc/stat unreadable".into(),
    };
    println!(
        "connect CPU: this process {:.0} ms ({:.2} ms per session), {machine_text}",
        ms(client_cpu),
        ms(client_cpu) / n as f64
    );
    println!(
        "heartbeats while connecting: {command} ran `true`, {limits} read the server's limits, \
         {channel} bare channels, {keepalive} protocol keepalives"
    );
    println!("result connect_cpu_ms={:.1}", ms(client_cpu));
}

/// The floor of connecting: `o.hosts` sessions `PREFIX1..` through the ssh2 crate alone (no
/// config beyond HostName, Port, User and IdentityFile, no host key check), from as many
/// threads as tether's handshake limiter lets run at once on this machine, each session kept
/// open until the last connected. Prints the wall time and the whole machine's CPU, and
/// `result connect_ms=`.
fn run_raw_connect(o: &Options) -> Res<()> {
    tether::fd_limit::raise();
    let config =
        SshConfig::load(Some(&o.config), Path::new(SYSTEM_CONFIG)).map_err(|e| e.to_string())?;
    let names = host_names(&o.prefix, o.hosts);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = (tether::ssh::limiter::PER_CORE * cores)
        .min(names.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let machine0 = machine_cpu();
    let t0 = Instant::now();
    let kept: Vec<Res<Vec<Raw>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else {
                            return Ok(mine);
                        };
                        mine.push(raw_session(&config, name)?);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a connecting thread panicked".into()))
            })
            .collect()
    });
    let took = t0.elapsed();
    let machine = machine_cpu()
        .zip(machine0)
        .map(|(b, a)| b.saturating_sub(a));
    let sessions: usize = kept
        .into_iter()
        .map(|k| k.map(|v| v.len()))
        .collect::<Res<Vec<_>>>()?
        .into_iter()
        .sum();
    println!(
        "raw ssh2: connected {sessions} sessions in {:.0} ms from {threads} threads; the whole \
         machine {}",
        ms(took),
        machine.map_or("unreadable".into(), |m| format!(
            "{:.0} ms ({:.2} ms per session)",
            ms(m),
            ms(m) / sessions.max(1) as f64
        ))
    );
    println!("result connect_ms={:.1}", ms(took));
    Ok(())
}

/// Pause between the last session connecting and the start of the idle window.
const SETTLE: Duration = Duration::from_millis(READ_LIMITS_AFTER.as_millis() as u64 + 500);

fn run_idle(o: &Options) -> Res<()> {
    let n = o.hosts;
    tether::fd_limit::raise();
    let window = Duration::from_secs(o.seconds);
    let names = host_names(&o.prefix, n);
    let hosts = targets(&names)?;
    let settings = match o.connect_only {
        // Nothing but the handshakes: no heartbeat reads limits on the servers meanwhile.
        true => WorkerSettings {
            heartbeat: None,
            ..WorkerSettings::default()
        },
        // As a run that asked for no interval.
        false => WorkerSettings::with_heartbeat(Heartbeat {
            every: Some(DEFAULT_HEARTBEAT),
            default: true,
        }),
    };
    let (pool, rx) = new_pool_with(&o.config, settings)?;
    let rss_before = vm_rss_kib()?;
    let threads_before = threads();
    let (cpu_c0, machine0) = (process_cpu(), machine_cpu());
    let t_connect = Instant::now();
    pool.ensure(&hosts);
    let ensured = t_connect.elapsed();
    let early = wait_connected(&rx, n, Duration::from_secs(60 + n as u64 / 20))?;
    let connect_took = t_connect.elapsed();
    let (cpu_c1, machine1) = (process_cpu(), machine_cpu());
    let rss_connected = vm_rss_kib()?;
    connect_phases(
        &early,
        t_connect,
        ensured,
        connect_took,
        cpu_c1 - cpu_c0,
        machine1.zip(machine0).map(|(b, a)| b.saturating_sub(a)),
    );
    if o.connect_only {
        println!(
            "connected {n} sessions in {:.0} ms, heartbeat off (at most {} handshakes at once to \
             one server)",
            ms(connect_took),
            tether::ssh::limiter::PER_SERVER
        );
        println!("result connect_ms={:.1}", ms(connect_took));
        return Ok(());
    }
    // The heartbeats that read the limits belong to connecting: the window starts a moment
    // after the last session connected.
    std::thread::sleep(SETTLE);

    let t0 = Instant::now();
    let cpu0 = process_cpu();
    std::thread::sleep(window);
    let cpu1 = process_cpu();
    let t1 = Instant::now();
    let rss_after = vm_rss_kib()?;
    let threads_after = threads();

    let mut per_host: HashMap<Arc<str>, u64> = HashMap::new();
    let mut rtts = Vec::new();
    let (mut probes, mut other, mut before) = (0u64, Vec::new(), 0u64);
    let (mut commands, mut reads, mut channels) = (0u64, 0u64, 0u64);
    let mut reconnects = 0u64;
    for ev in early.into_iter().chain(rx.try_iter()) {
        if ev.at < t0 {
            before += u64::from(matches!(ev.kind, EventKind::Heartbeat { .. }));
            continue;
        }
        if ev.at > t1 {
            continue;
        }
        match ev.kind {
            EventKind::Heartbeat { rtt, probe, beat } => {
                *per_host.entry(ev.host).or_default() += 1;
                rtts.push(rtt);
                probes += u64::from(probe);
                commands += u64::from(beat == tether::event::Beat::Command);
                reads += u64::from(beat == tether::event::Beat::Limits);
                channels += u64::from(beat == tether::event::Beat::Channel);
            }
            kind => {
                reconnects += u64::from(matches!(
                    kind,
                    EventKind::Reconnected { .. } | EventKind::SessionLost { .. }
                ));
                other.push(format!("{}: {kind:?}", ev.host))
            }
        }
    }
    drop(pool);

    let heartbeats: u64 = per_host.values().sum();
    let cpu = cpu1 - cpu0;
    let wall = t1 - t0;
    let cpu_percent = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    let rss_per = rss_after.saturating_sub(rss_before) as f64 / n as f64;
    println!(
        "connected {n} sessions in {:.0} ms (at most {} handshakes at once to one server); \
         threads {threads_before} -> {threads_after}",
        ms(connect_took),
        tether::ssh::limiter::PER_SERVER
    );
    println!(
        "CPU {:.1} ms over {:.1} s wall = {cpu_percent:.3} % of one core",
        ms(cpu),
        wall.as_secs_f64()
    );
    println!(
        "VmRSS {rss_before} KiB before connecting, {rss_connected} KiB after connecting, \
         {rss_after} KiB after the window: {rss_per:.0} KiB per session"
    );
    let (lo, hi) = (
        per_host.values().min().copied().unwrap_or(0),
        per_host.values().max().copied().unwrap_or(0),
    );
    println!(
        "heartbeats in the window: {heartbeats} ({lo}..{hi} per host; {} on the interval, \
         {probes} woken by server traffic), round trip median {:.2} ms",
        heartbeats - probes,
        ms(median(&rtts))
    );
    println!(
        "of those, {reads} read the server's limits (two commands each), {commands} ran \
         `true` and {channels} opened a bare channel; the rest were protocol keepalives (no \
         channel, no process forked on the server)"
    );
    println!(
        "heartbeats before the window: {before} (the first of each session reads its server's \
         limits a second after login; the window starts {} ms after the last session \
         connected)",
        SETTLE.as_millis()
    );
    if !other.is_empty() {
        println!("other events in the window ({}):", other.len());
        for l in other.iter().take(10) {
            println!("  {l}");
        }
    }
    println!("result cpu_percent={cpu_percent:.4}");
    println!("result rss_kib_per_session={rss_per:.1}");
    println!("result connect_ms={:.1}", ms(connect_took));
    println!("result heartbeats={heartbeats}");
    println!("result heartbeat_commands={commands}");
    println!("result timed_heartbeats={}", heartbeats - probes);
    println!("result hosts_with_heartbeat={}", per_host.len());
    println!("result reconnects={reconnects}");
    Ok(())
}
