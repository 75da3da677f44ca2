//! Host names as users write them: `web1` (an ssh config alias), `deploy@10.0.0.5:2222`,
//! `ssh://root@[::1]:2200`.

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
    /// Parses `[user@]host[:port]` (see [`split_destination`]: brackets are part of the name,
    /// as in ssh), or
    /// `ssh://[user@]host[:port][/]` as ssh reads it (see [`parse_ssh_uri`](crate::ssh_syntax::uri::parse_ssh_uri)).
    pub fn parse(name: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid host `{name}`: {why}");
        if name.trim().is_empty() {
            return Err(bad("empty name"));
        }
        if name.chars().any(char::is_whitespace) {
            return Err(bad("contains whitespace"));
        }
        let (user, alias, port) = match name.strip_prefix("ssh://") {
            Some(uri) => crate::ssh_syntax::uri::parse_ssh_uri(uri),
            None => split_destination(name),
        }
        .map_err(|why| bad(&why))?;
        HostTarget {
            name: name.to_string(),
            alias,
            user,
            port,
            via: None,
            forward_agent: None,
            roles: Vec::new(),
        }
        .checked()
        .map_err(bad)
    }

    /// A jump host of a `ProxyJump`/`-J` list (`name` as written) from the `user`, `host`
    /// and `port` readconf.c `parse_jump` splits it into: there, unlike in a destination,
    /// `[addr]:port` is an address and a port (the ssh config's `jump_spec` splits it). Err
    /// as [`HostTarget::parse`] for a name or user with shell syntax.
    pub fn jump_hop(
        name: &str,
        user: Option<String>,
        host: String,
        port: Option<u16>,
    ) -> Result<Self, String> {
        HostTarget {
            name: name.to_string(),
            alias: host,
            user,
            port,
            via: None,
            forward_agent: None,
            roles: Vec::new(),
        }
        .checked()
        .map_err(|why| format!("invalid jump host `{name}`: {why}"))
    }

    /// Refuses a host name or user that ssh refuses (ssh.c `valid_hostname`, `valid_ruser`,
    /// the CVE-2023-51385 fix): they reach `%h` and `%r` in `ProxyCommand`, `Match exec` and
    /// `LocalCommand`, which run through a shell, so shell syntax in them would run. A comma
    /// too, as ssh refuses it (tester t122: `tether hosts -G 'c1,c2'` resolved the name as
    /// `Host c1,c2` matched it, where ssh says the host name has invalid characters).
    fn checked(self) -> Result<Self, &'static str> {
        let shell = |c: char, set: &str| set.contains(c) || c.is_control();
        if self.alias.starts_with('-')
            || self
                .alias
                .chars()
                .any(|c| c.is_whitespace() || shell(c, "'`\"$\\;&<>|(){},"))
        {
            return Err(
                "the host name contains characters ssh refuses (shell syntax, a leading `-`)",
            );
        }
        if let Some(user) = &self.user {
            if !crate::ssh_syntax::uri::valid_remote_user(user) {
                return Err(
                    "the user contains characters ssh refuses (shell syntax, a leading `-`)",
                );
            }
        }
        Ok(self)
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

