//! Agent forwarding against real sshd: a remote command reaches a "git server" (another lab
//! host) that trusts only the deployer's key, which lives in a local ssh-agent.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::agent::Agent;
use support::lab::Lab;
use support::tether::Tether;

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_remote_command_uses_the_local_agent_only_when_forwarding_is_on() {
    let lab = Lab::start(2);
    let dir = lab.dir().join("agent-test");
    std::fs::create_dir_all(&dir).unwrap();
    // The deployer's key: in the agent only, trusted by the git server (host2). The lab hosts
    // share one authorized_keys file; tether itself logs in to host1 with it too.
    let key = dir.join("deploy_key");
    sh(
        &dir,
        &format!(
            "ssh-keygen -q -t ed25519 -N '' -C deployer -f {k} && cat {k}.pub >> {auth}",
            k = key.display(),
            auth = lab.dir().join("authorized_keys").display()
        ),
    );
    // A repository on the git server, as /srv/repo.git there.
    let git_srv = lab.host("host2").root_dir.clone();
    sh(
        &dir,
        &format!(
            "git init -q --bare {srv}/repo.git && git init -q work && cd work && \
             git -c user.name=t -c user.email=t@t commit -q --allow-empty -m one && \
             git push -q {srv}/repo.git HEAD:refs/heads/main",
            srv = git_srv.display()
        ),
    );
    let agent = Agent::start(&dir, &key);
    let port2 = lab.host("host2").port;
    let ls_remote = format!(
        "GIT_SSH_COMMAND='ssh -F /dev/null -p {port2} -o BatchMode=yes \
         -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR' \
         git ls-remote root@127.0.0.1:/srv/repo.git main"
    );
    let cfg_forward = dir.join("forward_config");
    std::fs::write(
        &cfg_forward,
        format!(
            "Host host1\n  ForwardAgent yes\n{}",
            std::fs::read_to_string(lab.ssh_config()).unwrap()
        ),
    )
    .unwrap();
    let run = |config: &Path, with_agent: bool| {
        let mut t = Tether::new()
            .ssh_config(config)
            .args(&["run", "--hosts", "host1", "--", &ls_remote]);
        if with_agent {
            t = t.env("SSH_AUTH_SOCK", agent.sock.to_str().unwrap());
        }
        t.run()
    };

    // ForwardAgent yes: the command on host1 lists the repository through the local agent.
    let started = Instant::now();
    let out = run(&cfg_forward, true);
    out.status(0);
    let lines = out.host_lines("host1", '|');
    assert!(
        lines.len() == 1 && lines[0].ends_with("\trefs/heads/main"),
        "{}",
        out.stdout
    );
    eprintln!(
        "git ls-remote through the forwarded agent: {:?}",
        started.elapsed()
    );

    // Without ForwardAgent the same command is refused by the git server.
    run(&lab.ssh_config(), true)
        .status(1)
        .stdout_contains("Permission denied");

    // The recipe's `forward_agent: true`, twice on one session (the agent channels of the
    // first command are gone, the second gets its own).
    let recipe = dir.join("recipe");
    std::fs::create_dir_all(&recipe).unwrap();
    std::fs::write(
        recipe.join("deploy.rhai"),
        format!(
            "server(\"host1\", #{{ forward_agent: true }});\n\
             task(\"ls\", || {{ on(\"all\", {q}); on(\"all\", |h| print(\"again: \" + capture({q}).len())); }});\n",
            q = format!("{ls_remote:?}")
        ),
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .current_dir(&recipe)
        .env("SSH_AUTH_SOCK", agent.sock.to_str().unwrap())
        .arg("ls")
        .run();
    out.status(0)
        .stdout_contains("refs/heads/main")
        .stdout_contains("again: 56");
    assert_eq!(lab.accepted_logins("host1"), 3);

    // Forwarding asked for without a local agent: a warning naming the host, and the command
    // runs without one (and is refused by the git server).
    let out = run(&cfg_forward, false);
    out.status(1).stdout_contains(
        "host1: agent forwarding was asked for (ForwardAgent / forward_agent), but there is no \
         local ssh-agent",
    );

    // A socket that ForwardAgent names is not forwarded where the host has no identity agent
    // (`IdentityAgent none`), as ssh's check_agent_present (stop 44 tester t53: it was).
    let cfg_none = dir.join("forward_path_config");
    std::fs::write(
        &cfg_none,
        format!(
            "Host host1\n  ForwardAgent {}\n  IdentityAgent none\n{}",
            agent.sock.display(),
            std::fs::read_to_string(lab.ssh_config()).unwrap()
        ),
    )
    .unwrap();
    run(&cfg_none, true)
        .status(1)
        .stdout_contains("IdentityAgent none, or SSH_AUTH_SOCK is not set")
        .stdout_contains("Permission denied");
}

#[test]
fn every_agent_identity_is_tried_not_only_the_first() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("agent-identities");
    std::fs::create_dir_all(&dir).unwrap();
    // The agent's first key is unknown to the host; its second is the lab's client key.
    let stranger = dir.join("stranger_key");
    sh(&dir, "ssh-keygen -q -t ed25519 -N '' -f stranger_key");
    let agent = Agent::start(&dir, &stranger);
    agent.add(&lab.client_key());
    assert_eq!(agent.list().len(), 2);
    // No identity files: only the agent can authenticate.
    let port = lab.host("host1").port;
    let cfg = dir.join("config");
    std::fs::write(
        &cfg,
        format!(
            "Host viaagent\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile none\n  UserKnownHostsFile {}\n",
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    Tether::new()
        .ssh_config(&cfg)
        .env("SSH_AUTH_SOCK", agent.sock.to_str().unwrap())
        .args(&[
            "run",
            "--hosts",
            "viaagent",
            "--",
            "echo in through the second key",
        ])
        .run()
        .status(0)
        .stdout_contains("viaagent | in through the second key");
}

/// Forwarding asked for where the local agent takes no connection (`SSH_AUTH_SOCK` naming
/// nothing, a regular file, a directory, a socket nobody listens on) is not asked of the
/// server, as ssh.c `check_agent_present` asks for none, and is said, naming the host (tester
/// t128: the host got an `SSH_AUTH_SOCK` that led nowhere, unsaid).
#[test]
fn an_agent_that_takes_no_connection_is_not_forwarded() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("dead-agent");
    std::fs::create_dir_all(dir.join("a-directory")).unwrap();
    std::fs::write(dir.join("a-file"), "").unwrap();
    // A socket whose listener is gone: bound, then closed.
    let dead = dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    let config = lab.config_with("dead-agent-config", "Host host1\n  ForwardAgent yes\n");
    for sock in [
        dir.join("nothing-here"),
        dir.join("a-file"),
        dir.join("a-directory"),
        dead,
    ] {
        let out = Tether::new()
            .ssh_config(&config)
            .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
            .args(&[
                "run",
                "--hosts",
                "host1",
                "--",
                "echo sock=${SSH_AUTH_SOCK:-none}",
            ])
            .run();
        out.status(0)
            .stdout_contains("sock=none")
            .stdout_contains(&format!(
                "host1: agent forwarding was asked for (ForwardAgent / forward_agent), but the \
                 local ssh-agent at {} takes no connection",
                sock.display()
            ));
    }
}

/// An ssh-agent that takes the connection and never answers is not waited for without end:
/// after a bound (the ConnectTimeout, 10 s at most) the login goes on without it, and a failed
/// login names it (tester t129: tether read it for over 10 minutes, past a SIGTERM; `ssh` hangs
/// there too). With an identity file the host accepts, the command runs.
#[test]
fn an_agent_that_never_answers_is_not_waited_for() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("mute-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("mute.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // Accepts every connection and keeps it, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let config = lab.config_with("mute-agent-config", "Host host1\n  ConnectTimeout 3\n");
    let started = Instant::now();
    run_through(&sock, &config)
        .status(0)
        .stdout_contains("logged-in");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Where only the agent could log in: the failure names it.
    let out = run_through(&sock, &agent_only_config(&lab, &dir));
    assert_ne!(out.status, 0);
    out.stderr_contains(&format!("ssh-agent at {} did not answer", sock.display()));
}

/// A config for host1 (ConnectTimeout 3) where only an agent's keys can log in: the lab's
/// identity file left out, its `IdentitiesOnly` undone.
fn agent_only_config(lab: &Lab, dir: &Path) -> std::path::PathBuf {
    let config = dir.join("config-agent-only");
    std::fs::write(
        &config,
        format!(
            "Host host1\n  ConnectTimeout 3\n  IdentitiesOnly no\n  IdentityFile /nonexistent/key\n{}",
            std::fs::read_to_string(lab.ssh_config())
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("IdentityFile"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .unwrap();
    config
}

/// `tether run` of `echo logged-in` on host1 under `config`, with the agent at `sock`.
fn run_through(sock: &Path, config: &Path) -> support::tether::Output {
    Tether::new()
        .ssh_config(config)
        .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
        .args(&["run", "--hosts", "host1", "--", "echo logged-in"])
        .run()
}

/// How a [`fake_agent`] answers a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    /// As asked: its key listed (it signs nothing).
    Listed,
    /// Never: it keeps the request, as an agent waiting for a touch nobody gives.
    Never,
    /// It closes the connection.
    Close,
    /// SSH_AGENT_FAILURE, as an agent whose `ssh-add -c` confirmation was denied.
    Refuse,
    /// A message of a type no request is answered with.
    Garbage,
    /// A signature (type 14) holding 20 bytes of junk, no algorithm and signature.
    Junk,
    /// Its key and 300 others: a list of about 16 KB, more than libssh2 reads.
    Huge,
}

/// A fake ssh-agent on `sock` whose key is the public half of `key` (its `.pub`), answering a
/// request for its keys as `at_list` says and one to sign as `at_sign` says; the receiver
/// gets the type of every request (11 for its keys, 13 to sign) as it comes.
fn fake_agent(
    sock: &Path,
    key: &Path,
    at_list: Answer,
    at_sign: Answer,
) -> std::sync::mpsc::Receiver<u8> {
    use base64::Engine as _;
    use std::io::{Read as _, Write as _};
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(public.split_whitespace().nth(1).unwrap())
        .unwrap();
    let string = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
    let listed = [
        &[12u8][..],
        &1u32.to_be_bytes(),
        &string(&blob),
        &string(b"fake agent key"),
    ]
    .concat();
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    let (asked, told) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let (listed, asked) = (listed.clone(), asked.clone());
            std::thread::spawn(move || loop {
                let mut len = [0u8; 4];
                if conn.read_exact(&mut len).is_err() {
                    return;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if conn.read_exact(&mut body).is_err() {
                    return;
                }
                let _ = asked.send(body.first().copied().unwrap_or_default());
                let answer = match body.first() {
                    Some(11) => at_list,
                    Some(13) => at_sign,
                    _ => Answer::Refuse,
                };
                let reply = match answer {
                    Answer::Listed => listed.clone(),
                    Answer::Never => continue,
                    Answer::Close => return,
                    Answer::Refuse => vec![5],
                    Answer::Garbage => vec![99, 1, 2, 3],
                    Answer::Junk => [&[14u8, 0, 0, 0, 20][..], &[7; 20]].concat(),
                    Answer::Huge => {
                        let others: Vec<u8> = (0..300u32)
                            .flat_map(|i| [string(&[i as u8; 40]), string(b"k")].concat())
                            .collect();
                        let mut huge = listed.clone();
                        huge[1..5].copy_from_slice(&301u32.to_be_bytes());
                        [huge, others].concat()
                    }
                };
                let framed = [&(reply.len() as u32).to_be_bytes()[..], &reply].concat();
                if conn.write_all(&framed).is_err() {
                    return;
                }
            });
        }
    });
    told
}

/// An ssh-agent that lists its keys and then fails a request to sign (never answers it,
/// closes the connection, refuses, answers with garbage) is named for what it did, never as
/// the server closing the connection or refusing the key, and is not waited for without end
/// (tester t130: the login, and the run, waited past a SIGTERM for an agent that never
/// signed; libssh2 reads the agent without a bound). Where the key's file can sign, it does
/// so instead and the command runs.
#[test]
fn an_agent_that_fails_to_sign_is_named_and_the_key_file_signs_instead() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("unsigning-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let with_file = lab.config_with("unsigning-with-file", "Host host1\n  ConnectTimeout 3\n");
    let agent_only = agent_only_config(&lab, &dir);
    for (n, (at_sign, said)) in [
        (
            Answer::Never,
            "ssh-agent did not answer the request to sign with it within 3.0 s",
        ),
        (
            Answer::Close,
            "ssh-agent closed the connection when asked to sign with it",
        ),
        (Answer::Refuse, "ssh-agent refused to sign with it"),
        (
            Answer::Garbage,
            "ssh-agent answered the request to sign with it with a message of type 99, which answers no such request",
        ),
        // Tester t131: said as the server refusing the key, and the file never signed.
        (
            Answer::Junk,
            "ssh-agent answered the request to sign with it with a message that cannot be read",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let sock = dir.join(format!("agent{n}.sock"));
        let asked = fake_agent(&sock, &lab.client_key(), Answer::Listed, at_sign);
        let out = run_through(&sock, &with_file);
        assert!(asked.try_iter().any(|t| t == 13), "{at_sign:?}: never asked to sign");
        // The login it slowed or failed is explained (tester t131: said nothing).
        out.status(0)
            .stdout_contains("logged-in")
            .stdout_contains(&format!("{said}; logged in without it"));
        let out = run_through(&sock, &agent_only);
        assert!(asked.try_iter().any(|t| t == 13), "{at_sign:?}: never asked to sign");
        out.status(3)
            .stderr_contains("fake agent key")
            .stderr_contains(said)
            .stderr_lacks("the server closed the connection")
            .stderr_lacks("refused;");
    }
}

/// An ssh-agent that fails a request for its keys (libssh2's, after tether's own first one:
/// never answers, closes the connection, refuses, answers with garbage) is named for what it
/// did where the login fails, and is not used: the identity file logs in (tester t130: an
/// agent that failed so was dropped without a word).
#[test]
fn an_agent_that_fails_to_list_its_keys_is_named_and_not_used() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("unlisting-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let with_file = lab.config_with("unlisting-with-file", "Host host1\n  ConnectTimeout 3\n");
    let agent_only = agent_only_config(&lab, &dir);
    for (n, (at_list, said)) in [
        (
            Answer::Never,
            "did not answer the request to list its keys within 3.0 s: not used",
        ),
        (
            Answer::Close,
            "closed the connection when asked to list its keys: not used",
        ),
        (Answer::Refuse, "refused to list its keys: not used"),
        (
            Answer::Garbage,
            "answered the request to list its keys with a message of type 99, which answers no such request: not used",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let sock = dir.join(format!("agent{n}.sock"));
        let asked = fake_agent(&sock, &lab.client_key(), at_list, Answer::Never);
        run_through(&sock, &with_file)
            .status(0)
            .stdout_contains("logged-in")
            .stdout_contains(&format!("{said}; logged in without it"));
        run_through(&sock, &agent_only)
            .status(3)
            .stderr_contains(&format!("ssh-agent at {} {said}", sock.display()))
            .stderr_lacks("the server closed the connection");
        assert!(!asked.try_iter().any(|t| t == 13), "{at_list:?}: asked to sign");
    }
}

/// A signal while an ssh-agent is asked to sign, or to list its keys, ends the run at once,
/// exit 130, as a signal while connecting does (tester t130: only a second one did, while it
/// was asked to sign; t131: one came only at the bound, while it was asked for its keys).
#[test]
fn a_signal_while_the_agent_is_asked_ends_the_run() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("signal-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let config = lab.config_with("signal-agent-config", "Host host1\n  ConnectTimeout 60\n");
    for (n, (at_list, signal)) in [
        (Answer::Listed, libc::SIGTERM),
        (Answer::Never, libc::SIGTERM),
        (Answer::Never, libc::SIGINT),
        (Answer::Never, libc::SIGHUP),
    ]
    .into_iter()
    .enumerate()
    {
        let sock = dir.join(format!("agent{n}.sock"));
        let asked = fake_agent(&sock, &lab.client_key(), at_list, Answer::Never);
        let child = Tether::new()
            .ssh_config(&config)
            .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
            .args(&["run", "--hosts", "host1", "--", "echo logged-in"])
            .spawn();
        // Signalled once the agent was asked what it keeps unanswered.
        let waited_at = if at_list == Answer::Listed { 13 } else { 11 };
        while asked.recv_timeout(Duration::from_secs(30)).unwrap() != waited_at {}
        let signalled = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        // Well before the agent's own bound (10 s).
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "{at_list:?} {signal}: {:?}",
            signalled.elapsed()
        );
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            support::tether::text(&out)
        );
    }
}

/// An agent that refuses to sign with one key (an `ssh-add -c` key whose confirmation is
/// denied: no askpass) is asked for its other keys, as ssh asks ("signing failed ... agent
/// refused operation", then the next key), and the login they make is said to have gone
/// without it (tester t131: tether asked nothing more and failed a login ssh made).
#[test]
fn an_agent_that_refuses_one_key_is_asked_for_its_others() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("confirm-agent");
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        &dir,
        "ssh-keygen -q -t ed25519 -N '' -C second-key -f second_key",
    );
    let authorized = lab.dir().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys += &std::fs::read_to_string(dir.join("second_key.pub")).unwrap();
    std::fs::write(&authorized, keys).unwrap();
    let agent = Agent::empty(&dir, "agent.sock");
    agent.add_with(&lab.client_key(), &["-c"]);
    agent.add(&dir.join("second_key"));
    run_through(&agent.sock, &agent_only_config(&lab, &dir))
        .status(0)
        .stdout_contains("logged-in")
        .stdout_contains("host1 ~ warning: ssh-agent key tether-lab-client (SHA256:")
        .stdout_contains("ssh-agent refused to sign with it; logged in without it");
}

