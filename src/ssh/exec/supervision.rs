//! A command under the supervisor, as its caller keeps it: its id on the host, the streams
//! received so far (to resume it), and what became of it.

use super::frames::Key;
use super::incoming::Streams;
use super::options::ExecOptions;
use super::wrap::{start_markers, wrap_script};

/// A command under the supervisor (see `supervisor.rs`): what its caller keeps to resume it
/// after a lost connection, and what became of it.
pub struct Supervision {
    /// The command's id on the host (the name of its private directory).
    pub id: String,
    /// Both streams as received so far; kept when the connection was lost while the command
    /// ran under the supervisor, for [`resume`](super::resume()) to continue.
    pub(super) streams: Option<Streams>,
    /// Why the host ran the command directly instead (the supervisor could not run there).
    pub direct: Option<String>,
    /// Where the command runs on the host (its process group and files), once the exec's sh
    /// said so: what tether names when it cannot stop the command.
    pub place: Option<crate::ssh::supervisor::Placement>,
    /// A resume found the command's directory gone: how it ended is unknown.
    pub gone: bool,
    /// Bytes of stdout and of stderr a resume had to skip: the host had already removed them
    /// from the command's bounded spool (see `supervisor::spool`).
    pub lost: (u64, u64),
    /// Ids of earlier commands whose results were read: the supervisor removes their
    /// directories.
    pub done: Vec<String>,
    /// How long the command's spool writers on the host wait, its spool full, for a reader
    /// that gets no further before they end (its next write then fails, SIGPIPE, as under
    /// sshd once its connection is gone): past this, nothing will re-attach to it (see
    /// `supervisor::spool_writer`). The re-attach bound, the time a dead connection takes to
    /// be noticed, and a margin: [`Supervision::wait_for`].
    pub spool_wait: std::time::Duration,
    /// The connection was lost before the start marker arrived: the exec's sh may not have
    /// run yet. [`settle`](super::settle) claims the command first (see `supervisor::claim`).
    pub(super) pending: bool,
    /// The file on the host its command was written to, for a command too long for one exec
    /// request (see [`run_reporting`](super::run_reporting)): its exec removes it once it runs
    /// the command; a claim that wins does (see [`settle`](super::settle)).
    pub(super) staged: Option<String>,
    /// The last exec's status marker arrived (the status is the command's own).
    pub(super) marker: bool,
    /// The exec's sh ended by this signal before it reported the command's status, and the
    /// command was then followed to its end by a resume on the same connection (see
    /// `channel.rs`): its own status says whether it was the command's signal or a process
    /// of the supervisor's (its exec's sh or streaming loop, killed on the host while the
    /// command ran on).
    pub followed: Option<String>,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            id: crate::ssh::supervisor::new_id(),
            streams: None,
            direct: None,
            place: None,
            gone: false,
            lost: (0, 0),
            done: Vec::new(),
            spool_wait: Supervision::wait_for(
                crate::ssh::supervisor::DEFAULT_REATTACH,
                std::time::Duration::ZERO,
            ),
            pending: false,
            staged: None,
            marker: false,
            followed: None,
        }
    }
}

impl Supervision {
    /// [`spool_wait`](Self::spool_wait) for a command whose connection is re-attached to for
    /// `reattach` after it is found dead, which takes `noticed` at most: both, and 10 s for
    /// the resume's own start.
    pub fn wait_for(
        reattach: std::time::Duration,
        noticed: std::time::Duration,
    ) -> std::time::Duration {
        reattach
            .saturating_add(noticed)
            .saturating_add(std::time::Duration::from_secs(10))
    }

    /// Whether the command, lost with its connection, can be resumed (it ran under the
    /// supervisor and all of its stdin had been sent), or may not have started yet (lost
    /// before its start marker arrived: [`settle`](super::settle) claims it first, and it is
    /// sent again when it never ran).
    pub fn resumable(&self) -> bool {
        self.streams.is_some()
    }

    /// When the last byte of the command lost with its connection arrived, where the supervisor
    /// ran it (it writes one after every 0.4 s of silence, so the connection was lost soon
    /// after); `None` where none came from it (lost before its start marker).
    pub fn heard(&self) -> Option<std::time::Instant> {
        self.streams.as_ref().and_then(|s| s.heard)
    }

    /// How many bytes of stdout and stderr have arrived.
    pub fn received(&self) -> (u64, u64) {
        self.streams
            .as_ref()
            .map_or((0, 0), |s| (s.out.kept, s.err.kept))
    }

    /// The exec request string that resumes the command from the bytes it received, its frame
    /// key, and its options (`opts` without stdin or environment: the command has its
    /// environment already, and this channel only reads its files).
    pub(super) fn resume_request(&self, opts: &ExecOptions) -> (String, Key, ExecOptions) {
        let (out, err) = self.received();
        let key = Key::new();
        let wrapped = wrap_script(
            &crate::ssh::supervisor::resume(&start_markers()),
            &key,
            &[&self.id, &out.to_string(), &err.to_string()],
        );
        let opts = ExecOptions {
            stdin: None,
            stdin_from: None,
            env: Default::default(),
            ..opts.clone()
        };
        (wrapped, key, opts)
    }
}
