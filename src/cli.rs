//! Command-line interface. Global options work before or after the subcommand.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use tether::hostset::Shard;
use tether::settings::{self, Color, Format, Keepalive, Settings};

/// tether: deploys from Rhai recipes over SSH sessions that stay open and alive for the whole
/// run.
#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about,
    long_about = None,
    args_override_self = true,
    override_usage = "tether [OPTIONS] [STAGE] TASK...\n       tether [OPTIONS] <COMMAND>"
)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do besides running tasks.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Tasks to run from the recipe, optionally after a stage (`tether production deploy`).
    #[arg(value_name = "TASK")]
    pub targets: Vec<String>,
}

/// Parses the command line as `Cli::parse` does (printing clap's error or help and exiting
/// on a bad one). An option given twice takes its last value (as ssh takes `-F`), wherever
/// each stands, except: `-J`, which [`GlobalArgs::settings`] refuses as ssh does, and
/// `--hosts`, `--roles` and `-s`, which add up when given on one side of the subcommand and
/// are refused when given on both (clap would keep one side's values without a word).
pub fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|e| {
        if e.use_stderr() {
            // A reader of JSON gets its error object as for any other failure (stop 67 tester
            // t114: `--format json --bogus` printed nothing on stdout).
            if json_asked(
                std::env::args_os()
                    .skip(1)
                    .map(|a| a.to_string_lossy().into_owned()),
            ) {
                // The error and its tip; not the usage, nor where to read more.
                let text = e.render().to_string();
                let end = ["\n\nUsage:", "\n\nFor more information"]
                    .iter()
                    .filter_map(|cut| text.find(cut))
                    .min()
                    .unwrap_or(text.len());
                json_error(
                    e.exit_code(),
                    text[..end].trim().trim_start_matches("error: "),
                );
            }
            e.exit()
        }
        // Help and the version, through tether's stdout: a write that fails (a full disk) is
        // said and fails the exit, as a run's output does (clap's own exit ignores it).
        tether::stdout::write(format_args!("{}", e.render().ansi()));
        tether::stdout::flush();
        match tether::stdout::write_error() {
            Some(_) => std::process::exit(tether::exit::USAGE),
            None => std::process::exit(e.exit_code()),
        }
    })
}

/// The `error` object that ends a failing command's JSON stream (README, JSON output), for a
/// failure that exits with `exit_code`.
pub fn json_error(exit_code: i32, text: &str) {
    let object = serde_json::json!({
        "type": "error",
        "exit_code": exit_code,
        "error": text,
    });
    tether::stdout::write(format_args!("{object}\n"));
}

/// Whether the command line `args` (its program name left out) asks for `--format json`, as
/// clap reads it once told to go past the error it found (`Command::ignore_errors`); where
/// clap stopped at that error before any `--format`, as the last `--format` before any `--`
/// says (tester t126: `tether --bogus-flag --format json` printed nothing on stdout).
fn json_asked(args: impl IntoIterator<Item = String>) -> bool {
    use clap::CommandFactory as _;
    let args: Vec<String> = args.into_iter().collect();
    let format = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(std::iter::once("tether".to_string()).chain(args.iter().cloned()))
        .ok()
        .filter(|m| m.value_source("format") == Some(clap::parser::ValueSource::CommandLine))
        .and_then(|m| m.get_one::<FormatArg>("format").copied());
    match format {
        Some(format) => format == FormatArg::Json,
        None => {
            let mut last: Option<&str> = None;
            let mut words = args.iter().take_while(|a| *a != "--");
            while let Some(word) = words.next() {
                if word == "--format" {
                    last = words.next().map(String::as_str);
                } else if let Some(value) = word.strip_prefix("--format=") {
                    last = Some(value);
                }
            }
            last == Some("json")
        }
    }
}

/// The options whose every command-line value is recorded (see [`parse`]).
const RECORDED: [&str; 4] = ["jump", "hosts", "roles", "set"];

fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory as _, FromArgMatches as _};
    let recorders: Vec<Given> = RECORDED.iter().map(|_| Given::default()).collect();
    let mut command = Cli::command();
    for (id, recorder) in RECORDED.iter().zip(&recorders) {
        let recorder = recorder.clone();
        command = command.mut_arg(*id, move |arg| arg.value_parser(recorder));
    }
    let subcommands = command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let mut matches = command.try_get_matches_from(args)?;
    // A global option's value sits in the matches of the subcommand it was given with.
    let from_env: Vec<&'static str> = OPTION_ENV
        .iter()
        .zip(["ssh_config", "hosts", "roles"])
        .filter(|(_, id)| {
            let here = matches.value_source(id);
            let below = matches
                .subcommand()
                .and_then(|(_, m)| match m.try_get_raw(id) {
                    Ok(Some(_)) => m.value_source(id),
                    _ => None,
                });
            [here, below].contains(&Some(clap::parser::ValueSource::EnvVariable))
        })
        .map(|(name, _)| *name)
        .collect();
    let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
    cli.global.from_env = from_env;
    cli.global.subcommands = subcommands;
    stage_before_subcommand(&mut cli).map_err(|e| e.format(&mut Cli::command()))?;
    let [jump, hosts, roles, set] = &recorders[..] else {
        unreachable!("one recorder per RECORDED option")
    };
    cli.global.jumps_given = jump.values();
    let g = &cli.global;
    cli.global.given_on_both_sides = [
        ("--hosts", hosts, g.hosts.len()),
        ("--roles", roles, g.roles.len()),
        ("-s/--set", set, g.set.len()),
    ]
    .into_iter()
    .filter(|(_, recorder, kept)| recorder.values().len() > *kept)
    .map(|(name, _, _)| name)
    .collect();
    Ok(cli)
}

/// `tether production -T`: a word before `-T` is the task list's stage (`tether tasks
/// production`), as `tether production deploy` selects one; clap, which matches a subcommand
/// after a word only by its short flag (`-T`: `tether production run` is two tasks), would
/// take it for a task and list the tasks without the stage. Refused where it is given another
/// stage too, and where more than one word stands before it.
fn stage_before_subcommand(cli: &mut Cli) -> Result<(), clap::Error> {
    use clap::error::ErrorKind;
    let Some(command) = &mut cli.command else {
        return Ok(());
    };
    let name = command.name();
    let words = std::mem::take(&mut cli.targets);
    let refuse = |why: String| Err(clap::Error::raw(ErrorKind::ArgumentConflict, why));
    match (command, &words[..]) {
        (_, []) => Ok(()),
        (
            Command::Tasks(TasksArgs {
                stage: Some(other), ..
            }),
            [stage],
        ) if other != stage => refuse(format!(
            "two stages: `{stage}` before `{name}` and `{other}` after it"
        )),
        (Command::Tasks(args), [stage]) => {
            args.stage = Some(stage.clone());
            Ok(())
        }
        _ => refuse(format!(
            "`{}` before `{name}`: only a stage may stand before -T",
            words.join(" ")
        )),
    }
}

