//! SIP over TCP (RFC 3261 §18.3): connections, stream framing and keep-alives.
//!
//! Each connection has a [`ConnectionId`] (a counter, never reused), a reader task that
//! frames the byte stream (a [`StreamFramer`](crate::engine::sip::framing::StreamFramer))
//! and hands each message to the engine, and a writer task fed by a bounded queue. A table
//! maps ids (and peer addresses) to writer queues, so a [`Transmit`] goes out on the
//! connection the engine names.
//!
//! Lifecycle: the reader owns the connection. When it ends (peer closed, read error,
//! framing error, full write queue, a timeout, the engine's close) it removes the
//! connection from the table and reports [`Input::ConnectionClosed`]. After an I/O error
//! or a timeout the writer is stopped at once. After the peer closed its side (end of
//! stream) the engine hears of it at once, but the connection stays in the table, writable,
//! for [`PEER_CLOSED_LINGER`]: the requests read before the end reach the engine first (one
//! ordered input queue), so their responses still name this connection and go out on it
//! (RFC 3261 §18.2.2), while everything the engine sends later goes elsewhere. After a
//! framing error it waits up to [`UNFRAMEABLE_GRACE`] for the engine's answer and close.
//! Then the writer gets [`DRAIN_GRACE`] to write what is queued and close, and is stopped
//! if it has not. At shutdown readers stop but connections stay in the table until the
//! engine's last output is queued; then [`TcpTransport::close_all`] lets each writer
//! finish and close (bounded by [`crate::runtime::SHUTDOWN_FLUSH`]).
//!
//! Failed sends are reported, never only logged: a [`Transmit`] naming a connection that
//! is gone, or refused by the connection caps, makes [`TcpTransport::send`] return the
//! error at once; a connection that cannot be opened, or that fails or is closed with
//! messages still queued, reports each of them as [`Input::TransmitFailed`], so their
//! transactions fail now instead of at Timer B or F (RFC 3261 §17.1.4).
//!
//! Holding a connection costs a peer something ([`super::Limits`]): the reader closes a
//! connection whose partial message has been arriving for longer than
//! `sip.tcp_message_timeout_s` (counted from the message's first byte, so trickling bytes
//! do not help), or on which no byte has moved either way for `sip.tcp_idle_timeout_s`
//! ([`StreamTimeouts`], [`Activity`]); the writer closes one whose peer takes no byte for
//! `sip.tcp_message_timeout_s`. So a peer that stops reading, or closes its side, loses
//! its connection's slot within a bound whatever it does next. At most `sip.max_tcp_connections_per_ip` connections,
//! accepted and opened together, have the same peer IP (`admission.rs`).

mod stream;

use stream::write_stream;
pub use stream::{
    Activity, Outgoing, ReadEnd, StreamSource, StreamTimeouts, Undelivered, read_stream,
};

use crate::engine::{ConnectionId, Input, Transmit, TransmitError};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::Limits;
use super::admission::{Admission, Refusal, Slot};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long an unframeable connection waits for the engine's answer and
/// [`crate::engine::Output::Close`] before it is closed anyway.
pub const UNFRAMEABLE_GRACE: Duration = Duration::from_secs(2);

/// How long a connection whose peer closed its sending side (end of stream) stays in the
/// table and writable, so that responses to requests read just before the end still go
/// out on it (RFC 3261 §18.2.2: a response goes on the connection its request came on
/// while that is open; a half-closed peer can still read). The engine is told of the end
/// at once ([`Input::ConnectionClosed`], after those requests), so only their responses
/// use the linger. The engine answers within milliseconds of reading a request, so 2 s
/// covers a long input queue; a write error, or the engine closing the connection, ends
/// the linger at once.
pub const PEER_CLOSED_LINGER: Duration = Duration::from_secs(2);

