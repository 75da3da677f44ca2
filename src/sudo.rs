//! sudo as `as_user` runs it: why sudo refused a command, what to do about it, and the hosts
//! where it refused the sudo password.
//!
//! [`refusal`] is the one place where tether reads a remote program's words: sudo reports its
//! refusals only as text on stderr (a terminal's merged output under a PTY) and with exit
//! status 1, which the command could return too.
//!
//! A password sudo refused is never offered again to that host by this process: each wrong
//! attempt counts toward an account lock (`pam_faillock` denies at 3 by default), and the
//! password cannot change while tether runs. (The askpass helper that
//! [`crate::command::CommandContext::render`] writes answers only sudo's first prompt, so one
//! command makes at most one attempt.)

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::secret::SUDO_PASSWORD_ENV;

/// Why sudo refused to run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It wants a password and none was given (`sudo -n`).
    PasswordWanted,
    /// It refused the password given.
    PasswordRefused,
    /// The sudoers policy requires a terminal (`Defaults requiretty`).
    TerminalRequired,
    /// The deploy user may not run commands as that user.
    NotAllowed,
    /// Another refusal in sudo's own words (`sudo: unknown user x`, a plugin's error): the
    /// first line of the output starts with `sudo: `, sudo's prefix for what it says itself.
    Other,
}

/// Which refusal sudo's output shows, if any: its stderr, or its merged output (`stdout`)
/// when the command ran on a terminal and `stderr` is empty.
pub fn refusal(stdout: &[u8], stderr: &[u8]) -> Option<Refusal> {
    let text = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
    let says = |s: &str| text.contains(s);
    if says("you must have a tty to run sudo") || says("sorry, you must have a tty") {
        Some(Refusal::TerminalRequired)
    } else if says("incorrect password attempt") || says("Sorry, try again") {
        Some(Refusal::PasswordRefused)
    } else if says("a password is required") || says("a terminal is required") {
        Some(Refusal::PasswordWanted)
    } else if says("is not in the sudoers file") || says("is not allowed to") {
        Some(Refusal::NotAllowed)
    } else if text.trim_start().starts_with("sudo: ") {
        Some(Refusal::Other)
    } else {
        None
    }
}

impl Refusal {
    /// What to do about it, for commands run as `user`.
    pub fn hint(self, user: &str) -> String {
        match self {
            Refusal::PasswordWanted => format!(
                "sudo wants a password to run commands as `{user}` (as_user runs `sudo -n`, \
                 which never prompts): set {SUDO_PASSWORD_ENV}{}, or pass --ask-sudo-password \
                 on a terminal, or allow the deploy user NOPASSWD in sudoers for these commands",
                // Set but empty counts as unset (tester t128: told to set it, which it was).
                match std::env::var_os(SUDO_PASSWORD_ENV).is_some_and(|v| v.is_empty()) {
                    true => " (it is set but empty here, which counts as unset)",
                    false => "",
                }
            ),
            Refusal::PasswordRefused => format!(
                "sudo refused the password given for `{user}` ({SUDO_PASSWORD_ENV} or \
                 --ask-sudo-password): it is not the deploy user's password on this host. \
                 tether offered it once and will not offer it to this host again in this run \
                 (each wrong attempt counts toward an account lock)"
            ),
            Refusal::TerminalRequired => format!(
                "sudo on this host runs commands (as `{user}`) only from a terminal (`Defaults \
                 requiretty` in sudoers): run with --pty, or give the step a terminal with \
                 on(target, #{{ pty: true }}, ...) (the sudo password is then typed with the \
                 terminal's echo off), or drop requiretty for the deploy user"
            ),
            Refusal::NotAllowed => format!(
                "the deploy user may not run commands as `{user}` through sudo on this host"
            ),
            // sudo -u reads an all-digit name as a user name, the uid as `#N` (stop 42 tester
            // t45: `as_user(1004, ..)` said only "see what sudo said").
            Refusal::Other if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) => {
                format!(
                    "sudo did not run it as `{user}`: see what sudo said (sudo -u reads                      `{user}` as a user name; the user of id {user} is `#{user}`)"
                )
            }
            Refusal::Other => format!("sudo did not run it as `{user}`: see what sudo said"),
        }
    }
}

/// Hosts where sudo refused the sudo password in this process.
static REFUSED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Remembers that sudo on `host` refused the password.
pub fn note_refused(host: &str) {
    REFUSED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(host.to_string());
}

/// Whether sudo on `host` refused the password earlier in this process.
pub fn refused_before(host: &str) -> bool {
    REFUSED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(host)
}

/// The failure of a command not sent to `host` because sudo there refused the password
/// before.
pub fn not_offered_again(host: &str, user: &str) -> crate::host_text::HostText {
    crate::host_text::HostText::new()
        .host(host)
        .text(&format!(": as_user(\"{user}\") not run: sudo on "))
        .host(host)
        .text(&format!(
            " refused the sudo password earlier in this run, and tether does not offer it \
             again (each wrong attempt counts toward an account lock); run again with the \
             right {SUDO_PASSWORD_ENV}"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudos_refusals_and_their_hints() {
        let err = |s: &str| refusal(b"", s.as_bytes());
        assert_eq!(
            err("sudo: a password is required\n"),
            Some(Refusal::PasswordWanted)
        );
        assert_eq!(
            err("Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n"),
            Some(Refusal::PasswordRefused)
        );
        assert_eq!(
            err("sudo: sorry, you must have a tty to run sudo\n"),
            Some(Refusal::TerminalRequired)
        );
        assert_eq!(
            err("alice is not in the sudoers file.  This incident will be reported.\n"),
            Some(Refusal::NotAllowed)
        );
        assert_eq!(err("boom\n"), None);
        // Under a PTY sudo's words arrive in the merged output.
        assert_eq!(
            refusal(b"sudo: 1 incorrect password attempt\r\n", b""),
            Some(Refusal::PasswordRefused)
        );
        assert_eq!(refusal(b"incorrect password attempt", b"other"), None);
        assert_eq!(
            err("sudo: unknown user x\nsudo: error initializing audit plugin sudoers_audit\n"),
            Some(Refusal::Other)
        );
        assert_eq!(
            refusal(b"sudo: unknown user x\r\n", b""),
            Some(Refusal::Other)
        );
        // The command's own words, even naming sudo, are not sudo's.
        assert_eq!(err("grep: sudo: no such file\n"), None);
        assert_eq!(err("out\nsudo: x\n"), None);
        assert!(Refusal::PasswordWanted
            .hint("root")
            .contains("TETHER_SUDO_PASSWORD"));
        assert!(Refusal::TerminalRequired.hint("root").contains("--pty"));
        // An all-digit name is a name to sudo -u: the hint says how to give the uid.
        assert!(Refusal::Other.hint("1004").contains("`#1004`"));
        assert!(!Refusal::Other.hint("app").contains('#'));
        assert!(!refused_before("sudo-test-host"));
        note_refused("sudo-test-host");
        assert!(refused_before("sudo-test-host"));
    }
}
