//! Re-attaching to a supervised command whose connection died, and the commands left running
//! when that failed (orphans): stopped at the next contact, or named before the worker ends.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::state::{Orphan, PtyOrphan, WorkerState};
use crate::event::EventKind;
use crate::ssh::config::ConnectBound;
use crate::ssh::exec::{self, ExecError, ExecOptions, ExecOutput, Supervision};
use crate::ssh::supervisor::StopDone;
use crate::ssh::SshError;
use crate::stop::Stop;

use crate::ssh::reconnect::LAST_CONTACT;

/// How long before the end of a re-attach's bound its last attempt starts at the latest (see
/// `connect_within`): time for a handshake that answers.
const LAST_ATTEMPT: Duration = Duration::from_millis(250);

/// The pause between attempts that fail at once (a refused connection) once the backoff's next
/// pause would pass the last attempt's start (see `connect_within`).
const FINAL_PAUSE: Duration = Duration::from_millis(250);

impl WorkerState {
    /// The connection died while `sent` (named `command` in what tether says: see
    /// `ExecOptions::label`) ran under the supervisor (`sup`, started at
    /// `started`): connects again (the pinned host key, the usual backoff) within the
    /// re-attach bound and resumes it, as often as it is lost again; one lost before it
    /// started is claimed first and, where it never ran, sent again (said as such, not as a
    /// re-attach). `Ok` is the command's result; `Err` the failure when re-attaching ended first (the command is then
    /// an orphan, stopped at the next contact) or its directory was gone: remote state
    /// unknown. Re-attaching ends at the bound, at the command's own timeout, or when the
    /// command is stopped (Ctrl-C, SIGTERM, `watch --kill`, a step abort): at once, the
    /// attempt under way given up (see `poll::giving_up_when`).
    pub(super) fn reattach(
        &mut self,
        sent: &str,
        command: &str,
        opts: &ExecOptions,
        sup: &mut Supervision,
        started: Instant,
        mut reason: String,
    ) -> Result<Result<ExecOutput, ExecError>, SshError> {
        let bound = opts.reattach.unwrap_or(self.owner.settings.reattach);
        let timeout = opts.timeout.map(|t| (t, started + t));
        // What is said of the command counts from here (see `ExecOptions::part`).
        let began = opts.part.unwrap_or(started);
        let mut unsent = false;
        loop {
            let lost_at = Instant::now();
            // The last byte from the command, where the supervisor ran it (one comes after
            // every 0.4 s of silence): about when the connection was lost, which may be long
            // before it was noticed (a silent network: the kernel's TCP_USER_TIMEOUT, or
            // nothing at all for `exec`'s SILENT_LIMIT).
            let heard_after = sup
                .heard()
                .and_then(|h| h.checked_duration_since(began))
                .filter(|h| *h <= lost_at.saturating_duration_since(began));
            self.conn = None;
            // Whichever comes first; an attempt it cuts short names it.
            let (until, cut_by) = match timeout {
                Some((t, deadline)) if deadline <= lost_at + bound => {
                    (deadline, ConnectBound::Timeout(t))
                }
                _ => (lost_at + bound, ConnectBound::Reattach(bound)),
            };
            if let Err(e) = self.connect_within(until, cut_by, &opts.stop) {
                let refused = e.refused();
                let e = e.said_for(&self.owner.name);
                let within = crate::duration::format(bound);
                let (ended, short) = match (opts.stop.reason(), timeout) {
                    (Some(why), _) => (
                        format!("re-attaching was given up as {why}"),
                        format!("re-attaching was given up ({why})"),
                    ),
                    // The command's timeout, when it came before the bound, ended it (the
                    // last attempt may end early: a pause past `until` is not taken).
                    (None, Some((t, deadline))) if deadline <= lost_at + bound => {
                        let t = crate::duration::format(t);
                        (
                            format!("not re-attached before its timeout ({t}) passed ({e})"),
                            format!("not re-attached before its timeout ({t})"),
                        )
                    }
                    // Refused (a changed host key, a login no longer accepted): no more
                    // attempts, whatever the bound (stop 45 tester t57: `not re-attached
                    // within 1m00s` after 3.1 s).
                    (None, _) if refused => (
                        format!("not re-attached: {e}"),
                        "not re-attached: its host key or login was refused on connecting again"
                            .to_string(),
                    ),
                    // `--reattach 0` (or `reattach: 0`): one attempt, no time to say.
                    (None, _) if bound.is_zero() => (
                        format!("not re-attached at its one attempt (reattach 0) ({e})"),
                        "not re-attached at its one attempt (reattach 0)".to_string(),
                    ),
                    (None, _) => (
                        format!("not re-attached within {within} ({e})"),
                        format!("not re-attached within {within}"),
                    ),
                };
                let lost_after =
                    heard_after.unwrap_or_else(|| lost_at.saturating_duration_since(began));
                // Said when it happens, as a re-attach is (the failure comes with the step's
                // end): the other hosts' stops name this one as their reason meanwhile (stop
                // 48 tester t66: nothing about web1 until 22 s later).
                if opts.stop.reason().is_none() {
                    self.emit(EventKind::Warning {
                        message: format!(
                            "connection lost {} into `{command}`; {ended}: remote state unknown",
                            crate::duration::format(lost_after)
                        ),
                    });
                }
                let orphan =
                    self.orphan(sup, command, format!("its connection was lost and {short}"));
                self.orphans.push(orphan);
                let reason = format!(
                    "{reason}; {ended}: remote state unknown then (tether stops the command at \
                     its next contact with this host, or before it exits, and says whether it \
                     could)"
                );
                // Not a host known unreachable: the bound was this command's. The next
                // contact reconnects under the usual policy at once (and stops the orphan
                // first), however soon it comes.
                self.lost = Some((
                    SshError::Session {
                        host: self.owner.name.to_string(),
                        reason: format!("the connection was lost during `{command}` and {short}"),
                    },
                    None,
                ));
                // When the connection was lost (its last byte, where known), not when
                // re-attaching ended.
                return Err(SshError::ConnectionLost {
                    host: self.owner.name.to_string(),
                    command: command.to_string(),
                    elapsed: lost_after,
                    reason,
                });
            }
            let reconnected = lost_at.elapsed();
            let settled = match &self.conn {
                // Known never sent (its sending again found the connection gone before its
                // channel opened): nothing to claim.
                Some(_) if unsent => Ok(exec::Lost::NeverStarted),
                Some(conn) => exec::settle(conn, sup),
                None => Err(ExecError::NotStarted("no session".into())),
            };
            let lost_after = lost_at.saturating_duration_since(began);
            match settled {
                Ok(exec::Lost::Running) => self.emit(EventKind::Reattached {
                    command: command.to_string(),
                    heard_after,
                    lost_after,
                    took: lost_at.elapsed(),
                }),
                Ok(exec::Lost::NeverStarted) => self.emit(EventKind::Resent {
                    command: command.to_string(),
                    lost_after,
                    took: lost_at.elapsed(),
                }),
                // Lost again while claiming, its channel included (it did not open: the new
                // connection went too): connected again within the bound (stop 52 tester t79:
                // a second loss 20 ms after the first failed the step as unreachable, exit 3,
                // the command having run).
                // That connection was a reconnect, said and counted as one, dated by its own
                // loss (stop 61 tester t100: two losses were said once, dated at the second,
                // counted as one reconnect).
                Err(ExecError::Lost(again) | ExecError::NotStarted(again)) if sup.resumable() => {
                    let lost_after = heard_after.unwrap_or(lost_after);
                    self.emit(EventKind::Reconnected {
                        reason: format!(
                            "connection lost {} into `{command}` ({reason})",
                            crate::duration::format(lost_after)
                        ),
                        while_idle: false,
                        took: reconnected,
                    });
                    reason = again;
                    continue;
                }
                Err(e) => {
                    // Connected again, but whether the command ran cannot be known: said by
                    // the command's failure. The session itself is sound, and kept (tester
                    // t110: taken for lost, it was replaced at once, two reconnects for one
                    // loss).
                    self.emit(EventKind::Reconnected {
                        reason: format!("the connection was lost during `{command}`"),
                        while_idle: false,
                        took: lost_at.elapsed(),
                    });
                    return match e {
                        ExecError::Lost(why) => {
                            Err(self.lost_command(command, began, &why, Some(sup)))
                        }
                        e => Ok(Err(e)),
                    };
                }
            }
            let rest = opts.remaining(started);
            unsent = false;
            match self.exec_once(sent, &rest, Some(sup)) {
                // The resume's channel did not open: lost again, as above.
                Err(ExecError::Lost(again) | ExecError::NotStarted(again)) if sup.resumable() => {
                    reason = again
                }
                // Sent again, its channel did not open: the command was not sent, and is
                // sent on the next connection (stop 52 tester t79: "cannot open a channel",
                // exit 3, for a command that never ran).
                Err(ExecError::NotStarted(again)) => {
                    unsent = true;
                    reason = again;
                }
                Ok(_) if sup.gone => {
                    let stopped = self.stop_unreadable(command, sup);
                    return Err(SshError::ConnectionLost {
                        host: self.owner.name.to_string(),
                        command: command.to_string(),
                        elapsed: began.elapsed(),
                        reason: format!(
                            "{reason}; re-attached, but the command's directory on the host \
                             was gone: remote state unknown ({stopped})"
                        ),
                    });
                }
                other => return Ok(other),
            }
        }
    }

