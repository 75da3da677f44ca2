//! What a release is: a directory of `releases/` with the release name format and tether's
//! completeness marker. Strays are left alone and reported once per host, unfinished releases
//! (a run killed twice) are removed by the next deploy and never chosen, cleanup keeps current
//! and the release before it, rollback goes to the right release.

use super::*;

/// How a deploy says it marked releases published without the marker that current or
/// revisions.log names, before the hosts and names.
const ADOPTED: &str = "marked complete the releases published without tether's marker (current, or in revisions.log: an earlier tether's or another tool's) on ";

/// How a deploy says it marked another tool's releases that revisions.log does not name,
/// before the hosts and names.
const FOREIGN: &str = "marked complete the releases without a marker that revisions.log does not name and records no deploy before (another tool's, such as Capistrano 2's: Capistrano counts every directory a release) on ";

/// The strays planted on each host by `strays_are_left_alone_...`, as the report names them.
fn strays(host: &str) -> Vec<&'static str> {
    match host {
        "web1" => vec!["manual-backup", "notes.txt"],
        "web2" => vec![
            ".DS_Store",
            "2025-01-01",
            "20250101000009",
            "202501010000010",
            "latest",
        ],
        "resque2" => vec![
            ".tether-removing.notes",
            "20240101000001",
            "20240101000002",
            "20240101000003",
        ],
        _ => vec![],
    }
}

/// `strays(host)` plus `names`, sorted as `releases()` lists them.
fn with_strays(host: &str, names: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = strays(host)
        .into_iter()
        .chain(names.iter().copied())
        .map(String::from)
        .collect();
    all.sort();
    all
}

#[test]
fn strays_are_left_alone_and_cleanup_keeps_current_and_the_release_before_it() {
    let lab = lab();
    let dir = Dir::new("strays");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let keep2 = ["-s", "keep_releases=2"];
    deploy(&dir, &lab, "20250101000001", &keep2).status(0);
    let rel = |h: &str| shop(&lab, h).join("releases");
    // A directory and a file made by hand; a file with a release's name, names that are
    // almost release names, a link, a hidden file.
    fs::create_dir_all(rel("web1").join("manual-backup")).unwrap();
    fs::write(rel("web1").join("manual-backup/db.sql"), "dump\n").unwrap();
    fs::write(rel("web1").join("notes.txt"), "keep me\n").unwrap();
    fs::write(rel("web2").join("20250101000009"), "not a directory\n").unwrap();
    fs::create_dir_all(rel("web2").join("2025-01-01")).unwrap();
    fs::create_dir_all(rel("web2").join("202501010000010")).unwrap();
    std::os::unix::fs::symlink("20250101000001", rel("web2").join("latest")).unwrap();
    fs::write(rel("web2").join(".DS_Store"), "").unwrap();
    // Near-copies of what tether makes (tester t120: each was removed, the markers' releases
    // first marked complete): a directory named as a removal under way but for a name that
    // is no release's, release directories whose marker is a FIFO, a directory or a link to
    // itself, and links beside current named as a switch's but for a name that is none (tester
    // t123: 14 digits that are no UTC time were taken for one).
    fs::create_dir_all(rel("resque2").join(".tether-removing.notes")).unwrap();
    fs::write(
        rel("resque2").join(".tether-removing.notes/keep.txt"),
        "mine\n",
    )
    .unwrap();
    for r in ["20240101000001", "20240101000002", "20240101000003"] {
        fs::create_dir_all(rel("resque2").join(r)).unwrap();
    }
    let mkfifo = std::process::Command::new("mkfifo")
        .arg(rel("resque2").join("20240101000001/.tether-complete"))
        .status()
        .unwrap();
    assert!(mkfifo.success());
    fs::create_dir(rel("resque2").join("20240101000002/.tether-complete")).unwrap();
    std::os::unix::fs::symlink(
        ".tether-complete",
        rel("resque2").join("20240101000003/.tether-complete"),
    )
    .unwrap();
    for link in [
        ".current-1",
        ".current-99999999999999",
        ".current-20251301000000",
    ] {
        std::os::unix::fs::symlink("releases/20250101000001", shop(&lab, "resque2").join(link))
            .unwrap();
    }
    // A release directory a run that died left marked building (a clock gone wrong):
    // unfinished, though it looks newer than anything. (Without the marker it is unlogged: see
    // a_release_published_and_never_logged_is_left_as_it_is.)
    fs::create_dir_all(rel("resque1").join("29991231235959")).unwrap();
    fs::write(
        rel("resque1").join("29991231235959/.tether-complete"),
        "release 29991231235959 building\n",
    )
    .unwrap();

    let v2 = app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &keep2);
    out.status(0)
        .stdout_contains("web1: /srv/shop/releases holds entries that are not releases, left alone: manual-backup (directory), notes.txt (file)\n")
        .stdout_contains("web2: /srv/shop/releases holds entries that are not releases, left alone: .DS_Store (file), 2025-01-01 (directory), 202501010000010 (directory), 20250101000009 (file), latest (link)\n")
        .stdout_contains("removed unfinished releases (left by runs that did not finish) on resque1: 29991231235959\n")
        .stdout_contains(&format!("resque2: /srv/shop/releases holds entries that are not releases, left alone: .tether-removing.notes (directory), {}\n",
            ["20240101000001", "20240101000002", "20240101000003"].map(|r| format!("{r} (a release directory whose .tether-complete is no regular file: a directory, a FIFO, a link)")).join(", ")))
        .stdout_lacks("removed old releases")
        .stdout_lacks("removed what cut-off removals")
        .stdout_lacks("marked complete");
    // Once per host per run, though cleanup looked again.
    assert_eq!(
        out.stdout
            .matches("holds entries that are not releases")
            .count(),
        3,
        "{}",
        out.stdout
    );

    let v3 = app.commit("v3");
    deploy(&dir, &lab, "20250101000003", &keep2)
        .status(0)
        .stdout_contains(
        "removed old releases (keep_releases 2) on web1, web2, resque1, resque2: 20250101000001\n",
    );
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            with_strays(h, &["20250101000002", "20250101000003"]),
            "{h}"
        );
        assert!(
            complete(&lab, h, "20250101000002") && complete(&lab, h, "20250101000003"),
            "{h}"
        );
    }
    assert_eq!(read(rel("web1").join("manual-backup/db.sql")), "dump\n");
    assert_eq!(read(rel("web1").join("notes.txt")), "keep me\n");
    assert_eq!(
        read(rel("resque2").join(".tether-removing.notes/keep.txt")),
        "mine\n"
    );
    for link in [
        ".current-1",
        ".current-99999999999999",
        ".current-20251301000000",
    ] {
        assert_eq!(
            fs::read_link(shop(&lab, "resque2").join(link)).unwrap(),
            PathBuf::from("releases/20250101000001"),
            "{link}"
        );
    }
    assert_eq!(
        read(rel("web2").join("20250101000009")),
        "not a directory\n"
    );
    assert_eq!(
        fs::read_link(rel("web2").join("latest")).unwrap(),
        PathBuf::from("20250101000001")
    );

    // keep_releases 1 still keeps the release before current: the rollback target.
    let v4 = app.commit("v4");
    deploy(&dir, &lab, "20250101000004", &["-s", "keep_releases=1"])
        .status(0)
        .stdout_contains("removed old releases (keep_releases 1) on web1, web2, resque1, resque2: 20250101000002\n");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            with_strays(h, &["20250101000003", "20250101000004"]),
            "{h}"
        );
    }

    // The listing shows complete releases only.
    let out = tether(&dir, &lab, &["deploy:releases"]);
    out.status(0)
        .stdout_contains(&format!(
            "web1, web2, resque1, resque2:\n  20250101000003 {v3}\n  20250101000004 {v4}  <- current\n"
        ))
        .stdout_lacks(&v2);
    assert_eq!(
        out.stdout
            .matches("holds entries that are not releases")
            .count(),
        3
    );

    // Rollback goes to the complete release before current, never to a stray.
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000003"),
            "{h}"
        );
        assert_eq!(
            releases(&lab, h),
            with_strays(h, &["20250101000003"]),
            "{h}"
        );
    }
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("cannot roll back:\n  web1, web2, resque1, resque2: no release before the current one (20250101000003)");
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000009"],
    )
    .status(1)
    .stderr_contains("web2: /srv/shop/releases/20250101000009 is not a release directory")
    .stderr_contains("web1, resque1, resque2: release 20250101000009 does not exist");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000003"),
            "{h}"
        );
        assert_eq!(
            releases(&lab, h),
            with_strays(h, &["20250101000003"]),
            "{h}"
        );
    }
    assert_unlocked(&lab);
}

