//! The SSH layer: config resolution, connecting, host keys, one owner thread per session.

pub mod agent;
pub mod agent_reply;
pub mod algorithms;
pub mod auth;
pub mod banner;
pub mod callback;
pub mod certificate;
pub mod command_shell;
pub mod config;
pub mod connect;
pub mod connection;
pub mod disconnect;
pub mod env;
pub mod exec;
pub mod heartbeat;
pub mod host_key;
pub mod identity_key;
pub mod idle_death;
pub mod jump;
pub mod kexinit;
pub mod known_hosts;
pub mod limit_cache;
pub mod limiter;
pub mod owner;
pub mod policy;
pub mod poll;
pub mod proxy_command;
pub mod reconnect;
pub mod route;
pub mod signature;
pub mod socket_end;
pub mod standby;
pub mod stop_words;
pub mod supervisor;
pub mod tcp_ack;
pub mod wire;
pub mod wording;
pub mod worker;

use std::time::Duration;

use crate::duration::format as format_duration;
use crate::failure::Kind;
use crate::host_text::HostText;

use banner::BannerProblem;
use certificate::CertificateProblem;
use config::HostError;
use known_hosts::OtherEntries;

/// Why a host could not be reached or used. Callers branch on the kind: a connection problem
/// is reported as "unreachable" (exit code 3), a lost connection during a command is never
/// retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    /// The ssh config says something for this host that tether refuses, or that fails for
    /// it (see [`HostError`]); the other hosts are not affected.
    #[error(transparent)]
    Config(#[from] HostError),
    /// The ProxyCommand could not be started, or exited before the SSH connection was set up.
    #[error(
        "{host}: ProxyCommand `{command}` {status} before the SSH connection was set up{}",
        if .stderr.is_empty() { String::new() } else { format!("; its stderr ended with: {}", .stderr) }
    )]
    ProxyCommand {
        /// Host as named by the user.
        host: String,
        /// The command as run (tokens expanded).
        command: String,
        /// `exited with status 255`, `was killed by signal 9`, `could not be started: ...`.
        status: String,
        /// The last lines of its stderr, joined with ` | `.
        stderr: String,
    },
    /// Name resolution failed.
    #[error("{host}: cannot resolve {hostname}: {reason}")]
    Resolve {
        /// Host as named by the user.
        host: String,
        /// The name looked up.
        hostname: String,
        /// Resolver message.
        reason: String,
    },
    /// TCP connect failed (refused, no route ...).
    #[error("{host}: cannot connect to {addr}: {reason}")]
    Connect {
        /// Host as named by the user.
        host: String,
        /// `hostname:port`.
        addr: String,
        /// OS message.
        reason: String,
    },
    /// Nothing answered within the connect timeout.
    #[error("{host}: no answer from {addr} within {}", format_duration(*.timeout))]
    ConnectTimeout {
        /// Host as named by the user.
        host: String,
        /// `hostname:port`.
        addr: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The server accepted the TCP connection but no SSH session came of it within
    /// `ConnectTimeout`: it sent nothing, or no SSH banner, or it closed the connection before
    /// its banner (also after retries: see [`banner`]), or the key exchange or the login
    /// stalled.
    #[error("{host}: {addr} {problem}")]
    Banner {
        /// Host as named by the user.
        host: String,
        /// `hostname:port`.
        addr: String,
        /// What it did.
        problem: BannerProblem,
    },
    /// The SSH handshake failed.
    #[error("{host}: SSH handshake with {addr} failed: {reason}")]
    Handshake {
        /// Host as named by the user.
        host: String,
        /// `hostname:port`.
        addr: String,
        /// libssh2 message.
        reason: String,
    },
    /// The host key is not in known_hosts and the policy refuses unknown hosts:
    /// `StrictHostKeyChecking yes`, or no `UserKnownHostsFile` to record it in (`none`), where
    /// ssh refuses a new key whatever `StrictHostKeyChecking` says (sshconnect.c: a new key
    /// with no user file to write is a verification failure).
    #[error(
        "{host}: host key for {name} is not known ({key}){other}; {}",
        match .known_hosts {
            // Nothing written there is kept (the `UserKnownHostsFile /dev/null` habit).
            Some(file) if file.as_path() == std::path::Path::new("/dev/null") => {
                "refusing to connect under StrictHostKeyChecking yes (or ask: tether never \
                 asks). UserKnownHostsFile is /dev/null, which keeps no key: add it to a \
                 known_hosts file this host reads (UserKnownHostsFile, GlobalKnownHostsFile), \
                 after checking its fingerprint"
                    .to_string()
            }
            Some(file) => format!(
                "refusing to connect under StrictHostKeyChecking yes (or ask: tether never \
                 asks). Add it to {} (check the fingerprint first), or set \
                 `StrictHostKeyChecking accept-new` for this host",
                file.display()
            ),
            None => "refusing to connect, as ssh does: UserKnownHostsFile is none, so a new \
                     host key cannot be recorded, whatever StrictHostKeyChecking says. Add it to \
                     a known_hosts file this host reads (UserKnownHostsFile, \
                     GlobalKnownHostsFile), after checking its fingerprint"
                .to_string(),
        }
    )]
    UnknownHostKey {
        /// Host as named by the user.
        host: String,
        /// Name looked up in known_hosts.
        name: String,
        /// Presented key type and fingerprint (`ssh-ed25519 SHA256:...`).
        key: String,
        /// Where it could be added: the first `UserKnownHostsFile`; `None` for `none`.
        known_hosts: Option<std::path::PathBuf>,
        /// What else known_hosts says about the name (keys of other types, CA lines).
        other: Box<OtherEntries>,
    },
    /// The host presented a certificate that no trusted CA vouches for (wrong principal,
    /// expired, unknown CA ...), and its key is not recorded as a plain key either.
    #[error(
        "{host}: the host certificate for {name} was refused: {problem}; it is {certificate}{}; \
         its key is not in known_hosts either, so tether refuses to connect",
        if .authorities.is_empty() { String::new() } else {
            format!(", checked against the @cert-authority line at {}", .authorities)
        }
    )]
    HostCertificateRefused {
        /// Host as named by the user.
        host: String,
        /// Name looked up in known_hosts.
        name: String,
        /// The certificate: type, fingerprint of its key, key id, serial.
        certificate: String,
        /// Why it was refused.
        problem: Box<CertificateProblem>,
        /// `file:line` of the `@cert-authority` line(s) it was checked against.
        authorities: String,
    },
    /// The host presented a key other than the recorded one.
    #[error(
        "{host}: HOST KEY CHANGED for {name}: the server presented {key_type} {presented}, \
         but {recorded} is recorded; refusing to connect (someone may be intercepting the \
         connection, or the host was reinstalled: then remove the old entry)"
    )]
    HostKeyChanged {
        /// Host as named by the user.
        host: String,
        /// Name looked up in known_hosts.
        name: String,
        /// Presented key type.
        key_type: String,
        /// Presented key fingerprint.
        presented: String,
        /// Recorded fingerprints with their file:line.
        recorded: String,
    },
    /// The presented key, or the CA that signed its certificate, is marked `@revoked`.
    #[error("{host}: {} for {name} is revoked ({location}); refusing to connect", if *.authority { "the certificate authority that signed the host certificate" } else { "host key" })]
    HostKeyRevoked {
        /// Host as named by the user.
        host: String,
        /// The revoked key is the CA of the host's certificate, not the host's own key.
        authority: bool,
        /// Name looked up in known_hosts.
        name: String,
        /// file:line of the `@revoked` entry.
        location: String,
    },
    /// Every authentication method failed.
    #[error("{host}: authentication failed for user {user} ({tried})")]
    Auth {
        /// Host as named by the user.
        host: String,
        /// Login user.
        user: String,
        /// What was tried.
        tried: String,
    },
    /// The server closed the connection while keys were being offered: sshd does that once
    /// `MaxAuthTries` keys were refused ("Too many authentication failures").
    #[error(
        "{host}: the server closed the connection during authentication for user {user} after \
         refusing {refused} key(s){}; tried: {tried}; hint: {}",
        if .message.is_empty() { String::new() } else { format!(" (\"{}\")", .message) },
        if *.identities_only {
            "sshd allows only a few attempts per connection (MaxAuthTries): name the key this \
             host accepts first with IdentityFile"
        } else {
            "sshd allows only a few attempts per connection (MaxAuthTries) and tether offers \
             the IdentityFile keys, then every ssh-agent key: name the key this host accepts \
             with IdentityFile and set `IdentitiesOnly yes` for it, so that only that key is \
             offered"
        }
    )]
    AuthCutOff {
        /// Host as named by the user.
        host: String,
        /// Login user.
        user: String,
        /// How many keys were offered and refused, the last one included.
        refused: usize,
        /// The server's disconnect message (empty when it gave none).
        message: String,
        /// What was tried.
        tried: String,
        /// Whether `IdentitiesOnly` was set (only configured keys were offered).
        identities_only: bool,
    },
    /// The session failed outside a command (channel open, keepalive, heartbeat).
    #[error("{host}: {reason}")]
    Session {
        /// Host as named by the user.
        host: String,
        /// What failed.
        reason: String,
    },
    /// A command that never started, on a session that is fine: the server refused a request
    /// for its channel (a PTY under `PermitTTY no`), its output could not be written locally,
    /// or, too long for one exec request, it could not be written to a file on the host (stop
    /// 45 tester t56: said as an unreachable host, exit 3, where the host was reached).
    #[error(
        "{host}: `{}` was not run: {reason}",
        crate::chars::command_named(command)
    )]
    NotRun {
        /// Host as named by the user.
        host: String,
        /// The command.
        command: String,
        /// Why it never started.
        reason: String,
    },
    /// The connection died while a command was running: it may have partly run, and it is
    /// never re-sent.
    #[error("{}", self.said())]
    ConnectionLost {
        /// Host as named by the user.
        host: String,
        /// The command.
        command: String,
        /// Time since the command started.
        elapsed: Duration,
        /// The transport error.
        reason: String,
    },
    /// The connection died during a step of a transfer that replaces nothing (an upload's
    /// bytes, a download): its destination is as it was (see [`SshError::nothing_replaced`]).
    #[error("{}", self.said())]
    TransferCut {
        /// Host as named by the user.
        host: String,
        /// The transfer (`upload a -> b`).
        command: String,
        /// Time since its step started.
        elapsed: Duration,
        /// The transport error.
        reason: String,
    },
    /// The command ran past its deadline; its channel was closed, and it was stopped on the
    /// host as `reach` says.
    #[error("{}", self.said())]
    CommandTimeout {
        /// Host as named by the user.
        host: String,
        /// The command.
        command: String,
        /// The deadline.
        timeout: Duration,
        /// What the stop at its deadline did on the host.
        reach: StopReach,
        /// What the command wrote on stderr by then (its last bytes), whose last lines its
        /// failure shows.
        stderr: Vec<u8>,
        /// How many bytes of stderr came before `stderr` and were not kept.
        stderr_cut: u64,
    },
    /// The host could not be reached through its jump host (ProxyJump): the jump host is
    /// unreachable, or it could not open a connection to the host.
    #[error("{host}: cannot reach it through jump host {jump}: {reason}")]
    Jump {
        /// Host as named by the user.
        host: String,
        /// The jump host as named in the route (`bastion`).
        jump: String,
        /// What failed.
        reason: String,
        /// The kind of the jump host's own failure where it is one a recipe tells apart (its
        /// host key refused, its configuration), else unreachable.
        kind: Kind,
    },
    /// The host's route is wrong (jump hosts that loop, too many of them, a malformed list):
    /// nothing was tried.
    #[error("{host}: {message}")]
    Route {
        /// Host as named by the user.
        host: String,
        /// What is wrong, naming the keyword or option and where it came from.
        message: String,
    },
    /// tether stopped the command, for `why` (Ctrl-C, `watch --kill`, a failed host of the
    /// same step): its process group was stopped (a `remote_stopped` event says how), or, for
    /// a PTY command stopped as it started, its terminal hung up, or stopping it on the host
    /// failed (`reach` says which); or the stop came while the command waited for its host
    /// and it was never sent.
    #[error("{}", self.said())]
    CommandStopped {
        /// Host as named by the user.
        host: String,
        /// The command.
        command: String,
        /// Time since the command started; `None` when it never started.
        elapsed: Option<Duration>,
        /// Why tether stopped it.
        why: crate::stop::StopReason,
        /// What the stop did on the host.
        reach: StopReach,
    },
    /// tether gave up the host's first connection while it was under way (Ctrl-C, SIGTERM or
    /// SIGHUP to tether): no command was sent to the host.
    #[error("{}", self.said())]
    ConnectStopped {
        /// Host as named by the user.
        host: String,
        /// How long the attempt had taken.
        after: Duration,
    },
}

