//! What the HTTP API asks of the engine (DESIGN.md, "API"): the supervisor's live snapshot
//! ([`Engine::snapshot`]) and an operator going not ready with a reason code
//! ([`Engine::agent_not_ready`]). Plain owned data and plain methods: the shell carries
//! the requests to the engine task and the answers back (`crate::api::link`); nothing here
//! waits, reads a clock or touches a socket.
//!
//! Times in a snapshot are durations up to the `now` the shell passes in (monotonic time,
//! the same clock as the engine's timers), so a snapshot taken twice at one instant is the
//! same snapshot.

use super::acd::{AgentCommand, AgentError, AgentState, CallHandle, NotReadyReason};
use super::call::{Call, CallState};
use super::driver::Engine;
use super::time::{MonoTime, Now};
use super::trunk_health::GatewayState;
use std::time::Duration;
use uuid::Uuid;

/// The live state of the centre at one instant: the queue, the operators, the calls being
/// handled, the trunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Calls waiting for an operator, in service order (the next one offered first).
    pub waiting: Vec<WaitingCall>,
    /// Every configured operator, in id order.
    pub operators: Vec<OperatorStatus>,
    /// Live calls that are not waiting: ringing operators, answered, with the backup
    /// centre, and operators' callbacks; in arrival order.
    pub in_progress: Vec<CallInProgress>,
    /// The trunk gateways (`trunk.gateways`), in configured order.
    pub trunk: Vec<TrunkGateway>,
}

/// A call waiting in an ACD queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingCall {
    /// The call record id (`calls.id`).
    pub record: Uuid,
    /// The queue (`queues[].name`).
    pub queue: String,
    /// Its priority (0–255, higher served first).
    pub priority: u8,
    /// How long since the trunk's INVITE arrived.
    pub waited: Duration,
    /// The caller's previous call was abandoned or dropped within `acd.repeat_window_s`.
    pub repeat: bool,
    /// The caller's number (ANI) when known. Personal data: shown to the authorised, never
    /// logged in full.
    pub caller: Option<String>,
}

/// An operator (agent) and their state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorStatus {
    /// `operators[].id`.
    pub id: String,
    /// The agent state.
    pub state: AgentState,
    /// How long the operator has been in `state` (since siaga started, when it never
    /// changed).
    pub in_state: Duration,
    /// Whether the operator's phone has a registered binding.
    pub registered: bool,
    /// The call record the state is about (ringing, on call).
    pub call: Option<Uuid>,
}

/// Where a call in progress stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStage {
    /// Operators' phones are ringing for it.
    Offered,
    /// An operator answered (or placed the callback).
    Answered,
    /// The backup centre (`queues[].overflow_uri`) is being rung.
    Overflowing,
    /// The backup centre answered.
    Overflowed,
    /// The operator left while a field agency's transfer URI rings.
    Transferring,
    /// A field agency answered the transfer: no operator is on the call.
    Transferred,
}

impl CallStage {
    /// `offered`, `answered`, `overflowing`, `overflowed`, `transferring`, `transferred`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallStage::Offered => "offered",
            CallStage::Answered => "answered",
            CallStage::Overflowing => "overflowing",
            CallStage::Overflowed => "overflowed",
            CallStage::Transferring => "transferring",
            CallStage::Transferred => "transferred",
        }
    }
}

/// A live call that is not waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInProgress {
    /// The call record id.
    pub record: Uuid,
    /// Where it stands.
    pub stage: CallStage,
    /// The operators ringing (offered) or the one who answered; empty with the backup
    /// centre.
    pub operators: Vec<String>,
    /// How long since the trunk's INVITE arrived (for a callback: since the operator
    /// placed it).
    pub age: Duration,
    /// Its priority in the queue, when the ACD holds it.
    pub priority: Option<u8>,
    /// The caller's number (ANI) when known (personal data, as [`WaitingCall::caller`]).
    pub caller: Option<String>,
    /// Whether it is an operator's callback to an abandoned caller (RFC 7090).
    pub callback: bool,
    /// The caller's previous call was abandoned or dropped within `acd.repeat_window_s`
    /// (as [`WaitingCall::repeat`]; the operator's screen shows it).
    pub repeat: bool,
}

