//! ProxyCommand against real sshd: hosts reached through `ssh -W %h:%p bastion` (inner hosts
//! of a network namespace only the bastion reaches, see `support/site.rs`), ProxyJump and
//! ProxyCommand precedence, a proxy command that fails, a session kept alive through a proxy
//! under `ClientAliveInterval`, a reconnect that replaces a killed proxy process, and a stdlib
//! deploy and `tether check` through it.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::harness::Harness;
use support::lab::Lab;
use support::site::Site;
use support::tether::Tether;
use tether::event::EventKind;
use tether::pool::HostResult;
use tether::ssh::policy::WorkerSettings;

/// `ProxyCommand` through the site's bastion with OpenSSH's own client.
fn through_bastion(site: &Site) -> String {
    format!(
        "ProxyCommand ssh -F {} -o BatchMode=yes -W %h:%p bastion",
        site.ssh_config().display()
    )
}

fn run_on(config: &Path, hosts: &str) -> support::tether::Output {
    Tether::new()
        .ssh_config(config)
        .args(&["run", "--hosts", hosts, "--", "echo \"I am $TETHER_HOST\""])
        .run()
}

/// A failed proxy command's stderr is read to its end before the failure says it, not for a
/// fixed 20 ms after its exit (a CI run under load: `exited with status 7 ...` without the
/// `its stderr ended with: ...` it had written). Here the last line comes 300 ms after the
/// exit, from a child of the proxy that still holds its stderr.
#[test]
fn a_proxy_commands_stderr_is_read_to_its_end_before_it_is_said() {
    let lab = Lab::start(1);
    let lab_cfg = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let cfg = lab.dir().join("late");
    std::fs::write(
        &cfg,
        format!(
            "Host host1\n  ProxyCommand sh -c 'echo first >&2; (sleep 0.3; echo late words >&2) \
             </dev/null >/dev/null & exit 7'\n{lab_cfg}"
        ),
    )
    .unwrap();
    run_on(&cfg, "host1")
        .status(3)
        .stdout_contains("exited with status 7 before the SSH connection was set up; its stderr ended with: first | late words");
}

/// Regression (issue 11): a ProxyCommand was ignored and tether connected directly.
#[test]
fn hosts_are_reached_through_ssh_w_on_the_bastion() {
    let site = Site::start(2, false, &[]);
    assert!(!site.reachable_directly("inner1"));
    let cfg = site.config_with(
        "proxy_config",
        &format!("Host inner*\n  {}\n", through_bastion(&site)),
    );
    let out = run_on(&cfg, "inner1,inner2");
    out.status(0);
    assert_eq!(out.host_lines("inner1", '|'), ["I am inner1"]);
    assert_eq!(out.host_lines("inner2", '|'), ["I am inner2"]);
    // One `ssh -W` per host: each logs in on the bastion, and on its own host.
    assert_eq!(site.accepted_logins("bastion"), 2);
    assert_eq!(site.accepted_logins("inner1"), 1);
    assert_eq!(site.accepted_logins("inner2"), 1);
    // `tether hosts` shows the route with its tokens expanded.
    Tether::new()
        .ssh_config(&cfg)
        .args(&["hosts", "inner1"])
        .run()
        .status(0)
        .stdout_contains(&format!(
            "proxy `ssh -F {} -o BatchMode=yes -W 127.0.0.11:22 bastion`",
            site.ssh_config().display()
        ));
}

