//! An open SSH session (a [`Connection`]: authenticated, non-blocking, driven by its owner
//! thread) and the socket under it: waiting on it, opening channels on it, whether its TCP
//! still acknowledges what was sent, the jump host whose tunnel carries it. `connect.rs`
//! opens one.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ssh2::Session;

/// libssh2's "would block" code in non-blocking mode.
const EAGAIN: i32 = -37;

/// An authenticated, non-blocking session and the socket under it.
pub struct Connection {
    /// The session; only its owner thread may touch it.
    pub session: Session,
    fd: RawFd,
    /// The server's host key blob, pinned for reconnects.
    pub host_key: Vec<u8>,
    /// How long TCP connect + handshake + auth took.
    pub setup_time: Duration,
    /// What must live exactly as long as the session (a proxy command's process, which is
    /// stopped and reaped when the connection is dropped).
    guard: Option<Box<dyn Send>>,
    /// Environment variables this session's server refused (see `env.rs`): a refusal will
    /// not change within a session, so each is asked once.
    pub refused_env: std::cell::RefCell<std::collections::HashSet<String>>,
    /// The exec opened ahead for the session's next supervised command (see `standby.rs`).
    pub standby: std::cell::RefCell<super::standby::Slot>,
    /// When the session was set up.
    opened: Instant,
    /// The jump host whose tunnel carries the session, if any (boxed: most sessions have
    /// none, and a connection is moved about whole).
    carrier: Option<Box<Carrier>>,
}

/// The jump host whose tunnel carries a connection: its name (`bastion`), when its own
/// connection was last lost (shared with its worker, which records it before it closes its
/// tunnels), and how long a tunnel through it may go idle.
#[derive(Clone)]
pub struct Carrier {
    /// The jump host's name, as its hosts' messages say it.
    pub name: Arc<str>,
    /// When its connection was last found dead (`None` before that ever happened).
    pub lost_at: Arc<Mutex<Option<Instant>>>,
    /// The `ChannelTimeout` for tunnels of it or of a jump host it is reached through, where
    /// one was read: `None` while unknown or unlimited.
    pub tunnel_limit: Arc<dyn Fn() -> Option<Duration> + Send + Sync>,
    /// The TCP socket that carries the tunnel in the end (see [`acknowledges_within`]).
    ///
    /// [`acknowledges_within`]: Connection::acknowledges_within
    pub socket: CarrierSocket,
}

/// The socket of a jump host's connection, shared with the sessions its tunnels carry: the
/// outermost one's where jump hosts are chained (a tunnel through `b`, reached through `a`,
/// is carried by `a`'s TCP connection). Its descriptor is only read with `getsockopt`, by
/// other threads than the jump worker that owns it; that worker marks it closed before it
/// closes the connection. A session that found it acknowledging nothing marks it hung, and
/// the worker takes the connection for lost (see [`CarrierSocket::hung`]).
#[derive(Clone, Debug)]
pub struct CarrierSocket(Arc<SocketState>);

#[derive(Debug)]
struct SocketState {
    /// The descriptor; -1 once closed.
    fd: AtomicI32,
    /// Found acknowledging nothing.
    hung: AtomicBool,
}

impl CarrierSocket {
    /// The socket under `conn`: that of its own carrier where a tunnel carries it, else
    /// its own (which its owner marks closed with [`CarrierSocket::close`]). The second value
    /// says whether the socket is `conn`'s own.
    pub fn under(conn: &Connection) -> (CarrierSocket, bool) {
        match &conn.carrier {
            Some(c) => (c.socket.clone(), false),
            None => (
                CarrierSocket(Arc::new(SocketState {
                    fd: AtomicI32::new(conn.fd),
                    hung: AtomicBool::new(false),
                })),
                true,
            ),
        }
    }

    /// The descriptor; `None` once the connection is closed.
    fn fd(&self) -> Option<RawFd> {
        Some(self.0.fd.load(Ordering::SeqCst)).filter(|fd| *fd >= 0)
    }

    /// Marks the socket closed, before its connection closes it: a descriptor number read
    /// after that could be another file's.
    pub fn close(&self) {
        self.0.fd.store(-1, Ordering::SeqCst);
    }

