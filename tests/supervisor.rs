//! What a command under the supervisor (`ssh::supervisor`, issue 13) shows is what plain `ssh`
//! shows: every byte it wrote, its real status (a signal too), nothing of tether's own in its
//! streams, and no byte of its output able to pass for one of tether's frames. Against real
//! sshd, each command also run through plain `ssh` where the comparison is the point.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use support::harness::Harness;
use support::lab::Lab;
use tether::event::EventKind;
use tether::ssh::exec::{ExecOutput, ExitStatus};
use tether::ssh::policy::WorkerSettings;

fn one_host() -> (Lab, Harness) {
    let lab = Lab::builder().names(&["host1"]).start();
    let h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    (lab, h)
}

/// Runs `command` on host1 through tether; its output (panics if it did not finish).
fn run(h: &mut Harness, command: &str) -> ExecOutput {
    let r = h.run(&["host1"], command).remove(0);
    match r.result {
        Some(Ok(out)) => out,
        other => panic!("{command}: {other:?}\n{}", h.story()),
    }
}

/// Runs `command` on host1 through plain `ssh`: stdout, stderr.
fn ssh(lab: &Lab, command: &str) -> (Vec<u8>, Vec<u8>) {
    let out = lab.ssh("host1").arg(command).output().unwrap();
    (out.stdout, out.stderr)
}

