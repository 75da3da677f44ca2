//! Values that become paths: refused before anything connects when they would make a wrong
//! path, naming the variable; `rollback_release` must be a complete release of every host;
//! `deploy_to` under `~` is each host's own home, used as an absolute path everywhere.

use super::*;

/// Successful logins on every host so far.
fn logins(lab: &Lab) -> usize {
    HOSTS.iter().map(|h| lab.accepted_logins(h)).sum()
}

#[test]
fn values_that_would_make_wrong_paths_are_refused_before_anything_connects() {
    let lab = lab();
    let dir = Dir::new("names");
    let app = App::new(&dir);
    // No failure hook: a refused run must connect to nothing at all.
    dir.write("deploy.rhai", &recipe_text(&app, false));
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    let before: Vec<_> = HOSTS.iter().map(|h| snapshot(&shop(&lab, h))).collect();
    let logged_in = logins(&lab);

    let cases: &[(&str, &str, &str)] = &[
        ("deploy", "release_timestamp=2025/0101000001", "release_timestamp \"2025/0101000001\" contains \"/\": it names a directory under releases/"),
        ("deploy", "release_timestamp=../../../../tmp", "release_timestamp \"../../../../tmp\" contains \"/\""),
        ("deploy", "release_timestamp=..", "release_timestamp \"..\" contains \"..\""),
        ("deploy", "release_timestamp=", "release_timestamp \"\" is empty"),
        ("deploy", "release_timestamp=2025010100000\u{1}", "release_timestamp \"2025010100000\\x01\" contains a control character"),
        ("deploy", "release_timestamp=20250101", "release_timestamp \"20250101\" is not a release name: 14 digits, a UTC time YYYYMMDDHHMMSS that exists"),
        ("deploy", "release_timestamp=2025010100000x", "is not a release name"),
        ("deploy", "release_timestamp=20250230120000", "release_timestamp \"20250230120000\" is not a release name: 14 digits, a UTC time YYYYMMDDHHMMSS that exists"),
        ("deploy", "release_timestamp=20250101246000", "is not a release name"),
        ("deploy", "release_timestamp=20230229000000", "is not a release name"),
        ("deploy", "release_timestamp=99991231235959", "release_timestamp \"99991231235959\" is in the future"),
        ("deploy:rollback", "rollback_release=..", "rollback_release \"..\" contains \"..\""),
        ("deploy:rollback", "rollback_release=../../current", "rollback_release \"../../current\" contains \"/\""),
        ("deploy:rollback", "rollback_release=current", "rollback_release \"current\" is not a release name"),
        ("deploy", "application=a/b", "application \"a/b\" contains \"/\": it becomes a directory name"),
        ("deploy", "application=..", "application \"..\" contains \"..\""),
        ("deploy", "application=", "application \"\" is empty"),
        ("deploy", "branch=-x", "branch \"-x\" starts with \"-\""),
        ("deploy", "branch=a..b", "branch \"a..b\" contains \"..\""),
        ("deploy", "branch=main\nx", "branch \"main\\x0ax\" contains a control character"),
        ("deploy", "branch=", "branch \"\" is empty"),
        ("deploy", "revision=--upload-pack=touch /tmp/x", "revision \"--upload-pack=touch /tmp/x\" is not a commit, tag or branch name"),
        ("deploy", "repo_tree=../x", "repo_tree \"../x\" has a \"..\" component"),
        ("deploy", "repo_tree=/etc", "repo_tree \"/etc\" is an absolute path"),
        ("deploy", "deploy_to=srv/shop", "deploy_to \"srv/shop\" is a relative path: give an absolute path, or ~/... for a directory in the remote user's home"),
        ("deploy", "deploy_to=/srv/../etc", "deploy_to \"/srv/../etc\" has a \"..\" component"),
        ("deploy", "deploy_to=/", "deploy_to must not be /"),
        ("deploy", "deploy_to=~a b/x", "deploy_to \"~a b/x\": \"~a b\" is not a user name"),
        ("deploy", "shared_path=shared", "shared_path \"shared\" is not an absolute path"),
        ("deploy", "lock_file=~/deploy.lock", "lock_file \"~/deploy.lock\" is not an absolute path (only deploy_to may start with ~)"),
        ("deploy", "keep_releases=0", "keep_releases must be a whole number of at least 1, not 0"),
        ("deploy", "local_user=", "local_user \"\" must be a non-empty line"),
        ("deploy", "git_shallow=deep", "git_shallow must be a depth of at least 1 (or false), not \"deep\" (a string)"),
        ("deploy", "linked_dirs=log", "linked_dirs must be an array of paths, not \"log\" (a string)"),
        ("deploy:cleanup", "keep_releases=-1", "keep_releases must be a whole number of at least 1, not -1"),
        ("deploy:cleanup", "keep_releases=99999999999999999999", "keep_releases must be a whole number of at least 1, not 99999999999999999999: out of range (at most 18 digits)"),
        ("deploy", "keep_releases=-1000000000000000000000", "keep_releases must be a whole number of at least 1, not -1000000000000000000000: out of range (at most 18 digits)"),
        ("deploy", "git_shallow=0000000000000000000001", "git_shallow must be a depth of at least 1 (or false), not 0000000000000000000001: out of range (at most 18 digits)"),
        ("deploy", "keep_releases=12a", "keep_releases must be a whole number of at least 1, not \"12a\" (a string)"),
    ];
    for (task, set, message) in cases {
        tether(&dir, &lab, &[task, "-s", set])
            .status(4)
            .stderr_contains(message);
        assert_eq!(logins(&lab), logged_in, "{task} -s {set} connected");
    }
    // Paths inside the release, set by the recipe.
    for (value, message) in [
        ("set(\"linked_dirs\", [\"../etc\"]);", "linked_dirs entry \"../etc\" has a \"..\" component: it names a path inside the release and shared/"),
        ("set(\"linked_dirs\", [\"log/\"]);", "linked_dirs entry \"log/\" has an empty component"),
        ("set(\"linked_dirs\", [\"\"]);", "linked_dirs entry \"\" is empty"),
        ("set(\"linked_files\", [\"/etc/passwd\"]);", "linked_files entry \"/etc/passwd\" is an absolute path"),
        ("set(\"linked_files\", [\"config/./x.yml\"]);", "linked_files entry \"config/./x.yml\" has a \".\" component"),
        ("set(\"linked_files\", [42]);", "linked_files entries must be strings (paths), not 42 (a number)"),
        // What tether writes into each release itself (stop 30: REVISION became a directory
        // of shared/, and a linked marker was silently not linked).
        ("set(\"linked_dirs\", [\"REVISION\"]);", "linked_dirs entry \"REVISION\" names REVISION, which tether writes into each release itself: it cannot be linked from shared/"),
        ("set(\"linked_files\", [\"REVISION\"]);", "linked_files entry \"REVISION\" names REVISION, which tether writes"),
        ("set(\"linked_dirs\", [\".tether-complete\"]);", "linked_dirs entry \".tether-complete\" names .tether-complete, which tether writes"),
        ("set(\"linked_files\", [\".tether-complete/x\"]);", "linked_files entry \".tether-complete/x\" names .tether-complete, which tether writes"),
        // What marks a release bad (stop 39 tester t32: published a bad release, exit 0).
        ("set(\"linked_files\", [\"BAD_RELEASE\"]);", "linked_files entry \"BAD_RELEASE\" names BAD_RELEASE, which marks a release bad (Deployer's rollback leaves it): every release would be published and then never count as one; it cannot be linked from shared/"),
        ("set(\"linked_dirs\", [\"BAD_RELEASE\"]);", "linked_dirs entry \"BAD_RELEASE\" names BAD_RELEASE, which marks"),
        ("set(\"linked_dirs\", [\"BAD_RELEASE/sub\"]);", "linked_dirs entry \"BAD_RELEASE/sub\" names BAD_RELEASE, which marks"),
    ] {
        dir.write("bad.rhai", &(recipe_text(&app, false) + value));
        tether(&dir, &lab, &["-f", "bad.rhai", "deploy"])
            .status(4)
            .stderr_contains(message);
        assert_eq!(logins(&lab), logged_in, "{value} connected");
    }

    for (h, snap) in HOSTS.iter().zip(&before) {
        assert_unchanged(&shop(&lab, h), snap, h);
    }

    // rollback_release must be a complete release on every selected host.
    fs::remove_dir_all(shop(&lab, "web2").join("releases/20250101000001")).unwrap();
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000001"],
    )
    .status(1)
    .stderr_contains("cannot roll back:\n  web2: release 20250101000001 does not exist\n");
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000002"],
    )
    .status(1)
    .stderr_contains("web1, web2, resque1, resque2: release 20250101000002 is already current");
    // ... while --hosts narrows "every host" to the selected ones.
    tether(
        &dir,
        &lab,
        &[
            "deploy:rollback",
            "-s",
            "rollback_release=20250101000001",
            "--hosts",
            "web1",
        ],
    )
    .status(0);
    assert_eq!(
        current(&lab, "web1").as_deref(),
        Some("/srv/shop/releases/20250101000001")
    );
    for h in ["web2", "resque1", "resque2"] {
        let now = current(&lab, h);
        assert_eq!(
            now.as_deref(),
            Some("/srv/shop/releases/20250101000002"),
            "{h}"
        );
    }
    for h in ["resque1", "resque2"] {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
    }
    assert_unlocked(&lab);
}

