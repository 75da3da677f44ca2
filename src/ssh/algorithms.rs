//! Algorithm preferences: the config's `KexAlgorithms`, `HostKeyAlgorithms`, `Ciphers`,
//! `MACs` and `PubkeyAcceptedAlgorithms` applied to what libssh2 supports, with ssh's forms
//! (kex.c `kex_assemble_names`): a list replaces the defaults, `+list` appends to them,
//! `-list` removes from them, `^list` puts first; names may use `*` and `?`. Host key
//! algorithms also follow known_hosts, as ssh orders them (sshconnect2.c
//! `order_hostkeyalgs`): certificate types first when a `@cert-authority` line applies to the
//! host, then the types recorded for it, so the server's key can be verified whatever else it
//! offers. Certificate types are not negotiated for a host no CA line names: its certificate
//! could only be checked as the plain key inside it.

use ssh2::{MethodType, Session};

use super::certificate::{self, is_certificate_type};
use super::config::{
    assemble, assemble_from, pubkey_accepted, rsa_signatures, supported, unusable, HostConfig,
};
use super::kexinit::Offer;
use super::known_hosts;

/// What known_hosts says about a host, for ordering its host key algorithms.
#[derive(Debug, Clone, Copy)]
pub struct KnownTypes<'a> {
    /// The plain key types recorded for the host.
    pub recorded: &'a [String],
    /// Whether a `@cert-authority` line applies to it.
    pub authority: bool,
    /// On a reconnect, the type of the key the first connection saw: the only one accepted.
    pub pinned: Option<&'a str>,
}

/// The host certificate algorithms libssh2 can negotiate, in its order.
pub fn certificate_algorithms(session: &Session) -> Vec<&'static str> {
    session
        .supported_algs(MethodType::HostKey)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| is_certificate_type(n))
        .collect()
}

/// The CA signature algorithms a host certificate may be signed with: `CASignatureAlgorithms`
/// (with ssh's `+`, `-`, `^` forms), else ssh's default list.
pub fn ca_signature_algorithms(cfg: &HostConfig) -> Vec<String> {
    let defaults = certificate::DEFAULT_CA_SIGNATURE_ALGORITHMS;
    match &cfg.algorithms.ca_signature {
        Some(spec) => assemble_from(spec, defaults, certificate::ALL_SIGNATURE_ALGORITHMS),
        None => defaults.iter().map(|s| s.to_string()).collect(),
    }
}

/// What tether offered in a handshake, each list in its order (see [`apply`]); `kex`,
/// `ciphers` and `macs` are empty where the config left them to libssh2.
#[derive(Debug, Clone, Default)]
pub struct Offered {
    /// Key exchange methods.
    pub kex: Vec<String>,
    /// Host key types.
    pub host_key: Vec<String>,
    /// Ciphers.
    pub ciphers: Vec<String>,
    /// MACs.
    pub macs: Vec<String>,
}

impl Offered {
    /// The first list with nothing in common with what the server offers (`theirs`), in
    /// ssh's words (kex.c: "no matching key exchange method found"), with both lists and
    /// where tether's came from: the keyword of `cfg` that set it, or libssh2's own. A MAC is
    /// needed only where the cipher both take carries none (an AEAD cipher has its own).
    pub fn mismatch(&self, theirs: &Offer, cfg: &HostConfig) -> Option<String> {
        let a = &cfg.algorithms;
        // A list the config left unset was libssh2's whole list (see `apply`).
        let or_all = |list: &Vec<String>, method| -> Vec<String> {
            match list.is_empty() {
                true => supported(method).iter().map(|s| s.to_string()).collect(),
                false => list.clone(),
            }
        };
        let (kex, ciphers, macs) = (
            or_all(&self.kex, MethodType::Kex),
            or_all(&self.ciphers, MethodType::CryptCs),
            or_all(&self.macs, MethodType::MacCs),
        );
        let cipher = ciphers.iter().find(|c| theirs.ciphers.contains(c));
        let aead = cipher.is_some_and(|c| c.contains("-gcm@") || c.starts_with("chacha20-"));
        let lists = [
            (
                "key exchange method",
                "KexAlgorithms",
                &kex,
                &theirs.kex,
                &a.kex,
            ),
            (
                "host key type",
                "HostKeyAlgorithms",
                &self.host_key,
                &theirs.host_key,
                &a.host_key,
            ),
            ("cipher", "Ciphers", &ciphers, &theirs.ciphers, &a.ciphers),
            ("MAC", "MACs", &macs, &theirs.macs, &a.macs),
        ];
        let found = lists
            .into_iter()
            .find_map(|(what, keyword, ours, their, set)| {
                if ours.iter().any(|o| their.contains(o)) || (what == "MAC" && aead) {
                    return None;
                }
                let source = match set {
                    Some(spec) => format!("{keyword} {spec} in the ssh config"),
                    None => "all that libssh2 supports".to_string(),
                };
                Some(format!(
                    "no matching {what} found: tether offers {} ({source}), the server offers {}",
                    ours.join(","),
                    their.join(",")
                ))
            });
        found
    }
}

