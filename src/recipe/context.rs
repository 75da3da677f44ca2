//! The state shared by the recipe functions during one run: the recipe model, the backend,
//! the host filters, the command context of the current thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use rhai::{Dynamic, AST};

use super::model::Recipe;
use super::sources::Sources;
use crate::backend::Backend;
use crate::command::CommandContext;
use crate::event::EventKind;
use crate::hostset::Shard;
use crate::sink::Sink;
use crate::ssh::config::SshConfig;
pub use crate::step_abort::StepAbort;
use crate::stop::{Stop, StopReason};

/// `--roles`/`--hosts`/`--shard` from the command line: they narrow every `on`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only hosts with one of these roles.
    pub roles: Vec<String>,
    /// Only these hosts.
    pub hosts: Vec<String>,
    /// Only the hosts of this shard.
    pub shard: Option<Shard>,
    /// `hosts`, for a lookup per server: a search of them per server of each `on` grew with
    /// both (stop 67: a 1000-host dry run took 11 s, 17 s with the 1000 named by `--hosts`).
    named: HostIndex,
}

/// The `--hosts` names: each as given, and each by its host name (`deploy@web:2222` under
/// `web`) with its user and port.
#[derive(Debug, Clone, Default)]
struct HostIndex {
    given: std::collections::HashSet<String>,
    by_alias: std::collections::HashMap<String, Vec<crate::host::HostTarget>>,
}

impl Filters {
    /// The filters `--roles`, `--hosts` and `--shard` give.
    pub fn new(roles: Vec<String>, hosts: Vec<String>, shard: Option<Shard>) -> Filters {
        let mut named = HostIndex::default();
        for h in &hosts {
            named.given.insert(h.clone());
            if let Ok(target) = crate::host::HostTarget::parse(h) {
                named
                    .by_alias
                    .entry(target.alias.clone())
                    .or_default()
                    .push(target);
            }
        }
        Filters {
            roles,
            hosts,
            shard,
            named,
        }
    }

    /// Whether the server `name` of `recipe`, with `roles`, passes every filter.
    pub fn admits(&self, recipe: &Recipe, name: &str, roles: &[String]) -> bool {
        self.admits_unsharded(recipe, name, roles) && self.shard.is_none_or(|s| s.contains(name))
    }

    /// Whether the server `name` of `recipe`, with `roles`, passes `--roles` and `--hosts`
    /// (whatever its shard). A `--hosts` name selects the server of that name, else the one
    /// server of its host name (`web` the server declared `deploy@web:2222`), as Capistrano's
    /// host filter does: the one `Recipe::server_for_filter` gives, as `tether run` and
    /// `tether hosts` select (the runner refuses a name that would fit several). `db1` next to
    /// `db1:22` is db1 alone (stop 40 tester t34: a task ran on both, `run` on db1).
    pub fn admits_unsharded(&self, recipe: &Recipe, name: &str, roles: &[String]) -> bool {
        (self.hosts.is_empty() || self.names(recipe, name))
            && (self.roles.is_empty() || roles.iter().any(|r| self.roles.contains(r)))
    }

    /// Whether a `--hosts` name selects the server `name` (see [`Filters::admits_unsharded`]):
    /// as `model::filter_fits` says, by the index.
    fn names(&self, recipe: &Recipe, name: &str) -> bool {
        if self.named.given.contains(name) {
            return true;
        }
        let Ok(declared) = crate::host::HostTarget::parse(name) else {
            return false;
        };
        self.named
            .by_alias
            .get(&declared.alias)
            .is_some_and(|given| {
                given.iter().any(|g| {
                    super::model::target_fits(g, &declared) && recipe.server(&g.name).is_none()
                })
            })
    }
}

