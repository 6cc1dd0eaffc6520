//! SIP over UDP (RFC 3261 §18.1.1, §18.2.1): one message per datagram. The receiver hands
//! every datagram to the engine whole, up to the 65,535-byte UDP maximum (§18.1.1:
//! "implementations MUST be able to handle messages up to the maximum datagram packet
//! size"); the engine frames it (§18.3). Sending never waits.
//!
//! The socket's receive buffer is raised to [`RECEIVE_BUFFER`] at bind (best effort, the
//! kernel caps it at `net.core.rmem_max`), so a burst of large datagrams — or a few
//! 64 KiB ones — is queued rather than dropped while the engine catches up.

use crate::engine::{Input, Received, Transmit, TransmitError, Transport};
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Largest datagram received, in bytes: the UDP maximum, so nothing is ever truncated.
pub const MAX_DATAGRAM: usize = 65_535;

/// The receive buffer siaga asks the kernel for, in bytes (1 MiB: sixteen 64 KiB
/// datagrams, or hundreds of ordinary ones).
pub const RECEIVE_BUFFER: usize = 1 << 20;

/// Raises `socket`'s receive buffer to [`RECEIVE_BUFFER`] if the kernel allows; what it
/// got is logged at debug, a refusal at warn.
pub fn size_receive_buffer(socket: &UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        warn!(%error, "udp receive buffer size not set");
    }
    match socket.recv_buffer_size() {
        Ok(size) => debug!(size, "udp receive buffer"),
        Err(error) => debug!(%error, "udp receive buffer size unknown"),
    }
}

/// Pause after a failed receive, so a persistent socket error cannot spin a core or flood
/// the log.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Receives datagrams until `stop` is cancelled or `inputs` is closed, handing each to the
/// engine as [`Input::Received`] with its source address and [`Transport::Udp`].
/// Receive errors are logged at warn and the loop goes on.
pub async fn receive_loop(
    socket: UdpSocket,
    local: SocketAddr,
    inputs: mpsc::Sender<Input>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        match received {
            Ok((len, source)) => {
                debug!(%source, len, "udp datagram");
                let input = Input::Received(Received {
                    transport: Transport::Udp,
                    source,
                    local,
                    connection: None,
                    bytes: Bytes::copy_from_slice(&buf[..len]),
                });
                if inputs.send(input).await.is_err() {
                    return; // the engine task is shutting down
                }
            }
            Err(error) => {
                warn!(%error, %local, "udp receive failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Sends one datagram without waiting, on a non-blocking socket. A full socket buffer
/// drops it (logged at warn; the transaction layer retransmits over UDP, as it would after
/// a loss on the path).
///
/// Errors: [`TransmitError::SendFailed`] when the OS refuses the datagram (network
/// unreachable, too large, not permitted …; logged at warn).
pub fn send(socket: &std::net::UdpSocket, transmit: &Transmit) -> Result<(), TransmitError> {
    let destination = transmit.destination;
    match socket.send_to(&transmit.bytes, destination) {
        Ok(_) => debug!(%destination, len = transmit.bytes.len(), "udp sent"),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            warn!(%destination, "udp send buffer full: datagram dropped");
        }
        Err(error) => {
            warn!(%error, %destination, "udp send failed");
            return Err(TransmitError::SendFailed);
        }
    }
    Ok(())
}
