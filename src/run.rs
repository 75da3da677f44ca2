//! `tether run`: one command on every selected host, in parallel.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{GlobalArgs, RunArgs};
use crate::error::Error;
use crate::fleet::{self, Fleet};
use crate::host::HostTarget;
use crate::pool::FanOut;
use crate::runner;

/// The hosts to run on: `--hosts` as given, or, with a recipe, its servers narrowed by
/// `--roles` and `--hosts`.
fn select_hosts(
    global: &GlobalArgs,
    args: &RunArgs,
    interrupted: Arc<AtomicBool>,
) -> Result<Vec<String>, Error> {
    let recipe = runner::recipe_path(global);
    let use_recipe = !global.roles.is_empty() || (global.hosts.is_empty() && recipe.exists());
    if !use_recipe {
        if global.hosts.is_empty() {
            return Err(Error::Usage(
                "no hosts selected: name them with --hosts h1,h2 (ssh config aliases or \
                 user@host:port), or --roles with a recipe"
                    .into(),
            ));
        }
        return Ok(global.hosts.clone());
    }
    let loaded = runner::load(&recipe, runner::load_options(global, interrupted)?)?;
    if let Some(stage) = &args.stage {
        loaded.select_stage(stage)?;
    }
    loaded.validate(&[])?;
    let hosts: Vec<String> = loaded
        .selected_hosts()?
        .into_iter()
        .map(|h| h.name)
        .collect();
    if hosts.is_empty() {
        return Err(Error::Usage(
            "no server of the recipe matches --roles/--hosts".into(),
        ));
    }
    Ok(hosts)
}

/// Runs `args.command` on the selected hosts.
pub fn run(global: &GlobalArgs, args: &RunArgs, interrupted: Arc<AtomicBool>) -> Result<(), Error> {
    let names = select_hosts(global, args, interrupted.clone())?;
    let mut targets: Vec<HostTarget> = Vec::new();
    for name in &names {
        let t = HostTarget::parse(name).map_err(Error::Usage)?;
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let command = args.command.join(" ");
    if global.dry_run {
        let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &targets {
            println!("{:width$} | $ {command}", t.name);
        }
        return Ok(());
    }
    let started = Instant::now();
    let fleet = Fleet::new(global, fleet::heartbeat_interval(global, None), interrupted)?;
    fleet.connect(&targets)?;
    let commands: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.name.clone(), command.clone()))
        .collect();
    let how = FanOut {
        parallel: global.parallel.map(|n| n as usize),
        stop_on_failure: false,
        timeout: args.timeout,
        wait: None,
    };
    let results = fleet.exec(&commands, &how);
    fleet.reporter.summary(&results, started.elapsed());
    fleet::outcome(&results, fleet.interrupted())
}
