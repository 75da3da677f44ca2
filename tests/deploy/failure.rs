//! deploy:failed cleans every host it can and ends with an exact list of what is left where
//! (lock, unfinished release) and the command that clears it.

use super::*;

#[test]
fn a_failure_cleans_every_host_it_can_and_lists_what_is_left_where() {
    let lab = lab();
    let dir = Dir::new("leftovers");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
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
    wait_until("the build step did not start", || {
        HOSTS.iter().all(|h| build_running(&lab, h))
    });
    // resque1's and resque2's /srv turn read-only during the build: their builds fail, and
    // so does every clean-up there; the other hosts are cleaned.
    for h in ["resque1", "resque2"] {
        in_host(&lab, h, "mount -o remount,bind,ro /srv");
    }
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Hosts that left the same are one line (stop 51 tester t77: a line per host alike).
    // The command names this run's ssh config (fresh-eyes finding, stop 30: without this
    // run's -f, -F and -s it reached other hosts, or no recipe).
    let hint = format!(
        "tether -F {} -s hold_seconds=2 {} deploy:cleanup --hosts resque1,resque2",
        lab.ssh_config().display(),
        unlock_own(&lab, "resque2")
    );
    let expected = format!(
        "deploy:failed: left behind:\n  \
        resque1, resque2: unfinished release /srv/shop/releases/20250101000002, lock /srv/shop/deploy.lock (this run's)\n\
        to clear it: `{hint}`\n"
    );
    assert!(stdout.contains(&expected), "{stdout}");
    for h in ["web1", "web2"] {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
        assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }
    for h in ["resque1", "resque2"] {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
        assert!(shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }

    // The command it names, as given, clears it once the hosts are writable again.
    for h in ["resque1", "resque2"] {
        in_host(&lab, h, "mount -o remount,bind,rw /srv");
    }
    let cleared = run_hint(&dir, &hint);
    assert!(cleared.status.success(), "{hint}: {cleared:?}");
    assert!(
        String::from_utf8_lossy(&cleared.stdout).contains(
            "removed unfinished releases (left by runs that did not finish) on resque[1-2]: 20250101000002\n"
        ),
        "{cleared:?}"
    );
    // Its unlock says so once for both (stop 51 tester t77: a line per host).
    assert!(
        String::from_utf8_lossy(&cleared.stdout).contains("resque[1-2]: removed the lock of "),
        "{cleared:?}"
    );
    for h in ["resque1", "resque2"] {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
    }
    assert_unlocked(&lab);
    deploy(&dir, &lab, "20250101000003", &[]).status(0);
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000003"],
            "{h}"
        );
    }
}

/// Regression (issue 12): with sessions dead on some hosts (`--no-keepalive`, their idle
/// connections closed while the web hosts build), deploy:failed connects to them again and
/// cleans them too: no lock and no unfinished release is left anywhere.
#[test]
fn deploy_failed_reconnects_hosts_whose_session_died() {
    let lab = lab();
    let dir = Dir::new("revive");
    let app = App::new(&dir);
    let web_only = r#"
task("app:web_build", "Long on web, then broken on demand", || {
    if fetch("break_web", false) {
        on("web", "sleep 2");
        on("web", "echo 'web build broke' >&2; exit 3");
    }
});
after("app:build", "app:web_build");
"#;
    dir.write(
        "deploy.rhai",
        &format!("{}{web_only}", recipe_text(&app, false)),
    );
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let run = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "--no-keepalive",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "break_web=true",
        ])
        .spawn();
    wait_until("the web build did not start", || {
        ["web1", "web2"].iter().all(|h| build_running(&lab, h))
    });
    // The resque hosts sit idle: their connections go away, and nothing replaces them.
    for h in ["resque1", "resque2"] {
        lab.kill_connections(h);
    }
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("web build broke"), "{stderr}");
    for h in ["resque1", "resque2"] {
        assert!(
            stdout.contains(&format!("{h} ~ session found dead before cleaning up")),
            "{h}\n{stdout}"
        );
    }
    assert!(!stdout.contains("left behind"), "{stdout}");
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
        assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}");
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
    }
}

/// Regression (fresh-eyes finding, stop 28): a host lost between the release's marker and the
/// switch of `current` (here every `mv` fails on resque2, so the switch and deploy:failed's
/// removal fail there) kept a release that was never live, marked complete: listed as a
/// release, counted by keep_releases, and the command deploy:failed named to clear it left it
/// there. The marker says "publishing" until `current` has moved: such a release is
/// unfinished, and that command removes it; one that `current` leads to is complete.
#[test]
fn a_release_never_live_on_a_host_lost_before_the_switch_is_unfinished() {
    let lab = lab();
    let dir = Dir::new("never-live");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        deploy(&dir, &lab, r, &[]).status(0);
    }
    app.commit("v4");
    // (A marker is written whole, then renamed into place: that `mv` works.)
    shadow(
        &lab,
        "resque2",
        "mv",
        "for a; do case $a in */.tether-complete) exec /bin/mv \"$@\";; esac; done\n\
         echo 'mv: cannot move: Input/output error' >&2; exit 1\n",
    );
    let out = deploy(&dir, &lab, "20250101000004", &[]);
    unshadow(&lab, "resque2");
    // The lock was released there: the command names only what is left (stop 32 re-test).
    out.status(1).stdout_contains(&format!(
        "to clear it: `tether -F {} deploy:cleanup --hosts resque2`",
        lab.ssh_config().display()
    ));
    for h in ["web1", "web2", "resque1"] {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002", "20250101000003"],
            "{h}"
        );
    }
    let all4 = [
        "20250101000001",
        "20250101000002",
        "20250101000003",
        "20250101000004",
    ];
    assert_eq!(releases(&lab, "resque2"), all4);
    // Never live there: unfinished, not a release.
    tether(&dir, &lab, &["deploy:releases", "--hosts", "resque2"])
        .status(0)
        .stdout_contains("  unfinished (the next deploy removes them): 20250101000004\n")
        .stdout_lacks("  20250101000004 ");
    tether(&dir, &lab, &["deploy:unlock", "deploy:cleanup", "--hosts", "resque2"])
        .status(0)
        .stdout_contains("removed unfinished releases (left by runs that did not finish) on resque2: 20250101000004\n")
        .stdout_lacks("removed old releases");
    assert_eq!(releases(&lab, "resque2"), &all4[..3]);
    assert_unlocked(&lab);

    // Where the failed run had switched current before the host was lost (fresh-eyes
    // finding: that command then took the release for one "an earlier tether published" and
    // left the host live on it, the others back on the release before): current is put back
    // where the run found it, as deploy:failed did on the others, and the release removed.
    // web1 is made such a host here: current switched to a release 4 whose marker still says
    // "publishing", with where current was.
    let release4 = shop(&lab, "web1").join("releases/20250101000004");
    fs::create_dir_all(&release4).unwrap();
    fs::write(
        release4.join(".tether-complete"),
        "release 20250101000004 publishing\n/srv/shop/releases/20250101000003\n",
    )
    .unwrap();
    let link = shop(&lab, "web1").join("current4");
    std::os::unix::fs::symlink("/srv/shop/releases/20250101000004", &link).unwrap();
    fs::rename(&link, shop(&lab, "web1").join("current")).unwrap();
    tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
        .status(0)
        .stdout_lacks("<- current")
        .stdout_contains("  unfinished (the next deploy removes them): 20250101000004\n");
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
        .status(1)
        .stderr_contains(&format!(
            "current leads to release 20250101000004, which a failed run switched it to and never finished publishing: \"{}\" puts it back first",
            // The run's own selection: the command acts on its hosts alone.
            said_command(&lab, "deploy:cleanup --hosts web1")
        ));
    tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
        .status(0)
        .stdout_contains("put current back where a failed run had found it (that run switched it, then could not finish publishing or put it back) on web1: 20250101000004 -> /srv/shop/releases/20250101000003\n")
        .stdout_contains("removed unfinished releases (left by runs that did not finish) on web1: 20250101000004\n");
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000003")
    );
    assert_eq!(releases(&lab, "web1"), &all4[..3]);
    deploy(&dir, &lab, "20250101000005", &[]).status(0);
    for h in HOSTS {
        assert_eq!(
            read(shop(&lab, h).join("releases/20250101000005/.tether-complete")),
            "release 20250101000005 complete\n",
            "{h}"
        );
    }
}

