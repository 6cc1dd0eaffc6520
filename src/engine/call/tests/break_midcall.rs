//! Break tests of the mid-call work (RFC 3261 §12–§15, §17.2.1; RFC 3264 §8; RFC 3311;
//! RFC 4028; RFC 5407): hostile timing and odd-but-legal peers against re-INVITE/UPDATE
//! across the B2BUA, session timers and dialog matching. Each test asserts what the RFC
//! requires; each one that failed names the bug in its doc comment.

use super::midcall::{
    body, final_to, hold_offer, operator_in_dialog, operator_sdp, trunk_sdp, with,
};
use super::*;

/// An INVITE's session-timer terms (RFC 4028): a 90 s interval the trunk refreshes.
const TRUNK_REFRESHES: &str = "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n";
/// A 90 s interval siaga refreshes, by re-INVITE (the trunk lists no UPDATE).
const SIAGA_REFRESHES: &str = "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\n";
/// A 90 s interval siaga refreshes, by UPDATE.
const SIAGA_REFRESHES_BY_UPDATE: &str =
    "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n";

/// The trunk's ACK of siaga's 2xx to the INVITE or re-INVITE with CSeq `seq`.
fn trunk_ack(ok: &SipMessage, seq: u32, branch: &str) -> String {
    trunk_in_dialog("ACK", ok, seq, branch)
}

/// `trunk_invite(id)` carrying `sdp` instead of the usual offer.
fn trunk_invite_sdp(id: &str, sdp: &str) -> String {
    trunk_invite(id).replace(
        &format!("Content-Length: {}\r\n\r\n{SDP_TRUNK}", SDP_TRUNK.len()),
        &format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()),
    )
}

/// The `m=` lines of an SDP body, in order.
fn m_lines(m: &SipMessage) -> Vec<String> {
    body(m)
        .lines()
        .filter(|l| l.starts_with("m="))
        .map(str::to_owned)
        .collect()
}

/// The trunk's 2xx to siaga's `request` with `headers` and `sdp` (its Contact unchanged).
fn trunk_ok(request: &SipMessage, headers: &str, sdp: Option<&str>) -> String {
    phone_response(request, 200, "OK", "x", sdp).replacen("\r\n", &format!("\r\n{headers}"), 1)
}

/// The operator holds: its re-INVITE, and siaga's re-INVITE to the trunk it causes.
fn operator_holds(h: &mut Harness, ack: &SipMessage, seq: u32, branch: &str) -> SipMessage {
    let hold = with(
        &operator_in_dialog("INVITE", ack, seq, branch),
        "",
        Some(&operator_sdp(seq, "sendonly")),
    );
    let out = h.input(OP1, &hold);
    out.requests_to(TRUNK, Method::Invite)
        .pop()
        .expect("the hold crosses to the trunk")
}

/// The trunk answers siaga's `hold` (from [`operator_holds`]) with 2xx carrying `headers`,
/// and the operator ACKs siaga's 2xx (`ack`: siaga's ACK to the operator's first 2xx).
fn trunk_answers_hold(h: &mut Harness, hold: &SipMessage, headers: &str, ack: &SipMessage) {
    let answer = trunk_sdp(2, "recvonly", "127.0.0.1");
    let out = h.input(TRUNK, &trunk_ok(hold, headers, Some(&answer)));
    let ok = final_to(&out, OP1);
    assert_eq!(ok.status(), Some(200));
    let seq = ok.cseq().expect("cseq").seq;
    h.input(
        OP1,
        &operator_in_dialog("ACK", ack, seq, &format!("ack{seq}")),
    );
}

// ---- 2xx retransmission and its ACK (RFC 3261 §13.3.1.4) ------------------------------------

/// Bug: an ACK is matched to siaga's pending 2xx by dialog only, not by CSeq. A late
/// duplicate of the ACK of the first 2xx (CSeq 1) arriving after siaga answered a
/// re-INVITE (CSeq 2) stopped the retransmission of that re-INVITE's 2xx; had the
/// trunk's own ACK for CSeq 2 been lost, nothing would ever recover it. §13.3.1.4: the
/// 2xx is retransmitted "until an ACK is received" for it — the ACK with its CSeq
/// number (§13.2.2.4).
#[test]
fn a_late_duplicate_ack_of_the_first_2xx_does_not_stop_a_re_invites_2xx() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "lateack", "");
    // An offer-less re-INVITE: siaga's 2xx carries an offer, resent until the ACK.
    let out = h.input(TRUNK, &trunk_in_dialog("INVITE", &ok, 2, "lateackre"));
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));
    // The network delivers the first ACK (CSeq 1) a second time, late.
    h.input(TRUNK, &trunk_ack(&ok, 1, "lateackack"));
    let out = h.advance(600);
    let resent: Vec<_> = out
        .to(TRUNK)
        .into_iter()
        .filter(|m| m.status() == Some(200))
        .collect();
    assert_eq!(resent.len(), 1, "the re-INVITE's 2xx is still resent at T1");
    assert_eq!(resent[0].cseq().expect("cseq").seq, 2);
    // Its own ACK stops it.
    h.input(TRUNK, &trunk_ack(&ok, 2, "lateackack2"));
    assert!(h.advance(10_000).to(TRUNK).is_empty());
}

