//! How a remote command ended, what it produced, why it produced nothing, and the
//! `command_finished` event that says so.

use std::time::{Duration, Instant};

use crate::event::{CommandOutcome, EventKind};
use crate::ssh::supervisor::{StopDone, STOP_GRACE};
use crate::ssh::SshError;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (`TERM`, `KILL` ...).
    Signal(String),
    /// The channel closed without an exit status: the server cut the command off (for example
    /// sshd's `ChannelTimeout`), and the command may still be running.
    Missing,
    /// As [`ExitStatus::Missing`], for a command on a terminal: sshd hangs the terminal up as
    /// it closes the channel, and the kernel sends the command SIGHUP, which ends it unless it
    /// ignores SIGHUP (stop 61 tester t100: a command cut off so was said to be maybe still
    /// running, where its terminal's hang-up had ended it).
    HungUp,
    /// The channel closed without an exit status before the command's start marker came: the
    /// login shell ended first (a startup file that exits), or the channel was closed while it
    /// started; the command most likely did not run.
    MissingBeforeStart,
    /// The channel closed without an exit status before the command's start marker came, and
    /// the channel that checks on the host whether it started (see `supervisor::claim`) closed
    /// the same way: a login shell that ends before any command (with status 0, which reads as
    /// no status), or sshd's `ChannelTimeout` closing channels whose login shell is slower than
    /// it, after which the command may well run. Whether it ran is unknown (stop 56 tester
    /// t89: "most likely did not run" for a command that ran on).
    Unchecked,
    /// The channel closed without an exit status while the command ran under the supervisor,
    /// and so did each channel that followed it, before its login shell was done starting
    /// (sshd's `ChannelTimeout` shorter than the login shell's start): it may still be running,
    /// and is stopped at the next contact with its host, or named before tether exits (stop
    /// 56 tester t89: said cut off, and neither stopped nor named).
    Unfollowed,
    /// The channel closed with this exit status before the command's start marker came: the
    /// login shell ended first (`/bin/false`, `nologin`, a startup file that exits with it);
    /// the command did not run (stop 45 tester t56: said as the command's own `exit status
    /// 1`).
    ShellEnded(i32),
    /// The command ran under the supervisor, but its status was never recorded on the host:
    /// the supervisor's process that waited for it was killed (by the command itself:
    /// `kill -9 $PPID`). What it printed arrived; how it ended is unknown.
    Unrecorded,
    /// The command ran under the supervisor, and a program of the host's that passes its
    /// output on (`head`, `dd`, `wc`: one that fails, first in the login shell's PATH) failed: what
    /// it printed from then on, and how it ended, did not reach tether.
    OutputLost,
    /// The command ran under the supervisor, and its files on the host were removed while it
    /// ran (by the command itself: `rm -rf /tmp/*`): what it printed from then on and how it
    /// ended are unknown (it was waited for).
    SpoolRemoved,
}

impl ExitStatus {
    /// Whether the command succeeded.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
            ExitStatus::Unrecorded => f.write_str(
                "no exit status: it was not recorded on the host (the process of tether's \
                 supervisor that waited for the command was killed)",
            ),
            ExitStatus::OutputLost => f.write_str(
                "its output could not be passed on: a program of the host's that tether's \
                 supervisor keeps or reads it with (dd, head, wc, cat, from /usr/bin or /bin \
                 first) failed (the filesystem of ${TMPDIR:-/tmp} full?); what it printed from \
                 then on and how it ended are unknown",
            ),
            ExitStatus::SpoolRemoved => f.write_str(
                "no exit status: the command's files on the host (tether's supervisor keeps its \
                 output and status in ${TMPDIR:-/tmp}/tether-$LOGNAME) were removed while it ran, \
                 as a command that empties /tmp does; what it printed from then on and how it \
                 ended are unknown",
            ),
            ExitStatus::Missing => f.write_str(
                "no exit status received: the server closed the channel while the command was \
                 running (an sshd ChannelTimeout on a silent command is the usual cause); the \
                 command may still be running",
            ),
            ExitStatus::HungUp => f.write_str(
                "no exit status received: the server closed the channel while the command was \
                 running on its terminal (an sshd ChannelTimeout on a silent command is the \
                 usual cause), which hung up the terminal: the command got SIGHUP, which ends \
                 it unless it ignores SIGHUP",
            ),
            ExitStatus::Unfollowed => f.write_str(
                "no exit status received: the server closed the channel while the command was \
                 running, and each channel that followed it before its login shell was done \
                 starting (sshd's ChannelTimeout shorter than the login shell's start); the \
                 command may still be running: tether stops it at its next contact with this \
                 host, or before it exits",
            ),
            ExitStatus::ShellEnded(c) => write!(
                f,
                "the login shell ended with exit status {c} before the command started (a \
                 login shell such as /bin/false or nologin, or a startup file that exits: what \
                 it printed is shown); the command did not run"
            ),
            ExitStatus::MissingBeforeStart => f.write_str(
                "no exit status received, and the command never said it started: the login \
                 shell ended before it (a startup file such as ~/.bashrc that exits: what it \
                 printed is shown), or the channel was closed while it started; it most likely \
                 did not run",
            ),
            ExitStatus::Unchecked => f.write_str(
                "no exit status received, and the command never said it started, nor did the \
                 check on the host whether it had: the login shell ends before any command (a \
                 startup file such as ~/.bashrc that exits: what it printed is shown), or the \
                 server closes channels before their login shell is done starting (sshd's \
                 ChannelTimeout); whether it ran is unknown, and it may still be running",
            ),
        }
    }
}

