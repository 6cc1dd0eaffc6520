//! Transferring a live call to a field agency (issue 6, point 4) in virtual time: the
//! agency answers and the caller is bridged to it while the operator's leg ends; the
//! agency refuses (486, 408), does not answer in time, or answers with a codec the caller
//! does not send, and the operator keeps the caller; the caller hangs up while it rings;
//! the operator hangs up while it rings; a second transfer while one rings; the refusals.

use super::*;
use crate::engine::call::{TransferAgency, TransferError};
use crate::engine::media::Side;
use uuid::Uuid;

/// The fire brigade's transfer target: outside the trust domain.
const AGENCY: &str = "127.0.0.8:5090";
const AGENCY_URI: &str = "sip:113@127.0.0.8:5090";
const SDP_AGENCY: &str = "v=0\r\no=agency 5 5 IN IP4 127.0.0.8\r\ns=-\r\nc=IN IP4 127.0.0.8\r\nt=0 0\r\nm=audio 9000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
/// An answer holding PCMU only: not the PCMA the caller sends.
const SDP_AGENCY_PCMU: &str = "v=0\r\no=agency 6 6 IN IP4 127.0.0.8\r\ns=-\r\nc=IN IP4 127.0.0.8\r\nt=0 0\r\nm=audio 9000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Operators 1001 and 1002 (wrap-up 20 s), agencies `damkar` (transfer URI
/// [`AGENCY_URI`]) and `polri` (none), transfers ringing 30 s.
fn transfer_harness() -> Harness {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.trunk_sources = vec!["127.0.0.1/32".parse().expect("net")];
    config.calls.acd.queues[0].wrap_up = Duration::from_secs(20);
    config.calls.acd.transfer_ring_timeout = Duration::from_secs(30);
    config.calls.agencies = vec![
        TransferAgency {
            id: "damkar".to_owned(),
            transfer_uri: Some(AGENCY_URI.to_owned()),
        },
        TransferAgency {
            id: "polri".to_owned(),
            transfer_uri: None,
        },
    ];
    h.engine = Engine::with_seed(config, 11);
    h
}

/// The record id of the only live call.
fn record(h: &Harness) -> Uuid {
    h.engine
        .calls
        .calls
        .values()
        .next()
        .expect("a live call")
        .record
}

/// The agency's response to siaga's `invite`, its Contact at [`AGENCY`].
fn agency_response(invite: &SipMessage, status: u16, reason: &str, sdp: Option<&str>) -> String {
    phone_response(invite, status, reason, "ag", sdp).replace(
        "Contact: <sip:phone@127.0.0.1:5071>",
        &format!("Contact: <sip:agency@{AGENCY}>"),
    )
}

/// Answers call `id` through 1001 and transfers it to `damkar`: returns (siaga's 2xx to
/// the trunk, its ACK to 1001, its INVITE to the agency, what the transfer drew).
fn transferring(h: &mut Harness, id: &str) -> (SipMessage, SipMessage, SipMessage, Out) {
    let (ok, ack) = answered_call(h, id, "");
    let call = record(h);
    h.engine
        .transfer(h.at(), call, "damkar")
        .expect("transfer placed");
    let out = h.drain();
    let invite = out
        .requests_to(AGENCY, Method::Invite)
        .pop()
        .expect("an INVITE to the agency");
    (ok, ack, invite, out)
}

fn failed(reason: &str) -> CallEventKind {
    CallEventKind::TransferFailed {
        agency: "damkar".to_owned(),
        target: AGENCY_URI.to_owned(),
        reason: reason.to_owned(),
    }
}

fn answered() -> CallEventKind {
    CallEventKind::TransferAnswered {
        agency: "damkar".to_owned(),
        target: AGENCY_URI.to_owned(),
    }
}

/// 1001 is still on the call, which is still answered by 1001.
fn assert_operator_kept(h: &Harness) {
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::OnCall { .. })
    ));
    assert_eq!(h.engine.call_operator(record(h)), Some("1001"));
}

