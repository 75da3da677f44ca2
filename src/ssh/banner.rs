//! Waiting for the server's SSH identification line ("banner") before libssh2's handshake,
//! so that a server that is not an SSH server, or that hangs up at once, is reported for what
//! it did rather than as a libssh2 error code.
//!
//! RFC 4253 §4.2: once the connection is open both sides send `SSH-2.0-...\r\n`; the server
//! may send other lines first (ssh accepts up to 1024 of them, kex.c). tether peeks at the
//! socket (`MSG_PEEK`, so libssh2 then reads the same bytes) until such a line has arrived,
//! the peer closes the connection, or the deadline passes. A peer that sends nothing within
//! [`SILENT_GRACE`] is handed to libssh2 anyway (it sends its own identification first, so a
//! server that waits for the client's line still connects); the handshake's own deadline then
//! applies.
//!
//! sshd closes connections beyond `MaxStartups` right after accepting them (9.2 writes
//! `Exceeded MaxStartups`, later versions `Not allowed at this time`): that is
//! [`BannerProblem::Closed`], which [`super::connect::connect`] retries as transient.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::duration::format as format_duration;
use crate::ssh::config::ConnectBound;

/// How long a peer that has sent nothing at all is waited for before libssh2 takes over.
pub const SILENT_GRACE: Duration = Duration::from_secs(2);

/// How much of the peer's first bytes is looked at (libssh2 skips longer preambles itself).
const PEEK_MAX: usize = 4096;

/// Why no SSH session could be set up with a server that accepted the TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BannerProblem {
    /// Nothing at all arrived before the deadline.
    Silent {
        /// `ConnectTimeout`, or what was left of a shorter bound (`bound`).
        timeout: Duration,
        /// What bounded the attempt.
        bound: ConnectBound,
        /// Whether the stream is a TCP connection (else a jump host's tunnel or a proxy
        /// command's pipe, which say nothing about whether anything accepted it).
        tcp: bool,
    },
    /// Bytes arrived, but no `SSH-` line, before the deadline.
    NotSsh {
        /// `ConnectTimeout`, or what was left of a shorter bound (`bound`).
        timeout: Duration,
        /// What bounded the attempt.
        bound: ConnectBound,
        /// The printable part of what it sent (at most 200 characters).
        said: String,
    },
    /// The peer closed (or reset) the connection before its SSH banner.
    Closed {
        /// The printable part of what it sent first, if anything (`Exceeded MaxStartups`).
        said: String,
        /// How many connections it closed this way (retries included).
        attempts: u32,
        /// From the first connect to the last close.
        elapsed: Duration,
        /// What bounded the retries.
        bound: ConnectBound,
    },
    /// The key exchange finished but the server did not answer the login before the deadline
    /// (an `AuthorizedKeysCommand` or a name lookup that hangs): tether's `ConnectTimeout`
    /// covers authentication, ssh's ends with the key exchange.
    LoginTimeout {
        /// `ConnectTimeout`, or what was left of a shorter bound (`bound`).
        timeout: Duration,
        /// What bounded the attempt.
        bound: ConnectBound,
        /// The user logging in.
        user: String,
    },
    /// The banner arrived but the key exchange did not finish before the deadline.
    KexTimeout {
        /// `ConnectTimeout`, or what was left of a shorter bound (`bound`).
        timeout: Duration,
        /// What bounded the attempt.
        bound: ConnectBound,
        /// The server's identification line.
        banner: String,
    },
}

impl std::fmt::Display for BannerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BannerProblem::Silent {
                timeout,
                bound,
                tcp: true,
            } => write!(
                f,
                "accepted the TCP connection but sent no SSH banner within {} ({bound}); is an \
                 SSH server listening there?",
                format_duration(*timeout)
            ),
            BannerProblem::Silent {
                timeout,
                bound,
                tcp: false,
            } => write!(
                f,
                "sent nothing through the tunnel or proxy command within {} ({bound}): no SSH \
                 banner",
                format_duration(*timeout)
            ),
            BannerProblem::NotSsh {
                timeout,
                bound,
                said,
            } if said.starts_with("SSH-") => write!(
                f,
                "sent only part of its SSH banner ({said:?}) within {} ({bound})",
                format_duration(*timeout)
            ),
            BannerProblem::NotSsh {
                timeout,
                bound,
                said,
            } => write!(
                f,
                "sent no SSH banner within {} ({bound}), only {said:?}: not an SSH server?",
                format_duration(*timeout)
            ),
            BannerProblem::Closed {
                said,
                attempts,
                elapsed,
                bound,
            } => {
                f.write_str("closed the connection before sending its SSH banner")?;
                if !said.is_empty() {
                    write!(f, " (it said {said:?})")?;
                }
                if *attempts > 1 {
                    write!(
                        f,
                        ", {attempts} times in {} (sshd drops connections beyond its \
                         MaxStartups; tether retried until {bound})",
                        format_duration(*elapsed)
                    )?;
                }
                Ok(())
            }
            BannerProblem::LoginTimeout {
                timeout,
                bound,
                user,
            } => {
                write!(
                    f,
                    "did not answer the login as {user} within {} ({bound}",
                    format_duration(*timeout)
                )?;
                match bound {
                    ConnectBound::ConnectTimeout => {
                        f.write_str(": tether's covers authentication, ssh's does not)")
                    }
                    _ => f.write_str(")"),
                }
            }
            BannerProblem::KexTimeout {
                timeout,
                bound,
                banner,
            } => write!(
                f,
                "sent its banner ({banner}) but the SSH key exchange did not finish within {} \
                 ({bound})",
                format_duration(*timeout)
            ),
        }
    }
}

