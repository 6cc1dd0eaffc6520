//! name-addr / addr-spec values with header parameters (RFC 3261 §20.10, §20.20, §20.39,
//! §25.1): From, To, Contact, Route, Record-Route, P-Asserted-Identity (RFC 3325).
//!
//! Policy for RFC 4475's choice rows: spaces inside `< >` (§3.1.2.14) and unquoted
//! non-token display names (§3.1.2.15) are rejected; a display name running straight into
//! `<` (§3.1.1.6) is accepted.

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::super::method::is_token_char;
use super::super::uri::Uri;
use super::scan::{Param, find_param, parse_params, skip_quoted, skip_ws, split_commas, unquote};

/// An address with its header parameters, e.g. `"Alice" <sip:alice@example.com>;tag=1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted (quoted-pairs resolved), or tokens joined by one SP.
    pub display_name: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Whether the URI was written in `< >` (name-addr form).
    pub bracketed: bool,
    /// Header parameters after the address (`tag`, `expires`, `q`, …), in order.
    pub params: Vec<Param>,
}

impl NameAddr {
    /// Parses one value (no commas split).
    ///
    /// Errors: [`ParseError::BadHeader`] naming `header` and the part that is wrong.
    pub fn parse(value: &str, header: HeaderName) -> Result<NameAddr, ParseError> {
        let b = value.as_bytes();
        let i = skip_ws(b, 0);
        // Display name: a quoted string, or tokens up to `<`.
        let (display_name, lt) = if b.get(i) == Some(&b'"') {
            let end =
                skip_quoted(b, i).ok_or(ParseError::bad(header, "unterminated quoted string"))?;
            let name =
                unquote(&value[i..end]).ok_or(ParseError::bad(header, "malformed display name"))?;
            let lt = skip_ws(b, end);
            if b.get(lt) != Some(&b'<') {
                return Err(ParseError::bad(header, "display name without <URI>"));
            }
            (Some(name), Some(lt))
        } else {
            match b[i..].iter().position(|&c| c == b'<') {
                Some(p) => {
                    let words = value[i..i + p].split_ascii_whitespace();
                    let words: Vec<&str> = words.collect();
                    if words.iter().any(|w| !w.bytes().all(is_token_char)) {
                        return Err(ParseError::bad(
                            header,
                            "display name is not a token or quoted string",
                        ));
                    }
                    let name = (!words.is_empty()).then(|| words.join(" "));
                    (name, Some(i + p))
                }
                None => (None, None),
            }
        };
        let (uri, after, bracketed) = match lt {
            Some(lt) => {
                let gt = b[lt..]
                    .iter()
                    .position(|&c| c == b'>')
                    .map(|p| lt + p)
                    .ok_or(ParseError::bad(header, "unterminated <"))?;
                let uri = Uri::parse(&value[lt + 1..gt])
                    .map_err(|_| ParseError::bad(header, "malformed URI"))?;
                (uri, gt + 1, true)
            }
            None => {
                let (uri, used) = Uri::parse_addr_spec_prefix(&value[i..])
                    .map_err(|_| ParseError::bad(header, "malformed URI"))?;
                (uri, i + used, false)
            }
        };
        let params = parse_params(&value[after..], header)?;
        Ok(NameAddr {
            display_name,
            uri,
            bracketed,
            params,
        })
    }

    /// Parses one From or To value as a UAS may when it chooses to be lenient (RFC 3261
    /// §8.2: a UAS takes a request it can make sense of): the strict parse when it
    /// succeeds, else what can be salvaged:
    /// - the display name is whatever precedes the first `<` outside a quoted string,
    ///   trimmed and unquoted when quoted (unquoted UTF-8, commas, `°` … kept as written);
    /// - the URI is the text inside `< >` (or before the first `;` without brackets) with
    ///   whitespace removed; one that still does not parse becomes
    ///   `sip:<user>@<host>` with the user part's illegal characters %-escaped (the host
    ///   `unknown.invalid` when it cannot be read, RFC 6761 §6.4), or, without any user
    ///   part, `sip:anonymous@anonymous.invalid` (RFC 3323 §4.1.1.3: identity unknown);
    /// - the header parameters as strictly parsed, or else only `tag`, searched as text.
    ///
    /// Only for requests siaga chose to be lenient with (an emergency INVITE and the
    /// requests of its call); everything else keeps [`NameAddr::parse`]'s policy, so RFC
    /// 4475's §3.1.2.14/15 messages still draw 400.
    ///
    /// Errors: [`ParseError::BadHeader`] for a `<` with no `>` after it (where the URI
    /// ends, and so where the tag is, cannot be told).
    pub fn parse_lenient(value: &str, header: HeaderName) -> Result<NameAddr, ParseError> {
        if let Ok(strict) = NameAddr::parse(value, header) {
            return Ok(strict);
        }
        let b = value.as_bytes();
        let i = skip_ws(b, 0);
        let mut at = i;
        let lt = loop {
            match b.get(at) {
                None => break None,
                Some(b'<') => break Some(at),
                Some(b'"') => at = skip_quoted(b, at).unwrap_or(at + 1),
                Some(_) => at += 1,
            }
        };
        let (display_name, uri_text, after, bracketed) = match lt {
            Some(lt) => {
                let gt = b[lt..]
                    .iter()
                    .position(|&c| c == b'>')
                    .map(|p| lt + p)
                    .ok_or(ParseError::bad(header, "unterminated <"))?;
                let raw = value[i..lt].trim();
                let name = unquote(raw).unwrap_or_else(|| raw.trim_matches('"').to_owned());
                let name = (!name.is_empty()).then_some(name);
                (name, &value[lt + 1..gt], gt + 1, true)
            }
            None => {
                let end = value[i..].find(';').map_or(value.len(), |p| i + p);
                (None, &value[i..end], end, false)
            }
        };
        let compact: String = uri_text.split_whitespace().collect();
        let uri = Uri::parse(&compact).unwrap_or_else(|_| salvage_uri(&compact));
        let rest = &value[after..];
        let params = parse_params(rest, header).unwrap_or_else(|_| salvage_tag(rest));
        Ok(NameAddr {
            display_name,
            uri,
            bracketed,
            params,
        })
    }

