//! `tether watch [STAGE] TASK...`: runs the tasks, then runs them again whenever the recipe or a
//! local module it imports changes, over sessions that stay open (and warm) between runs.
//!
//! - Files: notify (inotify) watches the *parent directories* of the recipe and of every local
//!   module the last run loaded (editors save by renaming a temporary file over the original,
//!   which would end a watch on the file itself); stdlib modules are embedded and not watched.
//!   Events go through notify-debouncer-full (`--debounce`, 100 ms), are filtered by path, and
//!   `Access` events are ignored (our own reads open the files), except a close after writing.
//!   A run starts only when a watched file's content hash differs from what the last run
//!   started with, so `touch`, our own reads and the several events of one save make one run.
//! - Runs: each builds a fresh Engine (`runner::load`; Rhai's module cache would keep old
//!   modules), but all runs share one [`Fleet`]: the sessions stay open, serviced by the
//!   heartbeat between runs. A host the recipe no longer declares is disconnected
//!   ([`Pool::retain`](crate::pool::Pool::retain)); a new one connects when first used.
//! - Cancel: each run has its own cancel flag (the Runtime's `interrupted`: `on_progress` stops
//!   the script at once, loops included; the host-bound functions check it; the fan-out
//!   dispatches nothing more) and its own kill flag (in-flight PTY commands are stopped). A
//!   change during a run sets the cancel flag (and the kill flag with `--kill`), waits for the
//!   run to end (in-flight commands finish, or are stopped), then runs the new version. The
//!   pool's Ctrl-C flag is not touched, so the next run and the heartbeat are unaffected, and a
//!   cancelled run runs no failure hooks.
//! - Ctrl-C: cancels the current run with its kill flag set (PTY commands are stopped, others
//!   waited for), closes every session and returns Ok (exit status 0: Ctrl-C is how one leaves
//!   watch mode). A second Ctrl-C exits at once with 130 (see [`crate::interrupt`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, DebouncedEvent};

use crate::backend::{DryRun, Remote};
use crate::duration::format as format_duration;
use crate::error::Error;
use crate::event::{EventKind as RunEvent, Record, Sink};
use crate::fleet::{self, Fleet};
use crate::recipe::sources::Sources;
use crate::recipe::stdlib;
use crate::report::Reporter;
use crate::runner::{self, Loaded};
use crate::settings::{Format, Settings};

/// How often the main loop looks at the Ctrl-C flag while it waits.
const TICK: Duration = Duration::from_millis(50);

/// What the main loop waits for.
enum Msg {
    /// A debounced batch of file events (or watcher errors).
    Files(DebounceEventResult),
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
}

