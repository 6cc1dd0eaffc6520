//! Operator feature codes (issue 5, point 2, and "Bad input"), in virtual time: the phone
//! dials a code, siaga challenges (401), the phone sends credentials, and siaga changes
//! the operator's state and answers 200 then BYE — or refuses with 403/404, state
//! unchanged.

use super::*;
use crate::engine::acd::{AcdSettings, AgentCommand, AgentError, LoginPolicy, NotReadyReason};
use crate::engine::call::InboundFeatureCall;
use crate::engine::sdp::{self, Direction};
use crate::engine::transaction::{ServerKey, TimerConfig};

/// An offer with an audio and a video stream, as a video softphone sends.
const SDP_PHONE: &str = "v=0\r\no=phone 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\nm=video 8002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

/// A harness (ring timeout 15 s) whose ACD settings `change` adjusts.
fn harness_with(change: impl FnOnce(&mut AcdSettings)) -> Harness {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    change(&mut config.calls.acd);
    h.engine = Engine::with_seed(config, 11);
    h
}

/// A harness (ring timeout 15 s) with operator 1001 registered from `OP1`, available.
fn with_1001() -> Harness {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    h
}

/// The CANCEL of the phone's `invite` (RFC 3261 §9.1: its Request-URI, Via, From, To,
/// Call-ID and CSeq number), without credentials or body.
pub(super) fn cancel_of_code(invite: &str) -> String {
    let end = ["Authorization", "Content-"]
        .iter()
        .filter_map(|h| invite.find(h))
        .min()
        .expect("a header after To");
    let seq = invite
        .split("CSeq: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .expect("CSeq");
    let cancel = invite[..end]
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace(
            &format!("CSeq: {seq} INVITE"),
            &format!("CSeq: {seq} CANCEL"),
        );
    format!("{cancel}Content-Length: 0\r\n\r\n")
}

/// The phone of operator `user` in the harness.
fn phone_of(user: &str) -> &'static str {
    if user == "1002" { OP2 } else { OP1 }
}

/// The INVITE `phone` sends to dial `number` as From user `user`: Call-ID `id`, From tag
/// `f{id}`, CSeq `seq` (its own branch), the `auth` lines, and `sdp` as the offer.
fn code_invite(
    number: &str,
    user: &str,
    phone: &str,
    (id, seq): (&str, u32),
    auth: &str,
    sdp: Option<&str>,
) -> String {
    let body = sdp.unwrap_or_default();
    let content_type = match sdp {
        Some(_) => "Content-Type: application/sdp\r\n",
        None => "",
    };
    format!(
        "INVITE sip:{number}@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP {phone};branch=z9hG4bK{id}x{seq};rport\r\nMax-Forwards: 70\r\nFrom: \"Operator\" <sip:{user}@siaga.test>;tag=f{id}\r\nTo: <sip:{number}@siaga.test>\r\nCall-ID: {id}\r\nCSeq: {seq} INVITE\r\nContact: <sip:{user}@{phone}>\r\n{auth}{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The ACK of a failure `response` to the phone's `invite` (RFC 3261 §17.1.1.3: the
/// INVITE's branch, the response's To).
fn failure_ack(invite: &str, response: &SipMessage) -> String {
    let head = &invite[..invite.find("\r\n\r\n").expect("head")];
    let seq = response.cseq().expect("cseq").seq;
    let lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Content-") && !l.starts_with("Authorization:"))
        .map(|l| match l {
            l if l.starts_with("INVITE ") => l.replacen("INVITE", "ACK", 1),
            l if l.starts_with("To:") => format!("To: {}", hdr(response, HeaderName::To)),
            l if l.starts_with("CSeq:") => format!("CSeq: {seq} ACK"),
            l => l.to_owned(),
        })
        .collect();
    format!("{}\r\nContent-Length: 0\r\n\r\n", lines.join("\r\n"))
}

/// The phone's request `method` in the dialog of siaga's 2xx `ok` (RFC 3261 §12.2.1.1).
pub(super) fn phone_in_dialog(phone: &str, method: &str, ok: &SipMessage, branch: &str) -> String {
    let seq = match method {
        "ACK" => ok.cseq().expect("cseq").seq,
        _ => 9,
    };
    trunk_in_dialog(method, ok, seq, branch).replace(TRUNK, phone)
}

/// The final response in `out` to `phone`.
fn final_to(out: &Out, phone: &str) -> SipMessage {
    out.to(phone)
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s >= 200))
        .expect("a final response")
}