/// Bug: the 64·T1 give-up timer of a 2xx (§13.3.1.4) is not tied to that 2xx. The first
/// 2xx's timer, still armed after its ACK, fired 32 s later while a re-INVITE's 2xx sent
/// a moment before was waiting for its ACK, and ended an answered emergency call with BYE.
#[test]
fn the_give_up_timer_of_an_acked_2xx_does_not_end_a_later_re_invite() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "oldtimer", "");
    // 31.5 s after the first 2xx (ACKed at once), the trunk sends an offer-less re-INVITE.
    h.advance(31_500);
    let out = h.input(TRUNK, &trunk_in_dialog("INVITE", &ok, 2, "oldtimerre"));
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));
    // Its ACK is lost once; the 2xx is resent and the ACK comes 1.5 s later.
    let out = h.advance(1_500);
    assert!(
        out.requests_to(TRUNK, Method::Bye).is_empty()
            && out.requests_to(OP1, Method::Bye).is_empty(),
        "the call is not ended 32 s after the *first* 2xx"
    );
    h.input(TRUNK, &trunk_ack(&ok, 2, "oldtimerack"));
    assert_eq!(h.engine.live_calls(), 1);
    assert!(h.advance(60_000).requests_to(TRUNK, Method::Bye).is_empty());
}

/// Bug: a re-INVITE that crosses to the operator got no provisional response. siaga
/// cannot know the phone answers within 200 ms, so §17.2.1 requires a 100 (Trying);
/// without it the trunk retransmits the re-INVITE over UDP and gets nothing back.
#[test]
fn a_re_invite_that_waits_on_the_operator_draws_100_trying() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "trying", "");
    let reinvite = hold_offer(&ok, 2, 2, "tryingre");
    let out = h.input(TRUNK, &reinvite);
    assert_eq!(out.statuses_to(TRUNK), [100]);
    assert_eq!(out.requests_to(OP1, Method::Invite).len(), 1);
    // A retransmission is absorbed: the 100 again, no second re-INVITE to the phone.
    let out = h.input(TRUNK, &reinvite);
    assert_eq!(out.statuses_to(TRUNK), [100]);
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
}

// ---- the early dialog (RFC 3261 §14.2, RFC 3311 §5.2) ---------------------------------------

/// Bug: an offer in the early dialog drew 488. siaga has not answered the INVITE's offer
/// yet: a re-INVITE then MUST draw 500 with Retry-After (§14.2), and so MUST an UPDATE
/// with an offer (RFC 3311 §5.2); an UPDATE without an offer is no offer to refuse.
#[test]
fn offers_in_the_early_dialog_draw_500_with_retry_after() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite("early"));
    let ringing = out
        .to(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(180))
        .expect("180");
    for (method, seq) in [("INVITE", 2), ("UPDATE", 3)] {
        let offer = with(
            &trunk_in_dialog(method, &ringing, seq, &format!("early{seq}")),
            "",
            Some(&trunk_sdp(2, "sendrecv", "127.0.0.1")),
        );
        let answer = final_to(&h.input(TRUNK, &offer), TRUNK);
        assert_eq!(answer.status(), Some(500), "{method}");
        assert!(
            answer.header(HeaderName::RetryAfter).is_some(),
            "{method}: Retry-After"
        );
    }
    let update = trunk_in_dialog("UPDATE", &ringing, 4, "early4");
    assert_eq!(h.input(TRUNK, &update).statuses_to(TRUNK), [200]);
    assert_eq!(h.engine.live_calls(), 1, "the call waits on");
}

// ---- dialog matching (RFC 3261 §12.2.2) ------------------------------------------------------