    /// Parses a comma-separated list of values.
    pub fn parse_list(value: &str, header: HeaderName) -> Result<Vec<NameAddr>, ParseError> {
        split_commas(value, header)?
            .into_iter()
            .map(|v| {
                if v.is_empty() {
                    Err(ParseError::bad(header, "empty value"))
                } else {
                    NameAddr::parse(v, header)
                }
            })
            .collect()
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").flatten()
    }

    /// A header parameter by name: `None` absent, `Some(None)` without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Contact `expires` parameter in seconds (RFC 3261 §20.10).
    ///
    /// Errors when present but not a number in 0–2³²−1 (RFC 4475 §3.1.2.4).
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.param("expires") {
            None => Ok(None),
            Some(v) => v
                .and_then(super::cseq::parse_decimal_u32)
                .map(Some)
                .ok_or(ParseError::bad(HeaderName::Contact, "expires out of range")),
        }
    }

    /// Contact `q` parameter in thousandths (0–1000, RFC 3261 §20.10); `None` absent.
    ///
    /// Errors when present but not a qvalue.
    pub fn q_millis(&self) -> Result<Option<u16>, ParseError> {
        let Some(v) = self.param("q") else {
            return Ok(None);
        };
        let bad = ParseError::bad(HeaderName::Contact, "malformed q");
        let v = v.ok_or(bad.clone())?;
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if !(int == "0" || int == "1")
            || frac.len() > 3
            || !frac.bytes().all(|c| c.is_ascii_digit())
        {
            return Err(bad);
        }
        let frac_millis = frac
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(3)
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let q = if int == "1" {
            1000 + frac_millis
        } else {
            frac_millis
        };
        if q > 1000 {
            return Err(bad);
        }
        Ok(Some(q))
    }
}

/// A URI for text that is not one (see [`NameAddr::parse_lenient`]): its user part kept
/// (escaped), its host if readable.
fn salvage_uri(text: &str) -> Uri {
    use super::super::uri::{Component, percent_encode};
    let anonymous =
        || Uri::parse("sip:anonymous@anonymous.invalid").expect("a literal valid SIP URI");
    let rest = match text.split_once(':') {
        Some((scheme, rest))
            if ["sip", "sips", "tel"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme)) =>
        {
            rest
        }
        _ => text,
    };
    let (user, host) = match rest.split_once('@') {
        Some((user, host)) => (user, host),
        None => (rest.split(';').next().unwrap_or_default(), ""),
    };
    // A user's own `;params` (RFC 4475 §3.1.1.9) are kept; a password is not a number.
    let user = user.split(':').next().unwrap_or_default();
    if user.is_empty() {
        return anonymous();
    }
    let user = percent_encode(user.as_bytes(), Component::User);
    let host = host.split([';', '?', '>']).next().unwrap_or_default();
    Uri::parse(&format!("sip:{user}@{host}"))
        .or_else(|_| Uri::parse(&format!("sip:{user}@unknown.invalid")))
        .unwrap_or_else(|_| anonymous())
}

/// The `tag` parameter of header parameters that do not parse, searched as text.
fn salvage_tag(rest: &str) -> Vec<Param> {
    let lower = rest.to_ascii_lowercase();
    let Some(start) = lower.find(";tag=").or_else(|| lower.find("tag=")) else {
        return Vec::new();
    };
    let from = rest[start..]
        .find('=')
        .map_or(rest.len(), |p| start + p + 1);
    let value: String = rest[from..]
        .trim_start()
        .chars()
        .take_while(|&c| c.is_ascii() && is_token_char(c as u8))
        .collect();
    if value.is_empty() {
        return Vec::new();
    }
    vec![Param {
        name: "tag".to_owned(),
        value: Some(value),
    }]
}

