//! `tel:` URIs (RFC 3966 §3): global (`+62-761-123456`) and local numbers (`phone-context`
//! accepted but not required: `tel:112` is what trunks send), visual separators kept as
//! written, parameters `phone-context`, `ext`,
//! `isub` and others, names case-insensitive.

use std::fmt;

use super::escape::{Cursor, is_param_char, is_unreserved, validate};
use super::host::is_hostname;
use super::param::{UriParam, write_params};
use super::{MAX_PARTS, Mode, UriError};

/// A `tel:` URI (RFC 3966).
///
/// The number and parameters are kept as written and [`Display`](fmt::Display) writes them
/// back; `==` compares that text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TelUri {
    /// The scheme as written (`tel`, `TEL`, ...).
    scheme: String,
    /// `global-number-digits` or `local-number-digits`, separators included.
    number: String,
    params: Vec<UriParam>,
}

impl TelUri {
    /// Parses a whole string as a `tel:` URI.
    ///
    /// # Errors
    /// [`UriError::NotTel`] for another scheme, else as [`super::Uri::parse`].
    pub fn parse(s: &str) -> Result<Self, UriError> {
        match super::Uri::parse(s)? {
            super::Uri::Tel(uri) => Ok(uri),
            _ => Err(UriError::NotTel),
        }
    }

    /// A global number such as `+62-761-123456` (`+`, then digits and `-.()`).
    ///
    /// # Errors
    /// [`UriError::BadTelNumber`] if `number` is not a global number.
    pub fn global(number: &str) -> Result<Self, UriError> {
        if !is_global_number(number) {
            return Err(UriError::BadTelNumber);
        }
        Ok(TelUri {
            scheme: "tel".to_owned(),
            number: number.to_owned(),
            params: Vec::new(),
        })
    }

    /// A local number with its `phone-context` (a domain name or a global number prefix,
    /// RFC 3966 §5.1.5), e.g. `7042` in `example.com`.
    ///
    /// # Errors
    /// [`UriError::BadTelNumber`] for a malformed number, [`UriError::BadTelParam`] for a
    /// malformed context.
    pub fn local(number: &str, phone_context: &str) -> Result<Self, UriError> {
        if !is_local_number(number) {
            return Err(UriError::BadTelNumber);
        }
        check_param("phone-context", Some(phone_context))?;
        Ok(TelUri {
            scheme: "tel".to_owned(),
            number: number.to_owned(),
            params: vec![UriParam::from_valid("phone-context", Some(phone_context))],
        })
    }

    /// The number as written, separators included (`+62-761-123`).
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The number without visual separators `-.()` (`+62761123`): the form to compare.
    pub fn digits(&self) -> String {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect()
    }

    /// Whether the number is global (starts with `+`).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }

    /// All parameters in order, as written.
    pub fn params(&self) -> &[UriParam] {
        &self.params
    }

    /// The raw value of parameter `name` (case-insensitive): `None` if absent, `Some(None)`
    /// if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|p| p.is_named(name))
            .map(UriParam::value)
    }

    /// The `phone-context` descriptor, as written.
    pub fn phone_context(&self) -> Option<&str> {
        self.param("phone-context").flatten()
    }

    /// The extension (`ext`), as written.
    pub fn ext(&self) -> Option<&str> {
        self.param("ext").flatten()
    }

    /// The ISDN subaddress (`isub`), as written.
    pub fn isub(&self) -> Option<&str> {
        self.param("isub").flatten()
    }

    /// Appends a parameter from raw text (`pname = 1*( alphanum / "-" )`; `ext`, `isub`
    /// and `phone-context` values are checked against their grammar).
    ///
    /// # Errors
    /// [`UriError::BadTelParam`] for a malformed name or value, [`UriError::BadEscape`] for
    /// a broken escape.
    pub fn push_param(&mut self, name: &str, value: Option<&str>) -> Result<(), UriError> {
        check_param(name, value)?;
        self.params.push(UriParam::from_valid(name, value));
        Ok(())
    }
}

fn is_visual_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'(' | b')')
}

/// `global-number-digits = "+" *phonedigit DIGIT *phonedigit`.
fn is_global_number(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|rest| {
        rest.bytes()
            .all(|b| b.is_ascii_digit() || is_visual_separator(b))
            && rest.bytes().any(|b| b.is_ascii_digit())
    })
}

fn is_local_digit(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b'*' || b == b'#'
}

/// `local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex`.
fn is_local_number(s: &str) -> bool {
    s.bytes()
        .all(|b| is_local_digit(b) || is_visual_separator(b))
        && s.bytes().any(is_local_digit)
}

/// `uric` without `;` (which would end the parameter), for `isub` values.
fn is_isub_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
        )
}

fn check_param(name: &str, value: Option<&str>) -> Result<(), UriError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(UriError::BadTelParam);
    }
    let lower = name.to_ascii_lowercase();
    match (lower.as_str(), value) {
        (_, Some("")) => Err(UriError::BadTelParam),
        ("phone-context", Some(v)) if is_global_number(v) || is_hostname(v) => Ok(()),
        ("ext", Some(v))
            if v.bytes()
                .all(|b| b.is_ascii_digit() || is_visual_separator(b))
                && v.bytes().any(|b| b.is_ascii_digit()) =>
        {
            Ok(())
        }
        ("isub", Some(v)) => validate(v, is_isub_char, UriError::BadTelParam),
        ("phone-context" | "ext" | "isub", _) => Err(UriError::BadTelParam),
        (_, Some(v)) => validate(v, is_param_char, UriError::BadTelParam),
        (_, None) => Ok(()),
    }
}