/// Bug: requests are matched to a dialog by Call-ID and siaga's tag only. The dialog ID
/// holds the remote tag too (§12, §12.2.2): a BYE with the call's Call-ID and siaga's To
/// tag but another From tag is not in the dialog and draws 481 — it must not hang up an
/// emergency call (in the queue or answered).
#[test]
fn a_request_with_another_from_tag_is_not_in_the_dialog() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite("tagq"));
    let ringing = out
        .to(TRUNK)
        .into_iter()
        .find(|m| m.status() == Some(180))
        .expect("180");
    let bye = trunk_in_dialog("BYE", &ringing, 2, "tagqbye").replace("tag=trtagq", "tag=other");
    assert_eq!(h.input(TRUNK, &bye).statuses_to(TRUNK), [481]);
    assert_eq!(h.engine.waiting_calls(), 1, "still queued");

    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "tagx", "");
    let bye = trunk_in_dialog("BYE", &ok, 2, "tagxbye").replace("tag=trtagx", "tag=other");
    let out = h.input(TRUNK, &bye);
    assert_eq!(out.statuses_to(TRUNK), [481]);
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
    let reinvite = with(
        &trunk_in_dialog("INVITE", &ok, 3, "tagxre").replace("tag=trtagx", "tag=other"),
        "",
        Some(&trunk_sdp(2, "sendonly", "127.0.0.1")),
    );
    let out = h.input(TRUNK, &reinvite);
    assert_eq!(final_to(&out, TRUNK).status(), Some(481));
    assert!(out.to(OP1).is_empty());
    assert_eq!(h.engine.live_calls(), 1);
}

/// Bug: a target refresh was ignored. A re-INVITE's Contact replaces the dialog's remote
/// target (§12.2.2: MUST): the trunk moved to another gateway, so siaga's BYE goes to the
/// new Contact, not the one of the first INVITE.
#[test]
fn a_re_invite_with_a_new_contact_moves_the_trunk_dialogs_target() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "moved", "");
    let moved = "127.0.0.1:5097";
    let reinvite = with(
        &trunk_in_dialog("INVITE", &ok, 2, "movedre"),
        &format!("Contact: <sip:gw2@{moved}>\r\n"),
        None,
    );
    let out = h.input(TRUNK, &reinvite);
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));
    h.input(TRUNK, &trunk_ack(&ok, 2, "movedack"));
    operator_hangs_up_and_bye_reaches(&mut h, &ack, &format!("sip:gw2@{moved}"));
}

/// The operator hangs up (`ack`: siaga's ACK of its 2xx): siaga's BYE to the trunk goes to
/// `target`, an IP-literal SIP URI, as its Request-URI and its address.
fn operator_hangs_up_and_bye_reaches(h: &mut Harness, ack: &SipMessage, target: &str) {
    let at = target.rsplit('@').next().expect("user@host:port");
    let out = h.input(OP1, &operator_bye(ack));
    let bye = out
        .requests_to(at, Method::Bye)
        .pop()
        .expect("the BYE goes to the new target");
    assert_eq!(bye.request_uri_raw(), Some(target));
}

// ---- what offers hold (RFC 3264 §8) ----------------------------------------------------------

/// Bug: siaga's later offers to the trunk always held one `m=audio` line. RFC 3264 §8: a
/// new offer keeps every `m=` line of the previous SDP in its order (a stream not used
/// stays, with port 0). The trunk offered video then audio; siaga answered both lines,
/// then put the operator's hold in an offer whose first (only) line is audio — the
/// trunk matches it to its video stream.
#[test]
fn siagas_later_offers_to_the_trunk_keep_its_m_lines_in_order() {
    let mut h = Harness::new(15);
    let sdp = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let (ok, ack) = answered_call_with(&mut h, "mlines", &trunk_invite_sdp("mlines", sdp));
    let answered = m_lines(&ok);
    assert_eq!(answered.len(), 2);
    assert!(answered[0].starts_with("m=video 0 "), "{answered:?}");

    let to_trunk = operator_holds(&mut h, &ack, 2, "mlineshold");
    let offered = m_lines(&to_trunk);
    assert_eq!(
        offered.len(),
        2,
        "every m= line of the previous SDP: {offered:?}"
    );
    assert!(offered[0].starts_with("m=video 0 "), "{offered:?}");
    assert!(offered[1].starts_with("m=audio "), "{offered:?}");
    assert!(body(&to_trunk).contains("a=sendonly"));
}

