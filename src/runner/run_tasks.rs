//! Running a loaded recipe's tasks (each with its before/after hooks, see
//! [`crate::recipe::tasks`]), the failure hooks when one fails, and `tether [STAGE] TASK...`
//! built on that: the remote backend or the dry-run printer, the run log, the timeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rhai::Dynamic;

use super::load::{classify, load, load_options, Loaded};
use super::stages::split_stage;
use crate::backend::{Backend, DryRun, Remote};
use crate::error::Error;
use crate::event::{unix_ms, EventKind, Record};
use crate::failure::{Failure, Kind};
use crate::fleet::{self, Fleet};
use crate::recipe::diagnostics;
use crate::recipe::tasks::{invoke, invoke_cleanup};
use crate::report::{Reporter, RunLog};
use crate::settings::Settings;
use crate::stop::{Stop, StopReason};
use crate::timeline::Recording;

impl Loaded {
    /// Runs `tasks` in order; on failure (Ctrl-C, a cancelled watch run included) runs the
    /// failure hooks and returns the error.
    pub fn run_tasks(&self, tasks: &[String], backend: Arc<dyn Backend>) -> Result<(), Error> {
        self.rt.set_backend(backend);
        self.rt.recipe().started = true;
        for t in tasks {
            self.rt.set_top(t);
            if let Err(e) = invoke(&self.engine, &self.rt, t) {
                let error = classify(&self.rt, &e);
                let ((), interrupted) =
                    crate::interrupt::finishing(|| self.run_failure_hooks(&error));
                // An interrupt outranks every other failure (README, Exit codes).
                if interrupted && !error.is_interrupted() {
                    return Err(Error::interrupted());
                }
                return Err(error);
            }
        }
        Ok(())
    }

    fn run_failure_hooks(&self, error: &Error) {
        let (hooks, has_failed_task) = {
            let recipe = self.rt.recipe();
            (
                recipe.failure_hooks.clone(),
                recipe.tasks.contains_key("deploy:failed"),
            )
        };
        if hooks.is_empty() && !has_failed_task {
            return;
        }
        // Failure hooks run even after Ctrl-C: they are how a run cleans up, on every host
        // that can be reached again.
        self.rt.interrupted.store(false, Ordering::SeqCst);
        if let Some(backend) = self.rt.backend() {
            backend.revive();
        }
        self.rt.report(EventKind::TaskStarted {
            task: "failure hooks".into(),
        });
        let main = self.rt.file.display().to_string();
        let message = crate::secret::mask(&error.to_string()).into_owned();
        // Said first should a second signal end tether before the hooks do: the run's own
        // error, which main would have said at the end.
        let _failure = (!error.is_interrupted()).then(|| {
            crate::interrupt::LeftBehind::say_as(
                crate::interrupt::Said::Failure,
                format!("error: {}", crate::report::visible_lines(&message)),
            )
        });
        // A hook that fails is a warning (the run's own failure decides the exit), reported as
        // every event is, so JSON has it too.
        let mut ok = true;
        let mut warn = |what: &str, e: Option<&rhai::EvalAltResult>| {
            ok = false;
            let text = match e {
                // Folded as the run's own error is (stop 67 tester t114: a hook's failure
                // listed host1 and host2 apart where the error folded them).
                Some(e) => diagnostics::eval_error_folded(e, &main, &self.rt.sources, self.rt.fold),
                // Rhai would say `Function not found: anon$7ec9... (&str)` (stop 40 tester t36).
                None => "its closure takes one parameter, the run's failure: on_failure(|err| { \
                         ... })"
                    .into(),
            };
            self.rt.report(EventKind::Warning {
                message: format!("{what} failed: {text}"),
            });
        };
        // The failure, as a `catch` reads it (`err.kind`, `err.hosts`, `err.message`), for
        // `run_failure()`; a hook's `err` is its message, a string (what recipes did with it
        // as one, `to_json`, `switch`, would change silently with another type).
        let failure = match error {
            Error::Failed(f) => {
                let mut f = (**f).clone();
                f.mask();
                f
            }
            Error::Recipe(_) => Failure::new(Kind::Recipe, message.clone()),
            Error::Usage(_) | Error::SshConfig(_) | Error::Timeline(_) => {
                Failure::new(Kind::Config, message.clone())
            }
        };
        self.rt.set_failure(failure);
        let library = self.library();
        for f in hooks {
            if library
                .iter_functions()
                .find(|m| m.name == f.fn_name())
                .is_some_and(|m| m.params.len() != f.curry().len() + 1)
            {
                warn("failure hook", None);
                continue;
            }
            if let Err(e) = f.call::<Dynamic>(&self.engine, &library, (message.clone(),)) {
                // A runaway placed where it ran away, as a task's is (stop 46 tester t60:
                // `Too many operations` alone).
                let e = crate::recipe::runaway::place(e, "the failure hook", None);
                warn("failure hook", Some(&e));
            }
        }
        if has_failed_task {
            // Named by its part: a hook of it that failed is no failure of its cleanup (stop
            // 41 tester t42: `deploy:failed failed` for a notifier hooked before it).
            for (part, e) in invoke_cleanup(&self.engine, &self.rt, "deploy:failed") {
                warn(&part, Some(&e));
            }
        }
        self.rt.report(EventKind::TaskFinished {
            task: "failure hooks".into(),
            ok,
        });
    }
}