/// How long a connection's writer may take, once the connection is out of the table
/// (other than at shutdown), to write what is still queued and close; then the
/// connection is closed at once and its slot freed. A peer that reads takes a few queued
/// responses in milliseconds; one that does not read would otherwise keep its slot for
/// up to `sip.tcp_message_timeout_s` per stalled write. Same as
/// [`crate::runtime::SHUTDOWN_FLUSH`].
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// One connection as the table knows it.
#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    writer: mpsc::Sender<Outgoing>,
    /// Stops the reader (a child of the transport's stop token).
    stop: CancellationToken,
    /// Stops the writer without flushing.
    kill: CancellationToken,
}

impl Conn {
    fn close_now(&self) {
        self.stop.cancel();
        self.kill.cancel();
    }
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<ConnectionId, Conn>,
    /// The newest connection to each peer address, for a [`Transmit`] without a connection.
    by_peer: HashMap<SocketAddr, ConnectionId>,
}

#[derive(Debug)]
struct Shared {
    local: SocketAddr,
    inputs: mpsc::Sender<Input>,
    limits: Limits,
    /// The global and per-IP caps.
    admission: Admission,
    next_id: AtomicU64,
    /// std `Mutex`: held only for a map insert, remove or lookup, never across an await;
    /// touched by the engine task (send), the accept loop and connection ends.
    table: Mutex<Table>,
    stop: CancellationToken,
    /// Parent of every writer's `kill` token: [`TcpTransport::abort_all`].
    kill_all: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the maps half-updated (each critical
        // section is one map operation), so a poisoned lock is still usable.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn new_id(&self) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn register(&self, id: ConnectionId, conn: Conn) {
        let mut table = self.table();
        table.by_peer.insert(conn.peer, id);
        table.by_id.insert(id, conn);
    }

    fn unregister(&self, id: ConnectionId) {
        let mut table = self.table();
        if let Some(conn) = table.by_id.remove(&id)
            && table.by_peer.get(&conn.peer) == Some(&id)
        {
            table.by_peer.remove(&conn.peer);
        }
    }

    /// Stops picking `id` for transmits that name no connection (its peer closed).
    fn forget_peer(&self, id: ConnectionId) {
        let mut table = self.table();
        if let Some(peer) = table.by_id.get(&id).map(|c| c.peer)
            && table.by_peer.get(&peer) == Some(&id)
        {
            table.by_peer.remove(&peer);
        }
    }

    /// Reports messages a connection did not write (ignored once the engine has stopped).
    async fn report(&self, undelivered: Undelivered) {
        for input in undelivered.into_inputs() {
            if self.inputs.send(input).await.is_err() {
                return;
            }
        }
    }
}

/// The TCP transport: accept loop, connection table, and the send side.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
}

impl TcpTransport {
    /// Spawns the accept loop on `tracker`. Errors: the listener's local address cannot
    /// be read.
    pub fn start(
        listener: TcpListener,
        inputs: mpsc::Sender<Input>,
        limits: Limits,
        stop: CancellationToken,
        tracker: &TaskTracker,
    ) -> io::Result<TcpTransport> {
        let shared = Arc::new(Shared {
            local: listener.local_addr()?,
            inputs,
            limits,
            admission: Admission::new(
                limits.max_tcp_connections,
                limits.max_tcp_connections_per_ip,
            ),
            next_id: AtomicU64::new(1),
            table: Mutex::new(Table::default()),
            stop,
            kill_all: CancellationToken::new(),
            tracker: tracker.clone(),
        });
        tracker.spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(TcpTransport { shared })
    }

    /// The listener's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// Open connections, including ones being opened.
    pub fn connections(&self) -> usize {
        self.shared.table().by_id.len()
    }

