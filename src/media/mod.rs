//! The RTP relay (tokio shell): executes the engine's [`MediaCommand`]s, one task per
//! relayed call, reports each relay's counts when it closes ([`MediaReport::Closed`]) and
//! a side whose RTP stopped for the silence timeout ([`MediaReport::Silent`],
//! `media.silence_timeout_s`, [`MediaRelays::with_silence_timeout`]).
//!
//! siaga anchors media: both legs send RTP to the relay, which latches to the address each
//! side really sends from (symmetric RTP, RFC 4961; NAT) and forwards payloads unchanged
//! (the SDP offer/answer, [`crate::engine::sdp`], keeps payload type numbers equal on both
//! legs). RTCP (RFC 3550 §6) is forwarded the same way on the odd ports.
//!
//! Queues:
//! - Control, per relay: bounded ([`CONTROL_QUEUE`]). The engine sends a handful of
//!   SetPeers per call (one per operator leg); a full queue means the relay task is not
//!   running, so the SetPeer is logged and dropped. Close is not queued: it drops the
//!   queue's sender, which the task sees after what is queued.
//! - Reports: bounded (`tokio::sync::mpsc::Sender`, the capacity the caller chose). A
//!   closing relay task waits for room; it has already closed its sockets, so a slow
//!   reader delays only reports, never media or the engine, and no report is dropped. A
//!   running relay with a silence report due keeps relaying while it waits for room (the
//!   report goes once there is, unless a SetPeer for that side made it moot). The reports
//!   waiting are bounded by the relays open, which the port pool bounds: at most three
//!   each (one silence per side, then the closing one).
//!
//! Where relays run: on the caller's runtime ([`MediaRelays::new`]) or on a thread of their
//! own ([`MediaThread`] and [`MediaRelays::with_handle`]). The latter keeps media apart from
//! signalling and avoids cross-thread wake-ups: `sip-tests/bench-rtp.sh` measured about
//! 4.6 µs of CPU per relayed packet there against 5.0–5.4 µs on a 2-worker runtime.

mod relay;

use crate::engine::media::{MediaCommand, MediaReport, RelayId, Side};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{error, warn};

/// A thread that runs a single-threaded tokio runtime for the relays (see the module
/// docs). Dropping it stops the runtime: call [`MediaRelays::shutdown`] first, or the relay
/// tasks still open are dropped without sending their reports.
#[derive(Debug)]
pub struct MediaThread {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl MediaThread {
    /// Starts the thread (named `siaga-media`). Errors: the runtime or the thread could not
    /// be created.
    pub fn start() -> io::Result<MediaThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("siaga-media".to_owned())
            .spawn(move || {
                // Ends when the MediaThread is dropped (the sender closes).
                let _ = runtime.block_on(stopped);
            })?;
        Ok(MediaThread {
            handle,
            _stop: stop,
        })
    }

    /// The runtime's handle, for [`MediaRelays::with_handle`].
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

/// Capacity of each relay's control queue, in SetPeer commands.
pub const CONTROL_QUEUE: usize = 8;

/// A control message for a relay task.
#[derive(Debug)]
enum Control {
    /// [`MediaCommand::SetPeer`].
    SetPeer(Side, SocketAddr),
}

/// The relays of one siaga process. Owned by the engine task, which calls
/// [`MediaRelays::execute`] for each [`MediaCommand`] the engine outputs.
#[derive(Debug)]
pub struct MediaRelays {
    bind_ip: IpAddr,
    reports: mpsc::Sender<MediaReport>,
    handle: Handle,
    tracker: TaskTracker,
    relays: HashMap<RelayId, mpsc::Sender<Control>>,
    silence_timeout: Option<Duration>,
}

impl MediaRelays {
    /// Relays bound on `bind_ip` whose tasks run on the current tokio runtime, reporting
    /// to `reports`.
    ///
    /// # Panics
    /// When called outside a tokio runtime (as `tokio::spawn` does).
    pub fn new(bind_ip: IpAddr, reports: mpsc::Sender<MediaReport>) -> MediaRelays {
        MediaRelays::with_handle(bind_ip, reports, Handle::current())
    }

