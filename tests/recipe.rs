//! The recipe language: dry-run golden tests (no sshd) and real-sshd tests of the host-bound
//! functions, hooks, filters, stages and errors.

use crate::support;

use support::recipe::{lab, lab_recipe, RecipeDir};
use support::tether::Output;

const LANGUAGE: &str = r#"
set("application", "shop");
set("deploy_to", "/srv/shop");
set("release", || fetch("deploy_to") + "/releases/1");
server("web1", #{ roles: ["web", "app"] });
server("web2", #{ roles: ["web", "app"] });
server("deploy@10.0.0.5:2222", #{ roles: ["db"], primary: true, any_key: "x" });
role("resque", ["worker1", "worker2"]);
stage("production", || { server("web9", #{ roles: ["web"] }); set("branch", "main"); });

task("check:disk", "Free disk per host", || {
    on(["app", "db"], |host| {
        within(fetch("deploy_to"), || {
            let free = capture("df -Pk . | tail -1");
            if !test("[ -w . ]") { throw `${host.name}: not writable`; }
            with_env(#{ RAILS_ENV: "production" }, || run("bin/check"));
            as_user("deploy", || run("id -un"));
            upload("app.yml", "shared/config/app.yml");
        });
    });
    on("db", #{ in: "sequence", wait: 0 }, "echo one host at a time");
    let out = run_locally("git rev-parse HEAD");
    invoke("other:task");
});
task("other:task", "Print the release", || {
    on("resque", "echo " + quote(fetch("release")) + " " + fetch("branch", "none"));
});
before("check:disk", "hello");
task("hello", || print("hello from a hook"));
after("other:task", || print("after other:task"));
"#;

#[test]
fn dry_run_prints_the_plan_in_order() {
    let r = RecipeDir::new("plan", LANGUAGE);
    r.write("app.yml", "key: value\n");
    r.tether()
        .args(&["--dry-run", "production", "check:disk"])
        .run()
        .status(0)
        .stdout_is(
            "▶ hello
hello from a hook
▶ check:disk
web1                 | $ cd /srv/shop && { df -Pk . | tail -1; }
web2                 | $ cd /srv/shop && { df -Pk . | tail -1; }
deploy@10.0.0.5:2222 | $ cd /srv/shop && { df -Pk . | tail -1; }
web1                 | $ cd /srv/shop && { [ -w . ]; }
web2                 | $ cd /srv/shop && { [ -w . ]; }
deploy@10.0.0.5:2222 | $ cd /srv/shop && { [ -w . ]; }
web1                 | $ cd /srv/shop && export RAILS_ENV=production && { bin/check; }
web2                 | $ cd /srv/shop && export RAILS_ENV=production && { bin/check; }
deploy@10.0.0.5:2222 | $ cd /srv/shop && export RAILS_ENV=production && { bin/check; }
web1                 | $ cd /srv/shop && sudo -n -u deploy -- sh -c 'id -un'
web2                 | $ cd /srv/shop && sudo -n -u deploy -- sh -c 'id -un'
deploy@10.0.0.5:2222 | $ cd /srv/shop && sudo -n -u deploy -- sh -c 'id -un'
web1                 | upload app.yml -> shared/config/app.yml (11 bytes)
web2                 | upload app.yml -> shared/config/app.yml (11 bytes)
deploy@10.0.0.5:2222 | upload app.yml -> shared/config/app.yml (11 bytes)
deploy@10.0.0.5:2222 | $ echo one host at a time
local | $ git rev-parse HEAD
▶ other:task
worker1              | $ echo /srv/shop/releases/1 main
worker2              | $ echo /srv/shop/releases/1 main
▶ after(\"other:task\")
after other:task
",
        );
}

#[test]
fn dry_run_filters_and_overrides() {
    let r = RecipeDir::new("filters", LANGUAGE);
    r.tether()
        .args(&[
            "-n",
            "other:task",
            "--hosts",
            "worker2",
            "-s",
            "branch=feature/x",
        ])
        .run()
        .status(0)
        .stdout_contains("worker2 | $ echo /srv/shop/releases/1 feature/x")
        .stdout_lacks("worker1");
    // --roles narrows every on(): no resque host is also web, so nothing runs there.
    r.tether()
        .args(&["-n", "other:task", "--roles", "web"])
        .run()
        .status(0)
        .stdout_lacks("worker");
}

/// A name `--hosts` does not find is answered with the servers closest to it as `--hosts`
/// reads them: one with a bracket of its own in double quotes (stop 52 tester t80: `--hosts
/// 'x[1]'`, which is `x1`, was told "did you mean `x[1]`?", which failed the same way).
#[test]
fn an_unknown_host_is_answered_as_hosts_reads_names() {
    let r = RecipeDir::new(
        "bracketed",
        "server(\"x[1]\", #{ roles: [\"app\"] });\nserver(\"web1\", #{ roles: [\"app\"] });\n\
         task(\"t\", || { on(\"app\", \"true\"); });\n",
    );
    r.tether()
        .args(&["-n", "t", "--hosts", "x[1]"])
        .run()
        .status(2)
        .stderr_contains("--hosts: `x1` is not a server of this recipe; did you mean `\"x[1]\"`?");
    r.tether()
        .args(&["-n", "t", "--hosts", "\"x[1]\""])
        .run()
        .status(0)
        // Written in quotes, as the set it is not.
        .stdout_contains("\"x[1]\" | $ true")
        .stdout_lacks("web1");
    r.tether()
        .args(&["-n", "t", "--hosts", "web2"])
        .run()
        .status(2)
        .stderr_contains("did you mean `web1`?");
}

#[test]
fn tasks_lists_descriptions_and_hooks() {
    let r = RecipeDir::new("tasks", LANGUAGE);
    r.tether()
        .args(&["tasks", "--hooks"])
        .run()
        .status(0)
        .stdout_contains("check:disk  Free disk per host\n")
        .stdout_contains("before: hello")
        .stdout_contains("other:task  Print the release\n")
        .stdout_contains("after: (closure)")
        .stdout_contains("stages: production");
}

fn recipe_error(r: &RecipeDir, args: &[&str]) -> Output {
    let out = r.tether().args(args).run();
    out.status(4);
    out
}

/// An error in a closure a stage file defined (a hook, a task) names the stage file's line, and
/// one in a recipe function it calls names the recipe's, called from the stage file (carried
/// over, stop 30: both named deploy.rhai, at the stage file's line and column).
#[test]
fn errors_in_a_stage_files_closures_name_the_stage_file() {
    let r = RecipeDir::new(
        "stage-closures",
        "task(\"a\", || { print(\"a\"); });\nfn helper() { nope2(); }\n",
    );
    r.write(
        "deploy/hooked.rhai",
        "print(\"stage\");\n\nbefore(\"a\", || {\n    nope();\n});\n",
    );
    r.write(
        "deploy/calls.rhai",
        "after(\"a\", || { helper(); });\ntask(\"b\", || {\n  let x = 1;\n  x.nope3();\n});\n",
    );
    recipe_error(&r, &["hooked", "a"])
        .stderr_contains("deploy/hooked.rhai:4:5: Function not found: nope ()")
        .stderr_contains("4 |     nope();");
    recipe_error(&r, &["calls", "a"])
        .stderr_contains("deploy.rhai:2:15: Function not found: nope2 ()")
        .stderr_contains("called from deploy/calls.rhai:1:17");
    recipe_error(&r, &["calls", "b"])
        .stderr_contains("deploy/calls.rhai:4:5: Function not found: nope3 (i64)");
    // A warning placed at a call in such a closure names the stage file too.
    r.write(
        "deploy/again.rhai",
        "print(\"stage\");\ntask(\"b\", || {\n  invoke(\"a\");\n});\n",
    );
    recipe_error(&r, &["again", "a", "b"])
        .stdout_contains("warning: deploy/again.rhai:3:3: invoke(\"a\") runs nothing");
}

/// The hosts of an `on` closure run at once, each with copies of its own of what the closure
/// captured: a closure that holds a captured value through a command (a method call on it)
/// never makes another host's fail with Rhai's "Data race detected" (stop 51 tester t77: a
/// stdlib deploy:check failed six of 32 hosts so under load), and one that changes a captured
/// variable is refused by name, at the `on`, as the change would be lost.
#[test]
fn each_hosts_closure_has_its_own_copy_of_what_it_captured() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "captured",
        r#"fn slow() { run("sleep 0.3"); this.len() }
task("held", || {
    let files = ["a", "b"];
    let seen = on("all", |host| files.slow());
    print(`seen ${seen.values()}`);
});
task("changed", || {
    let found = [];
    let n = 1;
    on("all", |host| { let x = n + 1; found.push(host.name); x });
});
"#,
    );
    for round in 0..3 {
        r.tether()
            .args(&["held"])
            .run()
            .status(0)
            .stdout_contains("seen [2, 2, 2]")
            .stdout_lacks("Data race");
        let out = r.tether().args(&["changed"]).run();
        out.status(4).stdout_lacks("Data race").stderr_contains(
            "on(): the closure changed `found`, a variable it captured: each host's closure has \
             its own copy (the hosts run at once), so the change reaches neither the other \
             hosts nor the code after the `on`; return the value instead (`on` returns host -> \
             value)",
        );
        assert!(
            out.stderr.contains("deploy.rhai:13:5"),
            "round {round}: {}",
            out.stderr
        );
    }
}

/// `host_set(names)` writes host names as folded output does (stop 51 tester t76: the stdlib's
/// messages listed a fleet one name at a time): numbers of one prefix in ranges, padding kept,
/// a name with nodeset's own syntax quoted; a string is one name; anything else is refused;
/// under `--no-fold` and JSON, the names as given.
#[test]
fn host_set_writes_hosts_as_folded_output_does() {
    let r = RecipeDir::new(
        "host-set",
        r#"task("a", || {
    print(host_set(["web03", "web01", "db1", "web02", "web05", "web1", "ssh://[::1]:22"]));
    print(host_set("web7"));
    print(`[${host_set([])}]`);
});
task("b", || { host_set(["web1", 2]); });
"#,
    );
    r.tether()
        .folded()
        .args(&["a"])
        .run()
        .status(0)
        .stdout_contains("\"ssh://[::1]:22\",db1,web[1,01-03,05]\n")
        .stdout_contains("web7\n")
        .stdout_contains("[]\n");
    recipe_error(&r, &["b"]).stderr_contains("host_set(): the names must be strings, not i64");
    // Where output is not folded, every name as given (stop 51 tester t77: `--no-fold` did not
    // reach the stdlib's sets).
    for how in ["--no-fold", "--format=json"] {
        r.tether()
            .folded()
            .args(&[how, "a"])
            .run()
            .status(0)
            .stdout_contains("web03, web01, db1, web02, web05, web1, ssh://[::1]:22");
    }
}

#[test]
fn errors_name_file_line_and_column() {
    let r = RecipeDir::new(
        "errors",
        "set(\"a\", 1);\ntask(\"x\", || {\n    let n = 1;\n    n.nope();\n});\n",
    );
    recipe_error(&r, &["x"])
        .stderr_contains("deploy.rhai:4:7: Function not found: nope (i64)")
        .stderr_contains("4 |     n.nope();\n  |       ^");

    let r = RecipeDir::new("syntax", "task(\"x\", || {\n  let = 3;\n});\n");
    recipe_error(&r, &["x"]).stderr_contains("deploy.rhai:2:7: syntax error");

    let r = RecipeDir::new("unknown", "task(\"deploy:check\", || {});\ntask(\"y\", || { on(\"nope\", \"true\"); });\nserver(\"a\", #{ roles: [\"web\"] });\n");
    // Names on the command line are usage errors (exit 2), as unknown roles and hosts are.
    r.tether()
        .args(&["deploy:chek"])
        .run()
        .status(2)
        .stderr_contains("did you mean `deploy:check`");
    recipe_error(&r, &["y"]).stderr_contains("deploy.rhai:2:16: unknown role or host `nope`");
    r.tether()
        .args(&["y", "--roles", "wbe"])
        .run()
        .status(2)
        .stderr_contains("unknown role `wbe`; did you mean `web`?");

    // An unknown task in a hook is named at the call that names it (stop 30: no place at all).
    let r = RecipeDir::new("hook", "task(\"a\", || {});\nafter(\"b\", \"a\");\n");
    recipe_error(&r, &["a"])
        .stderr_contains("deploy.rhai:2:1: after(\"b\", ...): unknown task `b`");
    // Every path that reads the recipe refuses it: `tasks` too.
    for args in [&["tasks"][..], &["tasks", "--hooks"], &["-n", "a"]] {
        recipe_error(&r, args)
            .stderr_contains("deploy.rhai:2:1: after(\"b\", ...): unknown task `b`");
    }
    let r = RecipeDir::new(
        "hook-target",
        "task(\"a\", || {});\nbefore(\"a\", || {});\n  before(\"a\", \"nosuch\");\n",
    );
    recipe_error(&r, &["tasks"])
        .stderr_contains("deploy.rhai:3:3: before(\"a\", \"nosuch\"): unknown task `nosuch`");
    // In a stage closure and in a stage file: the line there.
    let r = RecipeDir::new(
        "hook-stage",
        "task(\"a\", || {});\nstage(\"production\", || {\n    after(\"a\", \"ghost\");\n});\n",
    );
    r.write(
        "deploy/staging.rhai",
        "print(1);\nbefore(\"gone\", \"a\");\n",
    );
    recipe_error(&r, &["production", "a"])
        .stderr_contains("deploy.rhai:3:5: after(\"a\", \"ghost\"): unknown task `ghost`");
    recipe_error(&r, &["staging", "a"])
        .stderr_contains("deploy/staging.rhai:2:1: before(\"gone\", ...): unknown task `gone`");

    let r = RecipeDir::new(
        "stage",
        "stage(\"production\", || {});\ntask(\"a\", || {});\n",
    );
    r.tether()
        .args(&["prodution", "a"])
        .run()
        .status(2)
        .stderr_contains("`prodution` is neither a stage nor a task; did you mean `production`?");

    // An error inside an imported local module names the module's file.
    let r = RecipeDir::new(
        "module",
        "import \"lib/helpers\" as h;\ntask(\"m\", || { h::broken(); });\n",
    );
    r.write(
        "lib/helpers.rhai",
        "fn broken() {\n    undefined_thing();\n}\n",
    );
    recipe_error(&r, &["m"])
        .stderr_contains("lib/helpers.rhai:2:5: Function not found: undefined_thing");
}

#[test]
fn a_runaway_loop_is_stopped_by_the_operations_limit() {
    let r = RecipeDir::new("loop", "task(\"spin\", || { loop { } });\n");
    recipe_error(&r, &["spin"])
        .stderr_contains("Too many operations")
        .stderr_contains("deploy.rhai:1:19: task `spin` (defined at ")
        .stderr_contains("deploy.rhai:1:1) ran away");
}

/// Many values, each under the per-value limits, that together would exhaust what the process
/// may have: stopped as a runaway at its place (stop 44 tester t54: under `ulimit -v` the
/// allocation failed and tether aborted, exit 134, no word): values a task keeps, a
/// recursion that keeps a value in every frame, values the recipe's top level keeps.
#[test]
fn a_recipe_that_keeps_more_than_tether_may_hold_is_stopped_not_aborted() {
    use std::os::unix::process::CommandExt as _;
    let r = RecipeDir::new(
        "hog",
        r#"fn deeper(n, s) {
    let mine = s + n;
    if n < 60 { deeper(n + 1, s) } else { 0 }
}
task("keep", || {
    let s = "x";
    s.pad(40000000, 'x');
    for i in 0..1000 {
        set("v" + i, s + i);
    }
});
task("deep", || {
    let s = "x";
    s.pad(40000000, 'x');
    deeper(0, s);
});
"#,
    );
    // 1.5 GB of address space, as `ulimit -v 1500000`: the recipe limit is half of it.
    let limited = |args: &[&str]| {
        let mut cmd = r.tether().args(args).command();
        // SAFETY: setrlimit is async-signal-safe, called in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 1_500_000 * 1024,
                    rlim_max: 1_500_000 * 1024,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, err) = limited(&["keep"]);
    assert_eq!(status, Some(4), "{err}");
    assert!(
        err.contains("deploy.rhai:9:"),
        "not placed in the loop: {err}"
    );
    assert!(
        err.contains(
            "task `keep` (defined at deploy.rhai:5:1) ran away: tether held more than 732 MiB"
        ),
        "{err}"
    );
    let (status, err) = limited(&["deep"]);
    assert_eq!(status, Some(4), "{err}");
    assert!(
        err.contains("ran away: tether held more than 732 MiB"),
        "{err}"
    );

    r.write(
        "deploy.rhai",
        "let s = \"x\";\ns.pad(40000000, 'x');\nfor i in 0..1000 {\n    set(\"v\" + i, s + i);\n}\n",
    );
    let (status, err) = limited(&["deploy"]);
    assert_eq!(status, Some(4), "{err}");
    assert!(
        err.contains("deploy.rhai:4:5: ran away: tether held more than 732 MiB"),
        "{err}"
    );
}

/// A runaway is placed at the loop or recursion, wherever it is: in the task, in a function
/// it calls, in an imported module, in an `on` closure on a host's thread.
#[test]
fn a_runaway_is_placed_at_the_loop_and_names_the_task() {
    let lab = lab(&["web1"]);
    let r = lab_recipe(
        &lab,
        "loops",
        r#"import "lib/spin" as spin;
fn helper() {
    let i = 0;
    while true {
        i += 1;
    }
}
task("in_fn", || {
    helper();
});
task("in_module", || { spin::forever(); });
task("on_host", || {
    on(["web1"], |host| {
        run("true");
        let n = 0;
        do { n += 1; } while n >= 0;
    });
});
"#,
    );
    r.write(
        "lib/spin.rhai",
        "fn forever() {\n    let x = 0;\n    loop {\n        x += 1;\n    }\n}\n",
    );
    // lab_recipe puts three server() lines first: the body's line N is deploy.rhai:N+3.
    let out = recipe_error(&r, &["in_fn"]);
    out.stderr_contains("deploy.rhai:11:1) ran away: Too many operations");
    let err = &out.stderr;
    assert!(
        err.contains("deploy.rhai:7:") || err.contains("deploy.rhai:8:"),
        "not placed in the while loop of helper(): {err}"
    );
    let out = recipe_error(&r, &["in_module"]);
    let err = &out.stderr;
    assert!(
        err.contains("lib/spin.rhai:3:") || err.contains("lib/spin.rhai:4:"),
        "not placed in the module's loop: {err}"
    );
    assert!(err.contains("deploy.rhai:14:1) ran away"), "{err}");
    let out = r.tether().args(&["on_host"]).run();
    let err = &out.stderr;
    assert!(
        err.contains("deploy.rhai:19:"),
        "not placed in the closure's loop: {err}"
    );
    assert!(
        err.contains("the closure ran away: Too many operations"),
        "{err}"
    );
}

/// A stage's closure and a failure hook that run away are placed at their loop too (stop 46
/// tester t60: `error: Too many operations` and `warning: failure hook failed: Too many
/// operations`, no position).
#[test]
fn a_runaway_stage_or_failure_hook_is_placed_at_its_loop() {
    let r = RecipeDir::new(
        "loops-elsewhere",
        "stage(\"prod\", || {\n    loop {}\n});\ntask(\"t\", || { });\n",
    );
    let out = r.tether().args(&["prod", "t"]).run();
    out.status(4)
        .stderr_contains("deploy.rhai:2:")
        .stderr_contains("stage `prod` ran away: Too many operations");
    let r = RecipeDir::new(
        "loops-in-hook",
        "\n\n\non_failure(|e| {\n    let n = 0;\n    loop { n += 1; }\n});\n\
         task(\"t\", || { fail(\"x\"); });\n",
    );
    let out = r.tether().args(&["t"]).run();
    out.status(1)
        .stdout_contains("warning: failure hook failed: deploy.rhai:6:")
        .stdout_contains("the failure hook ran away: Too many operations");
}

#[test]
fn host_bound_functions_against_real_hosts() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "fns",
        r#"
task("t", || {
    on(["app", "db"], |host| {
        run("mkdir -p /srv/app/shared/config");
        within("/srv/app", || {
            let pwd = capture("pwd");
            if pwd != "/srv/app" { throw "bad pwd " + pwd; }
            if !test("[ -d shared ]") { throw "no shared"; }
            if test("[ -e missing ]") { throw "test lied"; }
            within("shared", || {
                with_env(#{ GREETING: "hi there", OTHER: "it's" }, || {
                    run("echo \"$GREETING|$OTHER|$(pwd)\" > env.txt");
                });
            });
            let who = as_user("nobody", || capture("id -un"));
            upload("local.txt", "shared/config/uploaded.txt");
            let info = `${host.name} ${host.port} ${host.roles} ${host.has_role("db")} ${host.props.flavour}`;
            run("echo " + quote(info + " " + who) + " > /srv/app/info.txt");
        });
    });
    let r = on("db", "cat /srv/app/info.txt; echo err >&2");
    if r["db1"].code != 0 || r["db1"].stderr != "err\n" { throw "bad map " + r; }
    print("local: " + run_locally("echo from-local"));
});
"#,
    );
    r.write("local.txt", "uploaded content\n");
    let out = r.tether().args(&["t"]).run();
    out.status(0)
        .stdout_contains("local: from-local")
        .stdout_contains("db1  | db1 ");
    for h in ["web1", "web2", "db1"] {
        let root = &lab.host(h).root_dir;
        assert_eq!(
            std::fs::read_to_string(root.join("app/shared/env.txt")).unwrap(),
            "hi there|it's|/srv/app/shared\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("app/shared/config/uploaded.txt")).unwrap(),
            "uploaded content\n"
        );
        let info = std::fs::read_to_string(root.join("app/info.txt")).unwrap();
        let port = lab.host(h).port;
        let expected_roles = if h == "db1" {
            "[\"db\"] true"
        } else {
            "[\"web\", \"app\"] false"
        };
        let flavour = if h == "web1" { "blue" } else { "" };
        assert_eq!(
            info,
            format!("{h} {port} {expected_roles} {flavour} nobody\n")
        );
    }
}

#[test]
fn failures_stop_dispatch_run_failure_hooks_and_name_hosts() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "fail",
        r#"
task("deploy", || {
    on("all", |host| {
        if host.name == "web2" { run("echo broken >&2; exit 7"); }
        run("sleep 1; echo first >> /srv/log");
        run("echo second >> /srv/log");
    });
    on("all", "echo never >> /srv/log");
});
on_failure(|err| { on("all", "echo cleanup >> /srv/cleanup"); print("failure hook saw: " + err.sub_string(0, 14)); });
"#,
    );
    let out = r.tether().args(&["deploy"]).run();
    out.status(1)
        .stderr_contains("web2: `echo broken >&2; exit 7` failed with exit status 7")
        .stderr_contains("    broken")
        // Placed at the closure's command that failed, not at the `on` call (fresh-eyes
        // finding, stop 30).
        .stderr_contains("(at deploy.rhai:7:34, in task `deploy`)")
        .stdout_contains("failure hook saw: 1 of 3 hosts");
    for h in ["web1", "db1"] {
        // In flight when web2 failed: finished; the next command was not dispatched.
        assert_eq!(
            std::fs::read_to_string(lab.host(h).root_dir.join("log")).unwrap(),
            "first\n"
        );
    }
    assert!(!lab.host("web2").root_dir.join("log").exists());
    for h in ["web1", "web2", "db1"] {
        assert_eq!(
            std::fs::read_to_string(lab.host(h).root_dir.join("cleanup")).unwrap(),
            "cleanup\n"
        );
    }
}

