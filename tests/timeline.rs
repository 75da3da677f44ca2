//! The timeline: `tether report EVENTS -o FILE` and `--timeline FILE`. The page is checked
//! by its structure (rows, bars, ticks, marks, escaping) for known streams, drawn from real
//! runs against lab hosts (the seed scenario, a failure, Ctrl-C), and looked at in headless
//! Chromium; broken streams are refused naming the line.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support;

use support::browser::{skip, Screenshot};
use support::lab::Lab;
use support::recipe::RecipeDir;
use support::tether::{Output, Tether};

/// A page, read as text: the HTML around two SVG drawings.
struct Page {
    html: String,
}

/// One host's row of the rows drawing.
struct Row {
    svg: String,
}

impl Page {
    fn read(path: &Path) -> Page {
        let html = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("no timeline at {}: {e}", path.display()));
        Page { html }
    }

    /// The drawing between `<svg class="{class}"` and its `</svg>`.
    fn svg(&self, class: &str) -> &str {
        let start = self
            .html
            .find(&format!("<svg class=\"{class}\""))
            .unwrap_or_else(|| panic!("no {class} drawing"));
        let end = start + self.html[start..].find("</svg>").unwrap() + "</svg>".len();
        &self.html[start..end]
    }

    /// The rows, in order: (name as the page escapes it, its row).
    fn rows(&self) -> Vec<(String, Row)> {
        let rows = self.svg("rows");
        let marker = "<g class=\"host\" data-host=\"";
        let mut out = Vec::new();
        let mut rest = rows;
        while let Some(i) = rest.find(marker) {
            let after = &rest[i + marker.len()..];
            let name_end = after.find('"').unwrap();
            let name = after[..name_end].to_string();
            let next = after.find(marker).unwrap_or(after.len());
            out.push((
                name,
                Row {
                    svg: after[..next].to_string(),
                },
            ));
            rest = &after[next..];
        }
        out
    }

    fn row(&self, name: &str) -> Row {
        self.rows()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("no row for {name}"))
    }

    /// Role headings, in order.
    fn groups(&self) -> Vec<String> {
        let rows = self.svg("rows");
        rows.split("<g class=\"group\">")
            .skip(1)
            .map(|g| {
                let t = &g[g.find("<text").unwrap()..];
                let t = &t[t.find('>').unwrap() + 1..];
                t[..t.find("</text>").unwrap()].to_string()
            })
            .collect()
    }
}

impl Row {
    fn count(&self, needle: &str) -> usize {
        self.svg.matches(needle).count()
    }

    /// Command bars with this outcome class.
    fn bars(&self, outcome: &str) -> usize {
        self.count(&format!("<g class=\"cmd {outcome}\">"))
    }

    /// Heartbeat ticks: the segments of its heartbeat path.
    fn ticks(&self) -> usize {
        match self.svg.find("<path class=\"hb\" d=\"") {
            Some(i) => {
                let d = &self.svg[i + "<path class=\"hb\" d=\"".len()..];
                d[..d.find('"').unwrap()].matches('M').count()
            }
            None => 0,
        }
    }

    fn marks(&self, kind: &str) -> usize {
        self.count(&format!("<g class=\"mark {kind}\">"))
    }

    /// The count columns: commands, heartbeats, reconnects.
    fn counts(&self) -> Vec<usize> {
        self.svg
            .split("<text class=\"count")
            .skip(1)
            .map(|t| {
                let t = &t[t.find('>').unwrap() + 1..];
                t[..t.find('<').unwrap()].parse().unwrap()
            })
            .collect()
    }

    /// The tooltips of the command bars.
    fn bar_titles(&self) -> Vec<String> {
        self.svg
            .split("<g class=\"cmd ")
            .skip(1)
            .map(|g| {
                let t = &g[g.find("<title>").unwrap() + 7..];
                t[..t.find("</title>").unwrap()].to_string()
            })
            .collect()
    }

    /// The labels written on its bars.
    fn bar_labels(&self) -> Vec<String> {
        self.svg
            .split("<text class=\"bl\"")
            .skip(1)
            .map(|t| {
                let t = &t[t.find('>').unwrap() + 1..];
                t[..t.find("</text>").unwrap()].to_string()
            })
            .collect()
    }
}

/// A scratch directory for one test, under Cargo's target/tmp (kept to look at).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("timeline-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lines(objects: &[serde_json::Value]) -> String {
    objects.iter().map(|o| format!("{o}\n")).collect()
}

const HOSTILE: &str = "echo '</svg><script>alert(1)</script>' && exit 3";

