//! The frames tether strips from stderr: the status marker the wrapper writes as its last act,
//! and the supervisor's tick and gone frames. Each carries the command's [`Key`], a random
//! word the command never sees in its environment: bytes a command prints are never taken for
//! a frame (a command that prints `\x1etether-tick\x1e`, or a status marker as its last
//! words, shows exactly that, and its status is its own).

use std::hash::{BuildHasher, Hasher};

/// A command's frame key: 16 hexadecimal digits, random per exec (from the standard library's
/// randomly seeded SipHash keys, mixed with a counter and the time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key(String);

impl Key {
    /// A new key, unlike any other of this process.
    pub(super) fn new() -> Key {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        Key(format!("{:016x}", h.finish()))
    }

    /// The key as the exec's sh gets it (one word of hexadecimal digits).
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// A key made earlier (by [`Key::new`]), kept as its word.
    pub(super) fn kept(word: String) -> Key {
        Key(word)
    }

    #[cfg(test)]
    pub(super) fn fixed(key: &str) -> Key {
        Key(key.to_string())
    }
}

/// Holds back the tail of stderr that may be the status marker, so it is never displayed;
/// removes the supervisor's tick frames ([`crate::ssh::supervisor::tick`]), and notes its gone
/// frame ([`crate::ssh::supervisor::gone`]): all of them with this command's key.
pub(super) struct StderrFilter {
    pub(super) held: Vec<u8>,
    /// A resume found the command's directory gone.
    pub(super) gone: bool,
    /// The streaming loop could not pass the command's output on (a host tool failed).
    pub(super) broken: bool,
    /// Bytes of stdout and stderr a resume skipped: the host had removed them from its spool
    /// (see `supervisor::spool`), from `\x1etether-lost:KEY:o:N\x1e` frames.
    pub(super) lost: [u64; 2],
    /// `\x1etether-exit:KEY:`, then the status and `\x1e`.
    mark: Vec<u8>,
    /// `\x1etether-lost:KEY:`, then `o` or `e`, `:`, the count and `\x1e`.
    lost_frame: Vec<u8>,
    tick: Vec<u8>,
    gone_frame: Vec<u8>,
    broken_frame: Vec<u8>,
}

/// Removes every whole `frame` from `data`; whether there was one.
pub(super) fn strip_frame(data: &mut Vec<u8>, frame: &[u8]) -> bool {
    let mut found = false;
    let mut from = 0;
    while let Some(i) = data[from..].windows(frame.len()).position(|w| w == frame) {
        data.drain(from + i..from + i + frame.len());
        from += i;
        found = true;
    }
    found
}

impl StderrFilter {
    /// The filter of the exec whose frames carry `key`.
    pub(super) fn new(key: &Key) -> Self {
        StderrFilter {
            held: Vec::new(),
            gone: false,
            broken: false,
            lost: [0, 0],
            lost_frame: format!("\x1etether-lost:{}:", key.as_str()).into_bytes(),
            mark: format!("\x1etether-exit:{}:", key.as_str()).into_bytes(),
            tick: crate::ssh::supervisor::tick(key.as_str()),
            gone_frame: crate::ssh::supervisor::gone(key.as_str()),
            broken_frame: crate::ssh::supervisor::broken(key.as_str()),
        }
    }

    /// Whether `tail` is a frame or the status marker, or a beginning of one.
    fn could_be_frame(&self, tail: &[u8]) -> bool {
        if [
            &self.tick,
            &self.gone_frame,
            &self.broken_frame,
            &self.lost_frame,
        ]
        .iter()
        .any(|f| tail.len() < f.len() && f.starts_with(tail))
        {
            return true;
        }
        if let Some(rest) = tail.strip_prefix(self.lost_frame.as_slice()) {
            // `o` or `e`, `:`, digits: the rest of a lost frame may still come.
            return match rest {
                [] => true,
                [b'o' | b'e'] => true,
                [b'o' | b'e', b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
                _ => false,
            };
        }
        if tail.len() <= self.mark.len() {
            return self.mark.starts_with(tail);
        }
        let Some(rest) = tail.strip_prefix(self.mark.as_slice()) else {
            return false;
        };
        let digits = rest.strip_suffix(b"\x1e").unwrap_or(rest);
        digits.iter().all(|b| b.is_ascii_digit() || *b == b'-')
    }

    /// Returns the bytes that can safely be shown now.
    pub(super) fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(data);
        if self.held.contains(&0x1e) {
            strip_frame(&mut self.held, &self.tick);
            self.gone |= strip_frame(&mut self.held, &self.gone_frame);
            self.broken |= strip_frame(&mut self.held, &self.broken_frame);
            self.take_lost();
        }
        let window_start = self.held.len().saturating_sub(self.mark.len() + 16);
        let keep_from = (window_start..self.held.len())
            .find(|&i| self.held[i] == 0x1e && self.could_be_frame(&self.held[i..]));
        match keep_from {
            Some(i) => {
                let shown = self.held[..i].to_vec();
                self.held.drain(..i);
                shown
            }
            None => std::mem::take(&mut self.held),
        }
    }