#[test]
fn the_agency_answers_the_caller_is_bridged_to_it_and_the_operator_goes_to_wrap_up() {
    let mut h = transfer_harness();
    let (ok, _, invite, out) = transferring(&mut h, "t1");
    assert_eq!(
        out.events,
        [CallEventKind::TransferOffered {
            operator: "1001".to_owned(),
            agency: "damkar".to_owned(),
            target: AGENCY_URI.to_owned(),
        }]
    );
    assert_eq!(invite.request_uri_raw(), Some(AGENCY_URI));
    assert_eq!(invite.max_forwards().ok().flatten(), Some(69));
    assert!(
        invite.header(HeaderName::PAssertedIdentity).is_none(),
        "the agency is outside the trust domain"
    );
    let body = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(
        body.contains("c=IN IP4 127.0.0.1") && body.contains("m=audio 30"),
        "the offer is the relay's: {body}"
    );
    assert!(
        body.contains("RTP/AVP 8 101") && !body.contains("PCMU"),
        "only the formats the caller agreed to: {body}"
    );
    assert!(out.to(OP1).is_empty() && out.to(TRUNK).is_empty());
    // While it rings, 1001 stays with the caller.
    let out = h.input(AGENCY, &agency_response(&invite, 180, "Ringing", None));
    assert!(out.events.is_empty() && out.to(TRUNK).is_empty());
    assert_operator_kept(&h);

    let out = h.input(
        AGENCY,
        &agency_response(&invite, 200, "OK", Some(SDP_AGENCY)),
    );
    assert_eq!(out.requests_to(AGENCY, Method::Ack).len(), 1);
    assert_eq!(
        out.requests_to(OP1, Method::Bye).len(),
        1,
        "1001's leg ends"
    );
    assert!(
        out.to(TRUNK).is_empty(),
        "no re-INVITE to the caller: only the relay's operator peer moves"
    );
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Operator, rtp, .. } if *rtp == addr("127.0.0.8:9000")
    )));
    assert_eq!(out.events, [answered()]);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::WrapUp { .. })
    ));
    let live = h.engine.snapshot(h.at().mono);
    assert_eq!(live.in_progress[0].stage.as_str(), "transferred");
    assert_eq!(h.engine.call_operator(record(&h)), None);

    // The caller's BYE reaches the agency; the call ends answered.
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "t1bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(AGENCY, Method::Bye).len(), 1);
    assert!(out.to(OP1).is_empty());
    assert_eq!(
        out.events.last(),
        Some(&CallEventKind::Ended {
            by: Party::Caller,
            disposition: Disposition::Answered
        })
    );
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn the_agencys_bye_ends_the_transferred_call_as_answered() {
    let mut h = transfer_harness();
    let (_, _, invite, _) = transferring(&mut h, "t2");
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 200, "OK", Some(SDP_AGENCY)),
    );
    let ack = out.requests_to(AGENCY, Method::Ack).pop().expect("ACK");
    let bye = operator_bye(&ack).replace(OP1, AGENCY);
    let out = h.input(AGENCY, &bye);
    assert_eq!(out.statuses_to(AGENCY), [200]);
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    assert_eq!(
        out.events,
        [CallEventKind::Ended {
            by: Party::Operator,
            disposition: Disposition::Answered
        }]
    );
}

#[test]
fn a_busy_or_timed_out_agency_leaves_the_operator_with_the_caller() {
    let mut h = transfer_harness();
    let (_, _, invite, _) = transferring(&mut h, "t3");
    let out = h.input(AGENCY, &agency_response(&invite, 486, "Busy Here", None));
    assert_eq!(out.requests_to(AGENCY, Method::Ack).len(), 1, "§17.1.1.3");
    assert_eq!(out.events, [failed("486 response")]);
    assert!(out.to(OP1).is_empty() && out.to(TRUNK).is_empty());
    assert_operator_kept(&h);

    // Tried again: a 408 fails it the same way.
    let call = record(&h);
    h.engine.transfer(h.at(), call, "damkar").expect("again");
    let invite = h
        .drain()
        .requests_to(AGENCY, Method::Invite)
        .pop()
        .expect("INVITE");
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 408, "Request Timeout", None),
    );
    assert_eq!(out.events, [failed("408 response")]);
    assert_operator_kept(&h);

    // Once more: it rings past acd.transfer_ring_timeout_s.
    h.engine.transfer(h.at(), call, "damkar").expect("again");
    let invite = h
        .drain()
        .requests_to(AGENCY, Method::Invite)
        .pop()
        .expect("INVITE");
    h.input(AGENCY, &agency_response(&invite, 180, "Ringing", None));
    assert!(h.advance(29_000).events.is_empty());
    let out = h.advance(1_000);
    assert_eq!(out.requests_to(AGENCY, Method::Cancel).len(), 1, "§9.1");
    assert_eq!(out.events, [failed("no answer within the ring timeout")]);
    // Its 487 after the CANCEL records nothing more.
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 487, "Request Terminated", None),
    );
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert_operator_kept(&h);
    // A 2xx crossing the CANCEL would be ACKed and ended, not bridged.
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 200, "OK", Some(SDP_AGENCY)),
    );
    assert!(out.events.is_empty());
    assert_operator_kept(&h);
}

