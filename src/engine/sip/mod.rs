//! siaga's SIP message layer (RFC 3261 §7, §19, §20, §25, with RFC 4475's leniencies).
//!
//! Bytes are parsed into a zero-copy index ([`message`]): start line, header name/value
//! spans, body. Typed views of single headers ([`view`]) and URIs ([`uri`]) are parsed on
//! demand. The [`builder`] copies the text of headers it does not change byte for byte.

pub mod body;
pub mod builder;
pub mod error;
pub mod framing;
pub mod header;
pub mod message;
pub mod method;
pub mod uri;
pub mod view;

pub use builder::{MessageBuilder, response_to};
pub use error::ParseError;
pub use header::HeaderName;
pub use message::{HeaderField, Malformed, SipMessage};
pub use method::Method;
pub use uri::{Host, SipUri, TelUri, Uri, UriError, UrnUri};
