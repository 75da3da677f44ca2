//! Authentication: which keys are offered, in which order, and what is said when none is
//! accepted.
//!
//! The identities the config names come first, in its order (`IdentityFile`s, each with its
//! certificates first; the ssh-agent's copy of such a key is used instead of the file, so an
//! encrypted key in the agent needs no passphrase), then the agent's other keys unless
//! `IdentitiesOnly`. ssh offers those other agent keys before a configured key that is not in
//! the agent (sshconnect2.c `pubkey_prepare`); tether offers what the config names first, so
//! a host with a low `MaxAuthTries` gets the key meant for it before sshd gives up ("Too many
//! authentication failures"). A server that closes the connection during authentication is
//! reported as such ([`SshError::AuthCutOff`]), with its message and what to change.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ssh2::{Agent, PublicKey, Session};

use super::agent_reply::{self, AgentTrouble, Request};
use super::banner::BannerProblem;
use super::config::{key_type_accepted, pubkey_accepted, HostConfig};
use super::disconnect::Watch;
use super::identity_key;
use super::idle_death::{self, IdleDeath};
use super::known_hosts;
use super::wire::Reader;
use super::SshError;

/// libssh2 errors that mean the connection is gone: LIBSSH2_ERROR_SOCKET_SEND,
/// LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_RECV.
const CONNECTION_GONE: [i32; 3] = [-7, -13, -43];

/// LIBSSH2_ERROR_TIMEOUT: the session's timeout (what is left of the attempt's deadline)
/// passed with no answer.
const TIMED_OUT: i32 = -9;

/// Logs in as `cfg.user` on `session`, whose socket is `fd`, to the server at `addr`
/// (`host:port`, for messages); see the module docs for the order of the keys. A login the
/// server does not answer before the session's timeout is [`SshError::Banner`] with
/// [`BannerProblem::LoginTimeout`], not a refused key. What the agent failed to do, where the
/// login succeeded all the same, goes to `warn` (a failed login names it).
pub fn authenticate(
    name: &str,
    addr: &str,
    cfg: &HostConfig,
    session: &Session,
    fd: RawFd,
    warn: &mut dyn FnMut(String),
) -> Result<(), SshError> {
    let watch = Watch::start(session);
    let mut auth = Attempts {
        name,
        addr,
        cfg,
        session,
        fd,
        watch: &watch,
        tried: Vec::new(),
        refused: 0,
        accepted: pubkey_accepted(cfg.algorithms.pubkey.as_deref()),
        agent_failed: false,
        agent_said: Vec::new(),
    };
    let result = log_in(&mut auth, cfg, session, fd);
    // A login slowed by an agent that did not answer is not left unexplained (tester t131).
    if result.is_ok() {
        for said in auth.agent_said.drain(..) {
            warn(format!("{said}; logged in without it"));
        }
    }
    result
}

