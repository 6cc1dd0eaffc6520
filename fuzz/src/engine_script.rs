//! Fuzz inputs for the whole engine: an interpreter that turns bytes into a sequence of
//! SIP messages and events, plays the peers around siaga (a trunk, operators' phones, a
//! trunk gateway, a stranger) in virtual time, and checks invariants after every step.
//!
//! Shared by the fuzz target (`fuzz/fuzz_targets/engine.rs`) and siaga's test suite
//! (`tests/fuzz_engine.rs` replays the seeds and every crash found), through `#[path]`.
//!
//! # Input format
//!
//! Chunks separated by `0xFF`. A chunk is an op byte and its body: the op's low nibble is
//! the [`Step`] kind, its high nibble the time that passes before it (index into
//! [`TIME_STEPS_MS`]; timers fire on the way, each at its own deadline). The body holds
//! the kind's argument bytes (missing bytes read as 0) and a tail: for message templates,
//! header lines that replace the template's header of that name (an empty value removes
//! it) or are added (a line without a colon is added as it is). Templates fill in what
//! peers must echo (branches, tags, Call-IDs, nonces) from what siaga sent, so the fuzzer
//! reaches answered calls, hang-ups, races and timeouts instead of guessing them.
//!
//! # Invariants (a panic is a finding)
//!
//! - the engine does not panic, and no timer fires in a loop at one instant;
//! - every message siaga sends parses;
//! - siaga answers only requests: every response it sends carries the Call-ID and CSeq of
//!   a request other than ACK it was given (never of a response or an ACK);
//! - call records are consistent: `received` first, at most one `ended` per call; relay
//!   commands only name open relays;
//! - after every timer has run out (100 s of virtual time) no server transaction outlives
//!   its call and no client transaction but the gateway probes is left; after a shutdown
//!   and another 100 s nothing is left: no call, transaction, relay or ringing agent, and
//!   every call was recorded as ended exactly once.

