//! What a seed decides about a run: the operators and their phones, the calls and what
//! each caller does, T1, the ring timeout, the RTP port range and the network.

use super::desk::DeskPlan;
use super::net::{NetProfile, Outage};
use super::trunk::{CallSpec, CallerPlan};
use super::ua::Timers;
use super::world::{SIAGA, TRUNK, phone_addr};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// Everything a seed decides about a run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The seed.
    pub seed: u64,
    /// T1, T2, T4 (siaga's and the peers').
    pub timers: Timers,
    /// `queue.ring_timeout_s`, in ms.
    pub ring_timeout_ms: u64,
    /// `queue.reject_retry_delay_s`, in ms.
    pub reject_delay_ms: u64,
    /// RTP port pairs in `media.rtp_ports` (two per relayed call).
    pub rtp_pairs: u16,
    /// Operators and how many phones each registers.
    pub operators: Vec<(String, usize)>,
    /// The trunk's calls.
    pub calls: Vec<CallSpec>,
    /// The network.
    pub net: NetProfile,
    /// `queue.wrap_up_s`, in ms.
    pub wrap_up_ms: u64,
    /// Operators' commands (none in the first-call seeds).
    pub desk: DeskPlan,
    /// Phones (by index) whose first registration lapses: (its `Expires` in s, when the
    /// phone registers again after it expired, in ms).
    pub lapses: BTreeMap<usize, (u32, u64)>,
}

impl Scenario {
    /// The scenario of `seed`.
    pub fn from_seed(seed: u64) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5ca1_ab1e);
        let t1 = if rng.random_bool(0.8) {
            500
        } else {
            rng.random_range(50..=500)
        };
        let timers = Timers {
            t1,
            t2: 4_000,
            t4: 5_000,
        };
        let operators: Vec<(String, usize)> = (0..rng.random_range(1..=3))
            .map(|i| {
                (
                    format!("100{}", i + 1),
                    if rng.random_bool(0.7) { 1 } else { 2 },
                )
            })
            .collect();
        let mut start = rng.random_range(1_000..4_000);
        let calls = (0..rng.random_range(1..=4))
            .map(|_| {
                let talk_ms = rng.random_range(2_000..60_000);
                let plan = if rng.random_bool(0.6) {
                    CallerPlan::Talk { talk_ms }
                } else {
                    CallerPlan::Abandon {
                        after_ms: rng.random_range(200..40_000),
                        talk_ms,
                    }
                };
                let spec = CallSpec {
                    start_ms: start,
                    plan,
                    late_offer: rng.random_bool(0.15),
                };
                start += rng.random_range(0..20_000);
                spec
            })
            .collect();
        let lossy = rng.random_bool(0.8);
        let mut outages = Vec::new();
        if rng.random_bool(0.35) {
            let phones: usize = operators.iter().map(|(_, n)| n).sum();
            let node = match rng.random_range(0..3) {
                0 => SIAGA,
                1 => TRUNK,
                _ => phone_addr(rng.random_range(0..phones)),
            };
            let from_ms = rng.random_range(0..start + 20_000);
            outages.push(Outage {
                node,
                from_ms,
                until_ms: from_ms + rng.random_range(1_000..60_000),
            });
        }
        let net = NetProfile {
            loss: if lossy {
                rng.random_range(0.0..0.3)
            } else {
                0.0
            },
            duplicate: if lossy {
                rng.random_range(0.0..0.1)
            } else {
                0.0
            },
            min_delay_ms: rng.random_range(1..20),
            jitter_ms: if lossy { rng.random_range(0..300) } else { 0 },
            outages,
            drop: None,
        };
        Scenario {
            seed,
            timers,
            ring_timeout_ms: rng.random_range(3..=30) * 1_000,
            reject_delay_ms: rng.random_range(1..=5) * 1_000,
            rtp_pairs: if rng.random_bool(0.2) {
                rng.random_range(1..=3)
            } else {
                64
            },
            operators,
            calls,
            net,
            wrap_up_ms: 0,
            desk: DeskPlan::default(),
            lapses: BTreeMap::new(),
        }
    }

    /// An ACD seed: the scenario of `seed` (same calls and network), staffed by 3–8
    /// operators with one phone each, a wrap-up of 0–8 s after each call, 0–12 operator
    /// commands at drawn times, then `ready` for everyone 30 s after the last call
    /// started, and about one phone in three whose first binding (5–40 s) lapses, to
    /// register again 1–30 s later (drawn apart, so the first-call seeds keep their draws).
    pub fn acd_from_seed(seed: u64) -> Scenario {
        let mut s = Scenario::from_seed(seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 0xacd0_de5c);
        s.operators = (0..rng.random_range(3..=8))
            .map(|i| (format!("100{}", i + 1), 1))
            .collect();
        s.wrap_up_ms = if rng.random_bool(0.3) {
            0
        } else {
            rng.random_range(500..8_000)
        };
        let ids: Vec<String> = s.operators.iter().map(|(id, _)| id.clone()).collect();
        let last = s.calls.iter().map(|c| c.start_ms).max().unwrap_or(0);
        let n = rng.random_range(0..=12);
        s.desk = DeskPlan::draw(&mut rng, &ids, n, last + 30_000);
        for phone in 0..ids.len() {
            if rng.random_bool(0.3) {
                let lapse = (rng.random_range(5..=40), rng.random_range(1_000..30_000));
                s.lapses.insert(phone, lapse);
            }
        }
        s
    }
}
