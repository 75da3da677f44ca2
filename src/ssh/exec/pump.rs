//! The channel loop of one command: feeds its stdin and reads both streams until it ends, is
//! lost, stopped, or past its deadline.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::incoming::{direct_reason, Incoming, LineEnd, Streams};
use super::options::{ExecOptions, CHUNK};
use super::outcome::{ExecError, KeptStderr};
use super::pty_stop;
use crate::event::Stream;
use crate::ssh::connection::{Connection, WaitError};

/// How often a PTY command with a stop flag checks it (at most this late).
pub(super) const STOP_CHECK: Duration = Duration::from_millis(50);

/// How long a command under the supervisor may go with nothing at all arriving before its
/// connection is taken for lost (and re-attached to): the supervisor writes a tick frame after
/// every 0.4 s of silence (2 s where `sleep` takes whole seconds only), so this long without
/// a byte means the connection or the host's sshd is hung, which neither TCP (the host's
/// kernel still acknowledges) nor a dead socket tells.
pub(super) const SILENT_LIMIT: Duration = Duration::from_secs(15);

/// How long a PTY command stopped before its exec's sh said its process group waits for that
/// frame (it comes moments after the exec request) before its channel is closed instead:
/// closing it that early races sshd setting up the terminal, and the hang-up can miss the
/// command altogether.
const GROUP_WAIT: Duration = Duration::from_secs(2);

