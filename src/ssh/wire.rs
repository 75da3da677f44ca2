//! Reading the SSH wire encoding (RFC 4251 section 5) of keys, certificates and signatures:
//! `uint32`, `uint64`, `string` (a length and bytes), `mpint`. Every read checks the length,
//! so a hostile blob can only fail to parse.

/// A cursor over one SSH-encoded blob.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

/// The blob ended before a field, or a field was malformed; names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated(pub &'static str);

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "truncated or malformed at its {}", self.0)
    }
}

impl<'a> Reader<'a> {
    /// A reader at the start of `blob`.
    pub fn new(blob: &'a [u8]) -> Self {
        Reader { rest: blob }
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// A `uint32`; `field` names it in the error.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, Truncated> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A `uint64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, Truncated> {
        let bytes = self.take(8, field)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(b))
    }

    /// A `string` (also an `mpint`, whose bytes are a two's complement number).
    pub fn string(&mut self, field: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    /// A `string` that must be UTF-8 text.
    pub fn text(&mut self, field: &'static str) -> Result<&'a str, Truncated> {
        std::str::from_utf8(self.string(field)?).map_err(|_| Truncated(field))
    }

    /// A non-negative `mpint` as big-endian magnitude bytes (without the sign byte).
    pub fn mpint(&mut self, field: &'static str) -> Result<&'a [u8], Truncated> {
        let bytes = self.string(field)?;
        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(Truncated(field));
        }
        Ok(&bytes[bytes.iter().take_while(|b| **b == 0).count()..])
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Truncated> {
        if self.rest.len() < n {
            return Err(Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
}

/// Appends `data` as an SSH `string` to `out`.
pub fn put_string(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_refuses_short_blobs() {
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        blob.extend_from_slice(&7u64.to_be_bytes());
        put_string(&mut blob, &[0, 0x7f, 1]);
        let mut r = Reader::new(&blob);
        assert_eq!(r.text("type"), Ok("ssh-ed25519"));
        assert_eq!(r.u64("serial"), Ok(7));
        assert_eq!(r.mpint("n"), Ok(&[0x7f, 1][..]));
        assert!(r.is_empty());
        assert_eq!(r.u32("more"), Err(Truncated("more")));
        let mut short = Reader::new(&[0, 0, 0, 9, 1]);
        assert_eq!(short.string("key"), Err(Truncated("key")));
        let mut negative = Reader::new(&[0, 0, 0, 1, 0x80]);
        assert_eq!(negative.mpint("e"), Err(Truncated("e")));
    }
}
