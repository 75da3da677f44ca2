//! Ctrl-C: the first one stops dispatching new work and stops in-flight commands (one under
//! the supervisor or on a PTY by its process group, a transfer by closing its channel),
//! their results are reported and failure hooks run; the second one exits at once. SIGTERM and
//! SIGHUP count as a Ctrl-C each (a service manager's stop, a closed terminal: the same
//! cleanup). Either way the local files registered with [`remove_on_exit`] (a download's
//! temporary file) are removed first: an exit that skips destructors must not leave them; and
//! the remote commands that exit leaves running ([`LeftBehind`]) are named, with how to stop
//! each, and its local process groups ([`EndsOnExit`]) are ended.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::event::Event;
use crate::exit;

static REMOVE_ON_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// What an exit at a second signal leaves behind, said as it exits (see [`LeftBehind`]), and
/// the event that says it to a reader of events, where there is one.
static SAY_ON_EXIT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// One [`LeftBehind`]: where it stands, its token, its line, its event.
type Entry = (Said, u64, String, Option<Event>);

/// Where a [`LeftBehind`] line stands among those said at an exit: in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Said {
    /// Why the run failed, when its failure hooks were cut short: the error it would have
    /// ended with.
    Failure,
    /// A remote command left running, with how to stop it: to be stopped before anything
    /// is cleaned up, as it may still change the host.
    Command,
    /// What a recipe registered (`left_behind`): a lock, a release, with how to clear them;
    /// and an upload's temporary directory, which its run would have removed.
    Recipe,
}

/// A line said on stderr if tether exits at a second signal while this is alive: a remote
/// command it will not stop (its run is cut short), with how to stop it by hand. Dropped, it
/// is not said.
#[derive(Debug)]
pub struct LeftBehind(u64);

impl LeftBehind {
    /// Registers `line`, a remote command left running ([`Said::Command`]), and `event`, which
    /// says it to a reader of events (`--format json`: stop 42 tester t47, the stream said nothing of it).
    pub fn say_event(line: String, event: Event) -> LeftBehind {
        LeftBehind::register(Said::Command, line, Some(event))
    }

    /// Registers `line`, said among the lines of its kind in the order they were registered.
    pub fn say_as(kind: Said, line: String) -> LeftBehind {
        LeftBehind::register(kind, line, None)
    }

    /// Replaces the line and event `self` registered (the host said more since: the words
    /// first registered to stop a command do not reach one it runs without the supervisor).
    pub fn reword(&self, line: String, event: Option<Event>) {
        if let Some(entry) = said().iter_mut().find(|(_, t, _, _)| *t == self.0) {
            entry.2 = line;
            entry.3 = event;
        }
    }

    fn register(kind: Said, line: String, event: Option<Event>) -> LeftBehind {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        said().push((kind, token, line, event));
        LeftBehind(token)
    }
}

impl Drop for LeftBehind {
    fn drop(&mut self) {
        said().retain(|(_, t, _, _)| *t != self.0);
    }
}

fn said() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    SAY_ON_EXIT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Local process groups an exit at a second signal ends (see [`EndsOnExit`]).
static GROUPS_ON_EXIT: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// A local process group of tether's (a `ProxyCommand`, a `run_locally` command) that an exit
/// at a second signal sends SIGHUP and SIGKILL, as nothing else of tether stops it then (it
/// would live on, reparented). Dropped (its owner stopped it, or it ended), it is forgotten.
#[derive(Debug)]
pub struct EndsOnExit(libc::pid_t);

impl EndsOnExit {
    /// Registers the process group `pgid`.
    pub fn register(pgid: libc::pid_t) -> EndsOnExit {
        groups().push(pgid);
        EndsOnExit(pgid)
    }
}

impl Drop for EndsOnExit {
    fn drop(&mut self) {
        groups().retain(|g| *g != self.0);
    }
}

fn groups() -> std::sync::MutexGuard<'static, Vec<libc::pid_t>> {
    GROUPS_ON_EXIT.lock().unwrap_or_else(|p| p.into_inner())
}

/// The flag [`install`] returned (set by a first signal).
static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
/// A first Ctrl-C, SIGTERM or SIGHUP came (see [`signalled`]).
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Whether a first Ctrl-C, SIGTERM or SIGHUP came: tether is on its way out, and whatever
/// waits for a host (the failure hooks' reconnects) must end soon, as whoever sent it may
/// send SIGKILL next (`docker stop` does 10 s after SIGTERM).
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

