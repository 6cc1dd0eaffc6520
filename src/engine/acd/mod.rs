//! The ACD (automatic call distribution): operators' agent states and the queue of
//! emergency calls waiting for one. It decides who takes which call; it sends nothing and
//! never waits (the call model acts on its decisions).
//!
//! This is the first cut the end-to-end call needs: one queue, FIFO, the longest-idle
//! available operator, and the states `logged_out`, `available`, `ringing` and `on_call`.
//! Wrap-up, not-ready, priorities, skills and overflow arrive with the ACD issue.
//!
//! Operators log in by registering (the `on-register` login policy): a first binding makes
//! the operator available, the last binding going away logs them out — a call in progress
//! continues, and the operator is logged out when it ends.

mod settings;

pub use settings::{
    AcdSettings, AgentSettings, FeatureCodes, LoginPolicy, Overflow, QueueSettings, Route, Strategy,
};

use super::time::MonoTime;
use std::collections::{BTreeMap, HashMap};

/// A call as the ACD knows it: the call model's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// An operator's agent state (DESIGN.md "Words").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// No registered binding: not offered calls.
    LoggedOut,
    /// Waiting for a call since `since` (the longest-idle operator is offered first).
    Available {
        /// When the operator last became available.
        since: MonoTime,
    },
    /// Reserved for `call`, whose INVITE is ringing the operator's phone.
    Ringing {
        /// The call offered.
        call: CallHandle,
    },
    /// Talking on `call`.
    OnCall {
        /// The call answered.
        call: CallHandle,
    },
}

#[derive(Clone, Debug)]
struct Agent {
    state: AgentState,
    /// Whether the operator has a binding; when false while ringing or on a call, the
    /// operator is logged out once that ends.
    registered: bool,
}

/// Agents and the queue. Ids are operator ids (`operators[].id`).
#[derive(Clone, Debug, Default)]
pub struct Acd {
    agents: HashMap<String, Agent>,
    /// Waiting calls by queue position: FIFO (a call offered and not answered keeps its
    /// position when it comes back).
    waiting: BTreeMap<u64, CallHandle>,
    positions: HashMap<CallHandle, u64>,
}