/// [`authenticate`]'s offers, noted in `auth`.
fn log_in(
    auth: &mut Attempts<'_>,
    cfg: &HostConfig,
    session: &Session,
    fd: RawFd,
) -> Result<(), SshError> {
    let agent = match open_agent(session, cfg, fd) {
        Ok(agent) => agent,
        Err(AgentOpen::GivenUp) => return Err(auth.given_up()),
        Err(AgentOpen::Unused(why)) => {
            auth.agent_failed = true;
            auth.agent_said.push(why.clone());
            auth.tried.push(why);
            None
        }
    };
    let agent_keys: &[PublicKey] = agent.as_ref().map_or(&[], |(_, keys)| keys);
    let mut agent_used: Vec<&[u8]> = Vec::new();

    let mut certificates_used: Vec<PathBuf> = Vec::new();
    for path in &cfg.identity_files {
        let public = identity_public_key(path);
        let copy = public
            .as_ref()
            .and_then(|p| agent_keys.iter().find(|k| k.blob() == p.blob));
        // A public key file stands for a private key elsewhere (ssh-agent); the file itself
        // is never sent as a private key.
        let is_public_file = public.as_ref().is_some_and(|p| p.from_file_itself);
        if is_public_file && copy.is_none() {
            // An agent that could not be used may hold it (tester t131: said not to), and
            // ssh, which could use it, may not fail alike (tester t132).
            let holds = if auth.agent_failed {
                "ssh-agent, which could not be used (said), is where its private key would be"
            } else {
                "ssh-agent holds no private key for it (ssh fails alike: it cannot load a public \
                 key file as the private key)"
            };
            auth.tried
                .push(format!("{} is a public key and {holds}", path.display()));
            continue;
        }
        let mut exists = path.exists() && !is_public_file;
        if let Some(mode) = exists.then(|| unprotected(path)).flatten() {
            // As ssh (authfile.c `sshkey_perm_ok`): the file is ignored; the agent's copy of
            // its key is not a file others can read, and is still offered.
            auth.tried.push(format!(
                "{}: permissions {mode:04o} are too open (another user can read it): ignored, \
                 as ssh ignores it (chmod 600 it)",
                path.display()
            ));
            if copy.is_none() {
                continue;
            }
            exists = false;
        }
        if !exists && copy.is_none() {
            if cfg.identity_files_configured {
                auth.tried
                    .push(format!("{} does not exist", path.display()));
            }
            continue;
        }
        let mut certificates: Vec<PathBuf> = Vec::new();
        for cert in certificates_for(path, cfg).into_iter().filter(|_| exists) {
            let t = certificate_type(&cert);
            match auth.accepts(&format!("certificate {}", cert.display()), t.as_deref()) {
                true => certificates.push(cert),
                // Paired with its key, and left out (said above).
                false => certificates_used.push(cert),
            }
        }
        let key_type = public
            .as_ref()
            .and_then(|p| known_hosts::blob_key_type(&p.blob));
        // ssh skips a key whose type the list leaves out; its certificates are identities
        // of their own.
        let key_accepted = auth.accepts(&format!("key {}", path.display()), key_type.as_deref());
        if !key_accepted && certificates.is_empty() {
            continue;
        }
        // The file's private key is needed for its certificates, and for the key itself
        // unless the agent holds it.
        let needs_file = !certificates.is_empty() || copy.is_none();
        let passphrase = match exists && needs_file && key_is_encrypted(path) {
            false => None,
            true => match passphrase_for(path, cfg.batch_mode) {
                Ok(p) => Some(p),
                Err(why) => {
                    auth.tried
                        .push(format!("{} is encrypted and {why}", path.display()));
                    if copy.is_none() {
                        continue;
                    }
                    None
                }
            },
        };
        let file_usable = exists && (passphrase.is_some() || !key_is_encrypted(path));
        for cert in certificates.iter().filter(|_| file_usable) {
            certificates_used.push(cert.clone());
            match certificate_type(cert) {
                Some(t) if !CERTIFICATE_TYPES.contains(&t.as_str()) => {
                    auth.tried.push(format!(
                        "certificate {}: key type {t} is not supported by libssh2",
                        cert.display()
                    ));
                    continue;
                }
                None => {
                    auth.tried
                        .push(format!("{} is not a certificate", cert.display()));
                    continue;
                }
                Some(_) => {}
            }
            let result =
                session.userauth_pubkey_file(&cfg.user, Some(cert), path, passphrase.as_deref());
            let what = format!("certificate {} with key {}", cert.display(), path.display());
            if auth.offer(result, what)? {
                return Ok(());
            }
        }
        if !key_accepted {
            if let Some(key) = copy {
                agent_used.push(key.blob());
            }
            continue;
        }
        if let (Some(key), Some((agent, _))) = (copy, agent.as_ref()) {
            agent_used.push(key.blob());
            let what = format!("ssh-agent's copy of {}", path.display());
            match auth.offer_agent(agent, key, what)? {
                Offer::LoggedIn => return Ok(()),
                // The agent did not sign (said): the key's own file signs, where it can
                // without a passphrase.
                Offer::NotSigned if exists && !key_is_encrypted(path) => {}
                Offer::NotSigned | Offer::Refused => continue,
            }
        }
        // An unencrypted ed25519 key signs from memory, read once per run (see
        // identity_key.rs); libssh2 reads any other from its file.
        let result = match passphrase
            .is_none()
            .then(|| identity_key::load(path))
            .flatten()
        {
            Some(key) => key.userauth(session, &cfg.user),
            None => session.userauth_pubkey_file(&cfg.user, None, path, passphrase.as_deref()),
        };
        if let Err(e) = &result {
            if passphrase.is_some()
                && e.message().contains("private key")
                && !CONNECTION_GONE.contains(&code(e))
            {
                auth.tried
                    .push(format!("{}: wrong passphrase ({e})", path.display()));
                continue;
            }
        }
        if auth.offer(result, format!("key {}", path.display()))? {
            return Ok(());
        }
    }

    if let Some((agent, keys)) = agent.as_ref().filter(|_| !cfg.identities_only) {
        let others: Vec<&PublicKey> = keys
            .iter()
            .filter(|k| !agent_used.contains(&k.blob()))
            .filter(|k| {
                let t = known_hosts::blob_key_type(k.blob());
                let what = format!("ssh-agent key {}", describe_agent_key(k));
                auth.accepts(&what, t.as_deref())
            })
            .collect();
        let before = auth.tried.len();
        for key in &others {
            let what = format!("ssh-agent key {}", describe_agent_key(key));
            match auth.offer_agent(agent, key, what)? {
                Offer::LoggedIn => return Ok(()),
                Offer::NotSigned if auth.agent_failed => break,
                Offer::NotSigned | Offer::Refused => {}
            }
        }
        // One line for them all: the user knows which keys the agent holds (an agent that
        // failed is said as it failed).
        if auth.tried.len() > before + 1 && !auth.agent_failed {
            auth.tried.truncate(before);
            auth.tried
                .push(format!("{} other ssh-agent keys refused", others.len()));
        }
    }
    if let Some((_, keys)) = agent.as_ref().filter(|_| cfg.identities_only) {
        let skipped = keys.len() - agent_used.len();
        if skipped > 0 && auth.tried.is_empty() {
            auth.tried.push(format!(
                "{skipped} ssh-agent key(s) not offered (IdentitiesOnly)"
            ));
        }
    }
    for cert in &cfg.certificate_files {
        if !certificates_used.contains(cert) {
            auth.tried.push(format!(
                "certificate {} matches none of the identity files (tether pairs a certificate \
                 with a private key file only)",
                cert.display()
            ));
        }
    }
    if auth.tried.is_empty() {
        auth.tried
            .push("no ssh-agent identities and no identity files".into());
    }
    Err(SshError::Auth {
        host: auth.name.to_string(),
        user: cfg.user.clone(),
        tried: auth.tried.join("; "),
    })
}

