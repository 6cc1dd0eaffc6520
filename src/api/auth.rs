//! Who is calling: API users and passwords, session tokens, roles.
//!
//! - **Users** ([`Users`]): every `[[operators]]` entry with an `api_password_hash` (role
//!   operator) and every `[[users]]` entry (supervisor or admin), from the configuration.
//! - **Passwords** are verified against their argon2id PHC hash ([`verify`]); the hash
//!   compare is constant-time (the `password-hash` crate's `Output`). An unknown user is
//!   checked against a decoy hash, so both failures take the same time and draw the same
//!   401. Verifying costs ~19 MiB and tens of milliseconds of CPU, so at most
//!   [`LOGIN_CONCURRENCY`] run at once, on the blocking pool; a login that waits longer
//!   than [`LOGIN_WAIT`] for its turn draws 503 (the engine's core is never starved).
//! - **Sessions** ([`Sessions`]): `POST /api/login` returns an opaque token of 256 random
//!   bits (hex). Sessions are held **in memory only**: a restart logs everyone out. The
//!   table is keyed by the token's SHA-256, so a lookup reveals nothing of a token through
//!   timing and a memory dump holds no usable token. A session expires `http.session_ttl_s`
//!   after login; at most [`MAX_SESSIONS`] are held, the one closest to expiry making room.
//! - **Roles**: each handler names the roles it admits ([`Caller::require`]); no token is
//!   401, another role 403.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::config::{Config, PasswordHash, Role};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::{Json, body::Bytes};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use utoipa::ToSchema;

/// Password checks that may run at once.
pub const LOGIN_CONCURRENCY: usize = 1;

/// How long a login may wait for its turn to be checked.
pub const LOGIN_WAIT: Duration = Duration::from_secs(10);

/// Sessions held at most.
pub const MAX_SESSIONS: usize = 4096;

/// An API user as the configuration gives them.
#[derive(Clone, Debug)]
pub struct User {
    /// The login name (`operators[].id` or `users[].id`).
    pub id: String,
    /// The display name, when configured.
    pub name: Option<String>,
    /// The role.
    pub role: Role,
    hash: PasswordHash,
}

/// The API's users, and the decoy hash an unknown name is checked against.
#[derive(Debug)]
pub struct Users {
    by_id: HashMap<String, User>,
    decoy: PasswordHash,
}

impl Users {
    /// The users `config` names (see the module docs).
    pub fn from_config(config: &Config) -> Users {
        let operators = config.operators.iter().filter_map(|o| {
            let hash = o.api_password_hash.clone()?;
            Some(User {
                id: o.id.clone(),
                name: o.name.clone(),
                role: Role::Operator,
                hash,
            })
        });
        let others = config.users.iter().map(|u| User {
            id: u.id.clone(),
            name: u.name.clone(),
            role: u.role,
            hash: u.password_hash.clone(),
        });
        let by_id = operators.chain(others).map(|u| (u.id.clone(), u)).collect();
        // A hash of a random password with the default parameters: checking an unknown
        // name against it costs what checking a real user costs.
        let decoy: [u8; 16] = rand::rng().random();
        let decoy = PasswordHash::parse(&hash_password(&hex::encode(decoy)))
            .expect("hash_password writes an argon2id PHC string");
        Users { by_id, decoy }
    }

    /// The user `id`, if configured.
    pub fn get(&self, id: &str) -> Option<&User> {
        self.by_id.get(id)
    }

    /// The user `id` if `password` is theirs. Blocking (argon2): call on the blocking pool.
    pub fn check(&self, id: &str, password: &str) -> Option<User> {
        match self.by_id.get(id) {
            Some(user) => verify(&user.hash, password).then(|| user.clone()),
            None => {
                let _ = verify(&self.decoy, password);
                None
            }
        }
    }
}

/// An argon2id hash of `password` with a fresh 128-bit salt and the crate's default
/// parameters (m = 19456 KiB, t = 2, p = 1: OWASP's recommendation), as a PHC string.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::rng().random();
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("default argon2id parameters accept any password")
        .to_string()
}

