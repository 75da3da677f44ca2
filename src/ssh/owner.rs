//! What every owner of an SSH session shares, a host's worker and a jump host's worker alike:
//! how it connects (directly, or through the jump host it is reached by, bounded by the
//! handshake limiter, with the host key of its first connection required on every reconnect),
//! the heartbeat interval it keeps (shortened by `ServerAliveInterval`, by the idle limit its
//! server's config sets or an earlier run learned, and by learning), and
//! replacing a dead session with backoff, each reported as an event.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{ConnectBound, HostConfig, Route};
use super::connect;
use super::connection::Connection;
use super::heartbeat::Limits;
use super::known_hosts;
use super::limit_cache::{Death, Key, Source};
use super::limiter::HandshakeLimiter;
use super::policy::{self, WorkerSettings};
use super::proxy_command;
use super::reconnect::{self, Outcome};
use super::SshError;
use crate::duration::format as format_duration;
use crate::event::{EventKind, LimitFrom};
use crate::sink::Sink;

/// A way to reach a host other than a TCP connection of its own: a jump host (ProxyJump).
pub trait Via: Send + Sync {
    /// Connects `name` (options `cfg`) through it: a byte stream to the host, then the SSH
    /// handshake, host key check (under the host's own name, or against `pinned`) and
    /// authentication over it, the handshake bounded by `limiter`.
    fn connect(
        &self,
        name: &str,
        cfg: &HostConfig,
        pinned: Option<&[u8]>,
        limiter: &HandshakeLimiter,
        warn: &mut dyn FnMut(String),
    ) -> Result<Connection, SshError>;

    /// Whether its own connection died (taking every session through it along) after
    /// `since`: a host behind it then knows its own server did not drop it.
    fn lost_since(&self, since: Instant) -> bool;

    /// How long a tunnel through it may go without data before a server on the way closes it
    /// (a jump host's `ChannelTimeout` for `direct-tcpip`, read by its worker); `None` while
    /// unknown or unlimited.
    fn tunnel_idle_limit(&self) -> Option<Duration> {
        None
    }

    /// Has `wake` (a worker's wake socket) written to when a tunnel limit of it, or of a jump
    /// host it is reached through, becomes known: a worker asleep then re-reckons its
    /// heartbeat interval (see [`tunnel_idle_limit`](Via::tunnel_idle_limit)).
    fn watch_tunnel_limit(&self, _wake: UnixStream) {}
}

/// One session owner's connection policy and identity; see the module docs.
pub struct Owner {
    /// The name events carry (`web1`, `bastion (jump)`).
    pub name: Arc<str>,
    /// The name connection errors carry (`web1`, `bastion`).
    hop: String,
    /// The host's options.
    pub config: HostConfig,
    /// How it is reached when not directly.
    pub via: Option<Arc<dyn Via>>,
    /// Heartbeat and reconnect policy.
    pub settings: WorkerSettings,
    /// The heartbeat interval now: the setting, shortened by `ServerAliveInterval` or by
    /// learning; `None` with the heartbeat off.
    pub interval: Option<Duration>,
    /// The share of `interval` this owner waits between heartbeats, in [0.9, 1.0], fixed by
    /// its name: a thousand idle hosts then spread their heartbeats instead of beating at once.
    spread: f64,
    limiter: Arc<HandshakeLimiter>,
    events: Sink,
    /// Set when the owner's handle is dropped: a reconnect in progress gives up.
    pub stop: Arc<AtomicBool>,
    /// The host key of the first connection.
    pinned: Option<Vec<u8>>,
    /// The last failure of a first connection reported: the same one again (a jump host
    /// tried again for a host behind it) is not said twice.
    said_failure: Option<String>,
    /// The interval set from a limit an earlier run read in the server's config: the limit
    /// this run reads there replaces it, longer or shorter.
    recalled_config: Option<Duration>,
}

