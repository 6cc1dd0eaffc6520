//! Requests inside siaga's dialogs once a call is answered, and the session timer that
//! keeps the trunk leg alive (RFC 3261 §12.2.2, §14, §15; RFC 3311 UPDATE; RFC 3264 §8;
//! RFC 4028).
//!
//! A re-INVITE or UPDATE with a new SDP offer (hold, resume, a codec change) from either
//! side crosses the B2BUA: siaga answers the request only once the other side answered
//! its own re-INVITE/UPDATE carrying the offer rewritten to the relay (`sdp::offer_across`
//! and `sdp::answer_across`). What changes nothing crosses nothing and is answered here:
//! an offer with the `o=` sess-id and version last seen (RFC 3264 §8: the session is
//! unchanged — a session refresh), and a re-INVITE without an offer, which gets siaga's current
//! description as the offer in the 2xx and the answer in the ACK (§14.2, RFC 3264 §8);
//! likewise an UPDATE without a body. In-dialog OPTIONS and INFO draw 200.
//!
//! One offer at a time per call (§14.1, RFC 3311 §5.2): a request from the side siaga is
//! sending a request to draws 491 (glare; the peer retries after its §14.1 back-off), and
//! a second one from the same side while the first is unanswered draws 500 with
//! Retry-After (§14.2). A failure of siaga's request crosses back with its status code, so
//! a 491 reaches the offerer and its retry works; 408 or 481 from the trunk end the call
//! (§14.1: the dialog is gone). On the operator's side, those and a 5xx or no response
//! mean the operator's leg failed: the caller is re-queued (`leg_loss`), and so is one
//! whose operator-side BYE carries a failure Reason (RFC 3326).

use super::leg_loss::{Hangup, failure_reason, in_dialog_method, is_leg_failure};
use super::session_timer::{Negotiation, Refresher, SessionTimer, is_refresh_method};
use super::{CallTimer, PendingOk};
use crate::engine::acd::CallHandle;
use crate::engine::dialog::{Dialog, DialogKey};
use crate::engine::driver::{Engine, EngineConfig, SERVER};
use crate::engine::media::{MediaCommand, Side};
use crate::engine::record::{CallEventKind, Disposition, Party};
use crate::engine::sdp::{self, MediaOffer, SdpSession};
use crate::engine::sip::builder::{MessageBuilder, response_to};
use crate::engine::sip::{Method, SipMessage};
use crate::engine::time::Now;
use crate::engine::transaction::{ClientKey, ClientTxId, ResponseTarget, TxId};
use crate::engine::uas;
use bytes::Bytes;
use std::net::SocketAddr;

/// A request from one side of an answered call that siaga answers once the other side
/// answered the request siaga sent it (RFC 3261 §14, RFC 3311).
#[derive(Debug)]
pub struct Exchange {
    /// The side the request came from.
    pub from: Side,
    /// Its server transaction.
    pub tx: TxId,
    /// The request.
    pub request: SipMessage,
    /// Where its responses go, and the source to stamp in Via (§18.2.1).
    pub target: ResponseTarget,
    /// Its source address.
    pub received_from: SocketAddr,
    /// The offer it carries.
    pub offer: MediaOffer,
    /// siaga's request to the other side, once sent.
    pub out: Option<ClientTxId>,
}

impl Exchange {
    /// Its server transaction, the request, where responses go and the source to stamp
    /// in Via: what [`Engine::respond_in_dialog`] answers.
    pub(crate) fn respond(&self) -> (TxId, &SipMessage, ResponseTarget, SocketAddr) {
        (self.tx, &self.request, self.target, self.received_from)
    }
}

/// Why siaga sent a request inside a dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// It carries an offer from the other side ([`Exchange`]).
    Relay,
    /// A session refresh (RFC 4028 §7.4).
    Refresh,
}

/// A re-INVITE or UPDATE siaga sent in one of a call's dialogs, kept while its client
/// transaction lives.
#[derive(Debug)]
pub struct InDialogRequest {
    /// The call.
    pub call: CallHandle,
    /// The side it went to.
    pub to: Side,
    /// Why.
    pub purpose: Purpose,
    /// The request as sent: its method, its CSeq (for the ACK of a 2xx, §13.2.2.4), and
    /// the ACK of a failure (§17.1.1.3).
    pub request: SipMessage,
    /// The ACK of its 2xx, once sent: resent for each retransmitted 2xx.
    pub ack: Option<Bytes>,
    /// Where it was sent (an ACK goes there once the call is gone).
    pub destination: crate::engine::transaction::Destination,
}

