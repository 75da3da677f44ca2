//! The hosts of `tether run`, `check` and `hosts`: named on the command line, or a recipe's
//! servers narrowed by `--roles` and `--hosts`, with the recipe's heartbeat and ssh config.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::load::{load, load_options, Loaded};
use crate::error::Error;
use crate::event::EventKind;
use crate::fleet;
use crate::host::HostTarget;
use crate::settings::Settings;
use crate::sink::Sink;
use crate::ssh::config::SshConfig;

/// Hosts chosen on the command line for `run`, `check` and `hosts`, the recipe's heartbeat
/// and the ssh config that reaches them.
pub struct Selection {
    /// The hosts.
    pub hosts: Vec<HostTarget>,
    /// The recipe's `keepalive` variable, if a recipe was read.
    pub keepalive: Option<Duration>,
    /// The ssh config (see [`Loaded::ssh_config`]).
    pub ssh_config: SshConfig,
    /// The recipe file, if one was read.
    pub recipe: Option<PathBuf>,
    /// How many hosts were selected before `--shard` (see [`empty_shard`], which the caller
    /// calls where its output says so: after its run's start).
    pub before_shard: usize,
}

impl Selection {
    /// The hosts a run (`tether run`, `tether check`) reaches: each once, an exact repeat
    /// dropped (a target keeps a recipe's `via` and `forward_agent`), and two spellings of one
    /// machine refused (see [`one_machine_twice`]). `tether hosts` lists `hosts` each once, two
    /// spellings of one machine as given.
    pub fn targets(&self, settings: &Settings) -> Result<Vec<HostTarget>, Error> {
        let targets = self.unique();
        one_machine_twice(
            &self.ssh_config,
            &targets,
            settings.jump.as_deref(),
            NamedBy::given(settings),
        )?;
        Ok(targets)
    }

    /// `hosts`, each once, in order: an exact repeat dropped (stop 52 tester t82: `--hosts
    /// 'host[1-2],host[2-3]'` listed host2 twice).
    pub fn unique(&self) -> Vec<HostTarget> {
        // A set beside the list: a search of the list per host made `tether hosts --hosts
        // 'web[1-100000]'` take 33 s (stop 67 tester t112).
        let mut seen = std::collections::HashSet::new();
        self.hosts
            .iter()
            .filter(|t| seen.insert(*t))
            .cloned()
            .collect()
    }
}

/// `--hosts` as given when no recipe is involved; otherwise the recipe's servers (of
/// `stage`, if given) narrowed by `--roles` and `--hosts`.
pub fn select(
    settings: &Settings,
    stage: Option<&str>,
    interrupted: Arc<AtomicBool>,
    sink: Sink,
) -> Result<Selection, Error> {
    let recipe = &settings.recipe;
    // A recipe present is read even when --hosts names the hosts: its `ssh_config`, its
    // servers' users and ports and its `keepalive` apply to them, so that a host is reached
    // the same way whichever way it is selected.
    let use_recipe = !settings.roles.is_empty() || stage.is_some() || recipe.exists();
    if !use_recipe {
        if settings.hosts.is_empty() {
            return Err(Error::Usage(
                "no hosts selected: name them with --hosts h1,h2 (ssh config aliases or \
                 user@host:port), or --roles with a recipe"
                    .into(),
            ));
        }
        let hosts: Vec<HostTarget> = settings
            .hosts
            .iter()
            .filter(|h| settings.shard.is_none_or(|s| s.contains(h)))
            .map(|h| HostTarget::parse(h).map_err(Error::Usage))
            .collect::<Result<_, _>>()?;
        return Ok(Selection {
            hosts,
            keepalive: None,
            ssh_config: fleet::load_ssh_config(settings)?,
            recipe: None,
            before_shard: settings.hosts.len(),
        });
    }
    let loaded = load(recipe, load_options(settings, interrupted, sink.clone())?)?;
    loaded.select_stage(stage)?;
    let hosts = if settings.roles.is_empty() && !settings.hosts.is_empty() {
        // Hosts named outside the recipe are reached as `ssh` would reach them.
        loaded.validate_hooks()?;
        let recipe = loaded.rt.recipe();
        let mut hosts = Vec::new();
        for h in &settings.hosts {
            // A name reaches the server it selects, as a task's `--hosts` does: `web1` the
            // server declared `deploy@web1:2222` (stop 36 testers t18 and t19: it was reached
            // as the ssh config's user and port); and falls in that server's shard, as in a
            // task (stop 50 tester t73: `run --hosts web02 --shard 1/3` took root@web02 by the
            // name typed, the deploy by the server's, two splits of one fleet).
            let (name, target) = match recipe.server_for_filter(h).map_err(Error::Usage)? {
                Some(server) => (&server.name, server.target().map_err(Error::Recipe)?),
                None => (h, HostTarget::parse(h).map_err(Error::Usage)?),
            };
            if settings.shard.is_none_or(|s| s.contains(name)) {
                hosts.push(target);
            }
        }
        hosts
    } else {
        loaded.validate(&[], &[])?;
        loaded.selected_hosts()?
    };
    let before_shard = match settings.roles.is_empty() && !settings.hosts.is_empty() {
        true => settings.hosts.len(),
        false => loaded.selected_before_shard(),
    };
    if before_shard == 0 {
        let stages = if stage.is_none() {
            loaded.stages()
        } else {
            Vec::new()
        };
        return Err(nothing_selected(settings, &stages));
    }
    Ok(Selection {
        hosts,
        keepalive: loaded.keepalive()?,
        ssh_config: loaded.ssh_config()?,
        recipe: Some(recipe.clone()),
        before_shard,
    })
}

