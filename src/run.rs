//! `tether run`: one command on every selected host, in parallel.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::error::Error;
use crate::fleet::{self, Fleet};
use crate::host::HostTarget;
use crate::pool::FanOut;
use crate::runner;
use crate::settings::Settings;

/// `tether run`'s own options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// With a recipe: select this stage's servers.
    pub stage: Option<String>,
    /// Give up on a host whose command runs longer than this.
    pub timeout: Option<std::time::Duration>,
    /// The command (the words joined with spaces, as `ssh` does).
    pub command: String,
}

/// Runs `opts.command` on the selected hosts.
pub fn run(
    settings: &Settings,
    opts: &RunOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let selection = runner::select(settings, opts.stage.as_deref(), interrupted.clone())?;
    let mut targets: Vec<HostTarget> = Vec::new();
    for t in selection.hosts {
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let command = opts.command.clone();
    if settings.dry_run {
        let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &targets {
            crate::outln!("{:width$} | $ {command}", t.name);
        }
        return Ok(());
    }
    let started = Instant::now();
    let heartbeat = fleet::heartbeat_interval(settings, selection.keepalive);
    let fleet = Fleet::new(settings, heartbeat, interrupted)?;
    fleet.connect(&targets)?;
    let commands: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.name.clone(), command.clone()))
        .collect();
    let how = FanOut {
        parallel: settings.parallel,
        stop_on_failure: false,
        timeout: opts.timeout,
        wait: None,
        pty: settings.pty,
        // Ctrl-C (which the pool checks before each dispatch) also stops PTY commands.
        kill: Some(fleet.interrupted.clone()),
        cancel: None,
        stdin: None,
    };
    let results = fleet.exec(&commands, &how);
    fleet.reporter.summary(&results, started.elapsed());
    fleet::outcome(&results, fleet.interrupted())
}
