//! The idle worker: waiting for a job, the server's traffic or the heartbeat, and running the
//! heartbeat (what kind, when, and what its failure means: see `heartbeat.rs`).

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::state::WorkerState;
use crate::event::EventKind;
use crate::ssh::connection::WaitError;
use crate::ssh::heartbeat::{self, Beat};
use crate::ssh::idle_death::{self, IdleDeath};
use crate::ssh::poll::poll_fds;

/// How old a session must be, and how long idle, before a heartbeat reads its server's limits
/// (see [`heartbeat::read_limits`]).
pub const READ_LIMITS_AFTER: Duration = Duration::from_secs(1);

/// Acknowledged keepalives between two bare-channel heartbeats of a host kept by keepalives: a
/// keepalive's acknowledgement comes from the server's kernel, which answers for a stopped or
/// hung sshd too; a channel needs sshd itself. So a hung sshd is found within four intervals
/// while idle, not at the next command (which would wait for its channel until it gave up).
const KEEPALIVES_PER_CHANNEL: u32 = 3;

impl WorkerState {
    /// How long the idle session waits between heartbeats: longer where protocol keepalives
    /// keep it (see [`Owner::keepalive_every`](crate::ssh::owner::Owner::keepalive_every)).
    fn beat_every(&self) -> Option<Duration> {
        match self.beat {
            Some(Beat::Keepalive) => self.owner.keepalive_every(),
            _ => self.owner.beat_every(),
        }
    }

