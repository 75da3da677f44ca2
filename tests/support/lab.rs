//! A lab of real OpenSSH sshd servers on 127.0.0.1 for integration tests,
//! started with `scripts/lab up` (see that script for how hosts are built).
//!
//! ```ignore
//! mod support;
//! use support::lab::Lab;
//!
//! let lab = Lab::builder().names(&["web1", "web2"]).profile("clientalive").start();
//! let out = lab.ssh("web1").arg("echo hi").output().unwrap();
//! assert_eq!(lab.accepted_logins("web1"), 1);
//! // dropping `lab` kills every process of every host and removes its dir
//! ```
//!
//! Every host is one `sshd -D -e` listener (user root, key auth only) with its
//! own port, host key, log (`LogLevel VERBOSE`) and its own `/srv`: the
//! listener runs in a private mount namespace with `<lab>/hosts/NAME/srv`
//! bind-mounted over `/srv`.  `$HOME` of remote commands is
//! `<lab>/hosts/NAME/home` (empty, so root's slow `~/.bashrc` is not run);
//! their working directory is still `/root`, the real one: use absolute
//! paths under `/srv` in tests.
//!
//! The processes of a host (listener, per-connection sshd, remote commands,
//! even daemonised ones) are found by that mount namespace, so `Drop` and
//! `stop_host` leave nothing behind.  The lab is also started with
//! `--owner-pid <this test process>`: if the test binary dies without running
//! `Drop` (SIGKILL, Ctrl-C), a watcher stops the lab within a second, and the
//! next `Lab` started on this machine removes the stale directory.
//!
//! Needs root, `/usr/sbin/sshd`, `ssh-keygen`, `unshare`, `ss`; `nsenter` to hide or replace a
//! host's programs in its mount namespace (see [`Lab::hide_programs`]).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::thread::sleep;
use std::time::{Duration, Instant};

const SIGKILL: i32 = 9;
const SIGHUP: i32 = 1;
const SIGSTOP: i32 = 19;
const DIR_PREFIX: &str = "tether-lab-";

// std already links the C library; no `libc` crate needed for one call.
extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn send_signal(pid: u32, sig: i32) {
    if pid > 1 && pid <= i32::MAX as u32 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            kill(pid as i32, sig);
        }
    }
}

/// One sshd host of a [`Lab`], as recorded in `<lab>/hosts.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabHost {
    /// Host name, usable as `ssh -F <lab.ssh_config()> NAME`.
    pub name: String,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// pid of the sshd listener.
    pub pid: u32,
    /// The directory this host sees as `/srv`.
    pub root_dir: PathBuf,
    /// sshd's log (`-e`, `LogLevel VERBOSE`).
    pub log: PathBuf,
    /// `$HOME` of remote commands on this host (empty at start).
    pub home: PathBuf,
    /// `$TMPDIR` of remote commands on this host (where tether's supervisor keeps its files).
    pub tmp: PathBuf,
    /// This host's `sshd_config`.
    pub sshd_config: PathBuf,
}

/// Options for [`Lab`]; from [`Lab::builder`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    names: Vec<String>,
    profile: String,
}

impl LabBuilder {
    /// Host names (default: `host1`, `host2`).
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// `n` hosts named `host1..hostN`.
    pub fn count(mut self, n: usize) -> Self {
        self.names = (1..=n).map(|i| format!("host{i}")).collect();
        self
    }

    /// sshd profile: `default`, `clientalive` (ClientAliveInterval 1,
    /// CountMax 2: an unserviced connection dies after about 6 s), `unused`
    /// (UnusedConnectionTimeout 3), `channeltimeout` (ChannelTimeout
    /// session:*=3s), `strict` (clientalive + unused).
    pub fn profile(mut self, profile: &str) -> Self {
        self.profile = profile.to_string();
        self
    }

