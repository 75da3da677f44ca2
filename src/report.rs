//! Output: one reporter thread turns the events of a run into host-prefixed lines, tether's
//! own lines, a live status line on a terminal, summaries, or (`--format json`) one JSON
//! object per event. Every part of tether reports through its [`Sink`], so lines never
//! interleave mid-line and the text and JSON views show the same run.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};

use crate::duration::format as format_duration;
use crate::event::{Event, EventKind, HostOutcome, Message, Sink, Stream};
use crate::outcome::{failure_text, status_words};
use crate::pool::HostResult;
use crate::settings::{Color, Format};

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
    /// When the current session was opened; `None` while it has none.
    pub connected_at: Option<Instant>,
    /// Why the host has no session (it never connected, or could not be reconnected).
    pub failed: Option<String>,
}

#[derive(Default)]
struct State {
    width: usize,
    order: Vec<String>,
    hosts: BTreeMap<String, HostStats>,
    /// Tasks in progress, innermost last, with their start.
    tasks: Vec<(String, Instant)>,
    status_shown: bool,
}

/// Prints events; see the module docs.
pub struct Reporter {
    sink: Sink,
    state: Arc<Mutex<State>>,
    look: Look,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy)]
struct Look {
    format: Format,
    /// A live status line (text on a terminal).
    live: bool,
    /// The status line is dimmed (written past anstream, so it decides itself).
    dim: bool,
    verbose: bool,
}

const HOST_COLORS: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Blue,
    AnsiColor::Green,
    AnsiColor::Yellow,
    AnsiColor::BrightCyan,
];

fn fg(c: AnsiColor) -> Style {
    Style::new().fg_color(Some(c.into()))
}

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn bold(text: &str) -> String {
    paint(Style::new().bold(), text)
}

impl Reporter {
    /// Starts the reporter thread. `verbose` prints heartbeats and every command even on a
    /// terminal; `color` as `--color` says (`auto`: on a terminal, unless `NO_COLOR` is set).
    pub fn start(format: Format, verbose: bool, color: Color) -> Self {
        let tty = std::io::stdout().is_terminal();
        anstream::ColorChoice::write_global(match (format, color) {
            (Format::Json, _) | (_, Color::Never) => anstream::ColorChoice::Never,
            (_, Color::Always) => anstream::ColorChoice::Always,
            (_, Color::Auto) => anstream::ColorChoice::Auto,
        });
        let look = Look {
            format,
            live: tty && format == Format::Text,
            dim: anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never,
            verbose,
        };
        let (sink, rx) = crate::event::channel();
        let state = Arc::new(Mutex::new(State::default()));
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("reporter".into())
            .spawn(move || run(rx, thread_state, look))
            .ok();
        Reporter {
            sink,
            state,
            look,
            thread,
        }
    }

    /// The channel every part of the run reports to.
    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Waits until every event sent before this call has been printed.
    pub fn barrier(&self) {
        self.sink.barrier();
    }

    /// Per-host counters.
    pub fn stats(&self) -> BTreeMap<String, HostStats> {
        lock(&self.state).hosts.clone()
    }

    /// Reports the outcome of every host of one fan-out (`tether run`), failures with their
    /// stderr tails; returns once it is printed.
    pub fn summary(&self, results: &[HostResult], elapsed: Duration) {
        let hosts = results
            .iter()
            .map(|r| {
                let (status, ok) = status_words(r);
                HostOutcome {
                    host: r.host.clone(),
                    ok,
                    status,
                    duration: match &r.result {
                        Some(Ok(out)) => Some(out.duration),
                        _ => None,
                    },
                    failure: match &r.result {
                        Some(result) if !ok => Some(failure_text(&r.host, &r.command, result)),
                        None => Some(format!(
                            "{}: `{}` was not run ({})",
                            r.host,
                            r.command,
                            crate::outcome::skipped_words(
                                r.skipped.unwrap_or(crate::dispatch::Skipped::Cancelled)
                            )
                        )),
                        _ => None,
                    },
                }
            })
            .collect();
        self.sink.emit(
            &Arc::from(""),
            EventKind::Summary {
                hosts,
                duration: elapsed,
            },
        );
        self.barrier();
    }

    /// Reports the end of a recipe run and, per host, its session; returns once printed.
    pub fn run_finished(&self, title: &str, ok: bool, elapsed: Duration) {
        self.sink.emit(
            &Arc::from(""),
            EventKind::RunFinished {
                title: title.to_string(),
                ok,
                duration: elapsed,
            },
        );
        self.barrier();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.barrier();
        {
            let mut st = lock(&self.state);
            clear_status(&mut st, self.look);
        }
        // Replacing our sink lets the thread end once the workers' sinks are gone too; it is
        // detached otherwise (workers may outlive the reporter in a panic).
        self.sink = crate::event::channel().0;
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

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Printing state stays usable even if a printing thread panicked.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes terminal control sequences (the status line) past anstream, which would strip them
/// under `--color never`.
fn raw(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(crate::exit::BROKEN_PIPE);
        }
    }
}

