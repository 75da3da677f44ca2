//! How a session's socket ended, as the kernel first said it. A reset is reported once: the
//! first `recv` or `send` after it returns `ECONNRESET`, every later one only an end of
//! stream or `EPIPE`. When that first call is libssh2's (a heartbeat's send answered by a
//! firewall's or a forgetful NAT's reset), libssh2 keeps only its own code for every cause
//! ("the server closed the connection"), and the socket shows what an orderly close shows.
//! So every session's reads and writes go through [`watch`]'s callbacks, which keep the first
//! failure the kernel returned on each socket; [`ending`] reads it back (stop 61 tester t100:
//! a reset in answer to a heartbeat was said as the server closing the connection, and two of
//! them were learned as an idle limit).
//!
//! Kept per socket (fd) in one table, touched only when a read or write fails for good or a
//! socket's end is asked: never while sessions are healthy.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_void};
use std::sync::Mutex;

use ssh2::Session;

use super::agent_reply;
use super::callback;
use super::tcp_ack::{self, End};

/// How a session's socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server closed the connection in order (end of stream, or `EPIPE`: a reset in
    /// answer to data sent after the server's close).
    Closed,
    /// Reset (`ECONNRESET`: a process or firewall killing the connection, a NAT that forgot
    /// it), or aborted on this machine (`ECONNABORTED`, `ss -K`).
    Reset,
    /// The kernel gave up on a peer that acknowledged nothing (`ETIMEDOUT`, as
    /// `TCP_USER_TIMEOUT` ends a blackholed connection).
    TimedOut,
    /// A read or write failed with another error (errno), such as `EHOSTUNREACH`.
    Failed(i32),
}

/// What a read or write on a socket first failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    EndOfStream,
    Errno(i32),
}

/// The first failure seen on each socket since it was watched.
static FIRST: Mutex<Option<HashMap<RawFd, Failure>>> = Mutex::new(None);

fn with_table<R>(f: impl FnOnce(&mut HashMap<RawFd, Failure>) -> R) -> R {
    let mut table = FIRST.lock().unwrap_or_else(|p| p.into_inner());
    f(table.get_or_insert_with(HashMap::new))
}

/// Keeps `failure` as `fd`'s unless one is kept already.
fn note(fd: RawFd, failure: Failure) {
    with_table(|t| {
        t.entry(fd).or_insert(failure);
    });
}

/// Keeps `errno`, the error a read or write on `fd` returned, when it ends the connection:
/// "would block" and an interrupted call do not.
pub fn note_errno(fd: RawFd, errno: i32) {
    if !matches!(errno, libc::EAGAIN | libc::EINTR) {
        note(fd, Failure::Errno(errno));
    }
}

/// Forgets what a closed socket numbered `fd` kept: a new socket took the number.
pub fn forget(fd: RawFd) {
    with_table(|t| t.remove(&fd));
}

/// Routes `session`'s reads and writes of its socket `fd` through callbacks that keep their
/// first failure; forgets what an earlier socket of the same number kept. Called on the
/// session's owner thread before the handshake.
pub fn watch(session: &Session, fd: RawFd) {
    forget(fd);
    type Recv = unsafe extern "C" fn(c_int, *mut c_void, usize, c_int, *mut *mut c_void) -> isize;
    type Send = unsafe extern "C" fn(c_int, *const c_void, usize, c_int, *mut *mut c_void) -> isize;
    let (recv, send): (Recv, Send) = (on_recv, on_send);
    let raw = callback::raw_session(session);
    // SAFETY: the session is alive and used by this thread only; the callbacks have the
    // signatures LIBSSH2_RECV_FUNC and LIBSSH2_SEND_FUNC give, and libssh2 calls them through
    // the generic pointer type they are stored as.
    unsafe {
        callback::set(
            raw,
            callback::RECV,
            Some(std::mem::transmute::<Recv, callback::Generic>(recv)),
        );
        callback::set(
            raw,
            callback::SEND,
            Some(std::mem::transmute::<Send, callback::Generic>(send)),
        );
    }
}

/// The error of the call just made, as libssh2's own `_libssh2_recv`/`_libssh2_send` return
/// it: negated, "would block" as `-EAGAIN`.
fn failed(socket: c_int) -> isize {
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    let errno = match errno {
        libc::EWOULDBLOCK => libc::EAGAIN,
        e => e,
    };
    note_errno(socket, errno);
    -(errno as isize)
}

