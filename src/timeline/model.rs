//! What a timeline shows: runs, and in each run its hosts (commands with their task and
//! outcome, heartbeats, reconnects and re-attaches), its tasks as nested spans, and what the
//! header says. Times are seconds since the run started. `build.rs` builds them from the
//! events of a stream.

/// How a command bar is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Ok,
    /// Any failure (status, signal, no status, timeout, lost, not run).
    Failed,
    /// Stopped by tether (Ctrl-C or `watch --kill` on a PTY command).
    Stopped,
    /// The stream ends while it runs.
    Unfinished,
}

/// One command on one host.
#[derive(Debug, Clone)]
pub struct Command {
    /// When it was sent.
    pub start: f64,
    /// When it ended (`None`: the stream ends first).
    pub end: Option<f64>,
    /// The command as sent (secrets masked).
    pub command: String,
    /// The innermost task running when it was sent.
    pub task: Option<String>,
    /// Its colour.
    pub outcome: Outcome,
    /// In words: `exit 0`, `exit 3`, `signal TERM`, or the error (`no exit status received`).
    pub status: String,
    /// Its duration as tether measured it, ms.
    pub duration_ms: Option<f64>,
}

/// A marked moment on a host's row.
#[derive(Debug, Clone, PartialEq)]
pub enum MarkKind {
    /// The session died and was replaced; it took `took` seconds (drawn before the mark).
    Reconnect {
        /// Seconds to connect again.
        took: f64,
        /// Found dead while idle (or before a command).
        while_idle: bool,
    },
    /// A command's output was picked up again on a new session.
    Reattach,
    /// The heartbeat interval was shortened.
    Learned,
    /// No session from here on (a reconnect failed, or was cut short by the run's end).
    Unreachable,
    /// The first connection failed.
    ConnectFailed,
    /// tether gave the first connection up (an interrupt): no failure of the host's.
    ConnectStopped,
}

/// A mark with its time and what the tooltip says.
#[derive(Debug, Clone)]
pub struct Mark {
    /// When.
    pub t: f64,
    /// What.
    pub kind: MarkKind,
    /// The event's own words (reason, error, fields).
    pub detail: String,
}

/// One heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// When it succeeded.
    pub t: f64,
    /// Its round trip, ms.
    pub rtt_ms: f64,
    /// Woken by the server's traffic (a ClientAlive probe).
    pub probe: bool,
}

/// One host's row.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Its name.
    pub name: String,
    /// Its roles (empty without a recipe).
    pub roles: Vec<String>,
    /// When its first session was up (`None`: no `connected` event).
    pub connected: Option<f64>,
    /// When it lost its session for good (unreachable, connect failed, lost as the run ended).
    pub lost: Option<f64>,
    /// Its commands, in order.
    pub commands: Vec<Command>,
    /// Its heartbeats, in order.
    pub heartbeats: Vec<Heartbeat>,
    /// Reconnects, re-attaches and failures.
    pub marks: Vec<Mark>,
}

impl Host {
    /// Sessions replaced: a re-attach's too, as the run's own summary counts them (stop 46
    /// tester t59: the page said 0 reconnects where the summary said 1, with 1 re-attach).
    pub fn reconnects(&self) -> usize {
        self.marks
            .iter()
            .filter(|m| matches!(m.kind, MarkKind::Reconnect { .. } | MarkKind::Reattach))
            .count()
    }

    /// Commands re-attached.
    pub fn reattaches(&self) -> usize {
        self.marks
            .iter()
            .filter(|m| m.kind == MarkKind::Reattach)
            .count()
    }

    /// When something first happened on it.
    pub fn first_seen(&self) -> Option<f64> {
        let firsts = [
            self.connected,
            self.commands.first().map(|c| c.start),
            self.heartbeats.first().map(|h| h.t),
            self.marks.first().map(|m| m.t),
        ];
        firsts.into_iter().flatten().reduce(f64::min)
    }
}

/// A task with its hooks, from `task_started` to `task_finished`.
#[derive(Debug, Clone)]
pub struct TaskSpan {
    /// `namespace:name`.
    pub name: String,
    /// Start.
    pub start: f64,
    /// End (`None`: the stream ends first).
    pub end: Option<f64>,
    /// Whether it succeeded (`None`: unfinished).
    pub ok: Option<bool>,
    /// Nesting: 0 for a task asked for, 1 for a task it invokes, ...
    pub depth: usize,
    /// Whether another task ran inside it.
    pub has_children: bool,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Everything succeeded.
    Ok,
    /// It failed with this exit code (`None`: the stream does not say) and message.
    Failed {
        /// The exit code.
        exit_code: Option<i32>,
        /// The message.
        error: Option<String>,
    },
    /// Ctrl-C (exit 130).
    Interrupted {
        /// The message.
        error: Option<String>,
    },
    /// The stream ends before the run does.
    Unfinished,
}

/// What ran: the header of the page.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// The recipe file.
    pub recipe: Option<String>,
    /// The stage.
    pub stage: Option<String>,
    /// The tasks asked for.
    pub tasks: Vec<String>,
    /// `tether run`'s command.
    pub command: Option<String>,
    /// `tether watch`'s run number and why it ran.
    pub watch: Option<(u64, String)>,
    /// The wall clock at the start, ms since the Unix epoch.
    pub start_unix_ms: Option<u64>,
    /// `run_finished`'s title.
    pub title: Option<String>,
}

/// One run of a stream.
#[derive(Debug, Clone)]
pub struct Run {
    /// What ran.
    pub about: About,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Its length in seconds: to its end (`run_finished`, `tether run`'s summary), else to
    /// its last event.
    pub duration: f64,
    /// Its hosts, in the order the `hosts` events name them (others as they appear).
    pub hosts: Vec<Host>,
    /// Its tasks, in start order.
    pub tasks: Vec<TaskSpan>,
    /// Its first and last line in the stream.
    pub lines: (usize, usize),
    /// How many events it holds.
    pub events: usize,
}

impl Run {
    /// Commands over all hosts.
    pub fn commands(&self) -> usize {
        self.hosts.iter().map(|h| h.commands.len()).sum()
    }

    /// Heartbeats over all hosts.
    pub fn heartbeats(&self) -> usize {
        self.hosts.iter().map(|h| h.heartbeats.len()).sum()
    }

    /// Reconnects over all hosts.
    pub fn reconnects(&self) -> usize {
        self.hosts.iter().map(Host::reconnects).sum()
    }

    /// Re-attaches over all hosts.
    pub fn reattaches(&self) -> usize {
        self.hosts.iter().map(Host::reattaches).sum()
    }

    /// The hosts grouped by their roles (hosts with the same set of roles together; hosts
    /// without a role last), groups in the order their first host appears: (roles, indexes
    /// into `hosts`).
    pub fn groups(&self) -> Vec<(&[String], Vec<usize>)> {
        let mut groups: Vec<(&[String], Vec<usize>)> = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let roles = h.roles.as_slice();
            match groups.iter_mut().find(|(r, _)| *r == roles) {
                Some((_, members)) => members.push(i),
                None => groups.push((roles, vec![i])),
            }
        }
        groups.sort_by_key(|(roles, _)| roles.is_empty());
        groups
    }
}

/// `12.3 s`, `250 ms`, `2m05s`: a time or duration in seconds, for people.
pub fn seconds(s: f64) -> String {
    crate::duration::seconds(s).map_or_else(|_| "?".into(), crate::duration::format)
}
