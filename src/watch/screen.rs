//! What watch mode prints, as records through the reporter: the runs, what cancelled them,
//! their results, the hosts kept warm between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::files::Watched;
use crate::duration::format as format_duration;
use crate::error::Error;
use crate::event::{EventKind, Record};
use crate::failure::Kind;
use crate::fleet::Fleet;
use crate::host_text::HostText;
use crate::report::{counts_said, HostStats, Reporter};

/// What watch mode prints, as records through the reporter: plain lines, or JSON objects
/// (`watch_run_started`, `watch_cancel`, `watch_run_finished`, `watch_waiting`, `watch_exit`,
/// `watch_warning`) with `--format json`.
pub struct Screen {
    pub json: bool,
    pub verbose: bool,
    /// Hosts that failed alike are said once, with their set (`--no-fold` turns it off), as
    /// `tether TASK` says them (stop 42 tester t47: watch said each host's).
    pub fold: bool,
    pub reporter: Reporter,
}

impl Screen {
    /// Reports a record after every host line reported so far.
    fn record(&self, json: serde_json::Value, text: Vec<String>) {
        self.reporter
            .sink()
            .emit(&Arc::from(""), EventKind::Record(Record::new(json, text)));
        self.reporter.barrier();
    }

    pub fn say(&self, text: &str) {
        self.record(
            serde_json::json!({ "type": "watch_note", "message": text }),
            vec![text.to_string()],
        );
    }

    pub fn warn(&self, text: &str) {
        if self.json {
            self.record(
                serde_json::json!({ "type": "watch_warning", "message": text }),
                Vec::new(),
            );
        } else {
            crate::errln!("warning: {text}");
        }
    }

    pub fn run_started(&self, number: u64, reason: &str) {
        self.record(
            serde_json::json!({ "type": "watch_run_started", "run": number, "reason": reason }),
            vec![format!("watch: run {number} ({reason})")],
        );
    }

    pub fn cancelling(&self, number: u64, reason: &str, kill: bool) {
        let how = if kill {
            // PTY commands hung up, supervised ones by their process group (see
            // `ssh::supervisor`); a host without the supervisor is waited for, and said so.
            "stopping running commands"
        } else {
            "waiting for running commands"
        };
        self.record(
            serde_json::json!({
                "type": "watch_cancel",
                "run": number,
                "reason": reason,
                "kill": kill,
            }),
            vec![format!(
                "watch: {reason} during run {number}: cancelling it ({how})"
            )],
        );
    }

