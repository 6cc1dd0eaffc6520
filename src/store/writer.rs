//! The event writer: how call and agent events get from the engine task to the database
//! without the engine ever waiting (DESIGN.md, "Store": "Writing never blocks the engine"),
//! and without one being lost while the database is away.
//!
//! [`spawn_writer`] returns an [`EventSink`], which the engine task owns, and a
//! [`WriterHandle`] for the runtime's shutdown. Between them is a bounded tokio channel of
//! [`LogEvent`]s: call events and agent events share it, so they are written in the order
//! the engine emitted them, with the same batching, journal and shutdown flush.
//!
//! The writer task takes what is queued and what arrives within [`GATHER`] of it (up to
//! [`super::MAX_BATCH`] events: one commit and fsync per batch, not per event) and writes
//! it in one transaction ([`super::Store::write_batch`]).
//!
//! **Unreachable or slow database, with a journal** ([`WriterOptions::journal`],
//! `database.journal`): a batch that fails, or is not committed within
//! [`WriterOptions::slow`] ([`SLOW_COMMIT`], 2 s: a healthy commit takes milliseconds), is
//! appended to the [`Journal`] (fsync per batch) instead. From then on every new batch
//! goes to the journal too, behind it, so order is kept; the writer replays the journal
//! into the database a chunk of [`super::MAX_BATCH`] events per transaction, first after
//! 100 ms, then backing off (doubling to 5 s) while it keeps failing, and between chunks
//! takes new events into the journal. Once every journal line is committed the file is
//! emptied and batches go straight to the database again. A batch that timed out may
//! still commit in the database: its replay is then a no-op (event ids). A journal that
//! a previous process left is replayed first, before the events of this one.
//!
//! Overload behaviour, written down as STYLE.md asks: [`EventSink::push`] never blocks and
//! never drops. It `try_send`s into the channel; when the channel is full the event joins
//! an in-memory backlog in the sink, in order, and one warning is logged for the episode.
//! Each later `push`, and [`EventSink::flush_pending`], first moves what it can of the
//! backlog into the channel. With a journal the writer never waits on the database for
//! longer than [`WriterOptions::slow`] per batch, so while the database is away it
//! drains the channel at the disk's pace (an append and an fsync per batch of up to 256
//! events): the backlog spills to the journal instead of growing, and grows only while a
//! single commit attempt is pending or the disk itself stalls. Without a journal (an
//! in-memory SQLite database) the writer retries the same batch in place (backoff 100 ms
//! doubling to 5 s) and memory holds the backlog until the database returns.
//!
//! **Start-up** ([`WriterOptions::start_up`], `siaga run`): the writer's first database
//! action is the start-up recovery of `recovery.rs`, in this order: migrate (when the
//! store was opened on the journal, [`Store::open_or_defer`]); replay the journal lines the
//! previous process left ([`Journal::inherited`]); close this node's calls left open and
//! log out its operators left logged in ([`super::close_left_open`]); then replay this
//! process's journal lines and go on as above. Until start-up is done every batch goes
//! to the journal, so the database holds none of this process's events when calls are
//! closed. Each step is retried with the replay's backoff while it fails (a database
//! that is down at start, or goes down during it), and new events keep going to the
//! journal meanwhile. Once it is done and the journal is empty the writer resolves the
//! receiver [`StartUp::new`] returned (the runtime then rebuilds the callback worklist).
//! Without a journal, start-up runs before the first batch, retried in place, and the
//! events wait in memory.
//!
//! **A batch the database refuses for its data** (a constraint, a value out of range or
//! too long: [`super::Failure::Data`], see `error_class.rs`; not an outage, which is
//! retried or journaled as above) would hold every later event behind it if retried.
//! The writer writes that batch (or journal chunk) again one event per transaction, in
//! order: the good events are committed, and each refused one is moved to the side file
//! `<journal>.quarantined` ([`Journal::quarantine`], the whole event, one line), counted
//! in [`WriterReport::quarantined`] and logged once with its id and the database's error
//! (which names the constraint, not the value: no personal data). If the database fails
//! for another reason during this, the rest of the batch is handled as an outage; a
//! journal chunk is then read again later, so an event quarantined just before may be
//! quarantined twice (same id). Without a journal (in-memory SQLite) a refused event is
//! logged the same way and counted, but kept nowhere.
//!
//! What a `kill -9` can lose: the events the engine emitted that are neither committed nor
//! in the journal yet: those in the channel and the batch being gathered or written,
//! at most [`GATHER`] plus one commit attempt (bounded by [`WriterOptions::slow`]) old.
//! README, "Durability", gives the measured figure.
//!
//! Shutdown, in this order: drop the sink or call [`EventSink::close`] (which hands its
//! backlog to the channel), then [`WriterHandle::shutdown`], which waits until every event
//! handed over is committed or in the journal. Once the channel is empty it replays the
//! journal while the database accepts it; what the journal still holds then stays for the
//! next start ([`WriterReport::journaled`]). It waits at most [`SHUTDOWN_GRACE`] for the
//! sink to go; without a journal, it waits that long for a failing database to come back,
//! and what is still unwritten then is counted in [`WriterReport::unwritten`] and logged.