#[test]
fn deploy_to_under_home_is_each_hosts_own_home() {
    let lab = lab();
    let dir = Dir::new("home");
    let app = App::new(&dir);
    let text = recipe_text(&app, false)
        .replace(
            "set(\"deploy_to\", \"/srv/shop\");",
            "set(\"deploy_to\", \"~/apps/shop\");",
        )
        .replace("set(\"linked_files\", [\"config/secrets.yml\"]);", "");
    dir.write(
        "deploy.rhai",
        &(text + "task(\"show:path\", || print(fetch(\"release_path\")));\n"),
    );
    let root_tilde = Path::new("/root/~").exists();
    let base = |h: &str| lab.host(h).home.join("apps/shop");
    for h in HOSTS {
        fs::create_dir_all(base(h).join("shared/config")).unwrap();
    }
    let out = deploy(&dir, &lab, "20250101000001", &[]);
    out.status(0);
    for h in HOSTS {
        // Each host's home is its own (the lab gives every host a different $HOME).
        out.stdout_contains(&format!(
            "deploy_to ~/apps/shop on {h}: {}\n",
            base(h).display()
        ));
        let release = base(h).join("releases/20250101000001");
        assert_eq!(
            fs::read_link(base(h).join("current")).unwrap(),
            release,
            "{h}"
        );
        assert_eq!(read(release.join("BUILT")), "built\n", "{h}");
        assert_eq!(
            fs::read_link(release.join("log")).unwrap(),
            base(h).join("shared/log"),
            "{h}"
        );
        assert!(complete_at(&release), "{h}");
        assert!(!lab.host(h).home.join("~").exists(), "{h}");
        assert!(!lab.host(h).root_dir.join("shop/releases").exists(), "{h}");
    }
    assert_eq!(
        Path::new("/root/~").exists(),
        root_tilde,
        "a directory named ~ was made in /root"
    );

    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    for h in HOSTS {
        assert_eq!(
            fs::read_link(base(h).join("current")).unwrap(),
            base(h).join("releases/20250101000001"),
            "{h}"
        );
    }
    // Outside on(), a path that differs per host has no single value: the recipe is told.
    tether(&dir, &lab, &["show:path"])
        .status(4)
        .stderr_contains("deploy_to ~/apps/shop is a different directory on each host (web1: ")
        .stderr_contains("): read it, and the paths under it, inside on(..., |host| ...)");
    // ~USER: that user's home; an unknown user is refused on every host, naming it.
    deploy(
        &dir,
        &lab,
        "20250101000003",
        &["-s", "deploy_to=~nosuchuser/apps/shop"],
    )
    .status(1)
    .stderr_contains("web1: `h=~nosuchuser; case")
    .stderr_contains("cannot resolve ~nosuchuser in deploy_to: no user nosuchuser on this host");
    assert_eq!(Path::new("/root/~").exists(), root_tilde);
}

