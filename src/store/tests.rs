//! Store and writer tests, each run on both backends: on a SQLite file in a temporary
//! directory (`NAME::sqlite`) and on a fresh PostgreSQL database (`NAME::postgres`, from
//! `SIAGA_TEST_POSTGRES_URL`; see [`test_pg`]). A few cases are one backend's own (file
//! creation, in-memory SQLite, creating a missing PostgreSQL database).

use super::*;
use crate::engine::record::{
    AgentEvent, CallEvent, CallEventKind, CallbackOutcome, Disposition, Party,
};
use std::future::Future;
use tempfile::TempDir;

fn url_in(dir: &TempDir, name: &str) -> DatabaseUrl {
    let path = dir.path().join(name);
    DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("a sqlite URL")
}

async fn open_temp() -> (TempDir, Store) {
    let dir = TempDir::new().expect("a temporary directory");
    let store = Store::open(&url_in(&dir, "db/siaga.db"))
        .await
        .expect("the store opens");
    (dir, store)
}

/// Runs `body` with the URL of a fresh, empty PostgreSQL database, dropped afterwards
/// (nothing when no server is configured and none is required: see [`test_pg`]).
async fn on_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(DatabaseUrl) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = test_pg::server_url(test) else {
        return;
    };
    test_pg::with_fresh_database(&server, |url| {
        body(DatabaseUrl::parse(&url).expect("a postgres URL"))
    })
    .await;
}

/// Runs `body` with a store opened (created and migrated) on a fresh PostgreSQL
/// database.
async fn on_postgres_store<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Store) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_postgres(test, |url| async move {
        let store = Store::open(&url).await.expect("the store opens");
        body(store.clone()).await;
        store.close().await;
    })
    .await;
}

/// Each `async fn NAME(store: Store)` as two tests, `NAME::sqlite` and `NAME::postgres`,
/// each on a store of its own, created and migrated.
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, store) = super::open_temp().await;
                super::$name(store).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::on_postgres_store(stringify!($name), super::$name).await;
            }
        }
    )+};
}

/// Each `async fn NAME(url: DatabaseUrl)` as two tests, `NAME::sqlite` and
/// `NAME::postgres`, each given the URL of a database not opened yet (a file path in an
/// empty directory; an empty PostgreSQL database).
macro_rules! url_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::TempDir::new().expect("a temporary directory");
                super::$name(super::url_in(&dir, "nested/dir/siaga.db")).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::on_postgres(stringify!($name), super::$name).await;
            }
        }
    )+};
}

url_tests!(
    opening_twice_migrates_once_and_keeps_records,
    a_schema_1_database_gains_original_called,
);

store_tests!(
    a_call_in_one_batch_gives_its_summary_and_timeline,
    events_split_over_batches_with_duplicates_give_the_same_row,
    a_received_event_written_last_still_completes_the_row,
    rewriting_an_event_does_not_apply_it_again,
    abandoned_calls_have_no_answer_fields,
    recent_calls_are_newest_first_limited_and_since,
    the_writer_takes_10k_events_through_a_small_queue_without_loss,
    a_dropped_sink_hands_its_backlog_over_before_shutdown_returns,
    the_writer_holds_events_while_the_database_fails_and_writes_them_after,
    shutdown_gives_up_on_a_dead_database_after_the_grace_period,
    shutdown_gives_up_on_a_sink_never_closed_after_the_grace_period,
    agent_events_round_trip_in_order,
    agent_events_written_twice_are_stored_once,
    the_writer_stores_agent_events_with_call_events_and_flushes_them_at_shutdown,
    the_writer_holds_agent_events_while_their_table_is_gone,
    the_callback_worklist_keeps_open_abandoned_calls_oldest_first,
    an_overflowed_call_is_recorded_as_such,
    a_nul_in_signalled_text_is_stored_as_a_replacement_character,
    ping_answers_while_the_database_does_and_fails_once_it_is_closed,
);

/// Event ids that say which call and which event they are, for readable failures.
fn ev(call: u128, n: u128, at: i64, kind: CallEventKind) -> CallEvent {
    CallEvent {
        id: Uuid::from_u128((call << 64) | n),
        call: Uuid::from_u128(call),
        at: UtcTime(at),
        kind,
    }
}

fn received(call: u128, at: i64, caller: Option<&str>) -> CallEvent {
    ev(
        call,
        0,
        at,
        CallEventKind::Received {
            trunk_call_id: format!("trunk-{call}@telco"),
            caller: caller.map(str::to_owned),
            called: "112".to_owned(),
            original_called: None,
            trunk: "telco".to_owned(),
        },
    )
}

/// `received`, for a call diverted to siaga from `first` (History-Info or Diversion).
fn received_diverted(call: u128, at: i64, caller: Option<&str>, first: &str) -> CallEvent {
    let mut event = received(call, at, caller);
    if let CallEventKind::Received {
        original_called, ..
    } = &mut event.kind
    {
        *original_called = Some(first.to_owned());
    }
    event
}

/// Event 1 of `call`: it entered the default queue at `at`, priority 0, no skills.
fn queued(call: u128, at: i64) -> CallEvent {
    ev(
        call,
        1,
        at,
        CallEventKind::Queued {
            queue: "default".into(),
            priority: 0,
            repeat: false,
            skills: vec![],
        },
    )
}

fn op(name: &str) -> String {
    name.to_owned()
}

