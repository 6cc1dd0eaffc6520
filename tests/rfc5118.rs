//! RFC 5118's IPv6 torture cases (§4.1–§4.10), written after the RFC's examples: first what
//! the parser makes of each message (the "key facts"), then what siaga answers when the
//! message reaches it, in a sans-IO engine at `[::1]:5060` fed from `[::1]` (nothing leaves
//! the test: the engine only returns what it would send).

use bytes::Bytes;
use siaga::engine::sdp;
use siaga::engine::sip::uri::Host;
use siaga::engine::sip::view::Contacts;
use siaga::engine::sip::{HeaderName, ParseError, SipMessage};
use siaga::engine::{Engine, EngineConfig, Input, Now, Output, Received, Transmit, Transport};
use std::net::{IpAddr, SocketAddr};

fn text(lines: &[&str], body: &str) -> Bytes {
    let mut out = lines.join("\r\n");
    out.push_str(&format!("\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    Bytes::from(out)
}

fn parse(lines: &[&str], body: &str) -> SipMessage {
    SipMessage::parse(text(lines, body), Transport::Udp)
        .unwrap_or_else(|e| panic!("{lines:?} must parse: {:?}", e.error))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// §4.1 ipv6-good: an IPv6 reference in the Request-URI, Via and Contact.
const IPV6_GOOD: &[&str] = &[
    "REGISTER sip:[2001:db8::10] SIP/2.0",
    "To: sip:user@example.com",
    "From: sip:user@example.com;tag=81x2",
    "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111",
    "Call-ID: SSG9559905523997077@hlau_4100",
    "Max-Forwards: 70",
    "Contact: \"Caller\" <sip:caller@[2001:db8::1]>",
    "CSeq: 98176 REGISTER",
];

/// §4.6 ipv6-in-sdp: the session in IPv6 too.
const SDP_IPV6: &str = "v=0\r\no=assistant 971731711378798081 0 IN IP6 2001:db8::20\r\ns=Live video feed\r\nc=IN IP6 2001:db8::20\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 6024 RTP/AVP 107\r\na=rtpmap:107 H263-1998/90000\r\n";

/// §4.8 mult-ip-in-sdp: an IPv4 audio stream beside an IPv6 video one.
const SDP_MIXED: &str = "v=0\r\no=bob 280744730 28977631 IN IP4 host.example.com\r\ns= \r\nt=0 0\r\nm=audio 22334 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nm=video 6024 RTP/AVP 107\r\nc=IN IP6 2001:db8::1\r\na=rtpmap:107 H263-1998/90000\r\n";

/// §4.9 ipv4-mapped-ipv6.
const SDP_MAPPED: &str = "v=0\r\no=assistant 971731711378798081 0 IN IP6 ::ffff:192.0.2.2\r\ns=Call me soon, please!\r\nc=IN IP6 ::ffff:192.0.2.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 6024 RTP/AVP 107\r\na=rtpmap:107 H263-1998/90000\r\n";

#[test]
fn s4_1_an_ipv6_reference_parses_everywhere() {
    let m = parse(IPV6_GOOD, "");
    let ruri = m.request_uri().expect("request").expect("valid");
    assert_eq!(
        ruri.as_sip().expect("sip").host(),
        &Host::Ipv6("2001:db8::10".parse().unwrap())
    );
    let via = m.top_via().expect("via");
    assert_eq!((via.host.as_str(), via.port), ("[2001:db8::9:1]", None));
    assert_eq!(via.host_ip(), Some(ip("2001:db8::9:1")));
    let Contacts::List(contacts) = m.contacts().expect("contact") else {
        panic!("not *")
    };
    assert_eq!(
        contacts[0].uri.as_sip().expect("sip").host().ip(),
        Some(ip("2001:db8::1"))
    );
}

#[test]
fn s4_2_a_bare_ipv6_address_is_no_request_uri() {
    let mut lines = IPV6_GOOD.to_vec();
    lines[0] = "REGISTER sip:2001:db8::10 SIP/2.0";
    // The message is indexed (so a 400 can be addressed); its Request-URI does not parse.
    let m = parse(&lines, "");
    assert_eq!(m.request_uri(), Some(Err(ParseError::BadRequestUri)));
}

#[test]
fn s4_3_and_s4_4_the_port_is_outside_the_brackets() {
    let uri = |ruri: &str| {
        let mut lines = IPV6_GOOD.to_vec();
        let start = format!("REGISTER {ruri} SIP/2.0");
        lines[0] = &start;
        let m = parse(&lines, "");
        let sip = m.request_uri().expect("request").expect("valid");
        let sip = sip.as_sip().expect("sip").clone();
        (sip.host().clone(), sip.port())
    };
    // §4.3: one address, no port (the message is valid, its meaning unambiguous).
    assert_eq!(
        uri("sip:[2001:db8::10:5070]"),
        (Host::Ipv6("2001:db8::10:5070".parse().unwrap()), None)
    );
    // §4.4: the port follows the brackets.
    assert_eq!(
        uri("sip:[2001:db8::10]:5070"),
        (Host::Ipv6("2001:db8::10".parse().unwrap()), Some(5070))
    );
}

#[test]
fn s4_5_received_with_and_without_brackets() {
    for received in ["[2001:db8::9:255]", "2001:db8::9:255"] {
        let via =
            format!("Via: SIP/2.0/UDP [2001:db8::9:1];received={received};branch=z9hG4bKas3-111");
        let mut lines = IPV6_GOOD.to_vec();
        lines[0] = "OPTIONS sip:[2001:db8::10] SIP/2.0";
        lines[3] = &via;
        lines[7] = "CSeq: 921 OPTIONS";
        let m = parse(&lines, "");
        assert_eq!(
            m.top_via().expect("via").received(),
            Some(ip("2001:db8::9:255"))
        );
    }
}

#[test]
fn s4_6_s4_8_s4_9_ipv6_and_mixed_sdp() {
    let rtp = |body: &str| sdp::parse(body.as_bytes()).expect("sdp").rtp;
    assert_eq!(rtp(SDP_IPV6), Some("[2001:db8::20]:6000".parse().unwrap()));
    // §4.8: the audio stream's own c= line (IPv4), not the video's.
    assert_eq!(rtp(SDP_MIXED), Some("192.0.2.1:22334".parse().unwrap()));
    // §4.9: reached as the IPv4 address it maps.
    assert_eq!(rtp(SDP_MAPPED), Some("192.0.2.2:6000".parse().unwrap()));
}

#[test]
fn s4_7_several_addresses_in_vias() {
    let m = parse(
        &[
            "BYE sip:user@host.example.net SIP/2.0",
            "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144",
            "Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200",
            "Call-ID: 997077@lau_4100",
            "Max-Forwards: 70",
            "CSeq: 89187 BYE",
            "To: sip:user@example.net;tag=9817--94",
            "From: sip:user@example.com;tag=81x2",
        ],
        "",
    );
    let vias = m.vias().expect("vias");
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].host_ip(), vias[0].port),
        (Some(ip("2001:db8::9:1")), Some(6050))
    );
    assert_eq!(vias[1].host_ip(), Some(ip("192.0.2.1")));
    assert_eq!(
        (vias[2].transport.as_str(), vias[2].received()),
        ("TCP", Some(ip("192.0.2.200")))
    );
}

