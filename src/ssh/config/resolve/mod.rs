//! Resolving one host, as ssh.c `main` and readconf.c do it: the config files are read from
//! the top for this host, `Host` and `Match` lines switching what applies as they come, the
//! first value obtained for a keyword kept (IdentityFile and CertificateFile accumulate), with
//! what the command line said (`user@`, `:port`, `-J`) obtained before anything. Then HostName
//! (`%h`) becomes the host, it is lowercased and canonicalized, and when a `Match final` or
//! canonicalization asks for it, the files are read once more for the final host (`Host`
//! lines then match the final host name, `Match canonical`/`final` are true). Last, the
//! defaults are filled in and every keyword gets the expansions ssh gives it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use sha1::{Digest as _, Sha1};

mod build;

use super::canonical::{self, Mode};
use super::dump;
use super::environment::Environment;
use super::error::{ConfigError, HostError, Location};
use super::expand::{self, Tokens};
use super::file::{self, Criterion, File, LineKind, Reader, Test};
use super::forward;
use super::host::{
    AddressFamily, Algorithms, HostConfig, Request, Route, StrictHostKeyChecking,
    DEFAULT_CONNECT_TIMEOUT,
};
use super::jump_spec;
use super::keyword::{Keyword, Treatment};
use super::state::Inner;
use super::value::Value;
use crate::host::HostTarget;
use crate::ssh_syntax::pattern::{
    cidr_list_contains, match_hostname, match_pattern, match_pattern_list, ListMatch,
};

/// A value and where it was obtained (`None`: the command line).
#[derive(Debug, Clone)]
struct Obtained {
    value: Value,
    at: Option<Location>,
}

/// readconf.c's `Options` as far as tether needs them.
#[derive(Debug, Default)]
struct Options {
    /// First obtained value of each single-valued keyword, by its name.
    first: HashMap<&'static str, Obtained>,
    identity_files: Vec<Obtained>,
    certificate_files: Vec<Obtained>,
    /// `ProxyCommand` (a ProxyJump sets it to `none`).
    proxy_command: Option<Obtained>,
    /// `ProxyJump`, `none` included.
    jump: Option<Obtained>,
    forward_agent: Option<Obtained>,
    forward_agent_path: Option<Obtained>,
    /// `LocalForward`, `RemoteForward`, `DynamicForward` lines, all of them (they add up).
    forwards: Vec<(&'static str, Obtained)>,
    /// `SendEnv` and `SetEnv` (see [`Resolution::environment`]).
    env: Environment,
}

impl Options {
    fn text(&self, name: &str) -> Option<String> {
        self.first.get(name).map(|o| o.value.text())
    }

    fn flag(&self, name: &str) -> Option<bool> {
        match self.first.get(name).map(|o| &o.value) {
            Some(Value::Flag(b)) => Some(*b),
            _ => None,
        }
    }

    fn int(&self, name: &str) -> Option<u64> {
        match self.first.get(name).map(|o| &o.value) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    fn time(&self, name: &str) -> Option<u64> {
        match self.first.get(name).map(|o| &o.value) {
            Some(Value::Time(t)) => *t,
            _ => None,
        }
    }

    fn at(&self, name: &str) -> Option<Location> {
        self.first.get(name).and_then(|o| o.at.clone())
    }

    /// The nearest jump host's name (`%j`), empty without ProxyJump.
    fn jump_host(&self) -> String {
        match &self.jump {
            Some(o) if !o.value.text().eq_ignore_ascii_case("none") => {
                jump_spec::parse(&o.value.text())
                    .ok()
                    .and_then(|hops| hops.last().map(|h| h.host.clone()))
                    .unwrap_or_default()
            }
            _ => String::new(),
        }
    }
}

/// A ProxyJump's tokens as ssh expands them: ssh.c builds `ssh [-l user] [-p port] [-J
/// extra] host -W ...` from it, expanded as a ProxyCommand, so the last hop's user and host
/// are expanded after they are read (a URI's `%XX` decoded first) and the hops before it as
/// written (stop 44 tester t55: `-J 'h%6Fst1'` was tried as a host name, where ssh refuses
/// the unknown `%6`). A list that does not parse is left to the route, which names why.
fn expand_jump(spec: &str, tokens: &Tokens) -> Result<String, String> {
    let Ok((extra, last)) = jump_spec::split_last(spec) else {
        return Ok(spec.to_string());
    };
    let last = jump_spec::Hop {
        user: last
            .user
            .map(|user| expand::percent(&user, tokens))
            .transpose()?,
        host: expand::percent(&last.host, tokens)?,
        port: last.port,
    }
    .written();
    Ok(match extra {
        Some(extra) => format!("{},{last}", expand::percent(extra, tokens)?),
        None => last,
    })
}

/// One resolution in progress./// One resolution in progress.
pub struct Resolution<'a> {
    inner: &'a Inner,
    req: &'a Request,
    opts: Options,
    /// What `Host` lines match in this pass.
    host: String,
    final_pass: bool,
    want_final: bool,
    /// Files being read (for loops through Includes read per host).
    stack: Vec<PathBuf>,
    /// Every file read, once each, in order ([`HostConfig::config_files`]).
    read: Vec<PathBuf>,
}

impl<'a> Resolution<'a> {
    /// Resolves `req` against the config.
    pub fn run(inner: &'a Inner, req: &'a Request) -> Result<HostConfig, HostError> {
        let mut r = Resolution {
            inner,
            req,
            opts: Options::default(),
            host: req.alias.clone(),
            final_pass: false,
            want_final: false,
            stack: Vec::new(),
            read: Vec::new(),
        };
        r.command_line();
        r.pass()?;
        r.finish()
    }

