//! Who calls and what they dialled: the caller number (ANI) from P-Asserted-Identity
//! (RFC 3325 §9.1) or else From, the called number from the Request-URI (an emergency
//! number, or `urn:service:sos`, RFC 5031), the number first dialled from History-Info
//! (RFC 7044) or Diversion (RFC 5806), and [`Pii`], which keeps such numbers out of logs
//! unless `log.show_personal_data` is set. Numbers are read alike from `sip:` user parts
//! (`sip:+62-21-112;phone-context=+62@host;user=phone`) and `tel:` URIs (RFC 3966), without
//! the visual separators `-.()` (RFC 3966 §5.1.1).

use crate::engine::sip::uri::Uri;
use crate::engine::sip::{HeaderName, SipMessage};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static SHOW_PERSONAL_DATA: AtomicBool = AtomicBool::new(false);

/// Sets whether [`Pii`] shows personal data in full (`log.show_personal_data`). Set once
/// by the shell at start; false by default.
pub fn set_show_personal_data(show: bool) {
    SHOW_PERSONAL_DATA.store(show, Ordering::Relaxed);
}

/// Personal data (a caller number, a location, a name) as it goes into a log line:
/// `[redacted]` unless `log.show_personal_data` is set.
#[derive(Clone, Copy)]
pub struct Pii<T>(pub T);

impl<T: fmt::Display> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if SHOW_PERSONAL_DATA.load(Ordering::Relaxed) {
            self.0.fmt(f)
        } else {
            f.write_str("[redacted]")
        }
    }
}

impl<T: fmt::Display> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The caller number (ANI): the first P-Asserted-Identity the trunk sent (a `tel:` one
/// preferred, RFC 3325 §9.1 allows one sip and one tel), else the From URI's user part.
/// `None` when neither holds a user (an anonymous From, RFC 3323). The assertion is taken
/// as true: see [`super::privacy::CallerIdentity`] for an INVITE from outside the trust
/// domain.
pub fn caller_number(msg: &SipMessage) -> Option<String> {
    let asserted = msg
        .name_addrs(HeaderName::PAssertedIdentity)
        .unwrap_or_default();
    let from_pai = asserted
        .iter()
        .find_map(|na| tel_number(&na.uri))
        .or_else(|| {
            asserted
                .iter()
                .filter_map(|na| user_of(&na.uri))
                .find(|n| !is_anonymous(n))
        });
    from_pai.or_else(|| from_number(msg))
}

/// `anonymous`: the user part of an identity withheld (RFC 3323 §4.1.1.3), not a number.
fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous")
}

/// The number of the From URI (a `tel:` number or a SIP user part, without visual
/// separators), unless it is `anonymous` (RFC 3323 §4.1.1.3). A From that does not parse
/// is read leniently (`NameAddr::parse_lenient`): what its URI's user part holds.
pub(super) fn from_number(msg: &SipMessage) -> Option<String> {
    msg.from_lenient()
        .ok()
        .and_then(|na| user_of(&na.uri))
        .filter(|u| !is_anonymous(u))
}

/// The number the caller first dialled when the call reached siaga retargeted or
/// diverted on its way (a call forwarded from another PSAP, a number mapped to 112):
/// - History-Info (RFC 7044 §4): the target of the entry with the shortest `index` (`1`
///   is the request as first sent; `1.1`, `1.1.1` … its retargets), the first on a tie or
///   when no entry has an index;
/// - else Diversion (RFC 5806 §4): the last entry, as each diverting proxy adds its own
///   on top, so the bottom one names the number first called.
///
/// Read as [`called_number`] reads a Request-URI. `None` without either header, or when
/// the header does not parse (it is informational: the call is taken regardless).
pub fn original_called(msg: &SipMessage) -> Option<String> {
    let history = msg.name_addrs(HeaderName::HistoryInfo).unwrap_or_default();
    let depth = |na: &crate::engine::sip::view::NameAddr| {
        na.param("index")
            .flatten()
            .map_or(usize::MAX, |i| i.split('.').count())
    };
    let first = history
        .iter()
        .enumerate()
        .min_by_key(|(i, na)| (depth(na), *i))
        .map(|(_, na)| na);
    match first {
        Some(entry) => called_number(&entry.uri),
        None => msg
            .name_addrs(HeaderName::Diversion)
            .unwrap_or_default()
            .last()
            .and_then(|na| called_number(&na.uri)),
    }
}

/// What the caller dialled: the Request-URI's user part (or tel number), without visual
/// separators (RFC 3966 §5.1.1); `urn:service:sos…` as written for an emergency URN.
pub fn called_number(uri: &Uri) -> Option<String> {
    match uri {
        Uri::Urn(urn) if urn.is_service_sos() => Some(uri.to_string()),
        _ => tel_number(uri).or_else(|| user_of(uri)),
    }
}

