//! Statistics of the calls received in a period, for the supervisor's daily review and
//! NENA-STA-020.1 answer-time reporting ([`Statistics`]): calls by category, disposition,
//! agency and hour of the day; the share answered within 10, 15 and 20 s; mean and 90th
//! percentile wait; the abandoned share; calls and talk time per operator.
//!
//! Counts and sums are computed in SQL (`GROUP BY`, `SUM(CASE …)`: the same text and the
//! same results on SQLite and PostgreSQL; sums are cast to BIGINT, as PostgreSQL's
//! `SUM(bigint)` is NUMERIC). The percentile is computed here from the period's waits,
//! which the two databases have no common function for.

use super::incidents::Cols;
use super::{Backend, Store, StoreError, ser_time};
use crate::engine::UtcTime;
use serde::Serialize;
use std::collections::BTreeMap;

/// The answer-time thresholds reported, in ms (NENA-STA-020.1: 90 % within 15 s, 95 %
/// within 20 s).
pub const ANSWER_THRESHOLDS_MS: [i64; 3] = [10_000, 15_000, 20_000];

/// What the calls received in `[from, to)` add up to. Every share is a fraction in
/// 0.0–1.0, `None` when its denominator is 0; every duration is in ms.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Statistics {
    /// The period's start (inclusive).
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub from: UtcTime,
    /// The period's end (exclusive).
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String, format = DateTime)]
    pub to: UtcTime,
    /// Calls received in the period.
    pub calls: u64,
    /// Calls per incident category (`categories[].id`), of the classified calls.
    pub by_category: BTreeMap<String, u64>,
    /// Calls not linked to an incident.
    pub unclassified: u64,
    /// Calls per disposition, of the calls that ended.
    pub by_disposition: BTreeMap<String, u64>,
    /// Calls not ended yet (no disposition).
    pub in_progress: u64,
    /// Calls whose incident was handed to each agency (a call counts once per agency).
    pub by_agency: BTreeMap<String, u64>,
    /// Calls per hour of the day they were received, UTC: index 0 is 00:00–00:59.
    #[schema(value_type = Vec<u64>, min_items = 24, max_items = 24)]
    pub by_hour: [u64; 24],
    /// Answer times.
    pub answer: AnswerTimes,
    /// Calls answered and talk time per operator (`operators[].id`).
    pub by_operator: BTreeMap<String, OperatorStats>,
}

/// Answer times and waits of the calls with an outcome: answered, or ended without an
/// answer. A call still waiting counts in neither.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AnswerTimes {
    /// Calls answered or ended: the denominator of the shares.
    pub calls: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, abandoned by the caller (`abandoned_in_queue`,
    /// `abandoned_while_ringing`).
    pub abandoned: u64,
    /// `abandoned / calls`.
    pub abandoned_share: Option<f64>,
    /// Per threshold of [`ANSWER_THRESHOLDS_MS`]: calls answered at most that long after
    /// they were received, and that count's share of `calls` (abandoned calls included,
    /// as NENA-STA-020.1 counts every call arriving).
    pub within: Vec<WithinThreshold>,
    /// Mean wait: until the answer, else until the call ended (a caller who hung up
    /// waited too), in ms.
    pub mean_wait_ms: Option<f64>,
    /// 90th percentile of the same waits (nearest rank), in ms.
    pub p90_wait_ms: Option<i64>,
}

/// Calls answered within a threshold.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WithinThreshold {
    /// The threshold, in seconds.
    pub seconds: i64,
    /// Calls answered at most this long after they were received.
    pub answered: u64,
    /// `answered / calls`.
    pub share: Option<f64>,
}

/// One operator's calls in the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OperatorStats {
    /// Calls the operator answered.
    pub calls: u64,
    /// Their talk time (answer to end, of those that ended), in ms.
    pub talk_ms: i64,
}

// ---- SQL: every query takes the period as $1 (from, inclusive) and $2 (to, exclusive) --

/// Calls per category (NULL: unclassified), as `key`, `n`.
pub(super) const BY_CATEGORY: &str = "\
    SELECT i.category AS key, COUNT(*) AS n FROM calls c \
    LEFT JOIN incident_calls ic ON ic.call_id = c.id \
    LEFT JOIN incidents i ON i.id = ic.incident_id \
    WHERE c.received_at >= $1 AND c.received_at < $2 GROUP BY i.category";

/// Calls per disposition (NULL: in progress).
pub(super) const BY_DISPOSITION: &str = "\
    SELECT c.disposition AS key, COUNT(*) AS n FROM calls c \
    WHERE c.received_at >= $1 AND c.received_at < $2 GROUP BY c.disposition";

