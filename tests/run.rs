//! `tether run` against real sshd hosts.

use crate::support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::lab::Lab;
use support::tether::Tether;

fn hosts(lab: &Lab) -> String {
    lab.hosts()
        .iter()
        .map(|h| h.name.clone())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn runs_on_five_hosts_with_prefixed_output_and_exit_codes() {
    let lab = Lab::start(5);
    for h in lab.hosts() {
        std::fs::write(h.root_dir.join("name"), &h.name).unwrap();
    }
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", &hosts(&lab), "--"])
        .arg(r#"n=$(cat /srv/name); if [ "$n" = host3 ]; then echo "boom on $n" >&2; exit 3; fi; echo "hello from $n""#)
        .run();
    out.status(1);
    for h in lab.hosts().iter().filter(|h| h.name != "host3") {
        assert_eq!(
            out.host_lines(&h.name, '|'),
            [format!("hello from {}", h.name)],
            "{}",
            out.stdout
        );
    }
    assert_eq!(out.host_lines("host3", '!'), ["boom on host3"]);
    out.stdout_contains("host3  exit 3")
        .stdout_contains("host3: `n=$(cat /srv/name)")
        .stdout_contains("failed with exit status 3")
        .stdout_contains("    boom on host3")
        .stderr_contains("error: 1 of 5 hosts failed");
    assert_eq!(out.stdout.matches("  ok  ").count(), 4, "{}", out.stdout);
}

/// `--hosts` (and `HOSTS`) take a host set as folded output writes one: each name of it,
/// zero padding and gaps as written, and nothing else; a set it cannot read is refused with
/// exit 2, naming it, before anything connects.
#[test]
fn hosts_given_as_a_set_select_each_of_its_names() {
    let lab = Lab::start(4);
    for h in lab.hosts() {
        std::fs::write(h.root_dir.join("name"), &h.name).unwrap();
    }
    for (set, env) in [
        ("host[1-2,4]", false),
        ("host[1-2],host4", true),
        ("host4,\"host1\",host[2-2]", false),
    ] {
        let mut t = Tether::new().ssh_config(&lab.ssh_config());
        t = match env {
            true => t.env("HOSTS", set).args(&["run", "--"]),
            false => t.args(&["run", "--hosts", set, "--"]),
        };
        let out = t.arg("echo on $(cat /srv/name)").run();
        out.status(0);
        for name in ["host1", "host2", "host4"] {
            assert_eq!(
                out.host_lines(name, '|'),
                [format!("on {name}")],
                "{set}: {}",
                out.stdout
            );
        }
        assert!(
            out.host_lines("host3", '|').is_empty(),
            "{set}: {}",
            out.stdout
        );
    }
    for (bad, said) in [
        (
            "host[2-1]",
            "`host[2-1]`: `[2-1]`: the range `2-1` runs backwards",
        ),
        ("host[1-2", "`host[1-2`: a `[` that is not closed"),
        ("host1,\"host2", "`\"host2`: a quote that is not closed"),
    ] {
        Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["run", "--hosts", bad, "--", "true"])
            .run()
            .status(2)
            .stderr_contains(&format!("--hosts: {said}"));
    }
}

#[test]
fn three_megabytes_of_stdout_and_stderr_from_three_hosts_at_once() {
    let lab = Lab::start(3);
    // stderr first: a reader that drains stdout to its end before stderr deadlocks here.
    let line = "x".repeat(98); // 100 bytes a line with the mark and newline
    let cmd = format!("yes e{line} | head -c 3000000 >&2; yes o{line} | head -c 3000000");
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--format",
            "json",
            "run",
            "--hosts",
            &hosts(&lab),
            "--",
            &cmd,
        ])
        .run();
    out.status(0);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for h in lab.hosts() {
        for (stream, mark) in [("stdout", 'o'), ("stderr", 'e')] {
            let lines = events
                .iter()
                .filter(|e| {
                    e["host"] == h.name.as_str()
                        && e["type"] == "output"
                        && e["stream"] == stream
                        && e["line"].as_str().is_some_and(|l| l.starts_with(mark))
                })
                .count();
            assert_eq!(lines, 30000, "{} {stream}", h.name);
        }
    }
}

/// A command that begins with `-` or `+` is the command's words, never options of the sh that
/// runs it: not found, as in a script (stop 40 tester t34: `-x` ran `sh -x`, printed `+ sh`
/// and succeeded; `-s echo hi` said "Illegal option").
#[test]
fn a_command_beginning_with_a_dash_is_no_option_of_sh() {
    let lab = Lab::start(1);
    for pty in [false, true] {
        for command in ["-x", "+x", "-s echo hi", "--version", "-"] {
            let mut args = vec!["run", "--hosts", "host1"];
            if pty {
                args.push("--pty");
            }
            args.extend(["--", command]);
            let out = Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&args)
                .run();
            out.status(1).stdout_contains(&format!(
                "host1: `{command}` failed with exit status 127 after "
            ));
        }
    }
}

#[test]
fn a_signal_is_reported_not_exit_zero() {
    let lab = Lab::start(1);
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--", "kill -TERM $$"])
        .run();
    out.status(1)
        .stdout_contains("host1  signal TERM")
        .stdout_contains("host1: `kill -TERM $$` failed with signal TERM after ");
}

