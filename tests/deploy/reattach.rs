//! A deploy whose connection to a host dies during its build step goes on (issue 13): the
//! build is re-attached to, never run twice, and the deploy ends with one release per host.

use super::*;

#[test]
fn a_deploy_survives_a_connection_killed_during_the_build() {
    let lab = lab();
    let dir = Dir::new("reattach");
    let app = App::new(&dir);
    // The build appends: a second build would show.
    let recipe = recipe_text(&app, false).replacen("echo built > ", "echo built >> ", 1);
    assert!(recipe.contains("echo built >> "));
    dir.write("deploy.rhai", &recipe);
    let run = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "-s",
            "release_timestamp=20250101000001",
            "-s",
            "hold_seconds=5",
        ])
        .spawn();
    wait_until("the build step did not start", || {
        build_running(&lab, "web1")
    });
    std::thread::sleep(Duration::from_secs(1));
    lab.kill_connections("web1");
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("re-attached after"))
        .collect();
    assert_eq!(said.len(), 1, "{stdout}");
    assert!(
        said[0].starts_with("web1    ~ connection lost ")
            && said[0].contains(" into `sleep 5; echo built >> "),
        "{}",
        said[0]
    );
    assert!(!stdout.contains("reconnected"), "{stdout}");
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
        assert_eq!(
            release_file(&lab, h, "20250101000001", "BUILT"),
            "built\n",
            "{h}"
        );
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
        assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}");
    }
}

/// SIGTERM or SIGHUP to tether during a deploy cleans up as Ctrl-C does: the remote builds are
/// stopped, the failure hooks remove the unfinished release and release the lock, exit 130.
#[test]
fn sigterm_and_sighup_during_a_deploy_clean_up_like_ctrl_c() {
    let lab = lab();
    let dir = Dir::new("sigterm");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    for (n, signal) in [(2, libc::SIGTERM), (3, libc::SIGHUP)] {
        let release = format!("2025010100000{n}");
        let run = building(&dir, &lab, &release, &[]);
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(run.id() as libc::pid_t, signal) };
        let out = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!(
                "deploy:failed: release {release} removed from every host; current is as it was"
            )),
            "{stdout}"
        );
        for h in HOSTS {
            assert!(!build_running(&lab, h), "{h}: the build still runs");
            assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
            assert!(!shop(&lab, h).join("deploy.lock").exists(), "{h}");
            assert_eq!(
                current(&lab, h).as_deref(),
                Some("/srv/shop/releases/20250101000001"),
                "{h}"
            );
        }
    }
}
