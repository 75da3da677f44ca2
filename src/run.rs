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

/// Runs `args.command` on the selected hosts.
pub fn run(global: &GlobalArgs, args: &RunArgs, interrupted: Arc<AtomicBool>) -> Result<(), Error> {
    let selection = runner::select(global, args.stage.as_deref(), interrupted.clone())?;
    let mut targets: Vec<HostTarget> = Vec::new();
    for t in selection.hosts {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let command = args.command.join(" ");
    if global.dry_run {
        let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &targets {
            crate::outln!("{:width$} | $ {command}", t.name);
        }
        return Ok(());
    }
    let started = Instant::now();
    let heartbeat = fleet::heartbeat_interval(global, selection.keepalive);
    let fleet = Fleet::new(global, heartbeat, interrupted)?;
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
        pty: global.pty,
        // Ctrl-C (which the pool checks before each dispatch) also stops PTY commands.
        kill: Some(fleet.interrupted.clone()),
        cancel: None,
        stdin: None,
    };
    let results = fleet.exec(&commands, &how);
    fleet.reporter.summary(&results, started.elapsed());
    fleet::outcome(&results, fleet.interrupted())
}
