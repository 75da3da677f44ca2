//! `tether watch [STAGE] TASK...`: runs the tasks, then runs them again whenever the recipe or a
//! local module it imports changes, over sessions that stay open (and warm) between runs.
//!
//! - Files: notify (inotify) watches the *parent directories* of the recipe and of every local
//!   module the last run loaded (editors save by renaming a temporary file over the original,
//!   which would end a watch on the file itself); stdlib modules are embedded and not watched.
//!   Events go through notify-debouncer-full (held 20 ms at most), are filtered by path, and
//!   `Access` events are ignored (our own reads open the files), except a close after writing;
//!   a run waits until the watched files were quiet for `--debounce` (100 ms).
//!   A run starts only when a watched file's content hash differs from what the last run
//!   started with, so `touch`, our own reads and the several events of one save make one run.
//! - Runs: each builds a fresh Engine (`runner::load`; Rhai's module cache would keep old
//!   modules), but all runs share one [`Fleet`]: the sessions stay open, serviced by the
//!   heartbeat between runs. A host the recipe no longer declares is disconnected
//!   ([`Pool::retain`](crate::pool::Pool::retain)); a new one connects when first used.
//! - Cancel: each run has its own cancel flag (the Runtime's `interrupted`: `on_progress` stops
//!   the script at once, loops included; the host-bound functions check it; the fan-out
//!   dispatches nothing more) and its own kill flag (in-flight commands are stopped: a PTY's
//!   terminal hung up, a supervised command's process group signalled). A
//!   change during a run sets the cancel flag (and the kill flag with `--kill`), waits for the
//!   run to end (in-flight commands finish, or are stopped, then its failure hooks run, as
//!   after Ctrl-C in `tether TASK`: a deploy's lock and unfinished release are cleaned up),
//!   then runs the new version. The pool's Ctrl-C flag is not touched, so the next run and
//!   the heartbeat are unaffected.
//! - Ctrl-C: taken off the pool's flag into the current run's own (its in-flight commands are
//!   stopped, then its failure hooks run), then every session is closed and Ok returned (exit
//!   status 0: Ctrl-C is how one leaves watch mode). A second Ctrl-C exits at once with 130
//!   (see [`crate::interrupt`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify_debouncer_full::{new_debouncer, DebounceEventResult};

use crate::backend::{DryRun, Remote};
use crate::error::Error;
use crate::fleet::{self, Fleet};
use crate::recipe::sources::Sources;
use crate::report::{Reporter, RunLog};
use crate::sink::Sink;

mod files;
mod screen;

use crate::runner::{self, Loaded};
use crate::settings::{Format, Settings};
use crate::stop::{Stop, StopReason};
use files::Watched;
use screen::Screen;

/// How often the main loop looks at the Ctrl-C flag while it waits.
const TICK: Duration = Duration::from_millis(50);

/// How long the file-event debouncer holds an event before passing it on, at most: long
/// enough to merge an editor's write-and-rename, short against any `--debounce`.
const NOTIFY_SETTLE: Duration = Duration::from_millis(20);

/// What the main loop waits for.
enum Msg {
    /// A debounced batch of file events (or watcher errors).
    Files(DebounceEventResult),
    /// A run loaded its recipe: (its number, the (name, text) of every source it loaded).
    Loaded(u64, Vec<(String, String)>),
    /// A run ended.
    Done(Report),
}

/// The end of one run.
struct Report {
    number: u64,
    result: Result<(), Error>,
    /// Whether the recipe compiled and evaluated: then `sources` is the whole set to watch.
    loaded: bool,
    /// (name, text) of every source the run loaded, stdlib modules included.
    sources: Vec<(String, String)>,
    elapsed: Duration,
}

/// What every run needs; shared with the run threads.
struct Shared {
    settings: Settings,
    targets: Vec<String>,
    recipe: PathBuf,
    /// Ctrl-C (the pool checks it before every dispatch).
    interrupted: Arc<AtomicBool>,
    /// The one fleet of the watch session, created by the first run that needs it.
    fleet: Mutex<Option<Arc<Fleet>>>,
    /// Where every run reports.
    sink: Sink,
    /// The run log of the session (README, "The run log"): where the first run that loads
    /// says, then every later run and what happens between runs; off in a dry run.
    log: RunLog,
}

