use clap::Parser as _;

use tether::cli::{Cli, Command};
use tether::error::Error;

fn main() {
    let cli = Cli::parse();
    let interrupted = tether::interrupt::install();
    let result: Result<(), Error> = match &cli.command {
        Some(Command::Run(args)) => tether::run::run(&cli.global, args, interrupted),
        Some(Command::Tasks(args)) => tether::runner::list(&cli.global, args.hooks, interrupted),
        None if cli.targets.is_empty() => Err(Error::Usage(
            "nothing to do: `tether [STAGE] TASK...`, `tether tasks`, `tether run -- CMD` (see --help)"
                .into(),
        )),
        None => tether::runner::run(&cli.global, &cli.targets, interrupted),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
