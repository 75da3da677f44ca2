//! `tether check` against lab hosts with the sshd profiles that end idle sessions.

use crate::support;

use support::lab::Lab;
use support::tether::{Output, Tether};

fn check(lab: &Lab, hosts: &str, extra: &[&str]) -> Output {
    Tether::new()
        .folded()
        .ssh_config(&lab.ssh_config())
        .args(&["check", "--hosts", hosts])
        .args(extra)
        .run()
}

/// The lines of the block headed by `header` (a host, or a compact host set: `u[1-2]`).
fn block<'a>(out: &'a Output, header: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(!lines.is_empty(), "no block {header}:\n{}", out.stdout);
    lines
}

/// The value shown for `setting` in the block headed by `header` (`  Setting   value`).
fn value(out: &Output, header: &str, setting: &str) -> String {
    block(out, header)
        .iter()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix(setting)?;
            rest.starts_with(' ').then(|| rest.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {setting} in {header}:\n{}", out.stdout))
}

/// How `host`'s settings were read, in the block headed by `header`: its own `read with
/// (host) ...` line, or the block's one `read with ...` line.
fn read_with(out: &Output, header: &str, host: &str) -> String {
    let lines = block(out, header);
    let own = format!("read with ({host}) ");
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(own.as_str()))
        .or_else(|| {
            lines
                .iter()
                .find_map(|l| l.trim_start().strip_prefix("read with "))
                .filter(|rest| !rest.starts_with('('))
        })
        .unwrap_or_else(|| panic!("no read with for {host} in {header}:\n{}", out.stdout))
        .to_string()
}

fn warnings(out: &Output) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("WARNING"))
        .collect()
}

#[test]
fn unused_is_met_by_the_default_heartbeat_reading_it_and_warns_without_a_heartbeat() {
    let lab = Lab::builder()
        .names(&["u1", "u2", "u3"])
        .profile("unused")
        .start();
    // u3 says something else (MaxSessions): its findings are its own block.
    lab.reconfigure("u3", "MaxSessions 4");
    // The first heartbeat reads UnusedConnectionTimeout 3 as check does, and beats every
    // second from then on: nothing at risk.
    let out = check(&lab, "u1,u2,u3", &[]);
    out.status(0)
        .stdout_contains("check: 3 hosts, 0 at risk, 0 unreachable")
        .stdout_lacks("WARNING")
        .stdout_contains("runs `true` every 1.0 s from then on");
    // The hosts that say the same share one block, headed by their set.
    for header in ["u[1-2]", "u3"] {
        assert_eq!(value(&out, header, "UnusedConnectionTimeout"), "3");
        assert_eq!(value(&out, header, "heartbeat:"), "15.0 s");
    }
    assert_eq!(value(&out, "u[1-2]", "MaxSessions"), "10");
    assert_eq!(value(&out, "u3", "MaxSessions"), "4");
    out.stdout_lacks("\nu1\n").stdout_lacks("\nu2\n");
    // --no-fold: a block per host.
    let plain = check(&lab, "u1,u2,u3", &["--no-fold"]);
    plain.status(0).stdout_lacks("u[1-2]");
    for host in ["u1", "u2", "u3"] {
        assert_eq!(value(&plain, host, "UnusedConnectionTimeout"), "3");
    }
    // The config of the sshd that serves the session, not /etc/ssh/sshd_config: each host's
    // own file, so each host has its own `read with` line in the shared block.
    for (header, host) in [("u[1-2]", "u1"), ("u[1-2]", "u2"), ("u3", "u3")] {
        let config = lab.host(host).sshd_config.display().to_string();
        assert!(
            read_with(&out, header, host).contains(&format!("-T -f {config}")),
            "{}",
            out.stdout
        );
    }
    let out = check(&lab, "u1,u2", &["--keepalive", "1s"]);
    out.status(0)
        .stdout_contains("check: 2 hosts, 0 at risk")
        .stdout_lacks("WARNING");
    assert_eq!(value(&out, "u[1-2]", "heartbeat:"), "1.0 s");

    // Without a heartbeat the session is at risk whatever the interval would be; the
    // finding is printed once for the two hosts that share it, not once per host.
    let out = check(&lab, "u1,u2", &["--no-keepalive"]);
    out.status(1)
        .stdout_contains("there is no heartbeat")
        // Named, and where they are said, with stderr read apart (stop 44 tester t55: "see
        // the warnings above", where nothing was).
        .stderr_contains("2 of 2 hosts at risk (u[1-2]): see their warnings on stdout");
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", out.stdout);
    assert!(w
        .iter()
        .all(|l| l.contains("UnusedConnectionTimeout") && l.contains("Use --keepalive 1s")));
    // Reading the lab's sshd opened one session per check and host, nothing else.
    assert_eq!(lab.accepted_logins("u1"), 4);
    assert_eq!(lab.accepted_logins("u2"), 4);
    assert_eq!(lab.accepted_logins("u3"), 2);
}

