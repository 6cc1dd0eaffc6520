//! break2: hostile timing and odd-but-legal peers against reliable provisionals (RFC
//! 3262), siaga's own requests when a send fails (RFC 3261 §17.1.4, §18), and RFC 5626
//! flows during a call. Each test asserts what the RFC requires.

use super::*;
use crate::engine::{ConnectionId, TransmitError};

/// The trunk's PRACK of `provisional` with RAck `rack`, CSeq `seq`, top Via branch `branch`.
fn prack(provisional: &SipMessage, seq: u32, rack: &str, branch: &str) -> String {
    trunk_in_dialog("PRACK", provisional, seq, branch).replace(
        "Content-Length: 0\r\n",
        &format!("RAck: {rack}\r\nContent-Length: 0\r\n"),
    )
}

fn rseq(m: &SipMessage) -> u32 {
    hdr(m, HeaderName::RSeq).trim().parse().expect("RSeq")
}

/// The 180s in `out` to `to`.
fn ringings(out: &Out, to: &str) -> Vec<SipMessage> {
    out.to(to)
        .into_iter()
        .filter(|m| m.status() == Some(180))
        .collect()
}

/// The transmits in `out` whose bytes start with `start`.
fn sent_starting(out: &Out, start: &str) -> Vec<Transmit> {
    out.sent
        .iter()
        .filter(|t| t.bytes.starts_with(start.as_bytes()))
        .cloned()
        .collect()
}

/// RFC 3262 §3 with RFC 3261 §17.2.2: a PRACK retransmitted over UDP (its 200 lost) is
/// the same transaction: it draws the same 200 again, not a 481 for a 180 that is no
/// longer unacknowledged.
#[test]
fn a_retransmitted_prack_draws_its_200_again() {
    let mut h = Harness::new(15);
    let out = h.input(TRUNK, &trunk_invite_with("k1", "Require: 100rel\r\n"));
    let first = ringings(&out, TRUNK).pop().expect("180");
    let rack = format!("{} 1 INVITE", rseq(&first));
    let text = prack(&first, 2, &rack, "k1pr");
    assert_eq!(h.input(TRUNK, &text).statuses_to(TRUNK), [200]);
    h.advance(200);
    assert_eq!(h.input(TRUNK, &text).statuses_to(TRUNK), [200]);
    assert!(ringings(&h.advance(10_000), TRUNK).is_empty(), "PRACKed");
}

/// RFC 3261 §9.2 with RFC 3262 §3: the caller CANCELs while the reliable 180 awaits its
/// PRACK: 200 to the CANCEL, 487 to the INVITE, the 180 is no longer resent, and a PRACK
/// that arrives after the 487 (the early dialog is gone) draws 481.
#[test]
fn a_cancel_during_a_pending_reliable_180_stops_it_and_a_later_prack_draws_481() {
    let mut h = Harness::new(15);
    let invite = trunk_invite_with("k2", "Require: 100rel\r\n");
    let out = h.input(TRUNK, &invite);
    let first = ringings(&out, TRUNK).pop().expect("180");
    let out = h.input(TRUNK, &cancel_of(&invite));
    assert_eq!(out.statuses_to(TRUNK), [200, 487]);
    let out = h.advance(40_000);
    assert!(ringings(&out, TRUNK).is_empty(), "180 resent after 487");
    let rack = format!("{} 1 INVITE", rseq(&first));
    let out = h.input(TRUNK, &prack(&first, 2, &rack, "k2pr"));
    assert_eq!(out.statuses_to(TRUNK), [481]);
    assert_eq!(h.engine.live_calls(), 0);
}

/// A 100rel trunk over TCP: the reliable 180 goes on the INVITE's connection and is
/// resent there (RFC 3262 §3 resends at the transaction layer, whatever the transport);
/// the PRACK on that connection draws its 200 there (§18.2.2) and stops the resends.
#[test]
fn a_100rel_trunk_over_tcp_gets_its_180_and_prack_200_on_its_connection() {
    let mut h = Harness::new(15);
    let invite =
        trunk_invite_with("k3", "Require: 100rel\r\n").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let out = h.input_tcp(TRUNK, 9, &invite);
    let first = sent_starting(&out, "SIP/2.0 180");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].connection, Some(ConnectionId(9)));
    let out = h.advance(500);
    let again = sent_starting(&out, "SIP/2.0 180");
    assert_eq!(again.len(), 1, "resent at T1");
    assert_eq!(again[0].connection, Some(ConnectionId(9)));
    let first = SipMessage::parse(first[0].bytes.clone(), Transport::Tcp).expect("180");
    let rack = format!("{} 1 INVITE", rseq(&first));
    let out = h.input_tcp(
        TRUNK,
        9,
        &prack(&first, 2, &rack, "k3pr").replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
    );
    let ok = sent_starting(&out, "SIP/2.0 200");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].connection, Some(ConnectionId(9)));
    assert!(sent_starting(&h.advance(20_000), "SIP/2.0 180").is_empty());
}