/// A release made again under a name revisions.log already has (a release_timestamp given
/// twice, the first release rolled back and removed) and cut off while it was built is
/// unfinished, not taken for the one the log names (fresh-eyes finding: it was listed as a
/// release, the next deploy kept it and removed a good one, and a rollback went to it); and a
/// rollback that fails at the switch leaves its target as it was, complete (fresh-eyes
/// finding: a target without the marker, from an earlier tether, was marked "publishing" and
/// then removed as unfinished by the next deploy).
#[test]
fn a_release_cut_off_while_built_is_unfinished_whatever_the_log_says() {
    let lab = lab();
    let dir = Dir::new("reused-name");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002"] {
        deploy(&dir, &lab, r, &[]).status(0);
    }
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    let run = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "hold_seconds=30",
        ])
        .spawn();
    wait_until("the build step did not start", || {
        HOSTS.iter().all(|h| build_running(&lab, h))
    });
    // SAFETY: kill(2) on the tether this test started: nothing of it runs any more.
    unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGKILL) };
    let _ = run.wait_with_output();
    for h in HOSTS {
        lab.signal_processes(h, "sleep 30", libc::SIGTERM);
        assert!(!complete(&lab, h, "20250101000002"), "{h}");
    }
    tether(&dir, &lab, &["deploy:unlock"]).status(0);
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains("unfinished (the next deploy removes them): 20250101000002\n");
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("no release before the current one (20250101000001)");
    deploy(&dir, &lab, "20250101000003", &["-s", "keep_releases=1"])
        .status(0)
        .stdout_contains("removed unfinished releases (left by runs that did not finish) on web1, web2, resque1, resque2: 20250101000002\n");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000003"],
            "{h}"
        );
    }

    // Release 1 as an earlier tether left it: no marker, named by revisions.log. A rollback
    // to it that fails at the switch on resque2 leaves it complete there.
    for h in HOSTS {
        fs::remove_file(shop(&lab, h).join("releases/20250101000001/.tether-complete")).unwrap();
    }
    shadow(&lab, "resque2", "mv", "echo 'mv: no' >&2; exit 1\n");
    let out = tether(&dir, &lab, &["deploy:rollback"]);
    unshadow(&lab, "resque2");
    out.status(1);
    tether(&dir, &lab, &["deploy:releases", "--hosts", "resque2"])
        .status(0)
        .stdout_contains("  20250101000001 ")
        .stdout_lacks("unfinished");
    tether(&dir, &lab, &["deploy:unlock"]).status(0);
    deploy(&dir, &lab, "20250101000004", &[])
        .status(0)
        .stdout_lacks("removed unfinished");
    for h in HOSTS {
        assert!(
            releases(&lab, h).contains(&"20250101000001".to_string()),
            "{h}"
        );
    }
}

/// Regression (fresh-eyes finding, stop 28): a rollback that failed after publishing (a
/// restart) said nothing of `current`, which it had moved, nor of the release it rolled back
/// from, still there; run again, it rolled back one further and removed the release the user
/// wanted. deploy:failed says where current is and what a second rollback would do.
#[test]
fn a_rollback_failing_after_publishing_says_where_current_is() {
    let lab = lab();
    let dir = Dir::new("rollback-published");
    let app = App::new(&dir);
    let restart = r#"
task("app:restart", "Fails on demand", || {
    if fetch("fail_restart", false) {
        on("web1", "echo 'restart failed' >&2; exit 5");
    }
});
after("deploy:published", "app:restart");
"#;
    dir.write(
        "deploy.rhai",
        &format!("{}{restart}", recipe_text(&app, false)),
    );
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        deploy(&dir, &lab, r, &[]).status(0);
    }
    tether(&dir, &lab, &["deploy:rollback", "-s", "fail_restart=true"])
        .status(1)
        .stderr_contains("restart failed")
        .stdout_contains(&format!(
            "deploy:failed: release 20250101000002 is live: the rollback switched current to it \
             before the failure; release 20250101000003, rolled back from, is still there. \
             \"{}\" would now roll back from 20250101000002 to the release before it\n",
            said_command(&lab, "-s fail_restart=true deploy:rollback")
        ));
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000002"),
            "{h}"
        );
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002", "20250101000003"],
            "{h}"
        );
    }
    assert_unlocked(&lab);
}

/// A host switched, then lost before the release was marked complete on every host and before
/// deploy:failed could put it back (here its marker write fails, and then every `ln`): the
/// release stays "publishing" there, with where current was, and the command deploy:failed
/// names puts current back and keeps the release before it (fresh-eyes findings: a host
/// switched with its marker already "complete" stayed live on the failed release, and cleanup
/// with keep_releases 1 removed the release it had just put current back before).
#[test]
fn a_host_switched_then_lost_is_put_back_by_the_command_deploy_failed_names() {
    let lab = lab();
    let dir = Dir::new("switched-lost");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002"] {
        deploy(&dir, &lab, r, &[]).status(0);
    }
    app.commit("v3");
    // The fifth marker write of resque2 (building at the mkdir, after the extraction and at
    // set_current_revision, publishing, complete) fails,
    // and breaks every later `ln` and removal there: the host as good as lost.
    shadow(
        &lab,
        "resque2",
        "rm",
        "for a; do case $a in */.tether-complete.new) n=$(cat /srv/.n 2>/dev/null || echo 0); \
         n=$((n + 1)); echo $n > /srv/.n; if [ $n -ge 5 ]; then touch /srv/.broken; \
         echo 'rm: I/O error' >&2; exit 1; fi;; */.tether-removing.*) [ -e /srv/.broken ] && exit 1;; \
         esac; done\nexec /bin/rm \"$@\"\n",
    );
    shadow(
        &lab,
        "resque2",
        "ln",
        "if [ -e /srv/.broken ]; then echo 'ln: I/O error' >&2; exit 1; fi\nexec /bin/ln \"$@\"\n",
    );
    let out = deploy(&dir, &lab, "20250101000003", &[]);
    unshadow(&lab, "resque2");
    let srv = lab.host("resque2").root_dir.clone();
    let _ = fs::remove_file(srv.join(".broken"));
    let _ = fs::remove_file(srv.join(".n"));
    // Why the clean-up failed there, not how many hosts failed (stop 32 re-test: "could not
    // clean up: 1 of 1 host failed").
    out.status(1)
        .stdout_contains(&format!(
            "to clear it: `tether -F {} deploy:cleanup --hosts resque2`",
            lab.ssh_config().display()
        ))
        .stdout_contains("failed with exit status 1 after ")
        .stdout_contains("stderr (last lines): ln: I/O error\n")
        .stdout_lacks("host failed");
    assert_current(
        &lab,
        &["web1", "web2", "resque1"],
        "20250101000002",
        &out.stdout,
    );
    assert_current(&lab, &["resque2"], "20250101000003", &out.stdout);
    tether(
        &dir,
        &lab,
        &["deploy:unlock", "deploy:cleanup", "--hosts", "resque2", "-s", "keep_releases=1"],
    )
    .status(0)
    .stdout_contains("put current back where a failed run had found it (that run switched it, then could not finish publishing or put it back) on resque2: 20250101000003 -> /srv/shop/releases/20250101000002\n")
    .stdout_lacks("removed old releases");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000002"),
            "{h}"
        );
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
    }
    assert_unlocked(&lab);
}