/// Panics unless `text` holds each of `lines` in that order.
fn in_order(text: &str, lines: &[&str]) {
    let mut from = 0;
    for line in lines {
        let at = text[from..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing after byte {from}:\n{text}"));
        from += at + line.len();
    }
}

/// What a task (or a closure hook) prints after a task it invoked ended comes under its own
/// heading again, in text as in JSON (stop 67 tester t116: a before hook's commands after its
/// `invoke` printed under the invoked task's heading).
#[test]
fn a_task_is_headed_again_after_a_task_it_invoked() {
    let lab = lab(&["web1"]);
    let r = lab_recipe(
        &lab,
        "reheading",
        r#"
task("inner", || { on("web1", "echo inner"); });
task("inner2", || { on("web1", "echo inner2"); });
task("outer", || { on("web1", "echo one"); invoke("inner2"); on("web1", "echo two"); });
before("outer", || { invoke("inner"); on("web1", "echo hooked"); });
"#,
    );
    let out = r.tether().args(&["outer"]).run();
    out.status(0);
    let text = &out.stdout;
    let order = [
        "▶ before(\"outer\")\n",
        "▶ inner\n",
        "web1 | inner\n",
        "▶ before(\"outer\")\n",
        "» web1 $ echo hooked\n",
        "▶ outer\n",
        "web1 | one\n",
        "▶ inner2\n",
        "web1 | inner2\n",
        "▶ outer\n",
        "» web1 $ echo two\n",
        "web1 | two\n",
    ];
    in_order(text, &order);
    // Each heading once per stretch of its own lines.
    assert_eq!(text.matches("▶ outer\n").count(), 2, "{text}");
    assert_eq!(text.matches("▶ inner\n").count(), 1, "{text}");
}

/// A failure hook's failure is folded as the run's own error is: hosts that failed alike are
/// one entry headed by their set, every host on its own with `--no-fold` (stop 67 tester t114:
/// the warning listed `web1:` and `web2:` apart where the error folded them).
#[test]
fn a_failure_hooks_failure_is_folded_as_the_error_is() {
    let lab = lab(&["web1", "web2"]);
    let r = lab_recipe(
        &lab,
        "hook-fold",
        r#"
task("t", || { on("web", "exit 3"); });
on_failure(|err| { on("web", "exit 9"); });
"#,
    );
    let out = r.tether().folded().args(&["t"]).run();
    out.status(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("failure hook failed: ")
            && text.contains("2 of 2 hosts failed\nweb[1-2]: `exit 9` failed with exit status 9"),
        "{text}"
    );
    assert!(!text.contains("web1: `exit 9`"), "{text}");
    let out = r.tether().args(&["t"]).run();
    out.status(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("web1: `exit 9` failed"), "{text}");
    assert!(text.contains("web2: `exit 9` failed"), "{text}");
}

#[test]
fn hooks_run_in_order_and_tasks_once() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "hooks",
        r#"
fn mark(what) { on("db", "echo " + what + " >> /srv/order"); }
task("a", || mark("a"));
task("b", || { mark("b"); invoke("a"); });
task("c", || mark("c"));
before("b", "a");
before("b", || mark("before-b-closure"));
after("b", "c");
after("c", || mark("after-c"));
stage("staging", || { set("x", "staged"); });
task("show", || mark(fetch("x", "unstaged")));
"#,
    );
    // `a` and `c` of the command line ran for `b` already: done, and said so (fresh-eyes
    // finding: they were skipped without a word).
    r.tether()
        .args(&["b", "a", "c"])
        .run()
        .status(0)
        .stdout_contains(
            "warning: task `a` already ran in this run, for `b`: not run again (a task runs \
             once per run)",
        )
        .stdout_contains("warning: task `c` already ran in this run, for `b`");
    r.tether().args(&["staging", "show"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(lab.host("db1").root_dir.join("order")).unwrap(),
        "a\nbefore-b-closure\nb\nc\nafter-c\nstaged\n"
    );
}

/// A task reached again while it runs (a before hook of its before hook, an after hook that
/// invokes it) is a circular dependency, refused naming the circle and the hook or invoke that
/// closed it, as Rake refuses one (stop 30, fresh-eyes finding: `before("a", "b");
/// before("b", "a")` ran b, then a, exit 0, the circle skipped as "already ran"). A circle of
/// hooks alone is refused before any task runs, with `-n` too, whichever task of the command
/// line reaches it (stop 47 tester: `after("a", "b"); after("b", "a")` ran a's and b's
/// commands first); one closed by an `invoke` in a body is met as it runs.
#[test]
fn circular_hooks_are_refused_naming_the_circle() {
    let r = RecipeDir::new(
        "circular",
        "task(\"a\", || { print(\"a-ran\"); });\ntask(\"b\", || { print(\"b-ran\"); });\n\
         task(\"c\", || { invoke(\"a\"); });\ntask(\"d\", || { print(\"d-ran\"); });\n",
    );
    for (hooks, args, said) in [
        (
            "before(\"a\", \"b\");\nbefore(\"b\", \"a\");\n",
            &["a"][..],
            "circular dependency: a => b => a (task `a` would be invoked again by before(\"b\", \
             \"a\") at deploy.rhai:6:1 while it runs; a task cannot run before or after itself); \
             nothing was run",
        ),
        (
            "after(\"a\", \"d\");\nafter(\"d\", \"a\");\n",
            &["a"][..],
            "circular dependency: a => d => a (task `a` would be invoked again by after(\"d\", \
             \"a\") at deploy.rhai:6:1",
        ),
        (
            "before(\"c\", \"c\");\n",
            &["c"][..],
            "circular dependency: c => c (task `c` would be invoked again by before(\"c\", \
             \"c\") at deploy.rhai:5:1",
        ),
        (
            "after(\"c\", \"c\");\n",
            &["c"][..],
            "circular dependency: c => c (task `c` would be invoked again by after(\"c\", \
             \"c\") at deploy.rhai:5:1",
        ),
        // Before and after hooks in one circle, entered from a task's hook.
        (
            "before(\"d\", \"a\");\nafter(\"a\", \"b\");\nbefore(\"b\", \"d\");\n",
            &["d"][..],
            "circular dependency: d => a => b => d (task `d` would be invoked again by \
             before(\"b\", \"d\") at deploy.rhai:7:1",
        ),
        // Reached from the second task of the command line: the first does not run either.
        (
            "after(\"b\", \"a\");\nafter(\"a\", \"b\");\n",
            &["d", "b"][..],
            "circular dependency: b => a => b (task `b` would be invoked again by after(\"a\", \
             \"b\") at deploy.rhai:6:1",
        ),
        (
            "after(\"b\", \"a\");\nafter(\"a\", \"b\");\n",
            &["-n", "a"][..],
            "circular dependency: a => b => a (task `a` would be invoked again by after(\"b\", \
             \"a\") at deploy.rhai:5:1",
        ),
        // Reached by an invoke: refused before the invoked task runs.
        (
            "after(\"a\", \"b\");\nafter(\"b\", \"a\");\n",
            &["c"][..],
            "circular dependency: a => b => a (task `a` would be invoked again by after(\"b\", \
             \"a\") at deploy.rhai:6:1 while it runs; a task cannot run before or after \
             itself); task `a` was not run",
        ),
        // A hook leading back to a task running around the one invoked (as a user's after
        // hook on a task the stdlib's deploy:publishing invokes): refused before it runs.
        (
            "after(\"a\", \"c\");\n",
            &["c"][..],
            "circular dependency: c => a => c (task `c` would be invoked again by after(\"a\", \
             \"c\") at deploy.rhai:5:1 while it runs; a task cannot run before or after \
             itself); task `a` was not run",
        ),
        // Through the failure path's task, which any run may need: refused before the run.
        (
            "task(\"deploy:failed\", || {});\nafter(\"deploy:failed\", \"b\");\n\
             after(\"b\", \"deploy:failed\");\n",
            &["d"][..],
            "circular dependency: deploy:failed => b => deploy:failed (task `deploy:failed` \
             would be invoked again by after(\"b\", \"deploy:failed\") at deploy.rhai:7:1 \
             while it runs; a task cannot run before or after itself); nothing was run",
        ),
        // Closed by a hook declared in a task's body: refused before the task it reaches runs.
        (
            "task(\"e\", || { after(\"d\", \"a\"); });\nafter(\"a\", \"d\");\n",
            &["e", "a"][..],
            "circular dependency: a => d => a (task `a` would be invoked again by after(\"d\", \
             \"a\") at deploy.rhai:5:16 while it runs; a task cannot run before or after \
             itself); task `a` was not run",
        ),
        // Closed by an invoke: met as it runs.
        (
            "before(\"a\", \"b\");\nafter(\"b\", \"c\");\n",
            &["a"][..],
            "deploy.rhai:3:16: circular dependency: a => b => c => a (task `a` was invoked again \
             while it runs",
        ),
    ] {
        let text = std::fs::read_to_string(r.path("deploy.rhai")).unwrap();
        let base: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        r.write("deploy.rhai", &(base + hooks));
        let out = recipe_error(&r, args);
        out.stderr_contains(said).stdout_lacks("runs nothing");
        if !said.contains("was invoked") {
            out.stdout_lacks("a-ran")
                .stdout_lacks("b-ran")
                .stdout_lacks("d-ran");
        }
    }
    // A circle no task of the command line reaches stops nothing.
    let text = std::fs::read_to_string(r.path("deploy.rhai")).unwrap();
    let base: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    r.write(
        "deploy.rhai",
        &(base.clone() + "after(\"a\", \"b\");\nafter(\"b\", \"a\");\n"),
    );
    r.tether()
        .args(&["d"])
        .run()
        .status(0)
        .stdout_contains("d-ran");
    // Not a circle: a task of the command line that ran for another is still only skipped.
    let text = std::fs::read_to_string(r.path("deploy.rhai")).unwrap();
    let base: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    r.write("deploy.rhai", &(base + "before(\"a\", \"b\");\n"));
    r.tether()
        .args(&["a", "b"])
        .run()
        .status(0)
        .stdout_contains("warning: task `b` already ran in this run, for `a`");
}

#[test]
fn run_roles_reads_the_recipe() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(&lab, "runroles", "");
    r.tether()
        .args(&["run", "--roles", "web", "--", "echo hi"])
        .run()
        .status(0)
        .stdout_contains("web1 | hi")
        .stdout_contains("web2 | hi")
        .stdout_lacks("db1 |");
}

