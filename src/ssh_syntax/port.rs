//! Numbers and port numbers as ssh reads them.

/// OpenBSD `strtonum` (`strtoll` base 10 within `min..=max`): leading white space and one
/// sign are accepted (`+22`, `" 22"`, `-0`), nothing after the digits.
pub fn strtonum(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
    let n = if negative { -magnitude } else { magnitude };
    (min..=max).contains(&n).then_some(n)
}

/// misc.c `a2port`: 0-65535 (as [`strtonum`] reads it) or a service name from
/// `/etc/services`. Most callers refuse 0 (see [`port`]); a remote forwarding listens on it.
pub fn a2port(s: &str) -> Option<u16> {
    if let Some(n) = strtonum(s, 0, 65535) {
        return u16::try_from(n).ok();
    }
    let name = std::ffi::CString::new(s).ok()?;
    // SAFETY: both strings are valid C strings; the result is read at once, on the thread
    // that loads the config.
    let entry = unsafe { libc::getservbyname(name.as_ptr(), c"tcp".as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: a non-null servent from getservbyname.
    Some(u16::from_be(unsafe { (*entry).s_port } as u16))
}

/// A port to connect to (`Port`, a jump host's `:port`): [`a2port`] other than 0.
pub fn port(s: &str) -> Option<u16> {
    a2port(s).filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_strtonum_reads_them() {
        assert_eq!(strtonum("+23328", 0, 65535), Some(23328));
        assert_eq!(strtonum(" 23", 0, 65535), Some(23));
        assert_eq!(strtonum("-0", 0, 65535), Some(0));
        assert_eq!(strtonum("007", 0, 65535), Some(7));
        for bad in ["", "+", "0x10", "1 ", "99999", "-1", "+-1", "1e3"] {
            assert_eq!(strtonum(bad, 0, 65535), None, "{bad}");
        }
        assert_eq!(port("+23328"), Some(23328));
        assert_eq!(port("ssh"), Some(22));
        assert_eq!(port("-0"), None);
        assert_eq!(a2port("0"), Some(0));
    }
}
