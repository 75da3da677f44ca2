//! ProxyJump against real sshd: inner hosts that this machine cannot reach except through a
//! bastion (sshd's on the loopback of a network namespace only the bastion's sshd shares; see
//! `support/site.rs`), one and two hops, one bastion connection for many hosts, a bastion
//! connection killed while idle, host keys checked for every hop.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::harness::Harness;
use support::site::Site;
use support::tether::Tether;
use tether::event::EventKind;
use tether::host::HostTarget;
use tether::pool::HostResult;
use tether::ssh::policy::WorkerSettings;

const JUMP: &str = "Host inner*\n  ProxyJump bastion\n";

fn run_on(config: &Path, hosts: &str) -> support::tether::Output {
    Tether::new()
        .ssh_config(config)
        .args(&["run", "--hosts", hosts, "--", "echo \"I am $TETHER_HOST\""])
        .run()
}

#[test]
fn direct_route_fails_and_one_hop_works_from_config_and_cli() {
    let site = Site::start(2, false, &[]);
    assert!(site.reachable_directly("bastion"));
    assert!(!site.reachable_directly("inner1"));
    // Directly: nothing listens on this machine's 127.0.0.11:22.
    run_on(&site.ssh_config(), "inner1")
        .status(3)
        .stdout_contains("cannot connect to 127.0.0.11:22");

    // ProxyJump from the ssh config.
    let started = Instant::now();
    let out = run_on(&site.config_with("jump_config", JUMP), "inner1,inner2");
    out.status(0);
    assert_eq!(out.host_lines("inner1", '|'), ["I am inner1"]);
    assert_eq!(out.host_lines("inner2", '|'), ["I am inner2"]);
    eprintln!("one hop, two hosts: {:?}", started.elapsed());
    assert_eq!(site.accepted_logins("bastion"), 1);

    // -J on the command line, in the user@host:port form, over a config without ProxyJump.
    let out = Tether::new()
        .ssh_config(&site.ssh_config())
        .args(&["-J", "root@bastion:22", "run", "--hosts", "inner2", "--"])
        .arg("echo \"I am $TETHER_HOST\"")
        .run();
    out.status(0);
    assert_eq!(out.host_lines("inner2", '|'), ["I am inner2"]);
    assert_eq!(site.accepted_logins("bastion"), 2);
    assert_eq!(site.accepted_logins("inner2"), 2);

    // A hop's tokens are the target's, as in the ProxyCommand ssh builds from it (`%r` the
    // target's user); an unknown token is refused before any login (stop 44 tester t55: `-J
    // 'h%6Fst1'` was tried as a host name), and so is a port that is a token, as ssh reads
    // the port before it expands anything.
    let out = Tether::new()
        .ssh_config(&site.ssh_config())
        .args(&["-J", "%r@bastion", "run", "--hosts", "inner2", "--"])
        .arg("echo \"I am $TETHER_HOST\"")
        .run();
    out.status(0);
    assert_eq!(out.host_lines("inner2", '|'), ["I am inner2"]);
    assert_eq!(site.accepted_logins("bastion"), 3);
    Tether::new()
        .ssh_config(&site.ssh_config())
        .args(&["-J", "h%6Fst1", "run", "--hosts", "inner2", "--", "true"])
        .run()
        .status(2)
        .stdout_contains("ProxyJump h%6Fst1: unknown token `%6` here");
    Tether::new()
        .ssh_config(&site.ssh_config())
        .args(&[
            "-J",
            "%r@bastion:%p",
            "run",
            "--hosts",
            "inner2",
            "--",
            "true",
        ])
        .run()
        .status(2)
        .stdout_contains("bad port in `%r@bastion:%p`");
    assert_eq!(site.accepted_logins("bastion"), 3);

    // `-J none` beats the config's ProxyJump: back to the direct route, which fails.
    Tether::new()
        .ssh_config(&site.config_with("jump_config", JUMP))
        .args(&["-J", "none", "run", "--hosts", "inner1", "--", "true"])
        .run()
        .status(3)
        .stdout_contains("cannot connect to 127.0.0.11:22");
}

#[test]
fn two_hops_as_a_chain_and_through_the_jump_hosts_own_config() {
    let site = Site::start(0, true, &[]);
    // (bastion2's 10.252.0.2 is not on any link here; whether a connect to it fails depends
    // on this machine's default route, so only deep1's loopback address is checked.)
    assert!(!site.reachable_directly("deep1"));
    let started = Instant::now();
    let out = run_on(
        &site.config_with("chain", "Host deep1\n  ProxyJump bastion,bastion2\n"),
        "deep1",
    );
    out.status(0);
    assert_eq!(out.host_lines("deep1", '|'), ["I am deep1"]);
    eprintln!("two hops: {:?}", started.elapsed());
    assert_eq!(site.accepted_logins("bastion"), 1);
    assert_eq!(site.accepted_logins("bastion2"), 1);

    // bastion2 says in its own block that it is behind bastion; deep1 only names bastion2.
    // bastion2 is also a target: its jump worker and its host worker share the bastion.
    let out = run_on(
        &site.config_with(
            "chain2",
            "Host bastion2\n  ProxyJump bastion\nHost deep1\n  ProxyJump bastion2\n",
        ),
        "deep1,bastion2",
    );
    out.status(0);
    assert_eq!(out.host_lines("deep1", '|'), ["I am deep1"]);
    assert_eq!(out.host_lines("bastion2", '|'), ["I am bastion2"]);
    assert_eq!(site.accepted_logins("bastion"), 2);
    assert_eq!(site.accepted_logins("bastion2"), 3);
    assert_eq!(site.accepted_logins("deep1"), 2);
}

#[test]
fn one_bastion_connection_serves_five_inner_hosts() {
    let site = Site::start(5, false, &[]);
    let started = Instant::now();
    let out = run_on(
        &site.config_with("jump_config", JUMP),
        "inner1,inner2,inner3,inner4,inner5",
    );
    out.status(0);
    eprintln!("five hosts through one bastion: {:?}", started.elapsed());
    for i in 1..=5 {
        let host = format!("inner{i}");
        assert_eq!(out.host_lines(&host, '|'), [format!("I am {host}")]);
        assert_eq!(site.accepted_logins(&host), 1, "{host}");
    }
    assert_eq!(site.accepted_logins("bastion"), 1);
}

