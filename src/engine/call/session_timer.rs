//! Session timers on the trunk leg (RFC 4028): what the trunk's INVITE asks for, siaga's
//! answer in the 2xx, and the deadlines that follow — siaga refreshes at half the interval
//! when it is the refresher (§10), and ends a session the trunk stopped refreshing at
//! `interval − min(32 s, interval/3)` (§10) with BYE on both legs.
//!
//! Pure: the header values are read and written here; the engine's steps that send the
//! refresh and end the call are in `midcall`. Operator legs carry no session timer: the
//! phones are on siaga's own network and their dialogs end with the trunk's.

use crate::engine::sip::{HeaderName, Method, ParseError, SipMessage};
use crate::engine::time::MonoTime;
use std::time::Duration;

/// The smallest interval RFC 4028 §4 allows anyone to ask for, in seconds.
pub const RFC_MIN_SE: u32 = 90;

/// Who sends the refresh requests (RFC 4028 §7.1 `refresher`), named from siaga's side
/// so that it survives the UAC/UAS swap of each refresh transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    /// siaga refreshes.
    Siaga,
    /// The trunk refreshes; siaga watches for the refresh.
    Trunk,
}

/// A `Session-Expires` value (RFC 4028 §4): the interval and the `refresher` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval, in seconds.
    pub interval: u32,
    /// `refresher=uac` (true) or `uas` (false), if given.
    pub uac_refreshes: Option<bool>,
}

impl SessionExpires {
    /// Reads `Session-Expires` (or its compact form `x`) of `msg`: `None` when absent.
    ///
    /// Errors: a malformed or repeated value (the request is answered 400).
    pub fn of(msg: &SipMessage) -> Result<Option<SessionExpires>, ParseError> {
        let Some(field) = msg.header(HeaderName::SessionExpires) else {
            return Ok(None);
        };
        if msg
            .headers_named(HeaderName::SessionExpires)
            .nth(1)
            .is_some()
        {
            return Err(ParseError::bad(HeaderName::SessionExpires, "repeated"));
        }
        let value = field.value_str()?;
        let mut parts = value.split(';').map(str::trim);
        let interval = parts
            .next()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| ParseError::bad(HeaderName::SessionExpires, "delta-seconds"))?;
        let mut uac_refreshes = None;
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("refresher") {
                uac_refreshes = match value.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(true),
                    "uas" => Some(false),
                    _ => return Err(ParseError::bad(HeaderName::SessionExpires, "refresher")),
                };
            }
        }
        Ok(Some(SessionExpires {
            interval,
            uac_refreshes,
        }))
    }
}

/// Reads `Min-SE` (RFC 4028 §5) of `msg`, in seconds: `None` when absent.
///
/// Errors: a malformed value.
pub fn min_se_of(msg: &SipMessage) -> Result<Option<u32>, ParseError> {
    let Some(field) = msg.header(HeaderName::MinSe) else {
        return Ok(None);
    };
    let value = field.value_str()?;
    let number = value.split(';').next().unwrap_or_default().trim();
    number
        .parse()
        .map(Some)
        .map_err(|_| ParseError::bad(HeaderName::MinSe, "delta-seconds"))
}

/// Whether `msg` lists `timer` in Supported (or Require).
pub fn supports_timer(msg: &SipMessage) -> bool {
    [HeaderName::Supported, HeaderName::Require]
        .into_iter()
        .any(|name| {
            msg.option_tags(name)
                .is_ok_and(|tags| tags.iter().any(|t| t.eq_ignore_ascii_case("timer")))
        })
}

/// The outcome of a request's session-timer headers (RFC 4028 §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// No `Session-Expires`: no session timer.
    Off,
    /// The interval is below siaga's minimum and the trunk supports the extension:
    /// answer 422 with `Min-SE: min_se` (§9). The trunk retries with a larger value.
    TooSmall {
        /// siaga's minimum, in seconds.
        min_se: u32,
    },
    /// A session timer with these terms.
    On(SessionTimer),
}

