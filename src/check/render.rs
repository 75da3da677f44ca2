//! What `tether check` says: each host's `check` record, the report of the hosts grouped by
//! what they share, and the closing `check_summary`.

use super::host_report::{categories, HostReport};
use super::rules::{level_word, Level};
use crate::duration::format as format_duration;
use crate::error::Error;
use crate::event::Record;
use crate::host_text::HostText;
use crate::sshd::settings::settings_lines;

/// The `check` record of one host: the settings, the findings, and their text.
pub(super) fn record(r: &HostReport) -> Record {
    let settings = r.settings.as_ref().map(|s| {
        settings_lines(s)
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect::<serde_json::Map<_, _>>()
    });
    let findings: Vec<serde_json::Value> = r
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "level": level_word(f.level),
                "setting": f.setting,
                "message": f.message,
            })
        })
        .collect();
    // The event's own `host` names it.
    let json = serde_json::json!({
        "type": "check",
        "at_risk": r.warned(),
        "heartbeat_ms": r.heartbeat.map(|h| h.as_millis() as u64),
        "source": r.source,
        "settings": settings,
        "findings": findings,
        "notes": r.notes,
        "error": r.error,
    });
    // Text output shows the hosts grouped, in the summary (see [`grouped_text`]).
    Record::new(json, Vec::new())
}

/// What one host's text block says, but its `read with` line (kept apart: the config path
/// differs between hosts that say the same otherwise).
fn block_lines(r: &HostReport) -> Vec<String> {
    let mut text = Vec::new();
    for n in &r.notes {
        text.push(format!("  note: {n}"));
    }
    text.push(format!(
        "  heartbeat: {}",
        r.heartbeat
            .map_or("off (--no-keepalive)".into(), format_duration)
    ));
    if let Some(s) = &r.settings {
        for (k, v) in settings_lines(s) {
            text.push(format!("  {k:<24} {v}"));
        }
    }
    for f in &r.findings {
        let word = match f.level {
            Level::Ok => "ok     ",
            Level::Warning => "WARNING",
        };
        text.push(format!("  {word} {}: {}", f.setting, f.message));
    }
    text
}

/// The text report: hosts whose settings, heartbeat, notes and findings are the same share one
/// block headed by their compact host set (`web[01-15]`), so a finding is printed once, not
/// once per host; the `read with` line is one line when the hosts read the same config, else
/// one per host (`read with (web01) sshd -T ...`). Hosts that failed alike share one `error:`
/// line. Blocks are in the order their first host was selected. Without `fold` (`--no-fold`),
/// a block per host.
fn grouped_text(reports: &[HostReport], fold: bool) -> Vec<String> {
    let mut groups: Vec<(Vec<String>, Vec<&HostReport>)> = Vec::new();
    for r in reports.iter().filter(|r| r.error.is_none()) {
        let lines = block_lines(r);
        match groups.iter_mut().find(|(l, _)| fold && *l == lines) {
            Some((_, members)) => members.push(r),
            None => groups.push((lines, vec![r])),
        }
    }
    // Each block's lines, after its first host's place among the selected (stop 61 tester
    // t102: the hosts that failed came after every other block).
    let place = |host: &str| reports.iter().position(|r| r.host == host);
    let mut blocks: Vec<(Option<usize>, Vec<String>)> = Vec::new();
    for (lines, members) in &groups {
        let mut text = Vec::new();
        let names: Vec<&str> = members.iter().map(|r| r.host.as_str()).collect();
        text.push(String::new());
        text.push(crate::hostset::fold(&names));
        // Hosts that read alike share a line; a host alone keeps its whole source (its pid).
        let mut sources: Vec<(&str, Vec<&HostReport>)> = Vec::new();
        for r in members {
            match sources.iter_mut().find(|(s, _)| *s == r.source_shared) {
                Some((_, alike)) => alike.push(r),
                None => sources.push((&r.source_shared, vec![r])),
            }
        }
        let said = |alike: &[&HostReport], shared: &str| match alike
            .iter()
            .all(|r| r.source == alike[0].source)
        {
            true => alike[0].source.clone(),
            false => shared.to_string(),
        };
        match sources.as_slice() {
            [(shared, alike)] => text.push(format!("  read with {}", said(alike, shared))),
            _ => {
                for (shared, alike) in &sources {
                    let names: Vec<&str> = alike.iter().map(|r| r.host.as_str()).collect();
                    text.push(format!(
                        "  read with ({}) {}",
                        crate::hostset::fold(&names),
                        said(alike, shared)
                    ));
                }
            }
        }
        text.extend(lines.iter().cloned());
        blocks.push((place(names[0]), text));
    }
    let failed: Vec<(&str, &HostText)> = reports
        .iter()
        .filter_map(|r| Some((r.host.as_str(), r.error.as_ref()?)))
        .collect();
    let failed = match fold {
        true => crate::host_text::group(&failed),
        false => failed
            .iter()
            .map(|&(host, error)| (vec![host.to_string()], error.to_string()))
            .collect(),
    };
    for (hosts, error) in failed {
        let first = hosts.first().and_then(|h| place(h));
        blocks.push((
            first,
            vec![
                String::new(),
                crate::hostset::fold(&hosts),
                format!("  error: {error}"),
            ],
        ));
    }
    // Stable: blocks of the same first place keep their order.
    blocks.sort_by_key(|(first, _)| *first);
    blocks.into_iter().flat_map(|(_, text)| text).collect()
}

