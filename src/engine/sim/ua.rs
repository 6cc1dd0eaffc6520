//! The peers' own SIP transaction layer: compact client and server transactions (RFC 3261
//! §17.1.1, §17.1.2, §17.2.1, §17.2.2, with RFC 6026's Accepted states) and the UAS core's
//! 2xx retransmission (§13.3.1.4). Written apart from siaga's `engine::transaction`, so a
//! mistake there is not mirrored here and cancelled out; only siaga's message parser and
//! builder are shared.
//!
//! A [`Ua`] is one peer's stack at one address. Its TU (the trunk or a phone) feeds it
//! what arrives ([`Ua::receive`]) and the passing of time ([`Ua::on_timer`]), sends
//! requests ([`Ua::send_request`]) and responses ([`Ua::respond`]), and drains
//! [`Ua::out`]. All times are ms of virtual time.

use crate::engine::Transport;
use crate::engine::sip::builder::{MessageBuilder, response_to};
use crate::engine::sip::{HeaderName, Method, SipMessage};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A transaction's key: its branch and its CSeq method (a CANCEL shares its INVITE's
/// branch, §9.1).
type Key = (String, String);

fn key(branch: String, method: &Method) -> Key {
    (branch, method.as_str().to_owned())
}

/// T1, T2, T4 in ms (RFC 3261 §17.1.1.1).
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// RTT estimate.
    pub t1: u64,
    /// Longest retransmit interval of non-INVITE requests and INVITE responses.
    pub t2: u64,
    /// Longest a message stays in the network.
    pub t4: u64,
}

impl Timers {
    /// 64·T1: Timers B, F, H, J, L, M and the 2xx give-up (§13.3.1.4).
    pub fn t64(&self) -> u64 {
        64 * self.t1
    }
}