#[test]
fn s4_9_ipv4_mapped_addresses_in_headers() {
    let m = parse(
        &[
            "INVITE sip:user@example.com SIP/2.0",
            "To: sip:user@example.com",
            "From: sip:user@east.example.com;tag=81x2",
            "Via: SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19",
            "Via: SIP/2.0/UDP 192.0.2.10:19823;branch=z9hG4bKbh19",
            "Call-ID: SSG9559905523997077@hlau_4100",
            "Contact: \"T. desk phone\" <sip:ted@[::ffff:192.0.2.2]>",
            "CSeq: 612 INVITE",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
        ],
        SDP_MAPPED,
    );
    let via = m.top_via().expect("via");
    assert_eq!(
        via.host_ip().map(|a| a.to_canonical()),
        Some(ip("192.0.2.10"))
    );
    let Contacts::List(contacts) = m.contacts().expect("contact") else {
        panic!("not *")
    };
    assert_eq!(
        contacts[0]
            .uri
            .as_sip()
            .expect("sip")
            .host()
            .ip()
            .map(|a| a.to_canonical()),
        Some(ip("192.0.2.2"))
    );
}

#[test]
fn s4_10_three_colons_are_invalid_two_are_fine() {
    let options = |host: &str| {
        let start = format!("OPTIONS sip:user@[{host}] SIP/2.0");
        let mut lines = IPV6_GOOD.to_vec();
        lines[0] = &start;
        lines[7] = "CSeq: 1 OPTIONS";
        SipMessage::parse(text(&lines, ""), Transport::Udp)
    };
    let ruri = |host: &str| options(host).expect("indexed").request_uri();
    assert_eq!(
        ruri("2001:db8:::192.0.2.1"),
        Some(Err(ParseError::BadRequestUri))
    );
    let valid = ruri("2001:db8::192.0.2.1")
        .expect("request")
        .expect("valid");
    assert_eq!(
        valid.as_sip().expect("sip").host().ip(),
        Some(ip("2001:db8::c000:201"))
    );
}

// ---- what siaga answers -------------------------------------------------------------------

const SIAGA: &str = "[::1]:5060";
const PEER: &str = "[::1]:5070";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address literal")
}

/// Feeds `lines` (+ body) from `[::1]:5070` to a fresh siaga at `[::1]:5060` and returns
/// what it sends.
fn exchange(lines: &[String], body: &str) -> Vec<(SocketAddr, SipMessage)> {
    let mut engine = Engine::with_seed(EngineConfig::for_tests(addr(SIAGA)), 5118);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    engine.handle_input(
        Now::from_millis(0),
        Input::Received(Received {
            transport: Transport::Udp,
            source: addr(PEER),
            local: addr(SIAGA),
            connection: None,
            bytes: text(&lines, body),
        }),
    );
    let mut sent = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Transmit(Transmit {
                destination, bytes, ..
            }) => sent.push((
                destination,
                SipMessage::parse(bytes, Transport::Udp).expect("siaga sends parseable messages"),
            )),
            Output::Wait { .. } => return sent,
            _ => {}
        }
    }
}

