//! What the command line takes: clap's definitions of the options and subcommands, and each
//! subcommand's arguments as the library's options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use tether::hostset::Shard;

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
