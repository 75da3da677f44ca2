//! The lock as a real lock: taken atomically before any step (hooks of deploy:starting and
//! deploy:check included), exactly one of two deploys started together proceeds, a lock that
//! is empty, junk or not a file counts as held, a full disk leaves no lock behind.

use super::*;

use std::io::Write as _;
use std::process::Stdio;

/// A start line for deploys: each waits in `sh`, reading one byte of a FIFO that the test
/// holds open, then execs tether; one write of a newline per waiting run releases them at the
/// same instant (spawning processes one after the other can take longer than the 50 ms the
/// race needs on a loaded machine).
struct StartLine {
    path: PathBuf,
    fifo: fs::File,
}

impl StartLine {
    fn new(dir: &Dir) -> Self {
        let path = dir.path.join("start-line");
        let _ = fs::remove_file(&path);
        assert!(Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success());
        // Read and write: opening it never blocks, and readers never see end-of-file.
        let fifo = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        StartLine { path, fifo }
    }

    /// `deploy` as `user`, keeping every release, waiting on the line; `extra` arguments after.
    fn deploy(
        &self,
        dir: &Dir,
        lab: &Lab,
        release: &str,
        user: &str,
        extra: &[&str],
    ) -> std::process::Child {
        Command::new("sh")
            .arg("-c")
            .arg("read _ < \"$0\"; exec \"$@\" </dev/null")
            .arg(&self.path)
            .arg(env!("CARGO_BIN_EXE_tether"))
            .arg("-F")
            .arg(lab.ssh_config())
            .args(["deploy", "-s", &format!("release_timestamp={release}")])
            .args([
                "-s",
                &format!("local_user={user}"),
                "-s",
                "keep_releases=100",
            ])
            .args(extra)
            .current_dir(&dir.path)
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Releases `runs` once each is reading the line (its stdin is the FIFO).
    fn release(&mut self, runs: &[&std::process::Child]) {
        for run in runs {
            let stdin = format!("/proc/{}/fd/0", run.id());
            wait_until("a run did not reach the start line", || {
                fs::read_link(&stdin).is_ok_and(|p| p == self.path)
            });
        }
        self.fifo.write_all(&vec![b'\n'; runs.len()]).unwrap();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn of_two_deploys_started_together_exactly_one_proceeds_and_the_other_changes_nothing() {
    let lab = lab();
    let dir = Dir::new("race");
    let app = App::new(&dir);
    // Lean (16 deploys; 40 took a minute and a half of a CI run's cores, beside the others):
    // the four hosts and the step before deploy:check that writes into shared/, nothing else
    // of the test recipe. Both runs are released by one write to the start line, so every
    // round is a race.
    dir.write(
        "deploy.rhai",
        &format!(
            r#"
import "deploy" as deploy;
set("application", "shop");
set("repo_url", "{}");
set("deploy_to", "/srv/shop");
for h in ["web1", "web2", "resque1", "resque2"] {{ server(h, #{{ roles: ["app"] }}); }}
task("app:config", || on("all", |host| run(`echo ${{fetch("release_name")}} >> ${{fetch("shared_path")}}/config/written-by.log`)));
before("deploy:check", "app:config");
"#,
            app.bare.display()
        ),
    );
    let mut line = StartLine::new(&dir);
    let mut winners: Vec<String> = Vec::new();
    for i in 0..8 {
        let a = format!("2025010101{i:02}01");
        let b = format!("2025010101{i:02}02");
        let first = line.deploy(&dir, &lab, &a, "alice@a", &[]);
        let second = line.deploy(&dir, &lab, &b, "bob@b", &[]);
        line.release(&[&first, &second]);
        let (oa, ob) = (
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        );
        let (winner, loser) = match (oa.status.code(), ob.status.code()) {
            (Some(0), Some(1)) => (a, ob),
            (Some(1), Some(0)) => (b, oa),
            codes => panic!(
                "run {i}: exit codes {codes:?}\n--- {a} ---\n{}{}\n--- {b} ---\n{}{}",
                text(&oa.stdout),
                text(&oa.stderr),
                text(&ob.stdout),
                text(&ob.stderr)
            ),
        };
        let (stdout, stderr) = (text(&loser.stdout), text(&loser.stderr));
        assert!(
            stderr.contains("another deploy holds the lock (/srv/shop/deploy.lock):"),
            "run {i}: {stderr}"
        );
        // The loser stopped at the lock: no step after it ran.
        assert!(!stdout.contains("▶ deploy:starting"), "run {i}: {stdout}");
        winners.push(winner);
        for h in HOSTS {
            assert_eq!(releases(&lab, h), winners, "run {i}: {h}");
            // The hook before deploy:check ran for the winners only.
            let written = read(shop(&lab, h).join("shared/config/written-by.log"));
            assert_eq!(written.lines().collect::<Vec<_>>(), winners, "run {i}: {h}");
            let log = read(shop(&lab, h).join("revisions.log"));
            assert_eq!(log.lines().count(), winners.len(), "run {i}: {h}");
        }
        assert_unlocked(&lab);
    }
}

/// Two runs of one user with one release name, started in the same second on hosts that
/// overlap, have the same holder line: the lock each finds is the other's, said as such, not
/// taken for its own on a shared deploy_to (stop 34 tester: "deploy_to is one directory for
/// several hosts of this run ... already holds this run's own lock", 3 times of 3).
#[test]
fn a_twin_runs_lock_is_another_deploys() {
    let lab = lab();
    let dir = Dir::new("twins");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let mut line = StartLine::new(&dir);
    for i in 1..=3 {
        let release = format!("2025010101000{i}");
        let first = line.deploy(&dir, &lab, &release, "ci@build", &["--hosts", "web1,web2"]);
        let second = line.deploy(
            &dir,
            &lab,
            &release,
            "ci@build",
            &["--hosts", "web2,resque1"],
        );
        line.release(&[&first, &second]);
        let outs = [
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        ];
        let said: Vec<String> = outs
            .iter()
            .map(|o| text(&o.stdout) + text(&o.stderr).as_str())
            .collect();
        let codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
        assert!(codes.contains(&Some(1)), "round {i}: {codes:?}\n{said:#?}");
        for (code, out) in codes.iter().zip(&said) {
            assert!(!out.contains("this run's own lock"), "round {i}: {out}");
            if *code == Some(1) {
                assert!(
                    out.contains("another deploy holds the lock (/srv/shop/deploy.lock):"),
                    "round {i}: {out}"
                );
            }
        }
        let _ = tether(&dir, &lab, &["deploy:unlock"]);
    }
}

#[test]
fn a_lock_that_is_empty_junk_or_not_a_file_is_held_and_a_full_disk_leaves_none() {
    let lab = lab();
    let dir = Dir::new("junk-lock");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let lock = |h: &str| shop(&lab, h).join("deploy.lock");
    // Empty (a deploy between creating and writing it, or a disk that filled up), junk, a
    // directory, a link to nothing: each counts as held and is described.
    fs::write(lock("web1"), "").unwrap();
    // A NUL alone is no text either (stop 67 tester t115: bash dropped it from what it read,
    // warning on the host's stderr, and the rest could pass for text).
    fs::write(lock("web2"), b"\x00junk\nmore\n").unwrap();
    fs::create_dir(lock("resque1")).unwrap();
    std::os::unix::fs::symlink("/nowhere", lock("resque2")).unwrap();
    let before: Vec<_> = HOSTS.iter().map(|h| snapshot(&shop(&lab, h))).collect();
    deploy(&dir, &lab, "20250101000002", &[])
        .status(1)
        .stderr_contains(&format!(
            "another deploy holds the lock (/srv/shop/deploy.lock):\n  \
             web1: an empty lock file (a deploy between creating and writing it, or one that died or ran out of disk space before writing it)\n  \
             web2: a lock file tether did not write, not text (its printable part: \"junk\")\n  \
             resque1: a directory is in the lock's place\n  \
             resque2: a symbolic link to \"/nowhere\" is in the lock's place\n\
             If none of these is a deploy still running, `{}` removes them all (each line's \
             hosts alone: --hosts).",
            said_command(&lab, "deploy:unlock")
        ))
        .stdout_lacks("null byte")
        .stderr_lacks("null byte");
    // Refused before any step: nothing changed, the hook before deploy:check did not run.
    for (h, snap) in HOSTS.iter().zip(&before) {
        assert_unchanged(&shop(&lab, h), snap, h);
    }
    let out = tether(&dir, &lab, &["deploy:unlock"]);
    out.status(0)
        .stdout_contains("web1    | removing an empty lock\n")
        // Not a lock of tether's: not said as one (stop 51 tester t77: `removing the lock of
        // junk lock`).
        .stdout_contains("web2    | removing a lock file tether did not write, not text (its printable part: junk)\n")
        .stdout_contains("resque1 | removing an empty directory in the lock's place\n")
        .stdout_contains("resque2 | removing a symbolic link to /nowhere in the lock's place\n");
    for h in HOSTS {
        assert!(fs::symlink_metadata(lock(h)).is_err(), "{h}");
    }

    // A holder line with a NUL byte, a CR or an ESC is none of tether's, in the deploy it
    // stops and in the unlock that removes it (tester t119: deploy:unlock said "removing the
    // lock of ci@build ... (release ...)" of one with a NUL, which it had dropped); one in
    // UTF-8 (a local_user of José) is tether's, and was said to be no text.
    let since = "since 2025-01-02 03:04:05 UTC (release 20250102030405)";
    fs::write(
        lock("web1"),
        format!("ci@build {since}").replace("rel", "rel\0") + "\nid 1\n",
    )
    .unwrap();
    fs::write(lock("web2"), format!("ci@build {since}\r\nid 2\n")).unwrap();
    fs::write(lock("resque1"), format!("José@laptop {since}\nid 3\n")).unwrap();
    fs::write(lock("resque2"), format!("\x1b[2Jci@build {since}\nid 4\n")).unwrap();
    let not_text = |h: &str| {
        format!("{h}: a lock file tether did not write, not text (its printable part: \"ci@build {since}\")")
    };
    deploy(&dir, &lab, "20250101000002", &[])
        .status(1)
        .stderr_contains(&not_text("web1, web2"))
        .stderr_contains(&format!("resque1: locked by José@laptop {since}\n"))
        .stderr_contains(
            &not_text("resque2").replace("(its printable part: \"", "(its printable part: \"[2J"),
        );
    let not_text = |h: &str, pad: &str| {
        format!("{h}{pad} | removing a lock file tether did not write, not text (its printable part: ci@build {since})\n")
    };
    tether(&dir, &lab, &["deploy:unlock"])
        .status(0)
        .stdout_contains(&not_text("web1", "   "))
        .stdout_contains(&not_text("web2", "   "))
        .stdout_contains(&format!(
            "resque1 | removing the lock of José@laptop {since}\n"
        ))
        .stdout_contains(
            &not_text("resque2", "").replace("(its printable part: ", "(its printable part: [2J"),
        );
    for h in HOSTS {
        assert!(fs::symlink_metadata(lock(h)).is_err(), "{h}");
    }
    // Bytes that are not UTF-8, which tether never writes (tester t120: `b\377ob since ...`
    // was taken for a holder, shown with U+FFFD).
    fs::write(
        lock("web1"),
        [b"b\xffob ".as_slice(), since.as_bytes(), b"\nid 5\n"].concat(),
    )
    .unwrap();
    deploy(&dir, &lab, "20250101000002", &["--hosts", "web1"])
        .status(1)
        .stderr_contains(&format!(
            "web1: a lock file tether did not write, not text (its printable part: \"bob {since}\")"
        ))
        .stderr_lacks("\u{fffd}");
    tether(&dir, &lab, &["deploy:unlock", "--hosts", "web1"])
        .status(0)
        .stdout_contains(&format!(
            "| removing a lock file tether did not write, not text (its printable part: bob {since})\n"
        ));
    assert!(fs::symlink_metadata(lock("web1")).is_err());

    // A link to a file (here a secret) is a link, its target never read; a FIFO is not a
    // file, and reading it would block.
    std::os::unix::fs::symlink("/srv/shop/shared/config/secrets.yml", lock("web1")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(lock("web2"))
        .status()
        .unwrap();
    assert!(fifo.success());
    deploy(&dir, &lab, "20250101000002", &[])
        .status(1)
        .stderr_contains("web1: a symbolic link to \"/srv/shop/shared/config/secrets.yml\" is in the lock's place")
        .stderr_contains("web2: something that is not a file (a FIFO, a socket, a device) is in the lock's place")
        .stderr_lacks("token: web1");
    tether(&dir, &lab, &["deploy:unlock"])
        .status(0)
        .stdout_contains("web1    | removing a symbolic link to /srv/shop/shared/config/secrets.yml in the lock's place\n")
        .stdout_contains("web2    | removing something that is not a file in the lock's place\n")
        .stdout_lacks("token: web1");
    assert_eq!(
        read(shop(&lab, "web1").join("shared/config/secrets.yml")),
        "token: web1\n"
    );
    for h in HOSTS {
        assert!(fs::symlink_metadata(lock(h)).is_err(), "{h}");
    }

    // A directory that holds something is no lock to remove with all it holds (stop 34
    // tester: `rm -rf`, where Deployer's `rm -f` refuses): refused, naming it.
    fs::create_dir(lock("resque1")).unwrap();
    fs::write(lock("resque1").join("notes"), "kept\n").unwrap();
    tether(&dir, &lab, &["deploy:unlock", "--hosts", "resque1"])
        .status(1)
        .stderr_contains("/srv/shop/deploy.lock is a directory that holds files, not a lock: not removed (remove it by hand if nothing in it is needed)");
    assert_eq!(read(lock("resque1").join("notes")), "kept\n");
    fs::remove_dir_all(lock("resque1")).unwrap();

    // A full disk on web2 (a tmpfs that only web2 sees): the lock cannot be written there.
    // The run says so, releases the locks it took elsewhere and leaves nothing behind.
    in_host(
        &lab,
        "web2",
        "mount -t tmpfs -o size=64k tmpfs /srv/shop && mkdir -p /srv/shop/releases && \
         dd if=/dev/zero of=/srv/shop/fill bs=4k 2>/dev/null; true",
    );
    deploy(&dir, &lab, "20250101000003", &[])
        .status(1)
        .stderr_contains("could not take the lock everywhere:\n  web2: could not take the lock /srv/shop/deploy.lock: cannot write it: ")
        .stderr_contains("No space left on device; nothing of it is left there");
    assert_eq!(in_host(&lab, "web2", "ls -A /srv/shop"), "fill\nreleases\n");
    in_host(&lab, "web2", "umount /srv/shop");
    assert_unlocked(&lab);
    deploy(&dir, &lab, "20250101000004", &[]).status(0);
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000004"],
            "{h}"
        );
    }
}

/// Two tasks of the command line that share a task of the flow are refused where the second
/// would use it again, rather than have it skipped (fresh-eyes finding, stop 28: `tether
/// deploy:unlock deploy` exited 0 and left the deploy's lock on every host, its
/// `deploy:unlock` skipped as already run; `tether deploy deploy:rollback` rolled back with
/// its lock, its publishing and its unlock skipped, and removed the live release).
#[test]
fn flows_sharing_a_task_on_one_command_line_are_refused_not_half_run() {
    let lab = lab();
    let dir = Dir::new("two-flows");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    let out = tether(
        &dir,
        &lab,
        &[
            "deploy",
            "deploy:rollback",
            "-s",
            "release_timestamp=20250101000003",
        ],
    );
    out.status(4)
        .stderr_contains("already ran in this run, for `deploy`, and a task runs once per run")
        // The deploy had finished: deploy:failed does not take the refusal for its failure
        // (fresh-eyes finding: "release ... is live (the failure came after publishing)").
        .stdout_lacks("is live");
    let say = format!("{}{}", out.stdout, out.stderr);
    for h in HOSTS {
        // The deploy's release is live and kept; nothing was rolled back.
        let live = current(&lab, h).unwrap_or_else(|| panic!("{h}: no current\n{say}"));
        assert!(live.ends_with("20250101000003"), "{h}: {live}\n{say}");
        assert!(complete(&lab, h, "20250101000003"), "{h}\n{say}");
        assert!(complete(&lab, h, "20250101000002"), "{h}\n{say}");
    }
    assert_unlocked(&lab);
    // The same after a rollback (fresh-eyes finding: "the rollback switched current to it
    // before the failure; release ..., rolled back from, is still there", which it was not).
    tether(
        &dir,
        &lab,
        &[
            "deploy:rollback",
            "deploy",
            "-s",
            "release_timestamp=20250101000009",
        ],
    )
    .status(4)
    .stdout_lacks("is live");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000002"),
            "{h}"
        );
    }
    assert_unlocked(&lab);

    let out = tether(
        &dir,
        &lab,
        &[
            "deploy:unlock",
            "deploy",
            "-s",
            "release_timestamp=20250101000004",
        ],
    );
    let say = format!("{}{}", out.stdout, out.stderr);
    assert_ne!(out.status, 0, "{say}");
    assert!(
        say.contains("task `deploy:unlock` already ran in this run, for `deploy:unlock`"),
        "{say}"
    );
    // The warning is placed at the stdlib's invoke, as the error is (fresh-eyes finding,
    // stop 30: the warning said deploy.rhai at the stdlib's line).
    let warning = say
        .lines()
        .find(|l| l.contains("invoke(\"deploy:unlock\") runs nothing"))
        .unwrap_or_else(|| panic!("no warning\n{say}"));
    assert!(warning.starts_with("warning: stdlib/deploy.rhai:"), "{say}");
    // The deploy ran (its release live, its lock released by deploy:failed): nothing is left
    // half done, and the refusal said why.
    for h in HOSTS {
        let live = current(&lab, h).unwrap_or_else(|| panic!("{h}: no current\n{say}"));
        assert!(live.ends_with("20250101000004"), "{h}: {live}\n{say}");
    }
    assert_unlocked(&lab);
}

/// Ctrl-C while the hosts are being locked leaves no lock of this run behind (fresh-eyes
/// finding, stop 28: with one host slow to answer, SIGINT left this run's lock on every host,
/// nothing said, and the next deploy was refused by it: the hosts locked were recorded only
/// once every host had answered). Here web2's `rm` of its lock's temporary file hangs (its
/// lock is already in place); tether is interrupted then.
#[test]
fn an_interrupt_while_locking_leaves_no_lock_of_this_run() {
    let lab = lab();
    let dir = Dir::new("lock-interrupted");
    let app = App::new(&dir);
    recipe(&dir, &app);
    hang_rm(&lab, "web2", "*deploy.lock.*", "", 2);
    let child = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&["deploy", "-s", "release_timestamp=20250101000001"])
        .spawn();
    wait_until("web2's rm to hang", || rm_hangs(&lab, "web2", 2));
    assert!(shop(&lab, "web2").join("deploy.lock").exists());
    // SAFETY: kill(2) on the tether this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    unhang(&lab, "web2", 2);
    let say = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{say}");
    for h in HOSTS {
        let lock = shop(&lab, h).join("deploy.lock");
        assert!(!lock.exists(), "{h}: lock left behind\n{say}");
    }
    // The next deploy is not refused by it.
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
}

/// Regression (fresh-eyes finding, stop 28): after `deploy:cleanup` ran alone, a deploy later
/// on the same command line took its lock as "(a cleanup)": the lock's holder line, which
/// another deploy's refusal shows, said the wrong thing.
#[test]
fn a_deploy_after_a_cleanup_on_one_command_line_locks_as_a_deploy() {
    let lab = lab();
    let dir = Dir::new("cleanup-then-deploy");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let before = utc_now();
    let run = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy:cleanup",
            "deploy",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "hold_seconds=2",
            "-s",
            "local_user=ci@build",
        ])
        .spawn();
    wait_until("the build step did not start", || {
        HOSTS.iter().all(|h| build_running(&lab, h))
    });
    let holder = read(shop(&lab, "web1").join("deploy.lock"));
    let after = utc_now();
    let _ = run.wait_with_output().unwrap();
    let line = holder.lines().next().unwrap_or_default();
    let since = line
        .strip_prefix("ci@build since ")
        .and_then(|l| l.strip_suffix(" UTC (release 20250101000002)"))
        .unwrap_or_else(|| panic!("{holder}"));
    // Since when it is held, by this machine's clock: not the release's pinned timestamp
    // (stop 32 carried over: "since 2025-01-01 00:00:02" for a lock taken today).
    let since: String = since.chars().filter(char::is_ascii_digit).collect();
    assert!(
        before <= since && since <= after,
        "{before} {since} {after}: {holder}"
    );
}

