//! The [`Engine`] struct: parses what arrives, answers malformed requests, routes
//! requests to their server transaction or the UAS core (RFC 3261 §8.2), drops stray and
//! malformed responses, and fires transaction timers.

use super::acd::CallHandle;
use super::call::{CallTable, DialogReply, FeatureVerdict};
use super::dialog::DialogKey;
use super::digest::Ha1;
use super::media::{MediaCommand, MediaReport, PortPool, Side};
use super::record::{CallEvent, CallEventKind};
use super::registrar::{BindingChange, RegisterSource, Registrar, RegistrarConfig};
use super::sip::builder::response_to;
use super::sip::uri::Uri;
use super::sip::{HeaderName, Malformed, Method, ParseError, SipMessage};
use super::time::{MonoTime, Now};
use super::transaction::{
    ClientKey, ClientTransactions, MergeKey, ResponseTarget, ServerKey, ServerTransactions,
    Termination, TimerConfig, TimerName, TxId,
};
use super::trunk_health::TrunkHealth;
use super::uas::{self, Rejection, RequestHead, Verdict};
use super::{ConnectionId, Input, Output, Received, Transmit, Transport};
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The `Server` header siaga puts in its responses (RFC 3261 §20.35).
pub const SERVER: &str = concat!("siaga/", env!("CARGO_PKG_VERSION"));

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
    /// The host (IP or name) siaga writes in Via and Contact (`sip.advertise`, else the
    /// listen address).
    pub advertised_host: String,
    /// The port siaga writes in Via and Contact.
    pub advertised_port: u16,
    /// RFC 3261 T1, T2, T4 (`sip.timers.t1_ms`, `t2_ms`, `t4_ms`).
    pub timers: TimerConfig,
    /// Bytes of responses server transactions may hold for retransmission before siaga
    /// answers further requests statelessly — all but the INVITEs it accepts, which are
    /// emergency calls (default [`MAX_HELD_BYTES`]).
    pub max_held_bytes: usize,
    /// The trunk, the queue, the operators and the relay.
    pub calls: CallSettings,
}

/// What the call model needs from the configuration (`[trunk]`, `[queue]`,
/// `[[operators]]`, `[registrar]`, `[media]`).
#[derive(Clone, Debug)]
pub struct CallSettings {
    /// `trunk.name`: recorded with each call.
    pub trunk_name: String,
    /// `trunk.sources`: who may place emergency calls.
    pub trunk_sources: Vec<ipnet::IpNet>,
    /// `trunk.emergency_numbers`: Request-URI users that make an INVITE an emergency call
    /// (besides `urn:service:sos`, RFC 5031).
    pub emergency_numbers: Vec<String>,
    /// `trunk.other_sources = "accept"`: take emergency calls from any source; else 403.
    pub accept_other_sources: bool,
    /// `trunk.trust_domain`: networks inside siaga's trust domain besides `trunk_sources`
    /// (RFC 3325 §2.3): P-Asserted-Identity is believed from them and passed to them.
    pub trust_domain: Vec<ipnet::IpNet>,
    /// `queue.ringing_refresh_s`: how often a waiting caller gets 180 again (≤ 60 s,
    /// RFC 3261 §13.3.1.1).
    pub ringing_refresh: Duration,
    /// `trunk.min_session_expires_s`: siaga's Min-SE toward the trunk, in seconds (RFC
    /// 4028 §5; at least 90).
    pub min_session_expires_s: u32,
    /// The IP written in SDP for the relay (`media.advertise`, else the SIP listen IP).
    pub media_ip: IpAddr,
    /// `media.rtp_ports`: the relay's port range, inclusive, low port even.
    pub rtp_ports: (u16, u16),
    /// `[[operators]]`: id and HA1 of each operator.
    pub operators: Vec<(String, Ha1)>,
    /// `[registrar]`.
    pub registrar: RegistrarConfig,
    /// `trunk.gateways` and their OPTIONS probing.
    pub trunk_health: super::trunk_health::HealthConfig,
    /// Queues, routes, operators' ACD settings, feature codes (`[queue]`, `[[queues]]`,
    /// `[[routes]]`, `[acd]`, `[feature_codes]`, `[[operators]]`). An operator of
    /// `operators` missing from `acd.agents` serves every queue without skills.
    pub acd: super::acd::AcdSettings,
    /// `[[agencies]]`: the field agencies a live call may be transferred to
    /// (`Engine::transfer`), in file order.
    pub agencies: Vec<super::call::TransferAgency>,
}

impl CallSettings {
    /// Settings for tests: the trunk is 127.0.0.0/8 and ::1, number 112, RFC-like timers
    /// (ring timeout 15 s, reject delay 5 s, 180 every 30 s), no operators, one queue
    /// without wrap-up or no-answer limit.
    pub fn for_tests(media_ip: IpAddr, realm: &str) -> Self {
        CallSettings {
            trunk_name: "trunk".to_owned(),
            trunk_sources: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
            emergency_numbers: vec!["112".to_owned()],
            accept_other_sources: false,
            trust_domain: Vec::new(),
            ringing_refresh: Duration::from_secs(30),
            min_session_expires_s: 90,
            media_ip,
            rtp_ports: (30000, 30999),
            operators: Vec::new(),
            registrar: RegistrarConfig::new(realm),
            trunk_health: Default::default(),
            agencies: Vec::new(),
            acd: {
                // No wrap-up and no no-answer limit: the first-call tests take an
                // operator free again at once; the ACD tests set these themselves.
                let mut acd = super::acd::AcdSettings::single_queue([]);
                acd.queues[0].wrap_up = Duration::ZERO;
                acd.queues[0].no_answer_limit = 0;
                acd
            },
        }
    }
}

