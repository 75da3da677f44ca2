//! ssh-agent's answers while logging in: waited for within a bound, and read back for what
//! they were. libssh2 reads the agent with blocking reads and no timeout (agent.c
//! `agent_transact_unix`) and keeps only its own error codes, so an agent that lists its keys
//! and then never answers a request to sign (a token waiting for a touch nobody gives, a hung
//! agent) held the login and the run without end, past a SIGTERM; one that closed the
//! connection was said as the server closing it; one that refused to sign, as the server
//! refusing the key (tester t130).
//!
//! The agent's socket is read through the session's recv callback (see `socket_end.rs`),
//! which hands every read to [`recv`] first: inside [`watching`], a socket other than the
//! session's is the agent's. Its reads wait with [`poll_fds`] (given up with the connection
//! attempt, see `poll::giving_up_when`) for at most the bound, and the type of each message it
//! answers with is kept for the caller.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::os::raw::c_void;
use std::time::{Duration, Instant};

use super::poll::{given_up, poll_fds};

/// `SSH_AGENT_FAILURE` (draft-miller-ssh-agent section 3.1): the agent refused.
const AGENT_FAILURE: u8 = 5;

/// The most of an answer's body kept to be read back: a signature is well under it.
const KEPT: usize = 16 * 1024;

/// The longest message libssh2 reads from an agent, its length included (agent.h
/// `AGENT_MAX_MSGLEN`; ssh reads up to 256 KiB).
const LIBSSH2_MOST: usize = 8192;

/// What the agent is asked (draft-miller-ssh-agent section 3), by the answer it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `SSH_AGENTC_REQUEST_IDENTITIES`, answered by `SSH_AGENT_IDENTITIES_ANSWER` (12).
    List,
    /// `SSH_AGENTC_SIGN_REQUEST`, answered by `SSH_AGENT_SIGN_RESPONSE` (14).
    Sign,
}

impl Request {
    /// The type of the message that answers it.
    fn answer(self) -> u8 {
        match self {
            Request::List => 12,
            Request::Sign => 14,
        }
    }

    /// Whether `body`, an answer of its type, can be read: a signature is a string holding
    /// the algorithm's name and the signature's bytes (section 3.6), as libssh2's agent.c
    /// `agent_sign` reads it. A list libssh2 reads itself, and says what it could not.
    fn readable(self, body: &[u8]) -> bool {
        fn string(b: &[u8]) -> Option<(&[u8], &[u8])> {
            let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
            let rest = &b[4..];
            Some((rest.get(..len)?, &rest[len..]))
        }
        match self {
            Request::List => true,
            Request::Sign => (|| {
                let (blob, _) = string(body.get(1..)?)?;
                let (method, rest) = string(blob)?;
                let (signature, _) = string(rest)?;
                (!method.is_empty() && !method.contains(&0) && !signature.is_empty()).then_some(())
            })()
            .is_some(),
        }
    }
}

/// How an agent failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTrouble {
    /// No answer within the bound (the one given).
    Silent(Duration),
    /// The connection attempt was given up (a signal, the run ending) while it was waited for.
    GivenUp,
    /// It closed the connection.
    Closed,
    /// Reading it failed with this errno.
    Failed(i32),
    /// It answered `SSH_AGENT_FAILURE`.
    Refused,
    /// It answered with a message of this type, not the one the request asks for.
    Unexpected(u8),
    /// It answered with a message of the right type that cannot be read (a signature that
    /// holds no algorithm and signature, a cut one).
    Malformed,
    /// It answered with a message of this many bytes, longer than libssh2 reads (an agent
    /// holding many keys: about 15 RSA-4096 keys fill it).
    TooLong(usize),
}