/// A known run: a failed deploy on four hosts with every kind of thing the page draws.
fn known_stream() -> String {
    let finished = |t: f64, host: &str, cmd: &str, code: Option<i32>, outcome: &str, ms: f64| {
        json!({"t": t, "host": host, "type": "command_finished", "command": cmd,
               "exit_code": code, "signal": null,
               "error": if outcome == "stopped" { json!("`sleep 30` on web2 was stopped after 2.0 s") } else { json!(null) },
               "duration_ms": ms, "outcome": outcome})
    };
    let started = |t: f64, host: &str, cmd: &str| json!({"t": t, "host": host, "type": "command_started", "command": cmd});
    lines(&[
        json!({"t": 0.001, "type": "print", "text": "loading"}),
        json!({"t": 0.01, "type": "run_started", "recipe": "shop.rhai", "stage": "production",
               "tasks": ["deploy"], "command": null, "start_unix_ms": 1_735_787_045_000u64}),
        json!({"t": 0.02, "type": "task_started", "task": "deploy"}),
        json!({"t": 0.02, "type": "task_started", "task": "deploy:check"}),
        json!({"t": 0.03, "type": "hosts", "hosts": [
            {"name": "web1", "roles": ["web", "app"]},
            {"name": "web2", "roles": ["web", "app"]},
            {"name": "resque1", "roles": ["app", "resque"]},
            {"name": "evil</svg><b>", "roles": ["<script>"]}]}),
        json!({"t": 0.1, "host": "web1", "type": "connected", "setup_ms": 20.0}),
        json!({"t": 0.1, "host": "web2", "type": "connected", "setup_ms": 20.0}),
        json!({"t": 0.1, "host": "resque1", "type": "connected", "setup_ms": 20.0}),
        json!({"t": 0.2, "host": "evil</svg><b>", "type": "connect_failed", "error": "connection refused <b>"}),
        started(0.2, "web1", "bin/check"),
        started(0.2, "web2", HOSTILE),
        started(0.2, "resque1", "bin/check"),
        json!({"t": 0.25, "host": "web1", "type": "output", "stream": "stdout", "line": "fine"}),
        finished(0.4, "web1", "bin/check", Some(0), "ok", 200.0),
        finished(0.5, "resque1", "bin/check", Some(0), "ok", 300.0),
        finished(1.2, "web2", HOSTILE, Some(3), "nonzero", 1000.0),
        json!({"t": 1.2, "type": "task_finished", "task": "deploy:check", "ok": false}),
        json!({"t": 1.3, "type": "task_started", "task": "assets:precompile"}),
        started(1.3, "web2", "sleep 30"),
        json!({"t": 2.0, "host": "resque1", "type": "heartbeat", "rtt_ms": 2.5, "probe": true}),
        finished(3.3, "web2", "sleep 30", None, "stopped", 2000.0),
        json!({"t": 4.0, "host": "resque1", "type": "heartbeat", "rtt_ms": 3.0, "probe": true}),
        json!({"t": 5.0, "host": "resque1", "type": "reconnect", "reason": "connection lost while idle (eof)",
               "while_idle": true, "took_ms": 400.0}),
        json!({"t": 6.0, "host": "resque1", "type": "heartbeat", "rtt_ms": 2.0, "probe": false}),
        started(6.5, "web1", "sleep 99"),
        json!({"t": 7.0, "host": "web1", "type": "reattach", "command": "sleep 99", "offset": 1024}),
        json!({"t": 9.0, "type": "task_finished", "task": "assets:precompile", "ok": false}),
        json!({"t": 9.0, "type": "task_finished", "task": "deploy", "ok": false}),
        json!({"t": 10.0, "type": "run_finished", "title": "deploy failed", "ok": false, "exit_code": 1,
               "error": format!("web2: `{HOSTILE}` failed with exit status 3"), "duration_ms": 10000.0}),
    ])
}

fn report(events: &Path, out: &Path, extra: &[&str]) -> Output {
    Tether::new()
        .arg("report")
        .arg(events.to_str().unwrap())
        .args(&["-o", out.to_str().unwrap()])
        .args(extra)
        .run()
}