impl EngineConfig {
    /// A configuration for tests: domain `siaga.test`, listening on `addr`, RFC timers.
    pub fn for_tests(addr: SocketAddr) -> Self {
        EngineConfig {
            node_id: "test".to_owned(),
            domains: vec!["siaga.test".to_owned()],
            local_addresses: vec![addr],
            advertised_host: addr.ip().to_string(),
            advertised_port: addr.port(),
            timers: TimerConfig::default(),
            max_held_bytes: MAX_HELD_BYTES,
            calls: CallSettings::for_tests(addr.ip(), "siaga.test"),
        }
    }

    /// siaga's Contact for a leg or dialog over `transport` (RFC 3261 §8.1.1.8: a TCP leg
    /// says `transport=tcp`, so the peer's requests come back over TCP).
    pub fn contact(&self, transport: Transport) -> String {
        let param = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("<sip:siaga@{}{param}>", self.via_host())
    }

    /// The `host:port` siaga writes in Via and Contact (IPv6 in brackets).
    pub fn via_host(&self) -> String {
        let host = &self.advertised_host;
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.advertised_port)
        } else {
            format!("{host}:{}", self.advertised_port)
        }
    }

    /// The top Via of a request siaga sends over `transport` with `branch` (RFC 3261
    /// §8.1.1.7, with `rport`, RFC 3581 §3).
    pub fn via(&self, transport: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_token(),
            self.via_host()
        )
    }

    /// Whether `ip[:port]` is one of siaga's own addresses (no port means 5060,
    /// RFC 3261 §19.1.2); a wildcard listen address counts for any IP of its family.
    pub fn is_local_address(&self, ip: IpAddr, port: Option<u16>) -> bool {
        use crate::engine::sip::view::via::parse_ip;
        let port = port.unwrap_or(5060);
        let advertised =
            parse_ip(&self.advertised_host) == Some(ip) && self.advertised_port == port;
        advertised
            || self.local_addresses.iter().any(|a| {
                a.port() == port
                    && (a.ip() == ip || (a.ip().is_unspecified() && a.is_ipv4() == ip.is_ipv4()))
            })
            // IPv6 domains are written in brackets (`[::1]`).
            || self.domains.iter().any(|d| parse_ip(d) == Some(ip))
    }
}

/// Counters of what the engine received, answered and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received (including retransmissions).
    pub requests: u64,
    /// Responses received.
    pub responses: u64,
    /// Malformed requests: answered with 400 when a Via could be read (or the source
    /// address used), dropped otherwise.
    pub malformed_requests: u64,
    /// Responses that did not parse: dropped (RFC 3261 §18.1.2).
    pub malformed_responses: u64,
    /// Responses that matched no client transaction: dropped.
    pub stray_responses: u64,
    /// Input that could not be told apart as request or response: dropped.
    pub unparseable: u64,
    /// TCP messages the shell could not frame (that connection was closed).
    pub unframeable: u64,
    /// Server transactions created.
    pub server_transactions: u64,
    /// INVITE server transactions whose final response was never ACKed (Timer H).
    pub ack_timeouts: u64,
    /// Requests answered without a transaction because transactions already held
    /// [`EngineConfig::max_held_bytes`] of responses.
    pub stateless_answers: u64,
    /// Requests whose top Via named port 0 (answered at the packet's source port, see
    /// [`response_target`]).
    pub via_port_zero: u64,
}

/// Default of [`EngineConfig::max_held_bytes`]: 64 MiB of responses held by server
/// transactions for retransmission. Each holds its response until Timer J (non-INVITE) or
/// the ACK / Timer H (INVITE), 64·T1 over UDP, so a flood would otherwise grow memory with
/// rate × 32 s × size; past the bound siaga answers statelessly all but the INVITEs it
/// accepts.
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// The sans-IO SIP engine. See the module docs of [`crate::engine`] for the call order.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) rng: rand::rngs::StdRng,
    pub(crate) server: ServerTransactions,
    pub(crate) client: ClientTransactions,
    pub(crate) calls: CallTable,
    pub(crate) registrar: Registrar,
    pub(crate) ports: PortPool,
    pub(crate) trunk_health: TrunkHealth,
    pub(crate) outputs: VecDeque<Output>,
    /// Set by [`Engine::shutdown`]: no call is offered or taken any more.
    pub(crate) stopping: bool,
    /// Addresses that refused TCP for a large request (RFC 3261 §18.1.1).
    pub(crate) tcp_refusals: super::delivery::TcpRefusals,
    stats: Stats,
}

impl Engine {
    /// A new engine. `rng` is the only source of randomness (tags, branches, Call-IDs,
    /// nonces); the shell seeds it from the OS, tests with a fixed seed.
    pub fn new(config: EngineConfig, mut rng: rand::rngs::StdRng) -> Self {
        let settings = &config.calls;
        let registrar = Registrar::new(
            settings.registrar.clone(),
            settings.operators.clone(),
            rng.random(),
        );
        let calls = CallTable::new(
            &settings.acd,
            settings.operators.iter().map(|(id, _)| id.as_str()),
        );
        let ports = PortPool::new(settings.rtp_ports.0, settings.rtp_ports.1);
        let trunk_health = TrunkHealth::new(&settings.trunk_health);
        Engine {
            config,
            rng,
            server: ServerTransactions::default(),
            client: ClientTransactions::default(),
            calls,
            registrar,
            ports,
            trunk_health,
            outputs: VecDeque::new(),
            stopping: false,
            tcp_refusals: super::delivery::TcpRefusals::default(),
            stats: Stats::default(),
        }
    }

    /// An engine with a fixed RNG seed (tests and benchmarks).
    pub fn with_seed(config: EngineConfig, seed: u64) -> Self {
        Engine::new(config, rand::rngs::StdRng::seed_from_u64(seed))
    }

    // Getters.

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Counters of received, rejected and dropped input.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of live server transactions.
    pub fn server_transactions(&self) -> usize {
        self.server.len()
    }

    /// Number of live client transactions.
    pub fn client_transactions(&self) -> usize {
        self.client.len()
    }

    /// Number of live calls.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Calls waiting in the queue for an operator.
    pub fn waiting_calls(&self) -> usize {
        self.calls.acd.waiting()
    }