/// Bug: a re-INVITE moving the trunk's media to IPv6 crossed to the operator and the
/// relay (an IPv4 socket) was pointed at the IPv6 address: audio lost for the rest of the
/// call. The INVITE is refused 488 for this (Warning 301); a later offer must be too, the
/// session going on as before (RFC 3264 §8).
#[test]
fn a_re_invite_moving_media_to_another_address_family_is_refused() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "v6re", "");
    let v6 = trunk_sdp(2, "sendrecv", "::1").replace("c=IN IP4 ::1", "c=IN IP6 ::1");
    let out = h.input(
        TRUNK,
        &with(&trunk_in_dialog("INVITE", &ok, 2, "v6rere"), "", Some(&v6)),
    );
    let refusal = final_to(&out, TRUNK);
    assert_eq!(refusal.status(), Some(488));
    assert!(hdr(&refusal, HeaderName::Warning).starts_with("301 "));
    assert!(out.to(OP1).is_empty(), "nothing crosses");
    assert!(!out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { rtp, .. } if rtp.is_ipv6()
    )));
    assert_eq!(h.engine.live_calls(), 1);
}

/// Bug: an offer was taken as "unchanged" on its `o=` version alone. The origin
/// (username, sess-id, address) names the session (RFC 4566 §5.2); an SBC that failed over
/// writes a new sess-id whose version may well equal the old one. siaga answered such a
/// re-INVITE with the old answer and kept sending RTP to the old address.
#[test]
fn a_new_session_origin_with_the_same_version_is_a_change() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "neworigin", "");
    let failover = trunk_sdp(1, "sendrecv", "127.0.0.5").replace("o=trunk 1 1", "o=sbc2 77 1");
    let out = h.input(
        TRUNK,
        &with(
            &trunk_in_dialog("INVITE", &ok, 2, "neworiginre"),
            "",
            Some(&failover),
        ),
    );
    let to_op = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("a new description crosses to the operator");
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "sendrecv"))),
    );
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: crate::engine::media::Side::Caller, rtp, .. }
            if *rtp == addr("127.0.0.5:6000")
    )));
}

// ---- session timers across re-INVITEs (RFC 4028) -------------------------------------------

/// Bug: a successful re-INVITE siaga sent the trunk did not count as a session refresh.
/// RFC 4028 §2 ("Session Refresh Request"), §7.2, §10: any 2xx to a re-INVITE or UPDATE
/// restarts the session interval, on both sides. The trunk (the refresher) restarts from
/// the 2xx it sent to siaga's hold and refreshes half an interval later; siaga kept its
/// old expiry and hung up the emergency call before that refresh came.
#[test]
fn a_hold_answered_by_the_trunk_refreshes_the_session() {
    let mut h = Harness::new(15);
    let (_ok, ack) = answered_call(&mut h, "strelay", TRUNK_REFRESHES);
    h.advance(40_000);
    let to_trunk = operator_holds(&mut h, &ack, 2, "strelayhold");
    assert_eq!(
        hdr(&to_trunk, HeaderName::SessionExpires),
        "90;refresher=uas",
        "the running interval, the trunk refreshing (RFC 4028 §7.4)"
    );
    // The trunk, refresher, answers with the terms and refreshes 45 s after its 2xx.
    let terms = "Require: timer\r\nSession-Expires: 90;refresher=uas\r\n";
    trunk_answers_hold(&mut h, &to_trunk, terms, &ack);
    let out = h.advance(44_000);
    assert!(
        out.requests_to(TRUNK, Method::Bye).is_empty(),
        "the session was refreshed 44 s ago"
    );
    assert!(!out.events.contains(&CallEventKind::SessionExpired));
    assert_eq!(h.engine.live_calls(), 1);
    // The timer still runs: without that refresh, the session ends 60 s after the 2xx.
    let out = h.advance(20_000);
    assert!(out.events.contains(&CallEventKind::SessionExpired));
}

/// Bug (the same): a 2xx to siaga's re-INVITE without Session-Expires turns the session
/// timer off (RFC 4028 §7.2: "there is no session expiration"); siaga kept expecting the
/// trunk's refreshes and ended the call.
#[test]
fn a_2xx_without_session_expires_to_siagas_re_invite_turns_the_timer_off() {
    let mut h = Harness::new(15);
    let (_ok, ack) = answered_call(&mut h, "stoff", TRUNK_REFRESHES);
    h.advance(10_000);
    let to_trunk = operator_holds(&mut h, &ack, 2, "stoffhold");
    trunk_answers_hold(&mut h, &to_trunk, "", &ack);
    let out = h.advance(300_000);
    assert!(out.requests_to(TRUNK, Method::Bye).is_empty());
    assert_eq!(h.engine.live_calls(), 1);
}

