//! Backends: where the commands of a recipe go (SSHKit's backends). The remote backend sends
//! them to the hosts' workers; the printer (dry run) reports what would run, so a dry run walks
//! the same calls in the same order and connects to nothing. The recipe functions never ask
//! which backend they have; neither backend writes output itself (events go to the reporter).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::event::{EventKind, Sink, Stream};
use crate::failure::{Failure, Kind};
use crate::fleet::Fleet;
use crate::host::HostTarget;
use crate::outcome::stderr_tail;
use crate::pool::{FanOut, HostResult};
use crate::ssh::exec::{Echo, ExecOptions, ExecOutput, ExitStatus};
use crate::ssh::SshError;

/// How one command of a closure runs (`run`, `capture`, `test`, an upload).
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// Bytes fed to its stdin.
    pub stdin: Option<Vec<u8>>,
    /// Deadline.
    pub timeout: Option<Duration>,
    /// Keep its stdout from the output (`capture`: the value is the output).
    pub quiet: bool,
    /// A pseudo-terminal. A command fed the sudo password gets one with its echo off; an
    /// upload never gets one (the terminal would translate its bytes).
    pub pty: bool,
}

/// An upload a backend was asked for.
pub struct Upload<'a> {
    /// The local file.
    pub path: &'a Path,
    /// The local path as the recipe named it (for messages and the plan).
    pub local: &'a str,
    /// The remote path.
    pub remote: &'a str,
}

/// Executes the commands of a recipe run.
pub trait Backend: Send + Sync {
    /// Makes sure `hosts` have sessions (connecting in parallel). A host that cannot connect
    /// is not an error here: its commands fail.
    fn prepare(&self, hosts: &[HostTarget]);
    /// Runs (host, command) pairs as `how` says; results in input order.
    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult>;
    /// Runs one command on one host.
    fn exec(&self, host: &str, command: &str, call: Call) -> Result<ExecOutput, SshError>;
    /// Sends `upload.path`'s bytes to `command` on `host` (a command that writes its stdin to
    /// the destination). Err(text) when the local file cannot be read.
    fn upload(
        &self,
        host: &str,
        upload: &Upload,
        command: &str,
        stdin_prefix: Option<Vec<u8>>,
    ) -> Result<Result<ExecOutput, SshError>, String>;
    /// Runs `command` with `sh -c` in `dir` on this machine; returns its trimmed stdout.
    fn run_locally(&self, command: &str, dir: &Path) -> Result<String, Box<Failure>>;
    /// Whether a step's hosts run one at a time, for output in a stable order (the printer).
    fn ordered(&self) -> bool;
    /// Before cleaning up after a failure: reconnect every host whose session died.
    fn revive(&self);
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
    /// Set once `hosts` have been connected.
    opened: OnceLock<()>,
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
    fn prepare(&self, hosts: &[HostTarget]) {
        self.opened.get_or_init(|| self.fleet.connect(&self.hosts));
        self.fleet.connect(hosts);
    }

    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        if let Some(label) = &how.label {
            self.fleet.sink.emit(
                &Arc::from(""),
                EventKind::OnCommand {
                    hosts: commands.iter().map(|(h, _)| h.clone()).collect(),
                    command: label.clone(),
                },
            );
        }
        let how = FanOut {
            pty: how.pty || self.pty,
            cancel: Some(self.cancel.clone()),
            kill: Some(self.kill.clone()),
            ..how.clone()
        };
        self.fleet.exec(commands, &how)
    }

    fn exec(&self, host: &str, command: &str, call: Call) -> Result<ExecOutput, SshError> {
        self.run(host, command, call, true)
    }

    fn upload(
        &self,
        host: &str,
        upload: &Upload,
        command: &str,
        stdin_prefix: Option<Vec<u8>>,
    ) -> Result<Result<ExecOutput, SshError>, String> {
        let data = std::fs::read(upload.path)
            .map_err(|e| format!("upload: cannot read {}: {e}", upload.path.display()))?;
        let mut stdin = stdin_prefix.unwrap_or_default();
        stdin.extend(data);
        let call = Call {
            stdin: Some(stdin),
            ..Call::default()
        };
        // A terminal would turn the file's bytes into keystrokes (^C, ^D, CR).
        Ok(self.run(host, command, call, false))
    }

    fn run_locally(&self, command: &str, dir: &Path) -> Result<String, Box<Failure>> {
        run_locally(&self.fleet.sink, command, dir)
    }

    fn ordered(&self) -> bool {
        false
    }

    fn revive(&self) {
        if self.opened.get().is_some() {
            self.fleet.pool.revive();
        }
    }
}