/// What siaga does with a request in one of its dialogs.
pub(crate) enum DialogReply {
    /// Answer with this status at once; for a BYE in the early dialog, also end the
    /// INVITE transaction named (the caller hung up).
    Final(u16, &'static str, Option<TxId>),
    /// A re-INVITE or UPDATE in the answered call: the engine creates its server
    /// transaction and hands it to [`Engine::on_mid_call_request`].
    MidCall(CallHandle, Side),
    /// Answer 500 with `Retry-After` of this many seconds (0–10): the request overlaps an
    /// offer siaga has not answered yet (§14.2, RFC 3311 §5.2).
    Retry(u32),
}

/// siaga's re-INVITE or UPDATE in `dialog` (§14.1, RFC 3311): Contact for the dialog's
/// transport (the request refreshes the peer's target, §12.2.1.1), Allow and User-Agent.
fn mid_call_request(
    config: &EngineConfig,
    dialog: &mut Dialog,
    method: &Method,
    branch: &str,
) -> MessageBuilder {
    let contact = config.contact(dialog.destination.transport);
    dialog
        .request(method, &config.via_host(), branch)
        .header("Contact", contact)
        .header("Allow", uas::allow_value())
        .header("User-Agent", SERVER)
}

impl Engine {
    /// A request with a To tag naming one of siaga's dialogs (§12.2.2). `None` when the
    /// dialog is not siaga's (the UAS core answers 481).
    pub(crate) fn on_dialog_request(
        &mut self,
        now: Now,
        key: &DialogKey,
        msg: &SipMessage,
    ) -> Option<DialogReply> {
        // An operator's feature-code call (`feature`): the phone's BYE.
        if let Some(reply) = self.on_feature_dialog_request(key, msg) {
            return Some(reply);
        }
        let Some(&(handle, leg)) = self.calls.by_dialog.get(key) else {
            // A dialog siaga is ending with its own BYE (see `ending`).
            return self
                .on_ending_dialog_request(key, msg)
                .map(|(status, reason)| DialogReply::Final(status, reason, None));
        };
        // RFC 3262: a PRACK, early or after the 2xx, is matched by its RAck (`prack`).
        if msg.method() == Some(&Method::Prack) {
            let (status, reason) = self.on_prack(now, handle, leg, msg);
            return Some(DialogReply::Final(status, reason, None));
        }
        let seq = msg.cseq().ok()?.seq;
        let call = self.calls.calls.get_mut(&handle)?;
        // §12.2.2: the dialog ID holds the peer's tag too; another From tag is another
        // dialog, which siaga does not have (481).
        if !call.is_remote_tag(leg, msg) {
            return None;
        }
        // The operator's leg, or the backup centre's (`overflow`).
        let answered_leg = call.state.bridged_leg();
        // §15: a BYE in the early dialog of siaga's 180 — the caller hung up before an
        // operator answered: 200 to the BYE, 487 to the INVITE, recorded as abandoned.
        // The INVITE's offer is not answered yet: a re-INVITE draws 500 with Retry-After
        // (§14.2), and so does an UPDATE with an offer (RFC 3311 §5.2); after a late-offer
        // INVITE siaga has no offer to pair with an UPDATE's either: 488.
        if leg.is_none() && answered_leg.is_none() && !call.was_answered() {
            let (tx, late_offer) = (call.trunk.tx, call.late_offer);
            let offer = crate::engine::sip::body::sdp_of(msg).is_some();
            return Some(match msg.method() {
                Some(Method::Bye) => DialogReply::Final(200, "OK", Some(tx)),
                Some(Method::Invite) => DialogReply::Retry(self.rng_retry_after()),
                Some(Method::Update) if offer && !late_offer => {
                    DialogReply::Retry(self.rng_retry_after())
                }
                Some(Method::Update) if offer => {
                    DialogReply::Final(488, "Not Acceptable Here", None)
                }
                _ => DialogReply::Final(200, "OK", None),
            });
        }
        let side = match leg {
            None => Side::Caller,
            // Only the answered leg has a dialog in the table.
            Some(l) if Some(l) == answered_leg => Side::Operator,
            Some(_) => return None,
        };
        let dialog = match side {
            Side::Caller => call.trunk.dialog.as_mut(),
            Side::Operator => leg
                .and_then(|l| call.legs.get_mut(&l))
                .and_then(|l| l.dialog.as_mut()),
        }?;
        // §12.2.2: a CSeq lower than the last one is out of order.
        if !dialog.accept_remote_seq(seq) {
            return Some(DialogReply::Final(500, "Server Internal Error", None));
        }
        // §12.2.2, RFC 3311 §5.2: a re-INVITE or UPDATE is a target refresh. Requests to
        // the trunk follow its new Contact as they followed its first; an operator stays
        // reached on its registered flow.
        if matches!(msg.method(), Some(Method::Invite | Method::Update)) {
            dialog.refresh_target(msg, side == Side::Caller);
        }
        Some(match msg.method() {
            Some(Method::Bye) => {
                let by = match side {
                    Side::Caller => Party::Caller,
                    Side::Operator => Party::Operator,
                };
                // RFC 3326: a proxy or SBC that tears the operator's leg down says why.
                match failure_reason(msg).filter(|_| side == Side::Operator) {
                    Some(reason) => {
                        let reason = format!("BYE with Reason {reason}");
                        self.operator_leg_lost(now, handle, &reason, Hangup::Received);
                    }
                    // The operator hanging up while their transfer rings leaves the
                    // caller to the agency (`transfer`).
                    None if side == Side::Operator
                        && self.transfer_without_operator(
                            now,
                            handle,
                            "the operator hung up",
                            Hangup::Received,
                        ) => {}
                    None => self.end_call(now, handle, by, Disposition::Answered),
                }
                DialogReply::Final(200, "OK", None)
            }
            Some(Method::Invite | Method::Update) => DialogReply::MidCall(handle, side),
            _ => DialogReply::Final(200, "OK", None),
        })
    }

