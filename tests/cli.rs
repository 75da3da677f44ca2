//! Completion scripts and the manual page, made from the same clap definitions as `--help`.

use crate::support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use support::tether::Tether;

/// Completions and the manual page refuse `--format json` (exit 2, one JSON error object),
/// as `tether ssh` does: a shell script or roff is no JSON object (stop 61 tester t102: both
/// printed as usual, exit 0).
#[test]
fn completions_and_the_manual_refuse_json() {
    for args in [&["completions", "bash"][..], &["man"]] {
        let out = Tether::new().args(&["--format", "json"]).args(args).run();
        out.status(2);
        let lines = out.objects();
        assert_eq!(lines.len(), 1, "{}", out.stdout);
        assert_eq!(lines[0]["type"], "error", "{}", out.stdout);
        assert_eq!(lines[0]["exit_code"], 2, "{}", out.stdout);
    }
}

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

const TASK_RECIPE: &str = "import \"deploy\";\nprint(\"said by the recipe\");\nset(\"deploy_to\", \"/srv/x\");\nset(\"repo_url\", \"x\");\nstage(\"production\", || {});\ntask(\"hello:world\", || {});\n";

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
    // What the recipe prints is not a name.
    assert!(!names.stdout.contains("said by"), "{}", names.stdout);

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
    // After a stage or a task, more tasks (stop 44 tester t54: nothing); after a subcommand
    // other than watch, none.
    for line in [
        "tether production hello:",
        "tether deploy:check hello:",
        "tether -n production deploy hello:",
    ] {
        let out = complete(line);
        assert!(
            out.lines().any(|l| l.starts_with("hello:world")),
            "{line}: {out}"
        );
    }
    let out = complete("tether hosts hello:");
    assert!(!out.contains("hello:world"), "{out}");

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
    // A comma, as ssh refuses it (tester t122: resolved as the `Host c1,c2` line matched it).
    Tether::new()
        .args(&["-F", &config, "hosts", "-G", "c1,c2"])
        .run()
        .status(2)
        .stderr_contains("characters ssh refuses");
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

/// `ssh -G -F ... HOST`'s value of `keyword`.
fn ssh_g(args: &[&str], keyword: &str) -> String {
    let out = Command::new("ssh").arg("-G").args(args).output().unwrap();
    assert!(out.status.success(), "ssh -G {args:?}");
    value_of(&String::from_utf8_lossy(&out.stdout), keyword)
}

fn value_of(text: &str, keyword: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{keyword} ")))
        .unwrap_or_else(|| panic!("no {keyword} in {text}"))
        .to_string()
}

