//! `upload(local, remote[, #{ mode }])` against real sshd: the destination changes only to the
//! complete file, with the local file's permission bits or `mode`; an upload cut off leaves it
//! as it was and no temporary file behind (removed by the remote shell, or by tether at its
//! next contact when the shell died too, or by a later upload when it is stale).

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use support::recipe::{lab, lab_recipe};

const RECIPE: &str = r#"
task("up", || {
    on("db", |host| {
        upload("secret.key", "/srv/up/secret.key");
        upload("run.sh", "/srv/up/run.sh");
        upload("plain.txt", "/srv/up/plain.txt");
    });
});
"#;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn uploads_keep_the_local_permission_bits_and_content() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(&lab, "upload-modes", RECIPE);
    let files = [
        ("secret.key", 0o600, "key material\n"),
        ("run.sh", 0o755, "#!/bin/sh\necho hi\n"),
        ("plain.txt", 0o640, ""),
    ];
    for (name, m, text) in files {
        r.write(name, text);
        std::fs::set_permissions(r.path(name), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let root = &lab.host("db1").root_dir;
    // An earlier destination of another mode takes the local file's.
    std::fs::create_dir_all(root.join("up")).unwrap();
    std::fs::write(root.join("up/secret.key"), "old").unwrap();
    std::fs::set_permissions(
        root.join("up/secret.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    r.tether().args(&["up"]).run().status(0);
    for (name, m, text) in files {
        let remote = root.join("up").join(name);
        assert_eq!(std::fs::read_to_string(&remote).unwrap(), text, "{name}");
        assert_eq!(mode(&remote), m, "{name}: {:o}", mode(&remote));
    }
    let left = temp_files(&root.join("up"));
    assert!(left.is_empty(), "{left:?}");
}

/// The upload temporary files in `dir` (`NAME.tether-upload.RUN`).
fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".tether-upload."))
        .collect()
}

/// The file an upload writes: `f` in its private directory `entry` (an entry of
/// [`temp_files`]).
fn data_file(entry: &Path) -> std::path::PathBuf {
    entry.join("f")
}

/// The pid of a process of `host` running `program` (the remote `cat` filling an upload's
/// temporary file, the `sha256sum` checking it).
fn remote(lab: &support::lab::Lab, host: &str, program: &str) -> Option<u32> {
    lab.host_pids(host).into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == program)
    })
}

/// Puts this thread under SCHED_FIFO (or back under SCHED_OTHER): whether it took.
fn set_fifo(on: bool) -> bool {
    let (policy, priority) = match on {
        true => (libc::SCHED_FIFO, 10),
        false => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sched_setscheduler(2) on this thread (0) with a valid parameter.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

/// The pid of the `sha256sum` that checks an upload's file on db1, once it runs (60 s at most).
fn checking(lab: &support::lab::Lab) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = remote(lab, "db1", "sha256sum") {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the upload was never checked"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid of the lab's own host.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// A 100 MB upload whose connection is killed once `fraction` of it has arrived. The remote
/// `cat` is stopped (SIGSTOP) the moment that much is in the temporary file, so the cut falls
/// there however fast the transfer runs, then the connection is killed and `cat` continued:
/// it finds EOF, as after a real cut.
fn cut_off_at(fraction: f64) {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-cut",
        r#"task("up", || { on("db", |host| { upload("big.bin", "/srv/big.bin"); }); });"#,
    );
    const SIZE: usize = 100 << 20;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.path("big.bin"), &data).unwrap();
    let root = lab.host("db1").root_dir.clone();
    let want = (SIZE as f64 * fraction) as u64;
    // A loaded machine may let the last bytes in between the size read and the SIGSTOP: that
    // try cuts nothing, and is made again (three tries at most).
    let mut tries = 0;
    let (child, tmp, cat) = loop {
        tries += 1;
        std::fs::write(root.join("big.bin"), "the previous release's file\n").unwrap();
        let child = r.tether().args(&["up", "--no-keepalive"]).spawn();
        let (tmp, cat) = stopped_at(&lab, &root, want);
        if std::fs::metadata(data_file(&tmp)).map_or(0, |m| m.len()) < SIZE as u64 {
            break (child, tmp, cat);
        }
        assert!(
            tries < 3,
            "the whole file arrived before the cut, three times"
        );
        signal(cat, libc::SIGCONT);
        child.wait_with_output().unwrap();
    };
    assert_eq!(
        (mode(&tmp), mode(&data_file(&tmp))),
        (0o700, 0o600),
        "the temporary file is private while it fills"
    );
    lab.kill_connections("db1");
    signal(cat, libc::SIGCONT);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a cut-off upload is a failure");
    // Named as the recipe asked for it, not as the script tether sent.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("db1: connection lost during `upload big.bin -> /srv/big.bin` after ")
            && !stderr.contains("tether-upload"),
        "{stderr}"
    );
    // Said as what it is: the destination is as it was (stop 44 tester t54: "the command may
    // have partly run").
    assert!(
        stderr.contains("; nothing was replaced (") && !stderr.contains("partly run"),
        "{stderr}"
    );
    // The remote side sees EOF, finds the size short and removes its temporary file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmp.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tmp.exists(), "the temporary file was left behind");
    assert_eq!(
        std::fs::read_to_string(root.join("big.bin")).unwrap(),
        "the previous release's file\n"
    );
}

/// Once an upload's temporary file in `root` holds `want` bytes: its remote `cat`, stopped
/// (SIGSTOP), and the file.
fn stopped_at(lab: &support::lab::Lab, root: &Path, want: u64) -> (std::path::PathBuf, u32) {
    let started = Instant::now();
    let (tmp, cat) = loop {
        if let (Some(tmp), Some(cat)) = (temp_files(root).pop(), remote(lab, "db1", "cat")) {
            break (tmp, cat);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    loop {
        let got = std::fs::metadata(data_file(&tmp))
            .map(|m| m.len())
            .unwrap_or(0);
        if got >= want {
            signal(cat, libc::SIGSTOP);
            return (tmp, cat);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {got} bytes arrived"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_upload_cut_off_at_10_percent_leaves_the_destination_as_it_was() {
    cut_off_at(0.10);
}

#[test]
fn an_upload_cut_off_at_50_percent_leaves_the_destination_as_it_was() {
    cut_off_at(0.50);
}

#[test]
fn an_upload_cut_off_at_99_percent_leaves_the_destination_as_it_was() {
    cut_off_at(0.99);
}

#[test]
fn an_upload_that_cannot_be_placed_says_why_and_leaves_nothing() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-refused",
        r#"task("up", || { on("db", |host| { upload("a.txt", "/srv/file/a.txt"); }); });
task("dir", || { on("db", |host| { upload("a.txt", "/srv/adir"); }); });"#,
    );
    r.write("a.txt", "new\n");
    let root = &lab.host("db1").root_dir;
    // The parent is a file: said so (stop 44 tester t55: mkdir's `File exists`), not a short
    // transfer.
    std::fs::write(root.join("file"), "a file\n").unwrap();
    let out = r.tether().args(&["up"]).run();
    out.status(1)
        .stdout_contains("upload: /srv/file/a.txt cannot be written: /srv/file is not a directory")
        .stdout_lacks("stopped short");
    // The command named is what the recipe asked for, not the internal script.
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("umask 077"), "{text}");
    }
    out.stderr_contains("`upload a.txt -> /srv/file/a.txt`");
    // The destination is a directory: refused (mv would put the file inside it).
    std::fs::create_dir_all(root.join("adir/inner")).unwrap();
    let out = r.tether().args(&["dir"]).run();
    out.status(1)
        .stdout_contains("upload: /srv/adir is a directory")
        .stdout_lacks("stopped short");
    assert!(root.join("adir/inner").is_dir());
    let left = temp_files(root);
    assert!(left.is_empty(), "{left:?}");
}