/// What tether's stop did on the host to a command it stopped (see
/// [`SshError::CommandStopped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReach {
    /// Its process group was stopped, or it had not started.
    Stopped,
    /// A PTY command whose process group could not be signalled: only its terminal was hung up
    /// (SIGHUP), which a command ignoring SIGHUP outlives.
    HungUp,
    /// Stopping it on the host failed (a warning says how, and, where it runs under the
    /// supervisor, tether tries again at its next contact with the host): it may still be
    /// running. tether stopped waiting for it.
    NotStopped,
}

impl SshError {
    /// The message, where tether named the host and the durations it measured marked (see
    /// [`HostText`]), so that the same failure of many hosts folds into one text. Every one
    /// begins with the host's name, as a failed command's does (`web1: ...`: tester t118, a
    /// lost connection's said `connection lost during `X` on web1 after 1.2 s`); those that
    /// hold a duration tether measured are written here (their `Display` is this), every
    /// other one as its `#[error]` writes it.
    pub fn said(&self) -> HostText {
        match self {
            SshError::ConnectionLost {
                host,
                command,
                elapsed,
                reason,
            }
            | SshError::TransferCut {
                host,
                command,
                elapsed,
                reason,
            } => {
                let what_of_it = match self {
                    SshError::TransferCut { .. } => "nothing was replaced",
                    _ => "the command may have partly run",
                };
                HostText::new()
                    .host(host)
                    .text(&format!(
                        ": connection lost during `{}` after ",
                        crate::chars::command_named(command)
                    ))
                    .took(*elapsed)
                    .text(&format!("; {what_of_it} ({reason})"))
            }
            SshError::CommandTimeout {
                host,
                command,
                timeout,
                reach,
                stderr,
                stderr_cut,
            } => {
                // Said here too, not only in the warnings before it (stop 57 tester t91: the
                // failure and the summary said only "timed out" of a command its stop could
                // not reach). What the stop did at the deadline: tether may stop it at its
                // next contact with the host, which its own line says.
                let mut text = HostText::new().host(host).text(&format!(
                    ": `{}` did not finish within {}{}",
                    crate::chars::command_named(command),
                    format_duration(*timeout),
                    match reach {
                        StopReach::Stopped => "",
                        StopReach::HungUp => " (tether hung up its terminal)",
                        StopReach::NotStopped => {
                            "; stopping it on the host then failed (the warnings above say \
                                 what became of it)"
                        }
                    }
                ));
                // As a failed command's (stop 51 tester t76: a command that said why it
                // hung, then timed out, showed none of it).
                crate::stderr_tail::push_tail(&mut text, stderr, *stderr_cut);
                text
            }
            SshError::CommandStopped {
                host,
                command,
                elapsed: Some(d),
                why,
                reach: StopReach::NotStopped,
            } => HostText::new()
                .host(host)
                .text(&format!(
                    ": tether stopped waiting for `{}` after ",
                    crate::chars::command_named(command)
                ))
                .took(*d)
                .text(&format!(
                    " ({why}), but could not stop it on the host: it may still be running"
                )),
            SshError::CommandStopped {
                host,
                command,
                elapsed,
                why,
                ..
            } => {
                let text = HostText::new().host(host).text(&format!(
                    ": `{}` was stopped by tether ",
                    crate::chars::command_named(command)
                ));
                match elapsed {
                    Some(d) => text.text("after ").took(*d),
                    None => text.text("before it started"),
                }
                .text(&format!(" ({why})"))
            }
            SshError::ConnectStopped { host, after } => HostText::new()
                .host(host)
                .text(": connecting was stopped by tether after ")
                .took(*after)
                .text(" (tether was interrupted); no command was sent to it"),
            other => {
                let host = other.host();
                let whole = other.to_string();
                // Its `#[error]` begins with `{host}: `.
                match whole.strip_prefix(host).and_then(|r| r.strip_prefix(": ")) {
                    Some(rest) => HostText::new().host(host).text(": ").text(rest),
                    None => HostText::from(whole),
                }
            }
        }
    }