/// The keys offered so far and how they fared.
struct Attempts<'a> {
    name: &'a str,
    addr: &'a str,
    cfg: &'a HostConfig,
    session: &'a Session,
    watch: &'a Watch<'a>,
    /// The connection's socket, looked at when an offer fails.
    fd: RawFd,
    tried: Vec<String>,
    refused: usize,
    /// What `PubkeyAcceptedAlgorithms` accepts (ssh's default list when unset).
    accepted: Vec<String>,
    /// The agent could not be used, or failed a request to sign otherwise than by refusing
    /// (said in `tried`): it is asked nothing more.
    agent_failed: bool,
    /// What the agent failed to do, as said in `tried`.
    agent_said: Vec<String>,
}

/// How offering a key through the agent went.
enum Offer {
    LoggedIn,
    Refused,
    /// The agent did not sign (said in `tried`): it failed, refused (an `ssh-add -c` key
    /// whose confirmation was denied), or had failed before.
    NotSigned,
}

impl Attempts<'_> {
    /// Whether `what`, a key of `key_type` (`None`: not known before it is offered, as for
    /// a private key file without its `.pub` that cannot be read), may be offered under
    /// `PubkeyAcceptedAlgorithms`; a key left out is noted, as ssh skips it
    /// (sshconnect2.c `key_type_allowed_by_config`).
    fn accepts(&mut self, what: &str, key_type: Option<&str>) -> bool {
        let Some(key_type) = key_type else {
            return true;
        };
        if key_type_accepted(key_type, &self.accepted) {
            return true;
        }
        let list = match &self.cfg.algorithms.pubkey {
            Some(spec) => format!("PubkeyAcceptedAlgorithms {spec}"),
            None => "ssh's default PubkeyAcceptedAlgorithms".to_string(),
        };
        self.tried.push(format!(
            "{what} not offered: {list} leaves out its type {key_type}"
        ));
        false
    }

    /// Offers `key`, `what`, through `agent`, each of the agent's answers waited for within the
    /// ConnectTimeout, 10 s at most (see `agent_reply.rs`); an agent that does not sign is said
    /// as such; one that fails at it (silent, closed, answering out of turn or unreadably) is
    /// asked nothing more, where one that refuses is asked for its other keys, as ssh asks
    /// (sshconnect2.c: "signing failed ... agent refused operation", then the next key); the
    /// attempt given up meanwhile ends the login.
    fn offer_agent(
        &mut self,
        agent: &Agent,
        key: &PublicKey,
        what: String,
    ) -> Result<Offer, SshError> {
        if self.agent_failed {
            return Ok(Offer::NotSigned);
        }
        let within = agent_within(self.cfg);
        let (result, trouble) = agent_reply::watching(self.fd, within, Request::Sign, || {
            agent.userauth(&self.cfg.user, key)
        });
        match trouble {
            None => Ok(match self.offer(result, what)? {
                true => Offer::LoggedIn,
                false => Offer::Refused,
            }),
            Some(AgentTrouble::GivenUp) => Err(self.given_up()),
            Some(trouble) => {
                if trouble != AgentTrouble::Refused {
                    self.agent_failed = true;
                }
                if let (AgentTrouble::Silent(_), Some(socket)) =
                    (trouble, self.cfg.identity_agent.as_ref())
                {
                    remember_silent(socket, trouble);
                }
                let said = format!("{what}: ssh-agent {}", trouble.words("to sign with it"));
                self.agent_said.push(said.clone());
                self.tried.push(said);
                Ok(Offer::NotSigned)
            }
        }
    }

    /// The failure of a login given up (a signal, the run ending) while the agent was waited
    /// for: the caller, which gave it up, says it as such.
    fn given_up(&self) -> SshError {
        SshError::Session {
            host: self.name.to_string(),
            reason: format!(
                "the connection attempt was given up while ssh-agent was asked for a key of \
                 user {}",
                self.cfg.user
            ),
        }
    }

    /// The outcome of offering `what`: Ok(true) logged in, Ok(false) refused (noted), Err the
    /// connection ended (no further key can be offered): the server disconnected with a
    /// message ([`SshError::AuthCutOff`]: sshd past `MaxAuthTries`), or without one (its
    /// process killed, the connection reset: a [`SshError::Session`] failure, as the key was
    /// not refused), or the attempt's deadline passed with no answer
    /// ([`BannerProblem::LoginTimeout`]).
    fn offer(&mut self, result: Result<(), ssh2::Error>, what: String) -> Result<bool, SshError> {
        if matches!(result, Ok(())) && self.session.authenticated() {
            return Ok(true);
        }
        // libssh2 reports a disconnect during authentication as a refused key
        // ("Waiting for USERAUTH response"): the disconnect message itself, an error that
        // says the socket is gone, or the socket's own end tells them apart.
        if let Some(message) = self.watch.message() {
            self.refused += 1;
            self.tried.push(format!("{what} refused"));
            return Err(SshError::AuthCutOff {
                host: self.name.to_string(),
                user: self.cfg.user.clone(),
                refused: self.refused,
                message,
                tried: self.tried.join("; "),
                identities_only: self.cfg.identities_only,
            });
        }
        if result.as_ref().is_err_and(|e| code(e) == TIMED_OUT) {
            return Err(SshError::Banner {
                host: self.name.to_string(),
                addr: self.addr.to_string(),
                problem: BannerProblem::LoginTimeout {
                    timeout: self.cfg.connect_timeout,
                    bound: self.cfg.connect_bound,
                    user: self.cfg.user.clone(),
                },
            });
        }
        let ended = idle_death::peek(self.fd);
        let gone = result
            .as_ref()
            .err()
            .is_some_and(|e| CONNECTION_GONE.contains(&code(e)));
        if ended.is_some() || gone {
            let how = match ended {
                Some(IdleDeath::Reset) => "the connection was reset",
                Some(IdleDeath::Silent) => "the connection timed out",
                _ => "the server closed the connection",
            };
            self.tried.push(format!("{what} not answered"));
            return Err(SshError::Session {
                host: self.name.to_string(),
                reason: format!(
                    "{how} during authentication for user {}, with no word from the server \
                     (not a refusal: sshd says why it ends a login; tried: {})",
                    self.cfg.user,
                    self.tried.join("; ")
                ),
            });
        }
        self.refused += 1;
        self.tried.push(format!("{what} refused"));
        Ok(false)
    }
}