/// Each host's failure is said once where stdout and stderr are read together (a terminal,
/// `2>&1`): the summary says it, and the error on stderr its count alone (stop 42 tester t45:
/// twice, the summary's paragraph and the error's). Read apart, each says it, as before.
#[test]
fn a_failure_is_said_once_where_stderr_is_read_with_stdout() {
    let lab = Lab::start(2);
    let cmd = "echo hi; exit 3";
    let mut together = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1,host2,nosuch.invalid", "--", cmd])
        .command();
    let (reader, writer) = std::io::pipe().unwrap();
    together.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = together.spawn().unwrap();
    drop(together);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut { reader }, &mut text).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3), "{text}");
    for said in [
        "host1: `echo hi; exit 3` failed with exit status 3 after ",
        "host2: `echo hi; exit 3` failed with exit status 3 after ",
        "nosuch.invalid: cannot resolve nosuch.invalid",
    ] {
        assert_eq!(text.matches(said).count(), 1, "{said}:\n{text}");
    }
    assert!(text.contains("error: 3 of 3 hosts failed\n"), "{text}");
    let apart = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1,nosuch.invalid", "--", cmd])
        .run();
    apart
        .status(3)
        .stdout_contains("host1: `echo hi; exit 3` failed with exit status 3 after ")
        .stderr_contains("error: 2 of 2 hosts failed\nhost1: `echo hi; exit 3` failed with ");
}

/// Two spellings of one name that reach one machine (one sshd, one user, one route) in
/// `--hosts` are refused before anything connects, naming both, for `tether run` and `tether
/// check` as for a recipe's servers (stop 43 tester t52: `--hosts host1,root@host1` ran the
/// command twice there, "2 ok"). An exact repeat is one host, as before; two names of the ssh
/// config are two hosts, as two `ssh` commands would be.
#[test]
fn two_names_of_one_machine_are_refused() {
    let lab = Lab::start(2);
    let port = lab.host("host1").port;
    let alias = empty_dir();
    let config = alias.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Include {}\nHost web1\n    HostName 127.0.0.1\n    Port {port}\n    User root\n\
             \x20   IdentityFile {}\n    UserKnownHostsFile {}\n",
            lab.ssh_config().display(),
            lab.client_key().display(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    for (hosts, second) in [
        ("host1,root@host1", "root@host1"),
        (
            &format!("host1,host1:{port}") as &str,
            &format!("host1:{port}") as &str,
        ),
    ] {
        for sub in [&["run"][..], &["check"][..]] {
            let mut args = sub.to_vec();
            args.extend(["--hosts", hosts]);
            if sub == ["run"] {
                args.extend(["--", "echo ran >> /srv/ran"]);
            }
            Tether::new()
                .ssh_config(&config)
                .args(&args)
                .run()
                .status(2)
                .stderr_contains(&format!(
                    "error: --hosts: `host1` and `{second}` are one machine, \
                     root@127.0.0.1:{port} by one route as the ssh config resolves them: each \
                     command would run on it twice; name it once"
                ));
        }
    }
    assert!(!lab.host("host1").root_dir.join("ran").exists());
    Tether::new()
        .ssh_config(&config)
        .args(&[
            "run",
            "--hosts",
            "host1,host1,host2",
            "--",
            "echo ran >> /srv/ran",
        ])
        .run()
        .status(0);
    assert_eq!(
        std::fs::read_to_string(lab.host("host1").root_dir.join("ran")).unwrap(),
        "ran\n"
    );
    Tether::new()
        .ssh_config(&config)
        .args(&["run", "--hosts", "host1,web1", "--", "echo ran >> /srv/ran"])
        .run()
        .status(0);
    assert_eq!(
        std::fs::read_to_string(lab.host("host1").root_dir.join("ran")).unwrap(),
        "ran\nran\nran\n"
    );
}

#[test]
fn a_command_cut_off_by_channel_timeout_fails() {
    let lab = Lab::builder().count(1).profile("channeltimeout").start();
    // On a terminal: without one the supervisor keeps the channel in use (tests/reattach.rs).
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["--pty", "run", "--hosts", "host1", "--", "sleep 10"])
        .run();
    out.status(1)
        .stdout_contains("host1  no exit status")
        .stdout_contains("ChannelTimeout");
    assert!(out.elapsed < Duration::from_secs(9), "{:?}", out.elapsed);
}

/// An empty directory (removed when dropped), so no `deploy.rhai` is picked up.
fn empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn dry_run_connects_to_nothing() {
    Tether::new()
        .current_dir(empty_dir().path())
        .args(&["run", "-n", "--hosts", "a,bb", "--", "uptime"])
        .run()
        .status(0)
        .stdout_contains("a  | $ uptime")
        .stdout_contains("bb | $ uptime");
}

#[test]
fn no_hosts_is_a_usage_error() {
    Tether::new()
        .current_dir(empty_dir().path())
        .args(&["run", "--", "uptime"])
        .run()
        .status(2)
        .stderr_contains("no hosts selected");
}

/// Writes an ssh config for lab host `host1` under another alias with custom lines.
fn custom_config(lab: &Lab, dir: &Path, alias: &str, extra: &str) -> PathBuf {
    let h = lab.host("host1");
    let path = dir.join(format!("{alias}.config"));
    std::fs::write(
        &path,
        format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentitiesOnly yes\n{extra}",
            h.port
        ),
    )
    .unwrap();
    path
}