#[test]
fn a_big_transfer_through_the_tunnel_in_both_directions() {
    let site = Site::start(2, false, &[]);
    let cfg = site.config_with("jump_config", JUMP);
    // 4 MB each way per host (more than the channel windows), checksummed on both sides.
    let data: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let dir = site.path().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("blob"), &data).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        r#"
server("inner1", #{ roles: ["app"] });
server("inner2", #{ roles: ["app"] });
task("move", || {
    on("app", |host| {
        upload("blob", "/tmp/tether-jump-blob-" + host.name);
        let sum = capture("cksum < /tmp/tether-jump-blob-" + host.name);
        print(host.name + " " + sum);
        let xs = capture("head -c 4000000 /dev/zero | tr '\\0' x; rm -f /tmp/tether-jump-blob-" + host.name);
        print(host.name + " got " + xs.len());
    });
});
"#,
    )
    .unwrap();
    let expected = std::process::Command::new("sh")
        .arg("-c")
        .arg("cksum < blob")
        .current_dir(&dir)
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    let started = Instant::now();
    let out = Tether::new()
        .ssh_config(&cfg)
        .current_dir(&dir)
        .arg("move")
        .run();
    out.status(0);
    eprintln!("2 x 8 MB through one bastion: {:?}", started.elapsed());
    for host in ["inner1", "inner2"] {
        out.stdout_contains(&format!("{host} {expected}"))
            .stdout_contains(&format!("{host} got 4000000"));
    }
    assert_eq!(site.accepted_logins("bastion"), 1);
}

const DEPLOY: &str = r#"
set("deploy_to", "/tmp/tether-jump-deploy");
server("inner1", #{ roles: ["app"], via: "bastion" });
server("inner2", #{ roles: ["app"], via: "bastion" });
server("deep1", #{ roles: ["db"], via: "bastion,bastion2" });

task("deploy:check", || {
    on("all", |host| {
        if !test("[ \"$TETHER_HOST\" = " + quote(host.name) + " ]") {
            throw host.name + " answered as someone else";
        }
        run("mkdir -p " + fetch("deploy_to") + "-" + host.name + "/releases");
    });
});
task("deploy:updating", || {
    on("all", |host| {
        within(fetch("deploy_to") + "-" + host.name, || {
            upload("REVISION", "releases/1/REVISION");
            run("ln -sfn releases/1 current");
        });
    });
});
task("deploy:published", || {
    let revs = on("all", "cat " + fetch("deploy_to") + "-$TETHER_HOST/current/REVISION");
    for h in revs.keys() { let rev = revs[h].stdout; rev.trim(); print(h + " runs " + rev); }
    on("all", "rm -rf " + fetch("deploy_to") + "-$TETHER_HOST");
});
task("deploy", || {
    invoke("deploy:check");
    invoke("deploy:updating");
    invoke("deploy:published");
});
"#;

#[test]
fn a_deploy_through_one_and_two_hops_with_via() {
    let site = Site::start(2, true, &[]);
    let dir = site.path().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.rhai"), DEPLOY).unwrap();
    std::fs::write(dir.join("REVISION"), "abc123\n").unwrap();
    let started = Instant::now();
    // The ssh config has no ProxyJump: the recipe's `via` routes every host.
    let out = Tether::new()
        .ssh_config(&site.ssh_config())
        .current_dir(&dir)
        .arg("deploy")
        .run();
    out.status(0);
    eprintln!("deploy through one and two hops: {:?}", started.elapsed());
    for host in ["inner1", "inner2", "deep1"] {
        out.stdout_contains(&format!("{host} runs abc123"));
        assert_eq!(site.accepted_logins(host), 1, "{host}");
    }
    // One bastion connection for the two inner hosts and for the bastion2 jump worker.
    assert_eq!(site.accepted_logins("bastion"), 1);
    assert_eq!(site.accepted_logins("bastion2"), 1);

    // A `via` that is not a string is a recipe error with its position.
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"inner1\", #{ via: 3 });\ntask(\"x\", || {});\n",
    )
    .unwrap();
    Tether::new()
        .ssh_config(&site.ssh_config())
        .current_dir(&dir)
        .arg("x")
        .run()
        .status(4)
        .stderr_contains("`via` must be a string");
}

#[test]
fn wrong_inner_host_key_is_refused_naming_the_inner_host() {
    let site = Site::start(2, false, &[]);
    site.record_wrong_key("inner1", &site.stranger_key());
    let out = run_on(&site.config_with("jump_config", JUMP), "inner1,inner2");
    out.status(3)
        .stdout_contains("inner1: HOST KEY CHANGED for 127.0.0.11")
        .stdout_lacks("I am inner1");
    assert_eq!(out.host_lines("inner2", '|'), ["I am inner2"]);
    assert_eq!(site.accepted_logins("inner1"), 0);

    // A wrong bastion key: the bastion is refused, and its hosts say why they are unreachable.
    site.record_wrong_key("bastion", &site.stranger_key());
    let out = run_on(&site.config_with("jump_config", JUMP), "inner1,inner2");
    out.status(3)
        .stdout_contains("bastion: HOST KEY CHANGED for")
        .stdout_contains("inner2: cannot reach it through jump host bastion");
    assert_eq!(site.accepted_logins("bastion"), 1);

    // A ProxyJump loop is a configuration error, found before anything connects.
    Tether::new()
        .ssh_config(&site.config_with("loop", "Host *\n  ProxyJump bastion\n"))
        .args(&["run", "--hosts", "inner1", "--", "true"])
        .run()
        .status(2)
        .stderr_contains("ProxyJump loop");
}

// ------------------------------------------------------------------ worker-level tests

fn answers(results: &[HostResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| match &r.result {
            Some(Ok(out)) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
            other => format!("{}: {other:?}", r.host),
        })
        .collect()
}

const BASTION: &str = "bastion (jump)";

#[test]
fn a_bastion_killed_while_idle_is_reconnected_and_its_hosts_keep_working() {
    let site = Site::start(2, false, &[]);
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1", "inner2"]);
    assert_eq!(
        answers(&h.run(&["inner1", "inner2"], "echo $TETHER_HOST")),
        ["inner1", "inner2"]
    );
    h.idle(Duration::from_millis(200));
    let killed = Instant::now();
    let mark = h.mark();
    site.kill_connections("bastion");
    // The jump worker notices at once (its socket closes), reconnects; the hosts behind it
    // see their tunnels close and reconnect through the new bastion connection.
    for host in [BASTION, "inner1", "inner2"] {
        h.wait_for_since(mark, Duration::from_secs(10), |e| {
            &*e.host == host && matches!(e.kind, EventKind::Reconnected { .. })
        })
        .unwrap_or_else(|| panic!("{host} did not reconnect\n{}", h.story()));
    }
    eprintln!("bastion and 2 hosts reconnected in {:?}", killed.elapsed());
    assert_eq!(
        answers(&h.run(&["inner1", "inner2"], "echo $TETHER_HOST")),
        ["inner1", "inner2"],
        "{}",
        h.story()
    );
    assert_eq!(site.accepted_logins("bastion"), 2, "{}", h.story());
    assert_eq!(site.accepted_logins("inner1"), 2, "{}", h.story());
    assert_eq!(site.accepted_logins("inner2"), 2, "{}", h.story());
    // Each reconnected exactly once, while idle (nothing was in flight, nothing re-sent),
    // and none of them took the bastion's death for an idle limit of its own server.
    for host in [BASTION, "inner1", "inner2"] {
        assert_eq!(
            h.count(host, |k| matches!(k, EventKind::Learned { .. })),
            0,
            "{host}\n{}",
            h.story()
        );
        assert_eq!(
            h.count(host, |k| matches!(
                k,
                EventKind::Reconnected {
                    while_idle: true,
                    ..
                }
            )),
            1,
            "{host}\n{}",
            h.story()
        );
    }
}

#[test]
fn a_command_in_flight_when_the_bastion_dies_is_reattached_not_resent() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1"]);
    let marker = site.path().join("runs");
    let command = format!("echo run >> {}; sleep 3; echo done", marker.display());
    let results = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            site.kill_connections("bastion");
        });
        h.run(&["inner1"], &command)
    });
    // Re-attached through a new bastion connection (tests/reattach.rs), never sent again.
    assert_eq!(answers(&results), ["done"], "{}", h.story());
    assert_eq!(
        h.count("inner1", |k| matches!(k, EventKind::Reattached { .. })),
        1,
        "{}",
        h.story()
    );
    assert_eq!(
        answers(&h.run(&["inner1"], "echo $TETHER_HOST")),
        ["inner1"]
    );
    let runs = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1, "ran {runs:?}\n{}", h.story());
}

