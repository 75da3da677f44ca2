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
//! re-attaching and orphans in `reattach.rs`, a command in `command.rs`.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::HostConfig;
use super::exec::{self, ExecOptions, ExecOutput};
use super::heartbeat::{self, Beat};
use super::limiter::HandshakeLimiter;
use super::owner::{Owner, Shared, Via};
use super::policy::WorkerSettings;
use super::reconnect;
use super::SshError;
use crate::event::EventKind;
use crate::sink::Sink;

mod command;
mod idle;
mod reattach;
mod state;

pub use idle::READ_LIMITS_AFTER;
use idle::{drain, woken_within, Idle};
use state::{WorkerState, RETRY_LOST_AFTER};

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
            lost_unsaid: false,
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
            pty_orphans: Vec::new(),
            lost_pty: None,
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

/// What a worker whose session is gone at the run's end leaves on its host: the files of the
/// supervised commands `read` (their results read, not yet removed), in words; `None` for none
/// (tester t117: a command's nine files were left unsaid). A later run's clean-up on the host
/// removes them once they are a day old (see `supervisor::clean`).
fn files_left(read: &[String]) -> Option<String> {
    let dir = "${TMPDIR:-/tmp}/tether-$USER";
    let later = "for a later run to remove once they are a day old";
    match read {
        [] => None,
        [id] => Some(format!(
            "the files of a command it ran are left on the host (`{dir}/{id}.*`), {later}"
        )),
        ids => Some(format!(
            "the files of {} commands it ran are left on the host (`{dir}/ID.*`, ID {}), {later}",
            ids.len(),
            ids.join(", ")
        )),
    }
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
        if !self.orphans.is_empty() || !self.pty_orphans.is_empty() {
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
                    reason: match files_left(&self.read) {
                        Some(left) => {
                            format!("no answer from the session at the run's end: {e}; {left}")
                        }
                        None => format!("no answer from the session at the run's end: {e}"),
                    },
                    while_idle: true,
                });
                return;
            }
            conn.disconnect();
            return;
        }
        if let (true, Some((error, _))) = (self.lost_unsaid, &self.lost) {
            self.emit(EventKind::SessionLost {
                reason: error.said_for(&self.owner.name),
                while_idle: false,
            });
        }
        if let Some(left) = files_left(&self.read) {
            // Lost as the run ended (not reconnected then), or unreachable since.
            self.emit(EventKind::Warning {
                message: format!("no session to the host at the run's end: {left}"),
            });
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
                self.lost_unsaid = false;
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
}
