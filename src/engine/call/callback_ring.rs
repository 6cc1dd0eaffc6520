//! PSAP callbacks taken through the API (issue 6 point 4, `POST /api/callbacks/next`):
//! there is no INVITE from the operator's phone, so siaga rings the phone first and calls
//! the caller back once the operator answers. This module owns taking the item for the
//! API, ringing the operator, and turning the phone's answer into the callback's inbound
//! side; everything after is the `*73` callback of `callback`.
//!
//! Design (the `*73` machinery kept, not a second call shape): a callback is a [`Call`]
//! turned around whose inbound side ([`super::TrunkLeg`]) faces the operator's phone. For
//! `*73` that side is the phone's INVITE, answered by siaga (UAS). Here it is a dialog
//! siaga creates as UAC:
//! 1. [`Engine::take_callback_for`] takes the oldest item (the `*73` rules: see its
//!    errors), puts the operator on call (`Acd::start_callback`), opens the relay, records
//!    `callback_started` and sends an INVITE to the operator's first reachable binding
//!    (`Registrar::targets`; one binding, not all of them: the operator asked from one
//!    desk). It is a leg like a queued call's offer (`flow::send_leg_invite`: a new
//!    dialog, RFC 3261 §8.1.1, Max-Forwards 70), From `"CALLBACK <number>"
//!    <sip:<number>@<domain>>` (and the same P-Asserted-Identity: phones are inside the
//!    trust domain, RFC 3325 §5), offering siaga's capabilities (PCMA, PCMU,
//!    telephone-event) at the relay's caller side. It is kept in [`Call::legs`] as
//!    attempt 0, and [`super::Callback::ring`] names it. The [`super::TrunkLeg`] holds
//!    that INVITE as sent (its Call-ID and siaga's From tag key the dialog, see
//!    [`super::TrunkLeg::dialog_key`]) and [`TxId::NEVER`] as its server transaction: no
//!    response is ever sent on that side, and every step that would answer the phone's
//!    INVITE (`callback_failed`, `interrupt_calls`, the 180 of `callback_progress`)
//!    checks [`Call::inbound_placed`].
//! 2. The phone does not answer within the queue's ring timeout (`queues[].ring_timeout_s`,
//!    [`CallTimer::RingTimeout`] of attempt 0), rejects, or fails: the callback ends
//!    `no_answer` (CANCEL to the phone, §9.1), the item goes back with one more attempt,
//!    the operator is available again (`Acd::callback_unanswered`).
//! 3. The phone answers: its 2xx is ACKed (§13.2.2.4, again for each retransmission), the
//!    ring leg leaves [`Call::legs`] and its dialog becomes the inbound side's
//!    ([`super::TrunkLeg::dialog`], indexed as the trunk side), the relay's caller side
//!    points at the phone, and the phone's answer stands for the operator's offer
//!    ([`Call::trunk_offer`]); siaga's SDP on that side ([`super::LegMedia::local`]) is its
//!    offer narrowed to the formats answered. From here the call is a `*73` callback whose
//!    inbound side was answered already — the shape of a re-queued call (`leg_loss`): the
//!    gateway's INVITE (`callback::place_callback`: same Request-URI, `Priority:
//!    psap-callback`, PSAP identity, failover, `acd.callback_ring_timeout_s`) offers only
//!    the formats the phone answered, the gateway's 2xx must keep the phone's codec
//!    (`Call::reanswered`) and is bridged by pointing the relay's other side at it, with no
//!    2xx to send to the phone. Outcomes and records are those of `*73`
//!    (`callback_ended {outcome}`, `callback_media`, wrap-up after an answer).
//! 4. The operator hanging up while the caller's leg rings is a BYE in the confirmed
//!    dialog: the gateway's leg is CANCELled and the callback ends `no_answer`, as after a
//!    CANCEL to `*73`. re-INVITEs, UPDATEs and BYEs from the phone are the caller side's
//!    of `midcall`, matched by the dialog's remote tag ([`Call::is_remote_tag`]).

use super::flow::{LegFrom, LegOffer, LegTarget, binding_destination, capability_offer};
use super::{Call, CallState, CallTimer, LegMedia, TrunkLeg, Trust};
use crate::engine::acd::{AgentError, CallHandle, CallbackItem, QueueId};
use crate::engine::dialog::Dialog;
use crate::engine::driver::Engine;
use crate::engine::media::{MediaCommand, Side};
use crate::engine::record::{CallEventKind, CallbackOutcome};
use crate::engine::sdp::{self, SdpSession};
use crate::engine::sip::SipMessage;
use crate::engine::time::Now;
use crate::engine::transaction::{ClientTxId, ResponseTarget, TxId};
use bytes::Bytes;
use std::net::SocketAddr;

