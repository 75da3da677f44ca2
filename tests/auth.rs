//! The order keys are offered in, against sshd with `MaxAuthTries 2` and an ssh-agent full of
//! keys: the identities the config names come first (the agent's copy of one instead of its
//! file), the agent's other keys after them; a server that gives up ("Too many authentication
//! failures") is reported with its words and what to change.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::agent::Agent;
use support::lab::Lab;
use support::tether::{Output, Tether};

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// host1's config without the lab's identity lines, with `extra` first.
fn config(lab: &Lab, name: &str, extra: &str) -> PathBuf {
    let base: String = std::fs::read_to_string(lab.ssh_config())
        .unwrap()
        .lines()
        .filter(|l| !l.contains("IdentityFile") && !l.contains("IdentitiesOnly"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = lab.dir().join(format!("cfg_{name}"));
    std::fs::write(&path, format!("Host host1\n{extra}{base}")).unwrap();
    path
}

fn tether(config: &Path, agent: &Agent) -> Output {
    Tether::new()
        .ssh_config(config)
        .env("SSH_AUTH_SOCK", agent.sock.to_str().unwrap())
        .args(&["run", "--hosts", "host1", "--", "echo in"])
        .run()
}

fn ssh_connects(config: &Path, agent: &Agent) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .env("SSH_AUTH_SOCK", &agent.sock)
        .args(["-o", "BatchMode=yes", "host1", "true"])
        .output()
        .unwrap()
        .status
        .success()
}

/// Runs host1 under `config` with ssh (BatchMode) and asserts it connects or not as
/// `connects` says (`what` names the case), then with tether (`echo reached`), which must do
/// the same: exit 0 and `reached`, or exit `refused` without it. Returns tether's output, both
/// streams.
fn as_ssh_does(config: &Path, what: &str, connects: bool, refused: i32) -> String {
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "host1", "true"])
        .output()
        .unwrap();
    assert_eq!(
        ssh.status.success(),
        connects,
        "{what}: ssh itself: {}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    let out = Tether::new()
        .ssh_config(config)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .run();
    let text = format!("{}{}", out.stdout, out.stderr);
    let want = if connects { 0 } else { refused };
    assert_eq!(out.status, want, "{what}\n{text}");
    assert_eq!(out.stdout.contains("reached"), connects, "{what}\n{text}");
    text
}

/// sshd's count of refused keys so far (`LogLevel VERBOSE` logs each).
fn failures(lab: &Lab) -> usize {
    let log = std::fs::read_to_string(&lab.host("host1").log).unwrap_or_default();
    log.matches("Failed publickey for root").count()
}

