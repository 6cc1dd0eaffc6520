//! The API's errors and how each is answered: a status code and a JSON body
//! `{"error": CODE, "message": TEXT, …}` ([`ErrorBody`]).
//!
//! | error | status |
//! |---|---|
//! | no token, an unknown or expired one, bad credentials | 401, `WWW-Authenticate: Bearer` |
//! | a role the endpoint does not admit | 403 |
//! | a body that is not what the endpoint takes | 422, naming the field |
//! | an incident or handoff input the store refuses ([`InputError`]) | 422, naming the field and listing the allowed values |
//! | an unknown call, incident or handoff ([`StoreError::NotFound`]) | 404 |
//! | a call that belongs to an incident already ([`StoreError::AlreadyLinked`]) | 409 |
//! | an operator writing about a call that is not theirs | 403 |
//! | no store, or the database failing | 503 |
//! | the ACD refuses the operator's command ([`AgentError`]) | 409, with the reason |
//! | a transfer of an unknown call; to an unknown agency; by another operator; that the call's state refuses ([`TransferRefusal`]) | 404; 422 naming `agency`; 403; 409 with the reason |
//! | taking a callback ([`CallbackTakeError`]): nothing waiting; the operator's phone unregistered or their state; no gateway, no relay ports, siaga stopping | 404; 409 with the reason; 503 with the reason |
//! | the engine task is busy, stopped or slow; logins over their limit | 503 |
//! | no route at that path | 404 `not_found` |
//! | a method the path does not take | 405 `method_not_allowed`, `Allow` and `allowed` listing the methods |
//! | a body over [`BODY_LIMIT`] | 413 `too_large` |
//! | what axum's extractors refuse before a handler runs (a query string that is not `key=value` UTF-8, a wrong content type …) | their status (400 `bad_request`, 415 `unsupported_media_type`, 422 `invalid`) with their text as `message` |
//!
//! The last four are axum's own answers, plain text; [`json_errors`], the router's
//! outermost middleware, rewrites every error answer that is not JSON into an
//! [`ErrorBody`], keeping its status and headers, so a client parses one shape everywhere.

