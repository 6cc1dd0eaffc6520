//! Calls siaga places to a telephone number through the trunk's gateways (`trunk.gateways`,
//! health from OPTIONS in `trunk_health`): the Request-URI for a number at a gateway, which
//! gateway to try next, and which final responses mean "try the next one". Shared by
//! callbacks (`callback`, RFC 7090) and live transfers to a `tel:` agency (`transfer`).

use crate::engine::Transport;
use crate::engine::driver::Engine;
use crate::engine::trunk_health::{Gateway, GatewayState};

/// Whether a final failure `status` from a gateway (0: no response; a transport error
/// comes as 503, RFC 3261 §8.1.3.1) says that gateway cannot place the call rather than
/// how the called line answered, so the next gateway that is up is tried (the failover
/// of RFC 3263 §4.3 and RFC 3261 §16.7): 408 and no response, 5xx. Busy (486, 600),
/// decline (603), no answer (480, 487) and every other 4xx/6xx are outcomes of the
/// call itself.
pub(super) fn is_failover(status: u16) -> bool {
    matches!(status, 0 | 408 | 500..=599)
}

/// `number` as the user part of a SIP URI: characters outside RFC 3261 §25.1's
/// `unreserved` (and `+`) `%`-escaped, byte by byte of their UTF-8.
pub(super) fn escape_user(number: &str) -> String {
    let mut user = String::with_capacity(number.len());
    for c in number.chars() {
        if c.is_ascii_alphanumeric() || "-_.!~*'()+".contains(c) {
            user.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                user.push_str(&format!("%{b:02X}"));
            }
        }
    }
    user
}

/// The Request-URI of a call to `number` through `gateway`: `sip:<number>@<ip:port>`,
/// `;user=phone` for a telephone number (digits, optionally after `+`; RFC 3261 §19.1.1),
/// `;transport=tcp` for a TCP gateway. Characters outside RFC 3261 §25.1's `unreserved`
/// are escaped.
pub(super) fn gateway_uri(number: &str, gateway: &Gateway) -> String {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let phone = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let user = escape_user(number);
    let mut uri = format!("sip:{user}@{}", gateway.address);
    if phone {
        uri.push_str(";user=phone");
    }
    if gateway.transport == Transport::Tcp {
        uri.push_str(";transport=tcp");
    }
    uri
}

impl Engine {
    /// The first trunk gateway that is up (answering OPTIONS) and not in `tried`, in
    /// `trunk.gateways` order. `None`: none configured, none up, or all tried.
    pub(super) fn gateway_up(&self, tried: &[Gateway]) -> Option<Gateway> {
        self.trunk_gateways()
            .find(|g| g.state == GatewayState::Up && !tried.contains(&g.gateway))
            .map(|g| g.gateway.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(transport: Transport) -> Gateway {
        Gateway {
            uri: "sip:192.0.2.10:5060".to_owned(),
            address: "192.0.2.10:5060".parse().expect("literal"),
            transport,
        }
    }

    #[test]
    fn a_telephone_number_is_called_with_user_phone_and_anything_else_escaped() {
        let udp = gateway(Transport::Udp);
        assert_eq!(
            gateway_uri("+628115550001", &udp),
            "sip:+628115550001@192.0.2.10:5060;user=phone"
        );
        assert_eq!(
            gateway_uri("0811", &gateway(Transport::Tcp)),
            "sip:0811@192.0.2.10:5060;user=phone;transport=tcp"
        );
        assert_eq!(
            gateway_uri("alice;x=1", &udp),
            "sip:alice%3Bx%3D1@192.0.2.10:5060"
        );
        assert_eq!(gateway_uri("+", &udp), "sip:+@192.0.2.10:5060");
    }

    #[test]
    fn timeouts_and_server_errors_fail_over_line_answers_do_not() {
        for status in [0, 408, 500, 503, 599] {
            assert!(is_failover(status), "{status}");
        }
        for status in [404, 480, 486, 487, 600, 603] {
            assert!(!is_failover(status), "{status}");
        }
    }
}
