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

mod transport;

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
    agent: Vec<crate::engine::record::AgentEvent>,
    /// The record id of each of `events`.
    records: Vec<uuid::Uuid>,
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

    /// The first message sent on TCP connection `conn`, parsed.
    fn first_on_connection(&self, conn: u64) -> SipMessage {
        self.sent
            .iter()
            .find(|t| t.connection == Some(crate::engine::ConnectionId(conn)))
            .map(|t| SipMessage::parse(t.bytes.clone(), Transport::Tcp).expect("parseable"))
            .expect("a message on the connection")
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
        config.calls.acd.queues[0].ring_timeout = Duration::from_secs(ring_timeout_s);
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
        let connection = (transport == Transport::Tcp).then_some(9);
        self.receive(transport, connection, from, text)
    }

    fn receive(&mut self, transport: Transport, conn: Option<u64>, from: &str, text: &str) -> Out {
        self.engine.handle_input(
            self.at(),
            Input::Received(Received {
                transport,
                source: addr(from),
                local: addr(SIAGA),
                connection: conn.map(crate::engine::ConnectionId),
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

    /// Registers `user` from `from` with digest authentication, as SIPp does, under Call-ID
    /// `reg-USER-FROM` (a second binding when `from` differs); over TCP on connection
    /// `tcp` when given.
    fn register_on(&mut self, user: &str, from: &str, tcp: Option<u64>) {
        self.register_with(user, from, tcp, "", "");
    }

    /// `register_on` with `after_contact` written after the Contact's `<…>` (header
    /// parameters) and `headers` (whole lines) added to both REGISTERs.
    fn register_with(
        &mut self,
        user: &str,
        from: &str,
        tcp: Option<u64>,
        after_contact: &str,
        headers: &str,
    ) {
        let call_id = format!("reg-{user}-{from}");
        let (via, contact_param) = match tcp {
            Some(_) => ("TCP", ";transport=tcp"),
            None => ("UDP", ""),
        };
        let register = |auth: &str| {
            format!(
                "REGISTER sip:{SIAGA} SIP/2.0\r\nVia: SIP/2.0/{via} {from};branch=z9hG4bKreg{}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@siaga.test>;tag=r{user}{}\r\nTo: <sip:{user}@siaga.test>\r\nCall-ID: {call_id}\r\nCSeq: {} REGISTER\r\nContact: <sip:{user}@{from}{contact_param}>{after_contact}\r\nExpires: 3600\r\n{headers}{auth}Content-Length: 0\r\n\r\n",
                auth.len(),
                from.len(),
                if auth.is_empty() { 1 } else { 2 }
            )
        };
        let send = |h: &mut Harness, text: &str| match tcp {
            Some(conn) => h.input_tcp(from, conn, text),
            None => h.input(from, text),
        };
        let out = send(self, &register(""));
        let challenge = out.to(from).pop().expect("a 401");
        assert_eq!(challenge.status(), Some(401));
        let password = format!("demo-{user}");
        let uri = format!("sip:{SIAGA}");
        let auth = authorization(&challenge, (user, &password), "REGISTER", &uri);
        let out = send(self, &register(&auth));
        assert_eq!(out.statuses_to(from), [200], "registered");
    }

    fn register(&mut self, user: &str, from: &str) {
        self.register_on(user, from, None);
    }

    fn register_binding(&mut self, user: &str, from: &str) {
        self.register_on(user, from, None);
    }

    fn register_tcp(&mut self, user: &str, from: &str, conn: u64) {
        self.register_on(user, from, Some(conn));
    }
}

fn collect(out: &mut Out, output: Output) {
    match output {
        Output::Transmit(t) => out.sent.push(t),
        Output::Event(e) => {
            out.records.push(e.call);
            out.events.push(e.kind);
        }
        Output::AgentEvent(e) => out.agent.push(e),
        Output::Media(m) => out.media.push(m),
        Output::Close { .. } | Output::Wait { .. } => {}
    }
}

/// The `Authorization` line (with CRLF) a SIPp or softphone client sends for `method` to
/// `uri` as `user` with `password`, answering the 401 `challenge` (qop=auth, nc 1).
fn authorization(
    challenge: &SipMessage,
    (user, password): (&str, &str),
    method: &str,
    uri: &str,
) -> String {
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
    let ha1 = hex(&Md5::digest(format!("{user}:siaga.test:{password}")));
    let ha2 = hex(&Md5::digest(format!("{method}:{uri}")));
    let response = hex(&Md5::digest(format!(
        "{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"
    )));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"siaga.test\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    )
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
    // A peer answering a request in its dialog keeps the Contact it was reached at (a
    // target refresh to anything else would move the dialog, RFC 3261 §12.2.1.2).
    match request.request_uri_raw().filter(|_| to.contains("tag=")) {
        Some(uri) => text.push_str(&format!("Contact: <{uri}>\r\n")),
        None => text.push_str("Contact: <sip:phone@127.0.0.1:5071>\r\n"),
    }
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
            CallEventKind::Queued { .. },
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
        [
            CallEventKind::Dropped { .. },
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered
            }
        ]
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

/// Operators 1001 and 1002 (1001 idle longest), ring timeout 2 s: call `id` rings 1001,
/// which sends 180 and never answers; at the ring timeout siaga CANCELs it and rings 1002.
/// Returns the harness, the INVITE to 1001, and what the ring timeout produced.
fn first_offer_times_out(id: &str) -> (Harness, SipMessage, Out) {
    let mut h = Harness::new(2);
    h.register("1001", OP1);
    h.advance(10);
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite(id));
    // 1001 has been idle longest.
    let first = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("1001 rung first");
    assert!(out.requests_to(OP2, Method::Invite).is_empty());
    h.input(OP1, &phone_response(&first, 180, "Ringing", "op1", None));
    let out = h.advance(2_000);
    (h, first, out)
}

#[test]
fn no_answer_moves_the_call_to_the_next_operator_and_the_late_2xx_is_ended() {
    let (mut h, first, out) = first_offer_times_out("c3");
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

// ---- hostile tests (break2) ---------------------------------------------------------------

impl Harness {
    /// Like `new`, with the relay's port range given (inclusive).
    fn with_ports(ring_timeout_s: u64, low: u16, high: u16) -> Harness {
        let mut h = Harness::new(ring_timeout_s);
        let mut config = h.engine.config().clone();
        config.calls.rtp_ports = (low, high);
        h.engine = Engine::with_seed(config, 11);
        h
    }
}

fn without_body(invite: &str) -> String {
    let head = &invite[..invite.find("Content-Type").expect("ct")];
    format!("{head}Content-Length: 0\r\n\r\n")
}

fn cancel_of(invite: &str) -> String {
    let cancel = invite
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    format!(
        "{}Content-Length: 0\r\n\r\n",
        &cancel[..cancel.find("Content-Type").expect("ct")]
    )
}

/// B1. RFC 3261 §13.2.1 / RFC 3264 §5: an INVITE without an offer (late offer, common
/// from SBCs and ISUP interworking) must get an offer in the 2xx, and the operator's
/// offer in its 2xx must be answered in the ACK. siaga sends neither: no audio at all.
#[test]
fn b1_late_offer_gets_an_offer_in_the_2xx_and_an_answer_in_the_ack() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &without_body(&trunk_invite("b1")));
    let invite = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    assert!(
        !ack.body().is_empty() || !invite.body().is_empty(),
        "the operator's offer (in its 2xx) is never answered: ACK without SDP (RFC 3264 §5)"
    );
    assert!(
        String::from_utf8_lossy(ok.body()).contains("m=audio"),
        "the 2xx to an INVITE without offer must carry an offer (RFC 3261 §13.2.1)"
    );
}

/// B2. RFC 3261 §15, §15.1.2: the caller may BYE an early dialog (siaga's 180 carried a
/// To tag and a Contact); the pending INVITE should then get 487 and the call end. siaga
/// answers 481 and keeps the call queued: it is offered and answered after the caller left.
#[test]
fn b2_a_bye_in_the_early_dialog_ends_the_queued_call() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite("b2"));
    let ringing = out.to(TRUNK).pop().expect("180");
    assert_eq!(ringing.status(), Some(180));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ringing, 2, "b2bye"));
    assert_eq!(
        out.statuses_to(TRUNK),
        [200, 487],
        "BYE in the early dialog"
    );
    assert_eq!(h.engine.live_calls(), 0, "the caller hung up");
}