#[test]
fn clientalive_reports_interval_1_count_2_and_is_safe_with_a_heartbeat() {
    let lab = Lab::builder().names(&["c1"]).profile("clientalive").start();
    let out = check(&lab, "c1", &[]);
    out.status(0).stdout_lacks("WARNING");
    assert_eq!(value(&out, "c1", "ClientAliveInterval"), "1");
    assert_eq!(value(&out, "c1", "ClientAliveCountMax"), "2");
    assert_eq!(value(&out, "c1", "UnusedConnectionTimeout"), "none");
    assert_eq!(value(&out, "c1", "MaxSessions"), "10");
    assert_eq!(value(&out, "c1", "MaxStartups"), "10:30:100");
    // No UnusedConnectionTimeout: protocol keepalives keep it, every minute where no interval
    // was asked for (as the run's worker does); fine only because probes trigger heartbeats,
    // and said so.
    assert_eq!(value(&out, "c1", "heartbeat:"), "1m00s");
    out.stdout_contains("fine ONLY because tether answers every probe at once");
    // An interval asked for holds, the default's included.
    let out = check(&lab, "c1", &["--keepalive", "15s"]);
    out.status(0);
    assert_eq!(value(&out, "c1", "heartbeat:"), "15.0 s");
    // So does the ssh config's ServerAliveInterval, longer than the default 15 s too: what ssh
    // would send keepalives at (fresh-eyes finding: 90 gave 15 s, 4x more than none at all).
    let config = lab.dir().join("sai_ssh_config");
    for (sai, shown) in [("90", "1m30s"), ("20", "20.0 s"), ("5", "5.0 s")] {
        let original = std::fs::read_to_string(lab.ssh_config()).unwrap();
        std::fs::write(
            &config,
            format!("Host c1\n  ServerAliveInterval {sai}\n\n{original}"),
        )
        .unwrap();
        let out = Tether::new()
            .ssh_config(&config)
            .args(&["check", "--hosts", "c1"])
            .run();
        out.status(0);
        assert_eq!(value(&out, "c1", "heartbeat:"), shown, "{sai}");
    }

    let out = check(&lab, "c1", &["--no-keepalive"]);
    out.status(1);
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{}", out.stdout);
    assert!(w[0].contains("ClientAliveInterval"), "{}", w[0]);
}

/// A `ChannelTimeout` on command channels is met by the supervisor's frames (a silent
/// command survives it: `reattach::a_silent_command_outlives_channel_timeout`), so it is no
/// risk; check says what it still cuts (fresh-eyes finding: check called it a risk no
/// `--keepalive` prevents, after the supervisor had made silent commands survive it).
#[test]
fn channel_timeout_on_commands_is_met_by_the_supervisor() {
    let lab = Lab::builder()
        .names(&["t1"])
        .profile("channeltimeout")
        .start();
    let out = check(&lab, "t1", &["--keepalive", "1s"]);
    out.status(0).stdout_contains("check: 1 host, 0 at risk");
    assert_eq!(value(&out, "t1", "ChannelTimeout"), "session:*=3s");
    assert!(warnings(&out).is_empty(), "{}", out.stdout);
    out.stdout_contains(
        "session:*=3s: a silent command keeps its channel in use under tether's supervisor",
    );
}

