//! How a [`CallEvent`] maps to stored columns, independent of the database: the
//! `call_events` row it becomes ([`EventColumns`]) and the change it makes to its call's
//! `calls` summary row ([`SummaryUpdate`]). A backend runs the SQL; this module decides
//! what to write, and decodes a stored event back into its summary change so the summary
//! can be completed when a call's `received` event is written after its other events.

use crate::engine::record::{CallEvent, CallEventKind};
use serde_json::{Value, json};

/// The `call_events` columns an event fills besides its ids, `node_id`, `seq` and `at`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EventColumns<'a> {
    /// `kind`: [`CallEventKind::kind_name`].
    pub kind: &'static str,
    /// `operator`: the operator of an operator-leg event.
    pub operator: Option<&'a str>,
    /// `detail`: a JSON object of the kind's remaining fields, `None` when it has none.
    pub detail: Option<String>,
}

impl<'a> EventColumns<'a> {
    /// The columns of `event`.
    pub fn of(event: &'a CallEvent) -> Self {
        let detail = match &event.kind {
            CallEventKind::Received {
                trunk_call_id,
                caller,
                called,
                original_called,
                trunk,
            } => Some(json!({
                "trunk_call_id": trunk_call_id,
                "caller": caller,
                "called": called,
                "original_called": original_called,
                "trunk": trunk,
            })),
            CallEventKind::Rejected { status, .. } => Some(json!({ "status": status })),
            CallEventKind::LegFailed { reason, .. } => Some(json!({ "reason": reason })),
            CallEventKind::Ended { by, disposition } => Some(json!({
                "by": by.as_str(),
                "disposition": disposition.as_str(),
            })),
            CallEventKind::MediaRelayed {
                caller_to_operator,
                operator_to_caller,
            }
            | CallEventKind::CallbackMedia {
                caller_to_operator,
                operator_to_caller,
            } => Some(json!({
                "caller_to_operator": caller_to_operator,
                "operator_to_caller": operator_to_caller,
            })),
            CallEventKind::Renegotiated { by, direction } => Some(json!({
                "by": by.as_str(),
                "direction": direction,
            })),
            CallEventKind::Queued {
                queue,
                priority,
                repeat,
                skills,
            } => Some(json!({
                "queue": queue,
                "priority": priority,
                "repeat": repeat,
                "skills": skills,
            })),
            CallEventKind::Requeued { reason, .. } | CallEventKind::Dropped { reason } => {
                Some(json!({ "reason": reason }))
            }
            CallEventKind::OverflowOffered { target }
            | CallEventKind::OverflowAnswered { target } => Some(json!({ "target": target })),
            CallEventKind::OverflowFailed { target, reason } => Some(json!({
                "target": target,
                "reason": reason,
            })),
            CallEventKind::TransferOffered { agency, target, .. }
            | CallEventKind::TransferAnswered { agency, target } => {
                Some(json!({ "agency": agency, "target": target }))
            }
            CallEventKind::TransferFailed {
                agency,
                target,
                reason,
            } => Some(json!({ "agency": agency, "target": target, "reason": reason })),
            CallEventKind::CallbackEnded { outcome, .. } => {
                Some(json!({ "outcome": outcome.as_str() }))
            }
            CallEventKind::Interrupted { last_state, .. } => {
                Some(json!({ "last_state": last_state }))
            }
            CallEventKind::SessionExpired
            | CallEventKind::Widened
            | CallEventKind::CallbackStarted { .. }
            | CallEventKind::Offered { .. }
            | CallEventKind::NoAnswer { .. }
            | CallEventKind::Answered { .. } => None,
        };
        EventColumns {
            kind: event.kind.kind_name(),
            operator: event.kind.operator(),
            detail: detail.map(|d| d.to_string()),
        }
    }
}

