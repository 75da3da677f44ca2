//! Running one command on a channel: a fresh one (staged first when too long for one exec
//! request), a resume of a supervised one, stopping supervised and PTY ones, cleaning
//! supervised ones.

use std::time::{Duration, Instant};

use super::frames::{Key, StderrFilter};
use super::incoming::{self, crlf_to_lf, direct_reason, LineEnd, Streams};
use super::options::{open_timeout, ExecOptions, OPEN_TIMEOUT, PTY_TERM, SIGNALLED_OPEN_TIMEOUT};
use super::outcome::{
    ExecError, ExecOutput, ExitStatus, KeptStderr, PtyGroup, RemoteStop, StopFailed,
};
use super::preamble::{Preamble, StartFilter};
use super::pty_stop;
use super::pump::{close_now, drain, pump};
use super::standby::{self, Standby};
use super::supervision::Supervision;
use super::wrap::{standby_line, start_markers, wrap_for, wrap_script, MAX_EXEC};
use crate::command::quote;
use crate::event::Stream;
use crate::ssh::connect::{would_block, Connection, OpenError, WaitError, REFUSED_GRACE};
use crate::ssh::supervisor::{StopDone, STOP_GRACE};

/// Runs `command` (wrapped, see [`wrap`](super::wrap)) on `conn`, calling `on_line` for each output line as
/// it arrives.
pub fn run(
    conn: &Connection,
    command: &str,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
) -> Result<ExecOutput, ExecError> {
    run_reporting(conn, command, opts, on_line, &mut Preamble::default(), None)
}

/// [`run`], which also sets `preamble` to what the login shell printed before the command;
/// with `sup` (and no PTY), under the supervisor (see `supervisor.rs`).
///
/// A command whose wrapped form is longer than one exec request carries is staged: a first
/// exec (no PTY, no agent) writes it from its stdin to a private temporary file (`mktemp`,
/// mode 0600, in `$TMPDIR` or `/tmp`) and prints the file's name; the second runs it from the
/// file, which it removes before the command starts. The command's own stdin, PTY and agent
/// are the second exec's, as for any command. The staging exec failing is
/// [`ExecError::NotStaged`] (nothing ran); its channel failing is reported like the command's.
pub fn run_reporting(
    conn: &Connection,
    command: &str,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    sup: Option<&mut Supervision>,
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    // A command line ends at a NUL byte (the exec request's string cannot carry one): refused
    // here, as nothing was sent, and not as a lost connection (which would be re-attached to).
    if let Some(at) = command.find('\0') {
        return Err(ExecError::Local(format!(
            "the command holds a NUL byte (at byte {at}), which no command line can carry: \
             nothing was sent"
        )));
    }
    let mut sup = sup.filter(|_| !opts.pty);
    if let Some(s) = sup.as_deref_mut() {
        s.pending = false;
    }
    let id = sup.as_deref().map(supervised_ids);
    let supervised = id.as_ref().map(|(ids, naps)| (ids.as_str(), *naps));
    let key = Key::new();
    let wrapped = wrap_for(command, opts.pty, supervised, &key);
    if wrapped.len() <= MAX_EXEC {
        let Some(s) = sup else {
            return run_wrapped(conn, &wrapped, &key, opts, on_line, preamble, sup);
        };
        // The command's own `sh -c` takes its text as one argument: a standby runs one that
        // its exec request would carry (a longer one is staged, below, and run from its file).
        if let Some(standby) = standby::take(conn, opts) {
            return run_on_standby(conn, standby, command, opts, on_line, preamble, s);
        }
        let mut out = launch_supervised(conn, &wrapped, &key, opts, on_line, preamble, s, started)?;
        let mut key = key;
        let mut retried = false;
        // The channel ended before the command said it started: its login shell ended first,
        // or the server closed it while it started (sshd 9.2 counts `ChannelTimeout` in whole
        // seconds: at 1 s it may close a channel milliseconds after its exec). Settled as a
        // command lost before its start marker (see `settle`): sent again on a new channel
        // where it never started (once), followed where it did.
        while out.status == ExitStatus::MissingBeforeStart {
            s.streams = Some(Streams::new(opts, &key));
            s.pending = true;
            match settle_claim(conn, s)? {
                Settled::Lost(Lost::NeverStarted) if !retried => {
                    retried = true;
                    let (ids, naps) = supervised_ids(s);
                    key = Key::new();
                    let wrapped = wrap_for(command, false, Some((&ids, naps)), &key);
                    let rest = opts.remaining(started);
                    let again = Instant::now();
                    out = launch_supervised(
                        conn, &wrapped, &key, &rest, on_line, preamble, s, again,
                    )?;
                }
                // Within what is left of its timeout.
                Settled::Lost(Lost::Running) => {
                    out = resume(conn, s, &opts.remaining(started), on_line, preamble)?;
                }
                // It never ran, and never will, or nothing can be known: as it ended.
                Settled::Lost(Lost::NeverStarted) | Settled::Direct => break,
                Settled::Unanswered => out.status = ExitStatus::Unchecked,
            }
        }
        out.duration = started.elapsed();
        return Ok(out);
    }
    let id = sup.as_ref().map(|s| s.id.clone());
    let tag = Key::new();
    // A stop or a deadline that comes while the command is written to the host: it is not
    // started (nothing new starts once tether is stopping), and what was written goes.
    // Removes what was written, wherever (`supervisor::unstage`); best effort.
    let unstage = |conn: &Connection| {
        let _ = run_script(
            conn,
            &crate::ssh::supervisor::unstage(),
            &[id.as_deref().unwrap_or(""), tag.as_str()],
            OPEN_TIMEOUT,
            OPEN_TIMEOUT,
        );
    };
    let never = |conn: &Connection, e: fn(Duration, Option<RemoteStop>) -> ExecError| {
        unstage(conn);
        e(
            started.elapsed(),
            Some(RemoteStop::of(Ok(StopDone::Never), None)),
        )
    };
    let path = match stage(conn, command, opts, id.as_deref(), tag.as_str()) {
        Ok(path) => path,
        Err(ExecError::Deadline(..)) => {
            return Err(never(conn, |d, s| {
                ExecError::Deadline(d, s, KeptStderr::default())
            }))
        }
        // Lost before the command's own exec was sent: it has not started. Settled as any
        // command lost before its start marker (see `settle`): its claim on the new session
        // wins, and it is sent again, written to the host anew.
        Err(ExecError::Lost(reason)) => {
            if let Some(s) = sup.filter(|_| opts.stdin_from.is_none()) {
                s.pending = true;
                s.streams = Some(Streams::new(opts, &key));
            }
            return Err(ExecError::Lost(reason));
        }
        Err(e) => return Err(e),
    };
    if opts.stop.is_set() {
        return Err(never(conn, ExecError::Stopped));
    }
    if opts.timeout.is_some_and(|t| started.elapsed() >= t) {
        return Err(never(conn, |d, s| {
            ExecError::Deadline(d, s, KeptStderr::default())
        }));
    }
    if let Some(s) = sup.as_deref_mut() {
        s.staged = Some(path.clone());
    }
    // Read and removed by the host's own `cat` and `rm` (see `command::SYSTEM_PATH`), in
    // the command substitution's subshell: the command runs with the login shell's PATH.
    let staged = format!(
        "_tether_f={}; _tether_c=$({}cat \"$_tether_f\" && echo .; _tether_r=$?; \
         rm -f \"$_tether_f\" 2>/dev/null; exit $_tether_r); [ \"$?\" = 0 ] || exit 126; \
         eval \"unset _tether_f _tether_c; ${{_tether_c%.}}\"",
        quote(&path),
        crate::command::system_programs_first()
    );
    let rest = opts.remaining(started);
    let pty = opts.pty;
    let mut out = run_wrapped(
        conn,
        &wrap_for(&staged, opts.pty, supervised, &key),
        &key,
        &rest,
        on_line,
        preamble,
        sup,
    )
    .inspect_err(|e| {
        // The file is removed by the exec's sh before the command starts; a PTY's sh that a
        // deadline or a stop ends first (the terminal's hangup) leaves it, the command's text
        // (stop 36 tester t21: `--pty --timeout 15ms`). Removed by its tag: a sh that starts
        // later finds no file and runs nothing. (A supervised command's goes with its files.)
        if pty && !matches!(e, ExecError::Lost(_)) {
            unstage(conn);
        }
    })?;
    out.duration = started.elapsed();
    Ok(out)
}

