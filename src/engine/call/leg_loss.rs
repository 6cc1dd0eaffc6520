//! An operator leg that fails mid-call re-queues the caller (issue 5, point 8): the call
//! was answered, the trunk keeps its dialog, and only the operator side is replaced.
//!
//! What counts as the leg failing, on an answered call:
//! - the relay reports no RTP from the operator for `media.silence_timeout_s`, while the
//!   session is not on hold (a held phone may send nothing, RFC 3264 §8.4);
//! - a 408, 481 or 5xx final response, or none at all (timeout, transport error), to a
//!   re-INVITE or UPDATE siaga sent in the operator's dialog (RFC 3261 §14.1: 408 and 481
//!   mean the dialog is gone; a 5xx that the phone or a proxy failed), and no ACK within
//!   64·T1 for siaga's 2xx to the operator's re-INVITE (§13.3.1.4);
//! - a BYE in the operator's dialog with a Reason (RFC 3326) whose cause is a failure
//!   (`SIP;cause=408` or ≥ 500, or a `Q.850` cause other than normal clearing): a proxy
//!   or SBC tearing the leg down. A BYE without Reason, or with a normal one, is the
//!   operator hanging up and ends the call.
//!
//! Then ([`Engine::operator_leg_lost`]): BYE to the operator's dialog (unless its BYE
//! came from there), the relay's operator peer cleared, a `requeued` event, the operator
//! released in the ACD (wrap-up, as after any call), and the call back at the head of its
//! priority in the queue (`Acd::requeue`) and offered again.
//!
//! Offering it again: the trunk's dialog stays confirmed, so the next operator's 2xx gets
//! no second 2xx to the trunk, nor a 180 before it (the caller is connected; there is
//! nothing to ring back). The trunk agreed on a codec list in siaga's SDP to it; the next
//! operator is offered only those formats ([`Call::operator_offer`]), and its answer must
//! hold the first audio format of that list, the one the trunk sends (RFC 3264 §6.1: the
//! answer's formats are a subset of the offer's). One that does not is ended like an
//! answer with no common codec and the next operator is tried. siaga sends the trunk no
//! re-INVITE: the relay keeps the trunk side and only its operator peer changes.

use super::{Call, CallState, LegState, OperatorLeg};
use crate::engine::acd::CallHandle;
use crate::engine::driver::Engine;
use crate::engine::media::{MediaCommand, RelayId, Side};
use crate::engine::record::CallEventKind;
use crate::engine::sdp::{self, MediaOffer};
use crate::engine::sip::view::Reason;
use crate::engine::sip::{Method, SipMessage};
use crate::engine::time::Now;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Who ends the dialog of an operator leg that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hangup {
    /// siaga sends BYE in it (the leg failed under siaga: silence, a failed request).
    Send,
    /// The operator side did, with its BYE (answered 200 by the caller of
    /// [`Engine::operator_leg_lost`]).
    Received,
}

/// Whether a final response to a request siaga sent in the operator's dialog means the
/// leg failed: 408 or 481 (§14.1: the dialog is gone), or a server failure (5xx).
pub(crate) fn is_leg_failure(status: u16) -> bool {
    matches!(status, 408 | 481 | 500..=599)
}

/// The first Reason of `bye` whose cause is a failure (see the module doc); `None` for a
/// BYE without one, or with a Reason siaga cannot read (logged: taken as a hang-up).
pub(crate) fn failure_reason(bye: &SipMessage) -> Option<Reason> {
    match bye.reasons() {
        Ok(reasons) => reasons.into_iter().find(Reason::is_failure),
        Err(error) => {
            tracing::info!(%error, "unreadable Reason in a BYE: taken as a hang-up");
            None
        }
    }
}