/// Shared state of one recipe run.
pub struct Runtime {
    /// The recipe file.
    pub file: PathBuf,
    /// What the recipe declared.
    recipe: Mutex<Recipe>,
    /// Sources for error messages.
    pub sources: Arc<Sources>,
    /// Modules imported so far.
    pub modules: super::stdlib::Loaded,
    /// Set when tasks start running; host-bound functions need it.
    backend: OnceLock<Arc<dyn Backend>>,
    /// Every script function of the recipe and its modules, closures included, each with
    /// the imports of the file that defined it: what closures are called against.
    ast: RwLock<Option<Arc<AST>>>,
    /// Host filters.
    pub filters: Filters,
    /// `-F` (or `TETHER_SSH_CONFIG`): the ssh config file given outside the recipe.
    pub ssh_config_file: Option<PathBuf>,
    /// The ssh config of the run, once chosen (see [`Runtime::set_ssh_config`]).
    ssh_config: OnceLock<SshConfig>,
    /// `--parallel`.
    pub parallel: Option<usize>,
    /// Whether `host_set` writes a set of hosts folded (`web[01-03]`), as text output folds
    /// (not under `--no-fold` or `--format json`, which list every host: `web01, web02`).
    pub fold: bool,
    /// Ctrl-C (or a watch-mode cancel).
    pub interrupted: Arc<AtomicBool>,
    /// Where the run reports (task headers, `print`, announced commands).
    pub sink: Sink,
    /// The tasks that ran, each with the task of the command line it ran for.
    done: Mutex<HashMap<String, String>>,
    /// The task of the command line running now.
    top: Mutex<String>,
    /// The tasks running now, on any thread, each with how many invocations of it run (one,
    /// or more where `on` closures of several hosts invoke it at once), and the signal that
    /// one ended. Each thread's own invocation chain is [`chain`].
    running: (Mutex<HashMap<String, usize>>, std::sync::Condvar),
    /// `local_run_dir()`, once asked.
    pub run_dir: OnceLock<String>,
    /// The options of this run's command line that a follow-up command needs to reach the
    /// same hosts with the same recipe and variables (`-f`, `-F`, `-J`, `-s`), as shell words:
    /// `tether_options()`, for the commands messages tell the user to run.
    pub invocation: Vec<String>,
    /// This run's selection of hosts (`--roles`, `--hosts`, `--shard`), as shell words:
    /// `tether_selection()`, so that a command a message tells the user to run acts on this
    /// run's hosts and no others (stop 37 tester t25: a lock hint without `--shard` removed
    /// the live locks of the other shard's deploy).
    pub selection: Vec<String>,
    /// Files of this run's own, with what each is, that a download must not replace: the
    /// `--timeline` page, the idle-limit cache (stop 43 tester t51: each was, exit 0).
    pub own_files: Vec<(PathBuf, String)>,
    /// The recipe's `left_behind(key, text)` lines, said if tether exits at a second signal
    /// (see [`crate::interrupt::LeftBehind`]); dropped with the run.
    left_behind: Mutex<HashMap<String, crate::interrupt::LeftBehind>>,
    /// The failure that ended the run, once the failure hooks run (`run_failure()`).
    failure: Mutex<Option<crate::failure::Failure>>,
    /// The tasks that failed in this run, each with what it threw (the value and where), for
    /// an `invoke` of it that runs nothing (see [`Runtime::task_failed`]).
    failed_tasks: Mutex<HashMap<String, (Dynamic, rhai::Position)>>,
    /// The tasks a host's closure ran, each with that `on`'s step abort and the steps it
    /// took there, for the hosts of the same `on` that waited for it (see
    /// [`Runtime::task_steps`]).
    task_steps: Mutex<HashMap<String, (Arc<StepAbort>, usize)>>,
}

/// A task on the invocation chain (see [`Runtime::enter`]): taken off when dropped, however
/// the task ended.
pub struct ChainGuard<'a> {
    rt: &'a Runtime,
    task: String,
}

impl Drop for ChainGuard<'_> {
    fn drop(&mut self) {
        CHAIN.with(|c| c.borrow_mut().pop());
        let (running, ended) = &self.rt.running;
        let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.task) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.task);
            }
        }
        ended.notify_all();
    }
}

/// Whether a task is to run (see [`Runtime::mark_done`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    /// It has not run: it runs now.
    Run,
    /// It ran for the same task of the command line: it does not run again (Rake's rule).
    Ran,
    /// It is a task of the command line that ran before, for the earlier task named: it is
    /// done (Rake's rule), and that is said.
    RanBefore(String),
    /// It ran for another task of the command line (named): that task's use of it is not
    /// this one's (a lock taken, released, a release published), so it is refused.
    RanFor(String),
}

