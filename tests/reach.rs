//! Servers that accept the TCP connection and then misbehave: silent, not SSH, a banner that
//! never ends, a key exchange that never starts, hanging up before the banner (sshd beyond
//! `MaxStartups`). Each fails its host within `ConnectTimeout` saying what the server did; a
//! hang-up before the banner is retried, so a burst against a real sshd with `MaxStartups 1`
//! connects every host.

use crate::support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::lab::Lab;
use support::tether::Tether;

/// A listener on 127.0.0.1 whose every connection is handed to `serve` on its own thread;
/// returns the port. The threads end with the test process.
fn listener(serve: impl Fn(TcpStream, usize) + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let serve = Arc::new(serve);
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let (serve, n) = (serve.clone(), count.fetch_add(1, Ordering::SeqCst));
            std::thread::spawn(move || serve(conn, n));
        }
    });
    port
}

fn hold(mut c: TcpStream) {
    let mut sink = [0u8; 1024];
    let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
    while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
}

/// Forwards a connection to `port` both ways until either side closes.
fn forward(client: TcpStream, port: u16) {
    let server = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let (mut c, mut s) = (client, server);
    let _ = std::io::copy(&mut s, &mut c);
    let _ = c.shutdown(Shutdown::Write);
    let _ = up.join();
}

fn block(name: &str, port: u16, extra: &str) -> String {
    format!("Host {name}\n  HostName 127.0.0.1\n  Port {port}\n{extra}")
}

