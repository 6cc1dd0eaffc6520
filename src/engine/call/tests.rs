//! Whole calls in virtual time: a trunk, operators' phones and siaga's engine, with no
//! sockets and no sleeps. Each peer is played by the test, which answers what siaga sends
//! the way SIPp or a softphone would.

use crate::engine::acd::AgentState;
use crate::engine::digest::Ha1;
use crate::engine::media::MediaCommand;
use crate::engine::record::{CallEventKind, Disposition, Party};
use crate::engine::sip::{HeaderName, Method, SipMessage};
use crate::engine::{Engine, EngineConfig, Input, Now, Output, Received, Transmit, Transport};
use bytes::Bytes;
use md5::{Digest, Md5};
use std::net::SocketAddr;
use std::time::Duration;

const SIAGA: &str = "127.0.0.1:5060";
const TRUNK: &str = "127.0.0.1:5099";
const OP1: &str = "127.0.0.1:5071";
const OP2: &str = "127.0.0.1:5072";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address literal")
}

/// Everything the engine output since the last drain.
#[derive(Debug, Default)]
struct Out {
    sent: Vec<Transmit>,
    events: Vec<CallEventKind>,
    media: Vec<MediaCommand>,
}

impl Out {
    /// Messages sent to `to`, parsed.
    fn to(&self, to: &str) -> Vec<SipMessage> {
        self.sent
            .iter()
            .filter(|t| t.destination == addr(to))
            .map(|t| SipMessage::parse(t.bytes.clone(), Transport::Udp).expect("parseable"))
            .collect()
    }

    fn statuses_to(&self, to: &str) -> Vec<u16> {
        self.to(to).iter().filter_map(SipMessage::status).collect()
    }

    fn requests_to(&self, to: &str, method: Method) -> Vec<SipMessage> {
        self.to(to)
            .into_iter()
            .filter(|m| m.method() == Some(&method))
            .collect()
    }
}

struct Harness {
    engine: Engine,
    now: u64,
}

impl Harness {
    fn new(ring_timeout_s: u64) -> Harness {
        let mut config = EngineConfig::for_tests(addr(SIAGA));
        config.calls.operators = ["1001", "1002"]
            .iter()
            .map(|id| {
                let password = format!("demo-{id}");
                (
                    id.to_string(),
                    Ha1::from_password(id, "siaga.test", &password),
                )
            })
            .collect();
        config.calls.ring_timeout = Duration::from_secs(ring_timeout_s);
        Harness {
            engine: Engine::with_seed(config, 11),
            now: 1_000,
        }
    }

    fn at(&self) -> Now {
        Now::from_millis(self.now)
    }

    fn input(&mut self, from: &str, text: &str) -> Out {
        self.input_on(Transport::Udp, from, text)
    }

    fn input_on(&mut self, transport: Transport, from: &str, text: &str) -> Out {
        let connection = (transport == Transport::Tcp).then_some(crate::engine::ConnectionId(9));
        self.engine.handle_input(
            self.at(),
            Input::Received(Received {
                transport,
                source: addr(from),
                local: addr(SIAGA),
                connection,
                bytes: Bytes::from(text.to_owned()),
            }),
        );
        self.drain()
    }

    /// Advances virtual time by `ms`, firing every timer due on the way.
    fn advance(&mut self, ms: u64) -> Out {
        let end = self.now + ms;
        let mut out = Out::default();
        loop {
            let next = match self.engine.poll_output() {
                Output::Wait { until } => until,
                other => {
                    collect(&mut out, other);
                    continue;
                }
            };
            match next {
                Some(at) if at.since_origin().as_millis() as u64 <= end => {
                    self.now = self.now.max(at.since_origin().as_millis() as u64);
                    self.engine.handle_timeout(self.at());
                }
                _ => break,
            }
        }
        self.now = end;
        out
    }

    fn drain(&mut self) -> Out {
        let mut out = Out::default();
        loop {
            match self.engine.poll_output() {
                Output::Wait { .. } => return out,
                other => collect(&mut out, other),
            }
        }
    }

