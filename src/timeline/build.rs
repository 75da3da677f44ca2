//! Runs built from the events of a stream, one event at a time.
//!
//! A stream may hold several runs (a run log, `tether watch`): a run begins at `run_started`
//! or `watch_run_started`; in a stream without those (older tethers), where `t` goes back by
//! more than a second (another process's events appended).

use super::model::{
    seconds, About, Command, Heartbeat, Host, Mark, MarkKind, Outcome, Run, RunOutcome, TaskSpan,
};
use super::read::{CommandOutcome, Entry, Event};
use crate::event::LOST_AT_THE_END;

/// Splits a stream into runs and builds each, one event at a time (nothing but the model is
/// kept, however long the stream).
#[derive(Default)]
pub struct Runs {
    done: Vec<Run>,
    current: Option<Builder>,
    last_t: f64,
}

impl Runs {
    /// Takes the next event.
    pub fn push(&mut self, entry: &Entry) {
        let marked = matches!(
            entry.event,
            Event::RunStarted { .. } | Event::WatchRunStarted { .. }
        );
        // Without those marks (older streams), a clock that goes back means a new process;
        // within a marked run, events stamped by several threads may come a little out of
        // order, and never start a run.
        let unmarked = self.current.as_ref().is_some_and(|b| !b.started);
        let starts = marked || (unmarked && entry.t + 1.0 < self.last_t);
        if starts {
            self.done
                .extend(self.current.take().and_then(Builder::finish));
        }
        self.last_t = entry.t;
        self.current
            .get_or_insert_with(|| Builder::new(entry))
            .push(entry);
    }

    /// The runs, in order (runs with nothing to draw are left out).
    pub fn finish(mut self) -> Vec<Run> {
        self.done
            .extend(self.current.take().and_then(Builder::finish));
        self.done
    }
}

/// Builds one run from its events.
struct Builder {
    t0: f64,
    last: f64,
    /// When `run_finished` or `tether run`'s summary said the run ended.
    end: Option<f64>,
    lines: (usize, usize),
    events: usize,
    started: bool,
    about: About,
    outcome: Option<RunOutcome>,
    summary_failed: Option<bool>,
    /// `tether run`'s failures, from its summary.
    failures: Vec<String>,
    hosts: Vec<Host>,
    tasks: Vec<TaskSpan>,
    /// Indexes into `tasks` of the tasks in progress, innermost last.
    open: Vec<usize>,
}

impl Builder {
    fn new(first: &Entry) -> Self {
        Builder {
            t0: first.t,
            last: first.t,
            end: None,
            lines: (first.line, first.line),
            events: 0,
            started: false,
            about: About::default(),
            outcome: None,
            summary_failed: None,
            failures: Vec::new(),
            hosts: Vec::new(),
            tasks: Vec::new(),
            open: Vec::new(),
        }
    }

    fn host(&mut self, name: &str) -> &mut Host {
        let i = match self.hosts.iter().position(|h| h.name == name) {
            Some(i) => i,
            None => {
                self.hosts.push(Host {
                    name: name.to_string(),
                    ..Host::default()
                });
                self.hosts.len() - 1
            }
        };
        &mut self.hosts[i]
    }