use super::journal::{Chunk, Journal};
use super::{Failure, LogEvent, MAX_BATCH, Store};
use rand::rngs::StdRng;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A channel capacity that suits a node: about 400 calls' worth of events, far more than
/// a city's calls make while the writer commits one batch.
pub const QUEUE_CAPACITY: usize = 4096;

/// How long [`WriterHandle::shutdown`] waits, from its call, for the sink to be dropped or
/// closed and (without a journal) for a failing database to come back, before it gives
/// up on the events it still holds.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// "Slow": a batch not committed within this is treated as failed and goes to the
/// journal. A healthy commit of a batch takes milliseconds (README, "Durability"); a
/// PostgreSQL that stopped answering would otherwise hold a batch for the pool's acquire
/// timeout (5 s) or a TCP timeout (minutes).
pub const SLOW_COMMIT: Duration = Duration::from_secs(2);

/// First wait before retrying a failed batch or journal replay; doubles on each failure
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Longest time one attempt of start-up recovery's migrations or of
/// [`super::close_left_open`] (a few reads and one batch per 128 calls left open) may take
/// before it counts as failed and is tried again. Whether the database answers at all is
/// probed first within [`WriterOptions::slow`].
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// How long the writer waits after an event for more to join its batch. Bounds how late
/// an event is written (and so what a crash can lose) by this plus the write itself.
pub const GATHER: Duration = Duration::from_millis(10);

/// Start-up recovery for the writer to run as its first database action (see the module
/// doc): `siaga run` gives one; tests of the writer alone may not.
#[derive(Debug)]
pub struct StartUp {
    /// Where the recovery's event ids come from.
    rng: StdRng,
    /// Resolved once start-up is done and the journal is empty.
    caught_up: oneshot::Sender<()>,
    /// Journal events of the previous process replayed.
    replayed: u64,
    /// Damaged lines among them.
    damaged: u64,
    /// Whether this process's events going to the journal was logged.
    journaling: bool,
}

impl StartUp {
    /// Start-up recovery whose event ids come from `rng`, and the receiver the writer
    /// resolves once it is done and every event handed over until then is in the
    /// database (the journal is empty). The receiver fails if the writer stops first.
    pub fn new(rng: StdRng) -> (StartUp, oneshot::Receiver<()>) {
        let (caught_up, done) = oneshot::channel();
        let start = StartUp {
            rng,
            caught_up,
            replayed: 0,
            damaged: 0,
            journaling: false,
        };
        (start, done)
    }
}

/// How [`spawn_writer_with`] sets the writer up.
#[derive(Debug)]
pub struct WriterOptions {
    /// The channel's capacity in events (at least 1; [`QUEUE_CAPACITY`] suits a node).
    pub capacity: usize,
    /// The journal (`database.journal`), already opened, possibly holding events of a
    /// previous process (replayed first). `None`: no journal (see the module doc).
    pub journal: Option<Journal>,
    /// A batch not committed within this goes to the journal ([`SLOW_COMMIT`]).
    pub slow: Duration,
    /// How long shutdown waits ([`SHUTDOWN_GRACE`]).
    pub grace: Duration,
    /// Start-up recovery, run before any event of this process is written (see the
    /// module doc); `None`: none (the store is migrated and recovered already).
    pub start_up: Option<StartUp>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            capacity: QUEUE_CAPACITY,
            journal: None,
            slow: SLOW_COMMIT,
            grace: SHUTDOWN_GRACE,
            start_up: None,
        }
    }
}