/// What the stack passes up to its TU.
#[derive(Debug)]
pub enum UaEvent {
    /// A request that is not a retransmission (ACKs of 2xx included).
    Request(SipMessage),
    /// A response the TU must see: the 1xx and the final of a client transaction, and
    /// every 2xx of an INVITE (RFC 6026 §7.2).
    Response(SipMessage),
    /// Timer B or F: no final response to the request with this branch.
    TimedOut {
        /// The request's method.
        method: Method,
        /// Its Call-ID.
        call_id: String,
    },
    /// The 2xx to the INVITE of this Call-ID was resent for 64·T1 without an ACK
    /// (§13.3.1.4: the TU should end the session with BYE).
    NoAck {
        /// The Call-ID.
        call_id: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientState {
    /// Calling (INVITE) or Trying (non-INVITE).
    Trying,
    Proceeding,
    Completed,
    /// RFC 6026 §7.2: an INVITE got a 2xx.
    Accepted,
}

#[derive(Debug)]
struct ClientTx {
    method: Method,
    call_id: String,
    request: Bytes,
    to: SocketAddr,
    state: ClientState,
    resend_at: Option<u64>,
    interval: u64,
    give_up_at: Option<u64>,
    end_at: Option<u64>,
    ack: Option<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
struct ServerTx {
    to: SocketAddr,
    last: Option<Bytes>,
    state: ServerState,
    resend_at: Option<u64>,
    interval: u64,
    give_up_at: Option<u64>,
    end_at: Option<u64>,
}

/// A 2xx the UAS core resends until its ACK (§13.3.1.4).
#[derive(Debug)]
struct OkResend {
    bytes: Bytes,
    to: SocketAddr,
    resend_at: u64,
    interval: u64,
    give_up_at: u64,
}

/// One peer's transaction layer.
pub struct Ua {
    /// The peer's address.
    pub addr: SocketAddr,
    /// A short name for traces and generated identifiers.
    pub name: String,
    timers: Timers,
    clients: BTreeMap<Key, ClientTx>,
    servers: BTreeMap<Key, ServerTx>,
    oks: BTreeMap<String, OkResend>,
    next_id: u64,
    /// Datagrams to send: destination and bytes.
    pub out: Vec<(SocketAddr, Bytes)>,
}

impl Ua {
    /// A stack at `addr`.
    pub fn new(addr: SocketAddr, name: &str, timers: Timers) -> Ua {
        Ua {
            addr,
            name: name.to_owned(),
            timers,
            clients: BTreeMap::new(),
            servers: BTreeMap::new(),
            oks: BTreeMap::new(),
            next_id: 0,
            out: Vec::new(),
        }
    }

    /// The timers in force.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// A fresh identifier unique to this peer (for tags, branches, Call-IDs).
    pub fn fresh(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{}-{}", self.name, self.next_id)
    }

    /// A fresh RFC 3261 branch (§8.1.1.7).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.fresh("b"))
    }

    /// Whether no transaction or 2xx retransmission is live.
    pub fn is_idle(&self) -> bool {
        self.clients.is_empty() && self.servers.is_empty() && self.oks.is_empty()
    }

    /// Starts a client transaction for `request` (built with `branch` in its top Via)
    /// and sends it to `to`. ACK is sent once, without a transaction.
    pub fn send_request(
        &mut self,
        now: u64,
        to: SocketAddr,
        method: Method,
        branch: String,
        call_id: &str,
        request: Bytes,
    ) {
        self.out.push((to, request.clone()));
        if method == Method::Ack {
            return;
        }
        let t = self.timers;
        self.clients.insert(
            key(branch, &method),
            ClientTx {
                method,
                call_id: call_id.to_owned(),
                request,
                to,
                state: ClientState::Trying,
                resend_at: Some(now + t.t1),
                interval: t.t1,
                give_up_at: Some(now + t.t64()),
                end_at: None,
                ack: None,
            },
        );
    }

    /// Forgets the client transaction of `branch` and `method` (RFC 3261 §9.1: the INVITE
    /// counts as cancelled 64·T1 after its CANCEL).
    pub fn abandon(&mut self, branch: &str, method: Method) {
        self.clients.remove(&key(branch.to_owned(), &method));
    }

    /// Whether the INVITE server transaction of `branch` lives, and if so whether it sent
    /// a final response (RFC 3261 §9.2 decides a CANCEL on this).
    pub fn invite_answered(&self, branch: &str) -> Option<bool> {
        self.servers
            .get(&key(branch.to_owned(), &Method::Invite))
            .map(|s| s.state != ServerState::Proceeding)
    }

    /// Forgets the server transaction of `request` (a peer that never answers it).
    pub fn forget_server(&mut self, request: &SipMessage) {
        if let (Some(branch), Ok(cseq)) = (branch_of(request), request.cseq()) {
            self.servers.remove(&key(branch, &cseq.method));
        }
    }

    /// A message arrived from `from`: what the TU must see of it, if anything.
    pub fn receive(&mut self, now: u64, from: SocketAddr, msg: SipMessage) -> Option<UaEvent> {
        let branch = branch_of(&msg)?;
        let method = msg.cseq().ok()?.method;
        match msg.status() {
            Some(status) => self.on_response(now, branch, method, status, msg),
            None => self.on_request(now, from, branch, method, msg),
        }
    }

    fn on_response(
        &mut self,
        now: u64,
        branch: String,
        method: Method,
        status: u16,
        msg: SipMessage,
    ) -> Option<UaEvent> {
        let t = self.timers;
        let tx = self.clients.get_mut(&key(branch, &method))?;
        use ClientState::*;
        let pass = match (tx.method == Method::Invite, status, tx.state) {
            // INVITE (§17.1.1.2, RFC 6026 §7.2).
            (true, 100..=199, Trying | Proceeding) => {
                tx.state = Proceeding;
                tx.resend_at = None;
                tx.give_up_at = None;
                true
            }
            (true, 200..=299, Trying | Proceeding) => {
                tx.state = Accepted;
                tx.resend_at = None;
                tx.give_up_at = None;
                tx.end_at = Some(now + t.t64());
                true
            }
            (true, 200..=299, Accepted) => true,
            (true, 300.., Trying | Proceeding) => {
                let ack = ack_of_failure(&tx.request, &msg)?;
                self.out.push((tx.to, ack.clone()));
                tx.ack = Some(ack);
                tx.state = Completed;
                tx.resend_at = None;
                tx.give_up_at = None;
                tx.end_at = Some(now + t.t64().max(32_000));
                true
            }
            (true, 300.., Completed) => {
                if let Some(ack) = &tx.ack {
                    self.out.push((tx.to, ack.clone()));
                }
                false
            }
            // Non-INVITE (§17.1.2.2).
            (false, 100..=199, Trying) => {
                tx.state = Proceeding;
                true
            }
            (false, 200.., Trying | Proceeding) => {
                tx.state = Completed;
                tx.resend_at = None;
                tx.give_up_at = None;
                tx.end_at = Some(now + t.t4);
                true
            }
            _ => false,
        };
        pass.then_some(UaEvent::Response(msg))
    }

    fn on_request(
        &mut self,
        now: u64,
        from: SocketAddr,
        branch: String,
        method: Method,
        msg: SipMessage,
    ) -> Option<UaEvent> {
        let t = self.timers;
        if method == Method::Ack {
            // The ACK of a 300–699 shares the INVITE's branch (§17.2.1); any other ACK is
            // the TU's (the ACK of a 2xx, §13.3.1.4), which stops the 2xx retransmission.
            if let Some(tx) = self.servers.get_mut(&key(branch, &Method::Invite))
                && tx.state == ServerState::Completed
            {
                tx.state = ServerState::Confirmed;
                tx.resend_at = None;
                tx.give_up_at = None;
                tx.end_at = Some(now + t.t4);
                return None;
            }
            if let Ok(call_id) = msg.call_id() {
                self.oks.remove(call_id);
            }
            return Some(UaEvent::Request(msg));
        }
        if let Some(tx) = self.servers.get(&key(branch.clone(), &method)) {
            // A retransmission: the last response again, if the state still sends one.
            if let (Some(last), ServerState::Proceeding | ServerState::Completed) =
                (&tx.last, tx.state)
            {
                self.out.push((tx.to, last.clone()));
            }
            return None;
        }
        self.servers.insert(
            key(branch, &method),
            ServerTx {
                to: from,
                last: None,
                state: ServerState::Proceeding,
                resend_at: None,
                interval: t.t1,
                give_up_at: None,
                end_at: None,
            },
        );
        Some(UaEvent::Request(msg))
    }

    /// Sends `response` (built for `request`, status `status`) through the request's
    /// server transaction, which keeps it for retransmission as §17.2 says. A 2xx to an
    /// INVITE is also resent by the core until its ACK (§13.3.1.4). A response for a
    /// transaction that is gone is sent once.
    pub fn respond(&mut self, now: u64, request: &SipMessage, status: u16, response: Bytes) {
        let t = self.timers;
        let k = branch_of(request)
            .zip(request.cseq().ok())
            .map(|(branch, cseq)| key(branch, &cseq.method));
        let Some(tx) = k.and_then(|k| self.servers.get_mut(&k)) else {
            return;
        };
        self.out.push((tx.to, response.clone()));
        let invite = request.method() == Some(&Method::Invite);
        match (invite, status) {
            (_, 100..=199) => tx.last = Some(response),
            (true, 200..=299) => {
                tx.state = ServerState::Accepted;
                tx.last = None;
                tx.end_at = Some(now + t.t64());
                if let Ok(call_id) = request.call_id() {
                    self.oks.insert(
                        call_id.to_owned(),
                        OkResend {
                            bytes: response,
                            to: tx.to,
                            resend_at: now + t.t1,
                            interval: t.t1,
                            give_up_at: now + t.t64(),
                        },
                    );
                }
            }
            (true, _) => {
                tx.state = ServerState::Completed;
                tx.last = Some(response);
                tx.resend_at = Some(now + t.t1);
                tx.give_up_at = Some(now + t.t64());
            }
            (false, _) => {
                tx.state = ServerState::Completed;
                tx.last = Some(response);
                tx.end_at = Some(now + t.t64());
            }
        }
    }

    /// Answers `request` with `status` (200, 405 or 481) and a bare response (To tag: the
    /// peer's name, when the request has none).
    pub fn answer(&mut self, now: u64, request: &SipMessage, status: u16) {
        let reason = match status {
            200 => "OK",
            405 => "Method Not Allowed",
            _ => "Call/Transaction Does Not Exist",
        };
        let bytes = reply(request, status, reason, &self.name.clone()).build();
        self.respond(now, request, status, bytes);
    }

    /// The earliest timer of any transaction.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |at: Option<u64>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for c in self.clients.values() {
            consider(c.resend_at);
            consider(c.give_up_at);
            consider(c.end_at);
        }
        for s in self.servers.values() {
            consider(s.resend_at);
            consider(s.give_up_at);
            consider(s.end_at);
        }
        for o in self.oks.values() {
            consider(Some(o.resend_at.min(o.give_up_at)));
        }
        next
    }