#[test]
fn proxy_jump_and_proxy_command_the_first_obtained_wins() {
    let site = Site::start(1, false, &[]);
    let command = through_bastion(&site);
    // ProxyJump first: the ProxyCommand after it is never run (it would fail).
    let cfg = site.config_with(
        "jump_first",
        "Host inner1\n  ProxyJump bastion\n  ProxyCommand false\n",
    );
    assert_eq!(
        run_on(&cfg, "inner1").host_lines("inner1", '|'),
        ["I am inner1"]
    );
    // ProxyCommand first: the ProxyJump after it is ignored (`nowhere` does not exist).
    let cfg = site.config_with(
        "command_first",
        &format!("Host inner1\n  {command}\n  ProxyJump nowhere\n"),
    );
    assert_eq!(
        run_on(&cfg, "inner1").host_lines("inner1", '|'),
        ["I am inner1"]
    );
    // `-J` comes first, as on ssh's command line: the config's ProxyCommand is not run.
    let cfg = site.config_with("command_false", "Host inner1\n  ProxyCommand false\n");
    Tether::new()
        .ssh_config(&cfg)
        .args(&["-J", "bastion", "run", "--hosts", "inner1", "--", "echo ok"])
        .run()
        .status(0);
    // `ProxyCommand none` blocks a later ProxyJump: back to the direct route, which fails.
    let cfg = site.config_with(
        "command_none",
        "Host inner1\n  ProxyCommand none\n  ProxyJump bastion\n",
    );
    run_on(&cfg, "inner1")
        .status(3)
        .stdout_contains("cannot connect to 127.0.0.11:22");
    // A recipe's `via: "none"` is `ssh -J none`: the config's ProxyCommand still applies.
    let dir = site.path().join("via-none");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"inner1\", #{ roles: [\"app\"], via: \"none\" });\n\
         task(\"who\", || { on(\"app\", \"echo via $TETHER_HOST\"); });\n",
    )
    .unwrap();
    let cfg = site.config_with("command", &format!("Host inner1\n  {command}\n"));
    Tether::new()
        .ssh_config(&cfg)
        .current_dir(&dir)
        .arg("who")
        .run()
        .status(0)
        .stdout_contains("via inner1");
    assert_eq!(site.accepted_logins("inner1"), 4);

    // A jump host reached through its own ProxyCommand (the first hop of a route follows its
    // config): `ssh -W` to the bastion's own sshd, then the tunnel to inner1 through it.
    let before = site.accepted_logins("bastion");
    let cfg = site.config_with(
        "jump_through_command",
        &format!("Host bastion\n  {command}\nHost inner1\n  ProxyJump bastion\n"),
    );
    assert_eq!(
        run_on(&cfg, "inner1").host_lines("inner1", '|'),
        ["I am inner1"]
    );
    assert_eq!(site.accepted_logins("bastion"), before + 2);
    assert_eq!(site.accepted_logins("inner1"), 5);
}

#[test]
fn a_failing_proxy_command_names_host_status_and_stderr() {
    let lab = Lab::start(2);
    let lab_cfg = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let cfg = lab.dir().join("failing");
    std::fs::write(
        &cfg,
        format!(
            "Host host1\n  ProxyCommand sh -c 'echo \"proxy: no route to %h port %p\" >&2; \
             echo second line >&2; exit 7'\n{lab_cfg}"
        ),
    )
    .unwrap();
    let port = lab.host("host1").port;
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "host1,host2", "--", "echo reached"])
        .run();
    out.status(3).stdout_contains(&format!(
        "host1: ProxyCommand `sh -c 'echo \"proxy: no route to 127.0.0.1 port {port}\" >&2; \
         echo second line >&2; exit 7'` exited with status 7 before the SSH connection was set \
         up; its stderr ended with: proxy: no route to 127.0.0.1 port {port} | second line"
    ));
    // The other host of the run is not affected.
    assert_eq!(out.host_lines("host2", '|'), ["reached"]);
    assert_eq!(lab.accepted_logins("host1"), 0);

    // OpenSSH's own client as the proxy, to a bastion that does not exist.
    std::fs::write(
        &cfg,
        format!(
            "Host host1\n  ProxyCommand ssh -F /dev/null -o BatchMode=yes -W %h:%p \
             nosuch.invalid\n{lab_cfg}"
        ),
    )
    .unwrap();
    run_on(&cfg, "host1")
        .status(3)
        .stdout_contains("exited with status 255 before the SSH connection was set up")
        .stdout_contains("Could not resolve hostname nosuch.invalid");

    // A command that cannot be started at all.
    std::fs::write(
        &cfg,
        format!("Host host1\n  ProxyCommand /nonexistent/proxy\n{lab_cfg}"),
    )
    .unwrap();
    run_on(&cfg, "host1")
        .status(3)
        .stdout_contains("host1: ProxyCommand `/nonexistent/proxy` exited with status 127");
    // A shell ($SHELL) that cannot be started is named as such (stop 36 tester t17: the
    // message read as if the proxy command were missing).
    Tether::new()
        .ssh_config(&cfg)
        .env("SHELL", "/nonexistent/shell")
        .args(&["run", "--hosts", "host1", "--", "true"])
        .run()
        .status(3)
        .stdout_contains("could not be started: its shell /nonexistent/shell ($SHELL): No such file or directory");

    // A proxy that reaches something else than an SSH server (an HTTP proxy's answer): what
    // came is the reason, whether the proxy then waits or exits (stop 36 tester t17: "exited
    // with status 143", tether having ended it, or "exited with status 0").
    for (end, said) in [
        ("sleep 30", "sent no SSH banner within 2.0 s (ConnectTimeout), only \"HTTP/1.1 400 Bad Request\": not an SSH server?"),
        ("exit 0", "closed the connection before sending its SSH banner (it said \"HTTP/1.1 400 Bad Request\")"),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "Host host1\n  ConnectTimeout 2\n  ProxyCommand sh -c 'echo \"HTTP/1.1 400 Bad Request\"; {end}'\n{lab_cfg}"
            ),
        )
        .unwrap();
        run_on(&cfg, "host1")
            .status(3)
            .stdout_contains(said)
            .stdout_contains("through its ProxyCommand")
            .stdout_lacks("exited with status");
    }
}

