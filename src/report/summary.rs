//! The summaries at a run's end: each host's result, and what each host's session came to,
//! with its heartbeats, reconnects and re-attaches.

use std::time::Duration;

use anstyle::AnsiColor;

use super::paint::{bold, fg, paint};
use super::state::{HostStats, Look, State};
use super::visible::visible_lines;
use crate::duration::format as format_duration;
use crate::event::{HostOutcome, Tally};
use crate::host_text::HostText;

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The lines of a run's summary: the counts of each tally, one row per result (folded: per
/// distinct result, with its hosts' set), then each failure's text.
pub fn summary_text(
    st: &State,
    look: Look,
    hosts: &[HostOutcome],
    elapsed: Duration,
) -> Vec<String> {
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

/// The lines at a run's end: what each host's session came to (folded: hosts whose sessions
/// went the same way share a row).
pub fn sessions_text(st: &State, look: Look, title: &str, elapsed: Duration) -> Vec<String> {
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
    use std::time::Duration;

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
            listing: false,
        };
        let text = super::sessions_text(&st, look, "deploy", Duration::from_secs(1)).join("\n");
        assert!(text.contains("  bastion (jump)  2 sessions, "), "{text}");
    }
}