/// Calls per agency their incident was handed to.
pub(super) const BY_AGENCY: &str = "\
    SELECT h.agency AS key, COUNT(DISTINCT c.id) AS n FROM calls c \
    JOIN incident_calls ic ON ic.call_id = c.id \
    JOIN handoffs h ON h.incident_id = ic.incident_id \
    WHERE c.received_at >= $1 AND c.received_at < $2 GROUP BY h.agency";

/// Calls per hour of the day (UTC), as `hour`, `n`.
pub(super) const BY_HOUR: &str = "\
    SELECT (c.received_at / 3600000) % 24 AS hour, COUNT(*) AS n FROM calls c \
    WHERE c.received_at >= $1 AND c.received_at < $2 \
    GROUP BY (c.received_at / 3600000) % 24";

/// Calls answered and talk time per operator, as `key`, `n`, `total`.
pub(super) const BY_OPERATOR: &str = "\
    SELECT c.operator AS key, COUNT(*) AS n, \
    CAST(SUM(c.ended_at - c.answered_at) AS BIGINT) AS total FROM calls c \
    WHERE c.received_at >= $1 AND c.received_at < $2 \
    AND c.operator IS NOT NULL AND c.answered_at IS NOT NULL GROUP BY c.operator";

/// Of the calls with an outcome: `n` calls, `answered`, `abandoned` ($3, $4), and
/// answered within $5, $6, $7 ms.
pub(super) const ANSWER_COUNTS: &str = "\
    SELECT COUNT(*) AS n, \
    CAST(SUM(CASE WHEN c.answered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
    CAST(SUM(CASE WHEN c.answered_at IS NULL AND c.disposition IN ($3, $4) \
        THEN 1 ELSE 0 END) AS BIGINT) AS abandoned, \
    CAST(SUM(CASE WHEN c.answered_at - c.received_at <= $5 THEN 1 ELSE 0 END) AS BIGINT) \
        AS within_1, \
    CAST(SUM(CASE WHEN c.answered_at - c.received_at <= $6 THEN 1 ELSE 0 END) AS BIGINT) \
        AS within_2, \
    CAST(SUM(CASE WHEN c.answered_at - c.received_at <= $7 THEN 1 ELSE 0 END) AS BIGINT) \
        AS within_3 \
    FROM calls c WHERE c.received_at >= $1 AND c.received_at < $2 \
    AND (c.answered_at IS NOT NULL OR c.ended_at IS NOT NULL)";

/// The waits of the calls with an outcome, in ms, shortest first.
pub(super) const WAITS: &str = "\
    SELECT COALESCE(c.answered_at, c.ended_at) - c.received_at AS wait FROM calls c \
    WHERE c.received_at >= $1 AND c.received_at < $2 \
    AND (c.answered_at IS NOT NULL OR c.ended_at IS NOT NULL) ORDER BY wait";

/// The dispositions counted as abandoned by the caller.
pub(super) const ABANDONED: [&str; 2] = ["abandoned_in_queue", "abandoned_while_ringing"];

/// What the backends return: each query's rows, decoded.
#[derive(Debug, Default)]
pub(super) struct Raw {
    pub by_category: Vec<(Option<String>, i64)>,
    pub by_disposition: Vec<(Option<String>, i64)>,
    pub by_agency: Vec<(Option<String>, i64)>,
    pub by_hour: Vec<(i64, i64)>,
    pub by_operator: Vec<(Option<String>, i64, Option<i64>)>,
    /// n, answered, abandoned, within each threshold.
    pub answer: [i64; 6],
    pub waits: Vec<i64>,
}

/// A `key`, `n` row.
pub(super) fn keyed(row: &impl Cols) -> Result<(Option<String>, i64), StoreError> {
    Ok((row.opt_text("key")?, row.int("n")?))
}

/// A count read from the database (never negative).
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of `sorted` (ascending).
pub(super) fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The statistics from the queries' rows.
pub(super) fn assemble(from: UtcTime, to: UtcTime, raw: Raw) -> Statistics {
    let mut by_category = BTreeMap::new();
    let mut unclassified = 0;
    let mut calls = 0;
    for (key, n) in raw.by_category {
        calls += count(n);
        match key {
            Some(key) => *by_category.entry(key).or_insert(0) += count(n),
            None => unclassified += count(n),
        }
    }
    let mut by_disposition = BTreeMap::new();
    let mut in_progress = 0;
    for (key, n) in raw.by_disposition {
        match key {
            Some(key) => *by_disposition.entry(key).or_insert(0) += count(n),
            None => in_progress += count(n),
        }
    }
    let by_agency = raw
        .by_agency
        .into_iter()
        .filter_map(|(key, n)| Some((key?, count(n))))
        .collect();
    let mut by_hour = [0; 24];
    for (hour, n) in raw.by_hour {
        if let Some(slot) = usize::try_from(hour).ok().and_then(|h| by_hour.get_mut(h)) {
            *slot += count(n);
        }
    }
    let by_operator = raw
        .by_operator
        .into_iter()
        .filter_map(|(key, n, total)| {
            let stats = OperatorStats {
                calls: count(n),
                talk_ms: total.unwrap_or(0),
            };
            Some((key?, stats))
        })
        .collect();
    let [n, answered, abandoned, w1, w2, w3] = raw.answer.map(count);
    let within = ANSWER_THRESHOLDS_MS
        .iter()
        .zip([w1, w2, w3])
        .map(|(ms, answered)| WithinThreshold {
            seconds: ms / 1000,
            answered,
            share: share(answered, n),
        })
        .collect();
    let mean_wait_ms = (!raw.waits.is_empty())
        .then(|| raw.waits.iter().map(|&w| w as f64).sum::<f64>() / raw.waits.len() as f64);
    Statistics {
        from,
        to,
        calls,
        by_category,
        unclassified,
        by_disposition,
        in_progress,
        by_agency,
        by_hour,
        answer: AnswerTimes {
            calls: n,
            answered,
            abandoned,
            abandoned_share: share(abandoned, n),
            within,
            mean_wait_ms,
            p90_wait_ms: percentile(&raw.waits, 90),
        },
        by_operator,
    }
}

