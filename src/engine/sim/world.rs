//! One simulated run: siaga's [`Engine`], the trunk, the phones, the network and a stand-in
//! for the media relay, stepped through virtual time from a seed. The world records what
//! went over the wire (with every copy's delivery time), every call event with what caused
//! it, and every media command, for the checks in `check`.

use super::Ctx;
use super::desk::Desks;
use super::net::{Datagram, Network};
use super::phone::{Account, Phone};
pub use super::scenario::Scenario;
use super::trunk::Trunk;
use super::ua::Ua;
use crate::engine::digest::Ha1;
use crate::engine::media::{MediaCommand, MediaReport, PacketCounts, RelayClosed, RelayId, Side};
use crate::engine::record::{AgentEvent, CallEvent};
use crate::engine::sip::{Method, SipMessage};
use crate::engine::transaction::TimerConfig;
use crate::engine::{Engine, EngineConfig, Input, Now, Output, Received, Transport};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// siaga's address.
pub const SIAGA: SocketAddr = addr([127, 0, 0, 1]);
/// The trunk's address.
pub const TRUNK: SocketAddr = addr([127, 0, 0, 2]);

const fn addr(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
        5060,
    )
}

/// The address of phone `k` (127.0.1.k).
pub(super) fn phone_addr(k: usize) -> SocketAddr {
    addr([127, 0, 1, k as u8 + 1])
}

/// One datagram as sent, and when its copies arrived.
#[derive(Debug)]
pub struct Wire {
    /// When it was sent, in ms.
    pub at: u64,
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// The message, parsed (the sim only sends what parses).
    pub msg: SipMessage,
    /// Its Call-ID.
    pub call_id: String,
    /// Its top Via's branch.
    pub branch: String,
    /// Its CSeq method.
    pub cseq: Method,
    /// Delivery time of each copy (empty: lost).
    pub deliveries: Vec<u64>,
}

/// What made the engine emit a call event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Delivery of the wire log's datagram with this index.
    Delivery(usize),
    /// A timer of the engine.
    Timer,
    /// A relay's report.
    MediaReport,
    /// `Engine::shutdown`: calls nobody could end were hung up.
    Shutdown,
    /// An operator's command (`desk`).
    Command,
}

/// A call event and its cause.
#[derive(Clone, Debug)]
pub struct Rec {
    /// When, in ms.
    pub at: u64,
    /// Why.
    pub cause: Cause,
    /// The event.
    pub event: CallEvent,
}

/// The stand-in for the media relay: what each open relay knows.
#[derive(Clone, Debug)]
pub struct Relay {
    /// Trunk-side port.
    pub caller_port: u16,
    /// Operator-side port.
    pub operator_port: u16,
    /// The caller side's address, once set.
    pub caller: Option<SocketAddr>,
    /// The operator side's address, once set.
    pub operator: Option<SocketAddr>,
    /// When both sides were first known (media flows from then on).
    pub bridged_since: Option<u64>,
}

/// The whole run.
pub struct World {
    /// What the seed decided.
    pub scenario: Scenario,
    /// Virtual time, in ms.
    pub now: u64,
    /// siaga.
    pub engine: Engine,
    engine_deadline: Option<u64>,
    /// The operators' desks.
    pub desks: Desks,
    net: Network,
    /// The trunk and its callers.
    pub trunk: Trunk,
    /// The operators' phones.
    pub phones: Vec<Phone>,
    rng: StdRng,
    /// Every datagram sent.
    pub wire: Vec<Wire>,
    /// Every call event, with its cause.
    pub records: Vec<Rec>,
    /// Every media command, with its time.
    pub media: Vec<(u64, MediaCommand)>,
    /// Every agent state change siaga output, with its time.
    pub agent_events: Vec<(u64, AgentEvent)>,
    /// Open relays.
    pub relays: BTreeMap<RelayId, Relay>,
    /// What each relay looked like when it closed.
    pub closed_relays: BTreeMap<RelayId, Relay>,
    reports: BTreeMap<(u64, RelayId), MediaReport>,
    /// Set when calls nobody could end were hung up with `Engine::shutdown`.
    pub shutdown_at: Option<u64>,
    /// Broken rules seen while running (checked again at the end).
    pub violations: Vec<String>,
    trace: Option<Vec<String>>,
}

/// Give up on a phase after this much virtual time without getting there.
const PHASE_LIMIT_MS: u64 = 3 * 3_600_000;

