//! `tether check`: connects to every selected host and reports the server settings that can end
//! an idle SSH session (or a silent command), compared with tether's heartbeat.
//!
//! The settings are read from the sshd that serves the session, which is not necessarily the
//! one configured in `/etc/ssh/sshd_config`: the remote side walks up from its shell's parent
//! through `/proc` to the sshd listener and takes the `-f` argument from its command line
//! ([`crate::sshd::probe`]). As root it runs `sshd -T -f CONFIG -C user=..,addr=..` with the same sshd
//! binary (so `Match` blocks are evaluated for this very connection); otherwise (or with
//! `--parse-config`, or if `sshd -T` fails) it reads the config file and its `Include`s, and
//! tether parses them ([`crate::sshd::settings`]; global settings only: `Match` blocks are not evaluated then).
//! [`rules`] says what the settings mean for the heartbeat.
//!
//! Exit status: 0 when nothing is at risk, 1 when a warning applies to some host (or its
//! settings could not be read), 3 when a host could not be reached, 2 for usage errors.

mod host_report;
mod render;
pub mod rules;

use host_report::categories;
pub use host_report::HostReport;
use render::{record, summary};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sshd::probe::{
    config_from_cmdline, discover, dump, newer, parse_discovery, parse_newer, parse_version, Newer,
};
use crate::sshd::settings::{parse_config_dump, parse_sshd_t, pid_file};
use rules::{assess, Finding, Level};

use crate::command::quote;
use crate::dispatch::Spread;
use crate::duration::format as format_duration;
use crate::error::Error;
use crate::event::EventKind;
use crate::failure::{Failure, Kind};
use crate::fleet::{self, Fleet};
use crate::host_text::HostText;
use crate::pool::{FanOut, HostResult};
use crate::report::Reporter;
use crate::runner;
use crate::settings::Settings;
use crate::ssh::exec::Echo;
use crate::ssh::policy::{self, WorkerSettings};
use crate::ssh::SshError;
use crate::stderr_tail::stderr_tail;

/// `tether check`'s own options.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read the sshd config files instead of running `sshd -T` (which needs root).
    pub parse_config: bool,
    /// With a recipe: check this stage's servers.
    pub stage: Option<String>,
}

/// `tether check` with the hosts of `--hosts` (or the recipe's) and the heartbeat of the
/// options.
pub fn check(
    settings: &Settings,
    args: &CheckOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let reporter = Reporter::start(settings);
    let selection = runner::select(
        settings,
        args.stage.as_deref(),
        interrupted.clone(),
        reporter.sink(),
    )?;
    let targets = selection.targets(settings)?;
    runner::empty_shard(
        settings,
        targets.len(),
        selection.before_shard,
        &reporter.sink(),
    );
    let heartbeat = fleet::heartbeat(settings, selection.keepalive);
    let ssh_config = selection.ssh_config;
    // Effective heartbeat (ServerAliveInterval shortens it, as in the worker) and the
    // address each host resolves to, to find hosts that are the same sshd.
    let mut per_host: BTreeMap<String, PerHost> = BTreeMap::new();
    for t in &targets {
        // A host whose config is refused is reported by the pool, like an unreachable one.
        let Ok(cfg) = ssh_config.resolve_target(t, settings.jump.as_deref()) else {
            continue;
        };
        let sai = cfg.server_alive_interval;
        let hb = policy::first_interval(heartbeat.every, sai);
        let keepalive = policy::keepalive_interval(
            hb,
            WorkerSettings::with_heartbeat(heartbeat).keepalive_heartbeat,
            sai,
        );
        per_host.insert(
            t.name.clone(),
            PerHost {
                heartbeat: hb,
                keepalive,
                address: (cfg.hostname.clone(), cfg.port),
            },
        );
    }
    if settings.dry_run {
        let sink = reporter.sink();
        sink.emit(&Arc::from(""), fleet::hosts_event(&targets));
        // As the check would: a host whose ssh config or route it refuses is read nowhere,
        // and fails the check (exit 2).
        let refused =
            fleet::config_refusals(&ssh_config, &targets, settings.jump.as_deref(), &sink);
        for t in targets.iter().filter(|t| !refused.contains_key(&t.name)) {
            sink.emit(
                &Arc::from(t.name.as_str()),
                EventKind::Planned {
                    command: "read the sshd settings (sshd -T as root, else the config files)"
                        .into(),
                },
            );
        }
        reporter.barrier();
        // The check's own words for them (stop 63 tester t105: `2 of 5 hosts failed`, where
        // the check says `2 of 5 hosts cannot be tried: a configuration error (bad1,vb1)`).
        let reports: Vec<HostReport> = targets
            .iter()
            .map(|t| {
                let mut report = HostReport::new(&t.name, None);
                if let Some(e) = refused.get(&t.name) {
                    report.error = Some(e.said());
                    report.error_kind = Some(e.kind());
                }
                report
            })
            .collect();
        return verdict(&reports, settings);
    }
    let fleet = Fleet::new(
        settings,
        ssh_config.clone(),
        heartbeat,
        interrupted,
        reporter.sink(),
    );
    fleet.connect(&targets);
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    // The check's own commands and their output are not shown; connection events are.
    let how = FanOut {
        spread: Spread {
            limit: settings.parallel,
            ..Spread::default()
        },
        timeout: Some(Duration::from_secs(30)),
        echo: Echo::Nothing,
        ..FanOut::default()
    };
    let reports = gather(&fleet, &names, &per_host, args, &how);
    let verdict = match fleet.interrupted() {
        true => Err(Error::interrupted()),
        false => verdict(&reports, settings),
    };
    fleet.sink.emit(
        &Arc::from(""),
        EventKind::Record(summary(&reports, settings.fold, &verdict)),
    );
    reporter.barrier();
    verdict
}

