//! Engine scenarios in virtual time: no sockets, no sleeps. Each test feeds datagrams or
//! TCP frames to an [`Engine`] and asserts what it sends, where, and when.

use super::sip::{HeaderName, SipMessage};
use super::{Engine, EngineConfig, Input, Now, Output, Received, Transmit, Transport};
use crate::engine::ConnectionId;
use bytes::Bytes;
use std::net::SocketAddr;

const SIAGA: &str = "127.0.0.1:5060";
const PEER: &str = "127.0.0.1:5099";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address literal")
}

fn engine() -> Engine {
    Engine::with_seed(EngineConfig::for_tests(addr(SIAGA)), 7)
}

fn udp(text: &str) -> Input {
    Input::Received(Received {
        transport: Transport::Udp,
        source: addr(PEER),
        local: addr(SIAGA),
        connection: None,
        bytes: Bytes::from(text.replace('\n', "\r\n")),
    })
}

fn tcp(text: &str) -> Input {
    Input::Received(Received {
        transport: Transport::Tcp,
        source: addr(PEER),
        local: addr(SIAGA),
        connection: Some(ConnectionId(3)),
        bytes: Bytes::from(text.replace('\n', "\r\n")),
    })
}

/// Drains the engine: every transmit, and the final deadline.
fn drain(e: &mut Engine) -> (Vec<Transmit>, Option<super::MonoTime>) {
    let mut sent = Vec::new();
    loop {
        match e.poll_output() {
            Output::Transmit(t) => sent.push(t),
            Output::Wait { until } => return (sent, until),
            Output::Close { connection } => panic!("unexpected close of {connection:?}"),
            Output::Event(_) | Output::AgentEvent(_) | Output::Media(_) => {}
        }
    }
}

fn parsed(t: &Transmit) -> SipMessage {
    SipMessage::parse(t.bytes.clone(), Transport::Udp).expect("siaga sends parseable messages")
}

fn one_response(e: &mut Engine, now: u64, input: Input) -> SipMessage {
    e.handle_input(Now::from_millis(now), input);
    let (sent, _) = drain(e);
    assert_eq!(sent.len(), 1, "exactly one response: {sent:?}");
    parsed(&sent[0])
}

fn request(method: &str, ruri: &str, extra: &str) -> String {
    format!(
        "{method} {ruri} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-{method}-1\nMax-Forwards: 70\nFrom: <sip:peer@127.0.0.1>;tag=p1\nTo: <{ruri}>\nCall-ID: call-{method}@127.0.0.1\nCSeq: 1 {method}\n{extra}Content-Length: 0\n\n"
    )
}

fn header(msg: &SipMessage, name: HeaderName) -> String {
    msg.header(name)
        .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
        .unwrap_or_default()
}

#[test]
fn options_to_siaga_itself_draws_200_with_capabilities() {
    for ruri in [
        "sip:127.0.0.1:5060",
        "sip:siaga.test",
        "sip:anyone@siaga.test",
        "sip:ops@127.0.0.1:5060",
    ] {
        let mut e = engine();
        let r = one_response(&mut e, 0, udp(&request("OPTIONS", ruri, "")));
        assert_eq!(r.status(), Some(200), "{ruri}");
        assert!(header(&r, HeaderName::Allow).contains("INVITE"));
        assert!(header(&r, HeaderName::Allow).contains("OPTIONS"));
        assert_eq!(header(&r, HeaderName::Accept), "application/sdp");
        assert!(r.header(HeaderName::Supported).is_some());
        assert!(r.to().expect("To").tag().is_some());
        assert_eq!(r.call_id(), Ok("call-OPTIONS@127.0.0.1"));
    }
}

