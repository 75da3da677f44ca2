//! The command line resolved once into the library's [`Settings`], and the words said where
//! it makes none.

use tether::settings::{self, Color, Format, Keepalive, Settings};

use super::args::{ColorArg, FormatArg, GlobalArgs};

/// The environment variables that stand for options (`env = ...` below).
pub const OPTION_ENV: &[&str] = &["TETHER_SSH_CONFIG", "HOSTS", "ROLES"];

/// The note said after a command-line error where an option's value came from the environment
/// (a `HOSTS` left over in a CI job), or None: of the variables among `names` (of
/// [`OPTION_ENV`]) that gave one, those whose option the error can be about (stop 50 tester
/// t71: `-F came from the environment` after an unknown task).
pub fn environment_note(g: &GlobalArgs, names: &[&str]) -> Option<String> {
    let said: Vec<String> = g
        .from_env
        .iter()
        .filter(|name| names.contains(name))
        .map(|name| {
            let option = match *name {
                "HOSTS" => "--hosts",
                "ROLES" => "--roles",
                _ => "-F",
            };
            let value = std::env::var(name).unwrap_or_default();
            format!("{option} came from the environment: {name}={value:?}")
        })
        .collect();
    (!said.is_empty()).then(|| format!("note: {}", said.join("; ")))
}

/// Why the command line makes no [`Settings`]: the message, and the variables of
/// [`OPTION_ENV`] whose options it is about (for [`environment_note`]: stop 52 tester t82,
/// `-F came from the environment` after a bad `-s` or `--hosts`).
#[derive(Debug)]
pub struct SettingsError {
    /// What is wrong, as said after `error: `.
    pub message: String,
    /// The environment variables that may have given the value in question.
    pub about: &'static [&'static str],
}

impl SettingsError {
    fn about(about: &'static [&'static str], message: String) -> Self {
        SettingsError { message, about }
    }
}

/// A message about no option an environment variable gives.
impl From<String> for SettingsError {
    fn from(message: String) -> Self {
        SettingsError {
            message,
            about: &[],
        }
    }
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Removes those of [`OPTION_ENV`] that are set but empty, so that they count as unset, as
/// ssh counts an empty `SSH_AUTH_SOCK` (clap would refuse `TETHER_SSH_CONFIG=` as a missing
/// `--ssh-config` value, and take `HOSTS=` as a host named ``). Called first thing in
/// `main`, before any thread exists, as changing the environment requires.
pub fn forget_empty_option_env() {
    for name in OPTION_ENV {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(name);
        }
    }
}

impl GlobalArgs {
    /// The settings these options ask for; Err for a bad `-s`, a second `-J`, or an adding-up
    /// option given on both sides of the subcommand.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        if let Some(option) = self.given_on_both_sides.first() {
            let about: &[&str] = match *option {
                "--hosts" => &["HOSTS"],
                "--roles" => &["ROLES"],
                _ => &[],
            };
            return Err(SettingsError::about(
                about,
                format!(
                    "{option} given both before and after the subcommand: give all its values \
                     on one side"
                ),
            ));
        }
        // ssh.c: "Only a single -J option is permitted".
        if let [_, _, ..] = self.jumps_given.as_slice() {
            let mut given = self.jumps_given.clone();
            given.sort();
            return Err(format!(
                "-J/--jump given more than once ({}): ssh permits a single -J; give the jump \
                 hosts as one comma-separated list, outermost first (-J bastion,inner)",
                given.join(", ")
            )
            .into());
        }
        let overrides: Vec<(String, String)> = self
            .set
            .iter()
            .map(|s| settings::parse_override(s))
            .collect::<Result<_, _>>()?;
        for (k, v) in &overrides {
            tether::recipe::given::given_value(k, v).map(drop)?;
        }
        // Each value a set of hosts, as folded output writes one (`web[01-40]`), which a
        // printed command passes on.
        let hosts = self
            .hosts
            .iter()
            .map(|set| tether::hostset::expand(set))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SettingsError::about(&["HOSTS"], format!("--hosts: {e}")))?
            .concat();
        // An empty name is no role or host, for a task as for `run` (stop 42 tester t45:
        // `--roles ''` was "unknown role ``; did you mean `db`?").
        let given: [(_, &'static [&'static str], _); 2] = [
            ("--roles", &["ROLES"], &self.roles),
            ("--hosts", &["HOSTS"], &hosts),
        ];
        for (flag, env, names) in given {
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(SettingsError::about(
                    env,
                    format!(
                        "{flag}: an empty name (`{flag} ''`, or a comma with nothing beside \
                         it, `a,,b`): name each one"
                    ),
                ));
            }
        }
        let env_overrides = settings::EnvOverride::read(&overrides);
        Ok(Settings {
            recipe: self
                .file
                .clone()
                .unwrap_or_else(|| settings::DEFAULT_RECIPE.into()),
            ssh_config: self.ssh_config.clone(),
            hosts,
            roles: self.roles.clone(),
            dry_run: self.dry_run,
            verbose: self.verbose,
            jump: self.jump.last().cloned(),
            keepalive: match (self.no_keepalive, self.keepalive) {
                (true, _) => Keepalive::Off,
                (false, Some(d)) => Keepalive::Every(d),
                (false, None) => Keepalive::Default,
            },
            pty: self.pty,
            reattach: self
                .reattach
                .unwrap_or(tether::ssh::supervisor::DEFAULT_REATTACH),
            parallel: self.parallel.map(|n| n as usize),
            format: match self.format {
                FormatArg::Text => Format::Text,
                FormatArg::Json => Format::Json,
            },
            color: match self.color {
                ColorArg::Auto => Color::Auto,
                ColorArg::Always => Color::Always,
                ColorArg::Never => Color::Never,
            },
            overrides,
            env_overrides,
            fold: !self.no_fold,
            shard: self.shard,
            timeline: self.timeline.clone(),
            limit_cache: {
                let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
                tether::ssh::limit_cache::default_path(
                    var("XDG_CACHE_HOME").as_deref(),
                    var("HOME").as_deref(),
                )
            },
            subcommands: self.subcommands.clone(),
        })
    }
}
