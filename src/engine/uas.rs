//! The UAS core's checks on a request that no dialog or transaction claims yet
//! (RFC 3261 §8.2, in that section's order), and siaga's answer to OPTIONS (§11.2).
//!
//! Pure: [`inspect_request`] looks at a parsed request and the engine's configuration and
//! says which response to send, or that the request may go on to the application.

use super::driver::EngineConfig;
use super::sip::uri::{Host, Uri};
use super::sip::view::{CSeq, NameAddr};
use super::sip::{HeaderName, Method, ParseError, SipMessage};

/// Methods siaga implements (RFC 3261 §20.5 Allow): UPDATE (RFC 3311) and INFO (RFC
/// 6086, answered 200 inside a call's dialogs) among them.
pub const ALLOWED: &[Method] = &[
    Method::Invite,
    Method::Ack,
    Method::Cancel,
    Method::Bye,
    Method::Options,
    Method::Register,
    Method::Update,
    Method::Info,
    Method::Prack,
];

/// The Allow header value for [`ALLOWED`].
pub fn allow_value() -> String {
    ALLOWED
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Body types siaga understands (RFC 3261 §20.1 Accept).
pub const ACCEPT: &str = "application/sdp";

/// Option tags siaga supports (RFC 3261 §20.37 Supported): `timer`, session timers on the
/// trunk leg (RFC 4028); `100rel`, reliable provisional responses to the trunk (RFC 3262,
/// `call::prack`).
pub const SUPPORTED: &[&str] = &["timer", "100rel"];

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with this final response and stop.
    Reject(Rejection),
    /// The request passed every §8.2 check and is addressed to siaga itself
    /// (OPTIONS: answer 200 with [`capabilities`]).
    ToSiaga,
    /// The request passed every §8.2 check; its Request-URI names a user at one of
    /// siaga's domains (or a tel:/urn: target) for the application to route.
    ToTarget,
}

/// A final response with the headers the RFC requires alongside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Status code, 400–599.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Extra headers (name, value), e.g. Allow with 405/501, Unsupported with 420.
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400 with the parse error's text as the reason phrase (RFC 3261 §21.4.1).
    pub fn bad_request(error: &ParseError) -> Self {
        Rejection::new(400, format!("Bad Request - {error}"))
    }
}

/// Headers of siaga's 200 to OPTIONS (RFC 3261 §11.2): Allow, Accept, Supported,
/// Accept-Encoding, Accept-Language.
pub fn capabilities() -> Vec<(&'static str, String)> {
    vec![
        ("Allow", allow_value()),
        ("Accept", ACCEPT.to_owned()),
        ("Accept-Encoding", "identity".to_owned()),
        ("Accept-Language", "en, id".to_owned()),
        ("Supported", SUPPORTED.join(", ")),
    ]
}

/// Checks a request outside any dialog or transaction, in RFC 3261 §8.2's order:
/// the mandatory headers (parsed into `head` by [`RequestHead::parse`], §8.1.1), the version (505), the method (§8.2.1; 501/405
/// with Allow), the CSeq method (400), Require (§8.2.2.3; 420 with Unsupported — also
/// for requests in a dialog), a To tag (§12.2.2; 481: the engine then looks for the
/// dialog), the Request-URI scheme and target (§8.2.2.1; 416, 404), the body's type and encoding (§8.2.3; 415 with Accept/Accept-Encoding) and, for INVITE,
/// whether the answer's SDP is acceptable to the caller (§8.2.3 via §21.4.7; 406).
///
/// ACK never reaches here (it is never answered); CANCEL is matched before.
pub fn inspect_request(msg: &SipMessage, head: &RequestHead, config: &EngineConfig) -> Verdict {
    match check(msg, head, config) {
        Ok(v) => v,
        Err(r) => Verdict::Reject(r),
    }
}

/// What every request must carry, parsed once (RFC 3261 §8.1.1): To, From, Call-ID, CSeq,
/// every Via, the Request-URI, and Max-Forwards unless absent (RFC 2543 peers omit it,
/// RFC 4475 §3.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The To value.
    pub to: NameAddr,
    /// The From value.
    pub from: NameAddr,
    /// The Call-ID, verbatim.
    pub call_id: String,
    /// The CSeq.
    pub cseq: CSeq,
    /// Max-Forwards, if present.
    pub max_forwards: Option<u8>,
    /// The Request-URI.
    pub request_uri: Uri,
}

impl RequestHead {
    /// Parses and checks the mandatory headers of `msg`.
    ///
    /// Errors: the first missing, repeated or malformed one; the engine answers with a
    /// stateless 400 whose reason is the error.
    pub fn parse(msg: &SipMessage) -> Result<RequestHead, ParseError> {
        let head = RequestHead {
            to: msg.to()?,
            from: msg.from()?,
            call_id: msg.call_id()?.to_owned(),
            cseq: msg.cseq()?,
            max_forwards: msg.max_forwards()?,
            request_uri: msg.request_uri().ok_or(ParseError::BadStartLine)??,
        };
        msg.vias()?;
        Ok(head)
    }