    /// Whether tether stopped the command on the host, and it ended there: its timeout passed
    /// or it was stopped (Ctrl-C, a step abort) and its process group stopped, after it had
    /// started. What it did before the stop stays done.
    pub fn stopped_on_host(&self) -> bool {
        matches!(
            self,
            SshError::CommandTimeout {
                reach: StopReach::Stopped,
                ..
            } | SshError::CommandStopped {
                elapsed: Some(_),
                reach: StopReach::Stopped,
                ..
            }
        )
    }

    /// The message as part of another about `host`: without its leading host name where that
    /// is `host` (`the session was lost (web1: ...)` would name web1 twice in a line that
    /// begins with it).
    pub fn said_for(&self, host: &str) -> String {
        self.said().after_host(host)
    }

    /// The host, as named by the user.
    pub fn host(&self) -> &str {
        match self {
            SshError::Config(e) => &e.host,
            SshError::ProxyCommand { host, .. }
            | SshError::Resolve { host, .. }
            | SshError::Connect { host, .. }
            | SshError::ConnectTimeout { host, .. }
            | SshError::Banner { host, .. }
            | SshError::Handshake { host, .. }
            | SshError::UnknownHostKey { host, .. }
            | SshError::HostCertificateRefused { host, .. }
            | SshError::HostKeyChanged { host, .. }
            | SshError::HostKeyRevoked { host, .. }
            | SshError::Auth { host, .. }
            | SshError::AuthCutOff { host, .. }
            | SshError::Session { host, .. }
            | SshError::NotRun { host, .. }
            | SshError::ConnectionLost { host, .. }
            | SshError::TransferCut { host, .. }
            | SshError::CommandTimeout { host, .. }
            | SshError::Jump { host, .. }
            | SshError::Route { host, .. }
            | SshError::CommandStopped { host, .. }
            | SshError::ConnectStopped { host, .. } => host,
        }
    }