/// Markers tether did not write move nothing (fresh-eyes findings): a `.tether-complete` link
/// in the repository was written through (any file the deploy user may write, on every
/// host), and so was a `REVISION` link (stop 30); an empty, cut-short or edited marker made a release complete, and a rollback went
/// to it; a "publishing" marker naming /etc moved current there and removed the live release.
#[test]
fn markers_tether_did_not_write_move_nothing() {
    let lab = lab();
    let dir = Dir::new("odd-markers");
    let app = App::new(&dir);
    for h in HOSTS {
        fs::create_dir_all(shop(&lab, h).join("shared")).unwrap();
        fs::write(shop(&lab, h).join("shared/victim.txt"), "precious\n").unwrap();
        fs::write(shop(&lab, h).join("shared/victim2.txt"), "precious\n").unwrap();
    }
    std::os::unix::fs::symlink(
        "/srv/shop/shared/victim.txt",
        app.work.join(".tether-complete"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/srv/shop/shared/victim2.txt", app.work.join("REVISION")).unwrap();
    app.commit("v1 with a marker link");
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        deploy(&dir, &lab, r, &[]).status(0);
    }
    for h in HOSTS {
        for victim in ["victim.txt", "victim2.txt"] {
            assert_eq!(
                read(shop(&lab, h).join("shared").join(victim)),
                "precious\n",
                "{h} {victim}"
            );
        }
        let revision = shop(&lab, h).join("releases/20250101000003/REVISION");
        assert!(!revision.is_symlink(), "{h}");
        assert_eq!(read(revision).trim().len(), 40, "{h}");
        let marker = shop(&lab, h).join("releases/20250101000003/.tether-complete");
        assert!(!marker.is_symlink(), "{h}");
        assert_eq!(read(marker), "release 20250101000003 complete\n", "{h}");
    }
    // Release 2 on web1 with a marker tether did not write: no release, left alone.
    for odd in [
        "",
        "release 20250101000002 building\r\n",
        "release 20250101000001 complete\n",
        // A NUL byte, which the shell's `read` drops (stop 67 tester t116: complete).
        "rel\0ease 20250101000002 complete\n",
        "release 20250101000002 complete\0\n",
    ] {
        fs::write(
            shop(&lab, "web1").join("releases/20250101000002/.tether-complete"),
            odd,
        )
        .unwrap();
        tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
            .status(0)
            .stdout_contains("20250101000002 (a release directory whose .tether-complete says neither complete, unlogged, building nor publishing)")
            .stdout_lacks("  20250101000002 ");
        tether(
            &dir,
            &lab,
            &["deploy:cleanup", "--hosts", "web1", "-s", "keep_releases=1"],
        )
        .status(0);
        assert!(
            releases(&lab, "web1").contains(&"20250101000002".to_string()),
            "{odd:?}"
        );
    }
    // A REVISION holding bytes that are not text shows each as `?` (stop 67 tester t116: the
    // ESC dropped, `[2Jevil` shown as part of the revision).
    fs::write(
        shop(&lab, "web1").join("releases/20250101000001/REVISION"),
        "abc\x1b[2J\0evil\n",
    )
    .unwrap();
    tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
        .status(0)
        .stdout_contains("  20250101000001 abc?[2J?evil\n");
    // A "publishing" marker on the live release naming what current was as /etc.
    fs::write(
        shop(&lab, "web1").join("releases/20250101000003/.tether-complete"),
        "release 20250101000003 publishing\n/etc\n",
    )
    .unwrap();
    tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
        .status(0)
        .stdout_contains("web1: current leads to release 20250101000003, which a failed run switched it to and never finished publishing, and what it pointed at before (/etc) is no complete release of /srv/shop/releases any more: left as it is")
        .stdout_lacks("put current back");
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000003")
    );
    assert!(releases(&lab, "web1").contains(&"20250101000003".to_string()));
    // A deploy of that very name is refused before anything is made: the release current
    // leads to is not removed, nor current with it (stop 34 tester: its mkdir met "File
    // exists", then deploy:failed removed the live release and current, saying "current is as
    // it was").
    deploy(&dir, &lab, "20250101000003", &["--hosts", "web1"])
        .status(1)
        .stderr_contains(
            "web1: release 20250101000003 exists: current leads to it, left as it is (see above)",
        )
        .stdout_lacks("deploy:failed: release 20250101000003 removed");
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000003")
    );
    release_file(&lab, "web1", "20250101000003", "VERSION");
    // A rollback asks for a release by name, and goes there, rather than send the user to
    // deploy:cleanup, which leaves it (stop 34 tester: the advice looped between the two).
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
        .status(1)
        .stderr_contains("web1: current leads to 20250101000003, left as it is (see above): name the release to go to with -s rollback_release=NAME");
    tether(
        &dir,
        &lab,
        &[
            "deploy:rollback",
            "--hosts",
            "web1",
            "-s",
            "rollback_release=20250101000001",
        ],
    )
    .status(0);
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000001")
    );
}

/// A rollback that switched a host, then lost it before every host had switched and before
/// deploy:failed could put it back: the journal the rollback left beside `current` has the
/// command deploy:failed names put current back where the rollback found it (fresh-eyes
/// finding: that host stayed rolled back for good, the others not, nothing said).
#[test]
fn a_host_a_failed_rollback_switched_then_lost_is_put_back() {
    let lab = lab();
    let dir = Dir::new("rollback-lost");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        deploy(&dir, &lab, r, &[]).status(0);
    }
    // resque2's first marker write (the rollback's "complete", after every switch) fails, and
    // breaks its `ln` from then on: deploy:failed cannot put current back there.
    shadow(
        &lab,
        "resque2",
        "rm",
        "for a; do case $a in */.tether-complete.new) touch /srv/.broken; echo 'rm: I/O error' >&2; \
         exit 1;; esac; done\nexec /bin/rm \"$@\"\n",
    );
    shadow(
        &lab,
        "resque2",
        "ln",
        "if [ -e /srv/.broken ]; then echo 'ln: I/O error' >&2; exit 1; fi\nexec /bin/ln \"$@\"\n",
    );
    let out = tether(&dir, &lab, &["deploy:rollback"]);
    unshadow(&lab, "resque2");
    let _ = fs::remove_file(lab.host("resque2").root_dir.join(".broken"));
    out.status(1).stdout_contains(&format!(
        "to clear it: `tether -F {} deploy:cleanup --hosts resque2`",
        lab.ssh_config().display()
    ));
    assert_current(
        &lab,
        &["web1", "web2", "resque1"],
        "20250101000003",
        &out.stdout,
    );
    assert_current(&lab, &["resque2"], "20250101000002", &out.stdout);
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "resque2"])
        .status(1)
        .stderr_contains("a rollback that did not finish switched current here to /srv/shop/releases/20250101000002");
    tether(
        &dir,
        &lab,
        &["deploy:unlock", "deploy:cleanup", "--hosts", "resque2"],
    )
    .status(0)
    .stdout_contains("on resque2: 20250101000002 -> /srv/shop/releases/20250101000003\n");
    assert_current(&lab, &HOSTS, "20250101000003", "");
    assert!(!shop(&lab, "resque2").join(".tether-rollback").exists());
    // The next rollback is whole again.
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    assert_current(&lab, &HOSTS, "20250101000002", "");
    for h in HOSTS {
        assert!(!shop(&lab, h).join(".tether-rollback").exists(), "{h}");
    }
}

/// A linked file whose directory is the release itself once links are followed (a `loop -> .`
/// link in the repository, `linked_files ["loop/REVISION"]`) would replace what tether writes
/// into the release: refused, not linked (stop 32, re-test: REVISION became a link into
/// shared/ and the release showed shared/'s revision, exit 0).
#[test]
fn a_linked_file_that_lands_on_revision_through_a_link_is_refused() {
    let lab = lab();
    let dir = Dir::new("linked-revision");
    let app = App::new(&dir);
    std::os::unix::fs::symlink(".", app.work.join("loop")).unwrap();
    app.commit("v1 with a loop");
    // And BAD_RELEASE, which marks a release bad (stop 39 tester t32: a bad release published,
    // exit 0).
    for (release, name, said) in [
        (
            "20250101000001",
            "REVISION",
            "names REVISION, which tether writes into each release",
        ),
        (
            "20250101000002",
            "BAD_RELEASE",
            "names BAD_RELEASE, which marks a release bad",
        ),
    ] {
        for h in HOSTS {
            fs::create_dir_all(shop(&lab, h).join("shared/loop")).unwrap();
            fs::write(shop(&lab, h).join("shared/loop").join(name), "FAKE\n").unwrap();
        }
        dir.write(
            "deploy.rhai",
            &format!(
                "{}set(\"linked_files\", [\"config/secrets.yml\", \"loop/{name}\"]);\n",
                recipe_text(&app, false)
            ),
        );
        deploy(&dir, &lab, release, &[])
            .status(1)
            .stderr_contains(&format!(
            "loop/{name}: its directory is the release itself once links are followed, so it {said}"
        ));
        for h in HOSTS {
            assert_eq!(current(&lab, h), None, "{h}");
        }
        assert_unlocked(&lab);
    }
}