/// Where an owner's events go and how its handshakes are limited.
pub struct Shared {
    /// The handshake limiter of the run.
    pub limiter: Arc<HandshakeLimiter>,
    /// The reporter's sink.
    pub events: Sink,
}

impl Owner {
    /// An owner named `name` for events and `hop` for errors; see the fields.
    pub fn new(
        name: Arc<str>,
        hop: &str,
        config: HostConfig,
        via: Option<Arc<dyn Via>>,
        settings: WorkerSettings,
        shared: Shared,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let interval = policy::first_interval(settings.heartbeat, config.server_alive_interval);
        Owner {
            spread: spread(&name),
            name,
            hop: hop.to_string(),
            config,
            via,
            settings,
            interval,
            limiter: shared.limiter,
            events: shared.events,
            stop,
            pinned: None,
            said_failure: None,
            recalled_config: None,
        }
    }

    /// How long an idle session waits between heartbeats: `interval`, at most a third of the
    /// tunnel limit of the jump hosts it is reached through, shortened by the owner's spread.
    pub fn beat_every(&self) -> Option<Duration> {
        self.interval
            .map(|iv| self.within_tunnel_limit(iv))
            .map(|iv| iv.mul_f64(self.spread))
    }

    /// `iv`, at most a third of the tunnel limit of the jump hosts the host is reached
    /// through: any traffic keeps a tunnel, a heartbeat of the host behind it included.
    fn within_tunnel_limit(&self, iv: Duration) -> Duration {
        match self.via.as_ref().and_then(|v| v.tunnel_idle_limit()) {
            Some(limit) => iv.min((limit / 3).max(reconnect::SHORTEST_INTERVAL)),
            None => iv,
        }
    }

    /// How long an idle session kept by protocol keepalives waits between heartbeats: as
    /// [`policy::keepalive_interval`] while no idle limit read or learned shortened the
    /// interval, else [`beat_every`](Owner::beat_every). Shortened by a fiftieth more than
    /// other beats: the room the idle worker's shared slots take, so that no beat comes later
    /// than its interval.
    pub fn keepalive_every(&self) -> Option<Duration> {
        let sai = self.config.server_alive_interval;
        let first = policy::first_interval(self.settings.heartbeat, sai);
        let iv = match self.interval == first {
            true => policy::keepalive_interval(first, self.settings.keepalive_heartbeat, sai),
            false => self.interval,
        };
        iv.map(|iv| self.within_tunnel_limit(iv).mul_f64(self.spread * 0.98))
    }

    /// Reports `kind` under the owner's name.
    pub fn emit(&self, kind: EventKind) {
        self.events.emit(&self.name, kind);
    }

    /// The reporter's backlog of output lines (see [`crate::sink::Backlog`]).
    pub fn backlog(&self) -> Arc<crate::sink::Backlog> {
        self.events.backlog()
    }

    /// Whether a first connection succeeded (so a host key is pinned).
    pub fn has_connected(&self) -> bool {
        self.pinned.is_some()
    }

    /// One connection attempt, requiring the pinned key if there is one, armed for the
    /// heartbeat.
    pub fn connect(&self) -> Result<Connection, SshError> {
        self.connect_for(None)
    }

    /// [`connect`](Owner::connect), giving up after `at_most` when that is shorter than the
    /// config's `ConnectTimeout` (a re-attach bound that must hold: see `worker/reattach.rs`),
    /// with the bound it is left of, which a failure then names instead of `ConnectTimeout`.
    pub fn connect_for(
        &self,
        at_most: Option<(Duration, ConnectBound)>,
    ) -> Result<Connection, SshError> {
        let clamped;
        let config = match at_most {
            Some((limit, bound)) if limit < self.config.connect_timeout => {
                let mut c = self.config.clone();
                c.connect_timeout = limit;
                c.connect_bound = bound;
                clamped = c;
                &clamped
            }
            _ => &self.config,
        };
        let pinned = self.pinned.as_deref();
        let mut warn = |w| self.emit(EventKind::Warning { message: w });
        let (via, route) = (&self.via, &config.route);
        let server = connect::host_port(&config.hostname, config.port);
        let conn = match (via, route) {
            (Some(via), _) => via.connect(&self.hop, config, pinned, &self.limiter, &mut warn),
            (None, Route::Command(command)) => self.limiter.run(&server, || {
                proxy_command::connect(&self.hop, config, command, pinned, &mut warn)
            }),
            (None, _) => self.limiter.run(&server, || {
                connect::connect(&self.hop, config, pinned, &mut warn)
            }),
        }?;
        self.arm(&conn);
        Ok(conn)
    }

