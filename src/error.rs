//! User-facing failures of a whole command and the exit codes they map to.

use crate::exit;
use crate::failure::Failure;
use crate::ssh::config::ConfigError;
use crate::timeline::TimelineError;

/// Every way a tether command can fail, as the user sees it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or a bad combination of them.
    #[error("{0}")]
    Usage(String),
    /// The ssh config could not be read or parsed.
    #[error(transparent)]
    SshConfig(#[from] ConfigError),
    /// A step failed: commands, hosts, a configuration error found while connecting, an
    /// interrupt. The exit code follows the failure's kind.
    #[error("{0}")]
    Failed(Box<Failure>),
    /// The recipe is wrong (the message carries file:line:col).
    #[error("{0}")]
    Recipe(String),
    /// `--timeline FILE` cannot be written (checked before the run, and when it ends).
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

impl Error {
    /// The process exit code for this failure: 141 once stdout's reader has gone, which
    /// stopped the run (see `stdout::failed`), as SIGPIPE ends other tools, and as the run log's
    /// `run_finished` says it (stop 36 tester t19: it said 130).
    pub fn exit_code(&self) -> i32 {
        if crate::stdout::closed() {
            return exit::BROKEN_PIPE;
        }
        match self {
            Error::Usage(_) | Error::SshConfig(_) | Error::Timeline(_) => exit::USAGE,
            Error::Failed(f) => f.exit_code(),
            Error::Recipe(_) => exit::RECIPE,
        }
    }

    /// What text output prints after `error: `: a step's failure with hosts that failed alike
    /// folded when `fold` (`--no-fold` not given); JSON and `--no-fold` print [`Error`]'s
    /// `Display`, every host on its own.
    pub fn text(&self, fold: bool) -> String {
        match self {
            Error::Failed(f) if fold => f.folded(),
            e => e.to_string(),
        }
    }

    /// Ctrl-C (or a cancel) ended the command.
    pub fn interrupted() -> Self {
        Error::Failed(Box::new(Failure::interrupted()))
    }

    /// Whether this is an interrupt (a cancelled watch run, Ctrl-C).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Failed(f) if f.kind == crate::failure::Kind::Interrupted)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Failed(Box::new(f))
    }
}
