//! Stopping a command that runs on a pseudo-terminal, which has no supervisor: its process
//! group is signalled from a second channel, as a supervised command's is.
//!
//! sshd makes the login shell of a PTY session the leader of a new session and process group,
//! and the login shell `exec`s the exec's sh (see `wrap.rs`), which runs the command in a
//! subshell of that same group (a shell without job control makes no group of its own). The
//! exec's sh says its pid in a frame before its start marker ([`frame_start`]) when it leads its
//! group, and catches SIGTERM (a no-op trap, reset to the default in the subshell): it outlives
//! the stop's SIGTERM, so that the command gets its grace period, instead of dying at once and,
//! as the terminal's controlling process, having the kernel send the command SIGHUP. Where no
//! frame came (the stop came before the start marker), closing the channel hangs up the
//! terminal, as before.

use super::frames::Key;

/// The sh that says the exec's sh's process group (its pid, when it leads the group: read from
/// `/proc`, else from `ps`) in a frame on stdout, and traps SIGTERM; part of the PTY boot script
/// (see [`frame_start`]). Leaves `$_tether_g` and `$_tether_v` set, for the boot script to unset.
pub(super) const ANNOUNCE: &str = r#"_tether_g=; [ -r /proc/$$/stat ] && read -r _tether_v _tether_v _tether_v _tether_v _tether_g _tether_v </proc/$$/stat; [ -n "$_tether_g" ] || { _tether_g=$(ps -o pgid= -p $$ 2>/dev/null); _tether_g=${_tether_g##* }; }; [ "$_tether_g" = $$ ] && printf "\036tether-pg:%s:%s\036" "$_tether_key" $$; trap : TERM;"#;

/// The start of the frame [`ANNOUNCE`] writes for the command with frame key `key`: the
/// process group follows, then `\x1e`.
pub(super) fn frame_start(key: &Key) -> Vec<u8> {
    format!("\x1etether-pg:{}:", key.as_str()).into_bytes()
}

/// The process group in `preamble` (what came before the start marker on a PTY's stdout), when
/// the exec's sh with frame key `key` said it: the frame's byte range, to cut it out, and the
/// group (digits only).
pub(super) fn group(preamble: &[u8], key: &Key) -> Option<(std::ops::Range<usize>, String)> {
    let start = frame_start(key);
    let from = preamble
        .windows(start.len())
        .position(|w| w == start.as_slice())?;
    let text = from + start.len();
    let end = text + preamble[text..].iter().position(|&b| b == 0x1e)?;
    let pgid = std::str::from_utf8(&preamble[text..end]).ok()?;
    (!pgid.is_empty() && pgid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (from..end + 1, pgid.to_string()))
}

