//! What a finished run must satisfy. Each check reads the world's logs (the wire with
//! every delivery time, the call events with their causes, the media commands) and the
//! peers' own view, and returns the broken rules as sentences.
//!
//! - [`residue`]: once everything ran down, siaga holds no transaction, dialog, call,
//!   outbound INVITE, relay, call timer, queue entry, agent reservation, binding, port or
//!   deadline.
//! - [`record::records`]: each call's events follow the record's grammar, with one `Ended` whose
//!   disposition fits what happened, and each event has the cause the RFCs give it (a
//!   caller's hang-up is a CANCEL or BYE that arrived from the trunk; an unacknowledged 2xx
//!   ends the call exactly 64·T1 after it was sent; a ring timeout fires exactly
//!   `ring_timeout` after the offer …).
//! - [`peers`]: siaga's record agrees with what the caller and the phones saw.
//! - [`wire::retransmissions`]: siaga's requests, its 2xx to the trunk and its 300–699 to the
//!   trunk are resent exactly on RFC 3261's schedules (Timers A/B, E/F, G/H, §13.3.1.4)
//!   and stop when the answer arrives.
//! - [`media`]: the SDP each side got and the relay's peers point at the right parties.

pub mod acd;
mod record;
mod wire;

use super::phone::PhoneCall;
use super::trunk::TrunkEnd;
use super::world::{Cause, Rec, SIAGA, TRUNK, Wire, World};
use crate::engine::Engine;
use crate::engine::acd::AgentState;
use crate::engine::media::MediaCommand;
use crate::engine::record::{CallEventKind, Disposition, Party};
use crate::engine::sip::{Method, SipMessage};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use uuid::Uuid;

/// What siaga still holds: all zero once a run is over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Residue {
    server_transactions: usize,
    client_transactions: usize,
    calls: usize,
    dialogs: usize,
    outbound_invites: usize,
    in_dialog_requests: usize,
    relays: usize,
    call_timers: usize,
    waiting: usize,
    reserved_agents: Vec<String>,
    bindings: usize,
    registrar_deadline: bool,
    ports_in_use: usize,
}

impl Engine {
    /// What the engine still holds (see [`Residue`]); read-only.
    pub(crate) fn residue(&self, operators: &[String]) -> Residue {
        Residue {
            server_transactions: self.server.len(),
            client_transactions: self.client.len(),
            calls: self.calls.calls.len(),
            dialogs: self.calls.by_dialog.len() + self.calls.by_invite.len(),
            outbound_invites: self.calls.invites.len() + self.calls.timed_out.len(),
            in_dialog_requests: self.calls.in_dialog.len() + self.calls.byes.len(),
            relays: self.calls.relays.len(),
            call_timers: self.calls.timers.len(),
            waiting: self.calls.acd.waiting(),
            reserved_agents: operators
                .iter()
                .filter(|id| {
                    matches!(
                        self.calls.acd.state(id),
                        Some(AgentState::Ringing { .. } | AgentState::OnCall { .. })
                    )
                })
                .cloned()
                .collect(),
            bindings: self.registrar.all_bindings().count(),
            registrar_deadline: self.registrar.next_deadline().is_some(),
            ports_in_use: self.ports.capacity() - self.ports.available(),
        }
    }
}

/// Every check; the broken rules, empty when the run is good.
pub fn all(w: &World) -> Vec<String> {
    let mut v = w.violations.clone();
    let calls = CallViews::of(w);
    residue(w, &mut v);
    acd::agent_events(w, &mut v);
    record::records(w, &calls, &mut v);
    peers(w, &calls, &mut v);
    wire::phone_dialogs(w, &mut v);
    wire::retransmissions(w, &calls, &mut v);
    media(w, &calls, &mut v);
    v
}

/// One call's events, in order.
struct CallView<'a> {
    id: Uuid,
    trunk_call_id: String,
    recs: Vec<&'a Rec>,
}

impl CallView<'_> {
    fn find(&self, f: impl Fn(&CallEventKind) -> bool) -> Option<&Rec> {
        self.recs.iter().copied().find(|r| f(&r.event.kind))
    }

    fn ended(&self) -> Option<(&Rec, Party, Disposition)> {
        self.recs.iter().find_map(|r| match r.event.kind {
            CallEventKind::Ended { by, disposition } => Some((*r, by, disposition)),
            _ => None,
        })
    }

    fn answered(&self) -> Option<&Rec> {
        self.find(|k| matches!(k, CallEventKind::Answered { .. }))
    }
}