/// B3. A trunk INVITE without Contact (RFC 3261 §8.1.1.8 says it MUST have one, but siaga
/// takes it): siaga answers it, then cannot match the trunk's ACK (no dialog was
/// indexed), resends the 2xx for 64·T1 and cuts the answered emergency call (BYE to the
/// operator, record `failed`). Either refuse it up front (400) or keep the call.
#[test]
fn b3_an_answered_call_from_an_invite_without_contact_is_not_cut() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("b3").replace(&format!("Contact: <sip:gw@{TRUNK}>\r\n"), "");
    let out = h.input(TRUNK, &invite);
    if out.statuses_to(TRUNK).iter().any(|s| *s >= 400) {
        return; // refused up front: fine
    }
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    assert_eq!(ok.status(), Some(200));
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "b3ack"));
    let out = h.advance(40_000);
    assert!(
        out.statuses_to(TRUNK).is_empty(),
        "the 2xx was ACKed, yet resent: {:?}",
        out.statuses_to(TRUNK)
    );
    assert!(
        out.requests_to(OP1, Method::Bye).is_empty(),
        "the ACKed call was cut after 64*T1"
    );
    assert_eq!(h.engine.live_calls(), 1);
}

/// B4. An ACK of the 2xx that reuses the INVITE's branch matches the INVITE server
/// transaction in its Accepted state; RFC 6026 §7.1 passes it to the TU, but the driver
/// drops the transaction's PassToTu verdict: the 2xx is resent and the call cut at 64·T1.
#[test]
fn b4_an_ack_reusing_the_invite_branch_stops_the_2xx() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("b4"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    // branch "b4" → "z9hG4bKb4", the INVITE's own.
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "b4"));
    let out = h.advance(40_000);
    assert!(
        out.requests_to(OP1, Method::Bye).is_empty(),
        "the ACKed call was cut: {:?}",
        out.statuses_to(TRUNK)
    );
    assert_eq!(h.engine.live_calls(), 1);
}

