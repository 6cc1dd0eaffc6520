//! What a bulk seed draws before its calls: queues (strategy, login policy, ring
//! timeout, wrap-up, no-answer limit, reject delay, widening, overflow), routes by called
//! number with skills and a base priority, and operators serving some queues with some
//! skills, made servable.

use super::{NUMBERS, SKILLS};
use crate::engine::acd::{
    AcdSettings, AgentSettings, LoginPolicy, Overflow, QueueSettings, Route, Strategy,
};
use rand::Rng;
use rand::rngs::StdRng;
use std::time::Duration;

/// A seed's queues, routes and operators.
pub(super) fn draw_settings(rng: &mut StdRng) -> AcdSettings {
    let secs = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_secs(rng.random_range(lo..=hi));
    let strategies = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::RingAll,
        Strategy::Skills,
    ];
    let queues: Vec<QueueSettings> = (0..rng.random_range(1..=3))
        .map(|i| QueueSettings {
            name: format!("q{i}"),
            strategy: strategies[rng.random_range(0..strategies.len())],
            login: if rng.random_bool(0.15) {
                LoginPolicy::Explicit
            } else {
                LoginPolicy::OnRegister
            },
            ring_timeout: secs(rng, 3, 20),
            wrap_up: if rng.random_bool(0.3) {
                Duration::ZERO
            } else {
                secs(rng, 1, 15)
            },
            no_answer_limit: rng.random_range(0..=3),
            reject_delay: secs(rng, 0, 5),
            widen_after: rng.random_bool(0.6).then(|| secs(rng, 3, 30)),
            overflow: rng.random_bool(0.3).then(|| Overflow {
                uri: "sip:backup@127.0.0.9".to_owned(),
                after: secs(rng, 20, 120),
                ring_timeout: secs(rng, 5, 20),
            }),
        })
        .collect();
    let pick_skills = |rng: &mut StdRng, max: usize| -> Vec<String> {
        SKILLS
            .iter()
            .filter(|_| rng.random_bool(max as f64 / 4.0))
            .map(|s| (*s).to_owned())
            .collect()
    };
    let mut routes = Vec::new();
    for n in NUMBERS {
        if rng.random_bool(0.7) {
            routes.push(Route {
                numbers: vec![n.to_owned()],
                queue: queues[rng.random_range(0..queues.len())].name.clone(),
                skills: pick_skills(rng, 1),
                priority: rng.random_range(0..=2),
            });
        }
    }
    let agents: Vec<AgentSettings> = (0..rng.random_range(2..=8))
        .map(|i| AgentSettings {
            id: format!("op{i}"),
            queues: queues
                .iter()
                .filter(|_| rng.random_bool(0.5))
                .map(|q| q.name.clone())
                .collect(),
            skills: pick_skills(rng, 2),
            wrap_up: rng.random_bool(0.2).then(|| secs(rng, 0, 20)),
        })
        .collect();
    let mut agents = agents;
    serve_everything(&queues, &routes, &mut agents);
    AcdSettings {
        queues,
        routes,
        agents,
        ..AcdSettings::single_queue([])
    }
}

/// Makes every call servable: each queue served by someone, and the skills of each route
/// whose queue never widens held by someone serving that queue (else its calls would wait
/// until their callers give up, and callers who never do would wait for ever).
fn serve_everything(queues: &[QueueSettings], routes: &[Route], agents: &mut [AgentSettings]) {
    let serves =
        |a: &AgentSettings, q: &str| a.queues.is_empty() || a.queues.iter().any(|n| n == q);
    for q in queues {
        if !agents.iter().any(|a| serves(a, &q.name)) {
            agents[0].queues.push(q.name.clone());
        }
    }
    for r in routes {
        let widens = queues
            .iter()
            .find(|q| q.name == r.queue)
            .is_some_and(|q| q.widen_after.is_some());
        let held = agents
            .iter()
            .any(|a| serves(a, &r.queue) && r.skills.iter().all(|s| a.skills.contains(s)));
        if widens || held {
            continue;
        }
        let a = agents
            .iter_mut()
            .find(|a| serves(a, &r.queue))
            .expect("every queue is served");
        for s in &r.skills {
            if !a.skills.contains(s) {
                a.skills.push(s.clone());
            }
        }
    }
}