    /// The agent state of operator `id`.
    pub fn agent_state(&self, id: &str) -> Option<super::acd::AgentState> {
        self.calls.acd.state(id)
    }

    // Input.

    /// Feed one input. Outputs are queued for [`Engine::poll_output`].
    pub fn handle_input(&mut self, now: Now, input: Input) {
        match input {
            Input::Received(rx) => self.handle_received(now, rx),
            Input::Unframeable {
                connection,
                source,
                error,
                head,
            } => self.handle_unframeable(connection, source, error, head),
            Input::ConnectionClosed(connection) => self.handle_connection_closed(connection),
            Input::TransmitFailed { transmit, error } => {
                self.handle_transmit_failed(now, transmit, error);
            }
            Input::MediaReport(report) => self.handle_media_report(now, report),
        }
        self.collect(now);
    }

    /// TCP connection `connection` is gone: nothing names it any more (responses go to a
    /// new connection, §18.2.2; requests to the Contact, or nowhere for an RFC 5626 flow).
    pub(crate) fn handle_connection_closed(&mut self, connection: ConnectionId) {
        self.server.connection_closed(connection);
        self.client.connection_closed(connection);
        self.registrar.handle_connection_closed(connection);
        self.calls_follow_flows(Some(connection));
        self.calls_connection_closed(connection);
    }

    /// siaga is stopping: every live call is ended (BYE to both legs of an answered call,
    /// 503 to a caller still waiting, CANCEL to ringing phones) and recorded as
    /// `interrupted`; emergency INVITEs arriving from now on draw 503 so the telco routes
    /// them elsewhere. Drain [`Engine::poll_output`] afterwards as usual.
    pub fn shutdown(&mut self, now: Now) {
        self.stopping = true;
        self.stop_probes();
        self.interrupt_calls(now);
        self.collect(now);
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.server.handle_timeout(now.mono);
        self.client.handle_timeout(now.mono);
        self.registrar.handle_timeout(now.mono);
        self.handle_call_timers(now);
        self.feature_timeout(now);
        self.acd_timeout(now);
        self.collect(now);
    }

    // Output.

    /// The next output; [`Output::Wait`] when there is nothing more to do now.
    pub fn poll_output(&mut self) -> Output {
        self.outputs.pop_front().unwrap_or(Output::Wait {
            until: self.next_deadline(),
        })
    }

