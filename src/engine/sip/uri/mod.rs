//! URIs in SIP messages: `sip:`/`sips:` (RFC 3261 §19.1, grammar §25.1, IPv6 references per
//! RFC 5118), `tel:` (RFC 3966 §3), `urn:` (RFC 8141 §2, service URNs per RFC 5031) and any
//! other scheme kept opaque (RFC 3261 §19.1: `absoluteURI`, RFC 4475 §3.3.2–3.3.4).
//!
//! This module owns URI parsing, writing and comparison; it does no I/O. Policies:
//! - Every component keeps its raw escaped text and [`Display`](std::fmt::Display) writes
//!   that text back, so `Uri::parse(x)?.to_string() == x` for every valid `x`; nothing is
//!   escaped twice (`%2B` stays `%2B`).
//! - Escapes are validated when text enters a URI and decoded once, on demand, for
//!   comparison (`v%61lue%25%34%31` decodes to `value%41`). Decoded values are octets:
//!   `%00` is legal.
//! - The grammar is RFC 3261 §25.1's, strictly: no whitespace, no `<>`, no unescaped
//!   characters outside each component's set (so `#` in a SIP user part must be `%23`).
//! - A scheme other than sip/sips/tel/urn is not an error; the URI is kept as
//!   [`OtherUri`], and the caller decides (416 for a Request-URI, RFC 3261 §8.2.2.1).
//! - A parsed URI carries at most [`MAX_PARTS`] parameters and [`MAX_PARTS`] headers.
//! - [`Uri::parse_addr_spec_prefix`] reads the bracket-less form of From/To/Contact
//!   (RFC 3261 §20), where `;` after the URI starts header parameters.

mod escape;
mod host;
mod param;
mod sip;
mod tel;
mod urn;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use escape::{Component, percent_decode, percent_encode};
pub use host::Host;
pub use param::{UriHeader, UriParam};
pub use sip::SipUri;
pub use tel::TelUri;
pub use urn::UrnUri;

use escape::{Cursor, is_unreserved};

/// What is wrong with a URI. The `Display` text is short ASCII, fit to follow
/// "Malformed Request-URI: " or a header name in a 400 reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The text is empty.
    #[error("empty URI")]
    Empty,
    /// No `scheme:` prefix, or the scheme is not `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
    /// (this includes a URI wrapped in `<>`, RFC 4475 §3.1.2.7).
    #[error("malformed URI scheme")]
    BadScheme,
    /// A `%` not followed by two hex digits (RFC 3261 §25.1 `escaped`).
    #[error("malformed % escape")]
    BadEscape,
    /// An empty user part, or a character the user part may not hold (RFC 3261 §25.1).
    #[error("malformed user part")]
    BadUser,
    /// A character a password may not hold, or a password without a user.
    #[error("malformed password")]
    BadPassword,
    /// A missing or malformed host name or IPv4 address.
    #[error("malformed host")]
    BadHost,
    /// An IPv6 reference without its `]`, or with an invalid address (RFC 5118).
    #[error("malformed IPv6 reference")]
    BadIpv6,
    /// A `:` after the host without digits.
    #[error("malformed port")]
    BadPort,
    /// A port above 65535.
    #[error("port out of range")]
    PortOutOfRange,
    /// An empty or malformed URI parameter name or value (RFC 3261 §19.1.1).
    #[error("malformed URI parameter")]
    BadParam,
    /// An empty or malformed URI header, or one without `=` (RFC 3261 §19.1.1).
    #[error("malformed URI header")]
    BadHeader,
    /// A URI with `?headers` written without angle brackets (RFC 3261 §20, RFC 4475
    /// §3.1.2.13).
    #[error("URI with headers needs angle brackets")]
    HeadersNeedBrackets,
    /// A character that cannot continue the URI at byte offset `at` (e.g. whitespace).
    #[error("unexpected character in URI at offset {at}")]
    Unexpected {
        /// Byte offset of the character in the parsed text.
        at: usize,
    },
    /// A tel number that is neither global (`+` and digits) nor local (RFC 3966 §3).
    #[error("malformed telephone number")]
    BadTelNumber,
    /// A malformed tel parameter name or value (RFC 3966 §3).
    #[error("malformed tel parameter")]
    BadTelParam,
    /// A malformed URN namespace identifier, NSS or component (RFC 8141 §2).
    #[error("malformed URN")]
    BadUrn,
    /// An empty or malformed URI of another scheme (RFC 3261 §25.1 `absoluteURI`).
    #[error("malformed URI")]
    BadOpaque,
    /// More than [`MAX_PARTS`] parameters, or more than [`MAX_PARTS`] headers, in one URI.
    #[error("too many URI parameters or headers")]
    TooManyParts,
    /// [`SipUri::parse`] was given a URI of another scheme.
    #[error("not a sip or sips URI")]
    NotSip,
    /// [`TelUri::parse`] was given a URI of another scheme.
    #[error("not a tel URI")]
    NotTel,
    /// [`UrnUri::parse`] was given a URI of another scheme.
    #[error("not a urn URI")]
    NotUrn,
}