fn clear_status(st: &mut State, look: Look) {
    if look.live && st.status_shown {
        raw("\r\x1b[2K");
        st.status_shown = false;
    }
}

fn run(rx: Receiver<Message>, state: Arc<Mutex<State>>, look: Look) {
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
                let lines = match look.format {
                    Format::Json => json_lines(&st, &event, started),
                    Format::Text => text_lines(&st, look, &event),
                };
                if !lines.is_empty() {
                    clear_status(&mut st, look);
                    for line in lines {
                        crate::outln!("{line}");
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if look.live {
            let mut st = lock(&state);
            draw_status(&mut st, look);
        }
        let _ = std::io::stdout().flush();
    }
}

fn record(st: &mut State, event: &Event) {
    if let EventKind::Hosts { hosts } = &event.kind {
        for h in hosts {
            if !st.order.contains(&h.name) {
                st.order.push(h.name.clone());
            }
            st.hosts.entry(h.name.clone()).or_default();
        }
        st.width = st
            .order
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0);
        return;
    }
    match &event.kind {
        EventKind::TaskStarted { task } => st.tasks.push((task.clone(), event.at)),
        EventKind::TaskFinished { task, .. } => {
            if let Some(i) = st.tasks.iter().rposition(|(t, _)| t == task) {
                st.tasks.truncate(i);
            }
        }
        EventKind::RunFinished { .. } | EventKind::Summary { .. } => st.tasks.clear(),
        _ => {}
    }
    if event.host.is_empty() {
        return;
    }
    let h = st.hosts.entry(event.host.to_string()).or_default();
    match &event.kind {
        EventKind::Connected { .. } => {
            h.connected_at = Some(event.at);
            h.idle_since = Some(event.at);
            h.failed = None;
        }
        EventKind::ConnectFailed { error } | EventKind::Unreachable { error } => {
            h.connected_at = None;
            h.failed = Some(error.clone());
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
            h.failed = None;
        }
        _ => {}
    }
}

fn prefix(st: &State, host: &str, mark: &str, mark_style: Style) -> String {
    let width = st.width.max(host.chars().count());
    let index = st.order.iter().position(|n| n == host).unwrap_or(0);
    let name = paint(
        fg(HOST_COLORS[index % HOST_COLORS.len()]),
        &format!("{host:width$}"),
    );
    format!("{name} {}", paint(mark_style, mark))
}

