//! Declarations: what a recipe's top level (and its stages) say: variables (`set`, `fetch`,
//! `is_set`), servers and roles, stages, tasks and hooks, and the helpers that read them
//! (`primary`, `hosts`, `quote`, `invoke`).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext};

use super::args::{fail, strings, Fallible};
use super::context::Runtime;
use super::host_info::HostInfo;
use super::model::Hook;
use super::names::{both_stage_and_task, named_like_a_subcommand, refused_name, role_name};
use super::selection::{host, hosts_by, PropertyFilter};
use super::servers::{check_connection_props, with_user_and_port};
use crate::command::quote;
use crate::host::HostTarget;

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
