//! Where the hosts of one step stop when one of them fails (issue 13): the rule an `on`
//! closure's hosts follow ([`StepAbort`]), and the [`Stop`] it gives each running command. A
//! leaf below the pool and the recipe: both the closure form of `on` and its string form
//! (`on(target, "cmd")`, through `pool::FanOut::step_abort`) use it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::stop::{Stop, StopReason, StopWhen};

mod places;
use places::{at_a_command, at_command, before_command, Places, BEFORE_FIRST, FIRST_UNIT, PARKED};

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
///
/// A dry run's hosts also take turns ([`StepAbort::taking_turns`]).
#[derive(Debug)]
pub struct StepAbort {
    /// Every failure so far.
    failures: Mutex<Vec<Failed>>,
    /// Where the hosts whose closures run or are about to are (see [`Places`]).
    reached: Mutex<Places>,
    /// Told whenever the hindmost host moves on or ends, or a host fails (when the hosts take
    /// turns, each host is told its turn on its own, see [`Place`](places::Place)).
    moved: Condvar,
    /// Whether the hosts take turns (see [`StepAbort::taking_turns`]).
    turns: bool,
}

/// One host's failure: its closure ended with an error after starting `started` commands,
/// `units` units of the last begun (see [`StepAbort::admit`]).
#[derive(Debug)]
struct Failed {
    started: usize,
    units: u64,
    host: String,
    at: Instant,
}

/// How often a host waiting for the others ([`StepAbort::reach`]) looks at tether's signals,
/// besides being told of one (see [`wake_all`]): a bound only.
const REACH_POLL: Duration = Duration::from_secs(1);

/// Every step's [`StepAbort`] that may have hosts waiting, to be woken by a signal.
static LIVE: Mutex<Vec<Weak<StepAbort>>> = Mutex::new(Vec::new());

/// Wakes every host waiting in a live [`StepAbort`] (a first signal came: see
/// `interrupt::on_first_signal`), under each one's lock, so that none that has not waited
/// yet misses it.
fn wake_all() {
    let live: Vec<Arc<StepAbort>> = LIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for abort in live {
        let places = abort.reached();
        abort.moved.notify_all();
        let leavers = places
            .ending
            .values()
            .flatten()
            .map(|(_, leaver)| leaver)
            .chain(places.leaving.values());
        for (_, told) in leavers {
            told.notify_all();
        }
        for place in places.hosts.values() {
            place.turn.notify_all();
        }
    }
}

/// The stop of one running command of a closure (see [`StepAbort::stop_for`]).
#[derive(Debug)]
struct StepStop {
    abort: Arc<StepAbort>,
    host: String,
    /// Its number in its host's closure, from 0.
    index: usize,
    /// The unit of its host's `on` this step began at (see [`StepAbort::admit`]): a unit of
    /// the nested `on` the step is, `u`, is that `on`'s unit `base + u`.
    base: u64,
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

    /// Whether the step, or an earlier one, was aborted: the grace is for what already runs.
    fn refuses(&self) -> Option<StopReason> {
        let failures = self.abort.failures();
        let (k, because, _) = StepAbort::earliest(&failures)?;
        (because != self.host && self.index + 1 >= k).then(|| StopReason::StepAborted {
            because: because.to_string(),
        })
    }

    fn admit(&self, work: &mut u64) -> Option<StopReason> {
        let because = self.abort.admit(&self.host, self.index, *work);
        *work += self.base;
        because.map(|because| StopReason::StepAborted { because })
    }
}

impl StepAbort {
    /// The rule for a dry run's hosts: they go through the steps together as a run's do, and
    /// besides take turns, so that only one host's closure runs at a time, in a stable order:
    /// the hindmost host first, and of hosts at the same place the one that came first (in
    /// [`expect`](Self::expect), else [`begin`](Self::begin)). A dry run's plan then stops
    /// where the run stops, and reads the same on every run: each step's commands (and the
    /// recipe's prints between them) host after host, the next step's after them (stop 63
    /// tester t105: planned one host at a time, the hosts before one that failed of its own
    /// showed every command of the step, which the run stops after the failing step).
    pub fn taking_turns() -> Arc<Self> {
        Self::made(true)
    }