/// Programs of the user's first in the login shell's `PATH` with the names of those a transfer
/// runs do not carry it: tether's scripts find theirs in /usr/bin and /bin first (stop 61
/// tester t98: a `cat` that adds a footer line, as a bat-like `~/bin/cat` does, made an
/// upload "stopped short: 200033 of 200000 bytes arrived" and a download fail alike; a
/// `mkdir` that failed failed the upload with no reason). Every one here misbehaves: `cat`
/// adds a line, `wc` counts 0, `sha256sum` says another sum, `mkdir`, `mv` and `chmod` fail.
#[test]
fn the_users_programs_named_as_a_transfers_do_not_carry_it() {
    let lab = lab(&["db1"]);
    let stubs = lab.dir().join("transfer-stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    for (program, body) in [
        ("cat", "/usr/bin/cat \"$@\"; echo footer"),
        ("wc", "echo 0"),
        ("sha256sum", "echo 0000  -"),
        ("mkdir", "echo junk; exit 3"),
        ("mv", "exit 1"),
        ("chmod", "exit 1"),
        ("ls", "exit 1"),
    ] {
        let stub = stubs.join(program);
        std::fs::write(&stub, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", stubs.display());
    lab.set_env("db1", &[("PATH", &path)]);
    let r = lab_recipe(
        &lab,
        "transfer-path",
        r#"task("up", || { on("db", |host| {
    upload("data.bin", "/srv/up/new/data.bin");
    download("/srv/up/new/data.bin", "back/data.bin");
    run("cat /srv/up/new/data.bin >/dev/null; echo \"$PATH\"");
}); });"#,
    );
    let data: String = (0..20_000).map(|i| format!("{i:09}\n")).collect();
    r.write("data.bin", &data);
    let out = r.tether().args(&["up"]).run();
    out.status(0).stdout_contains(&format!("db1  | {path}"));
    let root = &lab.host("db1").root_dir;
    assert_eq!(
        std::fs::read_to_string(root.join("up/new/data.bin")).unwrap(),
        data
    );
    assert_eq!(
        std::fs::read_to_string(r.path("back/data.bin")).unwrap(),
        data
    );
}

/// A directory that cannot be written in is said with the system's reason: a read-only
/// filesystem is not a matter of permissions (stop 61 tester t97: `cannot write in the
/// directory of /srv/ro/sec (...)` for a read-only tmpfs, as if the user lacked the right;
/// scp says `Read-only file system`).
#[test]
fn an_upload_into_a_read_only_filesystem_says_so() {
    let lab = lab(&["db1"]);
    std::fs::create_dir_all(lab.host("db1").root_dir.join("ro")).unwrap();
    lab.in_host_namespace(
        "db1",
        &["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", "/srv/ro"],
    );
    let r = lab_recipe(
        &lab,
        "upload-read-only",
        r#"task("up", || { on("db", |host| { upload("a.txt", "/srv/ro/a.txt"); }); });"#,
    );
    r.write("a.txt", "new\n");
    r.tether().args(&["up"]).run().status(1).stdout_contains(
        "upload: cannot write in the directory of /srv/ro/a.txt: Read-only file system (the \
             file is written beside it and moved into place, so its directory must be writable)",
    );
}

/// A destination that cannot be replaced, and one beside which the private directory cannot
/// be made, are said with the destination and the system's reason, never by tether's own
/// temporary names alone (tester t121: `mv: cannot move 'f' to '/srv/tgt.txt': Operation not
/// permitted` for an immutable file, `mkdir: cannot create directory
/// '/proc/version.tether-upload...': No such file or directory` under /proc, where the
/// directory is there but its filesystem makes no new files).
#[test]
fn a_destination_that_cannot_be_replaced_or_written_beside_is_said_with_the_reason() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-unreplaceable",
        r#"task("imm", || { on("db", |host| { upload("a.txt", "/srv/imm.txt"); }); });
task("proc", || { on("db", |host| { upload("a.txt", "/proc/version"); }); });
task("sysctl", || { on("db", |host| { upload("a.txt", "/proc/sys/kernel/tether-x"); }); });
task("deep", || { on("db", |host| { upload("a.txt", "/proc/1/x/y"); }); });
task("full", || { on("db", |host| { upload("big.bin", "/srv/small/f"); }); });"#,
    );
    r.write("a.txt", "new\n");
    let target = lab.host("db1").root_dir.join("imm.txt");
    std::fs::write(&target, "old\n").unwrap();
    let chattr = |flag: &str| {
        let ok = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&target)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chattr {flag}");
    };
    chattr("+i");
    let out = r.tether().args(&["imm"]).run();
    chattr("-i");
    out.status(1)
        .stdout_contains(
            "upload: /srv/imm.txt cannot be replaced: Operation not permitted; nothing was \
             replaced",
        )
        .stdout_lacks("'f'");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
    let left = temp_files(&lab.host("db1").root_dir);
    assert!(left.is_empty(), "{left:?}");
    let out = r.tether().args(&["proc"]).run();
    out.status(1)
        .stdout_contains("upload: cannot make the temporary directory /proc/version.tether-upload.")
        .stdout_contains(
            " beside /proc/version: its filesystem makes no new files there (mkdir: No such file \
             or directory, as under /proc and /sys) (the file is written",
        );
    // A directory that exists, whose filesystem makes no files (tester t124: `No such file or
    // directory` alone, for /proc/sys/kernel/hostname).
    r.tether()
        .args(&["sysctl"])
        .run()
        .status(1)
        .stdout_contains(
            "upload: cannot write in the directory of /proc/sys/kernel/tether-x: its filesystem \
         makes no new files there (mkdir: No such file or directory, as under /proc and /sys)",
        );
    // A directory on the way that cannot be made (tester t124: mkdir's own words alone).
    r.tether().args(&["deep"]).run().status(1).stdout_contains(
        "upload: /proc/1/x/y cannot be written: its directory /proc/1/x cannot be made: its \
         filesystem makes no new files there (mkdir: No such file or directory, as under /proc \
         and /sys)",
    );
    // A full filesystem (tester t124: `cat: write error: No space left on device` alone).
    std::fs::create_dir_all(lab.host("db1").root_dir.join("small")).unwrap();
    lab.in_host_namespace(
        "db1",
        &[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            "/srv/small",
        ],
    );
    // The tmpfs is seen inside the host's mount namespace only.
    let inside = |script: &str| {
        let out = std::process::Command::new("nsenter")
            .args([
                "-t",
                &lab.host("db1").pid.to_string(),
                "-m",
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    inside("echo old > /srv/small/f");
    r.write("big.bin", &"x".repeat(1 << 20));
    r.tether().args(&["full"]).run().status(1).stdout_contains(
        "upload: /srv/small/f: the file could not be written beside it: No space left on \
         device; nothing was replaced",
    );
    assert_eq!(inside("cat /srv/small/f; ls -A /srv/small"), "old\nf\n");
}

/// A destination longer than a path, or with a name longer than one, is refused before
/// anything is made (stop 44 tester t54: a 5 KB path of 25 directories was made by `mkdir -p`,
/// left, and said as a directory that could not be written in).
#[test]
fn an_overlong_destination_is_refused_before_anything_is_made() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-long-path",
        r#"task("up", || { on("db", |host| { upload("a.txt", fetch("to")); }); });"#,
    );
    r.write("a.txt", "new\n");
    let root = &lab.host("db1").root_dir;
    let deep = format!("/srv/{}/f", vec!["d".repeat(200); 25].join("/"));
    let wide = format!("/srv/x/{}", "n".repeat(256));
    for (to, said) in [
        (
            deep.clone(),
            format!(
                "upload: the remote path is {} bytes long, more than a path may have (4095)",
                deep.len()
            ),
        ),
        (
            wide,
            "upload: a name in the remote path is 256 bytes long, more than a name may have (255)"
                .to_string(),
        ),
    ] {
        r.tether()
            .args(&["-s", &format!("to={to}"), "up"])
            .run()
            .status(4)
            .stderr_contains(&said);
    }
    assert!(!root.join("d".repeat(200)).exists());
    assert!(!root.join("x").exists());
    // 255 bytes is a name.
    let most = format!("/srv/{}", "m".repeat(255));
    r.tether()
        .args(&["-s", &format!("to={most}"), "up"])
        .run()
        .status(0);
    assert_eq!(
        std::fs::read_to_string(root.join("m".repeat(255))).unwrap(),
        "new\n"
    );
}

