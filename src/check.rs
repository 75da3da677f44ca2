//! `tether check`: connects to every selected host and reports the server settings that can end
//! an idle SSH session (or a silent command), compared with tether's heartbeat.
//!
//! The settings are read from the sshd that serves the session, which is not necessarily the
//! one configured in `/etc/ssh/sshd_config`: the remote side walks up from its shell's parent
//! through `/proc` to the sshd listener and takes the `-f` argument from its command line.
//! As root it runs `sshd -T -f CONFIG -C user=..,addr=..` with the same sshd binary (so `Match`
//! blocks are evaluated for this very connection); otherwise (or with `--parse-config`, or if
//! `sshd -T` fails) it reads the config file and its `Include`s, and tether parses them (global
//! settings only: `Match` blocks are not evaluated then).
//!
//! Exit status: 0 when nothing is at risk, 1 when a warning applies to some host (or its
//! settings could not be read), 3 when a host could not be reached, 2 for usage errors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CheckArgs, GlobalArgs};
use crate::command::quote;
use crate::error::Error;
use crate::fleet;
use crate::host::HostTarget;
use crate::pool::{FanOut, HostResult, Pool, DEFAULT_MAX_HANDSHAKES};
use crate::report::{format_duration, json, Format, Reporter};
use crate::runner;
use crate::ssh::config::{parse_seconds, wildcard_match};
use crate::ssh::worker::{Event, EventKind, WorkerSettings};

/// Marks tether's own lines in the remote scripts' output.
const RS: char = '\u{1e}';

/// Finds the sshd serving this session and prints what the next step needs.
const DISCOVER: &str = r#"RS=$(printf '\036')
p=$PPID; lpid=; spid=; n=0
while [ -n "$p" ] && [ "$p" -gt 1 ] 2>/dev/null && [ $n -lt 64 ]; do
  c=$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)
  case $c in *'[listener]'*) lpid=$p; break ;; esac
  case $(cat /proc/$p/comm 2>/dev/null) in sshd|sshd-session) spid=$p ;; esac
  p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status 2>/dev/null)
  n=$((n+1))
done
if [ -n "$lpid" ]; then printf '%slistener %s\n' "$RS" "$lpid"; else lpid=$spid; fi
if [ -n "$lpid" ]; then
  printf '%spid %s\n' "$RS" "$lpid"
  printf '%scmdline %s\n' "$RS" "$(tr '\0' ' ' < /proc/$lpid/cmdline 2>/dev/null)"
  printf '%sexe %s\n' "$RS" "$(readlink /proc/$lpid/exe 2>/dev/null)"
fi
printf '%suid %s\n' "$RS" "$(id -u)"
printf '%suser %s\n' "$RS" "$(id -un)"
printf '%sconnection %s\n' "$RS" "$SSH_CONNECTION"
"#;

