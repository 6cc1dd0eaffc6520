//! What real trunks send, in virtual time (issue 4 items 2–4): header names in any form,
//! `tel:` and `urn:service:sos` targets, IPv6 (RFC 5118), several Vias (RFC 3581),
//! asserted identities and privacy (RFC 3323/3325), Diversion and History-Info
//! (RFC 5806, RFC 7044), route sets (RFC 3261 §12.2.1.1) and Max-Forwards (RFC 7332).

use super::*;
use crate::engine::media::Side;

/// A trunk INVITE to `ruri` from `from` (Via, Contact), with `extra` headers and `sdp`.
fn invite_to(ruri: &str, id: &str, from: &str, extra: &str, sdp: &str) -> String {
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+6281100001@trunk.test>;tag=tr{id}\r\nTo: <{ruri}>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@{from}>\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// `trunk_invite(id)` with `extra` headers after Max-Forwards.
fn trunk_invite_with(id: &str, extra: &str) -> String {
    trunk_invite(id).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
    )
}

fn received_event(out: &Out) -> (Option<String>, String, Option<String>) {
    out.events
        .iter()
        .find_map(|e| match e {
            CallEventKind::Received {
                caller,
                called,
                original_called,
                ..
            } => Some((caller.clone(), called.clone(), original_called.clone())),
            _ => None,
        })
        .expect("a Received event")
}

fn values(m: &SipMessage, name: HeaderName) -> Vec<String> {
    m.headers_named(name)
        .map(|f| f.value_str().expect("text").into_owned())
        .collect()
}

// ---- item 4: Max-Forwards ----------------------------------------------------------------

/// RFC 7332 §3: an operator leg would need Max-Forwards -1, so none is placed; the call is
/// still taken (100, 180, recorded, queued) and does not hold up the calls behind it.
#[test]
fn an_emergency_invite_with_max_forwards_0_is_taken_and_stays_queued() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let zero = trunk_invite("mf0").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let out = h.input(TRUNK, &zero);
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert!(matches!(
        out.events[..],
        [CallEventKind::Received { .. }, CallEventKind::Queued { .. }]
    ));
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    assert_eq!(h.engine.waiting_calls(), 1);
    // The next call is offered to the operator the first one could not reach.
    let out = h.input(TRUNK, &trunk_invite("mf70"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    assert_eq!(offer.max_forwards(), Ok(Some(69)));
    assert_eq!(h.engine.waiting_calls(), 1);
    // Time passes: the 180 is refreshed, no leg is ever placed for it.
    let out = h.advance(60_000);
    assert!(out.requests_to(OP2, Method::Invite).is_empty());
    assert!(out.statuses_to(TRUNK).contains(&180));
    // The caller gives up: recorded as abandoned in the queue.
    let out = h.input(TRUNK, &cancel_of(&zero));
    assert_eq!(out.statuses_to(TRUNK), [200, 487]);
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Caller,
        disposition: Disposition::AbandonedInQueue
    }));
}

#[test]
fn operator_legs_carry_the_inbound_max_forwards_minus_one() {
    for (inbound, outbound) in [
        ("Max-Forwards: 1\r\n", 0),
        ("", 69),
        ("Max-Forwards: 9\r\n", 8),
    ] {
        let mut h = Harness::new(15);
        h.register("1001", OP1);
        let invite = trunk_invite("mf").replace("Max-Forwards: 70\r\n", inbound);
        let out = h.input(TRUNK, &invite);
        let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
        assert_eq!(offer.max_forwards(), Ok(Some(outbound)), "{inbound:?}");
    }
}

// ---- item 3: route sets --------------------------------------------------------------------

/// The trunk's SBC record-routed the call (loose routing, `lr`): siaga's BYE goes to the
/// SBC with its Route, the Request-URI staying the trunk's Contact (RFC 3261 §12.2.1.1).
#[test]
fn the_bye_to_the_trunk_goes_through_its_record_routing_sbc() {
    let mut h = Harness::new(15);
    let (_, ack) = answered_call(&mut h, "rr1", &format!("Record-Route: <sip:{SBC};lr>\r\n"));
    let out = h.input(OP1, &operator_bye(&ack));
    assert!(out.requests_to(TRUNK, Method::Bye).is_empty());
    let bye = out
        .requests_to(SBC, Method::Bye)
        .pop()
        .expect("BYE via the SBC");
    assert_eq!(bye.request_uri_raw(), Some("sip:gw@127.0.0.1:5099"));
    assert_eq!(values(&bye, HeaderName::Route), [format!("<sip:{SBC};lr>")]);
    // The SBC's 200 ends the BYE's transaction: nothing is resent.
    h.input(SBC, &phone_response(&bye, 200, "OK", "x", None));
    assert!(h.advance(40_000).requests_to(SBC, Method::Bye).is_empty());
}

