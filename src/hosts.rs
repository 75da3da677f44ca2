//! `tether hosts`: how each host is reached, resolved from the ssh config exactly as
//! `tether run` and a deploy resolve it: one row per host (address, user, route, identity
//! files, known_hosts files and host-key policy), or with `-G` the `keyword value` lines of
//! `ssh -G`, so that the two resolutions can be compared with `diff`. Nothing connects.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::Error;
use crate::failure::{Failure, HostFailure, Kind};
use crate::host_text::HostText;
use crate::report::Reporter;
use crate::runner;
use crate::settings::{Format, Settings};
use crate::ssh::config::{HostConfig, HostError, Route};
use crate::ssh::route::{self, Hop, RouteError};
use crate::ssh::SshError;

/// `tether hosts`'s own options.
#[derive(Debug, Clone, Default)]
pub struct HostsOptions {
    /// Print `ssh -G`-style `keyword value` lines per host instead of the table.
    pub ssh_g: bool,
    /// With a recipe: this stage's servers.
    pub stage: Option<String>,
    /// The hosts named on the command line (else `--hosts`, else the recipe's).
    pub hosts: Vec<String>,
}

/// One host: its name, its roles, and its resolution or why there is none.
pub struct Row {
    /// The name as written.
    pub name: String,
    /// Its roles in the recipe (empty without one).
    pub roles: Vec<String>,
    /// The resolved configuration, or why the config is refused for this host.
    pub config: Result<HostConfig, HostError>,
    /// The jump hosts it is reached through, outermost first, each as its own config says
    /// (empty when reached directly or `config` is refused), or why no route can be built.
    pub hops: Result<Vec<Hop>, RouteError>,
}

