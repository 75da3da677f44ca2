//! Idle limits remembered across runs: what one run learned of a server's idle limit (read from
//! its sshd config by the first heartbeat, or confirmed by idle sessions it closed) is there for
//! the next run from its first connection, so that no run loses an idle host before it has
//! learned what the server needs.
//!
//! An idle session closed in order where the config could not be read is one *sighting*, not a
//! limit: sshd killed outright (`kill -9`, an OOM kill) closes the socket exactly as its
//! `UnusedConnectionTimeout` does, so one death cannot tell them apart, and a limit believed
//! from a kill would beat `true` every few seconds on that host for a month. A sighting sets
//! no interval; a second idle death of the same server at about the same idle time (see
//! [`about_the_same`]), in the same run or a later one, confirms it: an idle limit repeats
//! itself within the second sshd's whole-second clock allows, a kill seldom comes again in
//! that second of idleness. (In
//! practice the second comes in a later run: after the first, the run's heartbeat comes
//! sooner than that.) Only then is the limit remembered.
//!
//! One JSON file (`$XDG_CACHE_HOME/tether/idle-limits.json`, else
//! `~/.cache/tether/idle-limits.json`; see [`default_path`]), mode 0600, replaced atomically
//! (written to a temporary file beside it, then renamed). An entry is keyed by the host's
//! address, port, host key fingerprint (a new server behind the same name learns anew) and
//! the login (`Match User` sets limits per user) and
//! carries the limit, where it came from and when it was learned; a sighting (kept apart, in
//! `sightings`) the idle time and when it was seen; both are dropped once older than
//! [`MAX_AGE`]. A file of version 1 (before sightings) is read with its `idle_death` entries
//! as sightings: that tether remembered them after one death. A cache that cannot be read or
//! parsed is ignored (the run learns as if there were none) and one that cannot be written
//! only loses what this run learned: both are said under `-v`, never fatal.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use file::{default_path, Key, Source, MAX_AGE};
use file::{now_secs, read, write, Entry, Sighting};

mod file;

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

/// What an idle death of a server whose limit could not be read comes to (see
/// [`LimitCache::idle_death`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    /// The first at this idle time: a sighting, which sets no interval in a later run.
    Seen,
    /// The second at about the same idle time: the server's idle limit (the shorter of the
    /// two), remembered.
    Confirmed,
}

/// How much later than sshd's second an idle death may be noticed: a worker woken late on a
/// busy machine, a slow network (the idle time is measured from tether's last round trip).
const NOTICED_WITHIN: Duration = Duration::from_millis(750);

/// Whether two idle deaths of one server came at about the same idle time, so that they are
/// one limit: both within the window one whole-second limit ends sessions in. sshd keeps its
/// idle limits in whole seconds (serverloop.c: `now > unused_connection_expiry`, both
/// `monotime()` seconds, the expiry counted from the second the last channel closed in), so
/// `UnusedConnectionTimeout N` ends a session idle for more than N s and at most N + 1 s,
/// noticed up to [`NOTICED_WITHIN`] later: two deaths are one limit where one whole N >= 1
/// has both in (N, N + 1.75] s. Kills at other moments seldom are (stop 58 tester t92: two
/// `kill -9`s 4.0 s and 5.5 s into idleness were taken for one limit under a flat two
/// seconds; the CI of stop 57 had one limit's two deaths more than a second apart).
pub fn about_the_same(a: Duration, b: Duration) -> bool {
    let (short, long) = if a < b { (a, b) } else { (b, a) };
    // The least whole N whose window holds `long`; `short` is in it too if above N.
    let lowest = long.saturating_sub(Duration::from_secs(1) + NOTICED_WITHIN);
    let n = (lowest.as_secs() + u64::from(lowest.subsec_nanos() > 0)).max(1);
    Duration::from_secs(n) < short
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

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
    sightings: Vec<Sighting>,
    /// The keys whose entry or sighting this run changed: what `entries` and `sightings` hold
    /// for them replaces what the file holds.
    changed: Vec<Key>,
    /// Changed since the last write began.
    dirty: bool,
}

