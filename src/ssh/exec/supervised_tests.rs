//! The supervisor's sh, as the exec wrapper sends it, run by real shells.

use std::time::Duration;

use super::frames::{Key, StderrFilter};
use super::incoming::direct_reason;
use super::preamble::StartFilter;
use super::wrap::{standby_line, start_markers, wrap_for, wrap_script, wrap_standby, MAX_WORD};

/// The frame key of these tests' execs.
fn key() -> Key {
    Key::fixed("K")
}

/// Runs `string` with `shell -c` in an empty HOME with `TMPDIR` set; stdout, stderr, code.
fn as_sshd_tmp(
    shell: &str,
    string: &str,
    stdin: &[u8],
    tmp: &std::path::Path,
) -> (Vec<u8>, Vec<u8>, Option<i32>) {
    use std::io::Write as _;
    let home = tempfile::tempdir().unwrap();
    use std::os::unix::process::CommandExt as _;
    // As sshd starts a session: in a process group of its own.
    let mut child = std::process::Command::new(shell)
        .process_group(0)
        .arg("-c")
        .arg(string)
        .env_clear()
        .env("HOME", home.path())
        .env("TMPDIR", tmp)
        .env("LOGNAME", "someone")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.stdout, out.stderr, out.status.code())
}

/// What tether makes of both streams: the command's stdout, stderr and the marker status.
fn read(stdout: &[u8], stderr: &[u8]) -> (String, String, Option<i32>, Vec<u8>) {
    let mut start = StartFilter::default();
    let mut out = start.push(stdout);
    out.extend(start.finish());
    let mut start = StartFilter::default();
    let mut status = StderrFilter::new(&key());
    let mut err = status.push(&start.push(stderr));
    let (rest, marker) = status.finish();
    err.extend(rest);
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        marker,
        start.preamble,
    )
}