/// A new ed25519 key at `path` (and `path.pub`).
fn keygen(path: &Path, passphrase: &str) {
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// An ssh config for lab host `host1` as `alias`, logging in with `key` only.
fn key_config(lab: &Lab, dir: &Path, alias: &str, key: &Path) -> PathBuf {
    custom_config(
        lab,
        dir,
        alias,
        &format!(
            "  IdentityFile {}\n  UserKnownHostsFile {}\n",
            key.display(),
            lab.known_hosts().display()
        ),
    )
}

fn fingerprint(pub_key: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_key)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn host_key_policies() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("keys-test");
    std::fs::create_dir_all(&dir).unwrap();
    let key = lab.client_key();
    let key = key.display();
    let port = lab.host("host1").port;
    let host_pub = lab
        .host("host1")
        .sshd_config
        .with_file_name("ssh_host_ed25519_key.pub");
    let real_fp = fingerprint(&host_pub);

    // Unknown host, strict: refused, nothing recorded.
    let kh = dir.join("empty_known_hosts");
    std::fs::write(&kh, "").unwrap();
    let cfg = custom_config(
        &lab,
        &dir,
        "strict",
        &format!(
            "  IdentityFile {key}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
            kh.display()
        ),
    );
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "strict", "--", "true"])
        .run()
        .status(3)
        .stdout_contains("strict: host key for [127.0.0.1]:")
        .stdout_contains("is not known")
        .stdout_contains(&real_fp);
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), "");

    // Unknown host, accept-new: accepted and recorded.
    let cfg = custom_config(
        &lab,
        &dir,
        "acceptnew",
        &format!(
            "  IdentityFile {key}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n",
            kh.display()
        ),
    );
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "acceptnew", "--", "echo in"])
        .run()
        .status(0)
        .stdout_contains("acceptnew | in")
        .stdout_contains("recorded new host key");
    let recorded = std::fs::read_to_string(&kh).unwrap();
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")),
        "{recorded}"
    );
    // The recorded key now satisfies strict checking.
    let cfg = custom_config(
        &lab,
        &dir,
        "strict2",
        &format!(
            "  IdentityFile {key}\n  UserKnownHostsFile {}\n",
            kh.display()
        ),
    );
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "strict2", "--", "true"])
        .run()
        .status(0);

    // Changed key: refused with both fingerprints, even under accept-new.
    let other = dir.join("other_key");
    keygen(&other, "");
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let changed = dir.join("changed_known_hosts");
    std::fs::write(
        &changed,
        format!("[127.0.0.1]:{port} {} {}\n", other_key[0], other_key[1]),
    )
    .unwrap();
    let cfg = custom_config(
        &lab,
        &dir,
        "changed",
        &format!(
            "  IdentityFile {key}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n",
            changed.display()
        ),
    );
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "changed", "--", "true"])
        .run()
        .status(3)
        .stdout_contains("HOST KEY CHANGED")
        .stdout_contains("ssh-ed25519")
        .stdout_contains(&real_fp)
        .stdout_contains(&fingerprint(&other.with_extension("pub")))
        .stdout_contains(&format!("{}:1", changed.display()));

    // A garbage line does not hide a valid later entry.
    let garbage = dir.join("garbage_known_hosts");
    std::fs::write(
        &garbage,
        format!(
            "this is not a known_hosts line\n{}",
            std::fs::read_to_string(lab.known_hosts()).unwrap()
        ),
    )
    .unwrap();
    let cfg = custom_config(
        &lab,
        &dir,
        "garbage",
        &format!(
            "  IdentityFile {key}\n  UserKnownHostsFile {}\n",
            garbage.display()
        ),
    );
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "garbage", "--", "echo fine"])
        .run()
        .status(0)
        .stdout_contains("garbage | fine")
        .stdout_contains(&format!(
            "{}:1: skipping malformed known_hosts line",
            garbage.display()
        ));
}

#[test]
fn unreachable_hosts_are_named_and_the_others_still_run() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("unreachable-test");
    std::fs::create_dir_all(&dir).unwrap();
    // A closed port: bind, note the port, close.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A host that accepts TCP and never says anything.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let cfg = dir.join("config");
    std::fs::write(
        &cfg,
        format!(
            "Host closed\n  HostName 127.0.0.1\n  Port {closed}\nHost silent\n  HostName 127.0.0.1\n  Port {silent_port}\n  ConnectTimeout 2\n{base}"
        ),
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "closed,silent,host1", "--", "echo alive"])
        .run();
    out.status(3)
        .stdout_contains("host1  | alive")
        .stdout_contains("closed: cannot connect to 127.0.0.1:")
        .stdout_contains(": connection refused")
        .stdout_contains("silent: 127.0.0.1:")
        .stdout_contains("accepted the TCP connection but sent no SSH banner within 2.0 s")
        .stderr_contains("2 of 3 hosts failed");
    assert!(out.elapsed < Duration::from_secs(8), "{:?}", out.elapsed);
    drop(silent);
}

#[test]
fn authentication_failure_names_host_and_user() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("auth-test");
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("wrong_key");
    keygen(&wrong, "");
    let cfg = key_config(&lab, &dir, "wrongkey", &wrong);
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "wrongkey", "--", "true"])
        .run()
        .status(3)
        .stdout_contains("wrongkey: authentication failed for user root")
        .stdout_contains("wrong_key refused");
}

#[test]
fn an_encrypted_key_without_a_terminal_is_named() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("enc-test");
    std::fs::create_dir_all(&dir).unwrap();
    let enc = dir.join("enc_key");
    keygen(&enc, "secret phrase");
    let cfg = key_config(&lab, &dir, "enc", &enc);
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "enc", "--", "true"])
        .run()
        .status(3)
        .stdout_contains(&format!("{} is encrypted", enc.display()))
        .stdout_contains("ssh-agent");
}

