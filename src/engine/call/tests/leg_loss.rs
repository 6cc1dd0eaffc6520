//! An operator leg that fails mid-call re-queues the caller (issue 5, point 8), in virtual
//! time: RTP silence reported by the relay, a 408/5xx or no response to a request siaga
//! sent in the operator's dialog, a BYE with a failure Reason (RFC 3326); the re-offer to
//! the next operator without a second 2xx to the trunk; the caller hanging up while
//! re-queued; and what does not re-queue (a plain BYE, silence on hold).

use super::midcall::{
    body, final_to, hold_offer, operator_offer_answered, operator_sdp, trunk_sdp, with,
};
use super::*;
use crate::engine::media::{MediaReport, RelayId, Side};

/// The answered call of `answered_call` (trunk ACK sent), its relay, and operator 1002
/// registered afterwards (so that 1001 took the call), then idle for a second (so that
/// 1002 is the longest idle once 1001 is free again).
fn answered_with_standby(h: &mut Harness, id: &str) -> (SipMessage, SipMessage, RelayId) {
    let (ok, ack) = answered_call(h, id, "");
    h.register("1002", OP2);
    h.advance(1_000);
    (ok, ack, relay_of_the_call(h))
}

/// The relay of the only live call.
fn relay_of_the_call(h: &Harness) -> RelayId {
    h.engine
        .calls
        .calls
        .values()
        .find_map(|c| c.relay)
        .map(|(relay, _, _)| relay)
        .expect("the call has a relay")
}

/// The trunk's hold re-INVITE (CSeq 2) in the dialog of siaga's 2xx `ok`: the re-INVITE
/// it makes siaga send operator 1001.
fn trunk_hold_to_op1(h: &mut Harness, ok: &SipMessage, branch: &str) -> SipMessage {
    let out = h.input(TRUNK, &hold_offer(ok, 2, 2, branch));
    let mut to_op = out.requests_to(OP1, Method::Invite);
    assert_eq!(to_op.len(), 1, "one re-INVITE to 1001");
    to_op.remove(0)
}

/// The trunk's BYE with CSeq `seq`: 200, and the call ends as answered, by the caller.
fn caller_hangs_up(h: &mut Harness, ok: &SipMessage, seq: u32, branch: &str) -> Out {
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", ok, seq, branch));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_ended_as_answered(h, &out, Party::Caller);
    out
}

/// `out` ended the only call, recorded as answered and ended `by`.
fn assert_ended_as_answered(h: &Harness, out: &Out, by: Party) {
    let ended = CallEventKind::Ended {
        by,
        disposition: Disposition::Answered,
    };
    assert!(out.events.contains(&ended), "{:?}", out.events);
    assert_eq!(h.engine.live_calls(), 0);
}

/// Whether `operator` is talking on a call.
fn on_call(h: &Harness, operator: &str) -> bool {
    matches!(
        h.engine.agent_state(operator),
        Some(AgentState::OnCall { .. })
    )
}

/// Whether `operator` is available.
fn available(h: &Harness, operator: &str) -> bool {
    matches!(
        h.engine.agent_state(operator),
        Some(AgentState::Available { .. })
    )
}

/// The one INVITE `out` sent to 1002's phone.
fn ringing_1002(out: &Out) -> SipMessage {
    let mut invites = out.requests_to(OP2, Method::Invite);
    assert_eq!(invites.len(), 1, "1002 rung once");
    invites.remove(0)
}

fn silent(h: &mut Harness, relay: RelayId, side: Side) -> Out {
    h.engine.handle_input(
        h.at(),
        Input::MediaReport(MediaReport::Silent { relay, side }),
    );
    h.drain()
}

