//! Overflow to the backup centre (issue 5, point 6) in virtual time: a call nobody can
//! serve rings a neighbouring centre over a new leg, is bridged when it answers, and comes
//! back to its place in the queue when it does not.

use super::*;
use crate::engine::acd::Overflow;

/// The backup centre: outside the trust domain (the trunk is 127.0.0.1 only here).
const BACKUP: &str = "127.0.0.9:5080";
const BACKUP_URI: &str = "sip:112@127.0.0.9:5080";
const SDP_BACKUP: &str = "v=0\r\no=backup 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Operators 1001 and 1002 (none registered), the queue overflowing to [`BACKUP`] after
/// `after_s` (also the pause after a failure), the backup ringing `ring_s`; `trusted`:
/// the backup is inside the trust domain (`trunk.trust_domain`).
fn overflow_harness(after_s: u64, ring_s: u64, trusted: bool) -> Harness {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.trunk_sources = vec!["127.0.0.1/32".parse().expect("net")];
    if trusted {
        config.calls.trust_domain = vec!["127.0.0.9/32".parse().expect("net")];
    }
    config.calls.acd.queues[0].overflow = Some(Overflow {
        uri: BACKUP_URI.to_owned(),
        after: Duration::from_secs(after_s),
        ring_timeout: Duration::from_secs(ring_s),
    });
    h.engine = Engine::with_seed(config, 11);
    h
}

/// The backup centre's response to siaga's `invite`, its Contact at [`BACKUP`].
fn backup_response(invite: &SipMessage, status: u16, reason: &str, sdp: Option<&str>) -> String {
    phone_response(invite, status, reason, "bk", sdp).replace(
        "Contact: <sip:phone@127.0.0.1:5071>",
        &format!("Contact: <sip:backup@{BACKUP}>"),
    )
}

/// The trunk call `id` arrives (`extra` headers in its INVITE); returns siaga's INVITE to
/// the backup centre, which must go out at once, and everything the INVITE drew.
fn overflowing_call(h: &mut Harness, id: &str, extra: &str) -> (SipMessage, Out) {
    let out = h.input(TRUNK, &trunk_invite_with(id, extra));
    let invite = out
        .requests_to(BACKUP, Method::Invite)
        .pop()
        .expect("an INVITE to the backup centre");
    (invite, out)
}

/// The backup centre answers `invite` with `sdp` and the trunk ACKs siaga's 2xx: returns
/// (siaga's 2xx to the trunk, its ACK to the backup centre).
fn backup_answers(h: &mut Harness, invite: &SipMessage, sdp: &str) -> (SipMessage, SipMessage) {
    let out = h.input(BACKUP, &backup_response(invite, 200, "OK", Some(sdp)));
    let ok = out.to(TRUNK).pop().expect("the trunk is answered");
    let ack = out.requests_to(BACKUP, Method::Ack).pop().expect("ACK");
    let call_id = ok.call_id().unwrap_or_default().to_owned();
    h.input(
        TRUNK,
        &trunk_in_dialog("ACK", &ok, 1, &format!("{call_id}ack")),
    );
    (ok, ack)
}

/// The trunk Call-IDs of the waiting calls, in service order.
fn waiting_order(h: &Harness) -> Vec<String> {
    let calls = &h.engine.calls;
    calls
        .acd
        .waiting_calls()
        .filter_map(|(handle, _)| calls.calls.get(&handle)?.trunk.invite.call_id().ok())
        .map(str::to_owned)
        .collect()
}

fn failed(reason: &str) -> CallEventKind {
    CallEventKind::OverflowFailed {
        target: BACKUP_URI.to_owned(),
        reason: reason.to_owned(),
    }
}