#[test]
fn ctrl_c_stops_running_commands_runs_failure_hooks_and_exits_130() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "ctrlc",
        r#"
task("slow", || {
    on("all", "sleep 3; echo finished >> /srv/log");
    on("all", "echo never >> /srv/log");
});
on_failure(|err| { on("all", "echo cleanup: " + quote(err) + " >> /srv/log"); });
"#,
    );
    let child = r.tether().args(&["slow"]).spawn();
    // Wait until the sleep runs everywhere, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while lab
        .hosts()
        .iter()
        .any(|h| lab.connection_pids(&h.name).is_empty())
    {
        assert!(std::time::Instant::now() < deadline, "never connected");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    for h in lab.hosts() {
        assert_eq!(
            // The sleep was stopped (its process group on the host), so nothing was finished.
            std::fs::read_to_string(h.root_dir.join("log")).unwrap(),
            "cleanup: interrupted\n",
            "{}",
            h.name
        );
    }
}

#[test]
fn a_script_error_inside_on_names_the_host_and_the_line() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "closure-error",
        "task(\"t\", || {\n    on(\"db\", |host| {\n        let n = 1;\n        n.frobnicate();\n    });\n});\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(4)
        .stderr_contains("db1: ")
        .stderr_contains("deploy.rhai:7:11: Function not found: frobnicate (i64)");
    // Once: one position, one caret.
    let out = r.tether().args(&["t"]).run();
    assert_eq!(out.stderr.matches('^').count(), 1, "{}", out.stderr);

    // A recipe catches it as a failure of kind `recipe` naming the hosts, as any other.
    let caught = lab_recipe(
        &lab,
        "closure-error-caught",
        r#"
task("t", || {
    for body in [|h| { let x = 1 / 0; }, |h| { throw "mine"; }, |h| { nosuch(); }] {
        try {
            on("web", body);
        } catch (err) {
            print(`caught ${type_of(err)} ${err.kind} ${err.hosts}`);
        }
    }
});
"#,
    );
    let out = caught.tether().args(&["t"]).run();
    out.status(0);
    assert_eq!(
        out.stdout
            .matches("caught Failure recipe [\"web1\", \"web2\"]")
            .count(),
        3,
        "{}",
        out.stdout
    );
}

