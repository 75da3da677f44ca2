//! The jump worker thread: the one thread that owns a jump host's sessions. It pumps every
//! tunnel (see `tunnel.rs`), opens new ones on request, runs the heartbeat when the session is
//! idle (`heartbeat.rs`), and when the session dies closes every tunnel at once and
//! reconnects (see [`Owner`]). libssh2 opens one channel at a time on a session: while a
//! tunnel waits for the jump host's answer (its sshd still connecting to a host that drops
//! packets, for minutes), what is asked for meanwhile goes over a second connection (see
//! [`Lane`], `lane.rs`).

use std::collections::VecDeque;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::heartbeat::Heartbeat;
use super::lane::{jump_connect_error, jump_error, Failure, Lane, Op, Request};
use super::tunnel_limit::TunnelLimit;
use crate::command::quote;
use crate::event::{Beat, EventKind, LimitFrom};
use crate::ssh::connection;
use crate::ssh::heartbeat::Limits;
use crate::ssh::idle_death::{self, IdleDeath};
use crate::ssh::owner::Owner;
use crate::ssh::poll::poll_fds;
use crate::ssh::reconnect;
use crate::ssh::SshError;
use crate::sshd::probe::{config_from_cmdline, discover, dump, parse_discovery};
use crate::sshd::settings::{
    needs_open_channel, tunnel_channel_timeout, unused_connection_timeout,
    unused_connection_timeout_in_match,
};

/// Longest sleep of the pump loop with nothing to do (a safety net: every event that matters
/// wakes `poll` itself).
const MAX_SLEEP: Duration = Duration::from_millis(500);

/// The most connections kept besides the current one for tunnels that were waiting when it
/// was replaced (see [`State::second_connection`]).
const MAX_RETIRED: usize = 4;

/// After a second connection could not be made, how long before another is tried.
const SECOND_RETRY: Duration = Duration::from_secs(5);

/// The jump worker thread's state.
pub struct State {
    /// Connecting, the heartbeat interval, reconnecting (the hop's `ProxyJump` parent
    /// included).
    owner: Owner,
    /// Shared with the handle: when the session was last found dead.
    lost_at: Arc<Mutex<Option<Instant>>>,
    /// Shared with the handle: whether there is a session (`lane`).
    connected: Arc<AtomicBool>,
    /// The current connection: new tunnels and the heartbeat go over it.
    lane: Option<Lane>,
    /// Connections replaced while a tunnel waited on them (see
    /// [`State::second_connection`]), kept until their tunnels end.
    retired: Vec<Lane>,
    /// When a second connection last could not be made.
    second_failed: Option<Instant>,
    /// Why there is no session, and when the attempt that found it ended: a request made
    /// before then waited on that attempt, and is told its failure (see [`State::answer_down`]).
    down: Option<(SshError, Instant)>,
    queue: VecDeque<Request>,
    /// The server sent something while no tunnel was there to read it.
    probe: bool,
    /// What the socket showed when that woke the worker (see [`idle_death::peek`]): libssh2
    /// reads a reset as it reads an end.
    seen: Option<IdleDeath>,
    /// Last moment the session was known to work (tunnel data or a heartbeat round trip).
    last_alive: Instant,
    /// Where reading the jump host's sshd config stands (once per worker).
    reading: Reading,
    /// The jump host's sshd config was read: an idle session it closes is not its limit.
    config_read: bool,
    /// Shared with the handle and the hosts behind: the tunnel limit read there.
    tunnel_limit: Arc<TunnelLimit>,
}