    fn next_deadline(&self) -> Option<MonoTime> {
        [
            self.server.next_deadline(),
            self.client.next_deadline(),
            self.registrar.next_deadline(),
            self.calls.next_deadline(),
            self.calls.features.next_deadline(),
            self.calls.acd.poll_timeout(),
            self.trunk_health.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A relay's report: a side went silent (`Engine::relay_silent`), or the relay of a
    /// call closed and reported its counters (recorded with the call).
    fn handle_media_report(&mut self, now: Now, report: MediaReport) {
        let report = match report {
            MediaReport::Silent { relay, side } => return self.relay_silent(now, relay, side),
            MediaReport::Closed(report) => report,
        };
        if !report.bind_failed.is_empty() {
            tracing::error!(ports = ?report.bind_failed, "relay could not bind its ports");
        }
        if let Some(record) = self.calls.relays.remove(&report.relay) {
            self.ports.release(report.caller_port);
            self.ports.release(report.operator_port);
            let (mut caller_to_operator, mut operator_to_caller) = (
                report.caller_to_operator.packets,
                report.operator_to_caller.packets,
            );
            // A callback's relay faces the operator on its caller side (`call::callback`),
            // and its counters are the callback's, not the abandoned call's.
            let kind = if self.calls.callback_relays.remove(&report.relay) {
                std::mem::swap(&mut caller_to_operator, &mut operator_to_caller);
                CallEventKind::CallbackMedia {
                    caller_to_operator,
                    operator_to_caller,
                }
            } else {
                CallEventKind::MediaRelayed {
                    caller_to_operator,
                    operator_to_caller,
                }
            };
            self.emit(record, now, kind);
        }
    }

    /// Queues a call event for the store.
    pub(crate) fn emit(&mut self, call: uuid::Uuid, now: Now, kind: CallEventKind) {
        let id = self.new_uuid();
        self.outputs.push_back(Output::Event(CallEvent {
            id,
            call,
            at: now.utc,
            kind,
        }));
    }

    /// Queues a command for the media relay.
    pub(crate) fn media(&mut self, command: MediaCommand) {
        self.outputs.push_back(Output::Media(command));
    }

    /// A random (version 4) UUID from the engine's RNG.
    pub(crate) fn new_uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }

    // Internals.

    fn handle_received(&mut self, now: Now, rx: Received) {
        match SipMessage::parse(rx.bytes.clone(), rx.transport) {
            Ok(msg) if msg.is_request() => {
                self.stats.requests += 1;
                self.note_via_port_zero(&rx, &msg);
                self.handle_request(now, &rx, &msg);
            }
            Ok(msg) => {
                self.stats.responses += 1;
                self.handle_response(now, &rx, &msg);
            }
            Err(Malformed {
                error,
                partial: Some(partial),
            }) if partial.is_request() => {
                self.stats.requests += 1;
                self.record_if_unprocessable_emergency(now, &rx, &partial, &error);
                self.reject_malformed(&rx, &partial, &error);
            }
            Err(Malformed { error, partial }) => {
                if partial.is_some() || rx.bytes.starts_with(b"SIP/") {
                    self.stats.responses += 1;
                    self.stats.malformed_responses += 1;
                    tracing::debug!(source = %rx.source, %error, "malformed response dropped");
                } else {
                    self.stats.unparseable += 1;
                    tracing::info!(source = %rx.source, %error, "unparseable message dropped");
                }
            }
        }
    }

    /// A TCP message the shell could not frame: answer 400 (513 when it is too large,
    /// RFC 3261 §21.5.14) if its header section is a request's, then close the connection
    /// — its framing is lost (RFC 4475 §3.3.9).
    fn handle_unframeable(
        &mut self,
        connection: ConnectionId,
        source: SocketAddr,
        error: ParseError,
        head: bytes::Bytes,
    ) {
        self.stats.unframeable += 1;
        tracing::info!(%source, %error, "unframeable TCP message; closing the connection");
        let request = match SipMessage::parse(head, Transport::Udp) {
            Ok(msg) => Some(msg),
            Err(Malformed { partial, .. }) => partial.map(|p| *p),
        }
        // A response needs the request's Via (§8.2.6.2); an ACK is never answered.
        .filter(|m| {
            m.is_request()
                && m.method() != Some(&Method::Ack)
                && m.header(HeaderName::Via).is_some()
        });
        if let Some(request) = request {
            let (status, reason) = match error {
                ParseError::TooLarge { .. } => (513, "Message Too Large".to_owned()),
                ref other => (400, format!("Bad Request - {other}")),
            };
            let tag = self.new_tag();
            let bytes = Answer::reject(status, &reason).build(&request, source, &tag);
            self.outputs.push_back(Output::Transmit(Transmit {
                transport: Transport::Tcp,
                destination: source,
                connection: Some(connection),
                bytes,
            }));
        }
        self.outputs.push_back(Output::Close { connection });
    }

    /// RFC 3261 §18.1.2, §17.1.3: a response goes to the client transaction it matches,
    /// and on to the call model when the transaction passes it up. A 2xx to an INVITE
    /// whose transaction is gone is a retransmission for a dialog: ACKed again
    /// (§13.2.2.4). Anything else is a stray and is dropped.
    fn handle_response(&mut self, now: Now, rx: &Received, msg: &SipMessage) {
        let key = match ClientKey::of_response(msg) {
            Ok(key) => key,
            Err(error) => {
                self.stats.malformed_responses += 1;
                tracing::debug!(source = %rx.source, %error, "malformed response dropped");
                return;
            }
        };
        let Some(status) = msg.status() else {
            return;
        };
        let Some(id) = self.client.find(&key) else {
            if key.method == Method::Invite
                && (200..300).contains(&status)
                && (self.reack(msg) || self.late_2xx(now, &key, msg))
            {
                return;
            }
            self.stats.stray_responses += 1;
            tracing::debug!(source = %rx.source, status, "stray response dropped");
            return;
        };
        let verdict = if self.client.is_invite(id) && status >= 300 {
            let request = match self.calls.invites.get(&id) {
                Some(out) => Some(&out.request),
                None => self.calls.in_dialog.get(&id).map(|out| &out.request),
            };
            match request.map(|request| ack_of_failure(request, msg)) {
                Some(Some(ack)) => self
                    .client
                    .handle_failure_response(now.mono, id, status, ack),
                _ => return,
            }
        } else {
            self.client.handle_response(now.mono, id, status)
        };
        match verdict {
            Ok(super::transaction::Verdict::PassToTu) if self.calls.in_dialog.contains_key(&id) => {
                self.on_in_dialog_response(now, id, msg);
            }
            Ok(super::transaction::Verdict::PassToTu) if key.method == Method::Invite => {
                self.on_invite_response(now, id, msg);
            }
            Ok(super::transaction::Verdict::PassToTu) if key.method == Method::Options => {
                self.on_probe_response(now, id, status);
            }
            Ok(_) => {}
            Err(error) => {
                self.stats.malformed_responses += 1;
                tracing::debug!(source = %rx.source, %error, "response refused by its transaction");
            }
        }
    }

    /// A 2xx retransmitted after its INVITE transaction ended: ACK it again if it is one of
    /// siaga's dialogs (§13.2.2.4).
    fn reack(&mut self, msg: &SipMessage) -> bool {
        let (Ok(from), Ok(call_id)) = (msg.from(), msg.call_id()) else {
            return false;
        };
        let Some(tag) = from.tag() else {
            return false;
        };
        let key = DialogKey {
            call_id: call_id.to_owned(),
            local_tag: tag.to_owned(),
        };
        match self.calls.by_dialog.get(&key) {
            Some(&(handle, Some(leg))) => {
                self.resend_ack(handle, leg);
                true
            }
            _ => false,
        }
    }

    fn handle_request(&mut self, now: Now, rx: &Received, msg: &SipMessage) {
        let Ok(key) = ServerKey::of_request(msg) else {
            // No transaction can be identified: the request is malformed (§8.1.1).
            let error = first_mandatory_error(msg);
            self.record_if_unprocessable_emergency(now, rx, msg, &error);
            return self.reject_malformed(rx, msg, &error);
        };
        let is_ack = msg.method() == Some(&Method::Ack);
        if let Some(id) = self.server.find(&key) {
            // A retransmission, or the ACK of a non-2xx final (§17.2.1, §17.2.3).
            if is_ack {
                // RFC 6026 §7.1: an ACK of a 2xx that reuses the INVITE's branch matches
                // the Accepted transaction, which passes it up to the dialog.
                let verdict = self.server.handle_ack(now.mono, id);
                if verdict == super::transaction::Verdict::PassToTu
                    && let Some(key) = dialog_key(msg)
                    && !self.on_feature_ack(now, &key, msg)
                {
                    self.on_dialog_ack(&key, msg);
                }
            } else {
                // Answer on the connection this copy came on (§18.2.2).
                self.server.retarget(id, response_target(rx, msg));
                let _absorbed = self.server.handle_request(now.mono, id);
            }
            return;
        }
        if is_ack {
            // The ACK of siaga's 2xx (§13.3.1.4), or of a 2xx for a dialog siaga does not
            // have: never answered (§17.2.3).
            if let Some(key) = dialog_key(msg)
                && (self.on_feature_ack(now, &key, msg) || self.on_dialog_ack(&key, msg))
            {
                return;
            }
            tracing::debug!(source = %rx.source, "ACK matching no transaction dropped");
            return;
        }
        let head = match RequestHead::parse(msg) {
            Ok(head) => head,
            Err(error) => match self.lenient_head(rx, msg, &error) {
                Some(head) => head,
                None => {
                    self.record_if_unprocessable_emergency(now, rx, msg, &error);
                    // Stateless (RFC 4475 §3.1.2): a 400 lacking To or Call-ID may never
                    // be ACKed.
                    return self.reject_malformed(rx, msg, &error);
                }
            },
        };
        let target = response_target(rx, msg);
        // Every response of this transaction carries the same To tag (§8.2.6.2).
        let tag = self.new_tag();
        let merge = merge_key(&head);
        let (reply, merge) = match merge.as_ref().and_then(|m| self.server.find_merged(m)) {
            // §8.2.2.2: the same request reached siaga again over another path.
            Some(_) => (Reply::Final(Answer::reject(482, "Loop Detected")), None),
            None => (self.answer(now, rx, msg, &head), merge),
        };
        let (answer, cancelled) = match reply {
            Reply::Final(answer) => {
                self.record_if_emergency(now, msg, &head, &answer);
                (answer, None)
            }
            Reply::Cancel(answer, invite) => (answer, Some(invite)),
            Reply::MidCall(handle, side) => {
                let id = self
                    .server
                    .create(now.mono, key, merge, target, tag, &self.config.timers);
                self.stats.server_transactions += 1;
                return self.on_mid_call_request(now, (handle, side), id, msg, (target, rx.source));
            }
            Reply::FeatureCall { operator, code } => {
                // An authenticated operator's feature code (`call::feature`).
                let id = self.taken_invite(now, (key, merge), target, &tag);
                let call = super::call::InboundFeatureCall::new(id, rx, msg, target, tag);
                return self.start_feature_call(now, &operator, code, call);
            }
            Reply::EmergencyCall { called } => {
                // An emergency call always gets its transaction, whatever memory holds.
                let id = self.taken_invite(now, (key, merge), target, &tag);
                return self.start_call(
                    now,
                    rx,
                    msg,
                    super::call::NewCall {
                        tx: id,
                        local_tag: tag,
                        target,
                        called,
                    },
                );
            }
        };
        let bytes = answer.build(msg, rx.source, &tag);
        let status = answer.status;
        // Holding responses for retransmission costs memory; past the bound, what siaga
        // refuses (and every non-INVITE) is answered statelessly.
        if self.server.held_bytes() >= self.config.max_held_bytes {
            self.stats.stateless_answers += 1;
            return self.outputs.push_back(Output::Transmit(Transmit {
                transport: target.transport,
                destination: target.destination,
                connection: target.connection,
                bytes,
            }));
        }
        let id = self
            .server
            .create(now.mono, key, merge, target, tag, &self.config.timers);
        self.stats.server_transactions += 1;
        if let Err(error) = self.server.send_response(now.mono, id, status, bytes) {
            tracing::error!(%error, "transaction refused siaga's own response");
        }
        if let Some(invite) = cancelled {
            self.on_trunk_cancel(now, invite);
            self.on_feature_cancel(now, invite);
        }
    }

    /// The server transaction of an INVITE siaga takes (an emergency call, a feature
    /// code), whatever memory the held responses use.
    fn taken_invite(
        &mut self,
        now: Now,
        (key, merge): (ServerKey, Option<MergeKey>),
        target: ResponseTarget,
        tag: &str,
    ) -> TxId {
        self.stats.server_transactions += 1;
        let timers = &self.config.timers;
        self.server
            .create(now.mono, key, merge, target, tag.to_owned(), timers)
    }

    /// What to do with a new, well-formed request.
    fn answer(&mut self, now: Now, rx: &Received, msg: &SipMessage, head: &RequestHead) -> Reply {
        if msg.method() == Some(&Method::Cancel) {
            return self.answer_cancel(msg, head);
        }
        let verdict = uas::inspect_request(msg, head, &self.config);
        // §12.2.2: a request with a To tag belongs to a dialog; siaga's own are served here.
        if let (Verdict::Reject(r), Some(key)) = (&verdict, dialog_key(msg))
            && r.status == 481
            && let Some(reply) = self.on_dialog_request(now, &key, msg)
        {
            let (status, reason, ended) = match reply {
                DialogReply::MidCall(handle, side) => return Reply::MidCall(handle, side),
                DialogReply::Retry(after) => {
                    return Reply::Final(Answer {
                        status: 500,
                        reason: "Server Internal Error".to_owned(),
                        headers: vec![("Retry-After", after.to_string())],
                        to_tag: None,
                    });
                }
                DialogReply::Final(status, reason, ended) => (status, reason, ended),
            };
            let answer = match msg.method() {
                // In-dialog OPTIONS: siaga's capabilities, as out of dialog (§11.2).
                Some(Method::Options) if status == 200 => Answer {
                    status,
                    reason: reason.to_owned(),
                    headers: uas::capabilities(),
                    to_tag: None,
                },
                _ => Answer::reject(status, reason),
            };
            return match ended {
                Some(invite) => Reply::Cancel(answer, invite),
                None => Reply::Final(answer),
            };
        }
        let answer = match verdict {
            // An emergency number at a host siaga does not list (an SBC configured with
            // another name for the PSAP) from the trunk is still an emergency call: a 404
            // would lose it.
            Verdict::Reject(r)
                if r.status == 404
                    && msg.method() == Some(&Method::Invite)
                    && self.is_trunk_source(rx.source.ip())
                    && self.emergency_number(&head.request_uri).is_some() =>
            {
                tracing::warn!(uri = %head.request_uri, "emergency INVITE to a host not in sip.domains: taken");
                return self.route_invite(rx, head);
            }
            Verdict::Reject(r) => Answer::from(r),
            Verdict::ToSiaga if msg.method() == Some(&Method::Options) => Answer {
                status: 200,
                reason: "OK".to_owned(),
                headers: uas::capabilities(),
                to_tag: None,
            },
            Verdict::ToSiaga | Verdict::ToTarget => match msg.method() {
                // BYE and PRACK only exist within a dialog (RFC 3262 §3: no match is 481).
                Some(Method::Bye | Method::Prack) => {
                    Answer::reject(481, "Call/Transaction Does Not Exist")
                }
                Some(Method::Register) => self.register(now, rx, msg),
                // An operator's feature code (`call::feature`) before emergency numbers.
                Some(Method::Invite) => match self.feature_code(&head.request_uri) {
                    Some(code) => return self.feature_reply(now, rx, msg, code),
                    None => return self.route_invite(rx, head),
                },
                _ => Answer::reject(404, "Not Found"),
            },
        };
        Reply::Final(answer)
    }

    /// An INVITE outside any dialog: an emergency call when its Request-URI is an
    /// emergency number or `urn:service:sos` — taken from the trunk, 403 from anywhere
    /// else unless `trunk.other_sources = "accept"` — and 404 for any other target.
    fn route_invite(&mut self, rx: &Received, head: &RequestHead) -> Reply {
        let Some(called) = self.emergency_number(&head.request_uri) else {
            return Reply::Final(Answer::reject(404, "Not Found"));
        };
        if self.stopping {
            tracing::warn!(%called, "emergency INVITE while siaga stops: 503");
            return Reply::Final(Answer::reject(503, "Service Unavailable"));
        }
        let from_trunk = self.is_trunk_source(rx.source.ip());
        if !from_trunk && !self.config.calls.accept_other_sources {
            tracing::warn!(source = %rx.source, %called, "emergency INVITE from a source that is not the trunk: 403");
            return Reply::Final(Answer::reject(403, "Forbidden"));
        }
        Reply::EmergencyCall { called }
    }

    /// An INVITE to a feature code: challenged and checked (`call::feature`), then taken
    /// on its own transaction.
    fn feature_reply(
        &mut self,
        now: Now,
        rx: &Received,
        msg: &SipMessage,
        code: super::call::FeatureCode,
    ) -> Reply {
        match self.authorize_feature(now, rx, msg, code) {
            FeatureVerdict::Refuse {
                status,
                reason,
                headers,
            } => Reply::Final(Answer {
                status,
                reason,
                headers,
                to_tag: None,
            }),
            FeatureVerdict::Act { operator, code } => Reply::FeatureCall { operator, code },
        }
    }

    /// An emergency INVITE (new, to an emergency number) refused with `status`: recorded
    /// as a failed call. Not a 403 to a source outside the trunk (logged; anyone could
    /// fill the records with those) nor a 482 (a copy of a call siaga already has).
    fn record_if_emergency(
        &mut self,
        now: Now,
        msg: &SipMessage,
        head: &RequestHead,
        answer: &Answer,
    ) {
        let status = answer.status;
        if msg.method() != Some(&Method::Invite)
            || status < 300
            || matches!(status, 403 | 482)
            || head.to.tag().is_some()
        {
            return;
        }
        if let Some(called) = self.emergency_number(&head.request_uri) {
            self.record_refused_call(now, msg, called, status, &answer.reason);
        }
    }

    /// The mandatory headers of a request whose strict parse failed with `error`, read
    /// leniently (`RequestHead::parse_lenient`, RFC 3261 §8.2) when the request belongs
    /// to an emergency call ([`Engine::is_emergency_request`]); `None` otherwise or when
    /// even that fails (the 400 stays).
    fn lenient_head(
        &self,
        rx: &Received,
        msg: &SipMessage,
        error: &ParseError,
    ) -> Option<RequestHead> {
        if !self.is_emergency_request(msg) {
            return None;
        }
        let head = RequestHead::parse_lenient(msg).ok()?;
        tracing::info!(source = %rx.source, %error, "malformed From/To read leniently: the request belongs to an emergency call (RFC 3261 §8.2)");
        Some(head)
    }

    /// Whether `msg` belongs to an emergency call: an INVITE or CANCEL whose Request-URI
    /// is an emergency number (a CANCEL's is its INVITE's, RFC 3261 §9.1), or a request
    /// in one of siaga's dialogs (its Call-ID and To tag).
    fn is_emergency_request(&self, msg: &SipMessage) -> bool {
        let to_emergency = matches!(msg.method(), Some(Method::Invite | Method::Cancel))
            && msg
                .request_uri()
                .and_then(Result::ok)
                .is_some_and(|uri| self.emergency_number(&uri).is_some());
        to_emergency || dialog_key(msg).is_some_and(|k| self.calls.by_dialog.contains_key(&k))
    }

    /// A new INVITE to an emergency number from the trunk that siaga must refuse with
    /// 400 even leniently (no Call-ID, no CSeq, no usable Via or From tag: what
    /// transactions and dialogs need) is still recorded, as a call `failed` at once, so
    /// the supervisor sees that a caller tried (`record_refused_call`). Not from other
    /// sources (anyone could fill the records), nor with a To tag (not a new call).
    fn record_if_unprocessable_emergency(
        &mut self,
        now: Now,
        rx: &Received,
        msg: &SipMessage,
        error: &ParseError,
    ) {
        if msg.method() != Some(&Method::Invite)
            || !self.is_trunk_source(rx.source.ip())
            || msg.to_lenient().is_ok_and(|to| to.tag().is_some())
        {
            return;
        }
        let Some(called) = msg
            .request_uri()
            .and_then(Result::ok)
            .and_then(|uri| self.emergency_number(&uri))
        else {
            return;
        };
        self.record_refused_call(now, msg, called, 400, &format!("Bad Request - {error}"));
    }

    /// Whether `ip` is one of `trunk.sources` (IPv4-mapped IPv6 counts as IPv4).
    fn is_trunk_source(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.config
            .calls
            .trunk_sources
            .iter()
            .any(|net| net.contains(&ip))
    }

    /// The emergency number an INVITE to `uri` dialled, if it is one.
    fn emergency_number(&self, uri: &Uri) -> Option<String> {
        let called = super::call::called_number(uri)?;
        let sos = matches!(uri, Uri::Urn(urn) if urn.is_service_sos());
        (sos || self.config.calls.emergency_numbers.contains(&called)).then_some(called)
    }

    /// REGISTER to siaga: the registrar answers (RFC 3261 §10.3).
    fn register(&mut self, now: Now, rx: &Received, msg: &SipMessage) -> Answer {
        let source = RegisterSource {
            transport: rx.transport,
            source: rx.source,
            connection: rx.connection,
        };
        let outcome = self
            .registrar
            .handle_register(now, &mut self.rng, msg, source);
        Answer {
            status: outcome.status,
            reason: outcome.reason,
            headers: outcome.headers,
            to_tag: None,
        }
    }

    /// RFC 3261 §9.2: a CANCEL that matches a live INVITE transaction draws 200, with the
    /// To tag of the INVITE's response; one that matches nothing draws 481. A pending
    /// emergency call it matches is then ended with 487 (the caller hung up).
    fn answer_cancel(&mut self, msg: &SipMessage, head: &RequestHead) -> Reply {
        if let Verdict::Reject(r) = uas::inspect_request(msg, head, &self.config)
            && (r.status == 400 || r.status == 505)
        {
            return Reply::Final(Answer::from(r));
        }
        let invite = ServerKey::cancelled_invite(msg)
            .ok()
            .and_then(|k| self.server.find(&k));
        match invite {
            Some(id) => Reply::Cancel(
                Answer {
                    status: 200,
                    reason: "OK".to_owned(),
                    headers: Vec::new(),
                    to_tag: self.server.local_tag(id).map(str::to_owned),
                },
                id,
            ),
            None => Reply::Final(Answer::reject(481, "Call/Transaction Does Not Exist")),
        }
    }

    /// Counts a request whose top Via names port 0 and logs it, rate-limited: the 1st,
    /// 2nd, 4th, 8th … such request (a peer that does it once does it on every request).
    /// Its responses go to the packet's source port ([`response_target`]).
    fn note_via_port_zero(&mut self, rx: &Received, msg: &SipMessage) {
        if !msg.top_via().is_ok_and(|v| v.port == Some(0)) {
            return;
        }
        self.stats.via_port_zero += 1;
        let seen = self.stats.via_port_zero;
        if seen.is_power_of_two() {
            tracing::warn!(source = %rx.source, seen, "top Via names port 0 (RFC 3261 §18.2.2): answering at the source port");
        }
    }

    /// Answers a malformed request with 400 statelessly (RFC 4475 §3.1.2: "preferably
    /// statelessly"), never an ACK; counts it.
    fn reject_malformed(&mut self, rx: &Received, msg: &SipMessage, error: &ParseError) {
        self.stats.malformed_requests += 1;
        tracing::info!(source = %rx.source, %error, "malformed request");
        // Never answer an ACK; and without any Via no response can be formed (§8.2.6.2).
        if msg.method() == Some(&Method::Ack) || msg.header(HeaderName::Via).is_none() {
            return;
        }
        let tag = self.new_tag();
        let bytes =
            Answer::reject(400, &format!("Bad Request - {error}")).build(msg, rx.source, &tag);
        let target = response_target(rx, msg);
        self.outputs.push_back(Output::Transmit(Transmit {
            transport: target.transport,
            destination: target.destination,
            connection: target.connection,
            bytes,
        }));
    }

    /// Moves what the transactions and the registrar produced into the output queue, and
    /// lets the call model act on ended client transactions and registration changes.
    pub(crate) fn collect(&mut self, now: Now) {
        let mut changed = false;
        while let Some(change) = self.registrar.poll_change() {
            changed = true;
            match change {
                BindingChange::Registered { user } => {
                    tracing::info!(operator = %user, "operator registered");
                    self.calls.acd.registered(&user, now.mono);
                }
                BindingChange::Unregistered { user } => {
                    tracing::info!(operator = %user, "operator's last binding gone: logged out");
                    self.operator_unregistered(now, &user);
                }
                // A failed flow registered again (RFC 5626 §4.5): legs on it follow it.
                BindingChange::Reachable(_) => self.calls_follow_flows(None),
                BindingChange::Added(_) | BindingChange::Removed { .. } => {}
            }
        }
        if changed {
            self.dispatch(now);
        }
        while let Some((id, why)) = self.client.poll_ended() {
            self.on_in_dialog_ended(now, id, why == Termination::Normal);
            self.on_client_ended(now, id, why);
            self.on_probe_ended(now, id, why);
        }
        self.send_probes(now);
        // Responses first: the answer to the request that set things off (a REGISTER's
        // 200) goes out before the requests it caused (the INVITE of a waiting call to the
        // flow just registered, RFC 5626).
        while let Some(t) = self.server.poll_transmit() {
            self.outputs.push_back(Output::Transmit(t));
        }
        while let Some(t) = self.client.poll_transmit() {
            self.outputs.push_back(Output::Transmit(t));
        }
        while let Some(ended) = self.server.poll_ended() {
            if ended.why == Termination::TimedOut(TimerName::H) {
                self.stats.ack_timeouts += 1;
                tracing::warn!("no ACK for a final response within Timer H");
            }
        }
        self.agent_events(now);
    }

    /// A fresh tag (RFC 3261 §19.3: at least 32 bits of randomness).
    pub(crate) fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    /// A fresh branch with the RFC 3261 magic cookie (§8.1.1.7).
    pub(crate) fn new_branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.rng.random::<u64>())
    }
}