/// Starts the writer task, which writes events as node `node_id`, behind a channel of
/// `capacity` events (at least 1; [`QUEUE_CAPACITY`] suits a node), without a journal.
/// Returns the sink the engine task pushes into and the handle for shutdown.
///
/// Panics when called outside a Tokio runtime (it spawns the task).
pub fn spawn_writer(store: Store, node_id: String, capacity: usize) -> (EventSink, WriterHandle) {
    spawn_writer_with(
        store,
        node_id,
        WriterOptions {
            capacity,
            ..WriterOptions::default()
        },
    )
}

/// [`spawn_writer`] with a shutdown grace period of `grace` (tests).
#[cfg(test)]
pub(super) fn spawn_with_grace(
    store: Store,
    node_id: String,
    capacity: usize,
    grace: Duration,
) -> (EventSink, WriterHandle) {
    let options = WriterOptions {
        capacity,
        grace,
        ..WriterOptions::default()
    };
    spawn_writer_with(store, node_id, options)
}

/// Starts the writer task as `options` say (with a journal, in particular). Returns the
/// sink the engine task pushes into and the handle for shutdown.
///
/// Panics when called outside a Tokio runtime (it spawns the task).
pub fn spawn_writer_with(
    store: Store,
    node_id: String,
    options: WriterOptions,
) -> (EventSink, WriterHandle) {
    let (tx, rx) = mpsc::channel(options.capacity.max(1));
    let (stop_tx, stop_rx) = oneshot::channel();
    // Start-up, and a journal left by a previous process, come before anything else is
    // written (without a journal, start-up runs first in `run`).
    let replay_at = options
        .journal
        .as_ref()
        .filter(|j| j.held() > 0 || options.start_up.is_some())
        .map(|_| Instant::now());
    let journal_events = Arc::new(AtomicU64::new(
        options.journal.as_ref().map_or(0, Journal::held),
    ));
    let writer = Writer {
        journal_events: Arc::clone(&journal_events),
        store,
        node_id,
        rx,
        stop: Some(stop_rx),
        grace: options.grace,
        slow: options.slow,
        deadline: None,
        closed: false,
        journal: options.journal,
        replay_at,
        replay_delay: RETRY_FIRST,
        start_up: options.start_up,
        caught_up: None,
        report: WriterReport::default(),
    };
    let task = tokio::spawn(writer.run());
    let sink = EventSink {
        tx,
        backlog: VecDeque::new(),
        episode_peak: 0,
        writer_gone_logged: false,
        pushed: 0,
        journal_events,
    };
    let handle = WriterHandle {
        stop: stop_tx,
        task,
    };
    (sink, handle)
}

/// The engine task's end of the writer: [`EventSink::push`] never blocks and never drops
/// an event (see the module doc for the overload behaviour).
///
/// Dropping it with events in its backlog hands them to the writer from a spawned task
/// (within a Tokio runtime; outside one they are lost and logged); [`EventSink::close`]
/// does the same and waits for it.
#[derive(Debug)]
pub struct EventSink {
    tx: mpsc::Sender<LogEvent>,
    /// Events not yet in the channel, oldest first.
    backlog: VecDeque<LogEvent>,
    /// The largest backlog of the current overload episode; 0 when there is none.
    episode_peak: usize,
    /// Whether the writer's absence was logged already.
    writer_gone_logged: bool,
    /// Events pushed since the start.
    pushed: u64,
    /// Events the journal holds, as the writer last set it.
    journal_events: Arc<AtomicU64>,
}

impl EventSink {
    /// Hands `event` (a [`CallEvent`](crate::engine::record::CallEvent), an
    /// [`AgentEvent`](crate::engine::record::AgentEvent) or a [`LogEvent`]) to the writer,
    /// after the backlog: into the channel when there is room, else into the backlog.
    /// Never blocks, never drops.
    pub fn push(&mut self, event: impl Into<LogEvent>) {
        self.pushed += 1;
        self.backlog.push_back(event.into());
        self.flush_pending();
    }