#[test]
fn an_encrypted_key_is_unlocked_by_a_passphrase_typed_on_the_terminal() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("tty-test");
    std::fs::create_dir_all(&dir).unwrap();
    let enc = dir.join("enc_key");
    keygen(&enc, "secret phrase");
    // The lab hosts share one authorized_keys file.
    let public = std::fs::read_to_string(enc.with_extension("pub")).unwrap();
    let authorized = lab.dir().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&public);
    std::fs::write(&authorized, keys).unwrap();
    let cfg = key_config(&lab, &dir, "enc", &enc);
    // `script` gives tether a terminal; the passphrase is typed once the prompt is up.
    let tether = env!("CARGO_BIN_EXE_tether");
    let command = format!(
        "{tether} -F {} run --hosts enc -- echo unlocked",
        cfg.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"secret phrase\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("Enter passphrase for {}", enc.display())),
        "{stdout}"
    );
    assert!(stdout.contains("enc | unlocked"), "{stdout}");
}

/// Control characters in a command's output are shown (`\x1b`, `\x06`), and never eat what
/// follows: before, an unfinished escape sequence (`ESC ^`, `ESC ]`) swallowed the rest of its
/// line and its newline in a log (the next line glued on), and other control bytes vanished.
/// Colours (whole CSI sequences) are kept for the terminal, stripped from a log.
#[test]
fn control_characters_in_output_are_shown_and_eat_nothing() {
    let lab = Lab::start(1);
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--"])
        .arg(r#"printf 'A1\033^x\nA2\n'; printf 'B1\033]0;t\nB2\n'; printf 'C1\006\037c\n'; printf '\033[31mred\033[0m\n'"#)
        .run();
    out.status(0);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("host1 | "))
        .collect();
    assert_eq!(
        lines,
        [
            "host1 | A1\\x1b^x",
            "host1 | A2",
            "host1 | B1\\x1b]0;t",
            "host1 | B2",
            "host1 | C1\\x06\\x1fc",
            "host1 | red"
        ],
        "{}",
        out.stdout
    );
}

/// Output that cannot be written (stdout on a full disk) is said, and the run does not pass
/// for one whose output was read: exit 2, as a `--timeline` file that cannot be written (stop
/// 32 carried over: `tether run ... > /dev/full` exited 0, its output lost without a word),
/// in text and in JSON, and for a listing too.
#[test]
fn output_that_cannot_be_written_is_said_and_fails_the_run() {
    let lab = Lab::builder().names(&["host1"]).start();
    for args in [
        &["run", "--hosts", "host1", "--", "echo hi"][..],
        &[
            "--format", "json", "run", "--hosts", "host1", "--", "echo hi",
        ],
        &["hosts", "-G", "host1"],
        // Help and the version too (stop 33 re-test: exit 0, nothing said).
        &["--help"],
        &["run", "--help"],
        &["--version"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tether"))
            .arg("-F")
            .arg(lab.ssh_config())
            .args(args)
            .env_remove("TETHER_SSH_CONFIG")
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr
                .matches("error: cannot write tether's output: No space left on device")
                .count(),
            1,
            "{args:?}: {stderr}"
        );
    }
}

/// An empty or blank command is refused before any host is reached, on the command line and
/// in a recipe (stop 34 tester: `tether run -- ''` and `-- '   '` said "1 ok", exit 0, where
/// `ssh host ''` opens a login shell; most likely an unset variable).
#[test]
fn an_empty_command_is_refused() {
    let lab = Lab::start(1);
    for blank in ["", "   ", "\t\n"] {
        Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["run", "--hosts", "host1", "--", blank])
            .run()
            .status(2)
            .stderr_contains("the command is empty: nothing to run");
    }
    assert_eq!(lab.accepted_logins("host1"), 0);
    let dir = tempfile::tempdir().unwrap();
    for (call, line) in [
        ("on(\"app\", \"\")", "on(): the command is empty"),
        ("on(\"app\", |h| run(\" \"))", "run(): the command is empty"),
        (
            "on(\"app\", |h| capture(\"\"))",
            "capture(): the command is empty",
        ),
        (
            "on(\"app\", |h| test(\"\"))",
            "test(): the command is empty",
        ),
    ] {
        std::fs::write(
            dir.path().join("deploy.rhai"),
            format!(
                "server(\"host1\", #{{ roles: [\"app\"] }});\ntask(\"t\", || {{ {call}; }});\n"
            ),
        )
        .unwrap();
        Tether::new()
            .current_dir(dir.path())
            .ssh_config(&lab.ssh_config())
            .args(&["t"])
            .run()
            .status(4)
            .stderr_contains(line)
            .stderr_contains("deploy.rhai:2:");
    }
}

/// Reads a spawned tether's stdout to its end (it was left unread until now), then waits for
/// it: its stdout and status.
fn read_to_end(child: &mut std::process::Child) -> (String, std::process::ExitStatus) {
    use std::io::Read as _;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("tether's stdout");
    (out, child.wait().expect("wait for tether"))
}