    /// The first connection: pins its host key; reports `connected` or `connect_failed` (a
    /// failure the same as the last one reported, once).
    pub fn open(&mut self) -> Result<Connection, SshError> {
        // Nothing of the host's is under way yet: Ctrl-C gives the attempt up at once. (The
        // pool closing does not: a run's summary waits for every connection it opened.)
        let give_up = {
            let interrupted = self.settings.interrupted.clone();
            move || {
                interrupted
                    .as_ref()
                    .is_some_and(|i| i.load(Ordering::SeqCst))
            }
        };
        let started = Instant::now();
        let attempt = super::poll::giving_up_when(give_up.clone(), || self.connect());
        let attempt = match attempt {
            Err(_) if give_up() => Err(SshError::ConnectStopped {
                host: self.hop.clone(),
                after: started.elapsed(),
            }),
            other => other,
        };
        match attempt {
            Ok(conn) => {
                self.emit(EventKind::Connected {
                    setup: conn.setup_time,
                });
                self.pinned = Some(conn.host_key.clone());
                self.recall(&conn);
                Ok(conn)
            }
            Err(error) => {
                let text = error.to_string();
                if self.said_failure.as_ref() != Some(&text) {
                    self.said_failure = Some(text.clone());
                    // Given up by tether at a signal: said as the interrupt's, not the host's
                    // (which a recipe that catches it reads as unreachable: see
                    // `SshError::kind`; stop 46 tester t62: the event said `unreachable`).
                    let kind = match error {
                        SshError::ConnectStopped { .. } => crate::failure::Kind::Interrupted,
                        ref e => e.kind(),
                    };
                    self.emit(EventKind::ConnectFailed { error: text, kind });
                }
                Err(error)
            }
        }
    }

    /// One attempt to connect again after `reason` (the first connection if there was none
    /// yet), reported as a reconnect when it succeeds.
    pub fn attempt(&mut self, reason: &str, while_idle: bool) -> Result<Connection, SshError> {
        if !self.has_connected() {
            return self.open();
        }
        let started = Instant::now();
        let conn = self.connect()?;
        self.emit(EventKind::Reconnected {
            reason: reason.to_string(),
            while_idle,
            took: started.elapsed(),
        });
        Ok(conn)
    }

