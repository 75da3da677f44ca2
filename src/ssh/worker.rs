//! HostWorker: the one thread that owns a host's `ssh2::Session` for the life of the process.
//!
//! It takes jobs from a channel and runs one at a time. While idle it `poll()`s both its wake-up
//! socket (a job arrived) and the SSH socket (the server sent something, typically a
//! `keepalive@openssh.com` probe that only a libssh2 call will answer); when the server speaks
//! or the heartbeat interval passes, it runs the heartbeat (see `heartbeat.rs`: a protocol
//! keepalive whose TCP acknowledgement is looked for once the heartbeat's deadline has passed,
//! without waiting for it; a channel opened and closed with no command, for a probe or where
//! there is no TCP socket; `true` where the server needs an open channel). A failed heartbeat
//! means the connection is dead: it reconnects at once,
//! with backoff, requiring the same host key, so the next command finds a working session.
//! Nothing in flight is ever re-sent: a command under the supervisor whose connection died is
//! re-attached to on a new session within the `reattach` bound (see `supervisor.rs`), or left
//! to be stopped at the next contact (any new session stops it first), or, failing that, by
//! one last attempt before the worker ends, which names it with how to stop it by hand when
//! even that fails.

use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::HostConfig;
use super::connect::{poll_fds, Connection, WaitError};
use super::exec::{self, Echo, ExecError, ExecOptions, ExecOutput, Supervision};
use super::heartbeat::{self, Beat};
use super::idle_death::{self, IdleDeath};
use super::limiter::HandshakeLimiter;
use super::owner::{Owner, Shared, Via};
use super::policy::WorkerSettings;
use super::reconnect;
use super::supervisor::Placement;
use super::SshError;
use crate::event::{EventKind, Sink, Stream};

/// How old a session must be, and how long idle, before a heartbeat reads its server's limits
/// (see [`heartbeat::read_limits`]).
pub const READ_LIMITS_AFTER: Duration = Duration::from_secs(1);

/// Acknowledged keepalives between two bare-channel heartbeats of a host kept by keepalives: a
/// keepalive's acknowledgement comes from the server's kernel, which answers for a stopped or
/// hung sshd too; a channel needs sshd itself. So a hung sshd is found within four intervals
/// while idle, not at the next command (which would wait for its channel until it gave up).
const KEEPALIVES_PER_CHANNEL: u32 = 3;

/// A session that could not be replaced is tried again by a command that comes at least this
/// long after the failed attempt (earlier ones fail at once: the host is known unreachable).
pub const RETRY_LOST_AFTER: Duration = Duration::from_secs(5);

/// How long the last attempt to reach a host, when tether is about to exit, may take to stop a
/// command left running there when re-attaching to it failed (at most `ConnectTimeout`).
pub const LAST_CONTACT: Duration = Duration::from_secs(5);