    /// A step's rule, its hosts not taking turns.
    pub fn new() -> Arc<Self> {
        Self::made(false)
    }

    /// One, woken by a first signal (see [`wake_all`]).
    fn made(turns: bool) -> Arc<Self> {
        let abort = Arc::new(StepAbort {
            failures: Mutex::default(),
            reached: Mutex::default(),
            moved: Condvar::new(),
            turns,
        });
        crate::interrupt::on_first_signal(wake_all);
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&abort));
        abort
    }

    fn failures(&self) -> MutexGuard<'_, Vec<Failed>> {
        // Each change is one push: a panicked holder leaves it consistent.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `host`'s closure failed after starting `started` commands.
    pub fn fail(&self, started: usize, host: &str) {
        let places = self.reached();
        let units = places.hosts.get(host).map_or(FIRST_UNIT, |p| p.units);
        self.failures().push(Failed {
            started,
            units,
            host: host.to_string(),
            at: Instant::now(),
        });
        drop(places);
        self.moved.notify_all();
    }

    fn reached(&self) -> MutexGuard<'_, Places> {
        // Each change is made whole under the lock: a panicked holder leaves it consistent.
        self.reached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves `host` to `place` (an expected host is added, as not begun), and tells the
    /// waiting hosts when the hindmost place rose.
    fn move_to(&self, places: &mut Places, host: &str, place: u64) {
        let before = places.hindmost();
        places.set(host, place);
        self.tell(places, before);
    }

    /// Wakes the waiting hosts if one of them may now go on: the hindmost place rose from
    /// `before`. Taking turns, wakes the host whose turn it is, only: a thousand hosts woken
    /// at each move would each look and wait again, a million times a step.
    fn tell(&self, places: &Places, before: (u64, u64)) {
        if self.turns {
            if let Some(leader) = places.leader() {
                leader.turn.notify_one();
            }
            // The host that ended first in order, once no end waits to be taken in.
            if let (None, Some((_, (_, told)))) =
                (&places.answering, places.leaving.first_key_value())
            {
                told.notify_one();
            }
        } else if places.hindmost() > before {
            self.moved.notify_all();
        }
    }

    /// `hosts`' closures are about to begin, together (see `dispatch::wave`): the others
    /// wait for them at their next command, so that one whose thread starts first does not
    /// run ahead of those whose threads start a moment later. One that began already, or
    /// ended, is left as it is (an `on` runs a host's closure once: expected again, one that
    /// ended before its wave's last unit started would hold the others at their first command
    /// for ever); one that then never begins is [`withdraw`](Self::withdraw)n.
    pub fn expect<S: AsRef<str>>(&self, hosts: &[S]) {
        let mut places = self.reached();
        for host in hosts {
            if !places.ranks.contains_key(host.as_ref()) {
                places.set(host.as_ref(), BEFORE_FIRST);
            }
        }
    }

    /// The end of `host`'s closure was taken in (`dispatch::run_settling`): taking turns, the
    /// next host that ended gives its end, or the hosts go on (see `Running`'s drop).
    pub fn answered(&self, host: &str) {
        let mut places = self.reached();
        if places.answering.as_deref() != Some(host) {
            return;
        }
        places.answering = None;
        let before = places.hindmost();
        self.tell(&places, before);
    }

    /// Forgets the expected hosts whose closures did not begin (their start was cancelled).
    pub fn withdraw(&self) {
        let mut places = self.reached();
        let unbegun: Vec<String> = places
            .hosts
            .iter()
            .filter(|(_, p)| !p.began)
            .map(|(h, _)| h.clone())
            .collect();
        let before = places.hindmost();
        for host in unbegun {
            places.remove(&host);
        }
        self.tell(&places, before);
        self.moved.notify_all();
    }

    /// `host`'s closure begins: the others wait for it at their next command (see
    /// [`reach`](Self::reach)) until it ends. Ends with the returned guard.
    pub fn begin(self: &Arc<Self>, host: &str) -> Running {
        let mut places = self.reached();
        if !places.hosts.contains_key(host) {
            places.set(host, BEFORE_FIRST);
        }
        if let Some(p) = places.hosts.get_mut(host) {
            p.began = true;
        }
        // Taking turns, what the closure does before its first command is in its turn too.
        if self.turns {
            drop(self.wait_while(places, host, (BEFORE_FIRST, 0), || true));
        } else {
            drop(places);
        }
        Running {
            abort: self.clone(),
            host: host.to_string(),
        }
    }

    /// `host` waits for another host's closure (a task it invoked too, which that one runs):
    /// until the returned guard is dropped, no host waits for this one at its steps, as the
    /// other one may be among them, waiting there while it runs the task's steps. A failure
    /// of this host after it is said as usual; only the steps the others took meanwhile are
    /// not held for it. Taking turns, the host is back at its place when the task ends (see
    /// [`unpark`](Self::unpark)).
    pub fn park(self: &Arc<Self>, host: &str, task: &str) -> Parked {
        let mut places = self.reached();
        let was = places.hosts.get(host).map(|p| (p.place, p.units));
        if let Some(was) = was {
            self.move_to(&mut places, host, PARKED);
            if self.turns {
                places
                    .parked
                    .insert(host.to_string(), (task.to_string(), was));
            }
        }
        drop(places);
        Parked {
            abort: self.clone(),
            host: host.to_string(),
            was,
        }
    }

    /// Task `task` ends, which the closure running it ran on this `on`'s hosts: taking turns,
    /// the hosts parked for it are back at their places at once, before that closure goes on
    /// (see [`await_turn`](Self::await_turn)), and each goes on at its turn, so the plan's
    /// lines after it come in the same order every time (stop 64 tester t106: the hosts that
    /// had waited went on as their threads woke, 5 orders in 30 dry runs).
    pub fn unpark(&self, task: &str) {
        if !self.turns {
            return;
        }
        let mut places = self.reached();
        let before = places.hindmost();
        let back: Vec<(String, (u64, u64))> = places
            .parked
            .iter()
            .filter(|(_, (t, _))| t == task)
            .map(|(host, (_, was))| (host.clone(), *was))
            .collect();
        for (host, was) in back {
            places.parked.remove(&host);
            if places.hosts.contains_key(&host) {
                places.set(&host, was.0);
                places.set_units(&host, was.1);
            }
        }
        self.tell(&places, before);
    }

    /// Taking turns, waits for `host`'s turn (a closure that ran a task others waited for, once
    /// they are back: see [`unpark`](Self::unpark)).
    pub fn await_turn(&self, host: &str) {
        if self.turns {
            drop(self.wait_while(self.reached(), host, (BEFORE_FIRST, 0), || true));
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
        let mut places = self.reached();
        if !places.hosts.contains_key(host) {
            return;
        }
        // It stays there once it runs the command: a host that started `started` commands
        // can fail after no fewer, and the others running local commands at this point go
        // with it.
        self.move_to(&mut places, host, before_command(started));
        drop(self.wait_for_others(places, host, started, before_command(started)));
    }

    /// Waits while the hindmost host is short of `place` (`host` being there itself, the
    /// hindmost of the others), no failure stops the host at its point `index` (see
    /// [`stops`](Self::stops)), and tether got no signal; returns the lock.
    fn wait_for_others<'a>(
        &'a self,
        places: MutexGuard<'a, Places>,
        host: &str,
        index: usize,
        place: u64,
    ) -> MutexGuard<'a, Places> {
        self.wait_while(places, host, (place, 0), || self.stops(index).is_none())
    }

    /// Waits while the hindmost host is short of `place` (place, units), `open` says no
    /// failure decided the wait, and tether got no signal; returns the lock. Taking turns,
    /// `host` (at `place` or past it) waits for its turn instead, whatever decided: a host
    /// whose turn it is can go on, so some host always can.
    fn wait_while<'a>(
        &'a self,
        mut places: MutexGuard<'a, Places>,
        host: &str,
        place: (u64, u64),
        open: impl Fn() -> bool,
    ) -> MutexGuard<'a, Places> {
        let waits = |places: &Places| match self.turns {
            true => !places.leads(host),
            false => places.hindmost() < place && open(),
        };
        let own = places.hosts.get(host).map(|p| p.turn.clone());
        let told = match (self.turns, &own) {
            (true, Some(turn)) => turn.as_ref(),
            _ => &self.moved,
        };
        while waits(&places) && !crate::interrupt::signalled() {
            places = told
                .wait_timeout(places, REACH_POLL)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        places
    }

    /// `host` is about to start its command numbered `index` (from 0): waits until every
    /// other host whose closure runs has come as far (its command `index`, or its end), or
    /// a failure stops this command (see [`stops`](Self::stops)), or tether got a signal.
    /// Such a host can no longer fail before this step (its earlier commands are over), so
    /// whether this command may start is known, not raced.
    pub fn reach(&self, host: &str, index: usize) {
        let mut places = self.reached();
        self.move_to(&mut places, host, at_command(index));
        if let Some(p) = places.hosts.get_mut(host) {
            p.began = true;
        }
        drop(self.wait_for_others(places, host, index, at_command(index)));
    }

    /// `host`, at its command numbered `index` (a nested `on`), is about to begin the unit
    /// `work` of it, from 0: the units of a nested `on` are its hosts' commands, counted as
    /// they go (the first commands of the hosts it starts together are one unit, their second
    /// ones the next; a host it starts later, the next in sequence or group or in a sliding
    /// window, counts on from the units begun then), a plain command or a string `on`'s
    /// command on the hosts started together one, a nested `on` as many as it began, however
    /// deep (see [`consumed`](Self::consumed)). Waits until every other host whose closure runs came as
    /// far (to that unit of its own command `index`, or past it, or to its end), a failure
    /// refuses the unit, or tether got a signal; returns the host whose failure refuses it.
    /// Another host's failure at its command `index` refuses the units from the one it failed
    /// in on (the first is as good as begun when the step is: a failure before it still lets
    /// it run), an earlier failure every one. So a failure in one host's nested `on`
    /// stops another's at the same point on every run (stop 53 tester t83: an inner host's
    /// `fail()` gave two summaries in 8 runs, the other host's next inner command refused or
    /// run by turns); unequal nested `on`s wait for the other hosts' whole step.
    pub fn admit(&self, host: &str, index: usize, work: u64) -> Option<String> {
        let mut places = self.reached();
        if places
            .hosts
            .get(host)
            .is_some_and(|p| p.place == at_command(index) && p.units <= work)
        {
            let before = places.hindmost();
            places.set_units(host, work + 1);
            self.tell(&places, before);
        }
        let refused = || self.refuses_unit(host, index, work);
        drop(
            self.wait_while(places, host, (at_command(index), work + 1), || {
                refused().is_none()
            }),
        );
        refused()
    }

    /// The units of `host`'s `on` that its commands before the current one took (see
    /// [`admit`](Self::admit)): one for a command, as many as a nested `on` began; the unit
    /// its current command begins at is the `on`'s unit `offset + consumed` (its `offset`
    /// the units begun before it began).
    pub fn consumed(&self, host: &str) -> u64 {
        self.reached().hosts.get(host).map_or(0, |p| p.consumed)
    }

    /// The units `host`'s commands took, its current one's too (see
    /// [`consumed`](Self::consumed)).
    pub fn taken(&self, host: &str) -> u64 {
        self.reached()
            .hosts
            .get(host)
            .map_or(0, |p| match at_a_command(p.place) {
                true => p.consumed + p.units,
                false => p.consumed,
            })
    }

    /// The host whose failure refuses `host`'s unit `work` of its command `index` (see
    /// [`admit`](Self::admit)), if one does: the earliest such failure.
    fn refuses_unit(&self, host: &str, index: usize, work: u64) -> Option<String> {
        self.failures()
            .iter()
            .filter(|f| f.host != host)
            .filter(|f| f.started <= index || (f.started == index + 1 && f.units <= work))
            .min_by_key(|f| (f.started, f.units))
            .map(|f| f.host.clone())
    }

    /// The step of the earliest failure.
    fn step(failures: &[Failed]) -> Option<usize> {
        failures.iter().map(|f| f.started).min()
    }

    /// The earliest failing step, the first host that failed there and when.
    fn earliest(failures: &[Failed]) -> Option<(usize, &str, Instant)> {
        let k = Self::step(failures)?;
        failures
            .iter()
            .find(|f| f.started == k)
            .map(|f| (f.started, f.host.as_str(), f.at))
    }

    /// What stops `host`'s command numbered `index` (from 0), started now, while it runs: a
    /// failure of another host at an earlier step (at once), or at its own step (after
    /// [`SAME_STEP_GRACE`]). `base` is the unit of the host's `on` the command begins at (see
    /// [`admit`](Self::admit)): a nested `on` the command is admits its units through it (see
    /// [`Stop::admit`]).
    pub fn stop_for(self: &Arc<Self>, host: &str, index: usize, base: u64) -> Stop {
        Stop::default().or_when(Arc::new(StepStop {
            abort: self.clone(),
            host: host.to_string(),
            index,
            base,
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
            .filter(|h| failures.iter().any(|f| f.started == k && f.host == **h))
            .map(String::as_str)
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    }
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
    /// Where it was (place, units), if its closure runs.
    was: Option<(u64, u64)>,
}

impl Drop for Parked {
    /// Back where it was, unless [`StepAbort::unpark`] put it back; taking turns, it goes on
    /// at its turn.
    fn drop(&mut self) {
        let mut places = self.abort.reached();
        let back = !self.abort.turns || places.parked.remove(&self.host).is_some();
        if let (Some(was), true, true) = (self.was, back, places.hosts.contains_key(&self.host)) {
            places.set(&self.host, was.0);
            places.set_units(&self.host, was.1);
        }
        if self.abort.turns {
            drop(
                self.abort
                    .wait_while(places, &self.host, (BEFORE_FIRST, 0), || true),
            );
        }
    }
}

impl Drop for Running {
    /// Taking turns, the closure's end waits until the hosts at its last place had their turn
    /// there: in a run they would be running that step's commands as it ends (and a window
    /// starts the next host only after them: stop 64, a window of two planned its second host
    /// as stopped by a host the run starts after it). Then the hosts that ended so give their
    /// ends one at a time, by rank, each once the one before was taken in (see
    /// [`StepAbort::answered`]), and nobody's turn comes meanwhile: the hosts a window starts
    /// for them are there before anyone goes on, and a failure among them is known to the
    /// window in the same order every time (stop 64 tester t106: with `limit: 2`, a host that
    /// failed after its last command as another ended left the next host's closure planned
    /// whole, or not started, by turns).
    fn drop(&mut self) {
        let mut places = self.abort.reached();
        let before = places.hindmost();
        let last = places.hosts.get(&self.host).map(|p| p.place);
        places.remove(&self.host);
        self.abort.tell(&places, before);
        let (Some(last), true) = (last, self.abort.turns) else {
            return;
        };
        let Some(&rank) = places.ranks.get(&self.host) else {
            return;
        };
        let told = Arc::new(Condvar::new());
        let leaver = (self.host.clone(), told.clone());
        match places.at(last) {
            true => places.ending.entry(last).or_default().push((rank, leaver)),
            false => {
                places.leaving.insert(rank, leaver);
            }
        }
        let first = |places: &Places| {
            places.answering.is_none()
                && places.leaving.first_key_value().map(|(r, _)| *r) == Some(rank)
        };
        while !first(&places) && !crate::interrupt::signalled() {
            places = told
                .wait_timeout(places, REACH_POLL)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        places.leaving.remove(&rank);
        if !crate::interrupt::signalled() {
            places.answering = Some(self.host.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_stops_commands_past_its_step_at_once_and_its_own_step_after_the_grace() {
        let abort = StepAbort::new();
        let before = abort.stop_for("web2", 0, 0);
        let same = abort.stop_for("web2", 1, 0);
        let past = abort.stop_for("web3", 2, 0);
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
        assert_eq!(abort.stop_for("db1", 3, 0).reason(), None);
    }

    /// Whether `host` came past [`StepAbort::reach`] for `index` within 200 ms.
    fn passes(abort: &Arc<StepAbort>, host: &str, index: usize) -> std::thread::JoinHandle<bool> {
        let (abort, host) = (abort.clone(), host.to_string());
        let answer = within_200_ms(move || abort.reach(&host, index));
        std::thread::spawn(move || answer.join().unwrap().is_some())
    }

    /// What `f`, run on a thread of its own, returned within 200 ms; `None` if it was still
    /// running (it is left to end, or not, on its own).
    fn within_200_ms<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<Option<T>> {
        std::thread::spawn(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(f());
            });
            rx.recv_timeout(Duration::from_millis(200)).ok()
        })
    }

    #[test]
    fn a_host_waits_at_a_step_until_every_other_running_host_came_as_far() {
        let abort = StepAbort::new();
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
        let abort = StepAbort::new();
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

    /// Whether `host` came past [`StepAbort::wait_locally`] after `started` commands within
    /// 200 ms.
    fn runs_locally(
        abort: &Arc<StepAbort>,
        host: &str,
        started: usize,
    ) -> std::thread::JoinHandle<bool> {
        let (abort, host) = (abort.clone(), host.to_string());
        let answer = within_200_ms(move || abort.wait_locally(&host, started));
        std::thread::spawn(move || answer.join().unwrap().is_some())
    }

    #[test]
    fn a_local_command_waits_for_hosts_that_may_still_fail_before_its_point() {
        let two = || {
            let abort = StepAbort::new();
            abort.expect(&["web1", "web2"]);
            let guards = (abort.begin("web1"), abort.begin("web2"));
            (abort, guards)
        };
        // Before any command, web2 may still fail there.
        let (abort, _guards) = two();
        assert!(!runs_locally(&abort, "web1", 0).join().unwrap());
        // Hosts running local commands at one point go together.
        let (abort, _guards) = two();
        let both = [
            runs_locally(&abort, "web1", 0),
            runs_locally(&abort, "web2", 0),
        ];
        assert!(both.into_iter().all(|p| p.join().unwrap()));
        // After one command, web1 waits for web2 to come to its second, or as far: a local
        // command of its after one command.
        let (abort, _guards) = two();
        let firsts = [passes(&abort, "web1", 0), passes(&abort, "web2", 0)];
        assert!(firsts.into_iter().all(|p| p.join().unwrap()));
        let web1 = runs_locally(&abort, "web1", 1);
        std::thread::sleep(Duration::from_millis(50));
        assert!(runs_locally(&abort, "web2", 1).join().unwrap());
        assert!(web1.join().unwrap());
        // And nobody waits for a host that ended.
        let (abort, (_web1, web2)) = two();
        assert!(!runs_locally(&abort, "web1", 0).join().unwrap());
        drop(web2);
        assert!(runs_locally(&abort, "web1", 0).join().unwrap());
    }

    /// What [`StepAbort::admit`] answered for `host`'s unit `work` of its command `index`
    /// within 200 ms; `None` if it was still waiting.
    fn admits(
        abort: &Arc<StepAbort>,
        host: &str,
        index: usize,
        work: u64,
    ) -> std::thread::JoinHandle<Option<Option<String>>> {
        let (abort, host) = (abort.clone(), host.to_string());
        within_200_ms(move || abort.admit(&host, index, work))
    }

    #[test]
    fn a_unit_of_a_nested_step_waits_for_the_others_and_a_failure_refuses_from_its_unit_on() {
        let abort = StepAbort::new();
        abort.expect(&["web1", "web2"]);
        let _guards = (abort.begin("web1"), abort.begin("web2"));
        let firsts = [passes(&abort, "web1", 0), passes(&abort, "web2", 0)];
        assert!(firsts.into_iter().all(|p| p.join().unwrap()));
        // The first unit of a step is as good as begun with it.
        assert_eq!(admits(&abort, "web2", 0, 0).join().unwrap(), Some(None));
        // The second waits for web1 to begin its second.
        let second = admits(&abort, "web2", 0, 1);
        assert_eq!(second.join().unwrap(), None);
        assert_eq!(admits(&abort, "web1", 0, 1).join().unwrap(), Some(None));
        // A later one waits for the other host to begin it, or to end.
        let waiting = admits(&abort, "web1", 0, 2);
        std::thread::sleep(Duration::from_millis(50));
        // web2 fails in its unit 1: web1's units from 2 on are refused.
        abort.fail(1, "web2");
        let web2 = Some(Some("web2".to_string()));
        assert_eq!(waiting.join().unwrap(), web2);
        assert_eq!(admits(&abort, "web1", 0, 3).join().unwrap(), web2);
        assert_eq!(admits(&abort, "web1", 0, 1).join().unwrap(), Some(None));
        // An earlier step's failure refuses every unit.
        abort.fail(0, "web3");
        let web3 = Some(Some("web3".to_string()));
        assert_eq!(admits(&abort, "web1", 0, 0).join().unwrap(), web3);
    }

    #[test]
    fn an_expected_host_that_never_began_is_not_waited_for_once_withdrawn() {
        let abort = StepAbort::new();
        abort.expect(&["web1", "web2"]);
        let _web1 = abort.begin("web1");
        let waiting = passes(&abort, "web1", 0);
        abort.withdraw();
        assert!(waiting.join().unwrap());
    }

    #[test]
    fn a_host_that_ended_is_not_expected_again_by_its_wave() {
        let abort = StepAbort::new();
        abort.expect(&["web1", "web2"]);
        let _web1 = abort.begin("web1");
        // web2's closure ends (a `throw` before its first command) before the wave's last
        // unit is started, which expects the wave again.
        drop(abort.begin("web2"));
        abort.expect(&["web1", "web2"]);
        assert!(passes(&abort, "web1", 0).join().unwrap());
    }

    #[test]
    fn hosts_taking_turns_go_step_by_step_in_the_order_they_came_and_stop_at_a_failure() {
        // Repeated: without the turns the threads' order, started last host first, would show.
        for _ in 0..20 {
            let abort = StepAbort::taking_turns();
            let hosts = ["web1", "web2", "web3"];
            abort.expect(&hosts);
            let log = Arc::new(Mutex::new(Vec::new()));
            let (ended, ends) = std::sync::mpsc::channel();
            let threads: Vec<_> = hosts
                .iter()
                .rev()
                .map(|host| {
                    let (abort, log, host) = (abort.clone(), log.clone(), host.to_string());
                    let ended = ended.clone();
                    std::thread::spawn(move || {
                        let said = |what: &str| log.lock().unwrap().push(format!("{host} {what}"));
                        let closure = || {
                            let _running = abort.begin(&host);
                            said("begins");
                            for i in 0..2 {
                                abort.reach(&host, i);
                                if abort.stops(i).is_some() {
                                    return said("stopped");
                                }
                                said(&i.to_string());
                                if host == "web2" {
                                    said("fails");
                                    return abort.fail(i + 1, &host);
                                }
                            }
                        };
                        closure();
                        ended.send(host.clone()).unwrap();
                    })
                })
                .collect();
            // As the dispatcher takes each end in.
            for host in ends.iter().take(hosts.len()) {
                abort.answered(&host);
            }
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(
                *log.lock().unwrap(),
                [
                    "web1 begins",
                    "web2 begins",
                    "web3 begins",
                    "web1 0",
                    "web2 0",
                    "web2 fails",
                    "web3 0",
                    "web1 stopped",
                    "web3 stopped"
                ]
            );
        }
    }
}
