//! `--shard K/N` (issue 17): the jobs of a CI matrix each deploy one stable part of the fleet;
//! one `release_timestamp` given to every job makes one release name everywhere.

use super::*;

#[test]
fn a_deploy_in_two_shards_makes_one_release_on_every_host() {
    let lab = lab();
    let dir = Dir::new("shards");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let release = "20250101000009";

    // The plan of shard 1 names the hosts it will reach, and is the same on every run.
    let planned = |shard: &str| -> Vec<String> {
        let out = tether(&dir, &lab, &["-n", "deploy", "--shard", shard]);
        out.status(0);
        HOSTS
            .iter()
            .filter(|h| out.stdout.lines().any(|l| l.starts_with(&format!("{h} "))))
            .map(|h| h.to_string())
            .collect()
    };
    let plan1 = planned("1/2");
    assert_eq!(planned("1/2"), plan1, "the split is not stable");
    // Without one release_timestamp given to every shard, each would name its release by its
    // own clock: said (fresh-eyes finding: shards run seconds apart made two release names).
    tether(&dir, &lab, &["-n", "deploy", "--shard", "1/2"])
        .status(0)
        .stdout_contains("warning: --shard 1/2 without -s release_timestamp=...");

    let out = deploy(&dir, &lab, release, &["--shard", "1/2"]);
    out.status(0).stdout_lacks("without -s release_timestamp");
    let first: Vec<String> = HOSTS
        .iter()
        .filter(|h| !releases(&lab, h).is_empty())
        .map(|h| h.to_string())
        .collect();
    assert!(
        !first.is_empty() && first.len() < HOSTS.len(),
        "shard 1/2 deployed to {first:?}"
    );
    assert_eq!(
        first, plan1,
        "the dry run planned other hosts than the deploy reached"
    );
    assert_unlocked(&lab);

    deploy(&dir, &lab, release, &["--shard", "2/2"]).status(0);
    for h in HOSTS {
        assert_eq!(releases(&lab, h), [release], "{h}");
        assert_eq!(
            current(&lab, h).as_deref(),
            Some(format!("/srv/shop/releases/{release}").as_str()),
            "{h}"
        );
    }
    assert_unlocked(&lab);
}

#[test]
fn a_malformed_shard_is_refused_before_connecting() {
    let dir = Dir::new("shards-bad");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let lab = lab();
    for bad in ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2", ""] {
        let arg = format!("--shard={bad}");
        let out = tether(&dir, &lab, &["deploy", &arg]);
        out.status(2).stderr_contains("--shard");
        // Given apart, a value that starts with `-` meets the shard's own error too (it
        // was clap's "unexpected argument '-1'").
        if !bad.is_empty() {
            tether(&dir, &lab, &["deploy", "--shard", bad])
                .status(2)
                .stderr_contains(&format!("--shard {bad}: "));
        }
    }
    // `tether ssh` opens the one host it is named: a shard is refused, not ignored.
    tether(&dir, &lab, &["ssh", "web1", "--shard", "2/2", "--", "true"])
        .status(2)
        .stderr_contains("--shard 2/2: `tether ssh` opens the one host it is given");
    for h in HOSTS {
        assert!(releases(&lab, h).is_empty(), "{h} was deployed to");
    }
}

/// A shard that holds none of the selected hosts (more shards than hosts, or a role the
/// shard has none of) does nothing and succeeds, as its CI job asked, and says so.
#[test]
fn an_empty_shard_says_so_and_succeeds() {
    let lab = Lab::builder().names(&["only1"]).start();
    // `tether hosts` says it too (stop 43 tester t52: an empty table, without a word).
    for sub in [
        &["run", "--hosts", "only1"][..],
        &["hosts", "--hosts", "only1"][..],
    ] {
        let mut said = 0;
        for k in 1..=2 {
            let shard = format!("{k}/2");
            let mut args = sub.to_vec();
            args.extend(["--shard", &shard]);
            if sub[0] == "run" {
                args.extend(["--", "true"]);
            }
            let out = Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&args)
                .run();
            out.status(0);
            let warning =
                format!("warning: --shard {shard} holds none of the 1 selected host: nothing runs");
            if out.stdout.contains(&warning) || out.stderr.contains(&warning) {
                said += 1;
                assert!(!out.stdout.contains("only1 "), "{}", out.stdout);
                if sub[0] == "hosts" {
                    // Its stdout is the listing, read by scripts; what tether says of it goes
                    // to stderr, as `ssh -G` says its own (tester t127: the warning was a
                    // line of the table's output).
                    out.stdout_lacks("warning");
                }
            } else {
                out.stdout_contains("only1");
            }
        }
        assert_eq!(said, 1, "{sub:?}: one of two shards of one host is empty");
    }
}