/// libssh2's `_libssh2_recv`, keeping the first failure (an end of stream included); an
/// ssh-agent's socket, which libssh2 reads through the session's callback too, is read by
/// [`agent_reply::recv`] while logging in.
unsafe extern "C" fn on_recv(
    socket: c_int,
    buffer: *mut c_void,
    length: usize,
    flags: c_int,
    _abstract: *mut *mut c_void,
) -> isize {
    // SAFETY: libssh2 passes a buffer of `length` writable bytes.
    if let Some(n) = unsafe { agent_reply::recv(socket, buffer, length, flags) } {
        return n;
    }
    // SAFETY: libssh2 passes its socket and a buffer of `length` writable bytes.
    let n = unsafe { libc::recv(socket, buffer, length, flags) };
    match n {
        n if n < 0 => failed(socket),
        0 if length > 0 => {
            note(socket, Failure::EndOfStream);
            0
        }
        n => n,
    }
}

/// libssh2's `_libssh2_send`, keeping the first failure.
unsafe extern "C" fn on_send(
    socket: c_int,
    buffer: *const c_void,
    length: usize,
    flags: c_int,
    _abstract: *mut *mut c_void,
) -> isize {
    // SAFETY: libssh2 passes its socket and `length` readable bytes.
    let n = unsafe { libc::send(socket, buffer, length, flags) };
    match n {
        n if n < 0 => failed(socket),
        n => n,
    }
}

/// How `fd`'s connection ended, if it did: as its first failed read or write said (see the
/// module docs), else as its TCP state says ([`tcp_ack::end`]). `None` while it is open.
pub fn ending(fd: RawFd) -> Option<Ending> {
    let kept = with_table(|t| t.get(&fd).copied());
    let state = || {
        tcp_ack::end(fd).map(|end| match end {
            End::Closed => Ending::Closed,
            End::TimedOut => Ending::TimedOut,
        })
    };
    match kept {
        Some(Failure::Errno(libc::ECONNRESET | libc::ECONNABORTED)) => Some(Ending::Reset),
        Some(Failure::Errno(libc::ETIMEDOUT)) => Some(Ending::TimedOut),
        Some(Failure::Errno(libc::EPIPE)) => Some(Ending::Closed),
        // An end of stream is also what is left once the kernel's timeout was read by a call
        // not watched: the TCP state tells it apart.
        Some(Failure::EndOfStream) | None => state(),
        Some(Failure::Errno(errno)) => Some(Ending::Failed(errno)),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd as _;
    use std::time::Duration;

    /// A loopback connection, (client, server end), nothing kept for the client's fd (a
    /// closed socket of another test may have had its number).
    pub(in crate::ssh) fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        forget(client.as_raw_fd());
        (client, server)
    }

    /// Closes `server` with a reset (SO_LINGER 0), as a connection killed outright.
    pub(in crate::ssh) fn reset(server: TcpStream) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a correctly sized option value.
        unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(server);
        std::thread::sleep(Duration::from_millis(100));
    }

    fn recv(fd: RawFd) -> isize {
        let mut buf = [0u8; 8];
        // SAFETY: an open socket and a valid buffer.
        unsafe { on_recv(fd, buf.as_mut_ptr().cast(), 8, 0, std::ptr::null_mut()) }
    }

    #[test]
    fn a_reset_read_first_by_a_watched_call_is_a_reset_though_the_socket_shows_an_end() {
        let (client, server) = pair();
        let fd = client.as_raw_fd();
        reset(server);
        assert_eq!(recv(fd), -(libc::ECONNRESET as isize));
        // The kernel said it once: the socket now shows an end, with no retransmission.
        assert_eq!(recv(fd), 0);
        assert_eq!(tcp_ack::end(fd), Some(End::Closed));
        assert_eq!(ending(fd), Some(Ending::Reset));
    }

    #[test]
    fn an_orderly_close_is_closed_and_would_block_is_nothing() {
        let (client, mut server) = pair();
        let fd = client.as_raw_fd();
        client.set_nonblocking(true).unwrap();
        assert_eq!(recv(fd), -(libc::EAGAIN as isize));
        assert_eq!(ending(fd), None, "open");
        server.write_all(b"x").unwrap();
        drop(server);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(recv(fd), 1);
        assert_eq!(recv(fd), 0);
        assert_eq!(ending(fd), Some(Ending::Closed));
    }

    #[test]
    fn data_sent_after_the_servers_close_is_still_its_close() {
        let (client, server) = pair();
        let fd = client.as_raw_fd();
        drop(server);
        std::thread::sleep(Duration::from_millis(100));
        let send = |bytes: &[u8]| {
            // SAFETY: an open socket and valid bytes.
            unsafe {
                on_send(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_NOSIGNAL,
                    std::ptr::null_mut(),
                )
            }
        };
        // The first send is taken; the server's kernel answers it with a reset, which on a
        // connection the server closed reads as EPIPE.
        assert_eq!(send(b"ping"), 4);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(send(b"ping"), -(libc::EPIPE as isize));
        assert_eq!(ending(fd), Some(Ending::Closed));
    }
}