/// The value of the Contact header(s) of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (RFC 3261 §10.2.2, only in REGISTER with Expires 0).
    Wildcard,
    /// Zero or more addresses.
    List(Vec<NameAddr>),
}

/// Whether a display name / URI value is the Contact wildcard `*`.
pub(crate) fn is_wildcard(value: &str) -> bool {
    value.trim() == "*"
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: HeaderName = HeaderName::From;

    #[test]
    fn quoted_display_name_and_tag_with_lws() {
        let v = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>    ;    tag    =    98asjd8",
            F,
        )
        .expect("valid");
        assert_eq!(v.display_name.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(v.uri.to_string(), "sip:jdrosen@example.com");
        assert_eq!(v.tag(), Some("98asjd8"));
    }

    #[test]
    fn token_display_name_and_no_space_before_angle() {
        let v = NameAddr::parse("caller<sip:caller@example.com>;tag=323", F).expect("valid");
        assert_eq!(v.display_name.as_deref(), Some("caller"));
        assert_eq!(v.tag(), Some("323"));
        let v = NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:x@example.com>", F)
            .expect("valid");
        assert_eq!(
            v.display_name.as_deref(),
            Some("token1~` token2'+_ token3*%!.-")
        );
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let v = NameAddr::parse(
            "sip:+19725552222@gw1.example.net;unknownparam",
            HeaderName::Contact,
        )
        .expect("valid");
        assert!(!v.bracketed);
        assert_eq!(v.uri.to_string(), "sip:+19725552222@gw1.example.net");
        assert_eq!(v.param("unknownparam"), Some(None));
    }

    #[test]
    fn rejected_forms() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "<sip:x@example.com",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "",
        ] {
            assert!(NameAddr::parse(bad, F).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_parse_salvages_display_names_uris_and_tags() {
        // Strict still refuses these (RFC 4475 §3.1.2.15); lenient reads them.
        let v = "Budi Santoso° <sip:0812@x.example>;tag=1";
        assert!(NameAddr::parse(v, F).is_err());
        let na = NameAddr::parse_lenient(v, F).expect("salvaged");
        assert_eq!(na.display_name.as_deref(), Some("Budi Santoso°"));
        assert_eq!(na.uri.to_string(), "sip:0812@x.example");
        assert_eq!(na.tag(), Some("1"));
        let na = NameAddr::parse_lenient("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", F)
            .expect("salvaged");
        assert_eq!(na.display_name.as_deref(), Some("Bell, Alexander"));
        assert_eq!(na.tag(), Some("43"));
        // A URI with spaces and an illegal character: the user part escaped.
        let na =
            NameAddr::parse_lenient("<sip:0812 555#1@10.0.0.1 >;tag=a b", F).expect("salvaged");
        assert_eq!(na.uri.to_string(), "sip:0812555%231@10.0.0.1");
        assert_eq!(na.tag(), Some("a"));
        // An unreadable host: the number kept at unknown.invalid.
        let na = NameAddr::parse_lenient("\"X\" <sip:+62 811@[bad>;tag=t", F).expect("salvaged");
        assert_eq!(na.uri.to_string(), "sip:+62811@unknown.invalid");
        assert_eq!(na.display_name.as_deref(), Some("X"));
        // Nothing of a user: anonymous (RFC 3323).
        let na = NameAddr::parse_lenient("Someone <garbage>;;tag=9;;", F).expect("salvaged");
        assert_eq!(na.uri.to_string(), "sip:garbage@unknown.invalid");
        assert_eq!(na.tag(), Some("9"));
        let na = NameAddr::parse_lenient("Someone <sip:@>;tag=9", F).expect("salvaged");
        assert_eq!(na.uri.to_string(), "sip:anonymous@anonymous.invalid");
        // A well-formed value reads as strictly.
        let ok = "\"A\" <sip:a@b>;tag=x";
        assert_eq!(NameAddr::parse_lenient(ok, F), NameAddr::parse(ok, F));
        // No `>`: where the URI ends cannot be told.
        assert!(NameAddr::parse_lenient("Budi <sip:0812@x;tag=1", F).is_err());
        // No tag found: none.
        let na = NameAddr::parse_lenient("Budi° <sip:0812@x>", F).expect("salvaged");
        assert_eq!(na.tag(), None);
    }

    #[test]
    fn contact_q_and_expires() {
        let v =
            NameAddr::parse("<sip:a@b>;q=0.33;expires=3600", HeaderName::Contact).expect("valid");
        assert_eq!(v.q_millis(), Ok(Some(330)));
        assert_eq!(v.expires(), Ok(Some(3600)));
        let v = NameAddr::parse("<sip:a@b>;expires=280297596632815", HeaderName::Contact)
            .expect("valid");
        assert!(v.expires().is_err());
        let v = NameAddr::parse("<sip:a@b>;q=1.5", HeaderName::Contact).expect("valid");
        assert!(v.q_millis().is_err());
    }
}
