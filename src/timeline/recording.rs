//! `--timeline FILE`: a run's events recorded through an event tap as they happen (only the
//! model is kept, never the output lines), and the page written when the run ends, however it
//! ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::build::Runs;
use super::error::TimelineError;
use super::read::{LineReader, ReadError};

/// The timeline of the run in progress, to be written to its file.
pub struct Recording {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    reader: LineReader,
    runs: Runs,
    error: Option<ReadError>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while feeding leaves at worst a partial model, which is still worth drawing.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recording {
    /// A recording for `path`, checked before the run starts: its directory must exist and
    /// it must not be a directory itself.
    pub fn new(path: &Path) -> Result<Self, TimelineError> {
        let bad = |reason: &str| TimelineError::Path {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if path.as_os_str() == "-" || path.file_name().is_none() {
            return Err(bad("needs the name of the HTML file to write"));
        }
        if path.is_dir() {
            return Err(bad("is a directory; name the HTML file to write"));
        }
        if let Some(what) = not_a_file(path) {
            return Err(bad(&format!(
                "is {what}, which the page would replace (it is written beside, then renamed \
                 over); name a regular file or a new one"
            )));
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(bad(&format!(
                "the directory {} does not exist",
                dir.display()
            )));
        }
        Ok(Recording {
            path: path.to_path_buf(),
            state: Arc::default(),
        })
    }

    /// The event tap that records: JSON lines in, the model out.
    pub fn tap(&self) -> Box<dyn Write + Send> {
        Box::new(Tap(self.state.clone()))
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the page of the recorded run (atomically: a reader never sees half a page);
    /// `Ok(false)` when no run started (the recipe did not load, say), and nothing is written.
    pub fn write(&self) -> Result<bool, TimelineError> {
        let runs = {
            let mut st = lock(&self.state);
            if let Some(e) = st.error.take() {
                return Err(e.into());
            }
            match st.reader.finish() {
                Ok(Some(entry)) => st.runs.push(&entry),
                Ok(None) => {}
                Err(e) => return Err(e.into()),
            }
            std::mem::take(&mut st.runs).finish()
        };
        let Some(run) = runs.last() else {
            return Ok(false);
        };
        let html = super::page::page(run, 1, 1);
        write_atomically(&self.path, html.as_bytes())?;
        Ok(true)
    }
}

/// What `path` is when something other than a regular file is there (a device such as
/// /dev/null, a FIFO, a socket, a symbolic link): a rename over it would replace it.
fn not_a_file(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = std::fs::symlink_metadata(path).ok()?.file_type();
    match () {
        _ if kind.is_file() => None,
        _ if kind.is_symlink() => Some("a symbolic link"),
        _ if kind.is_dir() => Some("a directory"),
        _ if kind.is_char_device() || kind.is_block_device() => Some("a device"),
        _ if kind.is_fifo() => Some("a FIFO"),
        _ if kind.is_socket() => Some("a socket"),
        _ => Some("not a regular file"),
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`; refused
/// where something other than a regular file is at `path` (see [`not_a_file`]), as it would
/// be replaced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TimelineError> {
    if let Some(what) = not_a_file(path) {
        return Err(TimelineError::Path {
            path: path.to_path_buf(),
            reason: format!("is {what}, which the page would replace; nothing was written"),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        TimelineError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

struct Tap(Arc<Mutex<State>>);

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut st = lock(&self.0);
        let st = &mut *st;
        match st.reader.push(buf) {
            Ok(entries) => {
                for entry in &entries {
                    st.runs.push(entry);
                }
                Ok(buf.len())
            }
            Err(e) => {
                let message = e.to_string();
                st.error.get_or_insert(e);
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    message,
                ))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
