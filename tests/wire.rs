//! End-to-end over real loopback sockets: siaga's runtime, transports and engine answer
//! OPTIONS, reject bad input with 400 where a response can be formed, drop what cannot be
//! answered, and keep serving the next good message (issue 2, items 4, 6 and 7).

mod common;

use common::{GUARD, Siaga, TcpPeer, UdpPeer, config, header, options};
use siaga::engine::sip::HeaderName;
use std::time::Duration;

fn siaga() -> Siaga {
    Siaga::start(
        "127.0.0.1:0".parse().expect("literal"),
        config(&["siaga.test"]),
    )
}

#[test]
fn options_over_udp_and_tcp_draw_200_with_capabilities() {
    let s = siaga();
    let peer = UdpPeer::bind("127.0.0.1:0");
    peer.send(options("udp-1", peer.port(), "UDP").as_bytes(), s.udp);
    let r = peer.response_for("udp-1");
    assert_eq!(r.status(), Some(200));
    for name in [HeaderName::Allow, HeaderName::Accept, HeaderName::Supported] {
        assert!(r.header(name).is_some(), "{name}");
    }
    let mut tcp = TcpPeer::connect(s.tcp);
    let port = tcp.port();
    tcp.write(options("tcp-1", port, "TCP").as_bytes());
    let r = tcp.read_sip().expect("response on the same connection");
    assert_eq!((r.status(), r.call_id()), (Some(200), Ok("tcp-1")));
}

#[test]
fn bad_udp_input_draws_400_or_is_dropped_and_service_goes_on() {
    let s = siaga();
    let peer = UdpPeer::bind("127.0.0.1:0");
    let good = options("base", peer.port(), "UDP");
    let answerable: Vec<(&str, String)> = vec![
        (
            "truncated body",
            good.replace("Content-Length: 0", "Content-Length: 50")
                .replace("Call-ID: base", "Call-ID: bad-1"),
        ),
        (
            "negative length",
            good.replace("Content-Length: 0", "Content-Length: -1")
                .replace("Call-ID: base", "Call-ID: bad-2"),
        ),
        (
            "header without colon",
            good.replace("Max-Forwards: 70", "Max-Forwards 70")
                .replace("Call-ID: base", "Call-ID: bad-3"),
        ),
        (
            "no CSeq",
            good.replace("CSeq: 1 OPTIONS\r\n", "")
                .replace("Call-ID: base", "Call-ID: bad-4"),
        ),
        (
            "bad Via",
            good.replace("SIP/2.0/UDP 127.0.0.1", "SIP/2.0/UDP 127.0.0.1;;,")
                .replace("Call-ID: base", "Call-ID: bad-5"),
        ),
        (
            "two Call-IDs",
            good.replace("Call-ID: base", "Call-ID: bad-6\r\nCall-ID: other"),
        ),
        (
            "bad version token",
            good.replace("SIP/2.0\r\nVia", "SIP/2.0.1\r\nVia")
                .replace("Call-ID: base", "Call-ID: bad-7"),
        ),
        (
            "NUL in the request line",
            good.replace("SIP/2.0\r\nVia", "SIP/2.0\0\r\nVia")
                .replace("Call-ID: base", "Call-ID: bad-8"),
        ),
        (
            "two-element request line",
            good.replace("OPTIONS sip:siaga.test SIP/2.0", "OPTIONS sip:siaga.test")
                .replace("Call-ID: base", "Call-ID: bad-9"),
        ),
        (
            "method not a token",
            good.replacen("OPTIONS", "OPT<IONS", 1)
                .replace("Call-ID: base", "Call-ID: bad-10"),
        ),
    ];
    for (n, (what, text)) in answerable.iter().enumerate() {
        peer.send(text.as_bytes(), s.udp);
        let call_id = format!("bad-{}", n + 1);
        let r = if *what == "two Call-IDs" {
            peer.recv_within(GUARD).expect("a 400")
        } else {
            peer.response_for(&call_id)
        };
        assert_eq!(r.status(), Some(400), "{what}");
        let reason = String::from_utf8_lossy(r.reason().unwrap_or_default()).into_owned();
        assert!(reason.starts_with("Bad Request - "), "{what}: {reason}");
        peer.assert_alive(s.udp, n);
    }
    let unanswerable: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"garbage \x00\xff\xfe".to_vec(),
        vec![0xAB; 65_000],
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        b"INVITE sip:x SIP/2.0".to_vec(),
        good.replace("Via: SIP/2.0/UDP", "Vai: SIP/2.0/UDP")
            .replace("OPTIONS sip", "ACK sip")
            .into_bytes(),
    ];
    for (n, bytes) in unanswerable.iter().enumerate() {
        peer.send(bytes, s.udp);
        peer.assert_alive(s.udp, 100 + n);
    }
}