#[test]
fn default_profile_is_not_at_risk() {
    let lab = Lab::builder().names(&["d1"]).start();
    let out = check(&lab, "d1", &[]);
    out.status(0).stdout_contains("check: 1 host, 0 at risk");
    assert_eq!(value(&out, "d1", "ClientAliveInterval"), "0");
    assert_eq!(value(&out, "d1", "ChannelTimeout"), "none");
}

#[test]
fn parsed_config_files_agree_with_sshd_t_includes_and_match_too() {
    let lab = Lab::builder().names(&["s1"]).profile("strict").start();
    // Edit the config on disk (the running sshd is unaffected; check reads the file as it is
    // now): an Include first, whose second file opens a Match block that must end with it.
    let conf_d = lab.dir().join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(conf_d.join("10-alive.conf"), "ClientAliveInterval 7\n").unwrap();
    std::fs::write(
        conf_d.join("20-match.conf"),
        "Match User nobody\n  UnusedConnectionTimeout 9\n  MaxSessions 2\n",
    )
    .unwrap();
    let config = &lab.host("s1").sshd_config;
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(
        config,
        format!("Include {}/*.conf\n{text}MaxSessions 5\n", conf_d.display()),
    )
    .unwrap();

    let t = check(&lab, "s1", &["--keepalive", "1s"]);
    let p = check(&lab, "s1", &["--keepalive", "1s", "--parse-config"]);
    t.status(0);
    p.status(0);
    assert!(read_with(&t, "s1", "s1").contains(" -T -f "));
    assert!(
        read_with(&p, "s1", "s1").starts_with(&format!("parsed {}", config.display())),
        "{}",
        p.stdout
    );
    p.stdout_contains(&conf_d.join("20-match.conf").display().to_string());
    for setting in [
        "ClientAliveInterval",
        "ClientAliveCountMax",
        "UnusedConnectionTimeout",
        "ChannelTimeout",
        "MaxSessions",
        "MaxStartups",
        "PerSourceMaxStartups",
    ] {
        assert_eq!(
            value(&t, "s1", setting),
            value(&p, "s1", setting),
            "{setting}\n--- sshd -T ---\n{}\n--- parsed ---\n{}",
            t.stdout,
            p.stdout
        );
    }
    assert_eq!(value(&p, "s1", "ClientAliveInterval"), "7");
    assert_eq!(value(&p, "s1", "UnusedConnectionTimeout"), "3");
    assert_eq!(value(&p, "s1", "MaxSessions"), "5");
}

#[test]
fn unreachable_host_exits_3_and_the_others_are_still_checked() {
    let lab = Lab::builder().names(&["r1"]).start();
    let closed = support::net::closed_port();
    let gone = format!("root@127.0.0.1:{closed}");
    let out = check(&lab, &format!("r1,{gone}"), &[]);
    out.status(3)
        .stdout_contains(": connection refused")
        .stdout_contains("check: 2 hosts, 0 at risk, 1 unreachable")
        .stderr_contains("1 of 2 hosts could not be reached");
    assert_eq!(value(&out, "r1", "MaxSessions"), "10");
}