    /// Moves what fits of the backlog into the channel and returns how many events are
    /// still held. The runtime calls it now and then (e.g. on each turn of the engine
    /// loop) so a backlog drains even when no new events come.
    pub fn flush_pending(&mut self) -> usize {
        while let Some(event) = self.backlog.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    break;
                }
                Err(TrySendError::Closed(event)) => {
                    self.backlog.push_front(event);
                    if !self.writer_gone_logged {
                        self.writer_gone_logged = true;
                        tracing::error!(
                            held = self.backlog.len(),
                            "the event writer has stopped; holding events in memory"
                        );
                    }
                    break;
                }
            }
        }
        let held = self.backlog.len();
        if held == 0 {
            if self.episode_peak > 0 {
                tracing::info!(
                    peak = self.episode_peak,
                    "event writer caught up; backlog empty"
                );
                self.episode_peak = 0;
            }
        } else {
            if self.episode_peak == 0 {
                tracing::warn!(
                    "event queue full: the writer is behind or the database is \
                     unavailable; holding events in memory until it catches up"
                );
            }
            self.episode_peak = self.episode_peak.max(held);
        }
        held
    }

    /// Events pushed since the sink was made: siaga's own count of the events it recorded
    /// (logged at shutdown), to compare with the database's.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Events held in the backlog (not yet in the channel).
    pub fn pending(&self) -> usize {
        self.backlog.len()
    }

    /// Events handed over and not yet taken by the writer: the channel's and the
    /// backlog's (the store queue depth of `/metrics`).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.backlog.len()
    }

    /// Events the writer's journal holds, not yet replayed into the database (the journal
    /// size of `/metrics`); 0 without a journal. The writer updates it after each append
    /// and each replayed chunk, so it may lag the file by one operation; reading it is one
    /// atomic load.
    pub fn journal_events(&self) -> u64 {
        self.journal_events.load(Ordering::Relaxed)
    }

    /// Hands the whole backlog to the writer, waiting for room in the channel, then closes
    /// the sink. Returns how many events could not be handed over because the writer had
    /// stopped (0 normally; they are logged as lost).
    pub async fn close(mut self) -> usize {
        let backlog = std::mem::take(&mut self.backlog);
        send_all(self.tx.clone(), backlog).await
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        if self.backlog.is_empty() {
            return;
        }
        let backlog = std::mem::take(&mut self.backlog);
        match tokio::runtime::Handle::try_current() {
            // The spawned task holds a sender, so the writer keeps reading until it is done.
            Ok(runtime) => drop(runtime.spawn(send_all(self.tx.clone(), backlog))),
            Err(_) => tracing::error!(
                lost = backlog.len(),
                "event sink dropped outside a Tokio runtime; its backlog is lost"
            ),
        }
    }
}

/// Sends `events` in order, waiting for room; returns how many were not sent because the
/// writer had stopped.
async fn send_all(tx: mpsc::Sender<LogEvent>, mut events: VecDeque<LogEvent>) -> usize {
    while let Some(event) = events.pop_front() {
        if tx.send(event).await.is_err() {
            let lost = events.len() + 1;
            tracing::error!(lost, "the event writer has stopped; events lost");
            return lost;
        }
    }
    0
}

/// The runtime's end of the writer, for a graceful stop.
#[derive(Debug)]
pub struct WriterHandle {
    stop: oneshot::Sender<()>,
    task: JoinHandle<WriterReport>,
}

/// What the writer did, returned by [`WriterHandle::shutdown`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Events in committed batches, directly or replayed from the journal (an event the
    /// database already held counts too).
    pub written: u64,
    /// Events appended to the journal (each counted once, when appended).
    pub spilled: u64,
    /// Events the journal still holds at the end, for the next start to replay.
    pub journaled: u64,
    /// Events the database refused for their data, moved to `<journal>.quarantined`
    /// (see the module doc).
    pub quarantined: u64,
    /// Events given up on at shutdown: without a journal, the database stayed unavailable
    /// (or the sink was not dropped or closed) for [`SHUTDOWN_GRACE`]; with one, the
    /// journal could not be written either. 0 after a clean stop.
    pub unwritten: u64,
}

impl WriterHandle {
    /// Stops the writer once everything handed to it is committed or journaled: it keeps
    /// taking events until the sink is dropped or closed (and a dropped sink's backlog is
    /// handed over), stores them, replays the journal while the database accepts it, and
    /// returns. Gives up after [`SHUTDOWN_GRACE`], counting what it could not store in
    /// [`WriterReport::unwritten`].
    ///
    /// Dropping the handle instead detaches the writer: it runs until the sink is gone.
    pub async fn shutdown(self) -> WriterReport {
        // An error means the writer has already returned; its report is in the task.
        let _ = self.stop.send(());
        match self.task.await {
            Ok(report) => report,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => {
                tracing::error!(%error, "the event writer task was cancelled");
                WriterReport::default()
            }
        }
    }
}

