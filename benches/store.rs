//! Store benchmark (issue 6, "Measure"): call events persisted per second on SQLite and on
//! PostgreSQL with the writer's batching, the commit time of one batch at a city's event
//! rate (which, with `store::GATHER`, bounds what a `kill -9` can lose), and the journal:
//! append rate (fsync per batch) and replay rate after an outage.
//!
//! Run: `cargo bench --bench store` (SQLite in a temporary directory; PostgreSQL too when
//! `SIAGA_TEST_POSTGRES_URL` names a server, e.g. `postgres://postgres@127.0.0.1:5432/postgres`:
//! a database `siaga_bench_<pid>` is created there and dropped at the end).
//! `SIAGA_BENCH_CALLS` (default 2000) calls of 10 events each; `SIAGA_BENCH_RATE` (default
//! 100) calls/s for the paced run, 10 s long.

use rand::SeedableRng;
use rand::rngs::StdRng;
use siaga::config::DatabaseUrl;
use siaga::engine::UtcTime;
use siaga::engine::record::{CallEvent, CallEventKind, Disposition, Party};
use siaga::store::{self, Journal, LogEvent, Store, WriterOptions};
use sqlx::migrate::MigrateDatabase;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// 10 call events of one answered call (a little more than the 9 call and agent events an
/// answered call of the full-path benchmark makes, as `sip-tests/e2e-durability.sh`
/// counts them): received, queued, an unanswered offer, an answered one, a hold and
/// resume, ended, media.
fn call_events(call: u64, run: u64) -> Vec<LogEvent> {
    let id = |n: u64| Uuid::from_u64_pair(run << 32 | call, n);
    let at = UtcTime(1_800_000_000_000 + call as i64);
    let event = |n, kind| {
        LogEvent::Call(CallEvent {
            id: id(n),
            call: id(0),
            at,
            kind,
        })
    };
    let op = || "op-1".to_owned();
    vec![
        event(
            1,
            CallEventKind::Received {
                trunk_call_id: format!("bench-{call}@trunk"),
                caller: Some(format!("+62812{call:06}")),
                called: "112".to_owned(),
                original_called: None,
                trunk: "telco".to_owned(),
            },
        ),
        event(
            2,
            CallEventKind::Queued {
                queue: "112".to_owned(),
                priority: 0,
                repeat: false,
                skills: vec![],
            },
        ),
        event(3, CallEventKind::Offered { operator: op() }),
        event(4, CallEventKind::NoAnswer { operator: op() }),
        event(5, CallEventKind::Offered { operator: op() }),
        event(6, CallEventKind::Answered { operator: op() }),
        event(
            7,
            CallEventKind::Renegotiated {
                by: Party::Caller,
                direction: "sendonly".to_owned(),
            },
        ),
        event(
            8,
            CallEventKind::Renegotiated {
                by: Party::Caller,
                direction: "sendrecv".to_owned(),
            },
        ),
        event(
            9,
            CallEventKind::Ended {
                by: Party::Caller,
                disposition: Disposition::Answered,
            },
        ),
        event(
            10,
            CallEventKind::MediaRelayed {
                caller_to_operator: 3000,
                operator_to_caller: 2990,
            },
        ),
    ]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Events per second through the writer (batching, one transaction per batch), pushed as
/// fast as possible: from the first push until the writer reports everything written.
async fn writer_throughput(store: &Store, calls: u64, run: u64) -> f64 {
    let events: Vec<LogEvent> = (0..calls).flat_map(|c| call_events(c, run)).collect();
    let n = events.len();
    let start = Instant::now();
    let (mut sink, handle) =
        store::spawn_writer_with(store.clone(), "bench".to_owned(), WriterOptions::default());
    for event in events {
        sink.push(event);
    }
    sink.close().await;
    let report = handle.shutdown().await;
    assert_eq!(report.written, n as u64, "{report:?}");
    n as f64 / start.elapsed().as_secs_f64()
}

/// Commit times of the batches the writer makes at `rate` calls/s (10 events a call):
/// every `store::GATHER`, the events of that interval in one transaction, for 10 s.
async fn paced_commits(store: &Store, rate: u64, run: u64) -> Vec<Duration> {
    let interval = store::GATHER;
    let ticks = (Duration::from_secs(10).as_millis() / interval.as_millis()) as u64;
    let per_tick = rate as f64 * 10.0 * interval.as_secs_f64();
    let mut pending: Vec<LogEvent> = Vec::new();
    let mut made = 0.0;
    let mut call = 0;
    let mut times = Vec::new();
    let mut next = tokio::time::Instant::now();
    for _ in 0..ticks {
        made += per_tick;
        while (pending.len() as f64) < made {
            pending.extend(call_events(call, run));
            call += 1;
        }
        let take = made.floor() as usize;
        let batch: Vec<LogEvent> = pending.drain(..take.min(pending.len())).collect();
        made -= batch.len() as f64;
        if !batch.is_empty() {
            let t = Instant::now();
            store.write_batch("bench", &batch).await.expect("written");
            times.push(t.elapsed());
        }
        next += interval;
        tokio::time::sleep_until(next).await;
    }
    times.sort();
    times
}

/// Appends `calls` calls' events to a fresh journal in batches of `store::MAX_BATCH`
/// (fsync each) and returns the events/s, then replays it into `store` with
/// `store::recover` and returns that rate too.
async fn journal_rates(store: &Store, dir: &std::path::Path, calls: u64, run: u64) -> (f64, f64) {
    let path = dir.join(format!("bench-{run}.journal"));
    let events: Vec<LogEvent> = (0..calls).flat_map(|c| call_events(c, run)).collect();
    let mut journal = Journal::open(&path).await.expect("journal");
    let start = Instant::now();
    for batch in events.chunks(store::MAX_BATCH) {
        journal.append(batch).await.expect("appended");
    }
    let append = events.len() as f64 / start.elapsed().as_secs_f64();
    let mut journal = Journal::open(&path).await.expect("journal");
    let mut rng = StdRng::seed_from_u64(1);
    let start = Instant::now();
    let recovery = store::recover(store, Some(&mut journal), "bench", &mut rng)
        .await
        .expect("replayed");
    let replay = recovery.replayed as f64 / start.elapsed().as_secs_f64();
    assert_eq!(recovery.replayed, events.len() as u64);
    (append, replay)
}

async fn bench(name: &str, url: &DatabaseUrl, dir: &std::path::Path, calls: u64, rate: u64) {
    let store = Store::open(url).await.expect("the store opens");
    let throughput = writer_throughput(&store, calls, 1).await;
    let commits = paced_commits(&store, rate, 2).await;
    let (append, replay) = journal_rates(&store, dir, calls, 3).await;
    store.close().await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<10} {throughput:>12.0} {:>9.2} {:>9.2} {:>9.2} {append:>12.0} {replay:>12.0}",
        ms(percentile(&commits, 0.5)),
        ms(percentile(&commits, 0.99)),
        ms(*commits.last().expect("batches")),
    );
}

