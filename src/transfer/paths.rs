//! A transfer's paths: the remote path as one `sh` word, the paths refused before anything is
//! made, and the words tether's messages name a path and a transfer with.

use std::path::Path;

use crate::command::quote;

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
/// by any other name is refused where it is found (see
/// [`receive_script`](super::scripts::receive_script) and the local check).
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
}
