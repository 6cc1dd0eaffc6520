//! Call events: what the B2BUA call model reports about each 112 call, for the call
//! record store (`crate::store`). Sans-IO data only: the engine emits [`CallEvent`]s, the
//! shell hands them to the store's writer, which appends them to the `call_events` log and
//! keeps the `calls` summary row in step.
//!
//! Ids are UUID version 4 built from the engine's own RNG ([`CallEvent::new`],
//! [`random_uuid`]), so several nodes can write one database without coordination
//! (DESIGN.md, "Scale"). Times are [`UtcTime`]: milliseconds since the Unix epoch, UTC.
//!
//! Every type here is serde-serializable (the names as stored: `snake_case` variants) so
//! the store's journal can keep events on disk while the database is unavailable.
//!
//! No RFC governs the record itself; the disposition words follow NENA/EENA usage
//! (DESIGN.md, "Words").

use super::acd::AgentState;
use super::time::UtcTime;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A fresh random (version 4) UUID drawn from `rng`: a call's id, or an event's.
pub fn random_uuid(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// One thing that happened to one call.
///
/// Events of a call are emitted in the order they happened; [`CallEventKind::Ended`] is the
/// last one of the signalling, though [`CallEventKind::MediaRelayed`] may follow it (the
/// relay reports its counters when it closes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// This event's id (UUID v4): the store ignores an event whose id it already holds, so
    /// replaying events is safe.
    pub id: Uuid,
    /// The call's id (UUID v4), chosen when the trunk's INVITE was received.
    pub call: Uuid,
    /// When it happened (ms since the Unix epoch, UTC).
    pub at: UtcTime,
    /// What happened.
    pub kind: CallEventKind,
}

impl CallEvent {
    /// An event of `call` at `at`, with a fresh id drawn from `rng`.
    pub fn new(rng: &mut impl Rng, call: Uuid, at: UtcTime, kind: CallEventKind) -> Self {
        CallEvent {
            id: random_uuid(rng),
            call,
            at,
            kind,
        }
    }
}