/// A destination that names a directory (`dir/`, `dir/.`, `dir/..`, `.`, `~`) is no file's
/// path: refused as a recipe error before anything is sent, as an existing directory is
/// refused on the host, and nothing is made (stop 37 tester t22: an upload to a missing
/// `dir/` made no directory but named its own temporary file, `.tether-upload...`, as what
/// could not be created; a download to `logs/` named "a temporary file beside ./logs/").
#[test]
fn a_destination_that_names_a_directory_is_refused_before_anything_is_sent() {
    let lab = lab(&["db1"]);
    let remotes = [
        "/srv/new/",
        "/srv/new/.",
        "/srv/new/..",
        "/srv/adir//",
        ".",
        "..",
        "~",
        "~/",
        "sub/./",
    ];
    let locals = ["logs/", "logs/.", "logs/..", ".", "./", "..", "logs//"];
    let mut tasks = String::new();
    for (i, remote) in remotes.iter().enumerate() {
        tasks.push_str(&format!(
            "task(\"up{i}\", || {{ on(\"db\", |host| {{ upload(\"a.txt\", \"{remote}\"); }}); }});\n"
        ));
    }
    for (i, local) in locals.iter().enumerate() {
        tasks.push_str(&format!(
            "task(\"down{i}\", || {{ on(\"db\", |host| {{ download(\"/srv/b.txt\", \"{local}\"); }}); }});\n"
        ));
    }
    let r = lab_recipe(&lab, "upload-dir-path", &tasks);
    r.write("a.txt", "new\n");
    let root = &lab.host("db1").root_dir;
    std::fs::create_dir_all(root.join("adir")).unwrap();
    std::fs::write(root.join("b.txt"), "remote\n").unwrap();
    for (i, remote) in remotes.iter().enumerate() {
        let out = r.tether().args(&[&format!("up{i}")]).run();
        out.status(4)
            .stderr_contains(&format!(
                "upload: `{remote}` names a directory, not a file: give the file's own path"
            ))
            .stderr_contains("deploy.rhai:")
            .stderr_lacks("tether-upload");
    }
    assert!(!root.join("new").exists());
    assert_eq!(std::fs::read_dir(root.join("adir")).unwrap().count(), 0);
    for (i, local) in locals.iter().enumerate() {
        let out = r.tether().args(&[&format!("down{i}")]).run();
        out.status(4)
            .stderr_contains(&format!(
                "download: `{local}` names a directory, not a file: give the file's own path"
            ))
            .stderr_contains("deploy.rhai:")
            .stderr_lacks("temporary");
    }
    assert!(!r.path("logs").exists());
}

#[test]
fn the_mode_option_sets_the_destination_bits_and_bad_modes_are_recipe_errors() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-mode-option",
        r#"
