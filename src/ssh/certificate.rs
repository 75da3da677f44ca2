//! OpenSSH certificates (openssh-portable PROTOCOL.certkeys), as a host presents them in place
//! of its plain key, and the checks ssh makes before trusting one through a
//! `@cert-authority` line of known_hosts (sshconnect.c `check_host_key`, sshkey.c
//! `sshkey_cert_check_host`): signed by that CA, a host certificate, inside its validity
//! interval, the host's name among its principals (plain names, as OpenSSH 9.2 compares them), no
//! critical options, and a CA signature algorithm that `CASignatureAlgorithms` allows.
//!
//! A certificate blob is `string type` (`ssh-ed25519-cert-v01@openssh.com` ...), `string
//! nonce`, the certified key's own fields (as in its plain blob), `uint64 serial`, `uint32
//! type` (1 user, 2 host), `string key id`, `string principals` (a list of strings),
//! `uint64 valid after`, `uint64 valid before` (seconds since the epoch), `string critical
//! options`, `string extensions`, `string reserved`, `string signature key` (the CA's public
//! key blob), then `string signature` over everything before it.

use super::known_hosts::fingerprint;
use super::signature::{self, SignatureError};
use super::wire::{put_string, Reader, Truncated};
use crate::clock::utc_text;

const SUFFIX: &str = "-cert-v01@openssh.com";
/// `uint32 type` of a host certificate.
const HOST: u32 = 2;

/// The CA signature algorithms ssh accepts when `CASignatureAlgorithms` is not set
/// (myproposal.h `SSH_ALLOWED_CA_SIGALGS`).
pub const DEFAULT_CA_SIGNATURE_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
];

/// Every signature algorithm `CASignatureAlgorithms` may name (`+ssh-rsa` adds SHA-1 RSA).
pub const ALL_SIGNATURE_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
    "ssh-dss",
];

/// Whether `key_type` (a blob's first string) is a certificate type.
pub fn is_certificate_type(key_type: &str) -> bool {
    key_type.ends_with(SUFFIX)
}

/// A parsed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// `ssh-ed25519-cert-v01@openssh.com` ...
    pub cert_type: String,
    /// The certified key as a plain key blob (`ssh-ed25519` and its fields).
    pub plain_key: Vec<u8>,
    /// The CA's serial number for it.
    pub serial: u64,
    /// 1 user, 2 host.
    pub kind: u32,
    /// The key id the CA wrote (`ssh-keygen -I`).
    pub key_id: String,
    /// The names it is valid for (host certificates: host names or patterns).
    pub principals: Vec<String>,
    /// Valid from this second since the epoch ...
    pub valid_after: u64,
    /// ... until before this one (`u64::MAX`: forever).
    pub valid_before: u64,
    /// Names of its critical options.
    pub critical_options: Vec<String>,
    /// The CA's public key blob.
    pub signature_key: Vec<u8>,
    /// The signature blob (algorithm name, signature bytes).
    pub signature: Vec<u8>,
    /// The bytes the signature covers.
    signed: Vec<u8>,
}

/// Why a presented certificate is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateProblem {
    /// The blob does not parse.
    #[error("it is malformed ({0})")]
    Malformed(String),
    /// Its CA is not named by any `@cert-authority` line for the host.
    #[error("it is signed by a certificate authority that no @cert-authority line for this host names ({0})")]
    UnknownAuthority(String),
    /// The CA's signature does not verify (or cannot be verified).
    #[error("the certificate authority's signature: {0}")]
    Signature(SignatureError),
    /// `CASignatureAlgorithms` does not allow the CA's signature algorithm.
    #[error(
        "it is signed with {algorithm}, which CASignatureAlgorithms does not allow ({allowed})"
    )]
    SignatureAlgorithm {
        /// The signature's algorithm.
        algorithm: String,
        /// The allowed ones, comma-separated.
        allowed: String,
    },
    /// It is a user certificate.
    #[error("it is a user certificate, not a host certificate")]
    NotHost,
    /// Its validity starts later.
    #[error("it is not valid yet: valid from {}", utc_text(*.0))]
    NotYetValid(u64),
    /// Its validity ended.
    #[error("it expired at {}", utc_text(*.0))]
    Expired(u64),
    /// It lists no principals (ssh refuses such host certificates).
    #[error("it lists no principals")]
    NoPrincipals,
    /// The host's name is not among its principals.
    #[error("`{name}` is not among its principals ({}){}", .principals.join(", "), pattern_note(.principals))]
    PrincipalNotListed {
        /// The name checked: `HostKeyAlias`, else the `HostName`.
        name: String,
        /// What the certificate lists.
        principals: Vec<String>,
    },
    /// It has critical options (none are defined for host certificates).
    #[error("it has critical options, which no host certificate may have ({})", .0.join(", "))]
    CriticalOptions(Vec<String>),
}

impl Certificate {
    /// Parses a certificate blob. Err says which field is wrong.
    pub fn parse(blob: &[u8]) -> Result<Certificate, CertificateProblem> {
        Self::parse_fields(blob).map_err(|t| CertificateProblem::Malformed(t.to_string()))
    }

