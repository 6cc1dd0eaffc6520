//! SIP and SIPS URIs (RFC 3261 §19.1, grammar §25.1; IPv6 hosts per RFC 5118): parsing,
//! writing back from the raw text, building, and comparison (§19.1.4).

use std::fmt;

use super::escape::{
    Cursor, decode, eq_decoded, eq_decoded_ignore_case, is_header_char, is_param_char,
    is_password_char, is_user_char, validate,
};
use super::host::{Host, parse_host};
use super::param::{UriHeader, UriParam, write_headers, write_params};
use super::{MAX_PARTS, Mode, UriError};

/// Parameters that make two URIs differ when only one of them has it (RFC 3261 §19.1.4).
const MUST_MATCH_PARAMS: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];

/// A `sip:` or `sips:` URI (RFC 3261 §19.1).
///
/// Every component is kept as the raw escaped text it was parsed from (or set to), and
/// [`Display`](fmt::Display) writes that text back: `SipUri::parse(x)?.to_string() == x`.
/// Decoded values are available for comparison (`*_decoded`, [`SipUri::equivalent`]).
///
/// `==` compares the text; use [`SipUri::equivalent`] for the RFC 3261 §19.1.4 comparison.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SipUri {
    /// The scheme as written (`sip`, `SIPS`, ...).
    scheme: String,
    secure: bool,
    user: Option<String>,
    /// Only ever `Some` when `user` is.
    password: Option<String>,
    host: Host,
    /// The host as written: keeps case, leading zeros and IPv6 spelling.
    host_raw: String,
    port: Option<u16>,
    /// The port digits as written (leading zeros kept); `Some` exactly when `port` is.
    port_raw: Option<String>,
    params: Vec<UriParam>,
    headers: Vec<UriHeader>,
}

