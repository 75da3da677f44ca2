//! One sshd host in a network namespace of its own, reachable from this machine only through a
//! veth pair in a private /30 (`10.250.X.Y`), so that a test can cut it off with nftables as a
//! dead network would: packets dropped, no RST, no FIN.
//!
//! ```ignore
//! let host = NetnsHost::start("far", &["ClientAliveInterval 5"]);
//! // tether -F host.ssh_config() ... far
//! host.blackhole(); // every packet in and out of the namespace is dropped from now on
//! // dropping `host` kills its processes (by pid) and deletes the namespace and the veth pair
//! ```
//!
//! The addresses exist only on the veth pair created here (host side `.1`, namespace side
//! `.2`); nothing is routed off this machine. The drop rules live in the namespace's own
//! nftables ruleset, so they vanish with it and never touch the machine's firewall.
//!
//! Needs root, `ip` (iproute2), `nft`, `/usr/sbin/sshd`, `ssh-keygen`.

use super::net::{claim_subnet, ip, nft_load, run, signal, SIGKILL};
use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// An sshd in its own network namespace; see the module docs.
#[derive(Debug)]
pub struct NetnsHost {
    /// The ssh config alias of the host.
    pub name: String,
    /// Network namespace name (`ip netns`).
    pub netns: String,
    /// The host-side end of the veth pair.
    veth: String,
    /// sshd's address, inside the namespace.
    pub addr: Ipv4Addr,
    /// Working directory (keys, configs, log, home); removed on drop.
    pub dir: PathBuf,
    /// sshd's log (`-e`, `LogLevel VERBOSE`).
    pub log: PathBuf,
    sshd: Option<Child>,
}

impl NetnsHost {
    /// Creates the namespace and veth pair, starts sshd in it (with `extra` sshd_config
    /// lines) and returns once it accepts TCP connections. Panics with the exact error of the
    /// step that failed.
    pub fn start(name: &str, extra: &[&str]) -> NetnsHost {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let netns = format!("tether-{pid}-{n}");
        let veth = format!("tt{pid}h{n}");
        let peer = format!("tt{pid}n{n}");
        assert!(veth.len() <= 15 && peer.len() <= 15, "veth name too long");
        let dir = std::env::temp_dir().join(format!("tether-netns-{pid}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("home")).expect("create netns host dir");
        let mut host = NetnsHost {
            name: name.to_string(),
            netns: netns.clone(),
            veth: veth.clone(),
            addr: Ipv4Addr::UNSPECIFIED,
            log: dir.join("sshd.log"),
            dir,
            sshd: None,
        };
        // From here on, Drop cleans up whatever was created.
        for step in [
            &["netns", "add", &netns][..],
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &netns,
            ],
        ] {
            ip(step).unwrap_or_else(|e| panic!("network namespace setup failed: {e}"));
        }
        let (_, addr) = claim_subnet(250, &veth, pid as usize * 7 + n);
        host.addr = addr.parse().expect("claimed address");
        let peer_cidr = format!("{addr}/30");
        let steps: [&[&str]; 4] = [
            &["link", "set", &veth, "up"],
            &["-n", &netns, "addr", "add", &peer_cidr, "dev", &peer],
            &["-n", &netns, "link", "set", &peer, "up"],
            &["-n", &netns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                panic!("network namespace setup failed: {e}");
            }
        }
        host.start_sshd(extra);
        host
    }

    fn start_sshd(&mut self, extra: &[&str]) {
        let d = self.dir.clone();
        for (key, comment) in [("host_key", "host"), ("client_key", "client")] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("tether-netns-{comment}"))
                .arg("-f")
                .arg(d.join(key)))
            .unwrap_or_else(|e| panic!("{e}"));
        }
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        fs::create_dir_all("/run/sshd").unwrap();
        let config = format!(
            "ListenAddress {addr}\nPort 22\nHostKey {d}/host_key\nPidFile none\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AuthorizedKeysFile {d}/authorized_keys\nLogLevel VERBOSE\nSetEnv HOME={d}/home\n{}\n",
            extra.join("\n"),
            addr = self.addr,
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        fs::write(
            d.join("known_hosts"),
            format!("{} {} {}\n", self.addr, key[0], key[1]),
        )
        .unwrap();
        fs::write(
            d.join("ssh_config"),
            format!(
                "Host {}\n  HostName {}\n  Port 22\n  User root\n  IdentityFile {d}/client_key\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
                 StrictHostKeyChecking yes\n  ConnectTimeout 2\n",
                self.name,
                self.addr,
                d = d.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(&self.log).unwrap();
        // `ip netns exec` enters the namespace and execs sshd: the child's pid is sshd's.
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
            ])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd in {}: {e}", self.netns));
        self.sshd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let target = SocketAddr::from((self.addr, 22));
        while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
            if let Some(Ok(Some(status))) = self.sshd.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "sshd in {} exited ({status}): {}",
                    self.netns,
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sshd in {} not listening on {target} after 5 s",
                self.netns
            );
            sleep(Duration::from_millis(20));
        }
    }

    /// `ssh_config` with one `Host NAME` block (ConnectTimeout 2).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// Successful logins so far ("Accepted publickey for" lines in sshd's log).
    pub fn accepted_logins(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Accepted publickey for ")
            .count()
    }

    /// Drops every packet into and out of the namespace from now on (nftables in the
    /// namespace): established connections and new ones see silence, no reset.
    pub fn blackhole(&self) {
        let rules = "table inet tether_blackhole {\n\
                     chain input { type filter hook input priority -300; policy drop; }\n\
                     chain output { type filter hook output priority -300; policy drop; }\n\
                     }\n";
        nft_load(&self.netns, rules);
    }

    /// Lifts [`NetnsHost::blackhole`]: packets flow again (connections that survived the
    /// silence go on).
    pub fn lift_blackhole(&self) {
        if let Err(e) = run(Command::new("ip").args([
            "netns",
            "exec",
            &self.netns,
            "nft",
            "delete",
            "table",
            "inet",
            "tether_blackhole",
        ])) {
            panic!("lifting the blackhole failed: {e}");
        }
    }

    /// pids of every process in the namespace.
    fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

impl Drop for NetnsHost {
    fn drop(&mut self) {
        // Never panics. Processes first (by pid), then the veth pair and the namespace.
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let _ = writeln!(
                std::io::stderr(),
                "--- netns host {} ({}) {}:\n{log}",
                self.name,
                self.addr,
                path_str(&self.log)
            );
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                signal(pid, SIGKILL);
            }
            sleep(Duration::from_millis(20));
        }
        if let Some(mut child) = self.sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}
