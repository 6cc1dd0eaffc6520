//! Authorization, Proxy-Authorization, WWW-Authenticate and Proxy-Authenticate values
//! (RFC 3261 §20.7, §20.27, §20.28, §20.44, §25.1; digest parameters of RFC 7616/8760).
//! Unknown schemes are kept as opaque credentials (RFC 4475 §3.3.7).

use super::super::error::ParseError;
use super::super::header::HeaderName;
use super::scan::{Param, is_token, skip_quoted, split_commas, unquote};

/// Credentials or a challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthValue {
    /// `Digest` with its comma-separated `name=value` parameters (values as written).
    Digest(Vec<Param>),
    /// Any other scheme: its name and the rest of the value, uninterpreted.
    Other {
        /// The scheme token as written.
        scheme: String,
        /// Everything after the scheme, trimmed.
        raw: String,
    },
}

impl AuthValue {
    /// Parses one header value.
    ///
    /// Errors: an empty value or scheme; for Digest, a parameter that is not
    /// `token = (token / quoted-string)`.
    pub fn parse(value: &str, header: HeaderName) -> Result<AuthValue, ParseError> {
        let value = value.trim();
        let (scheme, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((value, ""));
        if !is_token(scheme) {
            return Err(ParseError::bad(header, "malformed auth scheme"));
        }
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Ok(AuthValue::Other {
                scheme: scheme.to_owned(),
                raw: rest.trim().to_owned(),
            });
        }
        let mut params = Vec::new();
        for item in split_commas(rest, header)? {
            let (name, value) = item
                .split_once('=')
                .ok_or(ParseError::bad(header, "digest parameter without ="))?;
            let (name, value) = (name.trim(), value.trim());
            let quoted_ok =
                value.starts_with('"') && skip_quoted(value.as_bytes(), 0) == Some(value.len());
            if !is_token(name) || !(is_token(value) || quoted_ok) {
                return Err(ParseError::bad(header, "malformed digest parameter"));
            }
            params.push(Param {
                name: name.to_owned(),
                value: Some(value.to_owned()),
            });
        }
        Ok(AuthValue::Digest(params))
    }

    /// A Digest parameter by name (case-insensitive), unquoted; `None` for other schemes.
    pub fn digest_param(&self, name: &str) -> Option<String> {
        let AuthValue::Digest(params) = self else {
            return None;
        };
        let p = params.iter().find(|p| p.is(name))?;
        let v = p.value.as_deref()?;
        Some(unquote(v).unwrap_or_else(|| v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: HeaderName = HeaderName::Authorization;

    #[test]
    fn digest_credentials() {
        let v = AuthValue::parse(
            "Digest username=\"1001\", realm=\"siaga.example\",nonce=\"abc,def\", uri=\"sip:127.0.0.1:5060\", response=\"0123\", qop=auth, nc=00000001, cnonce=\"x\", algorithm=MD5",
            A,
        )
        .expect("valid");
        assert_eq!(v.digest_param("USERNAME").as_deref(), Some("1001"));
        assert_eq!(v.digest_param("nonce").as_deref(), Some("abc,def"));
        assert_eq!(v.digest_param("qop").as_deref(), Some("auth"));
        assert_eq!(v.digest_param("nc").as_deref(), Some("00000001"));
    }

    #[test]
    fn unknown_scheme_is_opaque() {
        let v = AuthValue::parse("NoOneKnowsThisScheme opaque-data=here", A).expect("valid");
        assert_eq!(
            v,
            AuthValue::Other {
                scheme: "NoOneKnowsThisScheme".into(),
                raw: "opaque-data=here".into()
            }
        );
        assert_eq!(v.digest_param("opaque-data"), None);
    }

    #[test]
    fn malformed_digest() {
        assert!(AuthValue::parse("Digest username", A).is_err());
        assert!(AuthValue::parse("Digest username=\"open", A).is_err());
        assert!(AuthValue::parse("", A).is_err());
    }
}
