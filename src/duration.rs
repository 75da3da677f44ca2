//! Durations as tether reads and writes them: one parser for every time a user gives tether
//! (`--keepalive 15s`, `set("keepalive", "500ms")`, `--timeout 2m`, sshd's `-T` output read
//! by `tether check`), and one way of printing them. ssh_config's own times are read by
//! `ssh::config::arguments::convtime`, which refuses what ssh refuses (`1.5s`, `500ms`).

use std::time::Duration;

/// Parses `15s`, `500ms`, `2m`, `1h30m`, `1.5s` or a plain number of seconds (`90`), as
/// ssh_config(5)'s TIME FORMATS with `ms` and fractions added. Units: `ms`, `s`, `m`, `h`,
/// `d`, `w`, case-insensitive. Err names the text; zero is allowed (callers that need a
/// positive time say so).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (like 15s, 500ms, 2m, 1h30m)");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].to_ascii_lowercase();
        rest = &rest[unit_len..];
        let scale = match unit.as_str() {
            "" | "s" => 1.0,
            "ms" => 0.001,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}` (use ms, s, m, h, d or w)"
                ))
            }
        };
        if unit.is_empty() && !rest.is_empty() {
            return Err(bad());
        }
        total += n * scale;
    }
    seconds(total).map_err(|_| format!("`{text}` is more than {MAX_SECONDS:e} seconds"))
}

/// The most seconds tether takes for a time (about 31 700 years): a deadline that far is
/// still a valid `Instant` (`Instant + Duration` panics on overflow).
const MAX_SECONDS: f64 = 1e12;

/// `s` seconds as a duration, for a number a user gave (`on(.., #{ timeout: 30 })`,
/// `set("keepalive", 1.5)`) or a file holds: Err (saying why) when it is negative, not a
/// number, or more than [`MAX_SECONDS`].
pub fn seconds(s: f64) -> Result<Duration, String> {
    if !(0.0..=MAX_SECONDS).contains(&s) {
        return Err(format!(
            "{s} is not a number of seconds from 0 to {MAX_SECONDS:e}"
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// [`parse`], refusing zero: for intervals and timeouts, where zero has no meaning; and, as a
/// recipe's `on(.., #{ timeout })` does, less than a millisecond (stop 48 tester t67:
/// `--timeout 0.0000001s` was taken, and its failure said `within 0.0 ms`).
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(format!("`{text}` must be greater than zero"));
    }
    if d < Duration::from_millis(1) {
        return Err(format!("`{text}` must be a millisecond or more"));
    }
    Ok(d)
}

/// `1.8 ms`, `3.2 s`, `1m04s`, `2h05m`: for people. A value is said in the unit its rounded
/// figure belongs to: 999.96 ms is `1.0 s`, never `1000.0 ms` (stop 48 tester t66: `within
/// 1000.0 ms (what was left of the 1.0 s re-attach bound)`), and 59.97 s is `1m00s`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 0.999_95 {
        format!("{:.1} ms", secs * 1000.0)
    } else if secs < 59.95 {
        format!("{secs:.1} s")
    } else {
        let s = secs.round() as u64;
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// `15s` or `500ms`: as a flag (`--keepalive`) accepts it, for advice the user can paste.
pub fn format_flag(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let ms = Duration::from_millis;
        assert_eq!(parse("15s"), Ok(ms(15_000)));
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("2m"), Ok(ms(120_000)));
        assert_eq!(parse("3"), Ok(ms(3_000)));
        assert_eq!(parse("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse("1M30S"), Ok(ms(90_000)));
        assert_eq!(parse("1.5s"), Ok(ms(1_500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_positive("0.0000001s"),
            Err("`0.0000001s` must be a millisecond or more".into())
        );
        assert_eq!(
            parse_positive("0.9ms"),
            Err("`0.9ms` must be a millisecond or more".into())
        );
        assert_eq!(parse_positive("1ms"), Ok(Duration::from_millis(1)));
        for bad in [
            "",
            "x",
            "5x",
            "s",
            "1s2x",
            "-1s",
            "1..2s",
            "9999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse_positive("0s").is_err());
        assert_eq!(
            parse("11574075d"),
            Err("`11574075d` is more than 1e12 seconds".into())
        );
    }

    #[test]
    fn printing() {
        assert_eq!(format(Duration::from_micros(1800)), "1.8 ms");
        assert_eq!(format(Duration::from_millis(3200)), "3.2 s");
        assert_eq!(format(Duration::from_secs(64)), "1m04s");
        assert_eq!(format(Duration::from_secs(7500)), "2h05m");
        assert_eq!(format(Duration::from_micros(999_960)), "1.0 s");
        assert_eq!(format(Duration::from_micros(999_940)), "999.9 ms");
        assert_eq!(format(Duration::from_millis(59_970)), "1m00s");
        assert_eq!(format(Duration::from_millis(59_940)), "59.9 s");
        assert_eq!(format(Duration::from_millis(3_599_600)), "1h00m");
        assert_eq!(format_flag(Duration::from_millis(500)), "500ms");
        assert_eq!(format_flag(Duration::from_secs(5)), "5s");
    }
}
