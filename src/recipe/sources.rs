//! The texts of the recipe and the modules a run loaded, for error messages (the source line
//! under a caret) and for watch mode (what to watch and hash).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Mutex;

/// The largest recipe, stage file or module tether reads (a recipe is a few KB; this only
/// stops a file that never ends).
pub const MAX_SOURCE: u64 = 16 * 1024 * 1024;

/// Reads a recipe, stage file or module: a regular file (after symlinks) of at most
/// [`MAX_SOURCE`] bytes, as UTF-8. A device (`/dev/zero`), a FIFO or a directory is refused
/// before anything is read from it, so it can neither hang the load nor fill memory.
pub fn read(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt as _;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SOURCE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SOURCE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is larger than {} MiB", MAX_SOURCE / (1024 * 1024)),
        ));
    }
    Ok(text)
}

/// The text of every source a run has loaded, by the name used in positions.
#[derive(Debug, Default)]
pub struct Sources {
    texts: Mutex<HashMap<String, String>>,
    /// The source each script function (closures included: `anon$...`) was defined in, by
    /// its name: the recipe's and a stage file's functions join one library, where Rhai no
    /// longer knows which file a function came from.
    functions: Mutex<HashMap<String, String>>,
}

impl Sources {
    /// Records that the functions `names` were defined in `source` (a later definition of the
    /// same name replaces the earlier one, as merging the library does).
    pub fn record_functions<'a>(&self, source: &str, names: impl IntoIterator<Item = &'a str>) {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            functions.insert(name.to_string(), source.to_string());
        }
    }

    /// [`record_functions`](Self::record_functions) for a module: a name the recipe or a stage
    /// file defines keeps their source (the library takes their definition).
    pub fn record_module_functions<'a>(
        &self,
        source: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) {
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            functions
                .entry(name.to_string())
                .or_insert_with(|| source.to_string());
        }
    }

    /// The source the function `name` was defined in, if recorded.
    pub fn function_source(&self, name: &str) -> Option<String> {
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Records `text` under `name`.
    pub fn insert(&self, name: &str, text: &str) {
        self.lock().insert(name.to_string(), text.to_string());
    }

    /// Every source name loaded so far (for watch mode).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }

    /// The text loaded under `name` (watch mode hashes exactly what a run loaded).
    pub fn text(&self, name: &str) -> Option<String> {
        self.lock().get(name).cloned()
    }

    /// Line `line` (1-based) of the source `name`.
    pub fn line(&self, name: &str, line: usize) -> Option<String> {
        // `split`, not `lines`: the empty line after a final newline is where an error at the
        // end of the file is (stop 61 tester t102: `deploy.rhai:2:1: syntax error` of a
        // closure left open showed no line and no caret).
        self.lock().get(name).and_then(|t| {
            t.split('\n')
                .nth(line.checked_sub(1)?)
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Only whole-entry inserts happen under the lock, so a poisoned map is still whole.
        self.texts.lock().unwrap_or_else(|p| p.into_inner())
    }
}
