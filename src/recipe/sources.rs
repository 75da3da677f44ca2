//! The texts of the recipe and the modules a run loaded, for error messages (the source line
//! under a caret) and for watch mode (what to watch and hash).

use std::collections::HashMap;
use std::sync::Mutex;

/// The text of every source a run has loaded, by the name used in positions.
#[derive(Debug, Default)]
pub struct Sources {
    texts: Mutex<HashMap<String, String>>,
}

impl Sources {
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
        self.lock()
            .get(name)
            .and_then(|t| t.lines().nth(line.checked_sub(1)?).map(str::to_string))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Only whole-entry inserts happen under the lock, so a poisoned map is still whole.
        self.texts.lock().unwrap_or_else(|p| p.into_inner())
    }
}
