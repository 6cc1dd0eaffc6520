//! Mid-call changes and session timers in virtual time: hold and resume from either side
//! across the B2BUA (RFC 3261 §14, RFC 3311, RFC 3264 §8), glare (§14.1), offer-less
//! re-INVITEs, in-dialog OPTIONS/INFO, and the trunk's session timer (RFC 4028).

use super::*;

/// The trunk's SDP at session version `version`, with `direction` and connection `ip`.
pub(super) fn trunk_sdp(version: u32, direction: &str, ip: &str) -> String {
    format!(
        "v=0\r\no=trunk 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na={direction}\r\n"
    )
}

/// The operator's SDP at session version `version`, with `direction`.
pub(super) fn operator_sdp(version: u32, direction: &str) -> String {
    format!(
        "v=0\r\no=op 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7002 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}

/// The trunk's hold: a re-INVITE with CSeq `seq` in the dialog of siaga's 2xx `ok`,
/// offering `a=sendonly` at session version `version`.
pub(super) fn hold_offer(ok: &SipMessage, seq: u32, version: u32, branch: &str) -> String {
    with(
        &trunk_in_dialog("INVITE", ok, seq, branch),
        "",
        Some(&trunk_sdp(version, "sendonly", "127.0.0.1")),
    )
}

/// `request` (ending in an empty body) with `headers` added and `sdp` as its body.
pub(super) fn with(request: &str, headers: &str, sdp: Option<&str>) -> String {
    let body = match sdp {
        Some(sdp) => format!(
            "{headers}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
        None => format!("{headers}Content-Length: 0\r\n\r\n"),
    };
    request.replace("Content-Length: 0\r\n\r\n", &body)
}

/// The operator's request in its dialog with siaga (`ack` is siaga's ACK of its 2xx).
pub(super) fn operator_in_dialog(method: &str, ack: &SipMessage, seq: u32, branch: &str) -> String {
    operator_bye(ack)
        .replace("BYE sip:", &format!("{method} sip:"))
        .replace("CSeq: 5 BYE", &format!("CSeq: {seq} {method}"))
        .replace("z9hG4bKopbye", &format!("z9hG4bK{branch}"))
}

/// The operator's `method` (INVITE or UPDATE) with CSeq `seq` carrying `offer` crosses to
/// the trunk as `method`, which answers it 200 with `answer`: siaga's request to the trunk
/// and what that 200 drew.
pub(super) fn operator_offer_answered(
    h: &mut Harness,
    ack: &SipMessage,
    (method, seq, branch): (Method, u32, &str),
    offer: &str,
    answer: &str,
) -> (SipMessage, Out) {
    let name = method.as_str().to_owned();
    let request = with(
        &operator_in_dialog(&name, ack, seq, branch),
        "",
        Some(offer),
    );
    let out = h.input(OP1, &request);
    let to_trunk = out.requests_to(TRUNK, method).pop().expect("crossed");
    let out = h.input(
        TRUNK,
        &phone_response(&to_trunk, 200, "OK", "x", Some(answer)),
    );
    (to_trunk, out)
}

pub(super) fn body(m: &SipMessage) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

pub(super) fn final_to(out: &Out, to: &str) -> SipMessage {
    out.to(to)
        .into_iter()
        .rfind(|m| m.status().is_some_and(|s| s >= 200))
        .expect("a final response")
}

#[test]
fn hold_and_resume_from_the_trunk_cross_to_the_operator() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(&mut h, "hold1", "");
    for (seq, version, direction, answered) in [
        (2, 2, "sendonly", "recvonly"),
        (3, 3, "sendrecv", "sendrecv"),
    ] {
        let reinvite = with(
            &trunk_in_dialog("INVITE", &ok, seq, &format!("hold1re{seq}")),
            "",
            Some(&trunk_sdp(version, direction, "127.0.0.1")),
        );
        let out = h.input(TRUNK, &reinvite);
        assert!(
            out.statuses_to(TRUNK).iter().all(|&s| s < 200),
            "no final response before the operator answered"
        );
        let to_op = out
            .requests_to(OP1, Method::Invite)
            .pop()
            .expect("re-INVITE");
        let offer = body(&to_op);
        assert!(offer.contains(&format!("a={direction}")), "{offer}");
        assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
        assert!(
            !offer.contains("m=audio 6000"),
            "the relay's port, not the trunk's"
        );
        assert_eq!(to_op.cseq().expect("cseq").seq, seq, "the leg's own CSeq");

        let out = h.input(
            OP1,
            &phone_response(
                &to_op,
                200,
                "OK",
                "op1",
                Some(&operator_sdp(version, answered)),
            ),
        );
        let ack = out
            .requests_to(OP1, Method::Ack)
            .pop()
            .expect("ACK to the operator");
        assert_eq!(ack.cseq().expect("cseq").seq, seq);
        let answer = final_to(&out, TRUNK);
        assert_eq!(answer.status(), Some(200));
        let sdp = body(&answer);
        assert!(sdp.contains(&format!("a={answered}")), "{sdp}");
        assert!(
            !sdp.contains("m=audio 7002"),
            "the relay's port, not the phone's"
        );
        assert!(out.events.iter().any(|e| matches!(
            e,
            CallEventKind::Renegotiated { by: Party::Caller, direction: d } if d == direction
        )));
        // The 2xx is resent until the trunk's ACK (§13.3.1.4), then no more.
        let out = h.advance(600);
        assert!(
            out.statuses_to(TRUNK).contains(&200),
            "resent without an ACK"
        );
        h.input(
            TRUNK,
            &trunk_in_dialog("ACK", &ok, seq, &format!("hold1ack{seq}")),
        );
        let out = h.advance(10_000);
        assert!(out.statuses_to(TRUNK).is_empty(), "no 2xx after the ACK");
    }
    assert_eq!(h.engine.live_calls(), 1, "the call goes on");
}

#[test]
fn legacy_hold_with_a_null_address_reaches_the_operator_as_sendonly() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(&mut h, "hold2", "");
    let reinvite = with(
        &trunk_in_dialog("INVITE", &ok, 2, "hold2re"),
        "",
        Some(&trunk_sdp(2, "sendrecv", "0.0.0.0")),
    );
    let out = h.input(TRUNK, &reinvite);
    let to_op = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("re-INVITE");
    let offer = body(&to_op);
    assert!(offer.contains("a=sendonly"), "{offer}");
    assert!(!offer.contains("0.0.0.0"), "{offer}");
    // The relay is not pointed at 0.0.0.0.
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "recvonly"))),
    );
    assert!(!out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { rtp, .. } if rtp.ip().is_unspecified()
    )));
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));
}