impl SipUri {
    /// A `sip:` URI of `host` with no user, port, parameters or headers.
    ///
    /// # Errors
    /// [`UriError::BadHost`] if a [`Host::Domain`] is not a valid host name.
    pub fn new(host: Host) -> Result<Self, UriError> {
        host.check()?;
        Ok(SipUri {
            scheme: "sip".to_owned(),
            secure: false,
            user: None,
            password: None,
            host_raw: host.to_string(),
            host,
            port: None,
            port_raw: None,
            params: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Parses a whole string as a `sip:`/`sips:` URI (scheme case-insensitive).
    ///
    /// # Errors
    /// [`UriError::NotSip`] for another scheme, else as [`super::Uri::parse`].
    pub fn parse(s: &str) -> Result<Self, UriError> {
        match super::Uri::parse(s)? {
            super::Uri::Sip(uri) => Ok(uri),
            _ => Err(UriError::NotSip),
        }
    }

    /// `"sips"` or `"sip"` (lower case; [`Display`](fmt::Display) keeps the written case).
    pub fn scheme(&self) -> &'static str {
        if self.secure { "sips" } else { "sip" }
    }

    /// Whether this is a `sips:` URI.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Makes this a `sips:` (`true`) or `sip:` URI.
    pub fn set_secure(&mut self, secure: bool) {
        if secure != self.secure {
            self.secure = secure;
            self.scheme = self.scheme().to_owned();
        }
    }

    /// The raw (escaped) user part, e.g. `user;par=u%40example.net`.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The user part decoded once, as octets (`null-%00-null` is 11 octets).
    pub fn user_decoded(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(decode)
    }

    /// Sets the raw user part (`None` removes the user and the password). Use
    /// [`super::percent_encode`] with [`super::Component::User`] to escape decoded octets.
    ///
    /// # Errors
    /// [`UriError::BadUser`] for an empty user or a character the user part may not hold,
    /// [`UriError::BadEscape`] for a broken escape.
    pub fn set_user(&mut self, raw: Option<&str>) -> Result<(), UriError> {
        match raw {
            None => {
                self.user = None;
                self.password = None;
            }
            Some(raw) => {
                check_user(raw)?;
                self.user = Some(raw.to_owned());
            }
        }
        Ok(())
    }

    /// The raw password, if the userinfo has one (`user:password@`).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The password decoded once, as octets.
    pub fn password_decoded(&self) -> Option<Vec<u8>> {
        self.password.as_deref().map(decode)
    }

    /// Sets the raw password (may be empty).
    ///
    /// # Errors
    /// [`UriError::BadPassword`] if the URI has no user or `raw` holds a character a
    /// password may not, [`UriError::BadEscape`] for a broken escape.
    pub fn set_password(&mut self, raw: Option<&str>) -> Result<(), UriError> {
        if let Some(raw) = raw {
            if self.user.is_none() {
                return Err(UriError::BadPassword);
            }
            validate(raw, is_password_char, UriError::BadPassword)?;
        }
        self.password = raw.map(str::to_owned);
        Ok(())
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host as written (IPv6 with its brackets), e.g. `AtLanTa.CoM`.
    pub fn host_raw(&self) -> &str {
        &self.host_raw
    }

    /// Sets the host.
    ///
    /// # Errors
    /// [`UriError::BadHost`] if a [`Host::Domain`] is not a valid host name.
    pub fn set_host(&mut self, host: Host) -> Result<(), UriError> {
        host.check()?;
        self.host_raw = host.to_string();
        self.host = host;
        Ok(())
    }

    /// The explicit port, if any. No default is filled in: `sip:a@b` and `sip:a@b:5060`
    /// are different URIs (RFC 3261 §19.1.4).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Where a request to this URI goes when its host is an IP literal: that address at the
    /// port, 5060 when none is given (RFC 3261 §19.1.2). `None` for a host name (siaga
    /// resolves none).
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let ip = self.host.ip()?;
        Some(std::net::SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }

    /// Sets or removes the explicit port.
    pub fn set_port(&mut self, port: Option<u16>) {
        self.port = port;
        self.port_raw = port.map(|p| p.to_string());
    }

    /// All URI parameters in order, as written.
    pub fn params(&self) -> &[UriParam] {
        &self.params
    }

    /// The first parameter whose decoded name is `name` (ignoring case).
    pub fn param_entry(&self, name: &str) -> Option<&UriParam> {
        self.params.iter().find(|p| p.is_named(name))
    }

    /// The raw value of parameter `name`: `None` if absent, `Some(None)` if present without
    /// a value (`lr`), `Some(Some(v))` otherwise. `name` matches the decoded name ignoring
    /// case, so `param("lr")` finds `;%6C%72`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.param_entry(name).map(UriParam::value)
    }

    /// As [`SipUri::param`], with the value decoded once.
    pub fn param_decoded(&self, name: &str) -> Option<Option<Vec<u8>>> {
        self.param_entry(name).map(UriParam::value_decoded)
    }

    /// Whether parameter `name` is present (e.g. `has_param("lr")` for a loose router).
    pub fn has_param(&self, name: &str) -> bool {
        self.param_entry(name).is_some()
    }

    /// Appends a parameter (after any existing ones, duplicates allowed).
    pub fn push_param(&mut self, param: UriParam) {
        self.params.push(param);
    }

    /// Sets parameter `name` (raw text): replaces the first with the same decoded name,
    /// removes any later duplicates, or appends it.
    ///
    /// # Errors
    /// As [`UriParam::new`].
    pub fn set_param(&mut self, name: &str, value: Option<&str>) -> Result<(), UriError> {
        let param = UriParam::new(name, value)?;
        let same = |p: &UriParam| eq_decoded_ignore_case(p.name(), param.name());
        match self.params.iter().position(same) {
            Some(i) => {
                let mut index = 0usize;
                self.params.retain(|p| {
                    let keep = index <= i || !same(p);
                    index += 1;
                    keep
                });
                if let Some(slot) = self.params.get_mut(i) {
                    *slot = param;
                }
            }
            None => self.params.push(param),
        }
        Ok(())
    }

    /// Removes every parameter whose decoded name is `name`; returns whether any was there.
    pub fn remove_param(&mut self, name: &str) -> bool {
        let before = self.params.len();
        self.params.retain(|p| !p.is_named(name));
        self.params.len() != before
    }

    /// The URI headers (`?name=value&...`) in order, as written.
    pub fn headers(&self) -> &[UriHeader] {
        &self.headers
    }

    /// The raw value of the first URI header named `name` (compact forms map, case ignored).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.is_named(name))
            .map(UriHeader::value)
    }

    /// Appends a URI header.
    pub fn push_header(&mut self, header: UriHeader) {
        self.headers.push(header);
    }

    /// Removes all URI headers (e.g. before using the URI as a Request-URI, RFC 3261
    /// §19.1.5, or as a registered binding's target).
    pub fn clear_headers(&mut self) {
        self.headers.clear();
    }

    /// Whether two URIs are equivalent by RFC 3261 §19.1.4:
    /// - `sip` never equals `sips`;
    /// - user and password compare octet for octet after decoding, and both URIs must have
    ///   them or lack them;
    /// - hosts compare as [`Host::matches`]; ports must both be absent or both equal (a
    ///   missing port is not 5060);
    /// - `user`, `ttl`, `method`, `maddr` and `transport` must be in both or neither; any
    ///   parameter in both must have equal values (decoded, ASCII case ignored); others are
    ///   ignored. With duplicates, the first occurrence counts;
    /// - headers must all appear in both (any order) with equal names and decoded values.
    pub fn equivalent(&self, other: &SipUri) -> bool {
        fn same(a: Option<&str>, b: Option<&str>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => eq_decoded(a, b),
                _ => false,
            }
        }
        self.secure == other.secure
            && same(self.user(), other.user())
            && same(self.password(), other.password())
            && self.host.matches(&other.host)
            && self.port == other.port
            && params_match(self, other)
            && params_match(other, self)
            && self.headers.len() == other.headers.len()
            && self
                .headers
                .iter()
                .all(|h| other.headers.iter().any(|o| h.matches(o)))
            && other
                .headers
                .iter()
                .all(|h| self.headers.iter().any(|o| h.matches(o)))
    }
}

