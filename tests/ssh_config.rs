//! ssh_config parity with OpenSSH, `ssh -G` as the oracle: for each of the configs below,
//! written for this test (every construct tether resolves, odd spacing, quoting and case
//! included), `tether hosts -G` must print the same `keyword value` lines as `ssh -G` for the
//! keywords that decide where and how a connection is made. Both run in a sandbox (a mount
//! namespace with a temp dir over `/root`, see `support/sandbox.rs`), so `~`, `%d` and
//! `~/.ssh` are the same for both and nothing real is read or written. A sample of the
//! configs is then used for real: `ssh` and `tether run` against lab hosts must log in on the
//! same host.

use crate::support;

use support::lab::Lab;
use support::sandbox::{Sandbox, HOME};
use support::tether::Tether;

/// The keywords compared (`tether hosts -G` prints a few more, ssh -G many more).
const KEYWORDS: &[&str] = &[
    "hostname",
    "port",
    "user",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "certificatefile",
    "userknownhostsfile",
    "globalknownhostsfile",
    "stricthostkeychecking",
    "hostkeyalias",
    "proxyjump",
    "proxycommand",
    "connecttimeout",
    "serveraliveinterval",
    "serveralivecountmax",
    "forwardagent",
    "addressfamily",
    "batchmode",
    "canonicalizehostname",
    "canonicalizemaxdots",
    "canonicalizefallbacklocal",
    "compression",
    "connectionattempts",
    "hashknownhosts",
    "tcpkeepalive",
    "sendenv",
    "setenv",
];

fn keyword_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.split(' ').next().is_some_and(|k| KEYWORDS.contains(&k)))
        .map(str::to_string)
        .collect()
}

