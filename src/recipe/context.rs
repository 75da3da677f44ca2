//! The state shared by the recipe functions during one run: the recipe model, the backend,
//! the host filters, the command context of the current thread.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rhai::AST;

use super::model::Recipe;
use super::sources::Sources;
use crate::backend::Backend;
use crate::command::CommandContext;
use crate::event::{EventKind, Sink};
use crate::hostset::Shard;
use crate::ssh::config::SshConfig;
use crate::stop::{Stop, StopReason, StopWhen};

/// `--roles`/`--hosts`/`--shard` from the command line: they narrow every `on`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only hosts with one of these roles.
    pub roles: Vec<String>,
    /// Only these hosts.
    pub hosts: Vec<String>,
    /// Only the hosts of this shard.
    pub shard: Option<Shard>,
}

impl Filters {
    /// Whether the host `name` with `roles` passes every filter.
    pub fn admits(&self, name: &str, roles: &[String]) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h == name))
            && (self.roles.is_empty() || roles.iter().any(|r| self.roles.contains(r)))
            && self.shard.is_none_or(|s| s.contains(name))
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
    ast: OnceLock<Arc<AST>>,
    /// Host filters.
    pub filters: Filters,
    /// `-F` (or `TETHER_SSH_CONFIG`): the ssh config file given outside the recipe.
    pub ssh_config_file: Option<PathBuf>,
    /// The ssh config of the run, once chosen (see [`Runtime::set_ssh_config`]).
    ssh_config: OnceLock<SshConfig>,
    /// `--parallel`.
    pub parallel: Option<usize>,
    /// Ctrl-C (or a watch-mode cancel).
    pub interrupted: Arc<AtomicBool>,
    /// Where the run reports (task headers, `print`, announced commands).
    pub sink: Sink,
    done: Mutex<HashSet<String>>,
}

/// Where host-bound functions run: the host of the current `on` closure.
#[derive(Debug, Clone)]
pub struct HostScope {
    /// The host's name.
    pub host: String,
    /// Shared by the hosts of one `on`: where one of them failed.
    pub abort: Arc<StepAbort>,
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
}

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
#[derive(Debug, Default)]
pub struct StepAbort {
    /// Every failure so far: commands started, host, when.
    failures: Mutex<Vec<(usize, String, Instant)>>,
}

/// The stop of one running command of a closure (see [`StepAbort::stop_for`]).
#[derive(Debug)]
struct StepStop {
    abort: Arc<StepAbort>,
    host: String,
    /// Its number in its host's closure, from 0.
    index: usize,
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
}

impl StepAbort {
    fn failures(&self) -> MutexGuard<'_, Vec<(usize, String, Instant)>> {
        // Each change is one push: a panicked holder leaves it consistent.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `host`'s closure failed after starting `started` commands.
    pub fn fail(&self, started: usize, host: &str) {
        self.failures()
            .push((started, host.to_string(), Instant::now()));
    }

    /// The step of the earliest failure.
    fn step(failures: &[(usize, String, Instant)]) -> Option<usize> {
        failures.iter().map(|(k, _, _)| *k).min()
    }

    /// The earliest failing step, the first host that failed there and when.
    fn earliest(failures: &[(usize, String, Instant)]) -> Option<(usize, &str, Instant)> {
        let k = Self::step(failures)?;
        failures
            .iter()
            .find(|(s, _, _)| *s == k)
            .map(|(s, h, at)| (*s, h.as_str(), *at))
    }

    /// What stops `host`'s command numbered `index` (from 0), started now, while it runs: a
    /// failure of another host at an earlier step (at once), or at its own step (after
    /// [`SAME_STEP_GRACE`]).
    pub fn stop_for(self: &Arc<Self>, host: &str, index: usize) -> Stop {
        Stop::default().or_when(Arc::new(StepStop {
            abort: self.clone(),
            host: host.to_string(),
            index,
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
            .filter(|h| failures.iter().any(|(s, f, _)| *s == k && f == *h))
            .map(String::as_str)
            .collect();
        (!names.is_empty()).then(|| names.join(", "))
    }
}

/// Thrown (as a Rhai value) by a host-bound call that a failure on another host of the same
/// `on` stopped; the `on` reports the host as stopped early, not failed.
#[derive(Debug, Clone)]
pub struct StoppedEarly {
    /// The command that was not run, or was stopped while it ran (`running`).
    pub command: String,
    /// Whether the command was running (tether stopped it on the host) rather than not
    /// started.
    pub running: bool,
    /// The host whose failure stopped it.
    pub because: String,
}

thread_local! {
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
            ast: OnceLock::new(),
            filters,
            ssh_config_file,
            ssh_config: OnceLock::new(),
            parallel,
            interrupted,
            sink,
            done: Mutex::new(HashSet::new()),
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

    /// Installs the function library closures are called against.
    pub fn set_ast(&self, ast: Arc<AST>) {
        // Set once, right after compiling.
        let _ = self.ast.set(ast);
    }

    /// The function library (see [`Runtime::set_ast`]).
    pub fn ast(&self) -> Option<Arc<AST>> {
        self.ast.get().cloned()
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

    /// Marks `task` as run; false if it already was (a task runs at most once per run).
    pub fn mark_done(&self, task: &str) -> bool {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_stops_commands_past_its_step_at_once_and_its_own_step_after_the_grace() {
        let abort = Arc::new(StepAbort::default());
        let before = abort.stop_for("web2", 0);
        let same = abort.stop_for("web2", 1);
        let past = abort.stop_for("web3", 2);
        assert!(!past.is_set() && !same.is_set());
        // web1 failed after starting 2 commands: its step is the second (index 1).
        abort.fail(2, "web1");
        let web1 = StopReason::StepAborted {
            because: "web1".into(),
        };
        assert_eq!(past.reason(), Some(web1));
        // The same step has its grace; earlier steps finish.
        assert_eq!(same.reason(), None);
        assert_eq!(before.reason(), None);
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
        assert_eq!(abort.stop_for("db1", 3).reason(), None);
    }
}
