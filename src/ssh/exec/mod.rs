//! One remote command on a non-blocking session: stdout and stderr read together (reading one
//! to its end first deadlocks once the other fills its window), exit status or signal, an
//! optional deadline, keepalives while the command is silent.
//!
//! sshd hands the exec request's string to the user's *login shell* (`$SHELL -c STRING`), which
//! may be sh, dash, bash, zsh, ksh, fish, tcsh or csh, and they do not quote alike: csh and
//! tcsh refuse a newline inside single quotes (`Unmatched '''.`) and expand `!` there, fish
//! reads `\\` and `\'` inside single quotes as escapes, and bsd-csh refuses a word of about
//! 8 KB (`Word too long.`). So the string is always `exec /bin/sh -c 'BOOT' sh 'ARG'...` (see
//! [`wrap`](mod@wrap)): every word is single-quoted text without a newline, `'`, `\` or `!` (those are
//! written outside the quotes as `\'`, `\\` and `\!`, which the eight shells read alike), and
//! no word is longer than 4000 bytes (a longer BOOT, the supervisor's, travels in several
//! words that `sh -c 'eval "${1}${2}..."'` joins). The command travels in the ARG words, escaped as the
//! inside of a double-quoted sh string (a newline as `${_tether_nl}`, taken from sh's default
//! `IFS`); BOOT joins them and expands them once (no decoding program on the host), and
//! bash runs the result where the host has one, else `eval` in a subshell (see
//! `command_shell.rs`). A command whose wrapped form would not fit in one exec
//! request (libssh2 refuses packets over 35000 bytes; `ssh` carries more) is first written to
//! a private temporary file on the host by an exec that reads it on stdin, then run from there
//! by a second exec, which removes the file (see [`run_reporting`]).
//!
//! Whatever the login shell prints while it starts (a banner in `~/.bashrc`, `~/.zshenv`,
//! fish's `config.fish`, `~/.tcshrc`) comes before BOOT runs. BOOT prints a start marker on
//! stdout and on stderr (on stdout only with a PTY, where the two are one) before the command;
//! everything before it on a stream is the login shell's ([`Preamble`]), never the command's
//! output. A stream that ends without the marker (the login shell failed before it ran BOOT)
//! is kept whole, so that its error shows.
//!
//! libssh2 reports exit status 0 when the server closed the channel without sending one (sshd's
//! `ChannelTimeout` does that to a silent command that keeps running). To tell a real 0 from a
//! missing status, BOOT writes a marker with the status to stderr as its last act; the marker
//! is stripped before anyone sees stderr.
//!
//! With a pseudo-terminal (`pty`), the server merges stderr into stdout and the terminal turns
//! `\n` into `\r\n`: the marker is then looked for (and stripped) in stdout too, and captured
//! stdout has its `\r\n` turned back into `\n`. Closing a PTY command's channel hangs up its
//! terminal, so the remote process gets SIGHUP: that is how a PTY command is stopped
//! ([`ExecOptions::stop`]). Without a PTY, closing the channel does not stop the command: the
//! worker runs such commands under the supervisor (`supervisor.rs`, [`Supervision`]), whose
//! process group can be stopped, and which a new session can [`resume`](resume()). A PTY
//! command fed on stdin (a sudo password under `requiretty`) gets its terminal with `ECHO`
//! off, so what it reads is never echoed into its output.

mod channel;
mod frames;
mod incoming;
mod options;
mod outcome;
mod preamble;
mod pty_stop;
mod pump;
mod resume;
mod run;
mod script;
mod standby;
mod supervision;
mod wrap;

pub use crate::chars::shown;
pub use incoming::LineEnd;
pub use options::{
    open_timeout, DirectLeft, Drain, Echo, ExecOptions, LeftRunning, Source, StopPatience, CHUNK,
    OPEN_TIMEOUT, PTY_TERM,
};
pub use outcome::{
    finished_event, ExecError, ExecOutput, ExitStatus, KeptStderr, PtyGroup, Reached, RemoteStop,
    StopFailed,
};
pub use preamble::Preamble;
pub use resume::{resume, settle, Lost};
pub use run::{run, run_reporting};
pub use script::{
    clean_supervised, stop_pty_group, stop_supervised, stop_supervised_group,
    stop_supervised_keeping_files,
};
pub use standby::{close_standby, standby_left};
pub use supervision::Supervision;
pub use wrap::{interactive, wrap, MAX_EXEC};

#[cfg(test)]
mod supervised_tests;