/// What one event changes in its call's `calls` row (other than the row's creation by
/// `received`). Each change is order-insensitive, so applying a call's events in any
/// order gives the same row: the earliest time wins for `queued_at`, `first_offered_at`,
/// `answered_at` (with its `operator`) and `ended_at` (with `ended_by` and
/// `disposition`); the highest count wins for the packet counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SummaryUpdate {
    /// No change (`offered` sets `first_offered_at`; `no_answer`, `rejected`, `leg_failed`,
    /// `callback_media` (a callback's counters are not the call's) and kinds of later
    /// versions change nothing).
    Nothing,
    /// `queued_at`, when unset or later.
    Queued { at: i64 },
    /// `first_offered_at`, when unset or later.
    Offered { at: i64 },
    /// `answered_at` and `operator`, when unset or later.
    Answered { at: i64, operator: String },
    /// `ended_at`, `ended_by` and `disposition`, when unset or later.
    Ended {
        at: i64,
        by: String,
        disposition: String,
    },
    /// The packet counters, each when unset or lower.
    Media {
        caller_to_operator: i64,
        operator_to_caller: i64,
    },
}

impl SummaryUpdate {
    /// The change `event` makes (`Nothing` for `received`, which inserts the row instead).
    pub fn of(event: &CallEvent) -> Self {
        let at = event.at.unix_millis();
        match &event.kind {
            CallEventKind::Queued { .. } => SummaryUpdate::Queued { at },
            CallEventKind::Offered { .. } => SummaryUpdate::Offered { at },
            CallEventKind::Answered { operator } => SummaryUpdate::Answered {
                at,
                operator: operator.clone(),
            },
            CallEventKind::Ended { by, disposition } => SummaryUpdate::Ended {
                at,
                by: by.as_str().to_owned(),
                disposition: disposition.as_str().to_owned(),
            },
            CallEventKind::MediaRelayed {
                caller_to_operator,
                operator_to_caller,
            } => SummaryUpdate::Media {
                caller_to_operator: saturating_i64(*caller_to_operator),
                operator_to_caller: saturating_i64(*operator_to_caller),
            },
            CallEventKind::Received { .. }
            | CallEventKind::NoAnswer { .. }
            | CallEventKind::Rejected { .. }
            | CallEventKind::LegFailed { .. }
            | CallEventKind::Renegotiated { .. }
            | CallEventKind::SessionExpired
            | CallEventKind::Widened
            | CallEventKind::Requeued { .. }
            | CallEventKind::OverflowOffered { .. }
            | CallEventKind::OverflowFailed { .. }
            | CallEventKind::OverflowAnswered { .. }
            | CallEventKind::TransferOffered { .. }
            | CallEventKind::TransferAnswered { .. }
            | CallEventKind::TransferFailed { .. }
            | CallEventKind::CallbackStarted { .. }
            | CallEventKind::CallbackEnded { .. }
            | CallEventKind::CallbackMedia { .. }
            | CallEventKind::Dropped { .. }
            | CallEventKind::Interrupted { .. } => SummaryUpdate::Nothing,
        }
    }

    /// The change a stored `call_events` row makes, decoded from its columns. A row this
    /// version cannot read (an unknown kind, a detail without the expected fields) makes
    /// no change.
    pub fn of_stored(kind: &str, at: i64, operator: Option<String>, detail: Option<&str>) -> Self {
        let detail: Value = detail
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let text = |key: &str| detail.get(key).and_then(Value::as_str).map(str::to_owned);
        let count = |key: &str| detail.get(key).and_then(Value::as_u64).map(saturating_i64);
        match kind {
            "queued" => SummaryUpdate::Queued { at },
            "offered" => SummaryUpdate::Offered { at },
            "answered" => match operator {
                Some(operator) => SummaryUpdate::Answered { at, operator },
                None => SummaryUpdate::Nothing,
            },
            "ended" => match (text("by"), text("disposition")) {
                (Some(by), Some(disposition)) => SummaryUpdate::Ended {
                    at,
                    by,
                    disposition,
                },
                _ => SummaryUpdate::Nothing,
            },
            "media" => match (count("caller_to_operator"), count("operator_to_caller")) {
                (Some(caller_to_operator), Some(operator_to_caller)) => SummaryUpdate::Media {
                    caller_to_operator,
                    operator_to_caller,
                },
                _ => SummaryUpdate::Nothing,
            },
            _ => SummaryUpdate::Nothing,
        }
    }
}

