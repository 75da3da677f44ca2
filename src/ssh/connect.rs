//! Opening one SSH session: TCP (nodelay, keepalive, timeout), handshake, host key check,
//! authentication. The result is a non-blocking session driven by its owner thread.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ssh2::Session;

use super::algorithms;
use super::config::{AddressFamily, HostConfig};
use super::host_key::HostKeyPolicy;
use super::known_hosts::{self, KnownHosts};
use super::SshError;

/// libssh2's "would block" code in non-blocking mode.
const EAGAIN: i32 = -37;

/// An authenticated, non-blocking session and the socket under it.
pub struct Connection {
    /// The session; only its owner thread may touch it.
    pub session: Session,
    fd: RawFd,
    /// The server's host key blob, pinned for reconnects.
    pub host_key: Vec<u8>,
    /// How long TCP connect + handshake + auth took.
    pub setup_time: Duration,
    /// What must live exactly as long as the session (a proxy command's process, which is
    /// stopped and reaped when the connection is dropped).
    guard: Option<Box<dyn Send>>,
}

/// A non-blocking libssh2 operation that did not finish.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed first.
    Timeout,
    /// libssh2 (or the socket) failed.
    Failed(String),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Timeout => f.write_str("timed out"),
            WaitError::Failed(m) => f.write_str(m),
        }
    }
}

/// Whether an ssh2 error only means "try again when the socket is ready".
pub fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(EAGAIN)
}

/// Waits until `fds` are ready (or `timeout` passes); returns which were ready.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<()> {
    // Rounded up: a timeout that truncates to 0 ms would make a deadline loop spin.
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for the whole call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// The `poll()` events for the directions libssh2 says it is blocked on.
pub fn poll_events(dirs: ssh2::BlockDirections) -> libc::c_short {
    let mut events = 0;
    if matches!(
        dirs,
        ssh2::BlockDirections::Inbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLIN;
    }
    if matches!(
        dirs,
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLOUT;
    }
    events
}

impl Connection {
    /// This connection, keeping `guard` alive until it is dropped.
    pub fn owning(mut self, guard: Box<dyn Send>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The socket, for `poll()` by the owner thread.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Arms the session for a heartbeat every `interval`: libssh2's keepalive timer for
    /// keepalives sent during commands, and `TCP_USER_TIMEOUT` so that a server that
    /// acknowledges none of them for `count_max` intervals (`ServerAliveCountMax`, 3 by
    /// default), or at least `heartbeat_timeout`, fails the connection instead of hanging it
    /// for the ~15 minutes of TCP retransmissions (a dropped network, a host powered off).
    /// Best effort (a proxy command's or jump host's socket pair has no TCP options).
    pub fn arm_heartbeat(&self, interval: Duration, count_max: u32, heartbeat_timeout: Duration) {
        self.session
            .set_keepalive(false, interval.as_secs().clamp(1, u32::MAX as u64) as u32);
        let d = (interval * count_max.max(1)).max(heartbeat_timeout);
        let ms = d.as_millis().clamp(1, libc::c_uint::MAX as u128) as libc::c_uint;
        // SAFETY: `fd` is the session's open socket; the option value is a c_uint.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::IPPROTO_TCP,
                libc::TCP_USER_TIMEOUT,
                &ms as *const libc::c_uint as *const libc::c_void,
                std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
            );
        }
    }

    /// Waits (at most until `until`) for the socket to become ready in the directions libssh2
    /// is blocked on.
    pub fn wait_socket(&self, until: Instant) -> Result<(), WaitError> {
        let mut events = poll_events(self.session.block_directions());
        if events == 0 {
            events = libc::POLLIN;
        }
        let now = Instant::now();
        if now >= until {
            return Err(WaitError::Timeout);
        }
        // Short slices keep the caller's keepalive and cancel checks responsive.
        let slice = (until - now).min(Duration::from_millis(500));
        quick_ack(self.fd);
        let mut fds = [libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        }];
        poll_fds(&mut fds, slice).map_err(|e| WaitError::Failed(e.to_string()))
    }

    /// Runs a non-blocking libssh2 operation to completion or until `until`.
    pub fn retry<T>(
        &self,
        until: Instant,
        mut op: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, WaitError> {
        loop {
            match op() {
                Ok(v) => return Ok(v),
                Err(e) if would_block(&e) => self.wait_socket(until)?,
                Err(e) => return Err(WaitError::Failed(e.to_string())),
            }
        }
    }
}

