//! URI parameters (`;name[=value]`, RFC 3261 §19.1.1 and RFC 3966 §3) and SIP URI headers
//! (`?name=value&...`, RFC 3261 §19.1.1), both kept as raw escaped text.

use super::UriError;
use super::escape::{Decoded, decode, is_header_char, is_param_char, validate};
use crate::engine::sip::HeaderName;

/// One URI parameter: raw (escaped) name and optional raw value, as written.
///
/// Names compare case-insensitively after decoding (`%6C%72` is `lr`); see
/// [`UriParam::is_named`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UriParam {
    name: String,
    value: Option<String>,
}

impl UriParam {
    /// A SIP URI parameter from raw text: `name` is `1*paramchar`, `value` (if any) is
    /// `1*paramchar` (RFC 3261 §25.1), escapes allowed.
    ///
    /// # Errors
    /// [`UriError::BadParam`] for an empty or invalid name or value,
    /// [`UriError::BadEscape`] for a broken escape.
    pub fn new(name: &str, value: Option<&str>) -> Result<Self, UriError> {
        if name.is_empty() || value.is_some_and(str::is_empty) {
            return Err(UriError::BadParam);
        }
        validate(name, is_param_char, UriError::BadParam)?;
        if let Some(value) = value {
            validate(value, is_param_char, UriError::BadParam)?;
        }
        Ok(Self::from_valid(name, value))
    }

    /// Builds a parameter from text already checked by a parser.
    pub(super) fn from_valid(name: &str, value: Option<&str>) -> Self {
        UriParam {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        }
    }

    /// The raw name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw value as written; `None` for a parameter without `=` (such as `lr`).
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The name with escapes decoded once.
    pub fn name_decoded(&self) -> Vec<u8> {
        decode(&self.name)
    }

    /// The value with escapes decoded once (`v%61lue%25%34%31` gives `value%41`).
    pub fn value_decoded(&self) -> Option<Vec<u8>> {
        self.value.as_deref().map(decode)
    }

    /// Whether the decoded name equals `name` (plain text), ignoring ASCII case.
    pub fn is_named(&self, name: &str) -> bool {
        Decoded::new(&self.name)
            .map(|b| b.to_ascii_lowercase())
            .eq(name.bytes().map(|b| b.to_ascii_lowercase()))
    }
}

/// Writes `;name[=value]` for each parameter.
pub(super) fn write_params(
    f: &mut std::fmt::Formatter<'_>,
    params: &[UriParam],
) -> std::fmt::Result {
    for p in params {
        f.write_str(";")?;
        f.write_str(&p.name)?;
        if let Some(v) = &p.value {
            f.write_str("=")?;
            f.write_str(v)?;
        }
    }
    Ok(())
}

/// One SIP URI header (`hname=hvalue`, RFC 3261 §19.1.1), raw name and raw value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UriHeader {
    name: String,
    value: String,
}

impl UriHeader {
    /// A URI header from raw text: `name` is `1*( hnv-unreserved / unreserved / escaped )`,
    /// `value` the same but may be empty (RFC 3261 §25.1).
    ///
    /// # Errors
    /// [`UriError::BadHeader`] for an empty or invalid name or an invalid value,
    /// [`UriError::BadEscape`] for a broken escape.
    pub fn new(name: &str, value: &str) -> Result<Self, UriError> {
        if name.is_empty() {
            return Err(UriError::BadHeader);
        }
        validate(name, is_header_char, UriError::BadHeader)?;
        validate(value, is_header_char, UriError::BadHeader)?;
        Ok(Self::from_valid(name, value))
    }

    pub(super) fn from_valid(name: &str, value: &str) -> Self {
        UriHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    /// The raw name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw value as written (`%3Csip:sip.example.com%3E`).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The name with escapes decoded once.
    pub fn name_decoded(&self) -> Vec<u8> {
        decode(&self.name)
    }

    /// The value with escapes decoded once (`<sip:sip.example.com>`).
    pub fn value_decoded(&self) -> Vec<u8> {
        decode(&self.value)
    }

    /// Whether the decoded name names the same header as `name`: compact and long forms
    /// of headers siaga knows are the same (`m` is `Contact`), others compare ignoring case.
    pub fn is_named(&self, name: &str) -> bool {
        same_header_name(&self.name_decoded(), name.as_bytes())
    }

    /// Whether two headers match for RFC 3261 §19.1.4: same header name (as
    /// [`UriHeader::is_named`]) and the same decoded value octets.
    pub(super) fn matches(&self, other: &UriHeader) -> bool {
        same_header_name(&self.name_decoded(), &other.name_decoded())
            && super::escape::eq_decoded(&self.value, &other.value)
    }
}

fn same_header_name(a: &[u8], b: &[u8]) -> bool {
    match (HeaderName::from_bytes(a), HeaderName::from_bytes(b)) {
        (HeaderName::Other, _) | (_, HeaderName::Other) => a.eq_ignore_ascii_case(b),
        (x, y) => x == y,
    }
}

/// Writes `?name=value&name=value` (nothing when there are no headers).
pub(super) fn write_headers(
    f: &mut std::fmt::Formatter<'_>,
    headers: &[UriHeader],
) -> std::fmt::Result {
    let mut sep = "?";
    for h in headers {
        f.write_str(sep)?;
        f.write_str(&h.name)?;
        f.write_str("=")?;
        f.write_str(&h.value)?;
        sep = "&";
    }
    Ok(())
}
