//! What sshd's settings mean for tether's heartbeat: one finding per setting, `ok` or
//! `warning` with the reason and the advice.

use std::time::Duration;

use crate::duration::{format as format_duration, format_flag, parse as parse_time};
use crate::ssh::limiter::PER_SERVER;
use crate::ssh::reconnect::SHORTEST_INTERVAL;
use crate::ssh::worker::READ_LIMITS_AFTER;
use crate::ssh_syntax::pattern::wildcard_match;
use crate::sshd::settings::ServerSettings;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Sessions or commands will be cut off: the exit status becomes 1.
    Warning,
}

/// One conclusion about one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// The sshd keyword concerned.
    pub setting: &'static str,
    /// What it means for tether, with the advice.
    pub message: String,
}

/// A heartbeat interval comfortably under `limit`: a third of it, in whole seconds from 1 s
/// up, else 500 ms.
pub fn suggested_keepalive(limit: Duration) -> Duration {
    let third = limit / 3;
    if third >= Duration::from_secs(1) {
        Duration::from_secs(third.as_secs())
    } else {
        Duration::from_millis(500)
    }
}

/// The shortest `ChannelTimeout` on command channels that the supervisor's frames keep open.
const SUPERVISOR_FRAMES_KEEP: Duration = Duration::from_secs(1);

/// Whether a `ChannelTimeout` type pattern covers the channels tether's commands use: sshd
/// names an exec channel `session:command` once its request came (session.c
/// `channel_set_xtype`, OpenSSH 9.2 to 10.5) and matches the patterns against that name
/// (channels.c `lookup_timeout`), so `session` alone, which sshd_config(5)'s example gives,
/// reaches none of them (tester t128: `session=2s` was said to cut a silent PTY command, which
/// ran on).
/// `global` covers them only where the sshd has it (`global`: see
/// [`ServerSettings::global_channel_timeout`]; tester t129: `global=3` on OpenSSH 9.2 was said
/// to cut a silent PTY command, which ran on).
fn covers_commands(pattern: &str, global: bool) -> bool {
    let p = pattern.to_ascii_lowercase();
    match p.as_str() {
        "global" => global,
        _ => wildcard_match(&p, "session:command"),
    }
}

