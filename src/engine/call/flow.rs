//! The steps of an emergency call, as methods of the engine: the trunk's INVITE arrives
//! and queues (100, then 180 repeated), the ACD offers it to an operator (an INVITE to
//! each binding), the first 2xx is bridged (2xx to the trunk, ACKs, relay peers set), and
//! CANCEL, BYE, ring timeouts, rejects and failures move it on.
//!
//! RFC 3261 sections: §9 (CANCEL), §12 (dialogs), §13.2.2.4 (ACK of 2xx, and again for
//! each retransmitted 2xx), §13.3.1.1 (repeat the 180 at least once a minute), §13.3.1.4
//! (resend the 2xx until the ACK, give up after 64·T1 with BYE), §15 (BYE), §17.1.1.3 (ACK
//! of a failure), RFC 3264 (offer/answer).

use super::leg_loss::Hangup;
use super::session_timer::{Negotiation, SessionTimer};
use super::{
    Call, CallState, CallTimer, LegMedia, LegState, OperatorLeg, OutboundInvite, Pii, TrunkLeg,
};
use crate::engine::acd::{CallHandle, OfferEnd};
use crate::engine::dialog::{Dialog, DialogKey};
use crate::engine::driver::{Engine, SERVER};
use crate::engine::media::{MediaCommand, Side};
use crate::engine::record::{CallEventKind, Disposition, Party};
use crate::engine::sdp::{self, SdpSession};
use crate::engine::sip::builder::{MessageBuilder, response_to};
use crate::engine::sip::uri::Uri;
use crate::engine::sip::{HeaderName, Method, SipMessage};
use crate::engine::time::Now;
use crate::engine::transaction::{
    ClientKey, ClientTxId, Destination, ResponseTarget, Termination, TimerName, TxId,
};
use crate::engine::uas;
use crate::engine::{Output, Received, Transmit, Transport};
use bytes::Bytes;
use std::net::SocketAddr;

/// Where requests to a binding go: the address the REGISTER came from (RFC 3581: phones
/// behind NAT stay reachable), on its TCP connection while that is open. Once a phone's
/// TCP connection closed, its source port was ephemeral: the Contact's address is used
/// instead when it is an IP literal (RFC 3261 §18.1.1).
pub(super) fn binding_destination(b: &crate::engine::registrar::Binding) -> Destination {
    let reconnect = (b.transport == Transport::Tcp && b.connection.is_none())
        .then(|| b.contact_uri.socket_addr())
        .flatten();
    let address = reconnect.unwrap_or(b.source);
    Destination {
        transport: b.transport,
        address,
        connection: b.connection,
    }
}

/// Where requests in the dialog of an INVITE siaga answers as UAS go when no Contact or
/// route names an IP (see `Dialog::as_uas`): over UDP the response address, over TCP its
/// connection (or a new one to the Via's sent-by).
pub(crate) fn dialog_source(rx: &Received, target: ResponseTarget) -> Destination {
    Destination {
        transport: rx.transport,
        address: match rx.transport {
            Transport::Udp => target.destination,
            Transport::Tcp => target.reconnect,
        },
        connection: rx.connection,
    }
}

/// An emergency INVITE the UAS core accepted: its server transaction, the To tag of its
/// responses, where they go, and the number dialled.
pub(crate) struct NewCall {
    pub tx: TxId,
    pub local_tag: String,
    pub target: ResponseTarget,
    pub called: String,
}

/// What every leg of one offer (or overflow attempt, or callback) of a call carries
/// (`leg_offer`).
pub(super) struct LegOffer {
    /// siaga's SDP origin on these legs.
    pub(super) session: SdpSession,
    /// The SDP offer: the trunk's across the relay, as it came without relay, `None` for a
    /// late offer without relay.
    pub(super) body: Option<Bytes>,
    /// Whom the legs name as the originator: the caller as the trunk's INVITE names them
    /// (`leg_offer`), or siaga itself on a callback (`callback`).
    pub(super) from: LegFrom,
    /// Flag the caller as a repeat caller on the legs (`Call::repeat`): operators' phones
    /// show it; the backup centre's leg does not carry it (`overflow`).
    pub(super) repeat: bool,
    /// The `Priority` header value of the legs (RFC 3261 §20.26), if any: `psap-callback`
    /// on a callback (RFC 7090 §4).
    pub(super) priority: Option<&'static str>,
}

/// Whom an outbound leg's INVITE names as its originator (From, and P-Asserted-Identity
/// inside the trust domain: RFC 3325 §5).
pub(super) enum LegFrom {
    /// The caller, as the trunk's INVITE names them (`CallerIdentity::outbound_headers`):
    /// operators' legs and the backup centre's.
    Caller(super::CallerIdentity),
    /// siaga's PSAP identity, a name-addr such as `<sip:112@siaga.test>`: a callback's leg
    /// (RFC 7090 §4), as From, and as P-Asserted-Identity inside the trust domain.
    Psap(String),
}

/// Where one outbound leg goes (`place_leg`).
pub(super) struct LegTarget {
    /// What the leg records as its `OperatorLeg::operator`: the operator, or the backup
    /// centre's URI.
    pub name: String,
    /// The INVITE's Request-URI.
    pub uri: String,
    /// The To header's value.
    pub to: String,
    /// Where the INVITE is sent.
    pub destination: Destination,
    /// Whether the peer is inside siaga's trust domain (RFC 3325 §5).
    pub trust: super::Trust,
    /// The RFC 5626 flow of an operator's binding.
    pub flow: Option<crate::engine::registrar::OutboundFlow>,
}

/// What siaga can relay, as an offer: PCMA, PCMU and telephone-event (RFC 4733) at
/// `ip`. Stands in for the trunk's offer when its INVITE had none (late offer): the
/// operator is offered this, and the trunk gets siaga's offer in the 2xx (§13.2.1).
pub(super) fn capability_offer(ip: std::net::IpAddr) -> Option<crate::engine::sdp::MediaOffer> {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let text = format!(
        "v=0\r\no=siaga 0 0 IN {family} {ip}\r\ns=siaga\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio 9 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
    );
    sdp::parse(text.as_bytes()).ok()
}

/// Why the relay cannot reach the media of `offer` (RFC 3261 §20.43 warn-code 301, the
/// warn-text): its address is IPv6 and the relay's (`media_ip`) IPv4, or the reverse — one
/// relay socket cannot send to the other family. RFC 5118 §4.9's IPv4-mapped IPv6
/// addresses count as IPv4; the hold address `0.0.0.0` fits any relay.
pub(crate) fn family_mismatch(
    offer: &crate::engine::sdp::MediaOffer,
    media_ip: std::net::IpAddr,
) -> Option<String> {
    let rtp = offer.rtp.filter(|rtp| !rtp.ip().is_unspecified())?;
    (rtp.ip().to_canonical().is_ipv4() != media_ip.to_canonical().is_ipv4()).then(|| {
        format!("Incompatible network address formats: media at {rtp}, relay at {media_ip}")
    })
}

/// Whether `msg` lists UPDATE in its Allow (RFC 3311 §5.1).
pub(super) fn allows_update(msg: &SipMessage) -> bool {
    msg.allow()
        .is_ok_and(|methods| methods.contains(&Method::Update))
}

/// A leg's failure in a few words: its final status, or `no response` for 0 (Timer B).
pub(super) fn failure_reason(status: u16) -> String {
    match status {
        0 => "no response".to_owned(),
        s => format!("{s} response"),
    }
}

/// Statuses siaga gives up an operator leg on without calling it a reject.
fn is_reject(status: u16) -> bool {
    matches!(status, 480 | 486 | 600 | 603)
}

impl Engine {
    // ---- the trunk's INVITE -------------------------------------------------------------

