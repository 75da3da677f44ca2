//! The stdlib release flow (stdlib/deploy.rhai) against real sshd hosts, each with its own
//! /srv: releases, shared dirs, the atomic `current`, rollback, cleanup, failures, the lock,
//! the copy strategy, the dry-run plan, and `scripts/demo` itself. Assertions read the hosts'
//! files (`lab.host(n).root_dir` is what that host sees as /srv).

mod chatter;
mod failure;
mod git;
mod lock;
mod names;
mod reattach;
mod releases;
mod shards;
mod variables;

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::lab::Lab;
use support::tether::{Output, Tether};

const HOSTS: [&str; 4] = ["web1", "web2", "resque1", "resque2"];

/// A scratch directory (removed when dropped): the recipe, the app's git repositories, a
/// site to copy.
struct Dir {
    path: PathBuf,
    _temp: tempfile::TempDir,
}

impl Dir {
    fn new(name: &str) -> Self {
        let temp = tempfile::Builder::new()
            .prefix(&format!("tether-deploy-{name}-"))
            .tempdir()
            .unwrap();
        Dir {
            path: temp.path().to_path_buf(),
            _temp: temp,
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A sample app in a work tree (`<dir>/app`) and a bare repository the hosts clone from
/// (`<dir>/app.git`, reachable by path: the hosts share this machine's filesystem but /srv).
struct App {
    work: PathBuf,
    bare: PathBuf,
}

impl App {
    fn new(dir: &Dir) -> Self {
        let work = dir.path.join("app");
        let bare = dir.path.join("app.git");
        fs::create_dir_all(work.join("log")).unwrap();
        fs::create_dir_all(work.join("public")).unwrap();
        fs::write(work.join("log/.keep"), "").unwrap();
        fs::write(work.join("public/index.html"), "<h1>shop</h1>\n").unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        let app = App { work, bare };
        app.commit("v1");
        git(
            &dir.path,
            &["clone", "-q", "--bare", "app", bare_name(&app.bare)],
        );
        app
    }

    /// Commits VERSION = `version` and pushes it; returns the commit.
    fn commit(&self, version: &str) -> String {
        fs::write(self.work.join("VERSION"), format!("{version}\n")).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", version]);
        if self.bare.exists() {
            git(
                &self.work,
                &["push", "-q", self.bare.to_str().unwrap(), "main"],
            );
        }
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn bare_name(p: &Path) -> &str {
    p.file_name().unwrap().to_str().unwrap()
}

/// The test recipe: four hosts as in the seed scenario, linked dirs and a linked file, a step
/// before deploy:check that writes into shared/ (as the README's database.yml step), a step
/// after deploy:updated that can be made slow (`-s hold_seconds=N`) or fail on one host
/// (`-s fail_on=HOST`), a step after publishing that writes through the linked log dir, and a
/// failure hook.
fn recipe(dir: &Dir, app: &App) -> PathBuf {
    dir.write("deploy.rhai", &recipe_text(app, true))
}

/// The test recipe's text, with or without its failure hook (which connects to every host).
fn recipe_text(app: &App, failure_hook: bool) -> String {
    let hook = if failure_hook {
        "on_failure(|err| {\n    on(\"all\", \"echo failure hook ran >> /srv/failure-hook.log\");\n});\n"
    } else {
        ""
    };
    format!(
        r#"
import "deploy" as deploy;

set("application", "shop");
set("repo_url", "{repo}");
set("deploy_to", "/srv/shop");
set("linked_dirs", ["log", "public/uploads"]);
set("linked_files", ["config/secrets.yml"]);

server("web1", #{{ roles: ["web", "app"] }});
server("web2", #{{ roles: ["web", "app"] }});
server("resque1", #{{ roles: ["app", "resque"] }});
server("resque2", #{{ roles: ["app", "resque"] }});

task("app:config", "Writes into shared/ before the checks", || {{
    on("all", |host| run(`echo ${{fetch("release_name")}} >> ${{fetch("shared_path")}}/config/written-by.log`));
}});
before("deploy:check", "app:config");

task("app:build", "A build step, slow or failing on demand", || {{
    let hold = fetch("hold_seconds", 0);
    let fail_on = fetch("fail_on", "");
    on("all", |host| {{
        if host.name == fail_on {{
            run("echo 'build broke on purpose' >&2; exit 7");
        }}
        run(`sleep ${{hold}}; echo built > ${{fetch("release_path")}}/BUILT`);
    }});
}});
after("deploy:updated", "app:build");

task("app:note", "Write through the linked log dir", || {{
    on("all", |host| run(`echo "deployed $(cat ${{fetch("current_path")}}/VERSION)" >> ${{fetch("current_path")}}/log/deploys.log`));
}});
after("deploy:published", "app:note");
{hook}"#,
        repo = app.bare.display()
    )
}

fn lab() -> Lab {
    let lab = Lab::builder().names(&HOSTS).start();
    for h in HOSTS {
        let secrets = lab.host(h).root_dir.join("shop/shared/config/secrets.yml");
        fs::create_dir_all(secrets.parent().unwrap()).unwrap();
        fs::write(secrets, format!("token: {h}\n")).unwrap();
    }
    lab
}

fn tether(dir: &Dir, lab: &Lab, args: &[&str]) -> Output {
    Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(args)
        .run()
}

/// `deploy` with a fixed release name.
fn deploy(dir: &Dir, lab: &Lab, release: &str, extra: &[&str]) -> Output {
    let ts = format!("release_timestamp={release}");
    let mut args = vec!["deploy", "-s", &ts];
    args.extend_from_slice(extra);
    tether(dir, lab, &args)
}

/// A command tether's messages tell the user to run: `tether -F LAB_CONFIG ARGS`, as these
/// tests run tether (`ARGS` with this run's other options first).
fn said_command(lab: &Lab, args: &str) -> String {
    format!("tether -F {} {args}", lab.ssh_config().display())
}

fn shop(lab: &Lab, host: &str) -> PathBuf {
    lab.host(host).root_dir.join("shop")
}

fn releases(lab: &Lab, host: &str) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(shop(lab, host).join("releases")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Makes `current` on `host` a link whose text is `to`, as a hand or another tool leaves it.
fn point_current(lab: &Lab, host: &str, to: &str) {
    let link = shop(lab, host).join("current");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(to, &link).unwrap();
}

/// Copies release `from` of `host` to `to` in its releases/, as it is (its marker too).
fn copy_release(lab: &Lab, host: &str, from: &str, to: &str) {
    let releases = shop(lab, host).join("releases");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(releases.join(from))
        .arg(releases.join(to))
        .status()
        .unwrap()
        .success();
    assert!(ok, "{host}: cp -a {from} {to}");
}

/// Where `current` points on `host` (the link's text; it is absolute on the host).
fn current(lab: &Lab, host: &str) -> Option<String> {
    fs::read_link(shop(lab, host).join("current"))
        .ok()
        .map(|p| p.display().to_string())
}

fn release_file(lab: &Lab, host: &str, release: &str, file: &str) -> String {
    fs::read_to_string(shop(lab, host).join("releases").join(release).join(file))
        .unwrap_or_else(|e| panic!("{host}: releases/{release}/{file}: {e}"))
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `current` on each of `hosts` leads to `release` (as tether writes the link).
fn assert_current(lab: &Lab, hosts: &[&str], release: &str, say: &str) {
    for h in hosts {
        assert_eq!(
            current(lab, h).as_deref(),
            Some(format!("/srv/shop/releases/{release}").as_str()),
            "{h}\n{say}"
        );
    }
}

/// Every host holds `release` alone, `current` leading to it, no lock: as a failed run that
/// cleaned up after itself left them (`say` for the failure message).
fn assert_only(lab: &Lab, release: &str, say: &str) {
    assert_unlocked(lab);
    assert_current(lab, &HOSTS, release, say);
    for h in HOSTS {
        assert_eq!(releases(lab, h), [release], "{h}\n{say}");
    }
}

/// Runs `hint`, a command tether told the user to run (`tether ...`), as given, from `dir`,
/// with this build's tether and no TETHER_SSH_CONFIG: it must carry what it needs.
/// `deploy:unlock -s 'unlock_holder=LINE'`, LINE the holder line of the lock on `host` (this
/// run's, left behind): how the command that clears what a run left names its lock.
fn unlock_own(lab: &Lab, host: &str) -> String {
    let lock = fs::read_to_string(shop(lab, host).join("deploy.lock")).unwrap();
    let holder = lock.lines().next().unwrap_or_default();
    format!(
        "deploy:unlock -s {}",
        tether::command::quote(&format!("unlock_holder={holder}"))
    )
}

fn run_hint(dir: &Dir, hint: &str) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_tether"));
    let args = hint
        .strip_prefix("tether")
        .unwrap_or_else(|| panic!("not a tether command: {hint}"));
    Command::new("sh")
        .arg("-c")
        .arg(format!("exec {}{args}", bin.display()))
        .current_dir(&dir.path)
        .env_remove("TETHER_SSH_CONFIG")
        .output()
        .unwrap()
}

fn assert_unlocked(lab: &Lab) {
    for h in HOSTS {
        let lock = shop(lab, h).join("deploy.lock");
        assert!(!lock.exists(), "{h}: lock left behind: {}", read(lock));
    }
}

/// Whether `release` on `host` carries tether's completeness marker, saying complete (not
/// "building" or "publishing").
fn complete(lab: &Lab, host: &str, release: &str) -> bool {
    let marker = shop(lab, host)
        .join("releases")
        .join(release)
        .join(".tether-complete");
    fs::read_to_string(marker).is_ok_and(|m| {
        let first = m.lines().next().unwrap_or("");
        !first.ends_with(" building")
            && !first.ends_with(" publishing")
            && !first.ends_with(" unlogged")
    })
}

/// Runs `script` with sh in `host`'s mount namespace (where its /srv is mounted), as root:
/// mounts that only that host sees (a full disk, a read-only /srv). Returns its stdout.
fn in_host(lab: &Lab, host: &str, script: &str) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &lab.host(host).pid.to_string(), "-m", "--"])
        .args(["sh", "-c", script])
        .output()
        .expect("run nsenter");
    assert!(out.status.success(), "{host}: {script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the test recipe's build step (`sleep N` with N > 0) is running on `host`.
/// A deploy of `release` (with `extra` arguments) whose build holds for 30 s, once its build
/// step runs on every host.
fn building(dir: &Dir, lab: &Lab, release: &str, extra: &[&str]) -> std::process::Child {
    let timestamp = format!("release_timestamp={release}");
    let mut args = extra.to_vec();
    args.extend(["deploy", "-s", &timestamp, "-s", "hold_seconds=30"]);
    let run = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&args)
        .spawn();
    wait_until("the build step did not start", || {
        HOSTS.iter().all(|h| build_running(lab, h))
    });
    run
}

/// SIGKILLs the `sleep`s (builds) left running on `host`.
fn kill_sleeps(lab: &Lab, host: &str) {
    for pid in lab.host_pids(host) {
        if fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0")) {
            support::net::signal(pid, support::net::SIGKILL);
        }
    }
}

fn build_running(lab: &Lab, host: &str) -> bool {
    // Whole seconds: the supervisor's own `sleep 0.2` between two looks at the output is not a
    // build.
    lab.host_pids(host).iter().any(|pid| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with(b"sleep\0") && !c.contains(&b'.'))
    })
}

/// Puts an `rm` first in `host`'s PATH that, given an argument matching the shell pattern
/// `pattern`, runs `first` (with `$a` that argument) and hangs (`sleep 3N`, N = `tag`) rather
/// than remove anything: an `rm` stopped part way, at a moment the test picks. Returns once it
/// hangs is up to [`rm_hangs`]; [`unhang`] puts the host back.
fn hang_rm(lab: &Lab, host: &str, pattern: &str, first: &str, tag: u32) {
    shadow(
        lab,
        host,
        "rm",
        &format!(
            "for a; do case $a in {pattern}) {first} exec sleep 3{tag};; esac; done\n\
             exec /bin/rm \"$@\"\n"
        ),
    );
}

/// Puts a sh script `body` first in `host`'s PATH as the command `name`; [`unshadow`] puts
/// the host's PATH back.
fn shadow(lab: &Lab, host: &str, name: &str, body: &str) {
    let bin = lab.dir().join(format!("shadowed-{host}"));
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join(name), format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(
        bin.join(name),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    lab.set_env(host, &[("PATH", &path)]);
}

/// Whether the `rm` of [`hang_rm`] with `tag` hangs on `host`.
fn rm_hangs(lab: &Lab, host: &str, tag: u32) -> bool {
    let cmdline = format!("sleep\x003{tag}\x00");
    lab.host_pids(host)
        .iter()
        .any(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline.as_bytes()))
}

/// Undoes [`shadow`] on `host`: its PATH as before.
/// Makes the switch of `current` fail on `host` (its `mv` onto `current` fails, `mv: I/O
/// error`): after it succeeded on the other hosts. [`unshadow`] undoes it.
fn break_switch(lab: &Lab, host: &str) {
    shadow(
        lab,
        host,
        "mv",
        "for a; do case $a in */current) echo 'mv: I/O error' >&2; exit 1;; esac; done\n\
         exec /bin/mv \"$@\"\n",
    );
}

fn unshadow(lab: &Lab, host: &str) {
    lab.set_env(host, &[("PATH", "/usr/local/bin:/usr/bin:/bin")]);
}

/// Undoes [`hang_rm`] on `host`: its PATH as before, the hanging `rm` ended.
fn unhang(lab: &Lab, host: &str, tag: u32) {
    unshadow(lab, host);
    lab.signal_processes(host, &format!("sleep 3{tag}"), libc::SIGTERM);
}

/// Waits (20 s at most) until `ready` holds.
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Panics, listing the differences, unless `root` is as `before` (a `snapshot`) recorded it.
fn assert_unchanged(root: &Path, before: &[(PathBuf, String)], what: &str) {
    let now = snapshot(root);
    let gone: Vec<_> = before.iter().filter(|e| !now.contains(e)).collect();
    let new: Vec<_> = now.iter().filter(|e| !before.contains(e)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "{what}: {} changed\n  was: {gone:?}\n  now: {new:?}",
        root.display()
    );
}

/// Every entry under `root` with what it holds (file content, link target, "dir"), sorted:
/// equal snapshots mean a run changed nothing there.
fn snapshot(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                "dir".to_string()
            } else {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            };
            out.push((path, what));
        }
    }
    out.sort();
    out
}

#[test]
fn deploys_twice_to_four_hosts_with_shared_linked_dirs() {
    let lab = lab();
    let dir = Dir::new("twice");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let v1 = git(&app.work, &["rev-parse", "HEAD"]);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    let v2 = app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[])
        .status(0)
        .stdout_contains("▶ deploy:symlink:release");

    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000002"],
            "{h}"
        );
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000002"),
            "{h}"
        );
        assert_eq!(release_file(&lab, h, "20250101000001", "VERSION"), "v1\n");
        assert_eq!(release_file(&lab, h, "20250101000002", "VERSION"), "v2\n");
        assert_eq!(
            release_file(&lab, h, "20250101000001", "REVISION"),
            format!("{v1}\n")
        );
        assert_eq!(
            release_file(&lab, h, "20250101000002", "REVISION"),
            format!("{v2}\n")
        );
        assert_eq!(release_file(&lab, h, "20250101000002", "BUILT"), "built\n");
        for r in ["20250101000001", "20250101000002"] {
            let release = shop(&lab, h).join("releases").join(r);
            for (link, target) in [
                ("log", "/srv/shop/shared/log"),
                ("public/uploads", "/srv/shop/shared/public/uploads"),
                ("config/secrets.yml", "/srv/shop/shared/config/secrets.yml"),
            ] {
                assert_eq!(
                    fs::read_link(release.join(link)).ok(),
                    Some(PathBuf::from(target)),
                    "{h}: releases/{r}/{link}"
                );
            }
        }
        // Both releases wrote through `log` into one shared directory.
        assert_eq!(
            read(shop(&lab, h).join("shared/log/deploys.log")),
            "deployed v1\ndeployed v2\n"
        );
        assert!(shop(&lab, h).join("repo/HEAD").exists(), "{h}: no mirror");
        assert_eq!(
            read(shop(&lab, h).join("revisions.log")),
            format!(
                "Branch main (at {v1}) deployed as release 20250101000001 by {user}\n\
                 Branch main (at {v2}) deployed as release 20250101000002 by {user}\n",
                user = local_user()
            )
        );
        assert!(!lab.host(h).root_dir.join("failure-hook.log").exists());
    }
    assert_unlocked(&lab);

    // deploy:releases lists them per host, marking current; hosts alike share one block.
    tether(&dir, &lab, &["deploy:releases"])
        .status(0)
        .stdout_contains(&format!(
        "web1, web2, resque1, resque2:\n  20250101000001 {v1}\n  20250101000002 {v2}  <- current\n"
    ));
}

