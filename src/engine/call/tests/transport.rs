//! Whole calls and the transport: phones on TCP are reached on their own connection, RFC
//! 5626 flows are not reached once they fail, a send that fails ends its transaction at
//! once (RFC 3261 §17.1.4), and a large INVITE to a phone on UDP goes over TCP, or back
//! over UDP when TCP is refused (§18.1.1).

use super::*;
use crate::engine::{ConnectionId, TransmitError};

/// The `+sip.instance` of the test phone (RFC 5626 §4.1).
const INSTANCE: &str = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";

/// Contact header parameters asking for an RFC 5626 flow.
fn flow(reg_id: u32) -> String {
    format!(";reg-id={reg_id};+sip.instance=\"{INSTANCE}\"")
}

const SUPPORTED_OUTBOUND: &str = "Supported: outbound\r\n";

impl Harness {
    /// The shell reports that it could not send `transmit`.
    pub(super) fn transmit_failed(&mut self, transmit: &Transmit, error: TransmitError) -> Out {
        self.engine.handle_input(
            self.at(),
            Input::TransmitFailed {
                transmit: transmit.clone(),
                error,
            },
        );
        self.drain()
    }
}

/// Every request `method` sent, with its transmit, parsed as sent.
fn sent_requests(out: &Out, method: Method) -> Vec<(Transmit, SipMessage)> {
    out.sent
        .iter()
        .filter_map(|t| {
            let m = SipMessage::parse(t.bytes.clone(), t.transport).ok()?;
            (m.method() == Some(&method)).then(|| (t.clone(), m))
        })
        .collect()
}

fn top_via(m: &SipMessage) -> String {
    hdr(m, HeaderName::Via)
}

/// Item 3: requests to a phone registered over TCP go on the connection of its REGISTER —
/// INVITE and ACK, the BYE that ends the call, and the CANCEL of a later call.
#[test]
fn a_phone_on_tcp_gets_every_request_on_its_connection() {
    let conn = Some(ConnectionId(9));
    let mut h = Harness::new(15);
    h.register_tcp("1001", OP1, 9);
    let (ok, _) = {
        let out = h.input(TRUNK, &trunk_invite("tcp1"));
        let [(t, invite)] = &sent_requests(&out, Method::Invite)[..] else {
            panic!("one INVITE: {:?}", out.sent);
        };
        assert_eq!((t.transport, t.connection), (Transport::Tcp, conn));
        assert!(top_via(invite).starts_with("SIP/2.0/TCP "));
        let out = h.input_tcp(
            OP1,
            9,
            &phone_response(invite, 200, "OK", "op1", Some(SDP_OPERATOR)),
        );
        let acks = sent_requests(&out, Method::Ack);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].0.connection, conn, "ACK on the phone's connection");
        (out.to(TRUNK).pop().expect("2xx to the trunk"), ())
    };
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "tcp1ack"));
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "tcp1bye"));
    let byes = sent_requests(&out, Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0.connection, conn, "BYE on the phone's connection");

    // The next call rings; the caller hangs up; the CANCEL follows the INVITE.
    let invite_text = trunk_invite("tcp2");
    let out = h.input(TRUNK, &invite_text);
    let (_, invite) = sent_requests(&out, Method::Invite).pop().expect("INVITE");
    h.input_tcp(
        OP1,
        9,
        &phone_response(&invite, 180, "Ringing", "op2", None),
    );
    let out = h.input(TRUNK, &cancel_of(&invite_text));
    let cancels = sent_requests(&out, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].0.connection, conn,
        "CANCEL on the phone's connection"
    );
    assert_eq!(
        top_via(&cancels[0].1),
        top_via(&invite),
        "§9.1: the INVITE's Via"
    );
}

