//! PSAP callbacks taken through the API (`Engine::take_callback_for`, issue 6 point 4) in
//! virtual time: siaga rings operator 1001's phone first, and once it answers calls the
//! caller back through the gateway the test plays (`callback` tests' harness).

use super::callback::{
    CALLER, GW, SDP_CALLER, abandoned, ended, gateway_response, gateway_up, harness, pairs, state,
};
use super::*;
use crate::engine::acd::CallbackItem;
use crate::engine::call::CallbackTakeError;
use crate::engine::media::Side;
use crate::engine::record::CallbackOutcome;

/// An item on the worklist, the gateway up, 1001 registered, and the item taken through
/// the API: the item, and what the take sent (the INVITE to the phone among it).
fn taken(h: &mut Harness, id: &str) -> (CallbackItem, Out, SipMessage) {
    gateway_up(h);
    let item = abandoned(h, &format!("{id}-abandoned"));
    h.register("1001", OP1);
    let at = h.at();
    let taken = h.engine.take_callback_for(at, "1001").expect("taken");
    assert_eq!(taken.record, item.record);
    let out = h.drain();
    let invite = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("siaga rings the operator's phone");
    (item, out, invite)
}

/// `taken`, and the phone answers with `SDP_OPERATOR` (PCMA only): what that drew, the
/// INVITE to the gateway, and siaga's ACK to the phone.
fn operator_answered(h: &mut Harness, id: &str) -> (CallbackItem, Out, SipMessage, SipMessage) {
    let (item, _, invite) = taken(h, id);
    h.input(OP1, &phone_response(&invite, 180, "Ringing", "op", None));
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op", Some(SDP_OPERATOR)),
    );
    let ack = out
        .requests_to(OP1, Method::Ack)
        .pop()
        .expect("the phone's 2xx is ACKed");
    let gw_invite = out
        .requests_to(GW, Method::Invite)
        .pop()
        .expect("then the caller is called back");
    (item, out, gw_invite, ack)
}

