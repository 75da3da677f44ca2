//! Routes: the jump hosts through which a host is reached, from `ProxyJump` (or a recipe's
//! `via`, or `-J`), resolved as OpenSSH resolves them.

use super::config::{HostConfig, SshConfig};
use crate::host::HostTarget;

/// More hops than this is taken for a loop in the configuration.
const MAX_HOPS: usize = 8;

/// The hops of a `ProxyJump` value (`a`, `a,b`, `user@host:port`, `ssh://user@host:port`);
/// `none` (or nothing) means no hop.
pub fn parse_spec(spec: &str) -> Result<Vec<HostTarget>, String> {
    let spec = spec.trim();
    if spec.is_empty() || spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|hop| {
            let hop = hop.trim();
            let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
            let hop = hop.strip_suffix('/').unwrap_or(hop);
            if hop.is_empty() {
                return Err(format!("empty jump host in `{spec}`"));
            }
            HostTarget::parse(hop).map_err(|e| format!("jump host list `{spec}`: {e}"))
        })
        .collect()
}

/// One jump host of a route, with its resolved ssh config.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The jump host as written (`bastion`, `ops@10.0.0.1:2222`).
    pub target: HostTarget,
    /// Its options from the ssh config (user and port from `target` applied).
    pub config: HostConfig,
}

/// What identifies a connection: user, address and port.
pub fn identity(cfg: &HostConfig) -> String {
    format!("{}@{}:{}", cfg.user, cfg.hostname, cfg.port)
}

/// The jump hosts, outermost first, through which `dest` is reached. `over` replaces the
/// host's own `ProxyJump` (a recipe's `via`, the `-J` option; `"none"` means directly).
///
/// As with OpenSSH: in a chain `a,b` the host is reached through `b`, `b` through `a` (whatever
/// `b`'s own `ProxyJump` says), and `a` as its own config says (its `ProxyJump` included).
pub fn route(ssh: &SshConfig, dest: &HostConfig, over: Option<&str>) -> Result<Vec<Hop>, String> {
    let spec = match over {
        Some(s) => s.to_string(),
        None => match &dest.proxy_jump {
            Some(s) => s.clone(),
            None => return Ok(Vec::new()),
        },
    };
    let mut seen = vec![identity(dest)];
    chain(ssh, &spec, &mut seen)
}

fn chain(ssh: &SshConfig, spec: &str, seen: &mut Vec<String>) -> Result<Vec<Hop>, String> {
    let targets = parse_spec(spec)?;
    let mut hops: Vec<Hop> = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        let config = ssh.resolve(&target.alias, target.user.as_deref(), target.port);
        let id = identity(&config);
        if seen.contains(&id) {
            return Err(format!(
                "ProxyJump loop: jump host `{}` ({id}) would be reached through itself \
                 (exclude it from the `Host` pattern that sets ProxyJump, e.g. `Host * !{}`)",
                target.name, target.alias
            ));
        }
        seen.push(id);
        if seen.len() > MAX_HOPS + 1 {
            return Err(format!(
                "more than {MAX_HOPS} jump hosts in a row (`{spec}`)"
            ));
        }
        if i == 0 {
            if let Some(outer) = config.proxy_jump.clone() {
                hops = chain(ssh, &outer, seen)?;
            }
        }
        hops.push(Hop { target, config });
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> SshConfig {
        SshConfig::parse_str(text, Path::new("/tmp/cfg")).unwrap()
    }

    fn names(hops: &[Hop]) -> Vec<String> {
        hops.iter().map(|h| identity(&h.config)).collect()
    }

    #[test]
    fn specs() {
        assert!(parse_spec("none").unwrap().is_empty());
        assert!(parse_spec("").unwrap().is_empty());
        let hops = parse_spec("a, ops@b:2222,ssh://c@d:22").unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(
            (
                hops[1].user.as_deref(),
                hops[1].alias.as_str(),
                hops[1].port
            ),
            (Some("ops"), "b", Some(2222))
        );
        assert_eq!(
            (hops[2].user.as_deref(), hops[2].alias.as_str()),
            (Some("c"), "d")
        );
        assert!(parse_spec("a,,b").is_err());
        assert!(parse_spec("a:0").is_err());
    }

    #[test]
    fn routes_follow_openssh() {
        let cfg = config(
            "Host bastion\n  HostName 10.0.0.1\n  User ops\n  ProxyJump outer\n\
             Host outer\n  HostName 10.0.0.9\n  User edge\n\
             Host web*\n  ProxyJump bastion\n  User deploy\n\
             Host db\n  ProxyJump mid,bastion\n\
             Host mid\n  HostName 10.0.0.5\n  User m\n  ProxyJump nowhere\n",
        );
        let web = cfg.resolve("web1", None, None);
        // bastion is reached as its own config says: through outer.
        assert_eq!(
            names(&route(&cfg, &web, None).unwrap()),
            ["edge@10.0.0.9:22", "ops@10.0.0.1:22"]
        );
        // `none` and overrides.
        assert!(route(&cfg, &web, Some("none")).unwrap().is_empty());
        assert_eq!(
            names(&route(&cfg, &web, Some("x@1.2.3.4:2200")).unwrap()),
            ["x@1.2.3.4:2200"]
        );
        // In a chain, the second hop goes through the first whatever its own config says;
        // the first follows its own config (mid -> nowhere).
        let db = cfg.resolve("db", None, None);
        let hops = route(&cfg, &db, None).unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].target.name, "nowhere");
        assert_eq!(hops[1].target.name, "mid");
        assert_eq!(hops[2].target.name, "bastion");
    }

    #[test]
    fn loops_are_refused() {
        let cfg = config("Host *\n  ProxyJump bastion\n  User u\n");
        let bastion = cfg.resolve("bastion", None, None);
        let err = route(&cfg, &bastion, None).unwrap_err();
        assert!(err.contains("ProxyJump loop"), "{err}");
        assert!(err.contains("!bastion"), "{err}");
        let web = cfg.resolve("web", None, None);
        assert!(route(&cfg, &web, None).unwrap_err().contains("loop"));
        let ok = config("Host * !bastion\n  ProxyJump bastion\n");
        let web = ok.resolve("web", None, None);
        assert_eq!(route(&ok, &web, None).unwrap().len(), 1);
    }
}
