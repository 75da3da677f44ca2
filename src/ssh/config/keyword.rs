//! Every keyword of `ssh_config(5)` (OpenSSH 10's readconf.c table, plus the aliases and
//! deprecated names it still accepts): the shape of its value, checked as ssh checks it, and
//! what tether does with it. Nothing that changes where or how a connection is made is
//! ignored: such a keyword is honoured, or refused for the hosts it applies to.

use crate::ssh_syntax::port::{a2port, port, strtonum};

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

/// A checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// [`Shape::Flag`].
    Flag(bool),
    /// [`Shape::Choice`], lowercased.
    Choice(String),
    /// [`Shape::Time`] in seconds; `None` for `none`.
    Time(Option<u64>),
    /// [`Shape::Int`].
    Int(u64),
    /// [`Shape::Port`].
    Port(u16),
    /// One argument.
    Str(String),
    /// Several arguments.
    List(Vec<String>),
    /// The unsplit rest of the line.
    Command(String),
}

impl Value {
    /// The value as text (a list joined with spaces).
    pub fn text(&self) -> String {
        match self {
            Value::Flag(b) => if *b { "yes" } else { "no" }.to_string(),
            Value::Choice(s) | Value::Str(s) | Value::Command(s) => s.clone(),
            Value::Time(Some(n)) => n.to_string(),
            Value::Time(None) => "none".to_string(),
            Value::Int(n) => n.to_string(),
            Value::Port(p) => p.to_string(),
            Value::List(v) => v.join(" "),
        }
    }
}

/// Checks `args` (and the raw `rest` of the line) against the keyword's shape, as ssh does
/// whether or not the line applies to the host being resolved.
pub fn check(kw: &Keyword, args: &[String], rest: &str) -> Result<Value, String> {
    let name = kw.name;
    let one = |args: &[String]| -> Result<String, String> {
        match args {
            [] => Err(format!("{name}: missing argument")),
            [a] if a.is_empty() => Err(format!("{name}: missing argument")),
            [a] => Ok(a.clone()),
            _ => Err(format!("{name}: extra arguments at end of line")),
        }
    };
    match kw.shape {
        Shape::Structural => Ok(Value::List(args.to_vec())),
        Shape::Flag => {
            let a = one(args)?;
            match a.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(Value::Flag(true)),
                "no" | "false" => Ok(Value::Flag(false)),
                _ => Err(format!("{name}: unsupported option \"{a}\" (yes or no)")),
            }
        }
        Shape::Choice(choices) => {
            let a = one(args)?;
            let lower = a.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(Value::Choice(lower))
            } else {
                Err(format!(
                    "{name}: unsupported option \"{a}\" (one of {})",
                    choices.join(", ")
                ))
            }
        }
        Shape::Time => {
            let a = one(args)?;
            if a == "none" {
                return Ok(Value::Time(None));
            }
            convtime(&a)
                .map(|s| Value::Time(Some(s)))
                .ok_or_else(|| format!("{name}: invalid time value \"{a}\""))
        }
        Shape::Int => {
            let a = one(args)?;
            strtonum(&a, 0, i64::from(i32::MAX))
                .and_then(|n| u64::try_from(n).ok())
                .map(Value::Int)
                .ok_or_else(|| format!("{name}: integer value \"{a}\" is invalid"))
        }
        Shape::Port => {
            let a = one(args)?;
            port(&a)
                .map(Value::Port)
                .ok_or_else(|| format!("{name}: bad port \"{a}\""))
        }
        Shape::Str => one(args).map(Value::Str),
        Shape::List => {
            if args.is_empty() {
                return Err(format!("{name}: missing argument"));
            }
            if args.iter().any(String::is_empty) {
                return Err(format!("{name}: empty argument"));
            }
            if args.len() > 1 && args.iter().any(|a| a.eq_ignore_ascii_case("none")) {
                return Err(format!("{name}: \"none\" must appear alone"));
            }
            Ok(Value::List(args.to_vec()))
        }
        Shape::Command => Ok(Value::Command(
            rest.trim_start_matches([' ', '\t', '\r', '\n', '='])
                .to_string(),
        )),
        Shape::Jump => {
            let spec = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
            let spec = spec.split('#').next().unwrap_or_default().trim_end();
            // ssh (9.2 as Debian ships it) reads the first word only: a list written with
            // spaces fails the hosts it applies to (resolve.rs), not the whole config.
            let first = spec.split([' ', '\t']).next().unwrap_or_default();
            super::jump_spec::parse(first)
                .map_err(|e| format!("invalid ProxyJump \"{spec}\": {e}"))?;
            Ok(Value::Command(spec.to_string()))
        }
        Shape::AgentPath => {
            let a = one(args)?;
            agent_path(&a)?;
            Ok(Value::Str(a))
        }
        Shape::ForwardAgent => {
            let a = one(args)?;
            match a.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(Value::Flag(true)),
                "no" | "false" => Ok(Value::Flag(false)),
                _ => {
                    agent_path(&a)?;
                    Ok(Value::Str(a))
                }
            }
        }
        Shape::Algorithms => {
            let a = one(args)?;
            super::algorithm_names::check(name, &a)?;
            Ok(Value::Str(a))
        }
        Shape::Forward => {
            super::forward::from_args(name, args)?;
            Ok(Value::List(args.to_vec()))
        }
        Shape::EnvNames => {
            if args.is_empty() {
                return Err(format!("no {name} specified"));
            }
            if args.iter().any(|a| a.is_empty() || a.contains('=')) {
                return Err(format!("{name}: invalid environment name"));
            }
            Ok(Value::List(args.to_vec()))
        }
        Shape::EnvAssignments => {
            if args.is_empty() {
                return Err(format!("no {name} specified"));
            }
            if args.iter().any(|a| !a.contains('=')) {
                return Err(format!("{name}: invalid SetEnv (NAME=value)"));
            }
            Ok(Value::List(args.to_vec()))
        }
        Shape::Custom(f) => {
            f(args).map_err(|e| format!("{name}: {e}"))?;
            Ok(Value::List(args.to_vec()))
        }
    }
}

