//! The tokio shell around the sans-IO engine (the shape of mini-redis's server).
//!
//! [`bind`] binds the sockets; [`run`] takes them already bound (tests bind
//! `127.0.0.1:0`), starts the transports and runs the one engine task until `shutdown`
//! resolves. The engine task owns the [`Engine`]: for each input it reads the two clocks
//! once (monotonic for timers, UTC for records: clock reads happen here, never in the
//! engine), calls [`Engine::handle_input`], drains [`Engine::poll_output`] (sending each
//! [`Transmit`](crate::engine::Transmit)) until [`Output::Wait`], and sleeps until that
//! deadline to call [`Engine::handle_timeout`].
//!
//! Input queue: bounded ([`RunOptions::input_queue`]). When the engine falls behind,
//! receivers wait instead of dropping (see [`crate::transport`] for where the overload goes).
//!
//! The HTTP API ([`RunOptions::api`]) serves beside the engine task; its requests reach the
//! task through their own bounded queue ([`crate::api::link`]), which is full rather than
//! waited on. It stops taking requests when the shutdown starts.
//!
//! Shutdown: when `shutdown` resolves, the engine ends every live call
//! ([`Engine::shutdown`]: BYE, 503, CANCEL; records `interrupted`) and siaga keeps reading
//! until each request it sent has its final response, at most [`SHUTDOWN_GRACE`]. Then
//! receivers stop reading and the input queue is closed; the engine task handles the
//! inputs already queued and sends their outputs, then TCP writers write what is queued (up
//! to [`SHUTDOWN_FLUSH`]) and close.

use crate::api::CallObserver;
use crate::api::link::{EngineLink, EngineRequest};
use crate::config::Config;
use crate::engine::media::MediaReport;
use crate::engine::{Engine, Input, MonoTime, Now, Output, UtcTime};
use crate::media::MediaRelays;
use crate::store::{CallbackRow, LogEvent, Store, StoreError};
use crate::transport::{BoundSockets, Limits, Transports};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// How long TCP writers may take to write their last messages at shutdown.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// How long siaga keeps reading after a stop was requested, while the BYEs, CANCELs and
/// 503s that end live calls are answered (and retransmitted over UDP until they are).
/// Reading stops earlier once every request siaga sent has its final response.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// Options of [`run`].
#[derive(Debug)]
pub struct RunOptions {
    /// Transport limits (`sip.max_tcp_connections`, `sip.max_tcp_connections_per_ip`,
    /// `sip.tcp_message_timeout_s`, `sip.tcp_idle_timeout_s`, `sip.tcp_connect_timeout_s`,
    /// the per-connection write queue).
    pub limits: Limits,
    /// Capacity of the engine's input queue, in inputs (datagrams, stream messages,
    /// connection events). Default 1024.
    pub input_queue: usize,
    /// An observer: every input is copied to it just before the engine handles it (for
    /// tests and diagnostics). The engine task waits for room in it, so a slow observer
    /// slows the engine.
    pub tap: Option<mpsc::Sender<Input>>,
    /// The IP the RTP relay binds (the SIP listen IP). Default 127.0.0.1.
    pub media_bind: IpAddr,
    /// `media.silence_timeout_s`: how long a relayed side may send no RTP before the relay
    /// reports it silent. Default `None` (off); [`RunOptions::from_config`] sets it.
    pub silence_timeout: Option<std::time::Duration>,
    /// Where call events and agent events go (the store's writer). `None`: they are
    /// logged at debug and dropped — only for tests that do not look at records.
    pub events: Option<crate::store::EventSink>,
    /// The HTTP API on `http.listen`, bound; `None`: no API.
    pub api: Option<crate::api::Api>,
    /// The API→engine link and the receiver the engine task reads, when made beforehand
    /// (`siaga run` hands a clone of the link to [`restore_callbacks_later`]); `None`:
    /// [`run`] makes them.
    pub link: Option<(EngineLink, mpsc::Receiver<EngineRequest>)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            limits: Limits::default(),
            input_queue: 1024,
            tap: None,
            media_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            silence_timeout: None,
            events: None,
            api: None,
            link: None,
        }
    }
}

