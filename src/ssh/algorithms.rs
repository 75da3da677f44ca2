//! Algorithm preferences: the config's `KexAlgorithms`, `HostKeyAlgorithms`, `Ciphers`,
//! `MACs` and `PubkeyAcceptedAlgorithms` applied to what libssh2 supports, with ssh's forms
//! (kex.c `kex_assemble_names`): a list replaces the defaults, `+list` appends to them,
//! `-list` removes from them, `^list` puts first; names may use `*` and `?`. Host key
//! algorithms also follow known_hosts: the types recorded for the host come first, so the
//! server's key can be verified whatever else it offers.

use ssh2::{MethodType, Session};

use super::config::{wildcard_match, HostConfig};
use super::known_hosts;

/// Applies the preferences of `cfg` to `session` before its handshake. `recorded` are the
/// host key types known_hosts holds for the host; `pinned`, the only type a reconnect may
/// accept. Err names the keyword whose list leaves nothing libssh2 can use.
pub fn apply(
    session: &Session,
    cfg: &HostConfig,
    recorded: &[String],
    pinned: Option<&str>,
) -> Result<(), String> {
    let a = &cfg.algorithms;
    let lists: [(&str, &Option<String>, &[MethodType]); 4] = [
        ("KexAlgorithms", &a.kex, &[MethodType::Kex]),
        (
            "Ciphers",
            &a.ciphers,
            &[MethodType::CryptCs, MethodType::CryptSc],
        ),
        ("MACs", &a.macs, &[MethodType::MacCs, MethodType::MacSc]),
        (
            "PubkeyAcceptedAlgorithms",
            &a.pubkey,
            &[MethodType::SignAlgo],
        ),
    ];
    for (keyword, spec, methods) in lists {
        let Some(spec) = spec else { continue };
        for method in methods {
            let supported = session.supported_algs(*method).unwrap_or_default();
            let list = assemble(spec, &supported);
            if list.is_empty() {
                return Err(unusable(keyword, spec, &supported));
            }
            session
                .method_pref(*method, &list.join(","))
                .map_err(|e| format!("{keyword} {spec}: {e}"))?;
        }
    }
    // Host certificates are never accepted (known_hosts' @cert-authority is not followed):
    // negotiating one would only fail the check.
    let supported: Vec<&str> = session
        .supported_algs(MethodType::HostKey)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !n.contains("-cert-"))
        .collect();
    let mut list = match &a.host_key {
        Some(spec) => assemble(spec, &supported),
        None => supported.iter().map(|s| s.to_string()).collect(),
    };
    if list.is_empty() {
        return Err(unusable(
            "HostKeyAlgorithms",
            a.host_key.as_deref().unwrap_or_default(),
            &supported,
        ));
    }
    let first: Vec<&str> = match pinned {
        Some(kt) => known_hosts::algorithms_for(kt).to_vec(),
        None => recorded
            .iter()
            .flat_map(|t| known_hosts::algorithms_for(t).iter().copied())
            .collect(),
    };
    let mut ordered: Vec<String> = first
        .iter()
        .filter(|n| list.iter().any(|l| l == *n))
        .map(|n| n.to_string())
        .collect();
    if pinned.is_some() && !ordered.is_empty() {
        list = ordered;
    } else {
        ordered.extend(list.into_iter().filter(|n| !first.contains(&n.as_str())));
        list = ordered;
    }
    session
        .method_pref(MethodType::HostKey, &list.join(","))
        .map_err(|e| format!("HostKeyAlgorithms: {e}"))
}

fn unusable(keyword: &str, spec: &str, supported: &[&str]) -> String {
    format!(
        "{keyword} {spec} leaves no algorithm that libssh2 supports (it supports: {})",
        supported.join(",")
    )
}

/// kex.c `kex_assemble_names` against `supported` (libssh2's list, which is also the
/// default).
pub fn assemble(spec: &str, supported: &[&str]) -> Vec<String> {
    let matching = |patterns: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in patterns.split(',').filter(|p| !p.is_empty()) {
            for s in supported {
                if wildcard_match(p, s) && !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
        out
    };
    let defaults: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let all = ["a1", "a2", "b1", "c1"];
        assert_eq!(assemble("b1,a*", &all), ["b1", "a1", "a2"]);
        assert_eq!(assemble("+c1,x", &all), ["a1", "a2", "b1", "c1"]);
        assert_eq!(assemble("-a*", &all), ["b1", "c1"]);
        assert_eq!(assemble("^c1", &all), ["c1", "a1", "a2", "b1"]);
        assert!(assemble("nothing", &all).is_empty());
    }
}
