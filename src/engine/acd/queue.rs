//! The calls the ACD knows, and the order waiting ones are served in: higher priority
//! first, then by place (arrival order; a call that comes back keeps its place, a call
//! whose operator leg failed mid-call goes to the head of its priority).
//!
//! An [`Entry`] lives from `enqueue` until the call model forgets the call, so that a call
//! offered, overflowing or answered can come back to the same place.

use super::CallHandle;
use crate::engine::time::MonoTime;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Index of a queue in `AcdSettings::queues`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub usize);

/// Where a call is in the ACD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for an operator.
    Waiting,
    /// Offered to one or more operators (ringing).
    Offered,
    /// Ringing the backup centre.
    Overflowing,
    /// Answered (by an operator or the backup centre).
    Connected,
}

/// A call as the ACD keeps it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The call record id (for agent events).
    pub record: Uuid,
    /// Its queue.
    pub queue: QueueId,
    /// Its priority (higher first).
    pub priority: u8,
    /// Its place within the priority: lower first.
    pub place: i64,
    /// Skills an operator needs, until `widen_at`.
    pub skills: Vec<String>,
    /// When the skills requirement lapses (`None`: never).
    pub widen_at: Option<MonoTime>,
    /// Whether the skills requirement lapsed (and the `widened` event was reported).
    pub widened: bool,
    /// Since when the call waits unserved (the overflow clock): its arrival, or, once an
    /// answered leg of it failed and it waits again (`wait_again` from `Connected`), that
    /// instant. Offers and failed overflows do not restart it.
    pub queued_at: MonoTime,
    /// Not diverted to the backup centre before this (after a failed overflow).
    pub overflow_not_before: Option<MonoTime>,
    /// Where it is.
    pub stage: Stage,
}

impl Entry {
    /// The skills an operator needs for the call now.
    pub fn required_skills(&self, now: MonoTime) -> &[String] {
        if self.widen_at.is_some_and(|at| at <= now) {
            &[]
        } else {
            &self.skills
        }
    }
}

/// The calls, and the waiting ones in service order.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    entries: HashMap<CallHandle, Entry>,
    waiting: BTreeMap<(Reverse<u8>, i64), CallHandle>,
    next_place: i64,
    next_head: i64,
}

impl Calls {
    /// The entry of `call`.
    pub fn get(&self, call: CallHandle) -> Option<&Entry> {
        self.entries.get(&call)
    }

    /// The entry of `call`, to change fields that do not affect the order.
    pub fn get_mut(&mut self, call: CallHandle) -> Option<&mut Entry> {
        self.entries.get_mut(&call)
    }

    /// Number of waiting calls.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Waiting calls in service order.
    pub fn waiting(&self) -> impl Iterator<Item = (CallHandle, &Entry)> + '_ {
        self.waiting
            .values()
            .filter_map(|call| self.entries.get(call).map(|e| (*call, e)))
    }

    /// Every call the ACD knows, in handle order is not promised.
    pub fn all(&self) -> impl Iterator<Item = (CallHandle, &Entry)> + '_ {
        self.entries.iter().map(|(c, e)| (*c, e))
    }

    /// A new call: waiting, at the back of its priority.
    pub fn insert(&mut self, call: CallHandle, mut entry: Entry) {
        self.forget(call);
        self.next_place += 1;
        entry.place = self.next_place;
        entry.stage = Stage::Waiting;
        self.waiting
            .insert((Reverse(entry.priority), entry.place), call);
        self.entries.insert(call, entry);
    }

    /// `call` waits again at its place (`head`: ahead of every call of its priority) from
    /// `now`. A call that was connected (the caller was being served) waits afresh: its
    /// overflow clock starts at `now`. Returns false for an unknown call.
    pub fn wait_again(&mut self, call: CallHandle, head: bool, now: MonoTime) -> bool {
        let Some(entry) = self.entries.get_mut(&call) else {
            return false;
        };
        self.waiting.remove(&(Reverse(entry.priority), entry.place));
        if entry.stage == Stage::Connected {
            entry.queued_at = now;
        }
        if head {
            self.next_head -= 1;
            entry.place = i64::MIN / 2 + self.next_head;
        }
        entry.stage = Stage::Waiting;
        self.waiting
            .insert((Reverse(entry.priority), entry.place), call);
        true
    }

    /// `call` leaves the waiting order for `stage` (offered, overflowing, connected).
    pub fn set_stage(&mut self, call: CallHandle, stage: Stage) {
        if let Some(entry) = self.entries.get_mut(&call) {
            self.waiting.remove(&(Reverse(entry.priority), entry.place));
            entry.stage = stage;
            if stage == Stage::Waiting {
                self.waiting
                    .insert((Reverse(entry.priority), entry.place), call);
            }
        }
    }

    /// Forgets `call` entirely.
    pub fn forget(&mut self, call: CallHandle) -> Option<Entry> {
        let entry = self.entries.remove(&call)?;
        self.waiting.remove(&(Reverse(entry.priority), entry.place));
        Some(entry)
    }
}
