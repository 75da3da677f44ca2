//! The algorithm names ssh knows, for checking `Ciphers`, `MACs`, `KexAlgorithms` and the
//! key type lists (`HostKeyAlgorithms`, `PubkeyAcceptedAlgorithms`, `CASignatureAlgorithms`,
//! `HostbasedAcceptedAlgorithms`) as readconf.c checks them when it reads a line, whether or
//! not the line applies to the host: a list starting with `-` is not checked; otherwise (after
//! a `+` or `^`) every name up to the first empty one must be known: ciphers, MACs and key
//! exchanges exactly (cipher.c `ciphers_valid`, mac.c `mac_valid`, kex.c `kex_names_valid`),
//! key types exactly, by their short name (`RSA`, `ed25519`, any case) or as a pattern that
//! matches one (sshkey.c `sshkey_names_valid2`). The names are OpenSSH 9.2's (`ssh -Q cipher`
//! ...) plus the later ones 9.2 lacks (`mlkem768x25519-sha256`, `mlkem768nistp256-sha256`),
//! so that a config written for a newer ssh is not refused.
//!
//! Which of them libssh2 can negotiate is another question, answered per host when its
//! configuration is built (see `resolve.rs`).

use crate::ssh_syntax::pattern::match_pattern;

/// `ssh -Q cipher`.
pub const CIPHERS: &[&str] = &[
    "3des-cbc",
    "aes128-cbc",
    "aes192-cbc",
    "aes256-cbc",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
];

/// `ssh -Q mac`.
pub const MACS: &[&str] = &[
    "hmac-sha1",
    "hmac-sha1-96",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-md5",
    "hmac-md5-96",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1-96-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-md5-etm@openssh.com",
    "hmac-md5-96-etm@openssh.com",
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
];

/// `ssh -Q kex`, plus OpenSSH 9.9's and 10's ML-KEM exchanges.
pub const KEX: &[&str] = &[
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group-exchange-sha256",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "mlkem768x25519-sha256",
    "mlkem768nistp256-sha256",
];

/// `ssh -Q key-sig`: key types, their certificates and the RSA signature algorithms.
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
    "ssh-dss-cert-v01@openssh.com",
    "ssh-rsa",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-512-cert-v01@openssh.com",
];

/// sshkey.c short names of the plain key types, matched in any case.
const KEY_SHORT_NAMES: &[&str] = &["RSA", "DSA", "ECDSA", "ED25519", "ECDSA-SK", "ED25519-SK"];

/// Checks the list of an algorithm keyword (`keyword` as spelled in the keyword table) as ssh
/// does when it reads the line. Err: what ssh refuses, naming the first unknown name.
pub fn check(keyword: &str, spec: &str) -> Result<(), String> {
    if spec.starts_with('-') {
        return Ok(());
    }
    let list = spec.strip_prefix(['+', '^']).unwrap_or(spec);
    if list.is_empty() {
        return Err(format!("{keyword}: empty algorithm list \"{spec}\""));
    }
    let (names, known): (&[&str], fn(&str) -> bool) = match keyword {
        "Ciphers" => (CIPHERS, |n| CIPHERS.contains(&n)),
        "MACs" => (MACS, |n| MACS.contains(&n)),
        "KexAlgorithms" => (KEX, |n| KEX.contains(&n)),
        _ => (KEY_TYPES, known_key_type),
    };
    // ssh stops at the first empty name (strsep), so `a,,junk` passes this check.
    for name in list.split(',').take_while(|n| !n.is_empty()) {
        if !known(name) {
            let what = if names == KEY_TYPES {
                "key type"
            } else {
                "algorithm"
            };
            return Err(format!(
                "{keyword}: unknown {what} \"{name}\" in \"{spec}\" (ssh knows: {})",
                names.join(",")
            ));
        }
    }
    Ok(())
}

fn known_key_type(name: &str) -> bool {
    KEY_TYPES.contains(&name) || KEY_SHORT_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name)) || {
        let pattern = name.strip_prefix('!').unwrap_or(name);
        KEY_TYPES.iter().any(|t| match_pattern(t, pattern))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_readconf_checks_them() {
        assert!(check("Ciphers", "aes128-ctr").is_ok());
        assert!(check("Ciphers", "frob").is_err());
        assert!(check("Ciphers", "aes128-ctr,frob").is_err());
        assert!(check("Ciphers", "aes128-ctr,,frob").is_ok());
        assert!(check("Ciphers", ",frob").is_ok());
        assert!(check("Ciphers", "aes*").is_err());
        assert!(check("Ciphers", "AES128-CTR").is_err());
        assert!(check("Ciphers", "+frob").is_err());
        assert!(check("Ciphers", "-frob").is_ok());
        assert!(check("Ciphers", "+").is_err());
        assert!(check("Ciphers", "none").is_err());
        assert!(check("KexAlgorithms", "curve*").is_err());
        assert!(check("KexAlgorithms", "mlkem768x25519-sha256").is_ok());
        assert!(check("HostKeyAlgorithms", "ssh-ed*").is_ok());
        assert!(check("HostKeyAlgorithms", "!ssh-rsa").is_ok());
        assert!(check("HostKeyAlgorithms", "foo*").is_err());
        assert!(check("HostKeyAlgorithms", "rsa").is_ok());
        assert!(check("PubkeyAcceptedAlgorithms", "foo").is_err());
    }
}
