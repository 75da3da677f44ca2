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
//! same session ([`Refused`]), and a server without `AcceptEnv` costs one round trip per
//! name per session, not per command.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Instant;

use super::config::match_pattern;
use super::connect::{would_block, Connection, WaitError};

/// sshd's `session_env_req` refuses every variable once a channel holds more than this many,
/// whatever its name: a refusal past that says nothing about the name.
const SSHD_MAX_ENV: usize = 128;

/// libssh2's LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: the server answered no.
const CHANNEL_REQUEST_DENIED: i32 = -22;

/// A host's `SendEnv` patterns and `SetEnv` assignments as ssh obtained them (see
/// `config/resolve.rs`): `-PATTERN` removals applied, the first `SetEnv` line only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `SendEnv` patterns, in order (repeats kept: `ssh -G` prints them).
    pub send: Vec<String>,
    /// `SetEnv` words, `NAME=value` (the value may be empty), one per name.
    pub set: Vec<String>,
}

/// The environment requests of one channel, in the order ssh sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    vars: Vec<(String, String)>,
    term: Option<String>,
}

impl Environment {
    /// What to request for a command started now: the local environment as it is (ssh reads
    /// its own `environ`), then `SetEnv`. A variable whose name or value is not UTF-8 is left
    /// out: libssh2's binding takes text only.
    pub fn requests(&self) -> Requests {
        let mut vars = Vec::new();
        if !self.send.is_empty() {
            for (name, value) in std::env::vars_os() {
                let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                    continue;
                };
                if self.send.iter().any(|p| match_pattern(name, p)) {
                    vars.push((name.to_string(), value.to_string()));
                }
            }
        }
        for word in &self.set {
            // Checked when the config was read: every word has a `=`.
            if let Some((name, value)) = word.split_once('=') {
                vars.push((name.to_string(), value.to_string()));
            }
        }
        let term = self
            .set
            .iter()
            .find_map(|w| w.strip_prefix("TERM="))
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Requests { vars, term }
    }
}

impl Requests {
    /// `SetEnv`'s `TERM`: ssh asks for a terminal of that type instead of its own `$TERM`.
    pub fn term(&self) -> Option<&str> {
        self.term.as_deref()
    }
}

/// The names a session's server refused (see the module doc).
#[derive(Debug, Default)]
pub struct Refused(RefCell<HashSet<String>>);

/// Sends `requests` on `channel` (opened, no command yet) of `conn`, at most until `until`. A
/// refusal is the server's to make and not an error; Err is a failed session.
pub fn send(
    conn: &Connection,
    channel: &mut ssh2::Channel,
    requests: &Requests,
    until: Instant,
) -> Result<(), WaitError> {
    let mut accepted = 0;
    for (name, value) in &requests.vars {
        if conn.refused_env.0.borrow().contains(name) {
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
                        conn.refused_env.0.borrow_mut().insert(name.clone());
                    }
                    break;
                }
                Err(e) => return Err(WaitError::Failed(super::wording::plain_on(&e, conn.fd()))),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_ssh_order_and_set_env_term() {
        std::env::set_var("TETHER_ENV_UNIT_A", "a");
        std::env::set_var("TETHER_ENV_UNIT_B", "b");
        let env = Environment {
            send: vec!["TETHER_ENV_UNIT_?".into()],
            set: vec![
                "TETHER_ENV_UNIT_A=set".into(),
                "TERM=".into(),
                "E=x=y".into(),
            ],
        };
        let r = env.requests();
        let mine: Vec<_> = r
            .vars
            .iter()
            .filter(|(n, _)| n.starts_with("TETHER_ENV_UNIT") || n == "TERM" || n == "E")
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        // The environment's order first (std keeps environ's), then SetEnv, which wins.
        let sent_a = mine
            .iter()
            .position(|v| v == "TETHER_ENV_UNIT_A=a")
            .unwrap();
        let set_a = mine
            .iter()
            .position(|v| v == "TETHER_ENV_UNIT_A=set")
            .unwrap();
        assert!(sent_a < set_a, "{mine:?}");
        assert!(mine.contains(&"TETHER_ENV_UNIT_B=b".to_string()));
        assert_eq!(&mine[mine.len() - 2..], ["TERM=", "E=x=y"]);
        // An empty TERM names no terminal type (ssh then takes its own).
        assert_eq!(r.term(), None);
        let env = Environment {
            send: Vec::new(),
            set: vec!["TERM=vt100".into()],
        };
        assert_eq!(env.requests().term(), Some("vt100"));
        assert_eq!(Environment::default().requests(), Requests::default());
    }
}