/// How a check of `reports` ends: Ok where no host is at risk; else the error that says every
/// kind of failure, with the exit code of the deciding kind.
fn verdict(reports: &[HostReport], settings: &Settings) -> Result<(), Error> {
    let at_risk = reports.iter().filter(|r| r.at_risk()).count();
    if at_risk == 0 {
        return Ok(());
    }
    let total = reports.len();
    let of = |n: usize| format!("{n} of {total} host{}", if total == 1 { "" } else { "s" });
    let named = |hosts: &[&HostReport]| {
        crate::hostset::fold(&hosts.iter().map(|r| r.host.as_str()).collect::<Vec<_>>())
    };
    let [misconfigured, unreachable, warned, _] = categories(reports);
    // The reports above say everything per host; the error is the headline, every kind of
    // failure in it, and the exit code the deciding kind's (see `Kind::rank`).
    let mut kind = Kind::Failed;
    let mut parts = Vec::new();
    for (hosts, words, is) in [
        (
            &misconfigured,
            "cannot be tried: a configuration error",
            Kind::Config,
        ),
        (&unreachable, "could not be reached", Kind::Unreachable),
    ] {
        if !hosts.is_empty() {
            if kind == Kind::Failed {
                kind = is;
            }
            parts.push(format!("{} {words} ({})", of(hosts.len()), named(hosts)));
        }
    }
    // Named, and where to look: stderr read apart from stdout has no warnings above (stop 44
    // tester t55).
    let apart = !crate::stdout::shares_stderr();
    if !warned.is_empty() {
        parts.push(format!(
            "{} at risk ({}): see {}",
            of(warned.len()),
            named(&warned),
            if apart {
                "their warnings on stdout"
            } else {
                "the warnings above"
            }
        ));
    }
    let mut said = parts.join("; ");
    // Each host's reason is on stdout; where stderr is read apart from it (stdout to a file,
    // JSON on stdout), the error says them too (stop 43 tester t52: it named the unreachable
    // hosts without a word of why), hosts that failed alike in one line unless --no-fold.
    if apart {
        // Each error names its host (see `SshError::said`).
        let reasons: Vec<(&str, &HostText)> = misconfigured
            .iter()
            .chain(unreachable.iter())
            .filter_map(|r| Some((r.host.as_str(), r.error.as_ref()?)))
            .collect();
        let lines = if settings.fold {
            crate::host_text::fold(&reasons)
        } else {
            reasons.iter().map(|(_, t)| t.to_string()).collect()
        };
        for line in lines {
            said.push('\n');
            said.push_str(&line);
        }
    }
    Err(Error::from(Failure::new(kind, said)))
}

