//! The call record's grammar and each event's cause (see the parent module).

use super::{CallViews, delivered, is, leg_of, phone_of};
use crate::engine::record::{CallEventKind, Disposition, Party};
use crate::engine::sim::trunk::TrunkCall;
use crate::engine::sim::world::{Cause, SIAGA, TRUNK, World};
use crate::engine::sip::Method;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Each call's events follow the record's grammar and have the causes the RFCs give them.
pub(super) fn records(w: &World, calls: &CallViews, v: &mut Vec<String>) {
    let t64 = w.scenario.timers.t64();
    let trunk_calls: BTreeMap<&str, &TrunkCall> = w
        .trunk
        .calls
        .iter()
        .map(|c| (c.call_id.as_str(), c))
        .collect();
    for call in &calls.0 {
        let name = format!(
            "call {} ({})",
            crate::engine::sim::world::short(&call.id),
            call.trunk_call_id
        );
        let mut fail = |what: String| v.push(format!("{name}: {what}"));
        let kinds: Vec<&CallEventKind> = call.recs.iter().map(|r| &r.event.kind).collect();
        if !matches!(
            kinds.as_slice(),
            [
                CallEventKind::Received { .. },
                CallEventKind::Queued { .. },
                ..
            ]
        ) {
            fail(format!("does not start with Received, Queued: {kinds:?}"));
            continue;
        }
        let Some(trunk) = trunk_calls.get(call.trunk_call_id.as_str()) else {
            fail("not a call the trunk placed".to_owned());
            continue;
        };
        let received = call.recs[0];
        if !delivered(w, received.cause)
            .is_some_and(|d| d.from == TRUNK && is(&d.msg, Method::Invite))
        {
            fail(format!(
                "Received not caused by the trunk's INVITE but {:?}",
                received.cause
            ));
        }
        // Walk the grammar: offers open and close one at a time, one answer, one end.
        let mut offer: Option<(&str, u64)> = None;
        let mut answer: Option<(&str, SocketAddr, String, u64)> = None;
        let mut ended = false;
        let mut dropped = false;
        for r in &call.recs[2..] {
            let at = r.at;
            let from_op =
                |op: &str| delivered(w, r.cause).filter(|d| phone_of(w, d.from, op).is_some());
            if ended && !matches!(r.event.kind, CallEventKind::MediaRelayed { .. }) {
                fail(format!("{:?} after Ended", r.event.kind));
            }
            match &r.event.kind {
                CallEventKind::Offered { operator } => {
                    if offer.is_some() || answer.is_some() {
                        fail(format!(
                            "offered to {operator} while {offer:?} / {answer:?}"
                        ));
                    }
                    offer = Some((operator, at));
                }
                CallEventKind::NoAnswer { operator } => match offer.take() {
                    Some((op, since)) if op == operator => {
                        if r.cause != Cause::Timer || at != since + w.scenario.ring_timeout_ms {
                            fail(format!(
                                "no answer from {op} at {at}, offered at {since}: not the ring timeout"
                            ));
                        }
                    }
                    other => fail(format!("NoAnswer from {operator}, open offer {other:?}")),
                },
                CallEventKind::Rejected { operator, status } => {
                    if offer.take().map(|o| o.0) != Some(operator.as_str()) {
                        fail(format!("Rejected by {operator} without an open offer"));
                    }
                    let cause = from_op(operator);
                    let ok = cause.is_some_and(|d| {
                        d.msg.status() == Some(*status)
                            && leg_of(w, d.from, operator, d.call_id.as_str(), &trunk.caller)
                                .is_some()
                    });
                    if !ok {
                        fail(format!(
                            "Rejected {status} by {operator} not caused by that response of its phone"
                        ));
                    }
                }
                CallEventKind::LegFailed { operator, reason } => {
                    let Some((op, since)) = offer.take().filter(|o| o.0 == operator) else {
                        fail(format!("LegFailed at {operator} without an open offer"));
                        continue;
                    };
                    let ok = match reason.as_str() {
                        // Timer B of one of the offer's INVITEs (§17.1.1.2).
                        "no response" => r.cause == Cause::Timer && at == since + t64,
                        // The binding of a phone whose registration lapses expired
                        // (the registrar's timer) while it rang: the offer is withdrawn.
                        "registration expired" => {
                            r.cause == Cause::Timer
                                && w.scenario
                                    .lapses
                                    .keys()
                                    .any(|k| w.phones.get(*k).is_some_and(|p| p.operator == op))
                        }
                        _ => from_op(op).is_some_and(|d| {
                            reason.starts_with(&d.msg.status().unwrap_or(0).to_string())
                        }),
                    };
                    if !ok {
                        fail(format!(
                            "LegFailed ({reason}) at {at} for an offer at {since}: wrong cause {:?}",
                            r.cause
                        ));
                    }
                }
                CallEventKind::Answered { operator } => {
                    if offer.take().map(|o| o.0) != Some(operator.as_str()) || answer.is_some() {
                        fail(format!("Answered by {operator} without an open offer"));
                    }
                    match from_op(operator) {
                        Some(d)
                            if d.msg.status() == Some(200)
                                && leg_of(
                                    w,
                                    d.from,
                                    operator,
                                    d.call_id.as_str(),
                                    &trunk.caller,
                                )
                                .is_some() =>
                        {
                            answer = Some((operator, d.from, d.call_id.as_str().to_owned(), at));
                        }
                        _ => fail(format!(
                            "Answered by {operator} not caused by a 200 of its phone for this call"
                        )),
                    }
                }
                // The caller's BYE on the answered call (`call::dropped`), just before
                // its `Ended`.
                CallEventKind::Dropped { reason } => {
                    dropped = true;
                    let by_bye = delivered(w, r.cause).is_some_and(|d| {
                        d.from == TRUNK
                            && is(&d.msg, Method::Bye)
                            && d.call_id.as_str() == call.trunk_call_id
                    });
                    if answer.is_none() || !by_bye || reason != "the caller hung up" {
                        fail(format!(
                            "Dropped ({reason}) at {at} not caused by the caller's BYE on an answered call"
                        ));
                    }
                }
                CallEventKind::Ended { by, disposition } => {
                    ended = true;
                    let d = delivered(w, r.cause);
                    let from_trunk = |m: Method| {
                        d.is_some_and(|d| {
                            d.from == TRUNK
                                && is(&d.msg, m)
                                && d.call_id.as_str() == call.trunk_call_id
                        })
                    };
                    let ok = match (by, disposition) {
                        (Party::Caller, Disposition::Answered) => {
                            answer.is_some() && dropped && from_trunk(Method::Bye)
                        }
                        (Party::Caller, Disposition::AbandonedInQueue) => {
                            answer.is_none()
                                && offer.is_none()
                                && (from_trunk(Method::Cancel) || from_trunk(Method::Bye))
                        }
                        (Party::Caller, Disposition::AbandonedWhileRinging) => {
                            answer.is_none()
                                && offer.is_some()
                                && (from_trunk(Method::Cancel) || from_trunk(Method::Bye))
                        }
                        (Party::Operator, Disposition::Answered) => {
                            answer.as_ref().is_some_and(|(_, phone, leg, _)| {
                                d.is_some_and(|d| {
                                    d.from == *phone
                                        && is(&d.msg, Method::Bye)
                                        && d.call_id.as_str() == leg
                                })
                            })
                        }
                        // §13.3.1.4: the 2xx went unacknowledged for 64·T1.
                        (Party::Siaga, Disposition::Failed) => {
                            answer.as_ref().is_some_and(|(_, _, _, since)| {
                                r.cause == Cause::Timer
                                    && at == since + t64
                                    && !w.wire.iter().any(|x| {
                                        x.from == TRUNK
                                            && x.to == SIAGA
                                            && is(&x.msg, Method::Ack)
                                            && x.call_id.as_str() == call.trunk_call_id
                                            && x.deliveries
                                                .iter()
                                                .any(|t| (*since..=at).contains(t))
                                    })
                            })
                        }
                        (Party::Siaga, Disposition::Interrupted) => r.cause == Cause::Shutdown,
                        _ => false,
                    };
                    if !ok {
                        fail(format!(
                            "Ended by {by} as {disposition} at {at}: not what happened (cause {:?}, offer {offer:?}, answer {answer:?})",
                            r.cause
                        ));
                    }
                }
                CallEventKind::MediaRelayed { .. } => {
                    if !ended {
                        fail("media reported before the call ended".to_owned());
                    }
                }
                // No peer here re-offers or asks for session timers (see the module docs
                // of `sim` on adding them).
                CallEventKind::Renegotiated { .. } | CallEventKind::SessionExpired => {
                    fail(format!(
                        "{:?}: not a behaviour of these peers",
                        r.event.kind
                    ));
                }
                // The simulated world has one queue without skills, overflow, transfers or
                // callbacks,
                // and its phones fail no answered leg.
                CallEventKind::Widened
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
                // Written by the next process after a crash, never by the engine.
                | CallEventKind::Interrupted { .. } => {
                    fail(format!(
                        "{:?}: not a behaviour of these peers",
                        r.event.kind
                    ));
                }
                CallEventKind::Received { .. } | CallEventKind::Queued { .. } => {
                    fail(format!("{:?} again", r.event.kind));
                }
            }
        }
        if !ended {
            fail("never ended".to_owned());
        }
        let reports = kinds
            .iter()
            .filter(|k| matches!(k, CallEventKind::MediaRelayed { .. }))
            .count();
        if reports > 1 {
            fail(format!("{reports} media reports"));
        }
    }
}