#[test]
fn configured_keys_are_offered_before_other_agent_keys() {
    let lab = Lab::start(1);
    lab.reconfigure("host1", "MaxAuthTries 2");
    let dir = lab.dir().join("auth");
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        &dir,
        "for i in 1 2 3 4 5 6 7 8 9 10; do ssh-keygen -q -t ed25519 -N '' -C stranger$i -f k$i; done",
    );
    let agent = Agent::empty(&dir, "agent.sock");
    for i in 1..=10 {
        agent.add(&dir.join(format!("k{i}")));
    }
    let right = lab.client_key();
    let d = dir.display();

    // The right key as IdentityFile, ten other keys in the agent: the configured key goes
    // first, and is accepted at once.
    let file_first = config(
        &lab,
        "file_first",
        &format!("  IdentityFile {}\n", right.display()),
    );
    let before = failures(&lab);
    let out = tether(&file_first, &agent);
    out.status(0);
    assert_eq!(out.host_lines("host1", '|'), ["in"]);
    assert_eq!(
        failures(&lab),
        before,
        "a key was refused before the configured one"
    );
    assert_eq!(lab.accepted_logins("host1"), 1);
    // (ssh offers the agent's keys before a configured key that is not in the agent, and is
    // cut off: tether's order is deliberately the configured keys first.)
    assert!(!ssh_connects(&file_first, &agent));

    // The right key only in the agent, beyond the limit: sshd cuts the connection; tether
    // says so with sshd's words and the way out, as ssh fails too.
    agent.add(&right);
    assert_eq!(agent.list().len(), 11);
    let only_agent = config(&lab, "only_agent", "  IdentityFile none\n");
    assert!(!ssh_connects(&only_agent, &agent));
    let before = failures(&lab);
    let out = tether(&only_agent, &agent);
    // (sshd logs each refused key: the counts above and below measure something.)
    assert_eq!(failures(&lab), before + 2);
    out.status(3)
        .stdout_contains(
            "host1: the server closed the connection during authentication for user root after \
             refusing 2 key(s) (\"Too many authentication failures\"); tried: ssh-agent key \
             stranger1 (SHA256:",
        )
        .stdout_contains(
            "hint: sshd allows only a few attempts per connection (MaxAuthTries) and tether \
             offers the IdentityFile keys, then every ssh-agent key: name the key this host \
             accepts with IdentityFile and set `IdentitiesOnly yes` for it",
        )
        .stdout_lacks("stranger3");
    assert_eq!(lab.accepted_logins("host1"), 1);

    // The configured key encrypted on disk, its copy in the agent (last): the copy is used,
    // first, with no passphrase asked (BatchMode); ssh does the same.
    sh(
        &dir,
        &format!("cp {} enc && chmod 600 enc && ssh-keygen -q -p -N secret-pw -f enc && cp {}.pub enc.pub", right.display(), right.display()),
    );
    let agent_copy = config(
        &lab,
        "agent_copy",
        &format!("  IdentityFile {d}/enc\n  BatchMode yes\n"),
    );
    assert!(ssh_connects(&agent_copy, &agent));
    let before = failures(&lab);
    tether(&agent_copy, &agent).status(0);
    assert_eq!(failures(&lab), before);
    // Without the .pub file the agent's copy is found through the key file's own header.
    std::fs::remove_file(dir.join("enc.pub")).unwrap();
    tether(&agent_copy, &agent).status(0);

    // IdentitiesOnly with more wrong identity files than the server allows.
    let wrong = config(
        &lab,
        "wrong_files",
        &format!(
            "  IdentitiesOnly yes\n  IdentityFile {d}/k1\n  IdentityFile {d}/k2\n  IdentityFile {d}/k3\n"
        ),
    );
    tether(&wrong, &agent)
        .status(3)
        .stdout_contains(&format!(
            "after refusing 2 key(s) (\"Too many authentication failures\"); tried: \
             ssh-agent's copy of {d}/k1 refused; ssh-agent's copy of {d}/k2 refused; hint: \
             sshd allows only a few attempts per connection (MaxAuthTries): name the key this \
             host accepts first with IdentityFile"
        ))
        .stdout_lacks("k3");

    // A limit the keys fit in: every key refused is an ordinary authentication failure.
    // (sshd keeps the first value of a keyword: change the line, then restart it.)
    let sshd_config = &lab.host("host1").sshd_config;
    let text = std::fs::read_to_string(sshd_config).unwrap();
    std::fs::write(
        sshd_config,
        text.replace("MaxAuthTries 2", "MaxAuthTries 30"),
    )
    .unwrap();
    lab.reconfigure("host1", "# MaxAuthTries 30");
    tether(&only_agent, &agent).status(0);
    tether(&wrong, &agent)
        .status(3)
        .stdout_contains("host1: authentication failed for user root (ssh-agent's copy of");
}

/// `IdentityFile` is read as ssh reads it (`sshkey_load_public`: the file itself as a public
/// key, then `FILE.pub`, then the private key's header): a `.pub` whose private key lives only
/// in ssh-agent (a hardware key, 1Password) selects that agent key, also under
/// `IdentitiesOnly yes`, and nothing is refused first; without the agent's copy it fails as
/// ssh fails, naming why, and is never sent as if it were a private key.
#[test]
fn an_identity_file_that_is_a_public_key_selects_the_agents_private_key() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("pubonly");
    std::fs::create_dir_all(&dir).unwrap();
    let right = lab.client_key();
    sh(
        &dir,
        &format!(
            "ssh-keygen -q -t ed25519 -N '' -C stranger -f stranger && \
             cp {r}.pub only.pub && cp {r}.pub beside.pub && cp {r} beside && chmod 600 beside && \
             cp {r}.pub strict.pub && chmod 600 strict.pub && cp {r}.pub gone.pub",
            r = right.display()
        ),
    );
    let d = dir.display();
    // The stranger first: an agent key offered before the configured one would be refused.
    let agent = Agent::empty(&dir, "agent.sock");
    agent.add(&dir.join("stranger"));
    agent.add(&right);
    let no_agent = Agent::empty(&dir, "empty.sock");

    let cases = [
        // (name, config lines, agent, ssh and tether connect)
        (
            "pub_only",
            format!("  IdentitiesOnly yes\n  IdentityFile {d}/only.pub\n"),
            &agent,
            true,
        ),
        (
            "pub_0600",
            format!("  IdentitiesOnly yes\n  IdentityFile {d}/strict.pub\n"),
            &agent,
            true,
        ),
        (
            "pub_not_only",
            format!("  IdentitiesOnly no\n  IdentityFile {d}/only.pub\n"),
            &agent,
            true,
        ),
        // The private key file named, its .pub beside, the key also in the agent.
        (
            "private_and_agent",
            format!("  IdentitiesOnly yes\n  IdentityFile {d}/beside\n"),
            &agent,
            true,
        ),
        // A private key file that does not exist, its .pub does: ssh uses the .pub.
        (
            "missing_private",
            format!("  IdentitiesOnly yes\n  IdentityFile {d}/gone\n"),
            &agent,
            true,
        ),
        // A .pub with no agent copy: ssh offers it, cannot load it as a private key, fails;
        // also when the private key lies beside it.
        (
            "pub_no_agent",
            format!("  IdentitiesOnly yes\n  IdentityFile {d}/only.pub\n"),
            &no_agent,
            false,
        ),
        (
            "pub_private_beside",
            format!("  IdentitiesOnly yes\n  IdentityFile {d}/beside.pub\n"),
            &no_agent,
            false,
        ),
    ];
    for (name, lines, agent, connects) in cases {
        let cfg = config(&lab, name, &lines);
        assert_eq!(ssh_connects(&cfg, agent), connects, "ssh, case {name}");
        let before = failures(&lab);
        let out = tether(&cfg, agent);
        if connects {
            out.status(0);
            assert_eq!(out.host_lines("host1", '|'), ["in"], "case {name}");
            assert_eq!(
                failures(&lab),
                before,
                "case {name}: a key was refused first"
            );
        } else {
            let file = lines.split_whitespace().last().unwrap().to_string();
            out.status(3).stdout_contains(&format!(
                "host1: authentication failed for user root ({file} is a public key and \
                 ssh-agent holds no private key for it"
            ));
            assert_eq!(failures(&lab), before, "case {name}: a key was offered");
        }
    }
}

