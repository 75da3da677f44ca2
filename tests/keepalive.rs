//! Keeping sessions alive, at the worker level, against real sshd: the pool is driven directly
//! and the workers' events are inspected. Each test checks the server's own log (one
//! "Accepted publickey" line per login) so that a silent reconnect cannot pass for a session
//! that stayed alive.

use crate::support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::harness::Harness;
use support::lab::Lab;
use support::netns::NetnsHost;
use support::users::PlainUser;
use tether::event::{Beat, EventKind};
use tether::pool::{FanOut, HostResult};
use tether::ssh::exec::ExitStatus;
use tether::ssh::policy::WorkerSettings;
use tether::ssh::SshError;

const WEB: [&str; 2] = ["web1", "web2"];
const RESQUE: [&str; 2] = ["resque1", "resque2"];
const ALL: [&str; 4] = ["web1", "web2", "resque1", "resque2"];

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_reconnect(k: &EventKind) -> bool {
    matches!(k, EventKind::Reconnected { .. })
}

fn is_heartbeat(k: &EventKind) -> bool {
    matches!(k, EventKind::Heartbeat { .. })
}

fn settings(heartbeat: Option<Duration>) -> WorkerSettings {
    WorkerSettings {
        heartbeat,
        ..WorkerSettings::default()
    }
}

