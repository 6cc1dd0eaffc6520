//! PSAP callbacks (RFC 7090): an operator takes the oldest item of the callback worklist
//! (feature code `next_callback`, default `*73`) and siaga calls the abandoned caller back
//! through the trunk's gateways, bridged to that operator's phone. This module owns taking
//! an item, placing the callback, its outcome, and rebuilding the worklist after a restart.
//!
//! A callback is a [`Call`] turned around: its inbound leg ([`super::TrunkLeg`]) is the
//! operator's INVITE to the feature code, its one outbound leg ([`super::OperatorLeg`]) the
//! INVITE to the caller's number at a gateway, and [`Call::callback`] is set. The B2BUA
//! steps of `flow`, `midcall` and `ending` run it as they run an emergency call (the
//! gateway's 2xx answers the operator's INVITE with the relay's SDP, ACKs, re-INVITEs, BYE
//! from either side ends both, the operator's CANCEL cancels the gateway leg), with a hook
//! wherever a callback differs:
//! - the ACD never offers it: [`Acd::start_callback`](crate::engine::acd::Acd::start_callback)
//!   puts the operator on call and the call straight into the connected stage, and no
//!   failure requeues it;
//! - it is no new 112 call record: nothing is recorded as `received`, `answered` or
//!   `ended`; the abandoned call's record gets `callback_started` when the first INVITE
//!   goes out and `callback_ended { outcome }` when it ends — with no gateway up, both at
//!   once (`failed`), so that every `callback_ended` in a timeline closes a
//!   `callback_started` — and, once the relay closes, `callback_media` with its counters
//!   (not `media`: the abandoned call's own counters stay its summary's); the operator's
//!   agent events name that record;
//! - its end never puts anything on the worklist: the item itself is closed (answered) or
//!   put back with one more attempt (busy, no answer, failed);
//! - the operator goes to wrap-up after an answered callback (`Acd::call_ended`), and is
//!   available again at once after one nobody answered (`Acd::callback_unanswered`).
//!
//! Failover: a final response that says the gateway cannot place the call — 408, no
//! response (Timer B, §8.1.3.1), any 5xx, a transport error (a 503, §8.1.3.1) — sends the
//! same INVITE (a new transaction and dialog) to the next gateway that is up and not tried
//! yet, in `trunk.gateways` order (RFC 3263 §4.3, RFC 3261 §16.7); nothing is recorded
//! and the operator's phone keeps ringing back. The ring timeout still counts from the
//! first INVITE. Busy, decline and no answer are the callback's outcome, not failover.
//!
//! Outcome, from the last gateway's final response (RFC 3261 §21): 2xx → answered; 486,
//! 600 → busy; 408, 480, 487, no response and the ring timeout
//! (`acd.callback_ring_timeout_s`) → no answer; any other status (603 among them), a
//! transport error, no common codec, no gateway up, or siaga stopping → failed. The operator's phone
//! shows it: 486 Busy Here, 480 Temporarily Unavailable, 503 Service Unavailable to its
//! INVITE. The operator hanging up before the caller answers (CANCEL, or BYE in the early
//! dialog) CANCELs the gateway leg: no answer.
//!
//! The INVITE to the gateway (RFC 7090 §4): Request-URI `sip:<number>@<gateway>` with
//! `user=phone` when the number is a telephone number (RFC 3261 §19.1.1), `Priority:
//! psap-callback` (RFC 7090 §4: networks let it through call barring and forwarding),
//! From siaga's PSAP identity — the first `trunk.emergency_numbers` entry at the first
//! `sip.domains` domain, e.g. `<sip:112@siaga.test>` — and the same identity as
//! P-Asserted-Identity when the gateway is inside the trust domain (RFC 3325 §5: never
//! asserted to an element outside it), Max-Forwards 70 (a new call, not a forwarded one),
//! and an SDP offer pointing at a new relay: the operator's offer relayed across as a
//! trunk's is to an operator (siaga's own capabilities when the operator's INVITE has
//! none, RFC 3261 §13.2.1). It is built by `flow::place_leg` like an operator's or the
//! backup centre's leg, and goes to the first gateway that is up
//! ([`Engine::trunk_gateways`], answering OPTIONS), in `trunk.gateways` order, then on
//! failover to the next.
//!
//! The relay's caller side faces the operator's phone (the [`Call`]'s inbound leg) and its
//! operator side the caller; the counters recorded when it closes are turned back so that
//! `caller_to_operator` means the caller's audio.
//!
//! The operator's INVITE gets no reliable provisionals (RFC 3262) and no session timer
//! (RFC 4028): both sides of a callback are siaga's own phones and the gateway.
//!
//! The feature-code module (`feature`) authenticates the operator and hands the INVITE
//! over unanswered ([`InboundFeatureCall`]); a callback keeps it (indexed like a trunk's
//! INVITE, so the operator's CANCEL reaches `flow::on_trunk_cancel` before the feature
//! module's own CANCEL handling, which then finds it answered).