/// A command that kills itself (or whose own shell is killed) loses no output, and its status
/// is the signal, as sshd reports it to plain `ssh`.
#[test]
fn a_command_killed_by_a_signal_keeps_its_output_and_reports_the_signal() {
    let (lab, mut h) = one_host();
    let cases = [
        ("echo x; kill -TERM $$", "x\n", "", "TERM"),
        ("echo x; echo e >&2; kill -KILL $$", "x\n", "e\n", "KILL"),
        ("echo x; (kill -KILL $$); echo not", "x\n", "", "KILL"),
        ("sh -c 'echo x; kill -9 $$'", "x\n", "", "KILL"),
        (
            "seq 1 20000; echo warn >&2; kill -HUP $$",
            "",
            "warn\n",
            "HUP",
        ),
        ("printf partial; kill -INT $$", "partial", "", "INT"),
    ];
    for (command, stdout, stderr, signal) in cases {
        let out = run(&mut h, command);
        let (ssh_out, ssh_err) = ssh(&lab, command);
        let want_out = if command.starts_with("seq") {
            let mut s: String = (1..=20000).map(|i| format!("{i}\n")).collect();
            s.push_str(stdout);
            s
        } else {
            stdout.to_string()
        };
        assert_eq!(String::from_utf8_lossy(&out.stdout), want_out, "{command}");
        assert_eq!(
            String::from_utf8_lossy(&ssh_out),
            want_out,
            "ssh: {command}"
        );
        if command.starts_with("sh -c") {
            // The command runs under /bin/sh (dash), which, unlike bash, does not `exec` the
            // last command of `-c` and says `Killed` when it dies; tether's status is still
            // the signal, as bash's `exec` makes it for plain ssh.
            assert!(
                matches!(&*String::from_utf8_lossy(&out.stderr), "" | "Killed\n"),
                "{command}: {:?}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "{command}");
        }
        assert_eq!(String::from_utf8_lossy(&ssh_err), stderr, "ssh: {command}");
        assert_eq!(out.status, ExitStatus::Signal(signal.into()), "{command}");
    }
    // A status of its own above 128 is still a status, when the command says so (not its shell).
    let out = run(&mut h, "sh -c 'exit 3'; exit 7");
    assert_eq!(out.status, ExitStatus::Code(7));
}

/// A status above 128 is taken for a signal only where it names one that ends a process and
/// that sshd names (HUP INT QUIT ILL ABRT FPE KILL USR1 SEGV USR2 PIPE ALRM TERM: the
/// supervisor cannot tell `exit 143` from a death by TERM, as the README says); any other is
/// the number, as plain `ssh` reports it (stop 34 tester: `exit 147` to 150 stopped the
/// supervisor's own shell with STOP, TSTP, TTIN or TTOU and tether waited forever,
/// re-attaching every 15 s; 144 and 160 came back as 16 and 32; 133, 135, 159 and 192 as
/// `SIG@openssh.com`; 145, 146 and 150 as no status at all).
#[test]
fn a_status_above_128_that_names_no_ending_signal_is_the_number() {
    let (lab, mut h) = one_host();
    for n in [
        133, 135, 144, 145, 146, 147, 148, 149, 150, 151, 156, 159, 160, 192, 200, 255,
    ] {
        let command = format!("echo {n}; exit {n}");
        let out = run(&mut h, &command);
        assert_eq!(out.status, ExitStatus::Code(n), "{command}\n{}", h.story());
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{n}\n"));
        let ssh = lab.ssh("host1").arg(&command).output().unwrap();
        assert_eq!(ssh.status.code(), Some(n), "ssh: {command}");
    }
    // Nothing of it is left on the host, stopped or not.
    let left: Vec<u32> = lab
        .host_pids("host1")
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"/bin/sh\0-c\0_tether"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The process group the test's command wrote to /srv/pg (in `root`) once it started.
fn started_group(root: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(pg) = std::fs::read_to_string(root.join("pg")) {
            return pg.trim().to_string();
        }
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process of tether's supervisor killed on the host while the command runs on in its
/// process group (a `kill -9` of the exec's sh, the group's leader, or of its streaming loop):
/// tether follows the command to its end on the same connection, with every line once and its
/// own status, and says so. It reported the signal that killed the exec's sh (KILL) while the
/// command went on and succeeded or failed unseen, and with the loop killed it reported the
/// command's status with its later output missing. Killed with its whole group, the command
/// is reported killed by that signal.
#[test]
fn a_command_whose_exec_sh_is_killed_is_followed_to_its_end() {
    let (lab, mut h) = one_host();
    let root = lab.host("host1").root_dir.clone();
    let warnings = |h: &Harness| {
        h.count("host1", |k| {
            matches!(k, tether::event::EventKind::Warning { message }
                if message.contains("was killed on the host"))
        })
    };
    // (the signal, to what: the exec's sh's pid, its group (`-`), its streaming loop (`loop`:
    // the exec's sh's second child, the pipeline's right side) or the shell that waits for the
    // command (`sup`: the first); how the command ends)
    for (kill, status, said) in [
        (
            "-KILL",
            ExitStatus::Code(3),
            "(signal KILL): tether followed",
        ),
        (
            "-SEGV",
            ExitStatus::Code(3),
            "(signal SEGV): tether followed",
        ),
        (
            "-KILL loop",
            ExitStatus::Code(3),
            "(signal KILL): tether followed",
        ),
        // The supervisor's shell that writes the status: tether hung, its loop waiting on.
        (
            "-KILL sup",
            ExitStatus::Code(3),
            "(signal KILL): tether followed",
        ),
        ("-KILL -", ExitStatus::Signal("KILL".into()), ""),
        // A stop's signal (the exec's sh outlives it and reports the command's).
        ("-TERM -", ExitStatus::Signal("TERM".into()), ""),
        ("-TERM", ExitStatus::Code(3), ""),
    ] {
        let before = warnings(&h);
        let _ = std::fs::remove_file(root.join("pg"));
        let _ = std::fs::remove_file(root.join("marker"));
        let _ = std::fs::remove_file(root.join("last"));
        let command = "echo ran >> /srv/marker; ps -o pgid= -p $$ > /srv/pg.new; mv /srv/pg.new /srv/pg; \
                       for i in 1 2 3 4 5 6 7 8; do echo line$i; echo err$i >&2; echo $i > /srv/last; sleep 0.25; done; exit 3";
        let r = h.run_meanwhile("host1", command, &Default::default(), || {
            let pg = started_group(&root);
            std::thread::sleep(Duration::from_millis(600));
            let (signal, to) = kill.split_once(' ').unwrap_or((kill, ""));
            let target = match to {
                which @ ("loop" | "sup") => {
                    let children = std::process::Command::new("ps")
                        .args(["--ppid", &pg, "-o", "pid="])
                        .output()
                        .unwrap();
                    let mut pids: Vec<u32> = String::from_utf8_lossy(&children.stdout)
                        .split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect();
                    pids.sort_unstable();
                    assert_eq!(pids.len(), 2, "the exec's sh's children: {pids:?}");
                    pids[usize::from(which == "loop")].to_string()
                }
                group => format!("{group}{pg}"),
            };
            let killed = std::process::Command::new("kill")
                .args([signal, "--", &target])
                .status()
                .unwrap();
            assert!(killed.success(), "kill {signal} -- {target}");
        });
        h.settle();
        let out = match &r.result {
            Some(Ok(out)) => out.clone(),
            other => panic!("{kill}: {other:?}\n{}", h.story()),
        };
        assert_eq!(out.status, status, "{kill}\n{}", h.story());
        let warned = warnings(&h) - before;
        assert_eq!(
            warned,
            usize::from(!said.is_empty()),
            "{kill}\n{}",
            h.story()
        );
        if !said.is_empty() {
            assert!(
                h.story().contains(said) && h.story().contains("to its end (exit status 3)"),
                "{kill}\n{}",
                h.story()
            );
        }
        let marker = std::fs::read_to_string(root.join("marker")).unwrap();
        assert_eq!(marker, "ran\n", "{kill}: one execution");
        // Every line it printed, once and in order: killed with its group, the last ones too
        // (printed after the streaming loop's last pass, they are in its spool).
        let last: usize = std::fs::read_to_string(root.join("last"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let upto = |n: usize, what: &str| (1..=n).map(|i| format!("{what}{i}\n")).collect();
        let printed = String::from_utf8_lossy(&out.stdout);
        let wanted: Vec<String> = (last..=(last + 1).min(8))
            .map(|n| upto(n, "line"))
            .collect();
        assert!(
            wanted.contains(&printed.to_string()),
            "{kill}: {printed:?}, {last} logged"
        );
        if status == ExitStatus::Code(3) {
            assert_eq!(printed, upto(8, "line"), "{kill}");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                upto(8, "err"),
                "{kill}"
            );
        }
    }
    // A command killed by a signal of its own is not followed any further than its status.
    let before = warnings(&h);
    let out = run(&mut h, "echo x; kill -TERM $$");
    assert_eq!(out.status, ExitStatus::Signal("TERM".into()));
    assert_eq!(warnings(&h), before, "{}", h.story());
    // A group signal the command handles: its own status, as plain ssh reports it (it was
    // reported as that signal).
    for signal in ["-TERM", "-HUP"] {
        let _ = std::fs::remove_file(root.join("pg"));
        let command = "trap 'echo cleanup; exit 7' TERM HUP; ps -o pgid= -p $$ > /srv/pg.new; \
                       mv /srv/pg.new /srv/pg; sleep 5 & wait";
        let r = h.run_meanwhile("host1", command, &Default::default(), || {
            let pg = started_group(&root);
            let group = format!("-{pg}");
            let killed = std::process::Command::new("kill")
                .args([signal, "--", &group])
                .status()
                .unwrap();
            assert!(killed.success());
        });
        h.settle();
        match &r.result {
            Some(Ok(out)) => {
                assert_eq!(out.status, ExitStatus::Code(7), "{signal}\n{}", h.story());
                assert_eq!(String::from_utf8_lossy(&out.stdout), "cleanup\n");
            }
            other => panic!("{signal}: {other:?}\n{}", h.story()),
        }
    }
    // A command that kills the supervisor's process waiting for it: its status is not known,
    // which is said (it was reported as exit 125, and the shell's `Killed` was in its stderr).
    let out = run(
        &mut h,
        "echo a; echo e >&2; kill -9 $PPID; sleep 0.3; echo after",
    );
    assert_eq!(out.status, ExitStatus::Unrecorded, "{}", h.story());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nafter\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "e\n");
}

/// A background child that keeps stdout or stderr open is waited for, as ssh waits for the
/// channel's EOF; one that let go of them is not.
#[test]
fn output_of_a_background_child_arrives_and_one_that_let_go_is_not_waited_for() {
    let (lab, mut h) = one_host();
    for (command, stdout, stderr) in [
        ("echo a; (sleep 2; echo late) &", "a\nlate\n", ""),
        ("echo a; (sleep 2; echo late >&2) &", "a\n", "late\n"),
        (
            "(sleep 1; echo one; sleep 1; echo two) & echo first",
            "first\none\ntwo\n",
            "",
        ),
    ] {
        let started = Instant::now();
        let out = run(&mut h, command);
        let took = started.elapsed();
        assert_eq!(String::from_utf8_lossy(&out.stdout), stdout, "{command}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), stderr, "{command}");
        assert_eq!(out.status, ExitStatus::Code(0), "{command}");
        assert!(took >= Duration::from_secs(2), "{command}: {took:?}");
        let (ssh_out, ssh_err) = ssh(&lab, command);
        assert_eq!(String::from_utf8_lossy(&ssh_out), stdout, "ssh: {command}");
        assert_eq!(String::from_utf8_lossy(&ssh_err), stderr, "ssh: {command}");
    }
    for command in [
        "nohup sleep 100 >/dev/null 2>&1 &",
        "sleep 101 >/dev/null 2>&1 </dev/null & echo started",
    ] {
        let started = Instant::now();
        let out = run(&mut h, command);
        assert_eq!(out.status, ExitStatus::Code(0), "{command}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{command}: waited {:?}",
            started.elapsed()
        );
    }
    for pid in lab.host_pids("host1") {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).starts_with("sleep\u{0}10") {
            // SAFETY: kill(2) on a process this test started on its own lab host.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Large fast output arrives byte-exact, with nothing of tether's own on stderr.
#[test]
fn fast_large_output_arrives_byte_exact_with_nothing_added() {
    let (lab, mut h) = one_host();
    let out = run(&mut h, "seq 1 3000000");
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let want: String = (1..=3_000_000).map(|i| format!("{i}\n")).collect();
    assert!(out.stdout == want.as_bytes(), "seq's output differs");
    for _ in 0..2 {
        let out = run(&mut h, "head -c 30000000 /dev/urandom | base64");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        assert_eq!(out.stdout.len(), 40_000_000 + 526_316);
        assert_eq!(out.status, ExitStatus::Code(0));
    }
    // Binary, on both streams.
    let out = run(
        &mut h,
        "head -c 8000000 /dev/urandom >/srv/blob; cat /srv/blob; cat /srv/blob >&2",
    );
    let blob = std::fs::read(lab.host("host1").root_dir.join("blob")).unwrap();
    assert_same_bytes("stdout", &out.stdout, &blob);
    assert_same_bytes("stderr", &out.stderr, &blob);
    assert_eq!(out.status, ExitStatus::Code(0));
}

/// Panics unless `got` is `want`, saying both lengths and the bytes around the first difference.
fn assert_same_bytes(stream: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    let around = |b: &[u8]| format!("{:?}", &b[at.saturating_sub(8)..(at + 48).min(b.len())]);
    panic!(
        "{stream} differs from the file: {} bytes, want {}; first difference at byte {at}: got {} want {}",
        got.len(),
        want.len(),
        around(got),
        around(want)
    );
}

/// Bytes a command prints that look like tether's frames are its output, and cannot fake its
/// status.
#[test]
fn a_commands_own_bytes_are_never_taken_for_tethers_frames() {
    let (_lab, mut h) = one_host();
    let frames = [
        r"\036tether-tick\036",
        r"\036tether-gone\036",
        r"\036tether-direct:x\036",
        r"\036tether-exit:0\036",
        r"\036tether-start\036",
        r"\036tether-exit:",
    ];
    for frame in frames {
        let want = frame.replace(r"\036", "\u{1e}");
        for stream in ["", " >&2"] {
            let command = format!("printf 'a{frame}b'{stream}; printf '{frame}'{stream}; exit 3");
            let out = run(&mut h, &command);
            let (got, other) = if stream.is_empty() {
                (&out.stdout, &out.stderr)
            } else {
                (&out.stderr, &out.stdout)
            };
            assert_eq!(
                String::from_utf8_lossy(got),
                format!("a{want}b{want}"),
                "{command}"
            );
            assert!(other.is_empty(), "{command}");
            assert_eq!(out.status, ExitStatus::Code(3), "{command}");
        }
    }
    // A status marker as the last thing before the command's shell dies does not make it 0.
    let out = run(&mut h, r"printf '\036tether-exit:0\036' >&2; kill -KILL $$");
    assert_eq!(out.status, ExitStatus::Signal("KILL".into()));
    assert_eq!(out.stderr, b"\x1etether-exit:0\x1e");
    // A silent command, with ticks, next to one that prints the tick's bytes.
    let out = run(&mut h, r"sleep 3; printf '\036tether-tick\036' >&2");
    assert_eq!(out.stderr, b"\x1etether-tick\x1e");
}

/// Every file of the supervisor is the user's alone: the directories 0700, each file 0600.
#[test]
fn the_supervisors_files_are_private() {
    let lab = Lab::builder().names(&["host1"]).start();
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    // The command runs with the user's own umask, not the supervisor's.
    let out = run(&mut h, "umask; echo out; echo err >&2; exit 4");
    assert_eq!(out.status, ExitStatus::Code(4));
    let (ssh_out, _) = ssh(&lab, "umask; echo out");
    assert_eq!(out.stdout, ssh_out);
    let base = lab.private_dir("host1");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&base), 0o700);
    let files: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Its stdout, stderr, status, process group, pid to wake at least.
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        // The claim (`ID.claim`) is an empty file, 0600 like every other.
        assert!(f.is_file(), "{}", f.display());
        let want = 0o600;
        assert_eq!(mode(&f), want, "{}", f.display());
    }
}

/// A connection lost before the command's start marker arrived (its login shell still in a
/// slow start-up file): the command runs exactly once and its result arrives, whether tether
/// claimed it first (sent again on the new connection, the first exec runs nothing) or the
/// first exec did (re-attached to).
#[test]
fn a_connection_lost_before_the_command_started_runs_it_exactly_once() {
    // (the first login's start-up delay, the later logins', whether tether claims it first)
    for (first, later, tether_first) in [(4, 0, true), (1, 5, false)] {
        let lab = Lab::builder().names(&["host1"]).start();
        std::fs::write(
            lab.host("host1").home.join(".bashrc"),
            "if [ -s /srv/slow ]; then echo login >> /srv/logins; sleep \"$(cat /srv/slow)\"; fi\n",
        )
        .unwrap();
        let root = lab.host("host1").root_dir.clone();
        let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
        assert!(h.run(&["host1"], "true")[0].ok(), "{}", h.story());
        std::fs::write(root.join("slow"), first.to_string()).unwrap();
        let command = "echo ran >> /srv/marker; echo out; echo err >&2; exit 3";
        let r = h.run_meanwhile("host1", command, &Default::default(), || {
            let logins = root.join("logins");
            let deadline = Instant::now() + Duration::from_secs(10);
            while !std::fs::read_to_string(&logins).is_ok_and(|l| !l.is_empty()) {
                assert!(Instant::now() < deadline, "the login shell never started");
                std::thread::sleep(Duration::from_millis(20));
            }
            std::fs::write(root.join("slow"), later.to_string()).unwrap();
            lab.kill_connections("host1");
        });
        h.settle();
        let out = match &r.result {
            Some(Ok(out)) => out.clone(),
            other => panic!("{tether_first}: {other:?}\n{}", h.story()),
        };
        assert_eq!(out.status, ExitStatus::Code(3), "{}", h.story());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        // The first login shell has long woken up: its exec ran the command or nothing.
        std::thread::sleep(Duration::from_secs(first + 2));
        let marker = std::fs::read_to_string(root.join("marker")).unwrap();
        assert_eq!(
            marker,
            "ran\n",
            "tether first: {tether_first}\n{}",
            h.story()
        );
        let logins = std::fs::read_to_string(root.join("logins")).unwrap();
        // The first exec's, the claim's, and (when tether claimed first) the command's again,
        // each slow only while /srv/slow said so.
        assert!(logins.lines().count() >= 2, "{logins}");
    }
}

/// The spool is bounded: past `SPOOL_CHUNKS` files per stream (of at most
/// `TETHER_SPOOL_CHUNK` bytes, small here), a command waits for tether to have its bytes before more are kept, also while
/// its connection is gone; every byte still arrives, once and in order.
#[test]
fn the_spool_is_bounded_and_loses_nothing() {
    const CHUNK: u64 = 4 * 1024 * 1024;
    let lab = Lab::builder().names(&["host1"]).start();
    lab.set_env("host1", &[("TETHER_SPOOL_CHUNK", &CHUNK.to_string())]);
    let root = lab.host("host1").root_dir.clone();
    let tmp = lab.host("host1").tmp.clone();
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    let want: String = (1..=5_000_000).map(|i| format!("{i}\n")).collect();
    // The largest spool seen, per stream.
    let peak = std::sync::Mutex::new(0u64);
    let done = std::sync::atomic::AtomicBool::new(false);
    let spooled = || -> u64 {
        let Ok(dirs) = std::fs::read_dir(&tmp) else {
            return 0;
        };
        let mut total = 0;
        for d in dirs.flatten() {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.contains(".o.") && !name.ends_with(".l") {
                    total += f.metadata().map_or(0, |m| m.len());
                }
            }
        }
        total
    };
    let command = "echo ran >> /srv/marker; seq 1 5000000; echo end >&2";
    let r = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let now = spooled();
                let mut p = peak.lock().unwrap();
                *p = (*p).max(now);
                drop(p);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let pool = &h.pool;
        let job = scope.spawn(move || {
            pool.fan_out(
                &[("host1".to_string(), command.to_string())],
                &tether::pool::FanOut::default(),
            )
        });
        let marker = root.join("marker");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&marker).is_ok_and(|m| !m.is_empty()) {
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        lab.kill_connections("host1");
        let r = job.join().unwrap().remove(0);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher.join().unwrap();
        r
    });
    h.settle();
    let out = match &r.result {
        Some(Ok(out)) => out.clone(),
        other => panic!("{other:?}\n{}", h.story()),
    };
    assert_eq!(out.status, ExitStatus::Code(0), "{}", h.story());
    if out.stdout != want.as_bytes() {
        let at = out
            .stdout
            .iter()
            .zip(want.as_bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(out.stdout.len().min(want.len()));
        panic!(
            "stdout differs from byte {at} ({} bytes, want {}; stderr {:?})\n{}",
            out.stdout.len(),
            want.len(),
            String::from_utf8_lossy(&out.stderr),
            h.story()
        );
    }
    assert_eq!(String::from_utf8_lossy(&out.stderr), "end\n");
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).unwrap(),
        "ran\n"
    );
    let peak = *peak.lock().unwrap();
    // Four chunk sizes kept, and the file being written; far less than the 39 MB the command
    // printed.
    assert!(peak <= 5 * CHUNK, "the spool held {peak} bytes of stdout");
    assert!(peak >= CHUNK / 4, "the watcher saw only {peak} bytes");
}