/// The ids the exec's sh of the command of `sup` is given (its own first, then those whose
/// results were read, for the supervisor to remove), and the naps its spool writers wait
/// (see `wrap::boot`).
fn supervised_ids(sup: &Supervision) -> (String, u64) {
    let ids = std::iter::once(&sup.id)
        .chain(&sup.done)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    // Naps of 0.2 s (see `wrap::boot`), rounded up.
    (ids, sup.spool_wait.as_millis().div_ceil(200) as u64)
}

/// Runs the supervised command `wrapped` on a new channel of `conn` (its exec sent at
/// `started`), opening a standby for the next one as it runs (see `standby.rs`).
#[allow(clippy::too_many_arguments)]
fn launch_supervised(
    conn: &Connection,
    wrapped: &str,
    key: &Key,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    sup: &mut Supervision,
    started: Instant,
) -> Result<ExecOutput, ExecError> {
    let (channel, agent) = launch(conn, wrapped, key, opts, Some(&mut *sup))?;
    standby::open_next(conn, opts);
    let out = follow(
        conn,
        channel,
        agent,
        key,
        opts,
        on_line,
        preamble,
        Some(sup),
        started,
    );
    standby::waiting_from_now(conn);
    out
}

/// Runs `command` under the supervisor on `standby` (see `standby.rs`) as [`run_reporting`]
/// would on a new channel (`sup` takes the standby's id), and opens the next standby. A
/// standby that ended before the command's start marker came (its login shell exited, or the
/// server closed it as the command was written) may or may not have read the command: its
/// claim (see [`settle`]) tells, and the command is run on a new channel where it never
/// started, or followed where it did; that connection opens no standby again.
fn run_on_standby(
    conn: &Connection,
    standby: Standby,
    command: &str,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    sup: &mut Supervision,
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let Standby {
        mut channel,
        key,
        id,
        ..
    } = standby;
    let key = Key::kept(key);
    sup.id = id;
    // Naps of 0.2 s (see `wrap::boot`), rounded up.
    let naps = sup.spool_wait.as_millis().div_ceil(200) as u64;
    // Written before the command's own stdin, which alone is the command's (a loss once the
    // command started resumes it when all of that was sent: see `settle`). Cut short, the
    // line runs nothing (see `wrap::boot`): the command is settled as one lost before its start.
    let line = standby_line(command, &sup.done, naps);
    let until = Instant::now() + open_timeout();
    let mut written = 0;
    while written < line.len() {
        let failed = match std::io::Write::write(&mut channel, &line[written..]) {
            Ok(n) => {
                written += n;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match conn.wait_socket(until) {
                Ok(()) => continue,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if opts.stdin_from.is_none() {
            sup.pending = true;
            sup.streams = Some(Streams::new(opts, &key));
        }
        return Err(ExecError::Lost(format!(
            "writing the command to its standby failed: {failed}"
        )));
    }
    standby::open_next(conn, opts);
    let out = follow(
        conn,
        channel,
        None,
        &key,
        opts,
        on_line,
        preamble,
        Some(&mut *sup),
        started,
    );
    standby::waiting_from_now(conn);
    let out = out?;
    if !matches!(
        out.status,
        ExitStatus::MissingBeforeStart | ExitStatus::ShellEnded(_)
    ) {
        return Ok(out);
    }
    standby::close_standby(conn);
    conn.standby.borrow_mut().off = true;
    sup.pending = true;
    sup.streams = Some(Streams::new(opts, &key));
    match settle(conn, sup)? {
        Lost::NeverStarted => {
            let rest = opts.remaining(started);
            run_reporting(conn, command, &rest, on_line, preamble, Some(sup))
        }
        Lost::Running => resume(conn, sup, &opts.remaining(started), on_line, preamble),
    }
}

/// What became of the supervised command of `sup`, lost with its connection, as a new session
/// finds it (see [`settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// It runs, or ran, under the supervisor: [`resume`] continues it.
    Running,
    /// Its first exec never ran it, and never will (claimed, see `supervisor::claim`): `sup`
    /// has a new id, and the command is to be sent again on the new session.
    NeverStarted,
}

/// Settles, on `conn` (a new session), whether the supervised command of `sup` runs: one lost
/// before its start marker arrived is claimed first (see `supervisor::claim`), one whose start
/// marker arrived is [`Lost::Running`] at once. A claim lost with its connection in turn is
/// [`ExecError::Lost`] and keeps `sup` resumable; a command found started before all of its
/// stdin was sent, a host where the supervisor cannot run, or a claim whose channel the
/// server closed before it told, is [`ExecError::Lost`] and leaves `sup` not resumable.
pub fn settle(conn: &Connection, sup: &mut Supervision) -> Result<Lost, ExecError> {
    if !sup.pending {
        return Ok(Lost::Running);
    }
    let why = match settle_claim(conn, sup)? {
        Settled::Lost(lost) => return Ok(lost),
        Settled::Direct => "the supervisor cannot run on the host to tell",
        Settled::Unanswered => {
            "the server closed the channel that checks whether it did before it could tell \
             (sshd's ChannelTimeout, shorter than the login shell takes to start?)"
        }
    };
    Err(ExecError::Lost(format!(
        "the connection was lost before the command was known to have started, and {why}"
    )))
}

/// What claiming the supervised command of `sup` settled (see [`settle_claim`]).
enum Settled {
    /// As [`settle`] says it.
    Lost(Lost),
    /// Nothing can be known: the supervisor cannot run on the host (see `supervisor::claim`),
    /// which ran the command directly, if at all.
    Direct,
    /// Nothing can be known: the claim's own channel closed before it said anything.
    Unanswered,
}

/// Claims the supervised command of `sup` on `conn` (see `supervisor::claim`) and leaves `sup`
/// as that says: with a new id when the claim won (the command never ran, and never will),
/// resumable where the command runs and all of its stdin was sent, not resumable otherwise. A
/// command found started before all of its stdin was sent is [`ExecError::Lost`]; so is a claim
/// lost with its connection, which keeps `sup` as it was.
fn settle_claim(conn: &Connection, sup: &mut Supervision) -> Result<Settled, ExecError> {
    let claim = claim(conn, &sup.id, sup.staged.as_deref())?;
    sup.pending = false;
    match claim {
        Claim::Won => {
            // The old id's claim stays (tether's word): that exec may still start, late, and
            // must find it. Its staged command was removed with the claim.
            sup.staged = None;
            sup.streams = None;
            sup.id = crate::ssh::supervisor::new_id();
            Ok(Settled::Lost(Lost::NeverStarted))
        }
        Claim::Taken if sup.streams.as_ref().is_some_and(|s| s.stdin_done) => {
            Ok(Settled::Lost(Lost::Running))
        }
        Claim::Taken => {
            sup.streams = None;
            Err(ExecError::Lost(
                "the command started on the host before all of its stdin was sent".into(),
            ))
        }
        Claim::Unusable(why) => {
            // What the exec's sh would have said had its notice arrived: for the same
            // reason, it ran the command directly, if it ran it at all.
            sup.streams = None;
            sup.direct = why;
            Ok(Settled::Direct)
        }
        Claim::Unanswered => {
            sup.streams = None;
            Ok(Settled::Unanswered)
        }
    }
}

/// Continues the supervised command of `sup`, lost with its connection and found
/// [`Lost::Running`] by [`settle`], on `conn` (a new session): each stream from the byte where
/// it stopped, then the command's real exit status. The command is not sent again (see
/// `supervisor.rs`). With its directory gone, `sup.gone` is set and the status is
/// [`ExitStatus::Missing`]. A resume lost in turn keeps `sup` resumable.
pub fn resume(
    conn: &Connection,
    sup: &mut Supervision,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
) -> Result<ExecOutput, ExecError> {
    let (wrapped, key, opts) = resume_request(sup, opts);
    run_wrapped(conn, &wrapped, &key, &opts, on_line, preamble, Some(sup))
}

/// The exec request string that resumes the command of `sup` from the bytes it received, its
/// frame key, and its options (`opts` without stdin or environment: the command has its
/// environment already, and this channel only reads its files).
fn resume_request(sup: &Supervision, opts: &ExecOptions) -> (String, Key, ExecOptions) {
    let (out, err) = sup.received();
    let key = Key::new();
    let wrapped = wrap_script(
        &crate::ssh::supervisor::resume(&start_markers()),
        &key,
        &[&sup.id, &out.to_string(), &err.to_string()],
    );
    let opts = ExecOptions {
        stdin: None,
        stdin_from: None,
        env: Default::default(),
        ..opts.clone()
    };
    (wrapped, key, opts)
}

/// Runs one of the supervisor's own scripts (`supervisor::claim`, `stop`, `clean`) with `args`
/// on a new channel of `conn`, given up after `timeout`, its channel's opening after
/// `open_within` (and [`open_timeout`]); its output is collected, none shown.
fn run_script(
    conn: &Connection,
    script: &str,
    args: &[&str],
    timeout: Duration,
    open_within: Duration,
) -> Result<ExecOutput, ExecError> {
    let key = Key::new();
    let opts = ExecOptions {
        timeout: Some(timeout),
        open_within: Some(timeout.min(open_within).min(open_timeout())),
        ..ExecOptions::default()
    };
    run_wrapped(
        conn,
        &wrap_script(script, &key, args),
        &key,
        &opts,
        &mut |_, _, _| {},
        &mut Preamble::default(),
        None,
    )
}

/// What claiming a command lost before its start marker found (see `supervisor::claim`).
enum Claim {
    /// tether claimed it: it never ran and never will.
    Won,
    /// Its exec's sh claimed it first: it runs (or ran) under the supervisor.
    Taken,
    /// The supervisor cannot run on the host (why, as [`incoming::direct_words`] says it,
    /// where the claim said): nothing can be known.
    Unusable(Option<String>),
    /// The claim's own channel closed before it said anything (see
    /// [`ExitStatus::Unchecked`]): nothing can be known.
    Unanswered,
}

/// Claims the supervised command `id` on `conn` (see [`Claim`]), removing the file its
/// command was `staged` in (see [`run_reporting`]) when the claim wins, as nothing will run it
/// then; a lost connection is [`ExecError::Lost`].
fn claim(conn: &Connection, id: &str, staged: Option<&str>) -> Result<Claim, ExecError> {
    let out = run_script(
        conn,
        &crate::ssh::supervisor::claim(&start_markers()),
        &[id, staged.unwrap_or("")],
        OPEN_TIMEOUT,
        OPEN_TIMEOUT,
    )?;
    let said = String::from_utf8_lossy(&out.stdout);
    match (said.trim(), out.status.success()) {
        ("won", true) => Ok(Claim::Won),
        ("taken", true) => Ok(Claim::Taken),
        _ if matches!(
            out.status,
            ExitStatus::MissingBeforeStart | ExitStatus::Missing
        ) =>
        {
            Ok(Claim::Unanswered)
        }
        // Anything else (a claim that failed on its own) tells nothing of how it ran.
        (said, _) => Ok(Claim::Unusable(
            said.strip_prefix("unusable ").map(incoming::direct_words),
        )),
    }
}

/// Removes the directories of the supervised commands `ids` on `conn` (their results were
/// read); best effort: its channel must open within [`CLEAN_OPEN`], and it then gets what
/// [`open_timeout`] gives a channel's opening, as its login shell may take seconds (tester
/// t111: with 4 s logins, 3 s in all said a session that was only slow gave no answer, and
/// left the files). Err: the session gave no answer, or died (not a script that failed, nor
/// one still running at its end, once its channel opened: the session is fine then; what it
/// did not remove goes with the day's sweep).
pub fn clean_supervised(conn: &Connection, ids: &[String]) -> Result<(), ExecError> {
    let day = crate::ssh::supervisor::sweep_day();
    let args: Vec<&str> = std::iter::once(day.as_str())
        .chain(ids.iter().map(String::as_str))
        .collect();
    let total = open_timeout().max(CLEAN_OPEN);
    match run_script(
        conn,
        &crate::ssh::supervisor::clean(),
        &args,
        total,
        CLEAN_OPEN,
    ) {
        // Past the opening: its channel opened.
        Err(ExecError::Deadline(..)) if total > CLEAN_OPEN => Ok(()),
        Err(e @ (ExecError::NotStarted(_) | ExecError::Lost(_) | ExecError::Deadline(..))) => {
            Err(e)
        }
        _ => Ok(()),
    }
}

/// How long [`clean_supervised`] waits for its channel to open: a session that opens none in
/// that time is taken for lost at a run's end (stop 46 tester t61: a hung idle host held the
/// run's end 17 s unsaid).
const CLEAN_OPEN: Duration = Duration::from_secs(3);

/// How long a stop waits for its channel to open, and for all of it.
#[derive(Debug, Clone, Copy)]
pub struct StopPatience {
    /// For its channel's opening.
    pub open: Duration,
    /// For the whole stop, its opening included.
    pub total: Duration,
}

impl StopPatience {
    /// Where nothing says the session is hung: [`open_timeout`] to open, and the stop's
    /// [`STOP_GRACE`] beyond it (SIGTERM, then SIGKILL, then another user's processes).
    pub fn usual() -> StopPatience {
        StopPatience::opening_within(open_timeout())
    }

    /// `open` to open, and the stop's [`STOP_GRACE`] beyond the usual [`open_timeout`] once it
    /// opened: a session that opens a channel is alive.
    fn opening_within(open: Duration) -> StopPatience {
        StopPatience {
            open,
            total: STOP_GRACE + open_timeout().max(open),
        }
    }
}

/// Stops the supervised command `id` on `conn`: SIGTERM to its process group, SIGKILL after
/// [`crate::ssh::supervisor::STOP_GRACE`], its directory removed; within `patience`
/// ([`StopPatience::usual`] where nothing says the session is hung). Says what that did; Err
/// says why stopping it failed (the command may still run).
pub fn stop_supervised(
    conn: &Connection,
    id: &str,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    stop_by_id(conn, id, patience, &[])
}

/// [`stop_supervised`], keeping the command's files: what it printed while it stopped (a
/// clean-up on SIGTERM) is there for [`resume`](super::resume) to read, once; they go as a
/// read command's do.
pub fn stop_supervised_keeping_files(
    conn: &Connection,
    id: &str,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    stop_by_id(conn, id, patience, &["keep"])
}

/// `supervisor::stop` of the command `id`, with `more` arguments after the grace period.
fn stop_by_id(
    conn: &Connection,
    id: &str,
    patience: StopPatience,
    more: &[&str],
) -> Result<StopDone, StopFailed> {
    run_stop(
        conn,
        &crate::ssh::supervisor::stop(&start_markers()),
        id,
        more,
        patience,
    )
}

/// Stops the PTY command whose exec's sh leads process group `group` on `conn` (see
/// `pty_stop.rs`): SIGTERM, SIGKILL after [`crate::ssh::supervisor::STOP_GRACE`], unless the
/// group's leader runs and is not that exec's sh (its command line lacks the frame key: a
/// group that took the number after the command ended is another's, `gone`; the test
/// machine's `pid_max` of 32768 wrapped in about 4 minutes under the tests' load, 3,820 new
/// pids in 30 s); `patience` as for
/// [`stop_supervised`]. Says what that did; Err says why stopping it failed (the command may
/// still run).
pub fn stop_pty_group(
    conn: &Connection,
    group: &PtyGroup,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    run_stop(
        conn,
        &pty_stop::script(&start_markers()),
        &group.pgid,
        &[&group.key],
        patience,
    )
}

/// Stops process group `pgid`, where the supervised command `id` ran and where its files
/// are gone (see `supervisor::stop`, which needs them), as a PTY command's group is stopped,
/// unless the group's leader runs and is not its exec's sh (see `pty_stop::script`);
/// `patience` as for [`stop_supervised`]. Says what that did; Err says why stopping it failed
/// (the command may still run).
pub fn stop_supervised_group(
    conn: &Connection,
    pgid: &str,
    id: &str,
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    run_stop(
        conn,
        &pty_stop::script(&start_markers()),
        pgid,
        &[id],
        patience,
    )
}

/// Runs the stop `script` (`supervisor::stop`, `pty_stop::script`) for `what`, with the grace
/// period and `more` as its further arguments, within `patience`: what it found and did.
fn run_stop(
    conn: &Connection,
    script: &str,
    what: &str,
    more: &[&str],
    patience: StopPatience,
) -> Result<StopDone, StopFailed> {
    let grace = STOP_GRACE;
    let seconds = grace.as_secs().to_string();
    let mut args = vec![what, &seconds];
    args.extend(more);
    match run_script(conn, script, &args, patience.total, patience.open) {
        Ok(out) if out.status.success() => {
            match String::from_utf8_lossy(&out.stdout)
                .trim()
                .strip_prefix("unusable ")
            {
                // The supervisor cannot run there: the command ran directly, if at all
                // (tester t111: said as the host never saying its group, with words to stop
                // it by its files, which it has none of).
                Some(said) => Err(StopFailed::direct(incoming::direct_words(said))),
                None => Ok(StopDone::parse(&out.stdout)?),
            }
        }
        Ok(out) => Err(stop_ended(&out.status).into()),
        Err(ExecError::Lost(e)) => Err(StopFailed {
            cut: true,
            ..StopFailed::from(format!("the connection was lost while stopping it ({e})"))
        }),
        Err(e) => Err(StopFailed {
            refused: matches!(e, ExecError::Refused(_)),
            unanswered: matches!(e, ExecError::NotStarted(_)),
            ..StopFailed::from(format!("stopping it failed ({e})"))
        }),
    }
}

/// Why a stop whose own exec ended with `status` failed, in words about the stop: a status's
/// own words speak of the command it ended (stop 57 tester t90: "the command never said it
/// started ... it most likely did not run", of a stop whose channel the server closed).
fn stop_ended(status: &ExitStatus) -> String {
    match status {
        ExitStatus::MissingBeforeStart | ExitStatus::Unchecked => {
            "stopping it failed: the stop's channel closed before its login shell was done \
             starting (a startup file that exits, or sshd's ChannelTimeout shorter than the \
             login shell's start), and the stop did not run"
                .to_string()
        }
        ExitStatus::ShellEnded(c) => format!(
            "stopping it failed: the login shell ended with exit status {c} before the stop \
             started, and the stop did not run"
        ),
        ExitStatus::Missing => "stopping it failed: the server closed the stop's channel while \
             it ran (sshd's ChannelTimeout?); whether it stopped the command is unknown"
            .to_string(),
        other => format!("stopping it failed ({other})"),
    }
}

/// Writes `command` to a private file on the host (see [`run_reporting`]), among the files of
/// the supervised command `id` where there is one (see `supervisor::stage`); returns the file's
/// path.
pub(super) fn stage(
    conn: &Connection,
    command: &str,
    opts: &ExecOptions,
    id: Option<&str>,
    tag: &str,
) -> Result<String, ExecError> {
    // The writing ends with the exec's sh, even past the command's deadline (by the grace at
    // most): what removes the file for a deadline or a stop then comes after it, never before
    // an exec's sh that starts late and writes it (stop 36: `--timeout 1ms` left `ID.k`).
    let stage_opts = ExecOptions {
        timeout: opts.timeout.map(|t| t + STOP_GRACE),
        keepalive: opts.keepalive,
        stdin: Some(command.as_bytes().to_vec()),
        ..ExecOptions::default()
    };
    let key = Key::new();
    let out = run_wrapped(
        conn,
        &wrap_for(
            &crate::ssh::supervisor::stage(id, tag, command.len()),
            false,
            None,
            &key,
        ),
        &key,
        &stage_opts,
        &mut |_, _, _| {},
        &mut Preamble::default(),
        None,
    )?;
    let path = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && path.starts_with('/') && !path.contains('\n') {
        return Ok(path.into_owned());
    }
    // What the writer said, where it said anything (stop 45 tester t58: a bare `: ` after a
    // login shell that ended first).
    let said = crate::chars::shown(&out.stderr).trim().to_string();
    Err(ExecError::NotStaged(format!(
        "the command ({} bytes) is too long for one exec request, and writing it to a \
         temporary file on the host failed ({}){}",
        command.len(),
        out.status,
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    )))
}

/// How long a stopped command's channel is read for what it wrote after the stop (see
/// [`drain`]).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the exec request string `wrapped`, whose frames carry `key`, on a new channel of
/// `conn`; with `sup`, a command under the supervisor (resumed when `sup` holds its streams).
pub(super) fn run_wrapped(
    conn: &Connection,
    wrapped: &str,
    key: &Key,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    mut sup: Option<&mut Supervision>,
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let (channel, agent) = launch(conn, wrapped, key, opts, sup.as_deref_mut())?;
    follow(
        conn, channel, agent, key, opts, on_line, preamble, sup, started,
    )
}

/// Opens a channel of `conn` and sends it the exec request string `wrapped` (a PTY, agent
/// forwarding and the environment first, as `opts` asks); a request that may have reached the
/// host leaves `sup` to be settled (see [`settle`]).
fn launch(
    conn: &Connection,
    wrapped: &str,
    key: &Key,
    opts: &ExecOptions,
    sup: Option<&mut Supervision>,
) -> Result<(ssh2::Channel, Option<crate::ssh::agent::Forwarder>), ExecError> {
    let asked = Instant::now();
    let open_until = asked + opts.open_within.unwrap_or_else(open_timeout);
    // A stop, the command's deadline, or a signal's shorter wait (see `open_timeout`) that
    // comes while its channel is awaited ends the wait: nothing was sent yet (stop 56 tester
    // t89: a step's `timeout: 5` and a Ctrl-C waited the whole 15 s on a blackholed host).
    let deadline = opts.timeout.map(|t| asked + t);
    let signal_seen = std::cell::Cell::new(None::<Instant>);
    let keep = || {
        if crate::interrupt::signalled() {
            let seen = *signal_seen.get().get_or_insert_with(Instant::now);
            signal_seen.set(Some(seen));
            if seen.elapsed() >= SIGNALLED_OPEN_TIMEOUT {
                return false;
            }
        }
        !opts.stop.is_set() && deadline.is_none_or(|d| Instant::now() < d)
    };
    let mut channel = conn
        .open_session_while(open_until, REFUSED_GRACE, &keep)
        .map_err(|e| match e {
            OpenError::Refused(why) => ExecError::Refused(format!("cannot open a channel: {why}")),
            OpenError::Wait(_) if opts.stop.is_set() => ExecError::StoppedUnsent(asked.elapsed()),
            OpenError::Wait(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                ExecError::Deadline(asked.elapsed(), None, KeptStderr::default())
            }
            OpenError::Wait(e) => ExecError::NotStarted(format!("cannot open a channel: {e}")),
        })?;
    if opts.pty {
        let term = opts.env.term().unwrap_or(PTY_TERM);
        request_pty(conn, &mut channel, open_until, term, opts.stdin.is_none())?;
    }
    let agent = match &opts.forward_agent {
        Some(socket) => Some(
            crate::ssh::agent::start(conn, &mut channel, open_until, socket.clone())
                .map_err(ExecError::Refused)?,
        ),
        None => None,
    };
    // As ssh, after the terminal and before the command; the command has not started.
    crate::ssh::env::send(conn, &mut channel, &opts.env, open_until).map_err(|e| {
        ExecError::NotStarted(format!(
            "sending environment variables (SetEnv/SendEnv) failed: {e}"
        ))
    })?;
    let lost = |what: &str, e: WaitError| ExecError::Lost(format!("{what}: {e}"));
    let requested = loop {
        match channel.exec(wrapped) {
            Ok(()) => break Ok(()),
            Err(e) if would_block(&e) => {
                if let Err(w) = conn.wait_socket(open_until) {
                    break Err(w);
                }
            }
            // LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: the server answered no (sshd could not
            // start a process): nothing ran, and the connection is fine.
            Err(e) if e.code() == ssh2::ErrorCode::Session(-22) => {
                return Err(ExecError::Refused(format!(
                    "the server refused to run the command (its exec request failed: {})",
                    crate::ssh::wording::plain(&e)
                )))
            }
            Err(e) => break Err(WaitError::Failed(conn.plain(&e))),
        }
    };
    if let Err(e) = requested {
        // The request may have reached the host (its sh then runs the command) or not: as
        // a loss before the start marker, `settle` claims the command first and it is sent
        // again only where it never ran. A resume keeps the streams it had.
        if let Some(sup) = sup.filter(|_| opts.stdin_from.is_none()) {
            if sup.streams.is_none() {
                sup.pending = true;
                sup.streams = Some(Streams::new(opts, key));
            }
        }
        return Err(lost("exec request failed", e));
    }
    Ok((channel, agent))
}

/// Follows the command on `channel` (its exec request sent at `started`) to its end: its
/// stdin fed, both streams read and shown, a stop or deadline carried out, its status. A
/// supervised command whose channel the server closes under it (sshd's `ChannelTimeout`,
/// which OpenSSH 9.2 applies to a channel carrying output every 0.1 s too when it is 1 s: stop
/// 52 tester t79) goes on under its supervisor: it is followed on a new channel of the same
/// connection, from the bytes received, each time, until it ends, its deadline passes or it
/// is stopped (a command of a minute under `ChannelTimeout session:*=1s` has about a hundred
/// channels; the 50 it was followed on at most before left it running, said as "not recorded").
#[allow(clippy::too_many_arguments)]
pub(super) fn follow(
    conn: &Connection,
    channel: ssh2::Channel,
    agent: Option<crate::ssh::agent::Forwarder>,
    key: &Key,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    mut sup: Option<&mut Supervision>,
    started: Instant,
) -> Result<ExecOutput, ExecError> {
    let (mut channel, mut agent) = (channel, agent);
    let (mut key, mut now) = (key.clone(), opts.clone());
    // Channels in a row that followed the command and were closed before they said they
    // started: past `UNSTARTED`, their login shell is taken to end them (a startup file that
    // exits), and the command is said cut off.
    let mut unstarted = 0;
    loop {
        let followed = follow_channel(
            conn,
            channel,
            agent,
            &key,
            &now,
            on_line,
            preamble,
            sup.as_deref_mut(),
            started,
            unstarted < UNSTARTED,
        )?;
        let s = match (followed, sup.as_deref_mut()) {
            (Followed::Ended(mut out), _) => {
                out.duration = started.elapsed();
                return Ok(out);
            }
            (Followed::Cut { started }, Some(s)) => {
                unstarted = if started { 0 } else { unstarted + 1 };
                s
            }
            // `follow_channel` says a cut of a supervised command only.
            (Followed::Cut { .. }, None) => {
                return Err(ExecError::Lost(
                    "the server closed the channel without an exit status".into(),
                ))
            }
        };
        let (wrapped, resumed, rest) = resume_request(s, &opts.remaining(started));
        (channel, agent) = launch(conn, &wrapped, &resumed, &rest, Some(s))?;
        // Followed from `started`: its whole timeout, not what was left of it at this launch
        // counted from `started` again (stop 57 tester t91: `--timeout 3s` under
        // `ChannelTimeout session:*=1s` timed out at 2.1 s).
        let timeout = opts.timeout;
        (key, now) = (resumed, ExecOptions { timeout, ..rest });
    }
}

/// How one channel of a command ([`follow_channel`]) ended.
enum Followed {
    /// With the command's result.
    Ended(ExecOutput),
    /// Closed by the server with no exit status while the command runs on under its
    /// supervisor: it is to be followed on a new channel. `started`: the channel's sh said it
    /// started (one that follows a running command may be closed before it does).
    Cut { started: bool },
}

/// How long a command under the supervisor goes with nothing arriving (its tick comes after
/// every 0.4 s of silence, 2 s where `sleep` takes whole seconds) before its connection is
/// taken for hung by a stop or a deadline that comes then.
const HUNG: Duration = Duration::from_secs(3);

/// How long the channel of a stop or a deadline's stop may take to open where nothing came on
/// its command's connection for a second or more but its server's TCP still acknowledges (see
/// [`HUNG`]).
const SUSPECT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stop or a deadline waits for the server's TCP to acknowledge a keepalive before
/// it takes the connection for hung (see [`HUNG`]): round trips take milliseconds to a few
/// hundred.
const ACK_WAIT: Duration = Duration::from_secs(2);

/// How long a stop or deadline that found a session a jump host carries hung already asks
/// it whether the jump host is what went silent (see [`HUNG`]): not the whole [`ACK_WAIT`],
/// whose answer would not change (found reading c3a926b: 2 s more for every such stop where
/// the host behind a healthy jump host was the silent one).
const CARRIER_WAIT: Duration = Duration::from_secs(1);

/// Channels in a row that [`follow`] follows a running command on again when the server closed
/// them before they said they started.
const UNSTARTED: u32 = 3;

/// [`follow`] on one channel; with `refollow`, one that follows a running command (a resume)
/// closed by the server before it said it started is [`Followed::Cut`] too.
#[allow(clippy::too_many_arguments)]
fn follow_channel(
    conn: &Connection,
    mut channel: ssh2::Channel,
    mut agent: Option<crate::ssh::agent::Forwarder>,
    key: &Key,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    mut sup: Option<&mut Supervision>,
    started: Instant,
    refollow: bool,
) -> Result<Followed, ExecError> {
    let kept = sup.as_deref_mut().and_then(|s| s.streams.take());
    // Streams kept from an earlier channel: the command runs (or ran) under the supervisor.
    let resuming = kept.is_some();
    let mut streams = match kept {
        // A resume: a new login shell's preamble, and no held bytes that might have been a
        // frame (the spool files have every byte of the command's).
        Some(mut kept) => {
            kept.out.start = StartFilter::default();
            kept.err.start = StartFilter::default();
            kept.err.status = Some(StderrFilter::new(key));
            kept.key = key.clone();
            // Bytes of this resume date a loss from now on: one before its start marker has
            // none (the previous connection's last byte is long past).
            kept.heard = None;
            kept
        }
        None => Streams::new(opts, key),
    };
    let supervised = sup.is_some();
    let pumped = pump(
        conn,
        &mut channel,
        &mut streams,
        opts,
        supervised,
        &mut agent,
        on_line,
        started,
    );
    match pumped {
        Ok(()) => {}
        Err(ExecError::Lost(reason)) => {
            if let Some(sup) = sup {
                if let Some((_, place)) =
                    crate::ssh::supervisor::placement(&streams.err.start.preamble)
                {
                    sup.place = Some(place);
                }
                // The host said it runs the command directly: why nothing can re-attach.
                if let Some((_, _, why)) = direct_reason(&streams.err.start.preamble, key)
                    .filter(|_| streams.err.start.open)
                {
                    sup.direct = Some(why);
                }
                if streams.supervised() && streams.stdin_done {
                    sup.streams = Some(streams);
                } else if !streams.err.start.open && opts.stdin_from.is_none() {
                    // Lost before the start marker: the exec's sh may not have run yet (see
                    // `settle`, which claims the command first).
                    sup.pending = true;
                    sup.streams = Some(streams);
                }
            }
            return Err(ExecError::Lost(reason));
        }
        Err(e @ (ExecError::Stopped(..) | ExecError::Deadline(..))) => {
            // Not even the supervisor's tick for a while, or, for a command with no tick (a
            // PTY's) or none for a second, a keepalive its server's TCP does not acknowledge:
            // the connection is hung, and the stop gets a short wait for its channel (then the
            // session is taken for lost: see `Reached::Nothing`), none for the standby's close
            // (stop 55 tester t87: a blackholed host's `--timeout 8s` ended at 40 s, 17 of them
            // these waits; stop 56 tester t89: 20 s for `--pty --timeout 5s`).
            // A session a jump host carries is asked all the same, briefly (hung it is
            // already): the answer tells whether the silence is the jump host's, whose worker
            // then connects again (see `CarrierSocket::hung`); a jump host's silence shows
            // within two retransmission timeouts.
            let unheard = streams.unheard_since.map(|at| at.elapsed());
            let hung = match unheard {
                Some(unheard) if unheard >= HUNG && conn.carried() => {
                    conn.acknowledges_within(CARRIER_WAIT);
                    true
                }
                Some(unheard) if unheard >= HUNG => true,
                Some(unheard) if unheard < Duration::from_secs(1) => false,
                _ => conn.acknowledges_within(ACK_WAIT) == Some(false),
            };
            let patience = match hung {
                true => {
                    let open = SIGNALLED_OPEN_TIMEOUT.min(open_timeout());
                    StopPatience {
                        open,
                        total: STOP_GRACE + open,
                    }
                }
                // Its server's TCP acknowledges, yet nothing came for a second or more (or it
                // has no tick to tell): a live sshd opens a channel in milliseconds, one that
                // stopped answering (`kill -STOP`, its kernel acknowledging) never does. Not
                // the 15 s a channel gets (stop 58 tester t93: `--timeout 4s` ended at 24 s).
                false
                    if streams
                        .unheard_since
                        .is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) =>
                {
                    StopPatience::opening_within(SUSPECT_OPEN_TIMEOUT.min(open_timeout()))
                }
                false => StopPatience::usual(),
            };
            // Its channel slot goes to the stop's exec (a server's `MaxSessions`).
            match hung {
                true => standby::abandon_standby(conn),
                false => standby::close_standby(conn),
            }
            let group = (opts.pty && streams.out.start.open)
                .then(|| pty_stop::group(&streams.out.start.preamble, key))
                .flatten();
            // A supervised command is stopped by its id, started or not (a stop claims one not
            // yet started, so that it never starts); one the host said it runs directly cannot
            // be reached.
            let direct = direct_reason(&streams.err.start.preamble, key)
                .filter(|_| streams.err.start.open && sup.is_some());
            if let (Some((_, _, reason)), Some(sup)) = (&direct, sup.as_deref_mut()) {
                sup.direct = Some(reason.clone());
            }
            // Where it runs, for the words that stop it by hand should this stop fail.
            let placed = crate::ssh::supervisor::placement(&streams.err.start.preamble);
            if let (Some(s), Some((_, place))) = (sup.as_deref_mut(), &placed) {
                s.place = Some(place.clone());
            }
            let pty_group = group.map(|(_, pgid)| {
                Box::new(PtyGroup {
                    pgid,
                    key: key.as_str().to_string(),
                })
            });
            let stopped = match (sup.as_deref().filter(|_| direct.is_none()), &pty_group) {
                // Run directly: nothing on the host can reach it.
                (None, None) if direct.is_some() => {
                    drop(channel.close());
                    Some(Err(StopFailed::from(
                        "it runs without tether's supervisor on this host, which no stop \
                         reaches: it may still be running"
                            .to_string(),
                    )))
                }
                // The exec's sh ends once the command's process group is gone. A claim that
                // wins over a command whose exec's sh said where it runs means its files were
                // removed under it (a /tmp cleaner, its own `rm`): it runs all the same, and
                // its group is stopped where the host said it is (stop 39 tester t29: "it had
                // not started on the host, and never will", the command still running).
                (Some(sup), _) => Some(match stop_supervised(conn, &sup.id, patience) {
                    Ok(StopDone::Never) => match &placed {
                        Some((_, place)) => {
                            stop_supervised_group(conn, &place.pgid, &sup.id, patience)
                        }
                        None => Ok(StopDone::Never),
                    },
                    other => other,
                }),
                (None, Some(group)) => Some(stop_pty_group(conn, group, patience)),
                // Abandoned: closing its channel does not wait for it.
                (None, None) if matches!(e, ExecError::Deadline(..)) => {
                    drop(channel.close());
                    None
                }
                (None, None) => None,
            };
            // A stop the silent session never answered says the silence, which is why (stop 61
            // tester t100: "stopping it failed (cannot open a channel: timed out)", nothing said
            // of the host gone silent 5 s before the timeout).
            let stopped = match (stopped, unheard) {
                (Some(Err(mut failed)), Some(unheard)) if hung && failed.unanswered => {
                    failed.how.push_str(&format!(
                        "; nothing had come from the host for {} before the stop: its \
                         connection had gone silent",
                        crate::duration::format(unheard)
                    ));
                    Some(Err(failed))
                }
                (stopped, _) => stopped,
            };
            // The stop found the host runs it directly: as had its exec's sh said so.
            if let (
                Some(Err(StopFailed {
                    direct: Some(why), ..
                })),
                Some(sup),
            ) = (&stopped, sup.as_deref_mut())
            {
                sup.direct = Some(why.clone());
            }
            // Cut short with its connection, or refused a channel (sshd's `MaxSessions`): the
            // command's streams are kept, to be followed to its end over a new connection
            // while its stop is finished there, or after it is stopped over a second one.
            if let (Some(Err(StopFailed { cut, refused, .. })), Some(sup)) =
                (&stopped, sup.as_deref_mut())
            {
                if (*cut || *refused)
                    && streams.supervised()
                    && streams.stdin_done
                    && direct.is_none()
                {
                    // Sent, not waited for: sshd answers it only once the command's shell is
                    // gone, which the stop over a second connection brings about (stop 61
                    // tester t98: the stop came 3 s late, 2 s of them here).
                    if *refused {
                        drop(channel.close());
                    }
                    let e = e.with_stderr(streams.err.kept_stderr());
                    sup.streams = Some(streams);
                    return Err(e.with_stop(stopped.map(|r| RemoteStop::of(r, pty_group))));
                }
            }
            if let Some(Ok(
                StopDone::Term | StopDone::Kill | StopDone::Gone | StopDone::Others { .. },
            )) = &stopped
            {
                // The group is gone; what its clean-up wrote (or its result) is still on its
                // way.
                drain(conn, &mut channel, &mut streams, on_line, DRAIN);
            }
            // Nothing was left to stop: the command ended by itself as the stop came. A stop
            // asked for takes its result (read to the channel's end above) as its own; a
            // deadline does not, the result came after it: a command is given up at its
            // deadline however soon after it ended (stop 42 tester t45: `--timeout 1ms --
            // 'sleep 0.02'` was ok or timed out by turns).
            if stopped != Some(Ok(StopDone::Gone)) || matches!(e, ExecError::Deadline(..)) {
                if stopped.is_some() {
                    streams
                        .out
                        .lines
                        .finish(|l, end| on_line(Stream::Stdout, l, end));
                    streams
                        .err
                        .lines
                        .finish(|l, end| on_line(Stream::Stderr, l, end));
                    match &stopped {
                        // Nor would it answer the close.
                        Some(Err(StopFailed {
                            unanswered: true, ..
                        })) => drop(channel.close()),
                        _ => close_now(conn, &mut channel),
                    }
                }
                return Err(e
                    .with_stop(stopped.map(|r| RemoteStop::of(r, pty_group)))
                    .with_stderr(streams.err.kept_stderr()));
            }
        }
        Err(e) => return Err(e),
    }
    let placed = sup.is_some() && streams.supervised();
    let (err_marker, _) = streams.err.end(on_line);
    let (out_marker, kept) = streams.out.end(on_line);
    if let Err(e) = kept {
        close_now(conn, &mut channel);
        return Err(ExecError::Local(format!("writing the output: {e}")));
    }
    let marker = err_marker.or(out_marker);
    let close_until = Instant::now() + OPEN_TIMEOUT;
    // The status marker is the command's status: a connection lost after it came loses
    // nothing of the command (stop 52 tester t79: "the command may have partly run" for a
    // command whose output and status had all arrived).
    if let Err(e) = conn.retry(close_until, || channel.wait_close()) {
        if marker.is_none() {
            return Err(ExecError::Lost(format!(
                "waiting for the channel to close failed: {e}"
            )));
        }
    }
    let signal = channel
        .exit_signal()
        .ok()
        .and_then(|s| s.exit_signal)
        .filter(|s| !s.is_empty());
    let gone = streams.err.status.as_ref().is_some_and(|f| f.gone);
    let broken = streams.err.status.as_ref().is_some_and(|f| f.broken);
    if let Some(sup) = sup.as_deref_mut() {
        sup.marker = marker.is_some();
        sup.gone = gone;
        if let Some(f) = &streams.err.status {
            sup.lost.0 += f.lost[0];
            sup.lost.1 += f.lost[1];
        }
        if let Some((_, place)) = crate::ssh::supervisor::placement(&streams.err.start.preamble) {
            sup.place = Some(place);
        }
        if let (true, Some(sig), None, false, false) =
            (placed, &signal, marker, gone, sup.followed.is_some())
        {
            // Killed by a signal before it reported: the exec's sh kills itself with the
            // command's signal once the command ended (`supervisor::FINISH`), but it may also
            // have been killed on the host (a `kill -9` of its pid) while the command, in its
            // process group, runs on. The command's files tell: it is resumed on this
            // connection, once, from the bytes received.
            sup.followed = Some(sig.clone());
            sup.streams = Some(streams);
            let rest = opts.remaining(started);
            let mut out = resume(conn, sup, &rest, on_line, preamble)?;
            if !sup.marker && !matches!(out.status, ExitStatus::Signal(_)) {
                // No status: its process group was killed too, with its exec's sh.
                out.status = ExitStatus::Signal(sig.clone());
            }
            return Ok(Followed::Ended(out));
        }
        // Closed under the command without an exit status (no status came: libssh2 says 0),
        // its exec's sh alive: the server ended the channel. The command goes on under the
        // supervisor (see `follow`).
        if let (true, None, None, false, Ok(0)) = (
            placed || (resuming && refollow),
            &signal,
            marker,
            gone,
            channel.exit_status(),
        ) {
            sup.streams = Some(streams);
            return Ok(Followed::Cut { started: placed });
        }
    }
    let Streams {
        mut out, mut err, ..
    } = streams;
    let stderr_cut = err.cut();
    let (mut stdout, stderr) = (out.bytes, err.bytes);
    let began = out.start.open;
    preamble.stdout = out.start.preamble;
    preamble.stderr = err.start.preamble;
    for bytes in [&mut preamble.stdout, &mut preamble.stderr] {
        if crate::ssh::command_shell::cut_no_bash(bytes, key.as_str()) {
            preamble.no_bash = true;
        }
    }
    if let Some((from, to, reason)) = direct_reason(&preamble.stderr, key) {
        preamble.stderr.drain(from..to);
        if let Some(sup) = sup {
            sup.direct = Some(reason);
        }
    }
    if let Some((range, _)) = crate::ssh::supervisor::placement(&preamble.stderr) {
        preamble.stderr.drain(range);
    }
    if opts.pty {
        if let Some((range, _)) = pty_stop::group(&preamble.stdout, key) {
            preamble.stdout.drain(range);
        }
        stdout = crlf_to_lf(&stdout);
        preamble.stdout = crlf_to_lf(&preamble.stdout);
    }
    out.lines.finish(|l, end| on_line(Stream::Stdout, l, end));
    err.lines.finish(|l, end| on_line(Stream::Stderr, l, end));

    let status = match (signal, marker) {
        _ if broken => ExitStatus::OutputLost,
        // The command's files were removed under it (a resume that finds them gone is a
        // loss the worker reports: see `worker/reattach.rs`).
        _ if gone => ExitStatus::SpoolRemoved,
        (Some(sig), _) => ExitStatus::Signal(sig),
        (None, Some(code)) => ExitStatus::Code(code),
        // Under the supervisor, the exec's sh ends without its marker only where the status
        // was not recorded (`supervisor::FINISH`), or by a signal (above).
        (None, None) if placed => ExitStatus::Unrecorded,
        (None, None) => match channel.exit_status() {
            // Without the marker a 0 is what libssh2 reports when nothing arrived.
            Ok(code) if code != 0 && !began => ExitStatus::ShellEnded(code),
            Ok(code) if code != 0 => ExitStatus::Code(code),
            // Not even the start marker came (stop 36 tester t22: a ~/.bashrc that exits was
            // said as a ChannelTimeout cutting off a running command).
            _ if !began && !resuming => ExitStatus::MissingBeforeStart,
            // A resume follows a command that started: this one, closed before it said it
            // started, is the last that [`follow`] tried.
            _ if !began => ExitStatus::Unfollowed,
            _ if opts.pty => ExitStatus::HungUp,
            _ => ExitStatus::Missing,
        },
    };
    Ok(Followed::Ended(ExecOutput {
        status,
        stdout,
        stderr,
        stderr_cut,
        duration: started.elapsed(),
    }))
}

/// Requests a pseudo-terminal of type `term` for `channel` (before its exec), with `echo` as
/// its ECHO mode.
/// A refusal (`PermitTTY no`) is [`ExecError::Refused`]; any other failure means the session
/// may be dead, and as the command has not started, [`ExecError::NotStarted`].
pub(super) fn request_pty(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    until: Instant,
    term: &str,
    echo: bool,
) -> Result<(), ExecError> {
    loop {
        let modes = (!echo).then(|| {
            let mut modes = ssh2::PtyModes::new();
            modes.set_boolean(ssh2::PtyModeOpcode::ECHO, false);
            modes.set_boolean(ssh2::PtyModeOpcode::ECHONL, false);
            modes
        });
        match channel.request_pty(term, modes, None) {
            Ok(()) => return Ok(()),
            Err(e) if crate::ssh::connect::would_block(&e) => {
                conn.wait_socket(until).map_err(|e| {
                    ExecError::NotStarted(format!("requesting a pseudo-terminal failed: {e}"))
                })?;
            }
            Err(e) if e.code() == ssh2::ErrorCode::Session(CHANNEL_REQUEST_DENIED) => {
                return Err(ExecError::Refused(format!(
                    "the server refused a pseudo-terminal (PermitTTY no?): {e}"
                )))
            }
            Err(e) => {
                return Err(ExecError::NotStarted(format!(
                    "requesting a pseudo-terminal failed: {e}"
                )))
            }
        }
    }
}

/// libssh2's LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED.
pub(super) const CHANNEL_REQUEST_DENIED: i32 = -22;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_that_did_not_run_is_said_of_the_stop_not_of_the_command() {
        for status in [
            ExitStatus::MissingBeforeStart,
            ExitStatus::Unchecked,
            ExitStatus::ShellEnded(1),
        ] {
            let said = stop_ended(&status);
            assert!(said.contains("the stop did not run"), "{said}");
            assert!(!said.contains("command"), "{said}");
        }
        assert_eq!(
            stop_ended(&ExitStatus::Code(2)),
            "stopping it failed (exit status 2)"
        );
    }
}
