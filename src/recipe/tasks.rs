//! Running a task: its before hooks, its bodies, its after hooks, at most once per run (Rake's
//! rule), each announced to the reporter.

use rhai::{Dynamic, Engine, EvalAltResult, AST};

use super::context::{Once, Runtime};
use super::failures::note_task;
use super::model::{Hook, Recipe, TaskBody};
use crate::event::EventKind;
use std::sync::atomic::Ordering;

/// Runs task `name` with its hooks, unless it already ran in this run. A failure coming out of
/// it is marked with the innermost task it happened in.
pub fn invoke(engine: &Engine, rt: &Runtime, name: &str) -> Result<(), Box<EvalAltResult>> {
    run(engine, rt, name, false).map_err(|mut errors| Box::new(errors.remove(0).1))
}

/// Runs the failure path's task `name` (`deploy:failed`) as [`invoke`] does, but every part of
/// it whatever the others do: a before hook that fails does not keep its bodies from running,
/// nor a body the next one or the after hooks. It is how a failed run cleans up (`current` put
/// back, the unfinished release removed, the locks released), which a failing notifier hooked
/// before it skipped (stop 41 tester t39: `current` left at an unfinished release on two hosts,
/// every lock kept, nothing said). Returns every failure, in order, each with the part it came
/// from (`before("deploy:failed")`, `deploy:failed`, `after("deploy:failed")`).
pub fn invoke_cleanup(engine: &Engine, rt: &Runtime, name: &str) -> Vec<(String, EvalAltResult)> {
    run(engine, rt, name, true).err().unwrap_or_default()
}

/// [`invoke`], or with `cleanup` [`invoke_cleanup`]: Err holds at least one failure.
fn run(
    engine: &Engine,
    rt: &Runtime,
    name: &str,
    cleanup: bool,
) -> Result<(), Vec<(String, EvalAltResult)>> {
    let fail = |e: Box<EvalAltResult>| vec![(name.to_string(), *e)];
    let task = {
        let recipe = rt.recipe();
        match recipe.tasks.get(name) {
            Some(t) => t.clone(),
            None => return Err(fail(recipe.unknown_task(name).into())),
        }
    };
    let running = rt
        .enter(name)
        .map_err(|circle| fail(circular(&rt.recipe(), &circle, true).into()))?;
    match rt.mark_done(name) {
        Once::Run => {}
        // Invoked by another host's `on` closure too, at once (stop 40 tester t34: called a
        // circular dependency): done once that one ended, as Rake's invoke waits for the
        // task's lock.
        // One that failed fails this caller too, as it failed (stop 46 tester t59).
        Once::Ran => {
            drop(running);
            // Meanwhile the hosts of this closure's `on` do not wait for this one at their
            // steps: the one running the task may be one of them, its task's steps held there
            // (see `StepAbort::park`).
            let scope = super::context::host_scope();
            let parked = scope.as_ref().map(|s| s.abort.park(&s.host, name));
            rt.wait_until_ended(name);
            drop(parked);
            if let Some(s) = scope {
                let steps = rt.task_steps(name, &s.abort);
                s.commands.fetch_add(steps, Ordering::SeqCst);
            }
            return match rt.task_failed(name) {
                Some(e) => Err(fail(e)),
                None => Ok(()),
            };
        }
        Once::RanBefore(earlier) => {
            rt.report(EventKind::Warning {
                message: format!(
                    "task `{name}` already ran in this run, for `{earlier}`: not run again (a \
                     task runs once per run)"
                ),
            });
            return Ok(());
        }
        // Rake would skip it; for a lock, an unlock or a publishing step that is silently
        // wrong (`tether deploy:unlock deploy` left the deploy's lock behind).
        Once::RanFor(earlier) => {
            return Err(fail(
                format!(
                    "task `{name}` already ran in this run, for `{earlier}`, and a task runs once \
                 per run: what `{earlier}` did with it is not what the next task needs (a lock \
                 taken, released, a release published); run them one per tether: `tether \
                 {earlier}`, then `tether` with the next"
                )
                .into(),
            ))
        }
    }
    // A circle of hooks ahead of it, as declared by now (a task reached by `invoke`, hooks
    // declared in a task's body), or hooks leading back to a task running around it, is
    // refused before it runs, as the command line's tasks' are before the run (stop 48 tester
    // t67: met half-way, the tasks before it run; t68: a user's after hook leading back to
    // the stdlib's deploy:publishing, which invokes deploy:symlink:release, published the
    // release first).
    let ahead = {
        // The tasks running around this one (`enter` put this one last).
        let mut chain = super::context::chain();
        chain.pop();
        let recipe = rt.recipe();
        recipe
            .hook_circle_within(&chain, &[name.to_string()])
            .map(|circle| circular(&recipe, &circle, false))
    };
    let scope = super::context::host_scope();
    let before = scope.as_ref().map(|s| s.commands.load(Ordering::SeqCst));
    let result = match ahead {
        Some(circle) => Err(fail(format!("{circle}; task `{name}` was not run").into())),
        None => run_parts(engine, rt, name, &task, cleanup),
    };
    // Kept before `running` ends the invocation, as its failure (below).
    if let (Some(s), Some(before)) = (&scope, before) {
        let steps = s.commands.load(Ordering::SeqCst) - before;
        rt.note_task_steps(name, s.abort.clone(), steps);
    }
    // Kept before `running` ends the invocation: a caller waiting for it reads it then.
    if let Err(errors) = &result {
        rt.note_task_failed(name, &errors[0].1);
    }
    if let Some(s) = &scope {
        s.abort.unpark(name);
    }
    drop(running);
    if let Some(s) = &scope {
        s.abort.await_turn(&s.host);
    }
    result
}