/// Regression (issue 11): options given twice follow ssh where ssh has them (`-F`: the last
/// wins, wherever each stands; `-J`: refused, as ssh refuses a second `-J`), `--hosts`,
/// `--roles` and `-s` add up, and any other option takes its last value, as `-F` does.
#[test]
fn repeated_options_follow_ssh_or_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let a = temp.path().join("a");
    let b = temp.path().join("b");
    std::fs::write(&a, "Host h\n  HostName from-a\n").unwrap();
    std::fs::write(&b, "Host h\n  HostName from-b\n").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    for (first, last) in [(a, b), (b, a)] {
        let want = ssh_g(&["-F", first, "-F", last, "h"], "hostname");
        assert!(want.ends_with(&last[last.len() - 1..]), "{want}");
        for args in [
            vec!["-F", first, "-F", last, "hosts", "-G", "h"],
            vec!["-F", first, "hosts", "-G", "h", "-F", last],
            vec!["hosts", "-G", "h", "-F", first, "--ssh-config", last],
            vec!["--ssh-config", first, "hosts", "-F", last, "-G", "h"],
        ] {
            let out = Tether::new().args(&args).run();
            out.status(0);
            assert_eq!(value_of(&out.stdout, "hostname"), want, "{args:?}");
        }
    }
    // ssh refuses a second -J; so does tether, with ssh's advice.
    let ssh = Command::new("ssh")
        .args(["-G", "-F", a, "-J", "x", "-J", "y", "h"])
        .output()
        .unwrap();
    assert!(!ssh.status.success());
    for args in [
        vec!["-F", a, "-J", "x", "-J", "y", "hosts", "-G", "h"],
        vec!["-F", a, "-J", "x", "hosts", "-G", "h", "--jump", "y"],
    ] {
        Tether::new()
            .args(&args)
            .run()
            .status(2)
            .stderr_contains("-J/--jump given more than once (x, y)")
            .stderr_contains("one comma-separated list");
    }
    // tether's own options given twice take the last value, wherever each stands.
    for (args, json) in [
        (vec!["--format", "json", "--format", "text", "hosts"], false),
        (vec!["--format", "text", "hosts", "--format", "json"], true),
        (
            vec!["hosts", "--format", "json", "--format", "text", "-v", "-v"],
            false,
        ),
    ] {
        let mut all = vec!["-F", a];
        all.extend(args);
        all.extend(["-G", "h"]);
        let out = Tether::new().args(&all).run();
        out.status(0);
        assert_eq!(out.stdout.starts_with('{'), json, "{all:?}: {}", out.stdout);
    }
    // --hosts adds up on one side of the subcommand (refused on both: clap would keep one
    // side's); `tether hosts --hosts` selects.
    std::fs::write(
        temp.path().join("c"),
        "Host h1\n  HostName one\nHost h2\n  HostName two\nHost h3\n  HostName three\n",
    )
    .unwrap();
    let c = temp.path().join("c");
    let c = c.to_str().unwrap();
    for args in [
        vec!["-F", c, "hosts", "--hosts", "h1,h2"],
        vec!["-F", c, "--hosts", "h1", "--hosts", "h2", "hosts"],
        vec!["hosts", "--hosts", "h1", "-F", c, "--hosts", "h2"],
    ] {
        let out = Tether::new().args(&args).run();
        out.status(0)
            .stdout_contains("root@one:22")
            .stdout_contains("root@two:22")
            .stdout_lacks("three");
    }
    Tether::new()
        .args(&["-F", c, "--hosts", "h1", "hosts", "--hosts", "h2"])
        .run()
        .status(2)
        .stderr_contains("--hosts given both before and after the subcommand");
    // A host named twice is listed once, as a run reaches it once (stop 52 tester t82: two
    // rows for h2).
    for given in ["h[1-2],h[2-3]", "h2,h2", "h2,h[2-2],\"h2\""] {
        for json in [false, true] {
            let mut args = vec!["-F", c, "hosts", "--hosts", given];
            if json {
                args.extend(["--format", "json"]);
            }
            let out = Tether::new().args(&args).run();
            out.status(0);
            let rows = match json {
                true => out.stdout.matches(r#""host":"h2""#).count(),
                false => out.stdout.lines().filter(|l| l.starts_with("h2 ")).count(),
            };
            assert_eq!(rows, 1, "{given}: {}", out.stdout);
        }
    }
}

