//! What a file was when it was read: a cache of what was parsed from it (known_hosts, an
//! identity file) is used again only while the file is the same one, unchanged.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// A file's device, inode, size, and modification and status change times (ns), as
/// `stat(2)` gives them: a file replaced (a new inode), appended to (its size) or rewritten
/// in place (its times; the modification time can be set back, as `touch -d` and `cp -p` do,
/// the status change time cannot) is another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    /// The stamp of the file at `path` (symlinks followed); `None` where it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }
}
