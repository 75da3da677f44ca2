//! HostWorker: the one thread that owns a host's `ssh2::Session` for the life of the process.
//!
//! It takes jobs from a channel and runs one at a time. While idle it `poll()`s both its wake-up
//! socket (a job arrived) and the SSH socket (the server sent something, typically a
//! `keepalive@openssh.com` probe that only a libssh2 call will answer); when the server speaks
//! or the heartbeat interval passes, it runs the heartbeat: a `true` no-op on a new channel plus
//! a protocol keepalive. A failed heartbeat means the connection is dead: it reconnects at once,
//! with backoff, requiring the same host key, so the next command finds a working session.
//! Nothing in flight is ever re-sent.

use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::HostConfig;
use super::connect::{poll_fds, Connection};
use super::exec::{self, ExecError, ExecOptions, ExecOutput, Stream};
use super::jump::{self, Jump};
use super::reconnect;
use super::SshError;

/// Heartbeat and reconnect policy shared by every worker of a run.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Idle time after which the heartbeat runs; `None` disables it (`--no-keepalive`).
    pub heartbeat: Option<Duration>,
    /// A heartbeat round trip slower than this means the connection is dead.
    pub heartbeat_timeout: Duration,
    /// Connection attempts when a session is found dead (the first one immediate).
    pub reconnect_attempts: u32,
    /// Upper bound of the backoff between attempts (1, 2, 4 ... s).
    pub backoff_cap: Duration,
}

/// The default heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            heartbeat: Some(DEFAULT_HEARTBEAT),
            heartbeat_timeout: Duration::from_secs(5),
            reconnect_attempts: 4,
            backoff_cap: Duration::from_secs(8),
        }
    }
}

/// Limits concurrent handshakes across all workers, so that a burst of connections never
/// trips sshd's `MaxStartups` (10 unauthenticated connections by default).
#[derive(Debug)]
pub struct HandshakeLimiter {
    free: Mutex<usize>,
    cond: Condvar,
}

impl HandshakeLimiter {
    /// A limiter allowing `n` handshakes at once.
    pub fn new(n: usize) -> Self {
        HandshakeLimiter {
            free: Mutex::new(n.max(1)),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            // The counter stays consistent even if a holder panicked, so a poisoned lock is
            // still safe to use.
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            while *free == 0 {
                free = self.cond.wait(free).unwrap_or_else(|p| p.into_inner());
            }
            *free -= 1;
        }
        let result = f();
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cond.notify_one();
        result
    }
}

/// Something that happened on a host, for the reporter.
#[derive(Debug, Clone)]
pub struct Event {
    /// The host's display name.
    pub host: Arc<str>,
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone)]
pub enum EventKind {
    /// The first connection is up.
    Connected {
        /// TCP + handshake + auth time.
        setup: Duration,
    },
    /// The first connection failed; the host is unreachable for this run.
    ConnectFailed {
        /// Why.
        error: SshError,
    },
    /// A command was sent.
    Started {
        /// The command as the user wrote it.
        command: String,
    },
    /// One line of output.
    Output {
        /// stdout or stderr.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A command ended (successfully or not).
    Finished {
        /// The command.
        command: String,
        /// Its outcome, or the transport error.
        outcome: Result<exec::ExitStatus, String>,
        /// Wall time.
        duration: Duration,
    },
    /// An idle heartbeat succeeded.
    Heartbeat {
        /// Round trip of the `true` no-op.
        rtt: Duration,
        /// Whether the server's own traffic (a probe) triggered it.
        probe: bool,
    },
    /// A dead session was replaced.
    Reconnected {
        /// How the death was noticed.
        reason: String,
        /// Whether the host was idle (heartbeat) or a command was about to use it.
        while_idle: bool,
        /// Time to connect again.
        took: Duration,
    },
    /// A dead session could not be replaced: the host is unreachable from now on.
    Unreachable {
        /// The last error.
        error: SshError,
    },
    /// The heartbeat interval was shortened after an idle session died.
    Learned {
        /// How long the session had been idle when it was found dead.
        died_after: Duration,
        /// The new interval.
        interval: Duration,
    },
    /// Something the user should know (skipped known_hosts lines, recorded keys).
    Warning(String),
    /// For the reporter only: acknowledge once every earlier event has been printed.
    Barrier(Sender<()>),
}

/// Receives a job's result on the worker thread; it must not block.
pub type Reply = Box<dyn FnOnce(Result<ExecOutput, SshError>) + Send>;

/// Work for a host.
pub enum Job {
    /// Run a command.
    Exec {
        /// The full shell command.
        command: String,
        /// stdin, deadline, PTY and stop flag (the worker sets the keepalive).
        opts: ExecOptions,
        /// Keep stdout lines from the reporter (the caller captures them).
        quiet: bool,
        /// Receives the result.
        reply: Reply,
    },
}

/// The handle to a host's worker thread. Dropping it closes the session and joins the thread.
pub struct HostWorker {
    name: Arc<str>,
    jobs: Option<Sender<Job>>,
    wake: UnixStream,
    thread: Option<JoinHandle<()>>,
    /// Set on drop: a reconnect in progress gives up instead of finishing its backoff.
    stop: Arc<AtomicBool>,
}

impl HostWorker {
    /// Starts the worker; it connects at once (bounded by `limiter`).
    pub fn spawn(
        name: &str,
        config: HostConfig,
        settings: WorkerSettings,
        limiter: Arc<HandshakeLimiter>,
        events: Sender<Event>,
    ) -> std::io::Result<Self> {
        Self::spawn_via(name, config, settings, limiter, events, None)
    }

