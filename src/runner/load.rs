//! Loading a recipe: the file compiled and evaluated (its top level declares servers, tasks,
//! hooks), its stages (declared with `stage()` or as `deploy/STAGE.rhai` files; one is
//! selected in `stages.rs`) and the checks and variables the commands read before anything
//! connects.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, Module, Scope, AST};

use crate::error::Error;
use crate::event::EventKind;
use crate::fleet;
use crate::host::HostTarget;
use crate::recipe::context::{Filters, Runtime};
use crate::recipe::diagnostics;
use crate::recipe::engine;
use crate::recipe::failures::failure_of;
use crate::recipe::model::{suggest, suggest_as};
use crate::recipe::runtime_vars;
use crate::recipe::sources::Sources;
use crate::recipe::tasks::circular;
use crate::report::RunLog;
use crate::settings::Settings;
use crate::sink::Sink;
use crate::ssh::config::SshConfig;

/// What a recipe load needs besides the file.
pub struct LoadOptions {
    /// `--roles`/`--hosts`.
    pub filters: Filters,
    /// `-F` / `TETHER_SSH_CONFIG`: an ssh config file that wins over the recipe's.
    pub ssh_config: Option<PathBuf>,
    /// `--parallel`.
    pub parallel: Option<usize>,
    /// Whether `host_set` writes host sets folded (text output without `--no-fold`).
    pub fold: bool,
    /// `-s key=value`.
    pub overrides: Vec<(String, String)>,
    /// Variables the environment gives (`ROLLBACK_RELEASE`).
    pub env_overrides: Vec<crate::settings::EnvOverride>,
    /// Ctrl-C / cancel flag.
    pub interrupted: Arc<AtomicBool>,
    /// Where the texts of the recipe and its modules are recorded (watch mode passes its own,
    /// to learn what to watch even when the load fails); `None`: a fresh one.
    pub sources: Option<Arc<Sources>>,
    /// Where the run reports.
    pub sink: Sink,
    /// See `Runtime::invocation`.
    pub invocation: Vec<String>,
    /// See `Runtime::selection`.
    pub selection: Vec<String>,
    /// See `Runtime::own_files`.
    pub own_files: Vec<(PathBuf, String)>,
}

/// A compiled and evaluated recipe, ready to run tasks.
pub struct Loaded {
    /// The engine (with this run's module cache).
    pub engine: Arc<Engine>,
    /// Shared state.
    pub rt: Arc<Runtime>,
    /// The recipe's functions and every imported module's: closures are called against it.
    pub(super) ast: Arc<AST>,
    /// Stage files: `deploy/STAGE.rhai` beside the recipe (Capistrano's
    /// `config/deploy/STAGE.rb`), by stage name, sorted.
    pub(super) stage_files: Vec<(String, PathBuf)>,
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
    runtime.invocation = opts.invocation;
    runtime.selection = opts.selection;
    runtime.fold = opts.fold;
    runtime.own_files = opts.own_files;
    let rt = Arc::new(runtime);
    let name = file.display().to_string();
    rt.sources.insert(&name, &text);
    {
        let mut recipe = rt.recipe();
        for (k, v) in &opts.overrides {
            let value = crate::recipe::given::given_value(k, v).map_err(Error::Usage)?;
            recipe.vars.insert(k.clone(), value);
            recipe.locked.insert(k.clone());
            recipe.origins.insert(k.clone(), format!("-s {k}={v}"));
        }
        for e in &opts.env_overrides {
            let value = crate::recipe::given::given_value(e.key, &e.value).map_err(Error::Usage)?;
            recipe.vars.insert(e.key.to_string(), value);
            recipe.locked.insert(e.key.to_string());
            recipe.origins.insert(e.key.to_string(), e.origin());
        }
    }
    let engine = Arc::new(engine::build(rt.clone()));
    let mut ast = engine
        .compile(crate::recipe::syntax::prepare_source(&text))
        .map_err(|e| Error::Recipe(diagnostics::parse_error(&e, &name, &rt.sources)))?;
    ast.set_source(name.as_str());
    rt.sources
        .record_functions(&name, ast.iter_functions().map(|f| f.name));
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
    let stage_files = stage_files(file);
    if let Some((name, path)) = stage_files
        .iter()
        .find(|(name, _)| crate::settings::SUBCOMMANDS.contains(&name.as_str()))
    {
        return Err(Error::Recipe(format!(
            "{}: {}",
            path.display(),
            crate::recipe::names::named_like_a_subcommand("stage", name)
        )));
    }
    Ok(Loaded {
        engine,
        rt,
        ast,
        stage_files,
    })
}