/// The permission bits of private key file `path` when others may read it: owned by this
/// user with any bit of group or other set, which ssh refuses ("UNPROTECTED PRIVATE KEY
/// FILE!"); a file of another owner is left to its owner, as ssh leaves it.
fn unprotected(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    (meta.uid() == me && meta.mode() & 0o077 != 0).then_some(meta.mode() & 0o777)
}

fn code(e: &ssh2::Error) -> i32 {
    match e.code() {
        ssh2::ErrorCode::Session(c) => c,
        ssh2::ErrorCode::SFTP(c) => c,
    }
}

/// Why the agent is not used.
enum AgentOpen {
    /// It took the connection and did not list its keys: why, said as such.
    Unused(String),
    /// The attempt was given up while it was waited for.
    GivenUp,
}

/// The agent (`IdentityAgent`, else `$SSH_AUTH_SOCK`) and its keys, if it can be reached,
/// asked through `session`, whose socket is `fd`.
fn open_agent(
    session: &Session,
    cfg: &HostConfig,
    fd: RawFd,
) -> Result<Option<(Agent, Vec<PublicKey>)>, AgentOpen> {
    let Some(socket) = cfg.identity_agent.as_ref() else {
        return Ok(None);
    };
    // No agent there (nothing listens): none, as ssh has none.
    if std::os::unix::net::UnixStream::connect(socket).is_err() {
        return Ok(None);
    }
    // One that did not answer a login of this run moments ago is not waited for again (tester
    // t131: a jump host's login and its target's each waited for it).
    if let Some(trouble) = silent_lately(socket) {
        return Err(AgentOpen::Unused(format!(
            "ssh-agent at {} {} on a login of this run moments ago: not used",
            socket.display(),
            trouble.words("to list its keys or to sign")
        )));
    }
    // libssh2 reads the agent without a bound: an agent that takes the connection and never
    // answers would hold the login, and the run, without end (tester t129: past a SIGTERM;
    // ssh waits there too). Its reads are bounded, and given up with the attempt.
    let within = agent_within(cfg);
    let (opened, trouble) = agent_reply::watching(fd, within, Request::List, || {
        let mut agent = session.agent()?;
        agent.set_identity_path(socket)?;
        agent.connect()?;
        agent.list_identities()?;
        let keys = agent.identities()?;
        Ok::<_, ssh2::Error>((agent, keys))
    });
    match (opened, trouble) {
        (_, Some(AgentTrouble::GivenUp)) => Err(AgentOpen::GivenUp),
        (_, Some(trouble)) => {
            remember_silent(socket, trouble);
            Err(AgentOpen::Unused(format!(
                "ssh-agent at {} {}: not used",
                socket.display(),
                trouble.words("to list its keys")
            )))
        }
        (Ok(agent), None) => Ok(Some(agent)),
        // A list libssh2 could not read (its words: tether reads nothing from them).
        (Err(e), None) => Err(AgentOpen::Unused(format!(
            "ssh-agent at {} answered with a list of keys that cannot be read ({}): not used",
            socket.display(),
            e.message()
        ))),
    }
}