impl Statistics {
    /// The statistics as text for a terminal (`siaga stats`): one section per grouping,
    /// shares as percentages with one decimal, durations in seconds with one decimal.
    pub fn report(&self) -> String {
        let percent = |share: Option<f64>| match share {
            Some(share) => format!("{:.1} %", share * 100.0),
            None => "-".to_owned(),
        };
        let seconds = |ms: Option<f64>| match ms {
            Some(ms) => format!("{:.1} s", ms / 1000.0),
            None => "-".to_owned(),
        };
        let a = &self.answer;
        let mut out = format!(
            "calls received {} to {}: {}\n",
            super::rfc3339_millis(self.from),
            super::rfc3339_millis(self.to),
            self.calls
        );
        out.push_str(&format!(
            "\nanswer times ({} calls answered or ended; {} answered)\n",
            a.calls, a.answered
        ));
        for w in &a.within {
            out.push_str(&format!(
                "  answered within {} s  {:>6}  {}\n",
                w.seconds,
                w.answered,
                percent(w.share)
            ));
        }
        out.push_str(&format!(
            "  abandoned             {:>6}  {}\n",
            a.abandoned,
            percent(a.abandoned_share)
        ));
        out.push_str(&format!(
            "  wait: mean {}, 90th percentile {}\n",
            seconds(a.mean_wait_ms),
            seconds(a.p90_wait_ms.map(|ms| ms as f64))
        ));
        let section = |out: &mut String, title: &str, rows: Vec<(String, u64)>| {
            out.push_str(&format!("\n{title}\n"));
            if rows.is_empty() {
                out.push_str("  -\n");
            }
            for (key, n) in rows {
                out.push_str(&format!("  {key:<24}  {n:>6}\n"));
            }
        };
        let mut categories: Vec<(String, u64)> = self
            .by_category
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        if self.unclassified > 0 {
            categories.push(("(unclassified)".to_owned(), self.unclassified));
        }
        section(&mut out, "by category", categories);
        let mut dispositions: Vec<(String, u64)> = self
            .by_disposition
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        if self.in_progress > 0 {
            dispositions.push(("(in progress)".to_owned(), self.in_progress));
        }
        section(&mut out, "by disposition", dispositions);
        let agencies = self
            .by_agency
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        section(&mut out, "by agency", agencies);
        let hours = (0..24)
            .zip(self.by_hour)
            .filter(|(_, n)| *n > 0)
            .map(|(h, n)| (format!("{h:02}:00 UTC"), n))
            .collect();
        section(&mut out, "by hour", hours);
        out.push_str("\nby operator                  calls  talk\n");
        if self.by_operator.is_empty() {
            out.push_str("  -\n");
        }
        for (operator, o) in &self.by_operator {
            out.push_str(&format!(
                "  {operator:<24}  {:>6}  {}\n",
                o.calls,
                seconds(Some(o.talk_ms as f64))
            ));
        }
        out
    }
}

impl Store {
    /// The statistics of the calls received at or after `from` and before `to`.
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn statistics(&self, from: UtcTime, to: UtcTime) -> Result<Statistics, StoreError> {
        let raw = match &self.backend {
            Backend::Sqlite(s) => s.statistics(from.unix_millis(), to.unix_millis()).await?,
            Backend::Postgres(s) => s.statistics(from.unix_millis(), to.unix_millis()).await?,
        };
        Ok(assemble(from, to, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 90), None);
        assert_eq!(percentile(&[7], 90), Some(7));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 90), Some(9));
        assert_eq!(percentile(&ten, 100), Some(10));
        let eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(percentile(&eleven, 90), Some(10));
    }
}
