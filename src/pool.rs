//! The pool: one [`HostWorker`] per host for the life of the process, and fan-out of a command
//! across hosts with an optional limit on how many run at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::dispatch::{self, Skipped, Spread};
use crate::event::EventKind;
use crate::host::HostTarget;
use crate::sink::Sink;
use crate::ssh::config::{HostConfig, SshConfig};
use crate::ssh::exec::{Echo, ExecOptions, ExecOutput};
use crate::ssh::jump::Jumps;
use crate::ssh::limiter::HandshakeLimiter;
use crate::ssh::owner::Via;
use crate::ssh::policy::WorkerSettings;
use crate::ssh::route::{self, Hop, RouteError};
use crate::ssh::worker::{HostWorker, Reply};
use crate::ssh::SshError;
use crate::step_abort::StepAbort;
use crate::stop::Stop;

/// How `host` is reached, as a run reaches it: its configuration resolved from `ssh` (with
/// `jump`, `-J`, and the recipe's `forward_agent` applied) and the jump hosts before it.
/// Errors: [`SshError::Config`] (an ssh config refused for this host or a hop),
/// [`SshError::Route`] (a route that loops or is too long). Connects to nothing: a dry run
/// checks its hosts with it.
pub fn reach(
    ssh: &SshConfig,
    host: &HostTarget,
    jump: Option<&str>,
) -> Result<(HostConfig, Vec<Hop>), SshError> {
    let mut config = ssh.resolve_target(host, jump)?;
    if let Some(on) = host.forward_agent {
        config.forward_agent = on;
    }
    match route::route(ssh, &config) {
        Ok(hops) => Ok((config, hops)),
        Err(RouteError::Invalid(message)) => Err(SshError::Route {
            host: host.name.clone(),
            message,
        }),
        Err(RouteError::Hop(e)) => Err(SshError::hop_refused(&host.name, e)),
    }
}

/// One host's result of a fan-out.
#[derive(Debug)]
pub struct HostResult {
    /// The host's name.
    pub host: String,
    /// The command as sent (context applied).
    pub command: String,
    /// The output, or why there is none. `None` when the command was never dispatched
    /// (see `skipped`).
    pub result: Option<Result<ExecOutput, SshError>>,
    /// Why the command was not dispatched, when `result` is `None`.
    pub skipped: Option<Skipped>,
}

impl HostResult {
    /// `command`'s result on `host` from its fan-out slot. A host that never connected
    /// (`never_connected` says why) failed, whichever host failed before it; a cancelled one
    /// was cancelled. The run's pool and the dry run (a host it would refuse) both read it so.
    pub fn from_slot(
        host: &str,
        command: &str,
        slot: dispatch::Slot<Result<ExecOutput, SshError>>,
        never_connected: impl FnOnce() -> Option<SshError>,
    ) -> Self {
        let (result, skipped) = match slot {
            dispatch::Slot::Done(r) => (Some(r), None),
            dispatch::Slot::Skipped(dispatch::Skipped::Cancelled) => {
                (None, Some(dispatch::Skipped::Cancelled))
            }
            dispatch::Slot::Skipped(why) => match never_connected() {
                Some(e) => (Some(Err(e)), None),
                None => (None, Some(why)),
            },
        };
        HostResult {
            host: host.to_string(),
            command: command.to_string(),
            result,
            skipped,
        }
    }

    /// Whether the command ran and succeeded.
    pub fn ok(&self) -> bool {
        matches!(&self.result, Some(Ok(out)) if out.status.success())
    }
}

