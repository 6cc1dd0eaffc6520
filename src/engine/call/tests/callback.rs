//! PSAP callbacks (RFC 7090, issue 5 point 7) in virtual time: an abandoned call lands on
//! the worklist, operator 1001 dials `*73` (challenged and authenticated by the feature
//! codes) to take it, and the test plays the trunk gateway that reaches the caller.

use super::feature::{cancel_of_code, dial, phone_in_dialog};
use super::*;
use crate::engine::acd::CallbackItem;
use crate::engine::record::CallbackOutcome;
use crate::engine::trunk_health::Gateway;
use uuid::Uuid;

pub(super) const GW: &str = "127.0.0.1:5098";
/// The caller's number in `trunk_invite` (its P-Asserted-Identity).
pub(super) const CALLER: &str = "+628115550001";
pub(super) const SDP_CALLER: &str = "v=0\r\no=gw 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A harness with one trunk gateway at `GW` (not probed yet) and 10 s of wrap-up, so an
/// answered callback and an unanswered one leave the operator in different states.
pub(super) fn harness() -> Harness {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.trunk_health.gateways = vec![Gateway {
        uri: format!("sip:{GW}"),
        address: addr(GW),
        transport: Transport::Udp,
    }];
    config.calls.acd.queues[0].wrap_up = Duration::from_secs(10);
    h.engine = Engine::with_seed(config, 11);
    h
}

/// The gateway answers siaga's first OPTIONS: it is up.
pub(super) fn gateway_up(h: &mut Harness) {
    let out = h.advance(0);
    let options = out
        .requests_to(GW, Method::Options)
        .pop()
        .expect("the gateway is probed");
    h.input(GW, &gateway_response(&options, 200, "OK", None));
}

/// The gateway's response to siaga's `request` (To tag `gw`, Contact at the gateway).
pub(super) fn gateway_response(
    request: &SipMessage,
    status: u16,
    reason: &str,
    sdp: Option<&str>,
) -> String {
    phone_response(request, status, reason, "gw", sdp).replace(
        "Contact: <sip:phone@127.0.0.1:5071>",
        &format!("Contact: <sip:gw@{GW}>"),
    )
}

/// A call from `CALLER` abandoned in the queue (nobody registered): the worklist item.
pub(super) fn abandoned(h: &mut Harness, id: &str) -> CallbackItem {
    let invite = trunk_invite(id);
    h.input(TRUNK, &invite);
    let out = h.input(TRUNK, &cancel_of(&invite));
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Caller,
        disposition: Disposition::AbandonedInQueue
    }));
    h.engine
        .callbacks()
        .last()
        .cloned()
        .expect("on the worklist")
}

/// The callback's INVITE to the gateway, after a gateway up, an abandoned call and 1001
/// registered and taking it.
fn placed(h: &mut Harness, id: &str) -> Placed {
    gateway_up(h);
    let item = abandoned(h, &format!("{id}-abandoned"));
    h.register("1001", OP1);
    let (out, star73) = take(h, id);
    let invite = out
        .requests_to(GW, Method::Invite)
        .pop()
        .expect("INVITE to the gateway");
    Placed {
        item,
        invite,
        star73,
        out,
    }
}

/// A callback placed: its worklist item, its INVITE to the gateway, the operator's `*73`
/// INVITE (text) and what that drew.
struct Placed {
    item: CallbackItem,
    invite: SipMessage,
    star73: String,
    out: Out,
}

/// `placed`, and the caller's phone rings (180).
fn ringing(h: &mut Harness, id: &str) -> Placed {
    let placed = placed(h, id);
    let out = h.input(GW, &gateway_response(&placed.invite, 180, "Ringing", None));
    assert_eq!(out.statuses_to(OP1), [180]);
    placed
}

/// `placed`, and the caller answers: siaga's ACK to the gateway and its 200 to the
/// operator, whose phone ACKs it.
fn answered(h: &mut Harness, id: &str) -> (CallbackItem, SipMessage, SipMessage) {
    let Placed { item, invite, .. } = placed(h, id);
    let out = h.input(GW, &gateway_response(&invite, 200, "OK", Some(SDP_CALLER)));
    let ack = out.requests_to(GW, Method::Ack).pop().expect("ACK");
    let ok = out.to(OP1).pop().expect("200");
    h.input(OP1, &phone_in_dialog(OP1, "ACK", &ok, &format!("{id}ack")));
    (item, ack, ok)
}

