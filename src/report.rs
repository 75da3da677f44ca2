//! Output: host-prefixed lines, tether's own event lines, a live status line on a TTY, the
//! summary, and a JSON event stream (`--format json`).
//!
//! Events from every host worker arrive on one channel and are printed by one reporter thread,
//! so lines never interleave mid-line.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::duration::format as format_duration;
use crate::event::{Event, EventKind, Message, Sink, Stream};
use crate::pool::HostResult;
use crate::settings::{Color, Format};
use crate::ssh::exec::ExitStatus;

/// Writes to stdout for [`outln!`](crate::outln); see there.
pub fn write_stdout(args: std::fmt::Arguments) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

/// What the reporter knows about one host.
#[derive(Debug, Clone, Default)]
pub struct HostStats {
    /// Successful idle heartbeats.
    pub heartbeats: u64,
    /// Dead sessions replaced.
    pub reconnects: u64,
    /// A command is running.
    pub busy: bool,
    /// When the host last finished work or a heartbeat.
    pub idle_since: Option<Instant>,
    /// When the last heartbeat succeeded.
    pub last_heartbeat: Option<Instant>,
    /// When the current session was opened.
    pub connected_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    width: usize,
    order: Vec<String>,
    hosts: BTreeMap<String, HostStats>,
    step: Option<(String, Instant)>,
    status_shown: bool,
}

/// Prints events; see the module docs.
pub struct Reporter {
    tx: Sink,
    state: Arc<Mutex<State>>,
    style: Style,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy)]
struct Style {
    format: Format,
    color: bool,
    live: bool,
    verbose: bool,
}

const COLORS: [&str; 6] = ["36", "35", "34", "32", "33", "96"];

