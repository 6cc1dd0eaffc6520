//! A simulated operator softphone: registers its operator with siaga (RFC 3261 §10.2,
//! digest authentication §22.2, RFC 2617 `qop=auth`), and as a UAS answers the INVITEs
//! siaga sends (§13.3): rings and answers (resending its 2xx until the ACK, §13.3.1.4, and
//! hanging up with BYE when none comes), rejects, rings until CANCELled (§9.2: 200 to the
//! CANCEL, 487 to the INVITE) or gives up with 480, or ignores the INVITE altogether. An
//! answered call ends with the operator's BYE after a hold time, or with siaga's.
//! At the end of a run the phone unregisters (`Expires: 0`).

use super::Ctx;
use super::ua::{self, Ua, UaEvent};
use crate::engine::sip::builder::MessageBuilder;
use crate::engine::sip::{HeaderName, Method, SipMessage};
use md5::{Digest, Md5};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// What the phone does with one INVITE, drawn when it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhonePlan {
    /// 180, then 200 after `after_ms` (at once, without a 1xx, when 0); hangs up after
    /// `hold_ms`.
    Answer {
        /// Ring time, in ms.
        after_ms: u64,
        /// Talk time, in ms.
        hold_ms: u64,
    },
    /// 180, then `status` (486, 603) after `after_ms`.
    Reject {
        /// Ring time, in ms.
        after_ms: u64,
        /// The final status.
        status: u16,
    },
    /// 180 until CANCELled; after `give_up_ms`, 480.
    Ring {
        /// When the phone stops ringing on its own, in ms.
        give_up_ms: u64,
    },
    /// No response at all (a phone that hung or lost its network).
    Ignore,
}

/// Where one INVITE stands at the phone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegEnd {
    /// CANCELled while ringing.
    Cancelled,
    /// Rejected or given up with this status.
    Refused(u16),
    /// Answered, then hung up by the operator (`by_phone`) or by siaga.
    Completed {
        /// Whether the phone sent the BYE.
        by_phone: bool,
    },
}

/// One INVITE siaga sent to the phone.
#[derive(Debug)]
pub struct PhoneCall {
    invite: SipMessage,
    tag: String,
    /// What the phone does with it.
    pub plan: PhonePlan,
    /// The caller number in the INVITE's From (names the trunk call).
    pub caller: String,
    /// The RTP address the INVITE's SDP offered (`None`: no offer).
    pub offered_rtp: Option<std::net::SocketAddr>,
    /// The phone's RTP address for this call.
    pub rtp: SocketAddr,
    act_at: Option<u64>,
    /// When the phone sent its 200.
    pub answered_at: Option<u64>,
    /// Whether an ACK came for the 200.
    pub acked: bool,
    /// The operator hung up before the ACK came: BYE once it does (§15).
    bye_on_ack: bool,
    hangup_at: Option<u64>,
    /// When the phone sent BYE.
    pub bye_sent_at: Option<u64>,
    /// How it ended; `None` while it goes on.
    pub end: Option<LegEnd>,
}

/// An operator's digest credentials (RFC 3261 §22): username, password, realm.
#[derive(Clone, Debug)]
pub struct Account {
    /// The operator id: digest username and AOR user.
    pub operator: String,
    /// The password.
    pub password: String,
    /// The digest realm (siaga's first domain).
    pub realm: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    /// Not registered, nothing pending.
    Idle,
    /// A REGISTER is out.
    Pending,
}

