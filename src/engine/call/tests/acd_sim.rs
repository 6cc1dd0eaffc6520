//! Call-model bugs the whole-engine simulation (`engine::sim`) found in the ACD's
//! surroundings, each kept as a directed test.

use super::*;
use crate::engine::acd::AgentCommand;

/// Found by the simulation (seed 54): a `ready` command offered a waiting call, but the
/// INVITE stayed in its client transaction until the next input (272 ms later there),
/// and went out together with its first Timer A retransmission. It goes out with the
/// command's own output now.
#[test]
fn a_ready_command_sends_the_offer_at_once() {
    let mut h = Harness::new(15);
    h.register("1001", OP1);
    let not_ready = h
        .engine
        .agent_command(h.at(), "1001", AgentCommand::NotReady);
    assert!(not_ready.is_ok());
    h.drain();
    let out = h.input(TRUNK, &trunk_invite("c1"));
    assert!(out.requests_to(OP1, Method::Invite).is_empty(), "not ready");
    h.now += 100;
    let ready = h.engine.agent_command(h.at(), "1001", AgentCommand::Ready);
    assert!(matches!(ready, Ok(AgentState::Available { .. })));
    let out = h.drain();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, CallEventKind::Offered { operator } if operator == "1001"))
    );
    assert_eq!(
        out.requests_to(OP1, Method::Invite).len(),
        1,
        "the INVITE goes out with the command"
    );
}