/// A strict router (no `lr`, RFC 2543): its URI becomes the Request-URI and the trunk's
/// Contact the last Route (RFC 3261 §12.2.1.1).
#[test]
fn a_strict_routing_sbc_gets_the_request_uri_and_the_target_as_last_route() {
    let mut h = Harness::new(15);
    let (_, ack) = answered_call(&mut h, "rr2", &format!("Record-Route: <sip:{SBC}>\r\n"));
    let out = h.input(OP1, &operator_bye(&ack));
    let bye = out
        .requests_to(SBC, Method::Bye)
        .pop()
        .expect("BYE via the SBC");
    assert_eq!(bye.request_uri_raw(), Some("sip:127.0.0.1:5098"));
    assert_eq!(
        values(&bye, HeaderName::Route),
        [format!("<sip:gw@{TRUNK}>")]
    );
}

/// An SBC that record-routes with a host name: siaga resolves none, so the BYE goes where
/// the INVITE came from, still carrying the Route.
#[test]
fn a_record_route_host_name_falls_back_to_the_packet_source() {
    let mut h = Harness::new(15);
    let (_, ack) = answered_call(&mut h, "rr3", "Record-Route: <sip:sbc.trunk.test;lr>\r\n");
    let out = h.input(OP1, &operator_bye(&ack));
    let bye = out
        .requests_to(TRUNK, Method::Bye)
        .pop()
        .expect("BYE to the source");
    assert_eq!(values(&bye, HeaderName::Route), ["<sip:sbc.trunk.test;lr>"]);
}

/// Not only the BYE: siaga's session refresh (UPDATE, RFC 4028), the re-INVITE carrying
/// the operator's hold, and the ACK of the trunk's 2xx to it go through the SBC too.
#[test]
fn every_request_to_the_trunk_follows_its_route_set() {
    let mut h = Harness::new(15);
    let extra = format!(
        "Record-Route: <sip:{SBC};lr>\r\nSupported: timer\r\nSession-Expires: 120;refresher=uas\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n"
    );
    let (_, ack) = answered_call(&mut h, "rr5", &extra);
    let via_sbc = |m: &SipMessage| {
        assert_eq!(m.request_uri_raw(), Some("sip:gw@127.0.0.1:5099"));
        assert_eq!(values(m, HeaderName::Route), [format!("<sip:{SBC};lr>")]);
    };
    let out = h.advance(60_000);
    assert!(out.requests_to(TRUNK, Method::Update).is_empty());
    let update = out
        .requests_to(SBC, Method::Update)
        .pop()
        .expect("refresh via the SBC");
    via_sbc(&update);
    h.input(SBC, &phone_response(&update, 200, "OK", "x", None));

    let hold = SDP_OPERATOR.replace("o=op 1 1", "o=op 1 2") + "a=sendonly\r\n";
    let reinvite = operator_bye(&ack)
        .replace("BYE sip:", "INVITE sip:")
        .replace("CSeq: 5 BYE", "CSeq: 6 INVITE")
        .replace("z9hG4bKopbye", "z9hG4bKophold")
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold}",
                hold.len()
            ),
        );
    let out = h.input(OP1, &reinvite);
    let to_trunk = out
        .requests_to(SBC, Method::Invite)
        .pop()
        .expect("re-INVITE via the SBC");
    via_sbc(&to_trunk);
    let held = SDP_TRUNK.replace("o=trunk 1 1", "o=trunk 1 2") + "a=recvonly\r\n";
    let out = h.input(SBC, &phone_response(&to_trunk, 200, "OK", "x", Some(&held)));
    let ack_trunk = out
        .requests_to(SBC, Method::Ack)
        .pop()
        .expect("ACK via the SBC");
    via_sbc(&ack_trunk);
    assert!(out.to(TRUNK).is_empty());
}

