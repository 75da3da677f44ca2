//! The arguments of keywords that readconf.c checks with code of its own (`IPQoS`,
//! `RekeyLimit`, `PermitRemoteOpen`...), and the C parsers they read numbers with (misc.c
//! `convtime`, `strtol`, fmt_scaled.c `scan_scaled`).

use crate::ssh_syntax::port::{a2port, strtonum};

/// misc.c `convtime`: `90`, `90s`, `1m30s`, `2h`, `1d`, `1w`; `None` if malformed.
pub fn convtime(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = match rest.chars().next() {
            None => 1,
            Some(c) => {
                rest = &rest[c.len_utf8()..];
                match c {
                    's' | 'S' => 1,
                    'm' | 'M' => 60,
                    'h' | 'H' => 3600,
                    'd' | 'D' => 86400,
                    'w' | 'W' => 604800,
                    _ => return None,
                }
            }
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        if total > i32::MAX as u64 {
            return None;
        }
    }
    Some(total)
}

pub fn agent_path(a: &str) -> Result<(), String> {
    super::expand::dollar(a)
        .map_err(|e| format!("invalid environment expansion in \"{a}\": {e}"))?;
    if let Some(var) = a.strip_prefix('$') {
        if !var.starts_with('{')
            && (var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(format!("invalid environment name \"{a}\""));
        }
    }
    Ok(())
}

fn single(args: &[String]) -> Result<&str, String> {
    match args {
        [a] if !a.is_empty() => Ok(a),
        [] | [_] => Err("missing argument".into()),
        _ => Err("extra arguments at end of line".into()),
    }
}

pub fn add_keys_to_agent(args: &[String]) -> Result<(), String> {
    let choices = ["yes", "no", "true", "false", "ask", "confirm"];
    match args {
        [a] if choices.contains(&a.to_ascii_lowercase().as_str()) || convtime(a).is_some() => {
            Ok(())
        }
        [a, t] if a.eq_ignore_ascii_case("confirm") && convtime(t).is_some() => Ok(()),
        _ => Err("unsupported option".into()),
    }
}

pub fn canonical_domains(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("no domains specified".into());
    }
    for a in args {
        if a.eq_ignore_ascii_case("none") {
            if args.len() > 1 {
                return Err("\"none\" must appear alone".into());
            }
            continue;
        }
        let ok = !a.is_empty()
            && !a.starts_with('.')
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(format!("invalid domain \"{a}\""));
        }
    }
    Ok(())
}

pub fn permitted_cnames(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("no rules specified".into());
    }
    for a in args {
        if a.eq_ignore_ascii_case("none") {
            if args.len() > 1 {
                return Err("\"none\" must appear alone".into());
            }
        } else if a != "*" && !matches!(a.split_once(':'), Some((_, t)) if !t.is_empty()) {
            return Err(format!("invalid permitted CNAME \"{a}\" (source:target)"));
        }
    }
    Ok(())
}

pub fn control_persist(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    if ["yes", "no", "true", "false"].contains(&a) || convtime(a).is_some() {
        Ok(())
    } else {
        Err(format!("bad argument \"{a}\""))
    }
}

pub fn escape_char(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    let b = a.as_bytes();
    if a == "none" || b.len() == 1 || (b.len() == 2 && b[0] == b'^' && (64..128).contains(&b[1])) {
        Ok(())
    } else {
        Err(format!("bad escape character \"{a}\""))
    }
}

pub fn ipqos(args: &[String]) -> Result<(), String> {
    const NAMES: &[&str] = &[
        "af11",
        "af12",
        "af13",
        "af21",
        "af22",
        "af23",
        "af31",
        "af32",
        "af33",
        "af41",
        "af42",
        "af43",
        "cs0",
        "cs1",
        "cs2",
        "cs3",
        "cs4",
        "cs5",
        "cs6",
        "cs7",
        "ef",
        "le",
        "lowdelay",
        "throughput",
        "reliability",
        "none",
    ];
    if args.is_empty() || args.len() > 2 {
        return Err("one or two values".into());
    }
    for a in args {
        // misc.c parse_ipqos: a name, else `strtol(.., 0)` (decimal, 0x hex, 0 octal) 0-255.
        let number =
            strtol(a, 0).is_some_and(|(n, rest)| rest.is_empty() && (0..=255).contains(&n));
        if !number && !NAMES.contains(&a.to_ascii_lowercase().as_str()) {
            return Err(format!("bad IPQoS value \"{a}\""));
        }
    }
    Ok(())
}

pub fn log_level(args: &[String]) -> Result<(), String> {
    const LEVELS: &[&str] = &[
        "QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3",
    ];
    let a = single(args)?;
    if LEVELS.iter().any(|l| l.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(format!("unsupported log level \"{a}\""))
    }
}

pub fn syslog_facility(args: &[String]) -> Result<(), String> {
    const NAMES: &[&str] = &[
        "DAEMON", "USER", "AUTH", "AUTHPRIV", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4",
        "LOCAL5", "LOCAL6", "LOCAL7",
    ];
    let a = single(args)?;
    if NAMES.iter().any(|l| l.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(format!("unsupported log facility \"{a}\""))
    }
}

pub fn obscure_keystroke_timing(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    let ok = ["yes", "no", "true", "false"].contains(&a)
        || a.strip_prefix("interval:")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=1000).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(format!("unsupported argument \"{a}\""))
    }
}

