//! An operator's softphone on TCP against a real siaga on loopback sockets (issue 4, item
//! 5): it registers an RFC 5626 flow (digest authentication, `Supported: outbound`,
//! `+sip.instance`, `reg-id`), gets `Require: outbound`, and every request of a trunk's
//! call reaches it on the connection it registered on. When that connection closes the
//! flow has failed: the next call waits (siaga does not connect to the Contact) until the
//! phone registers a new flow, and is then offered on it.

mod common;

use common::{Siaga, TcpPeer, UdpPeer, config, header};
use siaga::engine::digest::Ha1;
use siaga::engine::sip::{HeaderName, Method, SipMessage};

const INSTANCE: &str = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";
const SDP: &str = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

fn siaga() -> Siaga {
    let mut c = config(&["siaga.test"]);
    c.calls.operators = vec![(
        "1001".to_owned(),
        Ha1::from_password("1001", "siaga.test", "secret"),
    )];
    c.calls.rtp_ports = (41_000, 41_099);
    Siaga::start("127.0.0.1:0".parse().expect("literal"), c)
}

/// Registers 1001 on `phone`'s connection as flow 1 (REGISTER, 401, REGISTER with
/// credentials, 200) and returns the 200. Each connection has its own Call-ID.
fn register_flow(phone: &mut TcpPeer, cseq: u32) -> SipMessage {
    let port = phone.port();
    let call_id = format!("reg-{port}");
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:siaga.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKr{port}x{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@siaga.test>;tag=r{port}\r\nTo: <sip:1001@siaga.test>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nSupported: outbound, path\r\n\
             Contact: <sip:1001@127.0.0.1:{port};transport=tcp;ob>;reg-id=1;+sip.instance=\"{INSTANCE}\"\r\n\
             Expires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    phone.write(register(cseq, "").as_bytes());
    let challenge = phone.read_sip().expect("401");
    assert_eq!(challenge.status(), Some(401));
    let auth = common::register_authorization(&challenge, "1001", "secret");
    phone.write(register(cseq + 1, &auth).as_bytes());
    let ok = phone.read_sip().expect("200");
    assert_eq!(ok.status(), Some(200), "{:?}", ok.reason());
    ok
}

fn trunk_invite(call_id: &str, port: u16) -> String {
    let sdp = SDP.replace("7000", "6000");
    format!(
        "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+6281100001@trunk.test>;tag=t{call_id}\r\nTo: <sip:112@siaga.test>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The phone's response to `request` (To tag `tag`), with SDP for a 200 to INVITE.
fn response(request: &SipMessage, status: u16, tag: &str) -> String {
    let mut text = format!("SIP/2.0 {status} Whatever\r\n");
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        text.push_str(&format!(
            "{}: {}\r\n",
            name.canonical(),
            header(request, name)
        ));
    }
    let to = header(request, HeaderName::To);
    if to.contains("tag=") {
        text.push_str(&format!("To: {to}\r\n"));
    } else {
        text.push_str(&format!("To: {to};tag={tag}\r\n"));
    }
    text.push_str("Contact: <sip:1001@127.0.0.1:1;transport=tcp>\r\n");
    if request.method() == Some(&Method::Invite) && status == 200 {
        text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        ));
    } else {
        text.push_str("Content-Length: 0\r\n\r\n");
    }
    text
}

/// The next request on `phone`'s connection (responses to it are skipped).
fn next_request(phone: &mut TcpPeer, what: &str) -> SipMessage {
    loop {
        let m = phone
            .read_sip()
            .unwrap_or_else(|| panic!("{what} on the phone's connection"));
        if m.is_request() {
            return m;
        }
    }
}

/// The trunk's request in siaga's dialog (`ok` is siaga's 2xx).
fn trunk_in_dialog(method: &str, ok: &SipMessage, seq: u32, port: u16) -> String {
    format!(
        "{method} sip:siaga@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}{seq}\r\n\
         Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n",
        header(ok, HeaderName::From),
        header(ok, HeaderName::To),
        header(ok, HeaderName::CallId),
    )
}

#[test]
fn a_tcp_phone_is_reached_on_its_flow_and_not_after_it_failed() {
    let s = siaga();
    let mut phone = TcpPeer::connect(s.tcp);
    let ok = register_flow(&mut phone, 1);
    assert_eq!(header(&ok, HeaderName::Require), "outbound");
    assert!(header(&ok, HeaderName::Contact).contains("reg-id=1"));

    // A call: INVITE, ACK and BYE all reach the phone on its connection.
    let trunk = UdpPeer::bind("127.0.0.1:0");
    trunk.send(trunk_invite("tcp-call-1", trunk.port()).as_bytes(), s.udp);
    let invite = next_request(&mut phone, "INVITE");
    assert_eq!(invite.method(), Some(&Method::Invite));
    assert!(header(&invite, HeaderName::Via).starts_with("SIP/2.0/TCP "));
    phone.write(response(&invite, 200, "op").as_bytes());
    let answered = loop {
        let m = trunk.response_for("tcp-call-1");
        if m.status() == Some(200) {
            break m;
        }
    };
    let ack = next_request(&mut phone, "ACK");
    assert_eq!(ack.method(), Some(&Method::Ack));
    trunk.send(
        trunk_in_dialog("ACK", &answered, 1, trunk.port()).as_bytes(),
        s.udp,
    );
    trunk.send(
        trunk_in_dialog("BYE", &answered, 2, trunk.port()).as_bytes(),
        s.udp,
    );
    let bye = next_request(&mut phone, "BYE");
    assert_eq!(bye.method(), Some(&Method::Bye));
    phone.write(response(&bye, 200, "op").as_bytes());
    assert_eq!(
        trunk.response_for("tcp-call-1").status(),
        Some(200),
        "the BYE's 200"
    );

    // The phone's connection dies: the flow has failed. A new call waits: it is not
    // offered anywhere (siaga does not connect to the phone's Contact) …
    drop(phone);
    // Let siaga read the end of the stream first: a call arriving in the same instant
    // would be offered on the dying connection and wait for the ring timeout.
    std::thread::sleep(std::time::Duration::from_millis(300));
    trunk.send(trunk_invite("tcp-call-2", trunk.port()).as_bytes(), s.udp);
    assert_eq!(trunk.response_for("tcp-call-2").status(), Some(100));
    assert_eq!(trunk.response_for("tcp-call-2").status(), Some(180));

    // … until the phone registers a new flow: then it is offered on it.
    let mut phone = TcpPeer::connect(s.tcp);
    register_flow(&mut phone, 1);
    let invite = next_request(&mut phone, "the waiting call's INVITE");
    assert_eq!(invite.method(), Some(&Method::Invite));
    assert!(header(&invite, HeaderName::Via).starts_with("SIP/2.0/TCP "));
}
