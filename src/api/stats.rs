//! The supervisors' reports over HTTP: a period's statistics (`GET /api/stats`, what
//! `siaga stats` prints: calls by category, disposition, agency and hour; answered within
//! 10/15/20 s; mean and 90th-percentile wait; abandoned share; per-operator calls and talk
//! time) and the call log as CSV (`GET /api/export.csv`, the columns of `siaga export`).
//!
//! The export streams: the first page is read before the response starts (so a database
//! failure is still a 503), then one page of [`MAX_PAGE`] calls at a time is read and sent,
//! so a year's export holds one page in memory. A failure after the first page ends the
//! body early (the client sees a truncated transfer, not a short file that looks whole).

use super::AppState;
use super::auth::Caller;
use super::call_log::parse_filter;
use super::error::{ApiError, ErrorBody};
use super::incidents::{store, utc_now};
use super::live::SUPERVISORS;
use crate::engine::UtcTime;
use crate::store::{
    CSV_COLUMNS, CallFilter, CallPage, Cursor, MAX_PAGE, Statistics, Store, StoreError,
    check_period, csv_record, parse_time,
};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use utoipa::IntoParams;

/// The period `GET /api/stats` reports when `from` is not given: the last 24 hours.
pub const DEFAULT_PERIOD_MS: i64 = 24 * 3600 * 1000;

/// `GET /api/stats`' query parameters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodQuery {
    /// The period's start (inclusive): RFC 3339 UTC, a date, or a duration back from now
    /// (`2h`, `1day`); default 24 hours before `to`.
    pub from: Option<String>,
    /// The period's end (exclusive), same forms; default now.
    pub to: Option<String>,
}

/// `GET /api/export.csv`'s query parameters: the call-log filter of `GET /api/calls`,
/// without paging.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Received at or after (as `GET /api/calls`).
    pub from: Option<String>,
    /// Received before.
    pub to: Option<String>,
    /// The incident's category.
    pub category: Option<String>,
    /// The call's disposition.
    pub disposition: Option<String>,
    /// Answered by this operator.
    pub operator: Option<String>,
    /// From this caller number.
    pub caller: Option<String>,
    /// Handed off to this agency.
    pub agency: Option<String>,
    /// Text in the incident's notes.
    pub text: Option<String>,
}

/// Statistics of the calls received in a period.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "supervisor",
    security(("bearer" = [])),
    params(PeriodQuery),
    responses(
        (status = 200, description = "The period's statistics; shares are fractions 0–1, durations ms", body = Statistics),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 422, description = "A parameter is invalid, or `to` is not after `from`", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn statistics(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Statistics>, ApiError> {
    caller.require(SUPERVISORS)?;
    const KEYS: [&str; 2] = ["from", "to"];
    if let Some(unknown) = params.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            unknown,
            "is not a parameter of this endpoint",
            &KEYS,
        ));
    }
    let now = utc_now();
    let time = |key: &'static str| {
        params
            .get(key)
            .map(|v| parse_time(v, now).map_err(|e| ApiError::invalid(key, e.to_string(), &[])))
            .transpose()
    };
    let to = time("to")?.unwrap_or(now);
    let from = time("from")?.unwrap_or(UtcTime(to.0.saturating_sub(DEFAULT_PERIOD_MS)));
    check_period(Some(from), Some(to), "from")
        .map_err(|e| ApiError::invalid("to", e.to_string(), &[]))?;
    Ok(Json(store(&state)?.statistics(from, to).await?))
}

/// The CSV of `page`'s calls, after the header line when `header` is set.
fn csv_page(page: &CallPage, header: bool) -> Bytes {
    // Invariant: into memory, so no I/O can fail, and every record has the header's 19
    // fields, so the writer has nothing to refuse.
    const INFALLIBLE: &str = "CSV into a Vec: no I/O, 19 fields per record";
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .from_writer(Vec::new());
    if header {
        writer.write_record(CSV_COLUMNS).expect(INFALLIBLE);
    }
    for row in &page.calls {
        writer.write_record(csv_record(row)).expect(INFALLIBLE);
    }
    Bytes::from(writer.into_inner().expect(INFALLIBLE))
}