impl RunOptions {
    /// The options `config` sets (`sip.max_tcp_connections`,
    /// `sip.max_tcp_connections_per_ip`, `sip.tcp_message_timeout_s`,
    /// `sip.tcp_idle_timeout_s`, `sip.tcp_connect_timeout_s`, `media.silence_timeout_s`);
    /// the rest default.
    pub fn from_config(config: &Config) -> RunOptions {
        let sip = &config.sip;
        RunOptions {
            limits: Limits {
                max_tcp_connections: sip.max_tcp_connections,
                max_tcp_connections_per_ip: sip.max_tcp_connections_per_ip,
                tcp_message_timeout: sip.tcp_message_timeout,
                tcp_idle_timeout: sip.tcp_idle_timeout,
                tcp_connect_timeout: sip.tcp_connect_timeout,
                ..Limits::default()
            },
            media_bind: sip.listen.ip(),
            silence_timeout: config.media.silence_timeout,
            ..RunOptions::default()
        }
    }
}

/// Binds UDP and TCP on `sip.listen`.
///
/// Errors: the bind errors (address in use, permission denied …).
pub async fn bind(config: &Config) -> io::Result<BoundSockets> {
    BoundSockets::bind(config.sip.listen).await
}

/// Runs siaga on `sockets` until `shutdown` resolves, then shuts down gracefully (see the
/// module docs) and returns.
///
/// Errors: only when a socket's local address cannot be read at start.
pub async fn run(
    sockets: BoundSockets,
    engine: Engine,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (inputs_tx, inputs_rx) = mpsc::channel(options.input_queue.max(1));
    // Transports stop reading only once live calls have been hung up (or the grace
    // period passed), so the answers to siaga's last BYEs and CANCELs still arrive.
    let transport_stop = CancellationToken::new();
    let transports = Transports::start(
        sockets,
        inputs_tx,
        options.limits,
        transport_stop.clone(),
        &tracker,
    )?;
    let config = engine.config();
    // The API's address as `127.0.0.1:8080`, or `off` when this process serves none.
    let http = match options.api.as_ref().map(|api| api.local_addr()) {
        Some(Ok(addr)) => addr.to_string(),
        Some(Err(_)) => "unknown".to_owned(),
        None => "off".to_owned(),
    };
    info!(
        node = %config.node_id,
        udp = %transports.udp_addr(),
        tcp = %transports.tcp_addr(),
        http = %http,
        advertised = %format_args!("{}:{}", config.advertised_host, config.advertised_port),
        "siaga started"
    );

    // Reports come back from relays (a side gone silent, then the counts once closed);
    // bounded by the relays open (the port pool bounds those), so a relay waiting for
    // room never holds more than its reports.
    let (reports_tx, reports_rx) = mpsc::channel(1024);
    let (link, requests_rx) = options
        .link
        .unwrap_or_else(|| EngineLink::new(crate::api::link::REQUEST_QUEUE));
    let observer = options.api.as_ref().map(|api| api.metrics().observer());
    let api_task = options.api.map(|api| api.start(link, stop.clone()));
    let shell = Shell {
        transports: &transports,
        relays: MediaRelays::new(options.media_bind, reports_tx)
            .with_silence_timeout(options.silence_timeout),
        events: options.events,
        observer,
    };
    let engine_task = drive(
        engine,
        (inputs_rx, reports_rx, requests_rx),
        shell,
        options.tap,
        (stop.clone(), transport_stop),
    );
    tokio::pin!(engine_task);
    let shell = tokio::select! {
        shell = &mut engine_task => shell,
        () = shutdown => {
            info!("shutting down");
            stop.cancel();
            engine_task.await
        }
    };
    if let Some(mut task) = api_task
        && tokio::time::timeout(SHUTDOWN_FLUSH, &mut task)
            .await
            .is_err()
    {
        warn!("HTTP requests did not finish in time: aborted");
        task.abort();
    }
    shell.relays.shutdown().await;
    if let Some(events) = shell.events {
        info!(
            events = events.pushed(),
            "call and agent events handed to the store"
        );
        let left = events.close().await;
        if left > 0 {
            warn!(
                events = left,
                "call and agent events could not be handed to the store at shutdown"
            );
        }
    }

    transports.close_all();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_FLUSH, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            connections = transports.tcp_connections(),
            "tcp writers did not finish in time: closing their connections"
        );
        transports.abort_all();
        tracker.wait().await;
    }
    info!("siaga stopped");
    Ok(())
}

