//! How an idle connection was found dead, told from the socket itself rather than from
//! libssh2's words: only a connection the server closed in order can have met an idle limit
//! (sshd's `UnusedConnectionTimeout` or `ClientAliveCountMax` ending it with a FIN). A reset
//! (RST: a process or firewall killing the connection outright, a NAT that forgot it) or a
//! connection that no longer answers (blackholed) says nothing about how long the server lets
//! a session idle, and is never learned as such.
//!
//! libssh2 reads the socket's end and reports it as one code for every cause, so the socket is
//! looked at ([`peek`]) before the heartbeat touches it, and again after a heartbeat failed,
//! with what libssh2's own reads and writes were told first ([`socket_end`]).

use std::os::fd::RawFd;

use super::socket_end::{self, Ending};

/// How an idle connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleDeath {
    /// The server closed the TCP connection in order (end of stream).
    Closed,
    /// The connection was reset (`ECONNRESET`), or aborted on this machine (`ECONNABORTED`).
    Reset,
    /// No answer within the heartbeat's deadline (seen by the heartbeat, or by the kernel:
    /// `ETIMEDOUT` from `TCP_USER_TIMEOUT`).
    Silent,
    /// libssh2 failed while the socket still looked open.
    Other,
}

impl IdleDeath {
    /// Whether an idle limit of the server can explain it.
    pub fn may_be_idle_limit(self) -> bool {
        self == IdleDeath::Closed
    }

    /// How to say it when libssh2's words would mislead: it reports a reset as a failed send
    /// or a connection the server closed.
    pub fn words(self) -> Option<&'static str> {
        match self {
            IdleDeath::Reset => Some("the connection was reset"),
            // libssh2 says only that a send failed on a socket the kernel timed out.
            IdleDeath::Silent => Some("timed out"),
            IdleDeath::Closed | IdleDeath::Other => None,
        }
    }

    /// The death of a session whose heartbeat failed (`timed_out`: no answer by its deadline;
    /// else an error): what the socket showed before the heartbeat (`before`, from [`peek`])
    /// if anything, else what the failure and the socket say now.
    pub fn of(before: Option<IdleDeath>, timed_out: bool, fd: RawFd) -> IdleDeath {
        if let Some(seen) = before {
            return seen;
        }
        match timed_out {
            true => IdleDeath::Silent,
            false => peek(fd).unwrap_or(IdleDeath::Other),
        }
    }
}

impl From<Ending> for IdleDeath {
    fn from(ending: Ending) -> IdleDeath {
        match ending {
            Ending::Closed => IdleDeath::Closed,
            Ending::Reset => IdleDeath::Reset,
            Ending::TimedOut => IdleDeath::Silent,
            Ending::Failed(_) => IdleDeath::Other,
        }
    }
}

/// Looks at `fd` without consuming anything but its pending error: `Some(Closed)` at end of
/// stream, `Some(Reset)` when the connection was reset, `Some(Silent)` when the kernel gave
/// up on it (`ETIMEDOUT`), `None` while it is open (data waiting or not). An end is told by
/// what the first read or write to meet it was told ([`socket_end::ending`]).
pub fn peek(fd: RawFd) -> Option<IdleDeath> {
    let mut byte = 0u8;
    // SAFETY: `fd` is a socket the caller owns; the buffer is one valid byte.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        // An end of stream is also what is left once the kernel's own error (a reset, a
        // timeout) was read by libssh2.
        0 => Some(socket_end::ending(fd).map_or(IdleDeath::Closed, IdleDeath::from)),
        n if n > 0 => None,
        _ => {
            let errno = std::io::Error::last_os_error().raw_os_error()?;
            // This read took the error: later ones see only the end.
            socket_end::note_errno(fd, errno);
            match errno {
                // Reset by the server, or aborted on this machine (`ss -K`): not the server's
                // doing in order either way.
                libc::ECONNRESET | libc::ECONNABORTED => Some(IdleDeath::Reset),
                libc::ETIMEDOUT => Some(IdleDeath::Silent),
                // EAGAIN: open and quiet; anything else is not the server's doing either.
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    use std::time::Duration;

    use crate::ssh::socket_end::tests::{pair, reset};

    fn settle() {
        std::thread::sleep(Duration::from_millis(100));
    }

    #[test]
    fn open_closed_and_reset_connections_are_told_apart() {
        let (client, mut server) = pair();
        assert_eq!(peek(client.as_raw_fd()), None);
        server.write_all(b"x").unwrap();
        settle();
        assert_eq!(peek(client.as_raw_fd()), None, "data waiting is not an end");
        drop(server);
        settle();
        // The byte is still unread: the end is behind it.
        assert_eq!(peek(client.as_raw_fd()), None);

        let (client, server) = pair();
        drop(server);
        settle();
        assert_eq!(peek(client.as_raw_fd()), Some(IdleDeath::Closed));
        assert!(IdleDeath::Closed.may_be_idle_limit());

        let (client, server) = pair();
        reset(server);
        let fd = client.as_raw_fd();
        assert_eq!(peek(fd), Some(IdleDeath::Reset));
        assert!(!IdleDeath::Reset.may_be_idle_limit());
        assert_eq!(IdleDeath::of(None, true, fd), IdleDeath::Silent);
        assert!(!IdleDeath::Silent.may_be_idle_limit());
    }
}