/// A spool chunk under 64 KiB (`TETHER_SPOOL_CHUNK`, as tests set it) is taken as 64 KiB, the
/// most one write of its writers may hold: every byte arrives, at once (stop 42 tester t44:
/// with 1000, 1,860 lines of 50,000 arrived and the host was ok; with 4096 the command died of
/// SIGPIPE after two minutes; with 16384 it took two minutes). A chunk that is no multiple of
/// 64 KiB loses nothing either.
#[test]
fn a_small_spool_chunk_loses_nothing() {
    let lab = Lab::builder().names(&["host1"]).start();
    let want: String = (1..=50_000).map(|i| format!("{i}\n")).collect::<String>() + "rc=0\n";
    for chunk in ["1", "1000", "4096", "16384", "65535", "100000"] {
        lab.set_env("host1", &[("TETHER_SPOOL_CHUNK", chunk)]);
        let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
        let out = run(&mut h, "seq 1 50000; echo rc=$?");
        assert_eq!(out.status, ExitStatus::Code(0), "chunk {chunk}");
        assert!(
            out.stdout == want.as_bytes(),
            "chunk {chunk}: {} bytes of {}, ending {:?}",
            out.stdout.len(),
            want.len(),
            String::from_utf8_lossy(&out.stdout[out.stdout.len().saturating_sub(40)..])
        );
    }
}

