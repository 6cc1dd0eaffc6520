//! Transfers to a `tel:` agency (`agencies[].transfer_uri = "tel:…"`) in virtual time: the
//! INVITE goes to the first trunk gateway that is up as `sip:<number>@<gateway>;user=phone`,
//! fails over to the next gateway up on 408/5xx/no response (not on busy), and with no
//! gateway up the transfer is refused.

use super::*;
use crate::engine::call::{TransferAgency, TransferError};
use crate::engine::trunk_health::Gateway;
use uuid::Uuid;

const GW1: &str = "127.0.0.9:5060";
const GW2: &str = "127.0.0.10:5060";
const TEL: &str = "tel:+62-21-113";
const SDP_AGENCY: &str = "v=0\r\no=agency 5 5 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 9000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Operator 1001, agency `damkar` at [`TEL`], gateways `GW1` then `GW2` (probed, and
/// answering the probe when `up` says), transfers ringing 30 s.
fn tel_harness(up: [bool; 2]) -> Harness {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.trunk_sources = vec!["127.0.0.1/32".parse().expect("net")];
    config.calls.acd.transfer_ring_timeout = Duration::from_secs(30);
    config.calls.agencies = vec![TransferAgency {
        id: "damkar".to_owned(),
        transfer_uri: Some(TEL.to_owned()),
    }];
    config.calls.trunk_health.gateways = [GW1, GW2]
        .into_iter()
        .map(|gw| Gateway {
            uri: format!("sip:{gw}"),
            address: addr(gw),
            transport: Transport::Udp,
        })
        .collect();
    h.engine = Engine::with_seed(config, 11);
    let out = h.advance(0);
    for (gw, up) in [GW1, GW2].into_iter().zip(up) {
        let options = out
            .requests_to(gw, Method::Options)
            .pop()
            .expect("every gateway is probed");
        if up {
            h.input(gw, &gateway_response(gw, &options, 200, "OK", None));
        }
    }
    h
}

fn gateway_response(
    gw: &str,
    request: &SipMessage,
    status: u16,
    reason: &str,
    sdp: Option<&str>,
) -> String {
    phone_response(request, status, reason, "gw", sdp).replace(
        "Contact: <sip:phone@127.0.0.1:5071>",
        &format!("Contact: <sip:gw@{gw}>"),
    )
}

fn record(h: &Harness) -> Uuid {
    h.engine
        .calls
        .calls
        .values()
        .next()
        .expect("a live call")
        .record
}

/// Answers call `id` through 1001 and transfers it: the INVITE to `gw`.
fn transferring(h: &mut Harness, id: &str, gw: &str) -> SipMessage {
    answered_call(h, id, "");
    let call = record(h);
    h.engine
        .transfer(h.at(), call, "damkar")
        .expect("transfer placed");
    h.drain()
        .requests_to(gw, Method::Invite)
        .pop()
        .expect("an INVITE to the gateway")
}