/// misc.c `convtime`: `90`, `90s`, `1m30s`, `2h`, `1d`, `1w`; `None` if malformed.
pub fn convtime(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = match rest.chars().next() {
            None => 1,
            Some(c) => {
                rest = &rest[c.len_utf8()..];
                match c {
                    's' | 'S' => 1,
                    'm' | 'M' => 60,
                    'h' | 'H' => 3600,
                    'd' | 'D' => 86400,
                    'w' | 'W' => 604800,
                    _ => return None,
                }
            }
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        if total > i32::MAX as u64 {
            return None;
        }
    }
    Some(total)
}

fn agent_path(a: &str) -> Result<(), String> {
    super::expand::dollar(a)
        .map_err(|e| format!("invalid environment expansion in \"{a}\": {e}"))?;
    if let Some(var) = a.strip_prefix('$') {
        if !var.starts_with('{')
            && (var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(format!("invalid environment name \"{a}\""));
        }
    }
    Ok(())
}

fn single(args: &[String]) -> Result<&str, String> {
    match args {
        [a] if !a.is_empty() => Ok(a),
        [] | [_] => Err("missing argument".into()),
        _ => Err("extra arguments at end of line".into()),
    }
}

fn add_keys_to_agent(args: &[String]) -> Result<(), String> {
    let choices = ["yes", "no", "true", "false", "ask", "confirm"];
    match args {
        [a] if choices.contains(&a.to_ascii_lowercase().as_str()) || convtime(a).is_some() => {
            Ok(())
        }
        [a, t] if a.eq_ignore_ascii_case("confirm") && convtime(t).is_some() => Ok(()),
        _ => Err("unsupported option".into()),
    }
}

fn canonical_domains(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("no domains specified".into());
    }
    for a in args {
        if a.eq_ignore_ascii_case("none") {
            if args.len() > 1 {
                return Err("\"none\" must appear alone".into());
            }
            continue;
        }
        let ok = !a.is_empty()
            && !a.starts_with('.')
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(format!("invalid domain \"{a}\""));
        }
    }
    Ok(())
}

fn permitted_cnames(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("no rules specified".into());
    }
    for a in args {
        if a.eq_ignore_ascii_case("none") {
            if args.len() > 1 {
                return Err("\"none\" must appear alone".into());
            }
        } else if a != "*" && !matches!(a.split_once(':'), Some((_, t)) if !t.is_empty()) {
            return Err(format!("invalid permitted CNAME \"{a}\" (source:target)"));
        }
    }
    Ok(())
}

fn control_persist(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    if ["yes", "no", "true", "false"].contains(&a) || convtime(a).is_some() {
        Ok(())
    } else {
        Err(format!("bad argument \"{a}\""))
    }
}

