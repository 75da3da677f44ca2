//! Backends: where the commands of a recipe go. The remote backend sends them to the hosts'
//! workers; the dry-run backend only prints them (SSHKit's printer), so a dry run walks the same
//! calls in the same order and connects to nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fleet::Fleet;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult};
use crate::ssh::exec::{ExecOutput, ExitStatus};
use crate::ssh::SshError;

/// Executes commands for a recipe run.
pub trait Backend: Send + Sync {
    /// Makes sure `hosts` have sessions (connecting in parallel).
    fn prepare(&self, hosts: &[HostTarget]) -> Result<(), String>;
    /// Runs (host, command) pairs as `how` says; results in input order.
    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult>;
    /// Runs one command on one host; `stdin` is fed to it; `quiet` keeps its stdout from
    /// being printed (`capture`).
    fn exec(
        &self,
        host: &str,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
        quiet: bool,
    ) -> Result<ExecOutput, SshError>;
    /// Lists an upload (dry run) or nothing (remote: the upload is a command).
    fn describe_upload(&self, host: &str, local: &str, remote: &str, bytes: usize);
    /// Prints a line of tether's own (task headers, recipe `print`).
    fn note(&self, text: &str);
    /// Names the step in progress (live status line).
    fn step(&self, step: Option<&str>);
    /// Whether this is a dry run (closures then run host by host, for a stable plan).
    fn is_dry_run(&self) -> bool;
}

/// Commands go to the hosts' sessions.
pub struct Remote {
    fleet: Arc<Fleet>,
}

impl Remote {
    /// A backend over `fleet`.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Remote { fleet }
    }
}

impl Backend for Remote {
    fn prepare(&self, hosts: &[HostTarget]) -> Result<(), String> {
        self.fleet.connect(hosts).map_err(|e| e.to_string())
    }

    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        self.fleet.exec(commands, how)
    }

    fn exec(
        &self,
        host: &str,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
        quiet: bool,
    ) -> Result<ExecOutput, SshError> {
        let result = self
            .fleet
            .pool
            .exec_one(host, command, stdin, timeout, quiet);
        self.fleet.reporter.barrier();
        result
    }

    fn describe_upload(&self, _host: &str, _local: &str, _remote: &str, _bytes: usize) {}

    fn note(&self, text: &str) {
        self.fleet.reporter.line(text);
    }

    fn step(&self, step: Option<&str>) {
        self.fleet.reporter.set_step(step);
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
        println!("{host:width$} | {text}");
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
    ) -> Result<ExecOutput, SshError> {
        self.print(host, &format!("$ {command}"));
        Ok(Self::success())
    }

    fn describe_upload(&self, host: &str, local: &str, remote: &str, bytes: usize) {
        self.print(host, &format!("upload {local} -> {remote} ({bytes} bytes)"));
    }

    fn note(&self, text: &str) {
        println!("{text}");
    }

    fn step(&self, _step: Option<&str>) {}

    fn is_dry_run(&self) -> bool {
        true
    }
}