/// One softphone of one operator.
pub struct Phone {
    /// Its stack.
    pub ua: Ua,
    /// The operator (digest username, AOR user).
    pub operator: String,
    password: String,
    realm: String,
    siaga: SocketAddr,
    reg: Reg,
    /// Whether the last REGISTER that succeeded added the binding (else removed it).
    pub registered: bool,
    /// The phone wants to be registered (else unregistered).
    pub want_registered: bool,
    reg_call_id: String,
    reg_cseq: u32,
    reg_at: Option<u64>,
    reg_tries: u32,
    nonce: Option<String>,
    nc: u32,
    /// Every INVITE siaga sent it, by Call-ID.
    pub calls: BTreeMap<String, PhoneCall>,
    ignored: BTreeSet<String>,
    next_rtp: u16,
    /// Once set, every new INVITE is answered quickly (the run is winding down).
    pub closing: bool,
    /// When set, every INVITE gets this plan (directed tests).
    pub fixed: Option<PhonePlan>,
    /// A registration that lapses: the first binding asks for this many seconds and is
    /// not refreshed; the phone registers again this many ms after it expired.
    pub lapse: Option<(u32, u64)>,
}

impl Phone {
    /// A phone at `ua`'s address with `account`, registering with siaga at `siaga` from
    /// `register_at` on.
    pub fn new(ua: Ua, account: Account, siaga: SocketAddr, register_at: u64) -> Phone {
        let Account {
            operator,
            password,
            realm,
        } = account;
        Phone {
            reg_call_id: format!("reg-{}", ua.name),
            ua,
            operator,
            password,
            realm,
            siaga,
            reg: Reg::Idle,
            registered: false,
            want_registered: true,
            reg_cseq: 0,
            reg_at: Some(register_at),
            reg_tries: 0,
            nonce: None,
            nc: 0,
            calls: BTreeMap::new(),
            ignored: BTreeSet::new(),
            next_rtp: 7000,
            closing: false,
            fixed: None,
            lapse: None,
        }
    }

    /// Whether no call is live at the phone and no message is pending.
    pub fn is_idle(&self) -> bool {
        self.ua.is_idle()
            && self.reg == Reg::Idle
            && self.reg_at.is_none()
            && self
                .calls
                .values()
                .all(|c| c.end.is_some() || c.plan == PhonePlan::Ignore)
    }

    /// Unregister from now on (`Expires: 0`).
    pub fn unregister(&mut self, now: u64) {
        self.want_registered = false;
        self.reg_tries = 0;
        self.reg_at = Some(now);
    }

    /// The earliest time the phone must act.
    pub fn next_deadline(&self) -> Option<u64> {
        let calls = self.calls.values().flat_map(|c| [c.act_at, c.hangup_at]);
        calls
            .chain([self.reg_at.filter(|_| self.reg == Reg::Idle)])
            .flatten()
            .chain(self.ua.next_deadline())
            .min()
    }