struct CallViews<'a>(Vec<CallView<'a>>);

impl<'a> CallViews<'a> {
    fn of(w: &'a World) -> CallViews<'a> {
        let mut by_id: BTreeMap<Uuid, usize> = BTreeMap::new();
        let mut views: Vec<CallView<'a>> = Vec::new();
        for r in &w.records {
            let i = *by_id.entry(r.event.call).or_insert_with(|| {
                views.push(CallView {
                    id: r.event.call,
                    trunk_call_id: String::new(),
                    recs: Vec::new(),
                });
                views.len() - 1
            });
            if let CallEventKind::Received { trunk_call_id, .. } = &r.event.kind {
                views[i].trunk_call_id = trunk_call_id.clone();
            }
            views[i].recs.push(r);
        }
        CallViews(views)
    }

    fn of_trunk_call(&self, call_id: &str) -> Vec<&CallView<'a>> {
        self.0
            .iter()
            .filter(|c| c.trunk_call_id == call_id)
            .collect()
    }
}

fn residue(w: &World, v: &mut Vec<String>) {
    let operators: Vec<String> = w
        .scenario
        .operators
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let residue = w.engine.residue(&operators);
    if residue != Residue::default() {
        v.push(format!("siaga holds state after the run: {residue:?}"));
    }
    if !w.relays.is_empty() {
        v.push(format!(
            "relays never closed: {:?}",
            w.relays.keys().collect::<Vec<_>>()
        ));
    }
    for id in &operators {
        if w.engine.agent_state(id) != Some(AgentState::LoggedOut) {
            v.push(format!(
                "operator {id} is {:?} after logging out",
                w.engine.agent_state(id)
            ));
        }
    }
}

/// The message a cause delivered to siaga, if it was a delivery.
fn delivered(w: &World, cause: Cause) -> Option<&Wire> {
    match cause {
        Cause::Delivery(i) => w.wire.get(i),
        _ => None,
    }
}

fn is(msg: &SipMessage, method: Method) -> bool {
    msg.method() == Some(&method)
}

/// The phone of the operator `op` at `addr`, if any.
fn phone_of<'w>(w: &'w World, addr: SocketAddr, op: &str) -> Option<&'w super::phone::Phone> {
    w.phones
        .iter()
        .find(|p| p.ua.addr == addr && p.operator == op)
}

/// The phone's leg (by its Call-ID) if it belongs to the trunk call with `caller`.
fn leg_of<'w>(
    w: &'w World,
    addr: SocketAddr,
    op: &str,
    leg: &str,
    caller: &str,
) -> Option<&'w PhoneCall> {
    phone_of(w, addr, op)?
        .calls
        .get(leg)
        .filter(|c| c.caller == caller)
}

