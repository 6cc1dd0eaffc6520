//! Overflow to the backup centre (issue 5, point 6: never drop a 112 call): the call
//! model's side of the ACD's overflow decisions (`Acd::next_overflow`). A waiting call
//! whose queue has `queues[].overflow_uri` is diverted over a new outbound leg when nobody
//! serving its queue is logged in, or once it waited `overflow_after_s`:
//!
//! - `dispatch` asks after offering to operators, so an available operator always wins;
//! - the leg is an INVITE like an operator's (RFC 3261 §8.1.1: new Call-ID, From tag,
//!   branch; Max-Forwards the trunk's minus one, RFC 7332 §3; SDP across the relay, RFC
//!   3264), but the backup centre is outside siaga's trust domain unless its address is in
//!   `trunk.sources`/`trunk.trust_domain`: no P-Asserted-Identity leaves, and a caller who
//!   asked for privacy is anonymous (RFC 3325 §5, RFC 3323 §4.1.1.3);
//! - the trunk keeps hearing 180 every `queue.ringing_refresh_s` while the backup rings;
//! - a 2xx is bridged like an operator's answer (`bridge`), the call ends `overflowed`;
//! - a final failure, Timer B, a transport error or `overflow_ring_timeout_s` without an
//!   answer (CANCEL, RFC 3261 §9.1) puts the call back at its place in the queue, not
//!   diverted again for `overflow_after_s`;
//! - the caller hanging up while the backup rings CANCELs it (`end_call`), recorded as
//!   `abandoned_while_ringing`.
//!
//! While the backup rings the call is out of the waiting order: an operator who becomes
//! available meanwhile is not offered it (the backup centre may be answering that very
//! moment; pulling the call back would race its 200). Every step is a call event:
//! `overflow_offered`, then `overflow_answered` or `overflow_failed` with the reason.

use super::flow::LegTarget;
use super::{CallState, CallTimer, LegState};
use crate::engine::Transport;
use crate::engine::acd::{CallHandle, Overflow};
use crate::engine::driver::Engine;
use crate::engine::record::{CallEventKind, Disposition};
use crate::engine::sip::SipMessage;
use crate::engine::sip::uri::Uri;
use crate::engine::time::Now;
use crate::engine::transaction::{ClientTxId, Destination};
use std::collections::BTreeSet;

/// Why a SIP URI names no address siaga can send to without DNS (`ip_sip_destination`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpUriError {
    /// Not a SIP URI.
    #[error("not a sip: URI")]
    NotSip,
    /// A `sips:` URI: siaga speaks no TLS.
    #[error("a sips: URI (siaga has no TLS)")]
    Secure,
    /// The host is a name: siaga resolves none (no RFC 3263 lookup).
    #[error("the host is not an IP address (siaga resolves no names)")]
    NotIpLiteral,
    /// The wildcard address, port 0, or URI headers (`?…`).
    #[error("no address to send to (wildcard address, port 0 or URI headers)")]
    Unusable,
    /// A `transport` parameter other than `udp` or `tcp`.
    #[error("transport is neither udp nor tcp")]
    Transport,
}

/// Where a request to the SIP URI `uri` goes when its host is an IP literal: that address
/// at its port (5060 when none, RFC 3261 §19.1.2), over UDP or the `transport=tcp` it
/// names, on a new connection. The one rule for `queues[].overflow_uri` and
/// `trunk.gateways`: the configuration refuses what this refuses, the engine calls what it
/// accepts.
pub fn ip_sip_destination(uri: &str) -> Result<Destination, IpUriError> {
    let parsed = Uri::parse(uri).map_err(|_| IpUriError::NotSip)?;
    let sip = parsed.as_sip().ok_or(IpUriError::NotSip)?;
    if sip.is_secure() {
        return Err(IpUriError::Secure);
    }
    let address = sip.socket_addr().ok_or(IpUriError::NotIpLiteral)?;
    if address.ip().is_unspecified() || address.port() == 0 || !sip.headers().is_empty() {
        return Err(IpUriError::Unusable);
    }
    let transport = match sip.param("transport") {
        None => Transport::Udp,
        Some(Some(t)) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        Some(Some(t)) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(_) => return Err(IpUriError::Transport),
    };
    Ok(Destination {
        transport,
        address,
        connection: None,
    })
}

impl CallState {
    /// The leg bridged to the trunk: the answering operator's, the backup centre's, or a
    /// field agency's after a transfer.
    pub fn bridged_leg(&self) -> Option<u32> {
        match self {
            CallState::Answered { leg, .. }
            | CallState::Overflowed { leg, .. }
            | CallState::Transferred { leg, .. } => Some(*leg),
            _ => None,
        }
    }

