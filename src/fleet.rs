//! The hosts of one tether process: their workers (sessions) and the reporter that shows what
//! they do. Built once from the global options; `run`, recipes and watch all go through it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::error::Error;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult, Pool, DEFAULT_MAX_HANDSHAKES};
use crate::report::Reporter;
use crate::ssh::config::{self, SshConfig};
use crate::ssh::worker::{WorkerSettings, DEFAULT_HEARTBEAT};

/// Sessions plus output for one process.
pub struct Fleet {
    /// Workers by host.
    pub pool: Pool,
    /// Output.
    pub reporter: Reporter,
    /// Set by Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
}

/// The heartbeat interval from the options: `--no-keepalive` wins, then `--keepalive`, then
/// the recipe's `keepalive` variable, then the default.
pub fn heartbeat_interval(global: &GlobalArgs, recipe: Option<Duration>) -> Option<Duration> {
    if global.no_keepalive {
        return None;
    }
    Some(global.keepalive.or(recipe).unwrap_or(DEFAULT_HEARTBEAT))
}

/// The ssh config as `ssh` reads it: the file named by `-F` alone, else `~/.ssh/config`
/// followed by the system's.
pub fn load_ssh_config(global: &GlobalArgs) -> Result<SshConfig, Error> {
    Ok(SshConfig::load(
        global.ssh_config.as_deref(),
        Path::new(config::SYSTEM_CONFIG),
    )?)
}

impl Fleet {
    /// A fleet with no hosts yet.
    pub fn new(
        global: &GlobalArgs,
        heartbeat: Option<Duration>,
        interrupted: Arc<AtomicBool>,
    ) -> Result<Self, Error> {
        let ssh_config = load_ssh_config(global)?;
        let reporter = Reporter::start(global.format, global.verbose);
        let settings = WorkerSettings {
            heartbeat,
            ..WorkerSettings::default()
        };
        let pool = Pool::new(
            ssh_config,
            settings,
            DEFAULT_MAX_HANDSHAKES,
            reporter.sender(),
            interrupted.clone(),
        )
        .with_jump(global.jump.clone());
        Ok(Fleet {
            pool,
            reporter,
            interrupted,
        })
    }

    /// Opens sessions to `hosts` (in parallel, bounded by the handshake limit).
    pub fn connect(&self, hosts: &[HostTarget]) -> Result<(), Error> {
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        self.reporter.set_hosts(&names);
        self.pool.ensure(hosts).map_err(|e| match e.kind() {
            // A bad ProxyJump / `via` / -J: a configuration error naming the host.
            std::io::ErrorKind::InvalidInput => Error::Usage(e.to_string()),
            _ => Error::Usage(format!("cannot start host threads: {e}")),
        })
    }

    /// Runs one command per (host, command) pair; output is streamed by the reporter.
    pub fn exec(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        let results = self.pool.fan_out(commands, how);
        self.reporter.barrier();
        results
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// Turns fan-out results into the run's outcome.
pub fn outcome(results: &[HostResult], interrupted: bool) -> Result<(), Error> {
    if interrupted {
        return Err(Error::Interrupted);
    }
    let failed = results.iter().filter(|r| !r.ok()).count();
    if failed == 0 {
        return Ok(());
    }
    let unreachable = results
        .iter()
        .filter(|r| matches!(&r.result, Some(Err(e)) if e.is_connect_failure()))
        .count();
    Err(Error::HostsFailed {
        failed,
        unreachable,
        total: results.len(),
    })
}