/// Regression (issue 11): `tether hosts` shows the whole route, outermost jump host first:
/// the jump hosts' own ProxyJump (and an outermost hop's ProxyCommand) included, as ssh
/// follows them; a route that loops is refused for that host only (exit 2).
#[test]
fn hosts_shows_the_whole_route() {
    let temp = tempfile::tempdir().unwrap();
    let cfg = temp.path().join("config");
    std::fs::write(
        &cfg,
        "Host t1\n  ProxyJump a,b\nHost t2\n  ProxyJump a\nHost t3\n  ProxyJump p\n\
         Host t4\n  ProxyCommand nc %h %p\nHost t5\n  ProxyJump t5\n\
         Host a\n  ProxyJump c\nHost c\n  ProxyJump d\nHost p\n  ProxyCommand nc %h %p\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = Tether::new()
        .args(&["-F", cfg, "hosts", "t1", "t2", "t3", "t4", "t5", "a", "d"])
        .run();
    out.status(2);
    let route = |host: &str| -> String {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no row for {host}: {}", out.stdout));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .nth(3)
            .unwrap()
            .to_string()
    };
    assert_eq!(route("t1"), "via d -> c -> a -> b");
    assert_eq!(route("t2"), "via d -> c -> a");
    assert_eq!(route("t3"), "via p (proxy `nc p 22`)");
    assert_eq!(route("t4"), "proxy `nc t4 22`");
    assert_eq!(route("a"), "via d -> c");
    assert_eq!(route("d"), "direct");
    assert!(
        out.stdout.contains("t5") && out.stdout.contains("ProxyJump loop"),
        "{}",
        out.stdout
    );
    let json = Tether::new()
        .args(&["-F", cfg, "hosts", "t1", "--format", "json"])
        .run();
    json.status(0).stdout_contains(
        r#""route":{"kind":"jump","hosts":"a,b","hops":[{"host":"d","address":"root@d:22"},{"host":"c","address":"root@c:22"},{"host":"a","address":"root@a:22"},{"host":"b","address":"root@b:22"}]}"#,
    );
}

/// A stderr whose reader has gone away (`tether ... 2>&1 | head`) loses tether's last words,
/// not its exit code (fresh-eyes finding: `eprintln!` panicked, exit 101, where the run's
/// own code was due).
#[test]
fn a_closed_stderr_keeps_the_exit_code() {
    let lab = support::lab::Lab::start(1);
    let r = support::recipe::RecipeDir::new("closed-stderr", "task(\"t\", || {\n");
    let cases: [(Command, i32); 3] = [
        (r.tether().args(&["t"]).command(), 4),
        (
            Tether::new()
                .ssh_config(&lab.ssh_config())
                .args(&["run", "--hosts", "host1", "--", "sleep 0.3; exit 3"])
                .command(),
            1,
        ),
        (
            Tether::new()
                .args(&["run", "--hosts", "nosuch.invalid", "--", "true"])
                .command(),
            3,
        ),
    ];
    for (mut command, code) in cases {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{command:?}");
    }
}

/// A command-line error whose option took its value from the environment (Capistrano's HOSTS
/// and ROLES, tether's TETHER_SSH_CONFIG) says so, with the value: a HOSTS left over in a CI
/// job is found (stop 34 tester: "invalid host ``: empty name" and "no recipe" said nothing of
/// HOSTS or ROLES). The same option given on the command line gets no note.
#[test]
fn an_error_names_the_environment_variable_an_option_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: (&str, &str), args: &[&str]| {
        Tether::new()
            .current_dir(dir.path())
            .env(env.0, env.1)
            .args(args)
            .run()
    };
    run(("HOSTS", "host1,,host2"), &["run", "--", "true"])
        .status(2)
        .stderr_contains("error: --hosts: an empty name (`--hosts ''`, or a comma with nothing beside it, `a,,b`): name each one\nnote: --hosts came from the environment: HOSTS=\"host1,,host2\"\n");
    run(("ROLES", "web"), &["run", "--hosts", "host1", "--", "true"])
        .status(2)
        .stderr_contains("\nnote: --roles came from the environment: ROLES=\"web\"\n");
    run(("ROLES", "web"), &["run", "--roles", "db", "--", "true"])
        .status(2)
        .stderr_lacks("note:");
    // The ssh config it named is said after an error in that file, and not after errors it
    // has no part in (stop 50 tester t71: after an unknown task, `--roles wbe`, `--hosts hots1`).
    let bad = dir.path().join("bad_config");
    std::fs::write(&bad, "Host web\n  Port nope\n").unwrap();
    let bad = bad.display().to_string();
    run(
        ("TETHER_SSH_CONFIG", &bad),
        &["run", "--hosts", "web", "--", "true"],
    )
    .status(2)
    .stderr_contains("Port")
    .stderr_contains(&format!(
        "\nnote: -F came from the environment: TETHER_SSH_CONFIG={bad:?}\n"
    ));
    let good = dir.path().join("good_config");
    std::fs::write(&good, "Host web\n  HostName 127.0.0.1\n").unwrap();
    let good = good.display().to_string();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "server(\"web\", #{ roles: [\"web\"] });\ntask(\"t\", || {});\n",
    )
    .unwrap();
    // Nor after a command line that makes no settings for reasons of other options (stop 52
    // tester t82: `-s 'bad key=1'`, `--hosts 'x[3-1]'`).
    for args in [
        &["nosuchtask"][..],
        &["--roles", "wbe", "t"],
        &["--hosts", "wbe", "t"],
        &["-s", "bad key=1", "t"],
        &["--hosts", "x[3-1]", "t"],
        &["-J", "a", "-J", "b", "t"],
        &["--hosts", "a,,b", "t"],
    ] {
        run(("TETHER_SSH_CONFIG", &good), args)
            .status(2)
            .stderr_lacks("note:");
    }
    // A bad host set from HOSTS is said as HOSTS's.
    run(("HOSTS", "x[3-1]"), &["run", "--", "true"])
        .status(2)
        .stderr_contains("\nnote: --hosts came from the environment: HOSTS=\"x[3-1]\"\n");
}