/// How long an agent that did not answer is passed over by the run's later logins.
const SILENT_REMEMBERED: Duration = Duration::from_secs(60);

/// Agents that did not answer, by socket, and when.
static SILENT: Mutex<Vec<(PathBuf, AgentTrouble, Instant)>> = Mutex::new(Vec::new());

/// Keeps `trouble` of the agent at `socket` where it is silence.
fn remember_silent(socket: &Path, trouble: AgentTrouble) {
    if !matches!(trouble, AgentTrouble::Silent(_)) {
        return;
    }
    let mut silent = SILENT.lock().unwrap_or_else(|p| p.into_inner());
    silent.retain(|(s, _, _)| s != socket);
    silent.push((socket.to_path_buf(), trouble, Instant::now()));
}

/// The silence of the agent at `socket` on a login of the last [`SILENT_REMEMBERED`].
fn silent_lately(socket: &Path) -> Option<AgentTrouble> {
    let silent = SILENT.lock().unwrap_or_else(|p| p.into_inner());
    silent
        .iter()
        .find(|(s, _, at)| s == socket && at.elapsed() < SILENT_REMEMBERED)
        .map(|(_, trouble, _)| *trouble)
}

/// The longest an ssh-agent is given to answer a request (less where the `ConnectTimeout`
/// is).
const AGENT_ANSWERS_WITHIN: Duration = Duration::from_secs(10);

