//! Journal and start-up recovery tests (issue 6 point 3): the journal file alone (append,
//! reopen, replay order, damage), and with a database on both backends (the writer spills
//! to it while the database fails or is slow and replays it in order; a journal left by a
//! crash is replayed at start, twice harmlessly; calls left open are closed as
//! interrupted, this node's only).

use super::*;
use crate::store::journal::damaged_path;
use crate::store::recovery::recover;
use crate::store::writer::{WriterOptions, spawn_writer_with};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

pub(super) fn journal_path(dir: &TempDir) -> PathBuf {
    dir.path().join("spool/siaga.journal")
}

pub(super) fn logged(events: &[CallEvent]) -> Vec<LogEvent> {
    events.iter().cloned().map(LogEvent::from).collect()
}

/// Every event of the journal, chunk by chunk (of `max`), committing each.
async fn read_all(journal: &mut Journal, max: usize) -> (Vec<LogEvent>, Vec<Damage>) {
    let (mut events, mut damaged) = (Vec::new(), Vec::new());
    while journal.held() > 0 {
        let chunk = journal.read_chunk(max).await.expect("readable");
        assert!(chunk.events.len() + chunk.damaged.len() <= max);
        events.extend(chunk.events.iter().cloned());
        damaged.extend(chunk.damaged.iter().cloned());
        journal.advance(&chunk).await.expect("advanced");
    }
    (events, damaged)
}

fn agent_event(n: u128) -> AgentEvent {
    AgentEvent {
        id: Uuid::from_u128(0xa9e7 << 64 | n),
        operator: "op-1".to_owned(),
        at: UtcTime(5_000 + n as i64),
        from: "available",
        to: "ringing",
        reason: Some("offered".to_owned()),
        call: Some(Uuid::from_u128(1)),
    }
}

#[tokio::test]
async fn appended_events_come_back_in_order_across_a_reopen_and_the_file_empties() {
    let dir = TempDir::new().unwrap();
    let path = journal_path(&dir);
    let mut expected = logged(&answered_call(1, 1_000));
    expected.insert(3, LogEvent::Agent(agent_event(1)));
    {
        let mut journal = Journal::open(&path)
            .await
            .expect("created with its directory");
        assert_eq!(journal.held(), 0);
        journal.append(&expected[..4]).await.unwrap();
        journal.append(&expected[4..]).await.unwrap();
        assert_eq!(journal.held(), 11);
    }
    // A new process finds the lines and reads them in order, 3 at a time.
    let mut journal = Journal::open(&path).await.unwrap();
    assert_eq!(journal.held(), 11);
    let (events, damaged) = read_all(&mut journal, 3).await;
    assert_eq!(events, expected);
    assert!(damaged.is_empty());
    assert_eq!(journal.bytes(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    // Appending after a replay starts a new file.
    journal.append(&expected[..1]).await.unwrap();
    let (events, _) = read_all(&mut journal, 8).await;
    assert_eq!(events, expected[..1]);
}

#[tokio::test]
async fn a_torn_last_line_is_reported_and_the_intact_prefix_replayed() {
    let dir = TempDir::new().unwrap();
    let path = journal_path(&dir);
    let events = logged(&answered_call(1, 1_000));
    let mut journal = Journal::open(&path).await.unwrap();
    journal.append(&events[..5]).await.unwrap();
    drop(journal);
    // A crash in the middle of the next append: half a line, no end of line.
    let line = serde_json::to_string(&events[5]).unwrap();
    let intact = std::fs::read(&path).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(&line.as_bytes()[..line.len() / 2]);
    std::fs::write(&path, &torn).unwrap();

    let mut journal = Journal::open(&path).await.expect("a torn journal opens");
    assert_eq!(journal.held(), 6);
    // New events after the restart go on lines of their own.
    journal.append(&events[6..]).await.unwrap();
    let (read, damaged) = read_all(&mut journal, 4).await;
    let mut expected = events[..5].to_vec();
    expected.extend_from_slice(&events[6..]);
    assert_eq!(read, expected);
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].line, 6);
    assert_eq!(damaged[0].offset, intact.len() as u64);
    // The damage is kept for inspection, as it was.
    let kept = std::fs::read(damaged_path(&path)).unwrap();
    assert_eq!(kept, [&line.as_bytes()[..line.len() / 2], b"\n"].concat());
}