use super::feature::InboundFeatureCall;
use super::flow::{LegFrom, LegTarget};
use super::gateway::{gateway_uri, is_failover};
use super::{Call, CallState, CallTimer, LegMedia, LegState, Pii};
use crate::engine::acd::{CallHandle, CallbackItem};
use crate::engine::driver::Engine;
use crate::engine::media::MediaCommand;
use crate::engine::record::{CallEventKind, CallbackOutcome, Party};
use crate::engine::sdp::SdpSession;
use crate::engine::time::Now;
use crate::engine::transaction::Destination;
use crate::engine::trunk_health::Gateway;

/// What makes a [`Call`] a callback (RFC 7090): who placed it, for which worklist item,
/// through which gateway, and how it stands.
#[derive(Clone, Debug)]
pub struct Callback {
    /// The operator who placed it (on call while it lasts).
    pub operator: String,
    /// The worklist item: the abandoned call's record (the [`Call::record`] too) and the
    /// number called back (personal data: log through `Pii`).
    pub item: CallbackItem,
    /// The gateway the current INVITE went to.
    pub gateway: Gateway,
    /// Every gateway tried so far, `gateway` last (`trunk.gateways` order): failover never
    /// tries one twice.
    pub tried: Vec<Gateway>,
    /// The caller answered (the gateway's 2xx was bridged).
    pub answered: bool,
    /// Why it ended unanswered, once siaga decided it (a failure, the ring timeout).
    pub outcome: Option<CallbackOutcome>,
    /// Set when the callback was taken through the API (`callback_ring`): siaga rang the
    /// operator's phone first, and the [`Call`]'s inbound side is that UAC leg; `None`
    /// for `*73`, whose inbound side is the operator's own INVITE.
    pub ring: Option<super::callback_ring::OperatorRing>,
}

/// The outcome a final failure `status` from the gateway means (0: no response at all).
fn outcome_of(status: u16) -> CallbackOutcome {
    match status {
        486 | 600 => CallbackOutcome::Busy,
        0 | 408 | 480 | 487 => CallbackOutcome::NoAnswer,
        _ => CallbackOutcome::Failed,
    }
}

/// The final response to the operator's INVITE for a callback that ended `outcome`
/// unanswered, so the phone shows why.
fn operator_status(outcome: CallbackOutcome) -> (u16, &'static str) {
    match outcome {
        CallbackOutcome::Busy => (486, "Busy Here"),
        CallbackOutcome::NoAnswer => (480, "Temporarily Unavailable"),
        CallbackOutcome::Answered | CallbackOutcome::Failed => (503, "Service Unavailable"),
    }
}

impl Engine {
    // ---- getters and the restart -----------------------------------------------------------

    /// The callback worklist (RFC 7090), oldest first.
    pub fn callbacks(&self) -> &[CallbackItem] {
        self.calls.acd.worklist.items()
    }

    /// Puts `items` (the worklist as the event log has it, `Store::callback_worklist`,
    /// rebuilt by the shell at start) on the worklist; an item already listed is not added
    /// twice.
    pub fn restore_callbacks(&mut self, items: impl IntoIterator<Item = CallbackItem>) {
        let mut restored = 0usize;
        for item in items {
            self.calls.acd.worklist.add(item);
            restored += 1;
        }
        tracing::info!(
            restored,
            listed = self.calls.acd.worklist.items().len(),
            "callback worklist rebuilt"
        );
    }

    // ---- taking an item and placing the callback ------------------------------------------