fn output_text(r: &HostResult) -> Result<(String, String), (HostText, Option<Kind>)> {
    match &r.result {
        Some(Ok(out)) if out.status.success() => Ok((
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )),
        Some(Ok(out)) => Err((
            HostText::from(format!(
                "{}: {}",
                out.status,
                stderr_tail(&out.stderr, 3).join(" / ")
            )),
            Some(Kind::CommandFailed),
        )),
        // A connection given up at an interrupt says nothing of the host's reach.
        Some(Err(e @ SshError::ConnectStopped { .. })) => Err((e.said(), Some(Kind::Interrupted))),
        Some(Err(e)) => Err((e.said(), Some(e.kind()))),
        None => Err(("not run (interrupted)".into(), Some(Kind::Interrupted))),
    }
}

/// The hosts [`gather`] reads at once without `--parallel`. Each of its threads only waits on
/// its host's session worker, which connected in the fleet's own time, so more would add
/// threads (a thousand beside the pool's thousand workers) and read no host sooner: only when
/// this many hosts all wait out a `ConnectTimeout` at once does the next one wait for them.
const AT_ONCE: usize = 256;

/// Runs the remote steps on every host and builds the reports, in the order of `names`, each
/// host's `check` record emitted as soon as it is built. Each host goes through its steps on
/// its own, `how.spread.limit` hosts at once (at most [`AT_ONCE`] without one):
/// a host slow to connect holds up no other host's steps (stop 62 tester t102: with three
/// steps each run on every host at once, one host that took its `ConnectTimeout` to fail held
/// every other host's report back for it, and an interrupt then said `not run` of hosts that
/// had been connected for seconds).
fn gather(
    fleet: &Fleet,
    names: &[String],
    per_host: &BTreeMap<String, PerHost>,
    args: &CheckOptions,
    how: &FanOut,
) -> Vec<HostReport> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<HostReport>>> = Mutex::new(vec![None; names.len()]);
    let workers = how
        .spread
        .limit
        .unwrap_or(AT_ONCE)
        .clamp(1, names.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                let report = check_host(fleet, name, per_host, args, how);
                // Its JSON object goes out now, not once the slowest host is done (stop 63
                // tester t104: every host's at the ConnectTimeout of one that sent no banner);
                // text shows the hosts grouped, at the end (see `grouped_text`).
                fleet.sink.emit(
                    &Arc::from(name.as_str()),
                    EventKind::Record(record(&report)),
                );
                // Only ever written per index: a panic elsewhere leaves it valid.
                done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(report);
            });
        }
    });
    fleet.sink.barrier();
    done.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// The result of running `command` on `host` (the check's own: nothing shown).
fn on_host(fleet: &Fleet, host: &str, command: String, how: &FanOut) -> Option<HostResult> {
    fleet
        .pool
        .fan_out(&[(host.to_string(), command)], how)
        .into_iter()
        .next()
}

