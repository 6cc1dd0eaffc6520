//! Character classes of RFC 3261 §25.1 (and RFC 3986 §2 where tel/urn URIs need them), `%`
//! escapes (RFC 3261 §19.1.2, RFC 3986 §2.1), and the byte cursor the URI parsers share.
//!
//! Raw text is validated once when it enters a URI; after that it is decoded lazily, once,
//! whenever a caller asks for a decoded value or compares two URIs.

use super::UriError;

/// `unreserved = alphanum / mark` (RFC 3261 §25.1).
pub(super) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// `user = 1*( unreserved / escaped / user-unreserved )` without the escapes.
pub(super) fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// `password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )` without the escapes.
pub(super) fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar = param-unreserved / unreserved / escaped` without the escapes.
pub(super) fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hname` / `hvalue` characters (`hnv-unreserved / unreserved`), without the escapes.
pub(super) fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// A URI component, naming which characters may appear unescaped in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The user part of a SIP URI (RFC 3261 §25.1 `user`).
    User,
    /// The password of a SIP URI (`password`).
    Password,
    /// A SIP URI parameter name or value (`paramchar`).
    Param,
    /// A SIP URI header name or value (`hname`, `hvalue`).
    Header,
}

impl Component {
    fn allows(self, b: u8) -> bool {
        match self {
            Component::User => is_user_char(b),
            Component::Password => is_password_char(b),
            Component::Param => is_param_char(b),
            Component::Header => is_header_char(b),
        }
    }
}

/// Escapes `decoded` for use as raw text of `component`: every octet that may not appear
/// unescaped there becomes `%HH` (upper-case hex). The result is valid raw text for the
/// matching setter, and [`percent_decode`] gives `decoded` back.
pub fn percent_encode(decoded: &[u8], component: Component) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(decoded.len());
    for &b in decoded {
        if component.allows(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes every `%HH` escape in `raw` once (RFC 3261 §19.1.2): `%25%34%31` gives `%41`,
/// not `A`. Other characters are copied as they are; no character class is checked.
///
/// Returns bytes, not a string: `%00` and non-UTF-8 octets are legal.
///
/// # Errors
/// [`UriError::BadEscape`] if a `%` is not followed by two hex digits.
pub fn percent_decode(raw: &str) -> Result<Vec<u8>, UriError> {
    check_escapes(raw)?;
    Ok(Decoded::new(raw).collect())
}

/// Fails if a `%` in `raw` is not followed by two hex digits.
pub(super) fn check_escapes(raw: &str) -> Result<(), UriError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if escape_at(bytes, i).is_none() {
                return Err(UriError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Checks that `raw` consists only of characters `allowed` and well-formed escapes; `err`
/// is returned for any other character, [`UriError::BadEscape`] for a broken escape.
pub(super) fn validate(raw: &str, allowed: fn(u8) -> bool, err: UriError) -> Result<(), UriError> {
    let mut cur = Cursor::new(raw, 0);
    cur.take_escaped(allowed)?;
    if cur.is_end() { Ok(()) } else { Err(err) }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The octet that the escape starting at `bytes[i]` (a `%`) stands for, if well formed.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(i + 1)?)?;
    let lo = hex_value(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// The decoded octets of raw text, one escape at a time (no allocation). A malformed `%`,
/// which validated raw text never holds, is yielded as itself.
#[derive(Clone)]
pub(super) struct Decoded<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoded<'a> {
    pub(super) fn new(raw: &'a str) -> Self {
        Decoded {
            bytes: raw.as_bytes(),
            pos: 0,
        }
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        if b == b'%'
            && let Some(octet) = escape_at(self.bytes, self.pos)
        {
            self.pos += 3;
            return Some(octet);
        }
        self.pos += 1;
        Some(b)
    }
}

/// Decodes validated raw text.
pub(super) fn decode(raw: &str) -> Vec<u8> {
    Decoded::new(raw).collect()
}

/// Whether two raw texts decode to the same octets.
pub(super) fn eq_decoded(a: &str, b: &str) -> bool {
    Decoded::new(a).eq(Decoded::new(b))
}

/// Whether two raw texts decode to the same octets, ignoring ASCII case.
pub(super) fn eq_decoded_ignore_case(a: &str, b: &str) -> bool {
    Decoded::new(a)
        .map(|c| c.to_ascii_lowercase())
        .eq(Decoded::new(b).map(|c| c.to_ascii_lowercase()))
}

/// A read position in URI text. Every method only advances over ASCII bytes, so every
/// position it stops at is a char boundary; slicing goes through `str::get` regardless.
pub(super) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a str, pos: usize) -> Self {
        Cursor { s, pos }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    pub(super) fn is_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Consumes `b` if it is next.
    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The text between two positions this cursor stopped at.
    pub(super) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s.get(from..to).unwrap_or("")
    }

    /// Consumes ASCII bytes for which `f` holds and returns them.
    pub(super) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if !(b.is_ascii() && f(b)) {
                break;
            }
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    /// Consumes characters `allowed` and `%HH` escapes, returning the raw text.
    ///
    /// # Errors
    /// [`UriError::BadEscape`] at a `%` not followed by two hex digits.
    pub(super) fn take_escaped(&mut self, allowed: fn(u8) -> bool) -> Result<&'a str, UriError> {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if b == b'%' {
                if escape_at(bytes, self.pos).is_none() {
                    return Err(UriError::BadEscape);
                }
                self.pos += 3;
            } else if b.is_ascii() && allowed(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.slice(start, self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_and_keeps_nul() {
        assert_eq!(percent_decode("v%61lue%25%34%31").unwrap(), b"value%41");
        assert_eq!(percent_decode("null-%00-null").unwrap().len(), 11);
        assert_eq!(percent_decode("%2B62").unwrap(), b"+62");
        assert_eq!(percent_decode("%e4%B8%ad").unwrap(), "中".as_bytes());
    }

    #[test]
    fn rejects_broken_escapes() {
        for raw in ["%", "%2", "%zz", "a%G0", "%%41"] {
            assert_eq!(percent_decode(raw), Err(UriError::BadEscape), "{raw}");
        }
    }

    #[test]
    fn encode_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        for c in [
            Component::User,
            Component::Password,
            Component::Param,
            Component::Header,
        ] {
            let raw = percent_encode(&bytes, c);
            assert_eq!(percent_decode(&raw).unwrap(), bytes);
        }
        assert_eq!(percent_encode(b"+62 761", Component::User), "+62%20761");
        assert_eq!(percent_encode(b"a=b&c", Component::Header), "a%3Db%26c");
    }
}