/// A command whose connection through a bastion is lost, while the bastion cannot be reached
/// again (its sshd stopped, its `ConnectTimeout 20`), is given up when the re-attach bound
/// runs out, as for a host reached directly, naming the bound (stop 54 tester t86: with
/// `--reattach 3s` it waited out the bastion's own attempt, 11 s, and 17 s with a 4 s bound
/// and a blackhole).
#[test]
fn re_attaching_through_a_bastion_ends_with_its_bound() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with(
        "jump_config",
        &format!("Host bastion\n  ConnectTimeout 20\n{JUMP}"),
    );
    let settings = WorkerSettings {
        reattach: Duration::from_secs(2),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&cfg, settings, &["inner1"]);
    let listener = site.listener_pid("bastion");
    let (results, cut) = std::thread::scope(|scope| {
        let cut = scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            support::net::signal(listener, libc::SIGSTOP);
            site.kill_connections("bastion");
            Instant::now()
        });
        let results = h.run(&["inner1"], "sleep 30");
        (results, cut.join().unwrap())
    });
    let took = cut.elapsed();
    support::net::signal(listener, libc::SIGCONT);
    let said = match &results[0].result {
        Some(Err(e)) => e.to_string(),
        other => panic!("it did not fail: {other:?}\n{}", h.story()),
    };
    assert!(
        took < Duration::from_secs(8),
        "{took:?}: {said}\n{}",
        h.story()
    );
    assert!(said.contains("re-attach bound"), "{said}\n{}", h.story());
}

/// A command behind a bastion that falls silent (its packets dropped) says that the jump host
/// lost its connection, closing the tunnel, not that the host's own server closed it (stop 54
/// tester t86: "reading output failed: the server closed the connection").
#[test]
fn a_command_behind_a_silent_bastion_says_the_bastion_was_lost() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with(
        "jump_config",
        &format!("Host bastion\n  ConnectTimeout 2\n{JUMP}"),
    );
    let settings = WorkerSettings {
        reattach: Duration::from_secs(2),
        heartbeat: Some(Duration::from_secs(1)),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&cfg, settings, &["inner1"]);
    let results = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            site.blackhole("bastion");
        });
        h.run(&["inner1"], "sleep 30")
    });
    let said = match &results[0].result {
        Some(Err(e)) => e.to_string(),
        other => panic!("it did not fail: {other:?}\n{}", h.story()),
    };
    site.lift_blackhole("bastion");
    assert!(
        said.contains("the jump host bastion lost its connection"),
        "{said}\n{}",
        h.story()
    );
    assert!(
        !said.contains("the server closed the connection"),
        "{said}\n{}",
        h.story()
    );
}

/// A host behind a bastion whose connection from the bastion is reset while idle: its tunnel
/// closes as it would for the server's orderly close, and tether says that it cannot tell
/// which, not that the server closed the connection (stop 61 tester t101: said as the server's
/// close, and, twice at the same idle time with the config unreadable, learned as an idle
/// limit).
#[test]
fn a_reset_behind_a_bastion_is_not_said_as_the_servers_close() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1"]);
    assert!(h.run(&["inner1"], "true")[0].ok(), "{}", h.story());
    let mark = h.mark();
    std::thread::sleep(Duration::from_millis(500));
    site.reset_connections("inner1");
    let (_, e) = h
        .wait_for_since(mark, Duration::from_secs(40), |e| {
            matches!(e.kind, EventKind::Reconnected { .. })
        })
        .unwrap_or_else(|| panic!("no reconnect\n{}", h.story()));
    let EventKind::Reconnected { reason, .. } = &e.kind else {
        unreachable!()
    };
    assert!(
        reason.contains("the tunnel through the jump host bastion closed")
            && reason.contains("a tunnel does not tell which"),
        "{reason}\n{}",
        h.story()
    );
    assert!(
        !reason.contains("the server closed the connection"),
        "{reason}"
    );
    assert!(h.run(&["inner1"], "true")[0].ok(), "{}", h.story());
}

