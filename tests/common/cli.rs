//! Shared helpers of the command-line tests (`calls_cli`, `incidents_cli`): the built
//! binary run with a config file, call events with predictable ids, and each case run on
//! SQLite and on a fresh PostgreSQL database (`SIAGA_TEST_POSTGRES_URL`; see
//! `src/store/test_pg.rs`, which the including test declares as `test_pg`).

use crate::test_pg;
use siaga::engine::UtcTime;
use siaga::engine::record::{CallEvent, CallEventKind};
use std::path::Path;
use std::process::{Command, Output};
use tempfile::TempDir;
use uuid::Uuid;

pub const SIAGA: &str = env!("CARGO_BIN_EXE_siaga");

/// 2026-11-29T12:01:05.123Z
pub const T: i64 = 1_795_953_665_123;

pub fn ev(call: u128, n: u128, at: i64, kind: CallEventKind) -> CallEvent {
    CallEvent {
        id: Uuid::from_u128((call << 64) | n),
        call: Uuid::from_u128(call),
        at: UtcTime(at),
        kind,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `body` with a temporary directory and the URL of a database not created yet: a
/// SQLite file in that directory, then (when a server is configured: see `test_pg`) a
/// fresh, empty PostgreSQL database, dropped afterwards, also when `body` panics.
pub fn on_both(test: &str, body: impl Fn(&TempDir, &str)) {
    let dir = TempDir::new().unwrap();
    body(
        &dir,
        &format!("sqlite://{}", dir.path().join("siaga.db").display()),
    );
    let Some(server) = test_pg::server_url(test) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let name = test_pg::unique_name();
    let runtime = runtime();
    runtime.block_on(test_pg::create_database(&server, &name));
    let url = test_pg::with_database(&server, &name);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&dir, &url)));
    runtime.block_on(test_pg::drop_database(&server, &name));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub fn siaga(command: &str, config: &Path, args: &[&str]) -> Output {
    Command::new(SIAGA)
        .arg(command)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SIAGA_DATABASE_URL")
        .output()
        .unwrap()
}

pub fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}