    /// Replaces a dead session after `reason`, with backoff (see [`reconnect::with_backoff`]),
    /// or, once tether got a signal (before or during the backoff), for
    /// [`reconnect::LAST_CONTACT`] in all (see [`reconnect::within`]); reports `reconnect`,
    /// `unreachable` when every attempt failed, or `session_lost` when the owner was stopped
    /// (the run ending) first; nothing where `give_way` ended the backoff, or the attempt
    /// under way ([`Outcome::GaveWay`]).
    pub fn reconnect(
        &mut self,
        reason: &str,
        while_idle: bool,
        give_way: std::rc::Rc<dyn Fn() -> bool>,
    ) -> Outcome {
        let bound = reconnect::LAST_CONTACT;
        // An attempt under way when the owner stops (the run ends) is given up at once, not
        // waited out to its ConnectTimeout (stop 46 tester t61: 30 s held, unsaid).
        let stopped = || {
            let stop = self.stop.clone();
            move || stop.load(Ordering::SeqCst)
        };
        let last_contact = || {
            reconnect::within(&self.name, reason, bound, &self.stop, |left| {
                super::poll::giving_up_when(stopped(), || {
                    self.connect_for(Some((left, ConnectBound::LastContact(bound))))
                })
            })
        };
        let outcome = if crate::interrupt::signalled() {
            last_contact()
        } else {
            let retrying = |r: reconnect::Retrying| {
                self.emit(EventKind::Reconnecting {
                    reason: reason.to_string(),
                    failed: r.failed,
                    attempts: r.attempts,
                    error: r.error.to_string(),
                    next_in: r.next_in,
                })
            };
            match reconnect::with_backoff(
                &self.name,
                reason,
                &self.settings,
                &self.stop,
                &*give_way,
                || {
                    let (stopped, give_way) = (stopped(), give_way.clone());
                    super::poll::giving_up_when(move || stopped() || give_way(), || self.connect())
                },
                retrying,
            ) {
                // A signal came during the backoff and ended it (stop 37 tester t26: a PTY
                // command's host lost before the signal went on reconnecting for 25 s).
                Outcome::Failed(_) if crate::interrupt::signalled() => last_contact(),
                outcome => outcome,
            }
        };
        match &outcome {
            Outcome::Connected(_, took) => self.emit(EventKind::Reconnected {
                reason: reason.to_string(),
                while_idle,
                took: *took,
            }),
            Outcome::Failed(error) => self.emit(EventKind::Unreachable {
                error: error.to_string(),
            }),
            // Said, so the run's end does not sum the host up as holding its session (stop 45
            // tester t57: `one session`, JSON `connected: true`, for a host lost as the run
            // ended).
            Outcome::Stopped => self.emit(EventKind::SessionLost {
                reason: reason.to_string(),
                while_idle,
            }),
            Outcome::GaveWay => {}
        }
        outcome
    }

    /// The server's end closed an idle session after `idle`, and its limits could not be
    /// read: beat faster for the rest of the run, and say so. sshd killed outright closes it
    /// the same way, so one such death is only a sighting; remembered for later runs is the
    /// limit a second one at about the same idle time confirms (see `limit_cache`).
    pub fn learn(&mut self, idle: Duration) {
        let Some(current) = self.interval else { return };
        if let Some(interval) = reconnect::learned_interval(current, idle) {
            self.interval = Some(interval);
            let (death, written) = self.idle_death(idle);
            let confirmed = death == Death::Confirmed;
            // The limit remembered is the shorter of the two deaths: beaten for from now on,
            // as the next run beats for it (stop 58 tester t92: "heartbeat every 1.8 s from
            // now on", 1.3 s the next run).
            let known = self
                .settings
                .limit_cache
                .as_ref()
                .zip(self.cache_key())
                .and_then(|(cache, key)| cache.get(&key));
            if let Some(known) = known.filter(|_| confirmed) {
                self.meet(known.limit);
            }
            self.emit(EventKind::Learned {
                died_after: idle,
                interval: self.interval.unwrap_or(interval),
                confirmed,
                // Not said to be remembered where the file could not be written (stop 58
                // tester t92: the note said so, the next line "remembered").
                remembered: confirmed && written,
            });
        }
    }
}

/// Idle limits read from the server or remembered from earlier runs (see
/// [`super::limit_cache`]): each shortens the interval to a third of the limit, as learning
/// does.
impl Owner {
    /// The cache entry's key for the connected host: its address, port, pinned host key and
    /// login.
    fn cache_key(&self) -> Option<Key> {
        let key = self.pinned.as_deref()?;
        Some(Key {
            host: self.config.hostname.clone(),
            port: self.config.port,
            host_key: known_hosts::fingerprint(key),
            user: self.config.user.clone(),
        })
    }

    /// Shortens the interval for a server that ends sessions idle for `limit`; the new
    /// interval, when it changed.
    fn meet(&mut self, limit: Duration) -> Option<Duration> {
        let current = self.interval?;
        let interval = (limit / 3).max(reconnect::SHORTEST_INTERVAL);
        (interval < current).then(|| {
            self.interval = Some(interval);
            interval
        })
    }

