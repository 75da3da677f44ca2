//! One remote command on a non-blocking session: stdout and stderr read together (reading one
//! to its end first deadlocks once the other fills its window), exit status or signal, an
//! optional deadline, keepalives while the command is silent.
//!
//! sshd hands the exec request's string to the user's *login shell* (`$SHELL -c STRING`), which
//! may be sh, dash, bash, zsh, ksh, fish, tcsh or csh, and they do not quote alike: csh and
//! tcsh refuse a newline inside single quotes (`Unmatched '''.`) and expand `!` there, fish
//! reads `\\` and `\'` inside single quotes as escapes, and bsd-csh refuses a word of about
//! 8 KB (`Word too long.`). So the string is always `exec /bin/sh -c 'BOOT' sh 'ARG'...` (see
//! [`wrap`]): every word is single-quoted text without a newline, `'`, `\` or `!` (those are
//! written outside the quotes as `\'`, `\\` and `\!`, which the eight shells read alike), and
//! no word is longer than 4000 bytes. The command travels in the ARG words, escaped as the
//! inside of a double-quoted sh string (a newline as `${_tether_nl}`, taken from sh's default
//! `IFS`); BOOT joins them, expands them once and `eval`s the result in a subshell: no fork
//! and no decoding program on the host. A command whose wrapped form would not fit in one exec
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
//! process group can be stopped, and which a new session can [`resume`]. A PTY
//! command fed on stdin (a sudo password under `requiretty`) gets its terminal with `ECHO`
//! off, so what it reads is never echoed into its output.

use std::io::{Read, Write};
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
    /// Everything it wrote to stdout (not what the login shell printed before it: see
    /// [`Preamble`]).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (the status marker and the login shell's preamble
    /// removed).
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
    /// A command was stopped through [`ExecOptions::stop`] after this long: a PTY command's
    /// channel closed (which hangs up its terminal), a supervised command's process group
    /// stopped. Why is in the [`ExecOptions::stop`] that was set.
    Stopped(Duration),
    /// The server refused a request for this channel (a pseudo-terminal under `PermitTTY no`):
    /// the command never started, and the session is fine.
    Refused(String),
    /// Writing the command's stdout to [`ExecOptions::stdout_to`] failed (a local disk full):
    /// the channel was closed; the session is fine.
    Local(String),
    /// The command was too long for one exec request and could not be written to a temporary
    /// file on the host (`mktemp` failed, the disk is full): it never started, and the session
    /// is fine.
    NotStaged(String),
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
    /// When one of these is set while a PTY command runs, its channel is closed (the remote
    /// process gets SIGHUP) and the command ends with [`ExecError::Stopped`]; a command under
    /// the supervisor ([`run_reporting`] with a [`Supervision`]) has its process group stopped
    /// (SIGTERM, then SIGKILL). Any other command is waited for: closing its channel would not
    /// stop it. The caller reads why from it (see `crate::stop`).
    pub stop: crate::stop::Stop,
    /// Forward this local ssh-agent socket to the command (`ForwardAgent`; see `ssh::agent`).
    pub forward_agent: Option<std::path::PathBuf>,
    /// Which of the command's events the worker reports.
    pub echo: Echo,
    /// This command's bound on re-attaching after a lost connection (`on(.., #{ reattach: N
    /// }, ..)`), instead of the run's (`--reattach`).
    pub reattach: Option<Duration>,
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
/// What the wrapper prints before the command (see [`Preamble`]).
const START: &[u8] = b"\x1etether-start\x1e";
/// Time allowed to open a channel on a session believed healthy.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest exec request string sent as is: libssh2 refuses to send a packet of 35000
/// bytes or more (`MAX_SSH_PACKET_LEN`, less 256 for its framing, less the request's own
/// fields). A longer command is staged in a file on the host first.
const MAX_EXEC: usize = 32 * 1024;
/// The longest word (as written, quotes included) given to the login shell: bsd-csh refuses
/// words from about 8190 bytes on (`Word too long.`).
const MAX_WORD: usize = 4000;

/// The sh program the login shell starts (`/bin/sh -c BOOT sh ARG...`): it joins its
/// arguments, expands them as the inside of a double-quoted string (a newline is written
/// `${_tether_nl}`, taken from the default `IFS`: space, tab, newline), prints the start
/// marker (on stdout, and on stderr unless `pty`), runs the result in a subshell with no
/// positional parameters, and reports its status. Written with `"` and `\` only where the
/// login shell sees them outside its quotes (see [`shell_word`]).
///
/// With `supervised` (never with `pty`) the first argument is the command's id, followed by
/// the ids of directories to remove (space-separated), and the command runs under the
/// supervisor (see `supervisor.rs`).
fn boot(pty: bool, supervised: bool) -> String {
    let start = r#"printf "\036tether-start\036""#;
    let start_err = if pty {
        String::new()
    } else {
        format!(" {start} >&2;")
    };
    let decode = r#"_tether_ifs=$IFS; _tether_nl=${_tether_ifs#??}; IFS=; eval "_tether_cmd=\"$*\""; IFS=$_tether_ifs; unset _tether_ifs _tether_nl; set --;"#;
    if supervised {
        return format!(
            r#"_tether_id=${{1%% *}}; _tether_done=${{1#"$_tether_id"}}; shift; {decode} {}"#,
            super::supervisor::boot(&format!("{start};{start_err}"))
        );
    }
    format!(
        r#"{decode} {start};{start_err} (eval "unset _tether_cmd; $_tether_cmd"); _tether_s=$?; printf "\036tether-exit:%d\036" "$_tether_s" >&2; exit "$_tether_s""#
    )
}