impl Shared {
    fn fleet(&self) -> Option<Arc<Fleet>> {
        // Only whole replacements happen under the lock.
        self.fleet.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The fleet, created on first use with the heartbeat and ssh config of the recipe that
    /// first needs it (the sessions outlive the runs: a later change of either is not seen).
    fn fleet_for(&self, loaded: &Loaded) -> Result<Arc<Fleet>, Error> {
        let mut slot = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = slot.as_ref() {
            return Ok(f.clone());
        }
        let heartbeat = fleet::heartbeat(&self.settings, loaded.keepalive()?);
        let f = Arc::new(Fleet::new(
            &self.settings,
            loaded.ssh_config()?,
            heartbeat,
            self.interrupted.clone(),
            self.sink.clone(),
        ));
        *slot = Some(f.clone());
        Ok(f)
    }
}

/// The run in progress.
struct Current {
    number: u64,
    flags: RunFlags,
    cancelled: bool,
}

/// `tether watch`'s own options.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Stop in-flight commands when a change cancels a run (default: wait for them).
    pub kill: bool,
    /// Quiet time after a change before the run starts.
    pub debounce: Duration,
    /// Tasks to run, optionally after a stage.
    pub targets: Vec<String>,
}

/// `tether watch`.
pub fn run(
    settings: &Settings,
    args: &WatchOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let log = RunLog::default();
    let reporter = if settings.dry_run {
        Reporter::start(settings)
    } else {
        Reporter::tapped(settings, vec![log.tap()])
    };
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        targets: args.targets.clone(),
        recipe: settings.recipe.clone(),
        interrupted: interrupted.clone(),
        fleet: Mutex::new(None),
        sink: reporter.sink(),
        log,
    });
    let screen = Screen {
        json: settings.format == Format::Json,
        verbose: settings.verbose,
        fold: settings.fold && settings.format == Format::Text,
        reporter,
    };
    let (tx, rx) = mpsc::channel::<Msg>();
    let files_tx = tx.clone();
    // The debouncer passes each event on a moment after it came (merging an editor's write
    // and rename); the wait for quiet is this loop's (`last_touch`): notify-debouncer-full
    // lets an event go once it is `--debounce` old, however many came after it, so a file
    // written every 0.2 s started a run every 0.2 s under `--debounce 1s`.
    let settle = args.debounce.min(NOTIFY_SETTLE);
    let tick = (settle / 4).max(Duration::from_millis(2));
    let mut debouncer = new_debouncer(settle, Some(tick), move |r| {
        // The receiver lives as long as the loop below.
        let _ = files_tx.send(Msg::Files(r));
    })
    .map_err(|e| Error::Usage(format!("cannot watch files: {e}")))?;
    let mut watched = Watched::new(&shared.recipe);
    for w in watched.sync_dirs(&mut debouncer) {
        screen.warn(&w);
    }

    let mut number = 0;
    let mut current: Option<Current> = None;
    // Ctrl-C came: the watch ends once the current run has (its failure hooks included).
    let mut leaving = false;
    let mut pending: Option<String> = Some("first run".into());
    // When a watched file was last touched: a run starts once they were quiet for the debounce.
    let mut last_touch: Option<Instant> = None;
    loop {
        let quiet_in = last_touch
            .map(|t| args.debounce.saturating_sub(t.elapsed()))
            .unwrap_or_default();
        // Ctrl-C is taken off the fleet's flag into the run's own, once: the run's failure
        // hooks then clean up on hosts the flag would keep them from (t57, stop 45: a
        // deploy's lock and release were left on every host, and the next save's run was
        // refused by the cancelled run's own lock). A second Ctrl-C still exits at once.
        if interrupted.swap(false, Ordering::SeqCst) {
            leaving = true;
            if let Some(cur) = &mut current {
                // Also after a save cancelled it: Ctrl-C stops PTY commands too.
                cur.cancelled = true;
                cur.flags.ctrl_c.store(true, Ordering::SeqCst);
                cur.flags.cancel.store(true, Ordering::SeqCst);
            }
        }
        if leaving && current.is_none() {
            break;
        }
        if !leaving && current.is_none() && quiet_in.is_zero() {
            if let Some(reason) = pending.take() {
                number += 1;
                watched.snapshot();
                let cur = Current {
                    number,
                    flags: RunFlags::default(),
                    cancelled: false,
                };
                crate::interrupt::idle(false);
                screen.run_started(number, &reason);
                spawn_run(&shared, &cur, tx.clone())?;
                current = Some(cur);
            }
        }
        let wait = match quiet_in.is_zero() {
            true => TICK,
            false => quiet_in.min(TICK),
        };
        let msg = match rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            // Both senders live in this function.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Msg::Files(Err(errors)) => {
                for e in errors {
                    screen.warn(&format!("watching files: {e}"));
                }
            }
            Msg::Files(Ok(events)) => {
                let touched = watched.touched(&events);
                if touched.is_empty() {
                    continue;
                }
                last_touch = Some(Instant::now());
                // Only the files these events are about: another file may be half written
                // right now, and its own events come when it has been quiet for the debounce.
                let changed = watched.changed(&touched);
                if changed.is_empty() {
                    if screen.verbose {
                        screen.say("watch: saved without changes; not running again");
                    }
                    continue;
                }
                let reason = format!("{} changed", changed.join(", "));
                if let Some(cur) = &mut current {
                    cancel(cur, &reason, args.kill, &screen);
                }
                pending = Some(reason);
            }
            Msg::Loaded(n, sources) => {
                // The modules a run imports for the first time are watched from its load on,
                // not from its end: an edit while it runs cancels it, as an edit of the recipe
                // does (stop 36 tester t22: the first run of a watch ran on with a module
                // edited under it). One edited between its load and now cancels it too.
                let Some(cur) = current.as_mut().filter(|c| c.number == n) else {
                    continue;
                };
                let new_files = watched.after_run(true, &sources);
                for w in watched.sync_dirs(&mut debouncer) {
                    screen.warn(&w);
                }
                let changed = watched.changed(&new_files);
                if !changed.is_empty() {
                    let reason = format!("{} changed", changed.join(", "));
                    cancel(cur, &reason, args.kill, &screen);
                    pending = Some(reason);
                }
            }
            Msg::Done(report) => {
                current = None;
                crate::interrupt::idle(true);
                let new_files = watched.after_run(report.loaded, &report.sources);
                for w in watched.sync_dirs(&mut debouncer) {
                    screen.warn(&w);
                }
                screen.run_finished(report.number, &report.result, report.elapsed);
                if leaving {
                    break;
                }
                if pending.is_none() {
                    // A module this run imported for the first time was not watched while
                    // the run loaded it: a change made then has no event of ours.
                    let changed = watched.changed(&new_files);
                    if !changed.is_empty() {
                        pending = Some(format!("{} changed", changed.join(", ")));
                    }
                }
                if pending.is_none() {
                    screen.waiting(shared.fleet().as_deref(), &watched);
                }
            }
        }
    }
    debouncer.stop();
    let (closed, hosts) = match shared.fleet() {
        Some(fleet) => {
            // Sessions that were open: a host that never connected, or whose configuration
            // is wrong, has a place in the pool but no session.
            screen.reporter.barrier();
            let stats = screen.reporter.stats();
            let open = fleet
                .pool
                .hosts()
                .iter()
                .filter(|h| stats.get(*h).is_some_and(|s| s.connected_at.is_some()))
                .count();
            // Every host of the watch, those a saved recipe dropped included (stop 58 tester
            // t93: a dropped host's re-attach and reconnect were missing from the last words).
            let mut names = fleet.pool.hosts();
            names.extend(stats.keys().cloned());
            names.sort();
            names.dedup();
            let hosts: Vec<_> = names
                .into_iter()
                .map(|h| {
                    let s = stats.get(&h).cloned().unwrap_or_default();
                    (h, s)
                })
                .collect();
            fleet.pool.retain(&[]);
            screen.reporter.barrier();
            (open, hosts)
        }
        None => (0, Vec::new()),
    };
    screen.exit(number, closed, &hosts);
    Ok(())
}