/// A temporary file a stopped lock step left beside the lock (`deploy.lock.PID`, a minute
/// old) is removed by the next lock step; a fresh one (a lock step under way) and other files
/// are left alone, and so are links beside current that no switch made (fresh-eyes finding:
/// Ctrl-C while locking left one behind for good).
#[test]
fn a_lock_steps_leftover_temporary_file_is_removed_later() {
    let lab = lab();
    let dir = Dir::new("lock-leftover");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let shop1 = shop(&lab, "web1");
    fs::create_dir_all(&shop1).unwrap();
    let others = [
        "deploy.lock.notes",
        "deploy.lock.2024-notes",
        "deploy.lock.7.bak",
        // No shell's pid, or not what a lock step of that pid writes (stop 39 tester t32:
        // `deploy.lock.0` and a link `deploy.lock.123` were removed too).
        "deploy.lock.0",
        "deploy.lock.04242",
        "deploy.lock.5150",
        "deploy.lock.123",
        // Its id line `id 60606` but for a NUL byte, which the shell dropped from what it read
        // (stop 67 tester t115's kind: a NUL read as nothing).
        "deploy.lock.60606",
    ];
    for name in ["deploy.lock.4242", "deploy.lock.77"].iter().chain(&others) {
        let pid = name.rsplit('.').next().unwrap();
        let text = match *name {
            "deploy.lock.5150" => "notes of mine\n".to_string(),
            "deploy.lock.60606" => "someone\nid 606\x0006\n".to_string(),
            _ => format!("someone\nid {pid}\n"),
        };
        if *name == "deploy.lock.123" {
            fs::write(shop1.join("notes"), "someone\nid 123\n").unwrap();
            std::os::unix::fs::symlink("notes", shop1.join(name)).unwrap();
            continue;
        }
        fs::write(shop1.join(name), text).unwrap();
    }
    // Links beside current that no switch of tether's made (its are `.current-restore` and
    // `.current-RELEASE`).
    std::os::unix::fs::symlink("/srv/elsewhere", shop1.join(".current-other")).unwrap();
    std::os::unix::fs::symlink("/srv/elsewhere", shop1.join(".current-2024-notes")).unwrap();
    let aged = Command::new("touch")
        .args(["-h", "-d", "-3 minutes"])
        .arg(shop1.join("deploy.lock.4242"))
        .args(others.iter().map(|n| shop1.join(n)))
        .status()
        .unwrap();
    assert!(aged.success());
    deploy(&dir, &lab, "20250101000001", &[])
        .status(0)
        .stdout_lacks("null byte")
        .stderr_lacks("null byte");
    assert!(!shop1.join("deploy.lock.4242").exists());
    assert!(shop1.join("deploy.lock.77").exists(), "a fresh one is left");
    // Not temporary files of a lock step (stop 39 tester t31: `deploy.lock.2024-notes`, two
    // hours old, was removed).
    for name in others {
        assert!(shop1.join(name).symlink_metadata().is_ok(), "{name}");
    }
    assert!(shop1.join("notes").exists());
    for name in [".current-other", ".current-2024-notes"] {
        assert!(shop1.join(name).is_symlink(), "{name}");
    }
    assert_unlocked(&lab);
}

