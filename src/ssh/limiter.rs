//! How many SSH handshakes may be in progress at once: at most a few per server (sshd's
//! `MaxStartups`, 10 unauthenticated connections by default, counts per server), and at most
//! a number sized from this machine's cores in all (a handshake costs CPU here too), so a
//! large fleet spread over many servers connects as fast as its servers accept.
//!
//! A thousand hosts start connecting at once, so almost all of them wait here. A finished
//! handshake hands its slot to the first waiter that may take it and wakes that thread only:
//! waking every waiter to look again (one condition variable for all) made each of 1000
//! handshakes wake 1000 threads, a million wake-ups in all.
//!
//! While the pool starts its workers it [holds](HandshakeLimiter::hold) the limiter: no
//! handshake starts until every worker thread exists. Starting 1000 threads one by one while
//! the first hundreds already connect left the starting thread one runnable thread among
//! hundreds (and the sshds they woke): it took 28 s to start them, the connecting 1.5 s more.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

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
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Handshakes in progress, in all and per server.
    total: usize,
    by_server: HashMap<String, usize>,
    /// Threads waiting for a slot, first come first served among those that may go.
    waiting: VecDeque<Arc<Waiter>>,
    /// Holds in force (see [`HandshakeLimiter::hold`]): no handshake starts meanwhile.
    held: usize,
}

/// One thread waiting in [`HandshakeLimiter::run`].
#[derive(Debug)]
struct Waiter {
    server: String,
    /// Set (with the slot already counted for it) by the thread that hands it over.
    granted: AtomicBool,
    thread: Thread,
}

impl State {
    fn may_start(&self, server: &str, limiter: &HandshakeLimiter) -> bool {
        self.held == 0
            && self.total < limiter.total
            && self.by_server.get(server).copied().unwrap_or(0) < limiter.per_server
    }

    fn take(&mut self, server: &str) {
        self.total += 1;
        *self.by_server.entry(server.to_string()).or_default() += 1;
    }

    fn give_back(&mut self, server: &str) {
        self.total -= 1;
        if let Some(n) = self.by_server.get_mut(server) {
            *n -= 1;
            if *n == 0 {
                self.by_server.remove(server);
            }
        }
    }
}

/// Gives the slot back when the handshake ends, also by a panic.
struct Slot<'a> {
    limiter: &'a HandshakeLimiter,
    server: &'a str,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.give_back(self.server);
        self.limiter.hand_over(&mut state);
    }
}

/// While it lives, no handshake starts (see [`HandshakeLimiter::hold`]).
#[derive(Debug)]
pub struct Hold<'a> {
    limiter: &'a HandshakeLimiter,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        state.held -= 1;
        self.limiter.hand_over(&mut state);
    }
}

