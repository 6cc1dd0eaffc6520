//! One relay: four UDP sockets (RTP and RTCP on each side) driven by one task.
//!
//! Per datagram: receive it, check it (RTP with `rtp-rs`'s `RtpReader::new`, RFC 3550
//! §5.1; RTCP by version and length, §6.4), latch its side to its source (RFC 4961: the
//! first valid packet sets the address; later ones from elsewhere are dropped until a new
//! SetPeer), and send the same bytes out of the other side's socket of the same kind to the
//! other side's address: latched, else the one from SDP (RTCP: SDP port + 1).
//!
//! Silence (`media.silence_timeout_s`): each side's last RTP arrival is noted (RTCP does
//! not count); once a side that had been sending has sent nothing for the timeout, the
//! relay reports it ([`MediaReport::Silent`]) once, until a new packet from it re-arms the
//! check. A SetPeer for a side starts it over: a new peer is silent until it first sends.
//!
//! Cost: the task is one `poll_fn` over the control queue, the four sockets and the
//! silence timer (no per-wakeup futures or waiter lists); a send is one non-blocking
//! `sendto` straight on the socket (`socket2`), and a full socket buffer drops the packet
//! (late audio is useless; queueing it would only add delay). A packet costs the silence
//! check one clock read: the timer is not moved per packet, it fires at the earliest
//! deadline it was set for and is set again from the arrivals noted since. Tokio's
//! cooperative budget bounds how many datagrams one poll handles before other tasks run.

use super::Control;
use crate::engine::media::{MediaReport, PacketCounts, RelayClosed, RelayId, Side};
use rtp_rs::RtpReader;
use socket2::{SockAddr, SockRef};
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::PollSender;
use tracing::{debug, warn};

/// Largest datagram relayed, in bytes; a datagram that fills the buffer may have been cut
/// and is dropped. RTP over UDP stays under the path MTU (RFC 3550 §11).
const MAX_DATAGRAM: usize = 2048;

/// Shortest RTCP packet: the common header and sender SSRC (RFC 3550 §6.4).
const MIN_RTCP: usize = 8;

/// RTP and RTCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rtp = 0,
    Rtcp = 1,
}

/// The four sockets, `[side][kind]`.
pub(super) type Sockets = [[UdpSocket; 2]; 2];

/// Index of a side in the `[side]` arrays.
const fn ix(side: Side) -> usize {
    match side {
        Side::Caller => 0,
        Side::Operator => 1,
    }
}

/// What the relay knows of one side's peer.
#[derive(Clone, Copy, Debug, Default)]
struct Peer {
    /// RTP address from SDP (SetPeer); `None` when none was given or it was unspecified.
    sdp: Option<SocketAddr>,
    /// Source of the side's first RTP packet since the last SetPeer.
    rtp: Option<SocketAddr>,
    /// Source of the side's first RTCP packet since the last SetPeer.
    rtcp: Option<SocketAddr>,
}

impl Peer {
    fn latched(&mut self, kind: Kind) -> &mut Option<SocketAddr> {
        match kind {
            Kind::Rtp => &mut self.rtp,
            Kind::Rtcp => &mut self.rtcp,
        }
    }

    /// Where packets of `kind` for this side go.
    fn destination(&self, kind: Kind) -> Option<SocketAddr> {
        let rtcp_of = |a: SocketAddr| {
            let port = a.port().checked_add(1)?;
            Some(SocketAddr::new(a.ip(), port))
        };
        match kind {
            Kind::Rtp => self.rtp.or(self.sdp),
            Kind::Rtcp => self
                .rtcp
                .or_else(|| self.sdp.and_then(rtcp_of))
                .or_else(|| self.rtp.and_then(rtcp_of)),
        }
    }
}

