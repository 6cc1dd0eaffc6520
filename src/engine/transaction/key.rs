//! Transaction identifiers: how a request or response finds its transaction
//! (RFC 3261 §17.1.3 client side, §17.2.3 server side, §9.2 for CANCEL).

use crate::engine::sip::{Method, ParseError, SipMessage};

/// Identifies a server transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerKey {
    /// RFC 3261 §17.2.3: top Via branch (with the magic cookie), sent-by, and method —
    /// ACK counts as INVITE, so the ACK of a non-2xx final finds its INVITE transaction.
    ///
    /// siaga also requires the Call-ID and CSeq number to match. Retransmissions, the ACK
    /// of a non-2xx and CANCEL carry the same ones (§17.1.1.3, §9.1), so correct peers see
    /// no difference; but a peer that reuses a branch for a new request (an SBC bug, or
    /// RFC 4475's test vectors) gets a new transaction instead of having an emergency call
    /// absorbed as a "retransmission" of another.
    Rfc3261 {
        /// The branch parameter, verbatim (case-sensitive).
        branch: String,
        /// sent-by host (lower-cased; an IP address in its canonical text, so
        /// `[2001:DB8:0::1]` is `2001:db8::1`, RFC 5118) and port (default filled in).
        sent_by: (String, u16),
        /// The method (ACK mapped to INVITE).
        method: Method,
        /// The Call-ID.
        call_id: String,
        /// The CSeq number.
        cseq: u32,
    },
    /// RFC 3261 §17.2.3's fallback for RFC 2543 peers (no magic cookie): Request-URI,
    /// From tag, Call-ID, CSeq number, top Via and method (ACK mapped to INVITE).
    Rfc2543 {
        /// The Request-URI as written.
        request_uri: String,
        /// The From tag, if any.
        from_tag: Option<String>,
        /// The Call-ID.
        call_id: String,
        /// The CSeq number.
        cseq: u32,
        /// The top Via value, normalised ([`Via`](crate::engine::sip::view::Via)'s `Display`: no LWS, names as parsed),
        /// or as written when it does not parse.
        top_via: String,
        /// The method (ACK mapped to INVITE).
        method: Method,
    },
}

impl ServerKey {
    /// The key of the transaction `request` belongs to (ACK: its INVITE's).
    ///
    /// Errors: the top Via, CSeq, Call-ID or From cannot be read.
    pub fn of_request(request: &SipMessage) -> Result<ServerKey, ParseError> {
        let method = match request.method() {
            Some(Method::Ack) | Some(Method::Invite) => Method::Invite,
            Some(m) => m.clone(),
            None => return Err(ParseError::BadStartLine),
        };
        Self::with_method(request, method)
    }

    /// The key of the transaction that sent `response` (its Via, Call-ID and CSeq echo the
    /// request's, RFC 3261 §8.2.6.2): for finding the transaction of a response siaga could
    /// not send. `None` for an RFC 2543 key, which needs the request's Request-URI.
    pub fn of_response(response: &SipMessage) -> Option<ServerKey> {
        let method = match response.cseq().ok()?.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        match Self::with_method(response, method).ok()? {
            key @ ServerKey::Rfc3261 { .. } => Some(key),
            ServerKey::Rfc2543 { .. } => None,
        }
    }

    /// The key of the INVITE transaction a CANCEL targets (RFC 3261 §9.2: same as the
    /// CANCEL's own key but for the method).
    pub fn cancelled_invite(cancel: &SipMessage) -> Result<ServerKey, ParseError> {
        Self::with_method(cancel, Method::Invite)
    }

    /// The Via is read from the header written `Via` or `v` alike (RFC 3261 §7.3.3), in any
    /// letter case and with any LWS, so a retransmission that an SBC rewrote in another
    /// form still matches.
    fn with_method(request: &SipMessage, method: Method) -> Result<ServerKey, ParseError> {
        let via = request.top_via()?;
        if via.has_rfc3261_branch() {
            let host = via
                .host_ip()
                .map_or_else(|| via.host.to_ascii_lowercase(), |ip| ip.to_string());
            return Ok(ServerKey::Rfc3261 {
                branch: via.branch().unwrap_or_default().to_owned(),
                sent_by: (host, via.port_or_default()),
                method,
                call_id: request.call_id()?.to_owned(),
                cseq: request.cseq()?.seq,
            });
        }
        let top_via = via.to_string();
        Ok(ServerKey::Rfc2543 {
            request_uri: request.request_uri_raw().unwrap_or_default().to_owned(),
            // Read leniently: an emergency INVITE's From may be (RFC 3261 §8.2, `uas`).
            from_tag: request.from_lenient()?.tag().map(str::to_owned),
            call_id: request.call_id()?.to_owned(),
            cseq: request.cseq()?.seq,
            top_via,
            method,
        })
    }
}

/// Identifies a client transaction (RFC 3261 §17.1.3): the branch siaga put in its top
/// Via, and the CSeq method (so a CANCEL's responses do not match its INVITE).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The branch parameter siaga generated.
    pub branch: String,
    /// The CSeq method (ACK never has a client transaction of its own).
    pub method: Method,
}

impl ClientKey {
    /// The key of the client transaction that sends `request` (one of siaga's own): the
    /// same fields a response echoes.
    ///
    /// Errors: as [`ClientKey::of_response`].
    pub fn of_request(request: &SipMessage) -> Result<ClientKey, ParseError> {
        Self::of_response(request)
    }

