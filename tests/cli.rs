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

/// A recipe, stage file or module that is a device, a FIFO or a directory is refused before
/// it is read: `/dev/zero` would fill memory and a FIFO nobody writes would hang the load.
#[test]
fn recipes_and_modules_that_are_not_regular_files_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mkfifo = |p: &std::path::Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    // The recipe itself: a device (through a symlink), a FIFO, a directory.
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.rhai")).unwrap();
    mkfifo(&d.join("fifo.rhai"));
    std::fs::create_dir(d.join("dir.rhai")).unwrap();
    for (file, what) in [
        ("zero.rhai", "a device"),
        ("fifo.rhai", "a FIFO"),
        ("dir.rhai", "a directory"),
    ] {
        Tether::new()
            .current_dir(d)
            .args(&["-f", file, "tasks"])
            .run()
            .status(2)
            .stderr_contains(&format!("it is {what}, not a regular file"));
    }
    // A module: the import fails at its line, as a module that cannot be read.
    std::fs::create_dir(d.join("lib")).unwrap();
    mkfifo(&d.join("lib/f.rhai"));
    std::os::unix::fs::symlink("/dev/urandom", d.join("lib/u.rhai")).unwrap();
    for module in ["f", "u"] {
        std::fs::write(
            d.join("deploy.rhai"),
            format!("import \"lib/{module}\" as m;\ntask(\"t\", || {{}});\n"),
        )
        .unwrap();
        Tether::new()
            .current_dir(d)
            .args(&["tasks"])
            .run()
            .status(4)
            .stderr_contains("not a regular file")
            .stderr_contains("deploy.rhai:1:");
    }
}

/// A host name or user with shell syntax never reaches `%h`/`%r` in a `Match exec` or
/// `ProxyCommand`: refused as ssh refuses it (CVE-2023-51385), before any command runs.
#[test]
fn host_names_with_shell_syntax_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("config");
    std::fs::write(
        &config,
        "Match exec \"echo %h %r > /dev/null\"\n  User m\nHost *\n  ProxyCommand echo %h %r > /dev/null\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let mark = d.join("pwned");
    let m = mark.display();
    for name in [
        format!("x;touch${{IFS}}{m}"),
        format!("x|touch${{IFS}}{m}"),
        format!("x&&touch${{IFS}}{m}"),
        format!("x$(touch${{IFS}}{m})"),
        format!("x`touch${{IFS}}{m}`"),
        format!("u;touch${{IFS}}{m}@h"),
        format!("u`touch${{IFS}}{m}`@h"),
        format!("u$(touch${{IFS}}{m})x@h"),
        format!("ssh://u%60touch${{IFS}}{m}%60@h"),
        "h\u{7}x".to_string(),
    ] {
        Tether::new()
            .args(&["-F", &config, "hosts", "-G", &name])
            .run()
            .status(2)
            .stderr_contains("characters ssh refuses");
        Tether::new()
            .args(&["-F", &config, "run", "--hosts", &name, "--", "true"])
            .run()
            .status(2);
        assert!(!mark.exists(), "{name} ran a command");
    }
    // Names ssh takes stay fine.
    for name in [
        "web1",
        "deploy@web1:2222",
        "[::1]:22",
        "a.b-c_d",
        "u.ser-1@h",
    ] {
        Tether::new()
            .args(&["-F", &config, "hosts", "-G", name])
            .run()
            .status(0);
    }
}