/// `tether [STAGE] TASK...`; with `--timeline`, its timeline written when it ends.
pub fn run(
    settings: &Settings,
    targets: &[String],
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let recording = settings
        .timeline
        .as_deref()
        .map(Recording::new)
        .transpose()?;
    // A dry run changes nothing, the run log included.
    let log = (!settings.dry_run).then(RunLog::default);
    let taps = recording
        .iter()
        .map(Recording::tap)
        .chain(log.iter().map(RunLog::tap))
        .collect();
    let reporter = Reporter::for_run(settings, taps);
    let result = run_tasks(settings, targets, interrupted, &reporter, log.as_ref());
    finish_timeline(&reporter, recording.as_ref(), result)
}

/// Writes the timeline that `recording` (if any) made of the run `reporter` reported, whose
/// `result` this returns, and says where it is. A run that failed keeps its error (a timeline
/// that cannot be written is then a warning); a run that succeeded fails with the timeline's.
/// Nothing is written for a run that never started (the recipe did not load, say).
pub fn finish_timeline(
    reporter: &Reporter,
    recording: Option<&Recording>,
    result: Result<(), Error>,
) -> Result<(), Error> {
    let Some(recording) = recording else {
        return result;
    };
    reporter.barrier();
    let sink = reporter.sink();
    let path = recording.path().display().to_string();
    let warn = |message: String| sink.emit(&Arc::from(""), EventKind::Warning { message });
    let result = match (recording.write(), result) {
        (Ok(true), result) => {
            sink.emit(
                &Arc::from(""),
                EventKind::Record(Record::new(
                    serde_json::json!({ "type": "timeline", "path": path }),
                    vec![format!("timeline: {path}")],
                )),
            );
            result
        }
        (Ok(false), result) => {
            warn(format!(
                "no timeline written to {path}: the run did not start"
            ));
            result
        }
        (Err(e), Ok(())) => Err(e.into()),
        (Err(e), Err(run)) => {
            warn(e.to_string());
            Err(run)
        }
    };
    reporter.barrier();
    result
}

