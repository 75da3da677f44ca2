//! The functions a recipe calls: declarations (`server`, `role`, `set`, `task`, `before` ...)
//! and host-bound operations (`on`, `run`, `capture`, `test`, `within`, `upload` ...).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext};

use super::context::{self, HostScope, Runtime};
use super::model::Hook;
use crate::command::{quote, CommandContext};
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult};
use crate::report::{failure_text, stderr_tail};
use crate::runner;
use crate::ssh::exec::{ExecOutput, ExitStatus};
use crate::ssh::SshError;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Thrown by host-bound calls on other hosts once one host of an `on` failed.
pub const SKIPPED: &str = "not run: another host of this step failed";

fn fail<T>(message: impl Into<String>) -> Fallible<T> {
    Err(message.into().into())
}

/// What a closure sees as `host`.
#[derive(Debug, Clone)]
pub struct HostInfo {
    name: String,
    hostname: String,
    user: String,
    port: i64,
    roles: Vec<String>,
    props: Map,
}

impl HostInfo {
    fn new(rt: &Runtime, name: &str) -> Self {
        let recipe = rt.recipe();
        let server = recipe.server(name);
        let target = HostTarget::parse(name).ok();
        let cfg = target
            .as_ref()
            .map(|t| rt.ssh_config.resolve(&t.alias, t.user.as_deref(), t.port));
        HostInfo {
            name: name.to_string(),
            hostname: cfg
                .as_ref()
                .map_or_else(|| name.to_string(), |c| c.hostname.clone()),
            user: cfg.as_ref().map_or_else(String::new, |c| c.user.clone()),
            port: cfg.as_ref().map_or(22, |c| i64::from(c.port)),
            roles: server.map(|s| s.roles.clone()).unwrap_or_default(),
            props: server.map(|s| s.props.clone()).unwrap_or_default(),
        }
    }
}

/// Registers every recipe function on `engine`.
pub fn register(engine: &mut Engine, rt: Arc<Runtime>) {
    register_host_type(engine);
    register_declarations(engine, &rt);
    register_host_bound(engine, &rt);
    register_stdlib_support(engine, &rt);
}

fn register_host_type(engine: &mut Engine) {
    engine
        .register_type_with_name::<HostInfo>("Host")
        .register_get("name", |h: &mut HostInfo| h.name.clone())
        .register_get("hostname", |h: &mut HostInfo| h.hostname.clone())
        .register_get("user", |h: &mut HostInfo| h.user.clone())
        .register_get("port", |h: &mut HostInfo| h.port)
        .register_get("roles", |h: &mut HostInfo| {
            h.roles
                .iter()
                .cloned()
                .map(Dynamic::from)
                .collect::<Array>()
        })
        .register_get("props", |h: &mut HostInfo| h.props.clone())
        .register_fn("has_role", |h: &mut HostInfo, r: &str| {
            h.roles.iter().any(|x| x == r)
        })
        .register_fn("to_string", |h: &mut HostInfo| h.name.clone());
}