    /// A re-INVITE or UPDATE from `side` of answered call `handle`, on server transaction
    /// `tx`: answered here, or carried to the other side (see the module doc).
    pub(crate) fn on_mid_call_request(
        &mut self,
        now: Now,
        (handle, side): (CallHandle, Side),
        tx: TxId,
        msg: &SipMessage,
        (target, received_from): (ResponseTarget, SocketAddr),
    ) {
        let respond = (tx, msg, target, received_from);
        let reply = |engine: &mut Engine, status: u16, reason: &str| {
            engine.respond_in_dialog(now, respond, status, reason, &[]);
        };
        let Some(call) = self.calls.calls.get(&handle) else {
            return reply(self, 481, "Call/Transaction Does Not Exist");
        };
        // The offer, if the request carries one (RFC 3264 §8).
        let offer_body = crate::engine::sip::body::sdp_of(msg);
        // An UPDATE without a body (a session refresh, RFC 4028 §7.4) carries no offer, so
        // it overlaps none (RFC 3311 §5.2): answered whatever is open.
        let offerless_update = msg.method() == Some(&Method::Update) && offer_body.is_none();
        if let Some(exchange) = call.exchange.as_ref().filter(|_| !offerless_update) {
            // §14.2 / RFC 3311 §5.2: one offer at a time.
            return if exchange.from == side {
                self.retry_later(now, respond)
            } else {
                reply(self, 491, "Request Pending")
            };
        }
        if call.pending_refresh.is_some() && side == Side::Caller && !offerless_update {
            return reply(self, 491, "Request Pending");
        }
        // RFC 3311 §5.2: an UPDATE with an offer while siaga's own offer (in a 2xx)
        // awaits its answer (in the ACK): 491.
        let offer_open = call
            .media_of(side)
            .and_then(|m| m.ok.as_ref())
            .is_some_and(|ok| ok.offered);
        if offer_open && msg.method() == Some(&Method::Update) && offer_body.is_some() {
            return reply(self, 491, "Request Pending");
        }
        // RFC 4028 §9: a refresh from the trunk restarts (or changes) the session timer.
        if side == Side::Caller && is_refresh_method(msg.method().unwrap_or(&Method::Ack)) {
            let min_se = self.config.calls.min_session_expires_s;
            match SessionTimer::negotiate(msg, min_se) {
                Negotiation::TooSmall { min_se } => {
                    return self.respond_in_dialog(
                        now,
                        respond,
                        422,
                        "Session Interval Too Small",
                        &[("Min-SE", min_se.to_string())],
                    );
                }
                Negotiation::Off => self.set_session_timer(handle, None),
                Negotiation::On(timer) => self.start_session_timer(now, handle, timer),
            }
        }
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let is_invite = msg.method() == Some(&Method::Invite);
        let Some(body) = offer_body else {
            // No offer: a re-INVITE gets siaga's description as the offer (the answer
            // comes in the ACK); an UPDATE without a body changes nothing.
            let offer = if is_invite {
                call.local_sdp(side)
            } else {
                None
            };
            return self.answer_mid_call(now, respond, (handle, side), offer);
        };
        let offer = match sdp::parse(body) {
            Ok(offer) => offer,
            Err(error) => {
                tracing::info!(call = %call.record, %error, "mid-call offer unreadable: 488");
                return reply(self, 488, "Not Acceptable Here");
            }
        };
        // As for the INVITE (`read_trunk_offer`): media the relay cannot reach is refused,
        // and the session goes on as it was (RFC 3264 §8).
        if let Some(why) = super::flow::family_mismatch(&offer, self.config.calls.media_ip) {
            tracing::info!(call = %call.record, why, "mid-call offer in another address family: 488");
            let warning = self.warning(301, &why);
            return self.respond_in_dialog(
                now,
                respond,
                488,
                "Not Acceptable Here",
                &[("Warning", warning)],
            );
        }
        // RFC 3264 §8: the same version is the same session (a refresh): answer it as
        // before.
        let unchanged = call.remote_origin(side) == Some(offer.origin());
        if unchanged || call.relay.is_none() {
            if call.relay.is_none() {
                tracing::info!(call = %call.record, "mid-call offer without a relay: answered unchanged");
            }
            let answer = call.local_sdp(side);
            return self.answer_mid_call(now, respond, (handle, side), answer);
        }
        // A re-queued call has no operator to carry the offer to yet: the trunk tries
        // again later (§14.2), when one may have answered.
        if call.answered_leg().is_none() {
            return self.retry_later(now, respond);
        }
        // §14.1: siaga's session refresh is an INVITE (or UPDATE) transaction in progress
        // toward the trunk; no second one starts there until it ends.
        if side == Side::Operator && call.pending_refresh.is_some() {
            return reply(self, 491, "Request Pending");
        }
        if is_invite {
            // §17.2.1: the answer waits on the other side, which siaga cannot promise
            // within 200 ms: 100 Trying, so a UDP peer stops retransmitting.
            let trying = response_to(msg, Some(received_from), 100, "Trying", None).build();
            if let Err(error) = self.server.send_response(now.mono, tx, 100, trying) {
                tracing::debug!(%error, "100 to a re-INVITE not sent");
            }
        }
        self.carry_offer(
            now,
            handle,
            Exchange {
                from: side,
                tx,
                request: msg.clone(),
                target,
                received_from,
                offer,
                out: None,
            },
        );
    }