/// The whole path: the phone rings showing CALLBACK and the number, with the relay's
/// offer; it answers; the gateway's INVITE (RFC 7090 §4) offers only the phone's codec;
/// the caller answers and the relay bridges them with no 2xx to the phone; a 2xx the phone
/// repeats is ACKed again, not ended; the operator hangs up: BYE to the caller, the
/// outcome `answered`, the item closed, the operator in wrap-up.
#[test]
fn the_operators_phone_rings_first_then_the_caller_is_called_back_and_bridged() {
    let mut h = harness();
    let (item, out, invite) = taken(&mut h, "api1");
    assert_eq!(item.attempts, 0);
    assert_eq!(invite.request_uri_raw(), Some("sip:1001@127.0.0.1:5071"));
    let from = hdr(&invite, HeaderName::From);
    assert!(
        from.starts_with(&format!(
            "\"CALLBACK {CALLER}\" <sip:{CALLER}@siaga.test>;tag="
        )),
        "{from}"
    );
    assert!(out.requests_to(GW, Method::Invite).is_empty(), "not yet");
    let offer = String::from_utf8_lossy(invite.body()).into_owned();
    let (caller_port, operator_port) = out
        .media
        .iter()
        .find_map(|m| match *m {
            MediaCommand::Open {
                caller_port,
                operator_port,
                ..
            } => Some((caller_port, operator_port)),
            _ => None,
        })
        .expect("a relay opened");
    assert!(
        offer.contains(&format!("m=audio {caller_port} ")) && offer.contains("PCMU"),
        "siaga's capabilities at the relay's phone side: {offer}"
    );
    assert_eq!(
        pairs(&out),
        [(
            item.record,
            CallEventKind::CallbackStarted {
                operator: "1001".to_owned()
            }
        )]
    );
    assert_eq!(state(&h), "on_call");
    assert_eq!(out.agent.last().and_then(|a| a.call), Some(item.record));
    assert_eq!(h.engine.callbacks()[0].taken_by.as_deref(), Some("1001"));

    h.input(OP1, &phone_response(&invite, 180, "Ringing", "op", None));
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op", Some(SDP_OPERATOR)),
    );
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    assert_eq!(ack.call_id().ok(), invite.call_id().ok());
    assert!(out.requests_to(OP1, Method::Bye).is_empty());
    assert!(
        out.events.is_empty(),
        "started was recorded once: {:?}",
        out.events
    );
    let phone_rtp: SocketAddr = "127.0.0.1:7000".parse().expect("literal");
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Caller, rtp, .. } if *rtp == phone_rtp
    )));
    let gw_invite = out
        .requests_to(GW, Method::Invite)
        .pop()
        .expect("INVITE to the gateway");
    assert_eq!(
        gw_invite.request_uri_raw(),
        Some("sip:+628115550001@127.0.0.1:5098;user=phone")
    );
    assert_eq!(hdr(&gw_invite, HeaderName::Priority), "psap-callback");
    assert!(hdr(&gw_invite, HeaderName::From).starts_with("<sip:112@siaga.test>;tag="));
    let gw_offer = String::from_utf8_lossy(gw_invite.body()).into_owned();
    assert!(
        gw_offer.contains(&format!("m=audio {operator_port} RTP/AVP 8 101")),
        "only the phone's codec, at the relay's other side: {gw_offer}"
    );

    let out = h.input(GW, &gateway_response(&gw_invite, 180, "Ringing", None));
    assert!(out.to(OP1).is_empty(), "the phone answered already: no 180");
    let out = h.input(
        GW,
        &gateway_response(&gw_invite, 200, "OK", Some(SDP_CALLER)),
    );
    assert!(out.events.is_empty(), "{:?}", out.events);
    let gw_ack = out
        .requests_to(GW, Method::Ack)
        .pop()
        .expect("ACK to the gateway");
    assert!(
        out.to(OP1).is_empty(),
        "no 2xx and no re-INVITE to the phone"
    );
    let caller_rtp: SocketAddr = "127.0.0.1:9000".parse().expect("literal");
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Operator, rtp, .. } if *rtp == caller_rtp
    )));

    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op", Some(SDP_OPERATOR)),
    );
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1, "ACKed again");
    assert!(out.requests_to(OP1, Method::Bye).is_empty(), "not ended");

    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200]);
    let bye = out
        .requests_to(GW, Method::Bye)
        .pop()
        .expect("BYE to the caller");
    assert_eq!(bye.call_id().ok(), gw_ack.call_id().ok());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Answered)]);
    assert_eq!(state(&h), "wrap_up");
    assert!(h.engine.callbacks().is_empty(), "the item is closed");
    assert_eq!(h.engine.live_calls(), 0);
}

/// The caller hanging up an answered callback: BYE to the operator's phone in the dialog
/// siaga created (its Contact, siaga's From tag).
#[test]
fn the_caller_hanging_up_sends_bye_to_the_operators_phone() {
    let mut h = harness();
    let (item, _, gw_invite, ack) = operator_answered(&mut h, "api2");
    let out = h.input(
        GW,
        &gateway_response(&gw_invite, 200, "OK", Some(SDP_CALLER)),
    );
    let gw_ack = out.requests_to(GW, Method::Ack).pop().expect("ACK");
    let out = h.input(GW, &operator_bye(&gw_ack).replace(OP1, GW));
    assert_eq!(out.statuses_to(GW), [200]);
    let bye = out
        .requests_to(OP1, Method::Bye)
        .pop()
        .expect("BYE to the phone");
    assert_eq!(bye.call_id().ok(), ack.call_id().ok());
    assert_eq!(bye.request_uri_raw(), Some("sip:phone@127.0.0.1:5071"));
    assert_eq!(hdr(&bye, HeaderName::From), hdr(&ack, HeaderName::From));
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Answered)]);
    assert_eq!(state(&h), "wrap_up");
}

