//! ProxyJump: hosts reached through jump hosts (bastions), without `ssh` subprocesses.
//!
//! A jump host gets a worker thread of its own ([`Jump`], `worker.rs`) that owns its
//! `ssh2::Session` (non-blocking), exactly like a [`HostWorker`](super::worker::HostWorker)
//! owns a target's, with the same [`Owner`] policy (connect, pinned key, heartbeat interval,
//! reconnect):
//! nothing else ever touches that session. A host behind it asks the jump worker for a tunnel;
//! the jump worker opens a `direct-tcpip` channel to the host's `HostName:Port`, makes a
//! `UnixStream::pair()`, keeps one end and hands the other to the host's worker, which runs its
//! own SSH session over it (host key checked under the host's own name, as OpenSSH does). From
//! then on the jump worker pumps bytes between each channel and its socket end, from the same
//! loop that services its own session:
//!
//! - many hosts behind one bastion share one bastion connection (the pool keeps one jump worker
//!   per route, [`Jumps`]);
//! - the bastion has its own heartbeat: when no tunnel has brought data for the heartbeat
//!   interval, or the server sends something while there is no tunnel to read it, it runs a
//!   `true` no-op on a new channel (`heartbeat.rs`), so an idle bastion is kept alive and a
//!   dead one noticed;
//! - chains (`ProxyJump a,b`): `b`'s jump worker connects through a tunnel of `a`'s;
//! - when the bastion connection dies, its tunnels are closed at once (the hosts behind it see
//!   their sockets close and reconnect through it, under their usual rules: pinned host key,
//!   nothing in flight re-sent) and the jump worker reconnects, with backoff and its own pinned
//!   key.
//!
//! Everything on the jump session is non-blocking, and libssh2 has one "channel open" state
//! and one "packet being sent" slot per session: at most one channel open (a tunnel or the
//! heartbeat's) is in progress at a time, and a channel write that returned "would block" is
//! always retried with the same leading bytes until it completes, before anything else could
//! be stuck behind it.

mod heartbeat;
mod lane;
mod tunnel;
mod tunnel_limit;
mod worker;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{ConnectBound, HostConfig};
use super::connect;
use super::connection::{self, Connection};
use super::limiter::HandshakeLimiter;
use super::owner::{Owner, Shared, Via};
use super::policy::WorkerSettings;
use super::route::{sharing_key, Hop};
use super::SshError;
use crate::failure::Kind;
use crate::sink::Sink;
use lane::Request;
use tunnel_limit::TunnelLimit;
use worker::State;

/// The jump workers of a pool, one per route (a chain of hops), shared by every host behind
/// it.
pub struct Jumps {
    map: Mutex<HashMap<String, Arc<Jump>>>,
    settings: WorkerSettings,
    limiter: Arc<HandshakeLimiter>,
    events: Sink,
}

