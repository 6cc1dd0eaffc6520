//! Handing a live call to a field agency by transferring it (issue 6, point 4): the
//! operator on an answered call asks for it ([`Engine::transfer`], `POST
//! /api/calls/{id}/transfer`), siaga places a new leg to the agency's
//! `agencies[].transfer_uri` and, once the agency answers, the caller talks to the agency
//! and the operator's leg ends.
//!
//! - The leg is an INVITE like the backup centre's (`overflow`): a new dialog (RFC 3261
//!   §8.1.1), Max-Forwards the trunk's minus one (RFC 7332 §3), the caller's identity as
//!   the agency's trust allows (RFC 3325 §5, RFC 3323 §4.1.1.3), no `REPEAT` flag. Its
//!   SDP is the relay's operator side offering only the formats the caller agreed to
//!   (`Call::operator_offer`, as for a re-queued call, see `leg_loss`).
//! - The operator stays with the caller while the agency rings (the caller is never left
//!   alone on a transfer that may fail). The call stays [`CallState::Answered`], the
//!   transfer in [`Call::transfer`].
//! - A 2xx is ACKed; its answer must hold the codec the caller sends (the first audio
//!   format of siaga's SDP to the trunk, RFC 3264 §6.1), else the leg is ended like an
//!   answer with no common codec. Then only the relay's operator peer changes to the
//!   agency's RTP address: the caller's side of the relay (address, port, formats, SDP
//!   version) stays as negotiated, so the caller needs no re-INVITE or UPDATE (RFC 3261
//!   §14 would only be needed to change the session the caller sees; RFC 3264 §8 describes
//!   a change of the *caller's* session, and there is none). The operator's leg gets BYE
//!   (§15.1.1), the operator goes to wrap-up as after any call, and the call is
//!   [`CallState::Transferred`]. Its disposition stays `answered`.
//! - A final failure, Timer B, a transport error (503, §8.1.3.1) or
//!   `acd.transfer_ring_timeout_s` without an answer (CANCEL, §9.1) ends the transfer:
//!   the operator keeps the caller.
//! - The caller hanging up while the agency rings CANCELs its leg (`end_call`, §9.1).
//! - The operator hanging up (or their leg failing) while the agency rings does not stop
//!   the transfer: the operator asked for the handoff, and cancelling it would leave the
//!   caller with nobody, waiting again for an operator who has to ask the same agency. The
//!   call is [`CallState::Transferring`] (the caller hears nothing meanwhile); the agency
//!   answering bridges the caller, and the transfer failing puts the caller back at the
//!   head of its priority in the queue, as after an operator's leg loss (`leg_loss`).
//! - The agency's leg failing after it answered (`leg_loss`: a BYE with a failure Reason,
//!   silence, a failed re-INVITE) re-queues the caller likewise; the agency hanging up
//!   ends the call.
//! - A `tel:` transfer_uri (`tel:110`, `tel:+62-21-113`) is called like a callback
//!   (`gateway`): Request-URI `sip:<number>@<gateway>;user=phone` at the first trunk
//!   gateway that is up (answering OPTIONS), in `trunk.gateways` order; a 408, 5xx or no
//!   response from it tries the next gateway up not tried yet (RFC 3263 §4.3, RFC 3261
//!   §16.7), within the same ring timeout. With no gateway up the transfer is refused
//!   ([`TransferError::NoGateway`]).
//!
//! Every step is a call event: `transfer_offered`, then `transfer_answered` or
//! `transfer_failed` with the reason, for the incident's handoff (method `call_transfer`)
//! and its outcome.

use super::flow::LegTarget;
use super::gateway::{gateway_uri, is_failover};
use super::leg_loss::Hangup;
use super::overflow::{IpUriError, ip_sip_destination};
use super::{CallState, CallTimer, LegState, OperatorLeg};
use crate::engine::acd::CallHandle;
use crate::engine::dialog::Dialog;
use crate::engine::driver::Engine;
use crate::engine::media::{MediaCommand, Side};
use crate::engine::record::{CallEventKind, Party};
use crate::engine::sip::SipMessage;
use crate::engine::sip::uri::Uri;
use crate::engine::time::Now;
use crate::engine::transaction::{ClientTxId, Destination};
use crate::engine::trunk_health::Gateway;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use uuid::Uuid;