/// A value parser (of strings) that records each value given on the command line, not
/// from an environment variable: clap calls it once per occurrence, at whichever side of
/// the subcommand it stands, while its matches keep only one side's values of a global
/// option.
#[derive(Clone, Default)]
struct Given(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Given {
    fn values(&self) -> Vec<String> {
        // A poisoned lock only means a panic elsewhere; the list is still whole.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl clap::builder::TypedValueParser for Given {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn parse_ref_(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
        source: clap::parser::ValueSource,
    ) -> Result<String, clap::Error> {
        let text = self.parse_ref(cmd, arg, value)?;
        if source == clap::parser::ValueSource::CommandLine {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(text.clone());
        }
        Ok(text)
    }
}

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

/// Options accepted before or after the subcommand.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Recipe file.
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// OpenSSH client config file, read alone as `ssh -F` reads it [default: the recipe's
    /// `ssh_config`, else ~/.ssh/config then /etc/ssh/ssh_config]. Given twice, the last
    /// wins, as in ssh.
    #[arg(
        short = 'F',
        long = "ssh-config",
        global = true,
        value_name = "FILE",
        env = "TETHER_SSH_CONFIG"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Only these hosts (comma-separated ssh config aliases or user@host:port, or a host set as
    /// folded output writes one: `web[01-40,42]`). The `HOSTS` environment variable says the
    /// same when the flag is not given, as Capistrano reads it.
    #[arg(long, global = true, value_name = "HOSTS", env = "HOSTS")]
    pub hosts: Vec<String>,
    /// Only hosts with these roles (comma-separated; needs a recipe). The `ROLES` environment
    /// variable says the same when the flag is not given, as Capistrano reads it.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        value_name = "ROLES",
        env = "ROLES"
    )]
    pub roles: Vec<String>,
    /// Connect to nothing; print what would run.
    #[arg(short = 'n', long = "dry-run", global = true)]
    pub dry_run: bool,
    /// Print more: connections, every command, heartbeats even on a terminal.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Reach every host through these jump hosts (`bastion`, `a,b`, `user@host:port`; `none`
    /// for directly), replacing a recipe's `via` and the ssh config's ProxyJump. Once only,
    /// as in ssh (several hops are one comma-separated list).
    #[arg(
        short = 'J',
        long = "jump",
        global = true,
        value_name = "[USER@]HOST[:PORT][,...]",
        action = clap::ArgAction::Append
    )]
    pub jump: Vec<String>,
    /// Every `-J` value given, wherever it stood (see [`parse`]): clap keeps only the last of
    /// a global option given before and after the subcommand, and ssh refuses a second `-J`.
    #[arg(skip)]
    pub jumps_given: Vec<String>,
    /// The adding-up options (`--hosts`, `--roles`, `-s`) given both before and after the
    /// subcommand (see [`parse`]): refused by [`GlobalArgs::settings`].
    #[arg(skip)]
    pub given_on_both_sides: Vec<&'static str>,
    /// Those of [`OPTION_ENV`] that gave an option its value (it was not given on the command
    /// line): named after an error, which names the option.
    #[arg(skip)]
    pub from_env: Vec<&'static str>,
    /// The subcommands' names, read from the command the line was parsed with (see
    /// `Settings::subcommands`).
    #[arg(skip)]
    pub subcommands: Vec<String>,
    /// Ask for the sudo password on the terminal (for `as_user`; `TETHER_SUDO_PASSWORD` is
    /// used when set). It is fed to sudo on stdin and masked in all output.
    #[arg(long, global = true)]
    pub ask_sudo_password: bool,
    /// Heartbeat interval for idle sessions (`15s`, `500ms`, `1m`) [default: 15s; 60s on hosts
    /// kept by protocol keepalives].
    #[arg(long, global = true, value_name = "DURATION", value_parser = tether::ssh::policy::parse_interval)]
    pub keepalive: Option<Duration>,
    /// Disable the heartbeat (for diagnosis only: idle sessions may then be dropped).
    #[arg(long, global = true, conflicts_with = "keepalive")]
    pub no_keepalive: bool,
    /// Run commands on a pseudo-terminal (stderr is then merged into stdout; Ctrl-C and
    /// `watch --kill` can stop them).
    #[arg(long, global = true)]
    pub pty: bool,
    /// How long to keep reconnecting to a host whose connection died while a command ran
    /// without a PTY, to re-attach to that still running command (`60s`, `0` never waits)
    /// [default: 60s]. Per step: `on(.., #{ reattach: N }, ..)`.
    #[arg(long, global = true, value_name = "DURATION", value_parser = tether::duration::parse)]
    pub reattach: Option<Duration>,
    /// Run on at most N hosts at once [default: all].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// When to use colour in text output.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    /// Print every host's lines, results and failures apart (text output folds the same line
    /// from many hosts into one, headed by `web[01-40]`).
    #[arg(long, global = true)]
    pub no_fold: bool,
    /// Only this part of the selected hosts (`2/5`: the second of five stable, disjoint parts),
    /// for one job of a CI matrix.
    // Hyphen values are taken, so that `--shard -1/2` meets the shard's own error.
    #[arg(long, global = true, value_name = "K/N", value_parser = Shard::parse, allow_hyphen_values = true)]
    pub shard: Option<Shard>,
    /// Set a recipe variable, overriding the recipe (`-s branch=main`).
    #[arg(short = 's', long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Write the run's timeline to FILE (one HTML page) when it ends, also when it fails or is
    /// interrupted (`tether [STAGE] TASK...` and `tether run`).
    #[arg(long, global = true, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Host-prefixed lines and a summary.
    Text,
    /// One JSON object per event, one per line.
    Json,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
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

impl RunArgs {
    /// The library's options for `tether run`.
    pub fn options(&self) -> tether::run::RunOptions {
        tether::run::RunOptions {
            stage: self.stage.clone(),
            timeout: self.timeout,
            command: self.command.join(" "),
        }
    }
}

impl TasksArgs {
    /// The library's options for `tether tasks`.
    pub fn options(&self) -> tether::runner::ListOptions {
        tether::runner::ListOptions {
            hooks: self.hooks,
            all: self.all,
            names: self.names,
            stage: self.stage.clone(),
        }
    }
}

