//! The heartbeat of an idle session, and which kind a server needs.
//!
//! What ends an idle SSH connection is one of: sshd's `ClientAliveInterval`/`ClientAliveCountMax`
//! (no client traffic), a NAT or firewall timer (no traffic either way), or OpenSSH 9.2+'s
//! `UnusedConnectionTimeout` (no channel in use). For the first two a protocol keepalive is
//! enough ([`Beat::Keepalive`]): one packet to sshd, which reads and drops it, and the TCP
//! acknowledgement back, which proves the round trip (see `tcp_ack.rs`). A session channel
//! opened and closed again with no command in it ([`Beat::Channel`]) proves it where there is
//! no TCP socket to ask (a proxy command, a jump host's tunnel), and answers the server's
//! probes, which only a libssh2 call reads. sshd does not count a channel that never started a
//! command as in use, so where `UnusedConnectionTimeout` is set only a command keeps the
//! connection: a `true` exec ([`Beat::Command`]), which forks a process on the server each time.
//! The first heartbeat of a host reads the serving sshd's config ([`read_limits`]) and the host
//! gets the keepalive unless that config sets `UnusedConnectionTimeout` or could not be read;
//! the value it sets shortens the host's interval (see `owner.rs`).

use std::time::{Duration, Instant};

use super::connection::{Connection, OpenError, WaitError};
use super::exec::{self, Echo, ExecError, ExecOptions};
use super::tcp_ack;
use crate::command::quote;
pub use crate::event::Beat;
use crate::event::Stream;
use crate::sshd::probe::{config_from_cmdline, discover, dump, parse_discovery};
use crate::sshd::settings::{
    needs_open_channel, unused_connection_timeout, unused_connection_timeout_in_match,
};

/// The shortest interval of [`Beat::Keepalive`]: libssh2 sends a keepalive at most every 2 s
/// (`libssh2_keepalive_config` turns 1 s into 2), so a shorter one would skip beats.
pub const KEEPALIVE_EVERY_AT_LEAST: Duration = Duration::from_secs(2);

/// Runs one heartbeat of kind `beat` on `conn` (`Limits` is [`read_limits`]' own: it runs
/// `true`) and returns its round-trip time. An error, or no answer within `timeout`, means the
/// session is dead. A keepalive is never waited for: the idle worker runs it in two steps
/// ([`send_keepalive`], then [`keepalive_arrived`] when the next beat is due), so a caller
/// that needs the round trip now gets the bare channel, which proves it at once.
pub fn run(conn: &Connection, beat: Beat, timeout: Duration) -> Result<Duration, WaitError> {
    match beat {
        Beat::Keepalive | Beat::Channel => channel(conn, timeout),
        Beat::Command | Beat::Limits => command(conn, timeout),
    }
}

/// Whether `conn` can be kept by [`Beat::Keepalive`] at intervals of `every`: its socket is
/// TCP (see [`tcp_ack::acks`]) and `every` is at least [`KEEPALIVE_EVERY_AT_LEAST`].
pub fn keepalive_fits(conn: &Connection, every: Duration) -> bool {
    every >= KEEPALIVE_EVERY_AT_LEAST && tcp_ack::acks(conn.fd()).is_some()
}

/// Sends a protocol keepalive (`keepalive@libssh2.org`, no reply asked): client traffic for
/// sshd's `ClientAliveInterval` and traffic both ways (with its acknowledgement) for a NAT.
/// "Would block" only means it is queued; another error means the session is dead.
pub fn send_keepalive(conn: &Connection) -> Result<(), WaitError> {
    match conn.session.keepalive_send() {
        Err(e) if !super::connection::would_block(&e) => Err(WaitError::Failed(conn.plain(&e))),
        _ => Ok(()),
    }
}

/// Whether everything sent on `conn` (a keepalive from [`send_keepalive`] among it) was
/// acknowledged by the server's TCP: the kernel's smoothed round-trip time if so,
/// [`WaitError::Timeout`] if not yet (asked once the heartbeat's deadline has passed, the
/// session is dead).
pub fn keepalive_arrived(conn: &Connection) -> Result<Duration, WaitError> {
    match tcp_ack::acks(conn.fd()) {
        Some(a) if a.unacked == 0 => Ok(a.rtt),
        Some(_) => Err(WaitError::Timeout),
        None => Err(WaitError::Failed(
            "the socket no longer says what it sent (TCP_INFO)".into(),
        )),
    }
}

/// Opens a heartbeat's channel: `None` where the server refused it (sshd's `MaxSessions 0`
/// on a host that allows forwarding only), an answer all the same: the session is alive.
fn open(conn: &Connection, until: Instant) -> Result<Option<ssh2::Channel>, WaitError> {
    match conn.open_session(until, Duration::ZERO) {
        Ok(channel) => Ok(Some(channel)),
        Err(OpenError::Refused(_)) => Ok(None),
        Err(OpenError::Wait(e)) => Err(e),
    }
}

fn channel(conn: &Connection, timeout: Duration) -> Result<Duration, WaitError> {
    let started = Instant::now();
    let until = started + timeout;
    let Some(mut channel) = open(conn, until)? else {
        return Ok(started.elapsed());
    };
    conn.retry(until, || channel.close())?;
    conn.retry(until, || channel.wait_close())?;
    Ok(started.elapsed())
}