/// A command behind a bastion that closes idle tunnels (`ChannelTimeout direct-tcpip=3s`),
/// whose host stops answering, loses its tunnel to the bastion's limit once nothing comes back
/// through it: the failure names that possibility, not only the host's server (stop 55 tester
/// t88: "reading output failed: the server closed the connection").
#[test]
fn a_command_whose_tunnel_the_bastion_closed_says_it_may_have() {
    let site = Site::start(1, false, &["ChannelTimeout direct-tcpip=3s"]);
    let cfg = site.config_with(
        "jump_config",
        &format!("Host inner*\n  ConnectTimeout 2\n{JUMP}"),
    );
    let settings = WorkerSettings {
        reattach: Duration::from_secs(2),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&cfg, settings, &["inner1"]);
    let results = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            site.blackhole("inner1");
        });
        h.run(&["inner1"], "sleep 30")
    });
    site.lift_blackhole("inner1");
    let said = match &results[0].result {
        Some(Err(e)) => e.to_string(),
        other => panic!("it did not fail: {other:?}\n{}", h.story()),
    };
    assert!(
        said.contains("the jump host closed the tunnel, as it does to tunnels idle for 3.0 s"),
        "{said}\n{}",
        h.story()
    );
}

#[test]
fn an_idle_bastion_under_client_alive_is_kept_by_its_own_worker() {
    // The bastion drops a connection whose client answers none of its probes for ~3 s; the
    // hosts behind it stay idle (heartbeat 15 s), so nothing else carries traffic through it.
    let site = Site::start(
        2,
        false,
        &["ClientAliveInterval 1", "ClientAliveCountMax 2"],
    );
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1", "inner2"]);
    idle_then_work_on_one_login(&site, &mut h, &[8], "");
}

/// A bastion that allows forwarding only (`MaxSessions 0`: it refuses every session channel)
/// is alive when it refuses the heartbeat's channel, and is kept, not reconnected at every beat
/// (it was: "connection lost while idle (heartbeat: cannot open a channel ...)", a new login
/// each second).
#[test]
fn a_bastion_that_refuses_sessions_is_kept_not_reconnected() {
    let site = Site::start(2, false, &["MaxSessions 0"]);
    let cfg = site.config_with("jump_config", JUMP);
    let settings = WorkerSettings {
        heartbeat: Some(Duration::from_secs(1)),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&cfg, settings, &["inner1", "inner2"]);
    idle_then_work_on_one_login(&site, &mut h, &[4], "MaxSessions 0");
    // Its first heartbeat (the one that reads the server's limits) was refused, and kept it.
    assert!(
        h.count(BASTION, |k| matches!(k, EventKind::Heartbeat { .. })) >= 1,
        "{}",
        h.story()
    );
}

/// A host behind the bastion that never answers (its packets dropped: the bastion's sshd
/// waits minutes for its TCP connect) holds up neither the tunnels of the other hosts nor the
/// bastion's heartbeat. libssh2 opens one channel at a time on a session, so what is asked for
/// meanwhile goes over a second connection to the bastion (before: the next host waited
/// behind it until its own ConnectTimeout ran out, "the jump host did not open a connection
/// ... in time", a healthy host called unreachable).
#[test]
fn a_host_that_never_answers_holds_up_no_other_host_behind_the_bastion() {
    let site = Site::start(3, false, &[]);
    let cfg = site.config_with(
        "jump_config",
        &format!("Host inner*\n  ConnectTimeout 20\n{JUMP}"),
    );
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1"]);
    site.blackhole("inner2");
    h.pool.ensure(&[HostTarget::parse("inner2").unwrap()]);
    std::thread::sleep(Duration::from_millis(300));
    h.pool.ensure(&[HostTarget::parse("inner3").unwrap()]);
    let connected = h.wait_for(Duration::from_secs(8), |e| {
        &*e.host == "inner3" && matches!(e.kind, EventKind::Connected { .. })
    });
    assert!(connected.is_some(), "inner3 did not connect\n{}", h.story());
    assert_eq!(
        answers(&h.run(&["inner1", "inner3"], "echo $TETHER_HOST")),
        ["inner1", "inner3"],
        "{}",
        h.story()
    );
    // The second connection is said, once; the first one is kept, never found dead.
    let said = h.count(
        BASTION,
        |k| matches!(k, EventKind::AnotherConnection { open: 2, message, .. } if message.contains("another connection")),
    );
    assert_eq!(said, 1, "{}", h.story());
    assert_eq!(site.accepted_logins("bastion"), 2, "{}", h.story());
    assert_eq!(
        h.count(BASTION, |k| matches!(
            k,
            EventKind::Reconnected { .. } | EventKind::Reconnecting { .. }
        )),
        0,
        "{}",
        h.story()
    );
    site.lift_blackhole("inner2");
}

/// A jump host that does not answer, not yet connected, fails the hosts behind it after its
/// `ConnectTimeout`, once, as `ssh -J` does: a host that asked while the jump host's first
/// attempt was made gets that attempt's failure, not a second attempt (stop 55 tester t88: a
/// host behind a blackholed middle hop failed after 4.1 s for `ConnectTimeout 2`, the middle
/// hop tried twice). Behind a chain's middle hop, and two hosts behind one bastion.
#[test]
fn hosts_behind_a_silent_jump_host_fail_after_one_connect_timeout() {
    let site = Site::start(2, true, &[]);
    let check = |hosts: &str, jump: &str, prefix: &str| {
        let started = Instant::now();
        let out = run_on(&site.config_with("cfg", prefix), hosts);
        let took = started.elapsed();
        let text = format!("{}{}", out.stdout, out.stderr);
        out.status(3);
        assert!(took >= Duration::from_secs(2), "{hosts}: {took:?}\n{text}");
        assert!(
            took < Duration::from_millis(3500),
            "{hosts}: {took:?}\n{text}"
        );
        assert!(text.contains(jump), "{hosts}: {text}");
    };
    site.blackhole("bastion2");
    check(
        "deep1",
        "bastion2",
        "Host *\n  ConnectTimeout 2\nHost deep1\n  ProxyJump bastion,bastion2\n",
    );
    site.blackhole("bastion");
    check(
        "inner1,inner2",
        "bastion",
        "Host *\n  ConnectTimeout 2\nHost inner*\n  ProxyJump bastion\n",
    );
    site.lift_blackhole("bastion");
    site.lift_blackhole("bastion2");
}