/// Rebuilds `engine`'s callback worklist (RFC 7090) from `store`'s event log at start: the
/// calls abandoned within `acd.callback_window_h` before `now` whose callback is still
/// open ([`Store::callback_worklist`]), handed to [`Engine::restore_callbacks`]. Returns
/// how many items were restored.
///
/// Errors: the store's ([`StoreError::Database`], [`StoreError::Corrupt`]); the engine is
/// unchanged then, and siaga can still take calls (the worklist starts empty).
pub async fn restore_callbacks(
    engine: &mut Engine,
    store: &Store,
    now: UtcTime,
) -> Result<usize, StoreError> {
    let window = engine.config().calls.acd.callback_window;
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let rows = store
        .callback_worklist(UtcTime(now.0.saturating_sub(window)))
        .await?;
    let restored = rows.len();
    engine.restore_callbacks(rows.into_iter().map(CallbackRow::into_item));
    Ok(restored)
}

/// How many times [`restore_callbacks_later`] asks the engine task again when its request
/// queue is full, 100 ms apart.
const RESTORE_ATTEMPTS: u32 = 50;

/// Rebuilds the engine's callback worklist (RFC 7090) once the store has answered after
/// start: waits for `caught_up` (the writer's start-up recovery is done and its journal
/// replayed, [`crate::store::StartUp::new`]), reads the worklist as the call records have
/// it ([`Store::callback_worklist`], the calls abandoned within `window` before the wall
/// clock then) and sends it to the engine task through `link`
/// ([`EngineLink::restore_callbacks`]; an item already listed is not added twice). Runs as
/// a task of its own beside the engine, so siaga takes calls while the database is down.
/// Returns how many items were sent; errors are logged (siaga still runs, the worklist
/// then holds only what this process added), and a writer that stopped first ends it
/// quietly.
pub async fn restore_callbacks_later(
    caught_up: tokio::sync::oneshot::Receiver<()>,
    store: Store,
    link: EngineLink,
    window: Duration,
) -> usize {
    if caught_up.await.is_err() {
        return 0;
    }
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let now = Clock {
        start: Instant::now(),
    }
    .now()
    .utc;
    // The database answered a moment ago; a query that fails now is tried again (a few
    // times, 1 s apart) rather than leaving the worklist without its old items.
    let mut rows = None;
    for attempt in 1..=RESTORE_ATTEMPTS {
        match store
            .callback_worklist(UtcTime(now.0.saturating_sub(window)))
            .await
        {
            Ok(found) => {
                rows = Some(found);
                break;
            }
            Err(error) if attempt == RESTORE_ATTEMPTS => {
                tracing::error!(%error, "callback worklist not rebuilt from the call records");
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let Some(rows) = rows else { return 0 };
    let items: Vec<_> = rows.into_iter().map(CallbackRow::into_item).collect();
    let sent = items.len();
    for _ in 0..RESTORE_ATTEMPTS {
        match link.restore_callbacks(items.clone()).await {
            // No reply in time: the request is queued all the same and the engine applies
            // it when it gets there.
            Ok(_) | Err(crate::api::link::LinkError::NoReply) => return sent,
            Err(crate::api::link::LinkError::Busy) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => {
                tracing::error!(%error, "callback worklist not handed to the engine");
                return 0;
            }
        }
    }
    tracing::error!("callback worklist not handed to the engine: its request queue stayed full");
    0
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from the moment it is called, and returns a
/// future that resolves on either. Listening starts here, not at the first poll, so a
/// signal sent as soon as "siaga started" is logged is not lost to the default action
/// (which would kill the process instead of shutting it down). If a signal handler cannot
/// be installed (logged at warn), only the other one ends the wait. Must be called within
/// a tokio runtime.
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            warn!(%error, "cannot listen for {name}");
            None
        }
    };
    async fn next(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let interrupt = next(listen(SignalKind::interrupt(), "SIGINT"));
    let terminate = next(listen(SignalKind::terminate(), "SIGTERM"));
    async move {
        tokio::select! {
            () = interrupt => info!("SIGINT received"),
            () = terminate => info!("SIGTERM received"),
        }
    }
}

/// Resolves on Ctrl-C (listening starts at the first poll). If the handler cannot be
/// installed (logged at warn), it never resolves.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> {
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => info!("SIGINT received"),
            Err(error) => {
                warn!(%error, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The shell's clocks. Monotonic time is measured from `start` with tokio's clock, so
/// tests with paused time control it.
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Now {
        let utc = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Now {
            mono: MonoTime::from_origin(self.start.elapsed()),
            utc: UtcTime(utc),
        }
    }

    fn instant(&self, at: MonoTime) -> Instant {
        self.start + at.since_origin()
    }
}

/// What the engine's outputs go to.
struct Shell<'a> {
    transports: &'a Transports,
    relays: MediaRelays,
    events: Option<crate::store::EventSink>,
    /// Counts call events for the API's metrics.
    observer: Option<CallObserver>,
}

impl Shell<'_> {
    /// A call event or an agent state transition: both go to the store through one sink,
    /// so the two logs are written in the order the engine emitted them.
    fn log(&mut self, event: impl Into<LogEvent>) {
        match &mut self.events {
            Some(sink) => sink.push(event),
            None => tracing::debug!(event = ?event.into(), "event (no store)"),
        }
    }
}

/// The engine task: input in, outputs out, one sleep until the next deadline. Returns
/// the shell once the input queue is closed (at `stop`) and empty.
async fn drive<'a>(
    mut engine: Engine,
    (mut inputs, mut reports, mut requests): (
        mpsc::Receiver<Input>,
        mpsc::Receiver<MediaReport>,
        mpsc::Receiver<EngineRequest>,
    ),
    mut shell: Shell<'a>,
    tap: Option<mpsc::Sender<Input>>,
    (stop, transport_stop): (CancellationToken, CancellationToken),
) -> Shell<'a> {
    let clock = Clock {
        start: Instant::now(),
    };
    let mut deadline = drain(&mut engine, &mut shell, &clock);
    // Set when `stop` fires: until then siaga keeps reading, so its last requests are
    // answered and retransmitted (Timers E, G) while calls are hung up.
    let mut grace: Option<Instant> = None;
    let mut closed = false;
    loop {
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(clock.instant(at)).await,
                None => std::future::pending().await,
            }
        };
        let grace_over = async {
            match grace {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled(), if grace.is_none() => {
                grace = Some(Instant::now() + SHUTDOWN_GRACE);
                // Live calls end now, hung up on both sides and recorded as interrupted;
                // emergency INVITEs arriving from now on draw 503.
                engine.shutdown(clock.now());
            }
            () = grace_over, if !closed => {
                warn!("shutdown grace period over with requests unanswered");
                closed = true;
            }
            input = inputs.recv() => {
                let Some(input) = input else { break };
                if let Some(tap) = &tap {
                    let _ = tap.send(input.clone()).await;
                }
                engine.handle_input(clock.now(), input);
            }
            Some(report) = reports.recv() => {
                engine.handle_input(clock.now(), Input::MediaReport(report));
            }
            Some(request) = requests.recv() => {
                let depth = shell.events.as_ref().map(crate::store::EventSink::depth);
                let journal = shell.events.as_ref().map(crate::store::EventSink::journal_events);
                request.serve(&mut engine, clock.now(), depth, journal);
            }
            () = timer => engine.handle_timeout(clock.now()),
        }
        deadline = drain(&mut engine, &mut shell, &clock);
        if grace.is_some() && engine.client_transactions() == 0 {
            closed = true;
        }
        if closed && !transport_stop.is_cancelled() {
            // Refuse new input, keep what is queued: recv() yields it, then None.
            transport_stop.cancel();
            inputs.close();
        }
    }
    // Reports of relays that closed already reach the record.
    while let Ok(report) = reports.try_recv() {
        engine.handle_input(clock.now(), Input::MediaReport(report));
        drain(&mut engine, &mut shell, &clock);
    }
    shell
}

