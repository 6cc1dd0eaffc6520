//! How siaga's own requests travel and what the engine does when the shell cannot send a
//! message (RFC 3261 §18). This module owns:
//!
//! - the size rule of RFC 3261 §18.1.1: a request larger than [`MAX_UDP_REQUEST`] bytes
//!   that would go over UDP goes over TCP to the same address instead, its top Via saying
//!   so; when that connection cannot be opened (refused, reset, unreachable, timed out) the
//!   request goes over UDP after all, as §18.1.1 asks for peers without TCP;
//! - [`TcpRefusals`]: the addresses where that TCP attempt failed, so the next large
//!   request to them goes over UDP at once instead of waiting for a connect again;
//! - the engine's answer to [`Input::TransmitFailed`](super::Input::TransmitFailed): a
//!   request's client transaction fails at once as a transport error (§17.1.4; §8.1.3.1
//!   treats it as a 503) or falls back to UDP; a response is sent again on a new
//!   connection (§18.2.2) or its server transaction takes the error (§17.2.4).
//!
//! Policy ("the target supports TCP"): every RFC 3261 element must implement TCP (§18),
//! so siaga tries it for every large request and learns from a failed connect; a TCP
//! connection that opens is proof enough. The path MTU is never known to siaga, so the
//! 1300-byte threshold applies, not "within 200 bytes of the path MTU".

use super::driver::Engine;
use super::sip::framing::find_header_end;
use super::sip::{Method, SipMessage};
use super::time::{MonoTime, Now};
use super::transaction::{ClientKey, Destination, ServerKey, TransportErrorOutcome};
use super::{Transmit, TransmitError, Transport};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest request siaga sends over UDP when TCP may be tried, in bytes (RFC 3261 §18.1.1:
/// "larger than 1300 bytes and the path MTU is unknown").
pub const MAX_UDP_REQUEST: usize = 1300;

/// How long an address whose TCP connect failed gets large requests over UDP directly.
pub const TCP_REFUSAL_MEMORY: Duration = Duration::from_secs(600);

/// Most addresses [`TcpRefusals`] remembers; past it the entry closest to expiry is
/// forgotten first (its address is tried over TCP again: harmless).
pub const MAX_TCP_REFUSALS: usize = 1024;

/// Addresses where a TCP connection for a request moved off UDP by its size could not be
/// opened, each until [`TCP_REFUSAL_MEMORY`] after the failure. Bounded by
/// [`MAX_TCP_REFUSALS`].
#[derive(Debug, Default)]
pub struct TcpRefusals {
    until: HashMap<SocketAddr, MonoTime>,
}

impl TcpRefusals {
    /// Whether large requests to `address` go over UDP at `now`.
    pub fn is_refused(&self, address: SocketAddr, now: MonoTime) -> bool {
        self.until.get(&address).is_some_and(|&until| until > now)
    }

    /// A TCP connect to `address` failed at `now`.
    pub fn refused(&mut self, address: SocketAddr, now: MonoTime) {
        if self.until.len() >= MAX_TCP_REFUSALS && !self.until.contains_key(&address) {
            self.until.retain(|_, until| *until > now);
            if self.until.len() >= MAX_TCP_REFUSALS
                && let Some(first) = self
                    .until
                    .iter()
                    .min_by_key(|&(addr, until)| (*until, *addr))
                    .map(|(addr, _)| *addr)
            {
                self.until.remove(&first);
            }
        }
        self.until.insert(address, now + TCP_REFUSAL_MEMORY);
    }

    /// Addresses remembered (expired ones included until the map is full).
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

/// A request and where it goes, after the size rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    /// The request to send (its top Via names the transport of `destination`).
    pub bytes: Bytes,
    /// Where it goes.
    pub destination: Destination,
    /// The UDP request and destination to fall back to when TCP cannot be opened: hand it
    /// to [`ClientTransactions::set_fallback`](super::transaction::ClientTransactions::set_fallback).
    pub fallback: Option<(Bytes, Destination)>,
}

/// RFC 3261 §18.1.1 for one of siaga's requests about to go to `destination`: over UDP and
/// larger than [`MAX_UDP_REQUEST`] (and `tcp_refused` not set for its address), it goes
/// over TCP to the same address with its top Via changed, keeping the UDP form as the
/// fallback. Anything else (or a request whose top Via is not `SIP/2.0/UDP`) is unchanged.
pub fn route_by_size(bytes: Bytes, destination: Destination, tcp_refused: bool) -> Routed {
    let unchanged = |bytes| Routed {
        bytes,
        destination,
        fallback: None,
    };
    if destination.transport != Transport::Udp || bytes.len() <= MAX_UDP_REQUEST || tcp_refused {
        return unchanged(bytes);
    }
    match with_top_via_transport(&bytes, Transport::Udp, Transport::Tcp) {
        Some(tcp) => Routed {
            bytes: tcp,
            destination: Destination {
                transport: Transport::Tcp,
                address: destination.address,
                connection: None,
            },
            fallback: Some((bytes, destination)),
        },
        None => unchanged(bytes),
    }
}

/// `message` with the transport of its top Via changed from `from` to `to` (§18.1.1: "the
/// value in the top Via MUST be changed"), if its first Via line names `SIP/2.0/<from>`.
/// The tokens have the same length, so Content-Length still holds.
fn with_top_via_transport(message: &Bytes, from: Transport, to: Transport) -> Option<Bytes> {
    let (old, new) = (
        format!("SIP/2.0/{}", from.via_token()),
        format!("SIP/2.0/{}", to.via_token()),
    );
    if old.len() != new.len() {
        return None;
    }
    let head = &message[..find_header_end(message)?];
    let mut start = head.iter().position(|&b| b == b'\n')? + 1;
    while start < head.len() {
        let end = head[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |p| start + p);
        let line = &head[start..end];
        start = end + 1;
        // Folded continuation lines have no name; siaga writes none in its own requests.
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v")) {
            continue;
        }
        let value = &line[colon + 1..];
        let token = value.trim_ascii_start();
        if !token
            .get(..old.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(old.as_bytes()))
        {
            return None;
        }
        let at = (end - line.len()) + colon + 1 + (value.len() - token.len());
        let mut out = message.to_vec();
        out[at..at + new.len()].copy_from_slice(new.as_bytes());
        return Some(Bytes::from(out));
    }
    None
}