/// What the UAS core decided for a new request.
enum Reply {
    /// Send this final response.
    Final(Answer),
    /// A CANCEL: send this 200, then end the cancelled INVITE `TxId`'s call.
    Cancel(Answer, TxId),
    /// An emergency call to `called`: the call model takes it.
    EmergencyCall {
        /// The number dialled.
        called: String,
    },
    /// A re-INVITE or UPDATE in an answered call: the call model answers it on its
    /// transaction.
    MidCall(CallHandle, Side),
    /// An authenticated operator's feature code: the call model acts and answers on its
    /// transaction.
    FeatureCall {
        /// The operator.
        operator: String,
        /// The code dialled.
        code: super::call::FeatureCode,
    },
}

/// The dialog a request with a To tag names from siaga's side (§12.2.2).
fn dialog_key(msg: &SipMessage) -> Option<DialogKey> {
    // Lenient: the To of a request in an emergency call's dialog echoes the trunk's own
    // display name, which may not parse strictly (RFC 3261 §8.2).
    let to = msg.to_lenient().ok()?;
    Some(DialogKey {
        call_id: msg.call_id().ok()?.to_owned(),
        local_tag: to.tag()?.to_owned(),
    })
}

/// The ACK of a 300–699 response to siaga's `invite` (RFC 3261 §17.1.1.3): the INVITE's
/// Request-URI, top Via, From, Call-ID, CSeq number and Route; the response's To.
fn ack_of_failure(invite: &SipMessage, response: &SipMessage) -> Option<bytes::Bytes> {
    ack_copying(invite, response, None)
}

