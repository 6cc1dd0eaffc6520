//! What the ACD must keep true after every step, stated apart from the ACD's own code so
//! that a mistake in one is not mirrored in the other. Used by the bulk simulation
//! (`sim::bulk`, every step) and, for agent events, by the whole-engine simulation.
//!
//! - [`table`]: an agent state change is one of the moves of the table in
//!   `acd::agent`'s docs, with the reason that table gives it (restated here by state
//!   names, as `agent_events` stores them).
//! - [`AgentTrack`]: the changes of each operator chain up: each leaves the state the one
//!   before it entered, starting from `logged_out`; the last one entered is the state the
//!   ACD reports.
//! - [`command`]: what an operator command must do from a state: the state it leads to,
//!   or the refusal.
//! - [`ServiceOrder`]: the order the ACD promises waiting calls (below).
//!
//! # The order of service the ACD promises
//!
//! Waiting calls are served by priority, higher first. Within one priority:
//! 1. calls whose answered operator leg failed (`Acd::requeue` with `head`), the one that
//!    failed most recently first;
//! 2. then every other call in order of its first arrival (`Acd::enqueue`), whatever
//!    happened to it since: an offer nobody answered, a failed overflow or a re-queue at
//!    its place keep that place; a head-requeued call keeps its head place when it comes
//!    back again later.
//!
//! An offer goes to the first call in that order for which some operator is eligible
//! (available, registered, not paused after a reject, serving its queue, with its skills
//! unless it widened); calls ahead of it have no eligible operator. After the ACD is
//! drained of offers, no waiting call has an eligible operator.

use crate::engine::acd::{AgentCommand, AgentState, CallHandle};
use crate::engine::record::CallEventKind;
use crate::engine::sim::world::World;
use std::collections::BTreeMap;

/// Whether the table allows a move `from` → `to` for `reason` (state names and the reason
/// as `agent_events` stores them); the broken rule otherwise.
pub fn table(from: &str, to: &str, reason: &str) -> Result<(), String> {
    let reasons: &[&str] = match (from, to) {
        ("logged_out", "available") => &["registered", "ready"],
        ("logged_out", "not_ready") => &["requested"],
        ("available", "logged_out") => &["unregistered", "logout"],
        ("available", "not_ready") => &["requested"],
        ("available", "ringing") => &["offered"],
        // A callback placed from an idle state.
        ("available" | "wrap_up" | "not_ready", "on_call") => &["answered"],
        ("ringing", "logged_out") => &["unregistered"],
        ("ringing", "available") => &["withdrawn", "no_answer", "rejected", "failed"],
        // Only the no-answer rule (a failed offer counts as not answered).
        ("ringing", "not_ready") => &["no_answer"],
        ("ringing", "on_call") => &["answered"],
        ("on_call", "wrap_up") => &["call_ended"],
        ("on_call", "available" | "logged_out") => &["call_ended", "callback_unanswered"],
        ("wrap_up", "logged_out") => &["unregistered", "logout"],
        ("wrap_up", "available") => &["ready", "end_wrap_up", "wrap_up_elapsed"],
        ("wrap_up", "not_ready") => &["requested"],
        ("not_ready", "logged_out") => &["unregistered", "logout"],
        ("not_ready", "available") => &["ready"],
        ("not_ready", "not_ready") => &["requested"],
        _ => &[],
    };
    if reasons.contains(&reason) {
        Ok(())
    } else {
        Err(format!(
            "agent state {from} -> {to} ({reason}) is not in the table"
        ))
    }
}

/// What `command` must do from `state` (registered or not): the name of the state it
/// leads to, or the refusal's kind (`not_registered`, `not_allowed`).
pub fn command(
    state: &AgentState,
    registered: bool,
    command: AgentCommand,
) -> Result<&'static str, &'static str> {
    let name = state.name();
    match (command, name) {
        (AgentCommand::Ready | AgentCommand::NotReady, "logged_out") if !registered => {
            Err("not_registered")
        }
        (AgentCommand::Ready, "logged_out" | "not_ready" | "wrap_up") => Ok("available"),
        (AgentCommand::NotReady, "logged_out" | "available" | "wrap_up" | "not_ready") => {
            Ok("not_ready")
        }
        (AgentCommand::EndWrapUp, "wrap_up") => Ok("available"),
        (AgentCommand::Logout, "available" | "wrap_up" | "not_ready") => Ok("logged_out"),
        _ => Err("not_allowed"),
    }
}

/// Each operator's last state entered, to chain their state changes.
#[derive(Debug, Default)]
pub struct AgentTrack {
    last: BTreeMap<String, &'static str>,
}