impl World {
    /// A world for `scenario`; with `trace`, a line for every step is kept.
    pub fn new(scenario: Scenario, trace: bool) -> World {
        let t = scenario.timers;
        let mut config = EngineConfig::for_tests(SIAGA);
        config.timers = TimerConfig {
            t1: Duration::from_millis(t.t1),
            t2: Duration::from_millis(t.t2),
            t4: Duration::from_millis(t.t4),
        };
        let realm = config.domains[0].clone();
        config.calls.operators = scenario
            .operators
            .iter()
            .map(|(id, _)| {
                (
                    id.clone(),
                    Ha1::from_password(id, &realm, &format!("pw-{id}")),
                )
            })
            .collect();
        config.calls.acd.queues[0].ring_timeout = Duration::from_millis(scenario.ring_timeout_ms);
        config.calls.acd.queues[0].reject_delay = Duration::from_millis(scenario.reject_delay_ms);
        config.calls.acd.queues[0].wrap_up = Duration::from_millis(scenario.wrap_up_ms);
        // A lapsing binding is short (`Scenario::lapses`); the phones ask for an hour else.
        config.calls.registrar.min_expires_s = 5;
        config.calls.rtp_ports = (30000, 30000 + 2 * scenario.rtp_pairs - 1);
        let mut rng = StdRng::seed_from_u64(scenario.seed ^ 0xbe4a_710e);
        let mut phones = Vec::new();
        for (id, n) in &scenario.operators {
            for j in 0..*n {
                let k = phones.len();
                let name = format!("phone{}{}", id, ['a', 'b'][j]);
                let account = Account {
                    operator: id.clone(),
                    password: format!("pw-{id}"),
                    realm: realm.clone(),
                };
                let ua = Ua::new(phone_addr(k), &name, t);
                phones.push(Phone::new(ua, account, SIAGA, rng.random_range(0..1_000)));
            }
        }
        for (k, lapse) in &scenario.lapses {
            if let Some(phone) = phones.get_mut(*k) {
                phone.lapse = Some(*lapse);
            }
        }
        let mut world = World {
            engine: Engine::with_seed(config, scenario.seed),
            engine_deadline: None,
            desks: Desks::new(&scenario.desk),
            net: Network::new(scenario.net.clone(), scenario.seed ^ 0x0e7_0e7),
            trunk: Trunk::new(TRUNK, SIAGA, t, &scenario.calls),
            phones,
            rng,
            now: 0,
            wire: Vec::new(),
            records: Vec::new(),
            media: Vec::new(),
            agent_events: Vec::new(),
            relays: BTreeMap::new(),
            closed_relays: BTreeMap::new(),
            reports: BTreeMap::new(),
            shutdown_at: None,
            violations: Vec::new(),
            trace: trace.then(Vec::new),
            scenario,
        };
        world.trace_line(|| "scenario".to_owned());
        let s = format!("{:#?}", world.scenario);
        world.trace_line(|| s);
        world
    }

    /// The trace, when kept.
    pub fn trace(&self) -> Option<&[String]> {
        self.trace.as_deref()
    }