/// What wakes the threads that wait on their own condition variables for [`signalled`].
static ON_FIRST_SIGNAL: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Calls `wake` (once per registration of the same function) right after a first signal set
/// [`signalled`]: a waiter that looks at it before it waits, under the lock `wake` takes to
/// notify it, is then told at once, where polling for it cost every waiting thread a wakeup
/// every few milliseconds (a dry run of 1000 hosts spent a third of its time so).
pub fn on_first_signal(wake: fn()) {
    let mut hooks = ON_FIRST_SIGNAL.lock().unwrap_or_else(|p| p.into_inner());
    if !hooks.contains(&wake) {
        hooks.push(wake);
    }
}

/// Nothing runs on any host now (see [`idle`]).
static IDLE: AtomicBool = AtomicBool::new(false);

/// Says whether nothing runs now (`tether watch` waiting for a change, `true`; a run starting,
/// `false`): while idle, a first Ctrl-C, SIGTERM or SIGHUP says that it ends tether, not that
/// it stops running commands (stop 58 tester t93: a watch waiting for a save said "no new
/// commands; stopping running ones").
pub fn idle(idle: bool) {
    IDLE.store(idle, Ordering::SeqCst);
}

/// Failure hooks are running (see [`finishing`]).
static FINISHING: AtomicBool = AtomicBool::new(false);
/// A first signal came while they ran.
static CAME_WHILE_FINISHING: AtomicBool = AtomicBool::new(false);

/// Runs `hooks` (the failure hooks: how a run cleans up, releasing its locks) so that a first
/// signal during them does not cut them short: it is held until they end (the flag is set
/// then), and only a second one exits at once. Returns their value and whether a signal came.
pub fn finishing<T>(hooks: impl FnOnce() -> T) -> (T, bool) {
    CAME_WHILE_FINISHING.store(false, Ordering::SeqCst);
    FINISHING.store(true, Ordering::SeqCst);
    let out = hooks();
    FINISHING.store(false, Ordering::SeqCst);
    let came = CAME_WHILE_FINISHING.swap(false, Ordering::SeqCst);
    if came {
        if let Some(flag) = FLAG.get() {
            flag.store(true, Ordering::SeqCst);
        }
    }
    (out, came)
}

/// Removes `path` if tether exits at a signal before [`keep`] is called for it.
pub fn remove_on_exit(path: &Path) {
    lock().push(path.to_path_buf());
}