    fn parse_fields(blob: &[u8]) -> Result<Certificate, Truncated> {
        let mut r = Reader::new(blob);
        let cert_type = r.text("type")?.to_string();
        let plain_type = cert_type
            .strip_suffix(SUFFIX)
            .ok_or(Truncated("type"))?
            .to_string();
        r.string("nonce")?;
        let key_start = r.rest();
        let fields = match plain_type.as_str() {
            "ssh-ed25519" => 1,
            "ssh-rsa" | "sk-ssh-ed25519@openssh.com" => 2,
            t if t.starts_with("ecdsa-sha2-") => 2,
            "sk-ecdsa-sha2-nistp256@openssh.com" => 3,
            "ssh-dss" => 4,
            _ => return Err(Truncated("type")),
        };
        for _ in 0..fields {
            r.string("key")?;
        }
        let key_fields = &key_start[..key_start.len() - r.rest().len()];
        let mut plain_key = Vec::new();
        put_string(&mut plain_key, plain_type.as_bytes());
        plain_key.extend_from_slice(key_fields);
        let serial = r.u64("serial")?;
        let kind = r.u32("certificate type")?;
        let key_id = String::from_utf8_lossy(r.string("key id")?).into_owned();
        let mut list = Reader::new(r.string("principals")?);
        let mut principals = Vec::new();
        while !list.is_empty() {
            principals.push(String::from_utf8_lossy(list.string("principals")?).into_owned());
        }
        let valid_after = r.u64("validity")?;
        let valid_before = r.u64("validity")?;
        let mut options = Reader::new(r.string("critical options")?);
        let mut critical_options = Vec::new();
        while !options.is_empty() {
            critical_options.push(options.text("critical options")?.to_string());
            options.string("critical options")?;
        }
        r.string("extensions")?;
        r.string("reserved")?;
        let signature_key = r.string("signature key")?.to_vec();
        let signed = blob[..blob.len() - r.rest().len()].to_vec();
        let signature = r.string("signature")?.to_vec();
        if !r.is_empty() {
            return Err(Truncated("end"));
        }
        Ok(Certificate {
            cert_type,
            plain_key,
            serial,
            kind,
            key_id,
            principals,
            valid_after,
            valid_before,
            critical_options,
            signature_key,
            signature,
            signed,
        })
    }

    /// `type SHA256:... (key id "x", serial N)` for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {} (key id \"{}\", serial {})",
            self.cert_type,
            fingerprint(&self.plain_key),
            self.key_id,
            self.serial
        )
    }

    /// Checks it as ssh checks a host certificate whose CA a `@cert-authority` line trusts:
    /// the CA's signature (with an algorithm in `allowed`), a host certificate, valid at
    /// `now` (seconds since the epoch), `name` among its principals, no critical options.
    pub fn check_host(
        &self,
        name: &str,
        now: u64,
        allowed: &[String],
    ) -> Result<(), CertificateProblem> {
        let algorithm = signature::algorithm(&self.signature).unwrap_or_default();
        if !allowed.contains(&algorithm) {
            return Err(CertificateProblem::SignatureAlgorithm {
                algorithm,
                allowed: allowed.join(","),
            });
        }
        signature::verify(&self.signature_key, &self.signature, &self.signed)
            .map_err(CertificateProblem::Signature)?;
        if self.kind != HOST {
            return Err(CertificateProblem::NotHost);
        }
        if now < self.valid_after {
            return Err(CertificateProblem::NotYetValid(self.valid_after));
        }
        if now >= self.valid_before {
            return Err(CertificateProblem::Expired(self.valid_before));
        }
        if self.principals.is_empty() {
            return Err(CertificateProblem::NoPrincipals);
        }
        // Plain names, as OpenSSH 9.2 compares them (10.3 takes patterns): a certificate 9.2's
        // ssh refuses is refused (stop 36 tester t17: `*.example.com` was accepted).
        if !self.principals.iter().any(|p| p == name) {
            return Err(CertificateProblem::PrincipalNotListed {
                name: name.to_string(),
                principals: self.principals.clone(),
            });
        }
        if !self.critical_options.is_empty() {
            return Err(CertificateProblem::CriticalOptions(
                self.critical_options.clone(),
            ));
        }
        Ok(())
    }
}

/// What a pattern among `principals` means here: nothing but itself.
fn pattern_note(principals: &[String]) -> &'static str {
    match principals.iter().any(|p| p.contains(['*', '?'])) {
        true => "; a principal is a plain name, as OpenSSH 9.2 compares them: a pattern matches only itself",
        false => "",
    }
}

