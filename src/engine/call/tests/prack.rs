//! RFC 3262 in virtual time: a trunk that requires or supports `100rel` gets reliable 180s
//! (Require, RSeq, resent with T1 doubling until the PRACK), PRACKs are matched by RAck,
//! and a late-offer INVITE gets siaga's offer in the reliable 180 and answers it in the
//! PRACK.

use super::*;

/// The trunk's PRACK of `provisional` (siaga's reliable 1xx) with RAck `rack`, CSeq `seq`.
fn prack(provisional: &SipMessage, seq: u32, rack: &str, branch: &str) -> String {
    trunk_in_dialog("PRACK", provisional, seq, branch).replace(
        "Content-Length: 0\r\n",
        &format!("RAck: {rack}\r\nContent-Length: 0\r\n"),
    )
}

/// The same PRACK carrying `sdp` (the answer to siaga's offer, RFC 3262 §5).
fn prack_with_sdp(provisional: &SipMessage, seq: u32, rack: &str, sdp: &str) -> String {
    prack(provisional, seq, rack, "prsdp").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    )
}

fn rseq(m: &SipMessage) -> u32 {
    hdr(m, HeaderName::RSeq).trim().parse().expect("RSeq")
}

/// The one 180 in `out` to the trunk.
fn ringing(out: &Out) -> SipMessage {
    let mut all: Vec<SipMessage> = out
        .to(TRUNK)
        .into_iter()
        .filter(|m| m.status() == Some(180))
        .collect();
    assert_eq!(all.len(), 1, "one 180");
    all.remove(0)
}

fn requires_100rel(m: &SipMessage) -> bool {
    m.option_tags(HeaderName::Require)
        .expect("Require")
        .iter()
        .any(|t| t == "100rel")
}

const SDP_TRUNK_ANSWER: &str = "v=0\r\no=trunk 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
const SDP_OPERATOR_PCMU: &str = "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// RFC 3262 §3: with `Require: 100rel` the 180 carries Require and an RSeq, is resent at
/// T1, 2·T1, 4·T1 … (no T2 cap) while no PRACK comes, and after 64·T1 siaga stops
/// resending but keeps the call (no 5xx: a 112 call is never rejected for a lost PRACK).
/// The periodic 180 at 30 s is skipped meanwhile: one unacknowledged at a time.
#[test]
fn a_reliable_180_is_resent_with_t1_doubling_then_given_up_without_rejecting() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite_with("r1", "Require: 100rel\r\n"));
    assert_eq!(out.statuses_to(TRUNK), [100, 180], "no 420");
    let first = ringing(&out);
    assert!(requires_100rel(&first));
    assert!((1..1u32 << 31).contains(&rseq(&first)), "RFC 3262 §3 range");
    assert!(
        first.body().is_empty(),
        "the INVITE had the offer: no SDP in the 180"
    );
    let trying = out.to(TRUNK).remove(0);
    assert!(
        trying.header(HeaderName::RSeq).is_none(),
        "the 100 is never reliable"
    );
    // Resent 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s after the first: gaps T1·2ⁿ.
    for gap in [500, 1_000, 2_000, 4_000, 8_000, 16_000] {
        assert!(
            h.advance(gap - 1).sent.is_empty(),
            "early resend before {gap}"
        );
        let out = h.advance(1);
        let again = ringing(&out);
        assert_eq!(
            again.as_bytes(),
            first.as_bytes(),
            "the same response, same RSeq"
        );
    }
    // 64·T1 = 32 s: no more resends, no final response, no refresh (one unacked at a time).
    let out = h.advance(60_000);
    assert!(
        out.statuses_to(TRUNK).is_empty(),
        "{:?}",
        out.statuses_to(TRUNK)
    );
    assert_eq!(h.engine.live_calls(), 1, "the call goes on");
    assert_eq!(h.engine.waiting_calls(), 1);
}

