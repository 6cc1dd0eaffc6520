//! Media types: Content-Type (RFC 3261 §20.15) and Accept (§20.1) values.

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::scan::{Param, is_token, parse_params, split_commas};

/// A media type or range, e.g. `application/sdp` or `multipart/mixed;boundary=x`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType {
    /// The type, lower-cased (`application`; `*` in an Accept range).
    pub kind: String,
    /// The subtype, lower-cased (`sdp`; `*` in an Accept range).
    pub subtype: String,
    /// Parameters, in order.
    pub params: Vec<Param>,
}

impl MediaType {
    /// Parses `type "/" subtype *( ";" param )`.
    pub fn parse(value: &str, header: HeaderName) -> Result<MediaType, ParseError> {
        let value = value.trim();
        let end = value.find(';').unwrap_or(value.len());
        let (kind, subtype) = value[..end]
            .split_once('/')
            .ok_or(ParseError::bad(header, "malformed media type"))?;
        let (kind, subtype) = (kind.trim(), subtype.trim());
        if !is_token(kind) || !is_token(subtype) {
            return Err(ParseError::bad(header, "malformed media type"));
        }
        Ok(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: parse_params(&value[end..], header)?,
        })
    }

    /// Parses a comma-separated list (Accept). An empty value is an empty list.
    pub fn parse_list(value: &str, header: HeaderName) -> Result<Vec<MediaType>, ParseError> {
        if value.trim().is_empty() {
            return Ok(Vec::new());
        }
        split_commas(value, header)?
            .into_iter()
            .map(|v| MediaType::parse(v, header))
            .collect()
    }

    /// Whether this is `kind/subtype` (case-insensitive).
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// Whether this Accept range admits `kind/subtype` (`*/*`, `kind/*` or exact).
    pub fn admits(&self, kind: &str, subtype: &str) -> bool {
        (self.kind == "*" || self.kind.eq_ignore_ascii_case(kind))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_ranges() {
        let t = MediaType::parse(
            "multipart/mixed;boundary=7a9cbec02ceef655",
            HeaderName::ContentType,
        )
        .expect("valid");
        assert!(t.is("multipart", "mixed"));
        assert_eq!(t.params.len(), 1);
        let list = MediaType::parse_list(
            "application/sdp, application/pkcs7-mime,\r\n multipart/mixed, multipart/signed,\r\n message/sip, message/sipfrag".replace("\r\n", "").as_str(),
            HeaderName::Accept,
        )
        .expect("valid");
        assert_eq!(list.len(), 6);
        assert!(
            MediaType::parse("*/*", HeaderName::Accept)
                .expect("valid")
                .admits("application", "sdp")
        );
        assert!(MediaType::parse("sdp", HeaderName::ContentType).is_err());
    }
}
