//! Races a real trunk and real phones produce (issue 4, item 9), in virtual time: a CANCEL
//! that crosses siaga's 2xx, an operator's 200 that crosses siaga's CANCEL, a 2xx
//! retransmitted after the ACK, BYEs from both sides at once, and a BYE for a dialog that
//! is gone.

use super::*;

fn is_idle(h: &Harness, operator: &str) -> bool {
    matches!(
        h.engine.agent_state(operator),
        Some(AgentState::Available { .. })
    )
}

/// RFC 3261 §9.2: a CANCEL after siaga sent the 2xx matches the INVITE transaction (still
/// there, Accepted) and draws 200, but the INVITE is answered already: no 487, the call
/// goes on and ends with the caller's BYE, recorded as answered.
#[test]
fn a_cancel_after_the_2xx_draws_200_and_no_487_and_the_call_goes_on() {
    let mut h = Harness::new(15);
    let invite = trunk_invite("x1");
    let (_, ok, _) = answer_through_1001(&mut h, &invite);
    let out = h.input(TRUNK, &cancel_of(&invite));
    let replies = out.to(TRUNK);
    assert_eq!(replies.len(), 1, "{:?}", out.statuses_to(TRUNK));
    assert_eq!(replies[0].status(), Some(200));
    assert_eq!(replies[0].cseq().expect("cseq").method, Method::Cancel);
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert!(
        out.sent.iter().all(|t| t.destination == addr(TRUNK)),
        "nothing to the phone"
    );
    assert_eq!(h.engine.live_calls(), 1);
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "x1ack"));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "x1bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(
        out.events,
        [
            CallEventKind::Dropped {
                reason: "the caller hung up".to_owned()
            },
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered
            }
        ]
    );
}

/// An operator's 200 that crosses siaga's CANCEL (sent at the ring timeout) is ACKed and
/// ended with BYE (§15); the operator stays free (nothing was handled) and the call stays
/// with the next operator. The same 200 again (the ACK lost) gets the ACK again, not a
/// second BYE (§13.2.2.4).
#[test]
fn an_operators_200_after_siagas_cancel_is_acked_and_byed_and_the_operator_stays_free() {
    let (mut h, first, out) = first_offer_times_out("x2");
    let cancel = out.requests_to(OP1, Method::Cancel).pop().expect("CANCEL");
    assert!(
        out.requests_to(OP2, Method::Invite).len() == 1,
        "1002 rung next"
    );
    assert!(is_idle(&h, "1001"), "free at the ring timeout");
    // 1001 picks up as the CANCEL arrives: 200 to the CANCEL, 200 to the INVITE.
    h.input(OP1, &phone_response(&cancel, 200, "OK", "op1", None));
    let answer = phone_response(&first, 200, "OK", "op1", Some(SDP_OPERATOR));
    let out = h.input(OP1, &answer);
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1);
    let bye = out.requests_to(OP1, Method::Bye).pop().expect("BYE");
    assert!(out.events.is_empty(), "not an answer: {:?}", out.events);
    assert!(out.statuses_to(TRUNK).is_empty());
    assert!(is_idle(&h, "1001"), "no wrap-up for a call never handled");
    assert!(matches!(
        h.engine.agent_state("1002"),
        Some(AgentState::Ringing { .. })
    ));
    // The ACK was lost: the 200 again draws the ACK again, and no second BYE.
    let out = h.input(OP1, &answer);
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1);
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
    h.input(OP1, &phone_response(&bye, 200, "OK", "op1", None));
    assert!(is_idle(&h, "1001"));
}

/// RFC 3261 §13.2.2.4: the operator's 200 resent after siaga's ACK (the ACK was lost) is
/// ACKed again — while its INVITE transaction lives and after it ended (Timer M) — and is
/// never a second answer: no event, nothing to the trunk.
#[test]
fn a_2xx_retransmitted_after_the_ack_is_acked_again_not_answered_again() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("x3"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let answer = phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR));
    let out = h.input(OP1, &answer);
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "x3ack"));
    let resent = |h: &mut Harness| {
        let out = h.input(OP1, &answer);
        assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1, "ACKed again");
        assert!(out.events.is_empty(), "{:?}", out.events);
        assert!(out.statuses_to(TRUNK).is_empty());
        assert_eq!(h.engine.live_calls(), 1);
    };
    resent(&mut h);
    // Past Timer M (64·T1): the INVITE transaction is gone, the dialog is not.
    assert!(h.advance(33_000).sent.is_empty());
    assert_eq!(h.engine.client_transactions(), 0);
    resent(&mut h);
}

/// RFC 3261 §15.1.2: both sides hang up at once. The trunk's BYE ends the call and siaga
/// BYEs the operator; the operator's BYE, crossing siaga's, still matches the dialog and
/// draws 200 (not 481). Once siaga's BYE transaction is over, the dialog is gone: a BYE in
/// it draws 481.
#[test]
fn both_sides_bye_at_once_both_get_200_and_a_later_bye_481() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "x4", "");
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "x4bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    let siaga_bye = out
        .requests_to(OP1, Method::Bye)
        .pop()
        .expect("BYE to the phone");
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200], "crossing BYE");
    assert!(out.events.is_empty());
    // The phone answers siaga's BYE; after Timer K (T4) the dialog is gone.
    h.input(OP1, &phone_response(&siaga_bye, 200, "OK", "op1", None));
    h.advance(5_000);
    let again = operator_bye(&ack).replace("z9hG4bKopbye", "z9hG4bKopbye2");
    assert_eq!(h.input(OP1, &again).statuses_to(OP1), [481]);
    assert!(is_idle(&h, "1001"));
}

/// The same crossing the other way: the operator hangs up first, siaga BYEs the trunk,
/// and the caller's BYE that crossed it draws 200.
#[test]
fn an_operator_bye_crossing_the_callers_both_get_200() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "x5", "");
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200]);
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "x5bye"));
    assert_eq!(out.statuses_to(TRUNK), [200], "crossing BYE");
    // Other requests in that ending dialog: it is as good as gone.
    let options = trunk_in_dialog("OPTIONS", &ok, 3, "x5opt");
    assert_eq!(h.input(TRUNK, &options).statuses_to(TRUNK), [481]);
}

/// RFC 3261 §12.2.2, §15.1.2: a BYE in a dialog that ended (the caller's BYE was answered)
/// draws 481, and changes nothing.
#[test]
fn a_bye_for_a_finished_dialog_draws_481() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "x6", "");
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "x6bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    // The retransmission is the same transaction: 200 again.
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "x6bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 3, "x6bye2"));
    assert_eq!(out.statuses_to(TRUNK), [481]);
    assert!(out.events.is_empty());
}
