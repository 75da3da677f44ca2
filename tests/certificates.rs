//! User certificates (`CertificateFile`, and `KEY-cert.pub` beside an identity file) against
//! sshd with `TrustedUserCAKeys`: the key alone is not authorized, its certificate is.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::lab::Lab;
use support::tether::Tether;

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

#[test]
fn certified_keys_log_in_and_unsupported_types_are_named() {
    let lab = Lab::start(1);
    let dir = lab.dir().join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        &dir,
        "ssh-keygen -q -t ed25519 -N '' -f ca && \
         for t in ed25519 ecdsa dsa; do ssh-keygen -q -t $t -N '' -f id_$t && \
         ssh-keygen -q -s ca -I tether-test -n root -V +1h id_$t.pub; done && \
         mkdir -p elsewhere && mv id_ecdsa-cert.pub elsewhere/ecdsa.cert",
    );
    lab.reconfigure(
        "host1",
        &format!("TrustedUserCAKeys {}", dir.join("ca.pub").display()),
    );
    let base: String = std::fs::read_to_string(lab.ssh_config())
        .unwrap()
        .lines()
        .filter(|l| !l.contains("IdentityFile"))
        .map(|l| format!("{l}\n"))
        .collect();
    let run = |name: &str, extra: &str| {
        let cfg = lab.dir().join(name);
        std::fs::write(&cfg, format!("Host host1\n{extra}{base}")).unwrap();
        Tether::new()
            .ssh_config(&cfg)
            .args(&["run", "--hosts", "host1", "--", "echo reached"])
            .run()
    };
    let d = dir.display();
    // The key's certificate beside it (KEY-cert.pub) is used, as ssh uses it.
    run("beside", &format!("  IdentityFile {d}/id_ed25519\n")).status(0);
    // A CertificateFile elsewhere is paired with the identity file it certifies.
    run(
        "configured",
        &format!("  IdentityFile {d}/id_ecdsa\n  CertificateFile {d}/elsewhere/ecdsa.cert\n"),
    )
    .status(0);
    assert_eq!(lab.accepted_logins("host1"), 2);
    // Without the certificate, the key is not authorized.
    run("no_cert", &format!("  IdentityFile {d}/id_ecdsa\n"))
        .status(3)
        .stdout_contains("authentication failed for user root");
    // A DSA key and its certificate are not offered under ssh's default
    // PubkeyAcceptedAlgorithms, as ssh skips them.
    run("dsa_default", &format!("  IdentityFile {d}/id_dsa\n"))
        .status(3)
        .stdout_contains(&format!(
            "certificate {d}/id_dsa-cert.pub not offered: ssh's default \
             PubkeyAcceptedAlgorithms leaves out its type ssh-dss-cert-v01@openssh.com"
        ));
    // Accepted by the config, a certificate type libssh2 cannot use is named.
    run(
        "dsa",
        &format!("  IdentityFile {d}/id_dsa\n  PubkeyAcceptedAlgorithms +ssh-dss*\n"),
    )
    .status(3)
    .stdout_contains(&format!(
        "certificate {d}/id_dsa-cert.pub: key type ssh-dss-cert-v01@openssh.com is not \
             supported by libssh2"
    ));
}
