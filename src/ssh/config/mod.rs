//! OpenSSH client configuration (`ssh_config(5)`), resolved per host as OpenSSH's `ssh`
//! resolves it, so that tether reaches exactly what `ssh` reaches: the same host, port and
//! user, the same keys, known_hosts files and host-key policy, the same route (ProxyJump or
//! ProxyCommand). The reference is openssh-portable's readconf.c and ssh.c (OpenSSH 9.2 as
//! Debian 12 ships it, with the later additions: `Match tagged`/`localnetwork`, `Tag`,
//! `%j`, tokens in `Include` and `User`); `ssh -G` is the test oracle.
//!
//! - [`lexer`]: a line split as ssh splits it; [`keyword`]: every keyword, its value's shape
//!   and what tether does with it (honoured, ignored because it does not change the
//!   connection, or refused for the hosts it applies to).
//! - [`file`]: files parsed with their Includes. What ssh would refuse for every host (a
//!   malformed line, an unknown keyword, an Include loop, an unreadable included file) is a
//!   [`ConfigError`] for the whole config.
//! - [`resolve`]: one host, line by line with first-obtained-wins, `Host`/`Match` and the
//!   final pass, then tokens and defaults. What ssh would refuse only for that host (a refused
//!   keyword in its blocks, a failing `Match exec`) is a [`HostError`] for that host alone.
//! - [`dump`]: the result as `ssh -G` prints it.
//!
//! Hand-written rather than taken from a crate: the available parser (`ssh2-config`)
//! neither reports the line of a malformed entry nor follows ssh's resolution rules.

mod canonical;
mod dump;
mod expand;
mod file;
mod jump_spec;
mod keyword;
mod lexer;
mod local;
mod pattern;
mod resolve;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use local::Local;
pub use pattern::{pattern_list_match, wildcard_match};

use crate::host::HostTarget;

/// Where OpenSSH keeps its system-wide client config; the CLI passes it to [`SshConfig::load`].
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

/// Default connect timeout when the config sets none (ssh waits for the TCP timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A problem that makes the whole config unusable, as ssh refuses it for every host.
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
    /// A line is malformed (bad syntax or value, unknown keyword, bad Match, Include loop).
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A user config (or an included file) others may write to, which ssh refuses to read.
    #[error(
        "bad owner or permissions on {path}: it must belong to you or root and be writable by \
         nobody else (ssh refuses it too)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
    },
}

/// `file:line` of a config line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file.
    pub file: Arc<Path>,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Why one host cannot be resolved: the config says something for it that tether refuses
/// (a refused keyword, `RefuseConnection`), or something ssh too would fail on for this host
/// only (a `Match exec` killed by a signal, a token that does not expand, a canonical name
/// not found). The other hosts are not affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host}: ssh config {}: {problem}", .location.as_ref().map_or_else(|| "(command line)".to_string(), |l| l.to_string()))]
pub struct HostError {
    /// The host as named by the user.
    pub host: String,
    /// The line that causes it (`None`: the command line's `-J`).
    pub location: Option<Location>,
    /// What is wrong, naming the keyword.
    pub problem: String,
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

/// How a host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// TCP to `HostName:Port`.
    Direct,
    /// Through jump hosts (`ProxyJump`, `-J`, a recipe's `via`): the list as written.
    Jump(String),
    /// Through a proxy command's stdin and stdout (`ProxyCommand`, tokens expanded).
    Command(String),
}

/// `AddressFamily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    /// IPv4 or IPv6.
    Any,
    /// IPv4 only.
    Inet,
    /// IPv6 only.
    Inet6,
}

/// Algorithm lists as the config writes them (`aes128-ctr,...`, `+x`, `-x`, `^x`), `None`
/// where unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// `KexAlgorithms`.
    pub kex: Option<String>,
    /// `HostKeyAlgorithms`.
    pub host_key: Option<String>,
    /// `Ciphers`.
    pub ciphers: Option<String>,
    /// `MACs`.
    pub macs: Option<String>,
    /// `PubkeyAcceptedAlgorithms`.
    pub pubkey: Option<String>,
}

