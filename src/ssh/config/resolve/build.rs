//! The second half of resolving one host (see `mod.rs`): what the files and the command line
//! obtained, made into the host's settings, as ssh.c does after reading its config: the
//! keywords tether refuses, the defaults filled in, and every keyword given the expansions ssh
//! gives it.

use super::*;
use crate::ssh::config::{keyword, negotiable};

impl<'a> Resolution<'a> {
    /// A refused keyword whose effective value would change the connection fails the host.
    pub(super) fn refusals(&self) -> Result<(), HostError> {
        let mut refused: Vec<(&'static str, &Obtained)> =
            self.opts.first.iter().map(|(name, o)| (*name, o)).collect();
        refused.sort_by_key(|(_, o)| o.at.as_ref().map(|a| (a.file.clone(), a.line)));
        for (name, o) in refused {
            let k = keyword::get(name);
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

    pub(super) fn build(self, host: String, family: i32) -> Result<HostConfig, HostError> {
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
        if let Some((keyword, problem)) = negotiable::unusable_keyword(&algorithms) {
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

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