/// RFC 3261 §17.1.4, §8.1.3.1: an INVITE the shell could not send fails its leg at once
/// (as a 503), not 32 s later at Timer B; the connection it named counts as closed, so the
/// next offer opens a new one to the Contact.
#[test]
fn an_invite_that_cannot_be_sent_fails_its_leg_at_once() {
    let mut h = Harness::new(15);
    h.register_tcp("1001", OP1, 9);
    let out = h.input(TRUNK, &trunk_invite("tf1"));
    let (t, _) = sent_requests(&out, Method::Invite).pop().expect("INVITE");
    assert_eq!(t.connection, Some(ConnectionId(9)));
    let live = h.engine.client_transactions();
    let out = h.transmit_failed(&t, TransmitError::ConnectionGone);
    assert!(
        out.events.iter().any(|e| matches!(
            e,
            CallEventKind::LegFailed { operator, reason } if operator == "1001" && reason == "503 response"
        )),
        "{:?}",
        out.events
    );
    assert_eq!(h.engine.client_transactions(), live - 1);
    assert!(
        sent_requests(&out, Method::Invite).is_empty(),
        "not at once"
    );
    // After the retry delay (5 s) the operator is rung again, on a new connection.
    let out = h.advance(5_000);
    let (t, _) = sent_requests(&out, Method::Invite)
        .pop()
        .expect("rung again");
    assert_eq!(
        (t.transport, t.destination, t.connection),
        (Transport::Tcp, addr(OP1), None)
    );
}

/// An SDP long enough to make siaga's INVITE to a phone larger than 1300 bytes.
fn long_sdp() -> String {
    let mut sdp = SDP_TRUNK.to_owned();
    for n in 0..20 {
        sdp.push_str(&format!(
            "a=x-trunk-attribute-{n}:0123456789abcdef0123456789abcdef\r\n"
        ));
    }
    sdp
}

/// RFC 3261 §18.1.1: with no relay port free the trunk's offer goes to the phone as it
/// came, and a long one makes the INVITE larger than 1300 bytes: it goes over TCP to the
/// phone's address (top Via TCP). The phone has no TCP (the connect is refused): the same
/// INVITE goes over UDP, and the leg goes on there — its CANCEL too. The refusal is
/// remembered: the next INVITE to that phone goes over UDP at once.
#[test]
fn a_large_invite_goes_over_tcp_and_back_to_udp_when_refused() {
    let mut h = Harness::with_ports(15, 30001, 30001);
    h.register("1001", OP1);
    let sdp = long_sdp();
    let invite_text = trunk_invite("big1").replace(SDP_TRUNK, &sdp).replace(
        &format!("Content-Length: {}", SDP_TRUNK.len()),
        &format!("Content-Length: {}", sdp.len()),
    );
    let out = h.input(TRUNK, &invite_text);
    let (tcp, invite) = sent_requests(&out, Method::Invite).pop().expect("INVITE");
    assert!(tcp.bytes.len() > 1300, "{} bytes", tcp.bytes.len());
    assert_eq!(
        (tcp.transport, tcp.destination, tcp.connection),
        (Transport::Tcp, addr(OP1), None)
    );
    assert!(
        top_via(&invite).starts_with("SIP/2.0/TCP "),
        "{}",
        top_via(&invite)
    );

    let out = h.transmit_failed(&tcp, TransmitError::ConnectFailed);
    assert!(out.events.is_empty(), "the leg lives on: {:?}", out.events);
    let (udp, again) = sent_requests(&out, Method::Invite).pop().expect("over UDP");
    assert_eq!(
        (udp.transport, udp.destination),
        (Transport::Udp, addr(OP1))
    );
    assert!(top_via(&again).starts_with("SIP/2.0/UDP "));
    assert_eq!(
        top_via(&again).replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
        top_via(&invite),
        "same branch"
    );
    assert_eq!(again.body(), invite.body());
    // Over UDP the transaction retransmits (Timer A).
    let out = h.advance(500);
    assert_eq!(sent_requests(&out, Method::Invite).len(), 1, "Timer A");

    h.input(OP1, &phone_response(&again, 180, "Ringing", "op1", None));
    // The ring timeout CANCELs it over UDP, with the UDP Via (§9.1); the call is offered
    // again at once (one operator), now straight over UDP.
    let out = h.advance(15_000);
    let cancels = sent_requests(&out, Method::Cancel);
    assert!(
        !cancels.is_empty(),
        "CANCEL (and its Timer E retransmissions)"
    );
    for (t, cancel) in &cancels {
        assert_eq!(t.transport, Transport::Udp);
        assert_eq!(top_via(cancel), top_via(&again));
    }
    let retry = sent_requests(&out, Method::Invite);
    let (next, _) = retry
        .iter()
        .find(|(_, m)| top_via(m) != top_via(&again))
        .expect("offered again");
    assert_eq!(next.transport, Transport::Udp, "the refusal is remembered");
    assert!(next.bytes.len() > 1300);
}