/// `tether hosts [-G] [HOST...]`: positional hosts, else `--hosts`, else the recipe's
/// servers (of `--stage`, narrowed by `--roles`).
pub fn run(
    settings: &Settings,
    args: &HostsOptions,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    // Names given here select as --hosts does: a recipe present still says how they are
    // reached (its ssh_config, its servers' users and ports).
    let mut named;
    let settings = if args.hosts.is_empty() {
        settings
    } else {
        named = settings.clone();
        named.hosts = args.hosts.clone();
        &named
    };
    // A recipe's print() goes where every run's output goes.
    let reporter = Reporter::for_listing(settings);
    let selection = runner::select(
        settings,
        args.stage.as_deref(),
        interrupted,
        reporter.sink(),
    )?;
    // Each once, as a run reaches it; two spellings of one machine are listed as given.
    let hosts = selection.unique();
    let ssh = selection.ssh_config;
    // As a run says it (stop 43 tester t52: an empty table, without a word).
    runner::empty_shard(
        settings,
        hosts.len(),
        selection.before_shard,
        &reporter.sink(),
    );
    reporter.barrier();
    let rows: Vec<Row> = hosts
        .iter()
        .map(|target| {
            let config = ssh.resolve_target(target, settings.jump.as_deref());
            // `-G` is the host's own resolution, as `ssh -G` prints it: its jump hosts are
            // neither resolved nor checked there.
            let hops = match &config {
                Ok(c) if !args.ssh_g => route::route(&ssh, c),
                _ => Ok(Vec::new()),
            };
            Row {
                name: target.name.clone(),
                roles: target.roles.clone(),
                config,
                hops,
            }
        })
        .collect();
    let home = ssh.local().home.clone();
    if args.ssh_g {
        match settings.format {
            Format::Json => print_ssh_g_json(&rows),
            Format::Text => print_ssh_g(&rows),
        }
    } else {
        match settings.format {
            Format::Json => print_json(&rows),
            Format::Text => print_table(&rows, &home),
        }
    }
    let failed: Vec<HostFailure> = rows
        .iter()
        .filter_map(|r| match (&r.config, &r.hops) {
            (Err(e), _) => Some(HostFailure {
                host: r.name.clone(),
                kind: if e.unresolved {
                    Kind::Unreachable
                } else {
                    Kind::Config
                },
                message: SshError::Config(e.clone()).said(),
            }),
            (Ok(_), Err(RouteError::Hop(e))) => {
                let e = SshError::hop_refused(&r.name, e.clone());
                Some(HostFailure {
                    host: r.name.clone(),
                    kind: e.kind(),
                    message: e.said(),
                })
            }
            (Ok(_), Err(RouteError::Invalid(why))) => Some(HostFailure {
                host: r.name.clone(),
                kind: Kind::Config,
                message: HostText::new()
                    .host(&r.name)
                    .text(": ")
                    .text(&why.to_string()),
            }),
            (Ok(_), Ok(_)) => None,
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::from(Failure::hosts(failed, Vec::new(), rows.len())))
}

/// The `ssh -G` lines of each host, a blank line between hosts; refusals on stderr.
pub fn print_ssh_g(rows: &[Row]) {
    for (i, row) in rows.iter().enumerate() {
        match &row.config {
            Ok(cfg) => {
                if i > 0 {
                    crate::outln!("");
                }
                for line in &cfg.ssh_g {
                    crate::outln!("{line}");
                }
            }
            Err(e) => crate::errln!("error: {e}"),
        }
    }
}

/// The keywords `ssh -G` prints once per value: arrays in JSON, also when empty.
const REPEATED: &[&str] = &["identityfile", "certificatefile", "sendenv", "setenv"];

/// `-G` with `--format json`: one object per line and host, `{"type":"ssh_config","host":..,
/// "options":{keyword: value, ...}}` with the keywords and values `ssh -G` prints, in its
/// order (values as strings; `identityfile`, `certificatefile`, `sendenv` and `setenv` as
/// arrays), or
/// `{"type":"ssh_config","host":..,"error":..}` for a host the config is refused for.
pub fn print_ssh_g_json(rows: &[Row]) {
    for row in rows {
        let value = match &row.config {
            Ok(cfg) => {
                let mut options = serde_json::Map::new();
                for line in &cfg.ssh_g {
                    let (keyword, value) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                    let value = serde_json::Value::String(value.to_string());
                    if !REPEATED.contains(&keyword) {
                        options.insert(keyword.to_string(), value);
                    } else if let Some(serde_json::Value::Array(values)) = options.get_mut(keyword)
                    {
                        values.push(value);
                    } else {
                        options.insert(keyword.to_string(), serde_json::json!([value]));
                    }
                }
                for k in REPEATED {
                    options
                        .entry(k.to_string())
                        .or_insert_with(|| serde_json::json!([]));
                }
                serde_json::json!({ "type": "ssh_config", "host": row.name, "options": options })
            }
            Err(e) => serde_json::json!({
                "type": "ssh_config",
                "host": row.name,
                "error": e.to_string(),
            }),
        };
        crate::outln!("{value}");
    }
}

/// How a host is reached, in words: `direct`, `proxy `CMD``, or the whole route of jump
/// hosts, outermost first (`via d -> c -> a`, the outermost's proxy command in parentheses),
/// as ssh follows each hop's own ProxyJump; `hops` from [`route::route`].
pub fn route_text(route: &Route, hops: &[Hop]) -> String {
    match route {
        Route::Direct => "direct".into(),
        Route::Jump(_) => {
            let names: Vec<&str> = hops.iter().map(|h| h.target.name.as_str()).collect();
            let proxy = match hops.first().map(|h| &h.config.route) {
                Some(Route::Command(command)) => format!(" (proxy `{command}`)"),
                _ => String::new(),
            };
            format!("via {}{proxy}", names.join(" -> "))
        }
        Route::Command(command) => format!("proxy `{command}`"),
    }
}

fn tilde(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) if !home.as_os_str().is_empty() && home != Path::new("/") => {
            format!("~/{}", rest.display())
        }
        _ => path.display().to_string(),
    }
}

fn paths(list: &[PathBuf], home: &Path) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|p| tilde(p, home))
        .collect::<Vec<_>>()
        .join(",")
}