/// The `Requeued` event's reason in `out`, which must have one for operator 1001.
fn requeued_reason(out: &Out) -> String {
    out.events
        .iter()
        .find_map(|e| match e {
            CallEventKind::Requeued { operator, reason } if operator == "1001" => {
                Some(reason.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Requeued event for 1001: {:?}", out.events))
}

/// The operator leg cleared in the relay.
fn clears_operator_peer(out: &Out) -> bool {
    out.media.iter().any(|m| {
        matches!(m, MediaCommand::SetPeer { side: Side::Operator, rtp, .. } if rtp.ip().is_unspecified())
    })
}

/// Operator 1002's answer to `invite`, with its own Contact.
fn op2_answer(invite: &SipMessage, sdp: &str) -> String {
    phone_response(invite, 200, "OK", "op2", Some(sdp)).replace(
        "Contact: <sip:phone@127.0.0.1:5071>",
        "Contact: <sip:phone@127.0.0.1:5072>",
    )
}

const SDP_OPERATOR2: &str = "v=0\r\no=op2 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7200 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Silence from 1001 re-queues the caller: BYE to 1001, the relay's operator peer cleared,
/// `requeued`, 1001 free; 1002 is offered only the codecs the trunk agreed to, and its
/// answer is bridged with no second 2xx (nor any 1xx) to the trunk. The caller's BYE then
/// ends the call as answered, with BYE to 1002.
#[test]
fn silence_from_the_operator_requeues_and_the_next_operator_gets_the_call() {
    let mut h = Harness::new(15);
    let (ok, _ack, relay) = answered_with_standby(&mut h, "ll1");

    // The caller falling silent changes nothing.
    let out = silent(&mut h, relay, Side::Caller);
    assert!(out.sent.is_empty() && out.events.is_empty(), "{out:?}");

    let out = silent(&mut h, relay, Side::Operator);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1, "BYE to 1001");
    assert!(clears_operator_peer(&out));
    assert_eq!(requeued_reason(&out), "no RTP from the operator");
    assert!(out.to(TRUNK).is_empty(), "nothing to the trunk");
    assert!(available(&h, "1001"));
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Offered { operator } if operator == "1002"))
    );
    let invite = ringing_1002(&out);
    let offer = body(&invite);
    assert!(
        offer.contains("m=audio") && offer.contains("RTP/AVP 8 101"),
        "only what the trunk agreed to: {offer}"
    );

    let out = h.input(OP2, &phone_response(&invite, 180, "Ringing", "op2", None));
    assert!(out.to(TRUNK).is_empty(), "no 180 to a connected caller");
    let out = h.input(OP2, &op2_answer(&invite, SDP_OPERATOR2));
    assert_eq!(out.requests_to(OP2, Method::Ack).len(), 1);
    assert!(out.to(TRUNK).is_empty(), "no second 2xx to the trunk");
    assert_eq!(
        out.events,
        [CallEventKind::Answered {
            operator: "1002".into()
        }]
    );
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Operator, rtp, .. } if rtp.port() == 7200
    )));
    assert!(on_call(&h, "1002"));
    // The ringing refresh, had it been due, sends nothing either.
    let out = h.advance(120_000);
    assert!(out.to(TRUNK).is_empty(), "{:?}", out.statuses_to(TRUNK));

    let out = caller_hangs_up(&mut h, &ok, 2, "ll1bye");
    assert_eq!(out.requests_to(OP2, Method::Bye).len(), 1);
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
}

/// The next operator's answer without the codec the trunk sends (PCMA here) is ended like
/// one with no common codec; nothing reaches the trunk.
#[test]
fn a_next_answer_without_the_trunks_codec_is_not_bridged() {
    let mut h = Harness::new(15);
    let (_ok, _ack, relay) = answered_with_standby(&mut h, "ll2");
    let out = silent(&mut h, relay, Side::Operator);
    let invite = ringing_1002(&out);
    let pcmu = SDP_OPERATOR2
        .replace("RTP/AVP 8 101", "RTP/AVP 0 101")
        .replace("8 PCMA", "0 PCMU");
    let out = h.input(OP2, &op2_answer(&invite, &pcmu));
    assert_eq!(
        out.requests_to(OP2, Method::Bye).len(),
        1,
        "ACKed and ended"
    );
    assert!(out.to(TRUNK).is_empty());
    assert!(out.events.iter().any(|e| matches!(
        e,
        CallEventKind::LegFailed { operator, reason } if operator == "1002" && reason == "no common codec"
    )));
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Answered { .. }))
    );
}

/// A trunk's re-INVITE crossing to 1001 that 1001 answers 408, 481 or 5xx: the trunk's
/// request gets 500 with Retry-After (not the failure: a 408 would end the trunk's dialog,
/// §14.1), 1001 gets BYE, and the caller is re-queued.
#[test]
fn a_408_481_or_5xx_to_a_reinvite_to_the_operator_requeues_the_caller() {
    for status in [408, 481, 500, 503] {
        let mut h = Harness::new(15);
        let (ok, _ack, _relay) = answered_with_standby(&mut h, "ll3");
        let to_op = trunk_hold_to_op1(&mut h, &ok, "ll3re");
        let out = h.input(OP1, &phone_response(&to_op, status, "Failed", "op1", None));
        let refusal = final_to(&out, TRUNK);
        assert_eq!(refusal.status(), Some(500), "for {status}");
        assert!(refusal.header(HeaderName::RetryAfter).is_some());
        assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1, "for {status}");
        assert_eq!(
            requeued_reason(&out),
            format!("{status} response to re-INVITE")
        );
        ringing_1002(&out);
        assert!(
            !out.events
                .iter()
                .any(|e| matches!(e, CallEventKind::Ended { .. }))
        );
        assert_eq!(h.engine.live_calls(), 1);
    }
}