/// A reader that is behind holds the command back, as with `ssh`: tether stops reading a
/// command's output once a bounded backlog of lines waits for its stdout, so the output waits
/// on the host (in the supervisor's spool, then in the command's writes) and tether's memory
/// stays bounded (stop 35 tester: with its stdout not read, tether took in 300 MB of output,
/// 1.1 GB resident after 6 s). While the test does not read, the host's streaming gets no
/// further than the backlog and the channel's window (a few MB of the 40 MB); once it reads,
/// every line arrives.
#[test]
fn a_reader_that_is_behind_holds_the_command_back() {
    let lab = Lab::builder().names(&["host1"]).start();
    let private = lab.host("host1").tmp.join("tether-root");
    let mut child = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--"])
        .arg("yes \"$(printf '%0200d' 7)\" | head -n 200000")
        .spawn();
    // How far the host's streaming got (the supervisor's `ID.q`: stdout's bytes first).
    let streamed = || -> Option<u64> {
        std::fs::read_dir(&private)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".q"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|q| q.split_whitespace().next()?.parse().ok())
            .max()
    };
    // Without the bound, tether takes in all 40 MB within a few seconds. (The streaming says
    // how far it got once a write to the channel returns: a write blocked says 0.)
    std::thread::sleep(Duration::from_secs(6));
    let got = streamed().expect("the command's progress file");
    assert!(got < 10_000_000, "streamed {got} bytes unread");
    let (out, status) = read_to_end(&mut child);
    assert!(status.success(), "{status}");
    let line = format!("host1 | {:0200}", 7);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("host1 | ")).collect();
    assert_eq!(lines.len(), 200_000);
    assert!(lines.iter().all(|l| *l == line));
}

/// Files on `host1` a command too long for one exec request may have been written to: `ID.k`
/// in the private directory, `tether-cmd.*` in `$TMPDIR`.
fn staged_files(lab: &Lab) -> Vec<String> {
    let tmp = lab.host("host1").tmp.clone();
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let mut found: Vec<String> = names(&tmp.join("tether-root"))
        .into_iter()
        .filter(|n| n.ends_with(".k"))
        .collect();
    found.extend(
        names(&tmp)
            .into_iter()
            .filter(|n| n.starts_with("tether-cmd.")),
    );
    found
}

/// A command too long for one exec request is written to the host first; a deadline or a stop
/// that comes while it is written means it never starts, and what was written goes (stop 35
/// tester t14: `--timeout 5ms` left the command's text on the host, run after run, and a
/// Ctrl-C during the writing still started the command, 1.7 s later, only to kill it).
#[test]
fn a_long_command_stopped_while_it_is_written_never_starts_and_leaves_nothing() {
    let lab = Lab::builder().names(&["host1"]).start();
    let marker = lab.host("host1").root_dir.join("marker");
    let command = format!("echo ran >> /srv/marker # {}", "x".repeat(40_000));
    for pty in [false, true] {
        let mut args = vec!["run", "--timeout", "1ms", "--hosts", "host1"];
        if pty {
            args.push("--pty");
        }
        args.push("--");
        let out = Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&args)
            .arg(&command)
            .run();
        out.status(1)
            .stdout_contains("it had not started on the host, and never will");
        assert!(!marker.exists(), "pty {pty}: it ran");
        assert_eq!(staged_files(&lab), Vec::<String>::new(), "pty {pty}");
        // Nor later: an exec's sh that writes the file may start after tether has exited.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(staged_files(&lab), Vec::<String>::new(), "pty {pty}, later");
    }
    // The exec's sh that writes the command makes its file a second late, after the deadline
    // and after what removes it for the deadline (stop 36 CI: `--timeout 1ms` left `ID.k`):
    // its first `chmod` (of the private directory) takes a second.
    // The host's own program (replaced in its mount namespace) runs the real one after `first`.
    let wrap = |name: &str, first: &str| {
        lab.replace_program("host1", name, &format!("{first}\nexec \"$REAL\" \"$@\""));
    };
    wrap("chmod", "[ -e /srv/late ] && rm /srv/late && sleep 1");
    std::fs::write(
        lab.host("host1").home.join(".bashrc"),
        "[ -e /srv/slow ] && sleep 1\n",
    )
    .unwrap();
    std::fs::write(lab.host("host1").root_dir.join("late"), "").unwrap();
    Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--timeout", "1ms", "--hosts", "host1", "--"])
        .arg(&command)
        .run()
        .status(1)
        .stdout_contains("it had not started on the host, and never will");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!lab.host("host1").root_dir.join("late").exists());
    assert!(!marker.exists(), "late: it ran");
    assert_eq!(staged_files(&lab), Vec::<String>::new(), "late");
    // A PTY command whose deadline comes in its own exec, before its sh has read and removed
    // the file (its `cat` of it takes a second): the terminal's hangup ends the sh there, and
    // the file goes all the same (stop 36 tester t21: `--pty --timeout 15ms` left it).
    wrap("cat", "case \"$1\" in */tether-cmd.*) sleep 1;; esac");
    Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "run",
            "--pty",
            "--timeout",
            "500ms",
            "--hosts",
            "host1",
            "--",
        ])
        .arg(&command)
        .run()
        .status(1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists(), "pty, late cat: it ran");
    assert_eq!(staged_files(&lab), Vec::<String>::new(), "pty, late cat");
    lab.show_programs("host1", &["cat"]);
    // A login shell that takes a second: the Ctrl-C comes while the command is written.
    std::fs::write(lab.host("host1").root_dir.join("slow"), "").unwrap();
    let run = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--"])
        .arg(&command)
        .spawn_watched();
    std::thread::sleep(Duration::from_millis(400));
    support::net::signal(run.id(), libc::SIGINT);
    let out = run.wait_with_output();
    let text = support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(
        text.contains("it had not started on the host, and never will"),
        "{text}"
    );
    assert!(!marker.exists(), "it ran after the Ctrl-C:\n{text}");
    assert_eq!(staged_files(&lab), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(staged_files(&lab), Vec::<String>::new(), "later");
}