#[test]
fn a_tel_transfer_goes_to_the_first_gateway_up_as_user_phone_and_is_bridged() {
    let mut h = tel_harness([true, true]);
    let invite = transferring(&mut h, "tt1", GW1);
    assert_eq!(
        invite.request_uri_raw(),
        Some("sip:+6221113@127.0.0.9:5060;user=phone")
    );
    assert_eq!(
        hdr(&invite, HeaderName::To),
        "<sip:+6221113@127.0.0.9:5060;user=phone>"
    );
    assert_eq!(invite.max_forwards().ok().flatten(), Some(69));
    let out = h.input(
        GW1,
        &gateway_response(GW1, &invite, 200, "OK", Some(SDP_AGENCY)),
    );
    assert_eq!(out.requests_to(GW1, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(
        out.events,
        [CallEventKind::TransferAnswered {
            agency: "damkar".to_owned(),
            target: TEL.to_owned(),
        }],
        "the event names the configured tel: URI"
    );
}

/// 503, 408 and a 500 from the first gateway: the same transfer goes to the next gateway
/// up (a new transaction and dialog), nothing recorded meanwhile; the operator stays.
#[test]
fn a_gateway_that_cannot_place_the_transfer_fails_over_to_the_next_one_up() {
    for (status, reason) in [
        (503, "Service Unavailable"),
        (408, "Request Timeout"),
        (500, "Server Internal Error"),
    ] {
        let mut h = tel_harness([true, true]);
        let first = transferring(&mut h, "tt2", GW1);
        let out = h.input(GW1, &gateway_response(GW1, &first, status, reason, None));
        assert_eq!(out.requests_to(GW1, Method::Ack).len(), 1, "{status} ACKed");
        let second = out
            .requests_to(GW2, Method::Invite)
            .pop()
            .unwrap_or_else(|| panic!("{status}: INVITE to the next gateway"));
        assert_eq!(
            second.request_uri_raw(),
            Some("sip:+6221113@127.0.0.10:5060;user=phone")
        );
        assert_ne!(second.call_id().ok(), first.call_id().ok());
        assert!(out.events.is_empty(), "{status}: {:?}", out.events);
        assert_eq!(h.engine.call_operator(record(&h)), Some("1001"));
        // The second gateway failing too: no third to try, the transfer fails.
        let out = h.input(GW2, &gateway_response(GW2, &second, status, reason, None));
        assert_eq!(
            out.events,
            [CallEventKind::TransferFailed {
                agency: "damkar".to_owned(),
                target: TEL.to_owned(),
                reason: format!("{status} response"),
            }]
        );
        assert_eq!(h.engine.call_operator(record(&h)), Some("1001"));
    }
}

/// Busy is the agency's answer, not the gateway's failure: no failover. A gateway that is
/// down is never tried, and the ring timeout runs from the first INVITE across failover.
#[test]
fn busy_is_no_failover_and_gateways_down_are_skipped() {
    let mut h = tel_harness([true, true]);
    let first = transferring(&mut h, "tt3", GW1);
    let out = h.input(GW1, &gateway_response(GW1, &first, 486, "Busy Here", None));
    assert!(out.requests_to(GW2, Method::Invite).is_empty());
    assert_eq!(out.events.len(), 1, "{:?}", out.events);

    let mut h = tel_harness([false, true]);
    let first = transferring(&mut h, "tt4", GW2);
    assert_eq!(
        first.request_uri_raw(),
        Some("sip:+6221113@127.0.0.10:5060;user=phone")
    );
    h.advance(10_000);
    let out = h.input(
        GW2,
        &gateway_response(GW2, &first, 503, "Unavailable", None),
    );
    assert!(
        out.requests_to(GW1, Method::Invite).is_empty(),
        "GW1 is down"
    );
    assert_eq!(out.events.len(), 1, "{:?}", out.events);

    let mut h = tel_harness([true, true]);
    let first = transferring(&mut h, "tt5", GW1);
    h.advance(20_000);
    let out = h.input(
        GW1,
        &gateway_response(GW1, &first, 503, "Unavailable", None),
    );
    let second = out
        .requests_to(GW2, Method::Invite)
        .pop()
        .expect("failover");
    h.input(GW2, &gateway_response(GW2, &second, 180, "Ringing", None));
    assert!(h.advance(9_000).events.is_empty());
    let out = h.advance(1_000);
    assert_eq!(
        out.requests_to(GW2, Method::Cancel).len(),
        1,
        "30 s from the first"
    );
    assert_eq!(out.events.len(), 1, "{:?}", out.events);
}

#[test]
fn with_no_gateway_up_a_tel_transfer_is_refused_and_nothing_is_sent() {
    let mut h = tel_harness([false, false]);
    answered_call(&mut h, "tt6", "");
    assert_eq!(
        h.engine.transfer(h.at(), record(&h), "damkar"),
        Err(TransferError::NoGateway)
    );
    let out = h.drain();
    assert!(out.events.is_empty());
    assert!(out.requests_to(GW1, Method::Invite).is_empty());
    assert!(out.requests_to(GW2, Method::Invite).is_empty());
    assert_eq!(TransferError::NoGateway.code(), "no_gateway");
    assert_eq!(h.engine.call_operator(record(&h)), Some("1001"));
}
