//! Routes: the jump hosts through which a host is reached, from its resolved `ProxyJump` (or
//! a recipe's `via`, or `-J`, which the resolution puts first), as OpenSSH resolves them.

use super::config::{self, HostConfig, HostError, Route, SshConfig};
use super::connect;
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
        .map(|written| {
            let written = written.trim();
            if written.is_empty() {
                return Err(format!("empty jump host in `{spec}`"));
            }
            // One hop at a time, so that each keeps the name it was written with.
            let hop = config::parse_jump_spec(written)
                .map_err(|e| format!("jump host list `{spec}`: {e}"))?
                .into_iter()
                .next()
                .ok_or_else(|| format!("empty jump host in `{spec}`"))?;
            HostTarget::jump_hop(written, hop.user, hop.host, hop.port)
                .map_err(|e| format!("jump host list `{spec}`: {e}"))
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

/// What a jump host's connection is shared by, among the hosts whose routes pass through
/// it: all of its resolved config that bears on reaching and trusting it (address, user,
/// route, known_hosts files and policy, `HostKeyAlias`, identities, algorithms...), not the
/// words it was named by. Two aliases of one address with other settings are two connections,
/// as they are two `ssh` commands (stop 44 tester t53: keyed by `user@host:port`, the first
/// alias to connect served the other's hosts, through its own ProxyCommand and host key check).
pub fn sharing_key(cfg: &HostConfig) -> String {
    let mut cfg = cfg.clone();
    for said in [&mut cfg.alias, &mut cfg.ssh_command] {
        said.clear();
    }
    cfg.ssh_g.clear();
    cfg.config_files.clear();
    format!("{cfg:?}")
}

/// What identifies a connection: user, address and port.
pub fn identity(cfg: &HostConfig) -> String {
    format!(
        "{}@{}",
        cfg.user,
        connect::host_port(&cfg.hostname, cfg.port)
    )
}

/// Why no route to a host can be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The route itself is wrong (a loop, too many hops, a malformed list): refused before
    /// anything connects.
    Invalid(String),
    /// A jump host's own configuration is refused (see [`HostError`]).
    Hop(HostError),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::Invalid(m) => f.write_str(m),
            RouteError::Hop(e) => e.fmt(f),
        }
    }
}

/// The jump hosts, outermost first, through which `dest` is reached (its resolved
/// [`Route::Jump`]: the config's ProxyJump, or `-J` / a recipe's `via`, which the resolution
/// already put first).
///
/// As with OpenSSH: in a chain `a,b` the host is reached through `b`, `b` through `a` (as
/// `ssh -J a b` reaches `b`: whatever `b`'s own ProxyJump or ProxyCommand say), and `a` as its
/// own config says (its own ProxyJump or ProxyCommand included).
///
/// A loop is only where ssh's would never end: a first hop whose own route leads back to a
/// first hop on the way (`Host *` + `ProxyJump bastion`, which bastion matches too). A hop at
/// the destination's address, or two hops at one (`ssh -J bast bast`), is a route ssh takes
/// (stop 39 tester t30: refused as a loop).
pub fn route(ssh: &SshConfig, dest: &HostConfig) -> Result<Vec<Hop>, RouteError> {
    let Route::Jump(spec) = &dest.route else {
        return Ok(Vec::new());
    };
    let hops = chain(ssh, spec, &mut Vec::new())?;
    if hops.len() > MAX_HOPS {
        return Err(RouteError::Invalid(format!(
            "more than {MAX_HOPS} jump hosts in a row (`{spec}`)"
        )));
    }
    Ok(hops)
}