fn main() {
    let calls = env_u64("SIAGA_BENCH_CALLS", 2000);
    let rate = env_u64("SIAGA_BENCH_RATE", 100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    println!(
        "store benchmark: {calls} calls x 10 events; paced run {rate} calls/s = {} events/s for 10 s, one batch per {:?}",
        rate * 10,
        store::GATHER
    );
    println!(
        "{:<10} {:>12} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "backend", "writer ev/s", "p50 ms", "p99 ms", "max ms", "journal ev/s", "replay ev/s"
    );
    runtime.block_on(async {
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        let url = DatabaseUrl::parse(&sqlite).expect("a sqlite URL");
        bench("sqlite", &url, dir.path(), calls, rate).await;
        match std::env::var("SIAGA_TEST_POSTGRES_URL") {
            Ok(server) if !server.is_empty() => {
                let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
                let db = format!("{base}/siaga_bench_{}", std::process::id());
                let url = DatabaseUrl::parse(&db).expect("a postgres URL");
                bench("postgres", &url, dir.path(), calls, rate).await;
                if let Err(error) = sqlx::Postgres::drop_database(&db).await {
                    eprintln!("could not drop {db}: {error}");
                }
            }
            _ => println!("postgres   (skipped: SIAGA_TEST_POSTGRES_URL not set)"),
        }
    });
}
