//! The state shared by the recipe functions during one run: the recipe model, the backend,
//! the host filters, the command context of the current thread.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rhai::AST;

use super::diagnostics::Sources;
use super::model::Recipe;
use crate::backend::Backend;
use crate::command::CommandContext;
use crate::ssh::config::SshConfig;

/// `--roles`/`--hosts` from the command line: they narrow every `on`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only hosts with one of these roles.
    pub roles: Vec<String>,
    /// Only these hosts.
    pub hosts: Vec<String>,
}

/// A remote failure thrown by a host-bound function, so the runner can tell it from a
/// recipe error (different exit codes).
#[derive(Debug, Clone)]
pub struct RemoteFailure {
    /// The thrown message.
    pub message: String,
    /// Whether a host was unreachable (exit 3) rather than a command failing (exit 1).
    pub unreachable: bool,
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
    /// ssh config, for host details (`host.hostname`, `host.port` ...).
    pub ssh_config: SshConfig,
    /// `--parallel`.
    pub parallel: Option<usize>,
    /// Ctrl-C (or a watch-mode cancel).
    pub interrupted: Arc<AtomicBool>,
    remote_failures: Mutex<Vec<RemoteFailure>>,
    done: Mutex<HashSet<String>>,
    /// (error message, the innermost task it failed in), for "in task `x`" in errors.
    failed_steps: Mutex<Vec<(String, String)>>,
}

/// Where host-bound functions run: the host of the current `on` closure.
#[derive(Debug, Clone)]
pub struct HostScope {
    /// The host's name.
    pub host: String,
    /// Set when any host of the same `on` failed: no new commands.
    pub abort: Arc<AtomicBool>,
    /// Commands get a pseudo-terminal (`on(target, #{ pty: true }, |host| ..)`).
    pub pty: bool,
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
        ssh_config: SshConfig,
        parallel: Option<usize>,
        interrupted: Arc<AtomicBool>,
    ) -> Self {
        Runtime {
            file,
            recipe: Mutex::new(Recipe::default()),
            sources: Arc::new(Sources::default()),
            modules: Default::default(),
            backend: OnceLock::new(),
            ast: OnceLock::new(),
            filters,
            ssh_config,
            parallel,
            interrupted,
            remote_failures: Mutex::new(Vec::new()),
            done: Mutex::new(HashSet::new()),
            failed_steps: Mutex::new(Vec::new()),
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

    /// Records a remote failure about to be thrown.
    pub fn record_failure(&self, message: &str, unreachable: bool) {
        self.remote_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RemoteFailure {
                message: message.to_string(),
                unreachable,
            });
    }

    /// The remote failure whose message is `message`, if it was one.
    pub fn remote_failure(&self, message: &str) -> Option<RemoteFailure> {
        self.remote_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|f| f.message == message)
            .cloned()
    }

    /// Records that the error `message` came out of `step`, unless an inner step already
    /// claimed it (the innermost task is the one to name).
    pub fn note_failed_step(&self, message: &str, step: &str) {
        let mut steps = self.failed_steps.lock().unwrap_or_else(|p| p.into_inner());
        if !steps.iter().any(|(m, _)| m == message) {
            steps.push((message.to_string(), step.to_string()));
        }
    }

    /// The innermost step the error `message` came out of.
    pub fn failed_step(&self, message: &str) -> Option<String> {
        self.failed_steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(m, _)| m == message)
            .map(|(_, s)| s.clone())
    }

    /// Marks `task` as run; false if it already was (a task runs at most once per run).
    pub fn mark_done(&self, task: &str) -> bool {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.to_string())
    }
}