/// The relay `out` opened.
fn relay_of(out: &Out) -> (crate::engine::media::RelayId, u16, u16) {
    out.media
        .iter()
        .find_map(|m| match *m {
            MediaCommand::Open {
                relay,
                caller_port,
                operator_port,
            } => Some((relay, caller_port, operator_port)),
            _ => None,
        })
        .expect("a relay opened")
}

pub(super) fn state(h: &Harness) -> &'static str {
    h.engine.agent_state("1001").expect("configured").name()
}

pub(super) fn ended(record: Uuid, outcome: CallbackOutcome) -> (Uuid, CallEventKind) {
    (
        record,
        CallEventKind::CallbackEnded {
            operator: "1001".to_owned(),
            outcome,
        },
    )
}

/// The call events in `out`, each with its record id.
pub(super) fn pairs(out: &Out) -> Vec<(Uuid, CallEventKind)> {
    out.records
        .iter()
        .copied()
        .zip(out.events.iter().cloned())
        .collect()
}

/// Operator 1001 dials `*73` (Call-ID `id`): what the authenticated INVITE drew, and its
/// text.
fn take(h: &mut Harness, id: &str) -> (Out, String) {
    dial(h, "1001", "*73", id)
}

/// The whole path: abandoned → on the worklist → `*73` → INVITE to the gateway marked
/// `psap-callback` (RFC 7090 §4) → caller answers → operator's 200 with the relay's answer,
/// media bridged → caller hangs up → operator's leg ended, item closed, operator in wrap-up.
/// Every event goes on the abandoned call's record, and none says `received` or `ended`.
#[test]
fn an_abandoned_caller_is_called_back_and_bridged_to_the_operator() {
    let mut h = harness();
    gateway_up(&mut h);
    let item = abandoned(&mut h, "a1");
    assert_eq!(
        (item.caller.as_str(), item.reason.as_str(), item.attempts),
        (CALLER, "abandoned_in_queue", 0)
    );
    h.register("1001", OP1);

    let (out, _) = take(&mut h, "cb1");
    assert_eq!(out.statuses_to(OP1), [100]);
    let invite = out
        .requests_to(GW, Method::Invite)
        .pop()
        .expect("INVITE to the gateway");
    assert_eq!(
        invite.request_uri_raw(),
        Some("sip:+628115550001@127.0.0.1:5098;user=phone")
    );
    assert_eq!(hdr(&invite, HeaderName::Priority), "psap-callback");
    assert_eq!(invite.max_forwards().ok().flatten(), Some(70));
    assert!(hdr(&invite, HeaderName::From).starts_with("<sip:112@siaga.test>;tag="));
    assert_eq!(
        hdr(&invite, HeaderName::PAssertedIdentity),
        "<sip:112@siaga.test>"
    );
    let offer = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(
        offer.contains("m=audio") && offer.contains("PCMA"),
        "{offer}"
    );
    let (_, _, gateway_port) = relay_of(&out);
    assert!(
        offer.contains(&format!("m=audio {gateway_port} ")),
        "the relay's port: {offer}"
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
    let phone = "127.0.0.1:8000".parse().expect("literal");
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: crate::engine::media::Side::Caller, rtp, .. } if *rtp == phone
    )));

    let out = h.input(GW, &gateway_response(&invite, 180, "Ringing", None));
    assert_eq!(out.statuses_to(OP1), [180], "the operator hears it ring");

    let out = h.input(GW, &gateway_response(&invite, 200, "OK", Some(SDP_CALLER)));
    assert!(out.events.is_empty(), "no `answered`: {:?}", out.events);
    let ack = out
        .requests_to(GW, Method::Ack)
        .pop()
        .expect("the caller's 2xx is ACKed");
    let ok = out.to(OP1).pop().expect("the operator's 200");
    assert_eq!(ok.status(), Some(200));
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(answer.contains("a=rtpmap:8 PCMA"), "{answer}");
    let caller_rtp = "127.0.0.1:9000".parse().expect("literal");
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: crate::engine::media::Side::Operator, rtp, .. } if *rtp == caller_rtp
    )));
    h.input(OP1, &phone_in_dialog(OP1, "ACK", &ok, "cb1ack"));
    let out = h.advance(2_000);
    assert!(out.statuses_to(OP1).is_empty(), "the ACK stopped the 200");

    let out = h.input(GW, &operator_bye(&ack).replace(OP1, GW));
    assert_eq!(out.statuses_to(GW), [200]);
    assert_eq!(
        out.requests_to(OP1, Method::Bye).len(),
        1,
        "BYE to the operator"
    );
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Answered)]);
    assert!(
        out.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Close { .. }))
    );
    assert_eq!(state(&h), "wrap_up");
    assert!(h.engine.callbacks().is_empty(), "the item is closed");
    assert_eq!(h.engine.live_calls(), 0);
}

