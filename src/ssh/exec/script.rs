//! tether's own scripts on a host, each run on a channel of its own, its output collected:
//! the supervisor's claim, stop and clean (see `supervisor.rs`), the stop of a PTY command's
//! process group (see `pty_stop.rs`), the removal of a staged command.

use std::time::{Duration, Instant};

use super::channel::{run_wrapped, StopTarget};
use super::frames::Key;
use super::incoming;
use super::options::{open_timeout, ExecOptions, StopPatience, OPEN_TIMEOUT};
use super::outcome::{ExecError, ExecOutput, ExitStatus, PtyGroup, StopFailed};
use super::preamble::Preamble;
use super::pty_stop;
use super::wrap::{start_markers, wrap_script};
use crate::ssh::connection::Connection;
use crate::ssh::supervisor::{StopDone, STOP_GRACE};

/// Stops `target` on `conn` within `patience` (the [`Stop`](super::channel::Stop) of every
/// command run here): a supervised command by its id; one whose claim wins though its exec's sh
/// said where it runs had its files removed under it (a /tmp cleaner, its own `rm`): it runs
/// all the same, and its group is stopped where the host said it is (stop 39 tester t29: "it
/// had not started on the host, and never will", the command still running).
pub(super) fn stop(
    conn: &Connection,
    target: StopTarget<'_>,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    match target {
        StopTarget::Supervised { id, pgid } => match stop_supervised(conn, id, patience) {
            Ok(StopDone::Never) => match pgid {
                Some(pgid) => stop_supervised_group(conn, pgid, id, patience),
                None => Ok(StopDone::Never),
            },
            other => other,
        },
        StopTarget::Pty(group) => stop_pty_group(conn, group, patience),
    }
}

/// Runs one of the supervisor's own scripts (`supervisor::claim`, `stop`, `clean`) with `args`
/// on a new channel of `conn`, given up after `timeout`, its channel's opening after
/// `open_within` (and [`open_timeout`]); its output is collected, none shown.
pub(super) fn run_script(
    conn: &Connection,
    script: &str,
    args: &[&str],
    timeout: Duration,
    open_within: Duration,
) -> Result<ExecOutput, ExecError> {
    let key = Key::new();
    let opts = ExecOptions {
        timeout: Some(timeout),
        open_within: Some(timeout.min(open_within).min(open_timeout())),
        ..ExecOptions::default()
    };
    run_wrapped(
        conn,
        &wrap_script(script, &key, args),
        &key,
        &opts,
        &mut |_, _, _| {},
        &mut Preamble::default(),
        None,
        stop,
    )
}

/// What claiming a command lost before its start marker found (see `supervisor::claim`).
pub(super) enum Claim {
    /// tether claimed it: it never ran and never will.
    Won,
    /// Its exec's sh claimed it first: it runs (or ran) under the supervisor.
    Taken,
    /// The supervisor cannot run on the host (why, as [`incoming::direct_words`] says it,
    /// where the claim said): nothing can be known.
    Unusable(Option<String>),
    /// The claim's own channel closed before it said anything (see
    /// [`ExitStatus::Unchecked`]): nothing can be known.
    Unanswered,
}

/// Claims the supervised command `id` on `conn` (see [`Claim`]), removing the file its
/// command was `staged` in (see [`run_reporting`](super::run_reporting)) when the claim wins, as nothing will run it
/// then; a lost connection is [`ExecError::Lost`].
pub(super) fn claim(conn: &Connection, id: &str, staged: Option<&str>) -> Result<Claim, ExecError> {
    let out = run_script(
        conn,
        &crate::ssh::supervisor::claim(&start_markers()),
        &[id, staged.unwrap_or("")],
        OPEN_TIMEOUT,
        OPEN_TIMEOUT,
    )?;
    let said = String::from_utf8_lossy(&out.stdout);
    match (said.trim(), out.status.success()) {
        ("won", true) => Ok(Claim::Won),
        ("taken", true) => Ok(Claim::Taken),
        _ if matches!(
            out.status,
            ExitStatus::MissingBeforeStart | ExitStatus::Missing
        ) =>
        {
            Ok(Claim::Unanswered)
        }
        // Anything else (a claim that failed on its own) tells nothing of how it ran.
        (said, _) => Ok(Claim::Unusable(
            said.strip_prefix("unusable ").map(incoming::direct_words),
        )),
    }
}

