//! Where a recipe ran away. Rhai stops a runaway script (too many operations, calls nested too
//! deep, a value grown past its limit) and then gives the error the position of the call that
//! entered the closure, which from Rust is none: the loop itself is lost. A debugger hook notes
//! the position of every node this thread evaluates, so the error is placed at the last one,
//! inside the loop or the recursion.

use std::cell::RefCell;

use rhai::debugger::DebuggerEvent;
use rhai::{Engine, EvalAltResult, Position};

use super::limits::{MAX_CALL_LEVELS, MAX_OPERATIONS};

thread_local! {
    /// The source (None: the recipe) and position of the last node evaluated on this thread.
    static LAST: RefCell<(Option<String>, Position)> = const { RefCell::new((None, Position::NONE)) };
}

/// Makes `engine` note where each evaluated node is, for [`place`].
pub fn watch(engine: &mut Engine) {
    // Rhai marks the debugger API deprecated only to say it is volatile.
    #[allow(deprecated)]
    engine.register_debugger(
        |_, debugger| debugger,
        |_, event, _, source, pos| {
            // Only steps: the events of functions exiting with the error come after it and
            // would move the place to the closure's end.
            if matches!(event, DebuggerEvent::Start | DebuggerEvent::Step) {
                note(source, pos);
            }
            Ok(rhai::debugger::DebuggerCommand::StepInto)
        },
    );
}

fn note(source: Option<&str>, pos: Position) {
    if pos.is_none() {
        return;
    }
    LAST.with_borrow_mut(|(s, p)| {
        if s.as_deref() != source {
            *s = source.map(str::to_string);
        }
        *p = pos;
    });
}

/// The token with which a script is stopped for making tether hold more than
/// [`crate::memory::recipe_limit`].
#[derive(Debug, Clone, Copy)]
pub struct OutOfMemory;

impl OutOfMemory {
    /// What ran away, in words (Rhai says only "Script terminated").
    pub fn words() -> String {
        format!(
            "ran away: tether held more than {} MiB (the values the recipe keeps; the limit is \
             half of the memory this process may have, at most 4 GiB: see README, \"Limits\")",
            crate::memory::recipe_limit() >> 20
        )
    }
}

/// What ran away, in words, when `err` is a runaway Rhai reported without a position.
fn what(err: &EvalAltResult) -> Option<String> {
    Some(match err {
        EvalAltResult::ErrorTerminated(token, _) if token.is::<OutOfMemory>() => {
            OutOfMemory::words()
        }
        EvalAltResult::ErrorTooManyOperations(p) if p.is_none() => format!(
            "ran away: Too many operations (stopped after {MAX_OPERATIONS}: an endless loop or \
             recursion here)"
        ),
        EvalAltResult::ErrorStackOverflow(p) if p.is_none() => format!(
            "ran away: calls nested more than {MAX_CALL_LEVELS} deep (a recursion without end \
             here)"
        ),
        EvalAltResult::ErrorDataTooLarge(kind, p) if p.is_none() => {
            format!(
                "ran away: a value grew past tether's limit here ({kind}; see README, \"Limits\")"
            )
        }
        _ => return None,
    })
}

/// `err` placed where this thread was when it ran away (falling back to `fallback`, a source
/// name and position), its message starting with `who` (e.g. "task `spin` (defined at
/// deploy.rhai:3:1)"); any other error is returned as it is.
pub fn place(
    err: Box<EvalAltResult>,
    who: &str,
    fallback: Option<(&str, Position)>,
) -> Box<EvalAltResult> {
    let Some(what) = what(&err) else {
        return err;
    };
    let (source, pos) = LAST.with_borrow(|(s, p)| (s.clone(), *p));
    let (source, pos) = match (source, pos) {
        (source, pos) if !pos.is_none() => (source.unwrap_or_default(), pos),
        _ => match fallback {
            Some((s, p)) => (s.to_string(), p),
            None => return err,
        },
    };
    let leaf = EvalAltResult::ErrorRuntime(format!("{who} {what}").into(), pos);
    EvalAltResult::ErrorInFunctionCall(who.to_string(), source, Box::new(leaf), Position::NONE)
        .into()
}