/// Where an in-dialog request (its To has a tag) handed to a TCP connection that was gone
/// goes instead: a new connection to its next hop — the Request-URI (the dialog's remote
/// target) when it has no Route and names an IP literal, else the address it was handed
/// to. RFC 3261 §18.1.1 opens a connection when none is open; §15.1.1 and RFC 5407 need
/// the BYE to reach the peer, or the caller's leg stays up at the telco. `None` for
/// anything else (an INVITE to a phone fails its leg at once and is offered again).
fn in_dialog_reconnect(msg: &SipMessage, transmit: &Transmit) -> Option<Destination> {
    transmit.connection?;
    msg.to().ok()?.tag()?;
    let next_hop = msg
        .header(super::sip::HeaderName::Route)
        .is_none()
        .then(|| msg.request_uri_raw())
        .flatten()
        .and_then(super::sip::uri::Uri::ip_literal_address);
    Some(Destination {
        transport: transmit.transport,
        address: next_hop.unwrap_or(transmit.destination),
        connection: None,
    })
}

impl Engine {
    /// [`route_by_size`] for a request siaga is about to send at `now`, given the
    /// addresses that refused TCP ([`TcpRefusals`]).
    pub(crate) fn route_request(&self, now: Now, bytes: Bytes, destination: Destination) -> Routed {
        let refused = self.tcp_refusals.is_refused(destination.address, now.mono);
        route_by_size(bytes, destination, refused)
    }

    /// Sends `routed` (from [`Engine::route_request`]) on a new client transaction `key`,
    /// with its UDP fallback armed when it goes over TCP for its size.
    pub(crate) fn send_routed(
        &mut self,
        now: Now,
        key: super::transaction::ClientKey,
        routed: Routed,
    ) -> super::transaction::ClientTxId {
        let tx = self.client.send(
            now.mono,
            key,
            routed.bytes,
            routed.destination,
            &self.config.timers,
        );
        if let Some((udp, to)) = routed.fallback {
            self.client.set_fallback(tx, udp, to);
        }
        tx
    }

    /// The shell could not send `transmit` ([`Input::TransmitFailed`](super::Input)). A
    /// connection it named is treated as closed. A request's client transaction falls back
    /// to UDP (a request moved to TCP for its size) or fails as a transport error; a
    /// response goes out again on a new connection when it named one (§18.2.2), else its
    /// transaction takes the error (§17.2.4). An ACK, or a message no transaction owns
    /// (a 2xx retransmitted by the call model), is only logged: the call model resends those.
    pub(crate) fn handle_transmit_failed(
        &mut self,
        now: Now,
        transmit: Transmit,
        error: TransmitError,
    ) {
        tracing::info!(
            destination = %transmit.destination,
            transport = transmit.transport.via_token(),
            connection = transmit.connection.map(|c| c.0),
            ?error,
            "message could not be sent"
        );
        if let Some(connection) = transmit.connection {
            self.handle_connection_closed(connection);
        }
        let Ok(msg) = SipMessage::parse(transmit.bytes.clone(), transmit.transport) else {
            return;
        };
        if !msg.is_request() {
            let Some(id) = ServerKey::of_response(&msg).and_then(|k| self.server.find(&k)) else {
                return;
            };
            if transmit.connection.is_some() {
                self.server.resend(now.mono, id);
            } else {
                self.server.handle_transport_error(now.mono, id);
            }
            return;
        }
        if msg.method() == Some(&Method::Ack) {
            return;
        }
        let Some(id) = ClientKey::of_request(&msg)
            .ok()
            .and_then(|k| self.client.find(&k))
        else {
            return;
        };
        if error == TransmitError::ConnectionGone
            && let Some(again) = in_dialog_reconnect(&msg, &transmit)
        {
            // Not a byte went out: the request tries a new connection once (the
            // fallback is taken once) before its transaction fails.
            self.client.set_fallback(id, transmit.bytes.clone(), again);
        }
        match self
            .client
            .handle_transport_error(now.mono, id, &self.config.timers)
        {
            TransportErrorOutcome::FellBack {
                request,
                destination,
            } => {
                tracing::info!(
                    destination = %destination.address,
                    transport = destination.transport.via_token(),
                    "request sent again after its transport failed (RFC 3261 §18.1.1)"
                );
                if error == TransmitError::ConnectFailed {
                    self.tcp_refusals.refused(transmit.destination, now.mono);
                }
                self.request_fell_back(id, request, destination);
            }
            TransportErrorOutcome::Failed => {
                tracing::info!(destination = %transmit.destination, "request failed: transport error");
            }
            TransportErrorOutcome::Ignored => {}
        }
    }