    /// Operator `operator`, authenticated, dialled the `next_callback` feature code with
    /// `invite`: they take the oldest worklist item nobody is calling back, and siaga calls
    /// that caller back through the first gateway that is up (the next on failover),
    /// bridged to the operator's phone once the caller answers (see the module docs).
    ///
    /// Refusals, each a final response to `invite`, nothing else changed: 488 with a
    /// Warning when its offer cannot be relayed (as a trunk's, RFC 3264 §6); 404 "No
    /// Callback Waiting" when the worklist holds nothing to take; 503 while siaga stops;
    /// 403 with a Warning (399) naming the ACD's refusal (the operator is ringing, on a
    /// call, or logged out: the item goes back untouched). With no gateway up the item is
    /// taken and fails at once: 503, recorded as a `callback_started` and a
    /// `callback_ended` (`failed`).
    pub(crate) fn take_callback(&mut self, now: Now, operator: &str, invite: InboundFeatureCall) {
        let respond = |engine: &mut Engine, status: (u16, &str), headers: &[(&str, String)]| {
            engine.refuse_feature_call(now, &invite, status, headers);
        };
        if self.stopping {
            return respond(self, (503, "Service Unavailable"), &[]);
        }
        let offer = match self.read_trunk_offer(&invite.invite) {
            Ok(offer) => offer,
            Err((code, why)) => {
                tracing::info!(
                    operator,
                    why,
                    "callback refused: the phone's offer cannot be relayed"
                );
                let warning = [("Warning", self.warning(code, &why))];
                return respond(self, (488, "Not Acceptable Here"), &warning);
            }
        };
        let Some(item) = self.calls.acd.worklist.take(operator) else {
            tracing::info!(operator, "no callback waiting");
            return respond(self, (404, "No Callback Waiting"), &[]);
        };
        let Some(gateway) = self.gateway_up(&[]) else {
            self.callback_without_gateway(now, operator, &item);
            return respond(self, (503, "Service Unavailable"), &[]);
        };
        let handle = self.calls.new_call_handle();
        if let Err(error) = self
            .calls
            .acd
            .start_callback(operator, handle, item.record, now.mono)
        {
            tracing::info!(operator, %error, "callback refused by the ACD");
            self.calls.acd.worklist.release(item.record);
            let warning = [("Warning", self.warning(399, &error.to_string()))];
            return respond(self, (403, "Forbidden"), &warning);
        }
        let late_offer = offer.is_none();
        let mut media = LegMedia::new(SdpSession::random(&mut self.rng));
        media.remote_origin = offer.as_ref().map(|o| o.origin());
        media.allows_update = super::flow::allows_update(&invite.invite);
        let trunk_offer =
            offer.or_else(|| super::flow::capability_offer(self.config.calls.media_ip));
        let record = item.record;
        let max_forwards = invite.invite.max_forwards().ok().flatten().unwrap_or(70);
        let call = Call {
            record,
            position: handle.0,
            state: CallState::Offering {
                operators: vec![operator.to_owned()],
                attempt: 1,
            },
            attempts: 1,
            trunk: super::TrunkLeg {
                invite: invite.invite,
                tx: invite.tx,
                target: invite.target,
                received_from: invite.received_from,
                source: invite.source,
                local_tag: invite.local_tag,
                media,
                max_forwards,
                dialog: None,
                reliable: None,
            },
            legs: Default::default(),
            caller: None,
            // Opened with the first INVITE (`leg_offer`), its caller side at the phone.
            relay: None,
            trunk_offer,
            late_offer,
            received_at: now.mono,
            exchange: None,
            session_timer: None,
            pending_refresh: None,
            repeat: false,
            transfer: None,
            callback: Some(Callback {
                operator: operator.to_owned(),
                item,
                tried: vec![gateway.clone()],
                gateway,
                answered: false,
                outcome: None,
                ring: None,
            }),
        };
        self.calls.by_invite.insert(call.trunk.tx, handle);
        // A 180 creates an early dialog (§12.1.1): a BYE in it hangs up like a CANCEL.
        self.calls
            .by_dialog
            .insert(call.trunk.dialog_key(), (handle, None));
        self.calls.calls.insert(handle, call);
        self.send_provisional(now, handle, 100, "Trying");
        self.agent_events(now);
        self.place_callback(now, handle);
    }

