//! The B2BUA call model: an emergency call is one inbound leg from the trunk (siaga is
//! its UAS) and the outbound legs siaga places to operators (siaga is their UAC, a new
//! dialog each, RFC 3261 §12): all bindings of the operator being offered the call ring in
//! parallel, the first 2xx wins, the others are CANCELled (§9.1). CANCEL and BYE propagate
//! across. This module owns the calls' state and indexes; `flow` holds the steps.
//!
//! Every step emits [`CallEvent`]s (the call record) and [`MediaCommand`]s (the relay).

mod agents;
mod callback;
mod callback_ring;
mod dropped;
mod ending;
mod feature;
mod flow;
mod gateway;
mod ident;
mod leg_loss;
mod midcall;
mod overflow;
mod prack;
mod priority;
mod privacy;
mod session_timer;
mod transfer;

pub use callback::Callback;
pub use callback_ring::{CallbackTakeError, OperatorRing};
pub use feature::{FeatureCalls, FeatureCode};
pub(crate) use feature::{FeatureVerdict, InboundFeatureCall};
pub(crate) use flow::NewCall;
pub use ident::{Pii, called_number, caller_number, original_called, set_show_personal_data};
pub(crate) use midcall::DialogReply;
pub use midcall::{Exchange, InDialogRequest, Purpose};
pub use overflow::{IpUriError, ip_sip_destination};
pub use prack::{EarlyOffer, Reliable};
pub use privacy::{CallerIdentity, Trust};
pub use session_timer::{Refresher, SessionTimer};
pub use transfer::{GatewayRoute, Transfer, TransferAgency, TransferError};

use super::acd::{Acd, AcdSettings, CallHandle};
use super::dialog::{Dialog, DialogKey};
use super::media::{RelayId, Side};
use super::sdp::{MediaOffer, SdpSession};
use super::sip::SipMessage;
use super::time::MonoTime;
use super::transaction::{ClientKey, ClientTxId, Destination, ResponseTarget, TxId};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;
use uuid::Uuid;

/// Where a call stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Waiting in the queue for an operator.
    Queued,
    /// Ringing the bindings of `operators` (one, or several for ring-all; offer number
    /// `attempt` of this call).
    Offering {
        /// The operators offered the call, in id order.
        operators: Vec<String>,
        /// Counts the offers of this call; a ring timeout names the offer it belongs to.
        attempt: u32,
    },
    /// `operator` answered on leg `leg`; the trunk has the 2xx. A call whose operator leg
    /// failed goes back to [`CallState::Queued`] with its trunk dialog kept (see
    /// `leg_loss`): it is offered again, and its trunk gets no second 2xx.
    Answered {
        /// Who answered.
        operator: String,
        /// The winning leg.
        leg: u32,
    },
    /// Ringing the backup centre (`queues[].overflow_uri`) on one leg, attempt `attempt` of
    /// the call (`overflow`): out of the waiting order, no operator is offered the call.
    Overflowing {
        /// The backup destination's SIP URI.
        target: String,
        /// The call's attempt this leg belongs to; its ring timeout names it.
        attempt: u32,
    },
    /// The backup centre answered on leg `leg`; the trunk has the 2xx and the call ends as
    /// `overflowed`.
    Overflowed {
        /// The backup destination's SIP URI.
        target: String,
        /// The backup centre's leg.
        leg: u32,
    },
    /// The operator left while the call's transfer to a field agency rings
    /// ([`Call::transfer`], `transfer`): nobody is with the caller until the agency
    /// answers; a failed transfer puts the call back in the queue.
    Transferring {
        /// `agencies[].id`.
        agency: String,
        /// The agency's SIP URI.
        target: String,
    },
    /// The field agency answered the transfer on leg `leg`: the caller talks to it, no
    /// operator is on the call, and it ends `answered`.
    Transferred {
        /// `agencies[].id`.
        agency: String,
        /// The agency's SIP URI.
        target: String,
        /// The agency's leg.
        leg: u32,
    },
}

