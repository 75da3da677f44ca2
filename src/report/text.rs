//! The text view of a run: host-prefixed lines (`|` stdout, `!` stderr, `~` tether's own),
//! task headers, tether's notes, the dry run's plan, and the summaries.

use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::state::{Look, State};
use crate::duration::format as format_duration;
use crate::event::{Event, EventKind, HostOutcome, Stream};

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

pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn bold(text: &str) -> String {
    paint(Style::new().bold(), text)
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
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
pub fn text_lines(st: &State, look: Look, event: &Event) -> Vec<String> {
    let host = &*event.host;
    let ours = |text: String| {
        // Errors name their host for the summary; beside the host's own prefix it is said once.
        let text = match text.strip_prefix(host).and_then(|t| t.strip_prefix(": ")) {
            Some(rest) if !host.is_empty() => rest.to_string(),
            _ => text,
        };
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
        EventKind::ConnectFailed { error } => ours(format!(
            "cannot connect: {}",
            error
                .strip_prefix(host)
                .and_then(|t| t.strip_prefix(": "))
                .unwrap_or(error)
        )),
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
        EventKind::Summary {
            hosts, duration, ..
        } => summary_text(st, hosts, *duration),
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
            (None, Some(why)) if s.sessions == 0 => format!("never connected ({why})"),
            (None, Some(why)) => format!(
                "session lost after {} command{}, {} heartbeat{}, {} reconnect{} ({why})",
                s.commands,
                plural(s.commands),
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