/// The most parameters, and separately the most headers, a parsed URI may carry. Real URIs
/// carry a handful; the cap keeps [`SipUri::equivalent`] (quadratic in them) cheap on
/// hostile input.
pub const MAX_PARTS: usize = 64;

/// How much of the text a URI may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The whole text (Request-URI, inside `<...>`).
    Full,
    /// An addr-spec without brackets (RFC 3261 §20): no URI parameters or headers; it ends
    /// at `;`, `,`, whitespace or the end.
    AddrSpec,
}

/// A URI as found in a Request-URI or a From/To/Contact/Route/P-Asserted-Identity header.
///
/// `==` compares the written text; use [`SipUri::equivalent`] to compare SIP URIs by
/// RFC 3261 §19.1.4.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Uri {
    /// `sip:` or `sips:` (RFC 3261 §19.1).
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// `urn:` (RFC 8141), e.g. `urn:service:sos` (RFC 5031).
    Urn(UrnUri),
    /// Any other scheme, kept opaque (e.g. `http:`, `isbn:`, `soap.beep:`).
    Other(OtherUri),
}

impl Uri {
    /// Parses `s` as one URI; the whole string must be consumed. The scheme is matched
    /// ignoring case.
    ///
    /// # Errors
    /// A [`UriError`] naming the first defect; [`UriError::Unexpected`] if text is left
    /// over (such as the ` lr` of `sip:a@b; lr`).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let (uri, _) = parse_with(s, Mode::Full)?;
        Ok(uri)
    }

    /// Parses the URI at the start of `s` as written without angle brackets in a
    /// From/To/Contact/P-Asserted-Identity value (RFC 3261 §20 `addr-spec`), returning it
    /// and the number of bytes it took.
    ///
    /// In that form the URI has no parameters or headers: it ends at the first `;` after
    /// a SIP URI's `host[:port]` (or after a tel number, URN NSS or opaque part), at `,` or
    /// at whitespace, and what follows belongs to the header. So in
    /// `sip:+19725552222@gw1.example.net;unknownparam` the URI has no parameters and 32
    /// bytes are taken. A userinfo may not contain `,` in this form.
    ///
    /// # Errors
    /// As [`Uri::parse`]; [`UriError::HeadersNeedBrackets`] if a SIP URI goes on with `?`,
    /// [`UriError::Unexpected`] if it goes on with anything but `;`, `,` or whitespace. A
    /// local tel number's `;phone-context=…` is a header parameter in this form.
    pub fn parse_addr_spec_prefix(s: &str) -> Result<(Uri, usize), UriError> {
        parse_with(s, Mode::AddrSpec)
    }

    /// The scheme: `"sip"`, `"sips"`, `"tel"` or `"urn"` in lower case, or another scheme
    /// as written (compare it ignoring ASCII case).
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) => u.scheme(),
            Uri::Tel(_) => "tel",
            Uri::Urn(_) => "urn",
            Uri::Other(u) => u.scheme(),
        }
    }

    /// The SIP/SIPS URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The `ip:port` that the SIP URI written as `text` names when its host is an IP
    /// literal (port 5060 when absent, [`SipUri::socket_addr`]); `None` for another scheme,
    /// a host name or text that is no URI. siaga resolves no names.
    pub fn ip_literal_address(text: &str) -> Option<std::net::SocketAddr> {
        Uri::parse(text).ok()?.as_sip()?.socket_addr()
    }

    /// The tel URI, if this is one.
    pub fn as_tel(&self) -> Option<&TelUri> {
        match self {
            Uri::Tel(u) => Some(u),
            _ => None,
        }
    }

    /// The URN, if this is one.
    pub fn as_urn(&self) -> Option<&UrnUri> {
        match self {
            Uri::Urn(u) => Some(u),
            _ => None,
        }
    }
}

