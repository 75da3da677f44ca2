//! What can be wrong with an ssh config: for every host (a [`ConfigError`], as ssh refuses
//! the whole config) or for one host (a [`HostError`]), and where (a [`Location`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A problem that makes the whole config unusable, as ssh refuses it for every host.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read ssh config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is malformed (bad syntax or value, unknown keyword, bad Match, Include loop).
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A user config (or an included file) others may write to, which ssh refuses to read.
    #[error(
        "bad owner or permissions on {path}: it must belong to you or root and be writable by \
         nobody else (ssh refuses it too)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
    },
}

/// `file:line` of a config line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file.
    pub file: Arc<Path>,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why one host cannot be resolved: the config says something for it that tether refuses
/// (a refused keyword, `RefuseConnection`), or something ssh too would fail on for this host
/// only (a `Match exec` killed by a signal, a token that does not expand, a canonical name
/// not found). The other hosts are not affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host}: ssh config {}: {problem}", .location.as_ref().map_or_else(|| "(command line)".to_string(), |l| l.to_string()))]
pub struct HostError {
    /// The host as named by the user.
    pub host: String,
    /// The line that causes it (`None`: the command line's `-J`).
    pub location: Option<Location>,
    /// What is wrong, naming the keyword.
    pub problem: String,
    /// The host's name does not resolve (canonicalization found it nowhere): it cannot be
    /// reached, as opposed to a setting tether refuses.
    pub unresolved: bool,
}