#[tokio::test]
async fn a_spoilt_line_in_the_middle_is_reported_once_and_its_neighbours_replayed() {
    let dir = TempDir::new().unwrap();
    let path = journal_path(&dir);
    let events = logged(&answered_call(1, 1_000));
    let mut journal = Journal::open(&path).await.unwrap();
    journal.append(&events[..2]).await.unwrap();
    drop(journal);
    let mut text = std::fs::read(&path).unwrap();
    text.extend_from_slice(b"\0\0\0\0{\"call\":\n");
    text.extend_from_slice(b"{\"agent\":{\"id\":\"not a uuid\"}}\n");
    std::fs::write(&path, &text).unwrap();
    let mut journal = Journal::open(&path).await.unwrap();
    journal.append(&events[2..]).await.unwrap();
    // Read twice without committing (a replay that failed): reported the first time only.
    let first = journal.read_chunk(100).await.unwrap();
    let again = journal.read_chunk(100).await.unwrap();
    assert_eq!(
        first.damaged.iter().map(|d| d.line).collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(again.damaged.is_empty());
    // A chunk ends at the previous process's last line (the journal's length at open).
    assert_eq!(again.events, events[..2]);
    journal.advance(&again).await.unwrap();
    assert_eq!(journal.inherited(), 0);
    let rest = journal.read_chunk(100).await.unwrap();
    assert_eq!(rest.events, events[2..]);
    let kept = std::fs::read_to_string(damaged_path(&path)).unwrap();
    assert_eq!(kept.lines().count(), 2);
}

// ---- with a database --------------------------------------------------------------

/// Writer options with a journal in `dir` and `slow` as the commit bound.
pub(super) async fn with_journal(dir: &TempDir, slow: Duration) -> WriterOptions {
    WriterOptions {
        capacity: 16,
        journal: Some(Journal::open(&journal_path(dir)).await.unwrap()),
        slow,
        grace: Duration::from_secs(10),
        start_up: None,
    }
}

/// Waits (polling every 10 ms, at most 10 s) until the journal file holds `lines` lines.
pub(super) async fn until_journal_holds(path: &std::path::Path, lines: usize) {
    for _ in 0..1000 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the journal never held {lines} lines");
}

/// Waits (polling every 10 ms, at most 30 s: replays back off up to 5 s) until the
/// sink's [`EventSink::journal_events`] satisfies `ok`.
async fn until_sink_reports(sink: &EventSink, ok: impl Fn(u64) -> bool) {
    for _ in 0..3000 {
        if ok(sink.journal_events()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the sink reports {} journal events", sink.journal_events());
}

async fn the_writer_journals_while_the_database_fails_and_replays_in_order(store: Store) {
    let dir = TempDir::new().unwrap();
    let options = with_journal(&dir, SLOW_COMMIT).await;
    execute(&store, "ALTER TABLE call_events RENAME TO call_events_away").await;
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    let events = many_events(30);
    for event in &events[..150] {
        sink.push(event.clone());
        tokio::task::yield_now().await;
    }
    until_journal_holds(&journal_path(&dir), 150).await;
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM call_events_away").await,
        0
    );
    // The sink reports what the journal holds (`siaga_store_journal_events`).
    until_sink_reports(&sink, |held| held >= 150).await;
    // While the journal holds events, new ones go behind them even if the database is
    // back: order is kept.
    execute(&store, "ALTER TABLE call_events_away RENAME TO call_events").await;
    for event in &events[150..] {
        sink.push(event.clone());
    }
    // Replayed, the journal is empty again.
    until_sink_reports(&sink, |held| held == 0).await;
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!(
        (report.written, report.journaled, report.unwritten),
        (300, 0, 0)
    );
    assert!(report.spilled >= 150, "{report:?}");
    assert_all_written_in_order(&store, &events).await;
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM call_events").await,
        300
    );
    assert_eq!(std::fs::metadata(journal_path(&dir)).unwrap().len(), 0);
}

/// Holds a write lock on `call_events` from another connection until the returned
/// sender is dropped: the database answers, but a batch cannot commit.
async fn hold_write_lock(store: &Store) -> oneshot::Sender<()> {
    let (release, released) = oneshot::channel::<()>();
    let (locked, is_locked) = oneshot::channel();
    match &store.backend {
        Backend::Sqlite(s) => {
            let pool = s.pool.clone();
            tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                // A write takes SQLite's one write lock until the transaction ends.
                sqlx::query("DELETE FROM call_events WHERE node_id = 'nobody'")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let _ = locked.send(());
                let _ = released.await;
                tx.rollback().await.unwrap();
            });
        }
        Backend::Postgres(s) => {
            let pool = s.pool.clone();
            tokio::spawn(async move {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("LOCK TABLE call_events IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let _ = locked.send(());
                let _ = released.await;
                tx.rollback().await.unwrap();
            });
        }
    }
    is_locked.await.expect("the lock is taken");
    release
}

