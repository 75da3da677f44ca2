//! One remote command on a non-blocking session: stdout and stderr read together (reading one
//! to its end first deadlocks once the other fills its window), exit status or signal, an
//! optional deadline, keepalives while the command is silent.
//!
//! libssh2 reports exit status 0 when the server closed the channel without sending one (sshd's
//! `ChannelTimeout` does that to a silent command that keeps running). To tell a real 0 from a
//! missing status, the command runs under a small POSIX `sh` wrapper that writes a marker with
//! the status to stderr as its last act; the marker is stripped before anyone sees stderr.
//!
//! With a pseudo-terminal (`pty`), the server merges stderr into stdout and the terminal turns
//! `\n` into `\r\n`: the marker is then looked for (and stripped) in stdout too, and captured
//! stdout has its `\r\n` turned back into `\n`. Closing a PTY command's channel hangs up its
//! terminal, so the remote process gets SIGHUP: that is how a PTY command is stopped
//! ([`ExecOptions::stop`]). Without a PTY, closing the channel does not stop the command. A PTY
//! command fed on stdin (a sudo password under `requiretty`) gets its terminal with `ECHO`
//! off, so what it reads is never echoed into its output.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::connect::{Connection, WaitError};
use super::SshError;
use crate::command::quote;
use crate::event::{CommandOutcome, EventKind, Stream};

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
            ExitStatus::Missing => f.write_str(
                "no exit status received: the server closed the channel while the command was \
                 running (an sshd ChannelTimeout on a silent command is the usual cause); the \
                 command may still be running",
            ),
        }
    }
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (the status marker removed).
    pub stderr: Vec<u8>,
    /// Wall time from channel open to close.
    pub duration: Duration,
}

/// Why a command did not produce an [`ExecOutput`].
#[derive(Debug, Clone)]
pub enum ExecError {
    /// The channel could not be opened: the command never started, so running it on a new
    /// session is safe.
    NotStarted(String),
    /// The session failed after the command was sent: it may have partly run.
    Lost(String),
    /// The command ran past its deadline and was abandoned.
    Deadline(Duration),
    /// A PTY command was stopped through [`ExecOptions::stop`] after this long: its channel was
    /// closed, which hangs up its terminal (SIGHUP).
    Stopped(Duration),
    /// The server refused a request for this channel (a pseudo-terminal under `PermitTTY no`):
    /// the command never started, and the session is fine.
    Refused(String),
    /// Writing the command's stdout to [`ExecOptions::stdout_to`] failed (a local disk full):
    /// the channel was closed; the session is fine.
    Local(String),
}

/// Options for one command.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Give up (and close the channel) after this long.
    pub timeout: Option<Duration>,
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
    /// [`ExecOutput::stdout`] and shown as lines (a downloaded file). A write error closes the
    /// channel: [`ExecError::Local`].
    pub stdout_to: Option<Drain>,
    /// Run the command on a pseudo-terminal (stderr then arrives merged into stdout).
    pub pty: bool,
    /// When this flag is set while a PTY command runs, its channel is closed (the remote
    /// process gets SIGHUP) and the command ends with [`ExecError::Stopped`]. A command without
    /// a PTY is waited for: closing its channel would not stop it.
    pub stop: Option<Arc<AtomicBool>>,
    /// Forward this local ssh-agent socket to the command (`ForwardAgent`; see `ssh::agent`).
    pub forward_agent: Option<std::path::PathBuf>,
    /// Which of the command's events the worker reports.
    pub echo: Echo,
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
/// How often a PTY command with a stop flag checks it (at most this late).
const STOP_CHECK: Duration = Duration::from_millis(50);

const MARK: &[u8] = b"\x1etether-exit:";
/// Time allowed to open a channel on a session believed healthy.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// The wrapped form of `command` actually sent to the server.
pub fn wrap(command: &str) -> String {
    // The newline before `)` keeps a trailing `# comment` in the command from eating it.
    let script =
        format!("({command}\n); s=$?; printf '\\036tether-exit:%d\\036' \"$s\" >&2; exit \"$s\"");
    format!("sh -c {}", quote(&script))
}

/// Splits a byte stream into lines for display while keeping every byte for the result.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, data: &[u8], mut emit: impl FnMut(&str)) {
        self.partial.extend_from_slice(data);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            emit(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r'));
        }
    }

    fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.partial.is_empty() {
            emit(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
    }
}

