//! One connection to a jump host (a [`Lane`]): the tunnels it carries, the channels it is
//! closing, its one channel open or heartbeat under way; what asks for a tunnel ([`Request`]),
//! and how a lane's failures are said.

use std::net::Shutdown;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh2::Channel;

use super::heartbeat::Heartbeat;
use super::tunnel::{session_failed, Tunnel, TUNNEL_BUFFER};
use crate::failure::Kind;
use crate::ssh::connect;
use crate::ssh::connection::{self, would_block, CarrierSocket, Connection};
use crate::ssh::SshError;

/// How long a tunnel may wait for the jump host's answer before the tunnels and heartbeats
/// asked for meanwhile go over a second connection: the jump host's sshd opens a tunnel once
/// its TCP connect to the target is done, in milliseconds for a host that is up.
pub(super) const STUCK: Duration = Duration::from_secs(1);

/// A request for a tunnel to `host:port`.
pub struct Request {
    /// The host that will use the tunnel (for messages).
    pub for_host: Arc<str>,
    pub host: String,
    pub port: u16,
    /// When the requester asked.
    pub asked: Instant,
    /// After this, the requester has given up.
    pub deadline: Instant,
    /// How long the jump host may take to open the tunnel once it starts to (the host's own
    /// `ConnectTimeout`, or what a bound left of it): the rest of the wait up to `deadline` is
    /// for the jump host's own connecting, not spent when it is connected already (stop 55
    /// tester t87: 10 s behind one connected jump host, 15 s behind two, for `ConnectTimeout
    /// 5`, where ssh gives up after 5 s).
    pub patience: Duration,
    /// The tunnel's end, with the socket of the connection that carries it.
    pub reply: Sender<Result<(UnixStream, CarrierSocket), SshError>>,
}

/// The one channel open (or heartbeat) in progress on a jump session.
pub(super) enum Op {
    Idle,
    /// Opening a tunnel since `since`; `replied` once the requester was told it took too
    /// long.
    Open {
        request: Request,
        replied: bool,
        since: Instant,
    },
    Heartbeat(Heartbeat),
}

/// One connection to the jump host with the tunnels it carries, the channels it is closing
/// and its one channel open or heartbeat in progress (libssh2 keeps one channel open under
/// way per session).
pub(super) struct Lane {
    /// The connection's own socket, marked closed when the lane is dropped (declared before
    /// `conn`, so before the socket closes); `None` for a connection a tunnel carries.
    pub(super) owned: Option<Owned>,
    /// What the tunnels of this lane are carried by in the end.
    pub(super) socket: CarrierSocket,
    pub(super) conn: Connection,
    pub(super) tunnels: Vec<Tunnel>,
    /// Channels being closed (retried until libssh2 is done with them).
    pub(super) closing: Vec<Channel>,
    pub(super) op: Op,
}

/// What one round of a lane's pump did.
pub(super) struct Pumped {
    /// Anything moved.
    pub(super) progress: bool,
    /// Data came out of a tunnel: the session works.
    pub(super) got: bool,
    /// A heartbeat that completed, with its round trip.
    pub(super) beat: Option<(Duration, Heartbeat)>,
}

/// Why the jump session was found dead.
pub(super) struct Failure {
    pub(super) reason: String,
    /// Found by the heartbeat (the session had been idle), not by tunnel traffic.
    pub(super) heartbeat: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure {
            reason,
            heartbeat: false,
        }
    }
}

pub(super) fn jump_error(name: &str, host: &str, reason: impl Into<String>) -> SshError {
    SshError::Jump {
        host: host.to_string(),
        jump: name
            .trim_end_matches(crate::host_text::JUMP_LABEL)
            .to_string(),
        reason: reason.into(),
        kind: Kind::Unreachable,
    }
}

/// The jump host `name` could not be connected (`error`), for `host` behind it: a refused
/// host key or configuration of the jump host keeps its kind, which a recipe branches on
/// (a key refused at the bastion may be an interception as much as at the host).
pub(super) fn jump_connect_error(name: &str, host: &str, error: &SshError) -> SshError {
    let kind = match error.kind() {
        kind @ (Kind::HostKeyRefused | Kind::Config) => kind,
        _ => Kind::Unreachable,
    };
    SshError::Jump {
        host: host.to_string(),
        jump: name
            .trim_end_matches(crate::host_text::JUMP_LABEL)
            .to_string(),
        reason: error.to_string(),
        kind,
    }
}