/// The lock step's own temporary file (`deploy.lock.PID`) is made new: one of that name that
/// is already there, a link included, is never written over or through (stop 40 tester t35: a
/// link `deploy.lock.PID -> victim` had the holder lines written into the victim, and was
/// removed). A link waits at every pid the host's shell could have, so the step meets one.
#[test]
fn the_lock_steps_temporary_file_never_writes_through_what_is_there() {
    let lab = lab();
    let dir = Dir::new("lock-noclobber");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let shop1 = shop(&lab, "web1");
    let victims = lab.host("web1").root_dir.join("victims");
    fs::create_dir_all(&victims).unwrap();
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_max <= 1 << 22, "{pid_max}");
    let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Every pid where there are few, else the next 40000 of them.
    let pids: Vec<u32> = if pid_max <= 40_000 {
        (2..pid_max).collect()
    } else {
        (1..=40_000).map(|i| (last + i) % pid_max).collect()
    };
    for pid in &pids {
        std::os::unix::fs::symlink(
            format!("/srv/victims/v{pid}"),
            shop1.join(format!("deploy.lock.{pid}")),
        )
        .unwrap();
    }
    deploy(&dir, &lab, "20250101000001", &[])
        .status(1)
        .stderr_contains("web1: could not take the lock /srv/shop/deploy.lock: cannot write it: ");
    assert_eq!(fs::read_dir(&victims).unwrap().count(), 0);
    assert_unlocked(&lab);
}

