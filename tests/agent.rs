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
    let out = Tether::new()
        .ssh_config(&config)
        .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
        .args(&["run", "--hosts", "host1", "--", "echo logged-in"])
        .run();
    out.status(0).stdout_contains("logged-in");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Where only the agent could log in: the failure names it.
    let config = dir.join("config-agent-only");
    std::fs::write(
        &config,
        format!(
            "Host host1\n  ConnectTimeout 3\n  IdentityFile /nonexistent/key\n{}",
            std::fs::read_to_string(lab.ssh_config())
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("IdentityFile"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&config)
        .env("SSH_AUTH_SOCK", sock.to_str().unwrap())
        .args(&["run", "--hosts", "host1", "--", "echo logged-in"])
        .run();
    assert_ne!(out.status, 0);
    out.stderr_contains(&format!("ssh-agent at {} did not answer", sock.display()));
}