/// A place a hook set again is refused at the next step, and deploy:failed still cleans up
/// where this run made its release: with the places deploy:prepare checked, not the new ones
/// (stop 32 re-test: its own path check threw again, so it said "could not clean up: 1 of 1
/// host failed" with no reason, left "unfinished release release NAME" and named deploy:unlock
/// for a lock it had released).
#[test]
fn a_place_a_hook_moved_is_cleaned_up_where_the_run_made_its_release() {
    let lab = lab();
    let dir = Dir::new("moved-cleanup");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    for (set, key) in [
        ("set(\"deploy_to\", \"/srv/other\")", "deploy_to"),
        (
            "set(\"releases_path\", \"/srv/other/releases\")",
            "releases_path",
        ),
        ("set(\"release_path\", \"/srv/other/r\")", "release_path"),
        ("set(\"current_path\", \"/srv/other/live\")", "current_path"),
    ] {
        dir.write(
            "deploy.rhai",
            &format!(
                "{}after(\"deploy:updated\", || {{ {set}; }});\n",
                recipe_text(&app, false)
            ),
        );
        let out = deploy(&dir, &lab, "20250101000002", &[]);
        out.status(4)
            .stderr_contains(&format!("{key} changed during the run, from "))
            .stdout_contains(
                "deploy:failed: release 20250101000002 removed from every host; current is as it was\n",
            )
            .stdout_lacks("could not clean up")
            .stdout_lacks("left behind")
            .stdout_lacks("release release");
        assert_only(&lab, "20250101000001", set);
        for h in HOSTS {
            assert!(!lab.host(h).root_dir.join("other").exists(), "{set} {h}");
        }
    }
}

/// A failure after the first release went live: there is nothing to roll back to, and
/// deploy:failed does not offer it (stop 32 re-test: it said `deploy:rollback` "goes back").
#[test]
fn a_failure_after_publishing_the_first_release_offers_no_rollback() {
    let lab = lab();
    let dir = Dir::new("first-live");
    let app = App::new(&dir);
    let text = format!(
        "{}after(\"deploy:published\", || {{ on(\"all\", \"exit 9\"); }});\n",
        recipe_text(&app, false)
    );
    dir.write("deploy.rhai", &text);
    deploy(&dir, &lab, "20250101000001", &[])
        .status(1)
        .stdout_contains("deploy:failed: release 20250101000001 is live (the failure came after publishing); it is the first release here, so there is none to roll back to\n")
        .stdout_lacks("goes back");
    // With a release before it, the rollback is named.
    deploy(&dir, &lab, "20250101000002", &[])
        .status(1)
        .stdout_contains("deploy:failed: release 20250101000002 is live (the failure came after publishing); \"tether ")
        .stdout_contains("deploy:rollback\" goes back\n");
}

/// A directory of the repository where tether writes its own file into each release (REVISION,
/// the marker) is refused with what it is and what to do, nothing published (stop 32 re-test:
/// the raw `rm: cannot remove '.../REVISION': Is a directory`).
#[test]
fn a_directory_where_tether_writes_its_own_file_is_refused_by_name() {
    let lab = lab();
    let dir = Dir::new("revision-dir");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    for (n, name) in ["REVISION", ".tether-complete"].iter().enumerate() {
        fs::create_dir_all(app.work.join(name)).unwrap();
        fs::write(app.work.join(name).join("keep"), "kept\n").unwrap();
        app.commit(&format!("v{} with a directory {name}", n + 2));
        let release = format!("2025010100000{}", n + 2);
        deploy(&dir, &lab, &release, &[])
            .status(1)
            .stderr_contains(&format!(
                "/srv/shop/releases/{release}/{name} is a directory the source brought, where tether writes its own {name} file into each release: rename it in the source (nothing was replaced)"
            ))
            .stderr_lacks("Is a directory");
        assert_only(&lab, "20250101000001", name);
        fs::remove_dir_all(app.work.join(name)).unwrap();
        app.commit(&format!("v{} without it", n + 2));
    }
}

/// A marker the source brings, extracted over tether's own, never stands for the release: the
/// release is marked building again as soon as the source is in it (stop 33 tester: a run that
/// ended right after the extraction left the repository's "release N complete", deploy:releases
/// listed the release, deploy:cleanup kept it, and every later deploy was refused as older).
/// What the hosts hold right after git:create_release is printed by a hook.
#[test]
fn a_marker_the_source_brings_never_marks_the_release_complete() {
    let lab = lab();
    let dir = Dir::new("source-marker");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    fs::write(
        app.work.join(".tether-complete"),
        "release 20250101000002 complete\n",
    )
    .unwrap();
    fs::write(app.work.join("REVISION"), "fake\n").unwrap();
    // Only the release's own marker is tether's: one deeper is the application's.
    fs::create_dir_all(app.work.join("sub")).unwrap();
    fs::write(app.work.join("sub/.tether-complete"), "mine\n").unwrap();
    app.commit("v2 with a marker");
    dir.write(
        "deploy.rhai",
        &format!(
            "{}after(\"git:create_release\", || {{ on(\"all\", |h| print(`marker on ${{h.name}}: ` + capture(\"cat /srv/shop/releases/20250101000002/.tether-complete\"))); }});\n",
            recipe_text(&app, false)
        ),
    );
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    out.status(0);
    for h in HOSTS {
        out.stdout_contains(&format!("marker on {h}: release 20250101000002 building\n"));
        assert_eq!(
            read(shop(&lab, h).join("releases/20250101000002/.tether-complete")),
            "release 20250101000002 complete\n",
            "{h}"
        );
        assert_eq!(
            read(shop(&lab, h).join("releases/20250101000002/sub/.tether-complete")),
            "mine\n",
            "{h}"
        );
    }
}

/// A host lost during the build, and not reached again by deploy:failed, is said once with
/// its reason: the reason is not repeated inside itself (stop 33 re-test: the reconnect's
/// reason twice in one "could not clean up" line).
#[test]
fn a_host_lost_for_good_is_said_once_by_deploy_failed() {
    let lab = lab();
    let dir = Dir::new("lost-for-good");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let child = building(&dir, &lab, "20250101000002", &["--reattach", "1s"]);
    let listener = lab.host("resque2").pid as libc::pid_t;
    // SAFETY: kill(2) on the lab's own sshd listener.
    unsafe { libc::kill(listener, libc::SIGSTOP) };
    lab.kill_connections("resque2");
    let out = child.wait_with_output().unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(listener, libc::SIGCONT) };
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &*String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let said = |start: &str| {
        all.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starts with {start:?}: {all}"))
            .to_string()
    };
    let cleanup = said("resque2: could not clean up: ");
    let unlock = said("resque2: could not release the lock: ");
    let summary = said("  resque2  session lost after ");
    for line in [&cleanup, &unlock, &summary] {
        // The reason given once, and the host named once: where it begins.
        assert_eq!(line.matches("resque2").count(), 1, "{line}\n{all}");
        assert_eq!(line.matches("ConnectTimeout").count(), 1, "{line}\n{all}");
        assert!(line.contains("not re-attached within 1.0 s"), "{line}");
    }
    assert!(!all.contains("(resque2: "), "{all}");
    assert!(!all.contains(": resque2: "), "{all}");
    // resque2 was never reached again: its release and lock are said to be left.
    assert!(
        all.contains("  resque2: unfinished release /srv/shop/releases/20250101000002, lock /srv/shop/deploy.lock (this run's)\n"),
        "{all}"
    );
    kill_sleeps(&lab, "resque2");
}