    /// Sends siaga's offer for `exchange` to the other side, or answers 488 when the offer
    /// has nothing siaga can relay (the session goes on unchanged, RFC 3264 §8).
    fn carry_offer(&mut self, now: Now, handle: CallHandle, mut exchange: Exchange) {
        let to = exchange.from.other();
        let media_ip = self.config.calls.media_ip;
        let branch = self.new_branch();
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some((_, caller_port, operator_port)) = call.relay else {
            return;
        };
        let port = match to {
            Side::Caller => caller_port,
            Side::Operator => operator_port,
        };
        let record = call.record;
        let allows_update = call.peer_allows_update(to);
        let timer = call.session_timer.filter(|_| to == Side::Caller);
        let min_se = self.config.calls.min_session_expires_s;
        // RFC 3264 §8: the new offer keeps the m= lines siaga last sent on that leg.
        let previous = call.local_sdp(to).and_then(|b| sdp::parse(&b).ok());
        let Some((dialog, session)) = call.dialog_and_sdp(to) else {
            return;
        };
        let relay = SocketAddr::new(media_ip, port);
        let body = match &previous {
            Some(previous) => sdp::reoffer_across(&exchange.offer, relay, session, previous),
            None => sdp::offer_across(&exchange.offer, relay, session),
        };
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                tracing::info!(call = %record, %error, "mid-call offer siaga cannot relay: 488");
                return self.refuse_exchange(now, &exchange, 488, "Not Acceptable Here");
            }
        };
        // RFC 3311: an UPDATE crosses as an UPDATE when the other side allows it; else
        // (and for every re-INVITE) as a re-INVITE.
        let method = match exchange.request.method() {
            Some(Method::Update) if allows_update => Method::Update,
            _ => Method::Invite,
        };
        let mut b = mid_call_request(&self.config, dialog, &method, &branch);
        // RFC 4028 §7.4: a re-INVITE or UPDATE in a session with a timer is a refresh
        // too; it carries the running terms, which the trunk's 2xx confirms or changes.
        for (name, value) in timer.map(|t| t.refresh_headers(min_se)).unwrap_or_default() {
            b = b.header(name, value);
        }
        let bytes = b.body("application/sdp", body.clone()).build();
        let destination = dialog.destination;
        call.set_local_sdp(to, body);
        let Some(tx) = self.send_in_dialog(
            now,
            (handle, to, Purpose::Relay),
            branch,
            bytes,
            destination,
        ) else {
            return;
        };
        exchange.out = Some(tx);
        if let Some(call) = self.calls.calls.get_mut(&handle) {
            call.exchange = Some(exchange);
        }
    }

    /// Sends `bytes` (siaga's re-INVITE or UPDATE on `to` of `handle`, top Via branch
    /// `branch`) on a client transaction of its own, remembered for its responses.
    fn send_in_dialog(
        &mut self,
        now: Now,
        (handle, to, purpose): (CallHandle, Side, Purpose),
        branch: String,
        bytes: Bytes,
        destination: crate::engine::transaction::Destination,
    ) -> Option<ClientTxId> {
        // RFC 3261 §18.1.1: a large re-INVITE (an SDP relayed across) to a UDP peer goes
        // over TCP.
        let routed = self.route_request(now, bytes, destination);
        let destination = routed.destination;
        let request = match SipMessage::parse(routed.bytes.clone(), destination.transport) {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(error = %e.error, "siaga built an in-dialog request it cannot parse");
                return None;
            }
        };
        let method = request.method()?.clone();
        let tx = self.send_routed(now, ClientKey { branch, method }, routed);
        self.calls.in_dialog.insert(
            tx,
            InDialogRequest {
                call: handle,
                to,
                purpose,
                request,
                ack: None,
                destination,
            },
        );
        Some(tx)
    }

    /// A response to a re-INVITE or UPDATE siaga sent inside a dialog, passed up by its
    /// client transaction (each 2xx of an INVITE while Accepted). Returns `false` when
    /// `tx` is not one of those.
    pub(crate) fn on_in_dialog_response(
        &mut self,
        now: Now,
        tx: ClientTxId,
        response: &SipMessage,
    ) -> bool {
        let Some(out) = self.calls.in_dialog.get(&tx) else {
            return false;
        };
        let Some(status) = response.status() else {
            return true;
        };
        if status < 200 {
            return true;
        }
        let (handle, to, purpose) = (out.call, out.to, out.purpose);
        // Both were read when the request was sent (`send_in_dialog`).
        let (Some(method), Ok(cseq)) = (out.request.method().cloned(), out.request.cseq()) else {
            return true;
        };
        let seq = cseq.seq;
        // Sent to an operator whose leg failed since: its answer changes nothing (a 2xx is
        // ACKed from the request as sent, as once the call ended).
        let live = to == Side::Caller
            || self
                .calls
                .calls
                .get(&handle)
                .is_some_and(|c| c.is_answered_dialog(&out.request));
        let what = in_dialog_method(&out.request);
        if (200..300).contains(&status)
            && let Some(dialog) = self
                .calls
                .calls
                .get_mut(&handle)
                .filter(|_| live)
                .and_then(|c| c.dialog_mut(to))
        {
            // §12.2.1.2: a 2xx to a target refresh request (re-INVITE, UPDATE) moves the
            // remote target, before the ACK is sent to it.
            dialog.refresh_target(response, to == Side::Caller);
        }
        if (200..300).contains(&status) && method == Method::Invite {
            // §13.2.2.4: every 2xx is ACKed, the retransmissions with the same ACK.
            if let Some(ack) = out.ack.clone() {
                let sent_to = out.destination;
                let destination = live
                    .then(|| self.dialog_destination(handle, to))
                    .flatten()
                    .unwrap_or(sent_to);
                self.transmit(destination, ack);
                return true;
            }
            let via = self.config.via_host();
            let branch = self.new_branch();
            let ack = self
                .calls
                .calls
                .get_mut(&handle)
                .filter(|_| live)
                .and_then(|call| {
                    let dialog = call.dialog_mut(to)?;
                    Some((dialog.ack(seq, &via, &branch).build(), dialog.destination))
                });
            // The call ended meanwhile (a BYE crossed the 2xx): the 2xx is ACKed all the
            // same, from the request as sent (§13.2.2.4, RFC 5407 §3.2.4).
            let ack = ack.or_else(|| {
                let out = self.calls.in_dialog.get(&tx)?;
                let transport = out.destination.transport.via_token();
                let via = format!("SIP/2.0/{transport} {via};branch={branch};rport");
                let ack = crate::engine::driver::ack_copying(&out.request, response, Some(&via))?;
                Some((ack, out.destination))
            });
            if let Some((ack, destination)) = ack {
                self.transmit(destination, ack.clone());
                if let Some(out) = self.calls.in_dialog.get_mut(&tx) {
                    out.ack = Some(ack);
                }
            }
        }
        if !live {
            return true;
        }
        if to == Side::Operator && is_leg_failure(status) {
            let reason = format!("{status} response to {what}");
            self.operator_leg_lost(now, handle, &reason, Hangup::Send);
            return true;
        }
        if purpose == Purpose::Relay && to == Side::Caller && (200..300).contains(&status) {
            self.trunk_refreshed(now, handle, response);
        }
        match purpose {
            Purpose::Relay => self.relay_answer(now, handle, tx, status, response),
            Purpose::Refresh => self.refresh_answered(now, (handle, tx, &method), status, response),
        }
        true
    }

    /// The other side's final response to siaga's request for an [`Exchange`]: the answer
    /// crosses back to the offerer (§14.1, RFC 3264 §8), or the failure does.
    fn relay_answer(
        &mut self,
        now: Now,
        handle: CallHandle,
        tx: ClientTxId,
        status: u16,
        response: &SipMessage,
    ) {
        let media_ip = self.config.calls.media_ip;
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        if call.exchange.as_ref().and_then(|e| e.out) != Some(tx) {
            return;
        }
        let Some(exchange) = call.exchange.take() else {
            return;
        };
        let record = call.record;
        let Exchange {
            from,
            tx: server_tx,
            request,
            target,
            received_from,
            offer,
            ..
        } = exchange;
        let respond = (server_tx, &request, target, received_from);
        if status >= 300 {
            let reason =
                String::from_utf8_lossy(response.reason().unwrap_or_default()).into_owned();
            tracing::info!(call = %record, status, "the other side refused the mid-call offer");
            self.respond_in_dialog(now, respond, status, &reason, &[]);
            if matches!(status, 408 | 481) {
                // §14.1: the trunk's dialog is gone (an operator's failure re-queued the
                // caller before this, in `on_in_dialog_response`).
                let reason = format!("{status} response to {}", in_dialog_method(&request));
                self.caller_leg_lost(now, handle, &reason);
            }
            return;
        }
        let relay_port = match (call.relay, from) {
            (Some((_, port, _)), Side::Caller) => port,
            (Some((_, _, port)), Side::Operator) => port,
            (None, _) => return,
        };
        let relay = call.relay.map(|(r, _, _)| r);
        let answer = sdp::parse(response.body()).map_err(|e| e.to_string());
        let body = answer.as_ref().map_err(Clone::clone).and_then(|answer| {
            let session = &mut call
                .media_of_mut(from)
                .ok_or("the offering leg is gone")?
                .sdp;
            sdp::answer_across(
                &offer,
                answer,
                SocketAddr::new(media_ip, relay_port),
                session,
            )
            .map_err(|e| e.to_string())
        });
        let (body, answer) = match (body, answer) {
            (Ok(body), Ok(answer)) => (body, answer),
            (Err(error), _) | (_, Err(error)) => {
                // The other side took an offer whose answer siaga cannot relay: the
                // offerer is refused and keeps its session (RFC 3264 §8).
                tracing::warn!(call = %record, %error, "mid-call answer unusable: 488 to the offerer");
                return self.respond_in_dialog(now, respond, 488, "Not Acceptable Here", &[]);
            }
        };
        call.set_remote_origin(from, offer.origin());
        call.set_remote_origin(from.other(), answer.origin());
        call.set_local_sdp(from, body.clone());
        let direction = offer.direction;
        // RFC 3264 §8.4: any other direction than sendrecv, offered or answered, is a
        // hold; a held operator may send no RTP (`Engine::relay_silent`).
        if let Some(leg) = call.answered_leg_mut() {
            leg.media.held = [direction, answer.direction]
                .iter()
                .any(|d| *d != sdp::Direction::SendRecv);
        }
        let peers = [(from, offer.rtp), (from.other(), answer.rtp)];
        for (side, rtp) in peers {
            if let (Some(relay), Some(rtp)) = (relay, rtp.filter(|a| !a.ip().is_unspecified())) {
                self.media(MediaCommand::SetPeer { relay, side, rtp });
            }
        }
        let by = match from {
            Side::Caller => Party::Caller,
            Side::Operator => Party::Operator,
        };
        tracing::info!(call = %record, %by, direction = direction.attribute(), "session changed");
        self.emit(
            record,
            now,
            CallEventKind::Renegotiated {
                by,
                direction: direction.attribute().to_owned(),
            },
        );
        self.answer_mid_call(now, respond, (handle, from), Some(body));
    }

    /// siaga's 2xx to a re-INVITE or UPDATE from the peer on `side` (with `body` as SDP, and the
    /// session-timer headers toward the trunk); a 2xx to an INVITE is resent until the ACK
    /// (§13.3.1.4).
    fn answer_mid_call(
        &mut self,
        now: Now,
        respond: (TxId, &SipMessage, ResponseTarget, SocketAddr),
        (handle, side): (CallHandle, Side),
        body: Option<Bytes>,
    ) {
        let (tx, request, target, received_from) = respond;
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let mut b = response_to(request, Some(received_from), 200, "OK", None)
            .header("Server", SERVER)
            .header("Contact", self.config.contact(target.transport))
            .header("Allow", uas::allow_value());
        if side == Side::Caller
            && let Some(timer) = call.session_timer
        {
            b = b.header("Supported", "timer");
            for (name, value) in timer.response_headers() {
                b = b.header(name, value);
            }
        }
        let offered = body.is_some();
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let ok = b.build();
        if let Err(error) = self.server.send_response(now.mono, tx, 200, ok.clone()) {
            tracing::debug!(%error, "mid-call 2xx not sent");
        }
        if request.method() != Some(&Method::Invite) {
            return;
        }
        let seq = request.cseq().map(|c| c.seq).unwrap_or_default();
        // Without an offer in the re-INVITE, a body in the 2xx is siaga's offer.
        let offered = offered && crate::engine::sip::body::sdp_of(request).is_none();
        self.resend_until_acked(now, (handle, side), ok, target, (seq, false, offered));
    }

    /// Keeps `ok`, siaga's 2xx on `side` of `handle` to the INVITE with CSeq `seq` (`first`:
    /// the call's first INVITE; `offered`: the 2xx carries siaga's offer), to resend it at
    /// T1, 2·T1 … T2 until its ACK, and to end the call 64·T1 from now without one
    /// (§13.3.1.4). It replaces an earlier 2xx on that side still waiting (its ACK can no
    /// longer matter).
    pub(crate) fn resend_until_acked(
        &mut self,
        now: Now,
        (handle, side): (CallHandle, Side),
        ok: Bytes,
        target: ResponseTarget,
        (seq, first, offered): (u32, bool, bool),
    ) {
        let t1 = self.config.timers.t1;
        let give_up = now.mono + self.config.timers.sixty_four_t1();
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        call.set_pending_ok(
            side,
            PendingOk {
                bytes: ok,
                interval: t1,
                target,
                first,
                offered,
                seq,
                next: now.mono + t1,
                give_up,
            },
        );
        self.calls
            .schedule(now.mono + t1, CallTimer::OkRetransmit(handle, side));
        self.calls
            .schedule(give_up, CallTimer::OkTimeout(handle, side));
    }

    /// Answers the request of `exchange` with `status` (≥ 300) and no other header.
    pub(crate) fn refuse_exchange(
        &mut self,
        now: Now,
        exchange: &Exchange,
        status: u16,
        reason: &str,
    ) {
        self.respond_in_dialog(now, exchange.respond(), status, reason, &[]);
    }

    /// 500 with a Retry-After of 0–10 s (§14.2) to a request in a dialog: it overlaps an
    /// offer siaga has not answered yet, or no operator has the call to take its offer.
    pub(crate) fn retry_later(
        &mut self,
        now: Now,
        respond: (TxId, &SipMessage, ResponseTarget, SocketAddr),
    ) {
        let retry_after = self.rng_retry_after().to_string();
        let headers = [("Retry-After", retry_after)];
        self.respond_in_dialog(now, respond, 500, "Server Internal Error", &headers);
    }

    /// A final response of siaga's own to a request in a dialog (`status` ≥ 300, or a 2xx
    /// without body), with `headers` beside the usual ones.
    pub(crate) fn respond_in_dialog(
        &mut self,
        now: Now,
        (tx, request, _target, received_from): (TxId, &SipMessage, ResponseTarget, SocketAddr),
        status: u16,
        reason: &str,
        headers: &[(&str, String)],
    ) {
        let mut b = response_to(request, Some(received_from), status, reason, None)
            .header("Server", SERVER);
        for (name, value) in headers {
            b = b.header(name, value);
        }
        if let Err(error) = self.server.send_response(now.mono, tx, status, b.build()) {
            tracing::debug!(%error, "in-dialog response not sent");
        }
    }

    /// A Retry-After for a 500 to a request that overlaps another: 0–10 s (§14.2).
    pub(crate) fn rng_retry_after(&mut self) -> u32 {
        use rand::Rng;
        self.rng.random_range(0..=10)
    }

    /// A client transaction siaga started in a dialog ended. Without a final response
    /// (Timer B/F, a transport error) the peer is gone: the trunk's, and the call ends
    /// (§14.1, RFC 4028 §10; an [`Exchange`] waiting on it is answered 408 first); the
    /// operator's, and the caller is re-queued (`leg_loss`).
    pub(crate) fn on_in_dialog_ended(&mut self, now: Now, tx: ClientTxId, answered: bool) {
        let Some(out) = self.calls.in_dialog.remove(&tx) else {
            return;
        };
        if answered {
            return;
        }
        let handle = out.call;
        // On the operator's side the leg failed, not the call (see `leg_loss`); a leg that
        // failed before changes nothing.
        if out.to == Side::Operator {
            let live = self
                .calls
                .calls
                .get(&handle)
                .is_some_and(|c| c.is_answered_dialog(&out.request));
            if live {
                let reason = format!("no response to {}", in_dialog_method(&out.request));
                self.operator_leg_lost(now, handle, &reason, Hangup::Send);
            }
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        if call.pending_refresh == Some(tx) {
            call.pending_refresh = None;
        }
        if call.exchange.as_ref().and_then(|e| e.out) == Some(tx)
            && let Some(exchange) = call.exchange.take()
        {
            self.refuse_exchange(now, &exchange, 408, "Request Timeout");
        }
        tracing::warn!(side = ?out.to, method = ?out.request.method(), "no response to siaga's request in the dialog: ending the call");
        let reason = format!("no response to {}", in_dialog_method(&out.request));
        self.caller_leg_lost(now, handle, &reason);
    }

    // ---- session timer (RFC 4028) ---------------------------------------------------------

    /// Arms `timer` on the trunk leg of `handle` from now on (the 2xx that set its terms
    /// is being sent).
    pub(crate) fn start_session_timer(
        &mut self,
        now: Now,
        handle: CallHandle,
        mut timer: SessionTimer,
    ) {
        timer.restart(now.mono);
        self.set_session_timer(handle, Some(timer));
    }

    /// Makes `timer` the session timer of `handle`, its deadline the one entry the call
    /// has in the timer table: the entry of the deadline it replaces goes, so refreshes
    /// do not pile up entries for the call's life.
    fn set_session_timer(&mut self, handle: CallHandle, timer: Option<SessionTimer>) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let old = std::mem::replace(&mut call.session_timer, timer);
        if let Some(at) = old.and_then(|t| t.deadline) {
            self.calls.timers.remove(&(at, CallTimer::Session(handle)));
        }
        if let Some(at) = timer.and_then(|t| t.deadline) {
            self.calls.schedule(at, CallTimer::Session(handle));
        }
    }

    /// The session timer of `handle` fired: refresh (siaga refreshes) or end the session
    /// the trunk stopped refreshing (RFC 4028 §10). A timer whose deadline moved is moot.
    pub(crate) fn session_timer_fired(&mut self, now: Now, handle: CallHandle) {
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let Some(timer) = call.session_timer else {
            return;
        };
        if timer.deadline.is_none_or(|at| at > now.mono) {
            return;
        }
        match timer.refresher {
            Refresher::Trunk => {
                let record = call.record;
                tracing::warn!(call = %record, interval_s = timer.interval, "session expired: the trunk did not refresh it");
                self.emit(record, now, CallEventKind::SessionExpired);
                self.caller_leg_lost(now, handle, "session expired");
            }
            Refresher::Siaga => self.send_refresh(now, handle, timer),
        }
    }

    /// siaga's session refresh to the trunk (RFC 4028 §7.4): an UPDATE without a body when
    /// the trunk allows UPDATE, else a re-INVITE with siaga's current description (the
    /// same version: nothing changes, RFC 3264 §8). Skipped for now if an offer is
    /// crossing the call (its 2xx refreshes the session too).
    fn send_refresh(&mut self, now: Now, handle: CallHandle, mut timer: SessionTimer) {
        let branch = self.new_branch();
        let min_se = self.config.calls.min_session_expires_s;
        let busy = self
            .calls
            .calls
            .get(&handle)
            .is_some_and(|c| c.exchange.is_some() || c.pending_refresh.is_some());
        if busy {
            // The open request's 2xx refreshes the session (`trunk_refreshed` moves the
            // deadline); should it fail, the refresh is tried again 2 s later, still well
            // before the trunk's expiry check (§10).
            timer.deadline = Some(now.mono + std::time::Duration::from_secs(2));
            return self.set_session_timer(handle, Some(timer));
        }
        timer.restart(now.mono);
        self.set_session_timer(handle, Some(timer));
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let method = if call.peer_allows_update(Side::Caller) {
            Method::Update
        } else {
            Method::Invite
        };
        let body = match method {
            Method::Invite => call.local_sdp(Side::Caller),
            _ => None,
        };
        let Some(dialog) = call.trunk.dialog.as_mut() else {
            return;
        };
        let mut b = mid_call_request(&self.config, dialog, &method, &branch);
        for (name, value) in timer.refresh_headers(min_se) {
            b = b.header(name, value);
        }
        if let Some(body) = body {
            b = b.body("application/sdp", body);
        }
        let destination = dialog.destination;
        let sent = self.send_in_dialog(
            now,
            (handle, Side::Caller, Purpose::Refresh),
            branch,
            b.build(),
            destination,
        );
        if let Some(call) = self.calls.calls.get_mut(&handle) {
            call.pending_refresh = sent;
        }
    }

    /// The trunk's final response to siaga's refresh: a 2xx restarts the interval with the
    /// terms it carries (§7.2); 422 raises the interval to its Min-SE and refreshes again
    /// at once (§7.3); 491 retries after 0–2 s (RFC 3261 §14.1); 408 and 481 end the call
    /// (§10); another failure leaves the session
    /// as it was (the peer answered, so it is alive) until the next refresh.
    fn refresh_answered(
        &mut self,
        now: Now,
        (handle, tx, method): (CallHandle, ClientTxId, &Method),
        status: u16,
        response: &SipMessage,
    ) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        if call.pending_refresh != Some(tx) {
            return;
        }
        call.pending_refresh = None;
        let Some(mut timer) = call.session_timer else {
            return;
        };
        match status {
            200..=299 => {
                // A re-INVITE refresh offered siaga's description: the 2xx answers it.
                if *method == Method::Invite && !response.body().is_empty() {
                    self.take_answer(handle, Side::Caller, response.body());
                }
                self.trunk_refreshed(now, handle, response);
            }
            // A trunk that lists UPDATE but refuses it: the refresh goes again at once as
            // a re-INVITE (§7.4), before the trunk's expiry check.
            405 | 501 if *method == Method::Update => {
                call.trunk.media.allows_update = false;
                self.send_refresh(now, handle, timer);
            }
            422 => {
                let min_se = super::session_timer::min_se_of(response).ok().flatten();
                timer.interval = timer.interval.max(min_se.unwrap_or(timer.interval));
                self.send_refresh(now, handle, timer);
            }
            491 => {
                // §14.1: the trunk's own request crossed the refresh; siaga does not own
                // the trunk's Call-ID, so it retries after 0–2 s.
                use rand::Rng;
                let delay = std::time::Duration::from_millis(self.rng.random_range(0..=2000));
                timer.deadline = Some(now.mono + delay);
                self.set_session_timer(handle, Some(timer));
            }
            408 | 481 => {
                tracing::warn!(
                    status,
                    "the trunk refused siaga's session refresh: ending the call"
                );
                let reason = format!("{status} response to the session refresh");
                self.caller_leg_lost(now, handle, &reason);
            }
            _ => {}
        }
    }

    /// The trunk's 2xx to a re-INVITE or UPDATE siaga sent it: a session refresh (RFC 4028
    /// §2, §7.2), whatever it was sent for. The interval restarts with the terms the 2xx
    /// carries; without `Session-Expires` the session no longer expires.
    fn trunk_refreshed(&mut self, now: Now, handle: CallHandle, response: &SipMessage) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(mut timer) = call.session_timer else {
            return;
        };
        if timer.accept_refresh_answer(response) {
            self.start_session_timer(now, handle, timer);
        } else {
            self.set_session_timer(handle, None);
        }
    }

    // ---- ACKs and 2xx retransmissions -------------------------------------------------------

    /// The ACK of siaga's 2xx to an INVITE or re-INVITE on `side` of `handle` arrived:
    /// stop resending the 2xx (§13.3.1.4); an SDP in it is the answer to the offer siaga
    /// put in that 2xx (late offer, or an offer-less re-INVITE, RFC 3264 §8).
    pub(crate) fn mid_call_ack(&mut self, handle: CallHandle, side: Side, ack: &SipMessage) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        // §13.2.2.4: the ACK of a 2xx carries its INVITE's CSeq number; a late copy of an
        // earlier ACK leaves a later 2xx waiting.
        let seq = ack.cseq().map(|c| c.seq).ok();
        if call
            .pending_ok_mut(side)
            .is_none_or(|ok| Some(ok.seq) != seq)
        {
            return;
        }
        if call.take_pending_ok(side).is_none() {
            return;
        }
        if side == Side::Caller {
            self.ack_operator(handle, ack.body());
        }
        if ack.body().is_empty() {
            return;
        }
        self.take_answer(handle, side, ack.body());
    }

    /// `body`, the answer of the peer on `side` to an offer siaga made there of its
    /// current description (in a 2xx, or in a refresh re-INVITE): the relay sends to
    /// where it now receives (RFC 3264 §8). Unreadable, it changes nothing (latching).
    fn take_answer(&mut self, handle: CallHandle, side: Side, body: &[u8]) {
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let relay = call.relay.map(|(r, _, _)| r);
        match sdp::parse(body) {
            Ok(answer) => {
                call.set_remote_origin(side, answer.origin());
                if let (Some(relay), Some(rtp)) =
                    (relay, answer.rtp.filter(|a| !a.ip().is_unspecified()))
                {
                    self.media(MediaCommand::SetPeer { relay, side, rtp });
                }
            }
            Err(error) => {
                tracing::info!(%error, "answer to siaga's offer unreadable; relying on latching");
            }
        }
    }

    /// §13.3.1.4: the 2xx on `side` again, the interval doubled up to T2, until the ACK.
    pub(crate) fn resend_ok(&mut self, now: Now, handle: CallHandle, side: Side) {
        let t2 = self.config.timers.t2;
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(ok) = call.pending_ok_mut(side) else {
            return;
        };
        if ok.next > now.mono {
            // Armed for an earlier 2xx on this side: this one has its own timer.
            return;
        }
        let (bytes, target) = (ok.bytes.clone(), ok.target);
        ok.interval = (ok.interval * 2).min(t2);
        let next = ok.interval;
        ok.next = now.mono + next;
        self.outputs
            .push_back(crate::engine::Output::Transmit(crate::engine::Transmit {
                transport: target.transport,
                destination: target.destination,
                connection: target.connection,
                bytes,
            }));
        self.calls
            .schedule(now.mono + next, CallTimer::OkRetransmit(handle, side));
    }

    /// Where requests on `side` of `handle` go.
    fn dialog_destination(
        &mut self,
        handle: CallHandle,
        side: Side,
    ) -> Option<crate::engine::transaction::Destination> {
        Some(
            self.calls
                .calls
                .get_mut(&handle)?
                .dialog_mut(side)?
                .destination,
        )
    }
}

