//! Output: one reporter thread turns the events of a run into host-prefixed lines, tether's
//! own lines, a live status line on a terminal, summaries, or (`--format json`) one JSON
//! object per event. Every part of tether reports through its [`Sink`], so lines never
//! interleave mid-line and the text and JSON views show the same run. [Taps](Tap) get the
//! JSON objects too, whatever stdout shows (the timeline, a run log).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fold::Fold;
use fold::Lane;
use json::json_lines;
use status::draw_status;
use text::{group_line, host_lines, text_lines};

pub use run_log::RunLog;
pub use state::HostStats;
use state::{clear_status, lock, record, Look, State};
pub use tap::Tap;
use tap::Taps;

mod fold;
mod json;
mod paint;
mod progress;
mod run_log;
mod state;
mod status;
mod summary;
mod tap;
mod text;
mod visible;

pub use summary::counts_said;
pub use visible::visible_lines;

use crate::error::Error;
use crate::event::{Event, EventKind, HostOutcome, Tally};
use crate::outcome::{failure_text, status_words};
use crate::pool::HostResult;
use crate::settings::{Color, Format, Settings};
use crate::sink::{Message, Sink};

/// Prints events; see the module docs.
pub struct Reporter {
    sink: Sink,
    state: Arc<Mutex<State>>,
    look: Look,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts the reporter thread, as `settings` say: `--format`; `-v` prints heartbeats and
    /// every command even on a terminal; `--color` (`auto`: on a terminal, unless `NO_COLOR`
    /// is set); `--no-fold`.
    pub fn start(settings: &Settings) -> Self {
        Self::tapped(settings, Vec::new())
    }

    /// [`Reporter::start`], with `taps` receiving every event as `--format json`'s JSON lines;
    /// they are flushed at every [`Reporter::barrier`] and dropped when the reporter ends.
    pub fn tapped(settings: &Settings, taps: Vec<Tap>) -> Self {
        Self::spawn(settings, taps, false, false)
    }

    /// [`Reporter::start`] for a subcommand whose stdout is a listing (`tether hosts`,
    /// `tether tasks`): in text, tether's warnings and notes go to stderr, leaving stdout to
    /// the rows (and to the recipe's `print`, which goes where a run's output goes).
    pub fn for_listing(settings: &Settings) -> Self {
        Self::spawn(settings, Vec::new(), false, true)
    }

    /// [`Reporter::tapped`] for a run (`tether TASK`, `tether run`), whose `run_started` is the
    /// first of its events (README): what comes before it (a recipe's top-level `print` while
    /// it loads) is held and written just after it, or at the first barrier or the end when
    /// none comes (the recipe did not load).
    pub fn for_run(settings: &Settings, taps: Vec<Tap>) -> Self {
        Self::spawn(settings, taps, true, false)
    }

    fn spawn(settings: &Settings, taps: Vec<Tap>, hold: bool, listing: bool) -> Self {
        let (format, verbose, color) = (settings.format, settings.verbose, settings.color);
        let tty = std::io::stdout().is_terminal();
        crate::stdout::set_color(match (format, color) {
            // JSON holds no colour, and a line's every character (DEL, which stripping
            // colour removes: stop 50 tester t72).
            (Format::Json, _) => anstream::ColorChoice::AlwaysAnsi,
            (_, Color::Never) => anstream::ColorChoice::Never,
            (_, Color::Always) => anstream::ColorChoice::Always,
            (_, Color::Auto) => anstream::ColorChoice::Auto,
        });
        let look = Look {
            format,
            live: tty && format == Format::Text,
            dim: format == Format::Text && crate::stdout::choice() != anstream::ColorChoice::Never,
            verbose,
            fold: settings.fold && format == Format::Text,
            listing: listing && format == Format::Text,
        };
        let (sink, rx) = crate::sink::channel();
        // An exit at a second signal ends the process at once: what it leaves behind, and the
        // exit, as objects of the stream (stop 42 tester t47: stderr alone said them). Once
        // per process, whatever reporters it starts.
        static EXIT_REPORT: std::sync::Once = std::sync::Once::new();
        if format == Format::Json {
            let started = Instant::now();
            EXIT_REPORT.call_once(|| {
                crate::interrupt::report_on_exit(Box::new(move |events, code, why| {
                    // Plain events: the run's state (the reporter's, maybe mid-write) is not read.
                    let st = State::default();
                    for event in events {
                        for line in json_lines(&st, event, started) {
                            crate::stdout::write(format_args!("{line}\n"));
                        }
                    }
                    let end =
                        serde_json::json!({ "type": "error", "exit_code": code, "error": why });
                    crate::stdout::write(format_args!("{end}\n"));
                    crate::stdout::flush();
                }))
            });
        }
        let state = Arc::new(Mutex::new(State::default()));
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("reporter".into())
            .spawn(move || run(rx, thread_state, look, Taps::new(taps), hold))
            .ok();
        Reporter {
            sink,
            state,
            look,
            thread,
        }
    }