fn stdout(r: &HostResult) -> String {
    match &r.result {
        Some(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        other => panic!("{}: no output: {other:?}", r.host),
    }
}

/// What the seed scenario left behind.
struct Seed {
    lab: Lab,
    h: Harness,
    web: Vec<HostResult>,
    all: Vec<HostResult>,
}

/// The seed scenario: four hosts, `sleep 12` on the web hosts while the resque hosts sit idle,
/// then one command on all four.
fn seed_scenario(profile: &str, heartbeat: Option<Duration>) -> Seed {
    let lab = Lab::builder().names(&ALL).profile(profile).start();
    let mut h = Harness::new(&lab.ssh_config(), settings(heartbeat), &ALL);
    let web = h.run(&WEB, "sleep 12; echo precompiled");
    let all = h.run(&ALL, "echo step2 on $(hostname)");
    h.idle(Duration::from_millis(200));
    Seed { lab, h, web, all }
}

/// The property the issue asks for: every command succeeded on the session opened at the
/// start, and sshd saw exactly one login per host for the whole run.
fn one_session_per_host(s: &mut Seed) -> Result<(), String> {
    let mut problems = Vec::new();
    for r in s.web.iter().chain(&s.all) {
        if !r.ok() {
            problems.push(format!("{}: `{}` -> {:?}", r.host, r.command, r.result));
        }
    }
    for host in ALL {
        let logins = s.lab.accepted_logins(host);
        if logins != 1 {
            problems.push(format!("{host}: {logins} logins in sshd's log, expected 1"));
        }
        let reconnects = s.h.count(host, is_reconnect);
        if reconnects != 0 {
            problems.push(format!("{host}: {reconnects} reconnects"));
        }
    }
    // sshd started exactly the commands the scenario ran (web hosts two, idle hosts one), the
    // standby the web hosts' second command opened for a next one that never came (README:
    // Standby), two for each heartbeat that read the server's limits and one `true` for each
    // heartbeat that said it ran one: a bare-channel heartbeat forks nothing on the server.
    // The workers run on: a heartbeat's `true` that sshd started as its log is read says so
    // in an event a moment later, and events are collected until they account for what sshd
    // started (5 s at most). A command no event accounts for stays one too many.
    for (hosts, scenario, standbys) in [(WEB, 2, 1), (RESQUE, 1, 0)] {
        for host in hosts {
            let until = Instant::now() + Duration::from_secs(5);
            let (started, expected, reads, commands) = loop {
                let started = s.lab.started_commands(host);
                s.h.drain();
                let count = |want: Beat| s.h.beats(host, want);
                let (reads, commands) = (count(Beat::Limits), count(Beat::Command));
                let expected = scenario + standbys + 2 * reads + commands;
                if started == expected || Instant::now() >= until {
                    break (started, expected, reads, commands);
                }
                s.h.idle(Duration::from_millis(100));
            };
            if started != expected {
                problems.push(format!(
                    "{host}: sshd started {started} commands, expected {expected} ({scenario} \
                     of the scenario, {standbys} standby, {reads} limit reads, {commands} \
                     heartbeats running `true`)"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn seed_clientalive_default_heartbeat_keeps_every_session() {
    let mut s = seed_scenario("clientalive", Some(Duration::from_secs(15)));
    if let Err(e) = one_session_per_host(&mut s) {
        panic!("{e}\n{}", s.h.story());
    }
    for r in &s.web {
        assert!(stdout(r).contains("precompiled"));
    }
    // The idle hosts were kept alive by answering the server's probes (ClientAliveInterval
    // 1 s), long before the 15 s heartbeat was due, with bare channels: this server has no
    // UnusedConnectionTimeout, so no heartbeat ran a command there.
    for host in RESQUE {
        let beats = |want: Beat| s.h.beats(host, want);
        assert_eq!(beats(Beat::Limits), 1, "{host}\n{}", s.h.story());
        assert!(beats(Beat::Channel) >= 3, "{host}\n{}", s.h.story());
        // Not even right after login (sshd's hostkeys notice wakes the worker then): a server
        // without a channel-idle limit never gets a `true` from the heartbeat (issue 17).
        assert_eq!(beats(Beat::Command), 0, "{host}\n{}", s.h.story());
        let probes = s.h.count(host, |k| {
            matches!(k, EventKind::Heartbeat { probe: true, .. })
        });
        assert!(
            probes >= 4,
            "{host}: {probes} probe heartbeats\n{}",
            s.h.story()
        );
    }
}

#[test]
fn seed_unused_heartbeat_1s_keeps_every_session() {
    let mut s = seed_scenario("unused", Some(Duration::from_secs(1)));
    if let Err(e) = one_session_per_host(&mut s) {
        panic!("{e}\n{}", s.h.story());
    }
    // UnusedConnectionTimeout 3 is in this server's config: every heartbeat runs `true`.
    for host in RESQUE {
        let beats = s.h.count(host, is_heartbeat);
        assert!(beats >= 8, "{host}: {beats} heartbeats\n{}", s.h.story());
        let channels = s.h.count(host, |k| {
            matches!(
                k,
                EventKind::Heartbeat {
                    beat: Beat::Channel,
                    ..
                }
            )
        });
        assert_eq!(channels, 0, "{host}\n{}", s.h.story());
        let reads = s.h.beats(host, Beat::Limits);
        assert_eq!(reads, 1, "{host}\n{}", s.h.story());
    }
}

#[test]
fn seed_strict_default_heartbeat_keeps_every_session() {
    // ClientAliveInterval 1 + UnusedConnectionTimeout 3: the idle hosts are kept by answering
    // the server's probes with `true`, which also re-arms the unused-connection timer.
    let mut s = seed_scenario("strict", Some(Duration::from_secs(15)));
    for host in RESQUE {
        let beats = s.h.count(host, is_heartbeat);
        assert!(beats >= 4, "{host}: {beats} heartbeats\n{}", s.h.story());
    }
    if let Err(e) = one_session_per_host(&mut s) {
        panic!("{e}\n{}", s.h.story());
    }
}

/// Without a heartbeat the idle sessions die, and with `--no-keepalive` nothing replaces them:
/// the next command on each idle host fails with a session error naming the idle drop (it
/// never started, so it is not a lost command). This is the seed scenario's bug, and proves
/// that the property above can fail.
fn seed_without_heartbeat(profile: &str) {
    let mut s = seed_scenario(profile, None);
    let err = one_session_per_host(&mut s).expect_err("the property must fail without a heartbeat");
    for r in s.all.iter().filter(|r| RESQUE.contains(&r.host.as_str())) {
        assert!(err.contains(&format!("{}: `echo step2", r.host)), "{err}");
        match &r.result {
            Some(Err(e @ SshError::Session { reason, .. })) => {
                assert!(
                    reason.contains("connection lost while idle")
                        && reason.contains("cannot open a channel"),
                    "{}: {e}",
                    r.host
                );
            }
            other => panic!("{}: expected a session error, got {other:?}", r.host),
        }
    }
    for host in ALL {
        assert_eq!(s.h.count(host, is_heartbeat), 0, "{host}\n{}", s.h.story());
        assert_eq!(s.h.count(host, is_reconnect), 0, "{host}\n{}", s.h.story());
        assert_eq!(s.lab.accepted_logins(host), 1, "{host}");
    }
    // The web hosts were busy: a running command answers probes and holds a channel open.
    for r in s.all.iter().filter(|r| WEB.contains(&r.host.as_str())) {
        assert!(r.ok(), "{}: {:?}", r.host, r.result);
    }
}

#[test]
fn seed_clientalive_without_heartbeat_loses_idle_sessions() {
    seed_without_heartbeat("clientalive");
}

#[test]
fn seed_unused_without_heartbeat_loses_idle_sessions() {
    seed_without_heartbeat("unused");
}

#[test]
fn idle_connection_killed_by_the_server_is_replaced_at_once() {
    let lab = Lab::builder().names(&["host1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(15))),
        &["host1"],
    );
    assert!(h.run(&["host1"], "true")[0].ok());
    h.idle(Duration::from_millis(300));
    let killed = Instant::now();
    let before = h.mark();
    lab.kill_connections("host1");
    // Noticed from the socket closing, not 15 s later when the heartbeat timer is due.
    let (_, e) = h
        .wait_for_since(before, Duration::from_secs(5), |e| is_reconnect(&e.kind))
        .unwrap_or_else(|| panic!("no reconnect\n{}", h.story()));
    let noticed = killed.elapsed();
    assert!(noticed < Duration::from_secs(3), "{noticed:?}");
    let EventKind::Reconnected {
        while_idle, reason, ..
    } = &e.kind
    else {
        unreachable!()
    };
    assert!(*while_idle, "{reason}");
    assert!(reason.contains("connection lost while idle"), "{reason}");
    // In plain words, not libssh2's `[Session(-43)] Unexpected error`.
    assert!(
        reason.contains("the server closed the connection")
            || reason.contains("the connection was closed"),
        "{reason}"
    );
    assert!(!reason.contains("Session("), "{reason}");
    let r = h.run(&["host1"], "echo again");
    assert_eq!(stdout(&r[0]), "again\n");
    assert_eq!(lab.accepted_logins("host1"), 2);
    assert_eq!(h.count("host1", is_reconnect), 1, "{}", h.story());
}

/// A dead session whose host cannot be reached again is retried with backoff, and every
/// attempt that fails before another is said as it fails, with the time to the next one (stop
/// 51 tester t74: 27 s of retries with one message at the end).
#[test]
fn every_failed_reconnect_attempt_is_said_before_the_next() {
    let lab = Lab::builder().names(&["host1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(3600))),
        &["host1"],
    );
    assert!(h.run(&["host1"], "true")[0].ok());
    lab.stop_host("host1");
    let r = h.run(&["host1"], "echo again");
    assert!(!r[0].ok(), "{}", h.story());
    // The result can come before the worker's last events have crossed their forwarding
    // thread: the story is read once the final failure is said.
    let said_last = h.wait_for_since(0, Duration::from_secs(20), |e| {
        matches!(e.kind, EventKind::Unreachable { .. })
    });
    assert!(said_last.is_some(), "{}", h.story());
    let said: Vec<(u32, u32, Duration, String)> = h
        .events
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::Reconnecting {
                failed,
                attempts,
                next_in,
                error,
                ..
            } => Some((*failed, *attempts, *next_in, error.clone())),
            _ => None,
        })
        .collect();
    let s = Duration::from_secs;
    let shape: Vec<_> = said.iter().map(|(f, a, n, _)| (*f, *a, *n)).collect();
    assert_eq!(
        shape,
        [(1, 4, s(1)), (2, 4, s(2)), (3, 4, s(4))],
        "{}",
        h.story()
    );
    for (_, _, _, error) in &said {
        assert!(error.contains("host1"), "{error}");
    }
    // Each before the next attempt, the last failure after them all.
    let order: Vec<&str> = h
        .events
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::Reconnecting { .. } => Some("retry"),
            EventKind::Unreachable { .. } => Some("unreachable"),
            _ => None,
        })
        .collect();
    assert_eq!(order.last(), Some(&"unreachable"), "{}", h.story());
}

/// A server that refuses session channels (`MaxSessions 0`, as ssh meets it: `channel 0: open
/// failed: administratively prohibited`) refuses the command, and tether says so: no session
/// was found dead, none replaced, and the heartbeats it refuses are answers that keep the
/// session (before: "session found dead before `echo hi`", a reconnect for every command and
/// every heartbeat).
#[test]
fn a_server_that_refuses_channels_refuses_the_command_and_keeps_its_session() {
    let lab = Lab::builder().names(&["host1"]).start();
    lab.reconfigure("host1", "MaxSessions 0");
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(1))),
        &["host1"],
    );
    for _ in 0..2 {
        let r = h.run(&["host1"], "echo hi");
        let Some(Err(e)) = &r[0].result else {
            panic!("not refused: {:?}\n{}", r[0].result, h.story())
        };
        let said = e.to_string();
        assert!(
            said.contains("the server refused to open a channel"),
            "{said}"
        );
        assert!(said.contains("MaxSessions"), "{said}");
        h.idle(Duration::from_millis(2500));
    }
    assert!(h.count("host1", is_heartbeat) >= 2, "{}", h.story());
    assert_eq!(h.count("host1", is_reconnect), 0, "{}", h.story());
    assert_eq!(lab.accepted_logins("host1"), 1, "{}", h.story());
}

/// Under `MaxSessions 1`, a command that comes as the heartbeat's channel closes finds its
/// place still taken for a moment: it waits for it, not failing (stop 39 tester t29: with a
/// 500 ms heartbeat, 3 runs of 6 failed a command with "cannot open a channel", exit 3).
#[test]
fn under_max_sessions_1_a_command_after_a_heartbeat_waits_for_its_channel() {
    // `UnusedConnectionTimeout`: the heartbeat runs `true`, whose channel sshd frees once its
    // process has ended.
    let lab = Lab::builder().names(&["host1"]).profile("unused").start();
    lab.reconfigure("host1", "MaxSessions 1");
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_millis(200))),
        &["host1"],
    );
    for round in 0..50 {
        h.idle(Duration::from_millis(150 + (round * 7) % 100));
        let r = h.run(&["host1"], "true");
        assert!(r[0].ok(), "round {round}: {:?}\n{}", r[0].result, h.story());
    }
    assert!(h.count("host1", is_heartbeat) >= 20, "{}", h.story());
    assert_eq!(h.count("host1", is_reconnect), 0, "{}", h.story());
}