fn tel_number(uri: &Uri) -> Option<String> {
    uri.as_tel().map(|t| strip_separators(t.number()))
}

fn user_of(uri: &Uri) -> Option<String> {
    match uri {
        Uri::Sip(sip) => {
            let user = sip.user_decoded()?;
            let user = String::from_utf8_lossy(&user);
            // `sip:+6281…;phone-context=…@host;user=phone`: the number ends at the first `;`.
            let number = user.split(';').next().unwrap_or_default();
            Some(strip_separators(number)).filter(|n| !n.is_empty())
        }
        Uri::Tel(_) => tel_number(uri),
        _ => None,
    }
}

/// Drops RFC 3966 visual separators (`-`, `.`, `(`, `)`).
fn strip_separators(number: &str) -> String {
    number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::Transport;
    use bytes::Bytes;

    /// An INVITE to 112 with From `from` (a tag appended) and `extra` header lines.
    pub(in crate::engine::call) fn msg(extra: &str, from: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: {from};tag=1\r\nTo: <sip:112@siaga.test>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(Bytes::from(text), Transport::Udp).expect("valid")
    }

    #[test]
    fn the_asserted_identity_beats_from_and_tel_beats_sip() {
        let m = msg(
            "P-Asserted-Identity: <sip:+62811111@trunk.test>, <tel:+62-812-2222>\r\n",
            "<sip:anonymous@anonymous.invalid>",
        );
        assert_eq!(caller_number(&m).as_deref(), Some("+628122222"));
        let m = msg("", "\"X\" <sip:0761-555@trunk.test>");
        assert_eq!(caller_number(&m).as_deref(), Some("0761555"));
        let m = msg("", "<sip:anonymous@anonymous.invalid>");
        assert_eq!(caller_number(&m), None);
    }

    #[test]
    fn the_called_number_comes_from_the_request_uri() {
        let parse = |s| Uri::parse(s).expect("uri");
        assert_eq!(
            called_number(&parse("sip:112@siaga.test")).as_deref(),
            Some("112")
        );
        assert_eq!(called_number(&parse("tel:112")).as_deref(), Some("112"));
        assert_eq!(
            called_number(&parse("urn:service:sos.fire")).as_deref(),
            Some("urn:service:sos.fire")
        );
    }

    #[test]
    fn the_number_first_dialled_comes_from_history_info_then_diversion() {
        let first = |extra: &str| original_called(&msg(extra, "<sip:a@trunk.test>"));
        // RFC 7044: the shortest index is the request as first sent, wherever it stands.
        assert_eq!(
            first(
                "History-Info: <sip:112@psap.test>;index=1.1.1\r\nHistory-Info: <tel:1-1-0>;index=1, <sip:113@x.test;user=phone?Reason=SIP%3Bcause%3D302>;index=1.1\r\n"
            )
            .as_deref(),
            Some("110")
        );
        assert_eq!(
            first("History-Info: <sip:+62-21-110@telco.test>, <sip:112@psap.test>\r\n").as_deref(),
            Some("+6221110")
        );
        // RFC 5806: the bottom Diversion names the number first called.
        assert_eq!(
            first(
                "Diversion: <sip:113@a.test>;reason=unconditional, <tel:110>;reason=no-answer\r\n"
            )
            .as_deref(),
            Some("110")
        );
        // History-Info wins over Diversion; the sos URN is read as written.
        assert_eq!(
            first("Diversion: <tel:113>\r\nHistory-Info: <urn:service:sos.fire>;index=1\r\n")
                .as_deref(),
            Some("urn:service:sos.fire")
        );
        assert_eq!(first(""), None);
        assert_eq!(
            first("History-Info: <sip:110@a.test\r\n"),
            None,
            "unparseable"
        );
    }

    #[test]
    fn tel_and_sip_numbers_lose_their_visual_separators() {
        let parse = |s| Uri::parse(s).expect("uri");
        for (uri, number) in [
            ("tel:+62-(21)-555.0100", "+62215550100"),
            ("sip:1-1-2@siaga.test;user=phone", "112"),
            (
                "sip:+62.21.112;phone-context=+62@siaga.test;user=phone",
                "+6221112",
            ),
            ("tel:112;phone-context=example.com", "112"),
        ] {
            assert_eq!(called_number(&parse(uri)).as_deref(), Some(number), "{uri}");
        }
        let m = msg("", "<tel:+62-812-555-0002>");
        assert_eq!(caller_number(&m).as_deref(), Some("+628125550002"));
        // addr-spec form: `;tag` after a bare tel URI is From's parameter (RFC 3261 §20).
        let m = msg("", "tel:+62-812-555-0003");
        assert_eq!(caller_number(&m).as_deref(), Some("+628125550003"));
    }

    #[test]
    fn personal_data_is_redacted_by_default() {
        assert_eq!(Pii("+62811").to_string(), "[redacted]");
    }
}
