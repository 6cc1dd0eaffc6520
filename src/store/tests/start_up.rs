//! Start-up on the writer (issue 6 point 3): siaga starts while the database is down,
//! and once it answers the writer migrates, replays the previous process's journal,
//! closes what that process left open, and only then writes this process's events, so
//! none of this process's calls is closed by mistake. Both backends, plus PostgreSQL's
//! own cases (a server that does not answer at start; a deferred store migrated by the
//! writer).

use super::journal::{journal_path, logged, until_journal_holds, with_journal};
use super::*;
use crate::store::writer::{StartUp, WriterOptions, spawn_writer_with};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;

/// How long a test waits for the writer to catch up (replays back off up to 5 s).
const CATCH_UP: Duration = Duration::from_secs(30);

async fn start_up_on_the_writer_closes_the_previous_process_calls_before_its_own(store: Store) {
    let dir = TempDir::new().unwrap();
    let t = 1_000_000;
    // The previous process: call 1 answered and committed, then it died mid-call …
    store
        .write_batch("node-a", &answered_call(1, t)[..8])
        .await
        .unwrap();
    // … leaving in its journal call 2 received and queued (open) and call 3 whole.
    let mut left = vec![received(2, t + 30_000, None), queued(2, t + 30_100)];
    left.extend(answered_call(3, t));
    Journal::open(&journal_path(&dir))
        .await
        .unwrap()
        .append(&logged(&left))
        .await
        .unwrap();
    // The database is away as this process starts and takes call 4, still live.
    execute(&store, "ALTER TABLE call_events RENAME TO call_events_away").await;
    let mut options = with_journal(&dir, Duration::from_millis(500)).await;
    let (start_up, mut caught_up) = StartUp::new(StdRng::seed_from_u64(3));
    options.start_up = Some(start_up);
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    let live = [received(4, t + 90_000, None), queued(4, t + 90_100)];
    for event in &live {
        sink.push(event.clone());
    }
    until_journal_holds(&journal_path(&dir), left.len() + live.len()).await;
    assert!(
        caught_up.try_recv().is_err(),
        "not caught up while the database is away"
    );
    execute(&store, "ALTER TABLE call_events_away RENAME TO call_events").await;
    tokio::time::timeout(CATCH_UP, caught_up)
        .await
        .expect("caught up in time")
        .expect("the writer resolves the start-up receiver");
    assert_eq!(sink.journal_events(), 0);

    let rows = store.recent_calls(10, None).await.unwrap();
    let row = |id: u128| rows.iter().find(|r| r.id == Uuid::from_u128(id)).unwrap();
    // Dated at the latest event of the calls left open: call 2's queued.
    for id in [1, 2] {
        assert_eq!(
            row(id).disposition.as_deref(),
            Some("interrupted"),
            "call {id}"
        );
        assert_eq!(row(id).ended_at, Some(UtcTime(t + 30_100)), "call {id}");
    }
    assert_eq!(row(3).disposition.as_deref(), Some("answered"));
    assert_eq!(
        (row(4).ended_at, row(4).disposition.as_deref()),
        (None, None),
        "this process's live call is not closed"
    );
    let kinds = |events: Vec<EventRow>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(store.call_events(Uuid::from_u128(2)).await.unwrap()),
        ["received", "queued", "interrupted", "ended"],
        "the journal's events first, then the restart's"
    );
    assert_eq!(
        kinds(store.call_events(Uuid::from_u128(4)).await.unwrap()),
        ["received", "queued"]
    );
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!(
        (report.written, report.journaled, report.unwritten),
        ((left.len() + live.len()) as u64, 0, 0)
    );
    assert_eq!(std::fs::metadata(journal_path(&dir)).unwrap().len(), 0);
}

async fn start_up_without_a_journal_runs_before_the_first_batch(store: Store) {
    let t = 1_000_000;
    store
        .write_batch("node-a", &answered_call(1, t)[..8])
        .await
        .unwrap();
    let (start_up, caught_up) = StartUp::new(StdRng::seed_from_u64(3));
    let options = WriterOptions {
        capacity: 16,
        start_up: Some(start_up),
        ..WriterOptions::default()
    };
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    sink.push(received(2, t + 90_000, None));
    sink.push(queued(2, t + 90_100));
    tokio::time::timeout(CATCH_UP, caught_up)
        .await
        .expect("caught up in time")
        .expect("the writer resolves the start-up receiver");
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!((report.written, report.unwritten), (2, 0));
    let rows = store.recent_calls(10, None).await.unwrap();
    let row = |id: u128| rows.iter().find(|r| r.id == Uuid::from_u128(id)).unwrap();
    assert_eq!(row(1).disposition.as_deref(), Some("interrupted"));
    assert_eq!(row(2).ended_at, None, "this process's call is not closed");
}