#[test]
fn options_with_max_forwards_zero_is_still_answered() {
    let mut e = engine();
    let text =
        request("OPTIONS", "sip:siaga.test", "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(one_response(&mut e, 0, udp(&text)).status(), Some(200));
}

#[test]
fn uas_core_rejections_follow_rfc3261_8_2() {
    type Case = (
        &'static str,
        String,
        u16,
        Option<(HeaderName, &'static str)>,
    );
    let cases: &[Case] = &[
        (
            "unknown method",
            request("FOO", "sip:siaga.test", ""),
            501,
            Some((HeaderName::Allow, "INVITE")),
        ),
        (
            "known, unsupported",
            request("SUBSCRIBE", "sip:siaga.test", ""),
            405,
            Some((HeaderName::Allow, "OPTIONS")),
        ),
        (
            "version",
            request("OPTIONS", "sip:siaga.test", "").replace(
                "OPTIONS sip:siaga.test SIP/2.0",
                "OPTIONS sip:siaga.test SIP/3.0",
            ),
            505,
            None,
        ),
        (
            "scheme",
            request("OPTIONS", "mailto:ops@siaga.test", ""),
            416,
            None,
        ),
        (
            "other domain",
            request("OPTIONS", "sip:ops@elsewhere.example", ""),
            404,
            None,
        ),
        (
            "unknown user",
            request("INVITE", "sip:999@siaga.test", ""),
            404,
            None,
        ),
        (
            "require",
            request("OPTIONS", "sip:siaga.test", "Require: foo, bar\n"),
            420,
            Some((HeaderName::Unsupported, "foo, bar")),
        ),
        (
            "to tag",
            request("OPTIONS", "sip:siaga.test", "")
                .replace("To: <sip:siaga.test>", "To: <sip:siaga.test>;tag=x"),
            481,
            None,
        ),
        (
            "cseq mismatch",
            request("OPTIONS", "sip:siaga.test", "").replace("1 OPTIONS", "1 INVITE"),
            400,
            None,
        ),
        (
            "no call-id",
            request("OPTIONS", "sip:siaga.test", "")
                .replace("Call-ID: call-OPTIONS@127.0.0.1\n", ""),
            400,
            None,
        ),
    ];
    for (what, text, status, must_have) in cases {
        let mut e = engine();
        let r = one_response(&mut e, 0, udp(text));
        assert_eq!(r.status(), Some(*status), "{what}");
        if let Some((name, needle)) = must_have {
            assert!(
                header(&r, *name).contains(needle),
                "{what}: {name} in {r:?}"
            );
        }
    }
}

#[test]
fn unsupported_body_draws_415_with_accept() {
    let mut e = engine();
    let text = "OPTIONS sip:siaga.test SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKb\nFrom: <sip:p@h>;tag=1\nTo: <sip:siaga.test>\nCall-ID: b1\nCSeq: 1 OPTIONS\nContent-Type: application/unknownformat\nContent-Length: 4\n\nabcd";
    let r = one_response(&mut e, 0, udp(text));
    assert_eq!(r.status(), Some(415));
    assert_eq!(header(&r, HeaderName::Accept), "application/sdp");
}

#[test]
fn malformed_request_gets_400_with_reason_and_next_request_is_served() {
    let mut e = engine();
    let text =
        request("OPTIONS", "sip:siaga.test", "").replace("Content-Length: 0", "Content-Length: -5");
    let r = one_response(&mut e, 0, udp(&text));
    assert_eq!(r.status(), Some(400));
    assert_eq!(
        r.reason(),
        Some(&b"Bad Request - Invalid Content-Length"[..])
    );
    assert_eq!(e.stats().malformed_requests, 1);
    let ok = request("OPTIONS", "sip:siaga.test", "").replace("-OPTIONS-1", "-OPTIONS-2");
    assert_eq!(one_response(&mut e, 1, udp(&ok)).status(), Some(200));
}

/// Found by fuzzing (`fuzz/regressions/engine/folded-bad-line-joins-cseq`): the folded
/// continuation of a malformed header line was joined to the header before it, so the 400
/// echoed a CSeq the client never sent and its transaction could not match it.
#[test]
fn the_400_to_a_malformed_header_line_echoes_the_cseq_as_sent() {
    let mut e = engine();
    let text = request("OPTIONS", "sip:siaga.test", "").replace(
        "CSeq: 1 OPTIONS\n",
        "CSeq: 1 OPTIONS\nart/signed,\n @ message/sipfrag\n",
    );
    let r = one_response(&mut e, 0, udp(&text));
    assert_eq!(r.status(), Some(400));
    assert_eq!(
        r.reason(),
        Some(&b"Bad Request - Malformed header line"[..])
    );
    assert_eq!(header(&r, HeaderName::CSeq), "1 OPTIONS");
}

#[test]
fn garbage_and_responses_are_dropped_and_counted() {
    let mut e = engine();
    for junk in ["\u{0}\u{1}garbage", "SIP/2.0 999 nope\n\n", "\n\n\n"] {
        e.handle_input(Now::from_millis(0), udp(junk));
        assert!(drain(&mut e).0.is_empty(), "{junk:?}");
    }
    let stray = "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnotours\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n";
    e.handle_input(Now::from_millis(0), udp(stray));
    assert!(drain(&mut e).0.is_empty());
    let s = e.stats();
    assert_eq!(
        (
            s.unparseable,
            s.malformed_requests,
            s.malformed_responses,
            s.stray_responses
        ),
        (1, 1, 1, 1),
        "the NUL garbage reads as a request without a Via: counted, not answered"
    );
}

#[test]
fn responses_follow_rport_and_via_port_never_the_via_host() {
    let mut e = engine();
    let via_host = request("OPTIONS", "sip:siaga.test", "")
        .replace("127.0.0.1:5099;branch", "192.0.2.9:5077;branch");
    e.handle_input(Now::from_millis(0), udp(&via_host));
    let (sent, _) = drain(&mut e);
    assert_eq!(
        sent[0].destination,
        addr("127.0.0.1:5077"),
        "source IP, Via port"
    );
    let rport = via_host.replace("-OPTIONS-1", "-OPTIONS-2;rport");
    e.handle_input(Now::from_millis(0), udp(&rport));
    let (sent, _) = drain(&mut e);
    assert_eq!(
        sent[0].destination,
        addr(PEER),
        "source IP and port with rport"
    );
    let no_port = via_host
        .replace("192.0.2.9:5077", "192.0.2.9")
        .replace("-OPTIONS-1", "-OPTIONS-3");
    e.handle_input(Now::from_millis(0), udp(&no_port));
    let (sent, _) = drain(&mut e);
    assert_eq!(
        sent[0].destination,
        addr("127.0.0.1:5060"),
        "default port 5060"
    );
}

/// A Via naming port 0 (no port anything listens on): every response, first and
/// retransmitted (Timer G), goes to the packet's source port as if the Via had `rport`;
/// the requests are counted once each.
#[test]
fn via_port_zero_is_answered_at_the_source_port() {
    let mut e = engine();
    let invite = request("INVITE", "sip:999@siaga.test", "")
        .replace("127.0.0.1:5099;branch", "127.0.0.1:0;branch");
    let first = one_response(&mut e, 0, udp(&invite));
    assert_eq!(first.status(), Some(404));
    let mut now = 0;
    let mut destinations = Vec::new();
    while let Some(deadline) = drain(&mut e).1 {
        now = deadline.since_origin().as_millis() as u64;
        if now > 4000 {
            break;
        }
        e.handle_timeout(Now::from_millis(now));
        destinations.extend(drain(&mut e).0.iter().map(|t| t.destination));
    }
    assert_eq!(
        destinations,
        vec![addr(PEER); 3],
        "Timer G at 0.5, 1.5, 3.5 s"
    );
    let options = request("OPTIONS", "sip:siaga.test", "")
        .replace("127.0.0.1:5099;branch", "127.0.0.1:0;branch");
    e.handle_input(Now::from_millis(now), udp(&options));
    let (sent, _) = drain(&mut e);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].destination, addr(PEER));
    assert_eq!(parsed(&sent[0]).status(), Some(200));
    assert_eq!(e.stats().via_port_zero, 2);
}