    /// The connection was lost while the stop of `sent` (named `command`) ran on the host
    /// (`done`: [`exec::Reached::Cut`]; its timeout passed, or a step abort stopped it):
    /// connects again within the re-attach bound and finishes the stop there. The command is
    /// followed from the bytes received to its end, within the stop's grace period and a
    /// second (what its clean-up on SIGTERM prints is shown, once), then its stop is run
    /// again, which sends no second SIGTERM (see `supervisor::stop`): SIGKILL once the grace
    /// period has passed, to what is left of it. `done` then says what the stop did (stop 48
    /// tester t66: a stop cut short was sent again at exit, its SIGTERM a second time, and
    /// the clean-up the first had started was cut short and run again, its output never
    /// shown). Where no connection came back, `done` stays cut (see `report_stop`).
    pub(super) fn finish_stop(
        &mut self,
        sent: &str,
        command: &str,
        opts: &ExecOptions,
        sup: &mut Supervision,
        done: &mut exec::RemoteStop,
    ) {
        let bound = opts.reattach.unwrap_or(self.owner.settings.reattach);
        // After a signal, as the last contact before tether exits (stop 48 tester t68: a
        // SIGTERM's stop cut short was not finished, none of the clean-up shown, and the
        // command said to be still running after it was said stopped).
        let bound = match crate::interrupt::signalled() {
            true => bound.min(LAST_CONTACT),
            false => bound,
        };
        let until = Instant::now() + bound;
        // The command is being stopped already: only tether's own stopping cuts this short.
        let quiet = Stop::default();
        // Lost again while following it: connected again, within the same bound (stop 48
        // tester t67: a second loss put the stop off to exit, the clean-up's lines cut short).
        while sup.resumable() {
            let lost_at = Instant::now();
            self.conn = None;
            if let Err(e) = self.connect_within(until, ConnectBound::Reattach(bound), &quiet) {
                // Not a host known unreachable: the bound was this stop's. The next contact
                // reconnects under the usual policy and finishes the stop first (stop 48
                // tester t67: the next step failed at once on this bound's last error, exit 3).
                self.lost = Some((
                    SshError::Session {
                        host: self.owner.name.to_string(),
                        reason: format!(
                            "the connection was lost while stopping `{command}` and not made \
                             again within {} ({})",
                            crate::duration::format(bound),
                            e.said_for(&self.owner.name)
                        ),
                    },
                    None,
                ));
                return;
            }
            self.emit(EventKind::Reconnected {
                reason: format!("the connection was lost while stopping `{command}`"),
                while_idle: false,
                took: lost_at.elapsed(),
            });
            let rest = ExecOptions {
                timeout: Some(crate::ssh::supervisor::STOP_GRACE + Duration::from_secs(1)),
                timeout_named: None,
                stop: Stop::default(),
                ..opts.clone()
            };
            let stopped = match self.exec_once(sent, &rest, Some(sup)) {
                // Its own stop, run by the follow-up's deadline, cut short in turn.
                Err(ExecError::Deadline(_, Some(stop), _))
                    if stop.reached == exec::Reached::Cut =>
                {
                    *done = stop;
                    continue;
                }
                Err(ExecError::Deadline(_, Some(stop), _)) => {
                    *done = stop;
                    return;
                }
                Err(ExecError::Lost(_)) => continue,
                Ok(_) => match &self.conn {
                    Some(conn) => exec::stop_supervised(conn, &sup.id, exec::StopPatience::usual()),
                    None => return,
                },
                Err(_) => return,
            };
            *done = exec::RemoteStop::of(stopped, None);
            return;
        }
    }

