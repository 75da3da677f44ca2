//! `ssh://` URIs as ssh reads them (misc.c `parse_uri`), for a destination (`--hosts`, a
//! recipe's server) and a `ProxyJump` hop alike, and the users ssh accepts in them and
//! elsewhere.

/// readconf.c `ssh_valid_ruser`: no leading `-`, no control characters, none of
/// ``'`";&<>|(){}``, no `-` after whitespace, no `\` at the end. A user reaches `%r` in
/// `ProxyCommand`, `Match exec` and `LocalCommand`, which run through a shell (the
/// CVE-2023-51385 fix).
pub fn valid_remote_user(user: &str) -> bool {
    let chars: Vec<char> = user.chars().collect();
    !(user.starts_with('-')
        || chars
            .iter()
            .any(|&c| c.is_control() || "'`\";&<>|(){}".contains(c))
        || chars
            .windows(2)
            .any(|w| w[0].is_whitespace() && w[1] == '-')
        || chars.last() == Some(&'\\'))
}

/// An `ssh://` URI after its scheme, as ssh reads a destination (readconf.c
/// `parse_ssh_uri`, misc.c `parse_uri`): `[user[;params]@]host[:port][/]`. The user is
/// percent-decoded and its `;params` ignored; a port is 1-65535 or a service name (`ssh`), as
/// ssh's `a2port` reads it; a path is refused, an empty
/// user too. The host is a name of letters, digits, `-`, `_` and `.` (not first; a final `.`
/// dropped),
/// or an address in brackets: `ssh://[::1]:2222`. (ssh refuses an IPv6 address in a URI,
/// as its name check allows no `:`; tether takes it as RFC 3986 writes it.) Returns the user,
/// host and port.
pub fn parse_ssh_uri(uri: &str) -> Result<(Option<String>, String, Option<u16>), String> {
    let (user, rest) = match uri.split_once('@') {
        Some((info, rest)) => {
            let user = info.split(';').next().unwrap_or_default();
            if user.is_empty() {
                return Err("empty user in the ssh:// URI".into());
            }
            (Some(percent_decode(user)?), rest)
        }
        None => (None, uri),
    };
    // misc.c hpdelim2: `[addr]` or up to the first `:` or `/`.
    let (host, delim, after) = if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or("unclosed `[` in the ssh:// URI")?;
        match after.chars().next() {
            None => (addr.to_string(), None, ""),
            Some(c @ (':' | '/')) => (addr.to_string(), Some(c), &after[1..]),
            Some(_) => return Err("junk after `]` in the ssh:// URI".into()),
        }
    } else {
        match rest.find([':', '/']) {
            Some(i) => (
                rest[..i].to_string(),
                rest[i..].chars().next(),
                &rest[i + 1..],
            ),
            None => (rest.to_string(), None, ""),
        }
    };
    if host.is_empty() {
        return Err("no host in the ssh:// URI".into());
    }
    let host = if rest.starts_with('[') {
        host
    } else {
        valid_domain(&host)
            .ok_or_else(|| format!("`{host}` is not a valid host name in an ssh:// URI"))?
    };
    let (port, path) = match delim {
        Some(':') => {
            let (port, path) = after.split_once('/').unwrap_or((after, ""));
            let port = if port.is_empty() {
                None
            } else {
                // misc.c parse_uri: `a2port`, a service name too (`ssh://h:ssh`).
                match super::port::port(port) {
                    Some(n) => Some(n),
                    None => return Err(format!("bad port `{port}` in the ssh:// URI")),
                }
            };
            (port, path)
        }
        _ => (None, after),
    };
    if !path.is_empty() {
        return Err(format!(
            "a path (`/{path}`) is not allowed in an ssh:// destination"
        ));
    }
    Ok((user, host, port))
}

/// misc.c `valid_domain` (OpenSSH 9.2): starts with a letter or digit; letters, digits, `-`,
/// `_` and single dots; the name without its final dot, `None` for a bad one.
pub fn valid_domain(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    if !first.is_ascii_alphanumeric() || name.contains("..") {
        return None;
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    ok.then(|| name.strip_suffix('.').unwrap_or(name).to_string())
}

/// misc.c `urldecode`: `%XX` to its byte (a `%` without two hex digits, or `%00`, is an
/// error) and `+` to a space, as ssh decodes the user of a URI.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .filter(|b| *b != 0)
                    .ok_or_else(|| format!("bad %-escape in the user of the ssh:// URI `{s}`"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("the user of the ssh:// URI `{s}` is not UTF-8"))
}
