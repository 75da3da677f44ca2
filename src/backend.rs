//! Backends: where the commands of a recipe go. The remote backend sends them to the hosts'
//! workers; the dry-run backend only prints them (SSHKit's printer), so a dry run walks the same
//! calls in the same order and connects to nothing.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::fleet::Fleet;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult};
use crate::ssh::exec::{ExecOptions, ExecOutput, ExitStatus};
use crate::ssh::SshError;

/// Executes commands for a recipe run.
pub trait Backend: Send + Sync {
    /// Makes sure `hosts` have sessions (connecting in parallel).
    fn prepare(&self, hosts: &[HostTarget]) -> Result<(), String>;
    /// Runs (host, command) pairs as `how` says; results in input order.
    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult>;
    /// Runs one command on one host; `stdin` is fed to it; `quiet` keeps its stdout from
    /// being printed (`capture`); `pty` asks for a pseudo-terminal (never given to a command
    /// fed on stdin: the terminal would echo and translate its bytes).
    fn exec(
        &self,
        host: &str,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
        quiet: bool,
        pty: bool,
    ) -> Result<ExecOutput, SshError>;
    /// Lists an upload (dry run) or nothing (remote: the upload is a command); `bytes` is
    /// `None` for a file that does not exist yet.
    fn describe_upload(&self, host: &str, local: &str, remote: &str, bytes: Option<u64>);
    /// Prints a line of tether's own (task headers, recipe `print`).
    fn note(&self, text: &str);
    /// Names the task in progress (task header, live status line, JSON `task_started`);
    /// `None` when the run is over.
    fn step(&self, step: Option<&str>);
    /// Whether this is a dry run (closures then run host by host, for a stable plan).
    fn is_dry_run(&self) -> bool;
}

/// Commands go to the hosts' sessions.
pub struct Remote {
    fleet: Arc<Fleet>,
    /// Once set, no further command is dispatched.
    cancel: Arc<AtomicBool>,
    /// Once set, in-flight PTY commands are stopped (their terminal hung up).
    kill: Arc<AtomicBool>,
    /// Every command gets a pseudo-terminal (`--pty`).
    pty: bool,
    /// Hosts connected with the first `prepare`: every host of the run, used or not.
    hosts: Vec<HostTarget>,
    /// The outcome of connecting `hosts`, once done.
    opened: OnceLock<Result<(), String>>,
}

impl Remote {
    /// A backend over `fleet` for one run: Ctrl-C (the fleet's flag) stops dispatching and
    /// stops in-flight PTY commands; commands without a PTY are waited for.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let flag = fleet.interrupted.clone();
        Remote {
            fleet,
            cancel: flag.clone(),
            kill: flag,
            pty: false,
            hosts: Vec::new(),
            opened: OnceLock::new(),
        }
    }

    /// Connects `hosts` when the run first needs a session: from then on every host of the
    /// run has its session, kept alive by its heartbeat until the run ends, whether or not
    /// the current step uses it. Deferred so that a recipe failing before its first `on`
    /// connects to nothing.
    pub fn with_hosts(mut self, hosts: Vec<HostTarget>) -> Self {
        self.hosts = hosts;
        self
    }

    /// Gives every command a pseudo-terminal (`--pty`).
    pub fn with_pty(mut self, pty: bool) -> Self {
        self.pty = pty;
        self
    }

    /// Uses a run's own flags instead of the fleet's Ctrl-C flag (watch mode, where the fleet
    /// outlives many runs): `cancel` stops dispatching, `kill` stops in-flight PTY commands.
    /// The fleet's Ctrl-C flag still stops every fan-out.
    pub fn with_flags(mut self, cancel: Arc<AtomicBool>, kill: Arc<AtomicBool>) -> Self {
        self.cancel = cancel;
        self.kill = kill;
        self
    }
}

impl Backend for Remote {
    fn prepare(&self, hosts: &[HostTarget]) -> Result<(), String> {
        self.opened
            .get_or_init(|| self.fleet.connect(&self.hosts).map_err(|e| e.to_string()))
            .clone()?;
        self.fleet.connect(hosts).map_err(|e| e.to_string())
    }

    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        let how = FanOut {
            pty: how.pty || self.pty,
            cancel: Some(self.cancel.clone()),
            kill: Some(self.kill.clone()),
            ..how.clone()
        };
        self.fleet.exec(commands, &how)
    }

    fn exec(
        &self,
        host: &str,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
        quiet: bool,
        pty: bool,
    ) -> Result<ExecOutput, SshError> {
        let opts = ExecOptions {
            pty: (pty || self.pty) && stdin.is_none(),
            stdin,
            timeout,
            stop: Some(self.kill.clone()),
            keepalive: None,
            forward_agent: None,
        };
        let result = self.fleet.pool.exec_one(host, command, opts, quiet);
        self.fleet.reporter.barrier();
        result
    }

    fn describe_upload(&self, _host: &str, _local: &str, _remote: &str, _bytes: Option<u64>) {}

    fn note(&self, text: &str) {
        self.fleet.reporter.line(text);
    }

    fn step(&self, step: Option<&str>) {
        self.fleet.reporter.set_step(step);
        if let Some(task) = step {
            self.fleet.reporter.task_started(task);
        }
    }

    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Prints every command instead of running it: `capture` gets "", `test` gets true.
#[derive(Default)]
pub struct DryRun {
    width: Mutex<usize>,
}

impl DryRun {
    fn print(&self, host: &str, text: &str) {
        // Width only grows; a poisoned lock still holds a usable number.
        let width = *self.width.lock().unwrap_or_else(|p| p.into_inner());
        crate::outln!("{host:width$} | {text}");
    }

    fn success() -> ExecOutput {
        ExecOutput {
            status: ExitStatus::Code(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
            duration: Duration::ZERO,
        }
    }
}

impl Backend for DryRun {
    fn prepare(&self, hosts: &[HostTarget]) -> Result<(), String> {
        let mut width = self.width.lock().unwrap_or_else(|p| p.into_inner());
        *width = hosts
            .iter()
            .map(|h| h.name.chars().count())
            .chain(std::iter::once(*width))
            .max()
            .unwrap_or(0);
        Ok(())
    }

    fn fan_out(&self, commands: &[(String, String)], _how: &FanOut) -> Vec<HostResult> {
        commands
            .iter()
            .map(|(host, command)| {
                self.print(host, &format!("$ {command}"));
                HostResult {
                    host: host.clone(),
                    command: command.clone(),
                    result: Some(Ok(Self::success())),
                }
            })
            .collect()
    }

    fn exec(
        &self,
        host: &str,
        command: &str,
        _stdin: Option<Vec<u8>>,
        _timeout: Option<Duration>,
        _quiet: bool,
        _pty: bool,
    ) -> Result<ExecOutput, SshError> {
        self.print(host, &format!("$ {command}"));
        Ok(Self::success())
    }

    fn describe_upload(&self, host: &str, local: &str, remote: &str, bytes: Option<u64>) {
        let size = bytes.map_or_else(|| "made during the run".into(), |b| format!("{b} bytes"));
        self.print(host, &format!("upload {local} -> {remote} ({size})"));
    }

    fn note(&self, text: &str) {
        crate::outln!("{text}");
    }

    fn step(&self, step: Option<&str>) {
        if let Some(task) = step {
            crate::outln!("▶ {task}");
        }
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}