    /// As [`RequestHead::parse`], with From and To read leniently
    /// ([`SipMessage::from_lenient`], RFC 3261 §8.2): for the requests of an emergency
    /// call, which siaga takes whenever it can. Call-ID, CSeq, Via and the Request-URI stay
    /// strict (transactions and dialogs need them), and so does a usable From tag: a
    /// From that does not parse must at least yield its tag, or the dialog could not be
    /// told from others (§12.1.1).
    ///
    /// Errors: as [`RequestHead::parse`]; a From salvaged without a tag.
    pub fn parse_lenient(msg: &SipMessage) -> Result<RequestHead, ParseError> {
        let from = match msg.from() {
            Ok(from) => from,
            Err(error) => {
                let from = msg.from_lenient()?;
                if from.tag().is_none() {
                    return Err(error);
                }
                from
            }
        };
        let head = RequestHead {
            to: msg.to_lenient()?,
            from,
            call_id: msg.call_id()?.to_owned(),
            cseq: msg.cseq()?,
            max_forwards: msg.max_forwards()?,
            request_uri: msg.request_uri().ok_or(ParseError::BadStartLine)??,
        };
        msg.vias()?;
        Ok(head)
    }
}

fn check(
    msg: &SipMessage,
    head: &RequestHead,
    config: &EngineConfig,
) -> Result<Verdict, Rejection> {
    let bad = |e: ParseError| Rejection::bad_request(&e);
    let (to, cseq) = (&head.to, &head.cseq);
    if !msg.is_sip_2_0() {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    let Some(method) = msg.method() else {
        return Err(bad(ParseError::BadStartLine));
    };
    if !ALLOWED.contains(method) {
        let status = match method {
            Method::Extension(_) => (501, "Not Implemented"),
            _ => (405, "Method Not Allowed"),
        };
        return Err(Rejection::new(status.0, status.1).with("Allow", allow_value()));
    }
    if &cseq.method != method {
        return Err(bad(ParseError::CSeqMethodMismatch));
    }
    // §8.2.2.3, before the dialog is looked for: it holds for requests in a dialog too
    // (a re-INVITE that requires an extension siaga lacks must not cross the call).
    if !matches!(method, Method::Ack | Method::Cancel) {
        let required = msg.option_tags(HeaderName::Require).map_err(bad)?;
        let unsupported: Vec<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Err(
                Rejection::new(420, "Bad Extension").with("Unsupported", unsupported.join(", "))
            );
        }
    }
    // §12.2.2: a request with a To tag belongs to a dialog; none matched it.
    if to.tag().is_some() {
        return Err(Rejection::new(481, "Call/Transaction Does Not Exist"));
    }
    let verdict = match &head.request_uri {
        Uri::Sip(sip) => {
            if !is_local_host(sip.host(), sip.port(), config) {
                return Err(Rejection::new(404, "Not Found"));
            }
            if sip.user().is_none() || *method == Method::Options {
                Verdict::ToSiaga
            } else {
                Verdict::ToTarget
            }
        }
        Uri::Tel(_) | Uri::Urn(_) => Verdict::ToTarget,
        Uri::Other(_) => return Err(Rejection::new(416, "Unsupported URI Scheme")),
    };
    check_body(msg)?;
    if *method == Method::Invite {
        let accept = msg.accept().map_err(bad)?;
        if accept.is_some_and(|ranges| {
            !ranges.is_empty() && !ranges.iter().any(|r| r.admits("application", "sdp"))
        }) {
            return Err(Rejection::new(406, "Not Acceptable").with(
                "Warning",
                "399 siaga \"Only application/sdp bodies can be sent\"".to_owned(),
            ));
        }
    }
    Ok(verdict)
}

/// §8.2.3: a body must be of a type and encoding siaga understands.
fn check_body(msg: &SipMessage) -> Result<(), Rejection> {
    let bad = |e: ParseError| Rejection::bad_request(&e);
    let encodings = msg.option_tags(HeaderName::ContentEncoding).map_err(bad)?;
    if encodings
        .iter()
        .any(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return Err(Rejection::new(415, "Unsupported Media Type")
            .with("Accept-Encoding", "identity".to_owned())
            .with("Accept", ACCEPT.to_owned()));
    }
    let content_type = msg.content_type().map_err(bad)?;
    if msg.body().is_empty() {
        return Ok(());
    }
    match content_type {
        Some(t) if t.is("application", "sdp") => Ok(()),
        // RFC 5621: an INVITE may carry its SDP beside other parts (an NG112 trunk adds a
        // PIDF-LO location, RFC 6442); the SDP part is used, the others are ignored.
        // Without an SDP part, an INVITE is a late offer (the SDP comes in the ACK).
        Some(t) if super::sip::body::is_multipart(&t) && msg.method() == Some(&Method::Invite) => {
            Ok(())
        }
        _ => Err(Rejection::new(415, "Unsupported Media Type").with("Accept", ACCEPT.to_owned())),
    }
}

/// Whether `host[:port]` names siaga: one of `sip.domains` (any port), or a local or
/// advertised address (port must match when given; no port means 5060).
pub fn is_local_host(host: &Host, port: Option<u16>, config: &EngineConfig) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            config.domains.iter().any(|d| d.eq_ignore_ascii_case(name))
                || config.advertised_host.eq_ignore_ascii_case(name)
        }
        Host::Ipv4(ip) => config.is_local_address((*ip).into(), port),
        Host::Ipv6(ip) => config.is_local_address((*ip).into(), port),
    }
}