/// Whether `tail` is the status marker or a beginning of it.
fn could_be_marker(tail: &[u8]) -> bool {
    if tail.len() <= MARK.len() {
        return MARK.starts_with(tail);
    }
    let Some(rest) = tail.strip_prefix(MARK) else {
        return false;
    };
    let digits = rest.strip_suffix(b"\x1e").unwrap_or(rest);
    digits.iter().all(|b| b.is_ascii_digit() || *b == b'-')
}

/// Holds back the tail of stderr that may be the status marker, so it is never displayed.
#[derive(Default)]
struct StderrFilter {
    held: Vec<u8>,
}

impl StderrFilter {
    /// Returns the bytes that can safely be shown now.
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(data);
        let window_start = self.held.len().saturating_sub(MARK.len() + 16);
        let keep_from = (window_start..self.held.len())
            .find(|&i| self.held[i] == 0x1e && could_be_marker(&self.held[i..]));
        match keep_from {
            Some(i) => {
                let shown = self.held[..i].to_vec();
                self.held.drain(..i);
                shown
            }
            None => std::mem::take(&mut self.held),
        }
    }

    /// At end of stream: the remaining bytes to show and the status from the marker, if the
    /// marker arrived.
    fn finish(&mut self) -> (Vec<u8>, Option<i32>) {
        let held = std::mem::take(&mut self.held);
        if let Some(rest) = held.strip_prefix(MARK) {
            if let Some(code) = rest
                .strip_suffix(b"\x1e")
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse().ok())
            {
                return (Vec::new(), Some(code));
            }
        }
        (held, None)
    }
}

