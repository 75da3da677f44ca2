//! Every variable of the stdlib modules is checked before anything changes (before the lock,
//! before any release, before any login): a wrong type or value is refused naming the
//! variable, the value and its type; a string that is a number counts as the number.

use super::*;

/// Successful logins on every host so far.
fn logins(lab: &Lab) -> usize {
    HOSTS.iter().map(|h| lab.accepted_logins(h)).sum()
}

/// Regression (issue 18): `keep_releases` 0 or "3" was refused only by deploy:cleanup, after
/// `current` had moved (exit 4, the release live, no revision log line).
#[test]
fn every_stdlib_variable_is_checked_before_anything_changes() {
    let lab = lab();
    let dir = Dir::new("variables");
    let app = App::new(&dir);
    // No failure hook: a refused run must connect to nothing at all.
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let before: Vec<_> = HOSTS.iter().map(|h| snapshot(&shop(&lab, h))).collect();
    let logged_in = logins(&lab);

    let rails = "import \"rails\" as rails;\n";
    let node = "import \"node\" as node;\n";
    let php = "import \"php\" as php;\n";
    let systemd = "import \"systemd\" as systemd;\n";
    let cases: &[(&str, &str, &str, &str)] = &[
        ("deploy", "", "set(\"keep_releases\", 0);", "keep_releases must be a whole number of at least 1, not 0"),
        ("deploy", "", "set(\"keep_releases\", -1);", "keep_releases must be a whole number of at least 1, not -1"),
        ("deploy", "", "set(\"keep_releases\", \"0\");", "keep_releases must be a whole number of at least 1, not 0"),
        ("deploy", "", "set(\"keep_releases\", \"three\");", "keep_releases must be a whole number of at least 1, not \"three\" (a string)"),
        ("deploy", "", "set(\"keep_releases\", \"3 releases\");", "not \"3 releases\" (a string)"),
        ("deploy", "", "set(\"keep_releases\", \"\");", "not \"\" (a string)"),
        ("deploy", "", "set(\"keep_releases\", 2.5);", "not 2.5 (a decimal number)"),
        ("deploy", "", "set(\"keep_releases\", [3]);", "not [3] (an array)"),
        ("deploy", "", "set(\"keep_releases\", ());", "not () (nothing)"),
        ("deploy", "", "set(\"release_roles\", \"wbe\");", "release_roles: unknown role or host `wbe`; did you mean `web`?"),
        ("deploy", "", "set(\"release_roles\", 7);", "release_roles must be a role, a host, \"all\" or an array of them, not 7 (a number)"),
        ("deploy", "", "set(\"release_roles\", [\"web\", true]);", "release_roles must be a role, a host, \"all\" or an array of them, not [\"web\", true] (an array)"),
        ("deploy", "", "set(\"branch\", [\"main\"]);", "branch must be a git branch name, not [\"main\"] (an array)"),
        ("deploy", "", "set(\"repo_url\", #{});", "repo_url must be a repository address, not #{} (a map)"),
        ("deploy", "", "set(\"strategy\", \"rsync\");", "strategy must be \"git\" or \"copy\", not \"rsync\" (a string)"),
        ("deploy", "", "set(\"git_submodules\", \"yes\");", "git_submodules must be true or false, not \"yes\" (a string)"),
        ("deploy", "", "set(\"git_shallow\", \"-2\");", "git_shallow must be a depth of at least 1 (or false), not -2"),
        ("deploy", "", "set(\"git_shallow\", true);", "git_shallow must be a depth of at least 1 (or false), not true (a boolean)"),
        ("deploy", "", "set(\"linked_files\", \"config/secrets.yml\");", "linked_files must be an array of paths, not \"config/secrets.yml\" (a string)"),
        ("deploy", "", "set(\"strategy\", \"copy\"); set(\"copy_exclude\", \".git\");", "copy_exclude must be an array of names left out of the archive, not \".git\" (a string)"),
        ("deploy", "", "set(\"strategy\", \"copy\"); set(\"copy_source\", \" \");", "copy_source must be a local directory, not \" \" (a string)"),
        ("deploy", "", "set(\"strategy\", \"copy\"); set(\"copy_tree\", [\"main\"]);", "copy_tree must be a git tree-ish (main, v1.2:public), not [\"main\"] (an array)"),
        ("deploy", rails, "set(\"rails_env\", \"\");", "rails_env must be an environment name such as production, not \"\" (a string)"),
        ("deploy", rails, "set(\"app_env\", \"RAILS_LOG=1\");", "app_env must be a map of environment variables (#{ NAME: \"value\" }), not \"RAILS_LOG=1\" (a string)"),
        ("deploy", rails, "set(\"app_env\", #{ \"BAD-NAME\": \"x\" });", "app_env: \"BAD-NAME\" is not an environment variable name"),
        ("deploy", rails, "set(\"app_env\", #{ A: [1] });", "app_env.A must be a string, not [1] (an array)"),
        ("deploy", rails, "set(\"assets_roles\", [\"webb\"]);", "assets_roles: unknown role or host `webb`; did you mean one of `web`, `web1`, `web2`?"),
        ("deploy", rails, "set(\"bundle_roles\", 1);", "bundle_roles must be a role, a host, \"all\" or an array of them, not 1 (a number)"),
        ("deploy", rails, "set(\"bundle_path\", \"vendor/bundle\");", "bundle_path \"vendor/bundle\" is not an absolute path"),
        ("deploy", rails, "set(\"bundle_flags\", [\"--quiet\"]);", "bundle_flags must be flags of bundle install, not [\"--quiet\"] (an array)"),
        ("deploy", rails, "set(\"rake_cmd\", ());", "rake_cmd must be a command, not () (nothing)"),
        ("deploy", node, "set(\"npm_roles\", \"frontend\");", "npm_roles: unknown role or host `frontend`"),
        ("deploy", node, "set(\"npm_build_script\", [\"build\"]);", "npm_build_script must be a script name (\"\" skips the build), not [\"build\"] (an array)"),
        ("deploy", node, "set(\"node_env\", \"prod\\nuction\");", "node_env \"prod\\x0auction\" contains a control character"),
        ("deploy", php, "set(\"php_writable_dirs\", [\"../cache\"]);", "php_writable_dirs entry \"../cache\" has a \"..\" component"),
        ("deploy", php, "set(\"composer_roles\", #{ web: true });", "composer_roles must be a role, a host, \"all\" or an array of them, not #{\"web\": true} (a map)"),
        ("deploy", systemd, "set(\"systemd_units\", #{ web: \"puma\" });", "systemd_units.web must be an array of unit names, not \"puma\" (a string)"),
        ("deploy", systemd, "set(\"systemd_units\", #{ wbe: [\"puma\"] });", "systemd_units: unknown role or host `wbe`; did you mean `web`?"),
        ("deploy", systemd, "set(\"systemd_units\", [\"puma\"]);", "systemd_units must be a map of role -> units (#{ web: [\"puma\"] }), not [\"puma\"] (an array)"),
        ("deploy", systemd, "set(\"systemd_options\", #{ limt: 1 });", "systemd_options: unknown on() option `limt`"),
        ("deploy", systemd, "set(\"systemctl\", \"\");", "systemctl must be a command (systemctl, sudo systemctl ...), not \"\" (a string)"),
        // Restarts run on a rollback too: their variables are checked before it.
        ("deploy:rollback", systemd, "set(\"systemd_options\", #{ in: \"waves\" });", "systemd_options: "),
        ("deploy:cleanup", "", "set(\"keep_releases\", \"none\");", "keep_releases must be a whole number of at least 1, not \"none\" (a string)"),
        // Linked paths inside one another: linking the outer one would make the inner one's
        // replacement delete shared data (fresh-eyes finding: exit 0 and shared/ emptied).
        ("deploy", "", "set(\"linked_dirs\", [\"config\"]);", "linked_files entry \"config/secrets.yml\" lies inside linked_dirs entry \"config\""),
        ("deploy", "", "set(\"linked_dirs\", [\"log\", \"log/sub\"]); set(\"linked_files\", []);", "linked_dirs entry \"log/sub\" lies inside linked_dirs entry \"log\""),
        ("deploy", "", "set(\"linked_dirs\", [\"a/b/c\", \"a\"]); set(\"linked_files\", []);", "linked_dirs entry \"a/b/c\" lies inside linked_dirs entry \"a\""),
        ("deploy", "", "set(\"linked_dirs\", [\"log\", \"log\"]); set(\"linked_files\", []);", "linked_dirs entry \"log\" is listed twice (also in linked_dirs)"),
        ("deploy", "", "set(\"linked_dirs\", [\"config/secrets.yml\"]);", "linked_files entry \"config/secrets.yml\" is listed twice (also in linked_dirs)"),
        ("deploy", "", "set(\"linked_files\", [\".env\", \".env/x\"]);", "linked_files entry \".env/x\" lies inside linked_files entry \".env\""),
        // Release names are times that exist, not in the future.
        ("deploy", "", "set(\"release_timestamp\", \"20251301000000\");", "release_timestamp \"20251301000000\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"20250230000000\");", "release_timestamp \"20250230000000\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"20250229120000\");", "release_timestamp \"20250229120000\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"20250101240000\");", "release_timestamp \"20250101240000\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"20250101006000\");", "release_timestamp \"20250101006000\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"19691231235959\");", "release_timestamp \"19691231235959\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"00000000000000\");", "release_timestamp \"00000000000000\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"99999999999999\");", "release_timestamp \"99999999999999\" is not a release name"),
        ("deploy", "", "set(\"release_timestamp\", \"99991231235959\");", "release_timestamp \"99991231235959\" is in the future"),
        // Set at all, rollback_release names a release: empty is not "the previous one".
        ("deploy:rollback", "", "set(\"rollback_release\", \"\");", "rollback_release \"\" is empty"),
        ("deploy:rollback", "", "set(\"rollback_release\", \"20250231000000\");", "rollback_release \"20250231000000\" is not a release name"),
    ];
    for (task, import, set, message) in cases {
        let head = format!("{import}{}", recipe_text(&app, false));
        let text = format!("{head}{set}\n");
        dir.write("bad.rhai", &text);
        let out = tether(&dir, &lab, &["-f", "bad.rhai", task]);
        out.status(4).stderr_contains(message);
        // The message is thrown in the stdlib: it names where the recipe set the variable it
        // is about (stop 32 tester: it pointed into the stdlib only).
        let key: String = message
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if let Some(col) = set.find(&format!("set(\"{key}\"")) {
            let line = head.matches('\n').count() + 1;
            out.stderr_contains(&format!("(set at bad.rhai:{line}:{})", col + 1));
        }
        assert_eq!(logins(&lab), logged_in, "{task} with {set} connected");
    }
    // Given on the command line: said so.
    dir.write("bad.rhai", &recipe_text(&app, false));
    tether(
        &dir,
        &lab,
        &["-f", "bad.rhai", "-s", "keep_releases=0", "deploy"],
    )
    .status(4)
    .stderr_contains(
        "keep_releases must be a whole number of at least 1, not 0 (given as -s keep_releases=0)",
    );
    for (h, snap) in HOSTS.iter().zip(&before) {
        assert_unchanged(&shop(&lab, h), snap, h);
    }
}

