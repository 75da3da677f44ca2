//! The two halves of an atomic file transfer (`upload`, `download`) that do not depend on the
//! session: the remote `sh` scripts, the readers and writers that hash a file while it streams
//! (so a file is read once and never held in memory), the temporary names, and the private
//! local temporary file of a download.
//!
//! A transfer is two commands. The first moves the bytes (stdin into a private temporary file
//! beside the remote destination; the remote file onto stdout into one beside the local
//! destination) while the local side counts and hashes them; the second checks the size and
//! SHA-256 against that count and hash and only then renames the temporary file into place. So
//! the destination changes only to the complete file, and memory stays at one chunk whatever
//! the size. An upload writes `f` in a private directory `DEST.tether-upload.RUN.N`, a download
//! the file `DEST.tether-download.RUN` (RUN: this process's [`run_id`]; N: which of its
//! uploads, see [`upload_suffix`]), so tether finds its own and nothing else.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::Digest as _;

use crate::command::{quote, system_programs_first};

/// How many bytes went through, and their SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Bytes.
    pub bytes: u64,
    /// SHA-256 of those bytes, 64 lowercase hex digits.
    pub sha256: String,
}

fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads at most `limit` bytes of `inner`, hashing them; a read error is kept (see
/// [`HashingReader::finish`]) and ends the input, so the command sees EOF and the transfer
/// is refused rather than placed short.
pub struct HashingReader<R> {
    inner: R,
    left: u64,
    hasher: sha2::Sha256,
    bytes: u64,
    error: Option<std::io::Error>,
    ended_early: bool,
}

impl<R: Read> HashingReader<R> {
    /// Reads `inner` up to `limit` bytes (the size the remote side was told to expect).
    pub fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            left: limit,
            hasher: sha2::Sha256::new(),
            bytes: 0,
            error: None,
            ended_early: false,
        }
    }

    /// Whether `inner` ended before `limit` bytes (a file that shrank while it was read), as
    /// opposed to a reader that stopped reading (a connection cut).
    pub fn ended_early(&self) -> bool {
        self.ended_early
    }

    /// What was read; Err: the read error that ended it.
    pub fn finish(&mut self) -> Result<Digest, std::io::Error> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        Ok(Digest {
            bytes: self.bytes,
            sha256: hex(&std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || self.error.is_some() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let text = e.to_string();
                    self.error = Some(e);
                    return Err(std::io::Error::other(text));
                }
            }
        };
        if n == 0 && want > 0 {
            self.ended_early = true;
        }
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes to `inner`, hashing what it writes; a write error is kept (see
/// [`HashingWriter::finish`]).
pub struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
    error: Option<std::io::Error>,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: sha2::Sha256::new(),
            bytes: 0,
            error: None,
        }
    }

    /// What was written (after a flush); Err: the write error that stopped it.
    pub fn finish(&mut self) -> Result<Digest, std::io::Error> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.inner.flush()?;
        Ok(Digest {
            bytes: self.bytes,
            sha256: hex(&std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) => {
                let text = e.to_string();
                self.error = Some(e);
                Err(std::io::Error::other(text))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

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
const FULL_NAME_UP_TO: usize = 180;

/// The start of the temporary file's path of an upload to `remote`, as a `sh` word (the
/// scripts add the suffix of [`upload_suffix`]): `"$d"`, the destination itself, or for a
/// name longer than [`FULL_NAME_UP_TO`] bytes (which scp writes, and whose temporary file
/// would exceed 255 bytes) `.PREFIX~HASH` beside it: the name's first 64 bytes and 16 hex
/// digits of its SHA-256, so each destination still has temporary files of its own.
fn temp_stem(remote: &str) -> String {
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
fn long_name_stem(name: &[u8]) -> Vec<u8> {
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

/// A remote path of `upload`/`download` as one `sh` word: quoted, so spaces, `$`, quotes and
/// newlines stay literal, except that a leading `~/` (or the whole `~`) becomes the remote
/// `$HOME` (of the shell the transfer runs in: the `as_user` user's under sudo), as scp and
/// Capistrano mean it by running the path through the remote shell. `~user/` is refused
/// before (see [`refuse_other_home`]). A relative path starting with `-` becomes `./-...`,
/// and the scripts also pass paths after `--`, so no path is read as an option.
pub fn remote_word(remote: &str) -> String {
    if remote.starts_with('-') {
        // `./-x`: no tool of the scripts can read it as an option.
        return quote(&format!("./{remote}"));
    }
    if remote == "~" {
        return "\"$HOME\"".to_string();
    }
    if let Some(rest) = remote.strip_prefix("~/") {
        return format!("\"$HOME\"/{}", quote(rest));
    }
    quote(remote)
}

/// Err (a message naming `remote`) when `remote` starts with `~user`: only `~` and `~/` are
/// expanded (to the remote `$HOME`); another user's home must be given as an absolute path.
pub fn refuse_other_home(remote: &str) -> Result<(), String> {
    if crate::command::names_other_home(remote) {
        return Err(format!(
            "remote path `{remote}`: only `~` and `~/` are expanded (to the remote $HOME); \
             give another user's home as an absolute path"
        ));
    }
    Ok(())
}

/// Err (a message naming `path`) when `path`, a transfer's destination, names a directory by
/// its form, whatever is there: its last component is empty (it ends in `/`), `.` or `..`, or
/// it is `~` (the remote home). No file can be placed at such a path; an existing directory
/// by any other name is refused where it is found (see [`receive_script`] and the local check).
pub fn refuse_directory_form(path: &str) -> Result<(), String> {
    let last = path.rsplit('/').next().unwrap_or(path);
    if matches!(last, "" | "." | "..") || path == "~" {
        return Err(format!(
            "`{path}` names a directory, not a file: give the file's own path"
        ));
    }
    Ok(())
}

/// Err (a message) when `path`, a transfer's destination (`which`: remote or local), is longer than a path (4095 bytes,
/// Linux's `PATH_MAX` with its end) or has a name longer than one (255 bytes, `NAME_MAX`):
/// refused before anything is made on the host (stop 44 tester t54: an upload to a 5 KB path
/// made its 25 directories with `mkdir -p`, left them, and said it could not write in the
/// last one).
pub fn refuse_overlong(path: &str, which: &str) -> Result<(), String> {
    if path.len() > 4095 {
        return Err(format!(
            "the {which} path is {} bytes long, more than a path may have (4095)",
            path.len()
        ));
    }
    match path.split('/').find(|name| name.len() > 255) {
        Some(name) => Err(format!(
            "a name in the {which} path is {} bytes long, more than a name may have (255): \
             `{}...`",
            name.len(),
            name.chars().take(40).collect::<String>()
        )),
        None => Ok(()),
    }
}

/// A transfer as tether names it (`upload 'sp ace' -> /srv/x`, kind `upload`, from `from` to
/// `to`): each path sh-quoted where it has more than safe characters, so that a space or ` -> `
/// in a name cannot read as two, and with its control characters as `\xNN`, so that a newline
/// in a name cannot start a line that passes for another host's (stop 40 tester t33).
pub fn label(kind: &str, from: &str, to: &str) -> String {
    format!("{kind} {} -> {}", shown_path(from), shown_path(to))
}

/// `path` as tether's messages name it (see [`label`]): sh-quoted where it is not plain, its
/// control characters `\xNN`.
pub fn shown_path(path: &str) -> String {
    let mut out = String::new();
    for c in crate::command::quote(path).chars() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Err (a message naming `path`) when `path`, a transfer's local file, begins with `~`: local
/// paths are the recipe directory's, where `~/x` would be a directory named `~` (stop 40
/// tester t33: a download made `./~/x`, exit 0); a shell would take it for the home, SSHKit
/// for a relative path. Neither is sure: refused.
pub fn refuse_local_tilde(path: &str) -> Result<(), String> {
    if path.starts_with('~') {
        return Err(format!(
            "the local path `{path}` begins with `~`, which tether does not expand (local paths \
             are relative to the recipe's directory): write the path out"
        ));
    }
    Ok(())
}

/// Refuses an upload's destination `$d` that exists and is no regular file, directory or
/// symbolic link: a device, a FIFO or a socket, which the file moved onto it would replace,
/// removed (stop 36 tester t22: /dev/null became a regular file, exit 0); scp writes into it.
const NOT_SPECIAL: &str =
    "if [ -e \"$d\" ] && [ ! -f \"$d\" ] && [ ! -d \"$d\" ] && [ ! -h \"$d\" ]; then \
     echo \"upload: $d is no regular file (a device, a FIFO or a socket), which the upload would \
     replace: give a file's path\" >&2; exit 1; fi; ";

/// Defines `is_link PATH`: true, saying so and where it finally leads (stop 44 tester t55: a
/// chain named its next link, refused again), where an upload's destination (`$d`, at `PATH`)
/// is a symbolic link, which scp writes through and the move would replace (stop 44 tester
/// t54: an upload onto a Capistrano linked file, `current/config/app.yml`, replaced the link,
/// the shared file stayed as it was, and the next deploy linked the old one again). Both
/// commands of an upload refuse it (a link put there while the bytes travel too).
const NOT_LINK: &str =
    "is_link() { [ -h \"$1\" ] || return 1; echo \"upload: $d is a symbolic link \
     (to $({ readlink -f -- \"$1\" || readlink -- \"$1\"; } 2>/dev/null | head -c 512 | tr -cd '[:print:]')), \
     which the upload would replace: give the path it leads to, or remove the link first\" >&2; }; ";

/// How old (minutes) another run's temporary file of the same destination must be before an
/// upload removes it: a live upload writes to its file all the time, one whose connection and
/// remote shell died left it behind.
pub const STALE_MINUTES: u32 = 1;

/// Enters an upload's private directory `$t` (made by [`receive_script`], mode 0700) by its
/// physical path `$T` (`$p`: the destination's directory, with [`receive_script`]'s `x`):
/// where it is not the directory the upload made (another's, a link to one), the command
/// fails, replacing nothing. Inside it only its owner can add, remove or swap a name, so what
/// is done there by name (`f`, the file) is done to the upload's own file, which the
/// destination's directory, writable by others, could not promise (stop 41 testers t37, t40:
/// a temporary file swapped for a link there had root write the secret into another's FIFO and
/// chmod another file). `gone` removes it.
const ENTER: &str = "P=$(cd -P -- \"${p%??}\" && pwd -P && echo x) || exit 1; P=${P%??}; \
     T=${P%/}/${t##*/}; D=${P%/}/${d##*/}; gone() { rm -f f; cd /; rmdir -- \"$T\" 2>/dev/null; }; \
     if ! cd -P -- \"$T\" 2>/dev/null || [ ! -O . ] || { w=$(pwd -P; echo x); [ \"${w%??}\" != \"$T\" ]; }; \
     then echo \"upload: the temporary directory $T is not the one tether made (its directory is \
     writable by others?): nothing was replaced\" >&2; exit 1; fi; ";

/// The first command of an upload: stdin into a private (0600) file `f` in a private (0700)
/// directory beside `remote` ([`temp_stem`] and the suffix `tmp`, see [`upload_suffix`]: made
/// new by `mkdir`, which follows no link; see [`ENTER`]), refused when `remote` is a directory
/// (mv would put the file inside it), or when its directory cannot be written in, with the
/// system's reason (the words after mkdir's last `: `, such as `Read-only file system`). A connection lost mid-transfer ends `cat` with EOF, not
/// an error: the size is checked here (`size`: what will be sent), and a short file removed,
/// so the remote shell cleans up after a cut connection. Temporary directories (and files,
/// as tether named them before) of the same destination left by earlier runs, with nothing in
/// them changed for [`STALE_MINUTES`], are removed first.
pub fn receive_script(remote: &str, tmp: &str, size: u64) -> String {
    format!(
        "{path}d={dest}; t={stem}{tmp}; p=$(dirname -- \"$d\"; echo x); {make_dir}\
         {not_link}is_link \"$d\" && exit 1; if [ -d \"$d\" ]; then echo \"upload: $d is a directory (mv would put the file inside \
         it): give the file's own path\" >&2; exit 1; fi; {special}\
         b=${{t##*/}}; if [ ${{#b}} -gt 255 ]; then echo \"upload: the name of $d is too long for \
         the temporary file beside it (${{#b}} bytes with its {n}-byte suffix; a name has 255 at \
         most): shorten it\" >&2; exit 1; fi; \
         if [ ! -w \"${{p%??}}\" ]; then w=$( (umask 077 && mkdir -- \"$t\") 2>&1) && \
         {{ rmdir -- \"$t\"; w='not writable'; }}; echo \"upload: cannot write in the directory of \
         $d: ${{w##*: }} (the file is written beside it and moved into place, so its directory \
         must be writable)\" >&2; exit 1; fi; \
         for f in {stem}.tether-upload.*; do r=${{f##*.tether-upload.}}; case $r in \
         \"\"|.*|*.|*..*|*[!0-9a-f.]*|*.*.*.*) continue;; *.*) ;; *) continue;; esac; \
         if [ ! -h \"$f\" ] && [ \"$f\" != \"$t\" ] && {{ [ -f \"$f\" ] || [ -d \"$f\" ]; }} && \
         [ -z \"$(find \"$f\" ! -mmin +{STALE_MINUTES} 2>/dev/null | head -n 1)\" ]; then rm -rf -- \"$f\" 2>/dev/null; fi; done; \
         (umask 077 && mkdir -- \"$t\") || exit 1; {enter}\
         (umask 077 && set -C && cat > f) || {{ gone; exit 1; }}; \
         n=$(wc -c < f) || {{ gone; exit 1; }}; if [ \"$n\" -ne {size} ]; then gone; \
         echo \"upload stopped short: $n of {size} bytes arrived\" >&2; exit 1; fi",
        path = system_programs_first(),
        dest = remote_word(remote),
        stem = temp_stem(remote),
        n = tmp.len(),
        special = NOT_SPECIAL,
        not_link = NOT_LINK,
        make_dir = MAKE_DIR,
        enter = ENTER,
    )
}

/// Makes the destination's directory (`$p` with [`receive_script`]'s `x`) as `mkdir -p`; where
/// a name on the way is no directory, says which (stop 44 tester t55: mkdir's `File exists`
/// for a path through a file, a link to one, or a link that leads nowhere); other failures
/// are mkdir's own words.
const MAKE_DIR: &str = "mkdir -p -- \"${p%??}\" 2>/dev/null || { q=${p%??}; \
     while [ ! -e \"$q\" ] && [ ! -h \"$q\" ]; do q=$(dirname -- \"$q\"); done; \
     if [ -h \"$q\" ] && [ ! -e \"$q\" ]; then echo \"upload: $d cannot be written: $q is a \
     symbolic link that leads nowhere\" >&2; elif [ ! -d \"$q\" ]; then echo \"upload: $d cannot \
     be written: $q is not a directory (a file, or a link to one)\" >&2; else mkdir -p -- \"${p%??}\"; \
     fi; exit 1; }; ";

/// The second command of an upload: the file `f` of its private directory (suffix `tmp`, see
/// [`receive_script`] and [`ENTER`]) is moved onto `remote` with permission bits `mode` only
/// when its size and SHA-256 are `sent`'s (checked with `sha256sum` or `shasum -a 256` where
/// the host has either, the size always); otherwise it is removed and the command fails. A
/// regular file it replaces gives it its owner and group first (scp writes into the file,
/// which keeps them); where they cannot be given (not root, someone else's file), nothing is
/// replaced and the command fails, naming them, and so where root would give it to a user
/// other than root in a directory others may write, where anyone may have put that file
/// (stop 41 tester t41: a file planted in a sticky /tmp-like directory made the uploaded
/// secret the planter's; Linux's protected_regular keeps scp from writing into it). All of it is done by the file's name inside
/// the private directory, where nobody else can change what the name leads to; the move is
/// `mv -T`, which replaces a link at the destination rather than following it into the
/// directory it leads to, and refuses a directory there (stop 41 tester t41: a link to another
/// directory put at the destination while the file was checked got the file moved into that
/// directory, exit 0).
pub fn place_script(remote: &str, tmp: &str, sent: &Digest, mode: u32) -> String {
    let (size, sum) = (sent.bytes, &sent.sha256);
    format!(
        "{path}d={dest}; t={stem}{tmp}; p=$(dirname -- \"$d\"; echo x); {special}{not_link}{enter}\
         if [ ! -f f ] || [ -h f ]; then gone; echo \"upload: the file that arrived is gone from \
         $T: nothing was replaced\" >&2; exit 1; fi; \
         n=$(wc -c < f) || {{ gone; exit 1; }}; if [ \"$n\" -ne {size} ]; then \
         gone; echo \"upload stopped short: $n of {size} bytes arrived\" >&2; exit 1; fi; \
         if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum < f); \
         elif command -v shasum >/dev/null 2>&1; then s=$(shasum -a 256 < f); else s={sum}; fi; \
         case $s in {sum}*) ;; *) gone; echo 'upload arrived changed: SHA-256 differs' >&2; exit 1 ;; esac; \
         is_link \"$D\" && {{ gone; exit 1; }}; \
         if [ -f \"$D\" ] && [ ! -h \"$D\" ]; then set -f; set -- $(ls -ldn -- \"$D\"); set +f; \
         if [ \"$(id -u)\" = 0 ] && [ \"$3\" != 0 ] && [ -n \"$(find \"$P/.\" -prune -perm -0002 2>/dev/null)\" ]; then \
         gone; echo \"upload: $d belongs to $3:$4 (uid:gid) in a directory others may write, where anyone \
         may have put it: given its owner, the new file would be theirs; nothing was replaced (remove \
         the file first, or upload into a directory only its owner may write)\" >&2; exit 1; fi; \
         chown -- \"$3:$4\" f 2>/dev/null || {{ gone; echo \"upload: $d belongs to $3:$4 \
         (uid:gid), which the new file cannot be given (chown refused): nothing was replaced\" >&2; exit 1; }}; fi; \
         chmod {mode:04o} -- f && mv -Tf -- f \"$D\" || {{ gone; exit 1; }}; cd / && rmdir -- \"$T\" 2>/dev/null; true",
        path = system_programs_first(),
        dest = remote_word(remote),
        stem = temp_stem(remote),
        special = NOT_SPECIAL,
        not_link = NOT_LINK,
        enter = ENTER,
    )
}

/// Whether an upload to `remote` (suffix `tmp`, `size` bytes) whose placing step was stopped
/// on the host (a timeout, Ctrl-C) had placed its file by then: the step's `mv` takes `f` out
/// of its private directory and puts it at the destination in one rename, and nothing after it
/// can undo it, so a stop that came between the rename and the step's end (tester t121: 3 of
/// 20 timeouts near the end of a 300 MB upload) leaves the new file in place. Prints `kept`
/// (`f` is still there: nothing was placed), `placed` (it is gone, and the destination is a
/// regular file of `size` bytes), or `unknown`.
pub fn placed_script(remote: &str, tmp: &str, size: u64) -> String {
    format!(
        "{path}d={dest}; t={stem}{tmp}; if [ -e \"$t/f\" ] || [ -h \"$t/f\" ]; then echo kept; \
         elif [ -f \"$d\" ] && [ ! -h \"$d\" ] && [ \"$(wc -c < \"$d\")\" -eq {size} ]; then echo placed; \
         else echo unknown; fi",
        path = system_programs_first(),
        dest = remote_word(remote),
        stem = temp_stem(remote),
    )
}

/// Removes the private directory (suffix `tmp`) of an upload to `remote` and the file in it
/// (after a connection died under it): `rm -rf` of its name, which removes a link put there,
/// not what it leads to.
pub fn cleanup_script(remote: &str, tmp: &str) -> String {
    format!(
        "{}d={}; rm -rf -- {}{tmp}",
        system_programs_first(),
        remote_word(remote),
        temp_stem(remote)
    )
}

/// The first command of a download: the remote file on stdout. A directory, and anything else
/// that is not a regular file after following symlinks (`/dev/zero` would stream forever, a
/// FIFO block), is refused before any byte is sent, as scp refuses them.
pub fn fetch_script(remote: &str) -> String {
    format!(
        "{path}f={f}; if [ -d \"$f\" ]; then echo \"download: $f is a directory: name a file\" >&2; \
         exit 1; fi; {regular} cat -- \"$f\"",
        path = system_programs_first(),
        f = remote_word(remote),
        regular = REFUSE_NOT_REGULAR,
    )
}

/// Shell: a `$f` that exists but is not a regular file (after following symlinks) ends the
/// script with a message; a missing `$f` is left to the next command's own error.
const REFUSE_NOT_REGULAR: &str = "if [ -e \"$f\" ] && [ ! -f \"$f\" ]; then \
     echo \"download: $f is not a regular file\" >&2; exit 1; fi;";

/// The second command of a download: one line, `SIZE MODE SHA256` of the remote file (`MODE`
/// as `ls -lL` prints it: a symlink's target's bits, as `scp -p` keeps them, not the link's
/// `rwxrwxrwx`; `SHA256` `-` when the host has neither `sha256sum` nor `shasum`).
pub fn measure_script(remote: &str) -> String {
    format!(
        "{path}f={f}; {regular} n=$(wc -c < \"$f\") || exit 1; m=$(ls -ldL -- \"$f\") || exit 1; \
         if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum < \"$f\"); \
         elif command -v shasum >/dev/null 2>&1; then s=$(shasum -a 256 < \"$f\"); else s=-; fi; \
         echo \"$n ${{m%% *}} ${{s%% *}}\"",
        path = system_programs_first(),
        f = remote_word(remote),
        regular = REFUSE_NOT_REGULAR,
    )
}

/// The remote file as [`measure_script`] printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Size in bytes.
    pub bytes: u64,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// SHA-256 in lowercase hex; None when the host cannot compute one.
    pub sha256: Option<String>,
}

/// Reads [`measure_script`]'s output; None when it is not that.
pub fn parse_measured(out: &str) -> Option<Measured> {
    let mut fields = out.split_whitespace();
    let bytes = fields.next()?.parse().ok()?;
    let mode = mode_from_ls(fields.next()?)?;
    let sha256 = match fields.next()? {
        "-" => None,
        s if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(s.to_ascii_lowercase())
        }
        _ => return None,
    };
    Some(Measured {
        bytes,
        mode,
        sha256,
    })
}

/// Permission bits from `ls -l`'s mode column (`-rwsr-x--T`, an ACL's `+` after it).
fn mode_from_ls(text: &str) -> Option<u32> {
    let c: Vec<char> = text.chars().collect();
    if c.len() < 10 {
        return None;
    }
    let mut mode = 0;
    // (read, write, execute column, the special bit that column carries)
    for (i, special) in [(1, 0o4000), (4, 0o2000), (7, 0o1000)] {
        let shift = 6 - 3 * ((i - 1) / 3);
        if c[i] == 'r' {
            mode |= 0o4 << shift;
        }
        if c[i + 1] == 'w' {
            mode |= 0o2 << shift;
        }
        match c[i + 2] {
            'x' => mode |= 0o1 << shift,
            's' | 't' => mode |= (0o1 << shift) | special,
            'S' | 'T' => mode |= special,
            '-' => {}
            _ => return None,
        }
    }
    Some(mode)
}

/// Permission bits from an octal string (`"0640"`, `"640"`, `"4755"`); Err says why not.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let ok = (3..=4).contains(&text.len()) && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !ok {
        return Err(format!(
            "mode `{text}` is not a permission mode: give 3 or 4 octal digits as a string, \
             like \"0640\""
        ));
    }
    u32::from_str_radix(text, 8).map_err(|e| format!("mode `{text}`: {e}"))
}

/// What `path` is when it exists and is neither a regular file nor a directory: "a character
/// device", "a FIFO"...; or a symbolic link, which scp writes through and a download would
/// replace: "a symbolic link to a character device (/dev/null)" (stop 43 tester t51: the link
/// became a regular file, exit 0), "a symbolic link to a regular file (shared/app.yml)" (stop
/// 44 tester t54: an upload onto a linked file replaced the link, and the shared file stayed
/// as it was), "a symbolic link that leads nowhere (x)".
pub fn special_kind(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = |t: std::fs::FileType| {
        Some(match () {
            _ if t.is_char_device() => "a character device",
            _ if t.is_block_device() => "a block device",
            _ if t.is_fifo() => "a FIFO",
            _ if t.is_socket() => "a socket",
            _ => return None,
        })
    };
    let t = std::fs::symlink_metadata(path).ok()?.file_type();
    if t.is_symlink() {
        let what = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => "to a regular file",
            Ok(m) if m.is_dir() => "to a directory",
            Ok(m) => match kind(m.file_type()) {
                Some(what) => return Some(symbolic_link(path, &format!("to {what}"))),
                None => "to something else",
            },
            Err(_) => "that leads nowhere",
        };
        return Some(symbolic_link(path, what));
    }
    kind(t).map(str::to_string)
}

/// "a symbolic link WHAT (TARGET)": where it finally leads, else its own target.
fn symbolic_link(path: &Path, what: &str) -> String {
    let to = std::fs::canonicalize(path)
        .or_else(|_| std::fs::read_link(path))
        .unwrap_or_default();
    format!("a symbolic link {what} ({})", to.display())
}

/// The local temporary file of a download: `DEST.tether-download.RUN`, created private (0600)
/// before any byte is written, removed when dropped unless [`LocalTemp::place`] renamed it onto
/// the destination.
pub struct LocalTemp {
    path: PathBuf,
    dest: PathBuf,
    placed: bool,
    /// The file's device and inode: what its name must still lead to when it is placed.
    id: (u64, u64),
}

impl LocalTemp {
    /// Creates the temporary file beside `dest` (and `dest`'s directory when missing). The
    /// temporary files of `dest` that other runs left (a tether killed mid-download), unchanged
    /// for [`STALE_MINUTES`], are removed first.
    pub fn create(dest: &Path) -> Result<(LocalTemp, File), std::io::Error> {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // A long name's temporary file is named by its stem, as an upload's (stop 44 tester
        // t54: a 254-byte name failed with `File name too long`, where scp writes it).
        let stem = match dest.file_name() {
            Some(base) if base.len() > FULL_NAME_UP_TO => {
                use std::os::unix::ffi::OsStrExt as _;
                let short = long_name_stem(base.as_bytes());
                dest.with_file_name(std::ffi::OsStr::from_bytes(&short))
            }
            _ => dest.to_path_buf(),
        };
        let mut name = stem.as_os_str().to_owned();
        name.push(format!(".tether-download.{}", run_id()));
        let path = PathBuf::from(name);
        remove_stale(&stem, &path);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // A signal that ends tether at once skips Drop.
        crate::interrupt::remove_on_exit(&path);
        let meta = file.metadata()?;
        Ok((
            LocalTemp {
                path,
                dest: dest.to_path_buf(),
                placed: false,
                id: (meta.dev(), meta.ino()),
            },
            file,
        ))
    }

    /// Gives the temporary file `mode` (and the owner of the file it replaces: see
    /// `keep_owner`) and renames it onto the destination. Its mode is set
    /// through a handle opened without following a link and checked to be the file created,
    /// and its name must still lead to it right before the rename: in a directory others may
    /// write, the name can be made a link to another file at any moment, which `chmod` of
    /// the name would follow (stop 41 tester t40: a root-only file made 0644 and the link
    /// moved into place, exit 0). Otherwise nothing is replaced: an error saying so.
    pub fn place(mut self, mode: u32) -> Result<(), std::io::Error> {
        let replaced = || {
            std::io::Error::other(format!(
                "{} was replaced while it was written (its directory is writable by others?); \
                 nothing was replaced",
                shown_path(&self.path.to_string_lossy())
            ))
        };
        let ours = |m: &std::fs::Metadata| m.is_file() && (m.dev(), m.ino()) == self.id;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(|_| replaced())?;
        if !ours(&file.metadata()?) {
            return Err(replaced());
        }
        self.keep_owner(&file)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if !std::fs::symlink_metadata(&self.path).is_ok_and(|m| ours(&m)) {
            return Err(replaced());
        }
        std::fs::rename(&self.path, &self.dest)?;
        self.placed = true;
        crate::interrupt::keep(&self.path);
        Ok(())
    }
}

impl LocalTemp {
    /// Gives the new file (`file`) the owner and group of the regular file it replaces, as an
    /// upload does on the host and scp keeps them by writing into the file (tester t121: a
    /// download over a file of `nobody` made it root's). Where they cannot be given (not
    /// root: chown refused), or root would give it to a user other than root in a directory
    /// others may write, where anyone may have put that file, nothing is replaced: an error
    /// saying why.
    fn keep_owner(&self, file: &File) -> Result<(), std::io::Error> {
        let Ok(old) = std::fs::symlink_metadata(&self.dest) else {
            return Ok(());
        };
        let new = file.metadata()?;
        if !old.is_file() || (old.uid(), old.gid()) == (new.uid(), new.gid()) {
            return Ok(());
        }
        let dest = shown_path(&self.dest.to_string_lossy());
        let (uid, gid) = (old.uid(), old.gid());
        let dir = match self.dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let open_dir = std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o002 != 0);
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 && uid != 0 && open_dir {
            return Err(std::io::Error::other(format!(
                "{dest} belongs to {uid}:{gid} (uid:gid) in a directory others may write, where \
                 anyone may have put it: given its owner, the new file would be theirs; nothing \
                 was replaced (remove the file first, or download into a directory only its \
                 owner may write)"
            )));
        }
        std::os::unix::fs::fchown(file, Some(uid), Some(gid)).map_err(|e| {
            std::io::Error::other(format!(
                "{dest} belongs to {uid}:{gid} (uid:gid), which the new file cannot be given \
                 ({e}): nothing was replaced"
            ))
        })
    }
}