    fn push(&mut self, entry: &Entry) {
        // Events are stamped by the threads that make them, so one may arrive a little after
        // a later one: never before the run's start.
        let t = (entry.t - self.t0).max(0.0);
        self.last = self.last.max(entry.t);
        self.lines.1 = entry.line;
        self.events += 1;
        let task = self.open.last().map(|&i| self.tasks[i].name.clone());
        let host = entry.host.as_deref();
        match (&entry.event, host) {
            (
                Event::RunStarted {
                    recipe,
                    stage,
                    tasks,
                    command,
                    start_unix_ms,
                },
                _,
            ) => {
                self.started = true;
                self.about.recipe = recipe.clone();
                self.about.stage = stage.clone();
                self.about.tasks = tasks.clone();
                self.about.command = command.clone();
                self.about.start_unix_ms = *start_unix_ms;
            }
            (Event::WatchRunStarted { run, reason }, _) => {
                self.started = true;
                self.about.watch = Some((*run, reason.clone()));
            }
            (Event::Hosts { hosts }, _) => {
                for h in hosts {
                    let host = self.host(&h.name);
                    if host.roles.is_empty() {
                        host.roles = h.roles.clone();
                    }
                }
            }
            (Event::Connected {}, Some(h)) => {
                let host = self.host(h);
                host.connected.get_or_insert(t);
            }
            (Event::ConnectFailed { error, kind }, Some(h)) => {
                let host = self.host(h);
                host.lost = Some(t);
                // Given up by tether at a signal: not the host's failure (stop 46 tester t59:
                // drawn as unreachable where the run said `never connected (connecting was
                // stopped ...)`).
                let stopped = kind.as_deref() == Some(crate::failure::Kind::Interrupted.name());
                host.marks.push(Mark {
                    t,
                    kind: match stopped {
                        true => MarkKind::ConnectStopped,
                        false => MarkKind::ConnectFailed,
                    },
                    detail: error.clone(),
                });
            }
            (Event::Unreachable { error }, Some(h)) => {
                let host = self.host(h);
                host.lost = Some(t);
                host.marks.push(Mark {
                    t,
                    kind: MarkKind::Unreachable,
                    detail: error.clone(),
                });
            }
            (Event::SessionLost { reason }, Some(h)) => {
                let host = self.host(h);
                host.lost = Some(t);
                host.marks.push(Mark {
                    t,
                    kind: MarkKind::Unreachable,
                    detail: format!("{reason}; {LOST_AT_THE_END}"),
                });
            }
            (Event::CommandStarted { command }, Some(h)) => {
                let host = self.host(h);
                // A host runs one command at a time: one still open has no end in the stream
                // (a lost line), and it ended no later than this start.
                if let Some(open) = host.commands.last_mut().filter(|c| c.end.is_none()) {
                    open.end = Some(t.max(open.start));
                    open.status = "its end is not in the stream".into();
                }
                host.commands.push(Command {
                    start: t,
                    end: None,
                    command: command.clone(),
                    task,
                    outcome: Outcome::Unfinished,
                    status: "still running where the stream ends".into(),
                    duration_ms: None,
                });
            }
            (
                Event::CommandFinished {
                    command,
                    exit_code,
                    signal,
                    error,
                    duration_ms,
                    outcome,
                },
                Some(h),
            ) => {
                let (outcome, status) = command_outcome(*exit_code, signal, error, *outcome);
                let host = self.host(h);
                // A host runs one command at a time: this ends the open one, if it is the same
                // command (one finished without a start is drawn from its duration).
                let open = host
                    .commands
                    .last_mut()
                    .filter(|c| c.end.is_none() && c.command == *command);
                let c = match open {
                    Some(c) => c,
                    None => {
                        host.commands.push(Command {
                            start: (t - duration_ms / 1000.0).max(0.0),
                            end: None,
                            command: command.clone(),
                            task,
                            outcome: Outcome::Unfinished,
                            status: String::new(),
                            duration_ms: None,
                        });
                        let last = host.commands.len() - 1;
                        &mut host.commands[last]
                    }
                };
                c.end = Some(t.max(c.start));
                c.outcome = outcome;
                c.status = status;
                c.duration_ms = Some(*duration_ms);
            }
            (Event::Heartbeat { rtt_ms, probe }, Some(h)) => {
                self.host(h).heartbeats.push(Heartbeat {
                    t,
                    rtt_ms: *rtt_ms,
                    probe: *probe,
                });
            }
            (
                Event::Reconnect {
                    reason,
                    while_idle,
                    took_ms,
                },
                Some(h),
            ) => {
                let host = self.host(h);
                host.lost = None;
                host.marks.push(Mark {
                    t,
                    kind: MarkKind::Reconnect {
                        took: took_ms / 1000.0,
                        while_idle: *while_idle,
                    },
                    detail: reason.clone(),
                });
            }
            // A command sent again after its connection died before it started: its session was
            // replaced, as the run's summary counts it.
            (Event::Resend { command, took_ms }, Some(h)) => {
                let host = self.host(h);
                host.lost = None;
                host.marks.push(Mark {
                    t,
                    kind: MarkKind::Reconnect {
                        took: took_ms / 1000.0,
                        while_idle: false,
                    },
                    detail: format!(
                        "connection lost after sending `{command}`, before it started; sent again"
                    ),
                });
            }
            (Event::Reattach { fields }, Some(h)) => {
                // Its times in words (stop 46 tester t59: `heard_after_ms: 2098.529`); a
                // field of another tether's as it is.
                let ms = |v: &serde_json::Value| v.as_f64().map(|ms| seconds(ms / 1000.0));
                let detail = fields
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "t" | "host"))
                    .map(|(k, v)| match (k.as_str(), ms(v)) {
                        ("heard_after_ms", _) if v.is_null() => {
                            "nothing heard from it before the loss".to_string()
                        }
                        ("heard_after_ms", Some(t)) => format!("last heard {t} into it"),
                        ("lost_after_ms", Some(t)) => format!("connection lost {t} into it"),
                        ("took_ms", Some(t)) => format!("re-attached after {t}"),
                        _ => match v {
                            serde_json::Value::String(s) => format!("{k}: {s}"),
                            other => format!("{k}: {other}"),
                        },
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                self.host(h).marks.push(Mark {
                    t,
                    kind: MarkKind::Reattach,
                    detail,
                });
            }
            (
                Event::HeartbeatIntervalLearned {
                    died_after_ms,
                    interval_ms,
                    confirmed,
                },
                Some(h),
            ) => {
                let (died, every) = (
                    seconds(died_after_ms / 1000.0),
                    seconds(interval_ms / 1000.0),
                );
                self.host(h).marks.push(Mark {
                    t,
                    kind: MarkKind::Learned,
                    detail: match confirmed {
                        true => format!(
                            "the server closed the idle session after {died} idle, as before: \
                             its idle limit; heartbeat every {every} from then on"
                        ),
                        false => format!(
                            "the idle session was closed after {died} idle (by the server's \
                             idle limit or by something else); heartbeat every {every} for the run"
                        ),
                    },
                });
            }
            (Event::TaskStarted { task }, _) => {
                if let Some(&parent) = self.open.last() {
                    self.tasks[parent].has_children = true;
                }
                self.tasks.push(TaskSpan {
                    name: task.clone(),
                    start: t,
                    end: None,
                    ok: None,
                    depth: self.open.len(),
                    has_children: false,
                });
                self.open.push(self.tasks.len() - 1);
            }
            (Event::TaskFinished { task, ok }, _) => {
                let found = self.open.iter().rposition(|&i| self.tasks[i].name == *task);
                if let Some(k) = found {
                    for &i in &self.open[k..] {
                        self.tasks[i].end = Some(t);
                    }
                    self.tasks[self.open[k]].ok = Some(*ok);
                    self.open.truncate(k);
                }
            }
            (
                Event::RunFinished {
                    title,
                    ok,
                    exit_code,
                    error,
                },
                _,
            ) => {
                self.about.title = Some(title.clone());
                self.end = Some(t);
                self.outcome = Some(match (ok, exit_code) {
                    (true, _) => RunOutcome::Ok,
                    (false, Some(130)) => RunOutcome::Interrupted {
                        error: error.clone(),
                    },
                    (false, code) => RunOutcome::Failed {
                        exit_code: *code,
                        error: error.clone(),
                    },
                });
            }
            // A watch run's end (stop 42 tester t47: every run of a watch stream was
            // "unfinished: the stream ends first").
            (
                Event::WatchRunFinished {
                    result,
                    exit_code,
                    error,
                },
                _,
            ) => {
                self.end = Some(t);
                self.outcome = Some(match (result.as_str(), exit_code) {
                    ("ok", _) | (_, Some(0)) => RunOutcome::Ok,
                    ("cancelled", _) | (_, Some(130)) => RunOutcome::Interrupted {
                        error: error.clone(),
                    },
                    (_, code) => RunOutcome::Failed {
                        exit_code: *code,
                        error: error.clone(),
                    },
                });
            }
            (
                Event::Summary {
                    ok,
                    failure,
                    exit_code,
                },
                _,
            ) => {
                self.end = Some(t);
                if let Some(ok) = ok {
                    self.summary_failed = Some(self.summary_failed.unwrap_or(false) || !ok);
                }
                self.failures.extend(failure.clone());
                if let Some(code) = exit_code {
                    let error = (!self.failures.is_empty()).then(|| self.failures.join("\n"));
                    self.outcome = Some(match code {
                        0 => RunOutcome::Ok,
                        130 => RunOutcome::Interrupted { error },
                        code => RunOutcome::Failed {
                            exit_code: Some(*code),
                            error,
                        },
                    });
                }
            }
            _ => {}
        }
    }