impl Request {
    /// The target as `host:port` (`[::1]:22`).
    pub(super) fn host_port(&self) -> String {
        connect::host_port(&self.host, self.port)
    }
}

/// A lane's own socket: marked closed when dropped.
pub(super) struct Owned(CarrierSocket);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Lane {
    pub(super) fn new(conn: Connection) -> Lane {
        let (socket, own) = CarrierSocket::under(&conn);
        Lane {
            owned: own.then(|| Owned(socket.clone())),
            socket,
            conn,
            tunnels: Vec::new(),
            closing: Vec::new(),
            op: Op::Idle,
        }
    }

    /// One round: host sockets -> channels, the open or heartbeat in progress, channels ->
    /// host sockets, finished tunnels closed. Err when the session failed.
    pub(super) fn pump(
        &mut self,
        buf: &mut [u8],
        name: &str,
        heartbeat_timeout: Duration,
    ) -> Result<Pumped, Failure> {
        let mut pumped = Pumped {
            progress: false,
            got: false,
            beat: None,
        };
        for t in &mut self.tunnels {
            pumped.progress |= t.read_sock(buf);
        }
        for t in &mut self.tunnels {
            pumped.progress |= t.write_chan(&self.conn)?;
        }
        // The open or heartbeat in progress, before and after channels -> buffers (the reads
        // above and the channel reads may have queued packets it waits for).
        for pass in 0..2 {
            let (p, beat) = self.advance_op(name, heartbeat_timeout)?;
            pumped.progress |= p;
            if beat.is_some() {
                pumped.beat = beat;
            }
            if pass == 0 {
                for t in &mut self.tunnels {
                    pumped.progress |= t.read_chan(&self.conn, buf, &mut pumped.got)?;
                }
            }
        }
        for t in &mut self.tunnels {
            pumped.progress |= t.write_sock();
        }
        // Finished tunnels: close their channels (retried until done) and their sockets.
        let mut i = 0;
        while i < self.tunnels.len() {
            if self.tunnels[i].finished() {
                let t = self.tunnels.swap_remove(i);
                let _ = t.sock.shutdown(Shutdown::Both);
                self.closing.push(t.channel);
                pumped.progress = true;
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.closing.len() {
            match self.closing[i].close() {
                Err(e) if would_block(&e) => i += 1,
                Err(e) if session_failed(&self.conn.session) => {
                    return Err(Failure::from(format!(
                        "closing a tunnel failed: {}",
                        self.conn.plain(&e)
                    )));
                }
                _ => {
                    // Closed (or refused because the far end is gone): libssh2 is done.
                    drop(self.closing.swap_remove(i));
                    pumped.progress = true;
                }
            }
        }
        Ok(pumped)
    }

    /// Nothing in transit through its tunnels.
    pub(super) fn idle(&self) -> bool {
        self.tunnels
            .iter()
            .all(|t| t.to_chan.is_empty() && t.to_sock.is_empty())
    }

    /// A tunnel has waited [`STUCK`] or more for the jump host's answer.
    pub(super) fn stuck(&self) -> bool {
        matches!(self.op, Op::Open { since, .. } if since.elapsed() >= STUCK)
    }

    /// Nothing left to carry: no tunnel, no channel closing, no open whose requester waits.
    pub(super) fn spent(&self) -> bool {
        self.tunnels.is_empty()
            && self.closing.is_empty()
            && matches!(
                self.op,
                Op::Idle | Op::Heartbeat(_) | Op::Open { replied: true, .. }
            )
    }

    /// Its sockets for `poll`, the session's first.
    pub(super) fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        // Read the session only when someone can take what arrives: a tunnel with room, the
        // open or heartbeat in progress, or the heartbeat itself when there is no tunnel (a
        // server probe). With every tunnel full, the host sockets wake us.
        let reader = self.tunnels.is_empty()
            || !matches!(self.op, Op::Idle)
            || self
                .tunnels
                .iter()
                .any(|t| !t.chan_done && t.to_sock.len() < TUNNEL_BUFFER)
            || !self.closing.is_empty();
        let mut events = connection::poll_events(self.conn.session.block_directions());
        if reader {
            events |= libc::POLLIN;
        }
        fds.push(libc::pollfd {
            fd: self.conn.fd(),
            events,
            revents: 0,
        });
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
    }

    /// The connection was lost (`reason`): its tunnels close at once (their hosts notice) and
    /// the requester of the open under way, if still waiting, is told.
    pub(super) fn fail(&mut self, name: &str, reason: &str) {
        self.tunnels.clear();
        self.closing.clear();
        if let Op::Open {
            request,
            replied: false,
            ..
        } = std::mem::replace(&mut self.op, Op::Idle)
        {
            let _ = request.reply.send(Err(jump_error(
                name,
                &request.for_host,
                format!("the jump host's connection was lost ({reason})"),
            )));
        }
    }

    /// Closes the connection, its tunnels first.
    pub(super) fn close(mut self) {
        self.tunnels.clear();
        self.closing.clear();
        drop(self.owned.take());
        self.conn.disconnect();
    }

    /// Advances the channel open or heartbeat in progress. Returns whether anything moved
    /// and, when a heartbeat completed, its round trip and the heartbeat.
    pub(super) fn advance_op(
        &mut self,
        name: &str,
        heartbeat_timeout: Duration,
    ) -> Result<(bool, Option<(Duration, Heartbeat)>), Failure> {
        let session = &self.conn.session;
        match &mut self.op {
            Op::Idle => Ok((false, None)),
            Op::Heartbeat(hb) => {
                match hb
                    .advance(&self.conn, heartbeat_timeout)
                    .map_err(|reason| Failure {
                        reason,
                        heartbeat: true,
                    })? {
                    Some(rtt) => match std::mem::replace(&mut self.op, Op::Idle) {
                        Op::Heartbeat(done) => Ok((true, Some((rtt, done)))),
                        _ => unreachable!("matched above"),
                    },
                    None => Ok((false, None)),
                }
            }
            Op::Open {
                request,
                replied,
                since,
            } => match session.channel_direct_tcpip(&request.host, request.port, None) {
                Ok(channel) => {
                    let replied = *replied;
                    let Op::Open { request, .. } = std::mem::replace(&mut self.op, Op::Idle) else {
                        unreachable!("matched above");
                    };
                    if replied {
                        // The requester gave up meanwhile: nobody will use this channel.
                        self.closing.push(channel);
                        return Ok((true, None));
                    }
                    let pair = UnixStream::pair().and_then(|(ours, theirs)| {
                        ours.set_nonblocking(true)?;
                        Ok((ours, theirs))
                    });
                    match pair {
                        Ok((ours, theirs)) => {
                            if request
                                .reply
                                .send(Ok((theirs, self.socket.clone())))
                                .is_ok()
                            {
                                self.tunnels.push(Tunnel {
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
                                self.closing.push(channel);
                            }
                        }
                        Err(e) => {
                            let _ = request.reply.send(Err(jump_error(
                                name,
                                &request.for_host,
                                format!("cannot make a socket pair: {e}"),
                            )));
                            self.closing.push(channel);
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
                                "the jump host did not open a connection to {} within {}",
                                request.host_port(),
                                // The bound it was given (the host's ConnectTimeout, or less
                                // where the run's deadline comes first), not the time it took
                                // to notice: a full run said `within 2.1 s` for
                                // `ConnectTimeout 2`.
                                crate::duration::format(
                                    request.deadline.saturating_duration_since(*since)
                                )
                            ),
                        )));
                    }
                    Ok((false, None))
                }
                Err(e) => {
                    let failed = session_failed(session);
                    let words = self.conn.plain(&e);
                    if !*replied {
                        let why = match failed {
                            // Not an answer about the target: the jump host's connection
                            // ended before one came.
                            true => format!(
                                "the jump host's connection was lost after {} waiting for \
                                 it to open a connection to {} ({words})",
                                crate::duration::format(since.elapsed()),
                                request.host_port()
                            ),
                            false => format!(
                                "the jump host could not open a connection to {}: {}",
                                request.host_port(),
                                e.message()
                            ),
                        };
                        let _ = request
                            .reply
                            .send(Err(jump_error(name, &request.for_host, why)));
                    }
                    self.op = Op::Idle;
                    if failed {
                        return Err(format!("opening a tunnel failed: {words}").into());
                    }
                    Ok((true, None))
                }
            },
        }
    }
}
