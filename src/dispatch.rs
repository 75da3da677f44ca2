//! How a step spreads over its hosts, SSHKit's runners: `parallel` (every host at once, or at
//! most `limit` at a time as a sliding window; one host's failure does not keep the others
//! from running, except in a recipe's step, where none starts after it: see
//! [`Spread::stop_after_failure`]), `sequence` (one host at a time, `wait` between hosts, nothing started after
//! a failure) and `groups` (`limit` hosts at a time, default 2, `wait` between groups, no group
//! started after a failed one). One implementation serves `on` with a command, `on` with a
//! closure, `tether run` and `tether check`, so the options mean the same everywhere.

use std::sync::mpsc::{self, Sender};
use std::time::Duration;

/// The runner of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// All hosts at once (at most `limit`).
    #[default]
    Parallel,
    /// One host at a time.
    Sequence,
    /// `limit` hosts at a time.
    Groups,
}

/// How a step spreads: `#{ in: "groups", limit: 2, wait: 5 }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread {
    /// The runner.
    pub mode: Mode,
    /// Parallel: the most hosts at once (`None`: all). Groups: the group size (default 2).
    pub limit: Option<usize>,
    /// Sequence and groups: the pause between hosts or groups.
    pub wait: Option<Duration>,
    /// Parallel: once a unit failed, none not yet started starts (as in sequence and groups).
    /// A recipe's step (`on`) stops its running hosts when one fails (see
    /// `crate::step_abort`), so a host the window would start after that would be stopped
    /// half done (stop 50 tester t71); `tether run` and `tether check` run every host.
    pub stop_after_failure: bool,
}

/// The group size of `groups` when no `limit` is given (Capistrano's default).
pub const DEFAULT_GROUP: usize = 2;

/// Why a host's work was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The step was cancelled (Ctrl-C, a watch-mode cancel).
    Cancelled,
    /// An earlier host (sequence) or group failed.
    EarlierFailure,
    /// The work was handed over but never answered (its worker stopped).
    Lost,
}

/// One host's outcome, in the order the hosts were given.
#[derive(Debug)]
pub enum Slot<T> {
    /// The work ran and produced this.
    Done(T),
    /// The work did not run.
    Skipped(Skipped),
}

/// The answer channel of one unit of work: send its result exactly once (dropping it unsent
/// counts as [`Skipped::Lost`]).
pub struct Done<T: Send> {
    index: usize,
    tx: Option<Sender<(usize, Option<T>)>>,
}

impl<T: Send> Done<T> {
    /// Delivers the result.
    pub fn send(mut self, value: T) {
        if let Some(tx) = self.tx.take() {
            // The runner waits for every unit it started; it is there to receive.
            let _ = tx.send((self.index, Some(value)));
        }
    }
}

impl<T: Send> Drop for Done<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.index, None));
        }
    }
}

/// The units of `n` that [`run`] starts together with unit `i` when `i` is the first of them:
/// every unit of a parallel spread without a window, or the first window's; a group; else `i`
/// alone (a unit a sliding window or a sequence starts as another ends). For a unit that is
/// not the first of its start, a range that holds it.
pub fn wave(spread: &Spread, n: usize, i: usize) -> std::ops::Range<usize> {
    match shape(spread, n) {
        (_, Some(k)) => {
            let first = i - i % k;
            first..(first + k).min(n)
        }
        (window, None) if i < window => 0..window.min(n),
        _ => i..(i + 1).min(n),
    }
}

/// An order in which to start `n` units (indices), for a run in which every unit ends at once
/// (a dry run's plan): as given, but that within each [`wave`] of `spread` (the units it starts
/// together: the first window, a group) those `fails` says fail come first, as their failure,
/// known before anything is sent, comes before the others end.
pub fn failing_first(n: usize, spread: &Spread, fails: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut i = 0;
    while i < n {
        let end = wave(spread, n, i).end.max(i + 1);
        order[i..end].sort_by_key(|&j| !fails(j));
        i = end;
    }
    order
}

/// `slots` of units started in `order` (see [`failing_first`]), back in the units' order.
pub fn in_order<T>(slots: Vec<Slot<T>>, order: &[usize]) -> Vec<Slot<T>> {
    let mut back: Vec<Option<Slot<T>>> = (0..slots.len()).map(|_| None).collect();
    for (unit, slot) in slots.into_iter().enumerate() {
        back[order[unit]] = Some(slot);
    }
    back.into_iter().flatten().collect()
}

/// The number of the [`wave`] unit `i` of `n` starts with, from 0, in the order they start.
pub fn wave_number(spread: &Spread, n: usize, i: usize) -> usize {
    match shape(spread, n) {
        (_, Some(k)) => i / k,
        (window, None) => (i + 1).saturating_sub(window),
    }
}