/// The exec's sh that stops process group `$1`: SIGTERM (and SIGCONT, so that a stopped
/// process of it gets it, as systemd sends them), then SIGKILL once `$2` seconds have
/// passed with the group still there; prints `TERM`, `KILL` or `gone` (no such group: the
/// command had ended), or `others:N:UID` for processes of another user it could not stop
/// (`supervisor::OTHERS`), as `supervisor::stop` does. `$3` is a supervised command's id or a
/// PTY command's frame key, which its exec's sh has among its arguments: a group whose leader
/// runs and whose command line in `/proc` lacks it is another's (the command ended and its pid
/// went to another process): `gone`, nothing signalled. A group whose leader is gone (a PTY's
/// exec's sh hung up with its terminal; a zombie's command line is empty) is signalled: what
/// is left of it is the command's (a `trap '' HUP` that outlived its terminal). A group whose
/// every process is a zombie (read in `/proc`, where it can be) runs nothing: `gone`, and it
/// is gone for the wait after the SIGTERM once only zombies are left (stop 68 tester t119: a
/// PTY command that ended as its connection died, only its unreaped sh left, was said "sent
/// SIGTERM and ended"). `start` prints the start markers.
pub(super) fn script(start: &str) -> String {
    let others = crate::ssh::supervisor::OTHERS;
    let nap = crate::ssh::supervisor::NAP;
    format!(
        r#"_tether_p=$1; _tether_g=$2; _tether_c=$3; set --; {start} trap "" PIPE; {nap} _tether_live() {{ [ -r /proc/self/stat ] || return 0; for _tether_f in /proc/[0-9]*/stat; do _tether_v=; read -r _tether_v <"$_tether_f" 2>/dev/null || continue; _tether_v=${{_tether_v##*) }}; set -f; set -- $_tether_v; set +f; [ "$3" = "$_tether_p" ] && [ "$1" != Z ] && return 0; done; return 1; }}; _tether_r=TERM; _tether_l=; [ -n "$_tether_c" ] && read -r _tether_l </proc/"$_tether_p"/cmdline 2>/dev/null; if [ -n "$_tether_l" ] && ! grep -qF -e "$_tether_c" /proc/"$_tether_p"/cmdline 2>/dev/null; then _tether_r=gone; elif ! _tether_live; then _tether_r=gone; elif ! kill -TERM -"$_tether_p" 2>/dev/null; then _tether_r=gone; else kill -CONT -"$_tether_p" 2>/dev/null; fi; if [ $_tether_r = gone ]; then :; else _tether_i=0; while kill -0 -"$_tether_p" 2>/dev/null && _tether_live; do if [ $_tether_i -ge $((_tether_g*20)) ]; then kill -KILL -"$_tether_p" 2>/dev/null; _tether_r=KILL; break; fi; _tether_nap; _tether_i=$((_tether_i+1)); done; {others}; fi; echo "$_tether_r"; printf "\036tether-exit:%s:0\036" "$_tether_key" >&2"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_frame_is_read_only_with_its_key_and_digits() {
        let key = Key::fixed("k1");
        let mut preamble = b"motd\r\n".to_vec();
        preamble.extend(frame_start(&key));
        preamble.extend(b"4242\x1e");
        let (range, pgid) = group(&preamble, &key).expect("a frame");
        assert_eq!(pgid, "4242");
        assert_eq!(&preamble[..range.start], b"motd\r\n");
        assert_eq!(range.end, preamble.len());
        // Another command's key, or a frame that is not a number, is no group to signal.
        assert_eq!(group(&preamble, &Key::fixed("k2")), None);
        let mut forged = frame_start(&key);
        forged.extend(b"-1\x1e");
        assert_eq!(group(&forged, &key), None);
        let mut cut = frame_start(&key);
        cut.extend(b"42");
        assert_eq!(group(&cut, &key), None);
    }

    /// A stop signals a group only while its leader has the frame key among its arguments,
    /// as a PTY command's exec's sh (`/bin/sh -c SCRIPT sh KEY`) has: a group that took the
    /// number after the command ended is another's (a full test run, `pid_max` 32768: a PTY
    /// command was ended by SIGTERM 786 ms in, no stop of its own sent).
    #[test]
    fn a_group_whose_leader_lacks_the_key_is_not_signalled() {
        use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
        let frame_key = "a1b2c3d4e5f6a7b8";
        let stop = |pgid: u32| {
            let script = super::super::wrap::wrap_script(
                &script(&super::super::wrap::start_markers()),
                &Key::fixed("K"),
                &[&pgid.to_string(), "1", frame_key],
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let group = |args: &[&str]| {
            std::process::Command::new("/bin/sh")
                .args(args)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut another = group(&["-c", "sleep 30; :", "sh", "another"]);
        // spawn() returns once the exec began, while /proc may still show no command line (as
        // for a leader gone): the stop would signal it (3 of 4 full unit runs failed so).
        let cmdline = format!("/proc/{}/cmdline", another.id());
        while !std::fs::read(&cmdline).is_ok_and(|l| l.ends_with(b"another\0")) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let said = stop(another.id());
        assert!(said.ends_with("gone\n"), "{said:?}");
        assert!(
            another.try_wait().unwrap().is_none(),
            "another's group signalled"
        );
        another.kill().unwrap();
        another.wait().unwrap();
        // The leader gone (a PTY's exec's sh, hung up with its terminal), a process of its
        // group left: the command's, signalled.
        let mut left = group(&["-c", "sleep 30 & exit 0", "sh", "hung-up"]);
        let pgid = left.id();
        left.wait().unwrap();
        let said = stop(pgid);
        assert!(
            said.ends_with("TERM\n") || said.ends_with("KILL\n"),
            "{said:?}"
        );
        // Only its leader left, a zombie not reaped yet (a PTY command that ended as its
        // connection died, sshd slow to reap it): nothing runs, nothing is signalled (tester
        // t119: "sent SIGTERM and ended"; it waited for the zombie, then said SIGKILL).
        let mut zombie = group(&["-c", "exit 0", "sh", frame_key]);
        let stat = format!("/proc/{}/stat", zombie.id());
        while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z ")) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let said = stop(zombie.id());
        assert!(said.ends_with("gone\n"), "{said:?}");
        zombie.wait().unwrap();
        let mut own = group(&["-c", "sleep 30; :", "sh", frame_key]);
        let pgid = own.id();
        // Reaped as it ends, as sshd reaps its session's shell. (Its `sleep`, left to init
        // here, may keep the group there until the SIGKILL.)
        let ended = std::thread::spawn(move || own.wait().unwrap());
        let said = stop(pgid);
        assert!(
            said.ends_with("TERM\n") || said.ends_with("KILL\n"),
            "{said:?}"
        );
        assert_eq!(ended.join().unwrap().signal(), Some(libc::SIGTERM));
    }
}
