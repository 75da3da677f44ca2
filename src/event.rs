//! Events: everything a host worker does that the user may want to see, sent to the reporter
//! (text lines, the live status line, `--format json`). A leaf: it imports nothing of tether's.
//!
//! Each kind serialises as one JSON object whose `type` names it (`command_started`,
//! `output`, ...); durations are milliseconds in fields ending in `_ms`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

/// What a heartbeat runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Beat {
    /// A protocol keepalive (`keepalive@libssh2.org`, no reply asked) whose TCP
    /// acknowledgement came back: no channel, nothing forked, nothing logged.
    Keepalive,
    /// A session channel opened and closed, no command: nothing forked, nothing logged.
    Channel,
    /// `true` on a new channel: what a server with `UnusedConnectionTimeout` needs.
    Command,
    /// The two commands that read the serving sshd's config, to choose between the others.
    Limits,
}

/// Where an idle limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum LimitFrom {
    /// `UnusedConnectionTimeout`, read from the serving sshd's config by the first heartbeat.
    SshdConfig {
        /// Set in a `Match` block, which may apply to other logins only: the shortest counts.
        in_match: bool,
    },
    /// A jump host's `ChannelTimeout` for the tunnels through it (`direct-tcpip`, `*` or
    /// `global`), read from its sshd config: the interval is that of the hosts behind it.
    TunnelTimeout,
    /// Remembered from an earlier run this long ago (see `ssh::limit_cache`).
    Remembered {
        /// Whether that run read it from the config (else an idle session died after it).
        read: bool,
        /// How long ago it was learned, in seconds.
        age_s: u64,
    },
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Something that happened on a host.
#[derive(Debug, Clone)]
pub struct Event {
    /// The host's display name (`bastion (jump)` for a jump host).
    pub host: Arc<str>,
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// `kind` on `host`, now.
    pub fn now(host: Arc<str>, kind: EventKind) -> Self {
        Event {
            host,
            at: Instant::now(),
            kind,
        }
    }
}

/// What a session lost as the run ended came to ([`EventKind::SessionLost`]), after its
/// reason, in the run's words and the timeline's.
pub const LOST_AT_THE_END: &str = "not reconnected: the run was ending";