    /// Fires every timer due at or before `now`; returns what the TU must hear.
    pub fn on_timer(&mut self, now: u64) -> Vec<UaEvent> {
        let t = self.timers;
        let due = |at: Option<u64>| at.is_some_and(|at| at <= now);
        let mut events = Vec::new();
        self.clients.retain(|_, tx| {
            if due(tx.give_up_at) {
                events.push(UaEvent::TimedOut {
                    method: tx.method.clone(),
                    call_id: tx.call_id.clone(),
                });
                return false;
            }
            if due(tx.end_at) {
                return false;
            }
            if due(tx.resend_at) {
                // Timer A doubles without a cap; E doubles up to T2 (§17.1.2.2), and is T2
                // once a provisional response came.
                tx.interval = match (tx.method == Method::Invite, tx.state) {
                    (true, _) => tx.interval * 2,
                    (false, ClientState::Proceeding) => t.t2,
                    (false, _) => (tx.interval * 2).min(t.t2),
                };
                self.out.push((tx.to, tx.request.clone()));
                tx.resend_at = Some(now + tx.interval);
            }
            true
        });
        self.servers.retain(|_, tx| {
            if due(tx.give_up_at) || due(tx.end_at) {
                return false;
            }
            if due(tx.resend_at) {
                // Timer G: the 300–699 again, doubling up to T2 (§17.2.1).
                if let Some(last) = &tx.last {
                    self.out.push((tx.to, last.clone()));
                }
                tx.interval = (tx.interval * 2).min(t.t2);
                tx.resend_at = Some(now + tx.interval);
            }
            true
        });
        self.oks.retain(|call_id, ok| {
            if ok.give_up_at <= now {
                events.push(UaEvent::NoAck {
                    call_id: call_id.clone(),
                });
                return false;
            }
            if ok.resend_at <= now {
                self.out.push((ok.to, ok.bytes.clone()));
                ok.interval = (ok.interval * 2).min(t.t2);
                ok.resend_at = now + ok.interval;
            }
            true
        });
        events
    }
}