#[test]
fn a_known_stream_draws_rows_bars_ticks_and_marks() {
    let dir = scratch("known");
    let events = dir.join("events.jsonl");
    std::fs::write(&events, known_stream()).unwrap();
    let out = report(&events, &dir.join("t.html"), &[]);
    out.status(0)
        .stdout_contains("(run 1 of 1, 4 hosts, 5 commands)");
    let page = Page::read(&dir.join("t.html"));
    let evil = "evil&lt;/svg&gt;&lt;b&gt;";
    let names: Vec<String> = page.rows().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["web1", "web2", "resque1", evil]);
    assert_eq!(
        page.groups(),
        [
            "web, app · 2 hosts",
            "app, resque · 1 host",
            "&lt;script&gt; · 1 host"
        ]
    );

    let web1 = page.row("web1");
    assert_eq!((web1.bars("ok"), web1.bars("unfinished")), (1, 1));
    assert_eq!(web1.marks("reattach"), 1);
    assert!(
        web1.svg.contains("command: sleep 99\noffset: 1024"),
        "{}",
        web1.svg
    );
    // A re-attach replaced the session: a reconnect, as the run's summary counts it.
    assert_eq!(web1.counts(), [2, 0, 1]);
    assert_eq!(web1.ticks(), 0);

    let web2 = page.row("web2");
    assert_eq!((web2.bars("failed"), web2.bars("stopped")), (1, 1));
    let titles = web2.bar_titles();
    assert_eq!(
        titles[0],
        "web2 · deploy:check&#10;$ echo &#39;&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39; \
         &amp;&amp; exit 3&#10;1.0 s · exit 3&#10;at 190.0 ms"
    );
    assert!(
        titles[1].contains("was stopped after 2.0 s"),
        "{}",
        titles[1]
    );
    assert_eq!(web2.bar_labels()[0], "deploy:check");

    let resque1 = page.row("resque1");
    assert_eq!(resque1.bars("ok"), 1);
    assert_eq!(resque1.ticks(), 3);
    assert_eq!(resque1.marks("reconnect"), 1);
    assert_eq!(resque1.count("<line class=\"outage\""), 1);
    assert_eq!(resque1.counts(), [1, 3, 1]);

    let evil_row = page.row(evil);
    assert_eq!(evil_row.marks("lost"), 1);
    assert_eq!(evil_row.count("<line class=\"gone\""), 1);
    assert_eq!(evil_row.counts(), [0, 0, 0]);

    // Tasks: lanes in the axis, the leaves as bands across the rows.
    let axis = page.svg("axis");
    assert_eq!(axis.matches("<g class=\"task").count(), 3);
    assert!(axis.contains("<g class=\"task failed\"><title>deploy:check&#10;1.2 s · failed"));
    assert_eq!(
        page.svg("rows")
            .matches("<rect class=\"band failed\"")
            .count(),
        2
    );
    for tick in [">0</text>", ">5 s</text>", ">9 s</text>"] {
        assert!(axis.contains(tick), "{tick}: {axis}");
    }

    // The header.
    for fact in [
        "<dt>recipe</dt><dd>shop.rhai</dd>",
        "<dt>stage</dt><dd>production</dd>",
        "<dt>tasks</dt><dd>deploy</dd>",
        "<dt>started</dt><dd>2025-01-02 03:04:05 UTC</dd>",
        "<dt>duration</dt><dd>10.0 s</dd>",
        "<dt>commands</dt><dd>5</dd>",
        "<dt>heartbeats</dt><dd>3</dd>",
        "<dt>reconnects</dt><dd>2</dd>",
        "<dt>re-attaches</dt><dd>1</dd>",
        "<span class=\"badge failed\">failed (exit 1)</span>",
        "<h1>production deploy",
    ] {
        assert!(page.html.contains(fact), "{fact}\n{}", page.html);
    }
    assert!(page
        .html
        .contains("<pre class=\"error\">web2: `echo &#39;&lt;/svg&gt;&lt;script&gt;"));

    // Hostile text stays text; nothing is fetched or run.
    let lower = page.html.to_lowercase();
    for tag in [
        "<script", "<b>", "<img", "<link", "<iframe", "url(", "@import",
    ] {
        assert!(!lower.contains(tag), "{tag} in the page");
    }
    assert_eq!(
        page.html.matches("<svg").count(),
        page.html.matches("</svg>").count()
    );
    let outside = page
        .html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for scheme in ["http:", "https:", "file:", "data:", "src=", "href="] {
        assert!(!outside.contains(scheme), "{scheme} in the page");
    }
    assert!(page
        .html
        .contains("content=\"default-src 'none'; style-src 'unsafe-inline'\""));
}