/// The last bytes a command wrote on stderr, as kept ([`ExecOptions::keep`](super::ExecOptions::keep)).
#[derive(Debug, Clone, Default)]
pub struct KeptStderr {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// How many bytes came before them and were not kept.
    pub cut: u64,
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (not what the login shell printed before it: see
    /// [`Preamble`](super::Preamble)).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (the status marker and the login shell's preamble
    /// removed), or its last bytes ([`ExecOptions::keep`](super::ExecOptions::keep)).
    pub stderr: Vec<u8>,
    /// How many bytes of stderr came before [`stderr`](Self::stderr) and were not kept.
    pub stderr_cut: u64,
    /// Wall time from channel open to close.
    pub duration: Duration,
    /// When its worker sent it, after connecting (its `command_started`): a later part of
    /// it ([`ExecOptions::part`](super::ExecOptions::part)) counts from here, not from when
    /// it was asked for, which may be before its host connected.
    pub started: Instant,
}

/// Why a command did not produce an [`ExecOutput`].
#[derive(Debug, Clone)]
pub enum ExecError {
    /// The channel could not be opened: the command never started, so running it on a new
    /// session is safe.
    NotStarted(String),
    /// The session failed after the command was sent: it may have partly run.
    Lost(String),
    /// The command ran past its deadline after this long: stopped as for
    /// [`ExecError::Stopped`], and abandoned; with what it wrote on stderr by then (its
    /// clean-up on SIGTERM included), whose last lines its failure shows, as a failed
    /// command's.
    Deadline(Duration, Option<RemoteStop>, KeptStderr),
    /// A command was stopped through [`ExecOptions::stop`](super::ExecOptions::stop) after this
    /// long, with what stopping it on the host did: a supervised command's or a PTY command's
    /// process group was signalled; `None` where only its channel was closed (a transfer, or a
    /// PTY command stopped before it said its process group: its terminal hung up). Why is in
    /// the [`ExecOptions::stop`](super::ExecOptions::stop) that was set.
    Stopped(Duration, Option<RemoteStop>),
    /// A stop (see [`ExecError::Stopped`]) came while the command's channel was being opened,
    /// after this long: nothing of the command was sent (stop 56's doubt: said "stopped after
    /// N s", not "before it started").
    StoppedUnsent(Duration),
    /// The server refused a request for this channel (a pseudo-terminal under `PermitTTY no`):
    /// the command never started, and the session is fine.
    Refused(String),
    /// Writing the command's stdout to [`ExecOptions::stdout_to`](super::ExecOptions::stdout_to) failed (a local disk full):
    /// the channel was closed; the session is fine.
    Local(String),
    /// The command was too long for one exec request and could not be written to a temporary
    /// file on the host (`mktemp` failed, the disk is full): it never started, and the session
    /// is fine.
    NotStaged(String),
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let after = |d: &Duration| crate::duration::format(*d);
        match self {
            ExecError::NotStarted(why)
            | ExecError::Lost(why)
            | ExecError::Refused(why)
            | ExecError::Local(why)
            | ExecError::NotStaged(why) => f.write_str(why),
            ExecError::Deadline(d, _, _) => write!(f, "its deadline passed after {}", after(d)),
            ExecError::Stopped(d, _) => write!(f, "stopped after {}", after(d)),
            ExecError::StoppedUnsent(d) => {
                write!(f, "stopped after {}, before it was sent", after(d))
            }
        }
    }
}

impl ExecError {
    /// This error, when it is a stop or a deadline, with what stopping the command did.
    pub(super) fn with_stop(self, stop: Option<RemoteStop>) -> ExecError {
        match self {
            ExecError::Stopped(d, _) => ExecError::Stopped(d, stop),
            ExecError::Deadline(d, _, err) => ExecError::Deadline(d, stop, err),
            other => other,
        }
    }

