//! OpenSSH's patterns (match.c): `*` and `?` wildcards, comma-separated lists with `!`
//! negation, and CIDR address lists (`Match localnetwork`).

use std::net::IpAddr;

/// match.c `match_pattern`: `*` and `?` wildcards, case-sensitive.
///
/// Every host is matched against every `Host` pattern of the config, so a config with a block
/// per host costs hosts x blocks calls: without wildcards this is a comparison, and ASCII
/// (host names, nearly always) is matched as bytes, with no allocation (collecting both into
/// `Vec<char>` made resolving 3000 hosts against 3000 blocks take 4.9 s).
pub fn match_pattern(s: &str, pattern: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return s == pattern;
    }
    if s.is_ascii() && pattern.is_ascii() {
        return glob(s.as_bytes(), pattern.as_bytes(), b'*', b'?');
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    glob(&s, &p, '*', '?')
}

/// `s` against `p`, in which `many` stands for any run and `one` for any one element.
fn glob<T: PartialEq + Copy>(s: &[T], p: &[T], many: T, one: T) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == many {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == many)
}

/// How a name fares against a pattern list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    /// A negated pattern matched.
    Negated,
    /// No pattern matched.
    No,
    /// A positive pattern matched and no negated one.
    Yes,
}

/// match.c `match_pattern_list`: comma-separated patterns, `!` negates; `lower` lowercases the
/// patterns (not the string).
pub fn match_pattern_list(s: &str, list: &str, lower: bool) -> ListMatch {
    let mut positive = false;
    for sub in list.split(',') {
        let (negated, sub) = match sub.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, sub),
        };
        let sub = if lower {
            sub.to_ascii_lowercase()
        } else {
            sub.to_string()
        };
        if match_pattern(s, &sub) {
            if negated {
                return ListMatch::Negated;
            }
            positive = true;
        }
    }
    if positive {
        ListMatch::Yes
    } else {
        ListMatch::No
    }
}

/// match.c `match_hostname`: the host lowercased against a lowercased pattern list.
pub fn match_hostname(host: &str, list: &str) -> bool {
    match_pattern_list(&host.to_ascii_lowercase(), list, true) == ListMatch::Yes
}

/// Host patterns as known_hosts holds them (any positive pattern matches and no negated one),
/// case-insensitive as OpenSSH matches host names.
pub fn pattern_list_match(patterns: &[String], name: &str) -> bool {
    match_hostname(name, &patterns.join(","))
}

/// `*` and `?` glob matching, case-insensitive.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    match_pattern(&name.to_ascii_lowercase(), &pattern.to_ascii_lowercase())
}

/// One entry of a CIDR list: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

/// Parses addrmatch.c's CIDR list (`10.0.0.0/8,192.168.1.1,::1/128`); Err names the bad entry.
pub fn parse_cidr_list(list: &str) -> Result<Vec<Cidr>, String> {
    list.split(',')
        .map(|entry| {
            let bad = || format!("invalid CIDR address `{entry}`");
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                    b.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(bad)?
                }
                Some(_) => return Err(bad()),
                None => max,
            };
            // addrmatch.c refuses an address with bits set beyond its prefix.
            if masked(addr, bits) != addr {
                return Err(bad());
            }
            Ok(Cidr { addr, bits })
        })
        .collect()
}

fn masked(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// Whether `addr` lies in any entry of `list`.
pub fn cidr_list_contains(list: &[Cidr], addr: IpAddr) -> bool {
    list.iter()
        .any(|c| addr.is_ipv4() == c.addr.is_ipv4() && masked(addr, c.bits) == c.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(match_pattern("web1", "web?"));
        assert!(match_pattern("a.b.example.com", "*.example.com"));
        assert!(!match_pattern("web12", "web?"));
        assert!(match_pattern("", "*"));
        assert!(!match_pattern("Web1", "web1"), "case-sensitive");
        assert!(wildcard_match("WEB?", "web1"));
        // Without wildcards: equality; `*` alone matches everything, also past a `*`.
        assert!(match_pattern("web1", "web1") && !match_pattern("web1", "web"));
        assert!(match_pattern("web1", "*") && match_pattern("web1", "w*1*"));
        assert!(!match_pattern("web", "web?*"));
        // Not ASCII: `?` stands for one character, as before.
        assert!(match_pattern("hôte", "h?te") && !match_pattern("hôte", "h??te"));
        assert!(match_pattern("hôte1", "hôte*") && !match_pattern("hote1", "hôte?"));
    }

    #[test]
    fn lists_and_negation() {
        assert_eq!(
            match_pattern_list("web1", "db*,web*", false),
            ListMatch::Yes
        );
        assert_eq!(
            match_pattern_list("web1", "*,!web1", false),
            ListMatch::Negated
        );
        assert_eq!(match_pattern_list("web1", "!db", false), ListMatch::No);
        assert!(match_hostname("WEB1", "Web*"));
        assert!(pattern_list_match(
            &["x".into(), "[h]:2200".into()],
            "[h]:2200"
        ));
    }

    #[test]
    fn cidr() {
        let list = parse_cidr_list("10.0.0.0/8,::1,192.168.1.0/24").unwrap();
        assert!(cidr_list_contains(&list, "10.1.2.3".parse().unwrap()));
        assert!(cidr_list_contains(&list, "::1".parse().unwrap()));
        assert!(!cidr_list_contains(&list, "192.168.2.1".parse().unwrap()));
        assert!(parse_cidr_list("10.0.0.1/8").is_err());
        assert!(parse_cidr_list("x").is_err());
        assert!(parse_cidr_list("10.0.0.0/33").is_err());
    }
}
