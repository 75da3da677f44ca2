//! Login shells as hosts really have them (issue 18): sshd runs every command through the
//! user's login shell, which may be sh, dash, bash, zsh, ksh, fish, tcsh or csh, and whose
//! start-up files may print (a banner in `~/.bashrc`). Commands must reach each of them intact,
//! long ones too, and what the start-up prints must never be taken for a command's output.
//!
//! The lab hosts share /etc with this machine, so the test creates a user per login shell
//! (with NOPASSWD sudo, for `as_user`) and removes them when it ends, even on failure. Every
//! lab host's commands get `HOME` = the host's own `home/` (scripts/lab's `SetEnv`), whatever
//! the user: the start-up files are written there.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use support::lab::Lab;
use support::tether::Tether;

/// The login shells, by the name the test prints, as Debian installs them.
const SHELLS: [(&str, &str); 8] = [
    ("sh", "/bin/sh"),
    ("dash", "/bin/dash"),
    ("bash", "/bin/bash"),
    ("zsh", "/bin/zsh"),
    ("ksh", "/bin/ksh93"),
    ("fish", "/usr/bin/fish"),
    ("tcsh", "/bin/tcsh"),
    ("csh", "/bin/bsd-csh"),
];

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

/// One user per login shell, allowed `sudo` without a password; removed on drop.
pub(crate) struct ShellUsers {
    /// (shell name, user name).
    pub(crate) users: Vec<(&'static str, String)>,
    sudoers: PathBuf,
}

impl ShellUsers {
    /// Users and sudoers file named by the test process and a count of the sets it made: two
    /// tests that run at once each have their own.
    pub(crate) fn create() -> ShellUsers {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let set = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = format!("{}x{set}", std::process::id());
        let mut users = ShellUsers {
            users: Vec::new(),
            sudoers: PathBuf::from(format!("/etc/sudoers.d/tether-test-shells{pid}")),
        };
        for (name, path) in SHELLS {
            assert!(
                Path::new(path).exists(),
                "{path} is missing (scripts/test installs the login shells)"
            );
            let user = format!("tsh{name}{pid}");
            // From here on, Drop removes it. `*`: no password, but not a locked account
            // (sshd refuses locked ones).
            users.users.push((name, user.clone()));
            sh(&format!(
                "useradd -M -d /nonexistent -s {path} {user} && usermod -p '*' {user}"
            ))
            .unwrap();
        }
        let rules: String = users
            .users
            .iter()
            .map(|(_, u)| format!("Defaults:{u} lecture=never\n{u} ALL=(ALL) NOPASSWD: ALL\n"))
            .collect();
        let staged = std::env::temp_dir().join(format!("tether-shells-sudoers-{pid}"));
        std::fs::write(&staged, rules).unwrap();
        sh(&format!(
            "visudo -cqf {s} && install -m 0440 -o root -g root {s} {d}; rm -f {s}",
            s = staged.display(),
            d = users.sudoers.display()
        ))
        .unwrap();
        users
    }

    /// Recipe lines declaring each user's login on host1 as a server of `role`.
    pub(crate) fn servers(&self, role: &str) -> String {
        self.users
            .iter()
            .map(|(_, u)| format!("server(\"{u}@host1\", #{{ roles: [\"{role}\"] }});\n"))
            .collect()
    }
}

impl Drop for ShellUsers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        for (_, user) in &self.users {
            let _ = sh(&format!(
                "pkill -KILL -u {user}; userdel {user}; \
                 rm -rf /var/lib/sudo/lectured/{user} /run/sudo/ts/{user}"
            ));
        }
    }
}

