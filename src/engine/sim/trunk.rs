//! The simulated trunk: a telco gateway placing emergency INVITEs to siaga as a UAC (RFC
//! 3261 §13.2), one [`TrunkCall`] per caller. A caller waits, may hang up before an
//! answer (CANCEL, sent only after a provisional response, §9.1), talks for a while once
//! answered (ACK of every 2xx, §13.2.2.4) and hangs up with BYE (§15), or is hung up on.
//! Each call keeps what its caller saw, for the checks.

use super::Ctx;
use super::ua::{self, Timers, Ua, UaEvent};
use crate::engine::sip::builder::MessageBuilder;
use crate::engine::sip::{HeaderName, Method, SipMessage};
use bytes::Bytes;
use std::net::SocketAddr;

/// What a caller does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerPlan {
    /// Waits (up to [`PATIENCE_MS`]), then talks for `talk_ms` and hangs up.
    Talk {
        /// How long the caller talks once answered, in ms.
        talk_ms: u64,
    },
    /// Hangs up after `after_ms` if not answered by then (CANCEL); if answered first,
    /// talks for `talk_ms`.
    Abandon {
        /// Patience, in ms from the INVITE.
        after_ms: u64,
        /// How long the caller talks once answered, in ms.
        talk_ms: u64,
    },
}

/// How long a caller who means to wait waits for an answer before hanging up, in ms.
pub const PATIENCE_MS: u64 = 300_000;

impl CallerPlan {
    /// How long the caller waits for an answer, in ms from the INVITE.
    fn patience_ms(self) -> u64 {
        match self {
            CallerPlan::Talk { .. } => PATIENCE_MS,
            CallerPlan::Abandon { after_ms, .. } => after_ms,
        }
    }

    /// How long the caller talks once answered, in ms.
    fn talk_ms(self) -> u64 {
        match self {
            CallerPlan::Talk { talk_ms } | CallerPlan::Abandon { talk_ms, .. } => talk_ms,
        }
    }
}

/// One call as the scenario defines it.
#[derive(Clone, Copy, Debug)]
pub struct CallSpec {
    /// When the INVITE is sent, in ms.
    pub start_ms: u64,
    /// The caller's behaviour.
    pub plan: CallerPlan,
    /// An INVITE without SDP (RFC 3261 §13.2.1): the offer comes in the 2xx, the answer
    /// in the ACK.
    pub late_offer: bool,
}

/// How a trunk call ended, as the caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrunkEnd {
    /// Answered; then the caller hung up (`by_caller`) or was hung up on.
    Completed {
        /// Whether the caller sent the BYE (else siaga did).
        by_caller: bool,
    },
    /// A final failure response to the INVITE (487 after a CANCEL).
    Refused(u16),
    /// Timer B: no response at all within 64·T1 (§17.1.1.2).
    NoAnswer,
    /// §9.1: no final response within 64·T1 of the CANCEL; the INVITE counts as cancelled.
    CancelExpired,
}

/// The caller's dialog with siaga, once a 2xx came (§12.1.2).
#[derive(Clone, Debug)]
struct Dialog {
    to: String,
    remote_target: String,
}

/// One caller.
#[derive(Debug)]
pub struct TrunkCall {
    /// The scenario's definition.
    pub spec: CallSpec,
    /// The INVITE's Call-ID.
    pub call_id: String,
    /// The caller's number (From and P-Asserted-Identity): unique per call, so operator
    /// legs name their call by it.
    pub caller: String,
    /// The caller's RTP address, written in its SDP.
    pub rtp: SocketAddr,
    from_tag: String,
    invite: Option<(String, Bytes)>,
    /// A provisional response arrived.
    pub got_1xx: bool,
    /// When the first 2xx arrived.
    pub answered_at: Option<u64>,
    /// The RTP address siaga's 2xx gave.
    pub answer_rtp: Option<SocketAddr>,
    /// The final failure status received.
    pub final_status: Option<u16>,
    /// When the CANCEL was sent.
    pub cancel_sent_at: Option<u64>,
    want_cancel: bool,
    dialog: Option<Dialog>,
    ack: Option<Bytes>,
    hangup_at: Option<u64>,
    /// When the caller's BYE was sent.
    pub bye_sent_at: Option<u64>,
    /// When siaga's BYE arrived (the first one).
    pub bye_received_at: Option<u64>,
    /// How the call ended; `None` while it goes on.
    pub end: Option<TrunkEnd>,
}

