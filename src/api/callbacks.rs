//! Taking a callback through the API: `POST /api/callbacks/next` (issue 6 point 4). The
//! operator is the session's user; siaga rings their registered phone (From `"CALLBACK
//! <number>"`), and once it answers calls the caller back through the trunk's gateways,
//! as the `*73` feature code does (`engine::call::callback_ring`). The outcome comes later
//! on the abandoned call's timeline: `callback_ended {outcome}`.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::live::OPERATORS;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The worklist item taken: siaga rings the operator's phone.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackTaken {
    /// The abandoned call's record id: the callback's events go on its timeline.
    pub call: Uuid,
    /// The number called back.
    pub caller: String,
    /// Callbacks tried before this one without an answer.
    pub attempts: u32,
}

/// Takes the oldest item of the callback worklist nobody is calling back: siaga rings the
/// operator's phone (ring timeout `queues[].ring_timeout_s`), then calls the caller back
/// through the first trunk gateway up (`Priority: psap-callback`, RFC 7090) and bridges
/// them. The item is the operator's while it lasts; it goes back with one more attempt
/// when the phone or the caller does not answer. The operator is on call meanwhile and in
/// wrap-up after an answered callback.
#[utoipa::path(
    post,
    path = "/api/callbacks/next",
    tag = "operator",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The item is taken and the operator's phone rings; the outcome comes as callback_ended on the call's timeline", body = CallbackTaken),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No callback waiting (error not_found, reason no_callback_waiting)", body = ErrorBody),
        (status = 409, description = "Not now (error callback): reason not_registered (no phone registered), not_allowed (ringing, on a call or logged out) or unknown_operator", body = ErrorBody),
        (status = 503, description = "reason no_gateway or failed (the item was taken and failed at once, one more attempt), no_relay (no RTP ports free) or stopping; or the engine did not answer", body = ErrorBody),
    )
)]
pub async fn take_next(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<CallbackTaken>), ApiError> {
    caller.require(OPERATORS)?;
    let item = state
        .engine
        .take_callback(&caller.user)
        .await?
        .map_err(ApiError::Callback)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CallbackTaken {
            call: item.record,
            caller: item.caller,
            attempts: item.attempts,
        }),
    ))
}
