//! Host keys as ssh handles them: the key type recorded in known_hosts is negotiated even when
//! the server prefers another, a mismatch names both keys, `%k`/HostKeyAlias name the
//! known_hosts file and entry, HashKnownHosts hashes what accept-new records, and IPv6
//! addresses print as `[::1]:22`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::lab::Lab;
use support::tether::{Output, Tether};

fn public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn keygen(path: &Path, kind: &str) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn fingerprint(pub_path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// host1 with an RSA host key besides its ed25519 one; returns the RSA key's path.
fn with_rsa_host_key(lab: &Lab) -> PathBuf {
    let key = lab.dir().join("host1_rsa_key");
    keygen(&key, "rsa");
    lab.reconfigure("host1", &format!("HostKey {}", key.display()));
    key
}

/// The lab's config for host1 with `known_hosts` as its only known_hosts file.
fn config(lab: &Lab, name: &str, extra: &str, known_hosts: &Path) -> PathBuf {
    let text = std::fs::read_to_string(lab.ssh_config()).unwrap().replace(
        &lab.known_hosts().display().to_string(),
        &known_hosts.display().to_string(),
    );
    let path = lab.dir().join(name);
    std::fs::write(&path, format!("Host host1\n{extra}{text}")).unwrap();
    path
}

fn run(config: &Path) -> Output {
    Tether::new()
        .ssh_config(config)
        .args(&["run", "--hosts", "host1", "--", "echo reached"])
        .run()
}

/// Regression (issue 11): known_hosts records only an ssh-rsa key for a host that also
/// offers (and prefers) ed25519; ssh negotiates the recorded type and connects, so does
/// tether.
#[test]
fn an_rsa_only_entry_connects_to_a_host_that_prefers_ed25519() {
    let lab = Lab::start(1);
    let rsa = with_rsa_host_key(&lab);
    let port = lab.host("host1").port;
    let kh = lab.dir().join("kh_rsa");
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{port} {}\n",
            public_key(&rsa.with_extension("pub"))
        ),
    )
    .unwrap();
    let cfg = config(&lab, "rsa_only", "", &kh);
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes", "host1", "true"])
        .output()
        .unwrap();
    assert!(
        ssh.status.success(),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    assert_eq!(run(&cfg).status(0).host_lines("host1", '|'), ["reached"]);
    // The server's default is ed25519: without the entry it is what gets offered first.
    let scan = Command::new("ssh-keyscan")
        .args(["-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let scanned = String::from_utf8_lossy(&scan.stdout);
    assert!(
        scanned.contains("ssh-ed25519") && scanned.contains("ssh-rsa"),
        "{scanned}"
    );
}

#[test]
fn a_mismatch_names_the_recorded_and_offered_keys() {
    let lab = Lab::start(1);
    let rsa = with_rsa_host_key(&lab);
    let port = lab.host("host1").port;
    let stranger = lab.dir().join("stranger_rsa");
    keygen(&stranger, "rsa");
    let kh = lab.dir().join("kh_wrong");
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{port} {}\n",
            public_key(&stranger.with_extension("pub"))
        ),
    )
    .unwrap();
    run(&config(&lab, "wrong", "", &kh))
        .status(3)
        .stdout_contains(&format!(
            "host1: HOST KEY CHANGED for [127.0.0.1]:{port}: the server presented ssh-rsa {}, but \
         ssh-rsa {} ({}:1) is recorded",
            fingerprint(&rsa.with_extension("pub")),
            fingerprint(&stranger.with_extension("pub")),
            kh.display()
        ));

    assert_eq!(lab.accepted_logins("host1"), 0);
}

