//! The text view of a run: host-prefixed lines (`|` stdout, `!` stderr, `~` tether's own),
//! task headers, tether's notes, the dry run's plan, and the summaries.

use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::fold::{Group, Lane};
use super::state::{HostStats, Look, State};
use crate::duration::format as format_duration;
use crate::event::{Beat, Event, EventKind, HostOutcome, LimitFrom, Tally, LOST_AT_THE_END};
use crate::host_text::HostText;
use crate::outcome::named;

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

/// A task's heading: `▶ deploy:check`.
pub fn heading(task: &str) -> String {
    bold(&format!("▶ {task}"))
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn prefix(st: &State, host: &str, mark: &str, mark_style: Style) -> String {
    let shown = crate::host_text::named(host);
    let width = st.width.max(shown.chars().count());
    let index = st.position(host).unwrap_or(0);
    let name = paint(
        fg(HOST_COLORS[index % HOST_COLORS.len()]),
        &format!("{shown:width$}"),
    );
    format!("{name} {}", paint(mark_style, mark))
}

/// A command's output line as text output shows it: control characters as `\xNN` (as bytes
/// that are not UTF-8 are, see `ssh::exec::incoming`), but for tabs and whole colour sequences
/// (`ESC [ ... m`), which a terminal draws and anstream strips from a log. Any other
/// escape sequence would be taken in by the terminal or by anstream's stripping, which reads an
/// unfinished one (`ESC ]` without its end) on into the next line and its newline: the line
/// would be lost, or glued to the next. A character that shows as nothing (a direction
/// override, a zero-width space, a line separator: see `chars::invisible`) is spelt
/// `\u{202e}`, as in a command's text (stop 46 tester t62: a failure's line showed U+202E
/// raw, reversing the rest of it). JSON keeps the line as it is.
pub fn visible(line: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c == '\t' || !crate::chars::invisible(c);
    if line.chars().all(plain) {
        return line.into();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' {
            if let Some(len) = csi_len(rest) {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
        }
        push_shown(&mut out, c, plain(c));
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

/// `text` with each of its lines as [`visible`] shows it: a failure's text in text output
/// (its stderr tail, a `fail()` message, a host's error), whose words come from hosts and
/// recipes as a command's output does.
pub fn visible_lines(text: &str) -> String {
    text.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

/// A command's text as it is sent, every control character but a newline and a tab shown as
/// `\xNN` (colour sequences too: they are bytes of the command, not output): what the line
/// shows is what runs (stop 46 tester t60: `true '\x1b[2K\x1b[1Aspoof\r'` was shown as
/// `true 'spoof^M'`, its sequences stripped on the way out and its `\r` drawing back over the
/// line).
///
/// A character that shows as nothing (a direction override, a zero-width space: see
/// `chars::invisible`) is spelt `\u{202e}`, so two commands that differ never look alike (stop
/// 46 tester t61), and each line after the first comes behind `chars::CONTINUED`.
pub fn command_text(command: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c == '\t' || !crate::chars::invisible(c);
    if command.chars().all(plain) {
        return command.into();
    }
    let mut out = String::with_capacity(command.len() + 8);
    for c in command.chars() {
        match c {
            '\n' => {
                out.push('\n');
                out.push_str(crate::chars::CONTINUED);
            }
            c => push_shown(&mut out, c, plain(c)),
        }
    }
    out.into()
}

/// Pushes `c` onto `out` as it is where `plain`, else a control character as each of its
/// bytes, `\xNN`, and any other as `\u{NNNN}`.
fn push_shown(out: &mut String, c: char, plain: bool) {
    if plain {
        out.push(c);
    } else if c.is_control() {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    } else {
        out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
    }
}

/// The length of the colour sequence `text` starts with (SGR: `ESC [`, parameters of digits,
/// `;` and `:`, then `m`), if it does. Only colour passes: any other CSI sequence moves the
/// cursor or erases (`ESC [ 1 A`, `ESC [ 2 K`), so a host's line could overwrite another's
/// on the screen and pass for it.
fn csi_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(1) != Some(&b'[') {
        return None;
    }
    let mut i = 2;
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
    {
        i += 1;
    }
    (bytes.get(i) == Some(&b'm')).then_some(i + 1)
}

/// The mark of a host's line of `lane`, and its style.
fn mark(lane: Lane) -> (&'static str, Style) {
    match lane {
        Lane::Stdout => ("|", Style::new()),
        Lane::Stderr => ("!", fg(AnsiColor::Red)),
        Lane::Tether => ("~", fg(AnsiColor::Yellow)),
    }
}

/// One line printed by the hosts of `group`: as that host's line when one printed it, else
/// headed by their set (`web[01-40,42] | done`).
pub fn group_line(st: &State, group: &Group) -> String {
    let (mark, style) = mark(group.lane);
    if let [host] = group.hosts.as_slice() {
        return format!("{} {}", prefix(st, host, mark, style), group.text);
    }
    let set = crate::host_text::set(&group.hosts);
    let width = st.width;
    format!(
        "{} {} {}",
        bold(&format!("{set:width$}")),
        paint(style, mark),
        group.text
    )
}

/// The line of a re-attach: when the connection was lost (`heard_after`, the last byte from
/// the command, which its supervisor sends after every 0.4 s of silence), how long noticing
/// that took where it took a second or more (a silent network: the kernel's timeout), and how
/// long re-attaching took from then; where no byte had come, only when the loss was noticed.
fn reattached_words(
    command: &str,
    heard_after: Option<Duration>,
    lost_after: Duration,
    took: Duration,
) -> String {
    let took = format_duration(took);
    match heard_after {
        Some(heard) => {
            let noticed = lost_after.saturating_sub(heard);
            let noticed = if noticed >= Duration::from_secs(1) {
                format!("noticed {} later, ", format_duration(noticed))
            } else {
                String::new()
            };
            format!(
                "connection lost {} into `{command}`; {noticed}re-attached after {took}",
                format_duration(heard)
            )
        }
        None => format!(
            "connection loss noticed {} into `{command}`; re-attached after {took}",
            format_duration(lost_after)
        ),
    }
}

/// The lines of `event` that are one of its host's own (none for an event of no host, or
/// one that is not a host's line): the command's stdout and stderr, the dry run's plan, and
/// tether's own lines about the host. Text output prefixes them with the host, or folds them
/// (see `fold.rs`).
pub fn host_lines(look: Look, event: &Event) -> Option<Vec<(Lane, String)>> {
    let host = &*event.host;
    if host.is_empty() {
        return None;
    }
    let tether = |text: String| {
        // Errors name their host for the summary; beside the host's own prefix it is said once.
        let text = match text.strip_prefix(host).and_then(|t| t.strip_prefix(": ")) {
            Some(rest) => rest.to_string(),
            None => text,
        };
        vec![(Lane::Tether, text)]
    };
    let plan = |text: String| vec![(Lane::Stdout, text)];
    Some(match &event.kind {
        EventKind::Output { stream, line, .. } => vec![(Lane::from(*stream), visible(line).into())],
        // Quiet by default, on a terminal (the status line shows idle hosts kept alive) and in
        // a log alike: the summary counts them.
        EventKind::Heartbeat { rtt, probe, beat } if look.verbose => tether(format!(
            "idle, kept alive: heartbeat {}{}{}",
            format_duration(*rtt),
            match beat {
                Beat::Keepalive => " (protocol keepalive, acknowledged)",
                Beat::Channel => " (a channel opened and closed, no command)",
                Beat::Command => " (`true`: the server may close a connection without one)",
                Beat::Limits => " (read the server's idle limits)",
            },
            if *probe {
                " (woken by data from the server, such as a ClientAlive probe)"
            } else {
                ""
            }
        )),
        EventKind::Reconnecting {
            reason,
            failed,
            attempts,
            error,
            next_in,
        } => tether(format!(
            "{reason}; reconnecting: attempt {failed} of {attempts} failed ({}); the next in {}",
            error
                .strip_prefix(host)
                .and_then(|t| t.strip_prefix(": "))
                .unwrap_or(error),
            format_duration(*next_in)
        )),
        EventKind::Reconnected { reason, took, .. } => tether(format!(
            "{reason}; reconnected in {}",
            format_duration(*took)
        )),
        EventKind::Reattached {
            command,
            heard_after,
            lost_after,
            took,
        } => tether(reattached_words(
            &command_text(&named(command)),
            *heard_after,
            *lost_after,
            *took,
        )),
        // Before its start marker nothing comes on a schedule: when the loss was noticed is
        // all that is known.
        EventKind::Resent {
            command,
            lost_after,
            took,
        } => tether(format!(
            "connection loss noticed {} after sending `{}`, before it started on the \
             host; reconnected and sent it again after {} (it had not run)",
            format_duration(*lost_after),
            command_text(&named(command)),
            format_duration(*took)
        )),
        // Nothing signalled: not said to be stopped (stop 60 tester t96: `stopped ... (its
        // timeout passed): nothing of it was left running`, of a PTY command that had ended).
        EventKind::RemoteStopped {
            command,
            why,
            how,
            nothing_to_stop: true,
        } => tether(format!(
            "`{}` needed no stop on the host ({why}): {how}",
            command_text(&named(command))
        )),
        EventKind::RemoteStopped {
            command, why, how, ..
        } => tether(format!(
            "stopped `{}` on the host ({why}): {how}",
            command_text(&named(command))
        )),
        EventKind::RemoteLeftRunning {
            command,
            left,
            why,
            pgid,
            spool,
            stop_with,
        } => {
            let named = named(command);
            let command = command_text(&named);
            let head = format!(
                "warning: `{command}` may still be running on the host: it was left running \
                 when {left}, and tether could not stop it ({why})."
            );
            tether(match (pgid, spool.is_empty()) {
                (Some(g), false) => format!(
                    "{head} Its process group is {g}, its output is in {spool}.o.* and \
                     {spool}.e.*; to stop it and remove its files: {stop_with}"
                ),
                (None, false) => format!(
                    "{head} Its output is in {spool}.o.* and {spool}.e.*; to stop it and \
                     remove its files: {stop_with}"
                ),
                // A command on a terminal: no files, its group only.
                (Some(g), true) => {
                    format!("{head} Its process group is {g}; to stop it: {stop_with}")
                }
                (None, true) => head,
            })
        }
        // One death does not say who closed the session (sshd killed outright closes it as its
        // idle limit does): blamed on the server only once a second confirmed it.
        EventKind::Learned {
            died_after,
            interval,
            confirmed: false,
            ..
        } => tether(format!(
            "this idle session was closed after {} idle (by the server's idle limit or by \
             something else: not remembered until it happens again); heartbeat every {} for \
             this run",
            format_duration(*died_after),
            format_duration(*interval)
        )),
        EventKind::Learned {
            died_after,
            interval,
            confirmed: true,
            remembered,
        } => tether(format!(
            "the server closed this idle session after {} idle, as it closed one before after \
             about as long: its idle limit, {}; heartbeat every {} from now on",
            format_duration(*died_after),
            match remembered {
                true => "remembered",
                false => "for this run only (the idle-limit cache could not be written)",
            },
            format_duration(*interval)
        )),
        EventKind::IdleLimit {
            limit,
            from,
            interval,
        } if look.verbose => tether(format!(
            "{}; {} every {} from now on",
            match from {
                LimitFrom::SshdConfig { in_match: false } => format!(
                    "the server closes connections unused for {} (UnusedConnectionTimeout)",
                    format_duration(*limit)
                ),
                LimitFrom::SshdConfig { in_match: true } => format!(
                    "a Match block of the server's config closes connections unused for {} \
                     (UnusedConnectionTimeout; which logins it applies to is not evaluated: \
                     the shortest counts)",
                    format_duration(*limit)
                ),
                LimitFrom::TunnelTimeout => format!(
                    "the server closes tunnels no data crossed for {} (ChannelTimeout)",
                    format_duration(*limit)
                ),
                LimitFrom::Remembered { read, age_s } => format!(
                    "the server {} {} (remembered from a run {} ago)",
                    if *read {
                        "closes connections unused for"
                    } else {
                        "closed two idle sessions after"
                    },
                    format_duration(*limit),
                    // Whole seconds, and none for an entry of this very second or dated
                    // ahead of this clock (stop 59 tester t95: `0.0 ms ago`).
                    match age_s {
                        0 => "less than a second".to_string(),
                        _ => format_duration(Duration::from_secs(*age_s)),
                    }
                ),
            },
            // A jump host's tunnel limit sets the interval of the hosts behind it.
            match from {
                LimitFrom::TunnelTimeout => "the hosts behind it beat",
                _ => "heartbeat",
            },
            format_duration(*interval)
        )),
        EventKind::Note { message } if look.verbose => tether(format!("note: {message}")),
        EventKind::Unreachable { error } => tether(error.clone()),
        EventKind::SessionLost { reason, .. } => tether(format!("{reason}; {LOST_AT_THE_END}")),
        EventKind::ConnectFailed { error, .. } => tether(format!(
            "cannot connect: {}",
            error
                .strip_prefix(host)
                .and_then(|t| t.strip_prefix(": "))
                .unwrap_or(error)
        )),
        EventKind::Warning { message } | EventKind::AnotherConnection { message, .. } => {
            tether(format!("warning: {message}"))
        }
        EventKind::Connected { setup } if look.verbose => {
            tether(format!("connected in {}", format_duration(*setup)))
        }
        EventKind::Started { command } if look.verbose => {
            tether(format!("$ {}", command_text(command)))
        }
        EventKind::LoginShellOutput { stdout, stderr } if look.verbose => {
            let said = |text: &str, on: &str| {
                text.lines()
                    .map(|l| format!("the login shell printed{on}: {l}"))
                    .collect::<Vec<_>>()
            };
            let mut lines = said(stdout, "");
            lines.extend(said(stderr, " on stderr"));
            lines.into_iter().flat_map(tether).collect()
        }
        EventKind::Planned { command } => plan(format!("$ {}", command_text(command))),
        EventKind::PlannedUpload {
            local,
            remote,
            bytes,
        } => {
            let size = bytes.map_or_else(|| "made during the run".into(), |b| format!("{b} bytes"));
            plan(format!(
                "{} ({size})",
                crate::transfer::paths::label("upload", local, remote)
            ))
        }
        EventKind::PlannedDownload { remote, local } => {
            plan(crate::transfer::paths::label("download", remote, local))
        }
        _ => return None,
    })
}

/// The text lines of `event` (none for events text output does not show).
pub fn text_lines(st: &State, look: Look, event: &Event) -> Vec<String> {
    let host = &*event.host;
    if let Some(lines) = host_lines(look, event) {
        return lines
            .into_iter()
            .map(|(lane, text)| {
                let (mark, style) = mark(lane);
                format!("{} {text}", prefix(st, host, mark, style))
            })
            .collect();
    }
    match &event.kind {
        EventKind::Note { message } if look.verbose => vec![format!("note: {message}")],
        EventKind::Warning { message } => vec![format!("warning: {message}")],
        EventKind::TaskStarted { task } => vec![heading(task)],
        EventKind::Print { text } => vec![text.clone()],
        EventKind::OnCommand { hosts, command } => {
            let hosts = match look.fold {
                true => crate::host_text::set(hosts),
                false => hosts.join(","),
            };
            vec![format!("» {hosts} $ {}", command_text(command))]
        }
        EventKind::PlannedLocal { command } => {
            vec![format!("local | $ {}", command_text(command))]
        }
        EventKind::LocalOutput { line, .. } => vec![format!("local ! {}", visible(line))],
        EventKind::Summary {
            hosts, duration, ..
        } => summary_text(st, look, hosts, *duration),
        EventKind::RunFinished { .. } if st.dry_run => Vec::new(),
        EventKind::RunFinished {
            title, duration, ..
        } => sessions_text(st, look, title, *duration),
        EventKind::Record(r) => r.text.clone(),
        _ => Vec::new(),
    }
}

fn summary_text(st: &State, look: Look, hosts: &[HostOutcome], elapsed: Duration) -> Vec<String> {
    // A host that tether stopped (an interrupt, another host's failure) or never ran its
    // command did not fail: the counts say which is which, as the rows below do.
    let count = |t: Tally| hosts.iter().filter(|r| r.tally == t).count();
    let mut counts = format!("{} ok, {} failed", count(Tally::Ok), count(Tally::Failed));
    for (t, what) in [
        (Tally::Stopped, "stopped"),
        (Tally::LeftRunning, "left running"),
        (Tally::NotRun, "not run"),
    ] {
        if count(t) > 0 {
            counts.push_str(&format!(", {} {what}", count(t)));
        }
    }
    let mut out = vec![
        String::new(),
        format!(
            "{} {counts}, {}",
            bold("summary:"),
            format_duration(elapsed)
        ),
    ];
    // One row per result; folded, one per distinct result with its hosts' set and the ranges
    // of their durations and heartbeats (routine, unlike a reconnect or a re-attach, which
    // set a host apart).
    struct Row<'a> {
        names: Vec<&'a str>,
        outcome: &'a HostOutcome,
        counts: Counts,
        took: Vec<Duration>,
    }
    let mut rows: Vec<Row> = Vec::new();
    for r in hosts {
        let counts = Counts::of(&st.hosts.get(&r.host).cloned().unwrap_or_default());
        let same = rows.iter_mut().find(|row| {
            look.fold
                && row.outcome.status == r.status
                && row.outcome.ok == r.ok
                && row.counts.same_but_heartbeats(&counts)
        });
        match same {
            Some(row) => {
                row.names.push(&r.host);
                row.took.extend(r.duration);
                row.counts.add_heartbeats(&counts);
            }
            None => rows.push(Row {
                names: vec![&r.host],
                outcome: r,
                counts,
                took: r.duration.into_iter().collect(),
            }),
        }
    }
    let names: Vec<String> = rows
        .iter()
        .map(|row| crate::host_text::set(&row.names))
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (name, row) in names.iter().zip(&rows) {
        let least = row.took.iter().min().map(|d| format_duration(*d));
        let most = row.took.iter().max().map(|d| format_duration(*d));
        let took = match (least, most) {
            (Some(a), Some(b)) if a != b => format!("{a}–{b}"),
            (a, _) => a.unwrap_or_default(),
        };
        let color = if row.outcome.ok {
            AnsiColor::Green
        } else {
            AnsiColor::Red
        };
        let keep = match row.counts.any() {
            true => format!("  ({})", row.counts),
            false => String::new(),
        };
        let row = format!(
            "  {name:width$}  {}  {took}{keep}",
            paint(fg(color), &row.outcome.status)
        );
        // A host with no duration (never reached) ends with its status.
        out.push(row.trim_end().to_string());
    }
    let failures: Vec<(&str, &HostText)> = hosts
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| (r.host.as_str(), f)))
        .collect();
    let texts: Vec<String> = if look.fold {
        crate::host_text::fold(&failures)
    } else {
        failures.iter().map(|(_, f)| f.to_string()).collect()
    };
    for f in texts {
        out.push(String::new());
        out.push(paint(fg(AnsiColor::Red), &visible_lines(&f)));
    }
    out
}

