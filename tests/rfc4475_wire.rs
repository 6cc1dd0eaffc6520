//! The RFC 4475 torture messages sent to a running siaga, one UDP datagram each, with the
//! reply each must draw (tests/data/rfc4475/README.md); after each, a plain OPTIONS must
//! still draw 200.
//!
//! The messages name hosts such as 192.0.2.x and example.com. siaga must answer to the
//! packet's source address (RFC 3261 §18.2.2), and nothing may leave the machine even if it
//! errs, so the test re-runs itself inside a network namespace that has only loopback
//! (`unshare -n`, then `ip link set lo up`; CI runs as root). There siaga listens on
//! 127.0.0.1:5090 (a port the files do not name) and the test listens for replies on the
//! ports the files' Vias name.
//!
//! Where RFC 4475 leaves a choice, siaga's policy is pinned here (see README "SIP
//! conformance"). A REGISTER without siaga's credentials draws the registrar's 401 challenge
//! (RFC 3261 §10.3 authenticates before it reads To or Contact, §22.1).
//!
//! The messages whose framing is the point are sent over TCP too ([`OVER_TCP`]), each on
//! a connection of its own, and must draw the reply, or the close, a stream calls for;
//! after each, a fresh connection's OPTIONS still draws 200.

mod common;

use common::{Siaga, TcpPeer, UdpPeer, config};
use std::io::Read;
use std::process::Command;
use std::time::Duration;

/// (file, expected status or None for "never answered", the port its reply goes to).
const EXPECTED: &[(&str, Option<u16>, u16)] = &[
    // §3.1.1 valid messages.
    ("wsinv", Some(481), 5060),
    ("intmeth", Some(501), 5060),
    ("esc01", Some(404), 5060),
    ("escnull", Some(401), 5060),
    ("esc02", Some(501), 5060),
    ("lwsdisp", Some(200), 5060),
    ("longreq", Some(404), 5060),
    ("dblreq", Some(401), 5060),
    ("semiuri", Some(200), 5060),
    ("transports", Some(200), 5060),
    ("mpart01", Some(405), 5070),
    ("unreason", None, 5060),
    ("noreason", None, 5060),
    // §3.1.2 invalid messages.
    ("badinv01", Some(400), 5060),
    ("clerr", Some(400), 5060),
    ("ncl", Some(400), 5060),
    ("scalar02", Some(400), 5060),
    ("scalarlg", None, 5060),
    ("quotbal", Some(400), 5050),
    ("ltgtruri", Some(400), 5060),
    ("lwsruri", Some(400), 5060),
    ("lwsstart", Some(404), 5060), // choice: extra SPs tolerated, INVITE handled
    ("trws", Some(200), 5060),     // choice: trailing SPs tolerated
    ("escruri", Some(404), 5060),  // choice: URI headers ignored, INVITE handled
    ("baddate", Some(404), 5060),  // choice: Date is not read
    ("regbadct", Some(401), 5060),
    ("badaspec", Some(400), 5060), // choice: strict
    ("baddn", Some(400), 5060),    // choice: strict
    ("badvers", Some(505), 5060),
    ("mismatch01", Some(400), 5060),
    ("mismatch02", Some(501), 5060),
    ("bigcode", None, 5060),
    // §3.2 transaction layer.
    ("badbranch", Some(200), 5060), // choice: RFC 2543 matching, answered normally
    // §3.3 application layer.
    ("insuf", Some(400), 5060),
    ("unkscm", Some(416), 5060),
    ("novelsc", Some(416), 5060),
    ("unksm2", Some(401), 5060),
    ("bext01", Some(420), 5061), // top Via is TLS: default port 5061 (§18.2.2)
    ("invut", Some(415), 5060),
    ("regaut01", Some(401), 5060),
    ("multi01", Some(400), 5060),
    ("mcl01", Some(400), 5060),
    ("bcast", None, 5060),
    ("zeromf", Some(200), 5060),
    ("cparam01", Some(401), 5060),
    ("cparam02", Some(401), 5060),
    ("regescrt", Some(401), 5060),
    ("sdp01", Some(406), 5060),
    // §3.4 backward compatibility.
    ("inv2543", Some(404), 5060),
];