    /// Registers `user` from `contact_addr` with digest authentication, as SIPp does.
    fn register(&mut self, user: &str, from: &str) {
        let register = |auth: &str| {
            format!(
                "REGISTER sip:{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKreg{}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@siaga.test>;tag=r{user}\r\nTo: <sip:{user}@siaga.test>\r\nCall-ID: reg-{user}\r\nCSeq: {} REGISTER\r\nContact: <sip:{user}@{from}>\r\nExpires: 3600\r\n{auth}Content-Length: 0\r\n\r\n",
                auth.len(),
                if auth.is_empty() { 1 } else { 2 }
            )
        };
        let out = self.input(from, &register(""));
        let challenge = out.to(from).pop().expect("a 401");
        assert_eq!(challenge.status(), Some(401));
        let www = String::from_utf8_lossy(
            &challenge
                .header(HeaderName::WwwAuthenticate)
                .expect("challenge")
                .value(),
        )
        .into_owned();
        let nonce = www
            .split("nonce=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("nonce");
        let uri = format!("sip:{SIAGA}");
        let ha1 = hex(&Md5::digest(format!("{user}:siaga.test:demo-{user}")));
        let ha2 = hex(&Md5::digest(format!("REGISTER:{uri}")));
        let response = hex(&Md5::digest(format!(
            "{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"
        )));
        let auth = format!(
            "Authorization: Digest username=\"{user}\", realm=\"siaga.test\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
        );
        let out = self.input(from, &register(&auth));
        assert_eq!(out.statuses_to(from), [200], "registered");
    }
}

fn collect(out: &mut Out, output: Output) {
    match output {
        Output::Transmit(t) => out.sent.push(t),
        Output::Event(e) => out.events.push(e.kind),
        Output::Media(m) => out.media.push(m),
        Output::Close { .. } | Output::Wait { .. } => {}
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const SDP_TRUNK: &str = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";
const SDP_OPERATOR: &str = "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn trunk_invite(call_id: &str) -> String {
    format!(
        "INVITE sip:112@{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+6281100001@trunk.test>;tag=tr{call_id}\r\nTo: <sip:112@{SIAGA}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@{TRUNK}>\r\nP-Asserted-Identity: <tel:+62811-555-0001>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_TRUNK}",
        SDP_TRUNK.len()
    )
}

/// The trunk's request in the dialog siaga answered (`ok` is siaga's 2xx).
fn trunk_in_dialog(method: &str, ok: &SipMessage, seq: u32, branch: &str) -> String {
    let to = String::from_utf8_lossy(&ok.header(HeaderName::To).expect("to").value()).into_owned();
    let from =
        String::from_utf8_lossy(&ok.header(HeaderName::From).expect("from").value()).into_owned();
    let call_id = ok.call_id().expect("call-id");
    format!(
        "{method} sip:siaga@{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// An operator phone's response to siaga's `request`, with To tag `tag`.
fn phone_response(
    request: &SipMessage,
    status: u16,
    reason: &str,
    tag: &str,
    sdp: Option<&str>,
) -> String {
    let mut text = format!("SIP/2.0 {status} {reason}\r\n");
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        for field in request.headers_named(name) {
            text.push_str(&format!(
                "{}: {}\r\n",
                name.canonical(),
                String::from_utf8_lossy(&field.value())
            ));
        }
    }
    let to =
        String::from_utf8_lossy(&request.header(HeaderName::To).expect("to").value()).into_owned();
    if status > 100 && !to.contains("tag=") {
        text.push_str(&format!("To: {to};tag={tag}\r\n"));
    } else {
        text.push_str(&format!("To: {to}\r\n"));
    }
    text.push_str("Contact: <sip:phone@127.0.0.1:5071>\r\n");
    match sdp {
        Some(sdp) => text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )),
        None => text.push_str("Content-Length: 0\r\n\r\n"),
    }
    text
}

#[test]
fn a_call_is_answered_bridged_and_ended_by_the_caller() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::Available { .. })
    ));

    let out = h.input(TRUNK, &trunk_invite("c1"));
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert!(matches!(
        out.events[..],
        [
            CallEventKind::Received { .. },
            CallEventKind::Queued,
            CallEventKind::Offered { .. }
        ]
    ));
    let CallEventKind::Received { caller, called, .. } = &out.events[0] else {
        unreachable!()
    };
    assert_eq!(
        (caller.as_deref(), called.as_str()),
        (Some("+628115550001"), "112")
    );
    assert!(matches!(out.media[0], MediaCommand::Open { .. }));
    let invite = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("the operator is rung");
    assert_eq!(invite.request_uri_raw(), Some("sip:1001@127.0.0.1:5071"));
    assert_eq!(invite.max_forwards().ok().flatten(), Some(69));
    assert!(String::from_utf8_lossy(invite.body()).contains("m=audio"));

    h.input(OP1, &phone_response(&invite, 180, "Ringing", "op1", None));
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    assert_eq!(
        out.requests_to(OP1, Method::Ack).len(),
        1,
        "the operator's 2xx is ACKed"
    );
    let ok = out.to(TRUNK).pop().expect("the trunk is answered");
    assert_eq!(ok.status(), Some(200));
    let answer = String::from_utf8_lossy(ok.body()).into_owned();
    assert!(
        answer.contains("RTP/AVP 8 101"),
        "the operator's codecs: {answer}"
    );
    assert!(matches!(out.events[..], [CallEventKind::Answered { .. }]));
    assert!(
        out.media
            .iter()
            .any(|m| matches!(m, MediaCommand::SetPeer { .. }))
    );

    // The operator's 2xx again: ACKed again (§13.2.2.4).
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1);

    // No ACK from the trunk yet: the 2xx is resent at T1, then 2·T1 (§13.3.1.4).
    let out = h.advance(500);
    assert_eq!(out.statuses_to(TRUNK), [200]);
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "ack1"));
    let out = h.advance(5_000);
    assert!(out.statuses_to(TRUNK).is_empty(), "the ACK stopped the 2xx");

    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "bye1"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    let bye = out
        .requests_to(OP1, Method::Bye)
        .pop()
        .expect("BYE to the operator");
    assert_eq!(bye.to().expect("to").tag(), Some("op1"));
    assert!(matches!(
        out.events[..],
        [CallEventKind::Ended {
            by: Party::Caller,
            disposition: Disposition::Answered
        }]
    ));
    assert!(
        out.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Close { .. }))
    );
    h.input(OP1, &phone_response(&bye, 200, "OK", "op1", None));
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::Available { .. })
    ));
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn the_operator_hanging_up_ends_the_trunk_leg_with_bye() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("c2"));
    let invite = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "ack2"));
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    // The phone's BYE: From/To swapped from siaga's point of view.
    let bye = format!(
        "BYE sip:siaga@{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {OP1};branch=z9hG4bKopbye\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(&ack.header(HeaderName::To).expect("to").value()),
        String::from_utf8_lossy(&ack.header(HeaderName::From).expect("from").value()),
        ack.call_id().expect("call-id"),
    );
    let out = h.input(OP1, &bye);
    assert_eq!(out.statuses_to(OP1), [200]);
    let trunk_bye = out
        .requests_to(TRUNK, Method::Bye)
        .pop()
        .expect("BYE to the trunk");
    assert_eq!(trunk_bye.request_uri_raw(), Some("sip:gw@127.0.0.1:5099"));
    assert_eq!(trunk_bye.to().expect("to").tag(), Some("trc2"));
    assert!(matches!(
        out.events[..],
        [CallEventKind::Ended {
            by: Party::Operator,
            disposition: Disposition::Answered
        }]
    ));
}

