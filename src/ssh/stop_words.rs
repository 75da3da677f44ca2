//! The words a person runs, by hand, to stop a command tether left running on a host and
//! remove its files: printed where tether could not stop it itself (see `ssh::worker`), they
//! stop it as tether's own stop does (see [`supervisor::stop`](crate::ssh::supervisor::stop)).

use crate::ssh::supervisor::STOP_GRACE;

/// The sh script that stops the supervised command `id` by hand and removes its files: its
/// process group read from its files (`ID.p`), stopped as tether stops it (see
/// [`by_hand_stop`]).
pub fn stop_by_id(id: &str) -> String {
    format!(
        r#"d=${{TMPDIR:-/tmp}}/tether-${{LOGNAME:-$USER}}/{id}; p=$(cat "$d.p" 2>/dev/null) && {}; rm -rf "$d".*"#,
        by_hand_stop("$p", r#""$d.t""#, r#""$d.s""#)
    )
}

/// The sh script that stops process group `pgid` by hand and removes the files of `spool`
/// (see [`Placement`](crate::ssh::supervisor::Placement)).
pub fn stop_by_group(pgid: &str, spool: &str) -> String {
    format!(
        "{}; rm -rf {}.*",
        by_hand_stop(
            pgid,
            &crate::command::quote(&format!("{spool}.t")),
            &crate::command::quote(&format!("{spool}.s"))
        ),
        crate::command::quote(spool)
    )
}

/// Stops process group `pgid` as [`stop`](crate::ssh::supervisor::stop) does: SIGTERM, then SIGKILL
/// once [`STOP_GRACE`] has passed with any of it left (a command that ignores SIGTERM must not
/// outlive the words that removed its files); silent when it had ended already. Where the file
/// `sent` (a shell word: the command's `ID.t`) says a stop's SIGTERM was sent already, it sends
/// none, as [`stop`](crate::ssh::supervisor::stop) run again does (stop 48 tester t67: pasted while
/// the command's clean-up ran, the words cut it short with a second SIGTERM). Where the file
/// `status` (the command's `ID.s`) holds its status, the command has ended and nothing is
/// signalled: words given long ago must not reach another group that came to have its number (stop
/// 51 tester t78). `kill -TERM -PGID`, not `kill -TERM -- -PGID`: dash's `kill` (Debian's /bin/sh)
/// takes `--` for a number; whole seconds, as POSIX `sleep` takes.
fn by_hand_stop(pgid: &str, sent: &str, status: &str) -> String {
    format!(
        "[ -s {status} ] || {{ {{ [ -e {sent} ] || kill -TERM -{pgid} 2>/dev/null; }} && {}; }}",
        kill_after_grace(pgid)
    )
}

/// The sh script that stops a PTY command's process group `pgid` by hand (it has no files):
/// SIGTERM, then SIGKILL once [`STOP_GRACE`] has passed with any of it left, as tether's own
/// stop of it does (see `exec::stop_pty_group`); silent, and successful, where it had ended
/// already.
pub fn stop_pty_by_hand(pgid: &str) -> String {
    format!(
        "kill -TERM -{pgid} 2>/dev/null && {}; true",
        kill_after_grace(pgid)
    )
}

/// SIGCONT to process group `pgid` (a stopped process of it gets the SIGTERM sent before, as
/// in tether's own stop: stop 59 tester t95, the words printed for a frozen command ended it
/// only by the SIGKILL), then SIGKILL to what is left of it once [`STOP_GRACE`] has passed, in
/// whole seconds.
fn kill_after_grace(pgid: &str) -> String {
    format!(
        "{{ kill -CONT -{pgid} 2>/dev/null; i=0; while kill -0 -{pgid} 2>/dev/null; do if [ $i -ge {grace} ]; then kill -KILL -{pgid} 2>/dev/null; break; fi; sleep 1; i=$((i+1)); done; }}",
        grace = STOP_GRACE.as_secs()
    )
}

/// The words a person runs to do `script` (POSIX sh) on a host reached by `ssh` (ssh's words: see
/// `HostConfig::ssh_command`): the login shell there may be csh, tcsh or fish, which read
/// `${VAR:-x}`, `$(...)` and `kill -- -PGID` otherwise, so the script runs under `/bin/sh`, quoted
/// once for the login shell (single quotes, which all of them read alike when the script holds no
/// `'` or `!`) and once for the person's own shell; its programs found in
/// [`crate::command::SYSTEM_PATH`] first, as tether's own scripts find them (stop 61 tester t99: a
/// `~/bin/cat` first in the login shell's PATH made the printed words read no process group and
/// stop nothing, saying little).
pub fn by_hand(ssh: &str, script: &str) -> String {
    let script = format!("{}{script}", crate::command::system_programs_first());
    let remote = format!("exec /bin/sh -c {}", crate::command::quote(&script));
    format!("{ssh} {}", crate::command::quote(&remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words that stop a command by hand signal nothing once its status is written: the
    /// command ended, and its group's number may be another's by now (stop 51 tester t78).
    #[test]
    fn the_words_that_stop_by_hand_leave_a_group_alone_once_the_status_is_written() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("1a-2b-0");
        std::fs::write(spool.with_extension("s"), "0\n").unwrap();
        let mut group = Command::new("setsid")
            .args(["sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let words = stop_by_group(&group.id().to_string(), &spool.display().to_string());
        assert!(Command::new("sh")
            .args(["-c", &words])
            .status()
            .unwrap()
            .success());
        assert!(group.try_wait().unwrap().is_none(), "{words}");
        assert!(!spool.with_extension("s").exists(), "{words}");
        group.kill().unwrap();
        group.wait().unwrap();
    }

    /// A process group of its own (`setsid`) looping in sh, that appends `TERM` to `terms` on
    /// SIGTERM and then runs `then` (`; exit 3`: it ends), given 0.2 s to set its trap.
    fn looping_group(terms: &std::path::Path, then: &str) -> std::process::Child {
        let group = std::process::Command::new("setsid")
            .args(["sh", "-c"])
            .arg(format!(
                "trap 'echo TERM >> {}{then}' TERM; while :; do sleep 0.1; done",
                terms.display()
            ))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        group
    }

    /// The words that stop a command by hand send no second SIGTERM where its stop's mark
    /// (`ID.t`) says one was sent, and SIGKILL what is left after the grace period; without
    /// the mark they send SIGTERM, once. Run here under sh, on a process group of its own.
    #[test]
    fn the_words_that_stop_by_hand_send_sigterm_once() {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("1a-2b-0");
        let terms = dir.path().join("terms");
        for marked in [true, false] {
            let _ = std::fs::remove_file(&terms);
            let mut group = looping_group(&terms, "");
            if marked {
                std::fs::write(spool.with_extension("t"), "1").unwrap();
            }
            let words = stop_by_group(&group.id().to_string(), &spool.display().to_string());
            let started = std::time::Instant::now();
            assert!(Command::new("sh")
                .args(["-c", &words])
                .status()
                .unwrap()
                .success());
            let status = group.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9),
                "{words}"
            );
            assert!(started.elapsed() >= STOP_GRACE, "{words}");
            let sent = std::fs::read_to_string(&terms).unwrap_or_default();
            assert_eq!(sent, if marked { "" } else { "TERM\n" }, "{words}");
            assert!(!spool.with_extension("t").exists());
        }
    }

    /// A stopped (`kill -STOP`) group gets the SIGTERM of the words too: SIGCONT follows it
    /// (stop 59 tester t95: it ended only by the SIGKILL, its trap never run).
    #[test]
    fn the_words_that_stop_by_hand_reach_a_stopped_group() {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let terms = dir.path().join("terms");
        let mut group = looping_group(&terms, "; exit 3");
        let pgid = group.id().to_string();
        assert!(Command::new("kill")
            .args(["-s", "STOP", "--", &format!("-{pgid}")])
            .status()
            .unwrap()
            .success());
        let words = stop_pty_by_hand(&pgid);
        assert!(Command::new("sh")
            .args(["-c", &words])
            .status()
            .unwrap()
            .success());
        assert_eq!(group.wait().unwrap().code(), Some(3), "{words}");
        assert_eq!(std::fs::read_to_string(&terms).unwrap(), "TERM\n");
    }
}