/// Dials `number` from `phone` with credentials `(user, password)` and From user
/// `from_user`: the INVITE, its 401 and the ACK, then the INVITE with `Authorization`.
/// Returns what that second INVITE drew, and its text.
fn dial_as(
    h: &mut Harness,
    phone: &str,
    credentials: (&str, &str),
    from_user: &str,
    (number, id): (&str, &str),
    sdp: Option<&str>,
) -> (Out, String) {
    let first = code_invite(number, from_user, phone, (id, 1), "", sdp);
    let out = h.input(phone, &first);
    let challenge = final_to(&out, phone);
    assert_eq!(challenge.status(), Some(401), "challenged first");
    assert!(
        out.agent.is_empty(),
        "nothing changes before authentication"
    );
    h.input(phone, &failure_ack(&first, &challenge));
    let uri = format!("sip:{number}@siaga.test");
    let auth = authorization(&challenge, credentials, "INVITE", &uri);
    let second = code_invite(number, from_user, phone, (id, 2), &auth, sdp);
    (h.input(phone, &second), second)
}

/// Operator `user` dials `number` from their phone with the right password and an offer.
pub(super) fn dial(h: &mut Harness, user: &str, number: &str, id: &str) -> (Out, String) {
    let password = format!("demo-{user}");
    let phone = phone_of(user);
    dial_as(
        h,
        phone,
        (user, &password),
        user,
        (number, id),
        Some(SDP_PHONE),
    )
}

/// `out` holds siaga's 200 to the phone's feature call `id`: the phone ACKs it, siaga
/// BYEs the dialog at once (RFC 3261 §15), the phone answers the BYE. Returns the 200.
fn ack_and_expect_bye(h: &mut Harness, phone: &str, out: &Out, id: &str) -> SipMessage {
    let ok = final_to(out, phone);
    assert_eq!(
        ok.status(),
        Some(200),
        "{:?}",
        ok.reason().map(String::from_utf8_lossy)
    );
    let out = h.input(
        phone,
        &phone_in_dialog(phone, "ACK", &ok, &format!("{id}ack")),
    );
    let bye = out
        .requests_to(phone, Method::Bye)
        .pop()
        .expect("siaga BYEs the feature call after the ACK");
    assert_eq!(bye.call_id().ok(), Some(id));
    assert_eq!(bye.to().expect("to").tag(), Some(format!("f{id}").as_str()));
    assert_eq!(bye.from().expect("from").tag(), ok.to().expect("to").tag());
    h.input(phone, &phone_response(&bye, 200, "OK", "x", None));
    ok
}

fn state(h: &Harness, operator: &str) -> AgentState {
    h.engine
        .agent_state(operator)
        .expect("a configured operator")
}

/// The agent states entered in `out`, by name.
fn entered(out: &Out) -> Vec<&'static str> {
    out.agent.iter().map(|e| e.to).collect()
}

