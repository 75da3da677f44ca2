//! `run_locally`: a command on this machine, its stderr reported as the run's output.

use std::path::Path;
use std::sync::Arc;

use crate::event::{EventKind, Stream};
use crate::failure::{Failure, Kind};
use crate::sink::Sink;
use crate::ssh::exec::ExitStatus;
use crate::stderr_tail::{stderr_tail, STDERR_TAIL};
use crate::stop::StopReason;

/// How long a local command stopped with SIGTERM has before SIGKILL, as a remote one has.
const STOP_GRACE: std::time::Duration = crate::ssh::supervisor::STOP_GRACE;

/// `sh -c command` in `dir`, stdin closed, in a process group of its own; stderr lines become
/// events as they come (as SSHKit's local backend streams them); Err names the command, its
/// status (a signal by name) and the tails of its stdout and stderr. Once `stopped` gives a
/// reason (Ctrl-C, SIGTERM or SIGHUP to tether, a cancelled watch run; asked every 50 ms, and
/// sooner while the command is young: a quick one is not held up) its group is sent SIGTERM,
/// and SIGKILL after 5 s, and a command that did not succeed is said stopped for it, of kind
/// [`Kind::Interrupted`] for an interrupt (the interrupt's, not a failure of the command's
/// own, as a remote command's: stop 53 tester t83): a signal to
/// tether alone (`kill`, a service manager, a CI cancel) reaches no child of its own, and a
/// terminal's Ctrl-C no longer reaches another process group.
pub(super) fn run_locally(
    sink: &Sink,
    command: &str,
    dir: &Path,
    stopped: &dyn Fn() -> Option<StopReason>,
) -> Result<String, Box<Failure>> {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    let cannot = |e: std::io::Error| {
        Box::new(Failure::new(
            Kind::Failed,
            format!("run_locally `{command}`: cannot start sh: {e}"),
        ))
    };
    // After a space: a command beginning with `-` or `+` is its own words, never sh's options,
    // as on the hosts (see `supervisor::SUPERVISE`).
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(" {command}"))
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(cannot)?;
    let out = child.stdout.take().map(|mut p| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            bytes
        })
    });
    let err = child.stderr.take().map(|p| {
        let sink = sink.clone();
        std::thread::spawn(move || show_lines(&sink, p))
    });
    // The group's id is the child's pid (process_group(0)).
    let group = child.id() as libc::pid_t;
    let _on_exit = crate::interrupt::EndsOnExit::register(group);
    let mut signalled: Option<(std::time::Instant, StopReason)> = None;
    let mut nap = std::time::Duration::from_millis(1);
    // A stop reaches the group while its sh runs, and after, while a child of it in the
    // background still holds its output (`sleep 23 & echo bg`: the group lives on without its
    // leader; stop 36 tester t22: a Ctrl-C waited for it, 23 s).
    let mut ended = None;
    let status = loop {
        if ended.is_none() {
            ended = child.try_wait().map_err(cannot)?;
        }
        let held = [
            out.as_ref().is_some_and(|t| !t.is_finished()),
            err.as_ref().is_some_and(|t| !t.is_finished()),
        ];
        if let (Some(status), [false, false]) = (ended, held) {
            break status;
        }
        match &signalled {
            None => {
                if let Some(why) = stopped() {
                    // SAFETY: kill(2) on the process group this function started.
                    unsafe { libc::kill(-group, libc::SIGTERM) };
                    signalled = Some((std::time::Instant::now(), why));
                }
            }
            Some((at, _)) if at.elapsed() >= STOP_GRACE => {
                // SAFETY: as above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            _ => {}
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(std::time::Duration::from_millis(50));
    };
    // What is left of its group (a child in the background holding the pipes) goes too.
    if signalled.is_some() {
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    let output = std::process::Output {
        status,
        stdout: out.and_then(|t| t.join().ok()).unwrap_or_default(),
        stderr: err.and_then(|t| t.join().ok()).unwrap_or_default(),
    };
    sink.barrier();
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).trim().to_string());
    }
    use std::os::unix::process::ExitStatusExt as _;
    let status = match (output.status.code(), output.status.signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(signal_name(s)),
        (None, None) => ExitStatus::Unrecorded,
    };
    let (kind, mut message) = match signalled.map(|(_, why)| why) {
        Some(why) => (
            match why {
                StopReason::Interrupted => Kind::Interrupted,
                _ => Kind::CommandFailed,
            },
            format!("local: `{command}` stopped ({why}), ended with {status}"),
        ),
        None => (
            Kind::CommandFailed,
            format!("local: `{command}` failed with {status}"),
        ),
    };
    // Its stdout is the value a success returns: a failure shows its last lines too, as
    // SSHKit's `Command::Failed` shows both streams.
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let tail = stderr_tail(bytes, STDERR_TAIL);
        if !tail.is_empty() {
            message.push_str(&format!("\n  {name} (last lines):"));
            for l in tail {
                message.push_str(&format!("\n    {}", crate::secret::mask(&l)));
            }
        }
    }
    Err(Box::new(Failure::new(kind, message)))
}

/// Reports each line of a local command's stderr `pipe` as it comes (a last one without a
/// newline at its end; bytes that are not UTF-8 as `\xNN`, as a host's lines show them), and
/// returns all of its bytes.
fn show_lines(sink: &Sink, pipe: std::process::ChildStderr) -> Vec<u8> {
    use std::io::BufRead as _;
    let local: Arc<str> = Arc::from("");
    let mut reader = std::io::BufReader::new(pipe);
    let mut bytes = Vec::new();
    let mut line = Vec::new();
    let backlog = sink.backlog();
    loop {
        // A reader that is behind holds the command back, as it does a host's (see
        // `sink::Backlog`): once the backlog is full this thread reads no more of its stderr
        // until it is down to half.
        if backlog.is_full() {
            while !backlog
                .wait_for_room(std::time::Instant::now() + std::time::Duration::from_secs(1))
            {
            }
        }
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                bytes.extend_from_slice(&line);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                // Other bytes than UTF-8 as `\xNN`, as a host's lines show them.
                let text = crate::ssh::exec::shown(line);
                sink.emit(
                    &local,
                    EventKind::LocalOutput {
                        stream: Stream::Stderr,
                        line: crate::secret::mask(text.strip_suffix('\r').unwrap_or(&text))
                            .into_owned(),
                    },
                );
            }
        }
    }
    bytes
}

/// The name of signal `n` as sh's `kill -l` gives it (`TERM`), else its number.
fn signal_name(n: i32) -> String {
    let names = [
        (libc::SIGHUP, "HUP"),
        (libc::SIGINT, "INT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGILL, "ILL"),
        (libc::SIGTRAP, "TRAP"),
        (libc::SIGABRT, "ABRT"),
        (libc::SIGBUS, "BUS"),
        (libc::SIGFPE, "FPE"),
        (libc::SIGKILL, "KILL"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGSEGV, "SEGV"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGPIPE, "PIPE"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGTERM, "TERM"),
    ];
    names
        .iter()
        .find(|(s, _)| *s == n)
        .map_or_else(|| n.to_string(), |(_, name)| name.to_string())
}