/// A key of a type known_hosts does not record, for a host it records keys of other types
/// for, is a changed key, as for ssh (hostfile.c: any recorded key that differs), under every
/// StrictHostKeyChecking: refused, naming what is recorded, and never recorded (stop 44 tester
/// t53: accept-new and `no` recorded and trusted an RSA key offered by a host recorded with
/// its ed25519 key: a reinstalled host, or a man in the middle offering only RSA).
#[test]
fn a_key_of_another_type_than_the_recorded_ones_is_a_changed_key() {
    let lab = Lab::start(1);
    let rsa = with_rsa_host_key(&lab);
    let port = lab.host("host1").port;
    let ed25519 = std::fs::read_to_string(lab.known_hosts()).unwrap();
    // ssh-keygen -l reads a known_hosts line as a public key.
    let own = fingerprint(&lab.known_hosts());
    let ecdsa = lab.dir().join("stranger_ecdsa");
    keygen(&ecdsa, "ecdsa");
    let cases = [
        // The server's key is ed25519; only a stranger's ECDSA key is recorded.
        (
            format!(
                "[127.0.0.1]:{port} {}\n",
                public_key(&ecdsa.with_extension("pub"))
            ),
            "",
            format!("ssh-ed25519 {own}"),
            format!(
                "ecdsa-sha2-nistp256 {}",
                fingerprint(&ecdsa.with_extension("pub"))
            ),
        ),
        // The server's own ed25519 key is recorded, and it is asked for RSA only.
        (
            ed25519,
            "  HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256\n",
            format!("ssh-rsa {}", fingerprint(&rsa.with_extension("pub"))),
            format!("ssh-ed25519 {own}"),
        ),
    ];
    for (i, (recorded, algorithms, presented, was)) in cases.iter().enumerate() {
        for mode in ["yes", "accept-new", "no", "ask"] {
            let kh = lab.dir().join(format!("kh_{i}_{mode}"));
            std::fs::write(&kh, recorded).unwrap();
            let extra = format!("  StrictHostKeyChecking {mode}\n{algorithms}");
            run(&config(&lab, &format!("other_{i}_{mode}"), &extra, &kh))
                .status(3)
                .stdout_contains(&format!(
                    "host1: HOST KEY CHANGED for [127.0.0.1]:{port}: the server presented \
                     {presented}, but {was} ({}:1) is recorded",
                    kh.display()
                ));
            assert_eq!(&std::fs::read_to_string(&kh).unwrap(), recorded, "{mode}");
        }
    }
    assert_eq!(lab.accepted_logins("host1"), 0);
}

/// Regression (issue 11): `UserKnownHostsFile ~/.ssh/kh.d/%k` was used literally: accept-new
/// created a file named `%k`, and `yes` refused a host whose key was in the right file.
#[test]
fn percent_k_names_the_known_hosts_file_and_host_key_alias_the_entry() {
    let lab = Lab::start(1);
    let home = lab.dir().join("home");
    // Where ssh would record a key there: it makes no directory but ~/.ssh itself.
    std::fs::create_dir_all(home.join(".ssh/kh.d")).unwrap();
    let port = lab.host("host1").port;
    let base = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let base: String = base
        .lines()
        .filter(|l| !l.contains("UserKnownHostsFile") && !l.contains("StrictHostKeyChecking"))
        .map(|l| format!("{l}\n"))
        .collect();
    let write = |name: &str, extra: &str| {
        let path = lab.dir().join(name);
        std::fs::write(
            &path,
            format!("Host host1\n  UserKnownHostsFile ~/.ssh/kh.d/%k\n{extra}{base}"),
        )
        .unwrap();
        path
    };
    let with_home = |t: Tether| t.env("HOME", home.to_str().unwrap());
    let run_as = |cfg: &Path| {
        with_home(Tether::new())
            .ssh_config(cfg)
            .args(&["run", "--hosts", "host1", "--", "echo reached"])
            .run()
    };
    // accept-new records the key in kh.d/host1 (%k is the alias as given).
    let cfg = write("k_new", "  StrictHostKeyChecking accept-new\n");
    run_as(&cfg)
        .status(0)
        .stdout_contains(&format!("in {}/.ssh/kh.d/host1", home.display()));
    assert!(!home.join(".ssh/kh.d/%k").exists());
    let recorded = std::fs::read_to_string(home.join(".ssh/kh.d/host1")).unwrap();
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{port} ssh-ed25519 ")),
        "{recorded}"
    );
    // yes finds it there.
    let cfg = write("k_yes", "  StrictHostKeyChecking yes\n");
    run_as(&cfg).status(0);

    // HostKeyAlias: the entry is written and looked up under the alias (no port), in the
    // file %k names after it; HashKnownHosts hashes the name.
    let cfg = write(
        "alias_new",
        "  HostKeyAlias Shared-Key\n  HashKnownHosts yes\n  StrictHostKeyChecking accept-new\n",
    );
    run_as(&cfg).status(0);
    let recorded = std::fs::read_to_string(home.join(".ssh/kh.d/shared-key")).unwrap();
    assert!(recorded.starts_with("|1|"), "{recorded}");
    assert!(!recorded.contains("shared-key") && !recorded.contains("127.0.0.1"));
    let cfg = write(
        "alias_yes",
        "  HostKeyAlias shared-key\n  StrictHostKeyChecking yes\n",
    );
    run_as(&cfg).status(0);
    // ssh agrees on the file and the entry.
    let ssh = Command::new("ssh")
        .env("HOME", &home)
        .arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes", "-G", "host1"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&ssh.stdout);
    assert!(printed.contains("hostkeyalias shared-key"), "{printed}");
    assert_eq!(lab.accepted_logins("host1"), 4);
}