/// The operator hanging up an answered callback ends the caller's leg with BYE.
#[test]
fn the_operator_hanging_up_ends_the_callers_leg() {
    let mut h = harness();
    let (item, ack, ok) = answered(&mut h, "cb2");
    let out = h.input(OP1, &phone_in_dialog(OP1, "BYE", &ok, "cb2bye"));
    assert_eq!(out.statuses_to(OP1), [200]);
    let bye = out
        .requests_to(GW, Method::Bye)
        .pop()
        .expect("BYE to the caller");
    assert_eq!(bye.call_id().ok(), ack.call_id().ok());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Answered)]);
    assert_eq!(state(&h), "wrap_up");
}

/// Busy: the phone shows 486, the item stays with one attempt, the operator is available
/// at once (no wrap-up: nothing was handled) and takes the 112 call that arrived meanwhile,
/// which the ACD never confused with the callback.
#[test]
fn a_busy_caller_keeps_the_item_with_one_attempt() {
    let mut h = harness();
    let Placed { item, invite, .. } = placed(&mut h, "cb3");
    // A 112 call while 1001 is on the callback: it waits (nobody else is logged in).
    let out = h.input(TRUNK, &trunk_invite("q3"));
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    assert_eq!(h.engine.waiting_calls(), 1);

    let out = h.input(GW, &gateway_response(&invite, 486, "Busy Here", None));
    assert_eq!(
        out.requests_to(GW, Method::Ack).len(),
        1,
        "the 486 is ACKed"
    );
    assert_eq!(out.statuses_to(OP1), [486]);
    assert_eq!(pairs(&out)[0], ended(item.record, CallbackOutcome::Busy));
    let list = h.engine.callbacks();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].attempts, list[0].taken_by.as_deref()), (1, None));
    assert_eq!(state(&h), "ringing", "offered the waiting 112 call at once");
    let rung = out.requests_to(OP1, Method::Invite);
    assert_eq!(rung.len(), 1);
    assert_eq!(rung[0].request_uri_raw(), Some("sip:1001@127.0.0.1:5071"));
    assert_eq!(
        out.agent
            .iter()
            .map(|a| (a.from, a.to, a.reason.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("on_call", "available", Some("callback_unanswered")),
            ("available", "ringing", Some("offered")),
        ]
    );
}

/// No answer within `acd.callback_ring_timeout_s`: the gateway leg is CANCELled, the phone
/// shows 480, the outcome is `no_answer`; the gateway's 487 changes nothing more.
#[test]
fn no_answer_within_the_ring_timeout_cancels_the_callers_leg() {
    let mut h = harness();
    let Placed { item, invite, .. } = ringing(&mut h, "cb4");
    h.advance(29_000);
    assert_eq!(state(&h), "on_call");
    let out = h.advance(1_000);
    let cancel = out.requests_to(GW, Method::Cancel).pop().expect("CANCEL");
    assert_eq!(cancel.call_id().ok(), invite.call_id().ok());
    assert_eq!(out.statuses_to(OP1), [480]);
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::NoAnswer)]);
    assert_eq!(state(&h), "available");
    assert_eq!(h.engine.callbacks()[0].record, item.record);
    assert_eq!(h.engine.callbacks()[0].attempts, 1);
    h.input(GW, &gateway_response(&cancel, 200, "OK", None));
    let out = h.input(
        GW,
        &gateway_response(&invite, 487, "Request Terminated", None),
    );
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert!(out.statuses_to(OP1).is_empty());
    assert_eq!(h.engine.live_calls(), 0);
}

