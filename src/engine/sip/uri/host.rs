//! The host of a SIP URI (RFC 3261 §25.1 `host`): a domain name, an IPv4 address or an IPv6
//! reference in brackets (RFC 5118), and host comparison for RFC 3261 §19.1.4.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::UriError;
use super::escape::Cursor;

/// A SIP URI host (RFC 3261 §25.1).
///
/// `Domain` holds the name as written (case kept, optional trailing dot kept); `Ipv6` is
/// written in `[...]` (RFC 5118 §4.1; a bare IPv6 address is not a host).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, `*( domainlabel "." ) toplabel [ "." ]`.
    Domain(String),
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address, written as an IPv6 reference `[...]`; IPv4-mapped forms such as
    /// `[::ffff:192.0.2.1]` are accepted (RFC 5118 §4.9).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses a whole string as a host: `example.com`, `192.0.2.1` or `[2001:db8::10]`.
    ///
    /// # Errors
    /// [`UriError::BadHost`] for a malformed name or address, [`UriError::BadIpv6`] for a
    /// malformed or unterminated IPv6 reference.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        let mut cur = Cursor::new(s, 0);
        let (host, _) = parse_host(&mut cur)?;
        if cur.is_end() {
            Ok(host)
        } else {
            Err(UriError::BadHost)
        }
    }

    /// Whether two hosts are the same for RFC 3261 §19.1.4: names compare ignoring ASCII
    /// case, addresses by value (so `[2001:db8::9:01]` matches `[2001:DB8::9:1]`, RFC 5118).
    /// A name never matches an address, and an IPv4 address never matches an IPv6 one (no
    /// DNS is consulted).
    pub fn matches(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            _ => false,
        }
    }

    /// The address of an IP-literal host; `None` for a name (siaga resolves none).
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Host::Ipv4(ip) => Some((*ip).into()),
            Host::Ipv6(ip) => Some((*ip).into()),
            Host::Domain(_) => None,
        }
    }

    /// Checks that a `Domain` holds a valid host name (the address variants always do).
    pub(super) fn check(&self) -> Result<(), UriError> {
        match self {
            Host::Domain(name) if !is_hostname(name) => Err(UriError::BadHost),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ipv4(addr) => write!(f, "{addr}"),
            Host::Ipv6(addr) => write!(f, "[{addr}]"),
        }
    }
}

/// Parses a host at the cursor; returns it and its raw text.
pub(super) fn parse_host<'a>(cur: &mut Cursor<'a>) -> Result<(Host, &'a str), UriError> {
    let start = cur.pos();
    if cur.eat(b'[') {
        let inner = cur.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !cur.eat(b']') {
            return Err(UriError::BadIpv6);
        }
        let addr = inner.parse::<Ipv6Addr>().map_err(|_| UriError::BadIpv6)?;
        return Ok((Host::Ipv6(addr), cur.slice(start, cur.pos())));
    }
    let raw = cur.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if raw.is_empty() {
        return Err(UriError::BadHost);
    }
    if raw.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_ipv4(raw)
            .map(|a| (Host::Ipv4(a), raw))
            .ok_or(UriError::BadHost);
    }
    if is_hostname(raw) {
        Ok((Host::Domain(raw.to_owned()), raw))
    } else {
        Err(UriError::BadHost)
    }
}

/// `IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`, each at most 255
/// (leading zeros allowed, as the grammar allows them).
fn parse_ipv4(raw: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = raw.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]` (RFC 3261 §25.1): labels of
/// alphanumerics and inner hyphens; the last label starts with a letter.
pub(super) fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let mut last = "";
    for label in s.split('.') {
        let ok = !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return false;
        }
        last = label;
    }
    last.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("Example.COM."),
            Ok(Host::Domain("Example.COM.".into()))
        );
        assert_eq!(
            Host::parse("192.000.2.1"),
            Ok(Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(
            Host::parse("[::ffff:192.0.2.1]"),
            Ok(Host::Ipv6("::ffff:192.0.2.1".parse().unwrap()))
        );
        for bad in [
            "",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "a..b",
            "-a.com",
            "a-.com",
            "com.123",
        ] {
            assert_eq!(Host::parse(bad), Err(UriError::BadHost), "{bad:?}");
        }
        for bad in [
            "[2001:db8::10",
            "[2001:db8::10:5070",
            "[::g]",
            "[]",
            "[1.2.3.4]",
        ] {
            assert_eq!(Host::parse(bad), Err(UriError::BadIpv6), "{bad:?}");
        }
        assert!(
            Host::parse("[2001:db8::9:01]")
                .unwrap()
                .matches(&Host::parse("[2001:DB8::9:1]").unwrap())
        );
        assert!(
            !Host::parse("192.0.2.1")
                .unwrap()
                .matches(&Host::parse("[::ffff:192.0.2.1]").unwrap())
        );
    }
}