/// An agent that did not answer one login of the run is not waited for again by the next
/// moments later, a jump host's and its target's (tester t131: each waited the whole bound).
#[test]
fn an_agent_that_did_not_answer_is_not_waited_for_again_behind_a_jump_host() {
    let lab = Lab::start(2);
    let dir = lab.dir().join("jump-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let _asked = fake_agent(&sock, &lab.client_key(), Answer::Never, Answer::Never);
    let config = lab.config_with(
        "jump-agent-config",
        "Host host2\n  ProxyJump host1\nHost *\n  ConnectTimeout 3\n",
    );
    let out = Tether::new()
        .ssh_config(&config)
        .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
        .args(&["run", "--hosts", "host2", "--", "echo logged-in"])
        .run();
    out.status(0)
        .stdout_contains("logged-in")
        .stdout_contains(&format!(
            "ssh-agent at {} did not answer the request to list its keys or to sign within 3.0 s \
         on a login of this run moments ago: not used; logged in without it",
            sock.display()
        ));
}

/// An agent whose list of keys is longer than libssh2 reads (8192 bytes: about 15 RSA-4096
/// keys) is said to be so, with what to do, and the key file logs in (tester t132: said as a
/// list that cannot be read, in libssh2's words, and a `.pub` IdentityFile as failing as ssh
/// would, where ssh, which reads 256 KiB, logs in).
#[test]
fn an_agent_list_longer_than_libssh2_reads_is_said_so() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("huge-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let _asked = fake_agent(&sock, &lab.client_key(), Answer::Huge, Answer::Never);
    let config = lab.config_with("huge-agent-config", "Host host1\n  ConnectTimeout 3\n");
    let out = run_through(&sock, &config);
    out.status(0).stdout_contains("logged-in");
    let said = format!(
        "ssh-agent at {} answered the request to list its keys with ",
        sock.display()
    );
    out.stdout_contains(&said).stdout_contains(
        "bytes, more than libssh2 (which tether logs in with) reads, 8192 (ssh reads it: an \
         agent holding fewer keys is read): not used; logged in without it",
    );
}

/// A recipe's hosts whose logins a signal stopped while the agent was asked are stopped, not
/// failed hosts, as `tether run` says them (tester t132 saw `3 of 3 hosts failed` in a recipe
/// of its own, with failure hooks; not seen in this one).
#[test]
fn a_recipe_stopped_while_the_agent_is_asked_fails_no_host() {
    let lab = Lab::start(3);
    let dir = lab.dir().join("recipe-agent");
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let asked = fake_agent(&sock, &lab.client_key(), Answer::Never, Answer::Never);
    let config = lab.config_with("recipe-agent-config", "Host *\n  ConnectTimeout 60\n");
    let recipe = dir.join("deploy.rhai");
    std::fs::write(
        &recipe,
        "server(\"host1\", #{ roles: [\"web\"] });\nserver(\"host2\", #{ roles: [\"web\"] });\n\
         server(\"host3\", #{ roles: [\"web\"] });\ntask(\"wait\", || { on(\"web\", \"true\"); });\n",
    )
    .unwrap();
    let child = Tether::new()
        .ssh_config(&config)
        .current_dir(&dir)
        .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
        .args(&["wait"])
        .spawn();
    while asked.recv_timeout(Duration::from_secs(30)).unwrap() != 11 {}
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let text = support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(!text.contains("hosts failed"), "{text}");
}
