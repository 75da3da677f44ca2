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

pub mod addrinfo;
mod algorithm_names;
mod arguments;
mod canonical;
mod dump;
mod environment;
mod error;
mod expand;
mod file;
mod forward;
mod glob;
mod host;
mod jump_spec;
mod keyword;
mod lexer;
mod local;
mod negotiable;
mod resolve;
mod state;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use crate::ssh_syntax::pattern::{match_pattern, pattern_list_match, wildcard_match};
pub use environment::{Environment, Requests};
pub use error::{ConfigError, HostError, Location};
pub use host::{
    AddressFamily, Algorithms, ConnectBound, HostConfig, Request, Route, StrictHostKeyChecking,
    DEFAULT_CONNECT_TIMEOUT,
};
pub use jump_spec::parse as parse_jump_spec;
pub use local::Local;
pub use negotiable::{
    assemble, assemble_from, key_type_accepted, pubkey_accepted, rsa_signatures, supported,
    unusable, unusable_keyword, PUBKEY_DEFAULT,
};

use state::Inner;

use crate::host::HostTarget;

/// Where OpenSSH keeps its system-wide client config; the CLI passes it to [`SshConfig::load`].
pub const SYSTEM_CONFIG: &str = "/etc/ssh/ssh_config";

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
        // Absolute, for commands shown to a person who may be elsewhere (`ssh -F FILE`).
        let file = file.map(|f| {
            if f.as_os_str().eq_ignore_ascii_case("none") {
                PathBuf::from("none")
            } else {
                std::path::absolute(f).unwrap_or_else(|_| f.to_path_buf())
            }
        });
        Ok(Self::from_roots(roots, anchors, local, file))
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
        Ok(Self::from_roots(vec![root], anchors, local, None))
    }

    fn from_roots(
        roots: Vec<Arc<file::File>>,
        anchors: file::Anchors,
        local: Local,
        file: Option<PathBuf>,
    ) -> Self {
        SshConfig {
            inner: Arc::new(Inner {
                roots,
                anchors,
                local,
                file,
                resolved: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The local files ssh reads for this config, each with what it is, for refusing a
    /// download that would write over one: the config files with their Includes (without
    /// `-F`, `~/.ssh/config` even where it does not exist yet, as ssh would read it there),
    /// and for every host resolved so far (jump hosts too) the files its resolution read and
    /// its `IdentityFile`s (with their `.pub`), `CertificateFile`s, `UserKnownHostsFile`s and
    /// `GlobalKnownHostsFile`s, as ssh_config(5) names them.
    pub fn files_in_use(&self) -> Vec<(PathBuf, String)> {
        fn walk(file: &file::File, what: &str, out: &mut Vec<(PathBuf, String)>) {
            out.push((file.path.to_path_buf(), what.into()));
            for line in &file.lines {
                if let file::LineKind::Include(includes) = &line.kind {
                    for f in includes.iter().filter_map(|i| i.files.as_ref()).flatten() {
                        walk(
                            f,
                            "a file the ssh config of this run includes (Include)",
                            out,
                        );
                    }
                }
            }
        }
        let mut out = Vec::new();
        if self.inner.file.is_none() {
            let user = self.inner.local.home.join(".ssh").join("config");
            out.push((user, "the ssh config of this run".into()));
        }
        for root in &self.inner.roots {
            walk(root, "the ssh config of this run", &mut out);
        }
        let resolved = self
            .inner
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // By name, so a file two hosts share is named by the same host on every run.
        let mut hosts: Vec<_> = resolved.iter().collect();
        hosts.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        for (req, host) in hosts {
            let Ok(host) = host else { continue };
            let name = &req.name;
            let of = |keyword: &str| format!("{name}'s {keyword} (ssh_config)");
            for f in &host.config_files {
                out.push((f.clone(), format!("an ssh config file read for {name}")));
            }
            for f in &host.identity_files {
                let mut public = f.clone().into_os_string();
                public.push(".pub");
                out.push((f.clone(), of("IdentityFile")));
                out.push((public.into(), format!("the .pub of {name}'s IdentityFile")));
            }
            let lists = [
                (&host.certificate_files, "CertificateFile"),
                (&host.user_known_hosts, "UserKnownHostsFile"),
                (&host.global_known_hosts, "GlobalKnownHostsFile"),
            ];
            for (files, keyword) in lists {
                out.extend(files.iter().map(|f| (f.clone(), of(keyword))));
            }
        }
        out
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
            hop: false,
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

#[cfg(test)]
mod tests;
