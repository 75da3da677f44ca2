//! The heartbeat and reconnect policy shared by every session owner of a run (host workers and
//! jump hosts).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::limit_cache::LimitCache;

/// Heartbeat and reconnect policy shared by every worker of a run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Idle time after which the heartbeat runs; `None` disables it (`--no-keepalive`).
    pub heartbeat: Option<Duration>,
    /// The interval of a host kept by protocol keepalives (see `heartbeat.rs`) where it is
    /// longer than `heartbeat`: [`KEEPALIVE_DEFAULT`] when the run asked for no interval,
    /// `None` (the same as every host) when it did.
    pub keepalive_heartbeat: Option<Duration>,
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
    /// The run's Ctrl-C flag (set on SIGINT, SIGTERM, SIGHUP: see `interrupt.rs`): a host's
    /// first connection still under way when it is set is given up
    /// ([`SshError::ConnectStopped`](super::SshError::ConnectStopped)) instead of waiting out
    /// `ConnectTimeout`. `None`: never given up for it.
    pub interrupted: Option<Arc<AtomicBool>>,
}

/// The default heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The shortest heartbeat interval tether takes when asked (`--keepalive`, the recipe's
/// `keepalive`): ssh's `ServerAliveInterval` counts whole seconds; a tenth of one is ample for
/// tests and diagnosis, where one of a microsecond would make the worker spin.
pub const SHORTEST_ASKED: Duration = Duration::from_millis(100);

/// A heartbeat interval as asked for (`--keepalive 15s`): see [`crate::duration::parse`];
/// Err when it is shorter than [`SHORTEST_ASKED`] (zero too).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    asked_interval(crate::duration::parse(text)?, text)
}

/// `every` (given as `text`) as an interval asked for: Err when it is shorter than
/// [`SHORTEST_ASKED`].
pub fn asked_interval(every: Duration, text: &str) -> Result<Duration, String> {
    if every < SHORTEST_ASKED {
        return Err(format!(
            "`{text}` is shorter than {}, the shortest heartbeat interval",
            crate::duration::format(SHORTEST_ASKED)
        ));
    }
    Ok(every)
}

/// How often a host kept by protocol keepalives beats where no interval was asked for
/// (`--keepalive`, the recipe's `keepalive`, `ServerAliveInterval`). Its server needs no client
/// traffic on a schedule (its config was read and sets no `UnusedConnectionTimeout`; a
/// `ClientAliveInterval` probe wakes the worker, which answers it), so only NAT and firewall
/// state tables do, whose shortest common idle timers are minutes (Azure's load balancer
/// 4 min, AWS's NAT gateway 350 s): a minute, as ssh users' customary `ServerAliveInterval
/// 60`. A connection the server closes wakes the worker at once whatever the interval; the
/// interval bounds how late a silent death (a blackhole, a host powered off) is found.
pub const KEEPALIVE_DEFAULT: Duration = Duration::from_secs(60);

/// A host's heartbeat interval before any idle limit shortens it: the run's `heartbeat`, or a
/// smaller `ServerAliveInterval` (`server_alive`); `None` with the heartbeat off.
pub fn first_interval(
    heartbeat: Option<Duration>,
    server_alive: Option<Duration>,
) -> Option<Duration> {
    match (heartbeat, server_alive) {
        (Some(ours), Some(server)) => Some(ours.min(server)),
        (ours, _) => ours,
    }
}

/// The interval of a host kept by protocol keepalives whose interval is still `first` (see
/// [`first_interval`]): where the run asked for none (`keepalive_heartbeat`, see
/// [`WorkerSettings`]), the host's `ServerAliveInterval` (what ssh itself would send keepalives
/// at, longer or shorter than the default), else the run's keepalive interval where that is
/// longer; otherwise `first`.
pub fn keepalive_interval(
    first: Option<Duration>,
    keepalive_heartbeat: Option<Duration>,
    server_alive: Option<Duration>,
) -> Option<Duration> {
    match (first, keepalive_heartbeat) {
        (Some(iv), Some(k)) => Some(server_alive.unwrap_or(iv.max(k))),
        (iv, _) => iv,
    }
}

/// The heartbeat a run asked for (see `fleet::heartbeat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The interval; `None`: no heartbeat (`--no-keepalive`).
    pub every: Option<Duration>,
    /// Whether that is [`DEFAULT_HEARTBEAT`] because nothing asked for another: hosts kept by
    /// protocol keepalives then beat every [`KEEPALIVE_DEFAULT`].
    pub default: bool,
}

impl WorkerSettings {
    /// The defaults with `heartbeat`.
    pub fn with_heartbeat(heartbeat: Heartbeat) -> Self {
        WorkerSettings {
            heartbeat: heartbeat.every,
            keepalive_heartbeat: heartbeat.default.then_some(KEEPALIVE_DEFAULT),
            ..WorkerSettings::default()
        }
    }
}

impl Default for WorkerSettings {
    /// The defaults of a run that asked for the interval [`DEFAULT_HEARTBEAT`] (no longer one
    /// for hosts kept by keepalives: see [`WorkerSettings::with_heartbeat`]).
    fn default() -> Self {
        WorkerSettings {
            heartbeat: Some(DEFAULT_HEARTBEAT),
            keepalive_heartbeat: None,
            heartbeat_timeout: Duration::from_secs(5),
            reconnect_attempts: 4,
            backoff_cap: Duration::from_secs(8),
            limit_cache: None,
            reattach: super::supervisor::DEFAULT_REATTACH,
            interrupted: None,
        }
    }
}
