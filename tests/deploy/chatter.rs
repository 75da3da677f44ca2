//! A login shell that prints while it starts (issue 18): root's login shell here is bash,
//! which reads `~/.bashrc` for commands sshd runs; a banner there, on stdout and on stderr,
//! once landed in captured output: `deploy:releases` listed it as a release, cleanup kept one
//! release instead of two and rollback then refused, while every deploy reported success.

use super::*;

#[test]
fn a_banner_from_the_login_shell_changes_nothing_in_deploy_cleanup_releases_and_rollback() {
    let lab = lab();
    for h in HOSTS {
        // Every command sshd runs on the host starts with this (HOME is the lab host's own).
        fs::write(
            lab.host(h).home.join(".bashrc"),
            "echo \"Welcome to $(hostname)\"\necho 20991231235959\n\
             echo 'Last login: Mon Jan 1 from 10.0.0.1' >&2\nprintf 'no newline: '\n",
        )
        .unwrap();
    }
    let dir = Dir::new("chatter");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let keep2 = ["-s", "keep_releases=2"];
    deploy(&dir, &lab, "20250101000001", &keep2).status(0);
    let v2 = app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &keep2).status(0);
    let v3 = app.commit("v3");
    deploy(&dir, &lab, "20250101000003", &keep2)
        .status(0)
        .stdout_contains(
            "removed old releases (keep_releases 2) on web1, web2, resque1, resque2: 20250101000001\n",
        )
        .stdout_lacks("20991231235959")
        .stdout_lacks("Welcome");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000002", "20250101000003"],
            "{h}"
        );
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000003"),
            "{h}"
        );
        assert_eq!(release_file(&lab, h, "20250101000003", "VERSION"), "v3\n");
    }

    let out = tether(&dir, &lab, &["deploy:releases"]);
    out.status(0)
        .stdout_contains(&format!(
            "web1, web2, resque1, resque2:\n  20250101000002 {v2}\n  20250101000003 {v3}  <- current\n"
        ))
        .stdout_lacks("web1:")
        .stdout_lacks("20991231235959")
        .stdout_lacks("Welcome")
        .stdout_lacks("no newline");

    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000002"),
            "{h}"
        );
        assert_eq!(releases(&lab, h), ["20250101000002"], "{h}");
    }
    tether(&dir, &lab, &["deploy:rollback"])
        .status(1)
        .stderr_contains("cannot roll back:\n  web1, web2, resque1, resque2: no release before the current one (20250101000002)");
    assert_unlocked(&lab);
}
