//! What one host's command came to, in words and as a failure value: the text of a failed
//! command (host, command, status, the tail of stderr), the one-word status of a summary, and
//! the [`Failure`] of a step built from its hosts' results.

use crate::dispatch::Skipped;
use crate::event::Tally;
use crate::failure::{Failure, HostFailure, Kind, NotRun};
use crate::host_text::HostText;
use crate::pool::HostResult;
use crate::ssh::exec::{ExecOutput, ExitStatus};
use crate::ssh::{SshError, StopReach};
use crate::stderr_tail::push_tail;
use crate::stop::StopReason;

/// One failed command: `host: \`cmd\` failed with exit status 3 after 1.2 s` and the last lines
/// of its stderr; the error itself when it did not run to an end. Where tether named the host
/// and how long the command ran are marked (see [`HostText`]); the command and the stderr are
/// words as they are.
pub fn failure_text(host: &str, command: &str, result: &Result<ExecOutput, SshError>) -> HostText {
    match result {
        Err(e) => e.said(),
        Ok(out) => {
            // A status said in a sentence of its own (no exit status received, ...) comes
            // after the time, so the time is not read as part of it (stop 42 tester t45: "it
            // most likely did not run after 5.7 ms").
            let mut text = match out.status {
                ExitStatus::Code(_) | ExitStatus::Signal(_) => HostText::new()
                    .host(host)
                    .text(&format!(
                        ": `{}` failed with {} after ",
                        crate::chars::command_named(command),
                        out.status
                    ))
                    .took(out.duration),
                _ => HostText::new()
                    .host(host)
                    .text(&format!(
                        ": `{}` failed after ",
                        crate::chars::command_named(command)
                    ))
                    .took(out.duration)
                    .text(&format!(" with {}", out.status)),
            };
            push_tail(&mut text, &out.stderr, out.stderr_cut);
            text
        }
    }
}

/// Why a host did not run, in words.
pub fn skipped_words(s: Skipped) -> &'static str {
    match s {
        Skipped::Cancelled => "not started: interrupted",
        Skipped::EarlierFailure => "not started: an earlier host or group of this step failed",
        Skipped::Lost => "no answer: the host's worker stopped",
    }
}

/// The one-word status of a host in a summary (`ok`, `exit 3` ...) and how it counts.
pub fn status_words(r: &HostResult) -> (String, Tally) {
    let failed = |words: &str| (words.to_string(), Tally::Failed);
    match &r.result {
        None => ("not run".into(), Tally::NotRun),
        Some(Ok(out)) => match &out.status {
            ExitStatus::Code(0) => ("ok".into(), Tally::Ok),
            ExitStatus::Code(c) => failed(&format!("exit {c}")),
            ExitStatus::Signal(s) => failed(&format!("signal {s}")),
            ExitStatus::ShellEnded(_) => failed("not run"),
            ExitStatus::Missing
            | ExitStatus::HungUp
            | ExitStatus::MissingBeforeStart
            | ExitStatus::Unchecked
            | ExitStatus::Unfollowed
            | ExitStatus::Unrecorded
            | ExitStatus::OutputLost
            | ExitStatus::SpoolRemoved => failed("no exit status"),
        },
        Some(Err(e)) => match e {
            SshError::CommandStopped {
                reach: StopReach::NotStopped,
                ..
            } => ("left running".into(), Tally::LeftRunning),
            SshError::CommandStopped { .. } | SshError::ConnectStopped { .. } => {
                ("stopped".into(), Tally::Stopped)
            }
            _ if e.kind() == Kind::Unreachable => failed("unreachable"),
            SshError::CommandTimeout {
                reach: StopReach::NotStopped,
                ..
            } => failed("timed out, stop failed"),
            SshError::CommandTimeout { .. } => failed("timed out"),
            SshError::NotRun { .. } => failed("not run"),
            SshError::ConnectionLost { .. } | SshError::TransferCut { .. } => {
                failed("connection lost")
            }
            SshError::Config(_) | SshError::Route { .. } => failed("config error"),
            _ => failed("unreachable"),
        },
    }
}

/// The failure of one host's command, or `None` if it succeeded or did not run.
pub fn host_failure(r: &HostResult) -> Option<HostFailure> {
    let result = r.result.as_ref()?;
    let kind = match result {
        Ok(out) if out.status.success() => return None,
        Ok(_) => Kind::CommandFailed,
        Err(e) => e.kind(),
    };
    Some(HostFailure {
        host: r.host.clone(),
        kind,
        message: failure_text(&r.host, &r.command, result),
    })
}

