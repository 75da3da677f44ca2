//! Agent forwarding (`ForwardAgent yes`, a recipe's `forward_agent: true`): a remote command
//! can use the local ssh-agent (`git ls-remote` against a server that trusts the deployer's
//! key), while the private keys never leave this machine.
//!
//! libssh2 1.11 (bundled by `libssh2-sys` 0.3.4) has what this needs: a channel request
//! `auth-agent-req@openssh.com` (`Channel::request_auth_agent_forwarding` in the ssh2 crate),
//! after which sshd offers the command an `SSH_AUTH_SOCK` and opens an
//! `auth-agent@openssh.com` channel back to us for every connection to it; libssh2 hands such
//! a channel to the session's `LIBSSH2_CALLBACK_AUTHAGENT` callback, and refuses it when no
//! callback is set. The ssh2 crate 0.9 exposes neither the callback nor a way to wrap the raw
//! channel it gets, so this module registers the callback through the C API
//! (`libssh2_session_callback_set2`) and drives those channels with the raw channel calls.
//!
//! The callback runs inside a libssh2 call on the session's owner thread (with the ssh2
//! crate's session lock held): it only queues the channel. The command's pump loop (the same
//! owner thread) then connects each queued channel to `$SSH_AUTH_SOCK` and moves bytes both
//! ways; the channels are closed and freed before the command returns.

use std::io::{Read as _, Write as _};
use std::os::raw::{c_char, c_void};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libssh2_sys as raw;
use ssh2::Session;

use super::callback::{self, raw_session};
use super::config::HostConfig;
use super::connection::Connection;

/// Why `config`'s agent forwarding, where it is asked for, is not done: the reasons of
/// [`HostConfig::agent_not_forwarded`], and an identity agent (`IdentityAgent`, else
/// `SSH_AUTH_SOCK`) that does not take a connection, as ssh.c `check_agent_present` connects to
/// it before it asks for forwarding and asks for none where that fails (tester t128: with
/// `SSH_AUTH_SOCK=/nonexistent`, tether asked for it, and the host's `SSH_AUTH_SOCK` led to
/// nothing, unsaid). `None` where forwarding is done, or not asked for.
pub fn not_forwarded(config: &HostConfig) -> Option<String> {
    if let Some(why) = config.agent_not_forwarded() {
        return Some(why.to_string());
    }
    config.agent_to_forward()?;
    let agent = config.identity_agent.as_ref()?;
    match UnixStream::connect(agent) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "the local ssh-agent at {} takes no connection ({e}), and ssh forwards an agent \
             only where it reaches one of its own",
            agent.display()
        )),
    }
}

const EAGAIN: isize = raw::LIBSSH2_ERROR_EAGAIN as isize;
/// Bytes buffered per direction per agent connection.
const BUFFER: usize = 64 * 1024;

/// Agent channels the server opened, not yet taken by a pump: (session, channel) addresses.
static OPENED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Called by libssh2, inside a call on the session's owner thread, for each
/// `auth-agent@openssh.com` channel the server opens. It must not call libssh2.
unsafe extern "C" fn on_agent_channel(
    session: *mut raw::LIBSSH2_SESSION,
    channel: *mut raw::LIBSSH2_CHANNEL,
    _abstract: *mut *mut c_void,
) {
    OPENED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((session as usize, channel as usize));
}

/// One agent connection: a channel from the server and a connection to the local agent.
struct AgentConn {
    channel: *mut raw::LIBSSH2_CHANNEL,
    sock: Option<UnixStream>,
    to_agent: Vec<u8>,
    to_server: Vec<u8>,
    /// The last write on the channel would block: it must be repeated (libssh2 may hold part
    /// of the packet) before the channel is closed.
    write_pending: bool,
    server_eof: bool,
    agent_eof: bool,
}

/// The agent connections of one command; see the module docs.
pub struct Forwarder {
    session: *mut raw::LIBSSH2_SESSION,
    agent: std::path::PathBuf,
    conns: Vec<AgentConn>,
}