    fn error(&self, at: Option<Location>, problem: impl Into<String>) -> HostError {
        HostError {
            host: self.req.name.clone(),
            location: at,
            problem: problem.into(),
            unresolved: false,
        }
    }

    /// `user@host`, `host:port` and `-J`, as ssh's command line: obtained before any file.
    fn command_line(&mut self) {
        if let Some(user) = &self.req.user {
            self.opts.first.insert(
                "User",
                Obtained {
                    value: Value::Str(user.clone()),
                    at: None,
                },
            );
        }
        if let Some(port) = self.req.port {
            self.opts.first.insert(
                "Port",
                Obtained {
                    value: Value::Port(port),
                    at: None,
                },
            );
        }
        // A malformed list is refused for the whole run when the route is built.
        if let Some(spec) = self.req.proxy_jump.clone() {
            self.proxy_jump(Value::Command(spec), None);
        }
    }

    fn pass(&mut self) -> Result<(), HostError> {
        let inner = self.inner;
        for root in &inner.roots {
            let mut active = true;
            self.read(root, false, &mut active)?;
        }
        Ok(())
    }

    fn read(&mut self, file: &File, never_match: bool, active: &mut bool) -> Result<(), HostError> {
        self.stack.push(file.path.to_path_buf());
        if !self.read.iter().any(|p| **p == *file.path) {
            self.read.push(file.path.to_path_buf());
        }
        let result = self.read_lines(file, never_match, active);
        self.stack.pop();
        result
    }