async fn a_slow_database_sends_batches_to_the_journal_after_the_bound(store: Store) {
    let dir = TempDir::new().unwrap();
    let options = with_journal(&dir, Duration::from_millis(200)).await;
    let lock = hold_write_lock(&store).await;
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    let events = answered_call(1, 1_000);
    for event in &events {
        sink.push(event.clone());
    }
    // The batch waits for the lock, is given up after 200 ms and journaled.
    until_journal_holds(&journal_path(&dir), events.len()).await;
    drop(lock);
    assert_eq!(sink.close().await, 0);
    let report = handle.shutdown().await;
    assert_eq!((report.written, report.journaled), (10, 0), "{report:?}");
    assert_eq!(only_call(&store).await, expected_answered_row(1, 1_000));
}

async fn events_journaled_at_shutdown_are_replayed_by_the_next_start(store: Store) {
    let dir = TempDir::new().unwrap();
    let options = with_journal(&dir, SLOW_COMMIT).await;
    execute(&store, "ALTER TABLE call_events RENAME TO call_events_away").await;
    let (mut sink, handle) = spawn_writer_with(store.clone(), "node-a".to_owned(), options);
    let events = answered_call(1, 1_000);
    for event in &events {
        sink.push(event.clone());
    }
    drop(sink);
    let report = handle.shutdown().await;
    assert_eq!(
        (report.written, report.journaled, report.unwritten),
        (0, 10, 0)
    );
    execute(&store, "ALTER TABLE call_events_away RENAME TO call_events").await;

    // The next process: the journal first, then (nothing left open: the call ended).
    let mut journal = Journal::open(&journal_path(&dir)).await.unwrap();
    assert_eq!(journal.held(), 10);
    let mut rng = StdRng::seed_from_u64(1);
    let recovery = recover(&store, Some(&mut journal), "node-a", &mut rng)
        .await
        .unwrap();
    assert_eq!((recovery.replayed, recovery.damaged), (10, 0));
    assert!(recovery.interrupted.is_empty());
    assert_eq!(journal.held(), 0);
    assert_eq!(only_call(&store).await, expected_answered_row(1, 1_000));
}

