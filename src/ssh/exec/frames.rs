//! The frames tether strips from stderr: the status marker the wrapper writes as its last act,
//! and the supervisor's tick and gone frames.

pub(super) const MARK: &[u8] = b"\x1etether-exit:";

/// Whether `tail` is the status marker or a beginning of it.
pub(super) fn could_be_marker(tail: &[u8]) -> bool {
    let frames = [crate::ssh::supervisor::TICK, crate::ssh::supervisor::GONE];
    if frames
        .iter()
        .any(|f| tail.len() < f.len() && f.starts_with(tail))
    {
        return true;
    }
    if tail.len() <= MARK.len() {
        return MARK.starts_with(tail);
    }
    let Some(rest) = tail.strip_prefix(MARK) else {
        return false;
    };
    let digits = rest.strip_suffix(b"\x1e").unwrap_or(rest);
    digits.iter().all(|b| b.is_ascii_digit() || *b == b'-')
}

/// Holds back the tail of stderr that may be the status marker, so it is never displayed;
/// removes the supervisor's frames ([`crate::ssh::supervisor::TICK`], and notes
/// [`crate::ssh::supervisor::GONE`]).
#[derive(Default)]
pub(super) struct StderrFilter {
    pub(super) held: Vec<u8>,
    /// A resume found the command's directory gone.
    pub(super) gone: bool,
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
    /// Returns the bytes that can safely be shown now.
    pub(super) fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(data);
        if self.held.contains(&0x1e) {
            strip_frame(&mut self.held, crate::ssh::supervisor::TICK);
            self.gone |= strip_frame(&mut self.held, crate::ssh::supervisor::GONE);
        }
        let window_start = self.held.len().saturating_sub(MARK.len() + 16);
        let keep_from = (window_start..self.held.len())
            .find(|&i| self.held[i] == 0x1e && could_be_marker(&self.held[i..]));
        match keep_from {
            Some(i) => {
                let shown = self.held[..i].to_vec();
                self.held.drain(..i);
                shown
            }
            None => std::mem::take(&mut self.held),
        }
    }

    /// At end of stream: the remaining bytes to show and the status from the marker, if the
    /// marker arrived.
    pub(super) fn finish(&mut self) -> (Vec<u8>, Option<i32>) {
        let held = std::mem::take(&mut self.held);
        if let Some(rest) = held.strip_prefix(MARK) {
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
        let mut f = StderrFilter::default();
        let mut shown = f.push(b"warn\n\x1etether-");
        shown.extend(f.push(b"exit:3"));
        shown.extend(f.push(b"\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(shown, b"warn\n");
        assert_eq!(code, Some(3));
    }

    #[test]
    fn filter_keeps_unrelated_record_separators() {
        let mut f = StderrFilter::default();
        let shown = f.push(b"a\x1eb");
        let (rest, code) = f.finish();
        assert_eq!([shown, rest].concat(), b"a\x1eb");
        assert_eq!(code, None);
    }

    #[test]
    fn missing_marker_means_no_status() {
        let mut f = StderrFilter::default();
        assert_eq!(f.push(b"partial"), b"partial");
        assert_eq!(f.finish(), (Vec::new(), None));
    }

    #[test]
    fn pty_output_marker_and_line_endings() {
        // With a PTY the marker comes in stdout, after `\r\n` line endings.
        let mut f = StderrFilter::default();
        let mut shown = f.push(b"tty\r\nerr\r\n\x1etether-ex");
        shown.extend(f.push(b"it:0\x1e"));
        let (rest, code) = f.finish();
        shown.extend(rest);
        assert_eq!(code, Some(0));
        assert_eq!(crlf_to_lf(&shown), b"tty\nerr\n");
        assert_eq!(crlf_to_lf(b"a\rb\r\n\r"), b"a\rb\n\r");
    }
}