/// What happened to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallEventKind {
    /// The trunk's INVITE arrived: the call exists from here on. Always a call's first
    /// event.
    Received {
        /// The trunk leg's SIP Call-ID (RFC 3261 §8.1.1.4).
        trunk_call_id: String,
        /// The caller's number (ANI) from P-Asserted-Identity or From, `None` when withheld
        /// or absent. Personal data: log it only through `Pii`.
        caller: Option<String>,
        /// The number or URN dialled (the Request-URI's user part, e.g. `112`, or
        /// `urn:service:sos`).
        called: String,
        /// The number first dialled when the call arrived retargeted or diverted
        /// (History-Info, RFC 7044; Diversion, RFC 5806), `None` when it carried neither.
        original_called: Option<String>,
        /// Which trunk delivered it (its configured name).
        trunk: String,
    },
    /// The call entered the ACD queue `queue` with `priority` (higher is served first;
    /// 0 is the default, see `acd::Priority`), needing `skills` until it widens.
    Queued {
        /// The queue's configured name (`queues[].name`).
        queue: String,
        /// Its priority in the queue (0–255, higher first).
        priority: u8,
        /// Whether the caller's previous call was abandoned or dropped within
        /// `acd.repeat_window_s`: raised, and shown to the operator as a repeat call.
        repeat: bool,
        /// The skills an operator needs for it (from the routing rule), until it widens.
        skills: Vec<String>,
    },
    /// The call waited `queues[].widen_after_s` without an operator with its skills: any
    /// operator of its queue may take it now (it keeps its place).
    Widened,
    /// The operator's leg failed after the call was answered (a 408 or 5xx to a mid-call
    /// request, a BYE from a proxy with a failure Reason, RTP silence past
    /// `media.silence_timeout_s`): the caller went back to the head of the queue.
    Requeued {
        /// The operator whose leg failed.
        operator: String,
        /// Why, in a few words.
        reason: String,
    },
    /// The call was diverted to the backup centre: an INVITE to `target` was sent
    /// (`queues[].overflow_uri`).
    OverflowOffered {
        /// The backup destination's SIP URI.
        target: String,
    },
    /// The backup centre did not take the call (a failure, no answer within
    /// `queues[].overflow_ring_timeout_s`): it returned to the queue with its place kept.
    OverflowFailed {
        /// The backup destination's SIP URI.
        target: String,
        /// Why, in a few words.
        reason: String,
    },
    /// The backup centre answered: the caller is bridged to it.
    OverflowAnswered {
        /// The backup destination's SIP URI.
        target: String,
    },
    /// `operator` handed the answered call to field agency `agency` by transferring it
    /// (`engine::call::transfer`): an INVITE went to `target` (`agencies[].transfer_uri`);
    /// the operator stays with the caller while it rings.
    TransferOffered {
        /// The operator who asked for the transfer.
        operator: String,
        /// `agencies[].id`.
        agency: String,
        /// The agency's SIP URI.
        target: String,
    },
    /// The agency answered: the caller talks to it, the operator's leg ended (the
    /// handoff's outcome: transferred).
    TransferAnswered {
        /// `agencies[].id`.
        agency: String,
        /// The agency's SIP URI.
        target: String,
    },
    /// The transfer did not happen (a final failure such as `486 response`, `no response`,
    /// no answer within `acd.transfer_ring_timeout_s`, the caller hung up): the operator
    /// stays with the caller, if still there.
    TransferFailed {
        /// `agencies[].id`.
        agency: String,
        /// The agency's SIP URI.
        target: String,
        /// Why, in a few words.
        reason: String,
    },
    /// An operator took this (abandoned) call's callback (RFC 7090): an INVITE with
    /// `Priority: psap-callback` went to the caller's number through a trunk gateway.
    CallbackStarted {
        /// The operator placing the callback.
        operator: String,
    },
    /// The callback of this call ended with `outcome`; `answered` closes the worklist item.
    CallbackEnded {
        /// The operator who placed it.
        operator: String,
        /// How it went.
        outcome: CallbackOutcome,
    },
    /// The media relay's packet counters for this call's callback, reported when the
    /// callback's relay closed (after its `callback_ended`). Kept apart from
    /// [`Self::MediaRelayed`] so that the abandoned call's own counters in its summary stay
    /// those of the call itself.
    CallbackMedia {
        /// RTP packets relayed from the called-back caller to the operator.
        caller_to_operator: u64,
        /// RTP packets relayed from the operator to the called-back caller.
        operator_to_caller: u64,
    },
    /// An operator's phone was rung (INVITE sent to a registered contact).
    Offered {
        /// The operator (agent) id.
        operator: String,
    },
    /// The operator did not answer within the ring timeout; the leg was CANCELled.
    NoAnswer {
        /// The operator (agent) id.
        operator: String,
    },
    /// The operator's phone declined the call with a final response (486, 480, 603 …).
    Rejected {
        /// The operator (agent) id.
        operator: String,
        /// The SIP status code of the final response (RFC 3261 §21).
        status: u16,
    },
    /// The operator leg failed for another reason: no common codec, 408 timeout,
    /// transport error …
    LegFailed {
        /// The operator (agent) id.
        operator: String,
        /// Why, in a few words (for the supervisor's timeline).
        reason: String,
    },
    /// The operator answered (200 OK to the operator leg's INVITE) and the call was bridged.
    Answered {
        /// The operator (agent) id.
        operator: String,
    },
    /// The session was changed mid-call by a re-INVITE or UPDATE that crossed the call
    /// (hold, resume, another codec: RFC 3261 §14, RFC 3264 §8).
    Renegotiated {
        /// Who made the offer.
        by: Party,
        /// The direction the offer asked for (`sendrecv`, `sendonly`, `recvonly`,
        /// `inactive`, RFC 3264 §8.4): `sendonly` or `inactive` is a hold.
        direction: String,
    },
    /// The trunk did not refresh the session in time (RFC 4028 §10): siaga ends the call.
    SessionExpired,
    /// The call was open when siaga's process died (a crash, `kill -9`, a power cut):
    /// recorded by the next process of the same node at start, just before the
    /// [`Self::Ended`] with [`Disposition::Interrupted`] that closes the call. Never emitted
    /// by the engine.
    Interrupted {
        /// What the log last said of the call: `received`, `in_queue`, `ringing`,
        /// `on_call`, `overflow_ringing`, `overflowed`, `callback`, `transferring`,
        /// `transferred` (see `store::last_state`).
        last_state: String,
        /// The operator it was ringing or talking to, if any.
        operator: Option<String>,
    },
    /// The answered call dropped: the caller's side ended it (the caller's BYE, or the
    /// trunk's leg lost: no response or 408/481 to a request in its dialog, the session
    /// timer expired, no ACK for a later 2xx), while an operator had it or it waited
    /// re-queued, never by the operator, a transfer or shutdown (`engine::call::dropped`).
    /// Just before its [`Self::Ended`]; recorded whether or not the call was classified
    /// (an unclassified one goes on the callback worklist, `Store::callback_worklist`).
    Dropped {
        /// Why, in a few words (`the caller hung up`, `session expired` …).
        reason: String,
    },
    /// The call ended: the last signalling event of a call.
    Ended {
        /// Who ended it.
        by: Party,
        /// Its outcome.
        disposition: Disposition,
    },
    /// The media relay's packet counters for the call. May come after [`Self::Ended`].
    MediaRelayed {
        /// RTP packets relayed from the caller (trunk) to the operator.
        caller_to_operator: u64,
        /// RTP packets relayed from the operator to the caller (trunk).
        operator_to_caller: u64,
    },
}