/// A re-attach and a resend replaced their host's session: the page counts them as reconnects,
/// as the run's summary does, and says a re-attach's times in words (stop 46 tester t59: the
/// page said 0 reconnects beside the summary's 1, and `heard_after_ms: 2098.529`).
#[test]
fn reattaches_and_resends_are_reconnects_said_in_words() {
    let dir = scratch("reattach-words");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        lines(&[
            json!({"t": 0.01, "type": "run_started", "recipe": null, "stage": null,
                   "tasks": [], "command": "sleep 6", "start_unix_ms": 1_735_787_045_000u64}),
            json!({"t": 0.03, "type": "hosts", "hosts": [
                {"name": "web1", "roles": []}, {"name": "web2", "roles": []}]}),
            json!({"t": 0.1, "host": "web1", "type": "connected", "setup_ms": 20.0}),
            json!({"t": 0.1, "host": "web2", "type": "connected", "setup_ms": 20.0}),
            json!({"t": 0.2, "host": "web1", "type": "command_started", "command": "sleep 6"}),
            json!({"t": 0.2, "host": "web2", "type": "command_started", "command": "sleep 6"}),
            json!({"t": 3.5, "host": "web1", "type": "reattach", "command": "sleep 6",
                   "heard_after_ms": 2098.529, "lost_after_ms": 3200.0, "took_ms": 1100.0}),
            json!({"t": 1.5, "host": "web2", "type": "resend", "command": "sleep 6",
                   "lost_after_ms": 200.0, "took_ms": 900.0}),
            json!({"t": 6.5, "host": "web1", "type": "command_finished", "command": "sleep 6",
                   "exit_code": 0, "signal": null, "error": null, "duration_ms": 6300.0,
                   "outcome": "ok"}),
            json!({"t": 7.5, "host": "web2", "type": "command_finished", "command": "sleep 6",
                   "exit_code": 0, "signal": null, "error": null, "duration_ms": 7300.0,
                   "outcome": "ok"}),
            json!({"t": 8.0, "type": "run_finished", "title": "ran", "ok": true,
                   "exit_code": 0, "error": null, "duration_ms": 8000.0}),
        ]),
    )
    .unwrap();
    report(&events, &dir.join("t.html"), &[]).status(0);
    let page = Page::read(&dir.join("t.html"));
    let web1 = page.row("web1");
    assert_eq!(web1.counts(), [1, 0, 1]);
    assert!(
        web1.svg.contains(
            "command: sleep 6\nlast heard 2.1 s into it\nconnection lost 3.2 s into it\n\
             re-attached after 1.1 s"
        ),
        "{}",
        web1.svg
    );
    assert!(!web1.svg.contains("_ms"), "{}", web1.svg);
    let web2 = page.row("web2");
    assert_eq!(web2.counts(), [1, 0, 1]);
    assert_eq!(web2.marks("reconnect"), 1);
    assert!(page.html.contains("<dt>reconnects</dt><dd>2</dd>"));
}

/// A host whose connecting tether gave up at an interrupt is drawn as stopped, not as a host
/// that could not be reached, by the event's kind (stop 46 tester t59: the red cross of
/// "unreachable", where the run said `never connected (connecting was stopped ...)`).
#[test]
fn connecting_stopped_by_an_interrupt_is_not_drawn_unreachable() {
    let dir = scratch("connect-stopped");
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        lines(&[
            json!({"t": 0.01, "type": "run_started", "recipe": null, "stage": null,
                   "tasks": [], "command": "true", "start_unix_ms": 1_735_787_045_000u64}),
            json!({"t": 0.03, "type": "hosts", "hosts": [
                {"name": "hang", "roles": []}, {"name": "gone", "roles": []}]}),
            json!({"t": 1.5, "host": "hang", "type": "connect_failed", "kind": "interrupted",
                   "error": "hang: connecting was stopped by tether after 1.5 s"}),
            json!({"t": 0.2, "host": "gone", "type": "connect_failed", "kind": "unreachable",
                   "error": "gone: connection refused"}),
            json!({"t": 1.6, "type": "run_finished", "title": "interrupted", "ok": false,
                   "exit_code": 130, "error": "interrupted", "duration_ms": 1600.0}),
        ]),
    )
    .unwrap();
    report(&events, &dir.join("t.html"), &[]).status(0);
    let page = Page::read(&dir.join("t.html"));
    let hang = page.row("hang");
    assert_eq!((hang.marks("stopped"), hang.marks("lost")), (1, 0));
    assert!(
        hang.svg.contains("connecting stopped by tether"),
        "{}",
        hang.svg
    );
    let gone = page.row("gone");
    assert_eq!((gone.marks("stopped"), gone.marks("lost")), (0, 1));
}