/// Forgets `path` (placed, or removed by its owner).
pub fn keep(path: &Path) {
    lock().retain(|p| p != path);
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    REMOVE_ON_EXIT.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an exit at a second signal reports its events and exit code to (the JSON view).
type ExitReport = Box<dyn Fn(&[Event], i32, &str) + Send>;
static REPORT_ON_EXIT: Mutex<Vec<ExitReport>> = Mutex::new(Vec::new());

/// Calls `report` if tether exits at a second signal, with the events of what it leaves
/// behind (see [`LeftBehind::say_event`]), its exit code and why it exits, before the flushes
/// of [`flush_on_exit`].
pub fn report_on_exit(report: ExitReport) {
    REPORT_ON_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(report);
}

/// What an exit at a second signal runs first (a run log's buffered lines written out).
static FLUSH_ON_EXIT: Mutex<Vec<Box<dyn Fn() + Send>>> = Mutex::new(Vec::new());

/// Runs `flush` if tether exits at a second signal (it ends the process at once: nothing is
/// dropped, no buffer written).
pub fn flush_on_exit(flush: Box<dyn Fn() + Send>) {
    FLUSH_ON_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(flush);
}

/// Removes the registered files, says what is left behind (see [`LeftBehind`]) and exits
/// with `code`.
fn exit_now(code: i32, why: &str) -> ! {
    for path in lock().iter() {
        let _ = std::fs::remove_file(path);
    }
    let mut stderr = std::io::stderr();
    let mut lines = said().clone();
    lines.sort_by_key(|(kind, token, ..)| (*kind, *token));
    for (_, _, line, _) in &lines {
        let _ = writeln!(stderr, "{line}");
    }
    // Said now: dated now, not when registered (stop 66 tester t110: the event of a command
    // left running carried its command's start).
    let now = std::time::Instant::now();
    let events: Vec<Event> = lines
        .into_iter()
        .filter_map(|(.., e)| e)
        .map(|e| Event { at: now, ..e })
        .collect();
    if let Ok(reports) = REPORT_ON_EXIT.try_lock() {
        for report in reports.iter() {
            report(&events, code, why);
        }
    }
    for group in groups().iter() {
        for signal in [libc::SIGHUP, libc::SIGKILL] {
            // SAFETY: kill(2) on a process group tether started (registered by its owner).
            unsafe { libc::kill(-group, signal) };
        }
    }
    // try_lock: the flush of a thread this signal stopped mid-write holds the lock.
    if let Ok(flushes) = FLUSH_ON_EXIT.try_lock() {
        for flush in flushes.iter() {
            flush();
        }
    }
    std::process::exit(code);
}

/// A first stop of the run (`what` happened; `then` follows the words): no new commands, the
/// running ones stopped, by setting `flag`, or, while failure hooks run, once they end
/// (`held`: a signal), or never (a reader gone: the hooks finish, and the run's failure stays
/// its own, stop 36 tester t18).
fn first(flag: &AtomicBool, what: &str, then: &str, held: bool) {
    // A hung-up terminal may refuse the words: the flag is what matters.
    let mut stderr = std::io::stderr();
    if FINISHING.load(Ordering::SeqCst) {
        CAME_WHILE_FINISHING.fetch_or(held, Ordering::SeqCst);
        let _ = writeln!(
            stderr,
            "\n{what}: the failure hooks, which clean up, finish{}{then}",
            if held { " first" } else { "" }
        );
        return;
    }
    flag.store(true, Ordering::SeqCst);
    let doing = match IDLE.load(Ordering::SeqCst) {
        true => "nothing is running; ending",
        false => "no new commands; stopping running ones",
    };
    let _ = writeln!(stderr, "\n{what}: {doing}{then}");
}

/// [`stdout_closed`] stops the run (see [`stop_run_when_stdout_closes`]).
static STOP_WHEN_CLOSED: AtomicBool = AtomicBool::new(false);

/// From now on a closed stdout stops the run (see [`stdout_closed`]): for the commands that
/// run something on hosts (`tether TASK`, `run`, `check`, `watch`), once [`install`]ed.
pub fn stop_run_when_stdout_closes() {
    STOP_WHEN_CLOSED.store(true, Ordering::SeqCst);
}

/// tether's stdout was closed by its reader (`tether deploy | head`). Where a run is under
/// way ([`stop_run_when_stdout_closes`]) it is stopped as by a first Ctrl-C: the remote
/// commands, which the supervisor keeps running past their connection, are stopped and the
/// failure hooks clean up, where an exit at once would leave them running, and a deploy's lock
/// and release behind (`ssh host cmd | head` ends its remote command too: sshd closes its
/// pipes). The run then exits 141. Elsewhere (`tether tasks | head`) tether exits at once, 141,
/// as SIGPIPE ends other Unix tools. A second signal still exits at once.
pub fn stdout_closed() {
    match FLAG.get() {
        Some(flag) if STOP_WHEN_CLOSED.load(Ordering::SeqCst) => first(
            flag,
            "stdout was closed by its reader",
            " (then exit 141)",
            false,
        ),
        _ => std::process::exit(exit::BROKEN_PIPE),
    }
}

/// Installs the handler on a small tokio runtime thread and returns the flag it sets.
pub fn install() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let _ = FLAG.set(flag.clone());
    let seen = flag.clone();
    // Returned once the handlers are in place (or could not be): a signal that came before
    // would kill tether with nothing cleaned up (a `run_locally` command left running).
    let (ready, installed) = std::sync::mpsc::channel::<()>();
    let spawned =
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) else {
                    return;
                };
                drop(ready);
                // Counted apart from the flag: failure hooks clear the flag to run, and a
                // second Ctrl-C must still end the process.
                let mut presses = 0;
                loop {
                    // What happened, and what a second signal (any of the three) does.
                    let (what, again) = tokio::select! {
                        pressed = int.recv() => {
                            if pressed.is_none() {
                                return;
                            }
                            ("interrupted", "Ctrl-C again to exit now")
                        }
                        _ = term.recv() => ("terminated (SIGTERM)", "a second signal exits now"),
                        _ = hup.recv() => ("hung up (SIGHUP)", "a second signal exits now"),
                    };
                    presses += 1;
                    if presses > 1 {
                        // A hung-up terminal may refuse the words.
                        let _ = writeln!(std::io::stderr(), "\n{what} again: exiting now");
                        exit_now(exit::INTERRUPTED, &format!("{what} again: exiting now"));
                    }
                    SIGNALLED.store(true, Ordering::SeqCst);
                    first(&seen, what, &format!(" ({again})"), true);
                    // Once the run's flag is set: a waiter woken goes on to find its next
                    // command refused, not sent (tester t132: a dry run planned some).
                    let hooks = ON_FIRST_SIGNAL.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    for wake in hooks {
                        wake();
                    }
                }
            });
            });
    if spawned.is_err() {
        crate::errln!("warning: cannot watch for Ctrl-C; it will end tether at once");
    }
    // Err once the thread dropped its end: ready, or gone without handlers.
    let _ = installed.recv();
    flag
}