/// The INVITE siaga sent to the operator's phone for a callback taken through the API.
#[derive(Clone, Debug)]
pub struct OperatorRing {
    /// Its leg number in [`Call::legs`] while it rings (attempt 0).
    pub leg: u32,
    /// Its client transaction.
    pub tx: ClientTxId,
    /// The ACK of the phone's 2xx, once it answered: resent for each retransmitted 2xx
    /// (RFC 3261 §13.2.2.4).
    pub ack: Option<Bytes>,
}

/// Why [`Engine::take_callback_for`] placed no callback.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackTakeError {
    /// siaga is stopping. Nothing changed.
    #[error("siaga is stopping")]
    Stopping,
    /// The operator has no registered phone siaga can reach. Nothing changed.
    #[error("operator is not registered")]
    NotRegistered,
    /// The worklist holds no item nobody is calling back. Nothing changed.
    #[error("no callback waiting")]
    NoCallbackWaiting,
    /// No trunk gateway is up: the item was taken and failed at once (recorded as a
    /// `callback_started` and a `callback_ended` `failed`, one more attempt), as for `*73`.
    #[error("no trunk gateway is up")]
    NoGateway,
    /// The ACD refuses the callback: the operator is ringing, on a call, or logged out.
    /// The item went back untouched.
    #[error("{0}")]
    Agent(AgentError),
    /// No RTP ports are free for the callback's relay (`media.rtp_ports`). The item went
    /// back untouched.
    #[error("no RTP ports are free for the callback's relay")]
    NoRelay,
    /// The INVITE to the operator's phone could not be formed from its binding: the item
    /// was taken and failed at once (a `callback_started` and a `callback_ended`
    /// `failed`, one more attempt); the operator is available again.
    #[error("the INVITE to the operator's phone could not be formed")]
    Failed,
}

impl CallbackTakeError {
    /// A stable code for the API: `stopping`, `not_registered`, `no_callback_waiting`,
    /// `no_gateway`, `unknown_operator`, `not_allowed`, `no_relay`, `failed`.
    pub const fn code(&self) -> &'static str {
        match self {
            CallbackTakeError::Stopping => "stopping",
            CallbackTakeError::NotRegistered
            | CallbackTakeError::Agent(AgentError::NotRegistered) => "not_registered",
            CallbackTakeError::NoCallbackWaiting => "no_callback_waiting",
            CallbackTakeError::NoGateway => "no_gateway",
            CallbackTakeError::Agent(AgentError::UnknownOperator(_)) => "unknown_operator",
            CallbackTakeError::Agent(AgentError::NotAllowed { .. }) => "not_allowed",
            CallbackTakeError::NoRelay => "no_relay",
            CallbackTakeError::Failed => "failed",
        }
    }
}

/// The From of the INVITE to the operator's phone: `"CALLBACK <number>"
/// <sip:<user>@<domain>>`, the display name a quoted-string (RFC 3261 §25.1: `"` and `\`
/// escaped, control characters dropped), the user part escaped outside `unreserved`.
fn ring_from(number: &str, domain: &str) -> String {
    let mut display = String::with_capacity(number.len() + 9);
    display.push_str("CALLBACK ");
    for c in number.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            display.push('\\');
        }
        display.push(c);
    }
    let mut user = super::gateway::escape_user(number);
    if user.is_empty() {
        user.push_str("anonymous");
    }
    format!("\"{display}\" <sip:{user}@{domain}>")
}

impl Call {
    /// Whether the inbound side is a leg siaga placed to the operator's phone (a callback
    /// taken through the API, see `callback_ring`): it has no INVITE to answer.
    pub(crate) fn inbound_placed(&self) -> bool {
        self.callback.as_ref().is_some_and(|c| c.ring.is_some())
    }
}