/// What the settings mean with heartbeat `heartbeat` (`None`: `--no-keepalive`).
/// `same_server` is how many of the selected hosts are this same sshd (address and port).
pub fn assess(s: &ServerSettings, heartbeat: Option<Duration>, same_server: usize) -> Vec<Finding> {
    let mut out = Vec::new();

    // ClientAlive: probes after ClientAliveInterval of client silence, CountMax unanswered.
    let iv = s.client_alive_interval;
    let max = s.client_alive_count_max;
    let finding = if iv.is_zero() {
        (Level::Ok, "no probes (ClientAliveInterval 0)".to_string())
    } else if max == 0 {
        (
            Level::Ok,
            "ClientAliveCountMax 0: probes never end a session".to_string(),
        )
    } else {
        let limit = iv * max;
        match heartbeat {
            None => (
                Level::Warning,
                format!(
                    "sshd drops a client that leaves {max} probes in a row unanswered (one \
                     after every {} of silence), and without a heartbeat tether answers none \
                     while idle: idle sessions die after about {}. Drop --no-keepalive",
                    format_duration(iv),
                    format_duration(limit + iv)
                ),
            ),
            Some(h) if h >= limit => (
                Level::Ok,
                format!(
                    "sshd drops a client that leaves {max} probes in a row unanswered (one \
                     after every {} of silence). The heartbeat ({}) is longer than that, which \
                     is fine ONLY because tether answers every probe at once with a heartbeat",
                    format_duration(iv),
                    format_duration(h)
                ),
            ),
            Some(h) => (
                Level::Ok,
                format!(
                    "the heartbeat ({}) is shorter than {max} probe intervals of {}, and \
                     tether answers every probe at once anyway",
                    format_duration(h),
                    format_duration(iv)
                ),
            ),
        }
    };
    out.push(Finding {
        level: finding.0,
        setting: "ClientAliveInterval",
        message: finding.1,
    });

    // UnusedConnectionTimeout: only an open channel re-arms it; keepalives do not.
    let finding = match (s.unused_connection_timeout, heartbeat) {
        (None, _) => (Level::Ok, "not set".to_string()),
        (Some(u), None) => (
            Level::Warning,
            format!(
                "sshd closes a connection without an open channel after {}, and there is no \
                 heartbeat to open one: idle sessions will be dropped. Use --keepalive {}",
                format_duration(u),
                format_flag(suggested_keepalive(u))
            ),
        ),
        // The first heartbeat reads the limit, as this check did, and meets it from then on;
        // it comes after READ_LIMITS_AFTER of idleness, which must leave the same margin.
        (Some(u), Some(h))
            if h + Duration::from_secs(1) > u
                && READ_LIMITS_AFTER + Duration::from_secs(1) <= u =>
        {
            (
                Level::Ok,
                format!(
                    "sshd closes a connection without an open channel after {}; the heartbeat \
                     ({}) is longer, which is fine because the first one (after {} idle) reads \
                     this limit as this check did and runs `true` every {} from then on",
                    format_duration(u),
                    format_duration(h),
                    format_duration(READ_LIMITS_AFTER),
                    format_duration((u / 3).max(SHORTEST_INTERVAL).min(h))
                ),
            )
        }
        // The heartbeat must open its channel with a margin for the round trip and the shell.
        (Some(u), Some(h)) if h + Duration::from_secs(1) > u => (
            Level::Warning,
            format!(
                "sshd closes a connection without an open channel after {}, and neither the \
                 heartbeat ({}) nor its first reading of this limit comes at least 1 s \
                 earlier: idle sessions will be dropped (tether then reconnects and shortens \
                 its heartbeat, one extra login per host). Use --keepalive {}",
                format_duration(u),
                format_duration(h),
                format_flag(suggested_keepalive(u))
            ),
        ),
        (Some(u), Some(h)) => (
            Level::Ok,
            format!(
                "the heartbeat ({}) opens a channel well within {}",
                format_duration(h),
                format_duration(u)
            ),
        ),
    };
    out.push(Finding {
        level: finding.0,
        setting: "UnusedConnectionTimeout",
        message: finding.1,
    });

    // ChannelTimeout: closes a channel without traffic: a command's channel, or a tunnel of
    // a host reached through this one (ProxyJump).
    let mut cut = Vec::new();
    let mut tunnels = Vec::new();
    for spec in &s.channel_timeout {
        let Some((pattern, value)) = spec.split_once('=') else {
            continue;
        };
        let limit = match parse_time(value).ok() {
            Some(d) if !d.is_zero() => d,
            _ => continue,
        };
        if covers_commands(pattern, s.global_channel_timeout) {
            cut.push((spec.clone(), limit));
        }
        let p = pattern.to_ascii_lowercase();
        if (p == "global" && s.global_channel_timeout) || wildcard_match(&p, "direct-tcpip") {
            tunnels.push((spec.clone(), limit));
        }
    }
    let commands = match cut.iter().min_by_key(|(_, d)| *d) {
        None if s.channel_timeout.is_empty() => (Level::Ok, "not set".to_string()),
        None => (Level::Ok, "does not apply to command channels".to_string()),
        // Under the supervisor's frames (one about every 0.4 s of silence) a channel is never
        // idle that long.
        Some((spec, limit)) if *limit < SUPERVISOR_FRAMES_KEEP => (
            Level::Warning,
            format!(
                "{spec}: a command silent for {} has its channel closed by sshd, even under \
                 tether's supervisor (it sends a frame about every 0.4 s of silence): raise \
                 ChannelTimeout on the server",
                format_duration(*limit)
            ),
        ),
        Some((spec, limit)) => (
            Level::Ok,
            format!(
                "{spec}: a silent command keeps its channel in use under tether's supervisor \
                 (a frame about every 0.4 s of silence); a PTY command, or one run where the \
                 supervisor cannot run, is cut off after {} of silence",
                format_duration(*limit)
            ),
        ),
    };
    let (level, message) = match (tunnels.iter().min_by_key(|(_, d)| *d), heartbeat) {
        (None, _) => commands,
        (Some((spec, limit)), Some(_)) => (
            commands.0,
            format!(
                "{}; {spec} closes a tunnel through this host (ProxyJump) idle for {}: the \
                 hosts behind it beat at least every {} while tether's worker for this jump \
                 host knows it",
                commands.1,
                format_duration(*limit),
                format_duration((*limit / 3).max(crate::ssh::reconnect::SHORTEST_INTERVAL))
            ),
        ),
        (Some((spec, limit)), None) => (
            Level::Warning,
            format!(
                "{}; {spec} closes a tunnel through this host (ProxyJump) idle for {}, and \
                 without a heartbeat nothing crosses an idle one: the sessions of hosts behind \
                 it die. Drop --no-keepalive",
                commands.1,
                format_duration(*limit)
            ),
        ),
    };
    out.push(Finding {
        level,
        setting: "ChannelTimeout",
        message,
    });

    // MaxSessions: a command's channel, and beside it the next command's standby or a stop's
    // (stop 61 tester t99: "one channel at a time", where a standby is a second).
    out.push(match s.max_sessions {
        0 => Finding {
            level: Level::Warning,
            setting: "MaxSessions",
            message: "MaxSessions 0 allows no session channels: no command can run".into(),
        },
        1 => Finding {
            level: Level::Ok,
            setting: "MaxSessions",
            message: "one channel at a time: tether opens no standby for the next command here \
                      (a warm command waits for its login shell to start, a few milliseconds), \
                      and stops a command over a second connection, saying so"
                .into(),
        },
        n => Finding {
            level: Level::Ok,
            setting: "MaxSessions",
            message: format!(
                "tether uses at most two channels at once of the {n} allowed: a command's, and \
                 beside it the next command's standby (its exec opened ahead) or a stop's; a \
                 heartbeat's only while the session is idle"
            ),
        },
    });

    // MaxStartups / PerSourceMaxStartups: tether makes at most one handshake per host at a
    // time and PER_SERVER at once to one server.
    let burst = same_server.clamp(1, PER_SERVER);
    let begin: usize = s
        .max_startups
        .split(':')
        .next()
        .and_then(|b| b.trim().parse().ok())
        .unwrap_or(10);
    let per_source = s.per_source_max_startups.map(|p| p as usize);
    let limit = per_source.map_or(begin, |p| p.min(begin));
    out.push(if burst > limit {
        Finding {
            level: Level::Warning,
            setting: "MaxStartups",
            message: format!(
                "{same_server} of the selected hosts are this same sshd; tether opens up to \
                 {burst} connections to it at once, and sshd starts refusing unauthenticated \
                 connections at {limit} (MaxStartups {}{})",
                s.max_startups,
                per_source.map_or(String::new(), |p| format!(", PerSourceMaxStartups {p}"))
            ),
        }
    } else {
        Finding {
            level: Level::Ok,
            setting: "MaxStartups",
            message: format!(
                "tether opens {} to this sshd at once (the limit starts at {limit})",
                if burst == 1 {
                    "one connection".to_string()
                } else {
                    format!("up to {burst} connections")
                }
            ),
        }
    });
    out
}