fn parse_with(s: &str, mode: Mode) -> Result<(Uri, usize), UriError> {
    if s.is_empty() {
        return Err(UriError::Empty);
    }
    let mut cur = Cursor::new(s, 0);
    if !cur.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        return Err(UriError::BadScheme);
    }
    let scheme = cur.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !cur.eat(b':') {
        return Err(UriError::BadScheme);
    }
    let is = |name: &str| scheme.eq_ignore_ascii_case(name);
    let uri = if is("sip") || is("sips") {
        Uri::Sip(sip::parse_sip(&mut cur, scheme, is("sips"), mode)?)
    } else if is("tel") {
        Uri::Tel(tel::parse_tel(&mut cur, scheme, mode)?)
    } else if is("urn") {
        Uri::Urn(urn::parse_urn(&mut cur, scheme, mode)?)
    } else {
        Uri::Other(parse_other(&mut cur, scheme, mode)?)
    };
    let end = cur.pos();
    match (mode, cur.peek()) {
        (_, None) => Ok((uri, end)),
        (Mode::AddrSpec, Some(b';' | b',' | b' ' | b'\t' | b'\r' | b'\n')) => Ok((uri, end)),
        (Mode::AddrSpec, Some(b'?')) if matches!(uri, Uri::Sip(_)) => {
            Err(UriError::HeadersNeedBrackets)
        }
        _ => Err(UriError::Unexpected { at: end }),
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(u) => u.fmt(f),
            Uri::Urn(u) => u.fmt(f),
            Uri::Other(u) => u.fmt(f),
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s)
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Uri::Sip(u)
    }
}

impl From<TelUri> for Uri {
    fn from(u: TelUri) -> Self {
        Uri::Tel(u)
    }
}

impl From<UrnUri> for Uri {
    fn from(u: UrnUri) -> Self {
        Uri::Urn(u)
    }
}

/// A URI of a scheme siaga does not interpret (RFC 3261 §25.1 `absoluteURI`), kept as
/// written: `soap.beep://192.0.2.103:3002` has scheme `soap.beep` and opaque part
/// `//192.0.2.103:3002`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OtherUri {
    scheme: String,
    opaque: String,
}

impl OtherUri {
    /// The scheme as written.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Everything after the first `:`, as written.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }
}

impl fmt::Display for OtherUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.opaque)
    }
}

/// `uric` (RFC 2396 reserved and unreserved), plus `[`, `]` (RFC 3986 IP literals) and `#`.
fn is_opaque_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b';' | b'/'
                | b'?'
                | b':'
                | b'@'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b'['
                | b']'
                | b'#'
        )
}

fn parse_other(cur: &mut Cursor<'_>, scheme: &str, mode: Mode) -> Result<OtherUri, UriError> {
    let opaque = match mode {
        Mode::Full => cur.take_escaped(is_opaque_char)?,
        Mode::AddrSpec => cur.take_escaped(|b| is_opaque_char(b) && b != b';' && b != b',')?,
    };
    if opaque.is_empty() {
        return Err(UriError::BadOpaque);
    }
    Ok(OtherUri {
        scheme: scheme.to_owned(),
        opaque: opaque.to_owned(),
    })
}