/// B5. RTP port range exhausted: the call is taken (good) but offered without SDP and the
/// trunk's offer is then "answered" by a 2xx without SDP (RFC 3264 §6 / RFC 3261 §13.2.1:
/// the answer must be in the 2xx). The ACK to the operator's offer has no answer either.
#[test]
fn b5_without_relay_ports_the_2xx_still_answers_the_trunks_offer() {
    // One port pair per leg, two per call: room for exactly one call.
    let mut h = Harness::with_ports(15, 30000, 30003);
    h.register("1001", OP1);
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite("b5a"));
    assert!(out.requests_to(OP1, Method::Invite).len() == 1);
    let out = h.input(TRUNK, &trunk_invite("b5b"));
    let offer = out.requests_to(OP2, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP2,
        &phone_response(&offer, 200, "OK", "op2", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    assert_eq!(ok.status(), Some(200));
    assert!(
        String::from_utf8_lossy(ok.body()).contains("m=audio"),
        "the trunk's offer is left unanswered: 2xx without SDP"
    );
}

/// B6. An operator with two bindings: one answers with no common codec. siaga ACKs+BYEs it
/// and re-offers the call at once (no delay) — but never CANCELs the other binding of the
/// first offer, which goes on ringing (no ring timeout any more) next to the new INVITE.
#[test]
fn b6_no_common_codec_on_one_binding_cancels_the_others() {
    let mut h = Harness::new(15);
    h.register_binding("1001", OP1);
    h.register_binding("1001", OP2);
    let out = h.input(TRUNK, &trunk_invite("b6"));
    let a = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE a");
    let b = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("INVITE b");
    h.input(OP2, &phone_response(&b, 180, "Ringing", "b1", None));
    let g729 = "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let out = h.input(OP1, &phone_response(&a, 200, "OK", "a1", Some(g729)));
    let b_call_id = b.call_id().expect("cid").to_owned();
    let cancels_b = out
        .requests_to(OP2, Method::Cancel)
        .iter()
        .filter(|m| m.call_id().ok() == Some(b_call_id.as_str()))
        .count();
    let new_invites = out.requests_to(OP2, Method::Invite).len();
    assert_eq!(
        cancels_b, 1,
        "binding b of the failed offer is not cancelled (new INVITEs to it meanwhile: {new_invites})"
    );
}

/// Probe: two bindings of one operator answer at once; then 486+200.
#[test]
fn p1_two_bindings_answer_at_once() {
    let mut h = Harness::new(15);
    h.register_binding("1001", OP1);
    h.register_binding("1001", OP2);
    let out = h.input(TRUNK, &trunk_invite("p1"));
    let a = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE a");
    let b = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("INVITE b");
    h.input(OP1, &phone_response(&a, 180, "Ringing", "a1", None));
    h.input(OP2, &phone_response(&b, 180, "Ringing", "b1", None));
    let out1 = h.input(
        OP1,
        &phone_response(&a, 200, "OK", "a1", Some(SDP_OPERATOR)),
    );
    assert_eq!(out1.statuses_to(TRUNK), [200]);
    assert_eq!(out1.requests_to(OP2, Method::Cancel).len(), 1);
    let out2 = h.input(
        OP2,
        &phone_response(&b, 200, "OK", "b1", Some(SDP_OPERATOR)),
    );
    assert!(out2.statuses_to(TRUNK).is_empty());
    assert_eq!(out2.requests_to(OP2, Method::Ack).len(), 1);
    assert_eq!(out2.requests_to(OP2, Method::Bye).len(), 1);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::OnCall { .. })
    ));
    assert_eq!(h.engine.live_calls(), 1);
}

#[test]
fn p2_486_from_one_binding_and_200_from_the_other() {
    let mut h = Harness::new(15);
    h.register_binding("1001", OP1);
    h.register_binding("1001", OP2);
    let out = h.input(TRUNK, &trunk_invite("p2"));
    let a = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE a");
    let b = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("INVITE b");
    let out = h.input(OP1, &phone_response(&a, 486, "Busy Here", "a1", None));
    assert!(out.events.is_empty(), "{:?}", out.events);
    let out = h.input(
        OP2,
        &phone_response(&b, 200, "OK", "b1", Some(SDP_OPERATOR)),
    );
    assert_eq!(out.statuses_to(TRUNK), [200]);
}

/// Probe: unregistering while ringing, then the ring timeout: operator logged out.
#[test]
fn p3_unregister_while_ringing() {
    let mut h = Harness::new(3);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("p3"));
    let a = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE a");
    h.input(OP1, &phone_response(&a, 180, "Ringing", "a1", None));
    // Binding expiry: advance past 3600 s while the call is answered instead? Here: expiry
    // during ringing is equivalent to Expires: 0.
    let out = h.advance(3_000);
    assert_eq!(out.requests_to(OP1, Method::Cancel).len(), 1);
    // re-offered to the same (only) operator at once
    assert_eq!(out.requests_to(OP1, Method::Invite).len(), 1, "re-offer");
}