/// One `[[agencies]]` entry as the call model needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferAgency {
    /// `agencies[].id`.
    pub id: String,
    /// `agencies[].transfer_uri`, as written; `None`: no live transfer to this agency.
    pub transfer_uri: Option<String>,
}

/// A transfer under way: the agency's leg rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// `agencies[].id`.
    pub agency: String,
    /// The agency's URI as configured (`agencies[].transfer_uri`, `sip:` or `tel:`).
    pub target: String,
    /// The call's attempt the agency's leg belongs to; the ring timeout names it (a
    /// gateway failover keeps it: one ring timeout for the whole transfer).
    pub attempt: u32,
    /// For a `tel:` target: the number and the gateways it goes through.
    pub gateways: Option<GatewayRoute>,
}

/// How a `tel:` transfer goes out: the number, and the trunk gateways tried so far in
/// `trunk.gateways` order, the current one last (failover never goes back to one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRoute {
    /// The number, without visual separators (RFC 3966 §5.1.1): `110`, `+6221113`.
    pub number: String,
    /// Gateways tried, the one the current INVITE went to last. Never empty.
    pub tried: Vec<Gateway>,
}

/// Why [`Engine::transfer`] placed no leg. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// No live call has this record id.
    #[error("no live call has this id")]
    UnknownCall,
    /// The call is not answered by an operator: waiting, ringing, with the backup centre
    /// or an agency already, or a callback (the operator's own call).
    #[error("the call is not answered by an operator")]
    NotAnswered,
    /// No `[[agencies]]` entry has this id.
    #[error("no agency has this id")]
    UnknownAgency {
        /// The agency ids, in configuration order.
        allowed: Vec<String>,
    },
    /// The agency has no `transfer_uri`: hand off by phone, radio or app.
    #[error("agency {0:?} has no transfer_uri")]
    NoTransferUri(String),
    /// The agency's `transfer_uri` is one siaga cannot call (a `tel:` or `sips:` URI, a
    /// host name: siaga has no TLS and resolves no names).
    #[error("siaga cannot call the agency's transfer_uri: {0}")]
    Unreachable(IpUriError),
    /// The call has no media relay (the port range was exhausted when it came): the media
    /// flows between the caller and the operator directly, and moving it would need a
    /// re-INVITE to the caller, which siaga does not send.
    #[error("the call has no media relay to re-point")]
    NoRelay,
    /// A transfer of this call is ringing already.
    #[error("a transfer of this call is ringing already")]
    InProgress,
    /// The agency's `transfer_uri` is a `tel:` URI, called through `trunk.gateways`, and
    /// no gateway is up (answering OPTIONS).
    #[error("the agency's transfer_uri is a tel: URI and no trunk gateway is up")]
    NoGateway,
}

impl TransferError {
    /// A stable code for the API: `unknown_call`, `not_answered`, `unknown_agency`,
    /// `no_transfer_uri`, `unreachable`, `no_relay`, `in_progress`, `no_gateway`.
    pub const fn code(&self) -> &'static str {
        match self {
            TransferError::UnknownCall => "unknown_call",
            TransferError::NotAnswered => "not_answered",
            TransferError::UnknownAgency { .. } => "unknown_agency",
            TransferError::NoTransferUri(_) => "no_transfer_uri",
            TransferError::Unreachable(_) => "unreachable",
            TransferError::NoRelay => "no_relay",
            TransferError::InProgress => "in_progress",
            TransferError::NoGateway => "no_gateway",
        }
    }
}

impl Engine {
    /// Whether a live call has record id `call`.
    pub fn is_live_call(&self, call: Uuid) -> bool {
        self.calls.calls.values().any(|c| c.record == call)
    }

