//! Stored timestamps ([`UtcTime`], ms since the Unix epoch, UTC) as text and back:
//! RFC 3339 with milliseconds for JSON (`2026-11-29T12:01:05.123Z`), a short form for
//! tables (`2026-11-29 12:01:05`), and `siaga calls --since` input (an RFC 3339 time, a
//! date, a duration back from now such as `2h`, or `now`).

use crate::engine::UtcTime;
use std::time::{Duration, UNIX_EPOCH};

/// Calendar fields of a time: (year, month 1–12, day 1–31, hour, minute, second, ms).
type Civil = (i64, u32, u32, u32, u32, u32, u32);

/// Splits `t` into calendar fields (proleptic Gregorian, UTC). Total: any `i64` works
/// (Howard Hinnant's `civil_from_days`).
fn civil(t: UtcTime) -> Civil {
    let ms = t.unix_millis();
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // All of these are within their small ranges by construction.
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        year,
        small(month),
        small(day),
        small(in_day / 3_600_000),
        small(in_day / 60_000 % 60),
        small(in_day / 1000 % 60),
        small(in_day % 1000),
    )
}

/// RFC 3339, UTC, with milliseconds: `2026-11-29T12:01:05.123Z`.
pub fn rfc3339_millis(t: UtcTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Date and time to the second, UTC, for tables: `2026-11-29 12:01:05`.
pub fn table_time(t: UtcTime) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// Why a `--since` value was not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is neither a UTC time (2026-11-29T12:00:00Z, 2026-11-29 12:00, 2026-11-29), a \
     duration back from now (90m, 2h, 1day), nor now"
)]
pub struct SinceError(pub String);

/// Parses a `--since` value: an RFC 3339 time in UTC (`2026-11-29T12:00:00Z`, also with a
/// space, without `Z`, or without seconds), a date (`2026-11-29`, its midnight UTC), or a
/// duration (`2h`, `90m`, `1day 2h`, humantime's syntax) counted back from `now`, or the
/// word `now` itself.
pub fn parse_since(s: &str, now: UtcTime) -> Result<UtcTime, SinceError> {
    let s = s.trim();
    let err = || SinceError(s.to_owned());
    if s == "now" {
        return Ok(now);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        let ms = i64::try_from(d.as_millis()).map_err(|_| err())?;
        return Ok(UtcTime(now.unix_millis().saturating_sub(ms)));
    }
    let candidates = [
        s.to_owned(),
        format!("{s}:00"),       // 2026-11-29 12:00
        format!("{s}T00:00:00"), // 2026-11-29
    ];
    for text in &candidates {
        if let Ok(t) = humantime::parse_rfc3339_weak(text) {
            let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
            let ms = i64::try_from(since.as_millis()).map_err(|_| err())?;
            return Ok(UtcTime(ms));
        }
    }
    Err(err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_millis(UtcTime(0)), "1970-01-01T00:00:00.000Z");
        // 2026-11-29T12:01:05.123Z
        let t = UtcTime(1_795_953_665_123);
        assert_eq!(rfc3339_millis(t), "2026-11-29T12:01:05.123Z");
        assert_eq!(table_time(t), "2026-11-29 12:01:05");
        // A leap day, and a time before the epoch.
        assert_eq!(
            rfc3339_millis(UtcTime(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(rfc3339_millis(UtcTime(-1)), "1969-12-31T23:59:59.999Z");
        // Extremes do not panic.
        let _ = rfc3339_millis(UtcTime(i64::MIN));
        let _ = rfc3339_millis(UtcTime(i64::MAX));
    }

    #[test]
    fn formatting_agrees_with_humantime() {
        for ms in [1_i64, 86_399_999, 1_234_567_890_123, 4_102_444_800_000] {
            let system = UNIX_EPOCH + Duration::from_millis(ms as u64);
            let expected = humantime::format_rfc3339_millis(system).to_string();
            assert_eq!(rfc3339_millis(UtcTime(ms)), expected);
        }
    }

    #[test]
    fn parses_times_dates_and_durations() {
        let now = UtcTime(1_795_953_665_123);
        let noon = UtcTime(1_795_953_600_000);
        assert_eq!(parse_since("2026-11-29T12:00:00Z", now), Ok(noon));
        assert_eq!(parse_since("2026-11-29 12:00:00", now), Ok(noon));
        assert_eq!(parse_since("2026-11-29 12:00", now), Ok(noon));
        assert_eq!(
            parse_since("2026-11-29T12:00:00.5Z", now),
            Ok(UtcTime(noon.0 + 500))
        );
        assert_eq!(
            parse_since("2026-11-29", now),
            Ok(UtcTime(noon.0 - 43_200_000))
        );
        assert_eq!(parse_since("2h", now), Ok(UtcTime(now.0 - 7_200_000)));
        assert_eq!(parse_since(" 90m ", now), Ok(UtcTime(now.0 - 5_400_000)));
        assert_eq!(parse_since("now", now), Ok(now));
        assert_eq!(parse_since(" now ", now), Ok(now));
        assert!(parse_since("NOW!", now).is_err());
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("2026-13-01", now).is_err());
        assert!(parse_since("", now).is_err());
    }
}
