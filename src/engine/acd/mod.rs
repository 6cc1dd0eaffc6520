//! The ACD (automatic call distribution): operators' agent states, the queues of emergency
//! calls waiting for one, who is offered which call, when a call overflows to the backup
//! centre, repeat callers and the callback worklist. It decides; it sends nothing and never
//! waits (the call model acts on its decisions, `crate::engine::call`).
//!
//! Surface, in the engine's order:
//! - getters: [`Acd::state`], [`Acd::waiting`], [`Acd::entry`], [`Acd::ringing_for`] …
//! - inputs: registrations ([`Acd::registered`], [`Acd::unregistered`]), operator commands
//!   ([`Acd::command`]), the queue ([`Acd::enqueue`], [`Acd::requeue`], [`Acd::forget`]),
//!   offers and calls ([`Acd::offer`], [`Acd::offer_ended`], [`Acd::answered`],
//!   [`Acd::call_ended`], [`Acd::start_callback`], [`Acd::callback_unanswered`]), overflow ([`Acd::overflowing`],
//!   [`Acd::overflow_failed`], [`Acd::overflow_answered`]), time ([`Acd::handle_timeout`]);
//! - decisions: [`Acd::next_offer`], [`Acd::next_overflow`];
//! - outputs: [`Acd::poll_transition`] (every agent state change, for `agent_events`),
//!   [`Acd::poll_widened`], and [`Acd::poll_timeout`] (the next wrap-up end, reject delay
//!   end, widening or overflow deadline).
//!
//! Order of service: higher priority first, then place (arrival order; a call that comes
//! back keeps its place, one whose answered operator leg failed goes to the head). Among
//! the operators who may take a call (available, not blocked after a reject, serving its
//! queue, with its skills unless it widened, reachable) the queue's strategy chooses
//! (`strategy`). Every choice is deterministic: operators are kept in id order.

mod agent;
pub mod erlang;
mod queue;
mod repeat;
mod settings;
mod strategy;
mod worklist;

pub use agent::{AgentError, AgentState, NotReadyReason, OfferEnd, Transition, Trigger};
pub use queue::{Entry, QueueId, Stage};
pub use repeat::RepeatCallers;
pub use settings::{
    AcdSettings, AgentSettings, FeatureCodes, LoginPolicy, Overflow, QueueSettings, Route, Strategy,
};
pub use strategy::{Candidate, Policy};
pub use worklist::{CallbackItem, DROPPED_UNCLASSIFIED, Worklist};

use super::time::MonoTime;
use agent::Agent;
use std::collections::{BTreeMap, HashMap, VecDeque};
use uuid::Uuid;

/// A call as the ACD knows it: the call model's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// An operator's command (feature codes now, the HTTP API later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentCommand {
    /// Log in, or become available from not ready or wrap-up.
    Ready,
    /// Not ready (reason `requested`).
    NotReady,
    /// End wrap-up now.
    EndWrapUp,
    /// Log out.
    Logout,
}

impl AgentCommand {
    fn trigger(self) -> Trigger {
        match self {
            AgentCommand::Ready => Trigger::Ready,
            AgentCommand::NotReady => Trigger::NotReady(NotReadyReason::Requested),
            AgentCommand::EndWrapUp => Trigger::EndWrapUp,
            AgentCommand::Logout => Trigger::Logout,
        }
    }
}

/// Where a new call goes: its queue, the skills it needs, its base priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    /// The queue.
    pub queue: QueueId,
    /// Skills needed until the call widens.
    pub skills: Vec<String>,
    /// Base priority (the route's).
    pub priority: u8,
}

/// An offer to make: ring `operators` (one, or several for ring-all) for `call`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The call.
    pub call: CallHandle,
    /// The operators, in id order.
    pub operators: Vec<String>,
}

/// What the ACD keeps of an operator's settings.
#[derive(Clone, Debug)]
struct Serves {
    /// Queues served (every queue when the operator names none).
    queues: Vec<QueueId>,
    skills: Vec<String>,
}

