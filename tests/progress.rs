//! Progress output redrawn with `\r` (git, npm, curl) never overwrites the host prefix: one
//! line per segment in a log (stdout not a terminal) and in JSON, the last segment on a
//! terminal.

use crate::support;

use support::lab::Lab;
use support::tether::Tether;

/// Prints `a`, redraws it three times, then a plain line; the same on stderr.
const PROGRESS: &str = r"printf 'a\r10%%\r50%%\r100%%\ndone\n'; printf '\rx 1\r\rx 2\r\n' >&2";

#[test]
fn progress_lines_in_a_log_are_one_line_per_segment() {
    let lab = Lab::start(1);
    let out = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["run", "--hosts", "host1", "--", PROGRESS])
        .run();
    out.status(0);
    assert_eq!(
        out.host_lines("host1", '|'),
        ["a", "10%", "50%", "100%", "done"],
        "{}",
        out.stdout
    );
    assert_eq!(
        out.host_lines("host1", '!'),
        ["x 1", "x 2"],
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\r'), "{:?}", out.stdout);

    let json = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&[
            "--format", "json", "run", "--hosts", "host1", "--", PROGRESS,
        ])
        .run();
    json.status(0);
    let lines: Vec<String> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "output" && v["stream"] == "stdout")
        .map(|v| v["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        lines,
        ["a", "10%", "50%", "100%", "done"],
        "{}",
        json.stdout
    );
}

#[test]
fn progress_on_a_terminal_shows_the_last_segment_after_the_prefix() {
    let lab = Lab::start(1);
    let tether = env!("CARGO_BIN_EXE_tether");
    // `script` gives tether a terminal (which writes each newline as \r\n).
    let command = format!(
        "{tether} -F {} run --hosts host1 -- \"{}\"",
        lab.ssh_config().display(),
        PROGRESS.replace('"', "\\\"")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("HOSTS")
        .env_remove("ROLES")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("host1 | 100%\r\n"), "{stdout:?}");
    assert!(stdout.contains("host1 | done\r\n"), "{stdout:?}");
    assert!(stdout.contains("host1 ! x 2\r\n"), "{stdout:?}");
    for gone in ["| a", "| 10%", "| 50%", "! x 1"] {
        assert!(!stdout.contains(gone), "{gone:?} in {stdout:?}");
    }
}

/// The live status line on a narrow terminal is cut to its width (never wrapping, which would
/// leave rows `\r\x1b[2K` cannot clear), and never written when stdout is not a terminal.
#[test]
fn the_status_line_is_cut_to_the_terminal_width_and_absent_from_logs() {
    let lab = support::recipe::lab(&["web1", "web2", "db1"]);
    let r = support::recipe::lab_recipe(
        &lab,
        "statuswidth",
        "task(\"a_task_with_a_rather_long_name_to_fill_the_line\", || { on([\"web1\"], \"sleep 3\"); });\n",
    );
    let task = "a_task_with_a_rather_long_name_to_fill_the_line";
    let pty = support::pty::Pty::new(40, 20);
    let mut child = pty.spawn(r.tether().args(&[task]).command());
    let status = support::pty::wait(&mut child, std::time::Duration::from_secs(60), &pty);
    let screen = pty.output();
    assert_eq!(status, 0, "{screen}");
    // Each drawing of the status line: after `\r\x1b[2K`, up to the next `\r` or newline,
    // its colour codes removed.
    let drawn: Vec<String> = screen
        .split("\r\x1b[2K")
        .skip(1)
        .map(|s| {
            let line = s.split(['\r', '\n']).next().unwrap_or("");
            let mut plain = String::new();
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    plain.push(c);
                }
            }
            plain
        })
        .filter(|l| l.starts_with("a_task"))
        .collect();
    assert!(!drawn.is_empty(), "no status line drawn: {screen:?}");
    for line in &drawn {
        assert!(
            line.chars().count() <= 39,
            "wider than the terminal: {line:?}"
        );
    }
    assert!(drawn.iter().any(|l| l.ends_with('…')), "{drawn:?}");

    // Not a terminal: no status line at all.
    let out = r.tether().args(&[task]).run();
    out.status(0);
    assert!(!out.stdout.contains("\x1b[2K"), "{:?}", out.stdout);
}