/// The silence check of one relay (see the module docs).
struct Silence {
    /// `media.silence_timeout_s`.
    timeout: Duration,
    /// `[side]`: when the side's last RTP packet arrived; `None` before its first one since
    /// the last SetPeer, and once it was found silent (its next packet re-arms the check).
    heard: [Option<Instant>; 2],
    /// Set for the earliest `heard + timeout` when armed; not moved by later packets.
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` is set for a deadline still to be checked.
    armed: bool,
    /// `[side]`: found silent, its report not yet queued (no room in the queue yet).
    due: [bool; 2],
    /// The report queue, polled for room so that the relay never waits on it.
    reports: PollSender<MediaReport>,
}

impl Silence {
    fn new(timeout: Duration, reports: mpsc::Sender<MediaReport>) -> Silence {
        Silence {
            timeout,
            heard: [None; 2],
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: false,
            due: [false; 2],
            reports: PollSender::new(reports),
        }
    }

    /// An RTP packet from `side` arrived now.
    fn heard(&mut self, side: Side) {
        self.heard[ix(side)] = Some(Instant::now());
    }

    /// `side` has a new peer: nothing heard from it yet, and a silence found for the old
    /// one is moot.
    fn restart(&mut self, side: Side) {
        self.heard[ix(side)] = None;
        self.due[ix(side)] = false;
    }

    /// Finds the sides silent by now and queues their reports, registering `cx` for the
    /// next deadline and, while a report waits, for room in the queue.
    fn poll(&mut self, cx: &mut Context<'_>, id: RelayId) {
        loop {
            if !self.armed {
                let Some(first) = self.heard.iter().flatten().min() else {
                    break;
                };
                let at = *first + self.timeout;
                self.sleep.as_mut().reset(at);
                self.armed = true;
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                break;
            }
            self.armed = false;
            let now = Instant::now();
            for side in [Side::Caller, Side::Operator] {
                let heard = &mut self.heard[ix(side)];
                if heard.is_some_and(|at| now.duration_since(at) >= self.timeout) {
                    *heard = None;
                    self.due[ix(side)] = true;
                    debug!(relay = id.0, ?side, "no RTP within the silence timeout");
                }
            }
        }
        for side in [Side::Caller, Side::Operator] {
            if !self.due[ix(side)] {
                continue;
            }
            match self.reports.poll_reserve(cx) {
                Poll::Ready(Ok(())) => {
                    self.due[ix(side)] = false;
                    if self
                        .reports
                        .send_item(MediaReport::Silent { relay: id, side })
                        .is_err()
                    {
                        debug!(relay = id.0, "report queue closed; silence not reported");
                    }
                }
                Poll::Ready(Err(_)) => {
                    debug!(relay = id.0, "report queue closed; silence not reported");
                    self.due = [false; 2];
                }
                Poll::Pending => break,
            }
        }
    }
}

/// The relay's state apart from its sockets.
struct State {
    id: RelayId,
    peers: [Peer; 2],
    /// Indexed by the side packets come from: `[0]` caller → operator.
    counts: [PacketCounts; 2],
    /// Whether a send error was logged already (one line per relay, not per packet).
    send_error_logged: bool,
    /// `None` when `media.silence_timeout_s` is 0.
    silence: Option<Silence>,
}

/// Runs a relay until its control queue closes (Close, or the shell dropped), then closes
/// its sockets and sends its report (waiting for room in the report queue). Silence is
/// reported on `reports` too when a timeout is given.
pub(super) async fn run(
    id: RelayId,
    ports: (u16, u16),
    sockets: Option<Sockets>,
    mut control: mpsc::Receiver<Control>,
    bind_failed: Vec<u16>,
    (reports, silence_timeout): (mpsc::Sender<MediaReport>, Option<Duration>),
) {
    let mut state = State {
        id,
        peers: [Peer::default(); 2],
        counts: [PacketCounts::default(); 2],
        send_error_logged: false,
        silence: silence_timeout.map(|t| Silence::new(t, reports.clone())),
    };
    match sockets {
        Some(sockets) => {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            poll_fn(|cx| state.poll(cx, &mut control, &sockets, &mut buf)).await;
            drop(sockets);
        }
        // Bind failed: forward nothing, but keep the relay until Close so the report
        // comes when the engine expects it.
        None => while control.recv().await.is_some() {},
    }
    let [caller, operator] = state.peers;
    let report = RelayClosed {
        relay: id,
        caller_port: ports.0,
        operator_port: ports.1,
        caller_to_operator: state.counts[ix(Side::Caller)],
        operator_to_caller: state.counts[ix(Side::Operator)],
        latched_caller: caller.rtp,
        latched_operator: operator.rtp,
        bind_failed,
    };
    debug!(relay = id.0, ?report, "relay closed");
    if reports.send(MediaReport::Closed(report)).await.is_err() {
        debug!(relay = id.0, "report queue closed; report not delivered");
    }
}

impl State {
    /// Handles control messages and every datagram ready; `Ready` once the control queue
    /// is closed.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        control: &mut mpsc::Receiver<Control>,
        sockets: &Sockets,
        buf: &mut [u8],
    ) -> Poll<()> {
        loop {
            match control.poll_recv(cx) {
                Poll::Ready(Some(Control::SetPeer(side, rtp))) => self.set_peer(side, rtp),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        for side in [Side::Caller, Side::Operator] {
            for kind in [Kind::Rtp, Kind::Rtcp] {
                let socket = &sockets[ix(side)][kind as usize];
                loop {
                    let mut read = ReadBuf::new(buf);
                    match socket.poll_recv_from(cx, &mut read) {
                        Poll::Ready(Ok(from)) => {
                            let len = read.filled().len();
                            let out = &sockets[ix(side.other())][kind as usize];
                            self.forward(side, kind, from, &buf[..len], len == buf.len(), out);
                        }
                        // An error is consumed by reading it (ICMP-driven errors on UDP);
                        // keep reading until the socket says Pending, which registers the
                        // wake-up.
                        Poll::Ready(Err(e)) => debug!(relay = self.id.0, %e, "receive error"),
                        Poll::Pending => break,
                    }
                }
            }
        }
        if let Some(silence) = self.silence.as_mut() {
            silence.poll(cx, self.id);
        }
        Poll::Pending
    }

    fn set_peer(&mut self, side: Side, rtp: SocketAddr) {
        let usable = !rtp.ip().is_unspecified() && rtp.port() != 0;
        self.peers[ix(side)] = Peer {
            sdp: usable.then_some(rtp),
            rtp: None,
            rtcp: None,
        };
        if let Some(silence) = self.silence.as_mut() {
            silence.restart(side);
        }
        debug!(relay = self.id.0, ?side, %rtp, "peer set");
    }

    /// One datagram of `kind` from `side`'s peer at `from`.
    fn forward(
        &mut self,
        side: Side,
        kind: Kind,
        from: SocketAddr,
        packet: &[u8],
        maybe_cut: bool,
        out: &UdpSocket,
    ) {
        let valid = !maybe_cut
            && match kind {
                Kind::Rtp => RtpReader::new(packet).is_ok(),
                Kind::Rtcp => packet.len() >= MIN_RTCP && packet[0] >> 6 == 2,
            };
        let counts = &mut self.counts[ix(side)];
        if !valid {
            counts.dropped += 1;
            return;
        }
        let latched = self.peers[ix(side)].latched(kind);
        match *latched {
            None => {
                *latched = Some(from);
                debug!(relay = self.id.0, ?side, ?kind, %from, "latched");
            }
            Some(peer) if peer != from => {
                counts.dropped += 1;
                return;
            }
            Some(_) => {}
        }
        if let (Kind::Rtp, Some(silence)) = (kind, self.silence.as_mut()) {
            silence.heard(side);
        }
        let Some(to) = self.peers[ix(side.other())].destination(kind) else {
            counts.dropped += 1;
            return;
        };
        match send_to(out, packet, to) {
            Ok(_) => match kind {
                Kind::Rtp => {
                    counts.packets += 1;
                    counts.bytes += packet.len() as u64;
                }
                Kind::Rtcp => counts.rtcp_packets += 1,
            },
            Err(e) => {
                counts.dropped += 1;
                if !self.send_error_logged {
                    self.send_error_logged = true;
                    warn!(relay = self.id.0, %to, %e, "send failed; dropping (logged once per relay)");
                }
            }
        }
    }
}

/// One non-blocking `sendto` on the socket itself: a full buffer is `WouldBlock`.
fn send_to(socket: &UdpSocket, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
    SockRef::from(socket).send_to(packet, &SockAddr::from(to))
}