/// A summary row of a command given up says how long it ran, as every other row does (stop 35
/// tester t13: `timed out` had an empty duration column); the counts take it for a failure.
#[test]
fn a_timed_out_row_says_how_long_the_command_ran() {
    let lab = Lab::builder().names(&["host1"]).start();
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "run",
            "--timeout",
            "1s",
            "--hosts",
            "host1",
            "--",
            "sleep 30",
        ])
        .run();
    out.status(1).stdout_contains("summary: 0 ok, 1 failed, ");
    let row = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("host1") && l.contains("timed out"))
        .unwrap_or_else(|| panic!("no row:\n{}", out.stdout));
    assert!(row.contains("timed out  1.0 s"), "{row}");
}

/// The summary's counts tell a host that failed from one that tether stopped or never ran
/// (stop 38 tester t26: an interrupted `tether run` said `0 ok, 2 failed` of two hosts whose
/// rows said `stopped`).
#[test]
fn the_summary_counts_stopped_hosts_apart_from_failed_ones() {
    let lab = Lab::builder().names(&["host1", "host2"]).start();
    let run = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1,host2", "--", "sleep 30"])
        .spawn_watched();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !["host1", "host2"].iter().all(|h| {
        lab.host_pids(h).into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
        })
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the sleeps never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    support::net::signal(run.id(), libc::SIGINT);
    let out = run.wait_with_output();
    let text = support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(
        text.contains("\nsummary: 0 ok, 0 failed, 2 stopped, "),
        "{text}"
    );
}

/// An interrupted run names on stderr the hosts that had failed on their own, as a recipe's
/// interrupted step does (stop 61 tester t102: stderr said only `error: interrupted` while the
/// summary counted a host that could not be reached).
#[test]
fn an_interrupted_run_names_the_hosts_that_failed_on_their_own() {
    let lab = Lab::builder().names(&["host1", "host2"]).start();
    lab.stop_host("host2");
    let run = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1,host2", "--", "sleep 30"])
        .spawn_watched();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lab.host_pids("host1").into_iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the sleep never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    support::net::signal(run.id(), libc::SIGINT);
    let out = run.wait_with_output();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("error: interrupted; 1 of 2 hosts failed"),
        "{stderr}"
    );
    assert!(stderr.contains("host2: "), "{stderr}");
}

/// While a reader that is behind holds a command's output back, its `--timeout` still ends it
/// on time, and so does a Ctrl-C (stop 35 tester t15: with the host's worker waiting for room
/// in the backlog, a command that printed much ran past its timeout and was reported `ok`,
/// and a Ctrl-C reached the host only once the reader went on).
#[test]
fn a_held_back_command_still_meets_its_timeout_and_its_stop() {
    let lab = Lab::builder().names(&["host1"]).start();
    let running = |needle: &str| {
        lab.host_pids("host1").into_iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
    };
    for (sleep, stop) in [("sleep 27.3", None), ("sleep 27.4", Some(libc::SIGINT))] {
        let mut args = vec!["run", "--hosts", "host1"];
        if stop.is_none() {
            args.extend(["--timeout", "2s"]);
        }
        args.push("--");
        let mut child = Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&args)
            .arg(&format!("seq 1 3000000; {sleep}"))
            .spawn();
        std::thread::sleep(Duration::from_secs(3));
        if let Some(signal) = stop {
            support::net::signal(child.id(), signal);
        }
        // Nothing has read tether's stdout yet: the stop reaches the host all the same.
        let deadline = std::time::Instant::now() + Duration::from_secs(12);
        while running(sleep) {
            assert!(
                std::time::Instant::now() < deadline,
                "`{sleep}` still runs with tether's output unread"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let (out, status) = read_to_end(&mut child);
        let tail: String = out.lines().rev().take(12).collect::<Vec<_>>().join("\n");
        match stop {
            None => {
                assert_eq!(status.code(), Some(1), "{tail}");
                assert!(out.contains("timed out"), "{tail}");
            }
            Some(_) => assert_eq!(status.code(), Some(130), "{tail}"),
        }
    }
}

/// Reads a spawned tether's stdout until it holds `needle`, then closes it, as `| head` does;
/// waits (at most 30 s) for tether to end: its status and stderr.
fn close_stdout_at(
    child: &mut std::process::Child,
    needle: &str,
) -> (std::process::ExitStatus, String) {
    use std::io::Read as _;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stdout.read(&mut buf).expect("tether's stdout");
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend(&buf[..n]);
    }
    drop(stdout);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tether") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tether still runs 30 s after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("tether's stderr");
    (status, stderr)
}

/// A reader that goes away (`tether run ... | head`, `tether deploy | head`) stops tether's
/// run as a Ctrl-C does: its remote commands are stopped, its failure hooks clean up, and it
/// exits 141 (stop 35 tester t15: tether exited at its next line, and the commands, detached
/// from their connection by the supervisor, ran on with their files on the hosts; a deploy
/// left its lock and its unfinished release). `ssh host cmd | head` ends the remote command
/// too: sshd closes its pipes and its next write fails.
#[test]
fn a_reader_that_goes_away_stops_the_run_as_a_ctrl_c_does() {
    let lab = Lab::builder().names(&["host1", "host2"]).start();
    let running = |needle: &str| {
        ["host1", "host2"].iter().any(|h| {
            lab.host_pids(h).into_iter().any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
            })
        })
    };
    let dir = empty_dir();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "server(\"host1\", #{ roles: [\"app\"] });\nserver(\"host2\", #{ roles: [\"app\"] });\n\
         task(\"t\", || { on(\"app\", \"while :; do echo tick; sleep 0.17; done\"); });\n\
         on_failure(|err| { on(\"app\", \"echo $$ > /srv/cleaned\"); });\n",
    )
    .unwrap();
    for (args, sleep) in [
        (
            vec![
                "run",
                "--hosts",
                "host1,host2",
                "--",
                "while :; do echo tick; sleep 0.13; done",
            ],
            "sleep 0.13",
        ),
        (vec!["t"], "sleep 0.17"),
    ] {
        let mut child = Tether::new()
            .current_dir(dir.path())
            .ssh_config(&lab.ssh_config())
            .args(&args)
            .spawn();
        let (status, stderr) = close_stdout_at(&mut child, "| tick");
        assert_eq!(status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!running(sleep), "{args:?}: `{sleep}` still runs: {stderr}");
        assert!(
            stderr.contains(
                "stdout was closed by its reader: no new commands; stopping running ones"
            ),
            "{args:?}: {stderr}"
        );
        for h in ["host1", "host2"] {
            assert_eq!(
                lab.host(h).root_dir.join("cleaned").exists(),
                args == ["t"],
                "{args:?} {h}: the failure hook ran, or did not"
            );
        }
    }
}

