//! The table of live client transactions (RFC 3261 §17.1): siaga's own requests (INVITEs
//! to operators, CANCEL, BYE). Finds a transaction by its [`ClientKey`] (§17.1.3: the
//! branch siaga generated and the CSeq method), drives its machine, collects what it sends
//! and when it must next be woken, and drops it once terminated.
//!
//! Call order as [`super::ServerTransactions`]: `send` / `handle_*` / `handle_timeout`,
//! then drain [`ClientTransactions::poll_transmit`] and [`ClientTransactions::poll_ended`];
//! [`ClientTransactions::next_deadline`] is when to call `handle_timeout` next.

use super::drive::{self, Deadlines};
use super::key::ClientKey;
use super::{
    ClientInviteTransaction, ClientNonInviteTransaction, Termination, TimerConfig,
    TransactionError, Verdict,
};
use crate::engine::sip::Method;
use crate::engine::time::MonoTime;
use crate::engine::{ConnectionId, Transmit, Transport};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Where a request goes: the next hop's address and transport, and the TCP connection to
/// reuse when there is one (a phone's registered flow, RFC 5626 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The transport.
    pub transport: Transport,
    /// The next hop's address.
    pub address: SocketAddr,
    /// Send on this TCP connection when it is still open.
    pub connection: Option<ConnectionId>,
}

/// Identifies a client transaction in the table; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(u64);

#[derive(Debug)]
enum Machine {
    Invite(ClientInviteTransaction),
    NonInvite(ClientNonInviteTransaction),
}

impl Machine {
    fn drive(&mut self) -> &mut dyn drive::Machine {
        match self {
            Machine::Invite(m) => m,
            Machine::NonInvite(m) => m,
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: ClientKey,
    machine: Machine,
    destination: Destination,
    scheduled: Option<MonoTime>,
    /// The request to send instead, and where, if sending this one fails before any
    /// response ([`ClientTransactions::set_fallback`]).
    fallback: Option<(Bytes, Destination)>,
}

/// What [`ClientTransactions::handle_transport_error`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportErrorOutcome {
    /// The transaction ended with [`Termination::TransportError`] (reported by
    /// [`ClientTransactions::poll_ended`]).
    Failed,
    /// The transaction started over with its fallback request, sent to `destination`
    /// (RFC 3261 §18.1.1: over UDP after TCP was refused); the TU's copies of the request
    /// and destination must follow.
    FellBack {
        /// The request now in flight.
        request: Bytes,
        /// Where it goes.
        destination: Destination,
    },
    /// Nothing changed: no such transaction, or its state sends nothing that could have
    /// failed (e.g. an INVITE that already had a provisional response, RFC 3261 Figure 5).
    Ignored,
}

/// Every live client transaction. See the [module docs](self) for the call order.
#[derive(Debug, Default)]
pub struct ClientTransactions {
    entries: HashMap<ClientTxId, Entry>,
    index: HashMap<ClientKey, ClientTxId>,
    timers: Deadlines<ClientTxId>,
    outbox: VecDeque<Transmit>,
    ended: VecDeque<(ClientTxId, Termination)>,
    next_id: u64,
}

impl ClientTransactions {
    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live transaction a response with this key belongs to.
    pub fn find(&self, key: &ClientKey) -> Option<ClientTxId> {
        self.index.get(key).copied()
    }

