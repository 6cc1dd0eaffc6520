//! Dialogs (RFC 3261 §12): the state two user agents share after an INVITE succeeds —
//! Call-ID, tags, CSeq numbers, the remote target and the route set — and the requests
//! built within one (§12.2.1.1), including the ACK of a 2xx (§13.2.2.4).
//!
//! siaga is a B2BUA, so each call has two dialogs of its own: one as UAS with the trunk
//! ([`Dialog::as_uas`], §12.1.1) and one as UAC with the operator ([`Dialog::as_uac`],
//! §12.1.2). Header values siaga does not change (the peer's From/To with its tag, the
//! Record-Route entries) are kept as received and copied byte for byte.
//!
//! Route sets (§12.2.1.1): with a loose router first (`lr`, RFC 3261 §16.12), a Route
//! header per entry and the remote target as Request-URI; with a strict router first (no
//! `lr`), that router's URI as Request-URI, the other entries as Route, and the remote
//! target appended as the last Route. Either way the request goes to the first route's
//! address when it is an IP literal; siaga resolves no names, so a first route naming a
//! host sends requests where the dialog's requests came from instead (logged).

use super::sip::builder::MessageBuilder;
use super::sip::uri::{SipUri, Uri};
use super::sip::view::NameAddr;
use super::sip::view::scan::split_commas;
use super::sip::{HeaderName, Method, ParseError, SipMessage};
use super::transaction::Destination;

/// Identifies a dialog from siaga's side: the Call-ID and siaga's own tag (From tag of the
/// requests siaga sends in it, To tag of the ones it receives).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogKey {
    /// The Call-ID.
    pub call_id: String,
    /// siaga's tag.
    pub local_tag: String,
}

/// One dialog's state (RFC 3261 §12.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    /// The Call-ID.
    pub call_id: String,
    /// siaga's tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// The From value of requests siaga sends (siaga's URI with its tag).
    pub local: String,
    /// The To value of requests siaga sends (the peer's URI with its tag), as received.
    pub remote: String,
    /// The CSeq number of siaga's last request in this dialog.
    pub local_seq: u32,
    /// The highest CSeq number the peer used, once it sent a request (§12.2.2).
    pub remote_seq: Option<u32>,
    /// The remote target: the URI of the peer's Contact (§12.1.1, §12.1.2).
    pub remote_target: String,
    /// Route header values, in the order they go into requests (§12.1.1: Record-Route as
    /// received for a UAS; reversed for a UAC).
    pub route_set: Vec<String>,
    /// Where requests in this dialog are sent.
    pub destination: Destination,
}

impl Dialog {
    /// The dialog siaga creates as UAS by sending a 2xx to `invite` with To tag
    /// `local_tag` (§12.1.1). `source` is where the INVITE came from; in-dialog requests
    /// go to the first route's (or else the remote target's) address when it is an IP
    /// literal, else to `source` — siaga resolves no names.
    ///
    /// Errors: the INVITE lacks a usable From, To, Call-ID or CSeq.
    pub fn as_uas(
        invite: &SipMessage,
        local_tag: &str,
        source: Destination,
    ) -> Result<Dialog, ParseError> {
        // §12.1.1: a From without a tag (an RFC 2543 peer) is a null remote tag.
        // Read leniently, as the emergency INVITE was taken (`uas::RequestHead::parse_lenient`).
        let remote_tag = invite.from_lenient()?.tag().unwrap_or_default().to_owned();
        // Kept as text even when not UTF-8 (a trunk's Latin-1 display name): peers match
        // dialogs by tags, never by display names (§12.2.1.1).
        let text = |name| {
            invite
                .single(name)
                .map(|f| String::from_utf8_lossy(&f.value()).into_owned())
        };
        let to = text(HeaderName::To)?;
        let remote = text(HeaderName::From)?;
        let route_set = record_route(invite)?;
        // §8.1.1.8 makes Contact mandatory in an INVITE; a trunk that leaves it out is
        // still reached, at the address its INVITE came from.
        let remote_target =
            contact_uri(invite).unwrap_or_else(|_| format!("sip:{}", source.address));
        let destination = next_hop(&route_set, Some(&remote_target), source);
        Ok(Dialog {
            call_id: invite.call_id()?.to_owned(),
            local: format!("{to};tag={local_tag}"),
            local_tag: local_tag.to_owned(),
            remote_tag,
            remote,
            local_seq: 0,
            remote_seq: Some(invite.cseq()?.seq),
            remote_target,
            route_set,
            destination,
        })
    }

