//! What a jump host's sshd lets a tunnel be idle for, shared by the jump host's worker, which
//! reads it, and the workers of the hosts behind it, which beat within it.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A jump host's `ChannelTimeout` for tunnels, as its worker read it in the jump host's sshd
/// config, shared with the workers of the hosts behind it. Those that sleep while it is being
/// read are woken when it is known: the interval they went to sleep with may be longer than
/// the tunnel lets them be idle (a host whose first heartbeat came before its bastion's
/// reading slept out its own interval, and the bastion closed its tunnel meanwhile).
pub struct TunnelLimit {
    /// In milliseconds; 0 while unknown or unset.
    ms: AtomicU64,
    /// Wake sockets of the workers to wake when it is known; `None` once the reading is over.
    watchers: Mutex<Option<Vec<UnixStream>>>,
}

impl Default for TunnelLimit {
    fn default() -> Self {
        TunnelLimit {
            ms: AtomicU64::new(0),
            watchers: Mutex::new(Some(Vec::new())),
        }
    }
}

impl TunnelLimit {
    /// The limit; `None` while unknown or unset.
    pub fn get(&self) -> Option<Duration> {
        match self.ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Ends the reading: `limit` (`None`: the config sets none, or could not be read) is
    /// stored, and the workers watching are woken if there is one.
    pub fn settle(&self, limit: Option<Duration>) {
        if let Some(limit) = limit {
            let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
            self.ms.store(ms, Ordering::Relaxed);
        }
        let watchers = self.lock().take().unwrap_or_default();
        if limit.is_some() {
            for w in watchers {
                // A full socket already holds a wake-up; a closed one's worker is gone.
                let _ = (&w).write(&[0]);
            }
        }
    }

    /// Has `wake` written to when the limit becomes known; once the reading is over, a worker
    /// going to sleep sees the limit without it.
    pub fn watch(&self, wake: UnixStream) {
        if let Some(watchers) = self.lock().as_mut() {
            watchers.push(wake);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Vec<UnixStream>>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }
}