use bytes::Bytes;
use md5::{Digest, Md5};
use siaga::engine::acd::AgentState;
use siaga::engine::digest::Ha1;
use siaga::engine::media::{MediaCommand, MediaReport, PacketCounts, RelayClosed, RelayId};
use siaga::engine::record::CallEventKind;
use siaga::engine::sip::{HeaderName, Method, ParseError, SipMessage};
use siaga::engine::trunk_health::{Gateway, HealthConfig};
use siaga::engine::{
    ConnectionId, Engine, EngineConfig, Input, MonoTime, Now, Output, Received, Transport,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Time that passes before a chunk, by the high nibble of its op byte, in ms: around the
/// engine's timers (T1 500 ms, ring timeout 3 s, 64·T1 32 s).
pub const TIME_STEPS_MS: [u64; 16] = [
    0, 10, 50, 100, 250, 500, 1_000, 2_000, 3_000, 4_000, 8_000, 16_000, 32_000, 33_000, 64_000,
    100_000,
];

/// Virtual time one input may let pass (past a binding's 3600 s), in ms; time steps
/// beyond it are ignored, so that a run costs milliseconds however the bytes fall.
pub const TIME_BUDGET_MS: u64 = 4_000_000;

/// Virtual time run at the end, before and after the shutdown: past every transaction
/// timer (64·T1 = 32 s, twice over for a CANCEL's guard after a ring timeout).
const FINAL_WAIT_MS: u64 = 100_000;

/// siaga's address.
pub const SIAGA: &str = "127.0.0.1:5060";

/// The peers: address, transport. Trunk over UDP, TCP and IPv6; three phones (one on
/// TCP); a source outside `trunk.sources`; the trunk gateway siaga probes.
const PEERS: [(&str, Transport); 8] = [
    ("127.0.0.1:5099", Transport::Udp),
    ("127.0.0.1:40001", Transport::Tcp),
    ("127.0.0.1:5071", Transport::Udp),
    ("127.0.0.1:5072", Transport::Udp),
    ("127.0.0.1:40002", Transport::Tcp),
    ("192.0.2.9:5060", Transport::Udp),
    ("127.0.0.1:5070", Transport::Udp),
    ("[::1]:5099", Transport::Udp),
];
const TRUNK_PEERS: [usize; 4] = [0, 1, 7, 5];
const PHONE_PEERS: [usize; 3] = [2, 3, 4];
const GATEWAY_PEER: usize = 6;

/// Status codes a peer answers with, by argument byte (16 and up: `100 + 2·byte`).
const STATUSES: [u16; 16] = [
    100, 180, 183, 200, 486, 480, 603, 487, 404, 408, 500, 503, 481, 302, 488, 491,
];

const SDP_G711: &str = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";
const SDP_G729: &str = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
const SDP_IP6: &str =
    "v=0\r\no=peer 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
const SDP_HOLD: &str = "v=0\r\no=peer 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8\r\na=sendonly\r\n";
const PIDF: &str = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"pres:caller@trunk.test\"/>";

/// The engine configuration under test: two operators (`1001`/`demo-1001`,
/// `1002`/`demo-1002`), emergency numbers 112 and 110, short ACD timers, four relay port
/// pairs (so that they run out), one trunk gateway probed every 60 s.
pub fn engine_config() -> EngineConfig {
    let local: SocketAddr = SIAGA.parse().expect("literal");
    let mut config = EngineConfig::for_tests(local);
    config.domains = vec!["siaga.test".into(), "example.com".into()];
    config.max_held_bytes = 16 * 1024;
    let calls = &mut config.calls;
    calls.emergency_numbers = vec!["112".into(), "110".into()];
    calls.acd.queues[0].ring_timeout = Duration::from_secs(3);
    calls.acd.queues[0].reject_delay = Duration::from_secs(1);
    calls.ringing_refresh = Duration::from_secs(5);
    calls.rtp_ports = (30000, 30007);
    calls.operators = ["1001", "1002"]
        .iter()
        .map(|id| {
            let ha1 = Ha1::from_password(id, "siaga.test", &format!("demo-{id}"));
            ((*id).to_owned(), ha1)
        })
        .collect();
    calls.trunk_health = HealthConfig {
        gateways: vec![Gateway {
            uri: "sip:127.0.0.1:5070".into(),
            address: PEERS[GATEWAY_PEER].0.parse().expect("literal"),
            transport: Transport::Udp,
        }],
        interval: Duration::from_secs(60),
        failures_before_down: 2,
    };
    config
}

/// One step of a fuzz input, for writing seeds (see the [module docs](self)).
#[derive(Clone, Debug)]
pub enum Step {
    /// Bytes as they are, from peer `peer % 8`.
    Raw { peer: u8, bytes: Vec<u8> },
    /// An emergency INVITE from the trunk in slot `slot % 8` (a retransmission when the
    /// slot holds a call, unless `slot & 0x80`). `variant`: bits 0–2 Request-URI, 3–5 body,
    /// 6 `Supported: 100rel`, 7 Record-Route. `peer`: trunk over UDP, TCP, IPv6, or a
    /// stranger.
    TrunkInvite { slot: u8, variant: u8, peer: u8 },
    /// The trunk CANCELs slot `slot`'s INVITE.
    TrunkCancel { slot: u8 },
    /// The trunk ACKs siaga's last final response in slot `slot`.
    TrunkAck { slot: u8 },
    /// The trunk sends BYE in slot `slot`'s dialog.
    TrunkBye { slot: u8 },
    /// The trunk sends another request in the dialog (re-INVITE, UPDATE, INFO, OPTIONS,
    /// PRACK, REFER, NOTIFY, MESSAGE by `method % 8`).
    TrunkInDialog { slot: u8, method: u8 },
    /// Phone `phone % 3` registers user `user % 4` (1001, 1002, an unknown user, 1001
    /// with a wrong password), with digest credentials for the last nonce siaga gave it.
    /// `variant`: bits 0–1 Expires (3600, 0, 30, none), 2 `Contact: *`, 3 no credentials.
    Register { phone: u8, user: u8, variant: u8 },
    /// Peer `peer % 8` answers request `pick` (most recent first) siaga sent it with
    /// status `status` ([`STATUSES`]). `variant`: bits 0–1 SDP (G.711, none, G.729,
    /// junk), 2 another To tag (a fork), 3 no Contact.
    Respond {
        peer: u8,
        pick: u8,
        status: u8,
        variant: u8,
    },
    /// Phone `phone % 3` sends BYE in dialog `pick` it answered.
    PhoneBye { phone: u8, pick: u8 },
    /// Peer `peer % 8` answers every request siaga sent it since the last time.
    RespondAll { peer: u8, status: u8, variant: u8 },
    /// An input `back` steps ago again; with `splice` = (position, bytes removed, bytes
    /// inserted), changed.
    Replay {
        back: u8,
        splice: Option<(u16, u8, Vec<u8>)>,
    },
    /// A request outside any dialog from peer `peer % 8`: method by `method % 12`,
    /// Request-URI by `uri % 4`.
    Request { peer: u8, method: u8, uri: u8 },
    /// The TCP connection of the trunk (even) or the TCP phone (odd) closes.
    TcpClosed { peer: u8 },
    /// The shell could not frame a message on that connection; `head` is what it read.
    Unframeable { peer: u8, error: u8, head: Vec<u8> },
    /// siaga stops ([`Engine::shutdown`]).
    Shutdown,
    /// `seconds` pass.
    Wait { seconds: u8 },
}

impl Step {
    fn kind(&self) -> u8 {
        match self {
            Step::Raw { .. } => 0,
            Step::TrunkInvite { .. } => 1,
            Step::TrunkCancel { .. } => 2,
            Step::TrunkAck { .. } => 3,
            Step::TrunkBye { .. } => 4,
            Step::TrunkInDialog { .. } => 5,
            Step::Register { .. } => 6,
            Step::Respond { .. } => 7,
            Step::PhoneBye { .. } => 8,
            Step::RespondAll { .. } => 9,
            Step::Replay { .. } => 10,
            Step::Request { .. } => 11,
            Step::TcpClosed { .. } => 12,
            Step::Unframeable { .. } => 13,
            Step::Shutdown => 14,
            Step::Wait { .. } => 15,
        }
    }

    fn args(&self) -> Vec<u8> {
        match self {
            Step::Raw { peer, bytes } => [&[*peer][..], bytes].concat(),
            Step::TrunkInvite {
                slot,
                variant,
                peer,
            } => vec![*slot, *variant, *peer],
            Step::TrunkCancel { slot } | Step::TrunkAck { slot } | Step::TrunkBye { slot } => {
                vec![*slot]
            }
            Step::TrunkInDialog { slot, method } => vec![*slot, *method],
            Step::Register {
                phone,
                user,
                variant,
            } => vec![*phone, *user, *variant],
            Step::Respond {
                peer,
                pick,
                status,
                variant,
            } => vec![*peer, *pick, *status, *variant],
            Step::PhoneBye { phone, pick } => vec![*phone, *pick],
            Step::RespondAll {
                peer,
                status,
                variant,
            } => vec![*peer, *status, *variant],
            Step::Replay { back, splice } => {
                let mut v = vec![*back];
                if let Some((pos, del, insert)) = splice {
                    v.extend_from_slice(&pos.to_le_bytes());
                    v.push(*del);
                    v.extend_from_slice(insert);
                }
                v
            }
            Step::Request { peer, method, uri } => vec![*peer, *method, *uri],
            Step::TcpClosed { peer } => vec![*peer],
            Step::Unframeable { peer, error, head } => [&[*peer, *error][..], head].concat(),
            Step::Shutdown => Vec::new(),
            Step::Wait { seconds } => vec![*seconds],
        }
    }
}

/// A flow of steps: (time step index, step, tail) each.
pub type Flow = Vec<(u8, Step, &'static str)>;

/// Encodes `steps`, each after `(time step index, step, tail)`, as a fuzz input.
pub fn encode(steps: &[(u8, Step, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (time, step, tail)) in steps.iter().enumerate() {
        if i > 0 {
            out.push(0xFF);
        }
        out.push(step.kind() | (time & 0x0F) << 4);
        out.extend_from_slice(&step.args());
        out.extend_from_slice(tail.as_bytes());
    }
    out
}

/// What a run reached, for tests that check seeds are deep.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Calls received (`received` events).
    pub received: usize,
    /// Calls answered by an operator.
    pub answered: usize,
    /// Operator legs rejected or timed out.
    pub not_answered: usize,
    /// Messages siaga sent.
    pub sent: usize,
    /// The inputs delivered, in order, as raw steps (a recording of the flow).
    pub recording: Vec<(u8, u8, Vec<u8>)>,
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summary")
            .field("received", &self.received)
            .field("answered", &self.answered)
            .field("not_answered", &self.not_answered)
            .field("sent", &self.sent)
            .field("inputs", &self.recording.len())
            .finish()
    }
}

/// Runs `data` through a fresh engine and checks every invariant; panics on a violation.
pub fn run(data: &[u8]) -> Summary {
    let mut world = World::new();
    for chunk in data.split(|&b| b == 0xFF) {
        let Some((&op, body)) = chunk.split_first() else {
            continue;
        };
        let time = op >> 4;
        world.pass(TIME_STEPS_MS[usize::from(time)]);
        world.time_index = time;
        world.step(op & 0x0F, body);
    }
    world.finish()
}

/// Reads argument bytes; 0 once they run out.
struct Args<'a>(&'a [u8]);

