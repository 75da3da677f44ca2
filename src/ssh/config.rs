//! OpenSSH client configuration (`ssh_config(5)`): parsing with `Include`, and resolution of
//! the options tether honours for one host.
//!
//! Hand-written rather than taken from a crate: the available parser (`ssh2-config`) neither
//! reports the line of a malformed entry nor keeps `StrictHostKeyChecking`, `UserKnownHostsFile`
//! or `IdentitiesOnly`, which decide whether and how we may connect at all.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A problem with an ssh config file, naming the file and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read ssh config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// What to do with a host key that known_hosts does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// Refuse unknown hosts (also OpenSSH's `ask`: tether never prompts for host keys).
    Yes,
    /// Record unknown hosts, refuse changed keys.
    AcceptNew,
    /// Record unknown hosts, refuse changed keys (as OpenSSH does for `no` too).
    No,
}

impl fmt::Display for StrictHostKeyChecking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yes => "yes",
            Self::AcceptNew => "accept-new",
            Self::No => "no",
        })
    }
}

/// Everything tether needs to reach one host, resolved from the config and the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The name the user wrote (`web1`, `deploy@10.0.0.5:2222` gives `10.0.0.5`).
    pub alias: String,
    /// The address to connect to (`HostName`, else the alias).
    pub hostname: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Identity files in the order to try them (`~` and `%` tokens expanded).
    pub identity_files: Vec<PathBuf>,
    /// Whether only `identity_files` may be offered, agent identities included.
    pub identities_only: bool,
    /// Whether any `IdentityFile` was configured (else OpenSSH's default files are tried).
    pub identity_files_configured: bool,
    /// User known_hosts files.
    pub user_known_hosts: Vec<PathBuf>,
    /// System known_hosts files.
    pub global_known_hosts: Vec<PathBuf>,
    /// Host key policy.
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// TCP connect (and handshake) timeout.
    pub connect_timeout: Duration,
    /// `ServerAliveInterval`, when set and non-zero.
    pub server_alive_interval: Option<Duration>,
    /// `ProxyJump`, unparsed (`none` is resolved to `None`).
    pub proxy_jump: Option<String>,
    /// `ForwardAgent`.
    pub forward_agent: bool,
    /// `TCPKeepAlive` (default yes).
    pub tcp_keepalive: bool,
}

/// Default connect timeout when the config sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Criterion {
    /// `Host` patterns, matched against the alias.
    Host(Vec<String>),
    /// `Match host` patterns, matched against the resolved host name.
    MatchHost(Vec<String>),
    /// `Match originalhost` patterns.
    MatchOriginalHost(Vec<String>),
    /// `Match user` patterns, matched against the resolved user.
    MatchUser(Vec<String>),
    /// `Match all`.
    All,
    /// A `Match` criterion tether cannot evaluate (`exec`, `localuser` ...): never matches.
    Unsupported,
}

#[derive(Debug, Clone)]
struct Entry {
    conditions: Vec<Vec<Criterion>>,
    keyword: String,
    args: Vec<String>,
}

/// A parsed ssh config: entries in file order, includes flattened.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    entries: Vec<Entry>,
    home: PathBuf,
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

/// The default user config path, `~/.ssh/config`.
pub fn default_path() -> PathBuf {
    home_dir().join(".ssh").join("config")
}

