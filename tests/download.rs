//! `download(remote, local)` against real sshd: the local destination changes only to the
//! complete file, with the remote file's permission bits (or `mode:`); a download cut off
//! leaves it as it was and no temporary file behind; memory stays bounded whatever the size.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::recipe::{lab, lab_recipe};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The download temporary files in `dir` (`NAME.tether-download.RUN`).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".tether-download."))
        .collect()
}

#[test]
fn downloads_keep_the_remote_permission_bits_and_content() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-modes",
        r#"
task("down", || {
    on("db", |host| {
        download("/srv/d/secret.key", "got/secret.key");
        download("/srv/d/run.sh", "got/run.sh");
        download("/srv/d/empty.txt", "got/empty.txt");
        download("/srv/d/plain.txt", "got/given.txt", #{ mode: "0604" });
    });
});
task("dir", || { on("db", |host| { download("/srv/d", "got/d"); }); });
task("missing", || { on("db", |host| { download("/srv/d/nope", "got/secret.key"); }); });
"#,
    );
    let root = &lab.host("db1").root_dir;
    std::fs::create_dir_all(root.join("d")).unwrap();
    let files = [
        ("secret.key", 0o600, "key material\n"),
        ("run.sh", 0o755, "#!/bin/sh\necho hi\n"),
        ("empty.txt", 0o640, ""),
        ("plain.txt", 0o644, "plain\n"),
    ];
    for (name, m, text) in files {
        std::fs::write(root.join("d").join(name), text).unwrap();
        std::fs::set_permissions(
            root.join("d").join(name),
            std::fs::Permissions::from_mode(m),
        )
        .unwrap();
    }
    // An earlier local file of another mode takes the remote file's.
    r.write("got/secret.key", "old");
    std::fs::set_permissions(
        r.path("got/secret.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    r.tether().args(&["down"]).run().status(0);
    for (name, m, text) in &files[..3] {
        let local = r.path("got").join(name);
        assert_eq!(std::fs::read_to_string(&local).unwrap(), *text, "{name}");
        assert_eq!(mode(&local), *m, "{name}: {:o}", mode(&local));
    }
    assert_eq!(
        std::fs::read_to_string(r.path("got/given.txt")).unwrap(),
        "plain\n"
    );
    assert_eq!(mode(&r.path("got/given.txt")), 0o604);
    assert!(temp_files(&r.path("got")).is_empty());

    // A remote directory, a missing file: refused with the reason; the destination stays.
    r.tether()
        .args(&["dir"])
        .run()
        .status(1)
        .stdout_contains("download: /srv/d is a directory");
    r.tether()
        .args(&["missing"])
        .run()
        .status(1)
        .stdout_contains("/srv/d/nope: No such file or directory")
        .stdout_lacks("sha256sum")
        .stderr_lacks("sha256sum")
        .stderr_contains("`download /srv/d/nope -> got/secret.key`");
    assert_eq!(
        std::fs::read_to_string(r.path("got/secret.key")).unwrap(),
        "key material\n"
    );
    assert!(!r.path("got/d").exists());
    assert!(temp_files(&r.path("got")).is_empty());
}

/// A download to a long local name (up to 255 bytes, as scp writes it) lands: its temporary
/// file is named by a hash (stop 44 tester t54: `File name too long`, where an upload of the
/// same name worked). Nothing of it is left beside.
#[test]
fn a_download_to_a_long_name_lands() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-long",
        r#"task("down", || { on("db", |host| { download("/srv/" + fetch("name"), "dl/" + fetch("name")); }); });"#,
    );
    let root = &lab.host("db1").root_dir;
    for name in ["M".repeat(254), format!("{}ab", "€".repeat(84))] {
        std::fs::write(root.join(&name), "long\n").unwrap();
        r.tether()
            .args(&["-s", &format!("name={name}"), "down"])
            .run()
            .status(0);
        assert_eq!(
            std::fs::read_to_string(r.path("dl").join(&name)).unwrap(),
            "long\n"
        );
    }
    assert!(temp_files(&r.path("dl")).is_empty());
    // One byte more is no name: refused before anything is sent (stop 44 tester t55: all of
    // an upload's bytes were sent first).
    let over = "M".repeat(256);
    r.tether()
        .args(&["-s", &format!("name={over}"), "down"])
        .run()
        .status(4)
        .stderr_contains("download: a name in the local path is 256 bytes long");
}