#[test]
fn ctrl_c_stops_a_runaway_loop() {
    let r = RecipeDir::new(
        "ctrlc-loop",
        "task(\"spin\", || { let i = 0; loop { i += 1; } });\n",
    );
    let child = r.tether().args(&["spin"]).spawn();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn pty_option_gives_commands_a_terminal() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "pty",
        r#"
task("t", || {
    // Without a PTY stdout is not a terminal; with one it is, stderr arrives merged into
    // stdout, line endings are plain "\n" and the exit status still comes through.
    let plain = on("web1", "[ -t 1 ] && echo tty || echo notty");
    if plain["web1"].stdout != "notty\n" { throw "plain: " + plain; }
    let r = on("web1", #{ pty: true }, "[ -t 1 ] && echo tty || echo notty; echo err >&2");
    if r["web1"].stdout != "tty\nerr\n" || r["web1"].stderr != "" || r["web1"].code != 0 {
        throw "pty: " + r;
    }
    on("db1", #{ pty: true }, |host| {
        let t = capture("[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && tty");
        if !t.starts_with("/dev/pts/") { throw "capture: " + t; }
        if test("exit 3") { throw "test saw success"; }
        run("echo from-closure");
    });
});
task("fails", || { on("web1", #{ pty: true }, "echo partial; exit 3"); });
"#,
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains("web1 | tty")
        .stdout_contains("web1 | err")
        .stdout_contains("db1  | from-closure");
    r.tether()
        .args(&["fails"])
        .run()
        .status(1)
        .stderr_contains("failed with exit status 3")
        .stdout_contains("web1 | partial");
    // `--pty` gives every command a terminal; `tether run` reports the status through it.
    let out = r
        .tether()
        .args(&[
            "--pty",
            "run",
            "--hosts",
            "web2",
            "--",
            "[ -t 1 ] && echo yes; exit 4",
        ])
        .run();
    out.status(1).stdout_contains("web2 | yes");
    assert!(out.stdout.contains("exit 4"), "{}", out.stdout);
    assert!(
        !out.stdout.contains('\r'),
        "no carriage returns: {:?}",
        out.stdout
    );
}

#[test]
fn a_reader_that_goes_away_ends_tether_quietly() {
    // `tether tasks | head -1`: stdout closes early; tether must not panic.
    let tasks: String = (0..20000)
        .map(|i| format!("task(\"t{i}\", \"a task with a longer description {i}\", || {{}});\n"))
        .collect();
    let r = RecipeDir::new("epipe", &tasks);
    let mut cmd = r.tether().command();
    cmd.arg("tasks");
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn an_unknown_role_in_the_first_on_connects_to_nothing() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "nothing-connects",
        "task(\"t\", || { on(\"wbe\", \"true\"); });\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:4:16: unknown role or host `wbe`; did you mean `web`?");
    for h in ["web1", "web2", "db1"] {
        assert_eq!(lab.accepted_logins(h), 0, "{h}");
    }
}

#[test]
fn the_selected_stage_is_the_stage_variable() {
    let r = RecipeDir::new(
        "stage-var",
        r#"
server("web1", #{ roles: ["web"] });
stage("staging", || { print("in the stage closure: " + fetch("stage")); });
stage("production", || {});
task("show", || print("stage: " + fetch("stage", "none")));
"#,
    );
    r.tether()
        .args(&["-n", "staging", "show"])
        .run()
        .status(0)
        .stdout_is("in the stage closure: staging\n▶ show\nstage: staging\n");
    r.tether()
        .args(&["-n", "show"])
        .run()
        .status(0)
        .stdout_is("▶ show\nstage: none\n");
    r.tether()
        .args(&["-n", "production", "show", "-s", "stage=production"])
        .run()
        .status(0)
        .stdout_is("▶ show\nstage: production\n");
}

/// A stage is selected by naming it: a `-s stage=..` that would say otherwise is refused,
/// never ignored (it was: `production show -s stage=staging` ran production) nor believed
/// (`-s stage=staging show` said "staging" with the stage's closure never run).
#[test]
fn a_stage_is_not_selected_or_overridden_with_dash_s() {
    let r = RecipeDir::new(
        "stage-set",
        r#"
server("web1", #{ roles: ["web"] });
stage("staging", || { print("in staging"); });
stage("production", || {});
task("show", || print("stage: " + fetch("stage", "none")));
"#,
    );
    for (args, says) in [
        (
            &["-n", "production", "show", "-s", "stage=staging"][..],
            "-s stage=staging: the stage selected is `production`",
        ),
        (
            &["-n", "-s", "stage=production", "staging", "show"][..],
            "-s stage=production: the stage selected is `staging`",
        ),
        (
            &["-n", "show", "-s", "stage=staging"][..],
            "-s stage=staging does not select the stage `staging`",
        ),
        (
            &["-n", "show", "-s", "stage=qa"][..],
            "-s stage=qa: `qa` is not a stage of the recipe (stages: staging, production)",
        ),
        (
            &["run", "-s", "stage=staging", "--", "true"][..],
            "-s stage=staging does not select the stage `staging`",
        ),
        (
            &["-T", "-s", "stage=production", "staging"][..],
            "-s stage=production: the stage selected is `staging`",
        ),
    ] {
        let out = r.tether().args(args).run();
        out.status(2).stderr_contains(says).stdout_is("");
    }
    // Without stages in the recipe, `stage` would name one `tether STAGE` refuses (fresh-eyes
    // finding: it was believed, and the stdlib's hints would print such commands).
    let plain = RecipeDir::new(
        "stage-set-plain",
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"show\", || print(\"stage: \" + fetch(\"stage\", \"none\")));\n",
    );
    plain
        .tether()
        .args(&["-n", "show", "-s", "stage=qa"])
        .run()
        .status(2)
        .stderr_contains("-s stage=qa: the recipe declares no stages")
        .stdout_is("");
}

/// A name both a stage and a task is refused where it is declared (before: `tether deploy`
/// selected the stage and said "no task given"; `tether deploy deploy` ran the task in the
/// stage), whichever comes first, and for a stage file named as a task when it is selected.
#[test]
fn a_stage_and_a_task_of_one_name_are_refused() {
    for (name, text, at) in [
        (
            "stage-task-1",
            "server(\"web1\", #{ roles: [\"web\"] });\nstage(\"deploy\", || {});\ntask(\"deploy\", || {});\n",
            "deploy.rhai:3:1: `deploy` is both a stage and a task",
        ),
        (
            "stage-task-2",
            "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"qa\", || {});\nstage(\"qa\", || {});\n",
            "deploy.rhai:3:1: `qa` is both a stage and a task",
        ),
        (
            "stage-task-3",
            "server(\"web1\", #{ roles: [\"web\"] });\nstage(\"web\", || { task(\"web\", || {}); });\ntask(\"t\", || {});\n",
            "deploy.rhai:2:19: `web` is both a stage and a task",
        ),
    ] {
        let r = RecipeDir::new(name, text);
        let target = if name.ends_with('3') { "web" } else { "t" };
        r.tether()
            .args(&["-n", target, "t"])
            .run()
            .status(4)
            .stderr_contains(at);
    }
    let r = RecipeDir::new(
        "stage-file-task",
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"web\", || print(\"ran\"));\n",
    );
    r.write("deploy/web.rhai", "set(\"y\", 1);\n");
    r.tether()
        .args(&["-n", "web"])
        .run()
        .status(4)
        .stdout_lacks("ran")
        .stderr_contains("`web` is both a stage and a task, so `tether web` could mean either: rename one (the stage file ");
}

/// A task or a stage named as one of tether's subcommands (`check`, `run`, `hosts`...) is
/// refused where it is declared: `tether check` runs the subcommand, so the task could never
/// be named (fresh-eyes finding: `task("check", ..)` ran only as `tether production check`;
/// `stage("hosts", ..)` made `tether hosts show` list a host called `show`).
#[test]
fn tasks_and_stages_named_as_subcommands_are_refused() {
    for (name, text, says) in [
        (
            "subcommand-task",
            "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"check\", || {});\ntask(\"t\", || {});\n",
            "deploy.rhai:2:1: a task cannot be named `check`: `tether check` is tether's own subcommand",
        ),
        (
            "subcommand-stage",
            "server(\"web1\", #{ roles: [\"web\"] });\nstage(\"hosts\", || {});\ntask(\"t\", || {});\n",
            "deploy.rhai:2:1: a stage cannot be named `hosts`",
        ),
        (
            "subcommand-task-in-stage",
            "server(\"web1\", #{ roles: [\"web\"] });\nstage(\"prod\", || { task(\"run\", || {}); });\ntask(\"t\", || {});\n",
            "a task cannot be named `run`",
        ),
    ] {
        let r = RecipeDir::new(name, text);
        let args: &[&str] = if name.ends_with("in-stage") { &["-n", "prod", "t"] } else { &["-n", "t"] };
        r.tether().args(args).run().status(4).stderr_contains(says);
    }
    let r = RecipeDir::new(
        "subcommand-stage-file",
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"t\", || {});\n",
    );
    r.write("deploy/init.rhai", "set(\"y\", 1);\n");
    r.tether()
        .args(&["-n", "t"])
        .run()
        .status(4)
        .stderr_contains("init.rhai: a stage cannot be named `init`");
}

/// A task or stage name the command line could not name as written is refused at its line:
/// empty, blank, holding whitespace, a control or invisible character, an empty part between
/// `:`s, or a leading `-`, and a stage's `/` (stop 41 testers t37, t40: `task("a:")`,
/// `task("-x")` and `task("e\u{200b}f")`, listed as `ef`, were taken, stage names not checked
/// at all).
#[test]
fn names_the_command_line_cannot_give_are_refused() {
    let bad = [
        "",
        " ",
        "a b",
        "a\nb",
        "a:",
        ":a",
        "a::b",
        ":",
        "-x",
        "--y",
        "-",
        "e\u{200b}f",
        "a\u{1b}[2Jb",
        "g\u{7}h",
        "\u{feff}x",
        "r\u{202e}l",
        "hi\u{fe0f}",
        "prod\u{e0001}",
        "a\u{3164}b",
        "\u{2800}",
        "x\u{1d173}",
        "y\u{fff9}",
    ];
    for name in bad {
        for (what, decl) in [
            ("task", "task({name:?}, || {{}});"),
            ("stage", "stage({name:?}, || {{}});"),
        ] {
            // A Rhai string literal: every character other than a printable ASCII one as
            // `\uXXXX`.
            let literal: String = name
                .chars()
                .map(|c| match c {
                    '"' | '\\' => format!("\\{c}"),
                    ' '..='~' => c.to_string(),
                    _ if (c as u32) > 0xffff => format!("\\U{:08x}", c as u32),
                    _ => format!("\\u{:04x}", c as u32),
                })
                .collect();
            let decl = decl.replace("{name:?}", &format!("\"{literal}\""));
            let r = RecipeDir::new(
                "bad-names",
                &format!(
                    "server(\"web1\", #{{ roles: [\"web\"] }});\n{decl}\ntask(\"t\", || {{}});\n"
                ),
            );
            r.tether()
                .args(&["-n", "t"])
                .run()
                .status(4)
                .stderr_contains(&format!("deploy.rhai:2:1: invalid {what} name "));
        }
    }
    // A role name likewise (stop 41 tester t42: `web\u{200b}` listed as `web`, which on("web")
    // did not reach).
    for role in ["web\u{200b}", "w\u{3164}", "a b"] {
        let literal: String = role
            .chars()
            .map(|c| match c {
                ' '..='~' => c.to_string(),
                _ if (c as u32) > 0xffff => format!("\\U{:08x}", c as u32),
                _ => format!("\\u{:04x}", c as u32),
            })
            .collect();
        let r = RecipeDir::new(
            "bad-role",
            &format!("server(\"web1\", #{{ roles: [\"{literal}\"] }});\ntask(\"t\", || {{}});\n"),
        );
        r.tether()
            .args(&["-n", "t"])
            .run()
            .status(4)
            .stderr_contains(
                "a role name cannot hold whitespace, a control or an invisible character",
            );
    }
    // A stage names its file, deploy/NAME.rhai.
    let r = RecipeDir::new(
        "bad-stage-slash",
        "server(\"web1\", #{ roles: [\"web\"] });\nstage(\"a/b\", || {});\ntask(\"t\", || {});\n",
    );
    r.tether()
        .args(&["-n", "t"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:2:1: invalid stage name \"a/b\"");
    let r = RecipeDir::new(
        "good-names",
        "server(\"web1\", #{ roles: [\"web\"] });\nstage(\"prod-eu_1\", || {});\n\
         task(\"deploy:check\", || { print(\"ran\"); });\ntask(\"a-b_c:d.e\", || {});\n",
    );
    r.tether()
        .args(&["-n", "prod-eu_1", "deploy:check", "a-b_c:d.e"])
        .run()
        .status(0)
        .stdout_contains("ran");
}

/// A `stage()` after the stage was chosen (in a stage closure, a stage file, a task) could
/// never be selected: refused at its line (fresh-eyes finding: it was ignored without a word).
#[test]
fn a_stage_declared_after_the_choice_is_refused() {
    let r = RecipeDir::new(
        "late-stage",
        "server(\"web1\", #{ roles: [\"web\"] });\n\
         stage(\"prod\", || { stage(\"inner\", || {}); });\n\
         stage(\"qa\", || {});\n\
         task(\"t\", || { stage(\"late\", || {}); });\n\
         task(\"ok\", || {});\n",
    );
    r.write("deploy/filed.rhai", "stage(\"fromfile\", || {});\n");
    for (args, says) in [
        (
            &["-n", "prod", "ok"][..],
            "deploy.rhai:2:20: stage(\"inner\") here",
        ),
        (&["-n", "qa", "t"], "deploy.rhai:4:16: stage(\"late\") here"),
        (&["-n", "t"], "deploy.rhai:4:16: stage(\"late\") here"),
        (
            &["-n", "filed", "ok"],
            "filed.rhai:1:1: stage(\"fromfile\") here",
        ),
    ] {
        r.tether()
            .args(args)
            .run()
            .status(4)
            .stderr_contains(says)
            .stderr_contains("could never be selected");
    }
    r.tether().args(&["-n", "qa", "ok"]).run().status(0);
}

/// A stage declared twice is refused at the second declaration (stop 40 tester t34: the second
/// closure replaced the first, and its servers were gone without a word).
#[test]
fn a_stage_declared_twice_is_refused() {
    let r = RecipeDir::new(
        "stage-twice",
        "stage(\"prod\", || { server(\"db1\", #{ roles: [\"db\"] }); });\n\
         stage(\"prod\", || { server(\"web1\", #{ roles: [\"web\"] }); });\n\
         task(\"t\", || {});\n",
    );
    for args in [&["-n", "prod", "t"][..], &["-n", "t"], &["tasks"]] {
        r.tether()
            .args(args)
            .run()
            .status(4)
            .stderr_contains("deploy.rhai:2:1: stage(\"prod\") is declared again");
    }
}

/// `tether tasks STAGE` and `tether STAGE -T` list what the stage declares too (before, the
/// word before `-T` was dropped without a word and the stage's tasks were missing).
#[test]
fn a_stage_named_for_the_task_list_adds_its_tasks() {
    let r = RecipeDir::new(
        "stage-tasks",
        r#"
server("web1", #{ roles: ["web"] });
stage("production", || { task("prod:only", "Only in production", || {}); });
task("hello", "Say hello", || {});
"#,
    );
    r.tether()
        .args(&["tasks"])
        .run()
        .status(0)
        .stdout_lacks("prod:only");
    for args in [
        &["tasks", "production"][..],
        &["production", "-T"],
        &["-T", "production"],
    ] {
        r.tether()
            .args(args)
            .run()
            .status(0)
            .stdout_contains("prod:only  Only in production");
    }
    r.tether()
        .args(&["staging", "-T"])
        .run()
        .status(2)
        .stderr_contains("unknown stage `staging`");
    r.tether()
        .args(&["production", "extra", "-T"])
        .run()
        .status(2)
        .stderr_contains("`production extra` before `tasks`: only a stage may stand before -T");
    r.tether()
        .args(&["production", "completions", "bash"])
        .run()
        .status(2);
}

#[test]
fn current_host_names_the_host_of_the_running_on_closure() {
    let r = RecipeDir::new(
        "current-host",
        r#"
server("web1", #{ roles: ["web"] });
server("web2", #{ roles: ["web"] });
set("where", || { let h = current_host(); if h == () { "nowhere" } else { "/home/" + h } });
task("who", || {
    print("outside: " + fetch("where"));
    on("web", |host| print(host.name + ": " + fetch("where")));
});
"#,
    );
    r.tether()
        .args(&["-n", "who"])
        .run()
        .status(0)
        .stdout_is("▶ who\noutside: nowhere\nweb1: /home/web1\nweb2: /home/web2\n");
}

/// The ssh config comes from `-F`, then `TETHER_SSH_CONFIG`, then the recipe's
/// `set("ssh_config", path)` (relative to the recipe, a stage may set it), then ~/.ssh/config.
#[test]
fn the_ssh_config_comes_from_flag_env_recipe_in_that_order() {
    let lab = lab(&["web1", "web2", "db1"]);
    let mut r = lab_recipe(
        &lab,
        "ssh-config-source",
        "set(\"ssh_config\", \"ssh/config\");\ntask(\"t\", || { on(\"web\", \"echo reached\"); });\n",
    );
    r.ssh_config = None;
    r.write(
        "ssh/config",
        &std::fs::read_to_string(lab.ssh_config()).unwrap(),
    );
    // From the recipe.
    let out = r.tether().args(&["t"]).run();
    out.status(0);
    assert_eq!(out.host_lines("web1", '|'), ["reached"], "{}", out.stdout);
    // Hosts named with --hosts (servers of the recipe or not) and by `hosts`/`check` are
    // reached through the recipe's file too: `pp`, an alias only that file knows, is web1.
    let lab_text = std::fs::read_to_string(lab.ssh_config()).unwrap();
    let web1_block: String = lab_text
        .split_inclusive('\n')
        .skip_while(|l| l.trim() != "Host web1")
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("Host "))
        .map(|(i, l)| if i == 0 { "Host pp\n" } else { l }.to_string())
        .collect();
    assert!(web1_block.contains("Port"), "{lab_text}");
    r.write("ssh/config", &format!("{lab_text}\n{web1_block}"));
    let port = lab.host("web1").port.to_string();
    for args in [
        &["run", "--hosts", "pp", "--", "echo reached"][..],
        &["run", "--hosts", "web1", "--", "echo reached"],
        &["run", "--roles", "web", "--", "echo reached"],
    ] {
        let out = r.tether().args(args).run();
        out.status(0);
        assert!(out.stdout.contains("reached"), "{args:?}: {}", out.stdout);
    }
    for args in [
        &["hosts", "pp"][..],
        &["--hosts", "pp", "hosts"],
        &["hosts", "-G", "pp"],
    ] {
        let out = r.tether().args(args).run();
        out.status(0);
        assert!(out.stdout.contains(&port), "{args:?}: {}", out.stdout);
    }
    // TETHER_SSH_CONFIG wins over the recipe: a file that does not exist is an error.
    let missing = r.dir.join("nowhere");
    r.tether()
        .env("TETHER_SSH_CONFIG", missing.to_str().unwrap())
        .args(&["t"])
        .run()
        .status(2)
        .stderr_contains("nowhere");
    // -F wins over the environment.
    let out = r
        .tether()
        .env("TETHER_SSH_CONFIG", missing.to_str().unwrap())
        .args(&["-F", lab.ssh_config().to_str().unwrap(), "t"])
        .run();
    out.status(0);
    assert_eq!(out.host_lines("web2", '|'), ["reached"], "{}", out.stdout);
    // A stage may name its own file (relative to the recipe).
    let staged = lab_recipe(
        &lab,
        "ssh-config-stage",
        "stage(\"lab\", || { set(\"ssh_config\", \"lab.cfg\"); });\ntask(\"t\", || { on(\"db\", \"echo staged\"); });\n",
    );
    staged.write(
        "lab.cfg",
        &std::fs::read_to_string(lab.ssh_config()).unwrap(),
    );
    let mut staged = staged;
    staged.ssh_config = None;
    let out = staged.tether().args(&["lab", "t"]).run();
    out.status(0);
    assert_eq!(out.host_lines("db1", '|'), ["staged"], "{}", out.stdout);
}

/// Recipes cannot crash tether (issue 14): an import cycle, a runaway loop, an endless
/// recursion and a value doubled until it fills memory each end as a recipe error (exit 4)
/// naming file:line:col, never as a crash.
#[test]
fn runaway_recipes_are_recipe_errors_with_a_position() {
    // (A runaway loop: see a_runaway_loop_is_stopped_by_the_operations_limit.)
    let r = RecipeDir::new(
        "runaway",
        "fn deep(n) { deep(n + 1) }\ntask(\"rec\", || { deep(0); });\ntask(\"grow\", || { let s = \"ab\"; loop { s += s; } });\ntask(\"arr\", || { let a = [1]; loop { a += a; } });\n",
    );
    recipe_error(&r, &["rec"])
        .stderr_contains("error: deploy.rhai:1:23: task `rec` (defined at ")
        .stderr_contains("deploy.rhai:2:1) ran away: calls nested more than 64 deep");
    recipe_error(&r, &["grow"])
        .stderr_contains("deploy.rhai:3:1) ran away: a value grew past tether's limit here")
        .stderr_contains("deploy.rhai:3:45: task `grow`");
    recipe_error(&r, &["arr"])
        .stderr_contains("deploy.rhai:4:1) ran away: a value grew past tether's limit here")
        .stderr_contains("deploy.rhai:4:43: task `arr`");

    let cycle = RecipeDir::new("cycle", "import \"lib/a\" as a;\ntask(\"x\", || {});\n");
    cycle.write("lib/a.rhai", "import \"lib/b\" as b;\n");
    cycle.write("lib/b.rhai", "\nimport \"lib/a\" as a;\n");
    recipe_error(&cycle, &["x"])
        .stderr_contains("lib/b.rhai:2:8: import cycle: lib/a -> lib/b -> lib/a")
        .stderr_contains("called from deploy.rhai:1:8");
    let own = RecipeDir::new(
        "self-import",
        "import \"deploy\" as d;\nimport \"me\" as me;\n",
    );
    own.write("me.rhai", "import \"me\" as again;\n");
    recipe_error(&own, &["tasks"]).stderr_contains("import cycle: me -> me");
}

#[test]
fn set_needs_a_variable_name() {
    let r = RecipeDir::new("set-key", "task(\"x\", || {});\n");
    for bad in ["=x", "x", "1a=2", "a b=c", "k-v=1"] {
        r.tether()
            .args(&["-s", bad, "x"])
            .run()
            .status(2)
            .stderr_contains("-s ");
    }
    r.tether().args(&["-s", "ok_1:x=", "x"]).run().status(0);
}

/// A variable tether itself reads (`keepalive`, `log_file`, `ssh_config`) with a value it
/// cannot use is refused where it was set: the recipe's line and column, or the `-s`
/// argument (it was refused only when the run read it, with no place at all).
#[test]
fn a_bad_value_of_a_variable_tether_reads_is_refused_where_it_was_set() {
    for (set, says) in [
        (
            "set(\"keepalive\", 0);",
            "set(\"keepalive\", ...): `0` is shorter than 100.0 ms, the shortest heartbeat",
        ),
        (
            "set(\"keepalive\", -2);",
            "-2 is not a number of seconds from 0",
        ),
        ("set(\"keepalive\", 0.0);", "`0` is shorter than 100.0 ms"),
        // A positive number no interval can be made of: it beat some 600 times a second.
        ("set(\"keepalive\", 1e-300);", "`0.000000"),
        (
            "set(\"keepalive\", 0.05);",
            "`0.05` is shorter than 100.0 ms",
        ),
        ("set(\"keepalive\", \"1us\");", "unknown unit `us`"),
        (
            "set(\"keepalive\", \"0s\");",
            "`0s` is shorter than 100.0 ms",
        ),
        ("set(\"keepalive\", \"soon\");", "`soon` is not a duration"),
        (
            "set(\"keepalive\", 1e30);",
            "1000000000000000000000000000000 is not a number of seconds from 0",
        ),
        (
            "set(\"keepalive\", ());",
            "a heartbeat interval (seconds, or a duration",
        ),
        ("set(\"keepalive\", [15]);", "not array"),
        (
            "set(\"log_file\", 3);",
            "set(\"log_file\", ...): a path to the run log",
        ),
        (
            "set(\"ssh_config\", true);",
            "set(\"ssh_config\", ...): a path to an ssh config file",
        ),
        (
            "set(\"ssh_config\", \"\");",
            "set(\"ssh_config\", ...): an empty path (\"none\" reads no ssh config file",
        ),
        (
            "set_secret(\"keepalive\", \"never-ok\");",
            "set_secret(\"keepalive\", ...): `********` is not a duration",
        ),
    ] {
        let r = RecipeDir::new("bad-var", &format!("task(\"x\", || {{}});\n  {set}\n"));
        recipe_error(&r, &["x"])
            .stderr_contains("deploy.rhai:2:3: set")
            .stderr_contains(says)
            .stderr_contains("2 |   set");
    }
    // Set by a stage: the stage's line.
    let r = RecipeDir::new(
        "bad-var-stage",
        "task(\"x\", || {});\nstage(\"prod\", || {\n    set(\"keepalive\", \"-\");\n});\n",
    );
    recipe_error(&r, &["prod", "x"]).stderr_contains("deploy.rhai:3:5: set(\"keepalive\", ...)");
    // Set by `-s`: a usage error naming the argument, whatever the recipe says.
    let r = RecipeDir::new(
        "bad-var-cli",
        "set(\"keepalive\", 5);\ntask(\"x\", || {});\n",
    );
    for (arg, says) in [
        (
            "keepalive=0",
            "-s keepalive=0: `0` is shorter than 100.0 ms",
        ),
        (
            "keepalive=-1",
            "-s keepalive=-1: -1 is not a number of seconds from 0",
        ),
        ("keepalive=abc", "-s keepalive=abc: `abc` is not a duration"),
        ("keepalive=", "-s keepalive=: `` is not a duration"),
    ] {
        r.tether()
            .args(&["-s", arg, "x"])
            .run()
            .status(2)
            .stderr_contains(says);
    }
    r.tether()
        .args(&["-s", "keepalive=2m", "x"])
        .run()
        .status(0);
    // A path given with -s is the text typed, a number too.
    let r = RecipeDir::new(
        "cli-path",
        "task(\"x\", || { print(`${type_of(fetch(\"log_file\"))} [${fetch(\"log_file\")}]`); });\n",
    );
    r.tether()
        .args(&["-s", "log_file=2024", "x"])
        .run()
        .status(0)
        .stdout_contains("string [2024]");
    // Set in a task, or asked for: tether read them when the run started, before any task.
    for (line, says) in [
        (
            "task(\"x\", || {\n  set(\"keepalive\", 1);\n});\n",
            "set(\"keepalive\", ...): tether reads",
        ),
        (
            "task(\"x\", || {\n  set(\"log_file\", \"o.log\");\n});\n",
            "set(\"log_file\", ...): tether reads",
        ),
        (
            "task(\"x\", || {\n  set_secret(\"ssh_config\", \"c\");\n});\n",
            "set_secret(\"ssh_config\", ...): tether reads",
        ),
        (
            "task(\"x\", || {});\nask(\"keepalive\", \"15\");\n",
            "ask(\"keepalive\", ...): tether reads",
        ),
    ] {
        let r = RecipeDir::new("too-late", line);
        recipe_error(&r, &["x"])
            .stderr_contains("deploy.rhai:2:")
            .stderr_contains(says)
            .stderr_contains("set it at the top level of the recipe or in a stage");
    }
    // `none` is no ssh config file, as `ssh -F none`, not ./none; an empty path is refused.
    let r = RecipeDir::new(
        "ssh-config-none",
        "set(\"ssh_config\", \"none\");\nserver(\"127.0.0.1:1\", #{ roles: [\"web\"] });\ntask(\"x\", || { on(\"web\", \"true\"); });\n",
    );
    r.tether()
        .args(&["x"])
        .run()
        .status(3)
        .stderr_contains("127.0.0.1:1: cannot connect");
    // A missing file the recipe or -s named: where it was named.
    let r = RecipeDir::new(
        "ssh-config-missing",
        "task(\"x\", || {});\nserver(\"a\");\n  set(\"ssh_config\", \"missing\");\n",
    );
    r.tether()
        .args(&["x"])
        .run()
        .status(2)
        .stderr_contains("cannot read ssh config")
        .stderr_contains("(ssh_config, set at deploy.rhai:3:3)");
    r.tether()
        .args(&["-s", "ssh_config=gone", "x"])
        .run()
        .status(2)
        .stderr_contains("(ssh_config, set at -s ssh_config=gone)");
    // Overridden by -s, the recipe's own value is not read.
    let r = RecipeDir::new(
        "overridden",
        "set(\"keepalive\", 0);\ntask(\"x\", || {});\n",
    );
    r.tether()
        .args(&["-s", "keepalive=30", "x"])
        .run()
        .status(0);
}

/// A number of seconds an `on` option takes is refused, with its place, when no deadline can
/// be made of it (a timeout of 1e30 s panicked: `Duration::from_secs_f64`).
#[test]
fn on_options_refuse_seconds_no_deadline_can_be_made_of() {
    for (opts, says) in [
        (
            "timeout: 1e30",
            "on() option `timeout`: 1000000000000000000000000000000 is not",
        ),
        ("wait: 1e13", "on() option `wait`: 10000000000000 is not"),
        (
            "reattach: -1",
            "on() option `reattach`: -1 is not a number of seconds",
        ),
        ("timeout: -0.5", "on() option `timeout`: -0.5 is not"),
        (
            "wait: \"5\"",
            "on() option `wait` must be a number, not \"5\"",
        ),
        (
            "timeout: ()",
            "on() option `timeout` must be a number, not ()",
        ),
        // Zero is no timeout nowhere else (`--timeout 0` is refused): refused here too.
        (
            "timeout: 0",
            "on() option `timeout` must be a millisecond or more",
        ),
        (
            "timeout: 1e-300",
            "on() option `timeout` must be a millisecond or more",
        ),
        (
            "limit: 1.5",
            "on() option `limit` must be a whole number, 1 or more, not 1.5",
        ),
        (
            "limit: 0",
            "on() option `limit` must be a whole number, 1 or more, not 0",
        ),
    ] {
        let r = RecipeDir::new(
            "on-seconds",
            &format!(
                "server(\"a\", #{{ roles: [\"web\"] }});\ntask(\"x\", || {{\n  on(\"web\", #{{ {opts} }}, \"true\");\n}});\n"
            ),
        );
        recipe_error(&r, &["x"])
            .stderr_contains("deploy.rhai:3:3: ")
            .stderr_contains(says);
    }
}

/// `utc_timestamp(seconds)` names that time or refuses: a time no 14-digit name holds was
/// silently now (an overflow) or 1970 (before the epoch).
#[test]
fn utc_timestamp_names_the_time_asked_or_refuses() {
    let r = RecipeDir::new(
        "utc",
        "task(\"x\", || {\n  let a = utc_timestamp(-86400 * 366);\n  let b = utc_timestamp();\n  print(`${a.len()} ${b.len()} ${a < b} ${b.sub_string(0, 2)}`);\n});\n",
    );
    r.tether()
        .arg("x")
        .run()
        .status(0)
        .stdout_contains("14 14 true 20");
    for seconds in [
        "-100000000000",
        "9223372036854775807",
        "260000000000",
        "-9223372036854775807",
    ] {
        let r = RecipeDir::new(
            "utc-bad",
            &format!("task(\"x\", || {{\n  print(utc_timestamp({seconds}));\n}});\n"),
        );
        recipe_error(&r, &["x"])
            .stderr_contains("deploy.rhai:2:9: ")
            .stderr_contains(&format!(
                "utc_timestamp({seconds}): that time is not between 1970 and 9999"
            ));
    }
}

/// `-s` values print as typed: a branch `0042` is never deployed as `42`.
#[test]
fn set_values_keep_what_was_typed() {
    let r = RecipeDir::new(
        "set-values",
        r#"task("x", || { print(`${type_of(fetch("v"))} [${fetch("v")}]`); });"#,
    );
    for (typed, shown) in [
        ("0042", "string [0042]"),
        ("+3", "string [+3]"),
        ("00000000000000", "string [00000000000000]"),
        ("1e3", "string [1e3]"),
        ("", "string []"),
        ("42", "i64 [42]"),
        ("-1", "i64 [-1]"),
        ("true", "bool [true]"),
        ("TRUE", "string [TRUE]"),
    ] {
        r.tether()
            .args(&["-s", &format!("v={typed}"), "x"])
            .run()
            .status(0)
            .stdout_contains(shown);
    }
}

#[test]
fn hosts_and_roles_from_the_environment_as_capistrano_reads_them() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "env-filters",
        r#"task("hello", "Say hello", || { on("app", "echo hello"); });"#,
    );
    let hosts_of = |out: &Output| -> Vec<String> {
        ["web1", "web2", "db1"]
            .into_iter()
            .filter(|h| !out.host_lines(h, '|').is_empty())
            .map(str::to_string)
            .collect()
    };
    // (environment, flags, the hosts that run the command)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        (&[("ROLES", "db")], &[], &["db1"]),
        (&[("ROLES", "web,db")], &[], &["web1", "web2", "db1"]),
        (&[("HOSTS", "web2")], &[], &["web2"]),
        (&[("HOSTS", "web1,db1"), ("ROLES", "db")], &[], &["db1"]),
        // The flags win over the environment.
        (&[("ROLES", "db")], &["--roles", "web"], &["web1", "web2"]),
        (&[("HOSTS", "web1")], &["--hosts", "db1"], &["db1"]),
    ];
    for (env, flags, want) in cases {
        let mut t = r.tether();
        for (k, v) in *env {
            t = t.env(k, v);
        }
        let out = t.args(flags).args(&["run", "--", "echo hi"]).run();
        out.status(0);
        assert_eq!(hosts_of(&out), *want, "{env:?} {flags:?}\n{}", out.stdout);
    }
    // An unknown role from the environment is refused as the flag's would be.
    r.tether()
        .env("ROLES", "nosuch")
        .args(&["run", "--", "true"])
        .run()
        .status(2);
    // `-T` is `tasks`, as `cap -T`.
    let tasks = r.tether().args(&["tasks"]).run();
    let short = r.tether().args(&["-T"]).run();
    short.status(0);
    assert_eq!(short.stdout, tasks.stdout);
    short.stdout_contains("hello");
}

#[test]
fn tasks_without_a_description_are_listed_with_all_only() {
    let r = RecipeDir::new(
        "hidden",
        "task(\"deploy:web\", \"Deploy the web\", || {});\ntask(\"internal:a\", || {});\ntask(\"internal:b\", \"\", || {});\n",
    );
    let out = r.tether().args(&["tasks"]).run();
    out.status(0)
        .stdout_contains("deploy:web  Deploy the web\n")
        .stdout_lacks("internal:")
        .stdout_contains("(2 tasks without a description not shown: tether tasks --all)");
    let all = r.tether().args(&["-T", "--all"]).run();
    all.status(0)
        .stdout_contains("deploy:web  Deploy the web\n")
        .stdout_contains("internal:a")
        .stdout_contains("internal:b")
        .stdout_lacks("not shown");
    // JSON lists every task.
    let json = r.tether().args(&["tasks", "--format", "json"]).run();
    json.status(0);
    assert_eq!(
        json.stdout.matches("\"type\":\"task\"").count(),
        3,
        "{}",
        json.stdout
    );
}

#[test]
fn stage_files_beside_the_recipe_are_stages() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "stage-files",
        r#"
fn shout(s) { s.to_upper() }
stage("production", || { set("greeting", "closure"); set("from_closure", "yes"); });
task("hello", "Say hello", || {
    on("db", `echo ${fetch("greeting")} ${fetch("stage")} ${fetch("from_closure", "no")}`);
});
"#,
    );
    std::fs::create_dir_all(r.path("deploy")).unwrap();
    // Run after the recipe's own stage() closure, with the recipe's functions in reach.
    r.write(
        "deploy/production.rhai",
        "set(\"greeting\", shout(\"file\"));\n",
    );
    r.write("deploy/staging.rhai", "set(\"greeting\", \"staged\");\n");
    r.write("deploy/syntax.rhai", "set(\"a\", 1);\nlet = 3;\n");
    r.write("deploy/broken.rhai", "set(\"a\", 1);\n  nope();\n");
    r.write("deploy/notes.txt", "not a stage\n");

    let out = r.tether().args(&["production", "hello"]).run();
    out.status(0);
    assert_eq!(
        out.host_lines("db1", '|'),
        ["FILE production yes"],
        "{}",
        out.stdout
    );
    let out = r.tether().args(&["staging", "hello"]).run();
    out.status(0);
    assert_eq!(
        out.host_lines("db1", '|'),
        ["staged staging no"],
        "{}",
        out.stdout
    );
    let out = r
        .tether()
        .args(&["run", "--stage", "staging", "--", "echo ran"])
        .run();
    out.status(0);
    assert_eq!(out.host_lines("db1", '|'), ["ran"], "{}", out.stdout);

    // Errors name the stage file's line and column.
    recipe_error(&r, &["syntax", "hello"]).stderr_contains("deploy/syntax.rhai:2:5: syntax error");
    recipe_error(&r, &["broken", "hello"])
        .stderr_contains("deploy/broken.rhai:2:3: Function not found: nope");

    r.tether()
        .args(&["tasks"])
        .run()
        .status(0)
        .stdout_contains("stages: production, broken, staging, syntax");
    r.tether()
        .args(&["notes", "hello"])
        .run()
        .status(2)
        .stderr_contains("`notes` is neither a stage nor a task");
}

/// `on(..., #{ timeout: N }, |host| ..)`: every command the closure runs gets the timeout, as
/// `on` with a command string does (it used to be ignored inside a closure).
#[test]
fn an_on_timeout_applies_to_the_commands_of_its_closure() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "on-timeout",
        r#"
task("t", || {
    on("db", #{ timeout: 1 }, |host| {
        run("true");
        let v = capture("echo quick");
        print("captured " + v);
        run("sleep 6");
    });
});
"#,
    );
    let out = r.tether().args(&["t"]).run();
    out.status(1).stdout_contains("captured quick");
    out.stderr_contains("sleep 6");
}

