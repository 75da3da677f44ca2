//! Where the hosts of one step stop when one of them fails (issue 13): the rule an `on`
//! closure's hosts follow ([`StepAbort`]), and the [`Stop`] it gives each running command. A
//! leaf below the pool and the recipe: both the closure form of `on` and its string form
//! (`on(target, "cmd")`, through `pool::FanOut::step_abort`) use it.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
///
/// The hosts go through the steps together ([`StepAbort::reach`]): a host starts its command
/// numbered `i` once every other host whose closure runs has come as far (to its own command
/// `i`, or to its end), so no host can still fail before a step another host has started, and
/// which hosts fail, stop or finish is the same on every run, however fast a failure comes
/// (stop 52 tester t82: a closure's `1 / 0` or `fail()` on one host, or a quick failing
/// command, left the other hosts stopped before, stopped during, or past the step by turns,
/// and in 2 of 8 runs three hosts ran the step after the failing one, unsaid).
#[derive(Debug, Default)]
pub struct StepAbort {
    /// Every failure so far: commands started, host, when.
    failures: Mutex<Vec<(usize, String, Instant)>>,
    /// The hosts whose closures run or are about to, each with the number of the command it
    /// is at (the one it waits to start or started last; none before its first) and whether
    /// its closure began; a host is removed when its closure ends.
    reached: Mutex<HashMap<String, Reached>>,
    /// Told whenever a host moves on, ends or fails.
    moved: Condvar,
}