    /// Relays whose sockets and tasks live on the runtime of `handle` (for instance a
    /// runtime of their own, apart from signalling).
    pub fn with_handle(
        bind_ip: IpAddr,
        reports: mpsc::Sender<MediaReport>,
        handle: Handle,
    ) -> MediaRelays {
        MediaRelays {
            bind_ip,
            reports,
            handle,
            tracker: TaskTracker::new(),
            relays: HashMap::new(),
            silence_timeout: None,
        }
    }

    /// Relays opened from now on report a side silent ([`MediaReport::Silent`]) once RTP
    /// from it stopped for `timeout` (`media.silence_timeout_s`); `None` (the default)
    /// reports no silence.
    pub fn with_silence_timeout(mut self, timeout: Option<Duration>) -> MediaRelays {
        self.silence_timeout = timeout;
        self
    }

    /// The address relays bind.
    pub fn bind_ip(&self) -> IpAddr {
        self.bind_ip
    }

    /// How many relays are open (opened and not closed).
    pub fn len(&self) -> usize {
        self.relays.len()
    }

    /// Whether no relay is open.
    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Carries out `command` without waiting: Open binds its four sockets at once (so the
    /// ports are bound before the SDP naming them is sent) and spawns the relay task; a
    /// bind failure is logged with the port, and that relay forwards nothing and lists the
    /// port in its report. SetPeer is queued to the task. Close ends the task, which closes
    /// the sockets and then sends the report. Commands for an unknown relay, and a second
    /// Open of the same one, are logged and ignored.
    pub fn execute(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Open {
                relay,
                caller_port,
                operator_port,
            } => self.open(relay, caller_port, operator_port),
            MediaCommand::SetPeer { relay, side, rtp } => match self.relays.get(&relay) {
                Some(control) => {
                    if let Err(e) = control.try_send(Control::SetPeer(side, rtp)) {
                        error!(relay = relay.0, ?side, %e, "relay control queue: SetPeer dropped");
                    }
                }
                None => warn!(relay = relay.0, "SetPeer for an unknown relay"),
            },
            MediaCommand::Close { relay } => {
                if self.relays.remove(&relay).is_none() {
                    warn!(relay = relay.0, "Close of an unknown relay");
                }
            }
        }
    }

    /// Closes every relay and waits until all have closed their sockets and sent their
    /// reports (or found the report queue closed).
    pub async fn shutdown(mut self) {
        self.relays.clear();
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn open(&mut self, relay: RelayId, caller_port: u16, operator_port: u16) {
        if self.relays.contains_key(&relay) {
            warn!(relay = relay.0, "Open of a relay already open; ignored");
            return;
        }
        let mut bind_failed = Vec::new();
        let mut bind = |port: u16, offset: u16| {
            let result = port
                .checked_add(offset)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "port + 1 > 65535"))
                .and_then(|p| self.bind(p));
            match result {
                Ok(socket) => Some(socket),
                Err(e) => {
                    let port = port.saturating_add(offset);
                    error!(relay = relay.0, port, %e, "cannot bind relay port; this relay forwards nothing");
                    bind_failed.push(port);
                    None
                }
            }
        };
        let sockets = [
            bind(caller_port, 0),
            bind(caller_port, 1),
            bind(operator_port, 0),
            bind(operator_port, 1),
        ];
        let sockets = match sockets {
            [Some(a), Some(b), Some(c), Some(d)] => Some([[a, b], [c, d]]),
            // The ones that bound are dropped here: their ports are free again.
            _ => None,
        };
        let (control, queue) = mpsc::channel(CONTROL_QUEUE);
        self.relays.insert(relay, control);
        self.tracker.spawn_on(
            relay::run(
                relay,
                (caller_port, operator_port),
                sockets,
                queue,
                bind_failed,
                (self.reports.clone(), self.silence_timeout),
            ),
            &self.handle,
        );
    }

    /// Binds one port on the relay address, registered with the relays' runtime.
    fn bind(&self, port: u16) -> io::Result<UdpSocket> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(self.bind_ip, port))?;
        socket.set_nonblocking(true)?;
        let _runtime = self.handle.enter();
        UdpSocket::from_std(socket)
    }
}
