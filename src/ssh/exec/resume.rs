//! A supervised command lost with its connection, on a new session: settled (did it start?
//! see `supervisor::claim`) and resumed from the bytes received (see `supervisor::resume`).

use super::channel::run_wrapped;
use super::incoming::LineEnd;
use super::options::ExecOptions;
use super::outcome::{ExecError, ExecOutput};
use super::preamble::Preamble;
use super::script::{claim, stop, Claim};
use super::supervision::Supervision;
use crate::event::Stream;
use crate::ssh::connection::Connection;

/// What became of the supervised command of `sup`, lost with its connection, as a new session
/// finds it (see [`settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// It runs, or ran, under the supervisor: [`resume`] continues it.
    Running,
    /// Its first exec never ran it, and never will (claimed, see `supervisor::claim`): `sup`
    /// has a new id, and the command is to be sent again on the new session.
    NeverStarted,
}

/// Settles, on `conn` (a new session), whether the supervised command of `sup` runs: one lost
/// before its start marker arrived is claimed first (see `supervisor::claim`), one whose start
/// marker arrived is [`Lost::Running`] at once. A claim lost with its connection in turn is
/// [`ExecError::Lost`] and keeps `sup` resumable; a command found started before all of its
/// stdin was sent, a host where the supervisor cannot run, or a claim whose channel the
/// server closed before it told, is [`ExecError::Lost`] and leaves `sup` not resumable.
pub fn settle(conn: &Connection, sup: &mut Supervision) -> Result<Lost, ExecError> {
    if !sup.pending {
        return Ok(Lost::Running);
    }
    let why = match settle_claim(conn, sup)? {
        Settled::Lost(lost) => return Ok(lost),
        Settled::Direct => "the supervisor cannot run on the host to tell",
        Settled::Unanswered => {
            "the server closed the channel that checks whether it did before it could tell \
             (sshd's ChannelTimeout, shorter than the login shell takes to start?)"
        }
    };
    Err(ExecError::Lost(format!(
        "the connection was lost before the command was known to have started, and {why}"
    )))
}

/// What claiming the supervised command of `sup` settled (see [`settle_claim`]).
pub(super) enum Settled {
    /// As [`settle`] says it.
    Lost(Lost),
    /// Nothing can be known: the supervisor cannot run on the host (see `supervisor::claim`),
    /// which ran the command directly, if at all.
    Direct,
    /// Nothing can be known: the claim's own channel closed before it said anything.
    Unanswered,
}

/// Claims the supervised command of `sup` on `conn` (see `supervisor::claim`) and leaves `sup`
/// as that says: with a new id when the claim won (the command never ran, and never will),
/// resumable where the command runs and all of its stdin was sent, not resumable otherwise. A
/// command found started before all of its stdin was sent is [`ExecError::Lost`]; so is a claim
/// lost with its connection, which keeps `sup` as it was.
pub(super) fn settle_claim(conn: &Connection, sup: &mut Supervision) -> Result<Settled, ExecError> {
    let claim = claim(conn, &sup.id, sup.staged.as_deref())?;
    sup.pending = false;
    match claim {
        Claim::Won => {
            // The old id's claim stays (tether's word): that exec may still start, late, and
            // must find it. Its staged command was removed with the claim.
            sup.staged = None;
            sup.streams = None;
            sup.id = crate::ssh::supervisor::new_id();
            Ok(Settled::Lost(Lost::NeverStarted))
        }
        Claim::Taken if sup.streams.as_ref().is_some_and(|s| s.stdin_done) => {
            Ok(Settled::Lost(Lost::Running))
        }
        Claim::Taken => {
            sup.streams = None;
            Err(ExecError::Lost(
                "the command started on the host before all of its stdin was sent".into(),
            ))
        }
        Claim::Unusable(why) => {
            // What the exec's sh would have said had its notice arrived: for the same
            // reason, it ran the command directly, if it ran it at all.
            sup.streams = None;
            sup.direct = why;
            Ok(Settled::Direct)
        }
        Claim::Unanswered => {
            sup.streams = None;
            Ok(Settled::Unanswered)
        }
    }
}

/// Continues the supervised command of `sup`, lost with its connection and found
/// [`Lost::Running`] by [`settle`], on `conn` (a new session): each stream from the byte where
/// it stopped, then the command's real exit status. The command is not sent again (see
/// `supervisor.rs`). With its directory gone, `sup.gone` is set and the status is
/// [`ExitStatus::Missing`](super::ExitStatus::Missing). A resume lost in turn keeps `sup` resumable.
pub fn resume(
    conn: &Connection,
    sup: &mut Supervision,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
) -> Result<ExecOutput, ExecError> {
    let (wrapped, key, opts) = sup.resume_request(opts);
    run_wrapped(
        conn,
        &wrapped,
        &key,
        &opts,
        on_line,
        preamble,
        Some(sup),
        stop,
    )
}
