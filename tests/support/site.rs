//! A private network behind a bastion, for ProxyJump tests: sshd processes in network
//! namespaces that this machine cannot reach except through the bastion.
//!
//! ```text
//!  this machine ──veth 10.251.X.1/30──▶ netns "outer": bastion  sshd on 10.251.X.2:22
//!                                                      inner1..N sshd on 127.0.0.(10+i):22
//!                                        └─veth 10.252.0.1/30──▶ netns "deep" (optional):
//!                                                      bastion2 sshd on 10.252.0.2:22
//!                                                      deep1    sshd on 127.0.0.10:22
//! ```
//!
//! The inner hosts listen on the loopback of their namespace: only processes in that
//! namespace (the bastion's sshd opening a `direct-tcpip` channel) reach them. From this
//! machine, `127.0.0.11:22` is this machine's own loopback, where nothing listens: the direct
//! route is refused. `deep` is linked to `outer` only (no forwarding anywhere), so `bastion2`
//! and `deep1` are reachable only through `bastion`, then `bastion2`.
//!
//! Every sshd has its own host key and log (`LogLevel VERBOSE`: "Accepted publickey" lines
//! count logins) and `SetEnv TETHER_HOST=<name>`, so `echo $TETHER_HOST` says which host
//! answered. One client key, one known_hosts (by address, port 22: `127.0.0.11 ssh-ed25519
//! ...`), one ssh_config (`Host NAME` blocks, no ProxyJump: tests add their own with
//! [`Site::config_with`]). Dropping the site kills its processes (by pid, from `ip netns
//! pids`) and deletes the namespaces and veth pairs.
//!
//! Needs root, `ip` (iproute2), `/usr/sbin/sshd`, `ssh-keygen`.

use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::net::{claim_subnet, ip, nft_load, run, signal, SIGKILL};

/// One sshd of the site.
#[derive(Debug)]
pub struct Sshd {
    /// ssh config alias.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// Listen address (port 22).
    pub addr: String,
    /// sshd's log.
    pub log: PathBuf,
    /// The `ssh-ed25519 AAAA...` public host key.
    pub host_key: String,
    child: Child,
}

/// See the module docs.
#[derive(Debug)]
pub struct Site {
    /// Working directory (keys, configs, logs); removed on drop.
    pub dir: PathBuf,
    namespaces: Vec<String>,
    host_veth: Option<String>,
    sshds: Vec<Sshd>,
}