    /// Whether a session it carries found its TCP acknowledging nothing for a while (see
    /// [`Connection::acknowledges_within`]): its jump worker takes the connection for lost
    /// rather than open the next tunnel over it (stop 57 tester t90: the last attempt to
    /// stop a command behind a jump host gone silent asked the silent connection for its
    /// tunnel, and the command was left running).
    pub fn hung(&self) -> bool {
        self.0.hung.load(Ordering::SeqCst)
    }
}

/// A non-blocking libssh2 operation that did not finish.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed first.
    Timeout,
    /// libssh2 (or the socket) failed.
    Failed(String),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Timeout => f.write_str("timed out"),
            WaitError::Failed(m) => f.write_str(m),
        }
    }
}

/// A session channel that did not open (see [`Connection::open_session`]).
#[derive(Debug)]
pub enum OpenError {
    /// The server answered the request with a refusal (`SSH_MSG_CHANNEL_OPEN_FAILURE`, as
    /// sshd sends past its `MaxSessions`, which a bastion that allows forwarding only sets to
    /// 0): the session is alive, and a new one would be refused the same.
    Refused(String),
    /// The session failed, or did not answer by the deadline.
    Wait(WaitError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Refused(m) => f.write_str(m),
            OpenError::Wait(e) => e.fmt(f),
        }
    }
}

/// How long a channel the server refuses is asked for again (see
/// [`Connection::open_session`]).
pub const REFUSED_GRACE: Duration = Duration::from_secs(1);

/// Whether an ssh2 error is the server's refusal to open a channel (libssh2's
/// `LIBSSH2_ERROR_CHANNEL_FAILURE`; see [`OpenError::Refused`]).
pub fn channel_refused(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(-21)
}

/// Whether an ssh2 error only means "try again when the socket is ready".
pub fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(EAGAIN)
}

use super::poll::poll_fds;

/// The `poll()` events for the directions libssh2 says it is blocked on.
pub fn poll_events(dirs: ssh2::BlockDirections) -> libc::c_short {
    let mut events = 0;
    if matches!(
        dirs,
        ssh2::BlockDirections::Inbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLIN;
    }
    if matches!(
        dirs,
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLOUT;
    }
    events
}

impl Connection {
    /// The connection `connect.rs` set up on `session` over the socket `fd`, authenticated
    /// with the server's `host_key`, in `setup_time` (TCP connect + handshake + auth).
    pub(super) fn established(
        session: Session,
        fd: RawFd,
        host_key: Vec<u8>,
        setup_time: Duration,
    ) -> Self {
        Connection {
            session,
            fd,
            host_key,
            setup_time,
            guard: None,
            refused_env: Default::default(),
            standby: Default::default(),
            opened: Instant::now(),
            carrier: None,
        }
    }

    /// Says goodbye to the server (SSH_MSG_DISCONNECT, waiting at most 2 s) and drops the
    /// connection: sshd then logs a disconnect by the client, not a lost connection. A server
    /// whose TCP left what was sent unacknowledged past two retransmission timeouts gets none.
    pub fn disconnect(self) {
        // Silent (a blackhole, a host gone): libssh2 would wait its two seconds on it (a jump
        // host gone silent held tether's exit 2 s).
        if super::tcp_ack::acks(self.fd).is_some_and(|a| a.unacked > 0 && a.retransmits >= 2) {
            return;
        }
        self.session.set_blocking(true);
        self.session.set_timeout(2000);
        let _ = self.session.disconnect(None, "tether done", None);
    }

