//! The git strategy: submodules (recursive, at the commits the parent records, relative urls),
//! a branch or revision that is a tag or a commit, shallow mirrors, and no git chatter shown
//! as error output.

use super::*;

const WEB: [&str; 2] = ["web1", "web2"];

/// A work tree `<dir>/<name>` with FILE = `content`, committed, and its bare clone
/// `<dir>/<name>.git`.
fn repo(dir: &Dir, name: &str, file: &str, content: &str) -> PathBuf {
    let work = dir.path.join(name);
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join(file), content).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", content.trim()]);
    git(
        &dir.path,
        &["clone", "-q", "--bare", name, &format!("{name}.git")],
    );
    work
}

/// Writes FILE = `content` in `work`, commits and pushes it; returns the commit.
fn change(work: &Path, file: &str, content: &str) -> String {
    fs::write(work.join(file), content).unwrap();
    git(work, &["commit", "-q", "-a", "-m", content.trim()]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"])
}

/// `git submodule add` of the sibling repository `../<name>.git` at `path` (a local url, so
/// the file transport is allowed for it).
fn add_submodule(work: &Path, name: &str, path: &str) {
    git(
        work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &format!("../{name}.git"),
            path,
        ],
    );
}

fn web_recipe(dir: &Dir, repo_url: &str, extra: &str) -> PathBuf {
    dir.write(
        "deploy.rhai",
        &format!(
            r#"
import "deploy" as deploy;
set("application", "app");
set("repo_url", "{repo_url}");
set("deploy_to", "/srv/app");
server("web1", #{{ roles: ["web"] }});
server("web2", #{{ roles: ["web"] }});
{extra}
"#
        ),
    )
}

fn app_release(lab: &Lab, host: &str, release: &str) -> PathBuf {
    lab.host(host).root_dir.join("app/releases").join(release)
}

#[test]
fn submodules_are_deployed_recursively_at_the_commits_the_parent_records() {
    let lab = Lab::builder().names(&WEB).start();
    let dir = Dir::new("submodules");
    // inner <- lib (at vendor/inner) <- app (at lib), all by relative urls.
    let inner = repo(&dir, "inner", "INNER", "inner v1\n");
    let inner_v1 = git(&inner, &["rev-parse", "HEAD"]);
    let lib = repo(&dir, "lib", "LIB", "lib v1\n");
    git(
        &lib,
        &[
            "remote",
            "add",
            "origin",
            dir.path.join("lib.git").to_str().unwrap(),
        ],
    );
    add_submodule(&lib, "inner", "vendor/inner");
    git(&lib, &["commit", "-q", "-m", "inner"]);
    git(&lib, &["push", "-q", "origin", "HEAD:main"]);
    let lib_v1 = git(&lib, &["rev-parse", "HEAD"]);
    // lib moves on after the app pinned it.
    let app = repo(&dir, "app", "VERSION", "app v1\n");
    git(
        &app,
        &[
            "remote",
            "add",
            "origin",
            dir.path.join("app.git").to_str().unwrap(),
        ],
    );
    add_submodule(&app, "lib", "lib");
    git(&app.join("lib"), &["checkout", "-q", &lib_v1]);
    // A marker in the source means nothing: only publishing marks a release complete.
    fs::write(app.join(".tether-complete"), "fake\n").unwrap();
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-q", "-m", "lib at v1"]);
    git(&app, &["push", "-q", "origin", "HEAD:main"]);
    let lib_v2 = change(&lib, "LIB", "lib v2\n");
    web_recipe(
        &dir,
        dir.path.join("app.git").to_str().unwrap(),
        r#"after("deploy:updated", || on("web", |host| {
    if !test(`[ "$(head -n 1 ${fetch("release_path")}/.tether-complete)" = "release ${fetch("release_name")} building" ]`) { fail("not marked as being built before publishing"); }
}));"#,
    );
    let release = |h: &str, r: &str| app_release(&lab, h, r);

    let out = tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000001"],
    );
    out.status(0).stdout_contains(&format!(
        "submodules: lib at {}, lib/vendor/inner at {}\n",
        &lib_v1[..12],
        &inner_v1[..12]
    ));
    for h in WEB {
        let r = release(h, "20250101000001");
        assert_eq!(read(r.join("VERSION")), "app v1\n", "{h}");
        assert_eq!(read(r.join("lib/LIB")), "lib v1\n", "{h}");
        assert_eq!(read(r.join("lib/vendor/inner/INNER")), "inner v1\n", "{h}");
        assert!(!r.join("lib/.git").exists(), "{h}");
        assert_eq!(
            read(r.join(".tether-complete")),
            "release 20250101000001 complete\n"
        );
        assert!(
            out.host_lines(h, '!').is_empty(),
            "{h}: git chatter\n{}",
            out.stdout
        );
    }

    // New commits everywhere: the mirrors fetch them, quietly; lib stays where the app pins it.
    change(&lib, "LIB", "lib v3\n");
    change(&app, "VERSION", "app v2\n");
    let out = tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000002"],
    );
    out.status(0);
    for h in WEB {
        let r = release(h, "20250101000002");
        assert_eq!(read(r.join("VERSION")), "app v2\n", "{h}");
        assert_eq!(read(r.join("lib/LIB")), "lib v1\n", "{h}");
        assert!(
            out.host_lines(h, '!').is_empty(),
            "{h}: git chatter\n{}",
            out.stdout
        );
    }

    // The app pins lib v2 (a commit that is no branch's head any more).
    git(&app.join("lib"), &["fetch", "-q"]);
    git(&app.join("lib"), &["checkout", "-q", &lib_v2]);
    git(&app, &["commit", "-q", "-a", "-m", "lib at v2"]);
    git(&app, &["push", "-q", "origin", "HEAD:main"]);
    tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000003"],
    )
    .status(0);
    for h in WEB {
        assert_eq!(
            read(release(h, "20250101000003").join("lib/LIB")),
            "lib v2\n",
            "{h}"
        );
    }

    // git_submodules false: the submodule stays an empty directory, as git archive makes it.
    tether(
        &dir,
        &lab,
        &[
            "deploy",
            "-s",
            "release_timestamp=20250101000004",
            "-s",
            "git_submodules=false",
        ],
    )
    .status(0)
    .stdout_lacks("submodules:");
    for h in WEB {
        let lib = release(h, "20250101000004").join("lib");
        assert!(
            lib.is_dir() && fs::read_dir(&lib).unwrap().next().is_none(),
            "{h}"
        );
    }
    // The copy strategy with copy_tree ships the submodules from the local checkouts, at the
    // commits the tree records (the work tree's lib is elsewhere).
    git(
        &app,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "update",
            "-q",
            "--init",
            "--recursive",
        ],
    );
    git(&app.join("lib"), &["checkout", "-q", &lib_v1]);
    // With `PATH` as given, where a test puts a git of its own first.
    let copy_with = |release: &str, path: Option<&str>| {
        let ts = format!("release_timestamp={release}");
        let mut tether = Tether::new()
            .current_dir(&dir.path)
            .ssh_config(&lab.ssh_config());
        if let Some(path) = path {
            tether = tether.env("PATH", path);
        }
        tether
            .args(&[
                "deploy",
                "-s",
                &ts,
                "-s",
                "strategy=copy",
                "-s",
                "copy_source=app",
                "-s",
                "copy_tree=main",
            ])
            .run()
    };
    let copy = |release: &str| copy_with(release, None);
    copy("20250101000005").status(0);
    for h in WEB {
        let r = release(h, "20250101000005");
        assert_eq!(read(r.join("lib/LIB")), "lib v2\n", "{h}");
        assert_eq!(read(r.join("lib/vendor/inner/INNER")), "inner v1\n", "{h}");
    }
    // A submodule whose commit the local checkout lacks is refused, naming it.
    fs::remove_dir_all(app.join("lib/vendor/inner")).unwrap();
    fs::create_dir(app.join("lib/vendor/inner")).unwrap();
    copy("20250101000006").status(1).stderr_contains(&format!(
        "copy_tree: submodule lib/vendor/inner at commit {inner_v1} is not in app/lib/vendor/inner"
    ));
    // A listing of the commit's tree that fails on the host is no answer, never "no
    // submodules" (stop 39 tester t31: it was read as none, and the release had them empty).
    let bin = lab.host("web1").root_dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(
        bin.join("git"),
        "#!/bin/sh\ncase \" $* \" in *' ls-tree '*) echo 'fatal: ls-tree failed (a test)' >&2; \
         exit 128;; esac\nexec /usr/bin/git \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(
        bin.join("git"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    lab.set_env("web1", &[("PATH", "/srv/bin:/usr/local/bin:/usr/bin:/bin")]);
    tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000007"],
    )
    .status(1)
    .stderr_contains("fatal: ls-tree failed (a test)");
    for h in WEB {
        let current = fs::read_link(lab.host(h).root_dir.join("app/current")).unwrap();
        assert!(current.ends_with("20250101000005"), "{h}: {current:?}");
    }
    // repo_tree may name a submodule: its commit becomes the release (stop 39 tester t32: it
    // was refused as "(not there)"); without submodules it would be empty, and says so.
    lab.set_env("web1", &[("PATH", "/usr/local/bin:/usr/bin:/bin")]);
    let tree = |release: &str, more: &[&str]| {
        let ts = format!("release_timestamp={release}");
        let mut args = vec!["deploy", "-s", &ts, "-s", "repo_tree=lib"];
        args.extend_from_slice(more);
        tether(&dir, &lab, &args)
    };
    tree("20250101000008", &[]).status(0);
    for h in WEB {
        let r = release(h, "20250101000008");
        assert_eq!(read(r.join("LIB")), "lib v2\n", "{h}");
        assert_eq!(read(r.join("vendor/inner/INNER")), "inner v1\n", "{h}");
        assert_eq!(
            read(r.join(".tether-complete")),
            "release 20250101000008 complete\n"
        );
    }
    tree("20250101000009", &["-s", "git_submodules=false"])
        .status(1)
        .stderr_contains("repo_tree lib is not a directory in commit ")
        .stderr_contains("(a submodule, and git_submodules is false: it would be empty)");
    // A path inside a submodule, a nested one included, is refused as such (stop 40 tester
    // t35: "(not there)", or git's and tar's errors).
    for inside in ["lib/vendor", "lib/vendor/inner"] {
        let ts = "release_timestamp=20250101000010";
        let tree = format!("repo_tree={inside}");
        tether(&dir, &lab, &["deploy", "-s", ts, "-s", &tree])
            .status(1)
            .stderr_contains(&format!(
                "repo_tree {inside} is inside submodule lib of commit "
            ));
    }
    // copy_tree lists the local checkout's submodules: a listing that fails fails the deploy
    // (stop 40 tester t35: read as none, the release published with lib empty, exit 0).
    let local_bin = dir.path.join("bin");
    fs::create_dir_all(&local_bin).unwrap();
    fs::copy(bin.join("git"), local_bin.join("git")).unwrap();
    let path = format!("{}:{}", local_bin.display(), std::env::var("PATH").unwrap());
    copy_with("20250101000011", Some(&path))
        .status(1)
        .stderr_contains("fatal: ls-tree failed (a test)");
}

