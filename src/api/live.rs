//! The operators' and supervisors' live endpoints: `POST /api/me/state` (an operator sets
//! their own agent state) and `GET /api/supervisor/live` (the queue, the operators and the
//! calls in progress). Both go through the engine task ([`super::link`]); durations are
//! whole milliseconds up to the moment the engine took the snapshot.

use super::AppState;
use super::auth::{Caller, json_body};
use super::error::{ApiError, ErrorBody};
use super::link::StateChange;
use crate::config::Role;
use crate::engine::acd::{AgentState, NotReadyReason};
use crate::engine::live::{CallInProgress, OperatorStatus, Snapshot, WaitingCall};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Roles that see the supervisor views.
pub const SUPERVISORS: &[Role] = &[Role::Supervisor, Role::Admin];

/// Roles that have an agent state.
pub const OPERATORS: &[Role] = &[Role::Operator];

/// The states an operator may ask for.
const STATES: [&str; 3] = ["ready", "not_ready", "end_wrap_up"];

/// `POST /api/me/state`'s body: `{"state":"ready"}`, `{"state":"not_ready","reason":R}`
/// (R one of `requested`, `break`, `meal`, `training`, `meeting`, `paperwork`; absent:
/// `requested`) or `{"state":"end_wrap_up"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    /// `ready`, `not_ready` or `end_wrap_up`.
    #[schema(example = "not_ready")]
    pub state: String,
    /// With `not_ready` only: why.
    #[schema(example = "break")]
    pub reason: Option<String>,
}

impl StateRequest {
    /// The change asked for. Errors: 422 naming `state` or `reason`, with the allowed
    /// values.
    fn change(&self) -> Result<StateChange, ApiError> {
        let reasons: Vec<&'static str> =
            NotReadyReason::CHOSEN.iter().map(|r| r.as_str()).collect();
        let reason = match (self.state.as_str(), &self.reason) {
            ("not_ready", Some(reason)) => {
                Some(NotReadyReason::chosen(reason).ok_or_else(|| {
                    ApiError::invalid("reason", "is not a not-ready reason", &reasons)
                })?)
            }
            (_, Some(_)) if STATES.contains(&self.state.as_str()) => {
                return Err(ApiError::invalid(
                    "reason",
                    "is only taken with \"not_ready\"",
                    &[],
                ));
            }
            _ => None,
        };
        match self.state.as_str() {
            "ready" => Ok(StateChange::Ready),
            "end_wrap_up" => Ok(StateChange::EndWrapUp),
            "not_ready" => Ok(StateChange::NotReady(
                reason.unwrap_or(NotReadyReason::Requested),
            )),
            _ => Err(ApiError::invalid(
                "state",
                "is not a state an operator may ask for",
                &STATES,
            )),
        }
    }
}

/// An operator's agent state, as the API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OperatorView {
    /// `operators[].id`.
    pub id: String,
    /// `logged_out`, `available`, `ringing`, `on_call`, `wrap_up` or `not_ready`.
    pub state: String,
    /// The not-ready reason (`requested`, `no_answer`, `break` …), when not ready.
    pub reason: Option<String>,
    /// Milliseconds in this state.
    pub in_state_ms: u64,
    /// Whether the operator's phone is registered.
    pub registered: bool,
    /// The call record the state is about (ringing, on call).
    pub call: Option<Uuid>,
}

impl OperatorView {
    /// The view of the engine's `status`.
    pub fn of(status: &OperatorStatus) -> OperatorView {
        OperatorView {
            id: status.id.clone(),
            state: status.state.name().to_owned(),
            reason: match status.state {
                AgentState::NotReady { reason } => Some(reason.as_str().to_owned()),
                _ => None,
            },
            in_state_ms: millis(status.in_state),
            registered: status.registered,
            call: status.call,
        }
    }
}

/// A call waiting in a queue.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WaitingView {
    /// The call record id.
    pub call: Uuid,
    /// The queue.
    pub queue: String,
    /// Priority, 0–255, higher served first.
    pub priority: u8,
    /// Milliseconds since the call arrived.
    pub waited_ms: u64,
    /// The caller's previous call was abandoned or dropped recently.
    pub repeat: bool,
    /// The caller's number (ANI), when known. Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub caller: Option<String>,
}

impl WaitingView {
    fn of(call: &WaitingCall) -> WaitingView {
        WaitingView {
            call: call.record,
            queue: call.queue.clone(),
            priority: call.priority,
            waited_ms: millis(call.waited),
            repeat: call.repeat,
            caller: call.caller.clone(),
        }
    }
}