/// The pages after `after`, each as CSV lines, until one comes back without a `next`; a
/// store error ends the stream with that error (the connection is cut mid-body).
fn later_pages(
    store: Store,
    filter: CallFilter,
    after: Option<Cursor>,
    page_size: u32,
) -> impl futures_util::Stream<Item = Result<Bytes, StoreError>> + Send + 'static {
    futures_util::stream::unfold(after, move |after| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let after = after?;
            match store.search_calls(&filter, Some(after), page_size).await {
                Ok(page) => Some((Ok(csv_page(&page, false)), page.next)),
                Err(error) => {
                    tracing::error!(%error, "CSV export stopped");
                    Some((Err(error), None))
                }
            }
        }
    })
}

/// The CSV of the calls matching `filter`, read `page_size` calls at a time: the first
/// page now (its failure is the caller's error), the rest as the body is sent.
///
/// Errors: the first page's [`StoreError`].
async fn csv_body(store: Store, filter: CallFilter, page_size: u32) -> Result<Body, StoreError> {
    let first = store.search_calls(&filter, None, page_size).await?;
    let head = csv_page(&first, true);
    let rest = later_pages(store, filter, first.next, page_size);
    Ok(Body::from_stream(futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, StoreError>(head) }),
        rest,
    )))
}

/// The call log as CSV (RFC 4180), newest first, with a header line.
#[utoipa::path(
    get,
    path = "/api/export.csv",
    tag = "supervisor",
    security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "The calls matching the filter: call_id, received_at, caller, called, original_called, trunk, node_id, queued_at, answered_at, ended_at, wait_s, talk_s, operator, disposition, ended_by, incident_id, category, subcategory, agencies (`;`-separated)", body = String, content_type = "text/csv"),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 422, description = "A parameter is invalid; unknown ids list the allowed values", body = ErrorBody),
        (status = 503, description = "No store, or the database failed", body = ErrorBody),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Query(mut params): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.require(SUPERVISORS)?;
    let filter = parse_filter(&state.incidents, &mut params, &[])?;
    let body = csv_body(store(&state)?.clone(), filter, MAX_PAGE).await?;
    tracing::info!(user = %caller.user, "CSV export");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"siaga-calls.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;
    use crate::engine::record::{CallEvent, CallEventKind};
    use uuid::Uuid;

    /// A body of several pages holds every call once, newest first, under one header.
    #[tokio::test]
    async fn the_export_streams_every_page() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("siaga.db").display());
        let store = Store::open(&DatabaseUrl::parse(&url).expect("url"))
            .await
            .expect("store");
        let events: Vec<CallEvent> = (1..=5_u128)
            .map(|n| CallEvent {
                id: Uuid::from_u128(n << 64),
                call: Uuid::from_u128(n),
                at: UtcTime(1_795_953_665_123 + n as i64 * 1000),
                kind: CallEventKind::Received {
                    trunk_call_id: format!("c{n}"),
                    caller: Some(format!("+62811{n}")),
                    called: "112".to_owned(),
                    original_called: None,
                    trunk: "telco".to_owned(),
                },
            })
            .collect();
        store.write_batch("n1", &events).await.expect("write");
        let body = csv_body(store.clone(), CallFilter::default(), 2)
            .await
            .expect("first page");
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("whole body");
        let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
        let ids: Vec<&str> = text
            .lines()
            .map(|l| l.split(',').next().expect("a field"))
            .collect();
        let expected: Vec<String> = std::iter::once("call_id".to_owned())
            .chain((1..=5_u128).rev().map(|n| Uuid::from_u128(n).to_string()))
            .collect();
        assert_eq!(ids, expected, "{text}");
        store.close().await;
    }
}
