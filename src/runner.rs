//! Loading a recipe and running its tasks: stages, the tasks asked for (each with its
//! before/after hooks, see [`crate::recipe::tasks`]), failure hooks, dry run; and the
//! commands built on that (`tether TASK...`, `tether tasks`, the host selection of `run` and
//! `check`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rhai::{Dynamic, Engine, EvalAltResult, Module, Scope, AST};

use crate::backend::{Backend, DryRun, Remote};
use crate::error::Error;
use crate::event::{unix_ms, EventKind, Record, Sink};
use crate::fleet::{self, Fleet};
use crate::host::HostTarget;
use crate::recipe::context::{Filters, Runtime};
use crate::recipe::declare::override_value;
use crate::recipe::diagnostics;
use crate::recipe::engine;
use crate::recipe::failures::failure_of;
use crate::recipe::model::{suggest, Hook, Task};
use crate::recipe::sources::Sources;
use crate::recipe::tasks::invoke;
use crate::report::{Reporter, RunLog};
use crate::settings::{Format, Settings};
use crate::ssh::config::SshConfig;
use crate::timeline::Recording;

/// What a recipe load needs besides the file.
pub struct LoadOptions {
    /// `--roles`/`--hosts`.
    pub filters: Filters,
    /// `-F` / `TETHER_SSH_CONFIG`: an ssh config file that wins over the recipe's.
    pub ssh_config: Option<PathBuf>,
    /// `--parallel`.
    pub parallel: Option<usize>,
    /// `-s key=value`.
    pub overrides: Vec<(String, String)>,
    /// Ctrl-C / cancel flag.
    pub interrupted: Arc<AtomicBool>,
    /// Where the texts of the recipe and its modules are recorded (watch mode passes its own,
    /// to learn what to watch even when the load fails); `None`: a fresh one.
    pub sources: Option<Arc<Sources>>,
    /// Where the run reports.
    pub sink: Sink,
}

/// A compiled and evaluated recipe, ready to run tasks.
pub struct Loaded {
    /// The engine (with this run's module cache).
    pub engine: Arc<Engine>,
    /// Shared state.
    pub rt: Arc<Runtime>,
    ast: Arc<AST>,
    /// Stage files: `deploy/STAGE.rhai` beside the recipe (Capistrano's
    /// `config/deploy/STAGE.rb`), by stage name, sorted.
    stage_files: Vec<(String, PathBuf)>,
}

/// The stage files beside `recipe`: every `deploy/NAME.rhai` that is a file.
fn stage_files(recipe: &Path) -> Vec<(String, PathBuf)> {
    let dir = recipe
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("deploy");
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai") && p.is_file())
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    found.sort();
    found
}

/// Compiles and evaluates `file` (its top level declares servers, tasks, hooks).
pub fn load(file: &Path, opts: LoadOptions) -> Result<Loaded, Error> {
    let text = crate::recipe::sources::read(file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Usage(format!(
                "no recipe: {} does not exist (write one, or name it with -f FILE)",
                file.display()
            ))
        } else {
            Error::Usage(format!("cannot read recipe {}: {e}", file.display()))
        }
    })?;
    let mut runtime = Runtime::new(
        file.to_path_buf(),
        opts.filters,
        opts.ssh_config,
        opts.parallel,
        opts.interrupted,
        opts.sink,
    );
    if let Some(sources) = opts.sources {
        runtime.sources = sources;
    }
    let rt = Arc::new(runtime);
    let name = file.display().to_string();
    rt.sources.insert(&name, &text);
    {
        let mut recipe = rt.recipe();
        for (k, v) in &opts.overrides {
            recipe.vars.insert(k.clone(), override_value(v));
            recipe.locked.insert(k.clone());
        }
    }
    let engine = Arc::new(engine::build(rt.clone()));
    let mut ast = engine
        .compile(crate::recipe::syntax::prepare_source(&text))
        .map_err(|e| Error::Recipe(diagnostics::parse_error(&e, &name, &rt.sources)))?;
    ast.set_source(name.as_str());
    // Evaluated as a module, not a plain script: a module's functions (closures included)
    // keep its imports (`import "x" as x; ... || x::f()`), which a plain run forgets once it
    // returns. Closures are later called against one library holding the recipe's and every
    // imported module's functions.
    let mut lib =
        Module::eval_ast_as_new(Scope::new(), &ast, &engine).map_err(|e| classify(&rt, &e))?;
    for module in rt
        .modules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
    {
        lib.fill_with(module);
    }
    let ast = Arc::new(AST::new_from_module(lib));
    rt.set_ast(ast.clone());
    Ok(Loaded {
        engine,
        rt,
        ast,
        stage_files: stage_files(file),
    })
}