impl LimitCache {
    /// The cache at `path` and, when its file had to be ignored, why (for `-v`).
    pub fn load(path: PathBuf) -> (LimitCache, Option<String>) {
        let ((entries, sightings), note) = match read(&path, now_secs()) {
            Ok((entries, sightings, 0)) => ((entries, sightings), None),
            Ok((entries, sightings, left_out)) => (
                (entries, sightings),
                Some(format!(
                    "idle-limit cache: {left_out} of the entries and sightings in {} left out \
                     (not as tether writes them: a field missing or of another kind, a limit \
                     that is no whole number of milliseconds or out of range, a date ahead of \
                     this clock, an unknown source, a second entry for one server)",
                    path.display()
                )),
            ),
            Err(why) => (
                Default::default(),
                Some(format!("idle-limit cache ignored: {why}")),
            ),
        };
        let cache = LimitCache {
            path,
            state: Mutex::new(State {
                entries,
                sightings,
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

    /// What is remembered about `key` (a sighting is not: see the module docs).
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
        {
            let mut st = self.state();
            put(&mut st, key, limit, source);
            change(&mut st, key);
        }
        self.flush()
    }

    /// An idle session of `key`'s server, whose limit could not be read, was closed in order
    /// after `idle`: a sighting, or, where one at about the same idle time was there, the
    /// confirmed limit (see the module docs). What the file holds as a limit stays until
    /// then: one death does not replace it. The error (in words) when the file could not be
    /// written: it is then known to this run only.
    pub fn idle_death(&self, key: &Key, idle: Duration) -> (Death, Result<(), String>) {
        let death = {
            let mut st = self.state();
            let earlier = st
                .sightings
                .iter()
                .find(|s| &s.key == key)
                .map(|s| Duration::from_millis(s.idle_ms));
            st.sightings.retain(|s| &s.key != key);
            let death = match earlier.filter(|&e| about_the_same(e, idle)) {
                Some(earlier) => {
                    put(&mut st, key, earlier.min(idle), Source::IdleDeath);
                    Death::Confirmed
                }
                None => {
                    st.sightings.push(Sighting {
                        key: key.clone(),
                        idle_ms: millis(idle),
                        seen_at: now_secs(),
                    });
                    Death::Seen
                }
            };
            change(&mut st, key);
            death
        };
        (death, self.flush())
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
            change(&mut st, key);
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
                let (changed, ours, our_sightings) = {
                    let mut st = self.state();
                    if !st.dirty {
                        return Ok(());
                    }
                    st.dirty = false;
                    let changed = st.changed.clone();
                    let ours: Vec<Entry> = st
                        .entries
                        .iter()
                        .filter(|e| changed.contains(&e.key))
                        .cloned()
                        .collect();
                    let sightings: Vec<Sighting> = st
                        .sightings
                        .iter()
                        .filter(|s| changed.contains(&s.key))
                        .cloned()
                        .collect();
                    (changed, ours, sightings)
                };
                let (mut entries, mut sightings, _) =
                    read(&self.path, now_secs()).unwrap_or_default();
                entries.retain(|e| !changed.contains(&e.key));
                entries.extend(ours);
                sightings.retain(|s| !changed.contains(&s.key));
                sightings.extend(our_sightings);
                write(&self.path, &entries, &sightings)?;
            }
            // Released first: a change made while the file was written is seen here, or its
            // owner takes the lock itself.
            if !self.state().dirty {
                return Ok(());
            }
        }
    }
}

/// Puts `limit` from `source` in place of what `st` held for `key`.
fn put(st: &mut State, key: &Key, limit: Duration, source: Source) {
    st.entries.retain(|e| &e.key != key);
    st.entries.push(Entry {
        key: key.clone(),
        idle_limit_ms: millis(limit),
        source,
        learned_at: now_secs(),
    });
}

fn change(st: &mut State, key: &Key) {
    if !st.changed.contains(key) {
        st.changed.push(key.clone());
    }
    st.dirty = true;
}

impl Drop for LimitCache {
    /// Writes what is left (a change made while another owner's write was ending); an error
    /// only loses it, as the owners were told when their writes failed.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::file::{FILE, MAX_FILE_BYTES, MAX_KEPT, VERSION};
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;

    fn key(port: u16) -> Key {
        Key {
            host: "127.0.0.1".into(),
            port,
            host_key: "SHA256:abc".into(),
            user: "deploy".into(),
        }
    }

