//! Command-line interface: the command line parsed (`args.rs` what it takes, `resolve.rs` the
//! settings it makes). Global options work before or after the subcommand.

use clap::Parser;

mod args;
mod resolve;

pub use args::{Command, FormatArg, GlobalArgs, ReportArgs, TasksArgs};
use resolve::OPTION_ENV;
pub use resolve::{environment_note, forget_empty_option_env};

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
    use std::path::PathBuf;

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
