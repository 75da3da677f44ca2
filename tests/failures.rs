//! Failures as values (issue: typed failures across the Rhai boundary): exit codes per kind on
//! every path, a caught failure that stops nothing, `err.kind`/`err.hosts`/`err.message`, and
//! summaries that name every host, the same on every run.

use crate::support;

use support::lab::Lab;
use support::recipe::{lab, lab_recipe, RecipeDir};

/// The lab's ssh config with the `Host` blocks `extra` of a test, in the file `name` of the
/// lab's directory.
/// What each host ran, in the order printed: a plan's `host | $ echo X` (with `planned`) and a
/// run's `host | X` both as `host X`; lines that start with one of `prints` (the recipe's
/// own) as they are.
fn host_lines(out: &support::tether::Output, planned: bool, prints: &[&str]) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| {
            if prints.iter().any(|p| l.starts_with(p)) {
                return Some(l.to_string());
            }
            let (host, text) = l.split_once(" | ")?;
            let text = match planned {
                true => text.strip_prefix("$ echo ")?,
                false => text,
            };
            Some(format!("{} {text}", host.trim()))
        })
        .collect()
}

fn config_with(lab: &Lab, name: &str, extra: &str) -> std::path::PathBuf {
    lab.config_with(name, extra)
}

/// A host whose ProxyJump is itself: a route that loops.
const BROKEN: &str = "Host broken\n  HostName 127.0.0.1\n  ProxyJump broken\n";

/// `Host *` with a ProxyJump to a bastion the config reaches through itself: a configuration
/// error, exit 2 on every path, and no host reported as holding a session.
#[test]
fn a_config_error_is_exit_2_for_tasks_and_run_alike() {
    let lab = Lab::builder().names(&["web1"]).start();
    let cfg = lab.dir().join("loop_config");
    let lab_cfg = std::fs::read_to_string(lab.ssh_config()).unwrap();
    std::fs::write(&cfg, format!("{lab_cfg}\nHost *\n  ProxyJump bastion\n")).unwrap();
    let mut r = RecipeDir::new(
        "config-error",
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"hello\", || { on(\"web\", \"echo hi\"); });\n\
         task(\"divide\", || { on(\"web\", |h| { let x = 1 / 0; }); });\n\
         task(\"unknown\", || { on(\"web\", |h| { no_such_function(); run(\"true\"); }); });\n\
         task(\"failing\", || { on(\"web\", |h| { fail(\"mine\"); }); });\n",
    );
    r.ssh_config = Some(cfg.clone());
    let out = r.tether().args(&["hello"]).run();
    out.status(2)
        .stderr_contains("web1: ProxyJump loop")
        .stderr_lacks("^")
        .stdout_lacks("one session");
    out.stdout_contains("web1  never connected");
    // A closure's script error or `fail()` before it sent anything to the host does not hide
    // why the host never connected, which outranks it (stop 39 tester t28: exit 4, `Division
    // by zero`, no word of the config error but in the summary; t29: `fail()`, exit 1).
    for task in ["divide", "unknown", "failing"] {
        r.tether()
            .args(&[task])
            .run()
            .status(2)
            .stderr_contains("web1: ProxyJump loop");
    }
    r.tether()
        .args(&["run", "--hosts", "web1", "--", "echo hi"])
        .run()
        .status(2)
        .stderr_contains("ProxyJump loop");
    r.tether()
        .args(&["check", "--hosts", "web1"])
        .run()
        .status(2)
        .stdout_contains("ProxyJump loop")
        .stderr_contains("1 of 1 host cannot be tried: a configuration error");
    // The other hosts of a run still run: the error belongs to the host it is about.
    std::fs::write(
        &cfg,
        format!("{lab_cfg}\nHost broken\n  HostName 127.0.0.1\n  ProxyJump broken\n"),
    )
    .unwrap();
    let out = r
        .tether()
        .args(&["run", "--hosts", "web1,broken", "--", "echo hi"])
        .run();
    out.status(2)
        .stdout_contains("web1    ok")
        .stdout_contains("broken  config error")
        .stderr_contains("1 of 2 hosts failed");
    // A hop at the host's own address is no loop: ssh reaches web1 through web1 (stop 39
    // tester t30: refused as a ProxyJump loop), as it does with `-J web1 web1`.
    let web1 = lab_cfg
        .split("\nHost ")
        .find(|b| b.starts_with("web1\n"))
        .unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{lab_cfg}\nHost {}  ProxyJump web1\n",
            web1.replacen("web1", "viaself", 1)
        ),
    )
    .unwrap();
    let ssh = std::process::Command::new("ssh")
        .args([
            "-F",
            cfg.to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "viaself",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        ssh.status.success(),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    r.tether()
        .args(&["run", "--hosts", "viaself", "--", "echo hi"])
        .run()
        .status(0);
    r.tether()
        .args(&["-J", "web1", "run", "--hosts", "web1", "--", "echo hi"])
        .run()
        .status(0);
}

#[test]
fn a_caught_failure_stops_nothing_and_can_be_read() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "caught",
        r#"
task("t", || {
    on("web", |host| {
        try { run("echo nope >&2; exit 3"); } catch (err) {
            print(`${host.name}: ${err.kind} on ${err.hosts} (${err.message.sub_string(0, 14)})`);
        }
        try { as_user("nobody-here", || run("true")); } catch (err) {
            print(`${host.name}: as_user ${err.kind}`);
        }
        run("echo after >> /srv/after");
    });
    let caught = "";
    try { on("all", "exit 5"); } catch (err) { caught = err.kind + " " + err.hosts.len(); }
    print("step failure: " + caught);
    on("all", "echo later >> /srv/later");
});
"#,
    );
    let out = r.tether().args(&["t"]).run();
    out.status(0)
        .stdout_contains("web1: command_failed on [\"web1\"] (1 of 1 host fa)")
        .stdout_contains("web2: as_user command_failed")
        .stdout_contains("step failure: command_failed 3")
        .stderr_lacks("error");
    for h in ["web1", "web2"] {
        assert_eq!(
            std::fs::read_to_string(lab.host(h).root_dir.join("after")).unwrap(),
            "after\n"
        );
    }
    for h in ["web1", "web2", "db1"] {
        assert_eq!(
            std::fs::read_to_string(lab.host(h).root_dir.join("later")).unwrap(),
            "later\n"
        );
    }
}

/// A failure hook (an `on_failure` closure, deploy:failed) reads the run's failure as a `catch`
/// does, from `run_failure()`, and can branch on its kind and hosts (stop 39 tester t28:
/// `err.kind` was "Unknown property 'kind' ... for type 'string'" for every kind); the hook's
/// `err` stays the message, a string, for what recipes do with a string (stop 39 tester t29:
/// as a failure value, `to_json(#{ e: err })` gave `"tether::failure::Failure"`, and a
/// `switch` on it matched nothing).
#[test]
fn a_failure_hook_reads_the_failure_as_catch_does() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let port = support::net::closed_port();
    let cfg = config_with(&lab, "with_broken", BROKEN);
    let mut r = RecipeDir::new(
        "hook-reads",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             server(\"broken\", #{{ roles: [\"bad\"] }});\nserver(\"root@127.0.0.1:{port}\", #{{ roles: [\"gone\"] }});\n\
             on_failure(|err| {{\n\
               let f = run_failure();\n\
               print(`hook: ${{f.kind}} ${{f.hosts}} [${{err.sub_string(0, 6)}}] ${{err.contains(\"app\")}} ${{err.starts_with(f.message)}}`);\n\
               print(`json: ${{to_json(#{{ e: err.to_upper().sub_string(0, 4) }})}} ${{switch err {{ \"interrupted\" => 1, _ => 2 }}}}`);\n\
               on(\"app\", \"echo \" + quote(f.kind) + \" >> /srv/hook\");\n\
             }});\n\
             task(\"deploy:failed\", || {{ print(`deploy:failed reads ${{run_failure().kind}}`); }});\n\
             task(\"fine\", || {{ print(`before: ${{type_of(run_failure())}}`); }});\n\
             task(\"cmd\", || {{ on(\"app\", \"[ -e /srv/fail ] && exit 3; true\"); }});\n\
             task(\"divide\", || {{ let x = 1 / 0; }});\n\
             task(\"gone\", || {{ on(\"gone\", \"true\"); }});\n\
             task(\"bad\", || {{ on(\"bad\", \"true\"); }});\n\
             task(\"failing\", || {{ fail(\"no release\"); }});\n"
        ),
    );
    r.ssh_config = Some(cfg);
    std::fs::write(lab.host("app2").root_dir.join("fail"), "").unwrap();
    for (task, code, said) in [
        (
            "cmd",
            1,
            "hook: command_failed [\"app2\"] [1 of 2] true true",
        ),
        ("divide", 4, "hook: recipe [] [deploy] false true"),
        (
            "gone",
            3,
            &format!("hook: unreachable [\"root@127.0.0.1:{port}\"] [1 of 1] false true"),
        ),
        ("bad", 2, "hook: config [\"broken\"] [1 of 1] false true"),
        ("failing", 1, "hook: failed [] [no rel] false true"),
    ] {
        let out = r.tether().args(&[task]).run();
        out.status(code)
            .stdout_contains(said)
            .stdout_contains(&format!(
                "deploy:failed reads {}",
                said.split(' ').nth(1).unwrap()
            ))
            .stdout_lacks("warning");
        let json = out
            .stdout
            .lines()
            .find(|l| l.starts_with("json: "))
            .unwrap_or_default();
        assert!(
            json.starts_with("json: {\"e\":\"") && json.ends_with("\"} 2"),
            "{json}"
        );
        assert!(!json.contains("Failure"), "{json}");
    }
    r.tether()
        .args(&["fine"])
        .run()
        .status(0)
        .stdout_contains("before: ()");
    let hook = std::fs::read_to_string(lab.host("app1").root_dir.join("hook")).unwrap();
    assert_eq!(
        hook, "command_failed\nrecipe\nunreachable\nconfig\nfailed\n",
        "one line per run"
    );
}

/// Hosts that fail at the same step are all named, whichever finishes first; a host stopped
/// because another failed is named with the reason; ten runs give ten identical summaries.
#[test]
fn summaries_name_every_host_the_same_on_every_run() {
    let lab = Lab::builder()
        .names(&["app1", "app2", "app3", "app4"])
        .start();
    let mut r = RecipeDir::new(
        "summaries",
        r#"
role("app", ["app1", "app2", "app3", "app4"]);
task("linked", || {
    on("app", |host| {
        // app1 is slower: the others fail first, app1 must still be reported as failed.
        if host.name == "app1" { run("sleep 0.3"); } else { run("true"); }
        run("test -e /srv/shared/config/database.yml || { echo missing >&2; exit 1; }");
        run("echo never >> /srv/never");
    });
});
task("stopped", || {
    on("app", |host| {
        // app2 fails at its first step; the others finish theirs (the same step) only.
        if host.name == "app2" { run("exit 4"); }
        run("sleep 0.3");
        run("echo never >> /srv/never");
    });
});
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    let mut seen = Vec::new();
    for _ in 0..10 {
        let out = r.tether().args(&["linked"]).run();
        out.status(1);
        let summary: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("app"))
            .map(|l| l.split(" failed with").next().unwrap_or(l))
            .collect();
        seen.push(summary.join("\n"));
    }
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:#?}");
    assert_eq!(
        seen[0],
        "error: 4 of 4 hosts failed\napp1: `test -e /srv/shared/config/database.yml || { echo missing >&2; exit 1; }`\napp2: `test -e /srv/shared/config/database.yml || { echo missing >&2; exit 1; }`\napp3: `test -e /srv/shared/config/database.yml || { echo missing >&2; exit 1; }`\napp4: `test -e /srv/shared/config/database.yml || { echo missing >&2; exit 1; }`"
    );
    let out = r.tether().args(&["stopped"]).run();
    out.status(1)
        .stderr_contains("error: 1 of 4 hosts failed, 3 stopped early")
        .stderr_contains("app1: stopped before `echo never >> /srv/never`: app2 failed")
        .stderr_contains("app3: stopped before `echo never >> /srv/never`: app2 failed")
        .stderr_contains("app4: stopped before `echo never >> /srv/never`: app2 failed");
    for h in lab.hosts() {
        assert!(!h.root_dir.join("never").exists(), "{}", h.name);
    }
}

