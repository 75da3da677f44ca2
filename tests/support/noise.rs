//! Bytes no compression shrinks, the same for a seed on every run: a transfer or an archive of
//! them takes the time its size says.

/// `len` bytes of xorshift64 from `seed` (not 0).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