fn complete_at(release: &Path) -> bool {
    release.join(".tether-complete").is_file()
}

/// Hosts named like roles (`server("db", #{ roles: ["db"] })`, common with Capistrano): the
/// stdlib names each host as a `Host` value, never a string a role could take (fresh-eyes
/// finding: the lock step's `on(order[0])` was refused as ambiguous, the deploy could not
/// run, and deploy:failed listed a lock "left behind" that was never taken). A recipe can
/// do the same with `host(name)`.
#[test]
fn hosts_named_like_roles_deploy_and_roll_back() {
    let lab = lab();
    let dir = Dir::new("role-named-hosts");
    let app = App::new(&dir);
    let text = recipe_text(&app, true)
        .replace("[\"web\", \"app\"]", "[\"web1\", \"web2\", \"app\"]")
        .replace("[\"app\", \"resque\"]", "[\"resque1\", \"app\"]")
        + "task(\"only\", || { print(on(host(\"web1\"), \"echo hi\")); \
           print(on([host(\"web2\"), host(\"resque2\")], |h| h.name)); });\n";
    dir.write("deploy.rhai", &text);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    assert_current(&lab, &HOSTS, "20250101000001", "first deploy");
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    assert_unlocked(&lab);
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    assert_current(&lab, &HOSTS, "20250101000001", "rolled back");
    // A string that is both still could be either, and says so.
    let out = tether(&dir, &lab, &["only"]);
    out.status(0)
        .stdout_contains("\n#{\"web1\": #{\"code\": 0, \"stderr\": \"\", \"stdout\": \"hi\\n\"}}\n")
        .stdout_contains("#{\"resque2\": \"resque2\", \"web2\": \"web2\"}");
    dir.write(
        "deploy.rhai",
        &(text + "task(\"vague\", || on(\"web1\", \"true\"));\n"),
    );
    tether(&dir, &lab, &["vague"])
        .status(4)
        .stderr_contains("deploy.rhai:40:18: `web1` is both a role and a server");
}