impl Shared {
    fn fleet(&self) -> Option<Arc<Fleet>> {
        // Only whole replacements happen under the lock.
        self.fleet.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The fleet, created on first use with the heartbeat of the recipe that first needs it.
    fn fleet_for(&self, loaded: &Loaded) -> Result<Arc<Fleet>, Error> {
        let mut slot = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = slot.as_ref() {
            return Ok(f.clone());
        }
        let heartbeat = fleet::heartbeat_interval(&self.settings, loaded.keepalive()?);
        let f = Arc::new(Fleet::new(
            &self.settings,
            heartbeat,
            self.interrupted.clone(),
            self.sink.clone(),
        )?);
        *slot = Some(f.clone());
        Ok(f)
    }
}

/// The run in progress.
struct Current {
    number: u64,
    cancel: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
    cancelled: bool,
}

/// `tether watch`'s own options.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Stop in-flight PTY commands when a change cancels a run (default: wait for them).
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
    let reporter = Reporter::start(settings.format, settings.verbose, settings.color);
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        targets: args.targets.clone(),
        recipe: settings.recipe.clone(),
        interrupted: interrupted.clone(),
        fleet: Mutex::new(None),
        sink: reporter.sink(),
    });
    let screen = Screen {
        json: settings.format == Format::Json,
        verbose: settings.verbose,
        reporter,
    };
    let (tx, rx) = mpsc::channel::<Msg>();
    let files_tx = tx.clone();
    let tick = (args.debounce / 10).clamp(Duration::from_millis(5), args.debounce);
    let mut debouncer = new_debouncer(args.debounce, Some(tick), move |r| {
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
    let mut pending: Option<String> = Some("first run".into());
    loop {
        if interrupted.load(Ordering::SeqCst) {
            match &mut current {
                // Also after a save cancelled it: Ctrl-C stops PTY commands too.
                Some(cur) => {
                    cur.cancelled = true;
                    cur.cancel.store(true, Ordering::SeqCst);
                    cur.kill.store(true, Ordering::SeqCst);
                }
                None => break,
            }
        } else if current.is_none() {
            if let Some(reason) = pending.take() {
                number += 1;
                watched.snapshot();
                let cur = Current {
                    number,
                    cancel: Arc::new(AtomicBool::new(false)),
                    kill: Arc::new(AtomicBool::new(false)),
                    cancelled: false,
                };
                screen.run_started(number, &reason);
                spawn_run(&shared, &cur, tx.clone())?;
                current = Some(cur);
            }
        }
        let msg = match rx.recv_timeout(TICK) {
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
                    if !cur.cancelled {
                        cur.cancelled = true;
                        cur.cancel.store(true, Ordering::SeqCst);
                        if args.kill {
                            cur.kill.store(true, Ordering::SeqCst);
                        }
                        screen.cancelling(cur.number, &reason, args.kill);
                    }
                }
                pending = Some(reason);
            }
            Msg::Done(report) => {
                current = None;
                let new_files = watched.after_run(&report);
                for w in watched.sync_dirs(&mut debouncer) {
                    screen.warn(&w);
                }
                screen.run_finished(&report);
                if pending.is_none() && !interrupted.load(Ordering::SeqCst) {
                    // A module this run imported for the first time was not watched while
                    // the run loaded it: a change made then has no event of ours.
                    let changed = watched.changed(&new_files);
                    if !changed.is_empty() {
                        pending = Some(format!("{} changed", changed.join(", ")));
                    }
                }
                if pending.is_none() && !interrupted.load(Ordering::SeqCst) {
                    screen.waiting(&shared, &watched);
                }
            }
        }
    }
    debouncer.stop();
    let closed = match shared.fleet() {
        Some(fleet) => {
            let n = fleet.pool.hosts().len();
            fleet.pool.retain(&[]);
            screen.reporter.barrier();
            n
        }
        None => 0,
    };
    screen.exit(number, closed);
    Ok(())
}