#[test]
fn a_run_killed_twice_leaves_an_unfinished_release_that_is_removed_and_never_chosen() {
    let lab = lab();
    let dir = Dir::new("killed");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let v1 = git(&app.work, &["rev-parse", "HEAD"]);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let run = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "hold_seconds=2",
        ])
        .spawn();
    // The shared links are made just before the build step; then it sleeps.
    wait_until("the build step did not start", || {
        HOSTS.iter().all(|h| build_running(&lab, h))
    });
    for _ in 0..2 {
        let kill = Command::new("kill")
            .args(["-INT", &run.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
        assert!(!complete(&lab, h, "20250101000002"), "{h}");
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
        assert!(shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }

    // Listed as unfinished, never as a release; not a rollback target.
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains(&format!("web1, web2, resque1, resque2:\n  20250101000001 {v1}  <- current\n  unfinished (the next deploy removes them): 20250101000002\n"))
        // Held on every host: one line, its command for all of them.
        .stdout_contains(&format!(
            " (release 20250101000002); a deploy stops here while it is there (if no deploy is \
             running, `{}` removes it)\n",
            said_command(&lab, "deploy:unlock")
        ));
    // The killed run's lock stays until someone who knows it is dead removes it.
    deploy(&dir, &lab, "20250101000003", &[])
        .status(1)
        .stderr_contains(&format!(
            "(release 20250101000002)\nIf that deploy is no longer running, `{}` removes the lock.",
            said_command(&lab, "deploy:unlock")
        ));
    tether(&dir, &lab, &["deploy:unlock"]).status(0);
    tether(&dir, &lab, &["deploy:rollback", "-s", "rollback_release=20250101000002"])
        .status(1)
        .stderr_contains("web1, web2, resque1, resque2: release 20250101000002 is unfinished (its run did not finish): not a rollback target");
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("no release before the current one (20250101000001)");

    // The next deploy removes it, saying so, and counts only complete releases.
    app.commit("v3");
    deploy(&dir, &lab, "20250101000003", &["-s", "keep_releases=1"])
        .status(0)
        .stdout_contains("removed unfinished releases (left by runs that did not finish) on web1, web2, resque1, resque2: 20250101000002\n")
        .stdout_lacks("removed old releases");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000003"],
            "{h}"
        );
    }

    // Another unfinished release between the two (made here by hand, with a REVISION, marked
    // building as a run of tether marks it; one without the marker, older than current, is
    // another tool's release: see releases_another_tool_published_before_current_are_releases):
    // a rollback skips it and goes to the complete one, and leaves it for the next deploy.
    let between = shop(&lab, "web1").join("releases/20250101000002");
    fs::create_dir_all(&between).unwrap();
    fs::write(between.join("REVISION"), "half\n").unwrap();
    fs::write(
        between.join(".tether-complete"),
        "release 20250101000002 building\n",
    )
    .unwrap();
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
    }
    assert_eq!(releases(&lab, "web1"), ["20250101000001", "20250101000002"]);
    assert_eq!(releases(&lab, "web2"), ["20250101000001"]);
    assert_unlocked(&lab);
}

#[test]
fn releases_an_earlier_tether_published_without_the_marker_stay_complete() {
    let lab = lab();
    let dir = Dir::new("adopt");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    // As a tether without markers left them: revisions.log names both; 03 it never logged.
    for h in HOSTS {
        for r in ["20250101000001", "20250101000002"] {
            fs::remove_file(
                shop(&lab, h)
                    .join("releases")
                    .join(r)
                    .join(".tether-complete"),
            )
            .unwrap();
        }
    }
    fs::create_dir_all(shop(&lab, "web1").join("releases/20250101000003")).unwrap();
    // resque2 lost its revisions.log: its current release still counts, and so does the one
    // before it, older than current.
    fs::remove_file(shop(&lab, "resque2").join("revisions.log")).unwrap();

    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains("web1:\n  20250101000001 ")
        .stdout_contains("  unlogged: 20250101000003\n")
        .stdout_lacks("unfinished");
    app.commit("v4");
    deploy(&dir, &lab, "20250101000004", &[])
        .status(0)
        .stdout_contains(&format!(
            "{ADOPTED}web1, web2, resque1: 20250101000001, 20250101000002\n"
        ))
        .stdout_contains(&format!("{ADOPTED}resque2: 20250101000002\n"))
        .stdout_contains(&format!("{FOREIGN}resque2: 20250101000001\n"))
        .stdout_contains("unlogged releases on web1: 20250101000003\n")
        // What it writes in them is said (stop 47 tester t63: `left as they are`, and its
        // marker in them).
        .stdout_contains(
            "left as they are but for the marker tether writes in each (.tether-complete \
             saying `unlogged`, so that later runs know them)",
        )
        .stdout_lacks("removed unfinished")
        .stdout_lacks("on resque2: 20250101000001, ");
    for h in HOSTS {
        let mut want = vec!["20250101000001", "20250101000002", "20250101000004"];
        if h == "web1" {
            // Unlogged: left as it is (see a_release_published_and_never_logged_is_left_as_it_is).
            want.insert(2, "20250101000003");
        }
        assert_eq!(releases(&lab, h), want, "{h}");
        assert!(complete(&lab, h, "20250101000001"), "{h}");
        assert!(complete(&lab, h, "20250101000002"), "{h}");
    }
}

