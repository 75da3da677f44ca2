//! The heartbeat and reconnect policy shared by every session owner of a run (host workers and
//! jump hosts).

use std::sync::Arc;
use std::time::Duration;

use super::limit_cache::LimitCache;

/// Heartbeat and reconnect policy shared by every worker of a run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Idle time after which the heartbeat runs; `None` disables it (`--no-keepalive`).
    pub heartbeat: Option<Duration>,
    /// A heartbeat round trip slower than this means the connection is dead.
    pub heartbeat_timeout: Duration,
    /// Connection attempts when a session is found dead (the first one immediate).
    pub reconnect_attempts: u32,
    /// Upper bound of the backoff between attempts (1, 2, 4 ... s).
    pub backoff_cap: Duration,
    /// Idle limits remembered across runs; `None`: nothing is remembered (tests, a user
    /// without a cache directory).
    pub limit_cache: Option<Arc<LimitCache>>,
    /// How long a connection that died during a supervised command is reconnected to (with
    /// the same backoff), to re-attach to the command (`--reattach`; see `supervisor.rs`).
    pub reattach: Duration,
}

/// The default heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            heartbeat: Some(DEFAULT_HEARTBEAT),
            heartbeat_timeout: Duration::from_secs(5),
            reconnect_attempts: 4,
            backoff_cap: Duration::from_secs(8),
            limit_cache: None,
            reattach: super::supervisor::DEFAULT_REATTACH,
        }
    }
}
