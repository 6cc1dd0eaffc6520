//! Header names (RFC 3261 §7.3, §20): the headers siaga reads, their compact forms, and
//! which of them may appear only once.

use std::fmt;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $canonical:literal $(, compact $compact:literal)? ; )*) => {
        /// A header name siaga knows, or [`HeaderName::Other`]. Matching is
        /// case-insensitive and maps compact forms (RFC 3261 §7.3.3 and the RFCs cited per
        /// variant) to the long form.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any other header: kept verbatim under its own name.
            Other,
        }

        impl HeaderName {
            /// Every known name, for tests and tables.
            pub const KNOWN: &'static [HeaderName] = &[$(HeaderName::$variant,)*];

            /// The canonical (long) spelling, e.g. `Call-ID`; `""` for [`HeaderName::Other`].
            pub const fn canonical(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form, if the header has one (e.g. `i` for Call-ID).
            pub const fn compact(self) -> Option<char> {
                match self {
                    $( HeaderName::$variant => header_names!(@compact $($compact)?), )*
                    HeaderName::Other => None,
                }
            }

            /// Looks a header name up, ignoring case and mapping compact forms.
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                if let [c] = name {
                    let c = c.to_ascii_lowercase() as char;
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                $( if name.eq_ignore_ascii_case($canonical.as_bytes()) { return HeaderName::$variant; } )*
                HeaderName::Other
            }
        }
    };
    (@compact $c:literal) => { Some($c) };
    (@compact) => { None };
}