/// B7. RFC 3261 §13.2.2.4: every 2xx with a new To tag is a new dialog to ACK (and BYE, if
/// unwanted). A second 2xx on the winning leg with another To tag (a forking proxy in
/// front of the phone) gets the ACK of the first dialog instead, and is never ended.
#[test]
fn b7_a_second_2xx_with_another_to_tag_is_acked_and_byed() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("p4"));
    let a = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE a");
    h.input(
        OP1,
        &phone_response(&a, 200, "OK", "a1", Some(SDP_OPERATOR)),
    );
    let out = h.input(
        OP1,
        &phone_response(&a, 200, "OK", "a2", Some(SDP_OPERATOR)),
    );
    let acks = out.requests_to(OP1, Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        acks[0].to().expect("to").tag(),
        Some("a2"),
        "ACK goes to the a1 dialog instead"
    );
    assert_eq!(
        out.requests_to(OP1, Method::Bye).len(),
        1,
        "the second dialog is not ended"
    );
}

/// Probe: operator BYE before the trunk ACKed the 2xx; then the trunk's late ACK.
#[test]
fn p6_operator_bye_before_trunk_ack() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("p6"));
    let invite = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    let bye = format!(
        "BYE sip:siaga@{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {OP1};branch=z9hG4bKopbye\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(&ack.header(HeaderName::To).expect("to").value()),
        String::from_utf8_lossy(&ack.header(HeaderName::From).expect("from").value()),
        ack.call_id().expect("call-id"),
    );
    let out = h.input(OP1, &bye);
    assert_eq!(out.statuses_to(OP1), [200]);
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "p6ack"));
    let out = h.advance(40_000);
    assert!(
        out.statuses_to(TRUNK).is_empty(),
        "2xx still resent: {:?}",
        out.statuses_to(TRUNK)
    );
    assert_eq!(h.engine.live_calls(), 0);
    assert!(matches!(
        h.engine.agent_state("1001"),
        Some(AgentState::Available { .. })
    ));
}

const SBC: &str = "127.0.0.1:5098";

/// The trunk's INVITE of call `id` with `extra` headers.
fn trunk_invite_with(id: &str, extra: &str) -> String {
    trunk_invite(id).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
    )
}

/// Registers operator 1001, sends the trunk's `invite` and answers it on 1001; the trunk
/// has not ACKed yet. Returns (what the INVITE drew, siaga's 2xx to the trunk, the
/// operator's ACK).
fn answer_through_1001(h: &mut Harness, invite: &str) -> (Out, SipMessage, SipMessage) {
    h.register("1001", OP1);
    let first = h.input(TRUNK, invite);
    let offer = first
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    (first, ok, ack)
}

/// Answers the trunk call `id` (with `extra` headers in its INVITE) through operator 1001
/// and returns (siaga's 2xx to the trunk, the operator's ACK), the trunk's ACK sent.
fn answered_call(h: &mut Harness, id: &str, extra: &str) -> (SipMessage, SipMessage) {
    answered_call_with(h, id, &trunk_invite_with(id, extra))
}

/// [`answered_call`] of the trunk's `invite` (Call-ID `id`): siaga's 2xx to the trunk and
/// its ACK to operator 1001, the trunk's ACK sent.
fn answered_call_with(h: &mut Harness, id: &str, invite: &str) -> (SipMessage, SipMessage) {
    let (_, ok, ack) = answer_through_1001(h, invite);
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, &format!("{id}ack")));
    (ok, ack)
}

fn operator_bye(ack: &SipMessage) -> String {
    format!(
        "BYE sip:siaga@{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {OP1};branch=z9hG4bKopbye\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(&ack.header(HeaderName::To).expect("to").value()),
        String::from_utf8_lossy(&ack.header(HeaderName::From).expect("from").value()),
        ack.call_id().expect("call-id"),
    )
}

/// B9. RFC 3261 §12.1.1: the UAS MUST copy every Record-Route of the request into the
/// response that establishes the dialog (the 2xx, and 1xx with a To tag). siaga copies
/// none, so the trunk side builds an empty route set and its ACK/BYE bypass the proxies.
#[test]
fn b9_the_2xx_to_the_trunk_copies_record_route() {
    let mut h = Harness::new(15);
    let (ok, _) = answered_call(
        &mut h,
        "b9",
        &format!("Record-Route: <sip:{SBC};lr>\r\nRecord-Route: <sip:192.0.2.9:5070;lr>\r\n"),
    );
    assert_eq!(
        ok.headers_named(HeaderName::RecordRoute).count(),
        2,
        "no Record-Route in siaga's 2xx"
    );
}