/// An operator's phone behind record-routing proxies: the ACK, the ACK of a retransmitted
/// 2xx and the BYE all go to the proxy nearest siaga — the last Record-Route, as the UAC's
/// route set is the Record-Route reversed (§12.1.2).
#[test]
fn operator_legs_follow_their_route_set() {
    const FAR: &str = "127.0.0.1:5097";
    const NEAR: &str = "127.0.0.1:5096";
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("rr4"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let ok = phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)).replace(
        "Contact:",
        &format!("Record-Route: <sip:{FAR};lr>\r\nRecord-Route: <sip:{NEAR};lr>\r\nContact:"),
    );
    let out = h.input(OP1, &ok);
    let ack = out
        .requests_to(NEAR, Method::Ack)
        .pop()
        .expect("ACK via the proxy");
    assert_eq!(ack.request_uri_raw(), Some("sip:phone@127.0.0.1:5071"));
    let reversed = [format!("<sip:{NEAR};lr>"), format!("<sip:{FAR};lr>")];
    assert_eq!(values(&ack, HeaderName::Route), reversed);
    assert!(out.requests_to(OP1, Method::Ack).is_empty());
    let ok_trunk = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok_trunk, 1, "rr4ack"));
    let out = h.input(OP1, &ok);
    assert_eq!(out.requests_to(NEAR, Method::Ack).len(), 1, "ACKed again");
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok_trunk, 2, "rr4bye"));
    let bye = out
        .requests_to(NEAR, Method::Bye)
        .pop()
        .expect("BYE via the proxy");
    assert_eq!(values(&bye, HeaderName::Route), reversed);
}

// ---- item 2: what trunks send --------------------------------------------------------------

/// The INVITE of `trunk_invite(id)` written as another SBC would: compact names, other
/// letter case, whitespace before colons, a folded Via.
fn compact(text: &str) -> String {
    text.replace("Via: SIP/2.0/UDP ", "v  :SIP/2.0/UDP\r\n   ")
        .replace("From: ", "f: ")
        .replace("To: ", "T : ")
        .replace("Call-ID: ", "i:")
        .replace("CSeq: ", "cseq: ")
        .replace("Contact: ", "m: ")
        .replace("Content-Type: ", "c: ")
        .replace("Content-Length: ", "l: ")
        .replace("Max-Forwards: ", "MAX-FORWARDS: ")
        .replace("P-Asserted-Identity: ", "p-asserted-identity: ")
}

/// RFC 3261 §7.3.3, §17.2.3: a retransmission written with compact names matches the
/// transaction of the INVITE written in full (and the reverse), and so does its CANCEL.
#[test]
fn compact_and_long_header_names_match_one_transaction() {
    let mut h = Harness::new(15);
    let long = trunk_invite("cf1");
    assert_eq!(h.input(TRUNK, &long).statuses_to(TRUNK), [100, 180]);
    let out = h.input(TRUNK, &compact(&long));
    assert_eq!(
        out.statuses_to(TRUNK),
        [180],
        "absorbed as a retransmission"
    );
    assert!(out.events.is_empty());
    assert_eq!(h.engine.live_calls(), 1);
    let out = h.input(TRUNK, &compact(&cancel_of(&long)));
    assert_eq!(out.statuses_to(TRUNK), [200, 487]);

    // The other way round: the call is taken in compact form.
    let short = compact(&trunk_invite("cf2"));
    assert_eq!(h.input(TRUNK, &short).statuses_to(TRUNK), [100, 180]);
    let out = h.input(TRUNK, &trunk_invite("cf2"));
    assert_eq!(out.statuses_to(TRUNK), [180]);
    assert_eq!(h.engine.live_calls(), 1);
}

/// A whole call with every message in compact form: the operator's 2xx (`v:` …) finds
/// its client transaction, the trunk's ACK and BYE their dialog.
#[test]
fn a_whole_call_in_compact_form() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &compact(&trunk_invite("cf3")));
    let (caller, called, _) = received_event(&out);
    assert_eq!(
        (caller.as_deref(), called.as_str()),
        (Some("+628115550001"), "112")
    );
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    let ok = phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR))
        .replace("Via: ", "v: ")
        .replace("From: ", "f: ")
        .replace("To: ", "t: ")
        .replace("Call-ID: ", "i: ")
        .replace("Contact: ", "m: ")
        .replace("Content-Type: ", "c: ")
        .replace("Content-Length: ", "l: ");
    let out = h.input(OP1, &ok);
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1);
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &compact(&trunk_in_dialog("ACK", &ok, 1, "cf3ack")));
    assert!(
        h.advance(5_000).statuses_to(TRUNK).is_empty(),
        "ACK matched"
    );
    let out = h.input(TRUNK, &compact(&trunk_in_dialog("BYE", &ok, 2, "cf3bye")));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(h.engine.live_calls(), 0);
}

