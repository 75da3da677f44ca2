//! The files whose change starts a run: the recipe and the local modules the last run loaded
//! (stdlib modules are embedded and not watched), the parent directories watched for them
//! (editors save by renaming a temporary file over the original, which would end a watch on
//! the file itself), and the content hashes that tell a real change from a touch.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::DebouncedEvent;

use crate::recipe::stdlib;

/// The files a change of which starts a run, and the directories watched for them.
pub struct Watched {
    /// The recipe, absolute.
    recipe: PathBuf,
    /// Absolute path -> the name runs and messages know it by.
    files: BTreeMap<PathBuf, String>,
    /// Content hash (`None`: missing) each file had when the last run started, or as that run
    /// loaded it.
    baseline: BTreeMap<PathBuf, Option<u64>>,
    /// Directories being watched.
    dirs: BTreeSet<PathBuf>,
}

impl Watched {
    pub fn new(recipe: &Path) -> Self {
        let abs = absolute(recipe);
        let mut files = BTreeMap::new();
        files.insert(abs.clone(), recipe.display().to_string());
        Watched {
            recipe: abs,
            files,
            baseline: BTreeMap::new(),
            dirs: BTreeSet::new(),
        }
    }

    /// Records what every watched file holds now (a run is about to load them).
    pub fn snapshot(&mut self) {
        self.baseline = self
            .files
            .keys()
            .map(|p| (p.clone(), disk_hash(p)))
            .collect();
    }

    /// Names of the files among `paths` whose content differs from the baseline.
    pub fn changed(&self, paths: &BTreeSet<PathBuf>) -> Vec<String> {
        self.files
            .iter()
            .filter(|(p, _)| paths.contains(*p))
            .filter(|(p, _)| self.baseline.get(*p).copied().flatten() != disk_hash(p))
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// After a run (`loaded`: whether the recipe compiled and evaluated; `sources`: what it
    /// loaded): watch exactly what it loaded (or, if the recipe did not load, also what
    /// earlier runs loaded), with the content it loaded as the baseline. Returns the files
    /// that were not watched before.
    pub fn after_run(&mut self, loaded: bool, sources: &[(String, String)]) -> BTreeSet<PathBuf> {
        let before: BTreeSet<PathBuf> = self.files.keys().cloned().collect();
        let local: Vec<(PathBuf, &String, &String)> = sources
            .iter()
            .filter(|(name, text)| !is_embedded(name, text))
            .map(|(name, text)| (absolute(Path::new(name)), name, text))
            .collect();
        if loaded {
            let recipe = self.recipe.clone();
            self.files.retain(|p, _| *p == recipe);
        }
        for (path, name, text) in local {
            self.baseline
                .insert(path.clone(), Some(content_hash(text.as_bytes())));
            self.files.insert(path, name.clone());
        }
        for p in self.files.keys() {
            if !self.baseline.contains_key(p) {
                self.baseline.insert(p.clone(), disk_hash(p));
            }
        }
        let files = &self.files;
        self.baseline.retain(|p, _| files.contains_key(p));
        files
            .keys()
            .filter(|p| !before.contains(*p))
            .cloned()
            .collect()
    }

    /// Watches the parent directory of every file, and no other; returns warnings.
    pub fn sync_dirs<W: notify::Watcher, C: notify_debouncer_full::FileIdCache>(
        &mut self,
        debouncer: &mut notify_debouncer_full::Debouncer<W, C>,
    ) -> Vec<String> {
        let wanted: BTreeSet<PathBuf> = self
            .files
            .keys()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        let mut warnings = Vec::new();
        for gone in self.dirs.difference(&wanted) {
            // A directory that disappeared is no longer watched anyway.
            let _ = debouncer.unwatch(gone);
        }
        let mut now = BTreeSet::new();
        for dir in wanted {
            if self.dirs.contains(&dir) {
                now.insert(dir);
                continue;
            }
            match debouncer.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    now.insert(dir);
                }
                Err(e) => warnings.push(format!("cannot watch {}: {e}", dir.display())),
            }
        }
        self.dirs = now;
        warnings
    }

    /// The watched files `events` may have changed: reads are ignored (our own loads and
    /// hash checks open the files), except a close after writing; a rescan (the kernel's
    /// queue overflowed) may concern every file.
    pub fn touched(&self, events: &[DebouncedEvent]) -> BTreeSet<PathBuf> {
        let mut touched = BTreeSet::new();
        for event in events {
            match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
                EventKind::Access(_) | EventKind::Other => continue,
                _ => {}
            }
            if event.need_rescan() {
                touched.extend(self.files.keys().cloned());
            }
            touched.extend(
                event
                    .paths
                    .iter()
                    .filter(|p| self.files.contains_key(*p))
                    .cloned(),
            );
        }
        touched
    }

    pub fn names(&self) -> Vec<&str> {
        self.files.values().map(String::as_str).collect()
    }
}

/// Whether source `name` is an embedded stdlib module (not a file to watch).
fn is_embedded(name: &str, text: &str) -> bool {
    name.strip_prefix("stdlib/")
        .and_then(|r| r.strip_suffix(".rhai"))
        .and_then(stdlib::get)
        .is_some_and(|embedded| embedded == text)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The hash of a file's content, `None` if it cannot be read (missing).
fn disk_hash(path: &Path) -> Option<u64> {
    // As the recipe is read: a device or a FIFO is never read (it would never end).
    crate::recipe::sources::read(path)
        .ok()
        .map(|t| content_hash(t.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    use notify::Event;
    use std::time::Instant;

    fn event(kind: EventKind, paths: &[&Path]) -> DebouncedEvent {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(p.to_path_buf());
        }
        DebouncedEvent::new(e, Instant::now())
    }

    #[test]
    fn reads_and_other_files_are_not_changes() {
        let w = Watched::new(Path::new("/r/deploy.rhai"));
        let recipe = Path::new("/r/deploy.rhai");
        let other = Path::new("/r/notes.txt");
        let ignored = [
            event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &[recipe],
            ),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &[recipe],
            ),
            event(EventKind::Modify(ModifyKind::Any), &[other]),
        ];
        assert!(w.touched(&ignored).is_empty());
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Create(CreateKind::File),
        ] {
            assert_eq!(
                w.touched(&[event(kind, &[recipe])]),
                BTreeSet::from([recipe.to_path_buf()])
            );
        }
        // A save by rename names the temporary file and the recipe.
        let tmp = Path::new("/r/.deploy.rhai.swp");
        let rename = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[tmp, recipe],
        );
        assert_eq!(w.touched(&[rename]).len(), 1);
    }

    #[test]
    fn embedded_modules_are_not_watched() {
        let deploy = stdlib::get("deploy").unwrap();
        assert!(is_embedded("stdlib/deploy.rhai", deploy));
        assert!(!is_embedded("stdlib/deploy.rhai", "fn mine() {}"));
        assert!(!is_embedded("lib/deploy.rhai", deploy));
    }
}