    /// Like [`spawn`](HostWorker::spawn), connecting through the jump host `via` (ProxyJump)
    /// when given: every connection of this host, reconnects included, is a tunnel of it.
    pub fn spawn_via(
        name: &str,
        config: HostConfig,
        settings: WorkerSettings,
        limiter: Arc<HandshakeLimiter>,
        events: Sender<Event>,
        via: Option<Arc<Jump>>,
    ) -> std::io::Result<Self> {
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        let name: Arc<str> = Arc::from(name);
        let stop = Arc::new(AtomicBool::new(false));
        let state = WorkerState {
            name: name.clone(),
            stop: stop.clone(),
            config,
            interval: settings.heartbeat,
            settings,
            limiter,
            events,
            via,
            conn: None,
            failed: None,
            last_alive: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("host {name}"))
            .spawn(move || state.run(jobs_rx, wake_rx))?;
        Ok(HostWorker {
            name,
            jobs: Some(jobs_tx),
            wake,
            thread: Some(thread),
            stop,
        })
    }

    /// A worker for a host that cannot be connected at all (its ssh config is refused for it):
    /// it reports `error` as its connection failure and answers every job with it.
    pub fn refused(name: &str, error: SshError, events: Sender<Event>) -> std::io::Result<Self> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (wake, _wake_rx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        let name: Arc<str> = Arc::from(name);
        let host = name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("host {name}"))
            .spawn(move || {
                // A missing reporter only means nobody is listening.
                let _ = events.send(Event {
                    host,
                    at: Instant::now(),
                    kind: EventKind::ConnectFailed {
                        error: error.clone(),
                    },
                });
                for Job::Exec { reply, .. } in jobs_rx {
                    reply(Err(error.clone()));
                }
            })?;
        Ok(HostWorker {
            name,
            jobs: Some(jobs_tx),
            wake,
            thread: Some(thread),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The host's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues `command` with `opts` (stdin, deadline, PTY, stop flag); `reply` receives the
    /// result on the worker thread.
    pub fn exec(&self, command: &str, opts: ExecOptions, quiet: bool, reply: Reply) {
        self.submit(Job::Exec {
            command: command.to_string(),
            opts,
            quiet,
            reply,
        });
    }

    fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            match jobs.send(job) {
                // A full wake socket already holds a pending wake-up.
                Ok(()) => drop((&self.wake).write(&[1])),
                Err(mpsc::SendError(Job::Exec { reply, .. })) => reply(Err(SshError::Session {
                    host: self.name.to_string(),
                    reason: "the host's worker thread has stopped".into(),
                })),
            }
        }
    }
}

impl Drop for HostWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.jobs.take();
        let _ = (&self.wake).write(&[0]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct WorkerState {
    name: Arc<str>,
    /// The handle was dropped: stop reconnecting.
    stop: Arc<AtomicBool>,
    config: HostConfig,
    settings: WorkerSettings,
    /// The current heartbeat interval: the setting, shortened by `ServerAliveInterval` or by
    /// learning.
    interval: Option<Duration>,
    limiter: Arc<HandshakeLimiter>,
    events: Sender<Event>,
    /// The jump host this host is reached through (ProxyJump), if any.
    via: Option<Arc<Jump>>,
    conn: Option<Connection>,
    /// Set once the host is unreachable for this run.
    failed: Option<SshError>,
    /// Last moment the session was known to work (a command or heartbeat round trip).
    last_alive: Instant,
}

impl WorkerState {
    fn emit(&self, kind: EventKind) {
        // The reporter outliving the workers is the normal case; if it is gone, nobody is
        // listening and the event has no one to inform.
        let _ = self.events.send(Event {
            host: self.name.clone(),
            at: Instant::now(),
            kind,
        });
    }

    fn run(mut self, jobs: Receiver<Job>, wake: UnixStream) {
        if let (Some(ours), Some(server)) = (self.interval, self.config.server_alive_interval) {
            self.interval = Some(ours.min(server));
        }
        match self.connect_pinned(None) {
            Ok(conn) => {
                self.emit(EventKind::Connected {
                    setup: conn.setup_time,
                });
                self.conn = Some(conn);
            }
            Err(error) => {
                self.emit(EventKind::ConnectFailed {
                    error: error.clone(),
                });
                self.failed = Some(error);
            }
        }
        self.last_alive = Instant::now();
        loop {
            match jobs.try_recv() {
                Ok(job) => {
                    self.handle(job);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            match self.wait_idle(&wake) {
                Idle::Wake => drain(&wake),
                Idle::Probe => self.heartbeat(true),
                Idle::Due => self.heartbeat(false),
            }
        }
        if let Some(conn) = self.conn.take() {
            conn.session.set_blocking(true);
            conn.session.set_timeout(2000);
            let _ = conn.session.disconnect(None, "tether done", None);
        }
    }

    fn wait_idle(&self, wake: &UnixStream) -> Idle {
        let conn = self.conn.as_ref().filter(|_| self.interval.is_some());
        let due = match (conn, self.interval) {
            (Some(_), Some(iv)) => Some(self.last_alive + iv),
            _ => None,
        };
        let timeout = match due {
            Some(due) => due.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if timeout.is_zero() {
            return Idle::Due;
        }
        let mut fds = vec![libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(c) = conn {
            fds.push(libc::pollfd {
                fd: c.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if poll_fds(&mut fds, timeout).is_err() {
            return Idle::Due;
        }
        if fds[0].revents != 0 {
            Idle::Wake
        } else if fds.get(1).is_some_and(|f| f.revents != 0) {
            Idle::Probe
        } else if due.is_some_and(|due| Instant::now() >= due) {
            // Only when the interval has really passed: poll also returns early on a signal.
            Idle::Due
        } else {
            Idle::Wake
        }
    }

    fn connect_pinned(&self, pinned: Option<&[u8]>) -> Result<Connection, SshError> {
        let conn = jump::connect_route(
            self.via.as_deref(),
            &self.name,
            &self.config,
            pinned,
            &self.limiter,
            &mut |w| self.emit(EventKind::Warning(w)),
        )?;
        if let Some(iv) = self.interval {
            conn.arm_heartbeat(
                iv,
                self.config.server_alive_count_max,
                self.settings.heartbeat_timeout,
            );
        }
        Ok(conn)
    }

    fn heartbeat(&mut self, probe: bool) {
        let Some(conn) = &self.conn else { return };
        match exec::heartbeat(conn, self.settings.heartbeat_timeout) {
            Ok(rtt) => {
                // Counts as client traffic too; "would block" only means it is queued.
                let _ = conn.session.keepalive_send();
                self.last_alive = Instant::now();
                self.emit(EventKind::Heartbeat { rtt, probe });
            }
            Err(e) => {
                let idle = self.last_alive.elapsed();
                // When the jump host's connection died (taking this host's tunnel with it),
                // this host's server did not drop the idle session: nothing to learn.
                let jump_lost = self
                    .via
                    .as_ref()
                    .is_some_and(|j| j.lost_since(self.last_alive));
                if !jump_lost {
                    self.learn(idle);
                }
                self.replace_session(format!("connection lost while idle ({e})"), true);
            }
        }
    }

    /// An idle session died after `idle`: beat faster for the rest of the run, and say so.
    fn learn(&mut self, idle: Duration) {
        let Some(current) = self.interval else { return };
        if let Some(interval) = reconnect::learned_interval(current, idle) {
            self.interval = Some(interval);
            self.emit(EventKind::Learned {
                died_after: idle,
                interval,
            });
        }
    }

    /// Replaces a dead session (see [`reconnect::with_backoff`]). On failure the host is
    /// unreachable for the rest of the run.
    fn replace_session(&mut self, reason: String, while_idle: bool) -> bool {
        let pinned = self.conn.take().map(|c| c.host_key);
        let outcome =
            reconnect::with_backoff(&self.name, &reason, &self.settings, &self.stop, || {
                self.connect_pinned(pinned.as_deref())
            });
        match outcome {
            reconnect::Outcome::Connected(conn, took) => {
                self.conn = Some(conn);
                self.last_alive = Instant::now();
                self.emit(EventKind::Reconnected {
                    reason,
                    while_idle,
                    took,
                });
                true
            }
            reconnect::Outcome::Stopped => {
                // Nobody will use the session any more (the pool is closing).
                self.failed = Some(SshError::Session {
                    host: self.name.to_string(),
                    reason: format!("{reason}; not reconnected: tether is stopping"),
                });
                false
            }
            reconnect::Outcome::Failed(error) => {
                self.emit(EventKind::Unreachable {
                    error: error.clone(),
                });
                self.failed = Some(error);
                false
            }
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Exec {
                command,
                opts,
                quiet,
                reply,
            } => {
                let result = self.exec(&command, opts, quiet);
                reply(result);
            }
        }
    }

    fn exec(
        &mut self,
        command: &str,
        opts: ExecOptions,
        quiet: bool,
    ) -> Result<ExecOutput, SshError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.emit(EventKind::Started {
            command: command.to_string(),
        });
        let started = Instant::now();
        let timeout = opts.timeout;
        let opts = ExecOptions {
            keepalive: self.interval,
            // Without an agent there is nothing to forward (the pool warned).
            forward_agent: self.config.agent_to_forward(),
            ..opts
        };
        let mut result = self.exec_once(command, &opts, quiet);
        if let Err(ExecError::NotStarted(reason)) = &result {
            if self.interval.is_none() {
                // --no-keepalive shows what tether prevents: the server dropped the idle
                // session, and nothing replaces it.
                result = Err(ExecError::NotStarted(format!(
                    "connection lost while idle: the server closed the session before `{command}` \
                     ({reason}); the heartbeat is off (--no-keepalive)"
                )));
            } else {
                // The command never reached the server: running it on a new session is safe.
                let reason = format!("session found dead before `{command}` ({reason})");
                if self.replace_session(reason, false) {
                    result = self.exec_once(command, &opts, quiet);
                }
            }
        }
        let result = match result {
            Ok(out) => {
                self.last_alive = Instant::now();
                Ok(out)
            }
            Err(ExecError::Deadline(_)) => Err(SshError::CommandTimeout {
                host: self.name.to_string(),
                command: command.to_string(),
                timeout: timeout.unwrap_or_default(),
            }),
            Err(ExecError::Stopped(elapsed)) => Err(SshError::CommandStopped {
                host: self.name.to_string(),
                command: command.to_string(),
                elapsed,
            }),
            // Only this channel was refused; the session is fine.
            Err(ExecError::Refused(reason)) => Err(SshError::Session {
                host: self.name.to_string(),
                reason,
            }),
            Err(ExecError::NotStarted(reason)) => {
                Err(self.failed.clone().unwrap_or_else(|| SshError::Session {
                    host: self.name.to_string(),
                    reason,
                }))
            }
            Err(ExecError::Lost(reason)) => {
                let error = SshError::ConnectionLost {
                    host: self.name.to_string(),
                    command: command.to_string(),
                    elapsed: started.elapsed(),
                    reason: reason.clone(),
                };
                // Reconnect for later work (failure hooks may need the host); the lost command
                // itself is never re-sent.
                self.replace_session(
                    format!("connection lost during a command ({reason})"),
                    false,
                );
                Err(error)
            }
        };
        self.emit(EventKind::Finished {
            command: command.to_string(),
            outcome: match &result {
                Ok(out) => Ok(out.status.clone()),
                Err(e) => Err(e.to_string()),
            },
            duration: started.elapsed(),
        });
        result
    }

    fn exec_once(
        &mut self,
        command: &str,
        opts: &ExecOptions,
        quiet: bool,
    ) -> Result<ExecOutput, ExecError> {
        let Some(conn) = &self.conn else {
            return Err(ExecError::NotStarted("no session".into()));
        };
        let events = &self.events;
        let name = &self.name;
        let result = exec::run(conn, command, opts, &mut |stream, line| {
            if quiet && stream == Stream::Stdout {
                return;
            }
            // See `emit`: a missing reporter only means nobody is listening.
            let _ = events.send(Event {
                host: name.clone(),
                at: Instant::now(),
                kind: EventKind::Output {
                    stream,
                    // A secret (the sudo password) never leaves the worker in output.
                    line: crate::secret::mask(line).into_owned(),
                },
            });
        });
        result.map(|mut out| {
            crate::secret::mask_vec(&mut out.stdout);
            crate::secret::mask_vec(&mut out.stderr);
            out
        })
    }
}

enum Idle {
    Wake,
    Probe,
    Due,
}

fn drain(wake: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
}