/// Under `~` the places derived from `deploy_to` are each host's own, and are held for the run
/// all the same: set again in a hook, by value or by a closure of its own, they are refused at
/// the next step, the lock is released where it was taken and current stays (stop 32 re-test:
/// only `deploy_to` itself was held there, so `set("releases_path", ...)` in a hook split the
/// run, exit 0).
#[test]
fn places_under_home_set_again_during_the_run_are_refused() {
    let lab = lab();
    let dir = Dir::new("home-moved");
    let app = App::new(&dir);
    let text = recipe_text(&app, false)
        .replace(
            "set(\"deploy_to\", \"/srv/shop\");",
            "set(\"deploy_to\", \"~/apps/shop\");",
        )
        .replace("set(\"linked_files\", [\"config/secrets.yml\"]);", "");
    let base = |h: &str| lab.host(h).home.join("apps/shop");
    for h in HOSTS {
        fs::create_dir_all(base(h).join("shared/config")).unwrap();
    }
    dir.write("deploy.rhai", &text);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let for_home = |h: &str| base(h).join("releases/20250101000001");
    for (set, key) in [
        (
            "set(\"releases_path\", \"/srv/elsewhere\")",
            "releases_path",
        ),
        (
            "set(\"releases_path\", || fetch(\"shared_path\") + \"/r\")",
            "releases_path",
        ),
        ("set(\"lock_file\", \"/srv/other.lock\")", "lock_file"),
        (
            "set(\"current_path\", || fetch(\"shared_path\") + \"/live\")",
            "current_path",
        ),
        ("set(\"shared_path\", \"/srv/shared\")", "shared_path"),
        (
            "set(\"release_path\", || fetch(\"shared_path\"))",
            "release_path",
        ),
    ] {
        dir.write(
            "deploy.rhai",
            &format!("{text}after(\"deploy:started\", || {{ {set}; }});\n"),
        );
        let out = deploy(&dir, &lab, "20250101000002", &[]);
        out.status(4)
            .stderr_contains(&format!("{key} changed during the run, from "));
        for h in HOSTS {
            assert!(
                !base(h).join("deploy.lock").exists(),
                "{set} {h}: lock left"
            );
            assert_eq!(
                fs::read_link(base(h).join("current")).unwrap(),
                for_home(h),
                "{set} {h}"
            );
            assert!(
                !base(h).join("releases/20250101000002").exists(),
                "{set} {h}: the refused release is left"
            );
            assert!(!base(h).join("shared/r").exists(), "{set} {h}");
            assert!(!base(h).join("shared/live").exists(), "{set} {h}");
            assert!(
                !base(h).join("shared/.tether-complete").exists(),
                "{set} {h}"
            );
            assert!(
                !lab.host(h).root_dir.join("elsewhere").exists(),
                "{set} {h}"
            );
        }
    }
    // The same definition again, in a hook: the same place on every host, nothing refused.
    dir.write(
        "deploy.rhai",
        &format!(
            "{text}after(\"deploy:started\", || {{ set(\"releases_path\", || deploy_to() + \"/releases\"); }});\n"
        ),
    );
    deploy(&dir, &lab, "20250101000003", &[]).status(0);
    for h in HOSTS {
        assert_eq!(
            fs::read_link(base(h).join("current")).unwrap(),
            base(h).join("releases/20250101000003"),
            "{h}"
        );
    }
}