/// The operator hangs up (CANCEL) while the caller's phone rings: CANCEL to the gateway,
/// 487 to the operator, `no_answer`, the operator available again.
#[test]
fn the_operator_cancelling_cancels_the_gateway_leg() {
    let mut h = harness();
    let Placed {
        item,
        invite,
        star73,
        ..
    } = ringing(&mut h, "cb5");
    let out = h.input(OP1, &cancel_of_code(&star73));
    assert_eq!(out.statuses_to(OP1), [200, 487]);
    let cancel = out.requests_to(GW, Method::Cancel).pop().expect("CANCEL");
    assert_eq!(cancel.call_id().ok(), invite.call_id().ok());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::NoAnswer)]);
    assert_eq!(state(&h), "available");
    // The caller picks up as the CANCEL arrives: ACKed and ended, nothing recorded.
    let out = h.input(GW, &gateway_response(&invite, 200, "OK", Some(SDP_CALLER)));
    assert_eq!(out.requests_to(GW, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(GW, Method::Bye).len(), 1);
    assert!(out.events.is_empty());
    assert!(out.to(OP1).is_empty());
}

/// No gateway up (none answered OPTIONS yet): 503 to the operator, no INVITE, the attempt
/// recorded as a `callback_started`/`callback_ended` (`failed`) pair like any other, the
/// operator's state untouched.
#[test]
fn without_a_gateway_up_the_callback_fails_with_503() {
    let mut h = harness();
    let item = abandoned(&mut h, "a6");
    h.register("1001", OP1);
    let (out, _) = take(&mut h, "cb6");
    assert_eq!(out.statuses_to(OP1), [503]);
    assert!(out.requests_to(GW, Method::Invite).is_empty());
    assert_eq!(
        pairs(&out),
        [
            (
                item.record,
                CallEventKind::CallbackStarted {
                    operator: "1001".to_owned()
                }
            ),
            ended(item.record, CallbackOutcome::Failed)
        ]
    );
    assert_eq!(state(&h), "available");
    assert!(out.agent.is_empty());
    assert_eq!(h.engine.callbacks()[0].attempts, 1);
}

/// Nothing on the worklist: 404 "No Callback Waiting", nothing recorded or changed.
#[test]
fn an_empty_worklist_draws_404() {
    let mut h = harness();
    gateway_up(&mut h);
    h.register("1001", OP1);
    let (out, _) = take(&mut h, "cb7");
    let refusal = out.to(OP1).pop().expect("a response");
    assert_eq!(refusal.status(), Some(404));
    assert_eq!(refusal.reason(), Some(&b"No Callback Waiting"[..]));
    assert!(out.events.is_empty() && out.agent.is_empty());
    assert!(out.to(GW).is_empty());
}

/// An operator the ACD cannot put on a callback (not ready is fine; logged out is not:
/// here explicitly, with `*74`) gets 403 with a Warning naming why; the item goes back
/// untouched for the next operator.
#[test]
fn an_operator_who_may_not_call_back_gets_403_and_the_item_stays() {
    let mut h = harness();
    gateway_up(&mut h);
    abandoned(&mut h, "a8");
    h.register("1001", OP1);
    h.engine
        .agent_command(h.at(), "1001", crate::engine::acd::AgentCommand::Logout)
        .expect("logged out");
    h.drain();
    let (out, _) = take(&mut h, "cb8");
    let refusal = out.to(OP1).pop().expect("a response");
    assert_eq!(refusal.status(), Some(403));
    assert!(hdr(&refusal, HeaderName::Warning).contains("logged_out"));
    assert!(out.events.is_empty());
    assert!(out.to(GW).is_empty());
    let list = h.engine.callbacks();
    assert_eq!((list[0].attempts, list[0].taken_by.as_deref()), (0, None));
}

/// The items siaga rebuilds at start are taken like the ones it saw abandoned.
#[test]
fn restored_items_are_called_back() {
    let mut h = harness();
    gateway_up(&mut h);
    let record = Uuid::from_u128(7);
    h.engine.restore_callbacks([CallbackItem {
        record,
        caller: "0812345".to_owned(),
        at: crate::engine::UtcTime(5),
        waited: Duration::from_secs(3),
        reason: "abandoned_while_ringing".to_owned(),
        attempts: 2,
        taken_by: None,
    }]);
    h.register("1001", OP1);
    let (out, _) = take(&mut h, "cb9");
    let invite = out.requests_to(GW, Method::Invite).pop().expect("INVITE");
    assert_eq!(
        invite.request_uri_raw(),
        Some("sip:0812345@127.0.0.1:5098;user=phone")
    );
    assert_eq!(out.records, [record]);
}