header_names! {
    /// RFC 3261 §20.42.
    Via => "Via", compact 'v';
    /// RFC 3261 §20.20.
    From => "From", compact 'f';
    /// RFC 3261 §20.39.
    To => "To", compact 't';
    /// RFC 3261 §20.8.
    CallId => "Call-ID", compact 'i';
    /// RFC 3261 §20.16.
    CSeq => "CSeq";
    /// RFC 3261 §20.22.
    MaxForwards => "Max-Forwards";
    /// RFC 3261 §20.10.
    Contact => "Contact", compact 'm';
    /// RFC 3261 §20.14.
    ContentLength => "Content-Length", compact 'l';
    /// RFC 3261 §20.15.
    ContentType => "Content-Type", compact 'c';
    /// RFC 3261 §20.12.
    ContentEncoding => "Content-Encoding", compact 'e';
    /// RFC 3261 §20.11.
    ContentDisposition => "Content-Disposition";
    /// RFC 3261 §20.37.
    Supported => "Supported", compact 'k';
    /// RFC 3261 §20.36.
    Subject => "Subject", compact 's';
    /// RFC 6665 §8.2.1.
    Event => "Event", compact 'o';
    /// RFC 6665 §8.2.2.
    AllowEvents => "Allow-Events", compact 'u';
    /// RFC 3515 §2.1.
    ReferTo => "Refer-To", compact 'r';
    /// RFC 3892 §3.
    ReferredBy => "Referred-By", compact 'b';
    /// RFC 3841 §9.2.
    AcceptContact => "Accept-Contact", compact 'a';
    /// RFC 3841 §9.3.
    RejectContact => "Reject-Contact", compact 'j';
    /// RFC 3841 §9.1.
    RequestDisposition => "Request-Disposition", compact 'd';
    /// RFC 4028 §4.
    SessionExpires => "Session-Expires", compact 'x';
    /// RFC 4028 §5.
    MinSe => "Min-SE";
    /// RFC 8224 §4.1 (RFC 4474 before it).
    Identity => "Identity", compact 'y';
    /// RFC 4474 §9 (obsoleted by RFC 8224, still sent by some SBCs).
    IdentityInfo => "Identity-Info", compact 'n';
    /// RFC 3261 §20.19.
    Expires => "Expires";
    /// RFC 3261 §20.23.
    MinExpires => "Min-Expires";
    /// RFC 3261 §20.34.
    Route => "Route";
    /// RFC 3261 §20.30.
    RecordRoute => "Record-Route";
    /// RFC 3261 §20.32.
    Require => "Require";
    /// RFC 3261 §20.29.
    ProxyRequire => "Proxy-Require";
    /// RFC 3261 §20.40.
    Unsupported => "Unsupported";
    /// RFC 3261 §20.5.
    Allow => "Allow";
    /// RFC 3261 §20.1.
    Accept => "Accept";
    /// RFC 3261 §20.2.
    AcceptEncoding => "Accept-Encoding";
    /// RFC 3261 §20.3.
    AcceptLanguage => "Accept-Language";
    /// RFC 3261 §20.7.
    Authorization => "Authorization";
    /// RFC 3261 §20.28.
    ProxyAuthorization => "Proxy-Authorization";
    /// RFC 3261 §20.44.
    WwwAuthenticate => "WWW-Authenticate";
    /// RFC 3261 §20.27.
    ProxyAuthenticate => "Proxy-Authenticate";
    /// RFC 3325 §9.1.
    PAssertedIdentity => "P-Asserted-Identity";
    /// RFC 3325 §9.2.
    PPreferredIdentity => "P-Preferred-Identity";
    /// RFC 3323 §4.2.
    Privacy => "Privacy";
    /// RFC 3261 §20.17.
    Date => "Date";
    /// RFC 3261 §20.33.
    RetryAfter => "Retry-After";
    /// RFC 3261 §20.43.
    Warning => "Warning";
    /// RFC 3261 §20.26.
    Priority => "Priority";
    /// RFC 4412 §3.1.
    ResourcePriority => "Resource-Priority";
    /// RFC 5806 §4.
    Diversion => "Diversion";
    /// RFC 7044 §4.1.
    HistoryInfo => "History-Info";
    /// RFC 3262 §7.1.
    RSeq => "RSeq";
    /// RFC 3262 §7.2.
    RAck => "RAck";
    /// RFC 3261 §20.41.
    UserAgent => "User-Agent";
    /// RFC 3261 §20.35.
    Server => "Server";
    /// RFC 3261 §20.38.
    Timestamp => "Timestamp";
    /// RFC 3261 §20.31.
    ReplyTo => "Reply-To";
    /// RFC 3261 §20.18.
    ErrorInfo => "Error-Info";
    /// RFC 3261 §20.4.
    AlertInfo => "Alert-Info";
    /// RFC 3261 §20.9.
    CallInfo => "Call-Info";
    /// RFC 3261 §20.24.
    MimeVersion => "MIME-Version";
    /// RFC 3261 §20.25.
    Organization => "Organization";
    /// RFC 3261 §20.13.
    ContentLanguage => "Content-Language";
    /// RFC 3261 §20.6.
    AuthenticationInfo => "Authentication-Info";
    /// RFC 3326 §2.
    Reason => "Reason";
    /// RFC 3261 §20.21 (In-Reply-To).
    InReplyTo => "In-Reply-To";
}

impl HeaderName {
    /// Headers whose grammar allows exactly one value (RFC 3261 §7.3.1): a second
    /// occurrence makes a request invalid (RFC 4475 §3.3.8) when siaga needs the header.
    pub const fn is_single_valued(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::SessionExpires
                | HeaderName::MinSe
                | HeaderName::MinExpires
                | HeaderName::RSeq
                | HeaderName::RAck
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("extension"),
            known => f.write_str(known.canonical()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderName;

    #[test]
    fn compact_forms_map_to_long_names() {
        let table = [
            ("v", HeaderName::Via),
            ("F", HeaderName::From),
            ("t", HeaderName::To),
            ("I", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("L", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("a", HeaderName::AcceptContact),
            ("j", HeaderName::RejectContact),
            ("d", HeaderName::RequestDisposition),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("n", HeaderName::IdentityInfo),
            ("q", HeaderName::Other),
        ];
        for (name, want) in table {
            assert_eq!(HeaderName::from_bytes(name.as_bytes()), want, "{name}");
        }
    }

    #[test]
    fn long_names_ignore_case() {
        for &known in HeaderName::KNOWN {
            let upper = known.canonical().to_ascii_uppercase();
            let lower = known.canonical().to_ascii_lowercase();
            assert_eq!(HeaderName::from_bytes(upper.as_bytes()), known);
            assert_eq!(HeaderName::from_bytes(lower.as_bytes()), known);
        }
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
    }
}