/// Hosts a Capistrano 2 deployed to (releases without tether's marker, no revisions.log):
/// their releases are releases, as Capistrano counts them, kept, cleaned up by keep_releases
/// and rolled back to, whatever current says (stop 34 testers t10 and t11: the first deploy
/// removed every one of them as "left by runs that did not finish", exit 0; stop 35 tester
/// t13: so did one after a rollback past two of them, or with a current that led nowhere).
/// Only where revisions.log records a deploy older than such a directory, and not the
/// directory, is it not a release: unlogged, a failed deploy of the tool that writes the log
/// or one it never logged, left as it is.
#[test]
fn releases_another_tool_published_are_releases() {
    let lab = lab();
    let dir = Dir::new("foreign");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let old = ["20240101000001", "20240101000002", "20240101000003"];
    for h in HOSTS {
        for r in old {
            copy_release(&lab, h, "20250101000001", r);
            fs::remove_file(
                shop(&lab, h)
                    .join("releases")
                    .join(r)
                    .join(".tether-complete"),
            )
            .unwrap();
        }
        fs::remove_dir_all(shop(&lab, h).join("releases/20250101000001")).unwrap();
        fs::remove_file(shop(&lab, h).join("revisions.log")).unwrap();
        point_current(&lab, h, "/srv/shop/releases/20240101000003");
    }
    // A release newer than current (current set back by hand, or a deploy that failed) was
    // never seen live: unlogged, never removed, never a rollback's unless named (stop 36 tester
    // t20: a failed deploy newer than current was published by a plain rollback). So are the
    // releases of a host whose current leads nowhere.
    fs::create_dir_all(shop(&lab, "web1").join("releases/20240101000009")).unwrap();
    point_current(&lab, "web2", "/srv/elsewhere/releases/20240101000003");

    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains("web1:\n  20240101000001 ")
        .stdout_contains("  unlogged: 20240101000009\n")
        .stdout_contains("web2: no releases\n")
        .stdout_contains("  unlogged: 20240101000001, 20240101000002, 20240101000003\n")
        .stdout_lacks("unfinished");
    for h in HOSTS {
        fs::remove_dir_all(shop(&lab, h).join("releases/20240101000009")).ok();
        point_current(&lab, h, "/srv/shop/releases/20240101000003");
    }
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &["-s", "keep_releases=3"])
        .status(0)
        .stdout_contains(&format!("{ADOPTED}web1, web2, resque1, resque2: 20240101000003\n"))
        .stdout_contains(&format!("{FOREIGN}web1, web2, resque1, resque2: 20240101000001, 20240101000002\n"))
        .stdout_contains("removed old releases (keep_releases 3) on web1, web2, resque1, resque2: 20240101000001\n")
        .stdout_lacks("unfinished");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20240101000002", "20240101000003", "20250101000002"],
            "{h}"
        );
        for r in ["20240101000002", "20240101000003"] {
            assert!(complete(&lab, h, r), "{h} {r}");
        }
    }
    // Rolled back to, as Capistrano would: the release before current.
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    assert_current(&lab, &HOSTS, "20240101000003", "after the rollback");

    // revisions.log now records the deploy of 20250101000002: a directory without the marker
    // newer than that, and not in the log, is unlogged (a failed deploy of the tool that
    // writes it, or one it never logged); one older is not contradicted by it, but newer than
    // current's release (20240101000003) it was never seen live, and unlogged too (t20); so
    // is one where no current leads to a release.
    fs::create_dir_all(shop(&lab, "web1").join("releases/20250101000003")).unwrap();
    fs::create_dir_all(shop(&lab, "web2").join("releases/20240601000000")).unwrap();
    fs::remove_file(shop(&lab, "resque2").join("current")).unwrap();
    fs::create_dir_all(shop(&lab, "resque2").join("releases/20240101000001")).unwrap();
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains("  unlogged: 20250101000003\n")
        .stdout_lacks("unfinished")
        .stdout_contains("  unlogged: 20240601000000\n")
        .stdout_contains("  unlogged: 20240101000001\n");

    // A tool without a log deployed since the last deploy the log records (current is its
    // release, which the log does not name): current's release is a release, and the one
    // before it is unlogged, never removed (stop 35 tester t15: both unfinished, and a
    // rollback skipped them; a failed deploy of the logging tool after current's would look
    // the same: stop 36 tester t19). A rollback line ending in a carriage return (a log
    // edited elsewhere) still names its release (t15: the release was unfinished).
    for r in ["20250101000007", "20250101000008"] {
        fs::create_dir_all(shop(&lab, "resque1").join("releases").join(r)).unwrap();
    }
    point_current(&lab, "resque1", "/srv/shop/releases/20250101000008");
    fs::create_dir_all(shop(&lab, "web1").join("releases/20250101000005")).unwrap();
    let log = shop(&lab, "web1").join("revisions.log");
    let mut text = fs::read_to_string(&log).unwrap();
    text.push_str("alice rolled back to release 20250101000005\r\n");
    fs::write(&log, text).unwrap();
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains("\n  20250101000008   <- current\n")
        .stdout_contains("  unlogged: 20250101000007\n")
        .stdout_contains("\n  20250101000005 \n")
        .stdout_contains("  unlogged: 20250101000003\n")
        .stdout_lacks("unfinished");
}

/// A directory of 14 digits that is no UTC time (`99999999999999`, `00000000000000`, month 13)
/// is a stray: left alone with what it holds, never removed as unfinished, never listed or
/// rolled back to; and `current` written otherwise than `/srv/shop/releases/NAME` (relative,
/// a trailing `/`, `//`) still names its release, which cleanup keeps (before: cleanup removed
/// the live release, `current` left dangling).
#[test]
fn names_that_are_no_time_are_strays_and_current_is_its_release_however_written() {
    let lab = lab();
    let dir = Dir::new("no-time");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let rel = |h: &str| shop(&lab, h).join("releases");
    fs::create_dir_all(rel("web1").join("99999999999999")).unwrap();
    fs::write(rel("web1").join("99999999999999/data"), "precious\n").unwrap();
    for name in ["00000000000000", "20251302000000"] {
        fs::create_dir_all(rel("web1").join(name)).unwrap();
        fs::write(rel("web1").join(name).join(".tether-complete"), "x\n").unwrap();
    }
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[])
        .status(0)
        .stdout_contains("web1: /srv/shop/releases holds entries that are not releases, left alone: 00000000000000 (directory), 20251302000000 (directory), 99999999999999 (directory)\n")
        .stdout_lacks("removed unfinished");
    assert_eq!(read(rel("web1").join("99999999999999/data")), "precious\n");
    // A newer release, then current back on 20250101000002, written three other ways.
    app.commit("v3");
    deploy(&dir, &lab, "20250101000003", &[]).status(0);
    for (h, link) in [
        ("web2", "releases/20250101000002"),
        ("resque1", "/srv/shop/releases/20250101000002/"),
        ("resque2", "/srv//shop/releases/20250101000002"),
    ] {
        let current = shop(&lab, h).join("current");
        fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink(link, &current).unwrap();
    }
    tether(&dir, &lab, &["deploy:cleanup", "-s", "keep_releases=1"]).status(0);
    for h in ["web2", "resque1", "resque2"] {
        assert!(
            complete(&lab, h, "20250101000002"),
            "{h} lost its live release"
        );
    }
    // Rolled back until no release is left before current, web1 is refused, and never goes to
    // 00000000000000 (a name that is no time, which sorts before every release).
    app.commit("v4");
    deploy(&dir, &lab, "20250101000004", &[]).status(0);
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000003"),
            "{h}"
        );
    }
    let web1 = ["deploy:rollback", "--hosts", "web1"];
    tether(&dir, &lab, &web1).status(0);
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000002")
    );
    tether(&dir, &lab, &web1)
        .status(1)
        .stderr_contains("no release before the current one");
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000002")
    );
}

