//! A new emergency call's priority in its queue: the route's base priority, raised by what
//! the trunk signals and by a repeat caller.
//!
//! Signalling (only from the trust domain the INVITE came from, like P-Asserted-Identity):
//! - `Priority: emergency` (RFC 3261 §20.26) counts as level 1;
//! - `Resource-Priority` (RFC 4412 §3.1) in the `esnet` namespace (RFC 7135, for local
//!   emergency communications; `esnet.0` lowest to `esnet.4` highest) counts as 1 + its
//!   value, and in the `ets` namespace (RFC 4412 §12.6; `ets.4` lowest to `ets.0` highest)
//!   as 1 + (4 − its value). Other namespaces are ignored. The highest of several counts.
//!
//! The call's priority is the larger of the route's and the signalled level, plus one for
//! a repeat caller (`acd.repeat_window_s`), saturating at 255. Higher is served first.

use crate::engine::sip::{HeaderName, SipMessage};

/// The priority level `invite` signals (0: none), per the module docs.
pub fn signalled(invite: &SipMessage) -> u8 {
    let emergency = invite
        .headers_named(HeaderName::Priority)
        .filter_map(|h| h.value_str().ok().map(|v| v.trim().to_ascii_lowercase()))
        .any(|v| v == "emergency");
    let resource = invite
        .headers_named(HeaderName::ResourcePriority)
        .filter_map(|h| h.value_str().ok().map(|v| v.into_owned()))
        .flat_map(|v| {
            v.split(',')
                .filter_map(|r| resource_level(r.trim()))
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0);
    resource.max(u8::from(emergency))
}

/// The level of one r-value (`namespace.priority`, RFC 4412 §3.1), `None` for another
/// namespace or a value outside 0–4.
fn resource_level(r_value: &str) -> Option<u8> {
    let (namespace, value) = r_value.split_once('.')?;
    let value: u8 = value.trim().parse().ok().filter(|v| *v <= 4)?;
    match namespace.trim().to_ascii_lowercase().as_str() {
        "esnet" => Some(1 + value),
        "ets" => Some(1 + (4 - value)),
        _ => None,
    }
}

/// A call's priority: the larger of the route's `base` and `signalled`, plus one for a
/// `repeat` caller.
pub fn combine(base: u8, signalled: u8, repeat: bool) -> u8 {
    base.max(signalled).saturating_add(u8::from(repeat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Transport;

    fn invite(extra: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:0811@trunk>;tag=1\r\nTo: <sip:112@siaga.test>\r\nCall-ID: p1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(text.into_bytes().into(), Transport::Udp).expect("valid INVITE")
    }

    #[test]
    fn levels_from_priority_and_resource_priority() {
        assert_eq!(signalled(&invite("")), 0);
        assert_eq!(signalled(&invite("Priority: emergency\r\n")), 1);
        assert_eq!(signalled(&invite("Priority: urgent\r\n")), 0);
        assert_eq!(signalled(&invite("Resource-Priority: esnet.0\r\n")), 1);
        assert_eq!(signalled(&invite("Resource-Priority: esnet.4\r\n")), 5);
        assert_eq!(signalled(&invite("Resource-Priority: ets.0, wps.1\r\n")), 5);
        assert_eq!(signalled(&invite("Resource-Priority: ets.4\r\n")), 1);
        assert_eq!(
            signalled(&invite("Resource-Priority: dsn.flash, esnet.9\r\n")),
            0
        );
        assert_eq!(
            signalled(&invite(
                "Priority: emergency\r\nResource-Priority: esnet.2\r\n"
            )),
            3
        );
        assert_eq!(combine(2, 1, false), 2);
        assert_eq!(combine(0, 3, true), 4);
        assert_eq!(combine(255, 0, true), 255);
    }
}