#[test]
fn the_supervisor_runs_the_command_and_removes_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let command = "read -r l; echo \"[$l] $# $0\" {1..2}; echo warn >&2; printf tail; exit 3";
    for shell in ["/bin/sh", "/bin/bash"] {
        let wrapped = wrap_for(command, false, Some(("id1", 300)), &key());
        assert!(wrapped.split(' ').all(|w| w.len() <= MAX_WORD));
        let (stdout, stderr, code) = as_sshd_tmp(shell, &wrapped, b"in\n", tmp.path());
        let (out, err, marker, preamble) = read(&stdout, &stderr);
        assert_eq!(out, "[in] 0 bash 1 2\ntail", "{shell}");
        assert_eq!(err, "warn\n", "{shell}");
        assert_eq!((marker, code), (Some(3), Some(3)), "{shell}");
        assert!(direct_reason(&preamble, &key()).is_none(), "{shell}");
        // Kept until tether has read the result; the next command removes it.
        let dir = tmp.path().join("tether-someone/id1.o");
        assert!(dir.exists(), "{shell}");
        let next = wrap_for("true", false, Some(("id5 id1", 300)), &key());
        let (_, _, code) = as_sshd_tmp(shell, &next, b"", tmp.path());
        assert_eq!(code, Some(0));
        // A stop's result written after its connection was lost goes with the rest.
        let stop = tmp.path().join("tether-someone/id5.stop");
        std::fs::write(&stop, "TERM\n").unwrap();
        let clean = wrap_script(&crate::ssh::supervisor::clean(), &key(), &["1", "id5"]);
        as_sshd_tmp(shell, &clean, b"", tmp.path());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while dir.exists() || tmp.path().join("tether-someone/id5.o").exists() || stop.exists() {
            assert!(std::time::Instant::now() < deadline, "{shell}: not removed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A standby reads its command from the first line of its stdin and runs it as a command
/// given in its arguments runs (the rest of stdin is the command's, every kind of quote and a
/// newline come through); removes the directories it is told to; one whose stdin ends before
/// a whole line runs nothing and writes no file, under every login shell.
#[test]
fn a_standby_runs_the_command_of_its_first_line_and_nothing_without_one() {
    let command = "read -r l; printf '%s|' \"[$l] $# $0\" \"it's\" '$HOME' 'a\\b' `echo bt`\necho warn >&2; exit 3";
    for shell in [
        "/bin/sh",
        "/bin/bash",
        "/bin/dash",
        "/usr/bin/fish",
        "/bin/tcsh",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let wrapped = wrap_standby("sb1", &key());
        assert!(wrapped.split(' ').all(|w| w.len() <= MAX_WORD));
        let mut stdin = standby_line(command, &["old1".to_string()], 300);
        stdin.extend_from_slice(b"in\n");
        std::fs::create_dir_all(tmp.path().join("tether-someone")).unwrap();
        std::fs::write(tmp.path().join("tether-someone/old1.s"), "0\n").unwrap();
        let (stdout, stderr, code) = as_sshd_tmp(shell, &wrapped, &stdin, tmp.path());
        let (out, err, marker, preamble) = read(&stdout, &stderr);
        assert_eq!(out, "[in] 0 bash|it's|$HOME|a\\b|bt|", "{shell}");
        assert_eq!(err, "warn\n", "{shell}");
        assert_eq!((marker, code), (Some(3), Some(3)), "{shell}");
        assert!(direct_reason(&preamble, &key()).is_none(), "{shell}");
        assert!(tmp.path().join("tether-someone/sb1.o").exists(), "{shell}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while tmp.path().join("tether-someone/old1.s").exists() {
            assert!(std::time::Instant::now() < deadline, "{shell}: not removed");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Closed unused, or cut mid-line: nothing runs, nothing is claimed.
        for input in [&b""[..], b"300:touch ran"] {
            let wrapped = wrap_standby("sb2", &key());
            let (stdout, stderr, code) = as_sshd_tmp(shell, &wrapped, input, tmp.path());
            assert_eq!((stdout.as_slice(), code), (&b""[..], Some(0)), "{shell}");
            assert!(stderr.is_empty(), "{shell}: {stderr:?}");
            let left: Vec<_> = std::fs::read_dir(tmp.path().join("tether-someone"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with("sb2"))
                .collect();
            assert!(left.is_empty(), "{shell}: {left:?}");
        }
    }
}

/// A claim of tether's whose answer was lost with its connection wins again when it is run
/// again (it is not taken for the command's exec's claim, whose files would then be looked
/// for in vain), and the command's exec, starting late, runs nothing.
#[test]
fn a_claim_of_tethers_run_again_wins_again() {
    let tmp = tempfile::tempdir().unwrap();
    let claim = || {
        let wrapped = wrap_script(
            &crate::ssh::supervisor::claim(&start_markers()),
            &key(),
            &["id7", ""],
        );
        let (stdout, _, code) = as_sshd_tmp("/bin/sh", &wrapped, b"", tmp.path());
        assert_eq!(code, Some(0));
        read(&stdout, b"").0
    };
    assert_eq!(claim(), "won\n");
    assert_eq!(claim(), "won\n");
    let wrapped = wrap_for("echo ran", false, Some(("id7", 300)), &key());
    let (stdout, _, code) = as_sshd_tmp("/bin/sh", &wrapped, b"", tmp.path());
    assert_eq!((read(&stdout, b"").0.as_str(), code), ("", Some(125)));
    // The command's own exec claimed first: taken.
    let wrapped = wrap_for("echo ran", false, Some(("id8", 300)), &key());
    let (stdout, _, _) = as_sshd_tmp("/bin/sh", &wrapped, b"", tmp.path());
    assert_eq!(read(&stdout, b"").0, "ran\n");
    let wrapped = wrap_script(
        &crate::ssh::supervisor::claim(&start_markers()),
        &key(),
        &["id8", ""],
    );
    let (stdout, _, _) = as_sshd_tmp("/bin/sh", &wrapped, b"", tmp.path());
    assert_eq!(read(&stdout, b"").0, "taken\n");
}

#[test]
fn the_supervisor_falls_back_when_its_directory_is_not_private() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a directory: the command runs directly and the reason is said.
    std::fs::write(tmp.path().join("tether-someone"), "").unwrap();
    let wrapped = wrap_for("echo hi", false, Some(("id2", 300)), &key());
    let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &wrapped, b"", tmp.path());
    let (out, err, marker, preamble) = read(&stdout, &stderr);
    assert_eq!(
        (out.as_str(), err.as_str(), marker, code),
        ("hi\n", "", Some(0), Some(0))
    );
    let (_, _, reason) = direct_reason(&preamble, &key()).expect("a reason");
    assert!(reason.contains("tether-someone"), "{reason}");
}

#[test]
fn a_resume_continues_from_the_bytes_received_and_stop_ends_the_group() {
    use std::os::unix::process::CommandExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tether-someone/id3.o");
    // The exec's sh as sshd would start it, in a process group of its own.
    let spawn = |wrapped: &str| {
        std::process::Command::new("/bin/sh")
            .process_group(0)
            .arg("-c")
            .arg(wrapped)
            .env_clear()
            .env("TMPDIR", tmp.path())
            .env("LOGNAME", "someone")
            .env("PATH", "/usr/bin:/bin")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // A command that outlives its first exec: the exec's sh is killed as a lost
    // connection would leave it, the command goes on.
    let wrapped = wrap_for(
        "echo one; sleep 1; echo two; exit 7",
        false,
        Some(("id3", 300)),
        &key(),
    );
    let mut child = spawn(&wrapped);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.exists());
    // "one\n" arrived (4 bytes of stdout, none of stderr).
    let resume = wrap_script(
        &crate::ssh::supervisor::resume(&start_markers()),
        &key(),
        &["id3", "4", "0"],
    );
    let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &resume, b"", tmp.path());
    let (out, err, marker, _) = read(&stdout, &stderr);
    assert_eq!((out.as_str(), err.as_str()), ("two\n", ""));
    assert_eq!((marker, code), (Some(7), Some(7)));
    std::fs::remove_file(&dir).unwrap();
    // Gone: the frame, no marker.
    let (_, stderr, code) = as_sshd_tmp("/bin/sh", &resume, b"", tmp.path());
    let mut f = StderrFilter::new(&key());
    let mut start = StartFilter::default();
    assert!(f.push(&start.push(&stderr)).is_empty());
    assert!(f.gone);
    assert_eq!(code, Some(125));
    // Stop: a command that ignores nothing ends with TERM.
    let wrapped = wrap_for("sleep 30", false, Some(("id4", 300)), &key());
    let mut child = spawn(&wrapped);
    std::thread::sleep(Duration::from_millis(300));
    let stop = wrap_script(
        &crate::ssh::supervisor::stop(&start_markers()),
        &key(),
        &["id4", "2"],
    );
    let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &stop, b"", tmp.path());
    let (out, _, marker, _) = read(&stdout, &stderr);
    assert_eq!((out.as_str(), marker, code), ("TERM\n", Some(0), Some(0)));
    child.wait().unwrap();
    assert!(!tmp.path().join("tether-someone/id4.o").exists());
}

#[test]
fn a_resume_that_needs_removed_bytes_says_how_many() {
    use std::os::unix::fs::DirBuilderExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("tether-someone");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&base)
        .unwrap();
    // A finished command whose stdout spool kept its files from bytes 12 and 16 only.
    for (name, text) in [
        ("id6.o", ""),
        ("id6.s", "0\n"),
        ("id6.p", ""),
        ("id6.q", "0 0\n"),
        ("id6.o.12", "mnop"),
        ("id6.o.16", "qr"),
        ("id6.e.0", "err\n"),
    ] {
        std::fs::write(base.join(name), text).unwrap();
    }
    // tether has 6 bytes of stdout ("abcdef"): 6 more were removed.
    let resume = wrap_script(
        &crate::ssh::supervisor::resume(&start_markers()),
        &key(),
        &["id6", "6", "0"],
    );
    let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &resume, b"", tmp.path());
    let mut start = StartFilter::default();
    let out = [start.push(&stdout), start.finish()].concat();
    let mut start = StartFilter::default();
    let mut status = StderrFilter::new(&key());
    let mut err = status.push(&start.push(&stderr));
    let (rest, marker) = status.finish();
    err.extend(rest);
    assert_eq!(String::from_utf8_lossy(&out), "mnopqr");
    assert_eq!(String::from_utf8_lossy(&err), "err\n");
    assert_eq!(status.lost, [6, 0]);
    assert_eq!((marker, code), (Some(0), Some(0)));
}