/// The writer task's state.
struct Writer {
    store: Store,
    node_id: String,
    rx: mpsc::Receiver<LogEvent>,
    /// The stop request; `None` once it arrived or the handle was dropped.
    stop: Option<oneshot::Receiver<()>>,
    /// How long to wait after the stop request ([`SHUTDOWN_GRACE`]).
    grace: Duration,
    /// A commit not done within this counts as failed ([`SLOW_COMMIT`]).
    slow: Duration,
    /// When stopping: when to give up.
    deadline: Option<Instant>,
    /// Whether the channel was closed at the deadline (only buffered events remain).
    closed: bool,
    /// The journal, if configured.
    journal: Option<Journal>,
    /// [`Journal::held`], published for [`EventSink::journal_events`].
    journal_events: Arc<AtomicU64>,
    /// When to try the next journal chunk; `None` while the journal holds nothing.
    replay_at: Option<Instant>,
    /// The wait after the next failed replay.
    replay_delay: Duration,
    /// Start-up recovery, while it is not done.
    start_up: Option<StartUp>,
    /// Start-up's receiver, resolved once the journal is empty after start-up.
    caught_up: Option<oneshot::Sender<()>>,
    report: WriterReport,
}

/// What the writer does next.
enum Step {
    /// Store this event (and what joins its batch).
    Event(LogEvent),
    /// Replay a chunk of the journal.
    Replay,
    /// The channel is closed and empty.
    Done,
}