task("up", || { on("db", |host| { upload("secret.key", "/srv/up/shared.key", #{ mode: "0640" }); }); });
task("number", || {
    on("db", |host| { upload("secret.key", "/srv/up/n.key", #{ mode: 640 }); });
});
task("digits", || {
    on("db", |host| { upload("secret.key", "/srv/up/d.key", #{ mode: "0948" }); });
});
task("key", || {
    on("db", |host| { upload("secret.key", "/srv/up/k.key", #{ mod: "0640" }); });
});
"#,
    );
    r.write("secret.key", "key material\n");
    std::fs::set_permissions(r.path("secret.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    r.tether().args(&["up"]).run().status(0);
    let root = &lab.host("db1").root_dir;
    assert_eq!(mode(&root.join("up/shared.key")), 0o640);
    assert_eq!(
        std::fs::read_to_string(root.join("up/shared.key")).unwrap(),
        "key material\n"
    );
    let cases = [
        (
            "number",
            "deploy.rhai:7:23: upload: mode must be a string of octal digits",
        ),
        (
            "digits",
            "deploy.rhai:10:23: upload: mode `0948` is not a permission mode",
        ),
        (
            "key",
            "deploy.rhai:13:23: upload: unknown option `mod` (known: mode)",
        ),
    ];
    for (task, message) in cases {
        r.tether()
            .args(&[task])
            .run()
            .status(4)
            .stderr_contains(message);
    }
    for name in ["n.key", "d.key", "k.key"] {
        assert!(!root.join("up").join(name).exists(), "{name}");
    }
}

/// The connection and the remote shell are killed mid-upload, so nothing remote removes the
/// temporary file: tether removes it at its next contact with the host in the run, before
/// that contact's command runs.
#[test]
fn a_temporary_file_left_by_a_killed_session_is_removed_at_the_next_contact() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-next-contact",
        r#"task("up", || {
    on("db", |host| {
        try { upload("big.bin", "/srv/big.bin"); } catch (e) { print("upload failed"); }
        run_locally("sleep 2");
        run("ls -a /srv; echo listed");
    });
});"#,
    );
    const SIZE: u64 = 200 << 20;
    std::fs::File::create(r.path("big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let root = lab.host("db1").root_dir.clone();
    let mut child = r.tether().args(&["up", "--no-keepalive"]).spawn();
    let started = Instant::now();
    let tmp = loop {
        let got = temp_files(&root);
        if let Some(t) = got.first() {
            if std::fs::metadata(data_file(t))
                .map(|m| m.len())
                .unwrap_or(0)
                > SIZE / 4
            {
                break t.clone();
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no upload");
        std::thread::sleep(Duration::from_millis(2));
    };
    lab.kill_sessions("db1");
    assert!(tmp.exists(), "the killed shell left its temporary file");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("upload failed"), "{out}");
    assert!(out.contains("| listed"), "{out}");
    assert!(!out.contains("tether-upload"), "{out}");
    assert!(temp_files(&root).is_empty(), "{:?}", temp_files(&root));
}

/// An upload removes the temporary files of the same destination that earlier runs left behind
/// (older than a minute), and nothing else: not a live upload's, not another file's, not one
/// of another form or a link (stop 40 tester t33: `.tether-upload.foo` and `...3.keep` went).
#[test]
fn an_upload_removes_stale_temporary_files_of_its_destination_only() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-stale",
        r#"task("up", || { on("db", |host| { upload("a.txt", "/srv/a.txt"); }); });"#,
    );
    r.write("a.txt", "new\n");
    let root = &lab.host("db1").root_dir;
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    let stales = [
        root.join("a.txt.tether-upload.1234.5678"),
        root.join("a.txt.tether-upload.692f1a2b.3c4d.0"),
    ];
    let live = root.join("a.txt.tether-upload.9999.1");
    let others = [
        root.join("b.txt.tether-upload.1234.5678"),
        root.join("a.txt.tether-uploads"),
        root.join("a.txt.keep"),
        root.join("a.txt.tether-upload.foo"),
        root.join("a.txt.tether-upload.77.88.3.keep"),
        root.join("a.txt.tether-upload.12.34.56.78"),
    ];
    for p in stales.iter().chain([&live]).chain(&others) {
        std::fs::write(p, "x").unwrap();
    }
    let link = root.join("a.txt.tether-upload.12.34");
    std::os::unix::fs::symlink("a.txt.keep", &link).unwrap();
    let aged = std::process::Command::new("touch")
        .args(["-h", "-d", "-10 minutes"])
        .arg(&link)
        .status()
        .unwrap();
    assert!(aged.success());
    for p in stales.iter().chain(&others) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    r.tether().args(&["up"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "new\n"
    );
    for stale in &stales {
        assert!(!stale.exists(), "the stale temporary file is removed");
    }
    assert!(live.exists(), "a live upload's file is not touched");
    for p in &others {
        assert!(p.exists(), "{}", p.display());
    }
    assert!(link.is_symlink(), "a link is not removed");
}

#[test]
fn an_upload_of_a_local_file_that_is_not_regular_is_refused_before_sending() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-special",
        r#"
task("zero", || { on("db", |host| { upload("/dev/zero", "/srv/up/zero"); }); });
task("cpuinfo", || { on("db", |host| { upload("/proc/cpuinfo", "/srv/up/cpuinfo"); }); });
task("fifo", || { on("db", |host| { upload("fifo", "/srv/up/fifo"); }); });
task("link", || { on("db", |host| { upload("a.link", "/srv/up/a"); }); });
"#,
    );
    let root = &lab.host("db1").root_dir;
    r.write("a.txt", "through a link\n");
    std::os::unix::fs::symlink("a.txt", r.path("a.link")).unwrap();
    r.tether().args(&["link"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(root.join("up/a")).unwrap(),
        "through a link\n"
    );
    let status = std::process::Command::new("mkfifo")
        .arg(r.path("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    for (task, local) in [
        ("zero", "/dev/zero".to_string()),
        ("cpuinfo", "/proc/cpuinfo".to_string()),
        ("fifo", "./fifo".to_string()),
    ] {
        let started = Instant::now();
        let out = r.tether().args(&[task]).run();
        out.status(4)
            .stderr_contains(&format!("upload: {local} is not a regular file"));
        assert!(!root.join("up").join(task).exists(), "{task}");
        assert!(started.elapsed() < Duration::from_secs(30), "{task}");
        // The dry run refuses what the run refuses (stop 44 tester t54: it planned them).
        r.tether()
            .args(&["-n", task])
            .run()
            .status(4)
            .stderr_contains(&format!("upload: {local} is not a regular file"));
    }
    r.tether().args(&["-n", "link"]).run().status(0);
}

#[test]
fn an_upload_to_a_home_relative_remote_lands_in_the_remote_home() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-home",
        r#"
task("up", || {
    on("db", |host| {
        upload("s.key", "~/tilde.key");
        upload("s.key", "~/sub dir/$HOME 'q' `x`.key");
    });
});
task("user", || { on("db", |host| { upload("s.key", "~nobody/x.key"); }); });
"#,
    );
    r.write("s.key", "secret\n");
    let home = &lab.host("db1").home;
    r.tether().args(&["up"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(home.join("tilde.key")).unwrap(),
        "secret\n"
    );
    assert_eq!(
        std::fs::read_to_string(home.join("sub dir/$HOME 'q' `x`.key")).unwrap(),
        "secret\n"
    );
    assert!(!Path::new("/root/~").exists());
    r.tether()
        .args(&["user"])
        .run()
        .status(4)
        .stderr_contains("remote path `~nobody/x.key`: only `~` and `~/` are expanded");
    assert!(!Path::new("/root/~nobody").exists());
}

#[test]
fn an_upload_to_names_starting_with_a_dash_or_holding_newlines_and_quotes_lands_there() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-dash",
        r#"
task("up", || {
    on("db", |host| {
        within("/srv/w", || {
            upload("-dash", "-dash2");
            upload("-dash", "--n");
            upload("-dash", "-d/-e");
            upload("-dash", "-a\nb 'c'");
            upload("-dash", "nl\n/f");
        });
    });
});
"#,
    );
    r.write("-dash", "dash\n");
    let w = lab.host("db1").root_dir.join("w");
    std::fs::create_dir_all(&w).unwrap();
    r.tether().args(&["up"]).run().status(0);
    for name in ["-dash2", "--n", "-d/-e", "-a\nb 'c'", "nl\n/f"] {
        assert_eq!(
            std::fs::read_to_string(w.join(name)).unwrap(),
            "dash\n",
            "{name:?}"
        );
    }
}

/// Hosts that share a filesystem (an NFS-mounted shared directory, as Capistrano's `shared`
/// often is) upload to one path at once: each upload has its own temporary file, so every
/// host succeeds and the destination is the complete file (the lab's hosts share the test's
/// directories outside /srv).
#[test]
fn hosts_sharing_a_filesystem_upload_to_one_path_at_once() {
    let lab = lab(&["web1", "web2", "db1"]);
    let shared = tempfile::tempdir().unwrap();
    let dest = shared.path().join("x");
    let r = lab_recipe(
        &lab,
        "upload-shared",
        &format!(
            "task(\"up\", || {{ on(\"all\", |host| {{ upload(\"big.txt\", \"{}\"); }}); }});\n",
            dest.display()
        ),
    );
    let text: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    r.write("big.txt", &text);
    for _ in 0..5 {
        r.tether().args(&["up"]).run().status(0);
        assert!(std::fs::read_to_string(&dest).unwrap() == text);
        assert!(temp_files(shared.path()).is_empty());
    }
}

/// An upload stopped by SIGTERM (or Ctrl-C) once all its bytes arrived, while it is checked
/// and placed: the destination stays as it was and its temporary file is removed before
/// tether exits, as a failure hook would run (before, a full-size temporary file was left,
/// owed to a next contact that never came).
#[test]
fn an_upload_interrupted_while_it_is_placed_leaves_no_temporary_file() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-interrupted",
        r#"task("up", || { on("db", |host| { upload("big.bin", "/srv/big.bin"); }); });"#,
    );
    let data: Vec<u8> = (0..(20 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.path("big.bin"), &data).unwrap();
    let root = lab.host("db1").root_dir.clone();
    let mut child = r.tether().args(&["up"]).spawn();
    // The check of the arrived file: stopped on the host while tether is told to stop.
    let sum = checking(&lab);
    signal(sum, libc::SIGSTOP);
    signal(child.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    signal(sum, libc::SIGCONT);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!root.join("big.bin").exists());
    assert!(temp_files(&root).is_empty(), "{:?}", temp_files(&root));
}

/// An upload whose host crashed under it (every process killed, the listener too) leaves its
/// temporary directory there for good in this run: the run's end says which, and how it goes
/// (tester t123: left, unsaid; the clean-up owed to the host was named by its script,
/// `reconnecting before `PATH=...; rm -rf -- "$d".tether-upload...``).
#[test]
fn an_upload_whose_host_crashed_names_the_temporary_directory_it_leaves() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-host-crashed",
        r#"task("up", || { on("db", |host| { upload("big.bin", "/srv/big.bin"); }); });"#,
    );
    std::fs::write(r.path("big.bin"), vec![b'x'; 64 << 20]).unwrap();
    let root = lab.host("db1").root_dir.clone();
    let child = r
        .tether()
        .args(&["up", "--no-keepalive", "--reattach", "1s"])
        .spawn();
    let (tmp, _cat) = stopped_at(&lab, &root, 1 << 20);
    lab.stop_host("db1");
    let out = child.wait_with_output().unwrap();
    let text = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text.contains(&format!(
            "db1  ~ warning: `upload big.bin -> /srv/big.bin` leaves its temporary directory \
             /srv/{name} on the host, with what arrived of the file: a later upload to \
             /srv/big.bin removes it once nothing in it has changed for a minute, or remove it \
             by hand\n"
        )),
        "{text}"
    );
    assert!(!text.contains("rm -rf"), "{text}");
}

/// A second signal while an upload's file is checked ends tether at once, naming the
/// temporary directory it leaves on the host and how it goes (tester t121: 301 MB left,
/// unsaid; the words printed to stop the command left it).
#[test]
fn a_second_signal_during_an_upload_names_the_temporary_directory_it_leaves() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-second-signal",
        r#"task("up", || { on("db", |host| { upload("big.bin", "/srv/big.bin"); }); });"#,
    );
    let data: Vec<u8> = (0..(20 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.path("big.bin"), &data).unwrap();
    let root = lab.host("db1").root_dir.clone();
    let child = r.tether().args(&["up"]).spawn();
    let sum = checking(&lab);
    signal(sum, libc::SIGSTOP);
    signal(child.id(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    signal(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    signal(sum, libc::SIGCONT);
    let text = crate::support::tether::text(&out);
    let left = temp_files(&root);
    assert_eq!(left.len(), 1, "{left:?}\n{text}");
    assert!(
        text.contains(&format!(
            "db1: `upload big.bin -> /srv/big.bin` may leave its temporary directory {} on the \
             host, with what arrived of the file: a later upload to /srv/big.bin removes it once \
             nothing in it has changed for a minute, or remove it by hand\n",
            left[0]
                .display()
                .to_string()
                .replace(&root.display().to_string(), "/srv")
        )),
        "{text}"
    );
}

/// An upload stopped after its placing step moved the file into place, before that step
/// ended, says so: the destination is the uploaded file (tester t121: 3 of 20 timeouts near
/// the end of a 300 MB upload, and a Ctrl-C, replaced the file and said only that the upload
/// was stopped, where the README says a stopped upload places nothing). The step's shell is
/// stopped (SIGSTOP) the moment the destination changes; then tether is sent SIGTERM, or its
/// timeout passes. A run whose step ended first, or whose timeout came before the placing, is
/// tried again.
#[test]
fn an_upload_stopped_after_its_file_was_moved_into_place_says_it_was_placed() {
    use std::os::unix::fs::MetadataExt as _;

    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-placed-stopped",
        r#"task("up", || { on("db", |host| { upload("big.bin", "/srv/big.bin"); }); });
task("up_timeout", || { on("db", #{ timeout: 6 }, |host| { upload("big.bin", "/srv/big.bin"); }); });"#,
    );
    let data: Vec<u8> = (0..(20 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.path("big.bin"), &data).unwrap();
    let root = lab.host("db1").root_dir.clone();
    let dest = root.join("big.bin");
    let placed = "db1  ~ warning: `upload big.bin -> /srv/big.bin`: the file had been moved into \
                  place before the stop reached the host: /srv/big.bin is the uploaded file\n";
    for task in ["up", "up_timeout"] {
        let mut tries = 0;
        let out = loop {
            tries += 1;
            assert!(
                tries <= 5,
                "{task}: never stopped between its placing and its end"
            );
            std::fs::write(&dest, "the previous release's file\n").unwrap();
            let before = std::fs::metadata(&dest).unwrap().ino();
            let mut child = r.tether().args(&[task]).spawn();
            let Some(step) = placing_step(&lab, &dest, before, &mut child) else {
                child.wait().unwrap();
                continue;
            };
            if task == "up" {
                signal(child.id(), libc::SIGTERM);
            }
            let out = child.wait_with_output().unwrap();
            signal(step, libc::SIGCONT);
            if std::fs::read(&dest).unwrap() == data {
                break out;
            }
        };
        let text = crate::support::tether::text(&out);
        assert!(text.contains(placed), "{task}: {text}");
        if task == "up" {
            assert_eq!(out.status.code(), Some(130), "{text}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert!(
                text.contains(
                    "db1: `upload big.bin -> /srv/big.bin` did not finish within 6.0 s; the file \
                     had been moved into place before the stop reached the host: the destination \
                     is the uploaded file"
                ),
                "{text}"
            );
        }
        assert!(
            temp_files(&root).is_empty(),
            "{task}: {:?}",
            temp_files(&root)
        );
    }
}

/// The shell of an upload's placing step on db1, stopped (SIGSTOP) right after its `mv` put
/// the file at `dest` (whose inode was `before`); None where the step, or tether (`child`),
/// ended first. The step's shell is the farthest ancestor of its `sha256sum` with the step's
/// command line (a command substitution's subshell, a copy of it, may be between); the `mv`
/// renames the file into place, then the step waits for it to exit: a watcher at real-time
/// priority (an ordinary one, on a loaded machine, was scheduled after the step had ended)
/// stops it there.
fn placing_step(
    lab: &support::lab::Lab,
    dest: &Path,
    before: u64,
    child: &mut std::process::Child,
) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;

    let started = Instant::now();
    let sum = loop {
        if let Some(pid) = remote(lab, "db1", "sha256sum") {
            break pid;
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the upload was never checked"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let parent = |pid: u32| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))?
            .trim()
            .parse()
            .ok()
    };
    let cmdline = |pid: u32| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut step = parent(sum)?;
    while let Some(up) = parent(step) {
        if cmdline(up) != cmdline(step) {
            break;
        }
        step = up;
    }
    let realtime = set_fifo(true);
    let mut spins = 0u32;
    while std::fs::metadata(dest).map_or(true, |m| m.ino() == before) {
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0
            && (child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(60))
        {
            set_fifo(false);
            return None;
        }
        std::hint::spin_loop();
    }
    signal(step, libc::SIGSTOP);
    if realtime {
        set_fifo(false);
    }
    // Stopped once the kernel says so; gone (or a zombie) if it ended first.
    let asked = Instant::now();
    loop {
        let state = std::fs::read_to_string(format!("/proc/{step}/stat"))
            .ok()
            .and_then(|s| s.rsplit(") ").next().and_then(|f| f.chars().next()));
        match state {
            Some('T') => return Some(step),
            None | Some('Z') | Some('X') => return None,
            _ if asked.elapsed() > Duration::from_secs(2) => return None,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// An upload over an existing file keeps its owner and group, as scp (which writes into the
/// file) keeps them: the new file replaced it with the uploading user's (root's), and an app
/// whose config was `app:app 0640` could no longer read it (fresh-eyes finding, stop 28). A
/// user who cannot give the new file that owner (not root, a file someone else owns) is
/// refused, naming the owner, and the file stays as it was.
#[test]
fn an_upload_over_a_file_keeps_its_owner_and_group_or_is_refused() {
    use std::os::unix::fs::MetadataExt as _;

    let user = support::users::PlainUser::create();
    let lab = lab(&["db1"]);
    let srv = lab.host("db1").root_dir.clone();
    std::fs::create_dir_all(srv.join("up")).unwrap();
    let conf = srv.join("up/app.conf");
    std::fs::write(&conf, "old\n").unwrap();
    std::os::unix::fs::chown(&conf, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = lab_recipe(
        &lab,
        "upload-owner",
        "task(\"up\", || { on(\"db\", |host| { upload(\"app.conf\", \"/srv/up/app.conf\", \
         #{ mode: \"0640\" }); }); });\n",
    );
    r.write("app.conf", "new\n");
    r.tether().args(&["up"]).run().status(0);
    let meta = std::fs::metadata(&conf).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(mode(&conf), 0o640);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "new\n");

    // Not root: a root-owned file in a directory anyone may write.
    let shared = srv.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let theirs = shared.join("f");
    std::fs::write(&theirs, "old\n").unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut r = support::recipe::RecipeDir::new(
        "upload-owner-user",
        &format!(
            "server(\"{}\", #{{ roles: [\"db\"] }});\ntask(\"up\", || {{ on(\"db\", |host| {{ \
             upload(\"f\", \"/srv/shared/f\"); }}); }});\n",
            user.at("db1")
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    r.write("f", "new\n");
    let out = r.tether().args(&["up"]).run();
    out.status(1)
        .stderr_contains("/srv/shared/f belongs to 0:0 (uid:gid)");
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "old\n");
    assert_eq!(std::fs::metadata(&theirs).unwrap().uid(), 0);
    assert_eq!(temp_files(&shared), Vec::<std::path::PathBuf>::new());

    // Root, over a file another user owns in a directory others may write (sticky or not):
    // anyone may have put it there, and given its owner the new file would be theirs (stop 41
    // tester t41: a planted file made the uploaded secret the planter's). Refused.
    for mode_bits in [0o777, 0o1777] {
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(mode_bits)).unwrap();
        let planted = shared.join("app.key");
        std::fs::write(&planted, "").unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        let r = lab_recipe(
            &lab,
            "upload-planted",
            "task(\"up\", || { on(\"db\", |host| { upload(\"app.key\", \"/srv/shared/app.key\"); }); });\n",
        );
        r.write("app.key", "top secret\n");
        std::fs::set_permissions(r.path("app.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        r.tether().args(&["up"]).run().status(1).stderr_contains(
            "/srv/shared/app.key belongs to 65534:65534 (uid:gid) in a directory others may write",
        );
        assert_eq!(
            std::fs::read_to_string(&planted).unwrap(),
            "",
            "{mode_bits:o}"
        );
        assert_eq!(temp_files(&shared), Vec::<std::path::PathBuf>::new());
        std::fs::remove_file(&planted).unwrap();
    }
}

/// An upload whose local file shrinks or is written while it is read fails saying so, and
/// places nothing (fresh-eyes finding, stop 28: a file truncated mid-upload was reported as
/// "upload stopped short: N of M bytes arrived", as if the connection had cut it; one that
/// grew was placed as its first M bytes, no version of itself, with success).
#[test]
fn an_upload_of_a_file_changed_while_read_fails_saying_so_and_places_nothing() {
    use std::io::Write as _;

    let lab = lab(&["db1"]);
    let srv = lab.host("db1").root_dir.clone();
    std::fs::create_dir_all(srv.join("up")).unwrap();
    let r = lab_recipe(
        &lab,
        "upload-changed",
        "task(\"up\", || { on(\"db\", |host| { upload(\"big.bin\", \"/srv/up/big.bin\"); }); });\n",
    );
    // Round 2 writes bytes in place and sets the modification time back (tester t121: the
    // remote file held old bytes where they had been sent and new ones after, no version of
    // the local file, exit 0): its change time, which no one sets back, says it changed.
    for (round, why) in [
        (0, "the local file shrank while it was read"),
        (1, "the local file changed while it was read"),
        (2, "the local file changed while it was read"),
    ] {
        std::fs::write(srv.join("up/big.bin"), "old\n").unwrap();
        std::fs::write(r.path("big.bin"), vec![b'x'; 64 << 20]).unwrap();
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(20);
                while temp_files(&srv.join("up")).is_empty() {
                    assert!(Instant::now() < deadline, "the upload never began");
                    std::thread::sleep(Duration::from_millis(2));
                }
                let modified = std::fs::metadata(r.path("big.bin"))
                    .unwrap()
                    .modified()
                    .unwrap();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .append(round == 1)
                    .open(r.path("big.bin"))
                    .unwrap();
                match round {
                    0 => f.set_len(1 << 20).unwrap(),
                    1 => f.write_all(b"more").unwrap(),
                    _ => {
                        std::os::unix::fs::FileExt::write_all_at(&f, b"yyyy", 1000).unwrap();
                        std::os::unix::fs::FileExt::write_all_at(&f, b"yyyy", (64 << 20) - 4)
                            .unwrap();
                        f.set_modified(modified).unwrap();
                    }
                }
            });
            r.tether().args(&["up"]).run()
        });
        out.status(1)
            .stderr_contains(&format!("db1: upload big.bin: {why}"))
            .stderr_lacks("stopped short");
        assert_eq!(
            std::fs::read_to_string(srv.join("up/big.bin")).unwrap(),
            "old\n",
            "{round}"
        );
        assert_eq!(
            temp_files(&srv.join("up")),
            Vec::<std::path::PathBuf>::new()
        );
    }
}

/// An upload that cannot write its temporary file beside the destination says why, naming
/// the destination (fresh-eyes finding, stop 28: a name of 240 bytes failed with `rm: cannot
/// remove '...tether-upload...': File name too long`, twice; a writable file in a directory
/// the user cannot write failed with `cannot create /srv/t/shared.tether-upload...:
/// Permission denied`, naming neither the destination nor the reason). A long name itself is
/// no reason: scp writes names up to the filesystem's 255 bytes, and so does an upload, its
/// temporary file named after a prefix and a hash of the name (fresh-eyes finding, stop 28:
/// names over 224 bytes were refused).
#[test]
fn an_upload_that_cannot_write_beside_its_destination_says_why() {
    let user = support::users::PlainUser::create();
    let lab = lab(&["db1"]);
    let srv = lab.host("db1").root_dir.clone();
    std::fs::create_dir_all(srv.join("up")).unwrap();
    let names = [
        "M".repeat(180),
        "N".repeat(181),
        "L".repeat(240),
        "K".repeat(255),
        format!("{}x", "é".repeat(127)),
        format!("-{}", "D".repeat(230)),
    ];
    for name in &names {
        let r = lab_recipe(
            &lab,
            "upload-long",
            &format!(
                "task(\"up\", || {{ on(\"db\", |host| {{ upload(\"f\", \"/srv/up/{name}\"); \
                 upload(\"f\", \"/srv/up/{name}\"); }}); }});\n"
            ),
        );
        r.write("f", &format!("{}\n", name.len()));
        r.tether().args(&["up"]).run().status(0);
        assert_eq!(
            std::fs::read_to_string(srv.join("up").join(name)).unwrap(),
            format!("{}\n", name.len())
        );
    }
    let mut left: Vec<String> = std::fs::read_dir(srv.join("up"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want: Vec<String> = names.to_vec();
    want.sort();
    assert_eq!(left, want, "only the uploaded files, no temporary one");
    // One byte over what a name may have: refused before anything is sent (see
    // an_overlong_destination_is_refused_before_anything_is_made).
    let over = "O".repeat(256);
    let r = lab_recipe(
        &lab,
        "upload-beside",
        &format!("task(\"up\", || {{ on(\"db\", |host| {{ upload(\"f\", \"/srv/up/{over}\"); }}); }});\n"),
    );
    r.write("f", "new\n");
    r.tether()
        .args(&["up"])
        .run()
        .status(4)
        .stderr_contains("upload: a name in the remote path is 256 bytes long");

    // A file the user may write, in a directory it may not.
    let locked = srv.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::write(locked.join("f"), "old\n").unwrap();
    std::fs::set_permissions(locked.join("f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut r = support::recipe::RecipeDir::new(
        "upload-beside-user",
        &format!(
            "server(\"{}\", #{{ roles: [\"db\"] }});\ntask(\"up\", || {{ on(\"db\", |host| {{ \
             upload(\"f\", \"/srv/locked/f\"); }}); }});\n",
            user.at("db1")
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    r.write("f", "new\n");
    r.tether()
        .args(&["up"])
        .run()
        .status(1)
        .stderr_contains("upload: cannot write in the directory of /srv/locked/f: Permission denied (the file is written beside it and moved into place");
    assert_eq!(std::fs::read_to_string(locked.join("f")).unwrap(), "old\n");
}

/// An upload whose connection is lost while its file is checked and placed is re-attached to,
/// and the line that says so names the upload, not the script tether sent to check and place
/// it (tester's finding, issue 13: "connection lost 0.4 s into `d=/srv/big.bin;
/// t=/srv/big.bin.tether-upload...; n=$(wc -c < "$t") ...`"), and how far into the upload,
/// counted from its start, not from its check's (tester t121: "lost 0.4 s into `upload ...`"
/// for an upload that had run for longer), not from when the recipe asked for it, before its
/// host had connected (CI: 0.12 s more than its `command_started` said, on a slow connect).
#[test]
fn an_upload_lost_while_it_is_placed_is_named_as_the_upload() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "upload-lost-placing",
        r#"task("up", || { on("db", |host| { upload("big.bin", "/srv/big.bin"); }); });"#,
    );
    let data: Vec<u8> = (0..(20 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.path("big.bin"), &data).unwrap();
    let root = lab.host("db1").root_dir.clone();
    let text = lost_while_placed(&lab, &r, &[]);
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), data);
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("re-attached after"))
        .collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(
        said[0].contains(" into `upload big.bin -> /srv/big.bin`;"),
        "{}",
        said[0]
    );
    assert!(!text.contains("tether-upload"), "{text}");
    // In JSON: the loss counted from the upload's `command_started`.
    std::fs::remove_file(root.join("big.bin")).unwrap();
    let json = lost_while_placed(&lab, &r, &["--format", "json"]);
    let events: Vec<serde_json::Value> = json
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}\n{json}"))
    };
    let started = at("command_started")["t"].as_f64().unwrap();
    let reattach = at("reattach");
    let noticed = reattach["t"].as_f64().unwrap() - reattach["took_ms"].as_f64().unwrap() / 1e3;
    let lost_after = reattach["lost_after_ms"].as_f64().unwrap() / 1e3;
    assert!(
        (lost_after - (noticed - started)).abs() < 0.1,
        "lost after {lost_after} s, noticed {} s after the upload started\n{json}",
        noticed - started
    );
}

/// Runs `tether up` (with `args` first) on db1, which connects 0.4 s late (its sshd stopped
/// meanwhile), its upload's check stopped on the host while its connection is killed; checks
/// that it succeeds; what it said.
fn lost_while_placed(
    lab: &support::lab::Lab,
    r: &support::recipe::RecipeDir,
    args: &[&str],
) -> String {
    let sshd = lab.host("db1").pid;
    signal(sshd, libc::SIGSTOP);
    let child = r.tether().args(args).args(&["up"]).spawn();
    std::thread::sleep(Duration::from_millis(400));
    signal(sshd, libc::SIGCONT);
    // The check of the arrived file: stopped on the host while its connection is killed.
    let sum = checking(lab);
    signal(sum, libc::SIGSTOP);
    lab.kill_connections("db1");
    std::thread::sleep(Duration::from_millis(500));
    signal(sum, libc::SIGCONT);
    let out = child.wait_with_output().unwrap();
    let text = crate::support::tether::text(&out);
    assert!(out.status.success(), "{text}");
    text
}

/// An upload or a download onto a symbolic link is refused, naming the link and where it
/// leads, and the link and its target stay as they were: scp writes through a link, a move
/// would replace it (stop 44 tester t54: an upload onto a Capistrano linked file,
/// `current/config/app.yml`, replaced the link, exit 0; the shared file kept the old config,
/// which the next deploy linked again). Through a link in the path's directories (`current/`)
/// a transfer goes as before.
#[test]
fn a_transfer_onto_a_symbolic_link_is_refused() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "links",
        r#"task("up", || { on("db", |host| { upload("a.txt", fetch("to")); }); });
task("down", || { on("db", |host| { download("/srv/a.txt", fetch("to")); }); });"#,
    );
    r.write("a.txt", "new\n");
    let root = &lab.host("db1").root_dir;
    std::fs::create_dir_all(root.join("shared/config")).unwrap();
    std::fs::create_dir_all(root.join("releases/1/config")).unwrap();
    std::fs::write(root.join("shared/config/app.yml"), "old\n").unwrap();
    std::fs::write(root.join("a.txt"), "remote\n").unwrap();
    std::os::unix::fs::symlink(
        "/srv/shared/config/app.yml",
        root.join("releases/1/config/app.yml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("releases/1", root.join("current")).unwrap();
    std::os::unix::fs::symlink("/srv/nowhere", root.join("dangling")).unwrap();
    // A chain is named by where it finally leads (stop 44 tester t55: by its next link).
    std::os::unix::fs::symlink("chain2", root.join("chain1")).unwrap();
    std::os::unix::fs::symlink("current/config/app.yml", root.join("chain2")).unwrap();
    for (to, target) in [
        ("/srv/current/config/app.yml", "/srv/shared/config/app.yml"),
        ("/srv/dangling", "/srv/nowhere"),
        ("/srv/chain1", "/srv/shared/config/app.yml"),
    ] {
        r.tether()
            .args(&["-s", &format!("to={to}"), "up"])
            .run()
            .status(1)
            .stdout_contains(&format!(
                "upload: {to} is a symbolic link (to {target}), which the upload would replace: \
                 give the path it leads to, or remove the link first"
            ));
    }
    assert!(
        std::fs::symlink_metadata(root.join("releases/1/config/app.yml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("shared/config/app.yml")).unwrap(),
        "old\n"
    );
    assert!(!root.join("nowhere").exists());
    // A path through a file, a link to one, or a link that leads nowhere says which name is
    // no directory (stop 44 tester t55: mkdir's `File exists`).
    std::os::unix::fs::symlink("/srv/shared/config/app.yml", root.join("to-file")).unwrap();
    for (to, said) in [
        (
            "/srv/shared/config/app.yml/x",
            "/srv/shared/config/app.yml is not a directory (a file, or a link to one)",
        ),
        (
            "/srv/to-file/y/x",
            "/srv/to-file is not a directory (a file, or a link to one)",
        ),
        (
            "/srv/dangling/x",
            "/srv/dangling is a symbolic link that leads nowhere",
        ),
    ] {
        r.tether()
            .args(&["-s", &format!("to={to}"), "up"])
            .run()
            .status(1)
            .stdout_contains(&format!("upload: {to} cannot be written: {said}"));
    }
    // The path it leads to, and a path through the `current` link, take the file.
    for to in ["/srv/shared/config/app.yml", "/srv/current/config/new.yml"] {
        r.tether()
            .args(&["-s", &format!("to={to}"), "up"])
            .run()
            .status(0);
    }
    assert_eq!(
        std::fs::read_to_string(root.join("shared/config/app.yml")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("releases/1/config/new.yml")).unwrap(),
        "new\n"
    );
    // Locally alike.
    r.write("local-target", "local\n");
    std::os::unix::fs::symlink("local-target", r.path("to-file")).unwrap();
    std::os::unix::fs::symlink("nowhere", r.path("to-nowhere")).unwrap();
    for (to, kind) in [
        (
            "to-file",
            &*format!(
                "a symbolic link to a regular file ({})",
                r.path("local-target").canonicalize().unwrap().display()
            ),
        ),
        ("to-nowhere", "a symbolic link that leads nowhere (nowhere)"),
    ] {
        // The dry run refuses what the run refuses (stop 44 tester t55: it planned them).
        for dry in [&[][..], &["-n"]] {
            r.tether()
                .args(dry)
                .args(&["-s", &format!("to={to}"), "down"])
                .run()
                .status(4)
                .stderr_contains(&format!(
                    "download: ./{to} is {kind}, not a regular file: the download would replace \
                     it (scp would write through it); give a file's own path"
                ));
        }
        assert!(std::fs::symlink_metadata(r.path(to))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(
        std::fs::read_to_string(r.path("local-target")).unwrap(),
        "local\n"
    );
    assert!(!r.path("nowhere").exists());
}

/// An upload or a download whose destination is a FIFO or a socket (a device alike) is
/// refused, naming it, and the node stays: moving the file onto it would remove it (stop 36
/// tester t22: `upload(.., "/srv/fifo")` and `download(.., "lfifo")` replaced them with
/// regular files, exit 0; as root, /dev/null too). scp writes into such a node instead.
#[test]
fn a_transfer_never_replaces_a_fifo_or_a_socket() {
    use std::os::unix::fs::FileTypeExt as _;
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "special-nodes",
        r#"task("up", || { on("db", |host| { upload("a.txt", fetch("to")); }); });
task("down", || { on("db", |host| { download("/srv/a.txt", fetch("to")); }); });"#,
    );
    r.write("a.txt", "new\n");
    let root = &lab.host("db1").root_dir;
    std::fs::write(root.join("a.txt"), "remote\n").unwrap();
    let fifo = |p: &Path| {
        let ok = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", p.display());
    };
    fifo(&root.join("fifo"));
    let _remote_socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    for to in ["/srv/fifo", "/srv/sock"] {
        r.tether()
            .args(&["-s", &format!("to={to}"), "up"])
            .run()
            .status(1)
            .stdout_contains(&format!(
                "upload: {to} is no regular file (a device, a FIFO or a socket), which the \
                 upload would replace"
            ));
    }
    assert!(std::fs::symlink_metadata(root.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(root.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    fifo(&r.path("lfifo"));
    let _local_socket = std::os::unix::net::UnixListener::bind(r.path("lsock")).unwrap();
    for (to, kind) in [("lfifo", "a FIFO"), ("lsock", "a socket")] {
        // A local path the recipe gave: a recipe error (exit 4), as a local directory is.
        r.tether()
            .args(&["-s", &format!("to={to}"), "down"])
            .run()
            .status(4)
            .stderr_contains(&format!(
                "db1: deploy.rhai:5:37: download: ./{to} is {kind}, not a regular file: the \
                 download would replace it"
            ));
    }
    // A link to one, or to a device, is refused as the node is: scp writes through it (stop
    // 43 tester t51: a link to /dev/null and one to /proc/self/fd/1 became regular files).
    std::os::unix::fs::symlink(r.path("lfifo"), r.path("lfifo-link")).unwrap();
    std::os::unix::fs::symlink("/dev/null", r.path("null-link")).unwrap();
    for (to, kind) in [
        (
            "lfifo-link",
            format!("a symbolic link to a FIFO ({})", r.path("lfifo").display()),
        ),
        (
            "null-link",
            "a symbolic link to a character device (/dev/null)".to_string(),
        ),
    ] {
        r.tether()
            .args(&["-s", &format!("to={to}"), "down"])
            .run()
            .status(4)
            .stderr_contains(&format!(
                "download: ./{to} is {kind}, not a regular file: the download would replace it"
            ));
        assert!(std::fs::symlink_metadata(r.path(to))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert!(std::fs::symlink_metadata(r.path("lfifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(r.path("lsock"))
        .unwrap()
        .file_type()
        .is_socket());
    let left = temp_files(root);
    assert!(left.is_empty(), "{left:?}");
    // A regular file is still replaced, as before.
    r.tether()
        .args(&["-s", "to=/srv/b.txt", "up"])
        .run()
        .status(0);
    assert_eq!(
        std::fs::read_to_string(root.join("b.txt")).unwrap(),
        "new\n"
    );
}

/// An upload into a directory others may write (0777, no sticky bit) follows no name another
/// user can change there (stop 41 testers t37, t40). Its file is written in a private
/// directory of its own, made new (`mkdir` follows no link): a link put at the next upload's
/// name beforehand (to a FIFO another user reads) fails that upload, where `set -C` had
/// followed it and written the secret into the FIFO; the private directory renamed away and a
/// link to another's directory put in its place while the upload is checked, given its owner
/// or its mode (the host's program of that name, replaced in its mount namespace, stands in
/// for the race being won)
/// changes nothing of the link's target (a root-only 0600 file): the upload goes on in its
/// own directory and places what was sent.
#[test]
fn an_upload_into_a_directory_others_may_write_follows_no_name_they_change() {
    use std::os::unix::fs::MetadataExt as _;

    let lab = lab(&["db1"]);
    let srv = lab.host("db1").root_dir.clone();
    let app = srv.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o777)).unwrap();
    let conf = app.join("config.yml");
    let victim = srv.join("victim.txt");
    let r = lab_recipe(
        &lab,
        "upload-swap",
        "task(\"up\", || { on(\"db\", |host| { upload(\"config.yml\", \"/srv/app/config.yml\"); }); });\n\
         task(\"twice\", || { on(\"db\", |host| { upload(\"config.yml\", \"/srv/app/config.yml\"); \
         upload(\"config.yml\", \"/srv/app/config.yml\"); }); });\n",
    );
    r.write("config.yml", "new: TOPSECRET\n");
    // The host's `program` runs `body` first (one program at a time).
    let replaced = std::cell::RefCell::new(Vec::<String>::new());
    let wrap = |program: &str, body: &str| {
        for old in replaced.borrow_mut().drain(..) {
            lab.show_programs("db1", &[&old]);
        }
        lab.replace_program("db1", program, &format!("{body}\nexec \"$REAL\" \"$@\""));
        replaced.borrow_mut().push(program.to_string());
    };
    let reset = || {
        std::fs::write(&conf, "old: 1\n").unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(&victim, "root only\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let victim_untouched = |what: &str| {
        let v = std::fs::metadata(&victim).unwrap();
        assert_eq!((v.uid(), v.gid(), mode(&victim)), (0, 0, 0o600), "{what}");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "root only\n",
            "{what}"
        );
    };
    // Swapped while it is checked or placed.
    for program in ["sha256sum", "chown", "chmod", "wc"] {
        reset();
        // The supervisor's own `chmod` (of its private directory, as each exec starts) is let
        // be: the upload's is `chmod MODE -- f`.
        let only = match program {
            "chmod" => "[ \"$2 $3\" = \"-- f\" ] && ",
            _ => "",
        };
        wrap(
            program,
            &format!(
                "{only}for t in /srv/app/config.yml.tether-upload.*; do [ -d \"$t\" ] && ! [ -h \"$t\" ] || continue; \
                 mv \"$t\" \"$t.away\"; mkdir -p /srv/evil; ln -sf /srv/victim.txt /srv/evil/f; ln -s /srv/evil \"$t\"; done"
            ),
        );
        // Swapped before the second command entered it (`wc` runs in the first): that
        // command refuses, replacing nothing; swapped after, the upload goes on in its own
        // directory.
        let out = r.tether().args(&["up"]).run();
        let placed = match out.status {
            0 => "new: TOPSECRET\n",
            _ => {
                out.status(1)
                    .stderr_contains("is not the one tether made")
                    .stderr_contains("nothing was replaced");
                "old: 1\n"
            }
        };
        assert_eq!(program == "wc", placed == "old: 1\n", "{program}");
        victim_untouched(program);
        let c = std::fs::symlink_metadata(&conf).unwrap();
        assert!(c.file_type().is_file(), "{program}: {:?}", c.file_type());
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), placed, "{program}");
        for t in temp_files(&app) {
            let _ = std::fs::remove_file(&t).or_else(|_| std::fs::remove_dir_all(&t));
        }
        let _ = std::fs::remove_dir_all(srv.join("evil"));
    }
    // The destination made a link to another directory while the file is checked: not
    // followed into that directory (stop 41 tester t41: the file was moved into it as `f`,
    // exit 0), and refused, as a link there before is (stop 44 tester t54), the link left as
    // it is; made a directory, the upload fails.
    let elsewhere = srv.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    reset();
    wrap(
        "sha256sum",
        "ln -sfn /srv/elsewhere /srv/app/config.yml.new && mv -Tf /srv/app/config.yml.new /srv/app/config.yml",
    );
    r.tether()
        .args(&["up"])
        .run()
        .status(1)
        .stdout_contains("upload: /srv/app/config.yml is a symbolic link (to /srv/elsewhere)");
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "moved into the link's directory"
    );
    let c = std::fs::symlink_metadata(&conf).unwrap();
    assert!(c.file_type().is_symlink(), "{:?}", c.file_type());
    std::fs::remove_file(&conf).unwrap();
    assert!(temp_files(&app).is_empty(), "{:?}", temp_files(&app));
    reset();
    wrap(
        "sha256sum",
        "rm -f /srv/app/config.yml && mkdir /srv/app/config.yml",
    );
    r.tether().args(&["up"]).run().status(1);
    assert_eq!(
        std::fs::read_dir(&conf).unwrap().count(),
        0,
        "moved into the directory"
    );
    std::fs::remove_dir(&conf).unwrap();
    for t in temp_files(&app) {
        let _ = std::fs::remove_file(&t).or_else(|_| std::fs::remove_dir_all(&t));
    }
    // A link put at the next upload's name, to a FIFO another user reads.
    reset();
    let fifo = srv.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Read as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .unwrap();
            let mut got = Vec::new();
            let until = Instant::now() + Duration::from_secs(8);
            while Instant::now() < until {
                let mut buf = [0u8; 4096];
                match f.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            got
        })
    };
    wrap(
        "sha256sum",
        "for t in /srv/app/config.yml.tether-upload.*; do n=${t##*.}; ln -s /srv/fifo \"${t%.*}.$((n + 1))\"; done",
    );
    let out = r.tether().args(&["twice"]).run();
    out.status(1).stderr_contains("File exists");
    let got = reader.join().unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains("TOPSECRET"),
        "the upload was written into the FIFO"
    );
    victim_untouched("fifo");
    let _ = std::fs::remove_file(&fifo);
}

/// `on(.., #{ timeout })` gives a transfer up as it gives a command up, every time, the whole
/// of it counted (stop 42 tester t46: a 100 MB upload and download under `timeout: 0.05` ran
/// to their end and succeeded, and under `timeout: 0.001` too): nothing is placed, and nothing
/// of it stays on the host or here.
#[test]
fn a_transfer_is_given_up_at_its_timeout() {
    let lab = lab(&["db1"]);
    let root = lab.host("db1").root_dir.clone();
    let r = lab_recipe(
        &lab,
        "transfer-timeout",
        r#"
task("up", || { on("db", #{ timeout: fetch("to") }, |host| { upload("big.bin", "/srv/big.bin"); }); });
task("down", || { on("db", #{ timeout: fetch("to") }, |host| { download("/srv/src.bin", "got.bin"); }); });
"#,
    );
    // 100 MB that gzip cannot shrink: no transfer of it ends within 50 ms here.
    let data = support::noise::noise(100 << 20, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(r.path("big.bin"), &data).unwrap();
    std::fs::write(root.join("src.bin"), &data).unwrap();
    // Said with the timeout given, not what was left of it for the last command (stop 42
    // tester t49: "within 6.2 ms" for a timeout of 2.5 s).
    for (to, said) in [
        ("0.05", "50.0 ms"),
        ("0.001", "1.0 ms"),
        ("0.001", "1.0 ms"),
        ("0.001", "1.0 ms"),
    ] {
        for (task, what) in [
            ("up", "`upload big.bin -> /srv/big.bin`"),
            ("down", "`download /srv/src.bin -> got.bin`"),
        ] {
            r.tether()
                .args(&[task, "-s", &format!("to={to}")])
                .run()
                .status(1)
                .stderr_contains(&format!("db1: {what} did not finish within {said}\n"));
        }
        assert!(!root.join("big.bin").exists(), "timeout {to}: placed");
        assert!(!r.path("got.bin").exists(), "timeout {to}: placed here");
        assert_eq!(temp_files(&root), Vec::<std::path::PathBuf>::new(), "{to}");
        let here: Vec<_> = std::fs::read_dir(r.path("."))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tether-download."))
            .collect();
        assert!(here.is_empty(), "{to}: {here:?}");
    }
    // Time enough, both go through.
    for task in ["up", "down"] {
        r.tether().args(&[task, "-s", "to=600"]).run().status(0);
    }
    assert_eq!(
        std::fs::read(root.join("big.bin")).unwrap().len(),
        data.len()
    );
    assert_eq!(std::fs::read(r.path("got.bin")).unwrap().len(), data.len());
}

/// A transfer is announced once, as one command: its second exec (placing an upload, measuring
/// a download) is tether's own (stop 52 tester t79: `-v` printed `$ upload a -> b` twice, and
/// `--format json` had two `command_started` events for it).
#[test]
fn a_transfer_is_announced_once() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "transfer-once",
        r#"task("t", || { on("db", |host| { upload("a.txt", "/srv/a.txt"); download("/srv/a.txt", "b.txt"); run("true"); }); });"#,
    );
    r.write("a.txt", "hello\n");
    let out = r.tether().args(&["-v", "t"]).run();
    out.status(0);
    let text = format!("{}{}", out.stdout, out.stderr);
    for (what, want) in [
        ("$ upload a.txt -> /srv/a.txt", 1),
        ("$ download /srv/a.txt -> b.txt", 1),
        ("$ true", 1),
    ] {
        assert_eq!(text.matches(what).count(), want, "{what}\n{text}");
    }
    let out = r.tether().args(&["--format", "json", "t"]).run();
    out.status(0);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("command_started"), 3, "{}", out.stdout);
    assert_eq!(count("command_finished"), 3, "{}", out.stdout);
    assert_eq!(std::fs::read_to_string(r.path("b.txt")).unwrap(), "hello\n");
}