/// Where stderr is read apart from stdout (a file, JSON on stdout), the error names each host
/// that could not be checked with its reason, hosts alike in one line (stop 43 tester t52: the
/// hosts alone); read together, the reasons are said once, on stdout.
#[test]
fn check_says_why_a_host_failed_where_stderr_is_read_apart() {
    let lab = Lab::builder().names(&["r1"]).start();
    let cfg = lab.dir().join("unresolvable_config");
    let lab_cfg = std::fs::read_to_string(lab.ssh_config()).unwrap();
    std::fs::write(
        &cfg,
        format!("{lab_cfg}\nHost gone1 gone2\n  HostName nosuch.invalid\n"),
    )
    .unwrap();
    for format in ["text", "json"] {
        let out = Tether::new()
            .ssh_config(&cfg)
            .folded()
            .args(&["check", "--hosts", "r1,gone1,gone2", "--format", format])
            .run();
        out.status(3).stderr_contains(
            "2 of 3 hosts could not be reached (gone[1-2])\n\
             gone[1-2]: cannot resolve nosuch.invalid",
        );
    }
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["check", "--hosts", "r1,gone1,gone2"])
        .run();
    out.status(3)
        .stderr_contains("\ngone1: cannot resolve nosuch.invalid")
        .stderr_contains("\ngone2: cannot resolve nosuch.invalid");
    let mut together = Tether::new()
        .ssh_config(&cfg)
        .args(&["check", "--hosts", "r1,gone1"])
        .command();
    let (reader, writer) = std::io::pipe().unwrap();
    together.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = together.spawn().unwrap();
    drop(together);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut { reader }, &mut text).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3), "{text}");
    assert!(
        text.ends_with("\nerror: 1 of 2 hosts could not be reached (gone1)\n"),
        "{text}"
    );
}

/// Hosts that fail in different ways are each counted once, in their own category, and the
/// error names every one; the exit code is the configuration error's (README: a configuration
/// error decides over an unreachable host, which decides over a warning).
#[test]
fn hosts_failing_in_different_ways_are_each_named_and_counted_once() {
    let lab = Lab::builder().names(&["r1"]).start();
    let closed = support::net::closed_port();
    let cfg = lab.dir().join("mixed_config");
    let lab_cfg = std::fs::read_to_string(lab.ssh_config()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{lab_cfg}\nHost broken\n  HostName 127.0.0.1\n  ProxyJump broken\n\
             Host gone\n  HostName 127.0.0.1\n  Port {closed}\n"
        ),
    )
    .unwrap();
    for format in ["text", "json"] {
        let out = Tether::new()
            .ssh_config(&cfg)
            .args(&["check", "--hosts", "r1,broken,gone", "--format", format])
            .run();
        out.status(2).stderr_contains(
            "1 of 3 hosts cannot be tried: a configuration error (broken); \
             1 of 3 hosts could not be reached (gone)",
        );
        if format == "text" {
            out.stdout_contains("check: 3 hosts, 0 at risk, 1 unreachable, 1 configuration error");
        } else {
            // Each host's object says it once, and calls only a host it could check at risk.
            for line in out
                .stdout
                .lines()
                .filter(|l| l.contains(r#""type":"check""#))
            {
                assert_eq!(line.matches(r#""host":"#).count(), 1, "{line}");
                let check: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(check["at_risk"], false, "{line}");
            }
            let last: serde_json::Value =
                serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
            assert_eq!(last["type"], "check_summary");
            assert_eq!(last["at_risk"], 0, "{last}");
            assert_eq!(last["unreachable"], 1, "{last}");
            assert_eq!(last["config_errors"], 1, "{last}");
            // How it ended, as stderr and the exit code say it (stop 46 tester t59: only
            // there).
            assert_eq!(last["exit_code"], 2, "{last}");
            assert!(
                last["error"].as_str().is_some_and(|e| e.starts_with(
                    "1 of 3 hosts cannot be tried: a configuration error (broken); 1 of 3 hosts \
                     could not be reached (gone)"
                )),
                "{last}"
            );
        }
    }
}

#[test]
fn json_has_one_check_event_per_host() {
    let lab = Lab::builder().names(&["j1"]).profile("unused").start();
    // Without a heartbeat, so that the UnusedConnectionTimeout finding is a warning.
    let out = check(&lab, "j1", &["--format", "json", "--no-keepalive"]);
    out.status(1);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|e: &serde_json::Value| e["type"] == "check")
        .collect();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    let e = &events[0];
    assert_eq!(e["host"], "j1", "{e}");
    assert_eq!(e["at_risk"], true, "{e}");
    assert_eq!(e["heartbeat_ms"], serde_json::Value::Null, "{e}");
    assert_eq!(e["settings"]["UnusedConnectionTimeout"], "3", "{e}");
    let warned = e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["level"] == "warning" && f["setting"] == "UnusedConnectionTimeout");
    assert!(warned, "{e}");
    out.stdout_lacks("WARNING");
}

#[test]
fn usage_errors() {
    // An empty directory: no deploy.rhai to pick hosts from.
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    Tether::new()
        .current_dir(dir)
        .args(&["check"])
        .run()
        .status(2)
        .stderr_contains("no hosts selected");
    Tether::new()
        .current_dir(dir)
        .args(&["check", "--roles", "web"])
        .run()
        .status(2)
        .stderr_contains("no recipe: deploy.rhai does not exist");
}

#[test]
fn a_stage_of_the_recipe_selects_the_hosts_and_its_keepalive_counts() {
    let lab = Lab::builder()
        .names(&["u1", "u2"])
        .profile("unused")
        .start();
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"u1\", #{ roles: [\"web\"] });\nstage(\"production\", || { server(\"u2\", #{ roles: [\"db\"] }); set(\"keepalive\", 1); });\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Tether::new()
            .folded()
            .current_dir(&dir)
            .ssh_config(&lab.ssh_config())
            .args(args)
            .run()
    };
    // The stage adds u2 and sets a 1 s heartbeat: nothing at risk.
    let out = run(&["check", "production"]);
    out.status(0);
    out.stdout_contains("check: 2 hosts, 0 at risk");
    assert_eq!(value(&out, "u[1-2]", "heartbeat:"), "1.0 s");
    assert!(read_with(&out, "u[1-2]", "u2").contains("/u2/sshd_config"));
    // Without the stage only u1 is a server, with the default heartbeat (whose first beat
    // reads UnusedConnectionTimeout 3 and meets it: nothing at risk either).
    let out = run(&["check", "--roles", "web"]);
    out.status(0).stdout_contains("check: 1 host, 0 at risk");
    assert_eq!(value(&out, "u1", "heartbeat:"), "15.0 s");
    assert!(!out.stdout.contains("u2"), "{}", out.stdout);
}