/// Through a proxy command, a changed host key, an unknown one and refused authentication
/// are said as such, as without one (fresh-eyes finding: each was "ProxyCommand ... exited
/// with status 0 before the SSH connection was set up", the proxy having exited only because
/// tether closed its end).
#[test]
fn through_a_proxy_command_the_servers_answer_is_the_reason() {
    let lab = Lab::start(2);
    let proxied = lab_proxy_config(&lab);
    let known = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let port = |h: &str| format!("[127.0.0.1]:{} ", lab.host(h).port);
    // host1's entry holds host2's key.
    let host2_key = known
        .lines()
        .find_map(|l| l.strip_prefix(&port("host2")))
        .unwrap()
        .to_string();
    let changed = lab.dir().join("changed_known_hosts");
    std::fs::write(
        &changed,
        format!(
            "{}{host2_key}\n{}",
            port("host1"),
            known
                .lines()
                .find(|l| l.starts_with(&port("host2")))
                .unwrap()
        ),
    )
    .unwrap();
    let unknown = lab.dir().join("unknown_known_hosts");
    std::fs::write(&unknown, "").unwrap();
    let with = |name: &str, extra: String| {
        let cfg = lab.dir().join(name);
        std::fs::write(
            &cfg,
            format!(
                "Host host1\n{extra}{}",
                std::fs::read_to_string(&proxied).unwrap()
            ),
        )
        .unwrap();
        cfg
    };
    for (cfg, says) in [
        (
            with(
                "proxied_changed",
                format!("  UserKnownHostsFile {}\n", changed.display()),
            ),
            "host1: HOST KEY CHANGED for ",
        ),
        (
            with(
                "proxied_unknown",
                format!(
                    "  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
                    unknown.display()
                ),
            ),
            "host1: host key for ",
        ),
        (
            with("proxied_user", "  User nobody-here\n".into()),
            "host1: authentication failed for user nobody-here",
        ),
    ] {
        let out = run_on(&cfg, "host1");
        out.status(3)
            .stdout_contains(says)
            .stdout_lacks("ProxyCommand");
    }
    assert_eq!(lab.accepted_logins("host1"), 0);
}

/// Proxy processes of this test (children of this process whose command line names `marker`).
fn proxies(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me) && String::from_utf8_lossy(&cmdline).contains(marker)
        })
        .collect()
}

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

