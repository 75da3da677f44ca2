//! Host names as users write them: `web1` (an ssh config alias), `deploy@10.0.0.5:2222`,
//! `[::1]:2200`.

/// A host as named on the command line or in a recipe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostTarget {
    /// The name as written; it identifies the host in output and in recipes.
    pub name: String,
    /// The part looked up in the ssh config (`Host` patterns).
    pub alias: String,
    /// User given in the name (`user@`), overriding the config.
    pub user: Option<String>,
    /// Port given in the name (`:port`), overriding the config.
    pub port: Option<u16>,
    /// Jump hosts to reach it through, replacing the config's `ProxyJump` (a recipe's
    /// `via: "bastion"`; `"none"` means directly).
    pub via: Option<String>,
    /// Forward the local ssh-agent, replacing the config's `ForwardAgent` (a recipe's
    /// `forward_agent: true`).
    pub forward_agent: Option<bool>,
    /// The recipe's roles of this host, in declaration order (none without a recipe).
    pub roles: Vec<String>,
}

impl HostTarget {
    /// Parses `[user@]host[:port]`, with `[v6addr]:port` for IPv6.
    pub fn parse(name: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid host `{name}`: {why}");
        if name.trim().is_empty() {
            return Err(bad("empty name"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(bad("contains whitespace"));
        }
        let (user, rest) = match name.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("empty user before `@`")),
            None => (None, name),
        };
        let (alias, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match after.strip_prefix(':') {
                Some(p) => (addr.to_string(), Some(p)),
                None if after.is_empty() => (addr.to_string(), None),
                None => return Err(bad("junk after `]`")),
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').ok_or_else(|| bad("bad port"))?;
            (h.to_string(), Some(p))
        } else {
            (rest.to_string(), None)
        };
        let port = port
            .map(|p| match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(&format!("bad port `{p}`"))),
            })
            .transpose()?;
        if alias.is_empty() {
            return Err(bad("empty host name"));
        }
        Ok(HostTarget {
            name: name.to_string(),
            alias,
            user,
            port,
            via: None,
            forward_agent: None,
            roles: Vec::new(),
        })
    }

    /// This host with agent forwarding on or off (see [`HostTarget::forward_agent`]).
    pub fn with_forward_agent(mut self, on: Option<bool>) -> Self {
        self.forward_agent = on;
        self
    }

    /// This host with `roles` (see [`HostTarget::roles`]).
    pub fn with_roles(mut self, roles: Vec<String>) -> Self {
        self.roles = roles;
        self
    }

    /// This host, reached through `via` (see [`HostTarget::via`]).
    pub fn with_via(mut self, via: Option<String>) -> Self {
        self.via = via;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let t = HostTarget::parse("deploy@10.0.0.5:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.alias.as_str(), t.port),
            (Some("deploy"), "10.0.0.5", Some(2222))
        );
        let t = HostTarget::parse("web1").unwrap();
        assert_eq!((t.user, t.alias.as_str(), t.port), (None, "web1", None));
        let t = HostTarget::parse("[::1]:2200").unwrap();
        assert_eq!((t.alias.as_str(), t.port), ("::1", Some(2200)));
        assert!(HostTarget::parse("a:0").is_err());
        assert!(HostTarget::parse("a:x").is_err());
        assert!(HostTarget::parse("@a").is_err());
    }
}
