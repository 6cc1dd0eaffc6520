//! Actions on a live call: `POST /api/calls/{id}/transfer` hands the caller over to a field
//! agency by transferring the call to its `agencies[].transfer_uri` (issue 6, point 4;
//! `engine::call::transfer`). The outcome comes later on the call's timeline:
//! `transfer_answered` or `transfer_failed`.

use super::AppState;
use super::auth::{Caller, json_body};
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Roles that may transfer a call: the operator on it, or a supervisor or admin.
pub const TRANSFERRERS: &[Role] = &[Role::Operator, Role::Supervisor, Role::Admin];

/// `POST /api/calls/{id}/transfer`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// `agencies[].id` of an agency with a `transfer_uri`.
    #[schema(example = "damkar")]
    pub agency: String,
}

/// The transfer was placed: the agency's phone rings.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferPlaced {
    /// The call record id.
    pub call: Uuid,
    /// The agency rung.
    pub agency: String,
}

/// Transfers the live call to a field agency: siaga calls the agency's `transfer_uri`, the
/// operator stays with the caller while it rings (`acd.transfer_ring_timeout_s`), and when
/// the agency answers the caller talks to it and the operator's leg ends (wrap-up).
#[utoipa::path(
    post,
    path = "/api/calls/{id}/transfer",
    tag = "operator",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The call record id")),
    request_body = TransferRequest,
    responses(
        (status = 202, description = "The agency's leg is placed; the outcome comes as transfer_answered or transfer_failed on the call's timeline", body = TransferPlaced),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "An operator who is not the one on this call", body = ErrorBody),
        (status = 404, description = "No live call has this id", body = ErrorBody),
        (status = 409, description = "Not now: reason not_answered (no operator on the call), no_transfer_uri, unreachable (a URI siaga cannot call), no_relay or in_progress", body = ErrorBody),
        (status = 422, description = "An unknown agency (the allowed ids listed), a body without one, or an id that is not a UUID", body = ErrorBody),
        (status = 503, description = "The engine did not answer, or reason no_gateway: the agency's transfer_uri is a tel: URI and no trunk gateway is up", body = ErrorBody),
    )
)]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TransferPlaced>), ApiError> {
    caller.require(TRANSFERRERS)?;
    let id = super::incidents::path_id(&id)?;
    let request = json_body::<TransferRequest>(&body)?;
    let operator = (caller.role == Role::Operator).then_some(caller.user.as_str());
    state
        .engine
        .transfer(id, &request.agency, operator)
        .await?
        .map_err(ApiError::Transfer)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TransferPlaced {
            call: id,
            agency: request.agency,
        }),
    ))
}