/// A host that was never reached holds no lock of the run: the failure says so, and
/// deploy:failed does not list a lock "perhaps of this run" there (fresh-eyes finding: a host
/// whose sshd was down from the start was listed as one).
#[test]
fn a_host_never_reached_is_not_said_to_hold_a_lock() {
    let lab = lab();
    let dir = Dir::new("lock-unreached");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    lab.stop_host("resque2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    // A host not reached decides the exit code (README's table: 3), though the stdlib raises
    // the failure again with its own words (fresh-eyes finding: exit 1).
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    // Why, not how many hosts failed (stop 33: "resque2: 1 of 1 host failed; no lock ...").
    out.stderr_contains("\n  resque2: cannot connect")
        .stderr_contains("; no lock was taken there")
        .stderr_lacks("host failed; no lock")
        .stdout_lacks("perhaps a lock of this run")
        .stdout_lacks("left behind");
    for h in ["web1", "web2", "resque1"] {
        assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }
}

/// Ctrl-C while a host is still connecting for the lock step: deploy:failed releases the locks
/// taken, and says that host was never reached rather than listing a lock of this run there
/// (fresh-eyes finding: "left behind: silent: lock (this run's)", with a `deploy:unlock` hint
/// that would remove whatever lock is there).
#[test]
fn ctrl_c_while_a_host_connects_for_the_lock_leaves_nothing_said_there() {
    let lab = lab();
    let dir = Dir::new("lock-interrupted");
    let app = App::new(&dir);
    dir.write(
        "deploy.rhai",
        &(recipe_text(&app, false) + "server(\"zzz\", #{ roles: [\"app\"] });\n"),
    );
    // Accepts (the kernel does) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path.join("ssh_config");
    fs::write(
        &config,
        format!(
            "Host zzz\n  HostName 127.0.0.1\n  Port {}\n  ConnectTimeout 120\n{}",
            silent.local_addr().unwrap().port(),
            fs::read_to_string(lab.ssh_config()).unwrap()
        ),
    )
    .unwrap();
    let child = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&config)
        .args(&["deploy", "-s", "release_timestamp=20250101000001"])
        .spawn();
    wait_until("the lock was never taken", || {
        HOSTS
            .iter()
            .all(|h| shop(&lab, h).join("deploy.lock").exists())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) on the tether this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(
        text.contains("zzz: never reached in this run: no lock of it there"),
        "{text}"
    );
    assert!(!text.contains("zzz: could not release the lock"), "{text}");
    assert!(!text.contains("left behind"), "{text}");
    assert_unlocked(&lab);
    drop(silent);
}

/// Where the lock step was stopped before it said whether it took the lock, and another
/// deploy's lock is there, that lock was never this run's: said so, and left alone (stop 38
/// tester t26: "the lock is no longer this run's", as if this run had held it and lost it).
#[test]
fn a_lock_never_this_runs_is_not_said_to_be_no_longer_its() {
    let lab = lab();
    let dir = Dir::new("lock-never-ours");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let other = "ops@laptop since 2025-01-01 00:00:00 UTC (release 20250101000009)\nid 4242\n";
    let lock = shop(&lab, "web2").join("deploy.lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    fs::write(&lock, other).unwrap();
    // Its lock step waits before it links the lock: stopped there, it never says.
    shadow(&lab, "web2", "ln", "sleep 17; exec /bin/ln \"$@\"\n");
    let child = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&["deploy", "-s", "release_timestamp=20250101000001"])
        .spawn();
    wait_until("the lock step never waited on web2", || {
        lab.host_pids("web2").into_iter().any(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\x0017"))
        })
    });
    // SAFETY: kill(2) on the tether this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    unshadow(&lab, "web2");
    let text = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(!text.contains("no longer this run's"), "{text}");
    assert!(
        text.contains("web2: the lock there is not this run's (locked by ops@laptop since"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&lock).unwrap(), other, "left alone");
    for h in ["web1", "resque1", "resque2"] {
        assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}: {text}");
    }
}