impl CheckArgs {
    /// The library's options for `tether check`.
    pub fn options(&self) -> tether::check::CheckOptions {
        tether::check::CheckOptions {
            parse_config: self.parse_config,
            stage: self.stage.clone(),
        }
    }
}

impl HostsArgs {
    /// The library's options for `tether hosts`.
    pub fn options(&self) -> tether::hosts::HostsOptions {
        tether::hosts::HostsOptions {
            ssh_g: self.ssh_g,
            stage: self.stage.clone(),
            hosts: self.hosts.clone(),
        }
    }
}

impl WatchArgs {
    /// The library's options for `tether watch`.
    pub fn options(&self) -> tether::watch::WatchOptions {
        tether::watch::WatchOptions {
            kill: self.kill,
            debounce: self.debounce,
            targets: self.targets.clone(),
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command on every selected host in parallel.
    Run(RunArgs),
    /// List the recipe's tasks (`-T`, as `cap -T`).
    #[command(short_flag = 'T')]
    Tasks(TasksArgs),
    /// Report the server settings that could end an idle session (exit 1 if any is at risk).
    Check(CheckArgs),
    /// Run tasks, then re-run them whenever the recipe or a module it imports changes, with
    /// the sessions kept open between runs.
    Watch(WatchArgs),
    /// Open a shell on a host, or the first host of a role, in the recipe's `current` release
    /// (Deployer's `dep ssh`); `-- CMD` runs one command on a pseudo-terminal instead.
    Ssh(SshArgs),
    /// Show how each host is reached, resolved from the ssh config as `ssh` resolves it.
    Hosts(HostsArgs),
    /// Draw the timeline of a saved event stream (`--format json` output, a run log) as one
    /// HTML page.
    Report(ReportArgs),
    /// Print a completion script for a shell (`tether completions bash > /etc/bash_completion.d/tether`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff, `tether man | man -l -`), made from the same definitions as
    /// `--help`.
    Man,
    /// Write a commented deploy.rhai and its stage files (deploy/production.rhai,
    /// deploy/staging.rhai) for one kind of app; never overwrites a file.
    Init(InitArgs),
    /// Write Rhai definition files (`*.d.rhai`) for every function a recipe can call and the
    /// stdlib modules into DIR, for the Rhai language server and editors.
    Definitions(DefinitionsArgs),
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Tasks(_) => "tasks",
            Command::Check(_) => "check",
            Command::Watch(_) => "watch",
            Command::Hosts(_) => "hosts",
            Command::Ssh(_) => "ssh",
            Command::Report(_) => "report",
            Command::Completions(_) => "completions",
            Command::Man => "man",
            Command::Init(_) => "init",
            Command::Definitions(_) => "definitions",
        }
    }
}

/// `tether definitions DIR`.
#[derive(Debug, Args)]
pub struct DefinitionsArgs {
    /// The directory to write into (created when missing; files of the same names are
    /// replaced).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// `tether init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of app the recipe is written for.
    #[arg(long, value_enum, default_value_t = TemplateArg::Static)]
    pub template: TemplateArg,
}

/// `tether init --template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TemplateArg {
    /// Rails: Bundler, migrations, assets, puma restarted by systemd.
    Rails,
    /// Node: npm ci and npm run build, the app restarted by systemd.
    Node,
    /// PHP: Composer, php-fpm restarted by systemd.
    Php,
    /// Files only (a static site): the release flow alone.
    Static,
}

impl InitArgs {
    /// The library's template.
    pub fn template(&self) -> tether::init::Template {
        use tether::init::Template;
        match self.template {
            TemplateArg::Rails => Template::Rails,
            TemplateArg::Node => Template::Node,
            TemplateArg::Php => Template::Php,
            TemplateArg::Static => Template::Static,
        }
    }
}

/// `tether completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `tether report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The event stream: JSON lines as `--format json` prints them (`-`: stdin).
    #[arg(value_name = "EVENTS")]
    pub events: PathBuf,
    /// The HTML file to write (`-`: stdout) [default: EVENTS with the extension `.html`].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Which run of the stream to draw, counting from 1 [default: the last].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub run: Option<u32>,
}

/// `tether ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// A server of the recipe, or a role (its first server); without a recipe, an ssh config
    /// alias or user@host:port.
    #[arg(value_name = "HOST|ROLE")]
    pub target: String,
    /// With a recipe: select this stage first.
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
    /// A command to run on a pseudo-terminal instead of a shell (after `--`; joined with
    /// spaces, as `ssh` does).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl SshArgs {
    /// The library's options for `tether ssh`.
    pub fn options(&self) -> tether::shell::ShellOptions {
        tether::shell::ShellOptions {
            target: self.target.clone(),
            stage: self.stage.clone(),
            command: self.command.clone(),
        }
    }
}

