//! No surprise reconnects (issue 13, items 5 and 6): the first heartbeat of a host reads its
//! server's idle limits and sets its interval, what a run learned is remembered across runs
//! (the idle-limit cache under `$XDG_CACHE_HOME`, a temporary one per test), a connection
//! killed outright teaches nothing, and heartbeats are counted in the summary rather than
//! printed (unless `-v`). Real sshd hosts of the lab; sshd's own log counts the logins.

use crate::support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::harness::Harness;
use support::lab::Lab;
use support::tether::{Output, Tether};
use support::users::PlainUser;
use tether::event::{Beat, EventKind, LimitFrom};
use tether::ssh::limit_cache::LimitCache;
use tether::ssh::policy::WorkerSettings;

/// A first step on both hosts (each host's first command comes before its first heartbeat),
/// then web is busy for `seconds` (printing a line a second, so that no `ChannelTimeout` cuts
/// it) while resque sits idle; then a step on both.
fn recipe(web: &str, resque: &str, seconds: u32) -> String {
    format!(
        r#"
server("{web}", #{{ roles: ["web"] }});
server("{resque}", #{{ roles: ["resque"] }});
task("one", "Long step on web only", || {{
    on("all", "true");
    on("web", "i=0; while [ $i -lt {seconds} ]; do echo $i; sleep 1; i=$((i+1)); done");
}});
task("two", "A step on every host", || {{ on("all", "echo two"); }});
"#
    )
}

fn write_recipe(lab: &Lab, text: &str) -> PathBuf {
    let dir = lab.dir().join("recipe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.rhai"), text).unwrap();
    dir
}

fn deploy(lab: &Lab, dir: &Path, cache: &Path, extra: &[&str]) -> Output {
    Tether::new()
        .current_dir(dir)
        .ssh_config(&lab.ssh_config())
        .env("XDG_CACHE_HOME", cache.to_str().unwrap())
        .args(extra)
        .args(&["one", "two"])
        .run()
}

/// Per host, `reconnects` of the `session_summary` objects of a `--format json` run.
fn reconnects(out: &Output) -> Vec<(String, u64)> {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "session_summary")
        .map(|v| {
            (
                v["host"].as_str().unwrap_or_default().to_string(),
                v["reconnects"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

/// How many of `host`'s idle sessions were found reset.
fn resets(out: &Output, host: &str) -> u64 {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["type"] == "reconnect"
                && v["host"] == host
                && v["while_idle"] == true
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("(the connection was reset)"))
        })
        .count() as u64
}

fn cache_file(cache: &Path) -> PathBuf {
    cache.join("tether").join("idle-limits.json")
}

fn make_unreadable(lab: &Lab, host: &str) {
    std::fs::set_permissions(
        &lab.host(host).sshd_config,
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// The idle-limit cache's limits for the lab host `host` (its port): `(idle_limit_ms, source)`.
fn cached_limits(lab: &Lab, cache: &Path, host: &str) -> Vec<(u64, String)> {
    let Ok(text) = std::fs::read_to_string(cache_file(cache)) else {
        return Vec::new();
    };
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let port = u64::from(lab.host(host).port);
    file["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["port"] == port)
        .map(|e| {
            let ms = e["idle_limit_ms"].as_u64().unwrap();
            (ms, e["source"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The `heartbeat_interval_learned` events of a `--format json` run for `host`:
/// `(died_after_ms, confirmed)`.
fn learned(out: &Output, host: &str) -> Vec<(u64, bool)> {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "heartbeat_interval_learned" && v["host"] == host)
        .map(|v| {
            let ms = v["died_after_ms"].as_f64().unwrap() as u64;
            (
                ms,
                v["confirmed"].as_bool().unwrap_or_else(|| panic!("{v}")),
            )
        })
        .collect()
}

/// The `interval_ms` of the one `heartbeat_interval_learned` event of a `--format json` run
/// for `host`.
fn learned_interval_ms(out: &Output, host: &str) -> u64 {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "heartbeat_interval_learned" && v["host"] == host)
        .and_then(|v| v["interval_ms"].as_f64())
        .unwrap_or_else(|| panic!("no interval learned\n{}", out.stdout)) as u64
}

#[test]
fn an_idle_limit_that_could_not_be_read_is_remembered_once_a_second_run_confirms_it() {
    // A login that cannot read the server's config: the first run can only see the idle
    // session the server closes after 3 s, which one death does not prove to be a limit (a
    // kill -9 of sshd looks the same: fresh-eyes finding, issue 13 item 5). The second run
    // sees it end at the same idle time again: a limit, remembered; the third knows it from
    // the start.
    let user = PlainUser::create();
    let lab = Lab::builder()
        .names(&["web1", "resque1"])
        .profile("unused")
        .start();
    make_unreadable(&lab, "web1");
    make_unreadable(&lab, "resque1");
    let (web, resque) = (user.at("web1"), user.at("resque1"));
    let dir = write_recipe(&lab, &recipe(&web, &resque, 7));
    let cache = tempfile::tempdir().unwrap();

    let mut deaths = Vec::new();
    for (run, confirmed) in [(1, false), (2, true)] {
        let out = deploy(&lab, &dir, cache.path(), &["--format", "json"]);
        out.status(0);
        assert_eq!(
            reconnects(&out),
            [(web.clone(), 0), (resque.clone(), 1)],
            "run {run}\n{}",
            out.stdout
        );
        let seen = learned(&out, &resque);
        assert!(
            matches!(seen[..], [(ms, c)] if c == confirmed && (2500..6000).contains(&ms)),
            "run {run}: {seen:?}\n{}",
            out.stdout
        );
        deaths.push(seen[0].0);
        let limits = cached_limits(&lab, cache.path(), "resque1");
        match confirmed {
            false => assert_eq!(limits, [], "run {run}"),
            true => assert!(
                matches!(&limits[..], [(ms, s)] if s == "idle_death" && (2500..6000).contains(ms)),
                "run {run}: {limits:?}"
            ),
        }
        // Confirmed, it beats for the limit remembered, the shorter death, as the next run
        // will (stop 58 tester t92: for the later death's).
        if confirmed {
            let interval = learned_interval_ms(&out, &resque);
            let limit = deaths.iter().min().unwrap();
            assert!(interval.abs_diff(limit / 3) <= 1, "{interval} {deaths:?}");
        }
    }
    let file = cache_file(cache.path());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let logins = lab.accepted_logins("resque1");
    let third = deploy(&lab, &dir, cache.path(), &["--format", "json"]);
    third.status(0);
    assert_eq!(
        reconnects(&third),
        [(web.clone(), 0), (resque.clone(), 0)],
        "{}",
        third.stdout
    );
    // One login for the whole third run, and the remembered limit said where it came from.
    assert_eq!(lab.accepted_logins("resque1"), logins + 1);
    assert!(
        third.stdout.contains(r#""type":"idle_limit","limit_ms":"#),
        "{}",
        third.stdout
    );
    assert!(third.stdout.contains(r#""source":"remembered""#));
    assert!(!third.stdout.contains("heartbeat_interval_learned"));
}

/// sshd's shortest idle limit, a whole second, where the config cannot be read: its idle
/// sessions end between 1 s and 2 s idle, which was taken for a kill (deaths under 2 s
/// taught nothing), so every run lost the idle host every second or two (stop 58 tester t92:
/// 3 reconnects a run, every run). Learned as any limit: one reconnect in each of two runs,
/// none from the third. In the first two, the first heartbeat (1 s idle, to read the limits)
/// can meet sshd's close: its channel request reaches the server as sshd exits, whose kernel
/// answers with a reset, which teaches nothing (see `idle_death`) and costs one more
/// reconnect (fresh-clone CI, stop 64: run 2 lost its idle host at 1.16 s that way).
#[test]
fn a_one_second_idle_limit_that_could_not_be_read_is_learned_too() {
    let user = PlainUser::create();
    let lab = Lab::builder().names(&["web1", "resque1"]).start();
    lab.reconfigure("resque1", "UnusedConnectionTimeout 1");
    make_unreadable(&lab, "web1");
    make_unreadable(&lab, "resque1");
    let (web, resque) = (user.at("web1"), user.at("resque1"));
    let dir = write_recipe(&lab, &recipe(&web, &resque, 5));
    let cache = tempfile::tempdir().unwrap();
    for (run, want) in [(1, 1), (2, 1), (3, 0)] {
        let out = deploy(&lab, &dir, cache.path(), &["--format", "json"]);
        out.status(0);
        let want = match run {
            3 => want,
            _ => want + resets(&out, &resque),
        };
        assert_eq!(
            reconnects(&out),
            [(web.clone(), 0), (resque.clone(), want)],
            "run {run}\n{}",
            out.stdout
        );
        let seen = learned(&out, &resque);
        match run {
            3 => assert_eq!(seen, [], "{}", out.stdout),
            _ => assert!(
                matches!(seen[..], [(ms, c)] if c == (run == 2) && (1000..2800).contains(&ms)),
                "run {run}: {seen:?}\n{}",
                out.stdout
            ),
        }
    }
    let limits = cached_limits(&lab, cache.path(), "resque1");
    assert!(
        matches!(&limits[..], [(ms, s)] if s == "idle_death" && (1000..2800).contains(ms)),
        "{limits:?}"
    );
}

/// A limit confirmed where the cache file cannot be written is not said to be remembered
/// (stop 58 tester t92: a note said it was not, the next line "its idle limit, remembered").
/// The file is made a directory once the second run has read it.
#[test]
fn a_confirmed_limit_the_cache_cannot_keep_is_said_for_this_run_only() {
    let user = PlainUser::create();
    let lab = Lab::builder().names(&["web1", "resque1"]).start();
    lab.reconfigure("resque1", "UnusedConnectionTimeout 1");
    make_unreadable(&lab, "resque1");
    let (web, resque) = (user.at("web1"), user.at("resque1"));
    let dir = write_recipe(&lab, &recipe(&web, &resque, 4));
    let cache = tempfile::tempdir().unwrap();
    let first = deploy(&lab, &dir, cache.path(), &[]);
    first
        .status(0)
        .stdout_contains("not remembered until it happens again");
    let before = lab.started_commands("resque1");
    let second = std::thread::scope(|scope| {
        let run = scope.spawn(|| deploy(&lab, &dir, cache.path(), &[]));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while lab.started_commands("resque1") == before && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let file = cache_file(cache.path());
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        run.join().unwrap()
    });
    second
        .status(0)
        .stdout_contains(
            "its idle limit, for this run only (the idle-limit cache could not be written)",
        )
        .stdout_lacks("remembered;");
}

/// The tester's case (issue 13 item 5): where the config cannot be read, an idle session
/// whose sshd was killed outright (`kill -9`: the socket closes in order, as an idle limit
/// closes it) was said to be "dropped by the server" and remembered as its idle limit for 30
/// days, so every later run beat `true` every 2 s. One such death shortens the heartbeat for
/// this run only, in words that blame no one, and a later run starts as if it had not been.
/// The config is moved away after sshd started, as the tester did (sshd passes it to each
/// connection's process and never reads it again); a root login, so that the listener's child
/// is the connection's only sshd process (a plain user's login has a second one holding the
/// socket, which outlives the first's kill).
#[test]
fn an_idle_session_killed_outright_where_the_config_is_unreadable_is_neither_remembered_nor_blamed_on_the_server(
) {
    let lab = Lab::builder().names(&["web1", "resque1"]).start();
    let config = &lab.host("resque1").sshd_config;
    std::fs::rename(config, config.with_extension("hidden")).unwrap();
    let (web, resque) = ("web1".to_string(), "resque1".to_string());
    let dir = write_recipe(&lab, &recipe(&web, &resque, 12));
    let cache = tempfile::tempdir().unwrap();

    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| deploy(&lab, &dir, cache.path(), &["-v"]));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while lab.started_commands("resque1") == 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Its first heartbeat reads (and fails to read) the limits 1 s after the first
        // command; then it sits idle, 4 s of it when its sshd is killed.
        std::thread::sleep(Duration::from_secs(5));
        lab.kill_connections("resque1");
        run.join().unwrap()
    });
    out.status(0)
        .stdout_contains(&format!("{resque} ~ this idle session was closed after "))
        .stdout_contains(
            " idle (by the server's idle limit or by something else: not remembered until it \
             happens again); heartbeat every ",
        )
        .stdout_contains(" for this run")
        .stdout_lacks("dropped this idle session")
        // -v says why it learns rather than reads (stop 58 tester t92: nothing did).
        .stdout_contains(&format!(
            "{resque} ~ note: the server's sshd config could not be read by this login"
        ));
    assert_eq!(cached_limits(&lab, cache.path(), "resque1"), []);

    // The next run: nothing recalled, nothing lost.
    let next = deploy(&lab, &dir, cache.path(), &["--format", "json"]);
    next.status(0);
    assert_eq!(
        reconnects(&next),
        [(web.clone(), 0), (resque.clone(), 0)],
        "{}",
        next.stdout
    );
    assert!(
        !next.stdout.contains(r#""type":"idle_limit""#),
        "{}",
        next.stdout
    );
    assert_eq!(learned(&next, &resque), []);
}

#[test]
fn the_first_run_reads_the_limits_and_reconnects_nothing_under_every_profile() {
    let profiles = [
        "default",
        "clientalive",
        "unused",
        "channeltimeout",
        "strict",
    ];
    let outcomes: Vec<(String, Result<(), String>)> = std::thread::scope(|scope| {
        let runs: Vec<_> = profiles
            .iter()
            .map(|profile| {
                scope.spawn(move || {
                    let lab = Lab::builder()
                        .names(&["web1", "resque1"])
                        .profile(profile)
                        .start();
                    let dir = write_recipe(&lab, &recipe("web1", "resque1", 7));
                    let cache = tempfile::tempdir().unwrap();
                    let out = deploy(&lab, &dir, cache.path(), &["--format", "json"]);
                    let logins: Vec<usize> =
                        ["web1", "resque1"].map(|h| lab.accepted_logins(h)).to_vec();
                    let got = reconnects(&out);
                    let want = [("web1".to_string(), 0), ("resque1".to_string(), 0)];
                    let ok = out.status == 0 && got == want && logins == [1, 1];
                    let result = if ok {
                        Ok(())
                    } else {
                        Err(format!(
                            "status {}, reconnects {got:?}, logins {logins:?}\n{}",
                            out.status, out.stdout
                        ))
                    };
                    (profile.to_string(), result)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let failed: Vec<String> = outcomes
        .into_iter()
        .filter_map(|(p, r)| r.err().map(|e| format!("profile {p}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

fn is_reconnect(k: &EventKind) -> bool {
    matches!(k, EventKind::Reconnected { .. })
}

fn is_learned(k: &EventKind) -> bool {
    matches!(k, EventKind::Learned { .. })
}

#[test]
fn a_killed_idle_connection_is_reconnected_without_changing_the_learned_interval() {
    let lab = Lab::builder().names(&["host1"]).profile("unused").start();
    let cache_dir = tempfile::tempdir().unwrap();
    let (cache, _) = LimitCache::load(cache_file(cache_dir.path()));
    let cache = std::sync::Arc::new(cache);
    let settings = WorkerSettings {
        limit_cache: Some(cache.clone()),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&lab.ssh_config(), settings, &["host1"]);
    // The first heartbeat reads UnusedConnectionTimeout 3: a heartbeat every second.
    let (_, e) = h
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e.kind, EventKind::IdleLimit { .. })
        })
        .unwrap_or_else(|| panic!("the limit was not read\n{}", h.story()));
    let EventKind::IdleLimit {
        limit,
        from,
        interval,
    } = e.kind
    else {
        unreachable!()
    };
    assert_eq!(limit, Duration::from_secs(3));
    assert_eq!(from, LimitFrom::SshdConfig { in_match: false });
    assert_eq!(interval, Duration::from_secs(1));
    let remembered = std::fs::read_to_string(cache.path()).unwrap();

    h.idle(Duration::from_millis(1500));
    let before = h.mark();
    lab.kill_connections("host1");
    h.wait_for_since(before, Duration::from_secs(5), |e| is_reconnect(&e.kind))
        .unwrap_or_else(|| panic!("no reconnect\n{}", h.story()));
    // Idle well past the server's limit on the new session: the interval is still 1 s.
    h.idle(Duration::from_secs(6));
    assert_eq!(h.count("host1", is_reconnect), 1, "{}", h.story());
    assert_eq!(h.count("host1", is_learned), 0, "{}", h.story());
    assert_eq!(lab.accepted_logins("host1"), 2);
    // Read once per host and run, not again on the new session.
    let reads = h.beats("host1", Beat::Limits);
    assert_eq!(reads, 1, "{}", h.story());
    assert_eq!(
        std::fs::read_to_string(cache.path()).unwrap(),
        remembered,
        "the cache changed"
    );
}

#[test]
fn a_connection_killed_after_a_moment_of_idleness_teaches_nothing() {
    // No idle limit on this server (its config was read): a session killed 4 s into its
    // idleness was not ended by one, and is neither learned nor remembered.
    let lab = Lab::builder().names(&["host1"]).start();
    let cache_dir = tempfile::tempdir().unwrap();
    let (cache, _) = LimitCache::load(cache_file(cache_dir.path()));
    let settings = WorkerSettings {
        limit_cache: Some(std::sync::Arc::new(cache)),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&lab.ssh_config(), settings, &["host1"]);
    h.wait_for(Duration::from_secs(5), |e| {
        matches!(e.kind, EventKind::Heartbeat { .. })
    })
    .unwrap_or_else(|| panic!("no heartbeat\n{}", h.story()));
    h.idle(Duration::from_secs(4));
    let before = h.mark();
    lab.kill_connections("host1");
    let (_, e) = h
        .wait_for_since(before, Duration::from_secs(5), |e| is_reconnect(&e.kind))
        .unwrap_or_else(|| panic!("no reconnect\n{}", h.story()));
    h.idle(Duration::from_millis(300));
    assert_eq!(h.count("host1", is_learned), 0, "{}", h.story());
    let EventKind::Reconnected { reason, .. } = &e.kind else {
        unreachable!()
    };
    assert!(!reason.contains("dropped this idle session"), "{reason}");
    assert!(!cache_file(cache_dir.path()).exists());
    let r = h.run(&["host1"], "echo again");
    assert!(r[0].ok(), "{:?}", r[0].result);
}

#[test]
fn a_corrupt_cache_is_ignored_with_a_note_under_verbose_and_replaced() {
    let lab = Lab::builder()
        .names(&["web1", "resque1"])
        .profile("unused")
        .start();
    let dir = write_recipe(&lab, &recipe("web1", "resque1", 3));
    let cache = tempfile::tempdir().unwrap();
    let file = cache_file(cache.path());
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "{\"version\": 1, \"entries\": [tru").unwrap();

    let quiet = deploy(&lab, &dir, cache.path(), &[]);
    quiet
        .status(0)
        .stdout_lacks("note:")
        .stdout_lacks("warning:");
    std::fs::write(&file, "\u{0}\u{1}garbage").unwrap();
    let verbose = deploy(&lab, &dir, cache.path(), &["-v"]);
    verbose
        .status(0)
        .stdout_contains("note: idle-limit cache ignored: ")
        .stdout_contains("is not a tether idle-limit cache");
    // Replaced by a good one with what this run read.
    let (again, note) = LimitCache::load(file.clone());
    assert_eq!(note, None);
    let text = std::fs::read_to_string(again.path()).unwrap();
    assert!(text.contains("\"sshd_config\""), "{text}");
    // One entry made unusable by hand (a fractional limit): left out and said, the file kept
    // (stop 58 tester t93: dropped without a word).
    let at = text.find("\"idle_limit_ms\": ").unwrap() + "\"idle_limit_ms\": ".len();
    let end = at + text[at..].find(|c: char| !c.is_ascii_digit()).unwrap();
    std::fs::write(&file, format!("{}.5{}", &text[..end], &text[end..])).unwrap();
    let verbose = deploy(&lab, &dir, cache.path(), &["-v"]);
    verbose
        .status(0)
        .stdout_contains(&format!(
            "note: idle-limit cache: 1 of the entries and sightings in {} left out (not as tether writes them",
            file.display()
        ))
        .stdout_lacks("cache ignored");
}

#[test]
fn heartbeats_are_counted_in_the_summary_and_printed_only_with_verbose() {
    let lab = Lab::builder()
        .names(&["web1", "resque1"])
        .profile("clientalive")
        .start();
    let dir = write_recipe(&lab, &recipe("web1", "resque1", 4));
    let cache = tempfile::tempdir().unwrap();

    let quiet = deploy(&lab, &dir, cache.path(), &[]);
    quiet
        .status(0)
        .stdout_lacks("kept alive")
        .stdout_lacks("heartbeat ");
    let row = quiet
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("resque1 ") && l.contains("one session, "))
        .unwrap_or_else(|| panic!("no summary row for resque1\n{}", quiet.stdout))
        .to_string();
    // `resque1  one session, 5 heartbeats, 0 reconnects`: at least a probe a second.
    let beats: u64 = row
        .split("one session, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{row}"));
    assert!(beats >= 2, "{row}");
    assert!(row.ends_with(", 0 reconnects"), "{row}");

    let verbose = deploy(&lab, &dir, cache.path(), &["-v"]);
    verbose
        .status(0)
        .stdout_contains("resque1 ~ idle, kept alive: heartbeat");
}

/// Resets every established connection of that lab host (`ss -K`: the server's end is
/// destroyed and a RST sent), as a firewall or a NAT that forgot the connection does.
/// Kills `host`'s established connections with `ss -K`: the server's ends (`sport`, a reset
/// sent to tether) or tether's own (`dport`, aborted on this machine).
fn reset_connections(lab: &Lab, host: &str, side: &str) {
    let port = lab.host(host).port;
    let out = std::process::Command::new("ss")
        .args([
            "-K",
            "state",
            "established",
            &format!("( {side} = :{port} )"),
        ])
        .output()
        .expect("run ss");
    assert!(out.status.success(), "{out:?}");
}

/// From now until the guard drops, every packet tether sends on its established connection to
/// that lab host is refused by this machine's firewall with a TCP reset (nftables' output
/// hook, `reject with tcp reset`), as a firewall or NAT that forgot the connection answers the
/// next packet: the reset arrives only in answer to a send, and libssh2's own read of it is
/// the first to see it. New connections (another local port) pass.
fn reject_with_reset(lab: &Lab, host: &str) -> RejectGuard {
    let port = lab.host(host).port;
    let out = std::process::Command::new("ss")
        .args([
            "-tnH",
            "state",
            "established",
            &format!("( dport = :{port} )"),
        ])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let locals: Vec<u16> = text
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(2)?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(
        locals.len(),
        1,
        "one connection to {host} expected:\n{text}"
    );
    let table = format!("tether_reject_{port}");
    let rules = format!(
        "table inet {table} {{\n\
         chain output {{ type filter hook output priority -300; \
         tcp sport {local} tcp dport {port} reject with tcp reset; }}\n\
         }}\n",
        local = locals[0]
    );
    let mut nft = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run nft");
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), rules.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success(), "nft refused:\n{rules}");
    RejectGuard(table)
}

struct RejectGuard(String);

impl Drop for RejectGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .status();
    }
}

#[test]
fn a_connection_reset_after_a_moment_of_idleness_teaches_nothing_even_unread() {
    // Where the config cannot be read, an orderly close after 3 s idle would be learned as
    // an idle limit; a reset is not one.
    let user = PlainUser::create();
    let lab = Lab::builder().names(&["host1"]).start();
    make_unreadable(&lab, "host1");
    let host = user.at("host1");
    let host = host.as_str();
    let cache_dir = tempfile::tempdir().unwrap();
    let (cache, _) = LimitCache::load(cache_file(cache_dir.path()));
    let settings = WorkerSettings {
        limit_cache: Some(std::sync::Arc::new(cache)),
        ..WorkerSettings::default()
    };
    let mut h = Harness::new(&lab.ssh_config(), settings, &[host]);
    h.wait_for_beat(Duration::from_secs(5), Beat::Limits);
    // The server's end reset, then tether's own aborted on this machine (fresh-eyes finding:
    // `ss -K` of tether's socket read as the server closing the idle session), then twice a
    // reset in answer to the heartbeat's send (stop 61 tester t100: read by libssh2 first, it
    // was said as the server closing the connection, and two were learned as a 1.1 s limit).
    for side in ["sport", "dport", "send", "send"] {
        h.idle(Duration::from_secs(3));
        // Marked before the reset: under load, `ss -K` itself took longer than the
        // reconnect, which a mark taken after it missed (`dport: no reconnect`, the story
        // showing one 1.5 s after the reset; seen twice in full runs).
        let mark = h.mark();
        let guard = match side {
            "send" => Some(reject_with_reset(&lab, "host1")),
            _ => {
                reset_connections(&lab, "host1", side);
                None
            }
        };
        // A reset in answer to a send waits for the next heartbeat (about 5 s apart here).
        let (_, e) = h
            .wait_for_since(mark, Duration::from_secs(12), |e| is_reconnect(&e.kind))
            .unwrap_or_else(|| panic!("{side}: no reconnect\n{}", h.story()));
        drop(guard);
        let EventKind::Reconnected { reason, .. } = &e.kind else {
            unreachable!()
        };
        // Said as what it was: not "the server closed the connection".
        assert_eq!(
            reason,
            "connection lost while idle (the connection was reset)",
            "{side}\n{}",
            h.story()
        );
    }
    h.idle(Duration::from_millis(300));
    assert_eq!(h.count(host, is_learned), 0, "{}", h.story());
    assert!(!cache_file(cache_dir.path()).exists());
    let r = h.run(&[host], "echo again");
    assert!(r[0].ok(), "{:?}", r[0].result);
}

#[test]
fn a_cache_that_cannot_be_written_is_a_note_under_verbose_not_an_error() {
    let lab = Lab::builder()
        .names(&["web1", "resque1"])
        .profile("unused")
        .start();
    let dir = write_recipe(&lab, &recipe("web1", "resque1", 3));
    // XDG_CACHE_HOME is a file: no directory can be made under it.
    let temp = tempfile::tempdir().unwrap();
    let blocked = temp.path().join("not-a-directory");
    std::fs::write(&blocked, "").unwrap();
    let quiet = deploy(&lab, &dir, &blocked, &[]);
    quiet.status(0).stdout_lacks("note:");
    let verbose = deploy(&lab, &dir, &blocked, &["-v"]);
    verbose
        .status(0)
        .stdout_contains(
            "resque1 ~ note: idle limit not remembered: cannot create the directory of ",
        )
        .stdout_contains("resque1 ~ the server closes connections unused for 3.0 s");
    assert_eq!(
        [lab.accepted_logins("web1"), lab.accepted_logins("resque1")],
        [2, 2],
        "{}",
        verbose.stdout
    );
}

/// What the cache says is believed only where it can be true, and only until the server says
/// otherwise (fresh-eyes finding, stop 28: an entry edited to 0 ms was announced as "the
/// server closes connections unused for 0.0 ms" and kept a 500 ms heartbeat for the whole
/// run, though the first heartbeat read the real 3 s and rewrote the entry). An entry no sshd
/// or learning could have written (under 1 s) is dropped; one the server's config no longer
/// says (1.5 s, the server says 3 s) gives way to what it says: the interval follows the read
/// limit, longer this time; one it still says is said once. The idle host (resque1) is the
/// one whose entry is edited.
#[test]
fn a_remembered_limit_gives_way_to_what_the_server_says() {
    let lab = Lab::builder()
        .names(&["web1", "resque1"])
        .profile("unused")
        .start();
    let dir = write_recipe(&lab, &recipe("web1", "resque1", 4));
    let cache = tempfile::tempdir().unwrap();
    deploy(&lab, &dir, cache.path(), &[]).status(0);
    let file = cache_file(cache.path());
    let port = u64::from(lab.host("resque1").port);
    let ms = |v: &serde_json::Value| v.as_f64().unwrap() as u64;
    for (edited, want) in [
        // 0 ms is not believed: the limit comes from the config, as on a first run.
        (0, vec![(3000, "sshd_config", 1000)]),
        // 1.5 s is believed until the config says 3 s, which then sets the interval.
        (
            1500,
            vec![(1500, "remembered", 500), (3000, "sshd_config", 1000)],
        ),
        // What the server still says is said once, as remembered (stop 55 tester t88: said
        // again when read).
        (3000, vec![(3000, "remembered", 1000)]),
    ] {
        let mut saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for entry in saved["entries"].as_array_mut().unwrap() {
            assert_eq!(entry["idle_limit_ms"], 3000, "{entry}");
            if entry["port"] == port {
                entry["idle_limit_ms"] = edited.into();
            }
        }
        std::fs::write(&file, saved.to_string()).unwrap();

        let out = deploy(&lab, &dir, cache.path(), &["--format", "json"]);
        out.status(0);
        let limits: Vec<(u64, String, u64)> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "idle_limit" && v["host"] == "resque1")
            .map(|v| {
                let source = v["source"].as_str().unwrap().to_string();
                (ms(&v["limit_ms"]), source, ms(&v["interval_ms"]))
            })
            .collect();
        let want: Vec<(u64, String, u64)> = want
            .into_iter()
            .map(|(l, s, i)| (l, s.to_string(), i))
            .collect();
        assert_eq!(limits, want, "{edited} ms\n{}", out.stdout);
        assert_eq!(
            reconnects(&out),
            [("web1".into(), 0), ("resque1".into(), 0)],
            "{edited} ms\n{}",
            out.stdout
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let now: serde_json::Value = serde_json::from_str(&text).unwrap();
        for entry in now["entries"].as_array().unwrap() {
            assert_eq!(entry["idle_limit_ms"], 3000, "{edited} ms\n{text}");
        }
    }
}

/// A limit an earlier run read that the server no longer sets gives way at the first
/// heartbeat: the interval is the setting's again (stop 52 tester t81: the host beat every
/// 1 s for the whole run, its cache entry already forgotten), said under `-v`.
#[test]
fn a_remembered_limit_the_server_dropped_gives_way_to_the_setting() {
    let lab = Lab::builder()
        .names(&["web1", "resque1"])
        .profile("unused")
        .start();
    let dir = write_recipe(&lab, &recipe("web1", "resque1", 6));
    let cache = tempfile::tempdir().unwrap();
    deploy(&lab, &dir, cache.path(), &[]).status(0);
    assert_eq!(
        cached_limits(&lab, cache.path(), "resque1"),
        [(3000, "sshd_config".to_string())]
    );
    let config = lab.host("resque1").sshd_config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("UnusedConnectionTimeout 3"), "{text}");
    std::fs::write(&config, text.replace("UnusedConnectionTimeout 3", "")).unwrap();
    // Re-read by the listener (a line it ignores appended).
    lab.reconfigure("resque1", "# no idle limit");

    let out = deploy(&lab, &dir, cache.path(), &["--format", "json", "-v"]);
    out.status(0);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["host"] == "resque1")
        .collect();
    let beats = events.iter().filter(|v| v["type"] == "heartbeat").count();
    // The remembered 3 s limit starts the run at a 1 s beat; the first heartbeat reads that
    // there is none: no more beats in the 6 s step (the setting's interval is longer).
    assert!(beats <= 2, "{beats} heartbeats\n{}", out.stdout);
    assert!(
        events.iter().any(|v| v["type"] == "note"
            && v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no longer sets the idle limit")),
        "{}",
        out.stdout
    );
    assert!(cached_limits(&lab, cache.path(), "resque1").is_empty());
}

/// A limit is remembered for the login that learned it: sshd's `Match User` sets idle limits
/// per user, and a login that cannot read the config has only its own sessions to go by
/// (stop 58 tester t93: the cache was keyed without the login, so root's limit was another
/// user's from its first connection). The cache holds a limit for root only; a run as
/// another user is told nothing remembered, a run as root is.
#[test]
fn a_remembered_limit_is_the_login_s_own() {
    let user = PlainUser::create();
    let lab = Lab::start(1);
    let cache = tempfile::tempdir().unwrap();
    let key = lab
        .host("host1")
        .sshd_config
        .with_file_name("ssh_host_ed25519_key.pub");
    let listed = std::process::Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let fingerprint = listed.split_whitespace().nth(1).unwrap().to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{listed}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let file = cache_file(cache.path());
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        serde_json::json!({
            "version": 2,
            "entries": [{
                "host": "127.0.0.1",
                "port": lab.host("host1").port,
                "host_key": fingerprint,
                "user": "root",
                "idle_limit_ms": 9000,
                "source": "idle_death",
                "learned_at": now - 60,
            }],
            "sightings": [],
        })
        .to_string(),
    )
    .unwrap();
    let remembered = |login: &str| {
        let out = Tether::new()
            .ssh_config(&lab.ssh_config())
            .env("XDG_CACHE_HOME", cache.path().to_str().unwrap())
            .args(&["--format", "json", "run", "--hosts", login, "--", "true"])
            .run();
        out.status(0);
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "idle_limit" && v["source"] == "remembered")
            .map(|v| v["limit_ms"].as_f64().unwrap() as u64)
            .collect::<Vec<u64>>()
    };
    assert_eq!(remembered(&user.at("host1")), Vec::<u64>::new());
    assert_eq!(remembered("host1"), [9000]);
}

/// An `UnusedConnectionTimeout` only a `Match` block sets is counted (which logins the block
/// applies to is not evaluated: the shortest counts), and said as a Match block's, not as the
/// server's for every login (stop 61 tester t98: root's run said "the server closes
/// connections unused for 4.0 s" of a `Match User` block for another user, root's own 9 s).
#[test]
fn a_limit_only_a_match_block_sets_is_said_as_a_match_blocks() {
    let lab = Lab::builder().names(&["web1", "resque1"]).start();
    lab.reconfigure("resque1", "Match User nobody\n  UnusedConnectionTimeout 4");
    let dir = write_recipe(&lab, &recipe("web1", "resque1", 3));
    let cache = tempfile::tempdir().unwrap();
    let out = deploy(&lab, &dir, cache.path(), &["-v"]);
    out.status(0).stdout_contains(
        "resque1 ~ a Match block of the server's config closes connections unused for 4.0 s \
         (UnusedConnectionTimeout; which logins it applies to is not evaluated: the shortest \
         counts); heartbeat every 1.3 s from now on",
    );
    let fresh = tempfile::tempdir().unwrap();
    let json = deploy(&lab, &dir, fresh.path(), &["--format", "json"]);
    json.status(0);
    let said: Vec<(String, bool)> = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "idle_limit" && v["host"] == "resque1")
        .map(|v| (v["source"].to_string(), v["in_match"] == true))
        .collect();
    assert_eq!(
        said,
        [("\"sshd_config\"".to_string(), true)],
        "{}",
        json.stdout
    );
}
