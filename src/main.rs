use clap::Parser as _;

use tether::cli::{Cli, Command};
use tether::error::Error;

fn main() {
    let cli = Cli::parse();
    let interrupted = tether::interrupt::install();
    let result: Result<(), Error> = match &cli.command {
        Command::Run(args) => tether::run::run(&cli.global, args, interrupted),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
