//! User-facing failures and the exit codes they map to.

use crate::ssh::config::ConfigError;

/// Exit code when a remote command failed (non-zero status, signal, no status, lost).
pub const EXIT_COMMAND_FAILED: i32 = 1;
/// Exit code for bad usage or configuration (also clap's code for bad arguments).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when a host could not be reached or refused us (connect, host key, auth).
pub const EXIT_UNREACHABLE: i32 = 3;
/// Exit code for a recipe error (syntax, runtime, unknown task/role/stage).
pub const EXIT_RECIPE: i32 = 4;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Every way a tether run can fail, as the user sees it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or a bad combination of them.
    #[error("{0}")]
    Usage(String),
    /// The ssh config could not be read or parsed.
    #[error(transparent)]
    SshConfig(#[from] ConfigError),
    /// Commands failed on some hosts (the details were printed in the summary).
    #[error("{failed} of {total} host{} failed", if *.total == 1 { "" } else { "s" })]
    HostsFailed {
        /// Hosts whose command failed or could not run.
        failed: usize,
        /// Of which unreachable.
        unreachable: usize,
        /// Hosts in the run.
        total: usize,
    },
    /// The recipe is wrong (the message carries file:line:col).
    #[error("{0}")]
    Recipe(String),
    /// A task failed (the message names the host and command).
    #[error("{message}")]
    TaskFailed {
        /// What failed, with host and command.
        message: String,
        /// Whether the failure was a host that could not be reached.
        unreachable: bool,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::SshConfig(_) => EXIT_USAGE,
            Error::HostsFailed { unreachable, .. } if *unreachable > 0 => EXIT_UNREACHABLE,
            Error::HostsFailed { .. } => EXIT_COMMAND_FAILED,
            Error::TaskFailed {
                unreachable: true, ..
            } => EXIT_UNREACHABLE,
            Error::TaskFailed { .. } => EXIT_COMMAND_FAILED,
            Error::Recipe(_) => EXIT_RECIPE,
            Error::Interrupted => EXIT_INTERRUPTED,
        }
    }
}
