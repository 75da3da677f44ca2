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

/// Test users and their sudoers rules; removed on drop.
struct SudoUsers {
    with_password: String,
    nopasswd: String,
    sudoers: PathBuf,
    homes: PathBuf,
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
    fn create() -> SudoUsers {
        let pid = std::process::id();
        let users = SudoUsers {
            with_password: format!("tsp{pid}"),
            nopasswd: format!("tsn{pid}"),
            sudoers: PathBuf::from(format!("/etc/sudoers.d/tether-test-{pid}")),
            homes: std::env::temp_dir().join(format!("tether-sudo-{pid}")),
        };
        // From here on, Drop removes whatever was made.
        for user in [&users.with_password, &users.nopasswd] {
            let home = users.homes.join(user);
            sh(&format!(
                "mkdir -p {home} && useradd -d {home} -s /bin/sh {user} && chown {user} {home} \
                 && echo '{user}:{PASSWORD}' | chpasswd",
                home = home.display()
            ))
            .unwrap();
        }
        let rules = format!(
            "Defaults:{p} lecture=never\nDefaults:{n} lecture=never\n\
             {p} ALL=(ALL) ALL\n{n} ALL=(ALL) NOPASSWD: ALL\n",
            p = users.with_password,
            n = users.nopasswd
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
        for user in [&self.with_password, &self.nopasswd] {
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
    let users = SudoUsers::create();
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
        .stderr_contains("incorrect password attempt")
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