/// Where host-bound functions run: the host of the current `on` closure.
#[derive(Debug, Clone)]
pub struct HostScope {
    /// The host's name.
    pub host: String,
    /// Shared by the hosts of one `on`: where one of them failed.
    pub abort: Arc<StepAbort>,
    /// The units its `on` had begun when the host began (see [`StepAbort::consumed`]).
    pub offset: u64,
    /// Commands get a pseudo-terminal (`on(target, #{ pty: true }, |host| ..)`).
    pub pty: bool,
    /// Each command is given up after this long (`on(target, #{ timeout: N }, |host| ..)`);
    /// `None`: no deadline.
    pub timeout: Option<std::time::Duration>,
    /// The bound on re-attaching to a command whose connection died (`on(target, #{
    /// reattach: N }, |host| ..)`); `None`: the run's (`--reattach`).
    pub reattach: Option<std::time::Duration>,
    /// How many commands this host's closure has started (the next one's number).
    pub commands: Arc<AtomicUsize>,
    /// How many hosts the `on` runs the closure on (`download` wants `{host}` when several).
    pub hosts: usize,
    /// The first stop of this host's closure (see [`StoppedEarly`]): a closure that catches it
    /// and ends normally was stopped all the same, and is reported so (stop 46 tester t59: a
    /// host whose `sleep 6` tether killed, the stop caught, went unnamed in the failure).
    pub stopped: Arc<Mutex<Option<StoppedEarly>>>,
    /// What stops this closure's steps besides its own `on`'s abort: where the `on` is nested
    /// in another host's closure, the stop of that host's step it is, and what stops that (stop
    /// 46 tester t62: a nested `on` running when another host of the enclosing `on` failed went
    /// on to its end). Empty at the top.
    pub enclosing: Stop,
}

impl HostScope {
    /// What stops this host's step numbered `index` (from 0) while it runs: a failure of
    /// another host of its `on` (see [`StepAbort::stop_for`]), or of an enclosing one.
    pub fn stop_for(&self, index: usize) -> Stop {
        self.abort
            .stop_for(&self.host, index, self.unit())
            .or(self.enclosing.clone())
    }

    /// Waits until the host may know whether its command numbered `index` starts (see
    /// [`StepAbort::reach`]).
    pub fn reach(&self, index: usize) {
        self.abort.reach(&self.host, index);
    }

    /// The unit of its `on` the host's current command begins at (see
    /// [`StepAbort::consumed`]).
    fn unit(&self) -> u64 {
        self.offset + self.abort.consumed(&self.host)
    }

    /// Waits until the host, having started `started` commands, may know whether a local
    /// command runs (see [`StepAbort::wait_locally`]).
    pub fn wait_locally(&self, started: usize) {
        self.abort.wait_locally(&self.host, started);
    }

    /// The host whose failure refuses this host's step numbered `index` (from 0), if one
    /// does: one of its `on` that failed at an earlier step, or one whose failure aborted the
    /// enclosing step before the unit of it this step is (see `Stop::admit`; stop 47 tester
    /// t64: a nested `on` starts nothing new after the failure).
    pub fn stops(&self, index: usize) -> Option<String> {
        self.abort
            .stops(index)
            .or_else(|| match self.enclosing.admit(self.unit()) {
                Some(StopReason::StepAborted { because }) => Some(because),
                _ => None,
            })
    }

    /// Keeps `stopped` as the host's stop, unless one came before.
    pub fn note_stopped(&self, stopped: &StoppedEarly) {
        let mut first = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| stopped.clone());
    }

    /// The host's first stop, if it was stopped.
    pub fn stopped(&self) -> Option<StoppedEarly> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Thrown (as a Rhai value, `StoppedEarly`) by a host-bound call that a failure on another
/// host of the same `on` stopped; the `on` reports the host as stopped early, not failed,
/// whether or not the closure catches it. A recipe that catches it reads it as it reads a
/// `Failure` (see [`register`]).
#[derive(Debug, Clone)]
pub struct StoppedEarly {
    /// The command that was not run, or was stopped while it ran.
    pub command: String,
    /// Whether it was stopped before it started, or while it ran (and how).
    pub how: crate::outcome::StoppedHow,
    /// The host whose failure stopped it.
    pub because: String,
    /// For a nested `on` stopped while it ran ([`StoppedHow::Within`](crate::outcome::StoppedHow)):
    /// what its own hosts' stops said; else empty.
    pub within: String,
}

impl StoppedEarly {
    /// Why the host was stopped (`stopped during `sleep 6` (tether stopped it on the host): web1
    /// failed`), `because` naming the host(s) whose failure did it, and under it, indented, what
    /// a nested `on`'s hosts said.
    pub fn words(&self, because: &str) -> String {
        let mut out = crate::outcome::stopped_early_words(self.how, &self.command, because);
        if !self.within.is_empty() {
            out.push_str("\n  ");
            out.push_str(&self.within.replace('\n', "\n  "));
        }
        out
    }
}

