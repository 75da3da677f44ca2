//! What the reporter knows while it prints: the hosts in order with their counters, the tasks
//! in progress, whether the status line is on screen; and how text output looks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::event::{CommandOutcome, Event, EventKind, LOST_AT_THE_END};
use crate::settings::Format;

/// What the reporter knows about one host.
#[derive(Debug, Clone, Default)]
pub struct HostStats {
    /// Successful idle heartbeats.
    pub heartbeats: u64,
    /// Dead sessions replaced.
    pub reconnects: u64,
    /// Commands re-attached after their connection was lost and replaced (issue 13's
    /// supervisor counts them here; zero until then).
    pub reattaches: u64,
    /// A command is running.
    pub busy: bool,
    /// When the host last finished work or a heartbeat.
    pub idle_since: Option<Instant>,
    /// When the last heartbeat succeeded.
    pub last_heartbeat: Option<Instant>,
    /// When the current session was opened; `None` while it has none.
    pub connected_at: Option<Instant>,
    /// Its session died and an attempt to replace it failed; another follows (a
    /// `reconnecting` event): not idle and kept alive.
    pub reconnecting: bool,
    /// Why the host has no session (it never connected, its connection was lost under a
    /// command, or it could not be reconnected).
    pub failed: Option<String>,
    /// Sessions opened (the first connection and every reconnect): a host that has none now
    /// may have had one.
    pub sessions: u64,
    /// Commands that ran to an end there (an exit status or a signal).
    pub commands: u64,
}

/// The widest host names line up to: a longer one's lines stand out by its length (stop 67
/// tester t112: one 201-character name padded every other host's lines to 200 columns).
pub const PAD_MOST: usize = 32;

#[derive(Default)]
pub struct State {
    /// How wide a host's name is padded in front of its lines: the widest name, at most
    /// [`PAD_MOST`].
    pub width: usize,
    /// The run's hosts, in the order they were announced (see [`State::announce`]).
    pub order: Vec<String>,
    /// Where each host of `order` is in it: asked for every line a host prints (its colour),
    /// and for each host announced (a 90,000-host dry run spent most of its minute searching
    /// `order`).
    index: HashMap<String, usize>,
    pub hosts: BTreeMap<String, HostStats>,
    /// Tasks in progress, innermost last, with their start.
    pub tasks: Vec<(String, Instant)>,
    pub status_shown: bool,
    /// The last state a command drew over with `\r` (a progress line), or the line it left
    /// unended a while (a prompt), as host and text: shown in the status line until that
    /// host's line or command ends.
    pub drawing: Option<(String, String)>,
    /// The run is a dry run (its `run_started` said so): its end has no sessions to sum up.
    pub dry_run: bool,
    /// The task whose `▶` heading text output printed last.
    pub headed: Option<String>,
}

impl State {
    /// The task to head again before `event`'s lines in text output: the innermost one running,
    /// where its heading is not the last printed (stop 67 tester t116: a before hook's
    /// commands after its `invoke` printed under the invoked task's heading; JSON and the
    /// timeline had them right). Taken as printed.
    pub fn rehead(&mut self, event: &Event) -> Option<String> {
        let lines = matches!(
            event.kind,
            EventKind::OnCommand { .. }
                | EventKind::Print { .. }
                | EventKind::Output { .. }
                | EventKind::Planned { .. }
                | EventKind::PlannedUpload { .. }
                | EventKind::PlannedDownload { .. }
                | EventKind::PlannedLocal { .. }
                | EventKind::LocalOutput { .. }
        );
        let (top, _) = self.tasks.last().filter(|_| lines)?;
        if self.headed.as_ref() == Some(top) {
            return None;
        }
        self.headed = Some(top.clone());
        self.headed.clone()
    }

    /// The hosts a run's end reports the sessions of: its hosts in order, then the jump hosts
    /// it connected through (`bastion (jump)`, whose sessions it opened too).
    pub fn session_hosts(&self) -> Vec<&String> {
        let jumps = self.hosts.keys().filter(|h| {
            h.ends_with(crate::host_text::JUMP_LABEL) && !self.index.contains_key(h.as_str())
        });
        self.order.iter().chain(jumps).collect()
    }

    /// Adds `host` to the run's hosts, after those announced before, once.
    pub fn announce(&mut self, host: &str) {
        if !self.index.contains_key(host) {
            self.index.insert(host.to_string(), self.order.len());
            self.order.push(host.to_string());
        }
    }