/// `PreferredAuthentications` lists the only methods ssh tries, compared as written; one
/// without `publickey` makes ssh offer no key, and tether (public keys only) refuses it for
/// that host, naming the line, where it logged in with the key (fresh-eyes finding, stop 28).
/// Each list is checked against ssh itself.
#[test]
fn preferred_authentications_without_publickey_is_refused_as_ssh_offers_no_key() {
    let lab = Lab::start(1);
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let cases = [
        ("keyboard-interactive", false),
        ("password,keyboard-interactive", false),
        ("PublicKey", false),
        ("hostbased,gssapi-with-mic", false),
        ("publickey", true),
        ("gssapi-with-mic,publickey", true),
        ("keyboard-interactive,publickey,password", true),
    ];
    for (i, (methods, connects)) in cases.into_iter().enumerate() {
        let path = lab.dir().join(format!("cfg_preferred_{i}"));
        std::fs::write(
            &path,
            format!("Host host1\n  PreferredAuthentications {methods}\n{base}"),
        )
        .unwrap();
        let text = as_ssh_does(&path, methods, connects, 2);
        if !connects {
            assert!(
                text.contains(&format!(
                    "{}:2: PreferredAuthentications {methods} is refused: it leaves out \
                     publickey",
                    path.display()
                )),
                "{methods}\n{text}"
            );
        }
    }
}

/// `PubkeyAcceptedAlgorithms` decides which keys ssh offers (a key whose type the list
/// leaves out is skipped; an RSA key also counts as its SHA-2 signatures) and which RSA
/// signature it makes. tether failed every host under any such line, `+ssh-rsa` included,
/// with "leaves no algorithm that libssh2 supports (it supports: )", as libssh2 cannot list
/// its signature algorithms (fresh-eyes finding, stop 28). Each list is checked against ssh
/// itself, with the lab's ed25519 key and with an RSA key.
/// A private key file that another user could read is ignored, as ssh ignores it ("WARNING:
/// UNPROTECTED PRIVATE KEY FILE!"), and the failure says why; the agent's copy of its key is
/// still offered, as ssh offers it (stop 39 tester t30: a key of mode 0644 was used,
/// silently, where ssh refused it).
#[test]
fn a_private_key_others_can_read_is_ignored_as_ssh_ignores_it() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("modes");
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        &dir,
        &format!("cp {} key && chmod 600 key", lab.client_key().display()),
    );
    let key = dir.join("key");
    let lines = format!(
        "  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n",
        key.display()
    );
    let path = config(&lab, "modes", &lines);
    for (mode, connects) in [
        (0o600, true),
        (0o400, true),
        (0o644, false),
        (0o640, false),
        (0o604, false),
        (0o610, false),
    ] {
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        let text = as_ssh_does(&path, &format!("{mode:o}"), connects, 3);
        if !connects {
            assert!(
                text.contains(&format!("permissions {mode:04o} are too open")),
                "{mode:o}: {text}"
            );
        }
    }
    // The agent's copy of a key whose file is too open: offered by both.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let agent = Agent::empty(&dir, "agent.sock");
    agent.add(&lab.client_key());
    let with_agent = config(
        &lab,
        "modes_agent",
        &format!("  IdentityFile {}\n  IdentitiesOnly yes\n", key.display()),
    );
    assert!(ssh_connects(&with_agent, &agent));
    tether(&with_agent, &agent).status(0).stdout_contains("in");
}

