//! One exec on one channel of a session: the channel opened (a PTY, agent forwarding and the
//! environment first, then the exec request), the command followed to its end (on new channels
//! where the server closes them under a command that runs on under the supervisor), and
//! stopped on the host when a stop or its deadline comes, by the [`Stop`] its caller gives (a
//! stop is itself a script run through this file: see `script.rs`).

use std::time::{Duration, Instant};

use super::frames::{Key, StderrFilter};
use super::incoming::{crlf_to_lf, direct_reason, LineEnd, Streams};
use super::options::{
    open_timeout, ExecOptions, StopPatience, OPEN_TIMEOUT, PTY_TERM, SIGNALLED_OPEN_TIMEOUT,
};
use super::outcome::{
    ExecError, ExecOutput, ExitStatus, KeptStderr, PtyGroup, RemoteStop, StopFailed,
};
use super::preamble::{Preamble, StartFilter};
use super::pty_stop;
use super::pump::{close_now, drain, pump};
use super::standby;
use super::supervision::Supervision;
use crate::event::Stream;
use crate::ssh::connection::{would_block, Connection, OpenError, WaitError, REFUSED_GRACE};
use crate::ssh::supervisor::{StopDone, STOP_GRACE};

/// What a running command is stopped by on its host (see [`Stop`]).
pub(super) enum StopTarget<'a> {
    /// The supervised command `id`; `pgid`: the process group its exec's sh said it runs in
    /// (see `supervisor::placement`), where it said so.
    Supervised { id: &'a str, pgid: Option<&'a str> },
    /// The PTY command whose exec's sh leads the group (see `pty_stop.rs`).
    Pty(&'a PtyGroup),
}

/// Stops a [`StopTarget`] on the host within a [`StopPatience`]: what it did, or why stopping
/// it failed (`script::stop`). Given by the callers of [`run_wrapped`] and [`follow`], as a
/// stop is itself a script that runs through them.
pub(super) type Stop =
    fn(&Connection, StopTarget<'_>, StopPatience) -> Result<StopDone, StopFailed>;

/// How long a stopped command's channel is read for what it wrote after the stop (see
/// [`drain`]).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the exec request string `wrapped`, whose frames carry `key`, on a new channel of
/// `conn`; with `sup`, a command under the supervisor (resumed when `sup` holds its streams);
/// `stop` stops it on the host should a stop or its deadline come (see [`Stop`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_wrapped(
    conn: &Connection,
    wrapped: &str,
    key: &Key,
    opts: &ExecOptions,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    preamble: &mut Preamble,
    mut sup: Option<&mut Supervision>,
    stop: Stop,
) -> Result<ExecOutput, ExecError> {
    let started = Instant::now();
    let (channel, agent) = launch(conn, wrapped, key, opts, sup.as_deref_mut())?;
    follow(
        conn, channel, agent, key, opts, on_line, preamble, sup, started, stop,
    )
}

/// Opens a channel of `conn` and sends it the exec request string `wrapped` (a PTY, agent
/// forwarding and the environment first, as `opts` asks); a request that may have reached the
/// host leaves `sup` to be settled (see [`settle`](super::settle)).
pub(super) fn launch(
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
            Err(e) if e.code() == ssh2::ErrorCode::Session(CHANNEL_REQUEST_DENIED) => {
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
    stop: Stop,
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
            stop,
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
        let (wrapped, resumed, rest) = s.resume_request(&opts.remaining(started));
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
    stop: Stop,
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
            } else if opts.pty {
                preamble.pty_group =
                    pty_stop::group(&streams.out.start.preamble, key).map(|(_, pgid)| PtyGroup {
                        pgid,
                        key: key.as_str().to_string(),
                    });
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
                // The exec's sh ends once the command's process group is gone.
                (Some(sup), _) => {
                    let target = StopTarget::Supervised {
                        id: &sup.id,
                        pgid: placed.as_ref().map(|(_, place)| place.pgid.as_str()),
                    };
                    Some(stop(conn, target, patience))
                }
                (None, Some(group)) => Some(stop(conn, StopTarget::Pty(group), patience)),
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
            let (wrapped, key, rest) = sup.resume_request(&opts.remaining(started));
            let mut out = run_wrapped(
                conn,
                &wrapped,
                &key,
                &rest,
                on_line,
                preamble,
                Some(&mut *sup),
                stop,
            )?;
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
        started,
    }))
}

/// Requests a pseudo-terminal of type `term` for `channel` (before its exec), with `echo` as
/// its ECHO mode, of the size of the terminal on tether's stdin, as `ssh -tt` asks for its
/// stdin's (TIOCGWINSZ), else libssh2's 80x24 (tester t128: 80x24 on a 132x50 terminal).
/// A refusal (`PermitTTY no`) is [`ExecError::Refused`]; any other failure means the session
/// may be dead, and as the command has not started, [`ExecError::NotStarted`].
fn request_pty(
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
        let size = crate::terminal::window_size(libc::STDIN_FILENO).map(|size| {
            (
                size.cols.into(),
                size.rows.into(),
                size.width.into(),
                size.height.into(),
            )
        });
        match channel.request_pty(term, modes, size) {
            Ok(()) => return Ok(()),
            Err(e) if crate::ssh::connection::would_block(&e) => {
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
const CHANNEL_REQUEST_DENIED: i32 = -22;