/// A server whose config was read and needs no open channel has its idle session killed (an
/// administrator's `kill`, a restart): reconnected, still kept by keepalives, nothing learned.
/// A second close in the run is a pattern: `true` from then on, with a warning (fresh-eyes
/// finding: one kill switched the host to `true` every 14 s for the rest of the run, silently).
#[test]
fn one_kill_of_an_idle_session_whose_limits_were_read_changes_nothing() {
    let lab = Lab::builder().names(&["kill1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(3))),
        &["kill1"],
    );
    h.wait_for_beat(Duration::from_secs(5), Beat::Limits);
    let beats_since = |h: &Harness, mark: usize, want: Beat| {
        h.events[mark..]
            .iter()
            .filter(|(_, e)| matches!(e.kind, EventKind::Heartbeat { beat, .. } if beat == want))
            .count()
    };
    let warned = |h: &Harness| {
        h.count("kill1", |k| {
            matches!(k, EventKind::Warning { message } if message.contains("closed an idle session twice"))
        })
    };
    for round in 1..=2 {
        // Killed between beats, once the last one's messages were read: sshd's socket then
        // ends with a FIN, as a server that closes an idle session ends it. Killed while a
        // beat's last messages are unread by sshd, the kernel resets it instead, which is no
        // close (see `idle_death`): a reset in one round and a close in the other made no
        // pattern, and no warning (a flake under load).
        h.wait_for(Duration::from_secs(10), |e| {
            matches!(e.kind, EventKind::Heartbeat { .. })
        })
        .unwrap_or_else(|| panic!("round {round}: no heartbeat\n{}", h.story()));
        h.idle(Duration::from_millis(500));
        let before = h.mark();
        lab.kill_connections("kill1");
        h.wait_for_since(before, Duration::from_secs(5), |e| is_reconnect(&e.kind))
            .unwrap_or_else(|| panic!("round {round}: no reconnect\n{}", h.story()));
        let mark = h.mark();
        h.idle(Duration::from_secs(8));
        let (commands, keepalives) = (
            beats_since(&h, mark, Beat::Command),
            beats_since(&h, mark, Beat::Keepalive),
        );
        if round == 1 {
            assert_eq!((commands, warned(&h)), (0, 0), "{}", h.story());
            assert!(keepalives >= 1, "{}", h.story());
        } else {
            assert_eq!(warned(&h), 1, "{}", h.story());
            assert!(commands >= 1, "{}", h.story());
        }
    }
    let learned = h.count("kill1", |k| matches!(k, EventKind::Learned { .. }));
    assert_eq!(learned, 0, "{}", h.story());
    assert_eq!(h.count("kill1", is_reconnect), 2, "{}", h.story());
    assert_eq!(lab.accepted_logins("kill1"), 3);
}

/// A recipe directory in `lab`'s, its `deploy.rhai` holding `recipe`.
fn recipe_dir(lab: &Lab, recipe: &str) -> std::path::PathBuf {
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.rhai"), recipe).unwrap();
    dir
}

/// `tether ARGS` in `dir` with `config`; once `host` has started `commands` commands, and
/// `after` more, `fault` runs (it breaks something), and its value comes back with the run's
/// output.
fn run_with_fault<T: Send>(
    lab: &Lab,
    (dir, config, args): (&std::path::Path, &std::path::Path, &[&str]),
    (host, commands): (&str, usize),
    after: Duration,
    fault: impl FnOnce() -> T + Send,
) -> (support::tether::Output, T) {
    std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            support::tether::Tether::new()
                .current_dir(dir)
                .ssh_config(config)
                .args(args)
                .run()
        });
        let until = Instant::now() + Duration::from_secs(10);
        while lab.started_commands(host) < commands && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(after);
        let made = fault();
        (run.join().unwrap(), made)
    })
}

/// The summary row of `host` in `out` (the line that names it and its heartbeats).
fn summary_row(out: &support::tether::Output, host: &str) -> String {
    out.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{host} ")) && l.contains("heartbeat"))
        .unwrap_or_else(|| panic!("no summary row\n{}", out.stdout))
        .to_string()
}

/// The summary says how many sessions a host had: after a reconnect, two, as the JSON's
/// `sessions` does (fresh-eyes finding: the text said "one session" beside "1 reconnect").
#[test]
fn the_summary_counts_the_sessions_a_reconnect_opened() {
    let lab = Lab::builder().names(&["web1"]).start();
    let dir = recipe_dir(
        &lab,
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"t\", || { on([\"web\"], \"true\"); \
         run_locally(\"sleep 4\"); on([\"web\"], \"echo after\"); });\n",
    );
    let (out, ()) = run_with_fault(
        &lab,
        (&dir, &lab.ssh_config(), &["t"]),
        ("web1", 1),
        Duration::from_millis(500),
        || lab.kill_connections("web1"),
    );
    out.status(0).stdout_contains("after");
    let row = summary_row(&out, "web1");
    assert!(row.contains("2 sessions, "), "{row}");
    assert!(row.contains("1 reconnect"), "{row}");
    assert_eq!(lab.accepted_logins("web1"), 2);
}

