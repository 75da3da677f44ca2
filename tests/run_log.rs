//! The run log: every run of a recipe appends its whole event stream (JSON lines, secrets
//! masked) to `log/tether.log` beside the recipe, or `set("log_file", ..)`; `""` turns it off;
//! a dry run writes none.

use crate::support;

use support::recipe::{lab, lab_recipe};

const SECRET: &str = "s3cr3t-l0g-XYZ";
const SUDO: &str = "sud0-l0g-pa55";

fn events(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn every_run_appends_its_events_to_the_log_without_secrets() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "runlog",
        &format!(
            r#"
set_secret("api_key", "{SECRET}");
task("t", || {{
    print("key is " + fetch("api_key"));
    on("web", "echo " + fetch("api_key") + "; echo {SUDO}");
}});
"#
        ),
    );
    let log = r.path("log/tether.log");
    r.tether()
        .env("TETHER_SUDO_PASSWORD", SUDO)
        .args(&["t"])
        .run()
        .status(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET) && !text.contains(SUDO), "{text}");
    let first = events(&log);
    let types: Vec<&str> = first.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in [
        "print",
        "run_started",
        "task_started",
        "command_started",
        "output",
        "command_finished",
        "run_finished",
    ] {
        assert!(types.contains(&t), "no {t} in {types:?}");
    }
    // Every host's output, masked; `command_started` is logged although text output without
    // -v does not show it.
    let outputs: Vec<(&str, &str)> = first
        .iter()
        .filter(|e| e["type"] == "output")
        .map(|e| (e["host"].as_str().unwrap(), e["line"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outputs.iter().filter(|(h, _)| *h == "web1").count(),
        2,
        "{outputs:?}"
    );
    assert!(
        outputs.iter().all(|(_, l)| !l.contains("s3cr3t")),
        "{outputs:?}"
    );
    // A second run appends; a dry run adds nothing.
    r.tether()
        .env("TETHER_SUDO_PASSWORD", SUDO)
        .args(&["t"])
        .run()
        .status(0);
    r.tether()
        .env("TETHER_SUDO_PASSWORD", SUDO)
        .args(&["-n", "t"])
        .run()
        .status(0);
    let both = events(&log);
    for t in ["run_started", "run_finished"] {
        assert_eq!(
            both.iter().filter(|e| e["type"] == t).count(),
            2,
            "{both:?}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET) && !text.contains(SUDO), "{text}");
}

#[test]
fn log_file_moves_or_turns_off_the_log() {
    let lab = lab(&["web1", "web2", "db1"]);
    let r = lab_recipe(
        &lab,
        "runlog-set",
        r#"
set("log_file", "logs/deploys.jsonl");
stage("quiet", || set("log_file", ""));
task("t", || on("db", "echo hello"));
"#,
    );
    r.tether().args(&["t"]).run().status(0);
    let moved = events(&r.path("logs/deploys.jsonl"));
    assert!(
        moved
            .iter()
            .any(|e| e["type"] == "output" && e["line"] == "hello" && e["host"] == "db1"),
        "{moved:?}"
    );
    assert!(!r.path("log").exists());
    r.tether().args(&["quiet", "t"]).run().status(0);
    assert_eq!(events(&r.path("logs/deploys.jsonl")).len(), moved.len());
    assert!(!r.path("log").exists());
    // Not a path: a recipe error, before anything runs.
    r.write(
        "deploy.rhai",
        "set(\"log_file\", 3);\ntask(\"t\", || print(\"ran\"));\n",
    );
    r.tether()
        .args(&["t"])
        .run()
        .status(4)
        .stderr_contains("log_file")
        .stdout_lacks("ran");
}

/// The log holds a run's events while it runs, and keeps them when a second Ctrl-C ends
/// tether at once (stop 42 tester t47: nothing of a task's run reached the log before it
/// ended, and after a second Ctrl-C nothing of it at all, not even `run_started`).
#[test]
fn a_run_is_in_its_log_while_it_runs_and_after_a_second_ctrl_c() {
    let lab = lab(&["web1"]);
    let r = lab_recipe(
        &lab,
        "runlog-live",
        r#"task("t", || { on("all", "echo started-it; trap '' INT TERM HUP; sleep 30"); });"#,
    );
    let log = r.path("log/tether.log");
    let said = |text: &str| std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text));
    let mut run = r.tether().args(&["--hosts", "web1", "t"]).spawn_watched();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !said("started-it") {
        assert!(
            std::time::Instant::now() < deadline,
            "the log never held the running command's line: {:?}",
            std::fs::read_to_string(&log)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run.signal_twice(libc::SIGINT);
    let out = run.wait_with_output();
    assert_eq!(out.status.code(), Some(130));
    let kinds: Vec<String> = events(&log)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(kinds.contains(&"run_started".to_string()), "{kinds:?}");
    assert!(said("started-it"));
}
