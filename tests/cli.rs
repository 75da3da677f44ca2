//! Completion scripts and the manual page, made from the same clap definitions as `--help`.

use crate::support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use support::tether::Tether;

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Tether::new().args(&["completions", shell]).run();
        out.status(0);
        for word in [
            "tether",
            "report",
            "watch",
            "completions",
            "no-fold",
            "shard",
        ] {
            assert!(out.stdout.contains(word), "{shell} lacks {word}");
        }
    }
    // The bash script parses.
    let bash = Tether::new().args(&["completions", "bash"]).run();
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(bash.stdout.as_bytes())
        .unwrap();
    assert!(check.wait().unwrap().success());
    Tether::new()
        .args(&["completions", "tcsh"])
        .run()
        .status(2)
        .stderr_contains("invalid value 'tcsh'");
}

#[test]
fn the_manual_page_is_roff_with_every_option() {
    let out = Tether::new().args(&["man"]).run();
    out.status(0)
        .stdout_contains(".TH tether 1")
        .stdout_contains(".SH NAME")
        .stdout_contains("\\-\\-no\\-fold")
        .stdout_contains("\\-\\-timeline");
}