#[test]
fn stdlib_tasks_of_the_other_strategy_are_listed_with_all_only() {
    let r = RecipeDir::new(
        "strategy",
        "import \"deploy\";\nset(\"deploy_to\", \"/srv/x\");\nset(\"repo_url\", \"x\");\ntask(\"copy:mine\", \"A task of the recipe's own\", || {});\n",
    );
    // git, the default strategy: copy:* of the stdlib are hidden, the recipe's own is not.
    let git = r.tether().args(&["tasks"]).run();
    git.status(0)
        .stdout_contains("git:check ")
        .stdout_contains("git:update ")
        .stdout_contains("copy:mine ")
        .stdout_lacks("copy:check")
        .stdout_lacks("copy:create_release")
        .stdout_contains(
            "(2 stdlib tasks of another strategy than \"git\" not shown: tether tasks --all)",
        );
    let copy = r.tether().args(&["tasks", "-s", "strategy=copy"]).run();
    copy.status(0)
        .stdout_contains("copy:check ")
        .stdout_contains("copy:create_release ")
        .stdout_lacks("git:")
        .stdout_contains("(3 stdlib tasks of another strategy than \"copy\" not shown");
    r.tether()
        .args(&["tasks", "--all"])
        .run()
        .status(0)
        .stdout_contains("git:check ")
        .stdout_contains("copy:check ")
        .stdout_lacks("not shown");
    // JSON lists every task, saying whether it applies.
    let json = r.tether().args(&["tasks", "--format", "json"]).run();
    json.status(0);
    let applies = |name: &str| {
        json.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", json.stdout))["applies"]
            .clone()
    };
    assert_eq!(applies("git:check"), serde_json::json!(true));
    assert_eq!(applies("copy:check"), serde_json::json!(false));
    assert_eq!(applies("copy:mine"), serde_json::json!(true));
}

/// An empty directory, user or path reaches no host: `within("")` ran its commands in the
/// login directory with status 0 (`cd ''` stays where it is), `as_user("")` printed sudo's
/// usage, `upload(x, "")` failed in `mv` (fresh-eyes finding, stop 28). Each is a recipe
/// error at its line and column, as a variable never set would be in SSHKit (`within` checks
/// the directory first), and nothing runs on the host.
#[test]
fn an_empty_directory_user_or_path_is_a_recipe_error_at_its_line() {
    let lab = lab(&["web1", "web2", "db1"]);
    let cases = [
        (
            "within(fetch(\"release_path\"), || run(\"echo ran >> /srv/marker\"))",
            "deploy.rhai:7:9: within: the directory is empty",
        ),
        (
            "as_user(\"\", || run(\"echo ran >> /srv/marker\"))",
            "deploy.rhai:7:9: as_user: the user name is empty",
        ),
        (
            "upload(\"deploy.rhai\", \"\")",
            "deploy.rhai:7:9: upload: a path is empty",
        ),
        (
            "download(\"\", \"copy\")",
            "deploy.rhai:7:9: download: a path is empty",
        ),
    ];
    for (i, (call, said)) in cases.into_iter().enumerate() {
        let r = lab_recipe(
            &lab,
            &format!("empty-{i}"),
            &format!("set(\"release_path\", \"\");\ntask(\"t\", || {{\n    on(\"db\", |host| {{\n        {call};\n    }});\n}});\n"),
        );
        r.tether()
            .args(&["t"])
            .run()
            .status(4)
            .stderr_contains(said);
        assert!(
            !lab.host("db1").root_dir.join("marker").exists(),
            "{call} ran on the host"
        );
    }
}

