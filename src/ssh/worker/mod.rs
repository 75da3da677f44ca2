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
//! even that fails. What the thread holds is in `state.rs`, the idle side in `idle.rs`,
//! re-attaching and orphans in `reattach.rs`.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::HostConfig;
use super::exec::{self, Echo, ExecError, ExecOptions, ExecOutput, Supervision};
use super::heartbeat::{self, Beat};
use super::limiter::HandshakeLimiter;
use super::owner::{Owner, Shared, Via};
use super::policy::WorkerSettings;
use super::reconnect;
use super::SshError;
use crate::event::{EventKind, Sink, Stream};

mod idle;
mod reattach;
mod state;

pub use idle::READ_LIMITS_AFTER;
use idle::{drain, woken_within, Idle};
use state::WorkerState;

/// A session that could not be replaced is tried again by a command that comes at least this
/// long after the failed attempt (earlier ones fail at once: the host is known unreachable).
pub const RETRY_LOST_AFTER: Duration = Duration::from_secs(5);

/// Receives a job's result on the worker thread; it must not block.
pub type Reply = Box<dyn FnOnce(Result<ExecOutput, SshError>) + Send>;

/// Work for a host.
pub enum Job {
    /// Run a command.
    Exec {
        /// The full shell command.
        command: String,
        /// stdin, deadline, PTY and stop flag (the worker sets the keepalive); boxed, as the
        /// other jobs are a pointer or two.
        opts: Box<ExecOptions>,
        /// Receives the result.
        reply: Reply,
        /// When it was asked: a timeout counts from then while the session is replaced.
        asked: Instant,
    },
    /// Make sure the session works, replacing it (with the usual backoff) if it died,
    /// whatever the heartbeat setting: a run about to clean up (its failure hooks) needs every
    /// host it can get. `reply` gets whether the host has a working session.
    Revive {
        /// Receives the answer.
        reply: Box<dyn FnOnce(bool) + Send>,
    },
    /// Say how the first connection ended (the worker takes jobs once it has): `reply` gets
    /// the error of a host that never connected, `None` when it did.
    FirstContact {
        /// Receives the answer.
        reply: Box<dyn FnOnce(Option<SshError>) + Send>,
    },
}

impl Job {
    /// A command with a timeout: an idle session's reconnect gives way to it.
    fn timed(&self) -> bool {
        matches!(self, Job::Exec { opts, .. } if opts.timeout.is_some())
    }
}

