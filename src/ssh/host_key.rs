//! Checking the host key a server presented, as ssh checks it (sshconnect.c
//! `check_host_key`): against known_hosts under the host's name (for a host on a port other
//! than 22 without `HostKeyAlias`, also under the bare host name when `[host]:port` knows no
//! key of the presented type: ssh's second look "w/out port"), strictly unless
//! `StrictHostKeyChecking` says otherwise; a certificate against the `@cert-authority` lines
//! for that name; `@revoked` keys (and revoked CAs) refused; on a reconnect, the key the
//! first connection saw.
//!
//! A certificate that no trusted CA vouches for (wrong principal, expired, unknown CA ...) is
//! accepted only if its key is recorded in known_hosts as a plain key, as ssh does. Unlike ssh,
//! tether never records such a key under `accept-new`: a host that presents a certificate the
//! user's CA line does not accept is refused, saying why.

use std::os::fd::RawFd;
use std::time::{SystemTime, UNIX_EPOCH};

use super::algorithms;
use super::certificate::{self, is_certificate_type, Certificate, CertificateProblem};
use super::config::{HostConfig, StrictHostKeyChecking};
use super::known_hosts::{self, HostKeyCheck, KnownHosts, OtherEntries};
use super::SshError;

/// What the host's key is checked against.
pub struct HostKeyPolicy<'a> {
    /// The host as named by the user.
    pub name: &'a str,
    /// `hostname:port`, for messages.
    pub addr: &'a str,
    /// Its configuration (known_hosts name, policy, algorithms).
    pub cfg: &'a HostConfig,
    /// The known_hosts entries.
    pub known: &'a KnownHosts,
    /// The host certificate types libssh2 negotiates (for messages).
    pub certificate_types: &'a [&'a str],
}