    fn read_lines(
        &mut self,
        file: &File,
        never_match: bool,
        active: &mut bool,
    ) -> Result<(), HostError> {
        for line in &file.lines {
            // Made only for a line that is used: every host passes every line of the config.
            let at = || Location {
                file: file.path.clone(),
                line: line.number,
            };
            match &line.kind {
                LineKind::Host(patterns) => {
                    *active = false;
                    if never_match {
                        continue;
                    }
                    for p in patterns {
                        let (negated, p) = match p.strip_prefix('!') {
                            Some(rest) => (true, rest),
                            None => (false, p.as_str()),
                        };
                        if match_pattern(&self.host, p) {
                            if negated {
                                *active = false;
                                break;
                            }
                            *active = true;
                        }
                    }
                }
                LineKind::Match(criteria) => {
                    let matched = self.eval_match(criteria, &at())?;
                    *active = !never_match && matched;
                }
                LineKind::Include(includes) => {
                    for include in includes {
                        let files = match &include.files {
                            Some(files) => files.clone(),
                            None => self.include(&include.pattern, file.user_conf, &at())?,
                        };
                        let was_active = *active;
                        for f in files {
                            self.read(&f, never_match || !was_active, active)?;
                            // Match in an included file leaves the including file's state alone.
                            *active = was_active;
                        }
                    }
                }
                LineKind::Set(k, v) if *active => self.apply(k, v.clone(), at())?,
                LineKind::Set(..) | LineKind::Obsolete => {}
                LineKind::Unknown(keyword) => {
                    let ignored = self.opts.text("IgnoreUnknown").is_some_and(|list| {
                        match_pattern_list(keyword, &list, true) == ListMatch::Yes
                    });
                    if !ignored {
                        return Err(
                            self.error(Some(at()), format!("bad configuration option: {keyword}"))
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, k: &'static Keyword, value: Value, at: Location) -> Result<(), HostError> {
        let obtained = Obtained {
            value,
            at: Some(at.clone()),
        };
        match k.name {
            "IdentityFile" | "CertificateFile" => {
                let list = if k.name == "IdentityFile" {
                    &mut self.opts.identity_files
                } else {
                    &mut self.opts.certificate_files
                };
                if !list.iter().any(|o| o.value == obtained.value) {
                    list.push(obtained);
                }
            }
            "ProxyCommand" => {
                if self.opts.proxy_command.is_none() {
                    self.opts.proxy_command = Some(obtained);
                }
            }
            "ProxyJump" => self.proxy_jump(obtained.value, Some(at)),
            "LocalForward" | "RemoteForward" | "DynamicForward" => {
                self.opts.forwards.push((k.name, obtained))
            }
            "SendEnv" | "SetEnv" => self.environment(k.name, &obtained.value),
            "ForwardAgent" => {
                if let Value::Str(_) = obtained.value {
                    if self.opts.forward_agent.is_none() {
                        self.opts.forward_agent = Some(Obtained {
                            value: Value::Flag(true),
                            at: Some(at),
                        });
                    }
                    if self.opts.forward_agent_path.is_none() {
                        self.opts.forward_agent_path = Some(obtained);
                    }
                } else if self.opts.forward_agent.is_none() {
                    self.opts.forward_agent = Some(obtained);
                }
            }
            "RefuseConnection" => {
                return Err(self.error(
                    Some(at),
                    format!("RefuseConnection: {}", obtained.value.text()),
                ))
            }
            _ => {
                // `none` for a time sets nothing: a later line may still set it.
                if obtained.value != Value::Time(None) {
                    self.opts.first.entry(k.name).or_insert(obtained);
                }
            }
        }
        Ok(())
    }

    /// readconf.c (9.2) as it reads `SendEnv` and `SetEnv`: patterns add up, in every pass
    /// (repeats kept), and `-PATTERN` removes the earlier patterns it matches; the first
    /// `SetEnv` line is taken whole, the first word of each name in it, and later lines
    /// change nothing.
    fn environment(&mut self, keyword: &str, value: &Value) {
        let Value::List(words) = value else {
            return;
        };
        let env = &mut self.opts.env;
        if keyword == "SendEnv" {
            for word in words {
                match word.strip_prefix('-') {
                    Some(removed) => env.send.retain(|p| !match_pattern(p, removed)),
                    None => env.send.push(word.clone()),
                }
            }
        } else if env.set.is_empty() {
            for word in words {
                let name = |w: &str| w.split('=').next().unwrap_or_default().to_string();
                if !env.set.iter().any(|w| name(w) == name(word)) {
                    env.set.push(word.clone());
                }
            }
        }
    }

    /// readconf.c `parse_jump`: ProxyJump and ProxyCommand exclude each other, the first one
    /// obtained wins; `none` only blocks later ProxyJumps.
    fn proxy_jump(&mut self, value: Value, at: Option<Location>) {
        let none = value.text().eq_ignore_ascii_case("none");
        if self.opts.jump.is_some() {
            return;
        }
        if none {
            self.opts.jump = Some(Obtained { value, at });
        } else if self.opts.proxy_command.is_none() {
            self.opts.jump = Some(Obtained {
                value,
                at: at.clone(),
            });
            self.opts.proxy_command = Some(Obtained {
                value: Value::Command("none".into()),
                at,
            });
        }
    }

    /// The host `Match host` sees: the final host in the final pass, else HostName with `%h`.
    fn match_host(&self) -> Result<String, HostError> {
        if self.final_pass {
            return Ok(self.host.clone());
        }
        match self.opts.first.get("HostName") {
            Some(o) => expand::percent(
                &o.value.text(),
                &Tokens::default().with('h', &self.req.alias),
            )
            .map_err(|e| self.error(o.at.clone(), format!("HostName: {e}"))),
            None => Ok(self.req.alias.clone()),
        }
    }

    fn remote_user(&self) -> String {
        self.opts
            .text("User")
            .unwrap_or_else(|| self.inner.local.user.clone())
    }

    fn eval_match(&mut self, criteria: &[Criterion], at: &Location) -> Result<bool, HostError> {
        let mut result = true;
        for c in criteria {
            let hit = match &c.test {
                Test::All => {
                    if result {
                        result = !c.negate;
                    }
                    break;
                }
                Test::Canonical | Test::Final => {
                    if matches!(c.test, Test::Final) && !self.final_pass && !c.negate {
                        self.want_final = true;
                    }
                    self.final_pass
                }
                Test::Host(p) => match_hostname(&self.match_host()?, p),
                Test::OriginalHost(p) => match_hostname(&self.req.alias, p),
                Test::User(p) => {
                    match_pattern_list(&self.remote_user(), p, false) == ListMatch::Yes
                }
                Test::LocalUser(p) => {
                    match_pattern_list(&self.inner.local.user, p, false) == ListMatch::Yes
                }
                Test::LocalNetwork(list) => local_addresses()
                    .into_iter()
                    .any(|a| cidr_list_contains(list, a)),
                Test::Tagged(p) => {
                    let tag = self.opts.text("Tag").unwrap_or_default();
                    if tag.is_empty() {
                        p.is_empty()
                    } else {
                        match_pattern_list(&tag, p, false) == ListMatch::Yes
                    }
                }
                Test::SessionType(p) => {
                    let session = if self.req.hop { "none" } else { "exec" };
                    match_pattern_list(session, p, false) == ListMatch::Yes
                }
                Test::Exec(command) => {
                    let command = expand::percent(command, &self.pass_tokens()?)
                        .map_err(|e| self.error(Some(at.clone()), format!("Match exec: {e}")))?;
                    if !result {
                        // ssh runs it only while every earlier criterion held.
                        continue;
                    }
                    self.exec(&command, at)?
                }
            };
            if hit == c.negate {
                result = false;
            }
        }
        Ok(result)
    }

    /// readconf.c `execute_in_shell`: `$SHELL -c command`, stdin and stdout on /dev/null.
    fn exec(&self, command: &str, at: &Location) -> Result<bool, HostError> {
        let shell = &self.inner.local.shell;
        if shell.as_os_str().is_empty() {
            // ssh 9.2: `Shell "" is not executable` (stop 36 tester t17: run under /bin/sh).
            return Err(self.error(
                Some(at.clone()),
                format!(
                    "Match exec `{command}`: SHELL is set and empty: shell \"\" is not \
                     executable, as ssh says"
                ),
            ));
        }
        let status = std::process::Command::new(shell)
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| {
                self.error(
                    Some(at.clone()),
                    format!(
                        "Match exec `{command}`: cannot run {}: {e}",
                        shell.display()
                    ),
                )
            })?;
        match status.code() {
            Some(code) => Ok(code == 0),
            None => Err(self.error(
                Some(at.clone()),
                format!("Match exec `{command}` ended abnormally ({status})"),
            )),
        }
    }

    /// The tokens of `Match exec` and `Include` (readconf.c
    /// `expand_match_exec_or_include_path`).
    fn pass_tokens(&self) -> Result<Tokens, HostError> {
        let local = &self.inner.local;
        let host = self.match_host()?;
        let port = self
            .opts
            .first
            .get("Port")
            .map_or_else(|| "22".to_string(), |o| o.value.text());
        let user = self.remote_user();
        let jump = self.opts.jump_host();
        let alias = self
            .opts
            .text("HostKeyAlias")
            .unwrap_or_else(|| host.clone());
        Ok(Tokens::default()
            .with('C', connection_hash(&local.hostname, &host, &port, &user))
            .with('L', local.short_hostname())
            .with('d', local.home.display().to_string())
            .with('h', host)
            .with('k', alias)
            .with('l', &local.hostname)
            .with('n', &self.req.alias)
            .with('p', port)
            .with('r', user)
            .with('u', &local.user)
            .with('i', local.uid.to_string())
            .with('j', jump))
    }

    /// An Include whose pattern has tokens: expanded for this host, then read.
    fn include(
        &mut self,
        pattern: &str,
        user_conf: bool,
        at: &Location,
    ) -> Result<Vec<std::sync::Arc<File>>, HostError> {
        let fail = |e: String| HostError {
            host: self.req.name.clone(),
            location: Some(at.clone()),
            problem: e,
            unresolved: false,
        };
        let expanded = expand::percent_dollar(pattern, &self.pass_tokens()?)
            .map_err(|e| fail(format!("Include {pattern}: {e}")))?;
        let anchored = file::anchor(&expanded, user_conf, &self.inner.anchors).map_err(&fail)?;
        let mut reader = Reader {
            anchors: &self.inner.anchors,
            ignore_unknown_seen: true,
        };
        let mut stack: Vec<PathBuf> = self
            .stack
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let at_line = at.line;
        let path = at.file.to_path_buf();
        reader
            .include(&anchored, user_conf, &mut stack, &|m| {
                ConfigError::Malformed {
                    path: path.clone(),
                    line: at_line,
                    message: m,
                }
            })
            .map_err(|e| fail(format!("Include {pattern}: {}", strip_location(&e))))
    }

    fn finish(mut self) -> Result<HostConfig, HostError> {
        // ssh.c: HostName becomes the host, with `%h` the name as given.
        let mut host = self.match_host()?;
        let family = match self.opts.text("AddressFamily").as_deref() {
            Some("inet") => libc::AF_INET,
            Some("inet6") => libc::AF_INET6,
            _ => libc::AF_UNSPEC,
        };
        if !canonical::is_addr(&host, family) {
            host = host.to_ascii_lowercase();
        }
        let mode = match self.opts.text("CanonicalizeHostname").as_deref() {
            Some("yes" | "true") => Mode::Yes,
            Some("always") => Mode::Always,
            _ => Mode::No,
        };
        let rules = canonical::Rules {
            mode,
            domains: match self.opts.first.get("CanonicalDomains") {
                Some(Obtained {
                    value: Value::List(d),
                    ..
                }) => d.clone(),
                _ => Vec::new(),
            },
            max_dots: self.opts.int("CanonicalizeMaxDots").unwrap_or(1) as usize,
            fallback_local: self.opts.flag("CanonicalizeFallbackLocal").unwrap_or(true),
            cnames: self.permitted_cnames(),
            direct: self.direct(),
            family,
        };
        host = canonical::canonicalize(&host, &rules).map_err(|e| HostError {
            unresolved: true,
            ..self.error(self.opts.at("CanonicalizeHostname"), e)
        })?;
        if mode != Mode::No {
            self.want_final = true;
        }
        let hostname_at = self.opts.at("HostName");
        self.opts.first.insert(
            "HostName",
            Obtained {
                value: Value::Str(host.clone()),
                at: hostname_at,
            },
        );
        if self.want_final {
            self.host = host.clone();
            self.final_pass = true;
            self.pass()?;
        }
        self.refusals()?;
        self.build(host, family)
    }

    fn direct(&self) -> bool {
        let command = self
            .opts
            .proxy_command
            .as_ref()
            .is_some_and(|o| !o.value.text().eq_ignore_ascii_case("none"));
        // Before the defaults are filled in, `ProxyJump none` still counts as a jump host.
        !command && self.opts.jump.is_none()
    }

    fn permitted_cnames(&self) -> Vec<(String, String)> {
        let Some(Obtained {
            value: Value::List(rules),
            ..
        }) = self.opts.first.get("CanonicalizePermittedCNAMEs")
        else {
            return Vec::new();
        };
        rules
            .iter()
            .filter(|r| !r.eq_ignore_ascii_case("none"))
            .map(|r| match r.split_once(':') {
                Some((s, t)) => (s.to_ascii_lowercase(), t.to_ascii_lowercase()),
                None => (r.clone(), r.clone()),
            })
            .collect()
    }
}

/// `%C`: SHA-1 of local host, host, port and user, in hex, as OpenSSH 9.2 computes it (9.6
/// adds the jump host): a file it names is the one 9.2's ssh uses.
fn connection_hash(local: &str, host: &str, port: &str, user: &str) -> String {
    let mut sha = Sha1::new();
    for part in [local, host, port, user] {
        sha.update(part.as_bytes());
    }
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The addresses of the local interfaces that are up (`Match localnetwork`).
fn local_addresses() -> Vec<IpAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: head receives a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_flags & libc::IFF_UP as u32 == 0 {
            continue;
        }
        // SAFETY: ifa_addr is non-null and its family says which sockaddr it is.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        match family {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
            _ => {}
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

fn strip_location(e: &ConfigError) -> String {
    match e {
        ConfigError::Malformed { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
