//! Forwarding specifications (`LocalForward`, `RemoteForward`, `DynamicForward`) as
//! readconf.c `parse_forward` reads them. tether opens no forwardings, but ssh refuses the
//! whole config for a malformed one, and expands the socket paths of the forwardings a host
//! gets (failing that host on a token it does not know), so tether checks both.

use super::expand;
use crate::ssh_syntax::port::a2port;

/// readconf.c's `fwdarg` buffer: ssh reads at most 255 bytes of the joined specification.
const SPEC_MAX: usize = 255;
/// `NI_MAXHOST`: the longest host name.
const HOST_MAX: usize = 1025;
/// `sizeof(sockaddr_un.sun_path)` on Linux: the longest socket path.
const PATH_MAX_SUN: usize = 108;

/// The socket paths of a forwarding, which ssh expands `%` tokens in per host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    /// The local (remote, for RemoteForward) socket listened on.
    pub listen_path: Option<String>,
    /// The socket connected to.
    pub connect_path: Option<String>,
}

impl Forward {
    /// Both paths, as far as given.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.listen_path
            .iter()
            .chain(self.connect_path.iter())
            .map(String::as_str)
    }
}

/// A forwarding line's arguments (readconf.c: the two of LocalForward and RemoteForward
/// joined with `:`; a RemoteForward without a target is a dynamic, SOCKS, one), checked.
pub fn from_args(name: &str, args: &[String]) -> Result<Forward, String> {
    let dynamic_keyword = name == "DynamicForward";
    let remote = name == "RemoteForward";
    let missing_target = || format!("{name}: missing target argument");
    let (spec, dynamic) = match args {
        [] => return Err(format!("{name}: missing argument")),
        [a, ..] if a.is_empty() => return Err(format!("{name}: missing argument")),
        [a] if dynamic_keyword || remote => (a.clone(), true),
        [_] => return Err(missing_target()),
        [a, b] if !dynamic_keyword && b.is_empty() => match remote {
            true => (a.clone(), true),
            false => return Err(missing_target()),
        },
        [a, b] if !dynamic_keyword => (format!("{a}:{b}"), false),
        _ => return Err(format!("{name}: extra arguments at end of line")),
    };
    parse(&spec, dynamic, remote)
        .ok_or_else(|| format!("{name}: bad forwarding specification \"{spec}\""))
}

/// One `:`-separated field and whether it holds a `/` (then it is a socket path).
struct Field {
    arg: String,
    path: bool,
}

/// Parses `spec` (`[listen_host:]port|path[:host:port|path]`, the target only when not
/// `dynamic`): `${VAR}` expanded, then split and checked as ssh does; `None` where ssh says
/// "Bad forwarding specification".
fn parse(spec: &str, dynamic: bool, remote: bool) -> Option<Forward> {
    let mut end = spec.len().min(SPEC_MAX);
    while !spec.is_char_boundary(end) {
        end -= 1;
    }
    let expanded = expand::dollar(&spec[..end]).ok()?;
    let fields = fields(expanded.trim_start_matches(|c: char| c.is_ascii_whitespace()))?;
    // Port values as readconf.c keeps them: a2port's -1 for a bad one, -2 for a path.
    const PATH: i32 = -2;
    let port = |f: &Field| a2port(&f.arg).map_or(-1, i32::from);
    let text = |f: &Field| Some(f.arg.clone());
    let listen_port: i32;
    let (mut listen_host, mut listen_path) = (None, None);
    let (mut connect_host, mut connect_port, mut connect_path) = (None, 0, None);
    match fields.as_slice() {
        [a] if a.path => (listen_path, listen_port) = (text(a), PATH),
        [a] => listen_port = port(a),
        [a, b] if a.path && b.path => {
            (listen_path, listen_port) = (text(a), PATH);
            (connect_path, connect_port) = (text(b), PATH);
        }
        [a, b] if b.path => {
            listen_port = port(a);
            (connect_path, connect_port) = (text(b), PATH);
        }
        [a, b] => (listen_host, listen_port) = (text(a), port(b)),
        [a, b, c] if a.path => {
            (listen_path, listen_port) = (text(a), PATH);
            (connect_host, connect_port) = (text(b), port(c));
        }
        [a, b, c] if c.path => {
            (listen_host, listen_port) = (text(a), port(b));
            (connect_path, connect_port) = (text(c), PATH);
        }
        [a, b, c] => {
            listen_port = port(a);
            (connect_host, connect_port) = (text(b), port(c));
        }
        [a, b, c, d] => {
            (listen_host, listen_port) = (text(a), port(b));
            (connect_host, connect_port) = (text(c), port(d));
        }
        _ => return None,
    }
    let n = fields.len();
    if dynamic {
        if n > 2 {
            return None;
        }
    } else {
        if n < 3 && connect_path.is_none() && listen_path.is_none() {
            return None;
        }
        if connect_port <= 0 && connect_path.is_none() {
            return None;
        }
    }
    if (listen_port < 0 && listen_path.is_none()) || (!remote && listen_port == 0) {
        return None;
    }
    let too_long = |s: &Option<String>, max: usize| s.as_ref().is_some_and(|s| s.len() >= max);
    if too_long(&connect_host, HOST_MAX)
        || too_long(&listen_host, HOST_MAX)
        || too_long(&connect_path, PATH_MAX_SUN)
        || too_long(&listen_path, PATH_MAX_SUN)
    {
        return None;
    }
    Some(Forward {
        listen_path,
        connect_path,
    })
}

