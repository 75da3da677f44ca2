//! Smoke tests of the sshd test lab itself (tests/support/lab.rs and
//! scripts/lab), with the system `ssh` client only: they do not use the
//! tether crate.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::lab::Lab;

fn alive(pid: u32) -> bool {
    // A zombie is dead; its /proc entry goes once pid 1 reaps it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_hosts_have_their_own_srv_and_logs() {
    let lab = Lab::start(2);
    assert_eq!(lab.hosts().len(), 2);

    let out = Command::new("ssh")
        .arg("-F")
        .arg(lab.ssh_config())
        .args(["-o", "BatchMode=yes", "host1", "echo hi; touch /srv/mark"])
        .output()
        .expect("run ssh");
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    assert!(lab.host("host1").root_dir.join("mark").exists());
    assert!(!lab.host("host2").root_dir.join("mark").exists());
    assert!(
        !Path::new("/srv/mark").exists(),
        "the real /srv was touched"
    );
    assert_eq!(lab.accepted_logins("host1"), 1);
    assert_eq!(lab.accepted_logins("host2"), 0);

    let pids: Vec<u32> = lab.hosts().iter().map(|h| h.pid).collect();
    assert!(pids.iter().all(|&p| alive(p)));
    let dir = lab.dir().to_path_buf();
    drop(lab);

    for &pid in &pids {
        assert!(!alive(pid), "sshd {pid} survived the drop");
    }
    // Zombies are reaped by pid 1 (about every 2 s here): wait for /proc to forget them.
    wait_until(
        "the listeners' /proc entries to go",
        Duration::from_secs(10),
        || {
            pids.iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists())
        },
    );
    assert!(!dir.exists(), "lab dir {} left behind", dir.display());
}

#[test]
fn builder_names_profile_home_and_known_hosts() {
    let lab = Lab::builder()
        .names(&["web1", "web2", "db"])
        .profile("clientalive")
        .start();
    let names: Vec<&str> = lab.hosts().iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "db"]);

    let config = std::fs::read_to_string(lab.host("db").sshd_config.clone()).unwrap();
    assert!(config.contains("ClientAliveInterval 1"), "{config}");

    let known_hosts = std::fs::read_to_string(lab.known_hosts()).unwrap();
    for host in lab.hosts() {
        assert!(
            known_hosts.contains(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", host.port)),
            "{known_hosts}"
        );
    }
    assert!(lab.client_key().exists());

    // Root's ~/.bashrc (pyenv) is not run: HOME is the host's empty lab home.
    let out = lab
        .ssh("web2")
        .arg("echo $HOME; echo \"[${PYENV_ROOT:-}]\"")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!("{}\n[]\n", lab.host("web2").home.display());
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn kill_connections_and_stop_host() {
    let lab = Lab::start(2);
    assert!(lab.connection_pids("host1").is_empty());

    let mut client = lab
        .ssh("host1")
        .arg("sleep 30")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "a logged-in connection on host1",
        Duration::from_secs(10),
        || lab.accepted_logins("host1") == 1 && lab.connection_pids("host1").len() == 1,
    );
    // The remote `sleep 30` is a process of host1 too (listener, connection, sleep).
    wait_until(
        "the remote command to start",
        Duration::from_secs(10),
        || lab.host_pids("host1").len() >= 3,
    );

    let started = Instant::now();
    lab.kill_connections("host1");
    let status = client.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(255),
        "ssh should see its connection die"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(lab.connection_pids("host1").is_empty());

    // The listener still accepts new connections.
    let out = lab.ssh("host1").arg("true").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lab.accepted_logins("host1"), 2);

    // A stopped host refuses connections; the other one is untouched.
    let pid2 = lab.host("host2").pid;
    lab.stop_host("host2");
    assert!(!alive(pid2));
    assert!(!lab.is_up("host2"));
    assert!(lab.host_pids("host2").is_empty());
    let out = lab.ssh("host2").arg("true").output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(lab.is_up("host1"));

    // Drop kills the orphaned `sleep 30` of host1 as well.
    let host1_pids = lab.host_pids("host1");
    drop(lab);
    for pid in host1_pids {
        assert!(!alive(pid), "process {pid} of host1 survived the drop");
    }
}
