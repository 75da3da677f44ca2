//! `--format json` on every subcommand prints only JSON lines that parse, each with a `type`,
//! and drops nothing that text output shows (a recipe's `print` included).

use crate::support;

use support::recipe::{lab, lab_recipe, RecipeDir};

/// Every stdout line as a JSON object with a string `type`.
/// The shape README gives a run's stream (fresh-eyes findings: a dry run had no `run_started`
/// or `run_finished`, a recipe's top-level `print` came before `run_started`, and `hosts` was
/// repeated for every step): `run_started` first, each host in one `hosts` object at most,
/// `run_finished` last.
fn assert_run_shape(all: &[serde_json::Value], exit_code: i64, dry_run: bool) {
    let shown = || {
        all.iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(all[0]["type"], "run_started", "{}", shown());
    assert_eq!(all[0]["dry_run"], dry_run, "{}", shown());
    let mut announced: Vec<&str> = all
        .iter()
        .filter(|o| o["type"] == "hosts")
        .flat_map(|o| o["hosts"].as_array().unwrap())
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    let n = announced.len();
    announced.sort();
    announced.dedup();
    assert_eq!(announced.len(), n, "{}", shown());
    let finished = &all[all.len() - 1];
    assert_eq!(finished["type"], "run_finished", "{}", shown());
    assert_eq!(finished["exit_code"], exit_code, "{}", shown());
}

fn types(objects: &[serde_json::Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["type"].as_str().unwrap_or("").to_string())
        .collect()
}

const RECIPE: &str = r#"
server("web1", #{ roles: ["web"] });
server("web2", #{ roles: ["web"] });
stage("production", || {});
print("loading");
task("hello", "Say hello", || {
    print("from print");
    on("web", "echo hi");
    on("web", |host| { capture("hostname"); upload("deploy.rhai", "/tmp/x"); });
    run_locally("true");
});
before("hello", "prep");
task("prep", || {});
"#;

#[test]
fn tasks_and_the_plan() {
    let r = RecipeDir::new("json-tasks", RECIPE);
    let out = r.tether().args(&["tasks", "--format", "json"]).run();
    out.status(0);
    let all = out.objects();
    let hello = all
        .iter()
        .find(|o| o["type"] == "task" && o["name"] == "hello")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(hello["description"], "Say hello");
    assert_eq!(hello["before"][0], "prep");
    assert!(all
        .iter()
        .any(|o| o["type"] == "stage" && o["name"] == "production"));
    // The recipe's top-level print is an event too.
    assert!(all
        .iter()
        .any(|o| o["type"] == "print" && o["text"] == "loading"));

    let out = r.tether().args(&["-n", "--format", "json", "hello"]).run();
    out.status(0);
    let all = out.objects();
    assert_run_shape(&all, 0, true);
    assert_eq!(all[1]["type"], "print", "{}", out.stdout);
    assert_eq!(all[1]["text"], "loading", "{}", out.stdout);
    let t = types(&all);
    for kind in [
        "task_started",
        "print",
        "planned",
        "planned_upload",
        "planned_local",
        "task_finished",
    ] {
        assert!(
            t.iter().any(|x| x == kind),
            "{kind} missing\n{}",
            out.stdout
        );
    }
    assert!(all
        .iter()
        .any(|o| o["type"] == "planned" && o["host"] == "web2" && o["command"] == "echo hi"));
    assert!(all
        .iter()
        .any(|o| o["type"] == "print" && o["text"] == "from print"));
}

#[test]
fn a_real_run_and_tether_run() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "json-run",
        "task(\"t\", || { print(\"p\"); on(\"web\", \"echo out; echo err >&2\"); });\n\
         task(\"bad\", || { on(\"db\", \"exit 5\"); });\n",
    );
    let out = r.tether().args(&["--format", "json", "t"]).run();
    out.status(0);
    let all = out.objects();
    assert_run_shape(&all, 0, false);
    let t = types(&all);
    for kind in [
        "run_started",
        "hosts",
        "connected",
        "task_started",
        "print",
        "on_command",
        "command_started",
        "output",
        "command_finished",
        "task_finished",
        "session_summary",
        "run_finished",
    ] {
        assert!(
            t.iter().any(|x| x == kind),
            "{kind} missing\n{}",
            out.stdout
        );
    }
    let started = all.iter().find(|o| o["type"] == "run_started").unwrap();
    assert_eq!(started["tasks"], serde_json::json!(["t"]));
    assert_eq!(started["recipe"], "deploy.rhai");
    assert!(started["start_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(all
        .iter()
        .any(|o| o["type"] == "command_finished" && o["outcome"] == "ok"));
    let finished = all.iter().find(|o| o["type"] == "run_finished").unwrap();
    assert_eq!(finished["exit_code"], 0);
    assert_eq!(finished["error"], serde_json::Value::Null);

    let out = r.tether().args(&["--format", "json", "bad"]).run();
    out.status(1);
    let all = out.objects();
    assert_run_shape(&all, 1, false);
    let finished = all.iter().find(|o| o["type"] == "run_finished").unwrap();
    assert_eq!(finished["ok"], false);
    assert_eq!(finished["exit_code"], 1);
    let error = finished["error"].as_str().unwrap();
    assert!(
        error.contains("`exit 5` failed with exit status 5"),
        "{error}"
    );

    let out = r
        .tether()
        .args(&["--format", "json", "run", "--hosts", "web1", "--", "exit 3"])
        .run();
    out.status(1);
    let all = out.objects();
    let started = all.iter().find(|o| o["type"] == "run_started").unwrap();
    assert_eq!(started["command"], "exit 3");
    assert!(all
        .iter()
        .any(|o| o["type"] == "command_finished" && o["outcome"] == "nonzero"));
    let s = all
        .iter()
        .find(|o| o["type"] == "summary")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(s["host"], "web1");
    assert_eq!(s["status"], "exit 3");
    assert_eq!(s["ok"], false);
    let whole = all
        .iter()
        .find(|o| o["type"] == "summary" && o["hosts"].is_array())
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(whole["exit_code"], 1);
}

/// `tether run` stopped by Ctrl-C: its summary is the last thing it says (before, the
/// sessions' heartbeats came after it, while they were closed).
#[test]
fn nothing_comes_after_the_summary_of_an_interrupted_run() {
    let lab = lab(&["web1", "web2", "db1"]);
    let marker = lab.host("web1").root_dir.join("marker");
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["--format", "json", "run", "--hosts", "web1,web2,db1", "--"])
        .arg("echo ran >> /srv/marker; sleep 30")
        .interrupt_after_start(&marker, std::time::Duration::from_millis(1500));
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    let first = kinds.iter().position(|k| k == "\"summary\"").unwrap();
    assert!(
        kinds[first..].iter().all(|k| k == "\"summary\""),
        "{stdout}"
    );
}

/// A command that fails before any run starts says so in JSON too: its last object is an
/// `error` (fresh-eyes finding: a recipe that does not parse printed nothing on stdout under
/// `--format json`, for a task, `-n`, `tasks` and `check` alike).
#[test]
fn a_failure_before_the_run_is_an_error_object() {
    let r = RecipeDir::new(
        "json-syntax",
        "server(\"web1\", #{ roles: [\"web\"] });\nprint(\"before\");\ntask(\"t\", || { on(\"web\", \"true\") ;\n",
    );
    for args in [
        &["--format", "json", "t"][..],
        &["--format", "json", "-n", "t"],
        &["--format", "json", "tasks"],
        &["--format", "json", "check"],
    ] {
        let out = r.tether().args(args).run();
        out.status(4);
        let all = out.objects();
        let last = all.last().unwrap_or_else(|| panic!("{args:?}: nothing"));
        assert_eq!(last["type"], "error", "{args:?}\n{}", out.stdout);
        assert_eq!(last["exit_code"], 4, "{args:?}");
        assert!(
            last["error"].as_str().unwrap().contains("deploy.rhai:"),
            "{args:?}\n{}",
            out.stdout
        );
    }
    let r = RecipeDir::new("json-unknown-task", "task(\"t\", || {});\n");
    let out = r.tether().args(&["--format", "json", "nosuch"]).run();
    out.status(2);
    let all = out.objects();
    assert_eq!(all.last().unwrap()["type"], "error", "{}", out.stdout);
    // Exit 2, and one object on stdout: the error.
    let refused = |args: &[&str]| -> serde_json::Value {
        let out = r.tether().args(args).run();
        out.status(2);
        let all = out.objects();
        assert_eq!(all.len(), 1, "{args:?}\n{}", out.stdout);
        assert_eq!(all[0]["type"], "error", "{args:?}");
        assert_eq!(all[0]["exit_code"], 2, "{args:?}");
        all[0].clone()
    };
    // Options refused before anything runs, and an event stream `tether report` cannot read
    // (fresh-eyes findings: stdout was empty).
    std::fs::write(r.path("bad.jsonl"), "not json\n").unwrap();
    for args in [
        &["--format", "json", "-s", "bad key=1", "t"][..],
        &["--format", "json", "-s", "noequals", "t"],
        &["--format", "json", "report", "bad.jsonl", "-o", "t.html"],
        &[
            "--format",
            "json",
            "report",
            "missing.jsonl",
            "-o",
            "x.html",
        ],
    ] {
        refused(args);
    }
    // A command line clap refuses (stop 67 tester t114: stdout was empty), wherever
    // `--format json` stands; one that does not ask for JSON gets none.
    for (args, words) in [
        (&["--format", "json", "--bogus"][..], "--bogus"),
        (&["--format=json", "run", "--nope"], "--nope"),
        (
            &["run", "--format", "json", "--parallel", "0"],
            "--parallel",
        ),
        (&["--format", "json", "nosuch-subcommand-flag", "-Z"], "-Z"),
        // After the bad option too (tester t126: nothing on stdout).
        (&["--bogus-flag", "--format", "json"], "--bogus-flag"),
        (
            &["run", "--bogus", "--format", "json", "--", "true"],
            "--bogus",
        ),
        (&["check", "--bogus", "--format=json"], "--bogus"),
    ] {
        let object = refused(args);
        let error = object["error"].as_str().unwrap();
        assert!(error.contains(words), "{args:?}: {error}");
        assert!(!error.starts_with("error:"), "{args:?}: {error}");
        assert!(!error.contains("Usage:"), "{args:?}: {error}");
        assert!(!error.contains("--help"), "{args:?}: {error}");
    }
    for args in [
        &["--bogus"][..],
        &["--format", "text", "--bogus"],
        &["--bogus", "--format", "json", "--format", "text"],
        &["run", "--bogus", "--", "--format", "json"],
    ] {
        let out = r.tether().args(args).run();
        out.status(2);
        assert_eq!(out.stdout, "", "{args:?}");
    }
}

/// A `print` inside an `on` closure is that host's in JSON (`host`), one outside any is the
/// run's (fresh-eyes finding: neither had a host, so a reader could not tell whose it was).
#[test]
fn a_print_in_a_closure_names_its_host() {
    let lab = crate::support::recipe::lab(&["web1", "web2"]);
    let r = crate::support::recipe::lab_recipe(
        &lab,
        "json-print-host",
        "task(\"t\", || { print(\"outside\"); on([\"web1\", \"web2\"], |h| { print(\"in \" + h.name); debug(h.name); }); });\n",
    );
    let out = r.tether().args(&["--format", "json", "t"]).run();
    out.status(0);
    let all = out.objects();
    let print = |text: &str| {
        all.iter()
            .find(|o| o["type"] == "print" && o["text"] == text)
            .unwrap_or_else(|| panic!("{text}\n{}", out.stdout))
            .clone()
    };
    assert!(print("outside").get("host").is_none(), "{}", out.stdout);
    for h in ["web1", "web2"] {
        assert_eq!(print(&format!("in {h}"))["host"], h, "{}", out.stdout);
    }
    let debugs: Vec<_> = all
        .iter()
        .filter(|o| o["type"] == "print" && o["text"].as_str().unwrap().starts_with("debug "))
        .collect();
    assert_eq!(debugs.len(), 2, "{}", out.stdout);
    assert!(
        debugs.iter().all(|o| o["host"].is_string()),
        "{}",
        out.stdout
    );
}

/// A line longer than 1 MiB comes in pieces, each but the last marked `"cut": true`, so a
/// reader can put it back together (stop 36 tester t16: the pieces read as lines of their own).
#[test]
fn pieces_of_a_long_line_say_it_goes_on() {
    let lab = support::lab::Lab::start(1);
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--format",
            "json",
            "run",
            "--hosts",
            "host1",
            "--",
            "head -c 2500000 /dev/zero | tr '\\0' a; echo; echo next",
        ])
        .run();
    out.status(0);
    let output: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "output")
        .collect();
    let (next, pieces) = output.split_last().unwrap();
    assert_eq!(next["line"], "next");
    assert_eq!(next.get("cut"), None);
    let (end, cut) = pieces.split_last().unwrap();
    assert!(!cut.is_empty());
    assert!(cut.iter().all(|v| v["cut"] == true));
    assert_eq!(end.get("cut"), None);
    let line: String = pieces.iter().map(|v| v["line"].as_str().unwrap()).collect();
    assert_eq!(line.len(), 2_500_000);
    assert!(line.bytes().all(|b| b == b'a'));
    // Cut at 1 MiB however the line's bytes arrived; a line of 1 MiB is one piece (stop 42
    // tester t47: 1,048,600 bytes came as one line, 1,048,576 as a piece and an empty one).
    for (bytes, pieces) in [
        (1_048_576, vec![1_048_576]),
        (1_048_577, vec![1_048_576, 1]),
        (1_048_600, vec![1_048_576, 24]),
        (3_145_728, vec![1_048_576; 3]),
    ] {
        let out = support::tether::Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["--format", "json", "run", "--hosts", "host1", "--"])
            .arg(&format!("head -c {bytes} /dev/zero | tr '\\0' a; echo"))
            .run();
        out.status(0);
        let got: Vec<(usize, bool)> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "output")
            .map(|v| (v["line"].as_str().unwrap().len(), v["cut"] == true))
            .collect();
        let want: Vec<(usize, bool)> = pieces
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i + 1 < pieces.len()))
            .collect();
        assert_eq!(got, want, "{bytes}");
    }
}