/// How long the agent is given to answer one request on a login under `cfg`.
fn agent_within(cfg: &HostConfig) -> Duration {
    cfg.connect_timeout.min(AGENT_ANSWERS_WITHIN)
}

/// `comment (SHA256:...)` of an agent key.
fn describe_agent_key(key: &PublicKey) -> String {
    let fp = known_hosts::fingerprint(key.blob());
    if key.comment().is_empty() {
        fp
    } else {
        format!("{} ({fp})", key.comment())
    }
}

/// User certificate types libssh2 1.11 authenticates with (measured against sshd 9.2 with
/// `TrustedUserCAKeys`).
const CERTIFICATE_TYPES: &[&str] = &[
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
];

/// The certificates to try with the identity file `key`, as ssh pairs them: the configured
/// `CertificateFile`s that certify its public key, else `KEY-cert.pub` when it exists.
fn certificates_for(key: &Path, cfg: &HostConfig) -> Vec<PathBuf> {
    let Some(blob) = identity_public_key(key).map(|p| p.blob) else {
        return Vec::new();
    };
    if cfg.certificate_files.is_empty() {
        let mut cert = key.as_os_str().to_owned();
        cert.push("-cert.pub");
        let cert = PathBuf::from(cert);
        return if cert.exists() {
            vec![cert]
        } else {
            Vec::new()
        };
    }
    cfg.certificate_files
        .iter()
        .filter(|c| read_key_blob(c).is_some_and(|cert| certifies(&cert, &blob)))
        .cloned()
        .collect()
}

/// The key type written in a public key or certificate file.
fn certificate_type(path: &Path) -> Option<String> {
    let blob = read_key_blob(path)?;
    let kind = known_hosts::blob_key_type(&blob)?;
    kind.contains("-cert-v01@openssh.com").then_some(kind)
}

/// The key of a file in public key format (`TYPE BASE64 [COMMENT]`, as sshkey_read reads it:
/// the first line that is not empty or a comment, the blob's own type agreeing with TYPE);
/// None for anything else, a private key file included.
fn read_public_key_file(path: &Path) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let blob = STANDARD.decode(fields.next()?).ok()?;
    (known_hosts::blob_key_type(&blob)? == kind).then_some(blob)
}

fn read_key_blob(path: &Path) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(path).ok()?;
    STANDARD.decode(text.split_whitespace().nth(1)?).ok()
}

/// Whether certificate blob `cert` (type, nonce, then the key's own fields) certifies the
/// plain public key `key` (type, then the same fields).
fn certifies(cert: &[u8], key: &[u8]) -> bool {
    fn skip_string(b: &[u8]) -> Option<&[u8]> {
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        b.get(4 + len..)
    }
    let (Some(cert_fields), Some(key_fields)) =
        (skip_string(cert).and_then(skip_string), skip_string(key))
    else {
        return false;
    };
    !key_fields.is_empty() && cert_fields.starts_with(key_fields)
}

/// The public key of an identity file.
struct IdentityPublicKey {
    /// The key blob (SSH wire format).
    blob: Vec<u8>,
    /// The identity file is itself a public key file (`IdentityFile ~/.ssh/id.pub`): its
    /// private key can only be in ssh-agent.
    from_file_itself: bool,
}

