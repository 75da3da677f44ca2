//! What a caller asks of one command: deadline, keepalive, stdin, where stdout goes, PTY, stop
//! flag, agent forwarding, which events are reported, the re-attach bound.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ssh::supervisor::STOP_GRACE;

/// Options for one command.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Give up (and close the channel) after this long.
    pub timeout: Option<Duration>,
    /// How long opening the channel is waited for, where not [`open_timeout`]'s (tether's own
    /// scripts bounded by less, such as the end of a run's clean-up).
    pub open_within: Option<Duration>,
    /// The timeout a command given up names, where it is not `timeout`: each command of a
    /// transfer gets what is left of the transfer's whole timeout, and its failure names the
    /// whole (stop 42 tester t49: `timeout: 2.5` said "did not finish within 6.2 ms").
    pub timeout_named: Option<Duration>,
    /// Send a protocol keepalive when the session has been silent this long.
    pub keepalive: Option<Duration>,
    /// Bytes to feed to the command's stdin (then EOF, unless `stdin_from` follows); none
    /// means EOF at once.
    pub stdin: Option<Vec<u8>>,
    /// Read after `stdin`, one chunk ([`CHUNK`] bytes) at a time as the channel takes it, then
    /// EOF: a file streamed without holding it in memory. A read error ends the input there
    /// (EOF); the reader is expected to remember it for its owner.
    pub stdin_from: Option<Source>,
    /// Where the command's stdout goes, as it arrives, instead of being kept in
    /// [`ExecOutput::stdout`](super::ExecOutput::stdout) and shown as lines (a downloaded file). A write error closes the
    /// channel: [`ExecError::Local`](super::ExecError::Local).
    pub stdout_to: Option<Drain>,
    /// Run the command on a pseudo-terminal (stderr then arrives merged into stdout).
    pub pty: bool,
    /// When one of these is set while a command runs, a command under the supervisor
    /// ([`run_reporting`](super::run_reporting) with a [`Supervision`](super::Supervision)) or
    /// on a PTY has its process group stopped (SIGTERM, then SIGKILL; a PTY command that has
    /// not yet said its process group has its channel closed, which hangs up its terminal), a
    /// transfer its channel closed, and the command ends with
    /// [`ExecError::Stopped`](super::ExecError::Stopped). Any other command is waited for:
    /// closing its channel would not stop it. The caller reads why from it (see `crate::stop`).
    pub stop: crate::stop::Stop,
    /// Forward this local ssh-agent socket to the command (`ForwardAgent`; see `ssh::agent`).
    pub forward_agent: Option<std::path::PathBuf>,
    /// Environment variables to ask the server to set (`SendEnv`, `SetEnv`; see `ssh::env`),
    /// and the terminal type `SetEnv` names for a PTY (boxed: options travel in every job).
    pub env: Box<crate::ssh::config::Requests>,
    /// Which of the command's events the worker reports.
    pub echo: Echo,
    /// This command's bound on re-attaching after a lost connection (`on(.., #{ reattach: N
    /// }, ..)`), instead of the run's (`--reattach`).
    pub reattach: Option<Duration>,
    /// What tether calls the command in what it says (its events, its failure), where that is
    /// not its text: the scripts of a transfer are named as the transfer (`upload a ->
    /// /srv/a`), as the recipe asked for it.
    pub label: Option<String>,
    /// The command is a later part of one announced already, which began at this instant (a
    /// transfer's second exec, which places an upload or measures a download): its worker
    /// reports no `command_started` or `command_finished` for it, which would show the
    /// transfer twice (stop 52 tester t79); its output is shown as [`echo`](Self::echo) says;
    /// how far into the command its connection was lost, or it was stopped, counts from that
    /// instant (tester t121: `connection lost 0.4 s into `upload ...``, counted from the
    /// upload's second exec).
    pub part: Option<std::time::Instant>,
    /// How many of the last bytes of each stream the result keeps (its stdout and stderr, at
    /// most twice this many); `None` keeps them all. `tether run` shows a command's output and
    /// keeps only what a failure's tail needs: memory does not grow with the output.
    pub keep: Option<usize>,
    /// The reporter's backlog of output lines: while it is full, no more of the command's
    /// output is read (its deadline, stop and keepalives are still kept): see
    /// [`crate::sink::Backlog`].
    pub backlog: Option<Arc<crate::sink::Backlog>>,
    /// For a command on a PTY: registers, once its exec's sh says its process group, what an
    /// exit at a second signal says of it (the group, and the words that stop it), kept while
    /// the command is followed and stopped.
    pub left_running: Option<LeftRunning>,
    /// For a command under the supervisor: called once its exec's sh says it runs the
    /// command directly, with why (see `incoming::direct_words`): what an exit at a second
    /// signal says of it changes then, as no stop reaches it.
    pub direct_left: Option<DirectLeft>,
}