#[test]
fn each_code_changes_the_state_and_the_phone_gets_200_then_bye() {
    let mut h = harness_with(|acd| acd.queues[0].wrap_up = Duration::from_secs(30));
    // A call answered and ended by the caller leaves 1001 in wrap-up.
    let (ok, _) = answered_call(&mut h, "w1", "");
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "w1bye"));
    let bye = out.requests_to(OP1, Method::Bye).pop().expect("BYE");
    h.input(OP1, &phone_response(&bye, 200, "OK", "op1", None));
    assert!(matches!(state(&h, "1001"), AgentState::WrapUp { .. }));

    let (out, _) = dial(&mut h, "1001", "*72", "k72");
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
    assert_eq!(entered(&out), ["available"]);
    ack_and_expect_bye(&mut h, OP1, &out, "k72");

    let (out, _) = dial(&mut h, "1001", "*71", "k71");
    assert_eq!(
        state(&h, "1001"),
        AgentState::NotReady {
            reason: NotReadyReason::Requested
        }
    );
    assert_eq!(entered(&out), ["not_ready"]);
    ack_and_expect_bye(&mut h, OP1, &out, "k71");

    let (out, _) = dial(&mut h, "1001", "*70", "k70");
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
    assert_eq!(entered(&out), ["available"]);
    ack_and_expect_bye(&mut h, OP1, &out, "k70");

    let (out, _) = dial(&mut h, "1001", "*74", "k74");
    assert_eq!(state(&h, "1001"), AgentState::LoggedOut);
    assert_eq!(entered(&out), ["logged_out"]);
    ack_and_expect_bye(&mut h, OP1, &out, "k74");
    // Nothing is left resending or to BYE.
    let out = h.advance(40_000);
    let sent: Vec<_> = out
        .to(OP1)
        .iter()
        .map(|m| m.cseq().map(|c| c.method))
        .collect();
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn the_first_invite_is_challenged_and_a_replayed_authorization_is_challenged_stale() {
    let mut h = with_1001();
    let first = code_invite("*71", "1001", OP1, ("c1", 1), "", None);
    let out = h.input(OP1, &first);
    let challenge = final_to(&out, OP1);
    assert_eq!(challenge.status(), Some(401));
    let www = hdr(&challenge, HeaderName::WwwAuthenticate);
    assert!(www.starts_with("Digest realm=\"siaga.test\""), "{www}");
    assert!(www.contains("algorithm=MD5") && www.contains("qop=\"auth\""));
    assert!(!www.contains("stale"), "{www}");
    assert!(out.agent.is_empty());
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));

    // The same credentials in another call (a replay): the right password for a nonce
    // already used at nc 1 draws a fresh challenge with stale=true (RFC 7616 §3.3).
    h.input(OP1, &failure_ack(&first, &challenge));
    let auth = authorization(
        &challenge,
        ("1001", "demo-1001"),
        "INVITE",
        "sip:*71@siaga.test",
    );
    let out = h.input(
        OP1,
        &code_invite("*71", "1001", OP1, ("c1", 2), &auth, None),
    );
    assert_eq!(final_to(&out, OP1).status(), Some(200));
    let out = h.input(
        OP1,
        &code_invite("*71", "1001", OP1, ("c2", 2), &auth, None),
    );
    let again = final_to(&out, OP1);
    assert_eq!(again.status(), Some(401));
    assert!(hdr(&again, HeaderName::WwwAuthenticate).contains("stale=true"));
}

#[test]
fn a_wrong_password_draws_403_and_changes_nothing() {
    let mut h = with_1001();
    let (out, invite) = dial_as(
        &mut h,
        OP1,
        ("1001", "not-the-password"),
        "1001",
        ("*71", "wp"),
        None,
    );
    let refusal = final_to(&out, OP1);
    assert_eq!(refusal.status(), Some(403));
    assert!(out.agent.is_empty());
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
    // The 403 is ACKed like any failure; no BYE ever follows.
    h.input(OP1, &failure_ack(&invite, &refusal));
    let out = h.advance(40_000);
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
}

