//! The reason a server gave when it closed the connection (`SSH_MSG_DISCONNECT`, RFC 4253
//! section 11.1), such as sshd's "Too many authentication failures" once `MaxAuthTries` keys
//! were refused. libssh2 hands the message only to a `LIBSSH2_CALLBACK_DISCONNECT` callback,
//! which the ssh2 crate does not expose: [`Watch`] registers one through the C API for the
//! part of a session's life it covers (authentication) and keeps what it receives.
//!
//! The message is shown to the user as the server's words; tether branches on the libssh2
//! error code (the connection was closed), never on the text.

use std::os::raw::{c_char, c_int, c_void};
use std::sync::Mutex;

use libssh2_sys as raw;
use ssh2::Session;

use super::callback::{self, raw_session};

/// Disconnect messages received, by session address, until their [`Watch`] takes them.
static RECEIVED: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

/// Called by libssh2 (inside a call on the session's owner thread) when the server sends
/// `SSH_MSG_DISCONNECT`. It must not call libssh2.
unsafe extern "C" fn on_disconnect(
    session: *mut raw::LIBSSH2_SESSION,
    _reason: c_int,
    message: *const c_char,
    message_len: c_int,
    _language: *const c_char,
    _language_len: c_int,
    _abstract: *mut *mut c_void,
) {
    let text = if message.is_null() || message_len <= 0 {
        String::new()
    } else {
        // SAFETY: libssh2 passes a pointer into the received packet and its length, valid for
        // the duration of this call.
        let bytes =
            unsafe { std::slice::from_raw_parts(message as *const u8, message_len as usize) };
        String::from_utf8_lossy(bytes).into_owned()
    };
    RECEIVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((session as usize, text));
}

/// Records the server's disconnect message for one session while it lives.
pub struct Watch<'a> {
    session: &'a Session,
}

impl<'a> Watch<'a> {
    /// Starts recording for `session` (on its owner thread).
    pub fn start(session: &'a Session) -> Watch<'a> {
        let raw = raw_session(session);
        type Callback = unsafe extern "C" fn(
            *mut raw::LIBSSH2_SESSION,
            c_int,
            *const c_char,
            c_int,
            *const c_char,
            c_int,
            *mut *mut c_void,
        );
        let cb: Callback = on_disconnect;
        // SAFETY: the session is alive and used by this thread only; the callback has the
        // signature LIBSSH2_DISCONNECT_FUNC expects, and libssh2 calls it through the generic
        // pointer type it is stored as.
        unsafe {
            callback::set(
                raw,
                callback::DISCONNECT,
                Some(std::mem::transmute::<Callback, callback::Generic>(cb)),
            );
        }
        Watch { session }
    }

    /// The message of the server's disconnect, if one arrived (`""` when it gave none).
    pub fn message(&self) -> Option<String> {
        let me = raw_session(self.session) as usize;
        let received = RECEIVED.lock().unwrap_or_else(|p| p.into_inner());
        received
            .iter()
            .rev()
            .find(|(s, _)| *s == me)
            .map(|(_, m)| m.clone())
    }
}

impl Drop for Watch<'_> {
    /// Unregisters the callback and forgets this session's messages.
    fn drop(&mut self) {
        let raw = raw_session(self.session);
        // SAFETY: the session is borrowed, so alive, and used by this thread only; None
        // restores libssh2's default (no callback).
        unsafe {
            callback::set(raw, callback::DISCONNECT, None);
        }
        let me = raw as usize;
        RECEIVED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, _)| *s != me);
    }
}
