//! What a backend is asked to do: the [`Backend`] trait and the calls it takes (a command's
//! options, an upload, a download) and the reasons a transfer did not complete.

use std::path::Path;
use std::time::Duration;

use crate::failure::Failure;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult};
use crate::ssh::exec::ExecOutput;
use crate::ssh::SshError;
use crate::stop::Stop;

/// How one command of a closure runs (`run`, `capture`, `test`, an upload).
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// Bytes fed to its stdin.
    pub stdin: Option<Vec<u8>>,
    /// Deadline.
    pub timeout: Option<Duration>,
    /// The bound on re-attaching to it after a lost connection (`None`: the run's).
    pub reattach: Option<Duration>,
    /// Keep its stdout from the output (`capture`: the value is the output).
    pub quiet: bool,
    /// A pseudo-terminal. A command fed the sudo password gets one with its echo off; an
    /// upload never gets one (the terminal would translate its bytes).
    pub pty: bool,
    /// What else stops it while it runs, besides the run's own stop (Ctrl-C): a failure of
    /// another host of the same `on` (see `crate::step_abort::StepAbort`).
    pub stop: Stop,
}

/// An upload a backend was asked for (see [`crate::transfer`] for the two commands it takes).
pub struct Upload<'a> {
    /// The local file.
    pub path: &'a Path,
    /// The local path as the recipe named it (for messages and the plan).
    pub local: &'a str,
    /// The remote path.
    pub remote: &'a str,
    /// Permission bits for the destination; None: the local file's.
    pub mode: Option<u32>,
    /// Turns a remote script into the command sent (the recipe's `within`, `with_env`,
    /// `as_user` context).
    pub render: &'a (dyn Fn(&str) -> String + Sync),
    /// Bytes every command of the transfer gets on stdin first (the sudo password line).
    pub stdin_prefix: Option<Vec<u8>>,
    /// Give the whole transfer up after this long (`on(.., #{ timeout })`), as a command.
    pub timeout: Option<Duration>,
}

/// A download a backend was asked for: `remote` on the host to `path` here.
pub struct Download<'a> {
    /// The remote path.
    pub remote: &'a str,
    /// The local path as the recipe named it (for messages and the plan).
    pub local: &'a str,
    /// The local destination.
    pub path: &'a Path,
    /// Permission bits for the destination; None: the remote file's.
    pub mode: Option<u32>,
    /// As [`Upload::render`].
    pub render: &'a (dyn Fn(&str) -> String + Sync),
    /// As [`Upload::stdin_prefix`].
    pub stdin_prefix: Option<Vec<u8>>,
    /// Give the whole transfer up after this long (`on(.., #{ timeout })`), as a command.
    pub timeout: Option<Duration>,
}

/// Why a transfer did not complete. In every case the destination is as it was.
#[derive(Debug)]
pub enum TransferError {
    /// The local file could not be read, or the local destination written: the text says
    /// which file and why.
    Local(String),
    /// A remote command of the transfer failed: the command as sent, and its result.
    Remote {
        /// The command.
        command: String,
        /// What it came to (boxed: an error value stays small).
        result: Box<Result<ExecOutput, SshError>>,
    },
    /// An upload's placing step was stopped on the host (its timeout, Ctrl-C) after it had
    /// moved the file into place: the failure, and the destination is the uploaded file.
    Placed(Box<SshError>),
    /// A download arrived, but not as the remote file is now (size or SHA-256 differ).
    Changed(String),
    /// A download's local file could not be written (its temporary file made, written or
    /// moved into place: a full or read-only disk): the text says which file and why. Not
    /// the recipe's mistake: it fails the host's download, as a failed command does (stop 40
    /// tester t33: a full disk was a recipe error, exit 4).
    LocalWrite(String),
}

/// Executes the commands of a recipe run.
pub trait Backend: Send + Sync {
    /// Makes sure `hosts` have sessions (connecting in parallel). A host that cannot connect
    /// is not an error here: its commands fail.
    fn prepare(&self, hosts: &[HostTarget]);
    /// Runs (host, command) pairs as `how` says; results in input order.
    fn fan_out(&self, commands: &[(String, String)], how: &FanOut) -> Vec<HostResult>;
    /// Runs one command on one host.
    fn exec(&self, host: &str, command: &str, call: Call) -> Result<ExecOutput, SshError>;
    /// Sends `upload.path` to `upload.remote` on `host`, streamed (one chunk in memory) and
    /// placed only once its size and SHA-256 are checked there.
    fn upload(&self, host: &str, upload: &Upload) -> Result<(), TransferError>;
    /// Fetches `download.remote` from `host` into `download.path`, streamed into a private
    /// temporary file there and renamed into place only once its size and SHA-256 are the
    /// remote file's.
    fn download(&self, host: &str, download: &Download) -> Result<(), TransferError>;
    /// Runs `command` with `sh -c` in `dir` on this machine; returns its trimmed stdout.
    fn run_locally(&self, command: &str, dir: &Path) -> Result<String, Box<Failure>>;
    /// Whether a step's hosts take turns (see `StepAbort::taking_turns`), for output in a
    /// stable order (the printer).
    fn ordered(&self) -> bool;
    /// Before cleaning up after a failure: reconnect every host whose session died.
    fn revive(&self);
    /// Why `host` never connected, once its first connection attempt has ended (see
    /// `Pool::never_connected`): a host stopped before its command because another failed
    /// is reported with this instead, as it would have failed anyway, whichever came first.
    fn never_connected(&self, _host: &str) -> Option<SshError> {
        None
    }
}