/// readconf.c `parse_fwd_field`, up to four times: a field is `[literal]` or runs to the next
/// unescaped `:` (a backslash takes the next character literally); `None` if anything is
/// left over or a field is malformed.
fn fields(s: &str) -> Option<Vec<Field>> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    while out.len() < 4 && pos < b.len() {
        if b[pos] == b'[' {
            let close = pos + 1 + b[pos + 1..].iter().position(|&c| c == b']')?;
            let arg = &s[pos + 1..close];
            match b.get(close + 1) {
                None => pos = close + 1,
                Some(b':') => pos = close + 2,
                Some(_) => return None,
            }
            out.push(Field {
                arg: arg.to_string(),
                path: arg.contains('/'),
            });
            continue;
        }
        let mut arg = Vec::new();
        let mut path = false;
        loop {
            match b.get(pos) {
                None => break,
                Some(b':') => {
                    pos += 1;
                    break;
                }
                Some(b'\\') => {
                    // The escaped byte is taken as it is, never as a delimiter.
                    arg.push(*b.get(pos + 1)?);
                    pos += 2;
                }
                Some(&c) => {
                    path |= c == b'/';
                    arg.push(c);
                    pos += 1;
                }
            }
        }
        out.push(Field {
            // Only ASCII backslashes were removed from valid UTF-8.
            arg: String::from_utf8_lossy(&arg).into_owned(),
            path,
        });
    }
    (pos >= b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifications_as_ssh_reads_them() {
        // (spec, dynamic, remote, accepted), each checked with `ssh -G` (OpenSSH 9.2).
        let cases = [
            ("99999:x:1", false, false, false),
            ("0:x:1", false, false, false),
            ("0:x:1", false, true, true),
            ("0", true, true, true),
            ("bad", true, true, false),
            ("1234:localhost:%Z", false, true, false),
            ("-1", true, true, false),
            ("abc", true, false, false),
            ("0", true, false, false),
            ("h:1", true, false, true),
            ("[::1]:1", true, false, true),
            ("h:1:2", true, false, false),
            ("a:b:c:d:e", false, false, false),
            ("1:2", false, true, false),
            ("1:/x", false, false, true),
            ("/a:/b", false, false, true),
            ("[1]:2:h:3", false, false, true),
            ("+1:h:2", false, false, true),
            ("1:h:+2", false, false, true),
            ("1:h:ssh", false, false, true),
            ("1:[::1]:3", false, true, true),
            ("\\1:h:2", false, false, true),
            ("[h:1:x:2", false, false, false),
            ("[h]x:1:x:2", false, false, false),
            ("1:h:2\\", false, false, false),
        ];
        for (spec, dynamic, remote, ok) in cases {
            assert_eq!(
                parse(spec, dynamic, remote).is_some(),
                ok,
                "{spec} dynamic={dynamic} remote={remote}"
            );
        }
        let f = parse("/tmp/%h.sock:h:1", false, false).unwrap();
        assert_eq!(f.listen_path.as_deref(), Some("/tmp/%h.sock"));
        assert_eq!(f.connect_path, None);
        assert!(parse("${TETHER_FORWARD_UNSET_X}:h:1", false, false).is_none());
        assert!(parse(&format!("/{}:h:1", "a".repeat(120)), false, false).is_none());
    }
}