#[test]
fn ipv6_targets_print_in_brackets() {
    // Nothing listens on port 1: the refusal names the address as ssh writes it.
    let out = Tether::new()
        .args(&[
            "-F",
            "none",
            "run",
            "--hosts",
            "ssh://[::1]:1",
            "--",
            "true",
        ])
        .run();
    out.status(3).stdout_contains("cannot connect to [::1]:1:");
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let cfg = dir.join("config");
    std::fs::write(&cfg, "Host six\n  HostName 0:0::1\n  Port 2\n").unwrap();
    Tether::new()
        .ssh_config(&cfg)
        .args(&["run", "--hosts", "six", "--", "true"])
        .run()
        .status(3)
        .stdout_contains("six: cannot connect to [::1]:2:");
    Tether::new()
        .ssh_config(&cfg)
        .args(&["hosts", "six"])
        .run()
        .status(0)
        .stdout_contains("root@[::1]:2");
}

/// ssh's exit status for `host1` under `config` (BatchMode) and its stderr.
fn ssh(config: &Path) -> (bool, String) {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "host1", "true"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Regression (issue 11): a host on a port other than 22 is looked up as `[host]:port`, and
/// when that finds no key of the presented type, once more as `host` (sshconnect.c
/// `check_host_key`: "found matching key w/out port"), but only a matching key counts there:
/// a different key under the portless name is "unknown", not "changed", so `accept-new`
/// records the key as `[host]:port` and `yes` refuses it; a changed `[host]:port` entry is
/// never rescued by the portless one; `HostKeyAlias` has no fallback. Each case is checked
/// against ssh itself, the file accept-new writes too.
#[test]
fn a_portless_known_hosts_entry_is_looked_up_as_ssh_looks_it_up() {
    let lab = Lab::start(1);
    let port = lab.host("host1").port;
    let recorded = std::fs::read_to_string(lab.known_hosts()).unwrap();
    // `ssh-ed25519 AAAA...` of host1.
    let right = recorded
        .split_whitespace()
        .skip(1)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let stranger = lab.dir().join("stranger_ed25519");
    keygen(&stranger, "ed25519");
    let wrong = public_key(&stranger.with_extension("pub"));
    let hashed = |line: &str, name: &str| {
        let path = lab.dir().join(format!("hash_{name}"));
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let out = Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::read_to_string(&path).unwrap()
    };
    let hashed_right = hashed(&format!("127.0.0.1 {right}"), "right");
    assert!(hashed_right.starts_with("|1|"), "{hashed_right}");
    let strict = "  StrictHostKeyChecking yes\n";
    let accept_new = "  StrictHostKeyChecking accept-new\n";
    let alias = "  HostKeyAlias lab-alias\n  StrictHostKeyChecking yes\n";
    let no_check_ip = "  CheckHostIP no\n  StrictHostKeyChecking yes\n";
    // (name, known_hosts text, extra config, connects, known_hosts grows)
    let cases: Vec<(&str, String, &str, bool, bool)> = vec![
        ("plain", format!("127.0.0.1 {right}\n"), strict, true, false),
        (
            "plain_no_check_ip",
            format!("127.0.0.1 {right}\n"),
            no_check_ip,
            true,
            false,
        ),
        ("hashed", hashed_right.clone(), strict, true, false),
        (
            "pattern",
            format!("127.0.0.* {right}\n"),
            strict,
            true,
            false,
        ),
        (
            "list",
            format!("other,127.0.0.1 {right}\n"),
            strict,
            true,
            false,
        ),
        (
            "plain_accept_new",
            format!("127.0.0.1 {right}\n"),
            accept_new,
            true,
            false,
        ),
        (
            "wrong_strict",
            format!("127.0.0.1 {wrong}\n"),
            strict,
            false,
            false,
        ),
        (
            "wrong_accept_new",
            format!("127.0.0.1 {wrong}\n"),
            accept_new,
            true,
            true,
        ),
        (
            "changed_with_port",
            format!("[127.0.0.1]:{port} {wrong}\n127.0.0.1 {right}\n"),
            accept_new,
            false,
            false,
        ),
        ("alias", format!("127.0.0.1 {right}\n"), alias, false, false),
        // `*` matches both names; the negation removes only `[host]:port`, so the second
        // look finds it.
        (
            "negated_port",
            format!("*,![127.0.0.1]:{port} {right}\n"),
            strict,
            true,
            false,
        ),
        (
            "negated_both",
            format!("*,![127.0.0.1]:{port},!127.0.0.1 {right}\n"),
            strict,
            false,
            false,
        ),
    ];
    for (name, text, extra, connects, grows) in cases {
        let for_ssh = lab.dir().join(format!("kh_ssh_{name}"));
        let for_tether = lab.dir().join(format!("kh_tether_{name}"));
        std::fs::write(&for_ssh, &text).unwrap();
        std::fs::write(&for_tether, &text).unwrap();
        let (ssh_ok, ssh_err) = ssh(&config(&lab, &format!("ssh_{name}"), extra, &for_ssh));
        assert_eq!(ssh_ok, connects, "ssh, case {name}: {ssh_err}");
        let out = run(&config(&lab, &format!("tether_{name}"), extra, &for_tether));
        if connects {
            assert_eq!(
                out.status(0).host_lines("host1", '|'),
                ["reached"],
                "{name}"
            );
        } else {
            out.status(3);
        }
        let ssh_file = std::fs::read_to_string(&for_ssh).unwrap();
        let tether_file = std::fs::read_to_string(&for_tether).unwrap();
        assert_eq!(
            ssh_file.len() > text.len(),
            grows,
            "ssh, case {name}: {ssh_file}"
        );
        assert_eq!(
            tether_file, ssh_file,
            "case {name}: tether wrote what ssh did not"
        );
    }
    // A key revoked under the bare name: ssh warns, then records and accepts it under
    // accept-new; tether refuses it (exit 3), naming the @revoked line, and records nothing.
    let revoked = format!("@revoked 127.0.0.1 {right}\n");
    let kh = lab.dir().join("kh_revoked_bare");
    std::fs::write(&kh, &revoked).unwrap();
    let (ssh_ok, ssh_err) = ssh(&config(&lab, "ssh_revoked_bare", accept_new, &kh));
    assert!(ssh_ok && ssh_err.contains("REVOKED HOST KEY"), "{ssh_err}");
    std::fs::write(&kh, &revoked).unwrap();
    run(&config(&lab, "tether_revoked_bare", accept_new, &kh))
        .status(3)
        .stdout_contains(&format!("{}:1", kh.display()))
        .stdout_contains("revoked");
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), revoked);
    // What each refusal says: unknown (not changed) for a different portless key, changed
    // for a changed `[host]:port` entry.
    let kh = lab.dir().join("kh_tether_wrong_strict");
    run(&config(&lab, "tether_wrong_strict", strict, &kh))
        .status(3)
        .stdout_contains(&format!("[127.0.0.1]:{port}"))
        .stdout_lacks("changed");
}