    /// Starts the lab; returns once every host accepts connections.
    /// Panics (with the script's stderr) if it cannot.
    pub fn start(self) -> Lab {
        assert!(!self.names.is_empty(), "a lab needs at least one host");
        sweep_stale_labs();
        let dir = new_lab_dir();
        let script = script_path();
        let result = Command::new(&script)
            .arg("up")
            .arg("--dir")
            .arg(&dir)
            .arg("--names")
            .arg(self.names.join(","))
            .arg("--profile")
            .arg(&self.profile)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output();
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("cannot run {}: {e}", script.display());
            }
        };
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dir);
            panic!(
                "{} up failed ({}):\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let hosts = match read_hosts_tsv(&dir) {
            Ok(hosts) => hosts,
            Err(e) => {
                kill_lab_processes(&dir, &[]);
                let _ = fs::remove_dir_all(&dir);
                panic!("bad {}/hosts.tsv: {e}", dir.display());
            }
        };
        Lab { dir, hosts }
    }
}

/// A running lab of sshd hosts; dropping it kills them and removes its dir.
#[derive(Debug)]
pub struct Lab {
    dir: PathBuf,
    hosts: Vec<LabHost>,
}

impl Lab {
    /// Default options: 2 hosts (`host1`, `host2`), profile `default`.
    pub fn builder() -> LabBuilder {
        LabBuilder {
            names: vec!["host1".into(), "host2".into()],
            profile: "default".into(),
        }
    }

    /// `n` hosts named `host1..hostN`, profile `default`.
    pub fn start(n: usize) -> Lab {
        Lab::builder().count(n).start()
    }

    /// The lab's directory (a fresh temp dir, removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ssh_config` with one `Host NAME` block per host.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// Writes `file` in the lab's directory: `prefix` (`Host` blocks of a test's own, or lines
    /// that must win over the lab's: first obtained wins) followed by the lab's config; its path.
    pub fn config_with(&self, file: &str, prefix: &str) -> PathBuf {
        let path = self.dir.join(file);
        let lab = std::fs::read_to_string(self.ssh_config()).unwrap();
        std::fs::write(&path, format!("{prefix}{lab}")).unwrap();
        path
    }