    /// The operator on live call `call` (record id): the one who answered it, while the
    /// call is [`CallState::Answered`] and no callback.
    pub fn call_operator(&self, call: Uuid) -> Option<&str> {
        let (_, c) = self.calls.calls.iter().find(|(_, c)| c.record == call)?;
        match &c.state {
            CallState::Answered { operator, .. } if c.callback.is_none() => Some(operator),
            _ => None,
        }
    }

    /// Transfers answered call `call` (record id) to agency `agency` (`agencies[].id`):
    /// an INVITE to its `transfer_uri`, rung for `acd.transfer_ring_timeout_s`, the
    /// operator kept with the caller meanwhile (see the module doc). `Ok` once the INVITE
    /// is sent; the outcome comes as `transfer_answered` or `transfer_failed`.
    ///
    /// Errors: [`TransferError`], checked in this order: the call, the agency id, the
    /// call's state, the agency's URI, the relay. Nothing is sent or recorded then.
    pub fn transfer(&mut self, now: Now, call: Uuid, agency: &str) -> Result<(), TransferError> {
        let handle = self
            .calls
            .calls
            .iter()
            .find(|(_, c)| c.record == call)
            .map(|(h, _)| *h)
            .ok_or(TransferError::UnknownCall)?;
        let agencies = &self.config.calls.agencies;
        let entry = agencies.iter().find(|a| a.id == agency).ok_or_else(|| {
            TransferError::UnknownAgency {
                allowed: agencies.iter().map(|a| a.id.clone()).collect(),
            }
        })?;
        let c = &self.calls.calls[&handle];
        let CallState::Answered { operator, .. } = &c.state else {
            return Err(TransferError::NotAnswered);
        };
        if c.callback.is_some() {
            return Err(TransferError::NotAnswered);
        }
        if c.transfer.is_some() {
            return Err(TransferError::InProgress);
        }
        let target = entry
            .transfer_uri
            .clone()
            .ok_or_else(|| TransferError::NoTransferUri(agency.to_owned()))?;
        let gateways = match Uri::parse(&target) {
            Ok(uri @ Uri::Tel(_)) => {
                let number = super::called_number(&uri).ok_or(TransferError::NoGateway)?;
                let gateway = self.gateway_up(&[]).ok_or(TransferError::NoGateway)?;
                Some(GatewayRoute {
                    number,
                    tried: vec![gateway],
                })
            }
            _ => None,
        };
        let leg = self.transfer_leg_target(&target, gateways.as_ref())?;
        if c.relay.is_none() {
            return Err(TransferError::NoRelay);
        }
        // An answered call's trunk INVITE allowed a leg already: Max-Forwards ≥ 1.
        let max_forwards = c
            .trunk
            .outbound_max_forwards()
            .ok_or(TransferError::NotAnswered)?;
        let (operator, record) = (operator.clone(), c.record);
        let (mut offer, _) = self.leg_offer(handle).ok_or(TransferError::UnknownCall)?;
        // The REPEAT flag is a hint for siaga's own operators, not an agency's From.
        offer.repeat = false;
        let Some(c) = self.calls.calls.get_mut(&handle) else {
            return Err(TransferError::UnknownCall);
        };
        c.attempts += 1;
        let attempt = c.attempts;
        let (trust, uri) = (leg.trust, leg.uri.clone());
        tracing::info!(call = %record, operator, agency, %target, %uri, ?trust, "transferring the call to the agency");
        self.emit(
            record,
            now,
            CallEventKind::TransferOffered {
                operator,
                agency: agency.to_owned(),
                target: target.clone(),
            },
        );
        if let Some(c) = self.calls.calls.get_mut(&handle) {
            c.transfer = Some(Transfer {
                agency: agency.to_owned(),
                target: target.clone(),
                attempt,
                gateways,
            });
        }
        if self
            .place_leg(now, (handle, attempt), max_forwards, &offer, leg)
            .is_none()
        {
            self.transfer_ended(now, handle, "INVITE could not be formed");
        } else {
            self.calls.schedule(
                now.mono + self.config.calls.acd.transfer_ring_timeout,
                CallTimer::TransferTimeout(handle, attempt),
            );
        }
        // The INVITE waits in its client transaction until collected: out now, not at the
        // next input (its Timer A runs from now).
        self.collect(now);
        Ok(())
    }