fn local_user() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
                .trim()
                .to_string()
        });
    let machine = read(PathBuf::from("/proc/sys/kernel/hostname"));
    format!("{user}@{}", machine.trim())
}

#[test]
fn the_release_timestamp_is_utc_and_the_same_on_every_host() {
    let lab = lab();
    let dir = Dir::new("timestamp");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let before = utc_now();
    tether(&dir, &lab, &["deploy"]).status(0);
    let after = utc_now();
    let names = releases(&lab, "web1");
    assert_eq!(names.len(), 1, "{names:?}");
    let name = &names[0];
    assert!(
        name.len() == 14 && name.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert!(
        before.as_str() <= name.as_str() && name.as_str() <= after.as_str(),
        "{before} <= {name} <= {after}"
    );
    for h in HOSTS {
        assert_eq!(&releases(&lab, h), &names, "{h}");
    }
}

fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y%m%d%H%M%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn rollback_goes_back_and_refuses_when_there_is_nothing_before() {
    let lab = lab();
    let dir = Dir::new("rollback");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    deploy(&dir, &lab, "20250101000002", &[]).status(0);

    tether(&dir, &lab, &["deploy:rollback"])
        .status(0)
        .stdout_contains("▶ deploy:reverting");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
        // The rolled-back release is gone.
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
        assert!(
            read(shop(&lab, h).join("revisions.log")).ends_with(&format!(
                "{} rolled back to release 20250101000001\n",
                local_user()
            ))
        );
        // Hooks after deploy:published run on a rollback too.
        assert_eq!(
            read(shop(&lab, h).join("shared/log/deploys.log")),
            "deployed v1\ndeployed v2\ndeployed v1\n"
        );
    }
    assert_unlocked(&lab);

    // Nothing before the only release: refused, nothing changed.
    let out = tether(&dir, &lab, &["deploy:rollback"]);
    out.status(1)
        .stderr_contains("cannot roll back:\n  web1, web2, resque1, resque2: no release before the current one (20250101000001)")
        .stderr_contains("in task `deploy:reverting`");
    // A named release that does not exist: refused too.
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20240101000000"],
    )
    .status(1)
    .stderr_contains("release 20240101000000 does not exist");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001")
        );
        assert_eq!(releases(&lab, h), ["20250101000001"]);
    }
    assert_unlocked(&lab);

    // -s rollback_release=NAME picks an older release than the previous one.
    app.commit("v3");
    deploy(&dir, &lab, "20250101000003", &[]).status(0);
    app.commit("v4");
    deploy(&dir, &lab, "20250101000004", &[]).status(0);
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000001"],
    )
    .status(0)
    .stdout_contains("removed the release rolled back from (newer than release 20250101000001) on web1, web2, resque1, resque2: 20250101000004\n");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001")
        );
        assert_eq!(releases(&lab, h), ["20250101000001", "20250101000003"]);
    }
    // Forward, to a newer release: the one it leaves is older, a good release, and kept, as
    // Capistrano's cleanup_rollback removes only the newest release (stop 34 tester: the
    // release current left was removed, exit 0, and no rollback was possible any more).
    tether(
        &dir,
        &lab,
        &["deploy:rollback", "-s", "rollback_release=20250101000003"],
    )
    .status(0)
    .stdout_lacks("removed the release rolled back from");
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000003")
        );
        assert_eq!(releases(&lab, h), ["20250101000001", "20250101000003"]);
    }
    tether(&dir, &lab, &["deploy:rollback"]).status(0);
    assert_current(&lab, &HOSTS, "20250101000001", "");
}