/// A tunnel through a bastion that is connected already waits the host's own `ConnectTimeout`
/// for the bastion to open it, as `ssh -J` does, not that plus the bastion's (kept for the
/// bastion's own connecting; stop 55 tester t87: 10 s for `ConnectTimeout 5` behind one jump
/// host, 15 s behind two).
#[test]
fn a_tunnel_through_a_connected_bastion_waits_the_hosts_connect_timeout() {
    let site = Site::start(2, false, &[]);
    let cfg = site.config_with(
        "jump_config",
        &format!("Host bastion\n  ConnectTimeout 10\nHost inner*\n  ConnectTimeout 2\n{JUMP}"),
    );
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1"]);
    site.blackhole("inner2");
    let asked = Instant::now();
    h.pool.ensure(&[HostTarget::parse("inner2").unwrap()]);
    let failed = h.wait_for(Duration::from_secs(20), |e| {
        &*e.host == "inner2" && matches!(e.kind, EventKind::ConnectFailed { .. })
    });
    let took = asked.elapsed();
    site.lift_blackhole("inner2");
    let (_, failed) = failed.unwrap_or_else(|| panic!("inner2 did not fail\n{}", h.story()));
    assert!(took < Duration::from_secs(5), "{took:?}\n{}", h.story());
    let EventKind::ConnectFailed { error, .. } = &failed.kind else {
        unreachable!("matched above")
    };
    assert!(error.contains("within 2.0 s"), "{error}");
}

/// A bastion that closes connections with no open channel (`UnusedConnectionTimeout 3`) is
/// kept while the only tunnel it was asked for gets no answer: sshd counts a channel still
/// connecting as none, and the heartbeat that keeps the connection in use goes over the second
/// connection (stop 54 tester t86: the healthy bastion, unable to beat behind the waiting open,
/// was closed by its sshd and reconnected three times, "connection lost while idle (opening a
/// tunnel failed: [Session(-43)] Unexpected error)").
#[test]
fn a_bastion_is_kept_while_the_one_tunnel_asked_of_it_gets_no_answer() {
    let site = Site::start(2, false, &["UnusedConnectionTimeout 3"]);
    let cfg = site.config_with(
        "jump_config",
        &format!("Host inner*\n  ConnectTimeout 20\n{JUMP}"),
    );
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &[]);
    site.blackhole("inner1");
    h.pool.ensure(&[HostTarget::parse("inner1").unwrap()]);
    h.idle(Duration::from_secs(8));
    h.pool.ensure(&[HostTarget::parse("inner2").unwrap()]);
    assert_eq!(
        answers(&h.run(&["inner2"], "echo $TETHER_HOST")),
        ["inner2"],
        "{}",
        h.story()
    );
    assert_eq!(
        h.count(BASTION, |k| matches!(
            k,
            EventKind::Reconnected { .. } | EventKind::Reconnecting { .. }
        )),
        0,
        "{}",
        h.story()
    );
    assert!(
        !h.story().contains("Session(-43)"),
        "libssh2's words\n{}",
        h.story()
    );
    site.lift_blackhole("inner1");
}

/// A jump host whose sshd config was read, found closed while idle (its sshd's connection
/// killed), does not take that for an idle limit of its own: its config says what its limits
/// are, as for a host (stop 54 tester t86: `host4 (jump) ~ the server closed this idle session
/// after 4.4 s idle ...: its idle limit, remembered`, its config read that run).
#[test]
fn a_jump_host_whose_config_was_read_learns_no_limit_from_a_close() {
    let site = Site::start(1, true, &[]);
    let cfg = site.config_with("chain", "Host deep1\n  ProxyJump bastion,bastion2\n");
    // deep1's own connection fails at its key, leaving bastion2's worker with no tunnel: the
    // close is found by its heartbeat.
    site.record_wrong_key("deep1", &site.stranger_key());
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &[]);
    h.pool.ensure(&[HostTarget::parse("deep1").unwrap()]);
    const BASTION2: &str = "bastion2 (jump)";
    let read = |h: &Harness| {
        h.count(BASTION2, |k| {
            matches!(
                k,
                EventKind::Heartbeat {
                    beat: tether::event::Beat::Limits,
                    ..
                }
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&h) < 2 && Instant::now() < deadline {
        h.idle(Duration::from_millis(100));
    }
    assert_eq!(read(&h), 2, "bastion2's config not read\n{}", h.story());
    // Idle long enough for a close to look like an idle limit (a quicker one never does).
    h.idle(Duration::from_secs(3));
    let before = h.mark();
    site.kill_connections("bastion2");
    let reconnected = h.wait_for_since(before, Duration::from_secs(10), |e| {
        &*e.host == BASTION2 && matches!(e.kind, EventKind::Reconnected { .. })
    });
    assert!(reconnected.is_some(), "{}", h.story());
    let learned = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e.kind, EventKind::Learned { .. }))
        .count();
    assert_eq!(learned, 0, "{}", h.story());
    // In plain words, not libssh2's `[Session(-7)] Unable to send channel-open request`.
    assert!(!h.story().contains("Session("), "{}", h.story());
}