/// What a message sent alone on a TCP connection must draw.
#[derive(Clone, Copy, Debug)]
enum OnTcp {
    /// These replies in order; the connection stays open (an OPTIONS on it draws 200 next).
    Replies(&'static [u16]),
    /// These replies, then siaga closes the connection: its framing is lost (RFC 4475
    /// §3.1.2.3, §3.3.9; RFC 3261 §18.3: Content-Length is required on a stream).
    RepliesThenClose(&'static [u16]),
    /// Nothing: the message is not whole yet (Content-Length promises more, or the header
    /// section never ends), so siaga waits; when the peer closes its side, siaga closes
    /// too, having answered nothing (RFC 4475 §3.1.2.2).
    NothingUntilClosed,
}

/// The files whose framing matters on a stream (tests/data/rfc4475/README.md), and a few
/// valid ones whose bodies test the framer (binary body, long message, two requests).
const OVER_TCP: &[(&str, OnTcp)] = &[
    ("clerr", OnTcp::NothingUntilClosed),
    ("baddn", OnTcp::NothingUntilClosed),
    ("ncl", OnTcp::RepliesThenClose(&[400])),
    ("mcl01", OnTcp::RepliesThenClose(&[400])),
    ("inv2543", OnTcp::RepliesThenClose(&[400])),
    ("scalar02", OnTcp::Replies(&[400])),
    ("mpart01", OnTcp::Replies(&[405])),
    ("longreq", OnTcp::Replies(&[404])),
    ("wsinv", OnTcp::Replies(&[481])),
    // On a stream the octets after the REGISTER are the next message (§3.1.1.8): an
    // INVITE (404), then 5 octets its Content-Length leaves over ("C" and a blank line),
    // which no Content-Length frames.
    ("dblreq", OnTcp::RepliesThenClose(&[401, 404])),
    ("scalarlg", OnTcp::Replies(&[])),
    ("bigcode", OnTcp::Replies(&[])),
    ("bcast", OnTcp::Replies(&[])),
];

const CHILD: &str = "SIAGA_RFC4475_IN_NETNS";

#[test]
fn rfc4475_messages_over_udp_and_tcp_in_a_loopback_only_namespace() {
    if std::env::var_os(CHILD).is_some() {
        return run_in_namespace();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args([
            "--exact",
            "rfc4475_messages_over_udp_and_tcp_in_a_loopback_only_namespace",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("unshare (util-linux) must be installed: sip-tests/test.sh installs it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the namespaced run failed (unshare -n needs root, as in CI):\n{stdout}\n{stderr}"
    );
}

fn run_in_namespace() {
    let interfaces = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip");
    let links = String::from_utf8_lossy(&interfaces.stdout);
    assert_eq!(
        links.lines().count(),
        1,
        "only loopback in the namespace: {links}"
    );

    let domains = [
        "example.com",
        "example.net",
        "example.org",
        "chair-dnrc.example.com",
        "company.com",
        "registrar.example.com",
        "ss1.example.net",
        "siaga.test",
    ];
    let siaga = Siaga::start("127.0.0.1:5090".parse().expect("literal"), config(&domains));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    let mut peers = std::collections::HashMap::new();
    let mut checked = 0;
    for (n, (name, expected, port)) in EXPECTED.iter().enumerate() {
        let peer = peers
            .entry(*port)
            .or_insert_with(|| UdpPeer::bind(&format!("127.0.0.1:{port}")));
        let bytes = std::fs::read(format!("{dir}/{name}.dat")).expect("data file");
        peer.send(&bytes, siaga.udp);
        if let Some(status) = expected {
            // Skip retransmitted finals of earlier INVITEs (they carry other Call-IDs).
            let call_id = call_id_of(&bytes);
            let reply = loop {
                let m = peer
                    .recv_within(common::GUARD)
                    .unwrap_or_else(|| panic!("{name}: no reply"));
                if call_id
                    .as_deref()
                    .is_none_or(|c| first_call_id(&m).as_deref() == Some(c))
                {
                    break m;
                }
            };
            assert_eq!(
                reply.status(),
                Some(*status),
                "{name}: {:?}",
                String::from_utf8_lossy(reply.reason().unwrap_or_default())
            );
            check_required_headers(name, &reply);
        }
        // The service goes on, and nothing answered what must not be answered.
        let alive = format!("alive-{n}");
        let probe = common::options(&alive, *port, "UDP");
        peer.send(probe.as_bytes(), siaga.udp);
        loop {
            let m = peer
                .recv_within(common::GUARD)
                .unwrap_or_else(|| panic!("after {name}: OPTIONS unanswered"));
            if first_call_id(&m).as_deref() == Some(alive.as_str()) {
                assert_eq!(m.status(), Some(200), "after {name}");
                break;
            }
            let from_file = call_id_of(&bytes);
            assert!(
                expected.is_some() && from_file == first_call_id(&m),
                "after {name}: unexpected message {:?}",
                first_call_id(&m)
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 49);
    for (n, &(name, expected)) in OVER_TCP.iter().enumerate() {
        let bytes = std::fs::read(format!("{dir}/{name}.dat")).expect("data file");
        over_tcp(&siaga, name, &bytes, expected);
        let mut fresh = TcpPeer::connect(siaga.tcp);
        assert_options_answered(
            &mut fresh,
            &format!("tcp-alive-{n}"),
            &format!("after {name} over TCP"),
        );
    }
    drop(siaga);
    std::thread::sleep(Duration::from_millis(10));
}

/// Sends `bytes` alone on a new TCP connection and checks what `expected` says.
fn over_tcp(siaga: &Siaga, name: &str, bytes: &[u8], expected: OnTcp) {
    let mut peer = TcpPeer::connect(siaga.tcp);
    peer.write(bytes);
    let replies = |peer: &mut TcpPeer, statuses: &[u16]| {
        for status in statuses {
            let reply = peer
                .read_sip()
                .unwrap_or_else(|| panic!("{name} over TCP: no {status}"));
            assert_eq!(reply.status(), Some(*status), "{name} over TCP");
            check_required_headers(name, &reply);
        }
    };
    match expected {
        OnTcp::Replies(statuses) => {
            replies(&mut peer, statuses);
            // Nothing else came, and the connection still serves.
            let what = format!("{name} over TCP, the same connection");
            assert_options_answered(&mut peer, &format!("{name}-same-connection"), &what);
        }
        OnTcp::RepliesThenClose(statuses) => {
            replies(&mut peer, statuses);
            assert_closed_by_siaga(&mut peer.stream, name);
        }
        OnTcp::NothingUntilClosed => {
            peer.stream
                .shutdown(std::net::Shutdown::Write)
                .expect("half-close");
            assert_closed_by_siaga(&mut peer.stream, name);
        }
    }
}

/// Sends an OPTIONS with Call-ID `call_id` on `peer`: the next message must be its 200.
fn assert_options_answered(peer: &mut TcpPeer, call_id: &str, what: &str) {
    let port = peer.port();
    peer.write(common::options(call_id, port, "TCP").as_bytes());
    let m = peer
        .read_sip()
        .unwrap_or_else(|| panic!("{what}: OPTIONS unanswered"));
    assert_eq!(
        (m.status(), first_call_id(&m).as_deref()),
        (Some(200), Some(call_id)),
        "{what}"
    );
}

/// Reads until siaga closes the connection (end of stream within the guard), asserting
/// that nothing more arrives before it.
fn assert_closed_by_siaga(stream: &mut std::net::TcpStream, name: &str) {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "{name} over TCP: unexpected {:?}",
            String::from_utf8_lossy(&rest)
        ),
        // A reset also closes the connection; a timeout does not.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{name} over TCP: not closed ({e})"),
    }
}

/// The headers RFC 3261 requires beside some codes (RFC 4475 README, "Headers that certain
/// replies must carry").
fn check_required_headers(name: &str, reply: &siaga::engine::sip::SipMessage) {
    use siaga::engine::sip::HeaderName as H;
    let need: &[H] = match reply.status() {
        Some(405) | Some(501) => &[H::Allow],
        Some(401) => &[H::WwwAuthenticate],
        Some(415) => &[H::Accept],
        Some(420) => &[H::Unsupported],
        Some(200) => &[H::Allow, H::Accept, H::Supported],
        _ => &[],
    };
    for h in need {
        assert!(reply.header(*h).is_some(), "{name}: {h} missing");
    }
    if name == "bext01" {
        assert_eq!(
            common::header(reply, H::Unsupported),
            "nothingSupportsThis, nothingSupportsThisEither"
        );
    }
}

/// The Call-ID of a raw test message (first `Call-ID:` or `i:` line), if it has one.
fn call_id_of(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_owned())
    })
}

/// The first Call-ID header's value (multi01's 400 echoes both of its Call-IDs).
fn first_call_id(m: &siaga::engine::sip::SipMessage) -> Option<String> {
    m.header(siaga::engine::sip::HeaderName::CallId)
        .map(|h| String::from_utf8_lossy(h.raw_value()).into_owned())
}
