//! Which algorithms of a config's lists libssh2 can negotiate: kex.c `kex_assemble_names`
//! (a list replaces the defaults, `+list` appends to them, `-list` removes from them, `^list`
//! puts first; names may use `*` and `?`) against libssh2's own lists. Used when a host's
//! configuration is built (a list that leaves nothing fails that host, naming the line) and
//! before each handshake (`ssh::algorithms`).

use ssh2::{MethodType, Session};

use super::algorithm_names::KEY_TYPES;
use super::host::Algorithms;
use crate::ssh_syntax::pattern::wildcard_match;

/// What libssh2 supports for `method` (its default preference order), read once: the lists
/// are fixed when libssh2 is built.
pub fn supported(method: MethodType) -> &'static [&'static str] {
    use std::sync::OnceLock;
    const METHODS: [MethodType; 5] = [
        MethodType::Kex,
        MethodType::HostKey,
        MethodType::CryptCs,
        MethodType::MacCs,
        MethodType::SignAlgo,
    ];
    static LISTS: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    let lists = LISTS.get_or_init(|| {
        let session = Session::new().ok();
        METHODS
            .iter()
            .map(|m| {
                session
                    .as_ref()
                    .and_then(|s| s.supported_algs(*m).ok())
                    .unwrap_or_default()
            })
            .collect()
    });
    let index = match method {
        MethodType::Kex => 0,
        MethodType::HostKey => 1,
        MethodType::CryptCs | MethodType::CryptSc => 2,
        MethodType::MacCs | MethodType::MacSc => 3,
        MethodType::SignAlgo => 4,
        _ => return &[],
    };
    lists.get(index).map_or(&[], |l| l.as_slice())
}

/// The first algorithm keyword of `algorithms` whose list leaves nothing libssh2 can
/// negotiate, with the reason (naming the list and what libssh2 supports). Checked when a
/// host's configuration is built, so such a host fails as a configuration error before
/// anything connects.
pub fn unusable_keyword(algorithms: &Algorithms) -> Option<(&'static str, String)> {
    if let Some(spec) = algorithms.pubkey.as_deref() {
        if pubkey_accepted(Some(spec)).is_empty() {
            return Some((
                "PubkeyAcceptedAlgorithms",
                format!(
                    "PubkeyAcceptedAlgorithms {spec} leaves no key type (ssh knows: {})",
                    KEY_TYPES.join(",")
                ),
            ));
        }
    }
    let lists: [(&'static str, &Option<String>, MethodType); 4] = [
        ("KexAlgorithms", &algorithms.kex, MethodType::Kex),
        (
            "HostKeyAlgorithms",
            &algorithms.host_key,
            MethodType::HostKey,
        ),
        ("Ciphers", &algorithms.ciphers, MethodType::CryptCs),
        ("MACs", &algorithms.macs, MethodType::MacCs),
    ];
    lists.into_iter().find_map(|(keyword, spec, method)| {
        let spec = spec.as_deref()?;
        let all = supported(method);
        // An empty list from libssh2 means it could not be asked; the handshake will say.
        (!all.is_empty() && assemble(spec, all).is_empty())
            .then(|| (keyword, unusable(keyword, spec, all)))
    })
}

/// ssh's `PubkeyAcceptedAlgorithms` and `HostKeyAlgorithms` when none is set, in its order
/// (OpenSSH 9.2 `ssh -G`, myproposal.h `KEX_DEFAULT_PK_ALG`).
pub const PUBKEY_DEFAULT: &[&str] = &[
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512",
    "rsa-sha2-256",
];

/// The public key algorithms `PubkeyAcceptedAlgorithms` (`spec`; `None` when unset)
/// accepts, in its order: kex.c `kex_assemble_names` over ssh's defaults and every key type
/// ssh knows. libssh2 cannot list what it signs with, so this is ssh's list, not libssh2's.
pub fn pubkey_accepted(spec: Option<&str>) -> Vec<String> {
    match spec {
        Some(spec) => assemble_from(spec, PUBKEY_DEFAULT, KEY_TYPES),
        None => PUBKEY_DEFAULT.iter().map(|s| s.to_string()).collect(),
    }
}

/// Whether a key of `key_type` (its blob's type: `ssh-rsa`, `ssh-ed25519-cert-v01@openssh.com`
/// ...) may be offered under `accepted`, as sshconnect2.c `key_type_allowed_by_config` says:
/// by its own name, and an RSA key or certificate also by an RSA SHA-2 signature algorithm.
pub fn key_type_accepted(key_type: &str, accepted: &[String]) -> bool {
    let listed = |name: &str| accepted.iter().any(|a| a == name);
    listed(key_type)
        || match key_type {
            "ssh-rsa" => listed("rsa-sha2-512") || listed("rsa-sha2-256"),
            "ssh-rsa-cert-v01@openssh.com" => {
                listed("rsa-sha2-512-cert-v01@openssh.com")
                    || listed("rsa-sha2-256-cert-v01@openssh.com")
            }
            _ => false,
        }
}

/// The RSA signature algorithms `accepted` allows (from its plain and certificate names), in
/// its order: libssh2's `SIGN_ALGO` preference, which picks an RSA key's signature.
pub fn rsa_signatures(accepted: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in accepted {
        let plain = name.strip_suffix("-cert-v01@openssh.com").unwrap_or(name);
        let known = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
            .into_iter()
            .find(|r| *r == plain);
        if let Some(r) = known.filter(|r| !out.contains(r)) {
            out.push(r);
        }
    }
    out
}

/// The message for a `keyword` list `spec` that leaves nothing of `supported`.
pub fn unusable(keyword: &str, spec: &str, supported: &[&str]) -> String {
    format!(
        "{keyword} {spec} leaves no algorithm that libssh2 supports (it supports: {})",
        supported.join(",")
    )
}

/// kex.c `kex_assemble_names` against `supported` (libssh2's list, which is also the
/// default).
pub fn assemble(spec: &str, supported: &[&str]) -> Vec<String> {
    assemble_from(spec, supported, supported)
}

/// kex.c `kex_assemble_names` with `defaults` (what an unset keyword means, what `+`, `-`
/// and `^` start from) and `all` (every name a list may select).
pub fn assemble_from(spec: &str, defaults: &[&str], all: &[&str]) -> Vec<String> {
    let matching = |patterns: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in patterns.split(',').filter(|p| !p.is_empty()) {
            for s in all {
                if wildcard_match(p, s) && !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
        out
    };
    let defaults: Vec<String> = defaults.iter().map(|s| s.to_string()).collect();
    let merged: Vec<String> = if let Some(rest) = spec.strip_prefix('+') {
        defaults.into_iter().chain(matching(rest)).collect()
    } else if let Some(rest) = spec.strip_prefix('-') {
        let removed = matching(rest);
        defaults
            .into_iter()
            .filter(|d| !removed.contains(d))
            .collect()
    } else if let Some(rest) = spec.strip_prefix('^') {
        matching(rest).into_iter().chain(defaults).collect()
    } else {
        matching(spec)
    };
    let mut out: Vec<String> = Vec::new();
    for name in merged {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}