/// Whatever `current` leads into is never removed, nor called complete when it is not: a
/// directory inside a release (`releases/NAME/public`), what a removal cut off left
/// (`.tether-removing.NAME`), a release marked building; and a deploy of that release's name
/// is refused before anything is made (stop 34 tester: deploy:cleanup removed the release
/// and the removal's leftover current led into, exit 0; a release marked building was listed
/// as current's and marked complete).
#[test]
fn whatever_current_leads_into_is_never_removed_nor_called_complete() {
    let lab = lab();
    let dir = Dir::new("current-anywhere");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002", "20250101000003"] {
        deploy(&dir, &lab, r, &["--hosts", "web1"]).status(0);
    }
    let rel = |name: &str| shop(&lab, "web1").join("releases").join(name);
    let point = |to: &str| point_current(&lab, "web1", to);
    let cleanup = |keep: &str| {
        tether(
            &dir,
            &lab,
            &[
                "deploy:cleanup",
                "--hosts",
                "web1",
                "-s",
                &format!("keep_releases={keep}"),
            ],
        )
    };

    // A directory inside the oldest release: that release is current's.
    fs::create_dir_all(rel("20250101000001").join("public")).unwrap();
    point("/srv/shop/releases/20250101000001/public");
    let out = cleanup("1");
    out.status(0).stdout_lacks("20250101000001\n");
    assert_eq!(
        releases(&lab, "web1"),
        ["20250101000001", "20250101000003"],
        "{}",
        out.stdout
    );
    tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
        .status(0)
        .stdout_contains("  20250101000001 ")
        .stdout_contains("  <- current");

    // What a removal cut off left.
    let left = rel(".tether-removing.20250101000002");
    copy_release(
        &lab,
        "web1",
        "20250101000003",
        ".tether-removing.20250101000002",
    );
    point("/srv/shop/releases/.tether-removing.20250101000002");
    cleanup("1")
        .status(0)
        .stdout_contains(".tether-removing.20250101000002 (what a removal cut off left, which current leads into: left as it is)");
    assert!(left.join("VERSION").exists());

    // A release marked building.
    let building = rel("20250101000004");
    copy_release(&lab, "web1", "20250101000003", "20250101000004");
    let marker = building.join(".tether-complete");
    fs::write(&marker, "release 20250101000004 building\n").unwrap();
    point("/srv/shop/releases/20250101000004");
    let said = "20250101000004 (an unfinished release, its .tether-complete says building, which current leads to: left as it is)";
    tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
        .status(0)
        .stdout_contains(said)
        .stdout_lacks("  <- current");
    cleanup("1")
        .status(0)
        .stdout_contains(said)
        .stdout_lacks("marked complete");
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        "release 20250101000004 building\n"
    );
    deploy(&dir, &lab, "20250101000004", &["--hosts", "web1"])
        .status(1)
        .stderr_contains(
            "web1: release 20250101000004 exists: current leads to it, left as it is (see above)",
        )
        .stdout_lacks("deploy:failed: release 20250101000004 removed");
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000004")
    );
    assert!(building.join("VERSION").exists());
}

/// A rollback cut off on one host is put back under a deploy_to that is not ASCII: the
/// journal is compared with `current` on the host, byte for byte (stop 34 tester: under
/// /srv/äpp the comparison met `current` as shown, `/srv/??pp/...`, and the journal was
/// removed without a word, that host left rolled back).
#[test]
fn a_cut_off_rollback_is_put_back_under_any_deploy_to() {
    let lab = lab();
    let dir = Dir::new("rollback-utf8");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for h in HOSTS {
        let secrets = lab.host(h).root_dir.join("äpp/shared/config/secrets.yml");
        fs::create_dir_all(secrets.parent().unwrap()).unwrap();
        fs::write(secrets, format!("token: {h}\n")).unwrap();
    }
    let to = ["-s", "deploy_to=/srv/äpp"];
    for r in ["20250101000001", "20250101000002"] {
        let ts = format!("release_timestamp={r}");
        let mut args = vec!["deploy", "-s", &ts, "--hosts", "web1,web2"];
        args.extend(to);
        tether(&dir, &lab, &args).status(0);
    }
    // What a rollback cut off on web1 leaves: the journal, and current switched.
    let root = lab.host("web1").root_dir.join("äpp");
    fs::write(
        root.join(".tether-rollback"),
        "/srv/äpp/releases/20250101000002\n/srv/äpp/releases/20250101000001\n",
    )
    .unwrap();
    fs::remove_file(root.join("current")).unwrap();
    std::os::unix::fs::symlink("/srv/äpp/releases/20250101000001", root.join("current")).unwrap();
    let mut args = vec!["deploy:cleanup", "--hosts", "web1,web2"];
    args.extend(to);
    tether(&dir, &lab, &args)
        .status(0)
        .stdout_contains("on web1: 20250101000001 -> /srv/äpp/releases/20250101000002\n");
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("/srv/äpp/releases/20250101000002")
    );
    assert!(!root.join(".tether-rollback").exists());
}

/// A directory the source brings where a linked file goes is refused, not replaced with all
/// it holds (stop 34 tester: `config/secrets.yml/inner` from the repository was deleted and
/// the link put in its place, exit 0; Capistrano removes only a file there). A directory of
/// the source where a linked dir goes is replaced, as Capistrano replaces it.
#[test]
fn a_directory_where_a_linked_file_goes_is_refused() {
    let lab = lab();
    let dir = Dir::new("linked-file-dir");
    let app = App::new(&dir);
    fs::create_dir_all(app.work.join("config/secrets.yml")).unwrap();
    fs::write(app.work.join("config/secrets.yml/inner"), "kept\n").unwrap();
    fs::create_dir_all(app.work.join("log")).unwrap();
    fs::write(app.work.join("log/from-repo"), "replaced\n").unwrap();
    app.commit("v1 with directories");
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &["--hosts", "web1"])
        .status(1)
        .stderr_contains("config/secrets.yml: a directory in the release (from the source), where a linked file goes: linking would remove it with all it holds; not replaced");
    assert_eq!(current(&lab, "web1"), None);
    assert_eq!(releases(&lab, "web1"), Vec::<String>::new());
    assert_unlocked(&lab);
    // Without it, the linked dir replaces the source's.
    fs::remove_dir_all(app.work.join("config/secrets.yml")).unwrap();
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &["--hosts", "web1"]).status(0);
    let log = shop(&lab, "web1").join("releases/20250101000002/log");
    assert!(fs::symlink_metadata(&log).unwrap().file_type().is_symlink());
}