impl CallEventKind {
    /// The kind's name as stored in `call_events.kind`: `received`, `queued`, `offered`,
    /// `no_answer`, `rejected`, `leg_failed`, `answered`, `renegotiated`,
    /// `session_expired`, `interrupted`, `widened`, `requeued`, `overflow_offered`, `overflow_failed`,
    /// `overflow_answered`, `callback_started`, `callback_ended`, `callback_media`, `dropped`,
    /// `ended`, `media`.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            CallEventKind::Received { .. } => "received",
            CallEventKind::Queued { .. } => "queued",
            CallEventKind::Widened => "widened",
            CallEventKind::Requeued { .. } => "requeued",
            CallEventKind::OverflowOffered { .. } => "overflow_offered",
            CallEventKind::OverflowFailed { .. } => "overflow_failed",
            CallEventKind::OverflowAnswered { .. } => "overflow_answered",
            CallEventKind::TransferOffered { .. } => "transfer_offered",
            CallEventKind::TransferAnswered { .. } => "transfer_answered",
            CallEventKind::TransferFailed { .. } => "transfer_failed",
            CallEventKind::CallbackStarted { .. } => "callback_started",
            CallEventKind::CallbackEnded { .. } => "callback_ended",
            CallEventKind::CallbackMedia { .. } => "callback_media",
            CallEventKind::Offered { .. } => "offered",
            CallEventKind::NoAnswer { .. } => "no_answer",
            CallEventKind::Rejected { .. } => "rejected",
            CallEventKind::LegFailed { .. } => "leg_failed",
            CallEventKind::Answered { .. } => "answered",
            CallEventKind::Renegotiated { .. } => "renegotiated",
            CallEventKind::SessionExpired => "session_expired",
            CallEventKind::Interrupted { .. } => "interrupted",
            CallEventKind::Dropped { .. } => "dropped",
            CallEventKind::Ended { .. } => "ended",
            CallEventKind::MediaRelayed { .. } => "media",
        }
    }

    /// The operator the event is about, for the kinds about one operator leg.
    pub fn operator(&self) -> Option<&str> {
        match self {
            CallEventKind::Offered { operator }
            | CallEventKind::NoAnswer { operator }
            | CallEventKind::Rejected { operator, .. }
            | CallEventKind::LegFailed { operator, .. }
            | CallEventKind::Answered { operator }
            | CallEventKind::Requeued { operator, .. }
            | CallEventKind::TransferOffered { operator, .. }
            | CallEventKind::CallbackStarted { operator }
            | CallEventKind::CallbackEnded { operator, .. }
            | CallEventKind::Interrupted {
                operator: Some(operator),
                ..
            } => Some(operator),
            _ => None,
        }
    }
}

/// How a callback (RFC 7090) went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// The caller answered and was bridged to the operator: the worklist item is closed.
    Answered,
    /// Busy (486, 600): the item stays on the worklist.
    Busy,
    /// Not answered in time (408, 480, 487, the ring timeout): the item stays.
    NoAnswer,
    /// Any other failure (no gateway up, 5xx, the operator hung up first): the item stays.
    Failed,
}

impl CallbackOutcome {
    /// As stored in `call_events.detail`: `answered`, `busy`, `no_answer`, `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Answered => "answered",
            CallbackOutcome::Busy => "busy",
            CallbackOutcome::NoAnswer => "no_answer",
            CallbackOutcome::Failed => "failed",
        }
    }

    /// The outcome named by `as_str`'s text.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Answered, Self::Busy, Self::NoAnswer, Self::Failed]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// One agent state transition of one operator, for the durable log (`agent_events`),
/// emitted by the ACD (`acd::Acd::poll_transition`) for every change of state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentEvent {
    /// This event's id (UUID v4): written twice, stored once.
    pub id: Uuid,
    /// The operator (`operators[].id`).
    pub operator: String,
    /// When it happened (ms since the Unix epoch, UTC).
    pub at: UtcTime,
    /// The state left: `logged_out`, `available`, `ringing`, `on_call`, `wrap_up`,
    /// `not_ready` (`acd::AgentState::name`).
    pub from: &'static str,
    /// The state entered (same names).
    pub to: &'static str,
    /// Why, when the state says it: the not-ready reason (`requested`, `no_answer` …), or
    /// what caused the change (`registered`, `unregistered`, `feature_code` …).
    pub reason: Option<String>,
    /// The call record the transition concerns (ringing, on call, wrap-up after it).
    pub call: Option<Uuid>,
}