/// A running session timer of the trunk leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimer {
    /// The session interval, in seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
    /// Whether the trunk supports the extension (siaga's 2xx then carries `Require:
    /// timer`, §9).
    pub trunk_supports: bool,
    /// When siaga acts next: send a refresh (siaga refreshes) or end the session (the
    /// trunk refreshes). Unset (`None`) until the session is established.
    pub deadline: Option<MonoTime>,
}

impl SessionTimer {
    /// The terms of `request` (the trunk's INVITE, re-INVITE or UPDATE, with the trunk as
    /// its UAC) against siaga's minimum `min_se` (s), RFC 4028 §9: an interval below the
    /// minimum is refused when the trunk supports the extension, and raised otherwise
    /// (errata 1687: a refusal would only fail the call); `refresher` as asked, else the
    /// trunk when it supports the extension, else siaga.
    pub fn negotiate(request: &SipMessage, min_se: u32) -> Negotiation {
        let Ok(Some(asked)) = SessionExpires::of(request) else {
            return Negotiation::Off;
        };
        let trunk_supports = supports_timer(request);
        let min_se = min_se.max(RFC_MIN_SE);
        let mut interval = asked.interval;
        if interval < min_se {
            if trunk_supports {
                return Negotiation::TooSmall { min_se };
            }
            interval = min_se;
        }
        let refresher = match asked.uac_refreshes {
            Some(true) => Refresher::Trunk,
            Some(false) => Refresher::Siaga,
            None if trunk_supports => Refresher::Trunk,
            None => Refresher::Siaga,
        };
        // A trunk without the extension cannot be asked to refresh (§9).
        let refresher = if trunk_supports {
            refresher
        } else {
            Refresher::Siaga
        };
        Negotiation::On(SessionTimer {
            interval,
            refresher,
            trunk_supports,
            deadline: None,
        })
    }

    /// The headers of siaga's 2xx to the trunk's request that set these terms (§9):
    /// `Session-Expires` with the refresher as the trunk (the request's UAC) sees it, and
    /// `Require: timer` when the trunk supports the extension.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        let refresher = match self.refresher {
            Refresher::Trunk => "uac",
            Refresher::Siaga => "uas",
        };
        let mut headers = vec![(
            "Session-Expires",
            format!("{};refresher={refresher}", self.interval),
        )];
        if self.trunk_supports {
            headers.push(("Require", "timer".to_owned()));
        }
        headers
    }

    /// The headers of a re-INVITE or UPDATE siaga sends the trunk while the timer runs
    /// (§7.4; any of them is a refresh): the interval, and the refresher as the trunk —
    /// the request's UAS — sees it (`uac` when siaga refreshes, as in its own refreshes).
    pub fn refresh_headers(&self, min_se: u32) -> Vec<(&'static str, String)> {
        let refresher = match self.refresher {
            Refresher::Siaga => "uac",
            Refresher::Trunk => "uas",
        };
        vec![
            (
                "Session-Expires",
                format!("{};refresher={refresher}", self.interval),
            ),
            ("Min-SE", min_se.max(RFC_MIN_SE).to_string()),
            ("Supported", "timer".to_owned()),
        ]
    }

    /// Starts (or restarts, after a refresh) the interval at `now`: the deadline of the
    /// next refresh (half the interval, §10) or of the expiry check (§10: the interval
    /// less a third, at most 32 s).
    pub fn restart(&mut self, now: MonoTime) -> MonoTime {
        let interval = Duration::from_secs(u64::from(self.interval));
        let at = match self.refresher {
            Refresher::Siaga => now + interval / 2,
            Refresher::Trunk => now + (interval - Duration::from_secs(32).min(interval / 3)),
        };
        self.deadline = Some(at);
        at
    }

    /// Takes the terms siaga's own refresh drew in `response` (its 2xx, §7.2): the
    /// interval it carries, and the refresher (`uac` is siaga). A 2xx without
    /// `Session-Expires` ends the timer (§7.2): `false`.
    pub fn accept_refresh_answer(&mut self, response: &SipMessage) -> bool {
        match SessionExpires::of(response) {
            Ok(Some(se)) => {
                self.interval = se.interval.max(RFC_MIN_SE);
                self.refresher = match se.uac_refreshes {
                    Some(false) => Refresher::Trunk,
                    _ => Refresher::Siaga,
                };
                true
            }
            _ => false,
        }
    }
}