/// The parts of task `name` (`task`), as [`run`] runs them once it runs.
fn run_parts(
    engine: &Engine,
    rt: &Runtime,
    name: &str,
    task: &super::model::Task,
    cleanup: bool,
) -> Result<(), Vec<(String, EvalAltResult)>> {
    let fail = |e: Box<EvalAltResult>| vec![(name.to_string(), *e)];
    let (before, after) = {
        let recipe = rt.recipe();
        (
            recipe.before.get(name).cloned().unwrap_or_default(),
            recipe.after.get(name).cloned().unwrap_or_default(),
        )
    };
    let ast = rt
        .ast()
        .ok_or_else(|| fail("tasks can only run after the recipe is compiled".into()))?;
    let mut errors = Vec::new();
    let before_hooks = format!("before(\"{name}\")");
    if let Err(e) = run_hooks(engine, rt, &ast, &before, &before_hooks) {
        errors.push((before_hooks, *e));
        if !cleanup {
            return Err(errors);
        }
    }
    let announced = !task.bodies.is_empty();
    if announced {
        rt.report(EventKind::TaskStarted {
            task: name.to_string(),
        });
    }
    let mut ok = true;
    for body in &task.bodies {
        if let Err(mut e) = body.f.call::<Dynamic>(engine, &ast, ()) {
            note_task(&mut e, name);
            errors.push((name.to_string(), *place_runaway(e, name, body)));
            ok = false;
            if !cleanup {
                break;
            }
        }
    }
    if announced {
        rt.report(EventKind::TaskFinished {
            task: name.to_string(),
            ok,
        });
    }
    if ok || cleanup {
        let after_hooks = format!("after(\"{name}\")");
        if let Err(e) = run_hooks(engine, rt, &ast, &after, &after_hooks) {
            errors.push((after_hooks, *e));
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors),
    }
}

/// The error for a task invoked again while it runs (`circle`: `a`, `b`, `a`; `invoked`: it
/// was, else a run would invoke it: see [`Recipe::hook_circle`]), naming the hook that closed
/// the circle where one did (else the `invoke` call carries its own position).
pub fn circular(recipe: &Recipe, circle: &[String], invoked: bool) -> String {
    let (last, task) = match circle {
        [.., last, task] => (last.as_str(), task.as_str()),
        _ => ("", ""),
    };
    let hook = recipe
        .hook_sites
        .iter()
        .find(|s| s.task == last && s.other.as_deref() == Some(task));
    let by = match hook {
        Some(site) => {
            let kind = if site.before { "before" } else { "after" };
            let at = site
                .location()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            format!(" by {kind}(\"{last}\", \"{task}\"){at}")
        }
        None => String::new(),
    };
    let was = match invoked {
        true => "was",
        false => "would be",
    };
    format!(
        "circular dependency: {} (task `{task}` {was} invoked again{by} while it runs; a task \
         cannot run before or after itself)",
        circle.join(" => ")
    )
}

/// A runaway body (too many operations, calls nested too deep, a value grown past its limit)
/// is placed where it ran away, with the `task(...)` that defined it, so the user sees both
/// `file:line:col`.
fn place_runaway(err: Box<EvalAltResult>, task: &str, body: &TaskBody) -> Box<EvalAltResult> {
    let who = match &body.at {
        Some((source, pos)) => match (pos.line(), pos.position()) {
            (Some(line), col) => format!(
                "task `{task}` (defined at {source}:{line}:{})",
                col.unwrap_or(1)
            ),
            _ => format!("task `{task}`"),
        },
        None => format!("task `{task}`"),
    };
    super::runaway::place(err, &who, body.at.as_ref().map(|(s, p)| (s.as_str(), *p)))
}

/// Runs `hooks`, the hooks `which` (`after("deploy:started")`) of a task. A closure is
/// announced as a task named `which` (`▶ after("deploy:started")`), as a task hook is by its
/// own name (stop 67 tester t114: a before hook's failing command came under the heading of
/// the task hook before it, and JSON had no `task_started` for it).
fn run_hooks(
    engine: &Engine,
    rt: &Runtime,
    ast: &AST,
    hooks: &[Hook],
    which: &str,
) -> Result<(), Box<EvalAltResult>> {
    for hook in hooks {
        match hook {
            Hook::Task(t) => invoke(engine, rt, t)?,
            Hook::Closure(f) => {
                rt.report(EventKind::TaskStarted {
                    task: which.to_string(),
                });
                let ran = f.call::<Dynamic>(engine, ast, ());
                rt.report(EventKind::TaskFinished {
                    task: which.to_string(),
                    ok: ran.is_ok(),
                });
                drop(ran.map_err(|mut e| {
                    super::failures::note_hook(&mut e, which);
                    e
                })?);
            }
        }
    }
    Ok(())
}