/// `ok` or `warning`, as JSON output writes a level.
pub fn level_word(l: Level) -> &'static str {
    match l {
        Level::Ok => "ok",
        Level::Warning => "warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(f: &'a [Finding], setting: &str) -> &'a Finding {
        f.iter().find(|x| x.setting == setting).unwrap()
    }

    #[test]
    fn unused_connection_timeout_needs_a_shorter_heartbeat() {
        let s = ServerSettings {
            unused_connection_timeout: Some(Duration::from_secs(3)),
            ..ServerSettings::default()
        };
        // The first heartbeat reads 3 s and beats every second from then on.
        let f = assess(&s, Some(Duration::from_secs(15)), 1);
        let u = find(&f, "UnusedConnectionTimeout");
        assert_eq!(u.level, Level::Ok);
        assert!(u.message.contains("`true` every 1.0 s"), "{}", u.message);
        let f = assess(&s, Some(Duration::from_secs(1)), 1);
        assert!(f.iter().all(|x| x.level == Level::Ok), "{f:?}");
        let f = assess(&s, None, 1);
        assert_eq!(find(&f, "UnusedConnectionTimeout").level, Level::Warning);
        // Too short for the first heartbeat to read it in time.
        let short = ServerSettings {
            unused_connection_timeout: Some(Duration::from_millis(1500)),
            ..ServerSettings::default()
        };
        let f = assess(&short, Some(Duration::from_secs(15)), 1);
        let u = find(&f, "UnusedConnectionTimeout");
        assert_eq!(u.level, Level::Warning);
        assert!(u.message.contains("--keepalive 500ms"), "{}", u.message);
    }

    #[test]
    fn client_alive_is_fine_only_because_probes_are_answered() {
        let s = ServerSettings {
            client_alive_interval: Duration::from_secs(1),
            client_alive_count_max: 2,
            ..ServerSettings::default()
        };
        let c = assess(&s, Some(Duration::from_secs(15)), 1);
        let c = find(&c, "ClientAliveInterval");
        assert_eq!(c.level, Level::Ok);
        assert!(c.message.contains("ONLY because"), "{}", c.message);
        let c = assess(&s, None, 1);
        assert_eq!(find(&c, "ClientAliveInterval").level, Level::Warning);
        let zero = ServerSettings {
            client_alive_count_max: 0,
            ..s
        };
        assert_eq!(
            find(&assess(&zero, None, 1), "ClientAliveInterval").level,
            Level::Ok
        );
    }

    /// Before OpenSSH 9.7, `global` is a channel type pattern that names no channel: it cuts
    /// neither commands nor tunnels (tester t129: said to cut PTY commands on 9.2).
    #[test]
    fn global_channel_timeout_counts_only_where_sshd_has_it() {
        for (has, said) in [(true, true), (false, false)] {
            let s = ServerSettings {
                channel_timeout: vec!["global=3s".into()],
                global_channel_timeout: has,
                ..ServerSettings::default()
            };
            let f = assess(&s, Some(Duration::from_millis(500)), 1);
            let c = find(&f, "ChannelTimeout");
            assert_eq!(
                c.message.contains("supervisor (a frame"),
                said,
                "{}",
                c.message
            );
            assert_eq!(c.message.contains("closes a tunnel"), said, "{}", c.message);
        }
    }

    #[test]
    fn channel_timeout_on_commands_is_met_by_the_supervisor_and_tunnels_are_said() {
        for (spec, level, supervisor, tunnel) in [
            ("session:*=3s", Level::Ok, true, false),
            ("session:command=1m", Level::Ok, true, false),
            ("global=10m", Level::Ok, true, true),
            ("session:*=500ms", Level::Warning, false, false),
            ("agent-connection=1m", Level::Ok, false, false),
            ("direct-tcpip=3s", Level::Ok, false, true),
            ("*=1m", Level::Ok, true, true),
            ("session:*=0", Level::Ok, false, false),
            ("session=2s", Level::Ok, false, false),
            ("session:shell=2s", Level::Ok, false, false),
            ("session*=2s", Level::Ok, true, false),
        ] {
            let s = ServerSettings {
                channel_timeout: vec![spec.into()],
                ..ServerSettings::default()
            };
            let f = assess(&s, Some(Duration::from_millis(500)), 1);
            let c = find(&f, "ChannelTimeout");
            assert_eq!(c.level, level, "{spec}: {}", c.message);
            assert_eq!(
                c.message.contains("supervisor (a frame"),
                supervisor,
                "{spec}: {}",
                c.message
            );
            assert_eq!(
                c.message.contains("closes a tunnel"),
                tunnel,
                "{spec}: {}",
                c.message
            );
            // Without a heartbeat an idle tunnel is closed (fresh-eyes finding: check said
            // the hosts behind would beat, under --no-keepalive).
            let c = find(&assess(&s, None, 1), "ChannelTimeout").clone();
            let warned = tunnel || level == Level::Warning;
            assert_eq!(c.level == Level::Warning, warned, "{spec}: {}", c.message);
        }
    }

    #[test]
    fn max_startups_counts_hosts_that_are_one_server() {
        let s = ServerSettings {
            max_startups: "3:30:10".into(),
            ..ServerSettings::default()
        };
        let hb = Some(Duration::from_secs(15));
        assert_eq!(find(&assess(&s, hb, 3), "MaxStartups").level, Level::Ok);
        assert_eq!(
            find(&assess(&s, hb, 4), "MaxStartups").level,
            Level::Warning
        );
        let p = ServerSettings {
            per_source_max_startups: Some(2),
            ..ServerSettings::default()
        };
        assert_eq!(
            find(&assess(&p, hb, 3), "MaxStartups").level,
            Level::Warning
        );
        let z = ServerSettings {
            max_sessions: 0,
            ..ServerSettings::default()
        };
        assert_eq!(
            find(&assess(&z, hb, 1), "MaxSessions").level,
            Level::Warning
        );
        // A standby is a second channel beside a command's; under MaxSessions 1 there is none
        // (stop 61 tester t99: "one channel at a time" said of every server).
        for (n, says) in [
            (1, "tether opens no standby for the next command here"),
            (10, "at most two channels at once of the 10 allowed"),
        ] {
            let s = ServerSettings {
                max_sessions: n,
                ..ServerSettings::default()
            };
            let findings = assess(&s, hb, 1);
            let f = find(&findings, "MaxSessions");
            assert_eq!(f.level, Level::Ok, "{n}");
            assert!(f.message.contains(says), "{n}: {}", f.message);
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggested_keepalive(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            suggested_keepalive(Duration::from_secs(10)),
            Duration::from_secs(3)
        );
        assert_eq!(
            suggested_keepalive(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(format_flag(Duration::from_millis(500)), "500ms");
    }
}
