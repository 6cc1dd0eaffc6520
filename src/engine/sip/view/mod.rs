//! Typed views of headers, parsed on demand from a [`SipMessage`]'s index. Each accessor
//! parses only the header it names; errors say which header and what is wrong.
//!
//! List headers (Via, Contact, Route, Record-Route, Require, …) are read across every
//! field of that name and every comma-separated value (RFC 3261 §7.3.1).

pub mod auth;
pub mod cseq;
pub mod media;
pub mod name_addr;
pub mod reason;
pub mod scan;
pub mod via;

use super::error::ParseError;
use super::header::HeaderName;
use super::message::SipMessage;
use super::method::Method;
use super::uri::Uri;
pub use auth::AuthValue;
pub use cseq::CSeq;
pub use media::MediaType;
pub use name_addr::{Contacts, NameAddr};
pub use reason::{Reason, ReasonProtocol};
pub use scan::Param;
pub use via::Via;

impl SipMessage {
    /// The parsed Request-URI (`None` for a response).
    ///
    /// Errors: [`ParseError::BadRequestUri`].
    pub fn request_uri(&self) -> Option<Result<Uri, ParseError>> {
        self.request_uri_raw()
            .map(|raw| Uri::parse(raw).map_err(|_| ParseError::BadRequestUri))
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for field in self.headers_named(HeaderName::Via) {
            out.extend(Via::parse_list(&field.value_str()?)?);
        }
        Ok(out)
    }

