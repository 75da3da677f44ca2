//! The jump worker thread: the one thread that owns a jump host's session. It pumps every
//! tunnel (see `tunnel.rs`), opens new ones on request, runs the heartbeat when the session is
//! idle (`heartbeat.rs`), and when the session dies closes every tunnel at once and
//! reconnects (see [`Owner`]).

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::Shutdown;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::{Channel, Session};

use super::heartbeat::Heartbeat;
use super::tunnel::{session_failed, Tunnel, TUNNEL_BUFFER};
use super::TunnelLimit;
use crate::command::quote;
use crate::event::{Beat, EventKind, LimitFrom};
use crate::failure::Kind;
use crate::ssh::connect::{self, poll_fds, would_block, Connection};
use crate::ssh::heartbeat::Limits;
use crate::ssh::idle_death::{self, IdleDeath};
use crate::ssh::owner::Owner;
use crate::ssh::reconnect;
use crate::ssh::SshError;
use crate::sshd::probe::{config_from_cmdline, parse_discovery, DISCOVER, DUMP};
use crate::sshd::settings::{
    needs_open_channel, tunnel_channel_timeout, unused_connection_timeout,
};

/// A request for a tunnel to `host:port`.
pub struct Request {
    /// The host that will use the tunnel (for messages).
    pub for_host: Arc<str>,
    pub host: String,
    pub port: u16,
    /// After this, the requester has given up.
    pub deadline: Instant,
    pub reply: Sender<Result<UnixStream, SshError>>,
}

/// Longest sleep of the pump loop with nothing to do (a safety net: every event that matters
/// wakes `poll` itself).
const MAX_SLEEP: Duration = Duration::from_millis(500);

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

/// The jump worker thread's state.
pub struct State {
    /// Connecting, the heartbeat interval, reconnecting (the hop's `ProxyJump` parent
    /// included).
    owner: Owner,
    /// Shared with the handle: when the session was last found dead.
    lost_at: Arc<Mutex<Option<Instant>>>,
    conn: Option<Connection>,
    /// Why there is no session (told to requesters).
    down: Option<SshError>,
    tunnels: Vec<Tunnel>,
    /// Channels being closed (retried until libssh2 is done with them).
    closing: Vec<Channel>,
    queue: VecDeque<Request>,
    op: Op,
    /// The server sent something while no tunnel was there to read it.
    probe: bool,
    /// What the socket showed when that woke the worker (see [`idle_death::peek`]): libssh2
    /// reads a reset as it reads an end.
    seen: Option<IdleDeath>,
    /// Last moment the session was known to work (tunnel data or a heartbeat round trip).
    last_alive: Instant,
    /// Where reading the jump host's sshd config stands (once per worker).
    reading: Reading,
    /// Shared with the handle and the hosts behind: the tunnel limit read there.
    tunnel_limit: Arc<TunnelLimit>,
}

/// Reading the jump host's sshd config, as a target's first heartbeat reads its own (see
/// `heartbeat::read_limits`): what it sets for idle tunnels (`ChannelTimeout`) and for an
/// idle connection (`UnusedConnectionTimeout`).
enum Reading {
    /// Not started: at the first moment with nothing else to do.
    Due,
    /// Finding which sshd serves us (`DISCOVER`).
    Discover,
    /// Its config, to read next (the dump script) or being read.
    Dump {
        cmdline: String,
        script: Option<String>,
    },
    /// Read, or not readable.
    Done,
}

impl State {
    /// A jump worker that will own `owner`'s session; what it reads of the jump host's tunnel
    /// limit goes to `tunnel_limit`.
    pub fn new(
        owner: Owner,
        lost_at: Arc<Mutex<Option<Instant>>>,
        tunnel_limit: Arc<TunnelLimit>,
    ) -> Self {
        let reading = match owner.beat_every() {
            Some(_) => Reading::Due,
            // Without a heartbeat (--no-keepalive) nothing would use what is read.
            None => {
                tunnel_limit.settle(None);
                Reading::Done
            }
        };
        State {
            reading,
            tunnel_limit,
            owner,
            lost_at,
            conn: None,
            down: None,
            tunnels: Vec::new(),
            closing: Vec::new(),
            queue: VecDeque::new(),
            op: Op::Idle,
            probe: false,
            seen: None,
            last_alive: Instant::now(),
        }
    }

    fn emit(&self, kind: EventKind) {
        self.owner.emit(kind);
    }

