//! Declarations: what a recipe's top level (and its stages) say: variables (`set`, `fetch`,
//! `is_set`), servers and roles, stages, tasks and hooks, and the helpers that read them
//! (`primary`, `hosts`, `quote`, `invoke`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext};

use super::args::{fail, strings, Fallible};
use super::context::Runtime;
use super::host_info::HostInfo;
use super::model::{Hook, Recipe};
use crate::command::quote;
use crate::host::HostTarget;

/// Checks the server properties tether reads: `via` (jump hosts, a string as ProxyJump
/// takes), `forward_agent` and `no_release` (booleans; `no_release` is read by the stdlib's
/// release flow).
fn check_connection_props(name: &str, props: &Map) -> Fallible<()> {
    if let Some(v) = props.get("via") {
        let spec = v.clone().into_immutable_string().map_err(|t| {
            format!(
                "server(\"{name}\"): `via` must be a string naming jump hosts (\"bastion\", \
                 \"a,b\", \"user@host:port\", \"none\"), not {t}"
            )
        })?;
        crate::ssh::route::parse_spec(&spec)
            .map_err(|e| format!("server(\"{name}\"): `via`: {e}"))?;
    }
    for key in ["forward_agent", "no_release"] {
        if let Some(v) = props.get(key).filter(|v| !v.is_bool()) {
            return fail(format!(
                "server(\"{name}\"): `{key}` must be true or false, not {}",
                v.type_name()
            ));
        }
    }
    Ok(())
}

/// A server's `user` and `port` properties (Capistrano's `server "web", user: "deploy", port:
/// 2222`), taken out of `props` and written into its name as `deploy@web:2222` says them: the
/// same host either way, reached there (as Capistrano keys servers by name and port). Err where
/// the name gives another user or port, or where either is no user or port. `ssh_options`
/// (Capistrano's net-ssh settings) is refused: tether reads OpenSSH's config instead.
fn with_user_and_port(name: &str, props: &mut Map) -> Fallible<String> {
    if props.contains_key("ssh_options") {
        return fail(format!(
            "server(\"{name}\"): {}",
            super::runtime_vars::SSH_OPTIONS
        ));
    }
    let (user, port) = (props.remove("user"), props.remove("port"));
    if user.is_none() && port.is_none() {
        return Ok(name.to_string());
    }
    let target = HostTarget::parse(name).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
    let user = match user {
        None => target.user.clone(),
        Some(v) => {
            let u = v
                .into_immutable_string()
                .map_err(|t| format!("server(\"{name}\"): `user` must be a string, not {t}"))?;
            match &target.user {
                Some(written) if *written != u.as_str() => {
                    return fail(format!(
                    "server(\"{name}\"): `user: \"{u}\"` contradicts the name's user `{written}`"
                ))
                }
                _ => Some(u.to_string()),
            }
        }
    };
    let port = match port {
        None => target.port,
        Some(v) => {
            // A string is a port as `name:port` reads it: a number or a service name (`ssh`),
            // as ssh's a2port (stop 41 tester t42: `port: "ssh"` refused where `x:ssh` was
            // taken).
            let p = match v.as_int() {
                Ok(n) => u16::try_from(n).ok().filter(|p| *p > 0),
                Err(_) => v
                    .clone()
                    .into_string()
                    .ok()
                    .and_then(|s| crate::ssh_syntax::port::port(&s)),
            }
            .ok_or_else(|| {
                format!(
                    "server(\"{name}\"): `port` must be a port number (1 to 65535) or a service \
                     name, not {v:?}"
                )
            })?;
            match target.port {
                Some(written) if written != p => {
                    return fail(format!(
                        "server(\"{name}\"): `port: {p}` contradicts the name's port {written}"
                    ))
                }
                _ => Some(p),
            }
        }
    };
    let mut written = String::new();
    let host = if target.alias.contains(':') {
        // An IPv6 address: `user@addr:port` cannot say it, ssh's URI can (`ssh://user@[::1]:2222`).
        written.push_str("ssh://");
        let addr = target.alias.trim_start_matches('[').trim_end_matches(']');
        format!("[{addr}]")
    } else {
        target.alias.clone()
    };
    // A user with characters a URI would read otherwise is refused by the parse below, as
    // in any name.
    if let Some(u) = &user {
        written.push_str(u);
        written.push('@');
    }
    written.push_str(&host);
    if let Some(p) = port {
        written.push_str(&format!(":{p}"));
    }
    HostTarget::parse(&written).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
    Ok(written)
}

