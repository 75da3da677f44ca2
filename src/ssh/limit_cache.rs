//! Idle limits remembered across runs: what one run learned of a server's idle limit (read from
//! its sshd config by the first heartbeat, or seen when an idle session was closed by it) is
//! there for the next run from its first connection, so that no run loses an idle host before
//! it has learned what the server needs.
//!
//! One JSON file (`$XDG_CACHE_HOME/tether/idle-limits.json`, else
//! `~/.cache/tether/idle-limits.json`; see [`default_path`]), mode 0600, replaced atomically
//! (written to a temporary file beside it, then renamed). An entry is keyed by the host's
//! address, port and host key fingerprint (a new server behind the same name learns anew) and
//! carries the limit, where it came from and when it was learned; entries older than
//! [`MAX_AGE`] are dropped. A cache that cannot be read or parsed is ignored (the run learns as
//! if there were none) and one that cannot be written only loses what this run learned: both
//! are said under `-v`, never fatal.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Entries older than this are forgotten: a server's config changes, and a limit learned
/// from one idle death should be proven again now and then.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The file's name inside `tether/` of the user's cache directory.
const FILE: &str = "idle-limits.json";

/// The idle limits (ms) an entry may hold: sshd's are whole seconds, and one learned is
/// longer than the shortest heartbeat that kept a session. Anything else did not come from
/// tether (a hand-edited file) and is dropped, as an entry past its age is.
const PLAUSIBLE: std::ops::RangeInclusive<u64> = 1_000..=MAX_AGE.as_millis() as u64;

/// The cache file for this user: `$XDG_CACHE_HOME/tether/idle-limits.json` when that is set to
/// an absolute path (the XDG Base Directory rule), else `$HOME/.cache/tether/...`; `None`
/// without either (then nothing is remembered).
pub fn default_path(xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match (xdg_cache_home, home) {
        (Some(x), _) if Path::new(x).is_absolute() => PathBuf::from(x),
        (_, Some(h)) if Path::new(h).is_absolute() => Path::new(h).join(".cache"),
        _ => return None,
    };
    Some(base.join("tether").join(FILE))
}

/// Which server an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// The address connected to (`HostName`, as resolved from the ssh config).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The host key's fingerprint (`SHA256:...`).
    pub host_key: String,
}

/// Where a limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `UnusedConnectionTimeout` in the serving sshd's config, read by the first heartbeat.
    SshdConfig,
    /// An idle session the server closed after this long (no config could be read).
    IdleDeath,
}

/// What the cache says about one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// The server's idle limit.
    pub limit: Duration,
    /// Where it came from.
    pub source: Source,
    /// How long ago it was learned.
    pub age: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    key: Key,
    idle_limit_ms: u64,
    source: Source,
    /// Seconds since the Unix epoch.
    learned_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
}

const VERSION: u32 = 1;

/// The cache of one run: loaded once, written through on every change (merged with what other
/// runs wrote meanwhile). Shared by every session owner of the run, whose heartbeats learn:
/// none of them waits for another's file I/O. Its state lock is held for memory only; one
/// owner at a time writes the file, and a change made while it writes is written by it too
/// (it writes again until nothing is left), else by the next change or when the cache is
/// dropped.
#[derive(Debug)]
pub struct LimitCache {
    path: PathBuf,
    state: Mutex<State>,
    /// Held by the one owner writing the file.
    writing: Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    /// What this run changed, per key: the entry now (`None`: forgotten).
    changed: Vec<(Key, Option<Entry>)>,
    /// Changed since the last write began.
    dirty: bool,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the entries at `path`, without the expired ones: an absent file is empty; a file
/// that cannot be read or parsed is an error, in words for `-v`.
fn read(path: &Path, now: u64) -> Result<Vec<Entry>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let file: File = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a tether idle-limit cache ({e})", path.display()))?;
    if file.version != VERSION {
        return Err(format!(
            "{} has version {}, this tether reads version {VERSION}",
            path.display(),
            file.version
        ));
    }
    let max_age = MAX_AGE.as_secs();
    Ok(file
        .entries
        .into_iter()
        .filter(|e| now.saturating_sub(e.learned_at) <= max_age && e.learned_at <= now + 60)
        .filter(|e| PLAUSIBLE.contains(&e.idle_limit_ms))
        .collect())
}