#[test]
fn strings_that_are_numbers_or_flags_count_as_them() {
    let lab = lab();
    let dir = Dir::new("numeric-strings");
    let app = App::new(&dir);
    dir.write(
        "deploy.rhai",
        &(recipe_text(&app, true)
            + "set(\"keep_releases\", \"3\");\nset(\"git_shallow\", \" 5 \");\n\
               set(\"git_submodules\", \"false\");\nset(\"release_roles\", [\"web\", \"resque\"]);\n"),
    );
    for n in 1..=5 {
        if n > 1 {
            app.commit(&format!("v{n}"));
        }
        let out = deploy(&dir, &lab, &format!("2025010100000{n}"), &[]);
        out.status(0);
        if n > 3 {
            out.stdout_contains(&format!(
                "removed old releases (keep_releases 3) on web1, web2, resque1, resque2: \
                 2025010100000{}",
                n - 3
            ));
        }
    }
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000003", "20250101000004", "20250101000005"],
            "{h}"
        );
    }
    // `-s keep_releases=2` arrives as a number, `-s "keep_releases= 2"` as a string: both 2.
    tether(&dir, &lab, &["deploy:cleanup", "-s", "keep_releases= 2"])
        .status(0)
        .stdout_contains("removed old releases (keep_releases 2) on web1, web2, resque1, resque2: 20250101000003");
    assert_unlocked(&lab);
}

