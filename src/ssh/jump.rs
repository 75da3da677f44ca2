//! ProxyJump: hosts reached through jump hosts (bastions), without `ssh` subprocesses.
//!
//! A jump host gets a worker thread of its own ([`Jump`]) that owns its `ssh2::Session`
//! (non-blocking), exactly like a [`HostWorker`](super::worker::HostWorker) owns a target's:
//! nothing else ever touches that session. A host behind it asks the jump worker for a tunnel;
//! the jump worker opens a `direct-tcpip` channel to the host's `HostName:Port`, makes a
//! `UnixStream::pair()`, keeps one end and hands the other to the host's worker, which runs its
//! own SSH session over it (host key checked under the host's own name, as OpenSSH does). From
//! then on the jump worker pumps bytes between each channel and its socket end, from the same
//! loop that services its own session:
//!
//! - many hosts behind one bastion share one bastion connection (the pool keeps one jump worker
//!   per route);
//! - the bastion has its own heartbeat: when no tunnel has brought data for the heartbeat
//!   interval, or the server sends something while there is no tunnel to read it, it runs a
//!   `true` no-op on a new channel, so an idle bastion is kept alive and a dead one noticed;
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

use std::collections::{HashMap, VecDeque};
use std::io::{Read as _, Write as _};
use std::net::Shutdown;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode, Session};

use super::config::{self, HostConfig, HostError, Route, SshConfig};
use super::connect::{self, poll_fds, would_block, Connection};
use super::proxy_command;
use super::reconnect;
use super::worker::{Event, EventKind, HandshakeLimiter, WorkerSettings};
use super::SshError;
use crate::host::HostTarget;

/// More hops than this is taken for a loop in the configuration.
const MAX_HOPS: usize = 8;
/// Bytes buffered per tunnel and direction before reading from that side pauses.
const TUNNEL_BUFFER: usize = 256 * 1024;
/// Longest sleep of the pump loop with nothing to do (a safety net: every event that matters
/// wakes `poll` itself).
const MAX_SLEEP: Duration = Duration::from_millis(500);

// ------------------------------------------------------------------ configuration

/// The hops of a `ProxyJump` value (`a`, `a,b`, `user@host:port`, `ssh://user@host:port`);
/// `none` (or nothing) means no hop.
pub fn parse_spec(spec: &str) -> Result<Vec<HostTarget>, String> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|hop| {
            let hop = hop.trim();
            let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
            let hop = hop.strip_suffix('/').unwrap_or(hop);
            if hop.is_empty() {
                return Err(format!("empty jump host in `{spec}`"));
            }
            HostTarget::parse(hop).map_err(|e| format!("jump host list `{spec}`: {e}"))
        })
        .collect()
}

/// One jump host of a route, with its resolved ssh config.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The jump host as written (`bastion`, `ops@10.0.0.1:2222`).
    pub target: HostTarget,
    /// Its options from the ssh config (user and port from `target` applied).
    pub config: HostConfig,
}

/// What identifies a connection: user, address and port.
fn identity(cfg: &HostConfig) -> String {
    format!(
        "{}@{}",
        cfg.user,
        connect::host_port(&cfg.hostname, cfg.port)
    )
}

/// Why no route to a host can be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The route itself is wrong (a loop, too many hops, a malformed list): refused before
    /// anything connects.
    Invalid(String),
    /// A jump host's own configuration is refused (see [`HostError`]).
    Hop(HostError),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::Invalid(m) => f.write_str(m),
            RouteError::Hop(e) => e.fmt(f),
        }
    }
}

/// The jump hosts, outermost first, through which `dest` is reached (its resolved
/// [`Route::Jump`]: the config's ProxyJump, or `-J` / a recipe's `via`, which the resolution
/// already put first).
///
/// As with OpenSSH: in a chain `a,b` the host is reached through `b`, `b` through `a` (as
/// `ssh -J a b` reaches `b`: whatever `b`'s own ProxyJump or ProxyCommand say), and `a` as its
/// own config says (its own ProxyJump or ProxyCommand included).
pub fn route(ssh: &SshConfig, dest: &HostConfig) -> Result<Vec<Hop>, RouteError> {
    let Route::Jump(spec) = &dest.route else {
        return Ok(Vec::new());
    };
    let mut seen = vec![identity(dest)];
    chain(ssh, spec, &mut seen)
}