    /// Removes every whole lost frame from the held bytes, counting what it says.
    fn take_lost(&mut self) {
        let mut from = 0;
        while let Some(i) = self.held[from..]
            .windows(self.lost_frame.len())
            .position(|w| w == self.lost_frame.as_slice())
        {
            let at = from + i;
            let rest = &self.held[at + self.lost_frame.len()..];
            let stream = match rest.first() {
                Some(b'o') => 0,
                Some(b'e') => 1,
                _ => {
                    from = at + 1;
                    continue;
                }
            };
            let digits = rest.get(2..).unwrap_or_default();
            let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            let whole = rest.get(1) == Some(&b':') && count > 0 && digits.get(count) == Some(&0x1e);
            let n = std::str::from_utf8(&digits[..count])
                .ok()
                .and_then(|d| d.parse::<u64>().ok());
            match n.filter(|_| whole) {
                Some(n) => {
                    self.lost[stream] += n;
                    self.held
                        .drain(at..at + self.lost_frame.len() + 2 + count + 1);
                    from = at;
                }
                None => from = at + 1,
            }
        }
    }

    /// At end of stream: the remaining bytes to show and the status from the marker, if the
    /// marker arrived.
    pub(super) fn finish(&mut self) -> (Vec<u8>, Option<i32>) {
        let held = std::mem::take(&mut self.held);
        if let Some(rest) = held.strip_prefix(self.mark.as_slice()) {
            if let Some(code) = rest
                .strip_suffix(b"\x1e")
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse().ok())
            {
                return (Vec::new(), Some(code));
            }
        }
        (held, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::exec::incoming::crlf_to_lf;

    #[test]
    fn filter_strips_marker_split_across_reads() {
        let mut f = StderrFilter::new(&Key::fixed("K"));
        let mut shown = f.push(b"warn\n\x1etether-");
        shown.extend(f.push(b"exit:K:3"));
        shown.extend(f.push(b"\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(shown, b"warn\n");
        assert_eq!(code, Some(3));
    }

    #[test]
    fn filter_keeps_unrelated_record_separators() {
        let mut f = StderrFilter::new(&Key::fixed("K"));
        let shown = f.push(b"a\x1eb");
        let (rest, code) = f.finish();
        assert_eq!([shown, rest].concat(), b"a\x1eb");
        assert_eq!(code, None);
    }

    #[test]
    fn missing_marker_means_no_status() {
        let mut f = StderrFilter::new(&Key::fixed("K"));
        assert_eq!(f.push(b"partial"), b"partial");
        assert_eq!(f.finish(), (Vec::new(), None));
    }

    #[test]
    fn pty_output_marker_and_line_endings() {
        // With a PTY the marker comes in stdout, after `\r\n` line endings.
        let mut f = StderrFilter::new(&Key::fixed("K"));
        let mut shown = f.push(b"tty\r\nerr\r\n\x1etether-ex");
        shown.extend(f.push(b"it:K:0\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(code, Some(0));
        assert_eq!(crlf_to_lf(&shown), b"tty\nerr\n");
        assert_eq!(crlf_to_lf(b"a\rb\r\n\r"), b"a\rb\n\r");
    }

    #[test]
    fn frames_without_the_key_are_output() {
        let mut f = StderrFilter::new(&Key::fixed("K"));
        let fake =
            b"\x1etether-tick\x1e\x1etether-tick:L\x1e\x1etether-gone\x1e\x1etether-exit:L:0\x1e";
        let mut shown = f.push(fake);
        shown.extend(f.push(b"\x1etether-tick:K\x1e\x1etether-exit:0\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(shown, [&fake[..], b"\x1etether-exit:0\x1e"].concat());
        assert_eq!(code, None);
        assert!(!f.gone);
        assert_ne!(Key::new(), Key::new());
    }

    #[test]
    fn lost_frames_are_counted_and_stripped() {
        let mut f = StderrFilter::new(&Key::fixed("K"));
        let mut shown = f.push(b"a\x1etether-lost:K:o:12");
        shown.extend(f.push(b"\x1eb\x1etether-lost:K:e:3\x1e\x1etether-lost:L:o:5\x1e"));
        let (rest, _) = f.finish();
        shown.extend(rest);
        assert_eq!(shown, b"ab\x1etether-lost:L:o:5\x1e");
        assert_eq!(f.lost, [12, 3]);
    }
}
