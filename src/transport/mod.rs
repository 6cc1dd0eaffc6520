//! The network side of the tokio shell: SIP over UDP and TCP (RFC 3261 §18).
//!
//! [`BoundSockets`] are bound before anything runs, so tests bind `127.0.0.1:0`.
//! [`Transports::start`] spawns the receivers, which hand every datagram and every framed
//! stream message to the engine's input channel with its source address, local address,
//! transport and (TCP) [`ConnectionId`].
//! [`Transports::send`] carries out the engine's [`Transmit`]s; it never waits, so the
//! engine task never blocks on a peer.
//!
//! Overload: the input channel is bounded. When it is full, receivers wait: datagrams
//! queue in the kernel's socket buffer (beyond it the kernel drops them, and UDP senders
//! retransmit, RFC 3261 §17), and TCP readers stop reading, so TCP flow control slows the
//! peer. The shell itself never drops an input it has read.
//!
//! Holding connections: TCP connections are capped in all and per peer IP (whichever side
//! opened them), and a connection that stalls mid-message, goes idle or stops taking the
//! bytes siaga writes is closed ([`Limits`]), so peers that open connections and send or
//! read nothing cannot lock the trunk and the phones out.
//!
//! The engine's routing decisions (which transport, which address: RFC 3261 §18.2.2, RFC
//! 3581) are made in the engine; the shell sends where it is told.

mod admission;
pub mod tcp;
pub mod udp;

use crate::engine::{ConnectionId, Input, Transmit, TransmitError, Transport};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The listening sockets, bound before the runtime starts.
#[derive(Debug)]
pub struct BoundSockets {
    /// The UDP socket: receives and sends all SIP datagrams.
    pub udp: UdpSocket,
    /// The TCP listener: accepts inbound SIP connections.
    pub tcp: TcpListener,
}

impl BoundSockets {
    /// Binds UDP and TCP on `addr`. With port 0 the two get different ports (tests).
    ///
    /// Errors: the bind errors (address in use, permission denied for ports below 1024 …).
    pub async fn bind(addr: SocketAddr) -> io::Result<BoundSockets> {
        let udp = UdpSocket::bind(addr).await?;
        udp::size_receive_buffer(&udp);
        let tcp = TcpListener::bind(addr).await?;
        Ok(BoundSockets { udp, tcp })
    }

    /// The UDP socket's local address.
    pub fn udp_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TCP listener's local address.
    pub fn tcp_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Limits of the transports. Besides bounding memory, they bound what one peer can hold:
/// at most `max_tcp_connections_per_ip` connections with its IP, each closed unless a
/// message it starts arrives whole within `tcp_message_timeout`, each write to it makes
/// progress within `tcp_message_timeout`, and a byte moves on it at least every
/// `tcp_idle_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most TCP connections open at once, inbound and outbound (`sip.max_tcp_connections`,
    /// default 1024). An inbound connection beyond it is closed as soon as it is accepted;
    /// an outbound one is not opened and its message is dropped (either logged at warn, at
    /// most once per 10 s with a count of the others).
    pub max_tcp_connections: usize,
    /// Most TCP connections with one peer IP address at once, accepted from it and opened
    /// to it together (`sip.max_tcp_connections_per_ip`, default 256; 1 ..=
    /// `max_tcp_connections`). Beyond it an inbound connection is closed as soon as it is
    /// accepted, and an outbound one is not opened and its message dropped (logged at
    /// warn, at most once per IP per 10 s with a count of the others). Generous because
    /// operators' softphones behind one office NAT share an IP. Outbound connections count
    /// because a peer can choose them too (the Via port of a request sent over UDP names
    /// where a TCP response goes). An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub max_tcp_connections_per_ip: usize,
    /// How long a TCP message may take to arrive whole, from its first byte
    /// (`sip.tcp_message_timeout_s`, default 32 s = 64·T1, the longest a SIP transaction
    /// waits). A connection holding part of a message longer is closed (logged at info):
    /// bytes trickling in do not extend it. CRLF keep-alives are not messages. Also how
    /// long a write may go without the peer taking a byte (it stopped reading) before the
    /// connection is closed (logged at warn). Above zero.
    pub tcp_message_timeout: Duration,
    /// How long a TCP connection may go without a byte read or written
    /// (`sip.tcp_idle_timeout_s`, default 600 s; `None`, from 0, disables it). An idle
    /// connection is closed (logged at info). RFC 5626 keep-alives (every 30–120 s) and
    /// trunks' OPTIONS keep it open. Writes count as activity, so a connection siaga
    /// opened is not closed while it still sends on it; a write counts once the kernel
    /// has taken it.
    pub tcp_idle_timeout: Option<Duration>,
    /// How long opening a TCP connection may take (`sip.tcp_connect_timeout_s`, default
    /// 5 s). Then every message queued for it is reported to the engine as failed
    /// ([`Input::TransmitFailed`]), like a refused connect.
    pub tcp_connect_timeout: Duration,
    /// Messages queued for one TCP connection's writer. When a peer stops reading and the
    /// queue fills, the connection is closed (logged at warn): a peer that does not read
    /// cannot be served, and waiting for it would stall the engine.
    pub tcp_write_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tcp_connections: 1024,
            max_tcp_connections_per_ip: 256,
            tcp_message_timeout: Duration::from_secs(32),
            tcp_idle_timeout: Some(Duration::from_secs(600)),
            tcp_connect_timeout: Duration::from_secs(5),
            tcp_write_queue: 64,
        }
    }
}