#[test]
fn with_nobody_logged_in_the_call_overflows_at_once_without_the_callers_identity() {
    let mut h = overflow_harness(60, 30, false);
    let (invite, out) = overflowing_call(&mut h, "o1", "Privacy: id\r\n");
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert!(matches!(
        &out.events[..],
        [
            CallEventKind::Received { .. },
            CallEventKind::Queued { .. },
            CallEventKind::OverflowOffered { target },
        ] if target == BACKUP_URI
    ));
    assert_eq!(invite.request_uri_raw(), Some(BACKUP_URI));
    assert_eq!(invite.max_forwards().ok().flatten(), Some(69));
    assert!(invite.header(HeaderName::PAssertedIdentity).is_none());
    let from = String::from_utf8_lossy(&invite.header(HeaderName::From).expect("from").value())
        .into_owned();
    assert!(
        from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
        "{from}"
    );
    let to = invite.to().expect("to");
    assert_eq!(to.tag(), None);
    let body = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(
        body.contains("c=IN IP4 127.0.0.1") && body.contains("m=audio 30"),
        "the offer points at siaga's relay: {body}"
    );
    assert_eq!(h.engine.waiting_calls(), 0, "out of the waiting order");

    // The backup centre answers: the caller is answered and bridged to it.
    h.input(BACKUP, &backup_response(&invite, 180, "Ringing", None));
    let out = h.input(
        BACKUP,
        &backup_response(&invite, 200, "OK", Some(SDP_BACKUP)),
    );
    assert_eq!(out.requests_to(BACKUP, Method::Ack).len(), 1);
    let ok = out.to(TRUNK).pop().expect("the trunk is answered");
    assert_eq!(ok.status(), Some(200));
    assert!(String::from_utf8_lossy(ok.body()).contains("RTP/AVP 0 101"));
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: crate::engine::media::Side::Operator, rtp, .. }
            if *rtp == addr("127.0.0.9:8000")
    )));
    assert_eq!(
        out.events,
        [CallEventKind::OverflowAnswered {
            target: BACKUP_URI.to_owned()
        }]
    );
    // No more 180s once answered; the trunk's BYE reaches the backup centre.
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "o1ack"));
    assert!(h.advance(31_000).statuses_to(TRUNK).is_empty());
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "o1bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(BACKUP, Method::Bye).len(), 1);
    assert_eq!(
        out.events,
        [CallEventKind::Ended {
            by: Party::Caller,
            disposition: Disposition::Overflowed
        }]
    );
}

#[test]
fn a_backup_inside_the_trust_domain_sees_the_asserted_caller_and_its_bye_ends_the_call() {
    let mut h = overflow_harness(60, 30, true);
    let (invite, _) = overflowing_call(&mut h, "o2", "Privacy: id\r\n");
    let asserted = invite
        .header(HeaderName::PAssertedIdentity)
        .expect("P-Asserted-Identity passed on");
    assert_eq!(&asserted.value()[..], b"<tel:+62811-555-0001>");
    let (_, ack) = backup_answers(&mut h, &invite, SDP_BACKUP);
    let bye = operator_bye(&ack).replace(OP1, BACKUP);
    let out = h.input(BACKUP, &bye);
    assert_eq!(out.statuses_to(BACKUP), [200]);
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    assert_eq!(
        out.events,
        [CallEventKind::Ended {
            by: Party::Operator,
            disposition: Disposition::Overflowed
        }]
    );
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn a_busy_backup_puts_the_call_back_at_its_place_and_a_new_operator_takes_it() {
    let mut h = overflow_harness(60, 30, false);
    let (first, _) = overflowing_call(&mut h, "o3a", "");
    // While the backup rings, an operator logging in is not offered the call.
    h.register("1001", OP1);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::Available { .. })
    ));
    h.engine
        .agent_command(h.at(), "1001", crate::engine::acd::AgentCommand::NotReady)
        .expect("not ready");
    // A second call while nobody is available overflows only after the wait: 1001 is
    // logged in. The first call's overflow fails: back to its place.
    let out = h.input(TRUNK, &trunk_invite("o3b"));
    assert!(out.requests_to(BACKUP, Method::Invite).is_empty());
    let out = h.input(BACKUP, &backup_response(&first, 486, "Busy Here", None));
    assert_eq!(out.requests_to(BACKUP, Method::Ack).len(), 1, "§17.1.1.3");
    assert_eq!(out.events, [failed("486 response")]);
    assert!(
        out.requests_to(BACKUP, Method::Invite).is_empty(),
        "paused, and o3b has not waited long enough"
    );
    assert_eq!(waiting_order(&h), ["o3a", "o3b"], "its place kept");

    // 1001 ready again: offered the first call.
    h.engine
        .agent_command(h.at(), "1001", crate::engine::acd::AgentCommand::Ready)
        .expect("ready");
    // `agent_command` leaves the INVITE with its transaction until the next input.
    h.engine.handle_timeout(h.at());
    let out = h.drain();
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("a trunk call answered");
    assert_eq!(ok.call_id().ok(), Some("o3a"));
    assert_eq!(waiting_order(&h), ["o3b"]);
}