/// Runs the remote steps on `host` and builds its report.
fn check_host(
    fleet: &Fleet,
    host: &str,
    per_host: &BTreeMap<String, PerHost>,
    args: &CheckOptions,
    how: &FanOut,
) -> HostReport {
    let mut report = HostReport::new(host, per_host.get(host).and_then(|p| p.heartbeat));
    let failed = |report: &mut HostReport, (e, kind): (HostText, Option<Kind>)| {
        report.error = Some(e);
        report.error_kind = kind;
    };

    // 1. Which sshd serves us, with which config, as whom.
    let Some(r) = on_host(fleet, host, discover(), how) else {
        return report;
    };
    let (d, config) = match output_text(&r) {
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
            (d, config)
        }
        Err(e) => {
            failed(&mut report, e);
            return report;
        }
    };

    // 2. As root: `sshd -T` for this connection.
    let mut read = false;
    // Its PidFile, and the files of its config (see `stale_files`).
    let mut pidfile: Option<String> = None;
    let mut files: Vec<String> = Vec::new();
    if !args.parse_config && d.uid == Some(0) {
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
            c = quote(&config),
            s = quote(&spec.join(","))
        );
        if let Some(r) = on_host(fleet, host, cmd, how) {
            match output_text(&r) {
                Ok((out, _)) if out.contains("clientaliveinterval") => {
                    pidfile = pid_file(&out);
                    let source = |pid: &str| {
                        format!(
                            "{} -T -f {config} (the serving sshd's config{pid}, evaluated for \
                             this connection)",
                            d.exe.as_deref().unwrap_or("sshd")
                        )
                    };
                    report.source = source(&d.pid.map_or(String::new(), |p| format!(", pid {p}")));
                    report.source_shared = source("");
                    report.settings = Some(parse_sshd_t(&out));
                    read = true;
                }
                Ok(_) => report
                    .notes
                    .push("sshd -T printed no settings; reading the config files".into()),
                Err((e, _)) => report
                    .notes
                    .push(format!("sshd -T failed ({e}); reading the config files")),
            }
        }
    }

    // 3. Otherwise: the config files, parsed here.
    if !read {
        if d.uid != Some(0) && !args.parse_config {
            report
                .notes
                .push("not root, so no sshd -T; reading the config files".into());
        }
        let Some(r) = on_host(
            fleet,
            host,
            format!("{}dump {} 0", dump(), quote(&config)),
            how,
        ) else {
            return report;
        };
        match output_text(&r) {
            Ok((out, _)) => {
                let (mut settings, read_files, unreadable) = parse_config_dump(&out);
                files = read_files;
                pidfile = pid_file(&out);
                // A Match block's limit may apply to this login, which cannot evaluate it: it
                // counts, as the run's first heartbeat counts it (stop 61 tester t98: `ok ...
                // not set` for a login `Match User` gave 4 s).
                let anywhere = crate::sshd::settings::unused_connection_timeout(&d.cmdline, &out);
                if let Some(limit) =
                    anywhere.filter(|a| settings.unused_connection_timeout.is_none_or(|g| a < &g))
                {
                    settings.unused_connection_timeout = Some(limit);
                    report.notes.push(format!(
                        "UnusedConnectionTimeout {} is set in a Match block, which this login \
                         cannot evaluate (not root): counted, as a run's first heartbeat counts it",
                        format_duration(limit)
                    ));
                }
                if files.is_empty() {
                    report.error = Some(HostText::from(format!(
                        "cannot read the sshd config {}",
                        unreadable.join(", ")
                    )));
                    return report;
                }
                for f in &unreadable {
                    report.notes.push(format!("cannot read {f}"));
                }
                report.unreadable = unreadable;
                report.source = format!(
                    "parsed {} (global settings; Match blocks not evaluated)",
                    files.join(", ")
                );
                report.source_shared = report.source.clone();
                report.settings = Some(settings);
            }
            Err(e) => {
                failed(&mut report, e);
                return report;
            }
        }
    }

    // `ChannelTimeout global` means something from OpenSSH 9.7 on only.
    if report.settings.is_some() {
        let exe = d.exe.clone().unwrap_or_else(|| "/usr/sbin/sshd".into());
        let asked = format!("{} -V 2>&1 || :", quote(&exe));
        let version =
            on_host(fleet, host, asked, how).and_then(|r| parse_version(&output_text(&r).ok()?.0));
        if let (Some(s), Some(v)) = (report.settings.as_mut(), version) {
            s.global_channel_timeout = v >= (9, 7);
        }
    }
    if let (Some(_), Some(pid), true) = (&report.settings, d.pid, d.listener) {
        // `sshd -T` names no files: the dump lists them.
        if read {
            let dumped = format!("{}dump {} 0", dump(), quote(&config));
            if let Some(Ok((out, _))) = on_host(fleet, host, dumped, how).map(|r| output_text(&r)) {
                files = parse_config_dump(&out).1;
            }
        }
        if let Some(note) = stale_files(fleet, host, how, pid, pidfile, &files) {
            report.notes.push(note);
        }
    }
    if let Some(s) = &report.settings {
        let host = per_host.get(&report.host);
        let address = host.map(|p| &p.address);
        let same = per_host
            .values()
            .filter(|p| Some(&p.address) == address)
            .count();
        // A server without UnusedConnectionTimeout is kept by protocol keepalives.
        if s.unused_connection_timeout.is_none() {
            report.heartbeat = host.and_then(|p| p.keepalive);
        }
        report.findings = assess(s, report.heartbeat, same);
        // What the files it could not read set is unknown: no "ok ... not set" for them
        // (stop 58 tester t93: a limit in a 0600 `Include` was "not set", exit 0).
        if !report.unreadable.is_empty() {
            report.findings.push(Finding {
                level: Level::Warning,
                setting: "Include",
                message: format!(
                    "{} could not be read by this login: what it sets is unknown (an \
                     UnusedConnectionTimeout there costs each idle host a reconnect or \
                     two while a run learns it); run `tether check` as root, or where sshd \
                     -T works, to know",
                    report.unreadable.join(", ")
                ),
            });
        }
    }
    report
}

