//! Replacing a dead session and learning from its death: one policy for host workers and jump
//! hosts alike. Backoff 1, 2, 4 ... s up to a cap, a limited number of attempts, the host key
//! seen first required again (the caller's `connect` pins it), and no retry after a refused
//! host key or authentication, which waiting does not fix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::policy::WorkerSettings;
use super::SshError;

/// How a reconnect ended.
pub enum Outcome {
    /// A new session, and how long getting it took.
    Connected(Connection, Duration),
    /// The owner is shutting down; nobody needs the session any more.
    Stopped,
    /// Every attempt failed: the host is unreachable for the rest of the run.
    Failed(SshError),
    /// Given up between attempts for a command that came meanwhile (see [`with_backoff`]'s
    /// `give_way`): it reconnects on its own terms, within its timeout.
    GaveWay,
}

/// How a pause between attempts ended.
enum Paused {
    /// Its time passed (or a signal came, where that ends it).
    Over,
    /// The owner is shutting down.
    Stopped,
    /// `give_way` said so.
    GaveWay,
}

/// Reconnects `host` after `reason`, calling `connect` for each attempt, and `retrying` with
/// each failed attempt that another follows (see [`Retrying`]), so that a backoff of many
/// seconds is not silent (stop 51 tester t74: 27 s with one message at the end). Where
/// `give_way` says so during a pause, or after an attempt that failed, that ends it
/// ([`Outcome::GaveWay`]; the caller's `connect` may give up its attempt on it too).
pub fn with_backoff(
    host: &str,
    reason: &str,
    settings: &WorkerSettings,
    stop: &AtomicBool,
    give_way: &dyn Fn() -> bool,
    mut connect: impl FnMut() -> Result<Connection, SshError>,
    mut retrying: impl FnMut(Retrying),
) -> Outcome {
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    let mut last_error = None;
    let attempts = settings.reconnect_attempts.max(1);
    for attempt in 0..attempts {
        if attempt > 0 {
            if let Some(e) = &last_error {
                retrying(Retrying {
                    failed: attempt,
                    attempts,
                    error: e,
                    next_in: delay,
                });
            }
            match pause(stop, delay, true, give_way) {
                Paused::Over => {}
                Paused::Stopped => return Outcome::Stopped,
                Paused::GaveWay => return Outcome::GaveWay,
            }
            // A signal came since the backoff began: the rest is [`within`]'s (see
            // `Owner::reconnect`), not another pause of up to the cap.
            if crate::interrupt::signalled() {
                break;
            }
            delay = (delay * 2).min(settings.backoff_cap);
        }
        match connect() {
            Ok(conn) => return Outcome::Connected(conn, started.elapsed()),
            // Given up as the owner stopped (see `Owner::reconnect`): not the host's failure.
            Err(_) if stop.load(Ordering::SeqCst) => return Outcome::Stopped,
            // Given up for a command that came (see `Owner::reconnect`).
            Err(_) if give_way() => return Outcome::GaveWay,
            Err(e) => {
                if !worth_retrying(e, &mut last_error) {
                    break;
                }
            }
        }
    }
    failed(host, reason, last_error)
}

/// Keeps `e` as the last error; whether another attempt may help: waiting fixes neither a
/// refused host key (a certificate that expired since the first connection included) nor a
/// refused login.
fn worth_retrying(e: SshError, last_error: &mut Option<SshError>) -> bool {
    let refused = e.refused();
    *last_error = Some(e);
    !refused
}

/// A failed attempt to reconnect that another follows.
pub struct Retrying<'a> {
    /// How many attempts failed so far (from 1).
    pub failed: u32,
    /// How many are made at most.
    pub attempts: u32,
    /// Why the last one failed.
    pub error: &'a SshError,
    /// When the next one starts.
    pub next_in: Duration,
}

/// Every attempt to reconnect `host` after `reason` failed, the last with `last_error`.
fn failed(host: &str, reason: &str, last_error: Option<SshError>) -> Outcome {
    Outcome::Failed(SshError::Session {
        host: host.to_string(),
        reason: format!(
            "{reason}; reconnecting failed: {}",
            last_error.map_or_else(|| "no attempt made".into(), |e| e.said_for(host))
        ),
    })
}

/// How long reaching a host may take once tether is on its way out: its last attempt before
/// it exits to stop a command left running there (at most `ConnectTimeout`), and, after a
/// signal, all of the failure hooks' reconnecting to it (see [`within`]).
pub const LAST_CONTACT: Duration = Duration::from_secs(5);

/// The pause between attempts of [`within`] that failed at once (a refused connection).
const WITHIN_PAUSE: Duration = Duration::from_millis(250);

/// Reconnects `host` after `reason` for `bound` in all, calling `connect` with what is left
/// of it for each attempt: what [`with_backoff`] does once tether got a signal (see
/// `interrupt::signalled`), when the failure hooks' clean-up must end soon and the usual
/// backoff (1 + 2 + 4 + 8 s between attempts) would outlast a service manager's patience (stop
/// 37 tester t24: a SIGTERM took 32 s to exit with one host out of reach). No retry after a
/// refused host key or authentication.
pub fn within(
    host: &str,
    reason: &str,
    bound: Duration,
    stop: &AtomicBool,
    mut connect: impl FnMut(Duration) -> Result<Connection, SshError>,
) -> Outcome {
    let started = Instant::now();
    let mut last_error = None;
    loop {
        let left = bound.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        match connect(left) {
            Ok(conn) => return Outcome::Connected(conn, started.elapsed()),
            Err(_) if stop.load(Ordering::SeqCst) => return Outcome::Stopped,
            Err(e) => {
                if !worth_retrying(e, &mut last_error) {
                    break;
                }
            }
        }
        let paused = pause(
            stop,
            WITHIN_PAUSE.min(bound.saturating_sub(started.elapsed())),
            false,
            &|| false,
        );
        if let Paused::Stopped = paused {
            return Outcome::Stopped;
        }
    }
    failed(host, reason, last_error)
}

