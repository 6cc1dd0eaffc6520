//! Trunk health: siaga sends OPTIONS (RFC 3261 §11) to each configured trunk gateway at an
//! interval and marks the gateway up or down. This module owns each gateway's
//! [`GatewayState`], its probe in flight and the time of its next probe; the OPTIONS
//! themselves run as ordinary non-INVITE client transactions (§17.1.2) in the engine's
//! table.
//!
//! Policy, as SBCs and dispatchers (Kamailio `dispatcher`, OpenSIPS) do it:
//! - **up** on any response, 1xx–6xx: even a 404 or 503 shows the peer's SIP stack is alive
//!   (§11.2 lets a UAS answer OPTIONS with what it would answer an INVITE);
//! - **down** after `options_failures` consecutive probes that drew no response: Timer F
//!   fired (64·T1, §17.1.2.2) or the shell reported a transport error for it (§17.1.4),
//!   which the TU treats as a 408 / 503 (§8.1.3.1);
//! - one probe in flight per gateway: the next is sent `options_interval` after the previous
//!   one was sent, or as soon as the previous one ends if it took longer (a dead gateway is
//!   probed every 64·T1 while the interval is shorter);
//! - every change of state is logged (`up` at info, `down` at warn); before the first
//!   result a gateway is [`GatewayState::Unknown`].
//!
//! Sans-IO: times come in as arguments, the first probes are due at [`MonoTime::ZERO`]
//! (the shell's start). Call order: [`TrunkHealth::poll_due`] until `None` and
//! [`TrunkHealth::probe_sent`] for each probe sent; [`TrunkHealth::on_response`] /
//! [`TrunkHealth::on_ended`] as the probe's transaction reports;
//! [`TrunkHealth::next_deadline`] is when the next probe is due.

use super::Transport;
use super::driver::{Engine, SERVER};
use super::sip::Method;
use super::sip::builder::MessageBuilder;
use super::time::{MonoTime, Now};
use super::transaction::{ClientKey, ClientTxId, Destination, Termination};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One gateway of the trunk (`trunk.gateways`): where OPTIONS (and, later, callbacks) go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway's SIP URI as configured (`sip:192.0.2.10:5060;transport=tcp`): the
    /// Request-URI and To of each OPTIONS.
    pub uri: String,
    /// Its IP literal and port (5060 when the URI has none).
    pub address: SocketAddr,
    /// UDP, or TCP with `;transport=tcp`.
    pub transport: Transport,
}

impl fmt::Display for Gateway {
    /// `udp:192.0.2.10:5060`, `tcp:[2001:db8::1]:5060`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{t}:{}", self.address)
    }
}

/// What trunk health checking needs from the configuration (`[trunk]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// `trunk.gateways`: the gateways to probe; empty disables probing.
    pub gateways: Vec<Gateway>,
    /// `trunk.options_interval_s` (default 30 s): time between the starts of two probes
    /// of one gateway.
    pub interval: Duration,
    /// `trunk.options_failures` (default 3, ≥ 1): consecutive unanswered probes that mark
    /// a gateway down.
    pub failures_before_down: u32,
}

impl Default for HealthConfig {
    /// No gateways, 30 s, 3 failures.
    fn default() -> Self {
        HealthConfig {
            gateways: Vec::new(),
            interval: Duration::from_secs(30),
            failures_before_down: 3,
        }
    }
}

/// Whether a gateway answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayState {
    /// No probe has finished yet.
    Unknown,
    /// The last probe drew a response.
    Up,
    /// The last `options_failures` probes drew none.
    Down,
}

impl fmt::Display for GatewayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GatewayState::Unknown => "unknown",
            GatewayState::Up => "up",
            GatewayState::Down => "down",
        })
    }
}

/// What is known of one gateway (read by [`Engine::trunk_gateways`]; metrics later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayStatus {
    /// The gateway.
    pub gateway: Gateway,
    /// Up, down or not known yet.
    pub state: GatewayState,
    /// When `state` last changed (`None`: never).
    pub since: Option<MonoTime>,
    /// Probes in a row that drew no response.
    pub failures: u32,
    /// The status code of the last response to a probe.
    pub last_status: Option<u16>,
}