/// A host's session counts, or those of hosts folded into one row: heartbeats as the range
/// of theirs (`3–5 heartbeats`), reconnects and re-attaches the same for every host of a row.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    heartbeats: (u64, u64),
    reconnects: u64,
    reattaches: u64,
}

impl Counts {
    fn of(s: &HostStats) -> Counts {
        Counts {
            heartbeats: (s.heartbeats, s.heartbeats),
            reconnects: s.reconnects,
            reattaches: s.reattaches,
        }
    }

    fn any(&self) -> bool {
        self.heartbeats.1 > 0 || self.reconnects > 0 || self.reattaches > 0
    }

    fn same_but_heartbeats(&self, other: &Counts) -> bool {
        self.reconnects == other.reconnects && self.reattaches == other.reattaches
    }

    fn add_heartbeats(&mut self, other: &Counts) {
        self.heartbeats.0 = self.heartbeats.0.min(other.heartbeats.0);
        self.heartbeats.1 = self.heartbeats.1.max(other.heartbeats.1);
    }
}

/// One host's session counts as a summary row says them (`3 heartbeats, 1 reconnect`, and
/// `, 1 re-attach` when a command was re-attached): for other last words, such as watch's.
pub fn counts_said(s: &HostStats) -> String {
    Counts::of(s).to_string()
}

