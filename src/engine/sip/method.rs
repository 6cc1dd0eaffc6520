//! SIP methods (RFC 3261 §7.1, §27.4): the ones siaga knows, and any other token as an
//! extension method. Method names are case-sensitive.

use std::fmt;

/// A request method. Any RFC 3261 token is a method; names siaga does not know are
/// [`Method::Extension`] (RFC 3261 §8.2.1 answers those with 501).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3261 §13.
    Invite,
    /// RFC 3261 §13.2.2.4, §17.1.1.3.
    Ack,
    /// RFC 3261 §15.
    Bye,
    /// RFC 3261 §9.
    Cancel,
    /// RFC 3261 §11.
    Options,
    /// RFC 3261 §10.
    Register,
    /// RFC 3262.
    Prack,
    /// RFC 6665.
    Subscribe,
    /// RFC 6665.
    Notify,
    /// RFC 3903.
    Publish,
    /// RFC 6086.
    Info,
    /// RFC 3515.
    Refer,
    /// RFC 3428.
    Message,
    /// RFC 3311.
    Update,
    /// Any other token, verbatim (`%` is not decoded: RFC 4475 §3.1.1.5).
    Extension(Box<str>),
}

impl Method {
    /// Parses a method token (RFC 3261 §25.1 `token`). `None` if it is not a token.
    pub fn from_token(token: &[u8]) -> Option<Method> {
        if token.is_empty() || !token.iter().all(|&b| is_token_char(b)) {
            return None;
        }
        Some(match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"UPDATE" => Method::Update,
            // Token characters are ASCII, so this is valid UTF-8.
            other => Method::Extension(String::from_utf8_lossy(other).into()),
        })
    }

    /// The method's name as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Extension(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token` characters: alphanumerics and `-.!%*_+`'~`.
pub const fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn known_and_extension_methods() {
        assert_eq!(Method::from_token(b"INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::from_token(b"invite"),
            Some(Method::Extension("invite".into())),
            "method names are case-sensitive"
        );
        let odd = b"!interesting-Method0123456789_*+`.%indeed'~";
        assert_eq!(
            Method::from_token(odd).map(|m| m.to_string()),
            Some(String::from_utf8_lossy(odd).into_owned())
        );
        assert_eq!(
            Method::from_token(b"RE%47IST%45R").map(|m| m == Method::Register),
            Some(false)
        );
        assert_eq!(Method::from_token(b""), None);
        assert_eq!(Method::from_token(b"IN VITE"), None);
        assert_eq!(Method::from_token(b"<INVITE>"), None);
    }
}