/// `tether hosts`.
#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Print each host's configuration as `ssh -G HOST` prints it (the keywords tether
    /// honours), to compare with ssh's.
    #[arg(short = 'G')]
    pub ssh_g: bool,
    /// With a recipe: this stage's servers.
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
    /// Hosts to show (ssh config aliases or user@host:port) [default: --hosts, else the
    /// recipe's servers]. (Its own id: an argument named `hosts` here would hide the global
    /// `--hosts` from this subcommand.)
    #[arg(id = "host_names", value_name = "HOST")]
    pub hosts: Vec<String>,
}

/// `tether watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Stop in-flight commands when a change cancels a run (default: wait for them).
    #[arg(long)]
    pub kill: bool,
    /// Quiet time after a change before the run starts.
    #[arg(long, value_name = "DURATION", value_parser = tether::duration::parse_positive, default_value = "100ms")]
    pub debounce: Duration,
    /// Tasks to run, optionally after a stage (`tether watch staging deploy:check`).
    #[arg(required = true, value_name = "TASK")]
    pub targets: Vec<String>,
}

/// `tether check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read the sshd config files instead of running `sshd -T` (which needs root).
    #[arg(long)]
    pub parse_config: bool,
    /// With a recipe: check this stage's servers.
    #[arg(value_name = "STAGE")]
    pub stage: Option<String>,
}

/// `tether tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Also show what runs before and after each task.
    #[arg(long)]
    pub hooks: bool,
    /// Also list tasks without a description (hidden otherwise, as Rake's `-T` hides them)
    /// and stdlib tasks of another strategy than the recipe's (`copy:*` under git).
    #[arg(long)]
    pub all: bool,
    /// Only the names, one a line: the stages, then the tasks that apply (for the completion
    /// scripts).
    #[arg(long, hide = true)]
    pub names: bool,
    /// With a recipe: list this stage's tasks too (those its closure or stage file declares).
    #[arg(value_name = "STAGE")]
    pub stage: Option<String>,
}