store_tests!(
    start_up_on_the_writer_closes_the_previous_process_calls_before_its_own,
    start_up_without_a_journal_runs_before_the_first_batch,
);

#[tokio::test]
async fn a_postgres_that_does_not_answer_at_start_is_waited_for_only_with_a_journal() {
    // Nothing listens on port 1 of loopback: the connection is refused at once.
    let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:1/siaga").unwrap();
    let store = Store::open_or_defer(&url, true)
        .await
        .expect("starts on the journal");
    assert!(!store.is_answered());
    assert!(matches!(
        store.ping().await,
        Err(StoreError::NotAnswered { .. })
    ));
    let error = Store::open_or_defer(&url, false)
        .await
        .expect_err("without a journal nothing would keep the records");
    assert!(error.is_unreachable(), "{error}");
    // A wrong URL is a configuration error, not an outage.
    let bad = DatabaseUrl::parse("postgres://postgres@127.0.0.1:1/siaga?sslmode=nonsense").unwrap();
    let error = Store::open_or_defer(&bad, true).await.expect_err("refused");
    assert!(!error.is_unreachable(), "{error}");
}

#[tokio::test]
async fn a_sqlite_file_that_cannot_be_opened_stays_fatal_with_a_journal() {
    let dir = TempDir::new().unwrap();
    // The database's directory would have to be a file's child.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let url = url_in(&dir, "file/siaga.db");
    let error = Store::open_or_defer(&url, true).await.expect_err("fatal");
    assert!(matches!(error, StoreError::CreateDir { .. }), "{error}");
}

#[tokio::test]
async fn a_store_opened_on_the_journal_is_migrated_by_the_writer_once_postgres_answers() {
    on_postgres(
        "a_store_opened_on_the_journal_is_migrated_by_the_writer_once_postgres_answers",
        |url| async move {
            // As open_or_defer leaves it when the server did not answer: an empty
            // database, not migrated.
            let store = Store::on_journal(&url).unwrap();
            assert!(!store.is_answered());
            let dir = TempDir::new().unwrap();
            let mut options = with_journal(&dir, SLOW_COMMIT).await;
            let (start_up, caught_up) = StartUp::new(StdRng::seed_from_u64(3));
            options.start_up = Some(start_up);
            let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
            let events = answered_call(1, 1_000);
            for event in &events {
                sink.push(event.clone());
            }
            tokio::time::timeout(CATCH_UP, caught_up)
                .await
                .expect("caught up in time")
                .expect("the writer resolves the start-up receiver");
            assert!(store.is_answered());
            store.ping().await.expect("ready");
            assert_eq!(sink.close().await, 0);
            assert_eq!(handle.shutdown().await.written, 10);
            assert_eq!(only_call(&store).await, expected_answered_row(1, 1_000));
            store.close().await;
        },
    )
    .await;
}

/// A first start during an outage: the database itself does not exist yet (`Store::open`
/// would have created it). Once the server answers, the writer's probe meets SQLSTATE
/// 3D000, the database is created, and start-up goes on: migrated, the events written.
#[tokio::test]
async fn a_database_missing_at_a_first_start_on_the_journal_is_created_once_postgres_answers() {
    let test =
        "a_database_missing_at_a_first_start_on_the_journal_is_created_once_postgres_answers";
    let Some(server) = crate::store::test_pg::server_url(test) else {
        return;
    };
    let name = crate::store::test_pg::unique_name();
    let url = DatabaseUrl::parse(&crate::store::test_pg::with_database(&server, &name)).unwrap();
    let store = Store::on_journal(&url).unwrap();
    let dir = TempDir::new().unwrap();
    let mut options = with_journal(&dir, SLOW_COMMIT).await;
    let (start_up, caught_up) = StartUp::new(StdRng::seed_from_u64(4));
    options.start_up = Some(start_up);
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    for event in answered_call(1, 1_000) {
        sink.push(event);
    }
    let caught_up = tokio::time::timeout(CATCH_UP, caught_up).await;
    let answered = store.is_answered();
    assert_eq!(sink.close().await, 0);
    let written = handle.shutdown().await.written;
    store.close().await;
    crate::store::test_pg::drop_database(&server, &name).await;
    caught_up
        .expect("caught up in time")
        .expect("the writer resolves the start-up receiver");
    assert!(answered, "migrated once the database was created");
    assert_eq!(written, 10);
}
