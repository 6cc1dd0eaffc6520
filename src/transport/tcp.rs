//! SIP over TCP (RFC 3261 §18.3): connections, stream framing and keep-alives.
//!
//! Each connection has a [`ConnectionId`] (a counter, never reused), a reader task that
//! frames the byte stream with [`next_stream_frame`] and hands each message to the engine,
//! and a writer task fed by a bounded queue. A table maps ids (and peer addresses) to
//! writer queues, so a [`Transmit`] goes out on the connection the engine names.
//!
//! Lifecycle: the reader owns the connection. When it ends (peer closed, read error,
//! framing error, full write queue) it removes the connection from the table and reports
//! [`Input::ConnectionClosed`]. After a framing error or an I/O error the writer is stopped
//! at once; after a clean close by the peer it first writes what is queued. At shutdown
//! readers stop but connections stay in the table until the engine's last output is
//! queued; then [`TcpTransport::close_all`] lets each writer finish and close.

use crate::engine::sip::ParseError;
use crate::engine::sip::framing::{
    MAX_MESSAGE_SIZE, StreamFrame, find_header_end, next_stream_frame,
};
use crate::engine::{ConnectionId, Input, Received, Transmit, Transport};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::Limits;

/// Bytes read from a socket at a time (the buffer grows up to the 64 KiB message limit).
const READ_CHUNK: usize = 8 * 1024;

/// How long opening an outbound connection may take before it is given up (logged).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (e.g. out of file descriptors), so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The RFC 5626 §4.4.1 keep-alive "pong": one CRLF.
const PONG: &[u8] = b"\r\n";

/// How long an unframeable connection waits for the engine's answer and
/// [`crate::engine::Output::Close`] before it is closed anyway.
const UNFRAMEABLE_GRACE: Duration = Duration::from_secs(2);

/// Who a stream belongs to: the fields every [`Input::Received`] from it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSource {
    /// The connection's id.
    pub connection: ConnectionId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// siaga's end of the connection.
    pub local: SocketAddr,
}

/// Why [`read_stream`] returned.
#[derive(Debug)]
pub enum ReadEnd {
    /// The peer closed its side (end of stream).
    PeerClosed,
    /// The stream could not be framed (message over 64 KiB, Content-Length missing or
    /// broken); [`Input::Unframeable`] was sent. Close the connection.
    Unframeable(ParseError),
    /// Reading failed.
    Failed(io::Error),
    /// `stop` was cancelled, or the engine's input channel is closed.
    Stopped,
}

/// Reads a stream until it ends, handing each framed message to `inputs` as
/// [`Input::Received`] (several messages in one read and messages split over many reads
/// alike). CRLF keep-alives are discarded; a double-CRLF ping (RFC 5626 §4.4.1) is answered
/// by queueing a single CRLF on `pongs` (dropped if that queue is full). On a framing error
/// it sends [`Input::Unframeable`] and returns [`ReadEnd::Unframeable`]. The read buffer
/// never holds more than [`MAX_MESSAGE_SIZE`] plus one read.
pub async fn read_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    source: StreamSource,
    inputs: &mpsc::Sender<Input>,
    pongs: &mpsc::Sender<Bytes>,
    stop: &CancellationToken,
) -> ReadEnd {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        loop {
            match next_stream_frame(&buf, MAX_MESSAGE_SIZE) {
                Ok(StreamFrame::Message { len }) => {
                    let input = Input::Received(Received {
                        transport: Transport::Tcp,
                        source: source.peer,
                        local: source.local,
                        connection: Some(source.connection),
                        bytes: buf.split_to(len).freeze(),
                    });
                    if inputs.send(input).await.is_err() {
                        return ReadEnd::Stopped;
                    }
                }
                Ok(StreamFrame::KeepAlive { len, ping }) => {
                    // Up to three CRLF octets alone may be the start of a ping split
                    // over reads: keep them until more arrives.
                    if !ping && len == buf.len() && len < 4 {
                        break;
                    }
                    buf.advance(len);
                    if ping && pongs.try_send(Bytes::from_static(PONG)).is_err() {
                        debug!(peer = %source.peer, "keep-alive pong dropped: write queue full");
                    }
                }
                Ok(StreamFrame::NeedMore) => break,
                Err(error) => {
                    // The header section, when it arrived whole, lets the engine answer.
                    let head = find_header_end(&buf)
                        .filter(|&end| end <= MAX_MESSAGE_SIZE)
                        .map(|end| Bytes::copy_from_slice(&buf[..end]))
                        .unwrap_or_default();
                    let input = Input::Unframeable {
                        connection: source.connection,
                        source: source.peer,
                        error: error.clone(),
                        head,
                    };
                    // Whether or not the engine still listens, the connection closes.
                    let _ = inputs.send(input).await;
                    return ReadEnd::Unframeable(error);
                }
            }
        }
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            () = stop.cancelled() => return ReadEnd::Stopped,
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => return ReadEnd::PeerClosed,
            Ok(_) => {}
            Err(error) => return ReadEnd::Failed(error),
        }
    }
}

