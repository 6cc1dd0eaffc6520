//! The table of live server transactions: finds a transaction by its [`ServerKey`],
//! drives its machine, collects what it sends and when it must next be woken, and drops
//! it once terminated (RFC 3261 §17.2.3 matching, §17.2 machines).
//!
//! Timers are kept in one ordered set of `(deadline, id)`, so the engine's next deadline
//! is the first element and firing due timers costs O(log n) each.

use super::drive::{self, Deadlines};
use super::key::ServerKey;
use super::{
    ServerInviteState, ServerInviteTransaction, ServerNonInviteTransaction, Termination,
    TimerConfig, TransactionError, Verdict,
};
use crate::engine::time::MonoTime;
use crate::engine::{ConnectionId, Transmit, Transport};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Where a server transaction's responses go (RFC 3261 §18.2.2, RFC 3581).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseTarget {
    /// The transport the request arrived on.
    pub transport: Transport,
    /// UDP: the source address, at the source port when `rport` was sent, else at the
    /// Via's port. TCP: the peer of `connection`.
    pub destination: SocketAddr,
    /// The TCP connection the request arrived on.
    pub connection: Option<ConnectionId>,
    /// Where to open a new connection when `connection` is gone (RFC 3261 §18.2.2: the
    /// source IP at the Via's sent-by port). For UDP, `destination`.
    pub reconnect: SocketAddr,
}

/// Identifies the requests RFC 3261 §8.2.2.2 calls merged: same From tag, Call-ID and
/// CSeq, arriving over different paths (different branches).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MergeKey {
    /// The From tag.
    pub from_tag: String,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The CSeq method.
    pub method: crate::engine::sip::Method,
}

/// Identifies a transaction in the table; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

impl TxId {
    /// An id the table never issues (it counts up from 0): the stand-in for the server
    /// transaction of an inbound side siaga placed itself as UAC (a callback from the
    /// API, `call::callback_ring`), so that no lookup by it finds anything.
    pub const NEVER: TxId = TxId(u64::MAX);
}

#[derive(Debug)]
enum Machine {
    Invite(ServerInviteTransaction),
    NonInvite(ServerNonInviteTransaction),
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
    key: ServerKey,
    merge: Option<MergeKey>,
    machine: Machine,
    target: ResponseTarget,
    scheduled: Option<MonoTime>,
    /// The To tag siaga gave this transaction's responses.
    local_tag: String,
    /// Bytes of responses this transaction holds for retransmission.
    held: usize,
}

/// A server transaction that ended, for the TU to hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// Its key.
    pub key: ServerKey,
    /// Why it ended; `TimedOut(H)` means the ACK of a final response never came.
    pub why: Termination,
}

/// Every live server transaction. Call order: `create_*` / `handle_*` / `send_response` /
/// `handle_timeout`, then drain [`ServerTransactions::poll_transmit`] and
/// [`ServerTransactions::poll_ended`]; [`ServerTransactions::next_deadline`] is when to
/// call `handle_timeout` next.
#[derive(Debug, Default)]
pub struct ServerTransactions {
    entries: HashMap<TxId, Entry>,
    index: HashMap<ServerKey, TxId>,
    merged: HashMap<MergeKey, TxId>,
    /// Bytes of responses held for retransmission (see [`ServerTransactions::held_bytes`]).
    held_bytes: usize,
    timers: Deadlines<TxId>,
    outbox: VecDeque<Transmit>,
    ended: VecDeque<Ended>,
    next_id: u64,
}

impl ServerTransactions {
    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The transaction with this key, if live.
    pub fn find(&self, key: &ServerKey) -> Option<TxId> {
        self.index.get(key).copied()
    }

    /// A live transaction created by a request merged with one carrying `merge` (RFC 3261
    /// §8.2.2.2), if any.
    pub fn find_merged(&self, merge: &MergeKey) -> Option<TxId> {
        self.merged.get(merge).copied()
    }

    /// Bytes of responses live transactions hold for retransmission (each keeps its
    /// latest). The engine answers statelessly above a limit, so a flood cannot grow this
    /// without bound — except for the INVITEs it accepts: those are emergency calls.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The To tag siaga gave the responses of `id` (RFC 3261 §9.2: the 200 to a CANCEL
    /// reuses the INVITE's).
    pub fn local_tag(&self, id: TxId) -> Option<&str> {
        self.entries.get(&id).map(|e| e.local_tag.as_str())
    }