/// Connects, checks the host key and authenticates.
///
/// `pinned_key`, when given (a reconnect), must equal the key the server presents: a host
/// never silently changes identity in the middle of a run. `warn` receives messages the user
/// should see (skipped known_hosts lines, recorded keys).
pub fn connect(
    name: &str,
    cfg: &HostConfig,
    pinned_key: Option<&[u8]>,
    warn: &mut dyn FnMut(String),
) -> Result<Connection, SshError> {
    let started = Instant::now();
    let addr_text = host_port(&cfg.hostname, cfg.port);
    // ConnectionAttempts: one second apart, as ssh tries them.
    let mut attempt = 1;
    let tcp = loop {
        let deadline = Instant::now() + cfg.connect_timeout;
        match tcp_connect(name, cfg, &addr_text, deadline) {
            Ok(tcp) => break tcp,
            Err(e @ SshError::Resolve { .. }) => return Err(e),
            Err(e) if attempt >= cfg.connection_attempts => return Err(e),
            Err(_) => {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    connect_over(name, cfg, tcp, started, pinned_key, warn)
}

/// `host:port` for messages, an IPv6 address in brackets (`[::1]:22`).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The SSH part of [`connect`] over an already open byte stream: a TCP connection, or one end
/// of a socket pair whose other end a jump host's worker pumps through a `direct-tcpip`
/// channel (ProxyJump) or a proxy command reads and writes (ProxyCommand). The host key is
/// checked against known_hosts under the host's own name (`HostKeyAlias`, else `HostName` and
/// port, as OpenSSH does behind a jump host or proxy), or against `pinned_key`. `started` is
/// when connecting began: `ConnectTimeout` counts from there.
pub fn connect_over<S: AsRawFd + 'static>(
    name: &str,
    cfg: &HostConfig,
    stream: S,
    started: Instant,
    pinned_key: Option<&[u8]>,
    warn: &mut dyn FnMut(String),
) -> Result<Connection, SshError> {
    let deadline = started + cfg.connect_timeout;
    let addr_text = host_port(&cfg.hostname, cfg.port);
    let tcp = stream;
    let fd = tcp.as_raw_fd();

    let handshake_err = |reason: String| SshError::Handshake {
        host: name.to_string(),
        addr: addr_text.clone(),
        reason,
    };
    let mut session = Session::new().map_err(|e| handshake_err(e.to_string()))?;
    let mut files = cfg.user_known_hosts.clone();
    files.extend(cfg.global_known_hosts.iter().cloned());
    let known = KnownHosts::load(&files);
    for w in &known.warnings {
        warn(w.clone());
    }
    // The key types known_hosts records for the host come first, as ssh orders them: a host
    // recorded with its RSA key is verified with that key even if it prefers ed25519; a host
    // a @cert-authority line names is asked for its certificate.
    let lookup = cfg.known_hosts_name();
    let recorded = known.recorded_types(&lookup);
    let pinned_type = pinned_key.and_then(known_hosts::blob_key_type);
    let known_types = algorithms::KnownTypes {
        recorded: &recorded,
        authority: !known.authorities(&lookup).is_empty(),
        pinned: pinned_type.as_deref(),
    };
    algorithms::apply(&session, cfg, known_types).map_err(&handshake_err)?;
    session.set_compress(cfg.compression);
    session.set_tcp_stream(tcp);
    let remaining = deadline.saturating_duration_since(Instant::now());
    session.set_timeout(remaining.as_millis().max(1) as u32);
    if let Err(e) = session.handshake() {
        if Instant::now() >= deadline || e.code() == ssh2::ErrorCode::Session(-9) {
            return Err(SshError::ConnectTimeout {
                host: name.to_string(),
                addr: addr_text,
                timeout: cfg.connect_timeout,
            });
        }
        return Err(handshake_err(e.to_string()));
    }

    let host_key = session
        .host_key()
        .map(|(k, _)| k.to_vec())
        .ok_or_else(|| handshake_err("server sent no host key".into()))?;
    let policy = HostKeyPolicy {
        name,
        addr: &addr_text,
        cfg,
        known: &known,
        certificate_types: &algorithms::certificate_algorithms(&session),
    };
    policy.verify(&host_key, pinned_key, fd, warn)?;

    let remaining = deadline.saturating_duration_since(Instant::now());
    session.set_timeout(remaining.as_millis().max(1) as u32);
    authenticate(name, cfg, &session)?;

    session.set_timeout(0);
    session.set_blocking(false);
    Ok(Connection {
        session,
        fd,
        host_key,
        setup_time: started.elapsed(),
        guard: None,
    })
}

fn tcp_connect(
    name: &str,
    cfg: &HostConfig,
    addr_text: &str,
    deadline: Instant,
) -> Result<TcpStream, SshError> {
    let addrs: Vec<SocketAddr> = (cfg.hostname.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| SshError::Resolve {
            host: name.to_string(),
            hostname: cfg.hostname.clone(),
            reason: e.to_string(),
        })?
        .filter(|a| match cfg.address_family {
            AddressFamily::Any => true,
            AddressFamily::Inet => a.is_ipv4(),
            AddressFamily::Inet6 => a.is_ipv6(),
        })
        .collect();
    if addrs.is_empty() {
        return Err(SshError::Resolve {
            host: name.to_string(),
            hostname: cfg.hostname.clone(),
            reason: format!(
                "it has no {} address (AddressFamily)",
                match cfg.address_family {
                    AddressFamily::Inet6 => "IPv6",
                    _ => "IPv4",
                }
            ),
        });
    }
    let mut last = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(tcp) => {
                tcp.set_nodelay(true).ok();
                if cfg.tcp_keepalive {
                    set_tcp_keepalive(&tcp);
                }
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) if e.kind() != std::io::ErrorKind::TimedOut => Err(SshError::Connect {
            host: name.to_string(),
            addr: addr_text.to_string(),
            reason: e.to_string(),
        }),
        _ => Err(SshError::ConnectTimeout {
            host: name.to_string(),
            addr: addr_text.to_string(),
            timeout: cfg.connect_timeout,
        }),
    }
}

/// Acknowledges the server's next segment at once. sshd leaves Nagle on for non-interactive
/// sessions, so each small packet it sends waits for our ACK of the previous one; Linux's
/// delayed ACK would add about 40 ms to every command. The flag is reset by the kernel, hence
/// set again before every wait.
pub(crate) fn quick_ack(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is the session's open socket; the option value is a c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn set_tcp_keepalive(tcp: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: the fd is open for the lifetime of `tcp`; the option value is a c_int as
    // SO_KEEPALIVE expects.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn authenticate(name: &str, cfg: &HostConfig, session: &Session) -> Result<(), SshError> {
    let mut tried: Vec<String> = Vec::new();
    let allowed_blobs: Vec<Vec<u8>> = cfg
        .identity_files
        .iter()
        .filter_map(|p| public_blob(p))
        .collect();

    if let Some(socket) = &cfg.identity_agent {
        if let Ok(mut agent) = session.agent() {
            let connected = agent.set_identity_path(socket).is_ok() && agent.connect().is_ok();
            if connected && agent.list_identities().is_ok() {
                let identities = agent.identities().unwrap_or_default();
                let mut offered = 0;
                for identity in &identities {
                    if cfg.identities_only && !allowed_blobs.iter().any(|b| b == identity.blob()) {
                        continue;
                    }
                    offered += 1;
                    if agent.userauth(&cfg.user, identity).is_ok() && session.authenticated() {
                        return Ok(());
                    }
                }
                if offered > 0 {
                    tried.push(format!("{offered} agent key(s) refused"));
                }
                agent.disconnect().ok();
            }
        }
    }

    let mut certificates_used: Vec<PathBuf> = Vec::new();
    for path in &cfg.identity_files {
        if !path.exists() {
            if cfg.identity_files_configured {
                tried.push(format!("{} does not exist", path.display()));
            }
            continue;
        }
        let passphrase = match key_is_encrypted(path) {
            false => None,
            true => match passphrase_for(path, cfg.batch_mode) {
                Ok(p) => Some(p),
                Err(why) => {
                    tried.push(format!("{} is encrypted and {why}", path.display()));
                    continue;
                }
            },
        };
        for cert in certificates_for(path, cfg) {
            certificates_used.push(cert.clone());
            match certificate_type(&cert) {
                Some(t) if !CERTIFICATE_TYPES.contains(&t.as_str()) => {
                    tried.push(format!(
                        "certificate {}: key type {t} is not supported by libssh2",
                        cert.display()
                    ));
                    continue;
                }
                None => {
                    tried.push(format!("{} is not a certificate", cert.display()));
                    continue;
                }
                Some(_) => {}
            }
            match session.userauth_pubkey_file(&cfg.user, Some(&cert), path, passphrase.as_deref())
            {
                Ok(()) if session.authenticated() => return Ok(()),
                _ => tried.push(format!(
                    "certificate {} with key {} refused",
                    cert.display(),
                    path.display()
                )),
            }
        }
        match session.userauth_pubkey_file(&cfg.user, None, path, passphrase.as_deref()) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{} refused", path.display())),
            Err(e) if passphrase.is_some() && e.message().contains("private key") => {
                tried.push(format!("{}: wrong passphrase ({e})", path.display()))
            }
            Err(_) => tried.push(format!("key {} refused", path.display())),
        }
    }
    for cert in &cfg.certificate_files {
        if !certificates_used.contains(cert) {
            tried.push(format!(
                "certificate {} matches none of the identity files (tether pairs a certificate \
                 with a private key file only)",
                cert.display()
            ));
        }
    }
    if tried.is_empty() {
        tried.push("no ssh-agent identities and no identity files".into());
    }
    Err(SshError::Auth {
        host: name.to_string(),
        user: cfg.user.clone(),
        tried: tried.join("; "),
    })
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
    let Some(blob) = public_blob(key) else {
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

/// The public key blob of an identity file, from its `.pub` companion.
fn public_blob(private: &Path) -> Option<Vec<u8>> {
    let mut pub_path = private.as_os_str().to_owned();
    pub_path.push(".pub");
    let text = std::fs::read_to_string(PathBuf::from(pub_path)).ok()?;
    STANDARD.decode(text.split_whitespace().nth(1)?).ok()
}

/// Whether a private key file needs a passphrase (OpenSSH or PEM format).
pub fn key_is_encrypted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if text.contains("ENCRYPTED") {
        return true;
    }
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let Ok(raw) = STANDARD.decode(body) else {
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

    /// Regression: a timeout under 1 ms was truncated to 0, so `poll()` returned at once and a
    /// loop waiting for a deadline spun instead of sleeping.
    #[test]
    fn poll_waits_for_a_sub_millisecond_timeout() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fds = [libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let started = Instant::now();
        poll_fds(&mut fds, Duration::from_micros(700)).unwrap();
        assert!(started.elapsed() >= Duration::from_micros(700));
        assert_eq!(fds[0].revents, 0);
    }
}
