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
//! the file `DEST.tether-download.RUN` (RUN: this process's [`run_id`](names::run_id); N:
//! which of its uploads, see [`upload_suffix`](names::upload_suffix)), so tether finds its own
//! and nothing else.
//!
//! One file per concept: [`digest`] (the hashing reader and writer), [`names`] (the temporary
//! names), [`paths`] (the remote path as a `sh` word, the paths refused, and the words for
//! paths), [`scripts`] (the remote `sh` scripts and their output), [`local_temp`] (a
//! download's local temporary file).

pub mod digest;
pub mod local_temp;
pub mod names;
pub mod paths;
pub mod scripts;