/// Applies the preferences of `cfg` to `session` before its handshake, host key algorithms
/// ordered by what `known` says; what it offers. Err names the keyword whose list leaves
/// nothing libssh2 can use.
pub fn apply(session: &Session, cfg: &HostConfig, known: KnownTypes) -> Result<Offered, String> {
    let KnownTypes {
        recorded,
        authority,
        pinned,
    } = known;
    let a = &cfg.algorithms;
    let lists: [(&str, &Option<String>, &[MethodType]); 3] = [
        ("KexAlgorithms", &a.kex, &[MethodType::Kex]),
        (
            "Ciphers",
            &a.ciphers,
            &[MethodType::CryptCs, MethodType::CryptSc],
        ),
        ("MACs", &a.macs, &[MethodType::MacCs, MethodType::MacSc]),
    ];
    let mut offered = Offered::default();
    for (keyword, spec, methods) in lists {
        // Unset: libssh2's own list, which `Offered::mismatch` reads only after a failed
        // handshake (nothing asked here on every connection).
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
            offered.set(*method, list);
        }
    }
    // PubkeyAcceptedAlgorithms: the keys offered follow it (`auth.rs`); libssh2 is told only
    // the RSA signatures it allows, as it cannot list what it signs with.
    if let Some(spec) = &a.pubkey {
        let rsa = rsa_signatures(&pubkey_accepted(Some(spec)));
        if !rsa.is_empty() {
            session
                .method_pref(MethodType::SignAlgo, &rsa.join(","))
                .map_err(|e| format!("PubkeyAcceptedAlgorithms {spec}: {e}"))?;
        }
    }
    let certificates = authority || pinned.is_some_and(is_certificate_type);
    let supported: Vec<&str> = session
        .supported_algs(MethodType::HostKey)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| certificates || !is_certificate_type(n))
        .collect();
    let mut list = match &a.host_key {
        Some(spec) => assemble(spec, &supported),
        // In ssh's order (libssh2 puts ECDSA before ed25519), so that of the types recorded
        // for a host the one ssh asks for is asked for (see `first` below).
        None => {
            let rank = |n: &str| {
                crate::ssh::config::PUBKEY_DEFAULT
                    .iter()
                    .position(|o| *o == n)
            };
            let mut names: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
            names.sort_by_key(|n| rank(n).unwrap_or(usize::MAX));
            names
        }
    };
    if list.is_empty() {
        return Err(unusable(
            "HostKeyAlgorithms",
            a.host_key.as_deref().unwrap_or_default(),
            &supported,
        ));
    }
    let first: Vec<String> = match pinned {
        Some(kt) => known_hosts::algorithms_for(kt)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        // As sshconnect.c `order_hostkeyalgs`: the algorithms of recorded types first, in the
        // list's own order, not known_hosts' (stop 44 tester t55: an RSA line before an
        // ed25519 one had RSA negotiated, where ssh asks for ed25519 and finds it changed).
        None => {
            let of_recorded: Vec<&str> = recorded
                .iter()
                .flat_map(|t| known_hosts::algorithms_for(t).iter().copied())
                .collect();
            list.iter()
                .filter(|n| authority && is_certificate_type(n))
                .chain(list.iter().filter(|n| of_recorded.contains(&n.as_str())))
                .cloned()
                .collect()
        }
    };
    let mut ordered: Vec<String> = Vec::new();
    for n in first.iter().filter(|n| list.contains(n)) {
        if !ordered.contains(n) {
            ordered.push(n.clone());
        }
    }
    if pinned.is_some() && !ordered.is_empty() {
        list = ordered;
    } else {
        ordered.extend(list.into_iter().filter(|n| !first.contains(n)));
        list = ordered;
    }
    session
        .method_pref(MethodType::HostKey, &list.join(","))
        .map_err(|e| format!("HostKeyAlgorithms: {e}"))?;
    offered.host_key = list;
    Ok(offered)
}

impl Offered {
    /// Keeps `list` as what was offered for `method` (the client-to-server list of a pair).
    fn set(&mut self, method: MethodType, list: Vec<String>) {
        match method {
            MethodType::Kex => self.kex = list,
            MethodType::CryptCs => self.ciphers = list,
            MethodType::MacCs => self.macs = list,
            _ => {}
        }
    }
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
        // CASignatureAlgorithms: `+` selects from every algorithm, not only the defaults.
        assert_eq!(assemble_from("+c1", &["a1"], &all), ["a1", "c1"]);
        assert_eq!(assemble_from("-a1", &["a1", "b1"], &all), ["b1"]);
    }
}