impl HandshakeLimiter {
    /// Keeps every handshake from starting until the returned guard is dropped (those in
    /// progress go on); then the waiters start in the order they came, as the limits allow.
    /// For starting many workers at once: see the module docs.
    pub fn hold(&self) -> Hold<'_> {
        self.state().held += 1;
        Hold { limiter: self }
    }

    /// A limiter allowing `per_server` handshakes at once to one server and `total` in all.
    pub fn new(per_server: usize, total: usize) -> Self {
        HandshakeLimiter {
            per_server: per_server.max(1),
            total: total.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The default limits: [`PER_SERVER`], and [`PER_CORE`] per core in all.
    pub fn sized_for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(PER_SERVER, PER_CORE * cores)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The counters are changed only together, under the lock, by code that cannot panic
        // in between, so a poisoned lock still holds consistent counts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` (one handshake with `server`, `host:port`) once both limits allow it; waits
    /// (parked, woken only when a slot is handed to it) until then.
    pub fn run<T>(&self, server: &str, f: impl FnOnce() -> T) -> T {
        let waiter = {
            let mut state = self.state();
            // Every waiter that could go was handed a slot when one was last freed, so
            // taking a free slot now passes nobody who could have used it.
            if state.may_start(server, self) {
                state.take(server);
                None
            } else {
                let w = Arc::new(Waiter {
                    server: server.to_string(),
                    granted: AtomicBool::new(false),
                    thread: std::thread::current(),
                });
                state.waiting.push_back(w.clone());
                Some(w)
            }
        };
        if let Some(w) = waiter {
            // park() may return spuriously; only the flag says the slot is ours.
            while !w.granted.load(Ordering::Acquire) {
                std::thread::park();
            }
        }
        let _slot = Slot {
            limiter: self,
            server,
        };
        f()
    }

    /// Hands free slots to the first waiters that may take them, and wakes those.
    fn hand_over(&self, state: &mut State) {
        let mut i = 0;
        while i < state.waiting.len() && state.total < self.total && state.held == 0 {
            if state.may_start(&state.waiting[i].server, self) {
                if let Some(w) = state.waiting.remove(i) {
                    state.take(&w.server);
                    w.granted.store(true, Ordering::Release);
                    w.thread.unpark();
                }
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
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

    /// A server whose slots are all taken does not hold up a waiter for another server
    /// queued behind its waiters.
    #[test]
    fn a_full_server_does_not_block_others() {
        let limiter = Arc::new(HandshakeLimiter::new(1, 2));
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let (in_a_tx, in_a_rx) = std::sync::mpsc::channel();
        let holder = {
            let l = limiter.clone();
            std::thread::spawn(move || {
                l.run("a:22", || {
                    in_a_tx.send(()).unwrap();
                    gate_rx.recv().unwrap();
                })
            })
        };
        in_a_rx.recv().unwrap();
        // A second `a` waits; `b` behind it must still go at once.
        let queued = {
            let l = limiter.clone();
            std::thread::spawn(move || l.run("a:22", || ()))
        };
        while limiter.state().waiting.is_empty() {
            std::thread::yield_now();
        }
        limiter.run("b:22", || ());
        gate_tx.send(()).unwrap();
        holder.join().unwrap();
        queued.join().unwrap();
        let state = limiter.state();
        assert_eq!((state.total, state.waiting.len()), (0, 0));
        assert!(state.by_server.is_empty());
    }

    /// A handshake that panics gives its slot back: the next one still runs.
    #[test]
    fn a_panic_gives_the_slot_back() {
        let limiter = Arc::new(HandshakeLimiter::new(1, 1));
        let l = limiter.clone();
        let panicked = std::thread::spawn(move || l.run("a:22", || panic!("handshake bug")));
        assert!(panicked.join().is_err());
        assert_eq!(limiter.run("a:22", || 7), 7);
        assert_eq!(limiter.state().total, 0);
    }

    /// Nothing starts while the limiter is held; everything that waited starts after.
    #[test]
    fn a_hold_keeps_handshakes_from_starting() {
        let limiter = Arc::new(HandshakeLimiter::new(8, 8));
        let started = Arc::new(AtomicUsize::new(0));
        let hold = limiter.hold();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (l, started) = (limiter.clone(), started.clone());
                std::thread::spawn(move || {
                    l.run(&format!("h{i}:22"), || {
                        started.fetch_add(1, Ordering::SeqCst)
                    })
                })
            })
            .collect();
        while limiter.state().waiting.len() < 4 {
            std::thread::yield_now();
        }
        assert_eq!(started.load(Ordering::SeqCst), 0);
        drop(hold);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(started.load(Ordering::SeqCst), 4);
    }

    /// Many waiters on one server are all served, never more than the limit at once.
    #[test]
    fn every_waiter_is_served() {
        let limiter = Arc::new(HandshakeLimiter::new(3, 64));
        let (now, max, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads: Vec<_> = (0..200)
            .map(|_| {
                let (l, now, max, done) = (limiter.clone(), now.clone(), max.clone(), done.clone());
                std::thread::spawn(move || {
                    l.run("a:22", || {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(n, Ordering::SeqCst);
                        std::thread::yield_now();
                        now.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 200);
        assert!(max.load(Ordering::SeqCst) <= 3);
    }
}