    /// Acts on everything due at `now`.
    pub fn on_timer(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        for event in self.ua.on_timer(now) {
            self.on_event(ctx, event);
        }
        if self.reg == Reg::Idle && self.reg_at.is_some_and(|at| at <= now) {
            self.reg_at = None;
            self.send_register(ctx);
        }
        let due: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.act_at.is_some_and(|at| at <= now) || c.hangup_at.is_some_and(|at| at <= now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for call_id in due {
            self.act(ctx, &call_id);
        }
    }

    /// A datagram from siaga arrived.
    pub fn receive(&mut self, ctx: &mut Ctx, from: SocketAddr, msg: SipMessage) {
        if let Some(event) = self.ua.receive(ctx.now, from, msg) {
            self.on_event(ctx, event);
        }
    }

    fn on_event(&mut self, ctx: &mut Ctx, event: UaEvent) {
        match event {
            UaEvent::Request(msg) => self.on_request(ctx, msg),
            UaEvent::Response(msg) => self.on_response(ctx, &msg),
            UaEvent::TimedOut { method, .. } => {
                if method == Method::Register {
                    self.reg = Reg::Idle;
                    self.retry_register(ctx);
                }
            }
            UaEvent::NoAck { call_id } => {
                // §13.3.1.4: no ACK for 64·T1: end the session with BYE.
                let name = self.ua.name.clone();
                ctx.trace(|| format!("{name}: no ACK for the 200 of {call_id}: BYE"));
                self.send_bye(ctx, &call_id);
            }
        }
    }

    fn retry_register(&mut self, ctx: &mut Ctx) {
        self.reg_tries += 1;
        if self.reg_tries < 6 {
            self.reg_at = Some(ctx.now + ctx.rng.random_range(500..5_000));
        }
    }

    fn on_response(&mut self, ctx: &mut Ctx, msg: &SipMessage) {
        let Some(status) = msg.status() else { return };
        if msg.cseq().map(|c| c.method) != Ok(Method::Register) {
            return; // 200 to a BYE: the dialog is over either way.
        }
        let name = self.ua.name.clone();
        self.reg = Reg::Idle;
        match status {
            401 => {
                let www = ua::header(msg, HeaderName::WwwAuthenticate);
                self.nonce = www
                    .split("nonce=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(str::to_owned);
                self.nc = 0;
                self.reg_tries += 1;
                if self.reg_tries < 6 {
                    self.send_register(ctx);
                }
            }
            200 => {
                self.registered = self.want_registered;
                self.reg_tries = 0;
                if let Some((expires_s, back_ms)) = self.lapse.take().filter(|_| self.registered) {
                    ctx.trace(|| {
                        format!("{name}: lets its binding lapse, back {back_ms} ms after")
                    });
                    self.reg_at = Some(ctx.now + u64::from(expires_s) * 1_000 + back_ms);
                }
                let registered = self.registered;
                ctx.trace(|| format!("{name}: registered={registered}"));
            }
            _ => {
                ctx.trace(|| format!("{name}: REGISTER drew {status}"));
                self.retry_register(ctx);
            }
        }
    }

    /// REGISTER with credentials for the last nonce, if any (RFC 2617 §3.2.2, `nc`
    /// counting up per use).
    fn send_register(&mut self, ctx: &mut Ctx) {
        let (addr, siaga, op) = (self.ua.addr, self.siaga, self.operator.clone());
        let branch = self.ua.branch();
        self.reg_cseq += 1;
        let uri = format!("sip:{siaga}");
        let mut b = MessageBuilder::request(&Method::Register, &uri)
            .header("Via", format!("SIP/2.0/UDP {addr};branch={branch};rport"))
            .header("Max-Forwards", 70)
            .header(
                "From",
                format!("<sip:{op}@{}>;tag=reg{}", self.realm, self.ua.name),
            )
            .header("To", format!("<sip:{op}@{}>", self.realm))
            .header("Call-ID", &self.reg_call_id)
            .header("CSeq", format!("{} REGISTER", self.reg_cseq))
            .header("Contact", format!("<sip:{op}@{addr}>"))
            .header(
                "Expires",
                match (self.want_registered, self.lapse) {
                    (false, _) => 0,
                    (true, Some((expires_s, _))) => expires_s,
                    (true, None) => 3600,
                },
            );
        if let Some(nonce) = &self.nonce {
            self.nc += 1;
            let nc = format!("{:08x}", self.nc);
            let cnonce = format!("c{}", self.reg_cseq);
            let ha1 = hex(&Md5::digest(format!(
                "{op}:{}:{}",
                self.realm, self.password
            )));
            let ha2 = hex(&Md5::digest(format!("REGISTER:{uri}")));
            let response = hex(&Md5::digest(format!(
                "{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"
            )));
            b = b.header(
                "Authorization",
                format!(
                    "Digest username=\"{op}\", realm=\"{}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
                    self.realm
                ),
            );
        }
        self.reg = Reg::Pending;
        let call_id = self.reg_call_id.clone();
        self.ua.send_request(
            ctx.now,
            siaga,
            Method::Register,
            branch,
            &call_id,
            b.build(),
        );
    }

    fn on_request(&mut self, ctx: &mut Ctx, msg: SipMessage) {
        let now = ctx.now;
        let Ok(call_id) = msg.call_id().map(str::to_owned) else {
            return;
        };
        match msg.method() {
            Some(Method::Invite) => self.on_invite(ctx, msg, call_id),
            Some(Method::Ack) => {
                let hang_up = self.calls.get_mut(&call_id).is_some_and(|c| {
                    c.acked = true;
                    std::mem::take(&mut c.bye_on_ack)
                });
                if hang_up {
                    self.send_bye(ctx, &call_id);
                }
            }
            Some(Method::Cancel) => {
                // §9.2: the CANCEL matches the INVITE's server transaction by branch.
                let branch = ua::branch_of(&msg);
                let state = branch.as_deref().and_then(|b| self.ua.invite_answered(b));
                self.ua
                    .answer(now, &msg, if state.is_some() { 200 } else { 481 });
                if state == Some(false)
                    && let Some(c) = self.calls.get_mut(&call_id)
                {
                    c.end = Some(LegEnd::Cancelled);
                    c.act_at = None;
                    let bytes = ua::reply(&c.invite, 487, "Request Terminated", &c.tag).build();
                    let invite = c.invite.clone();
                    self.ua.respond(now, &invite, 487, bytes);
                }
            }
            Some(Method::Bye) => {
                let ours = self.calls.get_mut(&call_id).filter(|c| {
                    c.answered_at.is_some()
                        && msg.from().ok().and_then(|f| f.tag().map(str::to_owned))
                            == c.invite
                                .from()
                                .ok()
                                .and_then(|f| f.tag().map(str::to_owned))
                });
                let status = match ours {
                    Some(c) => {
                        if c.end.is_none() {
                            c.end = Some(LegEnd::Completed { by_phone: false });
                            c.hangup_at = None;
                        }
                        200
                    }
                    None => 481,
                };
                self.ua.answer(now, &msg, status);
            }
            _ => self.ua.answer(now, &msg, 405),
        }
    }

    fn on_invite(&mut self, ctx: &mut Ctx, msg: SipMessage, call_id: String) {
        let now = ctx.now;
        if self.ignored.contains(&call_id) {
            // Deaf to it: not even a transaction remembers it.
            self.ua.forget_server(&msg);
            return;
        }
        if self.calls.contains_key(&call_id) {
            return; // a new branch for a known Call-ID: not something siaga does
        }
        let rng = &mut *ctx.rng;
        let plan = if let Some(plan) = self.fixed {
            plan
        } else if self.closing {
            PhonePlan::Answer {
                after_ms: rng.random_range(0..2_000),
                hold_ms: rng.random_range(500..3_000),
            }
        } else {
            match rng.random_range(0..100) {
                0..45 => PhonePlan::Answer {
                    after_ms: if rng.random_bool(0.15) {
                        0
                    } else {
                        rng.random_range(100..20_000)
                    },
                    hold_ms: rng.random_range(1_000..60_000),
                },
                45..65 => PhonePlan::Reject {
                    after_ms: rng.random_range(0..8_000),
                    status: if rng.random_bool(0.5) { 486 } else { 603 },
                },
                65..85 => PhonePlan::Ring {
                    give_up_ms: rng.random_range(20_000..90_000),
                },
                _ => PhonePlan::Ignore,
            }
        };
        let name = self.ua.name.clone();
        ctx.trace(|| format!("{name}: INVITE {call_id}: {plan:?}"));
        if plan == PhonePlan::Ignore {
            self.ua.forget_server(&msg);
            self.ignored.insert(call_id);
            return;
        }
        let caller = msg
            .from()
            .ok()
            .and_then(|f| {
                f.uri
                    .as_sip()
                    .and_then(|u| u.user_decoded())
                    .map(|u| String::from_utf8_lossy(&u).into_owned())
            })
            .unwrap_or_default();
        let rtp = SocketAddr::new(self.ua.addr.ip(), self.next_rtp);
        self.next_rtp += 2;
        let tag = self.ua.fresh("tag");
        let act_at = match plan {
            PhonePlan::Answer { after_ms, .. } | PhonePlan::Reject { after_ms, .. } => {
                now + after_ms
            }
            PhonePlan::Ring { give_up_ms } => now + give_up_ms,
            PhonePlan::Ignore => now,
        };
        let call = PhoneCall {
            offered_rtp: ua::sdp_address(msg.body()),
            invite: msg,
            tag,
            plan,
            caller,
            rtp,
            act_at: Some(act_at),
            answered_at: None,
            acked: false,
            bye_on_ack: false,
            hangup_at: None,
            bye_sent_at: None,
            end: None,
        };
        let immediate = matches!(plan, PhonePlan::Answer { after_ms: 0, .. });
        if !immediate {
            let bytes = self.response(&call, 180, "Ringing").build();
            self.ua.respond(now, &call.invite, 180, bytes);
        }
        self.calls.insert(call_id.clone(), call);
        if immediate {
            self.act(ctx, &call_id);
        }
    }

    /// A response to the call's INVITE with the phone's tag and Contact.
    fn response(&self, c: &PhoneCall, status: u16, reason: &str) -> MessageBuilder {
        ua::reply(&c.invite, status, reason, &c.tag).header(
            "Contact",
            format!("<sip:{}@{}>", self.operator, self.ua.addr),
        )
    }

    /// The call's timer: answer, reject or give up; or, once answered, hang up.
    fn act(&mut self, ctx: &mut Ctx, call_id: &str) {
        let now = ctx.now;
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        if c.hangup_at.is_some_and(|at| at <= now) {
            c.hangup_at = None;
            // §15: the callee sends no BYE before the ACK of its 2xx (or the 64·T1 without
            // one): the operator's hang-up waits for it.
            if !c.acked {
                c.bye_on_ack = true;
                return;
            }
            return self.send_bye(ctx, call_id);
        }
        if c.act_at.is_none_or(|at| at > now) || c.end.is_some() {
            return;
        }
        c.act_at = None;
        let (status, reason) = match c.plan {
            PhonePlan::Answer { hold_ms, .. } => {
                c.answered_at = Some(now);
                c.hangup_at = Some(now + hold_ms);
                (200, "OK")
            }
            PhonePlan::Reject { status, .. } => (status, "Busy Here"),
            PhonePlan::Ring { .. } => (480, "Temporarily Unavailable"),
            PhonePlan::Ignore => return,
        };
        let c = &self.calls[call_id];
        let mut b = self.response(c, status, reason);
        if status == 200 {
            b = b.body("application/sdp", ua::sdp("phone", c.rtp));
        }
        let bytes = b.build();
        let invite = c.invite.clone();
        self.ua.respond(now, &invite, status, bytes);
        if let Some(c) = self.calls.get_mut(call_id)
            && status != 200
        {
            c.end = Some(LegEnd::Refused(status));
        }
    }

    /// The operator hangs up (§15.1.1): BYE in the dialog the 200 created, as its UAS.
    fn send_bye(&mut self, ctx: &mut Ctx, call_id: &str) {
        let Some(c) = self.calls.get_mut(call_id) else {
            return;
        };
        if c.end.is_some() || c.answered_at.is_none() {
            return;
        }
        c.end = Some(LegEnd::Completed { by_phone: true });
        c.bye_sent_at = Some(ctx.now);
        c.hangup_at = None;
        let target = ua::contact_uri(&c.invite).unwrap_or_else(|| format!("sip:{}", self.siaga));
        let to = ua::header(&c.invite, HeaderName::From);
        let from = format!("{};tag={}", ua::header(&c.invite, HeaderName::To), c.tag);
        let seq = c.invite.cseq().map(|s| s.seq).unwrap_or(1) + 100;
        let addr = self.ua.addr;
        let branch = self.ua.branch();
        let bytes = MessageBuilder::request(&Method::Bye, target)
            .header("Via", format!("SIP/2.0/UDP {addr};branch={branch};rport"))
            .header("Max-Forwards", 70)
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{seq} BYE"))
            .build();
        let name = self.ua.name.clone();
        ctx.trace(|| format!("{name}: operator hangs up {call_id}"));
        self.ua
            .send_request(ctx.now, self.siaga, Method::Bye, branch, call_id, bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