fn chain(ssh: &SshConfig, spec: &str, seen: &mut Vec<String>) -> Result<Vec<Hop>, RouteError> {
    let targets = parse_spec(spec).map_err(RouteError::Invalid)?;
    let mut hops: Vec<Hop> = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let before: Vec<&str> = targets[..i].iter().map(|t| t.name.as_str()).collect();
        let request = config::Request {
            name: target.name.clone(),
            alias: target.alias.clone(),
            user: target.user.clone(),
            port: target.port,
            proxy_jump: (i > 0).then(|| before.join(",")),
        };
        let config = ssh.resolve_request(&request).map_err(RouteError::Hop)?;
        let id = identity(&config);
        if seen.contains(&id) {
            return Err(RouteError::Invalid(format!(
                "ProxyJump loop: jump host `{}` ({id}) would be reached through itself \
                 (exclude it from the `Host` pattern that sets ProxyJump, e.g. `Host * !{}`)",
                target.name, target.alias
            )));
        }
        seen.push(id);
        if seen.len() > MAX_HOPS + 1 {
            return Err(RouteError::Invalid(format!(
                "more than {MAX_HOPS} jump hosts in a row (`{spec}`)"
            )));
        }
        if i == 0 {
            if let Route::Jump(outer) = &config.route {
                hops = chain(ssh, outer, seen)?;
            }
        }
        hops.push(Hop {
            target: target.clone(),
            config,
        });
    }
    Ok(hops)
}

// ------------------------------------------------------------------ the registry

/// The jump workers of a pool, one per route (a chain of hops), shared by every host behind
/// it.
pub struct Jumps {
    map: Mutex<HashMap<String, Arc<Jump>>>,
    settings: WorkerSettings,
    limiter: Arc<HandshakeLimiter>,
    events: Sender<Event>,
}

impl Jumps {
    /// No jump workers yet; they start on demand with these settings.
    pub fn new(
        settings: WorkerSettings,
        limiter: Arc<HandshakeLimiter>,
        events: Sender<Event>,
    ) -> Self {
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
            key.push_str(&identity(&hop.config));
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

// ------------------------------------------------------------------ the handle

/// A request for a tunnel to `host:port`.
struct Request {
    /// The host that will use the tunnel (for messages).
    for_host: Arc<str>,
    host: String,
    port: u16,
    /// After this, the requester has given up.
    deadline: Instant,
    reply: Sender<Result<UnixStream, SshError>>,
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
}

impl Jump {
    fn spawn(
        name: &str,
        config: HostConfig,
        parent: Option<Arc<Jump>>,
        settings: WorkerSettings,
        limiter: Arc<HandshakeLimiter>,
        events: Sender<Event>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let display: Arc<str> = Arc::from(format!("{name} (jump)"));
        let stop = Arc::new(AtomicBool::new(false));
        let budget = config.connect_timeout + parent.as_ref().map_or(Duration::ZERO, |p| p.budget);
        let lost_at = Arc::new(Mutex::new(None));
        let state = State {
            name: display.clone(),
            hop: name.to_string(),
            lost_at: lost_at.clone(),
            interval: settings.heartbeat,
            config,
            parent,
            settings,
            limiter,
            events,
            stop: stop.clone(),
            conn: None,
            pinned: None,
            down: None,
            tunnels: Vec::new(),
            closing: Vec::new(),
            queue: VecDeque::new(),
            op: Op::Idle,
            probe: false,
            last_alive: Instant::now(),
        };
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
        })
    }