/// The plain key of a key blob: the certified key of a certificate, else the blob itself.
pub fn plain_key(blob: &[u8]) -> Vec<u8> {
    match Certificate::parse(blob) {
        Ok(cert) => cert.plain_key,
        Err(_) => blob.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;

    /// A host certificate for an ed25519 key, signed by `ca` (ed25519).
    fn make(
        ca: &PKey<openssl::pkey::Private>,
        kind: u32,
        principals: &[&str],
        valid: (u64, u64),
        critical: &[&str],
    ) -> Vec<u8> {
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519-cert-v01@openssh.com");
        put_string(&mut blob, &[7u8; 32]);
        put_string(&mut blob, &[1u8; 32]);
        blob.extend_from_slice(&42u64.to_be_bytes());
        blob.extend_from_slice(&kind.to_be_bytes());
        put_string(&mut blob, b"web1 host key");
        let mut list = Vec::new();
        for p in principals {
            put_string(&mut list, p.as_bytes());
        }
        put_string(&mut blob, &list);
        blob.extend_from_slice(&valid.0.to_be_bytes());
        blob.extend_from_slice(&valid.1.to_be_bytes());
        let mut options = Vec::new();
        for o in critical {
            put_string(&mut options, o.as_bytes());
            put_string(&mut options, b"");
        }
        put_string(&mut blob, &options);
        put_string(&mut blob, b"");
        put_string(&mut blob, b"");
        let mut ca_key = Vec::new();
        put_string(&mut ca_key, b"ssh-ed25519");
        put_string(&mut ca_key, &ca.raw_public_key().unwrap());
        put_string(&mut blob, &ca_key);
        let mut signer = openssl::sign::Signer::new_without_digest(ca).unwrap();
        let raw = signer.sign_oneshot_to_vec(&blob).unwrap();
        let mut sig = Vec::new();
        put_string(&mut sig, b"ssh-ed25519");
        put_string(&mut sig, &raw);
        put_string(&mut blob, &sig);
        blob
    }

    fn allowed() -> Vec<String> {
        DEFAULT_CA_SIGNATURE_ALGORITHMS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn host_certificates_are_checked_as_ssh_checks_them() {
        let ca = PKey::generate_ed25519().unwrap();
        let good = make(&ca, HOST, &["web1", "*.example.com"], (100, 200), &[]);
        let cert = Certificate::parse(&good).unwrap();
        assert_eq!(cert.principals, ["web1", "*.example.com"]);
        let mut plain = Vec::new();
        put_string(&mut plain, b"ssh-ed25519");
        put_string(&mut plain, &[1u8; 32]);
        assert_eq!(cert.plain_key, plain);
        assert_eq!(plain_key(&good), plain);
        assert_eq!(plain_key(&plain), plain);
        assert_eq!(cert.check_host("web1", 150, &allowed()), Ok(()));
        // A pattern is a plain name, as OpenSSH 9.2 compares them.
        assert_eq!(
            cert.check_host("db.example.com", 100, &allowed())
                .unwrap_err()
                .to_string(),
            "`db.example.com` is not among its principals (web1, *.example.com); a principal is \
             a plain name, as OpenSSH 9.2 compares them: a pattern matches only itself"
        );
        assert_eq!(cert.check_host("*.example.com", 100, &allowed()), Ok(()));
        assert!(matches!(
            cert.check_host("web2", 150, &allowed()),
            Err(CertificateProblem::PrincipalNotListed { .. })
        ));
        assert_eq!(
            cert.check_host("web1", 200, &allowed()),
            Err(CertificateProblem::Expired(200))
        );
        assert_eq!(
            cert.check_host("web1", 99, &allowed()),
            Err(CertificateProblem::NotYetValid(100))
        );
        assert!(matches!(
            cert.check_host("web1", 150, &["rsa-sha2-512".to_string()]),
            Err(CertificateProblem::SignatureAlgorithm { .. })
        ));
        let user = Certificate::parse(&make(&ca, 1, &["web1"], (0, u64::MAX), &[])).unwrap();
        assert_eq!(
            user.check_host("web1", 1, &allowed()),
            Err(CertificateProblem::NotHost)
        );
        let none = Certificate::parse(&make(&ca, HOST, &[], (0, u64::MAX), &[])).unwrap();
        assert_eq!(
            none.check_host("web1", 1, &allowed()),
            Err(CertificateProblem::NoPrincipals)
        );
        let crit = Certificate::parse(&make(
            &ca,
            HOST,
            &["web1"],
            (0, u64::MAX),
            &["force-command"],
        ))
        .unwrap();
        assert!(matches!(
            crit.check_host("web1", 1, &allowed()),
            Err(CertificateProblem::CriticalOptions(_))
        ));
        // The key id changed after signing (its first byte is at 124): the signature no
        // longer verifies.
        let mut forged = good.clone();
        assert_eq!(forged[124], b'w');
        forged[124] = b'W';
        let forged = Certificate::parse(&forged).unwrap();
        assert_eq!(forged.key_id, "Web1 host key");
        assert_eq!(
            forged.check_host("web1", 150, &allowed()),
            Err(CertificateProblem::Signature(SignatureError::Invalid))
        );
        assert!(matches!(
            Certificate::parse(&good[..good.len() - 3]),
            Err(CertificateProblem::Malformed(_))
        ));
    }
}
