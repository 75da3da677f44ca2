//! `on(target, [options,] "cmd")` and `on(target, [options,] |host| ...)`: one step over the
//! hosts of `target`, spread as the options say (see [`crate::dispatch`]), with a result per
//! host. A failure on any host makes `on` throw a [`Failure`] naming every host that failed
//! and every host stopped early, once the work in flight has finished.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};

use super::args::{fail, refuse_empty, refuse_nul, Fallible};
use super::captured::Captured;
use super::commands::{
    backend, refuse_password_on_terminal, sudo_hint, sudo_password_refused_before, sudo_stdin,
};
use super::context::{self, HostScope, Runtime, StepAbort, StoppedEarly};
use super::failures::{failure_of, throw};
use super::host_info::HostInfo;
use super::selection::select;
use crate::backend::Backend;
use crate::dispatch::{self, Mode, Skipped, Slot, Spread};
use crate::failure::{Failure, Kind, NotRun};
use crate::host::HostTarget;
use crate::host_text::HostText;
use crate::outcome::{skipped_words, step_failure};
use crate::pool::FanOut;
use crate::ssh::exec::ExitStatus;
use crate::stop::{Stop, StopReason};

/// Registers the four forms of `on`.
pub fn register(engine: &mut Engine, rt: &Arc<Runtime>) {
    let r = rt.clone();
    engine.register_fn("on", move |target: Dynamic, cmd: &str| {
        on_command(&r, &target, &Map::new(), cmd)
    });
    let r = rt.clone();
    engine.register_fn("on", move |target: Dynamic, opts: Map, cmd: &str| {
        on_command(&r, &target, &opts, cmd)
    });
    let r = rt.clone();
    engine.register_fn(
        "on",
        move |ctx: NativeCallContext, target: Dynamic, f: FnPtr| {
            on_closure(&r, &ctx, &target, &Map::new(), f)
        },
    );
    let r = rt.clone();
    engine.register_fn(
        "on",
        move |ctx: NativeCallContext, target: Dynamic, opts: Map, f: FnPtr| {
            on_closure(&r, &ctx, &target, &opts, f)
        },
    );
}

/// `#{ in: "parallel" | "sequence" | "groups", limit: N, wait: SECONDS, timeout: SECONDS,
/// pty: BOOL, reattach: SECONDS }`.
struct OnOptions {
    spread: Spread,
    timeout: Option<Duration>,
    pty: bool,
    /// The bound on re-attaching to a command whose connection died (`--reattach` otherwise).
    reattach: Option<Duration>,
}

fn options(rt: &Runtime, opts: &Map) -> Fallible<OnOptions> {
    for key in opts.keys() {
        if !["in", "limit", "wait", "timeout", "pty", "reattach"].contains(&key.as_str()) {
            return fail(format!(
                "unknown on() option `{key}` (known: in, limit, wait, timeout, pty, reattach)"
            ));
        }
    }
    let pty = match opts.get("pty") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|_| format!("on() option `pty` must be true or false, not {v}"))?,
    };
    let number = |key: &str| -> Fallible<Option<f64>> {
        match opts.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .map(|i| i as f64)
                .or_else(|_| v.as_float())
                .map(Some)
                .map_err(|_| {
                    // Text that reads as a number came from `-s` (`-s to=1.50`).
                    let hint = match v.clone().into_string() {
                        Ok(s) if s.trim().parse::<f64>().is_ok() => {
                            " (text that reads as a number: -s gives a number only where it \
                             is written as Rhai prints one, such as 1.5)"
                        }
                        _ => "",
                    };
                    format!("on() option `{key}` must be a number, not {v:?}{hint}").into()
                }),
        }
    };
    let seconds = |key: &str| -> Fallible<Option<Duration>> {
        match number(key)? {
            Some(s) => crate::duration::seconds(s)
                .map(Some)
                .or_else(|why| fail(format!("on() option `{key}`: {why}"))),
            None => Ok(None),
        }
    };
    let mode = match opts.get("in").map(|v| v.to_string()).as_deref() {
        None | Some("parallel") => Mode::Parallel,
        Some("sequence") => Mode::Sequence,
        Some("groups") => Mode::Groups,
        Some(other) => {
            return fail(format!(
                "on() option `in` must be \"parallel\", \"sequence\" or \"groups\", not \"{other}\""
            ))
        }
    };
    let limit = match number("limit")? {
        Some(n) if n >= 1.0 && n.is_finite() && n.fract() == 0.0 => Some(n as usize),
        Some(n) => {
            return fail(format!(
                "on() option `limit` must be a whole number, 1 or more, not {n}"
            ))
        }
        None if mode == Mode::Parallel => rt.parallel,
        None => None,
    };
    Ok(OnOptions {
        spread: Spread {
            mode,
            limit,
            wait: seconds("wait")?,
            stop_after_failure: true,
        },
        timeout: match seconds("timeout")? {
            Some(d) if d < Duration::from_millis(1) => {
                return fail(format!(
                    "on() option `timeout` must be a millisecond or more (leave it out for \
                     none), not {}",
                    number("timeout")?.unwrap_or_default()
                ))
            }
            other => other,
        },
        pty,
        reattach: seconds("reattach")?,
    })
}