    /// The thread's loop: connect, then pump tunnels and answer requests until stopped.
    pub fn run(mut self, requests: Receiver<Request>, wake: UnixStream) {
        match self.owner.open() {
            Ok(conn) => self.conn = Some(conn),
            Err(error) => self.down = Some(error),
        }
        self.last_alive = Instant::now();
        let mut buf = vec![0u8; 32 * 1024];
        while !self.owner.stop.load(Ordering::SeqCst) {
            drain(&wake);
            loop {
                match requests.try_recv() {
                    Ok(r) => self.queue.push_back(r),
                    Err(TryRecvError::Empty) => break,
                    // Every handle is gone: nobody will ask for anything again.
                    Err(TryRecvError::Disconnected) => {
                        self.owner.stop.store(true, Ordering::SeqCst);
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
            conn.disconnect();
        }
    }

    /// Answers requests whose requester has given up waiting.
    fn expire(&mut self) {
        let now = Instant::now();
        let name = self.owner.name.clone();
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
        let reason = "the jump host's connection was down; a host behind it needs it";
        match self.owner.attempt(reason, false) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.down = None;
                self.last_alive = Instant::now();
            }
            Err(e) => {
                for r in self.queue.drain(..) {
                    let _ =
                        r.reply
                            .send(Err(jump_connect_error(&self.owner.name, &r.for_host, &e)));
                }
                self.down = Some(e);
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
        // What a config-reading heartbeat printed, taken once the session is let go of.
        let mut read = None;
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
                &self.owner.name,
                self.owner.settings.heartbeat_timeout,
            )?;
            progress |= p;
            if let Some((rtt, hb)) = alive {
                self.last_alive = Instant::now();
                self.emit(EventKind::Heartbeat {
                    rtt,
                    probe: hb.probe,
                    beat: if hb.reads() {
                        Beat::Limits
                    } else {
                        Beat::Command
                    },
                });
                if hb.reads() {
                    read = Some(hb.output());
                }
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
        if let Some(output) = read {
            self.read(output);
        }
        // Start the next channel open: a waiting tunnel first, else a due heartbeat.
        if matches!(self.op, Op::Idle) {
            if let Some(request) = self.queue.pop_front() {
                self.op = Op::Open {
                    request,
                    replied: false,
                };
                progress = true;
            } else if let Some(script) = self.next_read() {
                // Also a heartbeat: it proves the round trip, and answers a probe.
                self.op = Op::Heartbeat(Heartbeat::reading(script));
                self.probe = false;
                progress = true;
            } else if self.probe || self.heartbeat_due() {
                self.op = Op::Heartbeat(Heartbeat::new(self.probe));
                self.probe = false;
                progress = true;
            }
        }
        Ok(progress)
    }

    /// The script the config reading runs next, if one is due.
    fn next_read(&mut self) -> Option<String> {
        match &mut self.reading {
            Reading::Due => {
                self.reading = Reading::Discover;
                Some(DISCOVER.to_string())
            }
            Reading::Dump { script, .. } => script.take(),
            Reading::Discover | Reading::Done => None,
        }
    }

    /// Takes what a config-reading script printed (`None`: it failed) a step further; once
    /// the config is read, publishes the tunnel limit for the hosts behind, and meets an
    /// `UnusedConnectionTimeout` of the jump host's own.
    fn read(&mut self, output: Option<String>) {
        self.reading = match (std::mem::replace(&mut self.reading, Reading::Done), output) {
            (Reading::Discover, Some(found)) => {
                let d = parse_discovery(&found);
                match d.pid {
                    // Not knowing which sshd serves us, its config cannot be known either.
                    None => {
                        self.tunnel_limit.settle(None);
                        Reading::Done
                    }
                    Some(_) => {
                        let config = config_from_cmdline(&d.cmdline)
                            .unwrap_or_else(|| "/etc/ssh/sshd_config".into());
                        Reading::Dump {
                            script: Some(format!("{DUMP}dump {} 0", quote(&config))),
                            cmdline: d.cmdline,
                        }
                    }
                }
            }
            (Reading::Dump { cmdline, .. }, Some(dump)) => {
                if let Some(conn) = self.conn.as_ref() {
                    let limits = Limits {
                        beat: Beat::Command,
                        read: needs_open_channel(&cmdline, &dump).is_some(),
                        unused_connection_timeout: unused_connection_timeout(&cmdline, &dump),
                    };
                    self.owner.limits_read(&limits, conn);
                }
                let limit = tunnel_channel_timeout(&cmdline, &dump);
                self.tunnel_limit.settle(limit);
                if let Some(limit) = limit {
                    self.emit(EventKind::IdleLimit {
                        limit,
                        from: LimitFrom::TunnelTimeout,
                        interval: (limit / 3).max(reconnect::SHORTEST_INTERVAL),
                    });
                }
                Reading::Done
            }
            _ => {
                self.tunnel_limit.settle(None);
                Reading::Done
            }
        };
    }

    fn heartbeat_due(&self) -> bool {
        self.owner
            .beat_every()
            .is_some_and(|iv| self.last_alive.elapsed() >= iv)
    }

    /// Waits until a socket needs attention, a request arrives or a timer is due.
    fn sleep(&mut self, wake: &UnixStream) {
        let mut timeout = MAX_SLEEP;
        if self.conn.is_none() {
            timeout = Duration::from_secs(3600);
        }
        if let (Some(iv), Op::Idle, Some(_)) = (self.owner.beat_every(), &self.op, &self.conn) {
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
            && self.owner.interval.is_some()
            && self.tunnels.is_empty()
            && matches!(self.op, Op::Idle)
            && fds
                .get(session_index)
                .is_some_and(|f| f.revents & libc::POLLIN != 0)
        {
            self.probe = true;
            self.seen = self.conn.as_ref().and_then(|c| idle_death::peek(c.fd()));
        }
    }

    /// The session died: close every tunnel at once (the hosts behind notice and ask again),
    /// then reconnect with backoff and the pinned key.
    fn lost(&mut self, failure: Failure, idle: bool) {
        let Failure { reason, heartbeat } = failure;
        // What the socket showed when the server's traffic woke the worker, else now: a
        // heartbeat that timed out leaves it open.
        let death = self
            .seen
            .take()
            .or_else(|| self.conn.as_ref().and_then(|c| idle_death::peek(c.fd())));
        if heartbeat && death.is_some_and(IdleDeath::may_be_idle_limit) {
            // A heartbeat found the session closed by the server's end: an idle limit, or
            // sshd killed (see `Owner::learn`). Not after a reset or a silence: see
            // `idle_death`.
            self.owner.learn(self.last_alive.elapsed());
        }
        let reason = death
            .and_then(IdleDeath::words)
            .map_or(reason, String::from);
        // Recorded before the tunnels close: their hosts look at it when they notice.
        *self.lost_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.tunnels.clear();
        self.closing.clear();
        if let Op::Open { request, replied } = std::mem::replace(&mut self.op, Op::Idle) {
            if !replied {
                let _ = request.reply.send(Err(jump_error(
                    &self.owner.name,
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
        match self.owner.reconnect(&reason, idle) {
            reconnect::Outcome::Connected(conn, _) => {
                self.conn = Some(conn);
                self.down = None;
                self.last_alive = Instant::now();
            }
            reconnect::Outcome::Stopped => {}
            reconnect::Outcome::Failed(error) => self.down = Some(error),
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
        kind: Kind::Unreachable,
    }
}

/// The jump host `name` could not be connected (`error`), for `host` behind it: a refused
/// host key or configuration of the jump host keeps its kind, which a recipe branches on
/// (a key refused at the bastion may be an interception as much as at the host).
fn jump_connect_error(name: &str, host: &str, error: &SshError) -> SshError {
    let kind = match error.kind() {
        kind @ (Kind::HostKeyRefused | Kind::Config) => kind,
        _ => Kind::Unreachable,
    };
    SshError::Jump {
        host: host.to_string(),
        jump: name.trim_end_matches(" (jump)").to_string(),
        reason: error.to_string(),
        kind,
    }
}

/// Advances the channel open or heartbeat in progress. Returns whether anything moved and,
/// when a heartbeat completed, its round trip and the heartbeat.
fn advance_op(
    op: &mut Op,
    session: &Session,
    tunnels: &mut Vec<Tunnel>,
    closing: &mut Vec<Channel>,
    name: &str,
    heartbeat_timeout: Duration,
) -> Result<(bool, Option<(Duration, Heartbeat)>), Failure> {
    match op {
        Op::Idle => Ok((false, None)),
        Op::Heartbeat(hb) => {
            match hb
                .advance(session, heartbeat_timeout)
                .map_err(|reason| Failure {
                    reason,
                    heartbeat: true,
                })? {
                Some(rtt) => match std::mem::replace(op, Op::Idle) {
                    Op::Heartbeat(done) => Ok((true, Some((rtt, done)))),
                    _ => unreachable!("matched above"),
                },
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
