//! Reliable provisional responses toward the trunk (RFC 3262): when the trunk's INVITE
//! carries `Require: 100rel` or `Supported: 100rel`, siaga's 180s go out with
//! `Require: 100rel` and an RSeq, are resent until the trunk's PRACK acknowledges them, and
//! PRACKs are matched by their RAck. This module owns that state ([`Reliable`]) and the
//! PRACK's answer.
//!
//! RFC 3262 sections: §3 (UAS behaviour: RSeq, retransmission, one unacknowledged at a
//! time, PRACK matching, the 2xx), §5 (offer/answer: the offer of a late-offer INVITE in
//! the first reliable provisional, its answer in the PRACK), §7.1 (RSeq), §7.2 (RAck).
//!
//! Deviation, on purpose: §3 says a reliable provisional that is not PRACKed within 64·T1
//! SHOULD make the UAS reject the INVITE with a 5xx. siaga is a 112 centre: it never
//! rejects an emergency call for a lost PRACK. It stops resending, logs a warning and keeps
//! the call (a trunk that lost our 180 still gets the 2xx when an operator answers). When
//! that 180 carried siaga's offer (late offer), the operator is offered the call anyway and
//! the 2xx goes out although the offer was never acknowledged (§3 forbids that too); the
//! media then rests on the relay's latching.
//!
//! Choices where RFC 3262 leaves one:
//! - `Supported: 100rel` on an INVITE without SDP (late offer): the 180s go out unreliably
//!   (§3 "MAY"), because a reliable one would have to carry siaga's offer (§5); with
//!   `Require: 100rel` it does (see [`EarlyOffer`]).
//! - The periodic 180 (`queue.ringing_refresh_s`) is skipped while the previous reliable
//!   one is unacknowledged (§3: only one at a time); siaga sends no other provisional.
//! - The 100 Trying is never reliable (§3).

use super::{Call, CallTimer};
use crate::engine::acd::CallHandle;
use crate::engine::driver::Engine;
use crate::engine::media::{MediaCommand, Side};
use crate::engine::sdp;
use crate::engine::sip::builder::MessageBuilder;
use crate::engine::sip::view::cseq::parse_decimal_u32;
use crate::engine::sip::{HeaderName, Method, SipMessage};
use crate::engine::time::{MonoTime, Now};
use bytes::Bytes;
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;

/// The option tag of RFC 3262 (§9).
pub const OPTION_TAG: &str = "100rel";

/// The RFC 3262 state of the trunk leg of a call whose INVITE asked for reliable
/// provisional responses.
#[derive(Debug)]
pub struct Reliable {
    /// The RSeq of the next new reliable provisional (§3: the first chosen uniformly in
    /// 1‥2³¹−1, then one more each; never wraps).
    next_rseq: u32,
    /// The reliable provisional awaiting its PRACK (§3: one at a time).
    unacked: Option<Unacked>,
    /// siaga's offer in a reliable provisional, for a late-offer INVITE (§5).
    early_offer: EarlyOffer,
}

/// A reliable provisional sent and not yet PRACKed.
#[derive(Debug)]
struct Unacked {
    /// Its RSeq.
    rseq: u32,
    /// Its status (180).
    status: u16,
    /// The response as sent, resent byte for byte.
    bytes: Bytes,
    /// The interval before the next resend: T1, doubling each time, no T2 cap (§3).
    interval: Duration,
    /// When it is next resent.
    next_at: MonoTime,
    /// 64·T1 after it was first sent: resending stops (see the module docs).
    give_up_at: MonoTime,
    /// Whether it is still resent: not after the 2xx (§3) nor after `give_up_at`.
    resending: bool,
}

/// Where siaga's own offer stands on a trunk leg whose INVITE had none and required
/// `100rel`: RFC 3262 §5 puts that offer in the first reliable provisional and its answer
/// in the PRACK, after which the 2xx carries no SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyOffer {
    /// No offer goes in a provisional: the INVITE had one (siaga answers it in the 2xx).
    NotUsed,
    /// The first reliable provisional will carry siaga's offer.
    Due,
    /// The offer went out in a reliable 180; the PRACK will carry the answer. The call is
    /// not offered to an operator before it does (or 64·T1 pass).
    AwaitingAnswer,
    /// The offer/answer exchange happened in the 180 and its PRACK (or was given up on):
    /// the 2xx carries no SDP.
    Done,
}