impl<'a> Args<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// A message being written: start line, headers, body.
struct Draft {
    start: String,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

impl Draft {
    fn new(start: String) -> Draft {
        Draft {
            start,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn h(mut self, name: &str, value: impl AsRef<str>) -> Draft {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_ref().as_bytes().to_vec()));
        self
    }

    fn body(mut self, content_type: &str, body: &str) -> Draft {
        if !content_type.is_empty() {
            self = self.h("Content-Type", content_type);
        }
        self.body = body.as_bytes().to_vec();
        self
    }

    /// The bytes: Content-Length from the body unless `tail` set one; `tail`'s lines
    /// replace, remove or add headers.
    fn finish(self, tail: &[u8]) -> Vec<u8> {
        let Draft {
            start,
            mut headers,
            body,
        } = self;
        headers.push((
            b"Content-Length".to_vec(),
            body.len().to_string().into_bytes(),
        ));
        for line in tail.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                headers.push((line.to_vec(), Vec::new()));
                continue;
            };
            let name = line[..colon].trim_ascii();
            let value = line[colon + 1..].trim_ascii();
            let existing = headers
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name));
            match (existing, value.is_empty()) {
                (Some(i), true) => {
                    headers.remove(i);
                }
                (Some(i), false) => headers[i].1 = value.to_vec(),
                (None, _) => headers.push((name.to_vec(), value.to_vec())),
            }
        }
        let mut out = start.into_bytes();
        out.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            out.extend_from_slice(&name);
            if !value.is_empty() || !name.contains(&b' ') {
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

/// A call the trunk placed.
struct TrunkCall {
    peer: usize,
    invite: Vec<u8>,
    call_id: String,
    branch: String,
    from: String,
    to: String,
    ruri: String,
    next_cseq: u32,
    /// Responses siaga sent to the INVITE (distinct), oldest first.
    responses: Vec<SipMessage>,
}

/// A dialog a phone answered.
struct PhoneDialog {
    peer: usize,
    invite: SipMessage,
    tag: String,
    next_cseq: u32,
}

/// The record of one call, as siaga's events tell it.
#[derive(Default)]
struct CallLog {
    ended: u32,
}

struct World {
    engine: Engine,
    now: u64,
    time_index: u8,
    counter: u64,
    stopped: bool,
    /// The current TCP connection of each peer (a new one after each close).
    connections: [u64; 8],
    /// Inputs delivered (peer, bytes), most recent last, for replays.
    delivered: VecDeque<(usize, Vec<u8>)>,
    /// (Call-ID, CSeq) of every request-like input: what siaga may answer.
    request_keys: HashSet<(Option<String>, Option<String>)>,
    /// Distinct requests siaga sent to each peer (not ACK), oldest first; and how many
    /// `RespondAll` already answered.
    sent_to: [Vec<SipMessage>; 8],
    answered_upto: [usize; 8],
    trunk: [Option<TrunkCall>; 8],
    dialogs: Vec<PhoneDialog>,
    nonces: [Option<String>; 8],
    nc: u32,
    calls: HashMap<uuid::Uuid, CallLog>,
    relays: HashSet<RelayId>,
    pending: VecDeque<Input>,
    summary: Summary,
}

impl World {
    fn new() -> World {
        World {
            engine: Engine::with_seed(engine_config(), 1),
            now: 0,
            time_index: 0,
            counter: 0,
            stopped: false,
            connections: [1, 1, 1, 1, 1, 1, 1, 1],
            delivered: VecDeque::new(),
            request_keys: HashSet::new(),
            sent_to: Default::default(),
            answered_upto: [0; 8],
            trunk: Default::default(),
            dialogs: Vec::new(),
            nonces: Default::default(),
            nc: 0,
            calls: HashMap::new(),
            relays: HashSet::new(),
            pending: VecDeque::new(),
            summary: Summary::default(),
        }
    }

    fn at(&self) -> Now {
        Now::from_millis(self.now)
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn addr(peer: usize) -> SocketAddr {
        PEERS[peer % PEERS.len()].0.parse().expect("literal")
    }

    fn transport(peer: usize) -> Transport {
        PEERS[peer % PEERS.len()].1
    }

    fn connection(&self, peer: usize) -> Option<ConnectionId> {
        (Self::transport(peer) == Transport::Tcp)
            .then(|| ConnectionId(peer as u64 * 1000 + self.connections[peer]))
    }

    fn via(peer: usize, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{branch};rport",
            Self::transport(peer).via_token(),
            Self::addr(peer)
        )
    }

    /// Lets `ms` pass within [`TIME_BUDGET_MS`].
    fn pass(&mut self, ms: u64) {
        self.advance(ms.min(TIME_BUDGET_MS.saturating_sub(self.now)));
    }

    /// Lets `ms` pass, firing each timer at its deadline.
    fn advance(&mut self, ms: u64) {
        let end = self.now.saturating_add(ms);
        let mut same_instant = 0u32;
        loop {
            let until = self.drain();
            match until {
                Some(at) if at <= MonoTime::from_millis(end) => {
                    let at_ms = u64::try_from(at.since_origin().as_millis()).unwrap_or(u64::MAX);
                    if at_ms <= self.now {
                        same_instant += 1;
                        assert!(
                            same_instant < 10_000,
                            "a timer fires in a loop at {at_ms} ms"
                        );
                    } else {
                        same_instant = 0;
                    }
                    self.now = self.now.max(at_ms);
                    self.engine.handle_timeout(self.at());
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Drains the engine's output, checks it, feeds back what the shell would (relay
    /// reports, closed connections); returns the next deadline.
    fn drain(&mut self) -> Option<MonoTime> {
        loop {
            let until = loop {
                match self.engine.poll_output() {
                    Output::Wait { until } => break until,
                    other => self.observe(other),
                }
            };
            let Some(input) = self.pending.pop_front() else {
                return until;
            };
            self.engine.handle_input(self.at(), input);
        }
    }

    fn observe(&mut self, output: Output) {
        match output {
            Output::Transmit(t) => {
                self.summary.sent += 1;
                let msg = SipMessage::parse(t.bytes.clone(), t.transport).unwrap_or_else(|e| {
                    panic!(
                        "siaga sent an unparseable message ({:?}): {:?}",
                        e.error,
                        String::from_utf8_lossy(&t.bytes)
                    )
                });
                match msg.status() {
                    Some(_) => self.observe_response(t.destination, &t.bytes, msg),
                    None => self.observe_request(t.destination, msg),
                }
            }
            Output::Close { connection } => {
                let peer = (connection.0 / 1000) as usize;
                if peer < PEERS.len() && connection.0 % 1000 == self.connections[peer] {
                    self.connections[peer] += 1;
                }
                self.pending.push_back(Input::ConnectionClosed(connection));
            }
            Output::AgentEvent(_) => {}
            Output::Event(event) => match event.kind {
                CallEventKind::Received { .. } => {
                    self.summary.received += 1;
                    assert!(
                        self.calls.insert(event.call, CallLog::default()).is_none(),
                        "a second `received` for call {}",
                        event.call
                    );
                }
                CallEventKind::MediaRelayed { .. } => {}
                kind => {
                    let log = self
                        .calls
                        .get_mut(&event.call)
                        .unwrap_or_else(|| panic!("{kind:?} before `received`"));
                    assert_eq!(log.ended, 0, "{kind:?} after `ended`");
                    match kind {
                        CallEventKind::Ended { .. } => log.ended += 1,
                        CallEventKind::Answered { .. } => self.summary.answered += 1,
                        CallEventKind::NoAnswer { .. } | CallEventKind::Rejected { .. } => {
                            self.summary.not_answered += 1
                        }
                        _ => {}
                    }
                }
            },
            Output::Media(command) => match command {
                MediaCommand::Open {
                    relay,
                    caller_port,
                    operator_port,
                } => {
                    assert!(self.relays.insert(relay), "relay {relay:?} opened twice");
                    assert_ne!(caller_port, operator_port);
                }
                MediaCommand::SetPeer { relay, .. } => {
                    assert!(self.relays.contains(&relay), "SetPeer on closed {relay:?}");
                }
                MediaCommand::Close { relay } => {
                    assert!(self.relays.remove(&relay), "Close of closed {relay:?}");
                    let closed = RelayClosed {
                        relay,
                        caller_port: 0,
                        operator_port: 0,
                        caller_to_operator: PacketCounts::default(),
                        operator_to_caller: PacketCounts::default(),
                        latched_caller: None,
                        latched_operator: None,
                        bind_failed: Vec::new(),
                    };
                    self.pending
                        .push_back(Input::MediaReport(MediaReport::Closed(closed)));
                }
            },
            Output::Wait { .. } => {}
        }
    }

    fn observe_response(&mut self, destination: SocketAddr, bytes: &[u8], msg: SipMessage) {
        let key = message_key(bytes);
        assert!(
            self.request_keys.contains(&key),
            "siaga sent a response to no request it was given (or to an ACK): {:?}",
            String::from_utf8_lossy(bytes)
        );
        if msg.status() == Some(401)
            && let Some(nonce) = nonce_of(&msg)
            && let Some(peer) = (0..PEERS.len()).find(|&p| Self::addr(p) == destination)
        {
            self.nonces[peer] = Some(nonce);
        }
        let call_id = msg.call_id().unwrap_or_default().to_owned();
        for call in self.trunk.iter_mut().flatten() {
            if call.call_id == call_id
                && msg.cseq().is_ok_and(|c| c.method == Method::Invite)
                && !call
                    .responses
                    .iter()
                    .any(|r| r.as_bytes() == msg.as_bytes())
            {
                if call.responses.len() >= 16 {
                    call.responses.remove(0);
                }
                call.responses.push(msg.clone());
            }
        }
    }

    fn observe_request(&mut self, destination: SocketAddr, msg: SipMessage) {
        if msg.method() == Some(&Method::Ack) {
            return;
        }
        let Some(peer) = (0..PEERS.len()).find(|&p| Self::addr(p) == destination) else {
            return;
        };
        let list = &mut self.sent_to[peer];
        if list.iter().any(|m| m.as_bytes() == msg.as_bytes()) {
            return; // a retransmission
        }
        if list.len() >= 64 {
            list.remove(0);
            self.answered_upto[peer] = self.answered_upto[peer].saturating_sub(1);
        }
        list.push(msg);
    }

    /// Hands `bytes` from `peer` to the engine.
    fn deliver(&mut self, peer: usize, bytes: Vec<u8>) {
        if is_answerable(&bytes) {
            self.request_keys.insert(message_key(&bytes));
        }
        if self.delivered.len() >= 32 {
            self.delivered.pop_front();
        }
        self.delivered.push_back((peer, bytes.clone()));
        self.summary
            .recording
            .push((self.time_index, peer as u8, bytes.clone()));
        let input = Input::Received(Received {
            transport: Self::transport(peer),
            source: Self::addr(peer),
            local: SIAGA.parse().expect("literal"),
            connection: self.connection(peer),
            bytes: Bytes::from(bytes),
        });
        self.engine.handle_input(self.at(), input);
        self.drain();
    }

    fn step(&mut self, kind: u8, body: &[u8]) {
        let mut a = Args(body);
        match kind {
            0 => {
                let peer = usize::from(a.byte()) % PEERS.len();
                self.deliver(peer, a.rest().to_vec());
            }
            1 => {
                let (slot, variant, peer) = (a.byte(), a.byte(), a.byte());
                self.trunk_invite(slot, variant, peer, a.rest());
            }
            2..=5 => {
                let slot = usize::from(a.byte()) % 8;
                let method = a.byte();
                let rest = if kind == 5 {
                    a.rest()
                } else {
                    &body[1.min(body.len())..]
                };
                self.trunk_request(kind, slot, method, rest);
            }
            6 => {
                let (phone, user, variant) = (a.byte(), a.byte(), a.byte());
                self.register(phone, user, variant, a.rest());
            }
            7 => {
                let peer = usize::from(a.byte()) % PEERS.len();
                let (pick, status, variant) = (a.byte(), a.byte(), a.byte());
                let list = &self.sent_to[peer];
                let picked = list.iter().rev().nth(usize::from(pick) % list.len().max(1));
                if let Some(request) = picked.cloned() {
                    let text = respond(peer, &request, status_of(status), variant, a.rest());
                    self.maybe_dialog(peer, &request, status_of(status), variant);
                    self.deliver(peer, text);
                }
            }
            8 => {
                let phone = PHONE_PEERS[usize::from(a.byte()) % PHONE_PEERS.len()];
                let pick = usize::from(a.byte());
                self.phone_bye(phone, pick, a.rest());
            }
            9 => {
                let peer = usize::from(a.byte()) % PEERS.len();
                let (status, variant) = (status_of(a.byte()), a.byte());
                let from = self.answered_upto[peer].min(self.sent_to[peer].len());
                let todo: Vec<SipMessage> = self.sent_to[peer][from..].to_vec();
                self.answered_upto[peer] = self.sent_to[peer].len();
                for request in todo {
                    // A CANCEL is always answered 200, as RFC 3261 §9.2 has it.
                    let status = if request.method() == Some(&Method::Cancel) {
                        200
                    } else {
                        status
                    };
                    let text = respond(peer, &request, status, variant, a.0);
                    self.maybe_dialog(peer, &request, status, variant);
                    self.deliver(peer, text);
                }
            }
            10 => {
                let back = usize::from(a.byte());
                let n = self.delivered.len();
                if n == 0 {
                    return;
                }
                let Some((peer, mut bytes)) = self.delivered.get(n - 1 - back % n).cloned() else {
                    return;
                };
                let rest = a.rest();
                if rest.len() >= 3 && !bytes.is_empty() {
                    let pos = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % bytes.len();
                    let end = (pos + usize::from(rest[2] % 32)).min(bytes.len());
                    bytes.splice(pos..end, rest[3..].iter().copied());
                }
                self.deliver(peer, bytes);
            }
            11 => {
                let (peer, method, uri) = (a.byte(), a.byte(), a.byte());
                self.out_of_dialog(usize::from(peer) % PEERS.len(), method, uri, a.rest());
            }
            12 => {
                let peer = if a.byte() % 2 == 0 { 1 } else { 4 };
                if let Some(connection) = self.connection(peer) {
                    self.connections[peer] += 1;
                    self.engine
                        .handle_input(self.at(), Input::ConnectionClosed(connection));
                    self.drain();
                }
            }
            13 => {
                let peer = if a.byte() % 2 == 0 { 1 } else { 4 };
                let error = match a.byte() % 4 {
                    0 => ParseError::BadContentLength,
                    1 => ParseError::RepeatedContentLength,
                    2 => ParseError::MissingContentLength,
                    _ => ParseError::TooLarge { limit: 65_536 },
                };
                let head = a.rest().to_vec();
                if is_answerable(&head) {
                    self.request_keys.insert(message_key(&head));
                }
                if let Some(connection) = self.connection(peer) {
                    self.engine.handle_input(
                        self.at(),
                        Input::Unframeable {
                            connection,
                            source: Self::addr(peer),
                            error,
                            head: Bytes::from(head),
                        },
                    );
                    self.drain();
                }
            }
            14 => {
                if !self.stopped {
                    self.stopped = true;
                    self.engine.shutdown(self.at());
                    self.drain();
                }
            }
            _ => self.pass(u64::from(a.byte()) * 1_000),
        }
    }

    fn trunk_invite(&mut self, slot: u8, variant: u8, peer: u8, tail: &[u8]) {
        let index = usize::from(slot) % 8;
        if slot & 0x80 == 0
            && let Some(call) = &self.trunk[index]
        {
            let (peer, bytes) = (call.peer, call.invite.clone());
            return self.deliver(peer, bytes);
        }
        let peer = TRUNK_PEERS[usize::from(peer) % TRUNK_PEERS.len()];
        let n = self.next_id();
        let ruri = [
            "sip:112@127.0.0.1:5060",
            "tel:112",
            "urn:service:sos",
            "sip:110@siaga.test;user=phone",
            "sip:112@unlisted.example",
            "sip:999@127.0.0.1:5060",
            "sip:112@[::1]:5060",
            "sip:+112@127.0.0.1",
        ][usize::from(variant & 7)];
        let call_id = format!("trunk-{n}@127.0.0.1");
        let branch = format!("in{n}");
        let from = format!("<sip:+62811000{index}@trunk.test>;tag=tr{n}");
        let to = format!("<{ruri}>");
        let mut d = Draft::new(format!("INVITE {ruri} SIP/2.0"))
            .h("Via", Self::via(peer, &branch))
            .h("Max-Forwards", "70")
            .h("From", &from)
            .h("To", &to)
            .h("Call-ID", &call_id)
            .h("CSeq", "1 INVITE")
            .h("Contact", format!("<sip:gw@{}>", Self::addr(peer)))
            .h("P-Asserted-Identity", "<tel:+62811-555-0001>");
        if variant & 0x40 != 0 {
            d = d.h("Supported", "100rel");
        }
        if variant & 0x80 != 0 {
            d = d.h("Record-Route", format!("<sip:{};lr>", Self::addr(peer)));
        }
        d = match (variant >> 3) & 7 {
            0 => d.body("application/sdp", SDP_G711),
            1 => d,
            2 => d.body("application/sdp", SDP_G729),
            3 => {
                let body = format!(
                    "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP_G711}\r\n--b1\r\nContent-Type: application/pidf+xml\r\n\r\n{PIDF}\r\n--b1--\r\n"
                );
                d.h("Content-Type", "multipart/mixed;boundary=b1")
                    .body("", &body)
            }
            4 => d.body("application/sdp", SDP_IP6),
            5 => d.body("application/sdp", SDP_HOLD),
            6 => d.body("application/sdp", "v=0\r\nm=audio x\r\n"),
            _ => d.body("text/plain", "hello"),
        };
        let bytes = d.finish(tail);
        self.trunk[index] = Some(TrunkCall {
            peer,
            invite: bytes.clone(),
            call_id,
            branch,
            from,
            to,
            ruri: ruri.to_owned(),
            next_cseq: 2,
            responses: Vec::new(),
        });
        self.deliver(peer, bytes);
    }

    /// CANCEL (2), ACK (3), BYE (4) or another in-dialog request (5) of trunk call `slot`.
    fn trunk_request(&mut self, kind: u8, slot: usize, method: u8, tail: &[u8]) {
        let Some(call) = self.trunk[slot].as_mut() else {
            return;
        };
        let peer = call.peer;
        let last_final = call
            .responses
            .iter()
            .rev()
            .find(|r| r.status().is_some_and(|s| s >= 200));
        let tagged = call
            .responses
            .iter()
            .rev()
            .find(|r| r.to().is_ok_and(|t| t.tag().is_some()));
        let to = tagged.or(last_final).map_or(call.to.clone(), |r| {
            String::from_utf8_lossy(
                &r.header(HeaderName::To)
                    .map(|h| h.value())
                    .unwrap_or_default(),
            )
            .into_owned()
        });
        let rseq = call
            .responses
            .iter()
            .rev()
            .find_map(|r| r.header(HeaderName::RSeq))
            .map(|h| String::from_utf8_lossy(&h.value()).into_owned());
        let routes: Vec<String> = last_final
            .or(tagged)
            .map(|r| {
                r.headers_named(HeaderName::RecordRoute)
                    .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let target = last_final
            .or(tagged)
            .and_then(|r| r.header(HeaderName::Contact))
            .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
            .and_then(|c| Some(c.split_once('<')?.1.split_once('>')?.0.to_owned()))
            .unwrap_or_else(|| format!("sip:{SIAGA}"));
        let (name, ruri, branch, seq, cseq_method) = match kind {
            2 => (
                "CANCEL",
                call.ruri.clone(),
                call.branch.clone(),
                1,
                "CANCEL",
            ),
            3 => {
                let two_xx = last_final.is_some_and(|r| r.status().is_some_and(|s| s < 300));
                let branch = if two_xx {
                    format!("ack{}", call.next_cseq)
                } else {
                    call.branch.clone()
                };
                let ruri = if two_xx {
                    target.clone()
                } else {
                    call.ruri.clone()
                };
                ("ACK", ruri, branch, 1, "ACK")
            }
            _ => {
                let name = if kind == 4 {
                    "BYE"
                } else {
                    [
                        "INVITE", "UPDATE", "INFO", "OPTIONS", "PRACK", "REFER", "NOTIFY",
                        "MESSAGE",
                    ][usize::from(method % 8)]
                };
                call.next_cseq += 1;
                let seq = call.next_cseq;
                (name, target.clone(), format!("dlg{seq}"), seq, name)
            }
        };
        let to = if kind == 2 { call.to.clone() } else { to };
        let mut d = Draft::new(format!("{name} {ruri} SIP/2.0"))
            .h("Via", Self::via(peer, &branch))
            .h("Max-Forwards", "70")
            .h("From", &call.from)
            .h("To", to)
            .h("Call-ID", &call.call_id)
            .h("CSeq", format!("{seq} {cseq_method}"));
        if kind == 3 || kind >= 4 {
            for route in routes.iter().rev() {
                d = d.h("Route", route);
            }
        }
        if name == "PRACK"
            && let Some(rseq) = rseq
        {
            d = d.h("RAck", format!("{rseq} 1 INVITE"));
        }
        if name == "INVITE" || name == "UPDATE" {
            d = d
                .h("Contact", format!("<sip:gw@{}>", Self::addr(peer)))
                .body("application/sdp", SDP_HOLD);
        }
        let bytes = d.finish(tail);
        self.deliver(peer, bytes);
    }

    fn register(&mut self, phone: u8, user: u8, variant: u8, tail: &[u8]) {
        let peer = PHONE_PEERS[usize::from(phone) % PHONE_PEERS.len()];
        let (user, password) = match user % 4 {
            0 => ("1001", "demo-1001"),
            1 => ("1002", "demo-1002"),
            2 => ("9999", "demo-9999"),
            _ => ("1001", "wrong"),
        };
        let n = self.next_id();
        let ruri = format!("sip:{SIAGA}");
        let transport = match Self::transport(peer) {
            Transport::Tcp => ";transport=tcp",
            Transport::Udp => "",
        };
        let contact = if variant & 4 != 0 {
            "*".to_owned()
        } else {
            format!("<sip:{user}@{}{transport}>", Self::addr(peer))
        };
        let mut d = Draft::new(format!("REGISTER {ruri} SIP/2.0"))
            .h("Via", Self::via(peer, &format!("reg{n}")))
            .h("Max-Forwards", "70")
            .h("From", format!("<sip:{user}@siaga.test>;tag=r{n}"))
            .h("To", format!("<sip:{user}@siaga.test>"))
            .h("Call-ID", format!("reg-{peer}-{user}"))
            .h("CSeq", format!("{n} REGISTER"))
            .h("Contact", contact);
        d = match variant & 3 {
            0 => d.h("Expires", "3600"),
            1 => d.h("Expires", "0"),
            2 => d.h("Expires", "30"),
            _ => d,
        };
        if variant & 8 == 0
            && let Some(nonce) = self.nonces[peer].clone()
        {
            self.nc += 1;
            let nc = format!("{:08x}", self.nc);
            let ha1 = Ha1::from_password(user, "siaga.test", password).to_hex();
            let ha2 = md5_hex(&format!("REGISTER:{ruri}"));
            let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:fz:auth:{ha2}"));
            d = d.h(
                "Authorization",
                format!(
                    "Digest username=\"{user}\", realm=\"siaga.test\", nonce=\"{nonce}\", uri=\"{ruri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"fz\""
                ),
            );
        }
        let bytes = d.finish(tail);
        self.deliver(peer, bytes);
    }

    /// Remembers the dialog a phone's 2xx to an INVITE creates.
    fn maybe_dialog(&mut self, peer: usize, request: &SipMessage, status: u16, variant: u8) {
        if request.method() == Some(&Method::Invite) && (200..300).contains(&status) {
            self.dialogs.push(PhoneDialog {
                peer,
                invite: request.clone(),
                tag: to_tag(peer, request, variant),
                next_cseq: 100,
            });
            if self.dialogs.len() > 16 {
                self.dialogs.remove(0);
            }
        }
    }

    fn phone_bye(&mut self, peer: usize, pick: usize, tail: &[u8]) {
        let mine: Vec<usize> = (0..self.dialogs.len())
            .rev()
            .filter(|&i| self.dialogs[i].peer == peer)
            .collect();
        let Some(&i) = mine.get(pick % mine.len().max(1)) else {
            return;
        };
        let dialog = &mut self.dialogs[i];
        dialog.next_cseq += 1;
        let invite = &dialog.invite;
        let value = |name| {
            invite
                .header(name)
                .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
                .unwrap_or_default()
        };
        let contact = value(HeaderName::Contact);
        let target = contact
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map_or(format!("sip:{SIAGA}"), |(uri, _)| uri.to_owned());
        let bytes = Draft::new(format!("BYE {target} SIP/2.0"))
            .h("Via", Self::via(peer, &format!("pb{}", dialog.next_cseq)))
            .h("Max-Forwards", "70")
            .h(
                "From",
                format!("{};tag={}", value(HeaderName::To), dialog.tag),
            )
            .h("To", value(HeaderName::From))
            .h("Call-ID", value(HeaderName::CallId))
            .h("CSeq", format!("{} BYE", dialog.next_cseq))
            .finish(tail);
        self.deliver(peer, bytes);
    }

    fn out_of_dialog(&mut self, peer: usize, method: u8, uri: u8, tail: &[u8]) {
        let method = [
            "OPTIONS",
            "MESSAGE",
            "SUBSCRIBE",
            "NOTIFY",
            "INFO",
            "PUBLISH",
            "REFER",
            "UPDATE",
            "BYE",
            "PRACK",
            "FOO",
            "INVITE",
        ][usize::from(method) % 12];
        let ruri = [
            "sip:127.0.0.1:5060",
            "sip:siaga.test",
            "sip:1001@siaga.test",
            "sip:x@elsewhere.example",
        ][usize::from(uri) % 4];
        let n = self.next_id();
        let bytes = Draft::new(format!("{method} {ruri} SIP/2.0"))
            .h("Via", Self::via(peer, &format!("ood{n}")))
            .h("Max-Forwards", "70")
            .h("From", format!("<sip:peer@{}>;tag=o{n}", Self::addr(peer)))
            .h("To", format!("<{ruri}>"))
            .h("Call-ID", format!("ood-{n}"))
            .h("CSeq", format!("1 {method}"))
            .h("Accept", "application/sdp")
            .finish(tail);
        self.deliver(peer, bytes);
    }

    /// Every timer runs out; then shutdown and the same again: nothing may be left.
    fn finish(mut self) -> Summary {
        self.advance(FINAL_WAIT_MS);
        let gateways = self.engine.trunk_gateways().len();
        assert!(
            self.engine.server_transactions() <= self.engine.live_calls(),
            "{} server transactions outlive their calls ({} live)",
            self.engine.server_transactions(),
            self.engine.live_calls()
        );
        // While calls live, operators are rung (and phones may never answer): only an
        // idle engine is held to the probes alone.
        assert!(
            self.engine.live_calls() > 0 || self.engine.client_transactions() <= gateways,
            "{} client transactions left after every timer ran out",
            self.engine.client_transactions()
        );
        if !self.stopped {
            self.engine.shutdown(self.at());
        }
        self.advance(FINAL_WAIT_MS);
        assert_eq!(self.engine.live_calls(), 0, "calls left after shutdown");
        assert_eq!(
            self.engine.waiting_calls(),
            0,
            "queued calls left after shutdown"
        );
        assert_eq!(
            self.engine.server_transactions(),
            0,
            "server transactions left"
        );
        assert_eq!(
            self.engine.client_transactions(),
            0,
            "client transactions left"
        );
        assert!(
            self.relays.is_empty(),
            "relays left open: {:?}",
            self.relays
        );
        for (call, log) in &self.calls {
            assert_eq!(log.ended, 1, "call {call} not recorded as ended once");
        }
        for id in ["1001", "1002"] {
            let state = self.engine.agent_state(id);
            assert!(
                !matches!(
                    state,
                    Some(AgentState::Ringing { .. } | AgentState::OnCall { .. })
                ),
                "operator {id} still {state:?} with no call"
            );
        }
        self.summary
    }
}

/// A peer's response to `request` (RFC 3261 §8.2.6.2: Via, From, Call-ID, CSeq copied; To
/// with the peer's tag).
fn respond(peer: usize, request: &SipMessage, status: u16, variant: u8, tail: &[u8]) -> Vec<u8> {
    let mut d = Draft::new(format!("SIP/2.0 {status} Fuzzed"));
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        for field in request.headers_named(name) {
            d.headers
                .push((name.canonical().as_bytes().to_vec(), field.value().to_vec()));
        }
    }
    let to = request
        .header(HeaderName::To)
        .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
        .unwrap_or_default();
    d = if status > 100 && !to.contains("tag=") {
        d.h("To", format!("{to};tag={}", to_tag(peer, request, variant)))
    } else {
        d.h("To", to)
    };
    if variant & 8 == 0 {
        d = d.h("Contact", format!("<sip:phone@{}>", World::addr(peer)));
    }
    let offer = request.method() == Some(&Method::Invite) && (180..300).contains(&status);
    if offer {
        d = match variant & 3 {
            0 => d.body("application/sdp", SDP_G711),
            1 => d,
            2 => d.body("application/sdp", SDP_G729),
            _ => d.body("application/sdp", "v=0\r\n"),
        };
    }
    d.finish(tail)
}

/// The To tag peer `peer` gives its responses to `request` (stable, so that 180 and 200
/// share it; another with bit 2 of `variant`: a second fork).
fn to_tag(peer: usize, request: &SipMessage, variant: u8) -> String {
    let mut h: u32 = 2_166_136_261;
    for b in request.call_id().unwrap_or_default().bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
    }
    format!("p{peer}{}x{h:08x}", if variant & 4 != 0 { "f" } else { "" })
}

fn status_of(byte: u8) -> u16 {
    STATUSES
        .get(usize::from(byte))
        .copied()
        .unwrap_or(100 + 2 * u16::from(byte))
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn nonce_of(msg: &SipMessage) -> Option<String> {
    let value = msg.header(HeaderName::WwwAuthenticate)?.value();
    let text = String::from_utf8_lossy(&value);
    let rest = text.split_once("nonce=\"")?.1;
    Some(rest.split_once('"')?.0.to_owned())
}

/// Whether siaga may answer `bytes`: a request other than ACK (its first word is not
/// `SIP/…` or `ACK`).
fn is_answerable(bytes: &[u8]) -> bool {
    let bytes = skip_blank_lines(bytes);
    !bytes.starts_with(b"SIP/") && !bytes.starts_with(b"ACK ")
}

/// `bytes` without the CRLFs (or LFs) before the start line, which SIP ignores (RFC 3261
/// §7.5).
fn skip_blank_lines(bytes: &[u8]) -> &[u8] {
    let blank = bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    &bytes[blank..]
}

/// The Call-ID and CSeq of a message read leniently from its bytes (independently of
/// siaga's parser): blank lines before the start line skipped, lines ended by LF or CRLF,
/// header names in any case, `i` for Call-ID, folded lines joined, whitespace runs (a stray
/// CR included) as one space.
fn message_key(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(skip_blank_lines(bytes));
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => lines.push(line.to_owned()),
        }
    }
    let mut call_id = None;
    let mut cseq = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" if call_id.is_none() => call_id = Some(value),
            "cseq" if cseq.is_none() => cseq = Some(value),
            _ => {}
        }
    }
    (call_id, cseq)
}

/// Seeds: real call flows written as steps. Phones: A (peer 2, operator 1001), B (peer 3,
/// 1002), C (peer 4, over TCP); the trunk is peer 0 (UDP) or 1 (TCP); the gateway peer 6.
pub fn seed_flows() -> Vec<(&'static str, Vec<u8>)> {
    use Step::*;
    const A: u8 = 2;
    const B: u8 = 3;
    const C: u8 = 4;
    // REGISTER (401), then again with digest credentials (200).
    let register = |peer: u8, user: u8| {
        let phone = peer - 2;
        let step = Register {
            phone,
            user,
            variant: 0,
        };
        [(0, step.clone(), ""), (1, step, "")]
    };
    let invite = |slot: u8, variant: u8, peer: u8| TrunkInvite {
        slot,
        variant,
        peer,
    };
    let respond = |peer: u8, pick: u8, status: u8| Respond {
        peer,
        pick,
        status,
        variant: 0,
    };
    let (s180, s200, s486, s487) = (1, 3, 4, 7);
    let mut flows: Vec<(&'static str, Flow)> = Vec::new();
    // Answered, ended by the caller: REGISTER with digest, INVITE, 180, 200, ACK, BYE.
    let mut answered = register(A, 0).to_vec();
    answered.extend([
        (3, invite(0, 0, 0), ""),
        (3, respond(A, 0, s180), ""),
        (6, respond(A, 0, s200), ""),
        (2, TrunkAck { slot: 0 }, ""),
        (9, TrunkBye { slot: 0 }, ""),
        (2, respond(A, 0, s200), ""),
    ]);
    flows.push(("answered-caller-hangs-up", answered.clone()));
    // The operator hangs up; the trunk answers siaga's BYE.
    let mut op_bye = answered[..6].to_vec();
    op_bye.extend([
        (8, PhoneBye { phone: 0, pick: 0 }, ""),
        (2, respond(0, 0, s200), ""),
    ]);
    flows.push(("answered-operator-hangs-up", op_bye));
    // The caller cancels while queued (no operator), and ACKs the 487.
    flows.push((
        "cancel-in-queue",
        vec![
            (0, invite(1, 0x08, 0), ""),
            (6, TrunkCancel { slot: 1 }, ""),
            (2, TrunkAck { slot: 1 }, ""),
        ],
    ));
    // No answer from 1001 within the ring timeout: CANCEL (200, 487); 1002 answers.
    let mut ring = register(A, 0).to_vec();
    ring.extend(register(B, 1));
    ring.extend([
        (3, invite(2, 0, 0), ""),
        (3, respond(A, 0, s180), ""),
        (9, respond(A, 0, s200), ""),
        (0, respond(A, 1, s487), ""),
        (3, respond(B, 0, s200), ""),
        (2, TrunkAck { slot: 2 }, ""),
        (9, TrunkBye { slot: 2 }, ""),
        (2, respond(B, 0, s200), ""),
    ]);
    flows.push(("ring-timeout-next-operator", ring));
    // A reject (486) from a phone on TCP to a TCP trunk's late-offer INVITE with
    // Supported: 100rel and Record-Route; offered again after the reject delay; the
    // caller gives up.
    let mut reject = register(C, 0).to_vec();
    reject.extend([
        (3, invite(3, 0xC8, 1), ""),
        (3, respond(C, 0, s486), ""),
        (7, Wait { seconds: 1 }, ""),
        (3, TrunkCancel { slot: 3 }, ""),
        (
            3,
            RespondAll {
                peer: C,
                status: s487,
                variant: 0,
            },
            "",
        ),
        (3, TrunkAck { slot: 3 }, ""),
    ]);
    flows.push(("reject-and-late-offer-over-tcp", reject));
    // Races: the caller cancels as the operator answers; the 2xx retransmitted after the
    // ACK; BYE twice (the second for a finished dialog).
    let mut race = register(A, 0).to_vec();
    race.extend([
        (3, invite(4, 0, 0), ""),
        (3, respond(A, 0, s180), ""),
        (0, TrunkCancel { slot: 4 }, ""),
        (0, respond(A, 0, s200), ""),
        (
            1,
            Replay {
                back: 0,
                splice: None,
            },
            "",
        ),
        (2, TrunkAck { slot: 4 }, ""),
        (6, TrunkBye { slot: 4 }, ""),
        (6, TrunkBye { slot: 4 }, ""),
    ]);
    flows.push(("races-cancel-vs-answer", race));
    // The gateway answers a probe; a stranger's INVITE draws 403; a re-INVITE (which the
    // phone answers: one left unanswered re-queues the caller once Timer B fires) and an
    // OPTIONS in the dialog; shutdown with the call up, the trunk answering the BYE.
    let mut misc = register(B, 1).to_vec();
    misc.extend([
        (0, respond(6, 0, s200), ""),
        (0, invite(5, 0x02, 0), ""),
        (2, invite(6, 0, 3), ""),
        (3, respond(B, 0, s200), ""),
        (2, TrunkAck { slot: 5 }, ""),
        (2, TrunkInDialog { slot: 5, method: 0 }, ""),
        (1, respond(B, 0, s200), ""),
        (2, TrunkInDialog { slot: 5, method: 3 }, ""),
        (
            2,
            Request {
                peer: 0,
                method: 0,
                uri: 0,
            },
            "",
        ),
        (2, Shutdown, ""),
        (
            1,
            RespondAll {
                peer: 0,
                status: s200,
                variant: 0,
            },
            "",
        ),
        (0, TcpClosed { peer: 1 }, ""),
    ]);
    flows.push(("gateway-stranger-shutdown", misc));
    // Fuzzed fields: Max-Forwards 0, a Require the trunk insists on, a missing Call-ID,
    // a broken Content-Length on TCP, an unknown method.
    flows.push((
        "fuzzed-fields",
        vec![
            (0, invite(0, 0, 0), "Max-Forwards: 0"),
            (0, invite(0x81, 0, 0), "Require: 100rel, timer"),
            (0, invite(0x82, 0, 0), "Call-ID:"),
            (
                0,
                Unframeable {
                    peer: 0,
                    error: 0,
                    head: b"OPTIONS sip:siaga.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:40001;branch=z9hG4bKu1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:siaga.test>\r\nCall-ID: u1\r\nCSeq: 1 OPTIONS\r\nContent-Length: -1\r\n\r\n".to_vec(),
                },
                "",
            ),
            (0, Request { peer: 1, method: 10, uri: 1 }, ""),
            (6, TrunkCancel { slot: 0 }, ""),
        ],
    ));
    flows
        .into_iter()
        .map(|(name, steps)| (name, encode(&steps)))
        .collect()
}

/// A flow recorded as raw messages: every input `run` delivered, as [`Step::Raw`].
pub fn recorded(summary: &Summary) -> Vec<u8> {
    let steps: Vec<(u8, Step, &str)> = summary
        .recording
        .iter()
        .map(|(time, peer, bytes)| {
            (
                *time,
                Step::Raw {
                    peer: *peer,
                    bytes: bytes.clone(),
                },
                "",
            )
        })
        .collect();
    encode(&steps)
}
