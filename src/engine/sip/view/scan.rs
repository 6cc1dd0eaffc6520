//! Lexical helpers shared by the typed header views (RFC 3261 §25.1): comma-separated
//! values, `;`-parameters with LWS around `=`, quoted strings and display names.

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::super::method::is_token_char;

/// A header parameter (`;name[=value]`, RFC 3261 §25.1 `generic-param`). The name is kept
/// as written (compare with [`Param::is`]); the value as written, quotes included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The name as written.
    pub name: String,
    /// The value as written (a token, host or quoted string), if any.
    pub value: Option<String>,
}

impl Param {
    /// Whether the parameter is named `name` (case-insensitive, RFC 3261 §7.3.1).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value with surrounding quotes removed and quoted-pairs resolved.
    pub fn unquoted_value(&self) -> Option<String> {
        self.value
            .as_deref()
            .map(|v| unquote(v).unwrap_or_else(|| v.to_owned()))
    }
}

/// Finds a parameter by name (case-insensitive): `None` when absent, `Some(None)` when
/// present without a value.
pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.is(name))
        .map(|p| p.value.as_deref())
}

/// Splits a header value at the commas that separate values (RFC 3261 §7.3.1), ignoring
/// commas inside quoted strings and `<...>`. Each piece is trimmed. Errors on an
/// unterminated quoted string or `<`.
pub fn split_commas(value: &str, header: HeaderName) -> Result<Vec<&str>, ParseError> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_quoted(bytes, i)
                    .ok_or(ParseError::bad(header, "unterminated quoted string"))?
            }
            b'<' => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map(|p| i + p + 1)
                    .ok_or(ParseError::bad(header, "unterminated <"))?
            }
            b',' => {
                out.push(value[start..i].trim());
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push(value[start..].trim());
    Ok(out)
}

/// Index just past the quoted string starting at `bytes[open]` (a `"`), honouring
/// quoted-pairs; `None` if it never closes.
pub fn skip_quoted(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The content of a quoted string (`"..."`) with quoted-pairs resolved; `None` if `s`
/// is not one whole quoted string.
pub fn unquote(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') || skip_quoted(bytes, 0) != Some(bytes.len()) {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Parses `*( SEMI generic-param )` (RFC 3261 §25.1) with LWS allowed around `;` and
/// `=` (RFC 4475 §3.1.1.1). `s` starts at the first `;` (or is empty). Values are tokens,
/// hosts (including `[IPv6]`) or quoted strings.
///
/// Errors: [`ParseError::BadHeader`] for an empty parameter (`;;`), a non-token name or a
/// malformed value.
pub fn parse_params(s: &str, header: HeaderName) -> Result<Vec<Param>, ParseError> {
    let bytes = s.as_bytes();
    let mut params = Vec::new();
    let mut i = skip_ws(bytes, 0);
    while i < bytes.len() {
        if bytes[i] != b';' {
            return Err(ParseError::bad(header, "expected ; before a parameter"));
        }
        i = skip_ws(bytes, i + 1);
        let name_start = i;
        while i < bytes.len() && is_token_char(bytes[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(ParseError::bad(header, "empty parameter"));
        }
        let name = s[name_start..i].to_owned();
        i = skip_ws(bytes, i);
        let mut value = None;
        if bytes.get(i) == Some(&b'=') {
            i = skip_ws(bytes, i + 1);
            let value_start = i;
            match bytes.get(i) {
                Some(b'"') => {
                    i = skip_quoted(bytes, i)
                        .ok_or(ParseError::bad(header, "unterminated quoted string"))?;
                }
                Some(b'[') => {
                    i = bytes[i..]
                        .iter()
                        .position(|&b| b == b']')
                        .map(|p| i + p + 1)
                        .ok_or(ParseError::bad(header, "unterminated IPv6 reference"))?;
                }
                _ => {
                    while i < bytes.len() && (is_token_char(bytes[i]) || bytes[i] == b':') {
                        i += 1;
                    }
                }
            }
            if i == value_start {
                return Err(ParseError::bad(header, "empty parameter value"));
            }
            value = Some(s[value_start..i].to_owned());
            i = skip_ws(bytes, i);
        }
        params.push(Param { name, value });
    }
    Ok(params)
}

/// Index of the first non-whitespace byte at or after `i`.
pub fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Whether `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: HeaderName = HeaderName::Via;

    #[test]
    fn params_allow_lws_around_separators() {
        let p = parse_params(
            " ; branch = z9hG4bK ;rport; received=[2001:db8::1] ;x=\"a;b\"",
            H,
        )
        .expect("valid params");
        assert_eq!(p.len(), 4);
        assert_eq!(find_param(&p, "BRANCH"), Some(Some("z9hG4bK")));
        assert_eq!(find_param(&p, "rport"), Some(None));
        assert_eq!(find_param(&p, "received"), Some(Some("[2001:db8::1]")));
        assert_eq!(p[3].unquoted_value().as_deref(), Some("a;b"));
    }

    #[test]
    fn empty_params_are_errors() {
        assert!(parse_params(";;", H).is_err());
        assert!(parse_params(";a=", H).is_err());
        assert!(parse_params("x", H).is_err());
        assert!(parse_params(";a=\"open", H).is_err());
    }

    #[test]
    fn commas_inside_quotes_and_brackets_do_not_split() {
        let v = split_commas("\"a, b\" <sip:x@y;p=1,2>, <sip:z@w>", H).expect("valid");
        assert_eq!(v, vec!["\"a, b\" <sip:x@y;p=1,2>", "<sip:z@w>"]);
        assert!(split_commas("\"open, <sip:x@y>", H).is_err());
    }

    #[test]
    fn unquote_resolves_quoted_pairs() {
        assert_eq!(
            unquote(r#""J Rosenberg \\\"""#).as_deref(),
            Some(r#"J Rosenberg \""#)
        );
        assert_eq!(unquote("\"a\\\u{0}b\"").as_deref(), Some("a\u{0}b"));
        assert_eq!(unquote("\"open"), None);
        assert_eq!(unquote("bare"), None);
    }
}
