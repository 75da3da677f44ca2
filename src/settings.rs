//! What the command line asked for, resolved once (ripgrep's low-level args -> high-level
//! args): the library takes these settings and never sees clap.

use std::path::PathBuf;
use std::time::Duration;

use crate::hostset::Shard;
use crate::ssh::policy::Heartbeat;

/// The recipe file when `-f` is not given.
pub const DEFAULT_RECIPE: &str = "deploy.rhai";

/// The words `tether WORD` takes for a subcommand (clap's `help` too), never for a task or a
/// stage: a task or stage of one of these names could not be named on the command line.
pub const SUBCOMMANDS: [&str; 12] = [
    "run",
    "tasks",
    "check",
    "watch",
    "hosts",
    "ssh",
    "report",
    "completions",
    "man",
    "init",
    "definitions",
    "help",
];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Host-prefixed lines and a summary.
    #[default]
    Text,
    /// One JSON object per event, one per line.
    Json,
}

/// When to colour text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Color {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always (for pagers that understand colour).
    Always,
    /// Never.
    Never,
}

/// The idle heartbeat asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Keepalive {
    /// The recipe's `keepalive` variable, else 15 s.
    #[default]
    Default,
    /// `--keepalive DURATION`: wins over the recipe.
    Every(Duration),
    /// `--no-keepalive`: no heartbeat (diagnosis only).
    Off,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The recipe file (`-f`, default `./deploy.rhai`).
    pub recipe: PathBuf,
    /// `-F FILE`: the OpenSSH client config; `None`: `~/.ssh/config`.
    pub ssh_config: Option<PathBuf>,
    /// `--hosts`: only these hosts.
    pub hosts: Vec<String>,
    /// `--roles`: only hosts with these roles.
    pub roles: Vec<String>,
    /// `-n`: connect to nothing, print the plan.
    pub dry_run: bool,
    /// `-v`: connections, every command, heartbeats even on a terminal.
    pub verbose: bool,
    /// `-J`: jump hosts for every host, replacing `via` and ProxyJump.
    pub jump: Option<String>,
    /// `--keepalive` / `--no-keepalive`.
    pub keepalive: Keepalive,
    /// `--pty`: every command on a pseudo-terminal.
    pub pty: bool,
    /// `--reattach`: how long a host whose connection died during a command is reconnected
    /// to, to re-attach to that command (see `ssh::supervisor`).
    pub reattach: Duration,
    /// `--parallel N`: at most N hosts at once.
    pub parallel: Option<usize>,
    /// `--format`.
    pub format: Format,
    /// `--color`.
    pub color: Color,
    /// `-s KEY=VALUE`, in order (keys validated).
    pub overrides: Vec<(String, String)>,
    /// Recipe variables the environment gives as Capistrano reads them ([`FROM_ENVIRONMENT`]),
    /// where `-s` does not give the same variable.
    pub env_overrides: Vec<EnvOverride>,
    /// Text output folds the same line, result or failure of many hosts into one (not
    /// `--no-fold`).
    pub fold: bool,
    /// `--shard K/N`: only this stable part of the selected hosts.
    pub shard: Option<Shard>,
    /// `--timeline FILE`: write the run's timeline (HTML) there when it ends.
    pub timeline: Option<PathBuf>,
    /// The idle-limit cache file (`$XDG_CACHE_HOME/tether/idle-limits.json`, see
    /// [`crate::ssh::limit_cache::default_path`]); `None`: nothing is remembered across runs.
    pub limit_cache: Option<PathBuf>,
    /// The subcommands' names (`run`, `check`, ...): a task of the command line that is
    /// none of the recipe's but one of them misspelt says so.
    pub subcommands: Vec<String>,
}

impl Settings {
    /// The heartbeat: `--no-keepalive` wins, then `--keepalive`, then the recipe's `keepalive`
    /// variable (`recipe`), then `default` (the only case with [`Heartbeat::default`]).
    pub fn heartbeat(&self, recipe: Option<Duration>, default: Duration) -> Heartbeat {
        match self.keepalive {
            Keepalive::Off => Heartbeat {
                every: None,
                default: false,
            },
            Keepalive::Every(d) => Heartbeat {
                every: Some(d),
                default: false,
            },
            Keepalive::Default => Heartbeat {
                every: Some(recipe.unwrap_or(default)),
                default: recipe.is_none(),
            },
        }
    }
}