    /// `known_hosts` with one `[127.0.0.1]:PORT ssh-ed25519 ...` line per host.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The ed25519 client key (no passphrase) every host accepts for root.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The supervisor's private directory on that host (`$TMPDIR/tether-USER`), once a
    /// supervised command made it.
    pub fn private_dir(&self, name: &str) -> PathBuf {
        fs::read_dir(&self.host(name).tmp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("tether-")
            })
            .expect("the supervisor's directory")
    }

    /// Panics if there is no such host.
    pub fn host(&self, name: &str) -> &LabHost {
        match self.hosts.iter().find(|h| h.name == name) {
            Some(h) => h,
            None => panic!(
                "no host {name:?} in the lab (hosts: {:?})",
                self.hosts.iter().map(|h| &h.name).collect::<Vec<_>>()
            ),
        }
    }

    /// `ssh -F <ssh_config> -o BatchMode=yes NAME`: add the command with `.arg()`.
    pub fn ssh(&self, name: &str) -> Command {
        let host = self.host(name);
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(self.ssh_config())
            .args(["-o", "BatchMode=yes"])
            .arg(&host.name);
        cmd
    }

    /// Number of successful logins so far on that host
    /// ("Accepted publickey for" lines in its log).
    pub fn accepted_logins(&self, name: &str) -> usize {
        let log = fs::read(&self.host(name).log).unwrap_or_default();
        String::from_utf8_lossy(&log)
            .matches("Accepted publickey for ")
            .count()
    }

    /// Number of commands sshd started on that host so far ("Starting session: command" lines
    /// in its log, which LogLevel VERBOSE writes for every exec request).
    pub fn started_commands(&self, name: &str) -> usize {
        let log = fs::read(&self.host(name).log).unwrap_or_default();
        String::from_utf8_lossy(&log)
            .matches("Starting session: command ")
            .count()
    }

    /// pids of the per-connection sshd processes of that host (the listener's
    /// live children; one per TCP connection, authenticated or not).
    pub fn connection_pids(&self, name: &str) -> Vec<u32> {
        let host = self.host(name);
        host_pids(&host.root_dir)
            .into_iter()
            .filter(|&pid| {
                pid != host.pid
                    && proc_stat(pid).is_some_and(|s| s.ppid == host.pid && s.state != 'Z')
            })
            .collect()
    }

    /// Every live process of that host: listener, connections, remote
    /// commands (also those whose connection is gone).
    pub fn host_pids(&self, name: &str) -> Vec<u32> {
        host_pids(&self.host(name).root_dir)
            .into_iter()
            .filter(|&pid| pid_alive(pid))
            .collect()
    }

    /// The live processes of that host whose command line (its arguments joined by spaces)
    /// `matches`. A test finds the command it left on a host by this, never by a machine-wide
    /// `pgrep`/`pkill`, which also reaches the same command of another test running beside it
    /// (a deploy test's `pkill -f '^sleep 30$'` ended a jump test's `sleep 30` with SIGTERM,
    /// exit 143, in the project's CI).
    pub fn processes_where(&self, name: &str, matches: impl Fn(&str) -> bool) -> Vec<u32> {
        self.host_pids(name)
            .into_iter()
            .filter(|&pid| self::cmdline(pid).is_some_and(|c| matches(c.trim_end())))
            .collect()
    }

    /// Sends `signal` to each process of that host whose command line is `cmdline` exactly
    /// (see [`Lab::processes_where`]).
    pub fn signal_processes(&self, name: &str, cmdline: &str, signal: i32) {
        for pid in self.processes_where(name, |c| c == cmdline) {
            send_signal(pid, signal);
        }
    }

    /// SIGKILLs the per-connection sshd processes of that host, as if the
    /// connections had been cut: clients see them close.  Remote commands
    /// they started keep running (as after a real disconnect) until `Drop`
    /// or `stop_host`.  The listener keeps accepting new connections.
    /// Returns once the killed processes are gone.
    pub fn kill_connections(&self, name: &str) {
        let pids = self.connection_pids(name);
        for &pid in &pids {
            send_signal(pid, SIGKILL);
        }
        wait_dead(&pids, Duration::from_secs(3));
    }

    /// SIGKILLs every process of that host but its listener: the connections and every
    /// remote command they started, as if the host had lost them (an OOM kill, a reboot of
    /// the session); nothing remote gets to clean up. New connections are accepted.
    /// Returns once they are gone.
    pub fn kill_sessions(&self, name: &str) {
        let listener = self.host(name).pid;
        let pids: Vec<u32> = self
            .host_pids(name)
            .into_iter()
            .filter(|&pid| pid != listener)
            .collect();
        // Frozen first, so that no shell sees its connection go and cleans up.
        for &pid in &pids {
            send_signal(pid, SIGSTOP);
        }
        for &pid in &pids {
            send_signal(pid, SIGKILL);
        }
        wait_dead(&pids, Duration::from_secs(3));
    }

    /// SIGKILLs every process of that host (listener first), as if the host
    /// had crashed: connections close, new ones are refused.
    /// Returns once they are gone.
    pub fn stop_host(&self, name: &str) {
        let host = self.host(name).clone();
        kill_host(&host);
    }

    /// Sets environment variables of that host's commands (sshd's `SetEnv`, which takes its
    /// first line only: the lab's, which sets `TMPDIR` and `HOME`), replacing one the
    /// line sets already; returns once the listener has re-read its config.
    pub fn set_env(&self, name: &str, vars: &[(&str, &str)]) {
        let config = self.host(name).sshd_config.clone();
        let text = fs::read_to_string(&config).expect("sshd_config");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let line = lines
            .iter_mut()
            .find(|l| l.starts_with("SetEnv "))
            .expect("the lab's SetEnv line");
        let mut words: Vec<String> = line["SetEnv ".len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for (key, value) in vars {
            words.retain(|w| !w.starts_with(&format!("{key}=")));
            words.insert(0, format!("{key}={value}"));
        }
        *line = format!("SetEnv {}", words.join(" "));
        fs::write(&config, lines.join("\n") + "\n").expect("write sshd_config");
        self.reconfigure(name, "");
    }

    /// Gives that host's commands a `PATH` with every program of /usr/bin but bash (a
    /// directory of symbolic links in the lab's), as on a host without bash.
    pub fn without_bash(&self, name: &str) {
        self.without_programs(name, &["bash", "rbash"]);
    }

    /// Hides `programs` from that host's processes: `/dev/null` (not an executable file) is
    /// bind-mounted over `/usr/bin/P` and `/bin/P` in the host's own mount namespace (its
    /// listener's, which every session's processes share), as on a host without them; until
    /// [`Lab::show_programs`].
    pub fn hide_programs(&self, name: &str, programs: &[&str]) {
        for path in program_paths(programs) {
            self.in_host_namespace(name, &["mount", "--bind", "/dev/null", &path]);
        }
    }

    /// Replaces `program` for that host's processes (as [`Lab::hide_programs`] hides it) by
    /// an sh script of `body`, in which `$REAL` is a copy of the real program (a failing,
    /// slow or silent `dd`, `cat`, `sleep` of the host's own, found wherever the host looks
    /// for it); until [`Lab::show_programs`].
    pub fn replace_program(&self, name: &str, program: &str, body: &str) {
        let dir = self.dir().join("hosts").join(name);
        let real = dir.join(format!("real-{program}"));
        if !real.exists() {
            fs::copy(format!("/usr/bin/{program}"), &real).expect("copy the real program");
        }
        let fake = dir.join(format!("fake-{program}"));
        fs::write(
            &fake,
            format!("#!/bin/sh\nREAL={}\n{body}\n", real.display()),
        )
        .expect("write the replacement");
        fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the replacement");
        let fake = fake.to_str().expect("utf-8 lab path").to_string();
        for path in program_paths(&[program]) {
            self.in_host_namespace(name, &["mount", "--bind", &fake, &path]);
        }
    }

    /// Undoes [`Lab::hide_programs`] for `programs`.
    pub fn show_programs(&self, name: &str, programs: &[&str]) {
        for path in program_paths(programs) {
            self.in_host_namespace(name, &["umount", &path]);
        }
    }

    /// Runs `command` in that host's mount namespace (`nsenter`: a mount there is the host's
    /// alone); panics where it fails.
    pub fn in_host_namespace(&self, name: &str, command: &[&str]) {
        let out = Command::new("nsenter")
            .arg("-t")
            .arg(self.host(name).pid.to_string())
            .arg("-m")
            .args(command)
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{command:?} in {name}'s mount namespace: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Gives that host's commands a `PATH` with every program of /usr/bin but `programs` (a
    /// directory of symbolic links in the lab's, one per set), as on a host without them.
    pub fn without_programs(&self, name: &str, programs: &[&str]) {
        let path = self
            .dir()
            .join(format!("path-without-{}", programs.join("-")));
        if !path.exists() {
            fs::create_dir_all(&path).expect("path-without");
            for entry in fs::read_dir("/usr/bin").expect("/usr/bin") {
                let entry = entry.expect("/usr/bin entry");
                if !programs.iter().any(|p| entry.file_name() == **p) {
                    std::os::unix::fs::symlink(entry.path(), path.join(entry.file_name()))
                        .expect("symlink");
                }
            }
        }
        self.set_env(name, &[("PATH", path.to_str().expect("utf-8 lab path"))]);
    }

    /// Appends `lines` to that host's sshd_config and makes its listener re-read it (SIGHUP:
    /// sshd re-executes itself, same pid); returns once it accepts connections again.
    pub fn reconfigure(&self, name: &str, lines: &str) {
        let host = self.host(name);
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&host.sshd_config)
            .expect("sshd_config");
        writeln!(file, "{lines}").expect("append to sshd_config");
        let before = fs::read(&host.log).map(|l| l.len()).unwrap_or(0);
        send_signal(host.pid, SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = fs::read(&host.log).unwrap_or_default();
            let restarted = log.len() > before
                && String::from_utf8_lossy(&log[before..]).contains("Server listening");
            if restarted && std::net::TcpStream::connect(("127.0.0.1", host.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sshd of {name} did not restart:\n{}",
                String::from_utf8_lossy(&log[before.min(log.len())..])
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// Whether that host's listener is running.
    pub fn is_up(&self, name: &str) -> bool {
        let host = self.host(name);
        is_listener(host.pid, &host.sshd_config)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Must never panic: no unwrap, no indexing, no eprintln!.
        if std::thread::panicking() {
            report_logs(&self.hosts);
        }
        kill_lab_processes(&self.dir, &self.hosts);
        if std::env::var_os("TETHER_LAB_KEEP").is_some() {
            let _ = writeln!(
                std::io::stderr(),
                "TETHER_LAB_KEEP is set: keeping {}",
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ------------------------------------------------------------------ helpers

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("lab")
}

/// A new empty directory `<temp>/tether-lab-<pid>-<n>`, canonical path.
fn new_lab_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return fs::canonicalize(&dir).unwrap_or(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Left by an earlier process that had our pid: clear it.
                kill_lab_processes(&dir, &[]);
                let _ = fs::remove_dir_all(&dir);
            }
            Err(e) => panic!("cannot create lab dir {}: {e}", dir.display()),
        }
    }
}

/// Once per process: remove `<temp>/tether-lab-<pid>-<n>` dirs whose test
/// process is gone (killed before its `Lab`s were dropped).
fn sweep_stale_labs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let base = std::env::temp_dir();
        let Ok(entries) = fs::read_dir(&base) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
                continue;
            };
            let Some(Ok(owner)) = rest.split('-').next().map(str::parse::<u32>) else {
                continue;
            };
            if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            let dir = entry.path();
            if !dir.join(".tether-lab").exists()
                && fs::read_dir(&dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                continue; // not ours
            }
            let hosts = read_hosts_tsv(&dir).unwrap_or_default();
            kill_lab_processes(&dir, &hosts);
            let _ = fs::remove_dir_all(&dir);
        }
    });
}

