//! `tether run`: one command on every selected host, in parallel.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{GlobalArgs, RunArgs};
use crate::error::Error;
use crate::fleet::{self, Fleet};
use crate::host::HostTarget;
use crate::pool::FanOut;

/// Runs `args.command` on the hosts named by `--hosts`.
pub fn run(global: &GlobalArgs, args: &RunArgs, interrupted: Arc<AtomicBool>) -> Result<(), Error> {
    if !global.roles.is_empty() {
        return Err(Error::Usage(
            "--roles needs a recipe with servers and roles; name hosts with --hosts".into(),
        ));
    }
    if global.hosts.is_empty() {
        return Err(Error::Usage(
            "no hosts selected: name them with --hosts h1,h2 (ssh config aliases or user@host:port)"
                .into(),
        ));
    }
    let mut targets: Vec<HostTarget> = Vec::new();
    for name in &global.hosts {
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
    let mut fleet = Fleet::new(global, fleet::heartbeat_interval(global, None), interrupted)?;
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