fn peers(w: &World, calls: &CallViews, v: &mut Vec<String>) {
    for c in &w.trunk.calls {
        let mut fail = |what: String| v.push(format!("{}: {what}", c.call_id));
        let views = calls.of_trunk_call(&c.call_id);
        let reached = w.wire.iter().any(|x| {
            x.from == TRUNK
                && x.to == SIAGA
                && is(&x.msg, Method::Invite)
                && x.call_id.as_str() == c.call_id
                && !x.deliveries.is_empty()
        });
        match (views.as_slice(), reached) {
            ([], false) => continue,
            ([_], true) => {}
            (views, _) => {
                fail(format!(
                    "{} call records for an INVITE that {} siaga",
                    views.len(),
                    if reached { "reached" } else { "never reached" }
                ));
                continue;
            }
        }
        let view = views[0];
        let Some((_, by, disposition)) = view.ended() else {
            continue;
        };
        if c.answered_at.is_some() && view.answered().is_none() {
            fail("the caller got a 2xx but siaga recorded no answer".to_owned());
        }
        match (c.final_status, disposition) {
            (None, _)
            | (Some(487), Disposition::AbandonedInQueue | Disposition::AbandonedWhileRinging) => {}
            (Some(503), Disposition::Interrupted) => {}
            (Some(s), d) => fail(format!("the caller got {s}, siaga recorded {d}")),
        }
        if matches!(
            disposition,
            Disposition::AbandonedInQueue | Disposition::AbandonedWhileRinging
        ) && c.cancel_sent_at.is_none()
        {
            fail(format!(
                "recorded {disposition} but the caller never hung up"
            ));
        }
        if c.end == Some(TrunkEnd::Completed { by_caller: false }) && by == Party::Caller {
            fail("siaga hung up on the caller, yet recorded the caller hanging up".to_owned());
        }
    }
    // RFC 3264 §5, RFC 3261 §13.2.1: a 2xx that carried the offer (the INVITE had none)
    // is answered in the ACK — unless the leg is hung up at that instant (by siaga's BYE,
    // or the phone's arriving): then no answer exists and none is needed.
    for p in &w.phones {
        for (leg, _) in p
            .calls
            .iter()
            .filter(|(_, c)| c.offered_rtp.is_none() && c.answered_at.is_some())
        {
            let on_leg = |m: Method| {
                w.wire
                    .iter()
                    .filter(move |y| y.from == SIAGA && y.call_id == *leg && is(&y.msg, m.clone()))
            };
            let Some(ack) = on_leg(Method::Ack).next() else {
                continue;
            };
            let answered = super::ua::sdp_address(ack.msg.body()).is_some();
            let phone_bye = |at: u64| {
                w.wire.iter().any(|y| {
                    y.from == p.ua.addr
                        && y.call_id == *leg
                        && is(&y.msg, Method::Bye)
                        && y.deliveries.contains(&at)
                })
            };
            if !answered && !on_leg(Method::Bye).any(|b| b.at == ack.at) && !phone_bye(ack.at) {
                v.push(format!(
                    "{}: siaga's ACK of the 200 that carried the offer of {leg} has no answer",
                    p.ua.name
                ));
            }
        }
    }
}

fn media(w: &World, calls: &CallViews, v: &mut Vec<String>) {
    let media_ip = SIAGA.ip();
    // Relays by the caller's RTP address they were pointed at (unique per call).
    let relay_of = |rtp: SocketAddr| {
        w.closed_relays
            .values()
            .chain(w.relays.values())
            .find(|r| r.caller == Some(rtp))
    };
    for c in &w.trunk.calls {
        let Some(view) = calls.of_trunk_call(&c.call_id).into_iter().next() else {
            continue;
        };
        let Some(answered) = view.answered() else {
            continue;
        };
        let Some(d) = delivered(w, answered.cause) else {
            continue;
        };
        let Some(leg) = w
            .phones
            .iter()
            .find(|p| p.ua.addr == d.from)
            .and_then(|p| p.calls.get(d.call_id.as_str()))
        else {
            continue;
        };
        let relay = relay_of(c.rtp);
        let mut fail = |what: String| v.push(format!("{}: {what}", c.call_id));
        if let Some(r) = relay {
            if r.operator != Some(leg.rtp) {
                fail(format!(
                    "relay's operator side {:?}, the answering phone is at {}",
                    r.operator, leg.rtp
                ));
            }
            if c.answer_rtp
                .is_some_and(|a| a != SocketAddr::new(media_ip, r.caller_port))
            {
                fail(format!(
                    "the caller was told to send to {:?}, not the relay's port {}",
                    c.answer_rtp, r.caller_port
                ));
            }
        } else if c.answer_rtp.is_some() && !c.spec.late_offer && c.answer_rtp != Some(leg.rtp) {
            // No relay (ports exhausted): the phone's SDP passes through unchanged.
            fail(format!(
                "without a relay the caller got {:?}, the phone is at {}",
                c.answer_rtp, leg.rtp
            ));
        }
        if let Some(offered) = leg.offered_rtp {
            let ok = offered == c.rtp || offered.ip() == media_ip;
            if !ok {
                fail(format!("the answering phone was offered {offered}"));
            }
        }
    }
    // Every relay opened is closed and reported on: one media event per relay.
    let opened = w
        .media
        .iter()
        .filter(|(_, m)| matches!(m, MediaCommand::Open { .. }))
        .count();
    let reported = w
        .records
        .iter()
        .filter(|r| matches!(r.event.kind, CallEventKind::MediaRelayed { .. }))
        .count();
    if opened != reported {
        v.push(format!(
            "{opened} relays opened, {reported} media reports recorded"
        ));
    }
}