/// A release whose removal is cut off (Ctrl-C, a lost connection) is no release any more:
/// the removal renames it first (`.tether-removing.NAME`), and the next run under the lock
/// removes what is left (fresh-eyes finding, stop 28: a rollback's `rm -rf` stopped half way
/// left `releases/NAME` without its marker and most of its files, still listed as a release
/// from the revision log, and a rollback to it published it). Here web1's `rm` takes the
/// marker, then hangs, as an `rm -rf` stopped part way leaves it; tether is stopped then.
#[test]
fn a_release_removal_cut_off_leaves_no_release_behind() {
    let lab = lab();
    let dir = Dir::new("removal-cut");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let keep5 = ["-s", "keep_releases=5"];
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        deploy(&dir, &lab, r, &keep5).status(0);
    }
    hang_rm(
        &lab,
        "web1",
        "*20250101000001*",
        "[ -f \"$a/.tether-complete\" ] && /bin/rm -f \"$a/.tether-complete\";",
        1,
    );
    let mut child = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&["deploy:cleanup", "-s", "keep_releases=1"])
        .spawn();
    wait_until("web1's rm to hang", || rm_hangs(&lab, "web1", 1));
    // SAFETY: kill(2) on the tether this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    unhang(&lab, "web1", 1);
    // Not a release on web1, whatever deploy:releases reads.
    let listed = tether(&dir, &lab, &["deploy:releases"]);
    listed.status(0);
    let web1 = listed
        .stdout
        .split("web1:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("{}", listed.stdout))
        .lines()
        .take_while(|l| l.starts_with("  "))
        .collect::<Vec<_>>();
    assert!(
        !web1.iter().any(|l| l.starts_with("  20250101000001")),
        "{}",
        listed.stdout
    );
    // Said as what it is: being removed.
    assert!(
        web1.contains(&"  being removed (a run stopped while removing them; the next deploy or deploy:cleanup finishes it): .tether-removing.20250101000001"),
        "{}",
        listed.stdout
    );
    assert!(!releases(&lab, "web1").contains(&"20250101000001".to_string()));
    // The next deploy removes what is left, and reports no stray.
    deploy(&dir, &lab, "20250101000004", &keep5)
        .status(0)
        .stdout_lacks("not releases");
    assert!(
        releases(&lab, "web1")
            .iter()
            .all(|r| !r.contains("tether-removing")),
        "{:?}",
        releases(&lab, "web1")
    );
}

/// A current that leads to no release of releases/ (Deployer's `releases/3`) is said before
/// the deploy switches it (stop 35 tester t13: Deployer's releases were listed as strays, and
/// current moved off Deployer's live release without a word).
#[test]
fn a_current_that_leads_to_no_release_is_said_before_the_switch() {
    let lab = lab();
    let dir = Dir::new("deployer");
    let app = App::new(&dir);
    recipe(&dir, &app);
    for h in HOSTS {
        for r in ["1", "2", "3"] {
            fs::create_dir_all(shop(&lab, h).join("releases").join(r)).unwrap();
        }
        fs::create_dir_all(shop(&lab, h).join(".dep")).unwrap();
        point_current(&lab, h, "releases/3");
    }
    deploy(&dir, &lab, "20250101000001", &[])
        .status(0)
        .stdout_contains("web1, web2, resque1, resque2: current -> releases/3, which is no complete release of /srv/shop/releases: left as it is until a deploy switches current to its release; a rollback cannot go back there\n");
    assert_current(&lab, &HOSTS, "20250101000001", "after the deploy");
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["1", "2", "20250101000001", "3"], "{h}");
    }
}

/// A rollback to a named release repairs a current that leads to no complete release, or a
/// missing one (stop 35 tester t15: `-s rollback_release=NAME` was refused there, leaving no
/// way to point current at a release); without a name it is still refused, saying why.
#[test]
fn a_named_rollback_repairs_a_current_that_leads_nowhere() {
    let lab = lab();
    let dir = Dir::new("repair");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    for h in HOSTS {
        point_current(&lab, h, "/srv/elsewhere/releases/20250101000002");
    }
    fs::remove_file(shop(&lab, "resque2").join("current")).unwrap();
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("current points at /srv/elsewhere/releases/20250101000002, not at a complete release of /srv/shop/releases: name the release to go to with -s rollback_release=NAME")
        .stderr_contains("resque2: no current release: name the release to go to with -s rollback_release=NAME");
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000001"],
    )
    .status(0);
    assert_current(&lab, &HOSTS, "20250101000001", "after the named rollback");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
    }
}

/// Takes release `r` on every host back to what a tool that logs its deploys last leaves when
/// it published `r` and failed before logging it (Capistrano 3 logs in deploy:finished, after
/// restarting): no marker, no line in revisions.log.
fn unlog(lab: &Lab, r: &str) {
    for h in HOSTS {
        fs::remove_file(
            shop(lab, h)
                .join("releases")
                .join(r)
                .join(".tether-complete"),
        )
        .unwrap();
        let log = shop(lab, h).join("revisions.log");
        let text: String = fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| {
                !l.contains(&format!("release {r} "))
                    && !l.trim_end().ends_with(&format!("release {r}"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&log, text).unwrap();
    }
}

/// A release without the marker that revisions.log does not name, though it records deploys
/// around it, may be a deploy that failed or one published and never logged (stop 36 tester
/// t16: Capistrano 3's release, live once, was taken for unfinished: never offered by a
/// rollback, refused by name, and removed by the next deploy). Nothing tells the two apart,
/// so it is left as it is and said: a rollback that would pass over it is refused, one that
/// names it goes there, keep_releases does not count it, cleanup removes it once it is older
/// than every release kept, and one dated after the clock stops a deploy, never removed.
#[test]
fn a_release_published_and_never_logged_is_left_as_it_is() {
    let lab = lab();
    let dir = Dir::new("unlogged");
    let app = App::new(&dir);
    recipe(&dir, &app);
    for (i, r) in ["20250101000001", "20250101000002", "20250101000003"]
        .iter()
        .enumerate()
    {
        app.commit(&format!("v{i}"));
        deploy(&dir, &lab, r, &[]).status(0);
    }
    unlog(&lab, "20250101000002");
    // What unlogged means is said once, not on each host's lines (stop 36 tester t20).
    let out = tether(&dir, &lab, &["deploy:releases"]);
    out.status(0)
        .stdout_contains("  unlogged: not marked complete by tether, no line in revisions.log, and nothing that says they were live (")
        .stdout_contains("  unlogged: 20250101000002\n")
        .stdout_lacks("unfinished");
    assert_eq!(
        out.stdout.matches("not marked complete by tether").count(),
        1,
        "{}",
        out.stdout
    );
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("20250101000002")
        .stderr_contains("-s rollback_release=");
    assert_current(&lab, &HOSTS, "20250101000003", "after the refused rollback");

    app.commit("v4");
    deploy(&dir, &lab, "20250101000004", &[])
        .status(0)
        .stdout_contains("unlogged releases on web1, web2, resque1, resque2: 20250101000002\n")
        .stdout_contains("  unlogged: not marked complete by tether")
        .stdout_lacks("unfinished");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            [
                "20250101000001",
                "20250101000002",
                "20250101000003",
                "20250101000004"
            ],
            "{h}"
        );
    }
    // Where a complete release would be kept, it is (stop 36 tester t19: removed, though
    // keep_releases had room for it).
    tether(&dir, &lab, &["deploy:cleanup", "-s", "keep_releases=5"])
        .status(0)
        .stdout_lacks("removed old releases");
    // Older than every release kept (03, current's predecessor, and 04), it goes as 01 does.
    tether(&dir, &lab, &["deploy:cleanup", "-s", "keep_releases=2"])
        .status(0)
        .stdout_contains("removed old releases (keep_releases 2) on web1, web2, resque1, resque2: 20250101000001, 20250101000002\n");

    // Named, it is where a rollback goes.
    unlog(&lab, "20250101000003");
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("20250101000003")
        .stderr_contains("-s rollback_release=");
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000003"],
    )
    .status(0);
    assert_current(&lab, &HOSTS, "20250101000003", "after the named rollback");
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains("  20250101000003 ")
        .stdout_lacks("unlogged");

    // A failed deploy after a release published and never logged (current's) is unlogged too,
    // never complete (stop 36 tester t19: it was taken for another tool's release, and a
    // rollback published it).
    unlog(&lab, "20250101000003");
    for h in HOSTS {
        fs::create_dir_all(shop(&lab, h).join("releases/20250101000006")).unwrap();
    }
    app.commit("v5");
    deploy(&dir, &lab, "20250101000009", &[])
        .status(0)
        .stdout_contains("unlogged releases on web1, web2, resque1, resque2: 20250101000006\n")
        .stdout_lacks(FOREIGN);
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("20250101000006 is unlogged")
        .stderr_contains("(20250101000006 or 20250101000003)");
    assert_current(&lab, &HOSTS, "20250101000009", "after the refused rollback");

    // Dated after the clock, it stops the next deploy, and stays.
    let future = shop(&lab, "resque1").join("releases/29991231235959");
    fs::create_dir_all(&future).unwrap();
    app.commit("v6");
    deploy(&dir, &lab, "20250101000010", &[])
        .status(1)
        .stderr_contains("resque1: release 20250101000010 would be older than release 29991231235959: releases are ordered by name (release 29991231235959 is dated after this machine's clock (");
    assert!(future.is_dir());
}

