//! `SetEnv` and `SendEnv`: the environment requests ssh sends on a session channel before its
//! command (clientloop.c `client_session2_setup`): first every variable of the local
//! environment, in its order, whose name matches a `SendEnv` pattern, then the `SetEnv`
//! pairs. The server applies those its `AcceptEnv` allows, in the order received, so a name
//! in both ends up with its `SetEnv` value; it ignores the others, and the command runs
//! either way.
//!
//! ssh sends them without asking for a reply. libssh2 always asks and waits, one round trip
//! per variable and channel; sshd decides by the name alone (and for none once a channel
//! holds more than [`SSHD_MAX_ENV`]), so a name it refused once is not sent again on the
//! same session (`Connection::refused_env`), and a server without `AcceptEnv` costs one round trip per
//! name per session, not per command.

use std::time::Instant;

use super::config::Requests;
use super::connection::{would_block, Connection, WaitError};

/// sshd's `session_env_req` refuses every variable once a channel holds more than this many,
/// whatever its name: a refusal past that says nothing about the name.
const SSHD_MAX_ENV: usize = 128;

/// libssh2's LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: the server answered no.
const CHANNEL_REQUEST_DENIED: i32 = -22;

/// Sends `requests` on `channel` (opened, no command yet) of `conn`, at most until `until`. A
/// refusal is the server's to make and not an error; Err is a failed session.
pub fn send(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    requests: &Requests,
    until: Instant,
) -> Result<(), WaitError> {
    let mut accepted = 0;
    for (name, value) in requests.vars() {
        if conn.refused_env.borrow().contains(name) {
            continue;
        }
        loop {
            match channel.setenv(name, value) {
                Ok(()) => {
                    accepted += 1;
                    break;
                }
                Err(e) if would_block(&e) => conn.wait_socket(until)?,
                Err(e) if e.code() == ssh2::ErrorCode::Session(CHANNEL_REQUEST_DENIED) => {
                    if accepted <= SSHD_MAX_ENV {
                        conn.refused_env.borrow_mut().insert(name.clone());
                    }
                    break;
                }
                Err(e) => return Err(WaitError::Failed(conn.plain(&e))),
            }
        }
    }
    Ok(())
}
