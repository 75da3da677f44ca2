//! A host's standby: the supervised exec of its next command, opened while the current one
//! runs, so that the next command finds its login shell and supervisor started (see
//! `exec/standby.rs`, which opens and uses it). What the connection keeps of it.

use std::time::{Duration, Instant};

use super::config::Requests;

/// How long a standby is kept once the session has nothing to run: past this it is closed (the
/// host's processes for it end), before the idle session's heartbeat schedule, which a
/// channel left open would change, resumes.
pub const STANDBY_AGE: Duration = Duration::from_secs(1);

/// An exec whose supervisor waits for its command on stdin.
pub struct Standby {
    /// Its channel, the exec request sent.
    pub channel: ssh2::Channel,
    /// Its frame key (see `exec/frames.rs`).
    pub key: String,
    /// The id its command will have on the host (see `supervisor::new_id`).
    pub id: String,
    /// Since when it has waited with nothing else running on the session: its opening, or the
    /// end of the command that was running then.
    pub since: Instant,
    /// The environment requests it was opened with: a command asking for others does not use it.
    pub env: Requests,
}

/// A connection's standby, if any, and whether it gets one.
#[derive(Default)]
pub struct Slot {
    /// The standby ready for the next command.
    pub ready: Option<Standby>,
    /// How many supervised commands this connection has sent: the second one on opens a
    /// standby (a one-command run opens none).
    pub sent: u32,
    /// No standby on this connection: its server refused the channel (`MaxSessions`), or one
    /// ended before its command could start.
    pub off: bool,
}