/// A failed run's or a cut-off rollback's "where current was" written relative to current's
/// directory (`releases/NAME`, as Deployer writes current) is put back as such, not refused
/// as "no complete release" (stop 34 tester: refused, and the advice it gave looped between
/// deploy:cleanup and deploy:rollback).
#[test]
fn a_relative_current_is_put_back_as_it_was() {
    let lab = lab();
    let dir = Dir::new("relative-current");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002"] {
        deploy(&dir, &lab, r, &["--hosts", "web1"]).status(0);
    }
    let root = shop(&lab, "web1");
    let point = |to: &str| point_current(&lab, "web1", to);
    // A failed run switched current from releases/...02 (relative) to its release 3.
    let release3 = root.join("releases/20250101000003");
    fs::create_dir_all(&release3).unwrap();
    fs::write(
        release3.join(".tether-complete"),
        "release 20250101000003 publishing\nreleases/20250101000002\n",
    )
    .unwrap();
    point("/srv/shop/releases/20250101000003");
    tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
        .status(0)
        .stdout_contains("on web1: 20250101000003 -> releases/20250101000002\n")
        .stdout_lacks("left as it is");
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("releases/20250101000002")
    );
    assert_eq!(releases(&lab, "web1"), ["20250101000001", "20250101000002"]);
    // A rollback cut off after switching from a relative current.
    fs::write(
        root.join(".tether-rollback"),
        "releases/20250101000002\n/srv/shop/releases/20250101000001\n",
    )
    .unwrap();
    point("/srv/shop/releases/20250101000001");
    tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
        .status(0)
        .stdout_contains("on web1: 20250101000001 -> releases/20250101000002\n")
        .stdout_lacks("left as it is");
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("releases/20250101000002")
    );
    assert!(!root.join(".tether-rollback").exists());
    // A journal tether did not write is not read, said, and left. One holding a NUL byte: the
    // shell's `read` dropped it, and a journal saying `rel<NUL>eases/...` put current back to
    // `releases/...` (tester t116's kind, found in the journal after: the lock and the release
    // markers had it). One whose target ends in a CR or holds an ESC, which is then not
    // current, was taken for a rollback that never switched and removed without a word (tester
    // t119); so were one of three lines, one cut off before its newline, and one without a
    // target.
    let nul = "holds a NUL byte";
    let lines = "is not two whole lines";
    let control = "holds a control character";
    for (journal, what) in [
        ("rel\0eases/20250101000001\nreleases/20250101000002\n", nul),
        ("releases/20250101000001\nrel\0eases/20250101000002\n", nul),
        (
            "releases/20250101000002\n/srv/shop/releases/20250101000001\r\n",
            control,
        ),
        (
            "releases/20250101000002\n\x1b[2J/srv/shop/releases/20250101000001\n",
            control,
        ),
        (
            "releases/20250101000002\n/srv/shop/releases/\x7f20250101000001\n",
            control,
        ),
        // In the first line too (tester t120: read as a rollback cut off, its CR printed).
        (
            "releases/20250101000002\r\n/srv/shop/releases/20250101000001\n",
            control,
        ),
        (
            "\x1b[31mreleases/20250101000002\n/srv/shop/releases/20250101000001\n",
            control,
        ),
        ("releases/20250101000002\n\n", "names no target"),
        ("releases/20250101000002\n", lines),
        (
            "releases/20250101000002\n/srv/shop/releases/20250101000001",
            lines,
        ),
        (
            "releases/20250101000002\n/srv/shop/releases/20250101000001\nmore\n",
            lines,
        ),
    ] {
        fs::write(root.join(".tether-rollback"), journal).unwrap();
        tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
            .status(0)
            .stdout_contains(&format!("web1: /srv/shop/.tether-rollback {what}, which tether never writes there: not read (a rollback cut off on this host is not put back), left as it is\n"));
        assert_eq!(
            fs::read_link(root.join("current")).unwrap(),
            Path::new("releases/20250101000002"),
            "{journal:?}"
        );
        assert_eq!(
            fs::read(root.join(".tether-rollback")).unwrap(),
            journal.as_bytes(),
            "{journal:?}"
        );
    }
    // One that is no regular file (tester t120: a FIFO was never said, then removed by a
    // rollback; a directory failed the rollback after the lock). A rollback refuses where a
    // journal tether did not write is (tester t120: said left as it is, then replaced).
    let journal = root.join(".tether-rollback");
    fs::remove_file(&journal).unwrap();
    let odd = "is not a regular file (a directory, a FIFO, a link)";
    for kind in ["fifo", "directory", "link"] {
        match kind {
            "fifo" => assert!(std::process::Command::new("mkfifo")
                .arg(&journal)
                .status()
                .unwrap()
                .success()),
            "directory" => fs::create_dir(&journal).unwrap(),
            _ => {
                fs::write(
                    root.join("elsewhere"),
                    "releases/20250101000002\n/srv/shop/releases/20250101000001\n",
                )
                .unwrap();
                std::os::unix::fs::symlink("elsewhere", &journal).unwrap();
            }
        }
        tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
            .status(0)
            .stdout_contains(&format!("web1: /srv/shop/.tether-rollback {odd}, which tether never writes there: not read (a rollback cut off on this host is not put back), left as it is\n"));
        tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
            .status(1)
            .stderr_contains(&format!("web1: /srv/shop/.tether-rollback {odd}, which tether never writes there, and a rollback writes its own there: remove it (or move it away) first"));
        let meta = fs::symlink_metadata(&journal).unwrap();
        let kind_of = meta.file_type();
        assert_eq!(
            (
                std::os::unix::fs::FileTypeExt::is_fifo(&kind_of),
                kind_of.is_dir(),
                kind_of.is_symlink()
            ),
            (kind == "fifo", kind == "directory", kind == "link"),
            "{kind}"
        );
        match kind {
            "directory" => fs::remove_dir(&journal).unwrap(),
            _ => fs::remove_file(&journal).unwrap(),
        }
    }
    fs::remove_file(root.join("elsewhere")).unwrap();
    let three = "releases/20250101000002\n/srv/shop/releases/20250101000001\nmore\n";
    fs::write(&journal, three).unwrap();
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
        .status(1)
        .stderr_contains(&format!("web1: /srv/shop/.tether-rollback {lines}, which tether never writes there, and a rollback writes its own there: remove it (or move it away) first"));
    assert_eq!(fs::read(&journal).unwrap(), three.as_bytes());
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("releases/20250101000002")
    );

    // Tether's own journal of a rollback that never switched here goes without a word.
    fs::write(
        root.join(".tether-rollback"),
        "releases/20250101000002\n/srv/shop/releases/20250101000001\n",
    )
    .unwrap();
    tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
        .status(0)
        .stdout_lacks("rollback")
        .stdout_lacks("left as it is");
    assert!(!root.join(".tether-rollback").exists());
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("releases/20250101000002")
    );

    // A journal of a rollback cut off here whose where-from is no complete release: a plain
    // rollback refuses, asking for a name, as deploy:cleanup's words say (tester t123: it
    // rolled back past current anyway, removing a release).
    let cut = "releases/20250101000009\nreleases/20250101000002\n";
    fs::write(&journal, cut).unwrap();
    let before = releases(&lab, "web1");
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1"])
        .status(1)
        .stderr_contains("web1: a rollback that did not finish switched current here to releases/20250101000002, and what it pointed at before (releases/20250101000009) is no complete release: name the release to go to with -s rollback_release=NAME");
    assert_eq!(fs::read(&journal).unwrap(), cut.as_bytes());
    assert_eq!(releases(&lab, "web1"), before);
    assert_eq!(
        fs::read_link(root.join("current")).unwrap(),
        Path::new("releases/20250101000002")
    );
    fs::remove_file(&journal).unwrap();

    // The same directory spelled another way: deploy_to given through a link to it (stop 34
    // tester: "no complete release of /srv/link/releases", and the advice looped).
    std::os::unix::fs::symlink("/srv/shop", lab.host("web1").root_dir.join("link")).unwrap();
    fs::create_dir_all(&release3).unwrap();
    fs::write(
        release3.join(".tether-complete"),
        "release 20250101000003 publishing\n/srv/shop/releases/20250101000002\n",
    )
    .unwrap();
    point("/srv/shop/releases/20250101000003");
    let via_link = [
        "deploy:cleanup",
        "--hosts",
        "web1",
        "-s",
        "deploy_to=/srv/link",
        "-s",
        "keep_releases=1",
    ];
    tether(&dir, &lab, &via_link)
        .status(0)
        .stdout_contains("on web1: 20250101000003 -> /srv/shop/releases/20250101000002\n")
        .stdout_lacks("left as it is");
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000002")
    );

    // Current on a release left as it is (here one marked building, between two complete
    // ones): cleanup keeps the release before it, which a rollback would choose, as it keeps
    // the one before current (stop 34 tester: keep_releases 1 removed it).
    deploy(&dir, &lab, "20250101000004", &["--hosts", "web1"]).status(0);
    fs::remove_dir_all(root.join("releases/20250101000001")).unwrap();
    fs::create_dir_all(&release3).unwrap();
    fs::write(
        release3.join(".tether-complete"),
        "release 20250101000003 building\n",
    )
    .unwrap();
    point("/srv/shop/releases/20250101000003");
    tether(
        &dir,
        &lab,
        &["deploy:cleanup", "--hosts", "web1", "-s", "keep_releases=1"],
    )
    .status(0)
    .stdout_contains("left as it is")
    .stdout_lacks("removed old releases");
    assert_eq!(
        releases(&lab, "web1"),
        ["20250101000002", "20250101000003", "20250101000004"]
    );
}