/// The running transports: the send side, and a handle on the receive tasks.
#[derive(Debug)]
pub struct Transports {
    /// The send side of the UDP socket (non-blocking).
    udp: std::net::UdpSocket,
    udp_addr: SocketAddr,
    tcp: tcp::TcpTransport,
}

impl Transports {
    /// Spawns the UDP receiver and the TCP accept loop on `tracker`. They feed `inputs` and
    /// stop when `stop` is cancelled (or when `inputs` is closed).
    ///
    /// Must be called within a tokio runtime. Errors: when a socket's local address cannot
    /// be read or the UDP socket cannot be duplicated.
    pub fn start(
        sockets: BoundSockets,
        inputs: mpsc::Sender<Input>,
        limits: Limits,
        stop: CancellationToken,
        tracker: &TaskTracker,
    ) -> io::Result<Transports> {
        let udp_addr = sockets.udp.local_addr()?;
        // Two handles on one socket: tokio's for receiving, and a non-blocking std one for
        // sending, whose `send_to` fails only when the kernel's buffer is really full
        // (tokio's `try_send_to` also fails while it has not yet seen the socket writable).
        let std_udp = sockets.udp.into_std()?;
        let udp = std_udp.try_clone()?;
        tracker.spawn(udp::receive_loop(
            UdpSocket::from_std(std_udp)?,
            udp_addr,
            inputs.clone(),
            stop.clone(),
        ));
        let tcp = tcp::TcpTransport::start(sockets.tcp, inputs, limits, stop, tracker)?;
        Ok(Transports { udp, udp_addr, tcp })
    }

    /// The UDP socket's local address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP listener's local address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp.local_addr()
    }

    /// Sends one message; never waits. UDP: one datagram to `destination` (dropped and
    /// logged when the socket buffer is full: the transaction layer retransmits). TCP: on
    /// `connection` when given, else on an open connection to `destination`, else on a
    /// new connection to it.
    ///
    /// Errors: what is known at once — the datagram refused by the OS, the named
    /// connection gone, a full write queue, the connection caps (see
    /// [`tcp::TcpTransport::send`]). The caller hands them to the engine as
    /// [`Input::TransmitFailed`]; failures known later (a connect that fails, a write
    /// error) arrive on the input channel as such.
    pub fn send(&self, transmit: Transmit) -> Result<(), TransmitError> {
        match transmit.transport {
            Transport::Udp => udp::send(&self.udp, &transmit),
            Transport::Tcp => self.tcp.send(transmit),
        }
    }

    /// Closes TCP connection `id` after writing what is queued on it (the engine's
    /// [`crate::engine::Output::Close`]); nothing happens if it is already gone.
    pub fn close(&self, id: ConnectionId) {
        self.tcp.close(id);
    }

    /// The number of open TCP connections (including ones being opened).
    pub fn tcp_connections(&self) -> usize {
        self.tcp.connections()
    }

    /// Lets every TCP writer finish what is queued and close its connection; forgets all
    /// connections. Called at shutdown, after the engine's last output.
    pub fn close_all(&self) {
        self.tcp.close_all();
    }

    /// Closes every TCP connection now, dropping what is still queued (shutdown after the
    /// flush grace period).
    pub fn abort_all(&self) {
        self.tcp.abort_all();
    }
}