/// One aligned row per host: HOST, ROLES, ADDRESS (`user@host:port`), ROUTE, HOST KEYS
/// (policy and known_hosts files), IDENTITIES.
pub fn print_table(rows: &[Row], home: &Path) {
    let header = [
        "HOST",
        "ROLES",
        "ADDRESS",
        "ROUTE",
        "HOST KEYS",
        "IDENTITIES",
    ];
    let mut table: Vec<[String; 6]> = vec![header.map(str::to_string)];
    for row in rows {
        let roles = if row.roles.is_empty() {
            "-".to_string()
        } else {
            row.roles.join(",")
        };
        let cells = match &row.config {
            Ok(c) => [
                crate::host_text::named(&row.name),
                roles,
                format!(
                    "{}@{}",
                    c.user,
                    crate::ssh::connect::host_port(&c.hostname, c.port)
                ),
                match &row.hops {
                    Ok(hops) => route_text(&c.route, hops),
                    Err(e) => format!("refused: {e}"),
                },
                format!(
                    "{} {}{}",
                    c.strict_host_key_checking,
                    match &c.host_key_alias {
                        Some(a) => format!("as {a} in "),
                        None => String::new(),
                    },
                    paths(&c.user_known_hosts, home)
                ),
                if c.identity_files_configured {
                    paths(&c.identity_files, home)
                } else {
                    "default".into()
                },
            ],
            Err(e) => [
                crate::host_text::named(&row.name),
                roles,
                format!(
                    "refused: {}",
                    e.to_string().trim_start_matches(&format!("{}: ", row.name))
                ),
                String::new(),
                String::new(),
                String::new(),
            ],
        };
        table.push(cells);
    }
    let widths: Vec<usize> = (0..6)
        .map(|col| {
            table
                .iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            if col + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[col]));
            }
        }
        crate::outln!("{}", line.trim_end());
    }
}

fn json_paths(list: &[PathBuf]) -> Vec<String> {
    list.iter().map(|p| p.display().to_string()).collect()
}

/// A jump host of a route: `{"host": name as written, "address": "user@host:port"}`, with
/// `"proxy_command"` when it is reached through one.
fn hop_json(hop: &Hop) -> serde_json::Value {
    let mut value = serde_json::json!({
        "host": hop.target.name,
        "address": route::identity(&hop.config),
    });
    if let Route::Command(command) = &hop.config.route {
        value["proxy_command"] = serde_json::json!(command);
    }
    value
}

/// One JSON object (`"type":"host"`) per line and host.
pub fn print_json(rows: &[Row]) {
    for row in rows {
        let value = match &row.config {
            Ok(c) => {
                let route = match &c.route {
                    Route::Direct => serde_json::json!({ "kind": "direct" }),
                    Route::Jump(spec) => match &row.hops {
                        Ok(hops) => serde_json::json!({
                            "kind": "jump",
                            "hosts": spec,
                            "hops": hops.iter().map(hop_json).collect::<Vec<_>>(),
                        }),
                        Err(e) => serde_json::json!({
                            "kind": "jump",
                            "hosts": spec,
                            "error": e.to_string(),
                        }),
                    },
                    Route::Command(cmd) => {
                        serde_json::json!({ "kind": "proxy_command", "command": cmd })
                    }
                };
                serde_json::json!({
                    "type": "host",
                    "host": row.name,
                    "roles": row.roles,
                    "hostname": c.hostname,
                    "port": c.port,
                    "user": c.user,
                    "route": route,
                    "identity_files": json_paths(&c.identity_files),
                    "identities_only": c.identities_only,
                    "certificate_files": json_paths(&c.certificate_files),
                    "user_known_hosts": json_paths(&c.user_known_hosts),
                    "global_known_hosts": json_paths(&c.global_known_hosts),
                    "strict_host_key_checking": c.strict_host_key_checking.to_string(),
                    "host_key_alias": c.host_key_alias,
                    "known_hosts_name": c.known_hosts_name(),
                })
            }
            Err(e) => serde_json::json!({
                "type": "host",
                "host": row.name,
                "roles": row.roles,
                "error": e.to_string(),
            }),
        };
        crate::outln!("{value}");
    }
}
