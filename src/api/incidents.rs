//! Classifying calls and recording what was done about them: `POST /api/calls/{id}/incident`
//! (a new incident for the call), `POST /api/calls/{id}/link` (the call is about an incident
//! already recorded), `PATCH /api/incidents/{id}`, `POST /api/incidents/{id}/handoffs` and
//! `PATCH /api/handoffs/{id}` (a handoff to an agency and what the agency reported).
//!
//! Every input is parsed against the configuration before the store sees it
//! ([`crate::store::Classification`], [`AgencyId`], [`Position`]): an unknown category,
//! subcategory, agency or method is a 422 naming the field and listing the allowed values
//! (`categories[].id`, `agencies[].id` in configured order). Unknown calls, incidents and
//! handoffs are 404; a call that belongs to another incident is 409.
//!
//! Who may write: supervisors and admins anything. An operator writes about the calls they
//! answered (`calls.operator`, or the call they are on now in the ACD's view, before its
//! `answered` event is stored) and the incidents they created or that hold one of those
//! calls; anything else is 403. An operator does not classify a colleague's call: the
//! record says who answered, and a supervisor corrects records.
//!
//! Once the store took a classification or a link, the engine is told
//! ([`EngineRequest::Classified`](super::link::EngineRequest::Classified)): an answered call
//! that drops unclassified goes on the callback worklist, a classified one does not, and
//! classifying it after it dropped closes its item (issue 6 point 4).

use super::AppState;
use super::auth::{Caller, json_body};
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use crate::engine::UtcTime;
use crate::store::{
    AgencyId, Classification, Handoff, HandoffMethod, HandoffUpdate, Incident, IncidentDetails,
    IncidentUpdate, NewHandoff, NewIncident, Position, Store,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use std::time::{SystemTime, UNIX_EPOCH};
use utoipa::ToSchema;
use uuid::Uuid;

/// The wall clock as the store records it (the API is shell code; the engine never reads
/// this).
pub(super) fn utc_now() -> UtcTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    UtcTime(ms)
}

/// The store, or 503 when siaga runs without one.
pub(super) fn store(state: &AppState) -> Result<&Store, ApiError> {
    state.store.as_ref().ok_or(ApiError::NoStore)
}

/// A path id as a UUID. Errors: 422 naming `id`.
pub(super) fn path_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "is not a UUID", &[]))
}

/// An RFC 3339 time in UTC (`2026-11-29T12:00:05Z`, fractions allowed) or `now`.
/// Errors: 422 naming `field`.
fn parse_time(field: &str, text: &str) -> Result<UtcTime, ApiError> {
    if text == "now" {
        return Ok(utc_now());
    }
    let at = humantime::parse_rfc3339(text).map_err(|_| {
        ApiError::invalid(
            field,
            "is not an RFC 3339 UTC time (2026-11-29T12:00:05Z) or \"now\"",
            &[],
        )
    })?;
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ApiError::invalid(field, "is before 1970", &[]))?
        .as_millis();
    Ok(UtcTime(i64::try_from(ms).unwrap_or(i64::MAX)))
}

/// Whether `caller` may write about call `call` (see the module docs).
///
/// Errors: 404 for an unknown call; 403 for an operator's colleague's call.
pub(super) async fn check_call(
    state: &AppState,
    caller: &Caller,
    call: Uuid,
) -> Result<(), ApiError> {
    let store = store(state)?;
    let detail = store.call_detail(call).await?;
    if caller.role != Role::Operator || detail.call.operator.as_deref() == Some(&caller.user) {
        return Ok(());
    }
    if on_call_now(state, caller, call).await? {
        return Ok(());
    }
    Err(ApiError::NotYours(format!(
        "call {call} was not answered by {}; a supervisor can change its record",
        caller.user
    )))
}

/// Whether the ACD has operator `caller` on (or ringing for) call record `call` now.
async fn on_call_now(state: &AppState, caller: &Caller, call: Uuid) -> Result<bool, ApiError> {
    let live = state.engine.live().await?;
    Ok(live
        .snapshot
        .operators
        .iter()
        .any(|o| o.id == caller.user && o.call == Some(call)))
}