impl Jumps {
    /// No jump workers yet; they start on demand with these settings.
    pub fn new(settings: WorkerSettings, limiter: Arc<HandshakeLimiter>, events: Sink) -> Self {
        Jumps {
            map: Mutex::new(HashMap::new()),
            settings,
            limiter,
            events,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Jump>>> {
        // The map stays consistent even if a holder panicked.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The jump worker of the last hop of `hops` (starting the workers of the route that do
    /// not run yet), or `None` for a direct connection.
    pub fn via(&self, hops: Vec<Hop>) -> std::io::Result<Option<Arc<Jump>>> {
        let mut map = self.map();
        let mut parent: Option<Arc<Jump>> = None;
        let mut key = String::new();
        for hop in hops {
            if !key.is_empty() {
                key.push_str(" > ");
            }
            key.push_str(&sharing_key(&hop.config));
            let jump = match map.get(&key) {
                Some(j) => j.clone(),
                None => {
                    let j = Arc::new(Jump::spawn(
                        &hop.target.name,
                        hop.config,
                        parent.clone(),
                        self.settings.clone(),
                        self.limiter.clone(),
                        self.events.clone(),
                    )?);
                    map.insert(key.clone(), j.clone());
                    j
                }
            };
            parent = Some(jump);
        }
        Ok(parent)
    }

    /// Stops the jump workers that no host (and no other jump worker) uses any more.
    pub fn prune(&self) {
        loop {
            let unused: Vec<Arc<Jump>> = {
                let mut map = self.map();
                let keys: Vec<String> = map
                    .iter()
                    .filter(|(_, j)| Arc::strong_count(j) == 1)
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter().filter_map(|k| map.remove(k)).collect()
            };
            if unused.is_empty() {
                return;
            }
            // Dropped outside the lock: stopping a jump worker waits for its thread, and may
            // release its parent for the next round.
            drop(unused);
        }
    }
}

/// The handle to a jump host's worker thread. Dropping the last handle closes the session and
/// joins the thread.
pub struct Jump {
    name: Arc<str>,
    requests: Sender<Request>,
    wake: UnixStream,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// How long this jump host may take to connect, its own jump hosts included.
    budget: Duration,
    /// When the jump host's connection was last found dead (its tunnels were closed then).
    lost_at: Arc<Mutex<Option<Instant>>>,
    /// Whether its worker has a connection: false from a loss until it connects again.
    connected: Arc<AtomicBool>,
    /// The jump host's `ChannelTimeout` for tunnels, as its worker read it in the jump host's
    /// sshd config.
    tunnel_limit: Arc<TunnelLimit>,
    /// The jump host this one is reached through: its tunnels carry ours.
    parent: Option<Arc<Jump>>,
}

impl Jump {
    fn spawn(
        name: &str,
        config: HostConfig,
        parent: Option<Arc<Jump>>,
        settings: WorkerSettings,
        limiter: Arc<HandshakeLimiter>,
        events: Sink,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let display: Arc<str> = Arc::from(format!("{name}{}", crate::host_text::JUMP_LABEL));
        let stop = Arc::new(AtomicBool::new(false));
        let budget = config.connect_timeout + parent.as_ref().map_or(Duration::ZERO, |p| p.budget);
        let lost_at = Arc::new(Mutex::new(None));
        let connected = Arc::new(AtomicBool::new(false));
        let tunnel_limit = Arc::new(TunnelLimit::default());
        if let Some(p) = &parent {
            p.watch_tunnel_limit(wake.try_clone()?);
        }
        let via = parent.clone().map(|p| p as Arc<dyn Via>);
        let owner = Owner::new(
            display.clone(),
            name,
            config,
            via,
            settings,
            Shared { limiter, events },
            stop.clone(),
        );
        let state = State::new(
            owner,
            lost_at.clone(),
            connected.clone(),
            tunnel_limit.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("jump {name}"))
            .spawn(move || state.run(rx, wake_rx))?;
        Ok(Jump {
            name: display,
            requests: tx,
            wake,
            stop,
            thread: Mutex::new(Some(thread)),
            budget,
            lost_at,
            connected,
            tunnel_limit,
            parent,
        })
    }

    /// Whether its worker lost its connection and has not connected again.
    fn reconnecting(&self) -> bool {
        let lost = self
            .lost_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        lost && !self.connected.load(Ordering::SeqCst)
    }

    /// The jump host's display name (`bastion (jump)`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn error(&self, host: &str, reason: impl Into<String>) -> SshError {
        SshError::Jump {
            host: host.to_string(),
            jump: self
                .name
                .trim_end_matches(crate::host_text::JUMP_LABEL)
                .to_string(),
            reason: reason.into(),
            kind: Kind::Unreachable,
        }
    }

    /// A byte stream to `host:port` as seen from the jump host (a `direct-tcpip` channel
    /// pumped by the jump worker), for `for_host`, with the socket that carries it in the end
    /// (see [`connection::CarrierSocket`]). Waits at most `timeout` plus the time the
    /// jump host itself may need to connect; `timeout` alone where `bound` cut it short (a
    /// re-attach's bound, a command's timeout: what the whole attempt must end within, the
    /// jump host's reconnecting included).
    pub fn open(
        &self,
        for_host: &str,
        host: &str,
        port: u16,
        timeout: Duration,
        bound: ConnectBound,
    ) -> Result<(UnixStream, connection::CarrierSocket), SshError> {
        let (tx, rx) = mpsc::channel();
        let bounded = bound != ConnectBound::ConnectTimeout;
        let wait = match bounded {
            true => timeout,
            false => timeout + self.budget,
        };
        let asked = Instant::now();
        let request = Request {
            for_host: Arc::from(for_host),
            host: host.to_string(),
            port,
            asked,
            deadline: asked + wait,
            patience: timeout,
            reply: tx,
        };
        if self.requests.send(request).is_err() {
            return Err(self.error(for_host, "its worker thread has stopped"));
        }
        // A full wake socket already holds a pending wake-up.
        let _ = (&self.wake).write(&[1]);
        // In slices, so that an attempt given up (see `poll::giving_up_when`) ends at once; a
        // second more for the jump worker's own answer, where nothing bounds the attempt.
        let until = Instant::now()
            + wait
            + if bounded {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            };
        let answer = loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || crate::ssh::poll::given_up() {
                break None;
            }
            match rx.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(result) => break Some(result),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            }
        };
        let Some(result) = answer else {
            // Its worker found its connection dead after this was asked, or is connecting
            // again: the jump host is what did not answer, not the host behind it (stop 57
            // tester t90: "did not open a connection to 127.0.0.1:32315" for a jump host
            // gone silent).
            let what = match self.lost_since(asked) || self.reconnecting() {
                true => "the jump host lost its connection, and was not connected again".into(),
                false => format!("no connection to {}", connect::host_port(host, port)),
            };
            let within = crate::duration::format(wait);
            return Err(self.error(
                for_host,
                match bounded {
                    true => format!("{what} within {within} ({bound})"),
                    false => format!("{what} within {within}"),
                },
            ));
        };
        result
    }
}