    /// The dialog siaga creates as UAC when `response` (a 2xx, or a 1xx with a To tag) to
    /// its own `request` arrives (§12.1.2). Requests in it go to the first route's address
    /// when the response was record-routed through a proxy named by an IP literal, else
    /// to `destination` (the operator's registered flow, so phones behind NAT stay
    /// reachable; the Contact is not used for that).
    ///
    /// Errors: the response lacks a To tag, or the request lacks From/Call-ID/CSeq.
    pub fn as_uac(
        request: &SipMessage,
        response: &SipMessage,
        destination: Destination,
    ) -> Result<Dialog, ParseError> {
        let to = response.to()?;
        let remote_tag = to
            .tag()
            .ok_or(ParseError::bad(HeaderName::To, "no tag"))?
            .to_owned();
        let local_tag = request
            .from()?
            .tag()
            .ok_or(ParseError::bad(HeaderName::From, "no tag"))?
            .to_owned();
        let mut route_set = record_route(response)?;
        route_set.reverse();
        // A 1xx may lack a Contact; the request's target stands in until a 2xx brings one.
        let remote_target = contact_uri(response).or_else(|_| {
            request
                .request_uri_raw()
                .map(str::to_owned)
                .ok_or(ParseError::BadStartLine)
        })?;
        let destination = next_hop(&route_set, None, destination);
        Ok(Dialog {
            call_id: request.call_id()?.to_owned(),
            local_tag,
            remote_tag,
            local: request.single(HeaderName::From)?.value_str()?.into_owned(),
            remote: response.single(HeaderName::To)?.value_str()?.into_owned(),
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            remote_target,
            route_set,
            destination,
        })
    }

    /// A target refresh (§12.2.2 for a re-INVITE or UPDATE received, §12.2.1.2 for the
    /// 2xx to one siaga sent; RFC 3311 §5): the first Contact of `msg` becomes the remote
    /// target. With `follow`, requests then go to its address when it is an IP literal
    /// and no route set comes first, as [`Dialog::as_uas`] chose for the first one. A
    /// message without a readable Contact changes nothing.
    pub fn refresh_target(&mut self, msg: &SipMessage, follow: bool) {
        let Ok(target) = contact_uri(msg) else {
            return;
        };
        if follow && self.route_set.is_empty() {
            self.destination = next_hop(&[], Some(&target), self.destination);
        }
        self.remote_target = target;
    }

