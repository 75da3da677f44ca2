//! Which local files an upload sends: regular files only, as scp.

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
