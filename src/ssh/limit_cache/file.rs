//! The cache's file: what it holds (entries and sightings, keyed by server and login), read
//! entry by entry with what a hand edit made unusable left out, and written whole, bounded,
//! and atomically.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Entries older than this are forgotten: a server's config changes, and a limit learned
/// from one idle death should be proven again now and then.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The file's name inside `tether/` of the user's cache directory.
pub const FILE: &str = "idle-limits.json";

/// The most entries, and the most sightings, a file keeps: the newest (stop 58 tester t92: a
/// file of 200,000 entries was read whole, 580 MB, and written back whole). Ten thousand
/// servers, each entry about 250 bytes as written.
pub const MAX_KEPT: usize = 10_000;

/// A larger file is not one tether wrote (at most [`MAX_KEPT`] entries and sightings, about
/// 5 MB): ignored, not read into memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

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

/// Which server, and which login on it, an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    /// The address connected to (`HostName`, as resolved from the ssh config).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The host key's fingerprint (`SHA256:...`).
    pub host_key: String,
    /// The login (`User`): sshd_config(5) `Match User` blocks set idle limits per user, and
    /// an unreadable config leaves only what this login's own sessions showed. Empty in an
    /// entry written before logins were kept (stop 61), which then matches no login.
    #[serde(default)]
    pub user: String,
}

/// Where a limit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `UnusedConnectionTimeout` in the serving sshd's config, read by the first heartbeat.
    SshdConfig,
    /// Idle sessions the server closed twice after about this long (no config could be read;
    /// the shorter of the two).
    IdleDeath,
}

/// A remembered limit, as the file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The server and login.
    #[serde(flatten)]
    pub key: Key,
    /// The idle limit, in milliseconds (within `PLAUSIBLE`).
    pub idle_limit_ms: u64,
    /// Where it came from.
    pub source: Source,
    /// Seconds since the Unix epoch.
    pub learned_at: u64,
}

/// One idle death of a server whose config could not be read, not yet confirmed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sighting {
    /// The server and login.
    #[serde(flatten)]
    pub key: Key,
    /// How long the session had been idle, in milliseconds.
    pub idle_ms: u64,
    /// Seconds since the Unix epoch.
    pub seen_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<Entry>,
    /// Absent from a file of version 1.
    #[serde(default)]
    sightings: Vec<Sighting>,
}

/// A file as read: its entries one by one (see [`read`]). A list that is `null` is empty, not
/// a reason to drop the whole file, every server's limits with it (stop 60 tester t96:
/// `"sightings": null`).
#[derive(Debug, Deserialize)]
struct RawFile {
    version: u32,
    #[serde(default, deserialize_with = "null_as_empty")]
    entries: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    sightings: Vec<serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<serde_json::Value>, D::Error> {
    Ok(Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default())
}

pub const VERSION: u32 = 2;

/// The version before sightings: its `idle_death` entries came from one death each.
const VERSION_1: u32 = 1;

/// Now, in seconds since the Unix epoch (0 before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the entries and sightings at `path`, without the expired ones (a version 1 file's
/// `idle_death` entries as sightings), and how many others it left out: ones this tether
/// cannot read (a fractional limit, a source it does not know), dated more than a minute
/// ahead, or with a limit out of [`PLAUSIBLE`] (a hand-edited file: stop 58 tester t93 saw
/// them dropped without a word). An absent file is empty; a file that cannot be read or
/// parsed is an error, in words for `-v`.
pub fn read(path: &Path, now: u64) -> Result<(Vec<Entry>, Vec<Sighting>, usize), String> {
    // Only a regular file is opened: a FIFO would block the run before it connects (and its
    // signals with it), a device such as /dev/zero never end (stop 58 tester t93: both, as a
    // symbolic link at the cache's path).
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(format!("{} is not a regular file", path.display()))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    // At most one byte past the bound is read, whatever the file's size.
    let mut text = String::new();
    let read = fs::File::open(path).and_then(|f| {
        std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_FILE_BYTES + 1), &mut text)
    });
    match read {
        Ok(n) if n as u64 > MAX_FILE_BYTES => {
            return Err(format!(
                "{} holds more than tether writes ({} MiB at most)",
                path.display(),
                MAX_FILE_BYTES >> 20
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let raw: RawFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a tether idle-limit cache ({e})", path.display()))?;
    // Entry by entry: one this tether cannot read (a source it does not know, a value out of
    // range) is left out, not the whole file with it (stop 45 tester t57: one entry with an
    // unknown `source` had every limit forgotten).
    let listed = raw.entries.len() + raw.sightings.len();
    let mut file = File {
        version: raw.version,
        entries: raw
            .entries
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        sightings: raw
            .sightings
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
    };
    match file.version {
        VERSION => {}
        VERSION_1 => {
            let (died, read): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut file.entries)
                .into_iter()
                .partition(|e| e.source == Source::IdleDeath);
            file.entries = read;
            file.sightings = died
                .into_iter()
                .map(|e| Sighting {
                    key: e.key,
                    idle_ms: e.idle_limit_ms,
                    seen_at: e.learned_at,
                })
                .collect();
        }
        other => {
            return Err(format!(
                "{} has version {other}, this tether reads version {VERSION}",
                path.display(),
            ))
        }
    }
    let parsed = file.entries.len() + file.sightings.len();
    // Kept where fresh and usable; an expired one goes unsaid, an unusable one is counted.
    let mut unusable = 0;
    let mut keep = |at: u64, ms: u64| {
        if now.saturating_sub(at) > MAX_AGE.as_secs() {
            return false;
        }
        let usable = at <= now + 60 && PLAUSIBLE.contains(&ms);
        unusable += usize::from(!usable);
        usable
    };
    let mut entries: Vec<Entry> = file
        .entries
        .into_iter()
        .filter(|e| keep(e.learned_at, e.idle_limit_ms))
        .collect();
    let sightings = file
        .sightings
        .into_iter()
        .filter(|s| keep(s.seen_at, s.idle_ms))
        .collect();
    // One per server, as tether writes them (`put`): of two, the newer is what a run would
    // have written last (stop 59 tester t95: both were kept, the first found used, unsaid).
    entries.sort_by_key(|e| std::cmp::Reverse(e.learned_at));
    let before = entries.len();
    let mut seen = std::collections::HashSet::new();
    entries.retain(|e| seen.insert(e.key.clone()));
    unusable += before - entries.len();
    Ok((entries, sightings, listed - parsed + unusable))
}

/// Writes the newest [`MAX_KEPT`] of `entries` and of `sightings` to `path`: the directory
/// made (0700) if missing, a temporary file (0600) beside it written and renamed over it, so
/// that a reader sees the old file or the new one.
pub fn write(path: &Path, entries: &[Entry], sightings: &[Sighting]) -> Result<(), String> {
    let mut entries = entries.to_vec();
    entries.sort_by_key(|e| std::cmp::Reverse(e.learned_at));
    entries.truncate(MAX_KEPT);
    let mut sightings = sightings.to_vec();
    sightings.sort_by_key(|s| std::cmp::Reverse(s.seen_at));
    sightings.truncate(MAX_KEPT);
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("create the directory of", e))?;
    let text = serde_json::to_string_pretty(&File {
        version: VERSION,
        entries,
        sightings,
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
}