/// B10. Record-Route values combined in one header line (RFC 3261 §7.3.1, common) end up
/// as one route-set entry "<a>, <b>": the next hop cannot be parsed, so siaga's BYE goes
/// straight to the trunk's Contact instead of the first record-routed proxy (§12.2.1.1).
#[test]
fn b10_a_comma_joined_record_route_still_routes_the_bye_via_the_first_hop() {
    let mut h = Harness::new(15);
    let (_, ack) = answered_call(
        &mut h,
        "b10",
        &format!("Record-Route: <sip:{SBC};lr>, <sip:192.0.2.9:5070;lr>\r\n"),
    );
    let out = h.input(OP1, &operator_bye(&ack));
    assert_eq!(
        out.requests_to(TRUNK, Method::Bye).len(),
        0,
        "BYE bypassed the record-routed proxy"
    );
    let bye = out
        .requests_to(SBC, Method::Bye)
        .pop()
        .expect("BYE via the first hop");
    assert_eq!(bye.headers_named(HeaderName::Route).count(), 2);
}

impl Harness {
    /// `text` received over TCP connection `conn` from `from`.
    fn input_tcp(&mut self, from: &str, conn: u64, text: &str) -> Out {
        self.receive(Transport::Tcp, Some(conn), from, text)
    }

    fn connection_closed(&mut self, conn: u64) -> Out {
        self.engine.handle_input(
            self.at(),
            Input::ConnectionClosed(crate::engine::ConnectionId(conn)),
        );
        self.drain()
    }
}

/// Answers call `id` from a trunk over TCP (connection 7 from its ephemeral port
/// 127.0.0.1:40001; Via and Contact name its listener) through operator 1001, the trunk's
/// ACK sent. Returns (siaga's 2xx to the trunk, its ACK to the operator).
fn answered_tcp_trunk_call(h: &mut Harness, id: &str) -> (SipMessage, SipMessage) {
    h.register("1001", OP1);
    let invite = trunk_invite(id)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace(
            &format!("<sip:gw@{TRUNK}>"),
            &format!("<sip:gw@{TRUNK};transport=tcp>"),
        );
    let out = h.input_tcp("127.0.0.1:40001", 7, &invite);
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ack = out.requests_to(OP1, Method::Ack).pop().expect("ACK");
    let ok = out
        .sent
        .iter()
        .find(|t| t.connection == Some(crate::engine::ConnectionId(7)))
        .map(|t| SipMessage::parse(t.bytes.clone(), Transport::Tcp).expect("2xx"))
        .expect("2xx on the trunk's connection");
    h.input_tcp(
        "127.0.0.1:40001",
        7,
        &trunk_in_dialog("ACK", &ok, 1, &format!("{id}ack")).replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
    );
    (ok, ack)
}

/// B11. A trunk over TCP: its connection closes during an answered call (siaga's own
/// `tcp_idle_timeout_s`, 600 s by default, or the SBC's). The trunk dialog keeps the dead
/// connection id, so siaga's BYE is handed to a connection that is gone and the shell
/// drops it ("tcp connection gone: message dropped"): the caller's leg is never hung up.
/// It should go out with no connection, so the shell opens one to the trunk (§18.1.1).
#[test]
fn b11_after_the_trunks_tcp_connection_closed_the_bye_still_goes_out() {
    let mut h = Harness::new(15);
    let (_, ack) = answered_tcp_trunk_call(&mut h, "b11");
    h.advance(600_000);
    h.connection_closed(7);
    let out = h.input(OP1, &operator_bye(&ack));
    let bye = out
        .sent
        .iter()
        .find(|t| String::from_utf8_lossy(&t.bytes).starts_with("BYE "))
        .expect("a BYE to the trunk");
    assert_eq!(bye.transport, Transport::Tcp);
    assert_eq!(
        bye.connection, None,
        "BYE handed to closed connection {:?}: the shell drops it",
        bye.connection
    );
}

/// B12. Same on the operator side: a softphone registered over TCP whose connection drops
/// mid-call (its re-REGISTER comes on a new connection). siaga's BYE goes to the dead
/// connection id and is dropped: the operator's phone stays in a call that no longer
/// exists, while the ACD marks the operator available again.
#[test]
fn b12_after_the_operators_tcp_connection_closed_the_bye_still_goes_out() {
    let mut h = Harness::new(15);
    h.register_tcp("1001", OP1, 9);
    let out = h.input(TRUNK, &trunk_invite("b12"));
    let offer = out.first_on_connection(9);
    let out = h.input_tcp(
        OP1,
        9,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "b12ack"));
    h.connection_closed(9);
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "b12bye"));
    let bye = out
        .sent
        .iter()
        .find(|t| String::from_utf8_lossy(&t.bytes).starts_with("BYE "))
        .expect("a BYE to the operator");
    assert_eq!(
        bye.connection, None,
        "BYE handed to closed connection {:?}: the shell drops it",
        bye.connection
    );
}

/// Random interleavings of trunk and phone behaviour; at the end everyone hangs up and
/// every call must be ended once, every operator available.
#[test]
fn f1_random_interleavings_leave_nothing_stuck() {
    // 40 seeds keep the debug-build suite quick; raise locally when hunting a race.
    for seed in 1..=40u64 {
        f1_run(seed);
    }
}

fn hdr(m: &SipMessage, name: HeaderName) -> String {
    String::from_utf8_lossy(&m.header(name).expect("header").value()).into_owned()
}

