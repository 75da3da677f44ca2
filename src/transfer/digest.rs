//! Reading and writing a file while hashing it: what went through a transfer, counted and
//! hashed as it streams, so a file is read once and never held in memory.

use std::io::{Read, Write};

use sha2::Digest as _;

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

#[cfg(test)]
mod tests {
    use super::*;

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
