//! The temporary names of a transfer: this process's run id, an upload's suffix, and the stem
//! of a long destination name, so tether finds its own temporary files and nothing else.

use std::sync::OnceLock;

use sha2::Digest as _;

use super::paths::remote_word;

/// This process's run id in temporary names: the start time and the pid, in hex. Two tether
/// processes never share one; one process (a `watch` session) keeps it.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("{secs:x}.{:x}", std::process::id())
    })
}

/// A new remote temporary name for one upload, as a suffix of its destination
/// (`.tether-upload.RUN.N`: the scripts put it after `"$d"`, the destination as
/// [`remote_word`] gives it). Each upload has its own, N counting this process's uploads:
/// hosts that share a filesystem (an NFS-mounted shared directory) may upload to one path at
/// once, and none may write into, move or remove another's file.
pub fn upload_suffix() -> String {
    static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".tether-upload.{}.{n:x}", run_id())
}

/// The longest destination name whose temporary file is named after it in full
/// (`NAME.tether-upload.RUN.N`): with the suffix it stays well under the 255 bytes a name may
/// have on Linux filesystems.
pub(super) const FULL_NAME_UP_TO: usize = 180;

/// The start of the temporary file's path of an upload to `remote`, as a `sh` word (the
/// scripts add the suffix of [`upload_suffix`]): `"$d"`, the destination itself, or for a
/// name longer than [`FULL_NAME_UP_TO`] bytes (which scp writes, and whose temporary file
/// would exceed 255 bytes) `.PREFIX~HASH` beside it: the name's first 64 bytes and 16 hex
/// digits of its SHA-256, so each destination still has temporary files of its own.
pub(super) fn temp_stem(remote: &str) -> String {
    let (dir, name) = match remote.rfind('/') {
        Some(i) => (&remote[..=i], &remote[i + 1..]),
        None => ("", remote),
    };
    if name.len() <= FULL_NAME_UP_TO {
        return "\"$d\"".to_string();
    }
    // Cut at a character's start, so the stem of a UTF-8 name is UTF-8.
    let stem = String::from_utf8_lossy(&long_name_stem(name.as_bytes())).into_owned();
    remote_word(&format!("{dir}{stem}"))
}

/// The path of the private directory (suffix `tmp`) of an upload to `remote`, as the scripts
/// make it (see [`temp_stem`]), for words that name it.
pub fn upload_temp_path(remote: &str, tmp: &str) -> String {
    let (dir, name) = match remote.rfind('/') {
        Some(i) => (&remote[..=i], &remote[i + 1..]),
        None => ("", remote),
    };
    if name.len() <= FULL_NAME_UP_TO {
        return format!("{remote}{tmp}");
    }
    let stem = String::from_utf8_lossy(&long_name_stem(name.as_bytes())).into_owned();
    format!("{dir}{stem}{tmp}")
}

/// `.PREFIX~HASH` for a name of more than [`FULL_NAME_UP_TO`] bytes: its first 64 bytes (cut
/// where a UTF-8 character starts) and 16 hex digits of its SHA-256.
pub(super) fn long_name_stem(name: &[u8]) -> Vec<u8> {
    let mut cut = 64.min(name.len());
    while cut > 0 && cut < name.len() && name[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    let hash = sha2::Sha256::digest(name);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut stem = b".".to_vec();
    stem.extend_from_slice(&name[..cut]);
    stem.extend_from_slice(format!("~{hex}").as_bytes());
    stem
}