/// An ACK built from siaga's `invite` and the `response` it acknowledges, as
/// [`ack_of_failure`] builds it, but with `via` (a Via value with a new branch) when
/// given: the ACK of a 2xx whose dialog siaga no longer holds (§13.2.2.4: every 2xx is
/// ACKed, in a transaction of its own).
pub(crate) fn ack_copying(
    invite: &SipMessage,
    response: &SipMessage,
    via: Option<&str>,
) -> Option<bytes::Bytes> {
    use super::sip::builder::MessageBuilder;
    let uri = invite.request_uri_raw()?;
    let seq = invite.cseq().ok()?.seq;
    let b = MessageBuilder::request(&Method::Ack, uri);
    let b = match via {
        Some(via) => b.header("Via", via),
        None => b.copy(invite.header(HeaderName::Via)?),
    };
    Some(
        b.header("Max-Forwards", 70)
            .copy_all(invite, HeaderName::From)
            .copy_all(response, HeaderName::To)
            .copy_all(invite, HeaderName::CallId)
            .header("CSeq", format!("{seq} ACK"))
            .copy_all(invite, HeaderName::Route)
            .build(),
    )
}

/// A final response the engine decided on, before it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    reason: String,
    headers: Vec<(&'static str, String)>,
    /// A To tag to use instead of the transaction's own (the 200 to a CANCEL carries the
    /// INVITE's, §9.2).
    to_tag: Option<String>,
}