#[test]
fn an_unanswered_backup_is_cancelled_at_its_ring_timeout_and_the_caller_hears_180s() {
    let mut h = overflow_harness(60, 40, false);
    let (invite, _) = overflowing_call(&mut h, "o4", "");
    h.input(BACKUP, &backup_response(&invite, 180, "Ringing", None));
    let out = h.advance(39_000);
    assert_eq!(out.statuses_to(TRUNK), [180], "the 180 refresh goes on");
    assert!(out.requests_to(BACKUP, Method::Cancel).is_empty());
    let out = h.advance(1_000);
    let cancel = out
        .requests_to(BACKUP, Method::Cancel)
        .pop()
        .expect("CANCEL");
    assert_eq!(cancel.call_id().ok(), invite.call_id().ok());
    assert!(
        out.events
            .contains(&failed("no answer within the ring timeout"))
    );
    assert_eq!(waiting_order(&h), ["o4"]);
    // The 487 that follows changes nothing more.
    let out = h.input(
        BACKUP,
        &backup_response(&invite, 487, "Request Terminated", None),
    );
    assert_eq!(out.requests_to(BACKUP, Method::Ack).len(), 1);
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert_eq!(waiting_order(&h), ["o4"]);
}

#[test]
fn a_failed_overflow_is_retried_only_after_the_pause() {
    let mut h = overflow_harness(20, 30, false);
    let (invite, _) = overflowing_call(&mut h, "o5", "");
    let out = h.input(BACKUP, &backup_response(&invite, 503, "Unavailable", None));
    assert_eq!(out.events, [failed("503 response")]);
    let out = h.advance(19_999);
    assert!(out.requests_to(BACKUP, Method::Invite).is_empty());
    let out = h.advance(1);
    let again = out
        .requests_to(BACKUP, Method::Invite)
        .pop()
        .expect("tried again");
    assert_ne!(again.call_id().ok(), invite.call_id().ok(), "a new leg");
    assert!(out.events.contains(&CallEventKind::OverflowOffered {
        target: BACKUP_URI.to_owned()
    }));
}

#[test]
fn a_call_overflows_once_it_waited_while_every_operator_is_busy() {
    let mut h = overflow_harness(45, 30, false);
    // 1001 is available: the call goes to it, never to the backup centre.
    answered_call(&mut h, "o6a", "");
    assert_eq!(h.engine.live_calls(), 1, "answered by 1001, not overflowed");
    let out = h.input(TRUNK, &trunk_invite("o6b"));
    assert!(out.requests_to(BACKUP, Method::Invite).is_empty());
    let out = h.advance(44_999);
    assert!(out.requests_to(BACKUP, Method::Invite).is_empty());
    let out = h.advance(1);
    let invite = out
        .requests_to(BACKUP, Method::Invite)
        .pop()
        .expect("overflow");
    // No P-Asserted-Identity leaves, but without a privacy request From names the caller.
    assert!(invite.header(HeaderName::PAssertedIdentity).is_none());
    let from = invite.from().expect("from");
    assert_eq!(from.uri.to_string(), "sip:+628115550001@siaga.test");
    assert_eq!(waiting_order(&h), Vec::<String>::new());
}

#[test]
fn the_caller_hanging_up_while_the_backup_rings_cancels_it() {
    let mut h = overflow_harness(60, 30, false);
    let (invite, _) = overflowing_call(&mut h, "o7", "");
    h.input(BACKUP, &backup_response(&invite, 180, "Ringing", None));
    let out = h.input(TRUNK, &cancel_of(&trunk_invite("o7")));
    assert_eq!(out.statuses_to(TRUNK), [200, 487]);
    assert_eq!(out.requests_to(BACKUP, Method::Cancel).len(), 1);
    assert_eq!(
        out.events,
        [CallEventKind::Ended {
            by: Party::Caller,
            disposition: Disposition::AbandonedWhileRinging
        }]
    );
    // The backup centre answers anyway, crossing the CANCEL: ACKed and ended with BYE.
    let out = h.input(
        BACKUP,
        &backup_response(&invite, 200, "OK", Some(SDP_BACKUP)),
    );
    assert_eq!(out.requests_to(BACKUP, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(BACKUP, Method::Bye).len(), 1);
    assert!(out.to(TRUNK).is_empty());
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn a_backup_that_never_responds_fails_on_timer_b() {
    let mut h = overflow_harness(60, 50, false);
    let (invite, _) = overflowing_call(&mut h, "o8", "");
    // Timer B (64·T1 = 32 s) ends the INVITE before the 50 s ring timeout.
    let out = h.advance(32_000);
    assert!(
        out.events.contains(&failed("no response")),
        "{:?}",
        out.events
    );
    assert_eq!(waiting_order(&h), ["o8"]);
    // A 2xx that still comes is ACKed and ended.
    let out = h.input(
        BACKUP,
        &backup_response(&invite, 200, "OK", Some(SDP_BACKUP)),
    );
    assert_eq!(out.requests_to(BACKUP, Method::Bye).len(), 1);
    assert!(out.to(TRUNK).is_empty());
}

#[test]
fn a_repeat_caller_is_flagged_to_operators_but_not_to_the_backup_centre() {
    let mut h = overflow_harness(60, 30, true);
    overflowing_call(&mut h, "o9a", "");
    h.input(TRUNK, &cancel_of(&trunk_invite("o9a")));
    let (invite, out) = overflowing_call(&mut h, "o9b", "");
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Queued { repeat: true, .. })),
        "{:?}",
        out.events
    );
    let from = String::from_utf8_lossy(&invite.header(HeaderName::From).expect("from").value())
        .into_owned();
    assert!(!from.contains("REPEAT"), "{from}");
    assert!(invite.header(HeaderName::AlertInfo).is_none());
}