/// Cancels the run `cur` for `reason` (a file changed), once; `kill` stops its commands too.
fn cancel(cur: &mut Current, reason: &str, kill: bool, screen: &Screen) {
    if cur.cancelled {
        return;
    }
    cur.cancelled = true;
    cur.flags.cancel.store(true, Ordering::SeqCst);
    if kill {
        cur.flags.kill.store(true, Ordering::SeqCst);
    }
    screen.cancelling(cur.number, reason, kill);
}

/// The (name, text) of every source in `sources`.
fn texts(sources: &Sources) -> Vec<(String, String)> {
    sources
        .names()
        .into_iter()
        .filter_map(|n| sources.text(&n).map(|t| (n, t)))
        .collect()
}

/// Starts run `cur.number` on its own thread; it reports with [`Msg::Loaded`] once its recipe
/// loaded, and [`Msg::Done`].
fn spawn_run(shared: &Arc<Shared>, cur: &Current, tx: Sender<Msg>) -> Result<(), Error> {
    let shared = shared.clone();
    let (number, flags) = (cur.number, cur.flags.clone());
    std::thread::Builder::new()
        .name(format!("watch run {number}"))
        .spawn(move || {
            let started = Instant::now();
            let sources = Arc::new(Sources::default());
            let mut loaded = false;
            let on_loaded = |s: &Sources| {
                // The receiver lives as long as the watch.
                let _ = tx.send(Msg::Loaded(number, texts(s)));
            };
            let result = execute(&shared, &sources, flags, &mut loaded, &on_loaded);
            let sources = texts(&sources);
            // The receiver waits for exactly this message.
            let _ = tx.send(Msg::Done(Report {
                number,
                result,
                loaded,
                sources,
                elapsed: started.elapsed(),
            }));
        })
        .map(|_| ())
        .map_err(|e| Error::Usage(format!("cannot start a run thread: {e}")))
}

