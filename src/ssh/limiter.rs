//! How many SSH handshakes may be in progress at once: at most a few per server (sshd's
//! `MaxStartups`, 10 unauthenticated connections by default, counts per server), and at most
//! a number sized from this machine's cores in all (a handshake costs CPU here too), so a
//! large fleet spread over many servers connects as fast as its servers accept.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

/// Handshakes at once to one server: under sshd's default `MaxStartups 10:30:100`, which
/// starts refusing at 10 unauthenticated connections.
pub const PER_SERVER: usize = 8;

/// Handshakes at once in all, per core of this machine.
pub const PER_CORE: usize = 16;

/// Limits concurrent handshakes across all workers; see the module docs.
#[derive(Debug)]
pub struct HandshakeLimiter {
    per_server: usize,
    total: usize,
    busy: Mutex<Busy>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct Busy {
    total: usize,
    by_server: HashMap<String, usize>,
}

impl HandshakeLimiter {
    /// A limiter allowing `per_server` handshakes at once to one server and `total` in all.
    pub fn new(per_server: usize, total: usize) -> Self {
        HandshakeLimiter {
            per_server: per_server.max(1),
            total: total.max(1),
            busy: Mutex::new(Busy::default()),
            cond: Condvar::new(),
        }
    }

    /// The default limits: [`PER_SERVER`], and [`PER_CORE`] per core in all.
    pub fn sized_for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(PER_SERVER, PER_CORE * cores)
    }

    /// Runs `f` (one handshake with `server`, `host:port`) once both limits allow it.
    pub fn run<T>(&self, server: &str, f: impl FnOnce() -> T) -> T {
        {
            // The counters stay consistent even if a holder panicked, so a poisoned lock is
            // still safe to use.
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let here = busy.by_server.get(server).copied().unwrap_or(0);
                if busy.total < self.total && here < self.per_server {
                    break;
                }
                busy = self.cond.wait(busy).unwrap_or_else(|p| p.into_inner());
            }
            busy.total += 1;
            *busy.by_server.entry(server.to_string()).or_default() += 1;
        }
        let result = f();
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            busy.total -= 1;
            if let Some(n) = busy.by_server.get_mut(server) {
                *n -= 1;
                if *n == 0 {
                    busy.by_server.remove(server);
                }
            }
        }
        // Waiters wait for different servers: wake them all to look again.
        self.cond.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn limits_per_server_and_in_all() {
        let limiter = Arc::new(HandshakeLimiter::new(2, 3));
        let (total, a) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (max_total, max_a) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..12)
            .map(|i| {
                let (l, total, a) = (limiter.clone(), total.clone(), a.clone());
                let (max_total, max_a) = (max_total.clone(), max_a.clone());
                std::thread::spawn(move || {
                    let server = if i % 2 == 0 {
                        "a:22"
                    } else {
                        format!("b{i}:22").leak()
                    };
                    l.run(server, || {
                        let t = total.fetch_add(1, Ordering::SeqCst) + 1;
                        max_total.fetch_max(t, Ordering::SeqCst);
                        if server == "a:22" {
                            let n = a.fetch_add(1, Ordering::SeqCst) + 1;
                            max_a.fetch_max(n, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(20));
                        if server == "a:22" {
                            a.fetch_sub(1, Ordering::SeqCst);
                        }
                        total.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(max_total.load(Ordering::SeqCst), 3);
        assert!(max_a.load(Ordering::SeqCst) <= 2);
    }
}
