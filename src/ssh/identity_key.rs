//! Identity files tether signs with itself: an unencrypted OpenSSH-format ed25519 key (what
//! `ssh-keygen` makes by default) is read once per run and signs every host's login through
//! libssh2's callback API (`libssh2_userauth_publickey`). libssh2's own
//! `libssh2_userauth_publickey_fromfile` reads the file twice per login, each time first
//! through OpenSSL 3's PEM decoders (which fail on this format, slowly): about 1 ms of CPU
//! per host, half of tether's whole client cost of connecting (measured with `perf` while
//! connecting 200 sessions: `PEM_read_bio_PrivateKey_ex` 41 % of the samples). The file is
//! read as ssh reads it, no more leniently (see [`armoured_body`], [`SigningKey::parse`]);
//! any other key (encrypted, RSA, ECDSA, PEM format) or a file ssh would refuse is left to
//! libssh2 as before.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::{c_int, c_uchar, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libssh2_sys as raw;
use openssl::pkey::{Id, PKey, Private};
use ssh2::Session;

use super::wire::Reader;
use crate::file_stamp::FileStamp;

/// An ed25519 private key held in memory.
pub struct SigningKey {
    /// The public key blob (SSH wire format: `ssh-ed25519`, then the 32-byte key).
    blob: Vec<u8>,
    key: PKey<Private>,
}

/// The decoded body of the text of an OpenSSH-format private key file, read as ssh reads it
/// (sshkey.c `sshkey_parse_private2`): the begin marker and its newline first; then base64
/// up to a line that starts with the end marker and its newline, carriage returns and
/// newlines left out (what follows the end marker's line is not read). None where ssh
/// refuses the armour (no end marker, the begin marker not first, a CRLF after it) or its
/// base64 holds anything else (a space, which ssh would skip, too: libssh2 then reads it).
fn armoured_body(text: &[u8]) -> Option<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----\n";
    const END: &[u8] = b"-----END OPENSSH PRIVATE KEY-----\n";
    let mut rest = text.strip_prefix(BEGIN)?;
    let mut encoded = Vec::with_capacity(rest.len());
    loop {
        let (&c, tail) = rest.split_first()?;
        rest = tail;
        if c != b'\n' && c != b'\r' {
            encoded.push(c);
        } else if c == b'\n' && rest.starts_with(END) {
            break;
        }
    }
    STANDARD.decode(encoded).ok()
}

impl SigningKey {
    /// The key of `body` (see [`armoured_body`]) when it is one unencrypted ed25519 key that
    /// ssh itself would load (sshkey.c `sshkey_parse_private2`: nothing after the private
    /// section, which is whole blocks of 8 bytes ending in the padding bytes 1, 2, 3...;
    /// `private2_check_padding`) and whose parts agree (the header's public key, the private
    /// section's copy of it and the second half of its 64-byte private key; the two check
    /// numbers equal); None for anything else, which libssh2 then reads as before and reports
    /// on.
    fn parse(body: &[u8]) -> Option<SigningKey> {
        let mut r = Reader::new(body.strip_prefix(b"openssh-key-v1\0")?);
        let cipher = r.string("cipher").ok()?;
        let kdf = r.string("kdf").ok()?;
        r.string("kdf options").ok()?;
        if cipher != b"none" || kdf != b"none" || r.u32("keys").ok()? != 1 {
            return None;
        }
        let blob = r.string("public key").ok()?;
        let section = r.string("private section").ok()?;
        if !r.is_empty() || section.len() % 8 != 0 {
            return None;
        }
        let mut private = Reader::new(section);
        if private.u32("check").ok()? != private.u32("check").ok()? {
            return None;
        }
        if private.string("key type").ok()? != b"ssh-ed25519" {
            return None;
        }
        let public = private.string("public").ok()?;
        let secret = private.string("private").ok()?;
        private.string("comment").ok()?;
        let padding = private.rest();
        if !padding
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == (i + 1) & 0xff)
        {
            return None;
        }
        let mut header = Reader::new(blob);
        let header_ok = header.string("key type").ok()? == b"ssh-ed25519"
            && header.string("public").ok()? == public
            && header.is_empty();
        if !header_ok || public.len() != 32 || secret.len() != 64 || &secret[32..] != public {
            return None;
        }
        let key = PKey::private_key_from_raw_bytes(&secret[..32], Id::ED25519).ok()?;
        // The seed must give the public key the file says: a file whose halves disagree is
        // libssh2's to refuse, not ours to sign with.
        (key.raw_public_key().ok()? == public).then(|| SigningKey {
            blob: blob.to_vec(),
            key,
        })
    }

    /// The public key blob (SSH wire format).
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The ed25519 signature of `data` (64 bytes, as RFC 8709 puts in an `ssh-ed25519`
    /// signature blob).
    fn sign(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut signer = openssl::sign::Signer::new_without_digest(&self.key).ok()?;
        signer.sign_oneshot_to_vec(data).ok()
    }

    /// Logs in as `user` on `session` with this key, as `userauth_pubkey_file` would with
    /// its file: the same errors (a key refused is `LIBSSH2_ERROR_AUTHENTICATION_FAILED`,
    /// or `LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED` after the signature).
    pub fn userauth(&self, session: &Session, user: &str) -> Result<(), ssh2::Error> {
        let user = CString::new(user).map_err(|_| {
            ssh2::Error::new(
                ssh2::ErrorCode::Session(raw::LIBSSH2_ERROR_INVAL),
                "user name holds a NUL byte",
            )
        })?;
        let mut me = self as *const SigningKey as *mut c_void;
        let rc = {
            let mut guard = session.raw();
            let raw_session: *mut raw::LIBSSH2_SESSION = &mut *guard;
            // SAFETY: the session is alive and locked for the call; `blob` outlives it; the
            // callback has the signature LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC and reads `me`,
            // a pointer to `self`, only during this call.
            unsafe {
                libssh2_userauth_publickey(
                    raw_session,
                    user.as_ptr(),
                    self.blob.as_ptr(),
                    self.blob.len(),
                    Some(sign_callback),
                    &mut me,
                )
            }
        };
        match rc {
            0 => Ok(()),
            rc => Err(ssh2::Error::from_session_error(session, rc)),
        }
    }
}