/// Starts run `cur.number` on its own thread; it reports with [`Msg::Done`].
fn spawn_run(shared: &Arc<Shared>, cur: &Current, tx: Sender<Msg>) -> Result<(), Error> {
    let shared = shared.clone();
    let (number, cancel, kill) = (cur.number, cur.cancel.clone(), cur.kill.clone());
    std::thread::Builder::new()
        .name(format!("watch run {number}"))
        .spawn(move || {
            let started = Instant::now();
            let sources = Arc::new(Sources::default());
            let mut loaded = false;
            let result = execute(&shared, &sources, cancel, kill, &mut loaded);
            let sources = sources
                .names()
                .into_iter()
                .filter_map(|n| sources.text(&n).map(|t| (n, t)))
                .collect();
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

/// One run: a fresh load of the recipe, then its tasks over the shared fleet.
fn execute(
    shared: &Shared,
    sources: &Arc<Sources>,
    cancel: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
    loaded_ok: &mut bool,
) -> Result<(), Error> {
    let mut opts = runner::load_options(&shared.settings, cancel.clone(), shared.sink.clone())?;
    opts.sources = Some(sources.clone());
    let loaded = runner::load(&shared.recipe, opts)?;
    *loaded_ok = true;
    let tasks = runner::split_stage(&loaded, &shared.targets)?;
    if tasks.is_empty() {
        return Err(Error::Usage(
            "no task given: `tether watch [STAGE] TASK...`; `tether tasks` lists them".into(),
        ));
    }
    loaded.validate(&tasks)?;
    if shared.settings.dry_run {
        return loaded.run_tasks_cancellable(&tasks, Arc::new(DryRun::new(shared.sink.clone())));
    }
    let fleet = shared.fleet_for(&loaded)?;
    let hosts = loaded.selected_hosts()?;
    fleet.pool.retain(&hosts);
    let backend = Remote::new(fleet.clone())
        .with_pty(shared.settings.pty)
        .with_flags(cancel, kill)
        .with_hosts(hosts);
    loaded.run_tasks_cancellable(&tasks, Arc::new(backend))
}

/// The files a change of which starts a run, and the directories watched for them.
struct Watched {
    /// The recipe, absolute.
    recipe: PathBuf,
    /// Absolute path -> the name runs and messages know it by.
    files: BTreeMap<PathBuf, String>,
    /// Content hash (`None`: missing) each file had when the last run started, or as that run
    /// loaded it.
    baseline: BTreeMap<PathBuf, Option<u64>>,
    /// Directories being watched.
    dirs: BTreeSet<PathBuf>,
}

impl Watched {
    fn new(recipe: &Path) -> Self {
        let abs = absolute(recipe);
        let mut files = BTreeMap::new();
        files.insert(abs.clone(), recipe.display().to_string());
        Watched {
            recipe: abs,
            files,
            baseline: BTreeMap::new(),
            dirs: BTreeSet::new(),
        }
    }

    /// Records what every watched file holds now (a run is about to load them).
    fn snapshot(&mut self) {
        self.baseline = self
            .files
            .keys()
            .map(|p| (p.clone(), disk_hash(p)))
            .collect();
    }

    /// Names of the files among `paths` whose content differs from the baseline.
    fn changed(&self, paths: &BTreeSet<PathBuf>) -> Vec<String> {
        self.files
            .iter()
            .filter(|(p, _)| paths.contains(*p))
            .filter(|(p, _)| self.baseline.get(*p).copied().flatten() != disk_hash(p))
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// After a run: watch exactly what it loaded (or, if the recipe did not load, also what
    /// earlier runs loaded), with the content it loaded as the baseline. Returns the files
    /// that were not watched before.
    fn after_run(&mut self, report: &Report) -> BTreeSet<PathBuf> {
        let before: BTreeSet<PathBuf> = self.files.keys().cloned().collect();
        let local: Vec<(PathBuf, &String, &String)> = report
            .sources
            .iter()
            .filter(|(name, text)| !is_embedded(name, text))
            .map(|(name, text)| (absolute(Path::new(name)), name, text))
            .collect();
        if report.loaded {
            let recipe = self.recipe.clone();
            self.files.retain(|p, _| *p == recipe);
        }
        for (path, name, text) in local {
            self.baseline
                .insert(path.clone(), Some(content_hash(text.as_bytes())));
            self.files.insert(path, name.clone());
        }
        for p in self.files.keys() {
            if !self.baseline.contains_key(p) {
                self.baseline.insert(p.clone(), disk_hash(p));
            }
        }
        let files = &self.files;
        self.baseline.retain(|p, _| files.contains_key(p));
        files
            .keys()
            .filter(|p| !before.contains(*p))
            .cloned()
            .collect()
    }

    /// Watches the parent directory of every file, and no other; returns warnings.
    fn sync_dirs<W: notify::Watcher, C: notify_debouncer_full::FileIdCache>(
        &mut self,
        debouncer: &mut notify_debouncer_full::Debouncer<W, C>,
    ) -> Vec<String> {
        let wanted: BTreeSet<PathBuf> = self
            .files
            .keys()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        let mut warnings = Vec::new();
        for gone in self.dirs.difference(&wanted) {
            // A directory that disappeared is no longer watched anyway.
            let _ = debouncer.unwatch(gone);
        }
        let mut now = BTreeSet::new();
        for dir in wanted {
            if self.dirs.contains(&dir) {
                now.insert(dir);
                continue;
            }
            match debouncer.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    now.insert(dir);
                }
                Err(e) => warnings.push(format!("cannot watch {}: {e}", dir.display())),
            }
        }
        self.dirs = now;
        warnings
    }

    /// The watched files `events` may have changed: reads are ignored (our own loads and
    /// hash checks open the files), except a close after writing; a rescan (the kernel's
    /// queue overflowed) may concern every file.
    fn touched(&self, events: &[DebouncedEvent]) -> BTreeSet<PathBuf> {
        let mut touched = BTreeSet::new();
        for event in events {
            match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
                EventKind::Access(_) | EventKind::Other => continue,
                _ => {}
            }
            if event.need_rescan() {
                touched.extend(self.files.keys().cloned());
            }
            touched.extend(
                event
                    .paths
                    .iter()
                    .filter(|p| self.files.contains_key(*p))
                    .cloned(),
            );
        }
        touched
    }

    fn names(&self) -> Vec<&str> {
        self.files.values().map(String::as_str).collect()
    }
}

/// Whether source `name` is an embedded stdlib module (not a file to watch).
fn is_embedded(name: &str, text: &str) -> bool {
    name.strip_prefix("stdlib/")
        .and_then(|r| r.strip_suffix(".rhai"))
        .and_then(stdlib::get)
        .is_some_and(|embedded| embedded == text)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The hash of a file's content, `None` if it cannot be read (missing).
fn disk_hash(path: &Path) -> Option<u64> {
    std::fs::read(path).ok().map(|b| content_hash(&b))
}

/// What watch mode prints, as records through the reporter: plain lines, or JSON objects
/// (`watch_run_started`, `watch_cancel`, `watch_run_finished`, `watch_waiting`, `watch_exit`,
/// `watch_warning`) with `--format json`.
struct Screen {
    json: bool,
    verbose: bool,
    reporter: Reporter,
}

impl Screen {
    /// Reports a record after every host line reported so far.
    fn record(&self, json: serde_json::Value, text: Vec<String>) {
        self.reporter
            .sink()
            .emit(&Arc::from(""), RunEvent::Record(Record::new(json, text)));
        self.reporter.barrier();
    }

    fn say(&self, text: &str) {
        self.record(
            serde_json::json!({ "type": "watch_note", "message": text }),
            vec![text.to_string()],
        );
    }

    fn warn(&self, text: &str) {
        if self.json {
            self.record(
                serde_json::json!({ "type": "watch_warning", "message": text }),
                Vec::new(),
            );
        } else {
            eprintln!("warning: {text}");
        }
    }

    fn run_started(&self, number: u64, reason: &str) {
        self.record(
            serde_json::json!({ "type": "watch_run_started", "run": number, "reason": reason }),
            vec![format!("watch: run {number} ({reason})")],
        );
    }

    fn cancelling(&self, number: u64, reason: &str, kill: bool) {
        let how = if kill {
            "stopping PTY commands, waiting for the others"
        } else {
            "waiting for running commands"
        };
        self.record(
            serde_json::json!({
                "type": "watch_cancel",
                "run": number,
                "reason": reason,
                "kill": kill,
            }),
            vec![format!(
                "watch: {reason} during run {number}: cancelling it ({how})"
            )],
        );
    }

    fn run_finished(&self, report: &Report) {
        let (word, error) = match &report.result {
            Ok(()) => ("ok", None),
            Err(e) if e.is_interrupted() => ("cancelled", None),
            Err(e @ Error::Recipe(_)) => ("recipe error", Some(e)),
            Err(e @ Error::Failed(_)) => ("failed", Some(e)),
            Err(e) => ("error", Some(e)),
        };
        let took = format_duration(report.elapsed);
        self.reporter.barrier();
        if let Some(e) = error {
            eprintln!("error: {}", crate::secret::mask(&e.to_string()));
        }
        let line = match word {
            "ok" => format!("watch: run {} ok in {took}", report.number),
            "cancelled" => format!("watch: run {} cancelled after {took}", report.number),
            "recipe error" => format!(
                "watch: run {} stopped: recipe error (above); fix it and save",
                report.number
            ),
            other => format!("watch: run {} {other} after {took}", report.number),
        };
        let code = report.result.as_ref().err().map_or(0, Error::exit_code);
        self.record(
            serde_json::json!({
                "type": "watch_run_finished",
                "run": report.number,
                "result": word,
                "exit_code": code,
                "error": error.map(|e| crate::secret::mask(&e.to_string()).into_owned()),
                "duration_ms": (report.elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            }),
            vec![line],
        );
    }

    fn waiting(&self, shared: &Shared, watched: &Watched) {
        let now = Instant::now();
        let mut hosts: Vec<(String, Option<Duration>, u64)> = Vec::new();
        if let Some(f) = shared.fleet() {
            self.reporter.barrier();
            let stats = self.reporter.stats();
            for h in f.pool.hosts() {
                let s = stats.get(&h).cloned().unwrap_or_default();
                let warm = s.connected_at.map(|t| now.saturating_duration_since(t));
                hosts.push((h, warm, s.reconnects));
            }
        }
        let width = hosts
            .iter()
            .map(|(h, _, _)| h.chars().count())
            .max()
            .unwrap_or(0);
        let mut text = Vec::new();
        for (h, warm, reconnects) in &hosts {
            let state = match warm {
                Some(w) => format!("session warm for {}", format_duration(*w)),
                None => "not connected".to_string(),
            };
            text.push(format!(
                "  {h:width$}  {state}, {reconnects} reconnect{}",
                if *reconnects == 1 { "" } else { "s" }
            ));
        }
        text.push(format!(
            "watch: waiting for changes to {} (Ctrl-C to exit)",
            watched.names().join(", ")
        ));
        let hosts_json: Vec<serde_json::Value> = hosts
            .iter()
            .map(|(h, warm, reconnects)| {
                serde_json::json!({
                    "host": h,
                    "warm_ms": warm.map(|w| w.as_millis() as u64),
                    "reconnects": reconnects,
                })
            })
            .collect();
        self.record(
            serde_json::json!({
                "type": "watch_waiting",
                "files": watched.names(),
                "hosts": hosts_json,
            }),
            text,
        );
    }

    fn exit(&self, runs: u64, closed: usize) {
        self.record(
            serde_json::json!({ "type": "watch_exit", "runs": runs, "sessions_closed": closed }),
            vec![format!(
                "watch: stopped after {runs} run{}; {closed} session{} closed",
                if runs == 1 { "" } else { "s" },
                if closed == 1 { "" } else { "s" }
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    use notify::Event;

    fn event(kind: EventKind, paths: &[&Path]) -> DebouncedEvent {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(p.to_path_buf());
        }
        DebouncedEvent::new(e, Instant::now())
    }

    #[test]
    fn reads_and_other_files_are_not_changes() {
        let w = Watched::new(Path::new("/r/deploy.rhai"));
        let recipe = Path::new("/r/deploy.rhai");
        let other = Path::new("/r/notes.txt");
        let ignored = [
            event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &[recipe],
            ),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &[recipe],
            ),
            event(EventKind::Modify(ModifyKind::Any), &[other]),
        ];
        assert!(w.touched(&ignored).is_empty());
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Create(CreateKind::File),
        ] {
            assert_eq!(
                w.touched(&[event(kind, &[recipe])]),
                BTreeSet::from([recipe.to_path_buf()])
            );
        }
        // A save by rename names the temporary file and the recipe.
        let tmp = Path::new("/r/.deploy.rhai.swp");
        let rename = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[tmp, recipe],
        );
        assert_eq!(w.touched(&[rename]).len(), 1);
    }

    #[test]
    fn embedded_modules_are_not_watched() {
        let deploy = stdlib::get("deploy").unwrap();
        assert!(is_embedded("stdlib/deploy.rhai", deploy));
        assert!(!is_embedded("stdlib/deploy.rhai", "fn mine() {}"));
        assert!(!is_embedded("lib/deploy.rhai", deploy));
    }
}