fn read_hosts_tsv(dir: &Path) -> Result<Vec<LabHost>, String> {
    let path = dir.join("hosts.tsv");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hosts = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            return Err(format!("short line {line:?}"));
        }
        let port = f[1].parse().map_err(|e| format!("port in {line:?}: {e}"))?;
        let pid = f[2].parse().map_err(|e| format!("pid in {line:?}: {e}"))?;
        let name = f[0].to_string();
        let host_dir = dir.join("hosts").join(&name);
        hosts.push(LabHost {
            port,
            pid,
            root_dir: PathBuf::from(f[3]),
            log: PathBuf::from(f[4]),
            home: host_dir.join("home"),
            tmp: host_dir.join("tmp"),
            sshd_config: host_dir.join("sshd_config"),
            name,
        });
    }
    if hosts.is_empty() {
        return Err("no hosts".into());
    }
    Ok(hosts)
}

/// Kills the owner watcher and every process of every host of the lab in
/// `dir` (hosts from `hosts`, or from its hosts.tsv when `hosts` is empty).
fn kill_lab_processes(dir: &Path, hosts: &[LabHost]) {
    if let Some(pid) = watcher_pid(dir) {
        send_signal(pid, SIGKILL);
    }
    let from_file;
    let hosts = if hosts.is_empty() {
        from_file = read_hosts_tsv(dir).unwrap_or_default();
        &from_file[..]
    } else {
        hosts
    };
    for host in hosts {
        kill_host(host);
    }
}