    /// Queues `transmit` on its connection without waiting; see
    /// [`super::Transports::send`].
    ///
    /// Errors: [`TransmitError::ConnectionGone`] when the connection it names is not open
    /// (or closing); [`TransmitError::WriteFailed`] when that connection's write queue is
    /// full (its peer does not read; the connection is closed);
    /// [`TransmitError::ConnectionLimit`] when a new connection would exceed the caps;
    /// [`TransmitError::ConnectFailed`] when siaga is stopping. A failure to open a new
    /// connection comes later, as [`Input::TransmitFailed`].
    pub fn send(&self, transmit: Transmit) -> Result<(), TransmitError> {
        let destination = transmit.destination;
        let named = transmit.connection;
        let target = {
            let table = self.shared.table();
            let id = match named {
                Some(id) => Some(id),
                None => table.by_peer.get(&destination).copied(),
            };
            id.and_then(|id| table.by_id.get(&id).map(|c| (id, c.writer.clone())))
        };
        match (target, named) {
            (Some((id, writer)), _) => match writer.try_send(Outgoing::Message(transmit)) {
                Ok(()) => {
                    debug!(connection = id.0, %destination, "tcp message queued");
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(
                        connection = id.0,
                        %destination,
                        "tcp write queue full (peer not reading): closing connection"
                    );
                    if let Some(conn) = self.shared.table().by_id.get(&id) {
                        conn.close_now();
                    }
                    Err(TransmitError::WriteFailed)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    warn!(connection = id.0, %destination, "tcp connection closing: message not sent");
                    Err(TransmitError::ConnectionGone)
                }
            },
            (None, Some(id)) => {
                warn!(connection = id.0, %destination, "tcp connection gone: message not sent");
                Err(TransmitError::ConnectionGone)
            }
            (None, None) => self.connect(transmit),
        }
    }

    /// Opens a connection to the destination of `first` and sends it on it; later
    /// messages to the same destination queue behind it while it is being opened. When it
    /// cannot be opened, every queued message is reported as [`Input::TransmitFailed`].
    fn connect(&self, first: Transmit) -> Result<(), TransmitError> {
        let shared = &self.shared;
        let destination = first.destination;
        if shared.stop.is_cancelled() {
            return Err(TransmitError::ConnectFailed);
        }
        let slot = match shared.admission.admit(destination.ip(), Instant::now()) {
            Ok(slot) => slot,
            Err(refusal) => {
                log_refusal(&refusal, destination, &shared.limits, Direction::Outbound);
                return Err(TransmitError::ConnectionLimit);
            }
        };
        let id = shared.new_id();
        let (writer, mut queue) = mpsc::channel(shared.limits.tcp_write_queue.max(1));
        // Capacity is at least one and the queue is new: this cannot fail.
        let _ = writer.try_send(Outgoing::Message(first));
        let conn = Conn {
            peer: destination,
            writer,
            stop: shared.stop.child_token(),
            kill: shared.kill_all.child_token(),
        };
        let (stop, kill) = (conn.stop.clone(), conn.kill.clone());
        shared.register(id, conn);
        let task_shared = Arc::clone(shared);
        let connect_timeout = shared.limits.tcp_connect_timeout;
        shared.tracker.spawn(async move {
            let connected = tokio::select! {
                () = stop.cancelled() => None,
                () = kill.cancelled() => None,
                r = tokio::time::timeout(connect_timeout, TcpStream::connect(destination)) => Some(r),
            };
            let failed = match connected {
                Some(Ok(Ok(stream))) => {
                    info!(connection = id.0, peer = %destination, "tcp connection opened");
                    run_connection(task_shared, stream, id, destination, queue, stop, kill, slot)
                        .await;
                    return;
                }
                Some(Ok(Err(error))) => {
                    warn!(%error, %destination, "tcp connect failed: queued messages not sent");
                    TransmitError::ConnectFailed
                }
                Some(Err(_elapsed)) => {
                    warn!(%destination, "tcp connect timed out: queued messages not sent");
                    TransmitError::ConnectFailed
                }
                None => TransmitError::ConnectionGone,
            };
            task_shared.unregister(id);
            drop(slot);
            let undelivered = Undelivered::drain(None, &mut queue, failed);
            task_shared.report(undelivered).await;
        });
        Ok(())
    }

    /// Closes connection `id` once its queued messages are written (see
    /// [`super::Transports::close`]).
    pub fn close(&self, id: ConnectionId) {
        let conn = self.shared.table().by_id.get(&id).map(|c| c.stop.clone());
        if let Some(stop) = conn {
            // Forgetting it drops the table's sender: the writer drains its queue, then
            // shuts the connection down; the reader stops.
            self.shared.unregister(id);
            stop.cancel();
        }
    }