impl Engine {
    /// The operator leg of answered call `handle` failed for `reason` (a few words for the
    /// record): the call goes back to the queue with its trunk dialog kept (see the module
    /// doc). Does nothing for a call that is not answered.
    ///
    /// An offer crossing the call is answered: the trunk's (it waited for the lost
    /// operator) with 500 and Retry-After (RFC 3261 §14.2: the trunk may retry once the
    /// call is answered again), the operator's with 487 (§15.1.2).
    pub(crate) fn operator_leg_lost(
        &mut self,
        now: Now,
        handle: CallHandle,
        reason: &str,
        hangup: Hangup,
    ) {
        // A callback's outbound leg is the caller: nobody to re-queue (`callback`).
        if self.callback_leg_lost(now, handle, reason, hangup) {
            return;
        }
        // An operator whose leg fails while their transfer rings leaves the caller to the
        // agency (`transfer`).
        if self.transfer_without_operator(now, handle, reason, hangup) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let (operator, leg, overflowed, agency) = match call.state.clone() {
            CallState::Answered { operator, leg } => (operator, leg, false, None),
            // The backup centre's leg (`overflow`) is lost the same way.
            CallState::Overflowed { target, leg } => (target, leg, true, None),
            // So is a field agency's after a transfer (`transfer`).
            CallState::Transferred {
                agency,
                target,
                leg,
            } => (target, leg, false, Some(agency)),
            _ => return,
        };
        call.state = CallState::Queued;
        let record = call.record;
        let relay = call.relay.map(|(relay, _, _)| relay);
        let exchange = call.exchange.take();
        let lost = call.legs.remove(&leg);
        if let Some(exchange) = exchange {
            match exchange.from {
                Side::Operator => {
                    self.refuse_exchange(now, &exchange, 487, "Request Terminated");
                }
                Side::Caller => self.retry_later(now, exchange.respond()),
            }
        }
        if let Some(mut lost) = lost {
            self.release_answered_leg(now, &mut lost, hangup == Hangup::Send);
        }
        // Nothing goes to the lost phone any more, and the relay's silence check starts
        // over for the next one (`MediaCommand::SetPeer` resets the side).
        if let Some(relay) = relay {
            self.media(MediaCommand::SetPeer {
                relay,
                side: Side::Operator,
                rtp: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            });
        }
        tracing::warn!(call = %record, operator, reason, "operator leg failed: caller re-queued");
        if overflowed {
            self.overflow_leg_lost(now, handle, operator, reason);
        } else if let Some(agency) = agency {
            self.transferred_leg_lost(now, handle, (agency, operator), reason);
        } else {
            self.emit(
                record,
                now,
                CallEventKind::Requeued {
                    operator: operator.clone(),
                    reason: reason.to_owned(),
                },
            );
            self.calls.acd.call_ended(handle, &operator, now.mono);
            self.calls.acd.requeue(handle, true, now.mono);
        }
        self.dispatch(now);
    }

    /// Lets go of `leg` if it was answered: its 2xx is ACKed now if that ACK still waited
    /// (§13.2.2.4), the ACK is kept so that the same 2xx again gets it and no new BYE
    /// (`ack_and_bye`), and, with `bye`, siaga's BYE ends its dialog (§15).
    pub(super) fn release_answered_leg(&mut self, now: Now, leg: &mut OperatorLeg, bye: bool) {
        let (LegState::Answered, Some(mut dialog)) = (leg.state, leg.dialog.take()) else {
            return;
        };
        self.calls.by_dialog.remove(&dialog.key());
        let ack = leg.ack.take().unwrap_or_else(|| {
            let ack = dialog.ack(1, &self.config.via_host(), &self.new_branch());
            let ack = ack.build();
            self.transmit(dialog.destination, ack.clone());
            ack
        });
        if let Some(out) = self.calls.invites.get_mut(&leg.tx) {
            out.unwanted.push((dialog.remote_tag.clone(), ack));
        }
        if bye {
            self.send_bye(now, &mut dialog);
        }
    }

    /// The relay of a call reports `side` silent (`media.silence_timeout_s`): on the
    /// operator side of an answered call not on hold, the leg failed. Anything else is
    /// only logged (a caller may fall silent; a held phone may send nothing).
    pub(crate) fn relay_silent(&mut self, now: Now, relay: RelayId, side: Side) {
        let found = self.calls.calls.iter().find_map(|(handle, call)| {
            let ours = call.relay.is_some_and(|(r, _, _)| r == relay);
            ours.then(|| {
                (
                    *handle,
                    call.record,
                    call.answered_leg().map(|l| l.media.held),
                )
            })
        });
        let Some((handle, record, held)) = found else {
            tracing::debug!(relay = relay.0, ?side, "silence on a relay of no live call");
            return;
        };
        match (side, held) {
            // A callback's operator side is the caller (`callback`): a silent caller is
            // still on the line.
            (Side::Operator, _) if self.is_callback(handle) => {
                tracing::info!(call = %record, "callback: no RTP from the caller: the call goes on");
            }
            (Side::Operator, Some(false)) => {
                self.operator_leg_lost(now, handle, "no RTP from the operator", Hangup::Send);
            }
            (Side::Operator, Some(true)) => {
                tracing::info!(call = %record, "no RTP from the operator, on hold: nothing done");
            }
            (Side::Operator, None) => {
                tracing::debug!(call = %record, "operator side silent, no operator answered");
            }
            (Side::Caller, _) => tracing::info!(call = %record, "no RTP from the caller"),
        }
    }

