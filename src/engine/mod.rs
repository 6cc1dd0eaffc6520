//! The sans-IO engine: all SIP signalling state, driven by the tokio shell.
//!
//! No tokio, sockets, database or clock reads live under this module (`.ci/run` checks it).
//! Time comes in as [`Now`], randomness from the RNG handed to [`Engine::new`].
//!
//! Call order (as str0m's `Rtc` and quinn-proto's `Connection`):
//! 1. feed input with [`Engine::handle_input`] or fire timers with [`Engine::handle_timeout`];
//! 2. drain [`Engine::poll_output`] until it returns [`Output::Wait`], whose deadline is the
//!    next time [`Engine::handle_timeout`] must be called.

pub mod acd;
pub mod call;
pub mod delivery;
pub mod dialog;
pub mod digest;
pub mod live;
pub mod media;
pub mod record;
pub mod registrar;
pub mod sdp;
pub mod sip;
pub mod time;
pub mod transaction;
pub mod trunk_health;
pub mod uas;

mod driver;

pub use driver::{CallSettings, Engine, EngineConfig, MAX_HELD_BYTES, Stats};
pub use time::{MonoTime, Now, UtcTime};

use bytes::Bytes;
use std::net::SocketAddr;

/// The transport protocol a message travelled on (RFC 3261 §18).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, one message per datagram; transactions retransmit.
    Udp,
    /// TCP: reliable, Content-Length framed; no retransmit timers run.
    Tcp,
}

impl Transport {
    /// Whether the transport is reliable (RFC 3261 §17: no retransmissions over it).
    pub const fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The transport token used in a Via header (`UDP`, `TCP`).
    pub const fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Identifies one TCP connection held by the shell. Assigned by the shell, never reused
/// while the shell runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Bytes that arrived from the network: one UDP datagram, or one framed TCP message.
#[derive(Clone, Debug)]
pub struct Received {
    /// The transport it arrived on.
    pub transport: Transport,
    /// The packet's source address (RFC 3261 §18.2.1 `received`, RFC 3581 `rport`).
    pub source: SocketAddr,
    /// The local address it arrived at.
    pub local: SocketAddr,
    /// The TCP connection it arrived on (`None` for UDP).
    pub connection: Option<ConnectionId>,
    /// The message bytes: a whole datagram, or exactly one framed message for TCP.
    pub bytes: Bytes,
}

/// Input to the engine.
#[derive(Clone, Debug)]
pub enum Input {
    /// A datagram or framed stream message arrived.
    Received(Received),
    /// The shell could not frame a TCP message (over 64 KiB, or Content-Length missing,
    /// repeated or broken: RFC 4475 §3.1.2.3, §3.3.9) and has stopped reading that
    /// connection. The engine answers 400 (513 when too large) on it when `head` holds a
    /// request's whole header section, then outputs [`Output::Close`] for it.
    Unframeable {
        /// The connection.
        connection: ConnectionId,
        /// The peer's address.
        source: SocketAddr,
        /// Why framing failed.
        error: sip::ParseError,
        /// The message's header section up to and including the empty line when it ended
        /// within 64 KiB, else the first 64 KiB of it; empty when nothing arrived.
        head: Bytes,
    },
    /// A TCP connection closed (by the peer or the shell). Reported as soon as the shell
    /// knows (a peer's end of stream, a read or write error, a timeout, the engine's own
    /// [`Output::Close`]); the engine names it no more.
    ConnectionClosed(ConnectionId),
    /// A [`Transmit`] the shell could not send (RFC 3261 §18: the transport tells the
    /// transaction layer). A request's client transaction fails at once as a transport
    /// error (§17.1.4, which §8.1.3.1 treats as a 503) instead of waiting for Timer B or F;
    /// a request switched to TCP for its size goes over UDP instead (§18.1.1); a response
    /// that named a connection is sent again on a new connection (§18.2.2).
    TransmitFailed {
        /// The transmit as the engine output it.
        transmit: Transmit,
        /// Why it could not be sent.
        error: TransmitError,
    },
    /// A relay reports: one the engine closed ([`media::MediaCommand::Close`]) what it
    /// relayed, or a side of a running one that went silent (`media.silence_timeout_s`).
    MediaReport(media::MediaReport),
}

/// Bytes for the shell to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Transport to send on.
    pub transport: Transport,
    /// Destination address (for TCP, the peer of `connection` when that is set).
    pub destination: SocketAddr,
    /// Send on this TCP connection when set; otherwise the shell picks or opens one.
    pub connection: Option<ConnectionId>,
    /// One whole SIP message.
    pub bytes: Bytes,
}

/// Why the shell could not send a [`Transmit`] ([`Input::TransmitFailed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransmitError {
    /// The TCP connection it named is gone (closed by the peer, a timeout or siaga).
    ConnectionGone,
    /// No TCP connection to the destination could be opened: refused, reset, unreachable,
    /// or not open within the shell's connect timeout.
    ConnectFailed,
    /// No TCP connection was opened because `sip.max_tcp_connections` or
    /// `sip.max_tcp_connections_per_ip` is reached.
    ConnectionLimit,
    /// Writing to the TCP connection failed, or the peer stopped reading; the connection
    /// was closed with this message unsent.
    WriteFailed,
    /// The operating system refused the UDP datagram (unreachable network, too large …).
    SendFailed,
}

/// Output of the engine, drained with [`Engine::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes.
    Transmit(Transmit),
    /// Close this TCP connection once what was queued for it has been written.
    Close {
        /// The connection.
        connection: ConnectionId,
    },
    /// A step of a call for the durable record (the store writes it; never blocks).
    Event(record::CallEvent),
    /// An operator's agent state transition for the durable record (`agent_events`).
    AgentEvent(record::AgentEvent),
    /// A command for the media relay.
    Media(media::MediaCommand),
    /// Nothing more to do now: call [`Engine::handle_timeout`] at `until`
    /// (`None`: no timer is running; wait for input).
    Wait {
        /// The next deadline.
        until: Option<MonoTime>,
    },
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
