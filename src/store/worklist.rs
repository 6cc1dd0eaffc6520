//! The callback worklist (RFC 7090, issue 5; issue 6 point 4) as the event log has it,
//! independent of the database: the shape of an item ([`CallbackRow`]) and how a backend's
//! query rows (one per candidate call and `callback_ended` event) fold into items
//! ([`fold`]).
//!
//! A backend's query selects the candidates — caller known, no later answered call of the
//! same caller, and either abandoned (`calls.disposition`) or dropped unclassified (a
//! `dropped` event, see `engine::call::dropped`, an `ended_at`, and no `incident_calls`
//! row) — with each of their `callback_ended` events' `detail` joined; the outcome is read
//! here from that JSON, so the SQL needs no JSON functions and stays the same for SQLite
//! and PostgreSQL. Why a call is listed ([`CallbackRow::reason`]) is decided here from its
//! disposition: an abandoned one's, else `dropped_unclassified`.

use super::{StoreError, ser_time};
use crate::engine::UtcTime;
use crate::engine::acd::{CallbackItem, DROPPED_UNCLASSIFIED};
use crate::engine::record::{CallbackOutcome, Disposition};
use serde::Serialize;
use uuid::Uuid;

/// The dispositions that put a call on the worklist, as stored in `calls.disposition`.
pub(super) const ABANDONED: [&str; 2] = [
    Disposition::AbandonedInQueue.as_str(),
    Disposition::AbandonedWhileRinging.as_str(),
];

/// `call_events.kind` of an answered call's drop
/// ([`CallEventKind::Dropped`](crate::engine::record::CallEventKind::Dropped)).
pub(super) const DROPPED: &str = "dropped";

/// `call_events.kind` of a callback's end
/// ([`CallEventKind::CallbackEnded`](crate::engine::record::CallEventKind::CallbackEnded)).
pub(super) const CALLBACK_ENDED: &str = "callback_ended";

/// One open item of the callback worklist: an abandoned call, or an answered one that
/// dropped before it was classified, whose caller should be called back. Serializes with
/// its field names, times as RFC 3339 UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallbackRow {
    /// The abandoned call's id (`calls.id`).
    pub call: Uuid,
    /// The number to call back (`calls.caller`, the ANI). Personal data: log it only
    /// through `Pii`.
    pub caller: String,
    /// When the call arrived.
    #[serde(serialize_with = "ser_time")]
    pub received_at: UtcTime,
    /// When the caller hung up; the wait is `ended_at - received_at`.
    #[serde(serialize_with = "ser_time")]
    pub ended_at: UtcTime,
    /// The call's disposition (`calls.disposition`): `abandoned_in_queue`,
    /// `abandoned_while_ringing`, or `answered` for a dropped call.
    pub disposition: String,
    /// Why it is on the list: `abandoned_in_queue`, `abandoned_while_ringing` (its
    /// disposition) or `dropped_unclassified` ([`DROPPED_UNCLASSIFIED`]).
    pub reason: String,
    /// Callbacks of this call that ended without an answer so far (its `callback_ended`
    /// events).
    pub attempts: u32,
}

impl CallbackRow {
    /// The engine's worklist item for this row ([`Engine::restore_callbacks`]): received
    /// at `received_at`, waited until `ended_at` (0 if the log has them the wrong way
    /// round), nobody calling back yet.
    ///
    /// [`Engine::restore_callbacks`]: crate::engine::Engine::restore_callbacks
    pub fn into_item(self) -> CallbackItem {
        let waited = self.ended_at.0.saturating_sub(self.received_at.0);
        CallbackItem {
            record: self.call,
            caller: self.caller,
            at: self.received_at,
            waited: std::time::Duration::from_millis(u64::try_from(waited).unwrap_or(0)),
            reason: self.reason,
            attempts: self.attempts,
            taken_by: None,
        }
    }
}

/// One row of a backend's worklist query: a candidate call, and one of its
/// `callback_ended` events' `detail` (`None` when it has none: one row, no callback yet).
#[derive(Debug)]
pub(super) struct CandidateRow {
    pub call: Uuid,
    pub caller: String,
    pub received_at: UtcTime,
    /// `calls.ended_at`; always set with a disposition (the `ended` event sets both).
    pub ended_at: Option<UtcTime>,
    pub disposition: String,
    /// `Some(detail)` for each callback_ended event (the detail itself may be NULL).
    pub callback: Option<Option<String>>,
}