/// The handle to a host's worker thread. Dropping it closes the session and joins the thread.
pub struct HostWorker {
    name: Arc<str>,
    /// Taken when the worker is asked to end (see [`HostWorker::ask_to_end`]).
    jobs: Mutex<Option<Sender<Job>>>,
    wake: UnixStream,
    thread: Option<JoinHandle<()>>,
    /// Set on drop: a reconnect in progress gives up instead of finishing its backoff.
    stop: Arc<AtomicBool>,
    /// Commands with a timeout sent and not yet taken by the worker.
    timed_queued: Arc<AtomicUsize>,
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
        if let Some(v) = &via {
            v.watch_tunnel_limit(wake.try_clone()?);
        }
        let name: Arc<str> = Arc::from(name);
        let stop = Arc::new(AtomicBool::new(false));
        let timed_queued = Arc::new(AtomicUsize::new(0));
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
            kernel_deadline: false,
            closed_while_idle: 0,
            keepalives: 0,
            limits_known: false,
            connected_at: Instant::now(),
            login_unread: false,
            preamble_shown: false,
            direct_said: false,
            no_bash_said: false,
            orphans: Vec::new(),
            read: Vec::new(),
            timed_queued: timed_queued.clone(),
            dead_idle: None,
            left_on_terminals: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("host {name}"))
            .spawn(move || state.run(jobs_rx, wake_rx))?;
        Ok(HostWorker {
            name,
            jobs: Mutex::new(Some(jobs_tx)),
            wake,
            thread: Some(thread),
            stop,
            timed_queued,
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
            opts: Box::new(opts),
            reply,
            asked: Instant::now(),
        });
    }

    /// Queues a [`Job::Revive`]; `reply` gets whether the host has a working session.
    pub fn revive(&self, reply: Box<dyn FnOnce(bool) + Send>) {
        self.submit(Job::Revive { reply });
    }

    /// How the host's first connection ended, once it has (see [`Job::FirstContact`]): its
    /// error when it never connected.
    pub fn first_contact(&self) -> Option<SshError> {
        let (tx, rx) = mpsc::channel();
        self.submit(Job::FirstContact {
            reply: Box::new(move |failed| {
                // The receiver waits below.
                let _ = tx.send(failed);
            }),
        });
        rx.recv().ok().flatten()
    }

    fn submit(&self, job: Job) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(jobs) = jobs {
            // Counted before it can be taken.
            if job.timed() {
                self.timed_queued.fetch_add(1, Ordering::SeqCst);
            }
            match jobs.send(job) {
                // A full wake socket already holds a pending wake-up.
                Ok(()) => drop((&self.wake).write(&[1])),
                Err(mpsc::SendError(Job::Exec { reply, .. })) => reply(Err(SshError::Session {
                    host: self.name.to_string(),
                    reason: "the host's worker thread has stopped".into(),
                })),
                Err(mpsc::SendError(Job::Revive { reply })) => reply(false),
                Err(mpsc::SendError(Job::FirstContact { reply })) => reply(None),
            }
        }
    }
}

impl HostWorker {
    /// Asks the worker to end, without waiting for it: its last contact with the host (a
    /// command left running there to stop) and the clean-up of its session follow in its own
    /// thread; dropping it waits for them. Whoever ends many workers asks them all first, so
    /// that they end at once, not one after another (stop 51 tester t78: the last contact of
    /// three unreachable hosts took 5 s each in turn, 13.6 s after a SIGTERM; README: 5 s in
    /// all).
    pub fn ask_to_end(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = (&self.wake).write(&[0]);
    }
}

