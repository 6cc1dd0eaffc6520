//! What the engine tells the media relay and what it hears back, and the sans-IO allocator
//! of the relay's UDP ports (`media.rtp_ports`).
//!
//! Each relayed call has two legs, each with a port pair: an even RTP port and RTCP on the
//! next odd one (RFC 3550 §11). The engine allocates both pairs from a [`PortPool`], emits
//! [`MediaCommand::Open`], writes the RTP ports in its SDP ([`crate::engine::sdp`]), emits
//! [`MediaCommand::SetPeer`] with each side's SDP address, and [`MediaCommand::Close`] when
//! the call ends. The shell (`crate::media`) answers a Close with a
//! [`MediaReport::Closed`] once the relay's sockets are closed: that is when the engine
//! should release the ports. While a relay runs, it reports a side whose RTP stopped
//! ([`MediaReport::Silent`], `media.silence_timeout_s`).

use std::collections::VecDeque;
use std::net::SocketAddr;

/// Identifies one relay (one call's media). Assigned by the engine, never reused while the
/// shell runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayId(pub u64);

/// One side of a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The trunk side: the caller's media (via the telco's SBC).
    Caller,
    /// The operator side: the operator's softphone.
    Operator,
}

impl Side {
    /// The other side.
    pub const fn other(self) -> Side {
        match self {
            Side::Caller => Side::Operator,
            Side::Operator => Side::Caller,
        }
    }
}

/// A command for the media shell, output by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaCommand {
    /// Bind the relay's sockets and start forwarding: RTP on `caller_port` and
    /// `operator_port` (even), RTCP on each + 1, all on the relay's bind address.
    Open {
        /// The relay.
        relay: RelayId,
        /// The trunk-side RTP port (written in the SDP answer to the trunk).
        caller_port: u16,
        /// The operator-side RTP port (written in the SDP offers to operators).
        operator_port: u16,
    },
    /// The RTP address a side's SDP gave (RFC 3264 §5, §6). Packets to that side go there
    /// until the side latches (its first RTP packet sets its address: symmetric RTP, RFC
    /// 4961); RTCP goes to its port + 1 until the side sends RTCP. Also resets that side's
    /// latch: a new operator leg is a new peer.
    SetPeer {
        /// The relay.
        relay: RelayId,
        /// Whose address it is.
        side: Side,
        /// Its RTP address from SDP. An unspecified IP or port 0 means "none" (hold,
        /// RFC 3264 §8.4): nothing is sent to that side until it latches.
        rtp: SocketAddr,
    },
    /// Stop forwarding and close the sockets; the shell then sends a
    /// [`MediaReport::Closed`].
    Close {
        /// The relay.
        relay: RelayId,
    },
}

/// Packets one way through a relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCounts {
    /// RTP packets forwarded.
    pub packets: u64,
    /// Bytes of those packets (whole UDP payloads: RTP header included).
    pub bytes: u64,
    /// Datagrams received and not forwarded: not RTP (RFC 3550 §5.1 as `rtp-rs` reads it),
    /// from another source than the latched one, no address for the other side yet, or a
    /// send that failed (full socket buffer).
    pub dropped: u64,
    /// RTCP packets forwarded (RFC 3550 §6; checked for version 2 and length only).
    pub rtcp_packets: u64,
}

/// What the shell tells the engine about a relay (`Input::MediaReport`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaReport {
    /// The relay closed its sockets (on Close, or when the shell shuts down): what it
    /// relayed. Sent once per relay, last.
    Closed(RelayClosed),
    /// RTP had been arriving from `side` and none arrived for `media.silence_timeout_s`
    /// (RTCP does not count). Sent once per silence: only a new RTP packet from that side
    /// re-arms it, and a SetPeer for the side starts it over (nothing heard yet). A side
    /// that never sent is never reported.
    Silent {
        /// The relay.
        relay: RelayId,
        /// The side that went silent.
        side: Side,
    },
}

/// What a relay did, sent by the shell after its sockets are closed (on Close, or when the
/// shell shuts down). The engine records it as a call event and releases `caller_port`
/// and `operator_port` to its [`PortPool`] when it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayClosed {
    /// The relay.
    pub relay: RelayId,
    /// The trunk-side RTP port it had.
    pub caller_port: u16,
    /// The operator-side RTP port it had.
    pub operator_port: u16,
    /// Trunk → operator.
    pub caller_to_operator: PacketCounts,
    /// Operator → trunk.
    pub operator_to_caller: PacketCounts,
    /// The source address the caller side's RTP latched to, if it sent any.
    pub latched_caller: Option<SocketAddr>,
    /// The source address the operator side's RTP latched to (the last operator leg's).
    pub latched_operator: Option<SocketAddr>,
    /// Ports the shell could not bind (already in use by another program); when not
    /// empty, the relay forwarded nothing.
    pub bind_failed: Vec<u16>,
}

/// A FIFO allocator of RTP/RTCP port pairs over `media.rtp_ports` (LOW–HIGH inclusive).
///
/// Hands out even ports `p` with `p + 1 <= HIGH`; never one that is in use. Released ports
/// go to the back of the free list, so a just-freed port is reused last (stale packets of
/// the old call, still in flight, do not reach a new one). Capacity: `(HIGH - LOW + 1) / 2`
/// pairs (an odd LOW is rounded up).
#[derive(Clone, Debug)]
pub struct PortPool {
    low: u16,
    free: VecDeque<u16>,
    /// Indexed by `(port - low) / 2`.
    in_use: Vec<bool>,
}