/// An idle host whose connection dies near the end of a run, and which cannot be reached again
/// before the run ends, is summed up as lost, not as holding its session (stop 45 tester t57:
/// such a host's row said `one session, 1 heartbeat, 0 reconnects` and its JSON
/// `connected: true`: the reconnect cut short by the run's end said nothing).
#[test]
fn an_idle_host_lost_as_the_run_ends_is_not_summed_up_as_connected() {
    for format in ["text", "json"] {
        let lab = Lab::builder().names(&["web1", "web2"]).start();
        let dir = recipe_dir(
            &lab,
            "server(\"web1\", #{ roles: [\"web\"] });\n\
             server(\"web2\", #{ roles: [\"web\"] });\n\
             task(\"t\", || { on([\"web\"], \"true\"); run_locally(\"sleep 3\"); });\n",
        );
        // Connection closed, new ones refused: the reconnect's backoff (1 s, 2 s) outlasts the
        // run.
        let (out, ()) = run_with_fault(
            &lab,
            (&dir, &lab.ssh_config(), &["--format", format, "t"]),
            ("web2", 1),
            Duration::from_millis(500),
            || lab.stop_host("web2"),
        );
        out.status(0);
        if format == "text" {
            let row = summary_row(&out, "web2");
            assert!(
                row.contains("session lost after 1 finished command"),
                "{row}"
            );
            assert!(row.contains("not reconnected: the run was ending"), "{row}");
            assert!(
                out.stdout.lines().any(|l| l.starts_with("web2 ")
                    && l.contains("~")
                    && l.contains("not reconnected: the run was ending")),
                "{}",
                out.stdout
            );
        } else {
            let lost: Vec<serde_json::Value> = out
                .stdout
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .filter(|v: &serde_json::Value| v["host"] == "web2")
                .collect();
            assert!(
                lost.iter().any(|v| v["type"] == "session_lost"),
                "{}",
                out.stdout
            );
            let end = lost
                .iter()
                .find(|v| v["type"] == "session_summary")
                .unwrap_or_else(|| panic!("{}", out.stdout));
            assert_eq!(end["connected"], false, "{end}");
        }
    }
}

/// An idle host whose connection hangs (its sshd stopped, as a blackhole would) near the end of
/// a run, or whose reconnect hangs (its listener stopped, its connection killed), does not hold
/// the run's end for long unsaid, and is not summed up as holding its session (stop 46 tester
/// t61: `one session`, exit 0, after 17 s of silence; a reconnect held the end for its whole
/// `ConnectTimeout 30`).
#[test]
fn an_idle_host_hung_as_the_run_ends_is_neither_waited_for_nor_called_connected() {
    for listener in [false, true] {
        let lab = Lab::builder().names(&["web1", "web2"]).start();
        hung_as_the_run_ends(&lab, listener, "");
    }
}

/// The same for a host that ran only commands on a terminal, which leave no files of the
/// supervisor for the run's last exec to remove (the review of stop 46: only a host with such
/// files was asked at the end whether its session answered).
#[test]
fn a_host_without_supervised_commands_hung_as_the_run_ends_is_not_called_connected() {
    let lab = Lab::builder().names(&["web1", "web2"]).start();
    hung_as_the_run_ends(&lab, false, "#{ pty: true }, ");
}

/// Runs `true` on web1 and web2 (with `on`'s `options`), then `sleep 3` on web1 while web2's
/// session (its listener too, with `listener`) hangs; checks the end is not held and web2 is
/// not summed up as holding its session.
fn hung_as_the_run_ends(lab: &Lab, listener: bool, options: &str) {
    let dir = recipe_dir(
        lab,
        &format!(
            "server(\"web1\", #{{ roles: [\"web\"] }});\n\
             server(\"web2\", #{{ roles: [\"web\"] }});\n\
             task(\"t\", || {{ on([\"web\"], {options}\"true\"); on([\"web1\"], \"sleep 3\"); }});\n"
        ),
    );
    let config = lab.config_with("slow_connect", "Host *\n  ConnectTimeout 30\n");
    let started = Instant::now();
    let (out, stopped) = run_with_fault(
        lab,
        (&dir, &config, &["t"]),
        ("web1", 2),
        Duration::from_millis(2500),
        || {
            let stopped = match listener {
                false => lab.connection_pids("web2"),
                true => vec![lab.host("web2").pid],
            };
            for &pid in &stopped {
                support::net::signal(pid, libc::SIGSTOP);
            }
            if listener {
                lab.kill_connections("web2");
            }
            stopped
        },
    );
    let took = started.elapsed();
    for &pid in &stopped {
        support::net::signal(pid, libc::SIGCONT);
    }
    out.status(0);
    assert!(
        took < Duration::from_secs(12),
        "{listener} {took:?}\n{}",
        out.stdout
    );
    let row = summary_row(&out, "web2");
    assert!(
        !row.contains("one session") && row.contains("the run was ending"),
        "{listener} {row}\n{}",
        out.stdout
    );
}

#[test]
fn connection_killed_during_a_command_is_lost_and_not_resent() {
    let lab = Lab::builder().names(&["host1"]).start();
    let marker = lab.host("host1").root_dir.join("marker");
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(15))),
        &["host1"],
    );
    let command = "echo ran >> /srv/marker; sleep 30";
    let (result, killed) = std::thread::scope(|scope| {
        let pool = &h.pool;
        let job = scope.spawn(move || {
            // On a terminal: without one the command runs under the supervisor, and is
            // re-attached to (tests/reattach.rs).
            pool.fan_out(
                &[("host1".to_string(), command.to_string())],
                &FanOut {
                    pty: true,
                    ..FanOut::default()
                },
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&marker)
            .unwrap_or_default()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the command never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let killed = Instant::now();
        lab.kill_connections("host1");
        (job.join().unwrap(), killed)
    });
    h.settle();
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    match &result[0].result {
        Some(Err(SshError::ConnectionLost {
            host,
            command: c,
            elapsed,
            ..
        })) => {
            assert_eq!(host, "host1");
            assert_eq!(c, command);
            assert!(*elapsed < Duration::from_secs(10), "{elapsed:?}");
        }
        other => panic!("expected ConnectionLost, got {other:?}\n{}", h.story()),
    }
    let text = result[0].result.as_ref().unwrap().as_ref().unwrap_err();
    assert!(
        text.to_string().contains("the command may have partly run"),
        "{text}"
    );
    // A later command runs on a new session (the lost one was replaced) ...
    let r = h.run(&["host1"], "cat /srv/marker");
    assert_eq!(stdout(&r[0]), "ran\n", "{}", h.story());
    assert_eq!(lab.accepted_logins("host1"), 2);
    // ... and the lost command was never sent again.
    h.idle(Duration::from_millis(500));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    let reconnects: Vec<(String, bool)> = h
        .events
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::Reconnected {
                reason, while_idle, ..
            } => Some((reason.clone(), *while_idle)),
            _ => None,
        })
        .collect();
    assert_eq!(reconnects.len(), 1, "{}", h.story());
    assert!(reconnects[0].0.contains("connection lost during a command"));
    assert!(!reconnects[0].1);
}