#[test]
fn hold_from_the_operator_crosses_to_the_trunk() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "hold3", "");
    let (to_trunk, out) = operator_offer_answered(
        &mut h,
        &ack,
        (Method::Invite, 2, "op3re"),
        &operator_sdp(2, "sendonly"),
        &trunk_sdp(2, "recvonly", "127.0.0.1"),
    );
    assert!(body(&to_trunk).contains("a=sendonly"));
    assert_eq!(
        to_trunk.call_id().expect("call-id"),
        ok.call_id().expect("call-id")
    );
    assert_eq!(
        out.requests_to(TRUNK, Method::Ack).len(),
        1,
        "siaga ACKs the trunk"
    );
    let answer = final_to(&out, OP1);
    assert_eq!(answer.status(), Some(200));
    assert!(body(&answer).contains("a=recvonly"));
    // A retransmitted 2xx from the trunk is ACKed again (§13.2.2.4).
    let out = h.input(
        TRUNK,
        &phone_response(
            &to_trunk,
            200,
            "OK",
            "x",
            Some(&trunk_sdp(2, "recvonly", "127.0.0.1")),
        ),
    );
    assert_eq!(out.requests_to(TRUNK, Method::Ack).len(), 1);
    assert!(out.to(OP1).is_empty(), "nothing new for the operator");
    // The operator's ACK stops siaga's 2xx.
    h.input(OP1, &operator_in_dialog("ACK", &ack, 2, "op3ack"));
    let out = h.advance(10_000);
    assert!(out.to(OP1).is_empty());
}