/// The error of `--roles`/`--hosts` that select none of the recipe's servers (each known,
/// but no server has both), naming what was given: `tether run` and a task's run alike exit 2,
/// where the task would otherwise run nothing and say done.
/// With nothing given, the recipe has no server where it was read: where its `stages`
/// declare them, it says so (stop 44 tester t55: `tether run -- true` said `no server of the
/// recipe matches ` and nothing after).
pub fn nothing_selected(settings: &Settings, stages: &[String]) -> Error {
    let mut given = Vec::new();
    if !settings.roles.is_empty() {
        given.push(format!("--roles {}", settings.roles.join(",")));
    }
    if !settings.hosts.is_empty() {
        given.push(format!("--hosts {}", settings.hosts.join(",")));
    }
    Error::Usage(match (given.is_empty(), stages.first()) {
        (true, Some(first)) => format!(
            "no stage selected, and the recipe's servers are declared in its stages ({}): \
             select one with --stage {first}",
            stages.join(", ")
        ),
        (true, None) => "the recipe declares no server: name hosts with --hosts".to_string(),
        (false, _) => format!("no server of the recipe matches {}", given.join(" ")),
    })
}

/// Says so when `--shard` leaves none of the `before` hosts selected (`now` left), and
/// returns whether it did: a job of a CI matrix whose shard is empty succeeds, doing nothing
/// (no task, hook or local command runs), as its matrix asked, but not silently.
pub fn empty_shard(settings: &Settings, now: usize, before: usize, sink: &Sink) -> bool {
    let (Some(shard), 0, 1..) = (settings.shard, now, before) else {
        return false;
    };
    {
        sink.emit(
            &Arc::from(""),
            EventKind::Warning {
                message: format!(
                    "--shard {}/{} holds none of the {before} selected host{}: nothing runs",
                    shard.index,
                    shard.count,
                    if before == 1 { "" } else { "s" }
                ),
            },
        );
    }
    true
}

/// Says so when `--shard` runs a `deploy` whose `release_timestamp` (the stdlib's, Capistrano's
/// name) was not given with `-s`: each shard would name its release by its own clock, and the
/// shards of one deploy would make releases of different names (README, Sharding).
pub fn unstamped_shard(settings: &Settings, loaded: &Loaded, tasks: &[String], sink: &Sink) {
    let Some(shard) = settings.shard else {
        return;
    };
    let recipe = loaded.rt.recipe();
    let given = recipe
        .origins
        .get("release_timestamp")
        .is_some_and(|origin| origin.starts_with("-s "));
    if given
        || !recipe.vars.contains_key("release_timestamp")
        || !tasks.iter().any(|t| t == "deploy")
    {
        return;
    }
    sink.emit(
        &Arc::from(""),
        EventKind::Warning {
            message: format!(
                "--shard {}/{} without -s release_timestamp=...: this shard names its release \
                 by its own clock, so the shards of one deploy may make releases of different \
                 names; give every shard the same (README, Sharding)",
                shard.index, shard.count
            ),
        },
    );
}

/// Where the hosts [`one_machine_twice`] looks at were named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// The recipe's servers: a recipe error.
    Recipe,
    /// `--hosts` (or `HOSTS`): a usage error, as an unknown name there is.
    CommandLine,
}

impl NamedBy {
    /// How the hosts of a run `settings` selects were named: `--hosts` without `--roles`,
    /// else the recipe's servers.
    pub fn given(settings: &Settings) -> NamedBy {
        match settings.roles.is_empty() && !settings.hosts.is_empty() {
            true => NamedBy::CommandLine,
            false => NamedBy::Recipe,
        }
    }
}

/// Refuses two of `hosts` that reach one sshd as one user by one route, as the ssh config
/// resolves them, naming both (`server("host1")` beside `server("host1:P")`, P the config's
/// port for host1: stop 40 tester t36), or, named on the command line, two spellings of one
/// name (`--hosts host1,root@host1` or `host1,host1:22` for `tether run`: stop 43 tester t52,
/// "2 ok" on one machine): each command would run there twice. Two names of the ssh config
/// that lead to one machine are two hosts there, as two `ssh` commands would be (a fleet of
/// aliases). Hosts whose config is refused are left to the run, which says why.
pub fn one_machine_twice(
    ssh: &SshConfig,
    hosts: &[HostTarget],
    jump: Option<&str>,
    named_by: NamedBy,
) -> Result<(), Error> {
    let mut seen: std::collections::HashMap<_, &str> = std::collections::HashMap::new();
    for host in hosts {
        let Ok((config, _)) = crate::pool::reach(ssh, host, jump) else {
            continue;
        };
        let destination = format!("{}@{}:{}", config.user, config.hostname, config.port);
        let alias = match named_by {
            NamedBy::Recipe => String::new(),
            NamedBy::CommandLine => config.alias.clone(),
        };
        if let Some(first) = seen.insert((destination.clone(), config.route, alias), &host.name) {
            let second = &host.name;
            let why = format!(
                "are one machine, {destination} by one route as the ssh config resolves them: \
                 each command would run on it twice"
            );
            return Err(match named_by {
                NamedBy::Recipe => Error::Recipe(format!(
                    "servers `{first}` and `{second}` {why}; declare it once"
                )),
                NamedBy::CommandLine => Error::Usage(format!(
                    "--hosts: `{first}` and `{second}` {why}; name it once"
                )),
            });
        }
    }
    Ok(())
}
