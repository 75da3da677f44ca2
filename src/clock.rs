//! UTC times without a date crate: release names (`YYYYMMDDHHMMSS`) and times in messages
//! (`2025-01-02 03:04:05 UTC`, a certificate's validity).

/// `now` as `YYYYMMDDHHMMSS` in UTC.
pub fn utc_timestamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day, h, m, s) = civil(secs);
    format!("{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}")
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_text(secs: u64) -> String {
    let (year, month, day, h, m, s) = civil(secs);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

/// Seconds since the epoch as (year, month, day, hour, minute, second) in UTC.
fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let (days, time) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm, proleptic Gregorian calendar).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, time / 3_600, time % 3_600 / 60, time % 60)
}

#[cfg(test)]
mod tests {
    use super::{utc_text, utc_timestamp};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_timestamps() {
        let at = |s: u64| utc_timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101000000");
        assert_eq!(at(951_782_400), "20000229000000");
        assert_eq!(at(1_735_689_599), "20241231235959");
        assert_eq!(at(1_709_210_096), "20240229123456");
        assert_eq!(utc_text(1_709_210_096), "2024-02-29 12:34:56 UTC");
    }
}
