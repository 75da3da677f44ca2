//! libssh2's session callbacks, which the ssh2 crate 0.9 does not expose: registered through
//! the C API (`libssh2_session_callback_set2`, libssh2 1.11 as `libssh2-sys` 0.3.4 bundles
//! it). A callback runs inside a libssh2 call on the session's owner thread and must not call
//! libssh2.

use std::os::raw::c_int;

use libssh2_sys as raw;
use ssh2::Session;

/// `LIBSSH2_CALLBACK_DISCONNECT` in libssh2.h.
pub const DISCONNECT: c_int = 2;
/// `LIBSSH2_CALLBACK_SEND` in libssh2.h.
pub const SEND: c_int = 5;
/// `LIBSSH2_CALLBACK_RECV` in libssh2.h.
pub const RECV: c_int = 6;
/// `LIBSSH2_CALLBACK_AUTHAGENT` in libssh2.h.
pub const AUTHAGENT: c_int = 7;

/// The type libssh2 stores every callback as; each kind is called with its own signature.
pub type Generic = unsafe extern "C" fn();

extern "C" {
    fn libssh2_session_callback_set2(
        session: *mut raw::LIBSSH2_SESSION,
        cbtype: c_int,
        callback: Option<Generic>,
    ) -> Option<Generic>;
}

/// The libssh2 session under `session`.
pub fn raw_session(session: &Session) -> *mut raw::LIBSSH2_SESSION {
    let mut guard = session.raw();
    &mut *guard as *mut raw::LIBSSH2_SESSION
}

/// Registers `callback` as `session`'s callback of kind `cbtype` (`None`: libssh2's default).
///
/// # Safety
/// `session` is alive and used by this thread only; `callback` has the signature libssh2.h
/// gives callbacks of that kind.
pub unsafe fn set(session: *mut raw::LIBSSH2_SESSION, cbtype: c_int, callback: Option<Generic>) {
    // SAFETY: as the caller promised.
    unsafe {
        libssh2_session_callback_set2(session, cbtype, callback);
    }
}