#[test]
fn broken_streams_are_refused_naming_the_line() {
    let dir = scratch("broken");
    let good = known_stream();
    let mut cut = good.clone();
    cut.truncate(good.len() - 40);
    let total = good.lines().count();
    let mut middle: Vec<&str> = good.lines().collect();
    middle[6] = "web1 | a line of text output";
    let middle = middle.join("\n");
    let mut no_time: Vec<String> = good.lines().map(str::to_string).collect();
    no_time[3] = r#"{"type":"task_started","task":"x"}"#.into();
    let mut bad_field: Vec<String> = good.lines().map(str::to_string).collect();
    bad_field[9] = r#"{"t":0.2,"host":"web1","type":"command_started","command":7}"#.into();
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "cut",
            cut.into_bytes(),
            format!("line {total} ends in the middle of an event: the stream is cut off"),
        ),
        ("text", middle.into_bytes(), "line 7: not JSON".into()),
        (
            "time",
            no_time.join("\n").into_bytes(),
            "line 4: `task_started` has no valid time".into(),
        ),
        (
            "field",
            bad_field.join("\n").into_bytes(),
            "line 10: `command_started` event: invalid type: integer `7`, expected a string".into(),
        ),
        ("utf8", b"\xff\xfe\n".to_vec(), "line 1: not UTF-8".into()),
        ("empty", Vec::new(), "no events: the stream is empty".into()),
        (
            "norun",
            b"{\"t\":0.1,\"type\":\"print\",\"text\":\"x\"}\n".to_vec(),
            "the stream holds no run".into(),
        ),
    ];
    for (name, bytes, want) in cases {
        let events = dir.join(format!("{name}.jsonl"));
        std::fs::write(&events, bytes).unwrap();
        let html = dir.join(format!("{name}.html"));
        let out = report(&events, &html, &[]);
        out.status(2).stderr_contains(&format!(
            "error: cannot draw a timeline from {}: {want}",
            events.display()
        ));
        assert!(!html.exists(), "{name}: a page was written");
    }
    let missing = dir.join("missing.jsonl");
    report(&missing, &dir.join("m.html"), &[])
        .status(2)
        .stderr_contains(&format!(
            "error: cannot open the event stream {}: No such file",
            missing.display()
        ));
    let events = dir.join("good.jsonl");
    std::fs::write(&events, &good).unwrap();
    report(&events, &events, &[])
        .status(2)
        .stderr_contains("that is the event stream itself");
    report(&events, &dir.join("nodir/t.html"), &[])
        .status(2)
        .stderr_contains("error: cannot write the timeline");
    Tether::new()
        .args(&["report", "-"])
        .run()
        .status(2)
        .stderr_contains("name the HTML file with -o FILE");
}