/// A staged command whose stdin ended before all of it came (the channel closed part-way,
/// however late its exec's sh started) leaves no file, with or without an id (stop 36: an
/// exec's sh that started after the deadline's clean-up kept a half-written `ID.k`).
#[test]
fn a_staged_command_cut_short_leaves_nothing() {
    use crate::ssh::supervisor::stage;
    let tmp = tempfile::tempdir().unwrap();
    for id in [Some("id1"), None] {
        for (sent, len) in [(&b""[..], 9), (&b"echo lo"[..], 9), (&b"echo long!"[..], 9)] {
            let script = wrap_for(&stage(id, "T2", len), false, None, &key());
            let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &script, sent, tmp.path());
            let (out, _, _, _) = read(&stdout, &stderr);
            assert_ne!(code, Some(0), "{id:?} {sent:?}: {out}");
            assert_eq!(out, "", "{id:?} {sent:?}");
        }
    }
    let mut left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .chain(std::fs::read_dir(tmp.path().join("tether-someone")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["tether-someone"]);
}

/// A long command's text is staged among its command's files (`ID.k`), and whatever settles
/// the command for good removes it: a claim or a stop that finds it never started, and the
/// day-old sweep when no run came back (builder's finding, issue 13: a staged file stayed in
/// `$TMPDIR` for good when the connection died while it was written, or the command was
/// stopped before it started). Without an id, or a private directory, it is a `mktemp` file.
#[test]
fn a_staged_command_goes_with_its_commands_files() {
    use crate::ssh::supervisor::{claim, clean, stage, stop};
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("tether-someone");
    let staged = |id: Option<&str>, tmp: &std::path::Path| {
        let script = wrap_for(&stage(id, "T1", 9), false, None, &key());
        let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &script, b"echo long", tmp);
        let (out, _, marker, _) = read(&stdout, &stderr);
        assert_eq!((marker, code), (Some(0), Some(0)), "{out}");
        std::path::PathBuf::from(out)
    };
    let path = staged(Some("id7"), tmp.path());
    assert_eq!(path, private.join("id7.k"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "echo long");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&path), mode(&private)), (0o600, 0o700));
    let settle = |script: &str, args: &[&str]| {
        let s = wrap_script(script, &key(), args);
        let (stdout, stderr, _) = as_sshd_tmp("/bin/sh", &s, b"", tmp.path());
        read(&stdout, &stderr).0
    };
    assert_eq!(settle(&claim(&start_markers()), &["id7", ""]), "won\n");
    assert!(!path.exists());
    let path = staged(Some("id8"), tmp.path());
    assert_eq!(settle(&stop(&start_markers()), &["id8", "1"]), "never\n");
    assert!(!path.exists());
    let two_days_old = |p: &std::path::Path| {
        let touched = std::process::Command::new("touch")
            .args(["-d", "2 days ago"])
            .arg(p)
            .status()
            .unwrap();
        assert!(touched.success());
    };
    // The sweep: a day-old staged file with nothing beside it goes, a fresh one stays.
    let old = staged(Some("id9"), tmp.path());
    let fresh = staged(Some("id10"), tmp.path());
    two_days_old(&old);
    settle(&clean(), &["1"]);
    assert!(!old.exists());
    assert!(fresh.exists());
    // Once a day (stop 50 tester t73: two `find`s per host at every run's end): another
    // day-old file waits for the next day's sweep, which removes it.
    assert!(private.join(".swept.1").is_file());
    let old = staged(Some("id12"), tmp.path());
    two_days_old(&old);
    settle(&clean(), &["1"]);
    assert!(old.exists());
    settle(&clean(), &["2"]);
    assert!(!old.exists());
    assert!(!private.join(".swept.1").exists());
    assert_eq!(mode(&private.join(".swept.2")), 0o600);
    // No id, or no private directory (a file in its place): a temporary file of its own,
    // which the sweep removes once a day old too (stop 36 tester t21: nothing did).
    let path = staged(None, tmp.path());
    let fresh = staged(None, tmp.path());
    two_days_old(&path);
    settle(&clean(), &["3"]);
    assert!(!path.exists());
    assert!(fresh.exists());
    let path = fresh;
    assert!(path.starts_with(tmp.path()), "{path:?}");
    assert!(path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("tether-cmd."));
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("tether-someone"), "").unwrap();
    let path = staged(Some("id11"), other.path());
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tether-cmd."),
        "{path:?}"
    );
}