pub fn rekey_limit(args: &[String]) -> Result<(), String> {
    let (size, interval) = match args {
        [s] => (s, None),
        [s, i] => (s, Some(i)),
        [] => return Err("missing argument".into()),
        _ => return Err("extra arguments at end of line".into()),
    };
    if size != "default" {
        let n = scan_scaled(size).ok_or_else(|| format!("bad number \"{size}\""))?;
        if n != 0 && n < 16 {
            return Err("RekeyLimit too small".into());
        }
    }
    match interval {
        Some(i) if i != "none" && convtime(i).is_none() => {
            Err(format!("invalid time value \"{i}\""))
        }
        _ => Ok(()),
    }
}

pub fn octal_mask(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    // readconf.c: `strtol(.., 8)`, whatever follows the digits unread.
    match strtol(a, 8) {
        Some((n, _)) if (0..=0o777).contains(&n) => Ok(()),
        _ => Err(format!("bad mask \"{a}\"")),
    }
}

pub fn tunnel_device(args: &[String]) -> Result<(), String> {
    let a = single(args)?;
    // misc.c a2tun: `any` or 0 to SSH_TUNID_MAX (INT_MAX - 2).
    let unit = |s: &str| {
        s.eq_ignore_ascii_case("any") || strtonum(s, 0, i64::from(i32::MAX) - 2).is_some()
    };
    let ok = match a.split_once(':') {
        Some((l, r)) => unit(l) && unit(r),
        None => unit(a),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad tun device \"{a}\""))
    }
}

/// readconf.c PermitRemoteOpen: `any` or `none` alone, else `host:port` each (`[addr]:port`,
/// port `*` or as [`a2port`] reads it, not 0).
pub fn permit_remote_open(args: &[String]) -> Result<(), String> {
    for a in args {
        if a.eq_ignore_ascii_case("any") || a.eq_ignore_ascii_case("none") {
            if args.len() > 1 {
                return Err(format!("\"{a}\" must appear alone"));
            }
            continue;
        }
        // misc.c hpdelim: `[addr]` or up to the first `:` (a `/` there: no host).
        let rest = match a.strip_prefix('[') {
            Some(inner) => inner.find(']').map(|i| &inner[i + 1..]),
            None => Some(a.find([':', '/']).map_or("", |i| &a[i..])),
        };
        let port = match rest {
            Some(r) if r.starts_with(':') => &r[1..],
            Some("") => return Err(format!("bad port number in \"{a}\"")),
            _ => return Err(format!("missing host in \"{a}\"")),
        };
        if port != "*" && a2port(port).is_none_or(|p| p == 0) {
            return Err(format!("bad port number in \"{a}\""));
        }
    }
    Ok(())
}

/// C `strtol(s, &end, base)` for base 0 (decimal, `0x` hex, `0` octal) or 8: leading white
/// space and one sign, then the longest run of digits; the value and what follows it, or
/// `None` without a digit. Values beyond `i64` saturate (every caller bounds them far lower).
fn strtol(s: &str, base: u32) -> Option<(i64, &str)> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex = base == 0
        && (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].starts_with(|c: char| c.is_ascii_hexdigit());
    let (radix, digits) = match (base, hex) {
        (_, true) => (16, &t[2..]),
        (0, false) if t.starts_with('0') => (8, t),
        (0, false) => (10, t),
        (b, false) => (b, t),
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 {
        return None;
    }
    let n = digits[..len].chars().fold(0i64, |n, c| {
        n.saturating_mul(i64::from(radix))
            .saturating_add(i64::from(c.to_digit(radix).unwrap_or(0)))
    });
    Some((if negative { -n } else { n }, &digits[len..]))
}

/// fmt_scaled.c `scan_scaled`: white space, one sign, digits with at most one `.`, then at
/// most one unit of `BKMGTPE` (any case; powers of 1024) not followed by a letter or digit.
fn scan_scaled(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let len = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, rest) = t.split_at(len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || whole.len() >= 21 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let sign = if negative { -1 } else { 1 };
    let Some(unit) = rest.chars().next() else {
        return Some(sign * whole);
    };
    let power = "BKMGTPE".find(unit.to_ascii_uppercase())?;
    if rest[unit.len_utf8()..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let scale = 1024i64.checked_pow(u32::try_from(power).ok()?)?;
    let mut fpart = 0i64;
    let mut divisor = 1i64;
    for d in fraction.chars().take(18) {
        fpart = fpart * 10 + i64::from(d.to_digit(10)?);
        divisor *= 10;
    }
    let scaled = whole.checked_mul(scale)?;
    let fpart = i64::try_from(i128::from(fpart) * i128::from(scale) / i128::from(divisor)).ok()?;
    Some(sign * scaled.checked_add(fpart)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(convtime("90"), Some(90));
        assert_eq!(convtime("1h30m"), Some(5400));
        assert_eq!(convtime("1W"), Some(604800));
        assert_eq!(convtime(""), None);
        // Regression (found by tests/robustness.rs): a multi-byte unit is refused, not a panic.
        assert_eq!(convtime("1ẇ30m"), None);
        assert_eq!(convtime("m"), None);
        assert_eq!(convtime("-5"), None);
    }
}
