//! An operator's agent state and the one transition table that changes it.
//!
//! Every change of an operator's state goes through [`Agent::apply`]: a trigger (a
//! registration, a command, an offer and its end, an answer, a call's end, a timer) either
//! moves the state along the table below or is refused with [`AgentError`], leaving the
//! state unchanged. Each move yields a [`Transition`] for the durable log.
//!
//! | from \ trigger | Registered | Unregistered | Ready | NotReady | EndWrapUp / WrapUpElapsed | Logout | Offer | OfferEnded | Answer | CallEnded |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | logged_out | available¹ | — | available² | not_ready² | refused | refused | refused | — | — | — |
//! | available | — | logged_out | refused | not_ready | refused | logged_out | ringing | — | — | — |
//! | ringing | — | logged_out³ | refused | refused | refused | refused | refused | available / not_ready(no_answer) | on_call | — |
//! | on_call | — | (stays)⁴ | refused | refused | refused | refused | refused | — | — | wrap_up / available / logged_out⁴ ⁵ |
//! | wrap_up | — | logged_out | available | not_ready | available | logged_out | refused | — | — | — |
//! | not_ready | — | logged_out | available | not_ready | refused | logged_out | refused | — | — | — |
//!
//! ¹ only under the `on-register` login policy, and not after an explicit logout.
//! ² only while registered (a phone must be reachable).
//! ³ the call is re-offered by the call model (issue 5, point 8).
//! ⁴ a call in progress continues; the operator is logged out when it ends.
//! ⁵ a callback nobody answered (`CallbackUnanswered`) ends in available, never wrap-up:
//!   nothing was handled (logged out if the operator unregistered meanwhile).
//! "—": the trigger does not concern this state (a stale one): nothing changes, no error.

use super::CallHandle;
use crate::engine::time::MonoTime;
use std::fmt;
use std::time::Duration;

/// The shortest pause before an operator whose phone refused or failed an offer is
/// offered a call again.
const MIN_BLOCK: Duration = Duration::from_secs(1);

/// Why an operator is not ready (the ACD's "reason codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotReadyReason {
    /// The operator asked without saying why (feature code `not_ready`, or the API
    /// without a reason).
    Requested,
    /// `queues[].no_answer_limit` offers in a row went unanswered: visible to supervisors,
    /// ended by the operator with `ready`. Never chosen by an operator.
    NoAnswer,
    /// A break (the API's `break`).
    Break,
    /// A meal break (`meal`).
    Meal,
    /// Training or coaching (`training`).
    Training,
    /// A meeting or shift briefing (`meeting`).
    Meeting,
    /// Work on an incident's record away from the queue (`paperwork`).
    Paperwork,
}

impl NotReadyReason {
    /// The reasons an operator may give (the HTTP API's `reason` values), in this order.
    pub const CHOSEN: [NotReadyReason; 6] = [
        NotReadyReason::Requested,
        NotReadyReason::Break,
        NotReadyReason::Meal,
        NotReadyReason::Training,
        NotReadyReason::Meeting,
        NotReadyReason::Paperwork,
    ];

    /// As logged and stored: `requested`, `no_answer`, `break`, `meal`, `training`,
    /// `meeting`, `paperwork`.
    pub const fn as_str(self) -> &'static str {
        match self {
            NotReadyReason::Requested => "requested",
            NotReadyReason::NoAnswer => "no_answer",
            NotReadyReason::Break => "break",
            NotReadyReason::Meal => "meal",
            NotReadyReason::Training => "training",
            NotReadyReason::Meeting => "meeting",
            NotReadyReason::Paperwork => "paperwork",
        }
    }

    /// The reason an operator may choose named `name` ([`NotReadyReason::CHOSEN`]);
    /// `None` for any other text, `no_answer` included.
    pub fn chosen(name: &str) -> Option<NotReadyReason> {
        Self::CHOSEN.into_iter().find(|r| r.as_str() == name)
    }
}