/// The second look without the port never changes what is negotiated (ssh orders host key
/// types by `[host]:port` alone): a bare-name entry holding only the host's RSA key does not
/// make the ed25519-preferring host present RSA, so the ed25519 key is unknown, under `yes`
/// refused as ssh refuses it, under `accept-new` with `HashKnownHosts` recorded hashed under
/// `[host]:port`, as ssh records it.
#[test]
fn a_portless_entry_does_not_change_the_negotiated_key_type() {
    let lab = Lab::start(1);
    let rsa = with_rsa_host_key(&lab);
    let port = lab.host("host1").port;
    let text = format!("127.0.0.1 {}\n", public_key(&rsa.with_extension("pub")));
    let strict = "  StrictHostKeyChecking yes\n";
    let hashed_new = "  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n";
    let name = format!("[127.0.0.1]:{port}");
    for (case, extra, connects) in [("rsa_strict", strict, false), ("rsa_new", hashed_new, true)] {
        let for_ssh = lab.dir().join(format!("kh_ssh_{case}"));
        let for_tether = lab.dir().join(format!("kh_tether_{case}"));
        std::fs::write(&for_ssh, &text).unwrap();
        std::fs::write(&for_tether, &text).unwrap();
        let (ssh_ok, ssh_err) = ssh(&config(&lab, &format!("ssh_{case}"), extra, &for_ssh));
        assert_eq!(ssh_ok, connects, "ssh, case {case}: {ssh_err}");
        let out = run(&config(&lab, &format!("tether_{case}"), extra, &for_tether));
        if connects {
            out.status(0);
        } else {
            out.status(3)
                .stdout_contains(&format!("host key for {name} is not known (ssh-ed25519"));
        }
        for file in [&for_ssh, &for_tether] {
            // What is recorded under `[host]:port`, as ssh-keygen finds it (hashed names too).
            let found = Command::new("ssh-keygen")
                .arg("-F")
                .arg(&name)
                .arg("-f")
                .arg(file)
                .output()
                .unwrap();
            let found = String::from_utf8_lossy(&found.stdout).into_owned();
            let recorded: Vec<&str> = found.lines().filter(|l| !l.starts_with('#')).collect();
            if connects {
                assert_eq!(recorded.len(), 1, "{}: {found}", file.display());
                assert!(recorded[0].starts_with("|1|"), "{found}");
                assert!(recorded[0].contains(" ssh-ed25519 "), "{found}");
            } else {
                assert!(recorded.is_empty(), "{}: {found}", file.display());
            }
        }
    }
}