/// How a host of an aborted step (see `crate::step_abort`) was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedHow {
    /// Before its command started.
    Before,
    /// While its command ran: its process group was stopped on the host.
    During,
    /// While its command ran on a pseudo-terminal whose process group could not be signalled:
    /// its terminal was hung up (SIGHUP), which a command that ignores SIGHUP outlives (see
    /// [`StopReach::HungUp`]).
    HungUp,
    /// While its command ran, which stopping on the host failed to reach: it may still run.
    NotStopped,
    /// While a nested `on` of its closure ran on other hosts, which were stopped there (each
    /// as one of these says).
    Within,
}

impl StoppedHow {
    /// Stopped while its command ran, with what that did on the host.
    pub fn during(reach: StopReach) -> StoppedHow {
        match reach {
            StopReach::Stopped => StoppedHow::During,
            StopReach::HungUp => StoppedHow::HungUp,
            StopReach::NotStopped => StoppedHow::NotStopped,
        }
    }
}

/// Why a host of an aborted step is reported as stopped early: `stopped during `cmd` (tether
/// stopped it on the host): web1 failed`, or `(tether hung up its terminal)` on a PTY.
pub fn stopped_early_words(how: StoppedHow, command: &str, because: &str) -> String {
    let command = named(command);
    match how {
        StoppedHow::Before => format!("stopped before `{command}`: {because} failed"),
        StoppedHow::During => {
            format!("stopped during `{command}` (tether stopped it on the host): {because} failed")
        }
        StoppedHow::HungUp => {
            format!("stopped during `{command}` (tether hung up its terminal): {because} failed")
        }
        StoppedHow::NotStopped => format!(
            "stopped waiting for `{command}` (tether could not stop it on the host: it may \
             still be running): {because} failed"
        ),
        // What became of each of its hosts follows (stop 47 tester t65: "which tether stopped
        // where it ran" for a nested `on` whose command had ended, its next host refused).
        StoppedHow::Within => format!("stopped during `{command}`: {because} failed"),
    }
}

/// How long a stopped host's line names its command at most, in characters.
const NAMED: usize = 120;

/// `command` as a stopped host's line names it, and tether's own lines about a command (lost,
/// re-attached, stopped): whole when short and one line; else its first [`NAMED`] characters
/// (of its first line) and `…`. A stdlib step's script runs to a kilobyte, on every host the
/// step stopped; the host that failed names it in full (stop 42 tester t44: a re-attach line
/// of 40,198 characters for a staged command).
pub fn named(command: &str) -> std::borrow::Cow<'_, str> {
    let line = command.lines().next().unwrap_or("");
    if line.len() == command.len() && command.chars().count() <= NAMED {
        return command.into();
    }
    let cut: String = line.chars().take(NAMED).collect();
    format!("{cut}…").into()
}

/// Whether `r`'s command was stopped because another host of its step failed (see
/// `crate::step_abort`): stopped early, not failed.
fn step_aborted(r: &HostResult) -> bool {
    step_abort_stop(r).is_some()
}

/// How long `r`'s host had been connecting when tether itself stopped that (an interrupt): not
/// a failure of the host's own, but a host the interrupt kept from its command (stop 37 tester
/// t25: `interrupted; 1 of 2 hosts failed`).
fn connect_stopped(r: &HostResult) -> Option<std::time::Duration> {
    match &r.result {
        Some(Err(SshError::ConnectStopped { after, .. })) => Some(*after),
        _ => None,
    }
}

/// How `r`'s command was stopped, and the host(s) whose failure did it, when it was because
/// another host of its step (or of the step enclosing it) failed.
fn step_abort_stop(r: &HostResult) -> Option<(StoppedHow, &str)> {
    match &r.result {
        Some(Err(SshError::CommandStopped {
            why: StopReason::StepAborted { because },
            elapsed,
            reach,
            ..
        })) => Some((
            match elapsed {
                Some(_) => StoppedHow::during(*reach),
                None => StoppedHow::Before,
            },
            because.as_str(),
        )),
        _ => None,
    }
}