/// The kinds of [`Event`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The first connection is up.
    Connected {
        /// TCP + handshake + auth time.
        #[serde(rename = "setup_ms", serialize_with = "millis")]
        setup: Duration,
    },
    /// The first connection failed; the host is unreachable for this run.
    ConnectFailed {
        /// Why.
        error: String,
        /// The failure's kind (`unreachable`, `host_key_refused`, `config`, and `interrupted`
        /// where tether itself gave connecting up at a signal): what a reader tells them apart
        /// by, never the words.
        kind: crate::failure::Kind,
    },
    /// A command was sent.
    #[serde(rename = "command_started")]
    Started {
        /// The command as sent (secrets masked).
        command: String,
    },
    /// One line of output.
    Output {
        /// stdout or stderr.
        stream: Stream,
        /// The line, without its newline (secrets masked).
        line: String,
        /// The command drew its next state over it with `\r` (a progress line): a terminal
        /// shows it in the status line, not as a line (see `report/progress.rs`). Not in JSON,
        /// where it is an `output` line as any other.
        #[serde(skip)]
        redrawn: bool,
        /// The line is not ended yet: what it holds so far, which has not grown for a while (a
        /// prompt): only a terminal's status line shows it; it comes again when it ends. Never
        /// written anywhere (JSON, taps).
        #[serde(skip)]
        pending: bool,
        /// A piece of a line longer than 1 MiB, which goes on in the next `output` of its
        /// stream (JSON: `"cut": true`, left out when false).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        cut: bool,
    },
    /// A command ended (successfully or not).
    #[serde(rename = "command_finished")]
    Finished {
        /// The command (secrets masked).
        command: String,
        /// Its exit code, when it exited.
        exit_code: Option<i32>,
        /// The signal that killed it (`TERM`), when one did.
        signal: Option<String>,
        /// Why there is no status (no exit status received, connection lost, timeout).
        error: Option<String>,
        /// Wall time.
        #[serde(rename = "duration_ms", serialize_with = "millis")]
        duration: Duration,
        /// How it ended, as one word: what `exit_code`, `signal` and `error` say, typed.
        outcome: CommandOutcome,
    },
    /// What the host's login shell printed before a command ran (its start-up files: a banner
    /// in `~/.bashrc`), sent once per host: it is left out of every command's output.
    LoginShellOutput {
        /// What it printed on stdout (with a PTY: everything).
        stdout: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An idle heartbeat succeeded.
    Heartbeat {
        /// Round trip of the heartbeat (of its first command, when it read the server's
        /// limits).
        #[serde(rename = "rtt_ms", serialize_with = "millis")]
        rtt: Duration,
        /// Whether the server's own traffic (a probe) triggered it.
        probe: bool,
        /// What it ran: `keepalive` (a protocol keepalive, acknowledged), `channel` (opened
        /// and closed, no command), `command` (`true`) or `limits` (read the server's config).
        beat: Beat,
    },
    /// An attempt to replace a dead session failed, and another follows.
    #[serde(rename = "reconnecting")]
    Reconnecting {
        /// How the death was noticed.
        reason: String,
        /// How many attempts failed so far (from 1).
        failed: u32,
        /// How many are made at most.
        attempts: u32,
        /// Why the last one failed.
        error: String,
        /// When the next one starts.
        #[serde(rename = "next_in_ms", serialize_with = "millis")]
        next_in: Duration,
    },
    /// A dead session was replaced.
    #[serde(rename = "reconnect")]
    Reconnected {
        /// How the death was noticed.
        reason: String,
        /// Whether the host was idle (heartbeat) or a command was about to use it.
        while_idle: bool,
        /// Time to connect again.
        #[serde(rename = "took_ms", serialize_with = "millis")]
        took: Duration,
    },
    /// The connection died while a command ran under the supervisor (see `ssh::supervisor`),
    /// and tether connected again and re-attached to the still running command.
    #[serde(rename = "reattach")]
    Reattached {
        /// The command.
        command: String,
        /// How long the command had run when the last byte from the host arrived before its
        /// connection was lost (its supervisor writes one after every 0.4 s of silence: the
        /// connection was lost soon after); `None` where none came from the command.
        #[serde(rename = "heard_after_ms", serialize_with = "millis_opt")]
        heard_after: Option<Duration>,
        /// How long the command had run when its connection was found dead.
        #[serde(rename = "lost_after_ms", serialize_with = "millis")]
        lost_after: Duration,
        /// From then to re-attached (reconnecting included).
        #[serde(rename = "took_ms", serialize_with = "millis")]
        took: Duration,
    },
    /// The connection died before a command supervised (see `ssh::supervisor`) had started on
    /// the host, and tether connected again, found that it never ran (and never will: it was
    /// claimed) and sent it again. Not a re-attach: the command runs once, from its start.
    #[serde(rename = "resend")]
    Resent {
        /// The command.
        command: String,
        /// How long after it was sent its connection was found dead.
        #[serde(rename = "lost_after_ms", serialize_with = "millis")]
        lost_after: Duration,
        /// From then to sending it again (reconnecting and the claim included).
        #[serde(rename = "took_ms", serialize_with = "millis")]
        took: Duration,
    },
    /// A command's remote process group was stopped: a timeout, Ctrl-C, SIGTERM or SIGHUP to
    /// tether, or a command left running when re-attaching to it failed.
    #[serde(rename = "remote_stopped")]
    RemoteStopped {
        /// The command.
        command: String,
        /// Why it was stopped.
        why: String,
        /// What stopping did (`its process group was sent SIGTERM and ended`).
        how: String,
        /// The command had ended, or never started, as the stop came: nothing was signalled
        /// (`how` says which).
        nothing_to_stop: bool,
    },
    /// A command left running (its connection lost past its re-attach bound, or its stop
    /// failed) could not be stopped before tether exits (see `ssh::worker`): where it runs and
    /// how to stop it by hand.
    #[serde(rename = "remote_left_running")]
    RemoteLeftRunning {
        /// The command.
        command: String,
        /// How it came to be left running (`its connection was lost and not re-attached within
        /// 1m00s`, `stopping it (its timeout passed) failed`).
        left: String,
        /// Why stopping it failed (the host could not be reached, with the error).
        why: String,
        /// Its process group on the host, as the host said it (`None` only when the
        /// connection died before the host said it).
        pgid: Option<String>,
        /// The common prefix of its files on the host: `SPOOL.o` stdout, `SPOOL.e` stderr.
        spool: String,
        /// A command, run here, that stops it and removes its files.
        stop_with: String,
    },
    /// A dead session could not be replaced: the host is unreachable from now on.
    Unreachable {
        /// The last error.
        error: String,
    },
    /// A dead session was not replaced because the run was ending (the pool closed while its
    /// reconnect waited or tried): the host has no session at the end.
    SessionLost {
        /// How the death was noticed.
        reason: String,
        /// Whether the host was idle (heartbeat) or a command was about to use it.
        while_idle: bool,
    },
    /// The heartbeat interval was shortened after the server's end closed an idle session
    /// whose limits could not be read.
    #[serde(rename = "heartbeat_interval_learned")]
    Learned {
        /// How long the session had been idle when it was found dead.
        #[serde(rename = "died_after_ms", serialize_with = "millis")]
        died_after: Duration,
        /// The new interval.
        #[serde(rename = "interval_ms", serialize_with = "millis")]
        interval: Duration,
        /// Whether an earlier idle death at about the same idle time confirmed it as the
        /// server's idle limit; else it may as well have been sshd killed outright, and holds
        /// for this run only (see `ssh::limit_cache`).
        confirmed: bool,
        /// Whether the confirmed limit was written to the idle-limit cache, remembered across
        /// runs (false where the file could not be written, which a note says under `-v`;
        /// false when not confirmed).
        remembered: bool,
    },
    /// The heartbeat interval was set from an idle limit the server's config announced, or
    /// that an earlier run learned (the idle-limit cache).
    IdleLimit {
        /// The server's idle limit (its `UnusedConnectionTimeout`, or how long an idle session
        /// lasted before the server closed it).
        #[serde(rename = "limit_ms", serialize_with = "millis")]
        limit: Duration,
        /// Where it came from.
        #[serde(flatten)]
        from: LimitFrom,
        /// The heartbeat interval from now on.
        #[serde(rename = "interval_ms", serialize_with = "millis")]
        interval: Duration,
    },
    /// A detail for `-v` (an idle-limit cache that could not be read or written).
    Note {
        /// The text.
        message: String,
    },
    /// Something the user should know (skipped known_hosts lines, recorded keys).
    Warning {
        /// The text.
        message: String,
    },
    /// A jump host's worker opened another connection to it beside the current one: a tunnel
    /// waited a second for the jump host's answer, and a session opens one channel at a time
    /// (see `jump::worker`). A session of the jump host's like any other (its `sessions`).
    AnotherConnection {
        /// TCP + handshake + auth time.
        #[serde(rename = "setup_ms", serialize_with = "millis")]
        setup: Duration,
        /// Connections to the jump host open now.
        open: usize,
        /// Why, in words (said as a warning).
        message: String,
    },
    /// The hosts of the run, in order, with their roles (empty without a recipe).
    Hosts {
        /// The hosts.
        hosts: Vec<HostEntry>,
    },
    /// A task (with its before/after hooks) starts.
    TaskStarted {
        /// `namespace:name`.
        task: String,
    },
    /// A task (with its hooks) ended.
    TaskFinished {
        /// `namespace:name`.
        task: String,
        /// Whether it succeeded.
        ok: bool,
    },
    /// The recipe's `print(text)`.
    Print {
        /// The text (secrets masked).
        text: String,
    },
    /// `on(target, "cmd")` dispatches one command to these hosts.
    OnCommand {
        /// The hosts, in order.
        hosts: Vec<String>,
        /// The command as the recipe wrote it.
        command: String,
    },
    /// Dry run: the command that would run on the event's host.
    Planned {
        /// The command as it would be sent (context applied).
        command: String,
    },
    /// Dry run: the file that would be uploaded to the event's host.
    PlannedUpload {
        /// The local path as the recipe named it.
        local: String,
        /// The remote path.
        remote: String,
        /// Its size, or `None` for a file the run makes itself.
        bytes: Option<u64>,
    },
    /// Dry run: the file that would be downloaded from the event's host.
    PlannedDownload {
        /// The remote path.
        remote: String,
        /// The local path (relative to the recipe, `{host}` replaced).
        local: String,
    },
    /// Dry run: a `run_locally` command.
    PlannedLocal {
        /// The command.
        command: String,
    },
    /// One line of a `run_locally` command's stderr.
    LocalOutput {
        /// The stream.
        stream: Stream,
        /// The line (secrets masked).
        line: String,
    },
    /// The outcome of every host of `tether run`.
    Summary {
        /// One entry per host, in order.
        hosts: Vec<HostOutcome>,
        /// The process's exit code for the run (README's table: 0, 1, 2, 3, 130).
        exit_code: i32,
        /// Wall time of the whole run.
        #[serde(rename = "duration_ms", serialize_with = "millis")]
        duration: Duration,
    },
    /// A run starts (`tether [STAGE] TASK...` once its tasks are checked, `tether run` before
    /// it connects): what runs, and when by the wall clock, so that a saved event stream says
    /// what it is a record of.
    RunStarted {
        /// The recipe file as named (`-f`, default `deploy.rhai`); `None` for `tether run`
        /// without a recipe.
        recipe: Option<String>,
        /// The stage selected, if any.
        stage: Option<String>,
        /// The tasks asked for, in order (empty for `tether run`).
        tasks: Vec<String>,
        /// `tether run`'s command (`None` for tasks).
        command: Option<String>,
        /// When it started: milliseconds since the Unix epoch (UTC).
        start_unix_ms: u64,
        /// A dry run (`-n`): a plan, nothing connects or runs.
        dry_run: bool,
    },
    /// A recipe run ended: per host, its session with heartbeats and reconnects.
    RunFinished {
        /// What ran (`deploy finished`, `deploy failed`).
        title: String,
        /// Whether it succeeded.
        ok: bool,
        /// The process's exit code for this run (README's table: 0, 1, 2, 3, 4, 130).
        exit_code: i32,
        /// Why it failed (the message printed on stderr, secrets masked).
        error: Option<String>,
        /// Wall time.
        #[serde(rename = "duration_ms", serialize_with = "millis")]
        duration: Duration,
    },
    /// A subcommand's own record (`tether check`'s report of a host, `watch`'s runs): its
    /// JSON object, which names its own `type`, and its text form.
    #[serde(untagged)]
    Record(Record),
}