impl Acd {
    /// An ACD for these operators, all logged out.
    pub fn new<'a>(operators: impl IntoIterator<Item = &'a str>) -> Self {
        let agents = operators
            .into_iter()
            .map(|id| {
                (
                    id.to_owned(),
                    Agent {
                        state: AgentState::LoggedOut,
                        registered: false,
                    },
                )
            })
            .collect();
        Acd {
            agents,
            ..Acd::default()
        }
    }

    // Getters.

    /// The agent state of operator `id`, if configured.
    pub fn state(&self, id: &str) -> Option<AgentState> {
        self.agents.get(id).map(|a| a.state)
    }

    /// Calls waiting for an operator.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Operators logged in (any state but logged out).
    pub fn logged_in(&self) -> usize {
        self.agents
            .values()
            .filter(|a| a.state != AgentState::LoggedOut)
            .count()
    }

    /// Whether `call` is waiting in the queue.
    pub fn is_waiting(&self, call: CallHandle) -> bool {
        self.positions.contains_key(&call)
    }

    // Agent events.

    /// Operator `id` registered its first binding: logged out → available.
    pub fn registered(&mut self, id: &str, now: MonoTime) {
        if let Some(agent) = self.agents.get_mut(id) {
            agent.registered = true;
            if agent.state == AgentState::LoggedOut {
                agent.state = AgentState::Available { since: now };
            }
        }
    }

    /// Operator `id` lost its last binding: available → logged out; a ringing or
    /// answered call goes on, and the operator is logged out when it ends.
    pub fn unregistered(&mut self, id: &str) {
        if let Some(agent) = self.agents.get_mut(id) {
            agent.registered = false;
            if matches!(agent.state, AgentState::Available { .. }) {
                agent.state = AgentState::LoggedOut;
            }
        }
    }

    // Queue.

    /// `call` joins the queue (or returns to it) at `position`: a lower position is
    /// served first.
    pub fn enqueue(&mut self, call: CallHandle, position: u64) {
        if let Some(old) = self.positions.insert(call, position) {
            self.waiting.remove(&old);
        }
        self.waiting.insert(position, call);
    }

    /// `call` leaves the queue (abandoned, or offered).
    pub fn dequeue(&mut self, call: CallHandle) {
        if let Some(position) = self.positions.remove(&call) {
            self.waiting.remove(&position);
        }
    }

    /// The next offer to make: the first waiting call (FIFO) for which an available
    /// operator is not `excluded`, with the longest-idle such operator (ties: lowest id,
    /// so the choice is deterministic). `None` when no waiting call can be offered now.
    pub fn next_offer(
        &self,
        excluded: impl Fn(CallHandle, &str) -> bool,
    ) -> Option<(CallHandle, String)> {
        let mut available: Vec<(MonoTime, &str)> = self
            .agents
            .iter()
            .filter_map(|(id, a)| match a.state {
                AgentState::Available { since } => Some((since, id.as_str())),
                _ => None,
            })
            .collect();
        if available.is_empty() {
            return None;
        }
        available.sort_unstable();
        self.waiting.values().find_map(|&call| {
            available
                .iter()
                .find(|(_, id)| !excluded(call, id))
                .map(|(_, id)| (call, (*id).to_owned()))
        })
    }

    /// Reserves operator `id` for `call`: available → ringing, and the call leaves the
    /// queue. Returns false (and changes nothing) if the operator is not available.
    pub fn offer(&mut self, call: CallHandle, id: &str) -> bool {
        match self.agents.get_mut(id) {
            Some(agent) if matches!(agent.state, AgentState::Available { .. }) => {
                agent.state = AgentState::Ringing { call };
                self.dequeue(call);
                true
            }
            _ => false,
        }
    }

    /// The offer of `call` to operator `id` ended without an answer (no answer, reject,
    /// failure, or the caller hung up): ringing → available again, idle from `now`, or
    /// logged out if the operator unregistered meanwhile.
    pub fn offer_ended(&mut self, call: CallHandle, id: &str, now: MonoTime) {
        self.release_if(id, AgentState::Ringing { call }, now);
    }

    /// Operator `id` answered `call`: ringing → on call.
    pub fn answered(&mut self, call: CallHandle, id: &str) {
        if let Some(agent) = self.agents.get_mut(id)
            && agent.state == (AgentState::Ringing { call })
        {
            agent.state = AgentState::OnCall { call };
        }
    }

    /// `call`, answered by `id`, ended: on call → available from `now` (wrap-up arrives
    /// with the ACD issue), or logged out if the operator unregistered meanwhile.
    pub fn call_ended(&mut self, call: CallHandle, id: &str, now: MonoTime) {
        self.release_if(id, AgentState::OnCall { call }, now);
    }

    fn release_if(&mut self, id: &str, expected: AgentState, now: MonoTime) {
        if let Some(agent) = self.agents.get_mut(id)
            && agent.state == expected
        {
            agent.state = if agent.registered {
                AgentState::Available { since: now }
            } else {
                AgentState::LoggedOut
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(ms: u64) -> MonoTime {
        MonoTime::from_millis(ms)
    }

    #[test]
    fn the_longest_idle_operator_takes_the_oldest_call() {
        let mut acd = Acd::new(["1001", "1002", "1003"]);
        acd.registered("1002", t(10));
        acd.registered("1001", t(20));
        acd.enqueue(CallHandle(2), 2);
        acd.enqueue(CallHandle(1), 1);
        assert_eq!(
            acd.next_offer(|_, _| false),
            Some((CallHandle(1), "1002".into()))
        );
        assert!(acd.offer(CallHandle(1), "1002"));
        assert_eq!(
            acd.next_offer(|_, _| false),
            Some((CallHandle(2), "1001".into()))
        );
        // An excluded operator (rejected this call moments ago) is skipped.
        assert_eq!(acd.next_offer(|_, id| id == "1001"), None);
    }

    #[test]
    fn a_call_not_answered_keeps_its_place() {
        let mut acd = Acd::new(["1001"]);
        acd.registered("1001", t(0));
        acd.enqueue(CallHandle(1), 1);
        acd.enqueue(CallHandle(2), 2);
        assert!(acd.offer(CallHandle(1), "1001"));
        acd.offer_ended(CallHandle(1), "1001", t(5));
        acd.enqueue(CallHandle(1), 1);
        assert_eq!(
            acd.next_offer(|_, _| false),
            Some((CallHandle(1), "1001".into()))
        );
    }

    #[test]
    fn unregistering_mid_call_logs_out_when_the_call_ends() {
        let mut acd = Acd::new(["1001"]);
        acd.registered("1001", t(0));
        assert!(acd.offer(CallHandle(1), "1001"));
        acd.answered(CallHandle(1), "1001");
        acd.unregistered("1001");
        assert_eq!(
            acd.state("1001"),
            Some(AgentState::OnCall {
                call: CallHandle(1)
            })
        );
        acd.call_ended(CallHandle(1), "1001", t(9));
        assert_eq!(acd.state("1001"), Some(AgentState::LoggedOut));
        acd.registered("1001", t(10));
        assert_eq!(
            acd.state("1001"),
            Some(AgentState::Available { since: t(10) })
        );
    }

    proptest! {
        /// Whatever happens, an operator is reserved for at most one call, a call is never
        /// both waiting and offered, and an unregistered operator is never offered a call.
        #[test]
        fn offers_respect_agent_states(ops in proptest::collection::vec((0u8..6, 0u8..3, 0u64..4), 1..200)) {
            let ids = ["a", "b", "c"];
            let mut acd = Acd::new(ids);
            let mut offered: HashMap<CallHandle, &str> = HashMap::new();
            let mut now = 0;
            for (op, agent, call) in ops {
                now += 1;
                let id = ids[agent as usize];
                let call = CallHandle(call);
                match op {
                    0 => acd.registered(id, t(now)),
                    1 => acd.unregistered(id),
                    2 => if !offered.contains_key(&call) { acd.enqueue(call, call.0) },
                    3 => if let Some((c, who)) = acd.next_offer(|_, _| false) {
                        prop_assert!(acd.is_waiting(c));
                        prop_assert!(acd.offer(c, &who));
                        prop_assert!(!acd.is_waiting(c));
                        let who = ids.iter().find(|i| **i == who).copied().unwrap_or("a");
                        offered.insert(c, who);
                    },
                    4 => if let Some(who) = offered.remove(&call) {
                        acd.offer_ended(call, who, t(now));
                        acd.call_ended(call, who, t(now));
                    },
                    _ => if let Some(who) = offered.get(&call) {
                        acd.answered(call, who);
                    },
                }
                for id in ids {
                    let reserved = offered.values().filter(|w| **w == id).count();
                    prop_assert!(reserved <= 1);
                    if let Some(AgentState::Ringing { call } | AgentState::OnCall { call }) = acd.state(id) {
                        prop_assert_eq!(offered.get(&call).copied(), Some(id));
                    }
                }
            }
        }
    }
}