/// The pid of the lab's owner watcher (`scripts/lab __watch DIR ...`), if alive.
fn watcher_pid(dir: &Path) -> Option<u32> {
    let pid = fs::read_to_string(dir.join("watcher.pid"))
        .ok()?
        .trim()
        .parse::<u32>()
        .ok()?;
    let marker = format!("__watch {} ", dir.display());
    (pid_alive(pid) && cmdline(pid)?.contains(&marker)).then_some(pid)
}

/// SIGKILL the listener (if still ours), then everything in the host's mount
/// namespace, until nothing is left (3 s at most).
fn kill_host(host: &LabHost) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut pids = Vec::new();
        if is_listener(host.pid, &host.sshd_config) {
            pids.push(host.pid);
        }
        pids.extend(
            host_pids(&host.root_dir)
                .into_iter()
                .filter(|&p| p != host.pid && pid_alive(p)),
        );
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for &pid in &pids {
            send_signal(pid, SIGKILL);
        }
        wait_dead(&pids, Duration::from_millis(500));
    }
}

fn wait_dead(pids: &[u32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        sleep(Duration::from_millis(10));
    }
}

/// pids of the processes whose mount namespace has `srv` bind-mounted on
/// `/srv` (namespace other than ours; one mountinfo read per namespace).
fn host_pids(srv: &Path) -> Vec<u32> {
    let Some(srv) = srv.to_str() else {
        return Vec::new();
    };
    let self_ns = fs::read_link("/proc/self/ns/mnt").ok();
    let mut matches: HashMap<OsString, bool> = HashMap::new();
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if Some(&ns) == self_ns.as_ref() {
            continue;
        }
        let hit = *matches
            .entry(ns.into_os_string())
            .or_insert_with(|| srv_mounted_from(pid, srv));
        if hit {
            out.push(pid);
        }
    }
    out
}

