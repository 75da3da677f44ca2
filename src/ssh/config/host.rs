//! One host's resolved configuration ([`HostConfig`]) and what a resolution starts from (a
//! [`Request`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::host::HostTarget;

/// Default connect timeout when the config sets none (ssh waits for the TCP timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What bounds a connection attempt ([`HostConfig::connect_timeout`]), named in its failure
/// ("sent no SSH banner within 1.0 s (ConnectTimeout)"): the config's `ConnectTimeout`, or
/// what was left of a shorter bound that cut the attempt short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectBound {
    /// The config's `ConnectTimeout`.
    #[default]
    ConnectTimeout,
    /// Re-attaching to a command whose connection was lost: its bound (`--reattach`, an
    /// `on`'s `reattach`).
    Reattach(Duration),
    /// Re-attaching to a command whose own timeout comes first: that timeout.
    Timeout(Duration),
    /// tether's last attempt to stop what it left running before it exits: its length.
    LastContact(Duration),
}

impl fmt::Display for ConnectBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| crate::duration::format(*d);
        match self {
            ConnectBound::ConnectTimeout => f.write_str("ConnectTimeout"),
            ConnectBound::Reattach(b) => write!(f, "what was left of the {} re-attach bound", d(b)),
            ConnectBound::Timeout(t) => {
                write!(f, "what was left of the command's {} timeout", d(t))
            }
            ConnectBound::LastContact(t) => {
                write!(f, "tether's last attempt before it exits, {}", d(t))
            }
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// `CASignatureAlgorithms`: what a host certificate's CA may sign with.
    pub ca_signature: Option<String>,
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
    /// What `connect_timeout` is, for the words of a failure: `ConnectTimeout`, or a shorter
    /// bound a connection was given (see `Owner::connect_for`).
    pub connect_bound: ConnectBound,
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
    /// `SendEnv` and `SetEnv`: what each command's channel asks the server to set.
    pub env: super::environment::Environment,
    /// The resolution as `ssh -G` prints it (see `tether hosts -G`).
    pub ssh_g: Vec<String>,
    /// How a person reaches this host with OpenSSH as tether does, shell-quoted words:
    /// `ssh -F FILE -J JUMP -l USER -p PORT ALIAS`, each option only where tether had it (a
    /// `-F` file, made absolute; jump hosts given outside the config, `-J` or a recipe's
    /// `via`; a user or port in the host's name, `deploy@web1:2222`). For hints shown to be
    /// copied (how to stop a command left running).
    pub ssh_command: String,
    /// The config files this host's resolution read, in order, Includes too (those with `%`
    /// tokens, read for this host alone, as well): a run must not write over them.
    pub config_files: Vec<PathBuf>,
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

    /// The name known_hosts is searched under a second time when [`Self::known_hosts_name`]
    /// records no key of the presented type (nor a `@cert-authority` line for its CA): the
    /// bare host name of a host on a port other than 22, as sshconnect.c `check_host_key`
    /// looks again "w/out port". None with `HostKeyAlias` (ssh has no second look for an
    /// alias) and on port 22. Only a key recorded there exactly (or a CA line naming the
    /// certificate's CA) counts; nothing is ever recorded under it.
    pub fn known_hosts_portless_name(&self) -> Option<&str> {
        (self.host_key_alias.is_none() && self.port != 22).then_some(self.hostname.as_str())
    }

    /// The agent whose socket a forwarded agent connection reaches: `ForwardAgent`'s own
    /// socket, else the identity agent (ssh points `SSH_AUTH_SOCK` at `IdentityAgent`). As
    /// ssh.c `check_agent_present`, nothing is forwarded without an identity agent
    /// (`IdentityAgent none`, or no `SSH_AUTH_SOCK`), not even a socket ForwardAgent names
    /// (stop 44 tester t53: tether forwarded it, ssh 9.2 forwards none).
    pub fn agent_to_forward(&self) -> Option<PathBuf> {
        if !self.forward_agent {
            return None;
        }
        let identity_agent = self.identity_agent.as_ref()?;
        match &self.forward_agent_socket {
            Some(socket) => socket.clone(),
            None => Some(identity_agent.clone()),
        }
    }

    /// Why no agent is forwarded where forwarding is asked for; `None` where one is, or
    /// where none is asked for.
    pub fn agent_not_forwarded(&self) -> Option<&'static str> {
        if !self.forward_agent || self.agent_to_forward().is_some() {
            return None;
        }
        Some(if self.identity_agent.is_none() {
            "there is no local ssh-agent for it (IdentityAgent none, or SSH_AUTH_SOCK is not \
             set), and ssh forwards an agent only where it has one of its own"
        } else {
            "the variable that ForwardAgent names is not set"
        })
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
    /// Reached as a jump host, as ssh reaches one (`ssh -W`, which sets `RequestTTY no` and
    /// `SessionType none` on its command line, so they win over the config): its `Match
    /// sessiontype` is `none`, and its `RequestTTY`, `SessionType`, `RemoteCommand` and
    /// `Tunnel` lines change nothing, as no session is opened on it.
    pub hop: bool,
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
            hop: false,
        }
    }
}
