//! A fleet larger than the soft open-files limit allows at three descriptors per host: tether
//! raises its soft limit to the hard one, so the run does not end in "Too many open files".

use crate::support;

use std::os::unix::process::CommandExt as _;

use support::lab::Lab;
use support::tether::Tether;

#[test]
fn a_run_over_more_hosts_than_the_soft_open_files_limit_allows() {
    let lab = Lab::start(3);
    let dir = tempfile::tempdir().unwrap();
    // 30 aliases, at most 10 per sshd (its MaxStartups), each a session of its own.
    let mut config = String::new();
    for i in 1..=30 {
        let host = lab.host(&format!("host{}", i % 3 + 1));
        config.push_str(&format!(
            "Host a{i:02}\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentitiesOnly yes\n  \
             IdentityFile {}\n  UserKnownHostsFile {}\n",
            host.port,
            lab.client_key().display(),
            lab.known_hosts().display()
        ));
    }
    let path = dir.path().join("fleet.config");
    std::fs::write(&path, config).unwrap();
    let hosts: Vec<String> = (1..=30).map(|i| format!("a{i:02}")).collect();
    let mut cmd = Tether::new()
        .ssh_config(&path)
        .args(&["run", "--hosts", &hosts.join(","), "--", "echo here"])
        .command();
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe. A soft
    // limit of 48 descriptors is less than 30 hosts need; the hard limit stays as it is.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = 48;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run tether");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for h in &hosts {
        assert!(
            stdout.contains(&format!("{h} | here")),
            "{h}:\n{stdout}\n{stderr}"
        );
    }
}