impl Engine {
    /// Operator `operator` takes the oldest worklist item nobody is calling back, through
    /// the API: siaga rings the operator's phone, and once it answers calls the caller
    /// back through the trunk's gateways (see the module docs). Returns the item taken
    /// (`attempts`: the attempts before this one); the outcome comes on the abandoned
    /// call's record (`callback_ended`).
    ///
    /// Errors ([`CallbackTakeError`]), checked in this order: siaga stopping, the operator
    /// with no reachable binding, the ACD's refusal, nothing to take, no gateway up, no
    /// relay ports, an INVITE that could not be formed.
    pub fn take_callback_for(
        &mut self,
        now: Now,
        operator: &str,
    ) -> Result<CallbackItem, CallbackTakeError> {
        if self.stopping {
            return Err(CallbackTakeError::Stopping);
        }
        let Some((contact, destination, flow)) = self.registrar.targets(operator).next().map(|b| {
            (
                b.contact_uri.to_string(),
                binding_destination(b),
                b.outbound.clone(),
            )
        }) else {
            return Err(CallbackTakeError::NotRegistered);
        };
        // The ACD's refusal before anything is taken: an operator ringing, on a call or
        // logged out uses up no item's attempt (nor records a failed one, below).
        let handle = self.calls.new_call_handle();
        if let Err(error) = self
            .calls
            .acd
            .can_start_callback(operator, handle, now.mono)
        {
            tracing::info!(operator, %error, "callback refused by the ACD");
            return Err(CallbackTakeError::Agent(error));
        }
        let Some(item) = self.calls.acd.worklist.take(operator) else {
            tracing::info!(operator, "no callback waiting");
            return Err(CallbackTakeError::NoCallbackWaiting);
        };
        let Some(gateway) = self.gateway_up(&[]) else {
            self.callback_without_gateway(now, operator, &item);
            return Err(CallbackTakeError::NoGateway);
        };
        if let Err(error) = self
            .calls
            .acd
            .start_callback(operator, handle, item.record, now.mono)
        {
            tracing::info!(operator, %error, "callback refused by the ACD");
            self.calls.acd.worklist.release(item.record);
            return Err(CallbackTakeError::Agent(error));
        }
        let media_ip = self.config.calls.media_ip;
        let mut session = SdpSession::random(&mut self.rng);
        let relay = self.open_relay(item.record);
        let body = relay.and_then(|(_, caller_port, _)| {
            let capabilities = capability_offer(media_ip)?;
            sdp::offer_across(
                &capabilities,
                SocketAddr::new(media_ip, caller_port),
                &mut session,
            )
            .ok()
        });
        let (Some(relay), Some(body)) = (relay, body) else {
            // Undone: the operator available, the item untouched. (A relay opened for an
            // offer siaga could not write is closed; its ports come back with its report.)
            if let Some((relay, _, _)) = relay {
                self.media(MediaCommand::Close { relay });
            }
            self.calls
                .acd
                .callback_unanswered(handle, operator, now.mono);
            self.calls.acd.forget(handle);
            self.calls.acd.worklist.release(item.record);
            self.agent_events(now);
            return Err(CallbackTakeError::NoRelay);
        };
        // Its report is the callback's media (`callback_media`), whatever happens next.
        self.calls.callback_relays.insert(relay.0);
        let domain = self.config.domains.first().cloned().unwrap_or_default();
        let offer = LegOffer {
            session,
            body: Some(body.clone()),
            from: LegFrom::Psap(ring_from(&item.caller, &domain)),
            repeat: false,
            priority: None,
        };
        let target = LegTarget {
            name: operator.to_owned(),
            uri: contact,
            to: format!("<sip:{operator}@{domain}>"),
            destination,
            trust: Trust::Inside,
            flow,
        };
        self.emit(
            item.record,
            now,
            CallEventKind::CallbackStarted {
                operator: operator.to_owned(),
            },
        );
        let sent = self
            .send_leg_invite(now, (handle, 0), 70, &offer, target)
            .and_then(|(leg_no, leg)| {
                let request = self.calls.invites.get(&leg.tx)?.request.clone();
                let local_tag = request.from().ok()?.tag()?.to_owned();
                Some((leg_no, leg, request, local_tag))
            });
        let Some((leg_no, leg, request, local_tag)) = sent else {
            tracing::error!(
                operator,
                "callback: the INVITE to the operator's phone could not be formed"
            );
            self.calls
                .acd
                .worklist
                .finish(item.record, CallbackOutcome::Failed);
            self.calls
                .acd
                .callback_unanswered(handle, operator, now.mono);
            self.agent_events(now);
            self.calls.acd.forget(handle);
            self.media(MediaCommand::Close { relay: relay.0 });
            self.emit(
                item.record,
                now,
                CallEventKind::CallbackEnded {
                    operator: operator.to_owned(),
                    outcome: CallbackOutcome::Failed,
                },
            );
            return Err(CallbackTakeError::Failed);
        };
        let ring = super::OperatorRing {
            leg: leg_no,
            tx: leg.tx,
            ack: None,
        };
        let address = leg.destination.address;
        let transport = leg.destination.transport;
        let call = Call {
            record: item.record,
            position: handle.0,
            state: CallState::Offering {
                operators: vec![operator.to_owned()],
                attempt: 1,
            },
            attempts: 1,
            trunk: TrunkLeg {
                invite: request,
                tx: TxId::NEVER,
                target: ResponseTarget {
                    transport,
                    destination: address,
                    connection: leg.destination.connection,
                    reconnect: address,
                },
                received_from: address,
                source: leg.destination,
                local_tag,
                media: LegMedia {
                    local: Some(body),
                    ..LegMedia::new(session)
                },
                max_forwards: 70,
                dialog: None,
                reliable: None,
            },
            legs: [(leg_no, leg)].into_iter().collect(),
            caller: None,
            relay: Some(relay),
            trunk_offer: None,
            late_offer: false,
            received_at: now.mono,
            exchange: None,
            session_timer: None,
            pending_refresh: None,
            repeat: false,
            transfer: None,
            callback: Some(super::Callback {
                operator: operator.to_owned(),
                item: item.clone(),
                tried: vec![gateway.clone()],
                gateway,
                answered: false,
                outcome: None,
                ring: Some(ring),
            }),
        };
        self.calls.calls.insert(handle, call);
        let queue = self.calls.acd.entry(handle).map_or(QueueId(0), |e| e.queue);
        let ring_timeout = self.calls.acd.queue(queue).ring_timeout;
        self.calls
            .schedule(now.mono + ring_timeout, CallTimer::RingTimeout(handle, 0));
        tracing::info!(
            call = %item.record,
            operator,
            caller = %super::Pii(&item.caller),
            attempt = item.attempts + 1,
            "callback taken through the API: ringing the operator's phone"
        );
        self.agent_events(now);
        // The INVITE waits in its client transaction until collected: out now (its
        // Timer A runs from now).
        self.collect(now);
        Ok(item)
    }