/// A place set again during the run (a hook's `set("deploy_to", ...)` after deploy:prepare) is
/// refused where it is next used, and the run's lock is released where it was taken
/// (fresh-eyes finding, stop 30: the release and current went to the new place, which
/// deploy:check never saw, and the lock stayed at the old one for good, exit 0). A lock this
/// run took that something removed during the run is said at the unlock.
#[test]
fn a_place_set_again_during_the_run_is_refused_and_the_lock_released() {
    let lab = lab();
    let dir = Dir::new("moved-place");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    for (set, key) in [
        ("set(\"deploy_to\", \"/srv/other\")", "deploy_to"),
        ("set(\"lock_file\", \"/srv/other.lock\")", "lock_file"),
        ("set(\"current_path\", \"/srv/shop/live\")", "current_path"),
        // The release's own path (stop 32, re-test: current went to shared/ and the real
        // release was removed as unfinished, exit 0).
        (
            "set(\"release_path\", fetch(\"shared_path\"))",
            "release_path",
        ),
        // The hosts too (stop 33 tester: narrowed in a hook, the resque hosts kept an
        // unfinished release and their old current, exit 0).
        ("set(\"release_roles\", \"web\")", "release_roles"),
    ] {
        dir.write(
            "deploy.rhai",
            &format!(
                "{}after(\"deploy:started\", || {{ {set}; }});\n",
                recipe_text(&app, false)
            ),
        );
        let out = deploy(&dir, &lab, "20250101000002", &[]);
        out.status(4)
            .stderr_contains(&format!("{key} changed during the run, from "));
        assert_unlocked(&lab);
        for h in HOSTS {
            assert_eq!(
                current(&lab, h).as_deref(),
                Some("/srv/shop/releases/20250101000001"),
                "{set} {h}"
            );
            assert!(!lab.host(h).root_dir.join("other").exists(), "{set} {h}");
            assert!(
                !lab.host(h).root_dir.join("shop/live").exists(),
                "{set} {h}"
            );
            assert!(
                !shop(&lab, h).join("shared/.tether-complete").exists(),
                "{set} {h}"
            );
        }
    }
    // Widened in a hook: the resque hosts, never locked, get no release.
    dir.write(
        "deploy.rhai",
        &(recipe_text(&app, false)
            + "set(\"release_roles\", \"web\");\nafter(\"deploy:lock\", || { set(\"release_roles\", \"all\"); });\n"),
    );
    deploy(&dir, &lab, "20250101000002", &[])
        .status(4)
        .stderr_contains("release_roles changed during the run, from hosts web1, web2 to hosts web1, web2, resque1, resque2");
    assert_unlocked(&lab);
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
    }
    // The same roles, another host in them: said as such, not blamed on the set at the top
    // (stop 33 re-test: "(set at roles.rhai:5:1)", the line that never changed).
    dir.write(
        "deploy.rhai",
        &(recipe_text(&app, false)
            + "set(\"release_roles\", \"web\");\nafter(\"deploy:started\", || { role(\"web\", [\"resque1\"]); });\n"),
    );
    deploy(&dir, &lab, "20250101000002", &[])
        .status(4)
        .stderr_contains("release_roles \"web\" names other hosts than when the run checked it, from hosts web1, web2 to hosts web1, web2, resque1 (a role() or server() during the run)")
        .stderr_lacks("(set at deploy.rhai");
    assert_only(&lab, "20250101000001", "role() in a hook");
    // Removed during the run: said, not passed over.
    dir.write(
        "deploy.rhai",
        &(recipe_text(&app, false)
            + "after(\"deploy:started\", || { on(\"all\", \"rm /srv/shop/deploy.lock\"); });\n"),
    );
    deploy(&dir, &lab, "20250101000003", &[])
        .status(0)
        .stdout_contains(
            "this run's lock /srv/shop/deploy.lock was gone: something removed it during the run",
        );
}

/// A second signal exits at once, before deploy:failed can clean up: what the run leaves (its
/// lock, its unfinished release) is said as it exits, with the command that clears it, and
/// that command works (stop 32 re-test: only the remote commands left running were named; the
/// lock and the release were left without a word).
#[test]
fn a_second_signal_names_the_lock_and_release_it_leaves() {
    let lab = lab();
    let dir = Dir::new("second-signal");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let mut child = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "hold_seconds=30",
        ])
        .spawn_watched();
    wait_until("the build step did not start", || {
        HOSTS.iter().all(|h| build_running(&lab, h))
    });
    child.signal_twice(libc::SIGINT);
    let out = child.wait_with_output();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let hint = format!(
        "tether -F {} -s hold_seconds=30 {} deploy:cleanup --hosts resque1,resque2,web1,web2",
        lab.ssh_config().display(),
        unlock_own(&lab, "web1")
    );
    let expected = format!(
        "deploy: tether exited before deploy:failed could clean up; this run left:\n  \
        resque1, resque2, web1, web2: lock /srv/shop/deploy.lock (this run's), unfinished release 20250101000002\n\
        to clear it: `{hint}`\n"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    for h in HOSTS {
        assert!(shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }
    // The command it names, as given, clears it.
    let cleared = run_hint(&dir, &hint);
    assert!(cleared.status.success(), "{hint}: {cleared:?}");
    assert_only(&lab, "20250101000001", &stderr);
}

/// Hosts whose deploy_to is one directory (a shared file system, a ~USER whose home is one
/// path) meet this run's own lock: said as such, not as another deploy's (stop 33 tester:
/// "another deploy holds the lock ... locked by root@vm ... (release N)", the run's own), and
/// nothing is made there.
#[test]
fn hosts_sharing_deploy_to_are_told_so() {
    let lab = lab();
    let dir = Dir::new("shared-deploy-to");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let shared = tempfile::tempdir().unwrap();
    let to = shared.path().join("shop");
    fs::create_dir_all(to.join("shared/config")).unwrap();
    fs::write(to.join("shared/config/secrets.yml"), "s\n").unwrap();
    let out = deploy(
        &dir,
        &lab,
        "20250101000001",
        &["-s", &format!("deploy_to={}", to.display())],
    );
    out.status(1)
        .stderr_contains("deploy_to is one directory for several hosts of this run")
        .stderr_contains("already holds this run's own lock, taken on resque1")
        .stderr_lacks("another deploy holds the lock");
    assert!(!to.join("deploy.lock").exists());
    assert!(!to.join("releases/20250101000001").exists());
}

/// A second signal while deploy:failed cleans up after a failure: the run's own error is said
/// first (stop 33 tester: it was never printed, only "terminated again" and what was left),
/// then the remote commands left running (to be stopped before anything is cleared), then
/// what the run leaves.
#[test]
fn a_second_signal_during_deploy_failed_says_the_failure_first() {
    let lab = lab();
    let dir = Dir::new("second-signal-failed");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    hang_rm(&lab, "resque2", "*/.tether-removing.*", "", 8);
    let mut child = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "fail_on=web1",
        ])
        .spawn_watched();
    wait_until("deploy:failed's removal never hung", || {
        rm_hangs(&lab, "resque2", 8)
    });
    child.signal_twice(libc::SIGTERM);
    let out = child.wait_with_output();
    unhang(&lab, "resque2", 8);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let at = |what: &str| {
        stderr
            .find(what)
            .unwrap_or_else(|| panic!("lacks {what:?}: {stderr}"))
    };
    let failure = at("error: 1 of 4 hosts failed\nweb1: `");
    let command = at("resque2: `");
    let left = at("deploy: tether exited before deploy:failed could clean up; this run left:\n");
    assert!(failure < command && command < left, "{stderr}");
    assert!(
        stderr[command..].contains("may still be running: tether exited at a second signal"),
        "{stderr}"
    );
}