/// A failure that comes fast (a script error or `fail()` before any command, a quick failing
/// command, a `fail()` after one) decides the other hosts' fate the same way on every run: the
/// hosts go through the closure's steps together, so none starts a step once a host failed
/// before it, and none is found past the failing step or not yet at it by chance (stop 52
/// tester t82: 9, 8, 8 and 4 distinct summaries in 8 to 10 runs of these tasks; in 2 of 8
/// runs of `after_two` three hosts printed `three`, past host1's failure, unsaid).
#[test]
fn a_fast_failure_stops_the_other_hosts_at_the_same_step_on_every_run() {
    let lab = Lab::builder()
        .names(&["app1", "app2", "app3", "app4"])
        .start();
    let mut r = RecipeDir::new(
        "fast-failures",
        r#"
role("app", ["app1", "app2", "app3", "app4"]);
task("script", || { on("app", |h| { if h.name == "app1" { let x = 1 / 0; } run("echo one >> /srv/ran"); }); });
task("failed", || { on("app", |h| { if h.name == "app1" { fail("custom fail"); } run("echo one >> /srv/ran"); }); });
task("after_one", || { on("app", |h| { if h.name == "app1" { run("true"); fail("after one"); } run("true"); run("echo two >> /srv/ran"); }); });
task("after_two", || { on("app", |h| { if h.name == "app1" { run("true"); run("exit 1"); } else { run("true"); run("true"); } run("echo three >> /srv/ran"); }); });
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    let wants = [
        ("script", 4, "error: 1 of 4 hosts failed, 3 stopped early"),
        ("failed", 1, "error: 1 of 4 hosts failed, 3 stopped early"),
        (
            "after_one",
            1,
            "error: 1 of 4 hosts failed, 3 stopped early",
        ),
        (
            "after_two",
            1,
            "error: 1 of 4 hosts failed, 3 stopped early",
        ),
    ];
    for (task, code, first) in wants {
        let mut seen = Vec::new();
        for _ in 0..8 {
            let out = r.tether().args(&[task]).run();
            out.status(code);
            // The summary without its times.
            let summary: Vec<String> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("error:") || l.starts_with("app"))
                .map(|l| {
                    l.split(|c: char| c.is_ascii_digit() && l.contains(" ms"))
                        .next()
                        .unwrap_or(l)
                        .to_string()
                })
                .collect();
            let text = summary.join("\n");
            assert!(
                text.starts_with(first),
                "{task}: {}{}",
                out.stdout,
                out.stderr
            );
            for h in lab.hosts() {
                let ran = h.root_dir.join("ran");
                assert!(
                    !ran.exists(),
                    "{task}: {} ran past the failure\n{}",
                    h.name,
                    out.stderr
                );
            }
            seen.push(text);
        }
        assert!(seen.iter().all(|s| s == &seen[0]), "{task}: {seen:#?}");
        for h in ["app2", "app3", "app4"] {
            assert!(
                seen[0].contains(&format!("{h}: stopped before `")),
                "{task}: {}",
                seen[0]
            );
        }
    }
}

