//! ProxyJump values as readconf.c `parse_jump` reads them: comma-separated hops, each
//! `[user@]host[:port]` or `ssh://[user@]host[:port]`, the last one nearest the target.

use super::port::port;

/// One hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// `user@`, if given.
    pub user: Option<String>,
    /// The host (brackets of `[addr]` removed).
    pub host: String,
    /// `:port`, if given.
    pub port: Option<u16>,
}

/// Parses a ProxyJump value other than `none`.
pub fn parse(spec: &str) -> Result<Vec<Hop>, String> {
    if spec.is_empty() {
        return Err("empty".into());
    }
    spec.split(',').map(hop).collect()
}

fn hop(s: &str) -> Result<Hop, String> {
    if s.is_empty() {
        return Err("empty jump host".into());
    }
    if let Some(uri) = s.strip_prefix("ssh://") {
        return ssh_uri(uri);
    }
    let (user, rest) = match s.rfind('@') {
        Some(0) => return Err(format!("empty user in `{s}`")),
        Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
        None => (None, s),
    };
    let (host, port_text) = host_port(rest).ok_or_else(|| format!("bad host in `{s}`"))?;
    let port = match port_text {
        Some(p) if !p.is_empty() => Some(port(p).ok_or_else(|| format!("bad port in `{s}`"))?),
        _ => None,
    };
    Ok(Hop { user, host, port })
}

fn ssh_uri(uri: &str) -> Result<Hop, String> {
    let (user, rest) = match uri.find('@') {
        Some(0) => return Err("empty user in ssh:// URI".into()),
        Some(i) => {
            let user = uri[..i].split(';').next().unwrap_or_default();
            (Some(user.to_string()), &uri[i + 1..])
        }
        None => (None, uri),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port_text) = host_port(rest).ok_or_else(|| format!("bad host in `ssh://{uri}`"))?;
    let port = match port_text {
        Some(p) if !p.is_empty() => {
            Some(port(p).ok_or_else(|| format!("bad port in `ssh://{uri}`"))?)
        }
        _ => None,
    };
    Ok(Hop { user, host, port })
}

/// misc.c `hpdelim` + `cleanhostname`: `host`, `host:port`, `[addr]:port`.
fn host_port(s: &str) -> Option<(String, Option<&str>)> {
    let (host, rest) = if let Some(inner) = s.strip_prefix('[') {
        let close = inner.find(']')?;
        (&inner[..close], &inner[close + 1..])
    } else {
        match s.find([':', '/']) {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match rest.chars().next() {
        None => None,
        Some(':') | Some('/') => Some(&rest[1..]),
        Some(_) => return None,
    };
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops() {
        let hops = parse("a,ops@b:2222,ssh://u@c:23,[10.0.0.1]:24").unwrap();
        assert_eq!(hops[0].host, "a");
        assert_eq!(
            (hops[1].user.as_deref(), hops[1].host.as_str(), hops[1].port),
            (Some("ops"), "b", Some(2222))
        );
        assert_eq!((hops[2].host.as_str(), hops[2].port), ("c", Some(23)));
        assert_eq!(
            (hops[3].host.as_str(), hops[3].port),
            ("10.0.0.1", Some(24))
        );
        assert!(parse("a,,b").is_err());
        assert!(parse("@a").is_err());
        assert!(parse("a:0").is_err());
    }
}