/// RFC 3262 §3: a PRACK whose RAck names the 180 (its RSeq, the INVITE's CSeq number and
/// method) draws 200 and stops the resends; the next periodic 180 is reliable with the
/// next RSeq. `Supported: 100rel` is enough to get reliable provisionals.
#[test]
fn a_matching_prack_draws_200_and_the_next_180_takes_the_next_rseq() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite_with("r2", "Supported: 100rel\r\n"));
    let first = ringing(&out);
    assert!(requires_100rel(&first));
    let n = rseq(&first);
    let out = h.input(TRUNK, &prack(&first, 2, &format!("{n} 1 INVITE"), "pr2"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    // The periodic 180 (30 s), reliable again with RSeq + 1; nothing before it.
    let out = h.advance(30_000);
    let second = ringing(&out);
    assert_eq!(rseq(&second), n + 1);
    let out = h.input(
        TRUNK,
        &prack(&second, 3, &format!("{} 1 INVITE", n + 1), "pr3"),
    );
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert!(
        h.advance(29_000).sent.is_empty(),
        "both PRACKed: nothing resent"
    );
}

/// RFC 3262 §3 and §7.2: a PRACK that matches no unacknowledged reliable provisional (other
/// RSeq, other CSeq number or method, or one already PRACKed) draws 481 and the 180 is
/// still resent; a PRACK without a readable RAck draws 400; PRACK outside any dialog 481.
#[test]
fn a_prack_with_an_unknown_rack_draws_481() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite_with("r3", "Require: 100rel\r\n"));
    let first = ringing(&out);
    let n = rseq(&first);
    for (i, rack) in [
        format!("{} 1 INVITE", n + 1),
        format!("{n} 2 INVITE"),
        format!("{n} 1 BYE"),
    ]
    .iter()
    .enumerate()
    {
        let out = h.input(
            TRUNK,
            &prack(&first, 2 + i as u32, rack, &format!("bad{i}")),
        );
        assert_eq!(out.statuses_to(TRUNK), [481], "RAck {rack}");
    }
    let out = h.input(TRUNK, &prack(&first, 5, "one 1 INVITE", "bad3"));
    assert_eq!(out.statuses_to(TRUNK), [400]);
    let no_rack = trunk_in_dialog("PRACK", &first, 6, "bad4");
    assert_eq!(h.input(TRUNK, &no_rack).statuses_to(TRUNK), [400]);
    // Still unacknowledged: resent at T1.
    assert_eq!(h.advance(500).statuses_to(TRUNK), [180]);
    let out = h.input(TRUNK, &prack(&first, 7, &format!("{n} 1 INVITE"), "good"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    // Acknowledged already: a new PRACK for it matches nothing.
    let out = h.input(TRUNK, &prack(&first, 8, &format!("{n} 1 INVITE"), "again"));
    assert_eq!(out.statuses_to(TRUNK), [481]);
    // Another dialog (unknown To tag), and no dialog at all (no To tag).
    let stray = prack(&first, 9, &format!("{n} 1 INVITE"), "stray");
    let other = stray.replace(
        &first.to().expect("to").tag().expect("tag").to_owned(),
        "nope",
    );
    assert_eq!(h.input(TRUNK, &other).statuses_to(TRUNK), [481]);
    let to = hdr(&first, HeaderName::To);
    let untagged = stray.replace(&to, "<sip:112@127.0.0.1:5060>");
    assert_eq!(h.input(TRUNK, &untagged).statuses_to(TRUNK), [481]);
}

/// siaga lists `100rel` in Supported and PRACK in Allow (RFC 3261 §11.2, RFC 3262 §3), and
/// without 100rel in the INVITE its 180 is sent once, unreliably.
#[test]
fn options_list_100rel_and_prack_and_plain_180s_stay_unreliable() {
    let mut h = Harness::new(15);
    let options = format!(
        "OPTIONS sip:{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bKopt\r\nMax-Forwards: 70\r\nFrom: <sip:trunk@trunk.test>;tag=o\r\nTo: <sip:{SIAGA}>\r\nCall-ID: opt\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let ok = h.input(TRUNK, &options).to(TRUNK).remove(0);
    assert!(hdr(&ok, HeaderName::Supported).contains("100rel"));
    assert!(ok.allow().expect("Allow").contains(&Method::Prack));
    let out = h.input(TRUNK, &trunk_invite("r4"));
    let plain = ringing(&out);
    assert!(plain.header(HeaderName::RSeq).is_none());
    assert!(plain.header(HeaderName::Require).is_none());
    assert!(h.advance(29_000).sent.is_empty(), "not resent");
    // Late offer with only `Supported: 100rel`: unreliable too (RFC 3262 §3 MAY, §5).
    let out = h.input(
        TRUNK,
        &without_body(&trunk_invite_with("r5", "Supported: 100rel\r\n")),
    );
    let late = ringing(&out);
    assert!(late.header(HeaderName::RSeq).is_none() && late.body().is_empty());
}

/// RFC 3262 §3: the 2xx may go out while the 180 (without SDP) is unacknowledged; the 180
/// is then no longer resent, and a PRACK for it still draws 200.
#[test]
fn the_2xx_stops_the_resends_and_a_late_prack_still_gets_200() {
    let mut h = Harness::new(15);
    let (out, ok, _) = answer_through_1001(&mut h, &trunk_invite_with("r6", "Require: 100rel\r\n"));
    let first = ringing(&out);
    assert_eq!(ok.status(), Some(200));
    assert!(
        String::from_utf8_lossy(ok.body()).contains("m=audio"),
        "the answer"
    );
    assert!(ok.allow().expect("Allow").contains(&Method::Prack));
    let out = h.advance(3_000);
    assert!(
        out.statuses_to(TRUNK).iter().all(|s| *s == 200),
        "only the 2xx is resent: {:?}",
        out.statuses_to(TRUNK)
    );
    let n = rseq(&first);
    let out = h.input(TRUNK, &prack(&ok, 2, &format!("{n} 1 INVITE"), "late"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "r6ack"));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 3, "r6bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
}

/// RFC 3262 §5: a late-offer INVITE that requires 100rel gets siaga's offer in the first
/// reliable 180, and its PRACK carries the trunk's answer. The operator is offered what
/// the trunk chose once the answer is in, and the 2xx carries no SDP (the exchange is done).
#[test]
fn a_late_offer_requiring_100rel_gets_the_offer_in_the_180_and_the_answer_in_the_prack() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(
        TRUNK,
        &without_body(&trunk_invite_with("r7", "Require: 100rel\r\n")),
    );
    let first = ringing(&out);
    let offer = String::from_utf8_lossy(first.body()).into_owned();
    assert!(offer.contains("RTP/AVP 8 0 101"), "siaga's offer: {offer}");
    assert!(
        out.requests_to(OP1, Method::Invite).is_empty(),
        "no operator before the trunk's answer"
    );
    let n = rseq(&first);
    let out = h.input(
        TRUNK,
        &prack_with_sdp(&first, 2, &format!("{n} 1 INVITE"), SDP_TRUNK_ANSWER),
    );
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: crate::engine::media::Side::Caller, rtp, .. }
            if *rtp == addr("127.0.0.1:6002")
    )));
    let invite = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("operator rung");
    let to_operator = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(
        to_operator.contains("RTP/AVP 0 101") && !to_operator.contains("PCMA"),
        "the trunk's choice: {to_operator}"
    );
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR_PCMU)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    assert_eq!(ok.status(), Some(200));
    assert!(
        ok.body().is_empty(),
        "offer/answer already done in 180/PRACK"
    );
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Answered { .. }))
    );
}

/// The same without a PRACK: after 64·T1 siaga stops waiting for the answer and offers
/// the call anyway (the module's documented deviation: a 112 call is never left unoffered).
#[test]
fn a_late_offer_whose_180_is_never_pracked_is_still_offered_after_64_t1() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(
        TRUNK,
        &without_body(&trunk_invite_with("r8", "Require: 100rel\r\n")),
    );
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    let out = h.advance(31_999);
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    let out = h.advance(1);
    assert_eq!(
        out.requests_to(OP1, Method::Invite).len(),
        1,
        "offered at 64*T1"
    );
    assert_eq!(h.engine.live_calls(), 1);
}
