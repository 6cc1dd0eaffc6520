//! The operators' desks in the whole-engine simulation: commands (`ready`, `not_ready`,
//! `end_wrap_up`, `logout`) issued through [`Engine::agent_command`] at times the seed
//! drew, as the HTTP API of a later issue will. Each outcome is checked against the agent
//! table (`check::acd::command`): the state it leads to, or the refusal.

use super::check::acd as rules;
use crate::engine::Engine;
use crate::engine::acd::AgentCommand;
use crate::engine::time::Now;
use rand::Rng;
use rand::rngs::StdRng;
use std::collections::VecDeque;

/// The commands of a run, in time order: (time in ms, operator, command).
#[derive(Clone, Debug, Default)]
pub struct DeskPlan(pub Vec<(u64, String, AgentCommand)>);

impl DeskPlan {
    /// Up to `n` commands for `operators` at drawn times before `until_ms`, then `ready`
    /// for every operator at `until_ms` (so that every call can still be answered).
    pub fn draw(rng: &mut StdRng, operators: &[String], n: usize, until_ms: u64) -> DeskPlan {
        let commands = [
            AgentCommand::Ready,
            AgentCommand::NotReady,
            AgentCommand::EndWrapUp,
            AgentCommand::Logout,
        ];
        let mut plan: Vec<(u64, String, AgentCommand)> = (0..n)
            .map(|_| {
                (
                    rng.random_range(0..until_ms),
                    operators[rng.random_range(0..operators.len())].clone(),
                    commands[rng.random_range(0..commands.len())],
                )
            })
            .collect();
        plan.sort_by_key(|(at, _, _)| *at);
        plan.extend(
            operators
                .iter()
                .map(|op| (until_ms, op.clone(), AgentCommand::Ready)),
        );
        DeskPlan(plan)
    }
}

/// The desks of a run: the plan not yet carried out.
#[derive(Debug, Default)]
pub struct Desks {
    left: VecDeque<(u64, String, AgentCommand)>,
    /// Commands carried out so far.
    pub obeyed: u32,
    /// Commands refused so far.
    pub refused: u32,
}

impl Desks {
    /// Desks that will carry out `plan`.
    pub fn new(plan: &DeskPlan) -> Desks {
        Desks {
            left: plan.0.iter().cloned().collect(),
            obeyed: 0,
            refused: 0,
        }
    }

    /// When the next command is due.
    pub fn next_deadline(&self) -> Option<u64> {
        self.left.front().map(|(at, _, _)| *at)
    }

    /// Issues every command due at `now` to `engine`; the trace lines and the broken rules
    /// (an outcome the table does not give).
    pub fn act(&mut self, now: u64, engine: &mut Engine) -> (Vec<String>, Vec<String>) {
        let (mut lines, mut broken) = (Vec::new(), Vec::new());
        while self.left.front().is_some_and(|(at, _, _)| *at <= now) {
            let (_, op, command) = self.left.pop_front().expect("a command is due");
            let Some(before) = engine.agent_state(&op) else {
                broken.push(format!("desk: no operator {op}"));
                continue;
            };
            let registered = engine.registrar.is_registered(&op);
            let expected = rules::command(&before, registered, command);
            let got = engine.agent_command(Now::from_millis(now), &op, command);
            lines.push(format!("desk {op}: {command:?} from {before}: {got:?}"));
            match got {
                Ok(_) => self.obeyed += 1,
                Err(_) => self.refused += 1,
            }
            let agrees = match (&got, expected) {
                (Ok(state), Ok(name)) => state.name() == name,
                (Err(crate::engine::acd::AgentError::NotRegistered), Err(kind)) => {
                    kind == "not_registered"
                }
                (Err(crate::engine::acd::AgentError::NotAllowed { .. }), Err(kind)) => {
                    kind == "not_allowed"
                }
                _ => false,
            };
            if !agrees {
                broken.push(format!(
                    "at {now} ms, {op} {command:?} from {before} (registered {registered}): got {got:?}, the table says {expected:?}"
                ));
            }
        }
        (lines, broken)
    }
}