/// In pid's mount namespace, /srv is a bind mount of `srv`.  mountinfo's
/// 4th field is the source path relative to its filesystem's root: all of
/// `srv` when the lab is on `/`, a suffix of it otherwise.
fn srv_mounted_from(pid: u32, srv: &str) -> bool {
    let Ok(info) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
        return false;
    };
    info.lines().any(|line| {
        let mut f = line.split(' ');
        let (root, mount_point) = (f.nth(3), f.next());
        match (root, mount_point) {
            (Some(root), Some("/srv")) => {
                root.contains("/hosts/") && root.ends_with("/srv") && srv.ends_with(root)
            }
            _ => false,
        }
    })
}

struct ProcStat {
    state: char,
    ppid: u32,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some(ProcStat { state, ppid })
}

/// Exists and is not a zombie (zombies of the lab are reparented to pid 1,
/// which reaps them on its own schedule, up to ~2 s here).
fn pid_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z')
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// The files tether's supervisor left in the private directories under `tmp` (a host's
/// `TMPDIR`), the day's sweep mark (`.swept.DAY`) aside.
pub fn supervisor_files_left(tmp: &Path) -> Vec<String> {
    fs::read_dir(tmp)
        .expect("the host's TMPDIR")
        .flat_map(|d| {
            fs::read_dir(d.expect("an entry").path())
                .into_iter()
                .flatten()
        })
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| !name.starts_with(".swept."))
        .collect()
}

/// `/usr/bin/P` and `/bin/P` for each of `programs`, once each where `/bin` is `/usr/bin`.
fn program_paths(programs: &[&str]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    for program in programs {
        for dir in ["/usr/bin", "/bin"] {
            let path = format!("{dir}/{program}");
            let Ok(real) = fs::canonicalize(&path) else {
                continue;
            };
            if !seen.contains(&real) {
                seen.push(real);
                paths.push(path);
            }
        }
    }
    paths
}

/// `pid` is still our sshd listener: sshd's title is
/// "sshd: /usr/sbin/sshd -D -e -f <sshd_config> [listener] ...".
fn is_listener(pid: u32, sshd_config: &Path) -> bool {
    let needle = format!("-f {} ", sshd_config.display());
    pid_alive(pid)
        && cmdline(pid).is_some_and(|c| c.contains("sshd") && format!("{c} ").contains(&needle))
}

/// On a failing test: the end of every host's log, on stderr (captured and
/// shown by the test harness).
fn report_logs(hosts: &[LabHost]) {
    let mut err = std::io::stderr().lock();
    for host in hosts {
        let text = fs::read(&host.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        let _ = writeln!(
            err,
            "--- lab host {} (port {}) {}:",
            host.name,
            host.port,
            host.log.display()
        );
        for line in tail {
            let _ = writeln!(err, "    {line}");
        }
    }
}
