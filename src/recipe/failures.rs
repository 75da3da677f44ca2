//! Failures across the Rhai boundary: a [`Failure`] is thrown as a Rhai value (not a string),
//! so a recipe that catches it can read `err.kind`, `err.hosts` and `err.message`, and the
//! runner classifies what comes out of a script by downcasting, never by its text.

use rhai::{Array, Dynamic, Engine, EvalAltResult, Position};

use crate::failure::Failure;

/// The error a host-bound function returns to throw `failure` (secrets masked: the recipe
/// may catch and print it).
pub fn throw(mut failure: Failure) -> Box<EvalAltResult> {
    failure.mask();
    EvalAltResult::ErrorRuntime(Dynamic::from(failure), Position::NONE).into()
}

/// The innermost error of a chain of function calls and module imports.
fn leaf(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => leaf(inner),
        other => other,
    }
}

fn leaf_mut(err: &mut EvalAltResult) -> &mut EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => leaf_mut(inner),
        other => other,
    }
}

/// The failure a script error carries, if it is one (thrown by a host-bound function, or
/// caught and thrown again by the recipe).
pub fn failure_of(err: &EvalAltResult) -> Option<Failure> {
    match leaf(err) {
        EvalAltResult::ErrorRuntime(value, _) => value.read_lock::<Failure>().map(|f| f.clone()),
        _ => None,
    }
}

/// Names `task` as where the failure in `err` happened, unless an inner task already did.
pub fn note_task(err: &mut EvalAltResult, task: &str) {
    if let EvalAltResult::ErrorRuntime(value, _) = leaf_mut(err) {
        if let Some(mut f) = value.write_lock::<Failure>() {
            if f.task.is_none() {
                f.task = Some(task.to_string());
            }
        }
    }
}

/// Marks a failure coming out of a hook's closure with that hook (`after("deploy:started")`),
/// unless it happened in a task the hook invoked (which names it).
pub fn note_hook(err: &mut EvalAltResult, hook: &str) {
    if let EvalAltResult::ErrorRuntime(value, _) = leaf_mut(err) {
        if let Some(mut f) = value.write_lock::<Failure>() {
            if f.task.is_none() && f.hook.is_none() {
                f.hook = Some(hook.to_string());
            }
        }
    }
}

/// Registers the `Failure` type: `err.kind` (`"command_failed"`, `"connection_lost"`,
/// `"unreachable"`, `"host_key_refused"`, `"config"`, `"interrupted"` (never caught: an
/// interrupt ends the run), `"recipe"`,
/// `"failed"`), `err.hosts` (the names of the hosts that failed, those of an `on` inside a
/// host's closure in that host's place: see [`Failure::culprits`]), `err.message`, `err.reason(host)` (why that host failed,
/// without the count of hosts: see [`Failure::reason`]), and its text where a string is expected (`"failed: " + err`, `` `${err}` ``).
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Failure>("Failure")
        .register_get("kind", |f: &mut Failure| f.kind.name().to_string())
        .register_get("hosts", |f: &mut Failure| {
            f.culprits()
                .into_iter()
                .map(Dynamic::from)
                .collect::<Array>()
        })
        .register_get("message", |f: &mut Failure| f.message())
        .register_fn("reason", |f: &mut Failure, host: &str| f.reason(host))
        .register_fn(
            "reason",
            |f: &mut Failure, host: super::host_info::HostInfo| f.reason(host.name()),
        )
        .register_fn("to_string", |f: &mut Failure| f.message())
        .register_fn("to_debug", |f: &mut Failure| f.message())
        .register_fn("+", |s: &str, f: Failure| format!("{s}{}", f.message()))
        .register_fn("+", |f: Failure, s: &str| format!("{}{s}", f.message()));
}