    /// Sends later responses of `id` along `target`: a retransmitted request arrived on
    /// another connection (RFC 3261 §18.2.2: respond on the connection the request came on).
    pub fn retarget(&mut self, id: TxId, target: ResponseTarget) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.target = target;
        }
    }

    /// TCP connection `connection` closed: transactions that answered on it will open a
    /// new connection to their [`ResponseTarget::reconnect`] address (§18.2.2).
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        for entry in self.entries.values_mut() {
            if entry.target.connection == Some(connection) {
                entry.target.connection = None;
                entry.target.destination = entry.target.reconnect;
            }
        }
    }

    /// Whether `id` is an INVITE transaction that has sent no final response yet (a CANCEL
    /// can still end it, RFC 3261 §9.2).
    pub fn is_pending_invite(&self, id: TxId) -> bool {
        matches!(
            self.entries.get(&id).map(|e| &e.machine),
            Some(Machine::Invite(m)) if m.state() == ServerInviteState::Proceeding
        )
    }

    /// A new transaction for a request received at `now`. An INVITE (or an ACK's key)
    /// gets an INVITE machine, anything else a non-INVITE one.
    /// `merge` is the request's [`MergeKey`] when its To has no tag (§8.2.2.2 applies only
    /// then); `local_tag` the To tag siaga gives its responses.
    pub fn create(
        &mut self,
        now: MonoTime,
        key: ServerKey,
        merge: Option<MergeKey>,
        target: ResponseTarget,
        local_tag: String,
        config: &TimerConfig,
    ) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        let is_invite = matches!(
            &key,
            ServerKey::Rfc3261 {
                method: crate::engine::sip::Method::Invite,
                ..
            } | ServerKey::Rfc2543 {
                method: crate::engine::sip::Method::Invite,
                ..
            }
        );
        let machine = if is_invite {
            Machine::Invite(ServerInviteTransaction::new(now, target.transport, config))
        } else {
            Machine::NonInvite(ServerNonInviteTransaction::new(
                now,
                target.transport,
                config,
            ))
        };
        self.index.insert(key.clone(), id);
        if let Some(m) = &merge {
            // The first request of a merged set keeps the entry: a later copy (answered
            // 482) must not replace it, or a third copy would pass as new (§8.2.2.2).
            self.merged.entry(m.clone()).or_insert(id);
        }
        self.entries.insert(
            id,
            Entry {
                key,
                merge,
                machine,
                target,
                scheduled: None,
                local_tag,
                held: 0,
            },
        );
        id
    }

    /// A retransmission of the request that created `id` arrived: the machine resends its
    /// last response where the RFC says (and absorbs it).
    pub fn handle_request(&mut self, now: MonoTime, id: TxId) -> Verdict {
        let verdict = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Invite(m)) => m.handle_request(now),
            Some(Machine::NonInvite(m)) => m.handle_request(now),
            None => Verdict::Absorb,
        };
        self.settle(id);
        verdict
    }

    /// A response of `id` could not be sent on a connection that is gone: its latest
    /// response goes out again to its target, which [`ServerTransactions::connection_closed`]
    /// has moved to a new connection (RFC 3261 §18.2.2). The machine does what it does for
    /// a retransmitted request, so a 2xx to INVITE (resent by the TU, RFC 6026 §7.1) is not
    /// sent from here.
    pub fn resend(&mut self, now: MonoTime, id: TxId) {
        let _absorbed = self.handle_request(now, id);
    }

    /// Sending a response of `id` failed with no other way to reach the client (RFC 3261
    /// §17.2.4): the machine takes the transport error. A non-INVITE transaction ends
    /// (Figure 8); an INVITE one keeps its state, as RFC 6026 §7.1 asks.
    pub fn handle_transport_error(&mut self, now: MonoTime, id: TxId) {
        match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Invite(m)) => m.handle_transport_error(now),
            Some(Machine::NonInvite(m)) => m.handle_transport_error(now),
            None => return,
        }
        self.settle(id);
    }

    /// An ACK matched INVITE transaction `id`: absorbed after a 300–699 (§17.2.1), passed
    /// to the TU after a 2xx (RFC 6026 §7.1).
    pub fn handle_ack(&mut self, now: MonoTime, id: TxId) -> Verdict {
        let verdict = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::Invite(m)) => m.handle_ack(now),
            _ => Verdict::Absorb,
        };
        self.settle(id);
        verdict
    }

    /// The TU sends a response on `id`.
    ///
    /// Errors: the machine refuses it in its state (e.g. a 1xx after the final).
    pub fn send_response(
        &mut self,
        now: MonoTime,
        id: TxId,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), TransactionError> {
        let size = bytes.len();
        let result = match self.entries.get_mut(&id) {
            Some(entry) => {
                let result = match &mut entry.machine {
                    Machine::Invite(m) => m.send_response(now, status, bytes),
                    Machine::NonInvite(m) => m.send_response(now, status, bytes),
                };
                if result.is_ok() {
                    // The machine keeps only its last response.
                    self.held_bytes = self.held_bytes.saturating_sub(entry.held) + size;
                    entry.held = size;
                }
                result
            }
            None => Ok(()),
        };
        self.settle(id);
        result
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

    /// The next transaction that ended.
    pub fn poll_ended(&mut self) -> Option<Ended> {
        self.ended.pop_front()
    }

    /// The earliest timer of any transaction.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.timers.first()
    }

    /// Collects what `id` sends, reschedules its timer, and removes it once terminated.
    fn settle(&mut self, id: TxId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let target = entry.target;
        let (termination, deadline) = drive::drain(
            entry.machine.drive(),
            target.transport,
            target.destination,
            target.connection,
            &mut self.outbox,
        );
        let next = deadline.filter(|_| termination.is_none());
        self.timers.reschedule(id, &mut entry.scheduled, next);
        if let Some(why) = termination
            && let Some(entry) = self.entries.remove(&id)
        {
            self.index.remove(&entry.key);
            if let Some(m) = &entry.merge
                && self.merged.get(m) == Some(&id)
            {
                self.merged.remove(m);
            }
            self.held_bytes = self.held_bytes.saturating_sub(entry.held);
            self.ended.push_back(Ended {
                key: entry.key,
                why,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sip::Method;

    fn key(branch: &str, method: Method) -> ServerKey {
        ServerKey::Rfc3261 {
            branch: branch.to_owned(),
            sent_by: ("trunk.test".to_owned(), 5060),
            method,
            call_id: "c".to_owned(),
            cseq: 1,
        }
    }

    fn tcp_target(connection: u64) -> ResponseTarget {
        ResponseTarget {
            transport: Transport::Tcp,
            destination: "127.0.0.1:40000".parse().expect("literal"),
            connection: Some(ConnectionId(connection)),
            reconnect: "127.0.0.1:5060".parse().expect("literal"),
        }
    }

    /// RFC 3261 §18.2.2: when the connection a request came on is gone, a later response
    /// opens a new connection to the source IP at the Via's sent-by port.
    #[test]
    fn responses_after_the_connection_closed_go_to_the_reconnect_address() {
        let mut table = ServerTransactions::default();
        let config = TimerConfig::default();
        let id = table.create(
            MonoTime::ZERO,
            key("z9hG4bK1", Method::Invite),
            None,
            tcp_target(5),
            "t".into(),
            &config,
        );
        table.connection_closed(ConnectionId(4));
        assert_eq!(
            table.send_response(MonoTime::ZERO, id, 180, Bytes::from_static(b"180")),
            Ok(())
        );
        assert_eq!(
            table.poll_transmit().and_then(|t| t.connection),
            Some(ConnectionId(5))
        );
        table.connection_closed(ConnectionId(5));
        assert_eq!(
            table.send_response(MonoTime::ZERO, id, 486, Bytes::from_static(b"486")),
            Ok(())
        );
        let t = table.poll_transmit().expect("the final response");
        assert_eq!(
            (t.connection, t.destination),
            (None, "127.0.0.1:5060".parse().expect("literal"))
        );
    }

    #[test]
    fn held_bytes_follow_live_transactions() {
        let mut table = ServerTransactions::default();
        let config = TimerConfig::default();
        let merge = MergeKey {
            from_tag: "f".to_owned(),
            call_id: "c".to_owned(),
            cseq: 1,
            method: Method::Options,
        };
        let id = table.create(
            MonoTime::ZERO,
            key("z9hG4bK2", Method::Options),
            Some(merge.clone()),
            tcp_target(1),
            "t".into(),
            &config,
        );
        assert_eq!(table.find_merged(&merge), Some(id));
        assert_eq!(
            table.send_response(MonoTime::ZERO, id, 200, Bytes::from_static(b"0123456789")),
            Ok(())
        );
        // Over TCP Timer J is zero: the transaction ended at once and holds nothing.
        assert_eq!(
            (table.len(), table.held_bytes(), table.find_merged(&merge)),
            (0, 0, None)
        );
        let udp = ResponseTarget {
            transport: Transport::Udp,
            connection: None,
            ..tcp_target(1)
        };
        let id = table.create(
            MonoTime::ZERO,
            key("z9hG4bK3", Method::Options),
            None,
            udp,
            "t".into(),
            &config,
        );
        assert_eq!(
            table.send_response(MonoTime::ZERO, id, 200, Bytes::from_static(b"0123456789")),
            Ok(())
        );
        assert_eq!(table.held_bytes(), 10);
        table.handle_timeout(MonoTime::from_millis(32_000));
        assert_eq!((table.len(), table.held_bytes()), (0, 0));
    }
}