/// A refusal that is no failure (488) still crosses back and the call goes on.
#[test]
fn a_488_to_a_reinvite_to_the_operator_only_crosses_back() {
    let mut h = Harness::new(15);
    let (ok, _ack, _relay) = answered_with_standby(&mut h, "ll4");
    let to_op = trunk_hold_to_op1(&mut h, &ok, "ll4re");
    let out = h.input(OP1, &phone_response(&to_op, 488, "Not Here", "op1", None));
    assert_eq!(final_to(&out, TRUNK).status(), Some(488));
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
}

/// No response at all to the re-INVITE (Timer B): the same re-queue, the trunk's request
/// answered 500 with Retry-After.
#[test]
fn no_response_to_a_reinvite_to_the_operator_requeues_the_caller() {
    let mut h = Harness::new(15);
    let (ok, _ack, _relay) = answered_with_standby(&mut h, "ll5");
    trunk_hold_to_op1(&mut h, &ok, "ll5re");
    let out = h.advance(32_000);
    assert_eq!(requeued_reason(&out), "no response to re-INVITE");
    assert_eq!(final_to(&out, TRUNK).status(), Some(500));
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    ringing_1002(&out);
}

/// 1001's leg fails (silence) while siaga's re-INVITE to it is pending; 1002 takes the
/// call; 1001's 2xx to that re-INVITE then comes: ACKed to 1001 (§13.2.2.4), and nothing
/// else — not 1002's dialog, not the relay, not the trunk.
#[test]
fn a_2xx_from_a_lost_leg_is_acked_and_changes_nothing() {
    let mut h = Harness::new(15);
    let (ok, _ack, relay) = answered_with_standby(&mut h, "ll11");
    let to_op = trunk_hold_to_op1(&mut h, &ok, "ll11re");
    let out = silent(&mut h, relay, Side::Operator);
    assert_eq!(
        final_to(&out, TRUNK).status(),
        Some(500),
        "the hold waited on 1001"
    );
    let invite = ringing_1002(&out);
    let out = h.input(OP2, &op2_answer(&invite, SDP_OPERATOR2));
    assert!(matches!(out.events[..], [CallEventKind::Answered { .. }]));

    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "recvonly"))),
    );
    let acks = out.requests_to(OP1, Method::Ack);
    assert_eq!(acks.len(), 1, "{:?}", out.sent);
    assert_eq!(acks[0].call_id().ok(), to_op.call_id().ok());
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert!(out.media.is_empty(), "{:?}", out.media);
    assert!(out.to(TRUNK).is_empty());
    assert!(out.to(OP2).is_empty(), "1002's dialog untouched");
    assert!(on_call(&h, "1002"));
}

/// An operator's hold re-INVITE crosses to the trunk; siaga's 2xx to it is never ACKed
/// (64·T1): the operator's leg is gone, the caller re-queued.
#[test]
fn no_ack_for_siagas_2xx_to_the_operator_requeues_the_caller() {
    let mut h = Harness::new(15);
    let (_ok, ack, _relay) = answered_with_standby(&mut h, "ll6");
    let (_, out) = operator_offer_answered(
        &mut h,
        &ack,
        (Method::Invite, 2, "ll6re"),
        &operator_sdp(2, "sendonly"),
        &trunk_sdp(2, "recvonly", "127.0.0.1"),
    );
    assert_eq!(final_to(&out, OP1).status(), Some(200));
    let out = h.advance(33_000);
    assert_eq!(
        requeued_reason(&out),
        "no ACK for siaga's 2xx to the operator's re-INVITE"
    );
    assert_eq!(h.engine.live_calls(), 1);
}

/// RFC 3326: a BYE on 1001's dialog whose Reason is a failure re-queues the caller (200 to
/// the BYE, no BYE back); a BYE without Reason or with a normal one ends the call.
#[test]
fn a_bye_with_a_failure_reason_requeues_and_a_plain_bye_ends_the_call() {
    for (reason, requeued) in [
        ("SIP;cause=503;text=\"Service Unavailable\"", true),
        ("SIP ;cause=408", true),
        ("Q.850;cause=41", true),
        ("Q.850;cause=16", false),
        ("Q.850;cause=31;text=\"Normal\"", false),
        ("SIP;cause=200", false),
        ("SIP;cause=oops", false),
        ("", false),
    ] {
        let mut h = Harness::new(15);
        let (_ok, ack, _relay) = answered_with_standby(&mut h, "ll7");
        let header = if reason.is_empty() {
            String::new()
        } else {
            format!("Reason: {reason}\r\n")
        };
        let bye = with(&operator_bye(&ack), &header, None);
        let out = h.input(OP1, &bye);
        assert_eq!(out.statuses_to(OP1), [200], "for {reason:?}");
        assert!(
            out.requests_to(OP1, Method::Bye).is_empty(),
            "for {reason:?}"
        );
        if requeued {
            let cause = reason
                .split(";text")
                .next()
                .unwrap_or_default()
                .replace(' ', "");
            assert_eq!(requeued_reason(&out), format!("BYE with Reason {cause}"));
            assert!(out.to(TRUNK).is_empty(), "for {reason:?}");
            ringing_1002(&out);
            assert_eq!(h.engine.live_calls(), 1);
        } else {
            assert_eq!(
                out.requests_to(TRUNK, Method::Bye).len(),
                1,
                "for {reason:?}"
            );
            assert_ended_as_answered(&h, &out, Party::Operator);
        }
    }
}