thread_local! {
    /// The tasks this thread invokes now, outermost first (Rake's invocation chain); an `on`
    /// closure's thread starts with the chain of the thread that called `on`.
    static CHAIN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static CONTEXT: RefCell<CommandContext> = RefCell::new(CommandContext::default());
    static HOST: RefCell<Option<HostScope>> = const { RefCell::new(None) };
}

/// The command context (`within`, `with_env`, `as_user`) of this thread.
pub fn command_context() -> CommandContext {
    CONTEXT.with(|c| c.borrow().clone())
}

/// Runs `f` with `ctx` as this thread's command context, restoring the old one after.
pub fn with_command_context<T>(ctx: CommandContext, f: impl FnOnce() -> T) -> T {
    let old = CONTEXT.with(|c| c.replace(ctx));
    let result = f();
    CONTEXT.with(|c| c.replace(old));
    result
}

/// This thread's invocation chain (see [`Runtime::enter`]).
pub fn chain() -> Vec<String> {
    CHAIN.with(|c| c.borrow().clone())
}

/// Runs `f` with `chain` as this thread's invocation chain (an `on` closure's thread: the
/// chain of the thread that called `on`), restoring the old one after.
pub fn with_chain<T>(chain: Vec<String>, f: impl FnOnce() -> T) -> T {
    let old = CHAIN.with(|c| c.replace(chain));
    let result = f();
    CHAIN.with(|c| c.replace(old));
    result
}

/// The host scope of this thread.
pub fn host_scope() -> Option<HostScope> {
    HOST.with(|h| h.borrow().clone())
}

/// Runs `f` with `scope` as this thread's host scope.
pub fn with_host_scope<T>(scope: HostScope, f: impl FnOnce() -> T) -> T {
    let old = HOST.with(|h| h.replace(Some(scope)));
    let result = f();
    HOST.with(|h| h.replace(old));
    result
}