/// Reading the jump host's sshd config, as a target's first heartbeat reads its own (see
/// `heartbeat::read_limits`): what it sets for idle tunnels (`ChannelTimeout`) and for an
/// idle connection (`UnusedConnectionTimeout`).
enum Reading {
    /// Not started: at the first moment with nothing else to do.
    Due,
    /// Finding which sshd serves us (`probe::discover`).
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
        connected: Arc<AtomicBool>,
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
            config_read: false,
            tunnel_limit,
            owner,
            lost_at,
            connected,
            lane: None,
            retired: Vec::new(),
            second_failed: None,
            down: None,
            queue: VecDeque::new(),
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
            Ok(conn) => {
                self.lane = Some(Lane::new(conn));
                self.connected.store(true, Ordering::SeqCst);
            }
            Err(error) => self.down = Some((error, Instant::now())),
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
            // A host it carries found it acknowledging nothing: no tunnel goes over it now.
            if self
                .lane
                .as_ref()
                .is_some_and(|l| l.owned.is_some() && l.socket.hung())
            {
                self.lost(Failure::from(
                    "its TCP connection acknowledged nothing for 2 s".to_string(),
                ));
            }
            let retired = self.pump_retired(&mut buf);
            if self.lane.is_none() {
                self.answer_down();
                if !self.queue.is_empty() {
                    self.connect_on_demand();
                } else if !retired {
                    self.sleep(&wake);
                }
                continue;
            }
            match self.step(&mut buf) {
                Ok(true) => {}
                Ok(false) if retired => {}
                Ok(false) => self.sleep(&wake),
                Err(failure) => self.lost(failure),
            }
        }
        for lane in self.retired.drain(..).chain(self.lane.take()) {
            lane.close();
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

    /// Tells the requests made before the last attempt to connect failed that it did: they
    /// waited on it, as `ssh -J` waits on its one connection to the jump host (stop 55 tester
    /// t88: a host behind a blackholed middle hop waited for two attempts, 4.1 s for
    /// `ConnectTimeout 2`, where ssh gives up after 2.0 s). Requests made since get an attempt
    /// of their own.
    fn answer_down(&mut self) {
        let Some((error, at)) = &self.down else {
            return;
        };
        let name = &self.owner.name;
        self.queue.retain(|r| {
            if r.asked > *at {
                return true;
            }
            let _ = r
                .reply
                .send(Err(jump_connect_error(name, &r.for_host, error)));
            false
        });
    }

    /// No session and someone needs one: one attempt (with the pinned key, if any), else
    /// every waiting requester is told why.
    fn connect_on_demand(&mut self) {
        let reason = "the jump host's connection was down; a host behind it needs it";
        match self.owner.attempt(reason, false) {
            Ok(conn) => {
                self.lane = Some(Lane::new(conn));
                self.connected.store(true, Ordering::SeqCst);
                self.down = None;
                self.last_alive = Instant::now();
            }
            Err(e) => {
                for r in self.queue.drain(..) {
                    let _ =
                        r.reply
                            .send(Err(jump_connect_error(&self.owner.name, &r.for_host, &e)));
                }
                self.down = Some((e, Instant::now()));
            }
        }
    }

    /// One round of the current connection's pump, then the next channel open it is to
    /// make. Ok(true) if anything moved; Err when the session failed.
    fn step(&mut self, buf: &mut [u8]) -> Result<bool, Failure> {
        let Some(lane) = self.lane.as_mut() else {
            return Ok(false);
        };
        let pumped = lane.pump(buf, &self.owner.name, self.owner.settings.heartbeat_timeout)?;
        let mut progress = pumped.progress;
        if pumped.got {
            self.last_alive = Instant::now();
        }
        if let Some((rtt, hb)) = pumped.beat {
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
                self.read(hb.output());
            }
        }
        progress |= self.next_op();
        Ok(progress)
    }

    /// Starts the next channel open on the current connection: a waiting tunnel first, else a
    /// due heartbeat. One that the open under way has held up for [`STUCK`](super::lane::STUCK) goes over a
    /// second connection. Whether anything started.
    fn next_op(&mut self) -> bool {
        let read_due = matches!(
            self.reading,
            Reading::Due
                | Reading::Dump {
                    script: Some(_),
                    ..
                }
        );
        let Some(lane) = self.lane.as_ref() else {
            return false;
        };
        // A tunnel is what cannot wait; the heartbeat, only where no tunnel keeps a channel of
        // the connection open (sshd's UnusedConnectionTimeout counts one still connecting as
        // none) and shows it alive. Reading the config is such a heartbeat: until it is read,
        // an UnusedConnectionTimeout there is unknown, the interval too long for it.
        let beat_due = lane.tunnels.is_empty() && (read_due || self.probe || self.heartbeat_due());
        // (A second connection that could not be made leaves the lane as it was.)
        let idle = matches!(lane.op, Op::Idle);
        if (!self.queue.is_empty() || beat_due) && lane.stuck() && self.second_connection() {
            return true;
        }
        if !idle {
            return false;
        }
        let op = if let Some(mut request) = self.queue.pop_front() {
            let now = Instant::now();
            request.deadline = request.deadline.min(now + request.patience);
            Op::Open {
                request,
                replied: false,
                since: now,
            }
        } else if let Some(script) = self.next_read() {
            // Also a heartbeat: it proves the round trip, and answers a probe.
            self.probe = false;
            Op::Heartbeat(Heartbeat::reading(script))
        } else if self.probe || self.heartbeat_due() {
            let hb = Heartbeat::new(self.probe);
            self.probe = false;
            Op::Heartbeat(hb)
        } else {
            return false;
        };
        if let Some(lane) = self.lane.as_mut() {
            lane.op = op;
        }
        true
    }

    /// The current connection's tunnel has waited [`STUCK`](super::lane::STUCK) for the jump host's answer while
    /// something else waits behind it: a second connection becomes the current one, and the
    /// first carries on with its tunnels and that open until they end (see
    /// [`State::pump_retired`]). Whether it was made.
    fn second_connection(&mut self) -> bool {
        if self.retired.len() >= MAX_RETIRED
            || self
                .second_failed
                .is_some_and(|at| at.elapsed() < SECOND_RETRY)
        {
            return false;
        }
        match self.owner.connect() {
            Ok(conn) => {
                let setup = conn.setup_time;
                let Some(old) = self.lane.replace(Lane::new(conn)) else {
                    return true;
                };
                let which = match &old.op {
                    Op::Open {
                        request,
                        since,
                        replied: false,
                    } => format!(
                        "the tunnel to {} for {} has waited {}",
                        request.host_port(),
                        request.for_host,
                        crate::duration::format(since.elapsed())
                    ),
                    Op::Open { request, since, .. } => format!(
                        "a tunnel to {} that {} gave up on has still waited {}",
                        request.host_port(),
                        request.for_host,
                        crate::duration::format(since.elapsed())
                    ),
                    _ => "a channel has waited".to_string(),
                };
                let open = self.retired.len() + 2;
                self.emit(EventKind::AnotherConnection {
                    setup,
                    open,
                    message: format!(
                        "{which} for this jump host's answer, and a session opens one channel \
                         at a time: the tunnels and heartbeats asked for meanwhile go over \
                         another connection to it ({open} open now)"
                    ),
                });
                self.retired.push(old);
                self.last_alive = Instant::now();
                true
            }
            Err(e) => {
                self.second_failed = Some(Instant::now());
                self.emit(EventKind::Note {
                    message: format!("a second connection for the tunnels waiting failed: {e}"),
                });
                false
            }
        }
    }

    /// Pumps the connections replaced while a tunnel waited on them. One that is lost closes
    /// its tunnels (their hosts notice, as when the current one is lost) and answers its open;
    /// one with nothing left to carry is closed. Whether anything moved.
    fn pump_retired(&mut self, buf: &mut [u8]) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.retired.len() {
            let pumped =
                self.retired[i].pump(buf, &self.owner.name, self.owner.settings.heartbeat_timeout);
            match pumped {
                Ok(p) if !self.retired[i].spent() => {
                    progress |= p.progress;
                    i += 1;
                }
                Ok(_) => {
                    self.retired.swap_remove(i).close();
                    progress = true;
                }
                Err(failure) => {
                    let mut lane = self.retired.swap_remove(i);
                    if !lane.tunnels.is_empty() {
                        *self.lost_at.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(Instant::now());
                    }
                    lane.fail(&self.owner.name, &failure.reason);
                    progress = true;
                }
            }
        }
        progress
    }

    /// The script the config reading runs next, if one is due.
    fn next_read(&mut self) -> Option<String> {
        match &mut self.reading {
            Reading::Due => {
                self.reading = Reading::Discover;
                Some(discover())
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
                            script: Some(format!("{}dump {} 0", dump(), quote(&config))),
                            cmdline: d.cmdline,
                        }
                    }
                }
            }
            (Reading::Dump { cmdline, .. }, Some(dump)) => {
                if let Some(lane) = self.lane.as_ref() {
                    let limits = Limits {
                        beat: Beat::Command,
                        read: needs_open_channel(&cmdline, &dump).is_some(),
                        unused_connection_timeout: unused_connection_timeout(&cmdline, &dump),
                        in_match: unused_connection_timeout_in_match(&cmdline, &dump),
                    };
                    self.config_read = limits.read;
                    self.owner.limits_read(&limits, &lane.conn);
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
        if self.lane.is_none() && self.retired.is_empty() {
            timeout = Duration::from_secs(3600);
        }
        if let (Some(iv), Some(lane)) = (self.owner.beat_every(), &self.lane) {
            if matches!(lane.op, Op::Idle) {
                timeout =
                    timeout.min((self.last_alive + iv).saturating_duration_since(Instant::now()));
            }
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
        for lane in self.lane.iter().chain(&self.retired) {
            lane.poll_fds(&mut fds);
        }
        if timeout.is_zero() {
            return;
        }
        for lane in self.lane.iter().chain(&self.retired) {
            // As for every session: acknowledge the bastion's next segment at once (see
            // `connection::quick_ack`), or each round trip through a tunnel waits ~40 ms.
            connection::quick_ack(lane.conn.fd());
        }
        if poll_fds(&mut fds, timeout).is_err() {
            return;
        }
        // (With the heartbeat off, --no-keepalive, probes are left unanswered as for hosts.)
        if let Some(lane) = self.lane.as_ref().filter(|l| {
            self.owner.interval.is_some() && l.tunnels.is_empty() && matches!(l.op, Op::Idle)
        }) {
            if fds
                .get(session_index)
                .is_some_and(|f| f.revents & libc::POLLIN != 0)
            {
                self.probe = true;
                self.seen = idle_death::peek(lane.conn.fd());
            }
        }
    }

    /// The current session died: close every tunnel at once (the hosts behind notice and ask
    /// again), then reconnect with backoff and the pinned key.
    fn lost(&mut self, failure: Failure) {
        let Some(mut lane) = self.lane.take() else {
            return;
        };
        self.connected.store(false, Ordering::SeqCst);
        // Idle: nothing was in transit through the tunnels.
        let idle = lane.idle();
        let carried = lane.tunnels.len();
        let Failure { reason, heartbeat } = failure;
        // What the socket showed when the server's traffic woke the worker, else now: a
        // heartbeat that timed out leaves it open.
        let death = self
            .seen
            .take()
            .or_else(|| idle_death::peek(lane.conn.fd()));
        // A jump host reached through another whose connection died (taking this one's tunnel
        // with it) was not closed by its own server; one whose config was read has no limit
        // the heartbeat missed (stop 54 tester t86: a blackhole behind the first jump host
        // learned as the second one's idle limit, its config read).
        let parent_lost = self
            .owner
            .via
            .as_ref()
            .is_some_and(|j| j.lost_since(self.last_alive));
        if heartbeat
            && !parent_lost
            && !self.config_read
            && death.is_some_and(IdleDeath::may_be_idle_limit)
        {
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
        lane.fail(&self.owner.name, &reason);
        drop(lane);
        // A tunnel with nothing in transit may carry a command that is running silently: the
        // connection was not idle (stop 54 tester t86: "connection lost while idle" for a
        // bastion carrying a running command's tunnel).
        let tunnels = match carried {
            1 => "1 tunnel".to_string(),
            n => format!("{n} tunnels"),
        };
        let reason = match (carried, idle) {
            (0, _) => format!("connection lost while idle ({reason})"),
            (_, true) => {
                format!("connection lost while carrying {tunnels}, nothing in transit ({reason})")
            }
            (_, false) => format!("connection lost while carrying {tunnels} ({reason})"),
        };
        match self
            .owner
            .reconnect(&reason, idle, std::rc::Rc::new(|| false))
        {
            reconnect::Outcome::Connected(conn, _) => {
                self.lane = Some(Lane::new(conn));
                self.connected.store(true, Ordering::SeqCst);
                self.down = None;
                self.last_alive = Instant::now();
            }
            // Never given way: nothing asks it to.
            reconnect::Outcome::Stopped | reconnect::Outcome::GaveWay => {}
            reconnect::Outcome::Failed(error) => self.down = Some((error, Instant::now())),
        }
    }
}

fn drain(wake: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
}
