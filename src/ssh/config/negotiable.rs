//! Which algorithms of a config's lists libssh2 can negotiate: kex.c `kex_assemble_names`
//! (a list replaces the defaults, `+list` appends to them, `-list` removes from them, `^list`
//! puts first; names may use `*` and `?`) against libssh2's own lists. Used when a host's
//! configuration is built (a list that leaves nothing fails that host, naming the line) and
//! before each handshake (`ssh::algorithms`).

use ssh2::{MethodType, Session};

use super::host::Algorithms;
use super::pattern::wildcard_match;

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
    let lists: [(&'static str, &Option<String>, MethodType); 5] = [
        ("KexAlgorithms", &algorithms.kex, MethodType::Kex),
        (
            "HostKeyAlgorithms",
            &algorithms.host_key,
            MethodType::HostKey,
        ),
        ("Ciphers", &algorithms.ciphers, MethodType::CryptCs),
        ("MACs", &algorithms.macs, MethodType::MacCs),
        (
            "PubkeyAcceptedAlgorithms",
            &algorithms.pubkey,
            MethodType::SignAlgo,
        ),
    ];
    lists.into_iter().find_map(|(keyword, spec, method)| {
        let spec = spec.as_deref()?;
        let all = supported(method);
        // An empty list from libssh2 means it could not be asked; the handshake will say.
        (!all.is_empty() && assemble(spec, all).is_empty())
            .then(|| (keyword, unusable(keyword, spec, all)))
    })
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