/// The caller's phone answers with no codec siaga relays: the caller's leg is ACKed and
/// ended (RFC 3261 §15), the operator's phone shows 503, the outcome is `failed`.
#[test]
fn an_answer_without_a_common_codec_fails_the_callback() {
    let mut h = harness();
    let Placed { item, invite, .. } = placed(&mut h, "cb10");
    let g729 = SDP_CALLER.replace("RTP/AVP 8 101", "RTP/AVP 18").replace(
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        "a=rtpmap:18 G729/8000\r\n",
    );
    let out = h.input(GW, &gateway_response(&invite, 200, "OK", Some(&g729)));
    assert_eq!(out.requests_to(GW, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(GW, Method::Bye).len(), 1);
    assert_eq!(out.statuses_to(OP1), [503]);
    assert_eq!(
        pairs(&out).last(),
        Some(&ended(item.record, CallbackOutcome::Failed))
    );
    assert!(out.records.iter().all(|r| *r == item.record));
    assert_eq!(state(&h), "available");
    assert_eq!(h.engine.live_calls(), 0);
}

/// siaga stopping while the caller's phone rings: 503 to the operator, CANCEL to the
/// gateway, `failed`; nothing is recorded as an interrupted 112 call.
#[test]
fn shutdown_ends_a_ringing_callback_as_failed() {
    let mut h = harness();
    let Placed { item, .. } = ringing(&mut h, "cb11");
    let now = h.at();
    h.engine.shutdown(now);
    let out = h.drain();
    assert_eq!(out.statuses_to(OP1), [503]);
    assert_eq!(out.requests_to(GW, Method::Cancel).len(), 1);
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Failed)]);
}

/// The relay's report goes on the abandoned call's record as `callback_media`, not as the
/// call's own `media` (whose counters the summary keeps), its counters turned back: the
/// relay's caller side faced the operator's phone.
#[test]
fn the_relays_counters_are_recorded_apart_from_the_callers_side() {
    use crate::engine::media::{MediaReport, PacketCounts, RelayClosed};
    let mut h = harness();
    let Placed {
        item, invite, out, ..
    } = placed(&mut h, "cb12");
    let (relay, caller_port, operator_port) = relay_of(&out);
    h.input(GW, &gateway_response(&invite, 486, "Busy Here", None));
    let counts = |packets| PacketCounts {
        packets,
        ..PacketCounts::default()
    };
    h.engine.handle_input(
        h.at(),
        Input::MediaReport(MediaReport::Closed(RelayClosed {
            relay,
            caller_port,
            operator_port,
            caller_to_operator: counts(3),
            operator_to_caller: counts(5),
            latched_caller: None,
            latched_operator: None,
            bind_failed: Vec::new(),
        })),
    );
    let out = h.drain();
    assert_eq!(
        pairs(&out),
        [(
            item.record,
            CallEventKind::CallbackMedia {
                caller_to_operator: 5,
                operator_to_caller: 3
            }
        )]
    );
}

/// The caller's leg torn down by the network (a BYE with a failure Reason, RFC 3326) ends
/// the callback: nobody is re-queued, the operator's phone gets BYE.
#[test]
fn a_failed_callers_leg_ends_the_callback_without_requeueing() {
    let mut h = harness();
    let (item, ack, _) = answered(&mut h, "cb13");
    let bye = operator_bye(&ack).replace(OP1, GW).replace(
        "Content-Length: 0",
        "Reason: SIP;cause=408;text=\"radio link lost\"\r\nContent-Length: 0",
    );
    let out = h.input(GW, &bye);
    assert_eq!(out.statuses_to(GW), [200]);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert!(out.requests_to(GW, Method::Bye).is_empty());
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Answered)]);
    assert_eq!(h.engine.waiting_calls(), 0);
    assert_eq!(state(&h), "wrap_up");
}