    /// Starts a transaction for `request` (the whole encoded message, whose top Via
    /// carries `key.branch`) and queues it for sending to `destination`. An INVITE gets an
    /// INVITE machine (§17.1.1), anything else but ACK a non-INVITE one (§17.1.2).
    pub fn send(
        &mut self,
        now: MonoTime,
        key: ClientKey,
        request: Bytes,
        destination: Destination,
        config: &TimerConfig,
    ) -> ClientTxId {
        let id = ClientTxId(self.next_id);
        self.next_id += 1;
        let transport = destination.transport;
        let machine = if key.method == Method::Invite {
            Machine::Invite(ClientInviteTransaction::new(
                now, request, transport, config,
            ))
        } else {
            Machine::NonInvite(ClientNonInviteTransaction::new(
                now, request, transport, config,
            ))
        };
        self.index.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                machine,
                destination,
                scheduled: None,
                fallback: None,
            },
        );
        self.settle(id);
        id
    }

    /// If sending the request of `id` fails before any response arrives, send `request`
    /// to `destination` instead, on a fresh machine with the same key (RFC 3261 §18.1.1:
    /// a request moved to TCP for its size is retried over UDP when TCP is refused).
    /// `request` must carry the same branch and CSeq method.
    pub fn set_fallback(&mut self, id: ClientTxId, request: Bytes, destination: Destination) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.fallback = Some((request, destination));
        }
    }

    /// Sending a message of `id` failed (RFC 3261 §17.1.4). With a fallback and no response
    /// yet, the transaction starts over with it; otherwise the machine takes the error
    /// (ending the transaction in Calling, Trying, Proceeding or Completed as its figure
    /// says), and the TU hears of it through [`ClientTransactions::poll_ended`].
    pub fn handle_transport_error(
        &mut self,
        now: MonoTime,
        id: ClientTxId,
        config: &TimerConfig,
    ) -> TransportErrorOutcome {
        let Some(entry) = self.entries.get_mut(&id) else {
            return TransportErrorOutcome::Ignored;
        };
        let unanswered = match &entry.machine {
            Machine::Invite(m) => m.state() == super::ClientInviteState::Calling,
            Machine::NonInvite(m) => m.state() == super::ClientNonInviteState::Trying,
        };
        if unanswered && let Some((request, destination)) = entry.fallback.take() {
            entry.machine = match entry.machine {
                Machine::Invite(_) => Machine::Invite(ClientInviteTransaction::new(
                    now,
                    request.clone(),
                    destination.transport,
                    config,
                )),
                Machine::NonInvite(_) => Machine::NonInvite(ClientNonInviteTransaction::new(
                    now,
                    request.clone(),
                    destination.transport,
                    config,
                )),
            };
            entry.destination = destination;
            self.settle(id);
            return TransportErrorOutcome::FellBack {
                request,
                destination,
            };
        }
        match &mut entry.machine {
            Machine::Invite(m) => m.handle_transport_error(now),
            Machine::NonInvite(m) => m.handle_transport_error(now),
        }
        let ended = entry.machine.drive().termination().is_some();
        self.settle(id);
        if ended {
            TransportErrorOutcome::Failed
        } else {
            TransportErrorOutcome::Ignored
        }
    }

    /// A 1xx or 2xx response (any response, for a non-INVITE) matched `id`.
    ///
    /// Errors: a 300–699 to an INVITE ([`TransactionError::AckRequired`]: use
    /// [`ClientTransactions::handle_failure_response`]), a status outside 100–699.
    pub fn handle_response(
        &mut self,
        now: MonoTime,
        id: ClientTxId,
        status: u16,
    ) -> Result<Verdict, TransactionError> {
        let verdict = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Invite(m)) => m.handle_response(now, status),
            Some(Machine::NonInvite(m)) => m.handle_response(now, status),
            None => Ok(Verdict::Absorb),
        };
        self.settle(id);
        verdict
    }

    /// A 300–699 response to INVITE transaction `id` arrived; `ack` is its ACK (§17.1.1.3),
    /// which the transaction sends (and resends for each retransmission).
    ///
    /// Errors: `id` is a non-INVITE transaction, or `status` is not 300–699.
    pub fn handle_failure_response(
        &mut self,
        now: MonoTime,
        id: ClientTxId,
        status: u16,
        ack: Bytes,
    ) -> Result<Verdict, TransactionError> {
        let verdict = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Invite(m)) => m.handle_failure_response(now, status, ack),
            Some(Machine::NonInvite(m)) => m.handle_response(now, status),
            None => Ok(Verdict::Absorb),
        };
        self.settle(id);
        verdict
    }

    /// Whether `id` is a live INVITE transaction (a response to it that is 300–699 needs an
    /// ACK built by the caller).
    pub fn is_invite(&self, id: ClientTxId) -> bool {
        matches!(
            self.entries.get(&id).map(|e| &e.machine),
            Some(Machine::Invite(_))
        )
    }

    /// Drops `id` without waiting for its timers: RFC 3261 §9.1, an INVITE that drew no
    /// final response within 64·T1 of its CANCEL is considered cancelled. Reported by
    /// [`ClientTransactions::poll_ended`] as `TimedOut(B)`.
    pub fn abandon(&mut self, id: ClientTxId) {
        if let Some(entry) = self.entries.remove(&id) {
            self.index.remove(&entry.key);
            let mut scheduled = entry.scheduled;
            self.timers.reschedule(id, &mut scheduled, None);
            self.ended
                .push_back((id, Termination::TimedOut(super::TimerName::B)));
        }
    }

    /// TCP connection `connection` closed: transactions that sent on it let the shell
    /// open a new one to the same address.
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        for entry in self.entries.values_mut() {
            if entry.destination.connection == Some(connection) {
                entry.destination.connection = None;
            }
        }
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        while let Some(id) = self.timers.pop_due(now) {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.scheduled = None;
                entry.machine.drive().handle_timeout(now);
            }
            self.settle(id);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next transaction that ended, and why (`TimedOut(B | F)` and `TransportError`
    /// are failures of the request the TU must act on).
    pub fn poll_ended(&mut self) -> Option<(ClientTxId, Termination)> {
        self.ended.pop_front()
    }

    /// The earliest timer of any transaction.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.timers.first()
    }

    /// Collects what `id` sends, reschedules its timer, and removes it once terminated.
    fn settle(&mut self, id: ClientTxId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let dest = entry.destination;
        let (termination, deadline) = drive::drain(
            entry.machine.drive(),
            dest.transport,
            dest.address,
            dest.connection,
            &mut self.outbox,
        );
        let next = deadline.filter(|_| termination.is_none());
        self.timers.reschedule(id, &mut entry.scheduled, next);
        if let Some(why) = termination
            && let Some(entry) = self.entries.remove(&id)
        {
            self.index.remove(&entry.key);
            self.ended.push_back((id, why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(method: Method) -> ClientKey {
        ClientKey {
            branch: "z9hG4bKc1".to_owned(),
            method,
        }
    }

    fn udp() -> Destination {
        Destination {
            transport: Transport::Udp,
            address: "127.0.0.1:5062".parse().expect("literal"),
            connection: None,
        }
    }

    #[test]
    fn invite_retransmits_then_times_out_with_timer_b() {
        let mut table = ClientTransactions::default();
        let config = TimerConfig::default();
        let id = table.send(
            MonoTime::ZERO,
            key(Method::Invite),
            Bytes::from_static(b"INVITE"),
            udp(),
            &config,
        );
        assert!(table.poll_transmit().is_some());
        assert_eq!(table.next_deadline(), Some(MonoTime::from_millis(500)));
        table.handle_timeout(MonoTime::from_millis(500));
        assert!(table.poll_transmit().is_some(), "Timer A resends");
        table.handle_timeout(MonoTime::from_millis(32_000));
        assert_eq!(
            table.poll_ended(),
            Some((id, Termination::TimedOut(super::super::TimerName::B)))
        );
        assert!(table.find(&key(Method::Invite)).is_none());
    }

    #[test]
    fn cancel_and_invite_with_one_branch_are_two_transactions() {
        let mut table = ClientTransactions::default();
        let config = TimerConfig::default();
        let invite = table.send(
            MonoTime::ZERO,
            key(Method::Invite),
            Bytes::from_static(b"INVITE"),
            udp(),
            &config,
        );
        assert_eq!(
            table.handle_response(MonoTime::ZERO, invite, 180),
            Ok(Verdict::PassToTu)
        );
        let cancel = table.send(
            MonoTime::ZERO,
            key(Method::Cancel),
            Bytes::from_static(b"CANCEL"),
            udp(),
            &config,
        );
        assert_ne!(invite, cancel);
        assert_eq!(table.find(&key(Method::Cancel)), Some(cancel));
        assert_eq!(
            table.handle_failure_response(MonoTime::ZERO, invite, 487, Bytes::from_static(b"ACK")),
            Ok(Verdict::PassToTu)
        );
        let sent: Vec<_> = std::iter::from_fn(|| table.poll_transmit())
            .map(|t| t.bytes)
            .collect();
        assert_eq!(sent.last().map(|b| &b[..]), Some(&b"ACK"[..]));
        table.abandon(cancel);
        assert_eq!(table.len(), 1, "the INVITE waits in Completed for Timer D");
    }
}