    /// The failure of a command sent for something the user named otherwise (an upload's
    /// internal script, named `upload a -> b`): the same, naming it `label`.
    pub fn naming(mut self, label: &str) -> Self {
        match &mut self {
            SshError::ConnectionLost { command, .. }
            | SshError::TransferCut { command, .. }
            | SshError::CommandTimeout { command, .. }
            | SshError::CommandStopped { command, .. }
            | SshError::NotRun { command, .. } => *command = label.to_string(),
            _ => {}
        }
        self
    }

    /// The failure of a transfer's step that replaces nothing, whose remote shell removes
    /// what it made when its connection dies (an upload's bytes, a download): a lost
    /// connection there is said so, not as a command that may have partly run (stop 44
    /// tester t54).
    pub fn nothing_replaced(self) -> Self {
        match self {
            SshError::ConnectionLost {
                host,
                command,
                elapsed,
                reason,
            } => SshError::TransferCut {
                host,
                command,
                elapsed,
                reason,
            },
            other => other,
        }
    }

    /// Whether this failure happened before any command could start (the host is unreachable,
    /// refused us, or its configuration is wrong), as opposed to a failure of or during a
    /// command.
    pub fn is_connect_failure(&self) -> bool {
        !matches!(
            self,
            SshError::ConnectionLost { .. }
                | SshError::TransferCut { .. }
                | SshError::CommandTimeout { .. }
                | SshError::CommandStopped { .. }
                | SshError::NotRun { .. }
        )
    }

