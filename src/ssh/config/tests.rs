//! Resolution rules, checked without ssh (the differential suite in tests/ssh_config.rs
//! compares with `ssh -G`; these cover what OpenSSH 9.2 cannot show: later additions, and
//! the errors that name a host).

use super::*;

fn local() -> Local {
    Local {
        user: "me".into(),
        uid: 1000,
        home: PathBuf::from("/home/me"),
        hostname: "build.example.org".into(),
        shell: PathBuf::from("/bin/sh"),
    }
}

fn parse(text: &str) -> SshConfig {
    let anchors = file::Anchors {
        home: PathBuf::from("/home/me"),
        system_dir: PathBuf::from("/etc/ssh"),
    };
    let mut reader = file::Reader {
        anchors: &anchors,
        ignore_unknown_seen: false,
    };
    let root = reader
        .parse(text, Path::new("/tmp/cfg"), true, &mut Vec::new())
        .expect("parses");
    SshConfig::from_roots(vec![root], anchors, local(), None)
}

fn host(cfg: &SshConfig, alias: &str) -> HostConfig {
    cfg.resolve(alias, None, None).expect("resolves")
}

#[test]
fn first_value_wins_and_identity_files_accumulate() {
    let cfg = parse(
        "Host web*\n  HostName 10.0.0.%h\n  Port 2222\n  IdentityFile ~/a\nHost *\n  Port 22\n  \
         User deploy\n  IdentityFile /b\n  IdentityFile ~/a\n",
    );
    let h = host(&cfg, "web1");
    assert_eq!(h.port, 2222);
    assert_eq!(h.user, "deploy");
    assert_eq!(h.hostname, "10.0.0.web1");
    assert_eq!(
        h.identity_files,
        [PathBuf::from("/home/me/a"), PathBuf::from("/b")]
    );
}

#[test]
fn target_user_and_port_override_config() {
    let cfg = parse("Host db\n  User x\n  Port 2\n");
    let h = cfg.resolve("db", Some("root"), Some(2200)).unwrap();
    assert_eq!((h.user.as_str(), h.port), ("root", 2200));
}

/// The `ssh` words a hint gives reach the host as tether did: `-F` when tether had one,
/// `-J` given outside the config, and a user or port from the host's name, quoted for sh.
#[test]
fn ssh_command_reaches_the_host_as_tether_did() {
    let cfg = parse("Host db\n  User x\n  Port 2\n");
    assert_eq!(host(&cfg, "db").ssh_command, "ssh db");
    let named = cfg.resolve("db", Some("ro ot"), Some(2200)).unwrap();
    assert_eq!(named.ssh_command, "ssh -l 'ro ot' -p 2200 db");
    let jumped = cfg
        .resolve_request(&Request {
            name: "db".into(),
            alias: "db".into(),
            user: None,
            port: None,
            proxy_jump: Some("me@bastion:2022,hop".into()),
            hop: false,
        })
        .unwrap();
    assert_eq!(jumped.ssh_command, "ssh -J me@bastion:2022,hop db");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("it's config");
    std::fs::write(&file, "Host db\n  Port 2\n").unwrap();
    let loaded = SshConfig::load(Some(&file), Path::new("/nonexistent")).unwrap();
    assert_eq!(
        host(&loaded, "db").ssh_command,
        format!("ssh -F '{}/it'\\''s config' db", dir.display())
    );
    let none = SshConfig::load(Some(Path::new("NONE")), Path::new("/nonexistent")).unwrap();
    assert_eq!(host(&none, "db").ssh_command, "ssh -F none db");
}