/// `[user@]host[:port]`: (user, host, port), or why not. The user is what precedes the last
/// `@`, as ssh splits it. `:port` is tether's (Capistrano's) form, which ssh does not read:
/// it is split off only a plain name with one `:`. A name with `[` or `]` is taken whole,
/// as ssh takes it (`[::1]` is a host name with brackets, which `Host` patterns match as
/// written and which does not resolve); an IPv6 address with a port is `ssh://[::1]:2222`.
fn split_destination(name: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let (user, rest) = match name.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        Some(_) => return Err("empty user before `@`".into()),
        None => (None, name),
    };
    let bracketed = rest.contains(['[', ']']);
    let (alias, port) = match rest.split_once(':') {
        Some((h, p)) if !bracketed && !p.contains(':') => (h.to_string(), Some(p)),
        _ => (rest.to_string(), None),
    };
    // As ssh reads `-p` and a jump host's `:port` (`-J h:ssh`): a number or a service name.
    let port = port
        .map(|p| crate::ssh_syntax::port::port(p).ok_or_else(|| format!("bad port `{p}`")))
        .transpose()?;
    if alias.is_empty() {
        return Err("empty host name".into());
    }
    Ok((user, alias, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_users_ssh_refuses_are_refused() {
        for bad in [
            "a;b",
            "a|b",
            "a&b",
            "a$b",
            "a`b`",
            "a(b)",
            "a{b}",
            "a<b",
            "a>b",
            "a'b",
            "a\"b",
            "a\\b",
            "-oProxyCommand=x",
            "a\u{1}b",
            "u;x@h",
            "u`x`@h",
            "-u@h",
            "u\\@h",
            "u(x)@h",
            "ssh://u%3Bx@h",
        ] {
            assert!(HostTarget::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for good in [
            "web1",
            "u@h",
            "u.x-y_z@h-1.example.com:2222",
            "[::1]:22",
            "[::1]",
            "h%eth0",
        ] {
            assert!(HostTarget::parse(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn forms() {
        let t = HostTarget::parse("deploy@10.0.0.5:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.alias.as_str(), t.port),
            (Some("deploy"), "10.0.0.5", Some(2222))
        );
        let t = HostTarget::parse("web1").unwrap();
        assert_eq!((t.user, t.alias.as_str(), t.port), (None, "web1", None));
        // Brackets are part of the name, as ssh reads it; no port is split off such a name.
        for (name, alias, user) in [
            ("[::1]", "[::1]", None),
            ("[::1]:2200", "[::1]:2200", None),
            ("u@[::1]", "[::1]", Some("u")),
            ("u@[h]:22", "[h]:22", Some("u")),
            ("[::1", "[::1", None),
            ("a]b:1", "a]b:1", None),
            ("::1", "::1", None),
            ("fe80::1%eth0", "fe80::1%eth0", None),
        ] {
            let t = HostTarget::parse(name).unwrap();
            assert_eq!(
                (t.alias.as_str(), t.user.as_deref(), t.port),
                (alias, user, None)
            );
        }
        assert!(HostTarget::parse("a:0").is_err());
        assert!(HostTarget::parse("a:x").is_err());
        // A service name, as `ssh -p` and a jump host's `:port` read it (stop 41 tester t40).
        assert_eq!(HostTarget::parse("root@a:ssh").unwrap().port, Some(22));
        assert!(HostTarget::parse("@a").is_err());
    }

    #[test]
    fn ssh_uris() {
        let t = |s: &str| {
            let h = HostTarget::parse(s).unwrap();
            (h.user, h.alias, h.port)
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(t("ssh://u@h:2200"), (some("u"), "h".into(), Some(2200)));
        assert_eq!(t("ssh://h"), (None, "h".into(), None));
        assert_eq!(t("ssh://h/"), (None, "h".into(), None));
        assert_eq!(t("ssh://h:22/"), (None, "h".into(), Some(22)));
        assert_eq!(t("ssh://h:"), (None, "h".into(), None));
        assert_eq!(t("ssh://u;fp=x@h"), (some("u"), "h".into(), None));
        assert_eq!(t("ssh://us%65r@h"), (some("user"), "h".into(), None));
        assert_eq!(t("ssh://[::1]:2201"), (None, "::1".into(), Some(2201)));
        assert_eq!(t("ssh://u@[::1]"), (some("u"), "::1".into(), None));
        // A service name, as ssh's a2port reads it (stop 41 tester t38: refused).
        assert_eq!(t("ssh://u@h:ssh"), (some("u"), "h".into(), Some(22)));
        assert_eq!(
            t("ssh://h.example.com."),
            (None, "h.example.com".into(), None)
        );
        assert_eq!(
            HostTarget::parse("ssh://u@h:2200").unwrap().name,
            "ssh://u@h:2200"
        );
        for bad in [
            "ssh://",
            "ssh://@h",
            "ssh://h/path",
            "ssh://h:0",
            "ssh://h:x",
            "ssh://h:65536",
            "ssh://u@",
            "ssh://bad..host",
            "ssh://-x",
            "ssh://[::1",
            "ssh://[::1]x",
            "ssh://u%zz@h",
            "ssh://h!",
            "ssh://_h",
        ] {
            assert!(HostTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
