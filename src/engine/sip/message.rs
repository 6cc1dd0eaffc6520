//! The parsed SIP message: a zero-copy index over the received bytes (RFC 3261 §7).

use super::error::ParseError;
use super::header::HeaderName;

/// The Content-Length of a header section (`head` runs up to and including the empty
/// line): `Ok(None)` when the header is absent.
///
/// Errors: [`ParseError::BadContentLength`] for a negative, non-numeric or absurd value,
/// [`ParseError::RepeatedContentLength`] when it appears twice.
pub fn content_length_of(head: &[u8]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if HeaderName::from_bytes(name) != HeaderName::ContentLength {
            continue;
        }
        if found.is_some() {
            return Err(ParseError::RepeatedContentLength);
        }
        found = Some(parse_content_length(trim(&line[colon + 1..]))?);
    }
    Ok(found)
}

/// Parses a Content-Length value (`1*DIGIT`, RFC 3261 §20.14).
pub(crate) fn parse_content_length(value: &[u8]) -> Result<usize, ParseError> {
    if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadContentLength);
    }
    Ok(value
        .iter()
        .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0')))
}

/// `s` without leading and trailing SP, HTAB, CR and LF.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}
