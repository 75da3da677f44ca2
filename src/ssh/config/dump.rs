//! A resolved host as `ssh -G` prints it (readconf.c `dump_client_config`), for the keywords
//! tether honours: lowercase keyword, one value per line (`identityfile` and
//! `certificatefile` repeated), in ssh's order and spelling, so the two outputs can be
//! compared line by line.

use super::jump_spec;

/// The options a resolution obtained, as the printer reads them.
pub trait Obtained {
    /// The first obtained value of `name` (a lowercase keyword), as text.
    fn text(&self, name: &str) -> Option<String>;
}

/// What the printer needs besides the options.
pub struct Dump<'a> {
    /// The name as given (`host`).
    pub host_arg: &'a str,
    /// The remote user.
    pub user: &'a str,
    /// The final host name.
    pub hostname: &'a str,
    /// The port.
    pub port: u16,
    /// The options.
    pub opts: &'a dyn Obtained,
    /// `IdentityAgent`, expanded.
    pub identity_agent: Option<&'a str>,
    /// `IdentityFile`s as written (ssh expands them only when it loads them).
    pub identity_files: &'a [String],
    /// `CertificateFile`s as written.
    pub certificate_files: &'a [String],
    /// `GlobalKnownHostsFile`s as written.
    pub global_known_hosts: &'a [String],
    /// `UserKnownHostsFile`s, expanded.
    pub user_known_hosts: &'a [String],
    /// `yes`, `no` or the agent socket path.
    pub forward_agent: String,
    /// `ConnectTimeout` in seconds, if set.
    pub connect_timeout: Option<u64>,
    /// `ProxyCommand`, unexpanded.
    pub proxy_command: Option<&'a str>,
    /// `ProxyJump`.
    pub jump: Option<&'a str>,
    /// `CanonicalizePermittedCNAMEs` as `source:target`.
    pub cnames: &'a [String],
    /// `SendEnv` and `SetEnv`.
    pub env: &'a super::environment::Environment,
}