impl Reliable {
    /// The RFC 3262 state for `invite`, or `None` when its provisionals go out unreliably:
    /// neither Require nor Supported names `100rel`, or only Supported does and the INVITE
    /// has no offer (`late_offer`, see the module docs). `rng` picks the first RSeq.
    pub fn for_invite(invite: &SipMessage, late_offer: bool, rng: &mut impl Rng) -> Option<Self> {
        let names = |header| {
            invite
                .option_tags(header)
                .unwrap_or_default()
                .iter()
                .any(|t| t.eq_ignore_ascii_case(OPTION_TAG))
        };
        // Supported alone, without an offer: unreliable (see the module docs).
        let wanted = names(HeaderName::Require) || (names(HeaderName::Supported) && !late_offer);
        if !wanted {
            return None;
        }
        Some(Reliable {
            next_rseq: rng.random_range(1..=(1u32 << 31) - 1),
            unacked: None,
            early_offer: if late_offer {
                EarlyOffer::Due
            } else {
                EarlyOffer::NotUsed
            },
        })
    }

    /// Where siaga's offer in a provisional stands.
    pub fn early_offer(&self) -> EarlyOffer {
        self.early_offer
    }
}

impl Call {
    /// Whether the call waits for the trunk's answer to siaga's offer in a reliable 180
    /// (RFC 3262 §5) before it may be offered to an operator.
    pub fn awaits_early_answer(&self) -> bool {
        self.early_offer() == Some(EarlyOffer::AwaitingAnswer)
    }

    /// Whether the offer/answer exchange with the trunk happened in a reliable 180 and its
    /// PRACK: the 2xx then carries no SDP (RFC 3262 §5, RFC 3264 §4).
    pub fn answered_early(&self) -> bool {
        self.early_offer() == Some(EarlyOffer::Done)
    }

    /// Where siaga's offer in a provisional to the trunk stands; `None` when the trunk's
    /// provisionals go out unreliably.
    fn early_offer(&self) -> Option<EarlyOffer> {
        self.trunk.reliable.as_ref().map(Reliable::early_offer)
    }
}

/// An RAck value (RFC 3262 §7.2): `response-num LWS CSeq-num LWS Method`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RAck {
    rseq: u32,
    cseq: u32,
    method: Method,
}

impl RAck {
    /// The one RAck of `msg`; `None` when it is missing, repeated or malformed.
    fn of(msg: &SipMessage) -> Option<RAck> {
        let value = msg.single(HeaderName::RAck).ok()?.value_str().ok()?;
        let mut parts = value.split_ascii_whitespace();
        let rack = RAck {
            rseq: parse_decimal_u32(parts.next()?)?,
            cseq: parse_decimal_u32(parts.next()?)?,
            method: Method::from_token(parts.next()?.as_bytes())?,
        };
        parts.next().is_none().then_some(rack)
    }
}

impl Engine {
    /// Sends provisional `status` (built up to its body in `b`) to the trunk of call
    /// `handle` reliably (RFC 3262 §3): `Require: 100rel`, the next RSeq, siaga's offer
    /// when [`EarlyOffer::Due`], then resent at T1, 2·T1, 4·T1 … until its PRACK. Skipped
    /// (logged) while another reliable provisional awaits its PRACK.
    pub(super) fn send_reliable(
        &mut self,
        now: Now,
        handle: CallHandle,
        status: u16,
        b: MessageBuilder,
    ) {
        let t1 = self.config.timers.t1;
        let media_ip = self.config.calls.media_ip;
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(reliable) = call.trunk.reliable.as_mut() else {
            return;
        };
        if reliable.unacked.is_some() {
            tracing::debug!(call = %call.record, status, "reliable provisional skipped: the previous one awaits its PRACK");
            return;
        }
        let rseq = reliable.next_rseq;
        let Some(next) = rseq.checked_add(1) else {
            // §3: RSeq never wraps (2³¹ reliable provisionals in one call: never in practice).
            return;
        };
        reliable.next_rseq = next;
        let mut b = b
            .header("Require", OPTION_TAG)
            .header("RSeq", rseq)
            .header("Allow", crate::engine::uas::allow_value());
        if reliable.early_offer == EarlyOffer::Due {
            // §5: a late-offer INVITE's first reliable provisional carries siaga's offer: what
            // the relay can take (`Call::trunk_offer` holds siaga's capabilities here) at its
            // caller-side port.
            let offer = match (&call.trunk_offer, call.relay) {
                (Some(capabilities), Some((_, caller_port, _))) => sdp::offer_across(
                    capabilities,
                    SocketAddr::new(media_ip, caller_port),
                    &mut call.trunk.media.sdp,
                )
                .ok(),
                _ => None,
            };
            match offer {
                Some(body) => {
                    // The description siaga last sent on this leg (RFC 3264 §8).
                    call.trunk.media.local = Some(body.clone());
                    b = b.body("application/sdp", body);
                }
                None => {
                    tracing::warn!(call = %call.record, "no relay port for siaga's offer in the reliable 180 (RFC 3262 §5): sent without SDP, the 2xx carries the offer");
                    reliable.early_offer = EarlyOffer::NotUsed;
                }
            }
        }
        let bytes = b.build();
        let tx = call.trunk.tx;
        if let Err(error) = self
            .server
            .send_response(now.mono, tx, status, bytes.clone())
        {
            tracing::debug!(%error, "reliable provisional response not sent");
            return;
        }
        if reliable.early_offer == EarlyOffer::Due {
            reliable.early_offer = EarlyOffer::AwaitingAnswer;
        }
        reliable.unacked = Some(Unacked {
            rseq,
            status,
            bytes,
            interval: t1,
            next_at: now.mono + t1,
            give_up_at: now.mono + self.config.timers.sixty_four_t1(),
            resending: true,
        });
        self.calls
            .schedule(now.mono + t1, CallTimer::ReliableRetransmit(handle));
    }