#[test]
fn a_download_on_several_hosts_names_each_hosts_file() {
    let lab = lab(&["db1", "db2"]);
    let r = lab_recipe(
        &lab,
        "download-hosts",
        r#"server("db2", #{ roles: ["db"] });
task("each", || { on("db", |host| { download("/srv/id", "ids/{host}.txt"); }); });
task("same", || {
    on("db", |host| {
        download("/srv/id", "ids/all.txt");
    });
});
"#,
    );
    for h in ["db1", "db2"] {
        std::fs::write(lab.host(h).root_dir.join("id"), format!("I am {h}\n")).unwrap();
    }
    r.tether().args(&["each"]).run().status(0);
    for h in ["db1", "db2"] {
        assert_eq!(
            std::fs::read_to_string(r.path(&format!("ids/{h}.txt"))).unwrap(),
            format!("I am {h}\n")
        );
    }
    // Every host writing one file is refused: the last one would win.
    r.tether()
        .args(&["same"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:8:9: download: this on() runs on 2 hosts")
        .stderr_contains("put {host} in the local path");
    assert!(!r.path("ids/all.txt").exists());
}

/// A download cut off (the connection killed) once `fraction` of 100 MiB arrived: the remote
/// file is a regular one (a FIFO is refused) 32 MiB longer than that, and its `cat` is
/// stopped (SIGSTOP) once that much arrived, so the cut always comes before the end.
fn cut_off_at(fraction: f64) {
    const SIZE: usize = 100 << 20;
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-cut",
        r#"task("down", || { on("db", |host| { download("/srv/big.bin", "big.bin"); }); });"#,
    );
    r.write("big.bin", "the previous release's file\n");
    let root = lab.host("db1").root_dir.clone();
    let want = (SIZE as f64 * fraction) as usize;
    let big = std::fs::File::create(root.join("big.bin")).unwrap();
    big.set_len((want + (32 << 20)) as u64).unwrap();
    drop(big);
    let child = r.tether().args(&["down", "--no-keepalive"]).spawn();
    let started = Instant::now();
    loop {
        let got = temp_files(&r.dir)
            .first()
            .map(|t| std::fs::metadata(t).map(|m| m.len()).unwrap_or(0))
            .unwrap_or(0);
        if got as usize >= want {
            for pid in lab.host_pids("db1") {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "cat" {
                    std::process::Command::new("kill")
                        .args(["-STOP", &pid.to_string()])
                        .status()
                        .unwrap();
                }
            }
            let tmp = &temp_files(&r.dir)[0];
            assert_eq!(
                mode(tmp),
                0o600,
                "the temporary file is private while it fills"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {got} bytes arrived"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    lab.kill_connections("db1");
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a cut-off download is a failure");
    // Said as what it is (stop 44 tester t54: "the command may have partly run").
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("db1: connection lost during `download /srv/big.bin -> big.bin` after ")
            && stderr.contains("; nothing was replaced (")
            && !stderr.contains("partly run"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(r.path("big.bin")).unwrap(),
        "the previous release's file\n"
    );
    assert!(temp_files(&r.dir).is_empty(), "{:?}", temp_files(&r.dir));
}

#[test]
fn a_download_cut_off_at_10_percent_leaves_the_destination_as_it_was() {
    cut_off_at(0.10);
}

#[test]
fn a_download_cut_off_at_50_percent_leaves_the_destination_as_it_was() {
    cut_off_at(0.50);
}

#[test]
fn a_download_cut_off_at_99_percent_leaves_the_destination_as_it_was() {
    cut_off_at(0.99);
}

/// Runs `tether` under GNU time and returns its exit status and peak resident set size
/// (bytes), as the kernel accounted it for that process (`wait4`'s `ru_maxrss`), not sampled.
/// GNU time forks tether from its own small process: a child spawned by this (large,
/// multi-threaded) test process directly would start its high-water mark at ours.
fn run_with_max_rss(tether: &support::tether::Tether) -> (i32, u64) {
    let inner = tether.command();
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        cmd.current_dir(dir);
    }
    let status = cmd.status().expect("/usr/bin/time (package `time`)");
    let text = std::fs::read_to_string(report.path()).unwrap();
    let kb: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time wrote {text:?}"));
    (status.code().unwrap_or(-1), kb * 1024)
}

#[test]
fn a_500_mb_transfer_each_way_holds_a_small_fraction_of_it_in_memory() {
    const SIZE: u64 = 500 << 20;
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "transfer-memory",
        r#"
task("up", || { on("db", |host| { upload("big.bin", "/srv/up.bin"); }); });
task("down", || { on("db", |host| { download("/srv/down.bin", "down.bin"); }); });
"#,
    );
    let root = lab.host("db1").root_dir.clone();
    // Sparse files of zeros: the size is real to every reader, the disk is spared one copy.
    std::fs::File::create(r.path("big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    std::fs::File::create(root.join("down.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    for (task, dest) in [("up", root.join("up.bin")), ("down", r.path("down.bin"))] {
        let (code, rss) = run_with_max_rss(&r.tether().args(&[task]));
        assert_eq!(code, 0, "{task}");
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), SIZE, "{task}");
        // A debug tether idles at about 20 MB; the file would add 500 MB.
        assert!(
            rss < 100 << 20,
            "{task}: tether's peak RSS was {} MB",
            rss >> 20
        );
    }
}

#[test]
fn a_dry_run_lists_downloads_and_connects_to_nothing() {
    let r = support::recipe::RecipeDir::new(
        "download-plan",
        r#"server("db1", #{ roles: ["db"] });
server("db2", #{ roles: ["db"] });
task("down", || { on("db", |host| { download("/srv/id", "ids/{host}.txt"); }); });"#,
    );
    r.tether()
        .args(&["-n", "down"])
        .run()
        .status(0)
        .stdout_contains("download /srv/id -> ids/db1.txt")
        .stdout_contains("download /srv/id -> ids/db2.txt");
    let out = r.tether().args(&["-n", "--format", "json", "down"]).run();
    out.status(0).stdout_contains(
        r#""host":"db1","type":"planned_download","remote":"/srv/id","local":"ids/db1.txt"}"#,
    );
    assert!(!r.path("ids").exists());
}

/// A download removes the temporary files of its destination that earlier runs left behind
/// (a tether killed mid-download; older than a minute), and nothing else.
#[test]
fn a_download_removes_stale_temporary_files_of_its_destination_only() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-stale",
        r#"task("down", || { on("db", |host| { download("/srv/a.txt", "a.txt"); }); });"#,
    );
    std::fs::write(lab.host("db1").root_dir.join("a.txt"), "new\n").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    let stale = r.path("a.txt.tether-download.1234.5678");
    let live = r.path("a.txt.tether-download.9999.1");
    let others = [
        r.path("b.txt.tether-download.1234.5678"),
        r.path("a.txt.tether-downloads"),
        r.path("a.txt.keep"),
    ];
    for p in [&stale, &live].into_iter().chain(&others) {
        std::fs::write(p, "x").unwrap();
    }
    for p in [&stale].into_iter().chain(&others) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    r.tether().args(&["down"]).run().status(0);
    assert_eq!(std::fs::read_to_string(r.path("a.txt")).unwrap(), "new\n");
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(live.exists(), "a live download's file is not touched");
    for p in &others {
        assert!(p.exists(), "{}", p.display());
    }
}

#[test]
fn a_download_through_a_symlink_takes_the_targets_permission_bits_and_content() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-symlink",
        r#"
task("down", || {
    on("db", |host| {
        download("/srv/d/key.link", "got/key");
        download("/srv/d/run.link", "got/run");
        download("/srv/d/chain.link", "got/chain");
    });
});
"#,
    );
    let root = &lab.host("db1").root_dir;
    std::fs::create_dir_all(root.join("d")).unwrap();
    for (name, m, text) in [("key", 0o600, "key\n"), ("run.sh", 0o750, "#!/bin/sh\n")] {
        std::fs::write(root.join("d").join(name), text).unwrap();
        std::fs::set_permissions(
            root.join("d").join(name),
            std::fs::Permissions::from_mode(m),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("/srv/d/key", root.join("d/key.link")).unwrap();
    std::os::unix::fs::symlink("run.sh", root.join("d/run.link")).unwrap();
    std::os::unix::fs::symlink("key.link", root.join("d/chain.link")).unwrap();
    r.tether().args(&["down"]).run().status(0);
    for (local, m, text) in [
        ("got/key", 0o600, "key\n"),
        ("got/run", 0o750, "#!/bin/sh\n"),
        ("got/chain", 0o600, "key\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(r.path(local)).unwrap(),
            text,
            "{local}"
        );
        assert_eq!(
            mode(&r.path(local)),
            m,
            "{local}: {:o}",
            mode(&r.path(local))
        );
    }
}

#[test]
fn a_download_of_a_remote_that_is_not_a_regular_file_is_refused_before_any_byte() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-special",
        r#"
task("zero", || { on("db", |host| { download("/dev/zero", "got/zero"); }); });
task("fifo", || { on("db", |host| { download("/srv/d/fifo", "got/fifo"); }); });
task("null", || { on("db", |host| { download("/srv/d/null.link", "got/null"); }); });
"#,
    );
    let root = &lab.host("db1").root_dir;
    std::fs::create_dir_all(root.join("d")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(root.join("d/fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/null", root.join("d/null.link")).unwrap();
    for (task, remote) in [
        ("zero", "/dev/zero"),
        ("fifo", "/srv/d/fifo"),
        ("null", "/srv/d/null.link"),
    ] {
        r.tether()
            .args(&[task])
            .run()
            .status(1)
            .stdout_contains(&format!("download: {remote} is not a regular file"));
        assert!(!r.path("got").join(task).exists(), "{task}");
        assert!(temp_files(&r.path("got")).is_empty(), "{task}");
    }
}

#[test]
fn a_download_from_a_home_relative_or_dash_named_remote_reads_that_file() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-names",
        r#"
task("home", || {
    on("db", |host| {
        download("~/t.key", "got/t.key");
        download("~/sub dir/$x 'q'", "got/q");
    });
});
task("dash", || {
    on("db", |host| {
        within("/srv/w", || {
            download("-n", "got/n");
            download("--x", "got/x");
            download("-a\nb c", "got/nl");
        });
    });
});
task("user", || { on("db", |host| { download("~nobody/x", "got/u"); }); });
"#,
    );
    let home = &lab.host("db1").home;
    std::fs::create_dir_all(home.join("sub dir")).unwrap();
    std::fs::write(home.join("t.key"), "home key\n").unwrap();
    std::fs::write(home.join("sub dir/$x 'q'"), "quoted\n").unwrap();
    r.tether().args(&["home"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(r.path("got/t.key")).unwrap(),
        "home key\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.path("got/q")).unwrap(),
        "quoted\n"
    );
    let w = lab.host("db1").root_dir.join("w");
    std::fs::create_dir_all(&w).unwrap();
    for name in ["-n", "--x", "-a\nb c"] {
        std::fs::write(w.join(name), format!("{name}!")).unwrap();
    }
    r.tether().args(&["dash"]).run().status(0);
    for (name, local) in [("-n", "got/n"), ("--x", "got/x"), ("-a\nb c", "got/nl")] {
        assert_eq!(
            std::fs::read_to_string(r.path(local)).unwrap(),
            format!("{name}!")
        );
    }
    r.tether()
        .args(&["user"])
        .run()
        .status(4)
        .stderr_contains("remote path `~nobody/x`: only `~` and `~/` are expanded");
}