impl SshConfig {
    /// Parses `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config = SshConfig {
            entries: Vec::new(),
            home: home_dir(),
        };
        if !path.exists() {
            return Ok(config);
        }
        config.parse_file(path, &[], 0)?;
        Ok(config)
    }

    /// Parses config text as if read from `path` (used by tests and `-F -`-style callers).
    pub fn parse_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config = SshConfig {
            entries: Vec::new(),
            home: home_dir(),
        };
        config.parse_text(text, path, &[], 0)?;
        Ok(config)
    }

    fn parse_file(
        &mut self,
        path: &Path,
        outer: &[Vec<Criterion>],
        depth: usize,
    ) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.parse_text(&text, path, outer, depth)
    }

    fn parse_text(
        &mut self,
        text: &str,
        path: &Path,
        outer: &[Vec<Criterion>],
        depth: usize,
    ) -> Result<(), ConfigError> {
        let malformed = |line: usize, message: String| ConfigError::Malformed {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut block: Option<Vec<Criterion>> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let words = split_line(raw).map_err(|m| malformed(line, m))?;
            let Some((keyword, args)) = words.split_first() else {
                continue;
            };
            let keyword = keyword.to_ascii_lowercase();
            let mut conditions = outer.to_vec();
            match keyword.as_str() {
                "host" => {
                    if args.is_empty() {
                        return Err(malformed(line, "Host needs at least one pattern".into()));
                    }
                    block = Some(vec![Criterion::Host(args.to_vec())]);
                    continue;
                }
                "match" => {
                    block = Some(parse_match(args).map_err(|m| malformed(line, m))?);
                    continue;
                }
                _ => {}
            }
            if let Some(b) = &block {
                conditions.push(b.clone());
            }
            if keyword == "include" {
                if args.is_empty() {
                    return Err(malformed(line, "Include needs a path".into()));
                }
                if depth >= 16 {
                    return Err(malformed(line, "Include nested too deeply".into()));
                }
                for pattern in args {
                    let expanded = self.expand_include(pattern, path);
                    let paths = glob::glob(&expanded)
                        .map_err(|e| malformed(line, format!("bad Include pattern: {e}")))?;
                    for included in paths.flatten() {
                        self.parse_file(&included, &conditions, depth + 1)?;
                    }
                }
                continue;
            }
            validate(&keyword, args).map_err(|m| malformed(line, m))?;
            self.entries.push(Entry {
                conditions,
                keyword,
                args: args.to_vec(),
            });
        }
        Ok(())
    }

    fn expand_include(&self, pattern: &str, including: &Path) -> String {
        if let Some(rest) = pattern.strip_prefix("~/") {
            return self.home.join(rest).display().to_string();
        }
        if Path::new(pattern).is_absolute() {
            return pattern.to_string();
        }
        // OpenSSH resolves relative includes of user configs against ~/.ssh; for a config given
        // with -F outside ~/.ssh the directory of the including file is the useful reading.
        let ssh_dir = self.home.join(".ssh");
        let base = if including.starts_with(&ssh_dir) {
            ssh_dir
        } else {
            including
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        base.join(pattern).display().to_string()
    }

    /// Collects the entries that apply: the first value of each keyword, every IdentityFile.
    fn collect<'a>(
        &'a self,
        alias: &str,
        hostname: &str,
        user: &str,
        first: &mut std::collections::HashMap<&'a str, &'a Entry>,
        ids: &mut Vec<&'a Entry>,
    ) {
        for entry in &self.entries {
            if !entry
                .conditions
                .iter()
                .all(|c| criteria_match(c, alias, hostname, user))
            {
                continue;
            }
            if entry.keyword == "identityfile" {
                if !ids.iter().any(|e| std::ptr::eq(*e, entry)) {
                    ids.push(entry);
                }
            } else {
                first.entry(entry.keyword.as_str()).or_insert(entry);
            }
        }
    }

    /// Resolves the options for `alias`, with `user` and `port` from the target overriding the
    /// config as they do on the `ssh` command line.
    pub fn resolve(&self, alias: &str, user: Option<&str>, port: Option<u16>) -> HostConfig {
        let mut first: std::collections::HashMap<&str, &Entry> = std::collections::HashMap::new();
        let mut identity_entries: Vec<&Entry> = Vec::new();
        // Two passes: `Match host`/`Match user` need HostName and User, which the first pass
        // settles from `Host` blocks.
        self.collect(alias, alias, "", &mut first, &mut identity_entries);
        let pre_host = first
            .get("hostname")
            .map(|e| e.args[0].replace("%h", alias))
            .unwrap_or_else(|| alias.to_string());
        let pre_user = user
            .map(str::to_string)
            .or_else(|| first.get("user").map(|e| e.args[0].clone()))
            .unwrap_or_else(local_user);
        self.collect(
            alias,
            &pre_host,
            &pre_user,
            &mut first,
            &mut identity_entries,
        );

        let get = |k: &str| first.get(k).map(|e| e.args.as_slice());
        let hostname = get("hostname")
            .map(|a| a[0].replace("%h", alias).replace("%%", "%"))
            .unwrap_or_else(|| alias.to_string());
        let user = user
            .map(str::to_string)
            .or_else(|| get("user").map(|a| a[0].clone()))
            .unwrap_or_else(local_user);
        let port = port
            .or_else(|| get("port").and_then(|a| a[0].parse().ok()))
            .unwrap_or(22);
        let tokens = Tokens {
            alias,
            hostname: &hostname,
            port,
            user: &user,
            home: &self.home,
        };
        let identity_files_configured = !identity_entries.is_empty();
        let identity_files = if identity_files_configured {
            identity_entries
                .iter()
                .filter(|e| !e.args[0].eq_ignore_ascii_case("none"))
                .map(|e| tokens.path(&e.args[0]))
                .collect()
        } else {
            ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|f| self.home.join(".ssh").join(f))
                .collect()
        };
        let paths = |k: &str, default: &[PathBuf]| -> Vec<PathBuf> {
            match get(k) {
                Some(args) if args.len() == 1 && args[0].eq_ignore_ascii_case("none") => Vec::new(),
                Some(args) => args.iter().map(|a| tokens.path(a)).collect(),
                None => default.to_vec(),
            }
        };
        let strict = match get("stricthostkeychecking").map(|a| a[0].to_ascii_lowercase()) {
            Some(v) if v == "accept-new" => StrictHostKeyChecking::AcceptNew,
            Some(v) if v == "no" || v == "off" => StrictHostKeyChecking::No,
            _ => StrictHostKeyChecking::Yes,
        };
        let seconds = |k: &str| {
            get(k)
                .and_then(|a| parse_seconds(&a[0]))
                .filter(|d| !d.is_zero())
        };
        let proxy_jump = get("proxyjump")
            .map(|a| a.join(","))
            .filter(|j| !j.eq_ignore_ascii_case("none"));
        HostConfig {
            alias: alias.to_string(),
            identity_files,
            identities_only: get("identitiesonly").is_some_and(|a| yes(&a[0])),
            identity_files_configured,
            user_known_hosts: paths(
                "userknownhostsfile",
                &[
                    self.home.join(".ssh/known_hosts"),
                    self.home.join(".ssh/known_hosts2"),
                ],
            ),
            global_known_hosts: paths(
                "globalknownhostsfile",
                &[
                    PathBuf::from("/etc/ssh/ssh_known_hosts"),
                    PathBuf::from("/etc/ssh/ssh_known_hosts2"),
                ],
            ),
            strict_host_key_checking: strict,
            connect_timeout: seconds("connecttimeout").unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            server_alive_interval: seconds("serveraliveinterval"),
            proxy_jump,
            forward_agent: get("forwardagent").is_some_and(|a| yes(&a[0])),
            tcp_keepalive: get("tcpkeepalive").is_none_or(|a| yes(&a[0])),
            hostname,
            port,
            user,
        }
    }
}

