//! The seed scenario as a recipe: web hosts busy for twice the servers' idle limit while the
//! resque hosts wait, then a step on every host. tether's reason to exist.

use crate::support;

use support::lab::Lab;
use support::tether::{Output, Tether};

const HOSTS: [&str; 4] = ["web1", "web2", "resque1", "resque2"];

const RECIPE: &str = r#"
server("web1", #{ roles: ["web", "app"] });
server("web2", #{ roles: ["web", "app"] });
server("resque1", #{ roles: ["app", "resque"] });
server("resque2", #{ roles: ["app", "resque"] });
task("one", "Long precompile on web only", || { on("web", "sleep 12"); });
task("two", "A step on every host", || { on("all", "echo step two on $(cat /srv/name)"); });
"#;

fn run_seed(profile: &str, extra: &[&str]) -> (Lab, Output) {
    let lab = Lab::builder().names(&HOSTS).profile(profile).start();
    for h in lab.hosts() {
        std::fs::write(h.root_dir.join("name"), &h.name).unwrap();
    }
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.rhai"), RECIPE).unwrap();
    let out = Tether::new()
        .current_dir(&dir)
        .ssh_config(&lab.ssh_config())
        .args(extra)
        .args(&["one", "two"])
        .run();
    (lab, out)
}

fn assert_kept_alive(lab: &Lab, out: &Output) {
    out.status(0);
    for h in HOSTS {
        assert_eq!(
            out.host_lines(h, '|'),
            [format!("step two on {h}")],
            "{}",
            out.stdout
        );
        // One authenticated connection per host for the whole run: no hidden reconnects.
        assert_eq!(lab.accepted_logins(h), 1, "{h}\n{}", out.stdout);
    }
    out.stdout_lacks("reconnected");
}

#[test]
fn idle_hosts_survive_client_alive_limits_with_the_default_heartbeat() {
    let (lab, out) = run_seed("clientalive", &["-v"]);
    assert_kept_alive(&lab, &out);
    // The idle resque hosts were serviced (the server's probes triggered heartbeats), which
    // only -v shows line by line.
    out.stdout_contains("resque1 ~ idle, kept alive: heartbeat");
}

#[test]
fn idle_hosts_survive_unused_connection_timeout_with_a_short_heartbeat() {
    let (lab, out) = run_seed("unused", &["--keepalive", "1s", "-v"]);
    assert_kept_alive(&lab, &out);
    out.stdout_contains("resque2 ~ idle, kept alive: heartbeat");
}

#[test]
fn without_keepalive_the_idle_hosts_lose_their_sessions() {
    let (_lab, out) = run_seed("clientalive", &["--no-keepalive"]);
    out.status(3)
        .stderr_contains("resque1: connection lost while idle")
        .stderr_contains("resque2: connection lost while idle");
    assert!(out.host_lines("resque1", '|').is_empty(), "{}", out.stdout);
    assert_eq!(out.host_lines("web1", '|'), ["step two on web1"]);
}