/// Turns a script error into the user-facing error: a failure (exit 1, 2 or 3 by its kind),
/// an interrupt (130) or a recipe error (4) with file:line:col.
fn classify(rt: &Runtime, err: &EvalAltResult) -> Error {
    classify_in(rt, err, &rt.file.display().to_string())
}

/// [`classify`] for an error of the script `main` (the recipe, or a stage file).
fn classify_in(rt: &Runtime, err: &EvalAltResult, main: &str) -> Error {
    if rt.interrupted() {
        return Error::interrupted();
    }
    match failure_of(err) {
        Some(mut f) => {
            if f.at.is_none() {
                f.at = diagnostics::innermost(err, main).1.map(|l| l.to_string());
            }
            Error::Failed(Box::new(f))
        }
        None => Error::Recipe(diagnostics::eval_error(err, main, &rt.sources)),
    }
}

impl Loaded {
    /// The run's ssh config, read once: `-F` (or `TETHER_SSH_CONFIG`), else the recipe's
    /// `ssh_config` variable (a path relative to the recipe, set at its top level or by the
    /// selected stage), else `~/.ssh/config` and the system's, as `ssh` reads them.
    pub fn ssh_config(&self) -> Result<SshConfig, Error> {
        if let Some(c) = self.rt.ssh_config() {
            return Ok(c.clone());
        }
        let file = match &self.rt.ssh_config_file {
            Some(f) => Some(f.clone()),
            None => {
                let value = self.rt.recipe().vars.get("ssh_config").cloned();
                match value {
                    None => None,
                    Some(v) => {
                        let text = v.into_immutable_string().map_err(|t| {
                            Error::Recipe(format!(
                                "set(\"ssh_config\", ...): a path to an ssh config file, not {t}"
                            ))
                        })?;
                        let path = PathBuf::from(text.as_str());
                        Some(if path.is_absolute() {
                            path
                        } else {
                            self.rt.dir().join(path)
                        })
                    }
                }
            }
        };
        let config = fleet::load_ssh_config_file(file.as_deref())?;
        self.rt.set_ssh_config(config.clone());
        Ok(config)
    }

    /// The recipe variable `key` as `fetch(key)` gives it (a lazy value evaluated), `None`
    /// when it is not set. Errors: [`Error::Recipe`] when evaluating it fails or it is not a
    /// string.
    pub fn fetch_string(&self, key: &str) -> Result<Option<String>, Error> {
        if !self.rt.recipe().vars.contains_key(key) {
            return Ok(None);
        }
        let script = format!("fetch({key:?})");
        let ast = self
            .engine
            .compile(&script)
            .map_err(|e| Error::Recipe(format!("fetch(\"{key}\"): {e}")))?;
        let ast = self.ast.merge(&ast);
        let value = self
            .engine
            .eval_ast::<Dynamic>(&ast)
            .map_err(|e| classify(&self.rt, &e))?;
        match value.into_immutable_string() {
            Ok(s) => Ok(Some(s.to_string())),
            Err(t) => Err(Error::Recipe(format!(
                "set(\"{key}\", ...): a string, not {t}"
            ))),
        }
    }