#[test]
fn servers_that_set_up_no_session_fail_their_host_within_connect_timeout() {
    let lab = Lab::start(1);
    let silent = listener(|c, _| hold(c));
    let http = listener(|mut c, _| {
        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        hold(c)
    });
    // Pre-banner lines are allowed (RFC 4253 4.2), so an endless preamble is waited out.
    let preamble = listener(|mut c, _| {
        while c.write_all(b"hello there\r\n").is_ok() {
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let slow = listener(|mut c, _| {
        for b in b"SSH-2.0-OpenSSH_9.2\r\n" {
            if c.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(400));
        }
        hold(c)
    });
    let binary = listener(|mut c, _| {
        let _ = c.write_all(&[0u8, 1, 2, 0xff, 0xfe, b'\n']);
        hold(c)
    });
    let kex = listener(|mut c, _| {
        let _ = c.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        hold(c)
    });
    let refuses = listener(|c, _| drop(c));
    let said = listener(|mut c, _| {
        let _ = c.write_all(b"Exceeded MaxStartups\r\n");
    });
    let timeout = "  ConnectTimeout 2\n";
    let cfg = lab.dir().join("banner_config");
    let mut text = [
        block("silent", silent, timeout),
        block("http", http, timeout),
        block("preamble", preamble, timeout),
        block("slow", slow, timeout),
        block("binary", binary, timeout),
        block("kex", kex, timeout),
        block("hangup", refuses, timeout),
        block("said", said, timeout),
        // No ConnectTimeout: tether's default, 10 s.
        block("silentdefault", silent, ""),
        // The same through a proxy command's pipe.
        "Host proxysilent\n  ProxyCommand sleep 60\n  ConnectTimeout 2\n".to_string(),
        "Host proxyhttp\n  ProxyCommand sh -c 'echo HTTP/1.0 200; sleep 60'\n  ConnectTimeout 2\n"
            .to_string(),
    ]
    .concat();
    text.push_str(&std::fs::read_to_string(lab.ssh_config()).unwrap());
    std::fs::write(&cfg, text).unwrap();
    let hosts =
        "silent,http,preamble,slow,binary,kex,hangup,said,silentdefault,proxysilent,proxyhttp,host1";
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", hosts, "--", "echo alive"])
        .run();
    assert_eq!(out.host_lines("host1", '|'), ["alive"], "{}", out.stdout);
    out.status(3)
        .stdout_contains(&format!(
            "silent: 127.0.0.1:{silent} accepted the TCP connection but sent no SSH banner \
             within 2.0 s (ConnectTimeout)"
        ))
        .stdout_contains(&format!(
            "http: 127.0.0.1:{http} sent no SSH banner within 2.0 s (ConnectTimeout), only \
             \"HTTP/1.1 400 Bad Request Content-Length: 0\": not an SSH server?"
        ))
        .stdout_contains(&format!(
            "preamble: 127.0.0.1:{preamble} sent no SSH banner within 2.0 s (ConnectTimeout), \
             only \"hello there hello there"
        ))
        .stdout_contains(&format!(
            "slow: 127.0.0.1:{slow} sent only part of its SSH banner (\"SSH-2"
        ))
        .stdout_contains(&format!(
            "binary: 127.0.0.1:{binary} sent no SSH banner within 2.0 s"
        ))
        .stdout_contains(&format!(
            "kex: 127.0.0.1:{kex} sent its banner (SSH-2.0-OpenSSH_9.2) but the SSH key \
             exchange did not finish within 2.0 s (ConnectTimeout)"
        ))
        .stdout_contains(&format!(
            "hangup: 127.0.0.1:{refuses} closed the connection before sending its SSH banner, "
        ))
        .stdout_contains(&format!(
            "said: 127.0.0.1:{said} closed the connection before sending its SSH banner (it \
             said \"Exceeded MaxStartups\"), "
        ))
        .stdout_contains("tether retried until ConnectTimeout")
        .stdout_contains(&format!(
            "silentdefault: 127.0.0.1:{silent} accepted the TCP connection but sent no SSH \
             banner within 10.0 s (ConnectTimeout)"
        ))
        .stdout_contains(
            "proxysilent: proxysilent:22 sent nothing through the tunnel or proxy command within \
             2.0 s (ConnectTimeout): no SSH banner",
        )
        .stdout_contains(
            "proxyhttp: proxyhttp:22 (through its ProxyCommand) sent no SSH banner within 2.0 s (ConnectTimeout), only \
             \"HTTP/1.0 200\"",
        )
        .stderr_contains("11 of 12 hosts failed");
    // Every host is tried at once: the slowest is the 10 s default.
    assert!(
        out.elapsed >= Duration::from_secs(10) && out.elapsed < Duration::from_secs(16),
        "{:?}",
        out.elapsed
    );
}

/// A server that hangs up on the first connections before its banner (what sshd does beyond
/// `MaxStartups`) is connected on a later attempt, within ConnectTimeout.
#[test]
fn a_hang_up_before_the_banner_is_retried() {
    let lab = Lab::start(1);
    let sshd = lab.host("host1").port;
    for (first_drops, name) in [(1, "once"), (3, "thrice")] {
        let port = listener(move |mut c, n| {
            if n < first_drops {
                let _ = c.write_all(b"Exceeded MaxStartups\r\n");
            } else {
                forward(c, sshd)
            }
        });
        let cfg = lab.dir().join(format!("drop_{name}"));
        std::fs::write(
            &cfg,
            block(
                name,
                port,
                &format!(
                    "  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                     UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n",
                    lab.client_key().display(),
                    lab.dir().join(format!("known_hosts_{name}")).display()
                ),
            ),
        )
        .unwrap();
        let before = lab.accepted_logins("host1");
        Tether::new()
            .ssh_config(&cfg)
            .args(&["run", "--hosts", name, "--", "echo reached"])
            .run()
            .status(0)
            .stdout_contains(&format!("{name} | reached"));
        assert_eq!(lab.accepted_logins("host1"), before + 1);
    }
    // Behind a jump host (host1 itself), the tunnel is opened again.
    let port = listener(move |mut c, n| {
        if n < 2 {
            let _ = c.write_all(b"Exceeded MaxStartups\r\n");
        } else {
            forward(c, sshd)
        }
    });
    let cfg = lab.dir().join("drop_jump");
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{}  ProxyJump host1\n{base}",
            block(
                "viajump",
                port,
                &format!(
                    "  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                     UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n",
                    lab.client_key().display(),
                    lab.dir().join("known_hosts_viajump").display()
                ),
            )
        ),
    )
    .unwrap();
    let before = lab.accepted_logins("host1");
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "viajump", "--", "echo reached"])
        .run()
        .status(0)
        .stdout_contains("viajump | reached");
    // The jump host's login and the target's.
    assert_eq!(lab.accepted_logins("host1"), before + 2);
}