/// `3 heartbeats, 1 reconnect` (`3–5 heartbeats` for a range), and `, 1 re-attach` when a
/// command was re-attached.
impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.heartbeats {
            (a, b) if a == b => write!(f, "{a} heartbeat{}", plural(a))?,
            (a, b) => write!(f, "{a}–{b} heartbeats")?,
        }
        write!(
            f,
            ", {} reconnect{}",
            self.reconnects,
            plural(self.reconnects)
        )?;
        if self.reattaches > 0 {
            write!(
                f,
                ", {} re-attach{}",
                self.reattaches,
                plural_es(self.reattaches)
            )?;
        }
        Ok(())
    }
}

fn plural_es(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "es"
    }
}

fn sessions_text(st: &State, look: Look, title: &str, elapsed: Duration) -> Vec<String> {
    let mut out = vec![
        String::new(),
        format!("{} {title} in {}", bold("done:"), format_duration(elapsed)),
    ];
    // What a host's session came to, its heartbeats apart: folded, hosts whose sessions
    // went the same way share a row, their heartbeats a range. Words as they are: a host's
    // name in an error is not where the row's set is, so hosts share a row only when they
    // say the same.
    #[derive(PartialEq)]
    enum Went {
        Open { sessions: u64 },
        Never { why: String },
        Lost { commands: u64, why: String },
        Unneeded,
    }
    let mut rows: Vec<(Vec<&str>, Went, Counts)> = Vec::new();
    for host in st.session_hosts() {
        let s = st.hosts.get(host).cloned().unwrap_or_default();
        let went = match (&s.connected_at, &s.failed) {
            (Some(_), _) => Went::Open {
                sessions: s.sessions,
            },
            (None, Some(why)) if s.sessions == 0 => Went::Never { why: why.clone() },
            (None, Some(why)) => Went::Lost {
                commands: s.commands,
                why: why.clone(),
            },
            (None, None) => Went::Unneeded,
        };
        let counts = Counts::of(&s);
        let same = rows
            .iter_mut()
            .find(|(_, w, c)| look.fold && *w == went && c.same_but_heartbeats(&counts));
        match same {
            Some((hosts, _, c)) => {
                hosts.push(host);
                c.add_heartbeats(&counts);
            }
            None => rows.push((vec![host], went, counts)),
        }
    }
    let rows: Vec<(String, String)> = rows
        .into_iter()
        .map(|(hosts, went, counts)| {
            let what = match went {
                // A reconnect opened another session: say how many, as the JSON does.
                Went::Open { sessions } if sessions > 1 => {
                    format!("{sessions} sessions, {counts}")
                }
                Went::Open { .. } => format!("one session, {counts}"),
                Went::Never { why } => format!("never connected ({why})"),
                Went::Lost { commands, why } => format!(
                    "session lost after {commands} finished command{}, {counts} ({why})",
                    plural(commands)
                ),
                Went::Unneeded => "not connected (the run did not need it)".into(),
            };
            let name = match look.fold {
                true => crate::host_text::set(&hosts),
                false => hosts.join(","),
            };
            (name, visible_lines(&what))
        })
        .collect();
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (host, what) in rows {
        out.push(format!("  {host:width$}  {what}"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_is_shown_with_its_control_characters_escaped() {
        assert_eq!(
            super::command_text("true '\x1b[2K\x1b[1Aspoof\r' ; echo done\n\tx"),
            "true '\\x1b[2K\\x1b[1Aspoof\\x0d' ; echo done\n> \tx"
        );
        assert_eq!(super::command_text("echo ünï"), "echo ünï");
        assert_eq!(
            super::command_text("echo 'evil\u{202e}\u{200b}'"),
            "echo 'evil\\u{202e}\\u{200b}'"
        );
    }

    use super::{host_lines, reattached_words, visible};
    use std::time::Duration;

    /// Host names are padded to the widest, up to `PAD_MOST` characters (stop 67 tester t112:
    /// one name of 201 padded every line to 200 columns).
    #[test]
    fn names_are_padded_to_the_widest_up_to_a_bound() {
        use crate::event::{Event, EventKind, HostEntry};
        use crate::report::state::{record, PAD_MOST};
        for (long, width) in [(4, 4), (15, 15), (PAD_MOST, PAD_MOST), (201, PAD_MOST)] {
            let mut st = super::State::default();
            let hosts = ["a".to_string(), "x".repeat(long)]
                .into_iter()
                .map(|name| HostEntry {
                    name,
                    roles: Vec::new(),
                })
                .collect();
            record(&mut st, &Event::now("".into(), EventKind::Hosts { hosts }));
            assert_eq!(st.width, width, "{long}");
        }
    }

    /// A jump host's further connections (made when a tunnel waited for its answer) are
    /// sessions of its own at the run's end (stop 55 tester t87: `one session` for a bastion
    /// that made two logins).
    #[test]
    fn a_jump_hosts_further_connections_are_counted_as_its_sessions() {
        use crate::event::{Event, EventKind};
        let mut st = super::State::default();
        let jump: std::sync::Arc<str> = "bastion (jump)".into();
        for kind in [
            EventKind::Connected {
                setup: Duration::from_millis(20),
            },
            EventKind::AnotherConnection {
                setup: Duration::from_millis(30),
                open: 2,
                message: "another connection to it (2 open now)".into(),
            },
        ] {
            super::super::state::record(&mut st, &Event::now(jump.clone(), kind));
        }
        let look = super::Look {
            format: crate::settings::Format::Text,
            live: false,
            dim: false,
            verbose: false,
            fold: true,
        };
        let text = super::sessions_text(&st, look, "deploy", Duration::from_secs(1)).join("\n");
        assert!(text.contains("  bastion (jump)  2 sessions, "), "{text}");
    }

    /// tether's own lines about a command name a long one by its start (stop 42 tester t44: a
    /// re-attach line of 40,198 characters for a staged command); its output lines do not.
    /// How a plain, non-verbose text run looks.
    fn plain_look() -> crate::report::state::Look {
        crate::report::state::Look {
            format: crate::settings::Format::Text,
            live: false,
            dim: false,
            verbose: false,
            fold: false,
        }
    }

    #[test]
    fn a_failed_reconnect_attempt_says_when_the_next_comes() {
        use crate::event::{Event, EventKind};
        let look = plain_look();
        let kind = EventKind::Reconnecting {
            reason: "connection lost while idle (the server closed the connection)".into(),
            failed: 2,
            attempts: 4,
            error: "web1: cannot connect to 10.0.0.1:22: connection refused".into(),
            next_in: Duration::from_secs(2),
        };
        let lines = host_lines(look, &Event::now("web1".into(), kind)).unwrap();
        assert_eq!(
            lines[0].1,
            "connection lost while idle (the server closed the connection); reconnecting: \
             attempt 2 of 4 failed (cannot connect to 10.0.0.1:22: connection refused); the \
             next in 2.0 s"
        );
    }

    /// A limit remembered from a run this very second, or dated ahead of this clock (the cache
    /// takes a minute of it), is not said `0.0 ms ago` (stop 59 tester t95).
    #[test]
    fn a_limit_remembered_this_second_is_not_said_ms_ago() {
        use crate::event::{Event, EventKind, LimitFrom};
        let look = crate::report::state::Look {
            verbose: true,
            ..plain_look()
        };
        let said = |age_s| {
            let kind = EventKind::IdleLimit {
                limit: Duration::from_secs(3),
                from: LimitFrom::Remembered { read: true, age_s },
                interval: Duration::from_secs(1),
            };
            host_lines(look, &Event::now("web1".into(), kind)).unwrap()[0]
                .1
                .clone()
        };
        assert!(
            said(0).contains("(remembered from a run less than a second ago)"),
            "{}",
            said(0)
        );
        assert!(
            said(7200).contains("(remembered from a run 2h00m ago)"),
            "{}",
            said(7200)
        );
    }

    #[test]
    fn tethers_lines_name_a_long_command_by_its_start() {
        use crate::event::{Event, EventKind};
        let look = plain_look();
        let long = format!("echo {}", "x".repeat(40_000));
        let kinds = [
            EventKind::Reattached {
                command: long.clone(),
                heard_after: None,
                lost_after: Duration::from_secs(1),
                took: Duration::from_secs(1),
            },
            EventKind::RemoteStopped {
                command: long.clone(),
                why: "Ctrl-C".into(),
                how: "its process group was sent SIGTERM and ended".into(),
                nothing_to_stop: false,
            },
        ];
        for kind in kinds {
            let lines = host_lines(look, &Event::now("web1".into(), kind)).unwrap();
            let text = &lines[0].1;
            assert!(text.len() < 400, "{} characters", text.len());
            assert!(
                text.contains(&format!("`echo {}…`", "x".repeat(115))),
                "{text}"
            );
        }
    }

    /// A stop that found the command ended (or never started) signalled nothing: the line does
    /// not say it stopped it (stop 60 tester t96: `stopped ... (its timeout passed): nothing
    /// of it was left running`, of a PTY command that had printed its last line and ended).
    #[test]
    fn a_stop_that_found_nothing_to_stop_is_not_said_to_have_stopped_it() {
        use crate::event::{Event, EventKind};
        use crate::ssh::exec::RemoteStop;
        use crate::ssh::supervisor::StopDone;
        for (done, nothing) in [
            (StopDone::Term, false),
            (StopDone::Kill, false),
            (StopDone::Gone, true),
            (StopDone::Never, true),
        ] {
            let stop = RemoteStop::of(Ok(done), None);
            assert_eq!(stop.nothing_to_stop, nothing, "{done:?}");
            let kind = EventKind::RemoteStopped {
                command: "make".into(),
                why: "its timeout passed".into(),
                how: stop.how.clone(),
                nothing_to_stop: stop.nothing_to_stop,
            };
            let lines = host_lines(plain_look(), &Event::now("web1".into(), kind)).unwrap();
            let want = match nothing {
                true => format!(
                    "`make` needed no stop on the host (its timeout passed): {}",
                    stop.how
                ),
                false => format!(
                    "stopped `make` on the host (its timeout passed): {}",
                    stop.how
                ),
            };
            assert!(lines[0].1.ends_with(&want), "{done:?}: {}", lines[0].1);
        }
    }

    #[test]
    fn a_reattach_says_when_the_loss_happened_and_when_it_was_noticed() {
        let s = Duration::from_secs_f64;
        // Killed: noticed at once after the last byte.
        assert_eq!(
            reattached_words("make", Some(s(3.0)), s(3.3), s(1.1)),
            "connection lost 3.0 s into `make`; re-attached after 1.1 s"
        );
        // A silent network: noticed by the kernel's timeout.
        assert_eq!(
            reattached_words("make", Some(s(1.2)), s(6.5), s(4.0)),
            "connection lost 1.2 s into `make`; noticed 5.3 s later, re-attached after 4.0 s"
        );
        // Nothing came from the command: only the notice is known.
        assert_eq!(
            reattached_words("make", None, s(2.0), s(0.5)),
            "connection loss noticed 2.0 s into `make`; re-attached after 500.0 ms"
        );
    }

    #[test]
    fn control_characters_are_shown_and_colours_kept() {
        assert_eq!(visible("plain\ttext"), "plain\ttext");
        assert_eq!(visible("\x1b[31mred\x1b[0m"), "\x1b[31mred\x1b[0m");
        assert_eq!(visible("A1\x1b^x"), "A1\\x1b^x");
        assert_eq!(visible("B1\x1b]0;t"), "B1\\x1b]0;t");
        assert_eq!(visible("C1\x06\x1fc"), "C1\\x06\\x1fc");
        // An unfinished CSI, a BEL, a NUL, DEL, a C1 control.
        assert_eq!(visible("x\x1b[31"), "x\\x1b[31");
        assert_eq!(visible("a\x07b\x00c\x7fd"), "a\\x07b\\x00c\\x7fd");
        assert_eq!(visible("e\u{9b}f"), "e\\xc2\\x9bf");
        // Sequences that move the cursor or erase are shown, not acted on (fresh-eyes finding:
        // a host's `ESC[1A ESC[2K` overwrote another host's line on the screen).
        assert_eq!(visible("\x1b[1A\x1b[2Kfake"), "\\x1b[1A\\x1b[2Kfake");
        assert_eq!(visible("a\x1b[1Gb\x1b[K"), "a\\x1b[1Gb\\x1b[K");
        assert_eq!(visible("\x1b[?25l"), "\\x1b[?25l");
        assert_eq!(
            visible("\x1b[38;5;196mred\x1b[m"),
            "\x1b[38;5;196mred\x1b[m"
        );
        assert_eq!(visible("\x1b[38:2:1:2:3mx"), "\x1b[38:2:1:2:3mx");
    }
}