/// Bug: while siaga's session refresh (a re-INVITE: the trunk lacks UPDATE) was pending,
/// the operator's hold made siaga send the trunk a second re-INVITE. §14.1: a UAC MUST NOT
/// start an INVITE transaction in a dialog while another is in progress; the operator is
/// answered 491 and retries.
#[test]
fn no_second_re_invite_to_the_trunk_while_a_refresh_is_pending() {
    let mut h = Harness::new(15);
    let (_ok, ack) = answered_call(&mut h, "strace", SIAGA_REFRESHES);
    let out = h.advance(45_000);
    assert_eq!(out.requests_to(TRUNK, Method::Invite).len(), 1, "refresh");
    let hold = with(
        &operator_in_dialog("INVITE", &ack, 2, "stracehold"),
        "",
        Some(&operator_sdp(2, "sendonly")),
    );
    let out = h.input(OP1, &hold);
    assert!(
        out.requests_to(TRUNK, Method::Invite).is_empty(),
        "one INVITE transaction at a time toward the trunk"
    );
    assert_eq!(final_to(&out, OP1).status(), Some(491));
}

/// Bug: a refresh due while an offer crossed to the trunk was put off by half an
/// interval, counting on that offer's 2xx to refresh the session. When the trunk refused
/// the offer (491 here), the next refresh was due after the trunk's own expiry check
/// (RFC 4028 §10: interval − min(32 s, interval/3) after the last refresh), so the trunk
/// would hang up. The refresher must refresh before that.
#[test]
fn a_refresh_put_off_by_a_crossing_offer_still_comes_before_expiry() {
    let mut h = Harness::new(15);
    let (_ok, ack) = answered_call(&mut h, "stput", SIAGA_REFRESHES_BY_UPDATE);
    h.advance(44_000);
    let to_trunk = operator_holds(&mut h, &ack, 2, "stputhold");
    let out = h.advance(2_000);
    assert!(
        out.requests_to(TRUNK, Method::Update).is_empty(),
        "no refresh while the offer is open"
    );
    let out = h.input(
        TRUNK,
        &phone_response(&to_trunk, 491, "Request Pending", "x", None),
    );
    assert_eq!(final_to(&out, OP1).status(), Some(491));
    // The trunk expects a refresh by 60 s after the session started.
    let out = h.advance(13_000);
    let mut refreshes: Vec<u32> = out
        .requests_to(TRUNK, Method::Update)
        .iter()
        .map(|m| m.cseq().expect("cseq").seq)
        .collect();
    refreshes.dedup();
    assert_eq!(
        refreshes.len(),
        1,
        "one refresh (and its retransmissions) before the trunk's expiry"
    );
}

/// Bug: a trunk that lists UPDATE but refuses it (405/501) for the refresh was not
/// refreshed again until half an interval later — after its expiry check (RFC 4028
/// §10). siaga falls back to a re-INVITE (§7.4: either method refreshes) at once.
#[test]
fn an_update_refresh_refused_falls_back_to_re_invite() {
    let mut h = Harness::new(15);
    answered_call(&mut h, "st405", SIAGA_REFRESHES_BY_UPDATE);
    let out = h.advance(45_000);
    let update = out
        .requests_to(TRUNK, Method::Update)
        .pop()
        .expect("refresh");
    let out = h.input(
        TRUNK,
        &phone_response(&update, 501, "Not Implemented", "x", None),
    );
    let reinvite = out
        .requests_to(TRUNK, Method::Invite)
        .pop()
        .expect("a re-INVITE refresh at once");
    assert_eq!(
        hdr(&reinvite, HeaderName::SessionExpires),
        "90;refresher=uac"
    );
}

/// Bug: the trunk's answer to siaga's refresh re-INVITE was dropped. A re-INVITE refresh
/// carries an offer (siaga's description as before); the 2xx's SDP is the answer (RFC
/// 3264 §8) and where the trunk now receives RTP must reach the relay.
#[test]
fn the_answer_to_a_refresh_re_invite_moves_the_relay() {
    let mut h = Harness::new(15);
    answered_call(&mut h, "stsdp", SIAGA_REFRESHES);
    let out = h.advance(45_000);
    let reinvite = out
        .requests_to(TRUNK, Method::Invite)
        .pop()
        .expect("re-INVITE refresh");
    let moved = trunk_sdp(2, "sendrecv", "127.0.0.3").replace("m=audio 6000", "m=audio 6002");
    let out = h.input(
        TRUNK,
        &trunk_ok(
            &reinvite,
            "Require: timer\r\nSession-Expires: 90;refresher=uac\r\n",
            Some(&moved),
        ),
    );
    assert!(
        out.media.iter().any(|m| matches!(
            m,
            MediaCommand::SetPeer { side: crate::engine::media::Side::Caller, rtp, .. }
                if *rtp == addr("127.0.0.3:6002")
        )),
        "{:?}",
        out.media
    );
}

