//! sshd's settings that can end a session: `sshd -T` output and sshd_config text parsed into
//! [`ServerSettings`], with OpenSSH's defaults for what is not said.

use std::time::Duration;

use super::probe::RS;
use crate::duration::parse as parse_time;
use crate::ssh_syntax::pattern::wildcard_match;

/// Server settings that can end a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// `ClientAliveInterval` (zero: no probes).
    pub client_alive_interval: Duration,
    /// `ClientAliveCountMax` (zero: probes never end a session).
    pub client_alive_count_max: u32,
    /// `UnusedConnectionTimeout` (OpenSSH 9.2+).
    pub unused_connection_timeout: Option<Duration>,
    /// `ChannelTimeout` as written (`session:*=3s ...`), empty when unset.
    pub channel_timeout: Vec<String>,
    /// `MaxSessions`.
    pub max_sessions: u32,
    /// `MaxStartups` as written (`10:30:100`).
    pub max_startups: String,
    /// `PerSourceMaxStartups` (`None`: no limit).
    pub per_source_max_startups: Option<u32>,
    /// Whether `ChannelTimeout global=N` is a timeout of all channels taken together (OpenSSH
    /// 9.7 and later: channels.c `channel_add_timeout`); before 9.7 `global` is a channel type
    /// pattern that names no channel. True where the version is not known.
    pub global_channel_timeout: bool,
}

impl Default for ServerSettings {
    /// OpenSSH's defaults.
    fn default() -> Self {
        ServerSettings {
            client_alive_interval: Duration::ZERO,
            client_alive_count_max: 3,
            unused_connection_timeout: None,
            channel_timeout: Vec::new(),
            max_sessions: 10,
            max_startups: "10:30:100".into(),
            per_source_max_startups: None,
            global_channel_timeout: true,
        }
    }
}

/// The first `PidFile` in `text`: `sshd -T` output (`pidfile /run/sshd.pid`) or a config dump
/// (`PidFile=/x`; sshd takes the first of most keywords, and PidFile is never in a Match block).
pub fn pid_file(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        // Indented as a config may indent it.
        let mut words = l
            .trim_start()
            .split(|c: char| c.is_whitespace() || c == '=');
        let key = words.next()?;
        key.eq_ignore_ascii_case("pidfile")
            .then(|| words.find(|w| !w.is_empty()).map(str::to_string))
            .flatten()
    })
}

/// Parses `sshd -T` output (lowercase keywords, one per line).
pub fn parse_sshd_t(text: &str) -> ServerSettings {
    let mut s = ServerSettings::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), rest) = (words.next(), words.collect::<Vec<&str>>()) else {
            continue;
        };
        apply(&mut s, &key.to_ascii_lowercase(), &rest);
    }
    s
}

fn apply(s: &mut ServerSettings, key: &str, args: &[&str]) {
    let first = args.first().copied().unwrap_or("");
    match key {
        "clientaliveinterval" => {
            if let Ok(d) = parse_time(first) {
                s.client_alive_interval = d;
            }
        }
        "clientalivecountmax" => {
            if let Ok(n) = first.parse() {
                s.client_alive_count_max = n;
            }
        }
        "unusedconnectiontimeout" => {
            s.unused_connection_timeout = match first.to_ascii_lowercase().as_str() {
                "none" | "" => None,
                v => parse_time(v).ok().filter(|d| !d.is_zero()),
            }
        }
        "channeltimeout" => {
            s.channel_timeout = args
                .iter()
                .filter(|a| !a.eq_ignore_ascii_case("none"))
                .map(|a| a.to_string())
                .collect();
        }
        "maxsessions" => {
            if let Ok(n) = first.parse() {
                s.max_sessions = n;
            }
        }
        "maxstartups" if !first.is_empty() => s.max_startups = first.to_string(),
        "persourcemaxstartups" => {
            s.per_source_max_startups = first.parse().ok();
        }
        _ => {}
    }
}