/// One emergency call.
#[derive(Debug)]
pub struct Call {
    /// The record id (`calls.id`).
    pub record: Uuid,
    /// Queue position: FIFO order of arrival, kept when an offer fails.
    pub position: u64,
    /// Where the call stands.
    pub state: CallState,
    /// Offers and overflow attempts made so far (each numbers its legs).
    pub attempts: u32,
    /// The trunk leg.
    pub trunk: TrunkLeg,
    /// Outbound legs still alive, by leg number (ordered: CANCELs and BYEs go out in leg
    /// order, so a seeded engine sends the same bytes in the same order every run).
    pub legs: BTreeMap<u32, OperatorLeg>,
    /// The caller's number (ANI), for the repeat-caller memory and the callback worklist.
    pub caller: Option<String>,
    /// The relay of this call and its ports (caller side, operator side); `None` when the
    /// port range was exhausted (the call still goes on, without audio relay).
    pub relay: Option<(RelayId, u16, u16)>,
    /// The trunk's SDP offer; for an INVITE without one (late offer, RFC 3261 §13.2.1),
    /// siaga's own capabilities, offered to the trunk in the 2xx.
    pub trunk_offer: Option<MediaOffer>,
    /// The INVITE had no offer: the 2xx carries siaga's and the trunk's ACK the answer.
    pub late_offer: bool,
    /// When the INVITE arrived.
    pub received_at: MonoTime,
    /// A re-INVITE or UPDATE crossing the call, answered once the other side answers.
    pub exchange: Option<Exchange>,
    /// The trunk leg's session timer (RFC 4028): negotiated on the INVITE, running from
    /// the 2xx.
    pub session_timer: Option<SessionTimer>,
    /// siaga's session refresh to the trunk, while unanswered.
    pub pending_refresh: Option<ClientTxId>,
    /// The caller's previous call was abandoned or dropped within `acd.repeat_window_s`:
    /// the operator's phone shows `REPEAT` before the number.
    pub repeat: bool,
    /// Set when the call is a PSAP callback (RFC 7090, `callback`): the inbound leg is the
    /// operator's INVITE, the outbound leg goes to the caller through a trunk gateway, and
    /// its events go on the abandoned call's record ([`Call::record`]).
    pub callback: Option<Callback>,
    /// The transfer to a field agency ringing for this call (`transfer`), if any.
    pub transfer: Option<Transfer>,
}

/// The offer/answer state of one leg's session (RFC 3264 §8) and siaga's 2xx resent on it.
#[derive(Debug)]
pub struct LegMedia {
    /// The SDP origin of siaga's descriptions on this leg.
    pub sdp: SdpSession,
    /// The SDP siaga last sent on this leg: its answer, or its offer.
    pub local: Option<Bytes>,
    /// The `o=` sess-id and sess-version of the peer's last SDP; an offer with the same
    /// pair changes nothing (RFC 3264 §8), one with another sess-id is another
    /// description whatever its version (RFC 4566 §5.2: the origin names the session).
    pub remote_origin: Option<(u64, u64)>,
    /// Whether the peer lists UPDATE in its Allow (RFC 3311 §5.1).
    pub allows_update: bool,
    /// siaga's 2xx to the peer's INVITE or re-INVITE, resent until the ACK (§13.3.1.4).
    pub ok: Option<PendingOk>,
    /// Whether the session is on hold: the last change that crossed the call offered or
    /// answered another direction than `sendrecv` (RFC 3264 §8.4). Set on the operator
    /// leg; no RTP from a held operator is no failure.
    pub held: bool,
}

impl LegMedia {
    /// A leg whose descriptions carry origin `sdp` and nothing exchanged yet.
    pub fn new(sdp: SdpSession) -> LegMedia {
        LegMedia {
            sdp,
            local: None,
            remote_origin: None,
            allows_update: false,
            ok: None,
            held: false,
        }
    }
}

/// A 2xx to an INVITE, resent until its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
pub struct PendingOk {
    /// The response.
    pub bytes: Bytes,
    /// The next retransmission interval: T1, doubled up to T2.
    pub interval: Duration,
    /// Where it goes.
    pub target: ResponseTarget,
    /// Whether it is the 2xx to the call's first INVITE (no ACK ever confirmed the call).
    pub first: bool,
    /// Whether it carries siaga's offer (late offer, offer-less re-INVITE): its answer
    /// comes in the ACK, and no other offer is taken meanwhile (RFC 3311 §5.2).
    pub offered: bool,
    /// The CSeq number of the INVITE it answers: only an ACK with this number stops it
    /// (§13.2.2.4: the ACK of a 2xx carries its INVITE's CSeq number).
    pub seq: u32,
    /// When it is due again; an [`CallTimer::OkRetransmit`] armed for an earlier 2xx on
    /// the same side fires before this and does nothing.
    pub next: MonoTime,
    /// 64·T1 after it was first sent: without its ACK by then the call ends. An
    /// [`CallTimer::OkTimeout`] armed for an earlier 2xx fires before this and does
    /// nothing.
    pub give_up: MonoTime,
}