#[test]
fn an_update_crosses_as_update_only_where_the_peer_allows_it() {
    let mut h = Harness::new(15);
    // The trunk allows UPDATE; the operator's 2xx lists no Allow.
    let (ok, ack) = answered_call(
        &mut h,
        "upd1",
        "Allow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n",
    );
    let update = with(
        &trunk_in_dialog("UPDATE", &ok, 2, "upd1u"),
        "",
        Some(&trunk_sdp(2, "inactive", "127.0.0.1")),
    );
    let out = h.input(TRUNK, &update);
    let to_op = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("a re-INVITE instead");
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "inactive"))),
    );
    let answer = final_to(&out, TRUNK);
    assert_eq!(answer.cseq().expect("cseq").method, Method::Update);
    assert!(body(&answer).contains("a=inactive"));
    // From the operator, an offer in UPDATE reaches the trunk as UPDATE.
    let (_, out) = operator_offer_answered(
        &mut h,
        &ack,
        (Method::Update, 2, "upd1op"),
        &operator_sdp(3, "sendrecv"),
        &trunk_sdp(3, "sendrecv", "127.0.0.1"),
    );
    assert!(
        out.requests_to(TRUNK, Method::Ack).is_empty(),
        "no ACK for UPDATE"
    );
    assert_eq!(final_to(&out, OP1).status(), Some(200));
}

#[test]
fn requests_that_change_nothing_are_answered_by_siaga() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(&mut h, "same1", "");
    // The same session version: a refresh (RFC 3264 §8).
    let refresh = with(
        &trunk_in_dialog("INVITE", &ok, 2, "same1a"),
        "",
        Some(SDP_TRUNK),
    );
    let out = h.input(TRUNK, &refresh);
    let answer = final_to(&out, TRUNK);
    assert_eq!(answer.status(), Some(200));
    assert_eq!(body(&answer), body(&ok), "the same answer as before");
    assert!(out.to(OP1).is_empty());
    // No offer: siaga's description is the offer, the ACK carries the answer.
    let out = h.input(TRUNK, &trunk_in_dialog("INVITE", &ok, 3, "same1b"));
    let offer = final_to(&out, TRUNK);
    assert_eq!(offer.status(), Some(200));
    assert!(body(&offer).contains("m=audio"));
    assert!(out.to(OP1).is_empty());
    let ack = with(
        &trunk_in_dialog("ACK", &ok, 3, "same1c"),
        "",
        Some(&trunk_sdp(4, "sendrecv", "127.0.0.2")),
    );
    let out = h.input(TRUNK, &ack);
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: crate::engine::media::Side::Caller, rtp, .. }
            if rtp.ip().to_string() == "127.0.0.2"
    )));
    // An UPDATE without a body, in-dialog OPTIONS and INFO: 200.
    for (method, seq) in [("UPDATE", 5), ("OPTIONS", 6), ("INFO", 7)] {
        let out = h.input(
            TRUNK,
            &trunk_in_dialog(method, &ok, seq, &format!("same1{seq}")),
        );
        assert_eq!(out.statuses_to(TRUNK), [200], "{method}");
    }
    assert!(
        h.advance(5_000).to(OP1).is_empty(),
        "the operator heard nothing"
    );
}

#[test]
fn glare_draws_491_and_the_retry_goes_through() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "glare", "");
    let hold = |seq: u32, version: u32| {
        with(
            &trunk_in_dialog("INVITE", &ok, seq, &format!("glare{seq}")),
            "",
            Some(&trunk_sdp(version, "sendonly", "127.0.0.1")),
        )
    };
    let out = h.input(TRUNK, &hold(2, 2));
    let to_op = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("re-INVITE");
    // The operator's own re-INVITE crosses siaga's: 491 (§14.2).
    let theirs = with(
        &operator_in_dialog("INVITE", &ack, 2, "glareop"),
        "",
        Some(&operator_sdp(2, "sendonly")),
    );
    let out = h.input(OP1, &theirs);
    assert_eq!(out.statuses_to(OP1), [491]);
    // A second offer from the trunk while the first is open: 500 with Retry-After.
    let out = h.input(TRUNK, &hold(3, 3));
    let second = final_to(&out, TRUNK);
    assert_eq!(second.status(), Some(500));
    assert!(second.header(HeaderName::RetryAfter).is_some());
    // The operator refuses siaga's re-INVITE with 491: the trunk gets 491 ...
    let out = h.input(
        OP1,
        &phone_response(&to_op, 491, "Request Pending", "op1", None),
    );
    assert_eq!(final_to(&out, TRUNK).status(), Some(491));
    assert_eq!(
        out.requests_to(OP1, Method::Ack).len(),
        1,
        "the 491 is ACKed"
    );
    // ... and its retry after the back-off works.
    h.advance(2_500);
    let out = h.input(TRUNK, &hold(4, 4));
    let to_op = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("re-INVITE again");
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(3, "recvonly"))),
    );
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));
}

