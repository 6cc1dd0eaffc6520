//! The callback worklist (RFC 7090 "PSAP callback"): every call abandoned in the queue or
//! while ringing, and every answered call that dropped before the operator classified it
//! (issue 6 point 4, `engine::call::dropped`), so that an operator can call the caller
//! back.
//!
//! An item is taken by one operator at a time; the callback's outcome closes it (answered)
//! or puts it back (busy, no answer, failure) with one more attempt counted. A later call
//! from the same number that an operator answers closes that number's items: the caller
//! got through. A dropped call's item also closes when the call is classified or linked
//! to an incident after it dropped ([`Worklist::classified`]). The list is rebuilt from
//! the event log after a restart (`Store::callback_worklist`, `acd.callback_window_h`).

use crate::engine::record::CallbackOutcome;
use crate::engine::time::UtcTime;
use std::time::Duration;
use uuid::Uuid;

/// [`CallbackItem::reason`] of an answered call that dropped before it was classified
/// (the abandoned ones carry their disposition).
pub const DROPPED_UNCLASSIFIED: &str = "dropped_unclassified";

/// One caller to call back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackItem {
    /// The abandoned call's record id.
    pub record: Uuid,
    /// The caller's number (personal data: log through `Pii`).
    pub caller: String,
    /// When the call was received (UTC).
    pub at: UtcTime,
    /// How long the call lasted until the caller hung up (waiting, for an abandoned one).
    pub waited: Duration,
    /// Why it is on the list: the abandoned call's disposition (`abandoned_in_queue`,
    /// `abandoned_while_ringing`), or [`DROPPED_UNCLASSIFIED`].
    pub reason: String,
    /// Callbacks tried so far without an answer.
    pub attempts: u32,
    /// The operator calling back now, if any.
    pub taken_by: Option<String>,
}

/// The worklist, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Worklist {
    items: Vec<CallbackItem>,
}

impl Worklist {
    /// The items, oldest first.
    pub fn items(&self) -> &[CallbackItem] {
        &self.items
    }

    /// Adds an item (a call with the same record already listed is not added twice),
    /// keeping the list in order of `at`.
    pub fn add(&mut self, item: CallbackItem) {
        if self.items.iter().any(|i| i.record == item.record) {
            return;
        }
        let at = self.items.partition_point(|i| i.at <= item.at);
        self.items.insert(at, item);
    }

    /// `operator` takes the oldest item nobody is calling back: it is theirs until
    /// [`Self::finish`]. `None` when there is none.
    pub fn take(&mut self, operator: &str) -> Option<CallbackItem> {
        let item = self.items.iter_mut().find(|i| i.taken_by.is_none())?;
        item.taken_by = Some(operator.to_owned());
        Some(item.clone())
    }

    /// `record`'s item, taken, goes back untouched (no attempt counted): the operator who
    /// took it could not place the callback (refused by the ACD).
    pub fn release(&mut self, record: Uuid) {
        if let Some(item) = self.items.iter_mut().find(|i| i.record == record) {
            item.taken_by = None;
        }
    }

    /// The callback of `record` ended with `outcome`: answered closes every item of that
    /// number; anything else puts the item back with one more attempt.
    pub fn finish(&mut self, record: Uuid, outcome: CallbackOutcome) {
        let Some(item) = self.items.iter_mut().find(|i| i.record == record) else {
            return;
        };
        if outcome == CallbackOutcome::Answered {
            let caller = item.caller.clone();
            self.items.retain(|i| i.caller != caller);
        } else {
            item.taken_by = None;
            item.attempts += 1;
        }
    }

    /// Call `record` was classified or linked to an incident: its item, if it is one of
    /// [`DROPPED_UNCLASSIFIED`], is closed (taken or not: the operator has what they
    /// needed, and the rebuild after a restart would not list it either). Returns whether
    /// one was.
    pub fn classified(&mut self, record: Uuid) -> bool {
        let before = self.items.len();
        self.items
            .retain(|i| i.record != record || i.reason != DROPPED_UNCLASSIFIED);
        self.items.len() != before
    }

    /// An operator answered a new call from `caller`: their items nobody is calling back
    /// are closed.
    pub fn caller_reached(&mut self, caller: &str) {
        self.items
            .retain(|i| i.caller != caller || i.taken_by.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u128, caller: &str, at: i64) -> CallbackItem {
        CallbackItem {
            record: Uuid::from_u128(n),
            caller: caller.to_owned(),
            at: UtcTime(at),
            waited: Duration::from_secs(5),
            reason: "abandoned_in_queue".to_owned(),
            attempts: 0,
            taken_by: None,
        }
    }

    #[test]
    fn items_are_taken_oldest_first_by_one_operator_at_a_time() {
        let mut w = Worklist::default();
        w.add(item(2, "0812", 200));
        w.add(item(1, "0811", 100));
        w.add(item(1, "0811", 100));
        assert_eq!(w.items().len(), 2);
        assert_eq!(w.take("1001").map(|i| i.record), Some(Uuid::from_u128(1)));
        assert_eq!(w.take("1002").map(|i| i.record), Some(Uuid::from_u128(2)));
        assert_eq!(w.take("1003"), None);
        w.finish(Uuid::from_u128(1), CallbackOutcome::Busy);
        let back = w.take("1003").unwrap();
        assert_eq!((back.record, back.attempts), (Uuid::from_u128(1), 1));
    }

    #[test]
    fn a_released_item_goes_back_without_an_attempt() {
        let mut w = Worklist::default();
        w.add(item(1, "0811", 100));
        w.take("1001");
        assert_eq!(w.take("1002"), None);
        w.release(Uuid::from_u128(1));
        let again = w.take("1002").unwrap();
        assert_eq!(
            (again.attempts, again.taken_by.as_deref()),
            (0, Some("1002"))
        );
    }

    #[test]
    fn an_answer_closes_every_item_of_that_number() {
        let mut w = Worklist::default();
        w.add(item(1, "0811", 100));
        w.add(item(2, "0811", 150));
        w.add(item(3, "0899", 200));
        w.take("1001");
        w.finish(Uuid::from_u128(1), CallbackOutcome::Answered);
        assert_eq!(w.items().len(), 1);
        w.caller_reached("0899");
        assert!(w.items().is_empty());
    }

    #[test]
    fn classifying_closes_only_a_dropped_calls_item() {
        let mut w = Worklist::default();
        w.add(item(1, "0811", 100));
        let mut dropped = item(2, "0812", 200);
        dropped.reason = DROPPED_UNCLASSIFIED.to_owned();
        w.add(dropped);
        assert!(
            !w.classified(Uuid::from_u128(1)),
            "an abandoned call's stays"
        );
        assert!(!w.classified(Uuid::from_u128(3)), "no such item");
        assert_eq!(w.items().len(), 2);
        assert!(w.classified(Uuid::from_u128(2)));
        let left: Vec<Uuid> = w.items().iter().map(|i| i.record).collect();
        assert_eq!(left, [Uuid::from_u128(1)]);
    }
}
