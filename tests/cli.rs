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

/// bash's completion of `line` (cursor at its end) with tether's script, in `dir`, the
/// tether under test first on PATH (the script runs `tether tasks --names`).
fn bash_complete(dir: &std::path::Path, script: &std::path::Path, line: &str) -> Vec<String> {
    // COMP_WORDS as bash makes them: `:` is a word of its own (COMP_WORDBREAKS).
    let driver = format!(
        r#"source {script}
COMP_LINE={line:?}; COMP_POINT=${{#COMP_LINE}}
read -ra COMP_WORDS <<<"${{COMP_LINE//:/ : }}"
[[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMPREPLY=()
_tether_with_tasks tether "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        script = script.display()
    );
    let out = Command::new("bash")
        .args(["-c", &driver])
        .current_dir(dir)
        .env("PATH", path_with_tether())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    words.sort();
    words
}

fn path_with_tether() -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tether"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
}

const TASK_RECIPE: &str = "import \"deploy\";\nset(\"deploy_to\", \"/srv/x\");\nset(\"repo_url\", \"x\");\nstage(\"production\", || {});\ntask(\"hello:world\", || {});\n";

#[test]
fn task_and_stage_names_complete_from_the_recipe_in_bash_and_fish() {
    let r = support::recipe::RecipeDir::new("complete", TASK_RECIPE);
    let names = r.tether().args(&["tasks", "--names"]).run();
    names.status(0);
    let listed: Vec<&str> = names.stdout.lines().collect();
    assert_eq!(listed.first(), Some(&"production"), "{}", names.stdout);
    for name in ["deploy", "deploy:rollback", "git:check", "hello:world"] {
        assert!(listed.contains(&name), "{name} in {}", names.stdout);
    }
    // The strategy it does not use: not offered.
    assert!(!listed.contains(&"copy:check"), "{}", names.stdout);

    let script = r.path("tether.bash");
    let bash = Tether::new().args(&["completions", "bash"]).run();
    std::fs::write(&script, &bash.stdout).unwrap();
    // After the last `:` bash completes the rest of the word.
    assert_eq!(
        bash_complete(&r.dir, &script, "tether deploy:rol"),
        ["rollback"]
    );
    assert_eq!(
        bash_complete(&r.dir, &script, "tether prod"),
        ["production"]
    );
    assert_eq!(
        bash_complete(&r.dir, &script, "tether production hello:w"),
        ["world"]
    );
    assert_eq!(
        bash_complete(&r.dir, &script, "tether watch deploy:rol"),
        ["rollback"]
    );
    // Not where a task cannot be: after `run`, or as the value of an option.
    assert_eq!(
        bash_complete(&r.dir, &script, "tether run hello"),
        Vec::<String>::new()
    );
    assert_eq!(
        bash_complete(&r.dir, &script, "tether -s hello"),
        Vec::<String>::new()
    );

    let fish_script = r.path("tether.fish");
    let fish = Tether::new().args(&["completions", "fish"]).run();
    std::fs::write(&fish_script, &fish.stdout).unwrap();
    let complete = |line: &str| {
        let out = Command::new("fish")
            .args([
                "-c",
                &format!("source {}; complete -C {line:?}", fish_script.display()),
            ])
            .current_dir(&r.dir)
            .env("PATH", path_with_tether())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = complete("tether deploy:rol");
    assert!(
        out.lines().any(|l| l.starts_with("deploy:rollback")),
        "{out}"
    );
    let out = complete("tether watch hello:");
    assert!(out.lines().any(|l| l.starts_with("hello:world")), "{out}");

    // zsh: an interactive zsh on a pseudo-terminal (zpty), Tab after `tether deploy:rol`.
    let zsh = Tether::new().args(&["completions", "zsh"]).run();
    let fpath = r.path("zfunc");
    std::fs::create_dir_all(&fpath).unwrap();
    std::fs::write(fpath.join("_tether"), &zsh.stdout).unwrap();
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='> '; fpath=({fpath} \$fpath); autoload -U compinit; compinit -u -D; echo RE''ADY"
zpty -r z line '*READY*'
zpty -w -n z $'tether deploy:rol\t'
zpty -r z line '*deploy:rollback*' && print COMPLETED
zpty -d z
"#,
        fpath = fpath.display()
    );
    let mut child = Command::new("zsh")
        .args(["-f", "-c", &driver])
        .current_dir(&r.dir)
        .env("PATH", path_with_tether())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("COMPLETED"),
        "zsh did not complete deploy:rollback:\n{out}"
    );
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