#[test]
fn an_offer_siaga_cannot_relay_draws_488_and_the_call_goes_on() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(&mut h, "g729", "");
    let g729 = "v=0\r\no=trunk 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let out = h.input(
        TRUNK,
        &with(&trunk_in_dialog("INVITE", &ok, 2, "g729re"), "", Some(g729)),
    );
    assert_eq!(final_to(&out, TRUNK).status(), Some(488));
    assert!(out.to(OP1).is_empty());
    assert_eq!(h.engine.live_calls(), 1);
}

#[test]
fn a_bye_while_an_offer_crosses_ends_the_call_and_answers_it_487() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "byex", "");
    let out = h.input(TRUNK, &hold_offer(&ok, 2, 2, "byexre"));
    assert_eq!(out.requests_to(OP1, Method::Invite).len(), 1);
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200]);
    assert!(out.statuses_to(TRUNK).contains(&487), "§15.1.2");
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    assert_eq!(h.engine.live_calls(), 0);
}

/// The operator's leg failed, not the call: the caller is re-queued (see `leg_loss`), and
/// the trunk's re-INVITE gets 500 with Retry-After, not a 408 that would end its dialog
/// (§14.1).
#[test]
fn an_operator_leg_that_stops_answering_a_re_invite_requeues_the_caller() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(&mut h, "dead", "");
    let out = h.input(TRUNK, &hold_offer(&ok, 2, 2, "deadre"));
    assert_eq!(out.requests_to(OP1, Method::Invite).len(), 1);
    // Timer B (64·T1) without any response.
    let out = h.advance(32_000);
    assert_eq!(final_to(&out, TRUNK).status(), Some(500));
    assert!(out.requests_to(TRUNK, Method::Bye).is_empty());
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Requeued { operator, .. } if operator == "1001"))
    );
    assert_eq!(h.engine.live_calls(), 1);
}

// ---- session timers (RFC 4028) ------------------------------------------------------------

#[test]
fn the_trunks_session_timer_is_answered_and_an_unrefreshed_session_ends() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(
        &mut h,
        "st1",
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
    );
    assert_eq!(hdr(&ok, HeaderName::SessionExpires), "90;refresher=uac");
    assert_eq!(hdr(&ok, HeaderName::Require), "timer");
    // A refresh by UPDATE within the interval keeps the call.
    let out = h.advance(50_000);
    assert!(out.requests_to(TRUNK, Method::Bye).is_empty());
    let refresh = with(
        &trunk_in_dialog("UPDATE", &ok, 2, "st1u"),
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
        None,
    );
    let out = h.input(TRUNK, &refresh);
    let answer = final_to(&out, TRUNK);
    assert_eq!(answer.status(), Some(200));
    assert_eq!(hdr(&answer, HeaderName::SessionExpires), "90;refresher=uac");
    let out = h.advance(50_000);
    assert!(out.requests_to(TRUNK, Method::Bye).is_empty(), "refreshed");
    // No refresh this time: at 90 − 30 s after the last one, BYE on both legs.
    let out = h.advance(15_000);
    assert!(!out.requests_to(TRUNK, Method::Bye).is_empty());
    assert!(!out.requests_to(OP1, Method::Bye).is_empty());
    assert!(out.events.contains(&CallEventKind::SessionExpired));
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Siaga,
        disposition: Disposition::Answered
    }));
    let _ = ack;
}

#[test]
fn a_session_interval_below_min_se_draws_422() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("st2").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSupported: timer\r\nSession-Expires: 60\r\n",
    );
    let out = h.input(TRUNK, &invite);
    let refusal = final_to(&out, TRUNK);
    assert_eq!(refusal.status(), Some(422));
    assert_eq!(hdr(&refusal, HeaderName::MinSe), "90");
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Siaga,
        disposition: Disposition::Failed
    }));
    // Without `Supported: timer` the interval is raised instead (RFC 4028 §9).
    let invite = trunk_invite("st3").replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nSession-Expires: 60\r\n",
    );
    let out = h.input(TRUNK, &invite);
    assert!(out.statuses_to(TRUNK).iter().all(|&s| s < 300));
}