impl super::Call {
    /// Whether `msg`'s From tag is the peer's tag of the dialog on leg `leg` (`None`: the
    /// trunk's, early or confirmed; a From without tag is a null tag, §12.1.1).
    pub(crate) fn is_remote_tag(&self, leg: Option<u32>, msg: &SipMessage) -> bool {
        // The trunk's From is read as leniently as its INVITE was taken (RFC 3261 §8.2).
        let Ok(from) = msg.from_lenient() else {
            return false;
        };
        let theirs = from.tag().unwrap_or_default();
        match leg {
            // The dialog's remote tag once there is one: the INVITE's From tag when siaga
            // answered it, the 2xx's To tag when siaga sent it (`callback_ring`).
            None => match &self.trunk.dialog {
                Some(dialog) => dialog.remote_tag == theirs,
                None => self
                    .trunk
                    .invite
                    .from_lenient()
                    .is_ok_and(|f| f.tag().unwrap_or_default() == theirs),
            },
            Some(leg) => self
                .legs
                .get(&leg)
                .and_then(|l| l.dialog.as_ref())
                .is_some_and(|d| d.remote_tag == theirs),
        }
    }

    /// The answered leg (the operator's, or the backup centre's), if any.
    pub(super) fn answered_leg_mut(&mut self) -> Option<&mut super::OperatorLeg> {
        let leg = self.state.bridged_leg()?;
        self.legs.get_mut(&leg)
    }