/// A revisions.log that is no regular file is never read (stop 36 tester t16: with a FIFO
/// there, `deploy:releases` hung in its survey's `sed`), nor is a link (stop 43 tester t51: a
/// link planted there to a file outside deploy_to was appended through): the listing says so,
/// and a deploy or a rollback, which would append to it, is refused before anything changes.
#[test]
fn a_revisions_log_that_is_no_file_is_said_and_refused() {
    let lab = lab();
    let dir = Dir::new("fifo-log");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let web1 = ["--hosts", "web1"];
    deploy(&dir, &lab, "20250101000001", &web1).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000003", &web1).status(0);
    // Without the marker, between two logged deploys: whether it was ever live is not known
    // without the log (stop 36 tester t18: with the log unreadable, cleanup marked it complete
    // and removed the release before current).
    fs::create_dir_all(shop(&lab, "web1").join("releases/20250101000002")).unwrap();
    let log = shop(&lab, "web1").join("revisions.log");
    let outside = lab.host("web1").root_dir.join("outside.log");
    fs::write(&outside, "untouched\n").unwrap();
    for odd in ["planted", "fifo", "dir", "dangling"] {
        let said = match odd {
            "dangling" => "/srv/shop/revisions.log is a symbolic link (to \"gone\"): tether appends every deploy and rollback to it, and would write where the link leads",
            "planted" => "/srv/shop/revisions.log is a symbolic link (to \"/srv/outside.log\"): tether appends every deploy and rollback to it, and would write where the link leads",
            _ => "/srv/shop/revisions.log is not a regular file (a FIFO, a directory): tether reads it, and appends every deploy and rollback to it",
        };
        fs::remove_file(&log)
            .or_else(|_| fs::remove_dir(&log))
            .unwrap();
        match odd {
            "fifo" => {
                let path = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
                // SAFETY: mkfifo(3) on a path the test owns.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
            }
            "dir" => fs::create_dir(&log).unwrap(),
            "dangling" => std::os::unix::fs::symlink("gone", &log).unwrap(),
            _ => std::os::unix::fs::symlink("/srv/outside.log", &log).unwrap(),
        }
        tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
            .status(0)
            .stdout_contains(&format!("  not read: {said}\n"))
            .stdout_contains("  unlogged: 20250101000002\n");
        app.commit(&format!("v-{odd}"));
        deploy(&dir, &lab, "20250101000004", &web1)
            .status(1)
            .stderr_contains(&format!("web1: {said}"));
        tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
            .status(1)
            .stderr_contains(&format!("web1: {said}"));
        tether(
            &dir,
            &lab,
            &["deploy:cleanup", "--hosts", "web1", "-s", "keep_releases=1"],
        )
        .status(1)
        .stderr_contains(&format!("cleaned up nothing on:\n  web1: {said}"));
        assert_current(&lab, &["web1"], "20250101000003", odd);
        assert_eq!(
            releases(&lab, "web1"),
            ["20250101000001", "20250101000002", "20250101000003"],
            "{odd}"
        );
        assert!(!complete(&lab, "web1", "20250101000002"), "{odd}");
    }
    assert_eq!(fs::read_to_string(&outside).unwrap(), "untouched\n");
}

/// A server marked `no_release: true` gets no release, as Capistrano's `release_roles` leave it
/// out (a database host beside the app hosts); before, the property was kept and never read,
/// and the release flow built and published there too. A value other than true or false is
/// refused at its line.
#[test]
fn a_server_marked_no_release_gets_none() {
    let lab = lab();
    let dir = Dir::new("no-release");
    let app = App::new(&dir);
    let text = recipe_text(&app, false)
        .replace(
            "server(\"resque2\", #{ roles: [\"app\", \"resque\"] });",
            "server(\"resque2\", #{ roles: [\"app\", \"resque\"], no_release: true });",
        )
        .replace(
            "on(\"all\", |host| {\n        if host.name == fail_on",
            "on(deploy::release_hosts(), |host| {\n        if host.name == fail_on",
        )
        .replace(
            "on(\"all\", |host| run(`echo \"deployed",
            "on(deploy::release_hosts(), |host| run(`echo \"deployed",
        );
    assert!(text.contains("no_release: true"));
    assert_eq!(text.matches("on(deploy::release_hosts()").count(), 2);
    dir.write("deploy.rhai", &text);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    for h in ["web1", "web2", "resque1"] {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
    }
    assert!(!shop(&lab, "resque2").join("releases").exists());
    assert!(current(&lab, "resque2").is_none());
    // A run none of whose hosts gets releases is refused before anything runs (stop 36
    // tester t18: it said done, exit 0, having locked and deployed nothing while its hooks ran).
    for task in ["deploy", "deploy:rollback"] {
        tether(&dir, &lab, &[task, "--hosts", "resque2"])
            .status(4)
            .stderr_contains("no host of this run gets releases: the hosts release_roles \"all\" names in it are marked no_release: true (resque2)");
    }
    assert!(!lab
        .host("resque2")
        .root_dir
        .join("shop/deploy.lock")
        .exists());

    dir.write(
        "deploy.rhai",
        &text.replace("no_release: true", "no_release: \"yes\""),
    );
    tether(&dir, &lab, &["deploy:releases"])
        .status(4)
        .stderr_contains("server(\"resque2\"): `no_release` must be true or false, not string");
}