/// A change of a gateway's state, to be logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The gateway.
    pub gateway: Gateway,
    /// Its state before.
    pub from: GatewayState,
    /// Its state now.
    pub to: GatewayState,
    /// The status that made it up, if a response did.
    pub status: Option<u16>,
    /// Probes in a row without a response (for a change to down).
    pub failures: u32,
    /// How the last of them ended (for a change to down): Timer F, or a transport error.
    pub failure: Option<Termination>,
}

#[derive(Debug)]
struct Entry {
    status: GatewayStatus,
    /// When the next probe is due (`None` while one is in flight, or after `stop`).
    next: Option<MonoTime>,
}

/// Every gateway's health. See the [module docs](self) for policy and call order.
#[derive(Debug)]
pub struct TrunkHealth {
    interval: Duration,
    failures_before_down: u32,
    entries: Vec<Entry>,
    /// The probe transactions still waiting for their first response → gateway index and
    /// when the probe was sent.
    probes: HashMap<ClientTxId, (usize, MonoTime)>,
}

impl TrunkHealth {
    /// Health for `config`'s gateways, all [`GatewayState::Unknown`], first probes due at
    /// [`MonoTime::ZERO`].
    pub fn new(config: &HealthConfig) -> Self {
        TrunkHealth {
            interval: config.interval,
            failures_before_down: config.failures_before_down.max(1),
            entries: config
                .gateways
                .iter()
                .map(|g| Entry {
                    status: GatewayStatus {
                        gateway: g.clone(),
                        state: GatewayState::Unknown,
                        since: None,
                        failures: 0,
                        last_status: None,
                    },
                    next: Some(MonoTime::ZERO),
                })
                .collect(),
            probes: HashMap::new(),
        }
    }

    // Getters.

    /// Every gateway's status, in `trunk.gateways` order.
    pub fn gateways(&self) -> impl ExactSizeIterator<Item = &GatewayStatus> {
        self.entries.iter().map(|e| &e.status)
    }

    /// The earliest due probe, if any gateway waits for one.
    pub fn next_deadline(&self) -> Option<MonoTime> {
        self.next_probe().map(|(at, _)| at)
    }

    /// When the earliest probe is due, and the index of its gateway.
    fn next_probe(&self) -> Option<(MonoTime, usize)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.next.map(|at| (at, i)))
            .min()
    }

    // Input.

    /// A probe whose timer is due at or before `now`: its gateway, whose timer is cleared.
    /// The caller sends the OPTIONS and reports it with [`TrunkHealth::probe_sent`].
    pub fn poll_due(&mut self, now: MonoTime) -> Option<(usize, Gateway)> {
        let (at, i) = self.next_probe()?;
        if at > now {
            return None;
        }
        let entry = &mut self.entries[i];
        entry.next = None;
        Some((i, entry.status.gateway.clone()))
    }

    /// The OPTIONS to gateway `index` went out at `now` on client transaction `tx`.
    pub fn probe_sent(&mut self, index: usize, tx: ClientTxId, now: MonoTime) {
        if index < self.entries.len() {
            self.probes.insert(tx, (index, now));
        }
    }

    /// A response with `status` arrived on transaction `tx`. When `tx` is a probe still
    /// waiting for its first response, its gateway is up and its next probe is scheduled;
    /// returns the change of state, if any. Otherwise nothing happens.
    pub fn on_response(
        &mut self,
        tx: ClientTxId,
        status: u16,
        now: MonoTime,
    ) -> Option<StateChange> {
        let (index, sent) = self.probes.remove(&tx)?;
        let entry = self.finish(index, sent, now)?;
        entry.status.failures = 0;
        entry.status.last_status = Some(status);
        change(entry, GatewayState::Up, Some(status), None, now)
    }

    /// Transaction `tx` ended for `why`. When `tx` is a probe that drew no response, that
    /// is one more failure of its gateway (down after `options_failures` in a row) and its
    /// next probe is scheduled; returns the change of state, if any.
    pub fn on_ended(
        &mut self,
        tx: ClientTxId,
        why: Termination,
        now: MonoTime,
    ) -> Option<StateChange> {
        let (index, sent) = self.probes.remove(&tx)?;
        let threshold = self.failures_before_down;
        let entry = self.finish(index, sent, now)?;
        // Any end without a response is a failure (a normal end cannot come first: Timer
        // K follows a final response, which `on_response` took).
        entry.status.failures = entry.status.failures.saturating_add(1);
        if entry.status.failures < threshold {
            return None;
        }
        change(entry, GatewayState::Down, None, Some(why), now)
    }

    /// siaga is stopping: no more probes. Returns the probe transactions in flight, which
    /// the caller abandons.
    pub fn stop(&mut self) -> Vec<ClientTxId> {
        for entry in &mut self.entries {
            entry.next = None;
        }
        self.probes.drain().map(|(tx, _)| tx).collect()
    }

    /// The probe of gateway `index`, sent at `sent`, finished at `now`: the next one is due
    /// `interval` after it was sent, or now if that is past.
    fn finish(&mut self, index: usize, sent: MonoTime, now: MonoTime) -> Option<&mut Entry> {
        let interval = self.interval;
        let entry = self.entries.get_mut(index)?;
        entry.next = Some((sent + interval).max(now));
        Some(entry)
    }
}