/// One config: its text, files it includes (relative to the sandbox home), and the hosts to
/// resolve. A host is `name`, or `tether-form|ssh args` when the two command lines differ.
struct Case {
    name: &'static str,
    config: &'static str,
    files: &'static [(&'static str, &'static str)],
    hosts: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "basic",
        config: "Host web1\n  HostName 10.0.0.5\n  Port 2222\n  User deploy\nHost web2\n  HostName web2.example.com\n",
        files: &[],
        hosts: &["web1", "web2", "other"],
    },
    Case {
        name: "first-value-wins",
        config: "Host web*\n  Port 2201\n  User a\nHost web1\n  Port 2202\n  User b\n  IdentitiesOnly yes\nHost *\n  Port 2203\n  IdentitiesOnly no\n",
        files: &[],
        hosts: &["web1", "web9", "db"],
    },
    Case {
        name: "wildcards-and-several-patterns",
        config: "Host db? *.internal cache-*\n  User ops\nHost ??\n  Port 2022\n",
        files: &[],
        hosts: &["db1", "db12", "x.internal", "cache-a", "ab", "abc"],
    },
    Case {
        name: "negation",
        config: "Host * !bastion !*.example.com\n  ProxyJump bastion\nHost bastion\n  HostName 192.0.2.1\n",
        files: &[],
        hosts: &["web1", "bastion", "a.example.com"],
    },
    Case {
        name: "negation-only-never-matches",
        config: "Host !web1\n  User neg\nHost web1 !web1\n  Port 2001\n",
        files: &[],
        hosts: &["web1", "web2"],
    },
    Case {
        name: "host-patterns-are-case-sensitive",
        config: "Host WEB1\n  User upper\nHost web1\n  HostName Web1.Example.COM\n",
        files: &[],
        hosts: &["web1", "WEB1"],
    },
    Case {
        name: "equals-separators",
        config: "Host=eq1\n  Port=2222\n  User = deploy\n  HostName= eq.example.com\n  IdentityFile =/k/eq\n",
        files: &[],
        hosts: &["eq1"],
    },
    Case {
        name: "odd-spacing-tabs-crlf",
        config: "\t Host   sp1\t\r\n\t\tHostName\t\tsp.example.com   \r\n   Port\t2200\r\n\r\n   User    tabbed\t\r\n",
        files: &[],
        hosts: &["sp1"],
    },
    Case {
        name: "quoting",
        config: "Host q1\n  IdentityFile \"/k/with space/key\"\n  IdentityFile '/k/single quoted'\n  IdentityFile /k/escaped\\ space\n  UserKnownHostsFile \"/kh/a b\" /kh/c\n  User \"quoted\"\n",
        files: &[],
        hosts: &["q1"],
    },
    Case {
        name: "keyword-case",
        config: "HOST c1\n  HOSTNAME c1.example.com\n  identityFILE /k/c1\n  StrictHOSTKeyChecking Accept-New\n  user MixedCase\n",
        files: &[],
        hosts: &["c1"],
    },
    Case {
        name: "comments",
        config: "# leading comment\nHost cm1 # the host\n  # indented comment\n  Port 2022 # trailing\n  User u#notacomment\n",
        files: &[],
        hosts: &["cm1"],
    },
    Case {
        name: "match-host-equals-form",
        config: "Match host=web1\n  User viaequals\nMatch host=web2,web3\n  Port 2003\n",
        files: &[],
        hosts: &["web1", "web2", "web3", "web4"],
    },
    // ssh 9.2 reads a Match line with `strdelim`: one `=` between words, with white space
    // around it or not, separates them as white space does (stop 34 tester: `host =q` was read
    // as the pattern `=q`, as OpenSSH 9.4 reads it, and the block silently did not apply).
    Case {
        name: "match-equals-with-spaces",
        config: "Match host =web1\n  User spacedequals\nMatch host = web2\n  Port 2004\n\
                 Match host= web3\n  Port 2005\nMatch !host =web1\n  IdentitiesOnly yes\n\
                 Match user = root host =web4\n  User rootequals\nMatch originalhost =web5\n  \
                 Port 2006\nMatch final host =web6\n  Port 2007\nMatch exec =true host web7\n  \
                 Port 2008\nMatch host web8 # a comment\n  Port 2009\n",
        files: &[],
        hosts: &[
            "web1", "web2", "web3", "web4", "web5", "web6", "web7", "web8", "web9",
        ],
    },
    Case {
        name: "match-negated-host",
        config: "Match !host web2\n  User notweb2\nHost *\n  User fallback\n",
        files: &[],
        hosts: &["web1", "web2"],
    },
    Case {
        name: "match-host-and-not-user",
        config: "Host web*\n  User deploy\nMatch host web1 !user x\n  Port 2101\nMatch host web2 !user deploy\n  Port 2102\n",
        files: &[],
        hosts: &["web1", "web2"],
    },
    Case {
        name: "match-host-sees-hostname",
        config: "Host alias1\n  HostName real1.example.com\nMatch host real1.example.com\n  User byhostname\nMatch originalhost alias1\n  Port 2201\nMatch host alias1\n  IdentitiesOnly yes\n",
        files: &[],
        hosts: &["alias1"],
    },
    Case {
        name: "match-localuser",
        config: "Match localuser root\n  User fromlocal\nMatch !localuser root\n  Port 2999\n",
        files: &[],
        hosts: &["lu1"],
    },
    Case {
        name: "match-all",
        config: "Host a1\n  User a1user\nMatch all\n  User everyone\n  Port 2020\n",
        files: &[],
        hosts: &["a1", "b1"],
    },
    Case {
        name: "match-final-second-pass",
        config: "Host web1\n  HostName 10.0.0.5\nMatch final\n  User fin\nHost 10.0.0.5\n  Port 2222\nMatch canonical host 10.0.0.5\n  IdentitiesOnly yes\n",
        files: &[],
        hosts: &["web1", "10.0.0.5"],
    },
    Case {
        name: "match-final-host-line-sees-final-name",
        config: "Match final\nHost web1\n  HostName Final.Example.COM\nHost final.example.com\n  User sawfinal\n",
        files: &[],
        hosts: &["web1"],
    },
    Case {
        name: "match-canonical-without-final-pass",
        config: "Match canonical\n  User never\nHost *\n  User always\n",
        files: &[],
        hosts: &["x"],
    },
    Case {
        name: "match-exec",
        config: "Match exec \"test %h = ex1\"\n  User execmatch\nMatch exec \"exit 1\"\n  Port 2001\nMatch exec=true\n  IdentitiesOnly yes\n",
        files: &[],
        hosts: &["ex1", "ex2"],
    },
    Case {
        name: "match-exec-tokens",
        config: "Host t1\n  HostName t1.example.com\n  Port 2200\n  User tok\nMatch exec \"test %n-%h-%p-%r-%u-%d = t1-t1.example.com-2200-tok-root-/root\"\n  IdentitiesOnly yes\n",
        files: &[],
        hosts: &["t1"],
    },
    Case {
        name: "match-exec-skipped-after-failed-criterion",
        config: "Match host nothere exec \"kill -9 $$\"\n  User never\n",
        files: &[],
        hosts: &["x"],
    },
    Case {
        name: "match-comma-lists-and-wildcards",
        config: "Match host a*,b*,!bad\n  User listed\nMatch user list* host !c*\n  Port 2345\n",
        files: &[],
        hosts: &["a1", "bad", "b2", "c3"],
    },
    Case {
        name: "match-user-from-command-line",
        config: "Match user deploy\n  Port 2222\nHost *\n  User fromconfig\n",
        files: &[],
        hosts: &["deploy@m1|-l deploy m1", "m2"],
    },
    Case {
        name: "include-relative-to-dot-ssh",
        config: "Include conf.d/*.conf\nHost *\n  User top\n",
        files: &[
            (".ssh/conf.d/10-web.conf", "Host web1\n  HostName inc-web.example.com\n"),
            (".ssh/conf.d/20-db.conf", "Host db1\n  Port 5432\n"),
            (".ssh/conf.d/ignored.txt", "Host web1\n  Port 1\n"),
        ],
        hosts: &["web1", "db1"],
    },
    Case {
        name: "include-glob-order",
        config: "Include ord/*\n",
        files: &[
            (".ssh/ord/b", "Host *\n  User fromb\n"),
            (".ssh/ord/a", "Host *\n  User froma\n  Port 2001\n"),
            (".ssh/ord/c", "Host *\n  Port 2003\n  IdentitiesOnly yes\n"),
        ],
        hosts: &["x"],
    },
    Case {
        name: "include-inside-host-block",
        config: "Host scoped\n  Include scoped.conf\nHost *\n  User outside\n",
        files: &[(".ssh/scoped.conf", "User inside\nPort 2100\n")],
        hosts: &["scoped", "other"],
    },
    Case {
        name: "include-absolute-and-tilde",
        config: "Include /root/abs.conf ~/tilde.conf\n",
        files: &[
            ("abs.conf", "Host a\n  User abs\n"),
            ("tilde.conf", "Host a\n  Port 2002\n"),
        ],
        hosts: &["a"],
    },
    Case {
        name: "include-nested",
        config: "Include one.conf\n",
        files: &[
            (".ssh/one.conf", "Host n1\n  Include two.conf\n"),
            (".ssh/two.conf", "User nested\nInclude three.conf\n"),
            (".ssh/three.conf", "Port 2333\n"),
        ],
        hosts: &["n1", "n2"],
    },
    Case {
        name: "include-match-state-is-restored",
        config: "Host r1\n  Include state.conf\n  User afterinclude\n",
        files: &[(".ssh/state.conf", "Host nomatch\n  Port 1\n")],
        hosts: &["r1"],
    },
    Case {
        name: "include-missing-is-fine",
        config: "Include nothing-here/*.conf /root/none.conf\nHost *\n  User still\n",
        files: &[],
        hosts: &["x"],
    },
    Case {
        name: "tokens-in-known-hosts",
        config: "Host tk\n  HostName tk.example.com\n  Port 2022\n  User tuser\n  UserKnownHostsFile ~/kh/%h_%p_%r_%n %d/%u/%i/%l/%L ~/c/%C ~/pct/%%h\n",
        files: &[],
        hosts: &["tk"],
    },
    Case {
        name: "tokens-raw-in-identity-and-certificate",
        config: "Host ti\n  IdentityFile ~/.ssh/id_%h_%r\n  IdentityFile %d/keys/%n\n  CertificateFile ~/.ssh/cert-%h\n",
        files: &[],
        hosts: &["ti"],
    },
    Case {
        name: "environment-variables",
        config: "Host ev\n  UserKnownHostsFile ${HOME}/kh-${SHELL}\n  IdentityAgent ${HOME}/agent\n",
        files: &[],
        hosts: &["ev"],
    },
    Case {
        name: "hostkeyalias-and-k",
        config: "Host ka\n  HostName 10.1.1.1\n  HostKeyAlias Shared-Alias\n  UserKnownHostsFile ~/.ssh/kh.d/%k\nHost kb\n  UserKnownHostsFile ~/.ssh/kh.d/%k\n",
        files: &[],
        hosts: &["ka", "kb"],
    },
    Case {
        name: "identityfile-none",
        config: "Host in\n  IdentityFile none\nHost in2\n  IdentityFile none\n  IdentityFile ~/.ssh/real\n",
        files: &[],
        hosts: &["in", "in2"],
    },
    Case {
        name: "identity-agent-forms",
        config: "Host ia1\n  IdentityAgent none\nHost ia2\n  IdentityAgent SSH_AUTH_SOCK\nHost ia3\n  IdentityAgent ~/agents/%h.sock\nHost ia4\n  IdentityAgent $SSH_AUTH_SOCK\n",
        files: &[],
        hosts: &["ia1", "ia2", "ia3", "ia4"],
    },
    Case {
        name: "forward-agent-forms",
        config: "Host fa1\n  ForwardAgent yes\nHost fa2\n  ForwardAgent ~/fwd-%h.sock\nHost fa3\n  ForwardAgent $SSH_AUTH_SOCK\nHost fa4\n  ForwardAgent no\n  ForwardAgent yes\n",
        files: &[],
        hosts: &["fa1", "fa2", "fa3", "fa4"],
    },
    Case {
        name: "proxyjump-forms",
        config: "Host j1\n  ProxyJump bastion\nHost j2\n  ProxyJump ops@bastion:2222,inner\nHost j3\n  ProxyJump 10.0.0.1\nHost j4\n  ProxyJump ssh://u@jh:2200\nHost j5\n  ProxyJump a,b,c@10.0.0.9:23\n",
        files: &[],
        hosts: &["j1", "j2", "j3", "j4", "j5"],
    },
    // `%C` behind a jump host is the same as without one, as OpenSSH 9.2 computes it (9.6
    // adds the jump host): a known_hosts file named by it is the one ssh reads (stop 36
    // tester t17: another file, where accept-new recorded a key ssh would find changed).
    Case {
        name: "connection-hash-behind-a-jump-host",
        config: "Host c1 c2 c3
  HostName 10.0.0.5
  User deploy
  UserKnownHostsFile ~/kh-%C
  IdentityAgent ~/agent-%C
Host c2
  ProxyJump bastion
Host c3
  ProxyJump ops@b1:2222,b2
",
        files: &[],
        hosts: &["c1", "c2", "c3"],
    },
    Case {
        name: "proxycommand-raw",
        config: "Host pc1\n  ProxyCommand ssh -W %h:%p bastion # stays\nHost pc2\n  ProxyCommand=nc -X connect -x proxy:3128 %h %p\n",
        files: &[],
        hosts: &["pc1", "pc2"],
    },
    Case {
        name: "proxycommand-proxyjump-precedence",
        config: "Host p1\n  ProxyCommand nc %h %p\n  ProxyJump j\nHost p2\n  ProxyJump j\n  ProxyCommand nc %h %p\nHost p3\n  ProxyCommand none\n  ProxyJump j\nHost p4\n  ProxyJump none\n  ProxyCommand nc %h %p\nHost *\n  ProxyJump late\n",
        files: &[],
        hosts: &["p1", "p2", "p3", "p4", "p5"],
    },
    Case {
        name: "strict-host-key-checking-values",
        config: "Host s1\n  StrictHostKeyChecking yes\nHost s2\n  StrictHostKeyChecking no\nHost s3\n  StrictHostKeyChecking off\nHost s4\n  StrictHostKeyChecking ASK\nHost s5\n  StrictHostKeyChecking accept-new\nHost s6\n  StrictHostKeyChecking false\n",
        files: &[],
        hosts: &["s1", "s2", "s3", "s4", "s5", "s6", "s7"],
    },
    Case {
        name: "times-and-counts",
        config: "Host t1\n  ConnectTimeout 1m30s\n  ServerAliveInterval 15\n  ServerAliveCountMax 5\nHost t2\n  ConnectTimeout none\n  ServerAliveInterval none\nHost t2\n  ConnectTimeout 7\n  ServerAliveInterval 2h\nHost t3\n  ConnectTimeout 0\n",
        files: &[],
        hosts: &["t1", "t2", "t3"],
    },
    Case {
        name: "known-hosts-lists-and-none",
        config: "Host kh1\n  UserKnownHostsFile none\n  GlobalKnownHostsFile none\nHost kh2\n  UserKnownHostsFile /a /b ~/c\n  GlobalKnownHostsFile /g1 ~/g2\nHost *\n  UserKnownHostsFile /late\n",
        files: &[],
        hosts: &["kh1", "kh2", "kh3"],
    },
    Case {
        name: "target-user-and-port",
        config: "Host web1\n  User cfguser\n  Port 2000\n",
        files: &[],
        hosts: &["deploy@web1:2200|-l deploy -p 2200 web1", "web1:2201|-p 2201 web1", "ops@web1|ops@web1"],
    },
    Case {
        name: "hostname-tokens",
        config: "Host h1\n  HostName %h.example.com\nHost h2\n  HostName 100%%.%h\nHost h3\n  HostName %h\n",
        files: &[],
        hosts: &["h1", "h2", "h3"],
    },
    Case {
        name: "addresses-take-numeric-form",
        config: "Host v6\n  HostName 0:0::1\nHost v4\n  HostName 127.1\nHost up\n  HostName UPPER.example\n",
        files: &[],
        hosts: &["v6", "v4", "up", "::1", "127.000.000.001"],
    },
    Case {
        name: "ignore-unknown",
        config: "IgnoreUnknown UseKeychain,AddKeys*\nHost *\n  UseKeychain yes\n  User ignoring\n",
        files: &[],
        hosts: &["x"],
    },
    Case {
        name: "obsolete-and-ignored-keywords",
        config: "Host *\n  Protocol 2\n  Cipher blowfish\n  SendEnv LANG LC_*\n  LogLevel ERROR\n  ControlMaster auto\n  ControlPath ~/.ssh/cm-%C\n  ServerAliveInterval 30\n  HashKnownHosts yes\n  Compression yes\n  AddressFamily inet\n  BatchMode yes\n",
        files: &[],
        hosts: &["x"],
    },
    // Fresh-eyes finding: SetEnv and SendEnv were dropped. The first SetEnv line wins whole
    // (its first value of a name too); SendEnv patterns add up, `-PATTERN` removes the earlier
    // ones it matches, and a second pass (`Match final`) reads them again, as ssh 9.2 does.
    Case {
        name: "set-env-and-send-env",
        config: "Host e*\n  SetEnv FOO=bar \"SP=a b  c\" FOO=x E=\n  SendEnv LANG LC_* L*\nHost *\n  SetEnv Z=1\n  SendEnv X -LC_* Y\n  SendEnv -Y\nHost final\n  SendEnv A\nMatch final host final\n  SendEnv B -A\n",
        files: &[],
        hosts: &["e1", "other", "final"],
    },
    Case {
        name: "connection-attempts-and-keepalive",
        config: "Host ca\n  ConnectionAttempts 3\n  TCPKeepAlive no\n  KeepAlive yes\n",
        files: &[],
        hosts: &["ca"],
    },
];

