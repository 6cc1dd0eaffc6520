//! The bulk model's expectations and the checks after every step: which operator may take
//! which call, the exact next offer (the order of service of `check::acd` and each
//! strategy), which overflows are due, what falls due when, and the rules compared with
//! the ACD after each step and at the end.

use super::{CALLS_PER_SEED, CallM, OpM, Run, Status, ms};
use crate::engine::acd::{AgentState, CallHandle, Strategy};
use crate::engine::time::MonoTime;
use std::collections::BTreeMap;

impl Run {
    // ---- the model's expectations of the order of service ---------------------------

    /// Whether operator `op` may take `call` now.
    fn eligible(&self, op: &OpM, call: &CallM) -> bool {
        let now = self.now;
        let required: &[String] = if call.widen_at.is_some_and(|at| at <= now) {
            &[]
        } else {
            &call.skills
        };
        matches!(op.state, AgentState::Available { .. })
            && op.registered
            && op.blocked_until.is_none_or(|u| u <= now)
            && op.queues.contains(&call.queue)
            && required.iter().all(|s| op.skills.contains(s))
    }

    /// The offer the ACD must make now: the first waiting call in the order of service
    /// with an eligible operator, and whom its strategy rings.
    pub(super) fn expected_offer(&self) -> Option<(CallHandle, Vec<String>)> {
        if !self
            .ops
            .iter()
            .any(|o| matches!(o.state, AgentState::Available { .. }))
        {
            return None;
        }
        self.waiting.iter().find_map(|w| {
            let call = &self.calls[&w.call];
            let cands: Vec<&OpM> = self.ops.iter().filter(|o| self.eligible(o, call)).collect();
            if cands.is_empty() {
                return None;
            }
            let since = |o: &OpM| match o.state {
                AgentState::Available { since } => since,
                _ => MonoTime::ZERO,
            };
            let mut by_id = cands.clone();
            by_id.sort_by(|a, b| a.id.cmp(&b.id));
            let chosen: Vec<String> = match self.settings.queues[call.queue].strategy {
                Strategy::RingAll => by_id.iter().map(|o| o.id.clone()).collect(),
                Strategy::LongestIdle => {
                    let o = by_id.iter().min_by_key(|o| (since(o), &o.id))?;
                    vec![o.id.clone()]
                }
                Strategy::Skills => {
                    let o = by_id
                        .iter()
                        .min_by_key(|o| (o.skills.len(), since(o), &o.id))?;
                    vec![o.id.clone()]
                }
                Strategy::RoundRobin => {
                    let last = self.last_offered.get(&call.queue);
                    let o = last
                        .and_then(|l| by_id.iter().find(|o| &o.id > l))
                        .unwrap_or(&by_id[0]);
                    vec![o.id.clone()]
                }
            };
            Some((w.call, chosen))
        })
    }

    /// Waiting calls due to overflow now (in the order of service).
    pub(super) fn due_overflows(&self) -> Vec<CallHandle> {
        let now = self.now;
        self.waiting
            .iter()
            .filter(|w| {
                let c = &self.calls[&w.call];
                let Some(o) = self.settings.queues[c.queue].overflow.as_ref() else {
                    return false;
                };
                let nobody = !self
                    .ops
                    .iter()
                    .any(|op| op.state != AgentState::LoggedOut && op.queues.contains(&c.queue));
                let paused = c.overflow_not_before.is_some_and(|n| n > now);
                !paused && (nobody || now - c.overflow_from >= ms(o.after))
            })
            .map(|w| w.call)
            .collect()
    }

    // ---- checks ---------------------------------------------------------------------