#[test]
fn no_answer_moves_the_call_to_the_next_operator_and_the_late_2xx_is_ended() {
    let mut h = Harness::new(2);
    h.register("1001", OP1);
    h.advance(10);
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite("c3"));
    // 1001 has been idle longest.
    let first = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("1001 rung first");
    assert!(out.requests_to(OP2, Method::Invite).is_empty());
    h.input(OP1, &phone_response(&first, 180, "Ringing", "op1", None));
    let out = h.advance(2_000);
    let cancel = out
        .requests_to(OP1, Method::Cancel)
        .pop()
        .expect("CANCEL after the ring timeout");
    assert_eq!(cancel.cseq().expect("cseq").seq, 1);
    assert!(out.events.contains(&CallEventKind::NoAnswer {
        operator: "1001".into()
    }));
    assert!(out.events.contains(&CallEventKind::Offered {
        operator: "1002".into()
    }));
    let second = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("1002 rung next");
    // 1001 answers the CANCEL and then the INVITE with 487, which siaga ACKs.
    h.input(OP1, &phone_response(&cancel, 200, "OK", "op1", None));
    let out = h.input(
        OP1,
        &phone_response(&first, 487, "Request Terminated", "op1", None),
    );
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1);
    let out = h.input(
        OP2,
        &phone_response(&second, 200, "OK", "op2", Some(SDP_OPERATOR)),
    );
    assert!(out.events.contains(&CallEventKind::Answered {
        operator: "1002".into()
    }));
    assert_eq!(out.statuses_to(TRUNK), [200]);
}

#[test]
fn a_reject_tries_the_next_operator_and_keeps_the_rejecting_one_away() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    h.advance(10);
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite("c4"));
    let first = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("1001 first");
    let out = h.input(OP1, &phone_response(&first, 486, "Busy Here", "op1", None));
    assert_eq!(
        out.requests_to(OP1, Method::Ack).len(),
        1,
        "the 486 is ACKed"
    );
    assert!(out.events.contains(&CallEventKind::Rejected {
        operator: "1001".into(),
        status: 486
    }));
    let second = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("1002 next");
    let out = h.input(OP2, &phone_response(&second, 603, "Decline", "op2", None));
    // Both declined: the call waits until the reject delay (5 s) passes.
    assert!(out.requests_to(OP1, Method::Invite).is_empty());
    assert_eq!(h.engine.waiting_calls(), 1);
    let out = h.advance(5_000);
    assert_eq!(
        out.requests_to(OP1, Method::Invite).len(),
        1,
        "offered again after the delay"
    );
}

