//! SIP transactions (RFC 3261 §17 as updated by RFC 6026): the four state machines and the
//! types they share.
//!
//! The machines are message-agnostic and sans-IO. They never parse SIP: the layer above
//! parses, matches a message to its transaction, builds ACKs for 300–699 responses and
//! picks destinations; a machine sees whole encoded messages as [`Bytes`] (what to send
//! and resend) and status codes as `u16`. Time comes in as
//! [`MonoTime`](crate::engine::time::MonoTime) arguments.
//!
//! | machine | RFC | states |
//! |---|---|---|
//! | [`ClientInviteTransaction`] | 3261 §17.1.1, 6026 §7.2 | Calling, Proceeding, Completed, Accepted |
//! | [`ClientNonInviteTransaction`] | 3261 §17.1.2 | Trying, Proceeding, Completed |
//! | [`ServerInviteTransaction`] | 3261 §17.2.1, 6026 §7.1 | Proceeding, Completed, Confirmed, Accepted |
//! | [`ServerNonInviteTransaction`] | 3261 §17.2.2 | Trying, Proceeding, Completed |
//!
//! Every machine has the same surface and call order:
//! 1. `new(now, …)` creates it (a client machine queues its request at once);
//! 2. `handle_*(now, …)` feeds it a received message, a TU response, a transport error, or
//!    (`handle_timeout`) the passing of time; received messages return a [`Verdict`];
//! 3. after each call drain `poll_transmit()` until `None`, then read `poll_timeout()` for
//!    the next deadline (and its [`TimerName`]) and `state()` / `termination()`;
//! 4. once terminated and drained, drop it: a terminated machine absorbs everything.
//!
//! Zero timers (D, I, J, K over TCP) are not armed: the state they guard ends inside the
//! call that enters it, so `state()` reads `Terminated` right after, and anything that call
//! queued (the ACK of a 404 over TCP, say) is still waiting in `poll_transmit()`.
//!
//! Pending output is bounded by construction: a retransmission queued while an identical
//! message still waits at the back of the queue is dropped, so network input cannot grow
//! it; only TU calls add distinct entries, one each.

mod client_invite;
mod client_non_invite;
mod client_table;
mod drive;
mod key;
mod server_invite;
mod server_non_invite;
mod server_table;
mod timer;

pub use client_invite::{ClientInviteState, ClientInviteTransaction};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTransaction};
pub use client_table::{ClientTransactions, ClientTxId, Destination, TransportErrorOutcome};
pub use key::{ClientKey, ServerKey};
pub use server_invite::{ServerInviteState, ServerInviteTransaction};
pub use server_non_invite::{ServerNonInviteState, ServerNonInviteTransaction};
pub use server_table::{Ended, MergeKey, ResponseTarget, ServerTransactions, TxId};
pub use timer::{TimerConfig, TimerName};

use bytes::Bytes;
use std::collections::VecDeque;

/// What the layer above does with a received message after its transaction saw it.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the message up to the TU (first responses, 2xx in Accepted, ACK of a 2xx).
    PassToTu,
    /// The transaction consumed it (a retransmission, or a message its state ignores).
    Absorb,
}

/// Why a transaction reached its Terminated state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Termination {
    /// It ran its course: Timer D, I, J, K, L or M fired (or was zero over TCP).
    Normal,
    /// The peer never answered: Timer B (INVITE client: no final response), F
    /// (non-INVITE client: no final response) or H (INVITE server: the ACK of a 300–699
    /// never came). Always a failure the TU must hear about.
    TimedOut(TimerName),
    /// The transport reported that a message of this transaction could not be sent
    /// (RFC 3261 §17.1.4, §17.2.4). The TU must hear about it.
    TransportError,
}

/// Misuse of a transaction by the layer above. The transaction is left unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A status code outside 100–699 (RFC 3261 §21).
    #[error("status code {status} is outside 100-699")]
    InvalidStatus {
        /// The status code given.
        status: u16,
    },
    /// A 300–699 response to INVITE was passed without its ACK: use
    /// `ClientInviteTransaction::handle_failure_response`.
    #[error("a {status} response to INVITE needs its ACK (handle_failure_response)")]
    AckRequired {
        /// The status code given.
        status: u16,
    },
    /// `ClientInviteTransaction::handle_failure_response` was given a 1xx or 2xx: use
    /// `handle_response`.
    #[error("{status} is not a 300-699 response (handle_response)")]
    NotAFailure {
        /// The status code given.
        status: u16,
    },
    /// The TU sent a response its server transaction can no longer send: anything after a
    /// 300–699 final, a non-2xx after a 2xx to INVITE, anything after a non-INVITE final, or
    /// anything once terminated.
    #[error("response {status} is not allowed after the final response")]
    ResponseNotAllowed {
        /// The status code given.
        status: u16,
    },
}

/// The class of a status code (RFC 3261 §7.2, §21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusClass {
    /// 100–199.
    Provisional,
    /// 200–299.
    Success,
    /// 300–699.
    Failure,
}

impl StatusClass {
    fn of(status: u16) -> Result<Self, TransactionError> {
        match status {
            100..=199 => Ok(StatusClass::Provisional),
            200..=299 => Ok(StatusClass::Success),
            300..=699 => Ok(StatusClass::Failure),
            _ => Err(TransactionError::InvalidStatus { status }),
        }
    }
}