#[test]
fn a_step_failing_on_one_host_publishes_nothing_anywhere() {
    let lab = lab();
    let dir = Dir::new("fail");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    app.commit("v2");
    let out = deploy(
        &dir,
        &lab,
        "20250101000002",
        &["-s", "fail_on=web2", "-s", "hold_seconds=1"],
    );
    out.status(1)
        .stderr_contains(
            "web2: `echo 'build broke on purpose' >&2; exit 7` failed with exit status 7",
        )
        .stderr_contains("build broke on purpose")
        .stderr_contains("in task `app:build`")
        .stdout_contains("release 20250101000002 removed from every host");
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
        assert_eq!(
            read(lab.host(h).root_dir.join("failure-hook.log")),
            "failure hook ran\n",
            "{h}"
        );
        assert_eq!(read(shop(&lab, h).join("revisions.log")).lines().count(), 1);
    }
    assert_unlocked(&lab);
    // The next deploy goes through.
    deploy(&dir, &lab, "20250101000003", &[]).status(0);
    for h in HOSTS {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000003")
        );
    }
}

#[test]
fn a_switch_failing_on_one_host_puts_current_back_everywhere() {
    let lab = lab();
    let dir = Dir::new("switch");
    let app = App::new(&dir);
    recipe(&dir, &app);
    // web2 has never been deployed by tether, and its `mv` fails on `current`: the switch
    // fails there after it succeeded elsewhere. (A directory where `current` goes is refused
    // by deploy:check, before the build.)
    deploy(
        &dir,
        &lab,
        "20250101000001",
        &["--hosts", "web1,resque1,resque2"],
    )
    .status(0);
    break_switch(&lab, "web2");
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    unshadow(&lab, "web2");
    out.status(1)
        .stderr_contains("mv: I/O error")
        .stderr_contains("in task `deploy:symlink:release`");
    for h in ["web1", "resque1", "resque2"] {
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
    }
    assert!(fs::symlink_metadata(shop(&lab, "web2").join("current")).is_err());
    assert!(releases(&lab, "web2").is_empty());
    for h in HOSTS {
        let leftovers: Vec<_> = fs::read_dir(shop(&lab, h))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".current"))
            .collect();
        assert!(leftovers.is_empty(), "{h}: {leftovers:?}");
    }
    assert_unlocked(&lab);
}

/// A host whose `mv` fails leaves no release without its marker: the release directory made
/// for the deploy is removed where its "building" marker cannot be put in place (stop 45
/// tester t58: the directory stayed, unmarked, which the next deploy took for an unlogged
/// release and the clean-up command tether named kept).
#[test]
fn a_release_whose_marker_cannot_be_written_is_not_left_behind() {
    for tool in ["mv", "rm"] {
        a_release_whose_marker_cannot_be_written(tool);
    }
}

/// With `tool` failing on web2 (stop 46 tester t62, `rm`: deploy:failed then said an
/// unfinished release was left there, which was gone).
fn a_release_whose_marker_cannot_be_written(tool: &str) {
    let lab = lab();
    let dir = Dir::new(&format!("marker-{tool}"));
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[]).status(0);
    shadow(
        &lab,
        "web2",
        tool,
        &format!("echo '{tool}: I/O error' >&2\nexit 1\n"),
    );
    app.commit("v2");
    let out = deploy(&dir, &lab, "20250101000002", &[]);
    unshadow(&lab, "web2");
    out.status(1)
        .stderr_contains(&format!("{tool}: I/O error"))
        .stdout_lacks("unfinished release")
        .stderr_lacks("unfinished release");
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}\n{}", out.stderr);
        assert_eq!(
            current(&lab, h).as_deref(),
            Some("/srv/shop/releases/20250101000001"),
            "{h}"
        );
    }
    if tool == "rm" {
        // The unlock's own `rm` failed: the lock is left, and said to be; cleared by hand here.
        out.stdout_contains("web2: lock /srv/shop/deploy.lock (this run's)");
        for e in fs::read_dir(shop(&lab, "web2")).unwrap() {
            let path = e.unwrap().path();
            if path.to_string_lossy().contains("deploy.lock") {
                fs::remove_file(path).unwrap();
            }
        }
    }
    assert_unlocked(&lab);
    // The next deploy goes through, with no word of an unlogged release.
    let out = deploy(&dir, &lab, "20250101000003", &[]);
    out.status(0).stdout_lacks("unlogged");
    for h in HOSTS {
        assert_eq!(
            releases(&lab, h),
            ["20250101000001", "20250101000003"],
            "{h}"
        );
    }
}

