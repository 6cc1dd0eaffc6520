//! Trunk health in virtual time: the engine probes its gateways with OPTIONS, a test
//! plays each gateway (answering, or not), and the gateway's state is read back.

use super::{Gateway, GatewayState, HealthConfig};
use crate::engine::sip::{HeaderName, Method, SipMessage};
use crate::engine::{Engine, EngineConfig, Input, MonoTime, Now, Output, Received, Transport};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

const SIAGA: &str = "127.0.0.1:5060";
const GW_UDP: &str = "127.0.0.1:5070";
const GW_TCP: &str = "127.0.0.1:5080";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address literal")
}

fn gateway(uri: &str, address: &str, transport: Transport) -> Gateway {
    Gateway {
        uri: uri.to_owned(),
        address: addr(address),
        transport,
    }
}

/// An engine probing one UDP gateway every `interval_s`, down after `failures`.
fn engine(interval_s: u64, failures: u32, gateways: Vec<Gateway>) -> Engine {
    let mut config = EngineConfig::for_tests(addr(SIAGA));
    config.calls.trunk_health = HealthConfig {
        gateways,
        interval: Duration::from_secs(interval_s),
        failures_before_down: failures,
    };
    Engine::with_seed(config, 3)
}

fn udp_gateway() -> Vec<Gateway> {
    vec![gateway("sip:127.0.0.1:5070", GW_UDP, Transport::Udp)]
}

/// A gateway's peer: what siaga sent it, with the time each was sent.
struct Peer {
    engine: Engine,
    now: u64,
}

impl Peer {
    fn new(engine: Engine) -> Peer {
        Peer { engine, now: 0 }
    }

    fn at(&self) -> Now {
        Now::from_millis(self.now)
    }

    /// Runs every timer due up to `until` ms; returns what was sent, with its time.
    fn run_until(&mut self, until: u64) -> Vec<(u64, SipMessage)> {
        let mut sent = Vec::new();
        self.engine.handle_timeout(self.at());
        loop {
            match self.engine.poll_output() {
                Output::Transmit(t) => {
                    let msg = SipMessage::parse(t.bytes, Transport::Udp).expect("parseable");
                    sent.push((self.now, msg));
                }
                Output::Wait {
                    until: Some(at), ..
                } if at <= MonoTime::from_millis(until) => {
                    self.now = self.now.max(at.since_origin().as_millis() as u64);
                    self.engine.handle_timeout(self.at());
                }
                Output::Wait { .. } => break,
                Output::Close { .. }
                | Output::Event(_)
                | Output::AgentEvent(_)
                | Output::Media(_) => {}
            }
        }
        self.now = until;
        sent
    }

    /// The gateway answers `request` with `status`.
    fn answer(&mut self, request: &SipMessage, status: u16, transport: Transport) {
        let mut text = format!("SIP/2.0 {status} Whatever\r\n");
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            let value = request.header(name).expect("header").value();
            text.push_str(&format!(
                "{}: {}\r\n",
                name.canonical(),
                String::from_utf8_lossy(&value)
            ));
        }
        let to = request.header(HeaderName::To).expect("To").value();
        text.push_str(&format!(
            "To: {};tag=gw\r\nContent-Length: 0\r\n\r\n",
            String::from_utf8_lossy(&to)
        ));
        let (source, connection) = match transport {
            Transport::Udp => (GW_UDP, None),
            Transport::Tcp => (GW_TCP, Some(crate::engine::ConnectionId(4))),
        };
        self.engine.handle_input(
            self.at(),
            Input::Received(Received {
                transport,
                source: addr(source),
                local: addr(SIAGA),
                connection,
                bytes: Bytes::from(text),
            }),
        );
    }

    fn state(&self, index: usize) -> GatewayState {
        self.engine
            .trunk_gateways()
            .nth(index)
            .expect("gateway")
            .state
    }
}

/// The distinct OPTIONS among `sent` (first copies, not Timer E retransmissions).
fn new_options(sent: &[(u64, SipMessage)]) -> Vec<(u64, SipMessage)> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (at, m) in sent {
        assert_eq!(
            m.method(),
            Some(&Method::Options),
            "siaga only sends OPTIONS here"
        );
        let branch = m
            .top_via()
            .expect("Via")
            .branch()
            .unwrap_or_default()
            .to_owned();
        if !seen.contains(&branch) {
            seen.push(branch);
            out.push((*at, m.clone()));
        }
    }
    out
}