    /// The channel every part of the run reports to.
    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Waits until every event sent before this call has been printed.
    pub fn barrier(&self) {
        self.sink.barrier();
    }

    /// Per-host counters.
    pub fn stats(&self) -> BTreeMap<String, HostStats> {
        lock(&self.state).hosts.clone()
    }

    /// Reports the outcome of every host of one fan-out (`tether run`), failures with their
    /// stderr tails, and the exit code of the whole (`result`); returns once it is printed.
    pub fn summary(&self, results: &[HostResult], result: &Result<(), Error>, elapsed: Duration) {
        let hosts = results
            .iter()
            .map(|r| {
                let (status, tally) = status_words(r);
                let ok = tally == Tally::Ok;
                HostOutcome {
                    host: r.host.clone(),
                    ok,
                    tally,
                    status,
                    duration: match &r.result {
                        Some(Ok(out)) => Some(out.duration),
                        // A command given up or stopped ran for as long as that took.
                        Some(Err(crate::ssh::SshError::CommandTimeout { timeout, .. })) => {
                            Some(*timeout)
                        }
                        Some(Err(crate::ssh::SshError::CommandStopped { elapsed, .. })) => *elapsed,
                        // As long as it was followed: until its connection was lost (stop 51
                        // tester t78: the row alone had no time).
                        Some(Err(
                            crate::ssh::SshError::ConnectionLost { elapsed, .. }
                            | crate::ssh::SshError::TransferCut { elapsed, .. },
                        )) => Some(*elapsed),
                        _ => None,
                    },
                    failure: match &r.result {
                        Some(result) if !ok => Some(failure_text(&r.host, &r.command, result)),
                        None => Some(crate::host_text::HostText::new().host(&r.host).text(
                            &format!(
                                ": `{}` was not run ({})",
                                r.command,
                                crate::outcome::skipped_words(
                                    r.skipped.unwrap_or(crate::dispatch::Skipped::Cancelled)
                                )
                            ),
                        )),
                        _ => None,
                    },
                }
            })
            .collect();
        self.sink.emit(
            &Arc::from(""),
            EventKind::Summary {
                hosts,
                exit_code: result.as_ref().map_or_else(Error::exit_code, |()| 0),
                duration: elapsed,
            },
        );
        self.barrier();
    }

    /// Reports the end of a recipe run with its `result` (the exit code and message it comes
    /// to) and, per host, its session; returns once printed.
    pub fn run_finished(&self, title: &str, result: &Result<(), Error>, elapsed: Duration) {
        self.sink.emit(
            &Arc::from(""),
            EventKind::RunFinished {
                title: title.to_string(),
                ok: result.is_ok(),
                exit_code: result.as_ref().map_or_else(Error::exit_code, |()| 0),
                error: result
                    .as_ref()
                    .err()
                    .map(|e| crate::secret::mask(&e.to_string()).into_owned()),
                duration: elapsed,
            },
        );
        self.barrier();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.barrier();
        {
            let mut st = lock(&self.state);
            clear_status(&mut st, self.look);
        }
        // Replacing our sink lets the thread end once the workers' sinks are gone too; it is
        // detached otherwise (workers may outlive the reporter in a panic).
        self.sink = crate::sink::channel().0;
        self.thread.take();
    }
}