/// Runs `command` (wrapped, see [`wrap`]) on `conn`, calling `on_line` for each output line as
/// it arrives.
pub fn run(
    conn: &Connection,
    command: &str,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str),
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let open_until = started + OPEN_TIMEOUT;
    let session = &conn.session;
    let mut channel = conn
        .retry(open_until, || session.channel_session())
        .map_err(|e| ExecError::NotStarted(format!("cannot open a channel: {e}")))?;
    if opts.pty {
        request_pty(conn, &mut channel, open_until, opts.stdin.is_none())?;
    }
    let mut agent = match &opts.forward_agent {
        Some(socket) => Some(
            super::agent::start(conn, &mut channel, open_until, socket.clone())
                .map_err(ExecError::Refused)?,
        ),
        None => None,
    };
    let wrapped = wrap(command);
    let lost = |what: &str, e: WaitError| ExecError::Lost(format!("{what}: {e}"));
    conn.retry(open_until, || channel.exec(&wrapped))
        .map_err(|e| lost("exec request failed", e))?;
    // The input: `stdin`'s bytes, then `stdin_from`'s, one chunk in memory at a time.
    let mut input: Vec<u8> = opts.stdin.clone().unwrap_or_default();
    let mut written = 0;
    let mut source = opts.stdin_from.clone();
    let mut stdin_open = true;

    let deadline = opts.timeout.map(|t| started + t);
    let mut next_keepalive = opts.keepalive.map(|k| Instant::now() + k);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (mut out_lines, mut err_lines) = (Lines::default(), Lines::default());
    let mut filter = StderrFilter::default();
    // With a PTY the marker arrives in stdout (the server merges the streams).
    let mut out_filter = StderrFilter::default();
    let stop = opts.stop.as_ref().filter(|_| opts.pty);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            close_now(conn, &mut channel);
            return Err(ExecError::Stopped(started.elapsed()));
        }
        let mut progressed = false;
        // Input is written in the same loop that reads output, so a command that answers
        // while it reads never deadlocks against us.
        while stdin_open {
            if written == input.len() {
                let Some(from) = &source else { break };
                input.resize(CHUNK, 0);
                written = 0;
                let n = from
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .read(&mut input)
                    .unwrap_or(0);
                input.truncate(n);
                if n == 0 {
                    source = None;
                    break;
                }
            }
            match channel.write(&input[written..]) {
                Ok(n) => {
                    written += n;
                    progressed = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The command stopped reading (or exited); a dead session shows up in the
                // reads below.
                Err(_) => stdin_open = false,
            }
        }
        if stdin_open && written == input.len() && source.is_none() {
            match channel.send_eof() {
                Ok(()) => stdin_open = false,
                Err(e) if super::connect::would_block(&e) => {}
                Err(e) => {
                    return Err(lost(
                        "closing stdin failed",
                        WaitError::Failed(e.to_string()),
                    ))
                }
            }
        }
        let mut open_streams = 0;
        for stream_id in [0, 1] {
            match channel.stream(stream_id).read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    progressed = true;
                    open_streams += 1;
                    if stream_id == 0 && opts.pty {
                        let shown = out_filter.push(&buf[..n]);
                        stdout.extend_from_slice(&shown);
                        out_lines.push(&shown, |l| on_line(Stream::Stdout, l));
                    } else if let (0, Some(to)) = (stream_id, &opts.stdout_to) {
                        let wrote =
                            to.0.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .write_all(&buf[..n]);
                        if let Err(e) = wrote {
                            close_now(conn, &mut channel);
                            return Err(ExecError::Local(format!("writing the output: {e}")));
                        }
                    } else if stream_id == 0 {
                        stdout.extend_from_slice(&buf[..n]);
                        out_lines.push(&buf[..n], |l| on_line(Stream::Stdout, l));
                    } else {
                        let shown = filter.push(&buf[..n]);
                        stderr.extend_from_slice(&shown);
                        err_lines.push(&shown, |l| on_line(Stream::Stderr, l));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open_streams += 1,
                Err(e) => {
                    return Err(lost(
                        "reading output failed",
                        WaitError::Failed(e.to_string()),
                    ))
                }
            }
        }
        if let Some(a) = agent.as_mut() {
            // Agent channels the server opened while we read (the remote command talks to
            // its SSH_AUTH_SOCK).
            progressed |= a.pump();
        }
        if open_streams == 0 && channel.eof() {
            break;
        }
        if progressed {
            continue;
        }
        let now = Instant::now();
        if let Some(d) = deadline {
            if now >= d {
                channel.close().ok();
                return Err(ExecError::Deadline(started.elapsed()));
            }
        }
        if let (Some(at), Some(every)) = (next_keepalive, opts.keepalive) {
            if now >= at {
                // A keepalive is client traffic for the server's ClientAlive counter; "would
                // block" only means it is queued.
                if let Err(e) = session.keepalive_send() {
                    if !super::connect::would_block(&e) {
                        return Err(lost("keepalive failed", WaitError::Failed(e.to_string())));
                    }
                }
                next_keepalive = Some(now + every);
            }
        }
        let mut until = now + Duration::from_millis(500);
        if agent.as_ref().is_some_and(|a| a.busy()) {
            // The agent's answers arrive on sockets this wait does not watch.
            until = until.min(now + Duration::from_millis(5));
        }
        if stop.is_some() {
            until = until.min(now + STOP_CHECK);
        }
        if let Some(d) = deadline {
            until = until.min(d);
        }
        if let Some(at) = next_keepalive {
            until = until.min(at.max(now + Duration::from_millis(1)));
        }
        match conn.wait_socket(until) {
            Ok(()) | Err(WaitError::Timeout) => {}
            Err(e) => return Err(lost("waiting for output failed", e)),
        }
    }
    if let Some(a) = agent.take() {
        a.finish(conn);
    }
    let (rest, marker) = filter.finish();
    stderr.extend_from_slice(&rest);
    err_lines.push(&rest, |l| on_line(Stream::Stderr, l));
    let (rest, out_marker) = out_filter.finish();
    stdout.extend_from_slice(&rest);
    out_lines.push(&rest, |l| on_line(Stream::Stdout, l));
    let marker = marker.or(out_marker);
    if opts.pty {
        stdout = crlf_to_lf(&stdout);
    }
    out_lines.finish(|l| on_line(Stream::Stdout, l));
    err_lines.finish(|l| on_line(Stream::Stderr, l));

    let close_until = Instant::now() + OPEN_TIMEOUT;
    conn.retry(close_until, || channel.wait_close())
        .map_err(|e| lost("waiting for the channel to close failed", e))?;
    let signal = channel
        .exit_signal()
        .ok()
        .and_then(|s| s.exit_signal)
        .filter(|s| !s.is_empty());
    let status = match (signal, marker) {
        (Some(sig), _) => ExitStatus::Signal(sig),
        (None, Some(code)) => ExitStatus::Code(code),
        (None, None) => match channel.exit_status() {
            // Without the marker a 0 is what libssh2 reports when nothing arrived.
            Ok(code) if code != 0 => ExitStatus::Code(code),
            _ => ExitStatus::Missing,
        },
    };
    Ok(ExecOutput {
        status,
        stdout,
        stderr,
        duration: started.elapsed(),
    })
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
        },
        Err(e) => {
            let outcome = match e {
                SshError::CommandTimeout { .. } => CommandOutcome::TimedOut,
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

/// Requests a pseudo-terminal for `channel` (before its exec), with `echo` as its ECHO mode.
/// A refusal (`PermitTTY no`) is [`ExecError::Refused`]; any other failure means the session
/// may be dead, and as the command has not started, [`ExecError::NotStarted`].
fn request_pty(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    until: Instant,
    echo: bool,
) -> Result<(), ExecError> {
    loop {
        let modes = (!echo).then(|| {
            let mut modes = ssh2::PtyModes::new();
            modes.set_boolean(ssh2::PtyModeOpcode::ECHO, false);
            modes.set_boolean(ssh2::PtyModeOpcode::ECHONL, false);
            modes
        });
        match channel.request_pty(PTY_TERM, modes, None) {
            Ok(()) => return Ok(()),
            Err(e) if super::connect::would_block(&e) => {
                conn.wait_socket(until).map_err(|e| {
                    ExecError::NotStarted(format!("requesting a pseudo-terminal failed: {e}"))
                })?;
            }
            Err(e) if e.code() == ssh2::ErrorCode::Session(CHANNEL_REQUEST_DENIED) => {
                return Err(ExecError::Refused(format!(
                    "the server refused a pseudo-terminal (PermitTTY no?): {e}"
                )))
            }
            Err(e) => {
                return Err(ExecError::NotStarted(format!(
                    "requesting a pseudo-terminal failed: {e}"
                )))
            }
        }
    }
}

/// libssh2's LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED.
const CHANNEL_REQUEST_DENIED: i32 = -22;

/// Closes `channel` now and waits (briefly) for the server's close: for a PTY command that
/// hangs up its terminal, so the remote process gets SIGHUP. Best effort: a session that fails
/// here shows up at its next use.
fn close_now(conn: &Connection, channel: &mut ssh2::Channel) {
    let until = Instant::now() + Duration::from_secs(2);
    let _ = conn.retry(until, || channel.close());
}

/// `\r\n` -> `\n` (a terminal's line endings back to plain ones).
fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
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
                duration: Duration::ZERO,
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
            (
                Err(SshError::CommandStopped {
                    host: host(),
                    command: command(),
                    elapsed: Duration::ZERO,
                }),
                CommandOutcome::Stopped,
            ),
            (
                Err(SshError::CommandTimeout {
                    host: host(),
                    command: command(),
                    timeout: Duration::ZERO,
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

    #[test]
    fn filter_strips_marker_split_across_reads() {
        let mut f = StderrFilter::default();
        let mut shown = f.push(b"warn\n\x1etether-");
        shown.extend(f.push(b"exit:3"));
        shown.extend(f.push(b"\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(shown, b"warn\n");
        assert_eq!(code, Some(3));
    }

    #[test]
    fn filter_keeps_unrelated_record_separators() {
        let mut f = StderrFilter::default();
        let shown = f.push(b"a\x1eb");
        let (rest, code) = f.finish();
        assert_eq!([shown, rest].concat(), b"a\x1eb");
        assert_eq!(code, None);
    }

    #[test]
    fn missing_marker_means_no_status() {
        let mut f = StderrFilter::default();
        assert_eq!(f.push(b"partial"), b"partial");
        assert_eq!(f.finish(), (Vec::new(), None));
    }

    #[test]
    fn lines_split_and_flush() {
        let mut l = Lines::default();
        let mut got = Vec::new();
        l.push(b"a\r\nb", |s| got.push(s.to_string()));
        l.push(b"c\n", |s| got.push(s.to_string()));
        l.push(b"tail", |s| got.push(s.to_string()));
        l.finish(|s| got.push(s.to_string()));
        assert_eq!(got, ["a", "bc", "tail"]);
    }

    #[test]
    fn pty_output_marker_and_line_endings() {
        // With a PTY the marker comes in stdout, after `\r\n` line endings.
        let mut f = StderrFilter::default();
        let mut shown = f.push(b"tty\r\nerr\r\n\x1etether-ex");
        shown.extend(f.push(b"it:0\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(code, Some(0));
        assert_eq!(crlf_to_lf(&shown), b"tty\nerr\n");
        assert_eq!(crlf_to_lf(b"a\rb\r\n\r"), b"a\rb\n\r");
    }

    #[test]
    fn wrapper_quotes_the_command() {
        assert_eq!(
            wrap("echo 'hi'"),
            "sh -c '(echo '\\''hi'\\''\n); s=$?; printf '\\''\\036tether-exit:%d\\036'\\'' \"$s\" >&2; exit \"$s\"'"
        );
    }
}