/// An operator's agent state (DESIGN.md "Words").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// Not logged in (no binding, an explicit logout, or `explicit` login not done yet).
    LoggedOut,
    /// Waiting for a call since `since` (the longest-idle operator is offered first).
    Available {
        /// When the operator became idle.
        since: MonoTime,
    },
    /// Reserved for `call`, whose INVITE is ringing the operator's phone.
    Ringing {
        /// The call offered.
        call: CallHandle,
    },
    /// Talking on `call`.
    OnCall {
        /// The call answered (or the callback placed).
        call: CallHandle,
    },
    /// After a call, until `until` or until the operator ends it (`end_wrap_up`).
    WrapUp {
        /// When wrap-up ends by itself.
        until: MonoTime,
    },
    /// Logged in but not taking calls.
    NotReady {
        /// Why.
        reason: NotReadyReason,
    },
}

impl AgentState {
    /// Every [`AgentState::name`], for reading a stored name back.
    pub const NAMES: [&'static str; 6] = [
        "logged_out",
        "available",
        "ringing",
        "on_call",
        "wrap_up",
        "not_ready",
    ];

    /// The state's name as stored in `agent_events`: `logged_out`, `available`, `ringing`,
    /// `on_call`, `wrap_up`, `not_ready`.
    pub const fn name(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available { .. } => "available",
            AgentState::Ringing { .. } => "ringing",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::NotReady { .. } => "not_ready",
        }
    }

    /// The call the state is about (ringing or on call).
    pub const fn call(&self) -> Option<CallHandle> {
        match self {
            AgentState::Ringing { call } | AgentState::OnCall { call } => Some(*call),
            _ => None,
        }
    }

    /// Whether the operator is logged in (any state but logged out).
    pub fn is_logged_in(&self) -> bool {
        *self != AgentState::LoggedOut
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an offer to an operator ended without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferEnd {
    /// The ring timeout passed, or the phone never responded (Timer B, transport
    /// failure): counts toward `no_answer_limit`.
    NoAnswer,
    /// The phone declined (486, 600, 603 …): the operator is present; they are not offered
    /// a call for `reject_delay`.
    Rejected,
    /// Another failure (a 4xx/5xx that is not a decline, a transport error, no common
    /// codec): counts as not answered, and pauses the operator like a reject.
    Failed,
    /// siaga withdrew the offer: the caller hung up, another ring-all operator answered,
    /// or the operator's registration went away. The operator keeps their idle time.
    Withdrawn,
}

/// What makes an operator's state change (the columns of the table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The operator's phone registered its first binding.
    Registered,
    /// The operator's last binding went away (expiry, `Expires: 0`, removal).
    Unregistered,
    /// `ready`: log in, end not-ready, end wrap-up.
    Ready,
    /// `not_ready`, or the ACD's no-answer rule.
    NotReady(NotReadyReason),
    /// `end_wrap_up`.
    EndWrapUp,
    /// The wrap-up time passed.
    WrapUpElapsed,
    /// `logout`.
    Logout,
    /// The ACD reserved the operator for `call` (their phone rings).
    Offer(CallHandle),
    /// The offer of `call` ended unanswered.
    OfferEnded(CallHandle, OfferEnd),
    /// The operator answered `call`, or placed it (a callback).
    Answer(CallHandle),
    /// `call`, which the operator was on, ended.
    CallEnded(CallHandle),
    /// The callback `call`, which the operator placed, ended without an answer (busy, no
    /// answer, failed, or the operator hung up first, RFC 7090).
    CallbackUnanswered(CallHandle),
}

impl Trigger {
    /// What is written as the transition's reason when the new state does not say it.
    pub const fn name(&self) -> &'static str {
        match self {
            Trigger::Registered => "registered",
            Trigger::Unregistered => "unregistered",
            Trigger::Ready => "ready",
            Trigger::NotReady(reason) => reason.as_str(),
            Trigger::EndWrapUp => "end_wrap_up",
            Trigger::WrapUpElapsed => "wrap_up_elapsed",
            Trigger::Logout => "logout",
            Trigger::Offer(_) => "offered",
            Trigger::OfferEnded(_, OfferEnd::NoAnswer) => "no_answer",
            Trigger::OfferEnded(_, OfferEnd::Rejected) => "rejected",
            Trigger::OfferEnded(_, OfferEnd::Failed) => "failed",
            Trigger::OfferEnded(_, OfferEnd::Withdrawn) => "withdrawn",
            Trigger::Answer(_) => "answered",
            Trigger::CallEnded(_) => "call_ended",
            Trigger::CallbackUnanswered(_) => "callback_unanswered",
        }
    }
}