/// How a fan-out proceeds.
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    /// Parallel, in sequence or in groups (see [`crate::dispatch`]).
    pub spread: Spread,
    /// Deadline per command.
    pub timeout: Option<Duration>,
    /// Run the commands on a pseudo-terminal (`on(.., #{ pty: true }, ..)`, `--pty`).
    pub pty: bool,
    /// The bound on re-attaching to a command whose connection died (`on(.., #{ reattach: N
    /// }, ..)`); `None`: the run's (`--reattach`).
    pub reattach: Option<Duration>,
    /// A run's own cancel flag: once set, no further command is dispatched (besides the pool's
    /// Ctrl-C flag, which stops every fan-out). Watch mode gives each run its own, so
    /// cancelling one run leaves the next one and the heartbeat alone.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Once one is set, in-flight commands are stopped: a PTY's channel closed (SIGHUP), a
    /// command under the supervisor by its process group (SIGTERM, then SIGKILL); others are
    /// waited for. Each says why (see [`crate::stop`]).
    pub kill: Stop,
    /// Bytes fed to every command's stdin (the sudo password line of an `as_user` command).
    pub stdin: Option<Vec<u8>>,
    /// The command as the recipe wrote it, announced before dispatch (`» web1,web2 $ cmd`).
    pub label: Option<String>,
    /// Which of the commands' events are reported.
    pub echo: Echo,
    /// The commands are one step of a recipe (`on(target, "cmd")`): once one fails, the others
    /// still running are stopped after the same-step grace, as in a closure (see
    /// [`crate::step_abort`]), and come back as [`SshError::CommandStopped`].
    pub step_abort: Option<Arc<StepAbort>>,
    /// How many of the last bytes of each stream a command's result keeps (see
    /// [`ExecOptions::keep`]); `None` all of them.
    pub keep: Option<usize>,
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
            reattach: self.reattach,
            // With stdin (the sudo password line) the terminal's echo is off.
            pty: self.pty,
            stop: self.kill.clone(),
            stdin: self.stdin.clone(),
            echo: self.echo,
            keep: self.keep,
            ..ExecOptions::default()
        }
    }
}

/// A host of the pool: its worker, or why it has none (its configuration is wrong: every
/// command of that host fails with that error, the other hosts run).
enum Slot {
    Worker(Arc<HostWorker>),
    Broken(SshError),
}

/// Ends the workers of `slots` at once: each is asked to end, then each is waited for (a
/// worker's drop waits for its thread, which may spend seconds on its last contact).
fn end_all(slots: impl IntoIterator<Item = Slot>) {
    let slots: Vec<Slot> = slots.into_iter().collect();
    for slot in &slots {
        if let Slot::Worker(w) = slot {
            w.ask_to_end();
        }
    }
    drop(slots);
}

/// Workers by host name.
pub struct Pool {
    ssh_config: SshConfig,
    settings: WorkerSettings,
    limiter: Arc<HandshakeLimiter>,
    events: Sink,
    workers: Mutex<HashMap<String, Slot>>,
    interrupted: Arc<AtomicBool>,
    /// Jump host workers (ProxyJump), one per route, shared by the hosts behind them.
    jumps: Jumps,
    /// `-J/--jump`: jump hosts for every host, replacing `via` and the config's ProxyJump.
    jump: Option<String>,
}

impl Drop for Pool {
    /// Every host's worker ends at once (see [`end_all`]).
    fn drop(&mut self) {
        let slots = std::mem::take(&mut *self.workers());
        end_all(slots.into_values());
    }
}