/// An answered call, diverted to siaga from 110: received at `t`, queued +100 ms, op-1 rung +200 and not answering,
/// op-2 rung +15 s rejecting 486, op-3 rung +16 s answering +20 s, ended by the caller
/// +80 s, media counters after.
fn answered_call(call: u128, t: i64) -> Vec<CallEvent> {
    vec![
        received_diverted(call, t, Some("+6281234567890"), "110"),
        queued(call, t + 100),
        ev(
            call,
            2,
            t + 200,
            CallEventKind::Offered {
                operator: op("op-1"),
            },
        ),
        ev(
            call,
            3,
            t + 15_200,
            CallEventKind::NoAnswer {
                operator: op("op-1"),
            },
        ),
        ev(
            call,
            4,
            t + 15_300,
            CallEventKind::Offered {
                operator: op("op-2"),
            },
        ),
        ev(
            call,
            5,
            t + 15_400,
            CallEventKind::Rejected {
                operator: op("op-2"),
                status: 486,
            },
        ),
        ev(
            call,
            6,
            t + 16_000,
            CallEventKind::Offered {
                operator: op("op-3"),
            },
        ),
        ev(
            call,
            7,
            t + 20_000,
            CallEventKind::Answered {
                operator: op("op-3"),
            },
        ),
        ev(
            call,
            8,
            t + 80_000,
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered,
            },
        ),
        ev(
            call,
            9,
            t + 80_050,
            CallEventKind::MediaRelayed {
                caller_to_operator: 3000,
                operator_to_caller: 2990,
            },
        ),
    ]
}

fn expected_answered_row(call: u128, t: i64) -> CallRow {
    CallRow {
        id: Uuid::from_u128(call),
        node_id: "node-a".to_owned(),
        trunk_call_id: format!("trunk-{call}@telco"),
        caller: Some("+6281234567890".to_owned()),
        called: "112".to_owned(),
        original_called: Some("110".to_owned()),
        trunk: "telco".to_owned(),
        received_at: UtcTime(t),
        queued_at: Some(UtcTime(t + 100)),
        first_offered_at: Some(UtcTime(t + 200)),
        answered_at: Some(UtcTime(t + 20_000)),
        ended_at: Some(UtcTime(t + 80_000)),
        operator: Some("op-3".to_owned()),
        disposition: Some("answered".to_owned()),
        ended_by: Some("caller".to_owned()),
        caller_to_operator_packets: Some(3000),
        operator_to_caller_packets: Some(2990),
    }
}

async fn only_call(store: &Store) -> CallRow {
    let mut rows = store.recent_calls(10, None).await.expect("rows");
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

async fn opening_twice_migrates_once_and_keeps_records(url: DatabaseUrl) {
    // `siaga migrate` on a new database: every migration, in order; then none.
    let store = Store::open_unmigrated(&url).await.unwrap();
    let versions = |ran: Vec<Migrated>| ran.iter().map(|m| m.version).collect::<Vec<_>>();
    let ran = store.migrate().await.unwrap();
    assert_eq!(ran[0].description, "call records");
    assert_eq!(versions(ran), [1, 2, 3, 4]);
    assert!(store.migrate().await.unwrap().is_empty());
    store.close().await;

    let store = Store::open(&url).await.unwrap();
    store
        .write_batch("node-a", &answered_call(1, 1_000))
        .await
        .unwrap();
    store.close().await;
    let store = Store::open(&url).await.expect("a second open is fine");
    assert_eq!(only_call(&store).await, expected_answered_row(1, 1_000));
    assert!(store.migrate().await.unwrap().is_empty());
    store.close().await;
    let reader = Store::open_existing(&url).await.unwrap();
    assert_eq!(reader.recent_calls(5, None).await.unwrap().len(), 1);
    reader.close().await;
}

#[tokio::test]
async fn a_sqlite_file_and_its_directories_are_created() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(&url_in(&dir, "nested/dir/siaga.db"))
        .await
        .unwrap();
    store.close().await;
    assert!(dir.path().join("nested/dir/siaga.db").exists());
}