/// Configs both must refuse (ssh exits 255, tether 2).
const BAD: &[(&str, &str)] = &[
    ("bad-port", "Host x\n  Port 0\n"),
    ("unknown-keyword", "Host x\n  Frobnicate yes\n"),
    ("unknown-match-criterion", "Match frob x\n  User y\n"),
    ("match-all-combined", "Match host a user b all\n  User y\n"),
    // `=` ends a word inside an argument too: `x` is then an attribute.
    (
        "match-equals-inside-argument",
        "Match host q,=x\n  User y\n",
    ),
    ("match-equals-without-argument", "Match host =\n  User y\n"),
    (
        "match-quoted-attribute-equals",
        "Match \"host=x\"\n  User y\n",
    ),
    ("unterminated-quote", "Host x\n  User \"open\n"),
    ("no-argument", "Host x\n  User\n"),
    ("bad-time", "Host x\n  ConnectTimeout 5q\n"),
    ("bad-flag", "Host x\n  IdentitiesOnly maybe\n"),
    ("bad-proxyjump", "Host x\n  ProxyJump a,,b\n"),
    ("none-not-alone", "Host x\n  UserKnownHostsFile none /a\n"),
    ("extra-arguments", "Host x\n  HostName a b\n"),
    (
        "bad-value-in-other-block",
        "Host elsewhere\n  StrictHostKeyChecking sometimes\n",
    ),
    ("include-loop", "Include /root/cfg/include-loop\n"),
    // Fresh-eyes finding: forwarding specifications, PermitRemoteOpen and the other values of
    // keywords tether ignores were not checked as ssh checks them (tether connected).
    ("local-forward-port", "Host x\n  LocalForward 99999 x:1\n"),
    ("local-forward-port-0", "Host x\n  LocalForward 0 x:1\n"),
    ("remote-forward-word", "Host x\n  RemoteForward bad\n"),
    (
        "remote-forward-token-port",
        "Host x\n  RemoteForward 1234 localhost:%Z\n",
    ),
    ("remote-forward-too-many", "Host x\n  RemoteForward 1 2\n"),
    ("dynamic-forward-word", "Host x\n  DynamicForward abc\n"),
    ("dynamic-forward-target", "Host x\n  DynamicForward h:1:2\n"),
    (
        "forward-unset-variable",
        "Host x\n  LocalForward ${TETHER_UNSET_FWD} x:1\n",
    ),
    (
        "permit-remote-open-port",
        "Host x\n  PermitRemoteOpen bad\n",
    ),
    ("permit-remote-open-0", "Host x\n  PermitRemoteOpen h:0\n"),
    (
        "permit-remote-open-host",
        "Host x\n  PermitRemoteOpen h/22\n",
    ),
    (
        "permit-remote-open-any-not-alone",
        "Host x\n  PermitRemoteOpen any h:1\n",
    ),
    ("rekey-limit-too-small", "Host x\n  RekeyLimit 15\n"),
    ("ipqos-bare-hex", "Host x\n  IPQoS ff\n"),
    ("port-minus-zero", "Host x\n  Port -0\n"),
    ("proxyjump-first-word", "Host x\n  ProxyJump a,,b c\n"),
];

