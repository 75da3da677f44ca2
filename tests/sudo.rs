//! `as_user` and sudo passwords against real sshd and the real sudo.
//!
//! The lab hosts share /etc with this machine, so the test creates its own users (one whose
//! sudo wants a password, one with NOPASSWD) and a sudoers.d file, and removes them (and
//! sudo's lecture and timestamp records for them) when it ends, even on failure.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::lab::Lab;
use support::tether::{Output, Tether};

const PASSWORD: &str = "tether-S3cret-pw";

/// Test users and their sudoers rules; removed on drop. sudo logs each user's refusals to
/// `log` ("1 incorrect password attempt").
struct SudoUsers {
    with_password: String,
    nopasswd: String,
    /// Needs a password and a terminal (`Defaults requiretty`).
    tty: String,
    /// May run only `sh` as `nopasswd`, without a password (so not `kill`).
    only_sh: String,
    sudoers: PathBuf,
    homes: PathBuf,
    log: PathBuf,
}

fn sh(script: &str) -> Result<(), String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl SudoUsers {
    /// Users named after `tag` (one letter: each test its own) and this process.
    fn create(tag: &str) -> SudoUsers {
        let pid = std::process::id();
        let homes = std::env::temp_dir().join(format!("tether-sudo-{tag}{pid}"));
        let users = SudoUsers {
            with_password: format!("tsp{tag}{pid}"),
            nopasswd: format!("tsn{tag}{pid}"),
            tty: format!("tst{tag}{pid}"),
            only_sh: format!("tso{tag}{pid}"),
            sudoers: PathBuf::from(format!("/etc/sudoers.d/tether-test-{tag}{pid}")),
            log: homes.join("sudo.log"),
            homes,
        };
        // From here on, Drop removes whatever was made.
        std::fs::create_dir_all(&users.homes).unwrap();
        for user in [
            &users.with_password,
            &users.nopasswd,
            &users.tty,
            &users.only_sh,
        ] {
            let home = users.homes.join(user);
            sh(&format!(
                "mkdir -p {home} && useradd -d {home} -s /bin/sh {user} && chown {user} {home} \
                 && echo '{user}:{PASSWORD}' | chpasswd",
                home = home.display()
            ))
            .unwrap();
        }
        let rules = format!(
            "Defaults:{p}, {n}, {t}, {o} lecture=never, logfile={log}\nDefaults:{t} requiretty\n\
             {p} ALL=(ALL) ALL\n{n} ALL=(ALL) NOPASSWD: ALL\n{t} ALL=(ALL) ALL\n\
             {o} ALL=({n}) NOPASSWD: /bin/sh, /usr/bin/sh\n",
            p = users.with_password,
            n = users.nopasswd,
            t = users.tty,
            o = users.only_sh,
            log = users.log.display()
        );
        let staged = users.homes.join("sudoers");
        std::fs::write(&staged, rules).unwrap();
        sh(&format!(
            "visudo -cqf {s} && install -m 0440 -o root -g root {s} {d}",
            s = staged.display(),
            d = users.sudoers.display()
        ))
        .unwrap();
        users
    }
}

impl Drop for SudoUsers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        for user in [
            &self.with_password,
            &self.nopasswd,
            &self.tty,
            &self.only_sh,
        ] {
            // Processes of the user (none should be left), then the account.
            let _ = sh(&format!(
                "pkill -KILL -u {user}; userdel {user}; \
                 rm -rf /var/lib/sudo/lectured/{user} /run/sudo/ts/{user}"
            ));
        }
        let _ = std::fs::remove_dir_all(&self.homes);
    }
}

fn recipe(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("deploy.rhai"), text).unwrap();
}

fn tether(lab: &Lab, dir: &Path) -> Tether {
    Tether::new().ssh_config(&lab.ssh_config()).current_dir(dir)
}