/// JSON has a line as it is, every character the command printed: DEL (0x7f) too, which
/// stripping colour for a stream that is not a terminal removed (stop 50 tester t72: `a\177b`
/// came as `"ab"`), beside other control characters, C1 controls and separators; a task's
/// description in `tether tasks` alike.
#[test]
fn json_lines_keep_every_character_of_a_line() {
    let lab = support::lab::Lab::start(1);
    let out = support::tether::Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["--format", "json", "run", "--hosts", "host1", "--"])
        .arg(r"printf 'a\177b\n\033[31mc\007d\000e\n\302\233f\342\200\250g\n'; printf 'h\177i\n' >&2")
        .run();
    out.status(0);
    let lines: Vec<String> = out
        .objects()
        .iter()
        .filter(|o| o["type"] == "output")
        .map(|o| o["line"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "a\u{7f}b",
        "\u{1b}[31mc\u{7}d\u{0}e",
        "\u{9b}f\u{2028}g",
        "h\u{7f}i",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want:?} in {lines:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.rhai"),
        "task(\"t\", \"x\u{7f}y\", || {});\n",
    )
    .unwrap();
    let tasks = support::tether::Tether::new()
        .current_dir(dir.path())
        .args(&["--format", "json", "tasks"])
        .run();
    tasks.status(0);
    assert!(
        tasks
            .objects()
            .iter()
            .any(|o| o["description"] == "x\u{7f}y"),
        "{}",
        tasks.stdout
    );
}