/// A run's own flags.
#[derive(Clone, Default)]
struct RunFlags {
    /// Nothing more is dispatched (the runtime's `interrupted`).
    cancel: Arc<AtomicBool>,
    /// In-flight commands are stopped, the run being cancelled (`--kill`).
    kill: Arc<AtomicBool>,
    /// Ctrl-C came during the run: in-flight commands are stopped for it.
    ctrl_c: Arc<AtomicBool>,
}

/// One run: a fresh load of the recipe, then its tasks over the shared fleet; a run cancelled
/// (a save, Ctrl-C) runs its failure hooks, as `tether TASK` does after Ctrl-C.
fn execute(
    shared: &Shared,
    sources: &Arc<Sources>,
    flags: RunFlags,
    loaded_ok: &mut bool,
    on_loaded: &dyn Fn(&Sources),
) -> Result<(), Error> {
    let RunFlags {
        cancel,
        kill,
        ctrl_c,
    } = flags;
    let mut opts = runner::load_options(&shared.settings, cancel.clone(), shared.sink.clone())?;
    opts.sources = Some(sources.clone());
    let loaded = runner::load(&shared.recipe, opts)?;
    *loaded_ok = true;
    on_loaded(sources);
    let tasks = runner::split_stage(&loaded, &shared.targets)?;
    if !shared.settings.dry_run {
        // The first run that gets here opens the log; later runs append to the same file.
        loaded.open_log(&shared.log)?;
    }
    if tasks.is_empty() {
        return Err(Error::Usage(
            "no task given: `tether watch [STAGE] TASK...`; `tether tasks` lists them".into(),
        ));
    }
    loaded.validate(&tasks, &shared.settings.subcommands)?;
    let ssh_config = loaded.ssh_config()?;
    if shared.settings.dry_run {
        let refused = crate::fleet::config_refusals(
            &ssh_config,
            &loaded.selected_hosts()?,
            shared.settings.jump.as_deref(),
            &shared.sink,
        );
        let dry = DryRun::new(shared.sink.clone())
            .refusing(refused)
            .stopped_by(
                Stop::flag(ctrl_c.clone(), StopReason::Interrupted)
                    .or_flag(kill.clone(), StopReason::RunCancelled),
            );
        return loaded.run_tasks(&tasks, Arc::new(dry));
    }
    let fleet = shared.fleet_for(&loaded)?;
    let hosts = loaded.selected_hosts()?;
    fleet.pool.forget_unconnected();
    fleet.pool.retain(&hosts);
    let backend = Remote::new(fleet.clone())
        .with_pty(shared.settings.pty)
        .with_flags(
            cancel,
            // Ctrl-C is the reason when it came, whether or not a save came first.
            Stop::flag(fleet.interrupted.clone(), StopReason::Interrupted)
                .or_flag(ctrl_c.clone(), StopReason::Interrupted)
                .or_flag(kill.clone(), StopReason::RunCancelled),
            // Cleared for the failure hooks (the cancel flag is the runtime's, which they
            // clear themselves).
            vec![ctrl_c, kill],
        )
        .with_hosts(hosts);
    let backend = Arc::new(backend);
    let result = loaded.run_tasks(&tasks, backend.clone());
    // The next run has a backend of its own: what this one owes is paid now.
    backend.settle_all();
    result
}
