//! Running a task: its before hooks, its bodies, its after hooks, at most once per run (Rake's
//! rule), each announced to the reporter.

use rhai::{Dynamic, Engine, EvalAltResult, AST};

use super::context::Runtime;
use super::failures::note_task;
use super::model::{Hook, TaskBody};
use crate::event::EventKind;

/// Runs task `name` with its hooks, unless it already ran in this run. A failure coming out of
/// it is marked with the innermost task it happened in.
pub fn invoke(engine: &Engine, rt: &Runtime, name: &str) -> Result<(), Box<EvalAltResult>> {
    let task = {
        let recipe = rt.recipe();
        match recipe.tasks.get(name) {
            Some(t) => t.clone(),
            None => return Err(recipe.unknown_task(name).into()),
        }
    };
    if !rt.mark_done(name) {
        return Ok(());
    }
    let (before, after) = {
        let recipe = rt.recipe();
        (
            recipe.before.get(name).cloned().unwrap_or_default(),
            recipe.after.get(name).cloned().unwrap_or_default(),
        )
    };
    let ast = rt
        .ast()
        .ok_or("tasks can only run after the recipe is compiled")?;
    run_hooks(engine, rt, &ast, &before)?;
    let announced = !task.bodies.is_empty();
    if announced {
        rt.report(EventKind::TaskStarted {
            task: name.to_string(),
        });
    }
    let mut result = Ok(());
    for body in &task.bodies {
        if let Err(mut e) = body.f.call::<Dynamic>(engine, &ast, ()) {
            note_task(&mut e, name);
            result = Err(place_runaway(e, name, body));
            break;
        }
    }
    if announced {
        rt.report(EventKind::TaskFinished {
            task: name.to_string(),
            ok: result.is_ok(),
        });
    }
    result?;
    run_hooks(engine, rt, &ast, &after)
}

/// Rhai reports a runaway script (too many operations, calls nested too deep, a value grown
/// past its limit) without a position once it leaves the closure: it is placed at the
/// `task(...)` that defined the body, with what ran away, so the user sees `file:line:col`.
fn place_runaway(err: Box<EvalAltResult>, task: &str, body: &TaskBody) -> Box<EvalAltResult> {
    let Some((source, pos)) = &body.at else {
        return err;
    };
    let what = match &*err {
        EvalAltResult::ErrorTooManyOperations(p) if p.is_none() => format!(
            "task `{task}` ran away: Too many operations (stopped after {}: an endless loop \
             or recursion in it, or in what it calls)",
            super::limits::MAX_OPERATIONS
        ),
        EvalAltResult::ErrorStackOverflow(p) if p.is_none() => format!(
            "task `{task}` ran away: calls nested more than {} deep (a recursion without end \
             in it, or in what it calls)",
            super::limits::MAX_CALL_LEVELS
        ),
        EvalAltResult::ErrorDataTooLarge(kind, p) if p.is_none() => format!(
            "task `{task}`: a value grew past tether's limit ({kind}; see README, \"Limits\")"
        ),
        _ => return err,
    };
    let leaf = EvalAltResult::ErrorRuntime(what.into(), *pos);
    EvalAltResult::ErrorInFunctionCall(
        format!("task `{task}`"),
        source.clone(),
        Box::new(leaf),
        rhai::Position::NONE,
    )
    .into()
}

fn run_hooks(
    engine: &Engine,
    rt: &Runtime,
    ast: &AST,
    hooks: &[Hook],
) -> Result<(), Box<EvalAltResult>> {
    for hook in hooks {
        match hook {
            Hook::Task(t) => invoke(engine, rt, t)?,
            Hook::Closure(f) => {
                drop(f.call::<Dynamic>(engine, ast, ())?);
            }
        }
    }
    Ok(())
}