/// A host stopped early runs no local command past the failing step either, and is said
/// stopped before the first command it was refused, caught or not (stop 52 tester t83: hosts
/// that had finished the failing step ran their `run_locally`, unsaid, and a host whose first
/// refusal was caught was said stopped before its second); hosts that all run a local command
/// at one point of their closures do not wait for each other.
#[test]
fn a_host_stopped_early_runs_no_local_command_and_names_its_first_refusal() {
    let lab = Lab::builder().names(&["app1", "app2", "app3"]).start();
    let mut r = RecipeDir::new(
        "local-steps",
        r#"
role("app", ["app1", "app2", "app3"]);
task("local", || { on("app", |h| {
    if h.name == "app1" { run("sleep 0.3; exit 1"); } else { run("sleep 1"); }
    run_locally("touch LOCAL-" + h.name);
    run("echo s2");
}); });
task("caught", || { on("app", |h| {
    if h.name == "app1" { run("exit 1"); } else { run("sleep 0.5"); }
    try { run("echo FIRST-REFUSED"); } catch (e) {}
    run("echo SECOND-REFUSED");
}); });
task("together", || { on("app", |h| {
    run("true"); run_locally("echo local-" + h.name + " >> together"); run("true");
}); });
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    for _ in 0..5 {
        let out = r.tether().args(&["local"]).run();
        out.status(1)
            .stderr_contains("error: 1 of 3 hosts failed, 2 stopped early")
            .stderr_contains("app2: stopped before `touch LOCAL-app2`: app1 failed")
            .stderr_contains("app3: stopped before `touch LOCAL-app3`: app1 failed");
        for h in ["app2", "app3"] {
            assert!(!r.path(&format!("LOCAL-{h}")).exists(), "{}", out.stderr);
        }
        let out = r.tether().args(&["caught"]).run();
        out.status(1)
            .stderr_contains("app2: stopped before `echo FIRST-REFUSED`: app1 failed")
            .stderr_lacks("SECOND-REFUSED`");
    }
    r.tether().args(&["together"]).run().status(0);
    let together = std::fs::read_to_string(r.path("together")).unwrap();
    assert_eq!(together.lines().count(), 3, "{together}");
}

/// Hosts nobody can reach: every one is named as unreachable, exit 3, the same every time.
#[test]
fn unreachable_hosts_are_all_named_every_time() {
    let ports: Vec<u16> = (0..4)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .collect();
    let servers: String = ports
        .iter()
        .map(|p| format!("server(\"root@127.0.0.1:{p}\", #{{ roles: [\"app\"] }});\n"))
        .collect();
    let r = RecipeDir::new(
        "unreachable",
        &format!("{servers}task(\"t\", || {{ on(\"app\", |host| {{ run(\"true\"); run(\"true\"); }}); }});\n"),
    );
    let mut seen = Vec::new();
    for _ in 0..10 {
        let out = r.tether().args(&["t"]).run();
        out.status(3);
        let first = out.stderr.lines().next().unwrap_or("").to_string();
        let named = ports.iter().all(|p| {
            out.stderr
                .contains(&format!("root@127.0.0.1:{p}: cannot connect"))
        });
        seen.push((first, named));
    }
    for s in &seen {
        assert_eq!(
            s,
            &("error: 4 of 4 hosts failed".to_string(), true),
            "{seen:?}"
        );
    }
}

/// Hosts stopped early are told which hosts failed at the deciding step: all of them, in
/// host order, whichever failed first (the same text on every run).
#[test]
fn hosts_stopped_early_name_the_same_failed_hosts_every_time() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .collect();
    let mut r = RecipeDir::new(
        "stopped-because",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"root@127.0.0.1:{a}\", #{{ roles: [\"app\"] }});\n\
             server(\"app2\", #{{ roles: [\"app\"] }});\nserver(\"root@127.0.0.1:{b}\", #{{ roles: [\"app\"] }});\n\
             task(\"t\", || {{ on(\"app\", |host| {{ run(\"sleep 0.2\"); run(\"echo never >> /srv/never\"); }}); }});\n",
            a = ports[0],
            b = ports[1]
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    let because = format!(
        "failed: root@127.0.0.1:{}, root@127.0.0.1:{} failed",
        ports[0], ports[1]
    );
    for _ in 0..6 {
        let out = r.tether().args(&["t"]).run();
        out.status(3)
            .stderr_contains("error: 2 of 4 hosts failed, 2 stopped early")
            .stderr_contains(&format!(
                "app1: stopped before `echo never >> /srv/never`: {}",
                because.trim_start_matches("failed: ")
            ))
            .stderr_contains(&format!(
                "app2: stopped before `echo never >> /srv/never`: {}",
                because.trim_start_matches("failed: ")
            ));
    }
    for h in lab.hosts() {
        assert!(!h.root_dir.join("never").exists(), "{}", h.name);
    }
}

/// A host that connected and ran commands, then went away for good, is summarised as a
/// session lost after its commands, never as "never connected".
#[test]
fn a_host_lost_after_working_is_not_called_never_connected() {
    let lab = Lab::builder().names(&["web1", "db1"]).start();
    let victim = lab.host("web1").pid;
    let mut r = RecipeDir::new(
        "lost-after-work",
        r#"
server("web1", #{ roles: ["web"] });
server("db1", #{ roles: ["db"] });
task("t", || {
    on("all", "echo first");
    // web1's sshd goes away: its listener first (a session cut while it listens would be
    // replaced at once), then its sessions.
    let l = fetch("victim");
    run_locally(`c=$(pgrep -P ${l}); kill -KILL ${l}; kill -KILL $c`);
    on("all", "echo second");
});
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    let out = r
        .tether()
        .args(&["t", "-s", &format!("victim={victim}")])
        .run();
    out.status(3);
    assert_eq!(out.host_lines("web1", '|'), ["first"], "{}", out.stdout);
    assert_eq!(
        out.host_lines("db1", '|'),
        ["first", "second"],
        "{}",
        out.stdout
    );
    out.stdout_lacks("web1  never connected")
        .stdout_contains("web1  session lost after 1 finished command, ")
        // Beside its host's prefix, an error does not name the host again (found dead while
        // idle or before `echo second`, whichever came first).
        .stdout_contains("web1 ~ ")
        .stdout_lacks("web1 ~ web1: ");
    let json = r
        .tether()
        .args(&["--format", "json", "t", "-s", &format!("victim={victim}")])
        .run();
    // The listener is gone now: web1 never connects in this second run.
    json.status(3).stdout_contains(
        r#""type":"session_summary","host":"web1","connected":false,"sessions":0,"commands":0"#,
    );
}

/// The group of every live process on this machine, by pid (`/proc/PID/stat`, field 5);
/// zombies (ended, not yet reaped by their parent) left out.
fn groups() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut after = stat.get(stat.rfind(')')? + 2..)?.split(' ');
            let state = after.next()?;
            (state != "Z").then_some(())?;
            Some((pid, after.nth(1)?.to_string()))
        })
        .collect()
}

/// A host's failure stops the commands the other hosts of the same `on` are running (issue 13):
/// one of the same step after the documented 2 s grace, PTY or not; one past that step never
/// starts, as the hosts go through the steps together (stop 52 tester t82) (on a PTY its process group, not only its terminal: a command ignoring SIGHUP ends too). Its process group on the host is gone, it never finishes its work, and the summary
/// names the host as stopped early because of the failed one.
#[test]
fn a_failure_stops_what_other_hosts_of_the_step_are_running() {
    let lab = Lab::builder().names(&["host1", "host2"]).start();
    const SLOW: &str = "echo ran >> /srv/started; sleep 30; touch /srv/marker";
    const NOHUP: &str = "trap '' HUP; echo ran >> /srv/started; sleep 30; touch /srv/marker";
    let mut r = RecipeDir::new(
        "step-abort",
        &format!(
            r#"
server("host1", #{{ roles: ["app"] }});
server("host2", #{{ roles: ["app"] }});
// host1 fails at the step where host2 runs the slow command.
task("same", || {{
    on("app", |host| {{ if host.name == "host1" {{ run("sleep 0.5; exit 3"); }} else {{ run("{SLOW}"); }} run("true"); }});
}});
task("same_pty", || {{
    on("app", #{{ pty: true }}, |host| {{ if host.name == "host1" {{ run("sleep 0.5; exit 3"); }} else {{ run("{SLOW}"); }} }});
}});
// A hang-up of its terminal would not end this one.
task("same_pty_nohup", || {{
    on("app", #{{ pty: true }}, |host| {{ if host.name == "host1" {{ run("sleep 0.5; exit 3"); }} else {{ run("{NOHUP}"); }} }});
}});
// The string form is one step: host1's command fails, host2's is stopped after the grace.
task("string", || {{
    on("app", "if [ -e /srv/fails ]; then sleep 0.5; exit 3; fi; {SLOW}");
}});
// host1 fails at its second step; host2 is already at its third.
task("past", || {{
    on("app", |host| {{
        if host.name == "host1" {{ run("sleep 1"); run("exit 3"); }} else {{ run("true"); run("true"); run("{SLOW}"); }}
    }});
}});
"#
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    let root = lab.host("host2").root_dir.clone();
    std::fs::write(lab.host("host1").root_dir.join("fails"), "").unwrap();
    let string = format!("if [ -e /srv/fails ]; then sleep 0.5; exit 3; fi; {SLOW}");
    for task in ["same", "same_pty", "same_pty_nohup", "string", "past"] {
        let stopped = match task {
            "string" => string.as_str(),
            "same_pty_nohup" => NOHUP,
            _ => SLOW,
        };
        // On a PTY too: the process group is stopped, not only the terminal hung up.
        let how = "tether stopped it on the host";
        let _ = std::fs::remove_file(root.join("started"));
        if task == "past" {
            // host2 waits at its third step for host1, which fails before it.
            let out = r.tether().args(&[task]).run();
            out.status(1)
                .stderr_contains("error: 1 of 2 hosts failed, 1 stopped early")
                .stderr_contains(&format!("host2: stopped before `{SLOW}`: host1 failed"));
            assert!(!root.join("started").exists(), "{}", out.stderr);
            continue;
        }
        let child = r.tether().args(&["--format", "json", task]).spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !root.join("started").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{task}: never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The slow command's process group, while it runs.
        let pgid = loop {
            let sleeping = lab.host_pids("host2").into_iter().find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x0030\x00")
            });
            if let Some(pid) = sleeping {
                let all = groups();
                break all.iter().find(|(p, _)| *p == pid).unwrap().1.clone();
            }
            assert!(std::time::Instant::now() < deadline, "{task}: no sleep");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{task}\n{stdout}{stderr}");
        assert!(
            stderr.contains("error: 1 of 2 hosts failed, 1 stopped early"),
            "{task}\n{stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "host2: stopped during `{stopped}` ({how}): host1 failed"
            )),
            "{task}\n{stderr}"
        );
        let left: Vec<u32> = groups()
            .into_iter()
            .filter(|(_, g)| *g == pgid)
            .map(|(p, _)| p)
            .collect();
        let what: Vec<String> = left
            .iter()
            .map(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            left,
            Vec::<u32>::new(),
            "{task}: process group {pgid} remains: {what:?}\n{stdout}"
        );
        let events: Vec<serde_json::Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let at = |host: &str, what: &str| -> f64 {
            events
                .iter()
                .find(|e| e["host"] == host && e["type"] == what && e["command"] != "true")
                .unwrap_or_else(|| panic!("{task}: no {what} of {host}\n{stdout}"))["t"]
                .as_f64()
                .unwrap()
        };
        let failed = events
            .iter()
            .filter(|e| e["host"] == "host1" && e["type"] == "command_finished")
            .find(|e| e["exit_code"] == 3)
            .unwrap()["t"]
            .as_f64()
            .unwrap();
        let stopped_after = at("host2", "command_finished") - failed;
        // The same step: the grace, then TERM, which ends it.
        assert!(
            (2.0..4.5).contains(&stopped_after),
            "{task}: {stopped_after}"
        );
        assert!(
            events.iter().any(|e| e["host"] == "host2"
                && e["type"] == "remote_stopped"
                && e["why"] == "the step was aborted because host1 failed"),
            "{task}\n{stdout}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!root.join("marker").exists());
}

/// Hosts a failure kept from starting are counted as not started, apart from hosts stopped
/// early (issue 10: an honest summary): in sequence, the first host's failure leaves the others
/// not started, string form or closure.
#[test]
fn hosts_never_started_are_counted_as_not_started() {
    let lab = Lab::builder().names(&["app1", "app2", "app3"]).start();
    let mut r = RecipeDir::new(
        "not-started",
        r#"
server("app1", #{ roles: ["app"] });
server("app2", #{ roles: ["app"] });
server("app3", #{ roles: ["app"] });
task("string", || { on("app", #{ in: "sequence" }, "exit 3"); });
task("closure", || { on("app", #{ in: "sequence" }, |host| { run("exit 3"); }); });
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    for task in ["string", "closure"] {
        let out = r.tether().args(&[task]).run();
        out.status(1)
            .stderr_contains("error: 1 of 3 hosts failed, 2 not started\n")
            .stderr_contains("app2: not started: an earlier host or group of this step failed")
            .stderr_contains("app3: not started: an earlier host or group of this step failed");
        assert!(
            !out.stderr.contains("stopped early"),
            "{task}: {}",
            out.stderr
        );
    }
}

/// `on` takes its hosts in the order the target names them (a role's in server order), as
/// SSHKit's coordinator keeps the hosts it is given: in sequence, a canary named first runs
/// first, and its failure leaves the hosts after it not started (stop 39 tester t28: `on(["web07",
/// "web01"], #{ in: "sequence" }, ..)` ran web01 first, which changed state before web07
/// failed). Strings, `Host` values, roles and closures alike; each host once, where first named.
#[test]
fn hosts_run_in_the_order_the_target_names_them() {
    let lab = Lab::builder().names(&["app1", "app2", "app3"]).start();
    let mut r = RecipeDir::new(
        "order",
        r#"
server("app1", #{ roles: ["app"] });
server("app2", #{ roles: ["app", "canary"] });
server("app3", #{ roles: ["app"] });
let seq = #{ in: "sequence" };
task("names", || { on(["app3", "app1", "app2"], seq, "[ ! -e /srv/canary ]"); });
task("values", || { on([host("app2"), "app1"], seq, |h| { run("echo " + h.name); }); });
task("roles", || { on(["canary", "app"], seq, |h| { run("echo " + h.name); }); });
task("failing", || { on([host("app3"), "app"], seq, |h| { run("echo " + h.name + "; exit 3"); }); });
task("listed", || { print(hosts(["app3", "app", "app1"])); });
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    let order = |out: &support::tether::Output| -> Vec<String> {
        out.stdout
            .lines()
            .filter_map(|l| l.split_once(" | ").map(|(h, _)| h.trim().to_string()))
            .collect()
    };
    let out = r.tether().args(&["values"]).run();
    out.status(0);
    assert_eq!(order(&out), ["app2", "app1"], "{}", out.stdout);
    let out = r.tether().args(&["roles"]).run();
    out.status(0);
    assert_eq!(order(&out), ["app2", "app1", "app3"], "{}", out.stdout);
    let out = r.tether().args(&["failing"]).run();
    out.status(1)
        .stderr_contains("error: 1 of 3 hosts failed, 2 not started\n")
        .stderr_contains("app1: not started: an earlier host or group of this step failed")
        .stderr_contains("app2: not started: an earlier host or group of this step failed");
    assert_eq!(order(&out), ["app3"], "{}", out.stdout);
    std::fs::write(lab.host("app3").root_dir.join("canary"), "").unwrap();
    r.tether()
        .args(&["names"])
        .run()
        .status(1)
        .stderr_contains("error: 1 of 3 hosts failed, 2 not started\n")
        .stderr_contains("app3: `[ ! -e /srv/canary ]` failed")
        .stderr_contains("app1: not started");
    let out = r.tether().args(&["listed"]).run();
    out.status(0)
        .stdout_contains("[\"app3\", \"app1\", \"app2\"]");
}

/// A failure hook (`on_failure`, `deploy:failed`) whose own step fails is a warning that says
/// what failed, where, as any failure: never the Rust name of tether's failure type.
#[test]
fn a_failing_failure_hook_says_what_failed() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "hook-fails",
        r#"
on_failure(|err| { on("all", "echo hook >&2; exit 6"); });
task("deploy:failed", || { on("all", "exit 7"); });
task("t", || { on("all", "exit 5"); });
"#,
    );
    let out = r.tether().args(&["t"]).run();
    out.status(1)
        .stderr_lacks("tether::")
        .stdout_lacks("Failure\n")
        .stdout_contains("warning: failure hook failed: deploy.rhai:5:20: 3 of 3 hosts failed\n")
        .stdout_contains("db1: `echo hook >&2; exit 6` failed with exit status 6")
        .stdout_contains("warning: deploy:failed failed: deploy.rhai:6:28: 3 of 3 hosts failed\n")
        .stdout_contains("web2: `exit 7` failed with exit status 7");
    // Under --format json too, as `warning` objects, and the hooks' task is not ok (fresh-eyes
    // finding: the warnings went to stderr only, and `task_finished` said `"ok":true`).
    let out = r.tether().args(&["--format", "json", "t"]).run();
    out.status(1);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "warning")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        warnings[0].starts_with("failure hook failed: deploy.rhai:5:20: 3 of 3 hosts failed\n"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("deploy:failed failed: deploy.rhai:6:28: 3 of 3 hosts failed\n"),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let hooks = events
        .iter()
        .find(|e| e["type"] == "task_finished" && e["task"] == "failure hooks")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(hooks["ok"], false);
    assert!(!out.stderr.contains("warning:"), "{}", out.stderr);
}

/// A run that ends before the sessions it opened for hosts it did not need were up: every
/// connection's outcome is in the summary, none arrives after the run's end, and ten runs say
/// the same (before, hosts that connected after the summary were "not connected (the run did
/// not need it)", their `connected` events printed after `run_finished`).
#[test]
fn the_summary_waits_for_every_connection_the_run_opened() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let port = support::net::closed_port();
    let mut r = RecipeDir::new(
        "unneeded",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             server(\"root@127.0.0.1:{port}\", #{{ roles: [\"gone\"] }});\n\
             task(\"t\", || {{ on(\"gone\", \"true\"); }});\n"
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    for _ in 0..10 {
        let out = r.tether().args(&["--format", "json", "t"]).run();
        out.status(3);
        let types: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let last = types.last().unwrap();
        assert_eq!(last["type"], "run_finished", "{}", out.stdout);
        for host in ["app1", "app2"] {
            let summary = types
                .iter()
                .find(|e| e["type"] == "session_summary" && e["host"] == host)
                .unwrap();
            assert_eq!(summary["connected"], true, "{}", out.stdout);
            assert_eq!(summary["sessions"], 1, "{}", out.stdout);
        }
    }
}

/// A step aborted because one host failed: hosts that never connected (a closed port, a
/// configuration error) are failed hosts with their own reason, not "stopped before", however
/// the failures raced; only hosts that could have run are stopped early. Ten runs say the
/// same, with the deciding kind's exit code (a configuration error: 2). app1's local
/// `sleep 2` once kept its `exit 1` from racing app2's failure (a CI run under load had it
/// sent first); now that local command is itself past app2's failure, and refused.
#[test]
fn hosts_that_never_connected_are_never_called_stopped_early() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let port = support::net::closed_port();
    let cfg = config_with(&lab, "with_broken", BROKEN);
    let mut r = RecipeDir::new(
        "never-connected",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             server(\"root@127.0.0.1:{port}\", #{{ roles: [\"app\"] }});\nserver(\"broken\", #{{ roles: [\"app\"] }});\n\
             task(\"t\", || {{ on(\"app\", |h| {{ if h.name == \"app2\" {{ throw \"boom\"; }} \
             if h.name == \"app1\" {{ run_locally(\"sleep 2\"); }} run(\"exit 1\"); }}); }});\n"
        ),
    );
    r.ssh_config = Some(cfg);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let out = r.tether().args(&["t"]).run();
        out.status(2);
        let summary: Vec<String> = out
            .stderr
            .lines()
            .take_while(|l| !l.starts_with("  (at "))
            .map(|l| l.split(" after ").next().unwrap_or(l).to_string())
            .collect();
        seen.push(summary.join("\n"));
    }
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:#?}");
    let first = &seen[0];
    assert!(
        first.starts_with("error: 3 of 4 hosts failed, 1 stopped early"),
        "{first}"
    );
    assert!(
        first.contains(&format!("root@127.0.0.1:{port}: cannot connect")),
        "{first}"
    );
    assert!(first.contains("broken: ProxyJump loop"), "{first}");
    assert!(
        // Its local command is past the point app2 failed at (before any command).
        first.contains("app1: stopped before `sleep 2`: app2 failed"),
        "{first}"
    );
}

/// A closure that sends nothing to a host that never connected did not run on it: the host
/// fails with why, as a string command there would, and the exit code says so (fresh-eyes
/// finding: `on("web", |h| h.name + " done")` returned a value for a host whose config was
/// refused and one whose port was closed, exit 0, "every host succeeded"). A failure the
/// closure caught from a command it sent there stays handled.
#[test]
fn a_closure_that_sends_nothing_fails_on_a_host_never_connected() {
    let lab = Lab::builder().names(&["app1"]).start();
    let port = support::net::closed_port();
    let cfg = config_with(&lab, "with_broken", BROKEN);
    let mut r = RecipeDir::new(
        "closure-never-connected",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\n\
             server(\"root@127.0.0.1:{port}\", #{{ roles: [\"app\", \"closed\"] }});\n\
             server(\"broken\", #{{ roles: [\"app\", \"bad\"] }});\n\
             task(\"value\", || {{ print(on(\"app\", |h| h.name + \" done\")); }});\n\
             task(\"closed\", || {{ print(on(\"closed\", |h| 1)); }});\n\
             task(\"caught\", || {{ print(on(\"closed\", |h| {{ let r = (); try {{ run(\"true\"); r = \"ran\"; }} catch (e) {{ r = e.kind; }} r }})); }});\n"
        ),
    );
    r.ssh_config = Some(cfg);
    let out = r.tether().args(&["value"]).run();
    out.status(2)
        .stdout_lacks("broken done")
        .stdout_lacks(&format!("127.0.0.1:{port} done"))
        .stderr_contains("broken: ProxyJump loop")
        .stderr_contains(&format!("root@127.0.0.1:{port}: cannot connect"));
    r.tether()
        .args(&["closed"])
        .run()
        .status(3)
        .stderr_contains(&format!("root@127.0.0.1:{port}: cannot connect"));
    r.tether()
        .args(&["caught"])
        .run()
        .status(0)
        .stdout_contains(&format!("#{{\"root@127.0.0.1:{port}\": \"unreachable\"}}"));
}

/// A jump host that cannot be reached is said once, with the host behind it: the host's
/// request for a tunnel tries it again, and the same failure is not said twice.
#[test]
fn a_jump_host_that_cannot_be_reached_is_said_once() {
    let lab = Lab::builder().names(&["app1"]).start();
    let cfg = config_with(
        &lab,
        "jumped",
        "Host jumped
  HostName 127.0.0.1
  ProxyJump nobastion.invalid
",
    );
    let out = support::tether::Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "app1,jumped", "--", "true"])
        .run();
    out.status(3);
    let said: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("nobastion.invalid (jump) ~ cannot connect"))
        .collect();
    assert_eq!(said.len(), 1, "{}", out.stdout);
    // Its summary row ends with its status (it has no duration).
    out.stdout_contains("  jumped  unreachable\n");
}

/// In a step run in sequence (or in groups), the hosts after a failed one are not started;
/// one among them that never connected (its configuration refused, its port closed) failed
/// all the same, and is named with its reason, with the deciding exit code (2 here): a
/// string command and a closure alike.
#[test]
fn hosts_not_started_that_never_connected_are_failed_hosts() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let port = support::net::closed_port();
    let cfg = config_with(&lab, "with_broken", BROKEN);
    let mut r = RecipeDir::new(
        "sequence-never-connected",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             server(\"broken\", #{{ roles: [\"app\"] }});\nserver(\"root@127.0.0.1:{port}\", #{{ roles: [\"app\"] }});\n\
             task(\"string\", || {{ on(\"app\", #{{ in: \"sequence\" }}, \"exit 1\"); }});\n\
             task(\"closure\", || {{ on(\"app\", #{{ in: \"sequence\" }}, |h| {{ run(\"exit 1\"); }}); }});\n\
             task(\"groups\", || {{ on(\"app\", #{{ in: \"groups\", limit: 2 }}, |h| {{ run(\"exit 1\"); }}); }});\n"
        ),
    );
    r.ssh_config = Some(cfg);
    for task in ["string", "closure", "groups"] {
        let out = r.tether().args(&[task]).run();
        out.status(2)
            .stderr_contains("broken: ProxyJump loop")
            .stderr_contains(&format!("root@127.0.0.1:{port}: cannot connect"))
            .stderr_lacks("broken: not started")
            .stderr_lacks(&format!("root@127.0.0.1:{port}: not started"));
    }
}

/// An `on` inside a host's closure that fails fails that host: the step names its own hosts,
/// each once, with the inner step's failure as the reason (before: `closed,closed: cannot
/// connect` for two outer hosts, and `err.hosts` was `["closed", "closed"]`). `err.hosts` names
/// where it failed, each host once, as `err.kind` does (fresh-eyes finding: `["app1", "app2"]`
/// and `unreachable` for two hosts that were reached, and `command_failed` naming the outer
/// host whose inner step's hosts had failed).
#[test]
fn a_failing_on_inside_a_closure_fails_the_closures_host() {
    let lab = Lab::builder()
        .names(&["app1", "app2", "db1", "db2"])
        .start();
    let port = support::net::closed_port();
    let mut r = RecipeDir::new(
        "nested",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             server(\"db1\", #{{ roles: [\"db\", \"ok\"] }});\nserver(\"db2\", #{{ roles: [\"ok\"] }});\n\
             server(\"root@127.0.0.1:{port}\", #{{ roles: [\"db\"] }});\n\
             task(\"t\", || {{ try {{ on(\"app\", |h| {{ on(\"db\", \"true\"); }}); }} catch (e) {{ print(`hosts ${{e.hosts}} ${{e.kind}}`); throw e; }} }});\n\
             task(\"c\", || {{ try {{ on(\"app\", #{{ in: \"sequence\" }}, |h| {{ on(\"ok\", \"exit 3\"); }}); }} catch (e) {{ print(`hosts ${{e.hosts}} ${{e.kind}}`); }} }});\n\
             task(\"d\", || {{ try {{ on(\"app1\", |h| {{ on(\"app2\", |g| {{ on(\"ok\", \"exit 4\"); }}); }}); }} catch (e) {{ print(`hosts ${{e.hosts}} ${{e.kind}}`); }} }});\n"
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    r.tether()
        .args(&["c"])
        .run()
        .status(0)
        .stdout_contains("hosts [\"db1\", \"db2\"] command_failed");
    r.tether()
        .args(&["d"])
        .run()
        .status(0)
        .stdout_contains("hosts [\"db1\", \"db2\"] command_failed");
    let out = r.tether().args(&["t"]).run();
    out.status(3)
        .stdout_contains(&format!("hosts [\"root@127.0.0.1:{port}\"] unreachable"))
        .stderr_contains("error: 2 of 2 hosts failed\n")
        // The inner step's hosts are indented under the outer host whose closure ran it, so
        // that they do not read as hosts of the outer step (fresh-eyes finding).
        .stderr_contains(&format!(
            "app1: 1 of 2 hosts failed\n  root@127.0.0.1:{port}: cannot connect"
        ))
        .stderr_lacks(&format!("root@127.0.0.1:{port},root@127.0.0.1:{port}"));
}

/// A run's end reports the sessions of the jump hosts it connected through, as of its hosts
/// (before, `bastion (jump)` connected and beat, and no summary named it).
#[test]
fn the_summary_names_the_jump_hosts_sessions() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let cfg = lab.dir().join("via");
    let lab_cfg = std::fs::read_to_string(lab.ssh_config()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "Host via2\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentitiesOnly yes\n  IdentityFile {}\n  UserKnownHostsFile {}\n  ProxyJump app1\n\n{lab_cfg}",
            lab.host("app2").port,
            lab.client_key().display(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    let mut r = RecipeDir::new(
        "via-summary",
        "server(\"via2\", #{ roles: [\"app\"] });\ntask(\"t\", || { on(\"app\", \"true\"); });\n",
    );
    r.ssh_config = Some(cfg);
    let out = r.tether().args(&["t"]).run();
    out.status(0)
        .stdout_contains("  via2         one session")
        .stdout_contains("  app1 (jump)  one session");
    let out = r.tether().args(&["--format", "json", "t"]).run();
    out.status(0).stdout_contains(
        r#""type":"session_summary","host":"app1 (jump)","connected":true,"sessions":1"#,
    );
}

/// A dry run exits as the run would: a host whose ssh config a run would refuse fails the plan
/// only when the plan uses it (fresh-eyes finding: `-n` of a task that never reached the
/// broken host exited 2, "1 of 2 hosts failed", where the run exits 0). The warning stays.
#[test]
fn a_dry_run_fails_for_a_refused_host_only_where_the_plan_uses_it() {
    let lab = Lab::builder().names(&["app1"]).start();
    let cfg = config_with(&lab, "with_broken", BROKEN);
    let mut r = RecipeDir::new(
        "dry-refused",
        "server(\"app1\", #{ roles: [\"app\"] });\nserver(\"broken\", #{ roles: [\"db\"] });\n\
         task(\"app\", || { on(\"app\", \"true\"); });\n\
         task(\"db\", || { on(\"db\", \"true\"); });\n\
         task(\"local\", || { print(\"no host\"); });\n",
    );
    r.ssh_config = Some(cfg);
    for task in ["app", "local"] {
        r.tether().args(&[task]).run().status(0);
        r.tether()
            .args(&["-n", task])
            .run()
            .status(0)
            .stdout_contains("broken ~ warning: ");
    }
    r.tether().args(&["db"]).run().status(2);
    r.tether()
        .args(&["-n", "db"])
        .run()
        .status(2)
        .stderr_contains("broken: ProxyJump loop");
}

/// A NUL byte in what a host-bound call sends (a command written in the recipe or built from
/// a capture, the string form of `on`, a `within` directory, an upload's remote path) is a
/// recipe error at the call, before anything is sent. Before, the exec request failed on this
/// side and was taken for a lost connection: re-attached to without end (11,500 reconnects in
/// ten minutes, `--reattach 0` or not).
#[test]
fn a_nul_byte_in_what_a_call_sends_is_a_recipe_error_at_the_call() {
    let lab = Lab::builder().names(&["app1"]).start();
    let bodies = [
        r#"on("app", |h| { run("echo before\x00; touch /tmp/x"); });"#,
        r#"on("app", |h| { let x = capture("printf 'a\\000b'"); run("echo " + x); });"#,
        r#"on("app", |h| { let x = capture("printf 'a\\000b'"); test("[ " + x + " ]"); });"#,
        r#"on("app", "echo a\x00b");"#,
        r#"on("app", |h| { within("/tmp/a\x00b", || run("true")); });"#,
        r#"on("app", |h| { with_env(#{ A: "x\x00" }, || capture("true")); });"#,
        r#"on("app", |h| { upload("deploy.rhai", "/tmp/x\x00y"); });"#,
        r#"on("app", |h| { download("/tmp/x\x00y", "out"); });"#,
    ];
    for (i, body) in bodies.iter().enumerate() {
        let before = lab.accepted_logins("app1");
        let mut r = RecipeDir::new(
            &format!("nul{i}"),
            &format!("server(\"app1\", #{{ roles: [\"app\"] }});\ntask(\"t\", || {{ {body} }});\n"),
        );
        r.ssh_config = Some(lab.ssh_config());
        let out = r.tether().args(&["t"]).run();
        out.status(4)
            .stderr_contains("holds a NUL byte")
            .stderr_contains("nothing was sent")
            .stderr_contains("deploy.rhai:2:");
        assert!(
            !out.stdout.contains("re-attached"),
            "{body}\n{}",
            out.stdout
        );
        assert!(
            lab.accepted_logins("app1") <= before + 1,
            "{body}\n{}",
            out.stdout
        );
    }
}

/// `test()` under a `within` directory that cannot be entered fails, naming it, instead of
/// answering `false` (fresh-eyes finding: `within("/nonexistent/dir", || test("[ ! -e lock ]"))`
/// was false, so a negated check reported the opposite of the truth; SSHKit's `within` checks
/// its directory first). A condition that does not hold in a directory that exists is still
/// `false`.
#[test]
fn test_under_a_within_that_cannot_be_entered_fails() {
    let lab = Lab::builder().names(&["app1"]).start();
    let mut r = RecipeDir::new(
        "within-test",
        "server(\"app1\", #{ roles: [\"app\"] });\n\
         task(\"holds\", || { on(\"app\", |h| { print(\"answer \" + within(\"/tmp\", || test(\"[ -e /nonexistent ]\"))); }); });\n\
         task(\"t\", || { on(\"app\", |h| { let a = within(\"/nonexistent/dir\", || test(\"[ ! -e lock ]\")); print(\"answer \" + a); }); });\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    r.tether()
        .args(&["holds"])
        .run()
        .status(0)
        .stdout_contains("answer false");
    let out = r.tether().args(&["t"]).run();
    out.status(1)
        .stderr_contains("within(\"/nonexistent/dir\") cannot be entered")
        .stderr_contains("the answer is not known")
        .stderr_contains("deploy.rhai:3:");
    assert!(!out.stdout.contains("answer"), "{}", out.stdout);
}

/// The line that announces an `on` step shows what is sent, in the context it runs in
/// (`within`, `as_user`, `with_env` around it), as the plan does (fresh-eyes finding: a nested
/// `on` under `within("/tmp")` printed `» host2 $ pwd` and ran `cd /tmp && { pwd; }`).
#[test]
fn a_steps_line_shows_the_command_in_its_context() {
    let lab = Lab::builder().names(&["app1"]).start();
    let mut r = RecipeDir::new(
        "step-line",
        "server(\"app1\", #{ roles: [\"app\"] });\n\
         task(\"t\", || { within(\"/tmp\", || with_env(#{ A: \"b\" }, || on(\"app\", \"pwd; echo $A\"))); });\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains("» app1 $ cd /tmp && export A=b && { pwd; echo $A; }\n")
        .stdout_contains("app1 | /tmp\n");
}

/// Only `~` and `~/` begin a `within` directory at the home: a nested `~foo/..` is relative to
/// the outer directory (SSHKit joins it so), and `~user`, which a shell would take for that
/// user's home but tether quotes, is a recipe error at its line (stop 41 tester t37:
/// `within("/srv", || within("~foo/..", ..))` ran in the login directory, exit 0).
#[test]
fn a_within_directory_is_at_the_home_only_for_tilde_and_tilde_slash() {
    let lab = Lab::builder().names(&["app1"]).start();
    let srv = lab.host("app1").root_dir.clone();
    std::fs::create_dir_all(srv.join("d/e")).unwrap();
    let mut r = RecipeDir::new(
        "within-tilde",
        "server(\"app1\", #{ roles: [\"app\"] });\n\
         task(\"nested\", || { on(\"app\", |h| { within(\"/srv/d\", || within(\"e/..\", || print(\"at \" + capture(\"pwd\")))); }); });\n\
         task(\"user\", || { on(\"app\", |h| { within(\"/srv\", || within(\"~nobody/..\", || print(\"at \" + capture(\"pwd\")))); }); });\n\
         task(\"top\", || { on(\"app\", |h| { within(\"~nobody\", || run(\"pwd\")); }); });\n\
         task(\"home\", || { on(\"app\", |h| { within(\"/srv\", || within(\"~\", || print(\"at \" + capture(\"pwd\")))); }); });\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    r.tether()
        .args(&["nested"])
        .run()
        .status(0)
        .stdout_contains("at /srv/d\n");
    for (task, line) in [("user", 3), ("top", 4)] {
        r.tether()
            .args(&[task])
            .run()
            .status(4)
            .stderr_contains(&format!("deploy.rhai:{line}:"))
            .stderr_contains("only `~` and `~/` are expanded");
    }
    let home = lab.host("app1").home.clone();
    r.tether()
        .args(&["home"])
        .run()
        .status(0)
        .stdout_contains(&format!("at {}\n", home.display()));
}

/// A first signal while the failure hooks run does not cut them short (they are how a run
/// cleans up: `deploy:failed` releases the locks): they finish, their commands too, and the
/// run exits 130, as an interrupt outranks every failure (fresh-eyes finding: one Ctrl-C or
/// SIGTERM there stopped the hook's command and ended `deploy:failed` with "Script
/// terminated": locks and the unfinished release left on every host, exit 1).
#[test]
fn a_signal_during_the_failure_hooks_lets_them_finish() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let mut r = RecipeDir::new(
        "hooks-finish",
        "server(\"app1\", #{ roles: [\"app\"] });\nserver(\"app2\", #{ roles: [\"app\"] });\n\
         task(\"t\", || { on(\"app\", \"exit 3\"); });\n\
         on_failure(|err| { on(\"app\", \"echo go > /srv/hook; sleep 2; echo done > /srv/cleaned\"); });\n\
         task(\"deploy:failed\", || { on(\"app\", \"echo ran > /srv/failed\"); });\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    let marker = lab.host("app1").root_dir.join("hook");
    for signal in [libc::SIGINT, libc::SIGTERM] {
        for h in ["app1", "app2"] {
            for f in ["hook", "cleaned", "failed"] {
                let _ = std::fs::remove_file(lab.host(h).root_dir.join(f));
            }
        }
        let child = r.tether().args(&["t"]).spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::fs::read_to_string(&marker).is_ok_and(|m| !m.is_empty()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the hook never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: kill(2) on the tether this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        let text = crate::support::tether::text(&out);
        assert_eq!(out.status.code(), Some(130), "{text}");
        assert!(
            text.contains("the failure hooks, which clean up, finish first"),
            "{text}"
        );
        for h in ["app1", "app2"] {
            let root = &lab.host(h).root_dir;
            assert!(
                root.join("cleaned").exists(),
                "{h}: the hook was cut short\n{text}"
            );
            assert!(
                root.join("failed").exists(),
                "{h}: deploy:failed did not run\n{text}"
            );
        }
    }
}

/// A host `zzz` that accepts TCP connections and never says a word (connecting to it waits
/// for its banner up to its `ConnectTimeout 60`): its listener, held while it is needed, and
/// `lab`'s ssh config with it.
fn silent_host(lab: &Lab) -> (std::net::TcpListener, std::path::PathBuf) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = lab.config_with(
        "with_silent",
        &format!(
            "Host zzz\n  HostName 127.0.0.1\n  Port {}\n  ConnectTimeout 60\n",
            silent.local_addr().unwrap().port()
        ),
    );
    (silent, config)
}

/// Ctrl-C after the last task, while the run waits for a connection it opened to a host no
/// step used, ends the run as interrupted, exit 130, at once (fresh-eyes finding: exit 0,
/// `done: quick finished`).
#[test]
fn ctrl_c_while_the_run_waits_for_an_unused_host_exits_130() {
    let lab = Lab::builder().names(&["app1"]).start();
    let (silent, config) = silent_host(&lab);
    let mut r = RecipeDir::new(
        "unused-host",
        "server(\"app1\", #{ roles: [\"app\"] });\nserver(\"zzz\", #{ roles: [\"spare\"] });\n\
         task(\"quick\", || { on(\"app\", \"echo q > /srv/quick\"); });\n",
    );
    r.ssh_config = Some(config);
    let marker = lab.host("app1").root_dir.join("quick");
    let child = r.tether().args(&["quick"]).spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "the task never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let at = std::time::Instant::now();
    // SAFETY: kill(2) on the tether this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(at.elapsed() < std::time::Duration::from_secs(10), "{text}");
    assert!(
        text.contains("zzz  ~ cannot connect: connecting was stopped by tether"),
        "{text}"
    );
    // The summary names the host once, before why (not "(zzz: connecting ...").
    assert!(
        text.contains("zzz   never connected (connecting was stopped by tether after "),
        "{text}"
    );
    // In JSON, its `connect_failed` says the interrupt's kind, which the timeline draws as a
    // connect tether stopped (stop 46 tester t62: `unreachable`, drawn as such).
    let _ = std::fs::remove_file(&marker);
    let child = r.tether().args(&["--format", "json", "quick"]).spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !marker.exists() {
        assert!(std::time::Instant::now() < deadline, "the task never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    // SAFETY: kill(2) on the tether this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = crate::support::tether::text(&out);
    let failed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "connect_failed" && v["host"] == "zzz")
        .collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert_eq!(failed[0]["kind"], "interrupted", "{text}");
    drop(silent);
}

/// Ctrl-C while a step's host is still connecting: tether stopped that host itself, so the
/// interrupt's error names no failed host, for a string `on` as for a closure (stop 37 tester
/// t25: `error: interrupted; 1 of 2 hosts failed`, then `black: connecting was stopped by
/// tether`, where README says the hosts the interrupt stopped are its own).
#[test]
fn a_host_still_connecting_at_an_interrupt_is_not_a_failed_host() {
    let lab = Lab::builder().names(&["app1"]).start();
    let (silent, config) = silent_host(&lab);
    let mut r = RecipeDir::new(
        "connecting-at-interrupt",
        "server(\"app1\", #{ roles: [\"app\"] });\nserver(\"zzz\", #{ roles: [\"app\"] });\n\
         task(\"string\", || { on(\"app\", \"touch /srv/started; sleep 5\"); });\n\
         task(\"closure\", || { on(\"app\", |h| { run(\"touch /srv/started; sleep 5\"); }); });\n",
    );
    r.ssh_config = Some(config);
    let marker = lab.host("app1").root_dir.join("started");
    for task in ["string", "closure"] {
        let _ = std::fs::remove_file(&marker);
        let child = r.tether().args(&[task]).spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !marker.exists() {
            assert!(std::time::Instant::now() < deadline, "{task}: never ran");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: kill(2) on the tether this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let text = crate::support::tether::text(&out);
        assert_eq!(out.status.code(), Some(130), "{task}: {text}");
        // Not `error: interrupted; 1 of 2 hosts failed`.
        assert!(
            text.lines().any(|l| l == "error: interrupted"),
            "{task}: {text}"
        );
        assert!(!text.contains("hosts failed"), "{task}: {text}");
    }
    drop(silent);
}

/// Runs task `t` of `r` `runs` times, each after removing `/srv/log` on `logs`' hosts: each
/// run fails with one of its two hosts failed and the other stopped early. Returns each run's
/// output (headed by `what` and its number) and what `/srv/log` then held on those hosts.
fn one_stopped_runs(
    lab: &Lab,
    r: &RecipeDir,
    what: &str,
    runs: usize,
    logs: &[&str],
) -> Vec<(String, Vec<String>)> {
    let log = |h: &str| lab.host(h).root_dir.join("log");
    (0..runs)
        .map(|run| {
            for h in logs {
                let _ = std::fs::remove_file(log(h));
            }
            let out = r.tether().args(&["t"]).run();
            let text = format!("{what} (run {run}): {}{}", out.stdout, out.stderr);
            assert_eq!(out.status, 1, "{text}");
            assert!(
                out.stderr
                    .contains("error: 1 of 2 hosts failed, 1 stopped early"),
                "{text}"
            );
            let held = logs
                .iter()
                .map(|h| std::fs::read_to_string(log(h)).unwrap_or_default())
                .collect();
            (text, held)
        })
        .collect()
}

/// A nested `on` inside a nested `on` counts every unit it begins in the steps around it,
/// however deep: a failure stops the other hosts' deep work at the same unit on every run
/// (stop 54 tester t85: a third level's commands all ran, the other host's failure in its
/// first unit notwithstanding, and its host went unnamed).
#[test]
fn nested_ons_however_deep_stop_at_the_same_unit_on_every_run() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4", "host5", "host6"])
        .start();
    let deep = |outer: &str, inner: &str, code: &str| {
        format!("on(\"{outer}\", |a| {{ on(\"{inner}\", |b| {{ {code} }}); }});")
    };
    let work = r#"run("echo one >> /srv/log"); run("echo two >> /srv/log"); run("echo three >> /srv/log");"#;
    let cases = [
        (
            "plain",
            r#"run("sleep 0.3; exit 5");"#.to_string(),
            deep("host4", "host5", work),
            "one\n",
        ),
        (
            "deep-after-two",
            deep(
                "host3",
                "host6",
                r#"run("true"); run("true"); fail("deep");"#,
            ),
            deep("host4", "host5", work),
            "one\ntwo\n",
        ),
        (
            "deep-against-two-levels",
            deep(
                "host3",
                "host6",
                r#"run("true"); run("true"); fail("deep");"#,
            ),
            format!("on(\"host5\", |b| {{ {work} }});"),
            "one\ntwo\n",
        ),
    ];
    for (name, failing, other, ran) in cases {
        let mut r = RecipeDir::new(
            &format!("nested-deep-{name}"),
            &format!(
                r#"
for h in ["host1", "host2", "host3", "host4", "host5", "host6"] {{ server(h, #{{ roles: ["app"] }}); }}
task("t", || {{
    on(["host1", "host2"], |host| {{
        if host.name == "host1" {{ {failing} }} else {{ {other} }}
    }});
}});
"#
            ),
        );
        r.ssh_config = Some(lab.ssh_config());
        for (text, logs) in one_stopped_runs(&lab, &r, name, 5, &["host5"]) {
            assert_eq!(logs, [ran], "{text}");
        }
    }
}

/// A task that the hosts of a closure all invoke runs once, on whichever host comes first;
/// the others wait for it and count its steps as their own, so their steps after it are
/// numbered alike and a failure there stops the others at the same unit on every run (stop 54
/// tester t85: the host that ran the task counted its nested `on` a step, the one that waited
/// did not, and the outcome changed from run to run).
#[test]
fn hosts_that_waited_for_an_invoked_task_count_its_steps() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4", "host5"])
        .start();
    let work = r#"on("host4", |b| { run("echo one >> /srv/log"); run("echo two >> /srv/log"); run("echo three >> /srv/log"); });"#;
    let fails = r#"on("host3", |b| { run("true"); run("true"); fail("x"); });"#;
    for (failing, other) in [("host1", "host2"), ("host2", "host1")] {
        let mut r = RecipeDir::new(
            &format!("invoked-steps-{failing}"),
            &format!(
                r#"
for h in ["host1", "host2", "host3", "host4", "host5"] {{ server(h, #{{ roles: ["app"] }}); }}
task("sub", || {{ on("host5", "true"); }});
task("t", || {{
    on(["host1", "host2"], |host| {{
        invoke("sub");
        if host.name == "{failing}" {{ {fails} }} else {{ {work} }}
    }});
}});
"#
            ),
        );
        r.ssh_config = Some(lab.ssh_config());
        for (text, logs) in one_stopped_runs(&lab, &r, failing, 6, &["host4"]) {
            assert!(
                text.contains(&format!("{other}: stopped during ")),
                "{text}"
            );
            assert_eq!(logs, ["one\ntwo\n"], "{text}");
        }
    }
}

/// An interrupt that stops a `run_locally` in a host's closure is the interrupt's, as it is
/// for the host's remote command: no host failed of its own (stop 53 tester t83: the local
/// command's end by SIGTERM made its host a failed one, `local: ... failed with TERM`).
#[test]
fn an_interrupt_during_a_hosts_local_command_is_no_failure_of_the_host() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let marker = lab.dir().join("local-started");
    let mut r = RecipeDir::new(
        "interrupt-local",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             task(\"t\", || {{ on(\"app\", |h| {{ run(\"true\"); run_locally(\"echo go >> {m}; sleep 30\"); }}); }});\n",
            m = marker.display()
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    for signal in ["INT", "TERM"] {
        let _ = std::fs::remove_file(&marker);
        let child = r.tether().args(&["t"]).spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read_to_string(&marker).map_or(0, |m| m.lines().count()) < 2 {
            assert!(std::time::Instant::now() < deadline, "{signal}: never ran");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sig = if signal == "INT" {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        // SAFETY: kill(2) on the tether this test started.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let out = child.wait_with_output().unwrap();
        let text = crate::support::tether::text(&out);
        assert_eq!(out.status.code(), Some(130), "{signal}: {text}");
        assert!(
            text.lines().any(|l| l == "error: interrupted"),
            "{signal}: {text}"
        );
        assert!(!text.contains("hosts failed"), "{signal}: {text}");
        assert!(!text.contains("failed with"), "{signal}: {text}");
    }
}

/// Ctrl-C during a step names the hosts that had failed on their own before it, with why,
/// as a step's failure does (fresh-eyes finding: a closure step over two working hosts, one
/// whose config was refused and one never reached ended with `error: interrupted` alone).
#[test]
fn an_interrupt_names_the_hosts_that_failed_before_it() {
    let lab = Lab::builder().names(&["app1", "app2"]).start();
    let port = support::net::closed_port();
    let cfg = config_with(&lab, "with_broken", BROKEN);
    let marker = lab.dir().join("started");
    let mut r = RecipeDir::new(
        "interrupt-names",
        &format!(
            "server(\"app1\", #{{ roles: [\"app\"] }});\nserver(\"app2\", #{{ roles: [\"app\"] }});\n\
             server(\"root@127.0.0.1:{port}\", #{{ roles: [\"app\"] }});\nserver(\"broken\", #{{ roles: [\"app\"] }});\n\
             task(\"closure\", || {{ on(\"app\", |h| {{ run(\"echo go >> {m}; sleep 30\"); }}); }});\n\
             task(\"string\", || {{ on(\"app\", \"echo go >> {m}; sleep 30\"); }});\n",
            m = marker.display()
        ),
    );
    r.ssh_config = Some(cfg);
    for task in ["closure", "string"] {
        let _ = std::fs::remove_file(&marker);
        let out = r
            .tether()
            .args(&[task])
            .interrupt_after_start(&marker, std::time::Duration::from_millis(500));
        let text = support::tether::text(&out);
        assert_eq!(out.status.code(), Some(130), "{task}\n{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error: Vec<&str> = stderr
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .collect();
        let error = error.join("\n");
        assert!(error.contains("broken: ProxyJump loop"), "{task}\n{error}");
        assert!(
            error.contains(&format!("root@127.0.0.1:{port}: cannot connect")),
            "{task}\n{error}"
        );
    }
}

/// What hosts and recipes write is shown, never acted on, in failure texts as in output
/// lines: a carriage return, a cursor move or an erase in a stderr tail or a `fail()`
/// message, or in an output line, cannot overwrite another line and pass for another host's
/// (fresh-eyes findings: `bad\rhost9 | fine\x1b[2K` in a stderr tail printed raw; a host's
/// `\x1b[1A\x1b[2K` rewrote another host's line on the screen).
#[test]
fn control_sequences_in_failures_and_output_are_shown_not_acted_on() {
    let lab = Lab::builder().names(&["web1"]).start();
    let r = lab_recipe(
        &lab,
        "control-sequences",
        "task(\"stderr\", || { on(\"web1\", \"printf 'bad\\\\rweb9 | fine\\\\033[2K\\\\n' >&2; exit 1\"); });\n\
         task(\"fail\", || { on(\"web1\", |h| { fail(\"innocent\\rweb9: ok \\x1b[2K\\x1b]0;title\\x07\"); }); });\n\
         task(\"output\", || { on(\"web1\", \"printf 'a\\\\033[1A\\\\033[2K\\\\033[1Gweb9 | fake\\\\n'\"); });\n\
         task(\"echoed\", || { on(\"web1\", \"true '\\x1b[2K\\x1b[1Aspoof\\r' ; echo done\"); });\n\
         task(\"stopped\", || { on(\"web1\", #{ timeout: 1 }, \"sleep 5 # \\r\\x1b[1Ahid\\u202e\"); });\n\
         task(\"bidi\", || { on(\"web1\", \"true '\\u202eevil\\u200bx\\u2028web9 | ok' ; exit 3\"); });\n",
    );
    let raw = |text: &str| {
        ['\r', '\x1b', '\x07', '\u{202e}', '\u{200b}', '\u{2028}']
            .iter()
            .any(|&c| text.contains(c))
    };
    for (task, shown) in [
        ("stderr", "bad\\x0dweb9 | fine\\x1b[2K"),
        ("fail", "innocent\\x0dweb9: ok \\x1b[2K\\x1b]0;title\\x07"),
        ("output", "a\\x1b[1A\\x1b[2K\\x1b[1Gweb9 | fake"),
        // The line that says what runs shows its bytes (stop 46 tester t60: `true 'spoof^M'`).
        (
            "echoed",
            "» web1 $ true '\\x1b[2K\\x1b[1Aspoof\\x0d' ; echo done",
        ),
        // So do the lines that say what became of it (stop 46 tester t61: `~ stopped`, a
        // re-attach, `may still be running`), direction overrides spelt out.
        (
            "stopped",
            "web1 ~ stopped `sleep 5 # \\x0d\\x1b[1Ahid\\u{202e}` on the host",
        ),
        // And a failure's own line, a line separator too (stop 46 tester t62).
        (
            "bidi",
            "web1: `true '\\u{202e}evil\\u{200b}x\\u{2028}web9 | ok' ; exit 3` failed",
        ),
    ] {
        let out = r.tether().args(&[task]).run();
        let both = format!("{}{}", out.stdout, out.stderr);
        assert!(!raw(&both), "{task}: {both:?}");
        assert!(both.contains(shown), "{task}: {both}");
    }
}

/// A host stopped early because another host of its step failed is reported stopped early
/// whether or not its closure catches the stop, and the caught stop reads as a failure does
/// (`kind`, `hosts`, `message`; stop 46 tester t59: the caught value was a Rust type whose
/// `e.kind` was a recipe error, exit 4, and a host whose stop was swallowed went unnamed in
/// the failure, its `sleep 6` killed).
#[test]
fn a_caught_stop_reads_as_a_failure_and_the_host_is_still_stopped_early() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4"])
        .start();
    let mut r = RecipeDir::new(
        "caught-stop",
        r#"
for h in ["host1", "host2", "host3", "host4"] { server(h, #{ roles: ["app"] }); }
task("t", || {
    on("app", |h| {
        if h.name == "host1" { run("sleep 0.5; exit 5"); }
        else if h.name == "host2" {
            try { run("sleep 6"); } catch (e) {
                print("caught " + type_of(e) + " " + e.kind + " " + e.hosts + " " + e.message);
            }
            try { run("echo after"); } catch (e) { print("after: " + e); }
        } else if h.name == "host3" {
            try { run("sleep 6"); } catch (e) { throw e; }
        } else {
            // Its own failure after its stop: its own, and no cause of the others' stop.
            try { run("sleep 6"); } catch (e) { fail("my own"); }
        }
    });
});
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    for _ in 0..2 {
        let out = r.tether().args(&["t"]).run();
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.status, 1, "{text}");
        assert!(
            text.contains(
                "caught StoppedEarly stopped_early [\"host1\"] stopped during `sleep 6` (tether \
                 stopped it on the host): host1 failed"
            ),
            "{text}"
        );
        assert!(
            text.contains("after: stopped before `echo after`: host1 failed"),
            "{text}"
        );
        assert!(!text.contains("host2 | after"), "{text}");
        assert!(
            out.stderr
                .contains("error: 2 of 4 hosts failed, 2 stopped early"),
            "{text}"
        );
        assert!(out.stderr.contains("host4: my own"), "{text}");
        assert!(!out.stderr.contains("host4 failed"), "{text}");
        for host in ["host2", "host3"] {
            assert!(
                out.stderr.contains(&format!(
                    "{host}: stopped during `sleep 6` (tether stopped it on the host): host1 \
                     failed"
                )),
                "{text}"
            );
        }
    }
}

/// A nested `on` in a host's closure is a step of that host: once another host of the
/// enclosing `on` failed, the host's next nested step is refused as its commands are, and the
/// host is reported stopped early (stop 46 tester t61: host2's closure went on through two
/// more steps on host3 after host1 failed, wrote their files, and was reported ok).
#[test]
fn a_nested_on_is_stopped_by_its_hosts_step_abort() {
    let lab = Lab::builder().names(&["host1", "host2", "host3"]).start();
    let mut r = RecipeDir::new(
        "nested-abort",
        r#"
for h in ["host1", "host2", "host3"] { server(h, #{ roles: ["app"] }); }
task("t", || {
    on(["host1", "host2"], |host| {
        if host.name == "host1" { run("sleep 0.3; exit 7"); }
        else {
            on("host3", "sleep 1.5");
            on("host3", "echo second > /srv/second");
            run("echo third > /srv/third");
        }
    });
});
"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    let out = r.tether().args(&["t"]).run();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.status, 1, "{text}");
    assert!(
        !lab.host("host3").root_dir.join("second").exists(),
        "{text}"
    );
    assert!(!lab.host("host2").root_dir.join("third").exists(), "{text}");
    assert!(
        out.stderr
            .contains("error: 1 of 2 hosts failed, 1 stopped early"),
        "{text}"
    );
    assert!(
        out.stderr
            .contains("host2: stopped before `echo second > /srv/second`: host1 failed"),
        "{text}"
    );
}

/// A nested `on` already running in a host's closure when another host of the enclosing `on`
/// fails is stopped as the host's own command would be, whatever its form and however deep:
/// its commands on the host, and no later one starts; the host is reported stopped early
/// (stop 46 tester t62: a running nested `on` went on to its end, its own commands and deeper
/// `on`s included).
#[test]
fn a_running_nested_on_is_stopped_when_another_host_of_its_step_fails() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4"])
        .start();
    let cases = [
        (
            "string",
            r#"on("host3", "echo started > /srv/string; sleep 6; echo late > /srv/string");"#,
        ),
        (
            "closure",
            r#"on("host3", |h| {
                run("echo started > /srv/closure; sleep 6; echo late > /srv/closure");
                run("echo after > /srv/closure-after");
            });"#,
        ),
        (
            "deeper",
            r#"on("host3", |h| {
                on("host4", "echo started > /srv/deeper; sleep 6; echo late > /srv/deeper");
                run("echo after > /srv/deeper-after");
            });"#,
        ),
        (
            "limited",
            r#"on(["host3", "host4"], #{ limit: 1 }, "echo started >> /srv/limited; sleep 6; echo late >> /srv/limited");"#,
        ),
    ];
    for (name, nested) in cases {
        // The nested `on` is host2's first step, the one host1 fails at: stopped after the
        // step's grace (a step past the failing one no longer starts: the hosts go through
        // the steps together).
        let (out, text) = nested_abort(
            &lab,
            &format!("running-{name}"),
            1.0,
            &format!("{nested} run(\"echo next > /srv/next-{name}\");"),
        );
        assert!(out.stderr.contains("host2: stopped during `"), "{text}");
        assert!(out.stderr.contains("`: host1 failed\n  0 of "), "{text}");
        assert!(
            !lab.host("host2")
                .root_dir
                .join(format!("next-{name}"))
                .exists(),
            "{text}"
        );
        for after in ["closure-after", "deeper-after"] {
            assert!(!lab.host("host3").root_dir.join(after).exists(), "{text}");
        }
    }
    // Long enough for a command of the last case left running to have written `late`.
    std::thread::sleep(std::time::Duration::from_millis(6500));
    for (host, file) in [
        ("host3", "string"),
        ("host3", "closure"),
        ("host4", "deeper"),
        ("host3", "limited"),
    ] {
        let said = std::fs::read_to_string(lab.host(host).root_dir.join(file)).unwrap_or_default();
        assert_eq!(said, "started\n", "{host}:/srv/{file}");
    }
    assert!(!lab.host("host4").root_dir.join("limited").exists());
}

/// Each further line of a multi-line command tether shows (`»`, `-v`, `-n`, a failure's
/// line) comes behind the shell's continuation prompt, `> `: none can pass for one of
/// tether's own lines or another host's (stop 46 tester t61: a command's `▶ fake` line read as
/// a task's start, flush left).
#[test]
fn a_multi_line_commands_further_lines_never_pass_for_tethers_own() {
    let lab = Lab::builder().names(&["web1"]).start();
    let spoofs = [
        "▶ deploy:publishing",
        "done: t finished in 1.0 ms",
        "web9 | ok",
        "error: 0 of 1 host failed",
        "  (at deploy.rhai:1:1, in task `t`)",
    ];
    let command = format!("true\n{}\nexit 3", spoofs.join("\n"));
    let r = lab_recipe(
        &lab,
        "multi-line-command",
        &format!(
            "task(\"string\", || {{ on(\"web1\", {command:?}); }});\n\
             task(\"closure\", || {{ on(\"web1\", |h| {{ run({command:?}); }}); }});\n\
             task(\"timeout\", || {{ on(\"web1\", #{{ timeout: 0.5 }}, \"sleep 3\\n\" + {command:?}); }});\n"
        ),
    );
    for args in [
        &["string"][..],
        &["closure"],
        &["-v", "string"],
        &["-v", "closure"],
        &["-n", "string"],
        &["-n", "closure"],
        // A timeout's failure too (stop 47 tester t64).
        &["timeout"],
    ] {
        let out = r.tether().args(args).run();
        let both = format!("{}{}", out.stdout, out.stderr);
        for spoof in spoofs {
            assert!(
                !both.lines().any(|l| l == spoof),
                "{args:?}: a line reads {spoof:?}:\n{both}"
            );
            assert!(both.contains(&format!("\n> {spoof}\n")), "{args:?}: {both}");
        }
        if args[0] != "-n" && args[0] != "timeout" {
            assert!(
                out.stderr
                    .contains("\n>   (at deploy.rhai:1:1, in task `t`)\n> exit 3` failed"),
                "{args:?}: {both}"
            );
        }
    }
}

/// A failed host's line names a long command (a stdlib step's script of a kilobyte or two) by
/// its start and its length, and the reason after it; `-v` shows it whole (stop 47 tester t63:
/// 1,700 characters of script before the words that said why).
#[test]
fn a_long_failed_command_is_named_by_its_start() {
    let lab = Lab::builder().names(&["web1"]).start();
    let command = format!("true {}; echo the reason >&2; exit 3", "x".repeat(1500));
    let r = lab_recipe(
        &lab,
        "long-failed-command",
        &format!("task(\"t\", || {{ on(\"web1\", {command:?}); }});\n"),
    );
    let out = r.tether().args(&["t"]).run();
    out.status(1)
        .stderr_contains(&format!(
            "web1: `true {}… (1534 characters in all: -v shows it whole)` failed with exit status 3",
            "x".repeat(495)
        ))
        .stderr_contains("the reason")
        .stderr_lacks(&command);
    r.tether()
        .args(&["-v", "t"])
        .run()
        .stdout_contains(&format!("web1 ~ $ {command}"));

    // Many short lines are cut too: at twelve (stop 47 tester t65: 57 lines of a 722-character
    // command came before the reason).
    let lines: Vec<String> = (1..=40).map(|i| format!("echo {i}")).collect();
    let command = format!("{}\nexit 3", lines.join("\n"));
    let r = lab_recipe(
        &lab,
        "many-lines",
        &format!("task(\"t\", || {{ on(\"web1\", {command:?}); }});\n"),
    );
    let out = r.tether().args(&["t"]).run();
    out.status(1)
        .stderr_contains("web1: `echo 1\n> echo 2\n")
        .stderr_contains("> echo 12… (")
        .stderr_lacks("> echo 13");
}

/// A nested `on` that is the same step of its host as the step another host of the enclosing
/// `on` failed at starts nothing new after that failure: what it runs gets the step's grace,
/// its next command (or, in sequence, its next host) is not started, and its host is stopped
/// early (stop 47 tester t64: its later commands, transfers and hosts started during the
/// grace, and its host went unnamed).
#[test]
fn a_nested_on_of_the_failing_step_starts_nothing_after_the_failure() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4"])
        .start();
    let cases = [
        (
            "closure",
            r#"on("host3", |h| {
                run("echo started > /srv/closure; sleep 1.5");
                run("echo next > /srv/closure-next");
            });"#,
        ),
        (
            "sequence",
            r#"on(["host3", "host4"], #{ in: "sequence" }, "echo started > /srv/sequence; sleep 1.5");"#,
        ),
    ];
    for (name, nested) in cases {
        let (out, text) = nested_abort(
            &lab,
            &format!("same-step-{name}"),
            1.0,
            &format!("{nested} run(\"echo next > /srv/next-{name}\");"),
        );
        assert!(out.stderr.contains("host2: stopped "), "{text}");
        assert!(
            !lab.host("host2")
                .root_dir
                .join(format!("next-{name}"))
                .exists(),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(lab.host("host3").root_dir.join(name)).unwrap_or_default(),
            "started\n",
            "{text}"
        );
    }
    assert!(!lab.host("host3").root_dir.join("closure-next").exists());
    assert!(!lab.host("host4").root_dir.join("sequence").exists());
}

/// The nested `on`s that hosts of an enclosing `on` run as one step go through their units
/// together: a failure in one host's stops the others' at the same point on every run, its
/// first unit run (as good as begun with the step) and nothing from the unit it failed in on
/// (stop 53 tester t83: an inner host's `fail()` before any command gave two summaries in 8
/// runs, the other host's inner commands refused or run by turns). Whether the failing host's
/// step is a nested `on` with a closure, one with a command, or a plain command, and whether
/// the other's runs its hosts together or in sequence (its units counted on through its next
/// host).
#[test]
fn nested_ons_of_one_step_stop_at_the_same_unit_on_every_run() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4", "host5"])
        .start();
    let inner = |code: &str| format!("on(\"host3\", |h| {{ {code} }});");
    let (seq, par) = (r#"#{ in: "sequence" }"#, "#{}");
    let cases = [
        ("at-once", inner(r#"fail("inner");"#), seq, ["one\n", ""]),
        (
            "after-one",
            inner(r#"run("true"); fail("inner");"#),
            seq,
            ["one\n", ""],
        ),
        (
            "first-command",
            inner(r#"run("exit 3");"#),
            seq,
            ["one\n", ""],
        ),
        (
            "after-two",
            inner(r#"run("true"); run("true"); fail("inner");"#),
            seq,
            ["one\ntwo\n", ""],
        ),
        (
            "second-command",
            inner(r#"run("true"); run("exit 3");"#),
            seq,
            ["one\ntwo\n", ""],
        ),
        (
            "together",
            inner(r#"run("true"); fail("inner");"#),
            par,
            ["one\n", "one\n"],
        ),
        (
            "string-on",
            r#"on("host3", "exit 3");"#.into(),
            par,
            ["one\n", "one\n"],
        ),
        (
            "plain",
            r#"run("sleep 0.2; exit 3");"#.into(),
            seq,
            ["one\n", ""],
        ),        // Units are counted on through the next host in sequence (stop 54 tester t84: a host
        // a nested `on` started later began a round of its own, after every unit of the first
        // host however many: refused too early on one side, run past the failure on the
        // other).
        (
            "fourth",
            inner(r#"for i in 0..4 { run("true"); } fail("inner");"#),
            seq,
            ["one\ntwo\nthree\n", "one\n"],
        ),
        (
            "next-host",
            r#"on(["host3", "host1"], #{ in: "sequence" }, |x| { run("true"); if x.name == "host1" { fail("inner"); } });"#.into(),
            seq,
            ["one\ntwo\n", ""],
        ),
    ];
    for (name, failing, spread, ran) in cases {
        let mut r = RecipeDir::new(
            &format!("nested-units-{name}"),
            &format!(
                r#"
for h in ["host1", "host2", "host3", "host4", "host5"] {{ server(h, #{{ roles: ["app"] }}); }}
task("t", || {{
    on(["host1", "host2"], |host| {{
        if host.name == "host1" {{
            {failing}
        }} else {{
            on(["host4", "host5"], {spread}, |h| {{
                run("echo one >> /srv/log");
                run("echo two >> /srv/log");
                run("echo three >> /srv/log");
            }});
        }}
    }});
}});
"#
            ),
        );
        r.ssh_config = Some(lab.ssh_config());
        for (text, logs) in one_stopped_runs(&lab, &r, name, 6, &["host4", "host5"]) {
            assert!(text.contains("host2: stopped "), "{text}");
            assert_eq!(logs, ran, "{text}");
        }
    }
}

/// A nested `on` whose enclosing step was aborted does not sleep out its `wait` between hosts
/// or groups before it ends (stop 47 tester t65: `in: "sequence", wait: 25` held the run 25 s
/// after the abort, though nothing more was started).
#[test]
fn a_nested_ons_wait_ends_with_the_enclosing_abort() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4"])
        .start();
    for (name, nested) in [
        (
            "string",
            r#"on(["host3", "host4", "host1"], #{ in: "sequence", wait: 25 }, "echo ran > /srv/wait-string");"#,
        ),
        (
            "closure",
            r#"on(["host3", "host4", "host1"], #{ in: "groups", limit: 1, wait: 25 }, |h| { run("echo ran > /srv/wait-closure"); });"#,
        ),
    ] {
        let begun = std::time::Instant::now();
        let (out, text) = nested_abort(&lab, &format!("wait-{name}"), 0.5, nested);
        let took = begun.elapsed();
        assert!(took < std::time::Duration::from_secs(12), "{took:?} {text}");
        // No host of the nested step failed: the enclosing one's failure is named (stop 47
        // tester t65: "an earlier host or group of this step failed").
        assert!(out.stderr.contains("  host4: stopped before `"), "{text}");
        assert!(
            out.stderr.contains("  host1: not started: host1 failed"),
            "{text}"
        );
        assert!(!out.stderr.contains("an earlier host or group"), "{text}");
        assert!(
            lab.host("host3")
                .root_dir
                .join(format!("wait-{name}"))
                .exists(),
            "{text}"
        );
        assert!(
            !lab.host("host4")
                .root_dir
                .join(format!("wait-{name}"))
                .exists(),
            "{text}"
        );
    }
}

/// Runs task `t` over host1..host4 (`lab`'s), where host1 fails its only step after
/// `fails_after` seconds (`exit 7`) and host2's closure is `host2` (its nested `on`s); checks
/// the run failed with host2 stopped early; its output, and that with `name`, to show.
fn nested_abort(
    lab: &Lab,
    name: &str,
    fails_after: f64,
    host2: &str,
) -> (support::tether::Output, String) {
    let mut r = RecipeDir::new(
        &format!("nested-{name}"),
        &format!(
            r#"
for h in ["host1", "host2", "host3", "host4"] {{ server(h, #{{ roles: ["app"] }}); }}
task("t", || {{
    on(["host1", "host2"], |host| {{
        if host.name == "host1" {{ run("sleep {fails_after}; exit 7"); }}
        else {{ {host2} }}
    }});
}});
"#
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    let out = r.tether().args(&["t"]).run();
    let text = format!("{name}: {}{}", out.stdout, out.stderr);
    assert_eq!(out.status, 1, "{text}");
    assert!(
        out.stderr
            .contains("error: 1 of 2 hosts failed, 1 stopped early"),
        "{text}"
    );
    (out, text)
}

/// A step spread over a window (`limit:`) starts no host once one of its hosts failed: the
/// rest are not started, as in sequence and groups, rather than started and then stopped
/// for the failure (stop 50 tester t71: with `limit: 1`, host2, host3 and host4 each started
/// after host1 had failed, and each was killed two seconds in, left half done). A string
/// command and a closure alike; `tether run`, which stops no host for another's failure,
/// still runs every host.
#[test]
fn a_limited_step_starts_no_host_after_one_failed() {
    let lab = Lab::builder()
        .names(&["host1", "host2", "host3", "host4"])
        .start();
    let command = "[ $(cat /srv/who) = host1 ] && exit 1; echo started >> /srv/started; sleep 1";
    for host in ["host1", "host2", "host3", "host4"] {
        std::fs::write(lab.host(host).root_dir.join("who"), host).unwrap();
    }
    let mut r = RecipeDir::new(
        "limited-after-failure",
        &format!(
            "for h in [\"host1\", \"host2\", \"host3\", \"host4\"] {{ server(h, #{{ roles: [\"app\"] }}); }}\n\
             task(\"string\", || {{ on([\"host1\", \"host2\", \"host3\", \"host4\"], #{{ limit: 1 }}, {command:?}); }});\n\
             task(\"closure\", || {{ on([\"host1\", \"host2\", \"host3\", \"host4\"], #{{ limit: 2 }}, |h| {{ run({command:?}); }}); }});\n"
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    for task in ["string", "closure"] {
        let out = r.tether().args(&[task]).run();
        let text = format!("{task}: {}{}", out.stdout, out.stderr);
        out.status(1);
        // With a window of two, host2 started beside host1 and runs its step to its end.
        let not_started: &[&str] = match task {
            "string" => &["host2", "host3", "host4"],
            _ => &["host3", "host4"],
        };
        for host in not_started {
            assert!(
                out.stderr
                    .contains(&format!("{host}: not started: an earlier host")),
                "{text}"
            );
            assert!(
                !lab.host(host).root_dir.join("started").exists(),
                "{host} started: {text}"
            );
        }
        for host in ["host2", "host3", "host4"] {
            let _ = std::fs::remove_file(lab.host(host).root_dir.join("started"));
        }
    }
    let run = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--parallel",
            "1",
            "run",
            "--hosts",
            "host1,host2,host3,host4",
            "--",
        ])
        .arg(command)
        .run();
    run.status(1);
    for host in ["host2", "host3", "host4"] {
        assert!(lab.host(host).root_dir.join("started").exists(), "{host}");
    }
}

/// A failure's stderr tail shows bytes that are not UTF-8 as `\xNN`, as the streamed lines do,
/// so two hosts whose stderr differs only there are never folded into one failure (stop 50
/// tester t72: `x\377y` and `x\376y` both became `x\u{fffd}y`, one failure for both hosts).
#[test]
fn a_stderr_tail_keeps_bytes_that_are_not_utf8_apart() {
    let lab = Lab::builder().names(&["host1", "host2"]).start();
    std::fs::write(lab.host("host1").root_dir.join("byte"), "377").unwrap();
    std::fs::write(lab.host("host2").root_dir.join("byte"), "376").unwrap();
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1,host2", "--"])
        .arg(r#"printf "x\\$(cat /srv/byte)y\n" >&2; exit 1"#)
        .run();
    out.status(1);
    let summary = &out.stderr[out.stderr.find("error:").unwrap_or(0)..];
    for (host, byte) in [("host1", "ff"), ("host2", "fe")] {
        assert!(
            out.stdout.contains(&format!("{host} ! x\\x{byte}y")),
            "{}",
            out.stdout
        );
        assert!(summary.contains(&format!("x\\x{byte}y")), "{}", out.stderr);
    }
    assert!(!out.stderr.contains('\u{fffd}'), "{}", out.stderr);
    assert!(!summary.contains("host[1-2]"), "{}", out.stderr);
}

/// A dry run stops where the run stops when a host of a step cannot be reached (its ssh config
/// refused): in a sequence, a group, a window, and a closure whose other hosts the run stops
/// after the step they ran with it; it plans what the run runs and fails with the run's words
/// (stop 63 tester t104: the plan listed every host after the failed one, and a closure's
/// later commands on the others; a caught failure read "1 of 3 hosts failed" where the run's
/// read "1 of 3 hosts failed, 1 not started"; t105: in a window of two, the host after it was
/// planned).
#[test]
fn a_dry_run_stops_where_the_run_stops_at_a_host_it_cannot_reach() {
    let lab = Lab::builder().names(&["good1", "good2"]).start();
    let cfg = config_with(
        &lab,
        "bind_config",
        "Host bindbad\n  BindAddress 127.0.0.1\n",
    );
    let mut r = RecipeDir::new(
        "dry-stops",
        "server(\"good1\", #{ roles: [\"app\"] }); server(\"good2\", #{ roles: [\"app\"] });\n\
         server(\"bindbad\", #{ roles: [\"bad\"] });\n\
         task(\"seq\", || { on([\"good1\", \"bindbad\", \"good2\"], #{ in: \"sequence\" }, \"echo seq\"); });\n\
         task(\"groups\", || { on([\"bindbad\", \"good1\", \"good2\"], #{ in: \"groups\", limit: 1 }, \"echo grp\"); });\n\
         task(\"window\", || { on([\"good1\", \"bindbad\", \"good2\"], #{ limit: 1 }, \"echo win\"); });\n\
         task(\"window3\", || { on([\"good1\", \"bindbad\", \"good2\"], #{ limit: 2 }, \"echo w3\"); });\n\
         task(\"closure\", || { on([\"app\", \"bad\"], |h| { run(\"echo c1 \" + h.name); run(\"echo c2\"); }); });\n\
         task(\"window2\", || { on([\"good1\", \"bindbad\", \"good2\"], #{ limit: 2 }, |h| { run(\"echo w1\"); run(\"echo w2\"); }); });\n\
         task(\"caught\", || {\n  try { on([\"good1\", \"bindbad\", \"good2\"], #{ in: \"sequence\" }, \"echo t\"); }\n  \
         catch (e) { print(\"caught \" + e.message); }\n  on(\"good2\", \"echo after\");\n});\n",
    );
    r.ssh_config = Some(cfg);
    // Each step's run ends the same way every time: no host it cannot reach is started by a
    // sliding window after others (the run's outcome then depends on which host of the
    // window ends first: seen under load, good1 stopped during `echo w2` by bindbad, started
    // as good2 ended).
    // (host, text): what the plan says each host runs (`host | $ echo X` as `X`), and what
    // the run's hosts printed; the recipe's prints.
    let said = |out: &support::tether::Output, planned: bool| -> Vec<String> {
        let mut lines = host_lines(out, planned, &["caught "]);
        lines.sort();
        lines
    };
    for task in [
        "seq", "groups", "window", "window3", "closure", "window2", "caught",
    ] {
        let plan = r.tether().args(&["-n", task]).run();
        let run = r.tether().args(&[task]).run();
        assert_eq!(
            plan.status,
            run.status,
            "{task}\n{}\n{}",
            plan.dump(),
            run.dump()
        );
        assert_eq!(
            said(&plan, true),
            said(&run, false),
            "{task}\n{}\n{}",
            plan.dump(),
            run.dump()
        );
        let error = |out: &support::tether::Output| {
            out.stderr
                .split_once("error: ")
                .map(|(_, e)| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(error(&plan), error(&run), "{task}");
    }
}

/// A host behind a jump host whose own configuration is refused fails in its own name, the
/// jump host named as the reason, in the run and its dry run alike (stop 63 tester t105: `2 of
/// 3 hosts failed` followed by `jbad: ssh config ...` twice, the hosts behind it named nowhere).
#[test]
fn a_host_behind_a_refused_jump_host_is_named_in_its_failure() {
    let lab = Lab::builder().names(&["good1"]).start();
    let cfg = config_with(
        &lab,
        "hop_config",
        "Host jbad\n  BindAddress 127.0.0.1\nHost vb1 vb2\n  HostName 127.0.0.1\n  ProxyJump jbad\n",
    );
    for dry in [false, true] {
        let mut args = vec!["run", "--hosts", "vb1,vb2,good1", "--", "echo hi"];
        if dry {
            args.insert(0, "-n");
        }
        let out = support::tether::Tether::new()
            .ssh_config(&cfg)
            .args(&args)
            .run();
        out.status(2).stderr_contains("2 of 3 hosts failed");
        for host in ["vb1", "vb2"] {
            out.stderr_contains(&format!(
                "{host}: cannot reach it through jump host jbad: jbad: ssh config"
            ));
        }
    }
    let out = support::tether::Tether::new()
        .ssh_config(&cfg)
        .args(&["hosts", "--hosts", "vb1,good1"])
        .run();
    out.status(2)
        .stderr_contains("vb1: cannot reach it through jump host jbad");
}

/// A dry run of a closure goes through its hosts as the run does, in step with each other, so
/// a host that fails of its own (`fail()`, a Rhai error, `throw`), wherever it stands among the
/// hosts, stops the others where the run stops them, in every strategy; and its plan comes out
/// in the same order on every run (stop 63 tester t105: planned one host at a time, the hosts
/// before the failing one showed every command of the step).
#[test]
fn a_dry_run_of_closures_stops_where_the_run_stops_at_a_host_that_fails() {
    let lab = Lab::builder().names(&["h1", "h2", "h3"]).start();
    let mut r = RecipeDir::new(
        "dry-closures",
        "server(\"h1\", #{ roles: [\"app\"] }); server(\"h2\", #{ roles: [\"app\"] });\n\
         server(\"h3\", #{ roles: [\"app\"] });\n\
         task(\"own2\", || { on(\"app\", |h| { run(\"echo a \" + h.name); if h.name == \"h2\" { fail(\"boom\"); } run(\"echo b \" + h.name); run(\"echo c \" + h.name); }); });\n\
         task(\"own3\", || { on(\"app\", |h| { run(\"echo a \" + h.name); run(\"echo b \" + h.name); if h.name == \"h3\" { let x = 1 / 0; } run(\"echo c \" + h.name); }); });\n\
         task(\"throw2\", || { on(\"app\", |h| { if h.name == \"h2\" { throw \"early\"; } run(\"echo a \" + h.name); run(\"echo b \" + h.name); }); });\n\
         task(\"window\", || { on(\"app\", #{ limit: 2 }, |h| { run(\"echo a \" + h.name); if h.name == \"h2\" { fail(\"w\"); } run(\"echo b \" + h.name); }); });\n\
         task(\"groups\", || { on(\"app\", #{ in: \"groups\", limit: 2 }, |h| { run(\"echo a \" + h.name); if h.name == \"h3\" { fail(\"g\"); } run(\"echo b \" + h.name); }); });\n\
         task(\"sequence\", || { on(\"app\", #{ in: \"sequence\" }, |h| { run(\"echo a \" + h.name); if h.name == \"h2\" { fail(\"s\"); } run(\"echo b \" + h.name); }); });\n\
         task(\"nested\", || { on([\"h1\", \"h2\"], |h| { run(\"echo a \" + h.name); on(\"h3\", |i| { run(\"echo in \" + h.name); }); if h.name == \"h2\" { fail(\"n\"); } run(\"echo b \" + h.name); }); });\n\
         task(\"caught\", || { on(\"app\", |h| { run(\"echo a \" + h.name); try { if h.name == \"h3\" { fail(\"c\"); } } catch (e) { print(\"caught \" + h.name); } run(\"echo b \" + h.name); }); });\n\
         task(\"printed\", || { on(\"app\", |h| { print(\"first \" + h.name); run(\"echo a \" + h.name); print(\"then \" + h.name); run(\"echo b \" + h.name); print(\"last \" + h.name); }); });\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    // (host, text): what the plan says each host runs (`host | $ echo X` as `X`), and what
    // the run's hosts printed; the recipe's prints.
    let said = |out: &support::tether::Output, planned: bool| -> Vec<String> {
        host_lines(out, planned, &["caught ", "first ", "then ", "last "])
    };
    let sorted = |mut lines: Vec<String>| {
        lines.sort();
        lines
    };
    let error = |out: &support::tether::Output| {
        out.stderr
            .split_once("error: ")
            .map(|(_, e)| e.to_string())
            .unwrap_or_default()
    };
    for task in [
        "own2", "own3", "throw2", "window", "groups", "sequence", "nested", "caught", "printed",
    ] {
        let plan = r.tether().args(&["-n", task]).run();
        let run = r.tether().args(&[task]).run();
        let context = format!("{task}\n{}\n{}", plan.dump(), run.dump());
        assert_eq!(plan.status, run.status, "{context}");
        assert_eq!(
            sorted(said(&plan, true)),
            sorted(said(&run, false)),
            "{context}"
        );
        assert_eq!(error(&plan), error(&run), "{context}");
        // The plan's order is the plan's, not its threads'.
        for _ in 0..3 {
            let again = r.tether().args(&["-n", task]).run();
            assert_eq!(said(&again, true), said(&plan, true), "{task}");
        }
    }
}

/// A window's hosts that end together give their ends in order, and the hosts the window
/// starts for them are there before any host goes on: the plan of a window whose host fails
/// as another ends, or whose late host fails at once, is the same on every run (stop 64
/// tester t106: with `limit: 2`, 40 dry runs gave three plans, one listing a host no run
/// started; 30 gave two, one planning the whole closure of a host the run stops).
#[test]
fn a_dry_run_plans_a_window_the_same_way_every_time() {
    let r = RecipeDir::new(
        "dry-window",
        "for h in [\"w1\", \"w2\", \"w3\", \"w4\"] { server(h, #{ roles: [\"web\"] }); }\n\
         task(\"late_fail\", || { on(\"web\", #{ limit: 2 }, |h| { run(\"echo a \" + h.name); run(\"echo b \" + h.name); if h.name == \"w1\" { fail(\"x\"); } }); });\n\
         task(\"late_start\", || { on(\"web\", #{ limit: 2 }, |h| { if h.name == \"w4\" { fail(\"y\"); } run(\"echo a \" + h.name); run(\"echo b \" + h.name); }); });\n\
         task(\"refill\", || { on(\"web\", #{ limit: 3 }, |h| { run(\"echo a \" + h.name); if h.name == \"w3\" { fail(\"z\"); } }); });\n",
    );
    for task in ["late_fail", "late_start", "refill"] {
        let first = r.tether().args(&["-n", task]).run();
        first.status(1);
        for _ in 0..15 {
            let again = r.tether().args(&["-n", task]).run();
            assert_eq!(
                (&again.stdout, &again.stderr),
                (&first.stdout, &first.stderr),
                "{task}"
            );
        }
        match task {
            // w1's failure comes before w2's end: the window starts nothing more.
            "late_fail" => first.stdout_lacks("w3").stdout_lacks("w4"),
            // w4 fails before w3 goes past its first step.
            "late_start" => first.stdout_lacks("echo b w3"),
            // w1 and w2 end with w3, before it in order: the window starts w4 (as a run does
            // when their ends come first).
            _ => first.stdout_contains("echo a w4"),
        };
    }
}

/// The hosts of a closure that waited for a task another host's closure invoked are back at
/// their places when it ends, and go on at their turns: the plan after it is the same on every
/// run (stop 64 tester t106: 5 orders of the hosts' next commands in 30 dry runs).
#[test]
fn a_dry_run_plans_an_invoke_in_a_closure_the_same_way_every_time() {
    let r = RecipeDir::new(
        "dry-invoke",
        "for h in [\"w1\", \"w2\", \"w3\", \"w4\"] { server(h, #{ roles: [\"web\"] }); }\n\
         task(\"sub\", || { on(\"web\", |h| { run(\"echo sub \" + h.name); }); });\n\
         task(\"inv\", || { on(\"web\", |h| { run(\"echo before \" + h.name); invoke(\"sub\"); print(\"back \" + h.name); run(\"echo after \" + h.name); }); });\n",
    );
    let first = r.tether().args(&["-n", "inv"]).run();
    first.status(0);
    for _ in 0..15 {
        let again = r.tether().args(&["-n", "inv"]).run();
        assert_eq!(again.stdout, first.stdout);
    }
    let after: Vec<&str> = first
        .stdout
        .lines()
        .filter(|l| l.contains("$ echo after"))
        .collect();
    assert_eq!(after.len(), 4, "{}", first.stdout);
}
