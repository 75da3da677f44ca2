//! Reading an event stream: JSON lines as `--format json` prints them and an event tap writes
//! them, one object per line with `t` (seconds since the process's reporter started), `type`
//! and, for host events, `host`. The fields the timeline needs are read with their types;
//! fields it does not know are ignored, and so are event types it does not draw (a newer
//! tether's, `output` lines), so a stream from a newer or older tether still reads.
//!
//! A line that is not a JSON object with a `type` and a time, or an event the timeline draws
//! whose fields have the wrong types, is an error naming the line: a picture of half a stream
//! that looks whole would be silently wrong.

use std::io::BufRead;

use serde::Deserialize;

/// Why an event stream could not be read. Lines count from 1.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream could not be read at this line.
    #[error("line {line}: {source}")]
    Io {
        /// The line being read.
        line: usize,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The line is not UTF-8 text.
    #[error("line {line}: not UTF-8 text ({source})")]
    NotUtf8 {
        /// The line.
        line: usize,
        /// Where the bad bytes start.
        #[source]
        source: std::str::Utf8Error,
    },
    /// The line ends inside a JSON value: the stream was cut off there.
    #[error(
        "line {line} ends in the middle of an event: the stream is cut off there (was the run \
         still writing it, or was the file truncated?)"
    )]
    CutOff {
        /// The line.
        line: usize,
    },
    /// The line is not JSON.
    #[error(
        "line {line}: not JSON ({message}); expected one JSON object per line, as \
         `tether --format json` prints"
    )]
    NotJson {
        /// The line.
        line: usize,
        /// serde_json's description, with the column.
        message: String,
    },
    /// The line is JSON but not an object.
    #[error("line {line}: a JSON {found}, not an event object")]
    NotObject {
        /// The line.
        line: usize,
        /// What it is (`array`, `string` ...).
        found: &'static str,
    },
    /// The object has no string `type`.
    #[error("line {line}: the object has no `type` naming its event")]
    NoType {
        /// The line.
        line: usize,
    },
    /// The object's `t` is missing, or not a finite number of seconds at least 0.
    #[error("line {line}: `{kind}` has no valid time `t` (seconds since the run started)")]
    BadTime {
        /// The line.
        line: usize,
        /// The event type.
        kind: String,
    },
    /// An event the timeline draws has a field of the wrong shape.
    #[error("line {line}: `{kind}` event: {message}")]
    BadEvent {
        /// The line.
        line: usize,
        /// The event type.
        kind: String,
        /// serde_json's description (`missing field \`command\``).
        message: String,
    },
    /// The stream holds no event at all.
    #[error("no events: the stream is empty")]
    Empty,
}

/// One event of the stream.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its line in the stream (from 1).
    pub line: usize,
    /// Seconds since the process's reporter started.
    pub t: f64,
    /// The host it is about, if any.
    pub host: Option<String>,
    /// What happened.
    pub event: Event,
}