/// A release whose tree has a symbolic link where a linked path's directory is (`public ->
/// /srv/outside` in the repository): linking `public/uploads` would first remove
/// /srv/outside/uploads. It is refused, naming the path; nothing outside the release is touched,
/// `current` does not move. A leap day is a release name.
#[test]
fn a_link_in_the_release_never_lets_a_linked_path_remove_what_is_outside_it() {
    let lab = lab();
    let dir = Dir::new("repo-link");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20240229000000", &[]).status(0);
    for h in HOSTS {
        let outside = lab.host(h).root_dir.join("outside/uploads");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep.txt"), "precious\n").unwrap();
    }
    fs::remove_dir_all(app.work.join("public")).unwrap();
    std::os::unix::fs::symlink("/srv/outside", app.work.join("public")).unwrap();
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    out.status(1).stderr_contains(
        "/srv/shop/releases/20250101000002/public/uploads: its directory is /srv/outside once \
         links are followed, outside the release: not replaced",
    );
    for h in HOSTS {
        assert_eq!(
            read(lab.host(h).root_dir.join("outside/uploads/keep.txt")),
            "precious\n",
            "{h}"
        );
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20240229000000"),
            "{h}"
        );
    }
    assert_unlocked(&lab);
}

/// The release flow's own run state (`deploy:prepared`, `deploy:pinned`...) cannot be given
/// with -s: exit 2, nothing connected (stop 33 re-test: `-s deploy:prepared=true` switched
/// every deploy:prepare check off, and a release named 99991231235959 was published, exit 0).
#[test]
fn the_release_flows_own_state_cannot_be_given_with_s() {
    let lab = lab();
    let dir = Dir::new("run-state");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    let logged_in = logins(&lab);
    for set in [
        "deploy:prepared=true",
        "deploy:pinned=x",
        "deploy:locked_hosts=web1",
    ] {
        let key = set.split('=').next().unwrap();
        tether(
            &dir,
            &lab,
            &[
                "-s",
                set,
                "-s",
                "release_timestamp=99991231235959",
                "deploy",
            ],
        )
        .status(2)
        .stderr_contains(&format!(
            "-s {set}: `{key}` is the release flow's own state for one run"
        ));
    }
    // No save of the recipe changes the command line: `tether watch` refuses it at once, as
    // every other command does (stop 33 leftover: it said "run 1 error" and waited).
    for set in ["deploy:prepared=true", "keepalive=often"] {
        let out = tether(&dir, &lab, &["-s", set, "watch", "deploy"]);
        out.status(2)
            .stderr_contains(&format!("-s {set}: "))
            .stdout_lacks("waiting for changes");
    }
    assert_eq!(logins(&lab), logged_in);
    for h in HOSTS {
        assert!(releases(&lab, h).is_empty(), "{h}");
    }
}