impl AgentTrack {
    /// Takes one change of `operator`'s state; the broken rules go to `v`.
    pub fn step(
        &mut self,
        operator: &str,
        from: &'static str,
        to: &'static str,
        reason: &str,
    ) -> Vec<String> {
        let mut v = Vec::new();
        if let Err(e) = table(from, to, reason) {
            v.push(format!("{operator}: {e}"));
        }
        let last = self
            .last
            .insert(operator.to_owned(), to)
            .unwrap_or("logged_out");
        if last != from {
            v.push(format!(
                "{operator}: a change from {from} ({reason}) follows one that entered {last}"
            ));
        }
        v
    }

    /// The last state `operator` entered (`logged_out` before any change).
    pub fn last(&self, operator: &str) -> &'static str {
        self.last.get(operator).copied().unwrap_or("logged_out")
    }
}

/// A waiting call's rank in the order of service (see the module docs): sorted ascending,
/// the first is served first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceOrder {
    /// Higher priority first.
    pub priority: std::cmp::Reverse<u8>,
    /// Head-requeued calls first, the latest head re-queue first (`None` sorts after).
    pub head: HeadRank,
    /// Then first arrival.
    pub arrival: u64,
    /// The call, to make the order total.
    pub call: CallHandle,
}

/// Where a call stands among the head-requeued ones of its priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HeadRank {
    /// Re-queued at the head: `Reverse` of the re-queue's sequence number.
    Head(std::cmp::Reverse<u64>),
    /// At its arrival place.
    Place,
}

/// The whole-engine run's agent events (`Output::AgentEvent`): each change in the table
/// and chained per operator; an operator rings only for a call siaga recorded `offered`
/// to them at that instant, is on call only for one recorded `answered` by them at that
/// instant (or a callback they placed); and the run ends with every operator logged out
/// (the phones unregistered), none left ringing or on call.
pub fn agent_events(w: &World, v: &mut Vec<String>) {
    let mut track = AgentTrack::default();
    for (at, e) in &w.agent_events {
        let reason = e.reason.as_deref().unwrap_or("");
        for broken in track.step(&e.operator, e.from, e.to, reason) {
            v.push(format!("at {at} ms: {broken}"));
        }
        let wanted = |kind: &CallEventKind| match (e.to, kind) {
            ("ringing", CallEventKind::Offered { operator }) => *operator == e.operator,
            ("on_call", CallEventKind::Answered { operator }) => *operator == e.operator,
            _ => false,
        };
        if matches!(e.to, "ringing" | "on_call") {
            let recorded = e.call.is_some_and(|call| {
                w.records
                    .iter()
                    .any(|r| r.at == *at && r.event.call == call && wanted(&r.event.kind))
            });
            if !recorded {
                v.push(format!(
                    "at {at} ms: {} went {} for {:?}, which siaga did not record {} to them then",
                    e.operator,
                    e.to,
                    e.call,
                    if e.to == "ringing" {
                        "offered"
                    } else {
                        "answered"
                    }
                ));
            }
        }
    }
    for (id, _) in &w.scenario.operators {
        let last = track.last(id);
        if last != "logged_out" {
            v.push(format!("{id} ends the run {last}, not logged out"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::MonoTime;

    #[test]
    fn the_table_refuses_moves_it_does_not_list() {
        assert!(table("ringing", "on_call", "answered").is_ok());
        assert!(table("ringing", "wrap_up", "call_ended").is_err());
        assert!(table("available", "on_call", "offered").is_err());
        assert!(table("logged_out", "ringing", "offered").is_err());
        assert!(table("ringing", "not_ready", "requested").is_err());
    }

    #[test]
    fn a_track_catches_a_broken_chain() {
        let mut t = AgentTrack::default();
        assert!(
            t.step("a", "logged_out", "available", "registered")
                .is_empty()
        );
        assert_eq!(t.step("a", "ringing", "on_call", "answered").len(), 1);
        assert_eq!(t.last("a"), "on_call");
    }

    #[test]
    fn commands_follow_the_table() {
        let wrap = AgentState::WrapUp {
            until: MonoTime::from_millis(5),
        };
        assert_eq!(
            command(&wrap, true, AgentCommand::EndWrapUp),
            Ok("available")
        );
        assert_eq!(
            command(&AgentState::LoggedOut, false, AgentCommand::Ready),
            Err("not_registered")
        );
        assert_eq!(
            command(&AgentState::LoggedOut, true, AgentCommand::Logout),
            Err("not_allowed")
        );
        let ringing = AgentState::Ringing {
            call: CallHandle(1),
        };
        assert_eq!(
            command(&ringing, true, AgentCommand::NotReady),
            Err("not_allowed")
        );
    }
}