/// A silent caller is still on the line: the relay's silence report on the caller's side
/// of a callback changes nothing.
#[test]
fn a_silent_caller_does_not_end_the_callback() {
    use crate::engine::media::{MediaReport, Side};
    let mut h = harness();
    let Placed { invite, out, .. } = placed(&mut h, "cb14");
    let (relay, _, _) = relay_of(&out);
    let out = h.input(GW, &gateway_response(&invite, 200, "OK", Some(SDP_CALLER)));
    let ok = out.to(OP1).pop().expect("200");
    h.input(OP1, &phone_in_dialog(OP1, "ACK", &ok, "cb14ack"));
    h.engine.handle_input(
        h.at(),
        Input::MediaReport(MediaReport::Silent {
            relay,
            side: Side::Operator,
        }),
    );
    let out = h.drain();
    assert!(
        out.sent.is_empty() && out.events.is_empty(),
        "{:?}",
        out.sent
    );
    assert_eq!(h.engine.live_calls(), 1);
    assert_eq!(state(&h), "on_call");
}

/// A second trunk gateway, after `GW` in `trunk.gateways`.
const GW2: &str = "127.0.0.1:5099";

/// `harness` with `GW2` configured after `GW`, both probed and answering when `up` says.
fn two_gateways(up: [bool; 2]) -> Harness {
    let mut h = harness();
    let mut config = h.engine.config().clone();
    config.calls.trunk_health.gateways.push(Gateway {
        uri: format!("sip:{GW2}"),
        address: addr(GW2),
        transport: Transport::Udp,
    });
    h.engine = Engine::with_seed(config, 11);
    let out = h.advance(0);
    for (gw, up) in [GW, GW2].into_iter().zip(up) {
        let options = out
            .requests_to(gw, Method::Options)
            .pop()
            .expect("every gateway is probed");
        if up {
            h.input(gw, &gateway_response(&options, 200, "OK", None));
        }
    }
    h
}

/// An abandoned call, 1001 registered and taking it: its item and what `*73` drew.
fn take_one(h: &mut Harness, id: &str) -> (CallbackItem, Out) {
    let item = abandoned(h, &format!("{id}-abandoned"));
    h.register("1001", OP1);
    let (out, _) = take(h, id);
    (item, out)
}

/// A gateway that cannot place the call (503, 408, a 5xx: RFC 3263 §4.3 failover) makes
/// siaga try the next gateway that is up with the same INVITE (a new transaction and
/// dialog); the callback goes on as one: `callback_started` once, the ring timeout still
/// running from the first INVITE, and the caller answering through the second gateway is
/// bridged as usual.
#[test]
fn a_gateway_that_cannot_place_the_callback_fails_over_to_the_next_one_up() {
    for (status, reason) in [
        (503, "Service Unavailable"),
        (408, "Request Timeout"),
        (500, "Server Internal Error"),
    ] {
        let mut h = two_gateways([true, true]);
        let (_, out) = take_one(&mut h, "fo1");
        let first = out.requests_to(GW, Method::Invite).pop().expect("INVITE");
        assert!(out.requests_to(GW2, Method::Invite).is_empty(), "GW first");

        h.advance(5_000);
        let out = h.input(GW, &gateway_response(&first, status, reason, None));
        assert_eq!(out.requests_to(GW, Method::Ack).len(), 1, "{status} ACKed");
        let second = out
            .requests_to(GW2, Method::Invite)
            .pop()
            .unwrap_or_else(|| panic!("{status}: INVITE to the next gateway"));
        assert_eq!(
            second.request_uri_raw(),
            Some("sip:+628115550001@127.0.0.1:5099;user=phone")
        );
        assert_eq!(hdr(&second, HeaderName::Priority), "psap-callback");
        assert!(hdr(&second, HeaderName::From).starts_with("<sip:112@siaga.test>;tag="));
        assert_eq!(second.max_forwards().ok().flatten(), Some(70));
        assert_ne!(second.call_id().ok(), first.call_id().ok());
        let media = |m: &SipMessage| {
            String::from_utf8_lossy(m.body())
                .lines()
                .find(|l| l.starts_with("m="))
                .map(str::to_owned)
        };
        assert_eq!(
            media(&second),
            media(&first),
            "the same offer at the same relay"
        );
        assert!(
            out.statuses_to(OP1).is_empty(),
            "the operator hears nothing"
        );
        assert!(out.events.is_empty(), "{status}: {:?}", out.events);
        assert_eq!(state(&h), "on_call");

        let out = h.input(GW2, &gateway_response(&second, 200, "OK", Some(SDP_CALLER)));
        assert_eq!(out.requests_to(GW2, Method::Ack).len(), 1);
        assert_eq!(out.to(OP1).pop().and_then(|ok| ok.status()), Some(200));
        let caller_rtp = "127.0.0.1:9000".parse().expect("literal");
        assert!(out.media.iter().any(|m| matches!(
            m,
            MediaCommand::SetPeer { side: crate::engine::media::Side::Operator, rtp, .. } if *rtp == caller_rtp
        )));
    }
}