/// A note naming the files of the serving sshd's config (`files`) that changed after that
/// sshd (the listener `pid`, whose PidFile is `pidfile`) last read them (see
/// `probe::NEWER`): what check reports is the files' text, which sshd enforces only once
/// reloaded (tester t128: an Include emptied without a reload was said `ok ChannelTimeout: not
/// set` while sshd still cut commands). None where none did or it cannot tell (no `/proc`).
fn stale_files(
    fleet: &Fleet,
    host: &str,
    how: &FanOut,
    pid: u32,
    pidfile: Option<String>,
    files: &[String],
) -> Option<String> {
    let pidfile = pidfile.unwrap_or_else(|| "/var/run/sshd.pid".into());
    let mut cmd = format!("sh -c {} sh {pid} {}", quote(&newer()), quote(&pidfile));
    for f in files {
        cmd.push(' ');
        cmd.push_str(&quote(f));
    }
    let r = on_host(fleet, host, cmd, how)?;
    let Newer {
        since,
        how: how_known,
        changed,
    } = parse_newer(&output_text(&r).ok()?.0)?;
    if changed.is_empty() {
        return None;
    }
    let when = crate::clock::utc_text;
    let listed: Vec<String> = changed
        .iter()
        .map(|(at, f)| format!("{f} at {}", when(*at)))
        .collect();
    let listed = listed.join(", ");
    Some(match how_known.as_str() {
        "pidfile" => format!(
            "its config changed after the serving sshd (pid {pid}) last read it ({}, by its \
             PidFile {pidfile}): {listed}. This report is the files' text; sshd enforces it \
             only once reloaded (SIGHUP, `systemctl reload ssh`), and runs with what it read \
             before until then",
            when(since)
        ),
        // A reload re-executes sshd in its own process, whose start stays as it was: one
        // since cannot be told from none (tester t129: said not reloaded after a SIGHUP).
        _ => format!(
            "its config changed after the serving sshd (pid {pid}) started ({}): {listed}. It \
             has no PidFile, whose time would show a reload (SIGHUP, `systemctl reload ssh`) \
             since: unless there was one, this report is the files' text, which sshd enforces \
             only once reloaded",
            when(since)
        ),
    })
}

/// What one host's ssh config and the run's options make of its heartbeat.
struct PerHost {
    /// The interval, shortened by `ServerAliveInterval`.
    heartbeat: Option<Duration>,
    /// The interval where protocol keepalives keep the host (see `Owner::keepalive_every`).
    keepalive: Option<Duration>,
    /// The address and port it resolves to: hosts with the same are the same sshd.
    address: (String, u16),
}