/// A refused command or trigger: the state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// No operator with this id is configured.
    #[error("no operator {0:?} is configured")]
    UnknownOperator(String),
    /// The operator has no registered binding, so cannot log in or become ready.
    #[error("operator is not registered")]
    NotRegistered,
    /// The table has no such move from the current state (e.g. `end_wrap_up` while
    /// available, `not_ready` while ringing).
    #[error("{trigger} is not possible while {state}")]
    NotAllowed {
        /// The state the operator is in.
        state: &'static str,
        /// What was asked.
        trigger: &'static str,
    },
}

/// One change of an operator's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The operator.
    pub operator: String,
    /// The state left.
    pub from: AgentState,
    /// The state entered.
    pub to: AgentState,
    /// Why: the not-ready reason, or the trigger's name.
    pub reason: &'static str,
    /// The call concerned (ringing, on call, the one just ended).
    pub call: Option<CallHandle>,
    /// When.
    pub at: MonoTime,
}

/// One operator as the ACD keeps them.
#[derive(Clone, Debug)]
pub struct Agent {
    /// `operators[].id`.
    pub id: String,
    /// The current state.
    pub state: AgentState,
    /// Whether the phone has a binding.
    pub registered: bool,
    /// Whether registering logs the operator in (`on-register` policy of a queue served).
    pub login_on_register: bool,
    /// Set by `logout`, cleared by `ready`: a registration refresh does not log back in.
    pub logged_out_explicitly: bool,
    /// Wrap-up after each call (the operator's own, else their first queue's).
    pub wrap_up: Duration,
    /// Offers in a row that went unanswered; an answer or a reject resets it.
    pub no_answers: u32,
    /// `no_answer_limit` of the operator's first queue (0: never).
    pub no_answer_limit: u32,
    /// The reject delay of the operator's first queue.
    pub reject_delay: Duration,
    /// Not offered any call before this (after a reject).
    pub blocked_until: Option<MonoTime>,
    /// The idle time kept across a withdrawn offer: the operator goes back to where they
    /// were among the longest idle.
    pub idle_since: Option<MonoTime>,
    /// When `state` was entered ([`MonoTime::ZERO`] until the first change): the
    /// supervisor's "time in state".
    pub entered: MonoTime,
}