/// A release_roles that answers differently at each fetch (a closure) cannot split a step:
/// every on() of the run reaches the hosts deploy:prepare checked, and a step that finds it
/// naming others is refused before it runs (stop 33 re-test: flipped between the on() calls
/// of deploy:symlink:release, host3's current stayed on the old release while its new one was
/// marked complete, exit 0; widened in deploy:cleanup, a host never locked lost a release).
#[test]
fn a_release_roles_that_varies_never_splits_a_step() {
    let lab = lab();
    let dir = Dir::new("roles-flip");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    dir.write(
        "deploy.rhai",
        &(recipe_text(&app, false)
            + r#"set("release_roles", || {
    let n = fetch("rr_n", 0) + 1;
    set("rr_n", n);
    if fetch("flip", false) && n % 2 == 1 { ["web"] } else { "all" }
});
before("deploy:symlink:release", || set("flip", true));
"#),
    );
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    // Refused (exit 4) at whichever step found release_roles naming other hosts, or done; the
    // hosts never differ: one current on all of them, and the new release complete exactly
    // where current leads to it.
    assert!(
        out.status == 0 || out.status == 4,
        "exit {}: {}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    if out.status == 4 {
        out.stderr_contains("release_roles changed during the run");
    }
    let now: Vec<_> = HOSTS.iter().map(|h| current(&lab, h)).collect();
    assert!(now.iter().all(|c| *c == now[0]), "{now:?}\n{}", out.stderr);
    let live = now[0].as_deref() == Some("/srv/shop/releases/20250101000002");
    assert!(live || out.status == 4, "{now:?}\n{}", out.stdout);
    assert_unlocked(&lab);
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h).contains(&"20250101000002".to_string()),
            live,
            "{h}: {:?}",
            releases(&lab, h)
        );
        assert!(!live || complete(&lab, h, "20250101000002"), "{h}");
    }
}

/// The command a lock refusal says removes the lock acts on the hosts it was refused on, or on
/// this run's selection, never on hosts the run did not select, whose locks may be another
/// deploy's, live (stop 37 tester t25: the hint of a `--shard 2/2` deploy dropped `--shard`,
/// and run as said it removed the other shard's deploy's lock while that deploy ran).
#[test]
fn the_unlock_a_refusal_names_is_for_the_refused_hosts_or_the_runs_selection() {
    let lab = lab();
    let dir = Dir::new("unlock-hint");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let lock = |h: &str| shop(&lab, h).join("deploy.lock");
    // Held on two of the four hosts: the hint names those two.
    fs::write(lock("web1"), "").unwrap();
    fs::write(lock("resque1"), "").unwrap();
    deploy(&dir, &lab, "20250101000002", &[])
        .status(1)
        .stderr_contains(&format!(
            "If that deploy is no longer running, `{}` removes the lock.",
            said_command(&lab, "deploy:unlock --hosts web1,resque1")
        ));
    // Run as said, it removes those two and no other lock.
    fs::write(lock("web2"), "").unwrap();
    tether(&dir, &lab, &["deploy:unlock", "--hosts", "web1,resque1"]).status(0);
    assert!(!lock("web1").exists() && !lock("resque1").exists());
    assert!(lock("web2").exists());
    fs::remove_file(lock("web2")).unwrap();
    // Held on every host of a run that selected some: the hint keeps the selection.
    for (args, said) in [
        (vec!["--roles", "web"], "deploy:unlock --roles web"),
        (vec!["--shard", "1/2"], "deploy:unlock --shard 1/2"),
        (
            vec!["--hosts", "web2,resque2"],
            "deploy:unlock --hosts web2,resque2",
        ),
    ] {
        for h in HOSTS {
            fs::write(lock(h), "").unwrap();
        }
        deploy(&dir, &lab, "20250101000003", &args)
            .status(1)
            .stderr_contains(&format!(
                "If that deploy is no longer running, `{}` removes the lock.",
                said_command(&lab, said)
            ));
        for h in HOSTS {
            fs::remove_file(lock(h)).unwrap();
        }
    }
}

/// Folded, the command a lock refusal names selects its hosts as one set (`web[1-2]`), which
/// `--hosts` reads: run as printed, through sh, it removes those locks and no other.
#[test]
fn the_unlock_a_folded_refusal_names_runs_as_printed() {
    let lab = lab();
    let dir = Dir::new("unlock-folded");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let lock = |h: &str| shop(&lab, h).join("deploy.lock");
    fs::write(lock("web1"), "").unwrap();
    fs::write(lock("web2"), "").unwrap();
    let out = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .folded()
        .args(&["deploy", "-s", "release_timestamp=20250101000002"])
        .run();
    out.status(1);
    let said = said_command(&lab, "deploy:unlock --hosts 'web[1-2]'");
    out.stderr_contains(&format!(
        "If that deploy is no longer running, `{said}` removes the lock."
    ));
    fs::write(lock("resque1"), "").unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_tether")).parent().unwrap();
    let ran = Command::new("sh")
        .arg("-c")
        .arg(&said)
        .current_dir(&dir.path)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(ran.status.success(), "{ran:?}");
    assert!(!lock("web1").exists() && !lock("web2").exists());
    assert!(lock("resque1").exists());
}