impl LimitCache {
    /// The cache at `path` and, when its file had to be ignored, why (for `-v`).
    pub fn load(path: PathBuf) -> (LimitCache, Option<String>) {
        let (entries, note) = match read(&path, now_secs()) {
            Ok(entries) => (entries, None),
            Err(why) => (Vec::new(), Some(format!("idle-limit cache ignored: {why}"))),
        };
        let cache = LimitCache {
            path,
            state: Mutex::new(State {
                entries,
                ..State::default()
            }),
            writing: Mutex::new(()),
        };
        (cache, note)
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data: a panic elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is remembered about `key`.
    pub fn get(&self, key: &Key) -> Option<Remembered> {
        let now = now_secs();
        self.state()
            .entries
            .iter()
            .find(|e| &e.key == key)
            .map(|e| Remembered {
                limit: Duration::from_millis(e.idle_limit_ms),
                source: e.source,
                age: Duration::from_secs(now.saturating_sub(e.learned_at)),
            })
    }

    /// Remembers `limit` from `source` for `key` (replacing what was there); an error (in
    /// words) when the file could not be written: the entry is then remembered for this run
    /// only.
    pub fn remember(&self, key: &Key, limit: Duration, source: Source) -> Result<(), String> {
        let entry = Entry {
            key: key.clone(),
            idle_limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            source,
            learned_at: now_secs(),
        };
        {
            let mut st = self.state();
            st.entries.retain(|e| &e.key != key);
            st.entries.push(entry.clone());
            change(&mut st, key, Some(entry));
        }
        self.flush()
    }

    /// Forgets a limit for `key` that came from `source` (the config read now sets none).
    pub fn forget(&self, key: &Key, source: Source) -> Result<(), String> {
        {
            let mut st = self.state();
            let before = st.entries.len();
            st.entries
                .retain(|e| !(&e.key == key && e.source == source));
            if st.entries.len() == before {
                return Ok(());
            }
            change(&mut st, key, None);
        }
        self.flush()
    }

    /// Writes this run's changes into the file (as other runs left it; a file that cannot be
    /// read is replaced) unless another owner is writing, which then writes them too.
    fn flush(&self) -> Result<(), String> {
        loop {
            {
                let Ok(_writing) = self.writing.try_lock() else {
                    return Ok(());
                };
                let changed = {
                    let mut st = self.state();
                    if !st.dirty {
                        return Ok(());
                    }
                    st.dirty = false;
                    st.changed.clone()
                };
                let mut entries = read(&self.path, now_secs()).unwrap_or_default();
                for (key, now) in changed {
                    entries.retain(|e| e.key != key);
                    entries.extend(now);
                }
                write(&self.path, &entries)?;
            }
            // Released first: a change made while the file was written is seen here, or its
            // owner takes the lock itself.
            if !self.state().dirty {
                return Ok(());
            }
        }
    }
}

fn change(st: &mut State, key: &Key, now: Option<Entry>) {
    st.changed.retain(|(k, _)| k != key);
    st.changed.push((key.clone(), now));
    st.dirty = true;
}

impl Drop for LimitCache {
    /// Writes what is left (a change made while another owner's write was ending); an error
    /// only loses it, as the owners were told when their writes failed.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Writes `entries` to `path`: the directory made (0700) if missing, a temporary file (0600)
/// beside it written and renamed over it, so that a reader sees the old file or the new one.
fn write(path: &Path, entries: &[Entry]) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("create the directory of", e))?;
    let text = serde_json::to_string_pretty(&File {
        version: VERSION,
        entries: entries.to_vec(),
    })
    .map_err(|e| format!("cannot encode {}: {e}", path.display()))?;
    let temporary = dir.join(format!(".{FILE}.{}", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(fail("write", e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn key(port: u16) -> Key {
        Key {
            host: "127.0.0.1".into(),
            port,
            host_key: "SHA256:abc".into(),
        }
    }

    #[test]
    fn default_path_follows_xdg_then_home() {
        let p = |x, h| default_path(x, h).map(|p| p.display().to_string());
        assert_eq!(
            p(Some("/c"), Some("/h")).as_deref(),
            Some("/c/tether/idle-limits.json")
        );
        // A relative XDG_CACHE_HOME is invalid by the spec: ignored.
        assert_eq!(
            p(Some("rel"), Some("/h")).as_deref(),
            Some("/h/.cache/tether/idle-limits.json")
        );
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn remembers_across_loads_with_mode_0600_and_forgets_by_source() {
        let dir = std::env::temp_dir().join(format!("tether-limit-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("tether").join(FILE);
        let (cache, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        cache
            .remember(&key(1), Duration::from_secs(3), Source::SshdConfig)
            .unwrap();
        cache
            .remember(&key(2), Duration::from_millis(4500), Source::IdleDeath)
            .unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        let got = again.get(&key(2)).unwrap();
        assert_eq!(got.limit, Duration::from_millis(4500));
        assert_eq!(got.source, Source::IdleDeath);
        assert!(got.age < Duration::from_secs(60));
        // Forgetting what the config said leaves what an idle death taught.
        again.forget(&key(2), Source::SshdConfig).unwrap();
        again.forget(&key(1), Source::SshdConfig).unwrap();
        let (third, _) = LimitCache::load(path.clone());
        assert_eq!(third.get(&key(1)), None);
        assert!(third.get(&key(2)).is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn owners_remembering_at_once_all_reach_the_file() {
        let dir =
            std::env::temp_dir().join(format!("tether-limit-cache-many-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join(FILE);
        let (cache, _) = LimitCache::load(path.clone());
        std::thread::scope(|scope| {
            for port in 0..40 {
                let cache = &cache;
                scope.spawn(move || {
                    cache
                        .remember(&key(port), Duration::from_secs(3), Source::SshdConfig)
                        .unwrap()
                });
            }
        });
        drop(cache);
        let (again, note) = LimitCache::load(path);
        assert_eq!(note, None);
        for port in 0..40 {
            assert!(again.get(&key(port)).is_some(), "port {port}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_ignored_and_replaced_and_old_entries_expire() {
        let dir =
            std::env::temp_dir().join(format!("tether-limit-cache-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE);
        fs::write(&path, "{not json").unwrap();
        let (cache, note) = LimitCache::load(path.clone());
        assert!(note.unwrap().contains("idle-limit cache ignored"));
        assert_eq!(cache.get(&key(1)), None);
        cache
            .remember(&key(1), Duration::from_secs(3), Source::SshdConfig)
            .unwrap();
        let (again, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        assert!(again.get(&key(1)).is_some());
        // An entry learned 31 days ago is gone.
        let old = now_secs() - MAX_AGE.as_secs() - 24 * 3600;
        let text = fs::read_to_string(&path).unwrap().replace(
            "\"learned_at\": ",
            &format!("\"learned_at\": {old}, \"x\": "),
        );
        fs::write(&path, text).unwrap();
        let (expired, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        assert_eq!(expired.get(&key(1)), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
