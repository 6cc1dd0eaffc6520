//! The event writer: how call and agent events get from the engine task to the database
//! without the engine ever waiting (DESIGN.md, "Store": "Writing never blocks the engine").
//!
//! [`spawn_writer`] returns an [`EventSink`], which the engine task owns, and a
//! [`WriterHandle`] for the runtime's shutdown. Between them is a bounded tokio channel of
//! [`LogEvent`]s: call events and agent events share it, so they are written in the order
//! the engine emitted them, with the same batching, retries and shutdown flush.
//!
//! Overload behaviour, written down as STYLE.md asks: [`EventSink::push`] never blocks and
//! never drops. It `try_send`s into the channel; when the channel is full (the writer is
//! behind, or the database is unavailable and the writer is retrying) the event joins an
//! in-memory backlog in the sink, in order, and one warning is logged for the episode.
//! Each later `push`, and [`EventSink::flush_pending`], first moves what it can of the
//! backlog into the channel; when the backlog empties, one line says so. The backlog is
//! unbounded: an event is never the thing that gets dropped, and memory is what holds
//! them until the database returns. (A journal file that also survives a restart while the
//! database is down is a later issue.)
//!
//! The writer task takes what is queued and what arrives within [`GATHER`] of it (up to
//! [`super::MAX_BATCH`] events: one commit and fsync per batch, not per event), writes it in
//! one transaction ([`super::Store::write_batch`]) and, when that fails, retries the same
//! batch with exponential backoff (100 ms doubling to 5 s) until it succeeds, so events
//! reach the database in the order they were pushed.
//!
//! Shutdown, in this order: drop the sink or call [`EventSink::close`] (which hands its
//! backlog to the channel), then [`WriterHandle::shutdown`], which waits until every event
//! handed over is written. It waits at most [`SHUTDOWN_GRACE`] for the sink to go and for
//! a failing database to come back; what is still unwritten then is counted in the
//! [`WriterReport`] and logged as an error.

use super::LogEvent;
use super::{MAX_BATCH, Store};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A channel capacity that suits a node: about 400 calls' worth of events, far more than
/// a city's calls make while the writer commits one batch.
pub const QUEUE_CAPACITY: usize = 4096;

/// How long [`WriterHandle::shutdown`] waits, from its call, for the sink to be dropped or
/// closed and for a failing database to come back, before it gives up on the events it
/// still holds.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// First wait before retrying a failed batch; doubles on each failure up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between retries of a failed batch.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Starts the writer task, which writes events as node `node_id`, behind a channel of
/// `capacity` events (at least 1; [`QUEUE_CAPACITY`] suits a node). Returns the sink the
/// engine task pushes into and the handle for shutdown.
///
/// Panics when called outside a Tokio runtime (it spawns the task).
pub fn spawn_writer(store: Store, node_id: String, capacity: usize) -> (EventSink, WriterHandle) {
    spawn_with_grace(store, node_id, capacity, SHUTDOWN_GRACE)
}

/// [`spawn_writer`] with another shutdown grace period (tests).
pub(super) fn spawn_with_grace(
    store: Store,
    node_id: String,
    capacity: usize,
    grace: Duration,
) -> (EventSink, WriterHandle) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let (stop_tx, stop_rx) = oneshot::channel();
    let writer = Writer {
        store,
        node_id,
        rx,
        stop: Some(stop_rx),
        grace,
        deadline: None,
        closed: false,
        written: 0,
    };
    let task = tokio::spawn(writer.run());
    let sink = EventSink {
        tx,
        backlog: VecDeque::new(),
        episode_peak: 0,
        writer_gone_logged: false,
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
}

impl EventSink {
    /// Hands `event` (a [`CallEvent`](crate::engine::record::CallEvent), an
    /// [`AgentEvent`](crate::engine::record::AgentEvent) or a [`LogEvent`]) to the writer,
    /// after the backlog: into the channel when there is room, else into the backlog.
    /// Never blocks, never drops.
    pub fn push(&mut self, event: impl Into<LogEvent>) {
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

    /// Events held in the backlog (not yet in the channel).
    pub fn pending(&self) -> usize {
        self.backlog.len()
    }

    /// Events handed over and not yet taken by the writer: the channel's and the
    /// backlog's (the store queue depth of `/metrics`).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.backlog.len()
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
    /// Events in committed batches (an event the database already held counts too).
    pub written: u64,
    /// Events given up on at shutdown: the database stayed unavailable, or the sink was
    /// not dropped or closed, for [`SHUTDOWN_GRACE`]. 0 after a clean stop.
    pub unwritten: u64,
}

impl WriterHandle {
    /// Stops the writer once everything handed to it is written: it keeps taking events
    /// until the sink is dropped or closed (and a dropped sink's backlog is handed over),
    /// writes them, and returns. Gives up after [`SHUTDOWN_GRACE`], counting what it
    /// could not write in [`WriterReport::unwritten`].
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
    /// When stopping: when to give up.
    deadline: Option<Instant>,
    /// Whether the channel was closed at the deadline (only buffered events remain).
    closed: bool,
    /// Events in committed batches.
    written: u64,
}

/// How long the writer waits after an event for more to join its batch. Bounds how late
/// an event is written (and so what a crash can lose) by this plus the write itself.
pub const GATHER: Duration = Duration::from_millis(10);

impl Writer {
    async fn run(mut self) -> WriterReport {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(event) = self.next_event().await {
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
            if !self.write(&batch).await {
                return self.give_up(batch.len());
            }
            batch.clear();
        }
        WriterReport {
            written: self.written,
            unwritten: 0,
        }
    }

    /// The next event; `None` when the channel is closed and empty.
    async fn next_event(&mut self) -> Option<LogEvent> {
        loop {
            tokio::select! {
                event = self.rx.recv() => return event,
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

    /// Writes `batch`, retrying with backoff; false when it gave up at the deadline.
    async fn write(&mut self, batch: &[LogEvent]) -> bool {
        let mut delay = RETRY_FIRST;
        let mut failures: u32 = 0;
        loop {
            match self.store.write_batch(&self.node_id, batch).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "events are being written again");
                    }
                    self.written += batch.len() as u64;
                    return true;
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(
                            %error, failures, batch = batch.len(),
                            "cannot write events; holding them and retrying"
                        );
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

    /// Gives up at the deadline with `held` events unwritten, plus those still queued.
    fn give_up(mut self, held: usize) -> WriterReport {
        self.rx.close();
        let mut unwritten = held as u64;
        while self.rx.try_recv().is_ok() {
            unwritten += 1;
        }
        tracing::error!(
            unwritten,
            "the database stayed unavailable through shutdown; events lost"
        );
        WriterReport {
            written: self.written,
            unwritten,
        }
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