/// The command a run's message gives to clear the lock it left names that lock by its holder
/// line (`deploy:unlock -s unlock_holder=LINE`), and removes it only where it is that run's:
/// another deploy's lock, taken there since or there all along (a host the run lost before its
/// lock step), is left (stop 37 tester t26: the command given removed another deploy's lock).
#[test]
fn the_unlock_a_run_leaves_removes_its_own_lock_only() {
    let lab = lab();
    let dir = Dir::new("unlock-own");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let lock = |h: &str| shop(&lab, h).join("deploy.lock");
    let ours = "ci@build since 2025-01-02 03:04:05 UTC (release 20250102030405)";
    let theirs = "alice@laptop since 2025-01-02 03:04:09 UTC (release 20250102030409)";
    fs::write(lock("web1"), format!("{ours}\nid 1234\n")).unwrap();
    fs::write(lock("web2"), format!("{theirs}\nid 99\n")).unwrap();
    // A NUL byte, which the shell's `read` drops: the line read is then that run's (tester
    // t116's kind, found in the unlock after: the lock step and the release markers had it).
    let nul = "ci@build since 2025-01-02 03:04:05 UTC (rel\0ease 20250102030405)\nid 1234\n";
    fs::write(lock("resque2"), nul).unwrap();
    let out = tether(
        &dir,
        &lab,
        &[
            "deploy:unlock",
            "-s",
            &format!("unlock_holder={ours}"),
            "--hosts",
            "web1,web2,resque1,resque2",
        ],
    );
    out.status(0)
        .stdout_contains(&format!("web1: removed the lock of {ours}\n"))
        .stdout_contains(&format!(
            "web2: the lock is not that run's (locked by {theirs}): left alone\n"
        ))
        .stdout_contains("resque1: not locked\n")
        .stdout_contains("resque2: the lock is not that run's (");
    assert!(!lock("web1").exists());
    assert_eq!(fs::read(lock("resque2")).unwrap(), nul.as_bytes());
    assert_eq!(
        fs::read_to_string(lock("web2")).unwrap(),
        format!("{theirs}\nid 99\n")
    );
}

