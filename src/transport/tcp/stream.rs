//! One SIP-over-TCP byte stream (RFC 3261 §18.3): the reader that frames it with a
//! [`StreamFramer`], answers RFC 5626 §4.4.1 keep-alive pings and enforces the message and
//! idle timeouts, and the writer that drains a connection's queue and gives up on a peer
//! that stops taking bytes. Socket-free: both work on any `AsyncRead`/`AsyncWrite`, so
//! tests drive them over `tokio::io::duplex`.

use crate::engine::sip::ParseError;
use crate::engine::sip::framing::{MAX_MESSAGE_SIZE, StreamFrame, StreamFramer, find_header_end};
use crate::engine::{ConnectionId, Input, Received, Transmit, TransmitError, Transport};
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Bytes read from a socket at a time (the buffer grows up to the 64 KiB message limit).
const READ_CHUNK: usize = 8 * 1024;

/// The RFC 5626 §4.4.1 keep-alive "pong": one CRLF.
const PONG: &[u8] = b"\r\n";

/// What a connection's writer queue holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A message the engine sent, kept whole so that it can be reported back
    /// ([`Input::TransmitFailed`]) if it is not written.
    Message(Transmit),
    /// An RFC 5626 §4.4.1 keep-alive pong (one CRLF).
    Pong,
}

impl Outgoing {
    fn bytes(&self) -> &[u8] {
        match self {
            Outgoing::Message(transmit) => &transmit.bytes,
            Outgoing::Pong => PONG,
        }
    }
}

/// Messages a writer did not write, and why: the connection's peer failed, stalled, or the
/// connection was closed under them. Pongs are not listed.
#[derive(Debug, Default)]
pub struct Undelivered {
    /// The messages, in queue order.
    pub messages: Vec<Transmit>,
    /// Why (meaningless when `messages` is empty).
    pub error: Option<TransmitError>,
}

impl Undelivered {
    /// Everything still in `queue` (after `first`, if any), closing it.
    pub(super) fn drain(
        first: Option<Outgoing>,
        queue: &mut mpsc::Receiver<Outgoing>,
        error: TransmitError,
    ) -> Undelivered {
        queue.close();
        let rest = std::iter::from_fn(|| queue.try_recv().ok());
        let messages = first
            .into_iter()
            .chain(rest)
            .filter_map(|o| match o {
                Outgoing::Message(t) => Some(t),
                Outgoing::Pong => None,
            })
            .collect();
        Undelivered {
            messages,
            error: Some(error),
        }
    }

    /// The [`Input::TransmitFailed`] of each message.
    pub fn into_inputs(self) -> impl Iterator<Item = Input> {
        let error = self.error.unwrap_or(TransmitError::ConnectionGone);
        self.messages
            .into_iter()
            .map(move |transmit| Input::TransmitFailed { transmit, error })
    }
}

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
    /// Part of a message has been in the buffer for [`StreamTimeouts::message`] since its
    /// first byte arrived (a stalled or trickling peer). Close the connection.
    MessageTimeout,
    /// No byte was read or written for [`StreamTimeouts::idle`]. Close the connection.
    IdleTimeout,
}

/// How long [`read_stream`] waits for a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// `sip.tcp_message_timeout_s` (default 32 s, 64·T1: the longest a SIP transaction
    /// waits): how long a message may take to arrive whole, from its first byte. CRLF
    /// keep-alives are not messages. Must be above zero.
    pub message: Duration,
    /// `sip.tcp_idle_timeout_s` (default 600 s; `None` when it is 0): how long a connection
    /// may go without a byte read or written ([`Activity`]).
    pub idle: Option<Duration>,
}

impl Default for StreamTimeouts {
    fn default() -> Self {
        let limits = super::super::Limits::default();
        StreamTimeouts {
            message: limits.tcp_message_timeout,
            idle: limits.tcp_idle_timeout,
        }
    }
}

/// When a connection last moved bytes, either way: its reader touches it on every read,
/// its writer on every write the kernel took (whole or part of a message), and the
/// reader's idle timer reads it. Writes count so that a connection siaga opened (to a
/// phone, say) is not closed under a live transaction whose peer only listens; a write
/// counts only once the kernel took it, so a peer that stops reading does not stay
/// "active". Atomics, no lock: shared by two tasks.
#[derive(Debug)]
pub struct Activity {
    origin: Instant,
    /// Milliseconds from `origin` to the last activity.
    last_ms: AtomicU64,
}