/// An [`AgentEvent`] as read back (its state names as text), before they are checked
/// against [`AgentState::NAMES`].
#[derive(Deserialize)]
struct AgentEventText {
    id: Uuid,
    operator: String,
    at: UtcTime,
    from: String,
    to: String,
    reason: Option<String>,
    call: Option<Uuid>,
}

impl<'de> Deserialize<'de> for AgentEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = AgentEventText::deserialize(deserializer)?;
        AgentEvent::try_from(text).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<AgentEventText> for AgentEvent {
    type Error = String;

    /// Errors: a state name that is not one of [`AgentState::NAMES`] (a record of a
    /// newer siaga).
    fn try_from(text: AgentEventText) -> Result<Self, String> {
        let state = |name: &str| {
            AgentState::NAMES
                .into_iter()
                .find(|known| *known == name)
                .ok_or_else(|| format!("unknown agent state {name:?}"))
        };
        Ok(AgentEvent {
            id: text.id,
            from: state(&text.from)?,
            to: state(&text.to)?,
            operator: text.operator,
            at: text.at,
            reason: text.reason,
            call: text.call,
        })
    }
}

/// Who ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The caller hung up (BYE or CANCEL from the trunk).
    Caller,
    /// The operator hung up (BYE from the operator's phone).
    Operator,
    /// siaga ended it (a failure, shutdown, or policy).
    Siaga,
}

impl Party {
    /// As stored in `calls.ended_by`: `caller`, `operator`, `siaga`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Operator => "operator",
            Party::Siaga => "siaga",
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call's outcome (NENA/EENA usage), not its incident category.
///
/// Stored as text in `calls.disposition`; the set grows in later issues (interrupted,
/// overflowed), so readers of the database treat it as open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// An operator answered.
    Answered,
    /// The caller hung up while queued, before any phone rang.
    AbandonedInQueue,
    /// The caller hung up while an operator's phone was ringing.
    AbandonedWhileRinging,
    /// siaga could not serve the call (no operator leg could be set up, an error).
    Failed,
    /// siaga stopped while the call was live: both sides were hung up (BYE, or 503 to a
    /// caller still waiting, so the telco can route the call elsewhere).
    Interrupted,
    /// The backup centre (`queues[].overflow_uri`) answered the call.
    Overflowed,
}

impl Disposition {
    /// As stored in `calls.disposition`: `answered`, `abandoned_in_queue`,
    /// `abandoned_while_ringing`, `failed`, `interrupted`, `overflowed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::AbandonedInQueue => "abandoned_in_queue",
            Disposition::AbandonedWhileRinging => "abandoned_while_ringing",
            Disposition::Failed => "failed",
            Disposition::Interrupted => "interrupted",
            Disposition::Overflowed => "overflowed",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ids_are_v4_and_follow_the_seed() {
        let mut a = StdRng::seed_from_u64(7);
        let mut b = StdRng::seed_from_u64(7);
        let id = random_uuid(&mut a);
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id, random_uuid(&mut b));
        let ev = CallEvent::new(
            &mut a,
            id,
            UtcTime(5),
            CallEventKind::Queued {
                queue: "default".into(),
                priority: 0,
                repeat: false,
                skills: vec![],
            },
        );
        assert_ne!(ev.id, id);
        assert_eq!(ev.id.get_version_num(), 4);
    }

    #[test]
    fn names_are_the_stored_words() {
        let op = || "op-1".to_owned();
        let cases = [
            (
                CallEventKind::Queued {
                    queue: "default".into(),
                    priority: 0,
                    repeat: false,
                    skills: vec![],
                },
                "queued",
                None,
            ),
            (CallEventKind::SessionExpired, "session_expired", None),
            (
                CallEventKind::Renegotiated {
                    by: Party::Caller,
                    direction: "sendonly".to_owned(),
                },
                "renegotiated",
                None,
            ),
            (
                CallEventKind::Offered { operator: op() },
                "offered",
                Some("op-1"),
            ),
            (
                CallEventKind::NoAnswer { operator: op() },
                "no_answer",
                Some("op-1"),
            ),
            (
                CallEventKind::Rejected {
                    operator: op(),
                    status: 486,
                },
                "rejected",
                Some("op-1"),
            ),
            (
                CallEventKind::MediaRelayed {
                    caller_to_operator: 1,
                    operator_to_caller: 2,
                },
                "media",
                None,
            ),
        ];
        for (kind, name, operator) in cases {
            assert_eq!(kind.kind_name(), name);
            assert_eq!(kind.operator(), operator);
        }
        assert_eq!(Party::Siaga.as_str(), "siaga");
        assert_eq!(
            Disposition::AbandonedWhileRinging.to_string(),
            "abandoned_while_ringing"
        );
    }
}
