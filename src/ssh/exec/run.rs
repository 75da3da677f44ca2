//! Running one command: on a fresh channel, on a standby (see `standby.rs`), or staged first
//! when too long for one exec request; settled and resumed where its channel ended before it
//! said it started.

use std::time::{Duration, Instant};

use super::channel::{follow, launch, run_wrapped};
use super::frames::Key;
use super::incoming::{LineEnd, Streams};
use super::options::{open_timeout, ExecOptions, OPEN_TIMEOUT};
use super::outcome::{ExecError, ExecOutput, ExitStatus, KeptStderr, RemoteStop};
use super::preamble::Preamble;
use super::resume::{resume, settle, settle_claim, Lost, Settled};
use super::script::{run_script, stop};
use super::standby::{self, Standby};
use super::supervision::Supervision;
use super::wrap::{standby_line, wrap_for, MAX_EXEC};
use crate::command::quote;
use crate::event::Stream;
use crate::ssh::connection::Connection;
use crate::ssh::supervisor::{StopDone, STOP_GRACE};

/// Runs `command` (wrapped, see [`wrap`](mod@super::wrap)) on `conn`, calling `on_line` for each output line as
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
            return run_wrapped(conn, &wrapped, &key, opts, on_line, preamble, sup, stop);
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
        stop,
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
        stop,
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
        stop,
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
        stop,
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