/// `run_locally` refuses at its line what it could not run as written, as `run` does (stop 42
/// tester t45: a NUL byte or a 160 KB command failed the run with exit 1 and no line, `""`
/// ran nothing and succeeded), and a call inside `within`, `with_env` or `as_user`, which name
/// the hosts' directories, environment and users (it ignored them without a word). `with_env`
/// refuses a value that is no text, number or boolean (`()` was exported as "").
#[test]
fn run_locally_and_with_env_refuse_what_they_could_not_do_as_written() {
    let r = RecipeDir::new(
        "local-refused",
        r#"task("empty", || { run_locally(""); });
task("blank", || { run_locally(" \n\t"); });
task("nul", || { run_locally("echo a\x00b"); });
task("long", || { let s = "aaaaaaaaaa"; for i in 0..14 { s += s; } run_locally(`x='${s}'; echo ${s.len()}`); });
task("within", || { within("/tmp", || { run_locally("pwd"); }); });
task("env", || { with_env(#{ Z: "1" }, || { run_locally("echo [$Z]"); }); });
task("user", || { as_user("root", || { run_locally("id -un"); }); });
task("nested", || { within("/tmp", || { with_env(#{ Z: "1" }, || { run_locally("pwd"); }); }); });
task("unit", || { with_env(#{ X: () }, || { print("ran"); }); });
task("array", || { with_env(#{ X: [1, 2] }, || { print("ran"); }); });
task("fine", || { with_env(#{ A: "x", B: 2, C: true, D: 1.5 }, || { print("ran"); }); print(run_locally("echo fine")); });
"#,
    );
    for (task, line, says) in [
        (
            "empty",
            1,
            "run_locally(): the command is empty: nothing to run",
        ),
        ("blank", 2, "run_locally(): the command is empty"),
        (
            "nul",
            3,
            "run_locally(): the command holds a NUL byte (at byte 6 of \"echo a\\0b\")",
        ),
        (
            "long",
            4,
            "run_locally(): the command is 163857 bytes, over the 128 KiB one argument",
        ),
        (
            "within",
            5,
            "run_locally() inside within: those apply to the host's commands",
        ),
        ("env", 6, "run_locally() inside with_env: those apply"),
        ("user", 7, "run_locally() inside as_user: those apply"),
        (
            "nested",
            8,
            "run_locally() inside within, with_env: those apply",
        ),
        (
            "unit",
            9,
            "with_env: `X` has no value, `()` (a variable never set?)",
        ),
        (
            "array",
            10,
            "with_env: `X` must be a string, number or boolean, not array",
        ),
    ] {
        let out = r.tether().args(&[task]).run();
        out.status(4)
            .stderr_contains(says)
            .stderr_contains(&format!("deploy.rhai:{line}:"));
        assert!(!out.stdout.contains("ran\n"), "{task}: {}", out.stdout);
    }
    r.tether()
        .args(&["fine"])
        .run()
        .status(0)
        .stdout_contains("fine");
}

/// `run_locally`'s stderr is shown as it runs (README), as SSHKit's local backend streams it
/// (found in stop 35: its lines came out only once the command had ended, so a local build
/// showed nothing until it was over). The command waits (20 s at most) for the file the test
/// makes once tether showed its first line.
#[test]
fn run_locally_shows_its_stderr_as_it_runs() {
    use std::io::BufRead as _;
    let r = RecipeDir::new(
        "local-stream",
        "task(\"t\", || { run_locally(\"echo first >&2; i=0; while [ ! -e seen ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; if [ -e seen ]; then echo 'went on once shown' >&2; else echo 'never shown while it ran' >&2; fi\"); });\n",
    );
    let mut child = r
        .tether()
        .args(&["t"])
        .command()
        .spawn()
        .expect("start tether");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line");
        let first = line.contains("first");
        said.push(line);
        if first {
            std::fs::write(r.path("seen"), "").unwrap();
            break;
        }
    }
    said.extend(lines.map(|l| l.expect("a line")));
    let status = child.wait().expect("wait for tether");
    let all = said.join("\n");
    assert!(status.success(), "{all}");
    assert!(all.contains("went on once shown"), "{all}");
}

/// `run_locally`'s lines show bytes that are not UTF-8 as `\xNN`, in text and JSON, as a
/// host's lines do (stop 35 tester t14: they became U+FFFD, where the README says no line of
/// other bytes reads as another would).
#[test]
fn run_locally_shows_other_bytes_as_a_hosts_lines_do() {
    let r = RecipeDir::new(
        "local-bytes",
        "task(\"t\", || { run_locally(\"printf 'a\\\\377b\\\\n' >&2\"); });\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains("local ! a\\xffb\n")
        .stdout_lacks("\u{fffd}");
    r.tether()
        .args(&["--format", "json", "t"])
        .run()
        .status(0)
        .stdout_contains(r#""line":"a\\xffb""#);
}

/// A failed `run_locally` shows what it printed and names a signal (fresh-eyes finding,
/// stop 28: its stdout, the value a success returns, was shown nowhere, and `kill -TERM $$`
/// failed "with a signal"): the failure carries the last lines of both streams, as SSHKit's
/// `Command::Failed` does, and the signal's name, as a host's command says it.
#[test]
fn a_failed_run_locally_shows_its_output_and_names_its_signal() {
    let r = support::recipe::RecipeDir::new(
        "local-failure",
        "task(\"out\", || { run_locally(\"echo out-before-fail; echo more; echo said >&2; exit 9\"); });\n\
         task(\"sig\", || { run_locally(\"kill -TERM $$\"); });\n",
    );
    r.tether()
        .args(&["out"])
        .run()
        .status(1)
        .stderr_contains("failed with exit status 9")
        .stderr_contains("stdout (last lines):\n    out-before-fail\n    more")
        .stderr_contains("stderr (last lines):\n    said");
    r.tether()
        .args(&["sig"])
        .run()
        .status(1)
        .stderr_contains("local: `kill -TERM $$` failed with signal TERM");
}

/// Closures written in a stage file (`deploy/NAME.rhai`: a lazy `set`, a task, a hook, a
/// failure hook) can be called, as those of a `stage()` closure can (fresh-eyes finding: each
/// failed when called, "Function not found: anon$...", the hook's without a location).
#[test]
fn a_stage_files_closures_can_be_called() {
    let r = RecipeDir::new(
        "stage-closures",
        "task(\"v\", || { print(\"lazy is \" + fetch(\"lazy\")); });\n\
         task(\"boom\", || { fail(\"no\"); });\n",
    );
    r.write(
        "deploy/prod2.rhai",
        "set(\"lazy\", || \"v-\" + fetch(\"stage\"));\n\
         task(\"x\", || { print(\"x ran \" + fetch(\"lazy\")); });\n\
         after(\"x\", || { print(\"after x\"); });\n\
         on_failure(|err| { print(\"stage hook: \" + err); });\n",
    );
    r.tether()
        .args(&["prod2", "v", "x"])
        .run()
        .status(0)
        .stdout_contains("lazy is v-prod2")
        .stdout_contains("x ran v-prod2")
        .stdout_contains("after x");
    r.tether()
        .args(&["prod2", "boom"])
        .run()
        .status(1)
        .stdout_contains("stage hook: ");
}

/// A number given with `-s` (which `fetch` gives as typed) works where `within` and `as_user`
/// take a name: the directory or user it spells (fresh-eyes finding: "Function not found:
/// as_user (i64, Fn)", exit 4).
#[test]
fn numbers_from_the_command_line_name_a_directory_or_user() {
    let r = RecipeDir::new(
        "numbers",
        "server(\"web1\", #{ roles: [\"web\"] });\n\
         task(\"t\", || { on(\"web\", |h| { within(fetch(\"dir\"), || as_user(fetch(\"user\"), || run(\"id\"))); }); });\n",
    );
    r.tether()
        .args(&["-n", "-s", "dir=123", "-s", "user=101", "t"])
        .run()
        .status(0)
        .stdout_contains("cd 123 && sudo -n -u 101 -- sh -c id");
}

/// One machine written two ways is one host, as Capistrano keys servers by host name and port:
/// `role("worker", ["host1"])` joins `deploy@host1` (fresh-eyes finding: two hosts, the
/// worker's commands run a second time, as root). Given a user after being declared without
/// one, it is refused at its line.
#[test]
fn one_machine_written_two_ways_runs_once_or_is_refused() {
    let r = RecipeDir::new(
        "two-ways",
        "server(\"deploy@host1\", #{ roles: [\"web\"] });\n\
         role(\"worker\", [\"host1\"]);\n\
         task(\"o\", || { on([\"web\", \"worker\"], \"id -un\"); on(\"host1\", \"hostname\"); });\n",
    );
    let out = r.tether().args(&["-n", "o"]).run();
    out.status(0);
    assert_eq!(out.stdout.matches("$ id -un").count(), 1, "{}", out.stdout);
    out.stdout_contains("deploy@host1 | $ id -un")
        .stdout_contains("deploy@host1 | $ hostname");
    let r = RecipeDir::new(
        "user-later",
        "server(\"host1\", #{ roles: [\"web\"] });\n\
         server(\"deploy@host1\", #{ roles: [\"db\"] });\n\
         task(\"o\", || { on(\"web\", \"id -un\"); });\n",
    );
    r.tether()
        .args(&["-n", "o"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:2:")
        .stderr_contains("names the server `host1` again, with the user deploy");
}

/// A role declared with no server is a role of no host, as in Capistrano: an `on` of it runs
/// nowhere (fresh-eyes finding: "unknown role or host `spare`", exit 4); `--roles spare` is
/// known, and selects no server: refused as filters that select none are (exit 2), as
/// Capistrano 3's filter refuses to "remove all servers" (stop 36 tester t20: it ran nothing
/// and said done).
#[test]
fn a_role_of_no_server_runs_nowhere() {
    let r = RecipeDir::new(
        "empty-role",
        "server(\"web1\", #{ roles: [\"web\"] });\nrole(\"spare\", []);\n\
         task(\"t\", || { on(\"spare\", \"echo spare\"); on(\"web\", \"echo web\"); });\n",
    );
    let out = r.tether().args(&["-n", "t"]).run();
    out.status(0).stdout_contains("web1 | $ echo web");
    assert!(!out.stdout.contains("echo spare"), "{}", out.stdout);
    let out = r.tether().args(&["-n", "--roles", "spare", "t"]).run();
    out.status(2)
        .stderr_contains("no server of the recipe matches --roles spare");
    assert!(!out.stdout.contains("$ echo"), "{}", out.stdout);
}

/// `primary(role)` is picked among the hosts `--hosts`/`--roles` select, as Capistrano's
/// `primary` is (fresh-eyes finding: with `--hosts host2`, `on(primary("db"))` named host1,
/// which the filter then left out: the migration ran nowhere and the run said `done`).
#[test]
fn primary_is_picked_among_the_selected_hosts() {
    let r = RecipeDir::new(
        "primary",
        "server(\"host1\", #{ roles: [\"app\", \"db\"], primary: true });\n\
         server(\"host2\", #{ roles: [\"app\", \"db\"] });\n\
         task(\"migrate\", || { on(primary(\"db\"), |h| run(\"echo migrating on \" + h.name)); });\n",
    );
    r.tether()
        .args(&["-n", "migrate"])
        .run()
        .status(0)
        .stdout_contains("host1 | $ echo migrating on host1");
    let out = r
        .tether()
        .args(&["-n", "--hosts", "host2", "migrate"])
        .run();
    out.status(0)
        .stdout_contains("host2 | $ echo migrating on host2");
    assert!(!out.stdout.contains("on host1"), "{}", out.stdout);
}

/// An `invoke` of a task that already ran in this run runs nothing, as a task runs once per
/// run, and says so where it is (fresh-eyes finding: a retry, `catch` and invoke again, ran
/// nothing, and the run said the deploy was done with no word).
#[test]
fn an_invoke_that_runs_nothing_says_so() {
    let r = RecipeDir::new(
        "retry",
        "task(\"flaky\", || { run_locally(\"echo try >> tries; [ $(wc -l < tries) -ge 2 ]\"); });\n\
         task(\"deploy\", || { try { invoke(\"flaky\"); } catch (e) { print(\"retrying\"); invoke(\"flaky\"); } });\n",
    );
    let out = r.tether().args(&["deploy"]).run();
    out.stdout_contains("retrying").stdout_contains(
        "warning: deploy.rhai:2:77: invoke(\"flaky\") runs nothing: task `flaky` already ran in \
         this run",
    );
}

/// A signal to tether alone (SIGTERM from a service manager or a CI cancel, not a terminal's
/// Ctrl-C to the whole process group) stops a `run_locally` command too: its process group
/// gets SIGTERM (fresh-eyes finding: tether waited 28 s for `sleep 30`, saying nothing).
#[test]
fn a_signal_to_tether_stops_a_local_command() {
    let r = RecipeDir::new(
        "local-stop",
        "task(\"t\", || { run_locally(\"echo go > started; sleep 37; echo late > late\"); });\n\
         task(\"bg\", || { run_locally(\"(sleep 37.3; echo late > late) & echo go > started\"); });\n",
    );
    let started = r.path("started");
    // `bg`: the sh has ended, a child of it in the background holds its output (stop 36
    // tester t22: the stop waited for it, 23 s).
    for (task, signal) in [
        ("t", libc::SIGTERM),
        ("t", libc::SIGINT),
        ("bg", libc::SIGTERM),
        ("bg", libc::SIGINT),
    ] {
        let _ = std::fs::remove_file(&started);
        let child = r.tether().args(&[task]).spawn();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !started.exists() {
            assert!(std::time::Instant::now() < deadline, "it never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let at = std::time::Instant::now();
        // SAFETY: kill(2) on the tether this test started (not its process group).
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        let took = at.elapsed();
        assert_eq!(out.status.code(), Some(130), "{task}: {out:?}");
        assert!(
            took < std::time::Duration::from_secs(10),
            "{task}: {took:?}"
        );
        assert!(!r.path("late").exists());
        assert_eq!(local_processes("sleep 37.3"), Vec::<u32>::new(), "{task}");
    }
}

/// The pids of this machine's processes whose command line is `cmdline` exactly.
fn local_processes(cmdline: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
                .unwrap_or(false)
        })
        .collect()
}

/// A second signal, which exits at once, ends tether's own local process groups too: a
/// `run_locally` command and a `ProxyCommand` (fresh-eyes finding: a ProxyCommand `sleep 61`
/// was left running, reparented, after two signals 0.1 s apart).
#[test]
fn a_second_signal_ends_local_commands_and_proxy_commands() {
    let mut r = RecipeDir::new(
        "second-local",
        "server(\"p1\", #{ roles: [\"p\"] });\n\
         task(\"local\", || { run_locally(\"echo go > started; exec sleep 618\"); });\n\
         task(\"proxy\", || { on(\"p\", \"true\"); });\n",
    );
    r.write(
        "ssh_config",
        "Host p1\n  ProxyCommand sleep 617\n  ConnectTimeout 60\n",
    );
    r.ssh_config = Some(r.path("ssh_config"));
    for (task, sleep) in [("local", "sleep 618"), ("proxy", "sleep 617")] {
        let _ = std::fs::remove_file(r.path("started"));
        let mut child = r.tether().args(&[task]).spawn_watched();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while local_processes(sleep).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{task}: it never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.signal_twice(libc::SIGTERM);
        let out = child.wait_with_output();
        assert_eq!(out.status.code(), Some(130), "{task}: {out:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !local_processes(sleep).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{task}: `{sleep}` left running"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// An `on` closure without the host parameter, or with more parameters, is refused at the
/// `on`, saying what it takes (fresh-eyes findings: every host failed with Rhai's "Function not
/// found: anon$... (Host)"), captured variables or not; one with it runs.
#[test]
fn an_on_closure_without_the_host_parameter_is_refused_at_the_on() {
    let r = RecipeDir::new(
        "closure-arity",
        "server(\"web1\", #{ roles: [\"web\"] });\n\
         task(\"bare\", || { on(\"web\", || { run(\"echo\"); }); });\n\
         task(\"captured\", || { let x = 1; on(\"web\", || run(\"echo \" + x)); });\n\
         task(\"right\", || { let x = 1; on(\"web\", |h| run(\"echo \" + x + h.name)); });\n\
         task(\"two\", || { on(\"web\", |h, extra| run(\"echo\")); });\n",
    );
    for (task, at) in [
        ("bare", "deploy.rhai:2:19"),
        ("captured", "deploy.rhai:3:34"),
        ("two", "deploy.rhai:5:18"),
    ] {
        r.tether()
            .args(&["-n", task])
            .run()
            .status(4)
            .stderr_contains(&format!(
                "{at}: on(): the closure takes one parameter, the host: |host| {{ ... }}"
            ))
            .stderr_lacks("Function not found");
    }
    r.tether()
        .args(&["-n", "right"])
        .run()
        .status(0)
        .stdout_contains("echo 1web1");
}

/// Every unknown hook target is named, each at its call (stop 32 tester: only the first was),
/// and a hook declared while tasks run is checked there and then: one naming an unknown task,
/// or a task that already ran or runs now (its hooks were read when it started, so it would
/// never run), is refused at its call (stop 32 re-test: accepted without a word).
#[test]
fn hooks_naming_unknown_or_started_tasks_are_refused_each_at_its_call() {
    let r = RecipeDir::new(
        "hooks-all",
        "task(\"a\", || {});\nafter(\"b\", \"a\");\nbefore(\"a\", \"nosuch\");\nafter(\"c\", || {});\n",
    );
    recipe_error(&r, &["a"])
        .stderr_contains("deploy.rhai:2:1: after(\"b\", ...): unknown task `b`")
        .stderr_contains("deploy.rhai:3:1: before(\"a\", \"nosuch\"): unknown task `nosuch`")
        .stderr_contains("deploy.rhai:4:1: after(\"c\", ...): unknown task `c`");
    let cases = [
        (
            "task(\"a\", || {\n    after(\"a\", \"ghost\");\n});\n",
            "deploy.rhai:2:5: after(\"a\", \"ghost\"): unknown task `ghost`",
        ),
        (
            "task(\"a\", || {\n    before(\"nosuch\", || {});\n});\n",
            "deploy.rhai:2:5: before(\"nosuch\", ...): unknown task `nosuch`",
        ),
        (
            "task(\"b\", || {});\ntask(\"a\", || {\n    after(\"a\", \"b\");\n});\n",
            "deploy.rhai:3:5: after(\"a\", \"b\"): task `a` has started in this run, so this hook would never run: declare it before the task runs (at the top of the recipe)",
        ),
        (
            "task(\"b\", || {});\ntask(\"a\", || {\n    before(\"b\", || print(\"late\"));\n});\nbefore(\"a\", \"b\");\n",
            "deploy.rhai:3:5: before(\"b\", ...): task `b` has started in this run, so this hook would never run: declare it before the task runs (at the top of the recipe)",
        ),
    ];
    for (text, error) in cases {
        let r = RecipeDir::new("hooks-late", text);
        recipe_error(&r, &["a"]).stderr_contains(error);
    }
    // A hook declared in a task for a task still to come runs, as before.
    let r = RecipeDir::new(
        "hooks-later",
        "task(\"b\", || print(\"b ran\"));\ntask(\"a\", || {\n    after(\"b\", || print(\"hook ran\"));\n});\nafter(\"a\", \"b\");\n",
    );
    r.tether()
        .args(&["a"])
        .run()
        .status(0)
        .stdout_contains("b ran\n")
        .stdout_contains("hook ran\n");
}

/// A failure in a hook's closure says the hook it ran in, besides the task that reached it
/// (stop 32 tester: "in task `deploy`" only, as if the task's own body had failed); a task
/// hook's failure is its own task's, as before.
#[test]
fn a_failure_in_a_hook_closure_names_the_hook() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "hook-fail",
        r#"
task("deploy:started", || {});
task("app:check", || { on("db", "exit 4"); });
task("deploy", || { invoke("deploy:started"); invoke("app:check"); });
after("deploy:started", || {
    on("web", "exit 3");
});
before("app:check", || {});
"#,
    );
    r.tether()
        .args(&["deploy"])
        .run()
        .status(1)
        .stderr_contains(
            "(at deploy.rhai:9:5, in the after(\"deploy:started\") hook, in task `deploy`)",
        );
    let r = lab_recipe(
        &lab,
        "hook-task-fail",
        r#"
task("app:check", || { on("db", "exit 4"); });
task("deploy", || {});
before("deploy", "app:check");
"#,
    );
    r.tether()
        .args(&["deploy"])
        .run()
        .status(1)
        .stderr_contains("(at deploy.rhai:5:24, in task `app:check`)");
}

/// A closure hook is announced as a task of its own (`▶ before("hooked")`), in text and JSON,
/// so that what it runs is never under the heading of the task hook before it (stop 67 tester
/// t114: its failing `exit 8` came under `▶ pre`, and JSON had no `task_started` for it).
#[test]
fn a_closure_hook_has_a_heading_of_its_own() {
    let lab = lab(&["web1"]);
    let r = lab_recipe(
        &lab,
        "hook-heading",
        r#"
task("hooked", || { on("web1", "echo main"); });
task("pre", || { on("web1", "echo pre"); });
before("hooked", "pre");
before("hooked", || { on("web1", "exit 8"); });
after("pre", || { print("after pre"); });
"#,
    );
    let out = r.tether().args(&["hooked"]).run();
    out.status(1);
    let text = &out.stdout;
    let order = [
        "▶ pre\n",
        "web1 | pre\n",
        "▶ after(\"pre\")\nafter pre\n",
        "▶ before(\"hooked\")\n",
        "» web1 $ exit 8\n",
    ];
    in_order(text, &order);
    assert!(!text.contains("▶ hooked"), "{text}");
    let json = r.tether().args(&["--format", "json", "hooked"]).run();
    json.status(1);
    let tasks: Vec<(String, String)> = json
        .objects()
        .iter()
        .filter(|o| o["type"] == "task_started" || o["type"] == "task_finished")
        .map(|o| {
            let ok = match o["ok"].as_bool() {
                Some(ok) => format!(" ok={ok}"),
                None => String::new(),
            };
            (
                o["type"].as_str().unwrap().to_string(),
                format!("{}{ok}", o["task"].as_str().unwrap()),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("task_started", "pre"),
        ("task_finished", "pre ok=true"),
        ("task_started", "after(\"pre\")"),
        ("task_finished", "after(\"pre\") ok=true"),
        ("task_started", "before(\"hooked\")"),
        ("task_finished", "before(\"hooked\") ok=false"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(tasks, want, "{}", json.stdout);
}

/// `err.reason(host)` is that host's own text, for a name or a `Host`, and for a host that
/// failed, or was not started, inside another host's closure, however deep (stop 67 tester
/// t114: the text of the host whose closure it was, which held it with a count of hosts;
/// tester t116: "" for a host in the middle, and one not started there); "" for a host the failure
/// does not name (stop 33 tester: the whole message, for a host not in the step, a name no
/// host has, and an inner host, and `Function not found` for a `Host`).
#[test]
fn err_reason_is_a_hosts_own_text_or_nothing() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "reason",
        r#"
task("t", || {
    try { on("web", "echo no >&2; exit 5"); } catch (err) {
        print("web1=[" + err.reason("web1") + "]");
        print("host=[" + err.reason(host("web2")) + "]");
        print("db1=[" + err.reason("db1") + "]");
        print("nosuch=[" + err.reason("nosuch") + "]");
    }
    try { on("web1", |h| { on("db1", "exit 6"); }); } catch (err) {
        print("hosts=" + err.hosts);
        print("inner=[" + err.reason("db1") + "]");
        print("outer=[" + err.reason("web1") + "]");
    }
    try { on("web1", |h| { on("web2", |h| { on("db1", "exit 7"); }); }); } catch (err) {
        print("deep hosts=" + err.hosts);
        print("deep=[" + err.reason("db1") + "]");
        print("middle=[" + err.reason("web2") + "]");
    }
    try { on("web1", |h| { on(["web2", "db1"], #{ in: "sequence" }, |h2| { run("exit 8"); }); }); } catch (err) {
        print("seq failed=[" + err.reason("web2") + "]");
        print("seq not started=[" + err.reason("db1") + "]");
    }
});
"#,
    );
    let out = r.tether().args(&["t"]).run();
    out.status(0)
        .stdout_contains("web1=[`echo no >&2; exit 5` failed with exit status 5 after ")
        .stdout_contains("host=[`echo no >&2; exit 5` failed with exit status 5 after ")
        .stdout_contains("db1=[]")
        .stdout_contains("nosuch=[]")
        .stdout_contains("hosts=[\"db1\"]")
        .stdout_contains("inner=[`exit 6` failed with exit status 6 after ")
        .stdout_contains("outer=[1 of 1 host failed\n")
        .stdout_contains("deep hosts=[\"db1\"]")
        .stdout_contains("deep=[`exit 7` failed with exit status 7 after ")
        .stdout_contains("middle=[1 of 1 host failed\n  db1: `exit 7` failed with exit status 7")
        .stdout_contains("seq failed=[`exit 8` failed with exit status 8 after ")
        .stdout_contains("seq not started=[not started");
}

/// `-s to=0.3` is a number, as `-s to=3` is, so `on()`'s `timeout` takes it (stop 35 tester
/// t15: it stayed text and was refused).
#[test]
fn a_decimal_set_on_the_command_line_is_a_number() {
    let lab = lab(&["web1"]);
    let r = lab_recipe(
        &lab,
        "decimal-set",
        "task(\"t\", || { on(\"web1\", #{ timeout: fetch(\"to\") }, \"sleep 20\"); });\n",
    );
    let out = r.tether().args(&["-s", "to=0.3", "t"]).run();
    out.status(1)
        .stderr_contains("web1: `sleep 20` did not finish within 300.0 ms");
    // Written otherwise than Rhai prints it, it stays text, and the option names it.
    r.tether()
        .args(&["-s", "to=0.30", "t"])
        .run()
        .status(4)
        .stderr_contains("on() option `timeout` must be a number, not \"0.30\" (text that reads as a number: -s gives a number only where it is written as Rhai prints one, such as 1.5)");
}

/// A server's `user` and `port` (Capistrano's `server "web", user: "deploy", port: 2222`) are
/// where it is reached, as `deploy@web:2222` says them (stop 36 tester t17: they were kept as
/// plain properties, and the run reached the config's port as the config's user, exit 0).
/// `ssh_options` (net-ssh's settings, which tether does not read) is refused at its line, as a
/// server property and as a variable, and so is a `user` or `port` the name contradicts.
#[test]
fn a_servers_user_and_port_are_where_it_is_reached() {
    let lab = lab(&["host1", "host2"]);
    let port2 = lab.host("host2").port;
    let mut r = RecipeDir::new(
        "user-port",
        &format!(
            "server(\"host1\", #{{ roles: [\"app\"], user: \"root\", port: {port2} }});\n\
             task(\"t\", || {{ on(\"app\", |h| {{ print(`${{h.user}} ${{h.port}}`); run(\"whoami; touch /srv/reached\"); }}); }});\n\
             task(\"by_name\", || {{ on(\"host1\", \"echo $SSH_CONNECTION\"); }});\n\
             role(\"worker\", [\"host1\"]);\n\
             task(\"once\", || {{ on([\"app\", \"worker\"], \"echo one >> /srv/count\"); }});\n"
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains(&format!("root {port2}\n"))
        .stdout_contains("| root\n");
    assert!(lab.host("host2").root_dir.join("reached").exists());
    assert!(!lab.host("host1").root_dir.join("reached").exists());
    // `--hosts host1` selects that server, as Capistrano's host filter matches its host name,
    // for `tether run` as for a task (stop 36 tester t19: run reached the config's port).
    r.tether()
        .args(&["run", "--hosts", "host1", "--", "echo $SSH_CONNECTION"])
        .run()
        .status(0)
        .stdout_contains(&format!(" {port2}\n"));
    r.tether()
        .args(&["--hosts", "host1", "t"])
        .run()
        .status(0)
        .stdout_contains(&format!("root {port2}\n"));
    // A role naming host1 joins that server: one host, each command run once (stop 36
    // tester t22: a second host, the same machine through the ssh config, ran it twice).
    r.tether().args(&["once"]).run().status(0);
    assert_eq!(
        std::fs::read_to_string(lab.host("host2").root_dir.join("count")).unwrap(),
        "one\n"
    );
    assert!(!lab.host("host1").root_dir.join("count").exists());
    // So do `on("host1")` and `tether ssh host1` (stop 36 tester t20: refused, "did you mean").
    r.tether()
        .args(&["by_name"])
        .run()
        .status(0)
        .stdout_contains(&format!(" {port2}\n"));
    r.tether()
        .args(&["ssh", "host1", "--", "echo $SSH_CONNECTION"])
        .run()
        .status(0)
        .stdout_contains(&format!(" {port2}"));

    // `tether run --hosts host1` reaches the server declared `root@host1` as declared, not as
    // the ssh config's user (stop 36 tester t18: as `nobody`).
    let nobody = lab.dir().join("nobody_config");
    std::fs::write(
        &nobody,
        format!(
            "Host host1\n  User nobody\n{}",
            std::fs::read_to_string(lab.ssh_config()).unwrap()
        ),
    )
    .unwrap();
    let mut r = RecipeDir::new(
        "user-named",
        "server(\"root@host1\", #{ roles: [\"app\"] });\ntask(\"who\", || { on(\"app\", \"whoami\"); });\n",
    );
    r.ssh_config = Some(nobody);
    r.tether()
        .args(&["run", "--hosts", "host1", "--", "whoami"])
        .run()
        .status(0)
        .stdout_contains("| root\n");
    // So does a task's `--hosts host1` (t18: refused, "not a server of this recipe").
    r.tether()
        .args(&["--hosts", "host1", "who"])
        .run()
        .status(0)
        .stdout_contains("| root\n");

    // A recipe of `line` and a task: refused at its line (exit 4).
    let refused = |line: &str| {
        let mut r = RecipeDir::new("user-port-bad", &format!("{line}\ntask(\"t\", || {{}});\n"));
        r.ssh_config = Some(lab.ssh_config());
        let out = r.tether().args(&["t"]).run();
        out.status(4);
        out
    };
    for (line, said) in [
        (
            "server(\"deploy@host1\", #{ user: \"root\" });".to_string(),
            "deploy.rhai:1:1: server(\"deploy@host1\"): `user: \"root\"` contradicts the name's user `deploy`".to_string(),
        ),
        (
            format!("server(\"host1:{port2}\", #{{ port: 22 }});"),
            format!("server(\"host1:{port2}\"): `port: 22` contradicts the name's port {port2}"),
        ),
        // A string is a port as the name's `:port` reads it, a service name too (stop 41
        // tester t42: `port: "ssh"` was refused).
        (
            format!("server(\"host1:{port2}\", #{{ port: \"ssh\" }});"),
            format!("server(\"host1:{port2}\"): `port: 22` contradicts the name's port {port2}"),
        ),
        (
            format!("server(\"host1:{port2}\", #{{ port: \" +22\" }});"),
            format!("server(\"host1:{port2}\"): `port: 22` contradicts the name's port {port2}"),
        ),
        (
            "server(\"host1\", #{ ssh_options: #{ user: \"deploy\" } });".to_string(),
            "server(\"host1\"): tether reads no `ssh_options`".to_string(),
        ),
        (
            "set(\"ssh_options\", #{ port: 2222 });".to_string(),
            "tether reads no `ssh_options`".to_string(),
        ),
    ] {
        refused(&line)
            .stderr_contains(&said)
            .stderr_contains("deploy.rhai:1:");
    }
    for bad in [
        "70000",
        "0",
        "-1",
        "1.5",
        "\"0\"",
        "\"nosuchservice\"",
        "\"\"",
        "\"22 \"",
        "true",
    ] {
        refused(&format!("server(\"host1\", #{{ port: {bad} }});")).stderr_contains(&format!(
            "deploy.rhai:1:1: server(\"host1\"): `port` must be a port number (1 to 65535) \
                 or a service name, not {bad}"
        ));
    }
}

/// `--hosts db1` beside a server `db1:1` selects db1 alone, for a task as for `tether run`
/// (stop 40 tester t34: a task, and `--roles db --hosts db1`, ran on both, exit 3 for the
/// other port).
#[test]
fn a_hosts_filter_selects_the_server_of_that_name_alone() {
    let lab = support::recipe::lab(&["db1"]);
    let r = support::recipe::lab_recipe(
        &lab,
        "hosts-exact",
        r#"server("db1:1", #{ roles: ["db"] });
task("w", || { on("all", "echo ran >> /srv/seen"); });"#,
    );
    for args in [
        &["--hosts", "db1", "w"][..],
        &["--roles", "db", "--hosts", "db1", "w"],
        &["run", "--hosts", "db1", "--", "echo ran >> /srv/seen"],
    ] {
        r.tether().args(args).run().status(0);
    }
    assert_eq!(
        std::fs::read_to_string(lab.host("db1").root_dir.join("seen")).unwrap(),
        "ran\nran\nran\n"
    );
}

/// A role named `all` or `""` is refused at its line: `on("all")` meant every server and
/// `--roles all` the role's, `--roles web,` selected the empty one (stop 40 tester t34).
#[test]
fn a_role_no_target_could_name_is_refused() {
    for (line, says) in [
        (
            r#"server("web1", #{ roles: ["all"] });"#,
            "a role cannot be named `all`",
        ),
        (r#"role("all", ["web1"]);"#, "a role cannot be named `all`"),
        (
            r#"server("web1", #{ roles: ["web", ""] });"#,
            "a role name cannot be empty",
        ),
        (r#"role("", []);"#, "a role name cannot be empty"),
        (
            r#"role(" ", ["web1"]);"#,
            "a role name cannot be empty or blank, not \" \"",
        ),
        (
            r#"server("web1", #{ roles: ["a,b"] });"#,
            "a role name cannot hold `,`",
        ),
    ] {
        let r = RecipeDir::new("role-names", &format!("{line}\ntask(\"t\", || {{}});\n"));
        r.tether()
            .args(&["-n", "t"])
            .run()
            .status(4)
            .stderr_contains("deploy.rhai:1:1: ")
            .stderr_contains(says);
    }
}

/// The plan (`-n`) starts what the run would: after a failed host of a sequence, or a failed
/// group, nothing more (stop 40 tester t34: the plan went on to web2, the run did not).
#[test]
fn the_plan_stops_a_sequence_or_groups_where_the_run_would() {
    for spread in [r#"in: "sequence""#, r#"in: "groups", limit: 1"#] {
        let r = RecipeDir::new(
            "plan-sequence",
            &format!(
                "server(\"web1\", #{{ roles: [\"web\"] }});\n\
                 server(\"web2\", #{{ roles: [\"web\"] }});\n\
                 task(\"t\", || {{ on(\"web\", #{{ {spread} }}, |h| {{ print(\"start \" + h.name); \
                 if h.name == \"web1\" {{ fail(\"x\"); }} run(\"echo ran\"); }}); }});\n"
            ),
        );
        r.tether()
            .args(&["-n", "t"])
            .run()
            .status(1)
            .stdout_contains("start web1")
            .stdout_lacks("start web2")
            .stderr_contains("web2: not started: an earlier host or group of this step failed");
    }
}

/// A task invoked from the `on` closures of several hosts at once runs once, and each waits
/// for it to end, as Rake's invoke does (stop 40 tester t34: the second host's invoke was
/// refused as a circular dependency, `x => x`); a closure that invokes its own task is still
/// a circle.
#[test]
fn a_task_invoked_by_several_hosts_closures_runs_once() {
    let lab = support::recipe::lab(&["web1", "web2"]);
    let r = support::recipe::lab_recipe(
        &lab,
        "invoke-closures",
        r#"task("x", || { on("web", "sleep 1; echo x >> /srv/x"); });
task("i2", || { on("web", |h| { invoke("x"); run("cat /srv/x >> /srv/seen"); }); });
task("loop", || { on("web", |h| { invoke("loop"); }); });"#,
    );
    r.tether().args(&["i2"]).run().status(0);
    for h in ["web1", "web2"] {
        let root = &lab.host(h).root_dir;
        assert_eq!(
            std::fs::read_to_string(root.join("x")).unwrap(),
            "x\n",
            "{h}"
        );
        // Each host's closure went on once x had ended.
        assert_eq!(
            std::fs::read_to_string(root.join("seen")).unwrap(),
            "x\n",
            "{h}"
        );
    }
    r.tether()
        .args(&["loop"])
        .run()
        .status(4)
        .stderr_contains("circular dependency: loop => loop");
}

/// A task invoked from the `on` closures of several hosts that fails fails every one of them,
/// the host whose closure ran it and those that waited for it alike, the same way on every run
/// (stop 46 tester t59: one host caught the failure, which host changed from run to run, and
/// the others went on as if it had worked, exit 0; uncaught, each run named other hosts).
#[test]
fn a_failing_task_invoked_by_several_hosts_closures_fails_each() {
    let lab = support::recipe::lab(&["web1", "web2", "web3"]);
    let mut r = RecipeDir::new(
        "invoke-fails",
        r#"for h in ["web1", "web2", "web3"] { server(h, #{ roles: ["web"] }); }
task("bad", || { run_locally("sleep 0.5"); on("web1", "exit 3"); });
task("caught", || { on("web", |h| {
    try { invoke("bad"); print(h.name + " went on"); } catch (e) { print(h.name + " caught " + e.kind + " " + e.hosts); }
    run("echo after"); }); });
task("uncaught", || { on("web", |h| { invoke("bad"); run("echo after"); }); });
task("retry", || { try { invoke("bad"); } catch (e) { print("retrying"); } invoke("bad"); print("went on"); });"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    for _ in 0..3 {
        let out = r.tether().args(&["caught"]).run();
        out.status(0).stdout_lacks("went on");
        for h in ["web1", "web2", "web3"] {
            out.stdout_contains(&format!("{h} caught command_failed [\"web1\"]"));
        }
        assert_eq!(out.host_lines("web2", '|'), ["after"], "{}", out.stdout);
    }
    let mut said = Vec::new();
    for _ in 0..3 {
        let out = r.tether().args(&["uncaught"]).run();
        out.status(1).stdout_lacks("| after");
        let error = out
            .stderr
            .lines()
            .skip_while(|l| !l.starts_with("error: "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            error.starts_with("error: 3 of 3 hosts failed"),
            "{}",
            out.stderr
        );
        // The same words every time, durations apart (each run of digits one `#`: a command
        // may take 9.8 ms or 17.0 ms).
        let mut words = String::new();
        for c in error.chars() {
            let c = if c.is_ascii_digit() { '#' } else { c };
            if !(c == '#' && words.ends_with('#')) {
                words.push(c);
            }
        }
        said.push(words);
    }
    assert!(said.windows(2).all(|w| w[0] == w[1]), "{said:#?}");
    // A later invoke of the failed task runs nothing, says so, and fails as it did.
    r.tether()
        .args(&["retry"])
        .run()
        .status(1)
        .stdout_contains("retrying")
        .stdout_contains("invoke(\"bad\") runs nothing")
        .stdout_lacks("went on");
}

/// A failure hook without its parameter says so, not Rhai's `Function not found: anon$...`
/// (stop 40 tester t36); the run's own failure still decides the exit.
#[test]
fn a_failure_hook_without_its_parameter_says_so() {
    let r = RecipeDir::new(
        "hook-arity",
        "on_failure(|| { print(\"never\"); });\ntask(\"t\", || { fail(\"boom\"); });\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(1)
        .stdout_contains(
            "warning: failure hook failed: its closure takes one parameter, the run's failure: \
             on_failure(|err| { ... })",
        )
        .stdout_lacks("anon$");
}

/// Two servers that reach one sshd as one user by one route, as the ssh config resolves them,
/// are refused naming both, before anything connects (stop 40 tester t36: `server("host1")`
/// and `server("host1:P")`, P the config's port, ran every command twice there); another
/// user is another login.
#[test]
fn two_servers_that_are_one_machine_are_refused() {
    let lab = support::recipe::lab(&["host1"]);
    let port = lab.host("host1").port;
    let mut r = RecipeDir::new(
        "one-machine",
        &format!(
            "server(\"host1\", #{{ roles: [\"web\"] }});\n\
             server(\"host1:{port}\", #{{ roles: [\"db\"] }});\n\
             task(\"t\", || {{ on(\"all\", \"echo ran >> /srv/seen\"); }});\n"
        ),
    );
    r.ssh_config = Some(lab.ssh_config());
    for args in [&["t"][..], &["-n", "t"]] {
        r.tether()
            .args(args)
            .run()
            .status(4)
            .stderr_contains(&format!(
                "servers `host1` and `host1:{port}` are one machine, root@127.0.0.1:{port} by one \
             route as the ssh config resolves them: each command would run on it twice"
            ));
    }
    assert!(!lab.host("host1").root_dir.join("seen").exists());
    assert_eq!(lab.accepted_logins("host1"), 0);
}

/// A thrown value whose text is nothing is said as what it is (stop 44 tester t54: `throw;`
/// gave `error: deploy.rhai:18:22: ` and nothing after).
#[test]
fn a_throw_of_nothing_is_said() {
    let r = RecipeDir::new(
        "throw-nothing",
        "task(\"unit\", || { throw; });\ntask(\"blank\", || { throw \" \"; });\n",
    );
    r.tether()
        .args(&["unit"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:1:19: the recipe threw () (a `throw` without a value)");
    r.tether()
        .args(&["blank"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:2:20: the recipe threw \" \", a blank string");
}

/// A lazy variable's closure that takes parameters is said so where it is fetched (stop 44
/// tester t54: `Function not found: anon$7d2378a80bb9a6cf ()`).
#[test]
fn a_lazy_closure_with_parameters_is_said() {
    let r = RecipeDir::new(
        "lazy-params",
        "set(\"cl\", |x| x + 1);\ntask(\"t\", || { print(fetch(\"cl\")); });\n",
    );
    r.tether().args(&["t"]).run().status(4).stderr_contains(
        "deploy.rhai:2:22: variable `cl` holds a closure that takes parameters, and its value \
         is that closure called with none: write it `|| ...`",
    );
    let r = RecipeDir::new(
        "lazy-fn",
        "fn f(x) { x }\nset(\"cl\", Fn(\"f\"));\ntask(\"t\", || { print(fetch(\"cl\")); });\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(4)
        .stderr_contains("variable `cl` holds a closure that takes parameters");
}

/// `fail("")` says that it was given no words (stop 44 tester t55: `error: ` and nothing).
#[test]
fn a_fail_without_words_is_said() {
    let r = RecipeDir::new(
        "fail-empty",
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"f\", || { fail(\" \"); });\n",
    );
    r.tether()
        .args(&["f"])
        .run()
        .status(1)
        .stderr_contains("fail() was called without a message");
}

/// A host value prints as its name, and in an array or map as the expression that gives it
/// (stop 44 tester t54: `print([h1, h2])` printed `[Host, Host]`).
#[test]
fn host_values_print_as_hosts() {
    let r = RecipeDir::new(
        "print-hosts",
        "server(\"web1\", #{ roles: [\"web\"] });\nserver(\"web2\", #{ roles: [\"web\"] });\n\
         task(\"t\", || { print([host(\"web1\"), host(\"web2\")]); print(#{ h: host(\"web1\") }); \
         print(host(\"web2\")); print(host([\"web2\", \"web1\"])); print(host([])); });\n\
         task(\"unknown\", || { host([\"web1\", \"web9\"]); });\n\
         task(\"number\", || { host([\"web1\", 2]); });\n\
         task(\"mixed\", || { print(host([\"web1\", host(\"web2\")])); });\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains(r#"[host("web1"), host("web2")]"#)
        .stdout_contains(r#"#{"h": host("web1")}"#)
        .stdout_contains("\nweb2\n")
        // An array of names is an array of hosts, in its order.
        .stdout_contains(r#"[host("web2"), host("web1")]"#)
        .stdout_contains("\n[]\n");
    r.tether()
        .args(&["unknown"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:4:")
        .stderr_contains("no server `web9` in the recipe");
    r.tether()
        .args(&["number"])
        .run()
        .status(4)
        .stderr_contains("host(): the names must be strings or Host values, not i64");
    // A Host value among the names is itself (stop 65 tester t109: refused, named by its Rust
    // type).
    r.tether()
        .args(&["mixed"])
        .run()
        .status(0)
        .stdout_contains(r#"[host("web1"), host("web2")]"#);
}

/// `hosts(target, #{ select: P })` (or `filter`) keeps the servers whose property P is true,
/// `#{ exclude: P }` leaves them out, as Capistrano's `roles(:db, select: :primary)` and
/// `roles(:app, exclude: :no_release)`: true is set and neither `false` nor `()` (Ruby's
/// truthiness: `0` and `""` are true); after `--roles`/`--hosts`, in target order.
#[test]
fn hosts_select_and_exclude_by_a_server_property() {
    let r = RecipeDir::new(
        "hosts-by-property",
        r#"server("a", #{ roles: ["app"], primary: true, no_release: true });
server("b", #{ roles: ["app"], primary: false });
server("c", #{ roles: ["app"], primary: (), no_release: false });
server("d", #{ roles: ["app", "db"], primary: 0, tag: "" });
server("e", #{ roles: ["db"] });
task("t", || {
    print("select " + hosts("app", #{ select: "primary" }));
    print("filter " + hosts(["e", "app"], #{ filter: "primary" }));
    print("exclude " + hosts("all", #{ exclude: "no_release" }));
    print("both " + hosts("app", #{ select: "tag", exclude: "no_release" }));
    print("none " + hosts("db", #{}));
    print("unsharded " + unsharded_hosts("app", #{ exclude: "primary" }));
});
task("unknown", || { hosts("app", #{ only: "primary" }); });
task("number", || {
    hosts("app",
        #{ select: 1 });
});
task("unknown_number", || { hosts("app", #{ select: "primary", bogus: 5 }); });
task("unit", || { hosts("app", #{ exclude: () }); });
task("host", || { unsharded_hosts("app", #{ select: host("a") }); });
task("empty", || { hosts("app", #{ filter: "" }); });
"#,
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains("select [\"a\", \"d\"]\n")
        .stdout_contains("filter [\"a\", \"d\"]\n")
        .stdout_contains("exclude [\"b\", \"c\", \"d\", \"e\"]\n")
        .stdout_contains("both [\"d\"]\n")
        .stdout_contains("none [\"d\", \"e\"]\n")
        .stdout_contains("unsharded [\"b\", \"c\"]\n");
    r.tether()
        .args(&["--roles", "db", "t"])
        .run()
        .status(0)
        .stdout_contains("select [\"d\"]\n")
        .stdout_contains("exclude [\"d\", \"e\"]\n");
    r.tether()
        .args(&["unknown"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:14:22")
        .stderr_contains(
            "hosts(): unknown option `only`: it takes select (or filter) and exclude, each a \
             property name",
        );
    r.tether()
        .args(&["number"])
        .run()
        .status(4)
        .stderr_contains("deploy.rhai:16:5")
        .stderr_contains(
            "hosts(): `select` takes a property name (`select: \"primary\"`), not 1 (of type \
             i64)",
        );
    // Refused for what it is, whatever the value (stop 66 tester t110: an unknown option
    // with a number was said to take a property name; `()` was named by nothing, a Host by
    // its Rust type, and "" taken as a name).
    for (task, said) in [
        (
            "unknown_number",
            "hosts(): unknown option `bogus`: it takes select (or filter) and exclude",
        ),
        (
            "unit",
            "hosts(): `exclude` takes a property name (`exclude: \"primary\"`), not ()",
        ),
        (
            "host",
            "unsharded_hosts(): `select` takes a property name (`select: \"primary\"`), not a \
             value of type Host",
        ),
        (
            "empty",
            "hosts(): `filter` takes a property name (`filter: \"primary\"`), not an empty string",
        ),
    ] {
        r.tether()
            .args(&[task])
            .run()
            .status(4)
            .stderr_contains(said);
    }
}

/// A task that fails with an error of the recipe's own (not a thrown value) fails the hosts
/// that waited for it at the place where it failed, in the file it is in, as the host whose
/// closure ran it, and a `catch` there reads its message (the review of stop 46: the waiters
/// got its text with Rhai's `(line 4, position 15)`, placed in the main file at that line).
#[test]
fn a_task_failing_with_a_recipe_error_fails_its_waiters_where_it_failed() {
    let lab = support::recipe::lab(&["web1", "web2", "web3"]);
    let mut r = RecipeDir::new(
        "invoke-recipe-error",
        r#"import "lib" as lib;
for h in ["web1", "web2", "web3"] { server(h, #{ roles: ["web"] }); }
task("caught", || { on("web", |h| {
    try { invoke("bad"); } catch (e) { print(h.name + " caught " + type_of(e) + " " + e.kind + " " + e.message); } }); });
task("uncaught", || { on("web", |h| { invoke("bad"); }); });"#,
    );
    r.write(
        "lib.rhai",
        "task(\"bad\", || {\n    run_locally(\"sleep 0.5\");\n    let a = [1];\n    let y = a[5];\n});\n",
    );
    r.ssh_config = Some(lab.ssh_config());
    let out = r.tether().args(&["caught"]).run();
    out.status(0);
    for h in ["web1", "web2", "web3"] {
        // The same on every host, the one that ran it too (stop 47 tester t65: that one
        // caught Rhai's map, which host it was changing from run to run).
        out.stdout_contains(&format!(
            "{h} caught Failure recipe Array index 5 out of bounds: only 1 element in array\n"
        ));
    }
    let out = r.tether().args(&["uncaught"]).run();
    out.status(4);
    for h in ["web1", "web2", "web3"] {
        out.stderr_contains(&format!(
            "{h}: Array index 5 out of bounds: only 1 element in array\n"
        ));
    }
    out.stderr_contains("(at lib.rhai:4:15");
    out.stderr_lacks("deploy.rhai:4:")
        .stderr_lacks("(line 4, position")
        .stderr_contains("(at lib.rhai:4:15, in task ");
}

/// `capture(cmd, #{ strip: false })` is SSHKit's `capture(cmd, strip: false)`: the output with
/// its last line end removed, its leading blanks and other line ends kept (stop 47 tester t63:
/// indented YAML lost its first line's indentation, and the option was Rhai's "Function not
/// found"); an unknown option is refused at its line.
#[test]
fn capture_without_strip_keeps_the_outputs_blanks() {
    let lab = support::recipe::lab(&["web1"]);
    let mut r = RecipeDir::new(
        "capture-strip",
        r#"server("web1", #{ roles: ["web"] });
task("t", || { on("web1", |h| {
    let cmd = "printf '  a: 1\\n  b: 2\\n\\n'";
    print("stripped=" + capture(cmd).to_debug());
    print("kept=" + capture(cmd, #{ strip: false }).to_debug());
    print("crlf=" + capture("printf 'x \\r\\n'", #{ strip: false }).to_debug());
    print("true=" + capture(cmd, #{ strip: true }).to_debug());
}); });
task("bad", || { on("web1", |h| { capture("true", #{ verbosity: 1 }); }); });"#,
    );
    r.ssh_config = Some(lab.ssh_config());
    r.tether()
        .args(&["t"])
        .run()
        .status(0)
        .stdout_contains("stripped=\"a: 1\\n  b: 2\"")
        .stdout_contains("kept=\"  a: 1\\n  b: 2\\n\"")
        .stdout_contains("crlf=\"x \"")
        .stdout_contains("true=\"a: 1\\n  b: 2\"");
    r.tether()
        .args(&["bad"])
        .run()
        .status(4)
        .stderr_contains("capture(): unknown option `verbosity` (known: strip)")
        .stderr_contains("deploy.rhai:9:35: capture(): unknown option");
}

/// A failure in a task that an `on` closure invoked is placed in that task, where its line
/// is, on one host and on several, through a nested `on` or a command of its own (stop 50
/// tester t71: `(at inv.rhai:4:18, in task `a`)`, line 4 being in task `sub`).
#[test]
fn a_failure_in_a_task_a_closure_invoked_names_that_task() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "invoked-in-closure",
        r#"
task("sub", || {
    on("db1", "exit 7");
});
task("own", || { run("exit 8"); });
task("one", || { on("web1", |h| { invoke("sub"); }); });
task("two", || { on(["web1", "web2"], |h| { invoke("sub"); }); });
task("mine", || { on(["web1", "web2"], |h| { invoke("own"); }); });
"#,
    );
    for (task, place) in [
        ("one", "(at deploy.rhai:6:5, in task `sub`)"),
        ("two", "(at deploy.rhai:6:5, in task `sub`)"),
        ("mine", "(at deploy.rhai:8:18, in task `own`)"),
    ] {
        let out = r.tether().args(&[task]).run();
        out.status(1).stderr_contains(place);
    }
}

/// An ssh config given outside the recipe (`TETHER_SSH_CONFIG`, `-F`) is read in place of the
/// recipe's `ssh_config`, as README says, and a warning says so, naming both and where the
/// recipe set its own (stop 49 tester t70, stop 50 tester t72: a `TETHER_SSH_CONFIG` left in
/// the environment sent runs to another lab's hosts without a word); none where they are the
/// same file or the recipe names none.
#[test]
fn an_ssh_config_given_outside_the_recipe_says_it_replaces_the_recipes() {
    let lab = lab(&["web1"]);
    let lab_config = lab.ssh_config().display().to_string();
    let body = |ssh_config: &str| {
        format!(
            "{ssh_config}server(\"web1\", #{{ roles: [\"web\"] }});\ntask(\"t\", || {{ on(\"web\", \"true\"); }});\n"
        )
    };
    let own = RecipeDir::new(
        "own-ssh-config",
        &body("set(\"ssh_config\", \"own_config\");\n"),
    );
    std::fs::copy(lab.ssh_config(), own.dir.join("own_config")).unwrap();
    for run in [
        support::tether::Tether::new().env("TETHER_SSH_CONFIG", &lab_config),
        support::tether::Tether::new().arg("-F").arg(&lab_config),
    ] {
        run.current_dir(&own.dir)
            .args(&["t"])
            .run()
            .status(0)
            .stdout_contains(&format!(
                "warning: the ssh config read is {lab_config} (-F, or TETHER_SSH_CONFIG in the \
                 environment), not the recipe's ssh_config own_config, set at deploy.rhai:1:1"
            ));
    }
    // The same file, or none in the recipe: nothing to say.
    let own_config = own.dir.join("own_config").display().to_string();
    let none = RecipeDir::new("no-ssh-config", &body(""));
    for (dir, config) in [(&own.dir, &own_config), (&none.dir, &lab_config)] {
        support::tether::Tether::new()
            .current_dir(dir)
            .env("TETHER_SSH_CONFIG", config)
            .args(&["t"])
            .run()
            .status(0)
            .stdout_lacks("warning:");
    }
}

/// `tether hosts` lists a name that a set would read otherwise quoted, as every other line of
/// tether shows it, so that what it prints, given back to --hosts, selects that host (tester
/// t129: `web[1]`, which --hosts reads as web1).
#[test]
fn tether_hosts_lists_names_as_hosts_takes_them() {
    let r = RecipeDir::new(
        "quoted-hosts",
        "server(\"web[1]\");\nserver(\"web1\");\nserver(\"db!2\");\n",
    );
    let names = |out: &Output| -> Vec<String> {
        out.stdout
            .lines()
            .skip(1)
            .map(|l| l.split("  ").next().unwrap().trim().to_string())
            .collect()
    };
    let out = r.tether().arg("hosts").run();
    out.status(0);
    let listed = names(&out);
    assert_eq!(listed, ["\"web[1]\"", "web1", "\"db!2\""], "{}", out.stdout);
    for name in &listed {
        let out = r.tether().args(&["hosts", "--hosts", name]).run();
        out.status(0);
        assert_eq!(names(&out), std::slice::from_ref(name), "{}", out.stdout);
    }
}

/// A dry run stopped by a signal plans nothing after it: its hosts, woken at once where they
/// waited at a step, are stopped there, as the run's hosts are (tester t132: hosts that waited
/// for one in an endless loop planned `echo one` and `echo two` after the signal, 9 hosts on
/// one run, about 100 on another, none on a third).
#[test]
fn a_dry_run_stopped_by_a_signal_plans_nothing_after_it() {
    let mut servers = String::new();
    let mut config = String::new();
    for i in 1..=60 {
        servers += &format!("server(\"d{i}\", #{{ roles: [\"web\"] }});\n");
        config += &format!("Host d{i}\n  HostName 10.255.0.{i}\n");
    }
    let r = RecipeDir::new(
        "dry-signal",
        &format!(
            "{servers}task(\"busy\", || {{ on(\"web\", |host| {{ if host.name == \"d1\" {{ \
             let n = 0; loop {{ n += 1; }} }} run(\"echo one\"); run(\"echo two\"); }}); }});\n"
        ),
    );
    r.write("ssh_config", &config);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let child = r
            .tether()
            .args(&["-F", "ssh_config", "-n", "busy"])
            .spawn_watched();
        // d1 loops before its first command, its turn holding the others (a dry run's hosts
        // take turns): nothing can be planned before the signal.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        support::net::signal(child.id(), signal);
        let out = child.wait_with_output();
        let text = support::tether::text(&out);
        assert_eq!(out.status.code(), Some(130), "{signal}: {text}");
        assert!(!text.contains("$ echo"), "{signal}: {text}");
    }
}
