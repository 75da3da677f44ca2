//! Where the hosts of one step stop when one of them fails (issue 13): the rule an `on`
//! closure's hosts follow ([`StepAbort`]), and the [`Stop`] it gives each running command. A
//! leaf below the pool and the recipe: both the closure form of `on` and its string form
//! (`on(target, "cmd")`, through `pool::FanOut::step_abort`) use it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::stop::{Stop, StopReason, StopWhen};

/// How long a command of another host that runs the same step as the one that failed (its
/// `k`-th command, see [`StepAbort`]) may go on after the failure (or after it started, if
/// later) before its remote process group is stopped: a quick same-step failure still ends
/// on its own and is reported as failed, the same on every run.
pub const SAME_STEP_GRACE: Duration = Duration::from_secs(2);

/// Where the hosts of one `on` closure stop when one of them fails: a host whose closure ends
/// with an error after starting `k` commands lets every other host finish its first `k`
/// commands (the same steps of the closure) and start nothing after them. So hosts that fail
/// at the same step are all reported as failed, on every run, and none goes past the step
/// where the first failure happened. A failure the recipe catches stops nobody.
///
/// Commands already running are stopped too (see [`StepAbort::stop_for`]): one past the
/// failing step at once, one of the same step (the `k`-th) after [`SAME_STEP_GRACE`]; earlier
/// ones finish, as the rule lets their host reach the step.
#[derive(Debug, Default)]
pub struct StepAbort {
    /// Every failure so far: commands started, host, when.
    failures: Mutex<Vec<(usize, String, Instant)>>,
}

/// The stop of one running command of a closure (see [`StepAbort::stop_for`]).
#[derive(Debug)]
struct StepStop {
    abort: Arc<StepAbort>,
    host: String,
    /// Its number in its host's closure, from 0.
    index: usize,
    started: Instant,
}

impl StopWhen for StepStop {
    fn reason(&self) -> Option<StopReason> {
        let failures = self.abort.failures();
        let (k, because, at) = StepAbort::earliest(&failures)?;
        // A host's own failure ends its closure: nothing of it runs any more.
        if because == self.host {
            return None;
        }
        let past = self.index >= k;
        let same_step_over =
            self.index + 1 == k && Instant::now() >= at.max(self.started) + SAME_STEP_GRACE;
        (past || same_step_over).then(|| StopReason::StepAborted {
            because: because.to_string(),
        })
    }

    /// New work of the step (a nested `on`'s next command) is refused once the step, or an
    /// earlier one, was aborted: the grace is for what already runs.
    fn refuses(&self) -> Option<StopReason> {
        let failures = self.abort.failures();
        let (k, because, _) = StepAbort::earliest(&failures)?;
        (because != self.host && self.index + 1 >= k).then(|| StopReason::StepAborted {
            because: because.to_string(),
        })
    }
}

impl StepAbort {
    fn failures(&self) -> MutexGuard<'_, Vec<(usize, String, Instant)>> {
        // Each change is one push: a panicked holder leaves it consistent.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `host`'s closure failed after starting `started` commands.
    pub fn fail(&self, started: usize, host: &str) {
        self.failures()
            .push((started, host.to_string(), Instant::now()));
    }

    /// The step of the earliest failure.
    fn step(failures: &[(usize, String, Instant)]) -> Option<usize> {
        failures.iter().map(|(k, _, _)| *k).min()
    }

    /// The earliest failing step, the first host that failed there and when.
    fn earliest(failures: &[(usize, String, Instant)]) -> Option<(usize, &str, Instant)> {
        let k = Self::step(failures)?;
        failures
            .iter()
            .find(|(s, _, _)| *s == k)
            .map(|(s, h, at)| (*s, h.as_str(), *at))
    }

    /// What stops `host`'s command numbered `index` (from 0), started now, while it runs: a
    /// failure of another host at an earlier step (at once), or at its own step (after
    /// [`SAME_STEP_GRACE`]).
    pub fn stop_for(self: &Arc<Self>, host: &str, index: usize) -> Stop {
        Stop::default().or_when(Arc::new(StepStop {
            abort: self.clone(),
            host: host.to_string(),
            index,
            started: Instant::now(),
        }))
    }

    /// The host whose failure stops the command numbered `index` (from 0), if one does.
    pub fn stops(&self, index: usize) -> Option<String> {
        let failures = self.failures();
        let (k, because, _) = Self::earliest(&failures)?;
        (index >= k).then(|| because.to_string())
    }

    /// The hosts that failed at the earliest failing step, in the order of `hosts` (whichever
    /// finished first): what a host stopped early is told, the same on every run.
    pub fn because(&self, hosts: &[String]) -> Option<String> {
        let failures = self.failures();
        let k = Self::step(&failures)?;
        let names: Vec<&str> = hosts
            .iter()
            .filter(|h| failures.iter().any(|(s, f, _)| *s == k && f == *h))
            .map(String::as_str)
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_stops_commands_past_its_step_at_once_and_its_own_step_after_the_grace() {
        let abort = Arc::new(StepAbort::default());
        let before = abort.stop_for("web2", 0);
        let same = abort.stop_for("web2", 1);
        let past = abort.stop_for("web3", 2);
        assert!(!past.is_set() && !same.is_set());
        // web1 failed after starting 2 commands: its step is the second (index 1).
        abort.fail(2, "web1");
        let web1 = StopReason::StepAborted {
            because: "web1".into(),
        };
        assert_eq!(past.reason(), Some(web1.clone()));
        // The same step has its grace; earlier steps finish. New work of the same step (a
        // nested `on`'s next command) is refused at once.
        assert_eq!(same.reason(), None);
        assert_eq!(same.refusal(), Some(web1));
        assert_eq!(before.reason(), None);
        assert_eq!(before.refusal(), None);
        // A failure at an earlier step makes the same-step command one past it.
        abort.fail(1, "db1");
        assert_eq!(
            same.reason(),
            Some(StopReason::StepAborted {
                because: "db1".into()
            })
        );
        assert_eq!(before.reason(), None);
        // The failed host's own commands are over: nothing to stop.
        assert_eq!(abort.stop_for("db1", 3).reason(), None);
    }
}