/// Moves `entry` to `to`; the change, when it is one.
fn change(
    entry: &mut Entry,
    to: GatewayState,
    status: Option<u16>,
    failure: Option<Termination>,
    now: MonoTime,
) -> Option<StateChange> {
    let from = entry.status.state;
    if from == to {
        return None;
    }
    entry.status.state = to;
    entry.status.since = Some(now);
    Some(StateChange {
        gateway: entry.status.gateway.clone(),
        from,
        to,
        status,
        failures: entry.status.failures,
        failure,
    })
}

impl Engine {
    /// Every trunk gateway's health, in `trunk.gateways` order.
    pub fn trunk_gateways(&self) -> impl ExactSizeIterator<Item = &GatewayStatus> {
        self.trunk_health.gateways()
    }

    /// Sends the OPTIONS of every probe due at `now` (RFC 3261 §11.1: outside any dialog,
    /// a new Call-ID each, Accept: application/sdp).
    pub(crate) fn send_probes(&mut self, now: Now) {
        if self.stopping {
            return;
        }
        while let Some((index, gateway)) = self.trunk_health.poll_due(now.mono) {
            let branch = self.new_branch();
            let tag = self.new_tag();
            let call_id = format!("{}@{}", self.new_tag(), self.config.advertised_host);
            let bytes = MessageBuilder::request(&Method::Options, &gateway.uri)
                .header("Via", self.config.via(gateway.transport, &branch))
                .header("Max-Forwards", 70)
                .header(
                    "From",
                    format!("<sip:siaga@{}>;tag={tag}", self.config.via_host()),
                )
                .header("To", format!("<{}>", gateway.uri))
                .header("Call-ID", call_id)
                .header("CSeq", "1 OPTIONS")
                .header("Accept", super::uas::ACCEPT)
                .header("User-Agent", SERVER)
                .build();
            let tx = self.client.send(
                now.mono,
                ClientKey {
                    branch,
                    method: Method::Options,
                },
                bytes,
                Destination {
                    transport: gateway.transport,
                    address: gateway.address,
                    connection: None,
                },
                &self.config.timers,
            );
            self.trunk_health.probe_sent(index, tx, now.mono);
        }
    }

    /// A response to client transaction `tx` passed up: a probe's answer marks its
    /// gateway up.
    pub(crate) fn on_probe_response(&mut self, now: Now, tx: ClientTxId, status: u16) {
        if let Some(change) = self.trunk_health.on_response(tx, status, now.mono) {
            log_change(&change);
        }
    }

    /// Client transaction `tx` ended: a probe that drew no response is a failure.
    pub(crate) fn on_probe_ended(&mut self, now: Now, tx: ClientTxId, why: Termination) {
        if let Some(change) = self.trunk_health.on_ended(tx, why, now.mono) {
            log_change(&change);
        }
    }

    /// No more probes (siaga stops); those in flight are dropped so that shutdown does
    /// not wait for their Timer F.
    pub(crate) fn stop_probes(&mut self) {
        for tx in self.trunk_health.stop() {
            self.client.abandon(tx);
        }
    }
}

fn log_change(c: &StateChange) {
    match c.to {
        GatewayState::Up => tracing::info!(
            gateway = %c.gateway,
            was = %c.from,
            status = c.status,
            "trunk gateway up: it answered OPTIONS"
        ),
        _ => tracing::warn!(
            gateway = %c.gateway,
            was = %c.from,
            failures = c.failures,
            last = ?c.failure,
            "trunk gateway down: OPTIONS unanswered"
        ),
    }
}

#[cfg(test)]
mod tests;