impl Drop for HostWorker {
    fn drop(&mut self) {
        self.ask_to_end();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long a session with no supervisor's files to remove has to answer at the run's end
/// (as long as the exec that removes them has: see `exec::clean_supervised`).
const LAST_ANSWER: Duration = Duration::from_secs(3);

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
        self.login_unread = self.conn.is_some();
        loop {
            match jobs.try_recv() {
                Ok(job) => {
                    if job.timed() {
                        self.timed_queued.fetch_sub(1, Ordering::SeqCst);
                    }
                    self.handle(job);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            // The reconnect the command did not need (stopped before it was sent) goes on.
            if let Some(reason) = self.dead_idle.take() {
                self.replace_session(reason, true, true);
                continue;
            }
            // A standby is kept for a command that comes soon (the recipe's next one), and
            // closed before the idle session's heartbeats, which it would change, resume.
            if let Some(left) = self.conn.as_ref().and_then(exec::standby_left) {
                if woken_within(&wake, left) {
                    drain(&wake);
                } else if let Some(conn) = &self.conn {
                    exec::close_standby(conn);
                }
                continue;
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
            // A session that does not answer now is lost, whatever the run believed: said,
            // and not waited for any longer (stop 46 tester t61: a hung idle host held the
            // run's end 17 s unsaid, then was summed up as holding its session). Asked by the
            // exec that removes the supervisor's files, or, with none (commands on a terminal
            // only, or none at all), by a bare channel (the review of stop 46: such a host was
            // not asked).
            let answered = match self.read.is_empty() {
                false => exec::clean_supervised(&conn, &self.read).map_err(|e| e.to_string()),
                true => heartbeat::run(&conn, Beat::Channel, LAST_ANSWER)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = answered {
                self.emit(EventKind::SessionLost {
                    reason: format!("no answer from the session at the run's end: {e}"),
                    while_idle: true,
                });
                return;
            }
            conn.disconnect();
        }
    }

    /// Replaces a dead session (see [`reconnect::with_backoff`]). On failure the session
    /// stays lost until the next command tries again.
    fn replace_session(&mut self, reason: String, while_idle: bool, give_way: bool) -> bool {
        self.conn = None;
        self.keepalive_sent = None;
        self.kernel_deadline = false;
        let timed = self.timed_queued.clone();
        let waiting = move || give_way && timed.load(Ordering::SeqCst) > 0;
        if waiting() {
            self.dead_idle = Some(reason);
            return false;
        }
        match self
            .owner
            .reconnect(&reason, while_idle, std::rc::Rc::new(waiting))
        {
            reconnect::Outcome::Connected(conn, _) => {
                self.conn = Some(conn);
                self.lost = None;
                self.last_alive = Instant::now();
                self.connected_at = self.last_alive;
                self.login_unread = true;
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
            reconnect::Outcome::GaveWay => {
                self.dead_idle = Some(reason);
                false
            }
        }
    }

    /// Replaces a dead session (after `reason`) for `command`, which nothing of was sent yet:
    /// where it has a timeout, within that (counted from `since`, when it was asked) or its
    /// re-attach bound, whichever ends first (a stop ends it at once), as re-attaching is (see
    /// `connect_within`); else under the usual policy (see [`replace_session`]). Whether a
    /// session came; where none did within that bound, the host is lost until its next
    /// contact, which tries again at once.
    ///
    /// [`replace_session`]: Self::replace_session
    fn reconnect_for(
        &mut self,
        command: &str,
        reason: String,
        while_idle: bool,
        opts: &ExecOptions,
        since: Instant,
    ) -> bool {
        let Some(timeout) = opts.timeout else {
            return self.replace_session(reason, while_idle, false);
        };
        self.conn = None;
        self.keepalive_sent = None;
        self.kernel_deadline = false;
        let begun = Instant::now();
        let reattach = opts.reattach.unwrap_or(self.owner.settings.reattach);
        let (until, bound, named) = match since + timeout <= begun + reattach {
            true => (
                since + timeout,
                super::config::ConnectBound::Timeout(timeout),
                format!(
                    "the {} timeout of `{command}`",
                    crate::duration::format(timeout)
                ),
            ),
            false => (
                begun + reattach,
                super::config::ConnectBound::Reattach(reattach),
                format!("the {} re-attach bound", crate::duration::format(reattach)),
            ),
        };
        // Spent while the worker was busy (finding the session dead): no attempt, which would
        // take its whole ConnectTimeout.
        let connected = match Instant::now() < until {
            true => self.connect_within(until, bound, &opts.stop),
            false => Err(SshError::Session {
                host: self.owner.name.to_string(),
                reason: "it passed before the session could be replaced".into(),
            }),
        };
        match connected {
            Ok(()) => {
                self.emit(EventKind::Reconnected {
                    reason,
                    while_idle,
                    took: begun.elapsed(),
                });
                true
            }
            // Nothing needs the session now: an idle one is reconnected as usual.
            Err(_) if opts.stop.reason().is_some() => {
                if while_idle {
                    self.dead_idle = Some(reason);
                }
                false
            }
            Err(error) => {
                let error = SshError::Session {
                    host: self.owner.name.to_string(),
                    reason: format!(
                        "{reason}; not connected again within {named}: {}",
                        error.said_for(&self.owner.name)
                    ),
                };
                self.emit(EventKind::Unreachable {
                    error: error.to_string(),
                });
                self.lost = Some((error, None));
                false
            }
        }
    }

    fn handle(&mut self, job: Job) {
        if let Job::FirstContact { reply } = job {
            return reply(self.failed.clone());
        }
        self.leave_idle();
        match job {
            Job::Exec {
                command,
                opts,
                reply,
                asked,
            } => {
                let result = self.exec(&command, *opts, asked);
                reply(result);
            }
            Job::Revive { reply } => {
                let alive = self.revive();
                reply(alive);
            }
            Job::FirstContact { reply } => reply(self.failed.clone()),
        }
    }

    /// See [`Job::Revive`].
    fn revive(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        if let Some(reason) = self.dead_idle.take() {
            return self.replace_session(reason, true, false);
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
                // After a signal, one that failed to reconnect a moment ago is not tried
                // again: whoever sent the signal may send SIGKILL next (stop 45 tester t57: a
                // blackholed host's two reconnects of 5 s each, one after the other, held a
                // SIGTERM's exit).
                Some((_, Some(at)))
                    if crate::interrupt::signalled() && at.elapsed() < RETRY_LOST_AFTER =>
                {
                    return false;
                }
                Some((e, _)) => format!(
                    "the session was lost ({}); reconnecting to clean up",
                    e.said_for(&self.owner.name)
                ),
                None => "no session; connecting to clean up".into(),
            },
        };
        self.replace_session(dead, true, false)
    }

    fn exec(
        &mut self,
        sent: &str,
        opts: ExecOptions,
        asked: Instant,
    ) -> Result<ExecOutput, SshError> {
        // `sent` is what runs on the host; `command` what every word of tether's names.
        let label = opts.label.clone();
        let command = label.as_deref().unwrap_or(sent);
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        // Nothing of this command was sent: reconnecting first is safe.
        let dead = match (&self.lost, self.dead_idle.take()) {
            (Some((lost, Some(at))), _) if at.elapsed() < RETRY_LOST_AFTER => {
                return Err(lost.clone())
            }
            (Some((lost, _)), _) => Some((
                format!(
                    "the session was lost ({}); reconnecting before `{command}`",
                    lost.said_for(&self.owner.name)
                ),
                false,
            )),
            (None, Some(reason)) => Some((reason, true)),
            (None, None) => None,
        };
        if let Some((reason, while_idle)) = dead {
            if !self.reconnect_for(command, reason, while_idle, &opts, asked) {
                if let Some(why) = opts.stop.reason() {
                    return Err(SshError::stopped_before(&self.owner.name, command, why));
                }
                if let Some(e) = self.failed.clone().or(self.lost.clone().map(|(e, _)| e)) {
                    return Err(e);
                }
            }
        }
        // Before the command is announced: what was left running goes first.
        self.stop_orphans(false);
        // Stopped while it waited for the host (connecting, reconnecting): it is not sent, as
        // nothing new starts once tether is stopping.
        if let Some(why) = opts.stop.reason() {
            return Err(SshError::stopped_before(&self.owner.name, command, why));
        }
        let echo = opts.echo != Echo::Nothing;
        let announce = echo && !opts.part;
        if announce {
            self.emit(EventKind::Started {
                command: command.to_string(),
            });
        }
        let started = Instant::now();
        let timeout = opts.timeout_named.or(opts.timeout);
        let opts = ExecOptions {
            keepalive: self.owner.interval,
            // Output is read only while the reporter has room for its lines.
            backlog: echo.then(|| self.owner.backlog()),
            // Without an agent there is nothing to forward (the pool warned).
            forward_agent: self.owner.config.agent_to_forward(),
            // The user's commands get what ssh would send; tether's own hidden ones (a check's
            // probes, clean-ups) need none of it.
            env: if echo {
                Box::new(self.owner.config.env.requests())
            } else {
                Default::default()
            },
            // Named if tether exits at a second signal while it runs or is being stopped.
            left_running: opts.pty.then(|| {
                let (host, ssh) = (
                    self.owner.name.clone(),
                    self.owner.config.ssh_command.clone(),
                );
                let command = command.to_string();
                exec::LeftRunning(Arc::new(move |pgid: &str| {
                    state::pty_left_at_exit(
                        &host,
                        &ssh,
                        &command,
                        pgid,
                        "tether exited at a second signal before its stop was confirmed",
                    )
                }))
            }),
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
            s.spool_wait = Supervision::wait_for(
                opts.reattach.unwrap_or(self.owner.settings.reattach),
                self.owner.noticed_dead(),
            );
            if self.read.len() >= crate::ssh::supervisor::REMOVE_BATCH {
                s.done = std::mem::take(&mut self.read);
            }
            s
        });
        // Named if tether exits at a second signal before this returns: nothing of it stops
        // the command then.
        let left = sup.as_ref().map(|s| {
            Arc::new(state::left_at_exit(
                &self.owner.name,
                &self.owner.config.ssh_command,
                command,
                &s.id,
                None,
                "tether exited at a second signal before its stop was confirmed",
            ))
        });
        let opts = ExecOptions {
            direct_left: left.clone().map(|left| {
                let (host, command) = (self.owner.name.to_string(), command.to_string());
                exec::DirectLeft(Arc::new(move |why: &str| {
                    let (line, event) = state::direct_left_at_exit(&host, &command, why);
                    left.reword(line, Some(event));
                }))
            }),
            ..opts
        };
        let mut result = self.exec_once(sent, &opts, sup.as_mut());
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
                // The command never reached the server: running it on a new session is safe,
                // again where that one died before it too, within the re-attach bound (stop
                // 52 tester t79: a second loss 20 ms after the first failed the command, exit 3).
                // As many times as a reconnect makes attempts.
                let first = Instant::now();
                let bound = opts.reattach.unwrap_or(self.owner.settings.reattach);
                let mut reason = reason.clone();
                for _ in 0..self.owner.settings.reconnect_attempts.max(1) {
                    let why = format!("session found dead before `{command}` ({reason})");
                    if !self.reconnect_for(command, why, false, &opts, started) {
                        break;
                    }
                    result = self.exec_once(sent, &opts, sup.as_mut());
                    match &result {
                        Err(ExecError::NotStarted(again)) if first.elapsed() < bound => {
                            reason = again.clone()
                        }
                        _ => break,
                    }
                }
            }
        }
        let mut unknown: Option<SshError> = None;
        if let (Err(ExecError::Lost(reason)), Some(s)) = (&result, sup.as_mut()) {
            if s.resumable() {
                let reason = reason.clone();
                match self.reattach(sent, command, &opts, s, started, reason) {
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
        // What the command wrote on stderr to its end, where it was read after a stop over a
        // second connection: the failure's tail shows its clean-up, as elsewhere.
        let mut stderr_after_stop = None;
        if let Err(ExecError::Stopped(_, Some(done)) | ExecError::Deadline(_, Some(done), _)) =
            &mut result
        {
            if let Some(s) = sup
                .as_mut()
                .filter(|s| done.reached == exec::Reached::Cut && s.resumable())
            {
                self.finish_stop(sent, command, &opts, s, done);
            }
            let refused = matches!(done.reached, exec::Reached::Nothing { refused: true, .. });
            let aside = match (sup.as_mut(), &done.pty_group) {
                (Some(s), _) if refused => {
                    let (stopped, kept) = self.stop_aside_following(sent, &opts, s);
                    stderr_after_stop = kept;
                    Some(stopped)
                }
                // A PTY command's terminal hung up as its channel closed: a command that
                // ignores SIGHUP outlives that (stop 40 tester t35).
                (None, Some(group)) if refused => Some(self.stop_aside(|conn| {
                    exec::stop_pty_group(conn, group, exec::StopPatience::usual())
                })),
                _ => None,
            };
            if let Some(Ok(stopped)) = aside {
                *done = exec::RemoteStop::of(Ok(stopped), None);
                done.how.push_str(
                    " (over a second connection: the server allows the command's own no other \
                     channel, sshd's MaxSessions)",
                );
            }
        }
        if let (Some(all), Err(ExecError::Deadline(_, _, kept))) = (stderr_after_stop, &mut result)
        {
            *kept = all;
        }
        self.report_stop(command, &opts.stop, &result, sup.as_ref());
        if let Some(s) = &mut sup {
            self.report_supervision(command, s, &result);
            match &result {
                // Running on, its files needed to stop it.
                Ok(out) if out.status == exec::ExitStatus::Unfollowed => {
                    let orphan = self.orphan(
                        s,
                        command,
                        "no channel could follow it: the server closed each before its login \
                         shell was done starting"
                            .to_string(),
                    );
                    self.orphans.push(orphan);
                }
                // The supervisor removes `done` once the command ends; this one's directory
                // goes with the next command (its result has been read).
                Ok(_) if unknown.is_none() && s.direct.is_none() && !s.gone => {
                    self.read.push(s.id.clone())
                }
                Ok(_) => {}
                Err(e) => {
                    self.read.append(&mut s.done);
                    // Stopped, or given up at its deadline, with nothing of it left: the stop
                    // leaves the files of a command that had ended by itself (its exec's sh
                    // passes its last bytes on), which nothing would read again; they go with
                    // the next command's (stop 52 tester t79: quick commands given up at a
                    // deadline of a few milliseconds left theirs until the day's sweep).
                    if let ExecError::Stopped(_, Some(done))
                    | ExecError::Deadline(_, Some(done), _) = e
                    {
                        // (One stopped over a second connection is there already.) One the
                        // stop claimed keeps its claim: its exec may still start, late, and
                        // must find it (the claim went with the next removal, and a login
                        // shell that woke after it ran the command tether said never would).
                        if done.signalled()
                            && !done.claimed
                            && s.direct.is_none()
                            && !self.read.contains(&s.id)
                        {
                            self.read.push(s.id.clone());
                        }
                    }
                }
            }
        }
        // What a stop (or the one at its deadline) did on the host.
        let live = self.conn.is_some();
        let reach = |stopped: &Option<exec::RemoteStop>| match stopped {
            Some(s) if s.signalled() => crate::ssh::StopReach::Stopped,
            // Its terminal hung up as its channel closed, where the session carried the close:
            // one taken for lost did not (stop 57 tester t90: a PTY command on a silent host,
            // its stop failed, said "stopped").
            _ if opts.pty && live => crate::ssh::StopReach::HungUp,
            Some(_) => crate::ssh::StopReach::NotStopped,
            None if opts.pty => crate::ssh::StopReach::NotStopped,
            // Only its channel was closed: a transfer, which ends with it.
            None => crate::ssh::StopReach::Stopped,
        };
        let result = match (unknown, result) {
            (Some(error), _) => Err(error),
            (None, Ok(out)) => {
                self.last_alive = Instant::now();
                Ok(out)
            }
            (None, Err(ExecError::Deadline(_, stopped, stderr))) => Err(SshError::CommandTimeout {
                // No stop was made: given up before it was sent (no channel by its deadline),
                // or a transfer, which ends with its channel (a command run without the
                // supervisor has a failed stop, its words said by `report_stop`).
                reach: match &stopped {
                    None => crate::ssh::StopReach::Stopped,
                    tried => reach(tried),
                },
                host: self.owner.name.to_string(),
                command: command.to_string(),
                timeout: timeout.unwrap_or_default(),
                stderr: stderr.bytes,
                stderr_cut: stderr.cut,
            }),
            (None, Err(ExecError::StoppedUnsent(_))) => Err(SshError::stopped_before(
                &self.owner.name,
                command,
                opts.stop
                    .reason()
                    .unwrap_or(crate::stop::StopReason::Interrupted),
            )),
            // Counted from the command's real start (it may have been re-attached to).
            (None, Err(ExecError::Stopped(_, stopped))) => Err(SshError::CommandStopped {
                reach: reach(&stopped),
                host: self.owner.name.to_string(),
                command: command.to_string(),
                elapsed: Some(started.elapsed()),
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
            ) => Err(SshError::NotRun {
                host: self.owner.name.to_string(),
                command: command.to_string(),
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
                let error = self.lost_command(command, started, &reason, sup.as_ref());
                // Reconnect for later work (failure hooks may need the host); the lost command
                // itself is never re-sent.
                self.replace_session(
                    format!("connection lost during a command ({reason})"),
                    false,
                    false,
                );
                Err(error)
            }
        };
        if announce {
            self.emit(exec::finished_event(command, &result, started.elapsed()));
        }
        result
    }

    /// The failure of `command`, sent at `started`, whose connection was lost (`reason`) and
    /// which could not be re-attached to: it may have partly run; where it ran without the
    /// supervisor (`sup`), that is why.
    fn lost_command(
        &self,
        command: &str,
        started: Instant,
        reason: &str,
        sup: Option<&Supervision>,
    ) -> SshError {
        let why = match sup.and_then(|s| s.direct.as_deref()) {
            Some(direct) => format!(
                "{reason}; not re-attached: it ran without tether's supervisor on this host \
                 ({direct})"
            ),
            None => reason.to_string(),
        };
        SshError::ConnectionLost {
            host: self.owner.name.to_string(),
            command: command.to_string(),
            elapsed: started.elapsed(),
            reason: why,
        }
    }

    /// Says once per host that commands run without the supervisor, and what a re-attach
    /// could not recover.
    fn report_supervision(
        &mut self,
        command: &str,
        sup: &Supervision,
        result: &Result<ExecOutput, ExecError>,
    ) {
        if let (Some(sig), Ok(out)) = (&sup.followed, result) {
            if out.status != exec::ExitStatus::Signal(sig.clone()) {
                self.emit(EventKind::Warning {
                    message: format!(
                        "a process of tether's supervisor of `{command}` was killed on the host \
                         (signal {sig}): tether followed the command in its process group to its \
                         end ({})",
                        out.status
                    ),
                });
            }
        }
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
    /// deadline) and its process group signalled, or that failed. A supervised command (`sup`)
    /// whose stop could not be run is kept as an orphan: stopped at the next contact, or named
    /// before tether exits.
    fn report_stop(
        &mut self,
        command: &str,
        stop: &crate::stop::Stop,
        result: &Result<ExecOutput, ExecError>,
        sup: Option<&Supervision>,
    ) {
        let (why, done) = match result {
            Err(ExecError::Deadline(_, Some(done), _)) => ("its timeout passed".to_string(), done),
            Err(ExecError::Stopped(_, Some(done))) => (
                stop.reason()
                    .unwrap_or(crate::stop::StopReason::Interrupted)
                    .to_string(),
                done,
            ),
            _ => return,
        };
        if !done.signalled() {
            let failed = matches!(
                done.reached,
                exec::Reached::Nothing { .. } | exec::Reached::Cut
            );
            // A session that gave the stop no answer (no channel), or after a signal any
            // whose stop failed without a refusal, is taken for lost: not waited on to close,
            // and, after a signal, not tried again before tether exits (stop 45 tester t57: a
            // blackholed host's stop, its last contact and its disconnect held a SIGTERM's
            // exit 9 s more; stop 55 tester t87: a timeout's waited 5 s for the idle session
            // to be found lost). One lost under the stop is lost, never an idle session the
            // server closed (stop 48 tester t66: learned as its idle limit).
            let cut = done.reached == exec::Reached::Cut;
            if matches!(
                done.reached,
                exec::Reached::Nothing {
                    unanswered: true,
                    ..
                }
            ) || (matches!(done.reached, exec::Reached::Nothing { refused: false, .. })
                && crate::interrupt::signalled())
                || cut
            {
                self.conn = None;
                // Kept where finishing the stop found the host unreachable; a stop cut short
                // under a signal leaves the failure hooks' contact to reconnect.
                if !(cut && self.lost.is_some()) {
                    self.lost = Some((
                        SshError::Session {
                            host: self.owner.name.to_string(),
                            reason: format!("no answer to the stop of `{command}` ({})", done.how),
                        },
                        (!cut).then(Instant::now),
                    ));
                }
            }
            let again = match sup.filter(|s| failed && s.direct.is_none()) {
                Some(s) => {
                    let orphan = self.orphan(
                        s,
                        command,
                        match cut {
                            true => format!("its stop ({why}) was cut short by a lost connection"),
                            false => format!("stopping it ({why}) failed"),
                        },
                    );
                    self.orphans.push(orphan);
                    // After a signal, a session taken for lost just now is not connected to
                    // again before tether exits (see `last_contact`): not promised.
                    let exiting = crate::interrupt::signalled() && self.conn.is_none();
                    match cut {
                        true => {
                            "; tether finishes the stop (no second SIGTERM: SIGKILL once the \
                             grace period has passed, to what is left of it) at its next \
                             contact with this host, or before it exits"
                        }
                        false if exiting => {
                            "; after the signal tether does not wait to connect to the host \
                             again: it names the command, with how to stop it, as it exits"
                        }
                        false => {
                            "; tether tries again at its next contact with this host, or \
                             before it exits"
                        }
                    }
                }
                None => "",
            };
            // No supervisor keeps its files or claims it: the words name its group (stop 56
            // tester t89: a PTY command's failed stop said nothing of how to stop it).
            if let (None, Some(group), true) = (sup, &done.pty_group, failed) {
                self.left_on_terminals.push(state::pty_left_at_exit(
                    &self.owner.name,
                    &self.owner.config.ssh_command,
                    command,
                    &group.pgid,
                    &format!("stopping it ({why}) failed"),
                ));
            }
            let by_hand = match (sup, &done.pty_group) {
                (None, Some(group)) if failed => format!(
                    "; it may still be running: on its terminal it gets SIGHUP once the host's \
                     sshd finds its connection ended, unless it ignores that. Its process group \
                     is {}; to stop it: {}",
                    group.pgid,
                    crate::ssh::supervisor::by_hand(
                        &self.owner.config.ssh_command,
                        &crate::ssh::supervisor::stop_pty_by_hand(&group.pgid)
                    )
                ),
                _ => String::new(),
            };
            let again = format!("{again}{by_hand}");
            let message = match cut {
                true => format!(
                    "stopping `{command}` on the host ({why}) was cut short: {}{again}",
                    done.how
                ),
                false => format!(
                    "`{command}` was not stopped on the host ({why}): {}{again}",
                    done.how
                ),
            };
            self.emit(EventKind::Warning { message });
            return;
        }
        self.emit(EventKind::RemoteStopped {
            command: command.to_string(),
            why,
            how: done.how.clone(),
            nothing_to_stop: done.nothing_to_stop,
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
        let mut on_line = |stream, line: &str, end: exec::LineEnd| {
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
                redrawn: end == exec::LineEnd::Redrawn,
                pending: end == exec::LineEnd::Pending,
                cut: end == exec::LineEnd::Cut,
            });
        };
        let result = match sup {
            Some(s) if s.resumable() => exec::resume(conn, s, opts, &mut on_line, &mut preamble),
            sup => exec::run_reporting(conn, command, opts, &mut on_line, &mut preamble, sup),
        };
        // The command's channel read whatever the session held.
        self.login_unread = false;
        if preamble.no_bash && !self.no_bash_said {
            self.no_bash_said = true;
            self.owner.emit(EventKind::Warning {
                message: "commands run by /bin/sh on this host, not bash: the login shell's \
                          PATH finds no bash (`echo {1..3}`, `[[ ]]`, `echo -e` and `source` \
                          mean otherwise under /bin/sh)"
                    .into(),
            });
        }
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
