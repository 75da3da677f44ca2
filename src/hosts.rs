//! `tether hosts`: how each host is reached, resolved from the ssh config exactly as
//! `tether run` and a deploy resolve it: one row per host (address, user, route, identity
//! files, known_hosts files and host-key policy), or with `-G` the `keyword value` lines of
//! `ssh -G`, so that the two resolutions can be compared with `diff`. Nothing connects.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cli::{GlobalArgs, HostsArgs};
use crate::error::Error;
use crate::fleet;
use crate::host::HostTarget;
use crate::report::{json, Format};
use crate::runner;
use crate::ssh::config::{HostConfig, HostError, Route};

/// One host: its name, its roles, and its resolution or why there is none.
pub struct Row {
    /// The name as written.
    pub name: String,
    /// Its roles in the recipe (empty without one).
    pub roles: Vec<String>,
    /// The resolved configuration, or why the config is refused for this host.
    pub config: Result<HostConfig, HostError>,
}

/// `tether hosts [-G] [HOST...]`: positional hosts, else `--hosts`, else the recipe's
/// servers (of `--stage`, narrowed by `--roles`).
pub fn run(
    global: &GlobalArgs,
    args: &HostsArgs,
    interrupted: Arc<AtomicBool>,
) -> Result<(), Error> {
    let (hosts, roles) = if args.hosts.is_empty() {
        let selection = runner::select(global, args.stage.as_deref(), interrupted)?;
        (selection.hosts, selection.roles)
    } else {
        let hosts = args
            .hosts
            .iter()
            .map(|h| HostTarget::parse(h).map_err(Error::Usage))
            .collect::<Result<Vec<_>, _>>()?;
        let roles = vec![Vec::new(); hosts.len()];
        (hosts, roles)
    };
    let ssh = fleet::load_ssh_config(global)?;
    let rows: Vec<Row> = hosts
        .iter()
        .zip(roles)
        .map(|(target, roles)| Row {
            name: target.name.clone(),
            roles,
            config: ssh.resolve_target(target, global.jump.as_deref()),
        })
        .collect();
    let home = ssh.local().home.clone();
    if args.ssh_g {
        print_ssh_g(&rows);
    } else {
        match global.format {
            Format::Json => print_json(&rows),
            Format::Text => print_table(&rows, &home),
        }
    }
    let failed = rows.iter().filter(|r| r.config.is_err()).count();
    if failed > 0 {
        return Err(Error::HostsFailed {
            failed,
            unreachable: failed,
            total: rows.len(),
        });
    }
    Ok(())
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
            Err(e) => eprintln!("error: {e}"),
        }
    }
}

/// How a host is reached, in words.
pub fn route_text(route: &Route) -> String {
    match route {
        Route::Direct => "direct".into(),
        Route::Jump(spec) => format!("via {spec}"),
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
                row.name.clone(),
                roles,
                format!(
                    "{}@{}",
                    c.user,
                    crate::ssh::connect::host_port(&c.hostname, c.port)
                ),
                route_text(&c.route),
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
                row.name.clone(),
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

fn json_list(items: impl IntoIterator<Item = String>) -> String {
    format!(
        "[{}]",
        items
            .into_iter()
            .map(|i| json(&i))
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn json_paths(list: &[PathBuf]) -> String {
    json_list(list.iter().map(|p| p.display().to_string()))
}

/// One JSON object per line and host.
pub fn print_json(rows: &[Row]) {
    for row in rows {
        let roles = json_list(row.roles.iter().cloned());
        let line = match &row.config {
            Ok(c) => {
                let route = match &c.route {
                    Route::Direct => r#"{"kind":"direct"}"#.to_string(),
                    Route::Jump(spec) => format!(r#"{{"kind":"jump","hosts":{}}}"#, json(spec)),
                    Route::Command(cmd) => {
                        format!(r#"{{"kind":"proxy_command","command":{}}}"#, json(cmd))
                    }
                };
                format!(
                    concat!(
                        r#"{{"host":{},"roles":{},"hostname":{},"port":{},"user":{},"route":{},"#,
                        r#""identity_files":{},"identities_only":{},"certificate_files":{},"#,
                        r#""user_known_hosts":{},"global_known_hosts":{},"#,
                        r#""strict_host_key_checking":{},"host_key_alias":{},"known_hosts_name":{}}}"#
                    ),
                    json(&row.name),
                    roles,
                    json(&c.hostname),
                    c.port,
                    json(&c.user),
                    route,
                    json_paths(&c.identity_files),
                    c.identities_only,
                    json_paths(&c.certificate_files),
                    json_paths(&c.user_known_hosts),
                    json_paths(&c.global_known_hosts),
                    json(&c.strict_host_key_checking.to_string()),
                    c.host_key_alias
                        .as_deref()
                        .map_or_else(|| "null".into(), json),
                    json(&c.known_hosts_name()),
                )
            }
            Err(e) => format!(
                r#"{{"host":{},"roles":{},"error":{}}}"#,
                json(&row.name),
                roles,
                json(&e.to_string())
            ),
        };
        crate::outln!("{line}");
    }
}