/// host1 reached through `ssh -W` on host2 (both lab hosts).
fn lab_proxy_config(lab: &Lab) -> PathBuf {
    let cfg = lab.dir().join("proxy_config");
    std::fs::write(
        &cfg,
        format!(
            "Host host1\n  ProxyCommand ssh -F {} -o BatchMode=yes -W %h:%p host2\n{}",
            lab.ssh_config().display(),
            std::fs::read_to_string(lab.ssh_config()).unwrap()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn the_heartbeat_keeps_a_proxied_session_alive_under_client_alive() {
    // An unserviced connection dies after about 6 s; the session stays idle for 9 s.
    let lab = Lab::builder().profile("clientalive").start();
    let cfg = lab_proxy_config(&lab);
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["host1"]);
    h.idle(Duration::from_secs(9));
    assert_eq!(
        answers(&h.run(&["host1"], "echo alive")),
        ["alive"],
        "{}",
        h.story()
    );
    assert_eq!(
        h.count("host1", |k| matches!(k, EventKind::Reconnected { .. })),
        0,
        "{}",
        h.story()
    );
    assert!(
        h.count("host1", |k| matches!(k, EventKind::Heartbeat { .. })) >= 2,
        "{}",
        h.story()
    );
    assert_eq!(lab.accepted_logins("host1"), 1);
    assert_eq!(lab.accepted_logins("host2"), 1);
}

#[test]
fn a_killed_proxy_is_reaped_and_replaced_by_a_new_one() {
    let lab = Lab::start(2);
    let cfg = lab_proxy_config(&lab);
    let marker = lab.ssh_config().display().to_string();
    let mut h = Harness::new(&cfg, WorkerSettings::default(), &["host1"]);
    let first = proxies(&marker);
    assert_eq!(first.len(), 1, "{first:?}");
    let mark = h.mark();
    // SAFETY: kill(2) on a child process of this test.
    unsafe { libc::kill(first[0] as i32, libc::SIGKILL) };
    h.wait_for_since(mark, Duration::from_secs(10), |e| {
        &*e.host == "host1" && matches!(e.kind, EventKind::Reconnected { .. })
    })
    .unwrap_or_else(|| panic!("host1 did not reconnect\n{}", h.story()));
    assert_eq!(answers(&h.run(&["host1"], "echo again")), ["again"]);
    let second = proxies(&marker);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
    // The killed one was reaped: no zombie is left under this pid.
    assert!(
        !Path::new(&format!("/proc/{}", first[0])).exists(),
        "proxy {} was not reaped",
        first[0]
    );
    assert_eq!(lab.accepted_logins("host1"), 2);
    // When the pool goes, its proxy goes (SIGHUP to its process group, then reaped).
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !proxies(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(proxies(&marker).is_empty());
    assert!(!Path::new(&format!("/proc/{}", second[0])).exists());
}

#[test]
fn a_stdlib_deploy_and_check_through_a_proxy_command() {
    let site = Site::start(1, false, &[]);
    let cfg = site.config_with(
        "proxy_config",
        &format!("Host inner1\n  {}\n", through_bastion(&site)),
    );
    let dir = site.path().join("stdlib-recipe");
    let base = site.path().join("deployed");
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.html"), "<title>proxied</title>\n").unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        format!(
            r#"
import "deploy" as deploy;
set("application", "proxied");
set("strategy", "copy");
set("copy_source", "public");
set("deploy_to", "{base}");
server("inner1", #{{ roles: ["web"] }});
"#,
            base = base.display()
        ),
    )
    .unwrap();
    Tether::new()
        .ssh_config(&cfg)
        .current_dir(&dir)
        .arg("deploy")
        .run()
        .status(0)
        .stdout_contains("▶ deploy:publishing");
    assert_eq!(
        std::fs::read_to_string(base.join("current/index.html")).unwrap(),
        "<title>proxied</title>\n"
    );
    assert_eq!(site.accepted_logins("inner1"), 1);
    Tether::new()
        .ssh_config(&cfg)
        .current_dir(&dir)
        .arg("check")
        .run()
        .status(0)
        .stdout_contains("check: 1 host, 0 at risk, 0 unreachable");
    assert_eq!(site.accepted_logins("inner1"), 2);
}

/// A `User` whose expansion brings shell syntax is refused before anything runs, as ssh.c
/// refuses it, so `%r` in a ProxyCommand cannot run it (stop 44 tester t55: `User ${EVIL}`
/// with `EVIL='x$(touch ...)'` created the file).
#[test]
fn a_user_whose_expansion_brings_shell_syntax_is_refused() {
    let lab = Lab::start(1);
    let planted = lab.dir().join("pwned");
    let cfg = lab.dir().join("evil_user_config");
    std::fs::write(
        &cfg,
        format!(
            "Host tt\n  HostName 127.0.0.1\n  Port {}\n  User ${{EVIL_USER}}\n  \
             ProxyCommand true %r; exec nc %h %p\n",
            lab.host("host1").port
        ),
    )
    .unwrap();
    let evil = format!("x$(touch {})", planted.display());
    Tether::new()
        .ssh_config(&cfg)
        .env("EVIL_USER", &evil)
        .args(&["run", "--hosts", "tt", "--", "true"])
        .run()
        .status(2)
        .stdout_contains("which has characters ssh refuses in a user");
    assert!(!planted.exists(), "the user's shell syntax ran");
}
