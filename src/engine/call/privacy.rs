//! The caller's identity across siaga's trust domain (RFC 3325 §2.3, RFC 3324): what the
//! trunk asserted (P-Asserted-Identity, RFC 3325 §9.1) and whether the caller asked for it
//! to be withheld (`Privacy: id`, RFC 3323 §4.2, RFC 3325 §9.3), and the identity an
//! outbound leg carries — in full to the operators (a PSAP must see who calls, whatever
//! privacy the caller asked of the public network), stripped on a leg that leaves the trust
//! domain (a transfer or overflow to an outside agency).
//!
//! The trust domain is `trunk.sources`, `trunk.trust_domain` and siaga's own registered
//! operators. An asserted identity is believed only from inside it (RFC 3325 §5: one from an
//! untrusted element is removed); from elsewhere (`trunk.other_sources = "accept"`) the
//! caller's number is read from From alone.

use super::ident::from_number;
use crate::engine::CallSettings;
use crate::engine::sip::{HeaderName, SipMessage};
use std::net::IpAddr;

/// The caller as siaga knows them from the trunk's INVITE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The caller's number (ANI) without visual separators: the first trusted
    /// P-Asserted-Identity's (a `tel:` one preferred; RFC 3325 §9.1 allows one sip and one
    /// tel), else From's user part; `None` when neither holds one (an anonymous From).
    /// Personal data: log it only through `Pii`.
    pub number: Option<String>,
    /// The P-Asserted-Identity values of a trusted INVITE, each as received (`<tel:+62…>`),
    /// empty when it had none or came from outside the trust domain.
    pub asserted: Vec<String>,
    /// The caller asked for their identity to be withheld from the public (`Privacy` with
    /// `id`, `user` or `header`, RFC 3323 §4.2).
    pub private: bool,
}

/// Where an outbound leg goes, as RFC 3325 §5 sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Inside siaga's trust domain (an operator's phone, an element in `trunk.sources` or
    /// `trunk.trust_domain`): the asserted identity is passed on.
    Inside,
    /// Outside it (an agency elsewhere): no asserted identity leaves, and a caller who asked
    /// for privacy is anonymous (RFC 3323 §4.1.1.3).
    Outside,
}

impl CallerIdentity {
    /// The identity of `invite`, received from a source `trusted` or not.
    pub fn of_invite(invite: &SipMessage, trusted: bool) -> Self {
        let asserted: Vec<String> = if trusted {
            invite
                .headers_named(HeaderName::PAssertedIdentity)
                .filter_map(|f| f.value_str().ok())
                .flat_map(|v| {
                    crate::engine::sip::view::scan::split_commas(&v, HeaderName::PAssertedIdentity)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect()
        } else {
            Vec::new()
        };
        let number = if trusted {
            super::caller_number(invite)
        } else {
            from_number(invite)
        };
        let private = invite
            .privacy()
            .unwrap_or_default()
            .iter()
            .any(|p| matches!(p.as_str(), "id" | "user" | "header"));
        CallerIdentity {
            number,
            asserted,
            private,
        }
    }

    /// The caller's number fit for a SIP URI user part and a display name: `None` when
    /// unknown or holding characters other than digits, letters and `+*#._-`.
    fn uri_number(&self) -> Option<&str> {
        self.number.as_deref().filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c))
        })
    }

    /// The headers naming the caller on an outbound INVITE from siaga at `domain`, with
    /// From tag `from_tag`, in order:
    /// - [`Trust::Inside`]: From `"<number>" <sip:<number>@domain>` (`"Anonymous"` and
    ///   `anonymous` when the number is unknown), and every asserted identity as received;
    /// - [`Trust::Outside`]: no P-Asserted-Identity (RFC 3325 §5); From as inside unless the
    ///   caller asked for privacy, then `"Anonymous" <sip:anonymous@anonymous.invalid>`
    ///   (RFC 3323 §4.1.1.3).
    ///
    /// Identity and Identity-Info (RFC 8224) are never copied: siaga's legs are new requests
    /// that no signature of the trunk's covers.
    pub fn outbound_headers(
        &self,
        trust: Trust,
        domain: &str,
        from_tag: &str,
    ) -> Vec<(&'static str, String)> {
        let from = match (trust, self.private, self.uri_number()) {
            (Trust::Outside, true, _) => {
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_owned()
            }
            (_, _, Some(number)) => format!("\"{number}\" <sip:{number}@{domain}>"),
            (_, _, None) => format!("\"Anonymous\" <sip:anonymous@{domain}>"),
        };
        let mut headers = vec![("From", format!("{from};tag={from_tag}"))];
        if trust == Trust::Inside {
            headers.extend(
                self.asserted
                    .iter()
                    .map(|value| ("P-Asserted-Identity", value.clone())),
            );
        }
        headers
    }
}

