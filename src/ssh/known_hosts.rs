//! known_hosts files, read line by line so that one malformed line is skipped with a warning
//! instead of hiding every entry after it (libssh2's own reader stops at the first bad line).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::config::pattern_list_match;
use crate::file_stamp::FileStamp;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    Patterns(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

impl Entry {
    /// Whether the line's hosts name `name` (a pattern list, or a hashed name: `|1|SALT|HASH`,
    /// HMAC-SHA1 of the name keyed by the salt, as ssh's `HashKnownHosts` writes it).
    fn matches(&self, name: &str) -> bool {
        match &self.hosts {
            Hosts::Patterns(p) => pattern_list_match(p, name),
            Hosts::Hashed { salt, hash } => {
                // HMAC accepts keys of any length, so new_from_slice cannot fail here.
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// The recorded key of a host whose presented key differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    /// Key type as written in the file (`ssh-ed25519`).
    pub key_type: String,
    /// `SHA256:...` fingerprint.
    pub fingerprint: String,
    /// `file:line` of the entry.
    pub location: String,
}

/// What known_hosts holds for a host whose presented key it does not know (for the message);
/// displayed as the empty string when it holds nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtherEntries {
    /// `file:line` of the `@cert-authority` lines for the name: they could not be used, as
    /// the server presented a plain key.
    pub authorities: String,
    /// The host certificate types libssh2 negotiates.
    pub certificate_types: String,
}

impl std::fmt::Display for OtherEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.authorities.is_empty() {
            write!(
                f,
                "; a @cert-authority line names it ({}) but could not be used: the server \
                 presented a plain key, not a certificate (it has no host certificate, or none \
                 of a type tether can negotiate: {})",
                self.authorities, self.certificate_types
            )?;
        }
        Ok(())
    }
}

/// Outcome of checking a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// An entry records exactly this key.
    Match,
    /// No entry for this host and key type.
    NotFound,
    /// Entries for this host record other keys, of its type or another: as for ssh
    /// (hostfile.c `check_hostkeys_by_key_or_type`), a host that presents a key of a type not
    /// recorded while keys of other types are has changed, it is not new (stop 44 tester t53:
    /// accept-new recorded an RSA key offered by a host recorded with its ed25519 key).
    Mismatch(Vec<RecordedKey>),
    /// The key is listed as `@revoked`.
    Revoked(String),
}

/// All entries of a set of known_hosts files, plus warnings about lines that were skipped.
#[derive(Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    /// One message per skipped line, naming file and line.
    pub warnings: Vec<String>,
    /// The entries each name looked up matched (indices into `entries`): a hashed line costs
    /// an HMAC for every name it is matched against, and one connection looks its name up
    /// several times (the key types recorded, the authorities, the key check).
    matched: Mutex<HashMap<String, Arc<[usize]>>>,
}

/// known_hosts files read, by their paths: what was read, as of which versions of the files.
type Loaded = HashMap<Vec<PathBuf>, (Vec<Option<FileStamp>>, Arc<KnownHosts>)>;

/// OpenSSH's `SHA256:` fingerprint of a public key blob.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key)))
}

/// The key type named inside a public key blob (its first SSH string).
pub fn blob_key_type(key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    String::from_utf8(key.get(4..4 + len)?.to_vec()).ok()
}

/// The modulus size in bits of an `ssh-rsa` key blob (string type, mpint e, mpint n); `None`
/// for other keys.
pub fn rsa_bits(key: &[u8]) -> Option<u32> {
    fn field(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        Some((b.get(4..4 + len)?, b.get(4 + len..)?))
    }
    let (kind, rest) = field(key)?;
    if kind != b"ssh-rsa" {
        return None;
    }
    let (_e, rest) = field(rest)?;
    let (n, _) = field(rest)?;
    let n: &[u8] = &n[n.iter().take_while(|b| **b == 0).count()..];
    let first = *n.first()?;
    Some((n.len() as u32 - 1) * 8 + (8 - first.leading_zeros()))
}

/// Host key algorithm names to prefer during key exchange for a recorded key type (a
/// certificate type too: a reconnect asks for the kind of key the first connection saw).
pub fn algorithms_for(key_type: &str) -> &'static [&'static str] {
    match key_type {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        "ssh-dss" => &["ssh-dss"],
        "ssh-ed25519-cert-v01@openssh.com" => &["ssh-ed25519-cert-v01@openssh.com"],
        "ssh-rsa-cert-v01@openssh.com" => &[
            "rsa-sha2-512-cert-v01@openssh.com",
            "rsa-sha2-256-cert-v01@openssh.com",
            "ssh-rsa-cert-v01@openssh.com",
        ],
        "ecdsa-sha2-nistp256-cert-v01@openssh.com" => &["ecdsa-sha2-nistp256-cert-v01@openssh.com"],
        "ecdsa-sha2-nistp384-cert-v01@openssh.com" => &["ecdsa-sha2-nistp384-cert-v01@openssh.com"],
        "ecdsa-sha2-nistp521-cert-v01@openssh.com" => &["ecdsa-sha2-nistp521-cert-v01@openssh.com"],
        _ => &[],
    }
}