/// RFC 5626 §5.3, §6: a phone that registered a flow over TCP is rung only on that flow.
/// Once its connection closes the flow has failed: no INVITE goes anywhere (siaga does
/// not connect to the Contact), the call waits; when the phone registers a new flow the
/// waiting call is offered on it at once.
#[test]
fn a_failed_outbound_flow_is_not_rung_until_the_phone_registers_again() {
    let mut h = Harness::new(15);
    h.register_with("1001", OP1, Some(9), &flow(1), SUPPORTED_OUTBOUND);
    h.connection_closed(9);
    let out = h.input(TRUNK, &trunk_invite("ob1"));
    assert_eq!(out.statuses_to(TRUNK), [100, 180]);
    assert!(
        sent_requests(&out, Method::Invite).is_empty(),
        "{:?}",
        out.sent
    );
    let out = h.advance(10_000);
    assert!(sent_requests(&out, Method::Invite).is_empty());

    // The phone reconnects (a new source port) and registers the same flow again.
    h.register_with(
        "1001",
        "127.0.0.1:5081",
        Some(10),
        &flow(1),
        SUPPORTED_OUTBOUND,
    );
    assert_eq!(h.engine.registrar.bindings("1001").count(), 1, "replaced");
    // The 200 and the INVITE went out together: the INVITE is the one live transaction.
    let offers: Vec<_> = h.engine.calls.invites.values().collect();
    let [offer] = &offers[..] else {
        panic!(
            "the waiting call is offered on the new flow: {}",
            offers.len()
        );
    };
    assert_eq!(offer.destination.connection, Some(ConnectionId(10)));
    assert_eq!(
        offer.request.request_uri_raw(),
        Some("sip:1001@127.0.0.1:5081;transport=tcp")
    );
}

/// RFC 3261 §18.2.2: a response that could not go out on the connection its request came
/// on (gone meanwhile) goes to a new connection at the Via's sent-by port. Here the 180 to
/// a TCP trunk whose connection died: sent again, to the trunk's listener.
#[test]
fn a_response_on_a_gone_connection_goes_to_a_new_one() {
    let mut h = Harness::new(15);
    let invite = trunk_invite("gone1").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let out = h.input_tcp("127.0.0.1:40001", 7, &invite);
    let ringing = out
        .sent
        .iter()
        .find(|t| String::from_utf8_lossy(&t.bytes).starts_with("SIP/2.0 180 "))
        .cloned()
        .expect("180");
    assert_eq!(ringing.connection, Some(ConnectionId(7)));
    let out = h.transmit_failed(&ringing, TransmitError::ConnectionGone);
    let again: Vec<_> = out
        .sent
        .iter()
        .filter(|t| t.bytes == ringing.bytes)
        .collect();
    let [again] = &again[..] else {
        panic!("the 180 once more: {:?}", out.sent);
    };
    assert_eq!(
        (again.transport, again.destination, again.connection),
        (Transport::Tcp, addr(TRUNK), None)
    );
}