/// A count as a BIGINT: counts beyond `i64::MAX` (never reached by RTP packet counts) are
/// stored as `i64::MAX`.
fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::UtcTime;
    use crate::engine::record::{CallbackOutcome, Disposition, Party};
    use uuid::Uuid;

    fn event(kind: CallEventKind) -> CallEvent {
        CallEvent {
            id: Uuid::from_u128(1),
            call: Uuid::from_u128(2),
            at: UtcTime(1_000),
            kind,
        }
    }

    /// One event of each kind, `Ended` with each disposition and `CallbackEnded` with
    /// each outcome. [`slot`] and [`disposition_slot`] make a new kind or disposition
    /// fail to compile here until it is added.
    fn every_kind() -> Vec<CallEventKind> {
        let op = || "op-7".to_owned();
        let target = || "sip:112@backup.example".to_owned();
        let mut kinds = vec![
            CallEventKind::Received {
                trunk_call_id: "abc@trunk".to_owned(),
                caller: Some("+62811".to_owned()),
                called: "112".to_owned(),
                original_called: None,
                trunk: "telco".to_owned(),
            },
            CallEventKind::Queued {
                queue: "default".into(),
                priority: 2,
                repeat: true,
                skills: vec!["id".into()],
            },
            CallEventKind::Widened,
            CallEventKind::Requeued {
                operator: op(),
                reason: "RTP silence".to_owned(),
            },
            CallEventKind::OverflowOffered { target: target() },
            CallEventKind::OverflowFailed {
                target: target(),
                reason: "486 Busy Here".to_owned(),
            },
            CallEventKind::OverflowAnswered { target: target() },
            CallEventKind::TransferOffered {
                operator: op(),
                agency: "damkar".to_owned(),
                target: target(),
            },
            CallEventKind::TransferAnswered {
                agency: "damkar".to_owned(),
                target: target(),
            },
            CallEventKind::TransferFailed {
                agency: "damkar".to_owned(),
                target: target(),
                reason: "486 response".to_owned(),
            },
            CallEventKind::CallbackStarted { operator: op() },
            CallEventKind::Offered { operator: op() },
            CallEventKind::NoAnswer { operator: op() },
            CallEventKind::Rejected {
                operator: op(),
                status: 486,
            },
            CallEventKind::LegFailed {
                operator: op(),
                reason: "no common codec".to_owned(),
            },
            CallEventKind::Answered { operator: op() },
            CallEventKind::Renegotiated {
                by: Party::Operator,
                direction: "sendonly".to_owned(),
            },
            CallEventKind::SessionExpired,
            CallEventKind::MediaRelayed {
                caller_to_operator: 10,
                operator_to_caller: u64::MAX,
            },
            CallEventKind::CallbackMedia {
                caller_to_operator: 4,
                operator_to_caller: 6,
            },
            CallEventKind::Interrupted {
                last_state: "on_call".to_owned(),
                operator: Some(op()),
            },
            CallEventKind::Dropped {
                reason: "the caller hung up".to_owned(),
            },
        ];
        for outcome in [
            CallbackOutcome::Answered,
            CallbackOutcome::Busy,
            CallbackOutcome::NoAnswer,
            CallbackOutcome::Failed,
        ] {
            kinds.push(CallEventKind::CallbackEnded {
                operator: op(),
                outcome,
            });
        }
        for disposition in [
            Disposition::Answered,
            Disposition::AbandonedInQueue,
            Disposition::AbandonedWhileRinging,
            Disposition::Failed,
            Disposition::Interrupted,
            Disposition::Overflowed,
        ] {
            kinds.push(CallEventKind::Ended {
                by: Party::Siaga,
                disposition,
            });
        }
        kinds
    }

    /// A number per kind, by an exhaustive match.
    fn slot(kind: &CallEventKind) -> usize {
        match kind {
            CallEventKind::Received { .. } => 0,
            CallEventKind::Queued { .. } => 1,
            CallEventKind::Widened => 2,
            CallEventKind::Requeued { .. } => 3,
            CallEventKind::OverflowOffered { .. } => 4,
            CallEventKind::OverflowFailed { .. } => 5,
            CallEventKind::OverflowAnswered { .. } => 6,
            CallEventKind::CallbackStarted { .. } => 7,
            CallEventKind::CallbackEnded { .. } => 8,
            CallEventKind::Offered { .. } => 9,
            CallEventKind::NoAnswer { .. } => 10,
            CallEventKind::Rejected { .. } => 11,
            CallEventKind::LegFailed { .. } => 12,
            CallEventKind::Answered { .. } => 13,
            CallEventKind::Renegotiated { .. } => 14,
            CallEventKind::SessionExpired => 15,
            CallEventKind::Ended { .. } => 16,
            CallEventKind::MediaRelayed { .. } => 17,
            CallEventKind::CallbackMedia { .. } => 18,
            CallEventKind::TransferOffered { .. } => 19,
            CallEventKind::TransferAnswered { .. } => 20,
            CallEventKind::TransferFailed { .. } => 21,
            CallEventKind::Interrupted { .. } => 22,
            CallEventKind::Dropped { .. } => 23,
        }
    }

    /// A number per disposition, by an exhaustive match.
    fn disposition_slot(disposition: Disposition) -> usize {
        match disposition {
            Disposition::Answered => 0,
            Disposition::AbandonedInQueue => 1,
            Disposition::AbandonedWhileRinging => 2,
            Disposition::Failed => 3,
            Disposition::Interrupted => 4,
            Disposition::Overflowed => 5,
        }
    }

    #[test]
    fn every_kind_and_disposition_is_sampled() {
        let kinds = every_kind();
        let mut slots: Vec<usize> = kinds.iter().map(slot).collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots, (0..=23).collect::<Vec<_>>());
        let mut dispositions: Vec<usize> = kinds
            .iter()
            .filter_map(|k| match k {
                CallEventKind::Ended { disposition, .. } => Some(disposition_slot(*disposition)),
                _ => None,
            })
            .collect();
        dispositions.sort_unstable();
        assert_eq!(dispositions, (0..=5).collect::<Vec<_>>());
    }

    /// Every kind (each disposition, each callback outcome) comes back from its JSON form
    /// as it was: the journal keeps events in that form while the database is away.
    #[test]
    fn every_kind_round_trips_through_json() {
        for kind in every_kind() {
            let ev = event(kind);
            let text = serde_json::to_string(&ev).expect("serializable");
            let back: CallEvent = serde_json::from_str(&text).expect("readable");
            assert_eq!(back, ev, "{text}");
        }
    }

    /// Every kind's stored columns decode back to the summary change of the event itself.
    #[test]
    fn stored_columns_decode_to_the_same_summary_change() {
        for kind in every_kind() {
            let ev = event(kind);
            let cols = EventColumns::of(&ev);
            assert_eq!(cols.kind, ev.kind.kind_name());
            assert_eq!(cols.operator, ev.kind.operator());
            let decoded = SummaryUpdate::of_stored(
                cols.kind,
                1_000,
                cols.operator.map(str::to_owned),
                cols.detail.as_deref(),
            );
            assert_eq!(decoded, SummaryUpdate::of(&ev), "{:?}", ev.kind);
        }
    }

    /// Each disposition reaches `calls.disposition` as its word, from the event and from
    /// its stored row alike.
    #[test]
    fn every_disposition_sets_its_word() {
        for kind in every_kind() {
            let CallEventKind::Ended { disposition, .. } = kind else {
                continue;
            };
            let ev = event(kind);
            let expected = SummaryUpdate::Ended {
                at: 1_000,
                by: "siaga".to_owned(),
                disposition: disposition.as_str().to_owned(),
            };
            assert_eq!(SummaryUpdate::of(&ev), expected);
            let cols = EventColumns::of(&ev);
            let stored = SummaryUpdate::of_stored(cols.kind, 1_000, None, cols.detail.as_deref());
            assert_eq!(stored, expected);
        }
        let overflowed = event(CallEventKind::Ended {
            by: Party::Caller,
            disposition: Disposition::Overflowed,
        });
        assert_eq!(
            EventColumns::of(&overflowed).detail.as_deref(),
            Some(r#"{"by":"caller","disposition":"overflowed"}"#)
        );
    }

    /// The new ACD kinds keep their fields in `detail`, and the operator in its column.
    #[test]
    fn acd_kinds_store_their_fields() {
        let detail = |kind: CallEventKind| -> (Option<String>, Value) {
            let ev = event(kind);
            let cols = EventColumns::of(&ev);
            let detail = cols
                .detail
                .as_deref()
                .map_or(Value::Null, |d| serde_json::from_str(d).unwrap());
            (cols.operator.map(str::to_owned), detail)
        };
        let target = "sip:112@backup.example";
        let cases = [
            (
                CallEventKind::Queued {
                    queue: "desk-110".into(),
                    priority: 200,
                    repeat: true,
                    skills: vec!["id".into(), "en".into()],
                },
                None,
                json!({"queue": "desk-110", "priority": 200, "repeat": true, "skills": ["id", "en"]}),
            ),
            (CallEventKind::Widened, None, Value::Null),
            (
                CallEventKind::Requeued {
                    operator: "op-2".into(),
                    reason: "408".into(),
                },
                Some("op-2"),
                json!({"reason": "408"}),
            ),
            (
                CallEventKind::OverflowOffered {
                    target: target.into(),
                },
                None,
                json!({ "target": target }),
            ),
            (
                CallEventKind::OverflowFailed {
                    target: target.into(),
                    reason: "no answer".into(),
                },
                None,
                json!({"target": target, "reason": "no answer"}),
            ),
            (
                CallEventKind::OverflowAnswered {
                    target: target.into(),
                },
                None,
                json!({ "target": target }),
            ),
            (
                CallEventKind::CallbackStarted {
                    operator: "op-3".into(),
                },
                Some("op-3"),
                Value::Null,
            ),
            (
                CallEventKind::CallbackEnded {
                    operator: "op-3".into(),
                    outcome: CallbackOutcome::NoAnswer,
                },
                Some("op-3"),
                json!({"outcome": "no_answer"}),
            ),
        ];
        for (kind, operator, expected) in cases {
            let name = kind.kind_name();
            assert_eq!(
                detail(kind),
                (operator.map(str::to_owned), expected),
                "{name}"
            );
        }
    }

    #[test]
    fn details_hold_the_remaining_fields() {
        let ev = event(CallEventKind::Rejected {
            operator: "op-1".to_owned(),
            status: 603,
        });
        let cols = EventColumns::of(&ev);
        assert_eq!(cols.operator, Some("op-1"));
        assert_eq!(cols.detail.as_deref(), Some(r#"{"status":603}"#));
        let ev = event(CallEventKind::Received {
            trunk_call_id: "abc@trunk".to_owned(),
            caller: None,
            called: "112".to_owned(),
            original_called: Some("110".to_owned()),
            trunk: "telco".to_owned(),
        });
        let detail: Value = serde_json::from_str(&EventColumns::of(&ev).detail.unwrap()).unwrap();
        assert_eq!(detail["caller"], Value::Null);
        assert_eq!(detail["called"], "112");
        assert_eq!(detail["original_called"], "110");
        assert_eq!(
            EventColumns::of(&event(CallEventKind::Widened)).detail,
            None
        );
    }

    #[test]
    fn unreadable_rows_change_nothing() {
        assert_eq!(
            SummaryUpdate::of_stored("transferred", 5, None, None),
            SummaryUpdate::Nothing
        );
        assert_eq!(
            SummaryUpdate::of_stored("ended", 5, None, Some("not json")),
            SummaryUpdate::Nothing
        );
        assert_eq!(
            SummaryUpdate::of_stored("answered", 5, None, None),
            SummaryUpdate::Nothing
        );
    }
}