/// The exec request string that runs the sh program `script` with `args` (none may hold a
/// newline, `'`, `\` or `!`... each is one [`shell_word`]).
fn wrap_script(script: &str, args: &[&str]) -> String {
    let mut out = format!("exec /bin/sh -c {} sh", shell_word(script));
    for arg in args {
        out.push(' ');
        out.push_str(&shell_word(arg));
    }
    out
}

/// The start markers of a resume or stop exec (without a PTY).
fn start_markers() -> String {
    let start = r#"printf "\036tether-start\036""#;
    format!("{start}; {start} >&2;")
}

/// `text` as one word that sh, dash, bash, zsh, ksh, fish, tcsh and csh all read as `text`:
/// single-quoted, with `'`, `\` and `!` written outside the quotes, backslash-escaped. `text`
/// must not hold a newline (csh cannot quote one alike).
fn shell_word(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    let mut open = false;
    for c in text.chars() {
        if matches!(c, '\'' | '\\' | '!') {
            if open {
                out.push('\'');
                open = false;
            }
            out.push('\\');
        } else if !open {
            out.push('\'');
            open = true;
        }
        out.push(c);
    }
    if open {
        out.push('\'');
    } else if text.is_empty() {
        out.push_str("''");
    }
    out
}

/// What `c` costs in a [`shell_word`] at most (a quote closed and opened again around it).
fn word_cost(c: char) -> usize {
    if matches!(c, '\'' | '\\' | '!') {
        4
    } else {
        c.len_utf8()
    }
}

/// `command` escaped as the inside of a double-quoted sh string, in pieces that each make a
/// [`shell_word`] of at most [`MAX_WORD`] bytes (no escape is split).
fn command_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut cost = 2;
    for c in command.chars() {
        let piece: std::borrow::Cow<str> = match c {
            '\n' => "${_tether_nl}".into(),
            '\\' | '$' | '`' | '"' => format!("\\{c}").into(),
            _ => c.to_string().into(),
        };
        let piece_cost: usize = piece.chars().map(word_cost).sum();
        if cost + piece_cost > MAX_WORD && !word.is_empty() {
            words.push(shell_word(&word));
            word.clear();
            cost = 2;
        }
        word.push_str(&piece);
        cost += piece_cost;
    }
    if !word.is_empty() {
        words.push(shell_word(&word));
    }
    words
}

/// The exec request string for `command` (without a PTY): the same in every login shell (see
/// the module documentation).
pub fn wrap(command: &str) -> String {
    wrap_for(command, false, None)
}

/// [`wrap`], for a command on a PTY when `pty` (the start marker only on stdout), under the
/// supervisor with the id `supervised`.
fn wrap_for(command: &str, pty: bool, supervised: Option<&str>) -> String {
    let mut out = format!(
        "exec /bin/sh -c {} sh",
        shell_word(&boot(pty, supervised.is_some()))
    );
    if let Some(id) = supervised {
        out.push(' ');
        out.push_str(&shell_word(id));
    }
    for word in command_words(command) {
        out.push(' ');
        out.push_str(&word);
    }
    out
}

/// What the login shell printed before the command ran (its start-up files' chatter), per
/// stream; with a PTY everything is in `stdout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preamble {
    /// Bytes on stdout before the start marker.
    pub stdout: Vec<u8>,
    /// Bytes on stderr before the start marker.
    pub stderr: Vec<u8>,
}

impl Preamble {
    /// Whether the login shell printed nothing.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }
}

/// Holds a stream back until the start marker, which splits the login shell's preamble from
/// the command's output.
#[derive(Default)]
struct StartFilter {
    held: Vec<u8>,
    /// The marker was seen (or none is expected): everything passes.
    open: bool,
    preamble: Vec<u8>,
}

impl StartFilter {
    /// A filter for a stream that carries no start marker (stderr under a PTY).
    fn open() -> Self {
        StartFilter {
            open: true,
            ..StartFilter::default()
        }
    }