#[test]
fn the_first_options_goes_out_at_start_as_rfc_3261_section_11_asks() {
    let mut p = Peer::new(engine(30, 3, udp_gateway()));
    let sent = p.run_until(0);
    let [(0, options)] = &sent[..] else {
        panic!("one OPTIONS at start: {sent:?}")
    };
    assert_eq!(options.request_uri_raw(), Some("sip:127.0.0.1:5070"));
    assert_eq!(options.cseq().expect("CSeq").method, Method::Options);
    let via = options.top_via().expect("Via");
    assert!(via.has_rfc3261_branch());
    assert_eq!(via.transport, "UDP");
    assert!(options.from().expect("From").tag().is_some());
    assert!(options.to().expect("To").tag().is_none());
    assert_eq!(
        options
            .header(HeaderName::Accept)
            .map(|h| h.value().to_vec()),
        Some(b"application/sdp".to_vec())
    );
    assert_eq!(p.state(0), GatewayState::Unknown);
}

#[test]
fn a_response_marks_the_gateway_up_and_the_interval_is_honoured() {
    let mut p = Peer::new(engine(10, 3, udp_gateway()));
    let first = p.run_until(0);
    p.now = 40;
    p.answer(&first[0].1, 200, Transport::Udp);
    assert_eq!(p.state(0), GatewayState::Up);
    let status = p.engine.trunk_gateways().next().expect("gateway").clone();
    assert_eq!(status.last_status, Some(200));
    assert_eq!(status.since, Some(MonoTime::from_millis(40)));
    // Nothing more until 10 s after the first was sent; then one new OPTIONS, new Call-ID.
    assert!(
        p.run_until(9_999).is_empty(),
        "no probe before the interval"
    );
    let next = new_options(&p.run_until(10_000));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0, 10_000);
    assert_ne!(next[0].1.call_id(), first[0].1.call_id());
    p.answer(&next[0].1, 200, Transport::Udp);
    let third = new_options(&p.run_until(20_000));
    assert_eq!(
        third.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [20_000]
    );
}

#[test]
fn an_up_gateway_goes_down_after_n_unanswered_probes_and_up_again_on_a_503() {
    // T1 500 ms: each probe is retransmitted on Timer E and given up on Timer F at 32 s.
    let mut p = Peer::new(engine(10, 3, udp_gateway()));
    let first = p.run_until(0);
    p.answer(&first[0].1, 200, Transport::Udp);
    assert_eq!(p.state(0), GatewayState::Up);
    // Probes at 10 s (fails at 42 s), 42 s (fails at 74 s), 74 s (fails at 106 s).
    let sent = p.run_until(105_999);
    let starts: Vec<u64> = new_options(&sent).iter().map(|(at, _)| *at).collect();
    assert_eq!(starts, [10_000, 42_000, 74_000], "one probe at a time");
    assert!(
        sent.len() > starts.len(),
        "Timer E retransmits each over UDP"
    );
    assert_eq!(p.state(0), GatewayState::Up, "2 failures of 3: still up");
    assert_eq!(
        p.engine.trunk_gateways().next().map(|g| g.failures),
        Some(2)
    );
    let sent = p.run_until(106_000);
    assert_eq!(p.state(0), GatewayState::Down, "third Timer F: down");
    assert_eq!(
        p.engine.trunk_gateways().next().and_then(|g| g.since),
        Some(MonoTime::from_millis(106_000))
    );
    // The next probe goes out at once (the interval since the last one has passed); a
    // 503 shows the gateway is alive: up again.
    let next = new_options(&sent);
    assert_eq!(
        next.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [106_000]
    );
    p.now = 106_500;
    p.answer(&next[0].1, 503, Transport::Udp);
    assert_eq!(p.state(0), GatewayState::Up);
    assert_eq!(
        p.engine.trunk_gateways().next().map(|g| g.failures),
        Some(0)
    );
}

