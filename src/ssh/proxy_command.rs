//! ProxyCommand: a host reached through a local command's stdin and stdout
//! (`ProxyCommand ssh -W %h:%p bastion`, `nc`, `cloudflared access ssh` ...), started as
//! sshconnect.c `ssh_proxy_connect` starts it: `$SHELL -c "exec COMMAND"` (`/bin/sh` without
//! `$SHELL`), tokens already expanded by the config resolution.
//!
//! The command's stdin and stdout are one end of a `UnixStream::pair()`; the SSH session runs
//! over the other end, so no thread pumps bytes and the host's worker polls that socket like
//! a TCP one (heartbeat and reconnect work unchanged). The process lives exactly as long as
//! the connection: it is owned by the [`Connection`](super::connection::Connection), and when the
//! connection is dropped (the run ends, or a reconnect replaces a dead session with a new
//! proxy process) it gets SIGHUP, as ssh sends it, then SIGKILL if it lingers, and is reaped
//! by pid. It runs in a process group of its own, which the signals reach whole.
//!
//! A proxy command that exits before the SSH connection is set up is the reason the
//! connection failed: the error names the host, the command, its exit status and the end of
//! its stderr (kept, the last 4 KiB, by a reader thread).

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::banner::BannerProblem;
use super::config::HostConfig;
use super::connect;
use super::connection::Connection;
use super::SshError;

/// Bytes of the command's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;
/// How long a failed handshake waits for the proxy's exit status.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long a proxy may take to exit after SIGHUP before SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(1);
/// How long the failure of a proxy that exited waits for the end of its stderr (a child of
/// it may hold the pipe open for good).
const STDERR_GRACE: Duration = Duration::from_secs(1);

/// A running proxy command.
pub struct ProxyProcess {
    child: Child,
    command: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Disconnected once the reader of its stderr met the end of the pipe.
    stderr_read: std::sync::mpsc::Receiver<()>,
    /// Its process group, ended if tether exits at a second signal.
    _on_exit: crate::interrupt::EndsOnExit,
}

impl ProxyProcess {
    /// Starts `command` with one end of a socket pair as its stdin and stdout; returns the
    /// process and the other end.
    pub fn spawn(command: &str) -> std::io::Result<(ProxyProcess, UnixStream)> {
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_out: OwnedFd = theirs.try_clone()?.into();
        let mut child = Command::new(&shell)
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(theirs_out))
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            // What could not be started is the shell (stop 36 tester t17: `SHELL=/nonexistent`
            // read as if the proxy command were missing).
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("its shell {} ($SHELL): {e}", shell.display()),
                )
            })?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (read_to_end, stderr_read) = std::sync::mpsc::channel::<()>();
        if let Some(mut pipe) = child.stderr.take() {
            let tail = stderr.clone();
            // Detached: it ends when the command's stderr closes, dropping `read_to_end`.
            std::thread::Builder::new()
                .name("proxy stderr".into())
                .spawn(move || {
                    let _read_to_end = read_to_end;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                        t.extend_from_slice(&buf[..n]);
                        let excess = t.len().saturating_sub(STDERR_TAIL);
                        t.drain(..excess);
                    }
                })?;
        }
        // process_group(0): the group's id is the child's pid.
        let on_exit = crate::interrupt::EndsOnExit::register(child.id() as libc::pid_t);
        Ok((
            ProxyProcess {
                child,
                command: command.to_string(),
                stderr,
                stderr_read,
                _on_exit: on_exit,
            },
            ours,
        ))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, waiting at most `grace` for it.
    fn exited(&mut self, grace: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// The last lines of its stderr, joined with ` | ` (empty when it wrote nothing), once the
    /// pipe ended or [`STDERR_GRACE`] passed: the reader may still be copying the last bytes
    /// after the exit (a fixed 20 ms lost them under load).
    fn stderr_tail(&self) -> String {
        let _ = self.stderr_read.recv_timeout(STDERR_GRACE);
        let bytes = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let text = crate::chars::shown(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }

    fn failure(&self, host: &str, status: ExitStatus) -> SshError {
        let status = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => format!("ended ({status})"),
        };
        SshError::ProxyCommand {
            host: host.to_string(),
            command: self.command.clone(),
            status,
            stderr: self.stderr_tail(),
        }
    }

    fn signal(&self, sig: i32) {
        let Ok(pgid) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) has no memory-safety preconditions; the group is the child's own.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal(libc::SIGHUP);
        if self.exited(HANGUP_GRACE).is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Connects `name` (options `cfg`) through the proxy command `command`: the SSH handshake,
/// host key check (under the host's own name, as behind a jump host) and authentication run
/// over the command's stdin and stdout. `started` is when connecting began.
pub fn connect(
    name: &str,
    cfg: &HostConfig,
    command: &str,
    pinned: Option<&[u8]>,
    warn: &mut dyn FnMut(String),
) -> Result<Connection, SshError> {
    let started = Instant::now();
    let (mut proxy, stream) = ProxyProcess::spawn(command).map_err(|e| SshError::ProxyCommand {
        host: name.to_string(),
        command: command.to_string(),
        status: format!("could not be started: {e}"),
        stderr: String::new(),
    })?;
    match connect::connect_over(name, cfg, stream, started, pinned, warn) {
        Ok(conn) => Ok(conn.owning(Box::new(proxy))),
        // What came through instead of an SSH banner (an HTTP proxy's answer) is the reason,
        // whether or not the proxy then exits.
        Err(SshError::Banner {
            host,
            addr,
            problem,
        }) if said_instead(&problem) => Err(SshError::Banner {
            host,
            addr: format!("{addr} (through its ProxyCommand)"),
            problem,
        }),
        Err(e) if the_transport_failed(&e) => match proxy.exited(EXIT_GRACE) {
            // The command ending is why the connection failed.
            Some(status) => Err(proxy.failure(name, status)),
            None => Err(e),
        },
        // The server answered through the proxy (a host key refused, authentication failed):
        // that is the reason, and the proxy exits only because tether closed its end.
        Err(e) => Err(e),
    }
}

/// Whether the other end sent something other than an SSH banner.
fn said_instead(problem: &BannerProblem) -> bool {
    match problem {
        BannerProblem::NotSsh { .. } => true,
        BannerProblem::Closed { said, .. } => !said.is_empty(),
        BannerProblem::Silent { .. }
        | BannerProblem::KexTimeout { .. }
        | BannerProblem::LoginTimeout { .. } => false,
    }
}

/// Whether `e` is a failure of the byte stream itself (closed, stalled, garbled), which a
/// proxy command that exited explains better; never a verdict of tether or the server.
fn the_transport_failed(e: &SshError) -> bool {
    matches!(
        e,
        SshError::Banner { .. }
            | SshError::Handshake { .. }
            | SshError::ConnectionLost { .. }
            | SshError::Session { .. }
            | SshError::AuthCutOff { .. }
            | SshError::ConnectTimeout { .. }
    )
}