    /// The bytes of `data` that are the command's.
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.open {
            return data.to_vec();
        }
        // Only where the marker could end in the new bytes: held bytes were searched before
        // (a stream without the marker must not cost a search of everything per read).
        let from = self.held.len().saturating_sub(START.len() - 1);
        self.held.extend_from_slice(data);
        let found = self.held[from..]
            .windows(START.len())
            .position(|w| w == START);
        match found.map(|i| from + i) {
            Some(i) => {
                self.open = true;
                let rest = self.held.split_off(i + START.len());
                self.held.truncate(i);
                self.preamble = std::mem::take(&mut self.held);
                rest
            }
            None => Vec::new(),
        }
    }

    /// At end of stream: what is still held. Without a marker nothing tells the login shell's
    /// output from the command's, so all of it is shown (the login shell's own error, when it
    /// could not start the command).
    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
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
    let frames = [super::supervisor::TICK, super::supervisor::GONE];
    if frames
        .iter()
        .any(|f| tail.len() < f.len() && f.starts_with(tail))
    {
        return true;
    }
    if tail.len() <= MARK.len() {
        return MARK.starts_with(tail);
    }
    let Some(rest) = tail.strip_prefix(MARK) else {
        return false;
    };
    let digits = rest.strip_suffix(b"\x1e").unwrap_or(rest);
    digits.iter().all(|b| b.is_ascii_digit() || *b == b'-')
}

/// Holds back the tail of stderr that may be the status marker, so it is never displayed;
/// removes the supervisor's frames ([`super::supervisor::TICK`], and notes
/// [`super::supervisor::GONE`]).
#[derive(Default)]
struct StderrFilter {
    held: Vec<u8>,
    /// A resume found the command's directory gone.
    gone: bool,
}

/// Removes every whole `frame` from `data`; whether there was one.
fn strip_frame(data: &mut Vec<u8>, frame: &[u8]) -> bool {
    let mut found = false;
    let mut from = 0;
    while let Some(i) = data[from..].windows(frame.len()).position(|w| w == frame) {
        data.drain(from + i..from + i + frame.len());
        from += i;
        found = true;
    }
    found
}

impl StderrFilter {
    /// Returns the bytes that can safely be shown now.
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(data);
        if self.held.contains(&0x1e) {
            strip_frame(&mut self.held, super::supervisor::TICK);
            self.gone |= strip_frame(&mut self.held, super::supervisor::GONE);
        }
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

/// One output stream on its way in: the start filter (the login shell's preamble), then, where
/// the status marker may arrive, the marker filter, then the bytes kept and the lines shown.
struct Incoming {
    stream: Stream,
    start: StartFilter,
    status: Option<StderrFilter>,
    bytes: Vec<u8>,
    lines: Lines,
    /// Where the stream's bytes go instead of `bytes` and `lines` ([`ExecOptions::stdout_to`]).
    drain: Option<Drain>,
    /// How many of the command's bytes went on (to `bytes` or the drain): under the
    /// supervisor, where a resume continues the stream.
    kept: u64,
}

impl Incoming {
    fn new(stream: Stream, start: StartFilter, status: bool) -> Self {
        Incoming {
            stream,
            start,
            status: status.then(StderrFilter::default),
            bytes: Vec::new(),
            lines: Lines::default(),
            drain: None,
            kept: 0,
        }
    }

    /// Takes bytes as they arrived; an error when writing them to the drain failed.
    fn push(&mut self, data: &[u8], on_line: &mut dyn FnMut(Stream, &str)) -> std::io::Result<()> {
        let data = self.start.push(data);
        let shown = match &mut self.status {
            Some(filter) => filter.push(&data),
            None => data,
        };
        self.keep(&shown, on_line)
    }

    fn keep(&mut self, shown: &[u8], on_line: &mut dyn FnMut(Stream, &str)) -> std::io::Result<()> {
        self.kept += shown.len() as u64;
        if let Some(drain) = &self.drain {
            return drain
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(shown);
        }
        self.bytes.extend_from_slice(shown);
        let stream = self.stream;
        self.lines.push(shown, |l| on_line(stream, l));
        Ok(())
    }

    /// At end of stream: the rest goes out (but for the last partial line); the status from
    /// the marker, if it arrived here, and whether writing the rest to the drain worked.
    fn end(&mut self, on_line: &mut dyn FnMut(Stream, &str)) -> (Option<i32>, std::io::Result<()>) {
        let held = self.start.finish();
        let (rest, code) = match &mut self.status {
            Some(filter) => {
                let mut shown = filter.push(&held);
                let (rest, code) = filter.finish();
                shown.extend_from_slice(&rest);
                (shown, code)
            }
            None => (held, None),
        };
        let kept = self.keep(&rest, on_line);
        (code, kept)
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
    run_reporting(conn, command, opts, on_line, &mut Preamble::default(), None)
}

/// A command under the supervisor (see `supervisor.rs`): what its caller keeps to resume it
/// after a lost connection, and what became of it.
pub struct Supervision {
    /// The command's id on the host (the name of its private directory).
    pub id: String,
    /// Both streams as received so far; kept when the connection was lost while the command
    /// ran under the supervisor, for [`resume`] to continue.
    streams: Option<Streams>,
    /// Why the host ran the command directly instead (the supervisor could not run there).
    pub direct: Option<String>,
    /// What stopping the command's process group did, after a timeout or a stop flag.
    pub stopped: Option<String>,
    /// Where the command runs on the host (its process group and files), once the exec's sh
    /// said so: what tether names when it cannot stop the command.
    pub place: Option<super::supervisor::Placement>,
    /// A resume found the command's directory gone: how it ended is unknown.
    pub gone: bool,
    /// Ids of earlier commands whose results were read: the supervisor removes their
    /// directories.
    pub done: Vec<String>,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            id: super::supervisor::new_id(),
            streams: None,
            direct: None,
            stopped: None,
            place: None,
            gone: false,
            done: Vec::new(),
        }
    }
}