/// A command left running under the supervisor when re-attaching to it failed.
struct Orphan {
    /// Its id on the host.
    id: String,
    /// The command.
    command: String,
    /// Its process group and files, as the host said.
    place: Option<Placement>,
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
        /// Receives the result.
        reply: Reply,
    },
    /// Make sure the session works, replacing it (with the usual backoff) if it died,
    /// whatever the heartbeat setting: a run about to clean up (its failure hooks) needs every
    /// host it can get. `reply` gets whether the host has a working session.
    Revive {
        /// Receives the answer.
        reply: Box<dyn FnOnce(bool) + Send>,
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
        events: Sink,
    ) -> std::io::Result<Self> {
        Self::spawn_via(name, config, settings, limiter, events, None)
    }

    /// Like [`spawn`](HostWorker::spawn), connecting through `via` (a jump host, ProxyJump)
    /// when given: every connection of this host, reconnects included, goes through it.
    pub fn spawn_via(
        name: &str,
        config: HostConfig,
        settings: WorkerSettings,
        limiter: Arc<HandshakeLimiter>,
        events: Sink,
        via: Option<Arc<dyn Via>>,
    ) -> std::io::Result<Self> {
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        let name: Arc<str> = Arc::from(name);
        let stop = Arc::new(AtomicBool::new(false));
        let state = WorkerState {
            owner: Owner::new(
                name.clone(),
                &name,
                config,
                via,
                settings,
                Shared { limiter, events },
                stop.clone(),
            ),
            conn: None,
            failed: None,
            lost: None,
            last_alive: Instant::now(),
            beat: None,
            keepalive_sent: None,
            keepalives: 0,
            limits_known: false,
            connected_at: Instant::now(),
            preamble_shown: false,
            direct_said: false,
            orphans: Vec::new(),
            read: Vec::new(),
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

    /// The host's display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues `command` with `opts` (stdin, deadline, PTY, stop flag); `reply` receives the
    /// result on the worker thread.
    pub fn exec(&self, command: &str, opts: ExecOptions, reply: Reply) {
        self.submit(Job::Exec {
            command: command.to_string(),
            opts,
            reply,
        });
    }

    /// Queues a [`Job::Revive`]; `reply` gets whether the host has a working session.
    pub fn revive(&self, reply: Box<dyn FnOnce(bool) + Send>) {
        self.submit(Job::Revive { reply });
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
                Err(mpsc::SendError(Job::Revive { reply })) => reply(false),
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
    /// Connecting, the heartbeat interval, reconnecting.
    owner: Owner,
    conn: Option<Connection>,
    /// Whether what the login shell prints before a command was reported (once per host).
    preamble_shown: bool,
    /// Whether running commands without the supervisor was reported (once per host).
    direct_said: bool,
    /// Commands left running under the supervisor when re-attaching to them failed: stopped
    /// at the next contact with the host, or before the worker ends.
    orphans: Vec<Orphan>,
    /// Ids of supervised commands whose results were read: their directories on the host are
    /// removed by the next command, or when the worker ends.
    read: Vec<String>,
    /// Set when the first connection failed (or tether is stopping): the host is unreachable
    /// for this run.
    failed: Option<SshError>,
    /// Set when the session died and could not be replaced (or, with the heartbeat off, was
    /// not), with when reconnecting last failed: a later command tries again first (failure
    /// hooks need the host), with the usual backoff, unless the last attempt failed less than
    /// [`RETRY_LOST_AFTER`] ago (then it fails at once, as the host is known unreachable).
    lost: Option<(SshError, Option<Instant>)>,
    /// Last moment the session was known to work (a command or heartbeat round trip).
    last_alive: Instant,
    /// What this host's heartbeat runs, once a heartbeat has read the server's limits.
    beat: Option<Beat>,
    /// When the heartbeat sent a keepalive whose acknowledgement is still to be looked for
    /// (at that moment plus the heartbeat's deadline; a command or another heartbeat in
    /// between proves the session and clears it).
    keepalive_sent: Option<Instant>,
    /// Keepalives acknowledged since the last bare-channel heartbeat (see
    /// [`KEEPALIVES_PER_CHANNEL`]).
    keepalives: u32,
    /// Whether that heartbeat read the server's whole config: its idle limits are known (see
    /// [`heartbeat::Limits::read`]).
    limits_known: bool,
    /// When the current session was opened.
    connected_at: Instant,
}

impl WorkerState {
    fn emit(&self, kind: EventKind) {
        self.owner.emit(kind);
    }

    fn run(mut self, jobs: Receiver<Job>, wake: UnixStream) {
        match self.owner.open() {
            Ok(conn) => self.conn = Some(conn),
            Err(error) => self.failed = Some(error),
        }
        self.last_alive = Instant::now();
        self.connected_at = self.last_alive;
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
        if !self.orphans.is_empty() {
            self.last_contact();
        }
        if let Some(conn) = self.conn.take() {
            if !self.read.is_empty() {
                exec::clean_supervised(&conn, &self.read);
            }
            conn.session.set_blocking(true);
            conn.session.set_timeout(2000);
            let _ = conn.session.disconnect(None, "tether done", None);
        }
    }

    fn wait_idle(&self, wake: &UnixStream) -> Idle {
        let every = self.owner.beat_every();
        let conn = self.conn.as_ref().filter(|_| every.is_some());
        // Until the server's limits are read, the first heartbeat that reads them comes after
        // READ_LIMITS_AFTER of idleness, also after a first command: a limit shorter than the
        // interval (UnusedConnectionTimeout 3) must be known before it ends the session.
        let first = |iv: Duration| match self.beat {
            None => iv.min(READ_LIMITS_AFTER),
            Some(_) => iv,
        };
        let due = match (conn, every, self.keepalive_sent) {
            // Its acknowledgement is looked for when the next beat would be due (when that is
            // sooner than the heartbeat's deadline), and, not there yet, at the deadline.
            (Some(_), Some(iv), Some(sent)) => {
                let deadline = sent + self.owner.settings.heartbeat_timeout;
                Some(
                    Some(sent + iv)
                        .filter(|&at| at < deadline && Instant::now() < at)
                        .unwrap_or(deadline),
                )
            }
            (Some(_), Some(iv), None) => Some(self.last_alive + first(iv)),
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
        // Right after login sshd sends a notice (hostkeys-00@openssh.com) that needs no
        // answer. Answering it, as any server traffic, with a heartbeat cost every host a
        // `true` forked on its server within 50 ms of login (a thousand of them while a large
        // fleet is still connecting); the first heartbeat, due READ_LIMITS_AFTER after
        // login, reads what came meanwhile, and answers a `ClientAliveInterval` probe (sent
        // after a second of silence at the soonest) before sshd's next look.
        let young = self.beat.is_none() && self.connected_at.elapsed() < READ_LIMITS_AFTER;
        if let Some(c) = conn.filter(|_| !young) {
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

    fn heartbeat(&mut self, probe: bool) {
        let Some(conn) = &self.conn else { return };
        let timeout = self.owner.settings.heartbeat_timeout;
        // What the socket shows before libssh2 reads (and hides) how it ended.
        let seen = idle_death::peek(conn.fd());
        // A probe is answered by a channel: only a libssh2 call reads it (and the channel
        // proves the round trip, so a keepalive still awaited is no longer looked for).
        let sent = self.keepalive_sent.take().filter(|_| !probe);
        let beat = match self.beat {
            Some(Beat::Keepalive)
                if probe
                    || (sent.is_none() && self.keepalives >= KEEPALIVES_PER_CHANNEL)
                    || !self
                        .owner
                        .beat_every()
                        .is_some_and(|every| heartbeat::keepalive_fits(conn, every)) =>
            {
                Some(Beat::Channel)
            }
            beat => beat,
        };
        // A heartbeat due while the session is younger than READ_LIMITS_AFTER (an interval
        // under a second) runs the `true` that is safe on any server: reading the limits then
        // would delay a run's first command.
        let result = match beat {
            Some(Beat::Keepalive) if sent.is_some() => match heartbeat::keepalive_arrived(conn) {
                // Not yet; the heartbeat's deadline has not passed either.
                Err(WaitError::Timeout) if sent.is_some_and(|at| at.elapsed() < timeout) => {
                    self.keepalive_sent = sent;
                    return;
                }
                arrived => arrived.map(|rtt| (None, Beat::Keepalive, rtt)),
            },
            Some(Beat::Keepalive) => match heartbeat::send_keepalive(conn) {
                Ok(()) => {
                    self.keepalive_sent = Some(Instant::now());
                    return;
                }
                Err(e) => Err(e),
            },
            Some(beat) => heartbeat::run(conn, beat, timeout).map(|rtt| (None, beat, rtt)),
            None if self.connected_at.elapsed() < READ_LIMITS_AFTER => {
                heartbeat::run(conn, Beat::Command, timeout).map(|rtt| (None, Beat::Command, rtt))
            }
            None => heartbeat::read_limits(conn, timeout)
                .map(|(limits, rtt)| (Some(limits), Beat::Limits, rtt)),
        };
        match result {
            Ok((limits, beat, rtt)) => {
                match beat {
                    Beat::Keepalive => self.keepalives += 1,
                    _ => self.keepalives = 0,
                }
                match sent.filter(|_| beat == Beat::Keepalive) {
                    // The session was known to work when the keepalive left.
                    Some(sent) => self.last_alive = sent,
                    None => {
                        // Counts as client traffic too; "would block" only means it is queued.
                        let _ = conn.session.keepalive_send();
                        self.last_alive = Instant::now();
                    }
                }
                self.emit(EventKind::Heartbeat { rtt, probe, beat });
                if let Some(limits) = limits {
                    self.beat = Some(limits.beat);
                    self.limits_known = limits.read;
                    self.owner.limits_read(&limits, conn);
                }
            }
            Err(e) => {
                let idle = self.last_alive.elapsed();
                let death = IdleDeath::of(seen, &e, conn.fd());
                // When the jump host's connection died (taking this host's tunnel with it),
                // this host's server did not drop the idle session: nothing to learn. Nor
                // from a reset or a silence (see `idle_death`), nor from a server whose
                // limits were read: they did not end it.
                let jump_lost = self
                    .owner
                    .via
                    .as_ref()
                    .is_some_and(|j| j.lost_since(self.last_alive));
                if !jump_lost && death.may_be_idle_limit() {
                    if !self.limits_known {
                        self.owner.learn(idle);
                    }
                    // The server ended an idle session: should its config have said a bare
                    // channel keeps it, a limit we could not see (a Match, a changed config)
                    // may have. Run commands.
                    self.beat = Some(Beat::Command);
                }
                let why = death.words().map_or_else(|| e.to_string(), String::from);
                self.replace_session(format!("connection lost while idle ({why})"), true);
            }
        }
    }

    /// Replaces a dead session (see [`reconnect::with_backoff`]). On failure the session
    /// stays lost until the next command tries again.
    fn replace_session(&mut self, reason: String, while_idle: bool) -> bool {
        self.conn = None;
        self.keepalive_sent = None;
        match self.owner.reconnect(&reason, while_idle) {
            reconnect::Outcome::Connected(conn, _) => {
                self.conn = Some(conn);
                self.lost = None;
                self.last_alive = Instant::now();
                self.connected_at = self.last_alive;
                // The first thing a new session does: stop what was left running.
                self.stop_orphans(false);
                true
            }
            reconnect::Outcome::Stopped => {
                // Nobody will use the session any more (the pool is closing).
                self.failed = Some(SshError::Session {
                    host: self.owner.name.to_string(),
                    reason: format!("{reason}; not reconnected: tether is stopping"),
                });
                false
            }
            reconnect::Outcome::Failed(error) => {
                self.lost = Some((error, Some(Instant::now())));
                false
            }
        }
    }

    fn handle(&mut self, job: Job) {
        // What the job does with the session proves it, or finds it dead.
        self.keepalive_sent = None;
        match job {
            Job::Exec {
                command,
                opts,
                reply,
            } => {
                let result = self.exec(&command, opts);
                reply(result);
            }
            Job::Revive { reply } => {
                let alive = self.revive();
                reply(alive);
            }
        }
    }

    /// See [`Job::Revive`].
    fn revive(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let dead = match &self.conn {
            Some(conn) => {
                match heartbeat::run(conn, Beat::Channel, self.owner.settings.heartbeat_timeout) {
                    Ok(_) => {
                        self.last_alive = Instant::now();
                        return true;
                    }
                    Err(e) => format!("session found dead before cleaning up ({e})"),
                }
            }
            None => match &self.lost {
                Some((e, _)) => format!("the session was lost ({e}); reconnecting to clean up"),
                None => "no session; connecting to clean up".into(),
            },
        };
        self.replace_session(dead, true)
    }

    fn exec(&mut self, command: &str, opts: ExecOptions) -> Result<ExecOutput, SshError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some((lost, failed_at)) = &self.lost {
            if failed_at.is_some_and(|at| at.elapsed() < RETRY_LOST_AFTER) {
                return Err(lost.clone());
            }
            // Nothing of this command was sent: reconnecting first is safe.
            let reason = format!("the session was lost ({lost}); reconnecting before `{command}`");
            if !self.replace_session(reason, false) {
                if let Some((e, _)) = &self.lost {
                    return Err(e.clone());
                }
            }
        }
        // Before the command is announced: what was left running goes first.
        self.stop_orphans(false);
        let echo = opts.echo != Echo::Nothing;
        if echo {
            self.emit(EventKind::Started {
                command: command.to_string(),
            });
        }
        let started = Instant::now();
        let timeout = opts.timeout;
        let opts = ExecOptions {
            keepalive: self.owner.interval,
            // Without an agent there is nothing to forward (the pool warned).
            forward_agent: self.owner.config.agent_to_forward(),
            ..opts
        };
        // Transfers (a streamed stdin or stdout) keep their own cleanup; PTY commands are
        // stopped by hanging up their terminal.
        let supervised = !opts.pty
            && opts.echo != Echo::Nothing
            && opts.stdin_from.is_none()
            && opts.stdout_to.is_none();
        let mut sup = supervised.then(|| {
            let mut s = Supervision::default();
            s.done = std::mem::take(&mut self.read);
            s
        });
        let mut result = self.exec_once(command, &opts, sup.as_mut());
        if let Err(ExecError::NotStarted(reason)) = &result {
            if self.owner.interval.is_none() {
                // --no-keepalive shows what tether prevents: the server dropped the idle
                // session, and nothing replaces it for this command. The next command (a
                // failure hook cleaning up) connects again.
                let text = format!(
                    "connection lost while idle: the server closed the session before `{command}` \
                     ({reason}); the heartbeat is off (--no-keepalive)"
                );
                self.conn = None;
                let error = SshError::Session {
                    host: self.owner.name.to_string(),
                    reason: text.clone(),
                };
                self.lost = Some((error, None));
                result = Err(ExecError::NotStarted(text));
            } else {
                // The command never reached the server: running it on a new session is safe.
                let reason = format!("session found dead before `{command}` ({reason})");
                if self.replace_session(reason, false) {
                    result = self.exec_once(command, &opts, sup.as_mut());
                }
            }
        }
        let mut unknown: Option<SshError> = None;
        if let (Err(ExecError::Lost(reason)), Some(s)) = (&result, sup.as_mut()) {
            if s.resumable() {
                let reason = reason.clone();
                match self.reattach(command, &opts, s, started, reason) {
                    // Its duration runs from its real start, not from the re-attach.
                    Ok(resumed) => {
                        result = resumed.map(|mut out| {
                            out.duration = started.elapsed();
                            out
                        })
                    }
                    Err(error) => unknown = Some(error),
                }
            }
        }
        self.report_stop(command, &opts.stop, &result);
        if let Some(s) = &mut sup {
            self.report_supervision(command, s);
            match &result {
                // The supervisor removes `done` once the command ends; this one's directory
                // goes with the next command (its result has been read).
                Ok(_) if unknown.is_none() && s.direct.is_none() && !s.gone => {
                    self.read.push(s.id.clone())
                }
                Ok(_) => {}
                Err(_) => self.read.append(&mut s.done),
            }
        }
        let result = match (unknown, result) {
            (Some(error), _) => Err(error),
            (None, Ok(out)) => {
                self.last_alive = Instant::now();
                Ok(out)
            }
            (None, Err(ExecError::Deadline(..))) => Err(SshError::CommandTimeout {
                host: self.owner.name.to_string(),
                command: command.to_string(),
                timeout: timeout.unwrap_or_default(),
            }),
            // Counted from the command's real start (it may have been re-attached to).
            (None, Err(ExecError::Stopped(_, stopped))) => Err(SshError::CommandStopped {
                hung_up: opts.pty && !stopped.is_some_and(|s| s.signalled),
                host: self.owner.name.to_string(),
                command: command.to_string(),
                elapsed: started.elapsed(),
                // The stop that ended the command is still set (a reason is never unset
                // while a command runs; Ctrl-C's flag is cleared for the failure hooks only
                // after every fan-out has returned).
                why: opts
                    .stop
                    .reason()
                    .unwrap_or(crate::stop::StopReason::Interrupted),
            }),
            // Only this channel was refused (or closed by us), or the long command could not
            // be staged: nothing ran, and the session is fine.
            (
                None,
                Err(
                    ExecError::Refused(reason)
                    | ExecError::Local(reason)
                    | ExecError::NotStaged(reason),
                ),
            ) => Err(SshError::Session {
                host: self.owner.name.to_string(),
                reason,
            }),
            (None, Err(ExecError::NotStarted(reason))) => Err(self
                .failed
                .clone()
                .or_else(|| self.lost.as_ref().map(|(e, _)| e.clone()))
                .unwrap_or_else(|| SshError::Session {
                    host: self.owner.name.to_string(),
                    reason,
                })),
            (None, Err(ExecError::Lost(reason))) => {
                let error = SshError::ConnectionLost {
                    host: self.owner.name.to_string(),
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
        if echo {
            self.emit(exec::finished_event(command, &result, started.elapsed()));
        }
        result
    }

    /// The connection died while `command` ran under the supervisor (`sup`, started at
    /// `started`): connects again (the pinned host key, the usual backoff) within the
    /// re-attach bound and resumes it, as often as it is lost again. `Ok` is the resumed
    /// command's result; `Err` the failure when the bound passed (the command is then an
    /// orphan, stopped at the next contact) or its directory was gone: remote state unknown.
    fn reattach(
        &mut self,
        command: &str,
        opts: &ExecOptions,
        sup: &mut Supervision,
        started: Instant,
        mut reason: String,
    ) -> Result<Result<ExecOutput, ExecError>, SshError> {
        let bound = opts.reattach.unwrap_or(self.owner.settings.reattach);
        loop {
            let lost_at = Instant::now();
            self.conn = None;
            if let Err(e) = self.connect_within(lost_at + bound) {
                self.orphans.push(Orphan {
                    id: sup.id.clone(),
                    command: command.to_string(),
                    place: sup.place.clone(),
                });
                let within = crate::duration::format(bound);
                let reason = format!(
                    "{reason}; not re-attached within {within} ({e}): remote state unknown, the \
                     command may still be running (tether tries to stop it before its next \
                     command on this host, or before it exits)"
                );
                // Not a host known unreachable: the bound was this command's. The next
                // contact reconnects under the usual policy at once (and stops the orphan
                // first), however soon it comes.
                self.lost = Some((
                    SshError::Session {
                        host: self.owner.name.to_string(),
                        reason: format!(
                            "the connection was lost during `{command}` and not re-attached \
                             within {within}"
                        ),
                    },
                    None,
                ));
                return Err(SshError::ConnectionLost {
                    host: self.owner.name.to_string(),
                    command: command.to_string(),
                    elapsed: started.elapsed(),
                    reason,
                });
            }
            self.emit(EventKind::Reattached {
                command: command.to_string(),
                lost_after: lost_at.saturating_duration_since(started),
                took: lost_at.elapsed(),
            });
            let mut rest = opts.clone();
            if let Some(t) = opts.timeout {
                rest.timeout = Some(t.saturating_sub(started.elapsed()));
            }
            match self.exec_once(command, &rest, Some(sup)) {
                Err(ExecError::Lost(again)) if sup.resumable() => reason = again,
                Ok(_) if sup.gone => {
                    return Err(SshError::ConnectionLost {
                        host: self.owner.name.to_string(),
                        command: command.to_string(),
                        elapsed: started.elapsed(),
                        reason: format!(
                            "{reason}; re-attached, but the command's directory on the host \
                             was gone: remote state unknown"
                        ),
                    })
                }
                other => return Ok(other),
            }
        }
    }

    /// Connects again (the pinned host key) with backoff 1, 2, 4 ... s up to the cap, until
    /// `until`; the last error when no attempt worked. Each attempt gives up when `until`
    /// passes, whatever `ConnectTimeout` says; a bound already spent (`--reattach 0`) still
    /// gets one attempt, with the config's `ConnectTimeout`.
    fn connect_within(&mut self, until: Instant) -> Result<(), SshError> {
        let mut delay = Duration::from_secs(1);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.owner.connect_for((!left.is_zero()).then_some(left)) {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.lost = None;
                    self.last_alive = Instant::now();
                    self.connected_at = self.last_alive;
                    return Ok(());
                }
                Err(e) => {
                    let refused = e.kind() == crate::failure::Kind::HostKeyRefused
                        || matches!(e, SshError::Auth { .. } | SshError::AuthCutOff { .. });
                    if refused || Instant::now() + delay >= until {
                        return Err(e);
                    }
                }
            }
            let wake = Instant::now() + delay;
            while Instant::now() < wake {
                if self.owner.stop.load(Ordering::SeqCst) {
                    return Err(SshError::Session {
                        host: self.owner.name.to_string(),
                        reason: "tether is stopping".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            delay = (delay * 2).min(self.owner.settings.backoff_cap);
        }
    }

    /// Stops the commands left running when re-attaching to them failed (see
    /// [`WorkerState::reattach`]), now that the host has a session; reports each. One that
    /// could not be stopped is tried again at the next contact, or, when this is the `last`
    /// (tether exits), named with how to stop it by hand.
    fn stop_orphans(&mut self, last: bool) {
        let Some(conn) = &self.conn else { return };
        let mut kept = Vec::new();
        for orphan in std::mem::take(&mut self.orphans) {
            match exec::stop_supervised(conn, &orphan.id) {
                Ok(how) => self.owner.emit(EventKind::RemoteStopped {
                    command: orphan.command,
                    why: "left running when its connection was lost and re-attaching failed".into(),
                    how,
                }),
                Err(failed) if last => self.left_running(&orphan, &failed),
                Err(_) => kept.push(orphan),
            }
        }
        self.orphans = kept;
    }

    /// tether is about to exit (this worker ends) with commands left running on the host:
    /// one bounded attempt ([`LAST_CONTACT`]) to reach it and stop them; each that stays
    /// running is named with how to stop it by hand.
    fn last_contact(&mut self) {
        if self.conn.is_none() {
            match self.owner.connect_for(Some(LAST_CONTACT)) {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => {
                    let why = format!("the host could not be reached before tether exited: {e}");
                    for orphan in std::mem::take(&mut self.orphans) {
                        self.left_running(&orphan, &why);
                    }
                    return;
                }
            }
        }
        self.stop_orphans(true);
    }

    /// Says that `orphan` may still run on the host, where, and how to stop it by hand, as
    /// stopping it failed (`why`).
    fn left_running(&self, orphan: &Orphan, why: &str) {
        let host = &self.owner.name;
        let (pgid, spool, stop_with) = match &orphan.place {
            Some(Placement { pgid, spool }) => (
                Some(pgid.clone()),
                spool.clone(),
                format!("ssh {host} 'kill -TERM -- -{pgid}; rm -rf {spool}.*'"),
            ),
            // The exec's sh says where before the command starts: not known only when the
            // connection died before that arrived. Its files then say it.
            None => (
                None,
                format!("${{TMPDIR:-/tmp}}/tether-$LOGNAME/{}", orphan.id),
                format!(
                    "ssh {host} 'd=${{TMPDIR:-/tmp}}/tether-$LOGNAME/{}; kill -TERM -- -$(cat $d.p); \
                     rm -rf $d.*'",
                    orphan.id
                ),
            ),
        };
        self.emit(EventKind::RemoteLeftRunning {
            command: orphan.command.clone(),
            why: why.to_string(),
            pgid,
            spool,
            stop_with,
        });
    }

    /// Says once per host that commands run without the supervisor, and what a re-attach
    /// could not recover.
    fn report_supervision(&mut self, command: &str, sup: &Supervision) {
        if let Some(reason) = &sup.direct {
            if !self.direct_said {
                self.direct_said = true;
                self.emit(EventKind::Warning {
                    message: format!(
                        "commands run without tether's supervisor on this host ({reason}): a \
                         command whose connection dies cannot be re-attached to, and stopping \
                         one does not reach it"
                    ),
                });
            }
        }
        if sup.lost != (0, 0) {
            self.emit(EventKind::Warning {
                message: format!(
                    "re-attached to `{command}`, but {} bytes of its stdout and {} of its \
                     stderr were no longer on the host (its spool is bounded) and are missing \
                     from its output",
                    sup.lost.0, sup.lost.1
                ),
            });
        }
    }

    /// Says what stopping `command` on the host did, when it was stopped (by `stop` or its
    /// deadline) and its process group signalled, or that failed.
    fn report_stop(
        &self,
        command: &str,
        stop: &crate::stop::Stop,
        result: &Result<ExecOutput, ExecError>,
    ) {
        let (why, done) = match result {
            Err(ExecError::Deadline(_, Some(done))) => ("its timeout passed".to_string(), done),
            Err(ExecError::Stopped(_, Some(done))) => (
                stop.reason()
                    .unwrap_or(crate::stop::StopReason::Interrupted)
                    .to_string(),
                done,
            ),
            _ => return,
        };
        self.emit(EventKind::RemoteStopped {
            command: command.to_string(),
            why,
            how: done.how.clone(),
        });
    }

    /// Runs `command` on the session (under the supervisor with `sup`), or, with `sup` holding
    /// the streams of a command lost with its connection, resumes it.
    fn exec_once(
        &mut self,
        command: &str,
        opts: &ExecOptions,
        sup: Option<&mut Supervision>,
    ) -> Result<ExecOutput, ExecError> {
        let Some(conn) = &self.conn else {
            return Err(ExecError::NotStarted("no session".into()));
        };
        let owner = &self.owner;
        let mut preamble = exec::Preamble::default();
        let mut on_line = |stream, line: &str| {
            let shown = match opts.echo {
                Echo::All => true,
                Echo::NoStdout => stream == Stream::Stderr,
                Echo::Nothing => false,
            };
            if !shown {
                return;
            }
            owner.emit(EventKind::Output {
                stream,
                // A secret (the sudo password) never leaves the worker in output.
                line: crate::secret::mask(line).into_owned(),
            });
        };
        let result = match sup {
            Some(s) if s.resumable() => exec::resume(conn, s, opts, &mut on_line, &mut preamble),
            sup => exec::run_reporting(conn, command, opts, &mut on_line, &mut preamble, sup),
        };
        if !preamble.is_empty() && !self.preamble_shown {
            self.preamble_shown = true;
            self.owner.emit(EventKind::LoginShellOutput {
                stdout: String::from_utf8_lossy(&preamble.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&preamble.stderr).into_owned(),
            });
        }
        // stdout stays as it came: it is what `capture` returns. Every event is masked as it is
        // sent, and stderr (failure messages quote its tail) here.
        result.map(|mut out| {
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