    /// Arms `conn` for this owner's interval (see [`Connection::arm_heartbeat`]): also what
    /// restores its `TCP_USER_TIMEOUT` for a command after the idle worker shortened it.
    pub fn arm(&self, conn: &Connection) {
        if let Some(iv) = self.interval {
            conn.arm_heartbeat(
                iv,
                self.config.server_alive_count_max,
                self.settings.heartbeat_timeout,
            );
        }
    }

    /// How long a connection that died during a command may take to be found dead: the
    /// `TCP_USER_TIMEOUT` of [`arm`](Self::arm), or, without a heartbeat, the ~15 minutes of
    /// TCP's retransmissions (tcp(7), `tcp_retries2`).
    pub fn noticed_dead(&self) -> Duration {
        match self.interval {
            Some(iv) => (iv * self.config.server_alive_count_max.max(1))
                .max(self.settings.heartbeat_timeout),
            None => Duration::from_secs(15 * 60),
        }
    }

    /// After the first connection: applies what an earlier run learned about this server.
    fn recall(&mut self, conn: &Connection) {
        let (Some(cache), Some(key)) = (self.settings.limit_cache.clone(), self.cache_key()) else {
            return;
        };
        let Some(known) = cache.get(&key) else { return };
        if let Some(interval) = self.meet(known.limit) {
            if known.source == Source::SshdConfig {
                self.recalled_config = Some(interval);
            }
            self.arm(conn);
            self.emit(EventKind::IdleLimit {
                limit: known.limit,
                from: LimitFrom::Remembered {
                    read: known.source == Source::SshdConfig,
                    age_s: known.age.as_secs(),
                },
                interval,
            });
        }
    }

    /// The first heartbeat read the server's `limits`: beat often enough for its
    /// `UnusedConnectionTimeout`, and remember it (or forget one it no longer sets).
    pub fn limits_read(&mut self, limits: &Limits, conn: &Connection) {
        if !limits.read {
            // Said under -v, where the beat itself says only that it read them (stop 58
            // tester t92: nothing said that the read failed).
            self.emit(EventKind::Note {
                message: "the server's sshd config could not be read by this login: its idle \
                          limits are learned from idle sessions it closes, and the heartbeat \
                          runs `true`"
                    .into(),
            });
            return;
        }
        // What an earlier run read there gives way to what the server says now (its config
        // changed): the interval starts again from the setting. One shortened since (by an
        // idle death) is kept.
        let before = self.interval;
        let recalled = self.recalled_config.take();
        if let Some(recalled) = recalled {
            if self.interval == Some(recalled) {
                self.interval = policy::first_interval(
                    self.settings.heartbeat,
                    self.config.server_alive_interval,
                );
            }
        }
        let Some(limit) = limits.unused_connection_timeout else {
            if let (Some(cache), Some(key)) = (&self.settings.limit_cache, self.cache_key()) {
                if let Err(why) = cache.forget(&key, Source::SshdConfig) {
                    self.emit(EventKind::Note {
                        message: format!("idle limit not forgotten: {why}"),
                    });
                }
            }
            // The limit an earlier run read is gone: beat as the setting says again (stop 52
            // tester t81: 1 s bare channels for the whole run after the limit was dropped).
            if let (Some(was), Some(now)) = (before, self.interval.filter(|&i| Some(i) != before)) {
                self.arm(conn);
                self.emit(EventKind::Note {
                    message: format!(
                        "the server no longer sets the idle limit an earlier run read \
                         (UnusedConnectionTimeout): heartbeat every {} again, not {}",
                        format_duration(now),
                        format_duration(was)
                    ),
                });
            }
            return;
        };
        self.remember(limit, Source::SshdConfig);
        if self.interval != before {
            self.arm(conn);
        }
        if let Some(interval) = self.meet(limit) {
            self.arm(conn);
            // Said as remembered already where the server still says the same (stop 55
            // tester t88: the bastion's `UnusedConnectionTimeout` line said twice).
            if recalled != Some(interval) {
                self.emit(EventKind::IdleLimit {
                    limit,
                    from: LimitFrom::SshdConfig {
                        in_match: limits.in_match,
                    },
                    interval,
                });
            }
        }
    }

