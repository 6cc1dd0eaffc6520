//! The supervisor's call log: a search of `calls` by time range, category, disposition,
//! operator, caller number, agency and text in the incident's notes ([`CallFilter`]),
//! newest first, a page at a time ([`CallPage`], keyset pagination by [`Cursor`]); and a
//! call's detail ([`CallDetail`]: summary, event timeline, incident with its handoffs).
//!
//! Every filter value is a bound parameter of one fixed SQL text ([`SEARCH_CALLS`]): an
//! unset filter binds NULL and its condition is true. Nothing a user types is formatted
//! into SQL.

use super::incidents::{Cols, Incident};
use super::{Backend, CallRow, EventRow, Store, StoreError};
use crate::engine::UtcTime;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Most calls on one page.
pub const MAX_PAGE: u32 = 1000;

/// Which calls to list. Every field narrows the list; `Default` lists every call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Received at or after this time.
    pub from: Option<UtcTime>,
    /// Received before this time.
    pub to: Option<UtcTime>,
    /// Whose incident has this category (`categories[].id`).
    pub category: Option<String>,
    /// With this disposition (`answered`, `abandoned_in_queue` …).
    pub disposition: Option<String>,
    /// Answered by this operator (`operators[].id`).
    pub operator: Option<String>,
    /// From this caller number (ANI), compared exactly as stored (`+6281234567890`).
    pub caller: Option<String>,
    /// Whose incident was handed off to this agency (`agencies[].id`).
    pub agency: Option<String>,
    /// Whose incident's notes contain this text, case-insensitively (ASCII letters on
    /// SQLite, whose `LOWER` folds only those; every letter on PostgreSQL).
    pub text: Option<String>,
}

/// Where a page starts: after the call received at `received_at` with id `id` (the last
/// of the page before), in the log's order (received_at, then id, both descending).
/// Written as `<received_at ms>.<id>` ([`fmt::Display`], [`FromStr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The last listed call's `received_at`.
    pub received_at: UtcTime,
    /// The last listed call's id.
    pub id: Uuid,
}

/// As its text (`"1795953665123.00000000-0000-0000-0000-000000000007"`).
impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.received_at.unix_millis(), self.id)
    }
}

/// A cursor that is not `<ms>.<uuid>`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a page cursor (<received_at ms>.<call id>)")]
pub struct CursorError(pub String);

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, CursorError> {
        let err = || CursorError(s.to_owned());
        let (ms, id) = s.split_once('.').ok_or_else(err)?;
        Ok(Cursor {
            received_at: UtcTime(ms.parse().map_err(|_| err())?),
            id: Uuid::parse_str(id).map_err(|_| err())?,
        })
    }
}

/// A call in the log: its summary row, and its incident's classification and agencies.
/// Serializes as [`CallRow`]'s object with four more keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallLogRow {
    /// The call's summary.
    #[serde(flatten)]
    pub call: CallRow,
    /// `incident_id`: the incident the call belongs to.
    pub incident_id: Option<Uuid>,
    /// `category`: the incident's category.
    pub category: Option<String>,
    /// `subcategory`: the incident's subcategory.
    pub subcategory: Option<String>,
    /// `agencies`: the agencies the incident was handed off to, in handoff order, each
    /// once.
    pub agencies: Vec<String>,
}

/// One page of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallPage {
    /// The calls, newest (`received_at`, then id) first.
    pub calls: Vec<CallLogRow>,
    /// Where the next page starts; `None` when this page was not full (a full last page
    /// is followed by an empty one).
    #[schema(value_type = Option<String>, example = "1795953665123.00000000-0000-0000-0000-000000000007")]
    pub next: Option<Cursor>,
}

/// A call with everything recorded about it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallDetail {
    /// The summary row.
    pub call: CallRow,
    /// The event log (`call_events`), in the order the events happened.
    pub timeline: Vec<EventRow>,
    /// Its incident with the incident's calls and handoffs, if it was classified.
    pub incident: Option<Incident>,
}

/// The call columns of a search, qualified (incidents have `id`, `node_id` and
/// `operator` too), under [`CallRow`]'s names.
macro_rules! qualified_call_columns {
    () => {
        "c.id AS id, c.node_id AS node_id, c.trunk_call_id AS trunk_call_id, \
         c.caller AS caller, c.called AS called, c.trunk AS trunk, \
         c.received_at AS received_at, c.queued_at AS queued_at, \
         c.first_offered_at AS first_offered_at, c.answered_at AS answered_at, \
         c.ended_at AS ended_at, c.operator AS operator, c.disposition AS disposition, \
         c.ended_by AS ended_by, c.caller_to_operator_packets AS caller_to_operator_packets, \
         c.operator_to_caller_packets AS operator_to_caller_packets, \
         c.original_called AS original_called"
    };
}