/// Feeds `channel` its stdin and reads both streams into `streams` until it ends (Ok), is
/// lost, stopped (a PTY command, or one under the supervisor), or past its deadline.
#[allow(clippy::too_many_arguments)]
pub(super) fn pump(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    streams: &mut Streams,
    opts: &ExecOptions,
    supervised: bool,
    agent: &mut Option<crate::ssh::agent::Forwarder>,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    started: Instant,
) -> Result<(), ExecError> {
    let session = &conn.session;
    let lost = |what: &str, e: WaitError| ExecError::Lost(format!("{what}: {e}"));
    // The input: `stdin`'s bytes, then `stdin_from`'s, one chunk in memory at a time.
    let mut input: Vec<u8> = opts.stdin.clone().unwrap_or_default();
    let mut written = 0;
    let mut source = opts.stdin_from.clone();
    let mut stdin_open = true;
    let deadline = opts.timeout.map(|t| started + t);
    let mut next_keepalive = opts.keepalive.map(|k| Instant::now() + k);
    let Streams {
        out,
        err,
        stdin_done,
        key,
        heard: heard_supervised,
        unheard_since,
        left,
    } = streams;
    // A command without a PTY is stopped only under the supervisor (closing its channel would
    // not stop it), or when it is a transfer: closing its channel ends the remote `cat` (an
    // upload's shell then sees too few bytes and removes its temporary file).
    let transfer = opts.stdin_from.is_some() || opts.stdout_to.is_some();
    let stop = Some(&opts.stop).filter(|s| !s.is_empty() && (opts.pty || supervised || transfer));
    let mut buf = vec![0u8; 32 * 1024];
    let mut stopped_at: Option<Instant> = None;
    // What a second signal says of a PTY command, once its group is known (see
    // `ExecOptions::left_running`): not where registered by an earlier round.
    let say_left = opts.left_running.as_ref().filter(|_| left.is_none());
    let mut group_looked = false;
    // Whether `opts.direct_left` was told (see below).
    let mut direct_told = false;
    // When a byte last arrived (see [`SILENT_LIMIT`]).
    let mut heard = Instant::now();
    loop {
        // Under the supervisor the channel stays open while its process group is stopped
        // (the caller does that, then closes it): the exec's sh ends with the command.
        // So does a PTY command's, once its exec's sh said its process group.
        let began = supervised && err.start.open;
        let direct_why = began
            .then(|| direct_reason(&err.start.preamble, key))
            .flatten();
        let direct = direct_why.is_some();
        // What a second signal says of it: no stop reaches it (tester t110: the words given
        // to stop it by hand stopped nothing).
        if let (false, Some((_, _, why)), Some(tell)) =
            (direct_told, &direct_why, &opts.direct_left)
        {
            direct_told = true;
            (tell.0)(why);
        }
        let supervising = began && !direct;
        let attached = supervising
            || (opts.pty && out.start.open && pty_stop::group(&out.start.preamble, key).is_some());
        let stopping = stop.is_some_and(|s| s.is_set());
        let for_group = opts.pty
            && !out.start.open
            && stopping
            && stopped_at.get_or_insert_with(Instant::now).elapsed() < GROUP_WAIT;
        // One the host runs without the supervisor cannot be stopped: it is no longer waited
        // for, and the caller says it may still be running (stop 45 tester t57: Ctrl-C waited
        // 23 s for it, then called it ok). One whose start the host has not said yet (its
        // login shell still starting) is claimed by the caller's stop, as at a deadline, so
        // that it never starts (Ctrl-C waited for the login shell, let the command start,
        // then stopped it).
        let unstarted = supervised && !err.start.open;
        if stopping && (opts.pty || transfer || attached || direct || unstarted) && !for_group {
            if !attached && !unstarted {
                close_now(conn, channel);
            }
            return Err(ExecError::Stopped(started.elapsed(), None));
        }
        let mut progressed = false;
        // Input is written in the same loop that reads output, so a command that answers
        // while it reads never deadlocks against us.
        while stdin_open {
            if written == input.len() {
                let Some(from) = &source else { break };
                input.resize(CHUNK, 0);
                written = 0;
                let n = from
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .read(&mut input)
                    .unwrap_or(0);
                input.truncate(n);
                if n == 0 {
                    source = None;
                    break;
                }
            }
            match channel.write(&input[written..]) {
                Ok(n) => {
                    written += n;
                    progressed = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The command stopped reading (or exited); a dead session shows up in the
                // reads below.
                Err(_) => stdin_open = false,
            }
        }
        if stdin_open && written == input.len() && source.is_none() {
            match channel.send_eof() {
                Ok(()) => {
                    stdin_open = false;
                    *stdin_done = true;
                }
                Err(e) if crate::ssh::connection::would_block(&e) => {}
                Err(e) => {
                    return Err(lost(
                        "closing stdin failed",
                        WaitError::Failed(conn.plain(&e)),
                    ))
                }
            }
        }
        // While the reporter's backlog is full nothing more is read: the output waits on the
        // host (see `sink::Backlog`), the loop keeps the deadline, the stop and keepalives.
        let held_back = opts.backlog.as_ref().is_some_and(|b| b.is_full());
        let (read, open_streams) = if held_back {
            (false, 0)
        } else {
            read_both(conn, channel, out, err, &mut buf, on_line)?
        };
        progressed |= read;
        // As of before this read: one that brought the start marker brought bytes too.
        if read && supervising {
            *heard_supervised = Some(Instant::now());
        }
        // Held back, silence is ours: nothing was asked of the connection.
        if read || !supervising || held_back {
            heard = Instant::now();
        }
        *unheard_since = supervising.then_some(heard);
        // The group's frame comes before the start marker: looked for once.
        if let (false, true, Some(say)) = (group_looked, opts.pty && out.start.open, say_left) {
            group_looked = true;
            if let Some((_, pgid)) = pty_stop::group(&out.start.preamble, key) {
                *left = Some((say.0)(&pgid));
            }
        }
        if heard.elapsed() >= SILENT_LIMIT {
            return Err(ExecError::Lost(format!(
                "nothing arrived for {}, not even the supervisor's tick (written after 0.4 s of \
                 silence): the connection or the host's sshd is hung",
                crate::duration::format(heard.elapsed())
            )));
        }
        if let Some(a) = agent.as_mut() {
            // Agent channels the server opened while we read (the remote command talks to
            // its SSH_AUTH_SOCK).
            progressed |= a.pump();
        }
        // Whatever arrived: output that never pauses (a PTY's flood) kept the deadline from
        // being looked at, and a result read after it is late (stop 42 tester t45:
        // `--timeout 1ms -- 'sleep 0.02'` was ok or timed out by turns).
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            // The caller closes the channel (after stopping a supervised command).
            return Err(ExecError::Deadline(
                started.elapsed(),
                None,
                KeptStderr::default(),
            ));
        }
        // Held back, the streams were not read: whether they ended is not known.
        if !held_back && open_streams == 0 && channel.eof() {
            break;
        }
        if progressed {
            continue;
        }
        if let (Some(at), Some(every)) = (next_keepalive, opts.keepalive) {
            if now >= at {
                // A keepalive is client traffic for the server's ClientAlive counter; "would
                // block" only means it is queued.
                if let Err(e) = session.keepalive_send() {
                    if !crate::ssh::connection::would_block(&e) {
                        return Err(lost("keepalive failed", WaitError::Failed(conn.plain(&e))));
                    }
                }
                next_keepalive = Some(now + every);
            }
        }
        // A line left unended a while (a prompt) is shown in a terminal's status line.
        for incoming in [&mut *out, &mut *err] {
            if let Some(text) = incoming.pending(now) {
                on_line(incoming.stream, &text, LineEnd::Pending);
            }
        }
        let mut until = now + Duration::from_millis(500);
        if agent.as_ref().is_some_and(|a| a.busy()) {
            // The agent's answers arrive on sockets this wait does not watch.
            until = until.min(now + Duration::from_millis(5));
        }
        if stop.is_some() {
            until = until.min(now + STOP_CHECK);
        }
        if let Some(d) = deadline {
            until = until.min(d);
        }
        until = until.min(heard + SILENT_LIMIT);
        if let Some(at) = next_keepalive {
            until = until.min(at.max(now + Duration::from_millis(1)));
        }
        if held_back {
            // Woken when the reporter takes lines; the socket may be readable all along.
            if let Some(b) = &opts.backlog {
                b.wait_for_room(until);
            }
            continue;
        }
        match conn.wait_socket(until) {
            Ok(()) | Err(WaitError::Timeout) => {}
            Err(e) => return Err(lost("waiting for output failed", e)),
        }
    }
    if let Some(a) = agent.take() {
        a.finish(conn);
    }
    Ok(())
}

