//! One tunnel of a jump host: a `direct-tcpip` channel on the jump session and the jump
//! worker's end of the socket pair whose other end carries a host's own SSH session. Bytes are
//! buffered per direction; a channel write that would block is repeated with the same leading
//! bytes until it completes (libssh2's rule).

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;

use ssh2::{Channel, ErrorCode, Session};

use crate::ssh::connection::Connection;

/// Bytes buffered per tunnel and direction before reading from that side pauses.
pub const TUNNEL_BUFFER: usize = 256 * 1024;

/// One tunnel: a `direct-tcpip` channel and our end of the socket pair.
pub struct Tunnel {
    pub channel: Channel,
    pub sock: UnixStream,
    /// From the host's session, to send on the channel.
    pub to_chan: Vec<u8>,
    /// From the channel, to write to the host's session.
    pub to_sock: Vec<u8>,
    /// The host's side closed (or failed): flush `to_chan`, then close the channel.
    pub sock_done: bool,
    /// The far end sent EOF (or the channel failed): flush `to_sock`, then close.
    pub chan_done: bool,
    /// The socket can take no more bytes: `to_sock` is dropped.
    pub sock_dead: bool,
    /// The last channel write would block with room in the window: libssh2 may hold part of
    /// that packet, and nothing else can be sent on the session until the same write is
    /// repeated, so it is repeated even if the channel is otherwise done.
    pub write_pending: bool,
}

/// Whether the session itself failed (as opposed to one channel).
pub fn session_failed(session: &Session) -> bool {
    match ssh2::Error::last_session_error(session).map(|e| e.code()) {
        // Channel-level codes (-21 CHANNEL_FAILURE ... -27 CHANNEL_EOF_SENT), "would block"
        // and misuse leave the session usable.
        Some(ErrorCode::Session(code)) => !matches!(code, -27..=-21 | -37 | -39 | -34),
        _ => false,
    }
}

impl Tunnel {
    /// Host socket -> buffer.
    pub fn read_sock(&mut self, buf: &mut [u8]) -> bool {
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
    pub fn write_chan(&mut self, conn: &Connection) -> Result<bool, String> {
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
                    if session_failed(&conn.session) {
                        return Err(format!(
                            "sending through a tunnel failed: {}",
                            conn.plain_io(&e)
                        ));
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
    pub fn read_chan(
        &mut self,
        conn: &Connection,
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
                    if session_failed(&conn.session) {
                        return Err(format!(
                            "reading from a tunnel failed: {}",
                            conn.plain_io(&e)
                        ));
                    }
                    self.chan_done = true;
                    progress = true;
                }
            }
        }
        Ok(progress)
    }

    /// Buffer -> host socket.
    pub fn write_sock(&mut self) -> bool {
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
    pub fn finished(&self) -> bool {
        !self.write_pending
            && ((self.sock_done && self.to_chan.is_empty())
                || (self.chan_done && self.to_sock.is_empty()))
    }
}