/// A page of calls: received in [$1, $2), category $3, disposition $4, operator $5,
/// caller $6, agency $7, notes LIKE $8 (lower case, `\` escapes), after the cursor
/// ($9 received_at, $10 id), at most $11; each joined with its incident and handoffs, a
/// call's rows adjacent, in the log's order.
pub(super) const SEARCH_CALLS: &str = concat!(
    "SELECT ",
    qualified_call_columns!(),
    ", i.id AS incident_id, i.category AS category, i.subcategory AS subcategory, \
     h.agency AS agency \
     FROM (SELECT c.* FROM calls c \
        LEFT JOIN incident_calls ic ON ic.call_id = c.id \
        LEFT JOIN incidents i ON i.id = ic.incident_id \
        WHERE c.received_at >= $1 AND c.received_at < $2 \
        AND ($3 IS NULL OR i.category = $3) \
        AND ($4 IS NULL OR c.disposition = $4) \
        AND ($5 IS NULL OR c.operator = $5) \
        AND ($6 IS NULL OR c.caller = $6) \
        AND ($7 IS NULL OR EXISTS (SELECT 1 FROM handoffs hf \
            WHERE hf.incident_id = i.id AND hf.agency = $7)) \
        AND ($8 IS NULL OR LOWER(i.notes) LIKE $8 ESCAPE '\\') \
        AND ($9 IS NULL OR c.received_at < $9 OR (c.received_at = $9 AND c.id < $10)) \
        ORDER BY c.received_at DESC, c.id DESC LIMIT $11) c \
     LEFT JOIN incident_calls ic ON ic.call_id = c.id \
     LEFT JOIN incidents i ON i.id = ic.incident_id \
     LEFT JOIN handoffs h ON h.incident_id = i.id \
     ORDER BY c.received_at DESC, c.id DESC, h.handed_off_at, h.id"
);

pub(super) const SELECT_CALL: &str = concat!(
    "SELECT ",
    qualified_call_columns!(),
    " FROM calls c WHERE c.id = $1"
);

/// The LIKE pattern for "contains `text`, case-insensitively": lower case, with LIKE's
/// `%`, `_` and the escape `\` escaped.
pub(super) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The bound values of [`SEARCH_CALLS`] besides the cursor id, in order.
pub(super) struct SearchParams<'a> {
    pub from: i64,
    pub to: i64,
    pub category: Option<&'a str>,
    pub disposition: Option<&'a str>,
    pub operator: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub agency: Option<&'a str>,
    pub notes: Option<String>,
    pub after: Option<i64>,
    pub limit: i64,
}

impl<'a> SearchParams<'a> {
    pub fn of(filter: &'a CallFilter, after: Option<Cursor>, limit: u32) -> Self {
        SearchParams {
            from: filter.from.map_or(i64::MIN, UtcTime::unix_millis),
            to: filter.to.map_or(i64::MAX, UtcTime::unix_millis),
            category: filter.category.as_deref(),
            disposition: filter.disposition.as_deref(),
            operator: filter.operator.as_deref(),
            caller: filter.caller.as_deref(),
            agency: filter.agency.as_deref(),
            notes: filter.text.as_deref().map(contains_pattern),
            after: after.map(|c| c.received_at.unix_millis()),
            limit: i64::from(limit.clamp(1, MAX_PAGE)),
        }
    }
}

/// Folds the rows of [`SEARCH_CALLS`] (a call's rows adjacent, one per handoff) into log
/// rows; `call_row` decodes the call's columns.
pub(super) fn fold<R: Cols>(
    rows: &[R],
    call_row: impl Fn(&R) -> Result<CallRow, StoreError>,
) -> Result<Vec<CallLogRow>, StoreError> {
    let mut out: Vec<CallLogRow> = Vec::new();
    for row in rows {
        let id = row.uuid("id")?;
        let agency = row.opt_text("agency")?;
        match out.last_mut() {
            Some(last) if last.call.id == id => {}
            _ => out.push(CallLogRow {
                call: call_row(row)?,
                incident_id: row.opt_uuid("incident_id")?,
                category: row.opt_text("category")?,
                subcategory: row.opt_text("subcategory")?,
                agencies: Vec::new(),
            }),
        }
        if let (Some(last), Some(agency)) = (out.last_mut(), agency)
            && !last.agencies.contains(&agency)
        {
            last.agencies.push(agency);
        }
    }
    Ok(out)
}

impl Store {
    /// Up to `limit` (1 to [`MAX_PAGE`]) calls matching `filter`, newest first, starting
    /// after `after` (the previous page's [`CallPage::next`]; `None`: the newest).
    ///
    /// Errors: [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn search_calls(
        &self,
        filter: &CallFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<CallPage, StoreError> {
        let params = SearchParams::of(filter, after, limit);
        let full = usize::try_from(params.limit).unwrap_or(usize::MAX);
        let calls = match &self.backend {
            Backend::Sqlite(s) => s.search_calls(&params, after.map(|c| c.id)).await?,
            Backend::Postgres(s) => s.search_calls(&params, after.map(|c| c.id)).await?,
        };
        let next = match calls.last() {
            Some(last) if calls.len() == full => Some(Cursor {
                received_at: last.call.received_at,
                id: last.call.id,
            }),
            _ => None,
        };
        Ok(CallPage { calls, next })
    }

    /// The call `call` with its timeline and incident.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Database`], [`StoreError::Corrupt`].
    pub async fn call_detail(&self, call: Uuid) -> Result<CallDetail, StoreError> {
        let row = match &self.backend {
            Backend::Sqlite(s) => s.call(call).await?,
            Backend::Postgres(s) => s.call(call).await?,
        };
        let row = row.ok_or(StoreError::NotFound {
            what: "call",
            id: call,
        })?;
        Ok(CallDetail {
            call: row,
            timeline: self.call_events(call).await?,
            incident: self.incident_of_call(call).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let cursor = Cursor {
            received_at: UtcTime(1_795_953_665_123),
            id: Uuid::from_u128(7),
        };
        let text = cursor.to_string();
        assert_eq!(text, "1795953665123.00000000-0000-0000-0000-000000000007");
        assert_eq!(text.parse(), Ok(cursor));
        for bad in [
            "",
            "12",
            "x.00000000-0000-0000-0000-000000000007",
            "12.nope",
        ] {
            assert_eq!(bad.parse::<Cursor>(), Err(CursorError(bad.to_owned())));
        }
    }

    #[test]
    fn like_patterns_escape_wildcards_and_fold_case() {
        assert_eq!(contains_pattern("Asap"), "%asap%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