#[test]
fn a_branch_or_revision_may_be_a_tag_or_a_commit_and_shallow_mirrors_fetch_what_they_need() {
    let lab = Lab::builder().names(&WEB).start();
    let dir = Dir::new("revisions");
    let app = repo(&dir, "app", "VERSION", "v0\n");
    git(
        &app,
        &[
            "remote",
            "add",
            "origin",
            dir.path.join("app.git").to_str().unwrap(),
        ],
    );
    let v0 = git(&app, &["rev-parse", "HEAD"]);
    let v1 = change(&app, "VERSION", "v1\n");
    git(&app, &["tag", "v1.0"]);
    git(&app, &["push", "-q", "origin", "v1.0"]);
    let v2 = change(&app, "VERSION", "v2\n");
    let url = dir.path.join("app.git");
    web_recipe(&dir, url.to_str().unwrap(), "");
    let version = |h: &str, r: &str| read(app_release(&lab, h, r).join("VERSION"));
    let revision = |h: &str, r: &str| read(app_release(&lab, h, r).join("REVISION"));

    let run = |release: &str, extra: &[&str]| {
        let ts = format!("release_timestamp={release}");
        let mut args = vec!["deploy", "-s", ts.as_str()];
        args.extend_from_slice(extra);
        tether(&dir, &lab, &args)
    };
    run("20250101000001", &["-s", "revision=v1.0"]).status(0);
    run("20250101000002", &["-s", &format!("revision={v0}")]).status(0);
    run("20250101000003", &["-s", "branch=v1.0"]).status(0);
    run(
        "20250101000004",
        &["-s", &format!("revision={}", &v0[..10])],
    )
    .status(0);
    for h in WEB {
        assert_eq!(version(h, "20250101000001"), "v1\n", "{h}");
        assert_eq!(revision(h, "20250101000001"), format!("{v1}\n"), "{h}");
        assert_eq!(version(h, "20250101000002"), "v0\n", "{h}");
        assert_eq!(version(h, "20250101000003"), "v1\n", "{h}");
        assert_eq!(revision(h, "20250101000004"), format!("{v0}\n"), "{h}");
    }
    let log = read(lab.host("web1").root_dir.join("app/revisions.log"));
    assert!(
        log.starts_with(&format!(
            "Revision v1.0 (at {v1}) deployed as release 20250101000001 by "
        )),
        "{log}"
    );
    run("20250101000005", &["-s", "revision=v9.9"])
        .status(1)
        .stderr_contains(&format!("revision v9.9 is not in {}", url.display()));
    run("20250101000005", &["-s", "branch=gone"])
        .status(1)
        .stderr_contains(&format!("branch gone is not in {}", url.display()));

    // A name that is both a branch and a tag of different commits is refused, whichever
    // variable names it (Capistrano would take the tag, Deployer the branch); the full ref
    // names either. A branch and a tag of one commit is no question.
    git(&app, &["push", "-q", "origin", "HEAD:refs/heads/v1.0"]);
    git(&app, &["tag", "v2.0"]);
    git(
        &app,
        &["push", "-q", "origin", "v2.0", "HEAD:refs/heads/v2.0"],
    );
    for var in ["branch", "revision"] {
        run("20250101000005", &["-s", &format!("{var}=v1.0")])
            .status(1)
            .stderr_contains(&format!(
                "{var} v1.0 is both a branch (at {v2}) and a tag (at {v1}) in {}: set {var} \
                 to refs/heads/v1.0 or refs/tags/v1.0",
                url.display()
            ));
    }

    // A shallow mirror (file:// : git makes no shallow clone of a plain path) holds the newest
    // commit of each branch and tag; an older commit is fetched by name, on every host.
    let file_url = format!("repo_url=file://{}", url.display());
    for h in WEB {
        fs::remove_dir_all(lab.host(h).root_dir.join("app/repo")).unwrap();
    }
    run("20250101000006", &["-s", &file_url, "-s", "git_shallow=1"]).status(0);
    run(
        "20250101000007",
        &[
            "-s",
            &file_url,
            "-s",
            "git_shallow=1",
            "-s",
            &format!("revision={v0}"),
        ],
    )
    .status(0);
    for h in WEB {
        assert!(
            lab.host(h).root_dir.join("app/repo/shallow").exists(),
            "{h}"
        );
        assert_eq!(revision(h, "20250101000006"), format!("{v2}\n"), "{h}");
        assert_eq!(version(h, "20250101000007"), "v0\n", "{h}");
    }
    // Without git_shallow the mirror gets its whole history back.
    run("20250101000008", &["-s", &file_url]).status(0);
    for h in WEB {
        assert!(
            !lab.host(h).root_dir.join("app/repo/shallow").exists(),
            "{h}"
        );
        assert_eq!(version(h, "20250101000008"), "v2\n", "{h}");
    }
    // A branch named as another commit's abbreviation, and a remote-tracking ref the bare
    // origin holds (which `git clone --mirror` copies): neither deploys without a word (stop
    // 42 tester t46: `revision=<short id>` deployed the branch, `branch=origin/main` the
    // origin's refs/remotes/origin/main).
    let short = &v0[..7];
    git(
        &app,
        &["push", "-q", "origin", &format!("{v1}:refs/heads/{short}")],
    );
    git(
        &app,
        &[
            "push",
            "-q",
            "origin",
            &format!("{v0}:refs/remotes/origin/main"),
        ],
    );
    run("20250101000009", &["-s", &format!("revision={short}")])
        .status(1)
        .stderr_contains(&format!(
            "revision {short} is both a branch (at {v1}) and an abbreviation of commit {v0} in {}: \
             set revision to refs/heads/{short} or to the full commit id",
            url.display()
        ));
    for var in ["branch", "revision"] {
        run("20250101000009", &["-s", &format!("{var}=origin/main")])
            .status(1)
            .stderr_contains(&format!("{var} origin/main is not in {}", url.display()));
    }
    // Never one of git's expressions (stop 42 tester t49: `revision=main~1` deployed the
    // parent commit).
    for (rev, says) in [
        ("main~1", "contains \"~\""),
        ("main^", "contains \"^\""),
        ("v1.0^{}", "contains \"^\""),
        ("refs/heads/main~1", "contains \"~\""),
        ("main@{1}", "contains \"@{\""),
        ("HEAD:VERSION", "contains \":\""),
    ] {
        tether(&dir, &lab, &["deploy", "-s", &format!("revision={rev}")])
            .status(4)
            .stderr_contains(&format!(
                "revision \"{rev}\" {says}: give a commit id, a tag or a branch name"
            ));
    }
    run("20250101000009", &["-s", "branch=refs/heads/v1.0"]).status(0);
    run("20250101000010", &["-s", "revision=refs/tags/v1.0"]).status(0);
    run("20250101000011", &["-s", "branch=v2.0"]).status(0);
    run("20250101000012", &["-s", &format!("revision={v0}")]).status(0);
    run("20250101000013", &["-s", "branch=HEAD"]).status(0);
    for h in WEB {
        assert_eq!(version(h, "20250101000012"), "v0\n", "{h}");
        assert_eq!(version(h, "20250101000013"), "v2\n", "{h}");
        assert_eq!(version(h, "20250101000009"), "v2\n", "{h}");
        assert_eq!(version(h, "20250101000010"), "v1\n", "{h}");
        assert_eq!(version(h, "20250101000011"), "v2\n", "{h}");
    }
}