/// Writes queued messages in order until the queue closes (then shuts the write side
/// down) or `kill` is cancelled (then stops at once). A write error cancels `kill` and
/// `stop_reader`, closing the whole connection.
async fn write_stream<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Bytes>,
    kill: CancellationToken,
    stop_reader: CancellationToken,
    peer: SocketAddr,
) {
    loop {
        let bytes = tokio::select! {
            () = kill.cancelled() => return,
            bytes = queue.recv() => bytes,
        };
        let Some(bytes) = bytes else { break };
        let written = tokio::select! {
            () = kill.cancelled() => return,
            written = writer.write_all(&bytes) => written,
        };
        if let Err(error) = written {
            warn!(%error, %peer, "tcp write failed: closing connection");
            kill.cancel();
            stop_reader.cancel();
            return;
        }
    }
    tokio::select! {
        () = kill.cancelled() => {}
        _ = writer.shutdown() => {}
    }
}

/// One connection as the table knows it.
#[derive(Debug)]
struct Conn {
    peer: SocketAddr,
    writer: mpsc::Sender<Bytes>,
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
    permits: Arc<Semaphore>,
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
        if let Some(conn) = table.by_id.remove(&id) {
            if table.by_peer.get(&conn.peer) == Some(&id) {
                table.by_peer.remove(&conn.peer);
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
            permits: Arc::new(Semaphore::new(limits.max_tcp_connections)),
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
    pub fn send(&self, transmit: Transmit) {
        let destination = transmit.destination;
        let target = {
            let table = self.shared.table();
            let id = match transmit.connection {
                Some(id) => Some(id),
                None => table.by_peer.get(&destination).copied(),
            };
            id.and_then(|id| table.by_id.get(&id).map(|c| (id, c.writer.clone())))
        };
        match (target, transmit.connection) {
            (Some((id, writer)), _) => match writer.try_send(transmit.bytes) {
                Ok(()) => debug!(connection = id.0, %destination, "tcp message queued"),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(
                        connection = id.0,
                        %destination,
                        "tcp write queue full (peer not reading): closing connection"
                    );
                    if let Some(conn) = self.shared.table().by_id.get(&id) {
                        conn.close_now();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    warn!(connection = id.0, %destination, "tcp connection closing: message dropped");
                }
            },
            (None, Some(id)) => {
                warn!(connection = id.0, %destination, "tcp connection gone: message dropped");
            }
            (None, None) => self.connect(destination, transmit.bytes),
        }
    }

    /// Opens a connection to `destination` and sends `first` on it; later messages to the
    /// same destination queue behind it while it is being opened.
    fn connect(&self, destination: SocketAddr, first: Bytes) {
        let shared = &self.shared;
        if shared.stop.is_cancelled() {
            return;
        }
        let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
            warn!(
                %destination,
                limit = shared.limits.max_tcp_connections,
                "tcp connection limit reached: not connecting, message dropped"
            );
            return;
        };
        let id = shared.new_id();
        let (writer, queue) = mpsc::channel(shared.limits.tcp_write_queue.max(1));
        // Capacity is at least one and the queue is new: this cannot fail.
        let _ = writer.try_send(first);
        let conn = Conn {
            peer: destination,
            writer,
            stop: shared.stop.child_token(),
            kill: shared.kill_all.child_token(),
        };
        let (stop, kill) = (conn.stop.clone(), conn.kill.clone());
        shared.register(id, conn);
        let task_shared = Arc::clone(shared);
        shared.tracker.spawn(async move {
            let connected = tokio::select! {
                () = stop.cancelled() => None,
                () = kill.cancelled() => None,
                r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(destination)) => Some(r),
            };
            match connected {
                Some(Ok(Ok(stream))) => {
                    info!(connection = id.0, peer = %destination, "tcp connection opened");
                    run_connection(task_shared, stream, id, destination, queue, stop, kill, permit)
                        .await;
                }
                Some(Ok(Err(error))) => {
                    warn!(%error, %destination, "tcp connect failed: queued messages dropped");
                    task_shared.unregister(id);
                }
                Some(Err(_elapsed)) => {
                    warn!(%destination, "tcp connect timed out: queued messages dropped");
                    task_shared.unregister(id);
                }
                None => task_shared.unregister(id),
            }
        });
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

/// Accepts connections until `stop`; each beyond `max_tcp_connections` is closed at once.
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
        let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
            warn!(
                %peer,
                limit = shared.limits.max_tcp_connections,
                "tcp connection limit reached: connection refused"
            );
            drop(stream);
            continue;
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
            permit,
        ));
    }
}

/// Runs one registered connection: spawns its writer, reads until the end, then
/// unregisters it and reports [`Input::ConnectionClosed`].
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    id: ConnectionId,
    peer: SocketAddr,
    queue: mpsc::Receiver<Bytes>,
    stop: CancellationToken,
    kill: CancellationToken,
    permit: OwnedSemaphorePermit,
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
    shared.tracker.spawn({
        let (kill, stop) = (kill.clone(), stop.clone());
        async move {
            write_stream(write_half, queue, kill, stop, peer).await;
            drop(permit); // the connection's slot frees when its writer is done
        }
    });
    let source = StreamSource {
        connection: id,
        peer,
        local,
    };
    let end = read_stream(read_half, source, &shared.inputs, &pongs, &stop).await;
    drop(pongs);
    if matches!(end, ReadEnd::Stopped) && shared.stop.is_cancelled() {
        // Shutdown: the connection stays in the table so the engine's last messages still
        // go out on it; `close_all` then lets the writer finish and close it.
        debug!(connection = id.0, %peer, "tcp connection stops reading (shutdown)");
        return;
    }
    match &end {
        ReadEnd::PeerClosed => debug!(connection = id.0, %peer, "tcp connection closed by peer"),
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
    }
    shared.unregister(id);
    // Ignored when the engine task has already stopped (shutdown).
    let _ = shared.inputs.send(Input::ConnectionClosed(id)).await;
}