    /// Run `number` ended with `result` after `elapsed`.
    pub fn run_finished(&self, number: u64, result: &Result<(), Error>, elapsed: Duration) {
        let (word, error) = match result {
            Ok(()) => ("ok", None),
            Err(e) if e.is_interrupted() => ("cancelled", None),
            // A script error in an `on` closure is a step's failure of kind `recipe`: a
            // recipe error all the same (exit 4), as one found before anything ran.
            Err(e @ Error::Recipe(_)) => ("recipe error", Some(e)),
            Err(e @ Error::Failed(f)) if f.kind == Kind::Recipe => ("recipe error", Some(e)),
            // A configuration error found as a host connects (a ProxyJump loop): exit 2, an
            // error as one found before anything ran (stop 43 tester t52: `failed`).
            Err(e @ Error::Failed(f)) if f.kind == Kind::Config => ("error", Some(e)),
            Err(e @ Error::Failed(_)) => ("failed", Some(e)),
            Err(e) => ("error", Some(e)),
        };
        let took = format_duration(elapsed);
        self.reporter.barrier();
        if let Some(e) = error {
            crate::errln!(
                "error: {}",
                crate::report::visible_lines(&crate::secret::mask(&e.text(self.fold)))
            );
        }
        let line = match word {
            "ok" => format!("watch: run {} ok in {took}", number),
            "cancelled" => format!("watch: run {} cancelled after {took}", number),
            "recipe error" => format!(
                "watch: run {} stopped: recipe error (above); fix it and save",
                number
            ),
            other => format!("watch: run {} {other} after {took}", number),
        };
        let code = result.as_ref().err().map_or(0, Error::exit_code);
        self.record(
            serde_json::json!({
                "type": "watch_run_finished",
                "run": number,
                "result": word,
                "exit_code": code,
                "error": error.map(|e| crate::secret::mask(&e.to_string()).into_owned()),
                "duration_ms": (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            }),
            vec![line],
        );
    }

    pub fn waiting(&self, fleet: Option<&Fleet>, watched: &Watched) {
        let now = Instant::now();
        let mut hosts: Vec<(String, Option<Duration>, u64, u64)> = Vec::new();
        if let Some(f) = fleet {
            self.reporter.barrier();
            let stats = self.reporter.stats();
            for h in f.pool.hosts() {
                let s = stats.get(&h).cloned().unwrap_or_default();
                let warm = s.connected_at.map(|t| now.saturating_duration_since(t));
                hosts.push((h, warm, s.reconnects, s.reattaches));
            }
        }
        let rows: Vec<(&str, HostText)> = hosts
            .iter()
            .map(|(h, warm, reconnects, reattaches)| {
                let row = HostText::new().host(h).text("  ");
                let row = match warm {
                    Some(w) => row.text("session warm for ").took(*w),
                    None => row.text("not connected"),
                };
                // Re-attaches only where there were any, as the run's summary counts them.
                let reattached = match reattaches {
                    0 => String::new(),
                    1 => ", 1 re-attach".to_string(),
                    n => format!(", {n} re-attaches"),
                };
                let row = row.text(&format!(
                    ", {reconnects} reconnect{}{reattached}",
                    if *reconnects == 1 { "" } else { "s" }
                ));
                (h.as_str(), row)
            })
            .collect();
        let mut text = self.host_rows(&rows);
        text.push(format!(
            "watch: waiting for changes to {} (Ctrl-C to exit)",
            watched.names().join(", ")
        ));
        let hosts_json: Vec<serde_json::Value> = hosts
            .iter()
            .map(|(h, warm, reconnects, reattaches)| {
                serde_json::json!({
                    "host": h,
                    "warm_ms": warm.map(|w| w.as_millis() as u64),
                    "reconnects": reconnects,
                    "reattaches": reattaches,
                })
            })
            .collect();
        self.record(
            serde_json::json!({
                "type": "watch_waiting",
                "files": watched.names(),
                "hosts": hosts_json,
            }),
            text,
        );
    }

    /// One line per host of `rows` (each beginning with its host's name), indented; hosts
    /// whose lines are alike but for their durations share one, headed by their set, the
    /// durations a range (`host[1-30]  session warm for 4.1 s–4.3 s, 0 reconnects`), as folded
    /// output writes them, unless `--no-fold` (stop 61 tester t103: 30 alike rows after every
    /// save, sorted as text).
    fn host_rows(&self, rows: &[(&str, HostText)]) -> Vec<String> {
        let lines: Vec<String> = match self.fold {
            true => {
                let refs: Vec<(&str, &HostText)> = rows.iter().map(|(h, t)| (*h, t)).collect();
                crate::host_text::fold(&refs)
            }
            // One per host, their names in a column.
            false => {
                let shown: Vec<String> = rows
                    .iter()
                    .map(|(h, _)| crate::host_text::named(h))
                    .collect();
                let width = shown.iter().map(|s| s.chars().count()).max().unwrap_or(0);
                rows.iter()
                    .zip(&shown)
                    .map(|((_, t), name)| {
                        let line = t.to_string();
                        match line.strip_prefix(name.as_str()) {
                            Some(rest) => format!("{name:width$}{rest}"),
                            None => line,
                        }
                    })
                    .collect()
            }
        };
        lines.into_iter().map(|l| format!("  {l}")).collect()
    }

    /// The last words of a watch: per host of `hosts` (name, its counts over the whole
    /// watch, the idle time between runs included: issue 13 item 6; stop 58 tester t92: a
    /// reconnect after the last run was counted nowhere), then the runs and the sessions
    /// closed.
    pub fn exit(&self, runs: u64, closed: usize, hosts: &[(String, HostStats)]) {
        // As a run's summary says them.
        let rows: Vec<(&str, HostText)> = hosts
            .iter()
            .map(|(h, s)| {
                let row = HostText::new().host(h).text("  ").text(&counts_said(s));
                (h.as_str(), row)
            })
            .collect();
        let mut text = self.host_rows(&rows);
        text.push(format!(
            "watch: stopped after {runs} run{}; {closed} session{} closed",
            if runs == 1 { "" } else { "s" },
            if closed == 1 { "" } else { "s" }
        ));
        let hosts_json: Vec<serde_json::Value> = hosts
            .iter()
            .map(|(h, s)| {
                serde_json::json!({
                    "host": h,
                    "heartbeats": s.heartbeats,
                    "reconnects": s.reconnects,
                    "reattaches": s.reattaches,
                })
            })
            .collect();
        self.record(
            serde_json::json!({
                "type": "watch_exit",
                "runs": runs,
                "sessions_closed": closed,
                "hosts": hosts_json,
            }),
            text,
        );
    }
}