#[test]
fn tcp_responses_go_back_on_the_same_connection() {
    let mut e = engine();
    let text = request("OPTIONS", "sip:siaga.test", "").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    e.handle_input(Now::from_millis(0), tcp(&text));
    let (sent, until) = drain(&mut e);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].transport, sent[0].connection),
        (Transport::Tcp, Some(ConnectionId(3)))
    );
    assert_eq!(
        until, None,
        "Timer J is zero over TCP: nothing left running"
    );
    assert_eq!(e.server_transactions(), 0);
}

/// The 404 to an INVITE over UDP is resent on Timer G (0.5, 1.5, 3.5, 7.5, 11.5 … s)
/// until its ACK; INVITE retransmissions are answered with the same 404, never a new one.
#[test]
fn invite_final_response_retransmits_until_ack() {
    let mut e = engine();
    let invite = request("INVITE", "sip:999@siaga.test", "");
    let first = one_response(&mut e, 0, udp(&invite));
    assert_eq!(first.status(), Some(404));
    let mut at = Vec::new();
    let mut now = 0;
    while let Some(deadline) = drain(&mut e).1 {
        now = deadline.since_origin().as_millis() as u64;
        if now > 8000 {
            break;
        }
        e.handle_timeout(Now::from_millis(now));
        at.extend(drain(&mut e).0.iter().map(|t| {
            assert_eq!(parsed(t).status(), Some(404));
            now
        }));
    }
    assert_eq!(at, vec![500, 1500, 3500, 7500]);
    // A retransmitted INVITE draws the same response (same To tag).
    let again = one_response(&mut e, now, udp(&invite));
    assert_eq!(again.to().expect("To").tag(), first.to().expect("To").tag());
    assert_eq!(e.stats().server_transactions, 1);
    // The ACK stops retransmissions; Timer I then ends the transaction.
    let ack = invite
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK");
    e.handle_input(Now::from_millis(now), udp(&ack));
    let (sent, until) = drain(&mut e);
    assert!(sent.is_empty(), "the ACK is never answered");
    let until = until.expect("Timer I runs");
    assert_eq!(until.since_origin().as_millis() as u64, now + 5000);
    e.handle_timeout(Now::from_millis(now + 5000));
    assert_eq!(drain(&mut e), (vec![], None));
    assert_eq!(e.server_transactions(), 0);
}

