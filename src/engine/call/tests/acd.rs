//! The ACD inside whole calls (issue 5): ring-all with a CANCEL to the losers, wrap-up
//! before the next offer, the no-answer limit, priorities from trunk signalling, repeat
//! callers flagged to the operator, and a registration that expires while its phone rings.

use super::*;
use crate::engine::acd::{AcdSettings, NotReadyReason, Strategy};

const OP3: &str = "127.0.0.1:5073";

/// Operators 1001–1003 (passwords `demo-ID`), ring timeout `ring_s`, the ACD as `acd`
/// makes it.
fn harness(ring_s: u64, acd: impl FnOnce(&mut AcdSettings)) -> Harness {
    let mut config = EngineConfig::for_tests(addr(SIAGA));
    config.calls.operators = ["1001", "1002", "1003"]
        .iter()
        .map(|id| {
            let ha1 = Ha1::from_password(id, "siaga.test", &format!("demo-{id}"));
            (id.to_string(), ha1)
        })
        .collect();
    config.calls.acd.queues[0].ring_timeout = Duration::from_secs(ring_s);
    acd(&mut config.calls.acd);
    Harness {
        engine: Engine::with_seed(config, 5),
        now: 1_000,
    }
}

fn state(h: &Harness, id: &str) -> Option<AgentState> {
    h.engine.agent_state(id)
}

fn from_of(msg: &SipMessage) -> String {
    String::from_utf8_lossy(&msg.header(HeaderName::From).expect("From").value()).into_owned()
}

#[test]
fn ring_all_rings_every_operator_and_the_first_200_wins() {
    let mut h = harness(15, |acd| acd.queues[0].strategy = Strategy::RingAll);
    h.register("1001", OP1);
    h.register("1002", OP2);
    h.register("1003", OP3);
    let out = h.input(TRUNK, &trunk_invite("ra1"));
    let invites: Vec<SipMessage> = [OP1, OP2, OP3]
        .iter()
        .map(|op| out.requests_to(op, Method::Invite).pop().expect("rung"))
        .collect();
    let offered: Vec<&str> = out.events.iter().filter_map(|e| e.operator()).collect();
    assert_eq!(offered, ["1001", "1002", "1003"]);
    for (inv, tag) in invites.iter().zip(["a", "b", "c"]) {
        let from = if tag == "a" {
            OP1
        } else if tag == "b" {
            OP2
        } else {
            OP3
        };
        h.input(from, &phone_response(inv, 180, "Ringing", tag, None));
    }
    let out = h.input(
        OP2,
        &phone_response(&invites[1], 200, "OK", "b", Some(SDP_OPERATOR)),
    );
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(OP1, Method::Cancel).len(), 1);
    assert_eq!(out.requests_to(OP3, Method::Cancel).len(), 1);
    assert!(out.requests_to(OP2, Method::Cancel).is_empty());
    // The losers are available again at once, the winner is on the call.
    assert!(matches!(
        state(&h, "1001"),
        Some(AgentState::Available { .. })
    ));
    assert!(matches!(
        state(&h, "1003"),
        Some(AgentState::Available { .. })
    ));
    assert!(matches!(state(&h, "1002"), Some(AgentState::OnCall { .. })));
    let moves: Vec<(&str, &str, &str)> = out
        .agent
        .iter()
        .map(|e| (e.operator.as_str(), e.from, e.to))
        .collect();
    assert!(moves.contains(&("1002", "ringing", "on_call")), "{moves:?}");
    assert!(
        moves.contains(&("1001", "ringing", "available")),
        "{moves:?}"
    );
    assert!(out.agent.iter().all(|e| e.call.is_some()));
    // A loser that answers late is ACKed and BYEd and stays available.
    let out = h.input(
        OP3,
        &phone_response(&invites[2], 200, "OK", "c", Some(SDP_OPERATOR)),
    );
    assert_eq!(out.requests_to(OP3, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(OP3, Method::Bye).len(), 1);
    assert!(matches!(
        state(&h, "1003"),
        Some(AgentState::Available { .. })
    ));
}

#[test]
fn wrap_up_holds_the_next_offer_until_it_ends() {
    let mut h = harness(15, |acd| acd.queues[0].wrap_up = Duration::from_secs(10));
    let (ok, ack) = answered_call(&mut h, "w1", "");
    let out = h.input(OP1, &operator_bye(&ack));
    assert!(
        out.requests_to(TRUNK, Method::Bye).len() == 1,
        "{:?}",
        out.events
    );
    assert!(matches!(state(&h, "1001"), Some(AgentState::WrapUp { .. })));
    let _ = ok;
    // A new call waits: 1001 is the only operator and is wrapping up.
    let out = h.input(TRUNK, &trunk_invite("w2"));
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    let out = h.advance(9_999);
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    let out = h.advance(1);
    assert_eq!(
        out.requests_to(OP1, Method::Invite).len(),
        1,
        "offered after wrap-up"
    );
    let ends: Vec<_> = out.agent.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(ends[0], ("wrap_up", "available"));
}