/// The trunk: every caller, at one address.
pub struct Trunk {
    /// Its stack.
    pub ua: Ua,
    /// Its calls, in start order.
    pub calls: Vec<TrunkCall>,
    siaga: SocketAddr,
}

impl Trunk {
    /// A trunk at `addr` that will place `calls` to siaga at `siaga`.
    pub fn new(addr: SocketAddr, siaga: SocketAddr, timers: Timers, calls: &[CallSpec]) -> Trunk {
        let calls = calls
            .iter()
            .enumerate()
            .map(|(n, spec)| TrunkCall {
                spec: *spec,
                call_id: format!("call{n}@trunk"),
                caller: format!("+62811{n:05}"),
                rtp: SocketAddr::new(addr.ip(), 20000 + 2 * n as u16),
                from_tag: format!("caller{n}"),
                invite: None,
                got_1xx: false,
                answered_at: None,
                answer_rtp: None,
                final_status: None,
                cancel_sent_at: None,
                want_cancel: false,
                dialog: None,
                ack: None,
                hangup_at: None,
                bye_sent_at: None,
                bye_received_at: None,
                end: None,
            })
            .collect();
        Trunk {
            ua: Ua::new(addr, "trunk", timers),
            calls,
            siaga,
        }
    }

    /// Whether every call ended and the stack is idle.
    pub fn is_done(&self) -> bool {
        self.calls.iter().all(|c| c.end.is_some()) && self.ua.is_idle()
    }

    /// The earliest time the trunk must act.
    pub fn next_deadline(&self) -> Option<u64> {
        let t64 = self.ua.timers().t64();
        let calls = self.calls.iter().flat_map(|c| {
            let start = c.invite.is_none().then_some(c.spec.start_ms);
            let abandon = (c.invite.is_some() && !c.want_cancel && c.answered_at.is_none())
                .then(|| c.spec.start_ms + c.spec.plan.patience_ms());
            let cancel_expiry = c
                .cancel_sent_at
                .filter(|_| c.end.is_none() && c.answered_at.is_none())
                .map(|at| at + t64);
            let hangup = c
                .hangup_at
                .filter(|_| c.bye_sent_at.is_none() && c.end.is_none());
            [start, abandon, cancel_expiry, hangup]
        });
        calls.flatten().chain(self.ua.next_deadline()).min()
    }

    /// Acts on everything due at `now`.
    pub fn on_timer(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        for event in self.ua.on_timer(now) {
            self.on_event(ctx, event);
        }
        let t64 = self.ua.timers().t64();
        for i in 0..self.calls.len() {
            let c = &self.calls[i];
            if c.invite.is_none() && c.spec.start_ms <= now {
                self.send_invite(ctx, i);
                continue;
            }
            let c = &mut self.calls[i];
            if c.invite.is_some()
                && !c.want_cancel
                && c.answered_at.is_none()
                && c.spec.start_ms + c.spec.plan.patience_ms() <= now
            {
                c.want_cancel = true;
                ctx.trace(|| format!("trunk: caller of {} hangs up before an answer", c.call_id));
                if c.end.is_none() && c.got_1xx {
                    self.send_cancel(ctx, i);
                }
            }
            let c = &mut self.calls[i];
            if let Some(at) = c.cancel_sent_at
                && c.end.is_none()
                && c.answered_at.is_none()
                && at + t64 <= now
            {
                // RFC 3261 §9.1: no final response within 64·T1 of the CANCEL.
                c.end = Some(TrunkEnd::CancelExpired);
                if let Some((branch, _)) = &c.invite {
                    self.ua.abandon(branch, Method::Invite);
                }
                ctx.trace(|| format!("trunk: {} counts as cancelled (64*T1)", c.call_id));
            }
            let c = &self.calls[i];
            if c.hangup_at.is_some_and(|at| at <= now) && c.bye_sent_at.is_none() && c.end.is_none()
            {
                self.send_bye(ctx, i);
            }
        }
    }

    /// A datagram from siaga arrived.
    pub fn receive(&mut self, ctx: &mut Ctx, from: SocketAddr, msg: SipMessage) {
        if let Some(event) = self.ua.receive(ctx.now, from, msg) {
            self.on_event(ctx, event);
        }
    }

