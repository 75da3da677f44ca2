//! Host certificates against sshd with `HostCertificate`: a known_hosts file that holds only a
//! `@cert-authority` line trusts the host when its certificate passes ssh's checks (CA
//! signature, host type, validity, principals, CASignatureAlgorithms), and refuses it saying
//! why otherwise; `ssh` itself is the oracle for every case. A revoked CA, a plain-key
//! fallback, accept-new, a host without a certificate and a reconnect are covered too.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::harness::Harness;
use support::lab::Lab;
use support::tether::{Output, Tether};
use tether::event::EventKind;
use tether::ssh::policy::WorkerSettings;

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CAs, the host's key and its certificate, in one directory.
struct Pki {
    dir: PathBuf,
    /// host1's ed25519 host key (its private half is what sshd serves).
    host_key: PathBuf,
    /// Where sshd reads the certificate (`HostCertificate`).
    cert: PathBuf,
}

impl Pki {
    fn new(lab: &Lab) -> Pki {
        let dir = lab.dir().join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        sh(
            &dir,
            "ssh-keygen -q -t ed25519 -N '' -f ca && ssh-keygen -q -t ed25519 -N '' -f rogue_ca && \
             ssh-keygen -q -t rsa -b 2048 -N '' -f rsa_ca && \
             ssh-keygen -q -t ecdsa -b 384 -N '' -f ecdsa_ca",
        );
        let host_key = lab
            .host("host1")
            .sshd_config
            .parent()
            .unwrap()
            .join("ssh_host_ed25519_key");
        let cert = dir.join("host1-cert.pub");
        Pki {
            dir,
            host_key,
            cert,
        }
    }

    /// Signs host1's key with `ca` and `args` (`-n ... -V ...`), installs the certificate
    /// and restarts host1's sshd so that it serves it.
    fn issue(&self, lab: &Lab, ca: &str, args: &str) {
        let staged = self.dir.join("staged");
        std::fs::create_dir_all(&staged).unwrap();
        std::fs::copy(self.host_key.with_extension("pub"), staged.join("key.pub")).unwrap();
        sh(
            &self.dir,
            &format!(
                "ssh-keygen -q -s {ca} -I host1-key -z 7 {args} staged/key.pub && \
                 mv -f staged/key-cert.pub {}",
                self.cert.display()
            ),
        );
        let first = !lab.dir().join("pki/.served").exists();
        if first {
            std::fs::write(lab.dir().join("pki/.served"), "").unwrap();
            lab.reconfigure("host1", &format!("HostCertificate {}", self.cert.display()));
        } else {
            // sshd reads the certificate when it restarts.
            lab.reconfigure("host1", "# certificate reissued");
        }
    }

    fn ca(&self, name: &str) -> String {
        public_key(&self.dir.join(format!("{name}.pub")))
    }
}

/// host1's config with `known_hosts` holding `lines` as its only known_hosts file.
fn config(lab: &Lab, name: &str, extra: &str, lines: &str) -> PathBuf {
    let kh = lab.dir().join(format!("kh_{name}"));
    std::fs::write(&kh, lines).unwrap();
    let text = std::fs::read_to_string(lab.ssh_config()).unwrap().replace(
        &lab.known_hosts().display().to_string(),
        &kh.display().to_string(),
    );
    let path = lab.dir().join(format!("cfg_{name}"));
    std::fs::write(&path, format!("Host host1\n{extra}{text}")).unwrap();
    path
}

fn tether(config: &Path) -> Output {
    Tether::new()
        .ssh_config(config)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .run()
}

/// Whether `ssh -F config host1 true` connects (the oracle).
fn ssh_connects(config: &Path) -> bool {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "host1", "true"])
        .output()
        .unwrap()
        .status
        .success()
}

/// tether and ssh agree that `config` reaches host1; tether prints `reached`.
fn both_connect(config: &Path) -> Output {
    assert!(
        ssh_connects(config),
        "ssh did not connect with {}",
        config.display()
    );
    let out = tether(config);
    out.status(0);
    assert_eq!(out.host_lines("host1", '|'), ["reached"]);
    out
}

/// tether and ssh agree that `config` does not reach host1; tether says `why`.
fn both_refuse(config: &Path, why: &str) -> Output {
    assert!(
        !ssh_connects(config),
        "ssh connected with {}",
        config.display()
    );
    let out = tether(config);
    out.status(3).stdout_contains(why);
    out
}

