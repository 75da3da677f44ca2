//! `ask(key, default)` and `ask(key, default, #{ echo: false })`: Capistrano's `ask`. The
//! variable is set to a question, asked on the terminal the first time the variable is
//! fetched (so `tether tasks` asks nothing), and the answer replaces it (asked once per run).
//! The prompt is Capistrano's (`Please enter branch (main): `); Enter takes the default.
//! With `echo: false` the answer is not echoed and is registered as a secret (masked in all
//! output, like `set_secret`). A variable set with `-s key=value` is never asked (with
//! `echo: false` that value is the secret). Without a terminal (stdin not a terminal, as in
//! CI) fetching it is a recipe error that says where it was asked and how to set it.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::args::{fail, Fallible};
use super::context::Runtime;

/// A variable waiting for its answer: what `vars[key]` holds between `ask` and the first
/// `fetch`.
#[derive(Debug, Clone)]
pub struct Question {
    key: String,
    /// What Enter (an empty answer) gives.
    default: Dynamic,
    /// Whether the answer is echoed; `false` also makes it a secret.
    echo: bool,
    /// Where `ask` was called, `file:line:col`.
    at: String,
}

/// One question on the terminal at a time: tasks on several hosts may fetch the variable at
/// once, and the first asks while the others wait for its answer.
static ASKING: Mutex<()> = Mutex::new(());

/// Registers `ask` (two and three arguments).
pub fn register(engine: &mut Engine, rt: &Arc<Runtime>) {
    let r = rt.clone();
    engine.register_fn(
        "ask",
        move |ctx: NativeCallContext, key: &str, default: Dynamic| -> Fallible<()> {
            if super::runtime_vars::read_by_tether(key) {
                return fail(super::runtime_vars::too_late("ask", key));
            }
            declare(&r, &ctx, key, default, true);
            Ok(())
        },
    );
    let r = rt.clone();
    engine.register_fn(
        "ask",
        move |ctx: NativeCallContext, key: &str, default: Dynamic, options: Map| -> Fallible<()> {
            if super::runtime_vars::read_by_tether(key) {
                return fail(super::runtime_vars::too_late("ask", key));
            }
            let mut echo = true;
            for (name, value) in options {
                match (name.as_str(), value.as_bool()) {
                    ("echo", Ok(b)) => echo = b,
                    ("echo", Err(t)) => {
                        return fail(format!(
                            "ask(\"{key}\", ..): `echo` must be true or false, not {t}"
                        ))
                    }
                    (other, _) => {
                        return fail(format!(
                            "ask(\"{key}\", ..): unknown option `{other}` (the options are: echo)"
                        ))
                    }
                }
            }
            declare(&r, &ctx, key, default, echo);
            Ok(())
        },
    );
}

/// `ask` itself: the question goes into the variable, unless `-s` set it.
fn declare(rt: &Runtime, ctx: &NativeCallContext, key: &str, default: Dynamic, echo: bool) {
    let mut recipe = rt.recipe();
    if recipe.locked.contains(key) {
        if !echo {
            if let Some(v) = recipe.vars.get(key) {
                crate::secret::register(&v.to_string());
            }
        }
        return;
    }
    let at = super::args::call_site(ctx, &rt.file, &rt.sources);
    let question = Question {
        key: key.to_string(),
        default,
        echo,
        at,
    };
    recipe.vars.insert(key.to_string(), Dynamic::from(question));
}

/// `value` itself, or when it is a [`Question`] its answer (asked now, stored in place of the
/// question). Errors: no terminal to ask on, or the terminal could not be read.
pub fn answer(rt: &Runtime, value: Dynamic) -> Fallible<Dynamic> {
    let Some(question) = value.clone().try_cast::<Question>() else {
        return Ok(value);
    };
    let _one = ASKING.lock().unwrap_or_else(|p| p.into_inner());
    // Another host's task may have asked while this one waited.
    let now = rt.recipe().vars.get(&question.key).cloned();
    match now {
        Some(v) if !v.is::<Question>() => return Ok(v),
        _ => {}
    }
    let key = &question.key;
    if !std::io::stdin().is_terminal() {
        return fail(format!(
            "ask(\"{key}\") at {}: no terminal to ask on (stdin is not a terminal); set it \
             with -s {key}=VALUE",
            question.at
        ));
    }
    let answer = prompt(&question).map_err(|e| {
        format!(
            "ask(\"{key}\") at {}: cannot read the answer: {e}",
            question.at
        )
    })?;
    let value = match answer {
        Some(text) => {
            if !question.echo {
                crate::secret::register(&text);
            }
            Dynamic::from(text)
        }
        None => {
            if !question.echo {
                crate::secret::register(&question.default.to_string());
            }
            question.default.clone()
        }
    };
    rt.recipe().vars.insert(key.clone(), value.clone());
    Ok(value)
}

/// Asks on the terminal; `None` for an empty answer (Enter: the default). The prompt goes to
/// stderr, with stdout (the status line, other hosts' output) held until it is answered.
fn prompt(question: &Question) -> std::io::Result<Option<String>> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if out.is_terminal() {
        // Clears the live status line, which would otherwise share the prompt's line.
        out.write_all(b"\r\x1b[2K")?;
        out.flush()?;
    }
    let text = if question.echo {
        crate::err!(
            "Please enter {} ({}): ",
            question.key,
            crate::secret::mask(&question.default.to_string())
        );
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    } else {
        rpassword::prompt_password(format!(
            "Please enter {} (Enter for the default): ",
            question.key
        ))?
    };
    let text = text.trim_end_matches(['\n', '\r']);
    Ok((!text.is_empty()).then(|| text.to_string()))
}
