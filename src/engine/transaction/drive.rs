//! What the two transaction tables share: the surface every machine offers them
//! ([`Machine`]), draining a machine's messages toward one destination, and the ordered set
//! of deadlines that makes the next timer O(1) to find and each firing O(log n).

use super::{
    ClientInviteTransaction, ClientNonInviteTransaction, ServerInviteTransaction,
    ServerNonInviteTransaction, Termination, TimerName,
};
use crate::engine::time::MonoTime;
use crate::engine::{ConnectionId, Transmit, Transport};
use bytes::Bytes;
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;

/// The output side of a transaction machine (see the [module docs](super) for the order).
pub(crate) trait Machine {
    /// The next message to send.
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// Why it ended, once it has.
    fn termination(&self) -> Option<Termination>;
    /// Its next deadline.
    fn poll_timeout(&self) -> Option<(MonoTime, TimerName)>;
    /// Fires its timers due at or before `now`.
    fn handle_timeout(&mut self, now: MonoTime);
}

macro_rules! machine {
    ($($t:ty),*) => {$(
        impl Machine for $t {
            fn poll_transmit(&mut self) -> Option<Bytes> {
                <$t>::poll_transmit(self)
            }
            fn termination(&self) -> Option<Termination> {
                <$t>::termination(self)
            }
            fn poll_timeout(&self) -> Option<(MonoTime, TimerName)> {
                <$t>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: MonoTime) {
                <$t>::handle_timeout(self, now)
            }
        }
    )*};
}

machine!(
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction
);

/// Moves everything `machine` has to send into `outbox`, addressed to `destination` over
/// `transport` (on `connection` when set); returns its termination and next deadline.
pub(crate) fn drain(
    machine: &mut dyn Machine,
    transport: Transport,
    destination: SocketAddr,
    connection: Option<ConnectionId>,
    outbox: &mut VecDeque<Transmit>,
) -> (Option<Termination>, Option<MonoTime>) {
    while let Some(bytes) = machine.poll_transmit() {
        outbox.push_back(Transmit {
            transport,
            destination,
            connection,
            bytes,
        });
    }
    (
        machine.termination(),
        machine.poll_timeout().map(|(at, _)| at),
    )
}

/// One deadline per transaction, ordered: `(deadline, id)`.
#[derive(Debug)]
pub(crate) struct Deadlines<Id: Ord + Copy> {
    set: BTreeSet<(MonoTime, Id)>,
}

impl<Id: Ord + Copy> Default for Deadlines<Id> {
    fn default() -> Self {
        Deadlines {
            set: BTreeSet::new(),
        }
    }
}

impl<Id: Ord + Copy> Deadlines<Id> {
    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<MonoTime> {
        self.set.first().map(|&(at, _)| at)
    }

    /// Moves `id` from `scheduled` (its current deadline, updated) to `next`.
    pub(crate) fn reschedule(
        &mut self,
        id: Id,
        scheduled: &mut Option<MonoTime>,
        next: Option<MonoTime>,
    ) {
        if let Some(old) = scheduled.take() {
            self.set.remove(&(old, id));
        }
        if let Some(at) = next {
            self.set.insert((at, id));
            *scheduled = Some(at);
        }
    }

    /// The id of the next deadline at or before `now`, removed from the set (the caller
    /// clears that entry's `scheduled`).
    pub(crate) fn pop_due(&mut self, now: MonoTime) -> Option<Id> {
        let &(at, id) = self.set.first()?;
        if at > now {
            return None;
        }
        self.set.remove(&(at, id));
        Some(id)
    }
}