/// An empty shard runs no task of a recipe: no local command, no hook (fresh-eyes finding:
/// the warning said "nothing runs" while every task printed its `▶`, the stdlib's local build
/// ran and an `after` hook's notification fired, in every empty job of a matrix).
#[test]
fn an_empty_shard_runs_no_task_hook_or_local_command() {
    let lab = Lab::builder().names(&["only1"]).start();
    let r = crate::support::recipe::RecipeDir::new(
        "empty-shard-tasks",
        "server(\"only1\", #{ roles: [\"db\"] });\n\
         task(\"build\", || { run_locally(\"echo built >> ran\"); });\n\
         task(\"ship\", || { print(\"shipping\"); on(\"db\", \"true\"); });\n\
         before(\"ship\", \"build\");\n\
         after(\"ship\", || { run_locally(\"echo notified >> ran\"); });\n",
    );
    let mut empty = 0;
    for k in 1..=2 {
        let shard = format!("{k}/2");
        for dry in [true, false] {
            let mut args = vec!["--shard", shard.as_str(), "ship"];
            if dry {
                args.insert(0, "-n");
            }
            let _ = std::fs::remove_file(r.path("ran"));
            let out = r.tether().ssh_config(&lab.ssh_config()).args(&args).run();
            out.status(0);
            if !dry && !out.stdout.contains("holds none") {
                // The shard that holds the host runs everything.
                let ran = std::fs::read_to_string(r.path("ran")).unwrap();
                assert_eq!(ran, "built\nnotified\n");
            }
            if out
                .stdout
                .contains("holds none of the 1 selected host: nothing runs")
            {
                empty += 1;
                out.stdout_lacks("▶").stdout_lacks("shipping");
                assert!(!r.path("ran").exists(), "{}", out.stdout);
            }
        }
    }
    assert_eq!(
        empty, 2,
        "one of two shards of one host is empty (run and dry run)"
    );
}

/// An empty shard's warning is an event of its run, after `run_started`, in `tether run` as
/// in a recipe run (fresh-eyes finding, stop 28: `run --shard 5/5 --format json` wrote the
/// warning before `run_started`, where a reader of a stream of runs gives it to the run
/// before; the dry run gave it before its plan).
#[test]
fn an_empty_shards_warning_comes_after_its_run_started() {
    let lab = Lab::builder().names(&["only1"]).start();
    // Which of the two shards holds the one host is the shard function's to say.
    let empty = (1..=2)
        .map(|k| format!("{k}/2"))
        .find(|shard| {
            let out = Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&["run", "--hosts", "only1", "--shard", shard, "--", "true"])
                .run();
            out.stdout.contains("holds none of")
        })
        .expect("one of two shards of one host is empty");
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--format", "json", "run", "--hosts", "only1", "--shard", &empty,
        ])
        .args(&["--", "true"])
        .run();
    out.status(0);
    let types: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    let at = |t: &str| types.iter().position(|x| x == &format!("\"{t}\""));
    assert!(at("run_started").is_some(), "{}", out.stdout);
    assert!(at("warning") > at("run_started"), "{}", out.stdout);
    // A dry run says it after the hosts it would run on (none).
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "-n", "--format", "json", "run", "--hosts", "only1", "--shard", &empty,
        ])
        .args(&["--", "true"])
        .run();
    out.status(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].contains("\"type\":\"run_started\""),
        "{}",
        out.stdout
    );
    assert!(lines[1].contains("\"type\":\"hosts\""), "{}", out.stdout);
    assert!(lines[2].contains("holds none of"), "{}", out.stdout);
}