/// A database written by a siaga with schema 1 only (before `original_called`) is
/// migrated in place: its calls stay, with no first-dialled number, and new calls get one.
async fn a_schema_1_database_gains_original_called(url: DatabaseUrl) {
    let dir = TempDir::new().unwrap();
    let backend = match url.kind() {
        DatabaseKind::Sqlite => "sqlite",
        DatabaseKind::Postgres => "postgres",
    };
    let schema_1 = dir.path().join("schema-1");
    std::fs::create_dir(&schema_1).unwrap();
    std::fs::copy(
        format!(
            "{}/migrations/{backend}/0001_call_records.sql",
            env!("CARGO_MANIFEST_DIR")
        ),
        schema_1.join("0001_call_records.sql"),
    )
    .unwrap();
    let schema_1 = sqlx::migrate::Migrator::new(schema_1.as_path())
        .await
        .unwrap();
    // A text UUID literal: SQLite stores it as it is, PostgreSQL converts it.
    let insert = "INSERT INTO calls (id, node_id, trunk_call_id, called, trunk, received_at) \
         VALUES ('00000000-0000-0000-0000-000000000007', 'old', 't7', '112', 'telco', 5)";
    match url.kind() {
        DatabaseKind::Sqlite => {
            let path = url.as_str().strip_prefix("sqlite://").unwrap();
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            schema_1.run(&pool).await.unwrap();
            sqlx::query(insert).execute(&pool).await.unwrap();
            pool.close().await;
        }
        DatabaseKind::Postgres => {
            let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
            schema_1.run(&pool).await.unwrap();
            sqlx::query(insert).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    let store = Store::open(&url).await.expect("schema 1 is migrated");
    let old = only_call(&store).await;
    assert_eq!(
        (old.trunk_call_id.as_str(), old.original_called),
        ("t7", None)
    );
    store
        .write_batch("node-a", &answered_call(1, 1_000))
        .await
        .unwrap();
    let rows = store.recent_calls(10, None).await.unwrap();
    assert_eq!(rows[0], expected_answered_row(1, 1_000));
    store.close().await;
}

#[tokio::test]
async fn open_existing_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let url = url_in(&dir, "missing/siaga.db");
    match Store::open_existing(&url).await {
        Err(e @ StoreError::NoDatabase { .. }) => {
            assert!(e.to_string().starts_with("no call records yet at "), "{e}");
        }
        other => panic!("expected NoDatabase, got {other:?}"),
    }
    assert!(!dir.path().join("missing").exists());
}

/// Nothing listens on port 1 of 127.0.0.1: the connection is refused, and `open` says
/// so at once (no pool timeout), without the password.
#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error() {
    let url = DatabaseUrl::parse("postgres://siaga:secret@127.0.0.1:1/siaga").unwrap();
    for error in [
        Store::open(&url).await.unwrap_err(),
        Store::open_existing(&url).await.unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
        assert!(
            text.starts_with("cannot open the database postgres://siaga:***@127.0.0.1:1/siaga: "),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}

/// `open` creates a PostgreSQL database that does not exist yet (as SQLite creates the
/// file); `open_existing` does not, and a database without siaga's tables is reported
/// as such, not created.
#[tokio::test]
async fn a_missing_postgres_database_is_created_by_open_only() {
    let Some(server) = test_pg::server_url("a_missing_postgres_database_is_created_by_open_only")
    else {
        return;
    };
    let name = test_pg::unique_name();
    let url = DatabaseUrl::parse(&test_pg::with_database(&server, &name)).unwrap();
    let outcome = tokio::spawn(async move {
        let error = Store::open_existing(&url).await.unwrap_err();
        assert!(error.to_string().contains("does not exist"), "{error}");
        let store = Store::open(&url).await.expect("created and migrated");
        store
            .write_batch("node-a", &answered_call(1, 1_000))
            .await
            .unwrap();
        assert_eq!(only_call(&store).await, expected_answered_row(1, 1_000));
        store.close().await;
    })
    .await;
    test_pg::drop_database(&server, &name).await;
    outcome.unwrap();

    on_postgres(
        "a_missing_postgres_database_is_created_by_open_only",
        |url| async move {
            match Store::open_existing(&url).await {
                Err(error @ StoreError::NoTables { .. }) => {
                    assert!(
                        error.to_string().starts_with("no call records yet in "),
                        "{error}"
                    );
                }
                other => panic!("expected NoTables, got {other:?}"),
            }
            // Still without tables: a second look says the same.
            assert!(matches!(
                Store::open_existing(&url).await,
                Err(StoreError::NoTables { .. })
            ));
        },
    )
    .await;
}

#[tokio::test]
async fn in_memory_database_works() {
    let store = Store::open(&DatabaseUrl::parse("sqlite::memory:").unwrap())
        .await
        .unwrap();
    store
        .write_batch("node-a", &answered_call(1, 5))
        .await
        .unwrap();
    assert_eq!(only_call(&store).await, expected_answered_row(1, 5));
}

async fn a_call_in_one_batch_gives_its_summary_and_timeline(store: Store) {
    let events = answered_call(7, 1_795_953_665_123);
    store.write_batch("node-a", &events).await.unwrap();
    assert_eq!(
        only_call(&store).await,
        expected_answered_row(7, 1_795_953_665_123)
    );

    let timeline = store.call_events(Uuid::from_u128(7)).await.unwrap();
    let ids: Vec<Uuid> = timeline.iter().map(|e| e.id).collect();
    assert_eq!(ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "received",
            "queued",
            "offered",
            "no_answer",
            "offered",
            "rejected",
            "offered",
            "answered",
            "ended",
            "media"
        ]
    );
    let seqs: Vec<i64> = timeline.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(timeline.iter().all(|e| e.node_id == "node-a"));
    let rejected = &timeline[5];
    assert_eq!(rejected.operator.as_deref(), Some("op-2"));
    assert_eq!(rejected.detail, Some(serde_json::json!({ "status": 486 })));
    assert_eq!(
        timeline[0].detail.as_ref().unwrap()["caller"],
        "+6281234567890"
    );
    assert_eq!(timeline[1].detail.as_ref().unwrap()["queue"], "default");
    assert_eq!(timeline[2].detail, None);
    assert!(
        store
            .call_events(Uuid::from_u128(8))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn events_split_over_batches_with_duplicates_give_the_same_row(store: Store) {
    let events = answered_call(3, 10_000);
    let other = answered_call(4, 11_000);
    // Batches that split the call, interleave another, and repeat events across batches.
    let batches: Vec<Vec<CallEvent>> = vec![
        vec![events[0].clone(), other[0].clone(), events[1].clone()],
        vec![events[1].clone(), events[2].clone(), other[1].clone()],
        vec![
            events[2].clone(),
            events[3].clone(),
            events[4].clone(),
            events[5].clone(),
        ],
        vec![events[6].clone(), events[7].clone(), events[7].clone()],
        other[2..].to_vec(),
        vec![events[9].clone(), events[8].clone()], // media counters before the end
        events.clone(),                             // a whole replay
    ];
    for batch in &batches {
        store.write_batch("node-a", batch).await.unwrap();
    }
    let rows = store.recent_calls(10, None).await.unwrap();
    assert_eq!(
        rows,
        vec![
            expected_answered_row(4, 11_000),
            expected_answered_row(3, 10_000)
        ]
    );
    let timeline = store.call_events(Uuid::from_u128(3)).await.unwrap();
    assert_eq!(timeline.len(), 10, "each event stored once");
    // Written order: media (seq 9) before ended (seq 10); the timeline follows `at`.
    assert_eq!(timeline[8].kind, "ended");
    assert_eq!(timeline[8].seq, 10);
    assert_eq!(timeline[9].kind, "media");
    assert_eq!(timeline[9].seq, 9);
}

async fn a_received_event_written_last_still_completes_the_row(store: Store) {
    let mut events = answered_call(5, 2_000);
    let received = events.remove(0);
    events.reverse();
    store.write_batch("node-a", &events).await.unwrap();
    assert!(store.recent_calls(10, None).await.unwrap().is_empty());
    store.write_batch("node-a", &[received]).await.unwrap();
    assert_eq!(only_call(&store).await, expected_answered_row(5, 2_000));
}

/// A caller number with `%00` in the trunk's From (found by a newcomer's run: on
/// PostgreSQL it failed every batch behind it, for good).
async fn a_nul_in_signalled_text_is_stored_as_a_replacement_character(store: Store) {
    let mut nul = received(1, 100, Some("62\u{0}811"));
    if let CallEventKind::Received {
        trunk_call_id,
        original_called,
        ..
    } = &mut nul.kind
    {
        *trunk_call_id = "a\u{0}b@telco".to_owned();
        *original_called = Some("11\u{0}0".to_owned());
    }
    store
        .write_batch("node-a", &[nul, received(2, 200, Some("628222"))])
        .await
        .expect("a NUL is no reason to refuse a batch");
    let calls = store.recent_calls(10, None).await.unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].caller.as_deref(), Some("62\u{FFFD}811"));
    assert_eq!(calls[1].trunk_call_id, "a\u{FFFD}b@telco");
    assert_eq!(calls[1].original_called.as_deref(), Some("11\u{FFFD}0"));
    assert_eq!(calls[0].caller.as_deref(), Some("628222"));
}

async fn rewriting_an_event_does_not_apply_it_again(store: Store) {
    let call = 9;
    let media = |n, c2o, o2c| {
        ev(
            call,
            n,
            500,
            CallEventKind::MediaRelayed {
                caller_to_operator: c2o,
                operator_to_caller: o2c,
            },
        )
    };
    store
        .write_batch("node-a", &[received(call, 100, None), media(1, 50, 40)])
        .await
        .unwrap();
    // The same event again, then under a new id: only new ids change the row, and
    // counters only grow.
    store
        .write_batch("node-a", &[media(1, 50, 40)])
        .await
        .unwrap();
    store
        .write_batch("node-b", &[media(2, 10, 70)])
        .await
        .unwrap();
    let row = only_call(&store).await;
    assert_eq!(row.caller, None);
    assert_eq!(row.caller_to_operator_packets, Some(50));
    assert_eq!(row.operator_to_caller_packets, Some(70));
    let timeline = store.call_events(Uuid::from_u128(call)).await.unwrap();
    assert_eq!(timeline.len(), 3);
    assert_eq!(timeline[2].node_id, "node-b");

    // A second `received` under a new id is logged but leaves the row as it was.
    let mut again = received(call, 999, Some("+62999"));
    again.id = Uuid::from_u128(12345);
    store.write_batch("node-a", &[again]).await.unwrap();
    let row = only_call(&store).await;
    assert_eq!((row.received_at, row.caller), (UtcTime(100), None));
}

async fn abandoned_calls_have_no_answer_fields(store: Store) {
    let call = 11;
    store
        .write_batch(
            "node-a",
            &[
                received(call, 1_000, Some("+62811")),
                queued(call, 1_050),
                ev(
                    call,
                    2,
                    9_050,
                    CallEventKind::Ended {
                        by: Party::Caller,
                        disposition: Disposition::AbandonedInQueue,
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let row = only_call(&store).await;
    assert_eq!(row.disposition.as_deref(), Some("abandoned_in_queue"));
    assert_eq!((row.answered_at, row.operator.as_deref()), (None, None));
    assert_eq!(row.wait_ms(), Some(8_050));
    assert_eq!(row.talk_ms(), None);
    assert_eq!(expected_answered_row(1, 0).wait_ms(), Some(20_000));
    assert_eq!(expected_answered_row(1, 0).talk_ms(), Some(60_000));
}

async fn recent_calls_are_newest_first_limited_and_since(store: Store) {
    let batch: Vec<CallEvent> = (1..=30)
        .map(|c| received(c, c as i64 * 1_000, None))
        .collect();
    store.write_batch("node-a", &batch).await.unwrap();
    let received_at = |rows: Vec<CallRow>| -> Vec<i64> {
        rows.iter().map(|r| r.received_at.unix_millis()).collect()
    };
    let newest = store.recent_calls(3, None).await.unwrap();
    assert_eq!(received_at(newest), [30_000, 29_000, 28_000]);
    let since = store
        .recent_calls(100, Some(UtcTime(27_000)))
        .await
        .unwrap();
    assert_eq!(received_at(since), [30_000, 29_000, 28_000, 27_000]);
    let since_limited = store.recent_calls(2, Some(UtcTime(5_500))).await.unwrap();
    assert_eq!(received_at(since_limited), [30_000, 29_000]);
    assert!(store.recent_calls(0, None).await.unwrap().is_empty());
    assert!(
        store
            .recent_calls(5, Some(UtcTime(31_000)))
            .await
            .unwrap()
            .is_empty()
    );
}

#[test]
fn call_rows_serialize_with_column_names_and_rfc3339_times() {
    let mut row = expected_answered_row(1, 1_795_953_665_123);
    row.ended_at = None;
    let json = serde_json::to_value(&row).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "id",
        "node_id",
        "trunk_call_id",
        "caller",
        "called",
        "original_called",
        "trunk",
        "received_at",
        "queued_at",
        "first_offered_at",
        "answered_at",
        "ended_at",
        "operator",
        "disposition",
        "ended_by",
        "caller_to_operator_packets",
        "operator_to_caller_packets",
    ];
    let mut keys = keys;
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["received_at"], "2026-11-29T12:01:05.123Z");
    assert_eq!(json["ended_at"], serde_json::Value::Null);
    assert_eq!(json["id"], "00000000-0000-0000-0000-000000000001");
    assert_eq!(json["caller_to_operator_packets"], 3000);
}

// ---- the writer ---------------------------------------------------------------------

/// `calls` calls of 10 events each; a call's events share one `at`, so its timeline is in
/// written order.
fn many_events(calls: u128) -> Vec<CallEvent> {
    (1..=calls)
        .flat_map(|call| {
            answered_call(call, call as i64)
                .into_iter()
                .map(move |mut e| {
                    e.at = UtcTime(call as i64);
                    e
                })
        })
        .collect()
}

async fn assert_all_written_in_order(store: &Store, events: &[CallEvent]) {
    let n = events.len() / 10;
    let calls = store.recent_calls(5000, None).await.unwrap();
    assert_eq!(calls.len(), n);
    assert!(
        calls
            .iter()
            .all(|c| c.disposition.as_deref() == Some("answered"))
    );
    for call in [1, 2, n / 2, n - 1, n] {
        let call = call as u128;
        let stored: Vec<Uuid> = store
            .call_events(Uuid::from_u128(call))
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        let pushed: Vec<Uuid> = events
            .iter()
            .filter(|e| e.call == Uuid::from_u128(call))
            .map(|e| e.id)
            .collect();
        assert_eq!(stored, pushed, "call {call}");
    }
}

async fn the_writer_takes_10k_events_through_a_small_queue_without_loss(store: Store) {
    let events = many_events(1000);
    let (mut sink, handle) = spawn_writer(store.clone(), "node-a".to_owned(), 64);
    // No await between pushes: the writer cannot run, so all but 8 wait in the backlog.
    for event in &events {
        sink.push(event.clone());
    }
    assert_eq!(sink.pending(), events.len() - 64);
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!(
        report,
        WriterReport {
            written: 10_000,
            unwritten: 0,
            ..WriterReport::default()
        }
    );
    assert_all_written_in_order(&store, &events).await;
}

async fn a_dropped_sink_hands_its_backlog_over_before_shutdown_returns(store: Store) {
    let events = many_events(200);
    // A grace far beyond any commit time: 2,000 events through a 4-event channel are
    // hundreds of commits, which on a loaded machine take longer than the real
    // SHUTDOWN_GRACE; this test is about the handover, not the grace (which has its own).
    let grace = std::time::Duration::from_secs(600);
    let (mut sink, handle) = writer::spawn_with_grace(store.clone(), "node-a".to_owned(), 4, grace);
    for (i, event) in events.iter().enumerate() {
        sink.push(event.clone());
        if i % 300 == 0 {
            // Let the writer run now and then; the backlog drains on the next pushes.
            tokio::task::yield_now().await;
            sink.flush_pending();
        }
    }
    drop(sink);
    assert_eq!(handle.shutdown().await.unwritten, 0);
    assert_all_written_in_order(&store, &events).await;
}

/// Runs `sql` on the store's own pool, to break and mend the database under the writer.
async fn execute(store: &Store, sql: &'static str) {
    match &store.backend {
        Backend::Sqlite(s) => sqlx::query(sql).execute(&s.pool).await.map(drop),
        Backend::Postgres(s) => sqlx::query(sql).execute(&s.pool).await.map(drop),
    }
    .expect(sql);
}

/// The one number `sql` selects.
async fn scalar(store: &Store, sql: &'static str) -> i64 {
    match &store.backend {
        Backend::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(&s.pool).await,
        Backend::Postgres(s) => sqlx::query_scalar(sql).fetch_one(&s.pool).await,
    }
    .expect(sql)
}

async fn the_writer_holds_events_while_the_database_fails_and_writes_them_after(store: Store) {
    execute(&store, "ALTER TABLE call_events RENAME TO call_events_away").await;
    let events = answered_call(1, 1_000);
    let (mut sink, handle) = spawn_writer(store.clone(), "node-a".to_owned(), 4);
    for event in &events {
        sink.push(event.clone());
        tokio::task::yield_now().await;
    }
    // Let the writer fail and retry (100 ms, then 200 ms) before mending the table.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    // The writer is stuck: nothing is stored; the events wait in memory (its batch and the
    // sink's backlog).
    let stored = scalar(&store, "SELECT COUNT(*) FROM call_events_away").await;
    assert_eq!(stored, 0);
    sink.flush_pending();
    execute(&store, "ALTER TABLE call_events_away RENAME TO call_events").await;
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!((report.written, report.unwritten), (10, 0));
    assert_eq!(only_call(&store).await, expected_answered_row(1, 1_000));
    let stored: Vec<Uuid> = store
        .call_events(Uuid::from_u128(1))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(stored, events.iter().map(|e| e.id).collect::<Vec<_>>());
}

async fn shutdown_gives_up_on_a_dead_database_after_the_grace_period(store: Store) {
    execute(&store, "DROP TABLE call_events").await;
    let grace = std::time::Duration::from_millis(150);
    let (mut sink, handle) = writer::spawn_with_grace(store.clone(), "node-a".to_owned(), 4, grace);
    let events = answered_call(1, 1_000);
    sink.push(events[0].clone());
    sink.push(events[1].clone());
    assert_eq!(sink.pending(), 0);
    drop(sink);
    let report = handle.shutdown().await;
    assert_eq!(
        report,
        WriterReport {
            written: 0,
            unwritten: 2,
            ..WriterReport::default()
        }
    );
}

async fn shutdown_gives_up_on_a_sink_never_closed_after_the_grace_period(store: Store) {
    let grace = std::time::Duration::from_millis(50);
    let (mut sink, handle) =
        writer::spawn_with_grace(store.clone(), "node-a".to_owned(), 16, grace);
    sink.push(received(1, 1, None));
    // The sink stays alive: shutdown waits the grace period, then writes what it was
    // handed and returns.
    let report = handle.shutdown().await;
    assert_eq!(
        report,
        WriterReport {
            written: 1,
            unwritten: 0,
            ..WriterReport::default()
        }
    );
    assert_eq!(only_call(&store).await.id, Uuid::from_u128(1));
    // Later pushes are held, not dropped, and counted as such.
    sink.push(received(2, 2, None));
    assert_eq!(sink.pending(), 1);
    assert_eq!(sink.close().await, 1);
}

// ---- agent events -------------------------------------------------------------------

fn agent(
    n: u128,
    operator: &str,
    at: i64,
    (from, to): (&'static str, &'static str),
    reason: Option<&str>,
    call: Option<u128>,
) -> AgentEvent {
    AgentEvent {
        id: Uuid::from_u128(0xa9e0_0000 + n),
        operator: operator.to_owned(),
        at: UtcTime(at),
        from,
        to,
        reason: reason.map(str::to_owned),
        call: call.map(Uuid::from_u128),
    }
}

/// op-1 logs in, rings for call 1, answers, ends with no wrap-up time (three transitions
/// in one millisecond), then rings for call 2 and goes not ready after no answer; op-2
/// logs in in the same millisecond as op-1 answers.
fn shift() -> Vec<AgentEvent> {
    vec![
        agent(
            1,
            "op-1",
            1_000,
            ("logged_out", "available"),
            Some("registered"),
            None,
        ),
        agent(2, "op-1", 2_000, ("available", "ringing"), None, Some(1)),
        agent(
            3,
            "op-2",
            3_000,
            ("logged_out", "available"),
            Some("registered"),
            None,
        ),
        agent(4, "op-1", 3_000, ("ringing", "on_call"), None, Some(1)),
        agent(5, "op-1", 9_000, ("on_call", "wrap_up"), None, Some(1)),
        agent(6, "op-1", 9_000, ("wrap_up", "available"), None, Some(1)),
        agent(7, "op-1", 9_000, ("available", "ringing"), None, Some(2)),
        agent(
            8,
            "op-1",
            24_000,
            ("ringing", "not_ready"),
            Some("no_answer"),
            Some(2),
        ),
    ]
}

fn transitions(rows: &[AgentEventRow]) -> Vec<(String, i64, String, String)> {
    rows.iter()
        .map(|r| {
            (
                r.operator.clone(),
                r.at.unix_millis(),
                r.from_state.clone(),
                r.to_state.clone(),
            )
        })
        .collect()
}

fn ids(rows: &[AgentEventRow]) -> Vec<u128> {
    rows.iter().map(|r| r.id.as_u128() - 0xa9e0_0000).collect()
}

const ALL_TIME: (UtcTime, UtcTime) = (UtcTime(i64::MIN), UtcTime(i64::MAX));

async fn agent_events_round_trip_in_order(store: Store) {
    // One batch mixing both logs, as the writer sends them.
    let mut batch: Vec<LogEvent> = shift().into_iter().map(LogEvent::from).collect();
    batch.insert(1, received(1, 1_500, Some("+62811")).into());
    store.write_batch("node-a", &batch).await.unwrap();
    assert_eq!(only_call(&store).await.id, Uuid::from_u128(1));

    let (from, to) = ALL_TIME;
    let all = store.agent_events(None, from, to).await.unwrap();
    // By time; within 3 000 ms by operator; within op-1's 9 000 ms in written order.
    assert_eq!(ids(&all), [1, 2, 4, 3, 5, 6, 7, 8]);
    let op1 = store.agent_events(Some("op-1"), from, to).await.unwrap();
    assert_eq!(ids(&op1), [1, 2, 4, 5, 6, 7, 8]);
    let seqs: Vec<i64> = op1.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 1, 1, 1, 2, 3, 1]);
    assert_eq!(
        op1[6],
        AgentEventRow {
            id: Uuid::from_u128(0xa9e0_0008),
            node_id: "node-a".to_owned(),
            operator: "op-1".to_owned(),
            at: UtcTime(24_000),
            seq: 1,
            from_state: "ringing".to_owned(),
            to_state: "not_ready".to_owned(),
            reason: Some("no_answer".to_owned()),
            call_id: Some(Uuid::from_u128(2)),
        }
    );
    assert_eq!(
        (op1[0].reason.as_deref(), op1[0].call_id),
        (Some("registered"), None)
    );

    // The range is from (inclusive) to (exclusive).
    let window = store
        .agent_events(None, UtcTime(3_000), UtcTime(24_000))
        .await
        .unwrap();
    assert_eq!(ids(&window), [4, 3, 5, 6, 7]);
    let op2 = store
        .agent_events(Some("op-2"), UtcTime(3_001), to)
        .await
        .unwrap();
    assert!(op2.is_empty());
    assert!(
        store
            .agent_events(Some("op-9"), from, to)
            .await
            .unwrap()
            .is_empty()
    );

    // Serialized with the column names and RFC 3339 times.
    let json = serde_json::to_value(&op1[6]).unwrap();
    assert_eq!(json["at"], "1970-01-01T00:00:24.000Z");
    assert_eq!(json["to_state"], "not_ready");
    assert_eq!(json["call_id"], Uuid::from_u128(2).to_string());
    assert_eq!(
        serde_json::to_value(&op1[0]).unwrap()["call_id"],
        serde_json::Value::Null
    );
}

async fn agent_events_written_twice_are_stored_once(store: Store) {
    let events = shift();
    store.write_batch("node-a", &events[..5]).await.unwrap();
    // A replay overlapping the first batch, from another node, with a duplicate inside.
    let mut replay = events[3..].to_vec();
    replay.push(events[5].clone());
    store.write_batch("node-b", &replay).await.unwrap();
    store.write_batch("node-b", &events).await.unwrap();
    let (from, to) = ALL_TIME;
    let rows = store.agent_events(None, from, to).await.unwrap();
    assert_eq!(ids(&rows), [1, 2, 4, 3, 5, 6, 7, 8]);
    // The first write of each event stands: node, seq.
    let nodes: Vec<&str> = rows.iter().map(|r| r.node_id.as_str()).collect();
    assert_eq!(
        nodes,
        [
            "node-a", "node-a", "node-a", "node-a", "node-a", "node-b", "node-b", "node-b"
        ]
    );
    let op1_at_9s: Vec<i64> = rows
        .iter()
        .filter(|r| r.at == UtcTime(9_000))
        .map(|r| r.seq)
        .collect();
    assert_eq!(op1_at_9s, [1, 2, 3]);
    assert_eq!(
        transitions(&rows)[7],
        (
            "op-1".to_owned(),
            24_000,
            "ringing".to_owned(),
            "not_ready".to_owned()
        )
    );
}

async fn the_writer_stores_agent_events_with_call_events_and_flushes_them_at_shutdown(
    store: Store,
) {
    let calls = many_events(100);
    let agents: Vec<AgentEvent> = (0..1000u128)
        .map(|n| {
            let operator = format!("op-{}", n % 7);
            agent(
                n,
                &operator,
                5_000 + (n / 3) as i64,
                ("available", "ringing"),
                None,
                None,
            )
        })
        .collect();
    let (mut sink, handle) = spawn_writer(store.clone(), "node-a".to_owned(), 16);
    // Interleaved, with no await between pushes: most wait in the sink's backlog.
    for (call, agent) in calls.iter().zip(&agents) {
        sink.push(call.clone());
        sink.push(agent.clone());
    }
    assert!(sink.pending() > 1900, "{}", sink.pending());
    drop(sink);
    let report = handle.shutdown().await;
    assert_eq!(
        report,
        WriterReport {
            written: 2000,
            unwritten: 0,
            ..WriterReport::default()
        }
    );
    assert_all_written_in_order(&store, &calls).await;
    let (from, to) = ALL_TIME;
    for operator in ["op-0", "op-6"] {
        let stored = store.agent_events(Some(operator), from, to).await.unwrap();
        let pushed: Vec<u128> = agents
            .iter()
            .filter(|a| a.operator == operator)
            .map(|a| a.id.as_u128() - 0xa9e0_0000)
            .collect();
        assert_eq!(ids(&stored), pushed, "{operator}");
    }
    assert_eq!(
        store.agent_events(None, from, to).await.unwrap().len(),
        1000
    );
}

async fn the_writer_holds_agent_events_while_their_table_is_gone(store: Store) {
    execute(
        &store,
        "ALTER TABLE agent_events RENAME TO agent_events_away",
    )
    .await;
    let (mut sink, handle) = spawn_writer(store.clone(), "node-a".to_owned(), 4);
    for event in shift() {
        sink.push(event);
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let stored = scalar(&store, "SELECT COUNT(*) FROM agent_events_away").await;
    assert_eq!(stored, 0);
    execute(
        &store,
        "ALTER TABLE agent_events_away RENAME TO agent_events",
    )
    .await;
    assert_eq!(sink.close().await, 0);
    assert_eq!(handle.shutdown().await.unwritten, 0);
    let (from, to) = ALL_TIME;
    let rows = store.agent_events(None, from, to).await.unwrap();
    assert_eq!(ids(&rows), [1, 2, 4, 3, 5, 6, 7, 8]);
}

// ---- the callback worklist ----------------------------------------------------------

/// A call from `caller` received at `t`, queued, ended at `t + 8 s` with `disposition`
/// (answered at `t + 5 s` when that is `Answered`).
fn call_ending(
    call: u128,
    t: i64,
    caller: Option<&str>,
    disposition: Disposition,
) -> Vec<CallEvent> {
    let mut events = vec![received(call, t, caller), queued(call, t + 100)];
    if disposition == Disposition::Answered {
        events.push(ev(
            call,
            2,
            t + 5_000,
            CallEventKind::Answered {
                operator: op("op-1"),
            },
        ));
    }
    events.push(ev(
        call,
        3,
        t + 8_000,
        CallEventKind::Ended {
            by: Party::Caller,
            disposition,
        },
    ));
    events
}

fn callback_ended(call: u128, n: u128, at: i64, outcome: CallbackOutcome) -> CallEvent {
    ev(
        call,
        10 + n,
        at,
        CallEventKind::CallbackEnded {
            operator: op("op-2"),
            outcome,
        },
    )
}

async fn the_callback_worklist_keeps_open_abandoned_calls_oldest_first(store: Store) {
    use CallbackOutcome::{Answered, Busy, NoAnswer};
    use Disposition::{AbandonedInQueue, AbandonedWhileRinging, Failed, Interrupted, Overflowed};
    let since = 100_000;
    let min = 60_000;
    let mut events = Vec::new();
    // 1: before `since`: not on the list.
    events.extend(call_ending(1, since - 1, Some("+62801"), AbandonedInQueue));
    // 2: at `since`, abandoned in queue, never called back: on the list.
    events.extend(call_ending(2, since, Some("+62802"), AbandonedInQueue));
    // 3: abandoned while ringing, two callbacks that failed: on the list, 2 attempts.
    events.extend(call_ending(
        3,
        since + min,
        Some("+62803"),
        AbandonedWhileRinging,
    ));
    events.push(callback_ended(3, 1, since + 2 * min, Busy));
    events.push(callback_ended(3, 2, since + 3 * min, NoAnswer));
    // 4: called back and answered on the second try: closed.
    events.extend(call_ending(
        4,
        since + 2 * min,
        Some("+62804"),
        AbandonedInQueue,
    ));
    events.push(callback_ended(4, 1, since + 3 * min, Busy));
    events.push(callback_ended(4, 2, since + 4 * min, Answered));
    // 5: caller withheld: nobody to call back.
    events.extend(call_ending(5, since + 3 * min, None, AbandonedInQueue));
    // 6–9: answered, failed, interrupted, overflowed: not abandoned.
    for (call, disposition) in [
        (6, Disposition::Answered),
        (7, Failed),
        (8, Interrupted),
        (9, Overflowed),
    ] {
        events.extend(call_ending(
            call,
            since + 4 * min,
            Some("+62806"),
            disposition,
        ));
    }
    // 10: abandoned, then the same caller called again and was answered: moot.
    events.extend(call_ending(
        10,
        since + 5 * min,
        Some("+62810"),
        AbandonedInQueue,
    ));
    events.extend(call_ending(
        11,
        since + 6 * min,
        Some("+62810"),
        Disposition::Answered,
    ));
    // 12: abandoned after an answered call of the same caller (call 11): on the list.
    events.extend(call_ending(
        12,
        since + 7 * min,
        Some("+62810"),
        AbandonedWhileRinging,
    ));
    // 13, 14: the same caller abandoned twice, never answered: both on the list.
    events.extend(call_ending(
        13,
        since + 8 * min,
        Some("+62813"),
        AbandonedInQueue,
    ));
    events.extend(call_ending(
        14,
        since + 9 * min,
        Some("+62813"),
        AbandonedInQueue,
    ));
    // A later call of another caller that was answered does not close anything.
    events.extend(call_ending(
        15,
        since + 10 * min,
        Some("+62899"),
        Disposition::Answered,
    ));
    // Written in reverse, over several batches: the list does not depend on write order.
    events.reverse();
    for batch in events.chunks(7) {
        store.write_batch("node-a", batch).await.unwrap();
    }

    let list = store.callback_worklist(UtcTime(since)).await.unwrap();
    let got: Vec<(u128, &str, u32)> = list
        .iter()
        .map(|r| (r.call.as_u128(), r.caller.as_str(), r.attempts))
        .collect();
    assert_eq!(
        got,
        [
            (2, "+62802", 0),
            (3, "+62803", 2),
            (12, "+62810", 0),
            (13, "+62813", 0),
            (14, "+62813", 0),
        ]
    );
    assert_eq!(
        list[1],
        CallbackRow {
            call: Uuid::from_u128(3),
            caller: "+62803".to_owned(),
            received_at: UtcTime(since + min),
            ended_at: UtcTime(since + min + 8_000),
            disposition: "abandoned_while_ringing".to_owned(),
            reason: "abandoned_while_ringing".to_owned(),
            attempts: 2,
        }
    );
    // An earlier `since` takes call 1 in; a later one leaves only the last items.
    let earlier = store.callback_worklist(UtcTime(since - 1)).await.unwrap();
    assert_eq!(earlier[0].call, Uuid::from_u128(1));
    assert_eq!(earlier.len(), 6);
    let later = store
        .callback_worklist(UtcTime(since + 8 * min))
        .await
        .unwrap();
    assert_eq!(later.len(), 2);
    assert!(
        store
            .callback_worklist(UtcTime(since + 11 * min))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_overflowed_call_is_recorded_as_such(store: Store) {
    let mut events = call_ending(1, 1_000, Some("+62811"), Disposition::Overflowed);
    let target = "sip:112@backup.example".to_owned();
    events.insert(
        2,
        ev(
            1,
            7,
            2_000,
            CallEventKind::OverflowOffered {
                target: target.clone(),
            },
        ),
    );
    events.insert(
        3,
        ev(1, 8, 3_000, CallEventKind::OverflowAnswered { target }),
    );
    store.write_batch("node-a", &events).await.unwrap();
    let row = only_call(&store).await;
    assert_eq!(row.disposition.as_deref(), Some("overflowed"));
    assert_eq!((row.answered_at, row.operator), (None, None));
    let kinds: Vec<String> = store
        .call_events(Uuid::from_u128(1))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "received",
            "queued",
            "overflow_offered",
            "overflow_answered",
            "ended"
        ]
    );
}

mod incidents;
mod journal;
mod quarantine;
mod start_up;

// ---- ping -----------------------------------------------------------------------------

async fn ping_answers_while_the_database_does_and_fails_once_it_is_closed(store: Store) {
    store.ping().await.expect("an open store answers SELECT 1");
    store.close().await;
    let error = store
        .ping()
        .await
        .expect_err("a closed pool has no connection");
    assert!(
        matches!(error, StoreError::Database(sqlx::Error::PoolClosed)),
        "{error:?}"
    );
}