    pub(super) fn wait_idle(&self, wake: &UnixStream) -> Idle {
        let every = self.beat_every();
        let conn = self.conn.as_ref().filter(|_| every.is_some());
        // Until the server's limits are read, the first heartbeat that reads them comes after
        // READ_LIMITS_AFTER of idleness, also after a first command: a limit shorter than the
        // interval (UnusedConnectionTimeout 3) must be known before it ends the session. Only
        // an interval under that, before its spread, beats sooner (with `true`): a 1 s one
        // shortened by its spread does not (fresh-eyes finding: `--keepalive 1s` ran a `true`
        // on a server without a channel-idle limit).
        let first = |iv: Duration| match self.beat {
            None if self.owner.interval.is_some_and(|i| i < READ_LIMITS_AFTER) => iv,
            None => READ_LIMITS_AFTER,
            Some(_) => iv,
        };
        let due = match (conn, every, self.keepalive_sent) {
            // Its acknowledgement is looked for when the next beat would be due (when that is
            // sooner than the heartbeat's deadline), and, not there yet, at the deadline. With
            // the kernel holding the deadline (`kernel_deadline`), at the next beat even when
            // that is later: a keepalive lost ends the connection, which wakes the worker, so
            // a beat costs one wakeup, not two.
            (Some(_), Some(iv), Some(sent)) => {
                let deadline = sent + self.owner.settings.heartbeat_timeout;
                Some(
                    Some(sent + iv)
                        .filter(|&at| {
                            (self.kernel_deadline || at < deadline) && Instant::now() < at
                        })
                        .unwrap_or(deadline),
                )
            }
            (Some(_), Some(iv), None) => Some(self.last_alive + first(iv)),
            _ => None,
        };
        let due = match (due, every) {
            (Some(at), Some(iv)) if self.beat == Some(Beat::Keepalive) => Some(coalesced(at, iv)),
            (due, _) => due,
        };
        // A session nothing has read since its login (a reconnected one: a first one's first
        // beat comes then anyway) beats by READ_LIMITS_AFTER after it, so that sshd's notice
        // is read before its socket is watched (below), and never taken for a probe.
        let due = due.map(|at| match self.login_unread {
            true => at.min(self.connected_at + READ_LIMITS_AFTER),
            false => at,
        });
        let timeout = match due {
            Some(due) => due.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if timeout.is_zero() {
            return Idle::Due;
        }
        let mut fds = vec![libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // Right after login sshd sends a notice (hostkeys-00@openssh.com) that needs no
        // answer. Answering it, as any server traffic, with a heartbeat cost every host a
        // `true` forked on its server within 50 ms of login (a thousand of them while a large
        // fleet is still connecting); the first heartbeat, due READ_LIMITS_AFTER after
        // login, reads what came meanwhile, and answers a `ClientAliveInterval` probe (sent
        // after a second of silence at the soonest) before sshd's next look. A reconnected
        // session alike (its notice, read at once, was reported as the server's probe): any
        // session nothing has read yet.
        let young = self.login_unread && self.connected_at.elapsed() < READ_LIMITS_AFTER;
        if let Some(c) = conn.filter(|_| !young) {
            fds.push(libc::pollfd {
                fd: c.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if poll_fds(&mut fds, timeout).is_err() {
            return Idle::Due;
        }
        if fds[0].revents != 0 {
            Idle::Wake
        } else if fds.get(1).is_some_and(|f| f.revents != 0) {
            Idle::Probe
        } else if due.is_some_and(|due| Instant::now() >= due) {
            // Only when the interval has really passed: poll also returns early on a signal.
            Idle::Due
        } else {
            Idle::Wake
        }
    }

    /// Before a job uses the session: a keepalive still awaited is reported if it arrived
    /// (else what the job does with the session proves it, or finds it dead), and the
    /// socket's `TCP_USER_TIMEOUT` is the one of commands again.
    pub(super) fn leave_idle(&mut self) {
        let sent = self.keepalive_sent.take();
        let Some(conn) = &self.conn else { return };
        if std::mem::take(&mut self.kernel_deadline) {
            self.owner.arm(conn);
        }
        if let (Some(_), Ok(rtt)) = (sent, heartbeat::keepalive_arrived(conn)) {
            self.keepalives += 1;
            self.emit(EventKind::Heartbeat {
                rtt,
                probe: false,
                beat: Beat::Keepalive,
            });
        }
    }

    pub(super) fn heartbeat(&mut self, probe: bool) {
        let Some(conn) = &self.conn else { return };
        let timeout = self.owner.settings.heartbeat_timeout;
        // What the socket shows before libssh2 reads (and hides) how it ended.
        let seen = idle_death::peek(conn.fd());
        // A probe is answered by a channel: only a libssh2 call reads it (and the channel
        // proves the round trip, so a keepalive still awaited is no longer looked for).
        let sent = self.keepalive_sent.take().filter(|_| !probe);
        let beat = match self.beat {
            // A keepalive reads nothing: what waits since login (see `login_unread`) needs a
            // channel, as a probe does.
            Some(Beat::Keepalive)
                if probe
                    || self.login_unread
                    || (sent.is_none() && self.keepalives >= KEEPALIVES_PER_CHANNEL)
                    || !self
                        .beat_every()
                        .is_some_and(|every| heartbeat::keepalive_fits(conn, every)) =>
            {
                Some(Beat::Channel)
            }
            beat => beat,
        };
        // A heartbeat due while the session is younger than READ_LIMITS_AFTER (an interval
        // under a second) runs the `true` that is safe on any server: reading the limits then
        // would delay a run's first command.
        let result = match beat {
            Some(Beat::Keepalive) if sent.is_some() => match heartbeat::keepalive_arrived(conn) {
                // Not yet; the heartbeat's deadline has not passed either.
                Err(WaitError::Timeout) if sent.is_some_and(|at| at.elapsed() < timeout) => {
                    self.keepalive_sent = sent;
                    return;
                }
                arrived => arrived.map(|rtt| (None, Beat::Keepalive, rtt)),
            },
            Some(Beat::Keepalive) => match heartbeat::send_keepalive(conn) {
                Ok(()) => {
                    self.keepalive_sent = Some(Instant::now());
                    self.kernel_deadline |= conn.set_user_timeout(timeout);
                    return;
                }
                Err(e) => Err(e),
            },
            Some(beat) => heartbeat::run(conn, beat, timeout).map(|rtt| (None, beat, rtt)),
            None if self.connected_at.elapsed() < READ_LIMITS_AFTER => {
                heartbeat::run(conn, Beat::Command, timeout).map(|rtt| (None, Beat::Command, rtt))
            }
            None => heartbeat::read_limits(conn, timeout)
                .map(|(limits, rtt)| (Some(limits), Beat::Limits, rtt)),
        };
        match result {
            Ok((limits, beat, rtt)) => {
                match beat {
                    Beat::Keepalive => self.keepalives += 1,
                    _ => {
                        self.keepalives = 0;
                        self.login_unread = false;
                    }
                }
                match sent.filter(|_| beat == Beat::Keepalive) {
                    // The session was known to work when the keepalive left.
                    Some(sent) => self.last_alive = sent,
                    None => {
                        // Counts as client traffic too; "would block" only means it is queued.
                        let _ = conn.session.keepalive_send();
                        self.last_alive = Instant::now();
                    }
                }
                self.emit(EventKind::Heartbeat { rtt, probe, beat });
                if let Some(limits) = limits {
                    self.beat = Some(limits.beat);
                    self.limits_known = limits.read;
                    self.owner.limits_read(&limits, conn);
                }
            }
            Err(e) => {
                let idle = self.last_alive.elapsed();
                let timed_out = matches!(e, WaitError::Timeout);
                let death = IdleDeath::of(seen, timed_out, conn.fd());
                // When the jump host's connection died (taking this host's tunnel with it),
                // this host's server did not drop the idle session: nothing to learn. Nor
                // from a reset or a silence (see `idle_death`), nor from a server whose
                // limits were read: they did not end it.
                let jump_lost = self
                    .owner
                    .via
                    .as_ref()
                    .is_some_and(|j| j.lost_since(self.last_alive));
                // Nor when a jump host on the way closes tunnels idle for a limit this host's
                // heartbeat beats well inside, and the session ended at or past it: no beat
                // came back through the tunnel for that long, so the jump host closed it, not
                // this host's server (stop 55 tester t87: a host behind a bastion with
                // `ChannelTimeout direct-tcpip=3s`, its packets dropped, had "its idle limit"
                // learned and remembered for the server reached directly too).
                let tunnel_closed = self
                    .owner
                    .via
                    .as_ref()
                    .and_then(|j| j.tunnel_idle_limit())
                    .filter(|limit| idle + TUNNEL_CLOCKS >= *limit && death.may_be_idle_limit());
                if !jump_lost && tunnel_closed.is_none() && death.may_be_idle_limit() {
                    if !self.limits_known {
                        self.owner.learn(idle);
                        self.beat = Some(Beat::Command);
                    } else {
                        self.closed_while_idle += 1;
                        // Its config was read and needs no channel: one close is a restart or
                        // an administrator's kill more likely than a limit the read missed (a
                        // config changed since); a second in this run is a pattern. Run
                        // commands from then on, and say so.
                        if self.closed_while_idle == 2 && self.beat != Some(Beat::Command) {
                            self.beat = Some(Beat::Command);
                            self.emit(EventKind::Warning {
                                message: "the server closed an idle session twice although \
                                          its config sets no UnusedConnectionTimeout: the \
                                          heartbeat runs `true` from now on"
                                    .into(),
                            });
                        }
                    }
                }
                // The jump host's loss closed the tunnel: the heartbeat's own words say so,
                // the socket's end would blame this host's server.
                let why = match (jump_lost, tunnel_closed) {
                    (true, _) => e.to_string(),
                    (false, Some(limit)) => format!(
                        "the jump host closed the tunnel after {} with no answer through it \
                         (it closes tunnels idle for {}: ChannelTimeout)",
                        crate::duration::format(idle),
                        crate::duration::format(limit)
                    ),
                    (false, None) => death.words().map_or_else(|| e.to_string(), String::from),
                };
                self.replace_session(format!("connection lost while idle ({why})"), true, true);
            }
        }
    }
}

/// How much sooner than its tunnel limit, by this host's clock, a jump host may close a tunnel:
/// it counts from the last data it forwarded, this host from the last answer it read, a little
/// later (stop 55 tester t88: 2 of 19 runs under load said "the server closed the connection"
/// for a tunnel the bastion closed at its 3 s).
const TUNNEL_CLOCKS: Duration = Duration::from_millis(500);

/// `at`, put off to the next slot of a grid every host of the process shares: a fiftieth of
/// the interval `every`, a second at most. Hosts whose beats fall in the same slot wake in
/// the same instant, which costs far less per beat than waking each alone; the spread over
/// the interval stays (a minute has sixty slots). The delay stays within the interval asked
/// for: a keepalive-kept host's `every` leaves a fiftieth of room (see
/// `Owner::keepalive_every`). Measured with `scripts/bench --quick`, a thousand idle hosts
/// kept by keepalives: 0.81 % of a core with each host waking alone, 0.19 % with slots.
fn coalesced(at: Instant, every: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let slot = (every / 50).clamp(Duration::from_millis(1), Duration::from_secs(1));
    let Some(since) = at.checked_duration_since(epoch) else {
        return at;
    };
    let nanos = since.as_nanos().div_ceil(slot.as_nanos()) * slot.as_nanos();
    // u64 nanoseconds: 584 years after the process's first beat.
    epoch + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

pub(super) enum Idle {
    Wake,
    Probe,
    Due,
}

/// Whether `wake` (a job, or the end of the pool) became readable within `timeout`.
pub(super) fn woken_within(wake: &UnixStream, timeout: Duration) -> bool {
    let mut fds = [libc::pollfd {
        fd: wake.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    poll_fds(&mut fds, timeout).is_ok() && fds[0].revents != 0
}

pub(super) fn drain(wake: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_are_put_off_to_a_shared_slot_by_a_fiftieth_at_most() {
        let minute = Duration::from_secs(60);
        let now = Instant::now();
        let at = |ms: u64| now + Duration::from_millis(ms);
        let a = coalesced(at(54_100), minute);
        let b = coalesced(at(54_900), minute);
        assert!(a >= at(54_100) && a - at(54_100) <= Duration::from_secs(1));
        // Two beats within one slot wake together (or one slot apart at a boundary).
        assert!(b >= a && b - a <= Duration::from_secs(1), "{:?}", b - a);
        assert_eq!(coalesced(a, minute), a, "a slot's own instant stays");
        // A short interval, a short slot: 3 s beats move by 60 ms at most.
        let c = coalesced(at(2_710), Duration::from_secs(3));
        assert!(c >= at(2_710) && c - at(2_710) <= Duration::from_millis(60));
    }
}