/// A host behind a bastion that closes idle tunnels (`ChannelTimeout direct-tcpip=3s`), whose
/// server stops answering before its limits are read, loses its tunnel to the bastion's limit:
/// not an idle limit of its own server, so nothing is learned, nor said as one (stop 55 tester
/// t87: "host2 ~ the server closed this idle session after 3.8 s idle ...: its idle limit,
/// remembered", then met on the same server reached directly).
#[test]
fn a_tunnel_closed_at_the_bastions_limit_teaches_the_host_behind_nothing() {
    let site = Site::start(2, false, &["ChannelTimeout direct-tcpip=3s"]);
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1", "inner2"]);
    // The bastion's limit known first (read at its first idle moment, late on a loaded machine).
    let read = h.wait_for_since(0, Duration::from_secs(10), |e| {
        &*e.host == BASTION && matches!(e.kind, EventKind::IdleLimit { .. })
    });
    assert!(
        read.is_some(),
        "the bastion's limit not read\n{}",
        h.story()
    );
    site.blackhole("inner2");
    let mark = h.mark();
    let found = h.wait_for_since(mark, Duration::from_secs(20), |e| {
        &*e.host == "inner2"
            && matches!(
                e.kind,
                EventKind::Reconnecting { .. } | EventKind::Reconnected { .. }
            )
    });
    let (_, found) = found.unwrap_or_else(|| panic!("inner2 not found dead\n{}", h.story()));
    // Each attempt of its reconnect asks the bastion afresh (a new TCP connect there, which
    // succeeds as soon as the host answers again), on one more connection to the bastion when
    // the last one still waits: one login each at most, as `ssh -J` makes per attempt.
    let mark = h.mark();
    h.wait_for_since(mark, Duration::from_secs(20), |e| {
        &*e.host == "inner2" && matches!(e.kind, EventKind::Unreachable { .. })
    })
    .unwrap_or_else(|| panic!("inner2 not given up\n{}", h.story()));
    site.lift_blackhole("inner2");
    assert!(
        site.accepted_logins("bastion") <= 5,
        "{} logins\n{}",
        site.accepted_logins("bastion"),
        h.story()
    );
    assert_eq!(
        h.count("inner2", |k| matches!(k, EventKind::Learned { .. })),
        0,
        "{}",
        h.story()
    );
    let reason = match &found.kind {
        EventKind::Reconnecting { reason, .. } | EventKind::Reconnected { reason, .. } => {
            reason.clone()
        }
        _ => unreachable!("matched above"),
    };
    assert!(
        !reason.contains("the server closed"),
        "{reason}\n{}",
        h.story()
    );
}

/// Two names of one target behind a bastion (two aliases, two users of one machine) are two
/// hosts, each with its own tunnel, as they are two `ssh` commands: while the bastion waits
/// for the target, one does not refuse the other (stop 55 tester t88: under a 2 s blackhole
/// that two `ssh` commands rode out, the second alias failed at once, "the jump host has
/// waited 1.0 s for 127.0.0.1:31360 to answer an earlier tunnel").
#[test]
fn two_names_of_one_target_behind_a_bastion_each_get_their_tunnel() {
    let site = Site::start(1, false, &[]);
    let twin = format!(
        "Host twin1\n  HostName {addr}\n  User root\n  IdentityFile {dir}/client_key\n  \
         IdentitiesOnly yes\n  UserKnownHostsFile {dir}/known_hosts\n  \
         StrictHostKeyChecking yes\n  ConnectTimeout 8\n  ProxyJump bastion\n",
        addr = site.sshd("inner1").addr,
        dir = site.path().display()
    );
    let cfg = site.config_with(
        "jump_config",
        &format!("{twin}Host inner*\n  ConnectTimeout 8\n{JUMP}"),
    );
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &[]);
    site.blackhole("inner1");
    h.pool.ensure(&[
        HostTarget::parse("inner1").unwrap(),
        HostTarget::parse("twin1").unwrap(),
    ]);
    h.idle(Duration::from_secs(2));
    site.lift_blackhole("inner1");
    for host in ["inner1", "twin1"] {
        let connected = h.wait_for_since(0, Duration::from_secs(10), |e| {
            &*e.host == host && matches!(e.kind, EventKind::Connected { .. })
        });
        assert!(connected.is_some(), "{host} did not connect\n{}", h.story());
    }
    assert_eq!(
        answers(&h.run(&["inner1", "twin1"], "echo $TETHER_HOST")),
        ["inner1", "inner1"],
        "{}",
        h.story()
    );
}

/// Leaves the inner hosts of `h` idle for each of `idles` (seconds), running a command on
/// both after each; then checks that the bastion was logged in to once and that nothing
/// reconnected (`what` heads the messages).
fn idle_then_work_on_one_login(site: &Site, h: &mut Harness, idles: &[u64], what: &str) {
    for secs in idles {
        h.idle(Duration::from_secs(*secs));
        assert_eq!(
            answers(&h.run(&["inner1", "inner2"], "echo $TETHER_HOST")),
            ["inner1", "inner2"],
            "{what}\n{}",
            h.story()
        );
    }
    assert_eq!(site.accepted_logins("bastion"), 1, "{what}\n{}", h.story());
    for host in [BASTION, "inner1", "inner2"] {
        assert_eq!(
            h.count(host, |k| matches!(k, EventKind::Reconnected { .. })),
            0,
            "{what}: {host}\n{}",
            h.story()
        );
    }
}

/// A bastion whose sshd closes tunnels idle for 3 s (`ChannelTimeout direct-tcpip=3s`): the
/// hosts behind it beat often enough to keep their tunnels, from what the bastion's worker read
/// in its config (fresh-eyes finding: every idle gap cut the hosts' sessions, each reconnected,
/// and the warning blamed the hosts' own servers).
#[test]
fn hosts_behind_a_bastion_that_closes_idle_tunnels_keep_their_sessions() {
    for spec in ["direct-tcpip=3s", "*=3s", "global=3s session=1h"] {
        let site = Site::start(2, false, &[&format!("ChannelTimeout {spec}")]);
        let cfg = site.config_with("jump_config", JUMP);
        let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1", "inner2"]);
        idle_then_work_on_one_login(&site, &mut h, &[8, 5], spec);
        assert_eq!(
            h.count(BASTION, |k| matches!(k, EventKind::IdleLimit { .. })),
            1,
            "{spec}\n{}",
            h.story()
        );
    }
}

/// The bastion's `ChannelTimeout` for tunnels is said as what it is, with the interval of the
/// hosts behind it, not as an `UnusedConnectionTimeout` of its own (stop 54 tester t86: `host4
/// (jump) ~ the server closes connections unused for 3.0 s (UnusedConnectionTimeout)` for a
/// bastion that sets only `ChannelTimeout direct-tcpip=3s`). The bastion's config is read when
/// its worker has nothing else to do: the command gives that 4 s (it failed once in 2 s, under
/// the load of a CI run, with nothing said).
#[test]
fn a_bastions_tunnel_limit_is_said_as_a_channel_timeout() {
    let site = Site::start(1, false, &["ChannelTimeout direct-tcpip=3s"]);
    let cfg = site.config_with("jump_config", JUMP);
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["-v", "run", "--hosts", "inner1", "--", "sleep 4"])
        .run();
    out.status(0).stdout_contains(
        "bastion (jump) ~ the server closes tunnels no data crossed for 3.0 s (ChannelTimeout); \
         the hosts behind it beat every 1.0 s from now on",
    );
    assert!(
        !out.stdout.contains("UnusedConnectionTimeout"),
        "{}",
        out.stdout
    );
}