/// A reader that goes away while the commands print nothing stops the run then, not at
/// tether's next write (stop 36 tester t20: a quiet command ran on until it wrote, with the
/// reader long gone).
#[test]
fn a_reader_that_goes_away_during_a_quiet_command_stops_it_then() {
    let lab = Lab::builder().names(&["host1"]).start();
    let mut child = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "run",
            "--hosts",
            "host1",
            "--",
            "echo start; sleep 31.7; echo end",
        ])
        .spawn();
    let closed = std::time::Instant::now();
    let (status, stderr) = close_stdout_at(&mut child, "| start");
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(
        closed.elapsed() < Duration::from_secs(15),
        "{:?}: {stderr}",
        closed.elapsed()
    );
    assert!(
        stderr.contains("stdout was closed by its reader: no new commands; stopping running ones"),
        "{stderr}"
    );
    let running = lab.host_pids("host1").into_iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("31.7"))
    });
    assert!(!running, "the sleep still runs: {stderr}");
}

/// A run its stdout's reader stopped says so in its last words, not `interrupted` (stop 61
/// tester t102: `tether -n TASK | head -1` ended with `error: interrupted`), and exits 141.
#[test]
fn a_run_whose_reader_went_away_says_so() {
    let dir = empty_dir();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "server(\"a1\", #{ roles: [\"web\"] });\n\
         task(\"t\", || { for i in 0..5000 { on(\"web\", \"echo \" + i); } });\n",
    )
    .unwrap();
    let mut child = Tether::new()
        .current_dir(dir.path())
        .args(&["-n", "t"])
        .spawn();
    let (status, stderr) = close_stdout_at(&mut child, "echo 3");
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(
        stderr.ends_with("error: stopped: stdout was closed by its reader\n"),
        "{stderr}"
    );
}

/// A reader that goes away while a failed run's failure hooks clean up lets them finish, and
/// the run's own failure stays said (stop 36 tester t18: it became `error: interrupted`,
/// the failed step named nowhere).
#[test]
fn a_reader_gone_during_the_failure_hooks_leaves_the_failure_said() {
    let lab = Lab::builder().names(&["host1"]).start();
    let dir = empty_dir();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "server(\"host1\", #{ roles: [\"app\"] });\n\
         task(\"t\", || { on(\"app\", \"echo broke >&2; exit 5\"); });\n\
         on_failure(|err| { on(\"app\", \"i=0; while [ $i -lt 40 ]; do echo hook $i; i=$((i+1)); sleep 0.05; done; echo done > /srv/cleaned\"); print(\"the hook says: release 7 is live\"); });\n",
    )
    .unwrap();
    let mut child = Tether::new()
        .current_dir(dir.path())
        .ssh_config(&lab.ssh_config())
        .args(&["t"])
        .spawn();
    let (status, stderr) = close_stdout_at(&mut child, "hook 0");
    assert_eq!(status.code(), Some(141), "{stderr}");
    assert!(stderr.contains("exit status 5"), "{stderr}");
    assert!(
        stderr
            .contains("stdout was closed by its reader: the failure hooks, which clean up, finish"),
        "{stderr}"
    );
    assert!(!stderr.contains("interrupted"), "{stderr}");
    // What the hook says once stdout is gone goes to stderr (stop 36 tester t19: deploy:failed's
    // `release ... is live` was lost).
    assert!(
        stderr.contains("the hook says: release 7 is live"),
        "{stderr}"
    );
    // The run log says the status the process ends with (t19: 130).
    let log = std::fs::read_to_string(dir.path().join("log/tether.log")).expect("the run log");
    let finished = log
        .lines()
        .find(|l| l.contains("\"run_finished\""))
        .unwrap_or_else(|| panic!("no run_finished: {log}"));
    assert!(finished.contains("\"exit_code\":141"), "{finished}");
    assert!(
        lab.host("host1").root_dir.join("cleaned").exists(),
        "{stderr}"
    );
}