    /// The request of client transaction `tx` now travels as `request` to `destination`:
    /// what the call model built from it (an INVITE's CANCEL, ACK and dialog; the ACK of a
    /// failed re-INVITE) follows it there.
    fn request_fell_back(
        &mut self,
        tx: super::transaction::ClientTxId,
        request: Bytes,
        destination: Destination,
    ) {
        let parsed = match SipMessage::parse(request, destination.transport) {
            Ok(parsed) => parsed,
            Err(e) => {
                return tracing::error!(error = %e.error, "siaga's fallback request does not parse");
            }
        };
        if let Some(in_dialog) = self.calls.in_dialog.get_mut(&tx) {
            in_dialog.request = parsed.clone();
        }
        let Some(out) = self.calls.invites.get_mut(&tx) else {
            return;
        };
        out.request = parsed;
        out.destination = destination;
        if let Some(leg) = self
            .calls
            .calls
            .get_mut(&out.call)
            .and_then(|c| c.legs.get_mut(&out.leg))
        {
            leg.destination = destination;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: usize) -> Bytes {
        let body = "x".repeat(extra);
        Bytes::from(format!(
            "INVITE sip:1001@127.0.0.1:5071 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport\r\nCSeq: 1 INVITE\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    fn udp() -> Destination {
        Destination {
            transport: Transport::Udp,
            address: "127.0.0.1:5071".parse().expect("literal"),
            connection: None,
        }
    }

    #[test]
    fn large_udp_request_goes_over_tcp_with_its_via_changed() {
        let small = request(100);
        assert_eq!(route_by_size(small.clone(), udp(), false).bytes, small);
        let big = request(MAX_UDP_REQUEST);
        let routed = route_by_size(big.clone(), udp(), false);
        assert_eq!(routed.destination.transport, Transport::Tcp);
        assert_eq!(routed.destination.address, udp().address);
        assert_eq!(routed.fallback, Some((big.clone(), udp())));
        assert_eq!(routed.bytes.len(), big.len());
        let text = String::from_utf8_lossy(&routed.bytes);
        assert!(
            text.contains("\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1;rport\r\n"),
            "{text}"
        );
        let msg = SipMessage::parse(routed.bytes, Transport::Tcp).expect("still parses");
        assert_eq!(msg.body().len(), MAX_UDP_REQUEST);
        // An address that refused TCP, or a request already on TCP: unchanged.
        assert_eq!(route_by_size(big.clone(), udp(), true).bytes, big);
        let tcp = Destination {
            transport: Transport::Tcp,
            ..udp()
        };
        assert_eq!(route_by_size(big.clone(), tcp, false).fallback, None);
    }

    #[test]
    fn only_the_top_via_is_changed() {
        let text = "BYE sip:a@b SIP/2.0\r\nv:  SIP/2.0/udp h;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP other\r\nContent-Length: 0\r\n\r\n";
        let out = with_top_via_transport(&Bytes::from(text), Transport::Udp, Transport::Tcp)
            .expect("a Via");
        assert_eq!(
            String::from_utf8_lossy(&out),
            text.replace("SIP/2.0/udp", "SIP/2.0/TCP")
        );
        let none = "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TLS h\r\n\r\n";
        assert_eq!(
            with_top_via_transport(&Bytes::from(none), Transport::Udp, Transport::Tcp),
            None
        );
    }

    #[test]
    fn refusals_expire_and_stay_bounded() {
        let mut refusals = TcpRefusals::default();
        let a: SocketAddr = "127.0.0.1:5071".parse().expect("literal");
        let t0 = MonoTime::from_millis(1_000);
        refusals.refused(a, t0);
        assert!(refusals.is_refused(a, t0));
        assert!(!refusals.is_refused(a, t0 + TCP_REFUSAL_MEMORY));
        for port in 0..(MAX_TCP_REFUSALS as u16 + 10) {
            refusals.refused(SocketAddr::new(a.ip(), port), t0);
        }
        assert_eq!(refusals.len(), MAX_TCP_REFUSALS);
    }
}
