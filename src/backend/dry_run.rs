//! The dry-run backend: every command, transfer and local command is reported as planned
//! instead of run, so a dry run walks the same calls in the same order and connects to nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::interface::{Backend, Call, Download, TransferError, Upload};
use crate::event::EventKind;
use crate::failure::Failure;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult};
use crate::sink::Sink;
use crate::ssh::exec::{ExecOutput, ExitStatus};
use crate::ssh::SshError;
use crate::stop::Stop;

/// Reports every command instead of running it: `capture` gets "", `test` gets true. A host
/// the run would not reach for its ssh config or route (see [`DryRun::refusing`]) fails each
/// call as the run's would, and nothing is planned on it.
pub struct DryRun {
    sink: Sink,
    announced: crate::fleet::Announced,
    refused: crate::fleet::Refusals,
    /// What stops the run (Ctrl-C, SIGTERM, SIGHUP; a cancelled watch run): see
    /// [`DryRun::stopped_by`].
    stop: Stop,
}

impl DryRun {
    /// A printer reporting to `sink`.
    pub fn new(sink: Sink) -> Self {
        DryRun {
            sink,
            announced: Default::default(),
            refused: Default::default(),
            stop: Stop::default(),
        }
    }

    /// This printer, failing the calls on each host of `refused` with its error, as a run
    /// fails them when the host never connects (see `fleet::config_refusals`): the dry run
    /// stops where the run would, its error naming the recipe's line (stop 62 tester t102: the
    /// plan listed commands on a host it said no run would reach, and failed only at its end,
    /// with no `(at file:line:col)`).
    pub fn refusing(mut self, refused: crate::fleet::Refusals) -> Self {
        self.refused = refused;
        self
    }

    /// Plans nothing once `stop` says the run stops, and fails what is asked then as the
    /// run's stop fails a command it has not sent (tester t132: hosts waiting at a step, woken
    /// by a signal, planned their next commands, a different set on every run).
    pub fn stopped_by(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Why a run would not reach `host` (or send it `command`, tether stopping), if it would
    /// not.
    fn refused(&self, host: &str, command: &str) -> Result<(), SshError> {
        if let Some(why) = self.stop.reason() {
            return Err(SshError::stopped_before(host, command, why));
        }
        self.unreachable(host)
    }

    /// [`refused`](Self::refused) for a transfer, `label` as the plan names it.
    fn refused_transfer(&self, host: &str, label: String) -> Result<(), TransferError> {
        self.refused(host, &label)
            .map_err(|e| TransferError::Remote {
                command: label,
                result: Box::new(Err(e)),
            })
    }

    /// Why a run would not reach `host` for its ssh config or route, if it would not.
    fn unreachable(&self, host: &str) -> Result<(), SshError> {
        match self.refused.get(host) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn plan(&self, host: &str, kind: EventKind) {
        self.sink.emit(&Arc::from(host), kind);
    }

    fn success() -> ExecOutput {
        ExecOutput {
            status: ExitStatus::Code(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
            stderr_cut: 0,
            duration: Duration::ZERO,
            started: std::time::Instant::now(),
        }
    }
}

impl Backend for DryRun {
    fn prepare(&self, hosts: &[HostTarget]) {
        if let Some(event) = self.announced.event(hosts) {
            self.sink.emit(&Arc::from(""), event);
        }
    }

    /// Planned as the run's fan-out starts them (`crate::dispatch`): a host the run cannot
    /// reach fails, and a sequence, a group or a window then starts no more, as the run's
    /// would (stop 63 tester t104: `in: "sequence"` planned the hosts after one that failed).
    /// Nothing waits between hosts or groups: nothing runs.
    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        // A host the run cannot reach fails at once, before the hosts started with it end:
        // first among them here, where each ends at once (stop 63 tester t105: with `limit:
        // 2`, the host after the window was planned, which the run does not start).
        let order = crate::dispatch::failing_first(commands.len(), &how.spread, |i| {
            self.refused(&commands[i].0, &commands[i].1).is_err()
        });
        let slots = crate::dispatch::run(
            commands.len(),
            &how.spread,
            &|| how.cancelled(),
            &|| true,
            &|r: &Result<ExecOutput, SshError>| r.is_err(),
            |unit, done| {
                let (host, command) = &commands[order[unit]];
                done.send(self.refused(host, command).map(|()| {
                    self.plan(
                        host,
                        EventKind::Planned {
                            command: command.clone(),
                        },
                    );
                    Self::success()
                }))
            },
        );
        commands
            .iter()
            .zip(crate::dispatch::in_order(slots, &order))
            .map(|((host, command), slot)| {
                HostResult::from_slot(host, command, slot, || self.refused(host, command).err())
            })
            .collect()
    }

    fn exec(&self, host: &str, command: &str, _call: Call) -> Result<ExecOutput, SshError> {
        self.refused(host, command)?;
        self.plan(
            host,
            EventKind::Planned {
                command: command.to_string(),
            },
        );
        Ok(Self::success())
    }

    fn upload(&self, host: &str, upload: &Upload) -> Result<(), TransferError> {
        // A file the run itself makes (run_locally) does not exist in a dry run: still listed.
        // One that exists is refused as the run would refuse it (stop 44 tester t54: `-n`
        // planned `upload /dev/zero` that the run refuses).
        let bytes = std::fs::metadata(upload.path).ok().map(|m| m.len());
        if bytes.is_some() {
            super::regular_file::regular_file(upload.path)?;
        }
        self.refused_transfer(
            host,
            crate::transfer::paths::label("upload", upload.local, upload.remote),
        )?;
        self.plan(
            host,
            EventKind::PlannedUpload {
                local: upload.local.to_string(),
                remote: upload.remote.to_string(),
                bytes,
            },
        );
        Ok(())
    }

    fn download(&self, host: &str, download: &Download) -> Result<(), TransferError> {
        super::regular_file::local_target(download.path)?;
        self.refused_transfer(
            host,
            crate::transfer::paths::label("download", download.remote, download.local),
        )?;
        self.plan(
            host,
            EventKind::PlannedDownload {
                remote: download.remote.to_string(),
                local: download.local.to_string(),
            },
        );
        Ok(())
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

    fn never_connected(&self, host: &str) -> Option<SshError> {
        self.unreachable(host).err()
    }
}