    /// [`CallTimer::ReliableRetransmit`]: resends the unacknowledged reliable provisional of
    /// call `handle` when due, the interval doubled (RFC 3262 §3); stops after the 2xx;
    /// gives up after 64·T1 without rejecting the call (see the module docs).
    pub(super) fn resend_reliable(&mut self, now: Now, handle: CallHandle) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        // §3: once the final response is sent, unacknowledged ones are no longer resent.
        let answered = call.state.bridged_leg().is_some();
        let record = call.record;
        let tx = call.trunk.tx;
        let Some(reliable) = call.trunk.reliable.as_mut() else {
            return;
        };
        let Some(unacked) = reliable.unacked.as_mut().filter(|u| u.resending) else {
            return;
        };
        if answered {
            unacked.resending = false;
            return;
        }
        if now.mono < unacked.next_at {
            return; // a timer of an earlier provisional, already PRACKed
        }
        if now.mono >= unacked.give_up_at {
            unacked.resending = false;
            tracing::warn!(
                call = %record,
                rseq = unacked.rseq,
                "no PRACK for the reliable 180 within 64*T1: it is no longer resent and the \
                 call goes on (RFC 3262 §3 would reject the INVITE; a 112 call is not refused)"
            );
            if reliable.early_offer == EarlyOffer::AwaitingAnswer {
                reliable.early_offer = EarlyOffer::Done;
                self.dispatch(now);
            }
            return;
        }
        let (status, bytes) = (unacked.status, unacked.bytes.clone());
        unacked.interval = unacked.interval.saturating_mul(2);
        let next = (now.mono + unacked.interval).min(unacked.give_up_at);
        unacked.next_at = next;
        if let Err(error) = self.server.send_response(now.mono, tx, status, bytes) {
            tracing::debug!(%error, "reliable provisional response not resent");
        }
        self.calls
            .schedule(next, CallTimer::ReliableRetransmit(handle));
    }

    /// A PRACK in the dialog of call `handle` (`leg`: `None` for the trunk's, else an
    /// operator leg's). Returns the final response: 200 when its RAck names the reliable
    /// provisional awaiting a PRACK (same RSeq, the INVITE's CSeq number and method,
    /// RFC 3262 §3) — which then stops being resent, and whose offer the PRACK answers —,
    /// 481 for any other RAck (§3: no unacknowledged response matches), 400 when RAck is
    /// missing or malformed (§7.2 grammar).
    pub(super) fn on_prack(
        &mut self,
        now: Now,
        handle: CallHandle,
        leg: Option<u32>,
        prack: &SipMessage,
    ) -> (u16, &'static str) {
        const NO_MATCH: (u16, &str) = (481, "Call/Transaction Does Not Exist");
        // siaga never asks an operator's phone for 100rel: nothing to PRACK on those legs.
        if leg.is_some() {
            return NO_MATCH;
        }
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return NO_MATCH;
        };
        let Some(rack) = RAck::of(prack) else {
            return (400, "Bad Request - RAck missing or malformed");
        };
        let Ok(invite_cseq) = call.trunk.invite.cseq() else {
            return NO_MATCH;
        };
        let Some(reliable) = call.trunk.reliable.as_mut() else {
            return NO_MATCH;
        };
        let matches = reliable.unacked.as_ref().is_some_and(|u| {
            u.rseq == rack.rseq && rack.cseq == invite_cseq.seq && rack.method == Method::Invite
        });
        if !matches {
            tracing::info!(call = %call.record, rseq = rack.rseq, cseq = rack.cseq, "PRACK matches no unacknowledged reliable provisional: 481");
            return NO_MATCH;
        }
        // §12.2.2: in the confirmed dialog, the PRACK's CSeq counts like any request's.
        if let (Some(dialog), Ok(cseq)) = (call.trunk.dialog.as_mut(), prack.cseq()) {
            dialog.accept_remote_seq(cseq.seq);
        }
        reliable.unacked = None;
        if reliable.early_offer != EarlyOffer::AwaitingAnswer {
            if !prack.body().is_empty() {
                // §5 lets a PRACK carry a new offer; siaga renegotiates nothing before the
                // 2xx (its 200 carries no answer), so the session stays as it was set up.
                tracing::info!(call = %call.record, "body of a PRACK ignored: siaga made no offer for it to answer");
            }
            return (200, "OK");
        }
        // §5: the PRACK of the 180 that carried siaga's offer carries the trunk's answer.
        reliable.early_offer = EarlyOffer::Done;
        let (record, relay) = (call.record, call.relay);
        match sdp::parse(prack.body()) {
            Ok(answer) if answer.rtp.is_some() => {
                if let (Some((relay, _, _)), Some(rtp)) = (relay, answer.rtp) {
                    self.media(MediaCommand::SetPeer {
                        relay,
                        side: Side::Caller,
                        rtp,
                    });
                }
                // The operator is offered what the trunk chose, so that whatever the
                // operator answers is what the trunk sends and receives.
                if let Some(call) = self.calls.calls.get_mut(&handle) {
                    call.trunk.media.remote_origin = Some(answer.origin());
                    call.trunk_offer = Some(answer);
                    call.late_offer = false;
                }
            }
            Ok(_) => {
                tracing::warn!(call = %record, "the trunk rejected the audio of siaga's offer in its PRACK; relying on latching");
            }
            Err(error) => {
                tracing::warn!(call = %record, %error, "no readable answer in the PRACK of siaga's offer (RFC 3262 §5); relying on latching");
            }
        }
        self.dispatch(now);
        (200, "OK")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Transport;
    use rand::SeedableRng;

    fn msg(extra: &str, body: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:112@siaga.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\nFrom: <sip:a@trunk.test>;tag=a\r\nTo: <sip:112@siaga.test>\r\nCall-ID: r1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        SipMessage::parse(Bytes::from(text), Transport::Udp).expect("valid")
    }

    #[test]
    fn require_or_supported_100rel_asks_for_reliable_provisionals() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let table = [
            ("", false, None),
            ("Supported: timer\r\n", false, None),
            ("Supported: 100rel\r\n", false, Some(EarlyOffer::NotUsed)),
            ("k: timer, 100REL\r\n", false, Some(EarlyOffer::NotUsed)),
            // Late offer: only Require makes siaga put its offer in the 180 (§5).
            ("Supported: 100rel\r\n", true, None),
            ("Require: 100rel\r\n", true, Some(EarlyOffer::Due)),
            ("Require: 100rel\r\n", false, Some(EarlyOffer::NotUsed)),
        ];
        for (extra, late, want) in table {
            let got = Reliable::for_invite(&msg(extra, ""), late, &mut rng);
            assert_eq!(
                got.as_ref().map(Reliable::early_offer),
                want,
                "{extra:?} {late}"
            );
            if let Some(r) = got {
                assert!((1..1u32 << 31).contains(&r.next_rseq), "§3 range");
            }
        }
    }

    #[test]
    fn rack_is_three_fields() {
        let rack = |v: &str| RAck::of(&msg(&format!("RAck: {v}\r\n"), ""));
        assert_eq!(
            rack("776656 1 INVITE"),
            Some(RAck {
                rseq: 776656,
                cseq: 1,
                method: Method::Invite
            })
        );
        assert!(rack("  5   7  INVITE ").is_some());
        for bad in [
            "",
            "1 INVITE",
            "x 1 INVITE",
            "1 2 INVITE extra",
            "4294967296 1 INVITE",
        ] {
            assert_eq!(rack(bad), None, "{bad:?}");
        }
        assert_eq!(RAck::of(&msg("", "")), None);
    }
}