#[test]
fn unacked_final_response_times_out_on_timer_h() {
    let mut e = engine();
    one_response(&mut e, 0, udp(&request("INVITE", "sip:999@siaga.test", "")));
    let mut sends = 0;
    while let Some(deadline) = drain(&mut e).1 {
        e.handle_timeout(Now {
            mono: deadline,
            ..Now::default()
        });
        sends += drain(&mut e).0.len();
    }
    assert_eq!(
        sends, 10,
        "G at 0.5, 1.5, 3.5, 7.5, 11.5 … 31.5 s before H at 32 s"
    );
    assert_eq!(e.stats().ack_timeouts, 1);
    assert_eq!(e.server_transactions(), 0);
}

#[test]
fn non_invite_retransmission_answered_from_transaction_until_timer_j() {
    let mut e = engine();
    let options = request("OPTIONS", "sip:siaga.test", "");
    let first = one_response(&mut e, 0, udp(&options));
    let again = one_response(&mut e, 100, udp(&options));
    assert_eq!(first.to().expect("To").tag(), again.to().expect("To").tag());
    let (_, until) = drain(&mut e);
    assert_eq!(until.map(|t| t.since_origin().as_millis()), Some(32_000));
}

#[test]
fn cancel_without_invite_draws_481_and_ack_without_transaction_is_silent() {
    let mut e = engine();
    let cancel = request("CANCEL", "sip:999@siaga.test", "");
    assert_eq!(one_response(&mut e, 0, udp(&cancel)).status(), Some(481));
    let ack = request("ACK", "sip:999@siaga.test", "");
    e.handle_input(Now::from_millis(0), udp(&ack));
    assert!(drain(&mut e).0.is_empty());
}

#[test]
fn cancel_matching_a_live_invite_transaction_draws_200() {
    let mut e = engine();
    let invite = request("INVITE", "sip:999@siaga.test", "");
    one_response(&mut e, 0, udp(&invite));
    let cancel = invite
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    assert_eq!(one_response(&mut e, 10, udp(&cancel)).status(), Some(200));
}

#[test]
fn malformed_ack_is_never_answered() {
    let mut e = engine();
    let ack =
        request("ACK", "sip:999@siaga.test", "").replace("Content-Length: 0", "Content-Length: x");
    e.handle_input(Now::from_millis(0), udp(&ack));
    assert!(drain(&mut e).0.is_empty());
    assert_eq!(e.stats().malformed_requests, 1);
}