    /// `operator` took `item` but no trunk gateway is up: it fails at once, recorded as a
    /// `callback_started` and a `callback_ended` (`failed`), and goes back with one more
    /// attempt.
    pub(super) fn callback_without_gateway(
        &mut self,
        now: Now,
        operator: &str,
        item: &CallbackItem,
    ) {
        tracing::warn!(operator, call = %item.record, "callback failed: no trunk gateway is up");
        self.calls
            .acd
            .worklist
            .finish(item.record, CallbackOutcome::Failed);
        // A started/ended pair like any callback attempt: the timeline reads "1001
        // called back, failed", and every `callback_ended` closes a `callback_started`.
        for kind in [
            CallEventKind::CallbackStarted {
                operator: operator.to_owned(),
            },
            CallEventKind::CallbackEnded {
                operator: operator.to_owned(),
                outcome: CallbackOutcome::Failed,
            },
        ] {
            self.emit(item.record, now, kind);
        }
    }

    /// Sends callback `handle`'s INVITE to its current gateway (see the module docs) as a
    /// leg like an operator's (`place_leg`); the first one arms the ring timeout and
    /// records `callback_started` (unless siaga rang the operator first, which recorded
    /// it: `callback_ring`), a failover's (`callback_leg_failed`) neither.
    pub(super) fn place_callback(&mut self, now: Now, handle: CallHandle) {
        let Some(callback) = self.callback_of(handle).cloned() else {
            return;
        };
        let Some((mut offer, _)) = self.leg_offer(handle) else {
            return;
        };
        if let Some((relay, _, _)) = self.calls.calls.get(&handle).and_then(|c| c.relay) {
            self.calls.callback_relays.insert(relay);
        }
        let domain = self.config.domains.first().cloned().unwrap_or_default();
        let psap = self
            .config
            .calls
            .emergency_numbers
            .first()
            .map_or("112", String::as_str);
        offer.from = LegFrom::Psap(format!("<sip:{psap}@{domain}>"));
        offer.priority = Some("psap-callback");
        let gateway = &callback.gateway;
        let uri = gateway_uri(&callback.item.caller, gateway);
        let target = LegTarget {
            name: callback.operator.clone(),
            to: format!("<{uri}>"),
            uri,
            destination: Destination {
                transport: gateway.transport,
                address: gateway.address,
                connection: None,
            },
            trust: self.config.calls.trust_of(gateway.address.ip()),
            flow: None,
        };
        // Max-Forwards 70: a new call, not a forwarded one.
        if self
            .place_leg(now, (handle, 1), 70, &offer, target)
            .is_none()
        {
            return self.callback_failed(now, handle, CallbackOutcome::Failed);
        }
        tracing::info!(
            call = %callback.item.record,
            operator = %callback.operator,
            caller = %Pii(&callback.item.caller),
            %gateway,
            attempt = callback.item.attempts + 1,
            "callback placed"
        );
        if callback.tried.len() > 1 {
            return;
        }
        self.calls.schedule(
            now.mono + self.config.calls.acd.callback_ring_timeout,
            CallTimer::RingTimeout(handle, 1),
        );
        if callback.ring.is_some() {
            return;
        }
        self.emit(
            callback.item.record,
            now,
            CallEventKind::CallbackStarted {
                operator: callback.operator,
            },
        );
    }

    // ---- hooks in the call's steps (`flow`) -------------------------------------------------

    /// The callback of `handle`, if it is one.
    pub(super) fn callback_of(&self, handle: CallHandle) -> Option<&Callback> {
        self.calls.calls.get(&handle)?.callback.as_ref()
    }

    /// Whether `handle` is a callback.
    pub(super) fn is_callback(&self, handle: CallHandle) -> bool {
        self.callback_of(handle).is_some()
    }