#[test]
fn a_stream_of_several_runs_draws_the_one_asked_for() {
    let dir = scratch("runs");
    let second = lines(&[
        json!({"t": 0.01, "type": "run_started", "recipe": null, "stage": null, "tasks": [],
               "command": "uptime", "start_unix_ms": 1_735_787_100_000u64}),
        json!({"t": 0.02, "type": "hosts", "hosts": [{"name": "a", "roles": []}, {"name": "b", "roles": []}]}),
        json!({"t": 0.03, "host": "a", "type": "connected", "setup_ms": 20.0}),
        json!({"t": 0.05, "host": "a", "type": "command_started", "command": "uptime"}),
        json!({"t": 0.06, "host": "a", "type": "command_finished", "command": "uptime",
               "exit_code": 0, "signal": null, "error": null, "duration_ms": 10.0, "outcome": "ok"}),
        json!({"t": 0.07, "host": "a", "type": "summary", "ok": true, "status": "ok"}),
    ]);
    let events = dir.join("log.jsonl");
    std::fs::write(&events, format!("{}{second}", known_stream())).unwrap();
    let html = dir.join("t.html");
    report(&events, &html, &[])
        .status(0)
        .stdout_contains("(run 2 of 2, 2 hosts, 1 command)");
    let page = Page::read(&html);
    assert!(page
        .html
        .contains("<h1>run: uptime<span class=\"badge ok\">ok</span>"));
    assert!(page.html.contains("Run 2 of 2 in the stream"));
    assert_eq!(page.groups(), ["no role · 2 hosts"]);
    // `b` was listed but did nothing: a row, and no session drawn on it.
    assert_eq!(page.row("a").count("<line class=\"idle\""), 1);
    assert_eq!(page.row("b").count("<line class=\"idle\""), 0);
    report(&events, &html, &["--run", "1"])
        .status(0)
        .stdout_contains("(run 1 of 2, 4 hosts");
    assert!(Page::read(&html).html.contains("<h1>production deploy"));
    report(&events, &html, &["--run", "3"])
        .status(2)
        .stderr_contains("--run 3: the stream holds 2 runs");
    // From stdin, to stdout.
    let mut child = Tether::new()
        .args(&["report", "-", "-o", "-", "--format", "json"])
        .command()
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(second.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
}

/// A deploy of `n` hosts with long names over 20 minutes, as JSON lines.
fn fleet_stream(n: usize) -> String {
    let name = |i: usize| format!("app-server-{i:03}.eu-west-1.internal.example.com");
    let hosts: Vec<_> = (0..n)
        .map(|i| json!({"name": name(i), "roles": if i % 4 == 0 { json!(["web", "app"]) } else { json!(["app", "worker"]) }}))
        .collect();
    let mut events = vec![
        json!({"t": 0.01, "type": "run_started", "recipe": "deploy.rhai", "stage": "production",
               "tasks": ["deploy"], "command": null, "start_unix_ms": 1_735_787_045_000u64}),
        json!({"t": 0.02, "type": "task_started", "task": "deploy"}),
        json!({"t": 0.03, "type": "hosts", "hosts": hosts}),
    ];
    let mut t = 1.0;
    for (task, secs, web_only) in [
        ("deploy:check", 3.0, false),
        ("deploy:updating", 30.0, false),
        ("deploy:assets:precompile", 1100.0, true),
        ("deploy:publishing", 2.0, false),
    ] {
        events.push(json!({"t": t, "type": "task_started", "task": task}));
        for i in 0..n {
            let host = name(i);
            if web_only && i % 4 != 0 {
                let mut b = t + 15.0;
                while b < t + secs {
                    events.push(json!({"t": b, "host": host, "type": "heartbeat", "rtt_ms": 2.0, "probe": false}));
                    b += 15.0;
                }
                continue;
            }
            let cmd = format!("cd /srv/app/releases/20250102030405 && {task}");
            let took = secs * (0.5 + (i % 7) as f64 / 14.0);
            events.push(json!({"t": t, "host": host, "type": "command_started", "command": cmd}));
            events.push(json!({"t": t + took, "host": host, "type": "command_finished", "command": cmd,
                "exit_code": 0, "signal": null, "error": null, "duration_ms": took * 1000.0, "outcome": "ok"}));
        }
        t += secs + 0.5;
        events.push(json!({"t": t, "type": "task_finished", "task": task, "ok": true}));
    }
    events.push(json!({"t": t, "type": "task_finished", "task": "deploy", "ok": true}));
    events.push(
        json!({"t": t, "type": "run_finished", "title": "deploy finished", "ok": true,
        "exit_code": 0, "error": null, "duration_ms": t * 1000.0}),
    );
    events.sort_by(|a, b| a["t"].as_f64().partial_cmp(&b["t"].as_f64()).unwrap());
    lines(&events)
}

#[test]
fn two_hundred_hosts_compress_and_elide() {
    let dir = scratch("fleet");
    let events = dir.join("fleet.jsonl");
    std::fs::write(&events, fleet_stream(200)).unwrap();
    let html = dir.join("fleet.html");
    report(&events, &html, &[]).status(0);
    let page = Page::read(&html);
    let rows = page.rows();
    assert_eq!(rows.len(), 200);
    assert_eq!(
        page.groups(),
        ["web, app · 50 hosts", "app, worker · 150 hosts"]
    );
    // Rows of 9 px and headings of 16: 200 hosts make one long but finite drawing.
    assert!(
        page.svg("rows").contains("height=\"1832\""),
        "{}",
        &page.svg("rows")[..300]
    );
    // Names too long for the label column are elided in the middle; the tooltip has them whole.
    let web = &rows[0].1;
    assert!(
        web.svg
            .contains(">app-server-000.eu…rnal.example.com</text>"),
        "{}",
        web.svg
    );
    assert!(web
        .svg
        .contains("<title>app-server-000.eu-west-1.internal.example.com\n"));
    // Rows this thin carry no bar labels; the tooltips still say everything.
    assert!(web.bar_labels().is_empty());
    assert_eq!(web.bar_titles().len(), 4);
    let worker = &rows[50].1;
    assert_eq!(worker.ticks(), 73);
    // Long runs get a minute scale.
    assert!(page.svg("axis").contains(">10m</text>"));
    let size = std::fs::metadata(&html).unwrap().len();
    assert!(size < 2_000_000, "{size} bytes");
    look(
        "two_hundred_hosts_compress_and_elide",
        &html,
        &dir,
        |shot| {
            assert!(shot.count_near(OK_GREEN, 8) > 20_000, "too few bars");
        },
    );
}

const OK_GREEN: [u8; 3] = [0x2e, 0x9e, 0x5b];
const HEARTBEAT_BLUE: [u8; 3] = [0x1f, 0x6f, 0xd1];

/// Renders `html` in headless Chromium at 1280×800 and checks the screenshot: that size, not
/// blank, and `check`; skipped (visibly) where Chromium cannot start.
fn look(test: &str, html: &Path, dir: &Path, check: impl FnOnce(&Screenshot)) {
    let png = html.with_extension("png");
    let shot = match Screenshot::take(html, &png, dir, 1280, 800) {
        Ok(shot) => shot,
        Err(reason) => return skip(test, &reason),
    };
    assert_eq!((shot.width, shot.height), (1280, 800), "{}", png.display());
    let colours = shot.colours();
    assert!(colours > 50, "{}: only {colours} colours", png.display());
    // Mostly white page, but far from all of it.
    let white = shot.count_near([255, 255, 255], 0);
    assert!(
        white < shot.rgb.len() * 95 / 100,
        "{}: blank",
        png.display()
    );
    check(&shot);
}

const SEED: &str = r#"
server("web1", #{ roles: ["web", "app"] });
server("web2", #{ roles: ["web", "app"] });
server("resque1", #{ roles: ["app", "resque"] });
server("resque2", #{ roles: ["app", "resque"] });
task("assets:precompile", "Long on web only", || { on("web", "echo compiling; sleep 5"); });
task("resque:restart", "Then the workers", || { on("resque", "echo restarted"); });
task("deploy", || {
    on("all", "true");
    invoke("assets:precompile");
    invoke("resque:restart");
});
"#;

fn seed_lab(dir: &Path) -> Lab {
    let lab = Lab::builder()
        .names(&["web1", "web2", "resque1", "resque2"])
        .profile("strict")
        .start();
    std::fs::write(dir.join("deploy.rhai"), SEED).unwrap();
    lab
}

#[test]
fn the_seed_scenario_shows_idle_hosts_kept_alive_in_the_browser() {
    let dir = scratch("seed");
    let lab = seed_lab(&dir);
    let html = dir.join("timeline.html");
    let out = Tether::new()
        .current_dir(&dir)
        .ssh_config(&lab.ssh_config())
        .args(&["--keepalive", "1s", "--format", "json", "--timeline"])
        .arg(html.to_str().unwrap())
        .arg("deploy")
        .run();
    out.status(0);
    let last = out.stdout.lines().last().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(last).unwrap(),
        json!({"t": serde_json::from_str::<serde_json::Value>(last).unwrap()["t"],
               "type": "timeline", "path": html.display().to_string()})
    );
    let page = Page::read(&html);
    for web in ["web1", "web2"] {
        let row = page.row(web);
        assert_eq!(row.bars("ok"), 2, "{web}");
        assert!(row.bar_labels().contains(&"assets:precompile".to_string()));
        assert_eq!(row.marks("reconnect"), 0);
    }
    for resque in ["resque1", "resque2"] {
        let row = page.row(resque);
        assert_eq!(row.bars("ok"), 2, "{resque}");
        assert!(row.ticks() >= 3, "{resque}: {} heartbeats", row.ticks());
        assert_eq!(row.marks("reconnect"), 0, "{resque}");
        assert_eq!(row.counts()[2], 0);
        assert!(row.svg.contains("idle, kept alive"));
    }
    assert!(page.html.contains("<span class=\"badge ok\">ok</span>"));
    assert!(page.html.contains("<dt>reconnects</dt><dd>0</dd>"));

    // The saved stream draws the same rows.
    let events = dir.join("events.jsonl");
    std::fs::write(&events, &out.stdout).unwrap();
    report(&events, &dir.join("report.html"), &[]).status(0);
    assert_eq!(
        Page::read(&dir.join("report.html")).svg("rows"),
        page.svg("rows")
    );

    look(
        "the_seed_scenario_shows_idle_hosts_kept_alive_in_the_browser",
        &html,
        &dir,
        |shot| {
            assert!(shot.count_near(OK_GREEN, 8) > 5_000, "no command bars");
            assert!(
                shot.count_near(HEARTBEAT_BLUE, 40) > 20,
                "no heartbeat ticks"
            );
        },
    );
}

#[test]
fn a_failed_run_and_tether_run_write_their_timelines() {
    let dir = scratch("failed");
    let lab = Lab::builder().names(&["web1", "web2"]).start();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"web1\", #{ roles: [\"web\"] });\nserver(\"web2\", #{ roles: [\"web\"] });\n\
         task(\"t\", || { on(\"web\", \"echo $HOSTNAME; [ $(cat /srv/name) = web1 ] || exit 3\"); });\n",
    )
    .unwrap();
    for h in lab.hosts() {
        std::fs::write(h.root_dir.join("name"), &h.name).unwrap();
    }
    let html = dir.join("failed.html");
    let tether = || {
        Tether::new()
            .current_dir(&dir)
            .ssh_config(&lab.ssh_config())
    };
    let out = tether()
        .args(&["--timeline", html.to_str().unwrap(), "t"])
        .run();
    out.status(1)
        .stdout_contains(&format!("timeline: {}", html.display()));
    let page = Page::read(&html);
    assert_eq!(page.row("web1").bars("ok"), 1);
    assert_eq!(page.row("web2").bars("failed"), 1);
    assert!(page.html.contains("failed (exit 1)"));
    assert!(page.html.contains("failed with exit status 3"));

    let html = dir.join("run.html");
    tether()
        .args(&["run", "--hosts", "web1,web2", "--timeline"])
        .args(&[html.to_str().unwrap(), "--", "echo hi"])
        .run()
        .status(0);
    let page = Page::read(&html);
    assert!(page
        .html
        .contains("<h1>run: echo hi<span class=\"badge ok\">ok</span>"));
    // --hosts names servers of the recipe in the directory: it is read, their roles shown.
    assert!(page.html.contains("<dt>recipe</dt>"));
    assert_eq!(page.groups(), ["web · 2 hosts"]);
    assert_eq!(page.rows().len(), 2);
    tether()
        .args(&["run", "--hosts", "web2", "--timeline"])
        .args(&[html.to_str().unwrap(), "--", "exit 3"])
        .run()
        .status(1);
    let page = Page::read(&html);
    assert!(page
        .html
        .contains("<span class=\"badge failed\">failed (exit 1)</span>"));
    assert!(page
        .html
        .contains("<pre class=\"error\">web2: `exit 3` failed with exit status 3"));
    assert_eq!(page.row("web2").bars("failed"), 1);
}

#[test]
fn an_interrupted_run_writes_its_timeline_with_the_stopped_command() {
    let dir = scratch("interrupted");
    let lab = Lab::builder().names(&["web1"]).start();
    std::fs::write(
        dir.join("deploy.rhai"),
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"t\", || { on(\"web\", #{ pty: true }, \"sleep 30\"); });\n",
    )
    .unwrap();
    let html = dir.join("t.html");
    let mut child = Tether::new()
        .current_dir(&dir)
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--format",
            "json",
            "--timeline",
            html.to_str().unwrap(),
            "t",
        ])
        .spawn();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while !line.contains("\"command_started\"") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "tether ended early"
        );
        assert!(Instant::now() < deadline, "no command started");
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let rest: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let page = Page::read(&html);
    assert_eq!(page.row("web1").bars("stopped"), 1);
    assert!(page
        .html
        .contains("<span class=\"badge interrupted\">interrupted (exit 130)</span>"));
}