impl Supervision {
    /// Whether the command, lost with its connection, can be resumed (it ran under the
    /// supervisor and all of its stdin had been sent).
    pub fn resumable(&self) -> bool {
        self.streams.is_some()
    }

    /// How many bytes of stdout and stderr have arrived.
    pub fn received(&self) -> (u64, u64) {
        self.streams
            .as_ref()
            .map_or((0, 0), |s| (s.out.kept, s.err.kept))
    }
}

/// Both output streams of one command on their way in.
struct Streams {
    out: Incoming,
    err: Incoming,
    /// All of the command's stdin was sent (and EOF).
    stdin_done: bool,
}

impl Streams {
    fn new(opts: &ExecOptions) -> Self {
        // With a PTY the status marker arrives in stdout (the server merges the streams), and
        // the start marker is printed there only.
        let mut out = Incoming::new(Stream::Stdout, StartFilter::default(), opts.pty);
        // A PTY merges stderr (and the status marker) into stdout: that stays in memory.
        out.drain = opts.stdout_to.clone().filter(|_| !opts.pty);
        let err_start = if opts.pty {
            StartFilter::open()
        } else {
            StartFilter::default()
        };
        Streams {
            out,
            err: Incoming::new(Stream::Stderr, err_start, true),
            stdin_done: false,
        }
    }

    /// Whether the exec's sh has started the command under the supervisor: its start marker
    /// came on stderr, without the frame that says it runs the command directly before it.
    fn supervised(&self) -> bool {
        self.err.start.open && direct_reason(&self.err.start.preamble).is_none()
    }
}

/// The reason in the supervisor's "runs directly" frame in `preamble`, if there is one.
fn direct_reason(preamble: &[u8]) -> Option<(usize, usize, String)> {
    let from = preamble
        .windows(super::supervisor::DIRECT.len())
        .position(|w| w == super::supervisor::DIRECT)?;
    let text = from + super::supervisor::DIRECT.len();
    let end = text + preamble[text..].iter().position(|&b| b == 0x1e)?;
    Some((
        from,
        end + 1,
        String::from_utf8_lossy(&preamble[text..end]).into_owned(),
    ))
}

/// [`run`], which also sets `preamble` to what the login shell printed before the command;
/// with `sup` (and no PTY), under the supervisor (see `supervisor.rs`).
///
/// A command whose wrapped form is longer than one exec request carries is staged: a first
/// exec (no PTY, no agent) writes it from its stdin to a private temporary file (`mktemp`,
/// mode 0600, in `$TMPDIR` or `/tmp`) and prints the file's name; the second runs it from the
/// file, which it removes before the command starts. The command's own stdin, PTY and agent
/// are the second exec's, as for any command. The staging exec failing is
/// [`ExecError::NotStaged`] (nothing ran); its channel failing is reported like the command's.
pub fn run_reporting(
    conn: &Connection,
    command: &str,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str),
    preamble: &mut Preamble,
    sup: Option<&mut Supervision>,
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let sup = sup.filter(|_| !opts.pty);
    let id = sup.as_ref().map(|s| {
        std::iter::once(&s.id)
            .chain(&s.done)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let wrapped = wrap_for(command, opts.pty, id.as_deref());
    if wrapped.len() <= MAX_EXEC {
        return run_wrapped(conn, &wrapped, opts, on_line, preamble, sup);
    }
    let path = stage(conn, command, opts)?;
    let staged = format!(
        "_tether_f={}; _tether_c=$(cat \"$_tether_f\" && echo .); _tether_r=$?; \
         rm -f \"$_tether_f\"; [ \"$_tether_r\" = 0 ] || exit 126; \
         eval \"unset _tether_f _tether_c _tether_r; ${{_tether_c%.}}\"",
        quote(&path)
    );
    let mut rest = opts.clone();
    if let Some(t) = opts.timeout {
        rest.timeout = Some(t.saturating_sub(started.elapsed()));
    }
    let mut out = run_wrapped(
        conn,
        &wrap_for(&staged, opts.pty, id.as_deref()),
        &rest,
        on_line,
        preamble,
        sup,
    )?;
    out.duration = started.elapsed();
    Ok(out)
}

/// Continues the supervised command of `sup`, lost with its connection, on `conn` (a new
/// session): each stream from the byte where it stopped, then the command's real exit status.
/// The command is not sent again (see `supervisor.rs`). With its directory gone, `sup.gone` is
/// set and the status is [`ExitStatus::Missing`]. A resume lost in turn keeps `sup`
/// resumable.
pub fn resume(
    conn: &Connection,
    sup: &mut Supervision,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str),
    preamble: &mut Preamble,
) -> Result<ExecOutput, ExecError> {
    let (out, err) = sup.received();
    let wrapped = wrap_script(
        &super::supervisor::resume(&start_markers()),
        &[&sup.id, &out.to_string(), &err.to_string()],
    );
    let opts = ExecOptions {
        stdin: None,
        stdin_from: None,
        ..opts.clone()
    };
    run_wrapped(conn, &wrapped, &opts, on_line, preamble, Some(sup))
}

