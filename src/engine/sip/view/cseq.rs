//! CSeq (RFC 3261 §20.16, §8.1.1.5), Max-Forwards (§20.22) and Expires (§20.19).

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::super::method::Method;

/// A CSeq value: a 32-bit sequence number and a method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (0 to 2³¹−1 for requests siaga sends; up to 2³²−1 accepted).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    ///
    /// Errors: a number over 2³²−1 (RFC 4475 §3.1.2.4: never wrap), a missing or
    /// non-token method.
    pub fn parse(value: &str) -> Result<CSeq, ParseError> {
        let h = HeaderName::CSeq;
        let mut parts = value.split_ascii_whitespace();
        let seq = parts.next().ok_or(ParseError::bad(h, "empty"))?;
        let seq =
            parse_decimal_u32(seq).ok_or(ParseError::bad(h, "sequence number out of range"))?;
        let method = parts
            .next()
            .and_then(|m| Method::from_token(m.as_bytes()))
            .ok_or(ParseError::bad(h, "malformed method"))?;
        if parts.next().is_some() {
            return Err(ParseError::bad(h, "junk after method"));
        }
        Ok(CSeq { seq, method })
    }
}

/// Parses Max-Forwards: `1*DIGIT` in 0–255 (RFC 3261 §20.22; `0068` is 68).
pub fn parse_max_forwards(value: &str) -> Result<u8, ParseError> {
    parse_decimal_u32(value.trim())
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(ParseError::bad(
            HeaderName::MaxForwards,
            "not a number in 0-255",
        ))
}

/// Parses a delta-seconds value (Expires, `expires=`): up to 2³²−1 seconds.
pub fn parse_delta_seconds(value: &str, header: HeaderName) -> Result<u32, ParseError> {
    parse_decimal_u32(value.trim()).ok_or(ParseError::bad(header, "delta-seconds out of range"))
}

/// A non-empty run of ASCII digits as u32; `None` if not digits or over 2³²−1.
pub fn parse_decimal_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_values() {
        assert_eq!(
            CSeq::parse("0009\r\n INVITE".replace("\r\n", "").as_str()),
            Ok(CSeq {
                seq: 9,
                method: Method::Invite
            })
        );
        assert_eq!(
            CSeq::parse("4294967295 OPTIONS").map(|c| c.seq),
            Ok(u32::MAX)
        );
        assert!(CSeq::parse("4294967296 OPTIONS").is_err());
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1 INVITE x").is_err());
    }

    #[test]
    fn max_forwards_range() {
        assert_eq!(parse_max_forwards("0068"), Ok(68));
        assert_eq!(parse_max_forwards("0"), Ok(0));
        assert_eq!(parse_max_forwards("255"), Ok(255));
        assert!(parse_max_forwards("300").is_err());
        assert!(parse_max_forwards("").is_err());
    }
}