/// What [`wait`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// An `SSH-` line arrived (or more than a preamble's worth of bytes): hand over to
    /// libssh2.
    Banner,
    /// Nothing arrived within [`SILENT_GRACE`]: hand over to libssh2, which speaks first.
    Nothing,
}

/// Waits until the peer on `fd` has sent its SSH identification line, without consuming
/// anything. `timeout` is `ConnectTimeout` (or the shorter `bound` that replaced it), for
/// messages; `deadline` is when it runs out.
/// Errors: [`BannerProblem::Closed`] (with `attempts` 1), [`BannerProblem::NotSsh`],
/// [`BannerProblem::Silent`] (only when the deadline is within the grace).
pub fn wait(
    fd: RawFd,
    deadline: Instant,
    timeout: Duration,
    bound: ConnectBound,
) -> Result<Seen, BannerProblem> {
    let started = Instant::now();
    let mut buf = vec![0u8; PEEK_MAX];
    let mut seen = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(match seen {
                0 => BannerProblem::Silent {
                    timeout,
                    bound,
                    tcp: is_tcp(fd),
                },
                n => BannerProblem::NotSsh {
                    timeout,
                    bound,
                    said: printable(&buf[..n]),
                },
            });
        }
        if seen == 0 && now >= started + SILENT_GRACE {
            return Ok(Seen::Nothing);
        }
        // Until something arrives, poll() wakes on it; after that the socket stays readable
        // (nothing is consumed), so wait for more in short sleeps. POLLRDHUP tells a peer that
        // closed after sending something (sshd's "Exceeded MaxStartups") from one still
        // sending its preamble.
        let slice = if seen == 0 {
            (deadline - now).min(started + SILENT_GRACE - now)
        } else {
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
            Duration::ZERO
        };
        let mut fds = [libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        }];
        super::poll::poll_fds(&mut fds, slice).map_err(|_| closed(&buf[..seen]))?;
        let hung_up = fds[0].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes for the whole call.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return Err(closed(&buf[..seen]));
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted if !hung_up => {
                    continue
                }
                _ => return Err(closed(&buf[..seen])),
            }
        }
        seen = n as usize;
        if has_banner(&buf[..seen]) || seen == buf.len() {
            return Ok(Seen::Banner);
        }
        if hung_up {
            return Err(closed(&buf[..seen]));
        }
    }
}

/// Whether `fd` is an IPv4 or IPv6 socket (a TCP connection, as tether opens no others).
pub fn is_tcp(fd: RawFd) -> bool {
    // SAFETY: an all-zero sockaddr_storage is a valid value; getsockname writes at most `len`
    // bytes into it.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes for the whole call.
    let rc = unsafe { libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    rc == 0 && matches!(i32::from(addr.ss_family), libc::AF_INET | libc::AF_INET6)
}

fn closed(said: &[u8]) -> BannerProblem {
    BannerProblem::Closed {
        said: printable(said),
        attempts: 1,
        elapsed: Duration::ZERO,
        // Retried by the caller (`connect::retrying_drops`), which says what bounds it.
        bound: ConnectBound::ConnectTimeout,
    }
}

/// Whether `bytes` hold a complete line starting with `SSH-` (at the start or after a `\n`).
fn has_banner(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        if rest.starts_with(b"SSH-") {
            return true;
        }
        rest = &rest[end + 1..];
    }
    false
}

/// The printable part of what a peer sent, lines joined with ` `, at most 200 characters.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let joined: String = text
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match joined.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &joined[..at]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn banners() {
        assert!(has_banner(b"SSH-2.0-OpenSSH_9.2\r\n"));
        assert!(has_banner(b"hello\r\nSSH-2.0-x\r\n"));
        assert!(!has_banner(b"SSH-2.0-incomplete"));
        assert!(!has_banner(b"xSSH-2.0-x\r\n"));
        assert_eq!(
            printable(b"Exceeded MaxStartups\r\n"),
            "Exceeded MaxStartups"
        );
        assert_eq!(printable(b"a\r\nb\x07\n"), "a b");
    }

    #[test]
    fn closed_garbage_and_banner() {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"Exceeded MaxStartups\r\n").unwrap();
        drop(b);
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = wait(
            a.as_raw_fd(),
            deadline,
            Duration::from_secs(5),
            ConnectBound::ConnectTimeout,
        );
        assert!(
            matches!(&got, Err(BannerProblem::Closed { said, .. }) if said == "Exceeded MaxStartups"),
            "{got:?}"
        );

        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"garbage\r\n").unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        let got = wait(
            a.as_raw_fd(),
            deadline,
            Duration::from_millis(300),
            ConnectBound::ConnectTimeout,
        );
        assert!(
            matches!(&got, Err(BannerProblem::NotSsh { said, .. }) if said == "garbage"),
            "{got:?}"
        );
        // The banner may follow the preamble; nothing is consumed.
        b.write_all(b"SSH-2.0-x\r\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            wait(
                a.as_raw_fd(),
                deadline,
                Duration::from_secs(5),
                ConnectBound::ConnectTimeout
            ),
            Ok(Seen::Banner)
        );
        let mut first = [0u8; 7];
        std::io::Read::read_exact(&mut &a, &mut first).unwrap();
        assert_eq!(&first, b"garbage");
    }

    #[test]
    fn silent_peer() {
        let (a, _b) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(200);
        let got = wait(
            a.as_raw_fd(),
            deadline,
            Duration::from_millis(200),
            ConnectBound::ConnectTimeout,
        );
        assert_eq!(
            got,
            Err(BannerProblem::Silent {
                timeout: Duration::from_millis(200),
                bound: ConnectBound::ConnectTimeout,
                tcp: false,
            })
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