/// Parses sshd_config text as printed by the dump script (includes inlined), global settings
/// only: for each keyword the first value wins, `Match` blocks are skipped. Returns the
/// settings, the files read and the files that could not be read.
pub fn parse_config_dump(text: &str) -> (ServerSettings, Vec<String>, Vec<String>) {
    let mut s = ServerSettings::default();
    let (mut files, mut unreadable) = (Vec::new(), Vec::new());
    let mut seen: Vec<String> = Vec::new();
    // Inside a Match block, per file: sshd restores the outer state after an Include, so a
    // Match in an included file ends with it, while one before the Include covers it.
    let mut in_match = vec![false];
    for line in text.lines() {
        if let Some(mark) = line.strip_prefix(RS) {
            if let Some(f) = mark.strip_prefix("file ") {
                files.push(f.to_string());
                in_match.push(*in_match.last().unwrap_or(&false));
            } else if let Some(f) = mark.strip_prefix("unreadable ") {
                unreadable.push(f.to_string());
            } else if mark == "end-file" && in_match.len() > 1 {
                in_match.pop();
            }
            continue;
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (key, rest) = match t.find(|c: char| c.is_whitespace() || c == '=') {
            Some(i) => (
                &t[..i],
                t[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
            ),
            None => (t, ""),
        };
        let key = key.to_ascii_lowercase();
        if key == "match" {
            if let Some(top) = in_match.last_mut() {
                *top = !rest.trim().eq_ignore_ascii_case("all");
            }
            continue;
        }
        if in_match.last().copied().unwrap_or(false) || seen.contains(&key) {
            continue;
        }
        seen.push(key.clone());
        let args: Vec<&str> = rest.split_whitespace().collect();
        apply(&mut s, &key, &args);
    }
    (s, files, unreadable)
}

/// Whether idle sessions on this server need an open channel now and then to stay
/// (`UnusedConnectionTimeout`, OpenSSH 9.2+), from the listener's command line and the dump
/// script's output of its config. `Some(false)` only when every file was read and neither they
/// (`Match` blocks included: which of them apply to us is not evaluated here, so any counts)
/// nor a `-o` on the command line set it to anything but `none`; `None` when that cannot be
/// said (nothing read, a file unreadable).
pub fn needs_open_channel(cmdline: &str, dump: &str) -> Option<bool> {
    let sets = |key: &str, value: &str| {
        key.eq_ignore_ascii_case("unusedconnectiontimeout")
            && !matches!(value.to_ascii_lowercase().as_str(), "none" | "0" | "")
    };
    let on_cmdline = cmdline.split_whitespace().any(|w| {
        let (key, value) = w.split_once('=').unwrap_or((w, ""));
        sets(key.trim_start_matches("-o"), value)
    });
    if on_cmdline {
        return Some(true);
    }
    let (mut files, mut limit) = (0, false);
    for line in dump.lines() {
        if let Some(mark) = line.strip_prefix(RS) {
            if mark.starts_with("unreadable ") {
                return None;
            }
            files += usize::from(mark.starts_with("file "));
            continue;
        }
        let t = line.trim();
        let (key, rest) = match t.find(|c: char| c.is_whitespace() || c == '=') {
            Some(i) => (
                &t[..i],
                t[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
            ),
            None => (t, ""),
        };
        limit |= sets(key, rest.split_whitespace().next().unwrap_or(""));
    }
    (files > 0).then_some(limit)
}

/// The values of sshd keyword `keyword` (lowercase) as the listener's command line (`-o
/// Key=value`, `-oKey=value`: they win over the files) or else its config (the dump script's
/// output, `Match` blocks included: any of them may apply to us) set them, as written.
fn values_of(cmdline: &str, dump: &str, keyword: &str) -> Vec<String> {
    let mut words = cmdline.split_whitespace();
    let mut on_cmdline = Vec::new();
    while let Some(w) = words.next() {
        let option = match w {
            "-o" => words.next().unwrap_or(""),
            w => w.strip_prefix("-o").unwrap_or(""),
        };
        if let Some((key, v)) = option.split_once('=') {
            if key.eq_ignore_ascii_case(keyword) {
                on_cmdline.push(v.to_string());
            }
        }
    }
    if !on_cmdline.is_empty() {
        return on_cmdline;
    }
    dump.lines()
        .filter(|l| !l.starts_with(RS))
        .filter_map(|line| {
            let t = line.trim();
            let i = t.find(|c: char| c.is_whitespace() || c == '=')?;
            let (key, rest) = (
                &t[..i],
                t[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
            );
            key.eq_ignore_ascii_case(keyword).then(|| rest.to_string())
        })
        .collect()
}

/// The shortest `UnusedConnectionTimeout` the listener's command line (`-o`, which wins over
/// the files) or its config sets, from the same inputs as [`needs_open_channel`] (`Match`
/// blocks included: any of them may apply to us); `None` where none is set, or a value cannot
/// be read as sshd reads it (`3`, `30s`, `5m`).
pub fn unused_connection_timeout(cmdline: &str, dump: &str) -> Option<Duration> {
    let value = |v: &str| match v.to_ascii_lowercase().as_str() {
        "none" | "0" | "" => None,
        v => parse_time(v).ok().filter(|d| !d.is_zero()),
    };
    let values = values_of(cmdline, dump, "unusedconnectiontimeout");
    // On the command line the first `-o` wins, as sshd reads it.
    if cmdline.split_whitespace().any(|w| {
        w.trim_start_matches("-o")
            .to_ascii_lowercase()
            .starts_with("unusedconnectiontimeout=")
    }) {
        return values
            .first()
            .and_then(|v| value(v.split_whitespace().next().unwrap_or("")));
    }
    values
        .iter()
        .filter_map(|v| value(v.split_whitespace().next().unwrap_or("")))
        .min()
}

/// Whether [`unused_connection_timeout`] comes from a `Match` block: shorter than what the
/// config sets outside them, and not set on the command line. Which logins such a block
/// applies to is not evaluated here: the value may be another login's (stop 61 tester t98:
/// root's run said the server closes connections unused for 4 s, a `Match User` block's value
/// for another user, root's own being 9 s).
pub fn unused_connection_timeout_in_match(cmdline: &str, dump: &str) -> bool {
    let Some(shortest) = unused_connection_timeout(cmdline, dump) else {
        return false;
    };
    unused_connection_timeout(cmdline, "").is_none()
        && parse_config_dump(dump)
            .0
            .unused_connection_timeout
            .is_none_or(|global| shortest < global)
}

/// The shortest `ChannelTimeout` that closes a jump host's tunnels when no data crossed them
/// for that long: set for the `direct-tcpip` channels that `ProxyJump` opens (a pattern
/// matching that type, `*` included) or for all of a connection's channels together
/// (`global`), from the same inputs as [`needs_open_channel`] (`Match` blocks included);
/// `None` where none is set. As sshd_config(5) `ChannelTimeout`.
pub fn tunnel_channel_timeout(cmdline: &str, dump: &str) -> Option<Duration> {
    values_of(cmdline, dump, "channeltimeout")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|spec| {
            let (pattern, value) = spec.split_once('=')?;
            let pattern = pattern.to_ascii_lowercase();
            if pattern != "global" && !wildcard_match(&pattern, "direct-tcpip") {
                return None;
            }
            parse_time(value).ok().filter(|d| !d.is_zero())
        })
        .min()
}

/// The settings as (sshd keyword, value) rows, in the order `tether check` prints them.
pub fn settings_lines(s: &ServerSettings) -> Vec<(&'static str, String)> {
    let secs = |d: Duration| d.as_secs().to_string();
    vec![
        ("ClientAliveInterval", secs(s.client_alive_interval)),
        ("ClientAliveCountMax", s.client_alive_count_max.to_string()),
        (
            "UnusedConnectionTimeout",
            s.unused_connection_timeout
                .map_or_else(|| "none".into(), secs),
        ),
        (
            "ChannelTimeout",
            if s.channel_timeout.is_empty() {
                "none".into()
            } else {
                s.channel_timeout.join(" ")
            },
        ),
        ("MaxSessions", s.max_sessions.to_string()),
        ("MaxStartups", s.max_startups.clone()),
        (
            "PerSourceMaxStartups",
            s.per_source_max_startups
                .map_or_else(|| "none".into(), |n| n.to_string()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_t_output() {
        let s = parse_sshd_t(
            "port 22\nclientaliveinterval 1\nclientalivecountmax 2\nunusedconnectiontimeout 3\n\
             maxsessions 10\nmaxstartups 10:30:100\npersourcemaxstartups none\n\
             channeltimeout session:*=3s agent-connection=1m\n",
        );
        assert_eq!(s.client_alive_interval, Duration::from_secs(1));
        assert_eq!(s.client_alive_count_max, 2);
        assert_eq!(s.unused_connection_timeout, Some(Duration::from_secs(3)));
        assert_eq!(s.channel_timeout, ["session:*=3s", "agent-connection=1m"]);
        assert_eq!(s.per_source_max_startups, None);
        let d = parse_sshd_t("unusedconnectiontimeout none\n");
        assert_eq!(d, ServerSettings::default());
    }

    #[test]
    fn open_channel_needed_wherever_unused_connection_timeout_is_set() {
        let file = |body: &str| format!("\u{1e}file /etc/ssh/sshd_config\n{body}\u{1e}end-file\n");
        let plain = "/usr/sbin/sshd -D -f /etc/ssh/sshd_config [listener] 0 of 10-100 startups";
        for (cmdline, dump, want) in [
            (plain, file("ClientAliveInterval 1\n"), Some(false)),
            (plain, file("UnusedConnectionTimeout none\n"), Some(false)),
            (plain, file("# UnusedConnectionTimeout 3\n"), Some(false)),
            (plain, file("UnusedConnectionTimeout 3\n"), Some(true)),
            (plain, file("unusedconnectiontimeout=5m\n"), Some(true)),
            (plain, file("  UNUSEDCONNECTIONTIMEOUT\t30s\n"), Some(true)),
            (
                plain,
                file("Match User deploy\n  UnusedConnectionTimeout 60\n"),
                Some(true),
            ),
            ("sshd -o UnusedConnectionTimeout=3 -D", file(""), Some(true)),
            ("sshd -oUnusedConnectionTimeout=10 -D", file(""), Some(true)),
            (
                "sshd -o UnusedConnectionTimeout=none",
                file(""),
                Some(false),
            ),
            (
                plain,
                "\u{1e}unreadable /etc/ssh/sshd_config\n".to_string(),
                None,
            ),
            (
                plain,
                format!("{}\u{1e}unreadable /etc/ssh/x.conf\n", file("")),
                None,
            ),
            (plain, String::new(), None),
        ] {
            assert_eq!(
                needs_open_channel(cmdline, &dump),
                want,
                "{cmdline} / {dump:?}"
            );
        }
    }

    #[test]
    fn the_shortest_unused_connection_timeout_and_the_command_line_first() {
        let file = |body: &str| format!("\u{1e}file /etc/ssh/sshd_config\n{body}\u{1e}end-file\n");
        let plain = "/usr/sbin/sshd -D -f /etc/ssh/sshd_config [listener] 0 of 10-100 startups";
        let s = Duration::from_secs;
        for (cmdline, dump, want) in [
            (plain, file("UnusedConnectionTimeout 3\n"), Some(s(3))),
            (plain, file("unusedconnectiontimeout=5m\n"), Some(s(300))),
            (
                plain,
                file(
                    "UnusedConnectionTimeout 1m\nMatch User deploy\n  UnusedConnectionTimeout 20\n",
                ),
                Some(s(20)),
            ),
            (
                plain,
                file("# UnusedConnectionTimeout 3\nClientAliveInterval 1\n"),
                None,
            ),
            (plain, file("UnusedConnectionTimeout none\n"), None),
            (
                "sshd -o UnusedConnectionTimeout=7 -D",
                file("UnusedConnectionTimeout 3\n"),
                Some(s(7)),
            ),
            (
                "sshd -oUnusedConnectionTimeout=none -D",
                file("UnusedConnectionTimeout 3\n"),
                None,
            ),
        ] {
            assert_eq!(
                unused_connection_timeout(cmdline, &dump),
                want,
                "{cmdline} / {dump:?}"
            );
        }
    }

    #[test]
    fn the_pid_file_of_sshd_t_and_of_a_dump() {
        assert_eq!(
            pid_file("port 22\npidfile /run/sshd.pid\n").as_deref(),
            Some("/run/sshd.pid")
        );
        assert_eq!(
            pid_file("# x\n  PIDFile=/a\nPidFile /b\n").as_deref(),
            Some("/a")
        );
        assert_eq!(pid_file("pidfilex /c\n"), None);
    }

    #[test]
    fn the_shortest_channel_timeout_that_closes_tunnels() {
        let file = |body: &str| format!("\u{1e}file /etc/ssh/sshd_config\n{body}\u{1e}end-file\n");
        let plain = "/usr/sbin/sshd -D [listener] 0 of 10-100 startups";
        let s = Duration::from_secs;
        for (cmdline, dump, want) in [
            (plain, file("ChannelTimeout direct-tcpip=3s\n"), Some(s(3))),
            (plain, file("ChannelTimeout session:*=1s *=10\n"), Some(s(10))),
            (plain, file("channeltimeout=direct-*=1m\n"), Some(s(60))),
            (plain, file("ChannelTimeout global=5m direct-tcpip=2m\n"), Some(s(120))),
            (plain, file("ChannelTimeout global=30\n"), Some(s(30))),
            (plain, file("ChannelTimeout session=1s session:*=1s\n"), None),
            (plain, file("ChannelTimeout direct-streamlocal@openssh.com=1s\n"), None),
            (plain, file("ChannelTimeout none\n"), None),
            (plain, file("ChannelTimeout direct-tcpip=0\n"), None),
            (
                plain,
                file("ChannelTimeout direct-tcpip=1h\nMatch User deploy\n  ChannelTimeout direct-tcpip=4\n"),
                Some(s(4)),
            ),
            (
                "sshd -o ChannelTimeout=direct-tcpip=9 -D",
                file("ChannelTimeout direct-tcpip=3\n"),
                Some(s(9)),
            ),
            (plain, file("UnusedConnectionTimeout 3\n"), None),
        ] {
            assert_eq!(
                tunnel_channel_timeout(cmdline, &dump),
                want,
                "{cmdline} / {dump:?}"
            );
        }
    }

    #[test]
    fn config_files_first_value_wins_and_match_is_skipped() {
        let text = "\u{1e}file /etc/ssh/sshd_config\n# comment\n\
                    \u{1e}file /etc/ssh/sshd_config.d/a.conf\nClientAliveInterval=30\n\
                    Match User bob\n  UnusedConnectionTimeout 5\n\u{1e}end-file\n\
                    ClientAliveInterval 1\nclientalivecountmax 1\n  ChannelTimeout session:*=1m\n\
                    Match Address 10.0.0.0/8\n  MaxSessions 1\nMatch all\nMaxSessions 4\n\
                    \u{1e}unreadable /etc/ssh/secret.conf\n";
        let (s, files, unreadable) = parse_config_dump(text);
        assert_eq!(s.client_alive_interval, Duration::from_secs(30));
        assert_eq!(s.client_alive_count_max, 1);
        assert_eq!(s.unused_connection_timeout, None, "inside Match");
        assert_eq!(s.channel_timeout, ["session:*=1m"]);
        assert_eq!(s.max_sessions, 4);
        assert_eq!(files.len(), 2);
        assert_eq!(unreadable, ["/etc/ssh/secret.conf"]);
    }
}