/// The phone not answering within the queue's ring timeout (15 s here): CANCEL to it, no
/// INVITE to the gateway, `no_answer`, the item back with one more attempt, the operator
/// available.
#[test]
fn the_operator_not_answering_puts_the_item_back_with_one_more_attempt() {
    let mut h = harness();
    let (item, _, invite) = taken(&mut h, "api3");
    h.input(OP1, &phone_response(&invite, 180, "Ringing", "op", None));
    h.advance(14_000);
    assert_eq!(state(&h), "on_call");
    let out = h.advance(1_000);
    let cancel = out.requests_to(OP1, Method::Cancel).pop().expect("CANCEL");
    assert_eq!(cancel.call_id().ok(), invite.call_id().ok());
    assert!(out.requests_to(GW, Method::Invite).is_empty());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::NoAnswer)]);
    assert_eq!(state(&h), "available");
    let list = h.engine.callbacks();
    assert_eq!((list[0].attempts, list[0].taken_by.as_deref()), (1, None));
    h.input(OP1, &phone_response(&cancel, 200, "OK", "op", None));
    let out = h.input(
        OP1,
        &phone_response(&invite, 487, "Request Terminated", "op", None),
    );
    assert!(out.events.is_empty(), "ended once: {:?}", out.events);
    assert_eq!(h.engine.live_calls(), 0);
}

/// The phone rejecting (486) ends the callback the same way, at once.
#[test]
fn the_operator_rejecting_ends_it_as_no_answer() {
    let mut h = harness();
    let (item, _, invite) = taken(&mut h, "api4");
    let out = h.input(OP1, &phone_response(&invite, 486, "Busy Here", "op", None));
    assert_eq!(
        out.requests_to(OP1, Method::Ack).len(),
        1,
        "the 486 is ACKed"
    );
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::NoAnswer)]);
    assert_eq!(state(&h), "available");
    assert_eq!(h.engine.callbacks()[0].attempts, 1);
}

/// The operator hanging up while the caller's leg rings CANCELs it: `no_answer`.
#[test]
fn the_operator_hanging_up_while_the_caller_rings_cancels_the_gateway_leg() {
    let mut h = harness();
    let (item, _, gw_invite, ack) = operator_answered(&mut h, "api5");
    h.input(GW, &gateway_response(&gw_invite, 180, "Ringing", None));
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200]);
    let cancel = out.requests_to(GW, Method::Cancel).pop().expect("CANCEL");
    assert_eq!(cancel.call_id().ok(), gw_invite.call_id().ok());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::NoAnswer)]);
    assert_eq!(state(&h), "available");
    assert_eq!(h.engine.callbacks()[0].attempts, 1);
}

/// A busy caller: BYE to the operator's phone (it has no INVITE to refuse), `busy`.
#[test]
fn a_busy_caller_ends_the_operators_call_with_bye() {
    let mut h = harness();
    let (item, _, gw_invite, _) = operator_answered(&mut h, "api6");
    let out = h.input(GW, &gateway_response(&gw_invite, 486, "Busy Here", None));
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert!(out.statuses_to(OP1).is_empty(), "no response to any INVITE");
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Busy)]);
    assert_eq!(state(&h), "available");
    assert_eq!(h.engine.callbacks()[0].attempts, 1);
}

/// The refusals of `take_callback_for`, each leaving the worklist as it was.
#[test]
fn refusals_leave_the_item_untouched() {
    let mut empty = harness();
    gateway_up(&mut empty);
    empty.register("1001", OP1);
    let at = empty.at();
    assert_eq!(
        empty.engine.take_callback_for(at, "1001"),
        Err(CallbackTakeError::NoCallbackWaiting)
    );

    let mut h = harness();
    gateway_up(&mut h);
    abandoned(&mut h, "api7-a");
    abandoned(&mut h, "api7-b");
    let at = h.at();
    assert_eq!(
        h.engine.take_callback_for(at, "1001"),
        Err(CallbackTakeError::NotRegistered)
    );
    assert_eq!(h.engine.callbacks()[0].taken_by, None);
    h.register("1001", OP1);
    let at = h.at();
    h.engine.take_callback_for(at, "1001").expect("the first");
    h.drain();
    // On a callback already: the ACD refuses, the second item stays free.
    let refused = h.engine.take_callback_for(at, "1001");
    assert!(
        matches!(refused, Err(CallbackTakeError::Agent(_))),
        "{refused:?}"
    );
    assert_eq!(refused.err().map(|e| e.code()), Some("not_allowed"));
    let list = h.engine.callbacks();
    assert_eq!(list[1].taken_by, None);
    assert_eq!(list[1].attempts, 0);
}