    /// A new emergency INVITE from the trunk, whose server transaction `tx` exists with
    /// To tag `local_tag`: 100 Trying, 180 Ringing, a relay, the records, the queue.
    pub(crate) fn start_call(
        &mut self,
        now: Now,
        rx: &Received,
        invite: &SipMessage,
        new: NewCall,
    ) {
        let NewCall {
            tx,
            local_tag,
            target,
            called,
        } = new;
        let trusted = self.config.calls.is_trusted(rx.source.ip());
        let caller = super::CallerIdentity::of_invite(invite, trusted).number;
        let original_called = super::original_called(invite);
        let dialled: Vec<&str> = original_called
            .iter()
            .map(String::as_str)
            .chain([called.as_str()])
            .collect();
        let routing = self.calls.acd.route(&dialled);
        // Signalled priority is believed from the trust domain only, like the identity.
        let signalled = if trusted {
            super::priority::signalled(invite)
        } else {
            0
        };
        // RFC 3264 §6 (via RFC 3261 §13.3.1.3): an offer siaga cannot read, one without
        // G.711 (siaga does not transcode), or one the relay cannot reach (another address
        // family) is answered 488 with a Warning saying which (§21.4.26) — the one refusal
        // of an emergency call the RFCs force here. It is logged and recorded as failed.
        let trunk_offer = match self.read_trunk_offer(invite) {
            Ok(offer) => offer,
            Err((code, why)) => {
                self.record_refused_call(now, invite, called, 488, &why);
                let warning = self.warning(code, &why);
                return self.refuse_call(
                    now,
                    tx,
                    invite,
                    (&local_tag, rx.source),
                    (488, "Not Acceptable Here"),
                    &[("Warning", warning)],
                );
            }
        };
        // RFC 4028 §9: an interval below siaga's Min-SE from a trunk that supports
        // session timers is refused with 422 (the trunk retries at once with a larger one).
        let session_timer =
            match SessionTimer::negotiate(invite, self.config.calls.min_session_expires_s) {
                Negotiation::TooSmall { min_se } => {
                    let why = format!("Session-Expires below Min-SE {min_se} s");
                    self.record_refused_call(now, invite, called, 422, &why);
                    let min_se = [("Min-SE", min_se.to_string())];
                    return self.refuse_call(
                        now,
                        tx,
                        invite,
                        (&local_tag, rx.source),
                        (422, "Session Interval Too Small"),
                        &min_se,
                    );
                }
                Negotiation::Off => None,
                Negotiation::On(timer) => Some(timer),
            };
        let late_offer = trunk_offer.is_none();
        let trunk_remote_origin = trunk_offer.as_ref().map(|o| o.origin());
        let trunk_offer = trunk_offer.or_else(|| capability_offer(self.config.calls.media_ip));
        let handle = self.calls.new_call_handle();
        let record = self.new_uuid();
        let max_forwards = invite.max_forwards().ok().flatten().unwrap_or(70);
        let source = dialog_source(rx, target);
        let relay = self.open_relay(record);
        let trunk_rtp = trunk_offer
            .as_ref()
            .and_then(|o| o.rtp)
            .filter(|_| !late_offer);
        if let (Some((relay, _, _)), Some(rtp)) = (relay, trunk_rtp) {
            self.media(MediaCommand::SetPeer {
                relay,
                side: Side::Caller,
                rtp,
            });
        }
        tracing::info!(
            call = %record,
            caller = %Pii(caller.as_deref().unwrap_or("unknown")),
            %called,
            source = %rx.source,
            "emergency call received"
        );
        let trunk_call_id = invite.call_id().map(str::to_owned).unwrap_or_default();
        self.emit(
            record,
            now,
            CallEventKind::Received {
                trunk_call_id,
                caller: caller.clone(),
                called,
                original_called,
                trunk: self.config.calls.trunk_name.clone(),
            },
        );
        let repeat = caller
            .as_deref()
            .is_some_and(|c| self.calls.acd.repeat.is_repeat(c, now.mono));
        let priority = super::priority::combine(routing.priority, signalled, repeat);
        let mut media = LegMedia::new(SdpSession::random(&mut self.rng));
        media.remote_origin = trunk_remote_origin;
        media.allows_update = allows_update(invite);
        let reliable = super::Reliable::for_invite(invite, late_offer, &mut self.rng);
        let position = handle.0;
        self.calls.calls.insert(
            handle,
            Call {
                record,
                position,
                state: CallState::Queued,
                attempts: 0,
                trunk: TrunkLeg {
                    invite: invite.clone(),
                    tx,
                    target,
                    received_from: rx.source,
                    source,
                    local_tag,
                    media,
                    max_forwards,
                    dialog: None,
                    reliable,
                },
                legs: Default::default(),
                caller,
                relay,
                trunk_offer,
                late_offer,
                received_at: now.mono,
                exchange: None,
                session_timer,
                pending_refresh: None,
                repeat,
                transfer: None,
                callback: None,
            },
        );
        self.calls.by_invite.insert(tx, handle);
        // The 180 creates an early dialog (§12.1.1): a BYE in it ends the call.
        if let Some(call) = self.calls.calls.get(&handle) {
            self.calls
                .by_dialog
                .insert(call.trunk.dialog_key(), (handle, None));
        }
        self.send_provisional(now, handle, 100, "Trying");
        self.send_provisional(now, handle, 180, "Ringing");
        self.calls.schedule(
            now.mono + self.config.calls.ringing_refresh,
            CallTimer::RingingRefresh(handle),
        );
        let queue = self.calls.acd.queue(routing.queue).name.clone();
        if repeat {
            tracing::info!(call = %record, priority, "repeat caller: raised in the queue");
        }
        self.emit(
            record,
            now,
            CallEventKind::Queued {
                queue,
                priority,
                repeat,
                skills: routing.skills.clone(),
            },
        );
        if max_forwards == 0 {
            // RFC 7332 §3: a leg would need Max-Forwards -1. The call is still taken (an
            // emergency call is never turned away for it) and waits for the caller to hang up.
            tracing::warn!(call = %record, "emergency INVITE with Max-Forwards 0: no operator leg can be placed (RFC 7332); the call stays queued");
        }
        self.calls
            .acd
            .enqueue(handle, record, &routing, priority, now.mono);
        self.dispatch(now);
        if self.calls.acd.logged_in() == 0 {
            tracing::warn!(call = %record, waiting = self.calls.acd.waiting(), "emergency call queued with no operator logged in");
        }
    }

    /// Records an emergency INVITE siaga refused with `status` (only what the RFCs force:
    /// an offer it cannot take part in, an extension it lacks …): received and ended as
    /// `failed` at once, with a warning naming `why`.
    pub(crate) fn record_refused_call(
        &mut self,
        now: Now,
        invite: &SipMessage,
        called: String,
        status: u16,
        why: &str,
    ) {
        let record = self.new_uuid();
        tracing::warn!(call = %record, status, why, %called, "emergency call refused");
        self.emit(
            record,
            now,
            CallEventKind::Received {
                trunk_call_id: invite.call_id().map(str::to_owned).unwrap_or_default(),
                caller: super::caller_number(invite),
                called,
                original_called: super::original_called(invite),
                trunk: self.config.calls.trunk_name.clone(),
            },
        );
        self.emit(
            record,
            now,
            CallEventKind::Ended {
                by: Party::Siaga,
                disposition: Disposition::Failed,
            },
        );
    }

    /// The trunk's SDP offer: `None` without one. When siaga cannot take part in it, the
    /// RFC 3261 §20.43 warn-code and text saying why: 305 (Incompatible media format: no
    /// readable audio, no G.711), or 301 (Incompatible network address formats: the
    /// trunk's media address is IPv6 and the relay's IPv4, or the reverse — one relay
    /// socket cannot send to the other family; RFC 5118 §4.9's IPv4-mapped IPv6 addresses
    /// count as IPv4).
    pub(super) fn read_trunk_offer(
        &self,
        invite: &SipMessage,
    ) -> Result<Option<crate::engine::sdp::MediaOffer>, (u16, String)> {
        let Some(body) = crate::engine::sip::body::sdp_of(invite) else {
            return Ok(None);
        };
        let incompatible = |e: &dyn std::fmt::Display| (305, e.to_string());
        let offer = sdp::parse(body).map_err(|e| incompatible(&e))?;
        let media_ip = self.config.calls.media_ip;
        if let Some(why) = family_mismatch(&offer, media_ip) {
            return Err((301, why));
        }
        let relay = SocketAddr::new(media_ip, 0);
        sdp::offer_across(&offer, relay, &mut SdpSession::new(1)).map_err(|e| incompatible(&e))?;
        Ok(Some(offer))
    }

    /// A Warning value (RFC 3261 §20.43) with `code` and `why`, from siaga's host.
    pub(crate) fn warning(&self, code: u16, why: &str) -> String {
        // warn-text is a quoted-string: no quote or backslash of the error's text.
        let text = why.replace(['"', '\\'], "'");
        format!("{code} {} \"{text}\"", self.config.via_host())
    }

    /// Answers the INVITE on `tx` with a final failure and forgets it.
    pub(super) fn refuse_call(
        &mut self,
        now: Now,
        tx: TxId,
        invite: &SipMessage,
        (tag, received): (&str, SocketAddr),
        (status, reason): (u16, &str),
        headers: &[(&str, String)],
    ) {
        let mut b =
            response_to(invite, Some(received), status, reason, Some(tag)).header("Server", SERVER);
        for (name, value) in headers {
            b = b.header(name, value);
        }
        let bytes = b.build();
        if let Err(error) = self.server.send_response(now.mono, tx, status, bytes) {
            tracing::error!(%error, "transaction refused siaga's own response");
        }
    }

