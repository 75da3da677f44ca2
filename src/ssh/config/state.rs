//! The shared state of a loaded config: its files, how relative paths are anchored, the local
//! user and machine, and the resolutions made so far.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::error::HostError;
use super::file;
use super::host::{HostConfig, Request};
use super::local::Local;

/// Shared state of a loaded config.
#[derive(Debug)]
pub struct Inner {
    pub roots: Vec<Arc<file::File>>,
    pub anchors: file::Anchors,
    pub local: Local,
    /// The file given as `-F` (absolute; `none` as given); `None`: ssh's default files.
    pub file: Option<PathBuf>,
    /// Resolutions so far: each host is resolved (and its `Match exec` commands run) once.
    pub resolved: Mutex<HashMap<Request, Result<HostConfig, HostError>>>,
}