fn f1_run(seed: u64) {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    const OP3: &str = "127.0.0.1:5073";
    let mut h = Harness::new(3);
    h.register_binding("1001", OP1);
    h.register_binding("1001", OP2);
    h.register_binding("1002", OP3);
    let phones = [OP1, OP2, OP3];
    // phone state: INVITEs pending (not answered), and dialogs answered (INVITE, tag)
    let mut pending: Vec<(usize, SipMessage)> = Vec::new();
    let mut talking: Vec<(usize, SipMessage, String)> = Vec::new();
    // trunk state
    let mut trunk_calls: Vec<String> = Vec::new(); // invites text by id
    let mut trunk_answered: Vec<(String, SipMessage)> = Vec::new();
    let mut received = 0usize;
    let mut ended = 0usize;
    let mut n = 0;
    let mut log: Vec<String> = Vec::new();
    let handle = |h: &mut Harness,
                  out: Out,
                  pending: &mut Vec<(usize, SipMessage)>,
                  talking: &mut Vec<(usize, SipMessage, String)>,
                  trunk_answered: &mut Vec<(String, SipMessage)>,
                  received: &mut usize,
                  ended: &mut usize,
                  log: &mut Vec<String>| {
        let mut queue = vec![out];
        while let Some(out) = queue.pop() {
            for e in &out.events {
                match e {
                    CallEventKind::Received { .. } => *received += 1,
                    CallEventKind::Ended { .. } => *ended += 1,
                    _ => {}
                }
            }
            for (i, p) in phones.iter().enumerate() {
                for m in out.to(p) {
                    match m.method() {
                        Some(Method::Invite) => pending.push((i, m)),
                        Some(Method::Cancel) => {
                            let cid = m.call_id().expect("cid").to_owned();
                            queue.push(h.input(p, &phone_response(&m, 200, "OK", "x", None)));
                            if let Some(k) = pending.iter().position(|(j, inv)| {
                                *j == i && inv.call_id().ok() == Some(cid.as_str())
                            }) {
                                let (_, inv) = pending.remove(k);
                                queue.push(h.input(
                                    p,
                                    &phone_response(&inv, 487, "Request Terminated", "x", None),
                                ));
                            }
                        }
                        Some(Method::Bye) => {
                            let cid = m.call_id().expect("cid").to_owned();
                            talking.retain(|(j, inv, _)| {
                                !(*j == i && inv.call_id().ok() == Some(cid.as_str()))
                            });
                            queue.push(h.input(p, &phone_response(&m, 200, "OK", "x", None)));
                        }
                        _ => {}
                    }
                }
            }
            for m in out.to(TRUNK) {
                match (m.method(), m.status()) {
                    (Some(Method::Bye), _) => {
                        let cid = m.call_id().expect("cid").to_owned();
                        trunk_answered.retain(|(c, _)| *c != cid);
                        // 200 to siaga's BYE
                        let resp = format!(
                            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                            hdr(&m, HeaderName::Via),
                            hdr(&m, HeaderName::From),
                            hdr(&m, HeaderName::To),
                            cid,
                            hdr(&m, HeaderName::CSeq)
                        );
                        queue.push(h.input(TRUNK, &resp));
                    }
                    (None, Some(200)) if m.cseq().expect("cseq").method == Method::Invite => {
                        let cid = m.call_id().expect("cid").to_owned();
                        if !trunk_answered.iter().any(|(c, _)| *c == cid) {
                            log.push(format!("trunk answered {cid}"));
                            queue.push(h.input(
                                TRUNK,
                                &trunk_in_dialog("ACK", &m, 1, &format!("ack{cid}")),
                            ));
                            trunk_answered.push((cid, m));
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    for _step in 0..120 {
        let action = next(10);
        let out = match action {
            0 | 1 => {
                n += 1;
                let id = format!("s{seed}c{n}");
                // Half the calls require reliable 180s (RFC 3262) the trunk never PRACKs.
                let inv = match next(2) {
                    0 => trunk_invite_with(&id, "Require: 100rel\r\n"),
                    _ => trunk_invite(&id),
                };
                trunk_calls.push(inv.clone());
                log.push(format!("new call {id}"));
                h.input(TRUNK, &inv)
            }
            2 if !trunk_calls.is_empty() && next(2) == 0 => {
                let inv = trunk_calls
                    [trunk_calls.len() - 1 - next(trunk_calls.len().min(3) as u64) as usize]
                    .clone();
                log.push("trunk CANCEL".into());
                h.input(TRUNK, &cancel_of(&inv))
            }
            3 if !trunk_answered.is_empty() => {
                let (cid, ok) = trunk_answered.remove(next(trunk_answered.len() as u64) as usize);
                log.push(format!("trunk BYE {cid}"));
                h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, &format!("bye{cid}")))
            }
            4 | 5 | 6 | 8 if !pending.is_empty() => {
                let k = pending.len() - 1 - next(pending.len().min(2) as u64) as usize;
                let (i, inv) = pending[k].clone();
                let p = phones[i];
                let tag = format!("t{i}{}", inv.call_id().expect("cid").replace('@', "x"));
                match next(5) {
                    0 => {
                        log.push(format!("phone {i} 180"));
                        h.input(p, &phone_response(&inv, 180, "Ringing", &tag, None))
                    }
                    1 | 2 => {
                        pending.remove(k);
                        talking.push((i, inv.clone(), tag.clone()));
                        let o = h.input(
                            p,
                            &phone_response(&inv, 200, "OK", &tag, Some(SDP_OPERATOR)),
                        );
                        log.push(format!(
                            "phone {i} 200 {} -> trunk {:?} phone {:?}",
                            inv.call_id().expect("c"),
                            o.statuses_to(TRUNK),
                            o.to(p)
                                .iter()
                                .map(|m| m.method().map(|x| x.as_str().to_owned()))
                                .collect::<Vec<_>>()
                        ));
                        o
                    }
                    3 => {
                        pending.remove(k);
                        log.push(format!("phone {i} 486"));
                        h.input(p, &phone_response(&inv, 486, "Busy Here", &tag, None))
                    }
                    _ => {
                        pending.remove(k);
                        log.push(format!("phone {i} 200 again/dup"));
                        talking.push((i, inv.clone(), tag.clone()));

                        h.input(
                            p,
                            &phone_response(&inv, 200, "OK", &tag, Some(SDP_OPERATOR)),
                        )
                    }
                }
            }
            7 if !talking.is_empty() => {
                let (i, inv, tag) = talking.remove(next(talking.len() as u64) as usize);
                log.push(format!("phone {i} BYE"));
                let bye = format!(
                    "BYE sip:siaga@{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKpb{}\r\nMax-Forwards: 70\r\nFrom: {};tag={tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n",
                    phones[i],
                    tag,
                    hdr(&inv, HeaderName::To),
                    hdr(&inv, HeaderName::From),
                    inv.call_id().expect("cid")
                );
                h.input(phones[i], &bye)
            }
            _ => {
                let ms = next(5000);
                log.push(format!("advance {ms}"));
                h.advance(ms)
            }
        };
        handle(
            &mut h,
            out,
            &mut pending,
            &mut talking,
            &mut trunk_answered,
            &mut received,
            &mut ended,
            &mut log,
        );
    }
    // Everyone hangs up.
    for _ in 0..20 {
        for inv in trunk_calls.clone() {
            let out = h.input(TRUNK, &cancel_of(&inv));
            handle(
                &mut h,
                out,
                &mut pending,
                &mut talking,
                &mut trunk_answered,
                &mut received,
                &mut ended,
                &mut log,
            );
        }
        for (_, ok) in trunk_answered.clone() {
            let out = h.input(
                TRUNK,
                &trunk_in_dialog(
                    "BYE",
                    &ok,
                    3,
                    &format!("fbye{}", ok.call_id().expect("cid")),
                ),
            );
            handle(
                &mut h,
                out,
                &mut pending,
                &mut talking,
                &mut trunk_answered,
                &mut received,
                &mut ended,
                &mut log,
            );
        }
        trunk_answered.clear();
        for (i, inv) in pending.clone() {
            let out = h.input(
                phones[i],
                &phone_response(&inv, 480, "Unavailable", "z", None),
            );
            handle(
                &mut h,
                out,
                &mut pending,
                &mut talking,
                &mut trunk_answered,
                &mut received,
                &mut ended,
                &mut log,
            );
        }
        pending.clear();
        let out = h.advance(40_000);
        handle(
            &mut h,
            out,
            &mut pending,
            &mut talking,
            &mut trunk_answered,
            &mut received,
            &mut ended,
            &mut log,
        );
    }
    let stuck = |id: &str| !matches!(h.engine.agent_state(id), Some(AgentState::Available { .. }));
    assert!(
        h.engine.live_calls() == 0 && received == ended && !stuck("1001") && !stuck("1002"),
        "seed {seed}: live {} received {received} ended {ended} 1001 {:?} 1002 {:?}\n{}",
        h.engine.live_calls(),
        h.engine.agent_state("1001"),
        h.engine.agent_state("1002"),
        log.join("\n")
    );
}

/// B13. NG112 / RFC 6442 location conveyance: an emergency INVITE whose body is
/// multipart/mixed (the SDP offer plus a PIDF-LO, with a Geolocation header) is refused
/// 415 by the generic UAS checks. The caller is never queued, and nothing is recorded.
#[test]
fn b13_an_emergency_invite_with_sdp_and_pidf_lo_is_taken() {
    let mut h = Harness::new(15);
    let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"pres:caller@trunk.test\"/>";
    let body = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP_TRUNK}\r\n--b1\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc@trunk.test>\r\n\r\n{pidf}\r\n--b1--\r\n"
    );
    let invite = trunk_invite("b13")
        .replace(
            "Content-Type: application/sdp",
            "Geolocation: <cid:loc@trunk.test>\r\nContent-Type: multipart/mixed;boundary=b1",
        )
        .replace(SDP_TRUNK, &body)
        .replace(
            &format!("Content-Length: {}", SDP_TRUNK.len()),
            &format!("Content-Length: {}", body.len()),
        );
    let out = h.input(TRUNK, &invite);
    assert_eq!(out.statuses_to(TRUNK), [100, 180], "emergency call refused");
}

/// B14. Every emergency INVITE siaga refuses should leave a record (as the 488 path does,
/// `Received` + `Ended{failed}`): the 420 (Require of an unknown extension), 406 (Accept) and 415
/// refusals of INVITEs to 112 from the trunk leave neither a record nor a log line above
/// debug.
#[test]
fn b14_refused_emergency_invites_are_recorded() {
    let mut h = Harness::new(15);
    for (i, extra) in ["Require: nosuchext\r\n", "Accept: application/isup\r\n"]
        .iter()
        .enumerate()
    {
        let invite = trunk_invite_with(&format!("b14-{i}"), extra);
        let out = h.input(TRUNK, &invite);
        assert!(out.statuses_to(TRUNK)[0] >= 400);
        assert!(
            !out.events.is_empty(),
            "{extra:?}: 112 call refused {:?} with no record",
            out.statuses_to(TRUNK)
        );
    }
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

/// Stopping siaga ends every live call: BYE to both legs of an answered call, 503 to a
/// caller still waiting (the telco can route it elsewhere), and both recorded as
/// interrupted; a new emergency INVITE then draws 503.
#[test]
fn shutdown_hangs_up_live_calls_and_records_them_as_interrupted() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let out = h.input(TRUNK, &trunk_invite("s1"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "s1ack"));
    h.input(TRUNK, &trunk_invite("s2"));
    assert_eq!(h.engine.waiting_calls(), 1);
    h.engine.shutdown(h.at());
    let out = h.drain();
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(out.requests_to(TRUNK, Method::Bye).len(), 1);
    assert_eq!(out.statuses_to(TRUNK), [503]);
    let interrupted = out
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                CallEventKind::Ended {
                    by: Party::Siaga,
                    disposition: Disposition::Interrupted
                }
            )
        })
        .count();
    assert_eq!(interrupted, 2);
    assert_eq!(h.engine.live_calls(), 0);
    let out = h.input(TRUNK, &trunk_invite("s3"));
    assert_eq!(out.statuses_to(TRUNK), [503]);
}