    /// The outbound leg of answered call `handle` failed mid-call for `reason`
    /// (`leg_loss`). Returns whether it is a callback: that leg is the caller, so nothing
    /// is re-queued and the callback ends (answered), the operator's phone getting BYE,
    /// the caller's leg too unless its BYE said why (`Hangup::Received`).
    pub(super) fn callback_leg_lost(
        &mut self,
        now: Now,
        handle: CallHandle,
        reason: &str,
        hangup: super::leg_loss::Hangup,
    ) -> bool {
        let Some(callback) = self.callback_of(handle) else {
            return false;
        };
        tracing::info!(call = %callback.item.record, reason, "callback: the caller's leg failed");
        let by = match hangup {
            super::leg_loss::Hangup::Received => Party::Operator,
            super::leg_loss::Hangup::Send => Party::Siaga,
        };
        self.end_call(
            now,
            handle,
            by,
            crate::engine::record::Disposition::Answered,
        );
        true
    }

    /// A provisional response `status` from the gateway: the operator's phone rings back
    /// (180, §13.3.1.1) from the first 18x on — unless siaga rang the phone itself
    /// (`callback_ring`): it answered already, and siaga has no INVITE of its to answer.
    pub(super) fn callback_progress(&mut self, now: Now, handle: CallHandle, status: u16) {
        let ringing = (180..=199).contains(&status)
            && self
                .callback_of(handle)
                .is_some_and(|c| !c.answered && c.outcome.is_none() && c.ring.is_none());
        if ringing {
            self.send_provisional(now, handle, 180, "Ringing");
        }
    }

    /// The gateway's 2xx was bridged (`flow::bridge`): the caller answered. Returns whether
    /// `handle` is a callback (then the ACD and the record are left alone: the operator is
    /// on call already, and the end records the outcome).
    pub(super) fn callback_answered(&mut self, handle: CallHandle) -> bool {
        let Some(callback) = self
            .calls
            .calls
            .get_mut(&handle)
            .and_then(|c| c.callback.as_mut())
        else {
            return false;
        };
        callback.answered = true;
        tracing::info!(
            call = %callback.item.record,
            operator = %callback.operator,
            "callback answered"
        );
        true
    }