impl Answer {
    fn reject(status: u16, reason: &str) -> Answer {
        Answer {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
            to_tag: None,
        }
    }

    /// The response to `request` received from `source`, with To tag `tag` unless the
    /// answer carries its own.
    fn build(&self, request: &SipMessage, source: SocketAddr, tag: &str) -> bytes::Bytes {
        let tag = self.to_tag.as_deref().unwrap_or(tag);
        let mut b = response_to(request, Some(source), self.status, &self.reason, Some(tag))
            .header("Server", SERVER);
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        b.build()
    }
}

impl From<Rejection> for Answer {
    fn from(r: Rejection) -> Answer {
        Answer {
            status: r.status,
            reason: r.reason,
            headers: r.headers,
            to_tag: None,
        }
    }
}

/// The [`MergeKey`] of a request whose To has no tag (RFC 3261 §8.2.2.2). None for CANCEL:
/// it targets a transaction by its own branch (§9.2), so two CANCELs for two merged
/// INVITEs are not merged with each other.
fn merge_key(head: &RequestHead) -> Option<MergeKey> {
    if head.to.tag().is_some() || head.cseq.method == Method::Cancel {
        return None;
    }
    Some(MergeKey {
        from_tag: head.from.tag()?.to_owned(),
        call_id: head.call_id.clone(),
        cseq: head.cseq.seq,
        method: head.cseq.method.clone(),
    })
}