/// See [`EventKind::Record`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// The JSON object, `type` included.
    #[serde(flatten)]
    pub json: serde_json::Map<String, serde_json::Value>,
    /// The lines text output shows (none: text output shows nothing).
    #[serde(skip)]
    pub text: Vec<String>,
}

impl Record {
    /// A record of `value` (a JSON object with a `type`) shown as `text`.
    pub fn new(value: serde_json::Value, text: Vec<String>) -> Self {
        let json = match value {
            serde_json::Value::Object(m) => m,
            other => {
                let mut m = serde_json::Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        Record { json, text }
    }
}

/// How a command ended, in the `outcome` field of `command_finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Exit status 0.
    Ok,
    /// A non-zero exit status.
    Nonzero,
    /// Killed by a signal.
    Signal,
    /// The channel closed without an exit status (sshd's `ChannelTimeout`, say).
    NoStatus,
    /// It ran past its `timeout` and was abandoned.
    TimedOut,
    /// tether stopped it (Ctrl-C, `watch --kill`, a failed host of its step).
    Stopped,
    /// tether stopped waiting for it, but stopping it on the host failed: it may still be
    /// running.
    LeftRunning,
    /// The connection died while it ran; it may have partly run.
    Lost,
    /// It never reached the host (no session, or the server refused the channel).
    NotRun,
}

/// A host of the run with its roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostEntry {
    /// The host's name.
    pub name: String,
    /// Its roles, in declaration order.
    pub roles: Vec<String>,
}

