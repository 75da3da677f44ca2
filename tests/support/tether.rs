//! A small builder for running the `tether` binary in integration tests and asserting on its
//! status, stdout and stderr (after `just`'s test builder).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One `tether` invocation.
pub struct Tether {
    /// `XDG_CACHE_HOME` of the run unless the test sets its own: the idle-limit cache of one
    /// test never reaches another's, nor the user's.
    cache: tempfile::TempDir,
    args: Vec<String>,
    fold: bool,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

/// A running tether whose stderr is read as it comes, so that a test can act once tether said
/// something (a second signal once the first was taken: tokio's signal streams, as the kernel
/// does for a signal still pending, merge signals that come before the first is handled).
pub struct Watched {
    child: Child,
    stdout: std::thread::JoinHandle<Vec<u8>>,
    arrived: mpsc::Receiver<Vec<u8>>,
    stderr: Vec<u8>,
}

impl Watched {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most 60 s) until tether's stderr holds one of `texts`.
    pub fn wait_for_stderr(&mut self, texts: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let said = String::from_utf8_lossy(&self.stderr);
            if texts.iter().any(|t| said.contains(t)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.arrived.recv_timeout(left) {
                Ok(chunk) => self.stderr.extend(chunk),
                Err(_) => panic!("tether never said any of {texts:?}; it said:\n{said}"),
            }
        }
    }

    /// Sends `signal` twice, the second once tether said it took the first (as a person's
    /// second Ctrl-C comes: not within the same few milliseconds).
    pub fn signal_twice(&mut self, signal: i32) {
        super::net::signal(self.id(), signal);
        self.wait_for_stderr(&["(Ctrl-C again to exit now)", "(a second signal exits now)"]);
        super::net::signal(self.id(), signal);
    }

    /// Waits for tether to end: its status and everything it wrote.
    pub fn wait_with_output(mut self) -> std::process::Output {
        let status = self.child.wait().expect("wait for tether");
        self.stderr.extend(self.arrived.iter().flatten());
        std::process::Output {
            status,
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr,
        }
    }
}

/// What a finished invocation produced.
#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// The stdout, then the stderr, of a finished tether, as text: what a test searches, and
/// shows when an assertion fails.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `tether run --timeout TIMEOUT --hosts HOST -- COMMAND` under the ssh config `config`.
pub fn run_with_timeout(config: &Path, timeout: &str, host: &str, command: &str) -> Output {
    Tether::new()
        .ssh_config(config)
        .args(&["run", "--timeout", timeout, "--hosts", host, "--", command])
        .run()
}

impl Default for Tether {
    fn default() -> Self {
        Self::new()
    }
}

impl Tether {
    pub fn new() -> Self {
        Tether {
            cache: tempfile::tempdir().expect("a temporary cache directory"),
            args: Vec::new(),
            fold: false,
            env: Vec::new(),
            cwd: None,
            timeout: Duration::from_secs(120),
        }
    }

    /// Adds `-F <ssh_config>`.
    pub fn ssh_config(self, path: &Path) -> Self {
        self.arg("-F").arg(path.to_str().expect("utf-8 path"))
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Leaves text output folded, as it is by default (the other tests assert each host's own
    /// lines, so the harness passes `--no-fold` unless asked).
    pub fn folded(mut self) -> Self {
        self.fold = true;
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// The configured command, for tests that drive the process themselves.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tether"));
        if !self.fold {
            cmd.arg("--no-fold");
        }
        cmd.args(&self.args)
            .env_remove("SSH_AUTH_SOCK")
            // Capistrano's filters, read from the environment: only what a test sets.
            .env_remove("HOSTS")
            .env_remove("ROLES")
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", self.cache.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd
    }

    /// Starts tether without waiting for it.
    pub fn spawn(&self) -> Child {
        self.command().spawn().expect("start tether")
    }

    /// Starts tether without waiting for it, its stderr read as it comes: see [`Watched`].
    pub fn spawn_watched(&self) -> Watched {
        let mut child = self.spawn();
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let stdout = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let (chunks, arrived) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 || chunks.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            stdout,
            arrived,
            stderr: Vec::new(),
        }
    }

    /// Starts tether, and once its command has started (`marker` is not empty: at most 10 s)
    /// and `after` more, interrupts it (SIGINT, a Ctrl-C); its output.
    pub fn interrupt_after_start(&self, marker: &Path, after: Duration) -> std::process::Output {
        let child = self.spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(marker).is_ok_and(|m| !m.is_empty()) {
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(after);
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        child.wait_with_output().expect("wait for tether")
    }

    /// Runs tether to completion (killing it after the timeout).
    pub fn run(self) -> Output {
        let started = Instant::now();
        let mut child = self.spawn();
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let out_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for tether") {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tether {:?} did not finish within {:?}",
                    self.args, self.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout =
            String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
        let stderr =
            String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
        Output {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr,
            elapsed: started.elapsed(),
        }
    }
}

impl Output {
    /// The JSON events of a `--format json` run, one per stdout line; a line that is no JSON
    /// fails the test.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub fn dump(&self) -> String {
        format!(
            "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    pub fn status(&self, code: i32) -> &Self {
        assert_eq!(self.status, code, "unexpected status\n{}", self.dump());
        self
    }

    pub fn stdout_is(&self, s: &str) -> &Self {
        assert_eq!(self.stdout, s, "stdout differs\n{}", self.dump());
        self
    }

    pub fn stdout_contains(&self, s: &str) -> &Self {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}\n{}",
            self.dump()
        );
        self
    }

    pub fn stdout_lacks(&self, s: &str) -> &Self {
        assert!(
            !self.stdout.contains(s),
            "stdout has {s:?}\n{}",
            self.dump()
        );
        self
    }

    pub fn stderr_lacks(&self, s: &str) -> &Self {
        assert!(
            !self.stderr.contains(s),
            "stderr has {s:?}\n{}",
            self.dump()
        );
        self
    }

    pub fn stderr_contains(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}\n{}",
            self.dump()
        );
        self
    }

    /// Stdout's lines as JSON objects, each with a `type` (`--format json`); panics at a line
    /// that is not one.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                assert!(v["type"].is_string(), "no type: {l}");
                v
            })
            .collect()
    }

    /// Lines of stdout that start with `host` followed by the given mark (`|`, `!`, `~`).
    pub fn host_lines(&self, host: &str, mark: char) -> Vec<String> {
        // A name tether writes in quotes (one holding nodeset syntax, `ssh://[::1]:22`), or a
        // host set as given.
        let shown = tether::host_text::named(host);
        self.stdout
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(&shown).or_else(|| l.strip_prefix(host))?;
                let rest = rest.trim_start();
                let rest = rest.strip_prefix(mark)?;
                Some(rest.strip_prefix(' ').unwrap_or(rest).to_string())
            })
            .collect()
    }
}