    /// The jump host's display name (`bastion (jump)`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the jump host's connection died (closing every tunnel) after `since`: a host
    /// behind it that finds its session dead then knows its own server did not drop it.
    pub fn lost_since(&self, since: Instant) -> bool {
        self.lost_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at >= since)
    }

    fn error(&self, host: &str, reason: impl Into<String>) -> SshError {
        SshError::Jump {
            host: host.to_string(),
            jump: self.name.trim_end_matches(" (jump)").to_string(),
            reason: reason.into(),
        }
    }

    /// A byte stream to `host:port` as seen from the jump host (a `direct-tcpip` channel
    /// pumped by the jump worker), for `for_host`. Waits at most `timeout` plus the time the
    /// jump host itself may need to connect.
    pub fn open(
        &self,
        for_host: &str,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<UnixStream, SshError> {
        let (tx, rx) = mpsc::channel();
        let wait = timeout + self.budget;
        let request = Request {
            for_host: Arc::from(for_host),
            host: host.to_string(),
            port,
            deadline: Instant::now() + wait,
            reply: tx,
        };
        if self.requests.send(request).is_err() {
            return Err(self.error(for_host, "its worker thread has stopped"));
        }
        // A full wake socket already holds a pending wake-up.
        let _ = (&self.wake).write(&[1]);
        match rx.recv_timeout(wait + Duration::from_secs(1)) {
            Ok(result) => result,
            Err(_) => Err(self.error(
                for_host,
                format!(
                    "no connection to {} within {}",
                    connect::host_port(host, port),
                    crate::report::format_duration(wait)
                ),
            )),
        }
    }

    /// Connects `name` (options `cfg`) through this jump host: a tunnel to its `HostName` and
    /// `Port`, then the SSH handshake, host key check (under the host's own name, or against
    /// `pinned`) and authentication over it, bounded by `limiter` like any handshake.
    pub fn connect(
        &self,
        name: &str,
        cfg: &HostConfig,
        pinned: Option<&[u8]>,
        limiter: &HandshakeLimiter,
        warn: &mut dyn FnMut(String),
    ) -> Result<Connection, SshError> {
        // The tunnel is opened outside the limiter: a host holding a handshake slot while its
        // bastion waits for one would deadlock.
        let stream = self.open(name, &cfg.hostname, cfg.port, cfg.connect_timeout)?;
        let started = Instant::now();
        limiter.run(|| connect::connect_over(name, cfg, stream, started, pinned, warn))
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

/// Connects `name` through `via` (its jump host), else through its ProxyCommand, else
/// directly (TCP), the handshake bounded by `limiter`.
pub fn connect_route(
    via: Option<&Jump>,
    name: &str,
    cfg: &HostConfig,
    pinned: Option<&[u8]>,
    limiter: &HandshakeLimiter,
    warn: &mut dyn FnMut(String),
) -> Result<Connection, SshError> {
    match (via, &cfg.route) {
        (Some(jump), _) => jump.connect(name, cfg, pinned, limiter, warn),
        (None, Route::Command(command)) => {
            limiter.run(|| proxy_command::connect(name, cfg, command, pinned, warn))
        }
        (None, _) => limiter.run(|| connect::connect(name, cfg, pinned, warn)),
    }
}

// ------------------------------------------------------------------ the worker thread

/// One tunnel: a `direct-tcpip` channel and our end of the socket pair.
struct Tunnel {
    channel: Channel,
    sock: UnixStream,
    /// From the host's session, to send on the channel.
    to_chan: Vec<u8>,
    /// From the channel, to write to the host's session.
    to_sock: Vec<u8>,
    /// The host's side closed (or failed): flush `to_chan`, then close the channel.
    sock_done: bool,
    /// The far end sent EOF (or the channel failed): flush `to_sock`, then close.
    chan_done: bool,
    /// The socket can take no more bytes: `to_sock` is dropped.
    sock_dead: bool,
    /// The last channel write would block with room in the window: libssh2 may hold part of
    /// that packet, and nothing else can be sent on the session until the same write is
    /// repeated, so it is repeated even if the channel is otherwise done.
    write_pending: bool,
}

/// Whether the session itself failed (as opposed to one channel).
fn session_failed(session: &Session) -> bool {
    match ssh2::Error::last_session_error(session).map(|e| e.code()) {
        // Channel-level codes (-21 CHANNEL_FAILURE ... -27 CHANNEL_EOF_SENT), "would block"
        // and misuse leave the session usable.
        Some(ErrorCode::Session(code)) => !matches!(code, -27..=-21 | -37 | -39 | -34),
        _ => false,
    }
}

impl Tunnel {
    /// Host socket -> buffer.
    fn read_sock(&mut self, buf: &mut [u8]) -> bool {
        if self.sock_done || self.to_chan.len() >= TUNNEL_BUFFER {
            return false;
        }
        let room = (TUNNEL_BUFFER - self.to_chan.len()).min(buf.len());
        match (&self.sock).read(&mut buf[..room]) {
            Ok(0) => {
                self.sock_done = true;
                true
            }
            Ok(n) => {
                self.to_chan.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
            Err(_) => {
                self.sock_done = true;
                self.sock_dead = true;
                true
            }
        }
    }

    /// Buffer -> channel. A write that would block is retried on every round with the same
    /// leading bytes (libssh2 requires it). Err: the session failed.
    fn write_chan(&mut self, session: &Session) -> Result<bool, String> {
        let mut progress = false;
        while !self.to_chan.is_empty() && (!self.chan_done || self.write_pending) {
            match self.channel.write(&self.to_chan) {
                Ok(0) => {
                    self.write_pending = false;
                    break;
                }
                Ok(n) => {
                    self.write_pending = false;
                    self.to_chan.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.write_pending = self.channel.write_window().remaining > 0;
                    break;
                }
                Err(e) => {
                    self.write_pending = false;
                    if session_failed(session) {
                        return Err(format!("sending through a tunnel failed: {e}"));
                    }
                    self.chan_done = true;
                    self.to_chan.clear();
                    progress = true;
                }
            }
        }
        if self.chan_done && !self.write_pending {
            // The far end is gone: what the host still sends has nowhere to go.
            self.to_chan.clear();
        }
        Ok(progress)
    }

    /// Channel -> buffer. Ok(true) when something happened; `got` is set when data arrived.
    fn read_chan(
        &mut self,
        session: &Session,
        buf: &mut [u8],
        got: &mut bool,
    ) -> Result<bool, String> {
        let mut progress = false;
        while !self.chan_done && self.to_sock.len() < TUNNEL_BUFFER {
            let room = (TUNNEL_BUFFER - self.to_sock.len()).min(buf.len());
            match self.channel.read(&mut buf[..room]) {
                Ok(0) => {
                    if self.channel.eof() {
                        self.chan_done = true;
                        progress = true;
                    }
                    break;
                }
                Ok(n) => {
                    *got = true;
                    progress = true;
                    if !self.sock_dead {
                        self.to_sock.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if session_failed(session) {
                        return Err(format!("reading from a tunnel failed: {e}"));
                    }
                    self.chan_done = true;
                    progress = true;
                }
            }
        }
        Ok(progress)
    }

    /// Buffer -> host socket.
    fn write_sock(&mut self) -> bool {
        let mut progress = false;
        while !self.to_sock.is_empty() && !self.sock_dead {
            match (&self.sock).write(&self.to_sock) {
                Ok(0) => break,
                Ok(n) => {
                    self.to_sock.drain(..n);
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The host's session is gone: nothing more to deliver.
                    self.sock_dead = true;
                    self.sock_done = true;
                    self.to_sock.clear();
                    progress = true;
                }
            }
        }
        if self.sock_dead {
            self.to_sock.clear();
        }
        progress
    }

    /// Whether the tunnel is finished: one side closed and what it sent is delivered.
    fn finished(&self) -> bool {
        !self.write_pending
            && ((self.sock_done && self.to_chan.is_empty())
                || (self.chan_done && self.to_sock.is_empty()))
    }
}

/// The one channel open (or heartbeat) in progress on the jump session.
enum Op {
    Idle,
    /// Opening a tunnel; `replied` once the requester was told it took too long.
    Open {
        request: Request,
        replied: bool,
    },
    Heartbeat(Heartbeat),
}

/// The heartbeat's `true` exec as a non-blocking state machine (the jump session never
/// blocks: its tunnels keep flowing meanwhile).
struct Heartbeat {
    started: Instant,
    probe: bool,
    stage: Stage,
    channel: Option<Channel>,
}

#[derive(Clone, Copy)]
enum Stage {
    Open,
    Exec,
    Eof,
    Drain,
    Close,
}

impl Heartbeat {
    fn new(probe: bool) -> Self {
        Heartbeat {
            started: Instant::now(),
            probe,
            stage: Stage::Open,
            channel: None,
        }
    }

    /// Ok(Some(rtt)) when done, Ok(None) while pending, Err when the session failed.
    fn advance(
        &mut self,
        session: &Session,
        timeout: Duration,
    ) -> Result<Option<Duration>, String> {
        if self.started.elapsed() > timeout {
            return Err(format!(
                "no heartbeat answer within {}",
                crate::report::format_duration(timeout)
            ));
        }
        let pending = |e: &ssh2::Error| would_block(e);
        loop {
            match self.stage {
                Stage::Open => match session.channel_session() {
                    Ok(ch) => {
                        self.channel = Some(ch);
                        self.stage = Stage::Exec;
                    }
                    Err(e) if pending(&e) => return Ok(None),
                    Err(e) => return Err(format!("heartbeat: cannot open a channel: {e}")),
                },
                Stage::Exec | Stage::Eof | Stage::Drain | Stage::Close => {
                    let Some(ch) = self.channel.as_mut() else {
                        return Err("heartbeat: no channel".into());
                    };
                    match self.stage {
                        Stage::Exec => match ch.exec("true") {
                            Ok(()) => self.stage = Stage::Eof,
                            Err(e) if pending(&e) => return Ok(None),
                            Err(e) => return Err(format!("heartbeat: exec failed: {e}")),
                        },
                        Stage::Eof => match ch.send_eof() {
                            Ok(()) => self.stage = Stage::Drain,
                            Err(e) if pending(&e) => return Ok(None),
                            Err(e) => return Err(format!("heartbeat: {e}")),
                        },
                        Stage::Drain => {
                            let mut buf = [0u8; 256];
                            let mut open = 0;
                            for id in [0, 1] {
                                match ch.stream(id).read(&mut buf) {
                                    Ok(0) => {}
                                    Ok(_) => open += 1,
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                        open += 1
                                    }
                                    Err(e) => return Err(format!("heartbeat: {e}")),
                                }
                            }
                            if open == 0 && ch.eof() {
                                self.stage = Stage::Close;
                            } else {
                                return Ok(None);
                            }
                        }
                        Stage::Close => match ch.wait_close() {
                            Ok(()) => return Ok(Some(self.started.elapsed())),
                            Err(e) if pending(&e) => return Ok(None),
                            Err(e) => return Err(format!("heartbeat: {e}")),
                        },
                        Stage::Open => unreachable!("handled above"),
                    }
                }
            }
        }
    }
}

struct State {
    /// Display name for events (`bastion (jump)`).
    name: Arc<str>,
    /// The hop as written (`bastion`): what connection errors name.
    hop: String,
    /// Shared with the handle: when the session was last found dead.
    lost_at: Arc<Mutex<Option<Instant>>>,
    config: HostConfig,
    parent: Option<Arc<Jump>>,
    settings: WorkerSettings,
    /// The current heartbeat interval (shortened by `ServerAliveInterval` or by learning).
    interval: Option<Duration>,
    limiter: Arc<HandshakeLimiter>,
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    conn: Option<Connection>,
    /// The host key of the first connection: every reconnect must present it.
    pinned: Option<Vec<u8>>,
    /// Why there is no session (told to requesters).
    down: Option<SshError>,
    tunnels: Vec<Tunnel>,
    /// Channels being closed (retried until libssh2 is done with them).
    closing: Vec<Channel>,
    queue: VecDeque<Request>,
    op: Op,
    /// The server sent something while no tunnel was there to read it.
    probe: bool,
    /// Last moment the session was known to work (tunnel data or a heartbeat round trip).
    last_alive: Instant,
}

impl State {
    fn emit(&self, kind: EventKind) {
        // A missing reporter only means nobody is listening.
        let _ = self.events.send(Event {
            host: self.name.clone(),
            at: Instant::now(),
            kind,
        });
    }

    fn connect(&self, pinned: Option<&[u8]>) -> Result<Connection, SshError> {
        let conn = connect_route(
            self.parent.as_deref(),
            &self.hop,
            &self.config,
            pinned,
            &self.limiter,
            &mut |w| self.emit(EventKind::Warning(w)),
        )?;
        if let Some(iv) = self.interval {
            conn.arm_heartbeat(
                iv,
                self.config.server_alive_count_max,
                self.settings.heartbeat_timeout,
            );
        }
        Ok(conn)
    }

    fn run(mut self, requests: Receiver<Request>, wake: UnixStream) {
        if let (Some(ours), Some(server)) = (self.interval, self.config.server_alive_interval) {
            self.interval = Some(ours.min(server));
        }
        match self.connect(None) {
            Ok(conn) => {
                self.emit(EventKind::Connected {
                    setup: conn.setup_time,
                });
                self.pinned = Some(conn.host_key.clone());
                self.conn = Some(conn);
            }
            Err(error) => {
                self.emit(EventKind::ConnectFailed {
                    error: error.clone(),
                });
                self.down = Some(error);
            }
        }
        self.last_alive = Instant::now();
        let mut buf = vec![0u8; 32 * 1024];
        while !self.stop.load(Ordering::SeqCst) {
            drain(&wake);
            loop {
                match requests.try_recv() {
                    Ok(r) => self.queue.push_back(r),
                    Err(TryRecvError::Empty) => break,
                    // Every handle is gone: nobody will ask for anything again.
                    Err(TryRecvError::Disconnected) => {
                        self.stop.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
            self.expire();
            if self.conn.is_none() {
                if self.queue.is_empty() {
                    self.sleep(&wake);
                } else {
                    self.connect_on_demand();
                }
                continue;
            }
            match self.step(&mut buf) {
                Ok(true) => {}
                Ok(false) => self.sleep(&wake),
                Err(failure) => {
                    // Idle: nothing was in transit through the tunnels.
                    let idle = self
                        .tunnels
                        .iter()
                        .all(|t| t.to_chan.is_empty() && t.to_sock.is_empty());
                    self.lost(failure, idle);
                }
            }
        }
        self.tunnels.clear();
        self.closing.clear();
        if let Some(conn) = self.conn.take() {
            conn.session.set_blocking(true);
            conn.session.set_timeout(2000);
            let _ = conn.session.disconnect(None, "tether done", None);
        }
    }

    /// Answers requests whose requester has given up waiting.
    fn expire(&mut self) {
        let now = Instant::now();
        let name = self.name.clone();
        self.queue.retain(|r| {
            if now < r.deadline {
                return true;
            }
            let _ = r.reply.send(Err(jump_error(
                &name,
                &r.for_host,
                format!("no connection to {}:{} in time", r.host, r.port),
            )));
            false
        });
    }

    /// No session and someone needs one: one attempt (with the pinned key, if any), else
    /// every waiting requester is told why.
    fn connect_on_demand(&mut self) {
        let started = Instant::now();
        match self.connect(self.pinned.as_deref()) {
            Ok(conn) => {
                if self.pinned.is_none() {
                    self.emit(EventKind::Connected {
                        setup: conn.setup_time,
                    });
                    self.pinned = Some(conn.host_key.clone());
                } else {
                    self.emit(EventKind::Reconnected {
                        reason: "the jump host's connection was down; a host behind it needs it"
                            .into(),
                        while_idle: false,
                        took: started.elapsed(),
                    });
                }
                self.conn = Some(conn);
                self.down = None;
                self.last_alive = Instant::now();
            }
            Err(e) => {
                self.down = Some(e.clone());
                let reason = e.to_string();
                for r in self.queue.drain(..) {
                    let _ = r
                        .reply
                        .send(Err(jump_error(&self.name, &r.for_host, reason.clone())));
                }
            }
        }
    }

    /// One round of the pump. Ok(true) if anything moved; Err when the session failed.
    fn step(&mut self, buf: &mut [u8]) -> Result<bool, Failure> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(false);
        };
        let session = &conn.session;
        let mut progress = false;
        let mut got = false;
        // Host sockets -> buffers -> channels.
        for t in &mut self.tunnels {
            progress |= t.read_sock(buf);
        }
        for t in &mut self.tunnels {
            progress |= t.write_chan(session)?;
        }
        // The open or heartbeat in progress, before and after channels -> buffers (the reads
        // above and the channel reads may have queued packets it waits for).
        for pass in 0..2 {
            let (p, alive) = advance_op(
                &mut self.op,
                session,
                &mut self.tunnels,
                &mut self.closing,
                &self.name,
                self.settings.heartbeat_timeout,
            )?;
            progress |= p;
            if let Some(rtt) = alive {
                self.last_alive = Instant::now();
                self.emit_heartbeat(rtt);
            }
            if pass == 0 {
                for t in &mut self.tunnels {
                    progress |= t.read_chan(session, buf, &mut got)?;
                }
            }
        }
        for t in &mut self.tunnels {
            progress |= t.write_sock();
        }
        if got {
            self.last_alive = Instant::now();
        }
        // Finished tunnels: close their channels (retried until done) and their sockets.
        let mut i = 0;
        while i < self.tunnels.len() {
            if self.tunnels[i].finished() {
                let t = self.tunnels.swap_remove(i);
                let _ = t.sock.shutdown(Shutdown::Both);
                self.closing.push(t.channel);
                progress = true;
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.closing.len() {
            match self.closing[i].close() {
                Err(e) if would_block(&e) => i += 1,
                Err(_) if session_failed(session) => {
                    return Err(Failure::from("closing a tunnel failed".to_string()));
                }
                _ => {
                    // Closed (or refused because the far end is gone): libssh2 is done.
                    drop(self.closing.swap_remove(i));
                    progress = true;
                }
            }
        }
        // Start the next channel open: a waiting tunnel first, else a due heartbeat.
        if matches!(self.op, Op::Idle) {
            if let Some(request) = self.queue.pop_front() {
                self.op = Op::Open {
                    request,
                    replied: false,
                };
                progress = true;
            } else if self.probe || self.heartbeat_due() {
                self.op = Op::Heartbeat(Heartbeat::new(self.probe));
                self.probe = false;
                progress = true;
            }
        }
        Ok(progress)
    }

    fn emit_heartbeat(&self, (rtt, probe): (Duration, bool)) {
        self.emit(EventKind::Heartbeat { rtt, probe });
    }

    fn heartbeat_due(&self) -> bool {
        self.interval
            .is_some_and(|iv| self.last_alive.elapsed() >= iv)
    }

    /// Waits until a socket needs attention, a request arrives or a timer is due.
    fn sleep(&mut self, wake: &UnixStream) {
        let mut timeout = MAX_SLEEP;
        if self.conn.is_none() {
            timeout = Duration::from_secs(3600);
        }
        if let (Some(iv), Op::Idle, Some(_)) = (self.interval, &self.op, &self.conn) {
            timeout = timeout.min((self.last_alive + iv).saturating_duration_since(Instant::now()));
        }
        for r in &self.queue {
            timeout = timeout.min(r.deadline.saturating_duration_since(Instant::now()));
        }
        let mut fds = vec![libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let session_index = fds.len();
        if let Some(conn) = &self.conn {
            let dirs = conn.session.block_directions();
            // Read the session only when someone can take what arrives: a tunnel with room,
            // the open or heartbeat in progress, or the heartbeat itself when there is no
            // tunnel (a server probe). With every tunnel full, the host sockets wake us.
            let reader = self.tunnels.is_empty()
                || !matches!(self.op, Op::Idle)
                || self
                    .tunnels
                    .iter()
                    .any(|t| !t.chan_done && t.to_sock.len() < TUNNEL_BUFFER)
                || !self.closing.is_empty();
            let mut events = connect::poll_events(dirs);
            if reader {
                events |= libc::POLLIN;
            }
            fds.push(libc::pollfd {
                fd: conn.fd(),
                events,
                revents: 0,
            });
        }
        for t in &self.tunnels {
            let mut events = 0;
            if !t.sock_done && t.to_chan.len() < TUNNEL_BUFFER {
                events |= libc::POLLIN;
            }
            if !t.to_sock.is_empty() && !t.sock_dead {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: t.sock.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        if timeout.is_zero() {
            return;
        }
        if let Some(conn) = &self.conn {
            // As for every session: acknowledge the bastion's next segment at once (see
            // `connect::quick_ack`), or each round trip through a tunnel waits ~40 ms.
            connect::quick_ack(conn.fd());
        }
        if poll_fds(&mut fds, timeout).is_err() {
            return;
        }
        // (With the heartbeat off, --no-keepalive, probes are left unanswered as for hosts.)
        if self.conn.is_some()
            && self.interval.is_some()
            && self.tunnels.is_empty()
            && matches!(self.op, Op::Idle)
            && fds
                .get(session_index)
                .is_some_and(|f| f.revents & libc::POLLIN != 0)
        {
            self.probe = true;
        }
    }

    /// The session died: close every tunnel at once (the hosts behind notice and ask again),
    /// then reconnect with backoff and the pinned key.
    fn lost(&mut self, failure: Failure, idle: bool) {
        let Failure { reason, heartbeat } = failure;
        if heartbeat {
            // A heartbeat found the session dead: the server (or something on the way) drops
            // sessions idle that long.
            self.learn(self.last_alive.elapsed());
        }
        // Recorded before the tunnels close: their hosts look at it when they notice.
        *self.lost_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.tunnels.clear();
        self.closing.clear();
        if let Op::Open { request, replied } = std::mem::replace(&mut self.op, Op::Idle) {
            if !replied {
                let _ = request.reply.send(Err(jump_error(
                    &self.name,
                    &request.for_host,
                    format!("the jump host's connection was lost ({reason})"),
                )));
            }
        }
        self.op = Op::Idle;
        self.conn = None;
        let reason = if idle {
            format!("connection lost while idle ({reason})")
        } else {
            format!("connection lost while carrying tunnels ({reason})")
        };
        let pinned = self.pinned.clone();
        let outcome =
            reconnect::with_backoff(&self.name, &reason, &self.settings, &self.stop, || {
                self.connect(pinned.as_deref())
            });
        match outcome {
            reconnect::Outcome::Connected(conn, took) => {
                self.conn = Some(conn);
                self.down = None;
                self.last_alive = Instant::now();
                self.emit(EventKind::Reconnected {
                    reason,
                    while_idle: idle,
                    took,
                });
            }
            reconnect::Outcome::Stopped => {}
            reconnect::Outcome::Failed(error) => {
                self.emit(EventKind::Unreachable {
                    error: error.clone(),
                });
                self.down = Some(error);
            }
        }
    }

    /// An idle session died after `idle`: beat faster, as host workers do.
    fn learn(&mut self, idle: Duration) {
        let Some(current) = self.interval else { return };
        if let Some(interval) = reconnect::learned_interval(current, idle) {
            self.interval = Some(interval);
            self.emit(EventKind::Learned {
                died_after: idle,
                interval,
            });
        }
    }
}

/// Why the jump session was found dead.
struct Failure {
    reason: String,
    /// Found by the heartbeat (the session had been idle), not by tunnel traffic.
    heartbeat: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure {
            reason,
            heartbeat: false,
        }
    }
}

fn jump_error(name: &str, host: &str, reason: impl Into<String>) -> SshError {
    SshError::Jump {
        host: host.to_string(),
        jump: name.trim_end_matches(" (jump)").to_string(),
        reason: reason.into(),
    }
}

/// Advances the channel open or heartbeat in progress. Returns whether anything moved and,
/// when a heartbeat completed, its round trip and whether a probe triggered it.
fn advance_op(
    op: &mut Op,
    session: &Session,
    tunnels: &mut Vec<Tunnel>,
    closing: &mut Vec<Channel>,
    name: &str,
    heartbeat_timeout: Duration,
) -> Result<(bool, Option<(Duration, bool)>), Failure> {
    match op {
        Op::Idle => Ok((false, None)),
        Op::Heartbeat(hb) => {
            match hb
                .advance(session, heartbeat_timeout)
                .map_err(|reason| Failure {
                    reason,
                    heartbeat: true,
                })? {
                Some(rtt) => {
                    let probe = hb.probe;
                    *op = Op::Idle;
                    Ok((true, Some((rtt, probe))))
                }
                None => Ok((false, None)),
            }
        }
        Op::Open { request, replied } => {
            match session.channel_direct_tcpip(&request.host, request.port, None) {
                Ok(channel) => {
                    let replied = *replied;
                    let Op::Open { request, .. } = std::mem::replace(op, Op::Idle) else {
                        unreachable!("matched above");
                    };
                    if replied {
                        // The requester gave up meanwhile: nobody will use this channel.
                        closing.push(channel);
                        return Ok((true, None));
                    }
                    let pair = UnixStream::pair().and_then(|(ours, theirs)| {
                        ours.set_nonblocking(true)?;
                        Ok((ours, theirs))
                    });
                    match pair {
                        Ok((ours, theirs)) => {
                            if request.reply.send(Ok(theirs)).is_ok() {
                                tunnels.push(Tunnel {
                                    channel,
                                    sock: ours,
                                    to_chan: Vec::new(),
                                    to_sock: Vec::new(),
                                    sock_done: false,
                                    chan_done: false,
                                    sock_dead: false,
                                    write_pending: false,
                                });
                            } else {
                                closing.push(channel);
                            }
                        }
                        Err(e) => {
                            let _ = request.reply.send(Err(jump_error(
                                name,
                                &request.for_host,
                                format!("cannot make a socket pair: {e}"),
                            )));
                            closing.push(channel);
                        }
                    }
                    Ok((true, None))
                }
                Err(e) if would_block(&e) => {
                    if !*replied && Instant::now() >= request.deadline {
                        *replied = true;
                        let _ = request.reply.send(Err(jump_error(
                            name,
                            &request.for_host,
                            format!(
                                "the jump host did not open a connection to {}:{} in time",
                                request.host, request.port
                            ),
                        )));
                    }
                    Ok((false, None))
                }
                Err(e) => {
                    let failed = session_failed(session);
                    if !*replied {
                        let _ = request.reply.send(Err(jump_error(
                            name,
                            &request.for_host,
                            format!(
                                "the jump host could not open a connection to {}:{}: {}",
                                request.host,
                                request.port,
                                e.message()
                            ),
                        )));
                    }
                    *op = Op::Idle;
                    if failed {
                        return Err(format!("opening a tunnel failed: {e}").into());
                    }
                    Ok((true, None))
                }
            }
        }
    }
}

fn drain(wake: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> SshConfig {
        SshConfig::parse_str(text, Path::new("/tmp/cfg")).unwrap()
    }

    fn names(hops: &[Hop]) -> Vec<String> {
        hops.iter().map(|h| identity(&h.config)).collect()
    }

    #[test]
    fn specs() {
        assert!(parse_spec("none").unwrap().is_empty());
        assert!(parse_spec("").unwrap().is_empty());
        let hops = parse_spec("a, ops@b:2222,ssh://c@d:22").unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(
            (
                hops[1].user.as_deref(),
                hops[1].alias.as_str(),
                hops[1].port
            ),
            (Some("ops"), "b", Some(2222))
        );
        assert_eq!(
            (hops[2].user.as_deref(), hops[2].alias.as_str()),
            (Some("c"), "d")
        );
        assert!(parse_spec("a,,b").is_err());
        assert!(parse_spec("a:0").is_err());
    }

    #[test]
    fn routes_follow_openssh() {
        let cfg = config(
            "Host bastion\n  HostName 10.0.0.1\n  User ops\n  ProxyJump outer\n\
             Host outer\n  HostName 10.0.0.9\n  User edge\n\
             Host web*\n  ProxyJump bastion\n  User deploy\n\
             Host db\n  ProxyJump mid,bastion\n\
             Host mid\n  HostName 10.0.0.5\n  User m\n  ProxyJump nowhere\n",
        );
        let web = cfg.resolve("web1", None, None).unwrap();
        // bastion is reached as its own config says: through outer.
        assert_eq!(
            names(&route(&cfg, &web).unwrap()),
            ["edge@10.0.0.9:22", "ops@10.0.0.1:22"]
        );
        // `none` and overrides (-J, a recipe's via) come first, as on ssh's command line.
        let target = HostTarget::parse("web1").unwrap();
        let direct = cfg.resolve_target(&target, Some("none")).unwrap();
        assert!(route(&cfg, &direct).unwrap().is_empty());
        let over = cfg.resolve_target(&target, Some("x@1.2.3.4:2200")).unwrap();
        assert_eq!(names(&route(&cfg, &over).unwrap()), ["x@1.2.3.4:2200"]);
        // In a chain, the second hop goes through the first whatever its own config says;
        // the first follows its own config (mid -> nowhere).
        let db = cfg.resolve("db", None, None).unwrap();
        let hops = route(&cfg, &db).unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].target.name, "nowhere");
        assert_eq!(hops[1].target.name, "mid");
        assert_eq!(hops[2].target.name, "bastion");
    }

    #[test]
    fn loops_are_refused() {
        let cfg = config("Host *\n  ProxyJump bastion\n  User u\n");
        let bastion = cfg.resolve("bastion", None, None).unwrap();
        let err = route(&cfg, &bastion).unwrap_err().to_string();
        assert!(err.contains("ProxyJump loop"), "{err}");
        assert!(err.contains("!bastion"), "{err}");
        let web = cfg.resolve("web", None, None).unwrap();
        assert!(route(&cfg, &web).unwrap_err().to_string().contains("loop"));
        let ok = config("Host * !bastion\n  ProxyJump bastion\n");
        let web = ok.resolve("web", None, None).unwrap();
        assert_eq!(route(&ok, &web).unwrap().len(), 1);
    }
}