struct Tokens<'a> {
    alias: &'a str,
    hostname: &'a str,
    port: u16,
    user: &'a str,
    home: &'a Path,
}

impl Tokens<'_> {
    fn path(&self, raw: &str) -> PathBuf {
        let mut out = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('h') => out.push_str(self.hostname),
                Some('n') => out.push_str(self.alias),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('r') => out.push_str(self.user),
                Some('u') => out.push_str(&local_user()),
                Some('d') => out.push_str(&self.home.display().to_string()),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        if out == "~" {
            return self.home.to_path_buf();
        }
        match out.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None => PathBuf::from(out),
        }
    }
}

fn yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true")
}

/// Parses an ssh_config time value: `30`, `30s`, `2m`, `1h30m`.
pub fn parse_seconds(value: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
    }
    if !number.is_empty() {
        total += number.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs(total))
}

fn validate(keyword: &str, args: &[String]) -> Result<(), String> {
    let needs_arg = [
        "hostname",
        "port",
        "user",
        "identityfile",
        "identitiesonly",
        "userknownhostsfile",
        "globalknownhostsfile",
        "stricthostkeychecking",
        "connecttimeout",
        "serveraliveinterval",
        "proxyjump",
        "forwardagent",
        "tcpkeepalive",
    ];
    if needs_arg.contains(&keyword) && args.is_empty() {
        return Err(format!("{keyword} needs a value"));
    }
    let value = args.first().map(String::as_str).unwrap_or("");
    match keyword {
        "port" if value.parse::<u16>().map_or(true, |p| p == 0) => {
            Err(format!("bad port number `{value}`"))
        }
        "identitiesonly" | "forwardagent" | "tcpkeepalive"
            if !matches!(
                value.to_ascii_lowercase().as_str(),
                "yes" | "no" | "true" | "false"
            ) =>
        {
            Err(format!("{keyword} must be yes or no, not `{value}`"))
        }
        "stricthostkeychecking"
            if !matches!(
                value.to_ascii_lowercase().as_str(),
                "yes" | "no" | "ask" | "accept-new" | "off"
            ) =>
        {
            Err(format!(
                "StrictHostKeyChecking must be yes, accept-new, no or ask, not `{value}`"
            ))
        }
        "connecttimeout" | "serveraliveinterval" if parse_seconds(value).is_none() => {
            Err(format!("{keyword} needs a time in seconds, not `{value}`"))
        }
        _ => Ok(()),
    }
}