/// One host's outcome in a [`EventKind::Summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOutcome {
    /// The host.
    pub host: String,
    /// Whether its command ran and succeeded.
    pub ok: bool,
    /// How it counts in the summary.
    #[serde(skip)]
    pub tally: Tally,
    /// `ok`, `exit 3`, `signal TERM`, `no exit status`, `unreachable`, `connection lost`,
    /// `timed out`, `stopped`, `not run`.
    pub status: String,
    /// How long its command ran, when it ran.
    #[serde(rename = "duration_ms", serialize_with = "millis_opt")]
    pub duration: Option<Duration>,
    /// The failure: host, command, status, the tail of stderr (a string in JSON).
    pub failure: Option<crate::host_text::HostText>,
}

/// How a host's outcome counts in a summary's `N ok, N failed, N stopped, N not run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// Its command ran and succeeded.
    Ok,
    /// It failed: its command, its connection, its config.
    Failed,
    /// tether stopped its command (an interrupt, a step aborted by another host's failure):
    /// not a failure of the host's own.
    Stopped,
    /// tether stopped waiting for its command, as for [`Tally::Stopped`], but its stop did not
    /// reach the host: it may still be running there (stop 57 tester t90: counted among the
    /// stopped, `2 stopped`, for commands that ran on).
    LeftRunning,
    /// Its command never ran.
    NotRun,
}