/// Every parameter of `a` either matches the same-named one of `b`, or is missing from `b`
/// and is not one of [`MUST_MATCH_PARAMS`].
fn params_match(a: &SipUri, b: &SipUri) -> bool {
    fn first<'u>(uri: &'u SipUri, raw_name: &str) -> Option<&'u UriParam> {
        uri.params
            .iter()
            .find(|p| eq_decoded_ignore_case(p.name(), raw_name))
    }
    a.params.iter().all(|p| {
        // With duplicates, the first occurrence in each URI is the one compared.
        let mine = first(a, p.name()).unwrap_or(p);
        match first(b, p.name()) {
            Some(theirs) => match (mine.value(), theirs.value()) {
                (None, None) => true,
                (Some(x), Some(y)) => eq_decoded_ignore_case(x, y),
                _ => false,
            },
            None => !MUST_MATCH_PARAMS.iter().any(|m| p.is_named(m)),
        }
    })
}

fn check_user(raw: &str) -> Result<(), UriError> {
    if raw.is_empty() {
        return Err(UriError::BadUser);
    }
    validate(raw, is_user_char, UriError::BadUser)
}

/// Parses a SIP/SIPS URI from just past `scheme:` (`scheme` as written). In
/// [`Mode::AddrSpec`] it stops after `host[:port]` and a userinfo may not contain `,`.
pub(super) fn parse_sip(
    cur: &mut Cursor<'_>,
    scheme: &str,
    secure: bool,
    mode: Mode,
) -> Result<SipUri, UriError> {
    // Userinfo ends at the first `@` (RFC 3261 §25.1: `@` appears nowhere else in a SIP
    // URI). If a scan over userinfo characters stops anywhere but at an `@`, there is none.
    let start = cur.pos();
    let scanned = cur.take_while(|b| {
        (is_user_char(b) || b == b':' || b == b'%') && !(mode == Mode::AddrSpec && b == b',')
    });
    let (mut user, mut password) = (None, None);
    if cur.eat(b'@') {
        let (u, p) = match scanned.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (scanned, None),
        };
        check_user(u)?;
        if let Some(p) = p {
            validate(p, is_password_char, UriError::BadPassword)?;
        }
        user = Some(u.to_owned());
        password = p.map(str::to_owned);
    } else {
        cur.set_pos(start);
    }

    let (host, host_raw) = parse_host(cur)?;
    let (mut port, mut port_raw) = (None, None);
    if cur.eat(b':') {
        let digits = cur.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(UriError::BadPort);
        }
        port = Some(
            digits
                .parse::<u16>()
                .map_err(|_| UriError::PortOutOfRange)?,
        );
        port_raw = Some(digits.to_owned());
    }

    let mut uri = SipUri {
        scheme: scheme.to_owned(),
        secure,
        user,
        password,
        host_raw: host_raw.to_owned(),
        host,
        port,
        port_raw,
        params: Vec::new(),
        headers: Vec::new(),
    };
    if mode == Mode::AddrSpec {
        return Ok(uri);
    }

    while cur.eat(b';') {
        let name = cur.take_escaped(is_param_char)?;
        if name.is_empty() {
            return Err(UriError::BadParam);
        }
        let value = if cur.eat(b'=') {
            let value = cur.take_escaped(is_param_char)?;
            if value.is_empty() {
                return Err(UriError::BadParam);
            }
            Some(value)
        } else {
            None
        };
        if uri.params.len() >= MAX_PARTS {
            return Err(UriError::TooManyParts);
        }
        uri.params.push(UriParam::from_valid(name, value));
    }
    if cur.eat(b'?') {
        loop {
            let name = cur.take_escaped(is_header_char)?;
            if name.is_empty() || !cur.eat(b'=') {
                return Err(UriError::BadHeader);
            }
            let value = cur.take_escaped(is_header_char)?;
            if uri.headers.len() >= MAX_PARTS {
                return Err(UriError::TooManyParts);
            }
            uri.headers.push(UriHeader::from_valid(name, value));
            if !cur.eat(b'&') {
                break;
            }
        }
    }
    Ok(uri)
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        f.write_str(":")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                f.write_str(":")?;
                f.write_str(password)?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host_raw)?;
        if let Some(port) = &self.port_raw {
            f.write_str(":")?;
            f.write_str(port)?;
        }
        write_params(f, &self.params)?;
        write_headers(f, &self.headers)
    }
}