/// A download ended by SIGTERM, or by Ctrl-C twice, leaves no temporary file behind: tether
/// removes it on the way out (the destination is untouched either way).
#[test]
fn a_download_ended_by_a_signal_leaves_no_temporary_file() {
    let lab = lab(&["db1"]);
    // 4 GiB of holes: far more than arrives before the signal.
    let big = std::fs::File::create(lab.host("db1").root_dir.join("huge.bin")).unwrap();
    big.set_len(4 << 30).unwrap();
    let r = lab_recipe(
        &lab,
        "download-signal",
        r#"task("down", || { on("db", |host| { download("/srv/huge.bin", "huge.bin"); }); });"#,
    );
    let dir = r.dir.clone();
    for signals in [&[libc::SIGTERM][..], &[libc::SIGINT, libc::SIGINT][..]] {
        let mut child = r.tether().args(&["down"]).spawn_watched();
        let until = Instant::now() + Duration::from_secs(60);
        // Until the temporary file has some of the data.
        loop {
            let growing = temp_files(&dir)
                .iter()
                .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > (8 << 20)));
            if growing {
                break;
            }
            assert!(Instant::now() < until, "the download never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        match signals {
            [twice, _] => child.signal_twice(*twice),
            _ => support::net::signal(child.id(), signals[0]),
        }
        let status = child.wait_with_output().status;
        assert!(!status.success(), "{signals:?}: {status:?}");
        assert!(
            temp_files(&dir).is_empty(),
            "{signals:?} left {:?}",
            temp_files(&dir)
        );
        assert!(!dir.join("huge.bin").exists());
    }
}