    /// Operator `operator` answered re-queued call `handle` again: the ACD and the record
    /// learn it; the trunk already has its 2xx (see the module doc).
    pub(super) fn rebridged(&mut self, now: Now, handle: CallHandle, operator: String) {
        self.calls.acd.answered(handle, &operator, now.mono);
        let Some(record) = self.calls.calls.get(&handle).map(|c| c.record) else {
            return;
        };
        tracing::info!(call = %record, operator, "re-queued call answered again");
        self.emit(record, now, CallEventKind::Answered { operator });
    }
}

impl Call {
    /// Whether the trunk has siaga's 2xx: the call was answered, and may be re-queued
    /// since (its dialog is confirmed for good).
    pub(crate) fn was_answered(&self) -> bool {
        self.trunk.dialog.is_some()
    }

    /// Whether `request`, one siaga sent in an operator's dialog, was sent in the dialog
    /// of the answered leg (its Call-ID and siaga's From tag), not in a lost leg's.
    pub(crate) fn is_answered_dialog(&self, request: &SipMessage) -> bool {
        let Some(dialog) = self.answered_leg().and_then(|l| l.dialog.as_ref()) else {
            return false;
        };
        request.call_id().is_ok_and(|id| id == dialog.call_id)
            && request
                .from()
                .is_ok_and(|from| from.tag() == Some(dialog.local_tag.as_str()))
    }

    /// The offer an operator's INVITE is built from: the trunk's, and for a call answered
    /// before only the formats the trunk agreed to (those of siaga's last SDP to it, whose
    /// payload type numbers are the trunk's), unless none of those is audio.
    pub(crate) fn operator_offer(&self) -> Option<Cow<'_, MediaOffer>> {
        let offer = self.trunk_offer.as_ref()?;
        let Some(agreed) = self.agreed().filter(|_| self.was_answered()) else {
            return Some(Cow::Borrowed(offer));
        };
        let mut narrowed = offer.clone();
        narrowed.formats.retain(|f| {
            agreed
                .formats
                .iter()
                .any(|a| a.payload_type == f.payload_type)
        });
        if !narrowed.supported_formats().any(|(_, c)| c.is_audio()) {
            return Some(Cow::Borrowed(offer));
        }
        Some(Cow::Owned(narrowed))
    }

    /// siaga's last SDP to the trunk, read.
    fn agreed(&self) -> Option<MediaOffer> {
        sdp::parse(self.trunk.media.local.as_deref()?).ok()
    }

    /// The next operator's answer `body` on a re-queued call: the operator's RTP address
    /// and SDP origin (the trunk gets nothing: it has its answer). `None` (logged) when it
    /// is unreadable or lacks the first audio format of siaga's SDP to the trunk (see the
    /// module doc).
    pub(super) fn reanswered(
        &self,
        body: &[u8],
        operator: &str,
    ) -> Option<(Option<SocketAddr>, (u64, u64))> {
        let answer = match sdp::parse(body) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::info!(call = %self.record, operator, %error, "operator's SDP unreadable");
                return None;
            }
        };
        let sent = self.agreed();
        let first = sent.as_ref().and_then(|agreed| {
            agreed
                .supported_formats()
                .find(|(_, codec)| codec.is_audio())
                .map(|(f, codec)| (f.payload_type, codec))
        });
        let keeps_it = first.is_none_or(|(pt, codec)| {
            answer
                .supported_formats()
                .any(|(f, c)| f.payload_type == pt && c == codec)
        });
        if answer.rtp.is_none() || !keeps_it {
            tracing::info!(call = %self.record, operator, "operator's answer lacks the codec the trunk sends");
            return None;
        }
        Some((answer.rtp, answer.origin()))
    }
}

/// The method of `request` for a record's reason: `re-INVITE` for an INVITE in a dialog.
pub(crate) fn in_dialog_method(request: &SipMessage) -> &'static str {
    match request.method() {
        Some(Method::Invite) => "re-INVITE",
        Some(Method::Update) => "UPDATE",
        _ => "request",
    }
}
