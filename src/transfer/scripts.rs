//! The remote `sh` scripts of a transfer (an upload's receiving, placing, probing and cleanup;
//! a download's fetching and measuring) and the reading of their output.

use super::digest::Digest;
use super::names::temp_stem;
use super::paths::remote_word;
use crate::command::system_programs_first;

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
/// directory beside `remote` ([`temp_stem`] and the suffix `tmp`, see
/// [`upload_suffix`](super::names::upload_suffix): made new by `mkdir`, which follows no link;
/// see [`ENTER`]), refused when `remote` is a directory
/// (mv would put the file inside it), or when its directory cannot be written in, with the
/// system's reason (the words after mkdir's last `: `, such as `Read-only file system`), and
/// so where the private directory cannot be made there (tester t121: under `/proc`, mkdir's
/// own words named only the temporary name), and where the file cannot be written there
/// (tester t124: a full filesystem said `cat: write error: No space left on device` alone). A connection lost mid-transfer ends `cat` with EOF, not
/// an error: the size is checked here (`size`: what will be sent), and a short file removed,
/// so the remote shell cleans up after a cut connection. Temporary directories (and files,
/// as tether named them before) of the same destination left by earlier runs, with nothing in
/// them changed for [`STALE_MINUTES`], are removed first.
pub fn receive_script(remote: &str, tmp: &str, size: u64) -> String {
    format!(
        "{path}d={dest}; t={stem}{tmp}; p=$(dirname -- \"$d\"; echo x); {reason}{make_dir}\
         {not_link}is_link \"$d\" && exit 1; if [ -d \"$d\" ]; then echo \"upload: $d is a directory (mv would put the file inside \
         it): give the file's own path\" >&2; exit 1; fi; {special}\
         b=${{t##*/}}; if [ ${{#b}} -gt 255 ]; then echo \"upload: the name of $d is too long for \
         the temporary file beside it (${{#b}} bytes with its {n}-byte suffix; a name has 255 at \
         most): shorten it\" >&2; exit 1; fi; \
         if [ ! -w \"${{p%??}}\" ]; then w=$( (umask 077 && mkdir -- \"$t\") 2>&1) && \
         {{ rmdir -- \"$t\"; w='not writable'; }}; why \"${{p%??}}\"; echo \"upload: cannot write in the \
         directory of $d: $w (the file is written beside it and moved into place, so its \
         directory must be writable)\" >&2; exit 1; fi; \
         for f in {stem}.tether-upload.*; do r=${{f##*.tether-upload.}}; case $r in \
         \"\"|.*|*.|*..*|*[!0-9a-f.]*|*.*.*.*) continue;; *.*) ;; *) continue;; esac; \
         if [ ! -h \"$f\" ] && [ \"$f\" != \"$t\" ] && {{ [ -f \"$f\" ] || [ -d \"$f\" ]; }} && \
         [ -z \"$(find \"$f\" ! -mmin +{STALE_MINUTES} 2>/dev/null | head -n 1)\" ]; then rm -rf -- \"$f\" 2>/dev/null; fi; done; \
         w=$( (umask 077 && mkdir -- \"$t\") 2>&1) || {{ why \"${{p%??}}\"; echo \"upload: cannot make the \
         temporary directory $t beside $d: $w (the file is written there and moved into \
         place)\" >&2; exit 1; }}; {enter}\
         w=$( (umask 077 && set -C && cat > f) 2>&1) || {{ gone; echo \"upload: $d: the file \
         could not be written beside it: ${{w##*: }}; nothing was replaced\" >&2; exit 1; }}; \
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
        reason = MKDIR_REASON,
    )
}

/// `why DIR`: the system's reason in mkdir's words `$w` (those after its last `: `), where
/// `mkdir` in the directory `DIR` failed; where that is `No such file or directory` and `DIR`
/// exists, that its filesystem makes no new files there (tester t124: an upload to
/// `/proc/sys/kernel/hostname`, or below `/proc/1`, said only `No such file or directory`,
/// the directory being there).
const MKDIR_REASON: &str = "why() { w=${w##*: }; case $w in \"No such file or directory\") \
     [ -d \"$1\" ] && w=\"its filesystem makes no new files there (mkdir: $w, as under /proc and \
     /sys)\";; esac; }; ";

/// Makes the destination's directory (`$p` with [`receive_script`]'s `x`) as `mkdir -p`; where
/// a name on the way is no directory, says which (stop 44 tester t55: mkdir's `File exists`
/// for a path through a file, a link to one, or a link that leads nowhere); other failures
/// name the destination and the system's reason (see [`MKDIR_REASON`], for the nearest
/// directory that exists; tester t124: mkdir's own words, `cannot create directory
/// '/proc/1/x'`, did not say the upload).
const MAKE_DIR: &str = "mkdir -p -- \"${p%??}\" 2>/dev/null || { q=${p%??}; \
     while [ ! -e \"$q\" ] && [ ! -h \"$q\" ]; do q=$(dirname -- \"$q\"); done; \
     if [ -h \"$q\" ] && [ ! -e \"$q\" ]; then echo \"upload: $d cannot be written: $q is a \
     symbolic link that leads nowhere\" >&2; elif [ ! -d \"$q\" ]; then echo \"upload: $d cannot \
     be written: $q is not a directory (a file, or a link to one)\" >&2; else \
     w=$(mkdir -p -- \"${p%??}\" 2>&1); why \"$q\"; echo \"upload: $d cannot be written: its \
     directory ${p%??} cannot be made: $w\" >&2; fi; exit 1; }; ";

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
/// directory, exit 0). A move that fails says the destination and the system's reason (the
/// words after mv's last `: `, such as `Operation not permitted` for an immutable file),
/// where mv's own words named `f` (tester t121).
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
         chmod {mode:04o} -- f || {{ gone; exit 1; }}; w=$(mv -Tf -- f \"$D\" 2>&1) || {{ gone; \
         echo \"upload: $d cannot be replaced: ${{w##*: }}; nothing was replaced\" >&2; exit 1; }}; \
         cd / && rmdir -- \"$T\" 2>/dev/null; true",
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