#[test]
fn authenticated_as_1001_dialling_as_1002_draws_403() {
    let mut h = with_1001();
    h.register("1002", OP2);
    let (out, _) = dial_as(
        &mut h,
        OP1,
        ("1001", "demo-1001"),
        "1002",
        ("*71", "imp"),
        None,
    );
    assert_eq!(final_to(&out, OP1).status(), Some(403));
    assert!(out.agent.is_empty());
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
    assert!(matches!(state(&h, "1002"), AgentState::Available { .. }));
}

#[test]
fn an_impossible_transition_draws_403_naming_it_and_leaves_the_state() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(&mut h, "busy", "");
    let on_call = state(&h, "1001");
    assert!(matches!(on_call, AgentState::OnCall { .. }));
    let (out, invite) = dial(&mut h, "1001", "*71", "nr");
    let refusal = final_to(&out, OP1);
    assert_eq!(refusal.status(), Some(403));
    assert_eq!(
        refusal.reason(),
        Some(&b"Forbidden (not_ready is not possible while on_call)"[..])
    );
    assert_eq!(
        hdr(&refusal, HeaderName::Warning),
        "399 127.0.0.1:5060 \"not_ready is not possible while on_call\""
    );
    assert!(out.agent.is_empty());
    assert_eq!(state(&h, "1001"), on_call);
    h.input(OP1, &failure_ack(&invite, &refusal));

    // Wrap-up 0: once the call ends the operator is available, and `*72` is refused too.
    h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "busybye"));
    let (out, _) = dial(&mut h, "1001", "*72", "ewu");
    let refusal = final_to(&out, OP1);
    assert_eq!(refusal.status(), Some(403));
    assert!(
        hdr(&refusal, HeaderName::Warning).contains("end_wrap_up is not possible while available")
    );
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
}

#[test]
fn an_unknown_code_draws_404_without_a_challenge_and_an_escaped_star_is_a_code() {
    let mut h = with_1001();
    let out = h.input(OP1, &code_invite("*79", "1001", OP1, ("u1", 1), "", None));
    let refusal = final_to(&out, OP1);
    assert_eq!(refusal.status(), Some(404));
    assert!(refusal.header(HeaderName::WwwAuthenticate).is_none());
    assert!(out.agent.is_empty());

    // `%2A71` is `*71` (RFC 3261 §19.1.4): challenged, then done.
    let (out, _) = dial(&mut h, "1001", "%2A71", "esc");
    assert_eq!(final_to(&out, OP1).status(), Some(200));
    assert!(matches!(state(&h, "1001"), AgentState::NotReady { .. }));
}

#[test]
fn the_offer_is_answered_inactive_and_an_invite_without_offer_gets_an_inactive_offer() {
    let mut h = with_1001();
    let (out, _) = dial(&mut h, "1001", "*71", "sdp1");
    let ok = final_to(&out, OP1);
    assert_eq!(hdr(&ok, HeaderName::ContentType), "application/sdp");
    let answer = sdp::parse(ok.body()).expect("an SDP answer");
    // RFC 3264 §6: the same streams in the same order; audio kept but inactive (no
    // media), the video rejected with port 0.
    assert_eq!(answer.m_lines.len(), 2);
    assert_eq!(answer.m_lines[1].media, "video");
    assert_eq!(answer.m_lines[1].port, 0);
    assert_eq!(answer.direction, Direction::Inactive);
    assert_eq!(answer.rtp, Some(addr("127.0.0.1:9")));
    let offered: Vec<u8> = answer.formats.iter().map(|f| f.payload_type).collect();
    assert_eq!(offered, [0, 8, 101], "the offer's own formats");
    ack_and_expect_bye(&mut h, OP1, &out, "sdp1");

    // No offer in the INVITE: the 2xx carries an (inactive) offer, RFC 3261 §13.2.1.
    let (out, _) = dial_as(
        &mut h,
        OP1,
        ("1001", "demo-1001"),
        "1001",
        ("*70", "sdp2"),
        None,
    );
    let ok = final_to(&out, OP1);
    let offer = sdp::parse(ok.body()).expect("an SDP offer");
    assert_eq!(offer.direction, Direction::Inactive);
    assert!(offer.supported_formats().any(|(_, c)| c.is_audio()));
    ack_and_expect_bye(&mut h, OP1, &out, "sdp2");
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
}

