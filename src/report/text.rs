//! The text view of a run's events: host-prefixed lines (`|` stdout, `!` stderr, `~`
//! tether's own), task headers, tether's notes and the dry run's plan (the summaries at its
//! end are `summary.rs`).

use std::time::Duration;

use anstyle::{AnsiColor, Style};

use super::fold::{Group, Lane};
use super::paint::{bold, fg, paint};
use super::state::{Look, State};
use super::summary::{sessions_text, summary_text};
use super::visible::{command_text, visible};
use crate::duration::format as format_duration;
use crate::event::{Beat, Event, EventKind, LimitFrom, LOST_AT_THE_END};
use crate::outcome::named;

const HOST_COLORS: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Blue,
    AnsiColor::Green,
    AnsiColor::Yellow,
    AnsiColor::BrightCyan,
];

/// A task's heading: `▶ deploy:check`.
pub fn heading(task: &str) -> String {
    bold(&format!("▶ {task}"))
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

#[cfg(test)]
mod tests {

    use super::{host_lines, reattached_words};
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

    /// Names are padded to the widest as shown: a name that a set would read otherwise is
    /// shown quoted (`"web[1]"`), and its quotes count (tester t127: `"web[1]" |` beside
    /// `web1   |`, the marks out of line).
    #[test]
    fn names_are_padded_to_the_widest_as_shown() {
        use crate::event::{Event, EventKind, HostEntry, Stream};
        use crate::report::state::record;
        let mut st = super::State::default();
        let names = ["web1", "web[1]", "db[2-3]x"];
        let hosts = names
            .iter()
            .map(|name| HostEntry {
                name: name.to_string(),
                roles: Vec::new(),
            })
            .collect();
        record(&mut st, &Event::now("".into(), EventKind::Hosts { hosts }));
        let marks: Vec<usize> = names
            .iter()
            .map(|name| {
                let output = EventKind::Output {
                    stream: Stream::Stdout,
                    line: "same".into(),
                    redrawn: false,
                    pending: false,
                    cut: false,
                };
                let lines =
                    super::text_lines(&st, plain_look(), &Event::now((*name).into(), output));
                // Without its colours, as anstream writes it to a pipe.
                let mut line = String::new();
                let mut rest = lines[0].as_str();
                while let Some(at) = rest.find('\x1b') {
                    line.push_str(&rest[..at]);
                    rest = &rest[at + rest[at..].find('m').unwrap() + 1..];
                }
                line.push_str(rest);
                assert!(line.ends_with(" | same"), "{line:?}");
                line.chars().count()
            })
            .collect();
        assert!(marks.iter().all(|m| *m == marks[0]), "{marks:?}");
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
            listing: false,
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
}