fn targets(rt: &Runtime, hosts: &[String]) -> Fallible<Vec<HostTarget>> {
    let recipe = rt.recipe();
    hosts
        .iter()
        .map(|h| {
            match recipe.server(h) {
                Some(s) => s.target(),
                None => HostTarget::parse(h),
            }
            .map_err(|e| e.into())
        })
        .collect()
}

/// An `on` ready to run: its backend, its (connected) hosts, its options, and what stops it
/// from outside (see [`HostScope::enclosing`]).
type Start = (Arc<dyn Backend>, Vec<String>, OnOptions, Stop);

/// What every `on` does first; `None` when the filters leave no host.
fn begin(rt: &Runtime, target: &Dynamic, opts: &Map, what: &str) -> Fallible<Option<Start>> {
    let backend = backend(rt, "on()")?;
    if rt.interrupted() {
        return Err(throw(Failure::interrupted()));
    }
    // Inside a host's closure: a step of that host, which its step's abort stops.
    let enclosing = match context::host_scope() {
        Some(scope) => super::commands::refuse_stopped_step(&scope, what)?,
        None => Stop::default(),
    };
    let hosts = select(rt, target)?;
    let options = options(rt, opts)?;
    if hosts.is_empty() {
        return Ok(None);
    }
    backend.prepare(&targets(rt, &hosts)?);
    Ok(Some((backend, hosts, options, enclosing)))
}

/// What a failed `on` (`what`) throws: its failure; but where its hosts were stopped, none
/// failing of its own, because the step of another host's closure that this `on` is was
/// aborted (`enclosing`), a stop of that host (see `commands::stopped_within`).
fn step_failed(failure: Failure, what: &str, enclosing: &Stop) -> Box<EvalAltResult> {
    if failure.failed.is_empty() && failure.kind != Kind::Interrupted {
        if let (Some(scope), Some(StopReason::StepAborted { because })) =
            (context::host_scope(), enclosing.refusal())
        {
            return super::commands::stopped_within(&scope, what, because, &failure);
        }
    }
    throw(failure)
}

fn on_command(rt: &Runtime, target: &Dynamic, opts: &Map, cmd: &str) -> Fallible<Map> {
    refuse_empty("on(): the command", cmd)?;
    let cctx = context::command_context();
    let command = cctx.render(cmd);
    refuse_nul("on(): the command", &command)?;
    let Some((backend, hosts, options, enclosing)) = begin(rt, target, opts, &command)? else {
        return Ok(Map::new());
    };
    refuse_password_on_terminal(&cctx, options.pty)?;
    let refused: Vec<Failure> = hosts
        .iter()
        .filter_map(|h| sudo_password_refused_before(&cctx, h))
        .collect();
    if !refused.is_empty() {
        // Nothing runs: the step cannot complete without those hosts.
        let not_run = hosts
            .iter()
            .filter(|h| !refused.iter().any(|f| f.host_names().contains(h)))
            .map(|h| NotRun {
                host: h.clone(),
                reason: "not started: sudo refused the password on another host of this step"
                    .into(),
                started: false,
            })
            .collect();
        return Err(throw(Failure::merge(refused, not_run, hosts.len())));
    }
    let commands: Vec<(String, String)> =
        hosts.iter().map(|h| (h.clone(), command.clone())).collect();
    let how = FanOut {
        spread: options.spread,
        timeout: options.timeout,
        pty: options.pty,
        reattach: options.reattach,
        stdin: sudo_stdin(&cctx, None),
        // What is sent, in the context it runs in (`within`, `as_user`, `with_env` around the
        // `on`), as the plan shows it.
        label: Some(command.clone()),
        step_abort: Some(StepAbort::new()),
        kill: enclosing.clone(),
        ..FanOut::default()
    };
    let results = backend.fan_out(&commands, &how);
    let mut out = Map::new();
    for r in &results {
        if let Some(Ok(o)) = &r.result {
            let mut m = Map::new();
            m.insert(
                "stdout".into(),
                String::from_utf8_lossy(&o.stdout).into_owned().into(),
            );
            m.insert(
                "stderr".into(),
                String::from_utf8_lossy(&o.stderr).into_owned().into(),
            );
            m.insert(
                "code".into(),
                match o.status {
                    ExitStatus::Code(c) => Dynamic::from(i64::from(c)),
                    _ => Dynamic::UNIT,
                },
            );
            out.insert(r.host.as_str().into(), m.into());
        }
    }
    let Some(mut failure) = step_failure(&results) else {
        if rt.interrupted() {
            return Err(throw(Failure::interrupted()));
        }
        return Ok(out);
    };
    // Every host's result is read: each refused password is remembered (see crate::sudo).
    let hints: Vec<String> = results
        .iter()
        .filter_map(|r| sudo_hint(&cctx, &r.host, r.result.as_ref()))
        .collect();
    if let Some(hint) = hints.first() {
        failure.detail = Some(format!("  hint: {hint}"));
    }
    Err(step_failed(failure, &command, &enclosing))
}

