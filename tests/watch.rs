//! `tether watch` against real sshd hosts: one re-run per save (in place and by atomic rename),
//! one authenticated connection per host across all runs, recovery from a syntax error,
//! cancellation of an endless loop, waiting for (or with `--kill` stopping) in-flight
//! commands, hosts added and removed, and Ctrl-C closing every session.
//!
//! `tether watch` runs as a subprocess; its stdout and stderr are read line by line on reader
//! threads, every wait is bounded, and the subprocess is killed by pid if a test ends early.

use crate::support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use support::lab::Lab;
use support::recipe::RecipeDir;
use support::tether::Tether;

/// A line of the watcher's output.
#[derive(Debug, Clone)]
struct Line {
    stderr: bool,
    text: String,
}

/// A running `tether watch`.
struct Watcher {
    child: Child,
    rx: Receiver<Line>,
    seen: Vec<Line>,
}

impl Watcher {
    fn start(lab: &Lab, recipe: &RecipeDir, args: &[&str]) -> Self {
        Self::start_as(Tether::new().ssh_config(&lab.ssh_config()), recipe, args)
    }

    /// [`Watcher::start`] with `tether` as configured (`.folded()`, its own ssh config).
    fn start_as(tether: Tether, recipe: &RecipeDir, args: &[&str]) -> Self {
        let mut child = tether
            .current_dir(&recipe.dir)
            .arg("watch")
            .args(args)
            .spawn();
        let (tx, rx) = mpsc::channel();
        for stderr in [false, true] {
            let tx = tx.clone();
            let stream: Box<dyn std::io::Read + Send> = if stderr {
                Box::new(child.stderr.take().unwrap())
            } else {
                Box::new(child.stdout.take().unwrap())
            };
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(text) = line else { break };
                    if tx.send(Line { stderr, text }).is_err() {
                        break;
                    }
                }
            });
        }
        Watcher {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    fn dump(&self) -> String {
        self.seen
            .iter()
            .map(|l| format!("{} {}\n", if l.stderr { "E" } else { "O" }, l.text))
            .collect()
    }

    /// Reads output until `pred` holds for what was seen, or panics after `timeout`.
    fn wait_until(&mut self, what: &str, timeout: Duration, pred: impl Fn(&[Line]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "timed out after {timeout:?} waiting for {what}\n{}",
                        self.dump()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("tether exited while waiting for {what}\n{}", self.dump())
                }
            }
        }
    }

    /// Waits for a stdout line containing `needle`.
    fn wait_line(&mut self, needle: &str, timeout: Duration) {
        let n = needle.to_string();
        self.wait_until(&format!("{needle:?}"), timeout, move |seen| {
            seen.iter().any(|l| !l.stderr && l.text.contains(&n))
        });
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_err(&mut self, needle: &str, timeout: Duration) {
        let n = needle.to_string();
        self.wait_until(&format!("stderr {needle:?}"), timeout, move |seen| {
            seen.iter().any(|l| l.stderr && l.text.contains(&n))
        });
    }

    /// Reads whatever arrives during `d`.
    fn settle(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => return,
            }
        }
    }

    /// stdout lines containing `needle`.
    fn count(&self, needle: &str) -> usize {
        self.seen
            .iter()
            .filter(|l| !l.stderr && l.text.contains(needle))
            .count()
    }

    /// Runs started so far (`watch: run N (reason)` lines).
    fn runs(&self) -> usize {
        self.seen
            .iter()
            .filter(|l| {
                !l.stderr
                    && l.text.strip_prefix("watch: run ").is_some_and(|rest| {
                        let digits = rest.chars().take_while(char::is_ascii_digit).count();
                        digits > 0 && rest[digits..].starts_with(" (")
                    })
            })
            .count()
    }

    fn finished(&self) -> usize {
        self.seen
            .iter()
            .filter(|l| {
                !l.stderr
                    && l.text.starts_with("watch: run ")
                    && [
                        " ok in ",
                        " cancelled after ",
                        " stopped: ",
                        " failed after ",
                    ]
                    .iter()
                    .any(|w| l.text.contains(w))
            })
            .count()
    }

    /// Sends SIGINT and waits (bounded) for the exit; returns the exit code.
    fn interrupt(&mut self, timeout: Duration) -> i32 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.settle(Duration::from_millis(200));
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                panic!(
                    "tether watch did not exit within {timeout:?} of SIGINT\n{}",
                    self.dump()
                );
            }
            self.settle(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

const SECS: Duration = Duration::from_secs(1);

fn lab(names: &[&str]) -> Lab {
    Lab::builder().names(names).start()
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|st| st != "Z")
        })
        .unwrap_or(false)
}