/// A download whose remote file changed while it was read fails naming its host, as every
/// other failure of a host does (fresh-eyes finding, stop 28: on two hosts, `download
/// /srv/g: arrived changed: ...` twice, and no way to tell which host said which).
#[test]
fn a_download_that_arrived_changed_names_its_host() {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};

    let lab = lab(&["db1", "db2"]);
    let r = lab_recipe(
        &lab,
        "download-changed",
        r#"server("db2", #{ roles: ["db"] });
task("get", || { on("db", |host| { download("/srv/g", "got/{host}"); }); });
"#,
    );
    let files: Vec<_> = ["db1", "db2"]
        .iter()
        .map(|h| lab.host(h).root_dir.join("g"))
        .collect();
    for f in &files {
        std::fs::write(f, vec![b'x'; 8 << 20]).unwrap();
    }
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                for f in &files {
                    let mut file = std::fs::OpenOptions::new().append(true).open(f).unwrap();
                    file.write_all(&[b'y'; 4096]).unwrap();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let out = r.tether().args(&["get"]).run();
        done.store(true, Ordering::SeqCst);
        out
    });
    let out = out.status(1);
    for h in ["db1", "db2"] {
        out.stderr_contains(&format!("{h}: download /srv/g: "));
        assert!(!r.path(&format!("got/{h}")).exists());
    }
}