    /// Opens a relay for a call: two RTP ports (caller side, operator side). `None` when
    /// the range is exhausted (logged as an error): the call goes on, never refused — the
    /// next offer tries again, and without a relay the SDP passes through unchanged so the
    /// phones exchange media directly.
    pub(super) fn open_relay(
        &mut self,
        record: uuid::Uuid,
    ) -> Option<(crate::engine::media::RelayId, u16, u16)> {
        let exhausted = || {
            tracing::error!(
                "RTP port range (media.rtp_ports) exhausted: the call's media goes directly \
                 between trunk and operator until ports are free"
            );
        };
        let Some(caller_port) = self.ports.allocate() else {
            exhausted();
            return None;
        };
        let Some(operator_port) = self.ports.allocate() else {
            self.ports.release(caller_port);
            exhausted();
            return None;
        };
        let relay = self.calls.new_relay();
        self.calls.relays.insert(relay, record);
        self.media(MediaCommand::Open {
            relay,
            caller_port,
            operator_port,
        });
        Some((relay, caller_port, operator_port))
    }

    /// A provisional response to the trunk's INVITE (with a Contact when it carries a To
    /// tag, so it may create an early dialog, §12.1.1).
    pub(super) fn send_provisional(
        &mut self,
        now: Now,
        handle: CallHandle,
        status: u16,
        reason: &str,
    ) {
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let tag = (status != 100).then_some(call.trunk.local_tag.as_str());
        let mut b = response_to(
            &call.trunk.invite,
            Some(call.trunk.received_from),
            status,
            reason,
            tag,
        )
        .header("Server", SERVER);
        if status != 100 {
            // §12.1.1: a response that creates a dialog copies the Record-Route.
            b = b
                .copy_all(&call.trunk.invite, HeaderName::RecordRoute)
                .header("Contact", self.config.contact(call.trunk.target.transport));
        }
        // RFC 3262 §3: reliably when the INVITE asked for it (never the 100).
        if status != 100 && call.trunk.reliable.is_some() {
            return self.send_reliable(now, handle, status, b);
        }
        let tx = call.trunk.tx;
        if let Err(error) = self.server.send_response(now.mono, tx, status, b.build()) {
            tracing::debug!(%error, "provisional response not sent");
        }
    }

    // ---- the ACD's decisions ------------------------------------------------------------

    /// Offers waiting calls to available operators while the ACD finds pairs (not while
    /// siaga stops).
    pub(crate) fn dispatch(&mut self, now: Now) {
        if self.stopping {
            return;
        }
        loop {
            let calls = &self.calls.calls;
            let registrar = &self.registrar;
            let next = self.calls.acd.next_offer(
                now.mono,
                |call| {
                    calls.get(&call).is_some_and(|c| {
                        c.trunk.outbound_max_forwards().is_some() && !c.awaits_early_answer()
                    })
                },
                |operator| registrar.targets(operator).next().is_some(),
            );
            let Some(offer) = next else {
                break;
            };
            let reserved = self.calls.acd.offer(&offer, now.mono);
            if reserved.is_empty() {
                break;
            }
            self.offer(now, offer.call, &reserved);
        }
        // Then the calls due to overflow to the backup centre (`overflow`): an available
        // operator always wins over it.
        self.dispatch_overflow(now);
    }

    /// Rings every binding that can be reached (`Registrar::targets`) of each of
    /// `operators` (one; several for ring-all) for call `handle` (RFC 3261 §13.2.1;
    /// parallel forking done by siaga as the UAC of each leg).
    fn offer(&mut self, now: Now, handle: CallHandle, operators: &[String]) {
        let bindings: Vec<_> = operators
            .iter()
            .flat_map(|operator| {
                self.registrar.targets(operator).map(move |b| {
                    (
                        operator.clone(),
                        b.contact_uri.to_string(),
                        binding_destination(b),
                        b.outbound.clone(),
                    )
                })
            })
            .collect();
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        call.attempts += 1;
        let attempt = call.attempts;
        call.state = CallState::Offering {
            operators: operators.to_vec(),
            attempt,
        };
        let queue = self.calls.acd.entry(handle).map(|e| e.queue);
        let ring_timeout = self
            .calls
            .acd
            .queue(queue.unwrap_or(crate::engine::acd::QueueId(0)))
            .ring_timeout;
        let record = call.record;
        let Some((offer, max_forwards)) = self.leg_offer(handle) else {
            return;
        };
        // `dispatch` offers no call whose legs would need a Max-Forwards below 0.
        let Some(max_forwards) = max_forwards else {
            for operator in operators {
                self.offer_failed(now, handle, operator, OfferEnd::Withdrawn);
            }
            return;
        };
        for operator in operators {
            self.emit(
                record,
                now,
                CallEventKind::Offered {
                    operator: operator.clone(),
                },
            );
        }
        tracing::info!(call = %record, ?operators, bindings = bindings.len(), "offering call");
        let domain = self.config.domains.first().cloned().unwrap_or_default();
        for (operator, contact, destination, flow) in bindings {
            // The operator sees who calls, whatever privacy the caller asked of the public
            // network: operators are inside the trust domain (RFC 3325 §5).
            let target = LegTarget {
                to: format!("<sip:{operator}@{domain}>"),
                name: operator,
                uri: contact,
                destination,
                trust: super::Trust::Inside,
                flow,
            };
            self.place_leg(now, (handle, attempt), max_forwards, &offer, target);
        }
        // An operator none of whose bindings could be rung (they vanished) is not offered
        // the call after all.
        for operator in operators {
            let rung = self.calls.calls.get(&handle).is_some_and(|c| {
                c.legs
                    .values()
                    .any(|l| l.attempt == attempt && l.operator == *operator)
            });
            if !rung {
                self.offer_failed(now, handle, operator, OfferEnd::Withdrawn);
            }
        }
        let ringing = self.calls.calls.get(&handle).is_some_and(
            |c| matches!(c.state, CallState::Offering { attempt: a, .. } if a == attempt),
        );
        if ringing {
            self.calls.schedule(
                now.mono + ring_timeout,
                CallTimer::RingTimeout(handle, attempt),
            );
        }
    }

    /// What every leg of the next offer (or overflow attempt) of call `handle` carries,
    /// and the Max-Forwards of those legs (`None`: the trunk's INVITE had 0, no leg may be
    /// placed). A call taken while the port range was exhausted gets its relay now, if it
    /// can. `None` for a call that is gone.
    pub(super) fn leg_offer(&mut self, handle: CallHandle) -> Option<(LegOffer, Option<u8>)> {
        let call = self.calls.calls.get_mut(&handle)?;
        let record = call.record;
        if call.relay.is_none() {
            let relay = self.open_relay(record);
            let call = self.calls.calls.get_mut(&handle)?;
            call.relay = relay;
            let trunk_rtp = call.trunk_offer.as_ref().and_then(|o| o.rtp);
            if let (Some((relay, _, _)), Some(rtp), false) = (relay, trunk_rtp, call.late_offer) {
                self.media(MediaCommand::SetPeer {
                    relay,
                    side: Side::Caller,
                    rtp,
                });
            }
        }
        let call = self.calls.calls.get(&handle)?;
        let mut session = SdpSession::random(&mut self.rng);
        let body = match (call.operator_offer().as_deref(), call.relay) {
            (Some(offer), Some((_, _, operator_port))) => {
                let relay = SocketAddr::new(self.config.calls.media_ip, operator_port);
                sdp::offer_across(offer, relay, &mut session).ok()
            }
            // No relay: the trunk's offer as it came (direct media).
            (Some(_), None) if !call.late_offer => {
                crate::engine::sip::body::sdp_of(&call.trunk.invite).map(Bytes::copy_from_slice)
            }
            _ => None,
        };
        let trusted = self.config.calls.is_trusted(call.trunk.received_from.ip());
        let caller = super::CallerIdentity::of_invite(&call.trunk.invite, trusted);
        let offer = LegOffer {
            session,
            body,
            from: LegFrom::Caller(caller),
            repeat: call.repeat,
            priority: None,
        };
        Some((offer, call.trunk.outbound_max_forwards()))
    }

    /// Sends the INVITE of a new leg of `attempt` of call `handle` to `target` (RFC 3261
    /// §8.1.1: a new dialog, siaga its UAC), with Max-Forwards `max_forwards`, `offer`'s
    /// SDP and the caller's identity as `target.trust` allows (RFC 3325 §5), and records
    /// its client transaction and the leg. The leg number; `None` when siaga could not
    /// form the INVITE (logged) or the call is gone.
    pub(super) fn place_leg(
        &mut self,
        now: Now,
        (handle, attempt): (CallHandle, u32),
        max_forwards: u8,
        offer: &LegOffer,
        target: LegTarget,
    ) -> Option<u32> {
        let (leg_no, leg) =
            self.send_leg_invite(now, (handle, attempt), max_forwards, offer, target)?;
        let call = self.calls.calls.get_mut(&handle)?;
        call.legs.insert(leg_no, leg);
        Some(leg_no)
    }