/// A `@cert-authority` line that applies to a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The CA's public key blob.
    pub key: Vec<u8>,
    /// `file:line` of the line.
    pub location: String,
}

impl KnownHosts {
    /// [`KnownHosts::load`], read once per process for each version of the files (see
    /// [`FileStamp`]; a file tether appends a key to is read again): a run that connects to
    /// many hosts parses their known_hosts once, not once per host (2,100 lines took 1.8 ms
    /// of CPU per connection).
    pub fn load_shared(files: &[PathBuf]) -> Arc<KnownHosts> {
        static CACHE: OnceLock<Mutex<Loaded>> = OnceLock::new();
        let stamps: Vec<Option<FileStamp>> = files.iter().map(|f| FileStamp::of(f)).collect();
        let cache = CACHE.get_or_init(Default::default);
        // A poisoned lock only means another thread panicked while holding it; the map is
        // whole.
        let found = cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(files)
            .filter(|(seen, _)| *seen == stamps)
            .map(|(_, known)| known.clone());
        found.unwrap_or_else(|| {
            // Read outside the lock (other hosts' connections go on meanwhile); a file
            // changed between its stamp and its reading is read again next time.
            let known = Arc::new(KnownHosts::load(files));
            cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(files.to_vec(), (stamps, known.clone()));
            known
        })
    }

    /// Reads every file that exists; unreadable or missing files are skipped.
    pub fn load(files: &[PathBuf]) -> Self {
        let mut known = KnownHosts::default();
        for path in files {
            if let Ok(text) = std::fs::read_to_string(path) {
                known.add_text(&text, path);
            }
        }
        known
    }

    fn add_text(&mut self, text: &str, path: &Path) {
        // What names matched is known of the entries before these.
        self.matched
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok((marker, hosts, key_type, key)) => self.entries.push(Entry {
                    path: path.to_path_buf(),
                    line: index + 1,
                    marker,
                    hosts,
                    key_type,
                    key,
                }),
                Err(why) => self.warnings.push(format!(
                    "{}:{}: skipping malformed known_hosts line: {why}",
                    path.display(),
                    index + 1
                )),
            }
        }
    }

    /// Entries for `name` as known_hosts writes it (`host`, `[host]:port`, a HostKeyAlias).
    fn for_host<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Entry> {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // whole. Matched outside the lock: two threads may both match a name, alike.
        let known = self
            .matched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let indices = known.unwrap_or_else(|| {
            let found: Arc<[usize]> = (0..self.entries.len())
                .filter(|&i| self.entries[i].matches(name))
                .collect();
            self.matched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), found.clone());
            found
        });
        (0..indices.len()).map(move |i| &self.entries[indices[i]])
    }

    /// Key types recorded for `name`, in file order, without duplicates.
    pub fn recorded_types(&self, name: &str) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for e in self.for_host(name) {
            if e.marker == Marker::None && !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }

    /// The `@cert-authority` lines whose host patterns match `name`, in file order.
    pub fn authorities(&self, name: &str) -> Vec<Authority> {
        self.for_host(name)
            .filter(|e| e.marker == Marker::CertAuthority)
            .map(|e| Authority {
                key: e.key.clone(),
                location: format!("{}:{}", e.path.display(), e.line),
            })
            .collect()
    }

    /// `file:line` of a `@revoked` line for `name` that lists `key`, if any.
    pub fn revoked(&self, name: &str, key: &[u8]) -> Option<String> {
        self.for_host(name)
            .find(|e| e.marker == Marker::Revoked && e.key == key)
            .map(|e| format!("{}:{}", e.path.display(), e.line))
    }

    /// Checks the key the server presented for `name`.
    pub fn check(&self, name: &str, key: &[u8]) -> HostKeyCheck {
        let mut recorded = Vec::new();
        let mut matched = false;
        for e in self.for_host(name) {
            match e.marker {
                Marker::Revoked if e.key == key => {
                    return HostKeyCheck::Revoked(format!("{}:{}", e.path.display(), e.line))
                }
                Marker::None if e.key == key => matched = true,
                Marker::None => recorded.push(RecordedKey {
                    key_type: e.key_type.clone(),
                    fingerprint: fingerprint(&e.key),
                    location: format!("{}:{}", e.path.display(), e.line),
                }),
                _ => {}
            }
        }
        if matched {
            HostKeyCheck::Match
        } else if recorded.is_empty() {
            HostKeyCheck::NotFound
        } else {
            HostKeyCheck::Mismatch(recorded)
        }
    }
}