/// A server whose config was read and sets no `UnusedConnectionTimeout` is kept by protocol
/// keepalives alone: no channel, no command, and they are client traffic enough for
/// `ClientAliveInterval` (issue 17: heartbeat selection per known limit).
#[test]
fn a_server_without_a_channel_idle_limit_gets_only_protocol_keepalives() {
    let lab = Lab::builder().names(&["host1"]).start();
    // Without client traffic for 4 s the server would probe, which wakes the worker.
    lab.reconfigure("host1", "ClientAliveInterval 4\nClientAliveCountMax 1");
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(3))),
        &["host1"],
    );
    h.idle(Duration::from_secs(14));
    let beats = |want: Beat| h.beats("host1", want);
    assert_eq!(beats(Beat::Limits), 1, "{}", h.story());
    let keepalives = beats(Beat::Keepalive);
    assert!(keepalives >= 3, "{keepalives} keepalives\n{}", h.story());
    // A bare channel after every three keepalives at most (it proves sshd itself answers).
    let channels = beats(Beat::Channel);
    assert!(channels <= 1, "{}", h.story());
    assert_eq!(beats(Beat::Command), 0, "{}", h.story());
    let probes = h.count("host1", |k| {
        matches!(k, EventKind::Heartbeat { probe: true, .. })
    });
    assert_eq!(
        probes,
        0,
        "the server probed a silent client\n{}",
        h.story()
    );
    assert_eq!(h.count("host1", is_reconnect), 0, "{}", h.story());
    let log = std::fs::read_to_string(&lab.host("host1").log).unwrap();
    // sshd logs every session channel it closes (LogLevel VERBOSE): the limit read's round
    // trip and its two commands, and the bare channels; nothing else opened one.
    assert_eq!(
        log.matches("Close session: ").count(),
        3 + channels,
        "{log}"
    );
    assert_eq!(lab.started_commands("host1"), 2);
    assert_eq!(lab.accepted_logins("host1"), 1);
    assert_eq!(stdout(&h.run(&["host1"], "echo still")[0]), "still\n");
}

