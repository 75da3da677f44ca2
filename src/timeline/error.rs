//! What can go wrong making a timeline.

use std::path::PathBuf;

use super::read::ReadError;

/// Why no timeline was made.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// The event stream could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The stream holds events, but none of a run (no hosts, tasks or `run_started`).
    #[error(
        "the stream holds no run: no `run_started`, host or task event in its {events} events \
         (is it the `--format json` output of `tether TASK` or `tether run`?)"
    )]
    NoRun {
        /// Events read.
        events: usize,
    },
    /// `--run N` names a run the stream does not have.
    #[error("--run {asked}: the stream holds {runs} run{}", if *.runs == 1 { "" } else { "s" })]
    NoSuchRun {
        /// The run asked for (from 1).
        asked: usize,
        /// Runs in the stream.
        runs: usize,
    },
    /// `--timeline FILE` cannot be written where it says.
    #[error("--timeline {}: {reason}", .path.display())]
    Path {
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// Writing the page failed.
    #[error("cannot write the timeline {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
