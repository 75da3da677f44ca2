//! Every keyword of `ssh_config(5)` (OpenSSH 10's readconf.c table, plus the aliases and
//! deprecated names it still accepts): the shape of its value (checked as ssh checks it by
//! `value.rs`) and what tether does with it. Nothing that changes where or how a connection is made is
//! ignored: such a keyword is honoured, or refused for the hosts it applies to.

use super::arguments::{
    add_keys_to_agent, canonical_domains, control_persist, escape_char, ipqos, log_level,
    obscure_keystroke_timing, octal_mask, permit_remote_open, permitted_cnames, rekey_limit,
    syslog_facility, tunnel_device,
};

/// What tether does with a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Read and applied as ssh applies it.
    Honoured,
    /// Checked for syntax, then ignored: it does not change where or how tether connects.
    Ignored(&'static str),
    /// A host whose effective value is not one of `unless` fails (naming the keyword, its
    /// file:line and the host); the other hosts run.
    Refused {
        /// Values that change nothing and are therefore accepted (`no`, `none` ...).
        unless: &'static [&'static str],
        /// Why tether cannot follow it.
        reason: &'static str,
    },
}

/// How a keyword's arguments look.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `Host`, `Match`, `Include`: read by the parser itself.
    Structural,
    /// `yes`/`no`/`true`/`false`.
    Flag,
    /// One of these words (case-insensitive).
    Choice(&'static [&'static str]),
    /// A time (`30`, `1m30s`) or `none`.
    Time,
    /// A non-negative integer.
    Int,
    /// A port number or service name.
    Port,
    /// Exactly one argument.
    Str,
    /// One or more arguments; `none` only alone.
    List,
    /// The rest of the line, unsplit (`ProxyCommand`).
    Command,
    /// A ProxyJump list.
    Jump,
    /// A socket path, `SSH_AUTH_SOCK`, `none` or an environment variable (`IdentityAgent`).
    AgentPath,
    /// A flag, or an agent socket as [`Shape::AgentPath`].
    ForwardAgent,
    /// An algorithm list, optionally starting with `+`, `-` or `^`.
    Algorithms,
    /// `LocalForward`/`RemoteForward`/`DynamicForward`: a listen spec and (not dynamic) a
    /// target, read as readconf.c `parse_forward` reads them.
    Forward,
    /// Environment variable names (`SendEnv`).
    EnvNames,
    /// `NAME=value` words (`SetEnv`).
    EnvAssignments,
    /// Checked by a function of its own.
    Custom(fn(&[String]) -> Result<(), String>),
}

/// One keyword.
#[derive(Debug)]
pub struct Keyword {
    /// The name as `ssh_config(5)` writes it (`HostName`).
    pub name: &'static str,
    /// Its arguments.
    pub shape: Shape,
    /// What tether does with it.
    pub treatment: Treatment,
}

const FLAG_NO: &[&str] = &["no", "false"];
const NONE: &[&str] = &["none"];

const AUTH: &str = "an authentication method or preference: tether authenticates with public keys \
                    (ssh-agent, identity files) only, and a failed authentication names what was \
                    tried";
const FORWARDING: &str = "forwarding: tether opens no forwardings, X11 or tunnels of its own";
const LOCAL: &str = "local behaviour of the ssh program (logging, terminal, escape character, \
                     background)";
const MUX: &str = "connection sharing: tether keeps its own session per host for the whole run";

macro_rules! kw {
    ($name:literal, $shape:expr, honoured) => {
        Keyword {
            name: $name,
            shape: $shape,
            treatment: Treatment::Honoured,
        }
    };
    ($name:literal, $shape:expr, ignored($why:expr)) => {
        Keyword {
            name: $name,
            shape: $shape,
            treatment: Treatment::Ignored($why),
        }
    };
    ($name:literal, $shape:expr, refused($unless:expr, $why:expr)) => {
        Keyword {
            name: $name,
            shape: $shape,
            treatment: Treatment::Refused {
                unless: $unless,
                reason: $why,
            },
        }
    };
}