/// The first reason a request lacks what every request needs (§8.1.1), for the 400.
fn first_mandatory_error(msg: &SipMessage) -> ParseError {
    msg.top_via()
        .err()
        .or_else(|| msg.cseq().err())
        .or_else(|| msg.call_id().err())
        .or_else(|| msg.from().err())
        .or_else(|| msg.to().err())
        .unwrap_or(ParseError::BadStartLine)
}

/// Where the response to `msg` goes (RFC 3261 §18.2.2, RFC 3581 §4): over TCP on the
/// connection it came on; over UDP to the packet's source address (never a host named in
/// the Via), at the source port when the top Via has `rport` (or cannot be read), else at
/// the Via's port.
///
/// A Via port 0 names no port anything listens on (UDP/TCP port 0 is reserved, RFC 768,
/// RFC 9293), so §18.2.2's "port in the sent-by" cannot be used: such a Via is treated as
/// if it carried `rport` (RFC 3581 §4), the response goes to the source port. Refusing
/// it with 400 would turn away an emergency call over a header siaga can do without.
pub fn response_target(rx: &Received, msg: &SipMessage) -> ResponseTarget {
    let via = msg.top_via().ok();
    let at_via_port = via
        .as_ref()
        .map_or(rx.source, |v| match v.port_or_default() {
            0 => rx.source,
            port => SocketAddr::new(rx.source.ip(), port),
        });
    let destination = match (rx.transport, &via) {
        (Transport::Tcp, _) => rx.source,
        (Transport::Udp, Some(v)) if v.rport().is_none() => at_via_port,
        (Transport::Udp, _) => rx.source,
    };
    ResponseTarget {
        transport: rx.transport,
        destination,
        connection: rx.connection,
        reconnect: match rx.transport {
            Transport::Tcp => at_via_port,
            Transport::Udp => destination,
        },
    }
}