    /// A final failure `status` on leg `leg_no` (0: no response), or its transaction's
    /// end. Returns whether `handle` is a callback, which then fails over to the next
    /// gateway up when `status` says this one cannot place it (`is_failover`), else ends
    /// with the outcome the status means, unless siaga had given the leg up already (its
    /// CANCEL is out).
    pub(super) fn callback_leg_failed(
        &mut self,
        now: Now,
        handle: CallHandle,
        leg_no: u32,
        status: u16,
    ) -> bool {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return false;
        };
        if call.callback.is_none() {
            return false;
        }
        // The operator's phone siaga rang did not answer (`callback_ring`).
        if self.callback_ring_failed(now, handle, leg_no, status) {
            return true;
        }
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return true;
        };
        let Some(leg) = call.legs.remove(&leg_no) else {
            return true;
        };
        if matches!(leg.state, LegState::Cancelled | LegState::CancelPending) {
            return true;
        }
        let record = call.record;
        let tried = call
            .callback
            .as_ref()
            .filter(|c| is_failover(status) && !c.answered && c.outcome.is_none())
            .map(|c| c.tried.clone());
        let next = tried.and_then(|tried| self.gateway_up(&tried));
        if let Some(next) = next
            && let Some(callback) = self
                .calls
                .calls
                .get_mut(&handle)
                .and_then(|c| c.callback.as_mut())
        {
            tracing::info!(
                call = %record,
                status,
                failed = %callback.gateway,
                next = %next,
                "callback: the gateway cannot place it, trying the next one"
            );
            callback.tried.push(next.clone());
            callback.gateway = next;
            self.place_callback(now, handle);
            return true;
        }
        tracing::info!(call = %record, status, "callback not answered");
        self.callback_failed(now, handle, outcome_of(status));
        true
    }

    /// The ring timeout of `handle`'s offer `attempt` passed. Returns whether it is a
    /// callback, which then ends as not answered unless the caller answered already.
    /// Attempt 0 is the operator's phone siaga rang (`callback_ring`): it counts only
    /// while that phone rings.
    pub(super) fn callback_ring_timeout(
        &mut self,
        now: Now,
        handle: CallHandle,
        attempt: u32,
    ) -> bool {
        let Some(callback) = self.callback_of(handle) else {
            return false;
        };
        if attempt == 0 {
            let ringing = callback.ring.as_ref().is_some_and(|r| r.ack.is_none());
            if ringing {
                tracing::info!(call = %callback.item.record, operator = %callback.operator, "callback: the operator did not answer within the ring timeout");
                self.callback_failed(now, handle, CallbackOutcome::NoAnswer);
            }
            return true;
        }
        if !callback.answered {
            tracing::info!(call = %callback.item.record, "callback: no answer within the ring timeout");
            self.callback_failed(now, handle, CallbackOutcome::NoAnswer);
        }
        true
    }

    /// The offer of `handle` failed otherwise (the gateway's 2xx had no codec in common).
    /// Returns whether it is a callback, which then ends as failed.
    pub(super) fn callback_offer_failed(&mut self, now: Now, handle: CallHandle) -> bool {
        if !self.is_callback(handle) {
            return false;
        }
        self.callback_failed(now, handle, CallbackOutcome::Failed);
        true
    }

    /// Callback `handle` ends unanswered with `outcome`: the operator's INVITE gets the
    /// failure that shows it, a gateway leg still ringing is CANCELled (`end_call`).
    pub(super) fn callback_failed(
        &mut self,
        now: Now,
        handle: CallHandle,
        outcome: CallbackOutcome,
    ) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        if let Some(callback) = call.callback.as_mut() {
            callback.outcome = Some(outcome);
        }
        // An operator's phone siaga rang itself has no INVITE of its to answer.
        if call.trunk.dialog.is_none() && !call.inbound_placed() {
            let invite = call.trunk.invite.clone();
            let (tx, tag, received) = (
                call.trunk.tx,
                call.trunk.local_tag.clone(),
                call.trunk.received_from,
            );
            self.refuse_call(
                now,
                tx,
                &invite,
                (&tag, received),
                operator_status(outcome),
                &[],
            );
        }
        self.end_call(
            now,
            handle,
            Party::Siaga,
            crate::engine::record::Disposition::Failed,
        );
    }

    /// The end of callback `call` (`handle`), removed from the table by `end_call` once its
    /// legs were hung up (`by` is the side of the [`Call`]: `Caller` is the operator's
    /// phone, `Operator` the caller): the operator to wrap-up (answered) or available
    /// (not), the item closed or put back, `callback_ended` on the abandoned call's record,
    /// the relay closed.
    pub(super) fn callback_ended(
        &mut self,
        now: Now,
        handle: CallHandle,
        call: Call,
        callback: Callback,
        by: Party,
    ) {
        let outcome = match (callback.answered, callback.outcome, by) {
            (true, _, _) => CallbackOutcome::Answered,
            (false, Some(outcome), _) => outcome,
            // The operator hung up before the caller answered.
            (false, None, Party::Caller) => CallbackOutcome::NoAnswer,
            (false, None, _) => CallbackOutcome::Failed,
        };
        let operator = callback.operator;
        if callback.answered {
            self.calls.acd.call_ended(handle, &operator, now.mono);
        } else {
            self.calls
                .acd
                .callback_unanswered(handle, &operator, now.mono);
        }
        self.calls.acd.worklist.finish(call.record, outcome);
        // The transitions name the record: out before the ACD forgets the call.
        self.agent_events(now);
        self.calls.acd.forget(handle);
        if let Some((relay, _, _)) = call.relay {
            self.media(MediaCommand::Close { relay });
        }
        tracing::info!(
            call = %call.record,
            operator,
            outcome = outcome.as_str(),
            duration_ms = now.mono.saturating_since(call.received_at).as_millis() as u64,
            "callback ended"
        );
        self.emit(
            call.record,
            now,
            CallEventKind::CallbackEnded { operator, outcome },
        );
        self.dispatch(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes_and_back_to_what_the_phone_shows() {
        use CallbackOutcome::{Busy, Failed, NoAnswer};
        let table = [
            (486, Busy, 486),
            (600, Busy, 486),
            (408, NoAnswer, 480),
            (480, NoAnswer, 480),
            (487, NoAnswer, 480),
            (0, NoAnswer, 480),
            (603, Failed, 503),
            (404, Failed, 503),
            (503, Failed, 503),
        ];
        for (status, outcome, shown) in table {
            assert_eq!(outcome_of(status), outcome, "{status}");
            assert_eq!(operator_status(outcome).0, shown, "{status}");
        }
    }
}