fn escape_char(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    let b = a.as_bytes();
    if a == "none" || b.len() == 1 || (b.len() == 2 && b[0] == b'^' && (64..128).contains(&b[1])) {
        Ok(())
    } else {
        Err(format!("bad escape character \"{a}\""))
    }
}

fn ipqos(args: &[String]) -> Result<(), String> {
    const NAMES: &[&str] = &[
        "af11",
        "af12",
        "af13",
        "af21",
        "af22",
        "af23",
        "af31",
        "af32",
        "af33",
        "af41",
        "af42",
        "af43",
        "cs0",
        "cs1",
        "cs2",
        "cs3",
        "cs4",
        "cs5",
        "cs6",
        "cs7",
        "ef",
        "le",
        "lowdelay",
        "throughput",
        "reliability",
        "none",
    ];
    if args.is_empty() || args.len() > 2 {
        return Err("one or two values".into());
    }
    for a in args {
        // misc.c parse_ipqos: a name, else `strtol(.., 0)` (decimal, 0x hex, 0 octal) 0-255.
        let number =
            strtol(a, 0).is_some_and(|(n, rest)| rest.is_empty() && (0..=255).contains(&n));
        if !number && !NAMES.contains(&a.to_ascii_lowercase().as_str()) {
            return Err(format!("bad IPQoS value \"{a}\""));
        }
    }
    Ok(())
}

fn log_level(args: &[String]) -> Result<(), String> {
    const LEVELS: &[&str] = &[
        "QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3",
    ];
    let a = single(args)?;
    if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(format!("unsupported log level \"{a}\""))
    }
}

fn syslog_facility(args: &[String]) -> Result<(), String> {
    const NAMES: &[&str] = &[
        "DAEMON", "USER", "AUTH", "AUTHPRIV", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4",
        "LOCAL5", "LOCAL6", "LOCAL7",
    ];
    let a = single(args)?;
    if NAMES.iter().any(|l| l.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(format!("unsupported log facility \"{a}\""))
    }
}

fn obscure_keystroke_timing(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    let ok = ["yes", "no", "true", "false"].contains(&a)
        || a.strip_prefix("interval:")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=1000).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(format!("unsupported argument \"{a}\""))
    }
}

fn rekey_limit(args: &[String]) -> Result<(), String> {
    let (size, interval) = match args {
        [s] => (s, None),
        [s, i] => (s, Some(i)),
        [] => return Err("missing argument".into()),
        _ => return Err("extra arguments at end of line".into()),
    };
    if size != "default" {
        let n = scan_scaled(size).ok_or_else(|| format!("bad number \"{size}\""))?;
        if n != 0 && n < 16 {
            return Err("RekeyLimit too small".into());
        }
    }
    match interval {
        Some(i) if i != "none" && convtime(i).is_none() => {
            Err(format!("invalid time value \"{i}\""))
        }
        _ => Ok(()),
    }
}

fn octal_mask(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    // readconf.c: `strtol(.., 8)`, whatever follows the digits unread.
    match strtol(a, 8) {
        Some((n, _)) if (0..=0o777).contains(&n) => Ok(()),
        _ => Err(format!("bad mask \"{a}\"")),
    }
}

fn tunnel_device(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    // misc.c a2tun: `any` or 0 to SSH_TUNID_MAX (INT_MAX - 2).
    let unit = |s: &str| {
        s.eq_ignore_ascii_case("any") || strtonum(s, 0, i64::from(i32::MAX) - 2).is_some()
    };
    let ok = match a.split_once(':') {
        Some((l, r)) => unit(l) && unit(r),
        None => unit(a),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad tun device \"{a}\""))
    }
}

/// readconf.c PermitRemoteOpen: `any` or `none` alone, else `host:port` each (`[addr]:port`,
/// port `*` or as [`a2port`] reads it, not 0).
fn permit_remote_open(args: &[String]) -> Result<(), String> {
    for a in args {
        if a.eq_ignore_ascii_case("any") || a.eq_ignore_ascii_case("none") {
            if args.len() > 1 {
                return Err(format!("\"{a}\" must appear alone"));
            }
            continue;
        }
        // misc.c hpdelim: `[addr]` or up to the first `:` (a `/` there: no host).
        let rest = match a.strip_prefix('[') {
            Some(inner) => inner.find(']').map(|i| &inner[i + 1..]),
            None => Some(a.find([':', '/']).map_or("", |i| &a[i..])),
        };
        let port = match rest {
            Some(r) if r.starts_with(':') => &r[1..],
            Some("") => return Err(format!("bad port number in \"{a}\"")),
            _ => return Err(format!("missing host in \"{a}\"")),
        };
        if port != "*" && a2port(port).is_none_or(|p| p == 0) {
            return Err(format!("bad port number in \"{a}\""));
        }
    }
    Ok(())
}

