//! The session description in a message body: the body itself when it is
//! `application/sdp`, or the `application/sdp` part of a `multipart/mixed` or
//! `multipart/related` body (RFC 5621),
//! as an NG112 trunk sends with a PIDF-LO location (RFC 6442) beside the SDP.

use super::SipMessage;

/// The SDP of `msg`: `Some` when the body is `application/sdp`, or `multipart/mixed`
/// with an `application/sdp` part (the first such part); `None` for an empty body or
/// one without SDP.
pub fn sdp_of(msg: &SipMessage) -> Option<&[u8]> {
    let body = msg.body();
    if body.is_empty() {
        return None;
    }
    let content_type = msg.content_type().ok()??;
    if content_type.is("application", "sdp") {
        return Some(body);
    }
    if !is_multipart(&content_type) {
        return None;
    }
    let boundary = content_type
        .params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case("boundary"))?
        .unquoted_value()?;
    multipart_sdp(body, boundary.as_bytes())
}

/// Whether a body of this type may carry an SDP part: `multipart/mixed` (RFC 5621) or
/// `multipart/related` (as some NG112 trunks send SDP with a PIDF-LO).
pub fn is_multipart(content_type: &super::view::MediaType) -> bool {
    content_type.is("multipart", "mixed") || content_type.is("multipart", "related")
}

/// The first `application/sdp` part of a multipart body with `boundary` (RFC 2046 §5.1.1:
/// parts are delimited by CRLF `--boundary`; each has headers, an empty line, content).
fn multipart_sdp<'a>(body: &'a [u8], boundary: &[u8]) -> Option<&'a [u8]> {
    let mut delimiter = b"--".to_vec();
    delimiter.extend_from_slice(boundary);
    let mut parts = split_on(body, &delimiter).skip(1);
    parts.find_map(|part| {
        if part.starts_with(b"--") {
            return None; // the closing delimiter
        }
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))?;
        let (head, content) = split_head(part)?;
        let head = std::str::from_utf8(head).ok()?;
        let is_sdp = head.lines().any(|line| {
            let mut kv = line.splitn(2, ':');
            let name = kv.next().unwrap_or_default().trim();
            let value = kv.next().unwrap_or_default().trim();
            (name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("c"))
                && value
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        });
        // The CRLF before the next delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        let content = content
            .strip_suffix(b"\r\n")
            .or_else(|| content.strip_suffix(b"\n"))
            .unwrap_or(content);
        is_sdp.then_some(content)
    })
}

/// Splits a part into its headers and its content at the first empty line.
fn split_head(part: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(rest) = part.strip_prefix(b"\r\n") {
        return Some((&[], rest)); // no headers: text/plain by default, never SDP
    }
    let at = find(part, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(part, b"\n\n").map(|i| (i, 2)))?;
    Some((&part[..at.0], &part[at.0 + at.1..]))
}

fn split_on<'a, 'n>(
    hay: &'a [u8],
    needle: &'n [u8],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
    let mut rest = Some(hay);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, needle) {
            Some(i) => {
                rest = Some(&current[i + needle.len()..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Transport;
    use bytes::Bytes;

    fn msg(content_type: &str, body: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:112@siaga.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        SipMessage::parse(Bytes::from(text), Transport::Udp).expect("valid")
    }

    #[test]
    fn the_sdp_part_of_a_multipart_body_is_found() {
        let body = "--b1\r\nContent-Type: application/pidf+xml\r\n\r\n<presence/>\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 8\r\n\r\n--b1--\r\n";
        let m = msg("multipart/mixed;boundary=b1", body);
        assert_eq!(sdp_of(&m), Some(&b"v=0\r\nm=audio 1 RTP/AVP 8\r\n"[..]));
        let m = msg("multipart/mixed; boundary=\"b1\"", body);
        assert!(sdp_of(&m).is_some());
        let m = msg("application/sdp", "v=0\r\n");
        assert_eq!(sdp_of(&m), Some(&b"v=0\r\n"[..]));
        let m = msg(
            "multipart/mixed;boundary=b1",
            "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n",
        );
        assert_eq!(sdp_of(&m), None);
        let m = msg("multipart/mixed", body);
        assert_eq!(sdp_of(&m), None, "no boundary");
    }
}