#[test]
fn ready_logs_a_registered_operator_in_under_the_explicit_policy() {
    let mut h = harness_with(|acd| acd.queues[0].login = LoginPolicy::Explicit);
    h.register("1001", OP1);
    assert_eq!(state(&h, "1001"), AgentState::LoggedOut);
    let (out, _) = dial(&mut h, "1001", "*70", "login");
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
    assert_eq!(out.agent.len(), 1);
    assert_eq!(
        (out.agent[0].from, out.agent[0].to),
        ("logged_out", "available")
    );
    assert_eq!(out.agent[0].reason.as_deref(), Some("ready"));
    ack_and_expect_bye(&mut h, OP1, &out, "login");
}

#[test]
fn not_ready_keeps_a_call_waiting_and_ready_then_rings_the_operator() {
    let mut h = with_1001();
    let (out, _) = dial(&mut h, "1001", "*71", "pause");
    ack_and_expect_bye(&mut h, OP1, &out, "pause");

    let out = h.input(TRUNK, &trunk_invite("waits"));
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    assert_eq!(h.engine.waiting_calls(), 1);
    let out = h.advance(20_000);
    assert!(
        out.requests_to(OP1, Method::Invite).is_empty(),
        "still not ready"
    );

    let (out, _) = dial(&mut h, "1001", "*70", "resume");
    assert_eq!(final_to(&out, OP1).status(), Some(200));
    let rung = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("the waiting call rings the operator");
    assert_eq!(rung.request_uri_raw(), Some("sip:1001@127.0.0.1:5071"));
    assert!(matches!(state(&h, "1001"), AgentState::Ringing { .. }));
    ack_and_expect_bye(&mut h, OP1, &out, "resume");
    assert!(matches!(state(&h, "1001"), AgentState::Ringing { .. }));
}

#[test]
fn next_callback_reaches_take_callback_after_authentication() {
    let mut h = with_1001();
    let (out, _) = dial(&mut h, "1001", "*73", "cb");
    // `call::callback` with nothing on the worklist (see `tests::callback`).
    let answer = final_to(&out, OP1);
    assert_eq!(answer.status(), Some(404));
    assert_eq!(answer.reason(), Some(&b"No Callback Waiting"[..]));
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
}

#[test]
fn an_operator_the_acd_does_not_know_draws_403() {
    let mut h = Harness::new(15);
    // 1003 can authenticate (the registrar knows their HA1) but is no ACD agent.
    let users = ["1001", "1002", "1003"]
        .iter()
        .map(|id| {
            let ha1 = Ha1::from_password(id, "siaga.test", &format!("demo-{id}"));
            (id.to_string(), ha1)
        })
        .collect();
    h.engine.registrar.replace_users(users);
    let (out, _) = dial_as(
        &mut h,
        OP2,
        ("1003", "demo-1003"),
        "1003",
        ("*70", "who"),
        None,
    );
    let refusal = final_to(&out, OP2);
    assert_eq!(refusal.status(), Some(403));
    assert!(
        hdr(&refusal, HeaderName::Warning).contains("no operator '1003' is configured"),
        "{}",
        hdr(&refusal, HeaderName::Warning)
    );
    assert!(out.agent.is_empty());
}

#[test]
fn agent_command_for_an_unknown_operator_is_a_typed_error() {
    let mut h = Harness::new(15);
    let now = h.at();
    assert_eq!(
        h.engine.agent_command(now, "9999", AgentCommand::Ready),
        Err(AgentError::UnknownOperator("9999".to_owned()))
    );
    assert!(h.drain().agent.is_empty());
}