/// A run killed before it read its commands' results (SIGKILL, its machine gone) leaves their
/// files in the private directory; the next run's clean-up removes those a day old that
/// nobody will read (finished a day ago, or whose supervisor died), and leaves a command still
/// running and one that ended within the day.
#[test]
fn files_a_killed_run_left_expire_after_a_day() {
    let (lab, mut h) = one_host();
    run(&mut h, "true");
    let dir = lab.host("host1").tmp.join("tether-root");
    assert!(dir.is_dir(), "{}", dir.display());
    // A process group that is still there: a command of a killed run, still running.
    let mut alive = std::process::Command::new("setsid")
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let write = |id: &str, status: &str, pgid: &str| {
        for (ext, text) in [
            ("o", ""),
            ("o.0", "out"),
            ("e.0", "err"),
            ("c", status),
            ("s", status),
            ("p", pgid),
            ("q", "3 3"),
            ("claim", ""),
        ] {
            std::fs::write(dir.join(format!("{id}.{ext}")), text).unwrap();
        }
    };
    let age = |name: &str, days: u32| {
        let ok = std::process::Command::new("touch")
            .arg("-d")
            .arg(format!("{days} days ago"))
            .arg(dir.join(name))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    let all =
        |id: &str| ["o", "o.0", "e.0", "c", "s", "p", "q", "claim"].map(|e| format!("{id}.{e}"));
    // Finished two days ago, never read.
    write("old-done", "0", "1");
    all("old-done").iter().for_each(|f| age(f, 2));
    // Started two days ago, its supervisor killed: no status, no process group.
    write("old-dead", "", "999999999");
    all("old-dead").iter().for_each(|f| age(f, 2));
    // Started two days ago and still running.
    write("old-running", "", &alive.id().to_string());
    all("old-running").iter().for_each(|f| age(f, 2));
    // Started two days ago, finished a minute ago: a run may still read it.
    write("old-just-done", "0", "1");
    all("old-just-done")
        .iter()
        .filter(|f| !f.ends_with(".s"))
        .for_each(|f| age(f, 2));
    // A claim two days old with nothing beside it (its exec never started).
    std::fs::write(dir.join("lone.claim"), "").unwrap();
    age("lone.claim", 2);
    // Finished now.
    write("fresh", "0", "1");
    run(&mut h, "true");
    drop(h);
    let gone = |id: &str| all(id).iter().all(|f| !dir.join(f).exists());
    let kept = |id: &str| all(id).iter().all(|f| dir.join(f).exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(gone("old-done") && gone("old-dead") && !dir.join("lone.claim").exists()) {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(Instant::now() < deadline, "not expired: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(kept("old-running"));
    assert!(kept("old-just-done"));
    assert!(kept("fresh"));
    alive.kill().unwrap();
    alive.wait().unwrap();
}

/// A command that removes the supervisor's own files (`rm -rf "$TMPDIR"/*`, a routine clean-up
/// of /tmp) ends with no exit status, saying its files were removed; never as killed by a
/// signal, which nothing sent (fresh-eyes finding: `signal KILL`, while the command ran to its
/// end). Fast (the removal and the end in one look of the streaming loop) and slow alike, and
/// silent for longer than a hung connection's limit: the streaming loop goes on ticking until
/// the command ends, and the connection is not taken for a hung one (stop 39 tester t29: lost
/// after 15 s of silence, and reconnected).
#[test]
fn a_command_that_removes_the_supervisors_files_is_not_called_killed() {
    let (_lab, mut h) = one_host();
    for command in [
        "rm -rf \"$TMPDIR\"/*; echo cleaned",
        "rm -rf \"$TMPDIR\"/*; sleep 1; echo b",
        "rm -rf \"$TMPDIR\"/*; sleep 17; echo b",
    ] {
        let out = run(&mut h, command);
        assert_eq!(
            out.status,
            ExitStatus::SpoolRemoved,
            "{command}\n{}",
            h.story()
        );
        assert!(
            out.status.to_string().contains("were removed while it ran"),
            "{}",
            out.status
        );
        // The next command runs as usual (its private directory made again).
        let next = run(&mut h, "echo next");
        assert_eq!(next.status, ExitStatus::Code(0), "{}", h.story());
        assert_eq!(next.stdout, b"next\n");
    }
    assert_eq!(
        h.count("host1", |k| matches!(k, EventKind::Reconnected { .. })),
        0,
        "{}",
        h.story()
    );
}

/// A command that removes the supervisor's files while the streaming loop passes its output
/// on (here the host's `head` takes 1 s, so the file it was to read is gone when it runs) ends
/// saying its files were removed, not that a program of the host's failed (stop 67 tester
/// t113: 1 run in 19 of `echo a; rm -rf "$TMPDIR"/tether-*` said "the filesystem of
/// ${TMPDIR:-/tmp} full?").
#[test]
fn files_removed_while_their_output_is_passed_on_are_said_removed() {
    let (lab, mut h) = one_host();
    lab.replace_program("host1", "head", "sleep 1\nexec \"$REAL\" \"$@\"");
    let out = run(
        &mut h,
        "echo a; sleep 0.5; rm -rf \"$TMPDIR\"/tether-*; sleep 1; echo b",
    );
    assert_eq!(out.status, ExitStatus::SpoolRemoved, "{}", h.story());
}

/// What a command prints as it cleans up after a stop is shown to its last line, and in its
/// failure's tail, however long the host takes to pass it on: the programs the streaming loop
/// passes it on with (`head`, `cat`, `dd`, `wc`) are not the command's, and a stop's SIGTERM
/// to the process group leaves them be (stop 51 tester t78: at a load of 20-30, one stop in
/// twenty lost the last lines, a `Terminated` line in their place: the SIGTERM had killed a
/// `head` in the middle of its pass). Here the host's `head` and `cat` take 3 s each, so one
/// is passing output on when the stop comes.
#[test]
fn a_clean_up_after_a_stop_is_shown_from_a_slow_host() {
    let lab = Lab::builder().names(&["host1"]).start();
    for tool in ["head", "cat"] {
        lab.replace_program("host1", tool, "sleep 3\nexec \"$REAL\" \"$@\"");
    }
    let command = "trap 'echo cleanup >&2; sleep 0.3; echo cleaned >&2; exit 3' TERM; \
                   echo start; sleep 30 & wait";
    let out = support::tether::run_with_timeout(&lab.ssh_config(), "2s", "host1", command);
    out.status(1)
        .stdout_contains("host1 | start\n")
        .stdout_contains("host1 ! cleanup\nhost1 ! cleaned\n")
        .stdout_lacks("Terminated")
        .stderr_contains("    cleanup\n    cleaned\n");
}

/// A `head`, `wc`, `dd` or `cat` of the host's that fails while the supervisor spools or
/// passes the output on fails the command, saying so, wherever it was needed; a failing `tail`
/// does not matter, for output passed on from the start of its spool file or from further on
/// (a command printing while it runs) (stop 45 tester t58: with a failing `tail` first in the
/// login shell's PATH, `echo hello` printed nothing and was ok, exit 0, and a deploy's lock
/// step, whose output was lost, took another deploy's lock for its own; then, after a fix for
/// the first case, a command printing a line a second lost every line but the first, exit 0).
/// A quick command's output may be passed on by `cat` alone at its end, or by `wc` and `head`
/// as it comes: with one of them failing, it is ok with every line, or fails saying so. The
/// host's own program fails (replaced in its mount namespace): one of the same name first in
/// the login shell's PATH is not used (see the test below).
#[test]
fn a_host_tool_that_fails_to_pass_output_on_fails_the_command() {
    let lab = Lab::builder().names(&["host1"]).start();
    // Too long for one exec request: staged in a file first, its bytes counted with `wc`.
    let long = format!(": {}; echo long", "x".repeat(50_000));
    let printing =
        "echo one; sleep 0.7; echo two; sleep 0.7; echo three >&2; sleep 0.7; echo four; \
                    echo five >&2";
    let cases = [
        ("echo hello", &["hello"][..]),
        (long.as_str(), &["long"][..]),
        (printing, &["one", "two", "three", "four", "five"][..]),
    ];
    for tool in ["tail", "head", "wc", "dd", "cat"] {
        lab.replace_program("host1", tool, "echo 'fake: refusing' >&2\nexit 1");
        for (command, lines) in cases {
            let out = support::tether::Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&["run", "--hosts", "host1", "--", command])
                .run();
            let text = format!("{}{}", out.stdout, out.stderr);
            let said_all = || {
                let mut said = out.host_lines("host1", '|');
                said.extend(out.host_lines("host1", '!'));
                said.sort();
                let mut want: Vec<&str> = lines.to_vec();
                want.sort();
                said == want
            };
            // `dd` writes every spool file; `head` and `wc` pass on what a command prints while
            // it runs; a quick command's may go by `cat` alone.
            let needed = tool == "dd" || (command == printing && tool != "cat");
            if tool == "tail" {
                assert_eq!(out.status, 0, "{tool} {command}: {text}");
                assert!(said_all(), "{tool} {command}: {text}");
            } else if tool == "wc" && command == long {
                // Said as it is (stop 46 tester t61: `[: Illegal number`, and "only 50024 of
                // its  bytes reached the file").
                assert_eq!(out.status, 1, "{tool}: {text}");
                assert!(
                    text.contains(
                        "its bytes could not be counted in the file: the wc of the host failed"
                    ),
                    "{tool}: {text}"
                );
                assert!(!text.contains("Illegal number"), "{tool}: {text}");
            } else if tool == "cat" && command == long {
                // A command staged in a file is written there by `cat`: not run, saying why
                // in the host's words.
                assert_eq!(out.status, 1, "{tool}: {text}");
                assert!(
                    text.contains("writing it to a temporary file on the host failed"),
                    "{tool}: {text}"
                );
                continue;
            } else if needed || out.status != 0 {
                assert_eq!(out.status, 1, "{tool} {command}: {text}");
                assert!(
                    text.contains("its output could not be passed on: a program of the host's"),
                    "{tool} {command}: {text}"
                );
            } else {
                assert!(said_all(), "{tool} {command}: {text}");
            }
            // Nothing the supervisor's own programs say reaches the command's streams (stop 46
            // tester t61: a failing wc's words were the command's stderr).
            assert!(!text.contains("fake: refusing"), "{tool} {command}: {text}");
        }
        lab.show_programs("host1", &[tool]);
    }
}

/// A `sleep` of the host's that fails does not end a command whose output is only behind (its
/// reader slow): the spool writer's wait cannot be paced, and the command fails saying its
/// output could not be passed on, not killed by SIGPIPE as if nothing read it any more (stop
/// 46 tester t61: `signal PIPE` after 334k of 3M lines, where the run without the fake was ok).
#[test]
fn a_failing_sleep_does_not_pass_for_a_reader_gone() {
    let lab = Lab::builder().names(&["host1"]).start();
    lab.replace_program("host1", "sleep", "exit 1");
    lab.set_env("host1", &[("TETHER_SPOOL_CHUNK", "65536")]);
    let child = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--", "seq 1 3000000; echo END"])
        .spawn();
    // A slow reader: nothing read for 8 s, then all of it.
    std::thread::sleep(std::time::Duration::from_secs(8));
    let out = child.wait_with_output().unwrap();
    let text = support::tether::text(&out);
    assert!(
        !text.contains("signal PIPE"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    if out.status.code() != Some(0) {
        assert!(
            text.contains("its output could not be passed on"),
            "{}",
            &text[text.len().saturating_sub(2000)..]
        );
    }
}

/// A tmpfs mounted at a path of the test's, unmounted when dropped.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(path: std::path::PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs at {}", path.display());
        SmallFs(path)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A spool whose filesystem fills up fails the command saying its output could not be passed
/// on, naming a full filesystem as a cause, not only a failing program (stop 52 tester t81:
/// "a program of the host's ... failed (one first in the login shell's PATH?)" for a full
/// 1 MiB tmpfs); never a success with output lost.
#[test]
fn a_full_spool_filesystem_fails_the_command_naming_it() {
    // Mounted before the host starts: its sshd has a mount namespace of its own (its /srv).
    let dir = tempfile::tempdir().unwrap();
    let small = SmallFs::mount(dir.path().join("small-tmp"), "1m");
    let lab = Lab::builder().names(&["host1"]).start();
    lab.set_env("host1", &[("TMPDIR", small.0.to_str().unwrap())]);
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    let out = run(&mut h, "head -c 3000000 /dev/zero; echo done");
    assert_eq!(out.status, ExitStatus::OutputLost, "{}", h.story());
    let said = out.status.to_string();
    assert!(said.contains("full"), "{said}");
    drop(h);
    drop(lab);
    drop(small);
}

/// Runs `echo ran >> /srv/marker` with `TMPDIR` a tmpfs mounted with `options` and made
/// ready by `fill`: the command runs directly, once, and the warning says `why`, not that the
/// private directory is none of the user's own.
fn run_directly_on_a_small_tmp(options: &str, fill: impl Fn(&std::path::Path), why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let small = SmallFs::mount(dir.path().join("small-tmp"), options);
    fill(&small.0);
    let lab = Lab::builder().names(&["host1"]).start();
    lab.set_env("host1", &[("TMPDIR", small.0.to_str().unwrap())]);
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--", "echo ran >> /srv/marker"])
        .run();
    out.status(0)
        .stdout_contains(why)
        .stdout_lacks("is not a writable directory");
    let marker = lab.host("host1").root_dir.join("marker");
    assert_eq!(std::fs::read_to_string(marker).unwrap(), "ran\n");
    drop(lab);
    drop(small);
}

/// A private directory on a full filesystem (stop 58 tester t92: a full /tmp was said to be
/// "not a writable directory of the user's own").
#[test]
fn a_full_filesystem_under_the_private_directory_is_said_as_such() {
    let full = |tmp: &std::path::Path| {
        // Full, after the private directory was made (directories need no data pages).
        std::fs::create_dir(tmp.join("tether-root")).unwrap();
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", tmp.join("fill").display()))
            .stderr(std::process::Stdio::null())
            .status();
    };
    run_directly_on_a_small_tmp("256k", full, "/tether-root (a full filesystem?)");
}

/// Something else at the private directory's path (a file root made there): not a directory
/// of the user's own, as it is, not one that could not be made (stop 59 tester t94: "could not
/// be made (a full filesystem, or its parent not writable by the user?)").
#[test]
fn a_file_where_the_private_directory_goes_is_said_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tether-root"), "not a directory\n").unwrap();
    let lab = Lab::builder().names(&["host1"]).start();
    lab.set_env("host1", &[("TMPDIR", tmp.path().to_str().unwrap())]);
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--", "echo ran"])
        .run();
    out.status(0)
        .stdout_contains("/tether-root is not a writable directory of the user's own")
        .stdout_contains("host1 | ran\n")
        .stdout_lacks("could not be made");
}

/// The private directory not there and not made: a filesystem out of inodes (stop 58 tester
/// t93).
#[test]
fn a_private_directory_that_cannot_be_made_is_said_as_such() {
    let no_inodes = |tmp: &std::path::Path| {
        for i in 0.. {
            if std::fs::write(tmp.join(format!("f{i}")), "").is_err() {
                break;
            }
        }
    };
    run_directly_on_a_small_tmp(
        "1m,nr_inodes=8",
        no_inodes,
        "/tether-root could not be made (a full filesystem",
    );
}

/// A host without one of the programs the supervisor runs (neither in /usr/bin and /bin, where
/// tether looks first, nor in the login shell's `PATH`): commands run directly, once each, and
/// the warning names every one missing (stop 59 tester t95: without `mkdir` or `chmod` the
/// private directory was said to be none of the user's own, without `head`, `dd` or `wc` a
/// program was said to have failed, and without `rm` every command's files stayed behind;
/// stop 60 tester t96: of several missing, only the first was named). The programs are hidden
/// in the host's own mount namespace.
#[test]
fn a_host_without_a_program_the_supervisor_runs_is_said_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::builder().names(&["host1"]).start();
    let marker = lab.host("host1").root_dir.join("marker");
    let programs = tether::ssh::supervisor::PROGRAMS;
    let mut cases: Vec<Vec<&str>> = programs.split(' ').map(|p| vec![p]).collect();
    cases.push(vec!["dd", "head", "sleep"]);
    lab.set_env("host1", &[("TMPDIR", tmp.path().to_str().unwrap())]);
    for (n, missing) in cases.iter().enumerate() {
        lab.without_programs("host1", missing);
        lab.hide_programs("host1", missing);
        let out = support::tether::Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["run", "--hosts", "host1", "--"])
            .arg("echo ran >> /srv/marker; echo out; echo err >&2; exit 3")
            .run();
        lab.show_programs("host1", missing);
        let named: Vec<String> = missing.iter().map(|p| format!("`{p}`")).collect();
        out.status(1)
            .stdout_contains(&format!(
                "commands run without tether's supervisor on this host (neither /usr/bin, /bin \
                 nor the login shell's PATH has {}; the supervisor runs {}): a command whose \
                 connection",
                named.join(", "),
                programs.replace(' ', ", ")
            ))
            .stdout_contains("host1 | out\n")
            .stdout_contains("host1 ! err\n")
            .stdout_contains("exit status 3")
            .stdout_lacks("is not a writable directory")
            .stdout_lacks("failed (the filesystem");
        let ran = std::fs::read_to_string(&marker).unwrap();
        assert_eq!(ran, "ran\n".repeat(n + 1), "{missing:?}");
        let left = support::lab::supervisor_files_left(tmp.path());
        assert!(left.is_empty(), "{missing:?}: {left:?}");
    }
}

/// Programs of the user's first in `PATH` with the names of the supervisor's (a `~/bin/cat`
/// that is `bat`, an `rm` that moves files to a trash) do not carry tether's work: it finds
/// its own in /usr/bin and /bin first, and the command still runs with the login shell's
/// `PATH` (stop 60 tester t96: a `cat` or `dd` that copied nothing lost the command's output
/// and the run said `ok`; a `cat` that hung had the connection taken for lost every 15 s; an
/// `rm` that failed left every command's files). Here every one of them exits 0 having done
/// nothing, and prints what it was asked (to its stderr, which tether's scripts send nowhere
/// or the command would show).
#[test]
fn the_users_programs_named_as_the_supervisors_do_not_carry_its_work() {
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::builder().names(&["host1"]).start();
    let stubs = lab.dir().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    for program in tether::ssh::supervisor::PROGRAMS.split(' ') {
        let stub = stubs.join(program);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"stub {program} $*\" >&2\n"),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", stubs.display());
    lab.set_env(
        "host1",
        &[("TMPDIR", tmp.path().to_str().unwrap()), ("PATH", &path)],
    );
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--"])
        .arg("echo out; echo err >&2; echo \"PATH=$PATH\"; cat </dev/null; exit 3")
        .run();
    out.status(1)
        .stdout_contains("host1 | out\n")
        .stdout_contains("host1 ! err\n")
        .stdout_contains(&format!("host1 | PATH={path}\n"))
        // The command's own `cat` is the user's.
        .stdout_contains("host1 ! stub cat \n")
        .stdout_contains("exit status 3")
        .stdout_lacks("without tether's supervisor");
    for program in tether::ssh::supervisor::PROGRAMS.split(' ') {
        if program != "cat" {
            assert!(
                !out.stdout.contains(&format!("stub {program}")),
                "{}",
                out.stdout
            );
        }
    }
    // The files were removed at the run's end by the real `rm` (the day's sweep leaves its
    // mark).
    let left = support::lab::supervisor_files_left(tmp.path());
    assert!(left.is_empty(), "{left:?}");
}