type SignCallback = extern "C" fn(
    *mut raw::LIBSSH2_SESSION,
    *mut *mut c_uchar,
    *mut libc::size_t,
    *const c_uchar,
    libc::size_t,
    *mut *mut c_void,
) -> c_int;

extern "C" {
    // libssh2.h; public API since libssh2 1.2.x, in the library libssh2-sys links, which
    // does not declare it.
    fn libssh2_userauth_publickey(
        session: *mut raw::LIBSSH2_SESSION,
        username: *const std::os::raw::c_char,
        pubkeydata: *const c_uchar,
        pubkeydata_len: libc::size_t,
        sign_callback: Option<SignCallback>,
        abstract_: *mut *mut c_void,
    ) -> c_int;
}

/// libssh2's sign callback: `*abstract_` is the [`SigningKey`]; the signature goes in a
/// buffer from `malloc`, which libssh2 frees with the session's allocator (the default,
/// `free`: the ssh2 crate gives none of its own).
extern "C" fn sign_callback(
    _session: *mut raw::LIBSSH2_SESSION,
    sig: *mut *mut c_uchar,
    sig_len: *mut libc::size_t,
    data: *const c_uchar,
    data_len: libc::size_t,
    abstract_: *mut *mut c_void,
) -> c_int {
    // SAFETY: libssh2 passes the `abstract_` given to libssh2_userauth_publickey, which
    // points to the SigningKey that call borrows, and `data_len` readable bytes at `data`.
    let (key, data) = unsafe {
        (
            &*(*abstract_ as *const SigningKey),
            std::slice::from_raw_parts(data, data_len),
        )
    };
    let Some(signature) = key.sign(data) else {
        return -1;
    };
    // SAFETY: a fresh buffer of the signature's size, filled before libssh2 sees it; `sig`
    // and `sig_len` are libssh2's out-parameters.
    unsafe {
        let buf = libc::malloc(signature.len()) as *mut c_uchar;
        if buf.is_null() {
            return -1;
        }
        std::ptr::copy_nonoverlapping(signature.as_ptr(), buf, signature.len());
        *sig = buf;
        *sig_len = signature.len();
    }
    0
}

/// Identity files read, by path: what was read, as of which version of the file.
type Loaded = HashMap<PathBuf, (FileStamp, Option<Arc<SigningKey>>)>;