/// Messages a transaction queued for the transport, oldest first (see the module docs for
/// its bound).
#[derive(Clone, Debug, Default)]
struct Outbox(VecDeque<Bytes>);

impl Outbox {
    /// Queues `message` unless an identical one already waits at the back.
    fn push(&mut self, message: Bytes) {
        if self.0.back() != Some(&message) {
            self.0.push_back(message);
        }
    }

    fn pop(&mut self) -> Option<Bytes> {
        self.0.pop_front()
    }
}

/// Driving machines in virtual time, for the table tests of each machine.
#[cfg(test)]
mod testkit {
    use super::*;
    use crate::engine::time::MonoTime;

    /// The output surface the four machines share.
    pub(super) trait Machine {
        fn poll_timeout(&self) -> Option<(MonoTime, TimerName)>;
        fn handle_timeout(&mut self, now: MonoTime);
        fn poll_transmit(&mut self) -> Option<Bytes>;
    }

    macro_rules! impl_machine {
        ($($t:ty),*) => {$(
            impl Machine for $t {
                fn poll_timeout(&self) -> Option<(MonoTime, TimerName)> {
                    <$t>::poll_timeout(self)
                }
                fn handle_timeout(&mut self, now: MonoTime) {
                    <$t>::handle_timeout(self, now)
                }
                fn poll_transmit(&mut self) -> Option<Bytes> {
                    <$t>::poll_transmit(self)
                }
            }
        )*};
    }
    impl_machine!(
        ClientInviteTransaction,
        ClientNonInviteTransaction,
        ServerInviteTransaction,
        ServerNonInviteTransaction
    );

    /// Something a machine did, at a time in ms.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub(super) enum Event {
        /// It queued these bytes (as text) for the transport.
        Sent(String),
        /// This timer was the one due at this time.
        Fired(TimerName),
    }

    pub(super) type Trace = Vec<(u64, Event)>;

    pub(super) fn at(ms: u64) -> MonoTime {
        MonoTime::from_millis(ms)
    }

    pub(super) fn millis(t: MonoTime) -> u64 {
        u64::try_from(t.since_origin().as_millis()).unwrap()
    }

    /// Drains what the machine queued, as sent at `ms`.
    pub(super) fn drain(m: &mut impl Machine, ms: u64) -> Trace {
        std::iter::from_fn(|| m.poll_transmit())
            .map(|b| (ms, Event::Sent(String::from_utf8_lossy(&b).into_owned())))
            .collect()
    }

    /// Advances virtual time to `until_ms`, calling `handle_timeout` at each deadline the
    /// machine reports and recording that timer and what was sent. When several timers are
    /// due at one instant only the one `poll_timeout` names is recorded.
    pub(super) fn run_until(m: &mut impl Machine, until_ms: u64) -> Trace {
        let mut trace = Trace::new();
        while let Some((deadline, timer)) = m.poll_timeout() {
            let ms = millis(deadline);
            if ms > until_ms {
                break;
            }
            trace.push((ms, Event::Fired(timer)));
            m.handle_timeout(deadline);
            trace.extend(drain(m, ms));
        }
        trace
    }

    /// The times at which `message` was sent.
    pub(super) fn sends_of(trace: &Trace, message: &str) -> Vec<u64> {
        trace
            .iter()
            .filter(|(_, e)| *e == Event::Sent(message.to_owned()))
            .map(|&(ms, _)| ms)
            .collect()
    }

    /// The timers that fired and when, in order.
    pub(super) fn fired(trace: &Trace) -> Vec<(u64, TimerName)> {
        trace
            .iter()
            .filter_map(|(ms, e)| match e {
                Event::Fired(t) => Some((*ms, *t)),
                Event::Sent(_) => None,
            })
            .collect()
    }

    /// Custom base timers used by the "same schedule, other T1/T2/T4" rows.
    pub(super) fn short_timers() -> TimerConfig {
        TimerConfig {
            t1: std::time::Duration::from_millis(200),
            t2: std::time::Duration::from_millis(1_000),
            t4: std::time::Duration::from_millis(2_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let table: &[(u16, Result<StatusClass, TransactionError>)] = &[
            (99, Err(TransactionError::InvalidStatus { status: 99 })),
            (100, Ok(StatusClass::Provisional)),
            (199, Ok(StatusClass::Provisional)),
            (200, Ok(StatusClass::Success)),
            (299, Ok(StatusClass::Success)),
            (300, Ok(StatusClass::Failure)),
            (699, Ok(StatusClass::Failure)),
            (700, Err(TransactionError::InvalidStatus { status: 700 })),
        ];
        for &(status, want) in table {
            assert_eq!(StatusClass::of(status), want, "{status}");
        }
    }

    #[test]
    fn outbox_coalesces_a_pending_duplicate_only() {
        let mut o = Outbox::default();
        o.push(Bytes::from_static(b"180"));
        o.push(Bytes::from_static(b"180"));
        o.push(Bytes::from_static(b"200"));
        o.push(Bytes::from_static(b"180"));
        let got: Vec<_> = std::iter::from_fn(|| o.pop()).collect();
        assert_eq!(got, ["180", "200", "180"]);
    }
}