async fn a_replay_cut_short_by_a_crash_replays_again_harmlessly(store: Store) {
    let dir = TempDir::new().unwrap();
    let events = many_events(3);
    let mut journal = Journal::open(&journal_path(&dir)).await.unwrap();
    journal.append(&logged(&events)).await.unwrap();
    // A previous start committed the first 13 events, then died before emptying the file.
    store.write_batch("node-a", &events[..13]).await.unwrap();
    drop(journal);
    let mut journal = Journal::open(&journal_path(&dir)).await.unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let recovery = recover(&store, Some(&mut journal), "node-a", &mut rng)
        .await
        .unwrap();
    assert_eq!(recovery.replayed, 30);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM call_events").await, 30);
    assert_all_written_in_order(&store, &events).await;
    let seqs: Vec<i64> = store
        .call_events(Uuid::from_u128(2))
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

async fn calls_left_open_are_closed_as_interrupted_with_their_last_state(store: Store) {
    let t = 1_000_000;
    // Call 1 (this node): answered by op-3, then the process died.
    let on_call = answered_call(1, t)[..8].to_vec();
    // Call 2 (this node): queued. Call 3 (this node): ended normally.
    let queued_only = vec![received(2, t + 30_000, None), queued(2, t + 30_100)];
    let ended = answered_call(3, t);
    store.write_batch("node-a", &on_call).await.unwrap();
    store.write_batch("node-a", &queued_only).await.unwrap();
    store.write_batch("node-a", &ended).await.unwrap();
    // Call 4: another node's live call, on the same database.
    store
        .write_batch("node-b", &[received(4, t + 40_000, None)])
        .await
        .unwrap();

    let mut rng = StdRng::seed_from_u64(7);
    let recovery = recover(&store, None, "node-a", &mut rng).await.unwrap();
    assert_eq!(
        recovery.interrupted,
        [
            (Uuid::from_u128(1), "on_call".to_owned()),
            (Uuid::from_u128(2), "in_queue".to_owned()),
        ]
    );
    // Dated at the latest event of the calls left open: call 2's queued, t + 30.1 s.
    let last_alive = UtcTime(t + 30_100);
    let rows = store.recent_calls(10, None).await.unwrap();
    let row = |id: u128| rows.iter().find(|r| r.id == Uuid::from_u128(id)).unwrap();
    for id in [1, 2] {
        assert_eq!(row(id).disposition.as_deref(), Some("interrupted"));
        assert_eq!(row(id).ended_by.as_deref(), Some("siaga"));
        assert_eq!(row(id).ended_at, Some(last_alive));
    }
    assert_eq!(row(1).answered_at, Some(UtcTime(t + 20_000)));
    assert_eq!(row(3).disposition.as_deref(), Some("answered"));
    assert_eq!(row(4).ended_at, None, "another node's call is left alone");
    let timeline = store.call_events(Uuid::from_u128(1)).await.unwrap();
    let tail: Vec<(&str, Option<&str>, Option<&serde_json::Value>)> = timeline[8..]
        .iter()
        .map(|e| (e.kind.as_str(), e.operator.as_deref(), e.detail.as_ref()))
        .collect();
    let interrupted = serde_json::json!({ "last_state": "on_call" });
    let ended = serde_json::json!({ "by": "siaga", "disposition": "interrupted" });
    assert_eq!(
        tail,
        [
            ("interrupted", Some("op-3"), Some(&interrupted)),
            ("ended", None, Some(&ended)),
        ]
    );
    // A second start finds nothing open.
    let again = recover(&store, None, "node-a", &mut rng).await.unwrap();
    assert!(again.interrupted.is_empty());
}

async fn operators_left_logged_in_are_logged_out_as_interrupted(store: Store) {
    let t = 1_000_000;
    // Call 1 (this node): answered by op-3 at t + 20 s, then the process died.
    store
        .write_batch("node-a", &answered_call(1, t)[..8])
        .await
        .unwrap();
    let registered = Some("registered");
    let node_a = [
        agent(1, "op-3", t, ("logged_out", "available"), registered, None),
        agent(
            2,
            "op-3",
            t + 16_000,
            ("available", "ringing"),
            None,
            Some(1),
        ),
        agent(3, "op-3", t + 20_000, ("ringing", "on_call"), None, Some(1)),
        agent(4, "op-2", t, ("logged_out", "available"), registered, None),
        agent(
            5,
            "op-2",
            t + 17_000,
            ("available", "logged_out"),
            Some("logout"),
            None,
        ),
        agent(6, "op-1", t, ("logged_out", "available"), registered, None),
        // The latest event the process recorded: the restart is dated here.
        agent(
            7,
            "op-1",
            t + 45_000,
            ("available", "not_ready"),
            Some("requested"),
            None,
        ),
    ];
    store.write_batch("node-a", &node_a).await.unwrap();
    // Another node's operator, on the same database, later still: left alone.
    let node_b = [agent(
        8,
        "op-4",
        t + 60_000,
        ("logged_out", "available"),
        registered,
        None,
    )];
    store.write_batch("node-b", &node_b).await.unwrap();

    let mut rng = StdRng::seed_from_u64(7);
    let recovery = recover(&store, None, "node-a", &mut rng).await.unwrap();
    assert_eq!(
        recovery.logged_out,
        [
            ("op-1".to_owned(), "not_ready".to_owned()),
            ("op-3".to_owned(), "on_call".to_owned()),
        ]
    );
    assert_eq!(
        recovery.interrupted,
        [(Uuid::from_u128(1), "on_call".to_owned())]
    );
    let last_alive = UtcTime(t + 45_000);
    let (from, to) = ALL_TIME;
    let history = |operator: &'static str| {
        let store = store.clone();
        async move { store.agent_events(Some(operator), from, to).await.unwrap() }
    };
    let op3 = history("op-3").await;
    assert_eq!(op3.len(), 4);
    let restart = &op3[3];
    assert_eq!(
        (
            restart.node_id.as_str(),
            restart.at,
            restart.from_state.as_str(),
            restart.to_state.as_str(),
            restart.reason.as_deref(),
            restart.call_id,
        ),
        (
            "node-a",
            last_alive,
            "on_call",
            "logged_out",
            Some("interrupted"),
            Some(Uuid::from_u128(1)),
        )
    );
    let op1 = history("op-1").await;
    assert_eq!(
        transitions(&op1[2..]),
        [(
            "op-1".to_owned(),
            last_alive.unix_millis(),
            "not_ready".to_owned(),
            "logged_out".to_owned()
        )]
    );
    assert_eq!(op1[2].reason.as_deref(), Some("interrupted"));
    assert_eq!(op1[2].call_id, None);
    assert_eq!(
        history("op-2").await.len(),
        2,
        "a logged-out operator is left alone"
    );
    assert_eq!(
        history("op-4").await.len(),
        1,
        "another node's operator is left alone"
    );
    // The call is closed at the same instant as its operator.
    let call = store.recent_calls(10, None).await.unwrap();
    assert_eq!(call[0].ended_at, Some(last_alive));

    // A second start finds everyone logged out.
    let again = recover(&store, None, "node-a", &mut rng).await.unwrap();
    assert!(again.logged_out.is_empty() && again.interrupted.is_empty());
    // With no call left open, an operator left available is still logged out, at their
    // own last event.
    let later = [agent(
        9,
        "op-5",
        t + 90_000,
        ("logged_out", "available"),
        registered,
        None,
    )];
    store.write_batch("node-a", &later).await.unwrap();
    let third = recover(&store, None, "node-a", &mut rng).await.unwrap();
    assert_eq!(
        third.logged_out,
        [("op-5".to_owned(), "available".to_owned())]
    );
    let op5 = history("op-5").await;
    assert_eq!(
        transitions(&op5),
        [
            (
                "op-5".to_owned(),
                t + 90_000,
                "logged_out".to_owned(),
                "available".to_owned()
            ),
            (
                "op-5".to_owned(),
                t + 90_000,
                "available".to_owned(),
                "logged_out".to_owned()
            ),
        ]
    );
}