/// Everything tether needs to reach one host, resolved from the config and the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The name looked up in the config (`web1`; `deploy@10.0.0.5:2222` gives `10.0.0.5`).
    pub alias: String,
    /// The host to connect to: `HostName` with `%h` expanded, lowercased, canonicalized.
    pub hostname: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Identity files in the order to try them (`~`, `%` tokens and `${VAR}` expanded).
    pub identity_files: Vec<PathBuf>,
    /// Whether only `identity_files` may be offered, agent identities included.
    pub identities_only: bool,
    /// Whether any `IdentityFile` was configured (else OpenSSH's default files are tried).
    pub identity_files_configured: bool,
    /// `CertificateFile`s (expanded).
    pub certificate_files: Vec<PathBuf>,
    /// The agent to authenticate with (`IdentityAgent`, else `$SSH_AUTH_SOCK`); `None`: none.
    pub identity_agent: Option<PathBuf>,
    /// User known_hosts files (expanded; the first one records new keys).
    pub user_known_hosts: Vec<PathBuf>,
    /// System known_hosts files.
    pub global_known_hosts: Vec<PathBuf>,
    /// Host key policy.
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// `HostKeyAlias` (lowercased): the name looked up in and recorded to known_hosts.
    pub host_key_alias: Option<String>,
    /// TCP connect (and handshake) timeout.
    pub connect_timeout: Duration,
    /// `ServerAliveInterval`, when set and non-zero.
    pub server_alive_interval: Option<Duration>,
    /// `ServerAliveCountMax` (default 3).
    pub server_alive_count_max: u32,
    /// How the host is reached.
    pub route: Route,
    /// `ForwardAgent`.
    pub forward_agent: bool,
    /// `ForwardAgent` given as a socket (`Some(None)`: its variable is unset).
    pub forward_agent_socket: Option<Option<PathBuf>>,
    /// `TCPKeepAlive` (default yes).
    pub tcp_keepalive: bool,
    /// `AddressFamily`.
    pub address_family: AddressFamily,
    /// `ConnectionAttempts` (default 1), one second apart as ssh does.
    pub connection_attempts: u32,
    /// `Compression`.
    pub compression: bool,
    /// `BatchMode`: never ask for a passphrase.
    pub batch_mode: bool,
    /// `HashKnownHosts`: record new keys under a hashed name.
    pub hash_known_hosts: bool,
    /// `NoHostAuthenticationForLocalhost`.
    pub no_host_authentication_for_localhost: bool,
    /// `RequiredRSASize`: the smallest RSA host key accepted, in bits.
    pub required_rsa_size: u32,
    /// Algorithm preferences.
    pub algorithms: Algorithms,
    /// The resolution as `ssh -G` prints it (see `tether hosts -G`).
    pub ssh_g: Vec<String>,
}

impl HostConfig {
    /// The name looked up in (and recorded to) known_hosts: `HostKeyAlias`, else `host` on
    /// port 22, else `[host]:port`, as OpenSSH does.
    pub fn known_hosts_name(&self) -> String {
        match &self.host_key_alias {
            Some(alias) => alias.clone(),
            None if self.port == 22 => self.hostname.clone(),
            None => format!("[{}]:{}", self.hostname, self.port),
        }
    }

    /// The agent whose socket a forwarded agent connection reaches: `ForwardAgent`'s own
    /// socket, else the identity agent (ssh points `SSH_AUTH_SOCK` at `IdentityAgent`).
    pub fn agent_to_forward(&self) -> Option<PathBuf> {
        if !self.forward_agent {
            return None;
        }
        match &self.forward_agent_socket {
            Some(socket) => socket.clone(),
            None => self.identity_agent.clone(),
        }
    }
}

/// One host to resolve, with what ssh's command line would say about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// The host as the user named it (for messages).
    pub name: String,
    /// The name looked up (`Host` patterns, `%n`).
    pub alias: String,
    /// `user@` of the name.
    pub user: Option<String>,
    /// `:port` of the name.
    pub port: Option<u16>,
    /// Jump hosts given outside the config (`-J`, a recipe's `via`), as `ssh -J`; `none`
    /// means directly (a ProxyCommand of the config still applies, as with `ssh -J none`).
    pub proxy_jump: Option<String>,
}

impl Request {
    /// `target` with `jump` (`-J`) winning over its `via`.
    pub fn for_target(target: &HostTarget, jump: Option<&str>) -> Self {
        Request {
            name: target.name.clone(),
            alias: target.alias.clone(),
            user: target.user.clone(),
            port: target.port,
            proxy_jump: jump.map(str::to_string).or_else(|| target.via.clone()),
        }
    }
}