/// The events the timeline draws, with the fields it reads (README's JSON table).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// `run_started`.
    RunStarted {
        /// The recipe file.
        recipe: Option<String>,
        /// The stage.
        stage: Option<String>,
        /// The tasks asked for.
        #[serde(default)]
        tasks: Vec<String>,
        /// `tether run`'s command.
        command: Option<String>,
        /// Wall clock at the start, ms since the Unix epoch.
        start_unix_ms: Option<u64>,
    },
    /// `watch_run_started`: a run of `tether watch`.
    WatchRunStarted {
        /// Its number.
        run: u64,
        /// Why it started.
        #[serde(default)]
        reason: String,
    },
    /// `watch_run_finished`: the end of a run of `tether watch` (it has no `run_finished`).
    WatchRunFinished {
        /// `ok`, `failed`, `cancelled`, `recipe error`...
        #[serde(default)]
        result: String,
        /// The exit code a run of its own would have had.
        exit_code: Option<i32>,
        /// The error message.
        error: Option<String>,
    },
    /// `hosts`.
    Hosts {
        /// The hosts with their roles.
        hosts: Vec<HostEntry>,
    },
    /// `connected`.
    Connected {},
    /// `connect_failed`.
    ConnectFailed {
        /// Why.
        error: String,
        /// Its kind (absent from streams of a tether that did not say it).
        #[serde(default)]
        kind: Option<String>,
    },
    /// `command_started`.
    CommandStarted {
        /// The command (secrets masked).
        command: String,
    },
    /// `command_finished`.
    CommandFinished {
        /// The command.
        command: String,
        /// Its exit code.
        exit_code: Option<i32>,
        /// The signal that killed it.
        signal: Option<String>,
        /// Why there is no status.
        error: Option<String>,
        /// Wall time in ms.
        duration_ms: f64,
        /// How it ended (absent in streams from before the field).
        outcome: Option<CommandOutcome>,
    },
    /// `heartbeat`.
    Heartbeat {
        /// Round trip in ms.
        rtt_ms: f64,
        /// Woken by the server's traffic.
        #[serde(default)]
        probe: bool,
    },
    /// `reconnect`.
    Reconnect {
        /// How the death was noticed.
        reason: String,
        /// Whether the host was idle.
        #[serde(default)]
        while_idle: bool,
        /// Time to connect again, ms.
        took_ms: f64,
    },
    /// `resend`: a command whose connection died before it started, sent again on a new
    /// session.
    Resend {
        /// The command.
        command: String,
        /// From the loss to sending it again, ms.
        took_ms: f64,
    },
    /// `reattach`: a command's output picked up again on a new session; its fields are shown
    /// as they come.
    Reattach {
        /// Every field but `type` (`t` and `host` included).
        #[serde(flatten)]
        fields: serde_json::Map<String, serde_json::Value>,
    },
    /// `unreachable`.
    Unreachable {
        /// The last error.
        error: String,
    },
    /// `session_lost`: not reconnected, the run ending.
    SessionLost {
        /// How the death was noticed.
        reason: String,
    },
    /// `heartbeat_interval_learned`.
    HeartbeatIntervalLearned {
        /// Idle time at which the session was found dead, ms.
        died_after_ms: f64,
        /// The new interval, ms.
        interval_ms: f64,
        /// Whether it confirmed an earlier idle death as the server's limit (absent from logs
        /// of a tether that did not tell).
        #[serde(default)]
        confirmed: bool,
    },
    /// `task_started`.
    TaskStarted {
        /// The task.
        task: String,
    },
    /// `task_finished`.
    TaskFinished {
        /// The task.
        task: String,
        /// Whether it succeeded.
        ok: bool,
    },
    /// `run_finished`.
    RunFinished {
        /// `deploy finished`.
        title: String,
        /// Whether it succeeded.
        ok: bool,
        /// The exit code (absent in streams from before the field).
        exit_code: Option<i32>,
        /// The error message.
        error: Option<String>,
    },
    /// `summary` (`tether run`): per host with `ok`, then one object for all.
    Summary {
        /// The host's result (absent on the closing object).
        ok: Option<bool>,
        /// The host's failure: host, command, status, stderr tail.
        failure: Option<String>,
        /// The run's exit code (on the closing object; absent in older streams).
        exit_code: Option<i32>,
    },
    /// Anything else (output lines, prints, a newer tether's events).
    #[serde(other)]
    Other,
}

/// A host of a `hosts` event.
#[derive(Debug, Clone, Deserialize)]
pub struct HostEntry {
    /// Its name.
    pub name: String,
    /// Its roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `command_finished`'s `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Exit status 0.
    Ok,
    /// A non-zero status.
    Nonzero,
    /// A signal.
    Signal,
    /// No exit status.
    NoStatus,
    /// Past its timeout.
    TimedOut,
    /// Stopped by tether.
    Stopped,
    /// Stopped waiting for by tether, but not stopped on the host.
    LeftRunning,
    /// The connection died under it.
    Lost,
    /// Never reached the host.
    NotRun,
    /// A value a newer tether may add.
    #[serde(other)]
    Other,
}