#[test]
fn siaga_refreshes_when_it_is_the_refresher() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(
        &mut h,
        "st4",
        "Supported: timer\r\nSession-Expires: 120;refresher=uas\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    );
    assert_eq!(hdr(&ok, HeaderName::SessionExpires), "120;refresher=uas");
    for round in 0..3 {
        let out = h.advance(60_000);
        let update = out
            .requests_to(TRUNK, Method::Update)
            .pop()
            .unwrap_or_else(|| panic!("refresh {round} at half the interval"));
        assert_eq!(
            hdr(&update, HeaderName::SessionExpires),
            "120;refresher=uac"
        );
        assert!(update.body().is_empty());
        let reply = phone_response(&update, 200, "OK", "x", None).replace(
            "Content-Length: 0",
            "Session-Expires: 120;refresher=uac\r\nContent-Length: 0",
        );
        h.input(TRUNK, &reply);
    }
}

#[test]
fn a_trunk_without_update_is_refreshed_by_re_invite_and_silence_ends_the_call() {
    let mut h = Harness::new(15);
    let (ok, _ack) = answered_call(
        &mut h,
        "st5",
        "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\n",
    );
    let out = h.advance(45_000);
    let reinvite = out
        .requests_to(TRUNK, Method::Invite)
        .pop()
        .expect("re-INVITE refresh");
    assert_eq!(
        body(&reinvite),
        body(&ok),
        "the same description (RFC 3264 §8)"
    );
    // No answer at all: Timer B ends the call on both legs.
    let out = h.advance(40_000);
    assert!(!out.requests_to(OP1, Method::Bye).is_empty());
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn a_refresh_that_meets_glare_is_retried_within_two_seconds() {
    let mut h = Harness::new(15);
    answered_call(
        &mut h,
        "st6",
        "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n",
    );
    let out = h.advance(45_000);
    let update = out
        .requests_to(TRUNK, Method::Update)
        .pop()
        .expect("refresh");
    let out = h.input(
        TRUNK,
        &phone_response(&update, 491, "Request Pending", "x", None),
    );
    assert!(out.requests_to(TRUNK, Method::Update).is_empty());
    let out = h.advance(2_001);
    // One new request (its UDP retransmissions aside) after the 0–2 s back-off.
    let mut retries: Vec<u32> = out
        .requests_to(TRUNK, Method::Update)
        .iter()
        .map(|m| m.cseq().expect("cseq").seq)
        .collect();
    retries.dedup();
    assert_eq!(
        retries.len(),
        1,
        "one retry after the back-off: {retries:?}"
    );
    assert!(
        retries[0] > update.cseq().expect("cseq").seq,
        "a new request"
    );
    assert_eq!(h.engine.live_calls(), 1);
}

/// A re-INVITE siaga sends on a TCP dialog refreshes the peer's target for siaga
/// (§12.2.1.1): its Contact must keep `transport=tcp`, or the trunk's next request would
/// come over UDP.
#[test]
fn a_hold_crossing_to_a_tcp_trunk_carries_a_tcp_contact() {
    let mut h = Harness::new(15);
    let (_ok, ack) = answered_tcp_trunk_call(&mut h, "tcphold");
    let reinvite = with(
        &operator_in_dialog("INVITE", &ack, 2, "tcpholdre"),
        "",
        Some(&operator_sdp(2, "sendonly")),
    );
    let out = h.input(OP1, &reinvite);
    let to_trunk = out
        .sent
        .iter()
        .filter(|t| t.connection.is_some() || t.transport == Transport::Tcp)
        .map(|t| SipMessage::parse(t.bytes.clone(), Transport::Tcp).expect("parseable"))
        .find(|m| m.method() == Some(&Method::Invite))
        .expect("a re-INVITE to the trunk over TCP");
    let contact = hdr(&to_trunk, HeaderName::Contact);
    assert!(contact.contains("transport=tcp"), "{contact}");
}