    /// The leg to `target` (`agencies[].transfer_uri`): a `sip:` URI with an IP literal
    /// host is called as written; a `tel:` one (`gateways` set) as
    /// `sip:<number>@<gateway>;user=phone` at the last gateway of `gateways.tried`.
    ///
    /// Errors: [`TransferError::Unreachable`] for a URI siaga cannot call,
    /// [`TransferError::NoGateway`] for an empty `tried`.
    fn transfer_leg_target(
        &self,
        target: &str,
        gateways: Option<&GatewayRoute>,
    ) -> Result<LegTarget, TransferError> {
        let (uri, destination) = match gateways {
            None => (
                target.to_owned(),
                ip_sip_destination(target).map_err(TransferError::Unreachable)?,
            ),
            Some(route) => {
                let gateway = route.tried.last().ok_or(TransferError::NoGateway)?;
                let destination = Destination {
                    transport: gateway.transport,
                    address: gateway.address,
                    connection: None,
                };
                (gateway_uri(&route.number, gateway), destination)
            }
        };
        Ok(LegTarget {
            name: target.to_owned(),
            to: format!("<{uri}>"),
            uri,
            trust: self.config.calls.trust_of(destination.address.ip()),
            destination,
            flow: None,
        })
    }

    /// A `tel:` transfer's gateway could not place the call (`is_failover`): the same
    /// INVITE (a new transaction and dialog) goes to the next gateway up not tried yet,
    /// under the same attempt (and ring timeout). Returns whether a leg was placed.
    fn transfer_fail_over(&mut self, now: Now, handle: CallHandle, status: u16) -> bool {
        let Some(c) = self.calls.calls.get(&handle) else {
            return false;
        };
        let Some(transfer) = c.transfer.clone() else {
            return false;
        };
        let Some(mut route) = transfer.gateways.clone() else {
            return false;
        };
        let Some(max_forwards) = c.trunk.outbound_max_forwards() else {
            return false;
        };
        let record = c.record;
        let Some(next) = self.gateway_up(&route.tried) else {
            return false;
        };
        let Some((mut offer, _)) = self.leg_offer(handle) else {
            return false;
        };
        offer.repeat = false;
        tracing::info!(call = %record, status, %next, "transfer: the gateway cannot place it, trying the next one");
        route.tried.push(next);
        let Ok(leg) = self.transfer_leg_target(&transfer.target, Some(&route)) else {
            return false;
        };
        if let Some(t) = self
            .calls
            .calls
            .get_mut(&handle)
            .and_then(|c| c.transfer.as_mut())
        {
            t.gateways = Some(route);
        }
        self.place_leg(now, (handle, transfer.attempt), max_forwards, &offer, leg)
            .is_some()
    }

    /// Whether leg `leg_no` of `handle` is the ringing transfer's.
    pub(super) fn is_transfer_leg(&self, handle: CallHandle, leg_no: u32) -> bool {
        self.calls.calls.get(&handle).is_some_and(|c| {
            let attempt = c.legs.get(&leg_no).map(|l| l.attempt);
            c.transfer.as_ref().map(|t| t.attempt) == attempt && attempt.is_some()
        })
    }

    /// [`CallTimer::TransferTimeout`]: the agency did not answer transfer `attempt` in
    /// time: CANCEL (§9.1); the operator keeps the caller.
    pub(super) fn transfer_timeout(&mut self, now: Now, handle: CallHandle, attempt: u32) {
        let current = self
            .calls
            .calls
            .get(&handle)
            .and_then(|c| c.transfer.as_ref())
            .is_some_and(|t| t.attempt == attempt);
        if !current {
            return;
        }
        self.cancel_legs(now, handle, |l| l.attempt == attempt);
        self.transfer_ended(now, handle, "no answer within the ring timeout");
    }