/// RFC 3966: `tel:` targets and numbers with visual separators are numbers; an INVITE to
/// `tel:112` or `sip:1-1-2@…;user=phone` is an emergency call, one to another number is not.
#[test]
fn tel_uris_and_visual_separators_are_read_as_numbers() {
    let cases = [
        ("tel:112".to_owned(), Some("112")),
        ("tel:1-1-2;phone-context=+62".to_owned(), Some("112")),
        ("TEL:(112)".to_owned(), Some("112")),
        (format!("sip:1-1-2@{SIAGA};user=phone"), Some("112")),
        (
            format!("sip:1.1.2;phone-context=+62@{SIAGA};user=phone"),
            Some("112"),
        ),
        (format!("sip:%31%31%32@{SIAGA}"), Some("112")),
        ("tel:+62-21-555-0100".to_owned(), None),
        ("tel:911".to_owned(), None),
    ];
    for (i, (ruri, called)) in cases.iter().enumerate() {
        let mut h = Harness::new(15);
        let invite = invite_to(ruri, &format!("tel{i}"), TRUNK, "", SDP_TRUNK);
        let out = h.input(TRUNK, &invite);
        match called {
            Some(number) => {
                assert_eq!(out.statuses_to(TRUNK), [100, 180], "{ruri}");
                assert_eq!(received_event(&out).1, *number, "{ruri}");
            }
            None => assert_eq!(out.statuses_to(TRUNK), [404], "{ruri}"),
        }
    }
    // tel: in From (no assertion) is the caller's number.
    let mut h = Harness::new(15);
    let invite = trunk_invite("tel-from")
        .replace(
            "From: <sip:+6281100001@trunk.test>",
            "From: \"Caller\" <tel:+62-812-(555)-0002>",
        )
        .replace("P-Asserted-Identity: <tel:+62811-555-0001>\r\n", "");
    let out = h.input(TRUNK, &invite);
    assert_eq!(received_event(&out).0.as_deref(), Some("+628125550002"));
}

/// RFC 5031: `urn:service:sos` and its sub-services are emergency calls, recorded as
/// dialled; other service URNs are not.
#[test]
fn service_urns_for_emergencies_are_taken() {
    for urn in [
        "urn:service:sos",
        "urn:service:sos.fire",
        "URN:service:SOS.police",
    ] {
        let mut h = Harness::new(15);
        let out = h.input(TRUNK, &invite_to(urn, "urn", TRUNK, "", SDP_TRUNK));
        assert_eq!(out.statuses_to(TRUNK), [100, 180], "{urn}");
        assert_eq!(received_event(&out).1, urn);
    }
    let mut h = Harness::new(15);
    let out = h.input(
        TRUNK,
        &invite_to("urn:service:counseling", "urn", TRUNK, "", SDP_TRUNK),
    );
    assert_eq!(out.statuses_to(TRUNK), [404]);
}

/// Unknown and extension headers, even unknown compact forms, change nothing.
#[test]
fn unknown_headers_are_ignored() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let extra = "X-Telco-Cell: 510-10-1234-5678\r\nq: what is this\r\nP-Access-Network-Info: 3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=5101012345\r\nGeolocation-Routing: no\r\nX-Empty:\r\nRecv-Info:\r\n";
    let out = h.input(TRUNK, &trunk_invite_with("unk", extra));
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    // Nothing of them is copied to the operator's leg.
    assert!(offer.headers_raw_named("X-Telco-Cell").next().is_none());
}