/// The value `-s KEY=VALUE` gives the recipe, checked as the command line is resolved, before
/// any recipe is read (`tether watch` refuses it at once: no save of the recipe changes it).
/// Err: why, naming the `-s`: a key that is the release flow's own state for one run
/// (`deploy:*`), or a value tether reads that is not one (`keepalive`, `log_file`, `ssh_config`).
pub fn given_value(k: &str, v: &str) -> Result<Dynamic, String> {
    if super::stdlib::is_run_state(k) {
        return Err(format!(
            "-s {k}={v}: `{k}` is the release flow's own state for one run (what \
             deploy:prepare checked, the lock it took), not a setting: it cannot be given"
        ));
    }
    let value = if super::runtime_vars::PATHS.contains(&k) {
        v.into()
    } else {
        override_value(v)
    };
    super::runtime_vars::check(k, &value).map_err(|why| format!("-s {k}={v}: {why}"))?;
    Ok(value)
}

/// A `-s key=value` value: a string exactly as typed, except a decimal integer or a decimal
/// with a fraction written as Rhai prints it (`3`, `-1`, `0.3`, `2.0`; not `007`, `+3`,
/// `1_000`, `1.50`, `.5`, `1e3`) and `true`/`false`, which keep their type. Either way the
/// value prints as typed: `-s branch=0042` deploys branch `0042`, never `42`.
pub fn override_value(text: &str) -> Dynamic {
    if let Ok(n) = text.parse::<i64>() {
        if n.to_string() == text {
            return n.into();
        }
    }
    // Digits, one point, digits: f64's parser takes `inf`, `1e3` and `.5` too.
    let decimal = text
        .strip_prefix('-')
        .unwrap_or(text)
        .split_once('.')
        .is_some_and(|(whole, fraction)| {
            [whole, fraction]
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        });
    if decimal {
        if let Ok(x) = text.parse::<rhai::FLOAT>() {
            let value = Dynamic::from_float(x);
            if value.to_string() == text {
                return value;
            }
        }
    }
    match text {
        "true" => true.into(),
        "false" => false.into(),
        _ => text.into(),
    }
}