    /// This error, when it is a deadline, with what the command wrote on stderr by then.
    pub(super) fn with_stderr(self, stderr: KeptStderr) -> ExecError {
        match self {
            ExecError::Deadline(d, stop, _) => ExecError::Deadline(d, stop, stderr),
            other => other,
        }
    }
}

/// What stopping a running command's process group on its host did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStop {
    /// In words: `its process group was sent SIGTERM and ended` (see `supervisor::StopDone::words`),
    /// or why stopping it failed.
    pub how: String,
    /// How far the stop reached.
    pub reached: Reached,
    /// The command had ended, or never started, as the stop came: nothing was signalled.
    pub nothing_to_stop: bool,
    /// The stop claimed the command before it started (`StopDone::Never`): the claim stays on
    /// the host, where an exec of it still starting must find it, so the command's id is
    /// never given to what removes a read command's files.
    pub claimed: bool,
    /// The process group of a PTY command, as its exec's sh said it: where a stop over
    /// another connection reaches it.
    /// (Boxed: it rides in every `ExecError`, which stays small.)
    pub pty_group: Option<Box<PtyGroup>>,
}

/// A PTY command's process group, as its exec's sh said it (its pid, as `kill -- -PGID`
/// takes it), with the frame key its exec's sh has among its arguments: a stop signals the
/// group only while the leader's command line in `/proc` holds the key (see
/// `exec::stop_pty_group`), never a group that took the number after the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyGroup {
    /// The process group.
    pub pgid: String,
    /// The frame key of the command's exec (see `frames.rs`).
    pub key: String,
}

/// Why stopping a command on its host failed: it may still be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopFailed {
    /// In words: `stopping it failed (cannot open a channel: ...)`.
    pub how: String,
    /// The server refused the stop's channel: under `MaxSessions 1` the command's own channel
    /// holds the only one it allows.
    pub refused: bool,
    /// The connection was lost while the stop ran: it may have signalled the group.
    pub cut: bool,
    /// The session gave the stop no answer: its channel never opened (or a request before its
    /// exec failed); the stop did not run.
    pub unanswered: bool,
    /// The stop found that the host runs the command without tether's supervisor, before it
    /// claimed anything (see `supervisor::stop`), and why, as `incoming::direct_words` says it.
    pub direct: Option<String>,
}

impl From<String> for StopFailed {
    fn from(how: String) -> StopFailed {
        StopFailed {
            how,
            refused: false,
            cut: false,
            unanswered: false,
            direct: None,
        }
    }
}

impl StopFailed {
    /// The stop found the host runs the command without the supervisor (`why`): no stop
    /// reaches it.
    pub fn direct(why: String) -> StopFailed {
        StopFailed {
            direct: Some(why.clone()),
            ..StopFailed::from(format!(
                "it runs without tether's supervisor on this host ({why}), which no stop \
                 reaches: it may still be running"
            ))
        }
    }
}

/// How far a stop reached a command on its host (see [`RemoteStop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Its process group was signalled and ended, or nothing of it was left to signal (it had
    /// ended, or never started).
    All,
    /// Its group was signalled, but processes of another user (`as_user`) outlived it.
    NotOthers,
    /// The stop could not be run on the host (the session failed; `refused`: the server
    /// refused its channel, under `MaxSessions 1` the command's own holding the connection's
    /// one place, which sshd keeps while the command's shell lives). A supervised command's
    /// stop is tried again (see `WorkerState::orphans`).
    Nothing {
        /// The server refused the stop's channel.
        refused: bool,
        /// The session gave no answer (see [`StopFailed::unanswered`]).
        unanswered: bool,
    },
    /// The connection was lost while the stop ran on the host: it may have sent SIGTERM, and
    /// what followed is not known. A supervised command's stop is finished over a new
    /// connection (see `WorkerState::finish_stop`), with no second SIGTERM.
    Cut,
}

impl RemoteStop {
    /// What the stop `stop` (see `script::stop_supervised`) did, in words and how far it
    /// reached, of a command whose PTY process group is `pty_group` if it has one.
    pub fn of(stop: Result<StopDone, StopFailed>, pty_group: Option<Box<PtyGroup>>) -> RemoteStop {
        let nothing_to_stop = matches!(stop, Ok(StopDone::Gone | StopDone::Never));
        let claimed = matches!(stop, Ok(StopDone::Never));
        let (how, reached) = match stop {
            Ok(done @ StopDone::Others { .. }) => (done.words(STOP_GRACE), Reached::NotOthers),
            Ok(done) => (done.words(STOP_GRACE), Reached::All),
            Err(failed) if failed.cut => (failed.how, Reached::Cut),
            Err(failed) => (
                failed.how,
                Reached::Nothing {
                    refused: failed.refused,
                    unanswered: failed.unanswered,
                },
            ),
        };
        RemoteStop {
            how,
            reached,
            nothing_to_stop,
            claimed,
            pty_group,
        }
    }