fn request(start: &str, via: &str, method: &str, extra: &[&str]) -> Vec<String> {
    let mut lines = vec![
        start.to_owned(),
        "To: <sip:user@example.com>".to_owned(),
        "From: <sip:user@example.com>;tag=81x2".to_owned(),
        format!("Via: SIP/2.0/UDP {via};branch=z9hG4bKas3-111"),
        "Call-ID: SSG9559905523997077@hlau_4100".to_owned(),
        "Max-Forwards: 70".to_owned(),
        "Contact: \"Caller\" <sip:caller@[::1]:5070>".to_owned(),
        format!("CSeq: 921 {method}"),
    ];
    lines.extend(extra.iter().map(|s| (*s).to_owned()));
    lines
}

fn statuses(sent: &[(SocketAddr, SipMessage)]) -> Vec<(SocketAddr, u16)> {
    sent.iter()
        .map(|(to, m)| (*to, m.status().expect("a response")))
        .collect()
}

#[test]
fn siaga_answers_rfc5118_requests_by_their_meaning() {
    let peer = addr(PEER);
    // §4.4: the port outside the brackets names siaga; §4.5: a received= with or without
    // brackets is read (and answered at the Via's port).
    for via in [
        "[::1]:5070",
        "[::1]:5070;received=[::1]",
        "[::1]:5070;received=::1",
    ] {
        let sent = exchange(
            &request("OPTIONS sip:[::1]:5060 SIP/2.0", via, "OPTIONS", &[]),
            "",
        );
        assert_eq!(statuses(&sent), [(peer, 200)], "{via}");
    }
    // §4.3: [::1:5060] is another address (0::1:5060), not siaga at port 5060.
    let sent = exchange(
        &request(
            "OPTIONS sip:[::1:5060] SIP/2.0",
            "[::1]:5070",
            "OPTIONS",
            &[],
        ),
        "",
    );
    assert_eq!(statuses(&sent), [(peer, 404)]);
    // §4.2 and §4.10: invalid Request-URIs draw 400, at the Via's port.
    for ruri in ["sip:::1", "sip:user@[2001:db8:::192.0.2.1]"] {
        let sent = exchange(
            &request(
                &format!("OPTIONS {ruri} SIP/2.0"),
                "[::1]:5070",
                "OPTIONS",
                &[],
            ),
            "",
        );
        assert_eq!(statuses(&sent), [(peer, 400)], "{ruri}");
    }
    // §4.7: several Vias of both families; a BYE outside any dialog draws 481, sent to the
    // top Via, which keeps its order and values.
    let mut bye = request(
        "BYE sip:user@[::1]:5060 SIP/2.0",
        "[::1]:6050",
        "BYE",
        &[
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144",
            "Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200",
        ],
    );
    bye[1] = "To: <sip:user@example.com>;tag=9817--94".to_owned();
    let sent = exchange(&bye, "");
    assert_eq!(statuses(&sent), [(addr("[::1]:6050"), 481)]);
    assert_eq!(sent[0].1.vias().expect("vias").len(), 3);
    // §4.6: an emergency INVITE in IPv6 throughout (Request-URI, Via, Contact, SDP) is
    // taken by a siaga whose relay is IPv6 (the test config's media IP is its listen IP).
    let invite = request(
        "INVITE sip:112@[::1]:5060 SIP/2.0",
        "[::1]:5070",
        "INVITE",
        &["Content-Type: application/sdp"],
    );
    let sdp = SDP_IPV6.replace("2001:db8::20", "::1");
    let sent = exchange(&invite, &sdp);
    assert_eq!(statuses(&sent), [(peer, 100), (peer, 180)]);
}

#[test]
fn compact_header_names_with_ipv6_addresses() {
    // RFC 3261 §7.3.3 with RFC 5118 addresses: `v`, `f`, `t`, `i`, `m` are Via, From, To,
    // Call-ID and Contact.
    let lines = [
        "OPTIONS sip:[::1]:5060 SIP/2.0".to_owned(),
        "t: <sip:user@example.com>".to_owned(),
        "f: <sip:user@example.com>;tag=81x2".to_owned(),
        "v: SIP/2.0/UDP [::1]:5070;branch=z9hG4bKas3-112;rport".to_owned(),
        "i: SSG9559905523997078@hlau_4100".to_owned(),
        "m: <sip:caller@[::1]:5070>".to_owned(),
        "CSeq: 1 OPTIONS".to_owned(),
    ];
    let sent = exchange(&lines, "");
    assert_eq!(statuses(&sent), [(addr(PEER), 200)]);
    let via = sent[0].1.header(HeaderName::Via).expect("Via");
    assert_eq!(
        via.raw_name(),
        b"v",
        "the Via is answered as it was written"
    );
    assert_eq!(
        via.value_str().expect("text"),
        "SIP/2.0/UDP [::1]:5070;branch=z9hG4bKas3-112;rport=5070;received=::1"
    );
}