impl Agent {
    /// Applies `trigger` at `now` along the table of the module docs: the transition, or
    /// `None` when the trigger does not concern the current state, or an error (state
    /// unchanged) when the table refuses it.
    pub fn apply(
        &mut self,
        trigger: Trigger,
        now: MonoTime,
    ) -> Result<Option<Transition>, AgentError> {
        use AgentState as S;
        use Trigger as T;
        let available = |agent: &Agent| S::Available {
            since: agent.idle_since.unwrap_or(now),
        };
        let refused = |state: &AgentState| AgentError::NotAllowed {
            state: state.name(),
            trigger: trigger.name(),
        };
        let from = self.state;
        let mut reason = trigger.name();
        let to = match (from, trigger) {
            // Registration.
            (S::LoggedOut, T::Registered) => {
                self.registered = true;
                if !self.login_on_register || self.logged_out_explicitly {
                    return Ok(None);
                }
                S::Available { since: now }
            }
            (_, T::Registered) => {
                self.registered = true;
                return Ok(None);
            }
            (S::OnCall { .. }, T::Unregistered) => {
                self.registered = false;
                return Ok(None);
            }
            (S::LoggedOut, T::Unregistered) => {
                self.registered = false;
                return Ok(None);
            }
            (_, T::Unregistered) => {
                self.registered = false;
                S::LoggedOut
            }
            // Commands.
            (S::LoggedOut, T::Ready | T::NotReady(_)) if !self.registered => {
                return Err(AgentError::NotRegistered);
            }
            (S::LoggedOut | S::NotReady { .. } | S::WrapUp { .. }, T::Ready) => {
                self.logged_out_explicitly = false;
                self.no_answers = 0;
                S::Available { since: now }
            }
            (
                S::LoggedOut | S::Available { .. } | S::WrapUp { .. } | S::NotReady { .. },
                T::NotReady(why),
            ) => {
                self.logged_out_explicitly = false;
                if why == NotReadyReason::NoAnswer {
                    return Err(refused(&from));
                }
                S::NotReady { reason: why }
            }
            (S::WrapUp { .. }, T::EndWrapUp | T::WrapUpElapsed) => S::Available { since: now },
            (_, T::WrapUpElapsed) => return Ok(None),
            (S::Available { .. } | S::WrapUp { .. } | S::NotReady { .. }, T::Logout) => {
                self.logged_out_explicitly = true;
                S::LoggedOut
            }
            // Offers and calls.
            (S::Available { since }, T::Offer(call)) => {
                if self.blocked_until.is_some_and(|until| until > now) {
                    return Err(refused(&from));
                }
                self.idle_since = Some(since);
                S::Ringing { call }
            }
            (S::Ringing { call }, T::OfferEnded(ended, end)) if call == ended => {
                match end {
                    OfferEnd::Withdrawn => {}
                    // At least 1 s: a phone that refuses or fails at once must not be offered
                    // calls in a tight loop, whatever `reject_delay_s` says.
                    OfferEnd::Rejected => {
                        self.no_answers = 0;
                        self.blocked_until = Some(now + self.reject_delay.max(MIN_BLOCK));
                        self.idle_since = None;
                    }
                    OfferEnd::Failed => {
                        self.no_answers += 1;
                        self.blocked_until = Some(now + self.reject_delay.max(MIN_BLOCK));
                        self.idle_since = None;
                    }
                    OfferEnd::NoAnswer => {
                        self.no_answers += 1;
                        self.idle_since = None;
                    }
                }
                if self.no_answer_limit > 0 && self.no_answers >= self.no_answer_limit {
                    self.no_answers = 0;
                    reason = NotReadyReason::NoAnswer.as_str();
                    S::NotReady {
                        reason: NotReadyReason::NoAnswer,
                    }
                } else {
                    available(self)
                }
            }
            (S::Ringing { call }, T::Answer(answered)) if call == answered => {
                self.no_answers = 0;
                self.idle_since = None;
                S::OnCall { call }
            }
            // A callback: the operator places the call from an idle state.
            (S::Available { .. } | S::WrapUp { .. } | S::NotReady { .. }, T::Answer(call)) => {
                self.idle_since = None;
                S::OnCall { call }
            }
            (S::OnCall { call }, T::CallEnded(ended)) if call == ended => {
                self.idle_since = None;
                if !self.registered {
                    S::LoggedOut
                } else if self.wrap_up.is_zero() {
                    S::Available { since: now }
                } else {
                    S::WrapUp {
                        until: now + self.wrap_up,
                    }
                }
            }
            (S::OnCall { call }, T::CallbackUnanswered(ended)) if call == ended => {
                self.idle_since = None;
                if self.registered {
                    S::Available { since: now }
                } else {
                    S::LoggedOut
                }
            }
            (_, T::OfferEnded(..) | T::CallEnded(_) | T::CallbackUnanswered(_)) => return Ok(None),
            (
                _,
                T::Ready | T::NotReady(_) | T::EndWrapUp | T::Logout | T::Offer(_) | T::Answer(_),
            ) => {
                return Err(refused(&from));
            }
        };
        if let S::NotReady { reason: why } = to {
            reason = why.as_str();
        }
        self.state = to;
        self.entered = now;
        let call = to.call().or(from.call()).or(match trigger {
            T::CallEnded(call) | T::OfferEnded(call, _) | T::CallbackUnanswered(call) => Some(call),
            _ => None,
        });
        Ok(Some(Transition {
            operator: self.id.clone(),
            from,
            to,
            reason,
            call,
            at: now,
        }))
    }
}