    /// The disposition of a call that ends in this state with `disposition`: an answered
    /// call the backup centre took is `overflowed`.
    pub fn disposition(&self, disposition: Disposition) -> Disposition {
        match (self, disposition) {
            (CallState::Overflowed { .. }, Disposition::Answered) => Disposition::Overflowed,
            _ => disposition,
        }
    }

    /// The backup centre's URI while it rings for the call.
    pub(super) fn overflow_target(&self) -> Option<&str> {
        match self {
            CallState::Overflowing { target, .. } => Some(target),
            _ => None,
        }
    }
}

impl Engine {
    /// Diverts every waiting call the ACD says is due to its backup centre (`dispatch`,
    /// after the operators had their chance). Each call is tried once per pass.
    pub(super) fn dispatch_overflow(&mut self, now: Now) {
        let mut tried = BTreeSet::new();
        loop {
            let calls = &self.calls.calls;
            let next = self.calls.acd.next_overflow(now.mono, |call| {
                !tried.contains(&call)
                    && calls.get(&call).is_some_and(|c| {
                        c.state == CallState::Queued
                            && c.trunk.outbound_max_forwards().is_some()
                            && !c.awaits_early_answer()
                    })
            });
            let Some((handle, overflow)) = next else {
                return;
            };
            tried.insert(handle);
            self.overflow(now, handle, &overflow);
        }
    }

