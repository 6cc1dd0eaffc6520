//! Stream framing for SIP over TCP (RFC 3261 §18.3): where one message ends in a byte
//! stream. Pure: the tokio shell calls [`next_stream_frame`] on its read buffer.

use super::error::ParseError;

/// Largest SIP message siaga accepts on a stream, in bytes (64 KiB).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// What the front of a stream buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrame {
    /// The first `len` bytes are one whole message (headers and body).
    Message {
        /// Length in bytes.
        len: usize,
    },
    /// The first `len` bytes are CRLFs between messages (RFC 5626 §4.4.1 keep-alives, or
    /// RFC 3261 §7.5 leading CRLFs): discard them. `ping` is true when they hold a
    /// double CRLF, which RFC 5626 answers with a single CRLF "pong".
    KeepAlive {
        /// Length in bytes.
        len: usize,
        /// A double-CRLF ping was seen.
        ping: bool,
    },
    /// No whole message yet: read more.
    NeedMore,
}

/// Finds the first frame in `buf`.
///
/// Errors (the connection's framing is lost; close it, RFC 4475 §3.1.2.3, §3.3.9):
/// [`ParseError::TooLarge`] when the header section or the whole message would exceed
/// `max_len`; [`ParseError::MissingContentLength`], [`ParseError::BadContentLength`] and
/// [`ParseError::RepeatedContentLength`] when Content-Length is absent (required on
/// streams, §18.3), negative, not a number, or given twice.
pub fn next_stream_frame(buf: &[u8], max_len: usize) -> Result<StreamFrame, ParseError> {
    let crlfs = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlfs > 0 {
        let ping = buf[..crlfs].windows(4).any(|w| w == b"\r\n\r\n");
        return Ok(StreamFrame::KeepAlive { len: crlfs, ping });
    }
    let Some(head_end) = find_header_end(buf) else {
        if buf.len() > max_len {
            return Err(ParseError::TooLarge { limit: max_len });
        }
        return Ok(StreamFrame::NeedMore);
    };
    let body_len = super::message::content_length_of(&buf[..head_end])?
        .ok_or(ParseError::MissingContentLength)?;
    let len = head_end.saturating_add(body_len);
    if len > max_len {
        return Err(ParseError::TooLarge { limit: max_len });
    }
    if buf.len() < len {
        return Ok(StreamFrame::NeedMore);
    }
    Ok(StreamFrame::Message { len })
}

/// Offset just past the empty line ending the header section (CRLFCRLF, or a bare LFLF as
/// RFC 3261 §7 tolerates), if the buffer holds it.
pub fn find_header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}
