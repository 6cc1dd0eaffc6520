//! The checks of call-log query inputs that the HTTP API (`GET /api/calls`,
//! `/api/export.csv`, `/api/stats`) and the CLI (`siaga calls`, `export`, `stats`,
//! `agents`) share, so both refuse the same things with the same limits: a page size
//! ([`parse_limit`], 1–[`MAX_PAGE`]), a time ([`parse_time`]: as `--since` takes it, or
//! `now`), and a period whose end is after its start ([`check_period`]).
//!
//! The errors carry only the problem; each caller names the field the way its user wrote
//! it (`limit` or `--limit`, `to` or `--until`).

use super::{MAX_PAGE, SinceError, parse_since};
use crate::engine::UtcTime;

/// Why a query input was refused. The message is the problem only, to follow the field's
/// name (`--limit 0 is not …`, `limit: is not …`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A page size that is not a whole number in 1–[`MAX_PAGE`].
    #[error("{given:?} is not a whole number 1–{MAX_PAGE}")]
    Limit {
        /// The value given.
        given: String,
    },
    /// A time that is neither a UTC time, a date, a duration back from now, nor `now`.
    #[error("{0}")]
    Time(#[from] SinceError),
    /// A period whose end is not after its start (empty or reversed).
    #[error("is not after {start}")]
    Period {
        /// The name of the period's start as the caller wrote it (`from`, `--since` …).
        start: &'static str,
    },
}

/// A page size: a whole number 1–[`MAX_PAGE`] (1000).
///
/// Errors: [`QueryError::Limit`] (0, over 1000, negative, not a number). Nothing is
/// clamped: a larger page is refused, not silently shortened.
pub fn parse_limit(text: &str) -> Result<u32, QueryError> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| QueryError::Limit {
            given: text.to_owned(),
        })
}

/// A time as [`parse_since`] reads it (RFC 3339 UTC, a date, a duration back from `now`,
/// or `now`).
///
/// Errors: [`QueryError::Time`].
pub fn parse_time(text: &str, now: UtcTime) -> Result<UtcTime, QueryError> {
    Ok(parse_since(text, now)?)
}

/// Checks that a period [`from`, `to`) is not empty or reversed, when both ends are
/// given; `start` names `from` in the error.
///
/// Errors: [`QueryError::Period`] when `to <= from`.
pub fn check_period(
    from: Option<UtcTime>,
    to: Option<UtcTime>,
    start: &'static str,
) -> Result<(), QueryError> {
    match (from, to) {
        (Some(from), Some(to)) if to <= from => Err(QueryError::Period { start }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_numbers_up_to_a_page() {
        assert_eq!(parse_limit("1"), Ok(1));
        assert_eq!(parse_limit("1000"), Ok(1000));
        for bad in ["0", "1001", "-1", "ten", "", "4294967296"] {
            let error = parse_limit(bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{bad:?} is not a whole number 1–1000")
            );
        }
    }

    #[test]
    fn periods_must_end_after_they_start() {
        let (a, b) = (UtcTime(1_000), UtcTime(2_000));
        assert_eq!(check_period(Some(a), Some(b), "from"), Ok(()));
        assert_eq!(check_period(None, Some(a), "from"), Ok(()));
        assert_eq!(check_period(Some(b), None, "from"), Ok(()));
        assert_eq!(
            check_period(Some(b), Some(a), "--since")
                .unwrap_err()
                .to_string(),
            "is not after --since"
        );
        assert!(check_period(Some(a), Some(a), "from").is_err());
    }

    #[test]
    fn times_take_now() {
        let now = UtcTime(1_795_953_665_123);
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("1h", now), Ok(UtcTime(now.0 - 3_600_000)));
        assert!(matches!(parse_time("soon", now), Err(QueryError::Time(_))));
    }
}
