//! Answered calls that drop before they are classified (issue 6 point 4): they go on the
//! callback worklist (RFC 7090) beside the abandoned ones, so that an operator calls the
//! caller back. This module owns what counts as a drop, the live calls' "classified"
//! mark, and listing the item.
//!
//! - **Dropped**: the call was answered (the trunk has siaga's 2xx) and the caller's side
//!   ended it, the caller's BYE or the trunk's leg lost: no response, or 408/481, to a
//!   request siaga sent in the trunk's dialog (RFC 3261 §14.1, §8.1.3.1 for a transport
//!   error), a 408/481 to siaga's session refresh or the trunk not refreshing (RFC 4028
//!   §10), no ACK for a later 2xx to the trunk within 64·T1 (§13.3.1.4). It must end while
//!   an operator has it (a transfer still ringing included: the agency never got the
//!   caller), after the operator left a transfer that still rings (`Transferring`: nobody
//!   got the caller), or while it waits re-queued after the operator's leg failed
//!   (`leg_loss`).
//!   Not a drop: the operator hanging up, a call handed off (transferred to an agency, or
//!   answered by the backup centre: its end is theirs), siaga stopping (`interrupted`),
//!   a first 2xx never ACKed (`failed`: the caller was never connected), a callback.
//!   Every drop is recorded as a `dropped` event (its reason) just before `ended`,
//!   classified or not: the record says what happened, and the worklist is derived.
//! - **Classified**: the call has an incident (`incident_calls`: classified or linked
//!   through the API). The API tells the engine after the store took it
//!   ([`Engine::call_classified`], fire-and-forget): a live call is marked, a dropped
//!   call's item already listed is closed (the operator classifies in wrap-up, after the
//!   drop, and then has what they needed). A note lost on a busy link leaves the item
//!   listed until the next restart, whose rebuild checks `incident_calls`.
//! - **Listed**: a drop of an unmarked call with a known caller number adds an item with
//!   reason [`DROPPED_UNCLASSIFIED`], received at the call's arrival, `waited` its whole
//!   length. It closes like an abandoned call's item: an answered callback, a later call
//!   from the same number that an operator answers, and also its call being classified.
//!   `Store::callback_worklist` rebuilds the same items from `dropped` events without an
//!   `incident_calls` row.

use super::{Call, CallState};
use crate::engine::acd::{CallHandle, CallbackItem, DROPPED_UNCLASSIFIED};
use crate::engine::driver::Engine;
use crate::engine::record::{CallEventKind, Disposition, Party};
use crate::engine::time::{Now, UtcTime};
use uuid::Uuid;

/// The reason recorded when the caller's BYE ended the answered call.
pub(crate) const CALLER_HUNG_UP: &str = "the caller hung up";

/// Why `call`, ended `by` with `disposition` (after `CallState::disposition`), dropped —
/// `was_answered`: the trunk had siaga's 2xx ([`Call::was_answered`] before the end took
/// its dialog); `lost`: the reason siaga gave up the trunk's leg, if it did — or `None`
/// when it did not drop (see the module docs).
fn drop_reason(
    call: &Call,
    (by, disposition, was_answered): (Party, Disposition, bool),
    lost: Option<&str>,
) -> Option<String> {
    let connected = matches!(
        call.state,
        CallState::Answered { .. }
            | CallState::Queued
            | CallState::Offering { .. }
            | CallState::Transferring { .. }
    );
    if !was_answered || !connected || disposition != Disposition::Answered {
        return None;
    }
    match (by, lost) {
        (Party::Caller, _) => Some(CALLER_HUNG_UP.to_owned()),
        (Party::Siaga, Some(reason)) => Some(reason.to_owned()),
        _ => None,
    }
}

impl Engine {
    /// Call record `record` was classified or linked to an incident (the API, after the
    /// store wrote it): a live call is marked so that its drop lists nothing; otherwise a
    /// dropped call's worklist item is closed. A record siaga does not hold changes
    /// nothing (another node's call, or one classified in time).
    pub fn call_classified(&mut self, record: Uuid) {
        let live = self
            .calls
            .calls
            .values()
            .any(|c| c.record == record && c.callback.is_none());
        if live {
            self.calls.classified.insert(record);
            tracing::debug!(call = %record, "live call classified");
        } else if self.calls.acd.worklist.classified(record) {
            tracing::info!(call = %record, "dropped call classified: callback item closed");
        }
    }

    /// Call `handle`'s trunk leg is lost (`reason`, a few words) after it was answered:
    /// the call ends (`Party::Siaga`, `answered`), a drop (see the module docs).
    pub(super) fn caller_leg_lost(&mut self, now: Now, handle: CallHandle, reason: &str) {
        self.finish_call(
            now,
            handle,
            Party::Siaga,
            Disposition::Answered,
            Some(reason),
        );
    }

    /// `call`, removed by `end_call`, ended `by` with `disposition` (`ended`, with whether
    /// the trunk had siaga's 2xx): if it dropped, records `dropped` and, unless it was
    /// classified (`classified`, the mark taken off the table) or its caller is unknown,
    /// lists it (see the module docs).
    pub(super) fn note_drop(
        &mut self,
        now: Now,
        call: &Call,
        ended: (Party, Disposition, bool),
        lost: Option<&str>,
        classified: bool,
    ) {
        let Some(reason) = drop_reason(call, ended, lost) else {
            return;
        };
        tracing::info!(call = %call.record, reason, classified, "answered call dropped");
        self.emit(call.record, now, CallEventKind::Dropped { reason });
        let Some(caller) = call.caller.clone().filter(|_| !classified) else {
            return;
        };
        let waited = now.mono.saturating_since(call.received_at);
        let at = UtcTime(
            now.utc
                .0
                .saturating_sub(i64::try_from(waited.as_millis()).unwrap_or(i64::MAX)),
        );
        self.calls.acd.worklist.add(CallbackItem {
            record: call.record,
            caller,
            at,
            waited,
            reason: DROPPED_UNCLASSIFIED.to_owned(),
            attempts: 0,
            taken_by: None,
        });
    }
}