fn run(rx: Receiver<Message>, state: Arc<Mutex<State>>, look: Look, mut taps: Taps, hold: bool) {
    let started = Instant::now();
    let mut fold = Fold::default();
    let print_groups = |st: &mut State, groups| print_group_lines(st, look, groups);
    // Events before `run_started`, while they are held (see `Reporter::for_run`).
    let mut held: Option<Vec<Event>> = hold.then(Vec::new);
    let take = |event: Event, taps: &mut Taps, fold: &mut Fold| {
        // A line not ended yet is the status line's alone: it comes again when it ends.
        if matches!(event.kind, EventKind::Output { pending: true, .. }) {
            record(&mut lock(&state), &event);
            return;
        }
        // A line redrawn with `\r` is several lines, or on a terminal its last state; a state
        // drawn over, on a terminal, is the status line's (see `status.rs`).
        let redrawn = look.live && matches!(event.kind, EventKind::Output { redrawn: true, .. });
        let parts = progress::segments(event);
        let first_shown = if look.live {
            parts.len().saturating_sub(1)
        } else {
            0
        };
        for (i, event) in parts.into_iter().enumerate() {
            show(
                &state,
                look,
                taps,
                fold,
                started,
                &event,
                i >= first_shown && !redrawn,
            );
        }
    };
    // Lines are written in bursts: everything the events waiting say, in one write(2).
    crate::stdout::batch();
    let mut next = None;
    let mut tail_at = Instant::now();
    loop {
        let wait = fold.deadline().map_or(TICK, |d| {
            d.saturating_duration_since(Instant::now()).min(TICK)
        });
        let received = match next.take() {
            Some(message) => Ok(message),
            None => rx.recv_timeout(wait),
        };
        match received {
            Ok(Message::Barrier(ack)) => {
                for e in held.take().into_iter().flatten() {
                    take(e, &mut taps, &mut fold);
                }
                print_groups(&mut lock(&state), fold.drain());
                crate::stdout::flush();
                taps.flush();
                let _ = ack.send(());
            }
            Ok(Message::Sync(ack)) => {
                for e in held.take().into_iter().flatten() {
                    take(e, &mut taps, &mut fold);
                }
                crate::stdout::flush();
                taps.flush();
                let _ = ack.send(());
            }
            // The ticket goes once the event is written (or held: its line no longer waits).
            Ok(Message::Event(event, _ticket)) => match held.as_mut() {
                Some(waiting) if !matches!(event.kind, EventKind::RunStarted { .. }) => {
                    waiting.push(event)
                }
                // `run_started` first, then what was held.
                _ => {
                    take(event, &mut taps, &mut fold);
                    for e in held.take().into_iter().flatten() {
                        take(e, &mut taps, &mut fold);
                    }
                }
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for e in held.take().into_iter().flatten() {
                    take(e, &mut taps, &mut fold);
                }
                print_groups(&mut lock(&state), fold.drain());
                crate::stdout::flush();
                taps.flush();
                break;
            }
        }
        // An event already waiting is taken before the fold's deadlines, the status line and
        // the flush below: a burst of output costs them once, not once a line. Not for longer
        // than [`BURST`], so that folded lines and the status line keep their pace.
        if tail_at.elapsed() < BURST {
            if let Ok(message) = rx.try_recv() {
                next = Some(message);
                continue;
            }
        }
        tail_at = Instant::now();
        // Most events leave nothing waiting: take the state's lock only when a group is.
        if fold.is_waiting() {
            print_groups(&mut lock(&state), fold.due(Instant::now()));
        }
        if look.live {
            let mut st = lock(&state);
            draw_status(&mut st, look);
        }
        crate::stdout::flush();
    }
}

/// Set once stdout has carried a JSON object that ends a run with its exit code.
static CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process has printed (`--format json`) an object that ends a run with its exit
/// code: `run_finished`, `tether run`'s `summary`, `check_summary`, `watch_exit`. A command that
/// fails without one ends its stream with an `error` object (the binary writes it).
pub fn closed_in_json() -> bool {
    CLOSED.load(std::sync::atomic::Ordering::SeqCst)
}

