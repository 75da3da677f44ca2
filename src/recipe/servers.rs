//! A server's declared properties (`server(name, props)`): those tether reads checked, and
//! Capistrano's `user` and `port` written into its name.

use rhai::{EvalAltResult, Map};

use super::args::{fail, Fallible};
use crate::host::HostTarget;

/// Checks the server properties tether reads: `via` (jump hosts, a string as ProxyJump
/// takes), `forward_agent` and `no_release` (booleans; `no_release` is read by the stdlib's
/// release flow).
pub fn check_connection_props(name: &str, props: &Map) -> Fallible<()> {
    if let Some(v) = props.get("via") {
        let spec = v.clone().into_immutable_string().map_err(|t| {
            format!(
                "server(\"{name}\"): `via` must be a string naming jump hosts (\"bastion\", \
                 \"a,b\", \"user@host:port\", \"none\"), not {t}"
            )
        })?;
        crate::ssh::route::parse_spec(&spec)
            .map_err(|e| format!("server(\"{name}\"): `via`: {e}"))?;
    }
    for key in ["forward_agent", "no_release"] {
        if let Some(v) = props.get(key).filter(|v| !v.is_bool()) {
            return fail(format!(
                "server(\"{name}\"): `{key}` must be true or false, not {}",
                v.type_name()
            ));
        }
    }
    Ok(())
}

/// A server's `user` and `port` properties (Capistrano's `server "web", user: "deploy", port:
/// 2222`), taken out of `props` and written into its name as `deploy@web:2222` says them: the
/// same host either way, reached there (as Capistrano keys servers by name and port). Err where
/// the name gives another user or port, or where either is no user or port. `ssh_options`
/// (Capistrano's net-ssh settings) is refused: tether reads OpenSSH's config instead.
pub fn with_user_and_port(name: &str, props: &mut Map) -> Fallible<String> {
    if props.contains_key("ssh_options") {
        return fail(format!(
            "server(\"{name}\"): {}",
            super::runtime_vars::SSH_OPTIONS
        ));
    }
    let (user, port) = (props.remove("user"), props.remove("port"));
    if user.is_none() && port.is_none() {
        return Ok(name.to_string());
    }
    let target = HostTarget::parse(name).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
    let user = match user {
        None => target.user.clone(),
        Some(v) => {
            let u = v
                .into_immutable_string()
                .map_err(|t| format!("server(\"{name}\"): `user` must be a string, not {t}"))?;
            match &target.user {
                Some(written) if *written != u.as_str() => {
                    return fail(format!(
                    "server(\"{name}\"): `user: \"{u}\"` contradicts the name's user `{written}`"
                ))
                }
                _ => Some(u.to_string()),
            }
        }
    };
    let port = match port {
        None => target.port,
        Some(v) => {
            // A string is a port as `name:port` reads it: a number or a service name (`ssh`),
            // as ssh's a2port (stop 41 tester t42: `port: "ssh"` refused where `x:ssh` was
            // taken).
            let p = match v.as_int() {
                Ok(n) => u16::try_from(n).ok().filter(|p| *p > 0),
                Err(_) => v
                    .clone()
                    .into_string()
                    .ok()
                    .and_then(|s| crate::ssh_syntax::port::port(&s)),
            }
            .ok_or_else(|| {
                format!(
                    "server(\"{name}\"): `port` must be a port number (1 to 65535) or a service \
                     name, not {v:?}"
                )
            })?;
            match target.port {
                Some(written) if written != p => {
                    return fail(format!(
                        "server(\"{name}\"): `port: {p}` contradicts the name's port {written}"
                    ))
                }
                _ => Some(p),
            }
        }
    };
    let mut written = String::new();
    let host = if target.alias.contains(':') {
        // An IPv6 address: `user@addr:port` cannot say it, ssh's URI can (`ssh://user@[::1]:2222`).
        written.push_str("ssh://");
        let addr = target.alias.trim_start_matches('[').trim_end_matches(']');
        format!("[{addr}]")
    } else {
        target.alias.clone()
    };
    // A user with characters a URI would read otherwise is refused by the parse below, as
    // in any name.
    if let Some(u) = &user {
        written.push_str(u);
        written.push('@');
    }
    written.push_str(&host);
    if let Some(p) = port {
        written.push_str(&format!(":{p}"));
    }
    HostTarget::parse(&written).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's `user` and `port` are written into its name, an IPv6 address's as ssh's URI
    /// (stop 36 tester t18: `root@[::1]:2222` was read as a host named `[::1]:2222`).
    #[test]
    fn a_servers_user_and_port_are_written_into_its_name() {
        let named = |name: &str, user: Option<&str>, port: Option<i64>| {
            let mut props = Map::new();
            if let Some(u) = user {
                props.insert("user".into(), u.into());
            }
            if let Some(p) = port {
                props.insert("port".into(), p.into());
            }
            with_user_and_port(name, &mut props).map_err(|e| e.to_string())
        };
        assert_eq!(
            named("web", Some("deploy"), Some(2222)).unwrap(),
            "deploy@web:2222"
        );
        assert_eq!(
            named("deploy@web", None, Some(2222)).unwrap(),
            "deploy@web:2222"
        );
        assert_eq!(named("web", None, None).unwrap(), "web");
        for (name, user, port, alias, want_user, want_port) in [
            ("::1", Some("root"), None, "::1", "root", None),
            ("::1", Some("root"), Some(2222), "::1", "root", Some(2222)),
            (
                "ssh://[::1]:2222",
                Some("root"),
                None,
                "::1",
                "root",
                Some(2222),
            ),
            (
                "ssh://root@[::1]",
                None,
                Some(2222),
                "::1",
                "root",
                Some(2222),
            ),
            (
                "2001:db8::5",
                Some("deploy"),
                Some(22),
                "2001:db8::5",
                "deploy",
                Some(22),
            ),
        ] {
            let written = named(name, user, port).unwrap();
            let t = HostTarget::parse(&written).unwrap();
            assert_eq!(
                t.alias.trim_matches(['[', ']']),
                alias,
                "{name} -> {written}"
            );
            assert_eq!(t.user.as_deref(), Some(want_user), "{name} -> {written}");
            assert_eq!(t.port, want_port, "{name} -> {written}");
        }
        assert!(named("deploy@web", Some("root"), None).is_err());
        assert!(named("web:22", None, Some(2222)).is_err());
    }
}