#[test]
fn a_gateway_that_never_answers_goes_from_unknown_to_down() {
    let mut p = Peer::new(engine(60, 2, udp_gateway()));
    p.run_until(32_000 - 1);
    assert_eq!(p.state(0), GatewayState::Unknown);
    p.run_until(32_000);
    assert_eq!(p.state(0), GatewayState::Unknown, "one failure of two");
    // The second probe waits for the interval (60 s after the first), fails at 92 s.
    p.run_until(91_999);
    assert_eq!(p.state(0), GatewayState::Unknown);
    p.run_until(92_000);
    assert_eq!(p.state(0), GatewayState::Down);
}

#[test]
fn a_provisional_response_is_enough_and_counts_once() {
    let mut p = Peer::new(engine(10, 1, udp_gateway()));
    let first = p.run_until(0);
    p.answer(&first[0].1, 100, Transport::Udp);
    assert_eq!(p.state(0), GatewayState::Up);
    // The transaction then times out (no final response): not a failure, it was answered.
    p.run_until(9_999);
    assert_eq!(p.state(0), GatewayState::Up);
}

#[test]
fn tcp_gateways_are_probed_over_tcp_without_retransmissions_each_on_its_own() {
    let gateways = vec![
        gateway("sip:127.0.0.1:5070", GW_UDP, Transport::Udp),
        gateway("sip:127.0.0.1:5080;transport=tcp", GW_TCP, Transport::Tcp),
    ];
    let mut p = Peer::new(engine(60, 1, gateways));
    let sent = p.run_until(0);
    assert_eq!(sent.len(), 2);
    let tcp = sent
        .iter()
        .map(|(_, m)| m)
        .find(|m| m.request_uri_raw() == Some("sip:127.0.0.1:5080;transport=tcp"))
        .expect("OPTIONS to the TCP gateway");
    assert_eq!(tcp.top_via().expect("Via").transport, "TCP");
    p.answer(tcp, 200, Transport::Tcp);
    assert_eq!(p.state(1), GatewayState::Up);
    // The UDP gateway stays silent: retransmitted, then down; the TCP one is untouched.
    let later = p.run_until(32_000);
    assert!(
        later
            .iter()
            .all(|(_, m)| m.request_uri_raw() == Some("sip:127.0.0.1:5070"))
    );
    assert_eq!(p.state(0), GatewayState::Down);
    assert_eq!(p.state(1), GatewayState::Up);
}

#[test]
fn shutdown_stops_probing_and_drops_the_probe_in_flight() {
    let mut p = Peer::new(engine(10, 1, udp_gateway()));
    p.run_until(0);
    assert_eq!(p.engine.client_transactions(), 1);
    p.now = 1_000;
    p.engine.shutdown(p.at());
    assert!(p.run_until(100_000).is_empty(), "no OPTIONS after shutdown");
    assert_eq!(p.engine.client_transactions(), 0);
    assert_eq!(p.state(0), GatewayState::Unknown, "dropped, not failed");
}

#[test]
fn options_from_the_trunk_draw_200_with_allow_accept_and_supported() {
    let mut e = engine(30, 3, Vec::new());
    let text = format!(
        "OPTIONS sip:{SIAGA} SIP/2.0\r\nVia: SIP/2.0/UDP {GW_UDP};branch=z9hG4bKka1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:gw@{GW_UDP}>;tag=k1\r\nTo: <sip:{SIAGA}>\r\nCall-ID: keepalive-1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    e.handle_input(
        Now::from_millis(0),
        Input::Received(Received {
            transport: Transport::Udp,
            source: addr(GW_UDP),
            local: addr(SIAGA),
            connection: None,
            bytes: Bytes::from(text),
        }),
    );
    let Output::Transmit(t) = e.poll_output() else {
        panic!("a response")
    };
    assert_eq!(t.destination, addr(GW_UDP));
    let ok = SipMessage::parse(t.bytes, Transport::Udp).expect("parseable");
    assert_eq!(ok.status(), Some(200));
    let value = |name| {
        ok.header(name)
            .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
    };
    let allow = value(HeaderName::Allow).expect("Allow");
    for method in ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"] {
        assert!(allow.contains(method), "Allow lists {method}: {allow}");
    }
    assert_eq!(
        value(HeaderName::Accept).as_deref(),
        Some("application/sdp")
    );
    assert!(value(HeaderName::Supported).is_some(), "Supported present");
}
