//! Port numbers as ssh reads them.

/// misc.c `a2port`: 1-65535 or a service name from `/etc/services`.
pub fn port(s: &str) -> Option<u16> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u16>().ok().filter(|p| *p > 0);
    }
    let name = std::ffi::CString::new(s).ok()?;
    // SAFETY: both strings are valid C strings; the result is read at once, on the thread
    // that loads the config.
    let entry = unsafe { libc::getservbyname(name.as_ptr(), c"tcp".as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: a non-null servent from getservbyname.
    let p = u16::from_be(unsafe { (*entry).s_port } as u16);
    (p > 0).then_some(p)
}