/// Two jump aliases of one address are two connections where their settings differ, as
/// they are two `ssh` commands: each host goes through its own jump alias's known_hosts,
/// identity and ProxyCommand, whichever connects first (stop 44 tester t53: jump connections
/// were shared by `user@host:port`, so a host went through the other alias's connection,
/// skipping its own host key check, identity or route, and which one depended on the order
/// of `--hosts`). Aliases alike share one.
#[test]
fn jump_aliases_of_one_address_with_other_settings_are_not_shared() {
    let lab = Lab::start(3);
    let port = |n: &str| lab.host(n).port;
    let stranger = lab.dir().join("stranger_key");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap()
        .success());
    let stranger_pub = std::fs::read_to_string(stranger.with_extension("pub")).unwrap();
    let stranger_pub: Vec<&str> = stranger_pub.split_whitespace().take(2).collect();
    let wrong_kh = lab.dir().join("known_hosts_wrong");
    std::fs::write(
        &wrong_kh,
        format!("[127.0.0.1]:{} {}\n", port("host2"), stranger_pub.join(" ")),
    )
    .unwrap();
    let common = |kh: &std::path::Path, key: &std::path::Path| {
        format!(
            "  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             StrictHostKeyChecking yes\n  ConnectTimeout 5\n",
            key.display(),
            kh.display()
        )
    };
    let good = common(&lab.known_hosts(), &lab.client_key());
    let cases = [
        // jB's known_hosts records another key for the jump host.
        (
            "hostkey",
            common(&wrong_kh, &lab.client_key()),
            "HOST KEY CHANGED",
        ),
        // jB's only identity is not authorized there.
        (
            "identity",
            common(&lab.known_hosts(), &stranger),
            "authentication failed",
        ),
        // jB is reached through a ProxyCommand that fails.
        (
            "route",
            format!("  ProxyCommand /bin/false\n{good}"),
            "ProxyCommand",
        ),
    ];
    for (what, jb, refused) in cases {
        let cfg = lab.dir().join(format!("jumps_{what}"));
        std::fs::write(
            &cfg,
            [
                block("jA", port("host2"), &good),
                block("jA2", port("host2"), &good),
                block("jB", port("host2"), &jb),
                block("a1", port("host1"), &format!("  ProxyJump jA\n{good}")),
                block("a2", port("host3"), &format!("  ProxyJump jA2\n{good}")),
                block("b1", port("host3"), &format!("  ProxyJump jB\n{good}")),
            ]
            .join(""),
        )
        .unwrap();
        for hosts in ["a1,b1", "b1,a1"] {
            let out = Tether::new()
                .ssh_config(&cfg)
                .args(&["run", "--hosts", hosts, "--", "echo reached"])
                .run();
            out.status(3)
                .stdout_contains("a1 | reached")
                .stdout_lacks("b1 | reached")
                .stdout_contains("b1: ");
            let b1 = out
                .stdout
                .lines()
                .find(|l| l.starts_with("b1: "))
                .unwrap_or_default()
                .to_string();
            assert!(
                b1.contains("jB") && b1.to_lowercase().contains(&refused.to_lowercase()),
                "{what} {hosts}: {b1}\n{}",
                out.stdout
            );
        }
    }
    // Two aliases alike (but for their names) share one login on the jump host.
    let cfg = lab.dir().join("jumps_hostkey");
    let before = lab.accepted_logins("host2");
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "a1,a2", "--", "echo reached"])
        .run()
        .status(0)
        .stdout_contains("a1 | reached")
        .stdout_contains("a2 | reached");
    assert_eq!(lab.accepted_logins("host2"), before + 1);
}