impl Writer {
    async fn run(mut self) -> WriterReport {
        if self.journal.is_none() && !self.start_up_in_place().await {
            return self.give_up(0);
        }
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let event = match self.next_step().await {
                Step::Event(event) => event,
                Step::Replay => {
                    self.replay_step().await;
                    continue;
                }
                Step::Done => break,
            };
            batch.push(event);
            // Gather what arrives within GATHER of the first event: one commit (and one
            // fsync) per batch, not per event, when calls come fast.
            let until = Instant::now() + GATHER;
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) if self.deadline.is_some() => break,
                    Err(_) => match tokio::time::timeout_at(until, self.rx.recv()).await {
                        Ok(Some(event)) => batch.push(event),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            if !self.store_batch(&batch).await {
                return self.give_up(batch.len());
            }
            batch.clear();
        }
        // Everything handed over is committed or journaled: replay while the database
        // takes it; what is left stays in the journal for the next start.
        while self.replay_at.is_some() {
            if !self.replay_step().await {
                break;
            }
        }
        self.report.journaled = self.journal.as_ref().map_or(0, Journal::held);
        if self.report.journaled > 0 {
            tracing::warn!(
                events = self.report.journaled,
                journal = %self.journal_path(),
                "database unavailable at shutdown: events kept in the journal for the next start"
            );
        }
        self.report
    }

    /// What to do next: an event from the channel, a journal replay when one is due, or
    /// stop.
    async fn next_step(&mut self) -> Step {
        loop {
            tokio::select! {
                event = self.rx.recv() => return event.map_or(Step::Done, Step::Event),
                () = wait_until(self.replay_at) => return Step::Replay,
                requested = wait_stop(&mut self.stop) => self.on_stop(requested),
                () = wait_until(self.deadline), if !self.closed => {
                    // The sink outlived the grace period: take what is buffered, no more.
                    self.closed = true;
                    self.rx.close();
                    tracing::error!(
                        grace = ?self.grace,
                        "event sink still open after shutdown; writing what was handed over"
                    );
                }
            }
        }
    }

    fn on_stop(&mut self, requested: bool) {
        self.stop = None;
        if requested {
            self.deadline = Some(Instant::now() + self.grace);
        }
    }

    fn journal_path(&self) -> String {
        self.journal
            .as_ref()
            .map_or_else(String::new, |j| j.path().display().to_string())
    }

    /// Whether batches must go to the journal: it holds events not yet replayed, or
    /// start-up is not done.
    fn spilling(&self) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|j| j.held() > 0 || self.start_up.is_some())
    }

    /// Commits `batch` within `slow`; the error, or `None` when it was too slow.
    async fn commit(&self, batch: &[LogEvent]) -> Result<(), Option<super::StoreError>> {
        match tokio::time::timeout(self.slow, self.store.write_batch(&self.node_id, batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Some(error)),
            Err(_) => Err(None),
        }
    }

    /// Stores `batch`: in the database when the journal is empty and the database commits
    /// it in time, else in the journal. Retries (backoff) only when neither works; false
    /// when it gave up at the shutdown deadline.
    async fn store_batch(&mut self, batch: &[LogEvent]) -> bool {
        let mut batch = batch;
        let mut delay = RETRY_FIRST;
        let mut failures: u32 = 0;
        loop {
            if !self.spilling() {
                match self.commit(batch).await {
                    Err(Some(error)) if error.failure() == Failure::Data => {
                        match self.isolate(batch, &error).await {
                            Ok(()) => return true,
                            // The database failed otherwise: the rest as an outage.
                            Err(at) => batch = &batch[at..],
                        }
                    }
                    Ok(()) => {
                        if failures > 0 {
                            tracing::info!(failures, "events are being written again");
                        }
                        self.report.written += batch.len() as u64;
                        return true;
                    }
                    Err(error) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(10) {
                            let error = error.map_or_else(
                                || format!("not committed within {:?}", self.slow),
                                |e| e.to_string(),
                            );
                            tracing::warn!(
                                %error, failures, batch = batch.len(),
                                journal = %self.journal_path(),
                                "cannot write events to the database"
                            );
                        }
                    }
                }
            }
            if let Some(journal) = &mut self.journal {
                let was_empty = journal.held() == 0;
                match journal.append(batch).await {
                    Ok(()) => {
                        self.journal_events.store(journal.held(), Ordering::Relaxed);
                        self.report.spilled += batch.len() as u64;
                        if let Some(start) = &mut self.start_up {
                            // Once, whether or not a previous process left lines.
                            if !start.journaling {
                                start.journaling = true;
                                tracing::info!(
                                    journal = %journal.path().display(),
                                    "events go to the journal until start-up recovery is done"
                                );
                            }
                        } else if was_empty {
                            tracing::warn!(
                                journal = %journal.path().display(),
                                "events go to the journal until the database takes them again"
                            );
                            self.replay_delay = RETRY_FIRST;
                        }
                        self.replay_at
                            .get_or_insert_with(|| Instant::now() + RETRY_FIRST);
                        return true;
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::error!(%error, batch = batch.len(), "cannot journal events");
                    }
                }
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            let mut wake = Instant::now() + delay;
            if let Some(deadline) = self.deadline {
                wake = wake.min(deadline);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                requested = wait_stop(&mut self.stop) => self.on_stop(requested),
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// Replays the next chunk of the journal into the database; true when it was
    /// committed (the next chunk is due at once, or the journal is empty now).
    async fn replay_chunk(&mut self) -> bool {
        self.replay_at = None;
        let Some(journal) = &mut self.journal else {
            return false;
        };
        let chunk = match journal.read_chunk(MAX_BATCH).await {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::error!(%error, "cannot read the journal");
                return self.replay_failed();
            }
        };
        report_damage(journal, &chunk);
        if let Some(start) = &mut self.start_up {
            start.damaged += chunk.damaged.len() as u64;
        }
        let quarantined_before = self.report.quarantined;
        let mut committed = self.commit(&chunk.events).await;
        if let Err(Some(error)) = &committed
            && error.failure() == Failure::Data
        {
            let written = self.report.written;
            committed = self.isolate(&chunk.events, error).await.map_err(|_| None);
            // Counted below with the chunk once it is through; cut short, the chunk is
            // read again and its events counted then, not twice.
            self.report.written = written;
        }
        if let Err(error) = committed {
            let failures = self.replay_delay.as_millis() / RETRY_FIRST.as_millis();
            if self.replay_delay == RETRY_MAX || failures.is_power_of_two() {
                let error = error.map_or_else(
                    || format!("not committed within {:?}", self.slow),
                    |e| e.to_string(),
                );
                tracing::warn!(%error, held = self.journal.as_ref().map_or(0, Journal::held),
                    "journal replay: database still unavailable");
            }
            return self.replay_failed();
        }
        let written = chunk.events.len() as u64 - (self.report.quarantined - quarantined_before);
        self.report.written += written;
        if let Some(start) = &mut self.start_up {
            start.replayed += written;
        }
        let Some(journal) = &mut self.journal else {
            return false;
        };
        if let Err(error) = journal.advance(&chunk).await {
            // The events are committed; replaying them again is a no-op.
            tracing::error!(%error, "cannot empty the journal after replaying it");
            return self.replay_failed();
        }
        self.journal_events.store(journal.held(), Ordering::Relaxed);
        if journal.held() > 0 || self.start_up.is_some() {
            self.replay_at = Some(Instant::now());
        } else {
            tracing::info!(
                journal = %journal.path().display(),
                "journal replayed: events go to the database again"
            );
            self.replay_delay = RETRY_FIRST;
            if let Some(caught_up) = self.caught_up.take() {
                // Nobody waiting is no error: the runtime may have stopped already.
                let _ = caught_up.send(());
            }
        }
        true
    }

    /// The next replay step: start-up while it is not done, else a chunk of the journal.
    /// True when it succeeded; on failure the retry is scheduled (backoff).
    async fn replay_step(&mut self) -> bool {
        if self.start_up.is_none() {
            return self.replay_chunk().await;
        }
        self.replay_at = None;
        if !self.start_up_step().await {
            return false;
        }
        if self.start_up.is_some() || self.journal.as_ref().is_some_and(|j| j.held() > 0) {
            // More to do: the next step at once.
            self.replay_at.get_or_insert_with(Instant::now);
        }
        true
    }

    /// One step of start-up (see the module doc): migrate if the store was opened on the
    /// journal, else replay a chunk of the previous process's journal lines, else close
    /// what it left open. True when the step succeeded, else the retry is scheduled
    /// (`replay_at`, backoff). `self.start_up` is `None` once the last step succeeded
    /// (and, with the journal empty, the start-up receiver is resolved then).
    async fn start_up_step(&mut self) -> bool {
        if !self.store.is_answered() {
            // A probe within the commit bound first: the pool would wait its acquire
            // timeout (5 s) for a server that is down, and new events wait meanwhile.
            match tokio::time::timeout(self.slow, self.store.select_one()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    self.start_up_failed(&error);
                    return false;
                }
                Err(_) => {
                    self.start_up_failed(&format!("no answer within {:?}", self.slow));
                    return false;
                }
            }
            match tokio::time::timeout(RECOVERY_BOUND, self.store.migrate()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    self.start_up_failed(&error);
                    return false;
                }
                Err(_) => {
                    self.start_up_failed(&format!("not migrated within {RECOVERY_BOUND:?}"));
                    return false;
                }
            }
            tracing::info!("the database answers: migrated; start-up recovery follows");
        }
        if self.journal.as_ref().is_some_and(|j| j.inherited() > 0) {
            // On failure replay_chunk logs and schedules the retry itself.
            return self.replay_chunk().await;
        }
        let Some(start) = &mut self.start_up else {
            return true;
        };
        let closing = super::close_left_open(&self.store, &self.node_id, &mut start.rng);
        let mut recovery = match tokio::time::timeout(RECOVERY_BOUND, closing).await {
            Ok(Ok(recovery)) => recovery,
            Ok(Err(error)) => {
                self.start_up_failed(&error);
                return false;
            }
            Err(_) => {
                self.start_up_failed(&format!("not done within {RECOVERY_BOUND:?}"));
                return false;
            }
        };
        let Some(start) = self.start_up.take() else {
            return true;
        };
        recovery.replayed = start.replayed;
        recovery.damaged = start.damaged;
        recovery.log();
        self.replay_delay = RETRY_FIRST;
        tracing::info!(
            interrupted = recovery.interrupted.len(),
            logged_out = recovery.logged_out.len(),
            "start-up recovery done"
        );
        if self.journal.as_ref().is_none_or(|j| j.held() == 0) {
            // Nobody waiting is no error: the runtime may have stopped already.
            let _ = start.caught_up.send(());
        } else {
            self.caught_up = Some(start.caught_up);
        }
        true
    }

    /// Logs a failed start-up step (at the first failure, then each time the backoff
    /// doubles, then every [`RETRY_MAX`]) and schedules the retry.
    fn start_up_failed(&mut self, error: &dyn std::fmt::Display) {
        let failures = self.replay_delay.as_millis() / RETRY_FIRST.as_millis();
        if self.replay_delay == RETRY_MAX || failures.is_power_of_two() {
            tracing::warn!(
                %error,
                "start-up recovery waits for the database (migrations, the previous \
                 process's journal, calls left open); new events go to the journal"
            );
        }
        self.replay_failed();
    }

    /// Start-up without a journal: retried in place (backoff) until it is done, before
    /// any event is taken; false when it gave up at the shutdown deadline.
    async fn start_up_in_place(&mut self) -> bool {
        while self.start_up.is_some() {
            if self.start_up_step().await {
                continue;
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            let mut wake = self.replay_at.take().unwrap_or_else(Instant::now);
            if let Some(deadline) = self.deadline {
                wake = wake.min(deadline);
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                requested = wait_stop(&mut self.stop) => self.on_stop(requested),
            }
        }
        self.replay_at = None;
        true
    }

    /// Writes `events`, which the database refused as one batch with the data error
    /// `refused`, one per transaction, in order: commits the good ones (counted in
    /// `written`) and quarantines each one refused for its data. `Err(i)`: event `i`
    /// failed otherwise (an outage, or the quarantine file could not be written); it and
    /// those after it are not written.
    async fn isolate(
        &mut self,
        events: &[LogEvent],
        refused: &super::StoreError,
    ) -> Result<(), usize> {
        tracing::warn!(
            error = %refused,
            batch = events.len(),
            "the database refuses a batch for its data: writing its events one by one"
        );
        for (i, event) in events.iter().enumerate() {
            match self.commit(std::slice::from_ref(event)).await {
                Ok(()) => self.report.written += 1,
                Err(Some(error)) if error.failure() == Failure::Data => {
                    if !self.quarantine(event, &error).await {
                        return Err(i);
                    }
                }
                Err(_) => return Err(i),
            }
        }
        Ok(())
    }

    /// Moves `event`, refused by the database with `error`, to `<journal>.quarantined`
    /// and logs it once (its id and the database's error, no personal data). False when
    /// the quarantine file could not be written (the event is then kept as in an outage).
    async fn quarantine(&mut self, event: &LogEvent, error: &super::StoreError) -> bool {
        let (kind, id) = match event {
            LogEvent::Call(event) => ("call", event.id),
            LogEvent::Agent(event) => ("agent", event.id),
        };
        let kept_in = match &self.journal {
            Some(journal) => {
                if let Err(journal_error) = journal.quarantine(event).await {
                    tracing::error!(%journal_error, event = %id, "cannot quarantine an event");
                    return false;
                }
                super::journal::quarantined_path(journal.path())
                    .display()
                    .to_string()
            }
            None => "nowhere (no journal)".to_owned(),
        };
        self.report.quarantined += 1;
        tracing::error!(
            %error, kind, event = %id, kept_in,
            "the database refuses this event for its data: quarantined, later events go on"
        );
        true
    }

    /// Schedules the next replay after a failure (backoff); returns false.
    fn replay_failed(&mut self) -> bool {
        self.replay_at = Some(Instant::now() + self.replay_delay);
        self.replay_delay = (self.replay_delay * 2).min(RETRY_MAX);
        false
    }

    /// Gives up at the deadline with `held` events unwritten, plus those still queued.
    fn give_up(mut self, held: usize) -> WriterReport {
        self.rx.close();
        let mut unwritten = held as u64;
        while self.rx.try_recv().is_ok() {
            unwritten += 1;
        }
        tracing::error!(
            unwritten,
            "the database (and journal, if any) stayed unavailable through shutdown; events lost"
        );
        self.report.unwritten = unwritten;
        self.report.journaled = self.journal.as_ref().map_or(0, Journal::held);
        self.report
    }
}

/// Logs the damaged lines of `chunk`, if any.
fn report_damage(journal: &Journal, chunk: &Chunk) {
    for damage in &chunk.damaged {
        tracing::error!(
            journal = %journal.path().display(),
            line = damage.line,
            offset = damage.offset,
            reason = %damage.reason,
            kept_in = %super::journal::damaged_path(journal.path()).display(),
            "journal line damaged: skipped (the intact lines are replayed)"
        );
    }
}

/// Resolves when a stop is requested (`true`) or the handle is dropped (`false`); never
/// when there is nothing to wait for.
async fn wait_stop(stop: &mut Option<oneshot::Receiver<()>>) -> bool {
    match stop {
        Some(rx) => rx.await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Resolves at `deadline`; never when there is none.
async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