#[test]
fn host_certificates_are_trusted_through_cert_authority_lines_as_ssh_trusts_them() {
    let lab = Lab::start(1);
    let port = lab.host("host1").port;
    let pki = Pki::new(&lab);
    let name = format!("[127.0.0.1]:{port}");
    let ca_line = |ca: &str, hosts: &str| format!("@cert-authority {hosts} {}\n", pki.ca(ca));
    let only_ca = ca_line("ca", &name);

    // Valid for 127.0.0.1 (the HostName, the principal ssh checks): connects with only the
    // CA line in known_hosts, which ssh does too.
    pki.issue(&lab, "ca", "-h -n web1.example.com,127.0.0.1 -V -5m:+1h");
    let good = config(&lab, "good", "", &only_ca);
    both_connect(&good);
    let logins = lab.accepted_logins("host1");
    assert!(logins >= 2, "{logins}");

    // The name as HostKeyAlias, a CA line for a pattern.
    pki.issue(&lab, "ca", "-h -n db7.example.com -V -5m:+1h");
    let alias = config(
        &lab,
        "alias",
        "  HostKeyAlias db7.example.com\n",
        &ca_line("ca", "*.example.com"),
    );
    both_connect(&alias);
    // A pattern among the principals is a plain name, as OpenSSH 9.2 (the ssh here) compares
    // them: refused by both (10.3 matches host names against it; stop 36 tester t17: tether
    // accepted it).
    pki.issue(&lab, "ca", "-h -n '*.example.com' -V -5m:+1h");
    both_refuse(
        &alias,
        "`db7.example.com` is not among its principals (*.example.com); a principal is a plain \
         name, as OpenSSH 9.2 compares them: a pattern matches only itself",
    );

    // RSA and ECDSA certificate authorities (rsa-sha2-512, ecdsa-sha2-nistp384 signatures).
    pki.issue(&lab, "rsa_ca", "-h -n 127.0.0.1 -V -5m:+1h");
    both_connect(&config(&lab, "rsa", "", &ca_line("rsa_ca", &name)));
    // ... refused when CASignatureAlgorithms leaves its algorithm out.
    both_refuse(
        &config(
            &lab,
            "casig",
            "  CASignatureAlgorithms ssh-ed25519,ecdsa-sha2-nistp384\n",
            &ca_line("rsa_ca", &name),
        ),
        "it is signed with rsa-sha2-512, which CASignatureAlgorithms does not allow \
         (ssh-ed25519,ecdsa-sha2-nistp384)",
    );
    pki.issue(&lab, "ecdsa_ca", "-h -n 127.0.0.1 -V -5m:+1h");
    both_connect(&config(&lab, "ecdsa", "", &ca_line("ecdsa_ca", &name)));

    // Wrong principal: refused, naming the name and the principals.
    pki.issue(&lab, "ca", "-h -n web1.example.com,10.0.0.7 -V -5m:+1h");
    let out = both_refuse(
        &good,
        &format!(
            "host1: the host certificate for {name} was refused: `127.0.0.1` is not among its \
             principals (web1.example.com, 10.0.0.7); it is ssh-ed25519-cert-v01@openssh.com SHA256:"
        ),
    );
    out.stdout_contains(&format!(
        "(key id \"host1-key\", serial 7), checked against the @cert-authority line at {}:1; its \
         key is not in known_hosts either, so tether refuses to connect",
        lab.dir().join("kh_good").display()
    ));

    // Expired, and not yet valid.
    pki.issue(
        &lab,
        "ca",
        "-h -n 127.0.0.1 -V 20200101000000Z:20200102000000Z",
    );
    both_refuse(&good, "was refused: it expired at 2020-01-02 00:00:00 UTC;");
    pki.issue(&lab, "ca", "-h -n 127.0.0.1 -V +1d:+2d");
    both_refuse(&good, "was refused: it is not valid yet: valid from ");

    // A user certificate served as a host certificate; a certificate of another CA.
    pki.issue(&lab, "ca", "-n 127.0.0.1 -V -5m:+1h");
    both_refuse(
        &good,
        "was refused: it is a user certificate, not a host certificate",
    );
    pki.issue(&lab, "rogue_ca", "-h -n 127.0.0.1 -V -5m:+1h");
    both_refuse(
        &good,
        "was refused: it is signed by a certificate authority that no @cert-authority line for \
         this host names (its CA key is ssh-ed25519 SHA256:",
    );

    // The CA is revoked: refused as revoked, even though its certificate is fine, and said of
    // the CA, not of the host's key (stop 30: "host key ... is revoked").
    pki.issue(&lab, "ca", "-h -n 127.0.0.1 -V -5m:+1h");
    let revoked = config(
        &lab,
        "revoked",
        "",
        &format!("{only_ca}@revoked * {}\n", pki.ca("ca")),
    );
    both_refuse(
        &revoked,
        &format!(
            "host1: the certificate authority that signed the host certificate for {name} is \
             revoked ({}:2); refusing to connect",
            lab.dir().join("kh_revoked").display()
        ),
    );

    // The certificate is refused but its key is recorded as a plain key: ssh connects, so
    // does tether, saying why the certificate was not used.
    pki.issue(&lab, "ca", "-h -n web1.example.com -V -5m:+1h");
    let host_pub = public_key(&pki.host_key.with_extension("pub"));
    let fallback = config(
        &lab,
        "fallback",
        "",
        &format!("{only_ca}{name} {host_pub}\n"),
    );
    both_connect(&fallback).stdout_contains(&format!(
        "host1: the host certificate for {name} was refused (`127.0.0.1` is not among its \
         principals (web1.example.com)); connected because known_hosts records its key"
    ));

    // accept-new never records the key of a host whose certificate was refused.
    let accept_new = config(
        &lab,
        "accept_new",
        "  StrictHostKeyChecking accept-new\n",
        &only_ca,
    );
    tether(&accept_new)
        .status(3)
        .stdout_contains("`127.0.0.1` is not among its principals");
    assert_eq!(
        std::fs::read_to_string(lab.dir().join("kh_accept_new")).unwrap(),
        only_ca
    );
}

