//! What a host's worker thread holds: its session and what it knows of the host.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ssh::connection::Connection;
use crate::ssh::heartbeat::Beat;
use crate::ssh::owner::Owner;
use crate::ssh::stop_words::{by_hand, stop_pty_by_hand};
use crate::ssh::supervisor::Placement;
use crate::ssh::SshError;

pub(super) struct WorkerState {
    /// Connecting, the heartbeat interval, reconnecting.
    pub(super) owner: Owner,
    pub(super) conn: Option<Connection>,
    /// Whether what the login shell prints before a command was reported (once per host).
    pub(super) preamble_shown: bool,
    /// Whether running commands without the supervisor was reported (once per host).
    pub(super) direct_said: bool,
    /// Whether running commands by `/bin/sh`, the host having no bash, was reported (once per
    /// host).
    pub(super) no_bash_said: bool,
    /// Commands left running under the supervisor when re-attaching to them failed: stopped
    /// at the next contact with the host, or before the worker ends.
    pub(super) orphans: Vec<Orphan>,
    /// Ids of supervised commands whose results were read: their files on the host are
    /// removed by a later command, [`REMOVE_BATCH`](crate::ssh::supervisor::REMOVE_BATCH) at a
    /// time, or when the worker ends.
    pub(super) read: Vec<String>,
    /// Set when the first connection failed (or tether is stopping): the host is unreachable
    /// for this run.
    pub(super) failed: Option<SshError>,
    /// Set when the session died and could not be replaced (or, with the heartbeat off, was
    /// not), with when reconnecting last failed: a later command tries again first (failure
    /// hooks need the host), with the usual backoff, unless the last attempt failed less than
    /// `RETRY_LOST_AFTER` ago (then it fails at once, as the host is known unreachable).
    pub(super) lost: Option<(SshError, Option<Instant>)>,
    /// Whether `lost` is a session taken for lost because a stop got no answer over it, which
    /// no event said (the command's own end says its stop failed): said as the worker ends
    /// without a session (tester t124: the run's summary had the host connected).
    pub(super) lost_unsaid: bool,
    /// Last moment the session was known to work (a command or heartbeat round trip).
    pub(super) last_alive: Instant,
    /// What this host's heartbeat runs, once a heartbeat has read the server's limits.
    pub(super) beat: Option<Beat>,
    /// When the heartbeat sent a keepalive whose acknowledgement is still to be looked for
    /// (at that moment plus the heartbeat's deadline; a command or another heartbeat in
    /// between proves the session and clears it).
    pub(super) keepalive_sent: Option<Instant>,
    /// Whether the socket's `TCP_USER_TIMEOUT` is the heartbeat's timeout, as the idle worker
    /// sets it when it sends a keepalive: the kernel then ends a connection whose server
    /// acknowledges nothing within it, which wakes the worker, so nothing else has to wake it
    /// to look. A job restores the armed value (see `Owner::arm`) before it uses the session.
    pub(super) kernel_deadline: bool,
    /// Idle sessions the server closed in order although its limits were read (see the
    /// heartbeat's failure in `idle.rs`).
    pub(super) closed_while_idle: u32,
    /// Keepalives acknowledged since the last bare-channel heartbeat (see
    /// `KEEPALIVES_PER_CHANNEL` in `idle.rs`).
    pub(super) keepalives: u32,
    /// Whether that heartbeat read the server's whole config: its idle limits are known (see
    /// `heartbeat::Limits::read`).
    pub(super) limits_known: bool,
    /// When the current session was opened.
    pub(super) connected_at: Instant,
    /// Nothing has read the current session since its login: sshd's notice right after it
    /// (`hostkeys-00@openssh.com`, which needs no answer) may wait in its socket. Its first
    /// heartbeat reads it, a second after login at the latest, and until then the socket is
    /// not watched: on a reconnected session as on a host's first one, the notice is not taken
    /// for the server's probe (see `idle.rs`).
    pub(super) login_unread: bool,
    /// Commands with a timeout sent and not yet taken (shared with the handle, which counts
    /// them up): a reconnect of an idle session gives way to one (see
    /// [`WorkerState::dead_idle`]); one without goes on with the same attempts.
    pub(super) timed_queued: Arc<AtomicUsize>,
    /// Why the idle session was found dead, where its reconnecting gave way to a command with
    /// a timeout that came meanwhile: the command reconnects, within that timeout (stop 56
    /// tester t89: a command with a 3 s timeout waited 23 s for the idle reconnect's backoff
    /// to fail).
    pub(super) dead_idle: Option<String>,
    /// The commands on a PTY whose stop failed: stopped at the next contact with the host
    /// (see `reattach.rs`), and, until then, said by an exit at a second signal.
    pub(super) pty_orphans: Vec<PtyOrphan>,
    /// The process group of the PTY command whose connection the last command run lost, where
    /// its exec's sh said it: stopped over the new connection (see `command.rs`).
    pub(super) lost_pty: Option<crate::ssh::exec::PtyGroup>,
}

