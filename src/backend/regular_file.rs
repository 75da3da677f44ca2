//! Which local files an upload sends (regular files only, as scp), and which a download may
//! write.

use std::path::Path;

use super::interface::TransferError;

/// Ok when the local `path` (symlinks followed) is a regular file: a directory, a device
/// (`/dev/zero`), a FIFO, or a `/proc` or `/sys` file (regular by type, but `stat` gives its
/// size as 0 while it reads content) is refused as scp refuses non-regular files, so nothing
/// short, endless or blocking is sent.
pub(super) fn regular_file(path: &Path) -> Result<(), TransferError> {
    use std::io::Read as _;
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(not_regular(path, &meta)),
        Ok(meta) if meta.len() == 0 => {
            let mut byte = [0u8; 1];
            let reads = std::fs::File::open(path).and_then(|mut f| f.read(&mut byte));
            if matches!(reads, Ok(n) if n > 0) {
                return Err(TransferError::Local(format!(
                    "upload: {} is not a regular file: its size is 0 but it reads content \
                     (a /proc or /sys file): copy it to a file first",
                    path.display()
                )));
            }
            Ok(())
        }
        // Not readable: File::open says why.
        _ => Ok(()),
    }
}

/// The refusal of `path`, which is not a regular file (`meta`): a directory is named as one.
pub(super) fn not_regular(path: &Path, meta: &std::fs::Metadata) -> TransferError {
    TransferError::Local(if meta.is_dir() {
        format!(
            "upload: {} is a directory: upload sends one file",
            path.display()
        )
    } else {
        format!(
            "upload: {} is not a regular file: upload sends one file's bytes",
            path.display()
        )
    })
}

/// Ok when `path` may be a download's local destination: not a directory, a device, a FIFO,
/// a socket or a symbolic link (see [`crate::transfer::paths::special_kind`]), nor below a
/// file. The run and the dry run refuse alike (stop 44 tester t55: `-n` planned what the run
/// refuses).
pub(super) fn local_target(path: &Path) -> Result<(), TransferError> {
    use crate::transfer;
    if path.is_dir() {
        return Err(TransferError::Local(format!(
            "download: {} is a directory: give the file's own path",
            path.display()
        )));
    }
    // A device, a FIFO, a socket or a symbolic link would be replaced by the file (stop 36
    // tester t22: /dev/null became a regular file, exit 0); scp writes into it instead.
    // Refused.
    if let Some(kind) = transfer::paths::special_kind(path) {
        return Err(TransferError::Local(format!(
            "download: {} is {kind}, not a regular file: the download would replace it \
         (scp would write through it); give a file's own path",
            path.display()
        )));
    }
    // A file where the path needs a directory is the recipe's path, as a directory where
    // it needs a file (stop 40 tester t36: it said `File exists (os error 17)`).
    if let Some(file) = path
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.exists() && !a.is_dir())
    {
        return Err(TransferError::Local(format!(
            "download: {} cannot be written: {} is a file, not a directory",
            transfer::paths::shown_path(&path.to_string_lossy()),
            transfer::paths::shown_path(&file.to_string_lossy())
        )));
    }
    Ok(())
}