impl Forwarder {
    /// Lets the server open agent channels on `session` and serves them from `agent`.
    pub fn new(session: &Session, agent: std::path::PathBuf) -> Self {
        let raw_session = raw_session(session);
        // SAFETY: the session is alive and only this (its owner) thread uses it; the callback
        // has the signature LIBSSH2_AUTHAGENT_FUNC expects, and libssh2 calls it through the
        // generic pointer type it is stored as.
        unsafe {
            let cb: unsafe extern "C" fn(
                *mut raw::LIBSSH2_SESSION,
                *mut raw::LIBSSH2_CHANNEL,
                *mut *mut c_void,
            ) = on_agent_channel;
            callback::set(
                raw_session,
                callback::AUTHAGENT,
                Some(std::mem::transmute::<
                    unsafe extern "C" fn(
                        *mut raw::LIBSSH2_SESSION,
                        *mut raw::LIBSSH2_CHANNEL,
                        *mut *mut c_void,
                    ),
                    callback::Generic,
                >(cb)),
            );
        }
        Forwarder {
            session: raw_session,
            agent,
            conns: Vec::new(),
        }
    }

    /// Whether agent connections are open (the caller then polls more often: the agent's
    /// answers arrive on sockets it does not watch).
    pub fn busy(&self) -> bool {
        !self.conns.is_empty()
    }

    /// Takes newly opened agent channels and moves bytes; returns whether anything moved.
    pub fn pump(&mut self) -> bool {
        let mut progress = false;
        {
            let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
            let session = self.session as usize;
            let mut i = 0;
            while i < opened.len() {
                if opened[i].0 == session {
                    let (_, channel) = opened.swap_remove(i);
                    let sock = UnixStream::connect(&self.agent)
                        .and_then(|s| s.set_nonblocking(true).map(|()| s))
                        .ok();
                    self.conns.push(AgentConn {
                        channel: channel as *mut raw::LIBSSH2_CHANNEL,
                        agent_eof: sock.is_none(),
                        sock,
                        to_agent: Vec::new(),
                        to_server: Vec::new(),
                        write_pending: false,
                        server_eof: false,
                    });
                    progress = true;
                } else {
                    i += 1;
                }
            }
        }
        let mut buf = [0u8; 16 * 1024];
        for c in &mut self.conns {
            progress |= c.pump(&mut buf);
        }
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].done() && self.conns[i].close() {
                self.conns.swap_remove(i);
                progress = true;
            } else {
                i += 1;
            }
        }
        progress
    }

    /// Closes and frees every agent channel (when the command is over), waiting on `conn` at
    /// most a moment for libssh2 to finish a pending write or close.
    pub fn finish(mut self, conn: &Connection) {
        let until = Instant::now() + Duration::from_secs(2);
        for c in &mut self.conns {
            c.agent_eof = true;
            c.server_eof = true;
            c.to_agent.clear();
            if !c.write_pending {
                c.to_server.clear();
            }
        }
        let mut buf = [0u8; 1024];
        while !self.conns.is_empty() && Instant::now() < until {
            for c in &mut self.conns {
                c.pump(&mut buf);
            }
            self.conns.retain_mut(|c| !(c.done() && c.close()));
            if !self.conns.is_empty() {
                let _ = conn.wait_socket(until.min(Instant::now() + Duration::from_millis(50)));
            }
        }
        // Whatever is left is freed with the session.
        self.conns.clear();
        // (Drop then only forgets this session's queue entries.)
        let session = self.session as usize;
        OPENED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _)| *s != session);
    }
}

impl Drop for Forwarder {
    /// Best effort when the command ended early (a lost session, a deadline): one attempt to
    /// close and free each channel; libssh2 frees what is left with the session.
    fn drop(&mut self) {
        for c in &mut self.conns {
            if !c.write_pending {
                c.close();
            }
        }
        let session = self.session as usize;
        OPENED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _)| *s != session);
    }
}