impl WorkerState {
    /// `command`, supervised as `sup` says, as an orphan of this host (see [`Orphan::new`]),
    /// left running as `left` says.
    pub(super) fn orphan(
        &self,
        sup: &crate::ssh::exec::Supervision,
        command: &str,
        left: String,
    ) -> Orphan {
        Orphan::new(
            &self.owner.name,
            &self.owner.config.ssh_command,
            sup.id.clone(),
            command.to_string(),
            sup.place.clone(),
            left,
        )
    }
}

/// A command on a PTY left running when stopping it failed. Stopping it again later is safe:
/// its group is signalled only while the group's leader is still its exec's sh (see
/// `exec::stop_pty_group`), never a group that took the number after it ended.
pub(super) struct PtyOrphan {
    /// The command.
    pub(super) command: String,
    /// Its process group, as its exec's sh said it.
    pub(super) group: crate::ssh::exec::PtyGroup,
    /// How it came to be left running (`stopping it (its timeout passed) failed`), for the
    /// line that says it was stopped.
    pub(super) left: String,
    /// Its line should tether exit at a second signal before it was stopped (see
    /// [`pty_left_at_exit`]).
    _said: crate::interrupt::LeftBehind,
}

impl WorkerState {
    /// `command`, on a PTY in process group `group`, as an orphan of this host, left running
    /// as `left` says.
    pub(super) fn pty_orphan(
        &self,
        command: &str,
        group: &crate::ssh::exec::PtyGroup,
        left: String,
    ) -> PtyOrphan {
        PtyOrphan {
            _said: pty_left_at_exit(
                &self.owner.name,
                &self.owner.config.ssh_command,
                command,
                &group.pgid,
                &left,
            ),
            command: command.to_string(),
            group: group.clone(),
            left,
        }
    }
}

/// A session that could not be replaced is tried again by a command that comes at least this
/// long after the failed attempt (earlier ones fail at once: the host is known unreachable).
pub(super) const RETRY_LOST_AFTER: Duration = Duration::from_secs(5);

/// A command left running under the supervisor when re-attaching to it failed.
pub(super) struct Orphan {
    /// Its id on the host.
    pub(super) id: String,
    /// The command.
    pub(super) command: String,
    /// Its process group and files, as the host said.
    pub(super) place: Option<Placement>,
    /// How it came to be left running (`its connection was lost and not re-attached within
    /// 1m00s`, `stopping it (its timeout passed) failed`), for the line that says it was
    /// stopped.
    pub(super) left: String,
    /// Its line should tether exit at a second signal before it was stopped or said left
    /// running (stop 37 tester t24: that exit said nothing of it).
    _said: crate::interrupt::LeftBehind,
}

impl Orphan {
    /// The command `command` (id `id`, where the host said it runs `place`) on `host`, reached
    /// with the ssh words `ssh` (see `HostConfig::ssh_command`), left running as `left` says.
    pub(super) fn new(
        host: &str,
        ssh: &str,
        id: String,
        command: String,
        place: Option<Placement>,
        left: String,
    ) -> Orphan {
        let _said = left_at_exit(
            host,
            ssh,
            &command,
            &id,
            place.as_ref(),
            &format!("{left}, and tether exited at a second signal before it could stop it"),
        );
        Orphan {
            id,
            command,
            place,
            left,
            _said,
        }
    }

    /// The words that stop it and remove its files by hand (see `stop_words::by_hand`).
    pub(super) fn stop_with(&self, ssh: &str) -> String {
        stop_with(ssh, &self.id, self.place.as_ref())
    }
}