#[test]
fn an_agency_answer_without_the_callers_codec_is_ended_and_the_operator_stays() {
    let mut h = transfer_harness();
    let (_, _, invite, _) = transferring(&mut h, "t4");
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 200, "OK", Some(SDP_AGENCY_PCMU)),
    );
    assert_eq!(out.requests_to(AGENCY, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(AGENCY, Method::Bye).len(), 1);
    assert!(out.to(OP1).is_empty());
    assert!(
        !out.media
            .iter()
            .any(|m| matches!(m, MediaCommand::SetPeer { .. }))
    );
    assert_eq!(out.events, [failed("no common codec")]);
    assert_operator_kept(&h);
}

#[test]
fn the_caller_hanging_up_while_the_agency_rings_cancels_it() {
    let mut h = transfer_harness();
    let (ok, _, invite, _) = transferring(&mut h, "t5");
    h.input(AGENCY, &agency_response(&invite, 180, "Ringing", None));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "t5bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(AGENCY, Method::Cancel).len(), 1);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(
        out.events,
        [
            failed("the caller hung up"),
            // The agency never got the caller: a drop (`call::dropped`).
            CallEventKind::Dropped {
                reason: "the caller hung up".to_owned()
            },
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered
            }
        ]
    );
    assert_eq!(h.engine.live_calls(), 0);
    // The ring timeout that was armed does nothing.
    assert!(h.advance(31_000).events.is_empty());
}

#[test]
fn the_operator_hanging_up_while_the_agency_rings_leaves_the_caller_to_the_agency() {
    let mut h = transfer_harness();
    let (_, ack, invite, _) = transferring(&mut h, "t6");
    h.input(AGENCY, &agency_response(&invite, 180, "Ringing", None));
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(out.statuses_to(OP1), [200]);
    assert!(out.to(TRUNK).is_empty(), "the caller stays on the line");
    assert!(out.to(AGENCY).is_empty(), "the transfer goes on");
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::WrapUp { .. })
    ));
    let live = h.engine.snapshot(h.at().mono);
    assert_eq!(live.in_progress[0].stage.as_str(), "transferring");
    // A second transfer is refused: nobody answered the call now.
    assert_eq!(
        h.engine.transfer(h.at(), record(&h), "damkar"),
        Err(TransferError::NotAnswered)
    );

    let out = h.input(
        AGENCY,
        &agency_response(&invite, 200, "OK", Some(SDP_AGENCY)),
    );
    assert_eq!(out.requests_to(AGENCY, Method::Ack).len(), 1);
    assert!(out.to(OP1).is_empty(), "1001's leg ended already");
    assert_eq!(out.events, [answered()]);
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Operator, rtp, .. } if *rtp == addr("127.0.0.8:9000")
    )));
}

/// The operator left, the agency still rings, and the caller hangs up: nobody got the
/// caller, so it is a drop (`call::dropped`) like one while the operator was on.
#[test]
fn the_caller_hanging_up_after_the_operator_left_a_ringing_transfer_is_a_drop() {
    let mut h = transfer_harness();
    let (ok, ack, invite, _) = transferring(&mut h, "t9");
    h.input(AGENCY, &agency_response(&invite, 180, "Ringing", None));
    h.input(OP1, &operator_bye(&ack));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "t9bye"));
    assert_eq!(out.requests_to(AGENCY, Method::Cancel).len(), 1);
    assert!(
        out.events.contains(&CallEventKind::Dropped {
            reason: "the caller hung up".to_owned()
        }),
        "{:?}",
        out.events
    );
    assert_eq!(h.engine.callbacks().len(), 1, "listed for a callback");
}