/// The shortest of a jump host's tunnel limit (`own`) and those of the jump hosts it is reached
/// through (`parent` and on): a tunnel of ours is carried inside theirs.
fn chain_limit(own: &TunnelLimit, parent: Option<&Jump>) -> Option<Duration> {
    let outer = parent.and_then(|p| p.tunnel_idle_limit());
    own.get().into_iter().chain(outer).min()
}

impl Via for Jump {
    /// A tunnel to the host's `HostName` and `Port`, then the SSH handshake over it. The
    /// tunnel is opened outside the limiter: a host holding a handshake slot while its bastion
    /// waits for one would deadlock.
    fn connect(
        &self,
        name: &str,
        cfg: &HostConfig,
        pinned: Option<&[u8]>,
        limiter: &HandshakeLimiter,
        warn: &mut dyn FnMut(String),
    ) -> Result<Connection, SshError> {
        let server = connect::host_port(&cfg.hostname, cfg.port);
        // A host that hangs up before its banner (sshd's MaxStartups) is tried again through
        // a new tunnel, as a direct connection is.
        let begun = Instant::now();
        let bounded = cfg.connect_bound != ConnectBound::ConnectTimeout;
        connect::retrying_drops(cfg, begun, || {
            let (stream, socket) = self.open(
                name,
                &cfg.hostname,
                cfg.port,
                match bounded {
                    true => cfg.connect_timeout.saturating_sub(begun.elapsed()),
                    false => cfg.connect_timeout,
                },
                cfg.connect_bound,
            )?;
            // A bound that cut the attempt short holds for its handshake too.
            let started = if bounded { begun } else { Instant::now() };
            let (limit, parent) = (self.tunnel_limit.clone(), self.parent.clone());
            let carrier = connection::Carrier {
                name: Arc::from(self.name.trim_end_matches(crate::host_text::JUMP_LABEL)),
                lost_at: self.lost_at.clone(),
                tunnel_limit: Arc::new(move || chain_limit(&limit, parent.as_deref())),
                socket,
            };
            limiter
                .run(&server, || {
                    connect::connect_over(name, cfg, stream, started, pinned, &mut *warn)
                })
                .map(|conn| conn.carried_by(carrier))
        })
    }

    fn lost_since(&self, since: Instant) -> bool {
        self.lost_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at >= since)
    }

    /// The shortest tunnel limit of this jump host and those it is reached through (a tunnel
    /// of ours is carried inside theirs).
    fn tunnel_idle_limit(&self) -> Option<Duration> {
        chain_limit(&self.tunnel_limit, self.parent.as_deref())
    }

    fn watch_tunnel_limit(&self, wake: UnixStream) {
        if let Some(p) = &self.parent {
            if let Ok(w) = wake.try_clone() {
                p.watch_tunnel_limit(w);
            }
        }
        self.tunnel_limit.watch(wake);
    }
}

impl Drop for Jump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = (&self.wake).write(&[0]);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}
