//! The `tether` binary: parses the command line, runs the library, maps errors to exit codes.

use clap::Parser as _;

mod cli;

use cli::{Cli, Command};

use tether::error::Error;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = tether::secret::init_sudo_password(cli.global.ask_sudo_password) {
        eprintln!("error: {e}");
        std::process::exit(Error::Usage(e).exit_code());
    }
    let settings = match cli.global.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(Error::Usage(e).exit_code());
        }
    };
    let interrupted = tether::interrupt::install();
    let result: Result<(), Error> = match &cli.command {
        Some(Command::Run(args)) => tether::run::run(&settings, &args.options(), interrupted),
        Some(Command::Tasks(args)) => tether::runner::list(&settings, args.hooks, interrupted),
        Some(Command::Check(args)) => {
            tether::check::check(&settings, &args.options(), interrupted)
        }
        Some(Command::Watch(args)) => tether::watch::run(&settings, &args.options(), interrupted),
        Some(Command::Hosts(args)) => tether::hosts::run(&settings, &args.options(), interrupted),
        None if cli.targets.is_empty() => Err(Error::Usage(
            "nothing to do: `tether [STAGE] TASK...`, `tether tasks`, `tether run -- CMD` (see --help)"
                .into(),
        )),
        None => tether::runner::run(&settings, &cli.targets, interrupted),
    };
    if let Err(e) = result {
        eprintln!("error: {}", tether::secret::mask(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
