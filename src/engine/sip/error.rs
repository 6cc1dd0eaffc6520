//! Typed errors of the SIP message layer. Their `Display` text is short, ASCII, and fit to
//! be the reason phrase of a 400 response (RFC 3261 §21.4.1).

/// What is wrong with a message. Placeholder: completed with the message index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The datagram or frame held no message.
    #[error("Empty message")]
    Empty,
}