/// Registers what an exit at a second signal says of the supervised command `command` (id
/// `id`, where the host said it runs `place`) on `host` while it may still run (`how`: why),
/// with the words that stop it, reached with the ssh words `ssh`.
pub(super) fn left_at_exit(
    host: &str,
    ssh: &str,
    command: &str,
    id: &str,
    place: Option<&Placement>,
    how: &str,
) -> crate::interrupt::LeftBehind {
    let stop_with = stop_with(ssh, id, place);
    let (pgid, spool) = where_it_runs(id, place);
    let line = format!(
        "{host}: `{command}` may still be running: {how}; to stop it and remove its files: \
         {stop_with}"
    );
    say_left_at_exit(host, command, how, pgid, spool, stop_with, line)
}

/// What an exit at a second signal says of `command` on `host` once its exec's sh said it
/// runs it directly (`why`, see `exec::incoming::direct_words`): that it may still run, and
/// that no stop reaches it (no words to stop it by hand: those of [`left_at_exit`] stop a
/// command by the supervisor's files, which it has none of).
pub(super) fn direct_left_at_exit(
    host: &str,
    command: &str,
    why: &str,
) -> (String, crate::event::Event) {
    let how =
        format!("it runs without tether's supervisor on this host ({why}), which no stop reaches");
    let line = format!("{host}: `{command}` may still be running: {how}");
    (
        line,
        left_event(host, command, &how, None, String::new(), String::new()),
    )
}

/// The event that says `command` on `host` was left running at a second signal.
fn left_event(
    host: &str,
    command: &str,
    how: &str,
    pgid: Option<String>,
    spool: String,
    stop_with: String,
) -> crate::event::Event {
    crate::event::Event::now(
        std::sync::Arc::from(host),
        crate::event::EventKind::RemoteLeftRunning {
            command: command.to_string(),
            left: how.to_string(),
            why: "tether exited at a second signal".to_string(),
            pgid,
            spool,
            stop_with,
        },
    )
}

/// Registers `line`, and the event that says it, for an exit at a second signal.
fn say_left_at_exit(
    host: &str,
    command: &str,
    how: &str,
    pgid: Option<String>,
    spool: String,
    stop_with: String,
    line: String,
) -> crate::interrupt::LeftBehind {
    let event = left_event(host, command, how, pgid, spool, stop_with);
    crate::interrupt::LeftBehind::say_event(line, event)
}

/// Registers what an exit at a second signal says of `command`, run on a PTY on `host` in
/// process group `pgid`, while it may still run (`how`: why), with the words that stop it,
/// reached with the ssh words `ssh` (stop 57 tester t90: a second SIGTERM named nothing).
pub(super) fn pty_left_at_exit(
    host: &str,
    ssh: &str,
    command: &str,
    pgid: &str,
    how: &str,
) -> crate::interrupt::LeftBehind {
    let stop_with = pty_stop_with(ssh, pgid);
    let line = format!(
        "{host}: `{command}` may still be running: {how}; its process group is {pgid}; to stop \
         it: {stop_with}"
    );
    let pgid = Some(pgid.to_string());
    say_left_at_exit(host, command, how, pgid, String::new(), stop_with, line)
}

/// The words, reached with the ssh words `ssh`, that stop process group `pgid`, a command's on
/// a terminal, by hand (see `stop_words::stop_pty_by_hand`).
pub(super) fn pty_stop_with(ssh: &str, pgid: &str) -> String {
    by_hand(ssh, &stop_pty_by_hand(pgid))
}

/// The process group (where the host said it) and the prefix of the files of the supervised
/// command `id` (where the host said them; else where the supervisor puts them).
pub(super) fn where_it_runs(id: &str, place: Option<&Placement>) -> (Option<String>, String) {
    match place {
        Some(Placement { pgid, spool }) => (Some(pgid.clone()), spool.clone()),
        // The exec's sh says where before the command starts: not known only when the
        // connection died before that arrived. Its files then say it.
        None => (None, format!("${{TMPDIR:-/tmp}}/tether-$LOGNAME/{id}")),
    }
}

/// By its process group where the host said it, else by its id (its files say the group).
fn stop_with(ssh: &str, id: &str, place: Option<&Placement>) -> String {
    use crate::ssh::stop_words::{stop_by_group, stop_by_id};
    match place {
        Some(Placement { pgid, spool }) => by_hand(ssh, &stop_by_group(pgid, spool)),
        None => by_hand(ssh, &stop_by_id(id)),
    }
}
