//! Host name canonicalization (`CanonicalizeHostname`, `CanonicalDomains`,
//! `CanonicalizeMaxDots`, `CanonicalizeFallbackLocal`, `CanonicalizePermittedCNAMEs`), as
//! ssh.c `resolve_canonicalize` and `check_follow_cname` do it: the name ssh would connect to,
//! found with the system resolver (`getaddrinfo(3)`, so `/etc/hosts` and DNS alike).

use std::ffi::CStr;

use super::addrinfo::AddrInfo;
use crate::ssh_syntax::pattern::{match_pattern_list, ListMatch};

/// `CanonicalizeHostname`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `no` (the default).
    No,
    /// `yes`: only for hosts reached directly.
    Yes,
    /// `always`: also behind a ProxyCommand or ProxyJump.
    Always,
}

/// Everything canonicalization reads from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `CanonicalizeHostname`.
    pub mode: Mode,
    /// `CanonicalDomains` (`none` ends the list).
    pub domains: Vec<String>,
    /// `CanonicalizeMaxDots` (default 1).
    pub max_dots: usize,
    /// `CanonicalizeFallbackLocal` (default yes).
    pub fallback_local: bool,
    /// `CanonicalizePermittedCNAMEs` as (source list, target list) pairs.
    pub cnames: Vec<(String, String)>,
    /// No ProxyCommand and no ProxyJump.
    pub direct: bool,
    /// `AddressFamily` as a libc `AF_*` value.
    pub family: i32,
}

/// What ssh does to `host` before its final pass: an address is written in its numeric form;
/// a name may gain a domain from `CanonicalDomains` or follow a permitted CNAME. Err: the
/// name resolves under no domain and `CanonicalizeFallbackLocal no`, or it resolves nowhere
/// when CNAME rules ask for a lookup of a direct host (ssh exits there too).
pub fn canonicalize(host: &str, rules: &Rules) -> Result<String, String> {
    if let Some(numeric) = numeric_address(host, rules.family) {
        return Ok(if numeric.eq_ignore_ascii_case(host) {
            host.to_string()
        } else {
            numeric
        });
    }
    let mut name = host.to_string();
    let mut found = false;
    if rules.mode != Mode::No && !is_addr_fast(host) && (rules.direct || rules.mode == Mode::Always)
    {
        if let Some(anchored) = host.strip_suffix('.') {
            match lookup(host, rules.family) {
                Some(cname) => {
                    name = anchored.to_string();
                    follow_cname(&mut name, &cname, rules);
                    found = true;
                }
                None => {
                    not_found(host, rules)?;
                }
            }
        } else if host.matches('.').count() <= rules.max_dots {
            for domain in &rules.domains {
                if domain.eq_ignore_ascii_case("none") {
                    break;
                }
                if let Some(cname) = lookup(&format!("{host}.{domain}."), rules.family) {
                    name = format!("{host}.{domain}");
                    follow_cname(&mut name, &cname, rules);
                    found = true;
                    break;
                }
            }
            if !found {
                not_found(host, rules)?;
            }
        }
    }
    if !found && !rules.cnames.is_empty() && (rules.direct || rules.mode == Mode::Always) {
        match lookup(&name, rules.family) {
            Some(cname) => follow_cname(&mut name, &cname, rules),
            None if rules.direct => {
                return Err(format!("could not resolve host name `{name}`"));
            }
            None => {}
        }
    }
    Ok(name)
}

fn not_found(host: &str, rules: &Rules) -> Result<String, String> {
    if rules.fallback_local {
        Ok(host.to_string())
    } else {
        Err(format!(
            "could not resolve host `{host}` in any of CanonicalDomains ({}), and \
             CanonicalizeFallbackLocal is no",
            rules.domains.join(" ")
        ))
    }
}

fn follow_cname(name: &mut String, cname: &str, rules: &Rules) {
    if cname.is_empty() || rules.cnames.is_empty() || cname == name.as_str() {
        return;
    }
    if rules.mode == Mode::No || (!rules.direct && rules.mode != Mode::Always) {
        return;
    }
    for (sources, targets) in &rules.cnames {
        if match_pattern_list(name, sources, true) == ListMatch::Yes
            && match_pattern_list(cname, targets, true) == ListMatch::Yes
        {
            *name = cname.to_string();
            return;
        }
    }
}