#[test]
fn tcp_framing_errors_draw_400_or_513_and_close_only_that_connection() {
    let s = siaga();
    let mut good = TcpPeer::connect(s.tcp);
    let good_port = good.port();
    let base = options("x", 1, "TCP");
    let attacks: Vec<(String, Option<u16>)> = vec![
        (
            base.replace("Content-Length: 0", "Content-Length: -3"),
            Some(400),
        ),
        (
            base.replace("Content-Length: 0", "Content-Length: 0\r\nl: 0"),
            Some(400),
        ),
        (base.replace("Content-Length: 0\r\n", ""), Some(400)),
        (
            base.replace("Content-Length: 0", "Content-Length: 99999999999"),
            Some(400),
        ),
        (
            base.replace("Content-Length: 0", "Content-Length: 70000"),
            Some(513),
        ),
        (
            format!(
                "OPTIONS sip:siaga.test SIP/2.0\r\n{}",
                "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(2000)
            ),
            // No Via in the first 64 KiB: nothing to address an answer to.
            None,
        ),
        (
            format!(
                "{}{}",
                base.replace("Content-Length: 0\r\n\r\n", ""),
                "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(2000)
            ),
            // A header section over 64 KiB whose Via came first: 513.
            Some(513),
        ),
    ];
    for (n, (attack, status)) in attacks.into_iter().enumerate() {
        let mut bad = TcpPeer::connect(s.tcp);
        let _ = bad.stream.write_all_ignoring_reset(attack.as_bytes());
        let answer = bad.read_sip();
        assert_eq!(
            answer.as_ref().and_then(|r| r.status()),
            status,
            "attack {n}"
        );
        if let Some(r) = &answer {
            assert_eq!(r.call_id(), Ok("x"), "attack {n}");
        }
        assert!(
            bad.read_sip().is_none(),
            "attack {n}: then the connection closes"
        );
        let call_id = format!("tcp-good-{n}");
        good.write(options(&call_id, good_port, "TCP").as_bytes());
        let r = good.read_sip().expect("the other connection still works");
        assert_eq!((r.status(), r.call_id()), (Some(200), Ok(call_id.as_str())));
    }
}

#[test]
fn tcp_message_split_byte_by_byte_and_batched_is_answered() {
    let s = siaga();
    let mut tcp = TcpPeer::connect(s.tcp);
    tcp.stream.set_nodelay(true).expect("nodelay");
    let port = tcp.port();
    for b in options("split", port, "TCP").as_bytes() {
        tcp.write(&[*b]);
    }
    assert_eq!(tcp.read_sip().and_then(|r| r.status()), Some(200));
    let batch = [
        options("b1", port, "TCP"),
        options("b2", port, "TCP"),
        options("b3", port, "TCP"),
    ]
    .concat();
    tcp.write(batch.as_bytes());
    for id in ["b1", "b2", "b3"] {
        let r = tcp.read_sip().expect("response");
        assert_eq!(r.call_id(), Ok(id));
    }
}

#[test]
fn invite_retransmission_is_absorbed_and_404_resent_until_ack() {
    let s = siaga();
    let peer = UdpPeer::bind("127.0.0.1:0");
    let invite = format!(
        "INVITE sip:999@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-inv1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:trunk@127.0.0.1>;tag=t1\r\nTo: <sip:999@siaga.test>\r\n\
         Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        peer.port()
    );
    peer.send(invite.as_bytes(), s.udp);
    let first = peer.response_for("inv-1");
    assert_eq!(first.status(), Some(404));
    let tag = first.to().expect("To").tag().map(str::to_owned);
    // The INVITE resent: the same 404 (same To tag), not a second transaction.
    peer.send(invite.as_bytes(), s.udp);
    let again = peer.response_for("inv-1");
    assert_eq!(again.to().expect("To").tag().map(str::to_owned), tag);
    // Without an ACK the 404 keeps coming (Timer G, T1 = 500 ms).
    let resent = peer.response_for("inv-1");
    assert_eq!(
        (
            resent.status(),
            resent.to().expect("To").tag().map(str::to_owned)
        ),
        (Some(404), tag.clone())
    );
    let ack = invite
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("1 INVITE", "1 ACK")
        .replace(
            "To: <sip:999@siaga.test>",
            &format!(
                "To: <sip:999@siaga.test>;tag={}",
                tag.clone().unwrap_or_default()
            ),
        );
    peer.send(ack.as_bytes(), s.udp);
    // After the ACK the next message is the OPTIONS reply, not a 404 (8 s covers Timer G).
    std::thread::sleep(Duration::from_millis(50));
    while let Some(m) = peer.recv_within(Duration::from_millis(10)) {
        assert_eq!(
            m.status(),
            Some(404),
            "only in-flight 404s before the ACK took effect"
        );
    }
    peer.assert_alive(s.udp, 0);
    let late = peer.recv_within(Duration::from_millis(2100));
    assert!(late.is_none(), "a 404 was resent after its ACK: {late:?}");
    assert!(header(&first, HeaderName::Server).starts_with("siaga/"));
}