/// RFC 3261 §12.1.1: a From without a tag (an RFC 2543 trunk) is a null tag; the call
/// still forms a dialog, and the trunk's BYE ends both legs.
#[test]
fn a_trunk_without_from_tag_still_hangs_up_both_legs() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let invite = trunk_invite("t1").replace(";tag=trt1", "");
    let out = h.input(TRUNK, &invite);
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input(
        OP1,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "t1ack"));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "t1bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    assert_eq!(out.requests_to(OP1, Method::Bye).len(), 1);
    assert_eq!(h.engine.live_calls(), 0);
}

/// An SBC may address the PSAP by a name siaga does not list: an emergency number from
/// the trunk is still taken, not 404.
#[test]
fn an_emergency_number_at_an_unlisted_host_from_the_trunk_is_taken() {
    let mut h = Harness::new(15);
    let invite = trunk_invite("t2").replace(
        "INVITE sip:112@127.0.0.1:5060",
        "INVITE sip:112@psap.example.id",
    );
    let out = h.input(TRUNK, &invite);
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert_eq!(h.engine.waiting_calls(), 1);
}

mod acd;
mod acd_sim;
mod break_midcall;
mod break_transport;
mod callback;
mod callback_api;
mod dropped;
mod feature;
mod leg_loss;
mod lenient_from;
mod midcall;
mod overflow;
mod prack;
mod races;
mod transfer;
mod transfer_tel;
mod trunk_interop;

