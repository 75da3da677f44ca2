//! A command on the worker's session: sent once, on a session replaced first where the last
//! one was lost or died idle (nothing of the command was sent then); re-attached to where its
//! connection is lost while it runs under the supervisor (see `reattach.rs`), never sent
//! again; what its stop did, said.

use std::sync::Arc;
use std::time::Instant;

use super::state::{self, WorkerState, RETRY_LOST_AFTER};
use crate::event::{EventKind, Stream};
use crate::ssh::exec::{self, Echo, ExecError, ExecOptions, ExecOutput, Supervision};
use crate::ssh::supervisor::StopDone;
use crate::ssh::SshError;

impl WorkerState {
    pub(super) fn exec(
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
        let announce = echo && opts.part.is_none();
        if announce {
            self.emit(EventKind::Started {
                command: command.to_string(),
            });
        }
        let started = Instant::now();
        // What is said of the command counts from here (its timeout from `started`).
        let began = opts.part.unwrap_or(started);
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
                Ok(ExecOutput { started, ..out })
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
                elapsed: Some(began.elapsed()),
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
                let error = self.lost_command(command, began, &reason, sup.as_ref());
                let pty_group = self.lost_pty.take();
                // Reconnect for later work (failure hooks may need the host); the lost command
                // itself is never re-sent.
                let reconnected = self.replace_session(
                    format!("connection lost during a command ({reason})"),
                    false,
                    false,
                );
                if let Some(group) = pty_group {
                    self.stop_lost_pty(command, &group, reconnected);
                }
                Err(error)
            }
        };
        if announce {
            self.emit(exec::finished_event(command, &result, started.elapsed()));
        }
        result
    }

    /// The failure of `command`, begun at `started`, whose connection was lost (`reason`) and
    /// which could not be re-attached to: it may have partly run; where it ran without the
    /// supervisor (`sup`), that is why.
    pub(super) fn lost_command(
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
    /// before tether exits; one on a PTY, named with how to stop it by hand at once, is stopped
    /// at the next contact too.
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
                    self.lost_unsaid = true;
                }
            }
            // After a signal, a session taken for lost just now is not connected to again
            // before tether exits (see `last_contact`): not promised.
            let exiting = crate::interrupt::signalled() && self.conn.is_none();
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
                let orphan = self.pty_orphan(command, group, format!("stopping it ({why}) failed"));
                self.pty_orphans.push(orphan);
            }
            let next = match exiting {
                true => {
                    "after the signal tether does not wait to connect to the host again: it \
                     names the command as it exits"
                }
                false => {
                    "tether tries again at its next contact with this host, or before it \
                     exits"
                }
            };
            let by_hand = match (sup, &done.pty_group) {
                (None, Some(group)) if failed => format!(
                    "; it may still be running: on its terminal it gets SIGHUP once the host's \
                     sshd finds its connection ended, unless it ignores that, and {next}. {}",
                    self.pty_stop_words(group)
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

    /// `Its process group is PGID; to stop it: ssh ...`: the words that stop a PTY command's
    /// `group` by hand, said where tether could not.
    fn pty_stop_words(&self, group: &exec::PtyGroup) -> String {
        format!(
            "Its process group is {}; to stop it: {}",
            group.pgid,
            super::state::pty_stop_with(&self.owner.config.ssh_command, &group.pgid)
        )
    }

    /// Stops `group`, the process group of the PTY command `command` whose connection was lost,
    /// over the new connection (`reconnected`): nothing re-attaches to it, and a command that
    /// ignores the hangup its terminal gets runs on (tester t117: `trap "" HUP` ran on to its
    /// end, nothing said). One found ended (by the hangup, as most do) is said nothing of; one
    /// that cannot be stopped is said so with how to stop it by hand, stopped at the next
    /// contact (see `reattach.rs`), and named again by an exit at a second signal.
    fn stop_lost_pty(&mut self, command: &str, group: &exec::PtyGroup, reconnected: bool) {
        let why = "its connection was lost, and a command on a terminal is not re-attached to";
        let stopped = match (&self.conn, reconnected) {
            (Some(conn), true) => exec::stop_pty_group(conn, group, exec::StopPatience::usual()),
            _ => Err(exec::StopFailed::from(
                "there was no new connection to the host to stop it".to_string(),
            )),
        };
        match stopped {
            Ok(StopDone::Gone | StopDone::Never) => {}
            Ok(done) => self.emit(EventKind::RemoteStopped {
                command: command.to_string(),
                why: why.to_string(),
                how: exec::RemoteStop::of(Ok(done), None).how,
                nothing_to_stop: false,
            }),
            Err(failed) => {
                let orphan = self.pty_orphan(
                    command,
                    group,
                    format!(
                        "stopping it after its connection was lost failed ({})",
                        failed.how
                    ),
                );
                self.pty_orphans.push(orphan);
                self.emit(EventKind::Warning {
                    message: format!(
                        "`{command}` may still be running on the host: its connection was lost, \
                         and stopping it over a new one failed ({}); tether tries again at its \
                         next contact with this host. {}",
                        failed.how,
                        self.pty_stop_words(group)
                    ),
                });
            }
        }
    }

    /// Runs `command` on the session (under the supervisor with `sup`), or, with `sup` holding
    /// the streams of a command lost with its connection, resumes it.
    pub(super) fn exec_once(
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
        self.lost_pty = match &result {
            Err(ExecError::Lost(_)) => preamble.pty_group.take(),
            _ => None,
        };
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
