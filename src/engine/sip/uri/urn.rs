//! `urn:` URIs (RFC 8141 §2): namespace identifier and namespace-specific string, and the
//! emergency service URNs of RFC 5031 (`urn:service:sos`, `urn:service:sos.fire`, ...).

use std::fmt;

use super::escape::Cursor;
use super::{Mode, UriError};

/// A `urn:` URI (RFC 8141): `urn:<nid>:<nss>` plus optional r-, q- and f-components.
///
/// Kept as written; [`Display`](fmt::Display) writes it back and `==` compares the text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrnUri {
    /// The scheme as written (`urn`, `URN`, ...).
    scheme: String,
    nid: String,
    nss: String,
    /// `?+r-component`, `?=q-component` and `#f-component` as written, or empty.
    components: String,
}

impl UrnUri {
    /// Parses a whole string as a `urn:` URI.
    ///
    /// # Errors
    /// [`UriError::NotUrn`] for another scheme, else as [`super::Uri::parse`].
    pub fn parse(s: &str) -> Result<Self, UriError> {
        match super::Uri::parse(s)? {
            super::Uri::Urn(uri) => Ok(uri),
            _ => Err(UriError::NotUrn),
        }
    }

    /// A URN from its namespace identifier and namespace-specific string (raw text).
    ///
    /// # Errors
    /// [`UriError::BadUrn`] if either does not follow RFC 8141 §2, [`UriError::BadEscape`]
    /// for a broken escape in `nss`.
    pub fn new(nid: &str, nss: &str) -> Result<Self, UriError> {
        let text = format!("urn:{nid}:{nss}");
        let mut cur = Cursor::new(&text, 4);
        let uri = parse_urn(&mut cur, "urn", Mode::Full)?;
        if cur.is_end() && uri.components.is_empty() && uri.nid == nid {
            Ok(uri)
        } else {
            Err(UriError::BadUrn)
        }
    }

    /// `urn:service:sos`, the generic emergency service URN (RFC 5031 §4.2).
    pub fn service_sos() -> Self {
        UrnUri {
            scheme: "urn".to_owned(),
            nid: "service".to_owned(),
            nss: "sos".to_owned(),
            components: String::new(),
        }
    }

    /// The namespace identifier as written (compare ignoring ASCII case).
    pub fn nid(&self) -> &str {
        &self.nid
    }

    /// The namespace-specific string as written.
    pub fn nss(&self) -> &str {
        &self.nss
    }

    /// The r-, q- and f-components as written (`?+...`, `?=...`, `#...`), or `""`.
    pub fn components(&self) -> &str {
        &self.components
    }

    /// Whether this is a service URN (`urn:service:...`, RFC 5031).
    pub fn is_service(&self) -> bool {
        self.nid.eq_ignore_ascii_case("service")
    }

    /// Whether this is the emergency service URN `urn:service:sos` or one of its
    /// sub-services such as `urn:service:sos.fire` (RFC 5031 §4.2), ignoring ASCII case.
    pub fn is_service_sos(&self) -> bool {
        if !self.is_service() {
            return false;
        }
        let nss = self.nss.as_bytes();
        match (nss.get(..3), nss.get(3)) {
            (Some(sos), None) => sos.eq_ignore_ascii_case(b"sos"),
            (Some(sos), Some(b'.')) => sos.eq_ignore_ascii_case(b"sos") && nss.len() > 4,
            _ => false,
        }
    }
}

/// RFC 3986 `pchar` (`unreserved / pct-encoded / sub-delims / ":" / "@"`) without the
/// escapes.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn is_nss_char(b: u8) -> bool {
    is_pchar(b) || b == b'/'
}

/// NSS characters in addr-spec form, where `;` and `,` end the URI (RFC 3261 §20).
fn is_nss_char_addr_spec(b: u8) -> bool {
    is_nss_char(b) && b != b';' && b != b','
}

fn is_component_char(b: u8) -> bool {
    is_nss_char(b) || b == b'?' || b == b'#'
}

/// Parses a `urn:` URI after its scheme.
pub(super) fn parse_urn(
    cur: &mut Cursor<'_>,
    scheme: &str,
    mode: Mode,
) -> Result<UrnUri, UriError> {
    // NID = (alphanum) 0*30(ldh) (alphanum)
    let nid = cur.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !(2..=32).contains(&nid.len())
        || nid.starts_with('-')
        || nid.ends_with('-')
        || !cur.eat(b':')
    {
        return Err(UriError::BadUrn);
    }
    let nss = match mode {
        Mode::Full => cur.take_escaped(is_nss_char)?,
        Mode::AddrSpec => cur.take_escaped(is_nss_char_addr_spec)?,
    };
    if nss.is_empty() || nss.starts_with('/') {
        return Err(UriError::BadUrn);
    }
    let components = match (mode, cur.peek()) {
        (Mode::Full, Some(b'?' | b'#')) => {
            let c = cur.take_escaped(is_component_char)?;
            let ok = c.starts_with("?+") || c.starts_with("?=") || c.starts_with('#');
            if !ok || c.matches('#').count() > 1 || c.len() < 2 {
                return Err(UriError::BadUrn);
            }
            c
        }
        _ => "",
    };
    Ok(UrnUri {
        scheme: scheme.to_owned(),
        nid: nid.to_owned(),
        nss: nss.to_owned(),
        components: components.to_owned(),
    })
}

impl fmt::Display for UrnUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}{}",
            self.scheme, self.nid, self.nss, self.components
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Uri;
    use super::*;

    #[test]
    fn service_sos() {
        for s in [
            "urn:service:sos",
            "URN:Service:SOS",
            "urn:service:sos.fire",
            "urn:service:sos.ambulance",
            "urn:service:sos.police",
            "urn:service:SOS.Animal-Control",
        ] {
            let u = UrnUri::parse(s).unwrap();
            assert!(u.is_service_sos(), "{s}");
            assert_eq!(u.to_string(), s);
        }
        for s in [
            "urn:service:sos.",
            "urn:service:sosx",
            "urn:service:counseling",
            "urn:services:sos",
            "urn:ietf:sos",
        ] {
            assert!(!UrnUri::parse(s).unwrap().is_service_sos(), "{s}");
        }
        assert!(UrnUri::service_sos().is_service_sos());
        assert_eq!(UrnUri::service_sos().to_string(), "urn:service:sos");
        assert_eq!(
            UrnUri::new("service", "sos.fire").unwrap().to_string(),
            "urn:service:sos.fire"
        );
    }

    #[test]
    fn urn_grammar() {
        let u = UrnUri::parse("urn:example:a/b%2Fc?+r?=q#f").unwrap();
        assert_eq!(
            (u.nid(), u.nss(), u.components()),
            ("example", "a/b%2Fc", "?+r?=q#f")
        );
        assert_eq!(u.to_string(), "urn:example:a/b%2Fc?+r?=q#f");
        for bad in [
            "urn:",
            "urn:x:abc",
            "urn:-ab:c",
            "urn:ab",
            "urn:ab:",
            "urn:ab:/c",
            "urn:ab:c?x",
            "urn:ab:c#a#b",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Uri::parse("urn:ab:%zz"), Err(UriError::BadEscape));
        assert_eq!(UrnUri::new("service", "sos?+x"), Err(UriError::BadUrn));
        assert_eq!(UrnUri::parse("sip:a@b"), Err(UriError::NotUrn));
    }
}