fn closes(event: &Event) -> bool {
    match &event.kind {
        EventKind::RunFinished { .. } | EventKind::Summary { .. } => true,
        EventKind::Record(r) => r
            .json
            .get("type")
            .is_some_and(|t| t == "check_summary" || t == "watch_exit"),
        _ => false,
    }
}

/// Records `event`, writes it to the taps and, when `on_stdout`, prints it (folded, as text,
/// or as JSON).
fn show(
    state: &Mutex<State>,
    look: Look,
    taps: &mut Taps,
    fold: &mut Fold,
    started: Instant,
    event: &Event,
    on_stdout: bool,
) {
    let mut st = lock(state);
    record(&mut st, event);
    let json =
        (look.format == Format::Json || !taps.is_empty()).then(|| json_lines(&st, event, started));
    if let Some(json) = &json {
        taps.write(json);
    }
    // Said on stderr instead: once stdout's reader has gone (`| head`), what the recipe says
    // and tether's warnings, as they are how a stopped run says what it left (stop 36 tester
    // t19: deploy:failed's `release ... is live` was lost), and nothing goes to stdout; under
    // a listing (`tether hosts`, `tasks`), whose stdout is its rows, tether's warnings and
    // notes.
    let closed = crate::stdout::closed();
    if closed || look.listing {
        let aside = match &event.kind {
            EventKind::Print { text } if closed => Some(text.clone()),
            EventKind::Warning { message } => Some(format!("warning: {message}")),
            EventKind::Note { message } if look.listing && look.verbose => {
                Some(format!("note: {message}"))
            }
            _ => None,
        };
        if let Some(text) = &aside {
            crate::errln!("{}", visible_lines(text));
        }
        if closed || aside.is_some() {
            return;
        }
    }
    if !on_stdout {
        return;
    }
    // Decided as printed: an event recorded but not shown (a line not ended yet) heads nothing.
    let rehead = (look.format == Format::Text)
        .then(|| st.rehead(event))
        .flatten();
    if let Some(task) = rehead {
        print_group_lines(&mut st, look, fold.drain());
        clear_status(&mut st, look);
        crate::outln!("{}", text::heading(&task));
    }
    // A run of one host has no other copy of a line to wait for: its lines go straight out.
    let fold_lines = look.fold && look.format != Format::Json && st.order.len() != 1;
    match host_lines(look, event).filter(|_| fold_lines) {
        Some(lines) => {
            // The fold holds one kind of line at a time (the commands' or tether's own), so
            // that output keeps the order events came in.
            let tether = lines.iter().any(|(lane, _)| *lane == Lane::Tether);
            if fold.holds_other_than(tether) {
                print_group_lines(&mut st, look, fold.drain());
            }
            // The wait runs from when the reporter takes the line, not from when it was
            // said: a reporter behind a burst of output still waits for the other copies.
            for (lane, text) in lines {
                fold.add(&event.host, lane, &text, Instant::now());
            }
        }
        None => {
            let lines = match (look.format, json) {
                (Format::Json, Some(json)) => {
                    if closes(event) {
                        CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    json
                }
                _ => text_lines(&st, look, event),
            };
            if !lines.is_empty() {
                print_group_lines(&mut st, look, fold.drain());
                clear_status(&mut st, look);
                for line in lines {
                    crate::outln!("{line}");
                }
            }
        }
    }
}

/// Prints folded lines (before anything else, so output keeps the order of events).
fn print_group_lines(st: &mut State, look: Look, groups: Vec<fold::Group>) {
    if groups.is_empty() {
        return;
    }
    clear_status(st, look);
    for g in &groups {
        crate::outln!("{}", group_line(st, g));
    }
}

/// The longest the reporter takes events waiting before it writes what they said (see
/// `run`).
const BURST: Duration = Duration::from_millis(20);

/// How often the live status line is redrawn when nothing happens.
const TICK: Duration = Duration::from_millis(250);