#[test]
fn defaults() {
    let h = host(&parse(""), "x");
    assert_eq!(
        (h.hostname.as_str(), h.port, h.user.as_str()),
        ("x", 22, "me")
    );
    assert_eq!(h.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(h.route, Route::Direct);
    assert_eq!(h.strict_host_key_checking, StrictHostKeyChecking::Yes);
    assert!(!h.identity_files_configured);
    assert_eq!(h.identity_files[0], PathBuf::from("/home/me/.ssh/id_rsa"));
    assert_eq!(
        h.user_known_hosts,
        [
            PathBuf::from("/home/me/.ssh/known_hosts"),
            PathBuf::from("/home/me/.ssh/known_hosts2")
        ]
    );
}

#[test]
fn malformed_lines_are_named() {
    let err = SshConfig::parse_str("Host a\n  Port abc\n", Path::new("/x/cfg")).unwrap_err();
    assert_eq!(err.to_string(), "/x/cfg:2: Port: bad port \"abc\"");
    let err = SshConfig::parse_str("Host a\n  Frobnicate 1\n", Path::new("/x/cfg")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/x/cfg:2: bad configuration option: frobnicate"
    );
    let err = SshConfig::parse_str("Host\n", Path::new("/x/cfg")).unwrap_err();
    assert!(err.to_string().starts_with("/x/cfg:1:"), "{err}");
}

#[test]
fn ignore_unknown_is_per_host() {
    let cfg = parse("Host a\n  IgnoreUnknown Frob*\nHost *\n  FrobnicateLevel 9\n  User u\n");
    assert_eq!(host(&cfg, "a").user, "u");
    let err = cfg.resolve("b", None, None).unwrap_err();
    assert!(err.problem.contains("frobnicatelevel"), "{err}");
}

#[test]
fn match_criteria_and_negation() {
    let cfg = parse(
        "Match host=web1\n  User a\nMatch !host web2 user me\n  Port 2001\n\
         Match originalhost WEB* !user x\n  IdentitiesOnly yes\nMatch localuser me\n  Tag t1\n\
         Match tagged t1\n  HostKeyAlias tagged\n",
    );
    let h = host(&cfg, "web1");
    assert_eq!(
        (h.user.as_str(), h.port, h.identities_only),
        ("a", 22, true)
    );
    assert_eq!(h.host_key_alias.as_deref(), Some("tagged"));
    let h = host(&cfg, "web3");
    assert_eq!((h.user.as_str(), h.port), ("me", 2001));
    let h = host(&cfg, "web2");
    assert_eq!(h.port, 22);
}

#[test]
fn match_exec_runs_through_the_shell_once_with_tokens() {
    let dir = std::env::temp_dir().join(format!("tether-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let cfg = parse(&format!(
        "Match exec \"echo %h-%n-%p-%r >> {log}; test %n = a\"\n  User viaexec\n",
        log = log.display()
    ));
    assert_eq!(host(&cfg, "a").user, "viaexec");
    assert_eq!(host(&cfg, "a").user, "viaexec");
    assert_eq!(host(&cfg, "b").user, "me");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "a-a-22-me\nb-b-22-me\n");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn match_exec_killed_fails_that_host_only() {
    let cfg = parse("Match originalhost bad exec \"kill -9 $$\"\n  User x\nHost *\n  User y\n");
    let err = cfg.resolve("bad", None, None).unwrap_err();
    assert_eq!(err.location.as_ref().unwrap().line, 1);
    assert!(err.problem.contains("ended abnormally"), "{err}");
    assert_eq!(host(&cfg, "good").user, "y");
}

#[test]
fn final_pass_matches_host_lines_against_the_final_name() {
    let cfg = parse(
        "Host web1\n  HostName 10.0.0.5\nMatch final\n  User fin\nHost 10.0.0.5\n  Port 2222\n\
         Match canonical\n  IdentitiesOnly yes\n",
    );
    let h = host(&cfg, "web1");
    assert_eq!(
        (h.user.as_str(), h.port, h.identities_only),
        ("fin", 2222, true)
    );
    // `!final` asks for no final pass.
    let cfg = parse("Match !final\n  User notfinal\nHost x\n  Port 2\n");
    assert_eq!(host(&cfg, "x").user, "notfinal");
}

#[test]
fn refused_keyword_fails_only_the_hosts_it_applies_to() {
    let cfg = parse(
        "Host web1\n  PKCS11Provider /usr/lib/opensc.so\nHost web2\n  PKCS11Provider none\n\
         Host *\n  CheckHostIP no\n",
    );
    let err = cfg.resolve("web1", None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "web1: ssh config /tmp/cfg:2: PKCS11Provider /usr/lib/opensc.so is refused: tether \
         cannot use keys on PKCS#11 tokens (load them into ssh-agent instead)"
    );
    assert!(cfg.resolve("web2", None, None).is_ok());
    assert!(cfg.resolve("web3", None, None).is_ok());
    let cfg = parse("Host *\n  ProxyUseFdpass yes\n  Tunnel point-to-point\n");
    assert!(cfg
        .resolve("x", None, None)
        .unwrap_err()
        .problem
        .starts_with("ProxyUseFdpass yes"));
}

#[test]
fn proxy_jump_and_proxy_command_exclude_each_other() {
    let cfg = parse(
        "Host a\n  ProxyCommand nc %h %p\n  ProxyJump j\nHost b\n  ProxyJump j\n  ProxyCommand x\n\
         Host c\n  ProxyCommand none\n  ProxyJump j\nHost d\n  ProxyJump none\n  ProxyCommand \
         ssh -W %h:%p -l %r bastion # %k\n",
    );
    assert_eq!(host(&cfg, "a").route, Route::Command("nc a 22".into()));
    assert_eq!(host(&cfg, "b").route, Route::Jump("j".into()));
    assert_eq!(host(&cfg, "c").route, Route::Direct);
    assert_eq!(
        host(&cfg, "d").route,
        Route::Command("ssh -W d:22 -l me bastion # d".into())
    );
    // -J (or a recipe's via) comes first, as on ssh's command line.
    let t = HostTarget::parse("a").unwrap();
    assert_eq!(
        cfg.resolve_target(&t, Some("k")).unwrap().route,
        Route::Jump("k".into())
    );
    assert_eq!(
        cfg.resolve_target(&t, Some("none")).unwrap().route,
        Route::Command("nc a 22".into())
    );
}

#[test]
fn proxy_jump_tokens_as_in_the_proxy_command_ssh_builds() {
    // Stop 44 tester t55: `-J 'h%6Fst1'` was tried as a host name; ssh expands a ProxyJump
    // as the ProxyCommand it becomes (ssh_config(5): %%, %h, %n, %p, %r; `%k` too).
    let cfg = parse(
        "Host web\n  HostName 10.0.0.5\n  Port 2200\n  User deploy\n  HostKeyAlias wk\n  \
         ProxyJump %r@jump-%n:2222,%h-%p-%k%%x\nHost bad\n  ProxyJump h%6Fst1\n",
    );
    assert_eq!(
        host(&cfg, "web").route,
        Route::Jump("deploy@jump-web:2222,10.0.0.5-2200-wk%x".into())
    );
    let err = cfg.resolve("bad", None, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad: ssh config /tmp/cfg:8: ProxyJump h%6Fst1: unknown token `%6` here"
    );
    let t = HostTarget::parse("web").unwrap();
    assert_eq!(
        cfg.resolve_target(&t, Some("j-%n")).unwrap().route,
        Route::Jump("j-web".into())
    );
    let err = cfg.resolve_target(&t, Some("h%6Fst1")).unwrap_err();
    assert!(err.to_string().contains("unknown token `%6`"), "{err}");
}

#[test]
fn tokens_where_ssh_expands_them() {
    std::env::set_var("TETHER_TOKENS_TEST", "env");
    let cfg = parse(
        "Host h1\n  HostName Real.%h.example\n  User u1\n  Port 2200\n  HostKeyAlias Key-%h\n  \
         ProxyJump jhost\n  UserKnownHostsFile ~/kh/%k %d/%u/%i/%L/%l/%n/%p/%r/%h/%j/%C/${TETHER_TOKENS_TEST}\n  \
         IdentityFile ~/id-%r@%h\n  CertificateFile %d/c-%n\n  IdentityAgent ~/agent-%C\n",
    );
    let h = host(&cfg, "h1");
    assert_eq!(h.hostname, "real.h1.example");
    // The jump host is not part of it, as in OpenSSH 9.2.
    let c = connection_hash_for(&h);
    assert_eq!(h.user_known_hosts[0], PathBuf::from("/home/me/kh/key-%h"));
    assert_eq!(
        h.user_known_hosts[1],
        PathBuf::from(format!(
            "/home/me/me/1000/build/build.example.org/h1/2200/u1/real.h1.example/jhost/{c}/env"
        ))
    );
    assert_eq!(
        h.identity_files,
        [PathBuf::from("/home/me/id-u1@real.h1.example")]
    );
    assert_eq!(h.certificate_files, [PathBuf::from("/home/me/c-h1")]);
    assert_eq!(
        h.identity_agent,
        Some(PathBuf::from(format!("/home/me/agent-{c}")))
    );
    assert_eq!(h.known_hosts_name(), "key-%h");
    // An unknown token fails the host, naming the keyword and line.
    let cfg = parse("Host h\n  IdentityFile ~/id-%z\n");
    let err = cfg.resolve("h", None, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("/tmp/cfg:2: IdentityFile: unknown token `%z`"),
        "{err}"
    );
}

/// `User`'s tokens are OpenSSH 10's: the real port, `%k`, no `%r` or `%C` (stop 44 tester
/// t53: `%p` was 22 whatever Port said, and `%r` empty).
#[test]
fn user_tokens_are_those_without_the_user() {
    let cfg = parse(
        "Host h1\n  User u-%p-%h-%n-%k-%j\n  Port 2222\n  HostName real\n  HostKeyAlias Alias\n  \
         ProxyJump jh\nHost h2\n  User u-%r\nHost h3\n  User u-%C\nHost h4\n  Port 2200\n  User %p\n",
    );
    assert_eq!(host(&cfg, "h1").user, "u-2222-real-h1-alias-jh");
    assert_eq!(host(&cfg, "h4").user, "2200");
    // Shell syntax an expansion brought in is refused, as ssh.c does (stop 44 tester t55).
    std::env::set_var("TETHER_EVIL_USER", "x$(touch /tmp/pwned)");
    std::env::set_var("TETHER_PLAIN_USER", "deploy");
    let evil = parse(
        "Host e\n  User ${TETHER_EVIL_USER}\nHost f\n  User ${TETHER_PLAIN_USER}\nHost g\n  User %n;x\n",
    );
    for h in ["e", "g"] {
        let err = evil.resolve(h, None, None).unwrap_err().to_string();
        assert!(
            err.contains("which has characters ssh refuses in a user"),
            "{err}"
        );
    }
    assert_eq!(host(&evil, "f").user, "deploy");
    for (h, token) in [("h2", "%r"), ("h3", "%C")] {
        let err = cfg.resolve(h, None, None).unwrap_err().to_string();
        assert!(
            err.contains(&format!("User: unknown token `{token}`")),
            "{err}"
        );
    }
}

fn connection_hash_for(h: &HostConfig) -> String {
    use sha1::{Digest as _, Sha1};
    let mut sha = Sha1::new();
    sha.update(format!(
        "build.example.org{}{}{}",
        h.hostname, h.port, h.user
    ));
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn identity_file_none_and_agent_forms() {
    std::env::set_var("TETHER_AGENT_TEST", "/run/agent.sock");
    let cfg = parse(
        "Host a\n  IdentityFile none\n  IdentityAgent none\nHost b\n  IdentityAgent \
         $TETHER_AGENT_TEST\n  ForwardAgent yes\nHost c\n  ForwardAgent ${TETHER_AGENT_TEST}\n  \
         IdentityAgent /run/id.sock\nHost d\n  IdentityAgent none\n  ForwardAgent \
         /run/agent.sock\nHost e\n  IdentityAgent /run/id.sock\n  ForwardAgent \
         $TETHER_AGENT_UNSET\n",
    );
    let a = host(&cfg, "a");
    assert!(a.identity_files.is_empty() && a.identity_files_configured);
    assert_eq!(a.identity_agent, None);
    let b = host(&cfg, "b");
    assert_eq!(b.identity_agent, Some(PathBuf::from("/run/agent.sock")));
    assert_eq!(b.agent_to_forward(), Some(PathBuf::from("/run/agent.sock")));
    let c = host(&cfg, "c");
    assert!(c.forward_agent);
    assert_eq!(c.agent_to_forward(), Some(PathBuf::from("/run/agent.sock")));
    assert_eq!(c.agent_not_forwarded(), None);
    // As ssh's check_agent_present: no identity agent, nothing forwarded (stop 44 tester t53).
    let d = host(&cfg, "d");
    assert!(d.forward_agent);
    assert_eq!(d.agent_to_forward(), None);
    assert!(d
        .agent_not_forwarded()
        .unwrap()
        .contains("IdentityAgent none"));
    let e = host(&cfg, "e");
    assert_eq!(e.agent_to_forward(), None);
    assert!(e.agent_not_forwarded().unwrap().contains("variable"));
    assert_eq!(a.agent_not_forwarded(), None);
}

#[test]
fn includes_are_relative_to_dot_ssh_and_per_host_with_tokens() {
    let home = std::env::temp_dir().join(format!("tether-inc-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".ssh/conf.d")).unwrap();
    std::fs::write(home.join(".ssh/conf.d/one.conf"), "Host inc\n  Port 4000\n").unwrap();
    std::fs::write(home.join(".ssh/conf.d/scoped.conf"), "User scoped\n").unwrap();
    std::fs::write(home.join(".ssh/conf.d/host-b.conf"), "User from-token\n").unwrap();
    let elsewhere = home.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let main = elsewhere.join("config");
    std::fs::write(
        &main,
        "Include conf.d/one.conf\nHost scoped\n  Include conf.d/scoped.conf\n\
         Host b\n  Include conf.d/host-%h.conf\n",
    )
    .unwrap();
    let me = Local {
        home: home.clone(),
        ..local()
    };
    let cfg = SshConfig::load_as(Some(&main), Path::new("/nonexistent/ssh_config"), me).unwrap();
    assert_eq!(host(&cfg, "inc").port, 4000);
    assert_eq!(host(&cfg, "scoped").user, "scoped");
    assert_eq!(host(&cfg, "other").user, "me");
    assert_eq!(host(&cfg, "b").user, "from-token");
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn include_loops_and_depth_are_refused() {
    let dir = std::env::temp_dir().join(format!("tether-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a"), format!("Include {}/b\n", dir.display())).unwrap();
    std::fs::write(
        dir.join("b"),
        format!("Host x\n  Include {}/a\n", dir.display()),
    )
    .unwrap();
    let err = SshConfig::load_as(Some(&dir.join("a")), Path::new("/nonexistent"), local())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Include loop"), "{err}");
    assert!(
        err.starts_with(&format!("{}:2:", dir.join("b").display())),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn system_config_is_read_after_the_user_config_without_f() {
    let home = std::env::temp_dir().join(format!("tether-sys-{}", std::process::id()));
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(home.join("etc/ssh.d")).unwrap();
    std::fs::write(home.join(".ssh/config"), "Host a\n  User fromuser\n").unwrap();
    std::fs::write(
        home.join("etc/ssh_config"),
        "Include ssh.d/*.conf\nHost *\n  User fromsystem\n  Port 2022\n",
    )
    .unwrap();
    std::fs::write(home.join("etc/ssh.d/x.conf"), "Host b\n  Port 2023\n").unwrap();
    let me = Local {
        home: home.clone(),
        ..local()
    };
    let cfg = SshConfig::load_as(None, &home.join("etc/ssh_config"), me.clone()).unwrap();
    let a = host(&cfg, "a");
    assert_eq!((a.user.as_str(), a.port), ("fromuser", 2022));
    assert_eq!(host(&cfg, "b").port, 2023);
    // With -F, the system file is not read.
    let cfg = SshConfig::load_as(
        Some(&home.join(".ssh/config")),
        &home.join("etc/ssh_config"),
        me,
    )
    .unwrap();
    assert_eq!(host(&cfg, "a").port, 22);
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn hostname_is_lowercased_unless_an_address() {
    let cfg = parse("Host a\n  HostName Web.EXAMPLE\nHost b\n  HostName 0:0::1\n");
    assert_eq!(host(&cfg, "a").hostname, "web.example");
    assert_eq!(host(&cfg, "b").hostname, "::1");
    assert_eq!(host(&cfg, "B").hostname, "b");
}

#[test]
fn ssh_g_lines() {
    let cfg = parse(
        "Host x\n  User u\n  ProxyJump a,ops@10.0.0.1:2222\n  StrictHostKeyChecking yes\n  \
         IdentityFile ~/k-%h\n",
    );
    let lines = host(&cfg, "x").ssh_g;
    for want in [
        "host x",
        "user u",
        "hostname x",
        "port 22",
        "stricthostkeychecking true",
        "identityfile ~/k-%h",
        "proxyjump a,ops@[10.0.0.1]:2222",
        "connecttimeout none",
        "userknownhostsfile /home/me/.ssh/known_hosts /home/me/.ssh/known_hosts2",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} not in {lines:#?}");
    }
}

/// Fresh-eyes finding: tether connected where ssh refuses. What ssh expands for every
/// connection (ControlPath, forwarding socket paths, LocalCommand) fails the host on a token
/// or variable that does not expand; SessionType other than `default` and `RequestTTY force`
/// are refused; a config ProxyJump ssh would hand to a shell as written fails its host, all
/// naming keyword, file and line. Hosts the lines do not apply to resolve.
#[test]
fn values_ssh_cannot_use_for_a_host_fail_that_host() {
    for (line, problem) in [
        (
            "ControlPath /tmp/cp-%T",
            "ControlPath: unknown token `%T` here",
        ),
        (
            "ControlPath /tmp/${TETHER_CFG_UNSET_CP}/cp",
            "ControlPath: environment variable `${TETHER_CFG_UNSET_CP}` is not set",
        ),
        (
            "LocalForward /tmp/%Z.sock x:1",
            "LocalForward: unknown token `%Z` here",
        ),
        (
            "RemoteForward 1 /tmp/%Z",
            "RemoteForward: unknown token `%Z` here",
        ),
        (
            "DynamicForward /tmp/%Z",
            "DynamicForward: unknown token `%Z` here",
        ),
        (
            "LocalCommand echo %Z",
            "LocalCommand: unknown token `%Z` here",
        ),
        (
            "SessionType none",
            "SessionType none is refused: ssh would run no command",
        ),
        ("SessionType subsystem", "SessionType subsystem is refused"),
        (
            "RequestTTY force",
            "RequestTTY force is refused: ssh would allocate a terminal",
        ),
        (
            "ProxyJump host2 host3",
            "ProxyJump host2 host3 is refused: jump hosts are separated by commas, not white \
             space (ssh would use `host2` alone and drop the rest)",
        ),
        (
            "ProxyJump a,\"\"",
            "ProxyJump a,\"\" is refused: jump host `\"\"` has quotes, shell syntax",
        ),
        (
            "ProxyJump -oops",
            "ProxyJump -oops is refused: jump host `-oops`",
        ),
    ] {
        let cfg = parse(&format!("Host x\n  {line}\nHost y\n  User u\n"));
        let err = cfg.resolve("x", None, None).unwrap_err();
        let want = format!("x: ssh config /tmp/cfg:2: {problem}");
        assert!(
            err.to_string().starts_with(&want),
            "{line}:\n{err}\nwant {want}"
        );
        assert_eq!(host(&cfg, "y").user, "u", "{line}");
    }
    for line in [
        "ControlPath none",
        "ControlPath ~/.ssh/cm-%C-%h-%p-%r-%n-%k-%l-%L-%u-%i-%d-%j",
        "LocalCommand echo %T %h %%Z",
        "LocalCommand NONE",
        "LocalForward /tmp/%h.sock x:1",
        "SessionType default",
        "RequestTTY auto",
        "RequestTTY no",
        "ProxyJump none",
        "ProxyJump none,ops@b:2222",
    ] {
        let cfg = parse(&format!("Host x\n  {line}\n"));
        assert!(cfg.resolve("x", None, None).is_ok(), "{line}");
    }
    // ClearAllForwardings drops the forwardings before ssh expands them.
    let cfg = parse("Host x\n  ClearAllForwardings yes\n  LocalForward /tmp/%Z x:1\n");
    assert!(cfg.resolve("x", None, None).is_ok());
}

/// Fresh-eyes finding: values ssh refuses for every host, tether accepted (or the reverse).
#[test]
fn ignored_keywords_values_are_checked_as_ssh_checks_them() {
    for bad in [
        "LocalForward 99999 x:1",
        "LocalForward 1",
        "RemoteForward bad",
        "RemoteForward 1234 localhost:%Z",
        "DynamicForward abc",
        "DynamicForward 1 2",
        "PermitRemoteOpen bad",
        "PermitRemoteOpen [h",
        "PermitRemoteOpen none h:1",
        "RekeyLimit 15",
        "RekeyLimit 1X",
        "IPQoS ff",
        "IPQoS 256",
        "StreamLocalBindMask 8",
        "TunnelDevice 2147483647",
        "Port -0",
        "Port 0x10",
    ] {
        let err = SshConfig::parse_str(&format!("Host other\n  {bad}\n"), Path::new("/x/cfg"))
            .unwrap_err()
            .to_string();
        let keyword = bad.split(' ').next().unwrap_or_default();
        assert!(
            err.starts_with(&format!("/x/cfg:2: {keyword}")),
            "{bad}: {err}"
        );
    }
    for good in [
        "Port +23328",
        "FingerprintHash SHA1",
        "StreamLocalBindMask 0177abc",
        "NumberOfPasswordPrompts +3",
        "IPQoS 0x1f 010",
        "RekeyLimit 1.5K 1h",
        "RekeyLimit 0",
        "TunnelDevice any:+3",
        "PermitRemoteOpen :22 [::1]:ssh h:*",
        "RemoteForward 0",
        "ProxyJump a b,,c",
    ] {
        assert!(
            SshConfig::parse_str(&format!("Host other\n  {good}\n"), Path::new("/x/cfg")).is_ok(),
            "{good}"
        );
    }
    assert_eq!(host(&parse("Host x\n  Port +23328\n"), "x").port, 23328);
}