/// Requests agent forwarding for `channel` (before its exec) and returns the forwarder that
/// serves the agent channels the server will open from the local agent at `agent`. Err: the
/// server refused (`AllowAgentForwarding no`), or the session failed.
pub fn start(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    until: Instant,
    agent: std::path::PathBuf,
) -> Result<Forwarder, String> {
    let forwarder = Forwarder::new(&conn.session, agent);
    // sshd grants agent forwarding once per connection (a second request is refused) and
    // then gives every later command of the connection its SSH_AUTH_SOCK: request it on the
    // session's first forwarding command only, and remember that in the session itself
    // (libssh2's per-session "abstract" pointer, which nothing else uses once authenticated).
    // SAFETY: the session is alive and used by this thread only; the pointer libssh2 returns
    // is the address of the session's own field.
    let slot = unsafe { raw::libssh2_session_abstract(forwarder.session) };
    let marker = &REQUESTED as *const u8 as *mut c_void;
    // SAFETY: `slot` points into the live session.
    if unsafe { *slot } != marker {
        conn.retry(until, || channel.request_auth_agent_forwarding())
            .map_err(|e| {
                format!("the server refused agent forwarding (AllowAgentForwarding no?): {e}")
            })?;
        // SAFETY: as above; the marker is a static, never dereferenced by libssh2.
        unsafe { *slot = marker };
    }
    Ok(forwarder)
}

/// Its address marks a session whose connection already has agent forwarding.
static REQUESTED: u8 = 0;

impl AgentConn {
    fn pump(&mut self, buf: &mut [u8]) -> bool {
        let mut progress = false;
        // server -> agent
        if !self.server_eof && self.to_agent.len() < BUFFER {
            // SAFETY: the channel is alive (freed only in `close`), used on the owner thread.
            let n = unsafe {
                raw::libssh2_channel_read_ex(
                    self.channel,
                    0,
                    buf.as_mut_ptr() as *mut c_char,
                    buf.len(),
                )
            };
            if n > 0 {
                self.to_agent.extend_from_slice(&buf[..n as usize]);
                progress = true;
            } else if n == EAGAIN {
                // SAFETY: as above.
                if unsafe { raw::libssh2_channel_eof(self.channel) } == 1 {
                    self.server_eof = true;
                    progress = true;
                }
            } else {
                self.server_eof = true;
                progress = true;
            }
        }
        if let Some(sock) = &self.sock {
            while !self.to_agent.is_empty() {
                match (&*sock).write(&self.to_agent) {
                    Ok(n) if n > 0 => {
                        self.to_agent.drain(..n);
                        progress = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    _ => {
                        self.agent_eof = true;
                        self.to_agent.clear();
                        break;
                    }
                }
            }
            // agent -> server
            if !self.agent_eof && self.to_server.len() < BUFFER {
                match (&*sock).read(buf) {
                    Ok(0) => {
                        self.agent_eof = true;
                        progress = true;
                    }
                    Ok(n) => {
                        self.to_server.extend_from_slice(&buf[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.agent_eof = true;
                        progress = true;
                    }
                }
            }
        } else {
            self.to_agent.clear();
        }
        while !self.to_server.is_empty() {
            // SAFETY: as above; libssh2 copies (encrypts) the bytes before returning.
            let n = unsafe {
                raw::libssh2_channel_write_ex(
                    self.channel,
                    0,
                    self.to_server.as_ptr() as *const c_char,
                    self.to_server.len(),
                )
            };
            if n > 0 {
                self.write_pending = false;
                self.to_server.drain(..n as usize);
                progress = true;
            } else if n == EAGAIN {
                self.write_pending = true;
                break;
            } else {
                self.write_pending = false;
                self.to_server.clear();
                self.server_eof = true;
                break;
            }
        }
        progress
    }

    /// Nothing more to move: one side ended and what it sent is delivered.
    fn done(&self) -> bool {
        !self.write_pending
            && ((self.agent_eof && self.to_server.is_empty())
                || (self.server_eof && self.to_agent.is_empty()))
    }

    /// Closes and frees the channel; false while libssh2 would block.
    fn close(&mut self) -> bool {
        if self.channel.is_null() {
            return true;
        }
        // SAFETY: the channel is alive; after a successful free it is never used again.
        let rc = unsafe { raw::libssh2_channel_close(self.channel) } as isize;
        if rc == EAGAIN {
            return false;
        }
        // SAFETY: as above.
        let rc = unsafe { raw::libssh2_channel_free(self.channel) } as isize;
        if rc == EAGAIN {
            return false;
        }
        self.channel = std::ptr::null_mut();
        self.sock = None;
        true
    }
}
