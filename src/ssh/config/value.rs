//! A keyword's value: its arguments checked against its shape as readconf.c checks them,
//! whether or not the line applies to the host being resolved.

use super::arguments::{agent_path, convtime};
use super::keyword::{Keyword, Shape};
use crate::ssh_syntax::port::{port, strtonum};

/// A checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// [`Shape::Flag`].
    Flag(bool),
    /// [`Shape::Choice`], lowercased.
    Choice(String),
    /// [`Shape::Time`] in seconds; `None` for `none`.
    Time(Option<u64>),
    /// [`Shape::Int`].
    Int(u64),
    /// [`Shape::Port`].
    Port(u16),
    /// One argument.
    Str(String),
    /// Several arguments.
    List(Vec<String>),
    /// The unsplit rest of the line.
    Command(String),
}

impl Value {
    /// The value as text (a list joined with spaces).
    pub fn text(&self) -> String {
        match self {
            Value::Flag(b) => if *b { "yes" } else { "no" }.to_string(),
            Value::Choice(s) | Value::Str(s) | Value::Command(s) => s.clone(),
            Value::Time(Some(n)) => n.to_string(),
            Value::Time(None) => "none".to_string(),
            Value::Int(n) => n.to_string(),
            Value::Port(p) => p.to_string(),
            Value::List(v) => v.join(" "),
        }
    }
}

/// Checks `args` (and the raw `rest` of the line) against the keyword's shape, as ssh does
/// whether or not the line applies to the host being resolved.
pub fn check(kw: &Keyword, args: &[String], rest: &str) -> Result<Value, String> {
    let name = kw.name;
    let one = |args: &[String]| -> Result<String, String> {
        match args {
            [] => Err(format!("{name}: missing argument")),
            [a] if a.is_empty() => Err(format!("{name}: missing argument")),
            [a] => Ok(a.clone()),
            _ => Err(format!("{name}: extra arguments at end of line")),
        }
    };
    match kw.shape {
        Shape::Structural => Ok(Value::List(args.to_vec())),
        Shape::Flag => {
            let a = one(args)?;
            match a.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(Value::Flag(true)),
                "no" | "false" => Ok(Value::Flag(false)),
                _ => Err(format!("{name}: unsupported option \"{a}\" (yes or no)")),
            }
        }
        Shape::Choice(choices) => {
            let a = one(args)?;
            let lower = a.to_ascii_lowercase();
            if choices.contains(&lower.as_str()) {
                Ok(Value::Choice(lower))
            } else {
                Err(format!(
                    "{name}: unsupported option \"{a}\" (one of {})",
                    choices.join(", ")
                ))
            }
        }
        Shape::Time => {
            let a = one(args)?;
            if a == "none" {
                return Ok(Value::Time(None));
            }
            convtime(&a)
                .map(|s| Value::Time(Some(s)))
                .ok_or_else(|| format!("{name}: invalid time value \"{a}\""))
        }
        Shape::Int => {
            let a = one(args)?;
            strtonum(&a, 0, i64::from(i32::MAX))
                .and_then(|n| u64::try_from(n).ok())
                .map(Value::Int)
                .ok_or_else(|| format!("{name}: integer value \"{a}\" is invalid"))
        }
        Shape::Port => {
            let a = one(args)?;
            port(&a)
                .map(Value::Port)
                .ok_or_else(|| format!("{name}: bad port \"{a}\""))
        }
        Shape::Str => one(args).map(Value::Str),
        Shape::List => {
            if args.is_empty() {
                return Err(format!("{name}: missing argument"));
            }
            if args.iter().any(String::is_empty) {
                return Err(format!("{name}: empty argument"));
            }
            if args.len() > 1 && args.iter().any(|a| a.eq_ignore_ascii_case("none")) {
                return Err(format!("{name}: \"none\" must appear alone"));
            }
            Ok(Value::List(args.to_vec()))
        }
        Shape::Command => Ok(Value::Command(
            rest.trim_start_matches([' ', '\t', '\r', '\n', '='])
                .to_string(),
        )),
        Shape::Jump => {
            let spec = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
            let spec = spec.split('#').next().unwrap_or_default().trim_end();
            // ssh (9.2 as Debian ships it) reads the first word only: a list written with
            // spaces fails the hosts it applies to (resolve.rs), not the whole config.
            let first = spec.split([' ', '\t']).next().unwrap_or_default();
            super::jump_spec::parse(first)
                .map_err(|e| format!("invalid ProxyJump \"{spec}\": {e}"))?;
            Ok(Value::Command(spec.to_string()))
        }
        Shape::AgentPath => {
            let a = one(args)?;
            agent_path(&a)?;
            Ok(Value::Str(a))
        }
        Shape::ForwardAgent => {
            let a = one(args)?;
            match a.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(Value::Flag(true)),
                "no" | "false" => Ok(Value::Flag(false)),
                _ => {
                    agent_path(&a)?;
                    Ok(Value::Str(a))
                }
            }
        }
        Shape::Algorithms => {
            let a = one(args)?;
            super::algorithm_names::check(name, &a)?;
            Ok(Value::Str(a))
        }
        Shape::Forward => {
            super::forward::from_args(name, args)?;
            Ok(Value::List(args.to_vec()))
        }
        Shape::EnvNames => {
            if args.is_empty() {
                return Err(format!("no {name} specified"));
            }
            if args.iter().any(|a| a.is_empty() || a.contains('=')) {
                return Err(format!("{name}: invalid environment name"));
            }
            Ok(Value::List(args.to_vec()))
        }
        Shape::EnvAssignments => {
            if args.is_empty() {
                return Err(format!("no {name} specified"));
            }
            if args.iter().any(|a| !a.contains('=')) {
                return Err(format!("{name}: invalid SetEnv (NAME=value)"));
            }
            Ok(Value::List(args.to_vec()))
        }
        Shape::Custom(f) => {
            f(args).map_err(|e| format!("{name}: {e}"))?;
            Ok(Value::List(args.to_vec()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::config::keyword::get;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values() {
        let k = get("Port");
        assert_eq!(check(k, &args(&["2222"]), "2222"), Ok(Value::Port(2222)));
        assert_eq!(check(k, &args(&["ssh"]), "ssh"), Ok(Value::Port(22)));
        assert!(check(k, &args(&["0"]), "0").is_err());
        assert!(check(k, &args(&["1", "2"]), "1 2").is_err());
        let k = get("ConnectTimeout");
        assert_eq!(check(k, &args(&["1m30s"]), ""), Ok(Value::Time(Some(90))));
        assert_eq!(check(k, &args(&["none"]), ""), Ok(Value::Time(None)));
        assert!(check(k, &args(&["5x"]), "").is_err());
        let k = get("StrictHostKeyChecking");
        assert_eq!(
            check(k, &args(&["Accept-New"]), ""),
            Ok(Value::Choice("accept-new".into()))
        );
        assert!(check(get("UserKnownHostsFile"), &args(&["none", "x"]), "").is_err());
        assert!(check(get("IdentityAgent"), &args(&["$a-b"]), "").is_err());
        assert!(check(get("IdentityAgent"), &args(&["${TETHER_UNSET_VAR_X}"]), "").is_err());
        assert_eq!(
            check(get("ProxyCommand"), &[], "= nc %h %p # x"),
            Ok(Value::Command("nc %h %p # x".into()))
        );
        assert!(check(get("ProxyJump"), &[], "a,,b").is_err());
    }
}