/// Whether `caller` may write about `incident` (see the module docs).
///
/// Errors: 403 for an operator's colleague's incident.
async fn check_incident(
    state: &AppState,
    caller: &Caller,
    incident: &Incident,
) -> Result<(), ApiError> {
    if caller.role != Role::Operator || incident.operator.as_deref() == Some(&caller.user) {
        return Ok(());
    }
    let store = store(state)?;
    for call in &incident.calls {
        let detail = store.call_detail(*call).await?;
        if detail.call.operator.as_deref() == Some(&caller.user)
            || on_call_now(state, caller, *call).await?
        {
            return Ok(());
        }
    }
    Err(ApiError::NotYours(format!(
        "incident {} is neither {}'s nor about a call they answered",
        incident.id, caller.user
    )))
}

/// Deserializes a present field (`null` included) as `Some`, so that an absent field
/// (`#[serde(default)]`: `None`) differs from a `null` one (`Some(None)`: clear it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `POST /api/calls/{id}/incident`'s body: the classification and what the caller said.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// A `categories[].id` (`medical`, `fire`, `prank` … with the Indonesian defaults).
    #[schema(example = "fire")]
    pub category: String,
    /// One of the category's `subcategories[].id`.
    pub subcategory: Option<String>,
    /// The place as the caller describes it (at most 500 characters).
    #[schema(example = "Jl. Merdeka 12, behind the market")]
    pub location: Option<String>,
    /// WGS 84 degrees north, −90…90; with `longitude`.
    #[schema(example = -6.2)]
    pub latitude: Option<f64>,
    /// WGS 84 degrees east, −180…180; with `latitude`.
    #[schema(example = 106.8)]
    pub longitude: Option<f64>,
    /// The caller's name as given (at most 200 characters).
    pub caller_name: Option<String>,
    /// The operator's notes (at most 4000 characters).
    pub notes: Option<String>,
}

