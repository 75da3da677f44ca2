//! No input makes tether panic: random and mutated ssh configs, known_hosts files and recipes
//! (a few thousand of each, from a fixed seed so a failure can be replayed) give a clean error
//! or success. Runs without sshd.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tether::host::HostTarget;
use tether::recipe::context::Filters;
use tether::runner::{self, LoadOptions};
use tether::ssh::config::SshConfig;
use tether::ssh::known_hosts::KnownHosts;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// `seed` changed by a few random edits: bytes deleted, duplicated or replaced, fragments of
/// `pieces` inserted, lines swapped.
fn mutate(rng: &mut Rng, seed: &str, pieces: &[&str]) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(s.len() + 1);
        match rng.below(6) {
            0 if !s.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(s.len());
                s.drain(at.min(end)..end);
            }
            1 => s.splice(at..at, rng.pick(pieces).chars()).for_each(drop),
            2 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = char::from_u32(rng.below(0x2fff) as u32).unwrap_or('?');
            }
            3 => {
                let c = [
                    '"', '\'', '=', '%', '$', '{', '}', '\\', '\n', '\t', '\0', '!', '*',
                ];
                s.insert(at, c[rng.below(c.len())]);
            }
            4 => {
                let mut lines: Vec<String> = s
                    .iter()
                    .collect::<String>()
                    .lines()
                    .map(str::to_string)
                    .collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                s = lines.join("\n").chars().collect();
            }
            _ => s
                .splice(at..at, "9".repeat(rng.below(30)).chars())
                .for_each(drop),
        }
    }
    s.into_iter().collect()
}

fn run_cases(what: &str, cases: usize, mut case: impl FnMut(usize)) {
    for i in 0..cases {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(i))) {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: case {i} panicked: {text}");
        }
    }
}

const SSH_SEEDS: &[&str] = &[
    "Host web*\n  HostName 10.0.0.%h\n  Port 2222\n  User deploy\n  IdentityFile ~/.ssh/id_%r\nHost *\n  ServerAliveInterval 15\n",
    "Match host=web1 !user x final\n  ProxyJump a@b:22,c\nMatch originalhost web?,db* user root\n  ProxyCommand ssh -W %h:%p bastion\n",
    "Host \"quoted name\" x\n  UserKnownHostsFile ~/.ssh/kh.d/%k \"%d/other file\"\n  StrictHostKeyChecking accept-new\n  HostKeyAlias alias\n",
    "Host a\n  ConnectTimeout 1h30m\n  AddressFamily inet6\n  IdentityAgent ${SSH_AUTH_SOCK}\n  CertificateFile %d/.ssh/c-cert.pub\n  Tag t\nMatch tagged t localuser root\n  ForwardAgent yes\n",
    "Host=a\nPort=22\n  IdentitiesOnly=yes\n  PKCS11Provider /x.so\n  SetEnv A=1 \"B=2 3\"\n  SendEnv LANG LC_*\n",
];
const SSH_PIECES: &[&str] = &[
    "Match ",
    "Host ",
    " all",
    " canonical",
    " final",
    " !host ",
    "%C",
    "%h",
    "%%",
    "%j",
    "${HOME}",
    "${",
    "ProxyJump none",
    " ProxyCommand none",
    "Port 0",
    "Port 65536",
    "\"",
    "=",
    ",",
    "!*",
    "CanonicalizeHostname always",
    "Tunnel yes",
    "RemoteCommand x",
    "Hostname %r@%p",
    "localnetwork 10.0.0.0/33",
    "user ",
    "IdentityFile none",
    "LocalForward [::1]:1 h:",
    "RemoteForward \\",
    "DynamicForward /%Z",
    "PermitRemoteOpen [",
    "ControlPath ~/%T",
    "RekeyLimit 1.",
];

#[test]
fn ssh_configs_never_panic() {
    let mut rng = Rng(0x5eed_0001);
    let hosts: Vec<HostTarget> = ["web1", "db@a:2200", "x", "[::1]:22", "quoted"]
        .iter()
        .map(|h| HostTarget::parse(h).unwrap())
        .collect();
    run_cases("ssh config", 3000, |_| {
        let seed = SSH_SEEDS[rng.below(SSH_SEEDS.len())];
        let text = mutate(&mut rng, seed, SSH_PIECES);
        // Nothing that runs commands, reads other files or asks DNS: the parser and the
        // resolution are what is under test.
        let lower = text.to_ascii_lowercase();
        if ["exec", "include", "canonical"]
            .iter()
            .any(|k| lower.contains(k))
        {
            return;
        }
        if let Ok(cfg) = SshConfig::parse_str(&text, Path::new("/nonexistent/fuzz_config")) {
            for h in &hosts {
                let _ = cfg.resolve_target(h, None);
                let _ = cfg.resolve_target(h, Some("j1,u@j2:2222"));
            }
        }
    });
}