/// ssh.c `is_addr_fast`: looks like an address (digits and dots, or a `:` or `%`).
pub fn is_addr_fast(name: &str) -> bool {
    name.contains('%') || name.contains(':') || name.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// ssh.c `is_addr`: an address as `getaddrinfo(AI_NUMERICHOST)` reads one.
pub fn is_addr(name: &str, family: i32) -> bool {
    is_addr_fast(name) || numeric_address(name, family).is_some()
}

/// The numeric form of an address (`127.1` is `127.0.0.1`), `None` for anything else.
pub fn numeric_address(name: &str, family: i32) -> Option<String> {
    let addrs = AddrInfo::get(name, family, libc::AI_NUMERICHOST | libc::AI_NUMERICSERV)?;
    // SAFETY: `head` is a valid list from getaddrinfo, freed by AddrInfo's Drop.
    let first = unsafe { &*addrs.head };
    if !first.ai_next.is_null() {
        return None;
    }
    let mut buf = [0 as libc::c_char; 1025];
    // SAFETY: ai_addr/ai_addrlen describe a valid sockaddr; buf is writable for its length.
    let rc = unsafe {
        libc::getnameinfo(
            first.ai_addr,
            first.ai_addrlen,
            buf.as_mut_ptr(),
            buf.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NUMERICHOST,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminated buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Resolves `name`; `Some(canonical name or "")` when it has an address.
fn lookup(name: &str, family: i32) -> Option<String> {
    let addrs = AddrInfo::get(name, family, libc::AI_CANONNAME)?;
    // SAFETY: `head` is a valid list from getaddrinfo.
    let first = unsafe { &*addrs.head };
    if first.ai_canonname.is_null() {
        return Some(String::new());
    }
    // SAFETY: ai_canonname is a NUL-terminated string owned by the list.
    let cname = unsafe { CStr::from_ptr(first.ai_canonname) }.to_string_lossy();
    Some(crate::ssh_syntax::uri::valid_domain(&cname).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(mode: Mode, domains: &[&str]) -> Rules {
        Rules {
            mode,
            domains: domains.iter().map(|d| d.to_string()).collect(),
            max_dots: 1,
            fallback_local: true,
            cnames: Vec::new(),
            direct: true,
            family: libc::AF_UNSPEC,
        }
    }

    #[test]
    fn addresses_take_their_numeric_form() {
        assert_eq!(
            numeric_address("127.1", libc::AF_UNSPEC).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            numeric_address("0:0::1", libc::AF_UNSPEC).as_deref(),
            Some("::1")
        );
        assert_eq!(numeric_address("web1", libc::AF_UNSPEC), None);
        assert_eq!(numeric_address("::1", libc::AF_INET), None);
        assert_eq!(
            canonicalize("0:0::1", &rules(Mode::No, &[])).unwrap(),
            "::1"
        );
        assert!(is_addr("10.0.0.1", libc::AF_UNSPEC));
        assert!(!is_addr("web1", libc::AF_UNSPEC));
    }

    #[test]
    fn a_name_gains_the_first_domain_that_resolves() {
        // `localhost.` resolves everywhere; `.invalid` never does (RFC 6761).
        let r = rules(Mode::Yes, &["invalid", "localdomain"]);
        let got = canonicalize(
            "localhost",
            &Rules {
                max_dots: 0,
                ..r.clone()
            },
        )
        .unwrap();
        assert!(
            got == "localhost" || got == "localhost.localdomain",
            "{got}"
        );
        let strict = Rules {
            fallback_local: false,
            domains: vec!["invalid".into()],
            ..r
        };
        assert!(canonicalize("nohost-tether", &strict).is_err());
        assert_eq!(
            canonicalize(
                "nohost-tether",
                &Rules {
                    direct: false,
                    ..strict
                }
            )
            .unwrap(),
            "nohost-tether"
        );
    }
}
