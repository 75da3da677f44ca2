//! What every recipe function shares: its result type, the recipe error it throws, its
//! arguments read as strings, and where it was called.

use std::path::Path;

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, NativeCallContext, Position};

use super::sources::Sources;

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
            control_escaped(text)
        )),
    }
}

/// `text` with its control characters written as escapes (`\0`, `\n`, `\x1b`) and
/// nothing else changed: quotes stay as the command has them (stop 42 tester t45:
/// `escape_debug` showed `cd \'/srv\0x\'`, which is not what would be sent).
fn control_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Refuses a command `text` (what `what` names: `run()`'s command) that is empty or only white
/// space: nothing would run, where `ssh host ''` opens a login shell; most likely a variable
/// left unset. A recipe error at the call, before anything is sent.
pub fn refuse_empty(what: &str, text: &str) -> Fallible<()> {
    if text.trim().is_empty() {
        return fail(format!(
            "{what} is empty: nothing to run (a variable left unset?); nothing was sent"
        ));
    }
    Ok(())
}

/// Where the function of `ctx` was called: the source of the script function making the call
/// (a module's own; else the file `sources` recorded it from, the recipe or a stage file: Rhai
/// gives the recipe's and a stage file's closures, merged into one library, one source),
/// else the caller's as Rhai knows it, else `recipe`; and the position there.
pub fn caller(ctx: &NativeCallContext, recipe: &Path, sources: &Sources) -> (String, Position) {
    // engine::build, which makes every engine these functions are registered on, registers a
    // debugger (runaway::watch): its call stack is there. Its last frame is this function's
    // own; the one before, the script function that called it (none at a file's top level).
    let stack = ctx.global_runtime_state().debugger().call_stack();
    let frame = stack.len().checked_sub(2).map(|i| &stack[i]);
    let source = frame
        .and_then(|f| {
            f.source
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
        })
        .or_else(|| frame.and_then(|f| sources.function_source(&f.fn_name)))
        .or_else(|| ctx.call_source().map(str::to_string))
        .unwrap_or_else(|| recipe.display().to_string());
    (source, ctx.call_position())
}

/// [`caller`] as `FILE:LINE:COL`.
pub fn call_site(ctx: &NativeCallContext, recipe: &Path, sources: &Sources) -> String {
    let (source, pos) = caller(ctx, recipe, sources);
    format!(
        "{source}:{}:{}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_shown_in_the_command_as_it_would_be_sent() {
        let said = refuse_nul("run()", "cd '/srv\0x' && {\tpwd; }\u{1b}")
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("(at byte 8 of \"cd '/srv\\0x' && {\\tpwd; }\\u{1b}\")"),
            "{said}"
        );
    }
}