/// The public key of an identity file, as ssh loads it (authfile.c `sshkey_load_public`):
/// the file itself read as a public key, else its `.pub` companion, else the private key
/// file's own header (an OpenSSH-format key keeps its public key unencrypted there).
fn identity_public_key(path: &Path) -> Option<IdentityPublicKey> {
    if let Some(blob) = read_public_key_file(path) {
        return Some(IdentityPublicKey {
            blob,
            from_file_itself: true,
        });
    }
    public_blob(path).map(|blob| IdentityPublicKey {
        blob,
        from_file_itself: false,
    })
}

/// The public key blob of a private key file: from its `.pub` companion, else from the
/// private key file itself (an OpenSSH-format key keeps its public key unencrypted in its
/// header).
fn public_blob(private: &Path) -> Option<Vec<u8>> {
    let mut pub_path = private.as_os_str().to_owned();
    pub_path.push(".pub");
    if let Some(blob) = read_key_blob(&PathBuf::from(pub_path)) {
        return Some(blob);
    }
    let raw = openssh_private_key(private)?;
    let mut r = Reader::new(raw.strip_prefix(b"openssh-key-v1\0")?);
    // cipher, kdf, kdf options, number of keys, then the first public key.
    for field in ["cipher", "kdf", "kdf options"] {
        r.string(field).ok()?;
    }
    (r.u32("keys").ok()? >= 1).then_some(())?;
    r.string("public key").ok().map(<[u8]>::to_vec)
}

/// The decoded body of an OpenSSH-format private key file (`-----BEGIN OPENSSH PRIVATE
/// KEY-----`), read leniently (lines starting `-----` left out): what the file says of itself
/// (its public key, whether it is encrypted), not a key to sign with (identity_key.rs reads
/// that as ssh does).
fn openssh_private_key(path: &Path) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(path).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(body).ok()
}

/// Whether a private key file needs a passphrase (OpenSSH or PEM format).
pub fn key_is_encrypted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if text.contains("ENCRYPTED") {
        return true;
    }
    let Some(raw) = openssh_private_key(path) else {
        return false;
    };
    let Some(rest) = raw.strip_prefix(b"openssh-key-v1\0") else {
        return false;
    };
    let Some(len) = rest
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return false;
    };
    rest.get(4..4 + len as usize) != Some(b"none".as_slice())
}

/// Asks for a key's passphrase once per run, on the terminal, serialised across host threads.
/// Err says why it cannot be asked.
fn passphrase_for(path: &Path, batch_mode: bool) -> Result<String, &'static str> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    if batch_mode {
        return Err("BatchMode forbids asking for its passphrase (add it to ssh-agent)");
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err("there is no terminal to ask for its passphrase (add it to ssh-agent)");
    }
    let cache = CACHE.get_or_init(Default::default);
    // A poisoned lock only means another prompt panicked; the cache itself is still usable.
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get(path) {
        return Ok(p.clone());
    }
    let p = rpassword::prompt_password(format!("Enter passphrase for {}: ", path.display()))
        .map_err(|_| "reading its passphrase from the terminal failed")?;
    // A passphrase is a secret: never printed, even if a command or an error held it.
    crate::secret::register(&p);
    cache.insert(path.to_path_buf(), p.clone());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_comes_from_the_pub_file_or_the_private_key_header() {
        let dir = std::env::temp_dir().join(format!("tether-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id");
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let from_pub = public_blob(&key).unwrap();
        // The .pub named itself is a public key file; the private key is not.
        let named_pub = identity_public_key(&key.with_extension("pub")).unwrap();
        assert!(named_pub.from_file_itself);
        assert_eq!(named_pub.blob, from_pub);
        let named_private = identity_public_key(&key).unwrap();
        assert!(!named_private.from_file_itself);
        std::fs::remove_file(key.with_extension("pub")).unwrap();
        // Encrypted, yet its public key is readable: the agent's copy can be matched.
        assert!(key_is_encrypted(&key));
        assert_eq!(public_blob(&key), Some(from_pub));
        assert_eq!(public_blob(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
