//! The call log over HTTP: an operator's current call with the caller's recent history
//! (`GET /api/me/call`), the supervisors' search of the log (`GET /api/calls`, newest first,
//! keyset pages) and a call's detail (`GET /api/calls/{id}`: timeline, incident, handoffs),
//! and the callback worklist (`GET /api/callbacks`).
//!
//! The search's query parameters are [`CallQuery`]'s: each is parsed and checked (category
//! and agency against the configuration, disposition against the dispositions siaga
//! records, times as `siaga calls --since` takes them) and becomes a bound parameter of the
//! store's one fixed query ([`crate::store::CallFilter`]); an unknown parameter is a 422
//! listing the known ones.

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::incidents::{path_id, store, utc_now};
use super::live::{OPERATORS, SUPERVISORS};
use crate::config::IncidentsConfig;
use crate::engine::UtcTime;
use crate::engine::record::Disposition;
use crate::store::{
    CallDetail, CallFilter, CallPage, Cursor, Incident, check_period, parse_limit, parse_time,
    rfc3339_millis,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The dispositions a call can be searched by (`calls.disposition`).
pub const DISPOSITIONS: [&str; 6] = [
    Disposition::Answered.as_str(),
    Disposition::AbandonedInQueue.as_str(),
    Disposition::AbandonedWhileRinging.as_str(),
    Disposition::Failed.as_str(),
    Disposition::Interrupted.as_str(),
    Disposition::Overflowed.as_str(),
];

/// Calls shown on a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;

/// How far back `GET /api/me/call` lists the caller's previous calls, in ms (24 h).
pub const PREVIOUS_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Longest free-text filter value (operator id, caller number, notes text), in characters.
const FILTER_MAX: usize = 200;

/// The filter parameters of `GET /api/calls` and `GET /api/export.csv`.
const FILTER_KEYS: [&str; 8] = [
    "from",
    "to",
    "category",
    "disposition",
    "operator",
    "caller",
    "agency",
    "text",
];

/// `GET /api/calls`' query parameters (documentation; the handler parses them from the
/// query string so that each failure is a 422 naming its parameter).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Received at or after: RFC 3339 UTC (`2026-11-29T12:00:00Z`), a date
    /// (`2026-11-29`), or a duration back from now (`2h`, `1day`).
    pub from: Option<String>,
    /// Received before (same forms as `from`).
    pub to: Option<String>,
    /// The incident's category (`categories[].id`).
    pub category: Option<String>,
    /// `answered`, `abandoned_in_queue`, `abandoned_while_ringing`, `failed`,
    /// `interrupted`, `overflowed`.
    pub disposition: Option<String>,
    /// Answered by this operator (`operators[].id`).
    pub operator: Option<String>,
    /// From this caller number, exactly as stored (`+6281234567890`).
    pub caller: Option<String>,
    /// The incident was handed off to this agency (`agencies[].id`).
    pub agency: Option<String>,
    /// Text in the incident's notes, case-insensitively.
    pub text: Option<String>,
    /// The previous page's `next`.
    pub cursor: Option<String>,
    /// Calls per page, 1–1000 (default 50).
    pub limit: Option<u32>,
}