/// C `strtol(s, &end, base)` for base 0 (decimal, `0x` hex, `0` octal) or 8: leading white
/// space and one sign, then the longest run of digits; the value and what follows it, or
/// `None` without a digit. Values beyond `i64` saturate (every caller bounds them far lower).
fn strtol(s: &str, base: u32) -> Option<(i64, &str)> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex = base == 0
        && (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].starts_with(|c: char| c.is_ascii_hexdigit());
    let (radix, digits) = match (base, hex) {
        (_, true) => (16, &t[2..]),
        (0, false) if t.starts_with('0') => (8, t),
        (0, false) => (10, t),
        (b, false) => (b, t),
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 {
        return None;
    }
    let n = digits[..len].chars().fold(0i64, |n, c| {
        n.saturating_mul(i64::from(radix))
            .saturating_add(i64::from(c.to_digit(radix).unwrap_or(0)))
    });
    Some((if negative { -n } else { n }, &digits[len..]))
}

/// fmt_scaled.c `scan_scaled`: white space, one sign, digits with at most one `.`, then at
/// most one unit of `BKMGTPE` (any case; powers of 1024) not followed by a letter or digit.
fn scan_scaled(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let len = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, rest) = t.split_at(len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || whole.len() >= 21 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let sign = if negative { -1 } else { 1 };
    let Some(unit) = rest.chars().next() else {
        return Some(sign * whole);
    };
    let power = "BKMGTPE".find(unit.to_ascii_uppercase())?;
    if rest[unit.len_utf8()..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let scale = 1024i64.checked_pow(u32::try_from(power).ok()?)?;
    let mut fpart = 0i64;
    let mut divisor = 1i64;
    for d in fraction.chars().take(18) {
        fpart = fpart * 10 + i64::from(d.to_digit(10)?);
        divisor *= 10;
    }
    let scaled = whole.checked_mul(scale)?;
    let fpart = i64::try_from(i128::from(fpart) * i128::from(scale) / i128::from(divisor)).ok()?;
    Some(sign * scaled.checked_add(fpart)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

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

    #[test]
    fn values() {
        let k = get("Port");
        assert_eq!(check(k, &args(&["2222"]), "2222"), Ok(Value::Port(2222)));
        assert_eq!(check(k, &args(&["ssh"]), "ssh"), Ok(Value::Port(22)));
        assert!(check(k, &args(&["0"]), "0").is_err());
        assert!(check(k, &args(&["1", "2"]), "1 2").is_err());
        let k = get("ConnectTimeout");
        assert_eq!(check(k, &args(&["1m30s"]), ""), Ok(Value::Time(Some(90))));
        assert_eq!(check(k, &args(&["none"]), ""), Ok(Value::Time(None)));
        assert!(check(k, &args(&["5x"]), "").is_err());
        let k = get("StrictHostKeyChecking");
        assert_eq!(
            check(k, &args(&["Accept-New"]), ""),
            Ok(Value::Choice("accept-new".into()))
        );
        assert!(check(get("UserKnownHostsFile"), &args(&["none", "x"]), "").is_err());
        assert!(check(get("IdentityAgent"), &args(&["$a-b"]), "").is_err());
        assert!(check(get("IdentityAgent"), &args(&["${TETHER_UNSET_VAR_X}"]), "").is_err());
        assert_eq!(
            check(get("ProxyCommand"), &[], "= nc %h %p # x"),
            Ok(Value::Command("nc %h %p # x".into()))
        );
        assert!(check(get("ProxyJump"), &[], "a,,b").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(convtime("90"), Some(90));
        assert_eq!(convtime("1h30m"), Some(5400));
        assert_eq!(convtime("1W"), Some(604800));
        assert_eq!(convtime(""), None);
        // Regression (found by tests/robustness.rs): a multi-byte unit is refused, not a panic.
        assert_eq!(convtime("1ẇ30m"), None);
        assert_eq!(convtime("m"), None);
        assert_eq!(convtime("-5"), None);
    }
}