/// `UserKnownHostsFile none` leaves ssh nowhere to record a new host key, and ssh then
/// refuses it whatever `StrictHostKeyChecking` says (sshconnect.c `check_host_key`: a new key
/// with the user files read-only is a verification failure); tether accepted it with a
/// warning under `no` and `accept-new` (fresh-eyes finding, stop 28: connected to a host no
/// known_hosts vouched for). Each case is checked against ssh itself: a key known from
/// `GlobalKnownHostsFile` still connects, and `/dev/null` is a file ssh records into.
#[test]
fn user_known_hosts_file_none_refuses_a_new_host_key_as_ssh_does() {
    let lab = Lab::start(1);
    let global = lab.dir().join("global_known_hosts");
    std::fs::copy(lab.known_hosts(), &global).unwrap();
    let global = format!("  GlobalKnownHostsFile {}\n", global.display());
    let cases = [
        (
            "none_no",
            "  UserKnownHostsFile none\n  StrictHostKeyChecking no\n",
            false,
        ),
        (
            "none_off",
            "  UserKnownHostsFile none\n  StrictHostKeyChecking off\n",
            false,
        ),
        (
            "none_accept_new",
            "  UserKnownHostsFile none\n  StrictHostKeyChecking accept-new\n",
            false,
        ),
        (
            "none_yes",
            "  UserKnownHostsFile none\n  StrictHostKeyChecking yes\n",
            false,
        ),
        ("none_default", "  UserKnownHostsFile none\n", false),
        (
            "none_global",
            &format!("  UserKnownHostsFile none\n  StrictHostKeyChecking no\n{global}"),
            true,
        ),
        (
            "dev_null_no",
            "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n",
            true,
        ),
    ];
    for (name, extra, connects) in cases {
        let config = config(&lab, name, extra, &lab.dir().join("unused_known_hosts"));
        let (ssh_ok, ssh_said) = ssh(&config);
        assert_eq!(ssh_ok, connects, "{name}: ssh itself: {ssh_said}");
        let out = run(&config);
        let text = format!("{}{}", out.stdout, out.stderr);
        if connects {
            assert_eq!(out.status, 0, "{name}\n{}", text);
            assert!(out.stdout.contains("reached"), "{name}\n{}", text);
        } else {
            assert_eq!(out.status, 3, "{name}\n{}", text);
            assert!(!out.stdout.contains("reached"), "{name}\n{}", text);
            assert!(
                text.contains(
                    "refusing to connect, as ssh does: UserKnownHostsFile is none, so a new host \
                     key cannot be recorded, whatever StrictHostKeyChecking says"
                ),
                "{name}\n{}",
                text
            );
        }
    }
}