    /// Records an idle death after `idle` in the cache (see [`LimitCache::idle_death`]), and
    /// whether its file was written: `Seen`, unwritten, without a cache.
    ///
    /// [`LimitCache::idle_death`]: super::limit_cache::LimitCache::idle_death
    fn idle_death(&self, idle: Duration) -> (Death, bool) {
        let (Some(cache), Some(key)) = (&self.settings.limit_cache, self.cache_key()) else {
            return (Death::Seen, false);
        };
        let (death, written) = cache.idle_death(&key, idle);
        if let Err(why) = &written {
            self.emit(EventKind::Note {
                message: format!("idle session's end not remembered: {why}"),
            });
        }
        (death, written.is_ok())
    }

    fn remember(&self, limit: Duration, source: Source) {
        let (Some(cache), Some(key)) = (&self.settings.limit_cache, self.cache_key()) else {
            return;
        };
        // The same again within a day: not worth a write. Later, it is renewed, so that a
        // limit each run confirms does not expire.
        if cache.get(&key).is_some_and(|k| {
            k.limit == limit && k.source == source && k.age < Duration::from_secs(24 * 3600)
        }) {
            return;
        }
        if let Err(why) = cache.remember(&key, limit, source) {
            self.emit(EventKind::Note {
                message: format!("idle limit not remembered: {why}"),
            });
        }
    }
}

/// A factor in [0.9, 1.0] from `name` (FNV-1a, then MurmurHash3's 64-bit finalizer), the same
/// for the same name in every run. Without the finalizer, names that differ in their last
/// character (`host1`, `host2` ...) got factors 0.0004 apart: FNV's prime is -4 modulo 1001,
/// so a fleet numbered in sequence beat within milliseconds of each other.
fn spread(name: &str) -> f64 {
    let mut h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    1.0 - (h % 1001) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_is_fixed_per_name_within_a_tenth_and_differs_between_names() {
        let names: Vec<String> = (0..1000).map(|i| format!("web{i:04}")).collect();
        let factors: Vec<f64> = names.iter().map(|n| spread(n)).collect();
        assert!(
            factors.iter().all(|f| (0.9..=1.0).contains(f)),
            "{factors:?}"
        );
        assert_eq!(spread("web0001"), spread("web0001"));
        let mut distinct = factors
            .iter()
            .map(|f| (f * 10_000.0) as u64)
            .collect::<Vec<_>>();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() > 500,
            "only {} distinct spreads",
            distinct.len()
        );
    }

    /// A fleet numbered in sequence is spread over the whole tenth, not bunched (fresh-eyes
    /// finding: `host1`, `host2`, `host3` beat within 20 ms of each other every minute).
    #[test]
    fn names_numbered_in_sequence_are_spread_apart() {
        for prefix in ["host", "s", "web0", "db-"] {
            let f: Vec<f64> = (1..=100).map(|i| spread(&format!("{prefix}{i}"))).collect();
            let gaps: Vec<f64> = f.windows(2).map(|w| (w[0] - w[1]).abs()).collect();
            // Independent uniform factors over a width of 0.1: the mean gap is 0.033.
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            assert!(mean > 0.02, "{prefix}: mean gap {mean}: {f:?}");
            // A tenth of the interval, in tenths: each holds some of the hundred.
            for bin in 0..10 {
                let lo = 0.9 + f64::from(bin) / 100.0;
                let n = f.iter().filter(|&&x| (lo..lo + 0.01).contains(&x)).count();
                assert!(n > 0, "{prefix}: none in [{lo}, {}): {f:?}", lo + 0.01);
            }
        }
    }
}