/// Parses a `tel:` URI after its scheme. In [`Mode::AddrSpec`] it stops after the number
/// (RFC 3261 §20: `;` there starts header parameters), so a local number fails for lack of
/// its `phone-context`.
pub(super) fn parse_tel(
    cur: &mut Cursor<'_>,
    scheme: &str,
    mode: Mode,
) -> Result<TelUri, UriError> {
    let number = cur.take_while(|b| b == b'+' || is_local_digit(b) || is_visual_separator(b));
    if !(is_global_number(number) || is_local_number(number)) {
        return Err(UriError::BadTelNumber);
    }
    let mut uri = TelUri {
        scheme: scheme.to_owned(),
        number: number.to_owned(),
        params: Vec::new(),
    };
    if mode == Mode::Full {
        while cur.eat(b';') {
            let name = cur.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
            let value = if cur.eat(b'=') {
                Some(cur.take_escaped(if name.eq_ignore_ascii_case("isub") {
                    is_isub_char
                } else {
                    is_param_char
                })?)
            } else {
                None
            };
            if uri.params.len() >= MAX_PARTS {
                return Err(UriError::TooManyParts);
            }
            uri.push_param(name, value)?;
        }
    }
    // RFC 3966 §5.1.5 requires `phone-context` on a local number, but phones and trunks
    // send `tel:112`: a PSAP must not refuse an emergency call over it, so siaga accepts a
    // local number without one (its context is then the trunk's own).
    Ok(uri)
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        f.write_str(":")?;
        f.write_str(&self.number)?;
        write_params(f, &self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Uri;
    use super::*;

    #[test]
    fn valid_tel_uris() {
        let t = TelUri::parse("tel:+62-761-123").unwrap();
        assert!(t.is_global());
        assert_eq!(
            (t.number(), t.digits().as_str()),
            ("+62-761-123", "+62761123")
        );
        assert_eq!(t.to_string(), "tel:+62-761-123");

        // Policy: a local number without phone-context is accepted (trunks send tel:112).
        let t = TelUri::parse("tel:112").unwrap();
        assert_eq!(
            (t.is_global(), t.digits().as_str(), t.phone_context()),
            (false, "112", None)
        );
        assert_eq!(t.to_string(), "tel:112");

        let t = TelUri::parse("tel:7042;phone-context=example.com").unwrap();
        assert!(!t.is_global());
        assert_eq!(t.phone_context(), Some("example.com"));

        let t = TelUri::parse("TEL:863-1234;Phone-Context=+1-914-555").unwrap();
        assert_eq!(t.phone_context(), Some("+1-914-555"));
        assert_eq!(t.digits(), "8631234");
        assert_eq!(t.to_string(), "TEL:863-1234;Phone-Context=+1-914-555");

        let s = "tel:+1-201-555-0123;ext=1234;isub=0x1a/b;x-foo=%41b;flag";
        let t = TelUri::parse(s).unwrap();
        assert_eq!((t.ext(), t.isub()), (Some("1234"), Some("0x1a/b")));
        assert_eq!(t.param("X-FOO"), Some(Some("%41b")));
        assert_eq!(t.param("flag"), Some(None));
        assert_eq!(t.to_string(), s);
        assert_eq!(
            Uri::parse("tel:*31#;phone-context=+62")
                .unwrap()
                .to_string(),
            "tel:*31#;phone-context=+62"
        );
        assert_eq!(
            Uri::parse("tel:112;phone-context=+62").unwrap().scheme(),
            "tel"
        );
    }

    #[test]
    fn invalid_tel_uris() {
        let cases = [
            ("tel:", UriError::BadTelNumber),
            ("tel:+", UriError::BadTelNumber),
            ("tel:+-.", UriError::BadTelNumber),
            ("tel:+62;phone-context=", UriError::BadTelParam),
            ("tel:+62;phone-context=-bad-", UriError::BadTelParam),
            ("tel:+62;ext=abc", UriError::BadTelParam),
            ("tel:+62;=x", UriError::BadTelParam),
            ("tel:+62;x=%4", UriError::BadEscape),
        ];
        for (s, err) in cases {
            assert_eq!(Uri::parse(s), Err(err), "{s}");
        }
        assert!(matches!(
            Uri::parse("tel:+62 761"),
            Err(UriError::Unexpected { at: 7 })
        ));
        assert!(matches!(
            Uri::parse("tel:+62;a_b=1"),
            Err(UriError::Unexpected { at: 9 })
        ));
    }

    #[test]
    fn built_tel_uris() {
        let mut t = TelUri::global("+62-761-123456").unwrap();
        t.push_param("ext", Some("12")).unwrap();
        assert_eq!(t.to_string(), "tel:+62-761-123456;ext=12");
        assert_eq!(
            TelUri::local("7042", "example.com").unwrap().to_string(),
            "tel:7042;phone-context=example.com"
        );
        assert_eq!(TelUri::global("7042"), Err(UriError::BadTelNumber));
        assert_eq!(TelUri::local("7042", "+"), Err(UriError::BadTelParam));
    }
}