/// The text lines of `event` (none for events text output does not show).
fn text_lines(st: &State, look: Look, event: &Event) -> Vec<String> {
    let host = &*event.host;
    let ours = |text: String| {
        vec![format!(
            "{} {text}",
            prefix(st, host, "~", fg(AnsiColor::Yellow))
        )]
    };
    let plan = |text: String| vec![format!("{} {text}", prefix(st, host, "|", Style::new()))];
    match &event.kind {
        EventKind::Output { stream, line } => vec![match stream {
            Stream::Stdout => format!("{} {line}", prefix(st, host, "|", Style::new())),
            Stream::Stderr => format!("{} {line}", prefix(st, host, "!", fg(AnsiColor::Red))),
        }],
        EventKind::Heartbeat { rtt, probe } if !look.live || look.verbose => ours(format!(
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
        EventKind::Unreachable { error } => ours(error.clone()),
        EventKind::ConnectFailed { error } => ours(format!("cannot connect: {error}")),
        EventKind::Warning { message } if host.is_empty() => vec![format!("warning: {message}")],
        EventKind::Warning { message } => ours(format!("warning: {message}")),
        EventKind::Connected { setup } if look.verbose => {
            ours(format!("connected in {}", format_duration(*setup)))
        }
        EventKind::Started { command } if look.verbose => ours(format!("$ {command}")),
        EventKind::TaskStarted { task } => vec![bold(&format!("▶ {task}"))],
        EventKind::Print { text } => vec![text.clone()],
        EventKind::OnCommand { hosts, command } => {
            vec![format!("» {} $ {command}", hosts.join(","))]
        }
        EventKind::Planned { command } => plan(format!("$ {command}")),
        EventKind::PlannedUpload {
            local,
            remote,
            bytes,
        } => {
            let size = bytes.map_or_else(|| "made during the run".into(), |b| format!("{b} bytes"));
            plan(format!("upload {local} -> {remote} ({size})"))
        }
        EventKind::PlannedLocal { command } => vec![format!("local | $ {command}")],
        EventKind::LocalOutput { line, .. } => vec![format!("local ! {line}")],
        EventKind::Summary { hosts, duration } => summary_text(st, hosts, *duration),
        EventKind::RunFinished {
            title, duration, ..
        } => sessions_text(st, title, *duration),
        EventKind::Record(r) => r.text.clone(),
        _ => Vec::new(),
    }
}

fn summary_text(st: &State, hosts: &[HostOutcome], elapsed: Duration) -> Vec<String> {
    let width = hosts
        .iter()
        .map(|r| r.host.chars().count())
        .max()
        .unwrap_or(0);
    let failed = hosts.iter().filter(|r| !r.ok).count();
    let mut out = vec![
        String::new(),
        format!(
            "{} {} ok, {failed} failed, {}",
            bold("summary:"),
            hosts.len() - failed,
            format_duration(elapsed)
        ),
    ];
    for r in hosts {
        let took = r.duration.map(format_duration).unwrap_or_default();
        let s = st.hosts.get(&r.host).cloned().unwrap_or_default();
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
        let color = if r.ok {
            AnsiColor::Green
        } else {
            AnsiColor::Red
        };
        out.push(format!(
            "  {:width$}  {}  {took}{keep}",
            r.host,
            paint(fg(color), &r.status)
        ));
    }
    for f in hosts.iter().filter_map(|r| r.failure.as_ref()) {
        out.push(String::new());
        out.push(paint(fg(AnsiColor::Red), f));
    }
    out
}

fn sessions_text(st: &State, title: &str, elapsed: Duration) -> Vec<String> {
    let mut out = vec![
        String::new(),
        format!("{} {title} in {}", bold("done:"), format_duration(elapsed)),
    ];
    let width = st
        .order
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    for host in &st.order {
        let s = st.hosts.get(host).cloned().unwrap_or_default();
        let what = match (&s.connected_at, &s.failed) {
            (Some(_), _) => format!(
                "one session, {} heartbeat{}, {} reconnect{}",
                s.heartbeats,
                plural(s.heartbeats),
                s.reconnects,
                plural(s.reconnects)
            ),
            (None, Some(why)) if s.reconnects == 0 && s.heartbeats == 0 => {
                format!("never connected ({why})")
            }
            (None, Some(why)) => format!(
                "session lost after {} heartbeat{}, {} reconnect{} ({why})",
                s.heartbeats,
                plural(s.heartbeats),
                s.reconnects,
                plural(s.reconnects)
            ),
            (None, None) => "not connected (the run did not need it)".into(),
        };
        out.push(format!("  {host:width$}  {what}"));
    }
    out
}

/// The JSON lines of `event`: one object, or one per host for the summaries.
fn json_lines(st: &State, event: &Event, started: Instant) -> Vec<String> {
    let t = event.at.saturating_duration_since(started).as_secs_f64();
    let t = (t * 1000.0).round() / 1000.0;
    match &event.kind {
        EventKind::Summary { hosts, .. } => hosts
            .iter()
            .map(|h| {
                let s = st.hosts.get(&h.host).cloned().unwrap_or_default();
                let mut v = serde_json::json!({
                    "t": t,
                    "type": "summary",
                    "heartbeats": s.heartbeats,
                    "reconnects": s.reconnects,
                });
                merge(&mut v, serde_json::to_value(h));
                v.to_string()
            })
            .chain(std::iter::once(wire(event, t)))
            .collect(),
        EventKind::RunFinished { .. } => st
            .order
            .iter()
            .map(|host| {
                let s = st.hosts.get(host).cloned().unwrap_or_default();
                serde_json::json!({
                    "t": t,
                    "type": "session_summary",
                    "host": host,
                    "connected": s.connected_at.is_some(),
                    "heartbeats": s.heartbeats,
                    "reconnects": s.reconnects,
                    "error": s.failed,
                })
                .to_string()
            })
            .chain(std::iter::once(wire(event, t)))
            .collect(),
        _ => vec![wire(event, t)],
    }
}

fn merge(into: &mut serde_json::Value, from: Result<serde_json::Value, serde_json::Error>) {
    if let (Some(into), Ok(serde_json::Value::Object(from))) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// `{"t":..,"host":..,"type":..,...}` for one event.
fn wire(event: &Event, t: f64) -> String {
    #[derive(serde::Serialize)]
    struct Wire<'a> {
        t: f64,
        #[serde(skip_serializing_if = "str::is_empty")]
        host: &'a str,
        #[serde(flatten)]
        kind: &'a EventKind,
    }
    let wire = Wire {
        t,
        host: &event.host,
        kind: &event.kind,
    };
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

fn draw_status(st: &mut State, look: Look) {
    let Some((step, since)) = st.tasks.last().cloned() else {
        clear_status(st, look);
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
        .filter(|(_, h)| !h.busy && h.connected_at.is_some())
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
    let style = if look.dim {
        Style::new().dimmed()
    } else {
        Style::new()
    };
    raw(&format!("\r\x1b[2K{}", paint(style, &line)));
    st.status_shown = true;
}
