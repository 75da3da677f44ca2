//! The `tether` binary: parses the command line, runs the library, maps errors to exit codes.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{bail, Context as _};

mod cli;
mod completions;

use cli::{Cli, Command, ReportArgs};

use tether::error::Error;
use tether::settings::{Format, Settings};

fn main() {
    cli::forget_empty_option_env();
    let cli = cli::parse();
    tether::fd_limit::raise();
    if let Err(e) = tether::secret::init_sudo_password(cli.global.ask_sudo_password) {
        tether::errln!("error: {e}");
        let error = Error::Usage(e);
        if matches!(cli.global.format, cli::FormatArg::Json) {
            cli::json_error(error.exit_code(), &error.to_string());
        }
        std::process::exit(error.exit_code());
    }
    let settings = match cli.global.settings() {
        Ok(s) => s,
        Err(e) => {
            tether::errln!("error: {e}");
            if let Some(note) = cli::environment_note(&cli.global, e.about) {
                tether::errln!("{note}");
            }
            let error = Error::Usage(e.message);
            if matches!(cli.global.format, cli::FormatArg::Json) {
                cli::json_error(error.exit_code(), &error.to_string());
            }
            std::process::exit(error.exit_code());
        }
    };
    // JSON holds no colour to strip, and every character of a line or a name (stripping
    // colour removes DEL: stop 50 tester t72), for every subcommand (`tasks`, `init`).
    if settings.format == Format::Json {
        tether::stdout::set_color(anstream::ColorChoice::AlwaysAnsi);
    }
    if let Err(e) = timeline_applies(&cli, &settings) {
        tether::errln!("error: {e}");
        std::process::exit(Error::Usage(e).exit_code());
    }
    // Installed by the commands that run something: Ctrl-C still ends `report` at once.
    let interrupted = tether::interrupt::install;
    if matches!(
        cli.command,
        Some(Command::Run(_) | Command::Check(_) | Command::Watch(_)) | None
    ) {
        tether::interrupt::stop_run_when_stdout_closes();
        tether::stdout::watch_reader();
    }
    let result: Result<(), Error> = match &cli.command {
        Some(Command::Run(args)) => tether::run::run(&settings, &args.options(), interrupted()),
        Some(Command::Tasks(args)) => tether::runner::list(&settings, &args.options(), interrupted()),
        Some(Command::Check(args)) => {
            tether::check::check(&settings, &args.options(), interrupted())
        }
        Some(Command::Watch(args)) => tether::watch::run(&settings, &args.options(), interrupted()),
        Some(Command::Report(args)) => {
            if let Err(e) = report(args, settings.format) {
                let text = tether::secret::mask(&format!("{e:#}")).into_owned();
                tether::errln!("error: {text}");
                if settings.format == Format::Json {
                    cli::json_error(tether::exit::USAGE, &text);
                }
                std::process::exit(tether::exit::USAGE);
            }
            Ok(())
        }
        // Their output is a shell script or a manual page: no JSON object can carry it (stop
        // 61 tester t102: both ignored --format json, exit 0), as `tether ssh` refuses it.
        Some(Command::Completions(_)) if settings.format == Format::Json => Err(Error::Usage(
            "--format json: `tether completions` prints a shell's completion script, not JSON \
             objects; drop --format json"
                .into(),
        )),
        Some(Command::Man) if settings.format == Format::Json => Err(Error::Usage(
            "--format json: `tether man` prints a manual page (roff), not JSON objects; drop \
             --format json"
                .into(),
        )),
        Some(Command::Completions(args)) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let text = completions::script(args.shell, &mut cmd);
            // Through tether's stdout: a reader that goes away ends it quietly (141).
            tether::stdout::write(format_args!("{text}"));
            Ok(())
        }
        Some(Command::Man) => {
            let mut text = Vec::new();
            // Writing to a Vec cannot fail.
            let _ = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut text);
            tether::stdout::write(format_args!("{}", String::from_utf8_lossy(&text)));
            Ok(())
        }
        Some(Command::Definitions(args)) => {
            tether::recipe::definitions::run(&settings, &args.dir)
        }
        Some(Command::Init(args)) => tether::init::run(&settings, args.template()),
        Some(Command::Ssh(args)) => match tether::shell::run(&settings, &args.options(), interrupted()) {
            Ok(status) => std::process::exit(status),
            Err(e) => Err(e),
        },
        Some(Command::Hosts(args)) => tether::hosts::run(&settings, &args.options(), interrupted()),
        None if cli.targets.is_empty() => Err(Error::Usage(
            "nothing to do: `tether [STAGE] TASK...`, `tether tasks`, `tether run -- CMD` (see --help)"
                .into(),
        )),
        None => tether::runner::run(&settings, &cli.targets, interrupted()),
    };
    if let Err(e) = result {
        let fold = settings.fold && settings.format == Format::Text;
        let said = match &e {
            Error::Failed(f) if f.shown && tether::stdout::shares_stderr() => f.headline(),
            e => e.text(fold),
        };
        // A run stdout's reader stopped (as a first Ctrl-C does; exit 141) says so, not
        // `interrupted`, the interrupt's own word its failure begins with (stop 61 tester t102:
        // `tether -n TASK | head -1` ended `error: interrupted`).
        let said = match said.strip_prefix("interrupted") {
            Some(rest) if e.is_interrupted() && tether::stdout::closed() => {
                format!("stopped: stdout was closed by its reader{rest}")
            }
            _ => said,
        };
        let text = tether::secret::mask(&said).into_owned();
        // Its words may be a host's (a stderr tail) or a recipe's: shown, never acted on.
        tether::errln!("error: {}", tether::report::visible_lines(&text));
        // The selection's variables after a usage error (an unknown host or role), the ssh
        // config's after an error in the file it named.
        let from_env: &[&str] = match &e {
            Error::Usage(_) => &["HOSTS", "ROLES"],
            Error::SshConfig(_) => &["TETHER_SSH_CONFIG"],
            _ => &[],
        };
        if let Some(note) = cli::environment_note(&cli.global, from_env) {
            tether::errln!("{note}");
        }
        // JSON readers see it too where no object that ends a run said it (a recipe that does
        // not parse, an unknown task): the stream's last object.
        if settings.format == Format::Json && !tether::report::closed_in_json() {
            cli::json_error(e.exit_code(), &text);
        }
        std::process::exit(e.exit_code());
    }
    if tether::stdout::closed() {
        std::process::exit(tether::exit::BROKEN_PIPE);
    }
    // Said when it happened (see tether::stdout::failed): output lost is no success.
    if tether::stdout::write_error().is_some() {
        std::process::exit(tether::exit::USAGE);
    }
}

