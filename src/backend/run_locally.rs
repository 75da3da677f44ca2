//! `run_locally`: a command on this machine, its stderr reported as the run's output.

use std::path::Path;
use std::sync::Arc;

use crate::event::{EventKind, Sink, Stream};
use crate::failure::{Failure, Kind};
use crate::outcome::stderr_tail;
use crate::ssh::exec::ExitStatus;

/// `sh -c command` in `dir`, stdin closed; stderr lines become events; Err names the command,
/// its status (a signal by name) and the tails of its stdout and stderr.
pub(super) fn run_locally(sink: &Sink, command: &str, dir: &Path) -> Result<String, Box<Failure>> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            Box::new(Failure::new(
                Kind::Failed,
                format!("run_locally `{command}`: cannot start sh: {e}"),
            ))
        })?;
    let local: Arc<str> = Arc::from("");
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        sink.emit(
            &local,
            EventKind::LocalOutput {
                stream: Stream::Stderr,
                line: crate::secret::mask(line).into_owned(),
            },
        );
    }
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
    let mut message = format!("local: `{command}` failed with {status}");
    // Its stdout is the value a success returns: a failure shows its last lines too, as
    // SSHKit's `Command::Failed` shows both streams.
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let tail = stderr_tail(bytes, crate::outcome::STDERR_TAIL);
        if !tail.is_empty() {
            message.push_str(&format!("\n  {name} (last lines):"));
            for l in tail {
                message.push_str(&format!("\n    {}", crate::secret::mask(&l)));
            }
        }
    }
    Err(Box::new(Failure::new(Kind::CommandFailed, message)))
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