/// What one host's closure came to.
enum HostEnd {
    Value(Dynamic),
    Failed(Failure),
    Stopped(StoppedEarly),
    RecipeError(Box<EvalAltResult>),
}

fn on_closure(
    rt: &Arc<Runtime>,
    ctx: &NativeCallContext,
    target: &Dynamic,
    opts: &Map,
    f: FnPtr,
) -> Fallible<Map> {
    let ast = rt.ast().ok_or("on() can only be used inside a task")?;
    // A closure without the host parameter, or with more, would fail on every host with
    // Rhai's "Function not found: anon$... (Host)"; its captured variables come first, as
    // curried arguments.
    let params = ast
        .iter_functions()
        .find(|m| m.name == f.fn_name())
        .map(|m| m.params);
    if params
        .as_ref()
        .is_some_and(|p| p.len() != f.curry().len() + 1)
    {
        return fail("on(): the closure takes one parameter, the host: |host| { ... }");
    }
    let captured = Captured::of(&f, params.as_deref().unwrap_or_default());
    let at = ctx.call_position();
    let what = "on(..., |host| { ... })";
    let Some((backend, hosts, options, enclosing)) = begin(rt, target, opts, what)? else {
        return Ok(Map::new());
    };
    let engine = ctx.engine();
    // The printer's hosts take turns, so that its plan comes out in a stable order, and
    // wait for nothing between groups (nothing runs).
    let (abort, spread) = match backend.ordered() {
        true => (
            StepAbort::taking_turns(),
            Spread {
                wait: None,
                ..options.spread
            },
        ),
        false => (StepAbort::new(), options.spread),
    };
    let base = context::command_context();
    // Each host's closure invokes tasks on the chain of this `on`'s task: a task that leads
    // back to it is a circle; one another host's closure runs is waited for.
    let chain = context::chain();
    // The units the hosts began (see `HostScope::offset`), and those begun before the hosts
    // started last.
    let begun = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut offset = 0;
    let run_one = |host: &String, offset: u64| -> HostEnd {
        // Ends (the others stop waiting for it) after its failure, if any, is recorded.
        let _running = abort.begin(host);
        let scope = HostScope {
            host: host.clone(),
            abort: abort.clone(),
            offset,
            pty: options.pty,
            timeout: options.timeout,
            reattach: options.reattach,
            commands: Arc::new(AtomicUsize::new(0)),
            hosts: hosts.len(),
            stopped: Default::default(),
            enclosing: enclosing.clone(),
        };
        let info = HostInfo::new(rt, host);
        let (own, cells) = captured.for_host(&f);
        let result = context::with_chain(chain.clone(), || {
            context::with_command_context(base.clone(), || {
                context::with_host_scope(scope.clone(), || {
                    own.call::<Dynamic>(engine, &ast, (info,))
                })
            })
        });
        let result = match (result, captured.changed(&cells)) {
            (Ok(_), Some(name)) => Err(EvalAltResult::ErrorRuntime(
                format!(
                    "on(): the closure changed `{name}`, a variable it captured: each host's \
                     closure has its own copy (the hosts run at once), so the change reaches \
                     neither the other hosts nor the code after the `on`; return the value \
                     instead (`on` returns host -> value)"
                )
                .into(),
                at,
            )
            .into()),
            (result, _) => result,
        };
        // Hosts the `on` starts later count on from the units this one took.
        begun.fetch_max(
            offset + abort.taken(host),
            std::sync::atomic::Ordering::SeqCst,
        );
        let end = match result {
            // A closure that sent nothing to a host that never connected did not run on that
            // host, whatever it returned: the host fails with why, as a string command there
            // would (a recipe that caught a failure of a command it sent there handled it).
            // Asking waits for the host's first connection attempt to end.
            Ok(v) if scope.commands.load(std::sync::atomic::Ordering::SeqCst) == 0 => {
                match backend.never_connected(host) {
                    Some(e) => HostEnd::Failed(Failure::host(host, e.kind(), e.said())),
                    None => return HostEnd::Value(v),
                }
            }
            // Stopped, the stop caught: stopped all the same (its commands were not run).
            Ok(v) => match scope.stopped() {
                Some(s) => HostEnd::Stopped(s),
                None => return HostEnd::Value(v),
            },
            Err(e) => {
                let end = match classify(rt, e) {
                    // The host's first stop is its stop: a later refusal, thrown after the
                    // first was caught, names a command after the one it was stopped before
                    // (stop 52 tester t83).
                    HostEnd::Stopped(later) => HostEnd::Stopped(scope.stopped().unwrap_or(later)),
                    end => end,
                };
                // Nor did a script error or a failure of its own there (`1 / 0`, `fail()`,
                // before any command; not one of other hosts, an `on` inside it): the host's
                // failure is why it never connected, which outranks it (a config error's exit
                // 2 over a recipe error's 4), as it would had the closure sent a command.
                let own = match &end {
                    HostEnd::RecipeError(_) => true,
                    HostEnd::Failed(f) => {
                        let names = f.host_names();
                        names.is_empty() || names == [host.as_str()]
                    }
                    _ => false,
                };
                let sent = scope.commands.load(std::sync::atomic::Ordering::SeqCst);
                match (own && sent == 0)
                    .then(|| backend.never_connected(host))
                    .flatten()
                {
                    Some(never) => HostEnd::Failed(Failure::host(host, never.kind(), never.said())),
                    None => end,
                }
            }
        };
        // A host stopped first that then failed of its own (a caught stop, then `fail()`)
        // did not cause the step's abort: the other stopped hosts name the hosts that did
        // (stop 46 tester t61: `host1, host3 failed` where host3 failed after its stop).
        if !matches!(end, HostEnd::Stopped(_)) && scope.stopped().is_none() {
            let started = scope.commands.load(std::sync::atomic::Ordering::SeqCst);
            abort.fail(started, host);
        }
        end
    };
    // A dry run's hosts take turns: a host the run cannot reach goes first among the hosts
    // the run starts with it (a window, a group), as its failure comes before their first
    // command ends, so that they stop where the run's hosts stop and the next window starts
    // none (stop 63 tester t104: the plan listed every command of the hosts before it).
    let order = match backend.ordered() {
        true => dispatch::failing_first(hosts.len(), &options.spread, |i| {
            backend.never_connected(&hosts[i]).is_some()
        }),
        false => (0..hosts.len()).collect(),
    };
    let slots = std::thread::scope(|s| {
        dispatch::run_settling(
            hosts.len(),
            &spread,
            &|| {
                let cancelled = rt.interrupted();
                if cancelled {
                    abort.withdraw();
                }
                cancelled
            },
            &|| enclosing.refusal().is_some(),
            &|end: &HostEnd| !matches!(end, HostEnd::Value(_)),
            &|units| {
                for &i in units {
                    abort.answered(&hosts[order[i]]);
                }
            },
            |i, done| {
                let wave = dispatch::wave(&spread, hosts.len(), i);
                let together: Vec<&String> = wave.clone().map(|j| &hosts[order[j]]).collect();
                abort.expect(&together);
                if wave.start == i {
                    offset = begun.load(std::sync::atomic::Ordering::SeqCst);
                }
                let (host, offset) = (&hosts[order[i]], offset);
                let run_one = &run_one;
                let spawned = std::thread::Builder::new()
                    .name(format!("on {host}"))
                    .spawn_scoped(s, move || done.send(run_one(host, offset)));
                // Without a thread the unit is dropped unanswered: reported as lost, and not
                // waited for.
                if spawned.is_err() {
                    abort.withdraw();
                }
            },
        )
    });
    let slots = dispatch::in_order(slots, &order);
    let mut out = Map::new();
    let mut parts = Vec::new();
    let mut not_run = Vec::new();
    let mut cancelled = false;
    for (host, slot) in hosts.iter().zip(slots) {
        match slot {
            Slot::Done(HostEnd::Value(v)) => {
                out.insert(host.as_str().into(), v);
            }
            // A failure of the host's own (a command of its closure) is the host's; one of
            // other hosts (an `on` inside the closure) is this host's too, its text the
            // reason: the step's failed hosts are its own, each named once.
            Slot::Done(HostEnd::Failed(f)) if f.host_names() == [host.as_str()] => parts.push(f),
            Slot::Done(HostEnd::Failed(f)) => {
                // The inner step's hosts indented under this one: they are not this step's.
                let said = HostText::new()
                    .host(host)
                    .text(": ")
                    .then(f.said().indented("  "));
                let mut own = Failure::host(host, f.kind, said);
                own.at = f.at.clone();
                own.task = f.task.clone();
                own.hook = f.hook.clone();
                // The recipe that catches it reads where it failed, not this host.
                own.within_reasons.extend(f.named().into_iter().map(|h| {
                    let reason = f.reason(&h);
                    (h, reason)
                }));
                own.within.push((host.clone(), f.culprits()));
                parts.push(own);
            }
            Slot::Done(HostEnd::Stopped(s)) => not_run.push(NotRun {
                host: host.clone(),
                reason: s.words(&abort.because(&hosts).unwrap_or_else(|| s.because.clone())),
                started: true,
            }),
            Slot::Done(HostEnd::RecipeError(e)) => {
                if rt.interrupted() {
                    cancelled = true;
                    continue;
                }
                // A failure of kind `recipe` (not a bare string), so that a recipe catching it
                // reads `err.kind` and `err.hosts`; its position is the closure's line, which
                // the caller must not replace with the `on` call's.
                let main = rt.file.display().to_string();
                let rendered = super::diagnostics::eval_error(&e, &main, &rt.sources);
                let said = HostText::new().host(host).text(": ").text(&rendered);
                let mut f = Failure::host(host, Kind::Recipe, said);
                f.at = super::diagnostics::innermost(&e, &main, &rt.sources)
                    .1
                    .map(|l| l.to_string());
                parts.push(f);
            }
            Slot::Skipped(Skipped::Cancelled) => cancelled = true,
            // A host that never connected failed, whichever host failed before it.
            Slot::Skipped(why) => match backend.never_connected(host) {
                Some(e) => parts.push(Failure::host(host, e.kind(), e.said())),
                None => not_run.push(NotRun {
                    host: host.clone(),
                    // Where no host of this step failed, the enclosing step's abort stopped it
                    // (stop 47 tester t65).
                    reason: match (why, abort.because(&hosts), enclosing.refusal()) {
                        (
                            Skipped::EarlierFailure,
                            None,
                            Some(StopReason::StepAborted { because }),
                        ) => format!("not started: {because} failed"),
                        _ => skipped_words(why).into(),
                    },
                    started: false,
                }),
            },
        }
    }
    if cancelled
        || parts
            .iter()
            .any(|p| p.kind == crate::failure::Kind::Interrupted)
    {
        // The hosts that failed on their own before it are named all the same; one whose
        // connecting the interrupt stopped failed by its doing (stop 37 tester t25).
        parts.retain(|p| {
            let names = p.host_names();
            names.is_empty()
                || !names.iter().all(|h| {
                    matches!(
                        backend.never_connected(h),
                        Some(crate::ssh::SshError::ConnectStopped { .. })
                    )
                })
        });
        return Err(throw(
            Failure::merge(parts, Vec::new(), hosts.len()).under_interrupt(),
        ));
    }
    if parts.is_empty() && not_run.is_empty() {
        return Ok(out);
    }
    Err(step_failed(
        Failure::merge(parts, not_run, hosts.len()),
        what,
        &enclosing,
    ))
}

fn classify(rt: &Runtime, e: Box<EvalAltResult>) -> HostEnd {
    if let Some(mut f) = failure_of(&e) {
        // Placed at the closure's command that failed, not at the `on` call.
        if f.at.is_none() {
            let main = rt.file.display().to_string();
            f.at = super::diagnostics::innermost(&e, &main, &rt.sources)
                .1
                .map(|l| l.to_string());
        }
        return HostEnd::Failed(f);
    }
    if let Some(s) = stopped_of(&e) {
        return HostEnd::Stopped(s);
    }
    HostEnd::RecipeError(super::runaway::place(e, "the closure", None))
}

fn stopped_of(err: &EvalAltResult) -> Option<StoppedEarly> {
    let mut err = err;
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
            | EvalAltResult::ErrorInModule(_, inner, _) => err = inner,
            EvalAltResult::ErrorRuntime(v, _) => {
                return v.read_lock::<StoppedEarly>().map(|s| s.clone())
            }
            _ => return None,
        }
    }
}