impl Reporter {
    /// Starts the reporter thread. `verbose` prints heartbeats even on a TTY; `color` as
    /// `--color` says (`auto`: on a terminal, unless `NO_COLOR` is set).
    pub fn start(format: Format, verbose: bool, color: Color) -> Self {
        let tty = std::io::stdout().is_terminal();
        let color = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
        };
        let style = Style {
            format,
            color: color && format == Format::Text,
            live: tty && format == Format::Text,
            verbose,
        };
        let (tx, rx) = crate::event::channel();
        let state = Arc::new(Mutex::new(State::default()));
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("reporter".into())
            .spawn(move || run(rx, thread_state, style))
            .ok();
        Reporter {
            tx,
            state,
            style,
            thread,
        }
    }

    /// The channel workers send events to.
    pub fn sender(&self) -> Sink {
        self.tx.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Declares the hosts of the run (for the prefix width and the status line).
    pub fn set_hosts(&self, names: &[String]) {
        let mut st = self.state();
        for n in names {
            if !st.order.contains(n) {
                st.order.push(n.clone());
            }
            st.hosts.entry(n.clone()).or_default();
        }
        st.width = st
            .order
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0);
    }

    /// Names the step in progress, for the live status line.
    pub fn set_step(&self, step: Option<&str>) {
        self.state().step = step.map(|s| (s.to_string(), Instant::now()));
    }

    /// Waits until every event sent before this call has been printed.
    pub fn barrier(&self) {
        self.tx.barrier();
    }

    /// Per-host counters.
    pub fn stats(&self) -> BTreeMap<String, HostStats> {
        self.state().hosts.clone()
    }

    /// Announces a task: a `▶ name` header, or a `task_started` JSON event.
    pub fn task_started(&self, task: &str) {
        if self.style.format == Format::Json {
            crate::outln!("{{\"event\":\"task_started\",\"task\":{}}}", json(task));
            return;
        }
        let header = self.paint("1", &format!("▶ {task}"));
        self.line(&header);
    }

    /// Prints a line of tether's own (not from a host) on stdout, above the status line.
    pub fn line(&self, text: &str) {
        if self.style.format == Format::Json {
            return;
        }
        let mut st = self.state();
        clear_status(&mut st, self.style);
        crate::outln!("{}", crate::secret::mask(text));
    }

    /// Prints the summary of one fan-out (text format), failures last with stderr tails.
    pub fn summary(&self, results: &[HostResult], elapsed: Duration) {
        self.barrier();
        let stats = self.stats();
        if self.style.format == Format::Json {
            for r in results {
                let (status, ok) = result_words(r);
                let s = stats.get(&r.host).cloned().unwrap_or_default();
                crate::outln!(
                    "{{\"event\":\"summary\",\"host\":{},\"ok\":{ok},\"status\":{},\"heartbeats\":{},\"reconnects\":{}}}",
                    json(&r.host),
                    json(&status),
                    s.heartbeats,
                    s.reconnects
                );
            }
            return;
        }
        let mut st = self.state();
        clear_status(&mut st, self.style);
        let width = results
            .iter()
            .map(|r| r.host.chars().count())
            .max()
            .unwrap_or(0);
        let failed = results.iter().filter(|r| !r.ok()).count();
        let mut out = String::new();
        out.push_str(&format!(
            "\n{} {} ok, {} failed, {}\n",
            self.paint("1", "summary:"),
            results.len() - failed,
            failed,
            format_duration(elapsed)
        ));
        for r in results {
            let (status, ok) = result_words(r);
            let took = match &r.result {
                Some(Ok(out)) => format_duration(out.duration),
                _ => String::new(),
            };
            let s = stats.get(&r.host).cloned().unwrap_or_default();
            let mut keep = String::new();
            if s.heartbeats > 0 || s.reconnects > 0 {
                keep = format!(
                    "  ({} heartbeat{}, {} reconnect{})",
                    s.heartbeats,
                    plural(s.heartbeats),
                    s.reconnects,
                    plural(s.reconnects)
                );
            }
            let status = if ok {
                self.paint("32", &status)
            } else {
                self.paint("31", &status)
            };
            out.push_str(&format!("  {:width$}  {status}  {took}{keep}\n", r.host));
        }
        for r in results.iter().filter(|r| !r.ok()) {
            out.push_str(&format!("\n{}\n", self.paint("31", &failure_text(r))));
        }
        crate::out!("{out}");
        let _ = std::io::stdout().flush();
    }

    /// Prints the end of a recipe run: its outcome and, per host, the heartbeats and
    /// reconnects that kept its session alive.
    pub fn sessions_summary(&self, title: &str, elapsed: Duration) {
        self.barrier();
        let stats = self.stats();
        if self.style.format == Format::Json {
            for (host, s) in &stats {
                crate::outln!(
                    "{{\"event\":\"session_summary\",\"host\":{},\"heartbeats\":{},\"reconnects\":{}}}",
                    json(host),
                    s.heartbeats,
                    s.reconnects
                );
            }
            return;
        }
        let mut st = self.state();
        clear_status(&mut st, self.style);
        let mut out = format!(
            "\n{} {title} in {}\n",
            self.paint("1", "done:"),
            format_duration(elapsed)
        );
        let width = st
            .order
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0);
        for host in &st.order {
            let s = stats.get(host).cloned().unwrap_or_default();
            out.push_str(&format!(
                "  {host:width$}  one session, {} heartbeat{}, {} reconnect{}\n",
                s.heartbeats,
                plural(s.heartbeats),
                s.reconnects,
                plural(s.reconnects)
            ));
        }
        crate::out!("{out}");
        let _ = std::io::stdout().flush();
    }

    fn paint(&self, code: &str, text: &str) -> String {
        paint(self.style, code, text)
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.barrier();
        {
            let mut st = self.state();
            clear_status(&mut st, self.style);
        }
        // Replacing our sender lets the thread end once the workers' senders are gone too;
        // it is detached otherwise (workers may outlive the reporter in a panic).
        self.tx = crate::event::channel().0;
        self.thread.take();
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One failed host, with command, status and the tail of stderr.
pub fn failure_text(r: &HostResult) -> String {
    match &r.result {
        None => format!("{}: `{}` was not run (stopped earlier)", r.host, r.command),
        Some(Err(e)) => e.to_string(),
        Some(Ok(out)) => {
            let mut text = format!(
                "{}: `{}` failed with {} after {}",
                r.host,
                r.command,
                out.status,
                format_duration(out.duration)
            );
            let tail = stderr_tail(&out.stderr, 10);
            if !tail.is_empty() {
                text.push_str("\n  stderr (last lines):");
                for l in tail {
                    text.push_str("\n    ");
                    text.push_str(&l);
                }
            }
            text
        }
    }
}

/// The last `n` non-empty lines of stderr.
pub fn stderr_tail(stderr: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn result_words(r: &HostResult) -> (String, bool) {
    match &r.result {
        None => ("not run".into(), false),
        Some(Ok(out)) => match &out.status {
            ExitStatus::Code(0) => ("ok".into(), true),
            ExitStatus::Code(c) => (format!("exit {c}"), false),
            ExitStatus::Signal(s) => (format!("signal {s}"), false),
            ExitStatus::Missing => ("no exit status".into(), false),
        },
        Some(Err(e)) if e.is_connect_failure() => ("unreachable".into(), false),
        Some(Err(crate::ssh::SshError::CommandTimeout { .. })) => ("timed out".into(), false),
        Some(Err(crate::ssh::SshError::CommandStopped { .. })) => ("stopped".into(), false),
        Some(Err(_)) => ("connection lost".into(), false),
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Printing state stays usable even if a printing thread panicked.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn paint(style: Style, code: &str, text: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn clear_status(st: &mut State, style: Style) {
    if style.live && st.status_shown {
        crate::out!("\r\x1b[2K");
        st.status_shown = false;
    }
}

fn run(rx: Receiver<Message>, state: Arc<Mutex<State>>, style: Style) {
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Message::Barrier(ack)) => {
                let _ = std::io::stdout().flush();
                let _ = ack.send(());
            }
            Ok(Message::Event(event)) => {
                let mut st = lock(&state);
                record(&mut st, &event);
                match style.format {
                    Format::Json => crate::outln!("{}", event_json(&event, started)),
                    Format::Text => {
                        if let Some(text) = event_text(&st, style, &event) {
                            clear_status(&mut st, style);
                            crate::outln!("{text}");
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if style.live {
            let mut st = lock(&state);
            draw_status(&mut st, style);
        }
        let _ = std::io::stdout().flush();
    }
}

fn record(st: &mut State, event: &Event) {
    let h = st.hosts.entry(event.host.to_string()).or_default();
    match &event.kind {
        EventKind::Connected { .. } => {
            h.connected_at = Some(event.at);
            h.idle_since = Some(event.at);
        }
        EventKind::Started { .. } => h.busy = true,
        EventKind::Finished { .. } => {
            h.busy = false;
            h.idle_since = Some(event.at);
        }
        EventKind::Heartbeat { .. } => {
            h.heartbeats += 1;
            h.last_heartbeat = Some(event.at);
        }
        EventKind::Reconnected { .. } => {
            h.reconnects += 1;
            h.connected_at = Some(event.at);
        }
        _ => {}
    }
}

fn prefix(st: &State, style: Style, host: &str, mark: &str, mark_color: &str) -> String {
    let width = st.width.max(host.chars().count());
    let index = st.order.iter().position(|n| n == host).unwrap_or(0);
    let name = paint(
        style,
        COLORS[index % COLORS.len()],
        &format!("{host:width$}"),
    );
    format!("{name} {}", paint(style, mark_color, mark))
}

fn event_text(st: &State, style: Style, event: &Event) -> Option<String> {
    let host = &*event.host;
    let ours = |text: String| Some(format!("{} {text}", prefix(st, style, host, "~", "33")));
    match &event.kind {
        EventKind::Output { stream, line } => Some(match stream {
            Stream::Stdout => format!("{} {line}", prefix(st, style, host, "|", "0")),
            Stream::Stderr => format!("{} {line}", prefix(st, style, host, "!", "31")),
        }),
        EventKind::Heartbeat { rtt, probe } if !style.live || style.verbose => ours(format!(
            "idle, kept alive: heartbeat {}{}",
            format_duration(*rtt),
            if *probe {
                " (woken by data from the server, such as a ClientAlive probe)"
            } else {
                ""
            }
        )),
        EventKind::Reconnected { reason, took, .. } => ours(format!(
            "{reason}; reconnected in {}",
            format_duration(*took)
        )),
        EventKind::Learned {
            died_after,
            interval,
        } => ours(format!(
            "the server dropped this idle session within {}; heartbeat every {} from now on",
            format_duration(*died_after),
            format_duration(*interval)
        )),
        EventKind::Unreachable { error } => ours(error.to_string()),
        EventKind::ConnectFailed { error } => ours(format!("cannot connect: {error}")),
        EventKind::Warning { message } => ours(format!("warning: {message}")),
        EventKind::Connected { setup } if style.verbose => {
            ours(format!("connected in {}", format_duration(*setup)))
        }
        EventKind::Started { command } if style.verbose => ours(format!("$ {command}")),
        _ => None,
    }
}

fn draw_status(st: &mut State, style: Style) {
    let Some((step, since)) = st.step.clone() else {
        clear_status(st, style);
        return;
    };
    let now = Instant::now();
    let busy: Vec<&str> = st
        .order
        .iter()
        .filter(|n| st.hosts.get(*n).is_some_and(|h| h.busy))
        .map(String::as_str)
        .collect();
    let idle: Vec<(&str, &HostStats)> = st
        .order
        .iter()
        .filter_map(|n| st.hosts.get(n).map(|h| (n.as_str(), h)))
        .filter(|(_, h)| !h.busy)
        .collect();
    let mut line = format!("{step} {}", format_duration(now - since));
    if !busy.is_empty() {
        line.push_str(&format!(" · busy: {}", busy.join(",")));
    }
    if !idle.is_empty() {
        let names: Vec<&str> = idle.iter().map(|(n, _)| *n).collect();
        let longest = idle
            .iter()
            .filter_map(|(_, h)| h.idle_since)
            .map(|t| now - t)
            .max()
            .unwrap_or_default();
        let kept = if idle.iter().any(|(_, h)| h.last_heartbeat.is_some()) {
            ", kept alive"
        } else {
            ""
        };
        line.push_str(&format!(
            " · {} idle {}{kept}",
            names.join(","),
            format_duration(longest)
        ));
    }
    crate::out!("\r\x1b[2K{}", paint(style, "2", &line));
    st.status_shown = true;
}

/// JSON string literal for `s`.
pub fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn event_json(event: &Event, started: Instant) -> String {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        t: f64,
        #[serde(skip_serializing_if = "str::is_empty")]
        host: &'a str,
        #[serde(flatten)]
        kind: &'a EventKind,
    }
    let t = event.at.saturating_duration_since(started).as_secs_f64();
    let wire = Wire {
        t: (t * 1000.0).round() / 1000.0,
        host: &event.host,
        kind: &event.kind,
    };
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(json("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn tail_keeps_last_non_empty_lines() {
        assert_eq!(stderr_tail(b"a\n\nb\nc\n", 2), ["b", "c"]);
    }
}
