//! The jump host's heartbeat: a `true` exec on a new channel as a non-blocking state machine,
//! so the jump session never blocks and its tunnels keep flowing meanwhile. The same machine
//! runs the scripts that read the jump host's sshd config, keeping what they print.

use std::io::Read as _;
use std::time::{Duration, Instant};

use ssh2::Channel;

use crate::ssh::connection::{channel_refused, would_block, Connection};

/// The heartbeat's `true` exec as a non-blocking state machine (the jump session never
/// blocks: its tunnels keep flowing meanwhile).
pub struct Heartbeat {
    started: Instant,
    /// Whether the server's own traffic (a probe) started it.
    pub probe: bool,
    stage: Stage,
    channel: Option<Channel>,
    command: String,
    /// What it printed, kept for a script that reads the server's config (`None` for `true`).
    stdout: Option<Vec<u8>>,
    status: Option<i32>,
}

/// The most of a script's stdout kept: more than any sshd config dump.
const MAX_STDOUT: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Stage {
    Open,
    Exec,
    Eof,
    Drain,
    Close,
}

impl Heartbeat {
    /// A heartbeat to start now; `probe` when the server's traffic asked for it.
    pub fn new(probe: bool) -> Self {
        Heartbeat {
            started: Instant::now(),
            probe,
            stage: Stage::Open,
            channel: None,
            command: "true".into(),
            stdout: None,
            status: None,
        }
    }

    /// A heartbeat that runs `script` instead of `true` and keeps its stdout.
    pub fn reading(script: String) -> Self {
        Heartbeat {
            command: script,
            stdout: Some(Vec::new()),
            ..Heartbeat::new(false)
        }
    }

    /// Whether it runs a script whose output is kept ([`Heartbeat::reading`]).
    pub fn reads(&self) -> bool {
        self.stdout.is_some()
    }

    /// What the script printed, once it has exited 0; `None` otherwise (or for `true`).
    pub fn output(&self) -> Option<String> {
        let out = self.stdout.as_ref().filter(|_| self.status == Some(0))?;
        Some(String::from_utf8_lossy(out).into_owned())
    }

    /// Ok(Some(rtt)) when done, Ok(None) while pending, Err (in plain words) when the
    /// session failed.
    pub fn advance(
        &mut self,
        conn: &Connection,
        timeout: Duration,
    ) -> Result<Option<Duration>, String> {
        let session = &conn.session;
        let plain = |e: &ssh2::Error| conn.plain(e);
        let plain_io = |e: &std::io::Error| conn.plain_io(e);
        if self.started.elapsed() > timeout {
            return Err(format!(
                "no heartbeat answer within {}",
                crate::duration::format(timeout)
            ));
        }
        let pending = |e: &ssh2::Error| would_block(e);
        loop {
            match self.stage {
                Stage::Open => match session.channel_session() {
                    Ok(ch) => {
                        self.channel = Some(ch);
                        self.stage = Stage::Exec;
                    }
                    Err(e) if pending(&e) => return Ok(None),
                    // An answer all the same (a bastion's `MaxSessions 0`): it is alive.
                    Err(e) if channel_refused(&e) => return Ok(Some(self.started.elapsed())),
                    Err(e) => {
                        return Err(format!("heartbeat: cannot open a channel: {}", plain(&e)))
                    }
                },
                Stage::Exec | Stage::Eof | Stage::Drain | Stage::Close => {
                    let Some(ch) = self.channel.as_mut() else {
                        return Err("heartbeat: no channel".into());
                    };
                    match self.stage {
                        Stage::Exec => match ch.exec(&self.command) {
                            Ok(()) => self.stage = Stage::Eof,
                            Err(e) if pending(&e) => return Ok(None),
                            Err(e) => return Err(format!("heartbeat: exec failed: {}", plain(&e))),
                        },
                        Stage::Eof => match ch.send_eof() {
                            Ok(()) => self.stage = Stage::Drain,
                            Err(e) if pending(&e) => return Ok(None),
                            Err(e) => return Err(format!("heartbeat: {}", plain(&e))),
                        },
                        Stage::Drain => {
                            let mut buf = [0u8; 4096];
                            let mut open = 0;
                            for id in [0, 1] {
                                match ch.stream(id).read(&mut buf) {
                                    Ok(0) => {}
                                    Ok(n) => {
                                        if let Some(out) = self
                                            .stdout
                                            .as_mut()
                                            .filter(|o| id == 0 && o.len() + n <= MAX_STDOUT)
                                        {
                                            out.extend_from_slice(&buf[..n]);
                                        }
                                        open += 1
                                    }
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                        open += 1
                                    }
                                    Err(e) => return Err(format!("heartbeat: {}", plain_io(&e))),
                                }
                            }
                            if open == 0 && ch.eof() {
                                self.stage = Stage::Close;
                            } else {
                                return Ok(None);
                            }
                        }
                        Stage::Close => match ch.wait_close() {
                            Ok(()) => {
                                self.status = ch.exit_status().ok();
                                return Ok(Some(self.started.elapsed()));
                            }
                            Err(e) if pending(&e) => return Ok(None),
                            Err(e) => return Err(format!("heartbeat: {}", plain(&e))),
                        },
                        Stage::Open => unreachable!("handled above"),
                    }
                }
            }
        }
    }
}