/// How often a host waiting for the others ([`StepAbort::reach`]) looks at tether's signals.
const REACH_POLL: Duration = Duration::from_millis(50);

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
        let _reached = self.reached();
        self.moved.notify_all();
    }

    fn reached(&self) -> MutexGuard<'_, HashMap<String, Reached>> {
        // Each change is one insert or removal: a panicked holder leaves it consistent.
        self.reached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `hosts`' closures are about to begin, together (see `dispatch::wave`): the others
    /// wait for them at their next command, so that one whose thread starts first does not
    /// run ahead of those whose threads start a moment later. One that began already is
    /// left as it is; one that then never begins is [`withdraw`](Self::withdraw)n.
    pub fn expect<S: AsRef<str>>(&self, hosts: &[S]) {
        let mut reached = self.reached();
        for host in hosts {
            reached.entry(host.as_ref().to_string()).or_default();
        }
    }

    /// Forgets the expected hosts whose closures did not begin (their start was cancelled).
    pub fn withdraw(&self) {
        self.reached().retain(|_, r| r.began);
        self.moved.notify_all();
    }

    /// `host`'s closure begins: the others wait for it at their next command (see
    /// [`reach`](Self::reach)) until it ends. Ends with the returned guard.
    pub fn begin(self: &Arc<Self>, host: &str) -> Running {
        self.reached().entry(host.to_string()).or_default().began = true;
        Running {
            abort: self.clone(),
            host: host.to_string(),
        }
    }

    /// `host` waits for another host's closure (a task it invoked too, which that one runs):
    /// until the returned guard is dropped, no host waits for this one at its steps, as the
    /// other one may be among them, waiting there while it runs the task's steps. A failure
    /// of this host after it is said as usual; only the steps the others took meanwhile are
    /// not held for it.
    pub fn park(self: &Arc<Self>, host: &str) -> Parked {
        let was = self
            .reached()
            .get_mut(host)
            .map(|r| r.at.replace(usize::MAX));
        self.moved.notify_all();
        Parked {
            abort: self.clone(),
            host: host.to_string(),
            was,
        }
    }

    /// `host`, which started `started` commands, is about to run a local command
    /// (`run_locally`): waits until no other host whose closure runs can still fail before its
    /// own command numbered `started` (each came that far, ended, or waits to run a local
    /// command at the same point or later, which goes as the same step), or a failure stops
    /// the host there (see [`stops`](Self::stops)), or tether got a signal. So a host stopped
    /// early runs no local command past the failing step either (stop 52 tester t83: hosts
    /// that had finished the failing step ran their `run_locally` before their next command
    /// was refused, unsaid).
    pub fn wait_locally(&self, host: &str, started: usize) {
        let mut reached = self.reached();
        if let Some(r) = reached.get_mut(host) {
            r.local = Some(started);
        }
        let mut reached = self.wait_for_others(reached, host, started, |r| {
            r.at.is_none_or(|at| at < started) && r.local.is_none_or(|l| l < started)
        });
        if let Some(r) = reached.get_mut(host) {
            r.local = None;
        }
    }

    /// Tells the others that `host` moved, then waits while another host is `behind` (by
    /// where it is), no failure stops `host` at its point `index` (see
    /// [`stops`](Self::stops)), and tether got no signal; returns the lock.
    fn wait_for_others<'a>(
        &'a self,
        mut reached: MutexGuard<'a, HashMap<String, Reached>>,
        host: &str,
        index: usize,
        behind: impl Fn(&Reached) -> bool,
    ) -> MutexGuard<'a, HashMap<String, Reached>> {
        self.moved.notify_all();
        while reached.iter().any(|(h, r)| h != host && behind(r))
            && self.stops(index).is_none()
            && !crate::interrupt::signalled()
        {
            reached = self
                .moved
                .wait_timeout(reached, REACH_POLL)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        reached
    }

    /// `host` is about to start its command numbered `index` (from 0): waits until every
    /// other host whose closure runs has come as far (its command `index`, or its end), or
    /// a failure stops this command (see [`stops`](Self::stops)), or tether got a signal.
    /// Such a host can no longer fail before this step (its earlier commands are over), so
    /// whether this command may start is known, not raced.
    pub fn reach(&self, host: &str, index: usize) {
        let mut reached = self.reached();
        reached.insert(
            host.to_string(),
            Reached {
                at: Some(index),
                local: None,
                began: true,
            },
        );
        // One that has not come to its first command yet may still fail before it.
        drop(self.wait_for_others(reached, host, index, |r| r.at.is_none_or(|at| at < index)));
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

/// Where a host is in its closure (see [`StepAbort::reach`]).
#[derive(Debug, Default)]
struct Reached {
    /// The number of the command it waits to start or started last; none before its first.
    at: Option<usize>,
    /// The number of commands it had started when it began waiting to run a local command
    /// (see [`StepAbort::wait_locally`]), while it waits.
    local: Option<usize>,
    /// Whether its closure began (else it is expected to).
    began: bool,
}

/// A host's closure that runs (see [`StepAbort::begin`]); dropped when it ends, whichever way.
#[derive(Debug)]
pub struct Running {
    abort: Arc<StepAbort>,
    host: String,
}

/// A host that waits for another's closure (see [`StepAbort::park`]).
#[derive(Debug)]
pub struct Parked {
    abort: Arc<StepAbort>,
    host: String,
    /// Where it was, if its closure runs.
    was: Option<Option<usize>>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(was) = self.was {
            if let Some(r) = self.abort.reached().get_mut(&self.host) {
                r.at = was;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.abort.reached().remove(&self.host);
        self.abort.moved.notify_all();
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

    /// Whether `host` came past [`StepAbort::reach`] for `index` within 200 ms.
    fn passes(abort: &Arc<StepAbort>, host: &str, index: usize) -> std::thread::JoinHandle<bool> {
        let (abort, host) = (abort.clone(), host.to_string());
        std::thread::spawn(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                abort.reach(&host, index);
                let _ = tx.send(());
            });
            rx.recv_timeout(Duration::from_millis(200)).is_ok()
        })
    }

    #[test]
    fn a_host_waits_at_a_step_until_every_other_running_host_came_as_far() {
        let abort = Arc::new(StepAbort::default());
        abort.expect(&["web1", "web2", "web3"]);
        let web1 = abort.begin("web1");
        // web2 and web3 are expected: web1 does not start its first command before them.
        assert!(!passes(&abort, "web1", 0).join().unwrap());
        let web2 = abort.begin("web2");
        let _web3 = abort.begin("web3");
        // Hosts at one step do not wait for each other.
        let all = [
            passes(&abort, "web1", 0),
            passes(&abort, "web2", 0),
            passes(&abort, "web3", 0),
        ];
        assert!(all.into_iter().all(|p| p.join().unwrap()));
        // web1 at its second command waits for web2 and web3 to come to theirs, or to end.
        assert!(!passes(&abort, "web1", 1).join().unwrap());
        drop(web2);
        assert!(!passes(&abort, "web1", 1).join().unwrap());
        assert!(passes(&abort, "web3", 1).join().unwrap());
        assert!(passes(&abort, "web1", 1).join().unwrap());
        drop(web1);
    }

    #[test]
    fn a_failure_before_a_step_ends_the_wait_for_it_and_refuses_it() {
        let abort = Arc::new(StepAbort::default());
        abort.expect(&["web1", "web2"]);
        let _web1 = abort.begin("web1");
        let web2 = abort.begin("web2");
        let waiting = passes(&abort, "web1", 0);
        // web2 fails before its first command (a script error): web1's first is refused.
        abort.fail(0, "web2");
        drop(web2);
        assert!(waiting.join().unwrap());
        assert_eq!(abort.stops(0), Some("web2".to_string()));
    }

    #[test]
    fn an_expected_host_that_never_began_is_not_waited_for_once_withdrawn() {
        let abort = Arc::new(StepAbort::default());
        abort.expect(&["web1", "web2"]);
        let _web1 = abort.begin("web1");
        let waiting = passes(&abort, "web1", 0);
        abort.withdraw();
        assert!(waiting.join().unwrap());
    }
}
