//! The run log (Capistrano's `log/capistrano.log`): every run of a recipe appends its whole
//! event stream, as the JSON lines `--format json` prints (secrets masked, every event whatever
//! `-v` says), to a file beside the recipe, `log/tether.log`, or the recipe's
//! `set("log_file", PATH)`; `set("log_file", "")` turns it off.
//!
//! It is an event [tap](super::Tap), added before the recipe is loaded, while where it goes is
//! known only once the recipe (and its stage) has run its top level: until then the lines wait
//! in memory, then [`RunLog::open`] writes them and appends the rest, or [`RunLog::off`] drops
//! them. A run that never gets there (the recipe does not load) logs nothing.
//!
//! Rotation by size: a log that has reached [`ROTATE_AT`] bytes when a run opens it becomes
//! `NAME.1` (replacing an older one) and the run starts a new file, so a log never grows
//! past the limit by more than one run.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::tap::Tap;

/// The size (bytes) at which a log is rotated when a run opens it: 10 MiB.
pub const ROTATE_AT: u64 = 10 * 1024 * 1024;

/// The run log of one run; see the module docs.
#[derive(Default, Clone)]
pub struct RunLog {
    state: Arc<Mutex<State>>,
}

enum State {
    /// Where it goes is not known yet: the lines so far.
    Pending(Vec<u8>),
    /// Appending to the file.
    Open(BufWriter<File>),
    /// Off (`set("log_file", "")`, or the file could not be opened).
    Off,
}

impl Default for State {
    fn default() -> Self {
        State::Pending(Vec::new())
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every change is one assignment or one write: a panic leaves a usable state.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tap's end: writes go wherever the log is at the time.
struct LogTap(Arc<Mutex<State>>);

impl Write for LogTap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *lock(&self.0) {
            State::Pending(lines) => {
                lines.extend_from_slice(buf);
                Ok(buf.len())
            }
            State::Open(file) => file.write(buf),
            State::Off => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *lock(&self.0) {
            State::Open(file) => file.flush(),
            _ => Ok(()),
        }
    }
}

impl RunLog {
    /// The event tap that feeds this log.
    pub fn tap(&self) -> Tap {
        Box::new(LogTap(self.state.clone()))
    }

    /// Starts appending to `path` (its directory created when missing; rotated first when it
    /// has reached [`ROTATE_AT`]), beginning with the lines that waited. On error the log is
    /// off and the error names the file; the run goes on without it.
    pub fn open(&self, path: &Path) -> Result<(), String> {
        let mut state = lock(&self.state);
        let pending = match std::mem::replace(&mut *state, State::Off) {
            State::Pending(lines) => lines,
            // Opened once per run.
            other => {
                *state = other;
                return Ok(());
            }
        };
        let fail =
            |e: std::io::Error| format!("run log {}: {e}; this run is not logged", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() >= ROTATE_AT) {
            std::fs::rename(path, rotated(path)).map_err(fail)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(fail)?;
        let mut file = BufWriter::new(file);
        file.write_all(&pending).map_err(fail)?;
        file.flush().map_err(fail)?;
        *state = State::Open(file);
        drop(state);
        // On disk within a moment of each event, and before an exit at a second signal, which
        // ends the process at once: a run stopped or killed keeps what it logged (stop 42
        // tester t47: nothing of a task's run reached the log before it ended, and a second
        // Ctrl-C lost all of it). A flush per event cost a write(2) per output line (300,000
        // lines: 0.4 s more system time).
        let weak = Arc::downgrade(&self.state);
        crate::interrupt::flush_on_exit(Box::new(move || {
            flush(&weak);
        }));
        let weak = Arc::downgrade(&self.state);
        // No thread (the system's limit): the lines reach the file as the buffer fills and at
        // the end, as before.
        let _ = std::thread::Builder::new()
            .name("run log".into())
            .spawn(move || {
                while flush(&weak) {
                    std::thread::sleep(FLUSH_EVERY);
                }
            });
        Ok(())
    }

    /// Turns the log off for this run: nothing is written, what waited is dropped.
    pub fn off(&self) {
        *lock(&self.state) = State::Off;
    }
}

/// How often an open log's buffered lines are written out.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Writes out what `state` holds buffered, if the log is still there; whether it is.
fn flush(state: &std::sync::Weak<Mutex<State>>) -> bool {
    let Some(state) = state.upgrade() else {
        return false;
    };
    if let State::Open(file) = &mut *lock(&state) {
        // A log that cannot be written is said at its end, as before.
        let _ = file.flush();
    }
    true
}

/// `PATH.1`, where a full log goes.
fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_until_the_log_opens_and_a_full_log_is_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/tether.log");
        let log = RunLog::default();
        let mut tap = log.tap();
        tap.write_all(b"{\"type\":\"a\"}\n").unwrap();
        log.open(&path).unwrap();
        tap.write_all(b"{\"type\":\"b\"}\n").unwrap();
        tap.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"type\":\"a\"}\n{\"type\":\"b\"}\n"
        );
        // Full: the next run starts a new file.
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(ROTATE_AT)
            .unwrap();
        let log = RunLog::default();
        let mut tap = log.tap();
        log.open(&path).unwrap();
        tap.write_all(b"{\"type\":\"c\"}\n").unwrap();
        tap.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"type\":\"c\"}\n"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("log/tether.log.1"))
                .unwrap()
                .len(),
            ROTATE_AT
        );
        // Off: nothing.
        let log = RunLog::default();
        let mut tap = log.tap();
        tap.write_all(b"x\n").unwrap();
        log.off();
        tap.write_all(b"y\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"type\":\"c\"}\n"
        );
    }
}
