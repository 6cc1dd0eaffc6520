//! The Reason header (RFC 3326 §2): why a BYE or CANCEL was sent, as a SIP status code or
//! an ISDN (Q.850) cause. siaga reads it on a BYE from the operator side to tell an
//! operator hanging up (no Reason, or normal clearing) from a proxy or SBC tearing the leg
//! down (a failure cause), which re-queues the caller.

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::super::message::SipMessage;
use super::cseq::parse_decimal_u32;
use super::scan::{find_param, is_token, parse_params, split_commas, unquote};
use std::fmt;

/// The protocol a Reason value's cause belongs to (RFC 3326 §2: `protocol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReasonProtocol {
    /// `SIP`: the cause is a SIP status code (RFC 3261 §21).
    Sip,
    /// `Q.850`: the cause is an ITU-T Q.850 cause value (ISDN, via a gateway).
    Q850,
    /// Another protocol token, as written.
    Other(String),
}

/// One reason-value: `protocol *(SEMI reason-params)` (RFC 3326 §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The protocol.
    pub protocol: ReasonProtocol,
    /// `cause=`: a SIP status code or a Q.850 cause value; `None` when absent.
    pub cause: Option<u16>,
    /// `text=`, unquoted; `None` when absent.
    pub text: Option<String>,
}

/// Q.850 cause 16, normal call clearing: someone hung up.
const Q850_NORMAL_CLEARING: u16 = 16;
/// Q.850 cause 31, normal, unspecified.
const Q850_NORMAL_UNSPECIFIED: u16 = 31;

impl Reason {
    /// Parses one reason-value. The protocol is compared without case.
    ///
    /// Errors: [`ParseError::BadHeader`] for a protocol that is not a token, malformed
    /// parameters, or a `cause` that is not a number up to 65535.
    pub fn parse(value: &str) -> Result<Reason, ParseError> {
        let h = HeaderName::Reason;
        let value = value.trim();
        let end = value.find(';').unwrap_or(value.len());
        let protocol = value[..end].trim();
        if !is_token(protocol) {
            return Err(ParseError::bad(h, "malformed protocol"));
        }
        let params = parse_params(&value[end..], h)?;
        let cause = match find_param(&params, "cause") {
            None => None,
            Some(raw) => Some(
                raw.and_then(parse_decimal_u32)
                    .and_then(|c| u16::try_from(c).ok())
                    .ok_or(ParseError::bad(h, "cause is not a number"))?,
            ),
        };
        let text = find_param(&params, "text")
            .flatten()
            .map(|t| unquote(t).unwrap_or_else(|| t.to_owned()));
        let protocol = if protocol.eq_ignore_ascii_case("SIP") {
            ReasonProtocol::Sip
        } else if protocol.eq_ignore_ascii_case("Q.850") {
            ReasonProtocol::Q850
        } else {
            ReasonProtocol::Other(protocol.to_owned())
        };
        Ok(Reason {
            protocol,
            cause,
            text,
        })
    }

    /// Parses a comma-separated list of reason-values (one Reason field).
    ///
    /// Errors: those of [`Reason::parse`], an unterminated quoted string.
    pub fn parse_list(value: &str) -> Result<Vec<Reason>, ParseError> {
        if value.trim().is_empty() {
            return Ok(Vec::new());
        }
        split_commas(value, HeaderName::Reason)?
            .into_iter()
            .map(Reason::parse)
            .collect()
    }

    /// Whether the cause says the session failed rather than ended normally: `SIP` with
    /// 408 (Request Timeout) or a 5xx/6xx status, or `Q.850` with any cause but 16
    /// (normal call clearing) and 31 (normal, unspecified). Without a cause, or for
    /// another protocol, it is not a failure.
    pub fn is_failure(&self) -> bool {
        match (&self.protocol, self.cause) {
            (ReasonProtocol::Sip, Some(status)) => status == 408 || status >= 500,
            (ReasonProtocol::Q850, Some(cause)) => {
                !matches!(cause, Q850_NORMAL_CLEARING | Q850_NORMAL_UNSPECIFIED)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Reason {
    /// `SIP;cause=503`, as for a log line or a call event (the text left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.protocol {
            ReasonProtocol::Sip => f.write_str("SIP")?,
            ReasonProtocol::Q850 => f.write_str("Q.850")?,
            ReasonProtocol::Other(p) => f.write_str(p)?,
        }
        match self.cause {
            Some(cause) => write!(f, ";cause={cause}"),
            None => Ok(()),
        }
    }
}

impl SipMessage {
    /// Every Reason value across every Reason field (RFC 3326 §2), in order; empty when
    /// there is none.
    ///
    /// Errors: a malformed value (see [`Reason::parse`]).
    pub fn reasons(&self) -> Result<Vec<Reason>, ParseError> {
        let mut out = Vec::new();
        for field in self.headers_named(HeaderName::Reason) {
            out.extend(Reason::parse_list(&field.value_str()?)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol_cause_and_text() {
        let r = Reason::parse("SIP ;cause=503 ;text=\"Service Unavailable\"").expect("valid");
        assert_eq!(r.protocol, ReasonProtocol::Sip);
        assert_eq!(r.cause, Some(503));
        assert_eq!(r.text.as_deref(), Some("Service Unavailable"));
        assert_eq!(r.to_string(), "SIP;cause=503");
        let q = Reason::parse("q.850;cause=16").expect("valid");
        assert_eq!((q.protocol, q.cause), (ReasonProtocol::Q850, Some(16)));
        let other = Reason::parse("preemption ;cause=1").expect("valid");
        assert_eq!(other.protocol, ReasonProtocol::Other("preemption".into()));
    }

    #[test]
    fn lists_split_at_commas_outside_quotes() {
        let list =
            Reason::parse_list("Q.850;cause=41;text=\"a, b\", SIP;cause=200").expect("valid");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].text.as_deref(), Some("a, b"));
        assert_eq!(list[1].cause, Some(200));
        assert_eq!(Reason::parse_list("  "), Ok(Vec::new()));
    }

    #[test]
    fn failures_are_408_5xx_6xx_and_abnormal_q850_causes() {
        let failure = |v: &str| Reason::parse(v).expect("valid").is_failure();
        assert!(failure("SIP;cause=408"));
        assert!(failure("SIP;cause=500"));
        assert!(failure("SIP;cause=503"));
        assert!(failure("SIP;cause=600"));
        assert!(!failure("SIP;cause=200"));
        assert!(!failure("SIP;cause=487"));
        assert!(!failure("SIP"));
        assert!(!failure("Q.850;cause=16"));
        assert!(!failure("Q.850;cause=31"));
        assert!(failure("Q.850;cause=41"));
        assert!(failure("Q.850;cause=102"));
        assert!(!failure("Q.850"));
        assert!(!failure("X-Vendor;cause=503"));
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(Reason::parse("").is_err());
        assert!(Reason::parse("SIP;cause=abc").is_err());
        assert!(Reason::parse("SIP;cause=").is_err());
        assert!(Reason::parse("SIP;cause=70000").is_err());
        assert!(Reason::parse("S I P;cause=1").is_err());
        assert!(Reason::parse_list("SIP;text=\"open").is_err());
    }
}