#[test]
fn pubkey_accepted_algorithms_selects_the_keys_offered_as_ssh_does() {
    let lab = Lab::start(1);
    let rsa = lab.dir().join("client_rsa");
    sh(
        lab.dir(),
        &format!(
            "ssh-keygen -q -t rsa -b 2048 -N '' -f {0} && cat {0}.pub >> authorized_keys",
            rsa.display()
        ),
    );
    let ed25519 = lab.client_key();
    let cases = [
        (&ed25519, "-ssh-ed25519", false),
        (&ed25519, "rsa-sha2-512", false),
        (&ed25519, "ssh-ed25519", true),
        (&ed25519, "+ssh-rsa", true),
        (&ed25519, "ssh-ed*", true),
        (&ed25519, "^ssh-ed25519-cert-v01@openssh.com", true),
        (&rsa, "rsa-sha2-256", true),
        (&rsa, "rsa-sha2-512,ssh-ed25519", true),
        (&rsa, "+ssh-rsa", true),
        (&rsa, "ssh-ed25519", false),
        (&rsa, "-rsa-sha2-*", false),
        (&rsa, "ssh-rsa", false),
    ];
    for (i, (key, list, connects)) in cases.into_iter().enumerate() {
        let name = format!("pubkey_{i}");
        let extra = format!(
            "  PubkeyAcceptedAlgorithms {list}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             IdentityAgent none\n",
            key.display()
        );
        let path = config(&lab, &name, &extra);
        let key_name = key.file_name().unwrap().to_string_lossy();
        let text = as_ssh_does(&path, &format!("{key_name} {list}"), connects, 3);
        let skipped = format!(
            "key {} not offered: PubkeyAcceptedAlgorithms {list} leaves out its type",
            key.display()
        );
        // `ssh-rsa` alone offers the RSA key (its type is listed), which sshd refuses.
        let offered = connects || (key == &rsa && list == "ssh-rsa");
        assert_eq!(
            text.contains(&skipped),
            !offered,
            "{key_name} {list}\n{text}"
        );
    }
    // A list that leaves no key type at all (ssh would offer no key and fail to log in) is
    // refused when the config is read, naming the line.
    let path = config(&lab, "pubkey_none", "  PubkeyAcceptedAlgorithms -*\n");
    let out = Tether::new()
        .ssh_config(&path)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.status, 2, "{text}");
    assert!(
        text.contains(&format!(
            "{}:2: PubkeyAcceptedAlgorithms -* leaves no key type",
            path.display()
        )),
        "{text}"
    );
}