/// A login shell that ends before the command starts (a ~/.bashrc that exits) is said as such,
/// with what it printed, never as a ChannelTimeout cutting a running command off (stop 36
/// tester t22).
#[test]
fn a_login_shell_that_ends_before_the_command_is_said_as_such() {
    let lab = Lab::builder().names(&["host1"]).start();
    // Ended with a status of its own (as /bin/false or nologin do): that is the login shell's,
    // not the command's (stop 45 tester t56: "`echo hi` failed with exit status 1").
    for (bashrc, said, not_said) in [
        // Without a status, as a channel the server closes: a supervised command's check on
        // the host whether it started ends the same way, and whether it ran is not known
        // (stop 56 tester t89).
        (
            "echo bye from bashrc; exit 0\n",
            "a startup file such as ~/.bashrc that exits",
            "while the command was running",
        ),
        (
            "echo bye from bashrc; exit 3\n",
            "the login shell ended with exit status 3 before the command started",
            "failed with exit status 3",
        ),
    ] {
        std::fs::write(lab.host("host1").home.join(".bashrc"), bashrc).unwrap();
        for pty in [false, true] {
            let mut args = vec!["run", "--hosts", "host1"];
            if pty {
                args.push("--pty");
            }
            args.extend(["--", "touch /srv/ran_it"]);
            let out = Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&args)
                .run();
            let text = format!("{}{}", out.stdout, out.stderr);
            out.status(1);
            assert!(text.contains(said), "pty {pty}: {text}");
            assert!(!text.contains(not_said), "pty {pty}: {text}");
            assert!(text.contains("bye from bashrc"), "pty {pty}: {text}");
            assert!(!lab.host("host1").root_dir.join("ran_it").exists());
        }
    }
}

/// A command is given up at its deadline however soon after it its result arrives: one whose
/// result came after the deadline (the stop found it ended) is timed out, every time (stop 42
/// tester t45: `--timeout 1ms -- 'sleep 0.02'` was `ok 60 ms` or `timed out` by turns).
#[test]
fn a_result_that_arrives_after_the_deadline_is_timed_out_every_time() {
    let lab = Lab::builder().names(&["host1", "host2"]).start();
    for (timeout, command) in [
        ("1ms", "sleep 0.02"),
        ("2ms", "true"),
        ("3ms", "sleep 0.05"),
    ] {
        for round in 0..4 {
            let out = Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&["run", "--timeout", timeout, "--hosts", "host1,host2", "--"])
                .arg(command)
                .run();
            out.status(1)
                .stdout_contains("summary: 0 ok, 2 failed, ")
                .stderr_contains(&format!("host1: `{command}` did not finish within"));
            assert!(
                !out.stdout.contains(" ok "),
                "{timeout} {command} round {round}:\n{}",
                out.stdout
            );
        }
    }
}

/// A command that timed out shows the last lines it wrote on stderr, as a failed command's
/// failure does, its clean-up on SIGTERM included (stop 51 tester t76: `did not finish within
/// 3.0 s` alone, for a command that had said why it waited); one that wrote none, and a
/// PTY's (whose stderr is its terminal's stdout), show none.
#[test]
fn a_command_that_timed_out_shows_the_tail_of_its_stderr() {
    let lab = Lab::builder().names(&["host1"]).start();
    let timed_out = |pty: bool, command: &str| {
        let mut args = vec!["run", "--timeout", "2s", "--hosts", "host1"];
        if pty {
            args.push("--pty");
        }
        args.push("--");
        let out = Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&args)
            .arg(command)
            .run();
        out.status(1)
            .stderr_contains(&format!("host1: `{command}` did not finish within 2.0 s"));
        out
    };
    let command = "echo one >&2; echo waiting for the lock >&2; echo out; \
                   trap 'echo cleaning up >&2; exit 1' TERM; sleep 30 & wait";
    timed_out(false, command).stderr_contains(&format!(
        "host1: `{command}` did not finish within 2.0 s\n  stderr (last lines):\n    one\n    \
         waiting for the lock\n    cleaning up\n"
    ));
    for (pty, command) in [
        (false, "echo out; sleep 30"),
        (true, "echo err >&2; sleep 30"),
    ] {
        timed_out(pty, command)
            .stderr_contains(&format!("host1: `{command}` did not finish within 2.0 s\n"))
            .stderr_lacks("stderr (last lines)");
    }
}

/// A failure's tail counts every byte it leaves out of a line, those `tether run` did not keep
/// (it keeps a stream's last 64 KiB) included, and marks a line whose start it did not keep
/// (stop 51 tester t78: a line of 3 MB said `… (65036 more bytes)` after exit 1, and `(74965
/// more bytes)` after a timeout).
#[test]
fn a_tail_counts_the_bytes_tether_run_did_not_keep() {
    let lab = Lab::builder().names(&["host1"]).start();
    let line = "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo >&2";
    for (timeout, end) in [(None, "exit 1"), (Some("2s"), "sleep 30")] {
        let mut args = vec!["run", "--hosts", "host1"];
        if let Some(t) = timeout {
            args.extend(["--timeout", t]);
        }
        let out = Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&args)
            .args(&["--", &format!("{line}; echo last >&2; {end}")])
            .run();
        out.status(1).stderr_contains(&format!(
            "  stderr (last lines):\n    …{}… (2999500 more bytes)\n    last\n",
            "x".repeat(500)
        ));
    }
}

/// `run --pty` on a terminal gives each host's pseudo-terminal the size of tether's own, as
/// `ssh -tt` does (from its stdin's TIOCGWINSZ); without one, 80x24 (tester t128: `stty size`
/// said `24 80` on a 132x50 terminal).
#[test]
fn a_pty_command_gets_the_size_of_the_terminal_tether_runs_on() {
    let lab = Lab::start(1);
    let pty = support::pty::Pty::new(132, 50);
    let mut child = pty.spawn(
        Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["run", "--pty", "--hosts", "host1", "--", "stty size"])
            .command(),
    );
    let status = support::pty::wait(&mut child, Duration::from_secs(60), &pty);
    let screen = pty.output();
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("| 50 132"), "{screen:?}");
    // Not on a terminal: the size libssh2 asks for by default.
    Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--pty", "--hosts", "host1", "--", "stty size"])
        .run()
        .status(0)
        .stdout_contains("| 24 80");
}