use super::link::{LinkError, TransferRefusal};
use crate::config::Role;
use crate::engine::acd::AgentError;
use crate::engine::call::{CallbackTakeError, TransferError};
use crate::store::{HandoffMethod, InputError, StoreError};
use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or one that is unknown or expired.
    #[error("a valid session token is required (POST /api/login)")]
    Unauthenticated,
    /// Unknown user or wrong password: the same answer for both.
    #[error("unknown user or wrong password")]
    BadCredentials,
    /// The caller's role is not admitted.
    #[error("this needs the role {}", needs.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "))]
    Forbidden {
        /// The roles admitted.
        needs: &'static [Role],
    },
    /// The body is not what the endpoint takes.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field at fault (`body` when the body as a whole is).
        field: String,
        /// What is wrong with it.
        problem: String,
        /// The values accepted, when they are a list.
        allowed: Vec<&'static str>,
    },
    /// The ACD refused the operator's command; the state is unchanged.
    #[error("{0}")]
    Agent(AgentError),
    /// The engine task did not answer.
    #[error("{0}")]
    Engine(LinkError),
    /// The transfer of a live call was not placed.
    #[error("{0}")]
    Transfer(TransferRefusal),
    /// No callback was taken (`POST /api/callbacks/next`).
    #[error("{0}")]
    Callback(CallbackTakeError),
    /// Too many logins are being checked at once.
    #[error("too many logins at once; try again")]
    LoginBusy,
    /// An incident or handoff input the store refuses (unknown category, agency …).
    #[error("{0}")]
    Input(InputError),
    /// No such call, incident or handoff.
    #[error("{0}")]
    NotFound(StoreError),
    /// The write conflicts with what is recorded (a call linked to another incident).
    #[error("{0}")]
    Conflict(StoreError),
    /// An operator's write about a call or incident that is not theirs.
    #[error("{0}")]
    NotYours(String),
    /// siaga runs without a store (`database.url` unset in this process's setup).
    #[error("siaga runs without a call record store")]
    NoStore,
    /// The database failed (unreachable, locked, a value it cannot read); logged, not
    /// shown.
    #[error("the call record store failed; try again")]
    Database,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `invalid`, `not_found`, `conflict`,
    /// `agent_state`, `transfer`, `callback`, `unavailable`; for what axum answers before a handler
    /// runs, `method_not_allowed`, `too_large`, `bad_request`, `unsupported_media_type`
    /// (`error` for any other status).
    pub error: &'static str,
    /// A sentence for people.
    pub message: String,
    /// For `invalid`: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `invalid`: the values accepted, when they are a list; for
    /// `method_not_allowed`: the methods the path takes (as the `Allow` header).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// For `agent_state`: `unknown_operator`, `not_registered` or `not_allowed`; for
    /// `transfer`: `not_answered`, `no_transfer_uri`, `unreachable`, `no_relay`,
    /// `in_progress` or (with 503) `no_gateway`; for `callback` and for `unavailable`
    /// from `POST /api/callbacks/next`: [`CallbackTakeError::code`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl ApiError {
    /// The status code it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::NotYours(_) => StatusCode::FORBIDDEN,
            ApiError::Invalid { .. } | ApiError::Input(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Agent(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Transfer(refusal) => match refusal {
                TransferRefusal::NotYourCall => StatusCode::FORBIDDEN,
                TransferRefusal::Engine(TransferError::UnknownCall) => StatusCode::NOT_FOUND,
                TransferRefusal::Engine(TransferError::UnknownAgency { .. }) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                // No trunk gateway up for a tel: agency: the service, not the request.
                TransferRefusal::Engine(TransferError::NoGateway) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                TransferRefusal::Engine(_) => StatusCode::CONFLICT,
            },
            ApiError::Callback(error) => match error {
                CallbackTakeError::NoCallbackWaiting => StatusCode::NOT_FOUND,
                CallbackTakeError::NotRegistered | CallbackTakeError::Agent(_) => {
                    StatusCode::CONFLICT
                }
                CallbackTakeError::Stopping
                | CallbackTakeError::NoGateway
                | CallbackTakeError::NoRelay
                | CallbackTakeError::Failed => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Engine(_) | ApiError::LoginBusy | ApiError::NoStore | ApiError::Database => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// A 422 about `field`.
    pub fn invalid(field: &str, problem: impl Into<String>, allowed: &[&'static str]) -> Self {
        ApiError::Invalid {
            field: field.to_owned(),
            problem: problem.into(),
            allowed: allowed.to_vec(),
        }
    }

    fn body(&self) -> ErrorBody {
        let mut body = ErrorBody {
            error: match self {
                ApiError::Unauthenticated | ApiError::BadCredentials => "unauthorized",
                ApiError::Forbidden { .. } | ApiError::NotYours(_) => "forbidden",
                ApiError::Invalid { .. } | ApiError::Input(_) => "invalid",
                ApiError::NotFound(_) => "not_found",
                ApiError::Conflict(_) => "conflict",
                ApiError::Agent(_) => "agent_state",
                ApiError::Transfer(refusal) => match refusal {
                    TransferRefusal::NotYourCall => "forbidden",
                    TransferRefusal::Engine(TransferError::UnknownCall) => "not_found",
                    TransferRefusal::Engine(TransferError::UnknownAgency { .. }) => "invalid",
                    TransferRefusal::Engine(_) => "transfer",
                },
                ApiError::Callback(CallbackTakeError::NoCallbackWaiting) => "not_found",
                ApiError::Callback(
                    CallbackTakeError::NotRegistered | CallbackTakeError::Agent(_),
                ) => "callback",
                ApiError::Callback(_)
                | ApiError::Engine(_)
                | ApiError::LoginBusy
                | ApiError::NoStore
                | ApiError::Database => "unavailable",
            },
            message: self.to_string(),
            field: None,
            allowed: Vec::new(),
            reason: None,
        };
        match self {
            ApiError::Invalid { field, allowed, .. } => {
                body.field = Some(field.clone());
                body.allowed = allowed.iter().map(|a| (*a).to_owned()).collect();
            }
            ApiError::Input(error) => {
                body.field = Some(error.field().to_owned());
                body.allowed = match error {
                    InputError::UnknownCategory { allowed, .. }
                    | InputError::UnknownSubcategory { allowed, .. }
                    | InputError::UnknownAgency { allowed, .. } => allowed.clone(),
                    InputError::UnknownMethod { .. } => HandoffMethod::ALL
                        .iter()
                        .map(|m| m.as_str().to_owned())
                        .collect(),
                    _ => Vec::new(),
                };
            }
            ApiError::Transfer(TransferRefusal::Engine(error)) => match error {
                TransferError::UnknownAgency { allowed } => {
                    body.field = Some("agency".to_owned());
                    body.allowed = allowed.clone();
                }
                TransferError::UnknownCall => {}
                other => body.reason = Some(other.code()),
            },
            ApiError::Callback(error) => body.reason = Some(error.code()),
            ApiError::Agent(error) => {
                body.reason = Some(match error {
                    AgentError::UnknownOperator(_) => "unknown_operator",
                    AgentError::NotRegistered => "not_registered",
                    AgentError::NotAllowed { .. } => "not_allowed",
                });
            }
            _ => {}
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The largest request body the API reads, in bytes (64 KiB): an incident's longest texts
/// (notes 4000 characters, location 500, caller name 200, in UTF-8 at most 4 bytes each)
/// fit with room to spare. A larger body is a 413 before it is parsed.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Most bytes of a plain-text error answer kept as the JSON body's `message`.
const PLAIN_MESSAGE_MAX: usize = 1024;

/// The stable code of an error answer axum gives before a handler runs.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "error",
    }
}

/// Middleware: an error answer (4xx, 5xx) that is not JSON becomes an [`ErrorBody`] with
/// the same status and headers (405 keeps `Allow`, listed again as `allowed`). The
/// message is the plain text axum wrote (at most 1 KiB), or for a 404 or 405 the method
/// and path asked for. Answers that are JSON already, and successes, pass untouched (a
/// streamed CSV export is never read here).
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A body longer than the cap (none of axum's rejections is) keeps only the status text.
    let text = axum::body::to_bytes(body, PLAIN_MESSAGE_MAX)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let allowed: Vec<String> = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => format!("no route for {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED if text.is_empty() => {
            format!("{path} does not take {method}")
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
        _ => text,
    };
    let body = ErrorBody {
        error: code_of(status),
        message,
        field: None,
        allowed,
        reason: None,
    };
    // Invariant: a struct of strings always serializes.
    let json = serde_json::to_vec(&body).expect("ErrorBody serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(json))
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        ApiError::Input(error)
    }
}

/// 404, 409 and 422 for what the caller asked; 503 for the database itself (logged: the
/// client sees only that the store is unavailable).
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => ApiError::NotFound(error),
            StoreError::AlreadyLinked { .. } => ApiError::Conflict(error),
            StoreError::Invalid(input) => ApiError::Input(input),
            other => {
                tracing::error!(error = %other, "API request failed in the store");
                ApiError::Database
            }
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(error: LinkError) -> Self {
        ApiError::Engine(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error axum answers by itself (unknown path, wrong method, body over the
    /// limit, extractor rejections: 400, 415, 422) comes out as an [`ErrorBody`] with its
    /// status kept; a 405 keeps `Allow`; JSON errors and successes pass untouched.
    #[tokio::test]
    async fn axums_own_errors_are_the_json_shape() {
        use axum::extract::{DefaultBodyLimit, Path, Query};
        use axum::routing::{get, post};

        #[derive(serde::Deserialize)]
        struct Page {
            #[allow(dead_code)]
            n: u32,
        }
        let app = axum::Router::new()
            .route(
                "/json",
                post(|Json(v): Json<serde_json::Value>| async move { Json(v) }),
            )
            .route("/bytes", post(|_: axum::body::Bytes| async { "ok" }))
            .route("/query", get(|_: Query<Page>| async { "ok" }))
            .route("/path/{id}", get(|_: Path<uuid::Uuid>| async { "ok" }))
            .route(
                "/refused",
                get(|| async { ApiError::invalid("x", "is wrong", &[]) }),
            )
            .layer(DefaultBodyLimit::max(16));
        // As `Api::start` wraps the router: around it whole, so a 405 has its `Allow`.
        let app = axum::Router::new()
            .fallback_service(app)
            .layer(axum::middleware::from_fn(json_errors));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("client");
        let json = |body: &'static str| {
            client
                .post(format!("{base}/json"))
                .header("content-type", "application/json")
                .body(body)
        };
        let cases = [
            (client.get(format!("{base}/nowhere")), 404, "not_found"),
            (
                client.get(format!("{base}/json")),
                405,
                "method_not_allowed",
            ),
            (
                client.post(format!("{base}/bytes")).body("x".repeat(17)),
                413,
                "too_large",
            ),
            (json("{\"a\": \"much too long a body\"}"), 413, "too_large"),
            (
                client.post(format!("{base}/json")).body("{}"),
                415,
                "unsupported_media_type",
            ),
            (json("{"), 400, "bad_request"),
            (json("[1]").header("x", "y"), 200, ""),
            (client.get(format!("{base}/query?n=x")), 400, "bad_request"),
            (client.get(format!("{base}/path/nope")), 400, "bad_request"),
            (client.get(format!("{base}/refused")), 422, "invalid"),
        ];
        for (request, status, code) in cases {
            let response = request.send().await.expect("answer");
            assert_eq!(response.status().as_u16(), status, "{code}");
            let allow = response.headers().get("allow").cloned();
            let text = response.text().await.expect("body");
            if status == 200 {
                assert_eq!(text, "[1]");
                continue;
            }
            let body: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"));
            assert_eq!(body["error"], code, "{body}");
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{body}"
            );
            if status == 405 {
                assert_eq!(allow.expect("Allow kept"), "POST");
                assert_eq!(body["allowed"], serde_json::json!(["POST"]), "{body}");
            }
            if status == 422 {
                assert_eq!(body["field"], "x", "the handler's own body: {body}");
            }
        }
        server.abort();
    }

    /// Each transfer refusal's status, code, and field, allowed ids or reason.
    #[test]
    fn transfer_refusals_map_to_statuses_and_bodies() {
        let engine = |e: TransferError| ApiError::Transfer(TransferRefusal::Engine(e));
        let unknown = engine(TransferError::UnknownAgency {
            allowed: vec!["psc119".to_owned(), "damkar".to_owned()],
        });
        assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = unknown.body();
        assert_eq!(
            (body.error, body.field.as_deref(), body.allowed),
            (
                "invalid",
                Some("agency"),
                vec!["psc119".into(), "damkar".into()]
            )
        );
        let gone = engine(TransferError::UnknownCall);
        assert_eq!(
            (gone.status(), gone.body().error),
            (StatusCode::NOT_FOUND, "not_found")
        );
        let theirs = ApiError::Transfer(TransferRefusal::NotYourCall);
        assert_eq!(
            (theirs.status(), theirs.body().error),
            (StatusCode::FORBIDDEN, "forbidden")
        );
        for (error, reason) in [
            (TransferError::NotAnswered, "not_answered"),
            (
                TransferError::NoTransferUri("polri".into()),
                "no_transfer_uri",
            ),
            (
                TransferError::Unreachable(crate::engine::call::IpUriError::NotSip),
                "unreachable",
            ),
            (TransferError::NoRelay, "no_relay"),
            (TransferError::InProgress, "in_progress"),
        ] {
            let e = engine(error);
            let body = e.body();
            assert_eq!(
                (e.status(), body.error, body.reason),
                (StatusCode::CONFLICT, "transfer", Some(reason))
            );
        }
        // A tel: agency with no trunk gateway up: the service is unavailable.
        let e = engine(TransferError::NoGateway);
        let body = e.body();
        assert_eq!(
            (e.status(), body.error, body.reason),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "transfer",
                Some("no_gateway")
            )
        );
    }
}