/// A jump host's `ssh://` URI is read as ssh reads it: its user percent-decoded (stop 44
/// tester t53: `ssh://ro%6Ft@...` logged in as `ro%6Ft`), a host name with `%` refused.
#[test]
fn a_jump_uri_user_is_percent_decoded() {
    let lab = Lab::start(2);
    let common = format!(
        "  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
         StrictHostKeyChecking yes\n",
        lab.client_key().display(),
        lab.known_hosts().display()
    );
    let via = |jump: &str| {
        let cfg = lab.dir().join("jump_uri");
        std::fs::write(
            &cfg,
            format!(
                "{}  ProxyJump {jump}\nHost 127.0.0.1\n{common}",
                block("inner", lab.host("host1").port, &common)
            ),
        )
        .unwrap();
        Tether::new()
            .ssh_config(&cfg)
            .args(&["run", "--hosts", "inner", "--", "echo reached"])
            .run()
    };
    let jump = lab.host("host2").port;
    let before = lab.accepted_logins("host2");
    via(&format!("ssh://ro%6Ft@127.0.0.1:{jump}"))
        .status(0)
        .stdout_contains("inner | reached");
    assert_eq!(lab.accepted_logins("host2"), before + 1);
    via(&format!("ssh://127.0.0.1%2d:{jump}"))
        .status(2)
        .stderr_contains(&format!(
            "jump_uri:9: invalid ProxyJump \"ssh://127.0.0.1%2d:{jump}\": `127.0.0.1%2d` is \
             not a valid host name in an ssh:// URI"
        ));
}

/// A real sshd with `MaxStartups 1` (or `PerSourceMaxStartups 1`) drops all but one of a
/// burst of connections; every one of 12 aliases of it still connects, and its log shows it
/// dropped some.
#[test]
fn a_burst_against_max_startups_1_connects_every_host() {
    let lab = Lab::start(2);
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    for (host, limit) in [
        ("host1", "MaxStartups 1"),
        ("host2", "PerSourceMaxStartups 1"),
    ] {
        lab.reconfigure(host, limit);
        let names: Vec<String> = (1..=12).map(|i| format!("{host}m{i:02}")).collect();
        let cfg = lab.dir().join(format!("burst_{host}"));
        // A long ConnectTimeout: the retries are what is tested, not this machine's speed
        // (12 logins one after another through one sshd slot, on a loaded CI machine).
        std::fs::write(
            &cfg,
            format!(
                "Host *m??\n  ConnectTimeout 60\n{}",
                base.replace(
                    &format!("Host {host}\n"),
                    &format!("Host {host} {}\n", names.join(" ")),
                )
            ),
        )
        .unwrap();
        let before = lab.accepted_logins(host);
        let out = Tether::new()
            .ssh_config(&cfg)
            .args(&["run", "--hosts", &names.join(","), "--", "echo in"])
            .run();
        out.status(0);
        for n in &names {
            assert_eq!(out.host_lines(n, '|'), ["in"], "{n}\n{}", out.stdout);
        }
        assert_eq!(lab.accepted_logins(host), before + names.len());
        let log = std::fs::read_to_string(&lab.host(host).log).unwrap();
        assert!(
            log.contains("drop connection #"),
            "{limit}: sshd dropped nothing, so nothing was retried:\n{log}"
        );
    }
}

/// `ssh://` destinations connect, in `--hosts` and as a recipe's servers, IPv6 included (a
/// forwarder on `[::1]` in front of the lab's sshd), printed as written; the sshd log shows
/// the logins.
#[test]
fn ssh_uri_destinations_connect() {
    let lab = Lab::start(1);
    let sshd = lab.host("host1").port;
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let v6_port = v6.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in v6.incoming().flatten() {
            std::thread::spawn(move || forward(conn, sshd));
        }
    });
    let cfg = lab.dir().join("uri_config");
    std::fs::write(
        &cfg,
        format!(
            "Host 127.0.0.1 ::1\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             StrictHostKeyChecking accept-new\n",
            lab.client_key().display(),
            lab.dir().join("uri_known_hosts").display()
        ),
    )
    .unwrap();
    let v4 = format!("ssh://root@127.0.0.1:{sshd}");
    let v6 = format!("ssh://root@[::1]:{v6_port}/");
    let before = lab.accepted_logins("host1");
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&[
            "run",
            "--hosts",
            &format!("{v4},{v6}"),
            "--no-fold",
            "--",
            "echo in",
        ])
        .run();
    out.status(0);
    assert_eq!(out.host_lines(&v4, '|'), ["in"], "{}", out.stdout);
    assert_eq!(out.host_lines(&v6, '|'), ["in"], "{}", out.stdout);
    // Its brackets are nodeset syntax: the name is written in quotes, alone too (stop 61
    // tester t103: a lone `web[1]` read as `web1`).
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("\"{v6}\" "))),
        "{}",
        out.stdout
    );
    assert_eq!(lab.accepted_logins("host1"), before + 2);

    let dir = lab.dir().join("uri_recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        format!(
            "server(\"ssh://root@[::1]:{v6_port}\", #{{ roles: [\"web\"] }});\n\
             task(\"t\", || {{ on(\"web\", \"echo from-recipe\"); }});\n"
        ),
    )
    .unwrap();
    let out = Tether::new()
        .ssh_config(&cfg)
        .current_dir(&dir)
        .args(&["t"])
        .run();
    out.status(0).stdout_contains("from-recipe");
    assert_eq!(lab.accepted_logins("host1"), before + 3);
}