    /// Where `host` is among the run's hosts, if it was announced.
    pub fn position(&self, host: &str) -> Option<usize> {
        self.index.get(host).copied()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Look {
    pub format: Format,
    /// A live status line (text on a terminal).
    pub live: bool,
    /// The status line is dimmed (written past anstream, so it decides itself).
    pub dim: bool,
    pub verbose: bool,
    /// Fold the same line, result or failure of many hosts into one (text only).
    pub fold: bool,
    /// stdout is a listing (`tether hosts`, `tether tasks`), read by scripts: tether's own
    /// warnings and notes go to stderr, as `ssh -G` says its own (text only).
    pub listing: bool,
}

pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Printing state stays usable even if a printing thread panicked.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes terminal control sequences (the status line) past anstream, which would strip them
/// under `--color never`.
pub fn raw(text: &str) {
    crate::stdout::write_raw(text.as_bytes());
}

pub fn clear_status(st: &mut State, look: Look) {
    if look.live && st.status_shown {
        raw("\r\x1b[2K");
        st.status_shown = false;
    }
}

pub fn record(st: &mut State, event: &Event) {
    if let EventKind::Hosts { hosts } = &event.kind {
        for h in hosts {
            st.announce(&h.name);
            st.hosts.entry(h.name.clone()).or_default();
        }
        // As the names are shown: quoted where a set would read them otherwise.
        st.width = st
            .order
            .iter()
            .map(|n| crate::host_text::named(n).chars().count())
            .max()
            .unwrap_or(0)
            .min(PAD_MOST);
        return;
    }
    match &event.kind {
        EventKind::TaskStarted { task } => {
            st.tasks.push((task.clone(), event.at));
            st.headed = Some(task.clone());
        }
        EventKind::RunStarted { dry_run, .. } => st.dry_run = *dry_run,
        EventKind::TaskFinished { task, .. } => {
            if let Some(i) = st.tasks.iter().rposition(|(t, _)| t == task) {
                st.tasks.truncate(i);
            }
        }
        EventKind::RunFinished { .. } | EventKind::Summary { .. } => st.tasks.clear(),
        _ => {}
    }
    if event.host.is_empty() {
        return;
    }
    match &event.kind {
        EventKind::Output {
            line,
            redrawn: true,
            ..
        }
        | EventKind::Output {
            line,
            pending: true,
            ..
        } => st.drawing = Some((event.host.to_string(), line.clone())),
        EventKind::Output { .. } | EventKind::Finished { .. }
            if st.drawing.as_ref().is_some_and(|(h, _)| *h == *event.host) =>
        {
            st.drawing = None
        }
        _ => {}
    }
    let h = st.hosts.entry(event.host.to_string()).or_default();
    match &event.kind {
        EventKind::Connected { .. } => {
            h.reconnecting = false;
            h.sessions += 1;
            h.connected_at = Some(event.at);
            h.idle_since = Some(event.at);
            h.failed = None;
        }
        EventKind::ConnectFailed { error, .. } | EventKind::Unreachable { error } => {
            h.reconnecting = false;
            h.connected_at = None;
            // Said after the host's name in the summary: without the `HOST: ` every SSH
            // failure begins with (see `SshError::said`).
            let own = error
                .strip_prefix(&*event.host)
                .and_then(|rest| rest.strip_prefix(": "));
            h.failed = Some(own.unwrap_or(error).to_string());
        }
        EventKind::Started { .. } => h.busy = true,
        EventKind::Finished {
            exit_code,
            signal,
            outcome,
            duration,
            ..
        } => {
            if exit_code.is_some() || signal.is_some() {
                h.commands += 1;
            }
            h.busy = false;
            h.idle_since = Some(event.at);
            // Lost under the command and not re-attached: no session is open any more, until
            // a reconnect says otherwise; one reported before this (by the worker's thread)
            // but after the command started opened the session the host has now.
            let started = event.at.checked_sub(*duration);
            let reopened = h
                .connected_at
                .is_some_and(|at| started.is_some_and(|s| at > s));
            if *outcome == CommandOutcome::Lost && !reopened {
                h.connected_at = None;
                h.failed = Some("the connection was lost during a command".into());
            }
        }
        EventKind::Heartbeat { .. } => {
            h.heartbeats += 1;
            h.last_heartbeat = Some(event.at);
        }
        EventKind::Reconnecting { .. } => h.reconnecting = true,
        EventKind::Reattached { .. } => {
            h.reconnecting = false;
            // A re-attach is a new session reached by a reconnect, to the same command.
            h.sessions += 1;
            h.reconnects += 1;
            h.reattaches += 1;
            h.connected_at = Some(event.at);
        }
        EventKind::Resent { .. } => {
            // A new session, to a command that never ran: a reconnect, not a re-attach.
            h.reconnecting = false;
            h.sessions += 1;
            h.reconnects += 1;
            h.connected_at = Some(event.at);
        }
        EventKind::SessionLost { reason, .. } => {
            h.reconnecting = false;
            h.connected_at = None;
            h.failed = Some(format!("{reason}; {LOST_AT_THE_END}"));
        }
        // Beside the one it has: counted, as the jump host's logins are.
        EventKind::AnotherConnection { .. } => h.sessions += 1,
        EventKind::Reconnected { .. } => {
            h.reconnecting = false;
            h.sessions += 1;
            h.reconnects += 1;
            h.connected_at = Some(event.at);
            h.failed = None;
        }
        _ => {}
    }
}