impl EventKind {
    /// Replaces every registered secret in every text of the event with the mask.
    pub fn mask(&mut self) {
        fn m(s: &mut String) {
            if let std::borrow::Cow::Owned(masked) = crate::secret::mask(s) {
                *s = masked;
            }
        }
        fn opt(s: &mut Option<String>) {
            if let Some(s) = s {
                m(s);
            }
        }
        fn value(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::String(s) => m(s),
                serde_json::Value::Array(a) => a.iter_mut().for_each(value),
                serde_json::Value::Object(o) => o.values_mut().for_each(value),
                _ => {}
            }
        }
        if !crate::secret::any() {
            return;
        }
        match self {
            EventKind::ConnectFailed { error, .. } | EventKind::Unreachable { error } => m(error),
            EventKind::Started { command }
            | EventKind::Planned { command }
            | EventKind::PlannedLocal { command } => m(command),
            EventKind::Output { line, .. } | EventKind::LocalOutput { line, .. } => m(line),
            EventKind::Finished { command, error, .. } => {
                m(command);
                opt(error);
            }
            EventKind::Reconnected { reason, .. } | EventKind::SessionLost { reason, .. } => {
                m(reason)
            }
            EventKind::Reconnecting { reason, error, .. } => {
                m(reason);
                m(error);
            }
            EventKind::Reattached { command, .. } | EventKind::Resent { command, .. } => m(command),
            EventKind::RemoteStopped {
                command, why, how, ..
            } => {
                m(command);
                m(why);
                m(how);
            }
            EventKind::RemoteLeftRunning {
                command,
                why,
                stop_with,
                ..
            } => {
                m(command);
                m(why);
                m(stop_with);
            }
            EventKind::Warning { message }
            | EventKind::Note { message }
            | EventKind::AnotherConnection { message, .. } => m(message),
            EventKind::LoginShellOutput { stdout, stderr } => {
                m(stdout);
                m(stderr);
            }
            EventKind::Print { text } => m(text),
            EventKind::OnCommand { command, .. } => m(command),
            EventKind::PlannedUpload { local, remote, .. }
            | EventKind::PlannedDownload { remote, local } => {
                m(local);
                m(remote);
            }
            EventKind::Summary { hosts, .. } => {
                for h in hosts {
                    if let Some(f) = &mut h.failure {
                        f.mask();
                    }
                }
            }
            EventKind::RunStarted { command, .. } => opt(command),
            EventKind::RunFinished { title, error, .. } => {
                m(title);
                opt(error);
            }
            EventKind::Record(r) => {
                r.json.values_mut().for_each(value);
                r.text.iter_mut().for_each(m);
            }
            EventKind::Connected { .. }
            | EventKind::Heartbeat { .. }
            | EventKind::Learned { .. }
            | EventKind::IdleLimit { .. }
            | EventKind::Hosts { .. }
            | EventKind::TaskStarted { .. }
            | EventKind::TaskFinished { .. } => {}
        }
    }
}

/// `time` as milliseconds since the Unix epoch, for `start_unix_ms` (0 for a clock set before
/// 1970).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration as milliseconds with microsecond precision (`2.345`).
pub fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// [`millis`] for an optional duration (`null` when absent).
pub fn millis_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_a_type_and_millisecond_fields() {
        let kind = EventKind::Finished {
            command: "true".into(),
            exit_code: Some(0),
            signal: None,
            error: None,
            duration: Duration::from_micros(2345),
            outcome: CommandOutcome::Ok,
        };
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            r#"{"type":"command_finished","command":"true","exit_code":0,"signal":null,"error":null,"duration_ms":2.345,"outcome":"ok"}"#
        );
        let kind = EventKind::RunStarted {
            recipe: Some("deploy.rhai".into()),
            stage: None,
            tasks: vec!["deploy".into()],
            command: None,
            start_unix_ms: 1_700_000_000_123,
            dry_run: false,
        };
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            r#"{"type":"run_started","recipe":"deploy.rhai","stage":null,"tasks":["deploy"],"command":null,"start_unix_ms":1700000000123,"dry_run":false}"#
        );
        let kind = EventKind::Output {
            stream: Stream::Stderr,
            line: "a\"b".into(),
            redrawn: true,
            pending: false,
            cut: false,
        };
        assert_eq!(
            serde_json::to_string(&kind).unwrap(),
            r#"{"type":"output","stream":"stderr","line":"a\"b"}"#
        );
    }
}
