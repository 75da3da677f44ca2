//! `poll(2)` on raw descriptors, for the owner threads, the banner wait and config files that
//! are pipes, and the give-up check of a connection attempt that nothing waits for any more:
//! the lowest layer, importing nothing of tether's.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often a wait of a thread that may [give up](giving_up_when) looks whether it should.
const GIVE_UP_CHECK: Duration = Duration::from_millis(50);

thread_local! {
    /// What says this thread's connection attempt is no longer wanted (see
    /// [`giving_up_when`]); `None` outside one.
    static GIVE_UP: RefCell<Option<Rc<dyn Fn() -> bool>>> = const { RefCell::new(None) };
}

/// Runs `attempt` (a connection attempt: TCP connect, banner, handshake, authentication) so
/// that every wait of this thread inside it ([`poll_fds`], [`pause`]) ends early, failing,
/// once `give_up` says so (checked every 50 ms): Ctrl-C came, or the pool closed, while a host
/// that never answered held its thread for up to `ConnectTimeout`. The caller asks `give_up`
/// again to tell that failure from the attempt's own.
pub fn giving_up_when<T>(give_up: impl Fn() -> bool + 'static, attempt: impl FnOnce() -> T) -> T {
    let before = GIVE_UP.with(|g| g.borrow_mut().replace(Rc::new(give_up)));
    let out = attempt();
    GIVE_UP.with(|g| *g.borrow_mut() = before);
    out
}

/// Whether this thread's connection attempt is to be given up now (see [`giving_up_when`]).
pub fn given_up() -> bool {
    let check = GIVE_UP.with(|g| g.borrow().clone());
    check.is_some_and(|f| f())
}

fn give_up_error() -> std::io::Error {
    std::io::Error::other("the connection attempt was given up")
}

/// Waits until `fds` are ready (or `timeout` passes); returns which were ready. Inside
/// [`giving_up_when`], fails once the attempt is given up.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<()> {
    let until = Instant::now() + timeout;
    loop {
        if given_up() {
            return Err(give_up_error());
        }
        let watched = GIVE_UP.with(|g| g.borrow().is_some());
        let left = until.saturating_duration_since(Instant::now());
        let slice = if watched {
            left.min(GIVE_UP_CHECK)
        } else {
            left
        };
        // Rounded up: a timeout that truncates to 0 ms would make a deadline loop spin.
        let ms = slice.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for the whole call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
            return Ok(());
        }
        if rc > 0 || slice >= left {
            return Ok(());
        }
    }
}

/// Sleeps for `d`; inside [`giving_up_when`], returns early once the attempt is given up.
pub fn pause(d: Duration) {
    let until = Instant::now() + d;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || given_up() {
            return;
        }
        let watched = GIVE_UP.with(|g| g.borrow().is_some());
        std::thread::sleep(if watched {
            left.min(GIVE_UP_CHECK)
        } else {
            left
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd as _;
    use std::time::Instant;

    /// Regression: a timeout under 1 ms was truncated to 0, so `poll()` returned at once and a
    /// loop waiting for a deadline spun instead of sleeping.
    #[test]
    fn poll_waits_for_a_sub_millisecond_timeout() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fds = [libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let started = Instant::now();
        poll_fds(&mut fds, Duration::from_micros(700)).unwrap();
        assert!(started.elapsed() >= Duration::from_micros(700));
        assert_eq!(fds[0].revents, 0);
    }
}
