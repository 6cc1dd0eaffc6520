//! Quarantine (issue 6 point 3): an event the database refuses for its data is moved to
//! `<journal>.quarantined` and the events around it are written, from a live batch and
//! from a journal replay alike, on both backends. The refusal is the database's own: a
//! CHECK constraint on PostgreSQL (SQLSTATE 23514), a trigger's `RAISE(ABORT)` on SQLite
//! (`SQLITE_CONSTRAINT_TRIGGER`), refusing events dated 666 ms.

use super::journal::{journal_path, logged, with_journal};
use super::*;
use crate::store::journal::quarantined_path;
use crate::store::writer::spawn_writer_with;

/// The time the database is made to refuse.
const REFUSED_AT: i64 = 666;

async fn refuse_events_at_666(store: &Store) {
    match &store.backend {
        Backend::Sqlite(_) => {
            execute(
                store,
                "CREATE TRIGGER refused_in_test BEFORE INSERT ON call_events \
                 WHEN NEW.at = 666 BEGIN SELECT RAISE(ABORT, 'refused in test'); END",
            )
            .await;
        }
        Backend::Postgres(_) => {
            execute(
                store,
                "ALTER TABLE call_events ADD CONSTRAINT refused_in_test CHECK (at <> 666)",
            )
            .await;
        }
    }
}

/// `answered_call(call, t)` with its event `n` dated [`REFUSED_AT`].
fn with_refused(call: u128, t: i64, n: usize) -> (Vec<CallEvent>, Uuid) {
    let mut events = answered_call(call, t);
    events[n].at = UtcTime(REFUSED_AT);
    let id = events[n].id;
    (events, id)
}

async fn an_event_the_database_refuses_is_quarantined_and_the_rest_written(store: Store) {
    refuse_events_at_666(&store).await;
    let refused = store
        .write_batch("node-a", &with_refused(9, 9_000, 1).0)
        .await
        .expect_err("the database refuses the batch");
    assert_eq!(refused.failure(), Failure::Data, "{refused}");
    let dir = TempDir::new().unwrap();
    // A previous process left call 1 in the journal, its `offered` refused …
    let (left, refused_left) = with_refused(1, 1_000, 2);
    Journal::open(&journal_path(&dir))
        .await
        .unwrap()
        .append(&logged(&left))
        .await
        .unwrap();
    let options = with_journal(&dir, SLOW_COMMIT).await;
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    // … and this one records call 2, its `no_answer` refused.
    let (live, refused_live) = with_refused(2, 5_000, 3);
    for event in &live {
        sink.push(event.clone());
    }
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!(
        (report.written, report.quarantined, report.journaled),
        (18, 2, 0),
        "{report:?}"
    );
    let stored = |call: u128| {
        let store = store.clone();
        async move {
            store
                .call_events(Uuid::from_u128(call))
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let without = |events: &[CallEvent], refused: Uuid| {
        events
            .iter()
            .map(|e| e.id)
            .filter(|id| *id != refused)
            .collect::<Vec<_>>()
    };
    assert_eq!(stored(1).await, without(&left, refused_left));
    assert_eq!(stored(2).await, without(&live, refused_live));
    assert_eq!(
        only_call_answered(&store, 2).await,
        Some("answered".to_owned())
    );
    // The refused events are kept whole, one line each, in the quarantine file.
    let kept = std::fs::read_to_string(quarantined_path(&journal_path(&dir))).unwrap();
    let kept: Vec<LogEvent> = kept
        .lines()
        .map(|line| serde_json::from_str(line).expect("a journal line"))
        .collect();
    let expected: Vec<LogEvent> = [left[2].clone(), live[3].clone()]
        .into_iter()
        .map(LogEvent::from)
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(std::fs::metadata(journal_path(&dir)).unwrap().len(), 0);
}

/// The disposition of call `call`.
async fn only_call_answered(store: &Store, call: u128) -> Option<String> {
    let rows = store.recent_calls(10, None).await.unwrap();
    rows.into_iter()
        .find(|r| r.id == Uuid::from_u128(call))
        .and_then(|r| r.disposition)
}

store_tests!(an_event_the_database_refuses_is_quarantined_and_the_rest_written);