impl Site {
    /// `inner` hosts (`inner1..`) behind `bastion`; with `deep`, also `bastion2` and `deep1`
    /// one hop further. `bastion_extra` lines go into the bastion's sshd_config (for example
    /// `ClientAliveInterval 1`).
    pub fn start(inner: usize, deep: bool, bastion_extra: &[&str]) -> Site {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("tether-site-{pid}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("site dir");
        let mut site = Site {
            dir,
            namespaces: Vec::new(),
            host_veth: None,
            sshds: Vec::new(),
        };
        // From here on, Drop cleans up whatever was created.
        let outer = format!("tj{pid}o{n}");
        let veth = format!("tj{pid}h{n}");
        let peer = format!("tj{pid}p{n}");
        assert!(veth.len() <= 15 && peer.len() <= 15, "veth name too long");
        site.add_netns(&outer);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &outer,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        site.host_veth = Some(veth.clone());
        let (_host_addr, bastion_addr) = claim_subnet(251, &veth, pid as usize * 13 + n * 3);
        for step in [
            vec!["link", "set", &veth, "up"],
            vec![
                "-n",
                &outer,
                "addr",
                "add",
                &format!("{bastion_addr}/30"),
                "dev",
                &peer,
            ],
            vec!["-n", &outer, "link", "set", &peer, "up"],
        ] {
            ip(&step).unwrap_or_else(|e| panic!("{e}"));
        }
        let dir = site.dir.clone();
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "tether-site-client",
                "-f",
            ])
            .arg(dir.join("client_key")))
        .unwrap_or_else(|e| panic!("{e}"));
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        fs::create_dir_all("/run/sshd").unwrap();

        site.start_sshd("bastion", &outer, &bastion_addr, bastion_extra);
        for i in 1..=inner {
            site.start_sshd(
                &format!("inner{i}"),
                &outer,
                &format!("127.0.0.{}", 10 + i),
                &[],
            );
        }
        if deep {
            let deep_ns = format!("tj{pid}d{n}");
            let a = format!("tj{pid}a{n}");
            let b = format!("tj{pid}b{n}");
            site.add_netns(&deep_ns);
            for step in [
                vec![
                    "-n", &outer, "link", "add", &a, "type", "veth", "peer", "name", &b, "netns",
                    &deep_ns,
                ],
                vec!["-n", &outer, "addr", "add", "10.252.0.1/30", "dev", &a],
                vec!["-n", &outer, "link", "set", &a, "up"],
                vec!["-n", &deep_ns, "addr", "add", "10.252.0.2/30", "dev", &b],
                vec!["-n", &deep_ns, "link", "set", &b, "up"],
            ] {
                ip(&step).unwrap_or_else(|e| panic!("{e}"));
            }
            site.start_sshd("bastion2", &deep_ns, "10.252.0.2", &[]);
            site.start_sshd("deep1", &deep_ns, "127.0.0.10", &[]);
        }
        site.write_files();
        site
    }

    fn add_netns(&mut self, name: &str) {
        ip(&["netns", "add", name]).unwrap_or_else(|e| panic!("{e}"));
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"]).unwrap_or_else(|e| panic!("{e}"));
    }

    fn start_sshd(&mut self, name: &str, netns: &str, addr: &str, extra: &[&str]) {
        let d = self.dir.clone();
        let key = d.join(format!("{name}_host_key"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("tether-site-{name}"))
            .arg("-f")
            .arg(&key))
        .unwrap_or_else(|e| panic!("{e}"));
        let home = d.join(format!("home_{name}"));
        fs::create_dir_all(&home).unwrap();
        let config = d.join(format!("{name}_sshd_config"));
        fs::write(
            &config,
            format!(
                "ListenAddress {addr}\nPort 22\nHostKey {key}\nPidFile none\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {d}/authorized_keys\nLogLevel VERBOSE\n\
                 Subsystem sftp internal-sftp\n\
                 SetEnv HOME={home} TETHER_HOST={name}\n{}\n",
                extra.join("\n"),
                key = key.display(),
                d = d.display(),
                home = home.display(),
            ),
        )
        .unwrap();
        let log = d.join(format!("{name}.log"));
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&config)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd {name} in {netns}: {e}"));
        let host_key = fs::read_to_string(format!("{}.pub", key.display()))
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        self.sshds.push(Sshd {
            name: name.to_string(),
            netns: netns.to_string(),
            addr: addr.to_string(),
            log,
            host_key,
            child,
        });
        self.wait_listening(name);
    }

    /// Waits until `name`'s sshd accepts connections (checked from inside its namespace).
    fn wait_listening(&mut self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.sshds.iter_mut().find(|s| s.name == name).unwrap();
            let listening = ip(&["netns", "exec", &s.netns, "ss", "-Htln", "sport = :22"])
                .unwrap_or_default()
                .contains(&format!("{}:22", s.addr));
            if listening {
                return;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!(
                    "sshd {name} exited ({status}): {}",
                    fs::read_to_string(&s.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sshd {name} not listening after 5 s"
            );
            sleep(Duration::from_millis(20));
        }
    }

    fn host_block(&self, s: &Sshd) -> String {
        format!(
            "Host {}\n  HostName {}\n  Port 22\n  User root\n  IdentityFile {d}/client_key\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
             StrictHostKeyChecking yes\n  ConnectTimeout 3\n",
            s.name,
            s.addr,
            d = self.dir.display()
        )
    }

    fn write_files(&self) {
        let known: String = self
            .sshds
            .iter()
            .map(|s| format!("{} {}\n", s.addr, s.host_key))
            .collect();
        fs::write(self.known_hosts(), known).unwrap();
        fs::write(self.ssh_config(), self.config_text("")).unwrap();
    }

    fn config_text(&self, prefix: &str) -> String {
        let mut text = String::from(prefix);
        for s in &self.sshds {
            text.push('\n');
            text.push_str(&self.host_block(s));
        }
        text
    }

    /// The ssh config: one `Host NAME` block per sshd, no ProxyJump.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// Writes `file` in the site dir: `prefix` (for example `Host inner*\n  ProxyJump
    /// bastion\n`, first match wins) followed by the site's `Host` blocks; returns its path.
    pub fn config_with(&self, file: &str, prefix: &str) -> PathBuf {
        let path = self.dir.join(file);
        fs::write(&path, self.config_text(prefix)).unwrap();
        path
    }

    /// The known_hosts file every `Host` block uses.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The sshd named `name`.
    pub fn sshd(&self, name: &str) -> &Sshd {
        self.sshds
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no sshd {name} in the site"))
    }

    /// Successful logins on `name` so far.
    pub fn accepted_logins(&self, name: &str) -> usize {
        fs::read_to_string(&self.sshd(name).log)
            .unwrap_or_default()
            .matches("Accepted publickey for ")
            .count()
    }

    /// The pid of `name`'s listening sshd.
    pub fn listener_pid(&self, name: &str) -> u32 {
        self.sshd(name).child.id()
    }

    /// pids of `name`'s per-connection sshd processes (the listener's live children).
    pub fn connection_pids(&self, name: &str) -> Vec<u32> {
        let listener = self.sshd(name).child.id();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| stat(pid).is_some_and(|(state, ppid)| ppid == listener && state != 'Z'))
            .collect()
    }

    /// SIGKILLs `name`'s connection processes, as if its connections were cut: clients see
    /// them close. The listener keeps accepting. Returns once they are gone.
    pub fn kill_connections(&self, name: &str) {
        let pids = self.connection_pids(name);
        for &pid in &pids {
            signal(pid, SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while pids
            .iter()
            .any(|&p| stat(p).is_some_and(|(state, _)| state != 'Z'))
            && Instant::now() < deadline
        {
            sleep(Duration::from_millis(10));
        }
    }

    /// Resets every established connection to `name`'s sshd (its address, port 22) from
    /// inside its namespace (`ss -K`: its end destroyed, a RST sent), as a firewall or NAT
    /// that forgot them does.
    pub fn reset_connections(&self, name: &str) {
        let s = self.sshd(name);
        run(Command::new("ip").args([
            "netns",
            "exec",
            &s.netns,
            "ss",
            "-K",
            "state",
            "established",
            "src",
            &format!("{}:22", s.addr),
        ]))
        .unwrap_or_else(|e| panic!("resetting {name}'s connections failed: {e}"));
    }

    /// Drops, from now on, every packet to and from `name`'s sshd as its namespace receives
    /// them (nftables' input hook): a connection to it waits for an answer that never comes
    /// (the bastion's sshd connecting to a host powered off behind a firewall), established
    /// ones see silence. Lifted with [`Site::lift_blackhole`].
    pub fn blackhole(&self, name: &str) {
        let s = self.sshd(name);
        let table = blackhole_table(name);
        let rules = format!(
            "table inet {table} {{\n\
             chain input {{ type filter hook input priority -300; \
             ip daddr {addr} tcp dport 22 drop; ip saddr {addr} tcp sport 22 drop; }}\n\
             }}\n",
            addr = s.addr
        );
        nft_load(&s.netns, &rules);
    }

    /// Drops, from now on, the packets of the one connection to `name`'s sshd from this
    /// machine's port `local_port`, as a firewall or NAT whose state was flushed does: that
    /// connection sees silence, new ones work. Lifted with [`Site::lift_blackhole`].
    pub fn drop_flow(&self, name: &str, local_port: u16) {
        let s = self.sshd(name);
        let table = blackhole_table(name);
        let rules = format!(
            "table inet {table} {{\n\
             chain input {{ type filter hook input priority -300; \
             ip daddr {addr} tcp dport 22 tcp sport {local_port} drop; \
             ip saddr {addr} tcp sport 22 tcp dport {local_port} drop; }}\n\
             }}\n",
            addr = s.addr
        );
        nft_load(&s.netns, &rules);
    }

    /// This machine's port of the connection process `pid` holds to `name`'s sshd, if one.
    pub fn local_port(&self, name: &str, pid: u32) -> Option<u16> {
        let peer = format!("{}:22", self.sshd(name).addr);
        let out = Command::new("ss").args(["-tnpH"]).output().ok()?;
        let owner = format!("pid={pid},");
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 5 && f[4] == peer && l.contains(&owner))
                .then(|| f[3].rsplit_once(':')?.1.parse().ok())
                .flatten()
        })
    }

    /// Lifts [`Site::blackhole`] for `name`.
    pub fn lift_blackhole(&self, name: &str) {
        let s = self.sshd(name);
        let table = blackhole_table(name);
        run(Command::new("ip").args([
            "netns", "exec", &s.netns, "nft", "delete", "table", "inet", &table,
        ]))
        .unwrap_or_else(|e| panic!("lifting the blackhole failed: {e}"));
    }

    /// Whether this machine reaches `name`'s sshd directly (it should not, except the
    /// bastion).
    pub fn reachable_directly(&self, name: &str) -> bool {
        let addr: SocketAddr = format!("{}:22", self.sshd(name).addr).parse().unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
    }

    /// An ed25519 public key (`ssh-ed25519 AAAA...`) no host of the site has.
    pub fn stranger_key(&self) -> String {
        let path = self.dir.join("stranger_key");
        if !path.exists() {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "stranger", "-f"])
                .arg(&path))
            .unwrap_or_else(|e| panic!("{e}"));
        }
        fs::read_to_string(format!("{}.pub", path.display()))
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Rewrites known_hosts with `key` recorded for `name` instead of its real key.
    pub fn record_wrong_key(&self, name: &str, key: &str) {
        let known: String = self
            .sshds
            .iter()
            .map(|s| {
                let k = if s.name == name { key } else { &s.host_key };
                format!("{} {k}\n", s.addr)
            })
            .collect();
        fs::write(self.known_hosts(), known).unwrap();
    }

    /// The site directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The nftables table of `name`'s blackhole (one per host: several may be cut at once).
fn blackhole_table(name: &str) -> String {
    format!("tether_blackhole_{name}")
}

fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

impl Drop for Site {
    fn drop(&mut self) {
        // Never panics. Processes first (by pid), then veth pairs and namespaces.
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            for s in &self.sshds {
                let log = fs::read_to_string(&s.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(30)..];
                let _ = writeln!(err, "--- site sshd {} ({}):", s.name, s.addr);
                for l in tail {
                    let _ = writeln!(err, "    {l}");
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut pids: Vec<u32> = Vec::new();
            for ns in &self.namespaces {
                pids.extend(
                    ip(&["netns", "pids", ns])
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                signal(pid, SIGKILL);
            }
            sleep(Duration::from_millis(20));
        }
        for s in &mut self.sshds {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        if let Some(v) = &self.host_veth {
            let _ = ip(&["link", "del", v]);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        if std::env::var_os("TETHER_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