/// Every keyword, in `ssh_config(5)`'s alphabetical order.
pub static KEYWORDS: &[Keyword] = &[
    kw!("AddKeysToAgent", Shape::Custom(add_keys_to_agent), ignored("adds keys to the local agent after use; it changes nothing about the connection")),
    kw!("AddressFamily", Shape::Choice(&["inet", "inet6", "any"]), honoured),
    kw!("BatchMode", Shape::Flag, honoured),
    kw!("BindAddress", Shape::Str, refused(&[], "tether does not choose the local address of its connections")),
    kw!("BindInterface", Shape::Str, refused(&[], "tether does not bind its connections to an interface")),
    kw!("CASignatureAlgorithms", Shape::Algorithms, honoured),
    kw!("CanonicalDomains", Shape::Custom(canonical_domains), honoured),
    kw!("CanonicalizeFallbackLocal", Shape::Flag, honoured),
    kw!("CanonicalizeHostname", Shape::Choice(&["true", "false", "yes", "no", "always"]), honoured),
    kw!("CanonicalizeMaxDots", Shape::Int, honoured),
    kw!("CanonicalizePermittedCNAMEs", Shape::Custom(permitted_cnames), honoured),
    kw!("CertificateFile", Shape::Str, honoured),
    kw!("ChannelTimeout", Shape::List, ignored("client-side channel timeouts: tether's commands have --timeout")),
    kw!("CheckHostIP", Shape::Flag, refused(FLAG_NO, "tether checks host keys by name only, not also by address")),
    kw!("Ciphers", Shape::Algorithms, honoured),
    kw!("ClearAllForwardings", Shape::Flag, ignored(FORWARDING)),
    kw!("Compression", Shape::Choice(&["yes", "no"]), honoured),
    kw!("ConnectTimeout", Shape::Time, honoured),
    kw!("ConnectionAttempts", Shape::Int, honoured),
    kw!("ControlMaster", Shape::Choice(&["true", "yes", "false", "no", "auto", "ask", "autoask"]), ignored(MUX)),
    kw!("ControlPath", Shape::Str, ignored(MUX)),
    kw!("ControlPersist", Shape::Custom(control_persist), ignored(MUX)),
    kw!("DynamicForward", Shape::Forward, ignored(FORWARDING)),
    kw!("EnableEscapeCommandline", Shape::Flag, ignored(LOCAL)),
    kw!("EnableSSHKeysign", Shape::Flag, ignored(AUTH)),
    kw!("EscapeChar", Shape::Custom(escape_char), ignored(LOCAL)),
    kw!("ExitOnForwardFailure", Shape::Flag, ignored(FORWARDING)),
    kw!("FingerprintHash", Shape::Choice(&["md5", "sha1", "sha256", "sha384", "sha512"]), ignored("display only: tether always shows SHA256 fingerprints")),
    kw!("ForkAfterAuthentication", Shape::Flag, ignored(LOCAL)),
    kw!("ForwardAgent", Shape::ForwardAgent, honoured),
    kw!("ForwardX11", Shape::Flag, ignored(FORWARDING)),
    kw!("ForwardX11Timeout", Shape::Time, ignored(FORWARDING)),
    kw!("ForwardX11Trusted", Shape::Flag, ignored(FORWARDING)),
    kw!("GSSAPIAuthentication", Shape::Flag, ignored(AUTH)),
    kw!("GSSAPIDelegateCredentials", Shape::Flag, ignored(AUTH)),
    kw!("GatewayPorts", Shape::Flag, ignored(FORWARDING)),
    kw!("GlobalKnownHostsFile", Shape::List, honoured),
    kw!("HashKnownHosts", Shape::Flag, honoured),
    kw!("Host", Shape::Structural, honoured),
    kw!("HostKeyAlgorithms", Shape::Algorithms, honoured),
    kw!("HostKeyAlias", Shape::Str, honoured),
    kw!("HostName", Shape::Str, honoured),
    kw!("HostbasedAcceptedAlgorithms", Shape::Algorithms, ignored(AUTH)),
    kw!("HostbasedAuthentication", Shape::Flag, ignored(AUTH)),
    kw!("IPQoS", Shape::Custom(ipqos), ignored("packet marking (DSCP) of ssh's own sockets")),
    kw!("IdentitiesOnly", Shape::Flag, honoured),
    kw!("IdentityAgent", Shape::AgentPath, honoured),
    kw!("IdentityFile", Shape::Str, honoured),
    kw!("IgnoreUnknown", Shape::Str, honoured),
    kw!("Include", Shape::Structural, honoured),
    kw!("KbdInteractiveAuthentication", Shape::Flag, ignored(AUTH)),
    kw!("KbdInteractiveDevices", Shape::Str, ignored(AUTH)),
    kw!("KexAlgorithms", Shape::Algorithms, honoured),
    kw!("KnownHostsCommand", Shape::Command, refused(NONE, "tether reads host keys from known_hosts files only")),
    kw!("LocalCommand", Shape::Command, ignored("a local command run after connecting (only with PermitLocalCommand): a side effect, not part of the connection")),
    kw!("LocalForward", Shape::Forward, ignored(FORWARDING)),
    kw!("LogLevel", Shape::Custom(log_level), ignored(LOCAL)),
    kw!("LogVerbose", Shape::List, ignored(LOCAL)),
    kw!("MACs", Shape::Algorithms, honoured),
    kw!("Match", Shape::Structural, honoured),
    kw!("NoHostAuthenticationForLocalhost", Shape::Flag, honoured),
    kw!("NumberOfPasswordPrompts", Shape::Int, ignored(AUTH)),
    kw!("ObscureKeystrokeTiming", Shape::Custom(obscure_keystroke_timing), ignored(LOCAL)),
    kw!("PKCS11Provider", Shape::Str, refused(NONE, "tether cannot use keys on PKCS#11 tokens (load them into ssh-agent instead)")),
    kw!("PasswordAuthentication", Shape::Flag, ignored(AUTH)),
    kw!("PermitLocalCommand", Shape::Flag, ignored("allows LocalCommand, which tether does not run")),
    kw!("PermitRemoteOpen", Shape::Custom(permit_remote_open), ignored(FORWARDING)),
    kw!("Port", Shape::Port, honoured),
    kw!("PreferredAuthentications", Shape::Str, honoured),
    kw!("ProxyCommand", Shape::Command, honoured),
    kw!("ProxyJump", Shape::Jump, honoured),
    kw!("ProxyUseFdpass", Shape::Flag, refused(FLAG_NO, "tether cannot receive a connected socket from a proxy command")),
    kw!("PubkeyAcceptedAlgorithms", Shape::Algorithms, honoured),
    kw!("PubkeyAuthentication", Shape::Choice(&["true", "false", "yes", "no", "unbound", "host-bound"]), refused(&["yes", "true", "unbound", "host-bound"], "public keys are tether's only authentication method")),
    kw!("RefuseConnection", Shape::Str, honoured),
    kw!("RekeyLimit", Shape::Custom(rekey_limit), ignored("libssh2 re-keys by its own rules; it changes nothing about where or as whom tether connects")),
    kw!("RemoteCommand", Shape::Command, refused(NONE, "tether runs the recipe's commands, never a fixed remote command")),
    kw!("RemoteForward", Shape::Forward, ignored(FORWARDING)),
    kw!("RequestTTY", Shape::Choice(&["true", "yes", "false", "no", "force", "auto"]), refused(&["no", "false", "auto"], "ssh would allocate a terminal for every command (`yes`: when its standard input is a terminal); tether allocates one per command (--pty, `pty:`)")),
    kw!("RequiredRSASize", Shape::Int, honoured),
    kw!("RevokedHostKeys", Shape::List, refused(NONE, "tether does not read key revocation lists (it does honour @revoked lines in known_hosts)")),
    kw!("SecurityKeyProvider", Shape::Str, ignored("FIDO (sk-) keys: libssh2 cannot use them, so authentication with them fails, naming the key")),
    kw!("SendEnv", Shape::EnvNames, honoured),
    kw!("ServerAliveCountMax", Shape::Int, honoured),
    kw!("ServerAliveInterval", Shape::Time, honoured),
    kw!("SessionType", Shape::Choice(&["none", "subsystem", "default"]), refused(&["default"], "ssh would run no command (`none`) or start the command's name as a subsystem (`subsystem`); tether runs the recipe's commands")),
    kw!("SetEnv", Shape::EnvAssignments, honoured),
    kw!("StdinNull", Shape::Flag, ignored(LOCAL)),
    kw!("StreamLocalBindMask", Shape::Custom(octal_mask), ignored(FORWARDING)),
    kw!("StreamLocalBindUnlink", Shape::Flag, ignored(FORWARDING)),
    kw!("StrictHostKeyChecking", Shape::Choice(&["true", "false", "yes", "no", "ask", "off", "accept-new"]), honoured),
    kw!("SyslogFacility", Shape::Custom(syslog_facility), ignored(LOCAL)),
    kw!("TCPKeepAlive", Shape::Flag, honoured),
    kw!("Tag", Shape::Str, honoured),
    kw!("Tunnel", Shape::Choice(&["ethernet", "point-to-point", "true", "yes", "false", "no"]), refused(FLAG_NO, "tether opens no tun/tap tunnels")),
    kw!("TunnelDevice", Shape::Custom(tunnel_device), ignored("used only with Tunnel, which is refused")),
    kw!("UpdateHostKeys", Shape::Choice(&["true", "false", "yes", "no", "ask"]), ignored("learns extra host keys after authentication; tether never adds keys beyond StrictHostKeyChecking accept-new")),
    kw!("User", Shape::Str, honoured),
    kw!("UserKnownHostsFile", Shape::List, honoured),
    kw!("VerifyHostKeyDNS", Shape::Choice(&["true", "false", "yes", "no", "ask"]), refused(FLAG_NO, "tether does not look up SSHFP records; it trusts known_hosts only")),
    kw!("VersionAddendum", Shape::Command, ignored("text appended to ssh's own version banner")),
    kw!("VisualHostKey", Shape::Flag, ignored(LOCAL)),
    kw!("WarnWeakCrypto", Shape::Choice(&["true", "false", "yes", "no", "no-pq-kex"]), ignored(LOCAL)),
    kw!("XAuthLocation", Shape::Str, ignored(FORWARDING)),
];