    /// A command tether stopped before it was sent (`why`): it never ran.
    pub fn stopped_before(host: &str, command: &str, why: crate::stop::StopReason) -> SshError {
        SshError::CommandStopped {
            host: host.to_string(),
            command: command.to_string(),
            elapsed: None,
            why,
            reach: StopReach::Stopped,
        }
    }

    /// Whether the server refused its host key or the login: waiting fixes neither (an expired
    /// certificate included), so no attempt to connect again is made.
    pub fn refused(&self) -> bool {
        self.kind() == Kind::HostKeyRefused
            || matches!(self, SshError::Auth { .. } | SshError::AuthCutOff { .. })
    }

    /// `host`'s failure where the configuration of a jump host on its route is refused (`e`,
    /// naming that jump host): said as `host`'s, naming the jump host, as one that cannot be
    /// reached is (stop 63 tester t105: `1 of 2 hosts failed` then only `jbad: ssh config
    /// ...`, a host not selected, where the host behind it was never named); its kind the jump
    /// host's (a configuration error, exit 2; unreachable where its name does not resolve).
    pub fn hop_refused(host: &str, e: HostError) -> SshError {
        SshError::Jump {
            host: host.to_string(),
            jump: e.host.clone(),
            kind: match e.unresolved {
                true => Kind::Unreachable,
                false => Kind::Config,
            },
            reason: e.to_string(),
        }
    }