/// How [`run`] starts `n` units as `spread` says, [`wave`] as it tells: at most `window` at
/// once, in batches of `batch` units (each started once the one before has finished) where
/// there are batches.
fn shape(spread: &Spread, n: usize) -> (usize, Option<usize>) {
    match spread.mode {
        Mode::Parallel => (spread.limit.unwrap_or(n).max(1), None),
        Mode::Sequence => (1, Some(1)),
        Mode::Groups => {
            let k = spread.limit.unwrap_or(DEFAULT_GROUP).max(1);
            (k, Some(k))
        }
    }
}

/// Runs `n` units of work as `spread` says. `start(i, done)` starts unit `i` and must not
/// block for long (hand it to a worker or a thread); `done` receives its result. `failed`
/// tells a failed result (sequence and groups stop after one); `cancelled` is checked before
/// each start, and ends a `wait` between hosts or groups, as `hurry` does without cancelling
/// (the units then started refuse themselves: a nested `on` whose enclosing step was
/// aborted, stop 47 tester t65: its `wait: 25` held the run 25 s). Returns every unit's slot
/// in input order, once every started unit answered.
pub fn run<T: Send>(
    n: usize,
    spread: &Spread,
    cancelled: &dyn Fn() -> bool,
    hurry: &dyn Fn() -> bool,
    failed: &dyn Fn(&T) -> bool,
    start: impl FnMut(usize, Done<T>),
) -> Vec<Slot<T>> {
    run_settling(n, spread, cancelled, hurry, failed, &|_| {}, start)
}