/// A protocol keepalive costs its host's worker one wakeup: the kernel holds the heartbeat's
/// deadline (`TCP_USER_TIMEOUT`), so nothing wakes the worker between two beats to look for
/// the acknowledgement; the next beat looks (issue 17: a thousand idle hosts spend their CPU on
/// waking their workers, so every wakeup counts).
#[test]
fn a_keepalive_wakes_its_worker_once() {
    let lab = Lab::builder().names(&["wake1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        // An interval longer than the heartbeat timeout, as by default (15 s and 5 s).
        WorkerSettings {
            heartbeat: Some(Duration::from_secs(3)),
            heartbeat_timeout: Duration::from_secs(2),
            ..WorkerSettings::default()
        },
        &["wake1"],
    );
    let worker = support::threads::named("host wake1");
    // Each heartbeat event with the worker's switches 200 ms later, when it sleeps again.
    let mut seen: Vec<(Beat, Duration, u64)> = Vec::new();
    let until = Instant::now() + Duration::from_secs(40);
    let cycles = loop {
        // Between two keepalive events in a row the worker ran one beat; not where a bare
        // channel came right after the second (the same wakeup ran it, before the read).
        let cycles: Vec<u64> = seen
            .windows(3)
            .filter(|w| w[0].0 == Beat::Keepalive && w[1].0 == Beat::Keepalive)
            .filter(|w| w[2].0 != Beat::Channel || w[2].1 - w[1].1 > Duration::from_millis(100))
            .map(|w| w[1].2 - w[0].2)
            .collect();
        if cycles.len() >= 3 {
            break cycles;
        }
        let left = until.saturating_duration_since(Instant::now());
        let mark = h.mark();
        h.wait_for_since(mark, left, |e| {
            matches!(e.kind, EventKind::Heartbeat { .. })
        })
        .unwrap_or_else(|| panic!("{seen:?}\n{}", h.story()));
        std::thread::sleep(Duration::from_millis(200));
        h.drain();
        let switches = support::threads::voluntary_switches(worker);
        for (at, e) in &h.events[mark..] {
            if let EventKind::Heartbeat { beat, .. } = e.kind {
                seen.push((beat, *at, switches));
            }
        }
    };
    // Another thread holding a lock the worker wants (the allocator's, the event channel's)
    // can add a switch now and then; looking for the acknowledgement at its deadline added
    // one to every beat.
    assert_eq!(cycles.iter().min(), Some(&1), "{cycles:?}\n{}", h.story());
    assert!(
        cycles.iter().sum::<u64>() <= cycles.len() as u64 + 1,
        "{cycles:?}\n{}",
        h.story()
    );
    assert_eq!(h.count("wake1", is_reconnect), 0, "{}", h.story());
}

/// A host kept by protocol keepalives beats at the run's keepalive interval when no interval
/// was asked for: its server needs no client traffic, only NAT tables do (issue 17: idle
/// sessions nearly free). A host whose ssh config asks for `ServerAliveInterval` keeps that,
/// shorter or longer than the run's heartbeat.
#[test]
fn hosts_kept_by_keepalives_beat_at_the_keepalive_interval_unless_asked() {
    let lab = Lab::builder().names(&["slow1", "asked1", "long1"]).start();
    let config = lab.dir().join("asked_ssh_config");
    let original = std::fs::read_to_string(lab.ssh_config()).unwrap();
    // ssh_config: the first value obtained wins.
    std::fs::write(
        &config,
        format!(
            "Host asked1\n  ServerAliveInterval 2\nHost long1\n  ServerAliveInterval 5\n\n\
             {original}"
        ),
    )
    .unwrap();
    let mut h = Harness::new(
        &config,
        WorkerSettings {
            heartbeat: Some(Duration::from_secs(2)),
            heartbeat_timeout: Duration::from_secs(1),
            keepalive_heartbeat: Some(Duration::from_secs(8)),
            ..WorkerSettings::default()
        },
        &["slow1", "asked1", "long1"],
    );
    h.idle(Duration::from_secs(12));
    let beats = |h: &Harness, host: &str| {
        h.count(
            host,
            |k| matches!(k, EventKind::Heartbeat { beat, .. } if *beat != Beat::Limits),
        )
    };
    // slow1: its limits read at 1 s, a keepalive sent 7.2 s to 8 s later, whose heartbeat
    // event comes at the next beat, after this window. asked1: one every 2 s from 1 s on.
    assert_eq!(beats(&h, "slow1"), 0, "{}", h.story());
    assert!(beats(&h, "asked1") >= 3, "{}", h.story());
    // long1: keepalives sent 4.5 s to 5 s apart from 1 s on, each heartbeat event a beat
    // later: the first at 10 s to 11 s, the next from 14.5 s.
    assert_eq!(beats(&h, "long1"), 1, "{}", h.story());
    // Its acknowledgement is looked for at the next beat (15.4 s to 17 s); the one after
    // that is looked for from 22.6 s on.
    h.idle(Duration::from_secs(7));
    assert_eq!(beats(&h, "slow1"), 1, "{}", h.story());
    assert!((2..=3).contains(&beats(&h, "long1")), "{}", h.story());
    for host in ["slow1", "asked1", "long1"] {
        assert_eq!(h.count(host, is_reconnect), 0, "{}", h.story());
        assert_eq!(stdout(&h.run(&[host], "echo up")[0]), "up\n");
        assert_eq!(lab.accepted_logins(host), 1);
    }
}

/// A 1 s heartbeat (`--keepalive 1s`, `ServerAliveInterval 1`), shortened by its spread, still
/// waits for the limits read: a server without a channel-idle limit gets no `true`
/// (fresh-eyes finding: one ran before the read).
#[test]
fn a_one_second_heartbeat_runs_no_true_where_no_channel_idle_limit() {
    let lab = Lab::builder().names(&["one1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(1))),
        &["one1"],
    );
    h.idle(Duration::from_secs(4));
    let beats = |want: Beat| h.beats("one1", want);
    assert_eq!(
        (beats(Beat::Command), beats(Beat::Limits)),
        (0, 1),
        "{}",
        h.story()
    );
    assert!(beats(Beat::Channel) >= 2, "{}", h.story());
    // The limits read's two commands, nothing else.
    assert_eq!(lab.started_commands("one1"), 2);
}

/// A host kept by keepalives whose sshd hangs (stopped: its kernel still acknowledges every
/// keepalive) is found dead while idle, by the bare channel that comes after every three
/// keepalives, and reconnected; not at the next command, which would wait for its channel
/// (fresh-eyes finding, stop 24).
#[test]
fn a_hung_sshd_behind_acknowledged_keepalives_is_found_while_idle() {
    let lab = Lab::builder().names(&["host1"]).start();
    let interval = Duration::from_secs(3);
    let mut h = Harness::new(
        &lab.ssh_config(),
        WorkerSettings {
            heartbeat: Some(interval),
            heartbeat_timeout: Duration::from_secs(2),
            ..WorkerSettings::default()
        },
        &["host1"],
    );
    h.wait_for_beat(Duration::from_secs(10), Beat::Keepalive);
    let hung = lab.connection_pids("host1");
    assert!(!hung.is_empty());
    for &pid in &hung {
        // SAFETY: kill(2) on the lab's own sshd process.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    }
    let since = Instant::now();
    // Three keepalives at most (each up to an interval, spread by a tenth), then the channel
    // and its deadline.
    let bound = interval.mul_f64(1.1) * 4 + Duration::from_secs(2);
    let found = h.wait_for(bound + Duration::from_secs(3), |e| {
        matches!(e.kind, EventKind::Reconnected { .. })
    });
    let took = since.elapsed();
    for &pid in &hung {
        // SAFETY: as above; the stopped process is then killed with its connection's end.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    assert!(
        found.is_some(),
        "not found dead within {took:?}\n{}",
        h.story()
    );
    assert!(
        took <= bound + Duration::from_secs(1),
        "{took:?}\n{}",
        h.story()
    );
    assert_eq!(stdout(&h.run(&["host1"], "echo after")[0]), "after\n");
}

#[test]
fn blackholed_idle_host_is_reported_unreachable_not_hung() {
    blackholed_idle_host(Duration::from_secs(1), Beat::Channel);
}

/// The same with protocol keepalives (an interval they fit): a keepalive that the server's
/// TCP does not acknowledge within the heartbeat's deadline is a dead session.
#[test]
fn a_blackholed_host_kept_by_keepalives_is_reported_unreachable_not_hung() {
    blackholed_idle_host(Duration::from_secs(3), Beat::Keepalive);
}

fn blackholed_idle_host(interval: Duration, beat: Beat) {
    let far = NetnsHost::start("far", &[]);
    let heartbeat_timeout = Duration::from_secs(2);
    let connect_timeout = Duration::from_secs(2); // ConnectTimeout in its ssh config
    let attempts = 2;
    let mut h = Harness::new(
        &far.ssh_config(),
        WorkerSettings {
            heartbeat: Some(interval),
            heartbeat_timeout,
            reconnect_attempts: attempts,
            backoff_cap: Duration::from_secs(1),
            ..WorkerSettings::default()
        },
        &["far"],
    );
    assert_eq!(stdout(&h.run(&["far"], "echo up")[0]), "up\n");
    h.wait_for_beat(interval * 2 + Duration::from_secs(3), beat);
    far.blackhole();
    let cut = Instant::now();
    // Detection: at most one interval (spread by up to a tenth per host) plus the heartbeat
    // deadline. Then `attempts` connects of ConnectTimeout each, with a 1 s backoff between them.
    let bound = interval.mul_f64(1.1)
        + heartbeat_timeout
        + connect_timeout * attempts
        + Duration::from_secs(1);
    let (_, e) = h
        .wait_for(bound + Duration::from_secs(3), |e| {
            matches!(e.kind, EventKind::Unreachable { .. })
        })
        .unwrap_or_else(|| panic!("not reported unreachable within {bound:?}\n{}", h.story()));
    let took = cut.elapsed();
    assert!(took >= heartbeat_timeout, "{took:?}");
    assert!(
        took <= bound + Duration::from_millis(1500),
        "{took:?} > {bound:?}"
    );
    let EventKind::Unreachable { error } = &e.kind else {
        unreachable!()
    };
    let text = error.to_string();
    assert!(
        text.contains("connection lost while idle (timed out)"),
        "{text}"
    );
    assert!(text.contains("reconnecting failed"), "{text}");
    assert!(text.contains("no answer from"), "{text}");
    assert_eq!(h.count("far", is_reconnect), 0, "{}", h.story());
    // The host is now known unreachable: a command fails at once instead of hanging.
    let asked = Instant::now();
    let r = h.run(&["far"], "echo hello");
    assert!(asked.elapsed() < Duration::from_secs(1));
    match &r[0].result {
        Some(Err(e @ SshError::Session { .. })) => assert!(e.is_connect_failure()),
        other => panic!("expected an unreachable host, got {other:?}"),
    }
    assert_eq!(far.accepted_logins(), 1);
}

#[test]
fn silent_command_cut_off_by_channel_timeout_keeps_the_session() {
    let lab = Lab::builder()
        .names(&["host1"])
        .profile("channeltimeout")
        .start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(1))),
        &["host1"],
    );
    let started = Instant::now();
    // On a terminal: without one the supervisor keeps the channel in use (tests/reattach.rs).
    let r = h.pool.fan_out(
        &[("host1".to_string(), "sleep 10".to_string())],
        &FanOut {
            pty: true,
            ..FanOut::default()
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    match &r[0].result {
        Some(Ok(out)) => {
            // Its terminal hung up as its channel closed: not said to be maybe running still
            // (stop 61 tester t100).
            assert_eq!(out.status, ExitStatus::HungUp);
            assert!(!out.status.success());
            let said = out.status.to_string();
            assert!(said.contains("ChannelTimeout"), "{said}");
            assert!(said.contains("hung up the terminal"), "{said}");
            assert!(!said.contains("may still be running"), "{said}");
            // And the hang-up ended it.
            let sleeping = || {
                lab.host_pids("host1").into_iter().any(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|l| l.starts_with(b"sleep\x0010"))
                })
            };
            let until = Instant::now() + Duration::from_secs(3);
            while sleeping() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(!sleeping(), "`sleep 10` outlived its terminal");
        }
        other => panic!("expected a missing exit status, got {other:?}"),
    }
    // Only the channel was closed: the session itself is still the first one.
    let r = h.run(&["host1"], "echo after");
    assert_eq!(stdout(&r[0]), "after\n");
    assert_eq!(lab.accepted_logins("host1"), 1);
    assert_eq!(h.count("host1", is_reconnect), 0, "{}", h.story());
}