/// A bastion that closes tunnels idle for 5 s and is slow to read its config (each command on
/// it waits 1.5 s first): the hosts behind it had read their own servers' limits and gone to
/// sleep for their own interval before the bastion's limit was known; they are woken when it
/// is, and beat often enough to keep their tunnels (a flaky failure of the test above, on a
/// loaded machine: both hosts reconnected while idle, "sending to the server failed").
#[test]
fn hosts_behind_a_bastion_slow_to_read_its_limit_keep_their_sessions() {
    let site = Site::start(
        2,
        false,
        &[
            "ChannelTimeout direct-tcpip=5s",
            "ForceCommand sleep 1.5; eval \"$SSH_ORIGINAL_COMMAND\"",
        ],
    );
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1", "inner2"]);
    idle_then_work_on_one_login(&site, &mut h, &[12], "slow bastion");
    assert_eq!(
        h.count(BASTION, |k| matches!(k, EventKind::IdleLimit { .. })),
        1,
        "{}",
        h.story()
    );
}

/// Many commands in a row through one bastion, on one bastion login. How long each takes is a
/// speed target, checked by `scripts/bench` (a ratio against the same command directly, in the
/// same run), not here: a timed assertion fails on a loaded machine.
#[test]
fn commands_through_the_bastion_are_quick() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("jump_config", JUMP);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["inner1"]);
    let n = 50;
    let started = Instant::now();
    for _ in 0..n {
        assert_eq!(answers(&h.run(&["inner1"], "true")), [""]);
    }
    let per = started.elapsed() / n;
    eprintln!("`true` through one bastion: {per:?} per command");
    assert_eq!(site.accepted_logins("bastion"), 1);
}

#[test]
fn a_stdlib_deploy_through_one_and_two_hops() {
    let site = Site::start(2, true, &[]);
    let dir = site.path().join("stdlib-recipe");
    let base = site.path().join("deployed");
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(
        dir.join("public/index.html"),
        "<title>through the bastion</title>\n",
    )
    .unwrap();
    // The inner hosts share this machine's filesystem: each route deploys to its own path.
    std::fs::write(
        dir.join("deploy.rhai"),
        format!(
            r#"
import "deploy" as deploy;
set("application", "jumped");
set("strategy", "copy");
set("copy_source", "public");
stage("one", || {{
    server("inner1", #{{ roles: ["web"], via: "bastion" }});
    set("deploy_to", "{base}/one");
}});
stage("two", || {{
    server("deep1", #{{ roles: ["web"], via: "bastion,bastion2" }});
    set("deploy_to", "{base}/two");
}});
"#,
            base = base.display()
        ),
    )
    .unwrap();
    for stage in ["one", "two"] {
        Tether::new()
            .ssh_config(&site.ssh_config())
            .current_dir(&dir)
            .args(&[stage, "deploy"])
            .run()
            .status(0)
            .stdout_contains("▶ deploy:publishing");
        let index = std::fs::read_to_string(base.join(stage).join("current/index.html")).unwrap();
        assert_eq!(index, "<title>through the bastion</title>\n", "{stage}");
        assert_eq!(
            std::fs::read_dir(base.join(stage).join("releases"))
                .unwrap()
                .count(),
            1,
            "{stage}"
        );
    }
    assert_eq!(site.accepted_logins("inner1"), 1);
    assert_eq!(site.accepted_logins("deep1"), 1);
}

#[test]
fn check_reaches_a_recipe_host_through_its_via() {
    let site = Site::start(1, false, &[]);
    let dir = site.path().join("check-recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"inner1\", #{ roles: [\"app\"], via: \"bastion\" });\n",
    )
    .unwrap();
    Tether::new()
        .ssh_config(&site.ssh_config())
        .current_dir(&dir)
        .arg("check")
        .run()
        .status(0)
        .stdout_contains("check: 1 host, 0 at risk, 0 unreachable");
    assert_eq!(site.accepted_logins("inner1"), 1);
}

/// A host key refused at the jump host is `host_key_refused` for the host behind it too, as
/// a key refused on a direct connection is: a recipe that treats that kind as a possible
/// interception sees it at the bastion (fresh-eyes finding: `err.kind` was `unreachable`).
#[test]
fn a_jump_hosts_refused_key_keeps_its_kind_for_the_hosts_behind_it() {
    let lab = support::lab::Lab::start(2);
    let known = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let entry = |h: &str| format!("[127.0.0.1]:{} ", lab.host(h).port);
    let host2_key = known
        .lines()
        .find_map(|l| l.strip_prefix(&entry("host2")))
        .unwrap();
    let wrong = lab.dir().join("wrong_known_hosts");
    std::fs::write(&wrong, format!("{}{host2_key}\n", entry("host1"))).unwrap();
    let cfg = lab.config_with(
        "wrong_bastion_config",
        &format!(
            "Host bastion\n  HostName 127.0.0.1\n  Port {}\n  UserKnownHostsFile {}\n  \
             StrictHostKeyChecking yes\nHost behind\n  HostName 127.0.0.1\n  Port {}\n  \
             ProxyJump bastion\n",
            lab.host("host1").port,
            wrong.display(),
            lab.host("host2").port
        ),
    );
    let mut r = support::recipe::RecipeDir::new(
        "wrong-bastion-key",
        "server(\"behind\", #{ roles: [\"app\"] });\n\
         task(\"t\", || { try { on(\"app\", \"true\"); } catch (e) { print(\"kind: \" + e.kind); } });\n",
    );
    r.ssh_config = Some(cfg.clone());
    r.tether()
        .args(&["t"])
        .run()
        .stdout_contains("kind: host_key_refused");
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "behind", "--", "true"])
        .run()
        .status(3)
        .stdout_contains(
            "behind: cannot reach it through jump host bastion: bastion: HOST KEY CHANGED",
        );
    assert_eq!(lab.accepted_logins("host2"), 0);
}