impl Runtime {
    /// A runtime for the recipe at `file`.
    pub fn new(
        file: PathBuf,
        filters: Filters,
        ssh_config_file: Option<PathBuf>,
        parallel: Option<usize>,
        interrupted: Arc<AtomicBool>,
        sink: Sink,
    ) -> Self {
        Runtime {
            file,
            recipe: Mutex::new(Recipe::default()),
            sources: Arc::new(Sources::default()),
            modules: Default::default(),
            backend: OnceLock::new(),
            ast: RwLock::new(None),
            filters,
            ssh_config_file,
            ssh_config: OnceLock::new(),
            parallel,
            fold: true,
            interrupted,
            sink,
            done: Mutex::new(HashMap::new()),
            top: Mutex::new(String::new()),
            running: (Mutex::new(HashMap::new()), std::sync::Condvar::new()),
            invocation: Vec::new(),
            selection: Vec::new(),
            own_files: Vec::new(),
            run_dir: OnceLock::new(),
            left_behind: Mutex::new(HashMap::new()),
            failure: Mutex::new(None),
            failed_tasks: Mutex::new(HashMap::new()),
            task_steps: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the failure that ended the run, for the failure hooks (`run_failure()`).
    pub fn set_failure(&self, failure: crate::failure::Failure) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
    }

    /// The failure that ended the run, once the failure hooks run; `None` before.
    pub fn failure(&self) -> Option<crate::failure::Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers `text` under `key` as what the run leaves if tether exits at a second signal
    /// (before failure hooks could clean up), replacing what `key` had; an empty `text` takes
    /// it back.
    pub fn left_behind(&self, key: &str, text: &str) {
        let mut lines = self.left_behind.lock().unwrap_or_else(|p| p.into_inner());
        if text.is_empty() {
            lines.remove(key);
        } else {
            // Replacing drops the old line's registration.
            lines.insert(
                key.to_string(),
                crate::interrupt::LeftBehind::say_as(
                    crate::interrupt::Said::Recipe,
                    text.to_string(),
                ),
            );
        }
    }

    /// The recipe model.
    pub fn recipe(&self) -> MutexGuard<'_, Recipe> {
        // Every change to the model is a single call that leaves it consistent.
        self.recipe.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs the backend; tasks can run from now on.
    pub fn set_backend(&self, backend: Arc<dyn Backend>) {
        // A second call keeps the first backend: one run, one backend.
        let _ = self.backend.set(backend);
    }

    /// The backend, if tasks are running.
    pub fn backend(&self) -> Option<Arc<dyn Backend>> {
        self.backend.get().cloned()
    }

    /// Installs the function library closures are called against: the recipe's, right after
    /// compiling it, then with a stage file's functions (its closures) added.
    pub fn set_ast(&self, ast: Arc<AST>) {
        *self.ast.write().unwrap_or_else(|p| p.into_inner()) = Some(ast);
    }

    /// The function library (see [`Runtime::set_ast`]).
    pub fn ast(&self) -> Option<Arc<AST>> {
        self.ast.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The recipe's directory: where `upload` and `run_locally` paths start.
    pub fn dir(&self) -> PathBuf {
        match self.file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// The run's ssh config, once chosen: host details (`host.hostname`, `host.port` ...).
    pub fn ssh_config(&self) -> Option<&SshConfig> {
        self.ssh_config.get()
    }

    /// Sets the run's ssh config (once; a second call keeps the first).
    pub fn set_ssh_config(&self, config: SshConfig) {
        let _ = self.ssh_config.set(config);
    }

    /// Reports `kind` (not about one host).
    pub fn report(&self, kind: EventKind) {
        self.sink.emit(&Arc::from(""), kind);
    }

    /// Reports an event of the host whose `on` closure runs on this thread (of the run
    /// outside one): a `print` there is that host's in JSON.
    pub fn report_here(&self, kind: EventKind) {
        let host = host_scope().map_or_else(String::new, |scope| scope.host);
        self.sink.emit(&Arc::from(host.as_str()), kind);
    }

    /// Sets the task of the command line that runs now (its failure hooks run under it too).
    pub fn set_top(&self, task: &str) {
        *self.top.lock().unwrap_or_else(|p| p.into_inner()) = task.to_string();
    }

    /// Whether `task` has run (or is running) in this run.
    pub fn has_run(&self, task: &str) -> bool {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(task)
    }

    /// Whether `task` runs now, on any thread (invoked and not yet ended).
    pub fn running(&self, task: &str) -> bool {
        self.running
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(task)
    }

    /// Waits until no invocation of `task` runs any more: another host's `on` closure invoked
    /// it first, and a task that ran is done for the run (Rake's rule), once it ended.
    pub fn wait_until_ended(&self, task: &str) {
        let (running, ended) = &self.running;
        let running = running.lock().unwrap_or_else(|p| p.into_inner());
        let _ended = ended
            .wait_while(running, |r| r.contains_key(task))
            .unwrap_or_else(|p| p.into_inner());
    }

    /// Keeps what `task` threw (`err`: a thrown value as it is; any other error, one of the
    /// recipe's own, as a `Failure` of kind `recipe` placed where it happened, in the file it
    /// happened in), before its invocation ends, for every `invoke` of it that runs nothing
    /// (the review of stop 46: such an error was kept as its text, which a `catch` could not
    /// read as a failure, placed in the main file at the line it had in its own).
    pub fn note_task_failed(&self, task: &str, err: &rhai::EvalAltResult) {
        let thrown = match self.recipe_failure(err) {
            Some(failure) => (Dynamic::from(failure), rhai::Position::NONE),
            None => {
                let main = self.file.display().to_string();
                match super::diagnostics::innermost(err, &main, &self.sources).0 {
                    rhai::EvalAltResult::ErrorRuntime(value, at) => (value.clone(), *at),
                    other => (Dynamic::from(other.to_string()), other.position()),
                }
            }
        };
        self.failed_tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_string(), thrown);
    }

    /// `err` as a `Failure` of kind `recipe` placed where it happened, in the file it happened
    /// in, where it is an error of the recipe's own that a `catch` takes (not a thrown value,
    /// not a runaway); None otherwise.
    pub fn recipe_failure(&self, err: &rhai::EvalAltResult) -> Option<crate::failure::Failure> {
        let main = self.file.display().to_string();
        let (leaf, at, _) = super::diagnostics::innermost(err, &main, &self.sources);
        if matches!(leaf, rhai::EvalAltResult::ErrorRuntime(..)) || !leaf.is_catchable() {
            return None;
        }
        let mut failure = crate::failure::Failure::new(
            crate::failure::Kind::Recipe,
            super::diagnostics::message(leaf),
        );
        failure.at = at.map(|l| l.to_string());
        Some(failure)
    }

    /// `task` ran in a host's closure of the `on` whose step abort is `abort`, and took
    /// `steps` of its steps.
    pub fn note_task_steps(&self, task: &str, abort: Arc<StepAbort>, steps: usize) {
        self.task_steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_string(), (abort, steps));
    }

    /// The steps `task` took in a host's closure of the `on` whose step abort is `abort`, if
    /// it ran in one: another host of that `on` that invoked it too, and waited for it, counts
    /// them as its own, so that the hosts' steps after it are numbered alike whichever ran it
    /// (stop 54 tester t85: the host that ran it counted its nested `on` a step, the one that
    /// waited did not, and which did which was a race).
    pub fn task_steps(&self, task: &str, abort: &Arc<StepAbort>) -> usize {
        let steps = self.task_steps.lock().unwrap_or_else(|p| p.into_inner());
        match steps.get(task) {
            Some((ran, n)) if Arc::ptr_eq(ran, abort) => *n,
            _ => 0,
        }
    }

    /// What `task` threw when it ran, if it failed: an `invoke` of it that runs nothing (it
    /// ran, or another host's closure runs it now) throws it again, so no caller goes on as if
    /// it had worked (stop 46 tester t59: the hosts that waited for it did).
    pub fn task_failed(&self, task: &str) -> Option<Box<rhai::EvalAltResult>> {
        let failed = self.failed_tasks.lock().unwrap_or_else(|p| p.into_inner());
        let (value, at) = failed.get(task)?;
        Some(rhai::EvalAltResult::ErrorRuntime(value.clone(), *at).into())
    }

    /// Puts `task` on the invocation chain for as long as the returned guard lives; `Err` the
    /// chain closed into a circle (`a => b => a`) when `task` is on it already: a hook or an
    /// `invoke` reached a task that is still running, which Rake refuses as a circular
    /// dependency (tether used to skip it as already run).
    pub fn enter(&self, task: &str) -> Result<ChainGuard<'_>, Vec<String>> {
        CHAIN.with(|c| {
            let mut chain = c.borrow_mut();
            if let Some(at) = chain.iter().position(|t| t == task) {
                let mut circle = chain[at..].to_vec();
                circle.push(task.to_string());
                return Err(circle);
            }
            chain.push(task.to_string());
            Ok(())
        })?;
        *self
            .running
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task.to_string())
            .or_default() += 1;
        Ok(ChainGuard {
            rt: self,
            task: task.to_string(),
        })
    }

    /// Marks `task` as run for the task of the command line running now, unless it ran
    /// already: a task runs at most once per run, as in Rake, and a task another one needs
    /// only for one task of the command line.
    pub fn mark_done(&self, task: &str) -> Once {
        let top = self.top.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        match done.get(task) {
            None => {
                done.insert(task.to_string(), top);
                Once::Run
            }
            Some(ran_for) if *ran_for == top => Once::Ran,
            // Named on the command line itself after it ran for an earlier task there
            // (`tether b a`, b running a): done, as Rake has it.
            Some(ran_for) if task == top => Once::RanBefore(ran_for.clone()),
            Some(ran_for) => Once::RanFor(ran_for.clone()),
        }
    }
}