/// `UserKnownHostsFile /dev/null` under `StrictHostKeyChecking yes`: refused, as ssh does,
/// saying that /dev/null keeps no key rather than "add it to /dev/null" (fresh-eyes finding).
#[test]
fn a_new_key_with_dev_null_as_known_hosts_says_it_keeps_nothing() {
    let lab = Lab::start(1);
    let config = config(
        &lab,
        "dev_null",
        "  StrictHostKeyChecking yes\n  GlobalKnownHostsFile none\n",
        Path::new("/dev/null"),
    );
    let out = run(&config);
    out.status(3)
        .stdout_contains("UserKnownHostsFile is /dev/null, which keeps no key")
        .stdout_lacks("Add it to /dev/null");
}

/// `accept-new` records a new key where ssh would and nowhere else: ssh makes no directory
/// but `~/.ssh` (mode 0700, when the file is directly in it: hostfile.c
/// `hostfile_create_user_ssh_dir`); for a file in a directory that does not exist it says it
/// could not add the host and connects, the key recorded nowhere (stop 34 tester: tether made
/// the directory, mode 0755, and wrote the key there). The cases ssh makes nothing for are
/// checked against ssh itself.
#[test]
fn accept_new_makes_no_directory_ssh_would_not() {
    let lab = Lab::start(1);
    let home = lab.dir().join("fresh-home");
    std::fs::create_dir_all(&home).unwrap();
    let accept_new = "  StrictHostKeyChecking accept-new\n  GlobalKnownHostsFile none\n";
    for (name, file, dir_made) in [
        ("missing_dir", lab.dir().join("nodir/kh"), false),
        ("missing_nested", lab.dir().join("a/b/kh"), false),
        ("dot_ssh_sub", home.join(".ssh/kh.d/kh"), false),
        ("dot_ssh", home.join(".ssh/known_hosts"), true),
    ] {
        let _ = std::fs::remove_dir_all(home.join(".ssh"));
        let config = config(&lab, name, accept_new, &file);
        // ssh takes ~/.ssh from the password database, tether from $HOME (as the README
        // says): ssh is asked about the other directories only.
        if !dir_made {
            let ssh = Command::new("ssh")
                .arg("-F")
                .arg(&config)
                .args(["-o", "BatchMode=yes", "host1", "true"])
                .env("HOME", &home)
                .output()
                .unwrap();
            assert!(ssh.status.success(), "{name}: ssh: {ssh:?}");
            assert!(!file.parent().unwrap().exists(), "{name}: ssh made it");
        }
        let _ = std::fs::remove_dir_all(home.join(".ssh"));
        let out = Tether::new()
            .ssh_config(&config)
            .env("HOME", home.to_str().unwrap())
            .args(&["run", "--hosts", "host1", "--", "echo reached"])
            .run();
        out.status(0).stdout_contains("reached");
        let dir = file.parent().unwrap();
        if dir_made {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(dir).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o700, "{name}");
            assert!(std::fs::read_to_string(&file)
                .unwrap()
                .contains(" ssh-ed25519 "));
            out.stdout_contains("recorded new host key for [127.0.0.1]:");
        } else {
            assert!(!dir.exists(), "{name}: tether made {}", dir.display());
            out.stdout_contains(&format!(
                "could not record the new host key in {}",
                file.display()
            ));
        }
    }
}