/// Sleeps for `d` unless `stop` is set meanwhile, `give_way` says so, or, with `signal`, a
/// signal comes (see `interrupt::signalled`).
fn pause(stop: &AtomicBool, d: Duration, signal: bool, give_way: &dyn Fn() -> bool) -> Paused {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || (signal && crate::interrupt::signalled()) {
            return Paused::Over;
        }
        if give_way() {
            return Paused::GaveWay;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    Paused::Stopped
}

/// Idle sessions that die sooner than this were not ended by an idle limit (an sshd restart,
/// an administrator's kill): nothing to learn from them. sshd's shortest, a whole second
/// (`UnusedConnectionTimeout 1`), ends sessions idle for more than that (see
/// `limit_cache::about_the_same`; stop 58 tester t92: under 2 s here, such a server was never
/// learned, and every idle host was reconnected every second or two, every run).
const SHORTEST_IDLE_LIMIT: Duration = Duration::from_secs(1);

/// No idle limit, however short, makes the heartbeat run more often than this.
pub const SHORTEST_INTERVAL: Duration = Duration::from_millis(500);

/// The heartbeat interval after an idle session died `idle` after its last sign of life:
/// well under that, so a limit nothing announced (UnusedConnectionTimeout, a NAT timer) is
/// met from now on; `None` when `current` is already short enough, or when the session died
/// too soon for an idle limit to be the cause.
pub fn learned_interval(current: Duration, idle: Duration) -> Option<Duration> {
    if idle < SHORTEST_IDLE_LIMIT {
        return None;
    }
    let learned = (idle / 3).max(SHORTEST_INTERVAL);
    (learned < current).then_some(learned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_takes_a_third_and_ignores_quick_deaths() {
        let s = Duration::from_secs;
        assert_eq!(learned_interval(s(15), s(15)), Some(s(5)));
        assert_eq!(
            learned_interval(s(15), Duration::from_millis(2100)),
            Some(Duration::from_millis(700))
        );
        // `UnusedConnectionTimeout 1` (stop 58 tester t92: never learned).
        assert_eq!(
            learned_interval(s(15), Duration::from_millis(1500)),
            Some(SHORTEST_INTERVAL)
        );
        // Dead after 0.9 s idle: killed, not timed out.
        assert_eq!(learned_interval(s(15), Duration::from_millis(900)), None);
        assert_eq!(learned_interval(s(1), s(6)), None);
    }

    #[test]
    fn a_refused_key_is_not_retried_and_names_the_reason() {
        let settings = WorkerSettings::default();
        let mut attempts = 0;
        let outcome = with_backoff(
            "h",
            "connection lost while idle",
            &settings,
            &AtomicBool::new(false),
            &|| false,
            || {
                attempts += 1;
                Err(SshError::Auth {
                    host: "h".into(),
                    user: "u".into(),
                    tried: "k".into(),
                })
            },
            |_| panic!("a refused key is not retried"),
        );
        assert_eq!(attempts, 1);
        match outcome {
            Outcome::Failed(e) => assert!(
                e.to_string().starts_with(
                    "h: connection lost while idle; reconnecting failed: authentication failed"
                ),
                "{e}"
            ),
            _ => panic!("expected a failure"),
        }
    }

    #[test]
    fn stopping_ends_the_backoff() {
        let settings = WorkerSettings::default();
        let stop = AtomicBool::new(true);
        let outcome = with_backoff(
            "h",
            "lost",
            &settings,
            &stop,
            &|| false,
            || {
                Err(SshError::Session {
                    host: "h".into(),
                    reason: "refused".into(),
                })
            },
            |_| {},
        );
        assert!(matches!(outcome, Outcome::Stopped));
    }

    #[test]
    fn a_command_that_comes_ends_the_backoff_at_its_pause() {
        let settings = WorkerSettings::default();
        let mut attempts = 0;
        let started = Instant::now();
        let outcome = with_backoff(
            "h",
            "lost",
            &settings,
            &AtomicBool::new(false),
            &|| true,
            || {
                attempts += 1;
                Err(SshError::Session {
                    host: "h".into(),
                    reason: "refused".into(),
                })
            },
            |_| {},
        );
        assert!(matches!(outcome, Outcome::GaveWay));
        assert_eq!(attempts, 1);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn every_failed_attempt_that_another_follows_is_said() {
        let settings = WorkerSettings {
            reconnect_attempts: 3,
            backoff_cap: Duration::from_millis(1),
            ..WorkerSettings::default()
        };
        let mut said = Vec::new();
        let mut attempts = 0;
        let outcome = with_backoff(
            "h",
            "lost",
            &settings,
            &AtomicBool::new(false),
            &|| false,
            || {
                attempts += 1;
                Err(SshError::Session {
                    host: "h".into(),
                    reason: format!("refused {attempts}"),
                })
            },
            |r| said.push((r.failed, r.attempts, r.error.to_string())),
        );
        assert!(matches!(outcome, Outcome::Failed(_)));
        assert_eq!(attempts, 3);
        assert_eq!(
            said,
            [
                (1, 3, "h: refused 1".to_string()),
                (2, 3, "h: refused 2".to_string())
            ]
        );
    }
}