/// Reads lines incrementally: from a file ([`for_each`]) or from an event tap as the run
/// writes them.
#[derive(Debug, Default)]
pub struct LineReader {
    line: usize,
    partial: Vec<u8>,
}

impl LineReader {
    /// Takes `bytes` (any split of the stream); returns the complete events they finish.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Entry>, ReadError> {
        let mut entries = Vec::new();
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            let line = std::mem::take(&mut self.partial);
            self.line += 1;
            entries.extend(parse_line(self.line, &line)?);
        }
        self.partial.extend_from_slice(rest);
        Ok(entries)
    }

    /// The end of the stream: a last line without its newline must still be whole.
    pub fn finish(&mut self) -> Result<Option<Entry>, ReadError> {
        if self.partial.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let line = std::mem::take(&mut self.partial);
        self.line += 1;
        parse_line(self.line, &line)
    }

    /// Lines read so far.
    pub fn lines(&self) -> usize {
        self.line
    }
}

/// Calls `each` with every event of `input`, in order; Err at the first line that is not an
/// event, or [`ReadError::Empty`] when there is none.
pub fn for_each(mut input: impl BufRead, mut each: impl FnMut(Entry)) -> Result<(), ReadError> {
    let mut reader = LineReader::default();
    let mut any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ReadError::Io {
                    line: reader.lines() + 1,
                    source,
                })
            }
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        for entry in reader.push(buf)? {
            any = true;
            each(entry);
        }
        input.consume(n);
    }
    if let Some(entry) = reader.finish()? {
        any = true;
        each(entry);
    }
    if !any {
        return Err(ReadError::Empty);
    }
    Ok(())
}

/// One line: `None` for a blank one.
fn parse_line(line: usize, bytes: &[u8]) -> Result<Option<Entry>, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|source| ReadError::NotUtf8 { line, source })?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            ReadError::CutOff { line }
        } else {
            // serde_json counts lines within the text it was given: the column is what helps.
            let text = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&position).unwrap_or(&text);
            ReadError::NotJson {
                line,
                message: format!("{message} at column {}", e.column()),
            }
        }
    })?;
    let object = match &value {
        serde_json::Value::Object(o) => o,
        other => {
            return Err(ReadError::NotObject {
                line,
                found: match other {
                    serde_json::Value::Array(_) => "array",
                    serde_json::Value::String(_) => "string",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::Bool(_) => "boolean",
                    _ => "null",
                },
            })
        }
    };
    let kind = object
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or(ReadError::NoType { line })?
        .to_string();
    let t = object
        .get("t")
        .and_then(serde_json::Value::as_f64)
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| ReadError::BadTime {
            line,
            kind: kind.clone(),
        })?;
    let host = object
        .get("host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    let event = Event::deserialize(&value).map_err(|e| ReadError::BadEvent {
        line,
        kind: kind.clone(),
        message: e.to_string(),
    })?;
    check_numbers(&event).map_err(|field| ReadError::BadEvent {
        line,
        kind,
        message: format!(
            "`{field}` is not a duration (a finite number of milliseconds, at least 0)"
        ),
    })?;
    Ok(Some(Entry {
        line,
        t,
        host,
        event,
    }))
}