    /// The rules after a step: every agent state change in the table and chained; every
    /// operator in the state the model expects, ringing or on call only for a call that
    /// rings them or is bridged to them; the waiting calls in the promised order; no
    /// eligible operator beside a waiting call; no overflow due and not made; the ACD's
    /// next timeout no later than anything the model knows falls due.
    pub(super) fn check(&mut self) {
        let mut v = Vec::new();
        while let Some(tr) = self.acd.poll_transition() {
            self.note(|| {
                format!(
                    "  {}: {} -> {} ({})",
                    tr.operator, tr.from, tr.to, tr.reason
                )
            });
            v.extend(
                self.track
                    .step(&tr.operator, tr.from.name(), tr.to.name(), tr.reason),
            );
        }
        for op in &self.ops {
            let state = self.acd.state(&op.id);
            if state != Some(op.state) {
                v.push(format!(
                    "{} is {state:?}, the model expects {:?}",
                    op.id, op.state
                ));
            }
            if self.track.last(&op.id) != op.state.name() {
                v.push(format!(
                    "{}'s last transition entered {}, the model expects {}",
                    op.id,
                    self.track.last(&op.id),
                    op.state.name()
                ));
            }
            let bound = match op.state {
                AgentState::Ringing { call } => matches!(
                    self.calls.get(&call).map(|c| &c.status),
                    Some(Status::Ringing(ops)) if ops.contains(&op.id)
                ),
                AgentState::OnCall { call } => matches!(
                    self.calls.get(&call).map(|c| &c.status),
                    Some(Status::Talking(o) | Status::Callback(o)) if *o == op.id
                ),
                _ => true,
            };
            if !bound {
                v.push(format!("{} is {:?} without that call", op.id, op.state));
            }
        }
        let mut busy: BTreeMap<&str, CallHandle> = BTreeMap::new();
        for (h, c) in &self.calls {
            let ops: Vec<&String> = match &c.status {
                Status::Ringing(ops) => ops.iter().collect(),
                Status::Talking(o) | Status::Callback(o) => vec![o],
                _ => Vec::new(),
            };
            for o in ops {
                if let Some(other) = busy.insert(o, *h) {
                    v.push(format!("{o} is held by {other:?} and {h:?}"));
                }
                let i = self.index(o);
                if self.ops[i].state.call() != Some(*h) {
                    v.push(format!("{o} is {:?}, {h:?} holds them", self.ops[i].state));
                }
            }
        }
        let acd_order: Vec<CallHandle> = self.acd.waiting_calls().map(|(c, _)| c).collect();
        let model_order: Vec<CallHandle> = self.waiting.iter().map(|w| w.call).collect();
        if acd_order != model_order {
            v.push(format!(
                "waiting order {acd_order:?}, the order of service is {model_order:?}"
            ));
        }
        // No eligible operator beside a waiting call: `dispatch` ran until both the ACD
        // and the model had no offer left.
        let handled = self.handled;
        let due = self
            .model_deadlines()
            .into_iter()
            .filter(|d| handled.is_none_or(|h| *d > h))
            .min()
            // A deadline passed while it did not apply (an overflow deadline of a call
            // that was ringing) is due now.
            .map(|d| d.max(self.now));
        let next = self.acd.poll_timeout().map(|t| ms(t.since_origin()));
        if let Some(due) = due
            && next.is_none_or(|n| n > due)
        {
            v.push(format!(
                "the ACD's next timeout {next:?} is after {due} ms, when something falls due"
            ));
        }
        if !v.is_empty() {
            self.note(|| format!("BROKEN: {}", v.join("; ")));
        }
        self.broken.extend(v);
    }

    /// Times at which the model knows the ACD must act: wrap-up ends, reject pauses ending,
    /// skills requirements lapsing, overflows falling due.
    fn model_deadlines(&self) -> Vec<u64> {
        let mut d = Vec::new();
        for op in &self.ops {
            if let AgentState::WrapUp { until } = op.state {
                d.push(ms(until.since_origin()));
            }
            d.extend(op.blocked_until);
        }
        for c in self.calls.values() {
            if matches!(c.status, Status::Callback(_)) {
                continue;
            }
            if !c.widened {
                d.extend(c.widen_at);
            }
            if c.status == Status::Waiting
                && let Some(o) = self.settings.queues[c.queue].overflow.as_ref()
            {
                d.push((c.overflow_from + ms(o.after)).max(c.overflow_not_before.unwrap_or(0)));
            }
        }
        d
    }

    /// At the end: every call ended once, none waits, no operator is held.
    pub(super) fn check_end(&mut self) {
        let left: Vec<CallHandle> = self
            .pending
            .keys()
            .chain(self.calls.keys())
            .copied()
            .collect();
        if !left.is_empty() {
            self.broken.push(format!("calls never ended: {left:?}"));
        }
        if self.ended.len() != CALLS_PER_SEED {
            self.broken.push(format!(
                "{} calls ended of {CALLS_PER_SEED}",
                self.ended.len()
            ));
        }
        for h in self.ended.keys() {
            if self.acd.entry(*h).is_some() {
                self.broken.push(format!("the ACD still knows {h:?}"));
            }
        }
        if self.acd.waiting() != 0 {
            self.broken
                .push(format!("{} calls still wait", self.acd.waiting()));
        }
        for (id, state) in self.acd.agents() {
            if state.call().is_some() {
                self.broken.push(format!("{id} is left {state:?}"));
            }
        }
    }
}