/// Turns a script error into the user-facing error: a failure (exit 1, 2 or 3 by its kind),
/// an interrupt (130) or a recipe error (4) with file:line:col.
pub(super) fn classify(rt: &Runtime, err: &EvalAltResult) -> Error {
    classify_in(rt, err, &rt.file.display().to_string())
}

/// [`classify`] for an error of the script `main` (the recipe, or a stage file).
pub(super) fn classify_in(rt: &Runtime, err: &EvalAltResult, main: &str) -> Error {
    let interrupted = rt.interrupted();
    match failure_of(err) {
        None if interrupted => Error::interrupted(),
        None => Error::Recipe(diagnostics::eval_error(err, main, &rt.sources)),
        Some(f) => {
            // The interrupt decides the exit code; the hosts that had failed on their own are
            // named all the same (`interrupted; 2 of 4 hosts failed`). A bare interrupt has no
            // place of its own.
            let mut f = if interrupted { f.under_interrupt() } else { f };
            if f.at.is_none() && !(interrupted && f.host_names().is_empty()) {
                f.at = diagnostics::innermost(err, main, &rt.sources)
                    .1
                    .map(|l| l.to_string());
            }
            Error::Failed(Box::new(f))
        }
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
        let recipe_file = || -> Result<Option<PathBuf>, Error> {
            let Some(v) = self.rt.recipe().vars.get("ssh_config").cloned() else {
                return Ok(None);
            };
            let text = runtime_vars::path(&v, runtime_vars::SSH_CONFIG)
                .map_err(|why| Error::Recipe(format!("ssh_config: {why}")))?;
            let path = PathBuf::from(text.as_str());
            // `none`: no config file at all, as `ssh -F none` (not ./none).
            let dir = self.rt.dir();
            // Beside a recipe in the current directory: named as given, not `./../cfg`.
            let here = dir.as_os_str().is_empty() || dir == Path::new(".");
            Ok(Some(
                if path.is_absolute() || text.eq_ignore_ascii_case("none") || here {
                    path
                } else {
                    dir.join(path)
                },
            ))
        };
        let file = match &self.rt.ssh_config_file {
            Some(f) => {
                // The recipe's file is not read: said, as a `TETHER_SSH_CONFIG` left in the
                // environment (by `scripts/lab up`, a CI job) takes its place without a word
                // otherwise (stop 49 tester t70, stop 50 tester t72: runs went to another
                // lab's hosts).
                if let Ok(Some(own)) = recipe_file() {
                    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
                        (Ok(a), Ok(b)) => a == b,
                        _ => a == b,
                    };
                    if !same(&own, f) {
                        let at = self
                            .rt
                            .recipe()
                            .origins
                            .get("ssh_config")
                            .map(|at| format!(", set at {at}"))
                            .unwrap_or_default();
                        self.rt.report(EventKind::Warning {
                            message: format!(
                                "the ssh config read is {} (-F, or TETHER_SSH_CONFIG in the \
                                 environment), not the recipe's ssh_config {}{at}",
                                crate::command::quote(&f.to_string_lossy()),
                                crate::command::quote(&own.to_string_lossy()),
                            ),
                        });
                    }
                }
                Some(f.clone())
            }
            None => recipe_file()?,
        };
        let config = fleet::load_ssh_config_file(file.as_deref()).map_err(|e| {
            // A file the recipe named: say where it did.
            match (
                &self.rt.ssh_config_file,
                self.rt.recipe().origins.get("ssh_config"),
            ) {
                (None, Some(at)) => Error::Usage(format!("{e} (ssh_config, set at {at})")),
                _ => Error::from(e),
            }
        })?;
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
        let ast = self.library().merge(&ast);
        let value = self
            .engine
            .eval_ast::<Dynamic>(&ast)
            .map_err(|e| classify(&self.rt, &e))?;
        match value.into_immutable_string() {
            Ok(s) => Ok(Some(s.to_string())),
            Err(t) => Err(Error::Recipe(format!(
                "{key}{}: a string, not {t}",
                self.set_at(key)
            ))),
        }
    }

    /// ` (set at FILE:LINE:COL)` (or `-s KEY=VALUE`) for the variable `key`, where that is
    /// known; empty otherwise.
    pub fn set_at(&self, key: &str) -> String {
        self.rt
            .recipe()
            .origins
            .get(key)
            .map_or_else(String::new, |at| format!(" (set at {at})"))
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

    /// The library closures are called against: the recipe's and its modules' functions, and
    /// a stage file's once it ran (see [`Runtime::set_ast`]).
    pub(super) fn library(&self) -> Arc<AST> {
        self.rt.ast().unwrap_or_else(|| self.ast.clone())
    }

    /// Checks that every `before`/`after` names tasks that exist: a recipe error (exit 4) that
    /// names every call naming an unknown task, each at its `file:line:col`, in the order they
    /// were declared.
    pub fn validate_hooks(&self) -> Result<(), Error> {
        let recipe = self.rt.recipe();
        let problems: Vec<String> = recipe
            .hook_sites
            .iter()
            .filter_map(|site| {
                let message = recipe.hook_target_problem(site)?;
                Some(diagnostics::render(
                    &message,
                    site.location().as_ref(),
                    &[],
                    &self.rt.sources,
                ))
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Recipe(problems.join("\nerror: ")))
    }

    /// Checks, before anything connects, that the tasks and filters of the command line
    /// (usage errors, exit 2) and the recipe's hook targets (recipe errors, exit 4) exist, and
    /// that the hooks of those tasks make no circle (a recipe error).
    /// A task that is none of the recipe's, nor close to one, but close to one of
    /// `subcommands` (the command line's) says so (`tether chek`: stop 50 tester t71).
    pub fn validate(&self, tasks: &[String], subcommands: &[String]) -> Result<(), Error> {
        self.validate_hooks()?;
        let stages = self.stages();
        let recipe = self.rt.recipe();
        for t in tasks {
            if !recipe.tasks.contains_key(t) {
                if stages.contains(t) {
                    let selected = recipe.vars.get("stage").map(ToString::to_string);
                    return Err(stage_after_task(t, selected.as_deref()));
                }
                let mut said = recipe.unknown_task(t);
                let tasks = recipe.tasks.keys().map(String::as_str);
                if !t.contains('=') && suggest(t, tasks).is_empty() {
                    let names = subcommands.iter().map(String::as_str);
                    said.push_str(&suggest_as(t, names, "tether "));
                }
                return Err(Error::Usage(said));
            }
        }
        // Refused before any task runs, where a run met it once the tasks before it had run
        // (stop 47 tester: an after hook's circle ran both tasks' commands first).
        // The failure path's task too: any run may need it (stop 48 tester t68: a circle of
        // deploy:failed's hooks was met on the failure path, deploy:failed not run, the
        // deploy's lock kept).
        let mut roots = tasks.to_vec();
        if recipe.tasks.contains_key("deploy:failed") {
            roots.push("deploy:failed".to_string());
        }
        if let Some(circle) = recipe.hook_circle(&roots) {
            return Err(Error::Recipe(format!(
                "{}; nothing was run",
                circular(&recipe, &circle, false)
            )));
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
            if recipe.server_for_filter(h).map_err(Error::Usage)?.is_none() {
                // Named as `--hosts` reads them: `"x[1]"`, not `x[1]`, which is `x1` there
                // (stop 52 tester t80: "did you mean `x[1]`?", which failed the same way).
                return Err(Error::Usage(format!(
                    "--hosts: `{h}` is not a server of this recipe{}",
                    crate::recipe::model::suggest_shown(
                        h,
                        recipe.servers().iter().map(|s| s.name.as_str()),
                        |name| crate::hostset::selection(&[name], false)
                    )
                )));
            }
        }
        Ok(())
    }

    /// The recipe's servers narrowed by `--roles`/`--hosts`/`--shard`.
    pub fn selected_hosts(&self) -> Result<Vec<HostTarget>, Error> {
        let recipe = self.rt.recipe();
        recipe
            .servers()
            .iter()
            .filter(|s| self.rt.filters.admits(&recipe, &s.name, &s.roles))
            .map(|s| s.target().map_err(Error::Recipe))
            .collect()
    }

    /// How many servers `--roles` and `--hosts` select before `--shard` takes its part.
    pub fn selected_before_shard(&self) -> usize {
        let recipe = self.rt.recipe();
        recipe
            .servers()
            .iter()
            .filter(|s| self.rt.filters.admits_unsharded(&recipe, &s.name, &s.roles))
            .count()
    }

    /// The `keepalive` variable, in seconds or as a duration string (checked where it was set:
    /// see `recipe::runtime_vars`).
    pub fn keepalive(&self) -> Result<Option<Duration>, Error> {
        let value = self.rt.recipe().vars.get("keepalive").cloned();
        value
            .map(|v| runtime_vars::keepalive(&v))
            .transpose()
            .map_err(|why| Error::Recipe(format!("keepalive: {why}")))
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
        runtime_vars::log_file(value.as_ref(), &self.rt.dir())
            .map_err(|why| Error::Recipe(format!("log_file: {why}")))
    }
}

/// Options shared by every command that loads a recipe.
pub fn load_options(
    settings: &Settings,
    interrupted: Arc<AtomicBool>,
    sink: Sink,
) -> Result<LoadOptions, Error> {
    Ok(LoadOptions {
        filters: Filters::new(
            settings.roles.clone(),
            settings.hosts.clone(),
            settings.shard,
        ),
        ssh_config: settings.ssh_config.clone(),
        parallel: settings.parallel,
        fold: settings.fold && settings.format == crate::settings::Format::Text,
        overrides: settings.overrides.clone(),
        // Read by a run of their task only (see `run_tasks`).
        env_overrides: Vec::new(),
        interrupted,
        sources: None,
        sink,
        invocation: invocation(settings),
        selection: selection(settings),
        own_files: own_files(settings),
    })
}

/// See `Runtime::own_files`: the `--timeline` page and the idle-limit cache.
fn own_files(settings: &Settings) -> Vec<(PathBuf, String)> {
    let timeline = settings
        .timeline
        .clone()
        .map(|f| (f, "this run's --timeline page".to_string()));
    let cache = settings.limit_cache.clone().map(|f| {
        (
            f,
            "tether's cache of the idle limits it learned".to_string(),
        )
    });
    timeline.into_iter().chain(cache).collect()
}

/// See `Runtime::selection`: `--roles`, `--hosts` and `--shard` as given, each quoted for sh.
fn selection(settings: &Settings) -> Vec<String> {
    use crate::command::quote;
    let mut words = Vec::new();
    if !settings.roles.is_empty() {
        words.push(format!("--roles {}", quote(&settings.roles.join(","))));
    }
    if !settings.hosts.is_empty() {
        words.push(format!(
            "--hosts {}",
            quote(&crate::hostset::selection(&settings.hosts, settings.fold))
        ));
    }
    if let Some(shard) = settings.shard {
        words.push(format!("--shard {}/{}", shard.index, shard.count));
    }
    words
}

/// See `Runtime::invocation`: `-f` unless the recipe is the default one, then `-F`, `-J` and
/// every `-s` as given but `release_timestamp` and `release_name`, which name this run's own
/// release (a follow-up command is about another run's, or none).
fn invocation(settings: &Settings) -> Vec<String> {
    use crate::command::quote;
    let mut words = Vec::new();
    if settings.recipe != Path::new(crate::settings::DEFAULT_RECIPE) {
        words.push(format!("-f {}", quote(&settings.recipe.to_string_lossy())));
    }
    if let Some(config) = &settings.ssh_config {
        words.push(format!("-F {}", quote(&config.to_string_lossy())));
    }
    if let Some(jump) = &settings.jump {
        words.push(format!("-J {}", quote(jump)));
    }
    for (key, value) in &settings.overrides {
        if key == "release_timestamp" || key == "release_name" {
            continue;
        }
        words.push(format!("-s {}", quote(&format!("{key}={value}"))));
    }
    words
}

/// A stage named after a task, as Deployer 6 took it (`dep deploy production`; stop 44 tester
/// t54: `unknown task` alone): where it goes.
/// Words, not a whole command: a command built from the targets alone would drop the options
/// given (stop 44 tester t55: `-n t production` was told `tether production t`, a real run).
/// `selected`: the stage this run already names, if any.
pub(super) fn stage_after_task(stage: &str, selected: Option<&str>) -> Error {
    Error::Usage(match selected {
        Some(first) => format!(
            "unknown task `{stage}`: `{stage}` is a stage, and this run names the stage \
             `{first}` already: one stage a run"
        ),
        None => format!(
            "unknown task `{stage}`: `{stage}` is a stage, which comes first, before the tasks \
             (`tether [OPTIONS] {stage} TASK...`)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a follow-up command needs of this run's command line: `-f` (unless the default
    /// recipe), `-F`, `-J`, `-s` but the release's own name, each quoted for sh (fresh-eyes
    /// finding, stop 30: a hint without `-f shop.rhai` found no recipe).
    #[test]
    fn the_invocation_keeps_what_a_follow_up_command_needs() {
        let settings = Settings {
            recipe: PathBuf::from("ops/shop deploy.rhai"),
            ssh_config: Some(PathBuf::from("/etc/lab/ssh_config")),
            jump: Some("me@bastion:2222".into()),
            overrides: vec![
                ("release_timestamp".into(), "20250101000001".into()),
                ("branch".into(), "feature/x y".into()),
                ("release_name".into(), "r1".into()),
            ],
            ..Settings::default()
        };
        assert_eq!(
            invocation(&settings),
            [
                "-f 'ops/shop deploy.rhai'",
                "-F /etc/lab/ssh_config",
                "-J me@bastion:2222",
                "-s 'branch=feature/x y'",
            ]
        );
        let plain = Settings {
            recipe: PathBuf::from(crate::settings::DEFAULT_RECIPE),
            ..Settings::default()
        };
        assert!(invocation(&plain).is_empty());
        assert!(selection(&plain).is_empty());
        let selected = Settings {
            roles: vec!["app".into(), "web".into()],
            hosts: vec!["web1".into(), "deploy@web 2".into()],
            shard: Some(crate::hostset::Shard { index: 2, count: 3 }),
            ..Settings::default()
        };
        assert_eq!(
            selection(&selected),
            [
                "--roles app,web",
                // As `--hosts` reads it back: a name with a space is quoted, as folded
                // output writes it.
                "--hosts 'web1,\"deploy@web 2\"'",
                "--shard 2/3"
            ]
        );
    }
}