fn never_shows_password(out: &Output) {
    assert!(
        !out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD),
        "the password leaked:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn as_user_with_and_without_a_sudo_password() {
    let users = SudoUsers::create("a");
    let lab = Lab::start(1);
    let dir = lab.dir().join("recipe");
    let p = &users.with_password;
    let n = &users.nopasswd;
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.conf"), "line one\nline two\n").unwrap();
    // The server holds the password in a file that a careless task prints.
    let pw_file = lab.host("host1").root_dir.join("pw");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    recipe(
        &dir,
        &format!(
            r#"
server("{p}@host1", #{{ roles: ["app"] }});
server("{n}@host1", #{{ roles: ["free"] }});
task("whoami", || {{
    on("app", |host| {{
        let me = capture("id -un");
        let them = as_user("root", || capture("id -un"));
        print(host.name + ": " + me + " -> " + them);
        as_user("root", || upload("app.conf", "/srv/app.conf"));
        print("owner: " + capture("stat -c %U /srv/app.conf"));
    }});
    as_user("nobody", || on("app", "echo fan-out as $(id -un)"));
}});
task("free", || {{
    on("free", |host| {{
        as_user("root", || upload("app.conf", "/srv/free.conf"));
        print("free: " + capture("cat /srv/free.conf | tr '\n' '|'") + " " + as_user("root", || capture("id -un")));
    }});
}});
task("leak", || {{
    on("app", |host| {{
        run("cat /srv/pw");
        as_user("root", || run("echo \"oops: $(cat /srv/pw)\" >&2; exit 3"));
    }});
}});
"#
        ),
    );

    // No password given: `sudo -n` fails at once, with a message that says what to do.
    let out = tether(&lab, &dir).arg("whoami").run();
    out.status(1)
        .stderr_contains("a password is required")
        .stderr_contains("sudo wants a password to run commands as `root`")
        .stderr_contains("TETHER_SUDO_PASSWORD")
        .stderr_contains("--ask-sudo-password");

    // Set but empty counts as unset, and the hint says it is empty (tester t128: it said to
    // set the variable, which was set).
    let out = tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", "")
        .arg("whoami")
        .run();
    out.status(1)
        .stderr_contains("a password is required")
        .stderr_contains("(it is set but empty here, which counts as unset)");

    // The password from the environment: fed on stdin through sudo's askpass.
    let out = tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", PASSWORD)
        .arg("whoami")
        .run();
    out.status(0)
        .stdout_contains(&format!("{p}@host1: {p} -> root"))
        .stdout_contains("owner: root")
        .stdout_contains("fan-out as nobody");
    never_shows_password(&out);
    assert_eq!(
        std::fs::read_to_string(lab.host("host1").root_dir.join("app.conf")).unwrap(),
        "line one\nline two\n"
    );

    // NOPASSWD: sudo never asks, and the password line reaches nothing (the upload is intact).
    let out = tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", PASSWORD)
        .arg("free")
        .run();
    out.status(0)
        .stdout_contains("free: line one|line two| root");
    never_shows_password(&out);

    // A wrong password: refused, and said so.
    let out = tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", "not-the-password")
        .arg("whoami")
        .run();
    out.status(1)
        .stderr_contains("1 incorrect password attempt")
        .stderr_contains("sudo refused the password given for `root`");

    // Whatever prints the password: masked in output lines, failure messages, JSON events.
    let out = tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", PASSWORD)
        .arg("leak")
        .run();
    out.status(1)
        .stdout_contains("| ********")
        .stdout_contains("oops: ********")
        .stderr_contains("oops: ********");
    never_shows_password(&out);
    let out = tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", PASSWORD)
        .args(&["--format", "json", "leak"])
        .run();
    out.status(1).stdout_contains("\"line\":\"********\"");
    never_shows_password(&out);

    // --ask-sudo-password without a terminal is a usage error naming the alternative.
    tether(&lab, &dir)
        .args(&["--ask-sudo-password", "whoami"])
        .run()
        .status(2)
        .stderr_contains("needs a terminal")
        .stderr_contains("TETHER_SUDO_PASSWORD");
    drop(users);
}

impl SudoUsers {
    /// How many refused passwords sudo logged, and whether any entry counts more than one.
    fn refusals(&self) -> (usize, bool) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let one = log.matches(" 1 incorrect password attempt").count();
        (one, log.matches("incorrect password attempt").count() > one)
    }
}

/// Regression (issue 18): a wrong password was fed to each of sudo's three prompts (three
/// failed attempts per host, an account lock under pam_faillock), and `requiretty` hosts
/// failed even with --pty.
#[test]
fn a_wrong_password_costs_one_attempt_per_host_and_requiretty_works_with_a_terminal() {
    let users = SudoUsers::create("b");
    let lab = Lab::start(2);
    let dir = lab.dir().join("recipe");
    let (p, t) = (&users.with_password, &users.tty);
    recipe(
        &dir,
        &format!(
            r#"
server("{p}@host1", #{{ roles: ["app"] }});
server("{p}@host2", #{{ roles: ["app"] }});
server("{t}@host1", #{{ roles: ["tty"] }});
task("root", || {{
    on("app", |host| print(host.name + " -> " + as_user("root", || capture("id -un"))));
}});
task("again", || {{
    on("app", |host| {{
        try {{ as_user("root", || run("true")); }} catch (e) {{ print("first attempt failed on " + host.name); }}
        as_user("root", || run("touch /srv/ran-anyway"));
    }});
}});
task("again_string", || as_user("root", || on("app", "touch /srv/ran-anyway")));
task("tty", || {{
    on("tty", |host| print("tty: " + as_user("root", || capture("id -un; tty >/dev/null && echo on-a-terminal"))));
    as_user("root", || on("tty", "echo fan-out as $(id -un)"));
}});
task("tty_option", || {{
    on("tty", #{{ pty: true }}, |host| print("option: " + as_user("root", || capture("id -un"))));
}});
"#
        ),
    );
    let run = |password: &str, args: &[&str]| {
        let out = tether(&lab, &dir)
            .env("TETHER_SUDO_PASSWORD", password)
            .args(args)
            .run();
        assert!(
            !out.stdout.contains(password) && !out.stderr.contains(password),
            "the password leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        out
    };

    // A wrong password: refused at its first attempt on each host, once.
    let started = std::time::Instant::now();
    let out = run("not-the-password", &["root"]);
    eprintln!("wrong password on 2 hosts: {:?}", started.elapsed());
    out.status(1)
        .stderr_contains("2 of 2 hosts failed")
        .stderr_contains("sudo: 1 incorrect password attempt")
        .stderr_contains(
            "sudo refused the password given for `root` (TETHER_SUDO_PASSWORD or \
             --ask-sudo-password): it is not the deploy user's password on this host. tether \
             offered it once and will not offer it to this host again in this run",
        )
        .stderr_lacks("2 incorrect password attempts")
        .stderr_lacks("3 incorrect password attempts");
    assert_eq!(users.refusals(), (2, false), "one attempt per host");

    // Caught and tried again in the same run: the password is not offered a second time.
    let out = run("not-the-password", &["again"]);
    out.status(1)
        .stdout_contains(&format!("first attempt failed on {p}@host1"))
        .stdout_contains(&format!("first attempt failed on {p}@host2"))
        .stderr_contains(&format!(
            "{p}@host2: as_user(\"root\") not run: sudo on {p}@host2 refused the sudo password \
             earlier in this run, and tether does not offer it again"
        ));
    assert_eq!(users.refusals(), (4, false), "one attempt per host and run");
    // The same for `on` with a command, in a run that refused it before.
    let out = run("not-the-password", &["root", "again_string"]);
    out.status(1);
    assert_eq!(users.refusals(), (6, false));
    for h in ["host1", "host2"] {
        assert!(!lab.host(h).root_dir.join("ran-anyway").exists(), "{h}");
    }

    // requiretty: without a terminal sudo refuses, and the hint names the way out.
    run(PASSWORD, &["tty"])
        .status(1)
        .stderr_contains("sorry, you must have a tty to run sudo")
        .stderr_contains("(`Defaults requiretty` in sudoers): run with --pty, or give the step a terminal with on(target, #{ pty: true }, ...)");
    // With --pty (or the step's pty option) the password is typed with the echo off: the
    // command runs, and neither the password nor its mask appears.
    let out = run(PASSWORD, &["--pty", "tty"]);
    out.status(0)
        .stdout_contains("tty: root\non-a-terminal")
        .stdout_contains("fan-out as root")
        .stdout_lacks("********");
    run(PASSWORD, &["tty_option"])
        .status(0)
        .stdout_contains("option: root")
        .stdout_lacks("********");
    assert_eq!(users.refusals(), (6, false));
    drop(users);
}

/// A stop reaches what `as_user` runs, or says it could not (fresh-eyes finding, stop 28: a
/// user other than root running `as_user("root", ..)`, its command given up at its timeout,
/// was said "stopped ... its process group was sent SIGTERM, and SIGKILL after 5 s" while
/// the root `sleep` ran on, orphaned: no signal of that user reaches another user's
/// processes, and `kill -0` took the group for gone). Where sudoers lets the user run `kill`
/// as that user without a password, the stop does so and the command ends; where not, the
/// failure says the command may still be running, as another user's. (Not on a
/// pseudo-terminal: there sudo's `use_pty`, Debian's default, runs the command in a terminal
/// of its own, outside the group, whatever the stop finds; a CI run saw the PTY case fail.)
#[test]
fn a_stop_reaches_what_as_user_runs_or_says_it_could_not() {
    let users = SudoUsers::create("k");
    let lab = Lab::start(1);
    let dir = lab.dir().join("recipe");
    let (n, o) = (&users.nopasswd, &users.only_sh);
    recipe(
        &dir,
        &format!(
            r#"
server("{n}@host1", #{{ roles: ["free"] }});
server("{o}@host1", #{{ roles: ["only"] }});
task("free", || {{
    on("free", #{{ timeout: 2 }}, |host| {{ as_user("root", || run("sleep 61; echo end")); }});
}});
task("only", || {{
    on("only", #{{ timeout: 2 }}, |host| {{ as_user("{n}", || run("sleep 62; echo end")); }});
}});
task("abort", || {{
    on(["only", "free"], |host| {{
        if host.has_role("free") {{ run("sleep 1; exit 3"); }}
        else {{ as_user("{n}", || run("sleep 63; echo end")); }}
    }});
}});
"#
        ),
    );
    let alive = |what: &str| lab.processes_where("host1", |c| c.contains(what));
    let end = |pids: &[u32]| {
        for &pid in pids {
            support::net::signal(pid, support::net::SIGKILL);
        }
    };
    let out = tether(&lab, &dir).args(&["free"]).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    out.status(1);
    assert!(text.contains("@host1 ~ stopped `"), "{text}");
    assert!(!text.contains("may still be running"), "{text}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(alive("sleep 61"), Vec::<u32>::new(), "{text}");

    let out = tether(&lab, &dir).args(&["only"]).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    let left = alive("sleep 62");
    end(&left);
    out.status(1);
    assert!(!left.is_empty(), "{text}");
    assert!(
        text.contains("sleep 62; echo end'` was not stopped on the host (its timeout passed)"),
        "{text}"
    );
    assert!(text.contains("run as another user"), "{text}");
    assert!(text.contains("they may still be running"), "{text}");

    // Stopped because another host of its step failed, it is said left running, not stopped
    // on the host (stop 39 tester t32: "(tether stopped it on the host)" while it ran on).
    let out = tether(&lab, &dir).args(&["abort"]).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    let left = alive("sleep 63");
    end(&left);
    out.status(1);
    assert!(!left.is_empty(), "{text}");
    assert!(
        text.contains(&format!(
            "{o}@host1: stopped waiting for `sudo -n -u {n} -- sh -c 'sleep 63; echo end'` \
             (tether could not stop it on the host: it may still be running): {n}@host1 failed"
        )),
        "{text}"
    );
    assert!(!text.contains("tether stopped it on the host"), "{text}");
}

/// `test` under `as_user` answers the condition, not sudo's refusal to run it (fresh-eyes
/// finding, stop 28: with sudo wanting a password, `as_user("root", || test("[ -f
/// /etc/passwd ]"))` was `false`, and the recipe could not tell a false condition from one
/// never checked). A refusal fails as `run` does, with its hint; a condition that does not
/// hold is still `false`.
#[test]
fn test_under_as_user_fails_when_sudo_refuses_rather_than_answering_false() {
    let users = SudoUsers::create("t");
    let lab = Lab::start(1);
    let dir = lab.dir().join("recipe");
    let (p, n) = (&users.with_password, &users.nopasswd);
    recipe(
        &dir,
        &format!(
            r#"
server("{p}@host1", #{{ roles: ["pw"] }});
server("{n}@host1", #{{ roles: ["free"] }});
task("free", || {{
    on("free", |host| {{
        print("exists: " + as_user("root", || test("[ -f /etc/passwd ]")));
        print("missing: " + as_user("root", || test("[ -f /nonexistent ]")));
    }});
}});
task("pw", || {{
    on("pw", |host| {{ print("answer: " + as_user("root", || test("[ -f /etc/passwd ]"))); }});
}});
"#
        ),
    );
    tether(&lab, &dir)
        .args(&["free"])
        .run()
        .status(0)
        .stdout_contains("exists: true")
        .stdout_contains("missing: false");
    let out = tether(&lab, &dir).args(&["pw"]).run();
    out.status(1)
        .stdout_lacks("answer:")
        .stderr_contains("sudo wants a password to run commands as `root`");

    // Refusals of other kinds, in sudo's words only (fresh-eyes finding: `as_user` of a user
    // the host does not have answered `false`): each fails, naming sudo's reason.
    for (user, says) in [
        ("no-such-user-t", "sudo: unknown user no-such-user-t"),
        ("#4000000000", "sudo: unknown user #4000000000"),
    ] {
        recipe(
            &dir,
            &format!(
                r#"
server("{n}@host1", #{{ roles: ["free"] }});
task("free", || {{
    on("free", |host| {{ print("answer: " + as_user("{user}", || test("true"))); }});
}});
"#
            ),
        );
        tether(&lab, &dir)
            .args(&["free"])
            .run()
            .status(1)
            .stdout_lacks("answer:")
            .stderr_contains(says)
            .stderr_contains(&format!("sudo did not run it as `{user}`"));
    }
}

/// A sudo password sudo would read otherwise than given is refused before anything runs,
/// naming the variable and not the password: one holding a newline or a carriage return
/// (sudo reads the password up to either; tester t128: the first line went to sudo and the
/// rest to the command's stdin), or one that is not UTF-8 (tether would have sent it changed).
#[test]
fn a_sudo_password_sudo_would_read_otherwise_is_refused() {
    use std::os::unix::ffi::OsStrExt as _;
    let long = format!("Sekrit{}", "x".repeat(1018));
    for (pw, why) in [
        ("Sekrit\nmore", "line"),
        ("Sekrit\r", "line"),
        ("\nSekrit", "line"),
        ("Sekrit\r\nmore", "line"),
        // Longer than sudo reads (tester t129: 1,100 characters, refused by sudo).
        (
            long.as_str(),
            "1024 bytes long: sudo reads at most 1023 bytes",
        ),
    ] {
        let out = Tether::new()
            .env("TETHER_SUDO_PASSWORD", pw)
            .args(&["hosts", "--hosts", "h1"])
            .run();
        out.status(2)
            .stderr_contains("TETHER_SUDO_PASSWORD")
            .stderr_contains(why);
        assert!(
            !out.stdout.contains("Sekrit") && !out.stderr.contains("Sekrit"),
            "{why}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    // A reader of JSON gets its error object, as for any other refusal before the run.
    let out = Tether::new()
        .env("TETHER_SUDO_PASSWORD", "Sekrit\nmore")
        .args(&["--format", "json", "hosts", "--hosts", "h1"])
        .run();
    out.status(2);
    let error: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["exit_code"], 2);
    assert!(!out.stdout.contains("Sekrit"));
    let out = Tether::new()
        .args(&["hosts", "--hosts", "h1"])
        .command()
        .env(
            "TETHER_SUDO_PASSWORD",
            std::ffi::OsStr::from_bytes(b"Sekrit\xff"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TETHER_SUDO_PASSWORD") && stderr.contains("UTF-8"),
        "{stderr}"
    );
    assert!(!stderr.contains("Sekrit"), "{stderr}");
}

/// A sudo password that a command's pseudo-terminal would change before sudo reads it (a
/// control character its line editing takes as a key: erase, kill the line, interrupt, end of
/// input...) is refused at the step, which sends nothing: sudo would read another password and
/// count a failed attempt toward an account lock (tester t129: `ab\x7fc` on a pty step was
/// refused by sudo, the hint saying it was not the user's password). Without a pty the same
/// password goes through sudo's askpass unchanged, and is sent.
#[test]
fn a_password_a_pty_would_change_is_refused_at_the_step() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("pty-password");
    let ran = lab.host("host1").root_dir.join("ran");
    recipe(
        &dir,
        r#"
server("host1", #{ roles: ["app"] });
task("pty", || { on("app", #{ pty: true }, |h| as_user("root", || run("touch /srv/ran"))); });
task("pty_string", || { as_user("root", || on("app", #{ pty: true }, "touch /srv/ran")); });
task("plain", || { on("app", |h| as_user("root", || run("echo sent"))); });
"#,
    );
    for key in [
        '\u{7f}', '\u{15}', '\u{3}', '\u{4}', '\u{17}', '\u{16}', '\u{1a}',
    ] {
        let password = format!("Sekrit{key}x");
        for task in ["pty", "pty_string"] {
            let out = tether(&lab, &dir)
                .env("TETHER_SUDO_PASSWORD", &password)
                .arg(task)
                .run();
            assert_ne!(out.status, 0, "{key:?} {task}");
            out.stderr_contains("the sudo password holds a control character");
            assert!(!ran.exists(), "{key:?} {task}: the command ran");
            assert!(!out.stderr.contains("Sekrit") && !out.stdout.contains("Sekrit"));
        }
    }
    // Root needs no password: sudo never reads it, and the command runs with it sent.
    tether(&lab, &dir)
        .env("TETHER_SUDO_PASSWORD", "Sekrit\u{7f}x")
        .arg("plain")
        .run()
        .status(0)
        .stdout_contains("sent");
}