impl HostKeyPolicy<'_> {
    /// Checks `key` (the server's host key blob). `pinned`, on a reconnect, is the key the
    /// first connection saw: the same key must come back (a renewed certificate of the same
    /// key is fine, and is checked again). `fd` is the connection's socket
    /// (`NoHostAuthenticationForLocalhost`); `warn` gets what the user should know (a key
    /// recorded under accept-new, a certificate accepted through its plain key).
    pub fn verify(
        &self,
        key: &[u8],
        pinned: Option<&[u8]>,
        fd: RawFd,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), SshError> {
        let (name, cfg) = (self.name, self.cfg);
        let lookup = cfg.known_hosts_name();
        let is_cert = known_hosts::blob_key_type(key).is_some_and(|t| is_certificate_type(&t));
        let plain = certificate::plain_key(key);
        let key_type = known_hosts::blob_key_type(key).unwrap_or_else(|| "unknown".into());
        let presented = known_hosts::fingerprint(&plain);
        if let Some(bits) = known_hosts::rsa_bits(&plain).filter(|b| *b < cfg.required_rsa_size) {
            return Err(SshError::Handshake {
                host: name.to_string(),
                addr: self.addr.to_string(),
                reason: format!(
                    "the server's RSA host key has {bits} bits, fewer than RequiredRSASize {}",
                    cfg.required_rsa_size
                ),
            });
        }
        if let Some(pinned) = pinned {
            let pinned_plain = certificate::plain_key(pinned);
            if pinned_plain != plain {
                return Err(SshError::HostKeyChanged {
                    host: name.to_string(),
                    name: lookup,
                    key_type,
                    presented,
                    recorded: format!(
                        "{} (from this run's first connection)",
                        known_hosts::fingerprint(&pinned_plain)
                    ),
                });
            }
        }
        // ssh.c: no host key check for a loopback address reached directly, if asked.
        if cfg.no_host_authentication_for_localhost
            && cfg.host_key_alias.is_none()
            && peer_is_loopback(fd)
        {
            return Ok(());
        }
        if is_cert {
            // Checked again on a reconnect: it may have expired or been revoked since.
            return self.verify_certificate(key, &lookup, warn);
        }
        match self.known.check(&lookup, key) {
            HostKeyCheck::Match => Ok(()),
            HostKeyCheck::Revoked(location) => Err(SshError::HostKeyRevoked {
                host: name.to_string(),
                authority: false,
                name: lookup,
                location,
            }),
            HostKeyCheck::Mismatch(recorded) => Err(SshError::HostKeyChanged {
                host: name.to_string(),
                name: lookup,
                key_type,
                presented,
                recorded: describe(&recorded),
            }),
            // A reconnect (the key is the one seen first: `pinned`) reads known_hosts as it is
            // now all the same: a key it revoked since, or one it now records another key in
            // place of, is refused above, as ssh refuses it (stop 49 tester t70: both were
            // accepted); a key it no longer names at all stays the run's own.
            HostKeyCheck::NotFound if pinned.is_some() => Ok(()),
            HostKeyCheck::NotFound => {
                // ssh's second look, without the port. A key revoked there is refused: ssh
                // warns, then records and accepts it under accept-new.
                if let Some(portless) = cfg.known_hosts_portless_name() {
                    match self.known.check(portless, key) {
                        HostKeyCheck::Match => return Ok(()),
                        HostKeyCheck::Revoked(location) => {
                            return Err(SshError::HostKeyRevoked {
                                host: name.to_string(),
                                authority: false,
                                name: portless.to_string(),
                                location,
                            })
                        }
                        HostKeyCheck::NotFound | HostKeyCheck::Mismatch(_) => {}
                    }
                }
                let strict = cfg.strict_host_key_checking == StrictHostKeyChecking::Yes;
                match cfg.user_known_hosts.first() {
                    Some(file) if !strict => {
                        self.accept_new(&lookup, key, file, warn);
                        Ok(())
                    }
                    // Refused under `yes`, and where no user file could record it (`none`).
                    record_in => {
                        let other = OtherEntries {
                            authorities: locations(&self.known.authorities(&lookup)),
                            certificate_types: self.certificate_types.join(", "),
                        };
                        Err(SshError::UnknownHostKey {
                            host: name.to_string(),
                            known_hosts: record_in.cloned(),
                            other: Box::new(other),
                            name: lookup,
                            key: format!("{key_type} {presented}"),
                        })
                    }
                }
            }
        }
    }

    /// Whether known_hosts records `key` itself under the portless name. Only an exact match
    /// counts: a different key there is not "changed" but unknown (ssh's second look is
    /// quiet and read-only), so it is refused or recorded under `[host]:port` as any new key.
    fn found_without_port(&self, key: &[u8]) -> bool {
        self.cfg
            .known_hosts_portless_name()
            .is_some_and(|portless| self.known.check(portless, key) == HostKeyCheck::Match)
    }

    /// `StrictHostKeyChecking accept-new` (or `no`): records `key` in `file`, the first
    /// `UserKnownHostsFile`, and says so; where it cannot (no such directory, not writable),
    /// says that instead and accepts the key all the same, as ssh does.
    fn accept_new(
        &self,
        lookup: &str,
        key: &[u8],
        file: &std::path::Path,
        warn: &mut dyn FnMut(String),
    ) {
        let name = self.name;
        let key_type = known_hosts::blob_key_type(key).unwrap_or_else(|| "unknown".into());
        let presented = known_hosts::fingerprint(key);
        let dot_ssh = crate::ssh::config::Local::current().home.join(".ssh");
        match known_hosts::append(file, lookup, key, self.cfg.hash_known_hosts, &dot_ssh) {
            Ok(()) => warn(format!(
                "{name}: recorded new host key for {lookup} ({key_type} {presented}) in {}",
                file.display()
            )),
            // ssh says it could not add the host, and connects (sshconnect.c).
            Err(e) => warn(format!(
                "{name}: could not record the new host key in {} ({e}); connecting with \
                 {lookup}'s key {key_type} {presented} recorded nowhere, as ssh does",
                file.display()
            )),
        }
    }

    /// A host certificate: trusted through a `@cert-authority` line for `lookup` that names
    /// its CA, if it passes ssh's checks; else only if its key is recorded as a plain key.
    fn verify_certificate(
        &self,
        key: &[u8],
        lookup: &str,
        warn: &mut dyn FnMut(String),
    ) -> Result<(), SshError> {
        let name = self.name;
        let authorities = self.known.authorities(lookup);
        let refused =
            |certificate: String, problem, authorities: String| SshError::HostCertificateRefused {
                host: name.to_string(),
                name: lookup.to_string(),
                certificate,
                problem: Box::new(problem),
                authorities,
            };
        let cert = Certificate::parse(key).map_err(|problem| {
            let kind = known_hosts::blob_key_type(key).unwrap_or_default();
            refused(
                format!("{kind} {}", known_hosts::fingerprint(key)),
                problem,
                locations(&authorities),
            )
        })?;
        let revoked = [(&cert.plain_key, false), (&cert.signature_key, true)]
            .into_iter()
            .find_map(|(k, authority)| self.known.revoked(lookup, k).map(|at| (at, authority)));
        if let Some((location, authority)) = revoked {
            return Err(SshError::HostKeyRevoked {
                host: name.to_string(),
                authority,
                name: lookup.to_string(),
                location,
            });
        }
        // A CA line for `[host]:port` that names the CA, else one for the portless name (ssh's
        // second look, which certificates get too).
        let portless_authorities = match self.cfg.known_hosts_portless_name() {
            Some(portless) if !authorities.iter().any(|a| a.key == cert.signature_key) => {
                self.known.authorities(portless)
            }
            _ => Vec::new(),
        };
        let trusted = authorities
            .iter()
            .chain(&portless_authorities)
            .find(|a| a.key == cert.signature_key);
        let problem = match trusted {
            Some(_) => {
                let principal = self
                    .cfg
                    .host_key_alias
                    .clone()
                    .unwrap_or_else(|| self.cfg.hostname.clone());
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let allowed = algorithms::ca_signature_algorithms(self.cfg);
                match cert.check_host(&principal, now, &allowed) {
                    Ok(()) => return Ok(()),
                    Err(problem) => problem,
                }
            }
            None => CertificateProblem::UnknownAuthority(format!(
                "its CA key is {} {}",
                known_hosts::blob_key_type(&cert.signature_key).unwrap_or_default(),
                known_hosts::fingerprint(&cert.signature_key)
            )),
        };
        let checked_against = match trusted {
            Some(a) => a.location.clone(),
            None => locations(&authorities),
        };
        // As ssh does: the certified key itself may be known as a plain key.
        match self.known.check(lookup, &cert.plain_key) {
            HostKeyCheck::NotFound if self.found_without_port(&cert.plain_key) => {
                warn(format!(
                    "{name}: the host certificate for {lookup} was refused ({problem}); \
                     connected because known_hosts records its key"
                ));
                Ok(())
            }
            HostKeyCheck::Match => {
                warn(format!(
                    "{name}: the host certificate for {lookup} was refused ({problem}); \
                     connected because known_hosts records its key"
                ));
                Ok(())
            }
            HostKeyCheck::Revoked(location) => Err(SshError::HostKeyRevoked {
                host: name.to_string(),
                authority: false,
                name: lookup.to_string(),
                location,
            }),
            HostKeyCheck::Mismatch(recorded) => Err(SshError::HostKeyChanged {
                host: name.to_string(),
                name: lookup.to_string(),
                key_type: cert.cert_type.clone(),
                presented: known_hosts::fingerprint(&cert.plain_key),
                recorded: describe(&recorded),
            }),
            HostKeyCheck::NotFound => Err(refused(cert.describe(), problem, checked_against)),
        }
    }
}

/// `type fingerprint (file:line)` of each recorded key.
fn describe(recorded: &[known_hosts::RecordedKey]) -> String {
    recorded
        .iter()
        .map(|r| format!("{} {} ({})", r.key_type, r.fingerprint, r.location))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `file:line` of each `@cert-authority` line, comma-separated.
fn locations(authorities: &[known_hosts::Authority]) -> String {
    authorities
        .iter()
        .map(|a| a.location.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the socket is a TCP connection to a loopback address (not a socket pair of a
/// jump host or proxy command).
fn peer_is_loopback(fd: RawFd) -> bool {
    // SAFETY: a zeroed sockaddr_storage is valid; getpeername writes at most `len` bytes.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: fd is the session's open socket; addr and len are valid out-parameters.
    let rc = unsafe { libc::getpeername(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) };
    if rc != 0 {
        return false;
    }
    match addr.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let sin = unsafe { &*(&addr as *const _ as *const libc::sockaddr_in) };
            std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).is_loopback()
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let sin6 = unsafe { &*(&addr as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        _ => false,
    }
}