impl Remote {
    /// Runs `command` on `host`; `terminal` says whether it may get a PTY (`--pty`, the call's
    /// own).
    fn run(
        &self,
        host: &str,
        command: &str,
        call: Call,
        terminal: bool,
    ) -> Result<ExecOutput, SshError> {
        let opts = ExecOptions {
            pty: (call.pty || self.pty) && terminal,
            stdin: call.stdin,
            timeout: call.timeout,
            stop: Some(self.kill.clone()),
            echo: if call.quiet {
                Echo::NoStdout
            } else {
                Echo::All
            },
            ..ExecOptions::default()
        };
        let result = self.fleet.pool.exec_one(host, command, opts);
        self.fleet.sink.barrier();
        result
    }
}

/// `sh -c command` in `dir`, stdin closed; stderr lines become events; Err names the command,
/// its status and the tail of its stderr.
fn run_locally(sink: &Sink, command: &str, dir: &Path) -> Result<String, Box<Failure>> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Box::new(Failure::new(
                Kind::Failed,
                format!("run_locally `{command}`: cannot start sh: {e}"),
            ))
        })?;
    let local: Arc<str> = Arc::from("");
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        sink.emit(
            &local,
            EventKind::LocalOutput {
                stream: Stream::Stderr,
                line: crate::secret::mask(line).into_owned(),
            },
        );
    }
    sink.barrier();
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let status = match output.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "a signal".to_string(),
    };
    let mut message = format!("local: `{command}` failed with {status}");
    let tail = stderr_tail(&output.stderr, crate::outcome::STDERR_TAIL);
    if !tail.is_empty() {
        message.push_str("\n  stderr (last lines):");
        for l in tail {
            message.push_str(&format!("\n    {l}"));
        }
    }
    Err(Box::new(Failure::new(Kind::CommandFailed, message)))
}

/// Reports every command instead of running it: `capture` gets "", `test` gets true.
pub struct DryRun {
    sink: Sink,
}

impl DryRun {
    /// A printer reporting to `sink`.
    pub fn new(sink: Sink) -> Self {
        DryRun { sink }
    }

    fn plan(&self, host: &str, kind: EventKind) {
        self.sink.emit(&Arc::from(host), kind);
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
    fn prepare(&self, hosts: &[HostTarget]) {
        self.sink
            .emit(&Arc::from(""), crate::fleet::hosts_event(hosts));
    }

    fn fan_out(&self, commands: &[(String, String)], _how: &FanOut) -> Vec<HostResult> {
        commands
            .iter()
            .map(|(host, command)| {
                self.plan(
                    host,
                    EventKind::Planned {
                        command: command.clone(),
                    },
                );
                HostResult {
                    host: host.clone(),
                    command: command.clone(),
                    result: Some(Ok(Self::success())),
                    skipped: None,
                }
            })
            .collect()
    }

    fn exec(&self, host: &str, command: &str, _call: Call) -> Result<ExecOutput, SshError> {
        self.plan(
            host,
            EventKind::Planned {
                command: command.to_string(),
            },
        );
        Ok(Self::success())
    }

    fn upload(
        &self,
        host: &str,
        upload: &Upload,
        _command: &str,
        _stdin_prefix: Option<Vec<u8>>,
    ) -> Result<Result<ExecOutput, SshError>, String> {
        // A file the run itself makes (run_locally) does not exist in a dry run: still listed.
        let bytes = std::fs::metadata(upload.path).ok().map(|m| m.len());
        self.plan(
            host,
            EventKind::PlannedUpload {
                local: upload.local.to_string(),
                remote: upload.remote.to_string(),
                bytes,
            },
        );
        Ok(Ok(Self::success()))
    }

    fn run_locally(&self, command: &str, _dir: &Path) -> Result<String, Box<Failure>> {
        self.plan(
            "",
            EventKind::PlannedLocal {
                command: command.to_string(),
            },
        );
        Ok(String::new())
    }

    fn ordered(&self) -> bool {
        true
    }

    fn revive(&self) {}
}