/// An operator the ACD would refuse (logged out, though registered) takes nothing, even
/// with no gateway up: no item loses an attempt and nothing is recorded in their name.
#[test]
fn a_refused_operator_uses_up_no_attempt_when_no_gateway_is_up() {
    let mut h = harness();
    abandoned(&mut h, "api9-a");
    h.register("1001", OP1);
    let at = h.at();
    h.engine
        .agent_command(at, "1001", crate::engine::acd::AgentCommand::Logout)
        .expect("logged out");
    h.drain();
    let refused = h.engine.take_callback_for(at, "1001");
    assert_eq!(refused.err().map(|e| e.code()), Some("not_allowed"));
    let item = &h.engine.callbacks()[0];
    assert_eq!((item.taken_by.as_deref(), item.attempts), (None, 0));
    assert!(
        h.drain().events.is_empty(),
        "nothing recorded for a refused take"
    );
}

/// siaga stopping while the phone rings: CANCEL, `failed`; and no new one is taken.
#[test]
fn shutdown_cancels_the_ringing_phone() {
    let mut h = harness();
    let (item, _, invite) = taken(&mut h, "api8");
    h.input(OP1, &phone_response(&invite, 180, "Ringing", "op", None));
    let at = h.at();
    h.engine.shutdown(at);
    let out = h.drain();
    assert_eq!(out.requests_to(OP1, Method::Cancel).len(), 1);
    assert!(out.statuses_to(OP1).is_empty());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Failed)]);
    assert_eq!(
        h.engine.take_callback_for(at, "1001"),
        Err(CallbackTakeError::Stopping)
    );
}

/// The operator putting the caller on hold: the phone's re-INVITE in the dialog siaga
/// created (matched by its remote tag, the phone's To tag) is carried to the caller's leg,
/// and the gateway's answer comes back to the phone in a 2xx.
#[test]
fn the_operators_re_invite_is_carried_to_the_caller() {
    let mut h = harness();
    let (_, _, gw_invite, ack) = operator_answered(&mut h, "api9");
    h.input(
        GW,
        &gateway_response(&gw_invite, 200, "OK", Some(SDP_CALLER)),
    );
    let hold = SDP_OPERATOR.replace("o=op 1 1", "o=op 1 2") + "a=sendonly\r\n";
    let reinvite = operator_bye(&ack)
        .replace("BYE sip:", "INVITE sip:")
        .replace("CSeq: 5 BYE", "CSeq: 6 INVITE")
        .replace("z9hG4bKopbye", "z9hG4bKophold")
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Contact: <sip:phone@{OP1}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
                hold.len()
            ),
        );
    let out = h.input(OP1, &reinvite);
    let relayed = out
        .requests_to(GW, Method::Invite)
        .pop()
        .expect("the hold is carried to the caller's leg");
    assert!(
        String::from_utf8_lossy(relayed.body()).contains("a=sendonly"),
        "{}",
        String::from_utf8_lossy(relayed.body())
    );
    let answer = SDP_CALLER.replace("o=gw 5 5", "o=gw 5 6") + "a=recvonly\r\n";
    let out = h.input(GW, &gateway_response(&relayed, 200, "OK", Some(&answer)));
    let ok = out
        .to(OP1)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("200 to the phone's re-INVITE");
    assert!(String::from_utf8_lossy(ok.body()).contains("a=recvonly"));
    assert_eq!(hdr(&ok, HeaderName::CSeq), "6 INVITE");
}