/// `-F` after the subcommand (and after a recipe's task names) is the config the run
/// connects with: the lab's hosts are known only to the lab's config.
#[test]
fn ssh_config_after_the_subcommand_is_the_one_used() {
    let lab = Lab::start(1);
    let cfg = lab.ssh_config().display().to_string();
    let before = lab.accepted_logins("host1");
    Tether::new()
        .args(&[
            "run", "--hosts", "host1", "-F", &cfg, "--", "echo", "-F", "kept",
        ])
        .run()
        .status(0)
        .stdout_contains("host1 | -F kept");
    let dir = lab.dir().join("after_recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"host1\", #{ roles: [\"web\"] });\ntask(\"t\", || { on(\"web\", \"echo t-ran\"); });\n",
    )
    .unwrap();
    Tether::new()
        .current_dir(&dir)
        .args(&["t", "--ssh-config", &cfg])
        .run()
        .status(0)
        .stdout_contains("t-ran");
    assert_eq!(lab.accepted_logins("host1"), before + 2);
}

/// Regression (issue 11): a destination with brackets (not `ssh://`) is a host name as ssh
/// reads it, brackets and all: `Host` patterns match it literally (`[::1]` does not match a
/// `Host ::1` block), it is the default HostName (which does not resolve, as with ssh), and
/// no `:port` is split off it. Each form is compared with `ssh -G`; those a config block
/// names connect through the lab, as ssh connects, and the others reach nothing.
#[test]
fn bracketed_destinations_are_read_as_ssh_reads_them() {
    let lab = Lab::start(1);
    let port = lab.host("host1").port;
    let lab_block = |patterns: &str| {
        format!(
            "Host {patterns}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
            lab.client_key().display(),
            lab.known_hosts().display()
        )
    };
    let cfg = lab.dir().join("bracket_config");
    // `Host ::1` points somewhere a bracketed name must never reach.
    std::fs::write(
        &cfg,
        format!(
            "Host ::1 127.0.0.1\n  HostName 192.0.2.1\n  Port 9\n  User wrong\n{}",
            lab_block(&format!("[lab] [127.0.0.1]:{port} [::2]:22"))
        ),
    )
    .unwrap();
    let keywords = ["user", "hostname", "port"];
    let view = |out: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .filter(|l| keywords.contains(&l.split(' ').next().unwrap_or("")))
            .map(str::to_string)
            .collect()
    };
    let lab_port = format!("[127.0.0.1]:{port}");
    let forms = [
        ("[::1]", false),
        ("[::1]:22", false),
        ("root@[::1]", false),
        ("root@[::1]:22", false),
        ("[127.0.0.1]", false),
        ("[lab]", true),
        ("root@[lab]", true),
        (lab_port.as_str(), true),
        ("[::2]:22", true),
    ];
    for (dest, reaches) in forms {
        let ssh = Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&cfg)
            .arg(dest)
            .output()
            .unwrap();
        assert!(ssh.status.success(), "ssh -G {dest}");
        let out = Tether::new()
            .ssh_config(&cfg)
            .args(&["hosts", "-G", dest])
            .run();
        out.status(0);
        assert_eq!(
            view(out.stdout.as_bytes()),
            view(&ssh.stdout),
            "tether hosts -G {dest} differs from ssh -G"
        );
        let ssh_reaches = Command::new("ssh")
            .arg("-F")
            .arg(&cfg)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                dest,
                "true",
            ])
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(ssh_reaches, reaches, "ssh {dest}");
        let before = lab.accepted_logins("host1");
        let out = Tether::new()
            .ssh_config(&cfg)
            .args(&["run", "--hosts", dest, "--", "echo in"])
            .run();
        if reaches {
            out.status(0);
            assert_eq!(out.host_lines(dest, '|'), ["in"], "{dest}");
            assert_eq!(lab.accepted_logins("host1"), before + 1, "{dest}");
        } else {
            let host = dest.rsplit('@').next().unwrap();
            out.status(3)
                .stdout_contains(&format!("cannot resolve {host}:"))
                .stdout_contains("ssh://[::1]:2222");
        }
    }
}