    /// This dialog's key.
    pub fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
        }
    }

    /// A new request in this dialog (§12.2.1.1): the next local CSeq, Request-URI and Route
    /// from the route set and remote target ([`Dialog::request_uri_and_routes`]),
    /// To/From/Call-ID of the dialog, and a Via with `branch` at `via_host` (`host:port`)
    /// over the dialog's transport. Max-Forwards 70. Send it to [`Dialog::destination`];
    /// add further headers and build.
    pub fn request(&mut self, method: &Method, via_host: &str, branch: &str) -> MessageBuilder {
        self.local_seq += 1;
        let seq = self.local_seq;
        self.request_with_seq(method, seq, via_host, branch)
    }

    /// The ACK of a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4): like any request
    /// in the dialog, but with the INVITE's CSeq number and its own branch.
    pub fn ack(&self, invite_seq: u32, via_host: &str, branch: &str) -> MessageBuilder {
        self.request_with_seq(&Method::Ack, invite_seq, via_host, branch)
    }

    fn request_with_seq(
        &self,
        method: &Method,
        seq: u32,
        via_host: &str,
        branch: &str,
    ) -> MessageBuilder {
        let transport = self.destination.transport.via_token();
        let (request_uri, routes) = self.request_uri_and_routes();
        let mut b = MessageBuilder::request(method, request_uri)
            .header(
                "Via",
                format!("SIP/2.0/{transport} {via_host};branch={branch};rport"),
            )
            .header("Max-Forwards", 70);
        for route in routes {
            b = b.header("Route", route);
        }
        b.header("From", &self.local)
            .header("To", &self.remote)
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{seq} {}", method.as_str()))
    }

    /// The Request-URI and Route values of a request in this dialog (RFC 3261 §12.2.1.1):
    /// - no route set: the remote target, no Route;
    /// - the first route is a loose router (`lr`, or a value siaga cannot read): the
    ///   remote target, and every route in order;
    /// - the first route is a strict router (no `lr`): its URI without the parameters and
    ///   headers a Request-URI may not carry (`method`, `?headers`: §19.1.1's table), then
    ///   the other routes, then `<remote target>` as the last Route.
    pub fn request_uri_and_routes(&self) -> (String, Vec<String>) {
        let Some((first, rest)) = self.route_set.split_first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let strict = NameAddr::parse(first, HeaderName::Route)
            .ok()
            .and_then(|na| na.uri.as_sip().cloned())
            .filter(|uri| !uri.has_param("lr"));
        let Some(mut uri) = strict else {
            return (self.remote_target.clone(), self.route_set.clone());
        };
        uri.remove_param("method");
        uri.clear_headers();
        let mut routes = rest.to_vec();
        routes.push(format!("<{}>", self.remote_target));
        (uri.to_string(), routes)
    }

    /// Checks the CSeq of a request the peer sent in this dialog (§12.2.2): lower than the
    /// last one is out of order (the caller answers 500); otherwise it is remembered.
    pub fn accept_remote_seq(&mut self, seq: u32) -> bool {
        match self.remote_seq {
            Some(last) if seq < last => false,
            _ => {
                self.remote_seq = Some(seq);
                true
            }
        }
    }
}

/// Every Record-Route entry of `msg`, in order: one per header line or comma-separated
/// value (§7.3.1), each as written.
///
/// Errors: a value that is not text, or whose quotes or brackets do not close.
fn record_route(msg: &SipMessage) -> Result<Vec<String>, ParseError> {
    let mut routes = Vec::new();
    for field in msg.headers_named(HeaderName::RecordRoute) {
        let value = field.value_str()?;
        for entry in split_commas(&value, HeaderName::RecordRoute)? {
            routes.push(entry.trim().to_owned());
        }
    }
    Ok(routes)
}

/// The URI of the first Contact of `msg`, as written.
///
/// Errors: no Contact, or one that does not parse.
fn contact_uri(msg: &SipMessage) -> Result<String, ParseError> {
    let field = msg
        .header(HeaderName::Contact)
        .ok_or(ParseError::bad(HeaderName::Contact, "missing"))?;
    let value = field.value_str()?;
    let first = NameAddr::parse_list(&value, HeaderName::Contact)?
        .into_iter()
        .next()
        .ok_or(ParseError::bad(HeaderName::Contact, "empty"))?;
    Ok(first.uri.to_string())
}