/// Makes host1's sshd ask `DIR/akc.sh` (an sh script of `body`) for the keys it accepts
/// (`DIR` must be a path no one but root can change, as sshd requires); the script's path.
fn authorized_keys_command(lab: &Lab, dir: &Path, body: &str) -> PathBuf {
    let script = dir.join("akc.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    sh(dir, "chmod 755 . akc.sh");
    lab.reconfigure(
        "host1",
        &format!(
            "AuthorizedKeysCommand {}\nAuthorizedKeysCommandUser root",
            script.display()
        ),
    );
    script
}

/// A connection that ends during authentication with no word from the server (its sshd
/// killed while it checks a key) is said as such, not as a refused key (fresh-eyes finding,
/// stop 28: "authentication failed for user root (key ... refused)" for a key sshd had
/// accepted; sshd says why whenever it ends a login itself, as the MaxAuthTries cases above
/// show). sshd is held in the check by an `AuthorizedKeysCommand` that sleeps (the key is not
/// in the lab's authorized_keys, so the command is asked), and its connection killed then.
#[test]
fn a_connection_killed_during_authentication_is_not_a_refused_key() {
    let lab = Lab::start(1);
    // sshd runs the command only from a path no one but root can change (/tmp is not).
    let dir = PathBuf::from(format!("/run/tether-test-akc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = lab.dir().join("akc-started");
    let script = authorized_keys_command(
        &lab,
        &dir,
        &format!("touch {}\nexec sleep 30", marker.display()),
    );
    let stranger = lab.dir().join("stranger");
    sh(
        lab.dir(),
        &format!("ssh-keygen -q -t ed25519 -N '' -f {}", stranger.display()),
    );
    let path = config(
        &lab,
        "killed",
        &format!(
            "  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n",
            stranger.display()
        ),
    );
    let child = Tether::new()
        .ssh_config(&path)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "sshd never asked the command"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    lab.kill_connections("host1");
    let out = child.wait_with_output().unwrap();
    let _ = Command::new("pkill").arg("-f").arg(&script).status();
    let _ = std::fs::remove_dir_all(&dir);
    let text = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains(
            "host1: the server closed the connection during authentication for user root, \
             with no word from the server (not a refusal"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("key {} not answered", stranger.display())),
        "{text}"
    );
    assert!(!text.contains("refused"), "{text}");
}

/// host1 made to hold every login while `gate` exists: the key `config`'s identity offers is
/// accepted only through an `AuthorizedKeysCommand` that waits for the gate to go (the lab's
/// authorized_keys does not hold it). The command lives under `/run/tether-test-NAME-PID`
/// (sshd runs it only from a path no one but root can change), which `done` removes.
struct SlowLogin {
    gate: PathBuf,
    config: PathBuf,
    dir: PathBuf,
}

impl SlowLogin {
    fn new(lab: &Lab, name: &str, extra: &str) -> SlowLogin {
        let dir = PathBuf::from(format!("/run/tether-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stranger = lab.dir().join(format!("{name}-key"));
        sh(
            lab.dir(),
            &format!("ssh-keygen -q -t ed25519 -N '' -f {}", stranger.display()),
        );
        let gate = lab.dir().join(format!("{name}-gate"));
        authorized_keys_command(
            lab,
            &dir,
            &format!(
                "while test -e {}; do sleep 0.05; done\ncat {}.pub",
                gate.display(),
                stranger.display()
            ),
        );
        let config = config(
            lab,
            name,
            &format!(
                "  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n{extra}",
                stranger.display()
            ),
        );
        SlowLogin { gate, config, dir }
    }

    fn done(self) {
        let _ = std::fs::remove_file(&self.gate);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A login the server does not answer within `ConnectTimeout` (tether's covers
/// authentication) is said as a timeout, not as a refused key (stop 60: a re-attach through
/// a slow login was said `authentication failed ... key refused` and given up at once, as a
/// refusal is; ssh, whose ConnectTimeout ends with the key exchange, waits).
#[test]
fn a_login_that_is_not_answered_in_time_is_a_timeout_not_a_refused_key() {
    let lab = Lab::start(1);
    let slow = SlowLogin::new(&lab, "slow-login", "  ConnectTimeout 1\n");
    std::fs::write(&slow.gate, "").unwrap();
    let out = Tether::new()
        .ssh_config(&slow.config)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.status, 3, "{text}");
    assert!(
        text.contains(
            "did not answer the login as root within 1.0 s (ConnectTimeout: tether's covers \
             authentication, ssh's does not)"
        ),
        "{text}"
    );
    assert!(!text.contains("refused"), "{text}");
    assert!(!text.contains("reached"), "{text}");
    // The same login answered in time is let in.
    std::fs::remove_file(&slow.gate).unwrap();
    let out = Tether::new()
        .ssh_config(&slow.config)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .run();
    slow.done();
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("reached"), "{}", out.stdout);
}

/// A re-attach whose login is not answered in time tries again, as after any other attempt
/// that did not get through, up to its bound: only a refusal ends it at once (stop 60: the
/// timeout was taken for a refused key, and the command, still running, was lost).
#[test]
fn a_reattach_whose_login_times_out_tries_again() {
    let lab = Lab::start(1);
    let slow = SlowLogin::new(&lab, "slow-reattach", "  ConnectTimeout 1\n");
    let marker = lab.host("host1").root_dir.join("marker");
    std::fs::write(&marker, "").unwrap();
    let child = Tether::new()
        .ssh_config(&slow.config)
        .args(&["--reattach", "20s", "run", "--hosts", "host1", "--"])
        .arg("echo ran >> /srv/marker; sleep 7; echo finished")
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&marker)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(&slow.gate, "").unwrap();
    lab.kill_connections("host1");
    // Attempts at about 0 and 2 s (1 s each, the ConnectTimeout) are not answered.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    std::fs::remove_file(&slow.gate).unwrap();
    let out = child.wait_with_output().unwrap();
    slow.done();
    let text = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("host1 | finished"), "{text}");
    assert!(text.contains("re-attached after"), "{text}");
    assert!(!text.contains("refused"), "{text}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
}