impl Pool {
    /// An empty pool; workers start on [`Pool::ensure`].
    pub fn new(
        ssh_config: SshConfig,
        settings: WorkerSettings,
        limiter: HandshakeLimiter,
        events: Sink,
        interrupted: Arc<AtomicBool>,
    ) -> Self {
        let limiter = Arc::new(limiter);
        let settings = WorkerSettings {
            interrupted: Some(interrupted.clone()),
            ..settings
        };
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

    fn workers(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // The map stays consistent even if a holder panicked.
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host's worker, or the error every command of the host gets.
    fn worker(&self, host: &str) -> Result<Arc<HostWorker>, SshError> {
        match self.workers().get(host) {
            Some(Slot::Worker(w)) => Ok(w.clone()),
            Some(Slot::Broken(e)) => Err(e.clone()),
            None => Err(SshError::Session {
                host: host.to_string(),
                reason: "no session was opened for this host".into(),
            }),
        }
    }

    /// Why `host` never connected, once its first connection attempt has ended: its
    /// configuration error, or the error its first connection failed with; `None` when it
    /// connected or has no worker.
    pub fn never_connected(&self, host: &str) -> Option<SshError> {
        let worker = match self.workers().get(host) {
            Some(Slot::Worker(w)) => w.clone(),
            Some(Slot::Broken(e)) => return Some(e.clone()),
            None => return None,
        };
        // Asked outside the lock: the answer waits for the connection attempt.
        worker.first_contact()
    }

    /// Starts workers (and so connections) for hosts that have none yet, all at once. A host
    /// whose route is wrong gets no worker: its commands fail with that configuration error.
    /// No handshake starts before every worker has started (see [`HandshakeLimiter::hold`]).
    pub fn ensure(&self, hosts: &[HostTarget]) {
        let _hold = self.limiter.hold();
        let mut workers = self.workers();
        for host in hosts {
            if workers.contains_key(&host.name) {
                continue;
            }
            let slot = match self.start(host) {
                Ok(w) => Slot::Worker(Arc::new(w)),
                Err(e) => {
                    self.events.emit(
                        &Arc::from(host.name.as_str()),
                        EventKind::ConnectFailed {
                            error: e.to_string(),
                            kind: e.kind(),
                        },
                    );
                    Slot::Broken(e)
                }
            };
            workers.insert(host.name.clone(), slot);
        }
    }

    fn start(&self, host: &HostTarget) -> Result<HostWorker, SshError> {
        let (mut config, hops) = reach(&self.ssh_config, host, self.jump.as_deref())?;
        if let Some(why) = crate::ssh::agent::not_forwarded(&config) {
            config.forward_agent = false;
            self.events.emit(
                &Arc::from(host.name.as_str()),
                EventKind::Warning {
                    message: format!(
                        "{}: agent forwarding was asked for (ForwardAgent / forward_agent), \
                         but {why}: commands run without one",
                        host.name
                    ),
                },
            );
        }
        let thread_error = |e: std::io::Error| SshError::Session {
            host: host.name.clone(),
            reason: format!("cannot start its thread: {e}"),
        };
        let via = self
            .jumps
            .via(hops)
            .map_err(thread_error)?
            .map(|j| j as Arc<dyn Via>);
        HostWorker::spawn_via(
            &host.name,
            config,
            self.settings.clone(),
            self.limiter.clone(),
            self.events.clone(),
            via,
        )
        .map_err(thread_error)
    }

    /// Makes sure every host's session works, replacing dead ones with the usual backoff,
    /// whatever the heartbeat setting (see [`crate::ssh::worker::Job::Revive`]); returns once
    /// every host has answered.
    pub fn revive(&self) {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for slot in self.workers().values() {
            if let Slot::Worker(w) = slot {
                let tx = tx.clone();
                w.revive(Box::new(move |alive| {
                    // The receiver waits below for every answer.
                    let _ = tx.send(alive);
                }));
                asked += 1;
            }
        }
        for _ in 0..asked {
            if rx.recv().is_err() {
                break;
            }
        }
    }

    /// Forgets the hosts that never connected (their first connection failed, or their
    /// config could not reach them): the next [`ensure`](Pool::ensure) tries them again, with
    /// known_hosts, keys and config as they are then, as a new `ssh` would (`tether watch`,
    /// before each run; stop 49 tester t70: a host refused once was refused in the same words
    /// on every later run, never tried again, after known_hosts was mended as the refusal
    /// asked).
    pub fn forget_unconnected(&self) {
        let slots: Vec<(String, Option<Arc<HostWorker>>)> = self
            .workers()
            .iter()
            .map(|(name, slot)| match slot {
                Slot::Worker(w) => (name.clone(), Some(w.clone())),
                Slot::Broken(_) => (name.clone(), None),
            })
            .collect();
        // Asked outside the lock: each worker answers on its own thread.
        let never: Vec<String> = slots
            .into_iter()
            .filter(|(_, w)| w.as_ref().is_none_or(|w| w.first_contact().is_some()))
            .map(|(name, _)| name)
            .collect();
        let removed: Vec<Slot> = {
            let mut workers = self.workers();
            never.iter().filter_map(|n| workers.remove(n)).collect()
        };
        // Outside the lock: a worker's drop waits for its thread.
        end_all(removed);
    }

    /// Closes the sessions of hosts not in `keep`.
    pub fn retain(&self, keep: &[HostTarget]) {
        let removed: Vec<Slot> = {
            let mut workers = self.workers();
            let gone: Vec<String> = workers
                .keys()
                .filter(|name| !keep.iter().any(|h| &h.name == *name))
                .cloned()
                .collect();
            gone.iter().filter_map(|n| workers.remove(n)).collect()
        };
        // Outside the lock: closing a session waits for its thread.
        end_all(removed);
        self.jumps.prune();
    }

    /// Names of the hosts with a worker.
    pub fn hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = self.workers().keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs `commands` (host name, command) across their hosts as `how.spread` says and returns
    /// the results in the same order. Hosts must have been [`ensure`](Pool::ensure)d.
    pub fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult> {
        let slots = dispatch::run(
            commands.len(),
            &how.spread,
            &|| self.interrupted.load(Ordering::SeqCst) || how.cancelled(),
            &|| how.kill.refusal().is_some(),
            &|r: &Result<ExecOutput, SshError>| !matches!(r, Ok(out) if out.status.success()),
            |i, done| {
                let (host, command) = &commands[i];
                let mut opts = how.exec_options();
                let abort = how.step_abort.clone();
                // Its one command is the unit of the hosts started with it (see
                // `StepAbort::admit`).
                let unit = dispatch::wave_number(&how.spread, commands.len(), i) as u64;
                if let Some(a) = &abort {
                    opts.stop = opts.stop.or(a.stop_for(host, 0, unit));
                }
                let name = host.clone();
                let reply: Reply = Box::new(move |r| {
                    // Its own failure, not a stop because of another host's.
                    let failed = match &r {
                        Ok(out) => !out.status.success(),
                        Err(e) => !matches!(e, SshError::CommandStopped { .. }),
                    };
                    // Each host's step is its one command: it failed after starting one.
                    if let Some(a) = abort.filter(|_| failed) {
                        a.fail(1, &name);
                    }
                    done.send(r)
                });
                // Work of a nested `on` not yet started when its enclosing step was aborted
                // starts nothing (see `Stop::admit`; stop 47 tester t64: in sequence, a
                // nested `on` started its command on the next host after the abort).
                if let Some(why) = how.kill.admit(unit) {
                    return reply(Err(SshError::stopped_before(host, command, why)));
                }
                match self.worker(host) {
                    Ok(w) => w.exec(command, opts, reply),
                    Err(e) => reply(Err(e)),
                }
            },
        );
        commands
            .iter()
            .zip(slots)
            .map(|((host, command), slot)| {
                HostResult::from_slot(host, command, slot, || self.never_connected(host))
            })
            .collect()
    }

    /// Runs one command on one host and waits for it; `opts` carries its stdin, deadline, PTY,
    /// stop flag and which of its events are reported.
    pub fn exec_one(
        &self,
        host: &str,
        command: &str,
        opts: ExecOptions,
    ) -> Result<ExecOutput, SshError> {
        let (tx, rx) = mpsc::channel();
        let reply = Box::new(move |r| {
            // The receiver waits right below.
            let _ = tx.send(r);
        });
        match self.worker(host) {
            Ok(w) => w.exec(command, opts, reply),
            Err(e) => reply(Err(e)),
        }
        rx.recv().unwrap_or_else(|_| {
            Err(SshError::Session {
                host: host.to_string(),
                reason: "the host's worker thread has stopped".into(),
            })
        })
    }
}