/// A local path beginning with `~` is refused, for a download as for an upload: local paths
/// are the recipe directory's, and `~/got` made a directory named `~` there (stop 40 tester
/// t33: exit 0, the file not where a shell would have put it).
#[test]
fn a_local_path_beginning_with_a_tilde_is_refused() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-tilde",
        r#"task("down", || { on("db", |host| { download("/srv/f", "~/got"); }); });
task("up", || { on("db", |host| { upload("~/f", "/srv/g"); }); });
task("nl", || { on("db", |host| { upload("f\nx.txt", "/srv/g"); }); });"#,
    );
    std::fs::write(lab.host("db1").root_dir.join("f"), "x\n").unwrap();
    for (task, says) in [
        ("down", "download: the local path `~/got` begins with `~`"),
        ("up", "upload: the local path `~/f` begins with `~`"),
    ] {
        r.tether()
            .args(&[task])
            .run()
            .status(4)
            .stderr_contains(says);
    }
    assert!(!r.path("~").exists());
    // A local path that cannot be read is named quoted, a newline in it escaped, so that it
    // cannot start a line of its own (stop 40 tester t36).
    r.tether()
        .args(&["nl"])
        .run()
        .status(4)
        .stderr_contains("/f\\x0ax.txt': No such file or directory");
    assert!(!lab.host("db1").root_dir.join("g").exists());
}