impl Activity {
    /// Activity now: a new connection's idle time starts when it is set up.
    pub fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the last activity was (to the millisecond, rounded down).
    pub fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// What ended a wait in [`read_stream`].
enum Woke {
    Read(io::Result<usize>),
    Timer,
}

/// Whether `buf`, as the framing loop leaves it, holds part of a message: after the loop
/// it is empty, the start of a ping (up to three CR and LF octets), or a message's start.
fn holds_partial_message(buf: &[u8]) -> bool {
    buf.first().is_some_and(|b| !matches!(b, b'\r' | b'\n'))
}

/// Reads a stream until it ends, handing each framed message to `inputs` as
/// [`Input::Received`] (several messages in one read and messages split over many reads
/// alike). CR and LF octets between messages are discarded (RFC 3261 §7.5); each
/// double-CRLF ping among them (RFC 5626 §4.4.1) is answered by queueing a single CRLF on
/// `pongs` (dropped if that queue is full). On a framing error
/// it sends [`Input::Unframeable`] (with the message's header section, or its first 64 KiB
/// when the header section does not end within them) and returns [`ReadEnd::Unframeable`].
/// The read buffer never holds more than [`MAX_MESSAGE_SIZE`] plus one read, and framing
/// looks at each byte a bounded number of times however the stream is split into reads.
///
/// Timeouts ([`StreamTimeouts`]): returns [`ReadEnd::MessageTimeout`] once a partial
/// message has been buffered for `timeouts.message` since the read that brought its first
/// byte, and [`ReadEnd::IdleTimeout`] once `activity` (touched here on every read) is
/// `timeouts.idle` old. Bytes waiting to be read are read before a timer is believed, so
/// a reader that was held back by a full input queue does not blame its peer.
pub async fn read_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    source: StreamSource,
    inputs: &mpsc::Sender<Input>,
    pongs: &mpsc::Sender<Outgoing>,
    stop: &CancellationToken,
    timeouts: StreamTimeouts,
    activity: &Activity,
) -> ReadEnd {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // `buf` only grows at the end, and loses whole frames at the front: the framer's
    // contract.
    let mut framer = StreamFramer::new();
    // When the read that brought the first byte of the partial message in `buf` was.
    let mut message_since: Option<Instant> = None;
    let mut read_at = Instant::now();
    loop {
        let mut framed = false;
        loop {
            match framer.next(&buf, MAX_MESSAGE_SIZE) {
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
                    framed = true;
                }
                Ok(StreamFrame::KeepAlive { len, pings }) => {
                    buf.advance(len);
                    for _ in 0..pings {
                        if pongs.try_send(Outgoing::Pong).is_err() {
                            debug!(peer = %source.peer, "keep-alive pong dropped: write queue full");
                        }
                    }
                }
                Ok(StreamFrame::NeedMore) => break,
                Err(error) => {
                    let head = unframeable_head(&buf);
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
        if !holds_partial_message(&buf) {
            message_since = None;
        } else if message_since.is_none() || framed {
            // A new message began in the last read (after the one just framed, if any).
            message_since = Some(read_at);
        }
        let message_deadline = message_since.map(|since| since + timeouts.message);
        // Checked after every read too, so a peer trickling bytes cannot outrun it.
        if message_deadline.is_some_and(|at| at <= Instant::now()) {
            return ReadEnd::MessageTimeout;
        }
        let idle_deadline = timeouts.idle.map(|idle| activity.last() + idle);
        let deadline = match (message_deadline, idle_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        buf.reserve(READ_CHUNK);
        let woke = tokio::select! {
            biased;
            () = stop.cancelled() => return ReadEnd::Stopped,
            read = reader.read_buf(&mut buf) => Woke::Read(read),
            () = sleep_until(deadline) => Woke::Timer,
        };
        match woke {
            Woke::Read(Ok(0)) => return ReadEnd::PeerClosed,
            Woke::Read(Ok(_)) => {
                read_at = Instant::now();
                activity.touch();
            }
            Woke::Read(Err(error)) => return ReadEnd::Failed(error),
            Woke::Timer => {
                let now = Instant::now();
                if message_deadline.is_some_and(|at| at <= now) {
                    return ReadEnd::MessageTimeout;
                }
                // The writer may have moved the idle deadline meanwhile: then wait again.
                let idle_since = activity.last();
                if timeouts.idle.is_some_and(|idle| idle_since + idle <= now) {
                    return ReadEnd::IdleTimeout;
                }
            }
        }
    }
}

/// What [`Input::Unframeable`] carries as `head` for the unframeable message at the start
/// of `buf`: its header section up to the empty line when that is within
/// [`MAX_MESSAGE_SIZE`], else the first [`MAX_MESSAGE_SIZE`] bytes (a header section too
/// large to end in them: the engine reads what it can, and answers 513 when that is a
/// request with a usable Via). Empty only when `buf` is.
fn unframeable_head(buf: &[u8]) -> Bytes {
    let end = find_header_end(buf)
        .unwrap_or(buf.len())
        .min(MAX_MESSAGE_SIZE)
        .min(buf.len());
    Bytes::copy_from_slice(&buf[..end])
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why [`write_message`] failed.
enum WriteFailure {
    Io(io::Error),
    /// The peer took no byte for the stall limit.
    Stalled,
}

/// Writes queued messages in order until the queue closes (then shuts the write side
/// down) or `kill` is cancelled (then stops at once), touching `activity` whenever the
/// kernel takes bytes. A write error, or a peer that takes no byte for `stall` (it stopped
/// reading: its receive window and siaga's send buffer are full), cancels `kill` and
/// `stop_reader`, closing the whole connection; so does a shutdown that does not complete
/// within `stall`. Nothing here waits without a bound except for the next queued message.
///
/// Returns the messages it did not write whole (the one it was writing and the rest of the
/// queue) when it stopped for a failure or `kill`; none after a clean close.
pub(super) async fn write_stream<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<Outgoing>,
    kill: CancellationToken,
    stop_reader: CancellationToken,
    peer: SocketAddr,
    activity: Arc<Activity>,
    stall: Duration,
) -> Undelivered {
    let killed = |queue: &mut mpsc::Receiver<Outgoing>, current| {
        Undelivered::drain(current, queue, TransmitError::ConnectionGone)
    };
    let (failure, current) = loop {
        let next = tokio::select! {
            () = kill.cancelled() => return killed(&mut queue, None),
            next = queue.recv() => next,
        };
        let Some(next) = next else {
            // Every sender is gone and the queue is drained: send FIN.
            let shut = tokio::select! {
                () = kill.cancelled() => return Undelivered::default(),
                shut = tokio::time::timeout(stall, writer.shutdown()) => shut,
            };
            match shut {
                Ok(_) => return Undelivered::default(),
                Err(_elapsed) => break (WriteFailure::Stalled, None),
            }
        };
        let written = tokio::select! {
            () = kill.cancelled() => return killed(&mut queue, Some(next)),
            written = write_message(&mut writer, next.bytes(), stall, &activity) => written,
        };
        if let Err(failure) = written {
            break (failure, Some(next));
        }
    };
    match failure {
        WriteFailure::Io(error) => warn!(%error, %peer, "tcp write failed: closing connection"),
        WriteFailure::Stalled => warn!(
            %peer,
            stall_ms = stall.as_millis(),
            "tcp peer takes no bytes (not reading): closing connection"
        ),
    }
    kill.cancel();
    stop_reader.cancel();
    Undelivered::drain(current, &mut queue, TransmitError::WriteFailed)
}

/// Writes all of `bytes`; fails when a write errs or takes no byte for `stall`.
async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    stall: Duration,
    activity: &Activity,
) -> Result<(), WriteFailure> {
    while !bytes.is_empty() {
        match tokio::time::timeout(stall, writer.write(bytes)).await {
            Err(_elapsed) => return Err(WriteFailure::Stalled),
            Ok(Err(error)) => return Err(WriteFailure::Io(error)),
            Ok(Ok(0)) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => {
                // `write` returns at most `bytes.len()`; `get` keeps a broken writer from
                // panicking here.
                bytes = bytes.get(n..).unwrap_or_default();
                activity.touch();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: &'static [u8]) -> Transmit {
        Transmit {
            transport: Transport::Tcp,
            destination: "127.0.0.1:5999".parse().expect("literal"),
            connection: Some(ConnectionId(3)),
            bytes: Bytes::from_static(bytes),
        }
    }

    async fn write_all_of(
        writer: tokio::io::DuplexStream,
        queued: &[Outgoing],
        close: bool,
    ) -> (Undelivered, CancellationToken) {
        let (tx, rx) = mpsc::channel(8);
        for item in queued {
            tx.try_send(item.clone()).expect("room");
        }
        if close {
            drop(tx);
        }
        let kill = CancellationToken::new();
        let undelivered = write_stream(
            writer,
            rx,
            kill.clone(),
            CancellationToken::new(),
            "127.0.0.1:5999".parse().expect("literal"),
            Arc::new(Activity::new()),
            Duration::from_secs(10),
        )
        .await;
        (undelivered, kill)
    }

    /// A peer that is gone: the writer stops at the first write, closes the connection
    /// and hands back every message (not the pong) for the engine.
    #[tokio::test]
    async fn messages_not_written_come_back() {
        let (ours, theirs) = tokio::io::duplex(64);
        drop(theirs);
        let queued = [
            Outgoing::Message(message(b"first")),
            Outgoing::Pong,
            Outgoing::Message(message(b"second")),
        ];
        let (undelivered, kill) = write_all_of(ours, &queued, false).await;
        assert_eq!(
            undelivered.messages,
            [message(b"first"), message(b"second")]
        );
        assert_eq!(undelivered.error, Some(TransmitError::WriteFailed));
        assert!(kill.is_cancelled(), "the connection is closed");
    }

    #[tokio::test]
    async fn a_clean_close_leaves_nothing_behind() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let queued = [Outgoing::Message(message(b"first")), Outgoing::Pong];
        let (undelivered, kill) = write_all_of(ours, &queued, true).await;
        assert!(undelivered.messages.is_empty());
        assert!(!kill.is_cancelled());
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"first\r\n");
    }
}