#[test]
fn timeline_is_refused_where_there_is_no_run_to_draw() {
    let r = RecipeDir::new(
        "timeline-refused",
        "server(\"web1\", #{ roles: [\"web\"] });\ntask(\"t\", || { on(\"web\", \"true\"); });\n",
    );
    let html = r.dir.join("t.html");
    let html = html.to_str().unwrap();
    r.tether()
        .args(&["tasks", "--timeline", html])
        .run()
        .status(2)
        .stderr_contains("--timeline draws a run: use it with `tether [STAGE] TASK...` or `tether run`, not `tether tasks`");
    r.tether()
        .args(&["-n", "--timeline", html, "t"])
        .run()
        .status(2)
        .stderr_contains("--timeline: a dry run (-n) runs nothing to draw");
    r.tether()
        .args(&["--timeline", "/nonexistent/dir/t.html", "t"])
        .run()
        .status(2)
        .stderr_contains("error: --timeline /nonexistent/dir/t.html: the directory /nonexistent/dir does not exist");
    r.tether()
        .args(&["--timeline", r.dir.to_str().unwrap(), "t"])
        .run()
        .status(2)
        .stderr_contains("is a directory");
    // Anything but a regular file is refused before the run, never replaced by the page
    // (stop 33 tester: `--timeline /dev/full` made the device an 8 KB HTML file, exit 0; a
    // symbolic link and a FIFO were replaced too).
    let fifo = r.dir.join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let link = r.dir.join("link.html");
    std::os::unix::fs::symlink("target.html", &link).unwrap();
    // A device of the test's own (as /dev/full is: a test that failed must not take the
    // machine's).
    let device = r.dir.join("full");
    assert!(std::process::Command::new("mknod")
        .args(["-m", "666"])
        .arg(&device)
        .args(["c", "1", "7"])
        .status()
        .unwrap()
        .success());
    for (path, what) in [
        (device.as_path(), "a device"),
        (fifo.as_path(), "a FIFO"),
        (link.as_path(), "a symbolic link"),
    ] {
        r.tether()
            .args(&["--timeline", path.to_str().unwrap(), "run", "--", "true"])
            .run()
            .status(2)
            .stderr_contains(&format!(
                "error: --timeline {}: is {what}, which the page would replace",
                path.display()
            ));
    }
    assert!(std::fs::metadata(&device)
        .map(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()))
        .unwrap_or(false));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!r.dir.join("target.html").exists());
    // A recipe that does not load never starts a run: no page, and it says so.
    r.write("bad.rhai", "task(\"t\", || { on(\"web\", \"true\") ");
    r.tether()
        .args(&["-f", "bad.rhai", "--timeline", html, "t"])
        .run()
        .status(4)
        .stdout_contains(&format!(
            "warning: no timeline written to {html}: the run did not start"
        ));
    assert!(!Path::new(html).exists());
}