#[test]
fn known_hosts_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known_hosts");
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let seed = format!(
        "web1,10.0.0.1 ssh-ed25519 {key}\n[db]:2222 ssh-ed25519 {key} comment\n@cert-authority *.corp ssh-ed25519 {key}\n@revoked * ssh-ed25519 {key}\n|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= ssh-ed25519 {key}\n!neg,* ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==\n"
    );
    let pieces = [
        "@cert-authority ",
        "@revoked ",
        "|1|",
        "[",
        "]:",
        " ssh-rsa ",
        " AAAA",
        "==",
        "#",
        ",",
    ];
    let mut rng = Rng(0x5eed_0002);
    let blob = {
        use std::io::Read as _;
        let mut b = vec![0u8; 51];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
        b
    };
    run_cases("known_hosts", 3000, |_| {
        let text = mutate(&mut rng, &seed, &pieces);
        std::fs::write(&file, text).unwrap();
        let known = KnownHosts::load(std::slice::from_ref(&file));
        for name in ["web1", "10.0.0.1", "[db]:2222", "x.corp", "[::1]:22", ""] {
            let _ = known.check(name, &blob);
            let _ = known.recorded_types(name);
        }
    });
}

const RECIPE_SEED: &str = r#"
import "deploy" as deploy;
set("application", "shop");
set("deploy_to", "/srv/shop");
set("keepalive", "500ms");
server("web1", #{ roles: ["web", "app"], via: "none", forward_agent: false });
server("deploy@10.0.0.5:2222", #{ roles: ["db"], primary: true });
role("resque", ["worker1", "worker2"]);
stage("production", || { server("web9", #{ roles: ["web"] }); set("branch", "main"); });
task("check:disk", "Free disk", || {
    on(["app", "db"], #{ in: "groups", limit: 2, wait: 0 }, |host| {
        within(fetch("deploy_to"), || { run("df -Pk ."); });
    });
});
before("check:disk", "deploy:check");
after("deploy:published", || { print(`done ${fetch("application")}`); });
on_failure(|err| { print("failed: " + err); });
let m = #{ a: [1, 2, "x"], b: () }; let x = m.a[0] + 1;
"#;
const RECIPE_PIECES: &[&str] = &[
    "server(",
    "role(",
    "task(",
    "before(",
    "after(",
    "on(",
    "set(",
    "fetch(",
    "stage(",
    "#{",
    "}",
    "]",
    "[",
    "||",
    "\"",
    "`",
    "${",
    ";",
    "import \"deploy\" as d;",
    "via: 3",
    "roles: 1",
    "\"all\"",
    "quote(",
    "primary(\"web\")",
    "hosts(\"web\")",
    "invoke(\"x\")",
    // Secrets are masked process-wide from now on, in every test of this binary that runs
    // commands in-process: a value no other test's output holds (a secret "v" once turned
    // every `v` in another test's binary stderr into the mask).
    "set_secret(\"k\", \"fuzzed-secret-7Qx\")",
    "utc_timestamp()",
    "loop { break; }",
    "fn f(a) { a }",
];

#[test]
fn recipes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.rhai");
    let mut rng = Rng(0x5eed_0003);
    run_cases("recipe", 1500, |_| {
        let text = mutate(&mut rng, RECIPE_SEED, RECIPE_PIECES);
        if text.contains("run_locally") || text.contains("import \"/") {
            return;
        }
        std::fs::write(&file, &text).unwrap();
        let (sink, _events) = tether::sink::channel();
        let opts = LoadOptions {
            filters: Filters::default(),
            ssh_config: None,
            parallel: None,
            fold: true,
            overrides: vec![("branch".into(), "x".into())],
            env_overrides: Vec::new(),
            interrupted: Arc::new(AtomicBool::new(false)),
            sources: None,
            sink,
            invocation: Vec::new(),
            selection: Vec::new(),
            own_files: Vec::new(),
        };
        if let Ok(loaded) = runner::load(&file, opts) {
            let _ = loaded.select_stage(Some("production"));
            let _ = loaded.validate(&["check:disk".to_string()], &[]);
            let _ = loaded.selected_hosts();
            let _ = loaded.keepalive();
        }
    });
    // What the cases registered stays masked for every later test of this process.
    let probe = "host1 web1 v x 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    assert_eq!(
        tether::secret::mask(probe),
        probe,
        "a fuzzed secret masks common text"
    );
}
