//! Standbys (see `ssh/standby.rs`): from a connection's second supervised command on, the
//! exec of the next one is opened as soon as the current one is sent, with its command to come
//! on stdin; the next command writes itself there (`run.rs`) instead of opening a channel,
//! starting a login shell and a supervisor, and setting up its private directory, all of which
//! ran meanwhile. A warm command then waits for its own work only. Here: opening, taking and
//! closing them.

use std::time::{Duration, Instant};

use super::frames::Key;
use super::options::ExecOptions;
use super::pump::close_now;
use super::wrap::wrap_standby;
use crate::ssh::connection::{would_block, Connection, OpenError};
pub(super) use crate::ssh::standby::Standby;
use crate::ssh::standby::STANDBY_AGE;

/// How long opening a standby may hold up the command being followed meanwhile (its output
/// waits in libssh2's buffers).
const OPEN_WITHIN: Duration = Duration::from_secs(1);

/// Counts a supervised command sent on `conn` with `opts`, and, from the second on, opens a
/// standby for the next one where none is ready. None with a PTY or agent forwarding (their
/// requests belong to the command's own channel); none again on a connection whose server
/// refused one (`MaxSessions`) or failed its exec request. Failing to open one costs nothing
/// else: the next command opens its own channel.
pub(super) fn open_next(conn: &Connection, opts: &ExecOptions) {
    let mut slot = conn.standby.borrow_mut();
    slot.sent = slot.sent.saturating_add(1);
    if slot.sent < 2 || slot.off || slot.ready.is_some() || opts.pty || opts.forward_agent.is_some()
    {
        return;
    }
    let until = Instant::now() + OPEN_WITHIN;
    let mut channel = match conn.open_session(until, Duration::ZERO) {
        Ok(channel) => channel,
        Err(OpenError::Refused(_)) => {
            slot.off = true;
            return;
        }
        Err(OpenError::Wait(_)) => return,
    };
    if crate::ssh::env::send(conn, &mut channel, &opts.env, until).is_err() {
        close_now(conn, &mut channel);
        return;
    }
    let key = Key::new();
    let id = crate::ssh::supervisor::new_id();
    let request = wrap_standby(&id, &key);
    loop {
        match channel.exec(&request) {
            Ok(()) => break,
            Err(e) if would_block(&e) && conn.wait_socket(until).is_ok() => {}
            Err(_) => {
                slot.off = true;
                close_now(conn, &mut channel);
                return;
            }
        }
    }
    slot.ready = Some(Standby {
        channel,
        key: key.as_str().to_string(),
        id,
        since: Instant::now(),
        env: (*opts.env).clone(),
    });
}

/// The standby of `conn` for a command run with `opts`: one that has waited less than
/// [`STANDBY_AGE`], opened with the same environment requests, not ended (a server's
/// `ChannelTimeout` may have closed one that waited while a long command ran). Any other is
/// closed.
pub(super) fn take(conn: &Connection, opts: &ExecOptions) -> Option<Standby> {
    let mut standby = conn.standby.borrow_mut().ready.take()?;
    let usable = standby.since.elapsed() < STANDBY_AGE
        && standby.env == *opts.env
        && !opts.pty
        && opts.forward_agent.is_none()
        && !standby.channel.eof();
    if usable {
        return Some(standby);
    }
    close_now(conn, &mut standby.channel);
    None
}

/// How long the standby of `conn` is kept unused from now; `None` without one.
pub fn standby_left(conn: &Connection) -> Option<Duration> {
    conn.standby
        .borrow()
        .ready
        .as_ref()
        .map(|s| STANDBY_AGE.saturating_sub(s.since.elapsed()))
}

/// The command that ran while the standby of `conn` (if any) waited has ended: the standby's
/// wait with nothing else running starts now.
pub(super) fn waiting_from_now(conn: &Connection) {
    if let Some(standby) = conn.standby.borrow_mut().ready.as_mut() {
        standby.since = Instant::now();
    }
}

/// Closes the standby of `conn`, if any: its supervisor, reading the end of its stdin, exits
/// having run nothing.
pub fn close_standby(conn: &Connection) {
    let taken = conn.standby.borrow_mut().ready.take();
    if let Some(mut standby) = taken {
        close_now(conn, &mut standby.channel);
    }
}

/// Lets go of the standby of `conn`, if any, its close sent if it can be at once, not waited
/// for: on a connection taken for hung, which would not answer it.
pub(super) fn abandon_standby(conn: &Connection) {
    let taken = conn.standby.borrow_mut().ready.take();
    if let Some(mut standby) = taken {
        drop(standby.channel.close());
    }
}