/// See [`ExecOptions::direct_left`]: called with why the command runs directly.
#[derive(Clone)]
pub struct DirectLeft(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for DirectLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectLeft(..)")
    }
}

/// See [`ExecOptions::left_running`]: called with the process group.
#[derive(Clone)]
pub struct LeftRunning(pub Arc<dyn Fn(&str) -> crate::interrupt::LeftBehind + Send + Sync>);

impl std::fmt::Debug for LeftRunning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeftRunning(..)")
    }
}

impl ExecOptions {
    /// These options for what is left of a command started at `started` (followed again on a
    /// new channel, or its second exec): its timeout less the time gone since.
    pub fn remaining(&self, started: std::time::Instant) -> ExecOptions {
        ExecOptions {
            timeout: self.timeout.map(|t| t.saturating_sub(started.elapsed())),
            ..self.clone()
        }
    }
}

/// How many bytes of [`ExecOptions::stdin_from`] are read at a time (the memory a streamed
/// input holds).
pub const CHUNK: usize = 64 * 1024;

/// A reader shared with whoever made it (who reads its totals afterwards).
#[derive(Clone)]
pub struct Source(pub Arc<Mutex<dyn Read + Send>>);

/// A writer shared with whoever made it.
#[derive(Clone)]
pub struct Drain(pub Arc<Mutex<dyn Write + Send>>);

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Source(..)")
    }
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain(..)")
    }
}

/// Which events of a command its worker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Echo {
    /// Started, every output line, finished.
    #[default]
    All,
    /// As `All`, without stdout lines (`capture`: the output is the value).
    NoStdout,
    /// Nothing (tether's own probes, as `tether check` runs them).
    Nothing,
}

/// Terminal type requested for PTY commands.
pub const PTY_TERM: &str = "xterm";
/// Time allowed to open a channel on a session believed healthy.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// [`OPEN_TIMEOUT`] once tether got a signal (see [`open_timeout`]).
pub const SIGNALLED_OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a channel's opening is waited for: [`OPEN_TIMEOUT`], or less once a first Ctrl-C,
/// SIGTERM or SIGHUP came, as whoever sent it may send SIGKILL next (`docker stop` does 10 s
/// after SIGTERM) and a host that opens no channel in that time is as good as lost (stop 45
/// tester t57: the stop of a blackholed host's command waited 17.5 s for its channel).
pub fn open_timeout() -> Duration {
    if crate::interrupt::signalled() {
        SIGNALLED_OPEN_TIMEOUT
    } else {
        OPEN_TIMEOUT
    }
}

/// How long a stop waits for its channel to open, and for all of it.
#[derive(Debug, Clone, Copy)]
pub struct StopPatience {
    /// For its channel's opening.
    pub open: Duration,
    /// For the whole stop, its opening included.
    pub total: Duration,
}

impl StopPatience {
    /// Where nothing says the session is hung: [`open_timeout`] to open, and the stop's
    /// [`STOP_GRACE`] beyond it (SIGTERM, then SIGKILL, then another user's processes).
    pub fn usual() -> StopPatience {
        StopPatience::opening_within(open_timeout())
    }

    /// `open` to open, and the stop's [`STOP_GRACE`] beyond the usual [`open_timeout`] once it
    /// opened: a session that opens a channel is alive.
    pub(super) fn opening_within(open: Duration) -> StopPatience {
        StopPatience {
            open,
            total: STOP_GRACE + open_timeout().max(open),
        }
    }
}