/// A download whose local file cannot be written (a full disk) fails the host's download, exit
/// 1, as a failed command does; it is no recipe error (stop 40 tester t33: exit 4, kind
/// `recipe`). The destination is as it was. The small disk is a tmpfs in a mount namespace of
/// tether's own.
#[test]
fn a_download_onto_a_full_local_disk_fails_the_host_not_the_recipe() {
    let lab = lab(&["db1"]);
    let r = lab_recipe(
        &lab,
        "download-full",
        r#"task("down", || { on("db", |host| { download("/srv/big", "small/big"); }); });"#,
    );
    let big = lab.host("db1").root_dir.join("big");
    std::fs::write(&big, vec![b'x'; 1 << 20]).unwrap();
    let small = r.path("small");
    std::fs::create_dir(&small).unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=64k tmpfs \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&small)
        .arg(env!("CARGO_BIN_EXE_tether"))
        .arg("-F")
        .arg(lab.ssh_config())
        .args(["--no-fold", "down"])
        .current_dir(&r.dir)
        .env_remove("TETHER_SSH_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// `{host}` in a download's local path is one file name: a host whose name would put the file
/// elsewhere (`..`, `.`, a `/`, as an ssh config `Host` pattern and an `ssh://` name can hold)
/// is a recipe error naming it, and nothing is written (stop 41 tester t37: `x/../../../esc`
/// wrote above the recipe's directory, exit 0).
#[test]
fn a_host_name_that_is_no_file_name_is_refused_in_a_download_path() {
    let lab = lab(&["db1"]);
    std::fs::write(lab.host("db1").root_dir.join("r.txt"), "x\n").unwrap();
    let lab_config = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let names = ["..", ".", "x/../../esc", "a/b", "db1/"];
    let mut r = support::recipe::RecipeDir::new(
        "download-host-names",
        "server(fetch(\"h\"), #{ roles: [\"db\"] });\ntask(\"down\", || { on(\"db\", |host| { \
         download(\"/srv/r.txt\", \"logs/{host}/r.txt\"); }); });\n\
         task(\"top\", || { on(\"db\", |host| { download(\"/srv/r.txt\", \"{host}/r.txt\"); }); });\n",
    );
    let config = r.path("ssh_config");
    std::fs::write(
        &config,
        lab_config.replace(
            "Host db1\n",
            &format!("Host db1 ~ ~root {}\n", names.join(" ")),
        ),
    )
    .unwrap();
    r.ssh_config = Some(config);
    for name in names {
        r.tether()
            .args(&["-s", &format!("h={name}"), "down"])
            .run()
            .status(4)
            .stderr_contains("deploy.rhai:2:37: download: {host} in logs/{host}/r.txt would be")
            .stderr_contains("which is no single file name");
    }
    let written: Vec<_> = walk(&r.path(""))
        .into_iter()
        .filter(|p| p.ends_with("r.txt"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
    assert!(!r.path("../esc").exists());
    // At the start of the path, a name beginning with `~` makes the local `~` path transfers
    // refuse (stop 41 tester t40: `./~/r.txt`).
    for name in ["~", "~root"] {
        r.tether()
            .args(&["-s", &format!("h={name}"), "top"])
            .run()
            .status(4)
            .stderr_contains("which is no single file name");
    }
    assert!(!r.path("~").exists() && !r.path("~root").exists());
    // A name that is one: the file is where the path says.
    r.tether().args(&["-s", "h=db1", "down"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(r.path("logs/db1/r.txt")).unwrap(),
        "x\n"
    );
}

/// Every file under `dir`, depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A local path that needs a directory where a file is (`f/r.txt`, `f/sub/r.txt` with `f` a
/// file) is the recipe's path: a recipe error naming that file, nothing written (stop 40
/// tester t36: `cannot create a temporary file beside ...: File exists (os error 17)`).
#[test]
fn a_local_path_through_a_file_is_refused_naming_the_file() {
    let lab = lab(&["db1"]);
    std::fs::write(lab.host("db1").root_dir.join("r.txt"), "x\n").unwrap();
    let r = lab_recipe(
        &lab,
        "download-through-file",
        "task(\"one\", || { on(\"db\", |host| { download(\"/srv/r.txt\", \"f/r.txt\"); }); });\n\
         task(\"two\", || { on(\"db\", |host| { download(\"/srv/r.txt\", \"f/sub/r.txt\"); }); });\n",
    );
    r.write("f", "a file\n");
    for task in ["one", "two"] {
        r.tether()
            .args(&[task])
            .run()
            .status(4)
            .stderr_contains("is a file, not a directory");
    }
    assert_eq!(std::fs::read_to_string(r.path("f")).unwrap(), "a file\n");
}

/// A download into a local directory others may write, whose temporary file is renamed away
/// and replaced by a link to a root-only file while it fills: the link's target keeps its mode,
/// nothing is placed, and the host fails saying so (stop 41 tester t40: the target became
/// 0644, the link was moved onto the destination, exit 0).
#[test]
fn a_download_whose_temporary_file_is_swapped_for_a_link_follows_no_link() {
    let lab = lab(&["db1"]);
    std::fs::write(
        lab.host("db1").root_dir.join("big.bin"),
        vec![7u8; 64 << 20],
    )
    .unwrap();
    let r = lab_recipe(
        &lab,
        "download-swap",
        r#"task("down", || { on("db", |host| { download("/srv/big.bin", "dl/big.bin"); }); });"#,
    );
    let dl = r.path("dl");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::set_permissions(&dl, std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = r.path("target");
    std::fs::write(&target, "root only\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let child = r.tether().args(&["down"]).spawn();
    let started = Instant::now();
    let temp = loop {
        if let Some(t) = temp_files(&dl).into_iter().next() {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no temporary file"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    std::fs::rename(&temp, dl.join("aside")).unwrap();
    std::os::unix::fs::symlink(&target, &temp).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was replaced while it was written"),
        "{stderr}"
    );
    assert_eq!(mode(&target), 0o600);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root only\n");
    assert!(std::fs::symlink_metadata(dl.join("big.bin")).is_err());
}

/// A download onto a file this run writes or reads is refused at its line, and the file
/// keeps what it held: the run's log by any name (a link, `..`, `log_file` set elsewhere), its
/// `.1` made or not yet (stop 42 tester t43: the log held only the downloaded file, exit 0),
/// the recipe, a module it loaded and the ssh config (stop 42 tester t46: each was replaced,
/// exit 0). A file of the log's name that is not this run's (`log_file` set elsewhere) is
/// downloaded onto as any file.
#[test]
fn a_download_onto_a_file_of_the_run_is_refused() {
    let lab = lab(&["db1"]);
    std::fs::write(lab.host("db1").root_dir.join("remote.txt"), "hello\n").unwrap();
    let r = lab_recipe(
        &lab,
        "download-log",
        r#"
import "lib/m" as m;
task("down", || { on("db", |host| { download("/srv/remote.txt", fetch("dst")); }); });
"#,
    );
    std::fs::create_dir_all(r.path("lib")).unwrap();
    std::fs::write(r.path("lib/m.rhai"), "fn f() { 1 }\n").unwrap();
    std::fs::create_dir_all(r.path("log")).unwrap();
    std::os::unix::fs::symlink("log/tether.log", r.path("link.log")).unwrap();
    let recipe = std::fs::read_to_string(r.path("deploy.rhai")).unwrap();
    let config = lab.ssh_config().display().to_string();
    let config_text = std::fs::read_to_string(&config).unwrap();
    let log = "this run's log (log_file), ";
    for (dst, extra, what) in [
        (
            "log/tether.log.1",
            None,
            "the run log's previous run (log_file's .1), ",
        ),
        ("log/tether.log", None, log),
        ("log/../log/tether.log", None, log),
        ("link.log", None, log),
        ("run.log", Some("log_file=run.log"), log),
        ("deploy.rhai", None, "a file of this recipe"),
        ("./lib/m.rhai", None, "a file of this recipe"),
        (config.as_str(), None, "the ssh config of this run, "),
    ] {
        let dst_arg = format!("dst={dst}");
        let mut args = vec!["down", "-s", dst_arg.as_str()];
        if let Some(e) = extra {
            args.extend(["-s", e]);
        }
        let out = r.tether().args(&args).run();
        out.status(4)
            .stderr_contains(&format!("download: {dst} is {what}"))
            .stderr_contains(": download: ");
        let log = extra.map_or("log/tether.log", |_| "run.log");
        let text = std::fs::read_to_string(r.path(log)).unwrap();
        assert!(
            text.contains("down"),
            "{dst}: the log lost the run:\n{text}"
        );
        if dst == "log/tether.log.1" {
            assert!(!r.path("log/tether.log.1").exists());
            std::fs::write(r.path("log/tether.log.1"), "an older run\n").unwrap();
        }
    }
    assert_eq!(
        std::fs::read_to_string(r.path("log/tether.log.1")).unwrap(),
        "an older run\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.path("deploy.rhai")).unwrap(),
        recipe
    );
    assert_eq!(
        std::fs::read_to_string(r.path("lib/m.rhai")).unwrap(),
        "fn f() { 1 }\n"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), config_text);
    // The default log's name, where this run logs elsewhere: any file.
    r.tether()
        .args(&["down", "-s", "dst=log/tether.log", "-s", "log_file=run.log"])
        .run()
        .status(0);
    assert_eq!(
        std::fs::read_to_string(r.path("log/tether.log")).unwrap(),
        "hello\n"
    );
}

/// A download onto a file ssh reads for this run is refused at its line, and the file keeps
/// what it held (stop 42 tester t49: the run's own guess at its ssh config missed them): a
/// file the config includes, one included through `%n` (read for this host alone), the
/// host's UserKnownHostsFile and GlobalKnownHostsFile, its IdentityFile and that key's `.pub`.
#[test]
fn a_download_onto_a_file_ssh_reads_is_refused() {
    let lab = lab(&["db1"]);
    std::fs::write(lab.host("db1").root_dir.join("remote.txt"), "hello\n").unwrap();
    let mut r = lab_recipe(
        &lab,
        "download-ssh-files",
        r#"task("down", || { on("db", |host| { download("/srv/remote.txt", fetch("dst")); }); });"#,
    );
    let dir = r.path("ssh");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("db1.conf"), "ServerAliveInterval 30\n").unwrap();
    std::fs::write(dir.join("global_known_hosts"), "").unwrap();
    let key = dir.join("key");
    std::fs::copy(lab.client_key(), &key).unwrap();
    let mut public = lab.client_key().into_os_string();
    public.push(".pub");
    std::fs::copy(&public, dir.join("key.pub")).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "Host db1\n    IdentityFile {key}\n    GlobalKnownHostsFile {global}\n\
             Include {dir}/%n.conf\nInclude {lab}\n",
            key = key.display(),
            global = dir.join("global_known_hosts").display(),
            dir = dir.display(),
            lab = lab.ssh_config().display(),
        ),
    )
    .unwrap();
    r.ssh_config = Some(config.clone());
    let files = [
        (
            lab.ssh_config(),
            "a file the ssh config of this run includes (Include)",
        ),
        (dir.join("db1.conf"), "an ssh config file read for db1"),
        (lab.known_hosts(), "db1's UserKnownHostsFile (ssh_config)"),
        (
            dir.join("global_known_hosts"),
            "db1's GlobalKnownHostsFile (ssh_config)",
        ),
        (key.clone(), "db1's IdentityFile (ssh_config)"),
        (dir.join("key.pub"), "the .pub of db1's IdentityFile"),
        (config.clone(), "the ssh config of this run"),
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|(f, _)| std::fs::read(f).unwrap())
        .collect();
    for (file, what) in &files {
        let dst = file.display().to_string();
        let out = r
            .tether()
            .args(&["down", "-s", &format!("dst={dst}")])
            .run();
        out.status(4)
            .stderr_contains(&format!("download: {dst} is {what}"))
            .stderr_contains("download elsewhere");
    }
    for ((file, _), held) in files.iter().zip(before) {
        assert_eq!(std::fs::read(file).unwrap(), held, "{}", file.display());
    }
    // Any other file of that directory is downloaded onto.
    let other = dir.join("other.txt").display().to_string();
    r.tether()
        .args(&["down", "-s", &format!("dst={other}")])
        .run()
        .status(0);
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "hello\n");
}

/// A download onto a file this run writes as it goes is refused at its line, and the file
/// keeps what the run wrote (stop 43 tester t51: exit 0, and the run's output went to an
/// unlinked file): where its stdout or stderr goes, its `--timeline` page, tether's cache of
/// learned idle limits.
#[test]
fn a_download_onto_the_runs_output_timeline_or_cache_is_refused() {
    let lab = lab(&["db1"]);
    std::fs::write(lab.host("db1").root_dir.join("remote.txt"), "hello\n").unwrap();
    let r = lab_recipe(
        &lab,
        "download-output",
        r#"task("down", || { on("db", |host| { download("/srv/remote.txt", fetch("dst")); }); });"#,
    );
    for (fd, what) in [(1, "stdout"), (2, "stderr")] {
        let file = r.path(&format!("fd{fd}.txt"));
        let out = std::fs::File::create(&file).unwrap();
        let mut cmd = r
            .tether()
            .args(&["down", "-s", &format!("dst=fd{fd}.txt")])
            .command();
        if fd == 1 {
            cmd.stdout(out);
        } else {
            cmd.stderr(out);
        }
        let done = cmd.output().unwrap();
        assert_eq!(done.status.code(), Some(4), "{done:?}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("hello"), "{what}: {text}");
        let said = if fd == 2 {
            text
        } else {
            String::from_utf8_lossy(&done.stderr).into_owned()
        };
        assert!(
            said.contains(&format!(
                "download: fd{fd}.txt is where this run's {what} goes, "
            )),
            "{said}"
        );
    }
    let timeline = r.path("tl.html");
    let out = r
        .tether()
        .args(&[
            "--timeline",
            timeline.to_str().unwrap(),
            "down",
            "-s",
            "dst=tl.html",
        ])
        .run();
    out.status(4)
        .stderr_contains("download: tl.html is this run's --timeline page, ");
    assert!(!std::fs::read_to_string(&timeline)
        .unwrap_or_default()
        .contains("hello"));
    let cache = std::env::temp_dir().join(format!("tether-cache-{}", std::process::id()));
    let file = cache.join("tether/idle-limits.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "{}\n").unwrap();
    let out = r
        .tether()
        .env("XDG_CACHE_HOME", cache.to_str().unwrap())
        .args(&["down", "-s", &format!("dst={}", file.display())])
        .run();
    out.status(4).stderr_contains(&format!(
        "download: {} is tether's cache of the idle limits it learned, ",
        file.display()
    ));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{}\n");
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A download over a local file keeps that file's owner and group, as an upload keeps the
/// remote one's and scp (which writes into the file) keeps them (tester t121: a file of
/// `nobody`, 0640, became root's). In a directory others may write, where anyone may have put
/// that file, root does not give the new one to its owner: refused, the file as it was.
#[test]
fn a_download_over_a_file_keeps_its_owner_and_group_or_is_refused() {
    use std::os::unix::fs::MetadataExt as _;

    let lab = lab(&["db1"]);
    let srv = lab.host("db1").root_dir.clone();
    std::fs::create_dir_all(srv.join("d")).unwrap();
    std::fs::write(srv.join("d/app.conf"), "new\n").unwrap();
    let r = lab_recipe(
        &lab,
        "download-owner",
        r#"task("down", || { on("db", |host| { download("/srv/d/app.conf", "got/app.conf"); }); });"#,
    );
    let got = r.path("got");
    std::fs::create_dir_all(&got).unwrap();
    std::fs::set_permissions(&got, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = got.join("app.conf");
    std::fs::write(&conf, "old\n").unwrap();
    std::os::unix::fs::chown(&conf, Some(65534), Some(65534)).unwrap();
    r.tether().args(&["down"]).run().status(0);
    let meta = std::fs::metadata(&conf).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "new\n");

    // Others may write the directory: refused, nothing replaced, nothing left.
    std::fs::set_permissions(&got, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(&conf, "planted\n").unwrap();
    r.tether().args(&["down"]).run().status(1).stderr_contains(
        "got/app.conf belongs to 65534:65534 (uid:gid) in a directory others may write",
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "planted\n");
    assert!(temp_files(&got).is_empty(), "{:?}", temp_files(&got));
}