/// A call in progress (not waiting).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CallView {
    /// The call record id.
    pub call: Uuid,
    /// `offered`, `answered`, `overflowing`, `overflowed`, `transferring` (the operator left
    /// while a field agency rings) or `transferred` (the agency took the caller).
    pub stage: String,
    /// The operators ringing, or the one who answered.
    pub operators: Vec<String>,
    /// Milliseconds since the call arrived.
    pub age_ms: u64,
    /// Priority in the queue, when queued.
    pub priority: Option<u8>,
    /// The caller's number (ANI), when known. Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub caller: Option<String>,
    /// An operator's callback to an abandoned caller (RFC 7090).
    pub callback: bool,
}

impl CallView {
    fn of(call: &CallInProgress) -> CallView {
        CallView {
            call: call.record,
            stage: call.stage.as_str().to_owned(),
            operators: call.operators.clone(),
            age_ms: millis(call.age),
            priority: call.priority,
            caller: call.caller.clone(),
            callback: call.callback,
        }
    }
}

/// A trunk gateway's health.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GatewayView {
    /// Its SIP URI.
    pub uri: String,
    /// `up`, `down` or `unknown`.
    pub state: String,
}

/// The supervisor's live view.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LiveView {
    /// Calls waiting, in service order.
    pub waiting: Vec<WaitingView>,
    /// Every operator, in id order.
    pub operators: Vec<OperatorView>,
    /// Calls ringing, answered or with the backup centre, in arrival order.
    pub in_progress: Vec<CallView>,
    /// The trunk's gateways.
    pub trunk: Vec<GatewayView>,
}

impl LiveView {
    fn of(s: &Snapshot) -> LiveView {
        LiveView {
            waiting: s.waiting.iter().map(WaitingView::of).collect(),
            operators: s.operators.iter().map(OperatorView::of).collect(),
            in_progress: s.in_progress.iter().map(CallView::of).collect(),
            trunk: s
                .trunk
                .iter()
                .map(|g| GatewayView {
                    uri: g.uri.clone(),
                    state: g.state.to_string(),
                })
                .collect(),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The operator sets their own agent state.
#[utoipa::path(
    post,
    path = "/api/me/state",
    tag = "operator",
    security(("bearer" = [])),
    request_body = StateRequest,
    responses(
        (status = 200, description = "The new state", body = OperatorView),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 409, description = "The ACD refuses it now (e.g. not registered, ringing, on a call); state unchanged", body = ErrorBody),
        (status = 422, description = "The body names no state an operator may ask for", body = ErrorBody),
        (status = 503, description = "The engine did not answer", body = ErrorBody),
    )
)]
pub async fn set_state(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<OperatorView>, ApiError> {
    caller.require(OPERATORS)?;
    let change = json_body::<StateRequest>(&body)?.change()?;
    state
        .engine
        .set_state(&caller.user, change)
        .await?
        .map_err(ApiError::Agent)?;
    let live = state.engine.live().await?;
    live.snapshot
        .operators
        .iter()
        .find(|o| o.id == caller.user)
        .map(|o| Json(OperatorView::of(o)))
        .ok_or(ApiError::Agent(
            crate::engine::acd::AgentError::UnknownOperator(caller.user),
        ))
}

/// The live queue, operators and calls in progress.
#[utoipa::path(
    get,
    path = "/api/supervisor/live",
    tag = "supervisor",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live view", body = LiveView),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 503, description = "The engine did not answer", body = ErrorBody),
    )
)]
pub async fn supervisor_live(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<LiveView>, ApiError> {
    caller.require(SUPERVISORS)?;
    let live = state.engine.live().await?;
    Ok(Json(LiveView::of(&live.snapshot)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        state: &str,
        reason: Option<&str>,
    ) -> Result<StateChange, (String, Vec<&'static str>)> {
        StateRequest {
            state: state.to_owned(),
            reason: reason.map(str::to_owned),
        }
        .change()
        .map_err(|e| match e {
            ApiError::Invalid { field, allowed, .. } => (field, allowed),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn state_bodies_map_to_changes_or_name_the_field() {
        assert_eq!(change("ready", None), Ok(StateChange::Ready));
        assert_eq!(change("end_wrap_up", None), Ok(StateChange::EndWrapUp));
        assert_eq!(
            change("not_ready", None),
            Ok(StateChange::NotReady(NotReadyReason::Requested))
        );
        assert_eq!(
            change("not_ready", Some("meal")),
            Ok(StateChange::NotReady(NotReadyReason::Meal))
        );
        let (field, allowed) = change("not_ready", Some("no_answer")).expect_err("ACD's own");
        assert_eq!(field, "reason");
        assert!(allowed.contains(&"break") && !allowed.contains(&"no_answer"));
        assert_eq!(
            change("ready", Some("break")).expect_err("reason").0,
            "reason"
        );
        assert_eq!(
            change("asleep", None).expect_err("state"),
            ("state".to_owned(), STATES.to_vec())
        );
    }
}
