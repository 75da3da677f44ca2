//! Whether the server's TCP stack acknowledged everything the session sent: how a protocol
//! keepalive, which asks for no answer, is known to have arrived (Linux `TCP_INFO`, tcp(7)).
//!
//! A keepalive sent with `want_reply` would be answered, but the answer would sit unread on
//! the socket (only a libssh2 call reads it) and wake the idle worker as if the server had
//! spoken. The acknowledgement of its TCP segment proves the same round trip to the server's
//! machine without a byte for libssh2 to read.

use std::os::fd::RawFd;
use std::time::Duration;

/// What `TCP_INFO` says of a connection's sent data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acks {
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// The kernel's smoothed round-trip time (`tcpi_rtt`, microseconds there).
    pub rtt: Duration,
    /// Retransmission timeouts in a row for the oldest segment not yet acknowledged
    /// (`tcpi_retransmits`).
    pub retransmits: u8,
}

/// `TCP_INFO` of `fd`; `None` when `fd` is not a TCP socket (a proxy command's or jump host's
/// socket pair) or the kernel does not say.
pub fn acks(fd: RawFd) -> Option<Acks> {
    tcp_info(fd).map(|info| Acks {
        unacked: info.tcpi_unacked,
        rtt: Duration::from_micros(u64::from(info.tcpi_rtt)),
        retransmits: info.tcpi_retransmits,
    })
}

fn tcp_info(fd: RawFd) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain data, valid when zeroed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is a socket the caller owns; `info` and `len` describe a buffer of the
    // size given, which the kernel fills at most.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

/// How a TCP connection that no longer works ended, as its state says once the error itself
/// has been read (`recv` then returns end of stream whatever the cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server ended it: its FIN came (`CLOSE_WAIT` and after), or a reset that the error,
    /// read already, said (a reset after the FIN, answering what was sent since, leaves the
    /// same state: the FIN is what counts).
    Closed,
    /// The kernel gave up retransmitting or probing a zero window (`TCP_USER_TIMEOUT` or its
    /// retries): the server's TCP acknowledged nothing, a blackhole or a host gone.
    TimedOut,
}

/// How the connection of `fd` ended; `None` while it is open, or when `fd` is not TCP.
pub fn end(fd: RawFd) -> Option<End> {
    let info = tcp_info(fd)?;
    match u32::from(info.tcpi_state) {
        // CLOSE with segments still unacknowledged, or window probes unanswered, when it was
        // abandoned.
        7 if info.tcpi_retransmits > 0 || info.tcpi_probes > 0 => Some(End::TimedOut),
        // CLOSE; CLOSE_WAIT, LAST_ACK, CLOSING: the server's FIN came.
        7 | 8 | 9 | 11 => Some(End::Closed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd as _;
    use std::time::Instant;

    fn acked(fd: RawFd) -> bool {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if acks(fd).is_some_and(|a| a.unacked == 0) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_socket_pair_is_not_tcp() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(acks(a.as_raw_fd()), None);
    }

    /// Data the peer's kernel received is acknowledged even though nobody read it (a
    /// blackholed peer's is not: see the keepalive tests, which need a network namespace).
    #[test]
    fn sent_data_is_acknowledged_by_the_peers_kernel() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let fd = client.as_raw_fd();
        assert_eq!(acks(fd).map(|a| a.unacked), Some(0));
        client.write_all(b"keepalive").unwrap();
        assert!(acked(fd), "{:?}", acks(fd));
    }
}