/// The ACK of a 300–699 response (§17.1.1.3): the INVITE's Request-URI, top Via, From,
/// Call-ID, CSeq number and Route, the response's To.
fn ack_of_failure(invite: &Bytes, response: &SipMessage) -> Option<Bytes> {
    let invite = SipMessage::parse(invite.clone(), Transport::Udp).ok()?;
    let seq = invite.cseq().ok()?.seq;
    Some(
        MessageBuilder::request(&Method::Ack, invite.request_uri_raw()?)
            .copy(invite.header(HeaderName::Via)?)
            .header("Max-Forwards", 70)
            .copy_all(&invite, HeaderName::From)
            .copy_all(response, HeaderName::To)
            .copy_all(&invite, HeaderName::CallId)
            .header("CSeq", format!("{seq} ACK"))
            .copy_all(&invite, HeaderName::Route)
            .build(),
    )
}

/// The branch of the top Via (§8.1.1.7), found by a plain scan of the first Via value:
/// what the sim sends writes it as `;branch=…`, and a full Via parse costs more than a
/// peer's whole step in a debug build.
pub fn branch_of(msg: &SipMessage) -> Option<String> {
    let via = msg.header(HeaderName::Via)?.value_str().ok()?;
    let start = via.find(";branch=")? + ";branch=".len();
    let rest = &via[start..];
    let end = rest
        .find(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// A response to `request` with To tag `tag` (when the request's To has none), as
/// MessageBuilder for further headers.
pub fn reply(request: &SipMessage, status: u16, reason: &str, tag: &str) -> MessageBuilder {
    response_to(request, None, status, reason, Some(tag))
}

/// The value of the first `name` header of `msg`, as text (empty when absent).
pub fn header(msg: &SipMessage, name: HeaderName) -> String {
    msg.header(name)
        .map(|h| String::from_utf8_lossy(&h.value()).into_owned())
        .unwrap_or_default()
}

/// The URI of the first Contact of `msg`.
pub fn contact_uri(msg: &SipMessage) -> Option<String> {
    match msg.contacts().ok()? {
        crate::engine::sip::view::Contacts::List(list) => list.first().map(|c| c.uri.to_string()),
        crate::engine::sip::view::Contacts::Wildcard => None,
    }
}

/// The RTP address an SDP body gives (its `c=IN IP4` and first `m=audio` port).
pub fn sdp_address(body: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(body).ok()?;
    let ip = text
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

/// An SDP body offering or answering PCMA and telephone-event at `rtp`.
pub fn sdp(origin: &str, rtp: SocketAddr) -> Bytes {
    Bytes::from(format!(
        "v=0\r\no={origin} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        ip = rtp.ip(),
        port = rtp.port()
    ))
}