fn chain(ssh: &SshConfig, spec: &str, seen: &mut Vec<String>) -> Result<Vec<Hop>, RouteError> {
    let mut targets = parse_spec(spec).map_err(RouteError::Invalid)?;
    // ssh.c reaches the last hop with `ssh -J <the others>`: a list that starts with `none`
    // (`none,b`) is `ssh -J none b`, which reaches `b` directly, ignoring b's own ProxyJump.
    // (Further in, `a,none,b`, `none` is a host name, as in ssh.)
    let direct_first = targets.len() > 1 && targets[0].name.eq_ignore_ascii_case("none");
    let before_all: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    if direct_first {
        targets.remove(0);
    }
    let skipped = usize::from(direct_first);
    let mut hops: Vec<Hop> = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let proxy_jump = match (i, direct_first) {
            (0, false) => None,
            _ => Some(before_all[..i + skipped].join(",")),
        };
        let request = config::Request {
            name: target.name.clone(),
            alias: target.alias.clone(),
            user: target.user.clone(),
            port: target.port,
            proxy_jump,
            hop: true,
        };
        let config = ssh.resolve_request(&request).map_err(RouteError::Hop)?;
        // Only a first hop's own route is followed (the others are reached through the hops
        // before them): a loop is a first hop asked for again on that way, by the same words
        // (what ssh recurses on), not one at the same address under another alias (stop 39
        // tester t32: `web1` through `web1alias`, one HostName:Port, was refused).
        if i == 0 {
            let asked = format!("{:?}", (&target.name, &target.user, target.port));
            let id = identity(&config);
            if seen.contains(&asked) {
                return Err(RouteError::Invalid(format!(
                    "ProxyJump loop: jump host `{}` ({id}) would be reached through itself \
                     (exclude it from the `Host` pattern that sets ProxyJump, e.g. `Host * !{}`)",
                    target.name, target.alias
                )));
            }
            seen.push(asked);
            if seen.len() > MAX_HOPS {
                return Err(RouteError::Invalid(format!(
                    "more than {MAX_HOPS} jump hosts in a row (`{spec}`)"
                )));
            }
            if let Route::Jump(outer) = &config.route {
                hops = chain(ssh, outer, seen)?;
            }
        }
        hops.push(Hop {
            target: target.clone(),
            config,
        });
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
        // `[addr]:port` is an address and a port here (readconf.c parse_jump), unlike in a
        // destination.
        let hops = parse_spec("[::1]:2222,u@[h],[10.0.0.1]").unwrap();
        let parts: Vec<_> = hops
            .iter()
            .map(|h| (h.user.as_deref(), h.alias.as_str(), h.port, h.name.as_str()))
            .collect();
        assert_eq!(
            parts,
            [
                (None, "::1", Some(2222), "[::1]:2222"),
                (Some("u"), "h", None, "u@[h]"),
                (None, "10.0.0.1", None, "[10.0.0.1]"),
            ]
        );
        assert!(parse_spec("a;b").is_err());
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
        let web = cfg.resolve("web1", None, None).unwrap();
        // bastion is reached as its own config says: through outer.
        assert_eq!(
            names(&route(&cfg, &web).unwrap()),
            ["edge@10.0.0.9:22", "ops@10.0.0.1:22"]
        );
        // `none` and overrides (-J, a recipe's via) come first, as on ssh's command line.
        let target = HostTarget::parse("web1").unwrap();
        let direct = cfg.resolve_target(&target, Some("none")).unwrap();
        assert!(route(&cfg, &direct).unwrap().is_empty());
        let over = cfg.resolve_target(&target, Some("x@1.2.3.4:2200")).unwrap();
        assert_eq!(names(&route(&cfg, &over).unwrap()), ["x@1.2.3.4:2200"]);
        // In a chain, the second hop goes through the first whatever its own config says;
        // the first follows its own config (mid -> nowhere).
        let db = cfg.resolve("db", None, None).unwrap();
        let hops = route(&cfg, &db).unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].target.name, "nowhere");
        assert_eq!(hops[1].target.name, "mid");
        assert_eq!(hops[2].target.name, "bastion");
        // Fresh-eyes finding: `none,b` is `ssh -J none b`: b directly, its own ProxyJump
        // not followed; `none` further in is a host name, as in ssh.
        let cfg = config(
            "Host x\n  ProxyJump none,mid\nHost y\n  ProxyJump bastion,none,mid\n\
             Host mid\n  HostName 10.0.0.5\n  User m\n  ProxyJump nowhere\n\
             Host bastion\n  HostName 10.0.0.1\n  User ops\n",
        );
        let x = cfg.resolve("x", None, None).unwrap();
        assert_eq!(names(&route(&cfg, &x).unwrap()), ["m@10.0.0.5:22"]);
        let y = cfg.resolve("y", None, None).unwrap();
        let hops = route(&cfg, &y).unwrap();
        let written: Vec<&str> = hops.iter().map(|h| h.target.name.as_str()).collect();
        assert_eq!(written, ["bastion", "none", "mid"]);
    }

    #[test]
    fn loops_are_refused() {
        let cfg = config("Host *\n  ProxyJump bastion\n  User u\n");
        let bastion = cfg.resolve("bastion", None, None).unwrap();
        let err = route(&cfg, &bastion).unwrap_err().to_string();
        assert!(err.contains("ProxyJump loop"), "{err}");
        assert!(err.contains("!bastion"), "{err}");
        let web = cfg.resolve("web", None, None).unwrap();
        assert!(route(&cfg, &web).unwrap_err().to_string().contains("loop"));
        let ok = config("Host * !bastion\n  ProxyJump bastion\n");
        let web = ok.resolve("web", None, None).unwrap();
        assert_eq!(route(&ok, &web).unwrap().len(), 1);
        // A hop at the destination's own address, or two hops at one address, are routes
        // ssh takes (`ssh -J bast bast`), not loops (stop 39 tester t30).
        let same = config(
            "Host bast bast2 inner inner2\n  HostName 10.0.0.1\n  Port 2222\n  User u\n\
             Host inner\n  ProxyJump bast\nHost inner2\n  ProxyJump bast,bast2\n",
        );
        let inner = same.resolve("inner", None, None).unwrap();
        assert_eq!(names(&route(&same, &inner).unwrap()), ["u@10.0.0.1:2222"]);
        let inner2 = same.resolve("inner2", None, None).unwrap();
        assert_eq!(route(&same, &inner2).unwrap().len(), 2);
        // A first hop reached through an alias at its own address is no loop either.
        let alias = config(
            "Host web1 web1alias web2\n  HostName 10.0.0.1\n  Port 2222\n  User u\n\
             Host web2\n  ProxyJump web1\nHost web1\n  ProxyJump web1alias\n",
        );
        let web2 = alias.resolve("web2", None, None).unwrap();
        assert_eq!(route(&alias, &web2).unwrap().len(), 2);
        // Two first hops that lead to each other are.
        let pair = config("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n");
        let x = pair.resolve("a", None, None).unwrap();
        assert!(route(&pair, &x).unwrap_err().to_string().contains("loop"));
    }
}