/// A new release older than one on the hosts is refused with the cause it has: a release
/// dated after this machine's clock is named as such, not taken for a clock behind (stop 34
/// tester: "is release_timestamp, or this machine's clock, behind?" when the clock was right).
#[test]
fn a_release_dated_in_the_future_is_named_as_such() {
    let lab = lab();
    let dir = Dir::new("future-release");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000002", &["--hosts", "web1"]).status(0);
    deploy(&dir, &lab, "20250101000001", &["--hosts", "web1"])
        .status(1)
        .stderr_contains("web1: release 20250101000001 would be older than release 20250101000002: releases are ordered by name (is release_timestamp, or this machine's clock, behind?)");
    let releases_dir = shop(&lab, "web1").join("releases");
    copy_release(&lab, "web1", "20250101000002", "20990101000000");
    fs::write(
        releases_dir.join("20990101000000/.tether-complete"),
        "release 20990101000000 complete\n",
    )
    .unwrap();
    let out = tether(&dir, &lab, &["deploy", "--hosts", "web1"]);
    out.status(1)
        .stderr_contains("would be older than release 20990101000000: releases are ordered by name (release 20990101000000 is dated after this machine's clock (")
        .stderr_lacks("behind?");
}

/// A `current` that is no link (a directory, a file) is refused by deploy:check, before
/// anything is built, as by a rollback (stop 34 tester: the deploy failed at the switch, after
/// the whole build: "mv: cannot overwrite directory").
#[test]
fn a_current_that_is_no_link_is_refused_before_the_build() {
    let lab = lab();
    let dir = Dir::new("current-dir");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002"] {
        deploy(&dir, &lab, r, &["--hosts", "web1,web2"]).status(0);
    }
    let current_of = |h: &str| shop(&lab, h).join("current");
    fs::remove_file(current_of("web1")).unwrap();
    fs::create_dir(current_of("web1")).unwrap();
    fs::remove_file(current_of("web2")).unwrap();
    fs::write(current_of("web2"), "a file\n").unwrap();
    let out = deploy(&dir, &lab, "20250101000003", &["--hosts", "web1,web2"]);
    out.status(1)
        .stderr_contains("web1: /srv/shop/current is a directory: tether switches releases by replacing the link current, and replaces nothing else (move it away first)")
        .stderr_contains("web2: /srv/shop/current is not a symbolic link: ")
        .stdout_lacks("▶ app:build");
    tether(&dir, &lab, &["deploy:rollback", "--hosts", "web1,web2"])
        .status(1)
        .stderr_contains("web1: /srv/shop/current is a directory: ");
    for h in ["web1", "web2"] {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
    }
    assert!(current_of("web1").is_dir());
    assert_eq!(read(current_of("web2")), "a file\n");
    assert_unlocked(&lab);
}

/// What cut-off removals and switches leave (`releases/.tether-removing.NAME`, a `.current-NAME`
/// link beside current) is removed by the next run under the lock, and said; deploy:releases
/// says where current goes back when a failed run left it on its release (stop 34 tester: both
/// were removed without a word, and deploy:releases said nothing of the put-back).
#[test]
fn leftovers_are_removed_and_said() {
    let lab = lab();
    let dir = Dir::new("leftovers");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for r in ["20250101000001", "20250101000002"] {
        deploy(&dir, &lab, r, &["--hosts", "web1"]).status(0);
    }
    let root = shop(&lab, "web1");
    copy_release(
        &lab,
        "web1",
        "20250101000001",
        ".tether-removing.20240101000000",
    );
    std::os::unix::fs::symlink(
        "/srv/shop/releases/20250101000002",
        root.join(".current-20250101000009"),
    )
    .unwrap();
    // A failed run's release 3, current switched to it; where it was is in its marker.
    copy_release(&lab, "web1", "20250101000002", "20250101000003");
    fs::write(
        root.join("releases/20250101000003/.tether-complete"),
        "release 20250101000003 publishing\n/srv/shop/releases/20250101000002\n",
    )
    .unwrap();
    point_current(&lab, "web1", "/srv/shop/releases/20250101000003");
    tether(&dir, &lab, &["deploy:releases", "--hosts", "web1"])
        .status(0)
        .stdout_contains("  current goes back to /srv/shop/releases/20250101000002 at the next deploy or deploy:cleanup (a failed run switched it to release 20250101000003 and never finished publishing)\n");
    tether(&dir, &lab, &["deploy:cleanup", "--hosts", "web1"])
        .status(0)
        .stdout_contains("removed what cut-off removals and switches left (no release, not current) on web1: .tether-removing.20240101000000, .current-20250101000009\n");
    assert!(!root
        .join("releases/.tether-removing.20240101000000")
        .exists());
    assert!(fs::symlink_metadata(root.join(".current-20250101000009")).is_err());
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000002")
    );
}