/// Re-queued with nobody to take it: no 180 to the connected caller; a session refresh
/// from the trunk is answered, a new offer gets 500 with Retry-After (no operator to carry
/// it to); the caller's BYE ends the call as answered, by the caller.
#[test]
fn a_caller_hanging_up_while_requeued_ends_the_call_as_answered() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(&mut h, "ll8", "");
    let relay = relay_of_the_call(&h);
    // 1001 is the only operator: it is offered the call again at once.
    let out = silent(&mut h, relay, Side::Operator);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    let again = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("offered again");
    let out = h.input(OP1, &phone_response(&again, 486, "Busy", "op1b", None));
    assert!(out.to(TRUNK).is_empty());
    let out = h.advance(70_000);
    assert!(out.to(TRUNK).is_empty(), "{:?}", out.statuses_to(TRUNK));

    let refresh = with(
        &trunk_in_dialog("INVITE", &ok, 2, "ll8re"),
        "",
        Some(SDP_TRUNK),
    );
    let out = h.input(TRUNK, &refresh);
    assert_eq!(
        final_to(&out, TRUNK).status(),
        Some(200),
        "an unchanged offer"
    );
    let hold = with(
        &trunk_in_dialog("INVITE", &ok, 3, "ll8hold"),
        "",
        Some(&trunk_sdp(2, "sendonly", "127.0.0.1")),
    );
    let out = h.input(TRUNK, &hold);
    let refusal = final_to(&out, TRUNK);
    assert_eq!(refusal.status(), Some(500));
    assert!(refusal.header(HeaderName::RetryAfter).is_some());

    let out = caller_hangs_up(&mut h, &ok, 4, "ll8bye");
    assert!(
        out.requests_to(OP1, Method::Bye).is_empty(),
        "no operator has the call"
    );
}

/// The caller hangs up while the re-queued call rings 1002: 1002 is CANCELled and free,
/// the call recorded as answered.
#[test]
fn a_caller_hanging_up_while_the_next_operator_rings_cancels_it() {
    let mut h = Harness::new(15);
    let (ok, _ack, relay) = answered_with_standby(&mut h, "ll9");
    let out = silent(&mut h, relay, Side::Operator);
    let invite = ringing_1002(&out);
    h.input(OP2, &phone_response(&invite, 180, "Ringing", "op2", None));
    let out = caller_hangs_up(&mut h, &ok, 2, "ll9bye");
    assert_eq!(out.requests_to(OP2, Method::Cancel).len(), 1);
    assert!(available(&h, "1002"));
}

/// Silence while the session is on hold (the trunk's hold, answered `recvonly` by 1001)
/// changes nothing; after the resume it re-queues the caller.
#[test]
fn silence_while_on_hold_does_nothing() {
    let mut h = Harness::new(15);
    let (ok, _ack, relay) = answered_with_standby(&mut h, "ll10");
    for (seq, direction, answered) in [(2, "sendonly", "recvonly"), (3, "sendrecv", "sendrecv")] {
        let reinvite = with(
            &trunk_in_dialog("INVITE", &ok, seq, &format!("ll10re{seq}")),
            "",
            Some(&trunk_sdp(seq, direction, "127.0.0.1")),
        );
        let out = h.input(TRUNK, &reinvite);
        let to_op = out
            .requests_to(OP1, Method::Invite)
            .pop()
            .expect("re-INVITE");
        let out = h.input(
            OP1,
            &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(seq, answered))),
        );
        assert_eq!(final_to(&out, TRUNK).status(), Some(200));
        h.input(
            TRUNK,
            &trunk_in_dialog("ACK", &ok, seq, &format!("ll10ack{seq}")),
        );
        let out = silent(&mut h, relay, Side::Operator);
        if direction == "sendonly" {
            assert!(out.sent.is_empty(), "on hold: {:?}", out.sent);
            assert!(out.events.is_empty(), "on hold: {:?}", out.events);
            assert!(out.media.is_empty());
        } else {
            assert_eq!(requeued_reason(&out), "no RTP from the operator");
        }
    }
}