/// Removes the directories of the supervised commands `ids` on `conn` (their results were
/// read); best effort, within a few seconds.
pub fn clean_supervised(conn: &Connection, ids: &[String]) {
    let opts = ExecOptions {
        timeout: Some(Duration::from_secs(3)),
        ..ExecOptions::default()
    };
    let args: Vec<&str> = ids.iter().map(String::as_str).collect();
    let wrapped = wrap_script(&super::supervisor::clean(), &args);
    let _ = run_wrapped(
        conn,
        &wrapped,
        &opts,
        &mut |_, _| {},
        &mut Preamble::default(),
        None,
    );
}

/// Stops the supervised command `id` on `conn`: SIGTERM to its process group, SIGKILL after
/// [`super::supervisor::STOP_GRACE`], its directory removed. Says what that did; Err says why
/// stopping it failed (the command may still run).
pub fn stop_supervised(conn: &Connection, id: &str) -> Result<String, String> {
    let grace = super::supervisor::STOP_GRACE;
    let opts = ExecOptions {
        timeout: Some(grace + OPEN_TIMEOUT),
        ..ExecOptions::default()
    };
    let wrapped = wrap_script(
        &super::supervisor::stop(&start_markers()),
        &[id, &grace.as_secs().to_string()],
    );
    match run_wrapped(
        conn,
        &wrapped,
        &opts,
        &mut |_, _| {},
        &mut Preamble::default(),
        None,
    ) {
        Ok(out) if out.status.success() => Ok(super::supervisor::stop_report(&out.stdout, grace)),
        Ok(out) => Err(format!("stopping it failed ({})", out.status)),
        Err(e) => Err(format!("stopping it failed ({e:?})")),
    }
}