/// RFC 3262 §3: the reliable 180 whose send failed on a connection that is gone is sent
/// again on a new connection (§18.2.2), and its resends follow it there.
#[test]
fn a_reliable_180_on_a_gone_connection_is_resent_on_a_new_one() {
    let mut h = Harness::new(15);
    let invite =
        trunk_invite_with("k4", "Require: 100rel\r\n").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let out = h.input_tcp("127.0.0.1:40001", 7, &invite);
    let first = sent_starting(&out, "SIP/2.0 180").pop().expect("180");
    let out = h.transmit_failed(&first, TransmitError::ConnectionGone);
    let again = sent_starting(&out, "SIP/2.0 180");
    assert_eq!(again.len(), 1, "{:?}", out.sent);
    assert_eq!(
        (again[0].destination, again[0].connection),
        (addr(TRUNK), None)
    );
    let out = h.advance(500);
    let resent = sent_starting(&out, "SIP/2.0 180");
    assert_eq!(resent.len(), 1);
    assert_eq!(
        (resent[0].destination, resent[0].connection),
        (addr(TRUNK), None),
        "the T1 resend goes to the trunk's listener, not the dead connection"
    );
}

/// A trunk over TCP whose connection is already gone when siaga's BYE is handed to it
/// (the shell's ConnectionClosed not yet read): the BYE must still reach the trunk, on a
/// new connection to the address the dialog names (RFC 3261 §18.1.1: the transport opens
/// a connection when none is open; §15: the UAC must end the dialog it leaves). Failing
/// the BYE's transaction at once leaves the 112 caller's leg up at the telco.
#[test]
fn a_bye_handed_to_a_gone_trunk_connection_goes_out_on_a_new_one() {
    let mut h = Harness::new(15);
    let (_, ack) = answered_tcp_trunk_call(&mut h, "k5");
    let out = h.input(OP1, &operator_bye(&ack));
    let bye = sent_starting(&out, "BYE ").pop().expect("BYE to the trunk");
    assert_eq!(bye.connection, Some(ConnectionId(7)));
    let out = h.transmit_failed(&bye, TransmitError::ConnectionGone);
    let again = sent_starting(&out, "BYE ");
    assert_eq!(again.len(), 1, "the BYE is lost: {:?}", out.sent);
    assert_eq!(again[0].connection, None);
    assert_eq!(again[0].destination, addr(TRUNK), "the trunk's listener");
}

/// RFC 5626 §5.3, §4.5: an operator's phone on an outbound flow loses its connection
/// mid-call and registers the flow again on a new connection (as §4.5 has it do at once).
/// The caller hangs up: siaga's BYE to the phone goes over the new flow — never a new
/// connection to the Contact, which the registrar itself says siaga does not open for a
/// flow (behind NAT it reaches nothing).
#[test]
fn a_flow_registered_again_mid_call_carries_the_bye() {
    flow_registered_again_mid_call(true);
    flow_registered_again_mid_call(false);
}

fn flow_registered_again_mid_call(close_first: bool) {
    const INSTANCE: &str = "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";
    let flow = format!(";reg-id=1;+sip.instance=\"{INSTANCE}\"");
    let mut h = Harness::new(15);
    h.register_with("1001", OP1, Some(9), &flow, "Supported: outbound\r\n");
    let out = h.input(TRUNK, &trunk_invite("k6"));
    let offer = out.requests_to(OP1, Method::Invite).pop().expect("INVITE");
    let out = h.input_tcp(
        OP1,
        9,
        &phone_response(&offer, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    let ok = out.to(TRUNK).pop().expect("2xx");
    h.input(TRUNK, &trunk_in_dialog("ACK", &ok, 1, "k6ack"));
    // The phone comes back from a new port on connection 10, same instance and reg-id:
    // after siaga saw connection 9 close, or before (its NAT binding died silently).
    if close_first {
        h.connection_closed(9);
    }
    h.register_with(
        "1001",
        "127.0.0.1:5081",
        Some(10),
        &flow,
        "Supported: outbound\r\n",
    );
    if !close_first {
        h.connection_closed(9);
    }
    let out = h.input(TRUNK, &trunk_in_dialog("BYE", &ok, 2, "k6bye"));
    assert_eq!(out.statuses_to(TRUNK), [200]);
    let bye = sent_starting(&out, "BYE ").pop().expect("BYE to the phone");
    assert_eq!(
        (bye.connection, bye.destination),
        (Some(ConnectionId(10)), addr("127.0.0.1:5081")),
        "BYE not on the phone's new flow (closed first: {close_first})"
    );
}