#[test]
fn a_cert_authority_line_that_cannot_be_used_is_named() {
    // host1 has no certificate: a CA line alone cannot vouch for its plain key.
    let lab = Lab::start(1);
    let port = lab.host("host1").port;
    let pki = Pki::new(&lab);
    let cfg = config(
        &lab,
        "nocert",
        "",
        &format!("@cert-authority [127.0.0.1]:{port} {}\n", pki.ca("ca")),
    );
    both_refuse(
        &cfg,
        &format!("host1: host key for [127.0.0.1]:{port} is not known (ssh-ed25519 SHA256:"),
    )
    .stdout_contains(&format!(
        "; a @cert-authority line names it ({}:1) but could not be used: the server presented \
         a plain key, not a certificate (it has no host certificate, or none of a type tether \
         can negotiate: ",
        lab.dir().join("kh_nocert").display()
    ))
    .stdout_contains("ssh-ed25519-cert-v01@openssh.com");
    assert_eq!(lab.accepted_logins("host1"), 0);
}

#[test]
fn a_reconnect_accepts_the_same_key_and_checks_its_certificate_again() {
    let lab = Lab::start(1);
    let port = lab.host("host1").port;
    let pki = Pki::new(&lab);
    pki.issue(&lab, "ca", "-h -n 127.0.0.1 -V -5m:+1h");
    let cfg = config(
        &lab,
        "pinned",
        "",
        &format!("@cert-authority [127.0.0.1]:{port} {}\n", pki.ca("ca")),
    );
    let settings = WorkerSettings {
        heartbeat: Some(Duration::from_secs(3600)),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&cfg, settings, &["host1"]);
    assert!(ok(&h.run(&["host1"], "true")));

    // A renewed certificate of the same key is fine after a lost connection.
    pki.issue(&lab, "ca", "-h -n 127.0.0.1 -V -5m:+2h");
    lab.kill_connections("host1");
    assert!(ok(&h.run(&["host1"], "echo again")), "{}", h.story());
    assert_eq!(
        h.count("host1", |k| matches!(k, EventKind::Reconnected { .. })),
        1,
        "{}",
        h.story()
    );

    // One that expired meanwhile is not: the reconnect fails, naming why.
    pki.issue(
        &lab,
        "ca",
        "-h -n 127.0.0.1 -V 20200101000000Z:20200102000000Z",
    );
    lab.kill_connections("host1");
    let results = h.run(&["host1"], "echo once more");
    let error = match &results[0].result {
        Some(Err(e)) => e.to_string(),
        other => panic!("{other:?}\n{}", h.story()),
    };
    assert!(
        error.contains("it expired at 2020-01-02 00:00:00 UTC"),
        "{error}"
    );
}

fn ok(results: &[tether::pool::HostResult]) -> bool {
    results
        .iter()
        .all(|r| matches!(&r.result, Some(Ok(out)) if out.status.success()))
}

/// Regression (issue 11): a host on a port other than 22 whose `@cert-authority` line names
/// the bare host (`127.0.0.1`, `*.example.com`, not `[host]:port`) is trusted, as ssh trusts it
/// through its second look without the port; a line for another CA still is not.
#[test]
fn a_cert_authority_line_without_port_applies_as_in_ssh() {
    let lab = Lab::start(1);
    let pki = Pki::new(&lab);
    pki.issue(&lab, "ca", "-h -n 127.0.0.1 -V -5m:+1h");
    for (name, hosts) in [
        ("bare", "127.0.0.1"),
        ("pattern", "127.0.0.*"),
        ("list", "x,127.0.0.1"),
    ] {
        let line = format!("@cert-authority {hosts} {}\n", pki.ca("ca"));
        both_connect(&config(&lab, name, "", &line));
    }
    let rogue = format!("@cert-authority 127.0.0.1 {}\n", pki.ca("rogue_ca"));
    both_refuse(&config(&lab, "rogue", "", &rogue), "was refused");
}
