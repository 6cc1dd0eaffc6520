//! Answered calls that drop before they are classified go on the callback worklist
//! (`call::dropped`, issue 6 point 4): the caller's BYE and the trunk's leg lost list the
//! call, the operator's BYE does not, and classifying the call (live, or after the drop)
//! keeps it off or closes its item.

use super::*;
use crate::engine::acd::DROPPED_UNCLASSIFIED;
use uuid::Uuid;

/// The caller's number in `trunk_invite` (its P-Asserted-Identity).
const CALLER: &str = "+628115550001";

/// Call `id` answered by 1001 (registered by the test) and ACKed by the trunk: its
/// record, siaga's 2xx to the trunk, and the operator's ACK.
fn answered(h: &mut Harness, id: &str, extra: &str) -> (Uuid, SipMessage, SipMessage) {
    let first = h.input(TRUNK, &trunk_invite_with(id, extra));
    let record = first.records[0];
    let offer = first
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, &format!("{id}ack")));
    (record, ok, ack)
}

fn dropped(reason: &str) -> CallEventKind {
    CallEventKind::Dropped {
        reason: reason.to_owned(),
    }
}

/// The worklist's (record, reason) pairs.
fn listed(h: &Harness) -> Vec<(Uuid, String)> {
    h.engine
        .callbacks()
        .iter()
        .map(|i| (i.record, i.reason.clone()))
        .collect()
}

#[test]
fn the_callers_bye_on_an_unclassified_call_lists_it_until_it_is_classified() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let (record, ok, _) = answered(&mut h, "d1", "");
    h.advance(30_000);
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "d1bye"));
    assert_eq!(
        out.events,
        [
            dropped("the caller hung up"),
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered
            }
        ]
    );
    assert!(out.records.iter().all(|r| *r == record));
    let item = h.engine.callbacks().first().cloned().expect("listed");
    assert_eq!(
        (item.record, item.caller.as_str(), item.reason.as_str()),
        (record, CALLER, DROPPED_UNCLASSIFIED)
    );
    assert_eq!(
        item.waited,
        Duration::from_millis(30_000),
        "the call's length"
    );
    assert_eq!((item.attempts, item.taken_by), (0, None));
    // Classified in wrap-up, after the drop: the item closes.
    h.engine.call_classified(Uuid::from_u128(7));
    assert_eq!(
        h.engine.callbacks().len(),
        1,
        "another record changes nothing"
    );
    h.engine.call_classified(record);
    assert!(h.engine.callbacks().is_empty());
}

#[test]
fn a_call_classified_while_live_drops_without_an_item() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let (record, ok, _) = answered(&mut h, "d2", "");
    h.engine.call_classified(record);
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "d2bye"));
    assert_eq!(
        out.events[0],
        dropped("the caller hung up"),
        "still recorded"
    );
    assert!(h.engine.callbacks().is_empty());
    // The mark left with the call: a later call is not classified by it.
    let (_, ok, _) = answered(&mut h, "d3", "");
    h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "d3bye"));
    assert_eq!(h.engine.callbacks().len(), 1);
}

#[test]
fn the_operator_hanging_up_lists_nothing() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let (_, _, ack) = answered(&mut h, "d4", "");
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(
        out.events,
        [CallEventKind::Ended {
            by: Party::Operator,
            disposition: Disposition::Answered
        }]
    );
    assert!(h.engine.callbacks().is_empty());
}

#[test]
fn an_expired_session_is_the_callers_leg_lost_and_lists_the_call() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let (record, _, _) = answered(
        &mut h,
        "d5",
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
    );
    let out = h.advance(70_000);
    assert!(!out.requests_to(TRUNK, Method::Bye).is_empty());
    let tail: Vec<_> = out.events.iter().rev().take(2).rev().cloned().collect();
    assert_eq!(
        tail,
        [
            dropped("session expired"),
            CallEventKind::Ended {
                by: Party::Siaga,
                disposition: Disposition::Answered
            }
        ]
    );
    assert_eq!(listed(&h), [(record, DROPPED_UNCLASSIFIED.to_owned())]);
}

#[test]
fn a_later_answered_call_from_the_number_closes_the_item() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let (_, ok, _) = answered(&mut h, "d6", "");
    h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "d6bye"));
    assert_eq!(h.engine.callbacks().len(), 1);
    // 1001 is available again after its wrap-up; the caller calls again and is answered.
    h.advance(60_000);
    answered(&mut h, "d7", "");
    assert!(h.engine.callbacks().is_empty(), "the caller got through");
}

#[test]
fn shutdown_lists_no_answered_call() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    answered(&mut h, "d8", "");
    h.engine.shutdown(h.at());
    let out = h.drain();
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Dropped { .. }))
    );
    assert!(h.engine.callbacks().is_empty());
}
