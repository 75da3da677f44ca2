//! The `tether` binary: parses the command line, runs the library, maps errors to exit codes.

use clap::Parser as _;

use tether::cli::{Cli, Command};
use tether::error::Error;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = tether::secret::init_sudo_password(cli.global.ask_sudo_password) {
        eprintln!("error: {e}");
        std::process::exit(Error::Usage(e).exit_code());
    }
    let interrupted = tether::interrupt::install();
    let result: Result<(), Error> = match &cli.command {
        Some(Command::Run(args)) => tether::run::run(&cli.global, args, interrupted),
        Some(Command::Tasks(args)) => tether::runner::list(&cli.global, args.hooks, interrupted),
        Some(Command::Check(args)) => tether::check::check(&cli.global, args, interrupted),
        Some(Command::Watch(args)) => tether::watch::run(&cli.global, args, interrupted),
        Some(Command::Hosts(args)) => tether::hosts::run(&cli.global, args, interrupted),
        None if cli.targets.is_empty() => Err(Error::Usage(
            "nothing to do: `tether [STAGE] TASK...`, `tether tasks`, `tether run -- CMD` (see --help)"
                .into(),
        )),
        None => tether::runner::run(&cli.global, &cli.targets, interrupted),
    };
    if let Err(e) = result {
        eprintln!("error: {}", tether::secret::mask(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