/// Start-up files for every shell that reads one when sshd runs a command, in `home`: each
/// prints a banner on stdout and on stderr (one without a newline at its end).
fn chatty_startup(home: &Path) {
    let files = [
        (
            ".bashrc",
            "echo \"Welcome to bash\"; echo 'bash: Last login' >&2\n",
        ),
        (
            ".zshenv",
            "echo \"Welcome to zsh\"; echo 'zsh: Last login' >&2\n",
        ),
        (
            ".config/fish/config.fish",
            "echo 'Welcome to fish'; echo 'fish: Last login' >&2; printf 'no newline'\n",
        ),
        (
            ".tcshrc",
            "echo 'Welcome to tcsh'; echo 'tcsh: Last login' > /dev/stderr\n",
        ),
        (
            ".cshrc",
            "echo 'Welcome to csh'; echo 'csh: Last login' > /dev/stderr\n",
        ),
    ];
    for (name, text) in files {
        let path = home.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A 256 KiB argument with quotes, `$`, `!`, a backslash, a newline and non-ASCII text, as the
/// recipe makes it (a pattern doubled 14 times).
fn big_argument() -> String {
    "ab'c\"d$e!f\\g \u{e9}\n".repeat(1 << 14)
}

#[test]
fn every_login_shell_runs_nested_commands_with_long_arguments_intact() {
    let users = ShellUsers::create();
    let lab = Lab::start(1);
    chatty_startup(&lab.host("host1").home);
    std::fs::create_dir_all(lab.host("host1").root_dir.join("shells")).unwrap();
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    let servers = users.servers("shells");
    std::fs::write(
        dir.join("deploy.rhai"),
        format!(
            r#"{servers}
let big = "ab'c\"d$e!f\\g é\n";
for i in 0..14 {{ big += big; }}
let cmd = "printf '%s|' \"it's\" '\"q\"' '$HOME' \"$GREETING\" 'bang!' \"$(pwd)\" \"$(id -un)\"\n"
    + "printf %s " + quote(big) + " | sha256sum | cut -c1-64";
task("shells", || {{
    on("shells", |host| {{
        within("/srv/shells", || with_env(#{{ GREETING: "hi 'you' \"$USER\"!" }}, || as_user("root", || {{
            print(host.user + " = " + capture(cmd));
            print(host.user + " test = " + test("[ -d /srv/shells ] && [ \"$(pwd)\" = /srv/shells ]") + " " + test("exit 3"));
        }})));
        print(host.user + " plain = " + capture("echo plain; echo err >&2"));
    }});
}});
task("fails", || {{
    on("shells", |host| within("/srv/shells", || with_env(#{{ X: "1" }}, || as_user("root", || run("echo going >&2; exit 3")))));
}});
"#
        ),
    )
    .unwrap();

    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&dir)
        .arg("shells")
        .run();
    out.status(0);
    let sum = format!("{:x}", Sha256::digest(big_argument().as_bytes()));
    for (shell, user) in &users.users {
        out.stdout_contains(&format!(
            "\n{user} = it's|\"q\"|$HOME|hi 'you' \"$USER\"!|bang!|/srv/shells|root|{sum}\n"
        ))
        .stdout_contains(&format!("\n{user} test = true false\n"))
        .stdout_contains(&format!("\n{user} plain = plain\n"));
        // The banners never show without -v.
        assert!(!out.stdout.contains("Welcome"), "{shell}: {}", out.stdout);
        assert!(
            !out.stdout.contains("Last login"),
            "{shell}: {}",
            out.stdout
        );
    }

    // The exit status of every shell's command, through every layer.
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&dir)
        .arg("fails")
        .run();
    out.status(1).stderr_contains("8 of 8 hosts failed");
    for (_, user) in &users.users {
        assert_eq!(out.host_lines(&format!("{user}@host1"), '!'), ["going"]);
    }
    assert_eq!(
        out.stderr.matches("exit status 3").count(),
        8,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Last login"), "{}", out.stderr);
    drop(users);
}

/// A command's text is run by bash wherever the host has one, whatever the login shell, as
/// Deployer runs it, and `ssh` and Capistrano with a bash login shell (stop 58 tester t92: under
/// `/bin/sh`, `echo {1..3}` printed `{1..3}` and `[[ ]]` was not found): under the supervisor,
/// directly (where its private directory cannot be made) and on a PTY; `~/.bashrc`, which
/// Debian's bash reads for sshd's commands, prints nothing after the start marker; `BASH_ENV`
/// reaches the bash scripts the command runs (stop 59 tester t95: unset, Lmod's `module` was
/// not found in them). Where the login shell's `PATH` finds no bash, the text is run by
/// `/bin/sh`, said once per host.
#[test]
fn every_login_shell_runs_commands_by_bash_where_the_host_has_one() {
    let users = ShellUsers::create();
    let lab = Lab::start(1);
    chatty_startup(&lab.host("host1").home);
    std::fs::write(
        lab.host("host1").root_dir.join("benv"),
        "module() { echo \"module $*\"; }\n",
    )
    .unwrap();
    lab.set_env("host1", &[("BASH_ENV", "/srv/benv")]);
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    let servers = users.servers("shells");
    std::fs::write(
        dir.join("deploy.rhai"),
        format!(
            r#"{servers}
let cmd = "echo {{1..3}} $0; [[ a == a ]] && echo -e 'dbl\\ttab'; if [[ -d /srv ]]; then echo srv; fi; if command -v bash >/dev/null; then bash -c 'module load $BASH_ENV'; fi";
task("bashisms", || {{
    on("shells", |host| print(host.user + " plain = " + capture(cmd)));
    on("shells", #{{ pty: true }}, |host| print(host.user + " pty = " + capture(cmd)));
}});
"#
        ),
    )
    .unwrap();
    let run = || {
        Tether::new()
            .ssh_config(&lab.ssh_config())
            .current_dir(&dir)
            .arg("bashisms")
            .run()
    };
    let by_bash = |out: &support::tether::Output| {
        for (_, user) in &users.users {
            for how in ["plain", "pty"] {
                out.stdout_contains(&format!(
                    "\n{user} {how} = 1 2 3 bash\ndbl\ttab\nsrv\nmodule load /srv/benv\n"
                ));
            }
        }
        assert!(!out.stdout.contains("Welcome"), "{}", out.stdout);
        assert!(!out.stdout.contains("run by /bin/sh"), "{}", out.stdout);
    };
    let out = run();
    out.status(0);
    by_bash(&out);
    assert!(
        !out.stdout.contains("without tether's supervisor"),
        "{}",
        out.stdout
    );

    // No private directory for the supervisor: run directly, by bash all the same.
    lab.set_env("host1", &[("TMPDIR", "/nonexistent-tether-tmp")]);
    let out = run();
    out.status(0);
    by_bash(&out);
    out.stdout_contains("without tether's supervisor on this host");

    // No bash in the login shell's PATH: /bin/sh, as the login shell of a host without bash is.
    lab.without_bash("host1");
    let out = run();
    out.status(0);
    for (_, user) in &users.users {
        for how in ["plain", "pty"] {
            out.stdout_contains(&format!("\n{user} {how} = {{1..3}} sh\n"));
        }
        // Said once per host (stop 59 tester t94: nothing said).
        let said = out
            .stdout
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{user}@host1 "))
                    && l.contains("warning: commands run by /bin/sh on this host, not bash: the login shell's PATH finds no bash")
            })
            .count();
        assert_eq!(said, 1, "{user}: {}", out.stdout);
    }
    assert!(!out.stdout.contains("tether-nobash"), "{}", out.stdout);
    drop(users);
}