fn strings(value: &Dynamic, what: &str) -> Fallible<Vec<String>> {
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

/// Checks the server properties that change how tether connects: `via` (jump hosts, a
/// string as ProxyJump takes) and `forward_agent` (a boolean).
fn check_connection_props(name: &str, props: &Map) -> Fallible<()> {
    if let Some(v) = props.get("via") {
        let spec = v.clone().into_immutable_string().map_err(|t| {
            format!(
                "server(\"{name}\"): `via` must be a string naming jump hosts (\"bastion\", \
                 \"a,b\", \"user@host:port\", \"none\"), not {t}"
            )
        })?;
        crate::ssh::jump::parse_spec(&spec)
            .map_err(|e| format!("server(\"{name}\"): `via`: {e}"))?;
    }
    if let Some(v) = props.get("forward_agent") {
        if !v.is_bool() {
            return fail(format!(
                "server(\"{name}\"): `forward_agent` must be true or false, not {}",
                v.type_name()
            ));
        }
    }
    Ok(())
}

/// `-s key=value` values: numbers and booleans keep their type.
pub fn override_value(text: &str) -> Dynamic {
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    match text {
        "true" => true.into(),
        "false" => false.into(),
        _ => text.into(),
    }
}

fn register_declarations(engine: &mut Engine, rt: &Arc<Runtime>) {
    let r = rt.clone();
    engine.register_fn("set", move |key: &str, value: Dynamic| {
        let mut recipe = r.recipe();
        if !recipe.locked.contains(key) {
            recipe.vars.insert(key.to_string(), value);
        }
    });
    let r = rt.clone();
    engine.register_fn(
        "fetch",
        move |ctx: NativeCallContext, key: &str| -> Fallible<Dynamic> {
            let value = r.recipe().vars.get(key).cloned();
            match value {
                Some(v) => lazy(&ctx, v),
                None => fail(format!(
                    "variable `{key}` is not set{}",
                    super::model::suggest(key, r.recipe().vars.keys().map(String::as_str))
                )),
            }
        },
    );
    let r = rt.clone();
    engine.register_fn(
        "fetch",
        move |ctx: NativeCallContext, key: &str, default: Dynamic| -> Fallible<Dynamic> {
            let value = r.recipe().vars.get(key).cloned();
            lazy(&ctx, value.unwrap_or(default))
        },
    );
    let r = rt.clone();
    engine.register_fn("is_set", move |key: &str| r.recipe().vars.contains_key(key));

    let r = rt.clone();
    engine.register_fn("server", move |name: &str, props: Map| -> Fallible<()> {
        HostTarget::parse(name).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        let mut props = props;
        let roles = match props.remove("roles") {
            Some(v) => strings(&v, "roles")?,
            None => Vec::new(),
        };
        check_connection_props(name, &props)?;
        r.recipe().add_server(name, &roles, props);
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn("server", move |name: &str| -> Fallible<()> {
        HostTarget::parse(name).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        r.recipe().add_server(name, &[], Map::new());
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn("role", move |role: &str, hosts: Dynamic| -> Fallible<()> {
        let hosts = strings(&hosts, "hosts")?;
        for h in &hosts {
            HostTarget::parse(h).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        }
        let mut recipe = r.recipe();
        for h in hosts {
            recipe.add_server(&h, &[role.to_string()], Map::new());
        }
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn("stage", move |name: &str, f: FnPtr| {
        let mut recipe = r.recipe();
        recipe.stages.retain(|(n, _)| n != name);
        recipe.stages.push((name.to_string(), f));
    });
    let r = rt.clone();
    engine.register_fn("task", move |name: &str, description: &str, f: FnPtr| {
        define_task(&r, name, description, f)
    });
    let r = rt.clone();
    engine.register_fn("task", move |name: &str, f: FnPtr| {
        define_task(&r, name, "", f)
    });
    for (which, before) in [("before", true), ("after", false)] {
        let r = rt.clone();
        engine.register_fn(which, move |task: &str, other: &str| -> Fallible<()> {
            add_hook(&r, before, task, Hook::Task(other.to_string()))
        });
        let r = rt.clone();
        engine.register_fn(which, move |task: &str, f: FnPtr| -> Fallible<()> {
            add_hook(&r, before, task, Hook::Closure(f))
        });
    }
    let r = rt.clone();
    engine.register_fn("on_failure", move |f: FnPtr| {
        r.recipe().failure_hooks.push(f)
    });
    engine.register_fn("quote", |s: &str| quote(s));
    let r = rt.clone();
    engine.register_fn("primary", move |role: &str| -> Fallible<String> {
        let recipe = r.recipe();
        match recipe.primary(role) {
            Some(s) => Ok(s.name.clone()),
            None => fail(format!("no server has role `{role}`")),
        }
    });
    let r = rt.clone();
    engine.register_fn("hosts", move |target: Dynamic| -> Fallible<Array> {
        Ok(select(&r, &target)?
            .into_iter()
            .map(Dynamic::from)
            .collect())
    });
    let r = rt.clone();
    engine.register_fn(
        "invoke",
        move |ctx: NativeCallContext, name: &str| -> Fallible<()> {
            runner::invoke(ctx.engine(), &r, name)
        },
    );
}

fn define_task(rt: &Runtime, name: &str, description: &str, f: FnPtr) -> Fallible<()> {
    if name.trim().is_empty() || name.contains(char::is_whitespace) {
        return fail(format!(
            "invalid task name `{name}`: use words joined by `:`"
        ));
    }
    let mut recipe = rt.recipe();
    let task = recipe
        .tasks
        .entry(name.to_string())
        .or_insert_with(|| super::model::Task {
            name: name.to_string(),
            description: String::new(),
            bodies: Vec::new(),
        });
    if !description.is_empty() {
        task.description = description.to_string();
    }
    task.bodies.push(f);
    Ok(())
}

fn add_hook(rt: &Runtime, before: bool, task: &str, hook: Hook) -> Fallible<()> {
    let mut recipe = rt.recipe();
    let hooks = if before {
        &mut recipe.before
    } else {
        &mut recipe.after
    };
    hooks.entry(task.to_string()).or_default().push(hook);
    Ok(())
}

/// A variable's value; a closure is called now (lazy variables, as Capistrano's lambdas).
fn lazy(ctx: &NativeCallContext, value: Dynamic) -> Fallible<Dynamic> {
    match value.clone().try_cast::<FnPtr>() {
        Some(f) => f.call_within_context(ctx, ()),
        None => Ok(value),
    }
}

/// Hosts of `target` (role names, `all`, host names), narrowed by `--roles`/`--hosts`.
fn select(rt: &Runtime, target: &Dynamic) -> Fallible<Vec<String>> {
    let names = strings(target, "on() targets")?;
    let recipe = rt.recipe();
    let hosts = recipe
        .resolve(&names)
        .map_err(|e| -> Box<EvalAltResult> { e.into() })?;
    Ok(hosts
        .into_iter()
        .filter(|h| rt.filters.hosts.is_empty() || rt.filters.hosts.contains(h))
        .filter(|h| {
            rt.filters.roles.is_empty()
                || recipe
                    .server(h)
                    .is_some_and(|s| s.roles.iter().any(|r| rt.filters.roles.contains(r)))
        })
        .collect())
}

/// How `on` spreads over hosts: `#{ in: "parallel" | "sequence" | "groups", limit, wait }`,
/// and how its commands run (`timeout`, `pty`).
fn fan_out_options(rt: &Runtime, opts: &Map) -> Fallible<FanOut> {
    for key in opts.keys() {
        if !["in", "limit", "wait", "timeout", "pty"].contains(&key.as_str()) {
            return fail(format!(
                "unknown on() option `{key}` (known: in, limit, wait, timeout, pty)"
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
                .map_err(|_| format!("on() option `{key}` must be a number").into()),
        }
    };
    let seconds = |key: &str| -> Fallible<Option<Duration>> {
        Ok(number(key)?
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64))
    };
    let mode = match opts.get("in") {
        None => "parallel".to_string(),
        Some(v) => v.to_string(),
    };
    let limit = number("limit")?.map(|n| n.max(1.0) as usize);
    let parallel = match mode.as_str() {
        "parallel" => limit.or(rt.parallel),
        "sequence" => Some(1),
        "groups" => Some(limit.unwrap_or(2)),
        other => {
            return fail(format!(
                "on() option `in` must be \"parallel\", \"sequence\" or \"groups\", not \"{other}\""
            ))
        }
    };
    let wait = seconds("wait")?;
    Ok(FanOut {
        parallel,
        stop_on_failure: true,
        timeout: seconds("timeout")?,
        wait: if mode == "parallel" {
            None
        } else {
            wait.or(Some(Duration::ZERO))
        },
        pty,
        ..FanOut::default()
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

fn backend(rt: &Runtime, what: &str) -> Fallible<Arc<dyn crate::backend::Backend>> {
    rt.backend()
        .ok_or_else(|| format!("{what} can only be used inside a task").into())
}

fn register_host_bound(engine: &mut Engine, rt: &Arc<Runtime>) {
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
    let r = rt.clone();
    engine.register_fn("run", move |cmd: &str| -> Fallible<()> {
        host_exec(&r, cmd, Mode::Run).map(|_| ())
    });
    let r = rt.clone();
    engine.register_fn("capture", move |cmd: &str| -> Fallible<String> {
        host_exec(&r, cmd, Mode::Capture).map(|d| d.to_string())
    });
    let r = rt.clone();
    engine.register_fn("test", move |cmd: &str| -> Fallible<bool> {
        host_exec(&r, cmd, Mode::Test).map(|d| d.as_bool().unwrap_or(false))
    });
    engine.register_fn("within", |ctx: NativeCallContext, dir: &str, f: FnPtr| {
        let inner = context::command_context().within(dir);
        context::with_command_context(inner, || f.call_within_context::<Dynamic>(&ctx, ()))
    });
    engine.register_fn("with_env", |ctx: NativeCallContext, vars: Map, f: FnPtr| {
        let pairs: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some((bad, _)) = pairs.iter().find(|(k, _)| !valid_env_name(k)) {
            return fail(format!(
                "with_env: `{bad}` is not a valid environment variable name"
            ));
        }
        let inner = context::command_context().with_env(&pairs);
        context::with_command_context(inner, || f.call_within_context::<Dynamic>(&ctx, ()))
    });
    engine.register_fn("as_user", |ctx: NativeCallContext, user: &str, f: FnPtr| {
        let inner = context::command_context()
            .as_user(user)
            .with_sudo_password(crate::secret::sudo_password().is_some());
        context::with_command_context(inner, || f.call_within_context::<Dynamic>(&ctx, ()))
    });
    let r = rt.clone();
    engine.register_fn("upload", move |local: &str, remote: &str| {
        upload(&r, local, remote)
    });
    let r = rt.clone();
    engine.register_fn("run_locally", move |cmd: &str| run_locally(&r, cmd));
    let r = rt.clone();
    engine.on_print(move |text| match r.backend() {
        Some(b) => b.note(text),
        None => crate::outln!("{text}"),
    });
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An `on` call ready to dispatch: its backend, its (connected) hosts, how to spread.
type OnStart = (Arc<dyn crate::backend::Backend>, Vec<String>, FanOut);

/// What every `on` does first; `None` when the filters leave no host.
fn begin_on(rt: &Runtime, target: &Dynamic, opts: &Map) -> Fallible<Option<OnStart>> {
    let backend = backend(rt, "on()")?;
    if rt.interrupted() {
        return fail("interrupted");
    }
    let hosts = select(rt, target)?;
    let how = fan_out_options(rt, opts)?;
    if hosts.is_empty() {
        return Ok(None);
    }
    backend
        .prepare(&targets(rt, &hosts)?)
        .map_err(|e| -> Box<EvalAltResult> { e.into() })?;
    Ok(Some((backend, hosts, how)))
}

fn on_command(rt: &Runtime, target: &Dynamic, opts: &Map, cmd: &str) -> Fallible<Map> {
    let Some((backend, hosts, how)) = begin_on(rt, target, opts)? else {
        return Ok(Map::new());
    };
    let cctx = context::command_context();
    let command = cctx.render(cmd);
    if !backend.is_dry_run() {
        backend.note(&format!("» {} $ {cmd}", hosts.join(",")));
    }
    let commands: Vec<(String, String)> =
        hosts.iter().map(|h| (h.clone(), command.clone())).collect();
    let how = FanOut {
        stdin: sudo_stdin(&cctx, None),
        ..how
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
    let failed: Vec<&HostResult> = results
        .iter()
        .filter(|r| !r.ok() && r.result.is_some())
        .collect();
    if failed.is_empty() {
        if rt.interrupted() {
            return fail("interrupted");
        }
        return Ok(out);
    }
    let unreachable = failed
        .iter()
        .any(|r| matches!(&r.result, Some(Err(e)) if e.is_connect_failure()));
    let not_run = results.iter().filter(|r| r.result.is_none()).count();
    let mut message = format!(
        "{} of {} host{} failed",
        failed.len(),
        results.len(),
        if results.len() == 1 { "" } else { "s" }
    );
    if not_run > 0 {
        message.push_str(&format!(" ({not_run} not started)"));
    }
    for r in &failed {
        message.push('\n');
        message.push_str(&failure_text(r));
    }
    if let Some(hint) = failed
        .iter()
        .find_map(|r| sudo_hint(&cctx, r.result.as_ref()))
    {
        message.push_str(&format!("\n  hint: {hint}"));
    }
    rt.record_failure(&message, unreachable);
    fail(message)
}

/// The stdin of a command in context `ctx`: `data`, after the sudo password line when the
/// command was rendered to read it (`as_user` with a sudo password).
fn sudo_stdin(ctx: &CommandContext, data: Option<Vec<u8>>) -> Option<Vec<u8>> {
    let password = crate::secret::sudo_password().filter(|_| ctx.needs_sudo_password());
    match password {
        Some(p) => {
            let mut stdin = format!("{p}\n").into_bytes();
            stdin.extend(data.unwrap_or_default());
            Some(stdin)
        }
        None => data,
    }
}

/// A hint when an `as_user` command failed because of sudo (a password wanted, refused).
fn sudo_hint(
    ctx: &CommandContext,
    result: Option<&Result<ExecOutput, SshError>>,
) -> Option<String> {
    let user = ctx.user.as_deref()?;
    match result? {
        Ok(out) if !out.status.success() => crate::secret::sudo_hint(&out.stderr, user),
        _ => None,
    }
}

fn on_closure(
    rt: &Arc<Runtime>,
    ctx: &NativeCallContext,
    target: &Dynamic,
    opts: &Map,
    f: FnPtr,
) -> Fallible<Map> {
    let Some((backend, hosts, how)) = begin_on(rt, target, opts)? else {
        return Ok(Map::new());
    };
    let ast = rt.ast().ok_or("on() can only be used inside a task")?;
    let engine = ctx.engine();
    let abort = Arc::new(AtomicBool::new(false));
    let base = context::command_context();
    let limit = if backend.is_dry_run() {
        1
    } else {
        how.parallel.unwrap_or(hosts.len()).max(1)
    };
    let run_one = |host: &String| -> Fallible<Dynamic> {
        let scope = HostScope {
            host: host.clone(),
            abort: abort.clone(),
            pty: how.pty,
        };
        let info = HostInfo::new(rt, host);
        context::with_command_context(base.clone(), || {
            context::with_host_scope(scope, || {
                let result = f.call::<Dynamic>(engine, &ast, (info,));
                if result.is_err() {
                    abort.store(true, Ordering::SeqCst);
                }
                result
            })
        })
    };
    let mut results: Vec<Fallible<Dynamic>> = Vec::with_capacity(hosts.len());
    for (batch_index, batch) in hosts.chunks(limit).enumerate() {
        if batch_index > 0 {
            if abort.load(Ordering::SeqCst) || rt.interrupted() {
                break;
            }
            if let Some(wait) = how.wait {
                std::thread::sleep(wait);
            }
        }
        if batch.len() == 1 {
            results.push(run_one(&batch[0]));
            continue;
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = batch.iter().map(|h| s.spawn(|| run_one(h))).collect();
            for handle in handles {
                results.push(
                    handle
                        .join()
                        .unwrap_or_else(|_| fail("host thread panicked")),
                );
            }
        });
    }
    let mut out = Map::new();
    let mut failures: Vec<(String, Box<EvalAltResult>)> = Vec::new();
    for (host, result) in hosts.iter().zip(results) {
        match result {
            Ok(v) => {
                out.insert(host.as_str().into(), v);
            }
            Err(e) => failures.push((host.clone(), e)),
        }
    }
    if failures.is_empty() {
        return Ok(out);
    }
    // A recipe error (not a remote failure) is passed on as it is, keeping its position.
    let sources = &rt.sources;
    let main = rt.file.display().to_string();
    let mut remote = Vec::new();
    let mut unreachable = false;
    let mut skipped = 0;
    for (host, err) in failures {
        let (leaf, _, _) = super::diagnostics::innermost(&err, &main);
        let text = super::diagnostics::message(leaf);
        if text == SKIPPED {
            skipped += 1;
            continue;
        }
        match rt.remote_failure(&text) {
            Some(f) => {
                unreachable |= f.unreachable;
                remote.push(f.message);
            }
            None if text == "interrupted" => return fail("interrupted"),
            None => {
                let rendered = super::diagnostics::eval_error(&err, &main, sources);
                return fail(format!("{host}: {rendered}"));
            }
        }
    }
    let total = hosts.len();
    let mut message = format!(
        "{} of {total} host{} failed",
        remote.len(),
        if total == 1 { "" } else { "s" }
    );
    if skipped > 0 {
        message.push_str(&format!(" ({skipped} stopped early)"));
    }
    for m in remote {
        message.push('\n');
        message.push_str(&m);
    }
    rt.record_failure(&message, unreachable);
    fail(message)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Capture,
    Test,
}

/// The error a host-bound call throws when its command failed: the host, command, status and
/// stderr tail (after `prefix`), a sudo hint where one applies. The other hosts of the same
/// `on` stop dispatching, and the runner will see a remote failure, not a recipe error.
fn host_failure(
    rt: &Runtime,
    scope: &HostScope,
    cctx: &CommandContext,
    prefix: &str,
    command: String,
    result: Result<ExecOutput, SshError>,
) -> Box<EvalAltResult> {
    let unreachable = matches!(&result, Err(e) if e.is_connect_failure());
    let hint = sudo_hint(cctx, Some(&result));
    let mut message = format!(
        "{prefix}{}",
        failure_text(&HostResult {
            host: scope.host.clone(),
            command,
            result: Some(result),
        })
    );
    if let Some(hint) = hint {
        message.push_str(&format!("\n  hint: {hint}"));
    }
    scope.abort.store(true, Ordering::SeqCst);
    rt.record_failure(&message, unreachable);
    message.into()
}

fn host_exec(rt: &Runtime, cmd: &str, mode: Mode) -> Fallible<Dynamic> {
    let name = match mode {
        Mode::Run => "run",
        Mode::Capture => "capture",
        Mode::Test => "test",
    };
    let scope = context::host_scope().ok_or_else(|| {
        format!("{name}() needs a host: call it inside on(target, |host| {{ ... }})")
    })?;
    let backend = backend(rt, name)?;
    if scope.abort.load(Ordering::SeqCst) {
        return fail(SKIPPED);
    }
    if rt.interrupted() {
        return fail("interrupted");
    }
    let cctx = context::command_context();
    let command = cctx.render(cmd);
    let result = backend.exec(
        &scope.host,
        &command,
        sudo_stdin(&cctx, None),
        None,
        mode == Mode::Capture,
        scope.pty,
    );
    let out = match result {
        Ok(out) if out.status.success() => out,
        Ok(out) if mode == Mode::Test && matches!(out.status, ExitStatus::Code(_)) => {
            return Ok(false.into())
        }
        other => return Err(host_failure(rt, &scope, &cctx, "", command, other)),
    };
    Ok(match mode {
        Mode::Run => Dynamic::UNIT,
        Mode::Capture => String::from_utf8_lossy(&out.stdout)
            .trim()
            .to_string()
            .into(),
        Mode::Test => true.into(),
    })
}

fn upload(rt: &Runtime, local: &str, remote: &str) -> Fallible<()> {
    let scope = context::host_scope()
        .ok_or("upload() needs a host: call it inside on(target, |host| { ... })")?;
    let backend = backend(rt, "upload()")?;
    let base = rt
        .file
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let path = base.join(local);
    if backend.is_dry_run() {
        // A file the run itself makes (run_locally) does not exist in a dry run: still listed.
        let bytes = std::fs::metadata(&path).ok().map(|m| m.len());
        backend.describe_upload(&scope.host, local, remote, bytes);
        return Ok(());
    }
    let data =
        std::fs::read(&path).map_err(|e| format!("upload: cannot read {}: {e}", path.display()))?;
    if scope.abort.load(Ordering::SeqCst) {
        return fail(SKIPPED);
    }
    // Written to a temporary name and moved into place, so a reader never sees half a file.
    let tmp = format!("{remote}.tether-upload");
    let script = format!(
        "mkdir -p \"$(dirname {dest})\" && cat > {tmp} && mv -f {tmp} {dest}",
        dest = quote(remote),
        tmp = quote(&tmp)
    );
    let cctx = context::command_context();
    let command = cctx.render(&script);
    let stdin = sudo_stdin(&cctx, Some(data));
    match backend.exec(&scope.host, &command, stdin, None, false, false) {
        Ok(out) if out.status.success() => Ok(()),
        other => {
            let what = format!("upload {local} -> {remote}: ");
            Err(host_failure(rt, &scope, &cctx, &what, command, other))
        }
    }
}

fn run_locally(rt: &Runtime, cmd: &str) -> Fallible<String> {
    let backend = backend(rt, "run_locally()")?;
    if backend.is_dry_run() {
        backend.note(&format!("local | $ {cmd}"));
        return Ok(String::new());
    }
    if rt.interrupted() {
        return fail("interrupted");
    }
    let dir = rt
        .file
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir
    };
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("run_locally `{cmd}`: cannot start sh: {e}"))?;
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        backend.note(&format!("local ! {line}"));
    }
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    let status = match output.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "a signal".to_string(),
    };
    let mut message = format!("local: `{cmd}` failed with {status}");
    let tail = stderr_tail(&output.stderr, 10);
    if !tail.is_empty() {
        message.push_str("\n  stderr (last lines):");
        for l in tail {
            message.push_str(&format!("\n    {l}"));
        }
    }
    rt.record_failure(&message, false);
    fail(message)
}

/// Functions the stdlib modules (`stdlib/*.rhai`) need beyond the core language; recipes may
/// use them too.
fn register_stdlib_support(engine: &mut Engine, rt: &Arc<Runtime>) {
    // `utc_timestamp()`: now in UTC as `YYYYMMDDHHMMSS` (release names).
    engine.register_fn("utc_timestamp", || {
        utc_timestamp(std::time::SystemTime::now())
    });
    // `local_user()`: `user@machine` of whoever runs tether (lock holder, revision log).
    engine.register_fn("local_user", local_user);
    // `fail(message)`: stops the run as a failed step (exit 1, like a failed command), not as
    // a recipe error (exit 4, with a caret). Inside `on(target, |host| ...)` the message is
    // prefixed with the host's name, as command failures are.
    // `current_host()`: the name of the host whose `on` closure is running on this thread, or
    // `()` outside one. Lazy variables use it to give per-host values (stdlib/deploy.rhai's
    // paths under a `deploy_to` of `~/...`, resolved against each host's home).
    engine.register_fn("current_host", || -> Dynamic {
        context::host_scope().map_or(Dynamic::UNIT, |scope| scope.host.into())
    });
    let r = rt.clone();
    engine.register_fn("fail", move |message: &str| -> Fallible<()> {
        let message = match context::host_scope() {
            Some(scope) => format!("{}: {message}", scope.host),
            None => message.to_string(),
        };
        r.record_failure(&message, false);
        fail(message)
    });
}

/// `now` as `YYYYMMDDHHMMSS` in UTC.
fn utc_timestamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, time) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian calendar).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        time / 3_600,
        time % 3_600 / 60,
        time % 60
    )
}

/// `user@machine` for the local user.
fn local_user() -> String {
    let output = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg(if cmd == "id" { "-un" } else { "-s" })
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(|| output("id"))
        .unwrap_or_else(|| "unknown".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| output("hostname"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{machine}")
}

#[cfg(test)]
mod tests {
    use super::utc_timestamp;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_timestamps() {
        let at = |s: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101000000");
        assert_eq!(at(951_782_400), "20000229000000");
        assert_eq!(at(1_735_689_599), "20241231235959");
        assert_eq!(at(1_709_210_096), "20240229123456");
    }
}
