//! The hosts of one tether process: their workers (sessions) and the event sink that shows
//! what they do. Built once from the settings; `run`, recipes, `check` and `watch` all go
//! through it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::event::{EventKind, HostEntry};
use crate::failure::{Failure, HostFailure};
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult, Pool};
use crate::settings::Settings;
use crate::sink::Sink;
use crate::ssh::config::{self, ConfigError, SshConfig};
use crate::ssh::limit_cache::LimitCache;
use crate::ssh::limiter::HandshakeLimiter;
use crate::ssh::policy::{Heartbeat, WorkerSettings, DEFAULT_HEARTBEAT};

/// Sessions plus where their events go, for one process.
pub struct Fleet {
    /// Workers by host.
    pub pool: Pool,
    /// The reporter's channel.
    pub sink: Sink,
    /// Set by Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
    announced: Announced,
}

/// The heartbeat from the options: `--no-keepalive` wins, then `--keepalive`, then the
/// recipe's `keepalive` variable, then the default.
pub fn heartbeat(settings: &Settings, recipe: Option<Duration>) -> Heartbeat {
    settings.heartbeat(recipe, DEFAULT_HEARTBEAT)
}

/// The ssh config as `ssh` reads it: the file named by `-F` (or `TETHER_SSH_CONFIG`) alone,
/// else `~/.ssh/config` followed by the system's. For a run with a recipe, see
/// [`crate::runner::Loaded::ssh_config`] (the recipe may name its file).
pub fn load_ssh_config(settings: &Settings) -> Result<SshConfig, ConfigError> {
    load_ssh_config_file(settings.ssh_config.as_deref())
}

/// The ssh config file `file` alone (as `ssh -F`), else `~/.ssh/config` and the system's.
pub fn load_ssh_config_file(file: Option<&Path>) -> Result<SshConfig, ConfigError> {
    SshConfig::load(file, Path::new(config::SYSTEM_CONFIG))
}

/// What a dry run checks without connecting: the hosts of `hosts` that a run would refuse
/// for their ssh config or route (see [`crate::pool::reach`]), by name, with why, each
/// warned about on `sink` in `hosts`' order. A dry run fails them where the run would (see
/// `backend::dry_run`).
pub fn config_refusals(
    ssh: &SshConfig,
    hosts: &[HostTarget],
    jump: Option<&str>,
    sink: &Sink,
) -> Refusals {
    let mut refused = Refusals::new();
    for h in hosts {
        if let Err(e) = crate::pool::reach(ssh, h, jump) {
            sink.emit(
                &Arc::from(h.name.as_str()),
                EventKind::Warning {
                    message: format!("{} (a run would not reach this host)", e.said()),
                },
            );
            refused.insert(h.name.clone(), e);
        }
    }
    refused
}

/// The hosts a run would refuse, by name (see [`config_refusals`]).
pub type Refusals = std::collections::HashMap<String, crate::ssh::SshError>;

/// The failure of a run of `hosts` whose `refused` hosts (see [`config_refusals`]) never
/// connect, in `hosts`' order; `None` when there are none.
pub fn refusal_failure(refused: &Refusals, hosts: &[HostTarget]) -> Option<Failure> {
    let failed: Vec<HostFailure> = hosts
        .iter()
        .filter_map(|h| {
            refused.get(&h.name).map(|e| HostFailure {
                host: h.name.clone(),
                kind: e.kind(),
                message: e.said(),
            })
        })
        .collect();
    (!failed.is_empty()).then(|| Failure::hosts(failed, Vec::new(), hosts.len()))
}

/// The hosts a run has announced in `hosts` events, so that each is announced once: README's
/// `hosts` object is the run's hosts, not each step's.
#[derive(Default)]
pub struct Announced(std::sync::Mutex<std::collections::HashSet<String>>);

impl Announced {
    /// The `hosts` event for those of `hosts` not announced before (in order); `None` when
    /// there are none.
    pub fn event(&self, hosts: &[HostTarget]) -> Option<EventKind> {
        // The set is only ever inserted into: a panic elsewhere leaves it valid.
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let new: Vec<HostTarget> = hosts
            .iter()
            .filter(|h| seen.insert(h.name.clone()))
            .cloned()
            .collect();
        (!new.is_empty()).then(|| hosts_event(&new))
    }

    /// Whether `host` was announced.
    pub fn contains(&self, host: &str) -> bool {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.contains(host)
    }
}

/// The `hosts` event for `hosts`: their names and roles, in order.
pub fn hosts_event(hosts: &[HostTarget]) -> EventKind {
    EventKind::Hosts {
        hosts: hosts
            .iter()
            .map(|h| HostEntry {
                name: h.name.clone(),
                roles: h.roles.clone(),
            })
            .collect(),
    }
}

impl Fleet {
    /// A fleet with no hosts yet, reaching them as `ssh_config` says; its events go to
    /// `sink`.
    pub fn new(
        settings: &Settings,
        ssh_config: SshConfig,
        heartbeat: Heartbeat,
        interrupted: Arc<AtomicBool>,
        sink: Sink,
    ) -> Self {
        let limit_cache = settings.limit_cache.clone().map(|path| {
            let (cache, note) = LimitCache::load(path);
            if let Some(message) = note {
                sink.emit(&Arc::from(""), EventKind::Note { message });
            }
            Arc::new(cache)
        });
        let policy = WorkerSettings {
            limit_cache,
            reattach: settings.reattach,
            ..WorkerSettings::with_heartbeat(heartbeat)
        };
        let pool = Pool::new(
            ssh_config,
            policy,
            HandshakeLimiter::sized_for_this_machine(),
            sink.clone(),
            interrupted.clone(),
        )
        .with_jump(settings.jump.clone());
        Fleet {
            pool,
            sink,
            interrupted,
            announced: Announced::default(),
        }
    }

    /// Opens sessions to `hosts` (in parallel, bounded by the handshake limit). A host that
    /// cannot be reached, or whose configuration is wrong, fails its commands.
    pub fn connect(&self, hosts: &[HostTarget]) {
        if let Some(event) = self.announced.event(hosts) {
            self.sink.emit(&Arc::from(""), event);
        }
        self.pool.ensure(hosts);
    }

    /// Runs one command per (host, command) pair; output is streamed by the reporter.
    pub fn exec(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        let results = self.pool.fan_out(commands, how);
        self.sink.barrier();
        results
    }

    /// Closes every session, once each worker's connection attempt has ended (a handshake
    /// still under way is finished or fails first): what the run opened, it has the outcome
    /// of before its end is reported, the same on every run.
    pub fn close(&self) {
        self.pool.retain(&[]);
        self.sink.barrier();
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}