/// Bug: the Contact of a 2xx to siaga's re-INVITE was ignored. §12.2.1.2: it replaces
/// the dialog's remote target (MUST); the trunk moved, so the BYE goes to the new one.
#[test]
fn a_2xx_with_a_new_contact_moves_the_dialogs_target() {
    let mut h = Harness::new(15);
    let (_ok, ack) = answered_call(&mut h, "moved2", "");
    let to_trunk = operator_holds(&mut h, &ack, 2, "moved2hold");
    let moved = "127.0.0.1:5096";
    let ok = phone_response(
        &to_trunk,
        200,
        "OK",
        "x",
        Some(&trunk_sdp(2, "recvonly", "127.0.0.1")),
    )
    .replace(
        &format!("Contact: <sip:gw@{TRUNK}>"),
        &format!("Contact: <sip:gw3@{moved}>"),
    );
    let out = h.input(TRUNK, &ok);
    let seq = final_to(&out, OP1).cseq().expect("cseq").seq;
    h.input(OP1, &operator_in_dialog("ACK", &ack, seq, "moved2ack"));
    operator_hangs_up_and_bye_reaches(&mut h, &ack, &format!("sip:gw3@{moved}"));
}

/// Bug: an UPDATE with an offer while siaga's own offer (in its 2xx to an offer-less
/// re-INVITE) awaited its answer (in the ACK) crossed the call. RFC 3311 §5.2: the UAS
/// MUST answer 491. It happens when the network reorders the trunk's ACK and UPDATE.
#[test]
fn an_update_offer_before_the_ack_with_the_answer_draws_491() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "updack", "");
    let out = h.input(TRUNK, &trunk_in_dialog("INVITE", &ok, 2, "updackre"));
    assert!(body(&final_to(&out, TRUNK)).contains("m=audio"), "an offer");
    let update = with(
        &trunk_in_dialog("UPDATE", &ok, 3, "updacku"),
        "",
        Some(&trunk_sdp(3, "sendonly", "127.0.0.1")),
    );
    let out = h.input(TRUNK, &update);
    assert_eq!(final_to(&out, TRUNK).status(), Some(491));
    assert!(out.to(OP1).is_empty());
}

/// Bug: a re-INVITE requiring an extension siaga lacks crossed the call. §8.2.2.3 holds
/// for requests in a dialog too: 420 with Unsupported.
#[test]
fn a_re_invite_requiring_an_unknown_extension_draws_420() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "req420", "");
    let reinvite = with(
        &trunk_in_dialog("INVITE", &ok, 2, "req420re"),
        "Require: foo\r\n",
        Some(&trunk_sdp(2, "sendonly", "127.0.0.1")),
    );
    let out = h.input(TRUNK, &reinvite);
    let refusal = final_to(&out, TRUNK);
    assert_eq!(refusal.status(), Some(420));
    assert_eq!(hdr(&refusal, HeaderName::Unsupported), "foo");
    assert!(out.to(OP1).is_empty());
}

// ---- the end of a call (RFC 5407 §3.2) ---------------------------------------------------

/// Bug: the operator's BYE crossing siaga's (sent because the caller hung up) drew 481.
/// RFC 5407 §3.2.1 (and issue 4): a dialog lives until the BYE siaga sent is answered; a
/// BYE arriving meanwhile is answered 200.
#[test]
fn crossing_byes_both_get_200() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "byebye", "");
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "byebyet"));
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200]);
}

/// Bug: a 2xx to siaga's re-INVITE that arrived after the call ended (the caller hung up
/// meanwhile) was not ACKed. §13.2.2.4: the UAC core MUST ACK every 2xx; RFC 5407 §3.2.4.
#[test]
fn a_2xx_to_a_re_invite_after_the_call_ended_is_still_acked() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "lateok", "");
    let to_trunk = operator_holds(&mut h, &ack, 2, "lateokhold");
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    let out = h.input(
        TRUNK,
        &trunk_ok(&to_trunk, "", Some(&trunk_sdp(2, "recvonly", "127.0.0.1"))),
    );
    let acks = out.requests_to(TRUNK, Method::Ack);
    assert_eq!(acks.len(), 1, "the 2xx is ACKed");
    assert_eq!(
        acks[0].cseq().expect("cseq").seq,
        to_trunk.cseq().expect("cseq").seq
    );
    assert_eq!(acks[0].call_id(), ok.call_id());
}