    /// Whether leg `leg_no` of `handle` is the operator's phone a callback from the API
    /// rings, not answered yet.
    pub(super) fn is_callback_ring_leg(&self, handle: CallHandle, leg_no: u32) -> bool {
        self.callback_of(handle)
            .and_then(|c| c.ring.as_ref())
            .is_some_and(|r| r.leg == leg_no && r.ack.is_none())
    }

    /// Whether `response`, a 2xx on client transaction `tx`, is the operator's phone's
    /// answer to a callback's INVITE again (the same dialog: its To tag), after siaga
    /// ACKed it.
    pub(super) fn is_callback_ring_2xx_again(
        &self,
        handle: CallHandle,
        tx: ClientTxId,
        response: &SipMessage,
    ) -> bool {
        let Some(call) = self.calls.calls.get(&handle) else {
            return false;
        };
        let answered = call
            .callback
            .as_ref()
            .and_then(|c| c.ring.as_ref())
            .is_some_and(|r| r.tx == tx && r.ack.is_some());
        let tag = response
            .to()
            .ok()
            .and_then(|to| to.tag().map(str::to_owned));
        answered
            && call
                .trunk
                .dialog
                .as_ref()
                .is_some_and(|d| Some(&d.remote_tag) == tag.as_ref())
    }

    /// Resends the ACK of the operator's phone's 2xx to a callback's INVITE (§13.2.2.4).
    pub(super) fn resend_callback_ring_ack(&mut self, handle: CallHandle) {
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let ack = call
            .callback
            .as_ref()
            .and_then(|c| c.ring.as_ref())
            .and_then(|r| r.ack.clone());
        if let (Some(ack), Some(dialog)) = (ack, call.trunk.dialog.as_ref()) {
            let destination = dialog.destination;
            self.transmit(destination, ack);
        }
    }