/// Rounds of [`drain`] that hand sends which failed at once back to the engine. Each
/// round ends transactions or legs, so a chain is short; the bound only guards against a
/// loop (what fails beyond it is logged, and the transactions time out instead).
const MAX_FAILURE_ROUNDS: usize = 16;

/// Carries out every pending output; returns the next deadline. A send that fails at once
/// goes back to the engine as [`Input::TransmitFailed`] (at `clock`'s now), and what the
/// engine outputs then is carried out too.
fn drain(engine: &mut Engine, shell: &mut Shell<'_>, clock: &Clock) -> Option<MonoTime> {
    // Events held back while the writer's queue was full go first, in order.
    if let Some(sink) = shell.events.as_mut().filter(|s| s.pending() > 0) {
        sink.flush_pending();
    }
    let mut failed = Vec::new();
    let mut rounds = 0;
    loop {
        let until = loop {
            match engine.poll_output() {
                Output::Transmit(transmit) => {
                    let copy = transmit.clone();
                    if let Err(error) = shell.transports.send(transmit) {
                        failed.push(Input::TransmitFailed {
                            transmit: copy,
                            error,
                        });
                    }
                }
                Output::Close { connection } => shell.transports.close(connection),
                Output::Media(command) => shell.relays.execute(command),
                Output::Event(event) => {
                    if let Some(observer) = &mut shell.observer {
                        observer.observe(&event);
                    }
                    shell.log(event);
                }
                Output::AgentEvent(event) => shell.log(event),
                Output::Wait { until } => break until,
            }
        };
        if failed.is_empty() {
            return until;
        }
        if rounds == MAX_FAILURE_ROUNDS {
            warn!(
                failures = failed.len(),
                "sends keep failing: not reported to the engine"
            );
            return until;
        }
        rounds += 1;
        let now = clock.now();
        for input in failed.drain(..) {
            engine.handle_input(now, input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::engine::record::{CallEvent, CallEventKind, CallbackOutcome, Disposition, Party};
    use uuid::Uuid;

    /// Call `call` from `caller`, received at `at` and abandoned in the queue 4 s later.
    fn abandoned(call: u128, at: i64, caller: &str) -> Vec<CallEvent> {
        let event = |n: u128, at: i64, kind| CallEvent {
            id: Uuid::from_u128((call << 64) | n),
            call: Uuid::from_u128(call),
            at: UtcTime(at),
            kind,
        };
        vec![
            event(
                0,
                at,
                CallEventKind::Received {
                    trunk_call_id: format!("t{call}"),
                    caller: Some(caller.to_owned()),
                    called: "112".to_owned(),
                    original_called: None,
                    trunk: "telco".to_owned(),
                },
            ),
            event(
                1,
                at + 4_000,
                CallEventKind::Ended {
                    by: Party::Caller,
                    disposition: Disposition::AbandonedInQueue,
                },
            ),
        ]
    }

    /// At start the worklist holds the open items of the last `acd.callback_window_h` as
    /// the log has them (attempts counted, answered callbacks and older calls left out),
    /// and a new engine takes them as its own.
    #[tokio::test]
    async fn the_callback_worklist_is_rebuilt_from_the_log_at_start() {
        let dir = tempfile::TempDir::new().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("siaga.db").display());
        let url = crate::config::DatabaseUrl::parse(&url).expect("a sqlite URL");
        let store = Store::open(&url).await.expect("the store opens");
        let config = EngineConfig::for_tests("127.0.0.1:5060".parse().expect("literal"));
        let window = i64::try_from(config.calls.acd.callback_window.as_millis()).unwrap();
        let now = 1_000_000_000;
        let mut events = abandoned(1, now - window - 1, "+62801");
        events.extend(abandoned(2, now - 60_000, "+62802"));
        events.extend(abandoned(3, now - 50_000, "+62803"));
        events.extend(abandoned(4, now - 40_000, "+62804"));
        for (call, outcome) in [(3, CallbackOutcome::Busy), (4, CallbackOutcome::Answered)] {
            events.push(CallEvent {
                id: Uuid::from_u128((call << 64) | 9),
                call: Uuid::from_u128(call),
                at: UtcTime(now - 1_000),
                kind: CallEventKind::CallbackEnded {
                    operator: "1001".to_owned(),
                    outcome,
                },
            });
        }
        store.write_batch("node-a", &events).await.expect("written");

        let mut engine = Engine::with_seed(config, 1);
        let restored = restore_callbacks(&mut engine, &store, UtcTime(now))
            .await
            .expect("read");
        assert_eq!(restored, 2);
        let items: Vec<(u128, &str, u32, u64)> = engine
            .callbacks()
            .iter()
            .map(|i| {
                (
                    i.record.as_u128(),
                    i.caller.as_str(),
                    i.attempts,
                    i.waited.as_millis() as u64,
                )
            })
            .collect();
        assert_eq!(items, [(2, "+62802", 0, 4_000), (3, "+62803", 1, 4_000)]);
        assert_eq!(engine.callbacks()[0].at, UtcTime(now - 60_000));
        assert_eq!(engine.callbacks()[0].reason, "abandoned_in_queue");
        store.close().await;
    }
}