#[test]
fn the_lock_refuses_a_concurrent_deploy_and_unlock_forces_it() {
    let lab = lab();
    let dir = Dir::new("lock");
    let app = App::new(&dir);
    recipe(&dir, &app);
    let first = Tether::new()
        .current_dir(&dir.path)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "deploy",
            "-s",
            "release_timestamp=20250101000001",
            "-s",
            "local_user=alice@laptop",
            "-s",
            "hold_seconds=4",
        ])
        .spawn();
    // Wait until the first deploy holds the lock everywhere.
    let started = Instant::now();
    while !HOSTS
        .iter()
        .all(|h| shop(&lab, h).join("deploy.lock").exists())
    {
        assert!(started.elapsed() < Duration::from_secs(20), "no lock taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = deploy(&dir, &lab, "20250101000002", &[]);
    second
        .status(1)
        .stderr_contains("another deploy holds the lock (/srv/shop/deploy.lock):\n  web1, web2, resque1, resque2: locked by alice@laptop since ")
        .stderr_contains(" UTC (release 20250101000001)\n")
        .stderr_contains(&format!("`{}` removes the lock", said_command(&lab, "deploy:unlock")));
    // The refused deploy left the holder's lock alone and created nothing.
    for h in HOSTS {
        assert!(
            read(shop(&lab, h).join("deploy.lock")).starts_with("alice@laptop since"),
            "{h}"
        );
        assert!(!releases(&lab, h).contains(&"20250101000002".to_string()));
    }
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_unlocked(&lab);
    for h in HOSTS {
        assert_eq!(releases(&lab, h), ["20250101000001"], "{h}");
    }
    // The refused deploy ran no step: its hook before deploy:check wrote nothing into shared/.
    let written_by = |h: &str| read(shop(&lab, h).join("shared/config/written-by.log"));
    for h in HOSTS {
        assert_eq!(written_by(h), "20250101000001\n", "{h}");
    }

    // A stale lock (its deploy died) is removed by deploy:unlock, whoever holds it.
    fs::write(
        shop(&lab, "resque1").join("deploy.lock"),
        "bob@ci since 2024-12-31 23:00:00 UTC (release 20241231230000)\n",
    )
    .unwrap();
    deploy(&dir, &lab, "20250101000003", &[])
        .status(1)
        .stderr_contains("resque1: locked by bob@ci since 2024-12-31 23:00:00 UTC");
    assert!(shop(&lab, "resque1").join("deploy.lock").exists());
    tether(&dir, &lab, &["deploy:unlock"])
        .status(0)
        .stdout_contains("resque1 | removing the lock of bob@ci since 2024-12-31 23:00:00 UTC");
    assert_unlocked(&lab);
    deploy(&dir, &lab, "20250101000004", &[]).status(0);
    for h in HOSTS {
        assert_eq!(written_by(h), "20250101000001\n20250101000004\n", "{h}");
    }
}

#[test]
fn linked_files_must_exist_before_a_deploy() {
    let lab = lab();
    fs::remove_file(shop(&lab, "resque2").join("shared/config/secrets.yml")).unwrap();
    let dir = Dir::new("linked");
    let app = App::new(&dir);
    recipe(&dir, &app);
    deploy(&dir, &lab, "20250101000001", &[])
        .status(1)
        .stderr_contains(
            "resque2: linked_files missing in /srv/shop/shared: [\"config/secrets.yml\"]",
        );
    for h in HOSTS {
        assert!(releases(&lab, h).is_empty(), "{h}");
        assert!(current(&lab, h).is_none(), "{h}");
    }
    assert_unlocked(&lab);

    // A directory where a linked file belongs, a file where a linked dir belongs, a link to
    // nothing: each is named as what it is, not as "missing".
    let shared = |h: &str| shop(&lab, h).join("shared");
    fs::create_dir_all(shared("resque2").join("config/secrets.yml")).unwrap();
    // (The refused deploy above made the linked dirs already.)
    fs::remove_dir(shared("web1").join("public/uploads")).unwrap();
    fs::write(shared("web1").join("public/uploads"), "a file\n").unwrap();
    fs::remove_file(shared("web2").join("config/secrets.yml")).unwrap();
    std::os::unix::fs::symlink("/nowhere", shared("web2").join("config/secrets.yml")).unwrap();
    fs::remove_dir(shared("resque1").join("log")).unwrap();
    std::os::unix::fs::symlink("/nowhere", shared("resque1").join("log")).unwrap();
    // Each said once, as what it is (stop 34 tester: a link to nothing was "a file", and
    // mkdir's failure on it said again as "cannot create the directories").
    deploy(&dir, &lab, "20250101000001", &[])
        .status(1)
        .stderr_contains("resque1: linked_dirs entry \"log\" in /srv/shop/shared is a symbolic link to nothing")
        .stderr_lacks("cannot create the directories")
        .stderr_contains("resque2: linked_files entry \"config/secrets.yml\" is a directory in /srv/shop/shared: a linked file must be a file (put directories in linked_dirs)")
        .stderr_contains("web1: linked_dirs entry \"public/uploads\" is a file in /srv/shop/shared, not a directory (put files in linked_files)")
        .stderr_contains("web2: linked_files entry \"config/secrets.yml\" in /srv/shop/shared is a symbolic link to nothing")
        .stderr_lacks("missing");
    for h in HOSTS {
        assert!(releases(&lab, h).is_empty(), "{h}");
    }
    assert!(shared("resque2").join("config/secrets.yml").is_dir());
    assert_eq!(read(shared("web1").join("public/uploads")), "a file\n");
    assert_unlocked(&lab);
}

/// deploy_to, shared/ or releases/ itself no directory is said as what it is, not as mkdir's
/// words and every linked file "missing" (stop 47 tester t63: `shared` a file gave three
/// lines of mkdir's on one, then `linked_files missing ...; create them before deploying`).
#[test]
fn a_deploy_directory_that_is_no_directory_is_said_as_what_it_is() {
    let lab = Lab::builder().names(&["web1", "web2", "web3"]).start();
    let dir = Dir::new("places");
    dir.write("site/index.html", "hello\n");
    dir.write(
        "deploy.rhai",
        r#"
import "deploy" as deploy;
set("application", "site");
set("deploy_to", "/srv/site");
set("strategy", "copy");
set("copy_source", "site");
set("linked_files", ["config/db.yml"]);
for h in ["web1", "web2", "web3"] { server(h, #{ roles: ["web"] }); }
"#,
    );
    let site = |h: &str| lab.host(h).root_dir.join("site");
    for h in ["web1", "web2", "web3"] {
        fs::create_dir_all(site(h).join("shared/config")).unwrap();
        fs::write(site(h).join("shared/config/db.yml"), "db\n").unwrap();
    }
    fs::remove_dir_all(site("web1").join("shared")).unwrap();
    fs::write(site("web1").join("shared"), "a file\n").unwrap();
    fs::remove_dir_all(site("web2").join("shared")).unwrap();
    std::os::unix::fs::symlink("/nowhere", site("web2").join("shared")).unwrap();
    fs::write(site("web3").join("releases"), "a file\n").unwrap();
    let out = tether(&dir, &lab, &["deploy"]);
    out.status(1)
        .stderr_contains("web1: /srv/site/shared is a file, not a directory: tether keeps")
        .stderr_contains("web2: /srv/site/shared is a symbolic link to nothing: tether keeps")
        .stderr_contains("web3: /srv/site/releases is a file, not a directory: tether keeps")
        .stderr_lacks("cannot create the directories")
        .stderr_lacks("missing");
    assert_eq!(read(site("web1").join("shared")), "a file\n");
    assert_eq!(read(site("web3").join("releases")), "a file\n");

    // A link to a file and a FIFO are said as what they are (stop 47 tester t64: "a file" and
    // "neither a directory nor a file").
    fs::remove_file(site("web1").join("shared")).unwrap();
    fs::write(site("web1").join("afile"), "a file\n").unwrap();
    std::os::unix::fs::symlink("/srv/site/afile", site("web1").join("shared")).unwrap();
    fs::remove_file(site("web3").join("releases")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(site("web3").join("releases"))
        .status()
        .unwrap();
    assert!(fifo.success());
    fs::create_dir_all(site("web1").join("releases")).unwrap();
    tether(&dir, &lab, &["deploy"])
        .status(1)
        .stderr_contains(
            "web1: /srv/site/shared is a symbolic link to something that is not a directory: ",
        )
        .stderr_contains("web3: /srv/site/releases is a FIFO, not a directory: ")
        .stderr_lacks("missing");
}

/// The copy strategy leaves out the run's own log (and its `.1`) by its path, where it lies in
/// `copy_source`, and nothing else: files of the same name elsewhere in the application are
/// shipped (stop 41 tester t39: every file named as the log, anywhere, was left out, exit 0).
#[test]
fn the_copy_strategy_leaves_out_the_run_log_by_its_path_only() {
    let lab = Lab::builder().names(&["web1"]).start();
    let dir = Dir::new("copy-log");
    for f in [
        "site/index.html",
        "site/docs/deploy.log",
        "site/docs/deploy.log.1",
        "site/docs/tether.log",
        "site/sub/logs/deploy.log",
        "site/tether.log.1",
        "site/logs/deploy.log.1",
        "site/logs/[x].log",
        "site/secret",
        "site/sub/secret",
    ] {
        dir.write(f, &format!("{f}\n"));
    }
    dir.write(
        "deploy.rhai",
        r#"
import "deploy" as deploy;
set("application", "site");
set("deploy_to", "/srv/site");
set("strategy", "copy");
set("copy_source", "site");
set("copy_exclude", [".git", "/secret"]);
server("web1", #{ roles: ["web"] });
"#,
    );
    let release = |r: &str| lab.host("web1").root_dir.join("site/releases").join(r);
    let shipped = |r: &str, f: &str| release(r).join(f).exists();
    // The log inside copy_source, at site/logs/deploy.log.
    tether(
        &dir,
        &lab,
        &[
            "deploy",
            "-s",
            "release_timestamp=20250101000001",
            "-s",
            "log_file=site/logs/deploy.log",
        ],
    )
    .status(0);
    assert!(dir.path.join("site/logs/deploy.log").exists());
    // `/secret`: at copy_source's root only (stop 41 tester t42: it matched nothing).
    for f in ["logs/deploy.log", "logs/deploy.log.1", "secret"] {
        assert!(!shipped("20250101000001", f), "{f} shipped");
    }
    assert!(shipped("20250101000001", "sub/secret"));
    for f in [
        "index.html",
        "docs/deploy.log",
        "docs/deploy.log.1",
        "docs/tether.log",
        "sub/logs/deploy.log",
        "tether.log.1",
        "logs/[x].log",
    ] {
        assert!(shipped("20250101000001", f), "{f} left out");
    }
    // A link into it as the log (stop 41 tester t42: the link's target, this run's own log,
    // was shipped).
    std::os::unix::fs::symlink("site/logs/linked.log", dir.path.join("tlog")).unwrap();
    tether(
        &dir,
        &lab,
        &[
            "deploy",
            "-s",
            "release_timestamp=20250101000003",
            "-s",
            "log_file=tlog",
        ],
    )
    .status(0);
    assert!(dir.path.join("site/logs/linked.log").exists());
    assert!(
        !shipped("20250101000003", "logs/linked.log"),
        "the linked log shipped"
    );
    assert!(shipped("20250101000003", "docs/deploy.log"));
    // The log outside it (log/tether.log, the default): everything is shipped.
    tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000004"],
    )
    .status(0);
    for f in ["docs/tether.log", "tether.log.1", "docs/deploy.log"] {
        assert!(shipped("20250101000004", f), "{f} left out");
    }

    // Patterns that leave out every file, and an empty source, ship no release of nothing
    // (stop 41 tester t42: copy_exclude ["*"] published one, exit 0); current stays.
    fs::create_dir_all(dir.path.join("empty")).unwrap();
    let current = || fs::read_link(release("").parent().unwrap().join("current")).unwrap();
    let cases = [
        ("all", "site", r#"["*"]"#),
        ("top", "site", r#"["./*", ".git"]"#),
        ("names", "site", r#"["*.*", "s*", "l*", "d*"]"#),
        ("empty", "empty", r#"[".git"]"#),
    ];
    let mut recipe = read(dir.path.join("deploy.rhai"));
    for (stage, source, patterns) in cases {
        recipe += &format!(
            r#"stage("{stage}", || {{ set("copy_source", "{source}"); set("copy_exclude", {patterns}); }});
"#
        );
    }
    dir.write("deploy.rhai", &recipe);
    for (stage, source, patterns) in cases {
        let said = patterns;
        tether(
            &dir,
            &lab,
            &[stage, "deploy", "-s", "release_timestamp=20250101000005"],
        )
        .status(1)
        .stderr_contains(&format!(
            "copy_source {source} leaves no file to deploy with copy_exclude {said}: a release \
             of nothing is refused"
        ));
        assert!(!release("20250101000005").exists(), "{stage}");
        assert_eq!(
            current(),
            PathBuf::from("/srv/site/releases/20250101000004"),
            "{stage}"
        );
    }

    // An anchored pattern's wildcards do not match `/`, as rsync's and .gitignore's do not
    // (stop 42 tester t43: "/*.yml" left out sub/a.yml too); a pattern that names nothing tar
    // could leave out ("sub/", "/", "") is refused before anything connects.
    for f in [
        "site/a.yml",
        "site/sub/a.yml",
        "site/deep/a.yml",
        "site/deep/sub/b.txt",
        "site/x/deep/sub/c.txt",
    ] {
        dir.write(f, "x\n");
    }
    recipe += r#"stage("anchored", || { set("copy_exclude", [".git", "/*.yml", "/deep/sub"]); });
stage("dirsonly", || { set("copy_source", "dirsonly"); set("copy_exclude", ["*.yml"]); });
"#;
    // Entries no name of the archive could match (stop 42 tester t46: "//x.yml", "/./x.yml",
    // "/x.yml/." and "a\" left out nothing; "/**/x.yml" only a/x.yml).
    let refused = [
        ".",
        "sub/",
        "/",
        "",
        "//x.yml",
        "/./x.yml",
        "/x.yml/.",
        "a/../b",
        "a\\\\",
        "/**/x.yml",
    ];
    for (i, entry) in refused.iter().enumerate() {
        recipe += &format!(
            "stage(\"e{i}\", || {{ set(\"copy_exclude\", [\".git\", \"{entry}\"]); }});\n"
        );
    }
    dir.write("deploy.rhai", &recipe);
    // A source of empty directories only ships nothing either (stop 42 tester t46: published).
    dir.write("dirsonly/a/b/x.yml", "x\n");
    fs::create_dir_all(dir.path.join("dirsonly/c")).unwrap();
    tether(
        &dir,
        &lab,
        &[
            "dirsonly",
            "deploy",
            "-s",
            "release_timestamp=20250101000007",
        ],
    )
    .status(1)
    .stderr_contains("copy_source dirsonly leaves no file to deploy with copy_exclude [\"*.yml\"]");
    tether(
        &dir,
        &lab,
        &[
            "anchored",
            "deploy",
            "-s",
            "release_timestamp=20250101000006",
        ],
    )
    .status(0);
    assert!(!shipped("20250101000006", "a.yml"));
    assert!(!shipped("20250101000006", "deep/sub/b.txt"));
    for f in ["sub/a.yml", "deep/a.yml", "x/deep/sub/c.txt", "index.html"] {
        assert!(shipped("20250101000006", f), "{f} left out");
    }
    // The archive is the run's own, in a directory of its own: a `copy_archive` given names
    // no file tether writes or removes (stop 42 tester t46: `-s copy_archive=deploy.rhai`
    // removed the recipe, exit 0).
    tether(
        &dir,
        &lab,
        &[
            "anchored",
            "deploy",
            "-s",
            "release_timestamp=20250101000008",
            "-s",
            "copy_archive=deploy.rhai",
        ],
    )
    .status(0);
    assert_eq!(read(dir.path.join("deploy.rhai")), recipe);
    assert!(shipped("20250101000008", "index.html"));
    for (i, entry) in refused.iter().enumerate() {
        let out = tether(
            &dir,
            &lab,
            &[
                &format!("e{i}"),
                "deploy",
                "-s",
                "release_timestamp=20250101000007",
            ],
        );
        out.status(4).stderr_contains(&format!(
            "copy_exclude entry \"{}\" ",
            entry.replace("\\\\", "\\")
        ));
        assert!(
            out.stderr.contains("names nothing tar could leave out")
                || out.stderr.contains("escapes nothing")
                || out.stderr.contains("which tar reads as *"),
            "{entry}: {}",
            out.stderr
        );
    }
}

/// A pattern's `*` or `?` never matches the archive's root: its names are the source's own
/// (`a.txt`, `sub/a.txt`), never `./a.txt` (stop 43 tester t51: "*/a.txt", "*/keep.md" and
/// "?/a.txt" left out the top-level file too, exit 0, and ".*" every file); one that begins
/// with `./` matches at the root only, as one that begins with `/`.
#[test]
fn copy_exclude_patterns_never_match_the_archives_root() {
    let lab = Lab::builder().names(&["web1"]).start();
    let dir = Dir::new("copy-root");
    let files = [
        "a.txt",
        "keep.md",
        "sub/a.txt",
        "deep/sub/a.txt",
        ".hidden",
        "sub/.env",
        "-r.txt",
        "x/a.txt",
    ];
    for f in files {
        dir.write(&format!("site/{f}"), &format!("{f}\n"));
    }
    let cases: [(&str, &[&str]); 6] = [
        ("*/a.txt", &["sub/a.txt", "deep/sub/a.txt", "x/a.txt"]),
        ("*/keep.md", &[]),
        ("?/a.txt", &["x/a.txt"]),
        (".*", &[".hidden", "sub/.env"]),
        ("./a.txt", &["a.txt"]),
        ("-r.txt", &["-r.txt"]),
    ];
    let mut recipe = r#"
import "deploy" as deploy;
set("application", "site");
set("deploy_to", "/srv/site");
set("strategy", "copy");
set("copy_source", "site");
server("web1", #{ roles: ["web"] });
"#
    .to_string();
    for (i, (pattern, _)) in cases.iter().enumerate() {
        recipe += &format!("stage(\"p{i}\", || {{ set(\"copy_exclude\", [\"{pattern}\"]); }});\n");
    }
    dir.write("deploy.rhai", &recipe);
    for (i, (pattern, left_out)) in cases.iter().enumerate() {
        let name = format!("202501010000{:02}", i + 1);
        tether(
            &dir,
            &lab,
            &[
                &format!("p{i}"),
                "deploy",
                "-s",
                &format!("release_timestamp={name}"),
            ],
        )
        .status(0);
        let release = lab.host("web1").root_dir.join("site/releases").join(&name);
        for f in files {
            assert_eq!(
                release.join(f).exists(),
                !left_out.contains(&f),
                "{pattern}: {f}"
            );
        }
    }
}

#[test]
fn copy_strategy_ships_a_local_directory_or_git_tree() {
    let lab = lab();
    let dir = Dir::new("copy");
    dir.write("site/index.html", "<title>copied</title>\n");
    dir.write("site/css/site.css", "body {}\n");
    dir.write("site/.git/HEAD", "not shipped\n");
    dir.write(
        "deploy.rhai",
        r#"
import "deploy" as deploy;
set("application", "site");
set("deploy_to", "/srv/site");
set("strategy", "copy");
set("copy_source", "site");
server("web1", #{ roles: ["web"] });
server("web2", #{ roles: ["web"] });
"#,
    );
    let site = |h: &str| lab.host(h).root_dir.join("site");
    let out = tether(
        &dir,
        &lab,
        &["deploy", "-s", "release_timestamp=20250101000001"],
    );
    out.status(0);
    for h in ["web1", "web2"] {
        let release = site(h).join("releases/20250101000001");
        assert_eq!(read(release.join("index.html")), "<title>copied</title>\n");
        assert_eq!(read(release.join("css/site.css")), "body {}\n");
        assert!(!release.join(".git").exists(), "{h}: copy_exclude ignored");
        assert!(!release.join(".tether-copy.tar.gz").exists());
        let revision = read(release.join("REVISION"));
        assert!(
            revision.starts_with("sha256:") && revision.len() == 20,
            "{revision:?}"
        );
        assert_eq!(
            fs::read_link(site(h).join("current")).ok(),
            Some(PathBuf::from("/srv/site/releases/20250101000001"))
        );
        assert!(read(site(h).join("revisions.log")).starts_with("Copy of site (at sha256:"));
    }

    // copy_tree: a commit of a local repository instead of the directory on disk.
    let app = App::new(&dir);
    fs::write(app.work.join("VERSION"), "uncommitted\n").unwrap();
    let head = git(&app.work, &["rev-parse", "HEAD"]);
    tether(
        &dir,
        &lab,
        &[
            "deploy",
            "-s",
            "release_timestamp=20250101000002",
            "-s",
            "copy_source=app",
            "-s",
            "copy_tree=main",
        ],
    )
    .status(0);
    for h in ["web1", "web2"] {
        let release = site(h).join("releases/20250101000002");
        assert_eq!(read(release.join("VERSION")), "v1\n");
        assert_eq!(read(release.join("REVISION")), format!("{head}\n"));
    }

    // A source entry named as the uploaded archive would be unpacked over it and removed with
    // it: refused by name, on disk and in a tree, before anything is uploaded (stop 33 re-test:
    // the file was missing from the release, exit 0).
    dir.write("site/.tether-copy.tar.gz", "the application's own\n");
    fs::write(
        app.work.join(".tether-copy.tar.gz"),
        "the application's own\n",
    )
    .unwrap();
    app.commit("v2 with the name");
    for extra in [&[][..], &["-s", "copy_source=app", "-s", "copy_tree=main"]] {
        tether(
            &dir,
            &lab,
            &[&["deploy", "-s", "release_timestamp=20250101000003"][..], extra].concat(),
        )
        .status(1)
        .stderr_contains("holds .tether-copy.tar.gz at its root, the name tether uploads its archive under into each release");
        for h in ["web1", "web2"] {
            assert!(!site(h).join("releases/20250101000003").exists(), "{h}");
        }
    }
}

/// copy_tree's name is resolved as git:create_release resolves `branch`, so that the archive
/// is of the commit it says: a name that is a tag and a branch of other commits, or a branch
/// and the abbreviation of another commit, or nothing, is refused before anything is made
/// (git's archive took the tag without a word); a tree given by its id is archived, its id the
/// revision (stop 42 tester t49: git's own "Needed a single revision", after the archive).
#[test]
fn copy_tree_names_one_commit_or_tree_or_is_refused() {
    let lab = Lab::builder().names(&["web1"]).start();
    let dir = Dir::new("copy-tree-refs");
    let app = App::new(&dir);
    dir.write(
        "deploy.rhai",
        r#"
import "deploy" as deploy;
set("application", "app");
set("deploy_to", "/srv/app");
set("strategy", "copy");
set("copy_source", "app");
server("web1", #{ roles: ["web"] });
"#,
    );
    let v1 = git(&app.work, &["rev-parse", "HEAD"]);
    git(&app.work, &["tag", "v", &v1]);
    let v2 = app.commit("v2");
    git(&app.work, &["branch", "v", &v2]);
    let short = &v1[..7];
    git(&app.work, &["branch", short, &v2]);
    let root = lab.host("web1").root_dir.join("app");
    let mut n = 0;
    let mut run = |tree: &str| {
        n += 1;
        let release = format!("202501010000{n:02}");
        let out = tether(
            &dir,
            &lab,
            &[
                "deploy",
                "-s",
                &format!("release_timestamp={release}"),
                "-s",
                &format!("copy_tree={tree}"),
            ],
        );
        (out, root.join("releases").join(release))
    };
    for (tree, said) in [
        ("v", format!("copy_tree v: v is both a tag (at {v1}) and a branch (at {v2}) in copy_source app: write refs/tags/v or refs/heads/v")),
        ("v:public", format!("copy_tree v:public: v is both a tag (at {v1}) and a branch (at {v2}) in copy_source app: write refs/tags/v:public or refs/heads/v:public")),
        (short, format!("copy_tree {short}: {short} is both a branch (at {v2}) and an abbreviation of commit {v1} in copy_source app: write refs/heads/{short} or the full commit id")),
        ("nosuch", "copy_tree nosuch: nosuch is no branch, tag, commit or tree of copy_source app".to_string()),
        // A path after ":" that is no directory of the commit (stop 43 tester t51: `main:.`
        // failed in git archive, after the check).
        ("main:.", format!("copy_tree main:.: \".\" names nothing in {v2} of copy_source app")),
        ("main:VERSION", format!("copy_tree main:VERSION: \"VERSION\" is a blob, not a directory, in {v2} of copy_source app")),
    ] {
        let (out, release) = run(tree);
        out.status(1)
            .stderr_contains(&said)
            .stderr_contains("in task `copy:check`")
            .stdout_lacks("▶ copy:create_release");
        assert!(!release.exists(), "{tree}");
    }
    // Refused before the lock: a name, never one of git's expressions.
    for (tree, said) in [
        (
            ":public",
            "copy_tree \":public\" names no commit before its \":\": give a branch",
        ),
        (
            "main~1",
            "copy_tree \"main~1\" contains \"~\": give a branch",
        ),
        (
            "main^:public",
            "copy_tree \"main^:public\": \"main^\" contains \"^\": give a branch",
        ),
        ("@{-1}", "copy_tree \"@{-1}\" contains \"@{\": give"),
    ] {
        let (out, _) = run(tree);
        out.status(4)
            .stderr_contains(said)
            .stdout_lacks("▶ deploy:lock");
    }
    for (tree, version, revision) in [
        ("refs/tags/v", "v1", v1.clone()),
        ("refs/heads/v", "v2", v2.clone()),
        ("main:./", "v2", v2.clone()),
        (&v1[..12], "v1", v1.clone()),
    ] {
        let (out, release) = run(tree);
        out.status(0);
        assert_eq!(
            read(release.join("VERSION")),
            format!("{version}\n"),
            "{tree}"
        );
        assert_eq!(
            read(release.join("REVISION")),
            format!("{revision}\n"),
            "{tree}"
        );
    }
    // A tree by its id: that tree, named as the revision.
    let tree = git(&app.work, &["rev-parse", &format!("{v1}^{{tree}}")]);
    let (out, release) = run(&tree);
    out.status(0);
    assert_eq!(read(release.join("VERSION")), "v1\n");
    assert_eq!(read(release.join("REVISION")), format!("{tree}\n"));
    let public = git(&app.work, &["rev-parse", &format!("{v2}:public")]);
    let (out, release) = run(&public);
    out.status(0);
    assert_eq!(read(release.join("index.html")), "<h1>shop</h1>\n");
    assert!(!release.join("VERSION").exists());
}

#[test]
fn the_static_site_example_recipe_deploys_with_the_copy_strategy() {
    let lab = Lab::builder().names(&["web1", "web2"]).start();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/recipes/static-site.rhai");
    let run = |args: &[&str]| {
        Tether::new()
            .ssh_config(&lab.ssh_config())
            .arg("-f")
            .arg(recipe.to_str().unwrap())
            // The recipe is in the source tree: no run log there.
            .args(&["-s", "log_file="])
            .args(args)
            .run()
    };
    run(&["deploy"]).status(0).stdout_contains("▶ site:verify");
    let shipped =
        read(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/recipes/static-site/index.html"));
    for h in ["web1", "web2"] {
        let site = lab.host(h).root_dir.join("site");
        let current = fs::read_link(site.join("current")).unwrap();
        let name = current.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            read(site.join("releases").join(&name).join("index.html")),
            shipped
        );
        assert_eq!(
            fs::read_link(site.join("releases").join(&name).join("logs")).ok(),
            Some(PathBuf::from("/srv/site/shared/logs"))
        );
    }
}

/// The plan of a deploy, with the timestamp and the user fixed.
fn plan(dir: &Dir, extra: &[&str]) -> Output {
    let mut args = vec![
        "-n",
        "deploy",
        "-s",
        "release_timestamp=20250102030405",
        "-s",
        "local_user=ci@build",
    ];
    args.extend_from_slice(extra);
    // No ssh config: the host names resolve to nothing, which a dry run never notices.
    Tether::new()
        .current_dir(&dir.path)
        .args(&args)
        .env("HOME", dir.path.to_str().unwrap())
        .run()
}

#[test]
fn dry_run_plans_a_deploy_stably_without_connecting() {
    let dir = Dir::new("plan");
    dir.write(
        "deploy.rhai",
        r#"
import "deploy" as deploy;
set("application", "shop");
set("repo_url", "/srv/git/shop.git");
set("deploy_to", "/srv/shop");
set("linked_dirs", ["log"]);
server("web1", #{ roles: ["web"] });
server("worker1", #{ roles: ["worker"] });
"#,
    );
    // web1 and worker1 resolve to nothing here: a plan that tried to reach them would fail.
    let out = plan(&dir, &[]);
    out.status(0);
    // Stable but for the time the lock is taken, by this machine's clock.
    let timeless = |plan: &str| {
        plan.split("ci@build since ")
            .enumerate()
            .map(|(i, part)| match (i, part.split_once(" UTC (")) {
                (0, _) | (_, None) => part.to_string(),
                (_, Some((_, rest))) => format!("<time>{rest}"),
            })
            .collect::<String>()
    };
    assert_eq!(
        timeless(&plan(&dir, &[]).stdout),
        timeless(&out.stdout),
        "the plan is not stable"
    );
    let expected = [
        "▶ deploy:prepare",
        "▶ deploy:lock",
        "▶ deploy:starting",
        "▶ deploy:check",
        "web1    | $ git ls-remote --heads /srv/git/shop.git >/dev/null",
        "web1    | $ bad=; if [ -e /srv/shop/current ] && [ ! -L /srv/shop/current ]; then if [ -d /srv/shop/current ]; then echo current_dir; else echo current_other; fi; fi; if [ -L /srv/shop ] && [ ! -e /srv/shop ]; then echo place_dangling 0; bad=1; elif [ -e /srv/shop ] && [ ! -d /srv/shop ]; then if [ -L /srv/shop ]; then echo place_link 0; elif [ -f /srv/shop ]; then echo place_file 0; elif [ -p /srv/shop ]; then echo place_fifo 0; else echo place_other 0; fi; bad=1; fi; if [ -L /srv/shop/releases ] && [ ! -e /srv/shop/releases ]; then echo place_dangling 1; bad=1; elif [ -e /srv/shop/releases ] && [ ! -d /srv/shop/releases ]; then if [ -L /srv/shop/releases ]; then echo place_link 1; elif [ -f /srv/shop/releases ]; then echo place_file 1; elif [ -p /srv/shop/releases ]; then echo place_fifo 1; else echo place_other 1; fi; bad=1; fi; if [ -L /srv/shop/shared ] && [ ! -e /srv/shop/shared ]; then echo place_dangling 2; bad=1; elif [ -e /srv/shop/shared ] && [ ! -d /srv/shop/shared ]; then if [ -L /srv/shop/shared ]; then echo place_link 2; elif [ -f /srv/shop/shared ]; then echo place_file 2; elif [ -p /srv/shop/shared ]; then echo place_fifo 2; else echo place_other 2; fi; bad=1; fi; if [ -L /srv/shop/shared/log ] && [ ! -e /srv/shop/shared/log ]; then printf 'dir_dangling %s\\n' log; bad=1; elif [ -e /srv/shop/shared/log ] && [ ! -d /srv/shop/shared/log ]; then if [ -f /srv/shop/shared/log ]; then printf 'dir_not_dir %s\\n' log; else printf 'dir_other %s\\n' log; fi; bad=1; fi; if [ -n \"$bad\" ]; then :; elif ! e=$(mkdir -p /srv/shop/releases /srv/shop/shared /srv/shop/shared/log 2>&1); then printf 'mkdir %s\\n' \"$(printf '%s' \"$e\" | tr '\\n' ' ')\"; elif [ ! -w /srv/shop ]; then echo unwritable; elif [ ! -w /srv/shop/releases ]; then echo releases_unwritable; fi; if [ -f /srv/shop/revisions.log ] && [ ! -L /srv/shop/revisions.log ]; then [ -w /srv/shop/revisions.log ] || echo log_unwritable; elif [ ! -e /srv/shop/revisions.log ] && [ ! -L /srv/shop/revisions.log ] && [ -d /srv/shop ] && [ ! -w /srv/shop ]; then echo log_unwritable; fi",
        "▶ deploy:updating",
        "worker1 | $ umask o-w && mkdir -p /srv/shop/releases && mkdir /srv/shop/releases/20250102030405 && { umask o-w && { rm -f /srv/shop/releases/20250102030405/.tether-complete.new && printf 'release %s building\\n' 20250102030405 > /srv/shop/releases/20250102030405/.tether-complete.new && { [ ! -L /srv/shop/releases/20250102030405/.tether-complete ] || rm -f /srv/shop/releases/20250102030405/.tether-complete; } && [ ! -d /srv/shop/releases/20250102030405/.tether-complete ] && mv -f /srv/shop/releases/20250102030405/.tether-complete.new /srv/shop/releases/20250102030405/.tether-complete; } || { rm -f /srv/shop/releases/20250102030405/.tether-complete.new; false; } || { rmdir /srv/shop/releases/20250102030405; false; }; }",
        "▶ git:create_release",
        "▶ git:update",
        "web1    | $ g=/srv/shop/repo; w=main; v() { git --git-dir=\"$g\" rev-parse --verify --quiet \"$1^{commit}\"; }; case $w in refs/*) v \"$w\" || echo missing; exit 0;; esac; h=$(v \"refs/heads/$w\"); t=$(v \"refs/tags/$w\"); if [ -n \"$h\" ] && [ -n \"$t\" ] && [ \"$h\" != \"$t\" ]; then printf 'ambiguous %s %s\\n' \"$h\" \"$t\"; exit 0; fi; s=$h; k=branch; [ -n \"$s\" ] || { s=$t; k=tag; }; c=; n=0; case $w in *[!0-9a-f]*) ;; *) if [ ${#w} -ge 4 ] && [ ${#w} -le 40 ]; then for o in $(git --git-dir=\"$g\" rev-parse --disambiguate=\"$w\" 2>/dev/null); do if [ \"$(git --git-dir=\"$g\" cat-file -t \"$o\" 2>/dev/null)\" = commit ]; then c=$o; n=$((n + 1)); fi; done; fi;; esac; if [ -n \"$s\" ] && [ -n \"$c\" ] && [ \"$s\" != \"$c\" ]; then printf 'abbreviates %s %s %s\\n' \"$k\" \"$s\" \"$c\"; exit 0; fi; if [ -n \"$s\" ]; then printf '%s\\n' \"$s\"; exit 0; fi; if [ \"$n\" -gt 1 ]; then echo 'several'; exit 0; fi; if [ -n \"$c\" ]; then printf '%s\\n' \"$c\"; exit 0; fi; if [ \"$w\" = HEAD ]; then v HEAD && exit 0; fi; echo missing",
        "▶ deploy:set_current_revision",
        // A directory the source brought where tether writes its own file is refused first.
        "worker1 | $ { [ ! -d /srv/shop/releases/20250102030405/.tether-complete ] || [ -L /srv/shop/releases/20250102030405/.tether-complete ] || { printf '%s\\n' '/srv/shop/releases/20250102030405/.tether-complete is a directory the source brought, where tether writes its own .tether-complete file into each release: rename it in the source (nothing was replaced)' >&2; exit 1; }; } && { { [ ! -e /srv/shop/releases/20250102030405/BAD_RELEASE ] && [ ! -L /srv/shop/releases/20250102030405/BAD_RELEASE ]; } || { printf '%s\\n' '/srv/shop/releases/20250102030405/BAD_RELEASE came with the source: it marks a release bad (Deployer'\\''s rollback leaves it), so this release would never count as one; remove it from the source (nothing was published)' >&2; exit 1; }; } && umask o-w && { rm -f /srv/shop/releases/20250102030405/.tether-complete.new && printf 'release %s building\\n' 20250102030405 > /srv/shop/releases/20250102030405/.tether-complete.new && { [ ! -L /srv/shop/releases/20250102030405/.tether-complete ] || rm -f /srv/shop/releases/20250102030405/.tether-complete; } && [ ! -d /srv/shop/releases/20250102030405/.tether-complete ] && mv -f /srv/shop/releases/20250102030405/.tether-complete.new /srv/shop/releases/20250102030405/.tether-complete; } || { rm -f /srv/shop/releases/20250102030405/.tether-complete.new; false; } && { [ ! -d /srv/shop/releases/20250102030405/REVISION ] || [ -L /srv/shop/releases/20250102030405/REVISION ] || { printf '%s\\n' '/srv/shop/releases/20250102030405/REVISION is a directory the source brought, where tether writes its own REVISION file into each release: rename it in the source (nothing was replaced)' >&2; exit 1; }; } && rm -f /srv/shop/releases/20250102030405/REVISION && umask o-w && printf '%s\\n' main > /srv/shop/releases/20250102030405/REVISION",
        "▶ deploy:symlink:shared",
        // A linked path is replaced only inside the release, links followed.
        "worker1 | $ d=$(dirname /srv/shop/releases/20250102030405/log); while [ ! -e \"$d\" ] && [ ! -L \"$d\" ]; do d=$(dirname \"$d\"); done; r=$(cd -P /srv/shop/releases/20250102030405 && pwd) && p=$(cd -P \"$d\" && pwd) || exit 1; case \"$p/\" in \"$r\"/*) ;; *) printf '%s: its directory is %s once links are followed, outside the release: not replaced\\n' /srv/shop/releases/20250102030405/log \"$p\" >&2; exit 1;; esac; if [ \"$d\" = \"$(dirname /srv/shop/releases/20250102030405/log)\" ] && [ \"$p\" = \"$r\" ]; then case \"$(basename /srv/shop/releases/20250102030405/log)\" in REVISION|.tether-complete) printf '%s: its directory is the release itself once links are followed, so it names %s, which tether writes into each release: not replaced\\n' /srv/shop/releases/20250102030405/log \"$(basename /srv/shop/releases/20250102030405/log)\" >&2; exit 1;; BAD_RELEASE) printf '%s: its directory is the release itself once links are followed, so it names BAD_RELEASE, which marks a release bad: not replaced\\n' /srv/shop/releases/20250102030405/log >&2; exit 1;; esac; fi; rm -rf /srv/shop/releases/20250102030405/log && mkdir -p \"$(dirname /srv/shop/releases/20250102030405/log)\" && ln -s /srv/shop/shared/log /srv/shop/releases/20250102030405/log",
        "▶ deploy:symlink:release",
        "worker1 | $ if [ ! -d /srv/shop/releases/20250102030405 ]; then echo '/srv/shop/releases/20250102030405 is missing' >&2; exit 1; fi; p=; if [ -L /srv/shop/current ]; then p=$(readlink /srv/shop/current) || { printf '%s\\n' 'cannot read where /srv/shop/current points (readlink failed)' >&2; exit 1; }; fi; umask o-w && { rm -f /srv/shop/releases/20250102030405/.tether-complete.new && printf 'release %s publishing\\n%s\\n' 20250102030405 \"$p\" > /srv/shop/releases/20250102030405/.tether-complete.new && { [ ! -L /srv/shop/releases/20250102030405/.tether-complete ] || rm -f /srv/shop/releases/20250102030405/.tether-complete; } && [ ! -d /srv/shop/releases/20250102030405/.tether-complete ] && mv -f /srv/shop/releases/20250102030405/.tether-complete.new /srv/shop/releases/20250102030405/.tether-complete; } || { rm -f /srv/shop/releases/20250102030405/.tether-complete.new; false; }",
        "worker1 | $ rm -f /srv/shop/.current-20250102030405 && ln -s /srv/shop/releases/20250102030405 /srv/shop/.current-20250102030405 && mv -T /srv/shop/.current-20250102030405 /srv/shop/current",
        "worker1 | $ umask o-w && { rm -f /srv/shop/releases/20250102030405/.tether-complete.new && printf 'release %s complete\\n' 20250102030405 > /srv/shop/releases/20250102030405/.tether-complete.new && { [ ! -L /srv/shop/releases/20250102030405/.tether-complete ] || rm -f /srv/shop/releases/20250102030405/.tether-complete; } && [ ! -d /srv/shop/releases/20250102030405/.tether-complete ] && mv -f /srv/shop/releases/20250102030405/.tether-complete.new /srv/shop/releases/20250102030405/.tether-complete; } || { rm -f /srv/shop/releases/20250102030405/.tether-complete.new; false; }",
        "▶ deploy:cleanup",
        "▶ deploy:log_revision",
        "web1    | $ if [ -L /srv/shop/revisions.log ]; then printf '%s is a symbolic link: not appended to\\n' /srv/shop/revisions.log >&2; exit 1; fi; umask o-w && printf '%s\\n' 'Branch main (at main) deployed as release 20250102030405 by ci@build' >> /srv/shop/revisions.log",
        "▶ deploy:unlock",
        "▶ deploy:finished",
    ];
    assert_in_order(&out, &expected);
    // The lock: the holder's details written to a file of the shell's own, then linked into
    // place (atomic; never seen empty).
    // Since when: this machine's clock as the lock is taken, not the release's timestamp.
    out.stdout_contains("env printf '%s\\nid %s\\n' 'ci@build since ")
        .stdout_contains(" UTC (release 20250102030405)' \"$$\" > \"$t\"")
        .stdout_contains("while ! e=$(ln -T \"$t\" \"$l\" 2>&1)");
    // The mirror is cloned in a dry run of a first deploy, but the plan cannot know which:
    // the command does both.
    out.stdout_contains("git --git-dir=\"$g\" fetch --quiet --prune $un origin; else mkdir -p \"$(dirname \"$g\")\" && git clone --mirror --quiet -- /srv/git/shop.git \"$g\"; fi");

    // The copy strategy lists the upload of the archive the run would make.
    let out = plan(&dir, &["-s", "strategy=copy", "-s", "copy_source=."]);
    out.status(0);
    // In a directory of the run's own (its name: tether's pid and a time), never made, in
    // the temporary directory tether was given (`TMPDIR`, as the tests' own).
    let tmp = std::env::temp_dir();
    let made = out
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "local | $ mkdir -m 700 {}/tether-run-",
                tmp.display()
            ))
        })
        .unwrap_or_else(|| panic!("{}", out.stdout));
    let run_dir = format!("{}/tether-run-{made}", tmp.display());
    // The run log's own paths are found by a local command when the run makes the archive:
    // the plan shows that command, and an archive without them.
    out.stdout_contains(&format!("local | $ a={run_dir}/shop-20250102030405.tar.gz; case $a in /*) ;; *) a=$PWD/$a ;; esac; cd . && set -- && for f in .[!.]* ..?* *; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then set -- \"$@\" \"$f\"; fi; done && if [ $# -eq 0 ]; then echo 'copy_source . leaves no file to deploy with copy_exclude [\".git\"]: a release of nothing is refused' >&2; exit 1; fi && tar -czf \"$a\" --exclude=.git --anchored --no-wildcards --exclude=.tether-complete -- \"$@\""))
        .stdout_contains(&format!("web1    | upload {run_dir}/shop-20250102030405.tar.gz -> /srv/shop/releases/20250102030405/.tether-copy.tar.gz (made during the run)"))
        .stdout_contains(&format!("local | $ rm -rf {run_dir}"));
    assert!(!Path::new(&run_dir).exists());
}

/// The lines of `out` that are exactly `expected`, in this order (others may come between).
fn assert_in_order(out: &Output, expected: &[&str]) {
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut at = 0;
    for e in expected {
        match lines[at..].iter().position(|l| l == e) {
            Some(i) => at += i + 1,
            None => panic!("plan lacks (in this order) {e:?}\n{}", out.stdout),
        }
    }
}

#[test]
fn rails_and_systemd_modules_hook_into_deploy_and_rollback() {
    let dir = Dir::new("modules");
    dir.write(
        "deploy.rhai",
        r#"
import "deploy" as deploy;
import "rails" as rails;
import "systemd" as systemd;
set("application", "shop");
set("repo_url", "/srv/git/shop.git");
set("deploy_to", "/srv/shop");
set("systemd_units", #{ web: ["puma"], worker: ["sidekiq@1", "sidekiq@2"] });
server("web1", #{ roles: ["web", "app", "db"] });
server("worker1", #{ roles: ["app", "worker"] });
"#,
    );
    let out = plan(&dir, &[]);
    out.status(0);
    let release = "cd /srv/shop/releases/20250102030405 && export RAILS_ENV=production";
    let restart = |units: &str| {
        format!("systemctl restart {units} || {{ status=$?; systemctl status --no-pager --lines=20 {units} >&2; exit $status; }}")
    };
    assert_in_order(
        &out,
        &[
            "▶ bundler:install",
            &format!("worker1 | $ {release} && {{ bundle install --jobs 4 --quiet; }}"),
            "▶ deploy:updated",
            "▶ deploy:migrate",
            &format!("web1    | $ {release} && {{ bundle exec rake db:migrate; }}"),
            "▶ deploy:assets:precompile",
            &format!("web1    | $ {release} && {{ bundle exec rake assets:precompile; }}"),
            "▶ deploy:publishing",
            "▶ deploy:published",
            "▶ systemd:restart",
            &format!("web1    | $ {}", restart("puma")),
            &format!("worker1 | $ {}", restart("sidekiq@1 sidekiq@2")),
            "▶ deploy:finishing",
        ],
    );
    let worker_lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("worker1") && l.contains("rake"))
        .collect();
    assert!(worker_lines.is_empty(), "{worker_lines:?}");

    // A rollback restarts the units but builds nothing.
    let mut args = vec![
        "-n",
        "deploy:rollback",
        "-s",
        "rollback_release=20250101000001",
    ];
    args.extend_from_slice(&["-s", "release_timestamp=20250102030405"]);
    let out = Tether::new().current_dir(&dir.path).args(&args).run();
    out.status(0)
        .stdout_contains("▶ systemd:restart")
        .stdout_lacks("bundle")
        .stdout_lacks("git archive");
    assert_in_order(
        &out,
        &[
            "▶ deploy:reverting",
            "▶ deploy:symlink:release",
            "web1    | $ rm -f /srv/shop/.current-20250101000001 && ln -s /srv/shop/releases/20250101000001 /srv/shop/.current-20250101000001 && mv -T /srv/shop/.current-20250101000001 /srv/shop/current",
            "web1    | $ umask o-w && { rm -f /srv/shop/releases/20250101000001/.tether-complete.new && printf 'release %s complete\\n' 20250101000001 > /srv/shop/releases/20250101000001/.tether-complete.new && { [ ! -L /srv/shop/releases/20250101000001/.tether-complete ] || rm -f /srv/shop/releases/20250101000001/.tether-complete; } && [ ! -d /srv/shop/releases/20250101000001/.tether-complete ] && mv -f /srv/shop/releases/20250101000001/.tether-complete.new /srv/shop/releases/20250101000001/.tether-complete; } || { rm -f /srv/shop/releases/20250101000001/.tether-complete.new; false; } && rm -f /srv/shop/.tether-rollback",
            "▶ systemd:restart",
            "▶ deploy:finishing_rollback",
        ],
    );
}

/// The framework steps that run in the release run on the hosts that get one: a
/// `no_release` host of assets_roles, bundle_roles, npm_build_roles or composer_roles is
/// left out, as capistrano-rails runs `on release_roles(fetch(:assets_roles))` (stop 42
/// tester t48: the deploy failed at `cd` into the release on it, after the migrations ran);
/// a migration_role whose primary host gets no release is refused before anything changes.
#[test]
fn framework_steps_run_on_release_hosts_only() {
    let dir = Dir::new("modules-no-release");
    let recipe = |extra: &str| {
        format!(
            r#"
import "deploy" as deploy;
import "rails" as rails;
import "node" as node;
import "php" as php;
set("application", "shop");
set("repo_url", "/srv/git/shop.git");
set("deploy_to", "/srv/shop");
set("bundle_roles", ["web", "cdn"]);
set("npm_build_roles", ["cdn"]);
set("composer_roles", ["cdn", "app"]);
server("web1", #{{ roles: ["web", "app", "db"] }});
server("cdn1", #{{ roles: ["web", "cdn"], no_release: true }});
{extra}
"#
        )
    };
    dir.write("deploy.rhai", &recipe(""));
    let out = plan(&dir, &[]);
    out.status(0)
        .stdout_contains("web1 | $ cd /srv/shop/releases/20250102030405 && export RAILS_ENV=production && { bundle exec rake assets:precompile; }");
    let cdn: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("cdn1") && l.contains("releases/"))
        .collect();
    assert!(cdn.is_empty(), "{cdn:?}\n{}", out.stdout);
    dir.write(
        "deploy.rhai",
        &recipe(r#"server("db1", #{ roles: ["db"], no_release: true, primary: true });"#),
    );
    plan(&dir, &[]).status(4).stderr_contains(
        "migration_role db: its primary host db1 gets no release (marked no_release: true, or not of release_roles) to run db:migrate in",
    );
    // Nor a host release_roles leaves out (stop 42 tester t49: it ran db:migrate and
    // assets:precompile in a release it never got).
    dir.write(
        "deploy.rhai",
        &recipe(
            r#"set("release_roles", ["app"]);
server("web2", #{ roles: ["web", "cdn"] });"#,
        ),
    );
    let out = plan(&dir, &[]);
    out.status(0);
    let outside: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| (l.starts_with("cdn1") || l.starts_with("web2")) && l.contains("releases/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}\n{}", out.stdout);
    dir.write(
        "deploy.rhai",
        &recipe(
            r#"set("release_roles", ["app"]); server("db1", #{ roles: ["db"], primary: true });"#,
        ),
    );
    plan(&dir, &[])
        .status(4)
        .stderr_contains("migration_role db: its primary host db1 gets no release");
}

#[test]
fn fail_stops_the_run_as_a_failed_step_not_a_recipe_error() {
    let dir = Dir::new("fail-fn");
    dir.write(
        "deploy.rhai",
        "task(\"check:ready\", || {\n    fail(\"the release is not ready\");\n});\n",
    );
    Tether::new()
        .current_dir(&dir.path)
        .args(&["check:ready"])
        .run()
        .status(1)
        .stderr_contains(
            "error: the release is not ready\n  (at deploy.rhai:2:5, in task `check:ready`)",
        );
}

#[test]
fn demo_script_deploys_the_seed_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let out = Command::new(root.join("scripts/demo"))
        .env("TETHER_BIN", env!("CARGO_BIN_EXE_tether"))
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .args(["--precompile-seconds", "8", "--clean"])
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dump = format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "demo failed: {:?}\n{dump}",
        out.status
    );
    for expected in [
        "▶ deploy:assets:precompile",
        "workers restarted on release",
        "deploy finished",
        "current ->",
        "revisions.log",
    ] {
        assert!(
            stdout.contains(expected),
            "demo output lacks {expected:?}\n{dump}"
        );
    }
    // resque2's output, folded with resque1's when they print alike within the fold window.
    assert!(
        stdout.contains("resque[1-2] | ") || stdout.contains("resque2 | "),
        "{dump}"
    );
    // The idle resque hosts were kept alive: heartbeat lines are for -v, the summary counts
    // them. One login per host for the whole deploy: nothing was reconnected.
    assert!(
        stdout.lines().any(|l| l.contains("resque")
            && l.contains("one session, ")
            && !l.contains(" 0 heartbeats")),
        "{dump}"
    );
    assert!(!stdout.contains("~ idle, kept alive"), "{dump}");
    assert!(!stdout.contains("reconnected"), "{dump}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