/// Whether `method` can carry a session refresh (RFC 4028 §7.4).
pub fn is_refresh_method(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Transport;
    use bytes::Bytes;

    fn invite(extra: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKst\r\n\
             Max-Forwards: 70\r\nFrom: <sip:081234@trunk>;tag=a\r\nTo: <sip:112@siaga.test>\r\n\
             Call-ID: st@trunk\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(Bytes::from(text), Transport::Udp).expect("test INVITE parses")
    }

    #[test]
    fn no_session_expires_means_no_timer() {
        assert_eq!(
            SessionTimer::negotiate(&invite("Supported: timer\r\n"), 90),
            Negotiation::Off
        );
    }

    #[test]
    fn a_small_interval_draws_422_only_when_the_trunk_supports_timers() {
        let asked = invite("Supported: timer\r\nSession-Expires: 60\r\n");
        assert_eq!(
            SessionTimer::negotiate(&asked, 120),
            Negotiation::TooSmall { min_se: 120 }
        );
        // Without the extension a refusal would only fail the call: the interval is raised
        // and siaga refreshes (RFC 4028 §9 with errata 1687).
        let Negotiation::On(timer) = SessionTimer::negotiate(&invite("x: 60\r\n"), 120) else {
            panic!("a timer is expected");
        };
        assert_eq!((timer.interval, timer.refresher), (120, Refresher::Siaga));
        assert_eq!(
            timer.response_headers(),
            vec![("Session-Expires", "120;refresher=uas".to_owned())]
        );
    }

    #[test]
    fn the_trunk_refreshes_when_it_asks_or_leaves_it_open() {
        for extra in [
            "Supported: timer\r\nSession-Expires: 1800;refresher=uac\r\n",
            "k: timer\r\nSession-Expires: 1800\r\n",
        ] {
            let Negotiation::On(timer) = SessionTimer::negotiate(&invite(extra), 90) else {
                panic!("a timer is expected for {extra:?}");
            };
            assert_eq!(timer.refresher, Refresher::Trunk, "{extra:?}");
            assert_eq!(
                timer.response_headers(),
                vec![
                    ("Session-Expires", "1800;refresher=uac".to_owned()),
                    ("Require", "timer".to_owned())
                ]
            );
        }
        let asked = invite("Supported: timer\r\nSession-Expires: 1800;refresher=uas\r\n");
        let Negotiation::On(timer) = SessionTimer::negotiate(&asked, 90) else {
            panic!("a timer is expected");
        };
        assert_eq!(timer.refresher, Refresher::Siaga);
    }

    #[test]
    fn deadlines_follow_rfc_4028_section_10() {
        let asked = invite("Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n");
        let Negotiation::On(mut timer) = SessionTimer::negotiate(&asked, 90) else {
            panic!("a timer is expected");
        };
        let start = MonoTime::from_millis(1_000);
        // The trunk refreshes: siaga gives up at 90 − min(32, 30) = 60 s.
        assert_eq!(timer.restart(start), MonoTime::from_millis(61_000));
        timer.interval = 1800;
        assert_eq!(timer.restart(start), MonoTime::from_millis(1_769_000));
        timer.refresher = Refresher::Siaga;
        assert_eq!(timer.restart(start), MonoTime::from_millis(901_000));
    }

    #[test]
    fn malformed_values_are_errors_not_timers() {
        assert!(SessionExpires::of(&invite("Session-Expires: soon\r\n")).is_err());
        assert!(SessionExpires::of(&invite("Session-Expires: 90;refresher=me\r\n")).is_err());
        assert_eq!(
            min_se_of(&invite("Min-SE: 300\r\n")).expect("Min-SE reads"),
            Some(300)
        );
    }
}