/// Whether `password` matches `hash` (constant-time compare of the derived key), with the
/// parameters the hash carries.
pub fn verify(hash: &PasswordHash, password: &str) -> bool {
    argon2::PasswordHash::new(hash.as_str()).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A logged-in session.
#[derive(Clone, Debug)]
struct Session {
    user: String,
    role: Role,
    expires: Instant,
}

/// The session table (in memory; see the module docs).
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    // A std Mutex: every section is a map lookup or insert, never held across an await.
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// An empty table whose sessions last `ttl`.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `user`: its token (64 hex digits).
    pub fn open(&self, user: &str, role: Role) -> String {
        let token: [u8; 32] = rand::rng().random();
        let now = Instant::now();
        let mut table = self.table.lock().expect("no panic while the lock is held");
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| s.expires > now);
        }
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(
            key(&hex::encode(token)),
            Session {
                user: user.to_owned(),
                role,
                expires: now + self.ttl,
            },
        );
        hex::encode(token)
    }

    /// The session of `token` when it is open and not expired (an expired one is
    /// removed): the user, their role, and when it expires.
    fn find(&self, token: &str) -> Option<(Session, [u8; 32])> {
        let k = key(token);
        let mut table = self.table.lock().expect("no panic while the lock is held");
        match table.get(&k) {
            Some(s) if s.expires > Instant::now() => Some((s.clone(), k)),
            Some(_) => {
                table.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the session keyed `key`.
    fn close(&self, key: &[u8; 32]) {
        self.table
            .lock()
            .expect("no panic while the lock is held")
            .remove(key);
    }

    /// Sessions held (expired ones not yet removed included).
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .expect("no panic while the lock is held")
            .len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The authenticated caller of a request (an extractor: no valid bearer token → 401).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user's id.
    pub user: String,
    /// Their role.
    pub role: Role,
    expires: Instant,
    key: [u8; 32],
}

impl Caller {
    /// `Ok` when the caller's role is one of `roles`, else 403.
    pub fn require(&self, roles: &'static [Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden { needs: roles })
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Unauthenticated)?;
        let (session, key) = state
            .sessions
            .find(token)
            .ok_or(ApiError::Unauthenticated)?;
        Ok(Caller {
            user: session.user,
            role: session.role,
            expires: session.expires,
            key,
        })
    }
}

/// `POST /api/login`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// `operators[].id` or `users[].id`.
    pub username: String,
    /// The API password (not the SIP digest password).
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token: send `Authorization: Bearer TOKEN`.
    pub token: String,
    /// Seconds until it expires (`http.session_ttl_s`).
    pub expires_in_s: u64,
    /// The user's id.
    pub user: String,
    /// `operator`, `supervisor` or `admin`.
    pub role: String,
}

/// Parses a JSON body into `T`, every failure a 422 naming the field
/// (`serde_path_to_error`'s path; `body` when the body as a whole is wrong).
pub fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A missing or unknown field's name is only in the message ("missing field
        // `state`", "unknown field `x`, expected …"), the path being the object's.
        let text = inner.to_string();
        let missing = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|prefix| text.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let field = match (missing, path.as_str()) {
            // Not JSON at all: the path is unknown ("?").
            _ if !inner.is_data() => "body".to_owned(),
            (Some(name), _) => name,
            (None, "." | "" | "?") => "body".to_owned(),
            (None, path) => path.to_owned(),
        };
        ApiError::invalid(&field, inner.to_string(), &[])
    })
}