    /// This connection, keeping `guard` alive until it is dropped.
    pub fn owning(mut self, guard: Box<dyn Send>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// This connection, carried by a tunnel of `carrier`.
    pub fn carried_by(mut self, carrier: Carrier) -> Self {
        self.carrier = Some(Box::new(carrier));
        self
    }

    /// `e`, a failure of this session, in plain words (see [`wording::plain_on`]). Where the
    /// stream ended because the jump host carrying it lost its own connection, it says so: the
    /// tunnel closing then reads as the server closing the connection, which it did not
    /// (stop 54 tester t86: "reading output failed: the server closed the connection" for a
    /// jump host that fell into a blackhole).
    ///
    /// [`wording::plain_on`]: super::wording::plain_on
    pub fn plain(&self, e: &ssh2::Error) -> String {
        match self.carrier_words() {
            Some(words) if super::wording::stream_ended(e) => words,
            _ => super::wording::plain_on(e, self.fd),
        }
    }

    /// An I/O error of one of this session's channel streams in plain words, as
    /// [`Connection::plain`] says a session's failure.
    pub fn plain_io(&self, e: &std::io::Error) -> String {
        let ended = ssh2::Error::last_session_error(&self.session)
            .is_some_and(|last| super::wording::stream_ended(&last));
        match self.carrier_words() {
            Some(words) if ended => words,
            _ => super::wording::plain_io_on(e, &self.session, self.fd),
        }
    }

    /// What ended the stream of a session a jump host carries: the jump host's own
    /// connection, lost since the session was set up; else, where the jump host closes idle
    /// tunnels, either that or the server (stop 55 tester t88: "the server closed the
    /// connection" for a command whose tunnel the bastion's `ChannelTimeout` closed once its
    /// host stopped answering); else the server's close or a reset on the way.
    fn carrier_words(&self) -> Option<String> {
        let carrier = self.carrier.as_ref()?;
        let lost_at = *carrier.lost_at.lock().unwrap_or_else(|p| p.into_inner());
        if lost_at.is_some_and(|at| at >= self.opened) {
            return Some(format!(
                "the jump host {} lost its connection, and the tunnel carrying this one with it",
                carrier.name
            ));
        }
        // The jump host's sshd ends a tunnel alike for the server's close and for a reset
        // between it and the server (stop 61 tester t101: a reset said as the server's close).
        let Some(limit) = (carrier.tunnel_limit)() else {
            return Some(format!(
                "the tunnel through the jump host {} closed: the server ended the \
                 connection, or it was reset between the jump host and the server (a tunnel \
                 does not tell which)",
                carrier.name
            ));
        };
        Some(format!(
            "the tunnel through the jump host {} closed: the server ended the connection, or \
             the jump host closed the tunnel, as it does to tunnels idle for {} \
             (ChannelTimeout)",
            carrier.name,
            crate::duration::format(limit)
        ))
    }

    /// The socket, for `poll()` by the owner thread.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Arms the session for a heartbeat every `interval`: libssh2's keepalive timer at its
    /// shortest (2 s: it sends at most that often, and the callers keep their own timers),
    /// and `TCP_USER_TIMEOUT` so that a server that
    /// acknowledges none of them for `count_max` intervals (`ServerAliveCountMax`, 3 by
    /// default), or at least `heartbeat_timeout`, fails the connection instead of hanging it
    /// for the ~15 minutes of TCP retransmissions (a dropped network, a host powered off).
    /// Best effort (a proxy command's or jump host's socket pair has no TCP options).
    pub fn arm_heartbeat(&self, interval: Duration, count_max: u32, heartbeat_timeout: Duration) {
        self.session.set_keepalive(false, 1);
        self.set_user_timeout((interval * count_max.max(1)).max(heartbeat_timeout));
    }

    /// Whether the server's TCP acknowledges, within `within`, a protocol keepalive sent now
    /// (with whatever else is in flight; see `tcp_ack`): `Some(false)` where nothing came
    /// back (the path dropped, the host gone), `None` where that cannot be told. A keepalive
    /// sent less than a second ago is not sent again (libssh2's interval, see
    /// [`arm_heartbeat`](Self::arm_heartbeat)): what is in flight is waited for all the same.
    ///
    /// A session over a socket pair (a jump host's tunnel, a proxy command) has no TCP of its
    /// own: the server is asked for a reply instead (see `carrier_acknowledges_within`), and
    /// a jump host's connection lost since the session was set up is not waited on (stop 56
    /// tester t89: a `--timeout 5s` behind a jump host gone silent waited 15 s for its stop's
    /// channel; stop 57 tester t90: 20 s for `--pty` behind a healthy jump host, the host
    /// behind it silent).
    pub fn acknowledges_within(&self, within: Duration) -> Option<bool> {
        if super::tcp_ack::acks(self.fd).is_none() {
            return self.carrier_acknowledges_within(within);
        }
        if let Err(e) = self.session.keepalive_send() {
            // "Would block" only means it is queued.
            if !would_block(&e) {
                return Some(false);
            }
        }
        let until = Instant::now() + within;
        loop {
            match super::tcp_ack::acks(self.fd) {
                None => return None,
                Some(a) if a.unacked == 0 => return Some(true),
                Some(_) if Instant::now() >= until => return Some(false),
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// [`acknowledges_within`](Self::acknowledges_within) for a session over a socket pair (a
    /// jump host's tunnel, a proxy command), which has no TCP of its own to ask: a keepalive
    /// that asks for a reply is sent, and anything that arrives on the socket after it (the
    /// reply, or the command's output) says the far end works; nothing within `within` and
    /// [`ASK_AGAIN`], that it does not. libssh2 sends a keepalive at most every 2 s (its
    /// shortest interval) and does not say whether a call sent one: the keepalive is asked for
    /// every [`ASK_AGAIN`] until one goes.
    /// Where a jump host carries the session, its TCP connection is watched meanwhile: one
    /// that acknowledges nothing is marked hung (see [`CarrierSocket::hung`]), and the answer
    /// is given then.
    fn carrier_acknowledges_within(&self, within: Duration) -> Option<bool> {
        let carrier = self.carrier.as_deref();
        if let Some(c) = carrier {
            let lost_at = *c.lost_at.lock().unwrap_or_else(|p| p.into_inner());
            // Lost, or closed: its worker found it dead.
            if lost_at.is_some_and(|at| at >= self.opened) || c.socket.fd().is_none() {
                return Some(false);
            }
        }
        let before = pending(self.fd)?;
        let ask = || {
            self.session.set_keepalive(true, 1);
            let sent = self.session.keepalive_send();
            self.session.set_keepalive(false, 1);
            match sent {
                Err(e) if !would_block(&e) => Err(()),
                _ => Ok(()),
            }
        };
        if ask().is_err() {
            return Some(false);
        }
        let sent = Instant::now();
        let mut asked_at = sent;
        loop {
            if pending(self.fd).is_some_and(|n| n > before) {
                return Some(true);
            }
            if carrier.is_some_and(|c| c.socket.fd().is_none()) {
                return Some(false);
            }
            if self.mark_silent_carrier() {
                return Some(false);
            }
            // libssh2 sends when its interval has passed since the last one, and says nothing
            // of whether it did: asked again until one goes, which the reply follows.
            if asked_at.elapsed() >= ASK_AGAIN {
                asked_at = Instant::now();
                if ask().is_err() {
                    return Some(false);
                }
            }
            if sent.elapsed() >= within + ASK_AGAIN {
                return Some(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a jump host carries this session.
    pub fn carried(&self) -> bool {
        self.carrier.is_some()
    }

    /// Where a jump host carries this session and its TCP connection has had what it sent
    /// go unacknowledged past two retransmission timeouts (a few hundred milliseconds at
    /// least; the server's segments that arrive meanwhile may be its own retransmissions, so
    /// the time of the last acknowledgement says nothing), marks that connection hung (see
    /// [`CarrierSocket::hung`]): the silence is the jump host's. Whether it did.
    fn mark_silent_carrier(&self) -> bool {
        let Some(c) = self.carrier.as_deref() else {
            return false;
        };
        let acks = c.socket.fd().and_then(super::tcp_ack::acks);
        let silent = acks.is_some_and(|a| a.unacked > 0 && a.retransmits >= 2);
        if silent {
            c.socket.0.hung.store(true, Ordering::SeqCst);
        }
        silent
    }

    /// Sets the socket's `TCP_USER_TIMEOUT` (tcp(7)) to `d` (whole milliseconds, at least 1):
    /// the kernel ends the connection, with `ETIMEDOUT`, once data it sent has stayed
    /// unacknowledged that long, which `poll()` reports as an error on the socket. Returns
    /// whether the socket took it (a proxy command's or jump host's socket pair is not TCP).
    pub fn set_user_timeout(&self, d: Duration) -> bool {
        let ms = d.as_millis().clamp(1, libc::c_uint::MAX as u128) as libc::c_uint;
        // SAFETY: `fd` is the session's open socket; the option value is a c_uint.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                &ms as *const libc::c_uint as *const libc::c_void,
                std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
            )
        };
        rc == 0
    }

    /// Waits (at most until `until`) for the socket to become ready in the directions libssh2
    /// is blocked on.
    pub fn wait_socket(&self, until: Instant) -> Result<(), WaitError> {
        let mut events = poll_events(self.session.block_directions());
        if events == 0 {
            events = libc::POLLIN;
        }
        let now = Instant::now();
        if now >= until {
            return Err(WaitError::Timeout);
        }
        // Short slices keep the caller's keepalive and cancel checks responsive.
        let slice = (until - now).min(Duration::from_millis(500));
        quick_ack(self.fd);
        let mut fds = [libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        }];
        poll_fds(&mut fds, slice).map_err(|e| WaitError::Failed(e.to_string()))
    }

    /// Opens a session channel (as ssh's `channel 0`), waiting at most until `until`; a
    /// refusal (see [`OpenError::Refused`]) is told apart from a dead session, as ssh's
    /// `channel 0: open failed: administratively prohibited` is from a lost connection. A
    /// refusal is asked again for `refused_grace` (for a command, [`REFUSED_GRACE`]): sshd
    /// frees a channel's place in its `MaxSessions` a moment after the channel closed (the
    /// heartbeat's, just before), so that under `MaxSessions 1` the next command can meet it
    /// still taken.
    pub fn open_session(
        &self,
        until: Instant,
        refused_grace: Duration,
    ) -> Result<ssh2::Channel, OpenError> {
        self.open_session_while(until, refused_grace, &|| true)
    }

    /// [`open_session`](Self::open_session), given up as timed out as soon as `keep` (asked
    /// between waits, every half second at most) says no.
    pub fn open_session_while(
        &self,
        until: Instant,
        refused_grace: Duration,
        keep: &dyn Fn() -> bool,
    ) -> Result<ssh2::Channel, OpenError> {
        let grace = (Instant::now() + refused_grace).min(until);
        loop {
            match self.session.channel_session() {
                Ok(channel) => return Ok(channel),
                Err(e) if would_block(&e) => {
                    self.wait_socket(until).map_err(OpenError::Wait)?;
                    if !keep() {
                        return Err(OpenError::Wait(WaitError::Timeout));
                    }
                }
                Err(e) if channel_refused(&e) && Instant::now() < grace => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if channel_refused(&e) => {
                    // libssh2 says the server's reason as `Channel open failure (REASON)`.
                    let said = e.message();
                    let reason = said
                        .strip_prefix("Channel open failure (")
                        .and_then(|r| r.strip_suffix(')'))
                        .unwrap_or(said);
                    return Err(OpenError::Refused(format!(
                        "{} ({reason}; sshd's MaxSessions?)",
                        super::wording::plain(&e),
                    )));
                }
                Err(e) => return Err(OpenError::Wait(WaitError::Failed(self.plain(&e)))),
            }
        }
    }

    /// Runs a non-blocking libssh2 operation to completion or until `until`.
    pub fn retry<T>(
        &self,
        until: Instant,
        mut op: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, WaitError> {
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) if would_block(&e) => self.wait_socket(until)?,
                Err(e) => return Err(WaitError::Failed(self.plain(&e))),
            }
        }
    }
}

/// How often a session over a socket pair asks for a keepalive while it waits for a reply (see
/// `carrier_acknowledges_within`), and how much longer than asked it waits.
const ASK_AGAIN: Duration = Duration::from_millis(250);

/// Bytes waiting to be read on `fd` (`FIONREAD`); `None` where it cannot say.
fn pending(fd: RawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is the session's open socket; FIONREAD writes one c_int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

/// Acknowledges the server's next segment at once. sshd leaves Nagle on for non-interactive
/// sessions, so each small packet it sends waits for our ACK of the previous one; Linux's
/// delayed ACK would add about 40 ms to every command. The flag is reset by the kernel, hence
/// set again before every wait.
pub(crate) fn quick_ack(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is the session's open socket; the option value is a c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