/// Regression (issue 11): in a jump host list (`-J`, `ProxyJump`, a recipe's `via`) a hop is
/// read as ssh's `parse_jump` reads it: `[addr]:port` is the address and port, brackets
/// removed, unlike a destination. Through the lab, as ssh goes.
#[test]
fn a_bracketed_jump_host_is_an_address_and_port() {
    let lab = Lab::start(1);
    let port = lab.host("host1").port;
    let cfg = lab.dir().join("jump_bracket_config");
    std::fs::write(
        &cfg,
        format!(
            // The target by another name than the jump host (ssh refuses a jump host that is
            // the target itself), its key looked up as the lab records it.
            "Host target\n  HostName localhost\n  Port {port}\n  \
             HostKeyAlias [127.0.0.1]:{port}\n\
             Host 127.0.0.1 target\n  User root\n  IdentityFile {}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
            lab.client_key().display(),
            lab.known_hosts().display()
        ),
    )
    .unwrap();
    let jump = format!("root@[127.0.0.1]:{port}");
    let before = lab.accepted_logins("host1");
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes", "-J", &jump, "target", "true"])
        .output()
        .unwrap();
    assert!(
        ssh.status.success(),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    assert_eq!(lab.accepted_logins("host1"), before + 2);
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["-J", &jump, "run", "--hosts", "target", "--", "echo in"])
        .run();
    out.status(0);
    assert_eq!(out.host_lines("target", '|'), ["in"]);
    assert_eq!(lab.accepted_logins("host1"), before + 4);
}

/// A key exchange with nothing in common names the list, tether's side and the server's, as
/// ssh names it ("no matching host key type found. Their offer: ssh-ed25519"): libssh2 says
/// only "Unable to exchange encryption keys", so tether reads the server's lists on a
/// connection of their own (fresh-eyes finding, stop 28: the raw libssh2 words, naming
/// neither the keyword nor its line). Each case fails ssh too, with the same kind of list, but
/// for a key exchange libssh2 lacks and ssh has, where tether names libssh2's whole list.
#[test]
fn a_key_exchange_with_nothing_in_common_names_the_list_and_both_offers() {
    let lab = Lab::start(4);
    lab.reconfigure("host2", "KexAlgorithms curve25519-sha256");
    // One libssh2 does not know, against tether's unset list: libssh2's own is named.
    lab.reconfigure("host4", "KexAlgorithms sntrup761x25519-sha512@openssh.com");
    lab.reconfigure("host3", "Ciphers aes128-ctr\nMACs hmac-sha2-512");
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let cases = [
        (
            "host1",
            "HostKeyAlgorithms rsa-sha2-512",
            "no matching host key type found",
            "tether offers rsa-sha2-512 (HostKeyAlgorithms rsa-sha2-512 in the ssh config), the \
             server offers ssh-ed25519",
        ),
        (
            "host2",
            "KexAlgorithms diffie-hellman-group14-sha256",
            "no matching key exchange method found",
            "tether offers diffie-hellman-group14-sha256 (KexAlgorithms \
             diffie-hellman-group14-sha256 in the ssh config), the server offers \
             curve25519-sha256",
        ),
        (
            "host3",
            "Ciphers aes256-ctr",
            "no matching cipher found",
            "tether offers aes256-ctr (Ciphers aes256-ctr in the ssh config), the server offers \
             aes128-ctr",
        ),
        (
            "host3",
            "Ciphers aes128-ctr\n  MACs hmac-sha2-256",
            "no matching MAC found",
            "tether offers hmac-sha2-256 (MACs hmac-sha2-256 in the ssh config), the server \
             offers hmac-sha2-512",
        ),
    ];
    let all_kex = "(all that libssh2 supports), the server offers \
                   sntrup761x25519-sha512@openssh.com";
    let cases = cases.into_iter().chain([(
        "host4",
        "",
        "no matching key exchange method found",
        all_kex,
    )]);
    for (i, (host, lines, what, offers)) in cases.enumerate() {
        let path = lab.dir().join(format!("kex_{i}"));
        std::fs::write(&path, format!("Host {host}\n  {lines}\n{base}")).unwrap();
        let ssh = Command::new("ssh")
            .arg("-F")
            .arg(&path)
            .args(["-o", "BatchMode=yes", host, "true"])
            .output()
            .unwrap();
        let ssh_said = String::from_utf8_lossy(&ssh.stderr);
        // ssh knows sntrup761 (host4), libssh2 does not: there ssh connects.
        if host != "host4" {
            assert!(!ssh.status.success(), "{lines}: ssh connected");
            assert!(ssh_said.contains(what), "{lines}: ssh said {ssh_said}");
        }
        let out = Tether::new()
            .ssh_config(&path)
            .args(&["run", "--hosts", host, "--", "true"])
            .run();
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.status, 3, "{lines}\n{text}");
        let said = match offers.starts_with("tether offers") {
            true => text.contains(&format!("{what}: {offers}")),
            false => text.contains(&format!("{what}: tether offers ")) && text.contains(offers),
        };
        assert!(said, "{lines}\n{text}");
    }
}