/// A trunk gateway's health (OPTIONS probes, `trunk_health`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkGateway {
    /// The gateway's SIP URI as configured.
    pub uri: String,
    /// Up, down or not known yet.
    pub state: GatewayState,
}

impl Engine {
    /// The live state at `now` (the shell's monotonic time, as given to `handle_*`).
    /// Owned data; the engine is unchanged.
    pub fn snapshot(&self, now: MonoTime) -> Snapshot {
        let acd = &self.calls.acd;
        let record = |handle: CallHandle| self.calls.calls.get(&handle).map(|c| c.record);
        let waiting = acd
            .waiting_calls()
            .map(|(handle, entry)| {
                let call = self.calls.calls.get(&handle);
                WaitingCall {
                    record: entry.record,
                    queue: acd.queue(entry.queue).name.clone(),
                    priority: entry.priority,
                    waited: now
                        .saturating_since(call.map_or(entry.queued_at, |c: &Call| c.received_at)),
                    repeat: call.is_some_and(|c| c.repeat),
                    caller: call.and_then(|c| c.caller.clone()),
                }
            })
            .collect();
        let operators = acd
            .agents()
            .filter_map(|(id, _)| {
                let (state, entered, registered) = acd.agent_status(id)?;
                Some(OperatorStatus {
                    id: id.to_owned(),
                    state,
                    in_state: now.saturating_since(entered),
                    registered,
                    call: state.call().and_then(record),
                })
            })
            .collect();
        let in_progress = self
            .calls
            .calls
            .iter()
            .filter_map(|(handle, call)| {
                let (stage, operators) = match &call.state {
                    CallState::Queued => return None,
                    CallState::Offering { operators, .. } => {
                        (CallStage::Offered, operators.clone())
                    }
                    CallState::Answered { operator, .. } => {
                        (CallStage::Answered, vec![operator.clone()])
                    }
                    CallState::Overflowing { .. } => (CallStage::Overflowing, Vec::new()),
                    CallState::Overflowed { .. } => (CallStage::Overflowed, Vec::new()),
                    CallState::Transferring { .. } => (CallStage::Transferring, Vec::new()),
                    CallState::Transferred { .. } => (CallStage::Transferred, Vec::new()),
                };
                Some(CallInProgress {
                    record: call.record,
                    stage,
                    operators,
                    age: now.saturating_since(call.received_at),
                    priority: acd.entry(*handle).map(|e| e.priority),
                    caller: call.caller.clone(),
                    callback: call.callback.is_some(),
                    repeat: call.repeat,
                })
            })
            .collect();
        let trunk = self
            .trunk_gateways()
            .map(|g| TrunkGateway {
                uri: g.gateway.uri.clone(),
                state: g.state,
            })
            .collect();
        Snapshot {
            waiting,
            operators,
            in_progress,
            trunk,
        }
    }

