//! The simulated network: UDP datagrams between siaga and its peers on 127.0.0.0/8,
//! delivered in virtual time. Each datagram is lost, delivered once or duplicated, each
//! copy after its own delay (a base delay plus jitter, so datagrams sent close together
//! are reordered), all drawn from one seeded RNG. An outage makes a node unreachable for a
//! while: nothing it sends or should receive in that window arrives.
//!
//! The fate of a datagram is decided when it is sent, so the wire log knows every delivery
//! time at once (the checks read it). Deliveries due at the same millisecond come out in
//! the order they were scheduled.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// How the network treats datagrams, for one run.
#[derive(Clone, Debug)]
pub struct NetProfile {
    /// Probability that a datagram is lost (0.0–1.0).
    pub loss: f64,
    /// Probability that a datagram that is not lost arrives twice.
    pub duplicate: f64,
    /// Shortest one-way delay, in ms.
    pub min_delay_ms: u64,
    /// Extra delay drawn uniformly from `0..=jitter_ms` per copy, in ms.
    pub jitter_ms: u64,
    /// `node` neither sends nor receives from `from_ms` (inclusive) to `until_ms`
    /// (exclusive).
    pub outages: Vec<Outage>,
    /// Datagrams (sender, receiver, bytes) this returns true for are lost: directed tests
    /// cut one kind of message.
    pub drop: Option<DropRule>,
}

/// Which datagrams (sender, receiver, bytes) a directed test has the network lose.
pub type DropRule = fn(SocketAddr, SocketAddr, &[u8]) -> bool;

/// A window during which one node is cut off.
#[derive(Clone, Copy, Debug)]
pub struct Outage {
    /// The node's address.
    pub node: SocketAddr,
    /// Start, in ms of virtual time.
    pub from_ms: u64,
    /// End (exclusive), in ms of virtual time.
    pub until_ms: u64,
}

impl Outage {
    fn cuts(&self, at: u64, from: SocketAddr, to: SocketAddr) -> bool {
        (self.node == from || self.node == to) && (self.from_ms..self.until_ms).contains(&at)
    }
}

/// One datagram in flight.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// Index of the datagram in the wire log.
    pub wire: usize,
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// The whole SIP message.
    pub bytes: Bytes,
}

/// The network: datagrams in flight, ordered by delivery time.
pub struct Network {
    profile: NetProfile,
    rng: StdRng,
    in_flight: BTreeMap<(u64, u64), Datagram>,
    next_seq: u64,
}

impl Network {
    /// A network with `profile`, its fates drawn from `seed`.
    pub fn new(profile: NetProfile, seed: u64) -> Network {
        Network {
            profile,
            rng: StdRng::seed_from_u64(seed),
            in_flight: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Sends `datagram` at `now`; returns the delivery times of its copies (empty: lost).
    /// A copy is lost too when either end is in an outage at send or at delivery time.
    pub fn send(&mut self, now: u64, datagram: Datagram) -> Vec<u64> {
        let p = &self.profile;
        let dropped = p
            .drop
            .is_some_and(|drop| drop(datagram.from, datagram.to, &datagram.bytes));
        let copies = if self.rng.random_bool(p.loss) || dropped {
            0
        } else if self.rng.random_bool(p.duplicate) {
            2
        } else {
            1
        };
        let mut times = Vec::with_capacity(copies);
        for _ in 0..copies {
            let at = now + p.min_delay_ms + self.rng.random_range(0..=p.jitter_ms);
            let cut = p.outages.iter().any(|o| {
                o.cuts(now, datagram.from, datagram.to) || o.cuts(at, datagram.from, datagram.to)
            });
            if cut {
                continue;
            }
            times.push(at);
            self.in_flight.insert((at, self.next_seq), datagram.clone());
            self.next_seq += 1;
        }
        times
    }

    /// When the next datagram arrives.
    pub fn next_delivery(&self) -> Option<u64> {
        self.in_flight.first_key_value().map(|(&(at, _), _)| at)
    }

    /// The next datagram due at or before `now`, removed.
    pub fn pop_due(&mut self, now: u64) -> Option<Datagram> {
        let (&(at, _), _) = self.in_flight.first_key_value()?;
        if at > now {
            return None;
        }
        self.in_flight.pop_first().map(|(_, d)| d)
    }
}