/// rollback_release set in a hook, after deploy:prepare checked it, is checked again when the
/// rollback chooses its release: refused as a name that is not a release, exit 4, current and
/// the lock as they were (stop 33 tester: "release ../../.. does not exist", exit 1).
#[test]
fn a_rollback_release_set_in_a_hook_is_checked_as_a_release_name() {
    let lab = lab();
    let dir = Dir::new("rollback-hook");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);
    for value in [
        "../../../srv/shop/releases/20250101000001",
        "..",
        "2025010100000",
    ] {
        dir.write(
            "deploy.rhai",
            &format!(
                "{}before(\"deploy:reverting\", || set(\"rollback_release\", \"{value}\"));\n",
                recipe_text(&app, false)
            ),
        );
        tether(&dir, &lab, &["deploy:rollback"])
            .status(4)
            .stderr_contains(&format!("rollback_release \"{value}\" "))
            .stderr_contains("(set at deploy.rhai:");
        assert_unlocked(&lab);
        for h in HOSTS {
            assert_eq!(
                current(&lab, h).as_deref(),
                Some("/srv/shop/releases/20250101000002"),
                "{value} {h}"
            );
        }
    }
}

/// `deploy_to` `~user` where that user's home is `/` is the root directory, refused as
/// `deploy_to /` is, before anything is made there (stop 41 tester t40: `deploy_to
/// ~systemd-network on host1: /`, and the run went on to git:check). A read-only task tries it.
#[test]
fn a_home_that_is_the_root_directory_is_refused_as_deploy_to() {
    let user = crate::support::users::PlainUser::create();
    let lab = lab();
    let dir = Dir::new("home-root");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    let link = dir.path.join("rootlink");
    std::os::unix::fs::symlink("/", &link).unwrap();
    // Homes that are / once ".", ".." and links are followed too (stop 41 tester t41: `/.`
    // went on to the lock, refused there naming lock_file).
    for home in [
        "/",
        "/.",
        "/./",
        "/tmp/..",
        "/tmp/../.",
        link.to_str().unwrap(),
    ] {
        let changed = std::process::Command::new("usermod")
            .args(["-d", home, &user.name])
            .status()
            .unwrap();
        assert!(changed.success());
        let deploy_to = format!("deploy_to=~{}", user.name);
        let out = tether(&dir, &lab, &["deploy:releases", "-s", &deploy_to]);
        out.status(4)
            .stderr_contains(&format!("deploy_to ~{} is / on ", user.name))
            .stderr_contains("(the home there is / once links are followed)");
        assert!(!out.stdout.contains("git:check"), "{home}");
    }
}

/// `deploy_to` that leads to `/` once links are followed (a link to /) is refused before the
/// lock is written there (stop 41 tester t41: the run took the lock in /).
#[test]
fn a_deploy_to_that_leads_to_the_root_directory_is_refused() {
    let lab = lab();
    let dir = Dir::new("link-root");
    let app = App::new(&dir);
    dir.write("deploy.rhai", &recipe_text(&app, false));
    for h in HOSTS {
        std::os::unix::fs::symlink("/", lab.host(h).root_dir.join("rootlink")).unwrap();
    }
    let out = tether(&dir, &lab, &["deploy", "-s", "deploy_to=/srv/rootlink"]);
    out.status(1)
        .stderr_contains("deploy_to /srv/rootlink is / once links are followed");
    assert!(!std::path::Path::new("/deploy.lock").exists());
    assert!(!out.stdout.contains("deploy:check"));
}