#[test]
fn a_failed_transfer_after_the_operator_left_puts_the_caller_back_in_the_queue() {
    let mut h = transfer_harness();
    let (_, ack, invite, _) = transferring(&mut h, "t7");
    h.register("1002", OP2);
    h.input(OP1, &operator_bye(&ack));
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 503, "Service Unavailable", None),
    );
    assert_eq!(out.events[0], failed("503 response"));
    assert!(
        matches!(&out.events[1..], [CallEventKind::Offered { operator }] if operator == "1002"),
        "offered again at once: {:?}",
        out.events
    );
    assert_eq!(out.requests_to(OP2, Method::Invite).len(), 1);
    assert!(out.to(TRUNK).is_empty(), "no second 2xx to the trunk");
}

#[test]
fn a_second_transfer_while_one_rings_and_the_other_refusals() {
    let mut h = transfer_harness();
    answered_call(&mut h, "t8", "");
    let call = record(&h);
    let now = h.at();
    assert_eq!(
        h.engine.transfer(now, Uuid::from_u128(7), "damkar"),
        Err(TransferError::UnknownCall)
    );
    assert_eq!(
        h.engine.transfer(now, call, "basarnas"),
        Err(TransferError::UnknownAgency {
            allowed: vec!["damkar".to_owned(), "polri".to_owned()]
        })
    );
    assert_eq!(
        h.engine.transfer(now, call, "polri"),
        Err(TransferError::NoTransferUri("polri".to_owned()))
    );
    assert!(h.drain().sent.is_empty(), "refusals send nothing");
    h.engine.transfer(now, call, "damkar").expect("placed");
    assert_eq!(h.drain().requests_to(AGENCY, Method::Invite).len(), 1);
    assert_eq!(
        h.engine.transfer(now, call, "damkar"),
        Err(TransferError::InProgress)
    );
    let out = h.drain();
    assert!(out.sent.is_empty() && out.events.is_empty());

    // A call still waiting for an operator cannot be transferred.
    let mut h = transfer_harness();
    h.input(TRUNK, &trunk_invite("t9"));
    assert_eq!(
        h.engine.transfer(h.at(), record(&h), "damkar"),
        Err(TransferError::NotAnswered)
    );
}

#[test]
fn an_agency_uri_siaga_cannot_call_is_refused() {
    let mut h = transfer_harness();
    let mut config = h.engine.config().clone();
    config.calls.agencies[0].transfer_uri = Some("sips:113@127.0.0.8".to_owned());
    h.engine = Engine::with_seed(config, 11);
    answered_call(&mut h, "t10", "");
    assert_eq!(
        h.engine.transfer(h.at(), record(&h), "damkar"),
        Err(TransferError::Unreachable(
            crate::engine::call::IpUriError::Secure
        ))
    );
}

#[test]
fn the_agencys_leg_lost_after_it_answered_requeues_the_caller_for_an_operator() {
    let mut h = transfer_harness();
    let (ok, _, invite, _) = transferring(&mut h, "t11");
    let out = h.input(
        AGENCY,
        &agency_response(&invite, 200, "OK", Some(SDP_AGENCY)),
    );
    let ack = out.requests_to(AGENCY, Method::Ack).pop().expect("ACK");
    h.register("1002", OP2);
    let bye = operator_bye(&ack).replace(OP1, AGENCY).replace(
        "Content-Length: 0",
        "Reason: SIP;cause=503\r\nContent-Length: 0",
    );
    let out = h.input(AGENCY, &bye);
    assert_eq!(out.statuses_to(AGENCY), [200]);
    assert!(out.to(TRUNK).is_empty(), "the caller stays connected");
    assert_eq!(
        out.events[0],
        failed("mid-call: BYE with Reason SIP;cause=503")
    );
    // 1001 is in wrap-up: 1002 is offered the caller, and its answer needs no 2xx to the
    // trunk.
    let offer = out.requests_to(OP2, Method::Invite).pop().expect("offered");
    let out = h.input(
        OP2,
        &phone_response(&offer, 200, "OK", "op2", Some(SDP_OPERATOR)),
    );
    assert!(out.to(TRUNK).is_empty(), "no second 2xx to the trunk");
    assert_eq!(
        out.events,
        [CallEventKind::Answered {
            operator: "1002".to_owned()
        }]
    );
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "t11bye"));
    assert_eq!(out.requests_to(OP2, Method::Bye).len(), 1);
}