/// siaga's UAS side toward the trunk.
#[derive(Debug)]
pub struct TrunkLeg {
    /// The INVITE as received.
    pub invite: SipMessage,
    /// Its server transaction.
    pub tx: TxId,
    /// Where responses go (§18.2.2).
    pub target: ResponseTarget,
    /// The INVITE's source address, stamped in the top Via of every response as
    /// `received`/`rport` (§18.2.1, RFC 3581).
    pub received_from: SocketAddr,
    /// Where the INVITE came from, for requests in the dialog (see [`Dialog::as_uas`]).
    pub source: Destination,
    /// siaga's To tag.
    pub local_tag: String,
    /// The session on this leg (siaga's SDP origin, the last descriptions, the 2xx
    /// resent until the ACK).
    pub media: LegMedia,
    /// Max-Forwards of the INVITE (70 when absent).
    pub max_forwards: u8,
    /// The dialog, once the 2xx is sent.
    pub dialog: Option<Dialog>,
    /// Reliable provisional responses (RFC 3262), when the INVITE asked for them.
    pub reliable: Option<Reliable>,
}

impl TrunkLeg {
    /// The Max-Forwards of the legs siaga places for this call: the INVITE's minus one
    /// (RFC 7332 §3: a B2BUA decrements it like a proxy, so loops through B2BUAs end).
    /// `None` when the INVITE arrived with 0: no leg may be placed for the call, which is
    /// still taken and stays queued (README, known limits).
    pub fn outbound_max_forwards(&self) -> Option<u8> {
        self.max_forwards.checked_sub(1)
    }

    /// The key of siaga's dialog with the trunk: early from the 180 on (§12.1.1), the
    /// same once confirmed by the 2xx.
    pub fn dialog_key(&self) -> DialogKey {
        DialogKey {
            call_id: self.invite.call_id().unwrap_or_default().to_owned(),
            local_tag: self.local_tag.clone(),
        }
    }
}

/// An outbound leg: one INVITE to one binding of an operator, or to the backup centre.
#[derive(Debug)]
pub struct OperatorLeg {
    /// The operator; on a leg to the backup centre, its URI (`CallState::Overflowing`).
    pub operator: String,
    /// The offer (attempt) this leg belongs to.
    pub attempt: u32,
    /// The INVITE's client transaction.
    pub tx: ClientTxId,
    /// Where it was sent.
    pub destination: Destination,
    /// What happened to it so far.
    pub state: LegState,
    /// The dialog: early after a provisional response with a To tag, confirmed by the
    /// 2xx (§12.1.2).
    pub dialog: Option<Dialog>,
    /// The ACK of the winning 2xx, resent when the 2xx is (§13.2.2.4).
    pub ack: Option<Bytes>,
    /// The session on this leg once answered.
    pub media: LegMedia,
    /// The RFC 5626 flow of the binding the leg was placed on: its in-dialog requests
    /// follow that flow when the phone registers it again on a new connection (§4.5, §5.3).
    pub flow: Option<crate::engine::registrar::OutboundFlow>,
}

/// The progress of an outbound leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegState {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response arrived: a CANCEL may be sent (§9.1).
    Early,
    /// siaga wants it cancelled, but no provisional response came yet: the CANCEL goes out
    /// when one does (§9.1).
    CancelPending,
    /// CANCEL sent; a 487 (or a late 2xx) will end it.
    Cancelled,
    /// The 2xx arrived and won the call.
    Answered,
}

/// An outbound INVITE siaga sent, kept while its client transaction lives (and 64·T1
/// after it timed out), so that a late 2xx can be ACKed and ended with BYE even after the
/// call moved on.
#[derive(Debug)]
pub struct OutboundInvite {
    /// The call and leg it belongs to.
    pub call: CallHandle,
    /// The leg number.
    pub leg: u32,
    /// The INVITE as sent (for the ACK of a failure, §17.1.1.3, and dialogs).
    pub request: SipMessage,
    /// Where it was sent.
    pub destination: Destination,
    /// Whether its CANCEL was sent.
    pub cancel_sent: bool,
    /// Dialogs its 2xx responses created that siaga did not want (a late answer, a losing
    /// binding) or ended with its call, and ACKed: the To tag and the ACK, resent alone
    /// when that 2xx comes again (§13.2.2.4) — the BYE is not repeated.
    pub unwanted: Vec<(String, Bytes)>,
}

impl OutboundInvite {
    /// The key of its client transaction (the INVITE's branch).
    pub fn key(&self) -> Option<ClientKey> {
        let branch = self.request.top_via().ok()?.branch()?.to_owned();
        Some(ClientKey {
            branch,
            method: super::sip::Method::Invite,
        })
    }
}

