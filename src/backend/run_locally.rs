//! `run_locally`: a command on this machine, its stderr reported as the run's output.

use std::path::Path;
use std::sync::Arc;

use crate::event::{EventKind, Sink, Stream};
use crate::failure::{Failure, Kind};
use crate::outcome::stderr_tail;

/// `sh -c command` in `dir`, stdin closed; stderr lines become events; Err names the command,
/// its status and the tail of its stderr.
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
    let status = match output.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "a signal".to_string(),
    };
    let mut message = format!("local: `{command}` failed with {status}");
    let tail = stderr_tail(&output.stderr, crate::outcome::STDERR_TAIL);
    if !tail.is_empty() {
        message.push_str("\n  stderr (last lines):");
        for l in tail {
            message.push_str(&format!("\n    {l}"));
        }
    }
    Err(Box::new(Failure::new(Kind::CommandFailed, message)))
}
