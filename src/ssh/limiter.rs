//! How many SSH handshakes may be in progress at once.

use std::sync::{Condvar, Mutex};

/// Limits concurrent handshakes across all workers, so that a burst of connections never
/// trips sshd's `MaxStartups` (10 unauthenticated connections by default).
#[derive(Debug)]
pub struct HandshakeLimiter {
    free: Mutex<usize>,
    cond: Condvar,
}

impl HandshakeLimiter {
    /// A limiter allowing `n` handshakes at once.
    pub fn new(n: usize) -> Self {
        HandshakeLimiter {
            free: Mutex::new(n.max(1)),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            // The counter stays consistent even if a holder panicked, so a poisoned lock is
            // still safe to use.
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            while *free == 0 {
                free = self.cond.wait(free).unwrap_or_else(|p| p.into_inner());
            }
            *free -= 1;
        }
        let result = f();
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cond.notify_one();
        result
    }
}