/// A call model timer. Each is checked against the call's state when it fires, so one
/// that became moot (the call moved on) does nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallTimer {
    /// The ring timeout of offer `attempt` of a call (`queue.ring_timeout_s`).
    RingTimeout(CallHandle, u32),
    /// Repeat the 180 to a waiting caller (RFC 3261 §13.3.1.1; `queue.ringing_refresh_s`).
    RingingRefresh(CallHandle),
    /// Resend siaga's 2xx to an INVITE or re-INVITE on a side: no ACK yet (§13.3.1.4).
    OkRetransmit(CallHandle, Side),
    /// 64·T1 after that 2xx without an ACK: end the call with BYE (§13.3.1.4).
    OkTimeout(CallHandle, Side),
    /// Resend the reliable 180 to the trunk: no PRACK yet (RFC 3262 §3).
    ReliableRetransmit(CallHandle),
    /// The trunk leg's session timer: refresh, or end the expired session (RFC 4028 §10).
    Session(CallHandle),
    /// 64·T1 after a CANCEL: consider the INVITE cancelled (§9.1).
    CancelGuard(ClientTxId),
    /// 64·T1 after an INVITE timed out: a 2xx for it is no longer expected; forget it.
    ForgetInvite(ClientTxId),
    /// The ring timeout of overflow attempt `attempt` of a call
    /// (`queues[].overflow_ring_timeout_s`).
    OverflowTimeout(CallHandle, u32),
    /// The ring timeout of transfer attempt `attempt` of a call
    /// (`acd.transfer_ring_timeout_s`).
    TransferTimeout(CallHandle, u32),
}

/// Every call and the indexes that route messages to it.
#[derive(Debug, Default)]
pub struct CallTable {
    /// Live calls (ordered, so shutdown ends them in arrival order on every run).
    pub calls: BTreeMap<CallHandle, Call>,
    /// Trunk INVITE server transaction → call.
    pub by_invite: HashMap<TxId, CallHandle>,
    /// Dialogs siaga holds (trunk side: its To tag; operator side: its From tag) → the
    /// call and the leg (`None` for the trunk leg).
    pub by_dialog: HashMap<DialogKey, (CallHandle, Option<u32>)>,
    /// Outbound INVITEs by client transaction.
    pub invites: HashMap<ClientTxId, OutboundInvite>,
    /// Outbound INVITEs whose transaction timed out (Timer B), by their key: kept in
    /// `invites` for 64·T1 more, for a late 2xx (`Engine::late_2xx`).
    pub timed_out: HashMap<ClientKey, ClientTxId>,
    /// re-INVITEs and UPDATEs siaga sent in its dialogs, by client transaction.
    pub in_dialog: HashMap<ClientTxId, InDialogRequest>,
    /// siaga's BYEs under way → the dialog each ends (see `ending`): a BYE that crosses
    /// one draws 200.
    pub byes: HashMap<ClientTxId, DialogKey>,
    /// Relays whose report has not come back yet → the call record.
    pub relays: HashMap<RelayId, Uuid>,
    /// Timers, earliest first.
    pub timers: BTreeSet<(MonoTime, CallTimer)>,
    /// Agents and the queue.
    pub acd: Acd,
    next_call: u64,
    next_leg: u32,
    next_relay: u64,
    /// Relays of callbacks (`callback`) whose report has not come back: their caller side
    /// faces the operator, so their counters are turned back when recorded.
    pub callback_relays: std::collections::HashSet<RelayId>,
    /// Operators' feature-code calls (`feature`).
    pub(crate) features: FeatureCalls,
    /// Records of live calls classified or linked to an incident (`dropped`): their drop
    /// lists nothing. An entry leaves with its call (`end_call`).
    pub(crate) classified: BTreeSet<Uuid>,
}

impl CallTable {
    /// A table for these operators, with the ACD configured by `acd`.
    pub fn new<'a>(acd: &AcdSettings, operators: impl IntoIterator<Item = &'a str>) -> Self {
        CallTable {
            acd: Acd::new(acd, operators),
            ..CallTable::default()
        }
    }

    /// Number of live calls.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The earliest timer.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Arms `timer` at `at`.
    pub fn schedule(&mut self, at: MonoTime, timer: CallTimer) {
        self.timers.insert((at, timer));
    }

    /// The next timer due at or before `now`, removed.
    pub fn pop_due(&mut self, now: MonoTime) -> Option<CallTimer> {
        let first = self.timers.first()?;
        if first.0 > now {
            return None;
        }
        self.timers.pop_first().map(|(_, t)| t)
    }

    fn new_call_handle(&mut self) -> CallHandle {
        self.next_call += 1;
        CallHandle(self.next_call)
    }

    fn new_leg(&mut self) -> u32 {
        self.next_leg = self.next_leg.wrapping_add(1);
        self.next_leg
    }

    fn new_relay(&mut self) -> RelayId {
        self.next_relay += 1;
        RelayId(self.next_relay)
    }
}

#[cfg(test)]
mod tests;