/// Agents, queues, repeat callers and the callback worklist.
#[derive(Clone, Debug)]
pub struct Acd {
    queues: Vec<QueueSettings>,
    routes: Vec<Route>,
    agents: BTreeMap<String, Agent>,
    serves: HashMap<String, Serves>,
    calls: queue::Calls,
    /// The operator last offered a call of each queue (round-robin).
    last_offered: HashMap<QueueId, String>,
    transitions: VecDeque<Transition>,
    widened: VecDeque<CallHandle>,
    /// The latest time seen: deadlines at or before it are due already.
    now: MonoTime,
    /// Callers whose last call was abandoned or dropped.
    pub repeat: RepeatCallers,
    /// Callers to call back.
    pub worklist: Worklist,
    /// The time of the last `handle_timeout`: deadlines after it are still to be handled,
    /// even one at the latest time seen (an input at that instant came first).
    handled: MonoTime,
}

impl Default for Acd {
    /// One default queue `112`, no operators.
    fn default() -> Self {
        Acd::new(&AcdSettings::single_queue([]), [])
    }
}

impl Acd {
    /// An ACD with `settings`, for `operators` (all logged out). An operator missing from
    /// `settings.agents` serves every queue without skills; `settings.queues` must not be
    /// empty (config validation sees to it; an empty list gets one default queue `112`).
    pub fn new<'a>(settings: &AcdSettings, operators: impl IntoIterator<Item = &'a str>) -> Self {
        let mut queues = settings.queues.clone();
        if queues.is_empty() {
            queues.push(QueueSettings::named("112"));
        }
        let queue_id = |name: &str| {
            queues
                .iter()
                .position(|q| q.name.eq_ignore_ascii_case(name))
                .map(QueueId)
        };
        let mut agents = BTreeMap::new();
        let mut serves = HashMap::new();
        for id in operators {
            let own = settings
                .agents
                .iter()
                .find(|a| a.id == id)
                .cloned()
                .unwrap_or_else(|| AgentSettings::plain(id));
            let mut served: Vec<QueueId> = own.queues.iter().filter_map(|q| queue_id(q)).collect();
            if served.is_empty() {
                served = (0..queues.len()).map(QueueId).collect();
            }
            let first = &queues[served[0].0];
            agents.insert(
                id.to_owned(),
                Agent {
                    id: id.to_owned(),
                    state: AgentState::LoggedOut,
                    registered: false,
                    login_on_register: served
                        .iter()
                        .any(|q| queues[q.0].login == LoginPolicy::OnRegister),
                    logged_out_explicitly: false,
                    wrap_up: own.wrap_up.unwrap_or(first.wrap_up),
                    no_answers: 0,
                    no_answer_limit: first.no_answer_limit,
                    reject_delay: first.reject_delay,
                    blocked_until: None,
                    idle_since: None,
                    entered: MonoTime::ZERO,
                },
            );
            serves.insert(
                id.to_owned(),
                Serves {
                    queues: served,
                    skills: own.skills,
                },
            );
        }
        Acd {
            routes: settings.routes.clone(),
            queues,
            agents,
            serves,
            calls: queue::Calls::default(),
            last_offered: HashMap::new(),
            transitions: VecDeque::new(),
            widened: VecDeque::new(),
            now: MonoTime::ZERO,
            repeat: RepeatCallers::new(settings.repeat_window),
            worklist: Worklist::default(),
            handled: MonoTime::ZERO,
        }
    }

    // ---- getters ------------------------------------------------------------------------

    /// The agent state of operator `id`, if configured.
    pub fn state(&self, id: &str) -> Option<AgentState> {
        self.agents.get(id).map(|a| a.state)
    }

    /// Every operator and their state, in id order.
    pub fn agents(&self) -> impl Iterator<Item = (&str, AgentState)> + '_ {
        self.agents.iter().map(|(id, a)| (id.as_str(), a.state))
    }

    /// Operator `id`'s state, when it entered it, and whether their phone is registered.
    pub fn agent_status(&self, id: &str) -> Option<(AgentState, MonoTime, bool)> {
        self.agents
            .get(id)
            .map(|a| (a.state, a.entered, a.registered))
    }

    /// The settings of queue `queue`.
    pub fn queue(&self, queue: QueueId) -> &QueueSettings {
        &self.queues[queue.0.min(self.queues.len() - 1)]
    }

    /// Calls waiting for an operator.
    pub fn waiting(&self) -> usize {
        self.calls.waiting_len()
    }

    /// Waiting calls in service order.
    pub fn waiting_calls(&self) -> impl Iterator<Item = (CallHandle, &Entry)> + '_ {
        self.calls.waiting()
    }

    /// Whether `call` is waiting in a queue.
    pub fn is_waiting(&self, call: CallHandle) -> bool {
        self.calls
            .get(call)
            .is_some_and(|e| e.stage == Stage::Waiting)
    }

    /// What the ACD knows of `call`.
    pub fn entry(&self, call: CallHandle) -> Option<&Entry> {
        self.calls.get(call)
    }

    /// Operators logged in (any state but logged out).
    pub fn logged_in(&self) -> usize {
        self.agents
            .values()
            .filter(|a| a.state.is_logged_in())
            .count()
    }

    /// Operators logged in who serve `queue`.
    pub fn logged_in_for(&self, queue: QueueId) -> usize {
        self.agents
            .values()
            .filter(|a| a.state.is_logged_in() && self.serves_queue(&a.id, queue))
            .count()
    }

    /// Whether operator `id` serves `queue`.
    pub fn serves_queue(&self, id: &str, queue: QueueId) -> bool {
        self.serves
            .get(id)
            .is_some_and(|s| s.queues.contains(&queue))
    }

    /// The operators ringing for `call`, in id order.
    pub fn ringing_for(&self, call: CallHandle) -> Vec<&str> {
        self.agents
            .values()
            .filter(|a| a.state == AgentState::Ringing { call })
            .map(|a| a.id.as_str())
            .collect()
    }

    /// Where a call to `dialled` goes (the number first dialled first, then the number
    /// called, compared without visual separators `-.()`): the first route naming one of
    /// them, else the first queue without skills at priority 0.
    pub fn route(&self, dialled: &[&str]) -> Routing {
        let bare = |n: &str| -> String { n.chars().filter(|c| !"-.() ".contains(*c)).collect() };
        for number in dialled.iter().map(|n| bare(n)) {
            let route = self
                .routes
                .iter()
                .find(|r| r.numbers.iter().any(|n| bare(n) == number));
            if let Some(route) = route {
                let queue = self
                    .queues
                    .iter()
                    .position(|q| q.name.eq_ignore_ascii_case(&route.queue))
                    .unwrap_or(0);
                return Routing {
                    queue: QueueId(queue),
                    skills: route.skills.clone(),
                    priority: route.priority,
                };
            }
        }
        Routing {
            queue: QueueId(0),
            skills: Vec::new(),
            priority: 0,
        }
    }

    // ---- operators ----------------------------------------------------------------------

    /// Operator `id` registered its first binding: logged in (available) under the
    /// `on-register` policy.
    pub fn registered(&mut self, id: &str, now: MonoTime) {
        self.apply(id, Trigger::Registered, now).ok();
    }

    /// Operator `id` lost its last binding: logged out; a call in progress goes on and
    /// the operator is logged out when it ends. Returns the call the operator's phone was
    /// ringing for: the call model withdraws that offer (CANCEL) and re-offers the call.
    pub fn unregistered(&mut self, id: &str, now: MonoTime) -> Option<CallHandle> {
        let ringing = match self.state(id) {
            Some(AgentState::Ringing { call }) => Some(call),
            _ => None,
        };
        self.apply(id, Trigger::Unregistered, now).ok();
        ringing
    }

    /// Operator `id`'s command: the new state, or why not (state unchanged; an unknown
    /// operator, an unregistered one logging in, an impossible move such as `end_wrap_up`
    /// while available).
    pub fn command(
        &mut self,
        id: &str,
        command: AgentCommand,
        now: MonoTime,
    ) -> Result<AgentState, AgentError> {
        self.apply(id, command.trigger(), now)?;
        self.state(id)
            .ok_or_else(|| AgentError::UnknownOperator(id.to_owned()))
    }

    /// Operator `id` goes not ready for `reason` (one of [`NotReadyReason::CHOSEN`]): the
    /// new state, or why not, as [`Acd::command`]. `no_answer` is refused: only the ACD
    /// sets it.
    pub fn not_ready(
        &mut self,
        id: &str,
        reason: NotReadyReason,
        now: MonoTime,
    ) -> Result<AgentState, AgentError> {
        self.apply(id, Trigger::NotReady(reason), now)?;
        self.state(id)
            .ok_or_else(|| AgentError::UnknownOperator(id.to_owned()))
    }

    fn apply(
        &mut self,
        id: &str,
        trigger: Trigger,
        now: MonoTime,
    ) -> Result<Option<AgentState>, AgentError> {
        self.now = self.now.max(now);
        let agent = self
            .agents
            .get_mut(id)
            .ok_or_else(|| AgentError::UnknownOperator(id.to_owned()))?;
        let moved = agent.apply(trigger, now)?;
        Ok(moved.map(|t| {
            let to = t.to;
            self.transitions.push_back(t);
            to
        }))
    }

    // ---- the queue ----------------------------------------------------------------------

    /// A new `call` (record `record`) waits in `routing.queue` at `priority` (the routing's
    /// base, raised by signalling and repeat calls by the call model), at the back.
    pub fn enqueue(
        &mut self,
        call: CallHandle,
        record: Uuid,
        routing: &Routing,
        priority: u8,
        now: MonoTime,
    ) {
        self.now = self.now.max(now);
        let widen_at = if routing.skills.is_empty() {
            None
        } else {
            self.queue(routing.queue)
                .widen_after
                .map(|after| now + after)
        };
        self.calls.insert(
            call,
            Entry {
                record,
                queue: routing.queue,
                priority,
                place: 0,
                skills: routing.skills.clone(),
                widen_at,
                widened: routing.skills.is_empty(),
                queued_at: now,
                overflow_not_before: None,
                stage: Stage::Waiting,
            },
        );
    }

    /// `call` waits again at `now`: at its place, or at the head of its priority (`head`:
    /// its answered operator leg failed). A call that was answered counts its overflow
    /// wait (`overflow.after`) from `now`, not from its arrival: its caller was being
    /// served until then. False for a call the ACD does not know.
    pub fn requeue(&mut self, call: CallHandle, head: bool, now: MonoTime) -> bool {
        self.now = self.now.max(now);
        self.calls.wait_again(call, head, now)
    }

    /// Forgets `call` (it ended). Operators still ringing for it or on it are not changed:
    /// the call model ends those first (`offer_ended`, `call_ended`).
    pub fn forget(&mut self, call: CallHandle) {
        self.calls.forget(call);
    }

    /// The next offer to make at `now`: the first waiting call in service order for which
    /// `offerable` holds and some operator may take it, with the operators its queue's
    /// strategy picks. `reachable` says whether an operator's phone can be rung (a
    /// binding that can be reached). `None` when no waiting call can be offered now.
    pub fn next_offer(
        &self,
        now: MonoTime,
        offerable: impl Fn(CallHandle) -> bool,
        reachable: impl Fn(&str) -> bool,
    ) -> Option<Offer> {
        let idle: Vec<(&Agent, MonoTime)> = self
            .agents
            .values()
            .filter_map(|a| match a.state {
                AgentState::Available { since }
                    if a.blocked_until.is_none_or(|until| until <= now) =>
                {
                    Some((a, since))
                }
                _ => None,
            })
            .collect();
        if idle.is_empty() {
            return None;
        }
        for (call, entry) in self.calls.waiting() {
            if !offerable(call) {
                continue;
            }
            let required = entry.required_skills(now);
            let candidates: Vec<Candidate> = idle
                .iter()
                .filter_map(|(a, since)| {
                    let serves = self.serves.get(&a.id)?;
                    let fits = serves.queues.contains(&entry.queue)
                        && required.iter().all(|s| serves.skills.contains(s))
                        && reachable(&a.id);
                    fits.then_some(Candidate {
                        id: &a.id,
                        since: *since,
                        skills: &serves.skills,
                    })
                })
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let strategy = self.queue(entry.queue).strategy;
            let last = self.last_offered.get(&entry.queue).map(String::as_str);
            let operators: Vec<String> = strategy
                .policy()
                .choose(&candidates, last)
                .into_iter()
                .map(str::to_owned)
                .collect();
            if !operators.is_empty() {
                return Some(Offer { call, operators });
            }
        }
        None
    }

    /// Makes `offer`: each operator available → ringing for the call, which leaves the
    /// waiting order. Operators that cannot be reserved (no longer available) are left
    /// out; the ones reserved are returned (empty: nothing changed, the call still waits).
    pub fn offer(&mut self, offer: &Offer, now: MonoTime) -> Vec<String> {
        let mut reserved = Vec::new();
        for id in &offer.operators {
            if let Ok(Some(_)) = self.apply(id, Trigger::Offer(offer.call), now) {
                reserved.push(id.clone());
            }
        }
        if let (Some(entry), Some(last)) = (self.calls.get(offer.call), reserved.last()) {
            self.last_offered.insert(entry.queue, last.clone());
            self.calls.set_stage(offer.call, Stage::Offered);
        }
        reserved
    }

    /// The offer of `call` to operator `id` ended unanswered (`end`): the operator is
    /// available again, blocked for a while after a reject, or not ready after
    /// `no_answer_limit` unanswered offers in a row. The call's place is kept; the call
    /// model requeues it (`requeue`) once no operator rings for it any more.
    pub fn offer_ended(&mut self, call: CallHandle, id: &str, end: OfferEnd, now: MonoTime) {
        self.apply(id, Trigger::OfferEnded(call, end), now).ok();
    }

    /// Operator `id` answered `call`: ringing → on call. Other operators ringing for it
    /// (ring-all) stay ringing until the call model withdraws their offers.
    pub fn answered(&mut self, call: CallHandle, id: &str, now: MonoTime) {
        if let Ok(Some(_)) = self.apply(id, Trigger::Answer(call), now) {
            self.calls.set_stage(call, Stage::Connected);
        }
    }

    /// `call`, answered by `id`, ended for that operator: wrap-up (the operator's, else
    /// the queue's; none when 0), or logged out if the operator unregistered meanwhile.
    pub fn call_ended(&mut self, call: CallHandle, id: &str, now: MonoTime) {
        self.apply(id, Trigger::CallEnded(call), now).ok();
    }

    /// The callback `call` that operator `id` placed ended without an answer (busy, no
    /// answer, failed, or the operator hung up first): available at once, without wrap-up
    /// (nothing was handled), or logged out if the operator unregistered meanwhile.
    pub fn callback_unanswered(&mut self, call: CallHandle, id: &str, now: MonoTime) {
        self.apply(id, Trigger::CallbackUnanswered(call), now).ok();
    }

    /// Whether operator `id` could place a callback now ([`Acd::start_callback`] would not
    /// refuse), changing nothing: checked before a worklist item is taken, so an operator
    /// who cannot place it uses up no attempt.
    ///
    /// Errors: the [`AgentError`] `start_callback` would return.
    pub fn can_start_callback(
        &self,
        id: &str,
        call: CallHandle,
        now: MonoTime,
    ) -> Result<(), AgentError> {
        let mut agent = self
            .agents
            .get(id)
            .cloned()
            .ok_or_else(|| AgentError::UnknownOperator(id.to_owned()))?;
        agent.apply(Trigger::Answer(call), now).map(|_| ())
    }

    /// Operator `id` places callback `call` (record `record`): on call from available,
    /// wrap-up or not ready. Refused while ringing, on a call or logged out.
    pub fn start_callback(
        &mut self,
        id: &str,
        call: CallHandle,
        record: Uuid,
        now: MonoTime,
    ) -> Result<(), AgentError> {
        self.apply(id, Trigger::Answer(call), now)?;
        let queue = self
            .serves
            .get(id)
            .and_then(|s| s.queues.first().copied())
            .unwrap_or(QueueId(0));
        self.calls.insert(
            call,
            Entry {
                record,
                queue,
                priority: 0,
                place: 0,
                skills: Vec::new(),
                widen_at: None,
                widened: true,
                queued_at: now,
                overflow_not_before: None,
                stage: Stage::Waiting,
            },
        );
        self.calls.set_stage(call, Stage::Connected);
        Ok(())
    }

    // ---- overflow -----------------------------------------------------------------------

    /// The next waiting call to divert to its queue's backup destination at `now`: one
    /// whose queue has an overflow, that `offerable` allows, not paused after a failed
    /// overflow, and either nobody serving its queue is logged in or it has waited
    /// `overflow.after`. `None` when there is none.
    pub fn next_overflow(
        &self,
        now: MonoTime,
        offerable: impl Fn(CallHandle) -> bool,
    ) -> Option<(CallHandle, Overflow)> {
        self.calls.waiting().find_map(|(call, entry)| {
            let overflow = self.queue(entry.queue).overflow.as_ref()?;
            let paused = entry.overflow_not_before.is_some_and(|t| t > now);
            let due = self.logged_in_for(entry.queue) == 0
                || now.saturating_since(entry.queued_at) >= overflow.after;
            (!paused && due && offerable(call)).then(|| (call, overflow.clone()))
        })
    }

    /// `call` is ringing the backup centre: out of the waiting order.
    pub fn overflowing(&mut self, call: CallHandle) {
        self.calls.set_stage(call, Stage::Overflowing);
    }

    /// The backup centre did not take `call`: it waits again at its place, and is not
    /// diverted again for `overflow.after`.
    pub fn overflow_failed(&mut self, call: CallHandle, now: MonoTime) {
        self.now = self.now.max(now);
        let pause = self
            .calls
            .get(call)
            .and_then(|e| self.queue(e.queue).overflow.as_ref())
            .map(|o| o.after);
        if let (Some(entry), Some(pause)) = (self.calls.get_mut(call), pause) {
            entry.overflow_not_before = Some(now + pause);
        }
        self.calls.wait_again(call, false, now);
    }

    /// The backup centre answered `call`.
    pub fn overflow_answered(&mut self, call: CallHandle) {
        self.calls.set_stage(call, Stage::Connected);
    }

    // ---- time and outputs ---------------------------------------------------------------

    /// Everything due at `now`: wrap-ups that end, calls whose skills requirement lapses
    /// (reported by `poll_widened`). Reject delays and overflow deadlines need no action
    /// here: the call model dispatches after this.
    pub fn handle_timeout(&mut self, now: MonoTime) {
        self.now = self.now.max(now);
        self.handled = self.handled.max(now);
        let ended: Vec<String> = self
            .agents
            .values()
            .filter(|a| matches!(a.state, AgentState::WrapUp { until } if until <= now))
            .map(|a| a.id.clone())
            .collect();
        for id in ended {
            self.apply(&id, Trigger::WrapUpElapsed, now).ok();
        }
        // A call answered already needs no operator: it does not widen (if it comes back to
        // the queue it widens at the next timeout).
        let mut widened: Vec<CallHandle> = self
            .calls
            .all()
            .filter(|(_, e)| !e.widened && e.widen_at.is_some_and(|at| at <= now))
            .filter(|(_, e)| e.stage != Stage::Connected)
            .map(|(c, _)| c)
            .collect();
        // The entries are hashed: reported in handle order, so a seed replays exactly.
        widened.sort();
        for call in widened {
            if let Some(entry) = self.calls.get_mut(call) {
                entry.widened = true;
            }
            self.widened.push_back(call);
        }
    }

    /// The next agent state change to record, oldest first.
    pub fn poll_transition(&mut self) -> Option<Transition> {
        self.transitions.pop_front()
    }

    /// The next call whose skills requirement lapsed (record it as `widened`).
    pub fn poll_widened(&mut self) -> Option<CallHandle> {
        self.widened.pop_front()
    }

    /// When the ACD next needs `handle_timeout` (then a dispatch): the earliest wrap-up
    /// end, reject-delay end, widening, or overflow deadline of a waiting call not handled
    /// yet (after the last `handle_timeout`; it may be at the latest time seen).
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        let now = self.now;
        let agents = self.agents.values().flat_map(|a| {
            let wrap = match a.state {
                AgentState::WrapUp { until } => Some(until),
                _ => None,
            };
            [wrap, a.blocked_until]
        });
        let calls = self.calls.all().flat_map(|(_, e)| {
            let widen = e.widen_at.filter(|_| !e.widened);
            let overflow = (e.stage == Stage::Waiting)
                .then(|| self.queue(e.queue).overflow.as_ref())
                .flatten()
                .map(|o| (e.queued_at + o.after).max(e.overflow_not_before.unwrap_or(now)));
            [widen, overflow]
        });
        // Not `> now`: a deadline at the instant of an input handled before the timer
        // (which moved `now`) would be skipped until some later timer.
        agents
            .chain(calls)
            .flatten()
            .filter(|t| *t > self.handled)
            .min()
    }
}

#[cfg(test)]
mod tests;