    /// Names of the stages: declared with `stage()`, then those only a stage file declares.
    pub fn stages(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .rt
            .recipe()
            .stages
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        for (name, _) in &self.stage_files {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Runs the stage's closure (it usually declares servers and variables), with the
    /// variable `stage` set to `name` (as Capistrano's `fetch(:stage)`), also inside it.
    pub fn select_stage(&self, name: &str) -> Result<(), Error> {
        let stage = self
            .rt
            .recipe()
            .stages
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f.clone());
        let file = self
            .stage_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone());
        if stage.is_none() && file.is_none() {
            let stages = self.stages();
            return Err(Error::Usage(format!(
                "unknown stage `{name}`{}",
                suggest(name, stages.iter().map(String::as_str))
            )));
        };
        {
            // `fetch("stage")` is the selected stage, in its closure and after: the stage that
            // runs wins over a `-s stage=..` that would name another one.
            let mut recipe = self.rt.recipe();
            recipe.vars.insert("stage".into(), name.into());
            recipe.locked.insert("stage".into());
        }
        if let Some(f) = stage {
            // A stage declares; the closure's value is not used.
            f.call::<Dynamic>(&self.engine, &self.ast, ())
                .map(drop)
                .map_err(|e| classify(&self.rt, &e))?;
        }
        match file {
            Some(path) => self.run_stage_file(&path),
            None => Ok(()),
        }
    }

    /// Evaluates a stage file after the stage's `stage()` closure, with the recipe's
    /// functions in reach; its errors name the stage file's line and column.
    fn run_stage_file(&self, path: &Path) -> Result<(), Error> {
        let name = path.display().to_string();
        let text = crate::recipe::sources::read(path)
            .map_err(|e| Error::Usage(format!("cannot read stage file {name}: {e}")))?;
        self.rt.sources.insert(&name, &text);
        let mut ast = self
            .engine
            .compile(crate::recipe::syntax::prepare_source(&text))
            .map_err(|e| Error::Recipe(diagnostics::parse_error(&e, &name, &self.rt.sources)))?;
        ast.set_source(name.as_str());
        let ast = self.ast.merge(&ast);
        self.engine
            .eval_ast::<Dynamic>(&ast)
            .map(|_| ())
            .map_err(|e| classify_in(&self.rt, &e, &name))
    }