#[test]
fn a_cancel_after_the_200_changes_nothing_and_the_bye_still_follows_the_ack() {
    let mut h = with_1001();
    let (out, invite) = dial(&mut h, "1001", "*71", "late");
    let after = h.input(OP1, &cancel_of_code(&invite));
    let replies = after.to(OP1);
    assert_eq!(replies.len(), 1, "{:?}", after.statuses_to(OP1));
    assert_eq!(replies[0].status(), Some(200));
    assert_eq!(replies[0].cseq().expect("cseq").method, Method::Cancel);
    assert!(matches!(state(&h, "1001"), AgentState::NotReady { .. }));
    ack_and_expect_bye(&mut h, OP1, &out, "late");
}

#[test]
fn a_cancel_of_a_feature_invite_still_unanswered_draws_487_and_does_nothing() {
    let mut h = with_1001();
    // As `take_callback` leaves an INVITE it keeps to bridge later: a server transaction
    // without a final response, held by the feature calls.
    let text = code_invite("*73", "1001", OP1, ("held", 2), "", None);
    let msg = SipMessage::parse(Bytes::from(text.clone()), Transport::Udp).expect("parse");
    let rx = Received {
        transport: Transport::Udp,
        source: addr(OP1),
        local: addr(SIAGA),
        connection: None,
        bytes: Bytes::from(text.clone()),
    };
    let target = crate::engine::driver::response_target(&rx, &msg);
    let key = ServerKey::of_request(&msg).expect("key");
    let tag = "heldtag".to_owned();
    let tx = h.engine.server.create(
        h.at().mono,
        key,
        None,
        target,
        tag.clone(),
        &TimerConfig::default(),
    );
    let call = InboundFeatureCall::new(tx, &rx, &msg, target, tag);
    h.engine.calls.features.hold(call);

    let out = h.input(OP1, &cancel_of_code(&text));
    let replies = out.to(OP1);
    let answered: Vec<(u16, Method)> = replies
        .iter()
        .map(|m| (m.status().unwrap_or(0), m.cseq().expect("cseq").method))
        .collect();
    assert_eq!(
        answered,
        [(200, Method::Cancel), (487, Method::Invite)],
        "RFC 3261 §9.2"
    );
    assert_eq!(replies[1].to().expect("to").tag(), Some("heldtag"));
    assert!(out.agent.is_empty());
    assert!(matches!(state(&h, "1001"), AgentState::Available { .. }));
}

#[test]
fn without_ack_the_200_is_resent_and_the_call_byed_after_64_t1() {
    let mut h = with_1001();
    let (out, _) = dial(&mut h, "1001", "*71", "noack");
    assert_eq!(final_to(&out, OP1).status(), Some(200));
    // §13.3.1.4: at T1, then 2·T1, 4·T1 (0.5 s, 1.5 s, 3.5 s) …
    let out = h.advance(4_000);
    assert_eq!(out.statuses_to(OP1), [200, 200, 200]);
    // … capped at T2 (4 s), until 64·T1 (32 s): then BYE.
    let out = h.advance(27_999);
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
    let out = h.advance(1);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    let out = h.advance(10_000);
    assert!(out.statuses_to(OP1).is_empty(), "no 2xx after the BYE");
    assert!(matches!(state(&h, "1001"), AgentState::NotReady { .. }));
}

#[test]
fn the_phones_bye_before_its_ack_draws_200_and_ends_the_feature_call() {
    let mut h = with_1001();
    let (out, _) = dial(&mut h, "1001", "*71", "hang");
    let ok = final_to(&out, OP1);
    let out = h.input(OP1, &phone_in_dialog(OP1, "BYE", &ok, "hangbye"));
    assert_eq!(out.statuses_to(OP1), [200]);
    let out = h.advance(40_000);
    assert!(out.to(OP1).is_empty(), "{:?}", out.statuses_to(OP1));
    assert!(matches!(state(&h, "1001"), AgentState::NotReady { .. }));
}