/// Other spellings ssh accepts, and the keyword each stands for.
pub static ALIASES: &[(&str, &str)] = &[
    (
        "challengeresponseauthentication",
        "KbdInteractiveAuthentication",
    ),
    ("dsaauthentication", "PubkeyAuthentication"),
    ("hostbasedkeytypes", "HostbasedAcceptedAlgorithms"),
    ("identityfile2", "IdentityFile"),
    ("keepalive", "TCPKeepAlive"),
    ("pubkeyacceptedkeytypes", "PubkeyAcceptedAlgorithms"),
    ("skeyauthentication", "KbdInteractiveAuthentication"),
    ("smartcarddevice", "PKCS11Provider"),
    ("tisauthentication", "KbdInteractiveAuthentication"),
];

/// Names ssh still accepts and skips: deprecated ones silently, unsupported ones with a
/// warning.
pub static OBSOLETE: &[&str] = &[
    "afstokenpassing",
    "cipher",
    "compressionlevel",
    "fallbacktorsh",
    "globalknownhostsfile2",
    "kerberosauthentication",
    "kerberostgtpassing",
    "protocol",
    "rhostsauthentication",
    "rhostsrsaauthentication",
    "rsaauthentication",
    "userknownhostsfile2",
    "useprivilegedport",
    "useroaming",
    "usersh",
];