    /// The key a response matches.
    ///
    /// Errors: the top Via or CSeq cannot be read, or the Via has no branch.
    pub fn of_response(response: &SipMessage) -> Result<ClientKey, ParseError> {
        let via = response.top_via()?;
        let branch = via
            .branch()
            .ok_or(ParseError::bad(
                crate::engine::sip::HeaderName::Via,
                "no branch",
            ))?
            .to_owned();
        Ok(ClientKey {
            branch,
            method: response.cseq()?.method,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Transport;
    use bytes::Bytes;

    fn msg(s: &str) -> SipMessage {
        SipMessage::parse(Bytes::from(s.replace('\n', "\r\n")), Transport::Udp).expect("valid")
    }

    const INVITE: &str = "INVITE sip:112@siaga.test SIP/2.0\nVia: SIP/2.0/UDP Trunk.Example:5060;branch=z9hG4bKabc\nFrom: <sip:a@b>;tag=1\nTo: <sip:112@siaga.test>\nCall-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n";

    #[test]
    fn ack_and_cancel_find_the_invite() {
        let invite = ServerKey::of_request(&msg(INVITE)).expect("key");
        let ack = msg(&INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK"));
        assert_eq!(ServerKey::of_request(&ack).expect("key"), invite);
        let cancel = msg(&INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL"));
        assert_ne!(ServerKey::of_request(&cancel).expect("key"), invite);
        assert_eq!(ServerKey::cancelled_invite(&cancel).expect("key"), invite);
        let other_branch = msg(&INVITE.replace("z9hG4bKabc", "z9hG4bKabd"));
        assert_ne!(ServerKey::of_request(&other_branch).expect("key"), invite);
        let host_case = msg(&INVITE.replace("Trunk.Example", "trunk.example"));
        assert_eq!(ServerKey::of_request(&host_case).expect("key"), invite);
        // A reused branch with another Call-ID or CSeq is another request.
        let reused = msg(&INVITE.replace("Call-ID: c1", "Call-ID: c2"));
        assert_ne!(ServerKey::of_request(&reused).expect("key"), invite);
        let next_cseq = msg(&INVITE.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE"));
        assert_ne!(ServerKey::of_request(&next_cseq).expect("key"), invite);
    }

    /// RFC 3261 §7.3.3: `v` is `Via`, in any case, with any LWS and folding; the key of a
    /// retransmission so rewritten is the key of the original (RFC 5118: IPv6 sent-by
    /// compared as addresses).
    #[test]
    fn compact_and_long_via_give_one_key() {
        let invite = ServerKey::of_request(&msg(INVITE)).expect("key");
        for via in [
            "v: SIP/2.0/UDP Trunk.Example:5060;branch=z9hG4bKabc",
            "VIA : SIP / 2.0 / udp\n  trunk.example : 5060 ;branch=z9hG4bKabc",
            "V:SIP/2.0/UDP trunk.example:5060;branch=z9hG4bKabc, SIP/2.0/UDP 192.0.2.7",
        ] {
            let rewritten =
                msg(&INVITE.replace("Via: SIP/2.0/UDP Trunk.Example:5060;branch=z9hG4bKabc", via));
            assert_eq!(
                ServerKey::of_request(&rewritten).expect("key"),
                invite,
                "{via}"
            );
        }
        let v6 = |host: &str| {
            ServerKey::of_request(&msg(&INVITE.replace("Trunk.Example", host))).expect("key")
        };
        assert_eq!(v6("[2001:DB8:0::9:1]"), v6("[2001:db8::9:1]"));
        assert_ne!(v6("[2001:db8::9:1]"), v6("[2001:db8::9:2]"));
    }

    #[test]
    fn rfc2543_keys_ignore_the_via_header_form() {
        let old = INVITE.replace(";branch=z9hG4bKabc", "");
        let key = ServerKey::of_request(&msg(&old)).expect("key");
        let rewritten = old.replace(
            "Via: SIP/2.0/UDP Trunk.Example:5060",
            "v:  SIP/2.0/UDP\n Trunk.Example:5060",
        );
        assert_eq!(ServerKey::of_request(&msg(&rewritten)).expect("key"), key);
    }

    #[test]
    fn a_response_finds_its_server_transaction() {
        let invite = ServerKey::of_request(&msg(INVITE)).expect("key");
        let response = msg(
            "SIP/2.0 486 Busy Here\nVia: SIP/2.0/UDP Trunk.Example:5060;branch=z9hG4bKabc;received=192.0.2.1\nFrom: <sip:a@b>;tag=1\nTo: <sip:112@siaga.test>;tag=2\nCall-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n",
        );
        assert_eq!(ServerKey::of_response(&response), Some(invite));
        let rfc2543 = msg(&INVITE.replace(";branch=z9hG4bKabc", ""));
        assert_eq!(ServerKey::of_response(&rfc2543), None);
    }

    #[test]
    fn rfc2543_fallback_without_cookie() {
        let old = INVITE.replace(";branch=z9hG4bKabc", "");
        let key = ServerKey::of_request(&msg(&old)).expect("key");
        assert!(matches!(key, ServerKey::Rfc2543 { cseq: 1, .. }));
        let ack = msg(&old
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK"));
        assert_eq!(ServerKey::of_request(&ack).expect("key"), key);
        let bare_cookie = INVITE.replace("z9hG4bKabc", "z9hG4bK");
        assert!(matches!(
            ServerKey::of_request(&msg(&bare_cookie)),
            Ok(ServerKey::Rfc2543 { .. })
        ));
    }
}
