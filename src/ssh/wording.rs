//! libssh2's failures in plain words. libssh2 reports `[Session(-43)] Unexpected error` when
//! the server closed the connection; a user needs to read "the server closed the connection".
//! Codes are libssh2's `LIBSSH2_ERROR_*` (libssh2.h); a code not listed keeps libssh2's own
//! message, without the bracketed code.

use std::os::fd::RawFd;

use ssh2::ErrorCode;

use super::socket_end::{self, Ending};

/// `e` in plain words.
pub fn plain(e: &ssh2::Error) -> String {
    let words = match e.code() {
        ErrorCode::Session(code) => match code {
            -2 => "the server sent no SSH banner",
            -5 | -8 => "the key exchange with the server failed (no algorithms in common?)",
            -7 => "the connection is broken: sending to the server failed",
            -9 | -30 => "timed out waiting for the server",
            -13 => "the connection was closed",
            -14 => "the server broke the SSH protocol",
            -18 => "the server refused the authentication",
            -21 => "the server refused to open a channel",
            -22 | -32 => "the server refused the request",
            -26 => "the channel was already closed",
            -43 => "the server closed the connection",
            -44 | -12 => "encryption failed (the connection is no longer usable)",
            -51 => "an algorithm the server asked for is not supported here",
            _ => return e.message().to_string(),
        },
        ErrorCode::SFTP(_) => return e.message().to_string(),
    };
    words.to_string()
}

/// Whether `e` says only that the session's byte stream ended or broke (reading or writing
/// the socket failed, -43 and -7, or it ended, -13): what a connection carried by a tunnel
/// sees when the tunnel closes, whoever closed it.
pub fn stream_ended(e: &ssh2::Error) -> bool {
    matches!(e.code(), ErrorCode::Session(-43 | -7 | -13))
}

/// `e`, a failure of the session whose socket is `fd`, in plain words. Where libssh2 says
/// only that reading or writing the socket failed (-43, -7) or that it ended (-13), the
/// socket says how (see [`socket_end::ending`]): a reset, or the kernel giving up on a server
/// that acknowledges nothing (a blackhole: `TCP_USER_TIMEOUT`), also reads as an end of
/// stream, and is not the server closing the connection.
pub fn plain_on(e: &ssh2::Error, fd: RawFd) -> String {
    match (e.code(), socket_end::ending(fd)) {
        (ErrorCode::Session(-43 | -7 | -13), Some(end)) => end_words(end),
        _ => plain(e),
    }
}

fn end_words(end: Ending) -> String {
    match end {
        Ending::Closed => "the server closed the connection".into(),
        Ending::Reset => "the connection was reset".into(),
        Ending::TimedOut => {
            "timed out: the server acknowledged nothing (the network or the host is gone)".into()
        }
        Ending::Failed(errno) => format!(
            "the connection failed: {}",
            io_words(&std::io::Error::from_raw_os_error(errno))
        ),
    }
}

/// `e` as a clause: the kernel's words for an OS error (strerror) begun in lower case,
/// without the `(os error 113)` Rust adds (`no route to host`); another error's own words.
pub fn io_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    if e.raw_os_error().is_none() {
        return text;
    }
    let words = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.clone(),
    }
}

/// An I/O error from a channel stream of `session`, in plain words: ssh2 turns libssh2's
/// failure into an `io::Error` without its code, so the code is asked of the session.
pub fn plain_io(e: &std::io::Error, session: &ssh2::Session) -> String {
    match ssh2::Error::last_session_error(session) {
        Some(last) if matches!(last.code(), ErrorCode::Session(c) if c < 0 && c != -37) => {
            plain(&last)
        }
        _ => e.to_string(),
    }
}

/// [`plain_io`], told apart by the socket `fd` as [`plain_on`] does.
pub fn plain_io_on(e: &std::io::Error, session: &ssh2::Session, fd: RawFd) -> String {
    match ssh2::Error::last_session_error(session) {
        Some(last) if matches!(last.code(), ErrorCode::Session(c) if c < 0 && c != -37) => {
            plain_on(&last, fd)
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_codes_become_words() {
        let e = ssh2::Error::new(ErrorCode::Session(-43), "Unexpected error");
        assert_eq!(plain(&e), "the server closed the connection");
        let other = ssh2::Error::new(ErrorCode::Session(-46), "Unable to add a host");
        assert_eq!(plain(&other), "Unable to add a host");
        // A session with no failure of its own: the I/O error's own words.
        let session = ssh2::Session::new().expect("a libssh2 session");
        let io = std::io::Error::other("disk full");
        assert_eq!(plain_io(&io, &session), "disk full");
    }

    #[test]
    fn an_ending_by_another_error_says_the_kernels_words() {
        assert_eq!(
            end_words(Ending::Failed(libc::EHOSTUNREACH)),
            "the connection failed: no route to host"
        );
        assert_eq!(end_words(Ending::Reset), "the connection was reset");
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_words(&refused), "connection refused");
        assert_eq!(io_words(&std::io::Error::other("Odd")), "Odd");
    }
}