/// Writes `command` to a private temporary file on the host (see [`run_reporting`]); returns
/// the file's path.
fn stage(conn: &Connection, command: &str, opts: &ExecOptions) -> Result<String, ExecError> {
    const WRITE: &str = "umask 077 && f=$(mktemp \"${TMPDIR:-/tmp}/tether-cmd.XXXXXX\") || exit; \
         cat >\"$f\" && printf %s \"$f\" || { s=$?; rm -f \"$f\"; exit \"$s\"; }";
    let stage_opts = ExecOptions {
        timeout: opts.timeout,
        keepalive: opts.keepalive,
        stdin: Some(command.as_bytes().to_vec()),
        ..ExecOptions::default()
    };
    let out = run_wrapped(
        conn,
        &wrap_for(WRITE, false, None),
        &stage_opts,
        &mut |_, _| {},
        &mut Preamble::default(),
        None,
    )?;
    let path = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && path.starts_with('/') && !path.contains('\n') {
        return Ok(path.into_owned());
    }
    Err(ExecError::NotStaged(format!(
        "the command ({} bytes) is too long for one exec request, and writing it to a \
         temporary file on the host failed ({}): {}",
        command.len(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Runs the exec request string `wrapped` on a new channel of `conn`; with `sup`, a command
/// under the supervisor (resumed when `sup` holds its streams).
fn run_wrapped(
    conn: &Connection,
    wrapped: &str,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str),
    preamble: &mut Preamble,
    mut sup: Option<&mut Supervision>,
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
    let lost = |what: &str, e: WaitError| ExecError::Lost(format!("{what}: {e}"));
    conn.retry(open_until, || channel.exec(wrapped))
        .map_err(|e| lost("exec request failed", e))?;
    let mut streams = match sup.as_deref_mut().and_then(|s| s.streams.take()) {
        // A resume: a new login shell's preamble, and no held bytes that might have been a
        // frame (the spool files have every byte of the command's).
        Some(mut kept) => {
            kept.out.start = StartFilter::default();
            kept.err.start = StartFilter::default();
            kept.err.status = Some(StderrFilter::default());
            kept
        }
        None => Streams::new(opts),
    };
    let supervised = sup.is_some();
    let pumped = pump(
        conn,
        &mut channel,
        &mut streams,
        opts,
        supervised,
        &mut agent,
        on_line,
        started,
    );
    match pumped {
        Ok(()) => {}
        Err(ExecError::Lost(reason)) => {
            if let Some(sup) = sup {
                if let Some((_, place)) = super::supervisor::placement(&streams.err.start.preamble)
                {
                    sup.place = Some(place);
                }
                if streams.supervised() && streams.stdin_done {
                    sup.streams = Some(streams);
                }
            }
            return Err(ExecError::Lost(reason));
        }
        Err(e @ (ExecError::Stopped(_) | ExecError::Deadline(_))) => {
            match sup.filter(|_| streams.supervised()) {
                // The exec's sh ends once the command's process group is gone.
                Some(sup) => {
                    sup.stopped = Some(match stop_supervised(conn, &sup.id) {
                        Ok(how) | Err(how) => how,
                    });
                    close_now(conn, &mut channel);
                }
                // Abandoned: closing its channel does not wait for it.
                None if matches!(e, ExecError::Deadline(_)) => drop(channel.close()),
                None => {}
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    let Streams {
        mut out, mut err, ..
    } = streams;
    let (err_marker, _) = err.end(on_line);
    let (out_marker, kept) = out.end(on_line);
    if let Err(e) = kept {
        close_now(conn, &mut channel);
        return Err(ExecError::Local(format!("writing the output: {e}")));
    }
    let marker = err_marker.or(out_marker);
    let (mut stdout, stderr) = (out.bytes, err.bytes);
    preamble.stdout = out.start.preamble;
    preamble.stderr = err.start.preamble;
    if let Some((from, to, reason)) = direct_reason(&preamble.stderr) {
        preamble.stderr.drain(from..to);
        if let Some(sup) = sup.as_deref_mut() {
            sup.direct = Some(reason);
        }
    }
    if let Some((range, place)) = super::supervisor::placement(&preamble.stderr) {
        preamble.stderr.drain(range);
        if let Some(sup) = sup.as_deref_mut() {
            sup.place = Some(place);
        }
    }
    if opts.pty {
        stdout = crlf_to_lf(&stdout);
        preamble.stdout = crlf_to_lf(&preamble.stdout);
    }
    out.lines.finish(|l| on_line(Stream::Stdout, l));
    err.lines.finish(|l| on_line(Stream::Stderr, l));

    let close_until = Instant::now() + OPEN_TIMEOUT;
    conn.retry(close_until, || channel.wait_close())
        .map_err(|e| lost("waiting for the channel to close failed", e))?;
    let signal = channel
        .exit_signal()
        .ok()
        .and_then(|s| s.exit_signal)
        .filter(|s| !s.is_empty());
    let gone = err.status.as_ref().is_some_and(|f| f.gone);
    if let Some(sup) = sup {
        sup.gone = gone;
    }
    let status = match (signal, marker) {
        _ if gone => ExitStatus::Missing,
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

/// Feeds `channel` its stdin and reads both streams into `streams` until it ends (Ok), is
/// lost, stopped (a PTY command, or one under the supervisor), or past its deadline.
#[allow(clippy::too_many_arguments)]
fn pump(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    streams: &mut Streams,
    opts: &ExecOptions,
    supervised: bool,
    agent: &mut Option<super::agent::Forwarder>,
    on_line: &mut dyn FnMut(Stream, &str),
    started: Instant,
) -> Result<(), ExecError> {
    let session = &conn.session;
    let lost = |what: &str, e: WaitError| ExecError::Lost(format!("{what}: {e}"));
    // The input: `stdin`'s bytes, then `stdin_from`'s, one chunk in memory at a time.
    let mut input: Vec<u8> = opts.stdin.clone().unwrap_or_default();
    let mut written = 0;
    let mut source = opts.stdin_from.clone();
    let mut stdin_open = true;
    let deadline = opts.timeout.map(|t| started + t);
    let mut next_keepalive = opts.keepalive.map(|k| Instant::now() + k);
    let Streams {
        out,
        err,
        stdin_done,
    } = streams;
    // A command without a PTY is stopped only under the supervisor (closing its channel would
    // not stop it), or when it is a transfer: closing its channel ends the remote `cat` (an
    // upload's shell then sees too few bytes and removes its temporary file).
    let transfer = opts.stdin_from.is_some() || opts.stdout_to.is_some();
    let stop = Some(&opts.stop).filter(|s| !s.is_empty() && (opts.pty || supervised || transfer));
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // Under the supervisor the channel stays open while its process group is stopped
        // (the caller does that, then closes it): the exec's sh ends with the command.
        let attached = supervised && err.start.open && direct_reason(&err.start.preamble).is_none();
        if stop.is_some_and(|s| s.is_set()) && (opts.pty || transfer || attached) {
            if !attached {
                close_now(conn, channel);
            }
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
                Ok(()) => {
                    stdin_open = false;
                    *stdin_done = true;
                }
                Err(e) if super::connect::would_block(&e) => {}
                Err(e) => {
                    return Err(lost(
                        "closing stdin failed",
                        WaitError::Failed(super::wording::plain(&e)),
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
                    let incoming = if stream_id == 0 { &mut *out } else { &mut *err };
                    if let Err(e) = incoming.push(&buf[..n], on_line) {
                        close_now(conn, channel);
                        return Err(ExecError::Local(format!("writing the output: {e}")));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open_streams += 1,
                Err(e) => {
                    return Err(lost(
                        "reading output failed",
                        WaitError::Failed(super::wording::plain_io(&e, session)),
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
                // The caller closes the channel (after stopping a supervised command).
                return Err(ExecError::Deadline(started.elapsed()));
            }
        }
        if let (Some(at), Some(every)) = (next_keepalive, opts.keepalive) {
            if now >= at {
                // A keepalive is client traffic for the server's ClientAlive counter; "would
                // block" only means it is queued.
                if let Err(e) = session.keepalive_send() {
                    if !super::connect::would_block(&e) {
                        return Err(lost(
                            "keepalive failed",
                            WaitError::Failed(super::wording::plain(&e)),
                        ));
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
    Ok(())
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
                    why: crate::stop::StopReason::Interrupted,
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

    /// The login shells [`wrap`] is written for, as Debian installs them.
    const LOGIN_SHELLS: [&str; 8] = [
        "/bin/sh",
        "/bin/dash",
        "/bin/bash",
        "/bin/zsh",
        "/bin/ksh93",
        "/usr/bin/fish",
        "/bin/tcsh",
        "/bin/bsd-csh",
    ];

    /// Runs `string` as sshd would, through `shell -c`, in an empty HOME; stdout, stderr, code.
    fn as_sshd(shell: &str, string: &str, stdin: &[u8]) -> (Vec<u8>, Vec<u8>, Option<i32>) {
        use std::io::Write as _;
        let home = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(shell)
            .arg("-c")
            .arg(string)
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{shell}: {e} (scripts/test installs the login shells tests use)")
            });
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (out.stdout, out.stderr, out.status.code())
    }

    #[test]
    fn every_login_shell_reads_the_wrapped_command_alike() {
        // Quotes of every kind, `$`, `!`, a backslash, newlines, a comment at the end, a tab,
        // non-ASCII text, a long line, and the command's own stdin.
        let long = "x".repeat(9000);
        let command = format!(
            "printf '%s|' \"it's\" '\"q\"' '$HOME' \"${{UNSET-d}}\" 'bang!' 'a\\b' `echo bt` '\té'\n\
             read -r line; echo \"[$line] $# $0\"\nprintf %s {long} | wc -c\n\
             case x in x) echo multi\n;; esac; exit 3 # done"
        );
        let want = "it's|\"q\"|$HOME|d|bang!|a\\b|bt|\t\u{e9}|[from stdin] 0 sh\n9000\nmulti\n";
        for shell in LOGIN_SHELLS {
            let wrapped = wrap(&command);
            assert!(!wrapped.contains('\n'), "{wrapped}");
            for word in wrapped.split(' ') {
                assert!(
                    word.len() <= MAX_WORD,
                    "{shell}: a word of {} bytes",
                    word.len()
                );
            }
            let (stdout, stderr, code) = as_sshd(shell, &wrapped, b"from stdin\n");
            let mut start = StartFilter::default();
            let mut shown = start.push(&stdout);
            shown.extend(start.finish());
            assert_eq!(String::from_utf8_lossy(&shown), want, "{shell}");
            let mut start = StartFilter::default();
            let mut status = StderrFilter::default();
            let mut err = status.push(&start.push(&stderr));
            let (rest, marker) = status.finish();
            err.extend(rest);
            assert_eq!(
                (String::from_utf8_lossy(&err).as_ref(), marker),
                ("", Some(3)),
                "{shell}"
            );
            assert_eq!(code, Some(3), "{shell}");
        }
    }

    #[test]
    fn the_start_marker_splits_the_preamble_from_the_output() {
        let mut f = StartFilter::default();
        let mut shown = f.push(b"Welcome to host1\n\x1etether-st");
        shown.extend(f.push(b"art\x1eout"));
        shown.extend(f.push(b"put\n"));
        shown.extend(f.finish());
        assert_eq!(shown, b"output\n");
        assert_eq!(f.preamble, b"Welcome to host1\n");
        // No marker: the login shell failed before the command; its words are shown.
        let mut f = StartFilter::default();
        assert_eq!(f.push(b"tcsh: /bin/sh: Command not found."), b"");
        assert_eq!(f.finish(), b"tcsh: /bin/sh: Command not found.");
        assert_eq!(StartFilter::open().push(b"x"), b"x");
    }

    #[test]
    fn words_are_safe_in_every_shells_single_quotes() {
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("it's!"), r"'it'\''s'\!");
        assert_eq!(shell_word(r"\x"), r"\\'x'");
        let words = command_words(&"ab'\n".repeat(2000));
        assert!(words.len() > 1);
        assert!(words
            .iter()
            .all(|w| w.len() <= MAX_WORD && !w.contains('\n')));
        assert!(wrap("true").starts_with("exec /bin/sh -c '_tether_ifs=$IFS; "));
        assert!(wrap("true").ends_with(" sh 'true'"));
    }
}

#[cfg(test)]
mod supervised_tests {
    use super::*;

    /// Runs `string` with `shell -c` in an empty HOME with `TMPDIR` set; stdout, stderr, code.
    fn as_sshd_tmp(
        shell: &str,
        string: &str,
        stdin: &[u8],
        tmp: &std::path::Path,
    ) -> (Vec<u8>, Vec<u8>, Option<i32>) {
        use std::io::Write as _;
        let home = tempfile::tempdir().unwrap();
        use std::os::unix::process::CommandExt as _;
        // As sshd starts a session: in a process group of its own.
        let mut child = std::process::Command::new(shell)
            .process_group(0)
            .arg("-c")
            .arg(string)
            .env_clear()
            .env("HOME", home.path())
            .env("TMPDIR", tmp)
            .env("LOGNAME", "someone")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (out.stdout, out.stderr, out.status.code())
    }

    /// What tether makes of both streams: the command's stdout, stderr and the marker status.
    fn read(stdout: &[u8], stderr: &[u8]) -> (String, String, Option<i32>, Vec<u8>) {
        let mut start = StartFilter::default();
        let mut out = start.push(stdout);
        out.extend(start.finish());
        let mut start = StartFilter::default();
        let mut status = StderrFilter::default();
        let mut err = status.push(&start.push(stderr));
        let (rest, marker) = status.finish();
        err.extend(rest);
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
            marker,
            start.preamble,
        )
    }

    #[test]
    fn the_supervisor_runs_the_command_and_removes_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let command = "read -r l; echo \"[$l] $# $0\"; echo warn >&2; printf tail; exit 3";
        for shell in ["/bin/sh", "/bin/bash"] {
            let wrapped = wrap_for(command, false, Some("id1"));
            assert!(wrapped.split(' ').all(|w| w.len() <= MAX_WORD));
            let (stdout, stderr, code) = as_sshd_tmp(shell, &wrapped, b"in\n", tmp.path());
            let (out, err, marker, preamble) = read(&stdout, &stderr);
            assert_eq!(out, "[in] 0 sh\ntail", "{shell}");
            assert_eq!(err, "warn\n", "{shell}");
            assert_eq!((marker, code), (Some(3), Some(3)), "{shell}");
            assert!(direct_reason(&preamble).is_none(), "{shell}");
            // Kept until tether has read the result; the next command removes it.
            let dir = tmp.path().join("tether-someone/id1.o");
            assert!(dir.exists(), "{shell}");
            let next = wrap_for("true", false, Some("id5 id1"));
            let (_, _, code) = as_sshd_tmp(shell, &next, b"", tmp.path());
            assert_eq!(code, Some(0));
            let clean = wrap_script(&crate::ssh::supervisor::clean(), &["id5"]);
            as_sshd_tmp(shell, &clean, b"", tmp.path());
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while dir.exists() || tmp.path().join("tether-someone/id5.o").exists() {
                assert!(std::time::Instant::now() < deadline, "{shell}: not removed");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    #[test]
    fn the_supervisor_falls_back_when_its_directory_is_not_private() {
        let tmp = tempfile::tempdir().unwrap();
        // Not a directory: the command runs directly and the reason is said.
        std::fs::write(tmp.path().join("tether-someone"), "").unwrap();
        let wrapped = wrap_for("echo hi", false, Some("id2"));
        let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &wrapped, b"", tmp.path());
        let (out, err, marker, preamble) = read(&stdout, &stderr);
        assert_eq!(
            (out.as_str(), err.as_str(), marker, code),
            ("hi\n", "", Some(0), Some(0))
        );
        let (_, _, reason) = direct_reason(&preamble).expect("a reason");
        assert!(reason.contains("tether-someone"), "{reason}");
    }

    #[test]
    fn a_resume_continues_from_the_bytes_received_and_stop_ends_the_group() {
        use std::os::unix::process::CommandExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tether-someone/id3.o");
        // The exec's sh as sshd would start it, in a process group of its own.
        let spawn = |wrapped: &str| {
            std::process::Command::new("/bin/sh")
                .process_group(0)
                .arg("-c")
                .arg(wrapped)
                .env_clear()
                .env("TMPDIR", tmp.path())
                .env("LOGNAME", "someone")
                .env("PATH", "/usr/bin:/bin")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        // A command that outlives its first exec: the exec's sh is killed as a lost
        // connection would leave it, the command goes on.
        let wrapped = wrap_for("echo one; sleep 1; echo two; exit 7", false, Some("id3"));
        let mut child = spawn(&wrapped);
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(dir.exists());
        // "one\n" arrived (4 bytes of stdout, none of stderr).
        let resume = wrap_script(
            &crate::ssh::supervisor::resume(&start_markers()),
            &["id3", "4", "0"],
        );
        let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &resume, b"", tmp.path());
        let (out, err, marker, _) = read(&stdout, &stderr);
        assert_eq!((out.as_str(), err.as_str()), ("two\n", ""));
        assert_eq!((marker, code), (Some(7), Some(7)));
        std::fs::remove_file(&dir).unwrap();
        // Gone: the frame, no marker.
        let (_, stderr, code) = as_sshd_tmp("/bin/sh", &resume, b"", tmp.path());
        let mut f = StderrFilter::default();
        let mut start = StartFilter::default();
        assert!(f.push(&start.push(&stderr)).is_empty());
        assert!(f.gone);
        assert_eq!(code, Some(125));
        // Stop: a command that ignores nothing ends with TERM.
        let wrapped = wrap_for("sleep 30", false, Some("id4"));
        let mut child = spawn(&wrapped);
        std::thread::sleep(Duration::from_millis(300));
        let stop = wrap_script(
            &crate::ssh::supervisor::stop(&start_markers()),
            &["id4", "2"],
        );
        let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &stop, b"", tmp.path());
        let (out, _, marker, _) = read(&stdout, &stderr);
        assert_eq!((out.as_str(), marker, code), ("TERM\n", Some(0), Some(0)));
        child.wait().unwrap();
        assert!(!tmp.path().join("tether-someone/id4.o").exists());
    }
}