/// `leg_loss`: the backup centre's leg failing mid-call (a BYE with a failure Reason, RFC
/// 3326) puts the caller back at the head, the backup paused; an available operator takes
/// the call without a second 2xx to the trunk.
#[test]
fn a_backup_leg_lost_mid_call_requeues_the_caller_for_an_operator() {
    let mut h = overflow_harness(60, 30, false);
    let (invite, _) = overflowing_call(&mut h, "o10", "");
    // PCMA, as the operator will answer (the trunk keeps the codec agreed, `leg_loss`).
    let (ok, ack) = backup_answers(&mut h, &invite, SDP_OPERATOR);
    h.register("1001", OP1);
    let bye = operator_bye(&ack).replace(OP1, BACKUP).replace(
        "Content-Length: 0",
        "Reason: SIP;cause=503\r\nContent-Length: 0",
    );
    let out = h.input(BACKUP, &bye);
    assert_eq!(out.statuses_to(BACKUP), [200]);
    assert!(out.to(TRUNK).is_empty(), "the caller stays connected");
    assert!(
        out.events
            .contains(&failed("mid-call: BYE with Reason SIP;cause=503")),
        "{:?}",
        out.events
    );
    assert!(out.requests_to(BACKUP, Method::Invite).is_empty(), "paused");
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    assert!(out.to(TRUNK).is_empty(), "no second 2xx to the trunk");
    assert_eq!(
        out.events,
        [CallEventKind::Answered {
            operator: "1001".to_owned()
        }]
    );
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "o10bye"));
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Caller,
        disposition: Disposition::Answered
    }));
}

/// A call re-queued after its operator's leg failed, with that operator in wrap-up (still
/// logged in) and nobody else: its caller was being served, so its overflow wait starts
/// again at the requeue — answered 25 s after arrival with `overflow_after_s = 20`, it is
/// not diverted the instant the leg drops, but 20 s later — and the backup's answer is
/// bridged without a second 2xx to the trunk.
#[test]
fn a_requeued_call_nobody_takes_overflows_and_ends_overflowed() {
    let mut h = overflow_harness(20, 30, false);
    let mut config = h.engine.config().clone();
    config.calls.acd.queues[0].wrap_up = Duration::from_secs(60);
    h.engine = Engine::with_seed(config, 11);
    let (ok, ack) = answered_call(&mut h, "o11", "");
    h.advance(25_000);
    let bye = operator_bye(&ack).replace(
        "Content-Length: 0",
        "Reason: SIP;cause=408\r\nContent-Length: 0",
    );
    let out = h.input(OP1, &bye);
    assert!(out.to(TRUNK).is_empty());
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Requeued { operator, .. } if operator == "1001")),
        "{:?}",
        out.events
    );
    assert!(
        out.requests_to(BACKUP, Method::Invite).is_empty(),
        "diverted at once, on the first arrival's clock"
    );
    assert_eq!(waiting_order(&h), ["o11"]);
    let out = h.advance(19_999);
    assert!(out.requests_to(BACKUP, Method::Invite).is_empty());
    let out = h.advance(1);
    assert_eq!(
        out.events,
        [CallEventKind::OverflowOffered {
            target: BACKUP_URI.to_owned()
        }]
    );
    let invite = out
        .requests_to(BACKUP, Method::Invite)
        .pop()
        .expect("diverted overflow_after_s after the requeue");
    // Only the codec the trunk agreed to (PCMA) is offered.
    let body = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(body.contains("RTP/AVP 8 101"), "{body}");
    let out = h.input(
        BACKUP,
        &backup_response(&invite, 200, "OK", Some(SDP_OPERATOR)),
    );
    assert!(out.to(TRUNK).is_empty(), "no second 2xx to the trunk");
    assert_eq!(out.requests_to(BACKUP, Method::Ack).len(), 1);
    assert_eq!(
        out.events,
        [CallEventKind::OverflowAnswered {
            target: BACKUP_URI.to_owned()
        }]
    );
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "o11bye"));
    assert_eq!(out.requests_to(BACKUP, Method::Bye).len(), 1);
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Caller,
        disposition: Disposition::Overflowed
    }));
}
