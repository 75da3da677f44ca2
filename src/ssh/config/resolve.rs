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
use super::keyword::{Keyword, Treatment, Value};
use super::state::Inner;
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

    /// A refused keyword whose effective value would change the connection fails the host.
    fn refusals(&self) -> Result<(), HostError> {
        let mut refused: Vec<(&'static str, &Obtained)> =
            self.opts.first.iter().map(|(name, o)| (*name, o)).collect();
        refused.sort_by_key(|(_, o)| o.at.as_ref().map(|a| (a.file.clone(), a.line)));
        for (name, o) in refused {
            let k = super::keyword::get(name);
            if let Treatment::Refused { unless, reason } = k.treatment {
                let text = o.value.text();
                if name == "RequestTTY" && !self.terminal_requested(&text) {
                    continue;
                }
                // ssh -W's own command line wins over these on a jump host (stop 41 tester
                // t38: a bastion's `RequestTTY force` failed every host behind it).
                if self.req.hop
                    && matches!(
                        name,
                        "RequestTTY" | "SessionType" | "RemoteCommand" | "Tunnel"
                    )
                {
                    continue;
                }
                if !unless.iter().any(|u| u.eq_ignore_ascii_case(&text)) {
                    return Err(
                        self.error(o.at.clone(), format!("{name} {text} is refused: {reason}"))
                    );
                }
            }
        }
        // ssh tries only the methods listed (compared as written: `PublicKey` is no method);
        // public keys are tether's one method, so a list without them is a login ssh never
        // makes.
        if let Some(o) = self.opts.first.get("PreferredAuthentications") {
            let text = o.value.text();
            if !text.split(',').any(|m| m == "publickey") {
                return Err(self.error(
                    o.at.clone(),
                    format!(
                        "PreferredAuthentications {text} is refused: it leaves out publickey, \
                         so ssh would never offer a key, and public keys are tether's only \
                         authentication method"
                    ),
                ));
            }
        }
        if let Some(Obtained {
            value,
            at: Some(at),
        }) = &self.opts.jump
        {
            self.check_jump_hosts(&value.text(), at)?;
        }
        if let Some(o) = &self.opts.proxy_command {
            if o.value.text() == "-" {
                return Err(self.error(
                    o.at.clone(),
                    "ProxyCommand - is refused: it needs ProxyUseFdpass, which tether cannot do",
                ));
            }
        }
        Ok(())
    }

    /// ssh.c: with a command to run, `RequestTTY yes` allocates a terminal only when ssh's
    /// standard input is one (and `StdinNull` does not replace it); `force` always.
    fn terminal_requested(&self, request_tty: &str) -> bool {
        match request_tty {
            "force" => true,
            "yes" | "true" => {
                // SAFETY: isatty only inspects the descriptor.
                let stdin_terminal = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
                stdin_terminal && self.opts.flag("StdinNull") != Some(true)
            }
            _ => false,
        }
    }

    /// A ProxyJump from the config whose hops ssh would hand to a shell as they are (ssh
    /// checks jump host names only on its command line): white space (ssh 9.2 would use the
    /// first word and drop the rest), quotes, shell syntax, a leading `-`. The host fails,
    /// naming the line, before any route is built.
    fn check_jump_hosts(&self, spec: &str, at: &Location) -> Result<(), HostError> {
        if spec.eq_ignore_ascii_case("none") {
            return Ok(());
        }
        let refuse = |why: String| {
            self.error(
                Some(at.clone()),
                format!("ProxyJump {spec} is refused: {why}"),
            )
        };
        if let Some((first, _)) = spec.split_once([' ', '\t']) {
            return Err(refuse(format!(
                "jump hosts are separated by commas, not white space (ssh would use `{first}` \
                 alone and drop the rest)"
            )));
        }
        for written in spec.split(',') {
            let hop = jump_spec::parse(written)
                .ok()
                .and_then(|hops| hops.into_iter().next())
                .ok_or_else(|| refuse(format!("`{written}` is not a jump host")))?;
            HostTarget::jump_hop(written, hop.user, hop.host, hop.port).map_err(|_| {
                refuse(format!(
                    "jump host `{written}` has quotes, shell syntax or a leading `-` in its name \
                     or user, which ssh would pass to a shell (its ProxyCommand) as written"
                ))
            })?;
        }
        Ok(())
    }

    fn build(self, host: String, family: i32) -> Result<HostConfig, HostError> {
        let local = &self.inner.local;
        let opts = &self.opts;
        let err =
            |at: Option<Location>, what: &str, e: String| self.error(at, format!("{what}: {e}"));

        let port = match opts.first.get("Port") {
            Some(Obtained {
                value: Value::Port(p),
                ..
            }) => *p,
            _ => 22,
        };
        let jump_host = opts.jump_host();
        let host_key_alias = opts.text("HostKeyAlias").map(|a| a.to_ascii_lowercase());
        // User: from the command line, else the config (with tokens, as OpenSSH 10 expands
        // it: ssh.c, DEFAULT_CLIENT_PERCENT_EXPAND_ARGS_NOUSER, the real port, no `%r` or
        // `%C`, which the user is part of; stop 44 tester t53: `%p` was 22 whatever Port
        // said, and `%r` empty), else the local user.
        let user = match opts.first.get("User") {
            Some(Obtained { value, at: None }) => value.text(),
            Some(Obtained { value, at }) => {
                let tokens = self.tokens_without_user(&host, port, &jump_host).with(
                    'k',
                    host_key_alias
                        .clone()
                        .unwrap_or_else(|| self.req.alias.clone()),
                );
                let raw = value.text();
                let user = expand::percent_dollar(&raw, &tokens)
                    .map_err(|e| err(at.clone(), "User", e))?;
                // As ssh.c checks a user its expansion changed (stop 44 tester t55: `User
                // ${EVIL}` put shell syntax into `%r` of a ProxyCommand, which ran it).
                if user != raw && !crate::ssh_syntax::uri::valid_remote_user(&user) {
                    return Err(err(
                        at.clone(),
                        "User",
                        format!(
                            "`{raw}` expands to {user:?}, which has characters ssh refuses in \
                             a user (shell syntax, a leading `-`)"
                        ),
                    ));
                }
                user
            }
            None => local.user.clone(),
        };
        let jump = opts
            .jump
            .as_ref()
            .map(|o| o.value.text())
            .filter(|s| !s.eq_ignore_ascii_case("none"));
        let proxy_command = opts
            .proxy_command
            .as_ref()
            .map(|o| o.value.text())
            .filter(|s| !s.eq_ignore_ascii_case("none"));
        let tokens = self.base_tokens(&host, port, &user, &jump_host)?;
        let tokens = tokens.with(
            'k',
            host_key_alias
                .clone()
                .unwrap_or_else(|| self.req.alias.clone()),
        );
        let path = |raw: &str, at: &Option<Location>, what: &str| -> Result<String, HostError> {
            let t = expand::tilde(raw, &local.home).map_err(|e| err(at.clone(), what, e))?;
            expand::percent_dollar(&t, &tokens).map_err(|e| err(at.clone(), what, e))
        };

        self.expanded_for_every_connection(&tokens)?;

        // IdentityFile: `none` drops the entry but still counts as configured.
        let identity_files_configured = !opts.identity_files.is_empty();
        let mut identity_files = Vec::new();
        for o in &opts.identity_files {
            let raw = o.value.text();
            if !raw.eq_ignore_ascii_case("none") {
                identity_files.push(PathBuf::from(path(&raw, &o.at, "IdentityFile")?));
            }
        }
        let raw_identity_files: Vec<String> = if identity_files_configured {
            opts.identity_files.iter().map(|o| o.value.text()).collect()
        } else {
            DEFAULT_IDENTITIES
                .iter()
                .map(|f| format!("~/.ssh/{f}"))
                .collect()
        };
        if !identity_files_configured {
            identity_files = DEFAULT_IDENTITIES
                .iter()
                .map(|f| local.home.join(".ssh").join(f))
                .collect();
        }
        let mut certificate_files = Vec::new();
        for o in &opts.certificate_files {
            certificate_files.push(PathBuf::from(path(
                &o.value.text(),
                &o.at,
                "CertificateFile",
            )?));
        }

        let identity_agent_text = match opts.first.get("IdentityAgent") {
            Some(o) => Some(path(&o.value.text(), &o.at, "IdentityAgent")?),
            None => None,
        };
        let identity_agent = match identity_agent_text.as_deref() {
            None | Some("SSH_AUTH_SOCK") => env_path("SSH_AUTH_SOCK"),
            Some(none) if none.eq_ignore_ascii_case("none") => None,
            Some(var) if var.starts_with('$') => env_path(&var[1..]),
            Some(p) => Some(PathBuf::from(p)),
        };
        let forward_agent = opts
            .forward_agent
            .as_ref()
            .is_some_and(|o| o.value == Value::Flag(true));
        let forward_agent_text = match &opts.forward_agent_path {
            Some(o) => Some(path(&o.value.text(), &o.at, "ForwardAgent")?),
            None => None,
        };
        let forward_agent_socket = match forward_agent_text.as_deref() {
            None => None,
            Some("SSH_AUTH_SOCK") => Some(env_path("SSH_AUTH_SOCK")),
            Some(var) if var.starts_with('$') => Some(env_path(&var[1..])),
            Some(p) => Some(Some(PathBuf::from(p))),
        };

        let (user_known_hosts, raw_user_known_hosts) = match opts.first.get("UserKnownHostsFile") {
            Some(Obtained {
                value: Value::List(files),
                at,
            }) => {
                if files.len() == 1 && files[0].eq_ignore_ascii_case("none") {
                    (Vec::new(), Vec::new())
                } else {
                    let mut expanded = Vec::new();
                    for f in files {
                        expanded.push(path(f, at, "UserKnownHostsFile")?);
                    }
                    (expanded.iter().map(PathBuf::from).collect(), expanded)
                }
            }
            _ => {
                let defaults = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];
                let mut expanded = Vec::new();
                for f in defaults {
                    expanded.push(path(f, &None, "UserKnownHostsFile")?);
                }
                (expanded.iter().map(PathBuf::from).collect(), expanded)
            }
        };
        let raw_global: Vec<String> = match opts.first.get("GlobalKnownHostsFile") {
            Some(Obtained {
                value: Value::List(files),
                ..
            }) => files.clone(),
            _ => vec![
                "/etc/ssh/ssh_known_hosts".into(),
                "/etc/ssh/ssh_known_hosts2".into(),
            ],
        };
        let global_known_hosts =
            if raw_global.len() == 1 && raw_global[0].eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                let at = opts.at("GlobalKnownHostsFile");
                raw_global
                    .iter()
                    .map(|f| expand::tilde(f, &local.home).map(PathBuf::from))
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(at, "GlobalKnownHostsFile", e))?
            };

        let strict_text = opts.text("StrictHostKeyChecking");
        let strict_host_key_checking = match strict_text.as_deref() {
            Some("accept-new") => StrictHostKeyChecking::AcceptNew,
            Some("no" | "off" | "false") => StrictHostKeyChecking::No,
            _ => StrictHostKeyChecking::Yes,
        };
        // sshconnect.c `expand_proxy_command`: ssh_config(5) "ProxyCommand and ProxyJump
        // accept the tokens %%, %h, %n, %p, and %r" (and `%k`).
        let proxy_tokens = Tokens::default()
            .with('h', &host)
            .with(
                'k',
                host_key_alias
                    .clone()
                    .unwrap_or_else(|| self.req.alias.clone()),
            )
            .with('n', &self.req.alias)
            .with('p', port.to_string())
            .with('r', &user);
        let route = if let Some(spec) = &jump {
            let expanded = expand_jump(spec, &proxy_tokens).map_err(|e| {
                err(
                    opts.jump.as_ref().and_then(|o| o.at.clone()),
                    &format!("ProxyJump {spec}"),
                    e,
                )
            })?;
            Route::Jump(expanded)
        } else if let Some(command) = &proxy_command {
            let expanded = expand::percent(command, &proxy_tokens).map_err(|e| {
                err(
                    opts.proxy_command.as_ref().and_then(|o| o.at.clone()),
                    "ProxyCommand",
                    e,
                )
            })?;
            Route::Command(expanded)
        } else {
            Route::Direct
        };
        let connection_attempts = opts.int("ConnectionAttempts").unwrap_or(1);
        if connection_attempts == 0 {
            return Err(self.error(
                opts.at("ConnectionAttempts"),
                "ConnectionAttempts 0: at least one attempt is needed",
            ));
        }
        let address_family = match family {
            libc::AF_INET => AddressFamily::Inet,
            libc::AF_INET6 => AddressFamily::Inet6,
            _ => AddressFamily::Any,
        };
        let connect_timeout = opts.time("ConnectTimeout");
        let server_alive_interval = opts.time("ServerAliveInterval").filter(|s| *s > 0);
        let server_alive_count_max = opts.int("ServerAliveCountMax").unwrap_or(3);

        let dump = dump::Dump {
            host_arg: &self.req.alias,
            user: &user,
            hostname: &host,
            port,
            opts: &DumpOptions(opts),
            identity_agent: identity_agent_text.as_deref(),
            identity_files: &raw_identity_files,
            certificate_files: &opts
                .certificate_files
                .iter()
                .map(|o| o.value.text())
                .collect::<Vec<_>>(),
            global_known_hosts: &raw_global,
            user_known_hosts: &raw_user_known_hosts,
            forward_agent: forward_agent_text.as_deref().map_or_else(
                || {
                    if forward_agent {
                        "yes".to_string()
                    } else {
                        "no".to_string()
                    }
                },
                str::to_string,
            ),
            connect_timeout,
            proxy_command: proxy_command.as_deref(),
            jump: jump.as_deref(),
            cnames: &self.permitted_cnames_for_dump(),
            env: &opts.env,
        }
        .lines();

        let algorithms = Algorithms {
            kex: opts.text("KexAlgorithms"),
            host_key: opts.text("HostKeyAlgorithms"),
            ciphers: opts.text("Ciphers"),
            macs: opts.text("MACs"),
            pubkey: opts.text("PubkeyAcceptedAlgorithms"),
            ca_signature: opts.text("CASignatureAlgorithms"),
        };
        // A list that leaves libssh2 nothing to negotiate fails the host here, as a
        // configuration error naming the line, not later as a failed handshake.
        if let Some((keyword, problem)) = super::negotiable::unusable_keyword(&algorithms) {
            return Err(self.error(opts.at(keyword), problem));
        }

        Ok(HostConfig {
            alias: self.req.alias.clone(),
            hostname: host,
            port,
            user,
            identity_files,
            identities_only: opts.flag("IdentitiesOnly").unwrap_or(false),
            identity_files_configured,
            certificate_files,
            identity_agent,
            user_known_hosts,
            global_known_hosts,
            strict_host_key_checking,
            host_key_alias,
            connect_timeout: connect_timeout
                .map(Duration::from_secs)
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            connect_bound: Default::default(),
            server_alive_interval: server_alive_interval.map(Duration::from_secs),
            server_alive_count_max: server_alive_count_max as u32,
            route,
            forward_agent,
            forward_agent_socket,
            tcp_keepalive: opts.flag("TCPKeepAlive").unwrap_or(true),
            address_family,
            connection_attempts: connection_attempts as u32,
            compression: opts.text("Compression").as_deref() == Some("yes"),
            batch_mode: opts.flag("BatchMode").unwrap_or(false),
            hash_known_hosts: opts.flag("HashKnownHosts").unwrap_or(false),
            no_host_authentication_for_localhost: opts
                .flag("NoHostAuthenticationForLocalhost")
                .unwrap_or(false),
            required_rsa_size: opts.int("RequiredRSASize").unwrap_or(1024) as u32,
            algorithms,
            env: opts.env.clone(),
            ssh_g: dump,
            ssh_command: self.ssh_command(),
            config_files: self.read.clone(),
        })
    }

    /// [`HostConfig::ssh_command`].
    fn ssh_command(&self) -> String {
        let mut words = vec!["ssh".to_string()];
        let file = self.inner.file.as_ref().map(|f| f.to_string_lossy());
        let options = [
            ("-F", file.map(|f| f.into_owned())),
            ("-J", self.req.proxy_jump.clone()),
            ("-l", self.req.user.clone()),
            ("-p", self.req.port.map(|p| p.to_string())),
        ];
        for (flag, value) in options {
            if let Some(value) = value {
                words.push(flag.to_string());
                words.push(crate::command::quote(&value));
            }
        }
        words.push(crate::command::quote(&self.req.alias));
        words.join(" ")
    }

    /// What ssh.c expands for every connection although tether has no use for it: the
    /// ControlPath (`~`, tokens, `${VAR}`: before `ssh -G` prints), the socket paths of the
    /// forwardings (tokens) and, once logged in, the LocalCommand (tokens and `%T`). ssh fails
    /// on one that does not expand, so the host fails here, naming the line.
    fn expanded_for_every_connection(&self, tokens: &Tokens) -> Result<(), HostError> {
        let opts = &self.opts;
        let fail = |at: &Option<Location>, what: &str, e: String| {
            self.error(at.clone(), format!("{what}: {e}"))
        };
        if let Some(o) = opts.first.get("ControlPath") {
            let raw = o.value.text();
            if !raw.eq_ignore_ascii_case("none") {
                let t = expand::tilde(&raw, &self.inner.local.home)
                    .map_err(|e| fail(&o.at, "ControlPath", e))?;
                expand::percent_dollar(&t, tokens).map_err(|e| fail(&o.at, "ControlPath", e))?;
            }
        }
        if opts.flag("ClearAllForwardings") != Some(true) {
            for (name, o) in &opts.forwards {
                let Value::List(args) = &o.value else {
                    continue;
                };
                let f = forward::from_args(name, args).map_err(|e| self.error(o.at.clone(), e))?;
                for p in f.paths() {
                    expand::percent(p, tokens).map_err(|e| fail(&o.at, name, e))?;
                }
            }
        }
        if let Some(o) = opts.first.get("LocalCommand") {
            let raw = o.value.text();
            if !raw.eq_ignore_ascii_case("none") {
                // `%T`: the tunnel interface, `NONE` without a Tunnel (which tether refuses).
                let with_tunnel = tokens.clone().with('T', "NONE");
                expand::percent(&raw, &with_tunnel).map_err(|e| fail(&o.at, "LocalCommand", e))?;
            }
        }
        Ok(())
    }

    fn permitted_cnames_for_dump(&self) -> Vec<String> {
        match self.opts.first.get("CanonicalizePermittedCNAMEs") {
            Some(Obtained {
                value: Value::List(rules),
                ..
            }) if !(rules.len() == 1 && rules[0].eq_ignore_ascii_case("none")) => rules
                .iter()
                .map(|r| match r.split_once(':') {
                    Some((s, t)) => {
                        format!("{}:{}", s.to_ascii_lowercase(), t.to_ascii_lowercase())
                    }
                    None => format!("{r}:{r}"),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// ssh.c's `DEFAULT_CLIENT_PERCENT_EXPAND_ARGS` without `%k` (added by the caller).
    fn base_tokens(
        &self,
        host: &str,
        port: u16,
        user: &str,
        jump: &str,
    ) -> Result<Tokens, HostError> {
        let local = &self.inner.local;
        let port_text = port.to_string();
        Ok(self
            .tokens_without_user(host, port, jump)
            .with(
                'C',
                connection_hash(&local.hostname, host, &port_text, user),
            )
            .with('r', user))
    }

    /// The tokens of a connection that do not depend on its user (all but `%C` and `%r`).
    fn tokens_without_user(&self, host: &str, port: u16, jump: &str) -> Tokens {
        let local = &self.inner.local;
        Tokens::default()
            .with('L', local.short_hostname())
            .with('i', local.uid.to_string())
            .with('l', &local.hostname)
            .with('n', &self.req.alias)
            .with('p', port.to_string())
            .with('d', local.home.display().to_string())
            .with('h', host)
            .with('u', &local.user)
            .with('j', jump)
    }
}

/// The options as the `ssh -G` printer reads them.
struct DumpOptions<'o>(&'o Options);

impl dump::Obtained for DumpOptions<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.0.text(name)
    }
}

/// The identity files ssh tries when none is configured, in its order (OpenSSH 9.2).
pub const DEFAULT_IDENTITIES: &[&str] = &[
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
];

/// `%C`: SHA-1 of local host, host, port and user, in hex, as OpenSSH 9.2 computes it (9.6
/// adds the jump host): a file it names is the one 9.2's ssh uses.
fn connection_hash(local: &str, host: &str, port: &str, user: &str) -> String {
    let mut sha = Sha1::new();
    for part in [local, host, port, user] {
        sha.update(part.as_bytes());
    }
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
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