    pub(super) fn answered_leg(&self) -> Option<&super::OperatorLeg> {
        let leg = self.state.bridged_leg()?;
        self.legs.get(&leg)
    }

    /// siaga's dialog on `side`.
    pub(crate) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.trunk.dialog.as_mut(),
            Side::Operator => self.answered_leg_mut()?.dialog.as_mut(),
        }
    }

    /// siaga's dialog and SDP origin on `side`.
    fn dialog_and_sdp(&mut self, side: Side) -> Option<(&mut Dialog, &mut SdpSession)> {
        match side {
            Side::Caller => Some((self.trunk.dialog.as_mut()?, &mut self.trunk.media.sdp)),
            Side::Operator => {
                let leg = self.answered_leg_mut()?;
                Some((leg.dialog.as_mut()?, &mut leg.media.sdp))
            }
        }
    }

    fn media_of(&self, side: Side) -> Option<&super::LegMedia> {
        match side {
            Side::Caller => Some(&self.trunk.media),
            Side::Operator => self.answered_leg().map(|l| &l.media),
        }
    }

    fn media_of_mut(&mut self, side: Side) -> Option<&mut super::LegMedia> {
        match side {
            Side::Caller => Some(&mut self.trunk.media),
            Side::Operator => self.answered_leg_mut().map(|l| &mut l.media),
        }
    }

    /// The SDP siaga last sent on `side`.
    fn local_sdp(&self, side: Side) -> Option<Bytes> {
        self.media_of(side)?.local.clone()
    }

    pub(crate) fn set_local_sdp(&mut self, side: Side, body: Bytes) {
        if let Some(media) = self.media_of_mut(side) {
            media.local = Some(body);
        }
    }

    /// The `o=` sess-id and version of the SDP the peer on `side` last sent.
    fn remote_origin(&self, side: Side) -> Option<(u64, u64)> {
        self.media_of(side)?.remote_origin
    }

    pub(crate) fn set_remote_origin(&mut self, side: Side, origin: (u64, u64)) {
        if let Some(media) = self.media_of_mut(side) {
            media.remote_origin = Some(origin);
        }
    }

    /// Whether the peer on `side` listed UPDATE in its Allow (RFC 3311 §5.1).
    fn peer_allows_update(&self, side: Side) -> bool {
        self.media_of(side).is_some_and(|m| m.allows_update)
    }

    fn pending_ok_mut(&mut self, side: Side) -> Option<&mut PendingOk> {
        self.media_of_mut(side)?.ok.as_mut()
    }

    fn set_pending_ok(&mut self, side: Side, ok: PendingOk) {
        if let Some(media) = self.media_of_mut(side) {
            media.ok = Some(ok);
        }
    }

    /// Stops resending the 2xx on `side`; returns it if one was being resent.
    pub(crate) fn take_pending_ok(&mut self, side: Side) -> Option<PendingOk> {
        self.media_of_mut(side)?.ok.take()
    }

    /// The 2xx on `side` still unacknowledged 64·T1 after it was sent, if it is `now`
    /// (§13.3.1.4), taken: the caller ends the call.
    pub(crate) fn take_unacked_ok(
        &mut self,
        side: Side,
        now: crate::engine::time::MonoTime,
    ) -> Option<PendingOk> {
        let media = self.media_of_mut(side)?;
        media.ok.as_ref().filter(|ok| ok.give_up <= now)?;
        media.ok.take()
    }
}