fn run_tasks(
    settings: &Settings,
    targets: &[String],
    interrupted: Arc<AtomicBool>,
    reporter: &Reporter,
    log: Option<&RunLog>,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut opts = load_options(settings, interrupted.clone(), reporter.sink())?;
    // A variable the environment gives for a task is read by a run of that task only.
    opts.env_overrides = settings
        .env_overrides
        .iter()
        .filter(|e| targets.iter().any(|t| t == e.task))
        .cloned()
        .collect();
    let loaded = load(&settings.recipe, opts)?;
    let tasks = split_stage(&loaded, targets)?;
    if let Some(log) = log {
        loaded.open_log(log)?;
    }
    if tasks.is_empty() {
        return Err(Error::Usage(
            "no task given: `tether [STAGE] TASK...`; `tether tasks` lists them".into(),
        ));
    }
    loaded.validate(&tasks, &settings.subcommands)?;
    // As `tether run` refuses them (stop 36 tester t20: a task ran nothing, said done, exit 0).
    if (!settings.roles.is_empty() || !settings.hosts.is_empty())
        && loaded.selected_before_shard() == 0
    {
        return Err(super::host_selection::nothing_selected(settings, &[]));
    }
    let ssh_config = loaded.ssh_config()?;
    super::host_selection::one_machine_twice(
        &ssh_config,
        &loaded.selected_hosts()?,
        settings.jump.as_deref(),
        super::host_selection::NamedBy::Recipe,
    )?;
    let shard_warnings = || {
        super::host_selection::unstamped_shard(settings, &loaded, &tasks, &reporter.sink());
        super::host_selection::empty_shard(
            settings,
            loaded.selected_hosts().map_or(0, |h| h.len()),
            loaded.selected_before_shard(),
            &reporter.sink(),
        )
    };
    let run_started = |dry_run| EventKind::RunStarted {
        recipe: Some(settings.recipe.display().to_string()),
        stage: (targets.len() > tasks.len()).then(|| targets[0].clone()),
        tasks: tasks.clone(),
        command: None,
        start_unix_ms: unix_ms(SystemTime::now()),
        dry_run,
    };
    let title = |result: &Result<(), Error>, done: &str| {
        format!(
            "{} {}",
            tasks.join(" "),
            if result.is_ok() { done } else { "failed" }
        )
    };
    if settings.dry_run {
        let selected = loaded.selected_hosts()?;
        loaded.rt.report(run_started(true));
        if shard_warnings() {
            let result = Ok(());
            reporter.run_finished(&title(&result, "planned"), &result, started.elapsed());
            return result;
        }
        let refused = fleet::config_refusals(
            &ssh_config,
            &selected,
            settings.jump.as_deref(),
            &reporter.sink(),
        );
        let dry = Arc::new(
            DryRun::new(reporter.sink())
                .refusing(refused)
                .stopped_by(Stop::flag(interrupted.clone(), StopReason::Interrupted)),
        );
        let result = loaded.run_tasks(&tasks, dry);
        reporter.run_finished(&title(&result, "planned"), &result, started.elapsed());
        return result;
    }
    let heartbeat = fleet::heartbeat(settings, loaded.keepalive()?);
    let fleet = Arc::new(Fleet::new(
        settings,
        ssh_config,
        heartbeat,
        interrupted,
        reporter.sink(),
    ));
    let backend = Arc::new(
        Remote::new(fleet.clone())
            .with_pty(settings.pty)
            .with_hosts(loaded.selected_hosts()?),
    );
    loaded.rt.report(run_started(false));
    // An empty shard runs no task: the stdlib's local build, a hook's notification would
    // otherwise run in every empty job of a matrix.
    let result = match shard_warnings() {
        true => Ok(()),
        false => loaded.run_tasks(&tasks, backend.clone()),
    };
    backend.settle_all();
    fleet.close();
    // Interrupted after the last task, while the run waited for connections it opened: the
    // run was interrupted all the same (README, Exit codes: 130).
    let result = match result {
        Ok(()) if fleet.interrupted() => Err(Error::interrupted()),
        other => other,
    };
    reporter.run_finished(&title(&result, "finished"), &result, started.elapsed());
    result
}