/// Of the key types recorded for a host, the one ssh asks for first is asked for, whatever
/// order known_hosts has them in (sshconnect.c `order_hostkeyalgs` keeps its own list's
/// order): a changed ed25519 key recorded after the host's real RSA key is found changed
/// (stop 44 tester t55: RSA was negotiated, the changed ed25519 key went unseen, exit 0).
#[test]
fn the_recorded_type_ssh_prefers_is_checked_whatever_the_file_order() {
    let lab = Lab::start(1);
    let rsa = with_rsa_host_key(&lab);
    let port = lab.host("host1").port;
    let stranger = lab.dir().join("stranger_ed25519");
    keygen(&stranger, "ed25519");
    for mode in ["yes", "accept-new"] {
        let kh = lab.dir().join(format!("kh_order_{mode}"));
        std::fs::write(
            &kh,
            format!(
                "[127.0.0.1]:{port} {}\n[127.0.0.1]:{port} {}\n",
                public_key(&rsa.with_extension("pub")),
                public_key(&stranger.with_extension("pub"))
            ),
        )
        .unwrap();
        let extra = format!("  StrictHostKeyChecking {mode}\n");
        run(&config(&lab, &format!("order_{mode}"), &extra, &kh))
            .status(3)
            .stdout_contains(&format!(
                "host1: HOST KEY CHANGED for [127.0.0.1]:{port}: the server presented ssh-ed25519 "
            ));
    }
    assert_eq!(lab.accepted_logins("host1"), 0);
}

/// A reconnect (the first connection's key pinned) still reads known_hosts as it is then: a
/// key `@revoked` since, or one the file now records another key in place of, is refused as
/// ssh refuses it; the same key, still recorded, reconnects (stop 49 tester t70: a revoked
/// key was accepted on the reconnect, in `tether run` and `tether watch`).
#[test]
fn a_reconnect_refuses_a_key_known_hosts_revoked_or_replaced_since() {
    use support::harness::Harness;
    use tether::ssh::policy::WorkerSettings;
    let lab = Lab::start(1);
    let kh = lab.dir().join("kh_reconnect");
    std::fs::copy(lab.known_hosts(), &kh).unwrap();
    let line = std::fs::read_to_string(&kh).unwrap();
    let cfg = config(&lab, "reconnect", "", &kh);
    let other = lab.dir().join("other_host_key");
    keygen(&other, "ed25519");
    let name = line.split_whitespace().next().unwrap();
    let replaced = format!("{name} {}\n", public_key(&other.with_extension("pub")));
    // Connects with known_hosts as the lab wrote it, then reconnects with `now` in its place.
    let reconnect = |now: &str| -> Result<(), String> {
        std::fs::write(&kh, &line).unwrap();
        let settings = WorkerSettings {
            heartbeat: Some(std::time::Duration::from_secs(3600)),
            ..WorkerSettings::default()
        };
        let mut h = Harness::new(&cfg, settings, &["host1"]);
        assert!(h.run(&["host1"], "true")[0].ok(), "{}", h.story());
        std::fs::write(&kh, now).unwrap();
        lab.kill_connections("host1");
        let mut results = h.run(&["host1"], "echo again");
        match results.remove(0).result {
            Some(Ok(out)) if out.status.success() => Ok(()),
            Some(Err(e)) => Err(e.to_string()),
            other => panic!("{now}: {other:?}\n{}", h.story()),
        }
    };
    assert_eq!(reconnect(&line), Ok(()));
    let error = reconnect(&format!("{line}@revoked {line}")).unwrap_err();
    assert!(
        error.contains("host key for [127.0.0.1]:") && error.contains("kh_reconnect:2"),
        "{error}"
    );
    let error = reconnect(&replaced).unwrap_err();
    assert!(error.contains("HOST KEY CHANGED"), "{error}");
    // No longer recorded at all: the run's own key still.
    assert_eq!(reconnect(""), Ok(()));
}