/// A signal while a host is out of reach (its connection lost during the build, its listener
/// stopped): the failure hooks' reconnecting to it tries for 5 s in all, not with the usual
/// backoff, and tether's last contact does not try again at once, so tether exits well within
/// a service manager's patience with what is left where said (stop 37 tester t24: a SIGTERM
/// took 32 s to exit, four attempts and a last contact, past `docker stop`'s 10 s). A second
/// signal meanwhile names the command left running there with the words that stop it (t24:
/// that exit said nothing of it, and the build ran on).
#[test]
fn a_signal_while_a_host_is_out_of_reach_ends_within_its_last_contact() {
    let lab = lab();
    let dir = Dir::new("signal-unreachable");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let listener = lab.host("resque2").pid as libc::pid_t;
    for (n, signals) in [(2, 1), (3, 2)] {
        app.commit(&format!("v{n}"));
        let release = format!("2025010100000{n}");
        let child = building(&dir, &lab, &release, &[]);
        // SAFETY: kill(2) on the lab's own sshd listener.
        unsafe { libc::kill(listener, libc::SIGSTOP) };
        lab.kill_connections("resque2");
        std::thread::sleep(Duration::from_millis(500));
        let signalled = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        if signals == 2 {
            // While the failure hooks wait for resque2.
            std::thread::sleep(Duration::from_millis(2500));
            // SAFETY: as above.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let out = child.wait_with_output().unwrap();
        let took = signalled.elapsed();
        // SAFETY: kill(2) on the lab's own sshd listener.
        unsafe { libc::kill(listener, libc::SIGCONT) };
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &*String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{all}");
        // resque2's build was left running: its command, and how to stop it.
        let left = all
            .lines()
            .find(|l| l.contains("may still be running") && l.contains("resque2"))
            .unwrap_or_else(|| panic!("resque2's build is not said left running: {all}"));
        assert!(left.contains("kill -TERM -"), "{left}");
        if signals == 1 {
            // One bounded contact for the failure hooks, none more before the exit.
            assert!(
                all.contains("tether's last attempt before it exits, 5.0 s"),
                "{all}"
            );
            assert!(
                !all.contains("reconnecting to stop what was left running"),
                "{all}"
            );
            assert!(took < Duration::from_secs(20), "{took:?}\n{all}");
            assert!(
                all.contains(&format!(
                    "  resque2: unfinished release /srv/shop/releases/{release}, lock /srv/shop/deploy.lock (this run's)\n"
                )),
                "{all}"
            );
        } else {
            assert!(
                all.contains("terminated (SIGTERM) again: exiting now"),
                "{all}"
            );
            assert!(left.contains("tether exited at a second signal"), "{left}");
        }
        // The other hosts were cleaned up (on the second run, as far as the exit let them).
        assert!(!build_running(&lab, "web1"), "web1: the build still runs");
        // What resque2 was left with, cleared for the next run.
        kill_sleeps(&lab, "resque2");
        let _ = fs::remove_file(shop(&lab, "resque2").join("deploy.lock"));
        for h in ["web1", "web2", "resque1"] {
            let _ = fs::remove_file(shop(&lab, h).join("deploy.lock"));
        }
    }
}

/// The same with `--pty`: the build runs on a terminal, without the supervisor, so its lost
/// connection is not re-attached to and the host is being reconnected, with the usual
/// backoff, when the signal comes; the signal ends that backoff, and the rest is one bounded
/// contact (stop 37 tester t26: it went on reconnecting for 25 s and exited after 31 s).
#[test]
fn a_signal_during_a_reconnect_backoff_ends_it() {
    let lab = lab();
    let dir = Dir::new("signal-backoff");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let listener = lab.host("resque2").pid as libc::pid_t;
    let child = building(&dir, &lab, "20250101000002", &["--pty"]);
    // SAFETY: kill(2) on the lab's own sshd listener.
    unsafe { libc::kill(listener, libc::SIGSTOP) };
    lab.kill_connections("resque2");
    // Past the first attempt of the backoff (its banner wait is the lab's 5 s).
    std::thread::sleep(Duration::from_millis(2500));
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    // SAFETY: kill(2) on the lab's own sshd listener.
    unsafe { libc::kill(listener, libc::SIGCONT) };
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &*String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{all}");
    // The attempt under way (5 s at most), then one bounded contact (5 s): not the backoff's
    // 1 + 2 + 4 s of pauses and their attempts.
    assert!(took < Duration::from_secs(16), "{took:?}\n{all}");
    assert!(
        all.contains("  resque2: unfinished release /srv/shop/releases/20250101000002, lock /srv/shop/deploy.lock (this run's)\n"),
        "{all}"
    );
    kill_sleeps(&lab, "resque2");
}

/// A before hook of `deploy:failed` that fails (a notifier that is down) keeps none of
/// deploy:failed's cleanup from running: `current` is put back, the unfinished release
/// removed, every lock released, and the hook's failure is said (stop 41 tester t39: `current`
/// stayed at the unfinished release on the hosts that had switched, every lock stayed, and
/// nothing said so). An after hook of it runs too.
#[test]
fn a_failing_hook_before_deploy_failed_keeps_none_of_its_cleanup_from_running() {
    let lab = lab();
    let dir = Dir::new("failed-hook");
    let app = App::new(&dir);
    dir.write(
        "deploy.rhai",
        &format!(
            "{}\nbefore(\"deploy:failed\", || {{ on(\"web1\", \"echo notifier down >&2; exit 3\"); }});\n\
             after(\"deploy:failed\", || {{ on(\"all\", \"echo after hook ran >> /srv/after-failed.log\"); }});\n",
            recipe_text(&app, false)
        ),
    );
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    // The switch fails on web2 after it succeeded elsewhere.
    break_switch(&lab, "web2");
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    unshadow(&lab, "web2");
    out.status(1)
        .stderr_contains("mv: I/O error")
        // Named as the hook it was (stop 41 tester t42: `deploy:failed failed`).
        .stdout_contains("warning: before(\"deploy:failed\") failed: deploy.rhai:")
        .stdout_contains("notifier down");
    assert_current(
        &lab,
        &HOSTS,
        "20250101000001",
        "put back although the hook before deploy:failed failed",
    );
    assert_only(&lab, "20250101000001", "the unfinished release removed");
    assert_unlocked(&lab);
    for h in HOSTS {
        assert_eq!(
            read(lab.host(h).root_dir.join("after-failed.log")),
            "after hook ran\n",
            "{h}"
        );
    }
    // The same with the build failing: nothing was published.
    app.commit("v3");
    let out = deploy(&dir, &lab, "20250101000003", &["-s", "fail_on=resque1"]);
    out.status(1).stdout_contains("notifier down");
    assert_current(&lab, &HOSTS, "20250101000001", "never switched");
    assert_only(&lab, "20250101000001", "the unfinished release removed");
    assert_unlocked(&lab);
}

/// A release whose removal fails after it was renamed (a mount inside it) is named as left
/// behind under the name it has, `.tether-removing.NAME` (stop 41 tester t42: named by its
/// old path, where nothing is); current, put back before it, and the lock, released after
/// it, are not said to be left; the command it names clears it once the mount is gone.
#[test]
fn a_release_left_half_removed_is_named_where_it_is() {
    let lab = lab();
    let dir = Dir::new("half-removed");
    let app = App::new(&dir);
    dir.write(
        "deploy.rhai",
        &format!(
            "{}\nbefore(\"deploy:failed\", || {{ on(\"resque1\", \"r=/srv/shop/releases/20250101000002; \
             mkdir -p $r/busy && mount -t tmpfs tether-test $r/busy\"); }});\n",
            recipe_text(&app, false)
        ),
    );
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &["-s", "fail_on=resque1"]);
    let renamed = "/srv/shop/releases/.tether-removing.20250101000002";
    let mounted = in_host(
        &lab,
        "resque1",
        "grep -c tether-test /proc/self/mounts || true",
    );
    if mounted.trim() != "0" {
        in_host(&lab, "resque1", &format!("umount {renamed}/busy"));
    }
    out.status(1).stdout_contains(&format!(
        "deploy:failed: left behind:\n  resque1: unfinished release {renamed} (release \
         20250101000002, renamed to be removed)\nto clear it: `"
    ));
    assert!(
        !out.stdout.contains("current, which may point"),
        "{}",
        out.stdout
    );
    assert_current(&lab, &HOSTS, "20250101000001", "never switched");
    let hint = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("to clear it: `"))
        .and_then(|l| l.strip_suffix('`'))
        .expect("a command to clear it")
        .to_string();
    let cleared = run_hint(&dir, &hint);
    assert!(cleared.status.success(), "{hint}: {cleared:?}");
    assert_only(&lab, "20250101000001", "the half-removed release cleared");
    assert!(!shop(&lab, "resque1")
        .join("releases/.tether-removing.20250101000002")
        .exists());
    assert_unlocked(&lab);
}

/// deploy:failed says where the release was removed and where it was never made (its mkdir
/// failed): never "removed from every host" for a release some host never had (stop 47
/// tester t64: an immutable releases/ made the mkdir fail, and the hook said the release was
/// removed from every host).
#[test]
fn deploy_failed_says_where_the_release_was_never_made() {
    let lab = lab();
    let dir = Dir::new("never-made");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    // web2's releases/ made read-only once deploy:check passed (a read-only tmpfs over it,
    // which only web2 sees): its mkdir fails, for root too.
    dir.write(
        "deploy.rhai",
        &format!(
            "{}before(\"deploy:updating\", || {{ on(\"web2\", \"mount -t tmpfs -o size=64k,ro tmpfs /srv/shop/releases\"); }});\n",
            recipe_text(&app, true)
        ),
    );
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    in_host(&lab, "web2", "umount /srv/shop/releases");
    out.status(1)
        .stdout_lacks("removed from every host")
        .stdout_contains("deploy:failed: release 20250101000002 removed from ")
        .stdout_contains(" (never made on web2); current is as it was");
    for h in HOSTS {
        assert!(
            !shop(&lab, h).join("releases/20250101000002").exists(),
            "{h}"
        );
    }
}

/// A releases/ the deploy user cannot write (read-only, immutable) is refused by deploy:check,
/// before anything is fetched or built (stop 47 tester t64: it passed the check, and the run
/// failed at the release's mkdir).
#[test]
fn a_releases_directory_that_cannot_be_written_is_refused_by_the_check() {
    let lab = lab();
    let dir = Dir::new("releases-ro");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    in_host(
        &lab,
        "web2",
        "mount -t tmpfs -o size=64k,ro tmpfs /srv/shop/releases",
    );
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    in_host(&lab, "web2", "umount /srv/shop/releases");
    out.status(1)
        .stderr_contains("web2: /srv/shop/releases is not writable: each release is made in it")
        .stdout_lacks("▶ deploy:updating");
}