    /// Checks that every `before`/`after` names tasks that exist (a recipe error, exit 4).
    pub fn validate_hooks(&self) -> Result<(), Error> {
        let recipe = self.rt.recipe();
        for (kind, hooks) in [("before", &recipe.before), ("after", &recipe.after)] {
            let mut names: Vec<&String> = hooks.keys().collect();
            names.sort();
            for task in names {
                if !recipe.tasks.contains_key(task) && task != "deploy:failed" {
                    return Err(Error::Recipe(format!(
                        "{kind}(\"{task}\", ...): {}",
                        recipe.unknown_task(task)
                    )));
                }
                for hook in &hooks[task] {
                    if let Hook::Task(other) = hook {
                        if !recipe.tasks.contains_key(other) {
                            return Err(Error::Recipe(format!(
                                "{kind}(\"{task}\", \"{other}\"): {}",
                                recipe.unknown_task(other)
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks, before anything connects, that the tasks and filters of the command line
    /// (usage errors, exit 2) and the recipe's hook targets (recipe errors, exit 4) exist.
    pub fn validate(&self, tasks: &[String]) -> Result<(), Error> {
        self.validate_hooks()?;
        let recipe = self.rt.recipe();
        for t in tasks {
            if !recipe.tasks.contains_key(t) {
                return Err(Error::Usage(recipe.unknown_task(t)));
            }
        }
        let roles = recipe.role_names();
        for r in &self.rt.filters.roles {
            if !roles.contains(r) {
                return Err(Error::Usage(format!(
                    "--roles: unknown role `{r}`{}",
                    suggest(r, roles.iter().map(String::as_str))
                )));
            }
        }
        for h in &self.rt.filters.hosts {
            if recipe.server(h).is_none() {
                return Err(Error::Usage(format!(
                    "--hosts: `{h}` is not a server of this recipe{}",
                    suggest(h, recipe.servers.iter().map(|s| s.name.as_str()))
                )));
            }
        }
        Ok(())
    }

    /// The recipe's servers narrowed by `--roles`/`--hosts`/`--shard`.
    pub fn selected_hosts(&self) -> Result<Vec<HostTarget>, Error> {
        let recipe = self.rt.recipe();
        recipe
            .servers
            .iter()
            .filter(|s| self.rt.filters.admits(&s.name, &s.roles))
            .map(|s| s.target().map_err(Error::Recipe))
            .collect()
    }

    /// The `keepalive` variable, in seconds or as a duration string.
    pub fn keepalive(&self) -> Result<Option<Duration>, Error> {
        let value = self.rt.recipe().vars.get("keepalive").cloned();
        let Some(v) = value else { return Ok(None) };
        let seconds = v.as_int().map(|i| i as f64).or_else(|_| v.as_float());
        match seconds {
            Ok(s) if s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            _ => crate::duration::parse_positive(&v.to_string())
                .map(Some)
                .map_err(|e| Error::Recipe(format!("set(\"keepalive\", ...): {e}"))),
        }
    }

    /// Sends `log` where [`Loaded::log_file`] says, or turns it off; a file that cannot be
    /// opened is a warning and the run goes on without it.
    ///
    /// Errors: as [`Loaded::log_file`].
    pub fn open_log(&self, log: &RunLog) -> Result<(), Error> {
        match self.log_file()? {
            Some(path) => {
                if let Err(message) = log.open(&path) {
                    self.rt.report(EventKind::Warning { message });
                }
            }
            None => log.off(),
        }
        Ok(())
    }

    /// Where this run's log goes (see [`RunLog`]): the recipe's `log_file` variable (a path
    /// relative to the recipe), else `log/tether.log` beside the recipe; `None` when the
    /// variable is `""`. Read after the stage ran, so a stage may set it.
    ///
    /// Errors: [`Error::Recipe`] when `log_file` is not a string.
    pub fn log_file(&self) -> Result<Option<PathBuf>, Error> {
        let value = self.rt.recipe().vars.get("log_file").cloned();
        let path = match value {
            None => PathBuf::from("log/tether.log"),
            Some(v) => {
                let text = v.into_immutable_string().map_err(|t| {
                    Error::Recipe(format!(
                        "set(\"log_file\", ...): a path for the run log (\"\" for none), not {t}"
                    ))
                })?;
                if text.is_empty() {
                    return Ok(None);
                }
                PathBuf::from(text.as_str())
            }
        };
        Ok(Some(if path.is_absolute() {
            path
        } else {
            self.rt.dir().join(path)
        }))
    }

    /// Runs `tasks` in order; on failure runs the failure hooks and returns the error.
    pub fn run_tasks(&self, tasks: &[String], backend: Arc<dyn Backend>) -> Result<(), Error> {
        self.run_tasks_with(tasks, backend, true)
    }

    /// Like [`Loaded::run_tasks`], but a cancelled run ([`Error::Interrupted`]) skips the
    /// failure hooks: in watch mode a cancel means a newer version runs next (or the user
    /// left), and no further command of this run may be dispatched.
    pub fn run_tasks_cancellable(
        &self,
        tasks: &[String],
        backend: Arc<dyn Backend>,
    ) -> Result<(), Error> {
        self.run_tasks_with(tasks, backend, false)
    }

    fn run_tasks_with(
        &self,
        tasks: &[String],
        backend: Arc<dyn Backend>,
        hooks_after_interrupt: bool,
    ) -> Result<(), Error> {
        self.rt.set_backend(backend);
        for t in tasks {
            if let Err(e) = invoke(&self.engine, &self.rt, t) {
                let error = classify(&self.rt, &e);
                if hooks_after_interrupt || !error.is_interrupted() {
                    self.run_failure_hooks(&error);
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
        for f in hooks {
            if let Err(e) = f.call::<Dynamic>(&self.engine, &self.ast, (message.clone(),)) {
                let text = diagnostics::eval_error(&e, &main, &self.rt.sources);
                eprintln!(
                    "warning: failure hook failed: {}",
                    crate::secret::mask(&text)
                );
            }
        }
        if has_failed_task {
            if let Err(e) = invoke(&self.engine, &self.rt, "deploy:failed") {
                let text = diagnostics::eval_error(&e, &main, &self.rt.sources);
                eprintln!(
                    "warning: deploy:failed failed: {}",
                    crate::secret::mask(&text)
                );
            }
        }
        self.rt.report(EventKind::TaskFinished {
            task: "failure hooks".into(),
            ok: true,
        });
    }
}

/// Options shared by every command that loads a recipe.
pub fn load_options(
    settings: &Settings,
    interrupted: Arc<AtomicBool>,
    sink: Sink,
) -> Result<LoadOptions, Error> {
    Ok(LoadOptions {
        filters: Filters {
            roles: settings.roles.clone(),
            hosts: settings.hosts.clone(),
            shard: settings.shard,
        },
        ssh_config: settings.ssh_config.clone(),
        parallel: settings.parallel,
        overrides: settings.overrides.clone(),
        interrupted,
        sources: None,
        sink,
    })
}

/// Splits `[STAGE] TASK...` and selects the stage.
pub fn split_stage(loaded: &Loaded, targets: &[String]) -> Result<Vec<String>, Error> {
    let stages = loaded.stages();
    let mut tasks = targets.to_vec();
    if let Some(first) = targets.first() {
        if stages.contains(first) {
            loaded.select_stage(first)?;
            tasks.remove(0);
        } else if !loaded.rt.recipe().tasks.contains_key(first) && !stages.is_empty() {
            let recipe = loaded.rt.recipe();
            let known = stages
                .iter()
                .map(String::as_str)
                .chain(recipe.tasks.keys().map(String::as_str));
            return Err(Error::Usage(format!(
                "`{first}` is neither a stage nor a task{}",
                suggest(first, known)
            )));
        }
    }
    Ok(tasks)
}

/// Hosts chosen on the command line for `run`, `check` and `hosts`, the recipe's heartbeat
/// and the ssh config that reaches them.
pub struct Selection {
    /// The hosts.
    pub hosts: Vec<HostTarget>,
    /// The recipe's `keepalive` variable, if a recipe was read.
    pub keepalive: Option<Duration>,
    /// The ssh config (see [`Loaded::ssh_config`]).
    pub ssh_config: SshConfig,
    /// The recipe file, if one was read.
    pub recipe: Option<PathBuf>,
}

/// `--hosts` as given when no recipe is involved; otherwise the recipe's servers (of
/// `stage`, if given) narrowed by `--roles` and `--hosts`.
pub fn select(
    settings: &Settings,
    stage: Option<&str>,
    interrupted: Arc<AtomicBool>,
    sink: Sink,
) -> Result<Selection, Error> {
    let recipe = &settings.recipe;
    // A recipe present is read even when --hosts names the hosts: its `ssh_config`, its
    // servers' users and ports and its `keepalive` apply to them, so that a host is reached
    // the same way whichever way it is selected.
    let use_recipe = !settings.roles.is_empty() || stage.is_some() || recipe.exists();
    if !use_recipe {
        if settings.hosts.is_empty() {
            return Err(Error::Usage(
                "no hosts selected: name them with --hosts h1,h2 (ssh config aliases or \
                 user@host:port), or --roles with a recipe"
                    .into(),
            ));
        }
        let hosts = settings
            .hosts
            .iter()
            .filter(|h| settings.shard.is_none_or(|s| s.contains(h)))
            .map(|h| HostTarget::parse(h).map_err(Error::Usage))
            .collect::<Result<_, _>>()?;
        return Ok(Selection {
            hosts,
            keepalive: None,
            ssh_config: fleet::load_ssh_config(settings)?,
            recipe: None,
        });
    }
    let loaded = load(recipe, load_options(settings, interrupted, sink)?)?;
    if let Some(stage) = stage {
        loaded.select_stage(stage)?;
    }
    let hosts = if settings.roles.is_empty() && !settings.hosts.is_empty() {
        // Hosts named outside the recipe are reached as `ssh` would reach them.
        loaded.validate_hooks()?;
        let recipe = loaded.rt.recipe();
        settings
            .hosts
            .iter()
            .filter(|h| settings.shard.is_none_or(|s| s.contains(h)))
            .map(|h| match recipe.server(h) {
                Some(server) => server.target().map_err(Error::Recipe),
                None => HostTarget::parse(h).map_err(Error::Usage),
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        loaded.validate(&[])?;
        loaded.selected_hosts()?
    };
    if hosts.is_empty() {
        return Err(Error::Usage(
            "no server of the recipe matches --roles/--hosts".into(),
        ));
    }
    Ok(Selection {
        hosts,
        keepalive: loaded.keepalive()?,
        ssh_config: loaded.ssh_config()?,
        recipe: Some(recipe.clone()),
    })
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
    let reporter = Reporter::tapped(settings, taps);
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
    let loaded = load(
        &settings.recipe,
        load_options(settings, interrupted.clone(), reporter.sink())?,
    )?;
    let tasks = split_stage(&loaded, targets)?;
    if let Some(log) = log {
        loaded.open_log(log)?;
    }
    if tasks.is_empty() {
        return Err(Error::Usage(
            "no task given: `tether [STAGE] TASK...`; `tether tasks` lists them".into(),
        ));
    }
    loaded.validate(&tasks)?;
    let ssh_config = loaded.ssh_config()?;
    if settings.dry_run {
        let refused = fleet::config_refusals(
            &ssh_config,
            &loaded.selected_hosts()?,
            settings.jump.as_deref(),
            &reporter.sink(),
        );
        loaded.run_tasks(&tasks, Arc::new(DryRun::new(reporter.sink())))?;
        return refused.map_or(Ok(()), |f| Err(f.into()));
    }
    let heartbeat = fleet::heartbeat_interval(settings, loaded.keepalive()?);
    let fleet = Arc::new(Fleet::new(
        settings,
        ssh_config,
        heartbeat,
        interrupted,
        reporter.sink(),
    )?);
    let backend = Remote::new(fleet.clone())
        .with_pty(settings.pty)
        .with_hosts(loaded.selected_hosts()?);
    loaded.rt.report(EventKind::RunStarted {
        recipe: Some(settings.recipe.display().to_string()),
        stage: (targets.len() > tasks.len()).then(|| targets[0].clone()),
        tasks: tasks.clone(),
        command: None,
        start_unix_ms: unix_ms(SystemTime::now()),
    });
    let result = loaded.run_tasks(&tasks, Arc::new(backend));
    reporter.run_finished(
        &format!(
            "{} {}",
            tasks.join(" "),
            if result.is_ok() { "finished" } else { "failed" }
        ),
        &result,
        started.elapsed(),
    );
    result
}

/// One task as `tether tasks --format json` prints it.
#[derive(serde::Serialize)]
struct TaskEntry<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    description: &'a str,
    before: Vec<String>,
    after: Vec<String>,
    /// Whether the task applies to the recipe (see [`applies`]); text output hides those that
    /// do not unless `--all`.
    applies: bool,
}

/// The stdlib's strategy namespaces: `deploy` makes a release with one of them, the one the
/// `strategy` variable names; the other's tasks do not apply to the recipe.
const STRATEGIES: &[&str] = &["git", "copy"];

/// Whether `task` applies to a recipe whose `strategy` variable is `strategy` (`None`: not a
/// plain string, so nothing is judged): every task but a stdlib one (all its bodies defined in
/// `stdlib/...`) of a strategy namespace (`git:*`, `copy:*`) other than `strategy`. A task of
/// the recipe's own in those namespaces always applies.
fn applies(task: &Task, strategy: Option<&str>) -> bool {
    let Some(strategy) = strategy else {
        return true;
    };
    let from_stdlib = !task.bodies.is_empty()
        && task.bodies.iter().all(|b| {
            b.at.as_ref()
                .is_some_and(|(src, _)| src.starts_with("stdlib/"))
        });
    let namespace = task.name.split(':').next().unwrap_or_default();
    !(from_stdlib && STRATEGIES.contains(&namespace) && namespace != strategy)
}

/// What `tether tasks` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions {
    /// Under each task, what runs before and after it (`--hooks`).
    pub hooks: bool,
    /// Tasks without a description too (`--all`); text output hides them otherwise, as Rake's
    /// `-T` does, and says how many it hid. JSON lists every task.
    pub all: bool,
    /// Only the names, one a line: the stages, then every task that applies to the recipe
    /// (described or not); what the completion scripts read.
    pub names: bool,
}

/// `tether tasks`: the recipe's tasks (with their hooks) and stages, as text or JSON lines.
pub fn list(
    settings: &Settings,
    options: &ListOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let hooks = options.hooks;
    let reporter = Reporter::start(settings);
    // Completion scripts read `--names` line by line: what the recipe prints (`print`,
    // warnings) must not become a name, so those events go nowhere.
    let sink = if options.names {
        crate::event::channel().0
    } else {
        reporter.sink()
    };
    let loaded = load(&settings.recipe, load_options(settings, interrupted, sink)?)?;
    loaded.validate_hooks()?;
    reporter.barrier();
    let stages = loaded.stages();
    let recipe = loaded.rt.recipe();
    let hook_names = |map: &std::collections::HashMap<String, Vec<Hook>>, task: &str| {
        map.get(task)
            .into_iter()
            .flatten()
            .map(|hook| match hook {
                Hook::Task(t) => t.clone(),
                Hook::Closure(_) => "(closure)".into(),
            })
            .collect::<Vec<_>>()
    };
    let strategy = recipe.vars.get("strategy").and_then(|v| {
        v.read_lock::<rhai::ImmutableString>()
            .map(|s| s.to_string())
    });
    if options.names {
        for name in &stages {
            crate::outln!("{name}");
        }
        for task in recipe.tasks.values() {
            if applies(task, strategy.as_deref()) {
                crate::outln!("{}", task.name);
            }
        }
        return Ok(());
    }
    if settings.format == Format::Json {
        for task in recipe.tasks.values() {
            let entry = TaskEntry {
                kind: "task",
                name: &task.name,
                description: &task.description,
                before: hook_names(&recipe.before, &task.name),
                after: hook_names(&recipe.after, &task.name),
                applies: applies(task, strategy.as_deref()),
            };
            crate::outln!("{}", serde_json::to_string(&entry).unwrap_or_default());
        }
        for name in &stages {
            crate::outln!("{}", serde_json::json!({ "type": "stage", "name": name }));
        }
        return Ok(());
    }
    let described = |t: &&Task| options.all || !t.description.is_empty();
    let applicable = |t: &&Task| options.all || applies(t, strategy.as_deref());
    let shown: Vec<_> = recipe
        .tasks
        .values()
        .filter(|t| described(t) && applicable(t))
        .collect();
    let undescribed = recipe.tasks.values().filter(|t| !described(t)).count();
    let inapplicable = recipe
        .tasks
        .values()
        .filter(|t| described(t) && !applicable(t))
        .count();
    let width = shown
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0);
    for task in &shown {
        crate::outln!("{:width$}  {}", task.name, task.description);
        if !hooks {
            continue;
        }
        for (kind, map) in [("before", &recipe.before), ("after", &recipe.after)] {
            for what in hook_names(map, &task.name) {
                crate::outln!("{:width$}    {kind}: {what}", "");
            }
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut hidden = Vec::new();
    if undescribed > 0 {
        hidden.push(format!(
            "{undescribed} task{} without a description",
            plural(undescribed)
        ));
    }
    if inapplicable > 0 {
        hidden.push(format!(
            "{inapplicable} stdlib task{} of another strategy than {:?}",
            plural(inapplicable),
            strategy.as_deref().unwrap_or_default()
        ));
    }
    if !hidden.is_empty() {
        crate::outln!("\n({} not shown: tether tasks --all)", hidden.join(" and "));
    }
    if !stages.is_empty() {
        crate::outln!("\nstages: {}", stages.join(", "));
    }
    Ok(())
}