    /// See [`super::Transports::close_all`].
    pub fn close_all(&self) {
        let mut table = self.shared.table();
        for conn in table.by_id.values() {
            conn.stop.cancel();
        }
        table.by_id.clear();
        table.by_peer.clear();
    }

    /// See [`super::Transports::abort_all`].
    pub fn abort_all(&self) {
        self.shared.stop.cancel();
        self.shared.kill_all.cancel();
    }
}

/// Accepts connections until `stop`; each beyond `max_tcp_connections`, or beyond
/// `max_tcp_connections_per_ip` with its IP, is closed at once (logged at warn, at most
/// once per [`super::admission::REFUSAL_LOG_INTERVAL`]: per IP for the per-IP cap, in
/// all for the global one).
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "tcp accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match shared.admission.admit(peer.ip(), Instant::now()) {
            Ok(slot) => slot,
            Err(refusal) => {
                drop(stream);
                log_refusal(&refusal, peer, &shared.limits, Direction::Inbound);
                continue;
            }
        };
        let id = shared.new_id();
        let (writer, queue) = mpsc::channel(shared.limits.tcp_write_queue.max(1));
        let conn = Conn {
            peer,
            writer,
            stop: shared.stop.child_token(),
            kill: shared.kill_all.child_token(),
        };
        let (stop, kill) = (conn.stop.clone(), conn.kill.clone());
        shared.register(id, conn);
        debug!(connection = id.0, %peer, "tcp connection accepted");
        shared.tracker.spawn(run_connection(
            Arc::clone(&shared),
            stream,
            id,
            peer,
            queue,
            stop,
            kill,
            slot,
        ));
    }
}

/// Which way a refused connection would have gone.
#[derive(Clone, Copy, Debug)]
enum Direction {
    /// Accepted from the peer (then closed).
    Inbound,
    /// To be opened by siaga (not opened; the message for it is dropped).
    Outbound,
}

/// Logs a refused connection, if [`Refusal`] says this one is to be logged.
fn log_refusal(refusal: &Refusal, peer: SocketAddr, limits: &Limits, direction: Direction) {
    let outcome = match direction {
        Direction::Inbound => "connection refused",
        Direction::Outbound => "not connecting, message dropped",
    };
    match *refusal {
        Refusal::Global {
            log: Some(unlogged),
        } => warn!(
            %peer,
            ?direction,
            limit = limits.max_tcp_connections,
            also_refused_since_last_line = unlogged,
            "tcp connection limit reached: {outcome}"
        ),
        Refusal::PerIp {
            log: Some(unlogged),
        } => warn!(
            %peer,
            ?direction,
            limit = limits.max_tcp_connections_per_ip,
            also_refused_since_last_line = unlogged,
            "tcp connections per IP limit reached: {outcome}"
        ),
        Refusal::Global { log: None } | Refusal::PerIp { log: None } => {}
    }
}

