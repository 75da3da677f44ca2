//! The private local temporary file of a download, renamed onto the destination only when it
//! is complete, and the removal of those other runs left behind.

use std::fs::File;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::names::{long_name_stem, run_id, FULL_NAME_UP_TO};
use super::paths::shown_path;
use super::scripts::STALE_MINUTES;

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
