//! Call-model bugs the whole-engine simulation (`engine::sim`) found in the ACD's
//! surroundings, each kept as a directed test: an operator's command whose offer sat
//! unsent, and ring-all losers left idle beside a waiting call.

use super::*;
use crate::engine::acd::{AgentCommand, Strategy};

/// A harness whose queue uses `strategy`.
fn with_strategy(strategy: Strategy) -> Harness {
    let mut h = Harness::new(15);
    let mut config = h.engine.config().clone();
    config.calls.acd.queues[0].strategy = strategy;
    h.engine = Engine::with_seed(config, 11);
    h
}

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

/// Found by the simulation (seed 58): under ring-all, the operator who answered won and
/// the others were freed (their legs CANCELled), but nothing offered them the call that
/// was waiting meanwhile; it waited until some later input. They are offered it at once.
#[test]
fn ring_all_losers_take_a_waiting_call_at_once() {
    let mut h = with_strategy(Strategy::RingAll);
    h.register("1001", OP1);
    h.register("1002", OP2);
    let out = h.input(TRUNK, &trunk_invite("r1"));
    let first = out
        .requests_to(OP1, Method::Invite)
        .pop()
        .expect("1001 rings");
    let other = out
        .requests_to(OP2, Method::Invite)
        .pop()
        .expect("1002 rings");
    h.input(OP2, &phone_response(&other, 180, "Ringing", "op2", None));
    let out = h.input(TRUNK, &trunk_invite("r2"));
    assert!(
        out.sent.iter().all(|t| t.destination == addr(TRUNK)),
        "r2 waits"
    );
    let out = h.input(
        OP1,
        &phone_response(&first, 200, "OK", "op1", Some(SDP_OPERATOR)),
    );
    assert_eq!(
        out.requests_to(OP2, Method::Cancel).len(),
        1,
        "r1 withdrawn from 1002"
    );
    assert_eq!(
        out.requests_to(OP2, Method::Invite).len(),
        1,
        "r2 offered to 1002 at once"
    );
    assert!(matches!(
        h.engine.agent_state("1002"),
        Some(AgentState::Ringing { .. })
    ));
}