    /// Whether its process group was signalled and nothing of it outlived that.
    pub fn signalled(&self) -> bool {
        self.reached == Reached::All
    }
}

/// The `command_finished` event for `command`'s `result` after `duration`.
pub fn finished_event(
    command: &str,
    result: &Result<ExecOutput, SshError>,
    duration: Duration,
) -> EventKind {
    let (exit_code, signal, error, outcome) = match result {
        Ok(out) => match &out.status {
            ExitStatus::Code(0) => (Some(0), None, None, CommandOutcome::Ok),
            ExitStatus::Code(c) => (Some(*c), None, None, CommandOutcome::Nonzero),
            ExitStatus::Signal(s) => (None, Some(s.clone()), None, CommandOutcome::Signal),
            ExitStatus::Missing => (
                None,
                None,
                Some("no exit status received".to_string()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::HungUp => (
                None,
                None,
                Some("no exit status received; its terminal was hung up".to_string()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::MissingBeforeStart => (
                None,
                None,
                Some("no exit status received, and the command never said it started".to_string()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::Unchecked => (
                None,
                None,
                Some("no exit status received, and whether the command started is unknown".into()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::Unfollowed => (
                None,
                None,
                Some("no exit status received, and no channel could follow the command".into()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::ShellEnded(c) => (
                None,
                None,
                Some(format!(
                    "the login shell ended with exit status {c} before the command started"
                )),
                CommandOutcome::NotRun,
            ),
            ExitStatus::Unrecorded => (
                None,
                None,
                Some("no exit status recorded on the host".to_string()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::OutputLost => (
                None,
                None,
                Some("its output could not be passed on".to_string()),
                CommandOutcome::NoStatus,
            ),
            ExitStatus::SpoolRemoved => (
                None,
                None,
                Some("no exit status: its files on the host were removed while it ran".to_string()),
                CommandOutcome::NoStatus,
            ),
        },
        Err(e) => {
            let outcome = match e {
                SshError::CommandTimeout { .. } => CommandOutcome::TimedOut,
                SshError::CommandStopped {
                    reach: crate::ssh::StopReach::NotStopped,
                    ..
                } => CommandOutcome::LeftRunning,
                SshError::CommandStopped { .. } => CommandOutcome::Stopped,
                SshError::ConnectionLost { .. } => CommandOutcome::Lost,
                _ => CommandOutcome::NotRun,
            };
            (None, None, Some(e.to_string()), outcome)
        }
    };
    EventKind::Finished {
        command: command.to_string(),
        exit_code,
        signal,
        error,
        duration,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_events_name_the_outcome() {
        let out = |status| {
            Ok(ExecOutput {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
                stderr_cut: 0,
                duration: Duration::ZERO,
                started: Instant::now(),
            })
        };
        let host = || "h".to_string();
        let command = || "c".to_string();
        let cases = [
            (out(ExitStatus::Code(0)), CommandOutcome::Ok),
            (out(ExitStatus::Code(3)), CommandOutcome::Nonzero),
            (
                out(ExitStatus::Signal("TERM".into())),
                CommandOutcome::Signal,
            ),
            (out(ExitStatus::Missing), CommandOutcome::NoStatus),
            (out(ExitStatus::HungUp), CommandOutcome::NoStatus),
            (
                out(ExitStatus::MissingBeforeStart),
                CommandOutcome::NoStatus,
            ),
            (out(ExitStatus::Unchecked), CommandOutcome::NoStatus),
            (out(ExitStatus::Unrecorded), CommandOutcome::NoStatus),
            (
                Err(SshError::CommandStopped {
                    host: host(),
                    command: command(),
                    elapsed: Some(Duration::ZERO),
                    why: crate::stop::StopReason::Interrupted,
                    reach: crate::ssh::StopReach::Stopped,
                }),
                CommandOutcome::Stopped,
            ),
            (
                Err(SshError::CommandTimeout {
                    host: host(),
                    command: command(),
                    timeout: Duration::ZERO,
                    reach: crate::ssh::StopReach::Stopped,
                    stderr: Vec::new(),
                    stderr_cut: 0,
                }),
                CommandOutcome::TimedOut,
            ),
            (
                Err(SshError::ConnectionLost {
                    host: host(),
                    command: command(),
                    elapsed: Duration::ZERO,
                    reason: "eof".into(),
                }),
                CommandOutcome::Lost,
            ),
            (
                Err(SshError::Session {
                    host: host(),
                    reason: "refused".into(),
                }),
                CommandOutcome::NotRun,
            ),
        ];
        for (result, want) in cases {
            match finished_event("c", &result, Duration::ZERO) {
                EventKind::Finished { outcome, .. } => assert_eq!(outcome, want, "{result:?}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