// ---- what held --------------------------------------------------------------------------------

/// Held: a CANCEL of a re-INVITE that crosses the call draws 200 with the dialog's To tag,
/// and the re-INVITE still gets a final response; the call goes on (RFC 3261 §9.2).
#[test]
fn a_cancel_of_a_crossing_re_invite_leaves_the_call_up() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "cxre", "");
    let reinvite = hold_offer(&ok, 2, 2, "cxrere");
    let out = h.input(TRUNK, &reinvite);
    let to_op = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("re-INVITE");
    let cancel = trunk_in_dialog("CANCEL", &ok, 2, "cxrere");
    let out = h.input(TRUNK, &cancel);
    let cancelled = final_to(&out, TRUNK);
    assert_eq!(cancelled.status(), Some(200));
    assert_eq!(
        cancelled.to().expect("to").tag(),
        ok.to().expect("to").tag()
    );
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "recvonly"))),
    );
    let mut finals: Vec<u16> = out.statuses_to(TRUNK);
    finals.extend(h.advance(1_000).statuses_to(TRUNK));
    assert!(
        finals.iter().any(|&s| s >= 200),
        "the re-INVITE is answered"
    );
    assert_eq!(h.engine.live_calls(), 1);
}

/// Held: 100 holds and resumes from both sides, each answered and ACKed, leave no state
/// behind once the transactions' timers ran out: no client or server transaction, no
/// in-dialog request, no call timer but the session's.
#[test]
fn a_hundred_holds_and_resumes_leave_no_state_behind() {
    let mut h = Harness::new(15);
    let (ok, ack) = answered_call(&mut h, "many", "");
    let mut seq = 1;
    for round in 0..100u32 {
        seq += 1;
        let direction = if round % 2 == 0 {
            "sendonly"
        } else {
            "sendrecv"
        };
        if round % 4 < 2 {
            let reinvite = with(
                &trunk_in_dialog("INVITE", &ok, seq, &format!("many{round}")),
                "",
                Some(&trunk_sdp(seq, direction, "127.0.0.1")),
            );
            let out = h.input(TRUNK, &reinvite);
            let to_op = out.requests_to(OP1, Method::Invite).pop().expect("crosses");
            let answer = operator_sdp(
                seq,
                if round % 2 == 0 {
                    "recvonly"
                } else {
                    "sendrecv"
                },
            );
            let out = h.input(
                OP1,
                &phone_response(&to_op, 200, "OK", "op1", Some(&answer)),
            );
            assert_eq!(final_to(&out, TRUNK).status(), Some(200), "round {round}");
            h.input(TRUNK, &trunk_ack(&ok, seq, &format!("manyack{round}")));
        } else {
            let reinvite = with(
                &operator_in_dialog("INVITE", &ack, seq, &format!("many{round}")),
                "",
                Some(&operator_sdp(seq, direction)),
            );
            let out = h.input(OP1, &reinvite);
            let to_trunk = out
                .requests_to(TRUNK, Method::Invite)
                .pop()
                .expect("crosses");
            let answer = trunk_sdp(seq, "sendrecv", "127.0.0.1");
            let out = h.input(TRUNK, &trunk_ok(&to_trunk, "", Some(&answer)));
            assert_eq!(final_to(&out, OP1).status(), Some(200), "round {round}");
            h.input(
                OP1,
                &operator_in_dialog("ACK", &ack, seq, &format!("manyack{round}")),
            );
        }
        h.advance(2_000);
    }
    h.advance(40_000);
    assert_eq!(h.engine.live_calls(), 1);
    assert_eq!(h.engine.client_transactions(), 0);
    assert_eq!(h.engine.server_transactions(), 0);
    assert!(h.engine.calls.in_dialog.is_empty());
    assert!(
        h.engine.calls.timers.is_empty(),
        "{:?}",
        h.engine.calls.timers
    );
}

