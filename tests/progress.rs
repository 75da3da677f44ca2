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