/// Parses the filter parameters of `params` (removing them); `extra` are the other
/// parameters the endpoint takes, left in `params`. The CLI (`siaga calls`, `siaga
/// export`) checks its filter flags with it too.
///
/// Errors: 422 naming the parameter: an unknown one (listing the known ones), a time not
/// understood, `to` not after `from`, an unknown category, disposition or agency (listing
/// the allowed values), a text longer than 200 characters.
pub fn parse_filter(
    incidents: &IncidentsConfig,
    params: &mut BTreeMap<String, String>,
    extra: &[&'static str],
) -> Result<CallFilter, ApiError> {
    if let Some(unknown) = params
        .keys()
        .find(|k| !FILTER_KEYS.contains(&k.as_str()) && !extra.contains(&k.as_str()))
    {
        let known: Vec<&'static str> = FILTER_KEYS.iter().chain(extra).copied().collect();
        return Err(ApiError::invalid(
            unknown,
            "is not a parameter of this endpoint",
            &known,
        ));
    }
    let now = utc_now();
    let mut take = |key: &'static str| -> Result<Option<String>, ApiError> {
        match params.remove(key) {
            Some(v) if v.chars().count() > FILTER_MAX => Err(ApiError::invalid(
                key,
                format!("is longer than {FILTER_MAX} characters"),
                &[],
            )),
            Some(v) if v.is_empty() => Err(ApiError::invalid(key, "is empty", &[])),
            other => Ok(other),
        }
    };
    let time = |key: &'static str, value: Option<String>| {
        value
            .map(|v| parse_time(&v, now).map_err(|e| ApiError::invalid(key, e.to_string(), &[])))
            .transpose()
    };
    let from = time("from", take("from")?)?;
    let to = time("to", take("to")?)?;
    check_period(from, to, "from").map_err(|e| ApiError::invalid("to", e.to_string(), &[]))?;
    let category = take("category")?;
    if let Some(id) = &category {
        crate::store::Classification::new(incidents, id, None)?;
    }
    let agency = take("agency")?;
    if let Some(id) = &agency {
        crate::store::AgencyId::new(incidents, id)?;
    }
    let disposition = take("disposition")?;
    if let Some(d) = &disposition
        && !DISPOSITIONS.contains(&d.as_str())
    {
        return Err(ApiError::invalid(
            "disposition",
            "is not a disposition",
            &DISPOSITIONS,
        ));
    }
    Ok(CallFilter {
        from,
        to,
        category,
        disposition,
        operator: take("operator")?,
        caller: take("caller")?,
        agency,
        text: take("text")?,
    })
}

/// Searches the call log, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/calls",
    tag = "supervisor",
    security(("bearer" = [])),
    params(CallQuery),
    responses(
        (status = 200, description = "A page of calls; `next` is the cursor of the page after", body = CallPage),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 422, description = "A parameter is invalid; unknown ids list the allowed values", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    Query(mut params): Query<BTreeMap<String, String>>,
) -> Result<Json<CallPage>, ApiError> {
    caller.require(SUPERVISORS)?;
    let filter = parse_filter(&state.incidents, &mut params, &["cursor", "limit"])?;
    let after = params
        .remove("cursor")
        .map(|c| {
            c.parse::<Cursor>()
                .map_err(|e| ApiError::invalid("cursor", e.to_string(), &[]))
        })
        .transpose()?;
    let limit = match params.remove("limit") {
        None => DEFAULT_PAGE,
        Some(l) => parse_limit(&l).map_err(|e| ApiError::invalid("limit", e.to_string(), &[]))?,
    };
    Ok(Json(
        store(&state)?.search_calls(&filter, after, limit).await?,
    ))
}

/// A call with its timeline, incident and handoffs.
#[utoipa::path(
    get,
    path = "/api/calls/{id}",
    tag = "supervisor",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The call record id")),
    responses(
        (status = 200, description = "The call's summary, events in order, incident with handoffs", body = CallDetail),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CallDetail>, ApiError> {
    caller.require(SUPERVISORS)?;
    let id = path_id(&id)?;
    Ok(Json(store(&state)?.call_detail(id).await?))
}

/// One of the caller's earlier calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviousCall {
    /// The call record id.
    pub call: Uuid,
    /// When it arrived (RFC 3339 UTC).
    pub received_at: String,
    /// Its outcome (`answered`, `abandoned_in_queue` …), `null` while live.
    pub disposition: Option<String>,
    /// Its incident's category, when classified.
    pub category: Option<String>,
    /// Its incident's subcategory.
    pub subcategory: Option<String>,
    /// Its incident.
    pub incident_id: Option<Uuid>,
}

/// The call an operator is ringing for or talking on.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentCall {
    /// The call record id.
    pub call: Uuid,
    /// `offered` (ringing) or `answered`.
    pub stage: String,
    /// The caller's number (ANI), when known. Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub caller: Option<String>,
    /// The number or URN dialled (`112`, `urn:service:sos`), once the store has the call.
    /// Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub called: Option<String>,
    /// The caller's previous call was abandoned or dropped recently (`acd.repeat_window_s`).
    pub repeat: bool,
    /// An operator's callback to an abandoned caller.
    pub callback: bool,
    /// The incident, once the call is classified or linked.
    pub incident: Option<Incident>,
    /// The caller's other calls of the last 24 hours, newest first (at most 50).
    pub previous: Vec<PreviousCall>,
}

/// `GET /api/me/call`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyCall {
    /// The current call; `null` when the operator is on none.
    pub call: Option<CurrentCall>,
}