/// An interrupted check counts what it did not check as not checked: never a host stopped
/// while it connected as unreachable, nor one whose check never ran as at risk (fresh-eyes
/// finding: "check: 2 hosts, 1 at risk, 1 unreachable" after a Ctrl-C, in text and JSON).
#[test]
fn an_interrupted_check_counts_unchecked_hosts_as_not_checked() {
    let lab = Lab::start(1);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = lab.config_with(
        "silent_config",
        &format!(
            "Host silent\n  HostName 127.0.0.1\n  Port {}\n  ConnectTimeout 60\n",
            silent.local_addr().unwrap().port()
        ),
    );
    for json in [false, true] {
        let mut tether = Tether::new().ssh_config(&cfg);
        if json {
            tether = tether.args(&["--format", "json"]);
        }
        let child = tether.args(&["check", "--hosts", "host1,silent"]).spawn();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        crate::support::net::signal(child.id(), libc::SIGINT);
        let out = child.wait_with_output().unwrap();
        let text = crate::support::tether::text(&out);
        assert_eq!(out.status.code(), Some(130), "{text}");
        if json {
            let summary = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["type"] == "check_summary")
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(summary["unreachable"], 0, "{text}");
            assert_eq!(summary["at_risk"], 0, "{text}");
            assert!(summary["not_checked"].as_u64() >= Some(1), "{text}");
            assert_eq!(summary["exit_code"], 130, "{text}");
            assert_eq!(summary["error"], "interrupted", "{text}");
        } else {
            assert!(
                text.contains(
                    "check: 2 hosts, 0 at risk, 0 unreachable, 1 not checked (interrupted)"
                ) || text.contains(
                    "check: 2 hosts, 0 at risk, 0 unreachable, 2 not checked (interrupted)"
                ),
                "{text}"
            );
        }
    }
}