/// `--roles`/`--hosts` that select none of the recipe's servers are refused, exit 2, naming
/// what was given and the closest name, for a task as for `tether run` (stop 36 tester t20: a
/// task ran nothing and said done, exit 0, where `tether run` refused).
#[test]
fn filters_that_select_no_server_are_refused_for_tasks_as_for_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "server(\"web1\", #{ roles: [\"web\"] });\nserver(\"db1\", #{ roles: [\"db\"] });\n\
         role(\"spare\", []);\n\
         stage(\"production\", || { server(\"app1\", #{ roles: [\"app\"] }); });\n\
         task(\"t\", || { run_locally(\"echo ran > ran\"); });\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 9] = [
        // An empty name is none (stop 42 tester t45: "unknown role ``; did you mean").
        (&["--roles", ""], "--roles: an empty name (`--roles ''`"),
        (&["--roles", "web,,db"], "--roles: an empty name"),
        (&["--roles", " "], "--roles: an empty name"),
        (&["--hosts", ""], "an empty name"),
        (&["--hosts", "web1,,db1"], "an empty name"),
        (
            &["--roles", "web", "--hosts", "db1"],
            "no server of the recipe matches --roles web --hosts db1",
        ),
        (
            &["--roles", "spare"],
            "no server of the recipe matches --roles spare",
        ),
        (
            &["--roles", "db", "--hosts", "web1"],
            "no server of the recipe matches --roles db --hosts web1",
        ),
        (
            &["--roles", "wbe"],
            "--roles: unknown role `wbe`; did you mean `web`?",
        ),
    ];
    for (filters, said) in cases {
        for head in [&["t"][..], &["-n", "t"], &["run"]] {
            let mut args = head.to_vec();
            args.extend(filters);
            if head == ["run"] {
                args.extend(["--", "true"]);
            }
            Tether::new()
                .current_dir(dir.path())
                .args(&args)
                .run()
                .status(2)
                .stderr_contains(said);
        }
        assert!(
            !dir.path().join("ran").exists(),
            "{filters:?}: the task ran"
        );
    }
    // What does select a server runs; a stage's own servers are selected with it.
    Tether::new()
        .current_dir(dir.path())
        .args(&["production", "t", "--roles", "app"])
        .run()
        .status(0);
    assert!(dir.path().join("ran").exists());
}

/// Capistrano's and Deployer's habits get hints that tether takes, or are refused as they
/// would be (stop 44 tester t54): `HOSTS=host1` was told `-s hosts=host1`, which selected
/// nothing and ran on every host; `stage=production` `-s stage=...`, which is refused; `tether
/// deploy production` said `unknown task` alone; with every server in stages and none named,
/// a task said `unknown role or host`, exit 4, where Capistrano says the stage is not set.
#[test]
fn habits_get_hints_tether_takes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "stage(\"production\", || { server(\"app1\", #{ roles: [\"app\"] }); });\n\
         stage(\"staging\", || { server(\"app2\", #{ roles: [\"app\"] }); });\n\
         task(\"t\", || { run_locally(\"echo ran >> ran\"); });\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 14] = [
        (
            &["production", "t", "HOSTS=app1"],
            "unknown task `HOSTS=app1`: tether takes no KEY=VALUE arguments (Rake would put \
             them in its environment): select them with --hosts app1 (or HOSTS=app1 in the \
             environment)",
        ),
        (
            &["production", "t", "roles=app"],
            "select them with --roles app (or ROLES=app in the environment)",
        ),
        (
            &["t", "stage=production"],
            "name the stage first, before the tasks (`tether [OPTIONS] production TASK...`)",
        ),
        // Stop 44 tester t55: HOST=/ROLE= meant the filters too; no -s hint for a word that is
        // no variable name; a hint is no whole command, which would drop the options given
        // (`-n t production` was told `tether production t`, a real run).
        (
            &["production", "t", "HOST=app1"],
            "select them with --hosts app1 (or HOSTS=app1 in the environment)",
        ),
        (
            &["production", "t", "-s", "host=app1"],
            "-s host=app1: `host` would be a variable, which selects no hosts",
        ),
        (
            &["production", "t", "HOSTS="],
            "select them with --hosts NAMES (or HOSTS=NAMES in the environment)",
        ),
        (
            &["production", "t", "9X=1"],
            "`9X` is not a variable name either",
        ),
        (
            &["-n", "t", "production"],
            "`production` is a stage, which comes first, before the tasks (`tether [OPTIONS] \
             production TASK...`)",
        ),
        (
            &["production", "staging", "t"],
            "unknown task `staging`: `staging` is a stage, and this run names the stage \
             `production` already: one stage a run",
        ),
        (
            &["production", "t", "-s", "hosts=app1"],
            "-s hosts=app1: `hosts` would be a variable, which selects no hosts: select them \
             with --hosts app1 (or HOSTS=app1 in the environment)",
        ),
        (
            &["production", "t", "-s", "ROLES=app"],
            "-s ROLES=app: `ROLES` would be a variable, which selects no roles",
        ),
        (
            &["t", "production"],
            "unknown task `production`: `production` is a stage, which comes first, before the \
             tasks",
        ),
        (
            &["t"],
            "no stage selected, and the recipe's servers are declared in its stages \
             (production, staging): name one first, before the tasks (`tether [OPTIONS] STAGE \
             TASK...`)",
        ),
        (
            &["staging", "t", "production"],
            "`production` is a stage, and this run names the stage `staging` already",
        ),
    ];
    for (args, said) in cases {
        Tether::new()
            .current_dir(dir.path())
            .args(args)
            .run()
            .status(2)
            .stderr_contains(said);
        assert!(!dir.path().join("ran").exists(), "{args:?}: the task ran");
    }
    // Subcommands select a stage with --stage (stop 44 tester t55: `no server of the recipe
    // matches ` and nothing after).
    for sub in [&["run", "--", "true"][..], &["check"], &["hosts"]] {
        Tether::new()
            .current_dir(dir.path())
            .args(sub)
            .run()
            .status(2)
            .stderr_contains(
                "no stage selected, and the recipe's servers are declared in its stages \
                 (production, staging): select one with --stage production",
            );
    }
    Tether::new()
        .current_dir(dir.path())
        .args(&["production", "t", "--hosts", "app1"])
        .run()
        .status(0);
    assert!(dir.path().join("ran").exists());
}