/// Where requests with this route set go (RFC 3261 §12.2.1.1, §8.1.2): the first route's
/// host when it is an IP literal, at its port (default 5060, §19.1.2). Without a route set,
/// the remote target's when given and an IP literal. `fallback` otherwise — the address
/// the dialog's requests came from, or an operator's registered flow. A first route that
/// names a host is logged: siaga resolves no names, so an SBC that record-routes with its
/// name is reached only when it is also where the requests came from.
fn next_hop(
    route_set: &[String],
    remote_target: Option<&str>,
    fallback: Destination,
) -> Destination {
    let uri = match route_set.first() {
        Some(route) => NameAddr::parse(route, HeaderName::Route)
            .ok()
            .map(|na| na.uri),
        None => remote_target.and_then(|t| Uri::parse(t).ok()),
    };
    let Some(address) = uri
        .as_ref()
        .and_then(Uri::as_sip)
        .and_then(SipUri::socket_addr)
    else {
        if let Some(route) = route_set.first() {
            tracing::warn!(
                %route,
                fallback = %fallback.address,
                "first route of a dialog is not an IP address (siaga resolves no names): \
                 its requests go to the address they came from"
            );
        }
        return fallback;
    };
    Destination {
        transport: fallback.transport,
        address,
        connection: fallback.connection.filter(|_| address == fallback.address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Transport;
    use bytes::Bytes;

    fn msg(s: &str) -> SipMessage {
        built(Bytes::from(s.replace('\n', "\r\n")))
    }

    fn built(b: Bytes) -> SipMessage {
        SipMessage::parse(b, Transport::Udp).expect("valid")
    }

    const INVITE: &str = "INVITE sip:112@siaga.test SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\nRecord-Route: <sip:sbc2.test;lr>\nRecord-Route: <sip:192.0.2.9:5070;lr>\nFrom: \"Caller\" <sip:+62811@trunk.test>;tag=abc\nTo: <sip:112@siaga.test>\nCall-ID: call-1\nCSeq: 7 INVITE\nContact: <sip:gw@192.0.2.1:5080>\nContent-Length: 0\n\n";

    fn source() -> Destination {
        Destination {
            transport: Transport::Udp,
            address: "192.0.2.1:5060".parse().expect("literal"),
            connection: None,
        }
    }

    #[test]
    fn uas_dialog_takes_the_record_route_in_order_and_the_contact() {
        let mut d = Dialog::as_uas(&msg(INVITE), "s1", source()).expect("dialog");
        assert_eq!(d.remote_tag, "abc");
        assert_eq!(d.remote_target, "sip:gw@192.0.2.1:5080");
        assert_eq!(d.route_set.len(), 2);
        // The first route is a name: siaga resolves none, so requests go to the source.
        assert_eq!(d.destination, source());
        let bye = built(
            d.request(&Method::Bye, "siaga.test:5060", "z9hG4bKb")
                .build(),
        );
        assert_eq!(bye.request_uri_raw(), Some("sip:gw@192.0.2.1:5080"));
        assert_eq!(bye.cseq().expect("cseq").seq, 1);
        assert_eq!(bye.to().expect("to").tag(), Some("abc"));
        assert_eq!(bye.from().expect("from").tag(), Some("s1"));
        let routes: Vec<_> = bye
            .headers_named(HeaderName::Route)
            .map(|f| f.value_str().expect("text").into_owned())
            .collect();
        assert_eq!(routes, ["<sip:sbc2.test;lr>", "<sip:192.0.2.9:5070;lr>"]);
        assert!(!d.accept_remote_seq(6));
        assert!(d.accept_remote_seq(8));
    }

    #[test]
    fn uac_dialog_reverses_the_record_route_and_acks_with_the_invite_cseq() {
        let request = msg(
            "INVITE sip:op@10.0.0.5:5062 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2\nFrom: <sip:siaga@siaga.test>;tag=me\nTo: <sip:1001@siaga.test>\nCall-ID: leg-1\nCSeq: 1 INVITE\nContact: <sip:siaga@127.0.0.1:5060>\nContent-Length: 0\n\n",
        );
        let ok = msg(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2\nRecord-Route: <sip:a.test;lr>\nRecord-Route: <sip:b.test;lr>\nFrom: <sip:siaga@siaga.test>;tag=me\nTo: <sip:1001@siaga.test>;tag=op\nCall-ID: leg-1\nCSeq: 1 INVITE\nContact: <sip:1001@10.0.0.5:5062;ob>\nContent-Length: 0\n\n",
        );
        let d = Dialog::as_uac(&request, &ok, source()).expect("dialog");
        assert_eq!(d.route_set, ["<sip:b.test;lr>", "<sip:a.test;lr>"]);
        assert_eq!(d.remote_target, "sip:1001@10.0.0.5:5062;ob");
        assert_eq!(d.key().local_tag, "me");
        let ack = built(d.ack(1, "127.0.0.1:5060", "z9hG4bK3").build());
        assert_eq!(ack.cseq().expect("cseq").seq, 1);
        assert_eq!(ack.method(), Some(&Method::Ack));
    }

    fn routes_of(request: &SipMessage) -> Vec<String> {
        request
            .headers_named(HeaderName::Route)
            .map(|f| f.value_str().expect("text").into_owned())
            .collect()
    }

    #[test]
    fn a_strict_router_first_takes_the_request_uri_and_the_target_goes_last() {
        let invite = INVITE
            .replace(
                "<sip:sbc2.test;lr>",
                "<sip:192.0.2.9:5070;transport=udp;method=INVITE?Priority=urgent>",
            )
            .replace("<sip:192.0.2.9:5070;lr>", "<sip:192.0.2.10;lr>");
        let mut d = Dialog::as_uas(&msg(&invite), "s1", source()).expect("dialog");
        assert_eq!(
            d.destination.address,
            "192.0.2.9:5070".parse().expect("literal"),
            "the strict router is the next hop"
        );
        let bye = built(
            d.request(&Method::Bye, "siaga.test:5060", "z9hG4bKs")
                .build(),
        );
        // §12.2.1.1: Request-URI = first route without `method` and headers; the remote
        // target is appended as the last Route.
        assert_eq!(
            bye.request_uri_raw(),
            Some("sip:192.0.2.9:5070;transport=udp")
        );
        assert_eq!(
            routes_of(&bye),
            ["<sip:192.0.2.10;lr>", "<sip:gw@192.0.2.1:5080>"]
        );
    }

    #[test]
    fn a_loose_router_first_keeps_the_target_and_every_route() {
        let invite = INVITE.replace("<sip:sbc2.test;lr>", "<sip:192.0.2.8;lr>");
        let mut d = Dialog::as_uas(&msg(&invite), "s1", source()).expect("dialog");
        assert_eq!(
            d.destination.address,
            "192.0.2.8:5060".parse().expect("literal")
        );
        let bye = built(d.request(&Method::Bye, "siaga.test", "z9hG4bKl").build());
        assert_eq!(bye.request_uri_raw(), Some("sip:gw@192.0.2.1:5080"));
        assert_eq!(
            routes_of(&bye),
            ["<sip:192.0.2.8;lr>", "<sip:192.0.2.9:5070;lr>"]
        );
    }

    #[test]
    fn an_operator_dialog_follows_a_record_routing_proxy_else_the_registered_flow() {
        let request = msg(
            "INVITE sip:op@10.0.0.5:5062 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2\nFrom: <sip:siaga@siaga.test>;tag=me\nTo: <sip:1001@siaga.test>\nCall-ID: leg-1\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        let ok = |rr: &str| {
            msg(&format!(
                "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2\n{rr}From: <sip:siaga@siaga.test>;tag=me\nTo: <sip:1001@siaga.test>;tag=op\nCall-ID: leg-1\nCSeq: 1 INVITE\nContact: <sip:1001@10.0.0.5:5062>\nContent-Length: 0\n\n"
            ))
        };
        let flow = source();
        // No route set: the registered flow, not the Contact (NAT).
        let d = Dialog::as_uac(&request, &ok(""), flow).expect("dialog");
        assert_eq!(d.destination, flow);
        // A proxy record-routed the leg: requests go to it (the last entry, reversed first).
        let rr = "Record-Route: <sip:192.0.2.30:5090;lr>\nRecord-Route: <sip:192.0.2.31;lr>\n";
        let d = Dialog::as_uac(&request, &ok(rr), flow).expect("dialog");
        assert_eq!(
            d.destination.address,
            "192.0.2.31:5060".parse().expect("literal")
        );
        let ack = built(d.ack(1, "127.0.0.1:5060", "z9hG4bKa").build());
        assert_eq!(ack.request_uri_raw(), Some("sip:1001@10.0.0.5:5062"));
        assert_eq!(
            routes_of(&ack),
            ["<sip:192.0.2.31;lr>", "<sip:192.0.2.30:5090;lr>"]
        );
        // A proxy named by a host name: the flow.
        let d = Dialog::as_uac(&request, &ok("Record-Route: <sip:proxy.test;lr>\n"), flow)
            .expect("dialog");
        assert_eq!(d.destination, flow);
    }

    #[test]
    fn requests_go_to_an_ip_literal_target() {
        let invite = INVITE
            .replace("Record-Route: <sip:sbc2.test;lr>\n", "")
            .replace("Record-Route: <sip:192.0.2.9:5070;lr>\n", "");
        let d = Dialog::as_uas(&msg(&invite), "s1", source()).expect("dialog");
        assert_eq!(
            d.destination.address,
            "192.0.2.1:5080".parse().expect("literal")
        );
    }
}