/// A host behind a bastion that hangs as the run ends is not summed up as holding its session,
/// nor does the run's end wait long for it (stop 46 tester t61: `one session`, exit 0, after
/// 22 s).
#[test]
fn a_host_behind_a_bastion_hung_as_the_run_ends_is_not_called_connected() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("jump_config", JUMP);
    let dir = site.path().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"inner1\", #{ roles: [\"web\"] });\n\
         task(\"t\", || { on([\"web\"], \"true\"); run_locally(\"sleep 3\"); });\n",
    )
    .unwrap();
    let started = Instant::now();
    let (out, stopped) = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            Tether::new()
                .current_dir(&dir)
                .ssh_config(&cfg)
                .args(&["t"])
                .run()
        });
        std::thread::sleep(Duration::from_millis(2500));
        let stopped = site.connection_pids("bastion");
        for &pid in &stopped {
            support::net::signal(pid, libc::SIGSTOP);
        }
        (run.join().unwrap(), stopped)
    });
    let took = started.elapsed();
    for &pid in &stopped {
        support::net::signal(pid, libc::SIGCONT);
    }
    out.status(0);
    assert!(took < Duration::from_secs(12), "{took:?}\n{}", out.stdout);
    let row = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("inner1 ") && l.contains("heartbeat"))
        .unwrap_or_else(|| panic!("no summary row\n{}", out.stdout))
        .to_string();
    assert!(!row.contains("one session"), "{row}\n{}", out.stdout);
}

/// The same on a terminal (no supervisor tick) where the host behind a healthy jump host goes
/// silent: the jump host's TCP acknowledges all, so the host's own server is asked for a
/// reply, which does not come (stop 57 tester t90: 20 s for `--timeout 5s`). Where the host
/// answers, the stop runs as usual.
#[test]
fn a_timeout_on_a_terminal_behind_a_jump_host_whose_host_went_silent_ends_soon_after_it() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("cfg", &format!("Host *\n  ConnectTimeout 2\n{JUMP}"));
    let run = |timeout: &str| {
        Tether::new().ssh_config(&cfg).args(&[
            "run",
            "--pty",
            "--hosts",
            "inner1",
            "--timeout",
            timeout,
            "--",
            "echo go; sleep 30",
        ])
    };
    let out = run("2s").run();
    out.status(1)
        .stdout_contains("its process group was sent SIGTERM and ended");
    let started = Instant::now();
    let child = run("6s").spawn();
    std::thread::sleep(Duration::from_secs(4));
    site.blackhole("inner1");
    let out = child.wait_with_output().expect("wait for tether");
    let took = started.elapsed();
    site.lift_blackhole("inner1");
    let text = support::tether::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // 6 s, 2 s for the reply, 3 s for the stop's channel; before, 15 s for the channel.
    assert!(took < Duration::from_secs(15), "{took:?}\n{text}");
    assert!(text.contains("Its process group is"), "{text}");
}

/// A command left running behind a jump host whose connection went silent (a NAT's or
/// firewall's state flushed: that connection hears nothing, new ones work) is stopped over a
/// new connection to the jump host before tether exits: the silence its stop found is the
/// jump host's, whose worker then connects again (stop 57 tester t90: the last attempt asked
/// the silent connection for its tunnel, and the command was left running).
#[test]
fn a_command_behind_a_jump_host_whose_connection_went_silent_is_stopped_over_a_new_one() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("cfg", &format!("Host *\n  ConnectTimeout 2\n{JUMP}"));
    let child = Tether::new()
        .ssh_config(&cfg)
        .args(&[
            "run",
            "--hosts",
            "inner1",
            "--timeout",
            "6s",
            "--",
            "echo go; sleep 30",
        ])
        .spawn_watched();
    std::thread::sleep(Duration::from_secs(3));
    let port = site
        .local_port("bastion", child.id())
        .expect("tether's connection to the bastion");
    site.drop_flow("bastion", port);
    let out = child.wait_with_output();
    site.lift_blackhole("bastion");
    let text = support::tether::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("did not finish within 6.0 s; stopping it on the host then failed"),
        "{text}"
    );
    assert!(
        text.contains("stopped `echo go; sleep 30` on the host"),
        "{text}"
    );
    assert!(!text.contains("may still be running"), "{text}");
    assert_eq!(site.accepted_logins("bastion"), 2, "{text}");
}

/// A command's timeout behind a jump host that goes silent shortly before it ends in about
/// the time a silent host's does: its stop is not given the 15 s a channel gets on a live
/// connection, as the jump host's TCP connection, asked where the command's own socket pair
/// cannot be, acknowledges nothing (stop 56 tester t89: `--timeout 5s` behind a jump host
/// gone silent ended at 24-26 s). On a terminal too, where no supervisor tick says it first.
#[test]
fn a_timeout_behind_a_jump_host_gone_silent_ends_soon_after_it() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with("cfg", &format!("Host *\n  ConnectTimeout 2\n{JUMP}"));
    for pty in [false, true] {
        let mut args = vec!["run", "--hosts", "inner1", "--timeout", "6s"];
        if pty {
            args.push("--pty");
        }
        args.extend(["--", "echo go; sleep 30"]);
        let started = Instant::now();
        let child = Tether::new().ssh_config(&cfg).args(&args).spawn();
        // Silent 2 s before the timeout: the supervisor's last tick is too recent to say so.
        std::thread::sleep(Duration::from_secs(4));
        site.blackhole("bastion");
        let out = child.wait_with_output().expect("wait for tether");
        let took = started.elapsed();
        site.lift_blackhole("bastion");
        let text = support::tether::text(&out);
        assert_eq!(out.status.code(), Some(1), "pty {pty}: {text}");
        // 6 s, 2 s for the jump host's TCP to acknowledge, 3 s for the stop's channel, 2 s
        // for the last contact's tunnel (ConnectTimeout); before, 15 s for the channel alone.
        assert!(
            took < Duration::from_secs(17),
            "pty {pty}: {took:?}\n{text}"
        );
        assert!(text.contains("timed out"), "pty {pty}: {text}");
        match pty {
            // The jump host's silence, not the host behind it, is named.
            false => assert!(
                text.contains("may still be running on the host")
                    && text.contains("jump host bastion: the jump host lost its connection")
                    && !text.contains("127.0.0.11:22"),
                "{text}"
            ),
            true => assert!(
                text.contains("it may still be running") && text.contains("Its process group is"),
                "{text}"
            ),
        }
    }
}
