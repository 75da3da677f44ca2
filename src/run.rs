//! `tether run`: one command on every selected host, in parallel.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::dispatch::Spread;
use crate::error::Error;
use crate::event::{unix_ms, EventKind};
use crate::failure::Failure;
use crate::fleet::{self, Fleet};
use crate::outcome::step_failure;
use crate::pool::FanOut;
use crate::report::Reporter;
use crate::runner;
use crate::settings::{Format, Settings};
use crate::stop::{Stop, StopReason};
use crate::timeline::Recording;

/// How many of the last bytes of each stream of a command `tether run` keeps: more than a
/// failure's tail shows (see `stderr_tail::STDERR_TAIL`, `stderr_tail::TAIL_LINE_CHARS`).
const KEEP: usize = 64 * 1024;

/// `tether run`'s own options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// With a recipe: select this stage's servers.
    pub stage: Option<String>,
    /// Give up on a host whose command runs longer than this.
    pub timeout: Option<Duration>,
    /// The command (the words joined with spaces, as `ssh` does).
    pub command: String,
}

/// Runs `opts.command` on the selected hosts; with `--timeline`, its timeline written when
/// it ends.
pub fn run(
    settings: &Settings,
    opts: &RunOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let recording = settings
        .timeline
        .as_deref()
        .map(Recording::new)
        .transpose()?;
    let reporter = Reporter::for_run(settings, recording.iter().map(Recording::tap).collect());
    let result = run_command(settings, opts, interrupted, &reporter);
    runner::finish_timeline(&reporter, recording.as_ref(), result)
}

fn run_command(
    settings: &Settings,
    opts: &RunOptions,
    interrupted: Arc<AtomicBool>,
    reporter: &Reporter,
) -> Result<(), Error> {
    // `ssh host ''` opens a login shell; tether runs commands only.
    if opts.command.trim().is_empty() {
        return Err(Error::Usage(
            "run: the command is empty: nothing to run (a variable left unset?)".into(),
        ));
    }
    let selection = runner::select(
        settings,
        opts.stage.as_deref(),
        interrupted.clone(),
        reporter.sink(),
    )?;
    let targets = selection.targets(settings)?;
    let command = opts.command.clone();
    let before_shard = selection.before_shard;
    let run_started = |dry_run| EventKind::RunStarted {
        recipe: selection.recipe.as_ref().map(|r| r.display().to_string()),
        stage: opts.stage.clone(),
        tasks: Vec::new(),
        command: Some(command.clone()),
        start_unix_ms: unix_ms(SystemTime::now()),
        dry_run,
    };
    if settings.dry_run {
        let started = Instant::now();
        let sink = reporter.sink();
        sink.emit(&Arc::from(""), run_started(true));
        sink.emit(&Arc::from(""), fleet::hosts_event(&targets));
        runner::empty_shard(settings, targets.len(), before_shard, &sink);
        let refused = fleet::config_refusals(
            &selection.ssh_config,
            &targets,
            settings.jump.as_deref(),
            &sink,
        );
        // As the run would: a host it cannot reach runs nothing.
        for t in targets.iter().filter(|t| !refused.contains_key(&t.name)) {
            sink.emit(
                &Arc::from(t.name.as_str()),
                EventKind::Planned {
                    command: command.clone(),
                },
            );
        }
        let result = fleet::refusal_failure(&refused, &targets).map_or(Ok(()), |f| Err(f.into()));
        let title = if result.is_ok() { "planned" } else { "failed" };
        reporter.run_finished(&format!("run {title}"), &result, started.elapsed());
        return result;
    }
    let started = Instant::now();
    let heartbeat = fleet::heartbeat(settings, selection.keepalive);
    let fleet = Fleet::new(
        settings,
        selection.ssh_config,
        heartbeat,
        interrupted,
        reporter.sink(),
    );
    reporter.sink().emit(&Arc::from(""), run_started(false));
    runner::empty_shard(settings, targets.len(), before_shard, &reporter.sink());
    fleet.connect(&targets);
    let commands: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.name.clone(), command.clone()))
        .collect();
    let how = FanOut {
        spread: Spread {
            limit: settings.parallel,
            ..Spread::default()
        },
        timeout: opts.timeout,
        pty: settings.pty,
        // Ctrl-C (which the pool checks before each dispatch) also stops PTY commands.
        kill: Stop::flag(fleet.interrupted.clone(), StopReason::Interrupted),
        // The output is shown as it comes; a failure's tail is all of it the run needs.
        keep: Some(KEEP),
        ..FanOut::default()
    };
    let results = fleet.exec(&commands, &how);
    // The interrupt decides the exit code; the hosts that had failed on their own are named
    // all the same, as a recipe's step names them (stop 61 tester t102: stderr said only
    // `error: interrupted` of a run where 3 of 4 hosts had failed).
    let failure = step_failure(&results).map(|f| Failure {
        shown: settings.format == Format::Text,
        ..f
    });
    let result = match (fleet.interrupted(), failure) {
        (true, Some(f)) => Err(Error::from(f.under_interrupt())),
        (true, None) => Err(Error::interrupted()),
        (false, Some(f)) => Err(Error::from(f)),
        (false, None) => Ok(()),
    };
    // Nothing of the sessions (a heartbeat, a clean-up) is reported after the summary.
    fleet.close();
    reporter.summary(&results, &result, started.elapsed());
    result
}