/// The name of a millisecond field that is negative or not finite.
fn check_numbers(event: &Event) -> Result<(), &'static str> {
    let fields: &[(&'static str, f64)] = match event {
        Event::CommandFinished { duration_ms, .. } => &[("duration_ms", *duration_ms)],
        Event::Heartbeat { rtt_ms, .. } => &[("rtt_ms", *rtt_ms)],
        Event::Reconnect { took_ms, .. } => &[("took_ms", *took_ms)],
        Event::HeartbeatIntervalLearned {
            died_after_ms,
            interval_ms,
            ..
        } => &[
            ("died_after_ms", *died_after_ms),
            ("interval_ms", *interval_ms),
        ],
        _ => &[],
    };
    match fields.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
        Some((name, _)) => Err(name),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Entry>, ReadError> {
        read_bytes(text.as_bytes())
    }

    fn read_bytes(bytes: &[u8]) -> Result<Vec<Entry>, ReadError> {
        let mut entries = Vec::new();
        for_each(bytes, |e| entries.push(e))?;
        Ok(entries)
    }

    #[test]
    fn known_and_unknown_events() {
        let entries = read(concat!(
            r#"{"t":0.1,"type":"hosts","hosts":[{"name":"web1","roles":["web"]}]}"#,
            "\n\n",
            r#"{"t":0.2,"host":"web1","type":"output","stream":"stdout","line":"x"}"#,
            "\n",
            r#"{"t":0.3,"host":"web1","type":"reattach","offset":12,"command":"sleep 9"}"#,
            "\n",
            r#"{"t":0.4,"host":"web1","type":"command_finished","command":"true","exit_code":0,"signal":null,"error":null,"duration_ms":2.5}"#,
        ))
        .unwrap();
        assert_eq!(entries.len(), 4);
        assert!(matches!(entries[0].event, Event::Hosts { .. }));
        assert_eq!(entries[1].line, 3);
        assert!(matches!(entries[1].event, Event::Other));
        match &entries[2].event {
            Event::Reattach { fields } => assert_eq!(fields["offset"], 12),
            other => panic!("{other:?}"),
        }
        assert_eq!(entries[2].host.as_deref(), Some("web1"));
        assert!(matches!(
            entries[3].event,
            Event::CommandFinished { outcome: None, .. }
        ));
    }

    #[test]
    fn errors_name_the_line() {
        let ok = r#"{"t":0.1,"type":"print","text":"a"}"#;
        let cases = [
            (
                format!("{ok}\n{{\"t\":0.2,\"type\":\"hea"),
                "line 2 ends in the middle",
            ),
            (
                format!("{ok}\n{{\"t\":0.2,\"type\":\"hea\n{ok}\n"),
                "line 2 ends in the middle",
            ),
            (
                format!("{ok}\nweb1 | hello\n"),
                "line 2: not JSON (expected value at column 1); expected one JSON object",
            ),
            (
                format!("{ok}\n{{\"t\":1,,}}\n"),
                "line 2: not JSON (key must be a string at column 8)",
            ),
            (format!("{ok}\n[1,2]\n"), "line 2: a JSON array"),
            (
                format!("{ok}\n{{\"t\":1}}\n"),
                "line 2: the object has no `type`",
            ),
            (
                format!("{ok}\n{ok}\n{{\"type\":\"print\"}}\n"),
                "line 3: `print` has no valid time",
            ),
            (
                r#"{"t":-1,"type":"print"}"#.to_string(),
                "line 1: `print` has no valid time",
            ),
            (
                format!("{ok}\n{{\"t\":1,\"host\":\"a\",\"type\":\"command_started\"}}\n"),
                "line 2: `command_started` event: missing field `command`",
            ),
            (
                r#"{"t":1,"type":"hosts","hosts":"web1"}"#.to_string(),
                "line 1: `hosts` event: invalid type",
            ),
            (
                r#"{"t":1,"host":"a","type":"heartbeat","rtt_ms":-3}"#.to_string(),
                "line 1: `heartbeat` event: `rtt_ms` is not a duration",
            ),
            (String::new(), "no events"),
            ("\n \n".to_string(), "no events"),
        ];
        for (text, want) in cases {
            let err = read(&text).map(|_| ()).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
        let err = read_bytes(b"{\"t\":1,\"type\":\"print\"}\n\xff\xfe\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2: not UTF-8"), "{err}");
    }

    #[test]
    fn lines_split_anywhere_read_the_same() {
        let text = "{\"t\":0.1,\"type\":\"print\"}\n{\"t\":0.2,\"type\":\"print\"}\n";
        let mut reader = LineReader::default();
        let mut n = 0;
        for b in text.as_bytes() {
            n += reader.push(std::slice::from_ref(b)).unwrap().len();
        }
        assert!(reader.finish().unwrap().is_none());
        assert_eq!(n, 2);
    }
}