/// Each host goes through the check's steps on its own: one slow to connect (a listener that
/// sends no banner, given up after its ConnectTimeout) holds up no other host's steps (stop 62
/// tester t102: the three steps ran each on every host at once, so host1's second step waited
/// for the silent host to fail). Seen in host1's sshd log: every command of host1's check had
/// started when tether closed the silent connection.
#[test]
fn a_host_slow_to_connect_holds_up_no_other_hosts_steps() {
    use std::io::Read as _;
    let lab = Lab::start(1);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = lab.config_with(
        "slow_config",
        &format!(
            "Host silent\n  HostName 127.0.0.1\n  Port {}\n  ConnectTimeout 4\n",
            silent.local_addr().unwrap().port()
        ),
    );
    for json in [false, true] {
        let (out, at_close) = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                let (mut conn, _) = silent.accept().unwrap();
                let mut buf = [0u8; 256];
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                lab.started_commands("host1")
            });
            let mut tether = Tether::new().ssh_config(&cfg);
            if json {
                tether = tether.args(&["--format", "json"]);
            }
            // The silent host first: objects in the order of `--hosts` put it first.
            let out = tether.args(&["check", "--hosts", "silent,host1"]).run();
            (out, watcher.join().unwrap())
        });
        out.status(3);
        // discover, then `sshd -T` (the lab runs as root), and the standby the second opens.
        let started = lab.started_commands("host1");
        assert!(started >= 2, "{started}\n{}", out.stdout);
        assert_eq!(at_close, started, "{}", out.stdout);
        if !json {
            out.stdout_contains("check: 2 hosts, 0 at risk, 1 unreachable");
            continue;
        }
        // And its JSON object comes first, before the silent host's (stop 63 tester t104:
        // every object came at the silent host's ConnectTimeout).
        let checks: Vec<String> = out
            .objects()
            .into_iter()
            .filter(|v| v["type"] == "check")
            .map(|v| v["host"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(checks, ["host1", "silent"], "{}", out.stdout);
    }
}

/// A login that cannot read every file of the config (an `Include`d file of mode 0600, an
/// `Include` glob in a directory of mode 0700) does not know what they set: such a host is at
/// risk, not `ok ... not set` (stop 58 tester t93: exit 0 for a limit that sshd, as root,
/// read there; a run took the glob for read and never learned the limit).
#[test]
fn a_config_file_the_login_cannot_read_leaves_its_settings_unknown() {
    use std::os::unix::fs::PermissionsExt as _;
    let user = support::users::PlainUser::create();
    let lab = Lab::builder().names(&["h1", "h2"]).start();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let private = lab.dir().join("private.d");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(private.join("limit.conf"), "UnusedConnectionTimeout 3\n").unwrap();
    mode(&private, 0o700);
    let secret = lab.dir().join("secret.conf");
    std::fs::write(&secret, "UnusedConnectionTimeout 3\n").unwrap();
    mode(&secret, 0o600);
    for (host, include) in [
        ("h1", format!("{}/*.conf", private.display())),
        ("h2", secret.display().to_string()),
    ] {
        let config = &lab.host(host).sshd_config;
        let text = std::fs::read_to_string(config).unwrap();
        std::fs::write(config, format!("Include {include}\n{text}")).unwrap();
    }
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["check", "--no-fold", "--hosts"])
        .arg(&format!("{},{}", user.at("h1"), user.at("h2")))
        .run();
    out.status(1)
        .stdout_contains(&format!(
            "{}/*.conf could not be read by this login: what it sets is unknown",
            private.display()
        ))
        .stdout_contains(&format!(
            "{} could not be read by this login: what it sets is unknown",
            secret.display()
        ))
        .stdout_contains("2 at risk");
}