/// `write_all` that tolerates the peer closing mid-write (siaga may cut an oversized
/// message off before it is all sent).
trait WriteIgnoringReset {
    fn write_all_ignoring_reset(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

impl WriteIgnoringReset for std::net::TcpStream {
    fn write_all_ignoring_reset(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self.write_all(bytes) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

/// RFC 3261 §18.1.1: "implementations MUST be able to handle messages up to the maximum
/// datagram packet size". An OPTIONS filling a whole IPv4 UDP datagram (65,507 bytes of
/// payload), its Call-ID in the last bytes, is received whole and answered.
#[test]
fn a_datagram_of_the_maximum_udp_size_is_received_whole() {
    const MAX_UDP_PAYLOAD: usize = 65_507;
    let s = siaga();
    let peer = UdpPeer::bind("127.0.0.1:0");
    let head = options("udp-max", peer.port(), "UDP")
        .replace("Call-ID: udp-max\r\n", "")
        .replace("Content-Length: 0\r\n\r\n", "Content-Length: 0\r\n");
    let tail = "Call-ID: udp-max\r\n\r\n";
    let mut message = head;
    let filler = "X-Filler: 0123456789abcdef0123456789abcdef0123456789abcdef\r\n";
    while message.len() + filler.len() + 64 + tail.len() < MAX_UDP_PAYLOAD {
        message.push_str(filler);
    }
    let pad = MAX_UDP_PAYLOAD - message.len() - tail.len() - "X-Pad: \r\n".len();
    message.push_str(&format!("X-Pad: {}\r\n{tail}", "z".repeat(pad)));
    assert_eq!(message.len(), MAX_UDP_PAYLOAD);
    peer.send(message.as_bytes(), s.udp);
    let r = peer.response_for("udp-max");
    assert_eq!(r.status(), Some(200), "{:?}", r.reason());
}

/// An emergency INVITE from the trunk whose From has an unquoted UTF-8 display name
/// (strictly a 400, RFC 4475 §3.1.2.15) is taken as a call (RFC 3261 §8.2: a UAS may be
/// lenient): 100, then the caller hears it ring in the queue, never a 400.
#[test]
fn an_emergency_invite_with_an_unquoted_utf8_display_name_is_taken() {
    let s = siaga();
    let peer = UdpPeer::bind("127.0.0.1:0");
    let port = peer.port();
    let sdp = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    let invite = format!(
        "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-utf8\r\nMax-Forwards: 70\r\nFrom: Budi Santoso° <sip:0812@127.0.0.1>;tag=1\r\nTo: <sip:112@siaga.test>\r\nCall-ID: utf8-from\r\nCSeq: 1 INVITE\r\nContact: <sip:trunk@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    peer.send(invite.as_bytes(), s.udp);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let Some(r) = peer.recv_within(Duration::from_secs(3)) else {
            break;
        };
        if r.call_id() != Ok("utf8-from") {
            continue;
        }
        let status = r.status().expect("a response");
        assert!(
            status < 300,
            "no refusal: {status} {:?}",
            r.reason().map(String::from_utf8_lossy)
        );
        assert!(header(&r, HeaderName::From).starts_with("Budi Santoso° <sip:0812@"));
        statuses.push(status);
        if (180..200).contains(&status) {
            break;
        }
    }
    assert_eq!(statuses.first(), Some(&100), "{statuses:?}");
    assert!(
        statuses.iter().any(|s| (180..200).contains(s)),
        "queued and ringing: {statuses:?}"
    );
    peer.assert_alive(s.udp, 1);
}

/// A Via naming port 0 is answered at the packet's source port (as with rport, RFC 3581
/// §4), never sent to port 0.
#[test]
fn a_via_with_port_zero_is_answered_at_the_source_port() {
    let s = siaga();
    let peer = UdpPeer::bind("127.0.0.1:0");
    let zero = options("port-zero", peer.port(), "UDP")
        .replace(&format!("127.0.0.1:{};", peer.port()), "127.0.0.1:0;");
    assert!(zero.contains("127.0.0.1:0;"), "{zero}");
    peer.send(zero.as_bytes(), s.udp);
    assert_eq!(peer.response_for("port-zero").status(), Some(200));
}