    /// Writes a file of this version holding `entries` and `sightings` (JSON objects) at
    /// `path`, loads it, and checks that its note says `left_out` of them were left out.
    fn load_leaving_out(
        path: &Path,
        entries: &[String],
        sightings: &[String],
        left_out: usize,
    ) -> (LimitCache, String) {
        fs::write(
            path,
            format!(
                r#"{{"version": {VERSION}, "entries": [{}], "sightings": [{}]}}"#,
                entries.join(", "),
                sightings.join(", ")
            ),
        )
        .unwrap();
        let (cache, note) = LimitCache::load(path.to_path_buf());
        let note = note.unwrap();
        assert!(
            note.contains(&format!(
                "{left_out} of the entries and sightings in {} left out",
                path.display()
            )),
            "{note}"
        );
        (cache, note)
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

    /// One idle death is a sighting, remembered but setting nothing (fresh-eyes finding: a
    /// `kill -9` of sshd was remembered as a 6 s limit for 30 days); a second at about the same
    /// idle time, in a later run, confirms the shorter of the two; one at another time is
    /// only the newest sighting.
    #[test]
    fn an_idle_death_is_remembered_as_a_limit_only_once_a_second_confirms_it() {
        // Not made yet, as a first run finds it.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let path = dir.join(FILE);
        let ms = Duration::from_millis;
        let (cache, _) = LimitCache::load(path.clone());
        let (death, written) = cache.idle_death(&key(1), ms(5978));
        assert_eq!((death, written), (Death::Seen, Ok(())));
        assert_eq!(cache.get(&key(1)), None);
        // At another idle time: the newest sighting, still nothing believed.
        assert_eq!(cache.idle_death(&key(1), ms(9100)).0, Death::Seen);
        let (next_run, _) = LimitCache::load(path.clone());
        assert_eq!(next_run.get(&key(1)), None);
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("\"idle_ms\": 9100"));
        // The same again (9.1 s, then 8.3 s: under a quarter apart), a run later.
        assert_eq!(next_run.idle_death(&key(1), ms(8300)).0, Death::Confirmed);
        let (third_run, _) = LimitCache::load(path.clone());
        let got = third_run.get(&key(1)).unwrap();
        assert_eq!((got.limit, got.source), (ms(8300), Source::IdleDeath));
        // One death elsewhere does not undo a confirmed limit.
        assert_eq!(third_run.idle_death(&key(1), ms(3000)).0, Death::Seen);
        assert_eq!(third_run.get(&key(1)).unwrap().limit, ms(8300));
    }

    #[test]
    fn deaths_at_about_the_same_idle_time_are_in_one_whole_seconds_window() {
        let ms = Duration::from_millis;
        // One `UnusedConnectionTimeout 3`: sshd's whole-second clock puts one death just past
        // 3 s, another just before 4 s, noticed late on a busy machine.
        assert!(about_the_same(ms(3010), ms(4250)));
        assert!(about_the_same(ms(3290), ms(3430)));
        assert!(about_the_same(ms(4700), ms(3050)));
        assert!(about_the_same(ms(5978), ms(5978)));
        assert!(about_the_same(ms(60_100), ms(61_300)));
        // `UnusedConnectionTimeout 1`.
        assert!(about_the_same(ms(1100), ms(1900)));
        // No one limit ends sessions at both (stop 58 tester t92: two kills).
        assert!(!about_the_same(ms(4000), ms(5500)));
        assert!(!about_the_same(ms(3000), ms(4900)));
        assert!(!about_the_same(ms(60_000), ms(62_000)));
        assert!(!about_the_same(ms(900), ms(1500)));
    }