    fn trace_line(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("{:>9.3}s  {}", self.now as f64 / 1000.0, f()));
        }
    }

    /// Runs the whole scenario: the calls, then (everyone idle) the phones unregister,
    /// then time runs on until no timer is left anywhere.
    pub fn run(&mut self) {
        // 1. Every caller is done.
        if !self.run_until(|w| w.trunk.is_done()) {
            self.violations
                .push("the callers never finished".to_owned());
        }
        // 2. siaga lets go of every call; phones answer whatever is still offered.
        for p in &mut self.phones {
            p.closing = true;
        }
        let settled = |w: &World| w.engine.live_calls() == 0 && w.phones.iter().all(Phone::is_idle);
        if !self.run_until(settled) {
            // Calls whose every hang-up was lost stay up (session timers, RFC 4028, will
            // end them): siaga is stopped to end them, and the checks ask why.
            self.trace_line(|| "calls left up: siaga shuts down".to_owned());
            self.shutdown_at = Some(self.now);
            self.engine.shutdown(self.at());
            self.drain_engine(Cause::Shutdown);
            if !self.run_until(settled) {
                self.violations.push(format!(
                    "siaga still holds {} calls after shutdown",
                    self.engine.live_calls()
                ));
            }
        }
        // 3. Operators log out; everything runs down.
        let now = self.now;
        for p in &mut self.phones {
            p.unregister(now);
        }
        self.run_until(|_| false);
    }

    fn at(&self) -> Now {
        Now::from_millis(self.now)
    }

    /// Steps until `done` holds (true) or nothing is left to do or the phase limit passed
    /// (false).
    fn run_until(&mut self, done: impl Fn(&World) -> bool) -> bool {
        let limit = self.now + PHASE_LIMIT_MS;
        loop {
            if done(self) {
                return true;
            }
            let trunk = self.trunk.next_deadline();
            let phones: Vec<Option<u64>> = self.phones.iter().map(Phone::next_deadline).collect();
            let next = [
                self.net.next_delivery(),
                self.engine_deadline,
                self.reports.keys().next().map(|(at, _)| *at),
                trunk,
                self.desks.next_deadline(),
            ]
            .into_iter()
            .chain(phones.iter().copied())
            .flatten()
            .min();
            match next {
                Some(at) if at <= limit => self.step(at, trunk, &phones),
                _ => return false,
            }
        }
    }

    /// Everything due at `at`: deliveries, relay reports, siaga's timers, the peers' (by
    /// the deadlines they had before the deliveries; one a delivery sets for `at` itself
    /// is taken by the next step, at the same time).
    fn step(&mut self, at: u64, trunk: Option<u64>, phones: &[Option<u64>]) {
        self.now = self.now.max(at);
        let now = self.now;
        while let Some(d) = self.net.pop_due(now) {
            self.deliver(d);
        }
        while let Some(entry) = self.reports.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let report = entry.remove();
            self.engine
                .handle_input(self.at(), Input::MediaReport(report));
            self.drain_engine(Cause::MediaReport);
        }
        if self.engine_deadline.is_some_and(|d| d <= now) {
            self.engine.handle_timeout(self.at());
            self.drain_engine(Cause::Timer);
        }
        if self.desks.next_deadline().is_some_and(|d| d <= now) {
            let (lines, broken) = self.desks.act(now, &mut self.engine);
            for line in lines {
                self.trace_line(|| line);
            }
            self.violations.extend(broken);
            self.drain_engine(Cause::Command);
        }
        if trunk.is_some_and(|d| d <= now) {
            let (rng, trace) = (&mut self.rng, &mut self.trace);
            self.trunk.on_timer(&mut Ctx { now, rng, trace });
            self.flush_trunk();
        }
        for (k, deadline) in phones.iter().enumerate() {
            if deadline.is_some_and(|d| d <= now) {
                let (rng, trace) = (&mut self.rng, &mut self.trace);
                self.phones[k].on_timer(&mut Ctx { now, rng, trace });
                self.flush_phone(k);
            }
        }
    }

    fn deliver(&mut self, d: Datagram) {
        let now = self.now;
        if d.to == SIAGA {
            self.engine.handle_input(
                self.at(),
                Input::Received(Received {
                    transport: Transport::Udp,
                    source: d.from,
                    local: SIAGA,
                    connection: None,
                    bytes: d.bytes,
                }),
            );
            return self.drain_engine(Cause::Delivery(d.wire));
        }
        let msg = self.wire[d.wire].msg.clone();
        let (rng, trace) = (&mut self.rng, &mut self.trace);
        let mut ctx = Ctx { now, rng, trace };
        if d.to == TRUNK {
            self.trunk.receive(&mut ctx, d.from, msg);
            self.flush_trunk();
        } else if let Some(k) = self.phones.iter().position(|p| p.ua.addr == d.to) {
            self.phones[k].receive(&mut ctx, d.from, msg);
            self.flush_phone(k);
        }
    }

    fn flush_trunk(&mut self) {
        let out = std::mem::take(&mut self.trunk.ua.out);
        for (to, bytes) in out {
            self.send(TRUNK, to, bytes);
        }
    }

    fn flush_phone(&mut self, k: usize) {
        let from = self.phones[k].ua.addr;
        let out = std::mem::take(&mut self.phones[k].ua.out);
        for (to, bytes) in out {
            self.send(from, to, bytes);
        }
    }

    /// Puts a datagram on the network and in the wire log.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Bytes) {
        let msg = match SipMessage::parse(bytes.clone(), Transport::Udp) {
            Ok(msg) => msg,
            Err(e) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                self.violations.push(format!(
                    "{from} sent a message that does not parse ({}): {text}",
                    e.error
                ));
                return;
            }
        };
        let wire = self.wire.len();
        let deliveries = self.net.send(
            self.now,
            Datagram {
                wire,
                from,
                to,
                bytes,
            },
        );
        self.trace_line(|| {
            let fate = match deliveries.as_slice() {
                [] => "LOST".to_owned(),
                times => times
                    .iter()
                    .map(|t| format!("@{t}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            format!(
                "{} -> {}  {}  [{fate}]",
                name(from),
                name(to),
                summary(&msg)
            )
        });
        self.wire.push(Wire {
            at: self.now,
            from,
            to,
            call_id: msg.call_id().unwrap_or_default().to_owned(),
            branch: super::ua::branch_of(&msg).unwrap_or_default(),
            cseq: msg.cseq().map(|c| c.method).unwrap_or(Method::Ack),
            msg,
            deliveries,
        });
    }

    /// Takes everything the engine output, until it waits.
    fn drain_engine(&mut self, cause: Cause) {
        loop {
            match self.engine.poll_output() {
                Output::Transmit(t) => {
                    if t.transport != Transport::Udp || t.connection.is_some() {
                        self.violations.push(format!(
                            "siaga sent over {:?} in a UDP-only run",
                            t.transport
                        ));
                    }
                    self.send(SIAGA, t.destination, t.bytes);
                }
                Output::Event(event) => {
                    self.trace_line(|| {
                        format!("siaga records {} {:?}", short(&event.call), event.kind)
                    });
                    self.records.push(Rec {
                        at: self.now,
                        cause,
                        event,
                    });
                }
                Output::Media(command) => self.on_media(command),
                Output::AgentEvent(event) => {
                    self.trace_line(|| {
                        format!(
                            "siaga agent {}: {} -> {} ({})",
                            event.operator,
                            event.from,
                            event.to,
                            event.reason.as_deref().unwrap_or("")
                        )
                    });
                    self.agent_events.push((self.now, event));
                }
                Output::Close { connection } => {
                    self.violations
                        .push(format!("siaga closed {connection:?} in a UDP-only run"));
                }
                Output::Wait { until } => {
                    self.engine_deadline = until.map(|t| t.since_origin().as_millis() as u64);
                    return;
                }
            }
        }
    }

    /// What the relay does with a command: bind, learn a peer, or close and report.
    fn on_media(&mut self, command: MediaCommand) {
        let now = self.now;
        self.trace_line(|| format!("siaga media {command:?}"));
        self.media.push((now, command.clone()));
        match command {
            MediaCommand::Open {
                relay,
                caller_port,
                operator_port,
            } => {
                let taken = self.relays.values().any(|r| {
                    [r.caller_port, r.operator_port]
                        .iter()
                        .any(|p| *p == caller_port || *p == operator_port)
                });
                if taken || caller_port == operator_port {
                    self.violations
                        .push(format!("relay {relay:?} opened on ports in use"));
                }
                self.relays.insert(
                    relay,
                    Relay {
                        caller_port,
                        operator_port,
                        caller: None,
                        operator: None,
                        bridged_since: None,
                    },
                );
            }
            MediaCommand::SetPeer { relay, side, rtp } => {
                let Some(r) = self.relays.get_mut(&relay) else {
                    return self
                        .violations
                        .push(format!("SetPeer for relay {relay:?}, not open"));
                };
                match side {
                    Side::Caller => r.caller = Some(rtp),
                    Side::Operator => r.operator = Some(rtp),
                }
                if r.caller.is_some() && r.operator.is_some() && r.bridged_since.is_none() {
                    r.bridged_since = Some(now);
                }
            }
            MediaCommand::Close { relay } => {
                let Some(r) = self.relays.remove(&relay) else {
                    return self
                        .violations
                        .push(format!("Close of relay {relay:?}, not open"));
                };
                // 50 packets a second each way (20 ms G.711) while both sides were known.
                let packets = r.bridged_since.map_or(0, |since| (now - since) / 20);
                let counts = PacketCounts {
                    packets,
                    bytes: packets * 172,
                    ..PacketCounts::default()
                };
                let report = MediaReport::Closed(RelayClosed {
                    relay,
                    caller_port: r.caller_port,
                    operator_port: r.operator_port,
                    caller_to_operator: counts,
                    operator_to_caller: counts,
                    latched_caller: r.caller,
                    latched_operator: r.operator,
                    bind_failed: Vec::new(),
                });
                let delay = self.rng.random_range(0..=50);
                self.reports.insert((now + delay, relay), report);
                self.closed_relays.insert(relay, r);
            }
        }
    }
}

/// A node's name in traces.
fn name(a: SocketAddr) -> String {
    match a {
        SIAGA => "siaga".to_owned(),
        TRUNK => "trunk".to_owned(),
        a => format!("phone@{}", a.ip()),
    }
}

/// `INVITE call0@trunk 1 INVITE` / `200 call0@trunk 1 INVITE`.
pub fn summary(msg: &SipMessage) -> String {
    let start = match (msg.method(), msg.status()) {
        (Some(m), _) => m.as_str().to_owned(),
        (_, Some(s)) => s.to_string(),
        _ => "?".to_owned(),
    };
    let cseq = msg
        .cseq()
        .map(|c| format!("{} {}", c.seq, c.method.as_str()))
        .unwrap_or_default();
    let branch = super::ua::branch_of(msg).unwrap_or_default();
    format!("{start} {} {cseq} {branch}", msg.call_id().unwrap_or("?"))
}

/// The first 8 hex digits of a record id.
pub fn short(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}