fn read_pid(path: &Path, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no pid in {} within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn servers(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("server(\"{n}\", #{{ roles: [\"web\"] }});\n"))
        .collect()
}

#[test]
fn each_save_reruns_once_over_one_session_per_host() {
    let lab = lab(&["web1", "web2"]);
    let recipe = |v: &str| {
        format!(
            "import \"lib/helpers\" as h;\n{}task(\"hi\", || {{ on(\"web\", \"echo {v} \" + h::tag()); }});\n",
            servers(&["web1", "web2"])
        )
    };
    let r = RecipeDir::new("saves", &recipe("v1"));
    r.save_in_place("lib/helpers.rhai", "fn tag() { \"m1\" }\n");
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("watch: run 1 ok", 20 * SECS);
    w.wait_line(
        "watch: waiting for changes to deploy.rhai, lib/helpers.rhai",
        5 * SECS,
    );
    assert_eq!(w.count("web1 | v1 m1"), 1, "{}", w.dump());

    // In place, by rename, and a module: one run each.
    r.save_in_place("deploy.rhai", &recipe("v2"));
    w.wait_line("watch: run 2 ok", 10 * SECS);
    r.save_by_rename("deploy.rhai", &recipe("v3"));
    w.wait_line("watch: run 3 ok", 10 * SECS);
    r.save_by_rename("lib/helpers.rhai", "fn tag() { \"m2\" }\n");
    w.wait_line("watch: run 4 ok", 10 * SECS);
    // Saving the same content again (or touching the file) runs nothing.
    r.save_in_place("deploy.rhai", &recipe("v3"));
    w.settle(SECS);
    assert_eq!(w.runs(), 4, "one run per changing save\n{}", w.dump());
    assert_eq!(w.finished(), 4, "{}", w.dump());
    for (text, n) in [("v2 m1", 1), ("v3 m1", 1), ("v3 m2", 1)] {
        for host in ["web1", "web2"] {
            assert_eq!(
                w.count(&format!("{host} | {text}")),
                n,
                "{host} {text}\n{}",
                w.dump()
            );
        }
    }
    assert!(
        w.count("session warm for") >= 8,
        "hosts and their warm sessions are shown\n{}",
        w.dump()
    );
    for host in ["web1", "web2"] {
        assert_eq!(
            lab.accepted_logins(host),
            1,
            "{host}: one authenticated connection across all runs\n{}",
            w.dump()
        );
    }
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
    // Ctrl-C while the watch waits for a save stops nothing: it says so (stop 58 tester t93:
    // "no new commands; stopping running ones").
    let said = w.dump();
    assert!(
        said.contains("E interrupted: nothing is running; ending (Ctrl-C again to exit now)"),
        "{said}"
    );
    assert!(!said.contains("stopping running ones"), "{said}");
    // Every run of the session is in the run log, as for `tether TASK`.
    let log = std::fs::read_to_string(r.path("log/tether.log")).expect("the run log");
    for text in ["v1 m1", "v2 m1", "v3 m1", "v3 m2"] {
        assert!(log.contains(text), "{text} not in the run log:\n{log}");
    }
    assert!(log.lines().all(|l| l.starts_with('{')), "{log}");
}