impl AgentTrouble {
    /// What the agent did when asked `what` ("to sign with it"), as words that follow
    /// "ssh-agent ".
    pub fn words(&self, what: &str) -> String {
        match self {
            AgentTrouble::Silent(within) => format!(
                "did not answer the request {what} within {}",
                crate::duration::format(*within)
            ),
            AgentTrouble::GivenUp => {
                format!("was still asked {what} when the connection attempt was given up")
            }
            AgentTrouble::Closed => format!("closed the connection when asked {what}"),
            AgentTrouble::Failed(errno) => format!(
                "could not be read when asked {what} ({})",
                std::io::Error::from_raw_os_error(*errno)
            ),
            AgentTrouble::Refused => format!("refused {what}"),
            AgentTrouble::Unexpected(kind) => format!(
                "answered the request {what} with a message of type {kind}, which answers no \
                 such request"
            ),
            AgentTrouble::Malformed => {
                format!("answered the request {what} with a message that cannot be read")
            }
            AgentTrouble::TooLong(bytes) => format!(
                "answered the request {what} with {bytes} bytes, more than libssh2 (which tether \
                 logs in with) reads, {LIBSSH2_MOST} (ssh reads it: an agent holding fewer keys \
                 is read)"
            ),
        }
    }
}

/// One agent conversation being watched on this thread.
struct Watched {
    /// The session's own socket, read as usual.
    session_fd: RawFd,
    /// How long one read of the agent may wait.
    within: Duration,
    trouble: Option<AgentTrouble>,
    frames: Frames,
}

thread_local! {
    static WATCHED: RefCell<Option<Watched>> = const { RefCell::new(None) };
}

/// Runs `f` (libssh2 calls that make `request` of the agent, on the thread that owns the
/// session whose socket is `session_fd`) with each read of the agent bounded by `within`;
/// then what went wrong: its own trouble (silent, closed, unreadable, given up), else its last
/// answer where that is not one to `request` or cannot be read (`None` where it answered
/// nothing: the server refused the key before the agent was asked).
pub fn watching<T>(
    session_fd: RawFd,
    within: Duration,
    request: Request,
    f: impl FnOnce() -> T,
) -> (T, Option<AgentTrouble>) {
    let before = WATCHED.with(|w| {
        w.borrow_mut().replace(Watched {
            session_fd,
            within,
            trouble: None,
            frames: Frames::default(),
        })
    });
    let out = f();
    let watched = WATCHED.with(|w| std::mem::replace(&mut *w.borrow_mut(), before));
    let trouble = watched.and_then(|w| {
        let too_long = (w.frames.announced + 4 > LIBSSH2_MOST).then_some(w.frames.announced + 4);
        w.trouble
            .or(too_long.map(AgentTrouble::TooLong))
            .or(match w.frames.body.first().copied() {
                Some(kind) if kind == request.answer() => {
                    let whole = w.frames.body_left == 0 && w.frames.body.len() < KEPT;
                    (!whole || !request.readable(&w.frames.body)).then_some(AgentTrouble::Malformed)
                }
                Some(AGENT_FAILURE) => Some(AgentTrouble::Refused),
                Some(kind) => Some(AgentTrouble::Unexpected(kind)),
                None => None,
            })
    });
    (out, trouble)
}