/// Bug: an UPDATE without a body (a session refresh, RFC 4028 §7.4) from the trunk while
/// its re-INVITE waited on the operator drew 500, and while siaga's own refresh was open
/// drew 491. Neither carries an offer, so neither overlaps one (RFC 3311 §5.2 refuses only
/// UPDATEs *with* an offer): 200, and the session is refreshed.
#[test]
fn a_bodyless_update_is_answered_while_an_offer_is_open() {
    let mut h = Harness::new(15);
    let terms = TRUNK_REFRESHES;
    let (ok, _) = answered_call(&mut h, "bodyless", terms);
    let reinvite = hold_offer(&ok, 2, 2, "bodylessre");
    let out = h.input(TRUNK, &reinvite);
    let to_op = out.requests_to(OP1, Method::Invite).pop().expect("crosses");
    let refresh = with(&trunk_in_dialog("UPDATE", &ok, 3, "bodylessu"), terms, None);
    assert_eq!(h.input(TRUNK, &refresh).statuses_to(TRUNK), [200]);
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "recvonly"))),
    );
    assert_eq!(final_to(&out, TRUNK).status(), Some(200));

    // siaga refreshes (by UPDATE); the trunk's own bodyless UPDATE crosses it.
    let mut h = Harness::new(15);
    let terms = SIAGA_REFRESHES_BY_UPDATE;
    let (ok, _) = answered_call(&mut h, "bodyless2", terms);
    let out = h.advance(45_000);
    assert_eq!(out.requests_to(TRUNK, Method::Update).len(), 1);
    let theirs = trunk_in_dialog("UPDATE", &ok, 2, "bodyless2u");
    assert_eq!(h.input(TRUNK, &theirs).statuses_to(TRUNK), [200]);
}

/// Bug: every session refresh from the trunk armed one more session timer entry; the
/// earlier ones stayed in the timer table until their (up to 30 min away) deadline. A
/// trunk refreshing or re-INVITEing often grew the table without bound for the call's
/// life. One session timer per call.
#[test]
fn session_refreshes_keep_one_timer_per_call() {
    let mut h = Harness::new(15);
    let terms = "Supported: timer\r\nSession-Expires: 1800;refresher=uac\r\n";
    let (ok, _) = answered_call(&mut h, "manyst", terms);
    for seq in 2..102u32 {
        let update = with(
            &trunk_in_dialog("UPDATE", &ok, seq, &format!("manyst{seq}")),
            terms,
            None,
        );
        assert_eq!(h.input(TRUNK, &update).statuses_to(TRUNK), [200]);
        h.advance(1_000);
    }
    h.advance(40_000);
    assert_eq!(h.engine.live_calls(), 1);
    assert!(
        h.engine.calls.timers.len() <= 3,
        "{} timers for one call",
        h.engine.calls.timers.len()
    );
}

/// Bug: a trunk asserting an anonymous identity (`P-Asserted-Identity:
/// <sip:anonymous@anonymous.invalid>`, sent by some networks for withheld numbers) had
/// `anonymous` recorded as the caller's number (ANI), which a call-taker would try to
/// call back. It is no number (RFC 3323 §4.1.1.3): the ANI is unknown.
#[test]
fn an_anonymous_asserted_identity_is_no_caller_number() {
    let mut h = Harness::new(15);
    let invite = trunk_invite("anonpai")
        .replace(
            "P-Asserted-Identity: <tel:+62811-555-0001>",
            "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\nPrivacy: id",
        )
        .replace(
            "From: <sip:+6281100001@trunk.test>",
            "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
        );
    let out = h.input(TRUNK, &invite);
    let caller = out
        .events
        .iter()
        .find_map(|e| match e {
            CallEventKind::Received { caller, .. } => Some(caller.clone()),
            _ => None,
        })
        .expect("received");
    assert_eq!(caller, None);
}

/// Held: a re-INVITE over a TCP trunk crosses and its 2xx comes back on the connection.
#[test]
fn a_tcp_trunks_re_invite_is_answered_on_its_connection() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("tcpre").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let out = h.input_tcp(TRUNK, 7, &invite);
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input_tcp(
        TRUNK,
        7,
        &trunk_ack(&ok, 1, "tcpreack").replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
    );
    let reinvite = with(
        &trunk_in_dialog("INVITE", &ok, 2, "tcprere").replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
        "",
        Some(&trunk_sdp(2, "sendonly", "127.0.0.1")),
    );
    let out = h.input_tcp(TRUNK, 7, &reinvite);
    let to_op = out.requests_to(OP1, Method::Invite).pop().expect("crosses");
    let out = h.input(
        OP1,
        &phone_response(&to_op, 200, "OK", "op1", Some(&operator_sdp(2, "recvonly"))),
    );
    let sent = out
        .sent
        .iter()
        .find(|t| t.destination == addr(TRUNK))
        .expect("the 2xx");
    assert_eq!(sent.transport, Transport::Tcp);
    assert_eq!(sent.connection, Some(crate::engine::ConnectionId(7)));
}