impl Dump<'_> {
    /// The lines, without newlines.
    pub fn lines(&self) -> Vec<String> {
        let o = self.opts;
        let flag = |name: &str, default: bool| {
            let on = match o.text(name).as_deref() {
                Some("yes" | "true") => true,
                Some(_) => false,
                None => default,
            };
            if on { "yes" } else { "no" }.to_string()
        };
        let mut out = vec![
            format!("host {}", self.host_arg),
            format!("user {}", self.user),
            format!("hostname {}", self.hostname),
            format!("port {}", self.port),
            format!(
                "addressfamily {}",
                o.text("AddressFamily").unwrap_or_else(|| "any".into())
            ),
            format!("batchmode {}", flag("BatchMode", false)),
            format!(
                "canonicalizefallbacklocal {}",
                flag("CanonicalizeFallbackLocal", true)
            ),
            format!(
                "canonicalizehostname {}",
                match o.text("CanonicalizeHostname").as_deref() {
                    Some("yes" | "true") => "true",
                    Some("always") => "always",
                    _ => "false",
                }
            ),
            format!(
                "compression {}",
                o.text("Compression").unwrap_or_else(|| "no".into())
            ),
            format!("hashknownhosts {}", flag("HashKnownHosts", false)),
            format!("identitiesonly {}", flag("IdentitiesOnly", false)),
            format!(
                "nohostauthenticationforlocalhost {}",
                flag("NoHostAuthenticationForLocalhost", false)
            ),
            format!(
                "stricthostkeychecking {}",
                match o.text("StrictHostKeyChecking").as_deref() {
                    Some("yes" | "true") => "true",
                    Some("no" | "false" | "off") => "false",
                    Some("accept-new") => "accept-new",
                    _ => "ask",
                }
            ),
            format!("tcpkeepalive {}", flag("TCPKeepAlive", true)),
            format!(
                "canonicalizemaxdots {}",
                o.text("CanonicalizeMaxDots").unwrap_or_else(|| "1".into())
            ),
            format!(
                "connectionattempts {}",
                o.text("ConnectionAttempts").unwrap_or_else(|| "1".into())
            ),
            format!(
                "serveralivecountmax {}",
                o.text("ServerAliveCountMax").unwrap_or_else(|| "3".into())
            ),
            format!(
                "serveraliveinterval {}",
                o.text("ServerAliveInterval").unwrap_or_else(|| "0".into())
            ),
            format!(
                "requiredrsasize {}",
                o.text("RequiredRSASize").unwrap_or_else(|| "1024".into())
            ),
        ];
        let mut optional = |keyword: &str, name: &str| {
            if let Some(v) = o.text(name) {
                out.push(format!("{keyword} {v}"));
            }
        };
        optional("ciphers", "Ciphers");
        optional("hostkeyalgorithms", "HostKeyAlgorithms");
        if let Some(alias) = o.text("HostKeyAlias") {
            out.push(format!("hostkeyalias {}", alias.to_ascii_lowercase()));
        }
        if let Some(agent) = self.identity_agent {
            out.push(format!("identityagent {agent}"));
        }
        let mut optional = |keyword: &str, name: &str| {
            if let Some(v) = o.text(name) {
                out.push(format!("{keyword} {v}"));
            }
        };
        optional("ignoreunknown", "IgnoreUnknown");
        optional("kexalgorithms", "KexAlgorithms");
        optional("casignaturealgorithms", "CASignatureAlgorithms");
        optional("macs", "MACs");
        optional("pubkeyacceptedalgorithms", "PubkeyAcceptedAlgorithms");
        optional("tag", "Tag");
        out.extend(
            self.identity_files
                .iter()
                .map(|f| format!("identityfile {f}")),
        );
        out.push(format!(
            "canonicaldomains {}",
            o.text("CanonicalDomains").unwrap_or_else(|| "none".into())
        ));
        out.extend(
            self.certificate_files
                .iter()
                .map(|f| format!("certificatefile {f}")),
        );
        out.push(one_line("globalknownhostsfile", self.global_known_hosts));
        out.push(one_line("userknownhostsfile", self.user_known_hosts));
        out.extend(self.env.send.iter().map(|p| format!("sendenv {p}")));
        out.extend(self.env.set.iter().map(|w| format!("setenv {w}")));
        out.push(format!("forwardagent {}", self.forward_agent));
        out.push(match self.connect_timeout {
            Some(t) => format!("connecttimeout {t}"),
            None => "connecttimeout none".into(),
        });
        out.push(one_line("canonicalizePermittedcnames", self.cnames));
        if let Some(jump) = self.jump {
            out.push(format!("proxyjump {}", jump_line(jump)));
        } else if let Some(command) = self.proxy_command {
            out.push(format!("proxycommand {command}"));
        }
        out
    }
}

fn one_line(keyword: &str, values: &[String]) -> String {
    if values.is_empty() || (values.len() == 1 && values[0].eq_ignore_ascii_case("none")) {
        format!("{keyword} none")
    } else {
        format!("{keyword} {}", values.join(" "))
    }
}

/// ssh prints a jump list as the hops before the last, then the last one rebuilt, numeric
/// addresses in brackets.
fn jump_line(spec: &str) -> String {
    let Ok((extra, last)) = jump_spec::split_last(spec) else {
        return spec.to_string();
    };
    let numeric = last.host.chars().all(|c| c.is_ascii_digit() || c == '.');
    let last = if numeric {
        jump_spec::Hop {
            host: format!("[{}]", last.host),
            ..last
        }
        .written()
    } else {
        last.written()
    };
    match extra {
        Some(extra) => format!("{extra},{last}"),
        None => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_lines() {
        assert_eq!(jump_line("a"), "a");
        assert_eq!(jump_line("a,ops@b:2222"), "a,ops@b:2222");
        assert_eq!(jump_line("ssh://u@c:23"), "u@c:23");
        assert_eq!(jump_line("x,10.0.0.1"), "x,[10.0.0.1]");
    }
}
