//! One line of an ssh config split as OpenSSH splits it (readconf.c
//! `process_config_line_depth`): the keyword by `strdelim` (whitespace, or one `=` with
//! optional whitespace around it), the arguments by `argv_split` (single and double quotes,
//! backslash escapes, a `#` at the start of an argument ends the line). Keywords that take a
//! command (`ProxyCommand`, `LocalCommand` ...) use the raw rest of the line instead.

/// A non-empty, non-comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// The keyword, lowercased.
    pub keyword: String,
    /// The arguments after quote removal.
    pub args: Vec<String>,
    /// The rest of the line after the keyword and its separator, trailing whitespace removed.
    pub rest: String,
}

const WHITESPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// Splits `raw`; `Ok(None)` for a blank or comment line. Err: what ssh reports.
pub fn split(raw: &str) -> Result<Option<Words>, String> {
    let line = raw.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
    let (mut keyword, mut rest) = strdelim(line)?;
    if keyword.is_empty() {
        match rest {
            Some(r) => (keyword, rest) = strdelim(r)?,
            None => return Ok(None),
        }
    }
    if keyword.is_empty() || keyword.starts_with('#') {
        return Ok(None);
    }
    let keyword = keyword.to_ascii_lowercase();
    let rest = rest.map(|r| r.trim_start_matches(WHITESPACE)).unwrap_or("");
    if rest.is_empty() {
        return Err(format!("no argument after keyword \"{keyword}\""));
    }
    let args = argv_split(rest).ok_or_else(|| "invalid quotes".to_string())?;
    Ok(Some(Words {
        keyword,
        args,
        rest: rest.to_string(),
    }))
}

/// misc.c `strdelim` with `=` splitting: the first token and what follows it (`None` at the
/// end of the line). A double-quoted token runs to the closing quote.
fn strdelim(s: &str) -> Result<(String, Option<&str>), String> {
    let Some(i) = s.find(|c: char| WHITESPACE.contains(&c) || c == '"' || c == '=') else {
        return Ok((s.to_string(), None));
    };
    let bytes = s.as_bytes();
    if bytes[i] == b'"' {
        let after = &s[i + 1..];
        let close = after
            .find('"')
            .ok_or_else(|| "invalid quotes".to_string())?;
        let token = format!("{}{}", &s[..i], &after[..close]);
        let rest = after[close + 1..].trim_start_matches(WHITESPACE);
        return Ok((token, Some(rest)));
    }
    let token = s[..i].to_string();
    let equals = bytes[i] == b'=';
    let mut rest = s[i + 1..].trim_start_matches(WHITESPACE);
    if !equals {
        if let Some(r) = rest.strip_prefix('=') {
            rest = r.trim_start_matches(WHITESPACE);
        }
    }
    Ok((token, Some(rest)))
}

/// The words of a `Match` line's `rest` as ssh 9.2 reads them (readconf.c `match_cfg_line`
/// takes each with `strdelim`): split at white space, and at one `=` with or without white
/// space around it, so `host =q`, `host = q` and `host= q` are `host q` (OpenSSH 9.4 and later
/// read `=q` as the pattern), and `q,=x` is `q,` then `x`. A line that ends right after an
/// `=` ends with an empty word, the missing argument. Err: an unclosed double quote.
pub fn match_words(rest: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut s = rest;
    loop {
        let (word, next) = strdelim(s)?;
        words.push(word);
        match next {
            Some("") => {
                if s.trim_end_matches(WHITESPACE).ends_with('=') {
                    words.push(String::new());
                }
                return Ok(words);
            }
            Some(next) => s = next,
            None => return Ok(words),
        }
    }
}

/// misc.c `argv_split` with comments: `None` when a quote is not closed.
pub fn argv_split(s: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                let next = chars.get(i + 1).copied();
                match next {
                    Some(n @ ('\'' | '"' | '\\')) => {
                        arg.push(n);
                        i += 1;
                    }
                    Some(' ') if quote.is_none() => {
                        arg.push(' ');
                        i += 1;
                    }
                    _ => arg.push('\\'),
                }
            } else if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if quote == Some(c) {
                quote = None;
            } else {
                arg.push(c);
            }
            i += 1;
        }
        if quote.is_some() {
            return None;
        }
        args.push(arg);
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> (String, Vec<String>, String) {
        let w = split(line).unwrap().unwrap();
        (w.keyword, w.args, w.rest)
    }

    #[test]
    fn keyword_separators() {
        for line in [
            "Port 22",
            "  Port\t22  ",
            "Port=22",
            "Port = 22",
            "Port =22",
            "Port= 22",
            "PORT 22",
        ] {
            let (k, a, _) = words(line);
            assert_eq!((k.as_str(), a), ("port", vec!["22".to_string()]), "{line}");
        }
        // Only one `=` is a separator.
        assert_eq!(words("Port==22").1, ["=22"]);
    }

    #[test]
    fn quotes_escapes_and_comments() {
        assert_eq!(
            words(r#"IdentityFile "/a b/c" 'd e' f\ g # tail"#).1,
            ["/a b/c", "d e", "f g"]
        );
        assert_eq!(words(r#"User a\"b"#).1, ["a\"b"]);
        assert_eq!(words("User a#b").1, ["a#b"]);
        assert_eq!(words(r"User a\zb").1, [r"a\zb"]);
        assert_eq!(
            words("ProxyCommand ssh -W %h:%p bastion # not a comment").2,
            "ssh -W %h:%p bastion # not a comment"
        );
        assert_eq!(split("User \"open").unwrap_err(), "invalid quotes");
    }

    #[test]
    fn blank_comment_and_empty() {
        assert_eq!(split("").unwrap(), None);
        assert_eq!(split("   ").unwrap(), None);
        assert_eq!(split("  # Host x").unwrap(), None);
        assert_eq!(split("#Host x").unwrap(), None);
        assert_eq!(
            split("User").unwrap_err(),
            "no argument after keyword \"user\""
        );
        assert_eq!(
            split("User   ").unwrap_err(),
            "no argument after keyword \"user\""
        );
    }
}