/// Appends `name type key` to `path` (creating the file), as `StrictHostKeyChecking
/// accept-new` does; with `hashed` (`HashKnownHosts yes`) the name is written as
/// `|1|salt|hash`. The only directory made is `dot_ssh` (the user's `~/.ssh`, mode 0700), and
/// only when `path` is directly in it (hostfile.c `hostfile_create_user_ssh_dir`): a file in a
/// directory that does not exist is an error, as for ssh.
pub fn append(
    path: &Path,
    name: &str,
    key: &[u8],
    hashed: bool,
    dot_ssh: &Path,
) -> std::io::Result<()> {
    if path.parent() == Some(dot_ssh) && !dot_ssh.exists() {
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(dot_ssh)?;
    }
    let key_type = blob_key_type(key).unwrap_or_else(|| "ssh-ed25519".into());
    let host = if hashed {
        hash_name(name)?
    } else {
        name.to_string()
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{host} {key_type} {}", STANDARD.encode(key))
}

/// hostfile.c `host_hash`: `|1|` base64(salt) `|` base64(HMAC-SHA1(salt, name)), with a random
/// 20-byte salt.
fn hash_name(name: &str) -> std::io::Result<String> {
    let mut salt = [0u8; 20];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut salt)?;
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    mac.update(name.as_bytes());
    Ok(format!(
        "|1|{}|{}",
        STANDARD.encode(salt),
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

type Parsed = (Marker, Hosts, String, Vec<u8>);

fn parse_line(line: &str) -> Result<Parsed, String> {
    let mut words = line.split_whitespace();
    let mut first = words.next().ok_or("empty line")?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return Err(format!("unknown marker `{m}`")),
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = words.next().ok_or("no host names after the marker")?;
    }
    let hosts = if let Some(hashed) = first.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|').ok_or("bad hashed host name")?;
        Hosts::Hashed {
            salt: STANDARD
                .decode(salt)
                .map_err(|_| "bad salt in hashed host")?,
            hash: STANDARD
                .decode(hash)
                .map_err(|_| "bad hash in hashed host")?,
        }
    } else {
        Hosts::Patterns(first.split(',').map(str::to_string).collect())
    };
    let key_type = words.next().ok_or("no key type")?.to_string();
    let b64 = words.next().ok_or("no key")?;
    let key = STANDARD
        .decode(b64)
        .map_err(|_| "key is not valid base64".to_string())?;
    if blob_key_type(&key).as_deref() != Some(key_type.as_str()) {
        return Err(format!("key data does not match key type `{key_type}`"));
    }
    Ok((marker, hosts, key_type, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (kind.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(body);
        v
    }

    fn line(host: &str, key: &[u8]) -> String {
        format!(
            "{host} {} {}\n",
            blob_key_type(key).unwrap(),
            STANDARD.encode(key)
        )
    }

    #[test]
    fn files_are_read_again_once_changed_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let (k1, k2) = (blob("ssh-ed25519", b"k1"), blob("ssh-ed25519", b"k2"));
        std::fs::write(&a, line("web1", &k1)).unwrap();
        let files = vec![a.clone(), b.clone()];
        let first = KnownHosts::load_shared(&files);
        assert_eq!(first.check("web1", &k1), HostKeyCheck::Match);
        assert!(Arc::ptr_eq(&first, &KnownHosts::load_shared(&files)));
        // Another list of files is another reading.
        let only_a = KnownHosts::load_shared(&files[..1]);
        assert!(!Arc::ptr_eq(&first, &only_a));
        // Appended to (as tether appends a key it accepted).
        append(&a, "web2", &k2, false, dir.path()).unwrap();
        let appended = KnownHosts::load_shared(&files);
        assert!(!Arc::ptr_eq(&first, &appended));
        assert_eq!(appended.check("web2", &k2), HostKeyCheck::Match);
        // A file that was missing appears.
        std::fs::write(&b, line("web3", &k1)).unwrap();
        let created = KnownHosts::load_shared(&files);
        assert_eq!(created.check("web3", &k1), HostKeyCheck::Match);
        // Replaced by another file of the same size and time (a new inode).
        let c = dir.path().join("c");
        std::fs::write(&c, line("web4", &k1)).unwrap();
        let times = std::fs::metadata(&b).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&c)
            .unwrap()
            .set_modified(times)
            .unwrap();
        std::fs::rename(&c, &b).unwrap();
        let replaced = KnownHosts::load_shared(&files);
        assert_eq!(replaced.check("web4", &k1), HostKeyCheck::Match);
        assert_eq!(replaced.check("web3", &k1), HostKeyCheck::NotFound);
        // Gone: its entries with it.
        std::fs::remove_file(&b).unwrap();
        assert_eq!(
            KnownHosts::load_shared(&files).check("web4", &k1),
            HostKeyCheck::NotFound
        );
    }

    #[test]
    fn garbage_line_does_not_hide_later_entries() {
        let key = blob("ssh-ed25519", b"k1");
        let text = format!("garbage here\n{}", line("[127.0.0.1]:2222", &key));
        let mut kh = KnownHosts::default();
        kh.add_text(&text, Path::new("kh"));
        assert_eq!(kh.warnings.len(), 1);
        assert!(kh.warnings[0].starts_with("kh:1:"), "{:?}", kh.warnings);
        assert_eq!(kh.check("[127.0.0.1]:2222", &key), HostKeyCheck::Match);
        assert_eq!(kh.check("127.0.0.1", &key), HostKeyCheck::NotFound);
    }

    #[test]
    fn changed_key_names_the_recorded_fingerprint() {
        let old = blob("ssh-ed25519", b"old");
        let new = blob("ssh-ed25519", b"new");
        let mut kh = KnownHosts::default();
        kh.add_text(&line("web,10.0.0.1", &old), Path::new("kh"));
        match kh.check("web", &new) {
            HostKeyCheck::Mismatch(r) => {
                assert_eq!(r[0].fingerprint, fingerprint(&old));
                assert_eq!(r[0].location, "kh:1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hashed_hosts_match() {
        let key = blob("ssh-ed25519", b"k");
        let salt = b"0123456789abcdef0123";
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[h]:2200");
        let hash = mac.finalize().into_bytes();
        let host = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash));
        let mut kh = KnownHosts::default();
        kh.add_text(&line(&host, &key), Path::new("kh"));
        assert_eq!(kh.check("[h]:2200", &key), HostKeyCheck::Match);
        assert_eq!(kh.recorded_types("[h]:2200"), vec!["ssh-ed25519"]);
    }

    #[test]
    fn hashed_names_are_recorded_and_found_again() {
        let dir = std::env::temp_dir().join(format!("tether-kh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // As ~/.ssh: made (0700) for the file in it.
        let dot_ssh = dir.join("sub");
        let path = dot_ssh.join("known_hosts");
        let key = blob("ssh-ed25519", b"k");
        append(&path, "[10.0.0.1]:2200", &key, true, &dot_ssh).unwrap();
        append(&path, "alias", &key, false, &dot_ssh).unwrap();
        // No other directory is made.
        assert!(append(&dir.join("other/kh"), "alias", &key, false, &dot_ssh).is_err());
        assert!(!dir.join("other").exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("|1|"), "{text}");
        assert!(!text.contains("10.0.0.1"), "{text}");
        let kh = KnownHosts::load(&[path]);
        assert_eq!(kh.check("[10.0.0.1]:2200", &key), HostKeyCheck::Match);
        assert_eq!(kh.check("alias", &key), HostKeyCheck::Match);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rsa_modulus_size() {
        let mut body = Vec::new();
        for field in [&[1u8, 0, 1][..], &[0u8, 0x80, 0, 0][..]] {
            body.extend_from_slice(&(field.len() as u32).to_be_bytes());
            body.extend_from_slice(field);
        }
        assert_eq!(rsa_bits(&blob("ssh-rsa", &body)), Some(24));
        assert_eq!(rsa_bits(&blob("ssh-ed25519", b"k")), None);
    }

    #[test]
    fn authorities_and_revocations_apply_by_host_pattern() {
        let ca = blob("ssh-ed25519", b"ca");
        let other = blob("ssh-ed25519", b"other");
        let mut kh = KnownHosts::default();
        kh.add_text(
            &format!(
                "@cert-authority *.example.com {}@revoked web1.example.com {}",
                line("", &ca).trim_start(),
                line("", &other).trim_start()
            ),
            Path::new("kh"),
        );
        let found = kh.authorities("web1.example.com");
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].key.clone(), found[0].location.as_str()),
            (ca.clone(), "kh:1")
        );
        assert!(kh.authorities("example.org").is_empty());
        assert_eq!(
            kh.revoked("web1.example.com", &other).as_deref(),
            Some("kh:2")
        );
        assert_eq!(kh.revoked("web2.example.com", &other), None);
        // A CA line is no recorded key of the host.
        assert!(kh.recorded_types("web1.example.com").is_empty());
        assert_eq!(kh.check("web1.example.com", &ca), HostKeyCheck::NotFound);
    }

    #[test]
    fn revoked_key_is_reported() {
        let key = blob("ssh-ed25519", b"k");
        let mut kh = KnownHosts::default();
        kh.add_text(&format!("@revoked {}", line("*", &key)), Path::new("kh"));
        assert!(matches!(kh.check("any", &key), HostKeyCheck::Revoked(_)));
    }
}