/// RFC 3261 §18.2.2, RFC 3581: with several Vias the responses go to the top one — at the
/// packet's source port when it asks `rport`, else at its sent-by port — stamped with
/// `received`/`rport`; the other Vias are copied unchanged.
#[test]
fn several_vias_answer_the_top_one_with_received_and_rport() {
    let below = "Via: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKup;received=192.0.2.99\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKfirst\r\n";
    // The trunk's INVITE from 127.0.0.1:5099 with top Via `sent_by` (`;rport` when
    // `rport`) above `below`: returns what siaga sent to `to` and the first Via of the last.
    let top_via = |id: &str, sent_by: &str, rport: bool, to: &str| {
        let mut h = Harness::new(15);
        let top = if rport { ";rport\r\n" } else { "\r\n" };
        let invite = trunk_invite(id)
            .replace(";rport\r\n", &format!("{top}{below}"))
            .replace(
                &format!("SIP/2.0/UDP {TRUNK}"),
                &format!("SIP/2.0/UDP {sent_by}"),
            );
        let sent = h.input(TRUNK, &invite).to(to);
        let vias = sent
            .last()
            .map(|m| values(m, HeaderName::Via))
            .unwrap_or_default();
        (sent.len(), vias)
    };
    let (count, vias) = top_via("via1", "127.0.0.1:5096", true, TRUNK);
    assert_eq!(count, 2, "100 and 180 to the source port");
    assert_eq!(
        vias[0],
        "SIP/2.0/UDP 127.0.0.1:5096;branch=z9hG4bKvia1;rport=5099;received=127.0.0.1"
    );
    assert_eq!(vias[1..].join("\r\n") + "\r\n", below.replace("Via: ", ""));
    // Without rport: the sent-by port of the top Via, at the source IP.
    let (count, vias) = top_via("via2", "trunk.test:5096", false, "127.0.0.1:5096");
    assert_eq!(count, 2, "100 and 180 to the Via's port");
    assert_eq!(
        vias[0],
        "SIP/2.0/UDP trunk.test:5096;branch=z9hG4bKvia2;received=127.0.0.1"
    );
}

const SDP_V6: &str = "v=0\r\no=trunk 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n";
const TRUNK_V6: &str = "[::1]:5099";

/// RFC 5118: an IPv6 trunk (Via, Contact, Request-URI and SDP in IPv6) is relayed when
/// siaga's relay is IPv6 ...
#[test]
fn an_ipv6_trunk_is_relayed_by_an_ipv6_relay() {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.media_ip = "::1".parse().expect("literal");
    h.engine = Engine::with_seed(config, 11);
    h.register("1001", OP1);
    let invite = invite_to("sip:112@[::1]:5060", "v6", TRUNK_V6, "", SDP_V6);
    let out = h.input(TRUNK_V6, &invite);
    assert_eq!(out.statuses_to(TRUNK_V6), [100, 180]);
    let ringing = out.to(TRUNK_V6).pop().expect("180");
    assert!(
        values(&ringing, HeaderName::Via)[0].ends_with(";rport=5099;received=::1"),
        "{:?}",
        values(&ringing, HeaderName::Via)
    );
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Caller, rtp, .. } if *rtp == addr("[::1]:6000")
    )));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    assert!(String::from_utf8_lossy(offer.body()).contains("c=IN IP6 ::1"));
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK_V6).pop().expect("2xx to the IPv6 trunk");
    assert!(String::from_utf8_lossy(ok.body()).contains("c=IN IP6 ::1"));
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    let out = h.input(OP1, &operator_bye(&ack));
    let bye = out.requests_to(TRUNK_V6, Method::Bye).pop().expect("BYE");
    assert_eq!(bye.request_uri_raw(), Some("sip:gw@[::1]:5099"));
}

/// ... and refused with 488 and a Warning (RFC 3261 §20.43 code 301) when the relay is
/// IPv4, recorded as failed. RFC 5118 §4.9's IPv4-mapped address is IPv4.
#[test]
fn an_ipv6_offer_to_an_ipv4_relay_draws_488_with_a_warning() {
    let mut h = Harness::new(15);
    let invite = invite_to("sip:112@[::1]:5060", "v6b", TRUNK_V6, "", SDP_V6);
    let out = h.input(TRUNK_V6, &invite);
    assert_eq!(out.statuses_to(TRUNK_V6), [488]);
    let refusal = out.to(TRUNK_V6).pop().expect("488");
    let warning = values(&refusal, HeaderName::Warning);
    assert_eq!(warning.len(), 1);
    assert!(
        warning[0].starts_with("301 127.0.0.1:5060 \"Incompatible network address formats"),
        "{warning:?}"
    );
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Siaga,
        disposition: Disposition::Failed
    }));

    let mapped = SDP_V6.replace(" ::1", " ::ffff:127.0.0.1");
    let invite = invite_to("sip:112@[::1]:5060", "v6c", TRUNK_V6, "", &mapped);
    let out = h.input(TRUNK_V6, &invite);
    assert_eq!(out.statuses_to(TRUNK_V6), [100, 180]);
    assert!(out.media.iter().any(|m| matches!(
        m,
        MediaCommand::SetPeer { side: Side::Caller, rtp, .. } if *rtp == addr("127.0.0.1:6000")
    )));
}

