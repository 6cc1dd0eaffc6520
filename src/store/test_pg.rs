//! Test support: a fresh PostgreSQL database per test, so the store tests run on
//! PostgreSQL as on SQLite, in parallel. Compiled only into tests: the store's unit tests
//! (`src/store/tests.rs`) and, by `#[path]`, the integration tests that open a store
//! (`tests/calls_cli.rs`); it names only external crates so it compiles in both.
//!
//! The server comes from `SIAGA_TEST_POSTGRES_URL`, a URL of a user allowed to create
//! databases (`postgres://postgres@127.0.0.1:5432/postgres`; `sip-tests/test.sh` sets it).
//! Without it the PostgreSQL half of each test is skipped with a line on stderr, unless
//! `CI=true` or `SIAGA_TEST_POSTGRES_REQUIRED=1` (test.sh sets both variables): then a
//! missing server fails the test, since a skip there would be a check that cannot fail.
//! Each database is named `siaga_test_<pid>_<n>_<ns>`, created empty and dropped at the
//! end of its test (`WITH (FORCE)`, PostgreSQL 13 or later), also when the test panics.

#![allow(dead_code)] // each test crate uses a different subset

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable naming the server.
pub const URL_VAR: &str = "SIAGA_TEST_POSTGRES_URL";

/// The variable that makes a missing server a failure (also `CI=true`).
pub const REQUIRED_VAR: &str = "SIAGA_TEST_POSTGRES_REQUIRED";

/// The server's URL, or `None` after saying on stderr that `test` skips PostgreSQL.
///
/// Panics when the URL is missing and PostgreSQL is required (see the module docs).
pub fn server_url(test: &str) -> Option<String> {
    if let Some(url) = std::env::var(URL_VAR).ok().filter(|url| !url.is_empty()) {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let required = std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "1");
    assert!(
        !(ci || required),
        "{test}: {URL_VAR} is not set, and PostgreSQL is required here (CI=true or \
         {REQUIRED_VAR}=1): run the tests with sip-tests/test.sh, which provides one"
    );
    eprintln!("{test}: PostgreSQL half skipped: {URL_VAR} is not set");
    None
}

/// `url` with its database name replaced by `database` (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database name no other test, process or earlier run uses.
pub fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("siaga_test_{}_{n}_{ns}", std::process::id())
}

/// Runs `statement` on the server's own database (`server` as given).
async fn on_server(server: &str, statement: String) {
    let mut conn = PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR}: cannot connect to PostgreSQL: {e}"));
    sqlx::query(AssertSqlSafe(statement.clone()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
    let _ = conn.close().await;
}

/// Creates the empty database `name` on `server`.
pub async fn create_database(server: &str, name: &str) {
    on_server(server, format!("CREATE DATABASE \"{name}\"")).await;
}

/// Drops the database `name` on `server`, whoever is still connected to it.
pub async fn drop_database(server: &str, name: &str) {
    on_server(
        server,
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
}

/// Creates an empty database on `server`, runs `body` with its URL, and drops it again,
/// also when `body` panics (the panic then goes on).
pub async fn with_fresh_database<F, Fut>(server: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = unique_name();
    create_database(server, &name).await;
    let outcome = tokio::spawn(body(with_database(server, &name))).await;
    drop_database(server, &name).await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task: {error}"),
        }
    }
}