#[test]
fn unframeable_tcp_request_draws_400_or_513_then_close() {
    let head = request("OPTIONS", "sip:siaga.test", "").replace('\n', "\r\n");
    for (error, status) in [
        (super::sip::ParseError::BadContentLength, Some(400)),
        (super::sip::ParseError::TooLarge { limit: 65536 }, Some(513)),
    ] {
        let mut e = engine();
        e.handle_input(
            Now::from_millis(0),
            Input::Unframeable {
                connection: ConnectionId(9),
                source: addr(PEER),
                error,
                head: Bytes::from(head.clone()),
            },
        );
        let Output::Transmit(t) = e.poll_output() else {
            panic!("an answer first")
        };
        assert_eq!(
            (t.connection, parsed(&t).status()),
            (Some(ConnectionId(9)), status)
        );
        assert_eq!(
            e.poll_output(),
            Output::Close {
                connection: ConnectionId(9)
            }
        );
        assert_eq!(e.stats().unframeable, 1);
    }
    // Without a header section there is nothing to answer: only the close.
    let mut e = engine();
    e.handle_input(
        Now::from_millis(0),
        Input::Unframeable {
            connection: ConnectionId(4),
            source: addr(PEER),
            error: super::sip::ParseError::TooLarge { limit: 65536 },
            head: Bytes::new(),
        },
    );
    assert_eq!(
        e.poll_output(),
        Output::Close {
            connection: ConnectionId(4)
        }
    );
}

/// A PSAP must never refuse `tel:112` over RFC 3966's phone-context rule: the request is
/// well formed and reaches routing (no emergency routing yet: 404).
#[test]
fn tel_112_without_phone_context_is_not_a_bad_request() {
    let mut e = engine();
    let text = request("INVITE", "tel:112", "");
    e.handle_input(Now::from_millis(0), udp(&text));
    let (sent, _) = drain(&mut e);
    // An emergency call from the trunk (127.0.0.0/8): taken and queued.
    let statuses: Vec<_> = sent.iter().map(|t| parsed(t).status()).collect();
    assert_eq!(statuses, [Some(100), Some(180)]);
    assert_eq!(e.waiting_calls(), 1);
}

/// RFC 3261 §8.2.2.2: the same request (From tag, Call-ID, CSeq) arriving again over
/// another path (another branch) while the first is live draws 482.
#[test]
fn merged_request_draws_482() {
    let mut e = engine();
    let invite = request("INVITE", "sip:999@siaga.test", "");
    assert_eq!(one_response(&mut e, 0, udp(&invite)).status(), Some(404));
    let other_path = invite.replace("z9hG4bK-INVITE-1", "z9hG4bK-INVITE-via-b");
    assert_eq!(
        one_response(&mut e, 5, udp(&other_path)).status(),
        Some(482)
    );
    // A new CSeq is a new request, not a merged one.
    let next = other_path.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE");
    assert_eq!(one_response(&mut e, 6, udp(&next)).status(), Some(404));
}

/// A malformed request is answered statelessly: its 400 is not retransmitted, and no
/// transaction is kept for it (its To or Call-ID may be missing, so an ACK may never come).
#[test]
fn malformed_invite_gets_a_stateless_400() {
    let mut e = engine();
    let text =
        request("INVITE", "sip:999@siaga.test", "").replace("To: <sip:999@siaga.test>\n", "");
    let r = one_response(&mut e, 0, udp(&text));
    assert_eq!(r.status(), Some(400));
    assert_eq!(r.reason(), Some(&b"Bad Request - Missing To header"[..]));
    assert_eq!(e.server_transactions(), 0);
    assert_eq!(drain(&mut e).1, None, "no Timer G: nothing is resent");
}

/// A retransmission that arrives on a new TCP connection is answered on that connection
/// (RFC 3261 §18.2.2), not on the one that carried the first copy.
#[test]
fn retransmission_on_a_new_connection_is_answered_there() {
    let mut e = engine();
    // An INVITE: over TCP its 404 keeps the transaction alive until Timer H (a non-INVITE
    // transaction ends at once over TCP: Timer J is zero).
    let text = request("INVITE", "sip:999@siaga.test", "").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let first = one_response(&mut e, 0, tcp(&text));
    e.handle_input(
        Now::from_millis(1),
        Input::ConnectionClosed(ConnectionId(3)),
    );
    let mut again = tcp(&text);
    if let Input::Received(r) = &mut again {
        r.connection = Some(ConnectionId(8));
    }
    e.handle_input(Now::from_millis(2), again);
    let (sent, _) = drain(&mut e);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].connection, Some(ConnectionId(8)));
    assert_eq!(
        parsed(&sent[0]).to().expect("To").tag(),
        first.to().expect("To").tag()
    );
}