/// [`run`], telling `settled` the units whose answers it took in and acted on (each start
/// they allowed made) each time before it waits for the next answer: a dry run's hosts, which
/// take turns, go on only once the hosts the ended ones let start are there
/// (`StepAbort::answered`).
pub fn run_settling<T: Send>(
    n: usize,
    spread: &Spread,
    cancelled: &dyn Fn() -> bool,
    hurry: &dyn Fn() -> bool,
    failed: &dyn Fn(&T) -> bool,
    settled: &dyn Fn(&[usize]),
    mut start: impl FnMut(usize, Done<T>),
) -> Vec<Slot<T>> {
    let mut answered = Vec::new();
    let (tx, rx) = mpsc::channel();
    let mut slots: Vec<Option<Slot<T>>> = (0..n).map(|_| None).collect();
    let (window, batch) = shape(spread, n);
    let (mut next, mut running) = (0, 0);
    let mut stop: Option<Skipped> = None;
    let mut batch_failed = false;
    loop {
        let may_start = stop.is_none() && (batch.is_none() || running == 0);
        if may_start && next < n {
            if batch.is_some_and(|k| next > 0 && next % k == 0) {
                if batch_failed {
                    stop = Some(Skipped::EarlierFailure);
                } else if let Some(wait) = spread.wait.filter(|w| !w.is_zero()) {
                    let until = std::time::Instant::now() + wait;
                    while !cancelled() && !hurry() {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                    }
                }
            }
            while stop.is_none() && running < window && next < n {
                if cancelled() {
                    stop = Some(Skipped::Cancelled);
                    break;
                }
                start(
                    next,
                    Done {
                        index: next,
                        tx: Some(tx.clone()),
                    },
                );
                next += 1;
                running += 1;
                if batch.is_some_and(|k| next % k == 0) {
                    break;
                }
            }
        }
        if running == 0 {
            break;
        }
        settled(&answered);
        answered.clear();
        let Ok((index, value)) = rx.recv() else {
            break;
        };
        answered.push(index);
        running -= 1;
        slots[index] = Some(match value {
            Some(v) => {
                batch_failed |= failed(&v);
                if batch_failed && batch.is_none() && spread.stop_after_failure {
                    stop.get_or_insert(Skipped::EarlierFailure);
                }
                Slot::Done(v)
            }
            None => Slot::Skipped(Skipped::Lost),
        });
    }
    let rest = stop.unwrap_or(Skipped::Cancelled);
    slots
        .into_iter()
        .map(|s| s.unwrap_or(Slot::Skipped(rest)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn order(spread: Spread, fails: &[usize], n: usize) -> (Vec<usize>, Vec<String>) {
        let started = Arc::new(Mutex::new(Vec::new()));
        let s = started.clone();
        let slots = run(
            n,
            &spread,
            &|| false,
            &|| false,
            &|v: &bool| !*v,
            |i, done| {
                s.lock().unwrap().push(i);
                let ok = !fails.contains(&i);
                std::thread::spawn(move || done.send(ok));
            },
        );
        let outcome = slots
            .iter()
            .map(|s| match s {
                Slot::Done(true) => "ok".to_string(),
                Slot::Done(false) => "failed".to_string(),
                Slot::Skipped(k) => format!("{k:?}"),
            })
            .collect();
        let mut started = started.lock().unwrap().clone();
        started.sort();
        (started, outcome)
    }

    #[test]
    fn a_wave_is_what_run_starts_together() {
        let waves = |spread: Spread, n: usize| -> Vec<std::ops::Range<usize>> {
            (0..n).map(|i| wave(&spread, n, i)).collect()
        };
        let spread = |mode, limit| Spread {
            mode,
            limit,
            ..Spread::default()
        };
        assert_eq!(waves(spread(Mode::Parallel, None), 3), [0..3, 0..3, 0..3]);
        // A sliding window: the first window together, each later host alone.
        assert_eq!(
            waves(spread(Mode::Parallel, Some(2)), 4),
            [0..2, 0..2, 2..3, 3..4]
        );
        assert_eq!(waves(spread(Mode::Groups, Some(2)), 3), [0..2, 0..2, 2..3]);
        assert_eq!(waves(spread(Mode::Groups, None), 2), [0..2, 0..2]);
        assert_eq!(waves(spread(Mode::Sequence, None), 2), [0..1, 1..2]);
        // And their numbers.
        let numbers = |spread: Spread, n: usize| -> Vec<usize> {
            (0..n).map(|i| wave_number(&spread, n, i)).collect()
        };
        assert_eq!(numbers(spread(Mode::Parallel, None), 3), [0, 0, 0]);
        assert_eq!(numbers(spread(Mode::Parallel, Some(2)), 4), [0, 0, 1, 2]);
        assert_eq!(numbers(spread(Mode::Groups, Some(2)), 5), [0, 0, 1, 1, 2]);
        assert_eq!(numbers(spread(Mode::Sequence, None), 3), [0, 1, 2]);
    }

    /// Each answer is told to `settled` once the starts it allowed were made, before the next
    /// answer is waited for: what a dry run's hosts that end together wait on
    /// (`StepAbort::answered`).
    #[test]
    fn settled_follows_the_starts_each_answer_allowed() {
        let log = std::cell::RefCell::new(Vec::new());
        let spread = Spread {
            limit: Some(2),
            ..Spread::default()
        };
        run_settling(
            4,
            &spread,
            &|| false,
            &|| false,
            &|_: &bool| false,
            &|answered| log.borrow_mut().push(format!("settled {answered:?}")),
            |i, done| {
                log.borrow_mut().push(format!("start {i}"));
                done.send(true);
            },
        );
        assert_eq!(
            log.into_inner(),
            [
                "start 0",
                "start 1",
                "settled []",
                "start 2",
                "settled [0]",
                "start 3",
                "settled [1]",
                "settled [2]",
            ]
        );
    }

    #[test]
    fn parallel_runs_every_host_despite_a_failure() {
        let spread = Spread {
            limit: Some(2),
            ..Spread::default()
        };
        let (started, outcome) = order(spread, &[0], 5);
        assert_eq!(started, [0, 1, 2, 3, 4]);
        assert_eq!(outcome, ["failed", "ok", "ok", "ok", "ok"]);
    }

    /// A recipe's step in a window starts nothing after a failure; the same window without
    /// it (`tether run`) starts every host.
    #[test]
    fn a_window_that_stops_after_a_failure_starts_nothing_more() {
        let step = Spread {
            limit: Some(1),
            stop_after_failure: true,
            ..Spread::default()
        };
        let (started, outcome) = order(step, &[1], 4);
        assert_eq!(started, [0, 1]);
        assert_eq!(
            outcome,
            ["ok", "failed", "EarlierFailure", "EarlierFailure"]
        );
        let run = Spread {
            stop_after_failure: false,
            ..step
        };
        assert_eq!(order(run, &[1], 4).0, [0, 1, 2, 3]);
    }

    #[test]
    fn sequence_and_groups_stop_after_a_failure() {
        let seq = Spread {
            mode: Mode::Sequence,
            ..Spread::default()
        };
        let (started, outcome) = order(seq, &[1], 4);
        assert_eq!(started, [0, 1]);
        assert_eq!(
            outcome,
            ["ok", "failed", "EarlierFailure", "EarlierFailure"]
        );
        let groups = Spread {
            mode: Mode::Groups,
            limit: Some(2),
            ..Spread::default()
        };
        let (started, outcome) = order(groups, &[2], 6);
        assert_eq!(started, [0, 1, 2, 3]);
        assert_eq!(
            outcome,
            [
                "ok",
                "ok",
                "failed",
                "ok",
                "EarlierFailure",
                "EarlierFailure"
            ]
        );
    }

    #[test]
    fn cancel_and_lost_units_are_named() {
        let slots = run(
            3,
            &Spread::default(),
            &{
                let calls = Mutex::new(0);
                move || {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c > 2
                }
            },
            &|| false,
            &|_: &()| false,
            |i, done| {
                if i == 0 {
                    drop(done);
                } else {
                    done.send(());
                }
            },
        );
        assert!(matches!(slots[0], Slot::Skipped(Skipped::Lost)));
        assert!(matches!(slots[1], Slot::Done(())));
        assert!(matches!(slots[2], Slot::Skipped(Skipped::Cancelled)));
    }
}