/// Two shards of one deploy at once on one machine (a shell runner with `concurrent > 1`)
/// make their copy-strategy archives apart, each in a private directory it removes
/// (fresh-eyes finding: both wrote and removed `/tmp/tether-APP-RELEASE.tar.gz`; one failed
/// "the local file changed while it was read", the other "cannot read" it).
#[test]
fn two_shards_at_once_keep_their_copy_archives_apart() {
    let lab = lab();
    let dir = Dir::new("shards-copy");
    dir.write("site/index.html", "<title>copied</title>\n");
    // Several megabytes gzip cannot shrink: each archive takes a moment to write and upload.
    let noise = crate::support::noise::noise(8 << 20, 0x2545_f491_4f6c_dd1d);
    fs::write(dir.path.join("site/noise.bin"), &noise).unwrap();
    let servers: String = HOSTS
        .iter()
        .map(|h| format!("server(\"{h}\", #{{ roles: [\"web\"] }});\n"))
        .collect();
    dir.write(
        "deploy.rhai",
        &format!(
            "import \"deploy\" as deploy;\nset(\"application\", \"site\");\n\
             set(\"deploy_to\", \"/srv/site\");\nset(\"strategy\", \"copy\");\n\
             set(\"copy_source\", \"site\");\n{servers}"
        ),
    );
    let tmp = dir.path.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let release = "20250101000011";
    let ts = format!("release_timestamp={release}");
    // Two runs with one release name never name one archive.
    let archive = |shard: &str| {
        let out = tether(&dir, &lab, &["-n", "deploy", "--shard", shard, "-s", &ts]);
        out.status(0);
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("local | $ a="))
            .and_then(|l| l.split(';').next())
            .unwrap_or_else(|| panic!("{}", out.stdout))
            .to_string()
    };
    assert_ne!(archive("1/2"), archive("2/2"));
    let jobs: Vec<_> = ["1/2", "2/2"]
        .iter()
        .map(|shard| {
            Tether::new()
                .current_dir(&dir.path)
                .ssh_config(&lab.ssh_config())
                .env("TMPDIR", tmp.to_str().unwrap())
                .args(&["deploy", "--shard", shard, "-s", &ts])
                .spawn()
        })
        .collect();
    for job in jobs {
        let out = job.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            crate::support::tether::text(&out)
        );
    }
    for h in HOSTS {
        let shipped = lab
            .host(h)
            .root_dir
            .join(format!("site/releases/{release}/noise.bin"));
        assert_eq!(
            fs::metadata(&shipped).unwrap().len(),
            noise.len() as u64,
            "{h}"
        );
    }
    let left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A shard none of whose hosts gets releases (`no_release: true`), in a fleet whose other
/// shards have some, runs none of the release flow's own steps (no lock, no release) and its
/// hooks on its hosts, and succeeds, saying so; where no shard has one, it is refused as an
/// unsharded run is (stop 36 testers t18/t19: such a CI matrix job failed, where an empty
/// shard succeeds).
#[test]
fn a_shard_of_no_release_hosts_runs_the_hooks_and_no_release_step() {
    let lab = lab();
    let dir = Dir::new("shards-no-release");
    let app = App::new(&dir);
    let text = recipe_text(&app, true).replace("on(\"all\", ", "on(deploy::release_hosts(), ")
        + "task(\"app:everywhere\", || { on(\"all\", \"echo ran >> /srv/everywhere\"); });\n\
           after(\"deploy:published\", \"app:everywhere\");\n";
    assert_eq!(text.matches("on(deploy::release_hosts(), ").count(), 4);
    dir.write("deploy.rhai", &text);
    let plan = |shard: &str| -> Vec<String> {
        let out = tether(&dir, &lab, &["hosts", "--shard", shard]);
        out.status(0);
        HOSTS
            .iter()
            .filter(|h| {
                out.stdout
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(h))
            })
            .map(|h| h.to_string())
            .collect()
    };
    let (one, two) = (plan("1/2"), plan("2/2"));
    assert!(!one.is_empty() && !two.is_empty(), "{one:?} {two:?}");
    let marked = |hosts: &[String]| {
        hosts.iter().fold(text.clone(), |t, h| {
            t.replace(
                &format!("server(\"{h}\", #{{ "),
                &format!("server(\"{h}\", #{{ no_release: true, "),
            )
        })
    };
    dir.write("deploy.rhai", &marked(&one));
    let release = "20250101000011";
    deploy(&dir, &lab, release, &["--shard", "1/2"])
        .status(0)
        .stdout_contains(&format!(
            "no host of this shard gets releases ({} of other shards do): the release flow's \
             own steps do nothing here; its hooks run",
            two.len()
        ));
    for h in &one {
        assert!(!shop(&lab, h).join("releases").exists(), "{h}");
        assert!(
            lab.host(h).root_dir.join("everywhere").exists(),
            "{h}: the hook did not run"
        );
    }
    for task in ["deploy:rollback", "deploy:cleanup", "deploy:releases"] {
        tether(&dir, &lab, &[task, "--shard", "1/2"]).status(0);
    }
    tether(&dir, &lab, &["-n", "deploy", "--shard", "1/2"])
        .status(0)
        .stdout_contains("no host of this shard gets releases");
    deploy(&dir, &lab, release, &["--shard", "2/2"]).status(0);
    for h in &two {
        assert_eq!(releases(&lab, h), [release], "{h}");
    }
    assert_unlocked(&lab);
    // No shard has a release host: refused, as a run without shards is.
    dir.write("deploy.rhai", &marked(&[one, two].concat()));
    deploy(&dir, &lab, "20250101000012", &["--shard", "1/2"])
        .status(4)
        .stderr_contains("no host of this run gets releases");
}