#[test]
fn two_unanswered_offers_make_the_operator_not_ready() {
    let mut h = harness(2, |acd| acd.queues[0].no_answer_limit = 2);
    h.register("1001", OP1);
    h.input(TRUNK, &trunk_invite("n1"));
    h.advance(2_000);
    let out = h.advance(2_000);
    assert_eq!(
        state(&h, "1001"),
        Some(AgentState::NotReady {
            reason: NotReadyReason::NoAnswer
        })
    );
    assert!(
        out.agent
            .iter()
            .any(|e| e.to == "not_ready" && e.reason.as_deref() == Some("no_answer"))
    );
    // Not offered again until the operator says ready (the API of a later issue, or *70).
    let out = h.advance(60_000);
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Offered { .. })),
        "{:?}",
        out.events
    );
    assert_eq!(h.engine.waiting_calls(), 1);
    h.engine
        .agent_command(h.at(), "1001", crate::engine::acd::AgentCommand::Ready)
        .expect("ready");
    let out = h.drain();
    assert!(out.events.contains(&CallEventKind::Offered {
        operator: "1001".into()
    }));
}

#[test]
fn a_priority_call_overtakes_and_a_repeat_caller_is_flagged() {
    let mut h = harness(15, |_| {});
    // Nobody registered: calls queue.
    h.input(TRUNK, &trunk_invite("q1"));
    let out = h.input(TRUNK, &trunk_invite_with("q2", "Priority: emergency\r\n"));
    assert!(out.events.iter().any(|e| matches!(
        e,
        CallEventKind::Queued {
            priority: 1,
            repeat: false,
            ..
        }
    )));
    h.register("1001", OP1);
    // q2 went first although it came second.
    let invite = h.drain();
    let _ = invite;
    let out = h.input(TRUNK, &cancel_of(&trunk_invite("q1")));
    assert!(out.events.iter().any(|e| matches!(
        e,
        CallEventKind::Ended {
            disposition: Disposition::AbandonedInQueue,
            ..
        }
    )));
    // The same number calls again: a repeat call, raised, flagged to the operator.
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite("q3"));
    assert!(out.events.iter().any(|e| matches!(
        e,
        CallEventKind::Queued {
            priority: 1,
            repeat: true,
            ..
        }
    )));
    let offer = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("1002 rung");
    assert!(
        from_of(&offer).starts_with("\"REPEAT "),
        "{}",
        from_of(&offer)
    );
    assert_eq!(
        offer
            .headers_raw_named("Alert-Info")
            .next()
            .map(|h| String::from_utf8_lossy(&h.value()).into_owned()),
        Some("<urn:alert:priority:high>".to_owned())
    );
    // The abandoned call is on the callback worklist.
    assert_eq!(h.engine.calls.acd.worklist.items().len(), 1);
}

#[test]
fn the_emergency_priority_call_is_offered_first() {
    let mut h = harness(15, |_| {});
    h.input(TRUNK, &trunk_invite("o1"));
    h.input(
        TRUNK,
        &trunk_invite_with("o2", "Resource-Priority: esnet.2\r\n"),
    );
    h.register("1001", OP1);
    let out = h.drain();
    let _ = out;
    let offered = h
        .engine
        .calls
        .calls
        .values()
        .find(|c| matches!(c.state, crate::engine::call::CallState::Offering { .. }))
        .map(|c| c.trunk.invite.call_id().unwrap_or_default().to_owned());
    assert_eq!(offered.as_deref(), Some("o2"));
}

#[test]
fn a_registration_expiring_while_ringing_re_offers_the_call() {
    // A ring timeout longer than the binding's life: the expiry, not the timeout, moves it.
    let mut h = harness(4_000, |_| {});
    h.register("1001", OP1);
    h.advance(10);
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite("e1"));
    let first = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("1001 first");
    h.input(OP1, &phone_response(&first, 180, "Ringing", "x", None));
    // 1001's binding (Expires 3600, registered at 1 s) runs out while its phone rings;
    // 1002's (registered 10 ms later) has not yet.
    let out = h.advance(3_599_995);
    assert_eq!(out.requests_to(OP1, Method::Cancel).len(), 1);
    assert_eq!(state(&h, "1001"), Some(AgentState::LoggedOut));
    assert!(out.events.contains(&CallEventKind::Offered {
        operator: "1002".into()
    }));
    assert!(matches!(
        state(&h, "1002"),
        Some(AgentState::Ringing { .. })
    ));
    assert!(out.events.iter().any(|e| matches!(
        e,
        CallEventKind::LegFailed { operator, reason } if operator == "1001" && reason == "registration expired"
    )));
}
