//! Typed errors of the SIP message layer. Their `Display` text is short, ASCII, and fit to
//! be the reason phrase of a 400 response (RFC 3261 §21.4.1): it says what is wrong.

use super::header::HeaderName;

/// What is wrong with a message or one of its headers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The datagram or frame held no message.
    #[error("Empty message")]
    Empty,
    /// The message (or its header section) is larger than the limit, in bytes.
    #[error("Message too large (limit {limit} bytes)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No empty line ends the header section.
    #[error("Header section not terminated")]
    UnterminatedHeaders,
    /// The first line is neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
    #[error("Malformed start line")]
    BadStartLine,
    /// The method is not a token (RFC 3261 §25.1).
    #[error("Malformed method")]
    BadMethod,
    /// The Request-URI does not parse (RFC 3261 §19.1, §25.1).
    #[error("Malformed Request-URI")]
    BadRequestUri,
    /// The version is not `SIP/<digits>.<digits>` (RFC 3261 §7.1).
    #[error("Malformed SIP version")]
    BadVersion,
    /// The status code is not three digits in 100–699 (RFC 3261 §7.2, §21).
    #[error("Malformed status code")]
    BadStatusCode,
    /// A header line has no colon or an empty or non-token name (RFC 3261 §7.3).
    #[error("Malformed header line")]
    BadHeaderLine,
    /// A header section starts with a continuation line.
    #[error("Continuation line without a header")]
    OrphanContinuation,
    /// Content-Length is absent where it is required (stream transports, RFC 3261 §18.3).
    #[error("Missing Content-Length")]
    MissingContentLength,
    /// Content-Length is negative, not a number, or too large (RFC 4475 §3.1.2.3).
    #[error("Invalid Content-Length")]
    BadContentLength,
    /// Content-Length appears more than once (RFC 4475 §3.3.9).
    #[error("Repeated Content-Length")]
    RepeatedContentLength,
    /// Fewer body bytes arrived than Content-Length declares (RFC 4475 §3.1.2.2).
    #[error("Body shorter than Content-Length")]
    TruncatedBody,
    /// A mandatory header is missing (RFC 3261 §8.1.1).
    #[error("Missing {0} header")]
    MissingHeader(HeaderName),
    /// A header that takes one value appears more than once (RFC 4475 §3.3.8).
    #[error("Repeated {0} header")]
    RepeatedHeader(HeaderName),
    /// A header's value does not follow its grammar; `what` says which part.
    #[error("Malformed {header} header: {what}")]
    BadHeader {
        /// The header.
        header: HeaderName,
        /// Which part is wrong, e.g. "sequence number out of range".
        what: &'static str,
    },
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
}

impl ParseError {
    /// Shorthand for [`ParseError::BadHeader`].
    pub const fn bad(header: HeaderName, what: &'static str) -> Self {
        ParseError::BadHeader { header, what }
    }
}