/// Ctrl-C while hosts are still connecting (each with `ConnectTimeout 120`) ends the run at
/// once: the attempt is given up in whatever it waits for (a TCP connect to a host that drops
/// every packet, a banner that never comes, a key exchange that never starts, a ProxyCommand
/// that says nothing, a jump host that is silent), each host says it was stopped, not that it is unreachable, and the
/// command that did start is stopped as usual. Before, the run waited out `ConnectTimeout` for
/// each and then called the hosts unreachable.
#[test]
fn ctrl_c_gives_up_connections_still_under_way() {
    let lab = Lab::start(1);
    let far = support::netns::NetnsHost::start("far", &[]);
    far.blackhole();
    let silent = listener(|c, _| hold(c));
    let kex = listener(|mut c, _| {
        let _ = c.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        hold(c)
    });
    let timeout = "  ConnectTimeout 120\n";
    let cfg = lab.dir().join("slow_config");
    let text = [
        block("silent", silent, timeout),
        block("kex", kex, timeout),
        format!("Host dropped\n  HostName {}\n{timeout}", far.addr),
        format!("Host proxysilent\n  ProxyCommand sleep 60\n{timeout}"),
        format!("Host behindsilent\n  HostName 127.0.0.1\n  ProxyJump silent\n{timeout}"),
        std::fs::read_to_string(lab.ssh_config()).unwrap(),
    ]
    .join("");
    std::fs::write(&cfg, text).unwrap();
    let marker = lab.dir().join("started");
    let started = std::time::Instant::now();
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&[
            "run",
            "--hosts",
            "host1,silent,kex,dropped,proxysilent,behindsilent",
            "--",
            &format!("echo go > {}; sleep 60", marker.display()),
        ])
        .interrupt_after_start(&marker, Duration::from_secs(1));
    let took = started.elapsed();
    let both = crate::support::tether::text(&out);
    assert_eq!(out.status.code(), Some(130), "{both}");
    assert!(took < Duration::from_secs(40), "took {took:?}\n{both}");
    for host in ["silent", "kex", "dropped", "proxysilent", "behindsilent"] {
        assert!(
            both.contains(&format!("{host}: connecting was stopped by tether after")),
            "{host}\n{both}"
        );
    }
    assert!(!both.contains("unreachable"), "{both}");
    assert!(
        both.contains("`echo go > ") && both.contains("was stopped by tether after"),
        "{both}"
    );
}