/// Removes the directories of the supervised commands `ids` on `conn` (their results were
/// read); best effort: its channel must open within [`CLEAN_OPEN`], and it then gets what
/// [`open_timeout`] gives a channel's opening, as its login shell may take seconds (tester
/// t111: with 4 s logins, 3 s in all said a session that was only slow gave no answer, and
/// left the files). Err: the session gave no answer, or died (not a script that failed, nor
/// one still running at its end, once its channel opened: the session is fine then; what it
/// did not remove goes with the day's sweep).
pub fn clean_supervised(conn: &Connection, ids: &[String]) -> Result<(), ExecError> {
    let day = crate::ssh::supervisor::sweep_day();
    let args: Vec<&str> = std::iter::once(day.as_str())
        .chain(ids.iter().map(String::as_str))
        .collect();
    let total = open_timeout().max(CLEAN_OPEN);
    match run_script(
        conn,
        &crate::ssh::supervisor::clean(),
        &args,
        total,
        CLEAN_OPEN,
    ) {
        // Past the opening: its channel opened.
        Err(ExecError::Deadline(..)) if total > CLEAN_OPEN => Ok(()),
        Err(e @ (ExecError::NotStarted(_) | ExecError::Lost(_) | ExecError::Deadline(..))) => {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// How long [`clean_supervised`] waits for its channel to open: a session that opens none in
/// that time is taken for lost at a run's end (stop 46 tester t61: a hung idle host held the
/// run's end 17 s unsaid).
const CLEAN_OPEN: Duration = Duration::from_secs(3);

/// Stops the supervised command `id` on `conn`: SIGTERM to its process group, SIGKILL after
/// [`crate::ssh::supervisor::STOP_GRACE`], its directory removed; within `patience`
/// ([`StopPatience::usual`] where nothing says the session is hung). Says what that did; Err
/// says why stopping it failed (the command may still run).
pub fn stop_supervised(
    conn: &Connection,
    id: &str,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    stop_by_id(conn, id, patience, &[])
}

/// [`stop_supervised`], keeping the command's files: what it printed while it stopped (a
/// clean-up on SIGTERM) is there for [`resume`](super::resume()) to read, once; they go as a
/// read command's do.
pub fn stop_supervised_keeping_files(
    conn: &Connection,
    id: &str,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    stop_by_id(conn, id, patience, &["keep"])
}

/// `supervisor::stop` of the command `id`, with `more` arguments after the grace period.
fn stop_by_id(
    conn: &Connection,
    id: &str,
    patience: StopPatience,
    more: &[&str],
) -> Result<StopDone, StopFailed> {
    run_stop(
        conn,
        &crate::ssh::supervisor::stop(&start_markers()),
        id,
        more,
        patience,
    )
}

/// Stops the PTY command whose exec's sh leads process group `group` on `conn` (see
/// `pty_stop.rs`): SIGTERM, SIGKILL after [`crate::ssh::supervisor::STOP_GRACE`], unless the
/// group's leader runs and is not that exec's sh (its command line lacks the frame key: a
/// group that took the number after the command ended is another's, `gone`; the test
/// machine's `pid_max` of 32768 wrapped in about 4 minutes under the tests' load, 3,820 new
/// pids in 30 s); `patience` as for
/// [`stop_supervised`]. Says what that did; Err says why stopping it failed (the command may
/// still run).
pub fn stop_pty_group(
    conn: &Connection,
    group: &PtyGroup,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    run_stop(
        conn,
        &pty_stop::script(&start_markers()),
        &group.pgid,
        &[&group.key],
        patience,
    )
}

/// Stops process group `pgid`, where the supervised command `id` ran and where its files
/// are gone (see `supervisor::stop`, which needs them), as a PTY command's group is stopped,
/// unless the group's leader runs and is not its exec's sh (see `pty_stop::script`);
/// `patience` as for [`stop_supervised`]. Says what that did; Err says why stopping it failed
/// (the command may still run).
pub fn stop_supervised_group(
    conn: &Connection,
    pgid: &str,
    id: &str,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    run_stop(
        conn,
        &pty_stop::script(&start_markers()),
        pgid,
        &[id],
        patience,
    )
}

/// Runs the stop `script` (`supervisor::stop`, `pty_stop::script`) for `what`, with the grace
/// period and `more` as its further arguments, within `patience`: what it found and did. A
/// stop whose channel the server closed (sshd's `ChannelTimeout`: at 1 s it closes a channel
/// whatever it carries, within a second) is run again on a new one, within `patience`: the
/// supervisor's stop run again takes the result the first one recorded, or waits for it (see
/// `supervisor::stop`); a PTY group's stop run again after one closed as it ran finds the
/// group gone once it ended at the first one's SIGTERM (tester t117: a stop that stopped the
/// command was said to have failed, "the server closed the stop's channel", the command maybe
/// running).
fn run_stop(
    conn: &Connection,
    script: &str,
    what: &str,
    more: &[&str],
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    let grace = STOP_GRACE;
    let seconds = grace.as_secs().to_string();
    let mut args = vec![what, &seconds];
    args.extend(more);
    let until = Instant::now() + patience.total;
    // An earlier run of it was closed by the server after it started (and signalled).
    let mut signalled = false;
    let mut tries = 0;
    loop {
        tries += 1;
        let left = until.saturating_duration_since(Instant::now());
        let out = match run_script(conn, script, &args, left, patience.open.min(left)) {
            Ok(out) => out,
            Err(ExecError::Lost(e)) => {
                return Err(StopFailed {
                    cut: true,
                    ..StopFailed::from(format!("the connection was lost while stopping it ({e})"))
                })
            }
            Err(e) => {
                return Err(StopFailed {
                    refused: matches!(e, ExecError::Refused(_)),
                    unanswered: matches!(e, ExecError::NotStarted(_)),
                    ..StopFailed::from(format!("stopping it failed ({e})"))
                })
            }
        };
        let said = String::from_utf8_lossy(&out.stdout);
        let closed = matches!(
            out.status,
            ExitStatus::Missing | ExitStatus::MissingBeforeStart | ExitStatus::Unchecked
        );
        match said.trim().strip_prefix("unusable ") {
            // The supervisor cannot run there: the command ran directly, if at all (tester
            // t111: said as the host never saying its group, with words to stop it by its
            // files, which it has none of).
            Some(said) if out.status.success() => {
                return Err(StopFailed::direct(incoming::direct_words(said)))
            }
            // What it did arrived, and its channel was closed after (or it ended).
            _ if out.status.success() || closed && StopDone::parse(&out.stdout).is_ok() => {
                return match StopDone::parse(&out.stdout)? {
                    StopDone::Gone if signalled => Ok(StopDone::Term),
                    done => Ok(done),
                }
            }
            _ if closed && tries < STOP_TRIES && Instant::now() < until => {
                signalled |= out.status == ExitStatus::Missing;
            }
            _ => return Err(stop_ended(&out.status).into()),
        }
    }
}

/// How many times a stop whose channel the server closed is run (see [`run_stop`]).
const STOP_TRIES: u32 = 20;

/// Why a stop whose own exec ended with `status` failed, in words about the stop: a status's
/// own words speak of the command it ended (stop 57 tester t90: "the command never said it
/// started ... it most likely did not run", of a stop whose channel the server closed).
fn stop_ended(status: &ExitStatus) -> String {
    match status {
        ExitStatus::MissingBeforeStart | ExitStatus::Unchecked => {
            "stopping it failed: the stop's channel closed before its login shell was done \
             starting (a startup file that exits, or sshd's ChannelTimeout shorter than the \
             login shell's start), and the stop did not run"
                .to_string()
        }
        ExitStatus::ShellEnded(c) => format!(
            "stopping it failed: the login shell ended with exit status {c} before the stop \
             started, and the stop did not run"
        ),
        ExitStatus::Missing => "stopping it failed: the server closed the stop's channel while \
             it ran (sshd's ChannelTimeout?); whether it stopped the command is unknown"
            .to_string(),
        other => format!("stopping it failed ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_that_did_not_run_is_said_of_the_stop_not_of_the_command() {
        for status in [
            ExitStatus::MissingBeforeStart,
            ExitStatus::Unchecked,
            ExitStatus::ShellEnded(1),
        ] {
            let said = stop_ended(&status);
            assert!(said.contains("the stop did not run"), "{said}");
            assert!(!said.contains("command"), "{said}");
        }
        assert_eq!(
            stop_ended(&ExitStatus::Code(2)),
            "stopping it failed (exit status 2)"
        );
    }
}
