//! The recipe variables tether itself reads (`keepalive`, `log_file`, `ssh_config`): checked
//! where they are set (`set` in the recipe, `-s KEY=VALUE`), so a bad value is refused with
//! the place that set it (the recipe's file:line:col, or the `-s` argument), never later,
//! when the run reads it, with no place at all.

use std::time::Duration;

use rhai::{Dynamic, ImmutableString};

use crate::ssh::policy::{asked_interval, parse_interval};

/// The variables whose value is a path: a `-s` value for them is kept as text (`-s
/// log_file=2024` is the file `2024`, not the number).
pub const PATHS: [&str; 2] = ["log_file", "ssh_config"];

/// `keepalive`: seconds (a positive integer or float) or a duration string (`"15s"`,
/// `"500ms"`, `"2m"`: see `crate::duration::parse`). Err says why, without the place.
pub fn keepalive(value: &Dynamic) -> Result<Duration, String> {
    let seconds = value
        .as_int()
        .map(|i| i as f64)
        .or_else(|_| value.as_float());
    match seconds {
        Ok(s) => crate::duration::seconds(s).and_then(|d| asked_interval(d, &s.to_string())),
        Err(_) => match value.clone().into_immutable_string() {
            Ok(text) => parse_interval(&text),
            Err(t) => Err(format!(
                "a heartbeat interval (seconds, or a duration like \"15s\"), not {t}"
            )),
        },
    }
}

/// A path variable's value (`log_file`, `ssh_config`): a string, `what` saying what it names.
pub fn path(value: &Dynamic, what: &str) -> Result<ImmutableString, String> {
    value
        .clone()
        .into_immutable_string()
        .map_err(|t| format!("a path to {what}, not {t}"))
}

/// Where the run log goes, from the `log_file` variable's `value` (unset: `log/tether.log`)
/// and the recipe's directory `dir`: `None` for `""` (no run log). Err: not a string.
pub fn log_file(
    value: Option<&Dynamic>,
    dir: &std::path::Path,
) -> Result<Option<std::path::PathBuf>, String> {
    let path = match value {
        None => std::path::PathBuf::from("log/tether.log"),
        Some(v) => {
            let text = path(v, LOG_FILE)?;
            if text.is_empty() {
                return Ok(None);
            }
            std::path::PathBuf::from(text.as_str())
        }
    };
    Ok(Some(if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }))
}

/// Whether tether reads the variable `key` itself, once, when the run starts (see the module
/// documentation): setting it later changes nothing, and is refused ([`too_late`]); nor can it
/// be asked for (`ask`), as the run reads it before any task could fetch it.
pub fn read_by_tether(key: &str) -> bool {
    key == "keepalive" || PATHS.contains(&key)
}

/// Why `call` (`set`, `set_secret`, `ask`) of the variable `key`, which tether reads itself,
/// is refused where it was made (in a task, or by `ask`).
pub fn too_late(call: &str, key: &str) -> String {
    format!(
        "{call}(\"{key}\", ...): tether reads `{key}` itself when the run starts, before any \
         task: set it at the top level of the recipe or in a stage (or with -s {key}=...)"
    )
}

/// Why `ssh_options` is refused, as a variable or a server's property: it is Capistrano's
/// (net-ssh's settings), and tether reads OpenSSH's config instead; a recipe ported from
/// Capistrano would otherwise reach its hosts another way than it says, without a word.
pub const SSH_OPTIONS: &str = "tether reads no `ssh_options` (Capistrano's net-ssh settings): give a server's user and port in the server (`server(\"web\", #{ user: \"deploy\", port: 2222 })`, or `deploy@web:2222`), and the rest in the ssh config (`-F`, or `set(\"ssh_config\", ...)`: `Host web` with `IdentityFile`, `ForwardAgent yes`, `ProxyJump`...)";

/// What `log_file` names (`""`: no run log).
pub const LOG_FILE: &str = "the run log (\"\" for none)";
/// What `ssh_config` names (`"none"`: none, as `ssh -F none`).
pub const SSH_CONFIG: &str = "an ssh config file (\"none\" for none)";

/// Checks `value` as the variable `key`, where tether reads that variable; any other key
/// passes. Err says why, without the place (the caller adds it).
pub fn check(key: &str, value: &Dynamic) -> Result<(), String> {
    match key {
        "keepalive" => keepalive(value).map(drop),
        "ssh_options" => Err(SSH_OPTIONS.into()),
        "log_file" => path(value, LOG_FILE).map(drop),
        "ssh_config" => match path(value, SSH_CONFIG)?.as_str() {
            "" => Err("an empty path (\"none\" reads no ssh config file, as ssh -F none)".into()),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_takes_positive_seconds_and_durations_only() {
        let ok = |v: Dynamic| keepalive(&v).expect("a valid keepalive");
        assert_eq!(ok(15_i64.into()), Duration::from_secs(15));
        assert_eq!(ok(1.5_f64.into()), Duration::from_millis(1500));
        assert_eq!(ok("500ms".into()), Duration::from_millis(500));
        assert_eq!(ok("2m".into()), Duration::from_secs(120));
        for bad in [
            Dynamic::from(0_i64),
            Dynamic::from(-3_i64),
            Dynamic::from(0.0_f64),
            Dynamic::from(f64::NAN),
            Dynamic::from(f64::INFINITY),
            Dynamic::from(1e30_f64),
            Dynamic::from("0s"),
            Dynamic::from("abc"),
            Dynamic::from(""),
            Dynamic::from(true),
            Dynamic::UNIT,
        ] {
            assert!(keepalive(&bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn only_the_variables_tether_reads_are_checked() {
        assert!(check("log_file", &Dynamic::from(3_i64)).is_err());
        assert!(check("ssh_config", &Dynamic::from(true)).is_err());
        assert!(check("log_file", &Dynamic::from("")).is_ok());
        assert!(check("keepalive", &Dynamic::from("1h")).is_ok());
        assert!(check("branch", &Dynamic::from(3_i64)).is_ok());
    }
}