/// Log in: a session token for the user's credentials.
#[utoipa::path(
    post,
    path = "/api/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Unknown user or wrong password (one answer for both)", body = ErrorBody),
        (status = 422, description = "The body is not {username, password}", body = ErrorBody),
        (status = 503, description = "Too many logins being checked at once", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<LoginResponse>, ApiError> {
    let request: LoginRequest = json_body(&body)?;
    let _turn = tokio::time::timeout(LOGIN_WAIT, state.login_gate.acquire())
        .await
        .map_err(|_| ApiError::LoginBusy)?
        .map_err(|_| ApiError::LoginBusy)?;
    let users = Arc::clone(&state.users);
    let LoginRequest { username, password } = request;
    let checked = tokio::task::spawn_blocking(move || users.check(&username, &password))
        .await
        .map_err(|_| ApiError::LoginBusy)?;
    let Some(user) = checked else {
        tracing::info!("API login refused");
        return Err(ApiError::BadCredentials);
    };
    let token = state.sessions.open(&user.id, user.role);
    tracing::info!(user = %user.id, role = %user.role, "API login");
    Ok(Json(LoginResponse {
        token,
        expires_in_s: state.sessions.ttl().as_secs(),
        user: user.id,
        role: user.role.as_str().to_owned(),
    }))
}

/// Log out: the token stops working.
#[utoipa::path(
    post,
    path = "/api/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "No valid session token", body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> impl IntoResponse {
    state.sessions.close(&caller.key);
    tracing::info!(user = %caller.user, "API logout");
    StatusCode::NO_CONTENT
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user's id.
    pub user: String,
    /// The display name, when configured.
    pub name: Option<String>,
    /// `operator`, `supervisor` or `admin`.
    pub role: String,
    /// Seconds until the session expires.
    pub session_expires_in_s: u64,
    /// For an operator: their agent state now.
    pub agent: Option<super::live::OperatorView>,
}

/// The caller's identity, role and (operators) agent state.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 503, description = "The engine did not answer", body = ErrorBody),
    )
)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let agent = if caller.role == Role::Operator {
        let live = state.engine.live().await?;
        live.snapshot
            .operators
            .iter()
            .find(|o| o.id == caller.user)
            .map(super::live::OperatorView::of)
    } else {
        None
    };
    let name = state.users.get(&caller.user).and_then(|u| u.name.clone());
    Ok(Json(Me {
        name,
        role: caller.role.as_str().to_owned(),
        session_expires_in_s: caller
            .expires
            .saturating_duration_since(Instant::now())
            .as_secs(),
        user: caller.user,
        agent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = PasswordHash::parse(&hash_password("correct horse")).expect("argon2id PHC");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&hash, "correct horse"));
        assert!(!verify(&hash, "correct horse "));
        assert!(!verify(&hash, ""));
        // A fresh salt each time.
        assert_ne!(hash_password("x"), hash_password("x"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_lasts_its_ttl_and_ends_at_logout() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let a = sessions.open("1001", Role::Operator);
        let b = sessions.open("sup", Role::Supervisor);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let (s, key_a) = sessions.find(&a).expect("open");
        assert_eq!((s.user.as_str(), s.role), ("1001", Role::Operator));
        assert!(sessions.find("not-a-token").is_none());
        sessions.close(&key_a);
        assert!(sessions.find(&a).is_none(), "logged out");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(sessions.find(&b).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(sessions.find(&b).is_none(), "expired at its ttl");
        assert!(
            sessions.is_empty(),
            "an expired session is removed when seen"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_drops_the_session_closest_to_expiry() {
        let sessions = Sessions::new(Duration::from_secs(600));
        let first = sessions.open("u0", Role::Admin);
        tokio::time::advance(Duration::from_millis(1)).await;
        for i in 1..MAX_SESSIONS {
            sessions.open(&format!("u{i}"), Role::Admin);
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let newest = sessions.open("late", Role::Admin);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.find(&first).is_none(), "the oldest made room");
        assert!(sessions.find(&newest).is_some());
    }

    #[test]
    fn bodies_name_the_field_at_fault() {
        let field = |text: &str| match json_body::<LoginRequest>(&Bytes::from(text.to_owned())) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(field(r#"{"username":"a"}"#), "password");
        assert_eq!(field(r#"{"username":1,"password":"p"}"#), "username");
        assert_eq!(field(r#"{"username":"a","password":"p","x":1}"#), "x");
        assert_eq!(field("not json"), "body");
    }
}