/// `true`, unwrapped, read to its close.
fn command(conn: &Connection, timeout: Duration) -> Result<Duration, WaitError> {
    use std::io::Read as _;
    let started = Instant::now();
    let until = started + timeout;
    let Some(mut channel) = open(conn, until)? else {
        return Ok(started.elapsed());
    };
    conn.retry(until, || channel.exec("true"))?;
    conn.retry(until, || channel.send_eof())?;
    let mut buf = [0u8; 256];
    loop {
        let mut open = 0;
        for id in [0, 1] {
            match channel.stream(id).read(&mut buf) {
                Ok(0) => {}
                Ok(_) => open += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                Err(e) => return Err(WaitError::Failed(conn.plain_io(&e))),
            }
        }
        if open == 0 && channel.eof() {
            break;
        }
        conn.wait_socket(until)?;
    }
    conn.retry(until, || channel.wait_close())?;
    Ok(started.elapsed())
}

/// What the first heartbeat of a host read of its server's idle limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What keeps its idle sessions: [`Beat::Keepalive`] only when the config was read and
    /// sets no `UnusedConnectionTimeout` (see [`needs_open_channel`]), else [`Beat::Command`].
    /// (The worker runs [`Beat::Channel`] instead of a keepalive where one does not fit: see
    /// [`keepalive_fits`].)
    pub beat: Beat,
    /// Whether every file of the serving sshd's config was read: its idle limits are then
    /// known, and an idle session it closes sooner was ended by something else (a restart, an
    /// administrator's kill), which teaches nothing about idle limits.
    pub read: bool,
    /// The shortest `UnusedConnectionTimeout` it sets (see [`unused_connection_timeout`]).
    pub unused_connection_timeout: Option<Duration>,
    /// That value is a `Match` block's, which may apply to other logins only (see
    /// [`unused_connection_timeout_in_match`]).
    pub in_match: bool,
}

impl Limits {
    /// Nothing could be read: `true` every time, as safe on any server.
    const UNKNOWN: Limits = Limits {
        beat: Beat::Command,
        read: false,
        unused_connection_timeout: None,
        in_match: false,
    };
}

/// The first heartbeat of a host: finds the sshd serving `conn` and reads its config (two
/// commands, as `tether check` runs them), and says what it limits (see [`Limits`]). Returns
/// that and the round-trip time of a bare channel opened first; an error means the session is
/// dead.
pub fn read_limits(conn: &Connection, timeout: Duration) -> Result<(Limits, Duration), WaitError> {
    let opts = ExecOptions {
        timeout: Some(timeout),
        echo: Echo::Nothing,
        ..ExecOptions::default()
    };
    // The round trip first, under the heartbeat's own deadline, as every heartbeat proves it.
    let rtt = channel(conn, timeout)?;
    let found = quiet(conn, &discover(), &opts)?;
    let Some(found) = found else {
        return Ok((Limits::UNKNOWN, rtt));
    };
    let d = parse_discovery(&found);
    let config = match (d.pid, config_from_cmdline(&d.cmdline)) {
        // Not knowing which sshd serves us, its config cannot be known either.
        (None, _) => return Ok((Limits::UNKNOWN, rtt)),
        (Some(_), config) => config.unwrap_or_else(|| "/etc/ssh/sshd_config".into()),
    };
    let Some(dump) = quiet(conn, &format!("{}dump {} 0", dump(), quote(&config)), &opts)? else {
        return Ok((Limits::UNKNOWN, rtt));
    };
    let limits = match needs_open_channel(&d.cmdline, &dump) {
        None => Limits::UNKNOWN,
        Some(needed) => Limits {
            beat: if needed {
                Beat::Command
            } else {
                Beat::Keepalive
            },
            read: true,
            unused_connection_timeout: unused_connection_timeout(&d.cmdline, &dump),
            in_match: unused_connection_timeout_in_match(&d.cmdline, &dump),
        },
    };
    Ok((limits, rtt))
}

/// Runs `script` and returns its stdout when it exits 0, `None` when it fails; an error when
/// the session does.
fn quiet(conn: &Connection, script: &str, opts: &ExecOptions) -> Result<Option<String>, WaitError> {
    match exec::run(conn, script, opts, &mut |_: Stream, _: &str, _| {}) {
        Ok(out) if out.status.success() => Ok(Some(String::from_utf8_lossy(&out.stdout).into())),
        Ok(_) => Ok(None),
        // Neither reads nor writes a local file; were it to, the script simply failed.
        Err(ExecError::Refused(_) | ExecError::Local(_) | ExecError::NotStaged(_)) => Ok(None),
        Err(ExecError::Deadline(..)) => Err(WaitError::Timeout),
        Err(ExecError::NotStarted(e) | ExecError::Lost(e)) => Err(WaitError::Failed(e)),
        Err(e @ (ExecError::Stopped(..) | ExecError::StoppedUnsent(_))) => {
            Err(WaitError::Failed(e.to_string()))
        }
    }
}
