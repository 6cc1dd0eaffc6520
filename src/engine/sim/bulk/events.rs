//! The bulk model's events: what the call model does with the ACD when a call arrives,
//! is given up, answered, rejected, failed, rung out, hung up or loses its operator leg,
//! when the backup centre answers or fails, when a phone registers or lets its binding
//! lapse, and at an operator's desk; and what the model then expects of each operator's
//! state (the table of `acd::agent`, restated).

use super::rules;
use super::{CALLBACK_BASE, CallM, End, Ev, Overflow, Run, Status, error_kind, ms, order, t};
use crate::engine::acd::{AgentCommand, AgentState, CallHandle, NotReadyReason, OfferEnd};
use rand::Rng;
use std::collections::BTreeSet;
use uuid::Uuid;

impl Run {
    // ---- events ---------------------------------------------------------------------

    pub(super) fn timer(&mut self) {
        let now = self.now;
        self.note(|| "ACD timeout".to_owned());
        self.acd.handle_timeout(t(now));
        self.handled = Some(now);
        for i in 0..self.ops.len() {
            if let AgentState::WrapUp { until } = self.ops[i].state
                && ms(until.since_origin()) <= now
            {
                self.ops[i].state = AgentState::Available { since: t(now) };
            }
        }
        let mut reported = BTreeSet::new();
        while let Some(call) = self.acd.poll_widened() {
            if !reported.insert(call) {
                self.broken
                    .push(format!("{call:?} reported widened twice at once"));
            }
            let Some(c) = self.calls.get_mut(&call) else {
                self.broken
                    .push(format!("{call:?} widened, unknown to the model"));
                continue;
            };
            let due = c.widen_at.is_some_and(|at| at <= now);
            if c.widened || !due || matches!(c.status, Status::Talking(_) | Status::Overflowed) {
                let (widened, widen_at, status) = (c.widened, c.widen_at, c.status.clone());
                self.broken.push(format!(
                    "{call:?} reported widened wrongly (already {widened}, due {widen_at:?}, {status:?})"
                ));
            }
            c.widened = true;
        }
        self.seen("timer");
        let late: Vec<CallHandle> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.widened && c.widen_at.is_some_and(|at| at <= now))
            .filter(|(_, c)| {
                matches!(
                    c.status,
                    Status::Waiting | Status::Ringing(_) | Status::Overflowing
                )
            })
            .map(|(h, _)| *h)
            .collect();
        for call in late {
            self.broken
                .push(format!("{call:?} due to widen, not reported at a timeout"));
        }
    }

    pub(super) fn event(&mut self, ev: Ev) {
        let now = self.now;
        self.note(|| format!("{ev:?}"));
        match ev {
            Ev::Arrive(call) => self.arrive(call),
            Ev::Abandon(call) => self.abandon(call),
            Ev::Answer(call, i, attempt) => self.answer(call, i, attempt),
            Ev::Reject(call, i, attempt) => {
                self.offer_end(call, i, attempt, OfferEnd::Rejected);
            }
            Ev::Fail(call, i, attempt) => self.offer_end(call, i, attempt, OfferEnd::Failed),
            Ev::RingTimeout(call, i, attempt) => {
                self.offer_end(call, i, attempt, OfferEnd::NoAnswer);
            }
            Ev::Hangup(call, attempt) => {
                if self.live(call, attempt) {
                    self.hang_up(call);
                }
            }
            Ev::LegLost(call, attempt) => {
                if self.live(call, attempt)
                    && let Status::Talking(op) = self.calls[&call].status.clone()
                {
                    self.seen("leg lost: requeued at the head");
                    self.acd.call_ended(call, &op, t(now));
                    self.expect_call_ended(&op, call);
                    if !self.acd.requeue(call, true, t(now)) {
                        self.broken.push(format!("requeue of {call:?} refused"));
                    }
                    self.heads += 1;
                    let heads = self.heads;
                    let c = self.calls.get_mut(&call).expect("live");
                    c.head = Some(heads);
                    c.overflow_from = now;
                    self.wait(call);
                }
            }
            Ev::BackupAnswer(call, attempt) => {
                if self.live(call, attempt) && self.calls[&call].status == Status::Overflowing {
                    self.seen("overflow answered");
                    self.acd.overflow_answered(call);
                    let talk = self.calls[&call].talk_ms;
                    let attempt = self.bump(call);
                    self.set(call, Status::Overflowed);
                    self.at(now + talk, Ev::Hangup(call, attempt));
                }
            }
            Ev::BackupFail(call, attempt) => {
                if self.live(call, attempt) && self.calls[&call].status == Status::Overflowing {
                    self.seen("overflow failed");
                    self.acd.overflow_failed(call, t(now));
                    let after = self.overflow_of(call).map(|o| ms(o.after)).unwrap_or(0);
                    self.calls.get_mut(&call).expect("live").overflow_not_before =
                        Some(now + after);
                    self.wait(call);
                }
            }
            Ev::CallbackEnd(call, answered) => self.callback_end(call, answered),
            Ev::Register(i) => self.register(i),
            Ev::Lapse(i) => self.lapse(i),
            Ev::Desk(i) => self.desk(i),
        }
    }

    /// Whether `call` is live at `attempt` (events of an earlier offer are stale: their
    /// legs were cancelled, a late 200 would be ACKed and BYEd without the ACD).
    pub(super) fn live(&self, call: CallHandle, attempt: u32) -> bool {
        self.calls.get(&call).is_some_and(|c| c.attempt == attempt)
    }

    pub(super) fn bump(&mut self, call: CallHandle) -> u32 {
        let c = self.calls.get_mut(&call).expect("known call");
        c.attempt += 1;
        c.attempt
    }

    pub(super) fn set(&mut self, call: CallHandle, status: Status) {
        let c = self.calls.get_mut(&call).expect("known call");
        if c.status == Status::Waiting {
            self.waiting.remove(&order(call, c));
        }
        c.status = status;
    }

    pub(super) fn wait(&mut self, call: CallHandle) {
        self.set(call, Status::Waiting);
        let c = &self.calls[&call];
        self.waiting.insert(order(call, c));
    }

    pub(super) fn done(&mut self, call: CallHandle, end: End) {
        let mut c = self.calls.remove(&call).expect("a live call ends");
        if c.status == Status::Waiting {
            self.waiting.remove(&order(call, &c));
        }
        self.acd.forget(call);
        self.ended.insert(call, end);
        *self.tally.ends.entry(end).or_default() += 1;
        if matches!(
            end,
            End::AbandonedInQueue | End::AbandonedWhileRinging | End::AbandonedOverflowing
        ) {
            self.acd
                .repeat
                .note(&std::mem::take(&mut c.caller), t(self.now));
        }
    }

    pub(super) fn overflow_of(&self, call: CallHandle) -> Option<&Overflow> {
        self.settings.queues[self.calls[&call].queue]
            .overflow
            .as_ref()
    }

    pub(super) fn arrive(&mut self, call: CallHandle) {
        let now = self.now;
        let c = self.pending.remove(&call).expect("a call arrives once");
        self.calls.insert(call, c);
        let c = &self.calls[&call];
        let routing = self.acd.route(&[c.dialled]);
        let (caller, signalled) = (c.caller.clone(), c.signalled);
        let repeat = self.acd.repeat.is_repeat(&caller, t(now));
        if repeat {
            self.seen("repeat caller raised");
        }
        // The call model's rule (`call::priority`): the larger of the route's and the
        // signalled level, one more for a repeat caller.
        let priority = routing
            .priority
            .max(signalled)
            .saturating_add(u8::from(repeat));
        let widen_after = self.settings.queues[routing.queue.0].widen_after;
        self.arrived += 1;
        let c = self.calls.get_mut(&call).expect("known call");
        // Two calls in the same ms arrive in the order drawn for them.
        c.seq = self.arrived;
        c.priority = priority;
        c.queue = routing.queue.0;
        c.skills = routing.skills.clone();
        c.widened = routing.skills.is_empty();
        c.widen_at = widen_after
            .filter(|_| !routing.skills.is_empty())
            .map(|a| now + ms(a));
        self.acd.enqueue(
            call,
            Uuid::from_u128(call.0.into()),
            &routing,
            priority,
            t(now),
        );
        self.wait(call);
    }

    pub(super) fn abandon(&mut self, call: CallHandle) {
        let now = self.now;
        let Some(status) = self.calls.get(&call).map(|c| c.status.clone()) else {
            return;
        };
        match status {
            Status::Waiting => self.done(call, End::AbandonedInQueue),
            Status::Ringing(ops) => {
                for op in &ops {
                    self.acd.offer_ended(call, op, OfferEnd::Withdrawn, t(now));
                    self.expect_offer_end(op, call, OfferEnd::Withdrawn);
                }
                self.done(call, End::AbandonedWhileRinging);
            }
            Status::Overflowing => self.done(call, End::AbandonedOverflowing),
            Status::Talking(_) | Status::Overflowed => self.hang_up(call),
            Status::Callback(_) => {}
        }
    }

    pub(super) fn hang_up(&mut self, call: CallHandle) {
        match self.calls[&call].status.clone() {
            Status::Talking(op) => {
                self.acd.call_ended(call, &op, t(self.now));
                self.expect_call_ended(&op, call);
                self.done(call, End::Answered);
            }
            Status::Overflowed => self.done(call, End::Overflowed),
            _ => {}
        }
    }

    pub(super) fn answer(&mut self, call: CallHandle, i: usize, attempt: u32) {
        let now = self.now;
        let id = self.ops[i].id.clone();
        let ringing = match &self.calls.get(&call).map(|c| &c.status) {
            Some(Status::Ringing(ops)) if self.live(call, attempt) => ops.clone(),
            _ => {
                // The caller hung up first, or another phone won: ACKed and BYEd by the
                // call model; the ACD hears nothing.
                self.seen("late answer ignored");
                return;
            }
        };
        if !ringing.contains(&id) {
            return;
        }
        if ringing.len() > 1 {
            self.seen("ring-all: one answered, others withdrawn");
        }
        for other in ringing.iter().filter(|o| **o != id) {
            self.acd
                .offer_ended(call, other, OfferEnd::Withdrawn, t(now));
            self.expect_offer_end(other, call, OfferEnd::Withdrawn);
        }
        self.acd.answered(call, &id, t(now));
        let op = &mut self.ops[i];
        if op.state == (AgentState::Ringing { call }) {
            op.no_answers = 0;
            op.idle_since = None;
            op.state = AgentState::OnCall { call };
        }
        self.seen("answered");
        let attempt = self.bump(call);
        self.set(call, Status::Talking(id));
        let talk = self.calls[&call].talk_ms;
        self.at(now + talk, Ev::Hangup(call, attempt));
        if self.rng.random_bool(0.04) {
            let lost = now + self.rng.random_range(0..talk);
            self.at(lost, Ev::LegLost(call, attempt));
        }
    }

    pub(super) fn offer_end(&mut self, call: CallHandle, i: usize, attempt: u32, end: OfferEnd) {
        let id = self.ops[i].id.clone();
        let Some(Status::Ringing(mut ops)) = self.calls.get(&call).map(|c| c.status.clone()) else {
            return;
        };
        if !self.live(call, attempt) || !ops.remove(&id) {
            return;
        }
        self.seen(match end {
            OfferEnd::Rejected => "rejected",
            OfferEnd::Failed => "failed",
            OfferEnd::NoAnswer => "ring timeout",
            OfferEnd::Withdrawn => "withdrawn",
        });
        self.acd.offer_ended(call, &id, end, t(self.now));
        self.expect_offer_end(&id, call, end);
        self.ringing_left(call, ops);
    }

    /// `call` now rings `ops`: back to its place when nobody rings for it any more.
    pub(super) fn ringing_left(&mut self, call: CallHandle, ops: BTreeSet<String>) {
        if ops.is_empty() {
            if !self.acd.requeue(call, false, t(self.now)) {
                self.broken.push(format!("requeue of {call:?} refused"));
            }
            self.bump(call);
            self.wait(call);
        } else {
            self.set(call, Status::Ringing(ops));
        }
    }

    pub(super) fn register(&mut self, i: usize) {
        let now = self.now;
        let id = self.ops[i].id.clone();
        self.acd.registered(&id, t(now));
        let op = &mut self.ops[i];
        if op.registered {
            return;
        }
        op.registered = true;
        if op.state == AgentState::LoggedOut && op.login_on_register && !op.explicit_out {
            op.state = AgentState::Available { since: t(now) };
        }
        if op.lapses && self.rng.random_bool(0.3) {
            let at = now + self.rng.random_range(10_000..900_000);
            self.at(at, Ev::Lapse(i));
        }
    }

    pub(super) fn lapse(&mut self, i: usize) {
        let now = self.now;
        let id = self.ops[i].id.clone();
        let ringing = self.acd.unregistered(&id, t(now));
        self.seen("registration lapsed");
        let op = &mut self.ops[i];
        op.registered = false;
        let was = op.state;
        match was {
            AgentState::OnCall { .. } | AgentState::LoggedOut => {}
            _ => op.state = AgentState::LoggedOut,
        }
        let expected = match was {
            AgentState::Ringing { call } => Some(call),
            _ => None,
        };
        if ringing != expected {
            self.broken.push(format!(
                "unregistered {id} returned {ringing:?}, the model expects {expected:?}"
            ));
        }
        // The call model withdraws the offer: `offer_ended` (a stale trigger now) and the
        // call back at its place if nobody else rings for it.
        if let Some(call) = expected {
            self.seen("registration lapsed while ringing");
            self.acd.offer_ended(call, &id, OfferEnd::Withdrawn, t(now));
            if let Some(Status::Ringing(mut ops)) = self.calls.get(&call).map(|c| c.status.clone())
            {
                ops.remove(&id);
                self.ringing_left(call, ops);
            }
        }
        let back = now + self.rng.random_range(500..120_000);
        self.at(back, Ev::Register(i));
    }

    pub(super) fn desk(&mut self, i: usize) {
        let now = self.now;
        let id = self.ops[i].id.clone();
        let command = if self.draining {
            AgentCommand::Ready
        } else {
            match self.rng.random_range(0..100) {
                0..40 => AgentCommand::Ready,
                40..60 => AgentCommand::NotReady,
                60..80 => AgentCommand::EndWrapUp,
                80..92 => AgentCommand::Logout,
                _ => return self.take_callback(i),
            }
        };
        let before = self.ops[i].state;
        let expected = rules::command(&before, self.ops[i].registered, command);
        let got = self.acd.command(&id, command, t(now));
        self.note(|| format!("{id} {command:?} from {before}: {got:?}"));
        match (&got, expected) {
            (Ok(state), Ok(name)) if state.name() == name => {
                self.seen("command done");
                let op = &mut self.ops[i];
                match command {
                    AgentCommand::Ready => {
                        op.explicit_out = false;
                        op.no_answers = 0;
                        op.state = AgentState::Available { since: t(now) };
                    }
                    AgentCommand::NotReady => {
                        op.explicit_out = false;
                        op.state = AgentState::NotReady {
                            reason: NotReadyReason::Requested,
                        };
                    }
                    AgentCommand::EndWrapUp => op.state = AgentState::Available { since: t(now) },
                    AgentCommand::Logout => {
                        op.explicit_out = true;
                        op.state = AgentState::LoggedOut;
                    }
                }
            }
            (Err(e), Err(kind)) if error_kind(e) == kind => self.seen("command refused"),
            _ => self.broken.push(format!(
                "{id} {command:?} from {before}: got {got:?}, the table says {expected:?}"
            )),
        }
        self.next_desk(i);
    }

    pub(super) fn next_desk(&mut self, i: usize) {
        if self.draining && !self.calls_left() {
            return;
        }
        let mean = if self.draining { 5_000.0 } else { 45_000.0 };
        let gap = -mean * (1.0 - self.rng.random::<f64>()).ln();
        let at = self.now + gap as u64 + 1;
        self.at(at, Ev::Desk(i));
    }

    pub(super) fn take_callback(&mut self, i: usize) {
        let now = self.now;
        let id = self.ops[i].id.clone();
        self.callbacks += 1;
        let call = CallHandle(CALLBACK_BASE + self.callbacks);
        let before = self.ops[i].state;
        let allowed = matches!(
            before,
            AgentState::Available { .. } | AgentState::WrapUp { .. } | AgentState::NotReady { .. }
        );
        let got = self
            .acd
            .start_callback(&id, call, Uuid::from_u128(call.0.into()), t(now));
        self.note(|| format!("{id} places callback {call:?} from {before}: {got:?}"));
        if got.is_ok() != allowed {
            self.broken.push(format!(
                "{id} callback from {before}: got {got:?}, the table says allowed={allowed}"
            ));
        }
        if got.is_ok() {
            self.seen("callback placed");
            let op = &mut self.ops[i];
            op.idle_since = None;
            op.state = AgentState::OnCall { call };
            self.calls.insert(
                call,
                CallM {
                    overflow_from: now,
                    seq: 0,
                    caller: String::new(),
                    dialled: "",
                    signalled: 0,
                    priority: 0,
                    queue: 0,
                    skills: Vec::new(),
                    widen_at: None,
                    widened: true,
                    head: None,
                    abandon_at: None,
                    talk_ms: 0,
                    attempt: 0,
                    overflow_not_before: None,
                    status: Status::Callback(id),
                },
            );
            let answered = self.rng.random_bool(0.6);
            let at = now + self.rng.random_range(2_000..90_000);
            self.at(at, Ev::CallbackEnd(call, answered));
        }
        self.next_desk(i);
    }

    pub(super) fn callback_end(&mut self, call: CallHandle, answered: bool) {
        let now = self.now;
        let Some(Status::Callback(id)) = self.calls.remove(&call).map(|c| c.status) else {
            return;
        };
        if answered {
            self.acd.call_ended(call, &id, t(now));
            self.expect_call_ended(&id, call);
        } else {
            self.acd.callback_unanswered(call, &id, t(now));
            let i = self.index(&id);
            let op = &mut self.ops[i];
            if op.state == (AgentState::OnCall { call }) {
                op.idle_since = None;
                op.state = if op.registered {
                    AgentState::Available { since: t(now) }
                } else {
                    AgentState::LoggedOut
                };
            }
        }
        self.acd.forget(call);
    }

    // ---- the model's expectations of the agent table --------------------------------

    pub(super) fn index(&self, id: &str) -> usize {
        self.ops
            .iter()
            .position(|o| o.id == id)
            .expect("a configured operator")
    }

    pub(super) fn expect_offer_end(&mut self, id: &str, call: CallHandle, end: OfferEnd) {
        let now = self.now;
        let i = self.index(id);
        let op = &mut self.ops[i];
        if op.state != (AgentState::Ringing { call }) {
            return;
        }
        let block = now + op.reject_delay.max(1_000);
        match end {
            OfferEnd::Withdrawn => {}
            OfferEnd::Rejected => {
                op.no_answers = 0;
                op.blocked_until = Some(block);
                op.idle_since = None;
            }
            OfferEnd::Failed => {
                op.no_answers += 1;
                op.blocked_until = Some(block);
                op.idle_since = None;
            }
            OfferEnd::NoAnswer => {
                op.no_answers += 1;
                op.idle_since = None;
            }
        }
        op.state = if op.no_answer_limit > 0 && op.no_answers >= op.no_answer_limit {
            op.no_answers = 0;
            AgentState::NotReady {
                reason: NotReadyReason::NoAnswer,
            }
        } else {
            AgentState::Available {
                since: t(op.idle_since.unwrap_or(now)),
            }
        };
        if matches!(op.state, AgentState::NotReady { .. }) {
            self.seen("not ready after no answers");
        }
    }

    pub(super) fn expect_call_ended(&mut self, id: &str, call: CallHandle) {
        let now = self.now;
        let i = self.index(id);
        let op = &mut self.ops[i];
        if op.state != (AgentState::OnCall { call }) {
            return;
        }
        op.idle_since = None;
        op.state = if !op.registered {
            AgentState::LoggedOut
        } else if op.wrap_up == 0 {
            AgentState::Available { since: t(now) }
        } else {
            AgentState::WrapUp {
                until: t(now + op.wrap_up),
            }
        };
    }
}