/// For the session's recv callback: `None` where `socket` is not an agent's being watched
/// (the caller reads it); else the read done here, as `recv(2)` returns it negated on error,
/// after waiting for the agent within the bound.
///
/// # Safety
/// `buffer` has `length` writable bytes.
pub unsafe fn recv(socket: RawFd, buffer: *mut c_void, length: usize, flags: i32) -> Option<isize> {
    let (within, trouble) = WATCHED
        .try_with(|w| {
            let w = w.try_borrow().ok()?;
            let w = w.as_ref().filter(|w| w.session_fd != socket)?;
            Some((w.within, w.trouble))
        })
        .ok()
        .flatten()?;
    // Once it failed, it is not read again: libssh2 would read an answer out of step.
    if trouble.is_some() {
        return Some(-(libc::EIO as isize));
    }
    let until = Instant::now() + within;
    let waited = loop {
        let mut fds = [libc::pollfd {
            fd: socket,
            events: libc::POLLIN,
            revents: 0,
        }];
        let left = until.saturating_duration_since(Instant::now());
        match poll_fds(&mut fds, left) {
            Ok(()) if fds[0].revents != 0 => break Ok(()),
            Err(_) if given_up() => break Err(AgentTrouble::GivenUp),
            Err(e) => break Err(AgentTrouble::Failed(e.raw_os_error().unwrap_or(libc::EIO))),
            Ok(()) if left.is_zero() => break Err(AgentTrouble::Silent(within)),
            // Interrupted, or a slice of the wait: again, until the bound.
            Ok(()) => {}
        }
    };
    // SAFETY: as the caller promised.
    let n = match waited {
        Ok(()) => unsafe { libc::recv(socket, buffer, length, flags) },
        Err(_) => -1,
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    let trouble = match (waited, n) {
        (Err(trouble), _) => Some(trouble),
        (Ok(()), 0) if length > 0 => Some(AgentTrouble::Closed),
        (Ok(()), n) if n < 0 => Some(AgentTrouble::Failed(errno.unwrap_or(libc::EIO))),
        _ => None,
    };
    let _ = WATCHED.try_with(|w| {
        if let Some(w) = w.try_borrow_mut().ok().as_mut().and_then(|w| w.as_mut()) {
            match trouble {
                Some(trouble) => w.trouble = Some(trouble),
                None => {
                    // SAFETY: `recv` wrote `n` (> 0 here) bytes into `buffer`.
                    let read =
                        unsafe { std::slice::from_raw_parts(buffer as *const u8, n as usize) };
                    w.frames.feed(read);
                }
            }
        }
    });
    // As libssh2's own `_libssh2_recv` would return it: a wait that ended unanswered as the
    // kernel's timeout.
    Some(match waited {
        Err(_) => -(libc::ETIMEDOUT as isize),
        Ok(()) if n < 0 => -(errno.unwrap_or(libc::EIO) as isize),
        Ok(()) => n,
    })
}

/// The agent's stream cut into its messages (a 4-byte length, then the body, whose first
/// byte is its type): the last one begun, its first [`KEPT`] bytes.
#[derive(Default)]
struct Frames {
    /// Bytes of the current length read so far.
    header: Vec<u8>,
    /// Bytes of the current body still to come.
    body_left: usize,
    /// The length the current message said it has.
    announced: usize,
    body: Vec<u8>,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left == 0 {
                let take = (4 - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() == 4 {
                    let mut len = [0u8; 4];
                    len.copy_from_slice(&self.header);
                    self.header.clear();
                    self.body_left = u32::from_be_bytes(len) as usize;
                    self.announced = self.body_left;
                    self.body.clear();
                }
                continue;
            }
            let take = self.body_left.min(bytes.len());
            let keep = take.min(KEPT.saturating_sub(self.body.len()));
            self.body.extend_from_slice(&bytes[..keep]);
            self.body_left -= take;
            bytes = &bytes[take..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::net::UnixStream;

    fn read(fd: RawFd, n: usize) -> isize {
        let mut buf = vec![0u8; n];
        // SAFETY: a buffer of `n` bytes.
        unsafe { recv(fd, buf.as_mut_ptr().cast(), n, 0) }.expect("an agent's socket")
    }

    #[test]
    fn messages_are_cut_at_their_lengths_however_they_are_read() {
        let mut f = Frames::default();
        f.feed(&[0, 0]);
        assert_eq!(f.body, b"");
        f.feed(&[0, 3, 14]);
        assert_eq!((&f.body[..], f.body_left), (&[14u8][..], 2));
        f.feed(&[1, 2, 0, 0, 0, 1]);
        assert_eq!(f.body, b"", "a new message begun, its type not read yet");
        f.feed(&[5]);
        assert_eq!((&f.body[..], f.body_left), (&[5u8][..], 0));
    }

    #[test]
    fn only_sockets_other_than_the_sessions_are_the_agents() {
        let (session, _peer) = UnixStream::pair().unwrap();
        let fd = session.as_raw_fd();
        let (out, trouble) = watching(fd, Duration::from_millis(50), Request::Sign, || {
            let mut buf = [0u8; 1];
            // SAFETY: a buffer of one byte.
            unsafe { recv(fd, buf.as_mut_ptr().cast(), 1, 0) }
        });
        assert_eq!((out, trouble), (None, None));
        // Outside `watching`, nothing is the agent's.
        let (agent, _peer) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 1];
        // SAFETY: a buffer of one byte.
        let outside = unsafe { recv(agent.as_raw_fd(), buf.as_mut_ptr().cast(), 1, 0) };
        assert_eq!(outside, None);
    }

    #[test]
    fn an_agent_is_silent_closed_refusing_or_answering_out_of_turn() {
        let (session, _s) = UnixStream::pair().unwrap();
        let within = Duration::from_millis(100);
        let watch = |agent: &UnixStream| {
            let fd = agent.as_raw_fd();
            watching(session.as_raw_fd(), within, Request::Sign, || {
                let first = read(fd, 4);
                if first > 0 {
                    read(fd, 64);
                }
                first
            })
        };
        let (agent, _quiet) = UnixStream::pair().unwrap();
        let started = Instant::now();
        assert_eq!(
            watch(&agent),
            (
                -(libc::ETIMEDOUT as isize),
                Some(AgentTrouble::Silent(within))
            )
        );
        assert!(started.elapsed() >= within);
        let (agent, gone) = UnixStream::pair().unwrap();
        drop(gone);
        assert_eq!(watch(&agent), (0, Some(AgentTrouble::Closed)));
        let framed = |body: &[u8]| [&(body.len() as u32).to_be_bytes()[..], body].concat();
        let string = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
        let signature = |method: &[u8], sig: &[u8]| {
            [
                &[14u8][..],
                &string(&[string(method), string(sig)].concat()),
            ]
            .concat()
        };
        for (reply, trouble) in [
            (framed(&[5]), Some(AgentTrouble::Refused)),
            (framed(&[99, 0]), Some(AgentTrouble::Unexpected(99))),
            (framed(&signature(b"ssh-ed25519", &[7; 40])), None),
            // A signature of junk (tester t131: said as the server refusing the key).
            (
                framed(&[&[14u8][..], &string(&[9; 20])].concat()),
                Some(AgentTrouble::Malformed),
            ),
            (framed(&[14]), Some(AgentTrouble::Malformed)),
            (
                framed(&signature(b"", &[7; 40])),
                Some(AgentTrouble::Malformed),
            ),
            (
                framed(&signature(b"ssh-ed25519", b"")),
                Some(AgentTrouble::Malformed),
            ),
            (
                framed(&signature(b"ssh\0ed25519", &[7; 40])),
                Some(AgentTrouble::Malformed),
            ),
        ] {
            let (agent, mut peer) = UnixStream::pair().unwrap();
            peer.write_all(&reply).unwrap();
            assert_eq!(watch(&agent), (4, trouble), "{reply:?}");
        }
        // Longer than libssh2 reads (tester t132: an agent of 18 RSA keys).
        let (agent, mut peer) = UnixStream::pair().unwrap();
        peer.write_all(&framed(&[12; 9000])).unwrap();
        assert_eq!(watch(&agent).1, Some(AgentTrouble::TooLong(9004)));
        // One cut short: the rest not there when libssh2 is done with it.
        let (agent, mut peer) = UnixStream::pair().unwrap();
        let whole = framed(&signature(b"ssh-ed25519", &[7; 40]));
        peer.write_all(&whole[..20]).unwrap();
        assert_eq!(watch(&agent).1, Some(AgentTrouble::Malformed));
    }

    #[test]
    fn a_wait_for_the_agent_ends_when_the_attempt_is_given_up() {
        let (session, _s) = UnixStream::pair().unwrap();
        let (agent, _quiet) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let (n, trouble) = crate::ssh::poll::giving_up_when(
            move || started.elapsed() > Duration::from_millis(100),
            || {
                watching(
                    session.as_raw_fd(),
                    Duration::from_secs(30),
                    Request::Sign,
                    || read(agent.as_raw_fd(), 4),
                )
            },
        );
        assert!(n < 0);
        assert_eq!(trouble, Some(AgentTrouble::GivenUp));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