/// Runs one registered connection: spawns its writer, reads until the end, then (after
/// the linger or grace its end calls for) unregisters it, reports
/// [`Input::ConnectionClosed`], and gives the writer [`DRAIN_GRACE`] before stopping it.
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    id: ConnectionId,
    peer: SocketAddr,
    queue: mpsc::Receiver<Outgoing>,
    stop: CancellationToken,
    kill: CancellationToken,
    slot: Slot,
) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, connection = id.0, "TCP_NODELAY not set");
    }
    let local = stream.local_addr().unwrap_or(shared.local);
    let (read_half, write_half) = stream.into_split();
    // The pong sender is a clone of the table's writer queue, so pongs keep their order
    // among the engine's messages.
    let pongs = shared.table().by_id.get(&id).map(|c| c.writer.clone());
    let Some(pongs) = pongs else {
        return; // closed (shutdown) before it started
    };
    let activity = Arc::new(Activity::new());
    let stall = shared.limits.tcp_message_timeout;
    let mut writer = shared.tracker.spawn({
        let (kill, stop, activity) = (kill.clone(), stop.clone(), Arc::clone(&activity));
        let shared = Arc::clone(&shared);
        async move {
            let mut write_half = write_half;
            let undelivered = write_stream(
                &mut write_half,
                queue,
                kill.clone(),
                stop,
                peer,
                activity,
                stall,
            )
            .await;
            if kill.is_cancelled() {
                // Killed (peer not reading, timeout, framing lost): reset instead of a
                // graceful FIN, so the kernel drops what is still queued for the peer
                // rather than holding it in an orphaned socket.
                if let Err(error) = write_half.as_ref().set_zero_linger() {
                    debug!(%error, connection = id.0, "SO_LINGER 0 not set");
                }
            }
            drop(write_half);
            drop(slot); // the connection's slot frees when its writer is done
            shared.report(undelivered).await;
        }
    });
    let source = StreamSource {
        connection: id,
        peer,
        local,
    };
    let timeouts = StreamTimeouts {
        message: shared.limits.tcp_message_timeout,
        idle: shared.limits.tcp_idle_timeout,
    };
    let end = read_stream(
        read_half,
        source,
        &shared.inputs,
        &pongs,
        &stop,
        timeouts,
        &activity,
    )
    .await;
    drop(pongs);
    if matches!(end, ReadEnd::Stopped) && shared.stop.is_cancelled() {
        // Shutdown: the connection stays in the table so the engine's last messages still
        // go out on it; `close_all` then lets the writer finish and close it.
        debug!(connection = id.0, %peer, "tcp connection stops reading (shutdown)");
        return;
    }
    let mut reported = false;
    match &end {
        ReadEnd::PeerClosed => {
            debug!(connection = id.0, %peer, "tcp connection closed by peer: lingering");
            // The engine hears of it now, after the requests read before the end, so only
            // their responses still name this connection; nothing new goes to it.
            shared.forget_peer(id);
            reported = true;
            let _ = shared.inputs.send(Input::ConnectionClosed(id)).await;
            // Still writable: answers to the last requests go out. Ends early when a write
            // fails (`kill`) or the engine closes the connection (`stop`).
            tokio::select! {
                () = tokio::time::sleep(PEER_CLOSED_LINGER) => {}
                () = kill.cancelled() => {}
                () = stop.cancelled() => {}
            }
            if shared.stop.is_cancelled() && !kill.is_cancelled() {
                // Shutdown began meanwhile: as above.
                return;
            }
        }
        ReadEnd::Stopped => debug!(connection = id.0, %peer, "tcp connection closed by siaga"),
        ReadEnd::Unframeable(error) => {
            // The engine answers (400/513) and then asks to close: wait for that, so the
            // answer goes out; close anyway if it does not come.
            warn!(connection = id.0, %peer, %error, "tcp stream unframeable: closing connection");
            if tokio::time::timeout(UNFRAMEABLE_GRACE, stop.cancelled())
                .await
                .is_err()
            {
                kill.cancel();
            }
        }
        ReadEnd::Failed(error) => {
            warn!(connection = id.0, %peer, %error, "tcp read failed: closing connection");
            kill.cancel();
        }
        // Either peer is stalled or gone: what is queued for it is dropped, so its slot
        // frees now even if it does not read.
        ReadEnd::MessageTimeout => {
            info!(
                connection = id.0,
                %peer,
                timeout_ms = timeouts.message.as_millis(),
                "tcp message incomplete for too long: closing connection"
            );
            kill.cancel();
        }
        ReadEnd::IdleTimeout => {
            info!(
                connection = id.0,
                %peer,
                timeout_ms = timeouts.idle.unwrap_or_default().as_millis(),
                "tcp connection idle for too long: closing connection"
            );
            kill.cancel();
        }
    }
    // Dropping the table's sender (the last one) lets the writer drain its queue and close.
    shared.unregister(id);
    // Ignored when the engine task has already stopped (shutdown).
    if !reported {
        let _ = shared.inputs.send(Input::ConnectionClosed(id)).await;
    }
    if tokio::time::timeout(DRAIN_GRACE, &mut writer)
        .await
        .is_err()
    {
        info!(
            connection = id.0,
            %peer,
            grace_ms = DRAIN_GRACE.as_millis(),
            "tcp peer did not take its last messages in time: dropping them"
        );
        kill.cancel();
    }
}
