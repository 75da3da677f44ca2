//! `%` tokens, `${VAR}` and `~` as OpenSSH expands them (misc.c `percent_expand`,
//! `percent_dollar_expand`, `tilde_expand`). Which keyword gets which expansion is decided by
//! the caller, as ssh.c and readconf.c decide it.

use std::path::Path;

use super::local;

/// The `%` tokens available in one place, each a letter and its value.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pairs: Vec<(char, String)>,
}

impl Tokens {
    /// Adds token `%c`.
    pub fn with(mut self, c: char, value: impl Into<String>) -> Self {
        self.pairs.push((c, value.into()));
        self
    }

    fn get(&self, c: char) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }
}

/// Expands `%` tokens (`%%` is `%`); Err on an unknown token or a lone `%` at the end.
pub fn percent(s: &str, tokens: &Tokens) -> Result<String, String> {
    expand(s, Some(tokens), false)
}

/// Expands `%` tokens and `${VAR}`; Err also on an unset or malformed variable.
pub fn percent_dollar(s: &str, tokens: &Tokens) -> Result<String, String> {
    expand(s, Some(tokens), true)
}

/// Expands `${VAR}` only.
pub fn dollar(s: &str) -> Result<String, String> {
    expand(s, None, true)
}

fn expand(s: &str, tokens: Option<&Tokens>, dollar: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if dollar && rest.starts_with("${") {
            let body = &rest[2..];
            let end = body
                .find('}')
                .ok_or_else(|| format!("environment variable `{body}` has no closing `}}`"))?;
            let name = &body[..end];
            if name.is_empty() {
                return Err("empty environment variable name `${}`".into());
            }
            let value = std::env::var(name)
                .map_err(|_| format!("environment variable `${{{name}}}` is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        let Some(tokens) = tokens.filter(|_| c == '%') else {
            out.push(c);
            continue;
        };
        let Some(t) = rest.chars().next() else {
            return Err("a lone `%` at the end (write `%%` for a percent sign)".into());
        };
        rest = &rest[t.len_utf8()..];
        if t == '%' {
            out.push('%');
            continue;
        }
        match tokens.get(t) {
            Some(v) => out.push_str(v),
            None => return Err(format!("unknown token `%{t}` here")),
        }
    }
    Ok(out)
}

/// misc.c `tilde_expand`: `~` and `~/path` under `home`, `~user/path` under that user's home;
/// anything else unchanged. Err: no such user.
pub fn tilde(path: &str, home: &Path) -> Result<String, String> {
    let Some(after) = path.strip_prefix('~') else {
        return Ok(path.to_string());
    };
    let (user, tail) = match after.find('/') {
        Some(i) => (&after[..i], after[i..].trim_start_matches('/')),
        None => (after, ""),
    };
    let dir = if user.is_empty() {
        home.to_path_buf()
    } else {
        local::home_of(user).ok_or_else(|| format!("no such user `{user}` (in `{path}`)"))?
    };
    let mut dir = dir.display().to_string();
    if !dir.ends_with('/') {
        dir.push('/');
    }
    Ok(format!("{dir}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = Tokens::default().with('h', "web1").with('p', "22");
        assert_eq!(percent("%h:%p %% x", &t).unwrap(), "web1:22 % x");
        assert_eq!(percent("%%h", &t).unwrap(), "%h");
        assert!(percent("%r", &t).unwrap_err().contains("%r"));
        assert!(percent("50%", &t).is_err());
        // Without `${}` expansion, `${X}` stays.
        assert_eq!(percent("${HOME}", &t).unwrap(), "${HOME}");
    }

    #[test]
    fn environment() {
        std::env::set_var("TETHER_EXPAND_TEST", "v");
        assert_eq!(dollar("a${TETHER_EXPAND_TEST}b").unwrap(), "avb");
        assert_eq!(
            dollar("$TETHER_EXPAND_TEST").unwrap(),
            "$TETHER_EXPAND_TEST"
        );
        assert!(dollar("${TETHER_EXPAND_UNSET_X}").is_err());
        assert!(dollar("${X").is_err());
        assert!(dollar("${}").is_err());
    }

    #[test]
    fn tildes() {
        let home = Path::new("/home/me");
        assert_eq!(tilde("~", home).unwrap(), "/home/me/");
        assert_eq!(tilde("~/", home).unwrap(), "/home/me/");
        assert_eq!(tilde("~//a/b", home).unwrap(), "/home/me/a/b");
        assert_eq!(tilde("/x/~", home).unwrap(), "/x/~");
        assert_eq!(tilde("~root/k", home).unwrap(), "/root/k");
        assert!(tilde("~no-such-user-tether/k", home).is_err());
    }
}