fn parse_match(args: &[String]) -> Result<Vec<Criterion>, String> {
    let mut criteria = Vec::new();
    let mut it = args.iter();
    while let Some(word) = it.next() {
        let key = word.to_ascii_lowercase();
        let mut take = || {
            it.next()
                .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
                .ok_or_else(|| format!("Match {key} needs an argument"))
        };
        let criterion = match key.as_str() {
            "all" => Criterion::All,
            "host" => Criterion::MatchHost(take()?),
            "originalhost" => Criterion::MatchOriginalHost(take()?),
            "user" => Criterion::MatchUser(take()?),
            "canonical" | "final" => Criterion::Unsupported,
            "exec" | "localuser" | "localnetwork" | "tagged" | "address" | "localaddress"
            | "localport" | "rdomain" | "version" | "sessiontype" | "command" => {
                take()?;
                Criterion::Unsupported
            }
            other => return Err(format!("unknown Match criterion `{other}`")),
        };
        criteria.push(criterion);
    }
    if criteria.is_empty() {
        return Err("Match needs a criterion".into());
    }
    Ok(criteria)
}

fn criteria_match(criteria: &[Criterion], alias: &str, hostname: &str, user: &str) -> bool {
    criteria.iter().all(|c| match c {
        Criterion::Host(patterns) | Criterion::MatchOriginalHost(patterns) => {
            pattern_list_match(patterns, alias)
        }
        Criterion::MatchHost(patterns) => pattern_list_match(patterns, hostname),
        Criterion::MatchUser(patterns) => !user.is_empty() && pattern_list_match(patterns, user),
        Criterion::All => true,
        Criterion::Unsupported => false,
    })
}

/// OpenSSH pattern-list semantics: any positive pattern matches and no negated one does.
pub fn pattern_list_match(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for p in patterns.iter().flat_map(|p| p.split(',')) {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard_match(neg, name) {
                return false;
            }
        } else if wildcard_match(p, name) {
            matched = true;
        }
    }
    matched
}