#[test]
fn json_output_is_only_json_objects_with_a_type() {
    let lab = lab(&["web1"]);
    let recipe = |v: &str| {
        format!(
            "{}task(\"hi\", || {{ print(\"p {v}\"); on(\"web\", \"echo {v}\"); }});\n",
            servers(&["web1"])
        )
    };
    let r = RecipeDir::new("json", &recipe("v1"));
    let mut w = Watcher::start(&lab, &r, &["--format", "json", "hi"]);
    w.wait_line("\"type\":\"watch_waiting\"", 20 * SECS);
    r.save_by_rename("deploy.rhai", &recipe("v2"));
    w.wait_until("a second watch_waiting", 10 * SECS, |seen| {
        seen.iter()
            .filter(|l| l.text.contains("\"type\":\"watch_waiting\""))
            .count()
            == 2
    });
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
    let mut types = Vec::new();
    for l in w.seen.iter().filter(|l| !l.stderr) {
        let v: serde_json::Value = serde_json::from_str(&l.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", l.text, w.dump()));
        types.push(
            v["type"]
                .as_str()
                .unwrap_or_else(|| panic!("no type: {}", l.text))
                .to_string(),
        );
    }
    for kind in [
        "watch_run_started",
        "print",
        "output",
        "watch_run_finished",
        "watch_waiting",
        "watch_exit",
    ] {
        assert!(
            types.iter().any(|t| t == kind),
            "{kind} missing\n{}",
            w.dump()
        );
    }
}

#[test]
fn a_syntax_error_is_reported_and_the_next_good_save_recovers() {
    let lab = lab(&["web1"]);
    let good = |v: &str| {
        format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo {v}\"); }});\n",
            servers(&["web1"])
        )
    };
    let r = RecipeDir::new("syntax", &good("v1"));
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("watch: run 1 ok", 20 * SECS);
    r.save_by_rename(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{\n    let = 3;\n}});\n",
            servers(&["web1"])
        ),
    );
    w.wait_line("watch: run 2 stopped: recipe error", 10 * SECS);
    w.wait_err("deploy.rhai:3:9: syntax error", 5 * SECS);
    w.wait_line("watch: waiting for changes", 5 * SECS);
    // An error in an `on` closure is a recipe error too (stop 39 tester t28: `failed`).
    r.save_by_rename(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{\n    on(\"web\", |h| {{ let x = 1 / 0; }});\n}});\n",
            servers(&["web1"])
        ),
    );
    w.wait_line("watch: run 3 stopped: recipe error", 10 * SECS);
    w.wait_err("Division by zero", 5 * SECS);
    r.save_by_rename("deploy.rhai", &good("v3"));
    w.wait_line("watch: run 4 ok", 10 * SECS);
    assert_eq!(w.count("web1 | v3"), 1, "{}", w.dump());
    assert_eq!(lab.accepted_logins("web1"), 1, "{}", w.dump());
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

/// A run's failure on hosts that failed alike is said once with their set, as `tether TASK`
/// says it, and per host with `--no-fold` (stop 42 tester t47: watch said each host's).
#[test]
fn a_failure_of_hosts_alike_is_folded() {
    let names = ["web1", "web2", "web3"];
    let lab = lab(&names);
    let r = RecipeDir::new(
        "watch-fold",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"exit 3\"); }});\n",
            servers(&names)
        ),
    );
    for fold in [true, false] {
        let tether = if fold {
            Tether::new().folded()
        } else {
            Tether::new()
        };
        let mut w = Watcher::start_as(tether.ssh_config(&lab.ssh_config()), &r, &["hi"]);
        w.wait_line("watch: run 1 failed", 20 * SECS);
        w.wait_err("error: 3 of 3 hosts failed", 5 * SECS);
        if fold {
            w.wait_err(
                "web[1-3]: `exit 3` failed with exit status 3 after ",
                5 * SECS,
            );
        } else {
            for h in names {
                w.wait_err(
                    &format!("{h}: `exit 3` failed with exit status 3 after "),
                    5 * SECS,
                );
            }
        }
        w.wait_line("session warm for", 5 * SECS);
        assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
        let said = w.dump().matches("failed with exit status 3").count();
        assert_eq!(said, if fold { 1 } else { 3 }, "{}", w.dump());
        // The rows of hosts alike, while waiting and at the end, share one line headed by
        // their set (stop 61 tester t103: 30 alike rows after every save).
        let head = if fold { "  web[1-3]  " } else { "  web2  " };
        let rows = |words: &str| {
            w.seen
                .iter()
                .filter(|l| l.text.starts_with(head) && l.text.contains(words))
                .count()
        };
        assert_eq!(rows("session warm for "), 1, "{}", w.dump());
        assert_eq!(rows(" heartbeat"), 1, "{}", w.dump());
        let each = w
            .seen
            .iter()
            .filter(|l| l.text.starts_with("  web"))
            .count();
        assert_eq!(each, if fold { 2 } else { 6 }, "{}", w.dump());
    }
}