    /// Connects again (the pinned host key) with backoff 1, 2, 4 ... s up to the cap, until
    /// `until` or until `stop` is set (asked before each attempt and during the pauses); the
    /// last error when no attempt worked. Each attempt gives up when `until` passes, whatever
    /// `ConnectTimeout` says (its failure then names `cut_by`, what `until` is the end of); a
    /// bound already spent (`--reattach 0`) still gets one attempt, with the config's
    /// `ConnectTimeout`.
    pub(super) fn connect_within(
        &mut self,
        until: Instant,
        cut_by: ConnectBound,
        stop: &Stop,
    ) -> Result<(), SshError> {
        let mut delay = Duration::from_secs(1);
        // Where the backoff's next pause would pass the last attempt's start (LAST_ATTEMPT
        // before `until`), attempts come every FINAL_PAUSE up to it: a host back in the bound's
        // last seconds is reached (stop 47 tester t63: `--reattach 10s` gave up after 7 s,
        // where the next pause would have passed the bound; tester t64: a host back in its last
        // half second was missed, the command then stopped).
        let last_start = until.checked_sub(LAST_ATTEMPT).unwrap_or(until);
        let host = self.owner.name.to_string();
        let stopping = |why: String| SshError::Session {
            host: host.clone(),
            reason: why,
        };
        loop {
            if let Some(why) = stop.reason() {
                return Err(stopping(why.to_string()));
            }
            let left = until.saturating_duration_since(Instant::now());
            // A stop (Ctrl-C, a timeout's end is `until`) gives up the attempt under way at
            // once, as it does a first connection, instead of waiting out its ConnectTimeout.
            let give_up = {
                let (stop, closing) = (stop.clone(), self.owner.stop.clone());
                move || stop.reason().is_some() || closing.load(Ordering::SeqCst)
            };
            let attempt = crate::ssh::poll::giving_up_when(give_up, || {
                self.owner
                    .connect_for((!left.is_zero()).then_some((left, cut_by)))
            });
            match attempt {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.lost = None;
                    self.lost_unsaid = false;
                    self.last_alive = Instant::now();
                    self.connected_at = self.last_alive;
                    self.login_unread = true;
                    return Ok(());
                }
                Err(_) if stop.reason().is_some() => {
                    return Err(stopping(
                        stop.reason().map(|r| r.to_string()).unwrap_or_default(),
                    ));
                }
                Err(e) => {
                    if e.refused() || Instant::now() >= last_start {
                        return Err(e);
                    }
                }
            }
            let now = Instant::now();
            let wake = match now + delay {
                next if next > last_start => (now + FINAL_PAUSE).min(last_start),
                next => next,
            };
            while Instant::now() < wake {
                if self.owner.stop.load(Ordering::SeqCst) {
                    return Err(stopping("tether is stopping".into()));
                }
                if let Some(why) = stop.reason() {
                    return Err(stopping(why.to_string()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            delay = (delay * 2).min(self.owner.settings.backoff_cap);
        }
    }

    /// Stops the supervised command `command` (`sup`), whose files on the host were removed
    /// while its connection was down (a cleaner of `/tmp`, another command's `rm`): nothing
    /// can read its output or status any more, and left running it would be an orphan that
    /// nothing stops (stop 39 tester t27). Its process group is the one its exec's sh said
    /// (see `supervisor::PLACED`); it is reported as an orphan's stop is. What became of it,
    /// in words for the failure.
    fn stop_unreadable(&mut self, command: &str, sup: &Supervision) -> String {
        let why = "its directory on the host was gone when tether re-attached to it";
        let orphan = self.orphan(
            sup,
            command,
            "its connection was lost and its directory on the host was gone".into(),
        );
        let stopped = match (&self.conn, &sup.place) {
            (Some(conn), Some(place)) => {
                exec::stop_supervised_group(conn, &place.pgid, &sup.id, exec::StopPatience::usual())
            }
            _ => Err(exec::StopFailed::from(
                "the host never said its process group".to_string(),
            )),
        };
        match stopped {
            Ok(done) => {
                let how = done.words(crate::ssh::supervisor::STOP_GRACE);
                self.owner.emit(EventKind::RemoteStopped {
                    command: command.to_string(),
                    why: why.into(),
                    how: how.clone(),
                    nothing_to_stop: matches!(done, StopDone::Gone | StopDone::Never),
                });
                how
            }
            Err(failed) => {
                self.left_running(&orphan, &failed.how);
                format!("it may still be running: {}", failed.how)
            }
        }
    }

    /// Stops a command with `stop` (`exec::stop_supervised`, `exec::stop_pty_group`) over a
    /// second connection to the host, made for that and closed after, where its own
    /// connection's server refused the stop a channel: under `MaxSessions 1` the command's
    /// channel holds that connection's one place, which sshd keeps while the command's shell
    /// lives, even once tether closed it (stop 39 tester t32: no stop could reach the
    /// command). Another connection has places of its own, as the `ssh` that stops it by hand
    /// does.
    pub(super) fn stop_aside(
        &self,
        stop: impl FnOnce(&crate::ssh::connection::Connection) -> Result<StopDone, exec::StopFailed>,
    ) -> Result<StopDone, exec::StopFailed> {
        let conn = self.connect_aside()?;
        let done = stop(&conn);
        conn.disconnect();
        done
    }

    /// A second connection for a stop its connection's server refused a channel.
    fn connect_aside(&self) -> Result<crate::ssh::connection::Connection, exec::StopFailed> {
        self.owner.connect_for(None).map_err(|e| {
            exec::StopFailed::from(format!(
                "stopping it failed (its connection's server refused it a channel, sshd's \
                 MaxSessions, and a second connection failed: {})",
                e.said_for(&self.owner.name)
            ))
        })
    }

    /// [`stop_aside`](Self::stop_aside) for the supervised command `sent` (`sup`), whose
    /// channel closed when its stop was refused one: its files are kept, and read on the second
    /// connection from the bytes received, so that what it printed as it stopped (a clean-up on
    /// SIGTERM) is shown, once, as where the stop has a channel of its own beside the command's
    /// (stop 60 tester t96: under `MaxSessions 1` the clean-up's lines were never shown). The
    /// files then go as a read command's do. With what the stop did, the command's stderr as
    /// kept to its end, where it was read (stop 61 tester t98: the failure's tail lacked the
    /// clean-up's lines).
    pub(super) fn stop_aside_following(
        &mut self,
        sent: &str,
        opts: &ExecOptions,
        sup: &mut Supervision,
    ) -> (Result<StopDone, exec::StopFailed>, Option<exec::KeptStderr>) {
        let conn = match self.connect_aside() {
            Ok(conn) => conn,
            Err(failed) => return (Err(failed), None),
        };
        let done = exec::stop_supervised_keeping_files(&conn, &sup.id, exec::StopPatience::usual());
        let mut kept = None;
        if done.is_ok() && sup.resumable() {
            // The command has ended: its exec's sh passes on what is left and its status at
            // once (within a second and the read's own start).
            let rest = ExecOptions {
                timeout: Some(Duration::from_secs(3)),
                timeout_named: None,
                stop: Stop::default(),
                ..opts.clone()
            };
            let own = self.conn.replace(conn);
            kept = match self.exec_once(sent, &rest, Some(sup)) {
                Ok(out) => Some(exec::KeptStderr {
                    bytes: out.stderr,
                    cut: out.stderr_cut,
                }),
                Err(ExecError::Deadline(_, _, stderr)) => Some(stderr),
                Err(_) => None,
            };
            if let Some(aside) = std::mem::replace(&mut self.conn, own) {
                aside.disconnect();
            }
        } else {
            conn.disconnect();
        }
        // A claim that won stays, for an exec of it that may still start late.
        if !matches!(done, Ok(StopDone::Never)) {
            self.read.push(sup.id.clone());
        }
        (done, kept)
    }

    /// Stops the commands left running when re-attaching to them failed (see
    /// [`WorkerState::reattach`]), and the commands on a PTY whose stop failed, now that the
    /// host has a session; reports each. One that could not be stopped is tried again at the
    /// next contact, or, when this is the `last` (tether exits), named with how to stop it by
    /// hand.
    pub(super) fn stop_orphans(&mut self, last: bool) {
        let Some(conn) = &self.conn else { return };
        let mut kept = Vec::new();
        for orphan in std::mem::take(&mut self.orphans) {
            let stopped = match exec::stop_supervised(conn, &orphan.id, exec::StopPatience::usual())
            {
                Err(failed) if failed.refused => self.stop_aside(|conn| {
                    exec::stop_supervised(conn, &orphan.id, exec::StopPatience::usual())
                }),
                other => other,
            };
            match stopped {
                Ok(done) => {
                    // Ended by itself, its files kept for an exec's sh that no connection reads
                    // any more (see `supervisor::stop`): they go as a read command's do.
                    if done == StopDone::Gone {
                        self.read.push(orphan.id.clone());
                    }
                    // What it printed since tether last read its channel stays unshown: the
                    // stop reads none of it (stop 48 tester t67: a clean-up's lines missing,
                    // unsaid).
                    let unshown = match done {
                        StopDone::Never => "",
                        _ => "; what it printed after tether last read it is not shown",
                    };
                    match done {
                        // Nothing was stopped: it ran to its end while no connection carried
                        // it (stop 51 tester t74: "stopped `...`: nothing of it was left
                        // running", for a command that had finished).
                        StopDone::Gone => self.owner.emit(EventKind::Warning {
                            message: format!(
                                "`{}` (left running when {}) had ended on its own by the next \
                                 contact: nothing was left to stop (its exit status, and what it \
                                 printed after tether last read it, are not shown)",
                                crate::chars::command_named(&orphan.command),
                                orphan.left
                            ),
                        }),
                        _ => self.owner.emit(EventKind::RemoteStopped {
                            command: orphan.command,
                            why: format!("left running when {}", orphan.left),
                            how: format!(
                                "{}{unshown}",
                                done.words(crate::ssh::supervisor::STOP_GRACE)
                            ),
                            nothing_to_stop: done == StopDone::Never,
                        }),
                    }
                }
                Err(failed) if last => self.left_running(&orphan, &failed.how),
                Err(_) => kept.push(orphan),
            }
        }
        self.orphans = kept;
        let mut kept = Vec::new();
        for orphan in std::mem::take(&mut self.pty_orphans) {
            match exec::stop_pty_group(conn, &orphan.group, exec::StopPatience::usual()) {
                Ok(StopDone::Gone | StopDone::Never) => self.owner.emit(EventKind::Warning {
                    message: format!(
                        "`{}` (left running when {}) had ended by the next contact: nothing was \
                         left to stop",
                        crate::chars::command_named(&orphan.command),
                        orphan.left
                    ),
                }),
                Ok(done) => self.owner.emit(EventKind::RemoteStopped {
                    command: orphan.command.clone(),
                    why: format!("left running when {}", orphan.left),
                    how: exec::RemoteStop::of(Ok(done), None).how,
                    nothing_to_stop: false,
                }),
                Err(failed) if last => self.pty_left_running(&orphan, &failed.how),
                Err(_) => kept.push(orphan),
            }
        }
        self.pty_orphans = kept;
    }

    /// tether is about to exit (this worker ends) with commands left running on the host
    /// (supervised or on a terminal):
    /// one bounded attempt ([`LAST_CONTACT`]) to reach it and stop them (none after a signal
    /// where reconnecting just failed: see `Owner::reconnect`); each that stays running is
    /// named with how to stop it by hand.
    pub(super) fn last_contact(&mut self) {
        if self.conn.is_none() {
            let started = Instant::now();
            // After a signal, a host that the failure hooks could not reach within that time
            // just now is not tried again: tether is on its way out.
            let mut tried = true;
            let reached = match &self.lost {
                Some((e, Some(at)))
                    if crate::interrupt::signalled() && at.elapsed() < LAST_CONTACT =>
                {
                    tried = false;
                    Err(e.clone())
                }
                _ => self.owner.connect_for(Some((
                    LAST_CONTACT,
                    ConnectBound::LastContact(LAST_CONTACT),
                ))),
            };
            match reached {
                Ok(conn) => {
                    self.conn = Some(conn);
                    // A session like any other: counted in the summary.
                    self.emit(EventKind::Reconnected {
                        reason: "reconnecting to stop what was left running before tether exits"
                            .into(),
                        while_idle: false,
                        took: started.elapsed(),
                    });
                }
                Err(e) => {
                    // Not tried: said so (stop 57 tester t91: "could not be reached" for a
                    // host a new connection would have reached, none attempted).
                    let why = match tried {
                        true => format!(
                            "the host could not be reached before tether exited: {}",
                            e.said_for(&self.owner.name)
                        ),
                        false => format!(
                            "after the signal, tether did not wait to connect to the host again \
                             ({})",
                            e.said_for(&self.owner.name)
                        ),
                    };
                    for orphan in std::mem::take(&mut self.orphans) {
                        self.left_running(&orphan, &why);
                    }
                    for orphan in std::mem::take(&mut self.pty_orphans) {
                        self.pty_left_running(&orphan, &why);
                    }
                    // A session a failed stop took for lost, unsaid until now: tried again
                    // and not reached (see `WorkerState::lost_unsaid`).
                    if let (true, Some((lost, _))) = (tried && self.lost_unsaid, &self.lost) {
                        let error = format!(
                            "{}: {}; not connected again before tether exited: {}",
                            self.owner.name,
                            lost.said_for(&self.owner.name),
                            e.said_for(&self.owner.name)
                        );
                        self.emit(EventKind::Unreachable { error });
                        self.lost_unsaid = false;
                    }
                    return;
                }
            }
        }
        self.stop_orphans(true);
    }

    /// Says that `orphan` may still run on the host, where, and how to stop it by hand, as
    /// stopping it failed (`why`).
    pub(super) fn left_running(&self, orphan: &Orphan, why: &str) {
        let stop_with = orphan.stop_with(&self.owner.config.ssh_command);
        let (pgid, spool) = super::state::where_it_runs(&orphan.id, orphan.place.as_ref());
        self.emit(EventKind::RemoteLeftRunning {
            command: orphan.command.clone(),
            left: orphan.left.clone(),
            why: why.to_string(),
            pgid,
            spool,
            stop_with,
        });
    }

    /// Says that `orphan`, a command on a terminal, may still run on the host, in which
    /// process group, and how to stop it by hand, as stopping it failed (`why`) when tether
    /// was about to exit (tester t124: its stop's failure named it, the end of the run did
    /// not).
    pub(super) fn pty_left_running(&self, orphan: &PtyOrphan, why: &str) {
        let pgid = &orphan.group.pgid;
        self.emit(EventKind::RemoteLeftRunning {
            command: orphan.command.clone(),
            left: orphan.left.clone(),
            why: why.to_string(),
            pgid: Some(pgid.clone()),
            spool: String::new(),
            stop_with: super::state::pty_stop_with(&self.owner.config.ssh_command, pgid),
        });
    }
}