    /// The operator's phone answered a callback's INVITE (leg `leg_no`, client
    /// transaction `tx`) with `response`: ACKed, made the inbound side, and the caller
    /// called back through the gateway (see the module docs, step 3). An answer siaga
    /// cannot use (no dialog, no G.711 format, no RTP address) is ACKed and ended with
    /// BYE, and the callback fails.
    pub(super) fn callback_ring_answered(
        &mut self,
        now: Now,
        tx: ClientTxId,
        (handle, leg_no): (CallHandle, u32),
        response: &SipMessage,
    ) {
        let Some(out) = self.calls.invites.get(&tx) else {
            return;
        };
        let dialog = Dialog::as_uac(&out.request, response, out.destination);
        let answer = sdp::parse(response.body()).ok().filter(|a| {
            a.rtp.is_some() && a.supported_formats().any(|(_, codec)| codec.is_audio())
        });
        let media_ip = self.config.calls.media_ip;
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let record = call.record;
        let (dialog, answer) = match (dialog, answer) {
            (Ok(dialog), Some(answer)) => (dialog, answer),
            (dialog, _) => {
                let why = match dialog {
                    Err(error) => format!("2xx forms no dialog: {error}"),
                    Ok(_) => "no usable SDP answer".to_owned(),
                };
                tracing::info!(call = %record, why, "callback: the operator's phone answered what siaga cannot use");
                call.legs.remove(&leg_no);
                self.ack_and_bye(now, tx, response);
                return self.callback_failed(now, handle, CallbackOutcome::Failed);
            }
        };
        let ack = dialog
            .ack(1, &self.config.via_host(), &self.new_branch())
            .build();
        self.transmit(dialog.destination, ack.clone());
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        call.legs.remove(&leg_no);
        if let Some(ring) = call.callback.as_mut().and_then(|c| c.ring.as_mut()) {
            ring.ack = Some(ack);
        }
        // siaga's SDP on the phone's side: its offer narrowed to the formats answered, so
        // that the gateway's answer must keep the codec the phone sends
        // (`Call::reanswered`).
        let relay = call.relay;
        if let Some((_, caller_port, _)) = relay
            && let Ok(agreed) = sdp::offer_across(
                &answer,
                SocketAddr::new(media_ip, caller_port),
                &mut call.trunk.media.sdp,
            )
        {
            call.trunk.media.local = Some(agreed);
        }
        call.trunk.media.remote_origin = Some(answer.origin());
        call.trunk.media.allows_update = super::flow::allows_update(response);
        call.trunk.source = dialog.destination;
        let key = dialog.key();
        call.trunk.dialog = Some(dialog);
        let rtp = answer.rtp;
        call.trunk_offer = Some(answer);
        self.calls.by_dialog.insert(key, (handle, None));
        if let (Some((relay, _, _)), Some(rtp)) = (relay, rtp) {
            self.media(MediaCommand::SetPeer {
                relay,
                side: Side::Caller,
                rtp,
            });
        }
        tracing::info!(call = %record, "callback: the operator answered, calling the caller back");
        self.place_callback(now, handle);
    }

    /// A final failure `status` (0: no response; 503: a transport error) on leg `leg_no`
    /// of callback `handle`. Returns whether it was the operator's phone siaga rang, not
    /// answered: the callback then ends `no_answer` (unless siaga had CANCELled it).
    pub(super) fn callback_ring_failed(
        &mut self,
        now: Now,
        handle: CallHandle,
        leg_no: u32,
        status: u16,
    ) -> bool {
        if !self.is_callback_ring_leg(handle, leg_no) {
            return false;
        }
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return false;
        };
        let Some(leg) = call.legs.remove(&leg_no) else {
            return true;
        };
        if matches!(
            leg.state,
            super::LegState::Cancelled | super::LegState::CancelPending
        ) {
            return true;
        }
        tracing::info!(call = %call.record, operator = %leg.operator, status, "callback: the operator's phone did not answer");
        self.callback_failed(now, handle, CallbackOutcome::NoAnswer);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phone_shows_callback_and_the_number_quoted_and_escaped() {
        assert_eq!(
            ring_from("+628115550001", "siaga.test"),
            "\"CALLBACK +628115550001\" <sip:+628115550001@siaga.test>"
        );
        assert_eq!(
            ring_from("a\"b\\c;d", "siaga.test"),
            "\"CALLBACK a\\\"b\\\\c;d\" <sip:a%22b%5Cc%3Bd@siaga.test>"
        );
        assert_eq!(
            ring_from("", "siaga.test"),
            "\"CALLBACK \" <sip:anonymous@siaga.test>"
        );
    }

    #[test]
    fn every_refusal_has_a_stable_code() {
        let codes = [
            CallbackTakeError::Stopping,
            CallbackTakeError::NotRegistered,
            CallbackTakeError::NoCallbackWaiting,
            CallbackTakeError::NoGateway,
            CallbackTakeError::Agent(AgentError::NotAllowed {
                state: "ringing",
                trigger: "answer",
            }),
            CallbackTakeError::NoRelay,
        ]
        .map(|e| e.code());
        assert_eq!(
            codes,
            [
                "stopping",
                "not_registered",
                "no_callback_waiting",
                "no_gateway",
                "not_allowed",
                "no_relay"
            ]
        );
    }
}