/// The signing key of identity file `path`, read once per process for each version of the
/// file (see [`FileStamp`]: a key file replaced during `tether watch` is read again); None
/// where the file is not one unencrypted OpenSSH-format ed25519 key (see
/// [`SigningKey::parse`]).
pub fn load(path: &Path) -> Option<Arc<SigningKey>> {
    static CACHE: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let stamp = FileStamp::of(path)?;
    // A poisoned lock only means another thread panicked while holding it; the map is whole.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((seen, key)) = cache.get(path) {
        if *seen == stamp {
            return key.clone();
        }
    }
    let key = std::fs::read(path)
        .ok()
        .and_then(|text| armoured_body(&text))
        .and_then(|body| SigningKey::parse(&body))
        .map(Arc::new);
    cache.insert(path.to_path_buf(), (stamp, key.clone()));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::sign::Verifier;
    use std::process::Command;

    fn keygen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(args)
            .args(["-q", "-C", "t", "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen runs");
        assert!(out.status.success(), "ssh-keygen {args:?}: {out:?}");
        path
    }

    fn pub_path(path: &Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    }

    fn public_of(path: &Path) -> Vec<u8> {
        let text = std::fs::read_to_string(pub_path(path)).unwrap();
        STANDARD
            .decode(text.split_whitespace().nth(1).unwrap())
            .unwrap()
    }

    #[test]
    fn an_unencrypted_ed25519_key_signs_what_its_public_key_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = keygen(dir.path(), "id.key", &["-t", "ed25519", "-N", ""]);
        let key = load(&path).expect("an ssh-keygen ed25519 key without a passphrase");
        assert_eq!(key.blob(), public_of(&path));
        let signature = key.sign(b"session id and request").unwrap();
        assert_eq!(signature.len(), 64);
        let mut r = Reader::new(key.blob());
        r.string("type").unwrap();
        let public =
            PKey::public_key_from_raw_bytes(r.string("key").unwrap(), Id::ED25519).unwrap();
        let mut verifier = Verifier::new_without_digest(&public).unwrap();
        assert!(verifier
            .verify_oneshot(&signature, b"session id and request")
            .unwrap());
        let mut verifier = Verifier::new_without_digest(&public).unwrap();
        assert!(!verifier
            .verify_oneshot(&signature, b"another request")
            .unwrap());
    }

    #[test]
    fn other_keys_are_left_to_libssh2() {
        let dir = tempfile::tempdir().unwrap();
        let encrypted = keygen(dir.path(), "enc.key", &["-t", "ed25519", "-N", "secret"]);
        let rsa = keygen(
            dir.path(),
            "rsa.key",
            &["-t", "rsa", "-b", "1024", "-N", ""],
        );
        let ecdsa = keygen(dir.path(), "ecdsa.key", &["-t", "ecdsa", "-N", ""]);
        let pem = keygen(
            dir.path(),
            "pem.key",
            &["-t", "ecdsa", "-m", "PEM", "-N", ""],
        );
        for path in [&encrypted, &rsa, &ecdsa, &pem] {
            assert!(load(path).is_none(), "{} was taken", path.display());
        }
        assert!(load(&dir.path().join("missing")).is_none());
        let public = dir.path().join("enc.key.pub");
        assert!(load(&public).is_none(), "a public key file was taken");
    }

    /// Rewrites the body of the OpenSSH key at `path` with `change`, keeping its armour.
    fn tamper(path: &Path, to: &Path, change: impl FnOnce(&mut Vec<u8>)) {
        let mut body = armoured_body(&std::fs::read(path).unwrap()).unwrap();
        change(&mut body);
        let text = STANDARD.encode(&body);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(70)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        std::fs::write(
            to,
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                lines.join("\n")
            ),
        )
        .unwrap();
    }

    /// The key at `path` written again by [`tamper`], unchanged, is taken, as `original`:
    /// the cases around it fail on their change, not on the way it is written.
    fn assert_rewrite_taken(dir: &Path, path: &Path, original: &SigningKey) {
        let same = dir.join("same");
        tamper(path, &same, |_| {});
        assert_eq!(load(&same).unwrap().blob(), original.blob());
    }

    #[test]
    fn a_key_whose_parts_disagree_is_left_to_libssh2() {
        let dir = tempfile::tempdir().unwrap();
        let path = keygen(dir.path(), "id.key", &["-t", "ed25519", "-N", ""]);
        let body = armoured_body(&std::fs::read(&path).unwrap()).unwrap();
        let n = body.len();
        // Offsets from the start of the private section: its length field is followed by
        // the two check numbers; the header's public key ends 32 bytes before the section's
        // length field (15 magic, 4+4 "none", 4+4 "none", 4 "", 4 keys, 4+51 blob).
        let section = 15 + 8 + 8 + 4 + 4 + 4 + 51;
        // The private key starts past the section's length (4), the checks (8), the type
        // (4+11) and the public key (4+32), after its own length (4); its second half is the
        // public key again.
        let private = section + 4 + 8 + 15 + 36 + 4;
        let flips = [
            ("check numbers differ", section + 4),
            ("header's public key changed", section - 1),
            ("private key's copy of the public key changed", private + 63),
            ("seed changed", private),
        ];
        let original = load(&path).unwrap();
        for (what, at) in flips {
            let to = dir.path().join(what.replace(' ', "_"));
            tamper(&path, &to, |b| b[at] ^= 1);
            assert!(load(&to).is_none(), "{what}: taken");
        }
        let truncated = dir.path().join("truncated");
        tamper(&path, &truncated, |b| b.truncate(n - 40));
        assert!(load(&truncated).is_none(), "a truncated key was taken");
        let two = dir.path().join("two");
        tamper(&path, &two, |b| b[section - 51 - 4 - 1] = 2);
        assert!(
            load(&two).is_none(),
            "a file saying it holds two keys was taken"
        );
        assert_rewrite_taken(dir.path(), &path, &original);
    }

    /// Damage ssh refuses is left to libssh2, never signed with (stop 49 tester t69: the
    /// armour was not checked, nor the comment, the padding or what follows the private
    /// section).
    #[test]
    fn a_file_ssh_would_not_load_is_left_to_libssh2() {
        let dir = tempfile::tempdir().unwrap();
        let path = keygen(dir.path(), "id.key", &["-t", "ed25519", "-N", ""]);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let last = lines.len() - 1;
        let body_lines = lines[1..last].join("\n");
        let armour_cases: Vec<(&str, String)> = vec![
            ("no end marker", lines[..last].join("\n") + "\n"),
            ("no begin marker", lines[1..].join("\n") + "\n"),
            (
                "no newline after the end marker",
                text.trim_end().to_string(),
            ),
            (
                "text after the end marker on its line",
                text.trim_end().to_string() + "xyz\n",
            ),
            ("CRLF line ends", text.replace('\n', "\r\n")),
            (
                "a marker-like line inside",
                format!("{}\n-----junk\n{}\n{}\n", lines[0], body_lines, lines[last]),
            ),
            (
                "another armour",
                format!(
                    "-----BEGIN RSA PRIVATE KEY-----\n{body_lines}\n-----END RSA PRIVATE KEY-----\n"
                ),
            ),
            (
                "a space in the base64",
                format!("{}\n {}\n{}\n", lines[0], body_lines, lines[last]),
            ),
        ];
        for (what, damaged) in armour_cases {
            let to = dir.path().join(what.replace(' ', "_"));
            std::fs::write(&to, damaged).unwrap();
            assert!(load(&to).is_none(), "{what}: taken");
        }
        // The body: the private section's length (4) follows the header (see the test above,
        // 94 bytes); in it, checks (8), type (4+11), public key (4+32), private key (4+64),
        // then the comment (4+1: "t") and the padding (1, 2, 3, 4).
        let section = 15 + 8 + 8 + 4 + 4 + 4 + 51;
        let comment = section + 4 + 8 + 15 + 36 + 68;
        type Change = Box<dyn Fn(&mut Vec<u8>)>;
        let body_cases: Vec<(&str, Change)> = vec![
            (
                "comment longer than written",
                Box::new(move |b| b[comment + 3] += 1),
            ),
            (
                "a padding byte changed",
                Box::new(move |b| b[comment + 8] ^= 0x40),
            ),
            (
                "bytes after the private section",
                Box::new(|b| b.extend([0; 8])),
            ),
            (
                "a private section not of whole blocks",
                Box::new(move |b| {
                    b.pop();
                    b[section + 3] -= 1;
                }),
            ),
        ];
        let original = load(&path).unwrap();
        for (what, change) in body_cases {
            let to = dir.path().join(what.replace(' ', "_"));
            tamper(&path, &to, |b| change(b));
            assert!(load(&to).is_none(), "{what}: taken");
        }
        assert_rewrite_taken(dir.path(), &path, &original);
    }

    /// A key written over another of the same size, its modification time set back (`touch
    /// -d`, `cp -p`), is read again (stop 49 tester t69: `tether watch` signed with the key the
    /// file held before).
    #[test]
    fn a_key_rewritten_in_place_with_its_old_time_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = keygen(dir.path(), "id.key", &["-t", "ed25519", "-N", ""]);
        let other = keygen(dir.path(), "other.key", &["-t", "ed25519", "-N", ""]);
        let first = load(&path).unwrap().blob().to_vec();
        let times = std::fs::metadata(&path).unwrap().modified().unwrap();
        let text = std::fs::read(&other).unwrap();
        assert_eq!(text.len() as u64, std::fs::metadata(&path).unwrap().len());
        std::fs::write(&path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(times)
            .unwrap();
        let second = load(&path).unwrap().blob().to_vec();
        assert_ne!(first, second);
        assert_eq!(second, public_of(&other));
    }

    #[test]
    fn a_key_file_replaced_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = keygen(dir.path(), "id.key", &["-t", "ed25519", "-N", ""]);
        let first = load(&path).unwrap().blob().to_vec();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(pub_path(&path)).unwrap();
        keygen(dir.path(), "id.key", &["-t", "ed25519", "-N", ""]);
        let second = load(&path).unwrap().blob().to_vec();
        assert_ne!(first, second);
        assert_eq!(second, public_of(&path));
    }
}