/// Without revisions.log, a release without the marker newer than current's release, or on a
/// host where no current leads to one, was never seen live: unlogged, and marked so by the run
/// that finds it, so that a plain rollback after tether's own deploy (which made the log and
/// current) does not publish it (stop 36 tester t20: a Capistrano deploy that failed, first or
/// after current's, was published by a rollback, which removed the good release).
#[test]
fn a_release_never_seen_live_is_never_a_plain_rollbacks() {
    let lab = lab();
    let dir = Dir::new("never-live");
    let app = App::new(&dir);
    recipe(&dir, &app);
    // web1: another tool's first deploy failed (no current, no log).
    fs::create_dir_all(shop(&lab, "web1").join("releases/20250101000001")).unwrap();
    deploy(&dir, &lab, "20250101000002", &["--hosts", "web1"])
        .status(0)
        .stdout_lacks(FOREIGN)
        .stdout_contains("unlogged releases on web1: 20250101000001\n");
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
        .status(1)
        .stderr_contains("20250101000001 is unlogged");
    assert_current(&lab, &["web1"], "20250101000002", "web1");
    // web2: releases of a tool without a log; its last deploy failed, after current's.
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        fs::create_dir_all(shop(&lab, "web2").join("releases").join(r)).unwrap();
    }
    point_current(&lab, "web2", "/srv/shop/releases/20250101000002");
    app.commit("v2");
    deploy(&dir, &lab, "20250101000004", &["--hosts", "web2"])
        .status(0)
        .stdout_contains(&format!("{FOREIGN}web2: 20250101000001\n"))
        .stdout_contains("unlogged releases on web2: 20250101000003\n");
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web2"])
        .status(1)
        .stderr_contains("20250101000003 is unlogged")
        .stderr_contains("(20250101000003 or 20250101000002)");
    assert_current(&lab, &["web2"], "20250101000004", "web2");
    assert!(!complete(&lab, "web2", "20250101000003"));
}

/// A release holding Deployer's `BAD_RELEASE` (its rollback leaves one in the release it rolls
/// back from) is no release, whatever its marker or the log says: a plain rollback passes over
/// it, as Deployer's does, nothing removes it, and it is said with the strays (stop 36 tester
/// t21: a plain rollback published it, exit 0, and removed the good release).
#[test]
fn a_release_deployer_marked_bad_is_never_a_rollbacks() {
    let lab = lab();
    let dir = Dir::new("bad-release");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let names = ["20250101000001", "20250101000002", "20250101000003"];
    for (i, r) in names.iter().enumerate() {
        app.commit(&format!("v{i}"));
        deploy(&dir, &lab, r, &["-s", "keep_releases=5"]).status(0);
    }
    let said = "20250101000002 (a release marked bad: it holds BAD_RELEASE";
    for h in HOSTS {
        fs::write(
            shop(&lab, h).join("releases/20250101000002/BAD_RELEASE"),
            "bad\n",
        )
        .unwrap();
    }
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains(said)
        .stdout_contains("\n  20250101000001 ")
        .stdout_lacks("\n  20250101000002 ");
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    assert_current(
        &lab,
        &HOSTS,
        "20250101000001",
        "rolled back over the bad release",
    );
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
    }
    // Another tool's layout, no marker and no log (t21's): the same.
    app.commit("v4");
    deploy(&dir, &lab, "20250101000004", &["-s", "keep_releases=5"]).status(0);
    for h in HOSTS {
        for r in ["20250101000001", "20250101000002", "20250101000004"] {
            let _ = fs::remove_file(
                shop(&lab, h)
                    .join("releases")
                    .join(r)
                    .join(".tether-complete"),
            );
        }
        fs::remove_file(shop(&lab, h).join("revisions.log")).unwrap();
    }
    app.commit("v5");
    deploy(&dir, &lab, "20250101000005", &["-s", "keep_releases=5"])
        .status(0)
        .stdout_contains(said);
    tether(&dir, &lab, &["-s", "keep_releases=5", "deploy:rollback"]).status(0);
    assert_current(&lab, &HOSTS, "20250101000004", "the first rollback");
    tether(&dir, &lab, &["-s", "keep_releases=5", "deploy:rollback"]).status(0);
    assert_current(
        &lab,
        &HOSTS,
        "20250101000001",
        "passing over the bad release",
    );
    for h in HOSTS {
        assert!(
            shop(&lab, h)
                .join("releases/20250101000002/BAD_RELEASE")
                .exists(),
            "{h}: the bad release was removed"
        );
    }
}

/// A source that brings a BAD_RELEASE at its root is refused before anything is published:
/// the release would be marked bad from the start, published, and then never count as a
/// release (stop 39 tester t31: each deploy switched current to a release it then called
/// "marked bad", and keep_releases never applied).
#[test]
fn a_source_that_brings_bad_release_is_refused() {
    let lab = lab();
    let dir = Dir::new("bad-source");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    fs::write(app.work.join("BAD_RELEASE"), "").unwrap();
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[])
        .status(1)
        .stderr_contains("/BAD_RELEASE came with the source: it marks a release bad");
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
        assert_current(&lab, &[h], "20250101000001", "BAD_RELEASE");
    }
}

/// `ROLLBACK_RELEASE` in the environment names the rollback's target, as Capistrano reads it
/// (stop 41 tester t39: ignored, the rollback went to the previous release and removed the
/// current one, exit 0); `-s rollback_release` wins over it, and a value that is no release
/// name is refused naming where it came from.
#[test]
fn rollback_release_in_the_environment_names_the_target() {
    let lab = lab();
    let dir = Dir::new("rollback-env");
    let app = App::new(&dir);
    recipe(&dir, &app);
    for (i, release) in ["20250101000001", "20250101000002", "20250101000003"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            app.commit(&format!("v{}", i + 1));
        }
        deploy(&dir, &lab, release, &[]).status(0);
    }
    let rollback = |env: &str, args: &[&str]| {
        Tether::new()
            .current_dir(&dir.path)
            .ssh_config(&lab.ssh_config())
            .env("ROLLBACK_RELEASE", env)
            .args(&[&["deploy:rollback"][..], args].concat())
            .run()
    };
    rollback("nonsense", &[])
        .status(4)
        .stderr_contains("(given as ROLLBACK_RELEASE=\"nonsense\" in the environment)");
    // Read by a rollback only, as Capistrano reads it (stop 41 tester t42: one left over in
    // the shell refused every deploy).
    Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .env("ROLLBACK_RELEASE", "nonsense")
        .args(&["deploy:releases"])
        .run()
        .status(0);
    assert_current(
        &lab,
        &HOSTS,
        "20250101000003",
        "a refused rollback changes nothing",
    );
    rollback("20250101000001", &[]).status(0);
    assert_current(&lab, &HOSTS, "20250101000001", "ROLLBACK_RELEASE named it");
    for h in HOSTS {
        assert!(
            releases(&lab, h).contains(&"20250101000002".to_string()),
            "{h}"
        );
    }
    // Rake's KEY=VALUE argument is no task, and says what tether takes (stop 41 tester t42).
    tether(&dir, &lab, &["deploy:rollback", "ROLLBACK_RELEASE=20250101000002"])
        .status(2)
        .stderr_contains("unknown task `ROLLBACK_RELEASE=20250101000002`: tether takes no KEY=VALUE arguments (Rake would put them in its environment): set a variable with -s rollback_release=20250101000002, or ROLLBACK_RELEASE in the environment");
    rollback("nonsense", &["-s", "rollback_release=20250101000002"]).status(0);
    assert_current(
        &lab,
        &HOSTS,
        "20250101000002",
        "-s wins over the environment",
    );
}