/// The closing `check_summary` record: hosts, at risk, unreachable, and how the check ends
/// (`verdict`: the exit code, and the error said on stderr, as a run's `run_finished` has
/// them; stop 46 tester t59: JSON alone did not say either); its text is the whole report,
/// grouped ([`grouped_text`]).
pub(super) fn summary(reports: &[HostReport], fold: bool, verdict: &Result<(), Error>) -> Record {
    let [misconfigured, unreachable, at_risk, unchecked] =
        categories(reports).map(|hosts| hosts.len());
    let config = match misconfigured {
        0 => String::new(),
        1 => ", 1 configuration error".into(),
        n => format!(", {n} configuration errors"),
    };
    let stopped = match unchecked {
        0 => String::new(),
        n => format!(", {n} not checked (interrupted)"),
    };
    Record::new(
        serde_json::json!({
            "type": "check_summary",
            "hosts": reports.len(),
            "at_risk": at_risk,
            "unreachable": unreachable,
            "config_errors": misconfigured,
            "not_checked": unchecked,
            "exit_code": verdict.as_ref().err().map_or(0, Error::exit_code),
            "error": verdict
                .as_ref()
                .err()
                .map(|e| crate::secret::mask(&e.to_string()).into_owned()),
        }),
        grouped_text(reports, fold)
            .into_iter()
            .chain([
                String::new(),
                format!(
                    "check: {} host{}, {at_risk} at risk, {unreachable} unreachable{config}{stopped}",
                    reports.len(),
                    if reports.len() == 1 { "" } else { "s" }
                ),
            ])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(host: &str, config: &str, pid: u32) -> HostReport {
        let source =
            |pid: &str| format!("sshd -T -f {config} (the serving sshd's config{pid}, evaluated)");
        HostReport {
            host: host.into(),
            source: source(&format!(", pid {pid}")),
            source_shared: source(""),
            notes: Vec::new(),
            settings: None,
            findings: Vec::new(),
            unreadable: Vec::new(),
            heartbeat: Some(Duration::from_secs(15)),
            error: None,
            error_kind: None,
        }
    }

    /// Hosts that read the same config share one `read with` line whatever their sshd's pid
    /// (stop 51 tester t76: one line per host on any fleet, each machine's pid its own); a
    /// host alone, or a fleet of one sshd, keeps the pid.
    #[test]
    fn hosts_that_read_alike_share_a_read_with_line() {
        let reports = [
            report("web01", "/etc/ssh/sshd_config", 11),
            report("web02", "/etc/ssh/sshd_config", 12),
            report("web03", "/etc/ssh/sshd_config", 13),
            report("web04", "/srv/sshd_config", 14),
        ];
        assert_eq!(
            grouped_text(&reports, true)
                .iter()
                .filter(|l| l.contains("read with"))
                .collect::<Vec<_>>(),
            [
                "  read with (web[01-03]) sshd -T -f /etc/ssh/sshd_config (the serving sshd's \
                 config, evaluated)",
                "  read with (web04) sshd -T -f /srv/sshd_config (the serving sshd's config, \
                 pid 14, evaluated)"
            ]
        );
        assert_eq!(
            grouped_text(&reports[..2], true)[2],
            "  read with sshd -T -f /etc/ssh/sshd_config (the serving sshd's config, evaluated)"
        );
        let one_sshd = [
            report("a", "/etc/ssh/sshd_config", 7),
            report("b", "/etc/ssh/sshd_config", 7),
        ];
        assert_eq!(
            grouped_text(&one_sshd, true)[2],
            "  read with sshd -T -f /etc/ssh/sshd_config (the serving sshd's config, pid 7, \
             evaluated)"
        );
        assert_eq!(
            grouped_text(&reports[..2], false)
                .iter()
                .filter(|l| l.contains("read with"))
                .count(),
            2
        );
    }

    /// Blocks come in the order of their first host, failed ones among the rest (stop 61
    /// tester t102: `host3`'s block before the errors of host1, host2 and host4).
    #[test]
    fn blocks_come_in_the_order_of_their_first_host() {
        let failed = |host: &str, why: &str| HostReport {
            error: Some(HostText::from(why.to_string())),
            ..report(host, "/etc/ssh/sshd_config", 1)
        };
        let mut odd = report("host5", "/srv/sshd_config", 5);
        odd.notes.push("another".into());
        let reports = [
            failed("host1", "refused"),
            failed("host2", "key changed"),
            report("host3", "/etc/ssh/sshd_config", 3),
            failed("host4", "refused"),
            odd,
        ];
        let heads: Vec<String> = grouped_text(&reports, true)
            .windows(2)
            .filter(|w| w[0].is_empty())
            .map(|w| w[1].clone())
            .collect();
        assert_eq!(heads, ["host[1,4]", "host2", "host3", "host5"]);
    }
}