/// Shared state of a loaded config.
#[derive(Debug)]
struct Inner {
    roots: Vec<Arc<file::File>>,
    anchors: file::Anchors,
    local: Local,
    /// Resolutions so far: each host is resolved (and its `Match exec` commands run) once.
    resolved: Mutex<HashMap<Request, Result<HostConfig, HostError>>>,
}

/// A loaded ssh config: the user's file (or the one given with `-F`), then, without `-F`, the
/// system file, with their Includes.
#[derive(Debug, Clone)]
pub struct SshConfig {
    inner: Arc<Inner>,
}

impl SshConfig {
    /// Loads what `ssh` would read: with `file` (`-F`), that file alone (`none`: no file at
    /// all; a missing file is an error); without, `~/.ssh/config` (if it exists) and then
    /// `system` (if it exists; the CLI passes [`SYSTEM_CONFIG`]).
    pub fn load(file: Option<&Path>, system: &Path) -> Result<Self, ConfigError> {
        Self::load_as(file, system, Local::current())
    }

    /// [`SshConfig::load`] for a given local user and machine.
    pub fn load_as(file: Option<&Path>, system: &Path, local: Local) -> Result<Self, ConfigError> {
        let anchors = file::Anchors {
            home: local.home.clone(),
            system_dir: system
                .parent()
                .map_or_else(|| PathBuf::from("/etc/ssh"), Path::to_path_buf),
        };
        let mut reader = file::Reader {
            anchors: &anchors,
            ignore_unknown_seen: false,
        };
        let mut roots = Vec::new();
        match file {
            Some(f) if f.as_os_str().eq_ignore_ascii_case("none") => {}
            Some(f) => match reader.read(f, true, false, &mut Vec::new())? {
                Some(parsed) => roots.push(parsed),
                None => {
                    return Err(ConfigError::Read {
                        path: f.to_path_buf(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    })
                }
            },
            None => {
                let user = local.home.join(".ssh").join("config");
                roots.extend(reader.read(&user, true, true, &mut Vec::new())?);
                roots.extend(reader.read(system, false, false, &mut Vec::new())?);
            }
        }
        Ok(Self::from_roots(roots, anchors, local))
    }

    /// Parses config text as if read from `path` as a user config (tests, tools).
    pub fn parse_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let local = Local::current();
        let anchors = file::Anchors {
            home: local.home.clone(),
            system_dir: PathBuf::from("/etc/ssh"),
        };
        let mut reader = file::Reader {
            anchors: &anchors,
            ignore_unknown_seen: false,
        };
        let root = reader.parse(text, path, true, &mut Vec::new())?;
        Ok(Self::from_roots(vec![root], anchors, local))
    }

    fn from_roots(roots: Vec<Arc<file::File>>, anchors: file::Anchors, local: Local) -> Self {
        SshConfig {
            inner: Arc::new(Inner {
                roots,
                anchors,
                local,
                resolved: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The local user and machine this config resolves for.
    pub fn local(&self) -> &Local {
        &self.inner.local
    }

    /// Resolves `alias` with `user` and `port` from the command line (`user@alias:port`).
    pub fn resolve(
        &self,
        alias: &str,
        user: Option<&str>,
        port: Option<u16>,
    ) -> Result<HostConfig, HostError> {
        self.resolve_request(&Request {
            name: alias.to_string(),
            alias: alias.to_string(),
            user: user.map(str::to_string),
            port,
            proxy_jump: None,
        })
    }

    /// Resolves `target`, reached through `jump` (`-J`) when given, else through its `via`.
    pub fn resolve_target(
        &self,
        target: &HostTarget,
        jump: Option<&str>,
    ) -> Result<HostConfig, HostError> {
        self.resolve_request(&Request::for_target(target, jump))
    }

    /// Resolves one request (once per process: later calls return the first result).
    pub fn resolve_request(&self, req: &Request) -> Result<HostConfig, HostError> {
        let mut resolved = self
            .inner
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(r) = resolved.get(req) {
            return r.clone();
        }
        let result = resolve::Resolution::run(&self.inner, req);
        resolved.insert(req.clone(), result.clone());
        result
    }
}

/// Parses an ssh_config time value (`30`, `30s`, `2m`, `1h30m`), as ssh's `convtime`.
pub fn parse_seconds(value: &str) -> Option<Duration> {
    keyword::convtime(value).map(Duration::from_secs)
}

#[cfg(test)]
mod tests;