/// A login that is not root reads the config's files, where `Match` blocks are not evaluated:
/// an `UnusedConnectionTimeout` one of them sets may apply to it, and is counted, as a run's
/// first heartbeat counts it (stop 61 tester t98: `Match User` gave the login 4 s, and check
/// said `ok UnusedConnectionTimeout: not set`, heartbeat 1m00s, while a run beat every 1.3 s).
#[test]
fn an_idle_limit_set_in_a_match_block_is_counted_for_a_login_that_cannot_evaluate_it() {
    let user = support::users::PlainUser::create();
    let lab = Lab::builder().names(&["h1"]).start();
    lab.reconfigure(
        "h1",
        &format!("Match User {}\n  UnusedConnectionTimeout 4", user.name),
    );
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["check", "--hosts", &user.at("h1")])
        .run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(
            "UnusedConnectionTimeout 4.0 s is set in a Match block, which this login cannot \
             evaluate (not root): counted, as a run's first heartbeat counts it"
        ),
        "{text}"
    );
    assert!(!text.contains("UnusedConnectionTimeout: not set"), "{text}");
    assert!(text.contains("runs `true` every 1.3 s"), "{text}");
}

/// A config file changed after the serving sshd last read it is said to be so, naming the file,
/// whether sshd -T or the parsed files give the report: sshd enforces what it read then until
/// reloaded, and check reads the files as they are now (tester t128: an Include emptied
/// without a reload was reported `ok ChannelTimeout: not set` while sshd still cut commands).
/// The lab's sshd has no PidFile: the note cannot tell a reload since, and says so, where it
/// said sshd ran with what it read before after a SIGHUP had reloaded it (tester t129).
#[test]
fn a_config_changed_since_sshd_read_it_is_said() {
    let lab = Lab::builder().names(&["c1"]).start();
    let said = "changed after the serving sshd";
    let out = check(&lab, "c1", &[]);
    out.status(0);
    assert!(!out.stdout.contains(said), "{}", out.stdout);
    // Changed now (its time a few seconds ahead: the lab's sshd started within this second).
    let config = &lab.host("c1").sshd_config;
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{text}# edited, not reloaded\n")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(config)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    for extra in [&[][..], &["--parse-config"][..]] {
        let out = check(&lab, "c1", extra);
        out.status(0);
        let note = block(&out, "c1")
            .into_iter()
            .find(|l| l.contains(said))
            .unwrap_or_else(|| panic!("{extra:?}: no note:\n{}", out.stdout))
            .to_string();
        assert!(
            note.contains(&format!("{} at ", config.display())),
            "{note}"
        );
        assert!(
            note.contains(
                "It has no PidFile, whose time would show a reload (SIGHUP, `systemctl reload \
                 ssh`) since: unless there was one, this report is the files' text"
            ),
            "{note}"
        );
        assert!(!note.contains("runs with what it read before"), "{note}");
    }
}

/// `ChannelTimeout global=N` cuts commands only on an sshd that has it (OpenSSH 9.7 and later);
/// before, `global` is a channel type pattern that names no channel (tester t129: on 9.2, check
/// said a silent PTY command is cut off after 3 s; it ran on under tether and `ssh -tt`). The
/// lab's sshd says which it is (`sshd -V`).
#[test]
fn a_global_channel_timeout_counts_only_where_sshd_has_it() {
    let lab = Lab::builder().names(&["g1"]).start();
    lab.reconfigure("g1", "ChannelTimeout global=3s");
    let version = std::process::Command::new("/usr/sbin/sshd")
        .arg("-V")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&version.stderr),
        String::from_utf8_lossy(&version.stdout)
    );
    let (major, minor) = tether::sshd::probe::parse_version(&text)
        .unwrap_or_else(|| panic!("no OpenSSH version in {text:?}"));
    let out = check(&lab, "g1", &["--keepalive", "1s"]);
    out.status(0);
    assert_eq!(value(&out, "g1", "ChannelTimeout"), "global=3s");
    let says_cut = out
        .stdout
        .contains("global=3s: a silent command keeps its channel");
    assert_eq!(says_cut, (major, minor) >= (9, 7), "{}", out.stdout);
    if !says_cut {
        out.stdout_contains("ChannelTimeout: does not apply to command channels");
    }
}
