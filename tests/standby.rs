//! Standbys (`ssh::standby`, issues 13 and 17): from a connection's second supervised command
//! on, the next command's exec is opened ahead and waits for its command on stdin. A command
//! run on one shows and does exactly what it would on a channel of its own; one that ends
//! before its command starts runs that command once, on a new channel; none is left behind.

use crate::support;

use std::time::{Duration, Instant};

use support::harness::Harness;
use support::lab::Lab;
use tether::event::EventKind;
use tether::ssh::exec::{Echo, ExecOptions, ExitStatus};
use tether::ssh::policy::WorkerSettings;

/// Prints, as the first line of a command's output, whether it runs on a standby: the
/// supervisor's sh its own shell was forked from read its command from stdin (its arguments
/// hold the standby's words, `_tether_line`, written here so that the command's own text, which
/// a command sent in its exec request carries in those arguments, does not match).
const WHERE: &str = r#"if tr '\0' ' ' </proc/$PPID/cmdline | grep -q '_tether_l[i]ne'; then echo standby; else echo own; fi"#;

/// The standby processes left on `host` of `lab`.
fn standbys(lab: &Lab, host: &str) -> Vec<u32> {
    lab.host_pids(host)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("_tether_line"))
        })
        .collect()
}

/// Waits (5 s at most) until `host` of `lab` has no standby process left.
fn assert_no_standby_left(lab: &Lab, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !standbys(lab, host).is_empty() {
        assert!(
            Instant::now() < deadline,
            "standby processes left: {:?}",
            standbys(lab, host)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Commands in quick succession run on standbys from the third on (the second opens the first
/// one), each exactly once, with its own output, stderr, status and stdin, whatever its text
/// holds; a standby not used within a second is closed, and the run's end leaves none and no
/// file on the host.
#[test]
fn later_commands_run_on_standbys_once_each_as_on_their_own_channels() {
    let lab = Lab::builder().names(&["host1"]).start();
    let root = lab.host("host1").root_dir.clone();
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    let mut seen = Vec::new();
    for i in 0..8 {
        // Quotes, `$`, a backslash, a backquote and a newline in the command's text; stdin
        // for the odd ones.
        let command = format!(
            "echo {i} >> /srv/marker; {WHERE}; printf '%s|' \"it's\" '$HOME' 'a\\b' `echo bt`\n\
             read -r line; echo \"[$line]\"; echo e{i} >&2; exit {i}"
        );
        let stdin = (i % 2 == 1).then(|| format!("in{i}\nmore\n").into_bytes());
        let opts = ExecOptions {
            stdin: stdin.clone(),
            echo: Echo::All,
            ..ExecOptions::default()
        };
        let out = h
            .pool
            .exec_one("host1", &command, opts)
            .unwrap_or_else(|e| panic!("{i}: {e}\n{}", h.story()));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (place, rest) = stdout.split_once('\n').unwrap_or(("", &stdout));
        let read = match i % 2 {
            1 => format!("in{i}"),
            _ => String::new(),
        };
        assert_eq!(
            (
                rest,
                String::from_utf8_lossy(&out.stderr).as_ref(),
                &out.status
            ),
            (
                format!("it's|$HOME|a\\b|bt|[{read}]\n").as_str(),
                format!("e{i}\n").as_str(),
                &ExitStatus::Code(i)
            ),
            "{i} ({place})\n{}",
            h.story()
        );
        seen.push(place.to_string());
    }
    h.settle();
    assert_eq!(&seen[..2], ["own", "own"], "{seen:?}");
    assert!(
        seen[2..].iter().any(|s| s == "standby"),
        "no command ran on a standby: {seen:?}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).unwrap(),
        (0..8).map(|i| format!("{i}\n")).collect::<String>()
    );
    assert_eq!(
        h.count("host1", |k| matches!(k, EventKind::Reconnected { .. })),
        0
    );
    // Unused for a second, the last one is closed while the session stays.
    assert_no_standby_left(&lab, "host1");
    let out = h.run(&["host1"], "echo still").remove(0);
    assert!(out.ok(), "{}", h.story());
    // The run's end: no standby, and no file of any command, left on the host.
    h.run(&["host1"], "true");
    h.run(&["host1"], "true");
    drop(h);
    assert_no_standby_left(&lab, "host1");
    let private = lab.host("host1").tmp.join("tether-root");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(&private)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with(".swept."))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "files left: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A standby that ends before its command started (here its login shell reads the command's
/// line and exits, as a standby the server closed as the command was written would leave it)
/// leaves the command unclaimed: tether claims it, and runs it on a new channel, once; that
/// connection opens no standby again, and is not taken for a lost one.
#[test]
fn a_standby_that_ends_before_its_command_starts_runs_it_once_on_a_new_channel() {
    let lab = Lab::builder().names(&["host1"]).start();
    let root = lab.host("host1").root_dir.clone();
    std::fs::write(
        lab.host("host1").home.join(".bashrc"),
        "case $BASH_EXECUTION_STRING in *_tether_l[i]ne*) if [ -e /srv/eat ]; then IFS= read -r l \
         && echo \"$l\" >> /srv/eaten; exit 0; fi;; esac\n",
    )
    .unwrap();
    std::fs::write(root.join("eat"), "").unwrap();
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    let mut seen = Vec::new();
    for i in 0..5 {
        let command = format!("echo {i} >> /srv/marker; {WHERE}; echo out{i}; exit {i}");
        let out = h.run(&["host1"], &command).remove(0);
        let out = match out.result {
            Some(Ok(out)) => out,
            other => panic!("{i}: {other:?}\n{}", h.story()),
        };
        assert_eq!(out.status, ExitStatus::Code(i), "{i}\n{}", h.story());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (place, rest) = stdout.split_once('\n').unwrap_or(("", &stdout));
        assert_eq!(rest, format!("out{i}\n"), "{i}\n{}", h.story());
        seen.push(place.to_string());
    }
    // Every command ran on a channel of its own, each once; the third was eaten by the
    // standby's login shell first.
    assert_eq!(seen, ["own"; 5], "{}", h.story());
    assert_eq!(
        std::fs::read_to_string(root.join("marker")).unwrap(),
        "0\n1\n2\n3\n4\n"
    );
    let eaten = std::fs::read_to_string(root.join("eaten")).unwrap();
    assert_eq!(eaten.lines().count(), 1, "{eaten}");
    assert!(eaten.contains("echo 2 >> /srv/marker"), "{eaten}");
    assert_eq!(
        h.count("host1", |k| matches!(k, EventKind::Reconnected { .. })),
        0
    );
    assert_eq!(
        h.count("host1", |k| matches!(k, EventKind::SessionLost { .. })),
        0,
        "{}",
        h.story()
    );
    drop(h);
    assert_no_standby_left(&lab, "host1");
}

/// A standby sets the private directory back to 0700 once its command has come, not only
/// when it was opened: the command that ran meanwhile may have opened it to others (`chmod
/// -R a+rwX "$TMPDIR"`), and the next command's files must not be made in a directory others
/// can write (stop 49 tester t69: they replaced a running command's status with a symlink).
#[test]
fn a_standby_makes_the_private_directory_private_again_once_its_command_comes() {
    let lab = Lab::builder().names(&["host1"]).start();
    // Once /srv/slow is there, a standby's login shell takes 3 s: the one the command below
    // opens sets nothing back while that command runs.
    std::fs::write(
        lab.host("host1").home.join(".bashrc"),
        "case $BASH_EXECUTION_STRING in *_tether_l[i]ne*) [ -e /srv/slow ] && sleep 3;; esac\n",
    )
    .unwrap();
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    assert!(h.run(&["host1"], "true")[0].ok(), "{}", h.story());
    // Opens the standby as it starts, and the directory a second later.
    let open = "sleep 1; chmod 777 \"${TMPDIR:-/tmp}/tether-$LOGNAME\"; touch /srv/slow";
    assert!(h.run(&["host1"], open)[0].ok(), "{}", h.story());
    let mode = format!("{WHERE}; stat -c %a \"${{TMPDIR:-/tmp}}/tether-$LOGNAME\"");
    let out = h.run(&["host1"], &mode).remove(0);
    let out = match out.result {
        Some(Ok(out)) => out,
        other => panic!("{other:?}\n{}", h.story()),
    };
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "standby\n700\n",
        "{}",
        h.story()
    );
}

/// A server that allows one session channel per connection (`MaxSessions 1`) refuses the
/// standby: commands run as before, on channels of their own.
#[test]
fn a_server_that_refuses_the_standby_runs_every_command_on_its_own_channel() {
    let lab = Lab::builder().names(&["host1"]).start();
    lab.reconfigure("host1", "MaxSessions 1");
    let mut h = Harness::new(&lab.ssh_config(), WorkerSettings::default(), &["host1"]);
    for i in 0..5 {
        let out = h.run(&["host1"], &format!("{WHERE}; exit {i}")).remove(0);
        let out = match out.result {
            Some(Ok(out)) => out,
            other => panic!("{i}: {other:?}\n{}", h.story()),
        };
        assert_eq!(
            (String::from_utf8_lossy(&out.stdout).as_ref(), &out.status),
            ("own\n", &ExitStatus::Code(i)),
            "{}",
            h.story()
        );
    }
    assert!(standbys(&lab, "host1").is_empty());
}