/// What a deploy cannot remove or mark while it settles earlier runs' leftovers (a mount, a
/// file of another user inside, a release it may not write) is said as a warning, and the
/// deploy goes on: none of it reads as a release (stop 42 tester t48: one root-owned file in a
/// `.tether-removing.*` failed every later deploy before anything was built). The next deploy
/// that can, does.
#[test]
fn leftovers_a_deploy_cannot_settle_are_said_and_block_nothing() {
    let lab = lab();
    let dir = Dir::new("unsettled");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let rel = |r: &str| format!("/srv/shop/releases/{r}");
    // A cut-off removal's leftover with a mount inside, and release 01's marker gone, its
    // directory read-only: neither can be settled on web1.
    let leftover = rel(".tether-removing.20240101000000");
    mount_busy(&lab, "web1", &leftover);
    in_host(
        &lab,
        "web1",
        &format!(
            "rm {r}/.tether-complete && mount --bind {r} {r} && mount -o remount,bind,ro {r}",
            r = rel("20250101000001")
        ),
    );
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    unmount_busy(&lab, "web1", &leftover);
    in_host(&lab, "web1", &format!("umount {}", rel("20250101000001")));
    out.status(0).stdout_contains(
        "warning: could not remove or mark (see the errors above: a file of another user \
         inside, a directory the deploy user may not write; remove or fix them as their owner \
         or root), left as they are, none of them read as a release, on web1: \
         .tether-removing.20240101000000, 20250101000001\n",
    );
    // Once, though the deploy's cleanup settles again (stop 42 testers t49, t50: twice).
    assert_eq!(
        out.stdout
            .matches("warning: could not remove or mark")
            .count(),
        1,
        "{}",
        out.stdout
    );
    assert_current(&lab, &HOSTS, "20250101000002", "the deploy went on");
    // Once they can be, the next deploy settles them.
    app.commit("v3");
    deploy(&dir, &lab, "20250101000003", &[])
        .status(0)
        .stdout_contains("removed what cut-off removals and switches left (no release, not current) on web1: .tether-removing.20240101000000\n")
        .stdout_contains(&format!("{ADOPTED}web1: 20250101000001\n"))
        .stdout_lacks("warning: could not remove");
    assert!(complete(&lab, "web1", "20250101000001"));
    // An old release the cleanup cannot remove: the others go, the deploy is logged and ends
    // (stop 42 tester t48: it failed after publishing, revisions.log unwritten everywhere).
    mount_busy(&lab, "web2", &rel("20250101000001"));
    app.commit("v4");
    let out = deploy(&dir, &lab, "20250101000004", &["-s", "keep_releases=1"]);
    unmount_busy(&lab, "web2", &rel(".tether-removing.20250101000001"));
    out.status(0)
        .stdout_contains("warning: could not remove old releases (see the errors above")
        .stdout_contains("on web2: 20250101000001\n");
    for h in HOSTS {
        let log = read(shop(&lab, h).join("revisions.log"));
        assert!(
            log.contains("deployed as release 20250101000004 by"),
            "{h}: {log}"
        );
    }
    assert_unlocked(&lab);
    // A rollback that cannot remove the release it left: it is done, logged, and says so
    // (stop 42 tester t50: exit 1, unlogged on that host, advising a rollback from there).
    mount_busy(&lab, "web1", &rel("20250101000004"));
    let out = tether(&dir, &lab, &["deploy:rollback"]);
    unmount_busy(&lab, "web1", &rel(".tether-removing.20250101000004"));
    out.status(0)
        .stdout_contains(
            "warning: could not remove the release rolled back from (see the errors above",
        )
        .stdout_contains("on web1: 20250101000004\n")
        .stdout_lacks("would now roll back");
    assert_current(&lab, &HOSTS, "20250101000003", "rolled back");
    for h in HOSTS {
        let log = read(shop(&lab, h).join("revisions.log"));
        assert!(
            log.ends_with("rolled back to release 20250101000003\n"),
            "{h}: {log}"
        );
    }
    assert_unlocked(&lab);
}

/// What tether writes to decide what a release is and who holds the lock is never writable
/// by other users, whatever the login shell's umask (stop 42 tester t50: under `umask 000`
/// the lock, the release directory, its marker, REVISION and revisions.log were 0666/0777:
/// anyone could rewrite the lock's holder, mark a release building for the next deploy to
/// remove, or plant a BAD_RELEASE).
#[test]
fn the_flows_own_files_are_never_writable_by_others() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = lab();
    for h in HOSTS {
        fs::write(lab.host(h).home.join(".bashrc"), "umask 000\n").unwrap();
    }
    let dir = Dir::new("umask");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    tether(&dir, &lab, &["deploy:lock"]).status(0);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for h in HOSTS {
        let shop = shop(&lab, h);
        let release = shop.join("releases/20250101000001");
        for p in [
            shop.join("deploy.lock"),
            shop.join("revisions.log"),
            release.clone(),
            release.join(".tether-complete"),
            release.join("REVISION"),
        ] {
            assert_eq!(
                mode(&p) & 0o002,
                0,
                "{h}: {} is {:o}",
                p.display(),
                mode(&p)
            );
        }
    }
    tether(&dir, &lab, &["deploy:unlock"]).status(0);
}