    /// The run, unless it holds nothing to draw (prints before a run started, say).
    fn finish(self) -> Option<Run> {
        let empty = !self.started && self.hosts.is_empty() && self.tasks.is_empty();
        if empty {
            return None;
        }
        // What the reporter prints after the end (where the timeline went) is not the run.
        let duration = self.end.unwrap_or((self.last - self.t0).max(0.0));
        let outcome = match (self.outcome, self.summary_failed) {
            (Some(o), _) => o,
            (None, Some(false)) => RunOutcome::Ok,
            (None, Some(true)) => RunOutcome::Failed {
                exit_code: None,
                error: (!self.failures.is_empty()).then(|| self.failures.join("\n")),
            },
            (None, None) => RunOutcome::Unfinished,
        };
        Some(Run {
            about: self.about,
            outcome,
            duration,
            hosts: self.hosts,
            tasks: self.tasks,
            lines: self.lines,
            events: self.events,
        })
    }
}

/// A command's colour and status words, from `outcome` when the stream has it, else from the
/// exit code (streams from before the field).
fn command_outcome(
    exit_code: Option<i32>,
    signal: &Option<String>,
    error: &Option<String>,
    outcome: Option<CommandOutcome>,
) -> (Outcome, String) {
    let status = match (exit_code, signal, error) {
        (Some(c), _, _) => format!("exit {c}"),
        (None, Some(s), _) => format!("signal {s}"),
        (None, None, Some(e)) => e.clone(),
        (None, None, None) => "no exit status".into(),
    };
    let outcome = match outcome {
        Some(CommandOutcome::Ok) => Outcome::Ok,
        Some(CommandOutcome::Stopped) => Outcome::Stopped,
        Some(_) => Outcome::Failed,
        None if exit_code == Some(0) => Outcome::Ok,
        None => Outcome::Failed,
    };
    (outcome, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::read::for_each;

    fn runs(text: &str) -> Vec<Run> {
        let mut runs = Runs::default();
        for_each(text.as_bytes(), |e| runs.push(&e)).unwrap();
        runs.finish()
    }

    #[test]
    fn older_streams_split_where_the_clock_goes_back() {
        // Two processes' `--format json` appended, from before `run_started`.
        let one = concat!(
            r#"{"t":0.1,"type":"hosts","hosts":[{"name":"a","roles":[]}]}"#,
            "\n",
            r#"{"t":5.0,"host":"a","type":"command_finished","command":"sleep 4","exit_code":0,"signal":null,"error":null,"duration_ms":4000}"#,
            "\n",
        );
        let runs = runs(&format!("{one}{one}"));
        assert_eq!(runs.len(), 2);
        // A command finished without its start is drawn from its duration.
        let c = &runs[1].hosts[0].commands[0];
        assert!((c.start - 0.9).abs() < 1e-9, "{}", c.start);
        assert_eq!((c.end, c.outcome), (Some(4.9), Outcome::Ok));
        assert_eq!(runs[1].lines, (3, 4));
        assert_eq!(runs[0].outcome, RunOutcome::Unfinished);
    }

    /// A watch stream's runs end with `watch_run_finished` (stop 42 tester t47: each was
    /// "unfinished: the stream ends first").
    #[test]
    fn a_watch_runs_end_is_its_outcome() {
        let run = |n: u32, result: &str, code: i32| {
            format!(
                "{{\"t\":{n}.0,\"type\":\"watch_run_started\",\"run\":{n},\"reason\":\"x\"}}\n\
                 {{\"t\":{n}.5,\"type\":\"watch_run_finished\",\"run\":{n},\"result\":\"{result}\",\"exit_code\":{code},\"error\":null,\"duration_ms\":500}}\n"
            )
        };
        let text = [
            run(1, "ok", 0),
            run(2, "recipe error", 4),
            run(3, "cancelled", 130),
        ]
        .concat();
        let runs = runs(&text);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].outcome, RunOutcome::Ok);
        assert_eq!(
            runs[1].outcome,
            RunOutcome::Failed {
                exit_code: Some(4),
                error: None
            }
        );
        assert_eq!(runs[2].outcome, RunOutcome::Interrupted { error: None });
    }

    #[test]
    fn marked_runs_never_split_on_a_late_event() {
        let text = concat!(
            r#"{"t":1.0,"type":"run_started","recipe":null,"stage":null,"tasks":["t"],"command":null,"start_unix_ms":0}"#,
            "\n",
            r#"{"t":9.0,"type":"task_started","task":"t"}"#,
            "\n",
            r#"{"t":7.5,"host":"a","type":"heartbeat","rtt_ms":1,"probe":false}"#,
            "\n",
        );
        let runs = runs(text);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].hosts[0].heartbeats[0].t, 6.5);
    }

    #[test]
    fn tasks_nest_and_commands_take_the_innermost() {
        let text = concat!(
            r#"{"t":0,"type":"task_started","task":"deploy"}"#,
            "\n",
            r#"{"t":1,"type":"task_started","task":"deploy:check"}"#,
            "\n",
            r#"{"t":1,"host":"a","type":"command_started","command":"x"}"#,
            "\n",
            r#"{"t":2,"type":"task_finished","task":"deploy:check","ok":true}"#,
            "\n",
            r#"{"t":2,"host":"a","type":"command_started","command":"y"}"#,
            "\n",
            r#"{"t":3,"type":"task_finished","task":"deploy","ok":false}"#,
            "\n",
        );
        let run = &runs(text)[0];
        let tasks: Vec<_> = run
            .tasks
            .iter()
            .map(|t| (t.name.as_str(), t.depth, t.has_children, t.ok))
            .collect();
        assert_eq!(
            tasks,
            [
                ("deploy", 0, true, Some(false)),
                ("deploy:check", 1, false, Some(true))
            ]
        );
        let host = &run.hosts[0];
        assert_eq!(host.commands[0].task.as_deref(), Some("deploy:check"));
        assert_eq!(host.commands[1].task.as_deref(), Some("deploy"));
        // The second never finished: unfinished, to the end of the stream.
        assert_eq!(host.commands[1].outcome, Outcome::Unfinished);
        // Nor did `x`, but `y` started: `x` ended by then, how is not known.
        assert_eq!(host.commands[0].end, Some(2.0));
        assert_eq!(host.commands[0].outcome, Outcome::Unfinished);
        assert_eq!(host.commands[0].status, "its end is not in the stream");
    }

    #[test]
    fn tether_runs_end_with_their_summary() {
        let text = concat!(
            r#"{"t":0.1,"type":"run_started","recipe":null,"stage":null,"tasks":[],"command":"sleep 9","start_unix_ms":0}"#,
            "\n",
            r#"{"t":2.0,"type":"summary","host":"a","ok":false,"status":"not run","failure":"a: `sleep 9` was not run"}"#,
            "\n",
            r#"{"t":2.0,"type":"summary","hosts":[],"exit_code":130,"duration_ms":1900}"#,
            "\n",
            r#"{"t":2.5,"type":"timeline","path":"t.html"}"#,
            "\n",
        );
        let run = &runs(text)[0];
        assert_eq!(
            run.outcome,
            RunOutcome::Interrupted {
                error: Some("a: `sleep 9` was not run".into())
            }
        );
        // What comes after the end is not part of its length.
        assert!((run.duration - 1.9).abs() < 1e-9, "{}", run.duration);
    }
}