/// What a lowercased keyword is.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// A keyword of the table.
    Known(&'static Keyword),
    /// A deprecated or unsupported name ssh skips.
    Obsolete,
    /// Not a keyword (ssh refuses it unless `IgnoreUnknown` names it).
    Unknown,
}

/// Looks up a lowercased keyword.
pub fn lookup(lower: &str) -> Lookup {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map(|(_, name)| *name);
    let found = KEYWORDS.iter().find(|k| match name {
        Some(n) => k.name == n,
        None => k.name.eq_ignore_ascii_case(lower),
    });
    match found {
        Some(k) => Lookup::Known(k),
        None if OBSOLETE.contains(&lower) => Lookup::Obsolete,
        None => Lookup::Unknown,
    }
}

/// The keyword named `name` (as in the table).
pub fn get(name: &str) -> &'static Keyword {
    match KEYWORDS.iter().find(|k| k.name == name) {
        Some(k) => k,
        // The table is static and callers name its entries literally.
        None => unreachable!("no keyword {name} in the table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(matches!(lookup("hostname"), Lookup::Known(k) if k.name == "HostName"));
        assert!(matches!(lookup("keepalive"), Lookup::Known(k) if k.name == "TCPKeepAlive"));
        assert!(matches!(lookup("protocol"), Lookup::Obsolete));
        assert!(matches!(lookup("frobnicate"), Lookup::Unknown));
    }

    #[test]
    fn the_table_is_unique() {
        let names: Vec<String> = KEYWORDS
            .iter()
            .map(|k| k.name.to_ascii_lowercase())
            .collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "duplicate keyword");
        for (alias, name) in ALIASES {
            assert!(
                KEYWORDS.iter().any(|k| k.name == *name),
                "{alias} -> {name}"
            );
        }
    }

    /// README.md's keyword table says what this table does, row by row.
    #[test]
    fn readme_lists_every_keyword_with_its_treatment() {
        let readme = include_str!("../../../README.md");
        for k in KEYWORDS {
            let treatment = match k.treatment {
                Treatment::Honoured => "honoured",
                Treatment::Ignored(_) => "ignored",
                Treatment::Refused { .. } => "refused",
            };
            let row = format!("| `{}` | {treatment} |", k.name);
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
        let rows = readme.lines().filter(|l| l.starts_with("| `")).count();
        assert!(rows >= KEYWORDS.len());
    }
}