    /// Entries a hand edit made unusable are left out and said (stop 58 tester t93: dropped
    /// without a word): the readable ones are kept, an expired one goes unsaid.
    #[test]
    fn entries_not_as_tether_writes_them_are_left_out_with_a_note() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE);
        let now = now_secs();
        let entry = |port: u16, ms: &str, source: &str, at: u64| {
            format!(
                r#"{{"host": "127.0.0.1", "port": {port}, "host_key": "SHA256:abc", "user": "deploy", "idle_limit_ms": {ms}, "source": "{source}", "learned_at": {at}}}"#
            )
        };
        let old = now - MAX_AGE.as_secs() - 3600;
        let entries = [
            entry(1, "3000", "sshd_config", now),
            entry(2, "1500.5", "sshd_config", now),
            entry(3, "3000", "sshd_config", now + 7 * 24 * 3600),
            entry(4, "3000", "the_admin", now),
            entry(5, "0", "sshd_config", now),
            entry(6, "3000", "sshd_config", old),
        ];
        let sighting = format!(
            r#"{{"host": "127.0.0.1", "port": 7, "host_key": "SHA256:abc", "user": "deploy", "idle_ms": -1, "seen_at": {now}}}"#
        );
        let (cache, _) = load_leaving_out(&path, &entries, &[sighting], 5);
        assert!(cache.get(&key(1)).is_some());
        for port in 2..=6 {
            assert_eq!(cache.get(&key(port)), None, "{port}");
        }
        // Rewritten as tether writes it: nothing left out the next time.
        cache
            .remember(&key(8), Duration::from_secs(3), Source::SshdConfig)
            .unwrap();
        let (_, note) = LimitCache::load(path);
        assert_eq!(note, None);
    }

    /// Two entries for one server (a file tether did not write: it keeps one per server) are
    /// not both kept in silence (stop 59 tester t95): the newer is used, the older left out
    /// and counted in the note.
    #[test]
    fn a_second_entry_for_one_server_is_left_out_with_a_note() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE);
        let now = now_secs();
        let entry = |port: u16, ms: u64, at: u64| {
            format!(
                r#"{{"host": "127.0.0.1", "port": {port}, "host_key": "SHA256:abc", "user": "deploy", "idle_limit_ms": {ms}, "source": "sshd_config", "learned_at": {at}}}"#
            )
        };
        let entries = [
            entry(1, 3000, now - 100),
            entry(1, 5000, now - 10),
            entry(2, 4000, now),
            entry(1, 7000, now - 50),
        ];
        let (cache, note) = load_leaving_out(&path, &entries, &[], 2);
        assert!(note.contains("a second entry for one server"), "{note}");
        assert_eq!(cache.get(&key(1)).unwrap().limit, Duration::from_secs(5));
        assert_eq!(cache.get(&key(2)).unwrap().limit, Duration::from_secs(4));
    }

    /// Entries are per login: two logins on one server are kept apart (neither is a second
    /// entry), and one written before logins were kept matches none (`Match User` may set
    /// another limit for each).
    #[test]
    fn entries_are_kept_per_login_and_one_without_a_login_matches_none() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE);
        let now = now_secs();
        let entry = |user: Option<&str>, ms: u64| {
            let user = user.map_or(String::new(), |u| format!(r#""user": "{u}", "#));
            format!(
                r#"{{"host": "127.0.0.1", "port": 1, "host_key": "SHA256:abc", {user}"idle_limit_ms": {ms}, "source": "sshd_config", "learned_at": {now}}}"#
            )
        };
        fs::write(
            &path,
            format!(
                r#"{{"version": {VERSION}, "entries": [{}, {}, {}]}}"#,
                entry(Some("deploy"), 3000),
                entry(Some("root"), 9000),
                entry(None, 5000),
            ),
        )
        .unwrap();
        let (cache, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        assert_eq!(cache.get(&key(1)).unwrap().limit, Duration::from_secs(3));
        let root = Key {
            user: "root".into(),
            ..key(1)
        };
        assert_eq!(cache.get(&root).unwrap().limit, Duration::from_secs(9));
        let other = Key {
            user: "www".into(),
            ..key(1)
        };
        assert_eq!(cache.get(&other), None);
        // Written back, each login keeps its own.
        cache
            .remember(&other, Duration::from_secs(4), Source::SshdConfig)
            .unwrap();
        let (again, _) = LimitCache::load(path);
        assert_eq!(again.get(&root).unwrap().limit, Duration::from_secs(9));
        assert_eq!(again.get(&other).unwrap().limit, Duration::from_secs(4));
    }

    /// A list that is `null` is an empty one: the file's other entries are kept.
    #[test]
    fn a_null_list_is_empty_and_the_rest_of_the_file_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE);
        let now = now_secs();
        let entry = format!(
            r#"{{"host": "127.0.0.1", "port": 1, "host_key": "SHA256:abc", "user": "deploy", "idle_limit_ms": 3000, "source": "sshd_config", "learned_at": {now}}}"#
        );
        fs::write(
            &path,
            format!(r#"{{"version": {VERSION}, "entries": [{entry}], "sightings": null}}"#),
        )
        .unwrap();
        let (cache, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        assert_eq!(cache.get(&key(1)).unwrap().limit, Duration::from_secs(3));
        fs::write(
            &path,
            format!(r#"{{"version": {VERSION}, "entries": null, "sightings": []}}"#),
        )
        .unwrap();
        let (cache, note) = LimitCache::load(path);
        assert_eq!(note, None);
        assert_eq!(cache.get(&key(1)), None);
    }

    /// A version 1 file (before sightings) held an `idle_death` entry after one death: it is
    /// read as a sighting; what the config said stays a limit.
    #[test]
    fn a_version_1_file_s_idle_deaths_are_read_as_sightings() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join(FILE);
        let now = now_secs();
        let entry = |port: u16, ms: u64, source: &str| {
            format!(
                r#"{{"host": "127.0.0.1", "port": {port}, "host_key": "SHA256:abc", "user": "deploy", "idle_limit_ms": {ms}, "source": "{source}", "learned_at": {now}}}"#
            )
        };
        fs::write(
            &path,
            format!(
                r#"{{"version": 1, "entries": [{}, {}]}}"#,
                entry(1, 5978, "idle_death"),
                entry(2, 3000, "sshd_config")
            ),
        )
        .unwrap();
        let (cache, note) = LimitCache::load(path.clone());
        assert_eq!(note, None);
        assert_eq!(cache.get(&key(1)), None);
        assert_eq!(cache.get(&key(2)).unwrap().source, Source::SshdConfig);
        // An entry this tether cannot read is left out, not the file (stop 45 tester t57), and
        // said under -v.
        fs::write(
            &path,
            format!(
                r#"{{"version": 2, "entries": [{}, {}, {}]}}"#,
                entry(3, 3000, "from_the_future"),
                entry(2, 3000, "sshd_config"),
                entry(4, 3000, "sshd_config").replace("3000", "-5")
            ),
        )
        .unwrap();
        let (partial, note) = LimitCache::load(path.clone());
        assert!(note.unwrap().contains("2 of the entries and sightings"));
        assert_eq!(partial.get(&key(3)), None);
        assert_eq!(partial.get(&key(4)), None);
        assert_eq!(partial.get(&key(2)).unwrap().source, Source::SshdConfig);
        assert_eq!(
            cache.idle_death(&key(1), Duration::from_millis(6100)).0,
            Death::Confirmed
        );
        assert_eq!(
            cache.get(&key(1)).unwrap().limit,
            Duration::from_millis(5978)
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
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

    /// Bounded both ways (stop 58 tester t92: 200,000 entries read whole, 580 MB, and written
    /// back whole): a file keeps the newest MAX_KEPT entries, and one larger than tether
    /// writes is not read.
    #[test]
    fn the_file_keeps_the_newest_entries_and_a_huge_one_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE);
        let now = now_secs();
        let entry = |i: usize| Entry {
            key: key(0),
            idle_limit_ms: 3000,
            source: Source::SshdConfig,
            learned_at: now - i as u64,
        };
        let entries: Vec<Entry> = (0..MAX_KEPT + 50)
            .map(|i| Entry {
                key: Key {
                    host: format!("10.0.{}.{}", i / 250, i % 250),
                    ..key(22)
                },
                ..entry(i)
            })
            .collect();
        write(&path, &entries, &[]).unwrap();
        let (kept, _, _) = read(&path, now).unwrap();
        assert_eq!(kept.len(), MAX_KEPT);
        assert!(kept.iter().all(|e| e.learned_at > now - MAX_KEPT as u64));
        assert!(fs::metadata(&path).unwrap().len() < MAX_FILE_BYTES);

        let huge = format!(
            r#"{{"version": 2, "entries": [], "pad": "{}"}}"#,
            "x".repeat(MAX_FILE_BYTES as usize)
        );
        fs::write(&path, huge).unwrap();
        let (cache, note) = LimitCache::load(path.clone());
        assert!(note.unwrap().contains("more than tether writes"));
        assert_eq!(cache.get(&key(0)), None);

        // Nor anything that is no regular file (stop 58 tester t93: a FIFO blocked the run,
        // /dev/zero filled its memory).
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let (_, note) = LimitCache::load(path.clone());
        assert!(note.unwrap().contains("is not a regular file"));
        fs::remove_file(&path).unwrap();
        let fifo = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let (_, note) = LimitCache::load(path.clone());
        assert!(note.unwrap().contains("is not a regular file"));
    }
}