    /// A final failure `status` (0: Timer B; 503: a transport error) on leg `leg_no`.
    /// Returns whether the leg was the ringing transfer's (removed and recorded then); a
    /// leg siaga CANCELled already ended its transfer when it did.
    pub(super) fn transfer_leg_failed(
        &mut self,
        now: Now,
        handle: CallHandle,
        leg_no: u32,
        status: u16,
    ) -> bool {
        if !self.is_transfer_leg(handle, leg_no) {
            return false;
        }
        let Some(leg) = self
            .calls
            .calls
            .get_mut(&handle)
            .and_then(|c| c.legs.remove(&leg_no))
        else {
            return false;
        };
        // A leg siaga CANCELled ended its transfer already; a gateway that cannot place
        // the call hands it to the next one up.
        let given_up = matches!(leg.state, LegState::Cancelled | LegState::CancelPending);
        if given_up || (is_failover(status) && self.transfer_fail_over(now, handle, status)) {
            return true;
        }
        self.transfer_ended(now, handle, &super::flow::failure_reason(status));
        true
    }

    /// The agency's 2xx on the ringing transfer's leg `leg_no` (client transaction `tx`):
    /// the caller is bridged to it and the operator's leg ends (see the module doc), or,
    /// for an answer siaga cannot relay, the leg is ended and the transfer failed.
    pub(super) fn transfer_answered(
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
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let Some(transfer) = call.transfer.clone() else {
            return;
        };
        let answer = call.reanswered(response.body(), &transfer.target);
        let (dialog, (rtp, origin)) = match (dialog, answer) {
            (Ok(dialog), Some(answer)) => (dialog, answer),
            (dialog, _) => {
                let reason = match dialog {
                    Err(error) => format!("2xx forms no dialog: {error}"),
                    Ok(_) => "no common codec".to_owned(),
                };
                self.ack_and_bye(now, tx, response);
                if let Some(call) = self.calls.calls.get_mut(&handle) {
                    call.legs.remove(&leg_no);
                }
                return self.transfer_ended(now, handle, &reason);
            }
        };
        let ack = dialog.ack(1, &self.config.via_host(), &self.new_branch());
        let ack = ack.build();
        self.transmit(dialog.destination, ack.clone());
        self.calls
            .by_dialog
            .insert(dialog.key(), (handle, Some(leg_no)));
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        if let Some(leg) = call.legs.get_mut(&leg_no) {
            leg.state = LegState::Answered;
            leg.dialog = Some(dialog);
            leg.ack = Some(ack);
            leg.media.remote_origin = Some(origin);
            leg.media.allows_update = super::flow::allows_update(response);
        }
        call.transfer = None;
        let record = call.record;
        let relay = call.relay.map(|(relay, _, _)| relay);
        let previous = std::mem::replace(
            &mut call.state,
            CallState::Transferred {
                agency: transfer.agency.clone(),
                target: transfer.target.clone(),
                leg: leg_no,
            },
        );
        if let (Some(relay), Some(rtp)) = (relay, rtp) {
            self.media(MediaCommand::SetPeer {
                relay,
                side: Side::Operator,
                rtp,
            });
        }
        tracing::info!(call = %record, agency = transfer.agency, target = transfer.target, "the agency answered: caller transferred");
        self.emit(
            record,
            now,
            CallEventKind::TransferAnswered {
                agency: transfer.agency,
                target: transfer.target,
            },
        );
        if let CallState::Answered { operator, leg } = previous {
            self.release_operator(now, handle, (&operator, leg), Hangup::Send);
            self.dispatch(now);
        }
    }