/// `*` and `?` glob matching, case-insensitive as OpenSSH matches host names.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let n: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Splits a config line into words: `Key value`, `Key=value`, double-quoted arguments,
/// `#` comments.
fn split_line(raw: &str) -> Result<Vec<String>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    let (keyword, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    };
    let rest = rest.strip_prefix('=').map(str::trim_start).unwrap_or(rest);
    let mut words = vec![keyword.to_string()];
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                word.push(c);
            }
            if !closed {
                return Err("unterminated quote".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SshConfig {
        SshConfig::parse_str(text, Path::new("/tmp/cfg")).expect("parses")
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let cfg = parse(
            "Host web*\n  HostName 10.0.0.%h\n  Port 2222\n  IdentityFile ~/a\nHost *\n  Port 22\n  User deploy\n  IdentityFile /b\n",
        );
        let h = cfg.resolve("web1", None, None);
        assert_eq!(h.port, 2222);
        assert_eq!(h.user, "deploy");
        assert_eq!(h.hostname, "10.0.0.web1");
        assert_eq!(h.identity_files.len(), 2);
        assert!(h.identity_files[0].ends_with("a"));
        assert_eq!(h.identity_files[1], PathBuf::from("/b"));
    }

    #[test]
    fn target_user_and_port_override_config() {
        let cfg = parse("Host db\n  User x\n  Port 2\n");
        let h = cfg.resolve("db", Some("root"), Some(2200));
        assert_eq!((h.user.as_str(), h.port), ("root", 2200));
    }

    #[test]
    fn negated_patterns_and_equals_syntax() {
        let cfg = parse(
            "Host * !bastion\n  ProxyJump=bastion\nHost *\n  StrictHostKeyChecking accept-new\n",
        );
        assert_eq!(
            cfg.resolve("web", None, None).proxy_jump.as_deref(),
            Some("bastion")
        );
        assert_eq!(cfg.resolve("bastion", None, None).proxy_jump, None);
        assert_eq!(
            cfg.resolve("web", None, None).strict_host_key_checking,
            StrictHostKeyChecking::AcceptNew
        );
    }

    #[test]
    fn malformed_line_is_named() {
        let err = SshConfig::parse_str("Host a\n  Port abc\n", Path::new("/x/cfg")).unwrap_err();
        assert_eq!(err.to_string(), "/x/cfg:2: bad port number `abc`");
        let err = SshConfig::parse_str("Host\n", Path::new("/x/cfg")).unwrap_err();
        assert!(err.to_string().starts_with("/x/cfg:1:"), "{err}");
    }

    #[test]
    fn unknown_keywords_are_ignored() {
        let cfg = parse("Host a\n  FrobnicateLevel 9\n  User u\n");
        assert_eq!(cfg.resolve("a", None, None).user, "u");
    }

    #[test]
    fn include_is_relative_to_including_file_and_conditional() {
        let dir = std::env::temp_dir().join(format!("tether-cfg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/one.conf"), "Host inc\n  Port 4000\n").unwrap();
        std::fs::write(dir.join("conf.d/two.conf"), "User scoped\n").unwrap();
        let main = dir.join("config");
        std::fs::write(
            &main,
            "Include conf.d/one.conf\nHost scoped\n  Include conf.d/two.conf\n",
        )
        .unwrap();
        let cfg = SshConfig::load(&main).unwrap();
        assert_eq!(cfg.resolve("inc", None, None).port, 4000);
        assert_eq!(cfg.resolve("scoped", None, None).user, "scoped");
        assert_ne!(cfg.resolve("other", None, None).user, "scoped");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_file_is_empty_config() {
        let cfg = SshConfig::load(Path::new("/nonexistent/tether/config")).unwrap();
        let h = cfg.resolve("x", None, None);
        assert_eq!((h.hostname.as_str(), h.port), ("x", 22));
        assert_eq!(h.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("web?", "web1"));
        assert!(wildcard_match("*.example.com", "a.b.example.com"));
        assert!(!wildcard_match("web?", "web12"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn times() {
        assert_eq!(parse_seconds("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_seconds("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_seconds("x"), None);
    }
}