/// `tether run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// With a recipe: select this stage's servers.
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
    /// Give up on a host whose command runs longer than this.
    #[arg(long, value_name = "DURATION", value_parser = tether::duration::parse_positive)]
    pub timeout: Option<Duration>,
    /// The command (joined with spaces, as `ssh` does).
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {

    /// `--format json` as clap takes it, for the error object of a command line clap refused.
    #[test]
    fn json_is_asked_for_as_clap_reads_the_format() {
        let asked = |args: &[&str]| super::json_asked(args.iter().map(|a| a.to_string()));
        assert!(asked(&["--format", "json", "--bogus"]));
        assert!(asked(&["--format=json", "run", "--nope"]));
        assert!(asked(&["run", "--format", "json", "--x"]));
        assert!(asked(&["--format", "text", "--format", "json"]));
        assert!(!asked(&["--format", "json", "--format", "text"]));
        assert!(!asked(&["--bogus"]));
        assert!(!asked(&["run", "--", "--format", "json"]));
        assert!(!asked(&["--format"]));
        assert!(!asked(&["--format", "xml"]));
        // After the option clap stopped at (tester t126).
        assert!(asked(&["--bogus-flag", "--format", "json"]));
        assert!(asked(&["check", "--bogus", "--format=json"]));
        assert!(asked(&["run", "--bogus", "--format", "json", "--", "x"]));
        assert!(!asked(&["--bogus", "--format", "json", "--format", "text"]));
        assert!(!asked(&["run", "--bogus", "--", "--format", "json"]));
    }
    use super::*;

    #[test]
    fn global_options_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["tether", "run", "--hosts", "a,b", "-v", "--", "echo", "-n"])
                .unwrap();
        assert_eq!(cli.global.settings().unwrap().hosts, ["a", "b"]);
        assert!(cli.global.verbose);
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["echo", "-n"]);
        let cli = Cli::try_parse_from(["tether", "-F", "cfg", "--parallel", "2", "run", "uptime"])
            .unwrap();
        assert_eq!(cli.global.parallel, Some(2));
    }

    #[test]
    fn repeated_options() {
        let parse = |args: &[&str]| parse_from(args.iter().copied()).unwrap();
        // The last -F wins, wherever each stands.
        for args in [
            &["tether", "-F", "a", "-F", "b", "hosts"][..],
            &["tether", "-F", "a", "hosts", "-F", "b"],
            &["tether", "hosts", "--ssh-config", "a", "-F", "b"],
        ] {
            assert_eq!(parse(args).global.ssh_config, Some(PathBuf::from("b")));
        }
        // Every -J is seen, and refused when there is more than one.
        for args in [
            &["tether", "-J", "x", "-J", "y", "hosts"][..],
            &["tether", "-J", "x", "hosts", "--jump", "y"],
            &["tether", "run", "--jump=x", "-Jy", "--", "true"],
        ] {
            let cli = parse(args);
            assert_eq!(cli.global.jumps_given.len(), 2, "{args:?}");
            let err = cli.global.settings().unwrap_err();
            assert!(err.message.contains("given more than once (x, y)"), "{err}");
        }
        // A -J in the remote command is the command's.
        let cli = parse(&["tether", "run", "-J", "x", "--", "ssh", "-J", "y", "h"]);
        assert_eq!(cli.global.jumps_given, ["x"]);
        assert_eq!(cli.global.settings().unwrap().jump.as_deref(), Some("x"));
        // --hosts, --roles and -s add up on one side, and are refused on both; other options
        // take their last value.
        let cli = parse(&["tether", "hosts", "--hosts", "a", "--hosts", "b,c[1-2]"]);
        assert_eq!(cli.global.settings().unwrap().hosts, ["a", "b", "c1", "c2"]);
        for args in [
            &["tether", "--hosts", "a", "hosts", "--hosts", "b"][..],
            &["tether", "--roles", "a", "run", "--roles", "b", "--", "x"],
            &["tether", "-s", "a=1", "run", "-s", "b=2", "--", "x"],
        ] {
            let err = parse(args).global.settings().unwrap_err();
            assert!(
                err.message.contains("both before and after the subcommand"),
                "{err}"
            );
        }
        // A short option with its value attached is an option, not the start of the command.
        let Some(Command::Run(run)) =
            parse(&["tether", "run", "-Jnone", "-vn", "--", "-x", "y"]).command
        else {
            panic!("not run")
        };
        assert_eq!(run.command, ["-x", "y"]);
        let cli = parse(&["tether", "run", "-Jnone", "echo", "-n", "x"]);
        assert_eq!(cli.global.jump.last().map(String::as_str), Some("none"));
        let cli = parse(&[
            "tether", "--format", "json", "--format", "text", "-v", "-v", "hosts",
        ]);
        assert_eq!(cli.global.format, FormatArg::Text);
        let Some(Command::Hosts(hosts)) =
            parse(&["tether", "hosts", "--hosts", "a", "x", "y"]).command
        else {
            panic!("not hosts")
        };
        assert_eq!(hosts.hosts, ["x", "y"]);
    }

    #[test]
    fn report_and_timeline() {
        let cli =
            Cli::try_parse_from(["tether", "report", "e.jsonl", "-o", "t.html", "--run", "2"])
                .unwrap();
        let Some(Command::Report(report)) = cli.command else {
            panic!("not report")
        };
        assert_eq!(report.output, Some(PathBuf::from("t.html")));
        assert_eq!(report.run, Some(2));
        assert!(Cli::try_parse_from(["tether", "report", "e.jsonl", "--run", "0"]).is_err());
        let cli = Cli::try_parse_from(["tether", "deploy", "--timeline", "t.html"]).unwrap();
        assert_eq!(
            cli.global.settings().unwrap().timeline,
            Some(PathBuf::from("t.html"))
        );
    }

    /// The library's list of subcommand words is clap's (a task or stage of those names is
    /// refused by the recipe: `tether NAME` runs the subcommand).
    #[test]
    fn the_subcommand_words_are_claps() {
        use clap::CommandFactory as _;
        let mut words: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .chain(["help".to_string()])
            .collect();
        words.sort();
        let mut listed: Vec<String> = tether::settings::SUBCOMMANDS
            .iter()
            .map(|w| w.to_string())
            .collect();
        listed.sort();
        assert_eq!(words, listed);
    }

    #[test]
    fn stage_and_tasks_without_subcommand() {
        let cli =
            Cli::try_parse_from(["tether", "production", "deploy", "-s", "branch=x"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.targets, ["production", "deploy"]);
        assert_eq!(cli.global.set, ["branch=x"]);
    }
}