/// A G.711-less offer's 488 says why too (code 305).
#[test]
fn a_488_for_codecs_names_the_media_format() {
    let mut h = Harness::new(15);
    let g729 = SDP_TRUNK.replace("RTP/AVP 8 0 101", "RTP/AVP 18").replace(
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:18 G729/8000\r\n",
    );
    let out = h.input(
        TRUNK,
        &invite_to(&format!("sip:112@{SIAGA}"), "g729", TRUNK, "", &g729),
    );
    let refusal = out.to(TRUNK).pop().expect("488");
    assert_eq!(refusal.status(), Some(488));
    assert!(values(&refusal, HeaderName::Warning)[0].starts_with("305 "));
}

/// RFC 3323/3325: a caller who asked for privacy is recorded with the trunk's asserted
/// number, and the operator's phone shows it (From and P-Asserted-Identity); the
/// Privacy request itself is not passed to the phone.
#[test]
fn a_withheld_number_is_recorded_and_shown_to_the_operator() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("priv1")
        .replace(
            "From: <sip:+6281100001@trunk.test>",
            "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
        )
        .replace(
            "P-Asserted-Identity: <tel:+62811-555-0001>\r\n",
            "Privacy: id\r\nP-Asserted-Identity: <tel:+62811-555-0009>\r\n",
        );
    let out = h.input(TRUNK, &invite);
    assert_eq!(received_event(&out).0.as_deref(), Some("+628115550009"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    let from = offer.from().expect("From");
    assert_eq!(from.display_name.as_deref(), Some("+628115550009"));
    assert_eq!(
        values(&offer, HeaderName::PAssertedIdentity),
        ["<tel:+62811-555-0009>"]
    );
    assert!(offer.header(HeaderName::Privacy).is_none());
}

/// RFC 3325 §5: an identity asserted by a source outside the trust domain (accepted only
/// because `trunk.other_sources = "accept"`) is not believed, nor passed on.
#[test]
fn an_assertion_from_outside_the_trust_domain_is_ignored() {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.accept_other_sources = true;
    config.calls.trunk_sources = vec!["127.0.0.99/32".parse().expect("net")];
    h.engine = Engine::with_seed(config, 11);
    h.register("1001", OP1);
    let invite = trunk_invite("priv2").replace(
        "From: <sip:+6281100001@trunk.test>",
        "From: <sip:anonymous@anonymous.invalid>",
    );
    let out = h.input(TRUNK, &invite);
    assert_eq!(received_event(&out).0, None);
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("offered");
    assert!(offer.header(HeaderName::PAssertedIdentity).is_none());
    assert_eq!(
        offer.from().expect("From").display_name.as_deref(),
        Some("Anonymous")
    );
}

/// RFC 7044, RFC 5806: the number first dialled is recorded with the call.
#[test]
fn history_info_and_diversion_record_the_number_first_dialled() {
    let cases = [
        (
            "History-Info: <sip:110@telco.test;user=phone>;index=1,\r\n <sip:112@127.0.0.1:5060?Reason=SIP%3Bcause%3D302>;index=1.1\r\n",
            Some("110"),
        ),
        (
            "Diversion: <tel:113>;reason=unconditional;counter=1\r\nDiversion: <sip:+62-21-110@telco.test>;reason=no-answer\r\n",
            Some("+6221110"),
        ),
        ("", None),
    ];
    for (extra, first) in cases {
        let mut h = Harness::new(15);
        let out = h.input(TRUNK, &trunk_invite_with("div", extra));
        assert_eq!(out.statuses_to(TRUNK), [100, 180], "{extra}");
        let (_, called, original) = received_event(&out);
        assert_eq!(
            (called.as_str(), original.as_deref()),
            ("112", first),
            "{extra}"
        );
    }
}