    /// The top Via value (RFC 3261 §18.2.2 routes responses by it).
    ///
    /// Errors: [`ParseError::MissingHeader`] when there is none; a malformed top value.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let field = self
            .header(HeaderName::Via)
            .ok_or(ParseError::MissingHeader(HeaderName::Via))?;
        Via::parse_list(&field.value_str()?)?
            .into_iter()
            .next()
            .ok_or(ParseError::MissingHeader(HeaderName::Via))
    }

    /// The From value (exactly one field).
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.single_name_addr(HeaderName::From)
    }

    /// The To value (exactly one field).
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.single_name_addr(HeaderName::To)
    }

    /// The From value read leniently ([`NameAddr::parse_lenient`]), for the requests of
    /// an emergency call. Errors: From missing or repeated, or a `<` without `>`.
    pub fn from_lenient(&self) -> Result<NameAddr, ParseError> {
        self.single_name_addr_lenient(HeaderName::From)
    }

    /// The To value read leniently, as [`SipMessage::from_lenient`].
    pub fn to_lenient(&self) -> Result<NameAddr, ParseError> {
        self.single_name_addr_lenient(HeaderName::To)
    }

    fn single_name_addr_lenient(&self, name: HeaderName) -> Result<NameAddr, ParseError> {
        let field = self.single(name)?;
        NameAddr::parse_lenient(&String::from_utf8_lossy(&field.value()), name)
    }

    fn single_name_addr(&self, name: HeaderName) -> Result<NameAddr, ParseError> {
        NameAddr::parse(&self.single(name)?.value_str()?, name)
    }

    /// The Call-ID, verbatim (RFC 3261 §20.8: compared byte for byte, no unescaping).
    ///
    /// Errors: missing, repeated, empty, or containing whitespace.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let field = self.single(HeaderName::CallId)?;
        let raw = std::str::from_utf8(field.raw_value())
            .map_err(|_| ParseError::bad(HeaderName::CallId, "not UTF-8"))?;
        if raw.is_empty() || raw.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::bad(
                HeaderName::CallId,
                "empty or contains whitespace",
            ));
        }
        Ok(raw)
    }

    /// The CSeq value (exactly one field).
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(&self.single(HeaderName::CSeq)?.value_str()?)
    }

    /// Max-Forwards (0–255); `Ok(None)` when absent (RFC 2543 peers omit it).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.optional_single(HeaderName::MaxForwards)?
            .map(|v| cseq::parse_max_forwards(&v))
            .transpose()
    }

    /// Expires in seconds (RFC 3261 §20.19); `Ok(None)` when absent.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.optional_single(HeaderName::Expires)?
            .map(|v| cseq::parse_delta_seconds(&v, HeaderName::Expires))
            .transpose()
    }

    /// The Contact header(s): `*` or the list of addresses (empty when absent).
    pub fn contacts(&self) -> Result<Contacts, ParseError> {
        let mut list = Vec::new();
        let fields: Vec<_> = self.headers_named(HeaderName::Contact).collect();
        for field in &fields {
            let value = field.value_str()?;
            if name_addr::is_wildcard(&value) {
                if fields.len() != 1 {
                    return Err(ParseError::bad(
                        HeaderName::Contact,
                        "* mixed with addresses",
                    ));
                }
                return Ok(Contacts::Wildcard);
            }
            list.extend(NameAddr::parse_list(&value, HeaderName::Contact)?);
        }
        Ok(Contacts::List(list))
    }

    /// Every value of a name-addr list header (Route, Record-Route, P-Asserted-Identity…).
    pub fn name_addrs(&self, name: HeaderName) -> Result<Vec<NameAddr>, ParseError> {
        let mut out = Vec::new();
        for field in self.headers_named(name) {
            out.extend(NameAddr::parse_list(&field.value_str()?, name)?);
        }
        Ok(out)
    }

    /// Every option tag of Require, Proxy-Require, Supported or Unsupported
    /// (RFC 3261 §19.2), as written.
    pub fn option_tags(&self, name: HeaderName) -> Result<Vec<String>, ParseError> {
        self.token_list(name)
    }

    /// The methods of Allow (RFC 3261 §20.5).
    pub fn allow(&self) -> Result<Vec<Method>, ParseError> {
        Ok(self
            .token_list(HeaderName::Allow)?
            .iter()
            .filter_map(|t| Method::from_token(t.as_bytes()))
            .collect())
    }

    /// The Privacy values (RFC 3323 §4.2: `;`-separated, e.g. `id`, `none`), lower-cased.
    pub fn privacy(&self) -> Result<Vec<String>, ParseError> {
        let mut out = Vec::new();
        for field in self.headers_named(HeaderName::Privacy) {
            for v in field.value_str()?.split(';').map(str::trim) {
                if !scan::is_token(v) {
                    return Err(ParseError::bad(HeaderName::Privacy, "malformed priv-value"));
                }
                out.push(v.to_ascii_lowercase());
            }
        }
        Ok(out)
    }

    /// The Content-Type; `Ok(None)` when absent.
    pub fn content_type(&self) -> Result<Option<MediaType>, ParseError> {
        self.optional_single(HeaderName::ContentType)?
            .map(|v| MediaType::parse(&v, HeaderName::ContentType))
            .transpose()
    }

    /// The media ranges of every Accept header; `None` when there is no Accept header.
    pub fn accept(&self) -> Result<Option<Vec<MediaType>>, ParseError> {
        let mut out: Option<Vec<MediaType>> = None;
        for field in self.headers_named(HeaderName::Accept) {
            out.get_or_insert_default().extend(MediaType::parse_list(
                &field.value_str()?,
                HeaderName::Accept,
            )?);
        }
        Ok(out)
    }

    /// Every value of an auth header (Authorization, WWW-Authenticate, …), one per field.
    pub fn auth_values(&self, name: HeaderName) -> Result<Vec<AuthValue>, ParseError> {
        self.headers_named(name)
            .map(|f| AuthValue::parse(&f.value_str()?, name))
            .collect()
    }

    /// Comma-separated tokens across every field of `name`.
    fn token_list(&self, name: HeaderName) -> Result<Vec<String>, ParseError> {
        let mut out = Vec::new();
        for field in self.headers_named(name) {
            let value = field.value_str()?;
            if value.trim().is_empty() {
                continue;
            }
            for t in value.split(',').map(str::trim) {
                if !scan::is_token(t) {
                    return Err(ParseError::bad(name, "malformed token list"));
                }
                out.push(t.to_owned());
            }
        }
        Ok(out)
    }

    /// The value of a single-valued header that may be absent.
    fn optional_single(&self, name: HeaderName) -> Result<Option<String>, ParseError> {
        match self.single(name) {
            Ok(field) => Ok(Some(field.value_str()?.into_owned())),
            Err(ParseError::MissingHeader(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