/// A release is never made of part of the tree: a `git archive` that dies part-way fails the
/// release, whatever tar made of the part it got (stop 39 tester t31: with an object missing
/// from a host's mirror, git's stream ended at a file's boundary, tar exited 0, and a release
/// of one file of three was published, exit 0); and `repo_tree` naming a file or a symbolic
/// link of the commit is refused, as Capistrano's `git archive REV:TREE` refuses it (it
/// extracted to an empty release, published, exit 0).
#[test]
fn a_release_is_never_made_of_part_of_the_tree() {
    let lab = Lab::builder().names(&WEB).start();
    let dir = Dir::new("part-of-the-tree");
    let work = dir.path.join("app");
    fs::create_dir_all(work.join("dist")).unwrap();
    fs::write(work.join("b.txt"), "b\n").unwrap();
    fs::write(work.join("dist/index.html"), "<h1>app</h1>\n").unwrap();
    std::os::unix::fs::symlink("dist", work.join("public")).unwrap();
    repo(&dir, "app", "a.txt", "a\n");
    web_recipe(&dir, dir.path.join("app.git").to_str().unwrap(), "");
    // On web2, `git archive` sends a whole tar of its first file only, and fails.
    shadow(
        &lab,
        "web2",
        "git",
        "export PATH=\"${PATH#*:}\"\ncase \" $* \" in *\" archive \"*) t=$(mktemp -d); git \"$@\" | tar -x -f - -C \"$t\"; (cd \"$t\" && tar -c -f - a.txt); rm -rf \"$t\"; exit 128 ;; esac\nexec git \"$@\"\n",
    );
    let out = tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000001"],
    );
    out.status(1)
        .stderr_contains("git archive failed (exit status 128): the release would be incomplete");
    unshadow(&lab, "web2");
    for h in WEB {
        assert!(!app_release(&lab, h, "20250101000001").exists(), "{h}");
        assert!(!lab.host(h).root_dir.join("app/current").exists(), "{h}");
    }
    tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000002"],
    )
    .status(0);
    for h in WEB {
        let r = app_release(&lab, h, "20250101000002");
        assert_eq!(read(r.join("b.txt")), "b\n", "{h}");
    }
    for (tree, kind) in [
        ("public", "blob"),
        ("a.txt", "blob"),
        ("nothing", "not there"),
    ] {
        let out = tether(
            &dir,
            &lab,
            &[
                "deploy",
                "-s",
                "release_timestamp=20250101000003",
                "-s",
                &format!("repo_tree={tree}"),
            ],
        );
        out.status(1)
            .stderr_contains(&format!("repo_tree {tree} is not a directory in commit "))
            .stderr_contains(&format!("({kind})"));
        for h in WEB {
            assert!(
                !app_release(&lab, h, "20250101000003").exists(),
                "{tree}: {h}"
            );
        }
    }
    tether(
        &dir,
        &lab,
        &[
            "deploy",
            "-s",
            "release_timestamp=20250101000004",
            "-s",
            "repo_tree=dist",
        ],
    )
    .status(0);
    for h in WEB {
        let r = app_release(&lab, h, "20250101000004");
        assert_eq!(read(r.join("index.html")), "<h1>app</h1>\n", "{h}");
    }
}