/// Reads what is there of both streams of `channel` into `out` and `err` (once each): whether
/// anything came, and how many streams are still open.
fn read_both(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    out: &mut Incoming,
    err: &mut Incoming,
    buf: &mut [u8],
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
) -> Result<(bool, usize), ExecError> {
    let (mut progressed, mut open_streams) = (false, 0);
    for stream_id in [0, 1] {
        match channel.stream(stream_id).read(buf) {
            Ok(0) => {}
            Ok(n) => {
                progressed = true;
                open_streams += 1;
                let incoming = if stream_id == 0 { &mut *out } else { &mut *err };
                if let Err(e) = incoming.push(&buf[..n], on_line) {
                    close_now(conn, channel);
                    return Err(ExecError::Local(format!("writing the output: {e}")));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open_streams += 1,
            Err(e) => {
                return Err(ExecError::Lost(format!(
                    "reading output failed: {}",
                    conn.plain_io(&e)
                )))
            }
        }
    }
    Ok((progressed, open_streams))
}

/// After a stop that signalled the command's process group: reads what the command still
/// wrote (the words of its clean-up on SIGTERM, the supervisor's last bytes) until its channel
/// ends, for `within` at most. Best effort: what the session cannot deliver is left.
pub(super) fn drain(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    streams: &mut Streams,
    on_line: &mut dyn FnMut(Stream, &str, LineEnd),
    within: Duration,
) {
    let until = Instant::now() + within;
    let mut buf = vec![0u8; 32 * 1024];
    while Instant::now() < until {
        match read_both(
            conn,
            channel,
            &mut streams.out,
            &mut streams.err,
            &mut buf,
            on_line,
        ) {
            Ok((_, 0)) if channel.eof() => return,
            Ok((true, _)) => continue,
            Ok((false, _)) => match conn.wait_socket(until.min(Instant::now() + STOP_CHECK)) {
                Ok(()) | Err(WaitError::Timeout) => {}
                Err(WaitError::Failed(_)) => return,
            },
            Err(_) => return,
        }
    }
}

/// Closes `channel` now and waits (briefly) for the server's close: for a PTY command, that
/// hangs up its terminal, so the remote process gets SIGHUP. Best effort: a session that fails
/// here shows up at its next use.
pub(super) fn close_now(conn: &Connection, channel: &mut ssh2::Channel) {
    let until = Instant::now() + Duration::from_secs(2);
    let _ = conn.retry(until, || channel.close());
}
