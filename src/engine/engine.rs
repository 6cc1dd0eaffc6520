//! The [`Engine`] struct: routes input to the transaction layer and the UAS core.

use super::time::{MonoTime, Now};
use super::{Input, Output};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// What the engine needs to know about its node, addresses and timers. Built from
/// `config::Config` by the shell.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `node.id`: short name of this node.
    pub node_id: String,
    /// `sip.domains`, lower-cased: the domains siaga answers for. The first is the digest realm.
    pub domains: Vec<String>,
    /// Addresses that also mean "siaga itself": the listen address and the advertised one.
    pub local_addresses: Vec<SocketAddr>,
    /// The host siaga writes in Via and Contact (`sip.advertise`, else the listen address),
    /// as written in a SIP URI: an IPv4 address, an IPv6 address in brackets, or a host name.
    /// Together with `advertised_port` it also means "siaga itself".
    pub advertised_host: String,
    /// The port siaga writes in Via and Contact (`sip.advertise`'s port, else the listen
    /// port).
    pub advertised_port: u16,
    /// RFC 3261 T1 (`sip.timers.t1_ms`, default 500 ms).
    pub t1: Duration,
    /// RFC 3261 T2 (`sip.timers.t2_ms`, default 4 s).
    pub t2: Duration,
    /// RFC 3261 T4 (`sip.timers.t4_ms`, default 5 s).
    pub t4: Duration,
}

/// Counters of input the engine dropped or answered with an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests that drew a 400 (or could not be answered at all).
    pub malformed_requests: u64,
    /// Responses that did not parse: dropped.
    pub malformed_responses: u64,
    /// Responses that matched no client transaction: dropped.
    pub stray_responses: u64,
    /// Input that could not be parsed far enough to tell request from response: dropped.
    pub unparseable: u64,
}

/// The sans-IO SIP engine. See the module docs for the call order.
pub struct Engine {
    config: EngineConfig,
    rng: rand::rngs::StdRng,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl Engine {
    /// A new engine. `rng` is the only source of randomness (tags, branches, Call-IDs,
    /// nonces); the shell seeds it from the OS, tests with a fixed seed.
    pub fn new(config: EngineConfig, rng: rand::rngs::StdRng) -> Self {
        Engine {
            config,
            rng,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters of dropped and rejected input.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Feed one input. Outputs are queued for [`Engine::poll_output`].
    pub fn handle_input(&mut self, now: Now, input: Input) {
        let _ = (now, input, &mut self.rng);
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        let _ = now;
    }

    /// The next output; [`Output::Wait`] when there is nothing more to do now.
    pub fn poll_output(&mut self) -> Output {
        self.outputs.pop_front().unwrap_or(Output::Wait {
            until: self.next_deadline(),
        })
    }

    fn next_deadline(&self) -> Option<MonoTime> {
        None
    }
}