    /// The kind of failure this is for the recipe and the exit code.
    pub fn kind(&self) -> Kind {
        match self {
            SshError::UnknownHostKey { .. }
            | SshError::HostCertificateRefused { .. }
            | SshError::HostKeyChanged { .. }
            | SshError::HostKeyRevoked { .. } => Kind::HostKeyRefused,
            SshError::Config(e) if e.unresolved => Kind::Unreachable,
            SshError::Config(_) | SshError::Route { .. } => Kind::Config,
            SshError::ConnectionLost { .. } | SshError::TransferCut { .. } => {
                Kind::ConnectionLost
            }
            // Stopped because tether was interrupted: the interrupt's, not a failure of the
            // host's own.
            SshError::CommandStopped {
                why: crate::stop::StopReason::Interrupted,
                ..
            } => Kind::Interrupted,
            SshError::CommandTimeout { .. }
            | SshError::CommandStopped { .. }
            | SshError::NotRun { .. } => Kind::CommandFailed,
            SshError::Resolve { .. }
            | SshError::Connect { .. }
            | SshError::ConnectTimeout { .. }
            | SshError::Handshake { .. }
            | SshError::Banner { .. }
            | SshError::Auth { .. }
            | SshError::AuthCutOff { .. }
            | SshError::Session { .. }
            // Not reached, as far as a recipe that catches it (a failure hook after Ctrl-C)
            // is concerned; the run itself exits 130 for the interrupt.
            | SshError::ConnectStopped { .. }
            | SshError::ProxyCommand { .. } => Kind::Unreachable,
            SshError::Jump { kind, .. } => *kind,
        }
    }
}