/// Beyond the memory bound for held responses, requests are still answered, but without
/// keeping state — except INVITEs siaga accepts (emergency calls, from the next issue on).
#[test]
fn overload_is_answered_statelessly() {
    let mut config = EngineConfig::for_tests(addr(SIAGA));
    config.max_held_bytes = 1;
    let mut e = Engine::with_seed(config, 3);
    for n in 0..3 {
        let text = request("OPTIONS", "sip:siaga.test", "")
            .replace("-OPTIONS-1", &format!("-OPTIONS-{n}"))
            .replace("call-OPTIONS", &format!("call-{n}"));
        assert_eq!(one_response(&mut e, 0, udp(&text)).status(), Some(200));
    }
    for n in 0..3 {
        let text = request("INVITE", "sip:999@siaga.test", "")
            .replace("-INVITE-1", &format!("-INVITE-{n}"))
            .replace("call-INVITE", &format!("call-{n}"));
        assert_eq!(one_response(&mut e, 0, udp(&text)).status(), Some(404));
    }
    assert_eq!(
        (e.server_transactions(), e.stats().stateless_answers),
        (1, 5)
    );
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: the top Via of a response says where the request
/// really came from.
#[test]
fn responses_carry_received_and_rport() {
    let mut e = engine();
    let text = request("OPTIONS", "sip:siaga.test", "").replace(
        "127.0.0.1:5099;branch=z9hG4bK-OPTIONS-1",
        "192.0.2.7:5099;branch=z9hG4bK-OPTIONS-1;rport",
    );
    let r = one_response(&mut e, 0, udp(&text));
    let via = r.top_via().expect("Via");
    assert_eq!(via.received(), Some("127.0.0.1".parse().expect("literal")));
    assert_eq!(via.rport(), Some(Some(5099)));
    assert_eq!(via.host, "192.0.2.7");
}

/// RFC 3261 §9.2: the 200 to a CANCEL carries the To tag of the INVITE's response, and a
/// third copy of a merged request is still refused.
#[test]
fn cancel_reuses_the_invite_tag_and_merges_stay_refused() {
    let mut e = engine();
    let invite = request("INVITE", "sip:999@siaga.test", "");
    let first = one_response(&mut e, 0, udp(&invite));
    let cancel = invite
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let ok = one_response(&mut e, 1, udp(&cancel));
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.to().expect("To").tag(), first.to().expect("To").tag());
    for path in ["b", "c"] {
        let copy = invite.replace("z9hG4bK-INVITE-1", &format!("z9hG4bK-INVITE-{path}"));
        assert_eq!(
            one_response(&mut e, 2, udp(&copy)).status(),
            Some(482),
            "copy {path}"
        );
        // A CANCEL for that copy's live transaction is not a merged request: 200.
        let cancel = copy
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL");
        assert_eq!(
            one_response(&mut e, 3, udp(&cancel)).status(),
            Some(200),
            "cancel {path}"
        );
    }
}

/// A To that already has a tag (even an empty one) gets no second tag (RFC 3261 §8.2.6.2).
#[test]
fn no_second_to_tag() {
    for to in ["To: <sip:siaga.test>;tag", "To: <sip:siaga.test>;tag=abc"] {
        let mut e = engine();
        let text = request("OPTIONS", "sip:siaga.test", "").replace("To: <sip:siaga.test>", to);
        let r = one_response(&mut e, 0, udp(&text));
        let to_field = r.header(HeaderName::To).expect("To");
        let raw = String::from_utf8_lossy(to_field.raw_value()).into_owned();
        assert_eq!(raw.matches("tag").count(), 1, "{raw}");
    }
}

#[test]
fn ipv6_domains_count_as_siaga_itself() {
    let mut config = EngineConfig::for_tests(addr(SIAGA));
    config.domains.push("[::1]".to_owned());
    let mut e = Engine::with_seed(config, 5);
    for ruri in ["sip:[::1]", "sip:[::1]:5060"] {
        let text = request("OPTIONS", ruri, "").replace("call-OPTIONS", ruri);
        assert_eq!(
            one_response(&mut e, 0, udp(&text)).status(),
            Some(200),
            "{ruri}"
        );
    }
}