/// A stop that comes once the command has ended by itself (its status written: its exec's sh
/// is only passing on the last bytes and the status) signals nothing and keeps the files the
/// exec's sh reads its status from: `gone`, and the command's result is its own (stop 37
/// tester t25: `sleep 1.5; date > /srv/ir; echo done` interrupted at 1.575 s printed `done`,
/// wrote the file, and was reported "stopped ... its process group was sent SIGTERM").
#[test]
fn a_stop_that_comes_after_the_command_ended_signals_nothing() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("tether-someone");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stop = wrap_script(
        &crate::ssh::supervisor::stop(&start_markers()),
        &key(),
        &["id5", "2"],
    );
    // The exec's sh, still there: the leader of the command's process group.
    let spawn_leader = || {
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let clear = || {
        for entry in std::fs::read_dir(&private).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    };
    // With its status written already, and with only the command's own status written (the
    // status to report follows once its spool writers ended).
    for late in [None, Some(Duration::from_millis(300))] {
        let mut leader = spawn_leader();
        let file = |ext: &str| private.join(format!("id5.{ext}"));
        for (ext, text) in [("o", ""), ("claim", ""), ("c", "0\n"), ("e.0", "")] {
            std::fs::write(file(ext), text).unwrap();
        }
        std::fs::write(file("p"), format!("{}\n", leader.id())).unwrap();
        let status = file("s");
        let mut writer = Some(std::thread::spawn(move || {
            if let Some(after) = late {
                std::thread::sleep(after);
            }
            std::fs::write(status, "0\n").unwrap();
        }));
        if late.is_none() {
            writer.take().into_iter().for_each(|w| w.join().unwrap());
        }
        let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &stop, b"", tmp.path());
        let (out, _, marker, _) = read(&stdout, &stderr);
        assert_eq!(
            (out.as_str(), marker, code),
            ("gone\n", Some(0), Some(0)),
            "{late:?}"
        );
        assert!(leader.try_wait().unwrap().is_none(), "{late:?}: signalled");
        assert!(file("s").exists() && file("c").exists(), "{late:?}");
        leader.kill().unwrap();
        leader.wait().unwrap();
        writer.into_iter().for_each(|w| w.join().unwrap());
        clear();
    }
    // Its own shell gone, its status not yet written (a stop in the moment between: stop 37
    // tester t26, `--timeout 1.515s` on `sleep 1.5; ...`, reported stopped): waited for, not
    // signalled.
    let mut leader = spawn_leader();
    let mut shell = std::process::Command::new("true").spawn().unwrap();
    let shell_pid = shell.id();
    shell.wait().unwrap();
    let file = |ext: &str| private.join(format!("id5.{ext}"));
    for (ext, text) in [("o", ""), ("claim", ""), ("c", ""), ("s", "")] {
        std::fs::write(file(ext), text).unwrap();
    }
    std::fs::write(file("x"), format!("{shell_pid}\n")).unwrap();
    std::fs::write(file("p"), format!("{}\n", leader.id())).unwrap();
    let (status, own) = (file("s"), file("c"));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(own, "0\n").unwrap();
        std::fs::write(status, "0\n").unwrap();
    });
    let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &stop, b"", tmp.path());
    writer.join().unwrap();
    let (out, _, marker, _) = read(&stdout, &stderr);
    assert_eq!((out.as_str(), marker, code), ("gone\n", Some(0), Some(0)));
    assert!(leader.try_wait().unwrap().is_none(), "signalled");
    leader.kill().unwrap();
    leader.wait().unwrap();
    clear();
    // Its exec's sh gone too (its connection lost: a command left running that ended since):
    // nothing reads the files any more, and they go.
    let mut leader = spawn_leader();
    let pid = leader.id();
    leader.kill().unwrap();
    leader.wait().unwrap();
    for (ext, text) in [("o", ""), ("claim", ""), ("c", "0\n"), ("s", "0\n")] {
        std::fs::write(private.join(format!("id5.{ext}")), text).unwrap();
    }
    std::fs::write(private.join("id5.p"), format!("{pid}\n")).unwrap();
    let (stdout, stderr, code) = as_sshd_tmp("/bin/sh", &stop, b"", tmp.path());
    let (out, _, marker, _) = read(&stdout, &stderr);
    assert_eq!((out.as_str(), marker, code), ("gone\n", Some(0), Some(0)));
    assert_eq!(std::fs::read_dir(&private).unwrap().count(), 0);
}
