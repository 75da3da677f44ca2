//! What every recipe function shares: its result type, the recipe error it throws, its
//! arguments read as strings, and where it was called.

use std::path::Path;

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, NativeCallContext};

/// What a registered function returns: a value, or an error the script sees.
pub type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Throws `message` as a recipe error (exit 4, with the script position).
pub fn fail<T>(message: impl Into<String>) -> Fallible<T> {
    Err(message.into().into())
}

/// Refuses `text` (what `what` names: `run()`'s command, `upload()`'s remote path) when it
/// holds a NUL byte: a command line ends at one (the exec request cannot carry it, a shell
/// string stops there), so nothing could run what the recipe wrote. A recipe error at the
/// call, before anything is sent.
pub fn refuse_nul(what: &str, text: &str) -> Fallible<()> {
    match text.find('\0') {
        None => Ok(()),
        Some(at) => fail(format!(
            "{what} holds a NUL byte (at byte {at} of \"{}\"), which no command line can carry: \
             nothing was sent",
            text.escape_debug()
        )),
    }
}

/// Where the function of `ctx` was called, as `FILE:LINE:COL` (`recipe`, the recipe's file,
/// when the call's source is not known).
pub fn call_site(ctx: &NativeCallContext, recipe: &Path) -> String {
    let pos = ctx.call_position();
    format!(
        "{}:{}:{}",
        ctx.call_source()
            .map_or_else(|| recipe.display().to_string(), str::to_string),
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0)
    )
}

/// A string or an array of strings (`"web"`, `["web", "db"]`) as a list; Err names `what`.
pub fn strings(value: &Dynamic, what: &str) -> Fallible<Vec<String>> {
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Ok(vec![s.to_string()]);
    }
    if let Some(a) = value.read_lock::<Array>() {
        return a
            .iter()
            .map(|v| {
                v.read_lock::<ImmutableString>()
                    .map(|s| s.to_string())
                    .ok_or_else(|| format!("{what} must be strings, not {}", v.type_name()).into())
            })
            .collect();
    }
    fail(format!(
        "{what} must be a string or an array of strings, not {}",
        value.type_name()
    ))
}
