//! Building requests and responses (RFC 3261 §7, §8.1.1, §8.2.6). Header text siaga does
//! not change is copied byte for byte (line folds become one SP, §7.3.1); Content-Length is
//! always computed from the body. Values siaga writes itself are sanitised: a CR or LF in
//! one becomes SP, so no input can inject a header.

use super::header::HeaderName;
use super::message::{HeaderField, SipMessage};
use super::method::Method;
use super::view::scan::skip_quoted;
use super::view::{NameAddr, Via};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt::Display;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Builds one SIP message. Start with [`MessageBuilder::request`],
/// [`MessageBuilder::response`] or [`response_to`]; finish with [`MessageBuilder::build`].
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    head: BytesMut,
    body: Bytes,
}

impl MessageBuilder {
    /// `METHOD request-uri SIP/2.0`. `uri` is written as given (sanitised).
    pub fn request(method: &Method, uri: impl Display) -> Self {
        let mut b = MessageBuilder::empty();
        b.push_sanitised(method.as_str());
        b.head.put_u8(b' ');
        b.push_sanitised(&uri.to_string());
        b.head.put_slice(b" SIP/2.0\r\n");
        b
    }

    /// `SIP/2.0 code reason`. `reason` is sanitised (RFC 3261 §21 phrases, or an error's
    /// text for 400).
    pub fn response(status: u16, reason: &str) -> Self {
        let mut b = MessageBuilder::empty();
        let _ = write!(Writer(&mut b.head), "SIP/2.0 {status} ");
        b.push_sanitised(reason);
        b.head.put_slice(b"\r\n");
        b
    }

    fn empty() -> Self {
        MessageBuilder {
            head: BytesMut::with_capacity(512),
            body: Bytes::new(),
        }
    }

    /// Adds `Name: value`. Use the canonical name of a known header
    /// ([`HeaderName::canonical`]) or any token.
    pub fn header(mut self, name: &str, value: impl Display) -> Self {
        self.push_sanitised(name);
        self.head.put_slice(b": ");
        self.push_sanitised(&value.to_string());
        self.head.put_slice(b"\r\n");
        self
    }

    /// Copies one received header field: its name as written and its value byte for byte
    /// (line folds joined into one SP).
    pub fn copy(mut self, field: HeaderField<'_>) -> Self {
        self.head.put_slice(field.raw_name());
        self.head.put_slice(b": ");
        self.head.put_slice(&field.value());
        self.head.put_slice(b"\r\n");
        self
    }

    /// Copies every field of `name` from `msg`, in order.
    pub fn copy_all(mut self, msg: &SipMessage, name: HeaderName) -> Self {
        for field in msg.headers_named(name) {
            self = self.copy(field);
        }
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(self, content_type: &str, body: Bytes) -> Self {
        let mut b = self.header("Content-Type", content_type);
        b.body = body;
        b
    }

    /// The message: head, `Content-Length` computed from the body, empty line, body.
    pub fn build(mut self) -> Bytes {
        let _ = write!(
            Writer(&mut self.head),
            "Content-Length: {}\r\n\r\n",
            self.body.len()
        );
        self.head.put_slice(&self.body);
        self.head.freeze()
    }

    fn push_sanitised(&mut self, text: &str) {
        self.head.extend(
            text.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    }
}

/// A response to `request` (RFC 3261 §8.2.6.2): copies every Via in order, From, Call-ID
/// and CSeq byte for byte, and To — adding `;tag=to_tag` when the request's To has no tag
/// and a tag is given. When `received` (the packet's source address) is given, the top
/// Via gets `received` and a filled-in `rport` ([`Via::stamped`], RFC 3261 §18.2.1, RFC
/// 3581 §4); a top Via that does not parse is copied as it is. Headers the request lacks
/// are left out (a 400 to a request without To, From or Call-ID invents none, RFC 4475
/// §3.3.1). Content-Length excluded: add further headers and [`MessageBuilder::build`].
pub fn response_to(
    request: &SipMessage,
    received: Option<SocketAddr>,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> MessageBuilder {
    let mut b = MessageBuilder::response(status, reason);
    for (i, field) in request.headers_named(HeaderName::Via).enumerate() {
        let stamped = received
            .filter(|_| i == 0)
            .and_then(|source| stamp_top_via(field.value_str().ok()?.as_ref(), source));
        b = match stamped {
            Some(value) => b.header(&String::from_utf8_lossy(field.raw_name()), value),
            None => b.copy(field),
        };
    }
    let mut b = b.copy_all(request, HeaderName::From);
    for field in request.headers_named(HeaderName::To) {
        let has_tag = to_has_tag(&field);
        b = b.copy(field);
        if let (Some(tag), false) = (to_tag, has_tag) {
            // Re-open the line just written to append the tag before its CRLF.
            b.head.truncate(b.head.len() - 2);
            b.head.put_slice(b";tag=");
            b.push_sanitised(tag);
            b.head.put_slice(b"\r\n");
        }
    }
    b.copy_all(request, HeaderName::CallId)
        .copy_all(request, HeaderName::CSeq)
}

/// Whether a To field already carries a `tag` parameter (with a value or not): siaga then
/// adds none (RFC 3261 §8.2.6.2). A To that does not parse is searched for `;tag` as text.
fn to_has_tag(field: &HeaderField<'_>) -> bool {
    let Ok(value) = field.value_str() else {
        return true; // not text: add nothing to it
    };
    match NameAddr::parse(&value, HeaderName::To) {
        Ok(to) => to.param("tag").is_some(),
        Err(_) => value.to_ascii_lowercase().contains(";tag"),
    }
}

/// The first Via field's value with its first (top) value stamped; the values after it
/// are kept as written. `None` when the top value does not parse.
fn stamp_top_via(value: &str, source: SocketAddr) -> Option<String> {
    let end = first_value_end(value);
    let top = Via::parse_list(&value[..end]).ok()?.into_iter().next()?;
    Some(format!("{}{}", top.stamped(source), &value[end..]))
}

/// Where the first comma-separated value of a header value ends (a comma outside quotes),
/// or the value's length.
fn first_value_end(value: &str) -> usize {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b',' => return i,
            b'"' => i = skip_quoted(bytes, i).unwrap_or(bytes.len()),
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Rebuilds `msg` from its index: same start line, every header copied, same body, a fresh
/// Content-Length. Used by round-trip tests and when relaying a message unchanged.
pub fn rebuild(msg: &SipMessage) -> Bytes {
    let mut b = match (msg.method(), msg.status()) {
        (Some(method), _) => MessageBuilder::request(method, msg.request_uri_raw().unwrap_or("")),
        (None, Some(status)) => MessageBuilder::response(
            status,
            &String::from_utf8_lossy(msg.reason().unwrap_or_default()),
        ),
        (None, None) => MessageBuilder::response(500, "Server Internal Error"),
    };
    for field in msg.headers() {
        if field.name() != HeaderName::ContentLength {
            b = b.copy(field);
        }
    }
    b.body = Bytes::copy_from_slice(msg.body());
    b.build()
}

/// `fmt::Write` into a `BytesMut`.
struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}
