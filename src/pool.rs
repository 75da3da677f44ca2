//! The pool: one [`HostWorker`] per host for the life of the process, and fan-out of a command
//! across hosts with an optional limit on how many run at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::host::HostTarget;
use crate::ssh::config::SshConfig;
use crate::ssh::exec::{ExecOptions, ExecOutput};
use crate::ssh::jump::{self, Jumps, RouteError};
use crate::ssh::worker::{Event, EventKind, HandshakeLimiter, HostWorker, WorkerSettings};
use crate::ssh::SshError;

/// Concurrent handshakes allowed by default: under sshd's default `MaxStartups 10:30:100`,
/// which starts refusing at 10 unauthenticated connections.
pub const DEFAULT_MAX_HANDSHAKES: usize = 8;

/// One host's result of a fan-out.
#[derive(Debug)]
pub struct HostResult {
    /// The host's name.
    pub host: String,
    /// The command as sent (context applied).
    pub command: String,
    /// The output, or why there is none. `None` when the command was never dispatched
    /// (an earlier failure or an interrupt stopped the fan-out).
    pub result: Option<Result<ExecOutput, SshError>>,
}

impl HostResult {
    /// Whether the command ran and succeeded.
    pub fn ok(&self) -> bool {
        matches!(&self.result, Some(Ok(out)) if out.status.success())
    }
}

/// How a fan-out proceeds.
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    /// At most this many hosts at once (`None`: all).
    pub parallel: Option<usize>,
    /// Stop dispatching to further hosts after the first failure.
    pub stop_on_failure: bool,
    /// Deadline per command.
    pub timeout: Option<Duration>,
    /// Pause between batches (`parallel` hosts each), as Capistrano's `wait:`.
    pub wait: Option<Duration>,
    /// Run the commands on a pseudo-terminal (`on(.., #{ pty: true }, ..)`, `--pty`).
    pub pty: bool,
    /// A run's own cancel flag: once set, no further command is dispatched (besides the pool's
    /// Ctrl-C flag, which stops every fan-out). Watch mode gives each run its own, so
    /// cancelling one run leaves the next one and the heartbeat alone.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Once set, in-flight PTY commands are stopped (channel closed: SIGHUP); commands
    /// without a PTY are waited for.
    pub kill: Option<Arc<AtomicBool>>,
    /// Bytes fed to every command's stdin (the sudo password line of an `as_user` command).
    pub stdin: Option<Vec<u8>>,
}

impl FanOut {
    /// Whether this fan-out's own cancel flag is set.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Options for one of this fan-out's commands.
    pub fn exec_options(&self) -> ExecOptions {
        ExecOptions {
            timeout: self.timeout,
            // A terminal would echo the stdin (a sudo password) back into the output.
            pty: self.pty && self.stdin.is_none(),
            stop: self.kill.clone(),
            stdin: self.stdin.clone(),
            ..ExecOptions::default()
        }
    }
}

/// Workers by host name.
pub struct Pool {
    ssh_config: SshConfig,
    settings: WorkerSettings,
    limiter: Arc<HandshakeLimiter>,
    events: Sender<Event>,
    workers: Mutex<HashMap<String, Arc<HostWorker>>>,
    interrupted: Arc<AtomicBool>,
    /// Jump host workers (ProxyJump), one per route, shared by the hosts behind them.
    jumps: Jumps,
    /// `-J/--jump`: jump hosts for every host, replacing `via` and the config's ProxyJump.
    jump: Option<String>,
}

impl Pool {
    /// An empty pool; workers start on [`Pool::ensure`].
    pub fn new(
        ssh_config: SshConfig,
        settings: WorkerSettings,
        max_handshakes: usize,
        events: Sender<Event>,
        interrupted: Arc<AtomicBool>,
    ) -> Self {
        let limiter = Arc::new(HandshakeLimiter::new(max_handshakes));
        Pool {
            jumps: Jumps::new(settings.clone(), limiter.clone(), events.clone()),
            jump: None,
            ssh_config,
            settings,
            limiter,
            events,
            workers: Mutex::new(HashMap::new()),
            interrupted,
        }
    }