/// Registers the declarations on `engine`.
pub fn register(engine: &mut Engine, rt: &Arc<Runtime>) {
    let r = rt.clone();
    engine.register_fn(
        "set",
        move |ctx: NativeCallContext, key: &str, value: Dynamic| -> Fallible<()> {
            let mut recipe = r.recipe();
            if recipe.started && super::runtime_vars::read_by_tether(key) {
                return fail(super::runtime_vars::too_late("set", key));
            }
            if !recipe.locked.contains(key) {
                super::runtime_vars::check(key, &value)
                    .or_else(|why| fail(format!("set(\"{key}\", ...): {why}")))?;
                recipe.origins.insert(
                    key.to_string(),
                    super::args::call_site(&ctx, &r.file, &r.sources),
                );
                recipe.vars.insert(key.to_string(), value);
            }
            Ok(())
        },
    );
    let r = rt.clone();
    engine.register_fn(
        "fetch",
        move |ctx: NativeCallContext, key: &str| -> Fallible<Dynamic> {
            let value = r.recipe().vars.get(key).cloned();
            match value {
                Some(v) => lazy(&ctx, key, super::ask::answer(&r, v)?),
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
            lazy(&ctx, key, super::ask::answer(&r, value.unwrap_or(default))?)
        },
    );
    let r = rt.clone();
    engine.register_fn("is_set", move |key: &str| r.recipe().vars.contains_key(key));
    // `where_set(key)`: where variable `key` was last set, for messages about its value:
    // `FILE:LINE:COL` of the `set` call, `-s KEY=VALUE`, or "" (never set, or set only by
    // `set_if_empty`: a module's default).
    let r = rt.clone();
    engine.register_fn("where_set", move |key: &str| {
        r.recipe().origins.get(key).cloned().unwrap_or_default()
    });
    // `set_secret(key, value)`: a variable whose value is never printed (masked in every
    // output, failure and log); with `-s key=..` the command line's value is the secret.
    let r = rt.clone();
    engine.register_fn(
        "set_secret",
        move |key: &str, value: &str| -> Fallible<()> {
            let mut recipe = r.recipe();
            if recipe.started && super::runtime_vars::read_by_tether(key) {
                return fail(super::runtime_vars::too_late("set_secret", key));
            }
            if recipe.locked.contains(key) {
                if let Some(v) = recipe.vars.get(key) {
                    crate::secret::register(&v.to_string());
                }
                return Ok(());
            }
            crate::secret::register(value);
            super::runtime_vars::check(key, &value.into())
                .or_else(|why| fail(format!("set_secret(\"{key}\", ...): {why}")))?;
            recipe.vars.insert(key.to_string(), value.into());
            Ok(())
        },
    );
    // `secret_env(NAME)`: the environment variable NAME of the tether process, as a secret.
    engine.register_fn("secret_env", |name: &str| -> Fallible<String> {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => {
                crate::secret::register(&v);
                Ok(v)
            }
            Ok(_) => fail(format!("secret_env(\"{name}\"): the environment variable is empty")),
            Err(_) => fail(format!(
                "secret_env(\"{name}\"): the environment variable is not set (export it before running tether)"
            )),
        }
    });

    let r = rt.clone();
    engine.register_fn("server", move |name: &str, props: Map| -> Fallible<()> {
        HostTarget::parse(name).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        let mut props = props;
        let roles = match props.remove("roles") {
            Some(v) => strings(&v, "roles")?,
            None => Vec::new(),
        };
        for role in &roles {
            role_name(role)?;
        }
        check_connection_props(name, &props)?;
        let name = with_user_and_port(name, &mut props)?;
        r.recipe().add_server(&name, &roles, props)?;
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn("server", move |name: &str| -> Fallible<()> {
        HostTarget::parse(name).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        r.recipe().add_server(name, &[], Map::new())?;
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn("role", move |role: &str, hosts: Dynamic| -> Fallible<()> {
        role_name(role)?;
        let hosts = strings(&hosts, "hosts")?;
        for h in &hosts {
            HostTarget::parse(h).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        }
        let mut recipe = r.recipe();
        if hosts.is_empty() && !recipe.empty_roles.iter().any(|e| e == role) {
            recipe.empty_roles.push(role.to_string());
        }
        for h in hosts {
            recipe.add_server(&h, &[role.to_string()], Map::new())?;
        }
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn("stage", move |name: &str, f: FnPtr| -> Fallible<()> {
        if let Some(refused) = refused_name("stage", name) {
            return fail(refused);
        }
        let mut recipe = r.recipe();
        if recipe.tasks.contains_key(name) {
            return fail(both_stage_and_task(name));
        }
        if crate::settings::SUBCOMMANDS.contains(&name) {
            return fail(named_like_a_subcommand("stage", name));
        }
        if recipe.stage_chosen || recipe.started {
            return fail(format!(
                "stage(\"{name}\") here (in a stage, a stage file or a task) comes after the \
                 stage was chosen, so it could never be selected: declare stages at the top \
                 level of the recipe"
            ));
        }
        // A second closure of a stage would silently replace the first and its servers (stop
        // 40 tester t34): a stage is one declaration, as Capistrano's is one file.
        if recipe.stages.iter().any(|(n, _)| n == name) {
            return fail(format!(
                "stage(\"{name}\") is declared again: a stage is declared once; declare its \
                 servers and settings in one closure"
            ));
        }
        recipe.stages.push((name.to_string(), f));
        Ok(())
    });
    let r = rt.clone();
    engine.register_fn(
        "task",
        move |ctx: NativeCallContext, name: &str, description: &str, f: FnPtr| {
            define_task(&r, &ctx, name, description, f)
        },
    );
    let r = rt.clone();
    engine.register_fn(
        "task",
        move |ctx: NativeCallContext, name: &str, f: FnPtr| define_task(&r, &ctx, name, "", f),
    );
    for (which, before) in [("before", true), ("after", false)] {
        let r = rt.clone();
        engine.register_fn(
            which,
            move |ctx: NativeCallContext, task: &str, other: &str| -> Fallible<()> {
                add_hook(&r, &ctx, before, task, Hook::Task(other.to_string()))
            },
        );
        let r = rt.clone();
        engine.register_fn(
            which,
            move |ctx: NativeCallContext, task: &str, f: FnPtr| -> Fallible<()> {
                add_hook(&r, &ctx, before, task, Hook::Closure(f))
            },
        );
    }
    let r = rt.clone();
    engine.register_fn("on_failure", move |f: FnPtr| {
        r.recipe().failure_hooks.push(f)
    });
    // `run_failure()`: in a failure hook or deploy:failed, the failure that ended the run as
    // a `catch` reads it (`err.kind`, `err.hosts` ...); `()` before one.
    let r = rt.clone();
    engine.register_fn("run_failure", move || -> Dynamic {
        r.failure().map_or(Dynamic::UNIT, Dynamic::from)
    });
    // `left_behind(key, text)`: what the run leaves (a lock, an unfinished release) should
    // tether exit at a second signal, before `on_failure` and deploy:failed could clean up;
    // said on stderr as it exits. `left_behind(key, "")` takes it back.
    let r = rt.clone();
    engine.register_fn("left_behind", move |key: &str, text: &str| {
        r.left_behind(key, text)
    });
    engine.register_fn("quote", |s: &str| quote(s));
    // `host_set(names)`: host names (a string or an array of strings) written as folded
    // output writes a set of hosts (`web[01-03,05]`, ClusterShell's nodeset notation: see
    // `hostset::fold`), so that a message naming a thousand hosts stays a line; listed as
    // given where output is not folded (`--no-fold`, JSON), as every host's lines are then.
    let r = rt.clone();
    engine.register_fn("host_set", move |names: Dynamic| -> Fallible<String> {
        let names = strings(&names, "host_set(): the names")?;
        Ok(match r.fold {
            true => crate::hostset::fold(&names),
            false => names.join(", "),
        })
    });
    // `host_selection(names)`: what `--hosts` takes to select `names`, quoted for sh, for a
    // command the recipe prints: their host set where output is folded (a thousand hosts stay
    // a line), else the names as given (see `hostset::selection`).
    let r = rt.clone();
    engine.register_fn(
        "host_selection",
        move |names: Dynamic| -> Fallible<String> {
            let names = strings(&names, "host_selection(): the names")?;
            Ok(quote(&crate::hostset::selection(&names, r.fold)))
        },
    );
    let r = rt.clone();
    engine.register_fn("primary", move |role: &str| -> Fallible<String> {
        let recipe = r.recipe();
        // Of the hosts `--hosts`/`--roles` select (not the shard: the primary is one host of
        // the whole fleet, which one shard holds).
        match recipe.primary(role, |s| {
            r.filters.admits_unsharded(&recipe, &s.name, &s.roles)
        }) {
            Some(s) => Ok(s.name.clone()),
            None => fail(format!("no server has role `{role}`")),
        }
    });
    let r = rt.clone();
    engine.register_fn("host", move |name: &str| host(&r, name));
    // One call for a whole list: per name from a script (`names.map(|n| host(n))`), each
    // call would copy the debugger's call stack (see `runaway::watch`), `map`'s own frame
    // with the whole list in it: a thousand names a thousand times (the stdlib's lists of hosts,
    // 12 s of a 48.7 s dry run of 1000 hosts).
    // A Host value among the names is itself (stop 65 tester t109: refused as
    // `tether::recipe::host_info::HostInfo`).
    let r = rt.clone();
    engine.register_fn(
        "host",
        move |ctx: NativeCallContext, names: Array| -> Fallible<Array> {
            names
                .into_iter()
                .map(|v| match v.read_lock::<ImmutableString>() {
                    Some(name) => host(&r, &name).map(Dynamic::from),
                    None if v.is::<HostInfo>() => Ok(v.clone()),
                    None => fail(format!(
                        "host(): the names must be strings or Host values, not {}",
                        ctx.engine().map_type_name(v.type_name())
                    )),
                })
                .collect()
        },
    );
    // `hosts(target)`: the hosts of a target that --roles/--hosts and --shard select.
    // `unsharded_hosts(target)`: those --roles/--hosts select, in every shard of this run (the
    // stdlib asks whether a shard without release hosts is one part of a fleet that has some).
    // Each also as `hosts(target, #{ select: "primary" })`, `#{ exclude: "no_release" }`: as
    // Capistrano's `roles(:db, select: :primary)`, in one call (the stdlib's `.filter(|name|
    // host(name).props.no_release != true)` called a closure per host, each copying the
    // debugger's call stack with the whole list in it).
    for (name, sharded) in [("hosts", true), ("unsharded_hosts", false)] {
        let r = rt.clone();
        engine.register_fn(name, move |target: Dynamic| -> Fallible<Array> {
            hosts_by(&r, &target, &PropertyFilter::default(), sharded)
        });
        let r = rt.clone();
        engine.register_fn(
            name,
            move |ctx: NativeCallContext, target: Dynamic, options: Map| -> Fallible<Array> {
                let by = PropertyFilter::of(&ctx, &options, name)?;
                hosts_by(&r, &target, &by, sharded)
            },
        );
    }
    let r = rt.clone();
    engine.register_fn(
        "invoke",
        move |ctx: NativeCallContext, name: &str| -> Fallible<()> {
            // A task runs once per run (Rake's rule); an invoke that runs nothing says so, as
            // Capistrano's does: a retry after a failure (`catch` and invoke again) would
            // otherwise pass for one that worked.
            // One still running is a circle, refused by `invoke` itself.
            if r.has_run(name) && !r.running(name) && r.recipe().tasks.contains_key(name) {
                r.report(crate::event::EventKind::Warning {
                    message: format!(
                        "{}: invoke(\"{name}\") runs nothing: task `{name}` already ran in \
                         this run (a task runs once per run)",
                        super::args::call_site(&ctx, &r.file, &r.sources)
                    ),
                });
            }
            // Inside a host's closure, a task's error of the recipe's own is the `Failure`
            // every host that waited for the task gets (see `Runtime::note_task_failed`), not
            // Rhai's map for this host alone (stop 47 tester t65: which host caught which
            // changed from run to run).
            super::tasks::invoke(ctx.engine(), &r, name).map_err(|e| {
                match super::context::host_scope().and_then(|_| r.recipe_failure(&e)) {
                    Some(failure) => super::failures::throw(failure),
                    None => e,
                }
            })
        },
    );
}

/// A task or stage (`what`) named as a subcommand of tether: `tether NAME` runs the
/// subcommand, so it could never be named on the command line.
pub fn named_like_a_subcommand(what: &str, name: &str) -> String {
    format!(
        "a {what} cannot be named `{name}`: `tether {name}` is tether's own subcommand, so the \
         {what} could never be named on the command line; rename it"
    )
}

/// Why `name` cannot name a task or stage (`what`), which the command line names: nothing, a
/// blank or whitespace in it, a control or invisible character, an empty part between `:`s
/// (`a:`, `:a`, `a::b`), a `-` at its start (`tether -x` is an option), or for a stage a `/`;
/// None where it can (stop 41 tester t37: `a:` and `-x`
/// were taken, stages were not checked at all).
pub fn refused_name(what: &str, name: &str) -> Option<String> {
    let why = if name.trim().is_empty() {
        "it is empty"
    } else if name.contains(char::is_whitespace) {
        "it holds whitespace"
    } else if name.chars().any(crate::chars::invisible) {
        "it holds a control or invisible character, which a listing cannot show as typed"
    } else if what == "stage" && name.contains('/') {
        "a stage names a file, deploy/NAME.rhai, and `/` would name another directory"
    } else if name.split(':').any(str::is_empty) {
        "a part between `:`s is empty"
    } else if name.starts_with('-') {
        "it begins with `-`, which the command line reads as an option"
    } else {
        return None;
    };
    Some(format!(
        "invalid {what} name {name:?}: {why}; use words joined by `:` (`deploy:check`)"
    ))
}

/// A name both a stage and a task: `tether NAME` could mean either.
pub fn both_stage_and_task(name: &str) -> String {
    format!("`{name}` is both a stage and a task, so `tether {name}` could mean either: rename one")
}

fn define_task(
    rt: &Runtime,
    ctx: &NativeCallContext,
    name: &str,
    description: &str,
    f: FnPtr,
) -> Fallible<()> {
    if let Some(refused) = refused_name("task", name) {
        return fail(refused);
    }
    let mut recipe = rt.recipe();
    if recipe.stages.iter().any(|(n, _)| n == name) {
        return fail(both_stage_and_task(name));
    }
    if crate::settings::SUBCOMMANDS.contains(&name) {
        return fail(named_like_a_subcommand("task", name));
    }
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
    let at = Some(super::args::caller(ctx, &rt.file, &rt.sources));
    task.bodies.push(super::model::TaskBody { f, at });
    Ok(())
}

fn add_hook(
    rt: &Runtime,
    ctx: &NativeCallContext,
    before: bool,
    task: &str,
    hook: Hook,
) -> Fallible<()> {
    let mut recipe = rt.recipe();
    let site = super::model::HookSite {
        before,
        task: task.to_string(),
        other: match &hook {
            Hook::Task(other) => Some(other.clone()),
            Hook::Closure(_) => None,
        },
        at: Some(super::args::caller(ctx, &rt.file, &rt.sources)),
    };
    // Tasks run: the targets were checked when they started, so this one is checked now, and
    // a task that started has read its hooks already (this one would never run).
    if recipe.started {
        if let Some(problem) = recipe.hook_target_problem(&site) {
            return fail(problem);
        }
        if rt.has_run(task) {
            let kind = if before { "before" } else { "after" };
            let runs = match &site.other {
                Some(other) => format!("\"{other}\""),
                None => "...".to_string(),
            };
            return fail(format!(
                "{kind}(\"{task}\", {runs}): task `{task}` has started in this run, so this hook \
                 would never run: declare it before the task runs (at the top of the recipe)"
            ));
        }
    }
    recipe.hook_sites.push(site);
    let hooks = if before {
        &mut recipe.before
    } else {
        &mut recipe.after
    };
    hooks.entry(task.to_string()).or_default().push(hook);
    Ok(())
}

/// Variable `key`'s value; a closure is called now, with no arguments (lazy variables, as
/// Capistrano's lambdas). One that takes parameters, a closure's or a function's (`Fn("f")`),
/// is said so (stop 44 testers t54, t55: `Function not found: anon$7d23... ()`, `f ()`).
fn lazy(ctx: &NativeCallContext, key: &str, value: Dynamic) -> Fallible<Dynamic> {
    let Some(f) = value.clone().try_cast::<FnPtr>() else {
        return Ok(value);
    };
    f.call_within_context(ctx, ()).map_err(|e| match *e {
        EvalAltResult::ErrorFunctionNotFound(ref called, _) if called.starts_with(f.fn_name()) => {
            format!(
                "variable `{key}` holds a closure that takes parameters, and its value is that \
                 closure called with none: write it `|| ...`"
            )
            .into()
        }
        _ => e,
    })
}

/// The server properties `hosts(target, options)` selects by, as Capistrano's
/// `roles(:db, select: :primary)` and `roles(:app, exclude: :no_release)` (`filter` is
/// `select`): a server passes where each `select` property is true and no `exclude` property
/// is. A property is true as Capistrano takes it: set, and neither `false` nor `()`.
#[derive(Default)]
struct PropertyFilter {
    select: Vec<String>,
    exclude: Vec<String>,
}

impl PropertyFilter {
    /// The filter `options` gives `what` (a function's name, for its errors); Err for an
    /// option other than `select`, `filter`, `exclude`, or a value that is no property name.
    fn of(ctx: &NativeCallContext, options: &Map, what: &str) -> Fallible<Self> {
        let mut by = PropertyFilter::default();
        for (key, value) in options {
            let list = match key.as_str() {
                "select" | "filter" => &mut by.select,
                "exclude" => &mut by.exclude,
                other => {
                    return fail(format!(
                        "{what}(): unknown option `{other}`: it takes select (or filter) and \
                         exclude, each a property name, as Capistrano's roles(:db, select: \
                         :primary)"
                    ))
                }
            };
            let type_name = ctx.engine().map_type_name(value.type_name());
            let not = match value.read_lock::<ImmutableString>() {
                Some(name) if !name.is_empty() => {
                    list.push(name.to_string());
                    continue;
                }
                Some(_) => "an empty string".to_string(),
                None if value.is_unit() => "()".to_string(),
                None if value.is_int()
                    || value.is_float()
                    || value.is_bool()
                    || value.is_char() =>
                {
                    format!("{value} (of type {type_name})")
                }
                None => format!("a value of type {type_name}"),
            };
            return fail(format!(
                "{what}(): `{key}` takes a property name (`{key}: \"primary\"`), not {not}"
            ));
        }
        Ok(by)
    }

    fn admits(&self, server: &super::model::Server) -> bool {
        let set = |p: &String| {
            server
                .props
                .get(p.as_str())
                .is_some_and(|v| !v.is_unit() && v.as_bool() != Ok(false))
        };
        self.select.iter().all(set) && !self.exclude.iter().any(set)
    }
}

/// Hosts of `target` (role names, `all`, host names, `Host` values, or an array of those),
/// narrowed by `--roles`/`--hosts`, in the order named (a role's hosts in server order; see
/// `Recipe::resolve`), each once. A `Host` value (`host(name)`, an `on` closure's `host`)
/// names that host and is never taken for a role of that name.
pub fn select(rt: &Runtime, target: &Dynamic) -> Fallible<Vec<String>> {
    select_admitted(rt, target, |recipe, s| {
        rt.filters.admits(recipe, &s.name, &s.roles)
    })
}

/// The hosts of `target` (as [`select`] takes it) that `by` lets through, of those
/// --roles/--hosts select, and --shard too where `sharded`.
fn hosts_by(rt: &Runtime, target: &Dynamic, by: &PropertyFilter, sharded: bool) -> Fallible<Array> {
    let admit = |recipe: &Recipe, s: &super::model::Server| {
        let named = match sharded {
            true => rt.filters.admits(recipe, &s.name, &s.roles),
            false => rt.filters.admits_unsharded(recipe, &s.name, &s.roles),
        };
        named && by.admits(s)
    };
    Ok(select_admitted(rt, target, admit)?
        .into_iter()
        .map(Dynamic::from)
        .collect())
}

/// The hosts of `target` (as [`select`] takes it) that `admit` lets through.
fn select_admitted(
    rt: &Runtime,
    target: &Dynamic,
    admit: impl Fn(&Recipe, &super::model::Server) -> bool,
) -> Fallible<Vec<String>> {
    let one = |v: &Dynamic| v.read_lock::<HostInfo>().map(|h| h.name().to_string());
    let items: Vec<Dynamic> = match (one(target), target.read_lock::<Array>()) {
        (Some(_), _) => vec![target.clone()],
        (None, Some(items)) => {
            // Every name a string, as one list says it.
            let names: Array = items
                .iter()
                .filter(|v| !v.is::<HostInfo>())
                .cloned()
                .collect();
            strings(&Dynamic::from(names), "on() targets")?;
            items.iter().cloned().collect()
        }
        (None, None) => {
            strings(target, "on() targets")?;
            vec![target.clone()]
        }
    };
    let recipe = rt.recipe();
    let mut chosen: Vec<String> = Vec::new();
    for item in &items {
        match one(item) {
            Some(host) => chosen.push(host),
            None => chosen.extend(
                recipe
                    .resolve(&strings(item, "on() targets")?)
                    .map_err(|e| -> Box<EvalAltResult> { e.into() })?,
            ),
        }
    }
    let mut seen = std::collections::HashSet::new();
    Ok(chosen
        .into_iter()
        .filter(|name| seen.insert(name.clone()))
        .filter(|name| recipe.server(name).is_some_and(|s| admit(&recipe, s)))
        .collect())
}

/// Refuses a role name no target could name alone (stop 40 testers t34, t36): `all`, which
/// `on("all")` and `--roles all` read as every server, an empty or blank name (`--roles web,`
/// selected it), and one with a `,` (`--roles` splits on it).
fn role_name(role: &str) -> Fallible<()> {
    if role == "all" {
        return fail(
            "a role cannot be named `all`: on(\"all\") means every server, so the role could \
             never be named alone",
        );
    }
    if role.trim().is_empty() {
        return fail(format!(
            "a role name cannot be empty or blank, not {role:?}"
        ));
    }
    if role.contains(',') {
        return fail(format!(
            "a role name cannot hold `,` (--roles splits on it), not {role:?}"
        ));
    }
    // Listed as another role, which on() would then not reach (stop 41 tester t42: `web\u{200b}`
    // beside `web`).
    if role
        .chars()
        .any(|c| c.is_whitespace() || crate::chars::invisible(c))
    {
        return fail(format!(
            "a role name cannot hold whitespace, a control or an invisible character, which a \
             listing cannot show as typed, not {role:?}"
        ));
    }
    Ok(())
}

/// `host(name)`: the server `name` as a `Host` value, an `on` target that cannot be taken for
/// a role of the same name (Capistrano tells `on "db"` from `on roles(:db)`).
fn host(rt: &Runtime, name: &str) -> Fallible<HostInfo> {
    let recipe = rt.recipe();
    match recipe.server_named(name)? {
        Some(server) => {
            let name = server.name.clone();
            drop(recipe);
            Ok(HostInfo::new(rt, &name))
        }
        None => fail(format!(
            "no server `{name}` in the recipe{}",
            super::model::suggest(name, recipe.servers().iter().map(|s| s.name.as_str()))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values_print_as_typed() {
        for text in [
            "0042",
            "007",
            "+3",
            "00000000000000",
            "1_000",
            "-0",
            " 3",
            "3 ",
            "0x10",
            "1e3",
            "99999999999999999999",
            "True",
            "",
            "hotfix/1",
        ] {
            let v = override_value(text);
            assert!(v.is_string(), "{text:?} became {}", v.type_name());
            assert_eq!(v.to_string(), text);
        }
        for text in ["0", "3", "-1", "20250101000003", "9223372036854775807"] {
            let v = override_value(text);
            assert_eq!(
                v.as_int().ok().map(|n| n.to_string()).as_deref(),
                Some(text)
            );
        }
        assert_eq!(override_value("true").as_bool(), Ok(true));
        assert_eq!(override_value("false").as_bool(), Ok(false));
    }

    /// A server's `user` and `port` are written into its name, an IPv6 address's as ssh's URI
    /// (stop 36 tester t18: `root@[::1]:2222` was read as a host named `[::1]:2222`).
    #[test]
    fn a_servers_user_and_port_are_written_into_its_name() {
        let named = |name: &str, user: Option<&str>, port: Option<i64>| {
            let mut props = Map::new();
            if let Some(u) = user {
                props.insert("user".into(), u.into());
            }
            if let Some(p) = port {
                props.insert("port".into(), p.into());
            }
            with_user_and_port(name, &mut props).map_err(|e| e.to_string())
        };
        assert_eq!(
            named("web", Some("deploy"), Some(2222)).unwrap(),
            "deploy@web:2222"
        );
        assert_eq!(
            named("deploy@web", None, Some(2222)).unwrap(),
            "deploy@web:2222"
        );
        assert_eq!(named("web", None, None).unwrap(), "web");
        for (name, user, port, alias, want_user, want_port) in [
            ("::1", Some("root"), None, "::1", "root", None),
            ("::1", Some("root"), Some(2222), "::1", "root", Some(2222)),
            (
                "ssh://[::1]:2222",
                Some("root"),
                None,
                "::1",
                "root",
                Some(2222),
            ),
            (
                "ssh://root@[::1]",
                None,
                Some(2222),
                "::1",
                "root",
                Some(2222),
            ),
            (
                "2001:db8::5",
                Some("deploy"),
                Some(22),
                "2001:db8::5",
                "deploy",
                Some(22),
            ),
        ] {
            let written = named(name, user, port).unwrap();
            let t = HostTarget::parse(&written).unwrap();
            assert_eq!(
                t.alias.trim_matches(['[', ']']),
                alias,
                "{name} -> {written}"
            );
            assert_eq!(t.user.as_deref(), Some(want_user), "{name} -> {written}");
            assert_eq!(t.port, want_port, "{name} -> {written}");
        }
        assert!(named("deploy@web", Some("root"), None).is_err());
        assert!(named("web:22", None, Some(2222)).is_err());
    }

    /// A decimal with a fraction, written as Rhai prints it, is a number (stop 35 tester t15:
    /// `-s to=0.3` stayed text, and `on()`'s `timeout` refused it where `-s to=3` worked);
    /// one Rhai would print otherwise stays text, as `007` does.
    #[test]
    fn override_decimals_written_as_rhai_prints_them_are_numbers() {
        for text in ["0.3", "-0.5", "1.5", "2.0", "123.456", "0.001"] {
            let v = override_value(text);
            assert_eq!(v.as_float(), Ok(text.parse::<f64>().unwrap()), "{text}");
            assert_eq!(v.to_string(), text);
        }
        for text in [
            "1.50", ".5", "5.", "+0.5", "1.", "1e-3", "1.0e3", "inf", "NaN", "-inf", "0.30000",
            "1.2.3", "1,5", "-.5", "00.5", "1_0.5",
        ] {
            let v = override_value(text);
            assert!(v.is_string(), "{text:?} became {}", v.type_name());
            assert_eq!(v.to_string(), text);
        }
    }
}