    /// The operator of `handle` left while its transfer rings: their BYE (`hangup`
    /// [`Hangup::Received`]) or their leg failing (`leg_loss`). Returns whether a transfer
    /// was ringing: the call is then [`CallState::Transferring`] and the operator in
    /// wrap-up; otherwise nothing changed.
    pub(crate) fn transfer_without_operator(
        &mut self,
        now: Now,
        handle: CallHandle,
        reason: &str,
        hangup: Hangup,
    ) -> bool {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return false;
        };
        let (Some(transfer), CallState::Answered { operator, leg }) =
            (call.transfer.clone(), call.state.clone())
        else {
            return false;
        };
        call.state = CallState::Transferring {
            agency: transfer.agency,
            target: transfer.target,
        };
        let record = call.record;
        let relay = call.relay.map(|(relay, _, _)| relay);
        // Nothing goes to the operator's phone any more.
        if let Some(relay) = relay {
            self.media(MediaCommand::SetPeer {
                relay,
                side: Side::Operator,
                rtp: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            });
        }
        tracing::info!(call = %record, operator, reason, "the operator left while the transfer rings: it goes on");
        self.release_operator(now, handle, (&operator, leg), hangup);
        self.dispatch(now);
        true
    }

    /// The operator `operator` of `handle` is off the call (leg `leg`): an offer crossing
    /// the call is answered (the trunk's with 500 and Retry-After, §14.2; the operator's
    /// with 487, §15.1.2), their leg released (BYE with [`Hangup::Send`]), and the ACD
    /// puts them in wrap-up.
    fn release_operator(
        &mut self,
        now: Now,
        handle: CallHandle,
        (operator, leg): (&str, u32),
        hangup: Hangup,
    ) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let exchange = call.exchange.take();
        let lost: Option<OperatorLeg> = call.legs.remove(&leg);
        if let Some(exchange) = exchange {
            match exchange.from {
                Side::Operator => self.refuse_exchange(now, &exchange, 487, "Request Terminated"),
                Side::Caller => self.retry_later(now, exchange.respond()),
            }
        }
        if let Some(mut lost) = lost {
            self.release_answered_leg(now, &mut lost, hangup == Hangup::Send);
        }
        self.calls.acd.call_ended(handle, operator, now.mono);
    }

    /// The transfer of `handle` failed (`reason`): recorded; the operator keeps the
    /// caller, or, if the operator left meanwhile, the caller waits again at the head of
    /// its priority (the `transfer_failed` event says it: no `requeued`, which names an
    /// operator).
    pub(super) fn transfer_ended(&mut self, now: Now, handle: CallHandle, reason: &str) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(transfer) = call.transfer.take() else {
            return;
        };
        let record = call.record;
        let orphaned = matches!(call.state, CallState::Transferring { .. });
        tracing::info!(call = %record, agency = transfer.agency, reason, orphaned, "transfer failed");
        self.emit(
            record,
            now,
            CallEventKind::TransferFailed {
                agency: transfer.agency,
                target: transfer.target,
                reason: reason.to_owned(),
            },
        );
        if orphaned {
            if let Some(call) = self.calls.calls.get_mut(&handle) {
                call.state = CallState::Queued;
            }
            self.calls.acd.requeue(handle, true, now.mono);
            self.dispatch(now);
        }
    }

    /// Call `handle` ends (`end_call`, by `by`) while its transfer rings: recorded as
    /// failed (`end_call` CANCELs the leg).
    pub(super) fn transfer_ends_with_call(&mut self, now: Now, handle: CallHandle, by: Party) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(transfer) = call.transfer.take() else {
            return;
        };
        let record = call.record;
        let reason = match by {
            Party::Caller => "the caller hung up".to_owned(),
            by => format!("the call ended ({by})"),
        };
        self.emit(
            record,
            now,
            CallEventKind::TransferFailed {
                agency: transfer.agency,
                target: transfer.target,
                reason,
            },
        );
    }

    /// The agency's leg of transferred call `handle` failed after it answered (`reason`,
    /// see `leg_loss`, which released the leg): recorded as a failed transfer (reason
    /// `mid-call: …`, after its `transfer_answered`, like a backup centre's lost leg), and
    /// the caller waits at the head of its priority, as after an operator's leg loss.
    pub(super) fn transferred_leg_lost(
        &mut self,
        now: Now,
        handle: CallHandle,
        (agency, target): (String, String),
        reason: &str,
    ) {
        let Some(record) = self.calls.calls.get(&handle).map(|c| c.record) else {
            return;
        };
        self.emit(
            record,
            now,
            CallEventKind::TransferFailed {
                agency,
                target,
                reason: format!("mid-call: {reason}"),
            },
        );
        self.calls.acd.requeue(handle, true, now.mono);
    }
}