/// The operator's current call: who calls, repeat flag, the caller's last 24 hours.
#[utoipa::path(
    get,
    path = "/api/me/call",
    tag = "operator",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The current call, or `{\"call\": null}`", body = MyCall),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 503, description = "The engine did not answer, or the database failed", body = ErrorBody),
    )
)]
pub async fn my_call(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MyCall>, ApiError> {
    caller.require(OPERATORS)?;
    let live = state.engine.live().await?;
    let Some(record) = live
        .snapshot
        .operators
        .iter()
        .find(|o| o.id == caller.user)
        .and_then(|o| o.call)
    else {
        return Ok(Json(MyCall { call: None }));
    };
    let in_progress = live
        .snapshot
        .in_progress
        .iter()
        .find(|c| c.record == record);
    let mut current = CurrentCall {
        call: record,
        stage: in_progress
            .map_or("answered", |c| c.stage.as_str())
            .to_owned(),
        caller: in_progress.and_then(|c| c.caller.clone()),
        called: None,
        repeat: in_progress.is_some_and(|c| c.repeat),
        callback: in_progress.is_some_and(|c| c.callback),
        incident: None,
        previous: Vec::new(),
    };
    if let Some(store) = &state.store {
        // The store's writer may not have the call yet, the moment it rings.
        match store.call_detail(record).await {
            Ok(detail) => {
                current.called = Some(detail.call.called);
                current.incident = detail.incident;
                current.caller = current.caller.or(detail.call.caller);
            }
            Err(crate::store::StoreError::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        if let Some(number) = &current.caller {
            let now = utc_now();
            let filter = CallFilter {
                caller: Some(number.clone()),
                from: Some(UtcTime(now.0.saturating_sub(PREVIOUS_WINDOW_MS))),
                to: Some(UtcTime(now.0.saturating_add(1))),
                ..CallFilter::default()
            };
            let page = store.search_calls(&filter, None, 51).await?;
            current.previous = page
                .calls
                .into_iter()
                .filter(|row| row.call.id != record)
                .take(50)
                .map(|row| PreviousCall {
                    call: row.call.id,
                    received_at: rfc3339_millis(row.call.received_at),
                    disposition: row.call.disposition,
                    category: row.category,
                    subcategory: row.subcategory,
                    incident_id: row.incident_id,
                })
                .collect();
        }
    }
    Ok(Json(MyCall {
        call: Some(current),
    }))
}

/// An item of the callback worklist.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackView {
    /// The call's record id.
    pub call: Uuid,
    /// The number to call back. Untrusted signalled text: exactly as the trunk signalled it, so it may hold control or bidi-control characters (U+202A–U+202E, U+2066–U+2069) and be long; render it as plain text, escaped.
    pub caller: String,
    /// When the call arrived (RFC 3339 UTC).
    pub received_at: String,
    /// How long the call lasted before the caller hung up, in ms (the wait, for an
    /// abandoned call).
    pub waited_ms: u64,
    /// Why it is listed: `abandoned_in_queue`, `abandoned_while_ringing`, or
    /// `dropped_unclassified` (answered, then dropped by the caller's side before it was
    /// classified; classifying or linking the call closes the item).
    pub reason: String,
    /// Callbacks tried so far without an answer.
    pub attempts: u32,
    /// The operator calling back now, if any.
    pub taken_by: Option<String>,
}

/// The callback worklist (RFC 7090), oldest first. An operator takes the next item by
/// dialling the `next_callback` feature code (`*73`).
#[utoipa::path(
    get,
    path = "/api/callbacks",
    tag = "operator",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The worklist, oldest first", body = [CallbackView]),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 503, description = "The engine did not answer", body = ErrorBody),
    )
)]
pub async fn callbacks(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<CallbackView>>, ApiError> {
    let items = state.engine.callbacks().await?;
    Ok(Json(
        items
            .into_iter()
            .map(|item| CallbackView {
                call: item.record,
                caller: item.caller,
                received_at: rfc3339_millis(item.at),
                waited_ms: u64::try_from(item.waited.as_millis()).unwrap_or(u64::MAX),
                reason: item.reason,
                attempts: item.attempts,
                taken_by: item.taken_by,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn incidents() -> IncidentsConfig {
        let text = "[node]\nid = \"t\"\n[sip]\ndomains = [\"x.test\"]\n\
                    [trunk]\nsources = [\"127.0.0.1\"]\n";
        Config::from_toml(text, |_| None).expect("config").incidents
    }

    fn filter(query: &[(&str, &str)]) -> Result<CallFilter, (String, Vec<String>)> {
        let mut params: BTreeMap<String, String> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_filter(&incidents(), &mut params, &["limit"]).map_err(|e| match e {
            ApiError::Invalid { field, allowed, .. } => {
                (field, allowed.iter().map(|a| (*a).to_owned()).collect())
            }
            ApiError::Input(input) => (input.field().to_owned(), Vec::new()),
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn filter_parameters_are_parsed_and_checked() {
        let parsed = filter(&[
            ("from", "2026-11-29T12:00:00Z"),
            ("category", "fire"),
            ("agency", "damkar"),
            ("disposition", "answered"),
            ("text", "50%"),
            ("limit", "10"),
        ])
        .expect("valid");
        assert_eq!(parsed.from, Some(UtcTime(1_795_953_600_000)));
        assert_eq!(parsed.to, None);
        assert_eq!(parsed.category.as_deref(), Some("fire"));
        assert_eq!(parsed.agency.as_deref(), Some("damkar"));
        assert_eq!(parsed.text.as_deref(), Some("50%"));
        assert_eq!(filter(&[]).expect("none"), CallFilter::default());
        assert_eq!(filter(&[("category", "flood")]).unwrap_err().0, "category");
        assert_eq!(filter(&[("agency", "army")]).unwrap_err().0, "agency");
        assert_eq!(
            filter(&[("disposition", "lost")]).unwrap_err(),
            (
                "disposition".to_owned(),
                DISPOSITIONS.map(str::to_owned).to_vec()
            )
        );
        assert_eq!(filter(&[("from", "someday")]).unwrap_err().0, "from");
        assert_eq!(
            filter(&[("from", "2026-11-29"), ("to", "2026-11-28")])
                .unwrap_err()
                .0,
            "to"
        );
        assert_eq!(filter(&[("to", "now")]).expect("now").from, None);
        assert_eq!(filter(&[("caller", "")]).unwrap_err().0, "caller");
        assert_eq!(
            filter(&[("text", &"x".repeat(FILTER_MAX + 1))])
                .unwrap_err()
                .0,
            "text"
        );
        let (field, known) = filter(&[("sort", "asc")]).unwrap_err();
        assert_eq!(field, "sort");
        assert!(known.contains(&"limit".to_owned()) && known.contains(&"text".to_owned()));
    }

    #[test]
    fn dispositions_are_the_recorded_ones() {
        assert_eq!(
            DISPOSITIONS,
            [
                "answered",
                "abandoned_in_queue",
                "abandoned_while_ringing",
                "failed",
                "interrupted",
                "overflowed"
            ]
        );
    }

    /// The document names the bodies the handlers answer with, not bare objects.
    #[test]
    fn the_openapi_document_has_the_record_schemas() {
        let doc = serde_json::to_value(crate::api::openapi()).expect("json");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for name in [
            "Incident",
            "Handoff",
            "HandoffMethod",
            "CallPage",
            "CallLogRow",
            "CallDetail",
            "CallRow",
            "EventRow",
            "Statistics",
            "AnswerTimes",
            "ClassifyRequest",
            "IncidentPatch",
            "HandoffRequest",
            "HandoffPatch",
            "LinkRequest",
            "MyCall",
            "CallbackView",
        ] {
            assert!(schemas.contains_key(name), "{name} in {:?}", schemas.keys());
        }
        // Signalled text is documented as untrusted wherever the API shows it.
        for (schema, field) in [
            ("CallRow", "caller"),
            ("CallRow", "called"),
            ("CallRow", "original_called"),
            ("CurrentCall", "caller"),
            ("CallbackView", "caller"),
            ("WaitingView", "caller"),
            ("CallView", "caller"),
        ] {
            let description = schemas[schema]["properties"][field]["description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                description.contains("Untrusted signalled text"),
                "{schema}.{field}: {description:?}"
            );
        }
        let received = &schemas["CallRow"]["properties"]["received_at"];
        assert_eq!(received["format"], "date-time", "{received}");
        let search = &doc["paths"]["/api/calls"]["get"]["parameters"];
        let names: Vec<&str> = search
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            names,
            [
                "from",
                "to",
                "category",
                "disposition",
                "operator",
                "caller",
                "agency",
                "text",
                "cursor",
                "limit"
            ]
        );
    }
}