/// Removes `STEM.tether-download.*` beside `stem` (the destination, or its
/// [`long_name_stem`]; but `ours`) unchanged for [`STALE_MINUTES`]; best effort (a file that
/// cannot be removed stays).
fn remove_stale(dest: &Path, ours: &Path) {
    let (Some(dir), Some(base)) = (dest.parent(), dest.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = base.to_owned();
    prefix.push(".tether-download.");
    let prefix = prefix.as_encoded_bytes().to_vec();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let stale = std::time::Duration::from_secs(60 * u64::from(STALE_MINUTES));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path == ours || !name.as_encoded_bytes().starts_with(&prefix) {
            continue;
        }
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > stale);
        if old {
            let _ = std::fs::remove_file(&path);
        }
    }
}

impl Drop for LocalTemp {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
            crate::interrupt::keep(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path with a newline, a space or ` -> ` cannot make a transfer's label read as two
    /// lines or two other paths (stop 40 tester t33); a plain one is as written.
    #[test]
    fn a_transfers_label_quotes_and_escapes_its_paths() {
        assert_eq!(
            label("upload", "a.txt", "/srv/a.txt"),
            "upload a.txt -> /srv/a.txt"
        );
        assert_eq!(
            label("upload", "files/nl\nx", "/srv/evil\nhost2: ok"),
            "upload 'files/nl\\x0ax' -> '/srv/evil\\x0ahost2: ok'"
        );
        assert_eq!(
            label("download", "/srv/a -> b", "it's"),
            "download '/srv/a -> b' -> 'it'\\''s'"
        );
    }

    #[test]
    fn modes_read_from_ls() {
        assert_eq!(mode_from_ls("-rw-------"), Some(0o600));
        assert_eq!(mode_from_ls("-rwxr-x---+"), Some(0o750));
        assert_eq!(mode_from_ls("-rwsr-xr-x"), Some(0o4755));
        assert_eq!(mode_from_ls("-rwxr-Sr-T"), Some(0o3744));
        assert_eq!(mode_from_ls("-rw-r--r--."), Some(0o644));
        assert_eq!(mode_from_ls("total"), None);
    }

    #[test]
    fn remote_paths_become_one_word_with_only_a_leading_tilde_expanded() {
        assert_eq!(remote_word("~"), "\"$HOME\"");
        assert_eq!(remote_word("~/a b/$x"), "\"$HOME\"/'a b/$x'");
        assert_eq!(remote_word("-n"), "./-n");
        assert_eq!(remote_word("--x y"), "'./--x y'");
        assert_eq!(remote_word("/srv/~/x"), "'/srv/~/x'");
        assert!(refuse_other_home("~root/x").is_err());
        for ok in ["~", "~/x", "a~b", "/x"] {
            assert!(refuse_other_home(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_path_that_names_a_directory_by_its_form_is_refused() {
        for dir in ["/", "a/", "a//", "a/.", "a/..", ".", "..", "~", "~/", "./"] {
            assert!(refuse_directory_form(dir).is_err(), "{dir}");
        }
        for file in ["a", "/a", "a/b", "~/a", ".a", "..a", "a.", "a/.b", "~a"] {
            assert!(refuse_directory_form(file).is_ok(), "{file}");
        }
    }

    #[test]
    fn modes_parsed_from_octal_strings() {
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        for bad in ["", "64", "0648", "rw-", "00640", "-640", "+640", " 640"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn measured_lines_parsed() {
        let sum = "a".repeat(64);
        assert_eq!(
            parse_measured(&format!("  12 -rw-r----- {sum}\n")),
            Some(Measured {
                bytes: 12,
                mode: 0o640,
                sha256: Some(sum)
            })
        );
        assert_eq!(
            parse_measured("0 -rw------- -").map(|m| m.sha256),
            Some(None)
        );
        assert_eq!(parse_measured("x -rw------- -"), None);
        assert_eq!(parse_measured("1 -rw------- zz"), None);
    }

    #[test]
    fn a_reader_hashes_what_it_reads_up_to_its_limit() {
        let mut r = HashingReader::new(&b"hello world"[..], 5);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        let d = r.finish().unwrap();
        assert_eq!(d.bytes, 5);
        assert_eq!(
            d.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
