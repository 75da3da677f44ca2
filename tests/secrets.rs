//! Secrets are never printed: values from `set_secret`, `secret_env` and the sudo password are
//! masked in every output path (text, `-v`, JSON, the dry-run plan, failure messages, the
//! failures a recipe catches), while the commands on the hosts get the real values.

use crate::support;

use support::recipe::{lab, lab_recipe};

const SECRETS: [&str; 3] = ["s3cr3t-set-XYZ", "env-T0KEN-987", "sud0-pa55word"];

#[test]
fn secrets_are_masked_in_every_output() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "secrets",
        r#"
set_secret("api_key", "s3cr3t-set-XYZ");
let token = secret_env("DEPLOY_TOKEN");
set("token", token);
task("t", "uses " + fetch("api_key"), || {
    print("key is " + fetch("api_key"));
    debug(fetch("api_key"));
    debug("plain");
    on("web", "echo " + fetch("api_key") + " > /srv/key; echo " + fetch("token") + "; printf '\\033[31ms3cr3t-set-\\033[0mXYZ\\n'");
    on("web", |host| {
        with_env(#{ TOKEN: fetch("token") }, || run("printf '%s' \"$TOKEN\" > /srv/token; echo $TOKEN >&2"));
        try { run("echo " + fetch("api_key") + " >&2; exit 3"); } catch (err) {
            print("caught: " + err.message);
        }
    });
    on("db", "echo " + fetch("token") + "; exit 4");
});
"#,
    );
    let with_env = |t: support::tether::Tether| {
        t.env("DEPLOY_TOKEN", SECRETS[1])
            .env("TETHER_SUDO_PASSWORD", SECRETS[2])
    };
    let runs = [
        with_env(r.tether()).args(&["-v", "t"]).run(),
        with_env(r.tether()).args(&["--format", "json", "t"]).run(),
        with_env(r.tether()).args(&["-n", "t"]).run(),
        with_env(r.tether())
            .args(&["-n", "--format", "json", "t"])
            .run(),
        with_env(r.tether())
            .args(&[
                "run",
                "--hosts",
                "web1",
                "--",
                &format!("echo {}; exit 2", SECRETS[2]),
            ])
            .run(),
        // A task's description (stop 44 tester t54: printed as it was).
        with_env(r.tether()).args(&["tasks"]).run(),
        with_env(r.tether())
            .args(&["tasks", "--format", "json"])
            .run(),
    ];
    for (i, out) in runs.iter().enumerate() {
        for s in SECRETS {
            assert!(
                !out.stdout.contains(s) && !out.stderr.contains(s),
                "run {i} printed {s}\n--- stdout\n{}\n--- stderr\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    // The masked text is there instead, and the hosts got the real values.
    runs[0]
        .stdout_contains("key is ********")
        .stdout_contains("caught: ");
    runs[1].stdout_contains("********");
    // A secret split by colour codes, which stdout to a file drops (stop 44 tester t54), and
    // which JSON keeps (stop 44 tester t55): no part of it shows.
    runs[0].stdout_contains("web1 | ********");
    runs[1].stdout_lacks("s3cr3t-set-\\u001b");
    // Where colour is kept, as on a terminal.
    with_env(r.tether())
        .args(&["--color", "always", "t"])
        .run()
        .stdout_contains("| \u{1b}[31m********")
        .stdout_lacks("s3cr3t-set-\u{1b}");
    runs[5].stdout_contains("t  uses ********");
    // debug() goes through the reporter too: a print event, with where it was called.
    runs[0].stdout_contains("debug deploy.rhai:11:5: \"plain\"");
    for out in [&runs[1], &runs[3]] {
        for line in out.stdout.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", out.stdout));
            assert!(v.get("type").is_some(), "{line}");
        }
    }
    runs[1].stdout_contains(r#""text":"debug deploy.rhai:10:5: \"********\"""#);
    assert_eq!(runs[0].status, 1, "{}", runs[0].stderr);
    for h in ["web1", "web2"] {
        let root = &lab.host(h).root_dir;
        assert_eq!(
            std::fs::read_to_string(root.join("key")).unwrap(),
            format!("{}\n", SECRETS[0])
        );
        assert_eq!(
            std::fs::read_to_string(root.join("token")).unwrap(),
            SECRETS[1]
        );
    }
}

#[test]
fn secret_env_names_a_missing_variable() {
    let lab = lab(&["web1"]);
    let r = lab_recipe(
        &lab,
        "secret-env",
        "let t = secret_env(\"NO_SUCH_TOKEN\");\n",
    );
    r.tether()
        .args(&["tasks"])
        .run()
        .status(4)
        .stderr_contains("secret_env(\"NO_SUCH_TOKEN\"): the environment variable is not set");
}

/// Secrets that quoting changes (a `'`), that span lines, and values a recipe reads back: what
/// is printed is masked in every form tether itself writes the secret in (`quote()`,
/// `with_env`), line by line; what the recipe captures is the host's real bytes, so writing it
/// back puts the real value there, not the mask.
#[test]
fn quoted_and_multi_line_secrets_are_masked_and_captured_values_are_real() {
    let lab = lab(&["web1", "web2", "db1"]);
    for h in ["web1", "web2"] {
        std::fs::write(lab.host(h).root_dir.join("tok"), "db_password=hunt'er2\n").unwrap();
    }
    let r = lab_recipe(
        &lab,
        "secrets-forms",
        r#"
set_secret("c", "hunt'er2");
set_secret("m", "first-line-AB\nsecond-line-CD");
set_secret("r", "Cr-side-EF\rredrawn-GH");
let tok = secret_env("QA_TOKEN");
task("t", || {
    on("web", "echo " + quote(fetch("c")) + " " + quote(tok));
    on("web", |host| {
        with_env(#{ T: tok }, || run("printf '%s' \"$T\" > /srv/env.copy"));
        run("printf '%s\\n' " + quote(fetch("m")));
        run("printf '%s\\n' " + quote(fetch("r")));
        let v = capture("cat /srv/tok");
        run("printf '%s' " + quote(v) + " > /srv/tok.copy");
        print("equal: " + (v == "db_password=" + fetch("c")));
    });
});
"#,
    );
    let secrets = [
        "hunt'er2",
        "hunt'\\''er2",
        "tok'x$y",
        "tok'\\''x$y",
        "first-line-AB",
        "second-line-CD",
        // Its parts, as output shows each state a `\r` draws over (stop 46 tester t60: the
        // second was shown unmasked in text, -v, JSON and the run log).
        "Cr-side-EF",
        "redrawn-GH",
    ];
    let run = |args: &[&str]| r.tether().env("QA_TOKEN", "tok'x$y").args(args).run();
    let runs = [
        run(&["t"]),
        run(&["-v", "t"]),
        run(&["--format", "json", "t"]),
        run(&["-n", "t"]),
        run(&["-n", "--format", "json", "t"]),
    ];
    for (i, out) in runs.iter().enumerate() {
        for s in secrets {
            assert!(
                !out.stdout.contains(s) && !out.stderr.contains(s),
                "run {i} printed {s}\n--- stdout\n{}\n--- stderr\n{}",
                out.stdout,
                out.stderr
            );
        }
    }
    runs[0].status(0).stdout_contains("equal: true");
    for h in ["web1", "web2"] {
        let root = &lab.host(h).root_dir;
        assert_eq!(
            std::fs::read_to_string(root.join("tok.copy")).unwrap(),
            "db_password=hunt'er2"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("env.copy")).unwrap(),
            "tok'x$y"
        );
    }
}

/// A secret that a long line's 1 MiB cut falls inside is masked whole: the line is shown in
/// pieces, and each piece was masked alone, so half of it went out in each (stop 41 tester
/// t37), in text and JSON.
#[test]
fn a_secret_across_the_cut_of_a_long_line_is_masked() {
    let lab = lab(&["web1"]);
    let secret = "Sup3rSecretValue42";
    // Octal escapes: the command line tether shows holds neither part.
    let octal = |s: &str| s.bytes().map(|b| format!("\\{b:03o}")).collect::<String>();
    let r = lab_recipe(&lab, "secret-cut", "");
    for split in [4, 9, 14] {
        let (first, second) = secret.split_at(split);
        // The first piece ends at 1 MiB, `split` bytes into the secret; the pauses make the
        // two parts arrive apart.
        let command = format!(
            "head -c {} /dev/zero | tr '\\0' a; sleep 0.5; printf '{}'; sleep 0.5; printf '{}\\n'",
            1024 * 1024 - split,
            octal(first),
            octal(second)
        );
        for format in ["text", "json"] {
            let out = r
                .tether()
                .env("TETHER_SUDO_PASSWORD", secret)
                .args(&["--format", format, "run", "--hosts", "web1", "--", &command])
                .run();
            out.status(0);
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(all.contains("aaaa"), "split {split}, {format}: no output");
            assert!(all.contains("********"), "split {split}, {format}");
            assert!(
                !all.contains(second) && !all.contains(&format!("a{first}")),
                "split {split}, {format}: a part of the secret was shown"
            );
        }
    }
}
