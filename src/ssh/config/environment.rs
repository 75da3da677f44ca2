//! `SetEnv` and `SendEnv` as a host's config says them, and the environment requests they
//! make for a command (clientloop.c `client_session2_setup`): first every variable of the
//! local environment, in its order, whose name matches a `SendEnv` pattern, then the `SetEnv`
//! pairs. Sending them on a channel is `ssh::env`'s.

use crate::ssh_syntax::pattern::match_pattern;

/// A host's `SendEnv` patterns and `SetEnv` assignments as ssh obtained them (see
/// `config/resolve.rs`): `-PATTERN` removals applied, the first `SetEnv` line only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `SendEnv` patterns, in order (repeats kept: `ssh -G` prints them).
    pub send: Vec<String>,
    /// `SetEnv` words, `NAME=value` (the value may be empty), one per name.
    pub set: Vec<String>,
}

/// The environment requests of one channel, in the order ssh sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    vars: Vec<(String, String)>,
    term: Option<String>,
}

impl Environment {
    /// What to request for a command started now: the local environment as it is (ssh reads
    /// its own `environ`), then `SetEnv`. A variable whose name or value is not UTF-8 is left
    /// out: libssh2's binding takes text only.
    pub fn requests(&self) -> Requests {
        let mut vars = Vec::new();
        if !self.send.is_empty() {
            for (name, value) in std::env::vars_os() {
                let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                    continue;
                };
                if self.send.iter().any(|p| match_pattern(name, p)) {
                    vars.push((name.to_string(), value.to_string()));
                }
            }
        }
        for word in &self.set {
            // Checked when the config was read: every word has a `=`.
            if let Some((name, value)) = word.split_once('=') {
                vars.push((name.to_string(), value.to_string()));
            }
        }
        let term = self
            .set
            .iter()
            .find_map(|w| w.strip_prefix("TERM="))
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Requests { vars, term }
    }
}

impl Requests {
    /// The variables, `(name, value)`, in the order they are sent.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// `SetEnv`'s `TERM`: ssh asks for a terminal of that type instead of its own `$TERM`.
    pub fn term(&self) -> Option<&str> {
        self.term.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_ssh_order_and_set_env_term() {
        std::env::set_var("TETHER_ENV_UNIT_A", "a");
        std::env::set_var("TETHER_ENV_UNIT_B", "b");
        let env = Environment {
            send: vec!["TETHER_ENV_UNIT_?".into()],
            set: vec![
                "TETHER_ENV_UNIT_A=set".into(),
                "TERM=".into(),
                "E=x=y".into(),
            ],
        };
        let r = env.requests();
        let mine: Vec<_> = r
            .vars
            .iter()
            .filter(|(n, _)| n.starts_with("TETHER_ENV_UNIT") || n == "TERM" || n == "E")
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        // The environment's order first (std keeps environ's), then SetEnv, which wins.
        let sent_a = mine
            .iter()
            .position(|v| v == "TETHER_ENV_UNIT_A=a")
            .unwrap();
        let set_a = mine
            .iter()
            .position(|v| v == "TETHER_ENV_UNIT_A=set")
            .unwrap();
        assert!(sent_a < set_a, "{mine:?}");
        assert!(mine.contains(&"TETHER_ENV_UNIT_B=b".to_string()));
        assert_eq!(&mine[mine.len() - 2..], ["TERM=", "E=x=y"]);
        // An empty TERM names no terminal type (ssh then takes its own).
        assert_eq!(r.term(), None);
        let env = Environment {
            send: Vec::new(),
            set: vec!["TERM=vt100".into()],
        };
        assert_eq!(env.requests().term(), Some("vt100"));
        assert_eq!(Environment::default().requests(), Requests::default());
    }
}
