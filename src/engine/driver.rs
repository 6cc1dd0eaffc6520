//! The [`Engine`] struct: parses what arrives, answers malformed requests, routes
//! requests to their server transaction or the UAS core (RFC 3261 §8.2), drops stray and
//! malformed responses, and fires transaction timers.

use super::sip::builder::response_to;
use super::sip::{HeaderName, Malformed, Method, ParseError, SipMessage};
use super::time::{MonoTime, Now};
use super::transaction::{
    ClientKey, MergeKey, ResponseTarget, ServerKey, ServerTransactions, Termination, TimerConfig,
    TimerName,
};
use super::uas::{self, Rejection, RequestHead, Verdict};
use super::{ConnectionId, Input, Output, Received, Transmit, Transport};
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

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
        }
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
}

/// Default of [`EngineConfig::max_held_bytes`]: 64 MiB of responses held by server
/// transactions for retransmission. Each holds its response until Timer J (non-INVITE) or
/// the ACK / Timer H (INVITE), 64·T1 over UDP, so a flood would otherwise grow memory with
/// rate × 32 s × size; past the bound siaga answers statelessly all but the INVITEs it
/// accepts.
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// The sans-IO SIP engine. See the module docs of [`crate::engine`] for the call order.
pub struct Engine {
    config: EngineConfig,
    rng: rand::rngs::StdRng,
    server: ServerTransactions,
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
            server: ServerTransactions::default(),
            outputs: VecDeque::new(),
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
            Input::ConnectionClosed(connection) => self.server.connection_closed(connection),
        }
        self.collect();
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.server.handle_timeout(now.mono);
        self.collect();
    }

    // Output.

    /// The next output; [`Output::Wait`] when there is nothing more to do now.
    pub fn poll_output(&mut self) -> Output {
        self.outputs.pop_front().unwrap_or(Output::Wait {
            until: self.next_deadline(),
        })
    }

    fn next_deadline(&self) -> Option<MonoTime> {
        self.server.next_deadline()
    }

    // Internals.

    fn handle_received(&mut self, now: Now, rx: Received) {
        match SipMessage::parse(rx.bytes.clone(), rx.transport) {
            Ok(msg) if msg.is_request() => {
                self.stats.requests += 1;
                self.handle_request(now, &rx, &msg);
            }
            Ok(msg) => {
                self.stats.responses += 1;
                self.handle_response(&rx, &msg);
            }
            Err(Malformed {
                error,
                partial: Some(partial),
            }) if partial.is_request() => {
                self.stats.requests += 1;
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

    /// RFC 3261 §18.1.2, §17.1.3: a response goes to the client transaction it matches;
    /// siaga sends no requests yet, so every response is a stray and is dropped.
    fn handle_response(&mut self, rx: &Received, msg: &SipMessage) {
        match ClientKey::of_response(msg) {
            Ok(_key) => {
                self.stats.stray_responses += 1;
                tracing::debug!(source = %rx.source, status = ?msg.status(), "stray response dropped");
            }
            Err(error) => {
                self.stats.malformed_responses += 1;
                tracing::debug!(source = %rx.source, %error, "malformed response dropped");
            }
        }
    }

    fn handle_request(&mut self, now: Now, rx: &Received, msg: &SipMessage) {
        let Ok(key) = ServerKey::of_request(msg) else {
            // No transaction can be identified: the request is malformed (§8.1.1).
            let error = first_mandatory_error(msg);
            return self.reject_malformed(rx, msg, &error);
        };
        let is_ack = msg.method() == Some(&Method::Ack);
        if let Some(id) = self.server.find(&key) {
            // A retransmission, or the ACK of a non-2xx final (§17.2.1, §17.2.3).
            let _verdict = if is_ack {
                self.server.handle_ack(now.mono, id)
            } else {
                // Answer on the connection this copy came on (§18.2.2).
                self.server.retarget(id, response_target(rx, msg));
                self.server.handle_request(now.mono, id)
            };
            return;
        }
        if is_ack {
            // The ACK of a 2xx for a dialog siaga does not have: never answered (§17.2.3).
            tracing::debug!(source = %rx.source, "ACK matching no transaction dropped");
            return;
        }
        let head = match RequestHead::parse(msg) {
            Ok(head) => head,
            // Stateless (RFC 4475 §3.1.2): a 400 lacking To or Call-ID may never be ACKed.
            Err(error) => return self.reject_malformed(rx, msg, &error),
        };
        let target = response_target(rx, msg);
        // Every response of this transaction carries the same To tag (§8.2.6.2).
        let tag = self.new_tag();
        let merge = merge_key(&head);
        let (answer, merge) = match merge.as_ref().and_then(|m| self.server.find_merged(m)) {
            // §8.2.2.2: the same request reached siaga again over another path.
            Some(_) => (Answer::reject(482, "Loop Detected"), None),
            None => (self.answer(msg, &head), merge),
        };
        let bytes = answer.build(msg, rx.source, &tag);
        let status = answer.status;
        // Holding responses for retransmission costs memory; past the bound, what siaga
        // refuses (and every non-INVITE) is answered statelessly. An INVITE siaga accepts
        // is an emergency call and always gets its transaction.
        let accepted_invite = msg.method() == Some(&Method::Invite) && status < 300;
        if !accepted_invite && self.server.held_bytes() >= self.config.max_held_bytes {
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
    }

    /// The final response to a new, well-formed request (no dialogs or targets exist yet).
    fn answer(&mut self, msg: &SipMessage, head: &RequestHead) -> Answer {
        if msg.method() == Some(&Method::Cancel) {
            return self.answer_cancel(msg, head);
        }
        match uas::inspect_request(msg, head, &self.config) {
            Verdict::Reject(r) => Answer::from(r),
            Verdict::ToSiaga if msg.method() == Some(&Method::Options) => Answer {
                status: 200,
                reason: "OK".to_owned(),
                headers: uas::capabilities(),
                to_tag: None,
            },
            Verdict::ToSiaga | Verdict::ToTarget => match msg.method() {
                Some(Method::Bye) => Answer::reject(481, "Call/Transaction Does Not Exist"),
                _ => Answer::reject(404, "Not Found"),
            },
        }
    }

    /// RFC 3261 §9.2: a CANCEL that matches a live INVITE transaction draws 200, with the
    /// To tag of the INVITE's response; one that matches nothing draws 481. (No INVITE is
    /// pending yet — each is answered at once — so none is ended with 487 here.)
    fn answer_cancel(&mut self, msg: &SipMessage, head: &RequestHead) -> Answer {
        if let Verdict::Reject(r) = uas::inspect_request(msg, head, &self.config) {
            if r.status == 400 || r.status == 505 {
                return Answer::from(r);
            }
        }
        let invite = ServerKey::cancelled_invite(msg)
            .ok()
            .and_then(|k| self.server.find(&k));
        match invite {
            Some(id) => Answer {
                status: 200,
                reason: "OK".to_owned(),
                headers: Vec::new(),
                to_tag: self.server.local_tag(id).map(str::to_owned),
            },
            None => Answer::reject(481, "Call/Transaction Does Not Exist"),
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

    /// Moves what the transactions produced into the output queue.
    fn collect(&mut self) {
        while let Some(t) = self.server.poll_transmit() {
            self.outputs.push_back(Output::Transmit(t));
        }
        while let Some(ended) = self.server.poll_ended() {
            if ended.why == Termination::TimedOut(TimerName::H) {
                self.stats.ack_timeouts += 1;
                tracing::warn!("no ACK for a final response within Timer H");
            }
        }
    }

    /// A fresh To tag (RFC 3261 §19.3: at least 32 bits of randomness).
    fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }
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
pub fn response_target(rx: &Received, msg: &SipMessage) -> ResponseTarget {
    let via = msg.top_via().ok();
    let at_via_port = via.as_ref().map_or(rx.source, |v| {
        SocketAddr::new(rx.source.ip(), v.port_or_default())
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