impl CallSettings {
    /// Whether `ip` is inside siaga's trust domain (RFC 3325 §2.3): one of `trunk.sources`
    /// or `trunk.trust_domain` (IPv4-mapped IPv6 counts as IPv4).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trunk_sources
            .iter()
            .chain(&self.trust_domain)
            .any(|net| net.contains(&ip))
    }

    /// The trust of a leg to `ip` (an agency's address, a transfer target): see
    /// [`CallerIdentity::outbound_headers`]. Operators' phones are always
    /// [`Trust::Inside`].
    pub fn trust_of(&self, ip: IpAddr) -> Trust {
        if self.is_trusted(ip) {
            Trust::Inside
        } else {
            Trust::Outside
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ident::tests::msg as invite;
    use super::*;

    const ANON: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";
    const PRIVATE: &str = "Privacy: id\r\nP-Asserted-Identity: <tel:+62-811-555-0001>, <sip:+628115550001@trunk.test;user=phone>\r\n";

    #[test]
    fn a_withheld_number_is_read_from_the_trusted_assertion() {
        let id = CallerIdentity::of_invite(&invite(PRIVATE, ANON), true);
        assert_eq!(id.number.as_deref(), Some("+628115550001"));
        assert!(id.private);
        assert_eq!(
            id.asserted,
            [
                "<tel:+62-811-555-0001>",
                "<sip:+628115550001@trunk.test;user=phone>"
            ]
        );
        // From an untrusted source the assertion is ignored (RFC 3325 §5).
        let id = CallerIdentity::of_invite(&invite(PRIVATE, ANON), false);
        assert_eq!((id.number, id.asserted.len()), (None, 0));
        let id = CallerIdentity::of_invite(&invite(PRIVATE, "<tel:+62-812-1>"), false);
        assert_eq!(id.number.as_deref(), Some("+628121"));
    }

    #[test]
    fn privacy_values_that_hide_the_identity() {
        for (privacy, private) in [
            ("Privacy: id\r\n", true),
            ("Privacy: header;user\r\n", true),
            ("Privacy: none\r\n", false),
            ("Privacy: session\r\n", false),
            ("", false),
        ] {
            let id = CallerIdentity::of_invite(&invite(privacy, "<sip:1@t>"), true);
            assert_eq!(id.private, private, "{privacy}");
        }
    }

    #[test]
    fn operators_see_the_number_and_outsiders_do_not() {
        let id = CallerIdentity::of_invite(&invite(PRIVATE, ANON), true);
        let inside = id.outbound_headers(Trust::Inside, "siaga.test", "t1");
        assert_eq!(
            inside,
            [
                (
                    "From",
                    "\"+628115550001\" <sip:+628115550001@siaga.test>;tag=t1".to_owned()
                ),
                ("P-Asserted-Identity", "<tel:+62-811-555-0001>".to_owned()),
                (
                    "P-Asserted-Identity",
                    "<sip:+628115550001@trunk.test;user=phone>".to_owned()
                ),
            ]
        );
        let outside = id.outbound_headers(Trust::Outside, "siaga.test", "t2");
        assert_eq!(outside, [("From", format!("{ANON};tag=t2"))]);
        // Without a privacy request an outsider sees From's number, still no assertion.
        let open = CallerIdentity::of_invite(
            &invite("P-Asserted-Identity: <tel:+62811>\r\n", "<sip:+62811@t>"),
            true,
        );
        assert_eq!(
            open.outbound_headers(Trust::Outside, "siaga.test", "t3"),
            [(
                "From",
                "\"+62811\" <sip:+62811@siaga.test>;tag=t3".to_owned()
            )]
        );
        // Unknown number: anonymous, but at siaga's domain inside.
        let unknown = CallerIdentity::default();
        assert_eq!(
            unknown.outbound_headers(Trust::Inside, "siaga.test", "t4"),
            [(
                "From",
                "\"Anonymous\" <sip:anonymous@siaga.test>;tag=t4".to_owned()
            )]
        );
    }

    #[test]
    fn the_trust_domain_is_the_trunk_and_the_configured_networks() {
        let mut settings = CallSettings::for_tests("127.0.0.1".parse().expect("ip"), "r");
        settings.trust_domain = vec!["127.0.0.64/26".parse().expect("net")];
        settings.trunk_sources = vec!["127.0.0.1/32".parse().expect("net")];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(settings.trust_of(ip("127.0.0.1")), Trust::Inside);
        assert_eq!(settings.trust_of(ip("::ffff:127.0.0.1")), Trust::Inside);
        assert_eq!(settings.trust_of(ip("127.0.0.100")), Trust::Inside);
        assert_eq!(settings.trust_of(ip("127.0.0.2")), Trust::Outside);
    }
}
