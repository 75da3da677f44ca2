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

/// The environment variables that stand for options (`env = ...` below).
pub const OPTION_ENV: &[&str] = &["TETHER_SSH_CONFIG", "HOSTS", "ROLES"];

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
    /// `ssh_config`, else ~/.ssh/config then /etc/ssh/ssh_config].
    #[arg(
        short = 'F',
        long = "ssh-config",
        global = true,
        value_name = "FILE",
        env = "TETHER_SSH_CONFIG"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Only these hosts (comma-separated; ssh config aliases or user@host:port). The `HOSTS`
    /// environment variable says the same when the flag is not given, as Capistrano reads it.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        value_name = "HOSTS",
        env = "HOSTS"
    )]
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
    /// for directly), replacing a recipe's `via` and the ssh config's ProxyJump.
    #[arg(
        short = 'J',
        long = "jump",
        global = true,
        value_name = "[USER@]HOST[:PORT][,...]"
    )]
    pub jump: Option<String>,
    /// Ask for the sudo password on the terminal (for `as_user`; `TETHER_SUDO_PASSWORD` is
    /// used when set). It is fed to sudo on stdin and masked in all output.
    #[arg(long, global = true)]
    pub ask_sudo_password: bool,
    /// Heartbeat interval for idle sessions (`15s`, `500ms`, `1m`) [default: 15s].
    #[arg(long, global = true, value_name = "DURATION", value_parser = tether::duration::parse_positive)]
    pub keepalive: Option<Duration>,
    /// Disable the heartbeat (for diagnosis only: idle sessions may then be dropped).
    #[arg(long, global = true, conflicts_with = "keepalive")]
    pub no_keepalive: bool,
    /// Run commands on a pseudo-terminal (stderr is then merged into stdout; Ctrl-C and
    /// `watch --kill` can stop them).
    #[arg(long, global = true)]
    pub pty: bool,
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
    #[arg(long, global = true, value_name = "K/N", value_parser = Shard::parse)]
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
    /// The settings these options ask for; Err for a bad `-s`.
    pub fn settings(&self) -> Result<Settings, String> {
        let overrides = self
            .set
            .iter()
            .map(|s| settings::parse_override(s))
            .collect::<Result<_, _>>()?;
        Ok(Settings {
            recipe: self
                .file
                .clone()
                .unwrap_or_else(|| settings::DEFAULT_RECIPE.into()),
            ssh_config: self.ssh_config.clone(),
            hosts: self.hosts.clone(),
            roles: self.roles.clone(),
            dry_run: self.dry_run,
            verbose: self.verbose,
            jump: self.jump.clone(),
            keepalive: match (self.no_keepalive, self.keepalive) {
                (true, _) => Keepalive::Off,
                (false, Some(d)) => Keepalive::Every(d),
                (false, None) => Keepalive::Default,
            },
            pty: self.pty,
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
            fold: !self.no_fold,
            shard: self.shard,
            timeline: self.timeline.clone(),
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
    /// recipe's servers].
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,
}

/// `tether watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Stop in-flight PTY commands when a change cancels a run (default: wait for them).
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
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_options_after_the_subcommand() {
        let cli =
            Cli::try_parse_from(["tether", "run", "--hosts", "a,b", "-v", "--", "echo", "-n"])
                .unwrap();
        assert_eq!(cli.global.hosts, ["a", "b"]);
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

    #[test]
    fn stage_and_tasks_without_subcommand() {
        let cli =
            Cli::try_parse_from(["tether", "production", "deploy", "-s", "branch=x"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.targets, ["production", "deploy"]);
        assert_eq!(cli.global.set, ["branch=x"]);
    }
}