#[test]
fn what_the_login_shell_prints_is_shown_once_per_host_with_verbose_and_never_captured() {
    let lab = Lab::start(2);
    // Root's login shell is bash: ~/.bashrc prints on both streams, and says so without a
    // newline at its end too.
    for h in ["host1", "host2"] {
        std::fs::write(
            lab.host(h).home.join(".bashrc"),
            "echo \"Welcome to $(hostname -s 2>/dev/null || echo it)\"\necho 'Last login: today' >&2\nprintf 'MOTD'\n",
        )
        .unwrap();
    }
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        r#"
server("host1", #{ roles: ["app"] });
server("host2", #{ roles: ["app"] });
task("look", || {
    on("app", |host| {
        let a = capture("echo one");
        let b = capture("printf 'two\n' >&2; echo three");
        let c = capture("true");
        let d = test("[ \"$(ls /srv | wc -l)\" -ge 0 ]");
        print(host.name + ": [" + a + "] [" + b + "] [" + c + "] " + d);
    });
    on("app", #{ pty: true }, |host| print(host.name + " pty: [" + capture("echo four; echo five >&2") + "]"));
});
"#,
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&dir)
        .args(&["-v", "look"])
        .run();
    out.status(0);
    for h in ["host1", "host2"] {
        out.stdout_contains(&format!("{h}: [one] [three] [] true\n"))
            .stdout_contains(&format!("{h} pty: [four\nfive]\n"));
        let said = |what: &str| {
            out.stdout
                .lines()
                .filter(|l| l.starts_with(h) && l.contains(what))
                .count()
        };
        assert_eq!(
            said("the login shell printed: Welcome to "),
            1,
            "{}",
            out.stdout
        );
        assert_eq!(said("the login shell printed: MOTD"), 1, "{}", out.stdout);
        assert_eq!(
            said("the login shell printed on stderr: Last login: today"),
            1,
            "{}",
            out.stdout
        );
        // Only there: not as the output of any command.
        assert_eq!(said("Last login"), 1, "{}", out.stdout);
        assert_eq!(said("MOTD"), 1, "{}", out.stdout);
    }
    assert!(!out.stderr.contains("Last login"), "{}", out.stderr);
}

#[test]
fn a_command_of_several_hundred_kilobytes_runs_on_the_same_session() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        r#"
server("host1", #{ roles: ["app"] });
let big = "0123456789abcdef'\"$!";
for i in 0..15 { big += big; }
task("long", || {
    on("app", |host| {
        // 640 KiB of command; its own stdin still arrives (here: none, so `cat` ends at once).
        let mark = capture("mktemp");
        print("length " + capture("printf %s " + quote(big) + " | wc -c; cat; echo end"));
        // Only this user's files, newer than the closure's start: other tests share /tmp.
        print("left behind " + capture("n=$(find ${TMPDIR:-/tmp}/ -maxdepth 1 -name 'tether-cmd*' -user \"$(id -u)\" -newer " + mark + " | wc -l); rm -f " + mark + "; echo $n"));
    });
    on("app", #{ pty: true }, |host| print("pty " + capture("printf %s " + quote(big) + " | wc -c")));
    on("app", "printf %s " + quote(big) + " >/dev/null; exit 4");
});
"#,
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&dir)
        .arg("long")
        .run();
    out.status(1)
        .stdout_contains("length 655360\nend\n")
        .stdout_contains("left behind 0\n")
        .stdout_contains("pty 655360\n")
        .stderr_contains("exit status 4")
        .stderr_lacks("Unable to send channel request")
        .stdout_lacks("reconnected");
    assert_eq!(
        lab.accepted_logins("host1"),
        1,
        "one session for everything"
    );
}

/// A long command that cannot be written to a temporary file on the host (its `mktemp`
/// cannot run; `TMPDIR` names no directory either, and then /tmp is tried: stop 66 tester
/// t110, a command failed for that alone) is not run, and says why; the session is kept.
#[test]
fn a_long_command_that_cannot_be_staged_is_not_run_and_says_why() {
    let lab = Lab::start(1);
    std::fs::write(
        lab.host("host1").home.join(".bashrc"),
        "export TMPDIR=/nonexistent-tether-tmp\n",
    )
    .unwrap();
    lab.hide_programs("host1", &["mktemp"]);
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        r#"
server("host1", #{ roles: ["app"] });
let big = "0123456789abcdef";
for i in 0..12 { big += big; }
task("long", || {
    on("app", |host| {
        try {
            run("touch /srv/ran; echo " + big + " >/dev/null");
        } catch (e) {
            print("refused: " + e.message);
        }
        print("then: " + capture("echo short; echo $TMPDIR"));
    });
});
"#,
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&dir)
        .arg("long")
        .run();
    out.status(0)
        .stdout_contains("refused: ")
        .stdout_contains(
            "the command (65568 bytes) is too long for one exec request, and writing it to a \
             temporary file on the host failed (exit status 126): ",
        )
        .stdout_contains("then: short\n/nonexistent-tether-tmp\n");
    lab.show_programs("host1", &["mktemp"]);
    assert!(!lab.host("host1").root_dir.join("ran").exists());
    assert_eq!(lab.accepted_logins("host1"), 1, "the session was kept");
}

/// A long command whose staged file comes out short (a start-up file that reads standard
/// input takes the command's bytes) is a command that was not run (exit 1), saying why, not
/// an unreachable host (stop 45 tester t56: exit 3, "failed (exit status 1): " and nothing
/// after it).
#[test]
fn a_long_command_whose_file_comes_out_short_was_not_run_and_says_why() {
    let lab = Lab::start(1);
    std::fs::write(lab.host("host1").home.join(".bashrc"), "read -r junk\n").unwrap();
    let long = format!("touch /srv/ran; : {}", "x".repeat(48 * 1024));
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--", &long])
        .run();
    out.status(1)
        .stdout_contains("was not run: the command (49170 bytes) is too long for one exec request")
        .stdout_contains("of its 49170 bytes reached the file: something on the host read them first (a start-up file of the login shell that reads its standard input?)")
        .stdout_lacks("unreachable");
    assert!(!lab.host("host1").root_dir.join("ran").exists());
}

/// A download's bytes are the file's, whatever the login shell prints on start-up: the chatter
/// is cut before the stream is written to the local file, and an upload's check is not fooled.
#[test]
fn transfers_under_a_chatty_login_shell_carry_the_files_bytes_only() {
    let lab = Lab::start(1);
    let host = lab.host("host1");
    std::fs::write(
        host.home.join(".bashrc"),
        "echo 'Welcome to host1'\necho 'Last login: today' >&2\nprintf 'MOTD'\n",
    )
    .unwrap();
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(host.root_dir.join("data.bin"), &content).unwrap();
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("local.bin"), &content).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        r#"
server("host1", #{ roles: ["app"] });
task("move", || {
    on("app", |host| {
        download("/srv/data.bin", "got.bin");
        upload("local.bin", "/srv/up.bin");
    });
});
"#,
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&dir)
        .args(&["move"])
        .run();
    out.status(0);
    assert!(
        std::fs::read(dir.join("got.bin")).unwrap() == content,
        "download differs"
    );
    assert!(
        std::fs::read(host.root_dir.join("up.bin")).unwrap() == content,
        "upload differs"
    );
}

/// The words tether gives to stop a command by hand (a command left running, or named at a
/// second signal) do what they say under every login shell: sshd hands the remote part to the
/// user's login shell as `SHELL -c REMOTE`, and tcsh, csh and fish read `${VAR:-x}`, `$(...)`
/// and `kill -- -PGID` otherwise than sh (fresh-eyes finding, stop 30: `Bad : modifier`,
/// `Unknown variable modifier`, `Unsupported use of '='`, and the process group lived on).
#[test]
fn the_words_that_stop_a_command_by_hand_work_under_every_login_shell() {
    use std::os::unix::process::CommandExt as _;
    use tether::ssh::stop_words::{by_hand, stop_by_group, stop_by_id};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tether-someone");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, path) in SHELLS {
        for by_id in [true, false] {
            // A command's process group and files, as the supervisor leaves them; under the
            // first shell one that ignores SIGTERM, which the words end with SIGKILL after
            // the grace period (stop 32 re-test: they sent SIGTERM only).
            let mut group = Command::new("sh");
            let ignore = if name == SHELLS[0].0 {
                "trap '' TERM; "
            } else {
                ""
            };
            group.args(["-c", &format!("{ignore}sleep 60")]);
            // SAFETY: setsid(2) in the child before exec; async-signal-safe.
            unsafe {
                group.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let mut child = group.spawn().unwrap();
            let pgid = child.id().to_string();
            // Reaped as it ends, as init reaps an orphan's: the words wait while the group
            // lives, and a zombie leader counts as alive.
            let waiter = std::thread::spawn(move || child.wait().unwrap());
            let id = format!("1a-2b-{name}");
            let spool = dir.join(&id);
            std::fs::write(dir.join(format!("{id}.p")), format!("{pgid}\n")).unwrap();
            std::fs::write(dir.join(format!("{id}.o.0")), "out").unwrap();
            let script = if by_id {
                stop_by_id(&id)
            } else {
                stop_by_group(&pgid, &spool.to_string_lossy())
            };
            let words = by_hand("ssh web1", &script);
            // What ssh sends: its arguments after the host, as the person's shell splits them.
            let split = Command::new("sh")
                .arg("-c")
                .arg(format!("set -- {words}; shift 2; printf %s \"$*\""))
                .output()
                .unwrap();
            let remote = String::from_utf8(split.stdout).unwrap();
            // The login shell running what ssh sends, for the user whose files these are.
            let give = || {
                Command::new(path)
                    .arg("-c")
                    .arg(&remote)
                    .env("TMPDIR", tmp.path())
                    .env("LOGNAME", "someone")
                    .output()
                    .unwrap()
            };
            let out = give();
            let stopped = waiter.join().unwrap();
            assert!(
                out.status.success() && stopped.code().is_none(),
                "{name} ({by_id}): {remote}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !dir.join(format!("{id}.o.0")).exists() && !dir.join(format!("{id}.p")).exists(),
                "{name}: files left by {remote}"
            );
            // Given again, once the command ended: nothing to say (stop 33 re-test: "kill: No
            // such process").
            let again = give();
            assert!(
                again.status.success() && again.stderr.is_empty(),
                "{name} ({by_id}) again: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        }
    }
}