/// After the TCP connection to an operator's record-routing proxy closed, the BYE still
/// goes to the proxy (the first route, RFC 3261 §12.2.1.1) on a new connection, not to the
/// phone's Contact (a phone's closed connection is replaced by its Contact, b12).
#[test]
fn after_a_record_routing_proxys_tcp_connection_closed_the_bye_goes_to_the_proxy() {
    let mut h = Harness::new(15);
    h.register_tcp("1001", OP1, 9);
    let out = h.input(TRUNK, &trunk_invite("rrclose"));
    let offer = out.first_on_connection(9);
    // The proxy is the peer of the phone's connection; the phone's Contact is elsewhere.
    let ok = phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)).replacen(
        "Contact: <sip:phone@127.0.0.1:5071>",
        "Record-Route: <sip:127.0.0.1:5071;transport=tcp;lr>\r\nContact: <sip:phone@127.0.0.1:5088;transport=tcp>",
        1,
    );
    let out = h.input_tcp(OP1, 9, &ok);
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "rrcloseack"));
    h.connection_closed(9);
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "rrclosebye"));
    let bye = out
        .sent
        .iter()
        .find(|t| String::from_utf8_lossy(&t.bytes).starts_with("BYE "))
        .expect("a BYE to the operator");
    assert_eq!(bye.connection, None, "not on the closed connection");
    assert_eq!(bye.destination, addr(OP1), "to the proxy, not the Contact");
}