#[test]
fn a_caller_who_cancels_while_queued_is_recorded_as_abandoned() {
    let mut h = Harness::new(15);
    let invite = trunk_invite("c5");
    let out = h.input(TRUNK, &invite);
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    // The 180 is repeated while the caller waits (§13.3.1.1).
    let out = h.advance(30_000);
    assert_eq!(out.statuses_to(TRUNK), [180]);
    let cancel = invite
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "");
    let cancel = format!(
        "{}Content-Length: 0\r\n\r\n",
        &cancel[..cancel.find("Content-Length").expect("cl")]
    );
    let out = h.input(TRUNK, &cancel);
    assert_eq!(out.statuses_to(TRUNK), [200, 487]);
    assert!(matches!(
        out.events[..],
        [CallEventKind::Ended {
            by: Party::Caller,
            disposition: Disposition::AbandonedInQueue
        }]
    ));
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn emergency_calls_from_outside_the_trunk_get_403_and_other_targets_404() {
    let mut h = Harness::new(15);
    let out = h.input(
        "192.0.2.7:5060",
        &trunk_invite("c6").replace(TRUNK, "192.0.2.7:5060"),
    );
    assert_eq!(out.statuses_to("192.0.2.7:5060"), [403]);
    let out = h.input(TRUNK, &trunk_invite("c7").replace("sip:112@", "sip:999@"));
    assert_eq!(out.statuses_to(TRUNK), [404]);
    assert!(out.events.is_empty());
}

#[test]
fn an_unacked_2xx_ends_the_call_with_bye_after_64_t1() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("c8"));
    let invite = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let out = h.advance(32_000);
    // Resent at 0.5, 1.5, 3.5, 7.5, 11.5 … s: T1 doubling up to T2 = 4 s.
    assert!(
        out.statuses_to(TRUNK).len() >= 8,
        "{:?}",
        out.statuses_to(TRUNK)
    );
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert!(out.events.iter().any(|e| matches!(
        e,
        CallEventKind::Ended {
            by: Party::Siaga,
            ..
        }
    )));
}

#[test]
fn an_offer_without_g711_draws_488_and_is_recorded_as_failed() {
    let mut h = Harness::new(15);
    let g729 = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let invite = trunk_invite("c9").replace(SDP_TRUNK, g729).replace(
        &format!("Content-Length: {}", SDP_TRUNK.len()),
        &format!("Content-Length: {}", g729.len()),
    );
    let out = h.input(TRUNK, &invite);
    assert_eq!(out.statuses_to(TRUNK), [488]);
    assert!(matches!(
        out.events[..],
        [
            CallEventKind::Received { .. },
            CallEventKind::Ended {
                by: Party::Siaga,
                disposition: Disposition::Failed
            }
        ]
    ));
    assert_eq!(h.engine.live_calls(), 0);
}

#[test]
fn a_caller_who_hangs_up_while_an_operator_rings_cancels_that_operator() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("c10");
    let out = h.input(TRUNK, &invite);
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    h.input(OP1, &phone_response(&offer, 180, "Ringing", "op1", None));
    let cancel = invite
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = format!(
        "{}Content-Length: 0\r\n\r\n",
        &cancel[..cancel.find("Content-Type").expect("ct")]
    );
    let out = h.input(TRUNK, &cancel);
    assert_eq!(out.statuses_to(TRUNK), [200, 487]);
    assert_eq!(out.requests_to(OP1, Method::Cancel).len(), 1);
    assert!(out.events.contains(&CallEventKind::Ended {
        by: Party::Caller,
        disposition: Disposition::AbandonedWhileRinging
    }));
    // The operator answers anyway, crossing the CANCEL: ACKed and ended with BYE.
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    assert_eq!(out.requests_to(OP1, Method::Ack).len(), 1);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::Available { .. })
    ));
}

/// §13.3.1.4: the 2xx is resent until the ACK even over TCP (a proxy on the way may use
/// UDP), on the trunk's connection.
#[test]
fn the_2xx_to_a_tcp_trunk_is_resent_until_the_ack() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("c11").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let out = h.input_on(Transport::Tcp, TRUNK, &invite);
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert!(
        out.sent
            .iter()
            .filter(|t| t.destination == addr(TRUNK))
            .all(|t| t.connection.is_some())
    );
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    let out = h.advance(1_500);
    assert_eq!(
        out.statuses_to(TRUNK),
        [200, 200],
        "resent at T1 and 2*T1 later"
    );
    h.input_on(
        Transport::Tcp,
        TRUNK,
        &trunk_in_dialog("ACK", &ok, 1, "ack11"),
    );
    assert!(h.advance(10_000).statuses_to(TRUNK).is_empty());
}