    /// The INVITE of `place_leg`, sent and its client transaction recorded
    /// ([`CallTable::invites`](super::CallTable::invites)), and the leg it makes, which
    /// the caller puts in its call (`callback_ring` builds the call around it). `None`
    /// when siaga could not form the INVITE (logged).
    pub(super) fn send_leg_invite(
        &mut self,
        now: Now,
        (handle, attempt): (CallHandle, u32),
        max_forwards: u8,
        offer: &LegOffer,
        target: LegTarget,
    ) -> Option<(u32, OperatorLeg)> {
        let LegTarget {
            name,
            uri,
            to,
            destination,
            trust,
            flow,
        } = target;
        let leg = self.calls.new_leg();
        let branch = self.new_branch();
        let from_tag = self.new_tag();
        let call_id = format!("{}@{}", self.new_tag(), self.config.node_id);
        let domain = self.config.domains.first().cloned().unwrap_or_default();
        let mut b = MessageBuilder::request(&Method::Invite, &uri)
            .header(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch={branch};rport",
                    destination.transport.via_token(),
                    self.config.via_host()
                ),
            )
            .header("Max-Forwards", max_forwards);
        let identity = match &offer.from {
            LegFrom::Caller(caller) => caller.outbound_headers(trust, &domain, &from_tag),
            LegFrom::Psap(psap) => {
                let asserted =
                    (trust == super::Trust::Inside).then(|| ("P-Asserted-Identity", psap.clone()));
                [("From", format!("{psap};tag={from_tag}"))]
                    .into_iter()
                    .chain(asserted)
                    .collect()
            }
        };
        for (name, value) in identity {
            // A repeat caller is flagged where every softphone shows it: the display
            // name, and a high-priority alert (RFC 7462 §4.2.3) for phones that ring
            // differently.
            let value = match name {
                "From" if offer.repeat => value.replacen('"', "\"REPEAT ", 1),
                _ => value,
            };
            b = b.header(name, value);
        }
        if offer.repeat {
            b = b.header("Alert-Info", "<urn:alert:priority:high>");
        }
        if let Some(priority) = offer.priority {
            b = b.header("Priority", priority);
        }
        let mut b = b
            .header("To", to)
            .header("Call-ID", &call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", self.config.contact(destination.transport))
            .header("Allow", uas::allow_value())
            .header("User-Agent", SERVER);
        if let Some(body) = &offer.body {
            b = b.body("application/sdp", body.clone());
        }
        // RFC 3261 §18.1.1: a large INVITE to a peer on UDP goes over TCP.
        let routed = self.route_request(now, b.build(), destination);
        let destination = routed.destination;
        let request = match SipMessage::parse(routed.bytes.clone(), destination.transport) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e.error, "siaga built an INVITE it cannot parse");
                return None;
            }
        };
        let key = ClientKey {
            branch,
            method: Method::Invite,
        };
        let tx = self.send_routed(now, key, routed);
        self.calls.invites.insert(
            tx,
            OutboundInvite {
                call: handle,
                leg,
                request,
                destination,
                cancel_sent: false,
                unwanted: Vec::new(),
            },
        );
        Some((
            leg,
            OperatorLeg {
                operator: name,
                attempt,
                tx,
                destination,
                state: LegState::Calling,
                dialog: None,
                ack: None,
                media: LegMedia {
                    local: offer.body.clone(),
                    ..LegMedia::new(offer.session)
                },
                flow,
            },
        ))
    }

    // ---- responses from operators -------------------------------------------------------

    /// A response passed up by the client INVITE transaction `tx` (first 1xx/2xx/failure,
    /// and every 2xx while Accepted).
    pub(crate) fn on_invite_response(&mut self, now: Now, tx: ClientTxId, response: &SipMessage) {
        let Some(status) = response.status() else {
            return;
        };
        let Some(out) = self.calls.invites.get(&tx) else {
            return;
        };
        let (handle, leg_no) = (out.call, out.leg);
        let leg_state = self
            .calls
            .calls
            .get(&handle)
            .and_then(|c| c.legs.get(&leg_no))
            .map(|l| l.state);
        match status {
            100..=199 => {
                // A leg siaga gave up on before it rang: cancel it now (§9.1).
                if matches!(leg_state, None | Some(LegState::CancelPending)) {
                    self.send_cancel(now, tx);
                } else if leg_state == Some(LegState::Calling) {
                    self.set_leg_state(handle, leg_no, LegState::Early);
                }
                self.early_dialog(tx, handle, leg_no, response);
                // A callback's gateway rings: so does the operator's phone (`callback`).
                self.callback_progress(now, handle, status);
            }
            200..=299 => match leg_state {
                // The operator's phone a callback from the API rang answered, or its 2xx
                // came again (`callback_ring`).
                Some(LegState::Calling | LegState::Early)
                    if self.is_callback_ring_leg(handle, leg_no) =>
                {
                    self.callback_ring_answered(now, tx, (handle, leg_no), response);
                }
                _ if self.is_callback_ring_2xx_again(handle, tx, response) => {
                    self.resend_callback_ring_ack(handle);
                }
                // A field agency answered the transfer (`transfer`).
                Some(LegState::Calling | LegState::Early)
                    if self.is_transfer_leg(handle, leg_no) =>
                {
                    self.transfer_answered(now, tx, (handle, leg_no), response);
                }
                Some(LegState::Calling | LegState::Early)
                    if self.is_current_offer(handle, leg_no) =>
                {
                    self.bridge(now, tx, handle, leg_no, response);
                }
                // The same 2xx again: ACK it again (§13.2.2.4); a 2xx with another To tag
                // is another dialog (a forking proxy before the phone): ACK and end it.
                Some(LegState::Answered) if self.is_leg_dialog(handle, leg_no, response) => {
                    self.resend_ack(handle, leg_no)
                }
                // Answered too late (another binding won, the ring timeout passed, or the
                // caller hung up): ACK it and end it at once.
                _ => self.ack_and_bye(now, tx, response),
            },
            _ => self.leg_failed(now, handle, leg_no, status),
        }
    }

    /// §12.1.2: a provisional response with a To tag creates an early dialog on the leg
    /// (replaced by the confirmed one when the 2xx comes). siaga sends nothing in it:
    /// operators' phones are not asked for reliable provisionals (RFC 3262), so there is no
    /// PRACK to send, and no offer changes before the 2xx.
    fn early_dialog(
        &mut self,
        tx: ClientTxId,
        handle: CallHandle,
        leg_no: u32,
        response: &SipMessage,
    ) {
        let has_tag = response.to().is_ok_and(|to| to.tag().is_some());
        let Some(out) = self.calls.invites.get(&tx).filter(|_| has_tag) else {
            return;
        };
        let Ok(dialog) = Dialog::as_uac(&out.request, response, out.destination) else {
            return;
        };
        if let Some(leg) = self
            .calls
            .calls
            .get_mut(&handle)
            .and_then(|c| c.legs.get_mut(&leg_no))
            .filter(|l| l.dialog.is_none())
        {
            leg.dialog = Some(dialog);
        }
    }

    fn is_current_offer(&self, handle: CallHandle, leg_no: u32) -> bool {
        let Some(call) = self.calls.calls.get(&handle) else {
            return false;
        };
        match (&call.state, call.legs.get(&leg_no)) {
            (CallState::Offering { attempt, .. }, Some(leg)) => leg.attempt == *attempt,
            // The backup centre's leg (`overflow`) is bridged like an operator's.
            (CallState::Overflowing { attempt, .. }, Some(leg)) => leg.attempt == *attempt,
            _ => false,
        }
    }

    /// Whether `response` belongs to the dialog of leg `leg_no` (its To tag).
    fn is_leg_dialog(&self, handle: CallHandle, leg_no: u32, response: &SipMessage) -> bool {
        let remote = self
            .calls
            .calls
            .get(&handle)
            .and_then(|c| c.legs.get(&leg_no))
            .and_then(|l| l.dialog.as_ref())
            .map(|d| d.remote_tag.clone());
        let to = response.to().ok();
        remote.is_some() && remote.as_deref() == to.as_ref().and_then(|t| t.tag())
    }

    fn leg_tx(&self, handle: CallHandle, leg_no: u32) -> Option<ClientTxId> {
        self.calls
            .calls
            .get(&handle)
            .and_then(|c| c.legs.get(&leg_no))
            .map(|l| l.tx)
    }

    fn set_leg_state(&mut self, handle: CallHandle, leg_no: u32, state: LegState) {
        if let Some(leg) = self
            .calls
            .calls
            .get_mut(&handle)
            .and_then(|c| c.legs.get_mut(&leg_no))
        {
            leg.state = state;
        }
    }

    /// The first 2xx of the current offer: the operator answered. ACK it, answer the
    /// trunk with siaga's SDP, point the relay at both sides, cancel the other bindings.
    fn bridge(
        &mut self,
        now: Now,
        tx: ClientTxId,
        handle: CallHandle,
        leg_no: u32,
        response: &SipMessage,
    ) {
        let Some(out) = self.calls.invites.get(&tx) else {
            return;
        };
        let dialog = match Dialog::as_uac(&out.request, response, out.destination) {
            Ok(d) => d,
            Err(error) => {
                tracing::info!(%error, "operator's 2xx cannot form a dialog");
                return self.ack_and_bye(now, tx, response);
            }
        };
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let operator = call
            .legs
            .get(&leg_no)
            .map(|l| l.operator.clone())
            .unwrap_or_default();
        let record = call.record;
        // A 2xx from the backup centre (`overflow`) is bridged the same way.
        let overflow = call.state.overflow_target().map(str::to_owned);
        let requeued = call.was_answered();
        // The trunk's answer (RFC 3264 §6), from the operator's; a re-queued call's trunk
        // has its answer already (see `leg_loss`).
        let answer = match (&call.trunk_offer, call.relay) {
            _ if requeued => call
                .reanswered(response.body(), &operator)
                .map(|(rtp, origin)| (None, rtp, Some(origin))),
            (Some(offer), Some((_, caller_port, _))) => {
                let late_offer = call.late_offer;
                // Late offer: siaga's offer to the trunk holds only the codec the operator
                // will send (its first), plus telephone-event, so whatever the trunk picks
                // is what it receives (RFC 3264 §5.1: media uses a format of the answer).
                let operator_answer = sdp::parse(response.body()).map(|mut op| {
                    if late_offer {
                        let mut audio_seen = false;
                        op.formats.retain(|f| match f.codec() {
                            Some(c) if c.is_audio() => !std::mem::replace(&mut audio_seen, true),
                            Some(_) => true,
                            None => false,
                        });
                    }
                    op
                });
                let relay = SocketAddr::new(self.config.calls.media_ip, caller_port);
                match operator_answer {
                    Ok(op) => {
                        match sdp::answer_across(offer, &op, relay, &mut call.trunk.media.sdp) {
                            Ok(body) => Some((Some(body), op.rtp, Some(op.origin()))),
                            Err(error) => {
                                tracing::info!(call = %record, operator, %error, "operator answered no common codec");
                                None
                            }
                        }
                    }
                    Err(error) => {
                        tracing::info!(call = %record, operator, %error, "operator's SDP unreadable");
                        None
                    }
                }
            }
            // No relay: the operator's answer as it came (direct media).
            (Some(_), None) if !response.body().is_empty() => {
                Some((Some(Bytes::copy_from_slice(response.body())), None, None))
            }
            _ => Some((None, None, None)),
        };
        let Some((body, operator_rtp, operator_origin)) = answer else {
            if overflow.is_some() {
                return self.overflow_unusable_answer(now, tx, (handle, leg_no), response);
            }
            self.emit(
                record,
                now,
                CallEventKind::LegFailed {
                    operator: operator.clone(),
                    reason: "no common codec".to_owned(),
                },
            );
            self.ack_and_bye(now, tx, response);
            // The operator's other phones of this offer stop ringing (other operators'
            // ring on); the operator is paused like after a reject (a phone that answers
            // at once with a codec siaga cannot relay would otherwise loop).
            if let Some(call) = self.calls.calls.get_mut(&handle) {
                call.legs.remove(&leg_no);
            }
            self.cancel_legs(now, handle, |l| l.operator == operator);
            return self.offer_failed(now, handle, &operator, OfferEnd::Failed);
        };
        // ACK the operator's 2xx (§13.2.2.4) — unless it carried the offer of a late-offer
        // call without relay: the answer is the trunk's, in the trunk's ACK (RFC 3264 §5),
        // and the operator's ACK waits for it (`ack_operator`).
        let awaits_answer = self.calls.calls.get(&handle).is_some_and(|c| {
            c.late_offer && c.relay.is_none() && !response.body().is_empty() && !requeued
        });
        let ack = (!awaits_answer).then(|| {
            let branch = self.new_branch();
            let ack = dialog.ack(1, &self.config.via_host(), &branch).build();
            self.transmit(dialog.destination, ack.clone());
            ack
        });
        self.calls
            .by_dialog
            .insert(dialog.key(), (handle, Some(leg_no)));
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        if let Some(leg) = call.legs.get_mut(&leg_no) {
            leg.state = LegState::Answered;
            leg.dialog = Some(dialog);
            leg.ack = ack;
            leg.media.remote_origin = operator_origin;
            leg.media.allows_update = allows_update(response);
        }
        call.state = match overflow.clone() {
            Some(target) => CallState::Overflowed {
                target,
                leg: leg_no,
            },
            None => CallState::Answered {
                operator: operator.clone(),
                leg: leg_no,
            },
        };
        if let (Some((relay, _, _)), Some(rtp)) = (call.relay, operator_rtp) {
            self.media(MediaCommand::SetPeer {
                relay,
                side: Side::Operator,
                rtp,
            });
        }
        // Cancel the other bindings still ringing (§9.1), the other operators' too
        // (ring-all): those are available again at once.
        let others: Vec<u32> = self
            .calls
            .calls
            .get(&handle)
            .map(|c| c.legs.keys().copied().filter(|&l| l != leg_no).collect())
            .unwrap_or_default();
        for other in others {
            self.cancel_leg(now, handle, other);
        }
        let losers: Vec<String> = self
            .calls
            .acd
            .ringing_for(handle)
            .into_iter()
            .filter(|o| *o != operator)
            .map(str::to_owned)
            .collect();
        for loser in losers {
            self.calls
                .acd
                .offer_ended(handle, &loser, OfferEnd::Withdrawn, now.mono);
        }
        if requeued {
            // A callback from the API (`callback_ring`): the operator's phone has its
            // session since it answered siaga's INVITE; the caller answered now.
            if self.callback_answered(handle) {
                return;
            }
            // The backup centre (`overflow`) may take a re-queued call too.
            return match overflow {
                Some(target) => self.overflow_answered(now, handle, target),
                None => self.rebridged(now, handle, operator),
            };
        }
        // The trunk's 2xx, resent until its ACK (§13.3.1.4).
        let Some(transport) = self
            .calls
            .calls
            .get(&handle)
            .map(|c| c.trunk.target.transport)
        else {
            return;
        };
        let contact = self.config.contact(transport);
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let mut b = response_to(
            &call.trunk.invite,
            Some(call.trunk.received_from),
            200,
            "OK",
            Some(&call.trunk.local_tag),
        )
        .header("Server", SERVER)
        .copy_all(&call.trunk.invite, HeaderName::RecordRoute)
        .header("Contact", contact)
        .header("Allow", uas::allow_value());
        // RFC 4028 §9: the session timer's terms, when the trunk asked for one.
        if let Some(timer) = call.session_timer {
            b = b.header("Supported", "timer");
            for (name, value) in timer.response_headers() {
                b = b.header(name, value);
            }
        }
        // RFC 3262 §5: an offer/answer done in a reliable 180 and its PRACK is not redone.
        if let Some(body) = body.as_ref().filter(|_| !call.answered_early()) {
            b = b.body("application/sdp", body.clone());
            call.trunk.media.local = Some(body.clone());
        }
        let ok = b.build();
        let trunk_tx = call.trunk.tx;
        let session_timer = call.session_timer;
        match Dialog::as_uas(&call.trunk.invite, &call.trunk.local_tag, call.trunk.source) {
            // Indexed since the 180 under the same key (`TrunkLeg::dialog_key`).
            Ok(d) => call.trunk.dialog = Some(d),
            Err(error) => {
                tracing::warn!(call = %record, %error, "trunk INVITE forms no dialog; BYE cannot reach it")
            }
        }
        let (target, seq) = (call.trunk.target, call.trunk.invite.cseq().map(|c| c.seq));
        let offered = call.late_offer;
        if let Err(error) = self
            .server
            .send_response(now.mono, trunk_tx, 200, ok.clone())
        {
            tracing::error!(%error, "the trunk's INVITE transaction refused the 2xx");
        }
        self.calls.by_invite.remove(&trunk_tx);
        let seq = seq.unwrap_or_default();
        self.resend_until_acked(
            now,
            (handle, Side::Caller),
            ok,
            target,
            (seq, true, offered),
        );
        if let Some(timer) = session_timer {
            self.start_session_timer(now, handle, timer);
        }
        // A callback's caller answered: the operator is on call already (`callback`).
        if self.callback_answered(handle) {
            return;
        }
        if let Some(caller) = self.calls.calls.get(&handle).and_then(|c| c.caller.clone()) {
            self.calls.acd.worklist.caller_reached(&caller);
        }
        if let Some(target) = overflow {
            return self.overflow_answered(now, handle, target);
        }
        self.calls.acd.answered(handle, &operator, now.mono);
        tracing::info!(call = %record, operator, "call answered");
        self.emit(record, now, CallEventKind::Answered { operator });
        // The ring-all losers freed above may take a waiting call now.
        self.dispatch(now);
    }

    /// Resends the ACK of the winning leg: its 2xx came again (§13.2.2.4).
    pub(crate) fn resend_ack(&mut self, handle: CallHandle, leg_no: u32) {
        let Some(leg) = self
            .calls
            .calls
            .get(&handle)
            .and_then(|c| c.legs.get(&leg_no))
        else {
            return;
        };
        if let Some(ack) = leg.ack.clone() {
            // The ACK goes where the first one went: through the leg's route set (§12.2.1.1).
            let destination = leg
                .dialog
                .as_ref()
                .map_or(leg.destination, |d| d.destination);
            self.transmit(destination, ack);
        }
    }

    /// The trunk ACKed siaga's 2xx with `answer` (empty: none): the winning leg's 2xx, if
    /// it carried the offer of a late-offer call without relay (`bridge`), is ACKed now
    /// with that answer (RFC 3264 §5).
    pub(crate) fn ack_operator(&mut self, handle: CallHandle, answer: &[u8]) {
        let waiting = |call: &Call| {
            call.answered_leg()
                .is_some_and(|l| l.ack.is_none() && l.dialog.is_some())
        };
        if !self.calls.calls.get(&handle).is_some_and(waiting) {
            return;
        }
        let (via, branch) = (self.config.via_host(), self.new_branch());
        let Some(leg) = self
            .calls
            .calls
            .get_mut(&handle)
            .and_then(Call::answered_leg_mut)
        else {
            return;
        };
        let Some(dialog) = &leg.dialog else {
            return;
        };
        let mut b = dialog.ack(1, &via, &branch);
        if !answer.is_empty() {
            b = b.body("application/sdp", Bytes::copy_from_slice(answer));
        }
        let (destination, ack) = (dialog.destination, b.build());
        leg.ack = Some(ack.clone());
        self.transmit(destination, ack);
    }

    /// A 2xx siaga does not want (a losing binding, a late answer): ACK it, then BYE it
    /// (RFC 3261 §15: the UAC must not leave a dialog it will not use).
    pub(super) fn ack_and_bye(&mut self, now: Now, tx: ClientTxId, response: &SipMessage) {
        let Some(out) = self.calls.invites.get(&tx) else {
            return;
        };
        let Ok(mut dialog) = Dialog::as_uac(&out.request, response, out.destination) else {
            return;
        };
        // That 2xx again (its ACK was lost): the same ACK again, and no second BYE.
        if let Some((_, ack)) = out.unwanted.iter().find(|(t, _)| *t == dialog.remote_tag) {
            return self.transmit(dialog.destination, ack.clone());
        }
        let via = self.config.via_host();
        let ack = dialog.ack(1, &via, &self.new_branch()).build();
        if let Some(out) = self.calls.invites.get_mut(&tx) {
            out.unwanted.push((dialog.remote_tag.clone(), ack.clone()));
        }
        self.transmit(dialog.destination, ack);
        self.send_bye(now, &mut dialog);
    }

    /// A 2xx for an INVITE whose transaction timed out (Timer B) within the last 64·T1:
    /// ACKed and ended with BYE like any answer siaga no longer wants (§13.2.2.4, §15).
    /// Returns whether it was one.
    pub(crate) fn late_2xx(&mut self, now: Now, key: &ClientKey, response: &SipMessage) -> bool {
        let Some(&tx) = self.calls.timed_out.get(key) else {
            return false;
        };
        self.ack_and_bye(now, tx, response);
        true
    }

    /// A final failure (300–699) on a leg, or its transaction's end without one.
    fn leg_failed(&mut self, now: Now, handle: CallHandle, leg_no: u32, status: u16) {
        // A callback's leg to the caller ends the callback (`callback`).
        if self.callback_leg_failed(now, handle, leg_no, status) {
            return;
        }
        // A transfer's leg to a field agency ends the transfer (`transfer`).
        if self.transfer_leg_failed(now, handle, leg_no, status) {
            return;
        }
        let Some(call) = self.calls.calls.get_mut(&handle) else {
            return;
        };
        let Some(leg) = call.legs.remove(&leg_no) else {
            return;
        };
        if call.state.overflow_target().is_some() {
            return self.overflow_leg_failed(now, handle, &leg, status);
        }
        let CallState::Offering { attempt, .. } = call.state else {
            return;
        };
        if leg.attempt != attempt
            || matches!(leg.state, LegState::Cancelled | LegState::CancelPending)
        {
            return;
        }
        // The operator's other phones may still answer.
        let still_ringing = call
            .legs
            .values()
            .any(|l| l.attempt == attempt && l.operator == leg.operator);
        if still_ringing {
            return;
        }
        let record = call.record;
        let operator = leg.operator;
        if is_reject(status) {
            tracing::info!(call = %record, operator, status, "operator rejected the call");
            self.emit(
                record,
                now,
                CallEventKind::Rejected {
                    operator: operator.clone(),
                    status,
                },
            );
            self.offer_failed(now, handle, &operator, OfferEnd::Rejected);
        } else {
            let reason = failure_reason(status);
            tracing::info!(call = %record, operator, reason, "operator leg failed");
            self.emit(
                record,
                now,
                CallEventKind::LegFailed {
                    operator: operator.clone(),
                    reason,
                },
            );
            // No response at all (Timer B) is an unanswered offer; a failure pauses the
            // operator.
            let end = if status == 0 {
                OfferEnd::NoAnswer
            } else {
                OfferEnd::Failed
            };
            self.offer_failed(now, handle, &operator, end);
        }
    }

    /// The offer of `handle` to `operator` ended unanswered (`end`): the ACD frees the
    /// operator (pausing them after a reject, not ready after too many no-answers); once
    /// no operator rings for the call any more, it goes back to its place in the queue.
    /// Then the ACD looks again.
    pub(crate) fn offer_failed(
        &mut self,
        now: Now,
        handle: CallHandle,
        operator: &str,
        end: OfferEnd,
    ) {
        // A callback is never requeued: it fails (`callback`).
        if self.callback_offer_failed(now, handle) {
            return;
        }
        self.calls.acd.offer_ended(handle, operator, end, now.mono);
        if let Some(call) = self.calls.calls.get_mut(&handle)
            && let CallState::Offering { operators, .. } = &mut call.state
        {
            operators.retain(|o| o != operator);
            if operators.is_empty() {
                call.state = CallState::Queued;
                self.calls.acd.requeue(handle, false, now.mono);
            }
        }
        self.dispatch(now);
    }

    /// A client transaction ended. An INVITE that timed out fails its leg (status 0: no
    /// response); one that could not be sent fails it as a 503.
    pub(crate) fn on_client_ended(&mut self, now: Now, tx: ClientTxId, why: Termination) {
        self.bye_ended(tx);
        let Some(out) = self.calls.invites.get(&tx) else {
            return;
        };
        let (handle, leg_no) = (out.call, out.leg);
        // Timed out (Timer B: every 1xx lost, or the phone answers only now): kept 64·T1
        // longer, so that a 2xx that still comes is ACKed and ended (`late_2xx`).
        match out
            .key()
            .filter(|_| why == Termination::TimedOut(TimerName::B))
        {
            Some(key) => {
                self.calls.timed_out.insert(key, tx);
                self.calls.schedule(
                    now.mono + self.config.timers.sixty_four_t1(),
                    CallTimer::ForgetInvite(tx),
                );
            }
            None => {
                self.calls.invites.remove(&tx);
            }
        }
        if why != Termination::Normal {
            let live = self
                .calls
                .calls
                .get(&handle)
                .and_then(|c| c.legs.get(&leg_no))
                .is_some_and(|l| l.tx == tx && l.state != LegState::Answered);
            if live {
                // RFC 3261 §8.1.3.1: a transport error counts as a 503.
                let status = match why {
                    Termination::TransportError => 503,
                    _ => 0,
                };
                self.leg_failed(now, handle, leg_no, status);
            }
        }
    }

    // ---- cancelling legs ----------------------------------------------------------------

    /// Stops every ringing leg of call `handle` that `which` picks (`cancel_leg`).
    pub(super) fn cancel_legs(
        &mut self,
        now: Now,
        handle: CallHandle,
        which: impl Fn(&OperatorLeg) -> bool,
    ) {
        let legs: Vec<u32> = self
            .calls
            .calls
            .get(&handle)
            .map(|c| {
                c.legs
                    .iter()
                    .filter(|(_, l)| which(l))
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        for leg in legs {
            self.cancel_leg(now, handle, leg);
        }
    }

    /// Stops a ringing leg: CANCEL now if a provisional response came, else as soon as
    /// one does (§9.1).
    pub(crate) fn cancel_leg(&mut self, now: Now, handle: CallHandle, leg_no: u32) {
        let state = self
            .calls
            .calls
            .get(&handle)
            .and_then(|c| c.legs.get(&leg_no))
            .map(|l| l.state);
        match state {
            Some(LegState::Early) => {
                if let Some(tx) = self.leg_tx(handle, leg_no) {
                    self.send_cancel(now, tx);
                }
            }
            Some(LegState::Calling) => {
                self.set_leg_state(handle, leg_no, LegState::CancelPending);
                // If no provisional response ever comes, Timer B ends the INVITE.
            }
            _ => {}
        }
    }

    /// Sends the CANCEL of the INVITE of client transaction `tx`, once (§9.1: same
    /// Request-URI, Call-ID, To, From, CSeq number and top Via branch as the INVITE).
    fn send_cancel(&mut self, now: Now, tx: ClientTxId) {
        let Some(out) = self.calls.invites.get_mut(&tx) else {
            return;
        };
        if std::mem::replace(&mut out.cancel_sent, true) {
            return;
        }
        if let Some(leg) = self
            .calls
            .calls
            .get_mut(&out.call)
            .and_then(|c| c.legs.get_mut(&out.leg))
        {
            leg.state = LegState::Cancelled;
        }
        let request = &out.request;
        let (Some(uri), Ok(via)) = (request.request_uri_raw(), request.top_via()) else {
            return;
        };
        let Some(branch) = via.branch().map(str::to_owned) else {
            return;
        };
        let seq = request.cseq().map(|c| c.seq).unwrap_or(1);
        let bytes = MessageBuilder::request(&Method::Cancel, uri)
            .copy_all(request, HeaderName::Via)
            .header("Max-Forwards", 70)
            .copy_all(request, HeaderName::From)
            .copy_all(request, HeaderName::To)
            .copy_all(request, HeaderName::CallId)
            .header("CSeq", format!("{seq} CANCEL"))
            .copy_all(request, HeaderName::Route)
            .build();
        let destination = out.destination;
        self.client.send(
            now.mono,
            ClientKey {
                branch,
                method: Method::Cancel,
            },
            bytes,
            destination,
            &self.config.timers,
        );
        self.calls.schedule(
            now.mono + self.config.timers.sixty_four_t1(),
            CallTimer::CancelGuard(tx),
        );
    }

    // ---- the trunk's CANCEL, ACK and BYE, and the operator's BYE --------------------------

    /// The trunk CANCELled INVITE transaction `tx` (its 200 is sent): 487 to the INVITE,
    /// CANCEL to the ringing operator, and the call is recorded as abandoned.
    pub(crate) fn on_trunk_cancel(&mut self, now: Now, tx: TxId) {
        let Some(handle) = self.calls.by_invite.get(&tx).copied() else {
            return;
        };
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let invite = call.trunk.invite.clone();
        let tag = call.trunk.local_tag.clone();
        let received = call.trunk.received_from;
        let disposition = match call.state {
            CallState::Queued => Disposition::AbandonedInQueue,
            _ => Disposition::AbandonedWhileRinging,
        };
        self.refuse_call(
            now,
            tx,
            &invite,
            (&tag, received),
            (487, "Request Terminated"),
            &[],
        );
        self.end_call(now, handle, Party::Caller, disposition);
    }

    /// An ACK with a To tag arrived that no transaction took: the ACK of siaga's 2xx to
    /// an INVITE or re-INVITE (§13.3.1.4: stop resending it), or a stray one (dropped,
    /// §17.2.3).
    pub(crate) fn on_dialog_ack(&mut self, key: &DialogKey, ack: &SipMessage) -> bool {
        let Some(&(handle, leg)) = self.calls.by_dialog.get(key) else {
            return false;
        };
        // §12.2.2: an ACK with another From tag is not in the dialog (dropped).
        if !self
            .calls
            .calls
            .get(&handle)
            .is_some_and(|c| c.is_remote_tag(leg, ack))
        {
            return true;
        }
        let side = if leg.is_none() {
            Side::Caller
        } else {
            Side::Operator
        };
        self.mid_call_ack(handle, side, ack);
        true
    }

    // ---- ending a call ------------------------------------------------------------------

    /// siaga stops: every live call ends, recorded as `interrupted`. An answered call gets
    /// BYE on both legs; a caller still waiting gets 503 (RFC 3261 §21.5.4: the telco can
    /// route the call to another centre), and ringing operators get CANCEL.
    pub(crate) fn interrupt_calls(&mut self, now: Now) {
        let handles: Vec<CallHandle> = self.calls.calls.keys().copied().collect();
        for handle in handles {
            let Some(call) = self.calls.calls.get(&handle) else {
                continue;
            };
            // A callback from the API rings the operator on a leg siaga placed: no
            // INVITE of theirs to answer (`end_call` CANCELs the leg).
            if call.trunk.dialog.is_none() && !call.inbound_placed() {
                let invite = call.trunk.invite.clone();
                let tag = call.trunk.local_tag.clone();
                let (tx, received) = (call.trunk.tx, call.trunk.received_from);
                self.refuse_call(
                    now,
                    tx,
                    &invite,
                    (&tag, received),
                    (503, "Service Unavailable"),
                    &[],
                );
            }
            self.end_call(now, handle, Party::Siaga, Disposition::Interrupted);
        }
    }

    /// Ends call `handle`: BYE to every answered leg but the one `by` hung up on, CANCEL
    /// to ringing legs, the relay closed, the operator freed, the record closed.
    pub(crate) fn end_call(
        &mut self,
        now: Now,
        handle: CallHandle,
        by: Party,
        disposition: Disposition,
    ) {
        self.finish_call(now, handle, by, disposition, None);
    }

    /// [`Self::end_call`], where `lost` says why siaga gave up the trunk's leg of an
    /// answered call (`dropped::caller_leg_lost`): a drop, like the caller's BYE.
    pub(super) fn finish_call(
        &mut self,
        now: Now,
        handle: CallHandle,
        by: Party,
        disposition: Disposition,
        lost: Option<&str>,
    ) {
        // A transfer still ringing fails with the call; its leg is CANCELled below.
        self.transfer_ends_with_call(now, handle, by);
        self.cancel_legs(now, handle, |l| {
            matches!(l.state, LegState::Calling | LegState::Early)
        });
        let Some(mut call) = self.calls.calls.remove(&handle) else {
            return;
        };
        // §15.1.2: a request still pending in a dialog that ends is answered 487.
        if let Some(exchange) = call.exchange.take() {
            self.refuse_exchange(now, &exchange, 487, "Request Terminated");
        }
        self.calls.by_invite.remove(&call.trunk.tx);
        self.calls.by_dialog.remove(&call.trunk.dialog_key());
        // Read before the trunk's dialog is taken for its BYE (`dropped`).
        let was_answered = call.was_answered();
        // The trunk side: BYE unless the caller hung up (a CANCELled INVITE has no dialog).
        if let Some(mut dialog) = call.trunk.dialog.take()
            && by != Party::Caller
        {
            self.send_bye(now, &mut dialog);
        }
        for leg in call.legs.values_mut() {
            self.release_answered_leg(now, leg, by != Party::Operator);
        }
        // Classified while live (`dropped`): the mark goes with the call.
        let classified = self.calls.classified.remove(&call.record);
        // A callback is the operator's own call, recorded on the abandoned call's record
        // and never put on the worklist (`callback`).
        if let Some(callback) = call.callback.take() {
            return self.callback_ended(now, handle, call, callback, by);
        }
        match &call.state {
            CallState::Offering { operators, .. } => {
                for operator in operators {
                    self.calls
                        .acd
                        .offer_ended(handle, operator, OfferEnd::Withdrawn, now.mono);
                }
            }
            CallState::Answered { operator, .. } => {
                self.calls.acd.call_ended(handle, operator, now.mono);
            }
            // No operator is involved (`overflow`): the ACD forgets the call below.
            // Nor after the operator left a transfer (`transfer`).
            CallState::Queued
            | CallState::Overflowing { .. }
            | CallState::Overflowed { .. }
            | CallState::Transferring { .. }
            | CallState::Transferred { .. } => {}
        }
        // A call the backup centre answered ends `overflowed`.
        let disposition = call.state.disposition(disposition);
        self.remember_for_callback(now, &call, disposition);
        // An answered call the caller's side ended: `dropped`, listed unless classified.
        let ended = (by, disposition, was_answered);
        self.note_drop(now, &call, ended, lost, classified);
        // The transitions name the call's record: out before the ACD forgets it.
        self.agent_events(now);
        self.calls.acd.forget(handle);
        // The ports go back to the pool when the relay reports it closed its sockets
        // (`Engine::handle_media_report`), so a new call can bind them at once.
        if let Some((relay, _, _)) = call.relay {
            self.media(MediaCommand::Close { relay });
        }
        let duration = now.mono.saturating_since(call.received_at);
        tracing::info!(
            call = %call.record,
            %by,
            %disposition,
            duration_ms = duration.as_millis() as u64,
            "call ended"
        );
        self.emit(call.record, now, CallEventKind::Ended { by, disposition });
        self.dispatch(now);
    }

    /// Sends a BYE in `dialog` (§15.1.1) on its own client transaction. The dialog lives
    /// on until the BYE is answered: a BYE the peer sent meanwhile draws 200 (RFC 5407
    /// §3.2.1, see [`CallTable::byes`](super::CallTable::byes)).
    pub(super) fn send_bye(&mut self, now: Now, dialog: &mut Dialog) {
        let branch = self.new_branch();
        let bytes = dialog
            .request(&Method::Bye, &self.config.via_host(), &branch)
            .header("User-Agent", SERVER)
            .build();
        let routed = self.route_request(now, bytes, dialog.destination);
        let key = ClientKey {
            branch,
            method: Method::Bye,
        };
        let tx = self.send_routed(now, key, routed);
        self.bye_sent(dialog.key(), tx);
    }

    // ---- timers -------------------------------------------------------------------------

    /// Fires the call model's timers due at or before `now`.
    pub(crate) fn handle_call_timers(&mut self, now: Now) {
        while let Some(timer) = self.calls.pop_due(now.mono) {
            match timer {
                CallTimer::RingTimeout(handle, attempt) => self.ring_timeout(now, handle, attempt),
                CallTimer::OverflowTimeout(handle, attempt) => {
                    self.overflow_timeout(now, handle, attempt)
                }
                CallTimer::TransferTimeout(handle, attempt) => {
                    self.transfer_timeout(now, handle, attempt)
                }
                CallTimer::RingingRefresh(handle) => {
                    // Not once the trunk has the 2xx, even re-queued (§13.3.1.1: a 1xx
                    // after the final response is no use).
                    let queued = self
                        .calls
                        .calls
                        .get(&handle)
                        .is_some_and(|c| c.state.bridged_leg().is_none() && !c.was_answered());
                    if queued {
                        self.send_provisional(now, handle, 180, "Ringing");
                        self.calls.schedule(
                            now.mono + self.config.calls.ringing_refresh,
                            CallTimer::RingingRefresh(handle),
                        );
                    }
                }
                CallTimer::OkRetransmit(handle, side) => self.resend_ok(now, handle, side),
                CallTimer::ReliableRetransmit(handle) => self.resend_reliable(now, handle),
                CallTimer::OkTimeout(handle, side) => {
                    let unacked = self
                        .calls
                        .calls
                        .get_mut(&handle)
                        .and_then(|c| c.take_unacked_ok(side, now.mono));
                    if unacked.is_some() && side == Side::Operator {
                        let reason = "no ACK for siaga's 2xx to the operator's re-INVITE";
                        self.operator_leg_lost(now, handle, reason, Hangup::Send);
                    } else if let Some(ok) = unacked {
                        tracing::warn!(
                            ?side,
                            "no ACK for siaga's 2xx within 64*T1: ending the call"
                        );
                        // The first 2xx never confirmed the call; a later one (a
                        // re-INVITE's) ends a call that was answered: the caller's
                        // side is lost (`dropped`).
                        if ok.first {
                            self.end_call(now, handle, Party::Siaga, Disposition::Failed);
                        } else {
                            self.caller_leg_lost(now, handle, "no ACK for siaga's 2xx");
                        }
                    }
                }
                CallTimer::Session(handle) => self.session_timer_fired(now, handle),
                CallTimer::CancelGuard(tx) => {
                    if self.calls.invites.contains_key(&tx) {
                        self.client.abandon(tx);
                    }
                }
                CallTimer::ForgetInvite(tx) => {
                    if let Some(key) = self.calls.invites.remove(&tx).and_then(|o| o.key()) {
                        self.calls.timed_out.remove(&key);
                    }
                }
            }
        }
    }

    /// The ring timeout of offer `attempt` passed: every operator still ringing for it
    /// gets a no-answer (CANCEL to their phones), and the call goes back to its place.
    fn ring_timeout(&mut self, now: Now, handle: CallHandle, attempt: u32) {
        // A callback's ring timeout (`acd.callback_ring_timeout_s`): no answer.
        if self.callback_ring_timeout(now, handle, attempt) {
            return;
        }
        let Some(call) = self.calls.calls.get(&handle) else {
            return;
        };
        let CallState::Offering {
            operators,
            attempt: current,
        } = &call.state
        else {
            return;
        };
        if *current != attempt {
            return;
        }
        let operators = operators.clone();
        let record = call.record;
        self.cancel_legs(now, handle, |l| l.attempt == attempt);
        for operator in operators {
            tracing::info!(call = %record, operator, "no answer within the ring timeout");
            self.emit(
                record,
                now,
                CallEventKind::NoAnswer {
                    operator: operator.clone(),
                },
            );
            self.offer_failed(now, handle, &operator, OfferEnd::NoAnswer);
        }
    }

    // ---- connections ----------------------------------------------------------------------

    /// TCP connection `connection` closed: requests in dialogs that used it go out on a
    /// new connection — to the trunk's Contact (or the address the INVITE came from), and
    /// to an operator's Contact (its closed connection's source port was ephemeral),
    /// RFC 3261 §18.1.1.
    pub(crate) fn calls_connection_closed(&mut self, connection: crate::engine::ConnectionId) {
        fn reroute(d: &mut Destination, connection: crate::engine::ConnectionId, target: &str) {
            if d.connection != Some(connection) {
                return;
            }
            d.connection = None;
            if let Some(address) = Uri::ip_literal_address(target) {
                d.address = address;
            }
        }
        for call in self.calls.calls.values_mut() {
            if call.trunk.source.connection == Some(connection) {
                call.trunk.source.connection = None;
            }
            // The 2xx resent until the ACK goes on a new connection (§18.2.2).
            let target = &mut call.trunk.target;
            if target.connection == Some(connection) {
                target.connection = None;
                target.destination = target.reconnect;
            }
            if let Some(d) = call.trunk.dialog.as_mut()
                && d.destination.connection == Some(connection)
            {
                d.destination.connection = None;
            }
            for leg in call.legs.values_mut() {
                let target = leg.dialog.as_ref().map(|d| d.remote_target.clone());
                if let Some(target) = &target {
                    reroute(&mut leg.destination, connection, target);
                    if let Some(d) = leg.dialog.as_mut() {
                        if d.route_set.is_empty() {
                            reroute(&mut d.destination, connection, target);
                        } else if d.destination.connection == Some(connection) {
                            // A record-routing proxy is the next hop (§12.2.1.1): a new
                            // connection to it, not to the phone's Contact.
                            d.destination.connection = None;
                        }
                    }
                } else if leg.destination.connection == Some(connection) {
                    leg.destination.connection = None;
                }
            }
        }
        for out in self.calls.invites.values_mut() {
            let target = out.request.request_uri_raw().unwrap_or_default().to_owned();
            reroute(&mut out.destination, connection, &target);
        }
    }

    /// RFC 5626 §4.5, §5.3: operator legs placed on an outbound flow that the phone has
    /// registered again on a new connection send their in-dialog requests over it. With
    /// `closed`, only legs on that (just closed) connection move; without, every leg on a
    /// flow follows the flow's current connection. A flow not registered again leaves
    /// its legs to [`Engine::calls_connection_closed`].
    pub(crate) fn calls_follow_flows(&mut self, closed: Option<crate::engine::ConnectionId>) {
        let flows: Vec<_> = self
            .registrar
            .all_bindings()
            .filter(|b| b.is_reachable())
            .filter_map(|b| Some((b.user.clone(), b.outbound.clone()?, binding_destination(b))))
            .collect();
        if flows.is_empty() {
            return;
        }
        for leg in self
            .calls
            .calls
            .values_mut()
            .flat_map(|c| c.legs.values_mut())
        {
            let Some((_, _, to)) = flows
                .iter()
                .find(|(user, flow, _)| *user == leg.operator && leg.flow.as_ref() == Some(flow))
            else {
                continue;
            };
            let on_closed = |d: &Destination| closed.is_none_or(|c| d.connection == Some(c));
            if on_closed(&leg.destination) {
                leg.destination = *to;
            }
            // A record-routing proxy in between is the next hop, not the flow.
            if let Some(d) = leg.dialog.as_mut().filter(|d| d.route_set.is_empty())
                && on_closed(&d.destination)
            {
                d.destination = *to;
            }
        }
    }

    // ---- small helpers ------------------------------------------------------------------

    /// Sends `bytes` outside any transaction (an ACK of a 2xx, §17.1.1.3 note).
    pub(crate) fn transmit(&mut self, destination: Destination, bytes: Bytes) {
        self.outputs.push_back(Output::Transmit(Transmit {
            transport: destination.transport,
            destination: destination.address,
            connection: destination.connection,
            bytes,
        }));
    }
}