store_tests!(
    the_writer_journals_while_the_database_fails_and_replays_in_order,
    a_slow_database_sends_batches_to_the_journal_after_the_bound,
    events_journaled_at_shutdown_are_replayed_by_the_next_start,
    a_replay_cut_short_by_a_crash_replays_again_harmlessly,
    calls_left_open_are_closed_as_interrupted_with_their_last_state,
    operators_left_logged_in_are_logged_out_as_interrupted,
);

#[test]
fn the_last_state_follows_the_timeline() {
    let row = |kind: &str, operator: Option<&str>| EventRow {
        id: Uuid::nil(),
        call_id: Uuid::nil(),
        node_id: "node-a".to_owned(),
        seq: 0,
        at: UtcTime(0),
        kind: kind.to_owned(),
        operator: operator.map(str::to_owned),
        detail: None,
    };
    /// A kind and its operator column.
    type Row<'a> = (&'a str, Option<&'a str>);
    let cases: [(&[Row], Row); 10] = [
        (&[("received", None)], ("received", None)),
        (&[("received", None), ("queued", None)], ("in_queue", None)),
        (
            &[("queued", None), ("offered", Some("op-1"))],
            ("ringing", Some("op-1")),
        ),
        (
            &[("offered", Some("op-1")), ("no_answer", Some("op-1"))],
            ("in_queue", None),
        ),
        (
            &[
                ("answered", Some("op-2")),
                ("renegotiated", None),
                ("a_kind_of_a_later_version", None),
            ],
            ("on_call", Some("op-2")),
        ),
        (
            &[("queued", None), ("overflow_offered", None)],
            ("overflow_ringing", None),
        ),
        (
            &[("overflow_offered", None), ("overflow_answered", None)],
            ("overflowed", None),
        ),
        (
            &[
                ("answered", Some("op-1")),
                ("transfer_offered", Some("op-1")),
            ],
            ("transferring", Some("op-1")),
        ),
        (
            &[
                ("answered", Some("op-1")),
                ("transfer_offered", Some("op-1")),
                ("transfer_failed", None),
            ],
            ("on_call", Some("op-1")),
        ),
        (
            &[
                ("transfer_offered", Some("op-1")),
                ("transfer_answered", None),
            ],
            ("transferred", None),
        ),
    ];
    for (kinds, (state, operator)) in cases {
        let rows: Vec<EventRow> = kinds.iter().map(|(k, o)| row(k, *o)).collect();
        let got = last_state(&rows);
        assert_eq!((got.0, got.1.as_deref()), (state, operator), "{kinds:?}");
    }
}