    /// Operator `operator` goes not ready for `reason` (one of [`NotReadyReason::CHOSEN`];
    /// [`Engine::agent_command`] with [`AgentCommand::NotReady`] is the same with
    /// `requested`). Returns the new state.
    ///
    /// Errors: as [`Engine::agent_command`]: [`AgentError::UnknownOperator`],
    /// [`AgentError::NotRegistered`] (logging in needs a registered phone),
    /// [`AgentError::NotAllowed`] (while ringing or on a call; `no_answer` always).
    pub fn agent_not_ready(
        &mut self,
        now: Now,
        operator: &str,
        reason: NotReadyReason,
    ) -> Result<AgentState, AgentError> {
        if reason == NotReadyReason::Requested {
            return self.agent_command(now, operator, AgentCommand::NotReady);
        }
        let result = self.calls.acd.not_ready(operator, reason, now.mono);
        match &result {
            Ok(state) => {
                tracing::info!(operator, reason = reason.as_str(), %state, "operator command")
            }
            Err(error) => {
                tracing::info!(operator, reason = reason.as_str(), %error, "operator command refused");
            }
        }
        // No operator became available, so no call is offered; the transition goes out
        // as an agent event.
        self.collect(now);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::acd::AcdSettings;
    use crate::engine::digest::Ha1;
    use crate::engine::{EngineConfig, UtcTime};

    fn engine() -> Engine {
        let mut c = EngineConfig::for_tests("127.0.0.1:5060".parse().expect("literal"));
        c.calls.operators = ["1001", "1002"]
            .iter()
            .map(|id| (id.to_string(), Ha1::from_password(id, "siaga.test", "pw")))
            .collect();
        c.calls.acd = AcdSettings::single_queue([]);
        Engine::with_seed(c, 5)
    }

    fn at(ms: u64) -> Now {
        Now {
            mono: MonoTime::from_origin(Duration::from_millis(ms)),
            utc: UtcTime(1_795_953_665_000 + ms as i64),
        }
    }

    #[test]
    fn an_idle_engine_lists_every_operator_logged_out_since_start() {
        let e = engine();
        let s = e.snapshot(at(7_000).mono);
        assert!(s.waiting.is_empty() && s.in_progress.is_empty());
        let ids: Vec<(&str, AgentState, Duration, bool)> = s
            .operators
            .iter()
            .map(|o| (o.id.as_str(), o.state, o.in_state, o.registered))
            .collect();
        assert_eq!(
            ids,
            [
                ("1001", AgentState::LoggedOut, Duration::from_secs(7), false),
                ("1002", AgentState::LoggedOut, Duration::from_secs(7), false),
            ]
        );
    }

    #[test]
    fn not_ready_with_a_reason_needs_a_registered_phone_and_refuses_no_answer() {
        let mut e = engine();
        assert_eq!(
            e.agent_not_ready(at(1), "1001", NotReadyReason::Break),
            Err(AgentError::NotRegistered)
        );
        assert_eq!(
            e.agent_not_ready(at(1), "nobody", NotReadyReason::Meal),
            Err(AgentError::UnknownOperator("nobody".to_owned()))
        );
        e.calls.acd.registered("1001", at(2).mono);
        assert!(matches!(
            e.agent_not_ready(at(3), "1001", NotReadyReason::NoAnswer),
            Err(AgentError::NotAllowed { .. })
        ));
        assert_eq!(
            e.agent_not_ready(at(4_000), "1001", NotReadyReason::Training),
            Ok(AgentState::NotReady {
                reason: NotReadyReason::Training
            })
        );
        let s = e.snapshot(at(6_500).mono);
        assert_eq!(s.operators[0].in_state, Duration::from_millis(2_500));
        assert!(s.operators[0].registered);
        // The transition is recorded with the reason.
        let mut reasons = Vec::new();
        loop {
            match e.poll_output() {
                crate::engine::Output::AgentEvent(ev) => reasons.push((ev.to, ev.reason)),
                crate::engine::Output::Wait { .. } => break,
                _ => {}
            }
        }
        // On-register login (the default policy) made 1001 available first.
        assert_eq!(
            reasons,
            [
                ("available", Some("registered".to_owned())),
                ("not_ready", Some("training".to_owned()))
            ]
        );
    }

    #[test]
    fn chosen_reasons_round_trip_by_name_and_exclude_no_answer() {
        for r in NotReadyReason::CHOSEN {
            assert_eq!(NotReadyReason::chosen(r.as_str()), Some(r));
        }
        assert_eq!(NotReadyReason::chosen("no_answer"), None);
        assert_eq!(NotReadyReason::chosen("Break"), None);
    }
}