/// deploy:releases says what stops the next deploy, or what a run left to finish, beside the
/// releases (stop 42 testers t48, t50: it said nothing of them): a release being removed, a
/// current that is no link (a directory, a file), a lock another deploy holds or one tether
/// did not write; each on its host only.
#[test]
fn releases_names_what_stops_the_next_deploy() {
    let lab = lab();
    let dir = Dir::new("releases-odd");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    fs::create_dir(shop(&lab, "web1").join("releases/.tether-removing.20240101000000")).unwrap();
    let current = |h: &str| shop(&lab, h).join("current");
    fs::remove_file(current("web2")).unwrap();
    fs::create_dir(current("web2")).unwrap();
    fs::remove_file(current("resque1")).unwrap();
    fs::write(current("resque1"), "x\n").unwrap();
    fs::write(
        shop(&lab, "resque2").join("deploy.lock"),
        "alice deploying 20250101000009 since 2025-01-01 00:00:09 UTC\nid 4242\n",
    )
    .unwrap();
    fs::write(shop(&lab, "web2").join("deploy.lock"), "").unwrap();
    let out = tether(&dir, &lab, &["deploy:releases"]);
    out.status(0)
        .stdout_contains(
            "  being removed (a run stopped while removing them; the next deploy or \
             deploy:cleanup finishes it): .tether-removing.20240101000000\nweb2:",
        )
        .stdout_contains(
            "  /srv/shop/current is a directory: a deploy replaces only the link current, so it \
             stops here (move it away first)\n  /srv/shop/deploy.lock: an empty lock file",
        )
        .stdout_contains(
            "  /srv/shop/current is not a symbolic link: a deploy replaces only the link current",
        )
        .stdout_contains(
            "  /srv/shop/deploy.lock: locked by alice deploying 20250101000009 since 2025-01-01 \
             00:00:09 UTC; a deploy stops here while it is there (if no deploy is running, `",
        );
    // Each on its host alone: the lines under its name, past its releases.
    let mut said: Vec<(&str, usize)> = Vec::new();
    for line in out.stdout.lines().skip(1).take_while(|l| !l.is_empty()) {
        match line.strip_suffix(':') {
            Some(h) if !line.starts_with(' ') => said.push((h, 0)),
            _ if !line.starts_with("  2025") => said.last_mut().unwrap().1 += 1,
            _ => {}
        }
    }
    assert_eq!(
        said,
        [("web1", 1), ("web2", 2), ("resque1", 1), ("resque2", 1)],
        "{}",
        out.stdout
    );
}

/// Makes the directory `dir` on `host` one no removal can take away: a tmpfs mounted at
/// `dir/busy` (`rm -rf` cannot remove a mount point), until [`unmount_busy`].
fn mount_busy(lab: &Lab, host: &str, dir: &str) {
    in_host(
        lab,
        host,
        &format!("mkdir -p {dir}/busy && mount -t tmpfs tether-test {dir}/busy"),
    );
}

/// Undoes [`mount_busy`] of the directory that is now `dir` (a removal renames it first).
fn unmount_busy(lab: &Lab, host: &str, dir: &str) {
    in_host(lab, host, &format!("umount {dir}/busy"));
}

/// A marker that cannot be written (a full disk) leaves the release as it was (stop 45 tester
/// t56: with the page the lock took the disk's last, `deploy:cleanup`'s marking of another
/// tool's releases left two empty markers, exit 0, and the two published releases, `current`'s
/// among them, were strays for good once the disk had room again).
#[test]
fn a_marker_that_cannot_be_written_leaves_the_release_as_it_was() {
    let lab = lab();
    let dir = Dir::new("full-marker");
    let app = App::new(&dir);
    recipe(&dir, &app);
    // Capistrano's releases on a disk with one free page (tmpfs counts only file data).
    in_host(
        &lab,
        "web2",
        "mount -t tmpfs -o size=64k tmpfs /srv/shop && cd /srv/shop && \
         mkdir -p releases/20240101000001 releases/20240101000002 && \
         echo abc > releases/20240101000001/REVISION && echo def > releases/20240101000002/REVISION && \
         ln -s /srv/shop/releases/20240101000002 current && \
         printf 'Branch main (at abc) deployed as release 20240101000001 by cap\\nBranch main (at def) deployed as release 20240101000002 by cap\\n' > revisions.log && \
         dd if=/dev/zero of=spare bs=4k count=1 2>/dev/null && \
         { dd if=/dev/zero of=fill bs=4k 2>/dev/null; true; } && rm spare",
    );
    let out = tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web2"]);
    let left = in_host(
        &lab,
        "web2",
        "cd /srv/shop/releases && for f in */.tether-complete*; do \
         if [ -e \"$f\" ]; then printf '%s %s\\n' \"$f\" \"$(wc -c < \"$f\")\"; fi; done",
    );
    in_host(&lab, "web2", "rm /srv/shop/fill");
    let listed = tether(&dir, &lab, &["deploy:releases", "--hosts", "web2"]);
    in_host(&lab, "web2", "umount /srv/shop");
    assert!(
        left.lines().all(|l| !l.ends_with(" 0")),
        "an empty marker was left: {left}\n{}",
        out.dump()
    );
    listed
        .status(0)
        .stdout_contains("web2:\n  20240101000001 ")
        .stdout_contains("  20240101000002 def  <- current\n")
        .stdout_lacks("stray");
}

/// A revisions.log this user cannot write is refused by deploy:check, before anything is
/// published (stop 45 tester t56: the release went live and the run failed at
/// deploy:log_revision). Root writes every file but an immutable one, which stands in here for
/// another user's.
#[test]
fn a_revisions_log_that_cannot_be_written_is_refused_before_publishing() {
    let lab = lab();
    let dir = Dir::new("unwritable-log");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let web1 = ["--hosts", "web1"];
    deploy(&dir, &lab, "20250101000001", &web1).status(0);
    let log = shop(&lab, "web1").join("revisions.log");
    let chattr = |flag: &str| {
        let ok = Command::new("chattr")
            .arg(flag)
            .arg(&log)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chattr {flag}");
    };
    chattr("+i");
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &web1);
    chattr("-i");
    out.status(1).stderr_contains(
        "web1: /srv/shop/revisions.log cannot be written by this user: every deploy and rollback appends to it once current is switched",
    );
    assert_current(
        &lab,
        &["web1"],
        "20250101000001",
        "after the refused deploy",
    );
    assert_eq!(releases(&lab, "web1"), ["20250101000001"]);
}

/// A host whose readlink fails is refused, not taken for one without `current` (stop 45
/// tester t56: with a readlink that failed first in PATH, the publishing marker and the
/// rollback journal said "no current", and a run cut during the switch had deploy:failed
/// remove current, exit 0).
#[test]
fn a_host_whose_readlink_fails_is_refused_not_taken_for_one_without_current() {
    let lab = lab();
    let dir = Dir::new("no-readlink");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let web1 = ["--hosts", "web1"];
    deploy(&dir, &lab, "20250101000001", &web1).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &web1).status(0);
    shadow(
        &lab,
        "web1",
        "readlink",
        "echo 'readlink: not found' >&2\nexit 127\n",
    );
    app.commit("v3");
    let out = deploy(&dir, &lab, "20250101000003", &web1);
    let rollback = tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"]);
    unshadow(&lab, "web1");
    let said = "cannot read where /srv/shop/current points (readlink failed)";
    out.status(1).stderr_contains(said);
    rollback.status(1).stderr_contains(said);
    assert_current(&lab, &["web1"], "20250101000002", "after the refused runs");
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"]).status(0);
    assert_current(&lab, &["web1"], "20250101000001", "after the rollback");
}

/// A release's REVISION that is no regular file is not read (stop 45 tester t56: a FIFO there
/// hung deploy:releases, and would hang a deploy under its lock).
#[test]
fn a_revision_file_that_is_a_fifo_is_not_read() {
    let lab = lab();
    let dir = Dir::new("fifo-revision");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let web1 = ["--hosts", "web1"];
    deploy(&dir, &lab, "20250101000001", &web1).status(0);
    let revision = shop(&lab, "web1").join("releases/20250101000001/REVISION");
    fs::remove_file(&revision).unwrap();
    let path = std::ffi::CString::new(revision.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path the test owns.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
        .status(0)
        .stdout_contains("web1:\n  20250101000001 ");
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &web1).status(0);
    assert_current(&lab, &["web1"], "20250101000002", "after the deploy");
}