/// Prints a config file with its `Include`s inlined where they appear, as sshd reads them.
const DUMP: &str = r#"RS=$(printf '\036')
dump() {
  [ "$2" -le 16 ] || return 0
  if [ ! -r "$1" ]; then printf '%sunreadable %s\n' "$RS" "$1"; return 0; fi
  printf '%sfile %s\n' "$RS" "$1"
  while IFS= read -r l || [ -n "$l" ]; do
    t=${l#"${l%%[![:space:]]*}"}
    case $t in
      [Ii][Nn][Cc][Ll][Uu][Dd][Ee][[:space:]=]*)
        args=${t#???????}
        args=${args#"${args%%[![:space:]=]*}"}
        for pat in $args; do
          case $pat in /*) ;; *) pat=/etc/ssh/$pat ;; esac
          for f in $pat; do
            if [ -e "$f" ]; then ( dump "$f" $(($2 + 1)) ); fi
          done
        done ;;
      *) printf '%s\n' "$l" ;;
    esac
  done < "$1"
  printf '%send-file\n' "$RS"
}
"#;

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
        }
    }
}

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

/// A duration as `--keepalive` accepts it.
fn flag_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
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

/// Whether a `ChannelTimeout` type pattern covers the channels tether's commands use.
fn covers_commands(pattern: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    p == "global" || p == "session" || wildcard_match(&p, "session:command")
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
                flag_duration(suggested_keepalive(u))
            ),
        ),
        // The heartbeat must open its channel with a margin for the round trip and the shell.
        (Some(u), Some(h)) if h + Duration::from_secs(1) > u => (
            Level::Warning,
            format!(
                "sshd closes a connection without an open channel after {}, and the heartbeat \
                 ({}) does not come at least 1 s earlier: idle sessions will be dropped (tether \
                 then reconnects and shortens its heartbeat, one extra login per host). Use \
                 --keepalive {}",
                format_duration(u),
                format_duration(h),
                flag_duration(suggested_keepalive(u))
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

    // ChannelTimeout: closes a channel without traffic; a command's channel included.
    let mut cut = Vec::new();
    for spec in &s.channel_timeout {
        let Some((pattern, value)) = spec.split_once('=') else {
            continue;
        };
        let limit = match parse_seconds(value) {
            Some(d) if !d.is_zero() => d,
            _ => continue,
        };
        if covers_commands(pattern) {
            cut.push((spec.clone(), limit));
        }
    }
    let finding = match cut.iter().min_by_key(|(_, d)| *d) {
        None if s.channel_timeout.is_empty() => (Level::Ok, "not set".to_string()),
        None => (Level::Ok, "does not apply to command channels".to_string()),
        Some((spec, limit)) => (
            Level::Warning,
            format!(
                "{spec}: a command that prints nothing for {} has its channel closed by sshd; \
                 tether reports it as failed with no exit status, and it may still be running. \
                 The heartbeat cannot prevent this (keepalives are not channel traffic; \
                 --keepalive does not help): make long commands print progress, or raise \
                 ChannelTimeout on the server",
                format_duration(*limit)
            ),
        ),
    };
    out.push(Finding {
        level: finding.0,
        setting: "ChannelTimeout",
        message: finding.1,
    });

    // MaxSessions: tether uses one channel at a time per session.
    out.push(if s.max_sessions == 0 {
        Finding {
            level: Level::Warning,
            setting: "MaxSessions",
            message: "MaxSessions 0 allows no session channels: no command can run".into(),
        }
    } else {
        Finding {
            level: Level::Ok,
            setting: "MaxSessions",
            message: format!(
                "tether uses one channel at a time (a command or a heartbeat) of the {} \
                 allowed; a command abandoned by --timeout keeps its channel until it ends",
                s.max_sessions
            ),
        }
    });

    // MaxStartups / PerSourceMaxStartups: tether makes at most one handshake per host at a
    // time and DEFAULT_MAX_HANDSHAKES at once in total.
    let burst = same_server.clamp(1, DEFAULT_MAX_HANDSHAKES);
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
            if let Some(d) = parse_seconds(first) {
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
                v => parse_seconds(v).filter(|d| !d.is_zero()),
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

/// What the discovery script found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// pid of the sshd listener (or of the topmost sshd found).
    pub pid: Option<u32>,
    /// Whether `pid` is a listener (`[listener]` in its title).
    pub listener: bool,
    /// Its command line.
    pub cmdline: String,
    /// Its executable.
    pub exe: Option<String>,
    /// Remote uid.
    pub uid: Option<u32>,
    /// Remote user name.
    pub user: String,
    /// `$SSH_CONNECTION`: client address, client port, server address, server port.
    pub connection: Vec<String>,
}

/// Parses the discovery script's output.
pub fn parse_discovery(text: &str) -> Discovery {
    let mut d = Discovery::default();
    for line in text.lines() {
        let Some(mark) = line.strip_prefix(RS) else {
            continue;
        };
        let (key, value) = mark.split_once(' ').unwrap_or((mark, ""));
        let value = value.trim();
        match key {
            "listener" => d.listener = true,
            "pid" => d.pid = value.parse().ok(),
            "cmdline" => d.cmdline = value.to_string(),
            "exe" if !value.is_empty() => {
                d.exe = Some(value.trim_end_matches(" (deleted)").to_string())
            }
            "uid" => d.uid = value.parse().ok(),
            "user" => d.user = value.to_string(),
            "connection" => d.connection = value.split_whitespace().map(String::from).collect(),
            _ => {}
        }
    }
    d
}

/// The `-f` argument of an sshd command line (`-f X`, `-fX`, `-Df X`); sshd rewrites its title
/// to `sshd: /usr/sbin/sshd -D -f X [listener] ...`, so words are separated by spaces.
pub fn config_from_cmdline(cmdline: &str) -> Option<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        let Some(flags) = w.strip_prefix('-') else {
            continue;
        };
        if flags.starts_with('-') || flags.is_empty() {
            continue;
        }
        if let Some(pos) = flags.find('f') {
            // Only flags without arguments may come before `f` in one word.
            if !flags[..pos].chars().all(|c| "46DdeiqtTG".contains(c)) {
                continue;
            }
            let rest = &flags[pos + 1..];
            if !rest.is_empty() {
                return Some(rest.to_string());
            }
            return words.get(i + 1).map(|s| s.to_string());
        }
    }
    None
}

/// Where the settings of one host came from and what they are.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// Host name.
    pub host: String,
    /// How the settings were read (`sshd -T -f ...` or the files parsed).
    pub source: String,
    /// Notes on the way (listener not found, sshd -T failed ...).
    pub notes: Vec<String>,
    /// The settings, if they could be read.
    pub settings: Option<ServerSettings>,
    /// The conclusions.
    pub findings: Vec<Finding>,
    /// The effective heartbeat for this host.
    pub heartbeat: Option<Duration>,
    /// Unreachable or failed (the error text).
    pub error: Option<String>,
    /// The error was a connection failure.
    pub unreachable: bool,
}

impl HostReport {
    /// Whether a warning applies (or the settings are unknown).
    pub fn at_risk(&self) -> bool {
        self.error.is_some() || self.findings.iter().any(|f| f.level == Level::Warning)
    }
}

/// `tether check` with the hosts of `--hosts` and the heartbeat of the options.
pub fn check(
    global: &GlobalArgs,
    args: &CheckArgs,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let selection = runner::select(global, args.stage.as_deref(), interrupted.clone())?;
    check_hosts(
        global,
        args,
        &selection.hosts,
        fleet::heartbeat_interval(global, selection.keepalive),
        interrupted,
    )
}

/// `tether check` on `hosts` with heartbeat `heartbeat` (for callers that select hosts and the
/// interval from a recipe).
pub fn check_hosts(
    global: &GlobalArgs,
    args: &CheckArgs,
    hosts: &[HostTarget],
    heartbeat: Option<Duration>,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    // Targets keep a recipe's `via` and `forward_agent`; only exact repeats are dropped.
    let mut targets: Vec<HostTarget> = Vec::new();
    for t in hosts {
        if !targets.contains(t) {
            targets.push(t.clone());
        }
    }
    let ssh_config = fleet::load_ssh_config(global)?;
    // Effective heartbeat (ServerAliveInterval shortens it, as in the worker) and the
    // address each host resolves to, to find hosts that are the same sshd.
    let mut per_host: BTreeMap<String, (Option<Duration>, (String, u16))> = BTreeMap::new();
    for t in &targets {
        // A host whose config is refused is reported by the pool, like an unreachable one.
        let Ok(cfg) = ssh_config.resolve_target(t, global.jump.as_deref()) else {
            continue;
        };
        let hb = match (heartbeat, cfg.server_alive_interval) {
            (Some(h), Some(s)) => Some(h.min(s)),
            (h, _) => h,
        };
        per_host.insert(t.name.clone(), (hb, (cfg.hostname.clone(), cfg.port)));
    }
    if global.dry_run {
        for t in &targets {
            crate::outln!(
                "{} ~ would connect and read the sshd settings (sshd -T as root, else the \
                 config files)",
                t.name
            );
        }
        return Ok(());
    }

    let reporter = Reporter::start(global.format, global.verbose);
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    reporter.set_hosts(&names);
    // The check's own commands and their output are not shown; connection events are.
    let (tx, rx) = mpsc::channel::<Event>();
    let forward = reporter.sender();
    let forwarder = std::thread::spawn(move || {
        for event in rx {
            let ours = matches!(
                event.kind,
                EventKind::Started { .. } | EventKind::Output { .. } | EventKind::Finished { .. }
            );
            if !ours && forward.send(event).is_err() {
                break;
            }
        }
    });
    let settings = WorkerSettings {
        heartbeat,
        ..WorkerSettings::default()
    };
    let pool = Pool::new(
        ssh_config,
        settings,
        DEFAULT_MAX_HANDSHAKES,
        tx,
        interrupted.clone(),
    )
    .with_jump(global.jump.clone());
    pool.ensure(&targets)
        .map_err(|e| Error::Usage(format!("cannot start host threads: {e}")))?;
    let how = FanOut {
        parallel: global.parallel.map(|n| n as usize),
        timeout: Some(Duration::from_secs(30)),
        ..FanOut::default()
    };
    let reports = gather(&pool, &names, &per_host, args, &how);
    drop(pool);
    let _ = forwarder.join();
    reporter.barrier();
    print_reports(&reporter, global.format, &reports);
    if interrupted.load(Ordering::SeqCst) {
        return Err(Error::Interrupted);
    }
    let unreachable = reports.iter().filter(|r| r.unreachable).count();
    let at_risk = reports.iter().filter(|r| r.at_risk()).count();
    if at_risk == 0 {
        return Ok(());
    }
    Err(Error::TaskFailed {
        message: if unreachable > 0 {
            format!(
                "{unreachable} of {} host{} could not be reached",
                reports.len(),
                if reports.len() == 1 { "" } else { "s" }
            )
        } else {
            format!(
                "{at_risk} of {} host{} at risk: see the warnings above",
                reports.len(),
                if reports.len() == 1 { "" } else { "s" }
            )
        },
        unreachable: unreachable > 0,
    })
}

fn output_text(r: &HostResult) -> Result<(String, String), (String, bool)> {
    match &r.result {
        Some(Ok(out)) if out.status.success() => Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )),
        Some(Ok(out)) => Err((
            format!(
                "{}: {}",
                out.status,
                crate::report::stderr_tail(&out.stderr, 3).join(" / ")
            ),
            false,
        )),
        Some(Err(e)) => Err((e.to_string(), e.is_connect_failure())),
        None => Err(("not run (interrupted)".into(), false)),
    }
}

/// Runs the remote steps on every host and builds the reports.
fn gather(
    pool: &Pool,
    names: &[String],
    per_host: &BTreeMap<String, (Option<Duration>, (String, u16))>,
    args: &CheckArgs,
    how: &FanOut,
) -> Vec<HostReport> {
    let mut reports: Vec<HostReport> = names
        .iter()
        .map(|n| HostReport {
            host: n.clone(),
            source: String::new(),
            notes: Vec::new(),
            settings: None,
            findings: Vec::new(),
            heartbeat: per_host.get(n).and_then(|p| p.0),
            error: None,
            unreachable: false,
        })
        .collect();

    // 1. Which sshd serves us, with which config, as whom.
    let step1: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), DISCOVER.to_string()))
        .collect();
    let mut found: BTreeMap<String, (Discovery, String)> = BTreeMap::new();
    for (r, report) in pool.fan_out(&step1, how).iter().zip(reports.iter_mut()) {
        match output_text(r) {
            Ok((out, _)) => {
                let d = parse_discovery(&out);
                let config = config_from_cmdline(&d.cmdline);
                match (&d.pid, d.listener, &config) {
                    (None, _, _) => report.notes.push(
                        "no sshd found among the session's parent processes (no /proc?); \
                         assuming /etc/ssh/sshd_config"
                            .into(),
                    ),
                    (Some(pid), false, _) => report.notes.push(format!(
                        "no sshd listener found; using the topmost sshd (pid {pid})"
                    )),
                    _ => {}
                }
                let config = config.unwrap_or_else(|| "/etc/ssh/sshd_config".into());
                found.insert(r.host.clone(), (d, config));
            }
            Err((e, unreachable)) => {
                report.error = Some(e);
                report.unreachable = unreachable;
            }
        }
    }

    // 2. As root: `sshd -T` for this connection.
    let mut step2 = Vec::new();
    for (host, (d, config)) in &found {
        if args.parse_config || d.uid != Some(0) {
            continue;
        }
        let exe = d.exe.clone().unwrap_or_else(|| "/usr/sbin/sshd".into());
        let mut spec = vec![format!("user={}", d.user)];
        if let [caddr, _, saddr, sport] = &d.connection[..] {
            spec.push(format!("addr={caddr}"));
            spec.push(format!("host={caddr}"));
            spec.push(format!("laddr={saddr}"));
            spec.push(format!("lport={sport}"));
        }
        let cmd = format!(
            "{x} -T -f {c} -C {s} 2>/dev/null || {x} -T -f {c}",
            x = quote(&exe),
            c = quote(config),
            s = quote(&spec.join(","))
        );
        step2.push((host.clone(), cmd));
    }
    let mut need_files: Vec<(String, String)> = Vec::new();
    let mut done: BTreeMap<String, ()> = BTreeMap::new();
    for r in pool.fan_out(&step2, how) {
        let Some(report) = reports.iter_mut().find(|x| x.host == r.host) else {
            continue;
        };
        let (d, config) = &found[&r.host];
        match output_text(&r) {
            Ok((out, _)) if out.contains("clientaliveinterval") => {
                let pid = d.pid.map_or(String::new(), |p| format!(", pid {p}"));
                report.source = format!(
                    "{} -T -f {config} (the serving sshd's config{pid}, evaluated for this \
                     connection)",
                    d.exe.as_deref().unwrap_or("sshd")
                );
                report.settings = Some(parse_sshd_t(&out));
                done.insert(r.host.clone(), ());
            }
            Ok(_) => report
                .notes
                .push("sshd -T printed no settings; reading the config files".into()),
            Err((e, _)) => report
                .notes
                .push(format!("sshd -T failed ({e}); reading the config files")),
        }
    }
    for (host, (d, config)) in &found {
        if done.contains_key(host) {
            continue;
        }
        if d.uid != Some(0) && !args.parse_config {
            if let Some(report) = reports.iter_mut().find(|x| &x.host == host) {
                report
                    .notes
                    .push("not root, so no sshd -T; reading the config files".into());
            }
        }
        need_files.push((host.clone(), format!("{DUMP}dump {} 0", quote(config))));
    }

    // 3. Otherwise: the config files, parsed here.
    for r in pool.fan_out(&need_files, how) {
        let Some(report) = reports.iter_mut().find(|x| x.host == r.host) else {
            continue;
        };
        match output_text(&r) {
            Ok((out, _)) => {
                let (settings, files, unreadable) = parse_config_dump(&out);
                if files.is_empty() {
                    report.error = Some(format!(
                        "cannot read the sshd config {}",
                        unreadable.join(", ")
                    ));
                    continue;
                }
                for f in &unreadable {
                    report.notes.push(format!("cannot read {f}"));
                }
                report.source = format!(
                    "parsed {} (global settings; Match blocks not evaluated)",
                    files.join(", ")
                );
                report.settings = Some(settings);
            }
            Err((e, unreachable)) => {
                report.error = Some(e);
                report.unreachable = unreachable;
            }
        }
    }

    for report in &mut reports {
        if let Some(s) = &report.settings {
            let address = per_host.get(&report.host).map(|p| &p.1);
            let same = per_host.values().filter(|p| Some(&p.1) == address).count();
            report.findings = assess(s, report.heartbeat, same);
        }
    }
    reports
}

fn level_word(l: Level) -> &'static str {
    match l {
        Level::Ok => "ok",
        Level::Warning => "warning",
    }
}

fn settings_lines(s: &ServerSettings) -> Vec<(&'static str, String)> {
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

fn print_reports(reporter: &Reporter, format: Format, reports: &[HostReport]) {
    if format == Format::Json {
        for r in reports {
            let settings = r.settings.as_ref().map_or("null".to_string(), |s| {
                let fields: Vec<String> = settings_lines(s)
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json(k), json(v)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            });
            let findings: Vec<String> = r
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "{{\"level\":\"{}\",\"setting\":{},\"message\":{}}}",
                        level_word(f.level),
                        json(f.setting),
                        json(&f.message)
                    )
                })
                .collect();
            let notes: Vec<String> = r.notes.iter().map(|n| json(n)).collect();
            crate::outln!(
                "{{\"event\":\"check\",\"host\":{},\"at_risk\":{},\"heartbeat_ms\":{},\"source\":{},\"settings\":{settings},\"findings\":[{}],\"notes\":[{}],\"error\":{}}}",
                json(&r.host),
                r.at_risk(),
                r.heartbeat.map_or("null".into(), |h| h.as_millis().to_string()),
                json(&r.source),
                findings.join(","),
                notes.join(","),
                r.error.as_deref().map_or("null".into(), json)
            );
        }
        return;
    }
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!("\n{}\n", r.host));
        if let Some(e) = &r.error {
            out.push_str(&format!("  error: {e}\n"));
            continue;
        }
        out.push_str(&format!("  read with {}\n", r.source));
        for n in &r.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out.push_str(&format!(
            "  heartbeat: {}\n",
            r.heartbeat
                .map_or("off (--no-keepalive)".into(), format_duration)
        ));
        if let Some(s) = &r.settings {
            for (k, v) in settings_lines(s) {
                out.push_str(&format!("  {k:<24} {v}\n"));
            }
        }
        for f in &r.findings {
            let word = match f.level {
                Level::Ok => "ok     ",
                Level::Warning => "WARNING",
            };
            out.push_str(&format!("  {word} {}: {}\n", f.setting, f.message));
        }
    }
    let unreachable = reports.iter().filter(|r| r.unreachable).count();
    let at_risk = reports.iter().filter(|r| r.at_risk()).count() - unreachable;
    out.push_str(&format!(
        "\ncheck: {} host{}, {at_risk} at risk, {unreachable} unreachable\n",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" }
    ));
    reporter.line(out.trim_end_matches('\n'));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(f: &'a [Finding], setting: &str) -> &'a Finding {
        f.iter().find(|x| x.setting == setting).unwrap()
    }

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

    #[test]
    fn config_path_from_the_listener_title() {
        let t = "sshd: /usr/sbin/sshd -D -e -f /tmp/lab/hosts/h/sshd_config [listener] 0 of 10-100 startups";
        assert_eq!(
            config_from_cmdline(t).as_deref(),
            Some("/tmp/lab/hosts/h/sshd_config")
        );
        assert_eq!(
            config_from_cmdline("/usr/sbin/sshd -Df/etc/x").as_deref(),
            Some("/etc/x")
        );
        assert_eq!(
            config_from_cmdline("sshd -p 22 -Df /etc/y").as_deref(),
            Some("/etc/y")
        );
        assert_eq!(
            config_from_cmdline("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"),
            None
        );
        assert_eq!(config_from_cmdline("sshd -o f=1"), None);
    }

    #[test]
    fn discovery_output() {
        let d = parse_discovery(
            "\u{1e}listener 12\n\u{1e}pid 12\n\u{1e}cmdline sshd: /usr/sbin/sshd -D \n\
             \u{1e}exe /usr/sbin/sshd (deleted)\n\u{1e}uid 0\n\u{1e}user root\n\
             \u{1e}connection 10.0.0.1 5555 10.0.0.2 22\n",
        );
        assert_eq!(d.pid, Some(12));
        assert!(d.listener);
        assert_eq!(d.exe.as_deref(), Some("/usr/sbin/sshd"));
        assert_eq!(d.uid, Some(0));
        assert_eq!(d.connection.len(), 4);
    }

    #[test]
    fn unused_connection_timeout_needs_a_shorter_heartbeat() {
        let s = ServerSettings {
            unused_connection_timeout: Some(Duration::from_secs(3)),
            ..ServerSettings::default()
        };
        let f = assess(&s, Some(Duration::from_secs(15)), 1);
        let u = find(&f, "UnusedConnectionTimeout");
        assert_eq!(u.level, Level::Warning);
        assert!(u.message.contains("--keepalive 1s"), "{}", u.message);
        let f = assess(&s, Some(Duration::from_secs(1)), 1);
        assert!(f.iter().all(|x| x.level == Level::Ok), "{f:?}");
        let f = assess(&s, Some(Duration::from_millis(2500)), 1);
        assert_eq!(find(&f, "UnusedConnectionTimeout").level, Level::Warning);
        let f = assess(&s, None, 1);
        assert_eq!(find(&f, "UnusedConnectionTimeout").level, Level::Warning);
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

    #[test]
    fn channel_timeout_on_commands_is_a_warning_keepalive_cannot_fix() {
        for (spec, level) in [
            ("session:*=3s", Level::Warning),
            ("session:command=1m", Level::Warning),
            ("global=10m", Level::Warning),
            ("agent-connection=1m", Level::Ok),
            ("session:*=0", Level::Ok),
        ] {
            let s = ServerSettings {
                channel_timeout: vec![spec.into()],
                ..ServerSettings::default()
            };
            let f = assess(&s, Some(Duration::from_millis(500)), 1);
            let c = find(&f, "ChannelTimeout");
            assert_eq!(c.level, level, "{spec}: {}", c.message);
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
        assert_eq!(flag_duration(Duration::from_millis(500)), "500ms");
    }
}