    /// Rings the backup centre of `overflow` for call `handle`: one INVITE, its ring
    /// timeout armed. A URI siaga cannot call is recorded as a failed overflow at once.
    fn overflow(&mut self, now: Now, handle: CallHandle, overflow: &Overflow) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let record = call.record;
        let target = overflow.uri.clone();
        call.attempts += 1;
        let attempt = call.attempts;
        call.state = CallState::Overflowing {
            target: target.clone(),
            attempt,
        };
        self.calls.acd.overflowing(handle);
        self.emit(
            record,
            now,
            CallEventKind::OverflowOffered {
                target: target.clone(),
            },
        );
        let destination = match ip_sip_destination(&target) {
            Ok(d) => d,
            Err(error) => {
                tracing::error!(call = %record, %target, %error, "cannot call the overflow URI");
                return self.overflow_back(now, handle, &error.to_string());
            }
        };
        let Some((mut offer, max_forwards)) = self.leg_offer(handle) else {
            return;
        };
        // The REPEAT flag is a hint for siaga's own operators, not a neighbour's From.
        offer.repeat = false;
        // `dispatch_overflow` diverts no call whose leg would need a Max-Forwards below 0.
        let Some(max_forwards) = max_forwards else {
            return self.overflow_back(now, handle, "Max-Forwards exhausted");
        };
        let trust = self.config.calls.trust_of(destination.address.ip());
        tracing::info!(call = %record, %target, ?trust, "overflowing the call to the backup centre");
        let leg = LegTarget {
            name: target.clone(),
            uri: target.clone(),
            to: format!("<{target}>"),
            destination,
            trust,
            flow: None,
        };
        if self
            .place_leg(now, (handle, attempt), max_forwards, &offer, leg)
            .is_none()
        {
            return self.overflow_back(now, handle, "INVITE could not be formed");
        }
        self.calls.schedule(
            now.mono + overflow.ring_timeout,
            CallTimer::OverflowTimeout(handle, attempt),
        );
    }

    /// [`CallTimer::OverflowTimeout`]: overflow attempt `attempt` of `handle` was not
    /// answered in time: CANCEL (§9.1), back to the queue.
    pub(super) fn overflow_timeout(&mut self, now: Now, handle: CallHandle, attempt: u32) {
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        if !matches!(call.state, CallState::Overflowing { attempt: a, .. } if a == attempt) {
            return;
        }
        self.cancel_legs(now, handle, |l| l.attempt == attempt);
        self.overflow_ended(now, handle, "no answer within the ring timeout");
    }

    /// The backup centre's leg `leg` (removed from the call) ended with final `status`
    /// (0: no response, Timer B; 503 for a transport error, RFC 3261 §8.1.3.1): back to
    /// the queue, unless the leg belongs to an earlier attempt or was CANCELled already.
    pub(super) fn overflow_leg_failed(
        &mut self,
        now: Now,
        handle: CallHandle,
        leg: &super::OperatorLeg,
        status: u16,
    ) {
        let current = self.calls.calls.get(&handle).is_some_and(
            |c| matches!(c.state, CallState::Overflowing { attempt, .. } if attempt == leg.attempt),
        );
        if current && !matches!(leg.state, LegState::Cancelled | LegState::CancelPending) {
            self.overflow_ended(now, handle, &super::flow::failure_reason(status));
        }
    }

    /// The backup centre's 2xx on leg `leg_no` carried no answer siaga can relay: ACKed
    /// and ended with BYE (§15), the call back to the queue.
    pub(super) fn overflow_unusable_answer(
        &mut self,
        now: Now,
        tx: ClientTxId,
        (handle, leg_no): (CallHandle, u32),
        response: &SipMessage,
    ) {
        self.ack_and_bye(now, tx, response);
        if let Some(call) = self.calls.calls.get_mut(&handle) {
            call.legs.remove(&leg_no);
        }
        self.overflow_ended(now, handle, "no common codec");
    }

    /// The backup centre `target` answered `handle` (bridged by `bridge`).
    pub(super) fn overflow_answered(&mut self, now: Now, handle: CallHandle, target: String) {
        self.calls.acd.overflow_answered(handle);
        if let Some(record) = self.calls.calls.get(&handle).map(|c| c.record) {
            tracing::info!(call = %record, %target, "call answered by the backup centre");
            self.emit(record, now, CallEventKind::OverflowAnswered { target });
        }
    }

    /// The backup centre's leg of overflowed call `handle` failed mid-call (`reason`, see
    /// `leg_loss`, which released the leg): recorded as a failed overflow; the caller waits
    /// at the head of its priority like after an operator's leg loss, and is not diverted
    /// again for `overflow_after_s`.
    pub(super) fn overflow_leg_lost(
        &mut self,
        now: Now,
        handle: CallHandle,
        target: String,
        reason: &str,
    ) {
        let Some(record) = self.calls.calls.get(&handle).map(|c| c.record) else {
            return;
        };
        self.emit(
            record,
            now,
            CallEventKind::OverflowFailed {
                target,
                reason: format!("mid-call: {reason}"),
            },
        );
        self.calls.acd.requeue(handle, true, now.mono);
        self.calls.acd.overflow_failed(handle, now.mono);
    }

    /// The overflow of `handle` failed (`reason`): back at its place, then the ACD looks
    /// again.
    fn overflow_ended(&mut self, now: Now, handle: CallHandle, reason: &str) {
        self.overflow_back(now, handle, reason);
        self.dispatch(now);
    }

    /// The overflow of `handle` failed (`reason`): recorded, and the call waits again at
    /// its place, not diverted again for `overflow_after_s` (`Acd::overflow_failed`).
    fn overflow_back(&mut self, now: Now, handle: CallHandle, reason: &str) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(target) = call.state.overflow_target().map(str::to_owned) else {
            return;
        };
        let record = call.record;
        call.state = CallState::Queued;
        self.calls.acd.overflow_failed(handle, now.mono);
        tracing::info!(call = %record, %target, reason, "overflow failed: the call waits again at its place");
        self.emit(
            record,
            now,
            CallEventKind::OverflowFailed {
                target,
                reason: reason.to_owned(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_siaga_can_send_to_without_dns() {
        let udp = ip_sip_destination("sip:112@192.0.2.7").expect("udp");
        assert_eq!(
            (udp.transport, udp.address),
            (Transport::Udp, "192.0.2.7:5060".parse().expect("addr"))
        );
        let tcp = ip_sip_destination("sip:112@[2001:db8::7]:5070;transport=TCP").expect("tcp");
        assert_eq!(
            (tcp.transport, tcp.address),
            (Transport::Tcp, "[2001:db8::7]:5070".parse().expect("addr"))
        );
        for (uri, error) in [
            ("tel:+6221112", IpUriError::NotSip),
            ("not a uri", IpUriError::NotSip),
            ("sips:112@192.0.2.7", IpUriError::Secure),
            ("sip:112@psap.example", IpUriError::NotIpLiteral),
            ("sip:112@0.0.0.0", IpUriError::Unusable),
            ("sip:112@192.0.2.7:0", IpUriError::Unusable),
            ("sip:112@192.0.2.7?Subject=x", IpUriError::Unusable),
            ("sip:112@192.0.2.7;transport=sctp", IpUriError::Transport),
        ] {
            assert_eq!(ip_sip_destination(uri), Err(error), "{uri}");
        }
    }
}