/// Classifies call `id`: a new incident holding it, created by the caller.
#[utoipa::path(
    post,
    path = "/api/calls/{id}/incident",
    tag = "incidents",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The call record id")),
    request_body = ClassifyRequest,
    responses(
        (status = 201, description = "The incident created, with the call", body = Incident),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "An operator's colleague's call", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 409, description = "The call belongs to an incident already", body = ErrorBody),
        (status = 422, description = "A field is invalid; unknown ids list the allowed values", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn classify(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let call = path_id(&id)?;
    let request = json_body::<ClassifyRequest>(&body)?;
    let incident = NewIncident {
        classification: Classification::new(
            &state.incidents,
            &request.category,
            request.subcategory.as_deref(),
        )?,
        details: IncidentDetails {
            location: request.location,
            position: Position::from_pair(request.latitude, request.longitude)?,
            caller_name: request.caller_name,
            notes: request.notes,
        },
        operator: Some(caller.user.clone()),
    };
    incident.details.check()?;
    check_call(&state, &caller, call).await?;
    let created = store(&state)?
        .create_incident(&state.node_id, call, &incident, utc_now())
        .await?;
    tracing::info!(user = %caller.user, %call, incident = %created.id, category = %created.category, "call classified");
    tell_engine(&state, call);
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /api/calls/{id}/link`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The incident the call is about.
    pub incident: Uuid,
}

/// Links call `id` to an incident already recorded (another call about the same event).
#[utoipa::path(
    post,
    path = "/api/calls/{id}/link",
    tag = "incidents",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The call record id")),
    request_body = LinkRequest,
    responses(
        (status = 200, description = "The incident, with the call among its calls", body = Incident),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "An operator's colleague's call", body = ErrorBody),
        (status = 404, description = "No such call or incident", body = ErrorBody),
        (status = 409, description = "The call belongs to another incident", body = ErrorBody),
        (status = 422, description = "The body is invalid", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Incident>, ApiError> {
    let call = path_id(&id)?;
    let request = json_body::<LinkRequest>(&body)?;
    check_call(&state, &caller, call).await?;
    let incident = store(&state)?
        .link_call(call, request.incident, Some(&caller.user), utc_now())
        .await?;
    tracing::info!(user = %caller.user, %call, incident = %incident.id, "call linked");
    tell_engine(&state, call);
    Ok(Json(incident))
}

/// Tells the engine that `call` has an incident now (the store wrote it), so that an
/// answered call dropping unclassified is not put on the callback worklist, or its item
/// closes (`engine::call::dropped`). Fire-and-forget: a busy link is only logged; the
/// worklist rebuilt at the next start checks `incident_calls`.
fn tell_engine(state: &AppState, call: Uuid) {
    if let Err(error) = state.engine.classified(call) {
        tracing::warn!(%call, %error, "the engine was not told the call is classified");
    }
}

/// `PATCH /api/incidents/{id}`'s body: only the fields present change; `null` clears an
/// optional one. `category` alone keeps no subcategory; `subcategory` alone is checked
/// against the incident's category.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentPatch {
    /// A `categories[].id`; cannot be cleared.
    pub category: Option<String>,
    /// One of the category's subcategory ids, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub subcategory: Option<Option<String>>,
    /// The place as the caller describes it, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
    /// Degrees north, or `null` (with `longitude`: both or neither).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub latitude: Option<Option<f64>>,
    /// Degrees east, or `null` (with `latitude`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub longitude: Option<Option<f64>>,
    /// The caller's name, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub caller_name: Option<Option<String>>,
    /// The whole edited notes, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

impl IncidentPatch {
    /// The store's update, checked against `state`'s configuration; `current` is the
    /// incident's category (for a subcategory given alone).
    ///
    /// Errors: 422 naming the field (unknown ids list the allowed values).
    fn update(self, state: &AppState, current: &str) -> Result<IncidentUpdate, ApiError> {
        let classification = match (&self.category, &self.subcategory) {
            (None, None) => None,
            (category, subcategory) => Some(Classification::new(
                &state.incidents,
                category.as_deref().unwrap_or(current),
                subcategory.clone().flatten().as_deref(),
            )?),
        };
        let position = Position::from_patch(self.latitude, self.longitude)?;
        let update = IncidentUpdate {
            classification,
            location: self.location,
            position,
            caller_name: self.caller_name,
            notes: self.notes,
        };
        update.check()?;
        Ok(update)
    }
}

/// Edits incident `id`: classification, location, position, caller name, notes.
#[utoipa::path(
    patch,
    path = "/api/incidents/{id}",
    tag = "incidents",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The incident id")),
    request_body = IncidentPatch,
    responses(
        (status = 200, description = "The incident as stored", body = Incident),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "An operator's colleague's incident", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 422, description = "A field is invalid; unknown ids list the allowed values", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Incident>, ApiError> {
    let id = path_id(&id)?;
    let patch = json_body::<IncidentPatch>(&body)?;
    let store = store(&state)?;
    let incident = store.incident(id).await?;
    check_incident(&state, &caller, &incident).await?;
    let update = patch.update(&state, &incident.category)?;
    let incident = store.update_incident(id, &update, utc_now()).await?;
    Ok(Json(incident))
}

/// `POST /api/incidents/{id}/handoffs`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffRequest {
    /// An `agencies[].id` (`ambulance`, `fire`, `bpbd`, `police` … as configured).
    #[schema(example = "fire")]
    pub agency: String,
    /// `call_transfer`, `phone`, `radio` or `app`.
    #[schema(example = "phone")]
    pub method: String,
    /// The agency's reference number (at most 100 characters).
    pub reference: Option<String>,
    /// When the agency was given the incident: RFC 3339 UTC or `now` (absent: now).
    pub handed_off_at: Option<String>,
}

/// Records a handoff of incident `id` to an agency.
#[utoipa::path(
    post,
    path = "/api/incidents/{id}/handoffs",
    tag = "incidents",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The incident id")),
    request_body = HandoffRequest,
    responses(
        (status = 201, description = "The handoff recorded", body = Handoff),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "An operator's colleague's incident", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 422, description = "A field is invalid; an unknown agency or method lists the allowed values", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn add_handoff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Handoff>), ApiError> {
    let id = path_id(&id)?;
    let request = json_body::<HandoffRequest>(&body)?;
    let handoff = NewHandoff {
        agency: AgencyId::new(&state.incidents, &request.agency)?,
        method: request.method.parse::<HandoffMethod>()?,
        handed_off_at: match &request.handed_off_at {
            Some(at) => parse_time("handed_off_at", at)?,
            None => utc_now(),
        },
        reference: request.reference,
        operator: Some(caller.user.clone()),
    };
    handoff.check()?;
    let store = store(&state)?;
    let incident = store.incident(id).await?;
    check_incident(&state, &caller, &incident).await?;
    let handoff = store
        .add_handoff(&state.node_id, id, &handoff, utc_now())
        .await?;
    tracing::info!(user = %caller.user, incident = %id, agency = %handoff.agency, method = %handoff.method, "handoff recorded");
    Ok((StatusCode::CREATED, Json(handoff)))
}

/// `PATCH /api/handoffs/{id}`'s body: what the agency reported. Each field present is set
/// (replacing an earlier value); times are RFC 3339 UTC or `now`, not before
/// `handed_off_at`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffPatch {
    /// The agency's reference number.
    pub reference: Option<String>,
    /// When the agency confirmed it took the incident.
    #[schema(example = "now")]
    pub acknowledged_at: Option<String>,
    /// When the agency reported it done.
    pub closed_at: Option<String>,
    /// What the agency reported (at most 2000 characters).
    pub outcome: Option<String>,
}

/// Records what the agency reported about handoff `id`.
#[utoipa::path(
    patch,
    path = "/api/handoffs/{id}",
    tag = "incidents",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The handoff id")),
    request_body = HandoffPatch,
    responses(
        (status = 200, description = "The handoff as stored", body = Handoff),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "An operator's colleague's incident", body = ErrorBody),
        (status = 404, description = "No such handoff", body = ErrorBody),
        (status = 422, description = "A field is invalid (a time before the handoff, a text too long)", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn edit_handoff(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Handoff>, ApiError> {
    let id = path_id(&id)?;
    let patch = json_body::<HandoffPatch>(&body)?;
    let time = |field: &str, value: &Option<String>| {
        value.as_deref().map(|t| parse_time(field, t)).transpose()
    };
    let update = HandoffUpdate {
        acknowledged_at: time("acknowledged_at", &patch.acknowledged_at)?,
        closed_at: time("closed_at", &patch.closed_at)?,
        reference: patch.reference,
        outcome: patch.outcome,
    };
    update.check()?;
    let store = store(&state)?;
    let handoff = store.handoff(id).await?;
    let incident = store.incident(handoff.incident_id).await?;
    check_incident(&state, &caller, &incident).await?;
    Ok(Json(store.update_handoff(id, &update, utc_now()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_or_now() {
        assert_eq!(
            parse_time("t", "2026-11-29T12:01:05.123Z").ok(),
            Some(UtcTime(1_795_953_665_123))
        );
        let before = utc_now();
        let now = parse_time("t", "now").expect("now");
        assert!(now >= before);
        for bad in ["2026-11-29", "yesterday", "2026-11-29T12:00:00+07:00", ""] {
            match parse_time("closed_at", bad) {
                Err(ApiError::Invalid { field, .. }) => assert_eq!(field, "closed_at", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let patch: IncidentPatch =
            serde_json::from_str(r#"{"notes":null,"location":"x"}"#).expect("patch");
        assert_eq!(patch.notes, Some(None));
        assert_eq!(patch.location, Some(Some("x".to_owned())));
        assert_eq!(patch.caller_name, None);
    }
}
