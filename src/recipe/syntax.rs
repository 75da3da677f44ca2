//! tether's dialect on top of Rhai: Capistrano's `#{ in: "sequence" }` spelling of `on`
//! options, where `in` is a Rhai keyword, is accepted by quoting it before compiling.

/// Quotes the keyword `in` where it is used as a map key (`#{ in: "sequence" }`, the
/// Capistrano spelling of `on` options), which Rhai's parser would reject. Strings and comments
/// are left alone; elsewhere `in` is never followed by `:`.
pub fn prepare_source(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '"' | '\'' | '`' => {
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if chars[i - 1] == c {
                        break;
                    }
                }
                continue;
            }
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        out.push_str("/*");
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        out.push_str("*/");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(chars[i]);
                        i += 1;
                    }
                }
                continue;
            }
            'i' if next == Some('n')
                && (i == 0 || !ident(chars[i - 1]))
                && !chars.get(i + 2).copied().is_some_and(ident) =>
            {
                let mut j = i + 2;
                while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t') {
                    j += 1;
                }
                if chars.get(j) == Some(&':') && chars.get(j + 1) != Some(&':') {
                    out.push_str("\"in\"");
                    i += 2;
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prepare_source;

    #[test]
    fn quotes_in_as_a_map_key_only() {
        assert_eq!(
            prepare_source(r#"on("db", #{ in: "sequence", wait: 2 }, "x")"#),
            r#"on("db", #{ "in": "sequence", wait: 2 }, "x")"#
        );
        let untouched =
            "for x in y { let m = #{ a: 1 }; } // in: no\n\"in: no\" /* in: */ x::in::y";
        assert_eq!(prepare_source(untouched), untouched);
        assert_eq!(
            prepare_source("let begin = 1; #{in : 2}"),
            "let begin = 1; #{\"in\" : 2}"
        );
    }
}