/// The places a run makes, switches, locks and removes are deploy_to's: a `lock_file`,
/// `releases_path`, `shared_path`, `current_path` or `revision_log` outside it, two of them
/// one place, or a `release_path` that is not releases_path/release_name is refused before
/// anything connects, naming the variable, and what is there is left alone (stop 41 tester
/// t41: `-s lock_file=/srv/passwd` had deploy:unlock delete it; `-s release_path=/srv/important`
/// had deploy:failed remove that directory, saying "release removed").
#[test]
fn places_outside_deploy_to_are_refused_before_anything_connects() {
    let lab = lab();
    let dir = Dir::new("places-outside");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for h in HOSTS {
        let srv = lab.host(h).root_dir.clone();
        fs::write(srv.join("notalock"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::create_dir_all(srv.join("important")).unwrap();
        fs::write(srv.join("important/data.txt"), "keep\n").unwrap();
    }
    let logged_in: usize = HOSTS.iter().map(|h| lab.accepted_logins(h)).sum();
    for (task, set, says) in [
        ("deploy", "lock_file=/srv/notalock", "lock_file \"/srv/notalock\" is not inside deploy_to /srv/shop"),
        ("deploy:unlock", "lock_file=/srv/notalock", "lock_file \"/srv/notalock\" is not inside deploy_to /srv/shop"),
        ("deploy", "release_path=/srv/important", "release_path \"/srv/important\" is not releases_path/release_name (/srv/shop/releases/20250101000001)"),
        ("deploy", "release_path=/srv/shop/shared", "release_path \"/srv/shop/shared\" is not releases_path/release_name"),
        ("deploy", "releases_path=/srv/shop", "releases_path \"/srv/shop\" is not inside deploy_to /srv/shop"),
        ("deploy", "shared_path=/srv/shop/releases", "shared_path and releases_path are one place, \"/srv/shop/releases\""),
        ("deploy", "current_path=/", "current_path \"/\" is not inside deploy_to"),
        ("deploy", "revision_log=/srv/notalock", "revision_log \"/srv/notalock\" is not inside deploy_to"),
        ("deploy", "repo_path=/srv", "repo_path \"/srv\" holds deploy_to /srv/shop"),
        ("deploy:rollback", "lock_file=/srv/notalock", "is not inside deploy_to"),
        // Named by the one given (stop 42 tester t43: current_path, the stdlib's, was named).
        ("deploy", "shared_path=/srv/shop/current", "shared_path and current_path are one place, \"/srv/shop/current\""),
        // Nor inside current (a link each deploy switches) or releases (stop 42 tester t43:
        // a lock under current stayed in the old release; revision_log current/REVISION was
        // appended to the new release's REVISION).
        ("deploy", "lock_file=/srv/shop/current/deploy.lock", "lock_file \"/srv/shop/current/deploy.lock\" is inside current_path /srv/shop/current, a link each deploy switches to another release"),
        ("deploy:unlock", "lock_file=/srv/shop/current/deploy.lock", "lock_file \"/srv/shop/current/deploy.lock\" is inside current_path"),
        ("deploy", "revision_log=/srv/shop/current/REVISION", "revision_log \"/srv/shop/current/REVISION\" is inside current_path"),
        ("deploy", "current_path=/srv/shop/releases/20250101000009", "current_path \"/srv/shop/releases/20250101000009\" is inside releases_path /srv/shop/releases, the directory of the releases"),
        ("deploy", "shared_path=/srv/shop/releases/shared", "shared_path \"/srv/shop/releases/shared\" is inside releases_path"),
        ("deploy", "lock_file=/srv/shop/releases/x.lock", "lock_file \"/srv/shop/releases/x.lock\" is inside releases_path"),
        ("deploy", "releases_path=/srv/shop/current/releases", "releases_path \"/srv/shop/current/releases\" is inside current_path"),
        ("deploy", "repo_path=/srv/shop/releases/20250101000001", "repo_path \"/srv/shop/releases/20250101000001\" is inside releases_path"),
        ("deploy", "repo_path=/srv/shop/current/repo", "repo_path \"/srv/shop/current/repo\" is inside current_path"),
        // <home> is never a path where deploy_to has no ~ (stop 42 tester t43).
        ("deploy", "lock_file=<home>/srv/shop/x.lock", "lock_file \"<home>/srv/shop/x.lock\" holds \"<home>\", which is how tether writes a home it has not asked yet, never a path"),
    ] {
        tether(&dir, &lab, &[task, "-s", "release_timestamp=20250101000001", "-s", set])
            .status(4)
            .stderr_contains(says)
            .stderr_contains(&format!("(given as -s {set})"));
    }
    assert_eq!(
        HOSTS.iter().map(|h| lab.accepted_logins(h)).sum::<usize>(),
        logged_in,
        "a refused run connects to nothing"
    );
    for h in HOSTS {
        let srv = lab.host(h).root_dir.clone();
        assert_eq!(
            fs::read_to_string(srv.join("notalock")).unwrap(),
            "root:x:0:0:root:/root:/bin/sh\n",
            "{h}"
        );
        assert_eq!(
            fs::read_to_string(srv.join("important/data.txt")).unwrap(),
            "keep\n",
            "{h}"
        );
    }
    // Under ~ likewise (each host's home; checked as defined, the home left as <home>); the
    // text <home> given is never a path (stop 42 tester t43: `<home>/app/../../escrel` passed
    // as inside, and deploy:unlock removed a lock_file of `<home>/app/../../../srv/x`).
    for (set, says) in [
        (
            "release_path=/srv/important",
            "release_path \"/srv/important\" is not releases_path/release_name",
        ),
        (
            "lock_file=/srv/notalock",
            "lock_file \"/srv/notalock\" is not inside deploy_to <home>/apps/shop",
        ),
        (
            "releases_path=<home>/apps/shop/../../escrel",
            "releases_path \"<home>/apps/shop/../../escrel\" holds \"<home>\", which is how tether",
        ),
        (
            "lock_file=<home>/apps/shop/../../../srv/notalock",
            "lock_file \"<home>/apps/shop/../../../srv/notalock\" holds \"<home>\"",
        ),
        (
            "lock_file=<home>/apps/shop/x.lock",
            "lock_file \"<home>/apps/shop/x.lock\" holds \"<home>\"",
        ),
        (
            "lock_file=~/apps/shop/current/x.lock",
            "lock_file \"~/apps/shop/current/x.lock\" is not an absolute path (only deploy_to may start with ~)",
        ),
    ] {
        tether(
            &dir,
            &lab,
            &[
                "deploy",
                "-s",
                "deploy_to=~/apps/shop",
                "-s",
                "release_timestamp=20250101000001",
                "-s",
                set,
            ],
        )
        .status(4)
        .stderr_contains(says);
    }
    // Set so in the recipe: refused where it would be used as a path, before the lock; a
    // place derived from deploy_to() by the recipe is one.
    let home_recipe = |line: &str| {
        dir.write(
            "home.rhai",
            &format!(
                "{}\nset(\"deploy_to\", \"~/apps/shop\");\n{line}\n",
                recipe_text(&app, false)
            ),
        );
    };
    home_recipe("set(\"lock_file\", \"<home>/apps/shop/x.lock\");");
    tether(
        &dir,
        &lab,
        &[
            "-f",
            "home.rhai",
            "deploy",
            "-s",
            "release_timestamp=20250101000001",
        ],
    )
    .status(4)
    .stderr_contains("lock_file \"<home>/apps/shop/x.lock\" holds \"<home>\"");
    for h in HOSTS {
        assert!(!lab.host(h).home.join("<home>").exists(), "{h}");
        assert!(!lab.host(h).home.join("apps/shop/x.lock").exists(), "{h}");
    }
    // Compared without repeated slashes, as absolute ones are (stop 42 tester t46: `//`
    // under ~ passed both checks; deploy:unlock then removed revisions.log).
    for (line, says) in [
        (
            "set(\"lock_file\", || deploy::deploy_to() + \"//revisions.log\");",
            "lock_file and revision_log are one place, \"<home>/apps/shop/revisions.log\"",
        ),
        (
            "set(\"lock_file\", || deploy::deploy_to() + \"//current/deploy.lock\");",
            "lock_file \"<home>/apps/shop/current/deploy.lock\" is inside current_path",
        ),
        (
            "set(\"shared_path\", || deploy::deploy_to() + \"//current\");",
            "shared_path and current_path are one place",
        ),
        (
            "set(\"repo_path\", || deploy::deploy_to() + \"/current//repo/\");",
            "repo_path \"<home>/apps/shop/current/repo\" is inside current_path",
        ),
        (
            "set(\"repo_path\", || deploy::deploy_to() + \"/\");",
            "repo_path \"<home>/apps/shop\" holds deploy_to",
        ),
    ] {
        home_recipe(line);
        tether(&dir, &lab, &["-f", "home.rhai", "deploy"])
            .status(4)
            .stderr_contains(says);
    }
    home_recipe("set(\"lock_file\", || deploy::deploy_to() + \"/locks/x.lock\");");
    tether(&dir, &lab, &["-f", "home.rhai", "deploy:lock"]).status(0);
    for h in HOSTS {
        assert!(
            lab.host(h).home.join("apps/shop/locks/x.lock").exists(),
            "{h}"
        );
    }
    tether(&dir, &lab, &["-f", "home.rhai", "deploy:unlock"]).status(0);
    // Where they are deploy_to's, as derived or given so, the run goes on.
    deploy(
        &dir,
        &lab,
        "20250101000001",
        &[
            "-s",
            "lock_file=/srv/shop/other.lock",
            "-s",
            "repo_path=/srv/mirror",
        ],
    )
    .status(0);
}

/// The run's own lock is released where the host's `sed` fails: the unlock reads the lock with
/// the shell itself (stop 45 tester t58: the lock was "a lock file tether did not write: """,
/// left behind, exit 0, and the next deploy was refused by it).
#[test]
fn the_runs_own_lock_is_released_whatever_the_hosts_sed_does() {
    let lab = lab();
    let dir = Dir::new("no-sed");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let web1 = ["--hosts", "web1"];
    shadow(&lab, "web1", "sed", "echo 'sed: refusing' >&2\nexit 1\n");
    let out = deploy(&dir, &lab, "20250101000001", &web1);
    unshadow(&lab, "web1");
    out.stdout_lacks("is no longer this run's");
    assert!(
        !shop(&lab, "web1").join("deploy.lock").exists(),
        "the run's lock was left\n{}",
        out.dump()
    );
}

/// Where the lock cannot be taken on the first host in name order, the others are not tried,
/// and the failure says so, naming them (stop 47 tester t64: two hosts whose lock would have
/// failed too were left out of the failure, unnamed).
#[test]
fn hosts_not_tried_for_the_lock_are_named() {
    let lab = lab();
    let dir = Dir::new("lock-untried");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let first = shop(&lab, "resque1");
    let _ = fs::remove_dir_all(&first);
    fs::write(&first, "a file\n").unwrap();
    let out = deploy(&dir, &lab, "20250101000001", &[]);
    out.status(1)
        .stderr_contains(
            "resque1: could not take the lock /srv/shop/deploy.lock: deploy_to /srv/shop is not a \
             directory (a file, or a link to one)",
        )
        .stderr_contains(
            "not tried (the lock is taken on resque1 first, and it was not taken there): ",
        );
    let untried = out
        .stderr
        .lines()
        .find(|l| l.starts_with("not tried"))
        .unwrap_or_default();
    for h in ["web1", "web2", "resque2"] {
        assert!(untried.contains(h), "{h}: {}", out.stderr);
        assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }
    assert_eq!(read(first.clone()), "a file\n");

    // One of them unreachable is said as such, and decides the exit code (stop 47 tester
    // t65: it was "not tried", exit 1).
    lab.stop_host("resque2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    out.stderr_contains("resque2: cannot connect")
        .stderr_contains(
            "not tried (the lock is taken on resque1 first, and it was not taken there): ",
        );
    let untried = out
        .stderr
        .lines()
        .find(|l| l.starts_with("not tried"))
        .unwrap_or_default();
    assert!(!untried.contains("resque2"), "{}", out.stderr);

    // deploy_to a link to nothing is said as such (stop 47 tester t64: mkdir's `File exists`).
    fs::remove_file(&first).unwrap();
    std::os::unix::fs::symlink("/srv/nowhere", &first).unwrap();
    deploy(&dir, &lab, "20250101000003", &[]).stderr_contains(
        "resque1: could not take the lock /srv/shop/deploy.lock: deploy_to /srv/shop is a \
         symbolic link to nothing",
    );
    assert!(!lab.host("resque1").root_dir.join("nowhere").exists());
}