/// The ring timeout counts from the first INVITE: a failover does not give the caller's
/// phone longer to ring.
#[test]
fn the_ring_timeout_runs_from_the_first_gateway() {
    let mut h = two_gateways([true, true]);
    let (item, out) = take_one(&mut h, "fo2");
    let first = out.requests_to(GW, Method::Invite).pop().expect("INVITE");
    h.advance(10_000);
    let out = h.input(
        GW,
        &gateway_response(&first, 503, "Service Unavailable", None),
    );
    let second = out
        .requests_to(GW2, Method::Invite)
        .pop()
        .expect("failover");
    h.input(GW2, &gateway_response(&second, 180, "Ringing", None));
    let out = h.advance(20_000);
    let cancel = out.requests_to(GW2, Method::Cancel).pop().expect("CANCEL");
    assert_eq!(cancel.call_id().ok(), second.call_id().ok());
    assert_eq!(out.statuses_to(OP1), [480]);
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::NoAnswer)]);
}

/// Busy, decline and no answer are the caller's line speaking, not the gateway failing:
/// no other gateway is tried.
#[test]
fn busy_decline_and_no_answer_are_outcomes_not_failover() {
    for (status, outcome, shown) in [
        (486, CallbackOutcome::Busy, 486),
        (600, CallbackOutcome::Busy, 486),
        (603, CallbackOutcome::Failed, 503),
        (480, CallbackOutcome::NoAnswer, 480),
    ] {
        let mut h = two_gateways([true, true]);
        let (item, out) = take_one(&mut h, "fo3");
        let first = out.requests_to(GW, Method::Invite).pop().expect("INVITE");
        let out = h.input(GW, &gateway_response(&first, status, "No", None));
        assert!(
            out.requests_to(GW2, Method::Invite).is_empty(),
            "{status}: no failover"
        );
        assert_eq!(out.statuses_to(OP1), [shown], "{status}");
        assert_eq!(pairs(&out), [ended(item.record, outcome)], "{status}");
        assert_eq!(state(&h), "available");
    }
}

/// Failover goes only to a gateway that is up, and each one once: with the second down,
/// the first's 503 ends the callback as `failed` (503 to the phone); with both up, the
/// second's 503 after the first's ends it too, without going back to the first.
#[test]
fn failover_tries_only_gateways_up_and_each_once() {
    let mut h = two_gateways([true, false]);
    let (item, out) = take_one(&mut h, "fo4");
    let first = out.requests_to(GW, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        GW,
        &gateway_response(&first, 503, "Service Unavailable", None),
    );
    assert!(
        out.requests_to(GW2, Method::Invite).is_empty(),
        "GW2 is not up"
    );
    assert_eq!(out.statuses_to(OP1), [503]);
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Failed)]);

    let mut h = two_gateways([true, true]);
    let (item, out) = take_one(&mut h, "fo5");
    let first = out.requests_to(GW, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        GW,
        &gateway_response(&first, 503, "Service Unavailable", None),
    );
    let second = out
        .requests_to(GW2, Method::Invite)
        .pop()
        .expect("failover");
    let out = h.input(GW2, &gateway_response(&second, 502, "Bad Gateway", None));
    assert!(
        out.requests_to(GW, Method::Invite).is_empty(),
        "GW was tried"
    );
    assert_eq!(out.statuses_to(OP1), [503]);
    assert_eq!(pairs(&out), [ended(item.record, CallbackOutcome::Failed)]);
    assert_eq!(state(&h), "available");
    assert_eq!(h.engine.live_calls(), 0);
}