/// The failure of a step from its hosts' results: every failed host, every host that did not
/// run or was stopped (with why and how) when something failed; `None` when every host
/// succeeded.
pub fn step_failure(results: &[HostResult]) -> Option<Failure> {
    let failed: Vec<HostFailure> = results
        .iter()
        .filter(|r| !step_aborted(r) && connect_stopped(r).is_none())
        .filter_map(host_failure)
        .collect();
    // Named in the order of the results, whichever failed first: the same on every run. With
    // none, the step is a nested `on` that its enclosing step's abort stopped: what that says.
    let because = match failed.is_empty() {
        false => failed
            .iter()
            .map(|f| f.host.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        true => results
            .iter()
            .find_map(|r| step_abort_stop(r).map(|(_, because)| because.to_string()))
            .unwrap_or_default(),
    };
    let not_run: Vec<NotRun> = results
        .iter()
        .filter_map(|r| {
            let reason = match (&r.result, step_abort_stop(r), connect_stopped(r)) {
                // None of this step failed: the enclosing step's abort stopped it (stop 47
                // tester t65: "an earlier host or group of this step failed").
                (None, _, _)
                    if failed.is_empty()
                        && !because.is_empty()
                        && r.skipped == Some(Skipped::EarlierFailure) =>
                {
                    format!("not started: {because} failed")
                }
                (None, _, _) => skipped_words(r.skipped.unwrap_or(Skipped::Cancelled)).to_string(),
                (Some(_), Some((how, _)), _) => stopped_early_words(how, &r.command, &because),
                (Some(_), None, Some(after)) => format!(
                    "connecting was stopped by tether after {} (tether was interrupted); no \
                     command was sent to it",
                    crate::duration::format(after)
                ),
                (Some(_), None, None) => return None,
            };
            Some(NotRun {
                host: r.host.clone(),
                reason,
                // Only a command stopped while it ran had started.
                started: r.result.is_some()
                    && !matches!(
                        r.result,
                        Some(Err(SshError::CommandStopped { elapsed: None, .. }))
                    ),
            })
        })
        .collect();
    if failed.is_empty() && not_run.is_empty() {
        return None;
    }
    let cancelled = failed.is_empty()
        && !results.iter().any(step_aborted)
        && results
            .iter()
            .all(|r| r.result.is_some() || r.skipped == Some(Skipped::Cancelled));
    if cancelled {
        return Some(Failure::interrupted());
    }
    Some(Failure::hosts(failed, not_run, results.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status said in a sentence of its own comes after the time (stop 42 tester t45: "it
    /// most likely did not run after 5.7 ms"); an exit status or a signal before it.
    #[test]
    fn a_failure_says_the_time_where_it_reads_as_the_commands() {
        let failed = |status: ExitStatus| {
            let out = ExecOutput {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
                stderr_cut: 0,
                duration: std::time::Duration::from_millis(5),
                started: std::time::Instant::now(),
            };
            failure_text("web1", "make", &Ok(out)).to_string()
        };
        assert_eq!(
            failed(ExitStatus::Code(3)),
            "web1: `make` failed with exit status 3 after 5.0 ms"
        );
        assert_eq!(
            failed(ExitStatus::Signal("TERM".into())),
            "web1: `make` failed with signal TERM after 5.0 ms"
        );
        let missing = failed(ExitStatus::MissingBeforeStart);
        assert!(
            missing.starts_with("web1: `make` failed after 5.0 ms with no exit status received")
                && missing.ends_with("it most likely did not run"),
            "{missing}"
        );
    }

    #[test]
    fn a_stopped_hosts_line_names_a_long_command_by_its_start() {
        assert_eq!(
            stopped_early_words(StoppedHow::Before, "make", "web1"),
            "stopped before `make`: web1 failed"
        );
        let long = "é".repeat(200);
        assert_eq!(
            stopped_early_words(StoppedHow::During, &long, "web1"),
            format!(
                "stopped during `{}…` (tether stopped it on the host): web1 failed",
                "é".repeat(120)
            )
        );
        assert_eq!(
            stopped_early_words(StoppedHow::Before, "a\nb", "web1"),
            "stopped before `a…`: web1 failed"
        );
    }

    /// A host whose command no stop reached is not said stopped on the host (stop 39 tester
    /// t32: "(tether stopped it on the host)" while it ran on).
    #[test]
    fn a_host_whose_stop_failed_is_said_left_running() {
        assert_eq!(
            stopped_early_words(StoppedHow::during(StopReach::NotStopped), "make", "web1"),
            "stopped waiting for `make` (tether could not stop it on the host: it may still be \
             running): web1 failed"
        );
        let result = |reach| HostResult {
            host: "web2".into(),
            command: "make".into(),
            result: Some(Err(SshError::CommandStopped {
                host: "web2".into(),
                command: "make".into(),
                elapsed: Some(std::time::Duration::from_secs(1)),
                why: StopReason::Interrupted,
                reach,
            })),
            skipped: None,
        };
        assert_eq!(
            status_words(&result(StopReach::NotStopped)),
            ("left running".to_string(), Tally::LeftRunning)
        );
        assert_eq!(
            status_words(&result(StopReach::Stopped)),
            ("stopped".to_string(), Tally::Stopped)
        );
        // A timeout is a failure either way; the row says whether it may still run.
        let timed_out = |reach| HostResult {
            result: Some(Err(SshError::CommandTimeout {
                host: "web2".into(),
                command: "make".into(),
                timeout: std::time::Duration::from_secs(5),
                reach,
                stderr: Vec::new(),
                stderr_cut: 0,
            })),
            ..result(StopReach::Stopped)
        };
        assert_eq!(
            status_words(&timed_out(StopReach::NotStopped)),
            ("timed out, stop failed".to_string(), Tally::Failed)
        );
        assert_eq!(
            status_words(&timed_out(StopReach::HungUp)),
            ("timed out".to_string(), Tally::Failed)
        );
    }
}