/// `--timeline` draws a run: refused where there is none (`tasks`, `check`, `watch`, `report`,
/// a dry run).
fn timeline_applies(cli: &Cli, settings: &Settings) -> Result<(), String> {
    if settings.timeline.is_none() {
        return Ok(());
    }
    match &cli.command {
        Some(Command::Run(_)) | None if settings.dry_run => {
            Err("--timeline: a dry run (-n) runs nothing to draw".into())
        }
        Some(Command::Run(_)) | None => Ok(()),
        Some(other) => Err(format!(
            "--timeline draws a run: use it with `tether [STAGE] TASK...` or `tether run`, not \
             `tether {}` (`tether report EVENTS -o FILE` draws a saved stream)",
            other.name()
        )),
    }
}

/// `tether report EVENTS [-o FILE] [--run N]`: the timeline of a saved event stream.
fn report(args: &ReportArgs, format: Format) -> anyhow::Result<()> {
    let stdin = args.events.as_os_str() == "-";
    let output = match &args.output {
        Some(o) => o.clone(),
        None if stdin => bail!("reading the events from stdin: name the HTML file with -o FILE"),
        None => args.events.with_extension("html"),
    };
    if !stdin && output == args.events {
        bail!(
            "-o {}: that is the event stream itself; name another file",
            output.display()
        );
    }
    let run = args.run.map(|n| n as usize);
    let rendered = if stdin {
        tether::timeline::render(std::io::stdin().lock(), run)
            .context("cannot draw a timeline from the events on stdin")?
    } else {
        let file = std::fs::File::open(&args.events)
            .with_context(|| format!("cannot open the event stream {}", args.events.display()))?;
        tether::timeline::render(BufReader::new(file), run)
            .with_context(|| format!("cannot draw a timeline from {}", args.events.display()))?
    };
    if output.as_os_str() == "-" {
        tether::out!("{}", rendered.html);
        return Ok(());
    }
    tether::timeline::write_atomically(&output, rendered.html.as_bytes())?;
    let path = absolute(&output);
    match format {
        Format::Json => tether::outln!(
            "{}",
            serde_json::json!({
                "type": "report",
                "path": path.display().to_string(),
                "run": rendered.run,
                "runs": rendered.runs,
                "hosts": rendered.hosts,
                "commands": rendered.commands,
            })
        ),
        Format::Text => tether::outln!(
            "timeline: {} (run {} of {}, {} host{}, {} command{})",
            path.display(),
            rendered.run,
            rendered.runs,
            rendered.hosts,
            if rendered.hosts == 1 { "" } else { "s" },
            rendered.commands,
            if rendered.commands == 1 { "" } else { "s" },
        ),
    }
    Ok(())
}

/// `path` from the root, for a line the user can paste into a browser.
fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