#[test]
fn learns_a_shorter_interval_when_an_idle_session_dies() {
    // A login that cannot read the server's config (mode 0600): its limit is not known
    // before it ends a session. (Read, it would set the interval: see idle_limits.rs.)
    let user = PlainUser::create();
    let lab = Lab::builder().names(&["host1"]).profile("unused").start();
    set_mode(&lab.host("host1").sshd_config, 0o600);
    let host = user.at("host1");
    let host = host.as_str();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(15))),
        &[host],
    );
    // UnusedConnectionTimeout 3 closes the idle session long before the 15 s heartbeat.
    let (_, learned) = h
        .wait_for(Duration::from_secs(10), |e| {
            matches!(e.kind, EventKind::Learned { .. })
        })
        .unwrap_or_else(|| panic!("nothing learned\n{}", h.story()));
    let EventKind::Learned {
        died_after,
        interval,
        ..
    } = learned.kind
    else {
        unreachable!()
    };
    assert!(
        died_after >= Duration::from_millis(2500) && died_after < Duration::from_secs(6),
        "{died_after:?}"
    );
    assert!(interval <= Duration::from_millis(1500), "{interval:?}");
    h.wait_for(Duration::from_secs(10), |e| is_reconnect(&e.kind))
        .unwrap_or_else(|| panic!("no reconnect\n{}", h.story()));
    let before = h.events.len();
    // Idle well past UnusedConnectionTimeout: the learned heartbeat keeps the new session.
    h.idle(Duration::from_secs(8));
    let after: Vec<&EventKind> = h.events[before..]
        .iter()
        .filter(|(_, e)| &*e.host == host)
        .map(|(_, e)| &e.kind)
        .collect();
    assert!(
        !after
            .iter()
            .any(|k| is_reconnect(k) || matches!(k, EventKind::Learned { .. })),
        "{}",
        h.story()
    );
    let beats = after.iter().filter(|k| is_heartbeat(k)).count();
    assert!(beats >= 5, "{beats} heartbeats\n{}", h.story());
    assert_eq!(stdout(&h.run(&[host], "echo fine")[0]), "fine\n");
    assert_eq!(lab.accepted_logins("host1"), 2);
    assert_eq!(h.count(host, is_reconnect), 1);
}

#[test]
fn blackholed_during_a_command_is_lost_not_hung() {
    let far = NetnsHost::start("far", &[]);
    let interval = Duration::from_secs(1);
    let heartbeat_timeout = Duration::from_secs(2);
    let mut h = Harness::new(
        &far.ssh_config(),
        WorkerSettings {
            heartbeat: Some(interval),
            heartbeat_timeout,
            reconnect_attempts: 1,
            backoff_cap: Duration::from_secs(1),
            // One attempt to re-attach (tests/reattach.rs lifts a blackhole in time).
            reattach: Duration::ZERO,
            ..WorkerSettings::default()
        },
        &["far"],
    );
    let pool = h.pool.clone();
    let (tx, rx) = mpsc::channel();
    // A detached thread: if the command hangs, the test fails instead of hanging with it.
    std::thread::spawn(move || {
        let _ = tx.send(pool.fan_out(
            &[("far".to_string(), "echo started; sleep 30".to_string())],
            &FanOut::default(),
        ));
    });
    h.wait_for(
        Duration::from_secs(5),
        |e| matches!(&e.kind, EventKind::Output { line, .. } if line == "started"),
    )
    .expect("the command started");
    far.blackhole();
    let cut = Instant::now();
    // Keepalives go out every 2 s at most (libssh2's floor), and the kernel gives up on one
    // that stays unacknowledged for max(3 intervals, heartbeat timeout) = 3 s; then one
    // reconnect attempt of ConnectTimeout 2 s.
    let bound = Duration::from_secs(2 + 3 + 2);
    let Ok(result) = rx.recv_timeout(bound + Duration::from_secs(10)) else {
        std::mem::forget(h);
        panic!("the command still hangs {bound:?} after the host was blackholed");
    };
    let took = cut.elapsed();
    h.settle();
    assert!(
        took <= bound + Duration::from_secs(2),
        "{took:?}\n{}",
        h.story()
    );
    match &result[0].result {
        Some(Err(SshError::ConnectionLost { reason, .. })) => {
            assert!(reason.contains("failed"), "{reason}");
            // The kernel gave up on a server that acknowledged nothing: after that error is
            // read, the socket reads as ended, but the server closed nothing (fresh-eyes
            // finding: "the server closed the connection").
            assert!(reason.contains("timed out"), "{reason}");
            assert!(!reason.contains("closed the connection"), "{reason}");
        }
        other => panic!("expected ConnectionLost, got {other:?}\n{}", h.story()),
    }
    assert_eq!(far.accepted_logins(), 1);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Regression: a signal interrupting the idle `poll()` made the worker take the heartbeat as
/// due whenever the time left at the previous wake-up had passed, not the interval itself.
#[test]
fn a_signal_while_idle_does_not_bring_the_heartbeat_forward() {
    // SAFETY: installs a handler that does nothing, without SA_RESTART, so that a blocked
    // poll() returns EINTR; no other code of this test binary uses SIGUSR1.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
    let lab = Lab::builder().names(&["sig1"]).start();
    let interval = Duration::from_secs(3);
    let mut h = Harness::new(&lab.ssh_config(), settings(Some(interval)), &["sig1"]);
    let (_, first) = h
        .wait_for(Duration::from_secs(5), |e| is_heartbeat(&e.kind))
        .expect("a first heartbeat");
    let tid = support::threads::named("host sig1");
    for at in [2000, 2500] {
        let when = first.at + Duration::from_millis(at);
        std::thread::sleep(when.saturating_duration_since(Instant::now()));
        // SAFETY: tgkill with a live thread id of this process and a handled signal.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                std::process::id() as libc::c_long,
                tid as libc::c_long,
                libc::SIGUSR1 as libc::c_long,
            )
        };
        assert_eq!(rc, 0);
    }
    let (_, next) = h
        .wait_for(Duration::from_secs(5), |e| is_heartbeat(&e.kind))
        .expect("a second heartbeat");
    let gap = next.at - first.at;
    // Each host waits 90-100 % of the interval (its spread); the signals came at 2.0 and 2.5 s.
    assert!(
        gap >= interval.mul_f64(0.9) - Duration::from_millis(100),
        "heartbeat after {gap:?}, interval {interval:?}\n{}",
        h.story()
    );
    assert_eq!(lab.accepted_logins("sig1"), 1);
}