    /// Reaches every host through `jump` (`-J`: `bastion`, `a,b`, `user@host:port`, `none`),
    /// whatever a recipe's `via` or the ssh config's `ProxyJump` say.
    pub fn with_jump(mut self, jump: Option<String>) -> Self {
        self.jump = jump;
        self
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<String, Arc<HostWorker>>> {
        // The map stays consistent even if a holder panicked.
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn worker(&self, host: &str) -> Option<Arc<HostWorker>> {
        self.workers().get(host).cloned()
    }

    /// Starts workers (and so connections) for hosts that have none yet, all at once.
    pub fn ensure(&self, hosts: &[HostTarget]) -> std::io::Result<()> {
        let mut workers = self.workers();
        for host in hosts {
            if workers.contains_key(&host.name) {
                continue;
            }
            let worker = match self.start(host)? {
                Ok(worker) => worker,
                // This host's config is refused: it fails alone, the others run.
                Err(error) => HostWorker::refused(&host.name, error, self.events.clone())?,
            };
            workers.insert(host.name.clone(), Arc::new(worker));
        }
        Ok(())
    }

    /// Resolves `host` (`-J` winning over its `via`, which wins over the config's route) and
    /// starts its worker. Outer Err: a route that can never work (a ProxyJump loop), refused
    /// before anything connects; inner Err: why this host alone cannot be connected.
    fn start(&self, host: &HostTarget) -> std::io::Result<Result<HostWorker, SshError>> {
        let mut config = match self.ssh_config.resolve_target(host, self.jump.as_deref()) {
            Ok(config) => config,
            Err(e) => return Ok(Err(SshError::Config(e))),
        };
        if let Some(on) = host.forward_agent {
            config.forward_agent = on;
        }
        if config.forward_agent && config.agent_to_forward().is_none() {
            // See `emit` in the worker: a missing reporter only means nobody listens.
            let _ = self.events.send(Event {
                host: Arc::from(host.name.as_str()),
                at: std::time::Instant::now(),
                kind: EventKind::Warning(format!(
                    "{}: agent forwarding was asked for (ForwardAgent / forward_agent), but \
                     there is no local ssh-agent (SSH_AUTH_SOCK is not set, and neither \
                     IdentityAgent nor ForwardAgent names a socket): commands run without one",
                    host.name
                )),
            });
        }
        let hops = match jump::route(&self.ssh_config, &config) {
            Ok(hops) => hops,
            Err(RouteError::Invalid(e)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: {e}", host.name),
                ))
            }
            Err(RouteError::Hop(e)) => {
                return Ok(Err(SshError::Jump {
                    host: host.name.clone(),
                    jump: e.host.clone(),
                    reason: e.to_string(),
                }))
            }
        };
        let via = self.jumps.via(hops)?;
        HostWorker::spawn_via(
            &host.name,
            config,
            self.settings.clone(),
            self.limiter.clone(),
            self.events.clone(),
            via,
        )
        .map(Ok)
    }

    /// Closes the sessions of hosts not in `keep`.
    pub fn retain(&self, keep: &[HostTarget]) {
        let removed: Vec<Arc<HostWorker>> = {
            let mut workers = self.workers();
            let gone: Vec<String> = workers
                .keys()
                .filter(|name| !keep.iter().any(|h| &h.name == *name))
                .cloned()
                .collect();
            gone.iter().filter_map(|n| workers.remove(n)).collect()
        };
        // Dropped outside the lock: closing a session waits for its thread.
        drop(removed);
        self.jumps.prune();
    }

    /// Names of the hosts with a worker.
    pub fn hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = self.workers().keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs `commands` (host name, command) across their hosts and returns the results in the
    /// same order. Hosts must have been [`ensure`](Pool::ensure)d.
    pub fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        let (tx, rx) = mpsc::channel::<(usize, Result<ExecOutput, SshError>)>();
        let mut results: Vec<HostResult> = commands
            .iter()
            .map(|(host, command)| HostResult {
                host: host.clone(),
                command: command.clone(),
                result: None,
            })
            .collect();
        let limit = how.parallel.unwrap_or(usize::MAX).max(1);
        // With `wait`, hosts go in batches of `limit` with a pause between batches; without,
        // a new host starts as soon as one finishes.
        let batches = how.wait.is_some();
        let (mut next, mut running, mut stop) = (0, 0, false);
        loop {
            let between_batches = batches && running > 0;
            if !stop && !between_batches {
                if let (Some(wait), true) = (how.wait, next > 0 && next < commands.len()) {
                    std::thread::sleep(wait);
                }
                while running < limit && next < commands.len() {
                    if self.interrupted.load(Ordering::SeqCst) || how.cancelled() {
                        stop = true;
                        break;
                    }
                    self.dispatch(&commands[next], next, how, tx.clone());
                    next += 1;
                    running += 1;
                }
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = rx.recv() else {
                break;
            };
            running -= 1;
            let failed = !matches!(&result, Ok(out) if out.status.success());
            results[index].result = Some(result);
            if failed && how.stop_on_failure {
                stop = true;
            }
        }
        results
    }

    /// Runs one command on one host and waits for it; `opts` carries its stdin, deadline, PTY
    /// and stop flag; `quiet` keeps its stdout lines from the reporter.
    pub fn exec_one(
        &self,
        host: &str,
        command: &str,
        opts: ExecOptions,
        quiet: bool,
    ) -> Result<ExecOutput, SshError> {
        let (tx, rx) = mpsc::channel();
        let reply = Box::new(move |r| {
            // The receiver waits right below.
            let _ = tx.send(r);
        });
        match self.worker(host) {
            Some(w) => w.exec(command, opts, quiet, reply),
            None => reply(Err(SshError::Session {
                host: host.to_string(),
                reason: "no session was opened for this host".into(),
            })),
        }
        rx.recv().unwrap_or_else(|_| {
            Err(SshError::Session {
                host: host.to_string(),
                reason: "the host's worker thread has stopped".into(),
            })
        })
    }

    fn dispatch(
        &self,
        (host, command): &(String, String),
        index: usize,
        how: &FanOut,
        tx: Sender<(usize, Result<ExecOutput, SshError>)>,
    ) {
        let reply = Box::new(move |r| {
            // The receiver lives until every dispatched job has replied.
            let _ = tx.send((index, r));
        });
        match self.worker(host) {
            Some(w) => w.exec(command, how.exec_options(), false, reply),
            None => reply(Err(SshError::Session {
                host: host.clone(),
                reason: "no session was opened for this host".into(),
            })),
        }
    }
}