    fn find(&self, call_id: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.call_id == call_id)
    }

    fn on_event(&mut self, ctx: &mut Ctx, event: UaEvent) {
        match event {
            UaEvent::Response(msg) => self.on_response(ctx, &msg),
            UaEvent::Request(msg) => self.on_request(ctx, &msg),
            UaEvent::TimedOut { method, call_id } => {
                let Some(i) = self.find(&call_id) else { return };
                let c = &mut self.calls[i];
                match method {
                    Method::Invite if c.end.is_none() => {
                        c.end = Some(TrunkEnd::NoAnswer);
                        ctx.trace(|| format!("trunk: {call_id} gives up: Timer B"));
                    }
                    Method::Bye if c.end.is_none() => {
                        c.end = Some(TrunkEnd::Completed { by_caller: true });
                        ctx.trace(|| format!("trunk: BYE of {call_id} timed out (Timer F)"));
                    }
                    _ => {}
                }
            }
            UaEvent::NoAck { .. } => {}
        }
    }

    fn on_response(&mut self, ctx: &mut Ctx, msg: &SipMessage) {
        let (Ok(call_id), Some(status), Ok(cseq)) = (msg.call_id(), msg.status(), msg.cseq())
        else {
            return;
        };
        let Some(i) = self.find(call_id) else { return };
        match (cseq.method, status) {
            (Method::Invite, 100..=199) => {
                let c = &mut self.calls[i];
                if !std::mem::replace(&mut c.got_1xx, true) && c.want_cancel && c.end.is_none() {
                    self.send_cancel(ctx, i);
                }
            }
            (Method::Invite, 200..=299) => self.on_2xx(ctx, i, msg),
            (Method::Invite, _) => {
                let c = &mut self.calls[i];
                c.final_status = Some(status);
                if c.end.is_none() {
                    c.end = Some(TrunkEnd::Refused(status));
                }
            }
            (Method::Bye, _) => {
                let c = &mut self.calls[i];
                if c.end.is_none() {
                    c.end = Some(TrunkEnd::Completed { by_caller: true });
                }
            }
            _ => {}
        }
    }

    /// A 2xx to the INVITE: ACK it (every copy, §13.2.2.4); the first starts the talk,
    /// or, when the caller already hung up (CANCEL crossed the answer), the BYE at once.
    fn on_2xx(&mut self, ctx: &mut Ctx, i: usize, msg: &SipMessage) {
        let now = ctx.now;
        let c = &mut self.calls[i];
        if let Some(ack) = &c.ack {
            self.ua.out.push((self.siaga, ack.clone()));
            return;
        }
        let to = ua::header(msg, HeaderName::To);
        let remote_target = ua::contact_uri(msg).unwrap_or_else(|| format!("sip:{}", self.siaga));
        c.answered_at = Some(now);
        c.answer_rtp = ua::sdp_address(msg.body());
        let dialog = Dialog { to, remote_target };
        let branch = self.ua.branch();
        let mut ack = self.in_dialog(i, &dialog, Method::Ack, 1, &branch);
        let c = &mut self.calls[i];
        if c.spec.late_offer {
            ack = ack.body("application/sdp", ua::sdp("caller", c.rtp));
        }
        let ack = ack.build();
        c.ack = Some(ack.clone());
        c.dialog = Some(dialog);
        let call_id = c.call_id.clone();
        self.ua
            .send_request(now, self.siaga, Method::Ack, branch, &call_id, ack);
        let c = &mut self.calls[i];
        let talk_ms = c.spec.plan.talk_ms();
        if c.want_cancel {
            ctx.trace(|| format!("trunk: {call_id} answered after the CANCEL: BYE"));
            self.send_bye(ctx, i);
        } else {
            c.hangup_at = Some(now + talk_ms);
            ctx.trace(|| format!("trunk: {call_id} answered; caller talks {talk_ms} ms"));
        }
    }

    fn on_request(&mut self, ctx: &mut Ctx, msg: &SipMessage) {
        let now = ctx.now;
        let Some(method) = msg.method() else { return };
        let call = msg.call_id().ok().and_then(|id| self.find(id));
        match method {
            Method::Ack => {}
            Method::Bye => {
                // Only a confirmed dialog (its To tag ours, its From tag the 2xx's) is
                // ended by BYE; anything else draws 481 (§15.1.2).
                let ours = call.filter(|&i| {
                    let c = &self.calls[i];
                    let from_tag = msg.from().ok().and_then(|f| f.tag().map(str::to_owned));
                    let to_tag = msg.to().ok().and_then(|t| t.tag().map(str::to_owned));
                    let dialog_tag = c.dialog.as_ref().and_then(|d| {
                        crate::engine::sip::view::NameAddr::parse(&d.to, HeaderName::To)
                            .ok()
                            .and_then(|t| t.tag().map(str::to_owned))
                    });
                    to_tag.as_deref() == Some(c.from_tag.as_str())
                        && dialog_tag.is_some()
                        && from_tag == dialog_tag
                });
                let status = match ours {
                    Some(i) => {
                        let c = &mut self.calls[i];
                        c.bye_received_at.get_or_insert(now);
                        if c.end.is_none() {
                            c.end = Some(TrunkEnd::Completed { by_caller: false });
                        }
                        200
                    }
                    None => 481,
                };
                self.ua.answer(now, msg, status);
            }
            _ => self.ua.answer(now, msg, 405),
        }
    }

    fn send_invite(&mut self, ctx: &mut Ctx, i: usize) {
        let siaga = self.siaga;
        let trunk = self.ua.addr;
        let branch = self.ua.branch();
        let c = &self.calls[i];
        let mut b = MessageBuilder::request(&Method::Invite, format!("sip:112@{siaga}"))
            .header("Via", format!("SIP/2.0/UDP {trunk};branch={branch};rport"))
            .header("Max-Forwards", 70)
            .header(
                "From",
                format!("<sip:{}@trunk.test>;tag={}", c.caller, c.from_tag),
            )
            .header("To", format!("<sip:112@{siaga}>"))
            .header("Call-ID", &c.call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", format!("<sip:gw@{trunk}>"))
            .header("P-Asserted-Identity", format!("<tel:{}>", c.caller));
        if !c.spec.late_offer {
            b = b.body("application/sdp", ua::sdp("caller", c.rtp));
        }
        let bytes = b.build();
        let call_id = c.call_id.clone();
        ctx.trace(|| format!("trunk: {call_id} dials 112"));
        self.calls[i].invite = Some((branch.clone(), bytes.clone()));
        self.ua
            .send_request(ctx.now, siaga, Method::Invite, branch, &call_id, bytes);
    }

    /// The CANCEL of the call's INVITE (§9.1): its Request-URI, top Via, From, To, Call-ID
    /// and CSeq number.
    fn send_cancel(&mut self, ctx: &mut Ctx, i: usize) {
        let c = &mut self.calls[i];
        let Some((branch, invite)) = &c.invite else {
            return;
        };
        if c.cancel_sent_at.is_some() {
            return;
        }
        let Ok(invite) = SipMessage::parse(invite.clone(), crate::engine::Transport::Udp) else {
            return;
        };
        let Some(via) = invite.header(HeaderName::Via) else {
            return;
        };
        let bytes =
            MessageBuilder::request(&Method::Cancel, invite.request_uri_raw().unwrap_or(""))
                .copy(via)
                .header("Max-Forwards", 70)
                .copy_all(&invite, HeaderName::From)
                .copy_all(&invite, HeaderName::To)
                .copy_all(&invite, HeaderName::CallId)
                .header("CSeq", "1 CANCEL")
                .build();
        c.cancel_sent_at = Some(ctx.now);
        let (branch, call_id) = (branch.clone(), c.call_id.clone());
        self.ua
            .send_request(ctx.now, self.siaga, Method::Cancel, branch, &call_id, bytes);
    }

    fn send_bye(&mut self, ctx: &mut Ctx, i: usize) {
        let Some(dialog) = self.calls[i].dialog.clone() else {
            return;
        };
        let branch = self.ua.branch();
        let bytes = self.in_dialog(i, &dialog, Method::Bye, 2, &branch).build();
        let c = &mut self.calls[i];
        c.bye_sent_at = Some(ctx.now);
        let call_id = c.call_id.clone();
        ctx.trace(|| format!("trunk: caller of {call_id} hangs up (BYE)"));
        self.ua
            .send_request(ctx.now, self.siaga, Method::Bye, branch, &call_id, bytes);
    }

    /// A request in the call's dialog (§12.2.1.1): Request-URI the remote target, From
    /// the caller's, To siaga's with its tag.
    fn in_dialog(
        &self,
        i: usize,
        d: &Dialog,
        method: Method,
        seq: u32,
        branch: &str,
    ) -> MessageBuilder {
        let c = &self.calls[i];
        MessageBuilder::request(&method, &d.remote_target)
            .header(
                "Via",
                format!("SIP/2.0/UDP {};branch={branch};rport", self.ua.addr),
            )
            .header("Max-Forwards", 70)
            .header(
                "From",
                format!("<sip:{}@trunk.test>;tag={}", c.caller, c.from_tag),
            )
            .header("To", &d.to)
            .header("Call-ID", &c.call_id)
            .header("CSeq", format!("{seq} {}", method.as_str()))
    }
}