impl PortPool {
    /// A pool over `low..=high`. Empty when the range holds no even/odd pair.
    pub fn new(low: u16, high: u16) -> PortPool {
        let low = low.saturating_add(low % 2);
        let free: VecDeque<u16> = (low..high)
            .step_by(2)
            .take_while(|p| p.checked_add(1).is_some_and(|rtcp| rtcp <= high))
            .collect();
        PortPool {
            low,
            in_use: vec![false; free.len()],
            free,
        }
    }

    /// An even RTP port (its RTCP port is the next one), or `None` when all are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        let port = self.free.pop_front()?;
        if let Some(slot) = self.slot(port) {
            *slot = true;
        }
        Some(port)
    }

    /// Returns `port` to the back of the free list. Returns false (and changes nothing)
    /// when `port` is not one this pool handed out and has not yet been released.
    pub fn release(&mut self, port: u16) -> bool {
        match self.slot(port) {
            Some(slot) if *slot => {
                *slot = false;
                self.free.push_back(port);
                true
            }
            _ => false,
        }
    }

    /// How many pairs are free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// How many pairs the pool holds.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    fn slot(&mut self, port: u16) -> Option<&mut bool> {
        let offset = port.checked_sub(self.low)?;
        if offset % 2 != 0 {
            return None;
        }
        self.in_use.get_mut(usize::from(offset / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn hands_out_even_pairs_within_range_then_none() {
        let mut pool = PortPool::new(30000, 30005);
        assert_eq!(pool.capacity(), 3);
        assert_eq!(pool.allocate(), Some(30000));
        assert_eq!(pool.allocate(), Some(30002));
        assert_eq!(pool.allocate(), Some(30004));
        assert_eq!(pool.allocate(), None);
        assert_eq!(pool.available(), 0);
    }

    #[test]
    fn an_odd_high_end_pair_needs_its_rtcp_port() {
        let mut pool = PortPool::new(30000, 30004);
        assert_eq!(pool.capacity(), 2, "30004 has no 30005");
        let mut odd_low = PortPool::new(30001, 30004);
        assert_eq!(odd_low.allocate(), Some(30002));
        assert_eq!(odd_low.allocate(), None);
        assert_eq!(PortPool::new(65534, 65535).capacity(), 1);
        assert_eq!(PortPool::new(30000, 30000).capacity(), 0);
        assert_eq!(PortPool::new(30000, 20000).capacity(), 0);
        assert_eq!(pool.allocate(), Some(30000));
    }

    #[test]
    fn released_ports_go_to_the_back() {
        let mut pool = PortPool::new(30000, 30007);
        let a = pool.allocate().expect("free");
        assert!(pool.release(a));
        assert_eq!(pool.allocate(), Some(30002), "not the port just freed");
        assert_eq!(pool.allocate(), Some(30004));
        assert_eq!(pool.allocate(), Some(30006));
        assert_eq!(pool.allocate(), Some(30000));
    }

    #[test]
    fn foreign_and_double_releases_are_refused() {
        let mut pool = PortPool::new(30000, 30003);
        let a = pool.allocate().expect("free");
        assert!(!pool.release(a + 1), "odd port");
        assert!(!pool.release(29998), "below range");
        assert!(!pool.release(30004), "above range");
        assert!(!pool.release(30002), "never handed out");
        assert!(pool.release(a));
        assert!(!pool.release(a), "double release");
        assert_eq!(pool.available(), 2);
    }

    proptest! {
        /// Whatever the order of allocations and releases (including bogus releases), no
        /// port is handed out twice while in use, every port is an even RTP port whose RTCP
        /// port is in range, and free + in use = capacity.
        #[test]
        fn never_hands_out_a_port_in_use(
            low in (1024u16..2000).prop_map(|p| p & !1),
            len in 0u16..40,
            ops in proptest::collection::vec((any::<bool>(), any::<u16>()), 0..200),
        ) {
            let high = low + len;
            let mut pool = PortPool::new(low, high);
            let mut held: Vec<u16> = Vec::new();
            for (alloc, pick) in ops {
                if alloc {
                    match pool.allocate() {
                        Some(p) => {
                            prop_assert!(p % 2 == 0 && p >= low && p < high);
                            prop_assert!(!held.contains(&p));
                            held.push(p);
                        }
                        None => prop_assert_eq!(held.len(), pool.capacity()),
                    }
                } else if !held.is_empty() && pick % 3 != 0 {
                    let p = held.swap_remove(usize::from(pick) % held.len());
                    prop_assert!(pool.release(p));
                } else {
                    let bogus = low.wrapping_add(pick % 64);
                    let expect = held.contains(&bogus);
                    prop_assert_eq!(pool.release(bogus), expect);
                    held.retain(|&p| p != bogus);
                }
                prop_assert_eq!(pool.available() + held.len(), pool.capacity());
                let unique: HashSet<_> = held.iter().collect();
                prop_assert_eq!(unique.len(), held.len());
            }
        }
    }
}