#[test]
fn a_timed_out_command_leaves_the_session_usable() {
    let lab = Lab::builder().names(&["host1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(1))),
        &["host1"],
    );
    let started = Instant::now();
    let r = h.pool.fan_out(
        &[("host1".to_string(), "sleep 3; echo late".to_string())],
        &FanOut {
            timeout: Some(Duration::from_secs(1)),
            ..FanOut::default()
        },
    );
    // The timeout, then its process group stopped on the host (tests/reattach.rs): before
    // the command would have ended, at 3 s (the stop took 1.05 s once under a fresh-clone
    // CI run's load, where 2 s was the bound).
    assert!(
        started.elapsed() < Duration::from_millis(2800),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&r[0].result, Some(Err(SshError::CommandTimeout { .. }))),
        "{:?}",
        r[0].result
    );
    assert_eq!(stdout(&h.run(&["host1"], "echo next")[0]), "next\n");
    // The abandoned command ends on the server meanwhile; heartbeats carry on.
    h.idle(Duration::from_secs(4));
    assert!(h.count("host1", is_heartbeat) >= 2, "{}", h.story());
    assert_eq!(stdout(&h.run(&["host1"], "echo still")[0]), "still\n");
    assert_eq!(h.count("host1", is_reconnect), 0, "{}", h.story());
    assert_eq!(lab.accepted_logins("host1"), 1);
}

/// Regression: a worker that was reconnecting (with backoff) to a host that went away kept the
/// whole process from exiting until every attempt had failed.
#[test]
fn closing_the_pool_does_not_wait_for_a_reconnect_backoff() {
    let lab = Lab::builder().names(&["gone1"]).start();
    let mut h = Harness::new(
        &lab.ssh_config(),
        settings(Some(Duration::from_secs(15))),
        &["gone1"],
    );
    assert!(h.run(&["gone1"], "true")[0].ok());
    lab.stop_host("gone1");
    // The socket closes, the heartbeat fails, reconnecting starts: refused, then 1 s, 2 s, 4 s
    // of backoff between attempts.
    std::thread::sleep(Duration::from_millis(1500));
    h.drain();
    assert_eq!(h.count("gone1", is_reconnect), 0, "{}", h.story());
    let Harness { pool, .. } = h;
    let closing = Instant::now();
    drop(pool);
    assert!(
        closing.elapsed() < Duration::from_secs(1),
        "closing took {:?}",
        closing.elapsed()
    );
}

/// A session opened by a reconnect is not said to be woken by the server: sshd's notice right
/// after login (`hostkeys-00@openssh.com`) is read by its first heartbeat, as on a host's first
/// session, not taken for a probe (tester's finding, issue 13: under `-v`, the first heartbeat
/// after a reconnect read "(woken by data from the server, such as a ClientAlive probe)" on a
/// server without ClientAliveInterval, as the host's kind of heartbeat, once known, made
/// every later session listen to its socket from its first millisecond).
#[test]
fn a_reconnected_sessions_first_heartbeat_is_not_taken_for_a_probe() {
    let lab = Lab::builder().names(&["web1"]).start();
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"t\", || { on([\"web\"], \"true\"); \
         run_locally(\"sleep 6\"); on([\"web\"], \"echo after\"); });\n",
    )
    .unwrap();
    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            support::tether::Tether::new()
                .current_dir(&dir)
                .ssh_config(&lab.ssh_config())
                .args(&["-v", "t"])
                .run()
        });
        // The command, then the first heartbeat's two (it reads the server's limits).
        let until = Instant::now() + Duration::from_secs(10);
        while lab.started_commands("web1") < 3 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        lab.kill_connections("web1");
        run.join().unwrap()
    });
    out.status(0).stdout_contains("after");
    assert!(
        out.stdout.contains("web1 ~ connection lost while idle"),
        "{}",
        out.stdout
    );
    // The new session's first heartbeat came, and was not said to be the server's doing.
    let beats = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("web1 ~ idle, kept alive: heartbeat"))
        .count();
    assert!(beats >= 2, "{}", out.stdout);
    assert!(!out.stdout.contains("woken by data"), "{}", out.stdout);
    // It is a bare channel (a keepalive would read nothing of what sshd sent at login).
    let after = out
        .stdout
        .split_once("web1 ~ connection lost while idle")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let first = after
        .lines()
        .find(|l| l.starts_with("web1 ~ idle, kept alive: heartbeat"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        first.ends_with("(a channel opened and closed, no command)"),
        "{}",
        out.stdout
    );
    assert_eq!(lab.accepted_logins("web1"), 2);
}