/// The environment variables Capistrano reads a deploy's variables from, with the recipe
/// variable each gives and the task that reads it: `ROLLBACK_RELEASE` is deploy:rollback's
/// target (`cap deploy:rollback ROLLBACK_RELEASE=...`; stop 41 tester t39: ignored, the
/// rollback went to the previous release and removed the current one), read only by a run of
/// that task, as Capistrano reads it only there (stop 41 tester t42: one left over in a CI
/// shell refused every deploy). `-s` wins over it.
pub const FROM_ENVIRONMENT: &[(&str, &str, &str)] =
    &[("ROLLBACK_RELEASE", "rollback_release", "deploy:rollback")];

/// A recipe variable given by an environment variable of [`FROM_ENVIRONMENT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// The environment variable (`ROLLBACK_RELEASE`).
    pub name: &'static str,
    /// The recipe variable (`rollback_release`).
    pub key: &'static str,
    /// The task whose run reads it (`deploy:rollback`).
    pub task: &'static str,
    /// Its value, as `-s` would give it.
    pub value: String,
}

impl EnvOverride {
    /// Those of [`FROM_ENVIRONMENT`] set (not empty) in this process's environment and not
    /// given by `overrides` (`-s`).
    pub fn read(overrides: &[(String, String)]) -> Vec<EnvOverride> {
        FROM_ENVIRONMENT
            .iter()
            .filter(|(_, key, _)| !overrides.iter().any(|(k, _)| k == key))
            .filter_map(|&(name, key, task)| {
                let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
                Some(EnvOverride {
                    name,
                    key,
                    task,
                    value,
                })
            })
            .collect()
    }

    /// Where the variable was set, as `where_set` says it: `ROLLBACK_RELEASE="V" in the
    /// environment` (quoted: a space in it shows).
    pub fn origin(&self) -> String {
        format!("{}={:?} in the environment", self.name, self.value)
    }
}

/// Checks a `-s KEY=VALUE` argument: the key is a variable name (a letter or `_`, then
/// letters, digits, `_` and `:`); returns (key, value).
pub fn parse_override(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("-s {arg}: expected KEY=VALUE"))?;
    let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid {
        return Err(format!(
            "-s {arg}: `{key}` is not a variable name (a letter or `_`, then letters, digits, \
             `_` or `:`)"
        ));
    }
    // Capistrano's HOSTS and ROLES filters are flags here: as a variable they would select
    // nothing, and the run would go to every host (stop 44 tester t54: `-s hosts=host1`, which
    // tether's own hint for `HOSTS=host1` gave, ran on every host).
    if let Some(flag) = ["hosts", "roles", "host", "role"]
        .into_iter()
        .find(|f| key.eq_ignore_ascii_case(f))
        .map(|f| {
            if f.starts_with("host") {
                "hosts"
            } else {
                "roles"
            }
        })
    {
        return Err(format!(
            "-s {arg}: `{key}` would be a variable, which selects no {flag}: select them with \
             --{flag} {value} (or {}={value} in the environment)",
            flag.to_ascii_uppercase()
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only an interval nobody asked for lets hosts kept by keepalives beat less often.
    #[test]
    fn the_heartbeat_is_default_only_when_nothing_asked_for_one() {
        let d = Duration::from_secs(15);
        let asked = Duration::from_secs(7);
        let with = |keepalive| Settings {
            keepalive,
            ..Settings::default()
        };
        let hb = |every: Option<Duration>, default| Heartbeat { every, default };
        assert_eq!(
            with(Keepalive::Default).heartbeat(None, d),
            hb(Some(d), true)
        );
        assert_eq!(
            with(Keepalive::Default).heartbeat(Some(asked), d),
            hb(Some(asked), false)
        );
        // `--keepalive 15s` asks for what the default is: still asked.
        for flag in [asked, d] {
            assert_eq!(
                with(Keepalive::Every(flag)).heartbeat(Some(Duration::from_secs(9)), d),
                hb(Some(flag), false)
            );
        }
        assert_eq!(with(Keepalive::Off).heartbeat(None, d), hb(None, false));
    }

    #[test]
    fn overrides() {
        assert_eq!(
            parse_override("branch=a=b"),
            Ok(("branch".into(), "a=b".into()))
        );
        assert_eq!(parse_override("x="), Ok(("x".into(), String::new())));
        for bad in ["=x", "x", " k=v", "1a=v", "a b=v", "k-v=1", "é=1"] {
            assert!(parse_override(bad).is_err(), "{bad}");
        }
    }
}
