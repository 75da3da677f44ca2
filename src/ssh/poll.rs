//! `poll(2)` on raw descriptors, for the owner threads, the banner wait and config files that
//! are pipes: the lowest layer, importing nothing of tether's.

use std::time::Duration;

/// Waits until `fds` are ready (or `timeout` passes); returns which were ready.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<()> {
    // Rounded up: a timeout that truncates to 0 ms would make a deadline loop spin.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for the whole call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}