/// Registers the [`StoppedEarly`] type as `catch` sees it, with a `Failure`'s properties:
/// `err.kind` (`"stopped_early"`), `err.hosts` (the host whose failure stopped it),
/// `err.message` (`stopped during `sleep 6` (tether stopped it on the host): web1 failed`), and
/// its text where a string is expected (stop 46 tester t59: `e.kind` on it was a recipe error,
/// exit 4, where the README's pattern reads it).
pub fn register(engine: &mut rhai::Engine) {
    let message = |s: &StoppedEarly| s.words(&s.because);
    engine
        .register_type_with_name::<StoppedEarly>("StoppedEarly")
        .register_get("kind", |_: &mut StoppedEarly| "stopped_early".to_string())
        .register_get("hosts", |s: &mut StoppedEarly| {
            vec![Dynamic::from(s.because.clone())]
        })
        .register_get("message", move |s: &mut StoppedEarly| message(s))
        .register_fn("to_string", move |s: &mut StoppedEarly| message(s))
        .register_fn("to_debug", move |s: &mut StoppedEarly| message(s))
        .register_fn("+", move |a: &str, s: StoppedEarly| {
            format!("{a}{}", message(&s))
        })
        .register_fn("+", move |s: StoppedEarly, a: &str| {
            format!("{}{a}", message(&s))
        });
}