/// Fresh-eyes finding: values that `ssh -G` accepts, which tether refused (`Port +23328`,
/// `FingerprintHash sha1`, a mask followed by other characters), and forwarding and
/// PermitRemoteOpen values of each form ssh reads. Both resolve them alike.
#[test]
fn values_ssh_accepts_are_accepted() {
    let sb = Sandbox::new("accept");
    let mut failures = Vec::new();
    for (i, line) in [
        "Port +23328",
        "Port \" 23\"",
        "FingerprintHash sha1",
        "StreamLocalBindMask 0177abc",
        "NumberOfPasswordPrompts +3",
        "ServerAliveCountMax +2",
        "IPQoS 0x1f 010",
        "RekeyLimit 1.5K",
        "PermitRemoteOpen :22 [::1]:ssh h:*",
        "PermitRemoteOpen Any",
        "LocalForward +1 h:2",
        "LocalForward [1]:2 h:3",
        "LocalForward /a /b",
        "LocalForward 1 /x",
        "RemoteForward 0 x:1",
        "RemoteForward 0",
        "RemoteForward 1 [::1]:3",
        "DynamicForward [::1]:1",
        "ControlPath none",
        "ControlPath ~/.ssh/cm-%C-%h-%p-%r-%n-%k-%l-%L-%u-%i-%d",
        "LocalCommand echo %T %h %%Z",
        "SessionType default",
        "RequestTTY auto",
        "ProxyJump none,host2",
    ]
    .iter()
    .enumerate()
    {
        let config = sb.write(
            &format!("cfg/accept-{i}"),
            &format!("Host x\n  HostName 127.0.0.1\n  {line}\n"),
        );
        if let Err(e) = compare(&sb, &config, "x") {
            failures.push(format!("{line}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fresh-eyes finding: ssh expands ControlPath (tilde, tokens, `${VAR}`) and the socket paths
/// of forwardings for every connection and fails on a token or variable that does not
/// expand; tether connected. Such a host is now refused, naming the keyword and its line, as
/// is one whose LocalCommand ssh cannot expand (it fails after logging in), one with a
/// SessionType other than `default` (ssh would run no command, or a subsystem) and one that
/// asks for a terminal ssh would allocate (`RequestTTY force`). Other hosts resolve.
#[test]
fn values_ssh_fails_on_for_a_host_refuse_that_host() {
    let sb = Sandbox::new("perhost");
    let mut failures = Vec::new();
    for (i, (line, ssh_g_fails)) in [
        ("ControlPath /tmp/cp-%T", true),
        ("ControlPath /tmp/${TETHER_UNSET_CP}/cp", true),
        ("LocalForward /tmp/%Z.sock x:1", true),
        ("RemoteForward 1 /tmp/%Z", true),
        ("LocalCommand echo %Z", false),
        ("SessionType none", false),
        ("SessionType subsystem", false),
        ("RequestTTY force", false),
        ("ProxyJump host2 host3", false),
        ("ProxyJump \"\"", false),
    ]
    .iter()
    .enumerate()
    {
        let keyword = line.split(' ').next().unwrap_or_default();
        let config = sb.write(
            &format!("cfg/perhost-{i}"),
            &format!("Host x\n  HostName 127.0.0.1\n  {line}\nHost y\n  User why\n"),
        );
        let ssh = sb.run("ssh", &["-G", "-F", &config, "x"]);
        if (ssh.status != 0) != *ssh_g_fails {
            failures.push(format!(
                "{line}: ssh -G exit {}: {}",
                ssh.status, ssh.stderr
            ));
        }
        let tether = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
        let at = format!("{config}:3: {keyword}");
        if tether.status != 2 || !tether.stderr.contains(&at) {
            failures.push(format!(
                "{line}: tether exit {} (want 2 naming `{at}`): {}{}",
                tether.status, tether.stdout, tether.stderr
            ));
        }
        let other = sb.tether(&["-F", &config, "hosts", "-G", "y"]);
        if other.status != 0 {
            failures.push(format!("{line}: host y refused: {}", other.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Fresh-eyes finding: `ProxyJump none,host2` is `ssh -J none host2 -W ...`: host2 is reached
/// directly and the host through it. tether took `none` for a host name and failed
/// resolving it.
#[test]
fn a_jump_list_starting_with_none_reaches_its_next_hop_directly() {
    let sb = Sandbox::new("jumpnone");
    let config = sb.write(
        "cfg/jumpnone",
        "Host x\n  HostName 127.0.0.1\n  ProxyJump none,host2\nHost host2\n  HostName 127.0.0.2\n  \
         ProxyJump elsewhere\n",
    );
    let out = sb.tether(&["-F", &config, "hosts", "x"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("via host2"), "{}", out.stdout);
    assert!(!out.stdout.contains("none"), "{}", out.stdout);
    assert!(!out.stdout.contains("elsewhere"), "{}", out.stdout);
}

fn split_host(query: &str) -> (Vec<&str>, Vec<&str>) {
    match query.split_once('|') {
        Some((ours, theirs)) => (vec![ours], theirs.split(' ').collect()),
        None => (vec![query], vec![query]),
    }
}

fn compare(sb: &Sandbox, config: &str, query: &str) -> Result<(), String> {
    let (ours, theirs) = split_host(query);
    let mut ssh_args = vec!["-G", "-F", config];
    ssh_args.extend(theirs);
    let ssh = sb.run("ssh", &ssh_args);
    let mut tether_args = vec!["-F", config, "hosts", "-G"];
    tether_args.extend(ours);
    let tether = sb.tether(&tether_args);
    if ssh.status != 0 {
        return Err(format!("ssh -G failed: {}", ssh.stderr));
    }
    if tether.status != 0 {
        return Err(format!(
            "tether failed ({}): {}",
            tether.status, tether.stderr
        ));
    }
    let (want, got) = (keyword_lines(&ssh.stdout), keyword_lines(&tether.stdout));
    // ssh -G prints every one of the compared keywords but the optional ones.
    assert!(
        want.len() >= 20,
        "ssh -G printed too little:\n{}",
        ssh.stdout
    );
    if want == got {
        return Ok(());
    }
    let mut diff = String::new();
    for line in &want {
        if !got.contains(line) {
            diff.push_str(&format!("\n    ssh:    {line}"));
        }
    }
    for line in &got {
        if !want.contains(line) {
            diff.push_str(&format!("\n    tether: {line}"));
        }
    }
    if diff.is_empty() {
        diff = format!("\n    order differs:\n{want:#?}\n{got:#?}");
    }
    Err(diff)
}

#[test]
fn every_config_resolves_as_ssh_g_does() {
    let sb = Sandbox::new("diff");
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in CASES {
        for (rel, text) in case.files {
            sb.write(rel, text);
        }
        let config = sb.write(&format!("cfg/{}", case.name), case.config);
        for host in case.hosts {
            compared += 1;
            if let Err(e) = compare(&sb, &config, host) {
                failures.push(format!("{} [{host}]:{e}", case.name));
            }
        }
        // Each case's included files are its own.
        for (rel, _) in case.files {
            let _ = std::fs::remove_file(sb.home().join(rel));
        }
    }
    eprintln!(
        "{} configs, {compared} hosts compared with ssh -G, {} differ",
        CASES.len(),
        failures.len()
    );
    assert!(CASES.len() >= 40);
    assert!(
        failures.is_empty(),
        "differs from ssh -G:\n{}",
        failures.join("\n")
    );
}

#[test]
fn configs_ssh_refuses_are_refused_for_every_host() {
    let sb = Sandbox::new("bad");
    let mut failures = Vec::new();
    for (name, text) in BAD {
        let config = sb.write(&format!("cfg/{name}"), text);
        let ssh = sb.run("ssh", &["-G", "-F", &config, "x"]);
        let tether = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
        if ssh.status == 0 {
            failures.push(format!("{name}: ssh accepted it"));
        }
        if tether.status != 2 || !tether.stderr.contains(&config) {
            failures.push(format!(
                "{name}: tether exit {} (want 2 naming {config}): {}",
                tether.status, tether.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Regression (issue 11): a file given with -F that includes `config.d/*.conf` reads it from
/// ~/.ssh, as ssh does, not from beside the file.
#[test]
fn relative_include_of_an_f_file_is_read_from_dot_ssh() {
    let sb = Sandbox::new("inc");
    sb.write(
        ".ssh/config.d/web.conf",
        "Host web1\n  HostName from-dot-ssh.example\n",
    );
    sb.write(
        "elsewhere/config.d/web.conf",
        "Host web1\n  HostName from-beside.example\n",
    );
    let config = sb.write("elsewhere/config", "Include config.d/*.conf\n");
    compare(&sb, &config, "web1").unwrap();
    let out = sb.tether(&["-F", &config, "hosts", "-G", "web1"]);
    assert!(
        out.stdout.contains("hostname from-dot-ssh.example"),
        "{}",
        out.stdout
    );
}

/// Regression (issue 11): without -F, ssh also reads /etc/ssh/ssh_config (and its relative
/// Includes, from /etc/ssh) after the user's file.
#[test]
fn system_config_is_read_after_the_user_config() {
    let mut sb = Sandbox::new("sys");
    sb.write(".ssh/config", "Host web1\n  User fromuser\n");
    sb.etc_ssh(
        "Include ssh_config.d/*.conf\nHost *\n  User fromsystem\n  Port 2022\n",
        &[(
            "ssh_config.d/10-db.conf",
            "Host db1\n  HostName db.example.com\n  StrictHostKeyChecking accept-new\n",
        )],
    );
    for host in ["web1", "db1"] {
        let ssh = sb.run("ssh", &["-G", host]);
        let ours = sb.tether(&["hosts", "-G", host]);
        assert_eq!(ssh.status, 0, "{}", ssh.stderr);
        assert_eq!(ours.status, 0, "{}", ours.stderr);
        assert_eq!(
            keyword_lines(&ours.stdout),
            keyword_lines(&ssh.stdout),
            "{host}"
        );
    }
    let ours = sb.tether(&["hosts", "-G", "web1"]);
    assert!(ours.stdout.contains("user fromuser\n"), "{}", ours.stdout);
    assert!(ours.stdout.contains("port 2022\n"), "{}", ours.stdout);
    // -F replaces both files.
    let only = sb.write("only", "Host *\n  Port 2999\n");
    let ours = sb.tether(&["-F", &only, "hosts", "-G", "web1"]);
    assert!(ours.stdout.contains("port 2999\n") && ours.stdout.contains("user root\n"));
}

/// Canonicalization through the resolver (`/etc/hosts` of the sandbox): domains, max dots,
/// CNAME rules, `always` behind a ProxyJump, and the final pass that follows.
#[test]
fn canonicalized_names_match_ssh() {
    let mut sb = Sandbox::new("canon");
    // ssh looks up `name.domain.` (anchored): glibc's files backend matches the dotted names.
    sb.hosts(
        "192.0.2.10 web1.corp.test. web1.corp.test\n192.0.2.11 db.two.test. db.two.test\n\
         192.0.2.12 real.corp.test. alias.corp.test. real.corp.test alias.corp.test\n",
    );
    let config = sb.write(
        "cfg/canon",
        "CanonicalizeHostname yes\nCanonicalDomains one.test corp.test two.test\n\
         CanonicalizePermittedCNAMEs *.corp.test:*.corp.test\n\
         Host *.corp.test\n  User corp\nHost db.two.test\n  Port 2202\n\
         Host jumped\n  ProxyJump bastion\n  CanonicalizeHostname always\n\
         Match canonical host real.corp.test\n  Port 2301\n",
    );
    for host in ["web1", "db", "alias", "web1.corp.test", "jumped"] {
        compare(&sb, &config, host).unwrap_or_else(|e| panic!("{host}:{e}"));
    }
    // CNAME rules make ssh look up every direct host: a name that resolves nowhere (more
    // dots than CanonicalizeMaxDots, or in no domain) fails that host.
    for host in ["a.b.c", "nothere"] {
        let ssh = sb.run("ssh", &["-G", "-F", &config, host]);
        let ours = sb.tether(&["-F", &config, "hosts", "-G", host]);
        assert_ne!(ssh.status, 0, "{host}");
        assert_eq!(ours.status, 3, "{host}: {}", ours.stderr);
        assert!(
            ours.stderr
                .contains(&format!("could not resolve host name `{host}`")),
            "{}",
            ours.stderr
        );
    }
    let strict = sb.write(
        "cfg/strict",
        "CanonicalizeHostname yes\nCanonicalDomains one.test\nCanonicalizeFallbackLocal no\n",
    );
    let ssh = sb.run("ssh", &["-G", "-F", &strict, "nothere"]);
    let ours = sb.tether(&["-F", &strict, "hosts", "-G", "nothere"]);
    assert_ne!(ssh.status, 0);
    // The name resolves nowhere: unreachable (3), not a refused setting (2).
    assert_eq!(ours.status, 3, "{}", ours.stderr);
    assert!(
        ours.stderr.contains("CanonicalizeFallbackLocal"),
        "{}",
        ours.stderr
    );
}

/// Regression (issue 11): `Match host=web1`, `Match !host web2`, `Match host web1 !user x`,
/// `Match final`, `Match canonical` are understood, and a block that refuses something for
/// one host fails that host only.
#[test]
fn a_refused_block_fails_only_its_host() {
    let sb = Sandbox::new("refuse");
    let config = sb.write(
        "cfg/refuse",
        "Match host=web1\n  PKCS11Provider /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so\n\
         Match !host web2 !host web1\n  User notweb2\nMatch host web3 !user x final\n  Port 2003\n\
         Match canonical\n  IdentitiesOnly yes\n",
    );
    let out = sb.tether(&["-F", &config, "hosts", "web1", "web2", "web3"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    let line = |host: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no row for {host}:\n{}", out.stdout))
            .to_string()
    };
    assert!(
        line("web1").contains(&format!(
            "refused: ssh config {config}:2: PKCS11Provider \
             /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so is refused"
        )),
        "{}",
        out.stdout
    );
    assert!(line("web2").contains("root@web2:22"), "{}", out.stdout);
    assert!(line("web3").contains("notweb2@web3:2003"), "{}", out.stdout);
    assert!(out.stderr.contains("1 of 3 hosts failed"), "{}", out.stderr);
    compare(&sb, &config, "web2").unwrap();
    compare(&sb, &config, "web3").unwrap();

    // A dry run refuses what a run would, connecting to nothing: the plan of the others, a
    // warning naming the host, exit 2. A route that loops is refused as well.
    let looping = sb.write(
        "cfg/refuse-loop",
        &format!("Include {config}\nHost web4\n  ProxyJump web4\n"),
    );
    let out = sb.tether(&[
        "-F",
        &looping,
        "-n",
        "run",
        "--hosts",
        "web1,web2,web4",
        "--",
        "uptime",
    ]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("PKCS11Provider"), "{all}");
    assert!(all.contains("ProxyJump loop"), "{all}");
    assert!(all.contains("(a run would not reach this host)"), "{all}");
    assert!(out.stdout.contains("web2 | $ uptime"), "{all}");
    // Nothing is planned on a host the run would not reach (stop 62 tester t102).
    for host in ["web1", "web4"] {
        assert!(!out.stdout.contains(&format!("{host} | $")), "{all}");
    }
    // Nor read by a dry run of `check`, which fails as the check would (it planned all three
    // and exited 0 where the check exits 2).
    let out = sb.tether(&["-F", &looping, "-n", "check", "--hosts", "web1,web2,web4"]);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.status, 2, "{all}");
    assert!(
        out.stdout.contains("web2 | $ read the sshd settings"),
        "{all}"
    );
    for host in ["web1", "web4"] {
        assert!(!out.stdout.contains(&format!("{host} | $")), "{all}");
    }
    // In the check's words (stop 63 tester t105: "2 of 3 hosts failed").
    assert!(
        out.stderr
            .contains("2 of 3 hosts cannot be tried: a configuration error (web[1,4])"),
        "{all}"
    );
    let recipe = sb.write(
        "app/deploy.rhai",
        "server(\"web1\", #{ roles: [\"web\"] });\nserver(\"web2\", #{ roles: [\"web\"] });\n\
         task(\"t\", || { on(\"web\", \"uptime\"); });\n",
    );
    let out = sb.tether(&["-F", &config, "-f", &recipe, "-n", "t"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("web2 | $ uptime"), "{}", out.stdout);
    // The dry run fails where the run would, at the step's line, and plans nothing on the
    // host; a recipe that catches the failure goes on, as it would in the run (stop 62 tester
    // t102: the plan listed `web1 | $ uptime` and the error had no line).
    assert!(!out.stdout.contains("web1 | $"), "{}", out.stdout);
    assert!(
        out.stderr.contains("deploy.rhai:3:16, in task `t`)"),
        "{}",
        out.stderr
    );
    let caught = sb.write(
        "app/caught.rhai",
        "server(\"web1\", #{ roles: [\"web\"] });\nserver(\"web2\", #{ roles: [\"db\"] });\n\
         task(\"t\", || {\n  try { on(\"web\", \"uptime\"); } catch (e) { print(`caught ${e.kind} ${e.hosts}`); }\n\
           on(\"db\", |h| { run(\"echo after\"); upload(\"caught.rhai\", \"/tmp/c\"); });\n\
           on(\"web\", |h| { upload(\"caught.rhai\", \"/tmp/c\"); });\n});\n",
    );
    let out = sb.tether(&["-F", &config, "-f", &caught, "-n", "t"]);
    assert_eq!(out.status, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("caught config [\"web1\"]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("web2 | $ echo after"), "{}", out.stdout);
    assert!(
        out.stdout.contains("web2 | upload caught.rhai -> /tmp/c"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("web1 |"), "{}", out.stdout);
    assert!(
        out.stderr.contains("caught.rhai:6:17, in task `t`)"),
        "{}",
        out.stderr
    );
    let out = sb.tether(&["-F", &config, "-f", &recipe, "-n", "--hosts", "web2", "t"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
}

/// `tether hosts` with JSON output, and its exit code with an Include loop (exit 2, naming
/// the files) and with an unreadable included file (as a user that cannot read it).
#[test]
fn hosts_json_and_include_errors() {
    let sb = Sandbox::new("json");
    let config = sb.write(
        "cfg/json",
        "Host web1\n  HostName 10.0.0.5\n  User deploy\n  ProxyJump bastion\n  HostKeyAlias web\n",
    );
    let out = sb.tether(&["-F", &config, "--format", "json", "hosts", "web1"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!(
            r#"{{"type":"host","host":"web1","roles":[],"hostname":"10.0.0.5","port":22,"user":"deploy","route":{{"kind":"jump","hosts":"bastion","hops":[{{"host":"bastion","address":"root@bastion:22"}}]}},"identity_files":["{HOME}/.ssh/id_rsa","{HOME}/.ssh/id_ecdsa","{HOME}/.ssh/id_ecdsa_sk","{HOME}/.ssh/id_ed25519","{HOME}/.ssh/id_ed25519_sk","{HOME}/.ssh/id_xmss","{HOME}/.ssh/id_dsa"],"identities_only":false,"certificate_files":[],"user_known_hosts":["{HOME}/.ssh/known_hosts","{HOME}/.ssh/known_hosts2"],"global_known_hosts":["/etc/ssh/ssh_known_hosts","/etc/ssh/ssh_known_hosts2"],"strict_host_key_checking":"yes","host_key_alias":"web","known_hosts_name":"web"}}"#
        )
    );

    let a = sb.write("loop/a", "Include /root/loop/b\n");
    sb.write("loop/b", "Host x\n  Include /root/loop/a\n");
    let out = sb.tether(&["-F", &a, "hosts", "-G", "x"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("/root/loop/b:2: Include loop: /root/loop/a -> /root/loop/b -> /root/loop/a"),
        "{}",
        out.stderr
    );

    // As root every file is readable: the unreadable case runs tether as nobody.
    let dir = sb.path().join("home/unreadable");
    std::fs::create_dir_all(&dir).unwrap();
    let main = dir.join("config");
    std::fs::write(&main, format!("Include {}/secret.conf\n", dir.display())).unwrap();
    std::fs::write(dir.join("secret.conf"), "Host *\n  User hidden\n").unwrap();
    let chmod = |path: &std::path::Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(sb.path(), 0o755);
    chmod(&sb.path().join("home"), 0o755);
    chmod(&dir, 0o755);
    chmod(&dir.join("secret.conf"), 0o000);
    let as_nobody = |program: &str, args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", program])
            .args(args)
            .env("HOME", sb.path())
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap()
    };
    let main_s = main.to_str().unwrap();
    let ssh = as_nobody("ssh", &["-G", "-F", main_s, "x"]);
    assert_ne!(ssh.status.code(), Some(0));
    let out = as_nobody(
        env!("CARGO_BIN_EXE_tether"),
        &["-F", main_s, "hosts", "-G", "x"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{main_s}:1: cannot read included file {}/secret.conf: Permission denied",
            dir.display()
        )),
        "{stderr}"
    );
}

/// `tether hosts` for a recipe: every server (of a stage, of some roles) with its roles.
#[test]
fn hosts_lists_a_recipes_servers_with_their_roles() {
    let sb = Sandbox::new("recipe");
    sb.write(
        ".ssh/config",
        "Host web*\n  HostName %h.example.com\n  User deploy\n  ProxyJump bastion\n\
         Host db1\n  ProxyCommand ssh -W %h:%p bastion\n  IdentityFile ~/.ssh/db\n",
    );
    sb.write(
        "app/deploy.rhai",
        "server(\"web1\", #{ roles: [\"web\", \"app\"] });\nserver(\"db1\", #{ roles: [\"db\"] });\n\
         server(\"ops@10.0.0.9:2222\", #{ roles: [\"app\"], via: \"none\" });\n",
    );
    let out = sb.tether(&["-f", "/root/app/deploy.rhai", "hosts"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let want = "\
HOST               ROLES    ADDRESS                     ROUTE                          HOST KEYS                                   IDENTITIES
web1               web,app  deploy@web1.example.com:22  via bastion                    yes ~/.ssh/known_hosts,~/.ssh/known_hosts2  default
db1                db       root@db1:22                 proxy `ssh -W db1:22 bastion`  yes ~/.ssh/known_hosts,~/.ssh/known_hosts2  ~/.ssh/db
ops@10.0.0.9:2222  app      ops@10.0.0.9:2222           direct                         yes ~/.ssh/known_hosts,~/.ssh/known_hosts2  default
";
    assert_eq!(out.stdout, want);
    let out = sb.tether(&[
        "-f",
        "/root/app/deploy.rhai",
        "--roles",
        "db",
        "hosts",
        "-G",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("host db1\nuser root\nhostname db1\nport 22\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\nproxycommand ssh -W %h:%p bastion\n"),
        "{}",
        out.stdout
    );
}

/// A sample of constructs used for real: `ssh` and `tether run` are given the same config and
/// the same name; the login must appear in the log of the same lab host, and only there.
/// A `Host *` block that reaches the lab's hosts (at 127.0.0.1, as root, with the lab's key and
/// known_hosts), after a test's own blocks that set each name's port.
fn lab_defaults(lab: &Lab) -> String {
    format!(
        "Host *\n  HostName 127.0.0.1\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
         UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n",
        key = lab.client_key().display(),
        kh = lab.known_hosts().display()
    )
}

#[test]
fn tether_logs_in_where_ssh_logs_in() {
    let lab = Lab::builder().names(&["alpha", "beta", "gamma"]).start();
    let port = |n: &str| lab.host(n).port;
    let base = lab_defaults(&lab);
    let dir = lab.dir().join("sample");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/target.conf"),
        format!("Host via-include\n  Port {}\n", port("gamma")),
    )
    .unwrap();
    // (config, host name, lab host that must get the login)
    let samples = [
        (
            format!("Match host=t1\n  Port {}\n", port("beta")),
            "t1",
            "beta",
        ),
        (
            format!(
                "Match !host other\n  Port {}\nHost *\n  Port {}\n",
                port("alpha"),
                port("gamma")
            ),
            "t2",
            "alpha",
        ),
        (
            format!(
                "Match exec \"test %n = t3\"\n  Port {}\nHost *\n  Port {}\n",
                port("gamma"),
                port("alpha")
            ),
            "t3",
            "gamma",
        ),
        (
            format!(
                "Host t4\n  HostName 127.000.000.001\nMatch final host 127.0.0.1\n  Port {}\n",
                port("beta")
            ),
            "t4",
            "beta",
        ),
        (
            format!(
                "Include {}/conf.d/*.conf\nHost *\n  Port {}\n",
                dir.display(),
                port("alpha")
            ),
            "via-include",
            "gamma",
        ),
        (
            format!(
                "Host T6\n  Port {}\nHost t6\n  Port {}\n",
                port("alpha"),
                port("beta")
            ),
            "t6",
            "beta",
        ),
    ];
    for (i, (config, host, expect)) in samples.iter().enumerate() {
        let path = dir.join(format!("cfg{i}"));
        std::fs::write(&path, format!("{config}{base}")).unwrap();
        let before: Vec<usize> = ["alpha", "beta", "gamma"]
            .iter()
            .map(|n| lab.accepted_logins(n))
            .collect();
        let ssh = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&path)
            .args(["-o", "BatchMode=yes", host, "true"])
            .output()
            .unwrap();
        assert!(
            ssh.status.success(),
            "ssh {host}: {}",
            String::from_utf8_lossy(&ssh.stderr)
        );
        Tether::new()
            .ssh_config(&path)
            .args(&["run", "--hosts", host, "--", "true"])
            .run()
            .status(0);
        for (n, name) in ["alpha", "beta", "gamma"].iter().enumerate() {
            let logins = lab.accepted_logins(name) - before[n];
            let want = if name == expect { 2 } else { 0 };
            assert_eq!(
                logins, want,
                "sample {i} ({host}): {name} got {logins} logins"
            );
        }
    }
}

/// A jump host is reached as `ssh -W` reaches it: its `RequestTTY`, `RemoteCommand` and
/// `SessionType` lines change nothing there (ssh -W's command line sets them), so they fail
/// neither it nor the hosts behind it, where ssh connects (stop 41 tester t38: a bastion's
/// `RequestTTY force` failed every host behind it with a config error); its `Match
/// sessiontype` is `none`. Named as a target itself, the same lines are still refused.
#[test]
fn a_jump_hosts_session_lines_are_ssh_ws_not_refused() {
    let lab = Lab::builder().names(&["alpha", "beta"]).start();
    let port = |n: &str| lab.host(n).port;
    let base = lab_defaults(&lab);
    let dir = lab.dir().join("hop-lines");
    std::fs::create_dir_all(&dir).unwrap();
    let lines = [
        "RequestTTY force",
        "RequestTTY yes",
        "RemoteCommand echo hi",
        "SessionType none",
        "SessionType subsystem",
        "Tunnel yes",
        "Tunnel point-to-point",
    ];
    for (i, line) in lines.iter().enumerate() {
        let path = dir.join(format!("cfg{i}"));
        std::fs::write(
            &path,
            format!(
                "Host hop\n  Port {}\n  {line}\nHost t\n  Port {}\n  ProxyJump hop\n{base}",
                port("alpha"),
                port("beta")
            ),
        )
        .unwrap();
        let before = (lab.accepted_logins("alpha"), lab.accepted_logins("beta"));
        let ssh = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&path)
            .args(["-o", "BatchMode=yes", "t", "true"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            ssh.status.success(),
            "ssh t ({line}): {}",
            String::from_utf8_lossy(&ssh.stderr)
        );
        Tether::new()
            .ssh_config(&path)
            .args(&["run", "--hosts", "t", "--", "true"])
            .run()
            .status(0);
        assert_eq!(
            (lab.accepted_logins("alpha"), lab.accepted_logins("beta")),
            (before.0 + 2, before.1 + 2),
            "{line}: ssh and tether each log in to the hop and the target once"
        );
        if *line != "RequestTTY yes" {
            Tether::new()
                .ssh_config(&path)
                .args(&["run", "--hosts", "hop", "--", "true"])
                .run()
                .status(2)
                .stdout_contains(&format!("{line} is refused"));
        }
    }
    // `Match sessiontype` (OpenSSH 10; not in the ssh of this machine): `none` for a hop.
    let path = dir.join("sessiontype");
    std::fs::write(
        &path,
        format!(
            "Match originalhost hop sessiontype exec\n  Port 1\nHost hop\n  Port {}\nHost t\n  \
             Port {}\n  ProxyJump hop\n{base}",
            port("alpha"),
            port("beta")
        ),
    )
    .unwrap();
    let before = lab.accepted_logins("alpha");
    Tether::new()
        .ssh_config(&path)
        .args(&["run", "--hosts", "t", "--", "true"])
        .run()
        .status(0);
    assert_eq!(lab.accepted_logins("alpha"), before + 1);
}

/// `-J` is ssh's command line: a malformed list is a usage error for the whole run.
#[test]
fn a_malformed_jump_list_on_the_command_line_is_a_usage_error() {
    Tether::new()
        .args(&[
            "-F", "none", "-J", "a,,b", "run", "--hosts", "x", "--", "true",
        ])
        .run()
        .status(2)
        .stderr_contains("x: empty jump host in `a,,b`");
}

/// `AddressFamily inet6` for a host with only an IPv4 address: refused by name, not connected.
#[test]
fn address_family_limits_the_addresses_tried() {
    let sb = Sandbox::new("af");
    let config = sb.write(
        "cfg/af",
        "Host v4only\n  HostName 127.0.0.1\n  AddressFamily inet6\n",
    );
    let out = sb.tether(&["-F", &config, "run", "--hosts", "v4only", "--", "true"]);
    assert_eq!(out.status, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("v4only: cannot resolve 127.0.0.1: it has no IPv6 address (AddressFamily)"),
        "{}",
        out.stdout
    );
}

/// A name is resolved in `AddressFamily`'s family, as ssh asks the resolver, not resolved in
/// any family and filtered: glibc answers an IPv4 lookup of a name /etc/hosts gives `::1`
/// with `127.0.0.1`, and ssh connects there (stop 41 tester t38: tether said the name had no
/// IPv4 address). Run in a mount namespace with /etc/hosts of the test's own, ssh beside it.
#[test]
fn address_family_asks_the_resolver_for_that_family() {
    let lab = Lab::builder().names(&["alpha"]).start();
    let dir = lab.dir().join("af-map");
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n::1 v6only.tether-test\n").unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "Host v\n  HostName v6only.tether-test\n  AddressFamily inet\n  Port {}\n  User root\n  \
             IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  HostKeyAlias \
             [127.0.0.1]:{}\n  StrictHostKeyChecking yes\n",
            lab.host("alpha").port,
            lab.client_key().display(),
            lab.known_hosts().display(),
            lab.host("alpha").port
        ),
    )
    .unwrap();
    let in_namespace = |program: &str, args: &[&str]| {
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"")
            .arg("sh")
            .arg(&hosts)
            .arg(program)
            .args(args)
            .env_remove("TETHER_SSH_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let config = config.to_str().unwrap();
    let before = lab.accepted_logins("alpha");
    let ssh = in_namespace("ssh", &["-F", config, "-o", "BatchMode=yes", "v", "true"]);
    assert!(
        ssh.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    let out = in_namespace(
        env!("CARGO_BIN_EXE_tether"),
        &["-F", config, "run", "--hosts", "v", "--", "true"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lab.accepted_logins("alpha"), before + 2);
}

/// Include globs expand as ssh's own glob(3) (openbsd-compat) expands them, checked with
/// `ssh -G` pattern by pattern: dotfiles only for a segment that starts with a literal `.`
/// (then `.` and `..` too), `**` as `*`, backslash escapes, `[!set]` and `[^set]` (where `^`
/// is literal), classes, a lone `[`, matches sorted by their whole path, a dangling link.
/// Each pattern is one config; the files say which of them were read and in what order.
#[test]
fn include_globs_match_what_ssh_matches() {
    let sb = Sandbox::new("globs");
    let files: &[(&str, &str)] = &[
        (".ssh/g/.dot", "Host x\n  User fromdot\n"),
        (".ssh/g/plain", "Host x\n  Port 2001\n"),
        (".ssh/g/sub/.deep", "Host x\n  HostName deepdot\n"),
        (".ssh/g/.hid/cfg", "Host x\n  HostName hiddendir\n"),
        (".ssh/g/a-b/cfg", "Host x\n  HostName ab\n"),
        (".ssh/g/a/cfg", "Host x\n  HostName a\n  User fromadir\n"),
        (".ssh/g/star*", "Host x\n  User literalstar\n"),
        (".ssh/g/br[1]", "Host x\n  User bracket\n"),
        (".ssh/g/[", "Host x\n  User openbracket\n"),
        (".ssh/g/^caret", "Host x\n  User caret\n"),
        (".ssh/g/q?", "Host x\n  User question\n"),
        (".ssh/g/9.conf", "Host x\n  ConnectTimeout 9\n"),
        (".ssh/g/10.conf", "Host x\n  ConnectTimeout 10\n"),
        (".ssh/g/B.conf", "Host x\n  ServerAliveInterval 66\n"),
        (".ssh/g/b.conf", "Host x\n  ServerAliveInterval 77\n"),
    ];
    for (rel, text) in files {
        sb.write(rel, text);
    }
    std::os::unix::fs::symlink("nowhere", sb.home().join(".ssh/g/dangling")).unwrap();
    let patterns = [
        "g/*",
        "g/.*",
        "g/?dot",
        "g/[.]dot",
        "g/\\.dot",
        "g/.d*",
        "g/*/cfg",
        "g/.h*/cfg",
        "g/**/cfg",
        "g/**",
        "g/a**",
        "g/sub/*",
        "g/sub/.*",
        "g/*/.deep",
        "g/star\\*",
        "g/br\\[1\\]",
        "g/[",
        "g/[!p]lain",
        "g/[^p]lain",
        "g/[^a]*",
        "g/[]^]*",
        "g/{plain,.dot}",
        "g/dangling",
        "g/[[:alpha:]]-b/cfg",
        "g/[[:digit:]]*.conf",
        "g/[[:upper:][:digit:]]*",
        "g/[[:bogus:]]*",
        "g/q\\?",
        "g/*.conf",
        "g/[a-c].conf",
        "g//plain",
        "g/./plain",
        "g/sub/../plain",
        "g/.?",
        "g/a\\",
        "~/.ssh/g/.dot",
        "~root/.ssh/g/plain",
        "~nosuchuser/.ssh/g/plain",
        "/root/.ssh/g/*/cfg",
    ];
    let mut failures = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let config = sb.write(&format!("cfg/glob{i}"), &format!("Include {pattern}\n"));
        if let Err(e) = compare(&sb, &config, "x") {
            failures.push(format!("Include {pattern}:{e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} patterns differ from ssh -G:\n{}",
        failures.len(),
        patterns.len(),
        failures.join("\n")
    );
}

/// An Include (or -F) of something that is not a regular file: ssh reads a directory as empty
/// (tether too, compared with ssh -G), but reads /dev/zero until memory runs out and blocks
/// on a FIFO nobody writes to; tether refuses those naming file:line and what the file is,
/// quickly and in little memory, and still reads a FIFO or pipe that delivers a config.
#[test]
fn includes_of_devices_fifos_and_directories() {
    let sb = Sandbox::new("nonreg");
    std::fs::create_dir_all(sb.home().join("dir.d")).unwrap();
    let fifo = sb.home().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let config = sb.write("cfg/dir", "Include /root/dir.d\nHost x\n  User after\n");
    compare(&sb, &config, "x").unwrap();
    let config = sb.write("cfg/dotdirs", "Include /root/dir.d/.*\n");
    compare(&sb, &config, "x").unwrap();

    for device in ["/dev/zero", "/dev/urandom"] {
        let config = sb.write("cfg/dev", &format!("Host x\n  User u\nInclude {device}\n"));
        let started = std::time::Instant::now();
        let out = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "{config}:3: cannot read included file {device}: it is a character device that \
                 gave more than 1 MiB without ending"
            )),
            "{}",
            out.stderr
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // -F too.
        let out = sb.tether(&["-F", device, "hosts", "-G", "x"]);
        assert_eq!(out.status, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("it is a character device"),
            "{}",
            out.stderr
        );
    }

    // ssh refuses /dev/null as an included file (mode 666), and so does tether; as -F it is
    // the usual "no config".
    let config = sb.write("cfg/null", "Include /dev/null\n");
    let ssh = sb.run("ssh", &["-G", "-F", &config, "x"]);
    assert_ne!(ssh.status, 0);
    let out = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("bad owner or permissions on /dev/null"),
        "{}",
        out.stderr
    );
    compare(&sb, "/dev/null", "x").unwrap();

    // A FIFO nobody writes to: refused after 10 s, naming it.
    let config = sb.write("cfg/fifo", "Host x\n  User u\nInclude /root/fifo\n");
    let started = std::time::Instant::now();
    let out = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{config}:3: cannot read included file /root/fifo: it is a FIFO or pipe that did \
             not reach its end within 10 s"
        )),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(14));

    // A FIFO that a writer fills is read, as ssh reads it.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            std::fs::write(&fifo, "Host x\n  User fromfifo\n").unwrap();
        })
    };
    let out = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
    writer.join().unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("user u\n"), "{}", out.stdout);
    let config = sb.write("cfg/fifo2", "Include /root/fifo\n");
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(&fifo, "Host x\n  User fromfifo\n").unwrap())
    };
    let out = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
    writer.join().unwrap();
    assert!(out.stdout.contains("user fromfifo\n"), "{}", out.stdout);

    // -F from a pipe (bash process substitution: /dev/fd/N).
    let tether = env!("CARGO_BIN_EXE_tether");
    let out = sb.run(
        "bash",
        &[
            "-c",
            &format!("{tether} -F <(printf 'Host x\\n  User frompipe\\n') hosts -G x"),
        ],
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("user frompipe\n"), "{}", out.stdout);
}

/// Algorithm lists are checked when read, as ssh checks them (for every host, also in a
/// block of another host): unknown names, wildcards where ssh takes exact names, an empty
/// list after `+`/`^`. What ssh refuses tether refuses (exit 2, naming file:line and the
/// keyword); what ssh accepts tether accepts.
#[test]
fn algorithm_lists_are_checked_as_ssh_checks_them() {
    let sb = Sandbox::new("algs");
    let specs = [
        "Ciphers frob",
        "Ciphers aes128-ctr,frob",
        "Ciphers aes*",
        "Ciphers +frob",
        "Ciphers +",
        "Ciphers ^",
        "Ciphers none",
        "Ciphers AES128-CTR",
        "Ciphers aes128-ctr aes256-ctr",
        "MACs frob",
        "MACs hmac*",
        "KexAlgorithms frob",
        "KexAlgorithms curve*",
        "HostKeyAlgorithms ssh-foo",
        "HostKeyAlgorithms foo*",
        "HostKeyAlgorithms ED25519-CERT",
        "PubkeyAcceptedAlgorithms foo",
        "PubkeyAcceptedKeyTypes foo",
        "CASignatureAlgorithms foo",
        "HostbasedAcceptedAlgorithms foo",
        // Accepted by ssh (and so by tether) when read:
        "Ciphers -frob",
        "Ciphers -",
        "Ciphers ^aes128-ctr",
        "Ciphers aes128-ctr,,frob",
        "Ciphers ,aes128-ctr",
        "Ciphers \"aes128-ctr\"",
        "MACs ,,",
        "KexAlgorithms -*",
        "HostKeyAlgorithms !ssh-rsa",
        "HostKeyAlgorithms rsa",
        "HostKeyAlgorithms Ed25519",
        "HostKeyAlgorithms ?sh-rsa",
        "HostKeyAlgorithms ssh-rsa,,foo",
        "HostKeyAlgorithms webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
        "CASignatureAlgorithms ssh-ed*",
        "PubkeyAcceptedAlgorithms +ssh-dss",
    ];
    let mut failures = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let config = sb.write(&format!("cfg/alg{i}"), &format!("Host other\n  {spec}\n"));
        let ssh = sb.run("ssh", &["-G", "-F", &config, "x"]);
        let ours = sb.tether(&["-F", &config, "hosts", "-G", "x"]);
        // An alias is named by the keyword it stands for.
        let keyword = match spec.split(' ').next().unwrap() {
            "PubkeyAcceptedKeyTypes" => "PubkeyAcceptedAlgorithms",
            k => k,
        };
        let ok = if ssh.status == 0 {
            ours.status == 0
        } else {
            ours.status == 2
                && ours.stderr.contains(&format!("{config}:2: "))
                && ours.stderr.contains(keyword)
        };
        if !ok {
            failures.push(format!(
                "{spec}: ssh exit {}, tether exit {}: {}",
                ssh.status, ours.status, ours.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A list ssh accepts but that leaves libssh2 nothing it can negotiate (a cipher or MAC
/// libssh2 lacks, `-*`, an empty list) fails its host as a configuration error before
/// anything connects, naming the host, file:line and the keyword; the other hosts run.
#[test]
fn an_algorithm_list_libssh2_cannot_use_fails_its_host_only() {
    let lab = Lab::start(4);
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let cfg = lab.dir().join("algorithms_config");
    std::fs::write(
        &cfg,
        format!(
            "Host host1\n  Ciphers 3des-cbc\nHost host2\n  MACs umac-64@openssh.com,hmac-md5\n\
             Host host3\n  KexAlgorithms -*\n{base}"
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let before = lab.accepted_logins("host4");
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&[
            "run",
            "--hosts",
            "host1,host2,host3,host4",
            "--",
            "echo ran",
        ])
        .run();
    assert_eq!(out.host_lines("host4", '|'), ["ran"], "{}", out.stdout);
    out.status(2)
        .stdout_contains(&format!(
            "host1: ssh config {cfg_s}:2: Ciphers 3des-cbc leaves no algorithm that libssh2 \
             supports (it supports: "
        ))
        .stdout_contains(&format!(
            "host2: ssh config {cfg_s}:4: MACs umac-64@openssh.com,hmac-md5 leaves no algorithm"
        ))
        .stdout_contains(&format!(
            "host3: ssh config {cfg_s}:6: KexAlgorithms -* leaves no algorithm"
        ))
        .stdout_contains("config error")
        .stderr_contains("3 of 4 hosts failed");
    assert_eq!(lab.accepted_logins("host4"), before + 1);
    // Nothing connected to the refused hosts: not a late handshake failure.
    for h in ["host1", "host2", "host3"] {
        let log = std::fs::read_to_string(&lab.host(h).log).unwrap();
        assert!(
            !log.contains("Connection from"),
            "{h} was connected to:\n{log}"
        );
    }
    // tether hosts says it too, connecting to nothing.
    let out = Tether::new()
        .ssh_config(&cfg)
        .args(&["hosts", "host1", "host4"])
        .run();
    out.status(2)
        .stdout_contains("Ciphers 3des-cbc leaves no algorithm");
}

/// `ssh://[user@]host[:port]` destinations resolve as ssh resolves them (user `;params`
/// ignored, `%XX` and `+` decoded, a trailing `/`, a bracketed address, a final dot), and
/// what ssh refuses is refused (a path, an empty user, port 0, a bad name). ssh refuses an
/// IPv6 address in a URI; tether takes `ssh://[::1]:2201` as `ssh -p 2201 ::1`.
#[test]
fn ssh_uri_destinations_resolve_as_ssh_resolves_them() {
    let sb = Sandbox::new("uri");
    let config = sb.write(
        "cfg/uri",
        "Host h\n  User fromcfg\n  Port 2000\nHost ::1\n  User v6\nHost 10.0.0.1\n  User v4\n",
    );
    let mut failures = Vec::new();
    for query in [
        "ssh://u@h:2200",
        "ssh://h",
        "ssh://h/",
        "ssh://h:",
        "ssh://h:22/",
        "ssh://u;fingerprint=SHA256-x@h",
        "ssh://us%65r@h",
        "ssh://a+b@h",
        "ssh://h.",
        "ssh://H",
        "ssh://[h]",
        "ssh://[10.0.0.1]:2222",
        "ssh://web_1.example.com",
        "ssh://[::1]:2201|-p 2201 ::1",
        "ssh://u@[::1]|-l u ::1",
    ] {
        if let Err(e) = compare(&sb, &config, query) {
            failures.push(format!("{query}:{e}"));
        }
    }
    for bad in [
        "ssh://",
        "ssh://@h",
        "ssh://h/path",
        "ssh://h:0",
        "ssh://h:x",
        "ssh://h:65536",
        "ssh://u@",
        "ssh://bad..host",
        "ssh://-x",
        "ssh://_h",
        "ssh://[::1]x",
        "ssh://u%zz@h",
    ] {
        let ssh = sb.run("ssh", &["-G", "-F", &config, bad]);
        let ours = sb.tether(&["-F", &config, "hosts", "-G", bad]);
        if ssh.status == 0 || ours.status != 2 || !ours.stderr.contains(bad) {
            failures.push(format!(
                "{bad}: ssh exit {}, tether exit {}: {}",
                ssh.status, ours.status, ours.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Global options work after the subcommand and its arguments (`-F` last wins, as in ssh),
/// `hosts -G --format json` is JSON with ssh -G's keywords and values, and an empty
/// `TETHER_SSH_CONFIG=` (or `HOSTS=`, `ROLES=`) counts as unset.
#[test]
fn options_anywhere_json_dump_and_empty_environment() {
    let mut sb = Sandbox::new("opts");
    let config = sb.write(
        "cfg/opts",
        "Host a\n  HostName 10.0.0.9\n  User ua\n  IdentityFile /k/one\n  IdentityFile /k/two\n",
    );
    let other = sb.write("cfg/other", "Host a\n  User other\n");
    let ssh = sb.run("ssh", &["-G", "-F", &config, "a"]);
    assert_eq!(ssh.status, 0, "{}", ssh.stderr);
    for args in [
        vec!["hosts", "-G", "a", "-F", &config],
        vec!["hosts", "-F", &config, "-G", "a"],
        vec!["hosts", "-G", "-F", &config, "a"],
        vec!["hosts", "-G", "a", "--ssh-config", &config],
        vec!["hosts", "-G", "a", &format!("--ssh-config={config}")],
        vec!["hosts", "-G", "a", &format!("-F{config}")],
        vec!["-F", &other, "hosts", "-G", "a", "-F", &config],
        vec!["hosts", "-G", "a", "-v", "-F", &config, "--color", "never"],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = sb.tether(&args);
        assert_eq!(ours.status, 0, "{args:?}: {}", ours.stderr);
        assert_eq!(
            keyword_lines(&ours.stdout),
            keyword_lines(&ssh.stdout),
            "{args:?}"
        );
    }
    // `run`: -F after --hosts and before `--`; after `--` it belongs to the command.
    let out = sb.tether(&[
        "run", "--hosts", "a", "-n", "-F", &config, "--", "echo", "-F", "x",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("a | $ echo -F x"), "{}", out.stdout);

    // JSON: one object per host; each of ssh -G's lines is a key (identityfile an array).
    for args in [
        vec!["-F", &config, "hosts", "-G", "a", "b", "--format", "json"],
        vec!["--format", "json", "-F", &config, "hosts", "-G", "a", "b"],
    ] {
        let out = sb.tether(&args);
        assert_eq!(out.status, 0, "{}", out.stderr);
        let lines: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{}", out.stdout);
        assert_eq!(lines[0]["type"], "ssh_config");
        assert_eq!(lines[0]["host"], "a");
        assert_eq!(lines[1]["host"], "b");
        let options = &lines[0]["options"];
        for line in keyword_lines(&ssh.stdout) {
            let (k, v) = line.split_once(' ').unwrap();
            match &options[k] {
                serde_json::Value::Array(values) => {
                    assert!(values.iter().any(|x| x == v), "{k} {v}: {options}")
                }
                value => assert_eq!(value, v, "{k}"),
            }
        }
        assert_eq!(
            options["identityfile"],
            serde_json::json!(["/k/one", "/k/two"])
        );
        assert_eq!(
            lines[1]["options"]["certificatefile"],
            serde_json::json!([])
        );
    }
    let refused = sb.write("cfg/refused", "Host a\n  Tunnel yes\n");
    let out = sb.tether(&["-F", &refused, "--format", "json", "hosts", "-G", "a"]);
    assert_eq!(out.status, 2, "{}", out.stderr);
    // The host's object, then the `error` object a failing command ends with.
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let v = &lines[0];
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("Tunnel yes is refused"),
        "{v}"
    );
    assert_eq!(lines[1]["type"], "error", "{}", out.stdout);
    assert_eq!(lines.len(), 2, "{}", out.stdout);

    // TETHER_SSH_CONFIG= (set, empty): as if unset, so ~/.ssh/config, as ssh reads it.
    sb.write(".ssh/config", "Host a\n  User fromdefault\n  Port 2022\n");
    sb.etc_ssh("Host *\n  ConnectTimeout 7\n", &[]);
    let ssh = sb.run("ssh", &["-G", "a"]);
    let ours = sb.run(
        "env",
        &[
            "TETHER_SSH_CONFIG=",
            env!("CARGO_BIN_EXE_tether"),
            "hosts",
            "-G",
            "a",
        ],
    );
    assert_eq!(ours.status, 0, "{}", ours.stderr);
    assert!(
        ours.stdout.contains("user fromdefault\n"),
        "{}",
        ours.stdout
    );
    assert_eq!(keyword_lines(&ours.stdout), keyword_lines(&ssh.stdout));
    // ... and HOSTS= / ROLES= select every server of the recipe.
    let recipe = sb.write(
        "app/deploy.rhai",
        "server(\"a\", #{ roles: [\"web\"] });\nserver(\"b\", #{ roles: [\"db\"] });\n\
         task(\"t\", || { on(\"all\", \"uptime\"); });\n",
    );
    let ours = sb.run(
        "env",
        &[
            "HOSTS=",
            "ROLES=",
            "TETHER_SSH_CONFIG=",
            env!("CARGO_BIN_EXE_tether"),
            "--no-fold",
            "-f",
            &recipe,
            "-n",
            "t",
        ],
    );
    assert_eq!(ours.status, 0, "{}", ours.stderr);
    assert!(
        ours.stdout.contains("a | $ uptime") && ours.stdout.contains("b | $ uptime"),
        "{}",
        ours.stdout
    );
}

/// `Match exec` runs `$SHELL -c`: with SHELL set and empty, ssh 9.2 refuses ("Shell "" is not
/// executable"), and so does tether; unset, both run /bin/sh (stop 36 tester t17: tether ran
/// /bin/sh where SHELL was empty).
#[test]
fn match_exec_with_an_empty_shell_is_refused_as_ssh_refuses_it() {
    let sb = Sandbox::new("emptyshell");
    let config = sb.write("cfg/emptyshell", "Match exec true\n  Port 2001\n");
    let tether = env!("CARGO_BIN_EXE_tether");
    let ssh = sb.run("env", &["SHELL=", "ssh", "-G", "-F", &config, "x"]);
    assert_ne!(ssh.status, 0, "{}", ssh.stdout);
    assert!(
        ssh.stderr.contains("Shell \"\" is not executable"),
        "{}",
        ssh.stderr
    );
    let ours = sb.run(
        "env",
        &["SHELL=", tether, "-F", &config, "hosts", "-G", "x"],
    );
    assert_eq!(ours.status, 2, "{}{}", ours.stdout, ours.stderr);
    assert!(
        ours.stderr
            .contains("Match exec `true`: SHELL is set and empty: shell \"\" is not executable"),
        "{}",
        ours.stderr
    );
    for program in [&["ssh", "-G"][..], &[tether, "hosts", "-G"]] {
        let mut args = vec!["-u", "SHELL"];
        args.extend(program);
        args.extend(["-F", &config, "x"]);
        let ran = sb.run("env", &args);
        assert_eq!(ran.status, 0, "{program:?}: {}", ran.stderr);
        assert!(
            ran.stdout.contains("port 2001\n"),
            "{program:?}: {}",
            ran.stdout
        );
    }
}
