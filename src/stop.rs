//! Why tether stops a command it started, as a typed value carried from whoever asks for the
//! stop (the Ctrl-C handler, `tether watch`, a failed host of the same `on` step) to the
//! worker that stops it and to the failure the user reads: nothing is classified by text.
//!
//! A [`Stop`] is what a command is given: any number of sources, each either a flag that some
//! owner sets (Ctrl-C's, shared by the run, and cleared again for the failure hooks) with the
//! reason it stands for, or a cell set once with its reason (a step abort, which names the host
//! that failed). The command is stopped when any source is set; the first set source in the
//! order they were added is the reason given.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Why tether stopped a command (its timeout is a failure of its own,
/// `SshError::CommandTimeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Ctrl-C, SIGTERM or SIGHUP to tether (see `interrupt.rs`).
    Interrupted,
    /// `tether watch --kill` cancelled the run: a watched file changed.
    RunCancelled,
    /// Another host of the same `on` failed (see `crate::step_abort::StepAbort`).
    StepAborted {
        /// The host (or hosts, `web1, web2`) whose failure stopped the step.
        because: String,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Interrupted => f.write_str("tether was interrupted"),
            StopReason::RunCancelled => f.write_str("watch --kill: a watched file changed"),
            StopReason::StepAborted { because } => {
                write!(f, "the step was aborted because {because} failed")
            }
        }
    }
}

/// A source that decides, each time it is asked, whether a command is to stop now and why
/// (a step abort, whose same-step grace runs out with time: see
/// `crate::step_abort::StepAbort`). It is asked often (every 50 ms while a command runs), so it
/// must be cheap and must not block.
pub trait StopWhen: std::fmt::Debug + Send + Sync {
    /// Why the command is to stop now; `None` while it is not.
    fn reason(&self) -> Option<StopReason>;

    /// Why no new work is to start under it now (see [`Stop::refusal`]); by default, when
    /// [`reason`](StopWhen::reason) says it is to stop.
    fn refuses(&self) -> Option<StopReason> {
        self.reason()
    }

    /// Whether the unit `work` of new work under it may begin (see [`Stop::admit`]), once that
    /// is known (a step abort waits for the other hosts of its step to come as far); sets
    /// `work` to the unit the work is of the next source's (enclosing) step. By default, as
    /// [`refuses`](StopWhen::refuses), at once.
    fn admit(&self, work: &mut u64) -> Option<StopReason> {
        let _ = work;
        self.refuses()
    }
}

/// A cell set once, with its reason, to stop the commands given it.
pub type StopCell = Arc<OnceLock<StopReason>>;

impl StopWhen for OnceLock<StopReason> {
    fn reason(&self) -> Option<StopReason> {
        self.get().cloned()
    }
}

#[derive(Debug, Clone)]
enum Source {
    Flag(Arc<AtomicBool>, StopReason),
    When(Arc<dyn StopWhen>),
}

/// The sources that stop one command (see the module documentation). The default stops
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    sources: Vec<Source>,
}

impl Stop {
    /// Stopped when `flag` is set, for `why`.
    pub fn flag(flag: Arc<AtomicBool>, why: StopReason) -> Self {
        Stop::default().or_flag(flag, why)
    }

    /// Also stopped when `flag` is set, for `why`.
    pub fn or_flag(mut self, flag: Arc<AtomicBool>, why: StopReason) -> Self {
        self.sources.push(Source::Flag(flag, why));
        self
    }

    /// Also stopped once `cell` is set, for the reason in it.
    pub fn or_cell(self, cell: StopCell) -> Self {
        self.or_when(cell)
    }

    /// Also stopped when `when` says so.
    pub fn or_when(mut self, when: Arc<dyn StopWhen>) -> Self {
        self.sources.push(Source::When(when));
        self
    }

    /// Also stopped by every source of `other` (after this one's).
    pub fn or(mut self, other: Stop) -> Self {
        self.sources.extend(other.sources);
        self
    }

    /// Whether nothing can ever stop the command.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Why the command is to stop now; `None` while no source is set.
    pub fn reason(&self) -> Option<StopReason> {
        self.sources.iter().find_map(|s| match s {
            Source::Flag(flag, why) => flag.load(Ordering::SeqCst).then(|| why.clone()),
            Source::When(when) => when.reason(),
        })
    }

    /// Why work not yet started under this stop is not to start now: as [`Stop::reason`], but
    /// a step abort refuses new work of its own step at once, where it lets the step's running
    /// command its grace (see `crate::step_abort`): the commands of a nested `on`, all one step
    /// of the host whose closure runs it, start nothing after the enclosing step's abort (stop
    /// 47 tester t64).
    pub fn refusal(&self) -> Option<StopReason> {
        self.sources.iter().find_map(|s| match s {
            Source::Flag(flag, why) => flag.load(Ordering::SeqCst).then(|| why.clone()),
            Source::When(when) => when.refuses(),
        })
    }

    /// Why new work under this stop, the unit `work` of the innermost step it is in (see
    /// `crate::step_abort::StepAbort::consumed`), is not to begin: decided once the other
    /// hosts of each step it is in came as far (the step aborts are its sources, innermost
    /// first: see `crate::step_abort::StepAbort::admit`), so that the answer is the same on
    /// every run.
    pub fn admit(&self, mut work: u64) -> Option<StopReason> {
        self.sources.iter().find_map(|s| match s {
            Source::Flag(flag, why) => flag.load(Ordering::SeqCst).then(|| why.clone()),
            Source::When(when) => when.admit(&mut work),
        })
    }

    /// Whether the command is to stop now.
    pub fn is_set(&self) -> bool {
        self.reason().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_set_source_is_the_reason() {
        let ctrl_c = Arc::new(AtomicBool::new(false));
        let cell: StopCell = Arc::new(OnceLock::new());
        let stop = Stop::flag(ctrl_c.clone(), StopReason::Interrupted).or_cell(cell.clone());
        assert_eq!(stop.reason(), None);
        let _ = cell.set(StopReason::StepAborted {
            because: "web1".into(),
        });
        assert_eq!(
            stop.reason().map(|r| r.to_string()).as_deref(),
            Some("the step was aborted because web1 failed")
        );
        ctrl_c.store(true, Ordering::SeqCst);
        assert_eq!(stop.reason(), Some(StopReason::Interrupted));
        assert!(!Stop::default().is_set());
    }
}