/// Folds candidate rows, where a call's rows are adjacent and calls come oldest first,
/// into the open items: a call with a callback whose outcome was `answered` is closed and
/// left out. A callback detail this version cannot read counts as an attempt that was not
/// answered (the item stays: better a needless callback than a lost one).
///
/// Errors: [`StoreError::Corrupt`] for a candidate without `ended_at`.
pub(super) fn fold(rows: Vec<CandidateRow>) -> Result<Vec<CallbackRow>, StoreError> {
    let mut items: Vec<CallbackRow> = Vec::new();
    // The callers reached by an answered callback, with when that call (the one called
    // back) ended: the engine closes every item of a caller it reached
    // (`Worklist::finish`), so the caller's other items that were listed by then close
    // too. The callback itself came after that end; an item of the same caller that
    // arrived between that end and the callback stays (the log does not say which came
    // first here: better a needless callback than a lost one).
    let mut reached: Vec<(String, UtcTime)> = Vec::new();
    let mut closed = false;
    for row in rows {
        if items.last().is_none_or(|item| item.call != row.call) {
            if closed && let Some(item) = items.pop() {
                reached.push((item.caller, item.ended_at));
            }
            closed = false;
            let ended_at = row.ended_at.ok_or_else(|| StoreError::Corrupt {
                column: "calls.ended_at",
                value: format!("NULL with disposition {}", row.disposition),
            })?;
            let reason = if ABANDONED.contains(&row.disposition.as_str()) {
                row.disposition.clone()
            } else {
                DROPPED_UNCLASSIFIED.to_owned()
            };
            items.push(CallbackRow {
                call: row.call,
                caller: row.caller,
                received_at: row.received_at,
                ended_at,
                disposition: row.disposition,
                reason,
                attempts: 0,
            });
        }
        let Some(detail) = row.callback else { continue };
        if let Some(item) = items.last_mut() {
            item.attempts = item.attempts.saturating_add(1);
        }
        closed |= outcome(detail.as_deref()) == Some(CallbackOutcome::Answered);
    }
    if closed && let Some(item) = items.pop() {
        reached.push((item.caller, item.ended_at));
    }
    items.retain(|item| {
        !reached
            .iter()
            .any(|(caller, until)| *caller == item.caller && item.received_at.0 <= until.0)
    });
    Ok(items)
}

/// The outcome in a `callback_ended` event's detail (`{"outcome":"answered"}`).
fn outcome(detail: Option<&str>) -> Option<CallbackOutcome> {
    let detail: serde_json::Value = serde_json::from_str(detail?).ok()?;
    CallbackOutcome::from_name(detail.get("outcome")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::{CallEvent, CallEventKind};
    use crate::store::columns::EventColumns;

    fn candidate(call: u128, callback: Option<Option<&str>>) -> CandidateRow {
        CandidateRow {
            call: Uuid::from_u128(call),
            caller: format!("+62{call}"),
            received_at: UtcTime(call as i64),
            ended_at: Some(UtcTime(call as i64 + 5)),
            disposition: "abandoned_in_queue".to_owned(),
            callback: callback.map(|d| d.map(str::to_owned)),
        }
    }

    /// The stored words this module matches are the ones the writer stores.
    #[test]
    fn matches_the_stored_words() {
        let ended = CallEvent {
            id: Uuid::from_u128(1),
            call: Uuid::from_u128(2),
            at: UtcTime(3),
            kind: CallEventKind::CallbackEnded {
                operator: "op-1".to_owned(),
                outcome: CallbackOutcome::Answered,
            },
        };
        let columns = EventColumns::of(&ended);
        assert_eq!(columns.kind, CALLBACK_ENDED);
        let dropped = CallEventKind::Dropped {
            reason: "the caller hung up".to_owned(),
        };
        assert_eq!(dropped.kind_name(), DROPPED);
        assert_eq!(
            outcome(columns.detail.as_deref()),
            Some(CallbackOutcome::Answered)
        );
        assert_eq!(ABANDONED, ["abandoned_in_queue", "abandoned_while_ringing"]);
    }

    #[test]
    fn folds_attempts_and_drops_answered_callbacks() {
        let busy = Some(Some(r#"{"outcome":"busy"}"#));
        let answered = Some(Some(r#"{"outcome":"answered"}"#));
        let rows = vec![
            candidate(1, None),
            candidate(2, busy),
            candidate(2, Some(Some("not json"))),
            candidate(2, Some(None)),
            candidate(3, busy),
            candidate(3, answered),
            candidate(4, Some(Some(r#"{"outcome":"no_answer"}"#))),
            candidate(5, answered),
        ];
        let items = fold(rows).unwrap();
        let got: Vec<(u128, u32)> = items
            .iter()
            .map(|i| (i.call.as_u128(), i.attempts))
            .collect();
        assert_eq!(got, [(1, 0), (2, 3), (4, 1)]);
        assert_eq!(items[0].caller, "+621");
        assert_eq!(items[0].ended_at, UtcTime(6));
        assert_eq!(items[0].reason, "abandoned_in_queue");
        let mut dropped = candidate(6, None);
        dropped.disposition = "answered".to_owned();
        let items = fold(vec![dropped]).unwrap();
        assert_eq!(
            (items[0].disposition.as_str(), items[0].reason.as_str()),
            ("answered", DROPPED_UNCLASSIFIED)
        );
        assert!(fold(Vec::new()).unwrap().is_empty());
    }

    /// An answered callback reached the caller: their items listed by then close with it,
    /// as the engine's `Worklist::finish` closes them live; a later one stays.
    #[test]
    fn an_answered_callback_closes_the_callers_earlier_items() {
        let answered = Some(Some(r#"{"outcome":"answered"}"#));
        let with_caller = |call: u128, callback| CandidateRow {
            caller: "+62811".to_owned(),
            ..candidate(call, callback)
        };
        // Call 10 (received 10, ended 15) was called back and answered; call 12 arrived
        // before that end, call 20 after it; call 11 is another caller's.
        let rows = vec![
            with_caller(10, answered),
            candidate(11, None),
            with_caller(12, None),
            with_caller(20, None),
        ];
        let got: Vec<u128> = fold(rows)
            .unwrap()
            .iter()
            .map(|i| i.call.as_u128())
            .collect();
        assert_eq!(got, [11, 20]);
    }

    #[test]
    fn a_candidate_without_an_end_is_corrupt() {
        let mut row = candidate(1, None);
        row.ended_at = None;
        assert!(matches!(
            fold(vec![row]),
            Err(StoreError::Corrupt {
                column: "calls.ended_at",
                ..
            })
        ));
    }
}