/// `--hosts` with `--shard` puts a host in one part whichever subcommand selects it: by the
/// name of the recipe's server a `--hosts` name selects, in `tether run` and `tether hosts` as
/// in a task (stop 50 tester t73: with servers `root@web02` and `root@web03`, `run --hosts
/// web02,web03 --shard 1/3` ran on root@web02 and the task on root@web03, each exit 0).
#[test]
fn a_hosts_shard_is_the_same_for_run_hosts_and_a_task() {
    let lab = support::lab::Lab::builder()
        .names(&["host1", "host2", "host3", "host4"])
        .start();
    let mut r = support::recipe::RecipeDir::new(
        "shard-by-server",
        "for h in [\"host1\", \"host2\", \"host3\", \"host4\"] { server(\"root@\" + h, #{ roles: [\"app\"] }); }\n\
         task(\"t\", || { on(\"app\", \"echo ran\"); });\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    let names = "host1,host2,host3,host4";
    let ran = |out: &support::tether::Output| -> Vec<String> {
        let mut hosts: Vec<String> = ["host1", "host2", "host3", "host4"]
            .iter()
            .map(|h| format!("root@{h}"))
            .filter(|h| out.host_lines(h, '|') == ["ran"])
            .collect();
        hosts.sort();
        hosts
    };
    for n in 2..=3 {
        let mut all = Vec::new();
        for k in 1..=n {
            let shard = format!("{k}/{n}");
            let task = r
                .tether()
                .args(&["--hosts", names, "--shard", &shard, "t"])
                .run();
            let run = r
                .tether()
                .args(&["--hosts", names, "--shard", &shard, "run", "--", "echo ran"])
                .run();
            let (in_task, in_run) = (ran(&task), ran(&run));
            assert_eq!(in_task, in_run, "{shard}: {}\n{}", task.stdout, run.stdout);
            let listed = r
                .tether()
                .args(&["--hosts", names, "--shard", &shard, "hosts"])
                .run();
            for host in &in_task {
                assert!(
                    listed.stdout.contains(host.as_str()),
                    "{shard}: {}",
                    listed.stdout
                );
            }
            all.extend(in_task);
        }
        all.sort();
        assert_eq!(all.len(), 4, "{n} parts: {all:?}");
    }
}

/// A task of the command line that is no task of the recipe but a subcommand misspelt says
/// which (stop 50 tester t71: `tether chek` said `unknown task `chek`` alone); a recipe's task
/// close to it is named first, and a name close to nothing gets no hint.
#[test]
fn a_misspelt_subcommand_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "task(\"deploy\", || {});\ntask(\"hosts:list\", || {});\n",
    )
    .unwrap();
    for (word, said) in [
        (
            "chek",
            "error: unknown task `chek`; did you mean `tether check`?\n",
        ),
        (
            "hots",
            "error: unknown task `hots`; did you mean `tether hosts`?\n",
        ),
        (
            "deploi",
            "error: unknown task `deploi`; did you mean `deploy`?\n",
        ),
        ("zzzzzzzz", "error: unknown task `zzzzzzzz`\n"),
    ] {
        Tether::new()
            .current_dir(dir.path())
            .args(&[word])
            .run()
            .status(2)
            .stderr_contains(said);
    }
}