/// What `tether run --hosts host1 -- COMMAND` writes on a terminal (it succeeds).
fn on_a_terminal(lab: &Lab, command: &str) -> String {
    let pty = support::pty::Pty::new(100, 20);
    let mut child = pty.spawn(
        Tether::new()
            .ssh_config(&lab.ssh_config())
            .args(&["run", "--hosts", "host1", "--", command])
            .command(),
    );
    let status = support::pty::wait(&mut child, std::time::Duration::from_secs(60), &pty);
    let screen = pty.output();
    assert_eq!(status, 0, "{screen}");
    screen
}

/// Whether a drawing of the status line on `screen` (after `\r\x1b[2K`, up to the next `\r`
/// or newline) holds `text`.
fn status_drawn(screen: &str, text: &str) -> bool {
    screen
        .split("\r\x1b[2K")
        .skip(1)
        .any(|s| s.split(['\r', '\n']).next().unwrap_or("").contains(text))
}

/// Draws `step 1`, then `step 2` over it, then `done`, 2 s apart, and ends the line.
const REDRAW: &str = r"printf 'step 1\r'; sleep 2; printf 'step 2\r'; sleep 2; printf 'done\n'";

/// A state a command draws over with `\r` is shown when the next one starts, not when its line
/// ends (stop 35 tester t13: JSON and logs said every state at the newline's time, and a
/// terminal never drew them): in JSON and in a log as its own line, on a terminal in the
/// status line while the command runs (the line's last state printed once it ends, as
/// before). A `\r` with nothing after it yet may be a CRLF's: its state waits for the next
/// byte.
#[test]
fn a_redrawn_state_is_shown_when_it_is_drawn() {
    let lab = Lab::start(1);
    let json = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["--format", "json", "run", "--hosts", "host1", "--", REDRAW])
        .run();
    json.status(0);
    let at = |line: &str| -> f64 {
        json.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["type"] == "output" && v["line"] == line)
            .and_then(|v| v["t"].as_f64())
            .unwrap_or_else(|| panic!("no output {line:?}: {}", json.stdout))
    };
    let (first, second) = (at("step 1"), at("step 2"));
    assert!(
        second - first >= 1.5,
        "`step 1` at {first} s, `step 2` at {second} s: {}",
        json.stdout
    );

    let screen = on_a_terminal(&lab, REDRAW);
    assert!(screen.contains("host1 | done\r\n"), "{screen:?}");
    assert!(!screen.contains("| step 1"), "{screen:?}");
    assert!(
        status_drawn(&screen, "host1 › step 1"),
        "the status line never showed `step 1`: {screen:?}"
    );
}

/// A line a command leaves unended (a prompt, `Password: `) is drawn in a terminal's status
/// line once it has waited half a second, so a command that waits on it is seen waiting
/// (stop 35 tester t14: it showed only when the command ended); a log and JSON still get it
/// once, as the line it becomes.
#[test]
fn an_unended_line_is_drawn_in_the_status_line() {
    let lab = Lab::start(1);
    const PROMPT: &str = r"printf 'Password: '; sleep 3; echo; echo done";
    let json = Tether::new()
        .ssh_config(&lab.ssh_config())
        .args(&["--format", "json", "run", "--hosts", "host1", "--", PROMPT])
        .run();
    json.status(0);
    let lines: Vec<String> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "output")
        .map(|v| v["line"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines, ["Password: ", "done"], "{}", json.stdout);

    let screen = on_a_terminal(&lab, PROMPT);
    assert!(screen.contains("host1 | done\r\n"), "{screen:?}");
    assert_eq!(screen.matches("| Password: ").count(), 1, "{screen:?}");
    assert!(
        status_drawn(&screen, "host1 › Password: "),
        "the status line never showed the prompt: {screen:?}"
    );
}
