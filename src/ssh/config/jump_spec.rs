//! ProxyJump values as readconf.c `parse_jump` reads them: comma-separated hops, each
//! `[user@]host[:port]` or `ssh://[user@]host[:port]`, the last one nearest the target.

use crate::ssh_syntax::port::port;

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

impl Hop {
    /// `[user@]host[:port]`, the host in brackets where it has a `:` (an IPv6 address): a
    /// hop as [`parse`] reads it back.
    pub fn written(&self) -> String {
        let mut out = String::new();
        if let Some(user) = &self.user {
            out.push_str(user);
            out.push('@');
        }
        if self.host.contains(':') {
            out.push_str(&format!("[{}]", self.host));
        } else {
            out.push_str(&self.host);
        }
        if let Some(port) = self.port {
            out.push_str(&format!(":{port}"));
        }
        out
    }
}

/// The hops before the last as written (`a,b` of `a,b,c`, none for one hop) and the last
/// hop read: what readconf.c `parse_jump` keeps as `jump_extra` and as `jump_user`,
/// `jump_host`, `jump_port`.
pub fn split_last(spec: &str) -> Result<(Option<&str>, Hop), String> {
    let last = parse(spec)?.pop().ok_or_else(|| "empty".to_string())?;
    Ok((spec.rfind(',').map(|i| &spec[..i]), last))
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
        // As a destination's: the user percent-decoded, the host a valid name (stop 44
        // tester t53: `ssh://ro%6Ft@h` logged in as `ro%6Ft`, `ssh://h%2dx` was a host name).
        let (user, host, port) = crate::ssh_syntax::uri::parse_ssh_uri(uri)?;
        return Ok(Hop { user, host, port });
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

    #[test]
    fn the_last_hop_is_read_and_written_back() {
        let (extra, last) = split_last("a,ssh://ro%6Ft@[::1]:2201").unwrap();
        assert_eq!(
            (extra, last.written().as_str()),
            (Some("a"), "root@[::1]:2201")
        );
        let (extra, last) = split_last("ops@b").unwrap();
        assert_eq!((extra, last.written().as_str()), (None, "ops@b"));
        assert!(split_last("a,,b").is_err());
    }

    /// A hop's ssh:// URI is read as a destination's (stop 44 tester t53).
    #[test]
    fn uri_hops_are_read_as_destinations() {
        let hop = |s: &str| {
            let h = parse(s).unwrap().remove(0);
            (h.user, h.host, h.port)
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            hop("ssh://ro%6Ft@h:2200"),
            (some("root"), "h".into(), Some(2200))
        );
        assert_eq!(
            hop("ssh://alice%40corp.com@h"),
            (some("alice@corp.com"), "h".into(), None)
        );
        assert_eq!(hop("ssh://u;fp=x@h/"), (some("u"), "h".into(), None));
        assert_eq!(hop("ssh://[::1]:2201"), (None, "::1".into(), Some(2201)));
        for bad in [
            "ssh://h%2dx",
            "ssh://u%zz@h",
            "ssh://u%00@h",
            "ssh://h/path",
            "ssh://-h",
            "ssh://@h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