/// A run that ends in a configuration error (a ProxyJump loop, found as the host connects) is
/// one: `watch_run_finished` says `error`, as for a config that does not parse, with exit code
/// 2 (stop 43 tester t52: it said `failed`).
#[test]
fn a_config_error_found_while_connecting_is_an_error() {
    let lab = lab(&["web1"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host web1\n    ProxyJump loopy\nHost loopy\n    ProxyJump web1\nInclude {}\n",
            lab.ssh_config().display()
        ),
    )
    .unwrap();
    let r = RecipeDir::new(
        "watch-config",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"true\"); }});\n",
            servers(&["web1"])
        ),
    );
    let mut w = Watcher::start_as(
        Tether::new().ssh_config(&config),
        &r,
        &["--format", "json", "hi"],
    );
    w.wait_line("\"type\":\"watch_run_finished\"", 20 * SECS);
    let finished = w
        .seen
        .iter()
        .find(|l| l.text.contains("\"type\":\"watch_run_finished\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.text).unwrap())
        .unwrap();
    assert_eq!(finished["result"], "error", "{}", w.dump());
    assert_eq!(finished["exit_code"], 2, "{}", w.dump());
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

#[test]
fn an_endless_loop_is_cancelled_by_the_next_save() {
    let lab = lab(&["web1"]);
    let r = RecipeDir::new(
        "loop",
        &format!(
            "{}task(\"hi\", || {{\n    on(\"web\", \"echo spinning\");\n    let i = 0;\n    loop {{ i += 1; }}\n}});\n",
            servers(&["web1"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("web1 | spinning", 20 * SECS);
    let saved = Instant::now();
    r.save_by_rename(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo fixed\"); }});\n",
            servers(&["web1"])
        ),
    );
    w.wait_line("watch: run 1 cancelled", 10 * SECS);
    // Cancelled by the save, not by the operations limit.
    assert!(
        saved.elapsed() < Duration::from_millis(900),
        "cancel took {:?}\n{}",
        saved.elapsed(),
        w.dump()
    );
    assert!(
        !w.seen
            .iter()
            .any(|l| l.text.contains("Too many operations")),
        "{}",
        w.dump()
    );
    w.wait_line("watch: run 2 ok", 10 * SECS);
    assert_eq!(w.count("web1 | fixed"), 1, "{}", w.dump());
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

/// A run whose command was re-attached to after its connection was lost says so in the
/// waiting lines, as a run's summary does (stop 39 tester t27: `session warm for 7.3 s, 1
/// reconnect`, no word of the re-attach).
#[test]
fn the_waiting_lines_count_re_attaches() {
    let lab = lab(&["web1"]);
    let r = RecipeDir::new(
        "reattached",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo started; sleep 2; echo done\"); }});\n",
            servers(&["web1"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("web1 | started", 20 * SECS);
    lab.kill_connections("web1");
    w.wait_line("re-attached after", 10 * SECS);
    w.wait_line("watch: run 1 ok", 10 * SECS);
    w.wait_line("session warm for", 5 * SECS);
    assert_eq!(w.count("web1 | done"), 1, "{}", w.dump());
    assert!(w.count(", 1 reconnect, 1 re-attach") == 1, "{}", w.dump());
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

/// The last words of a watch count each host's heartbeats, reconnects and re-attaches over
/// the whole watch, those while it waited for a change included (stop 58 tester t92: a
/// reconnect after the last run was counted nowhere; the end said only the sessions closed).
#[test]
fn the_exit_counts_what_happened_while_waiting() {
    let lab = lab(&["web1"]);
    let r = RecipeDir::new(
        "counted",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo hi\"); }});\n",
            servers(&["web1"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("session warm for", 20 * SECS);
    lab.kill_connections("web1");
    w.wait_line("reconnected in", 10 * SECS);
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
    let exit = w
        .seen
        .iter()
        .position(|l| {
            l.text
                .contains("watch: stopped after 1 run; 1 session closed")
        })
        .unwrap_or_else(|| panic!("no exit line\n{}", w.dump()));
    let row = &w.seen[exit - 1].text;
    assert!(
        row.trim_start().starts_with("web1") && row.ends_with(", 1 reconnect"),
        "{row}\n{}",
        w.dump()
    );
}

#[test]
fn a_save_during_a_long_command_waits_for_it() {
    let lab = lab(&["web1", "web2"]);
    let r = RecipeDir::new(
        "wait",
        &format!(
            "{}task(\"hi\", || {{\n    on(\"web\", \"sleep 2; echo done > /srv/done\");\n    on(\"web\", \"echo second > /srv/second\");\n}});\n",
            servers(&["web1", "web2"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("$ sleep 2; echo done", 20 * SECS);
    let saved = Instant::now();
    r.save_in_place(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo v2 > /srv/v2\"); }});\n",
            servers(&["web1", "web2"])
        ),
    );
    w.wait_line("cancelling it (waiting for running commands)", 5 * SECS);
    w.wait_line("watch: run 1 cancelled", 10 * SECS);
    assert!(
        saved.elapsed() > Duration::from_millis(1200),
        "the in-flight command was waited for\n{}",
        w.dump()
    );
    for host in ["web1", "web2"] {
        let root = &lab.host(host).root_dir;
        assert!(
            root.join("done").exists(),
            "{host}: the in-flight command finished"
        );
    }
    w.wait_line("watch: run 2 ok", 10 * SECS);
    for host in ["web1", "web2"] {
        let root = &lab.host(host).root_dir;
        assert!(
            !root.join("second").exists(),
            "{host}: nothing new was dispatched by the cancelled run"
        );
        assert!(root.join("v2").exists(), "{host}: the new version ran");
        assert_eq!(lab.accepted_logins(host), 1);
    }
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

#[test]
fn kill_stops_a_pty_command() {
    let lab = lab(&["web1", "web2"]);
    let r = RecipeDir::new(
        "kill",
        &format!(
            "{}task(\"hi\", || {{\n    on(\"web\", #{{ pty: true }}, \"sh -c 'echo $$ > /srv/pid; exec sleep 60'\");\n    on(\"web\", \"echo second > /srv/second\");\n}});\n",
            servers(&["web1", "web2"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["--kill", "hi"]);
    let pids: Vec<u32> = ["web1", "web2"]
        .iter()
        .map(|h| read_pid(&lab.host(h).root_dir.join("pid"), 20 * SECS))
        .collect();
    assert!(pids.iter().all(|&p| alive(p)));
    let saved = Instant::now();
    r.save_by_rename(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo v2\"); }});\n",
            servers(&["web1", "web2"])
        ),
    );
    w.wait_line("cancelling it (stopping running commands)", 5 * SECS);
    w.wait_line("watch: run 1 cancelled", 5 * SECS);
    assert!(saved.elapsed() < 3 * SECS, "{}", w.dump());
    for pid in pids {
        eventually("the remote sleep to be gone", 3 * SECS, || !alive(pid));
    }
    w.wait_line("watch: run 2 ok", 10 * SECS);
    assert_eq!(w.count("web1 | v2"), 1, "{}", w.dump());
    for host in ["web1", "web2"] {
        assert!(!lab.host(host).root_dir.join("second").exists());
        assert_eq!(lab.accepted_logins(host), 1, "{}", w.dump());
    }
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

/// `--kill` stops a command without a PTY by its process group on the host, and says why:
/// a watched file changed (a typed reason, as for Ctrl-C).
#[test]
fn kill_stops_a_supervised_command_and_says_why() {
    let lab = lab(&["web1"]);
    let r = RecipeDir::new(
        "kill-supervised",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"sh -c 'echo $$ > /srv/pid; exec sleep 59'\"); }});\n",
            servers(&["web1"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["--kill", "hi"]);
    let pid = read_pid(&lab.host("web1").root_dir.join("pid"), 20 * SECS);
    assert!(alive(pid));
    r.save_by_rename(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo v2\"); }});\n",
            servers(&["web1"])
        ),
    );
    w.wait_line(
        "on the host (watch --kill: a watched file changed): its process group was sent SIGTERM",
        10 * SECS,
    );
    eventually("the remote sleep to be gone", 3 * SECS, || !alive(pid));
    w.wait_line("watch: run 2 ok", 10 * SECS);
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

#[test]
fn hosts_added_connect_and_removed_hosts_are_disconnected() {
    let lab = lab(&["web1", "web2", "web3"]);
    let recipe = |hosts: &[&str]| {
        format!(
            "{}task(\"hi\", || {{ on(\"web\", \"hostname >/dev/null; echo up\"); }});\n",
            servers(hosts)
        )
    };
    let r = RecipeDir::new("hosts", &recipe(&["web1", "web2"]));
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("watch: run 1 ok", 20 * SECS);
    assert_eq!(lab.connection_pids("web2").len(), 1);
    r.save_by_rename("deploy.rhai", &recipe(&["web1", "web3"]));
    w.wait_line("watch: run 2 ok", 10 * SECS);
    eventually("web2's session to close", 5 * SECS, || {
        lab.connection_pids("web2").is_empty()
    });
    assert_eq!(w.count("web3 | up"), 1, "{}", w.dump());
    assert_eq!(lab.accepted_logins("web1"), 1);
    assert_eq!(lab.accepted_logins("web2"), 1);
    assert_eq!(lab.accepted_logins("web3"), 1);
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
    // The last words count the dropped host too (stop 58 tester t93: it was left out).
    let exit = w
        .seen
        .iter()
        .position(|l| l.text.starts_with("watch: stopped after 2 runs"))
        .unwrap_or_else(|| panic!("no exit line\n{}", w.dump()));
    let rows: Vec<&str> = w.seen[exit - 3..exit]
        .iter()
        .map(|l| l.text.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(rows, ["web1", "web2", "web3"], "{}", w.dump());
}

/// A host whose first connection was refused is tried again by the next run, with known_hosts
/// as it is then (stop 49 tester t70: refused in the same words on every later run, never
/// tried again, after known_hosts was mended as the refusal asked).
#[test]
fn a_host_refused_once_is_tried_again_by_the_next_run() {
    let lab = lab(&["web1", "web2"]);
    let kh = lab.dir().join("kh_without_web2");
    let port = lab.host("web2").port;
    let full = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let without: String = full
        .lines()
        .filter(|l| !l.starts_with(&format!("[127.0.0.1]:{port} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, full);
    std::fs::write(&kh, &without).unwrap();
    let cfg = lab.dir().join("ssh_config_kh");
    let text = std::fs::read_to_string(lab.ssh_config()).unwrap().replace(
        &lab.known_hosts().display().to_string(),
        &kh.display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    let recipe = format!(
        "{}task(\"hi\", || {{ on(\"web\", \"echo up\"); }});\n",
        servers(&["web1", "web2"])
    );
    let r = RecipeDir::new("refused-once", &recipe);
    let mut w = Watcher::start_as(Tether::new().ssh_config(&cfg), &r, &["hi"]);
    w.wait_line("watch: run 1 failed", 20 * SECS);
    assert_eq!(lab.accepted_logins("web2"), 0, "{}", w.dump());
    std::fs::write(&kh, &full).unwrap();
    r.save_by_rename("deploy.rhai", &format!("{recipe}// saved again\n"));
    w.wait_line("watch: run 2 ok", 20 * SECS);
    assert_eq!(w.count("web2 | up"), 1, "{}", w.dump());
    assert_eq!(lab.accepted_logins("web2"), 1, "{}", w.dump());
    // web1's session, kept from run 1, was not connected again.
    assert_eq!(lab.accepted_logins("web1"), 1, "{}", w.dump());
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

#[test]
fn ctrl_c_closes_every_session_and_leaves_no_process_behind() {
    let names = ["web1", "web2"];
    let lab = lab(&names);
    let r = RecipeDir::new(
        "ctrlc",
        &format!(
            "{}task(\"hi\", || {{\n    on(\"web\", #{{ pty: true }}, \"sh -c 'echo $$ > /srv/pid; exec sleep 60'\");\n}});\n",
            servers(&names)
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    let pids: Vec<u32> = names
        .iter()
        .map(|h| read_pid(&lab.host(h).root_dir.join("pid"), 20 * SECS))
        .collect();
    for h in names {
        assert_eq!(lab.connection_pids(h).len(), 1);
    }
    let code = w.interrupt(10 * SECS);
    assert_eq!(code, 0, "{}", w.dump());
    w.wait_line("2 sessions closed", SECS);
    for pid in pids {
        eventually("the remote command to be gone", 3 * SECS, || !alive(pid));
    }
    for h in names {
        eventually("no session left", 5 * SECS, || {
            lab.connection_pids(h).is_empty()
        });
        // Only the listener is left of the host.
        eventually("no process left", 5 * SECS, || {
            lab.host_pids(h) == [lab.host(h).pid]
        });
        let log = std::fs::read_to_string(&lab.host(h).log).unwrap();
        assert!(
            log.contains("Received disconnect") && log.contains("tether done"),
            "{h}: the session was closed by tether\n{log}"
        );
        assert_eq!(lab.accepted_logins(h), 1);
    }
}

/// The exec layer's stop flag outside watch mode: Ctrl-C stops a PTY command of `tether run`
/// (the remote process is hung up), and the result says "stopped", never success.
#[test]
fn ctrl_c_stops_a_pty_command_of_tether_run() {
    let lab = lab(&["web1"]);
    let child = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--pty",
            "run",
            "--hosts",
            "web1",
            "--",
            "sh -c 'echo $$ > /srv/pid; exec sleep 60'",
        ])
        .spawn();
    let pid = read_pid(&lab.host("web1").root_dir.join("pid"), 20 * SECS);
    let started = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(started.elapsed() < 5 * SECS, "{:?}", started.elapsed());
    assert!(stdout.contains("web1  stopped"), "{stdout}");
    // tether stopped it, and says why: not a hung-up terminal.
    assert!(
        stdout.contains("was stopped by tether after ")
            && stdout.contains("(tether was interrupted)"),
        "{stdout}"
    );
    assert!(!stdout.contains("SIGHUP"), "{stdout}");
    eventually("the remote sleep to be gone", 3 * SECS, || !alive(pid));
}

/// The count of sessions closed when watch stops is of sessions that were open: a host that
/// never connected (its port closed) or whose configuration is wrong is not one.
#[test]
fn only_sessions_that_were_open_are_counted_as_closed() {
    let lab = lab(&["web1"]);
    let port = support::net::closed_port();
    let r = RecipeDir::new(
        "closed-count",
        &format!(
            "{}server(\"root@127.0.0.1:{port}\", #{{ roles: [\"gone\"] }});\n\
             task(\"hi\", || {{ on(\"web\", \"echo up\"); }});\n",
            servers(&["web1"])
        ),
    );
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("watch: run 1 ok", 20 * SECS);
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
    w.wait_line("watch: stopped after 1 run; 1 session closed", SECS);
}

/// A file written again and again is run once it has been quiet for `--debounce`, as README
/// says (fresh-eyes finding, stop 28: under `--debounce 1s`, a recipe saved every 0.2 s
/// started a run every 0.2 s while the writes went on: the debouncer let each event go once
/// it was a second old, however many came after it). Twenty saves 0.1 s apart are one run,
/// of the last save.
#[test]
fn a_burst_of_saves_is_one_run_once_the_files_are_quiet() {
    let lab = lab(&["web1"]);
    let recipe = |v: usize| {
        format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo v{v}\"); }});\n",
            servers(&["web1"])
        )
    };
    let r = RecipeDir::new("burst", &recipe(0));
    let mut w = Watcher::start(&lab, &r, &["--debounce", "1s", "hi"]);
    w.wait_line("watch: run 1 ok", 20 * SECS);
    for v in 1..=20 {
        r.save_in_place("deploy.rhai", &recipe(v));
        std::thread::sleep(Duration::from_millis(100));
    }
    w.wait_line("watch: run 2 ok", 10 * SECS);
    w.settle(2 * SECS);
    assert_eq!(w.runs(), 2, "{}", w.dump());
    assert_eq!(w.count("web1 | v20"), 1, "{}", w.dump());
    assert_eq!(w.interrupt(10 * SECS), 0, "{}", w.dump());
}

/// A module the first run imports is watched from that run's load on: an edit while it runs
/// cancels it, as an edit of the recipe does (stop 36 tester t22: run 1 ran on with the module
/// changed under it, and only run 2 saw the edit).
#[test]
fn a_module_edited_during_the_first_run_cancels_it() {
    let lab = lab(&["web1"]);
    let r = RecipeDir::new(
        "module-first",
        &format!(
            "import \"lib/h\" as h;\n{}task(\"hi\", || {{\n    on(\"web\", \"echo \" + h::msg());\n    on(\"web\", \"sleep 3\");\n    on(\"web\", \"echo after > /srv/after\");\n}});\n",
            servers(&["web1"])
        ),
    );
    r.write("lib/h.rhai", "fn msg() { \"m1\" }\n");
    let mut w = Watcher::start(&lab, &r, &["hi"]);
    w.wait_line("web1 | m1", 20 * SECS);
    r.save_by_rename("lib/h.rhai", "fn msg() { \"m2\" }\n");
    w.wait_line("cancelling it", 5 * SECS);
    w.wait_line("watch: run 1 cancelled", 10 * SECS);
    w.wait_line("web1 | m2", 20 * SECS);
    assert!(
        !lab.host("web1").root_dir.join("after").exists(),
        "run 1 went on past the edit\n{}",
        w.dump()
    );
    assert_eq!(w.interrupt(30 * SECS), 0, "{}", w.dump());
}

/// A cancelled run runs its failure hooks, as `tether TASK` does after Ctrl-C: after a save
/// (with `--kill`) before the next version runs, and after Ctrl-C before the sessions close
/// (stop 45 tester t57: `tether watch deploy` cancelled left the deploy's lock and unfinished
/// release on every host, exit 0, and every later save's run was refused by that lock).
#[test]
fn a_cancelled_run_runs_its_failure_hooks() {
    let names = ["web1", "web2"];
    let lab = lab(&names);
    let long = format!(
        "{}on_failure(|err| {{ on(\"web\", \"echo cleaned >> /srv/cleaned\"); }});\n\
         task(\"hi\", || {{ on(\"web\", \"echo started >> /srv/started; sleep 30\"); }});\n",
        servers(&names)
    );
    let r = RecipeDir::new("hooks", &long);
    let lines = |h: &str, file: &str| {
        std::fs::read_to_string(lab.host(h).root_dir.join(file))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let mut w = Watcher::start(&lab, &r, &["--kill", "hi"]);
    eventually("run 1's command on every host", 20 * SECS, || {
        names.iter().all(|h| lines(h, "started") == 1)
    });
    r.save_in_place(
        "deploy.rhai",
        &format!(
            "{}task(\"hi\", || {{ on(\"web\", \"echo v2 > /srv/v2\"); }});\n",
            servers(&names)
        ),
    );
    w.wait_line("watch: run 2 ok", 20 * SECS);
    for h in names {
        assert_eq!(lines(h, "cleaned"), 1, "{h}: run 1's hook\n{}", w.dump());
        assert!(lab.host(h).root_dir.join("v2").exists(), "{h}: run 2");
    }
    r.save_in_place("deploy.rhai", &long);
    eventually("run 3's command on every host", 20 * SECS, || {
        names.iter().all(|h| lines(h, "started") == 2)
    });
    assert_eq!(w.interrupt(20 * SECS), 0, "{}", w.dump());
    for h in names {
        assert_eq!(lines(h, "cleaned"), 2, "{h}: run 3's hook\n{}", w.dump());
        assert_eq!(lab.accepted_logins(h), 1);
    }
}
