//! Queueing theory for sizing a queue and judging the ACD's service level: Erlang B, Erlang C
//! (M/M/c, callers who never give up) and Erlang A (Palm's M/M/c+M, callers with
//! exponential patience). Pure math, no state; `benches/service_level.rs` holds the real
//! [`Acd`](super::Acd) to these figures.
//!
//! Units: rates in calls per second, times in seconds (`f64`), offered load in erlangs
//! (A = λ / μ = arrival rate × mean handling time). Every model is the stationary one:
//! Poisson arrivals, exponential handling times, `c` identical operators, first come first
//! served, no wrap-up and no ring time (the operator's time per call is the handling time).
//!
//! Sources:
//! - Erlang B and Erlang C, and P(W ≤ t) = 1 − C·e^{−(cμ−λ)t}: ITU-D, *Teletraffic
//!   Engineering Handbook* (Iversen), §4.3 (Erlang's B-formula and its recursion) and
//!   §9.2–9.3 (Erlang's C-formula, mean waiting time, waiting-time distribution for FCFS).
//! - Erlang A: Palm (1943); Garnett, Mandelbaum & Reiman, "Designing a call center with
//!   impatient customers", *Manufacturing & Service Operations Management* 4(3), 2002,
//!   §2: the number of calls in the system is the birth–death process with birth rate λ and
//!   death rate min(n, c)·μ + max(n − c, 0)·θ (θ = 1 / mean patience); by PASTA an arriving
//!   call sees its stationary distribution; abandonment P(Ab) = θ·E[L_q] / λ and, by
//!   Little's law, E[W_q] = E[L_q] / λ.
//!
//! Erlang A is computed here from that birth–death chain, truncated where the stationary
//! probabilities fall below 1e-18 of the largest (the tail falls faster than geometric
//! because every waiting call may abandon), not from the closed forms with incomplete gamma
//! functions. P(answered within t) follows a tagged caller who found `k` calls waiting:
//! the calls ahead leave at rate cμ + jθ (an operator frees, or one of the `j` ahead gives
//! up), the caller abandons at rate θ, and the caller is answered when an operator frees
//! with nobody ahead; that transient chain is solved by uniformization (Grassmann 1977),
//! summing Poisson-weighted steps until the weights left are below 1e-13; its cost grows
//! with t (about (cμ + Kθ)·t steps of K states, K the calls that may wait).
//!
//! NENA-STA-020.1 (*Standard for 9-1-1 Call Processing*, 2020) asks that 90 % of emergency
//! calls be answered within 15 s and 95 % within 20 s: [`NENA_ANSWER_TARGETS`].

/// NENA-STA-020.1 §2.1.1's call answering targets: (seconds, share of all calls answered
/// within them).
pub const NENA_ANSWER_TARGETS: [(f64, f64); 2] = [(15.0, 0.90), (20.0, 0.95)];

/// Erlang's B-formula: the share of calls lost when `servers` operators are offered
/// `offered` erlangs and a call finding all of them busy is lost (M/M/c/c). By the
/// recursion B(0) = 1, B(k) = A·B(k−1) / (k + A·B(k−1)), stable for any `servers`.
/// `offered` must be ≥ 0.
pub fn erlang_b(servers: u32, offered: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=servers {
        b = offered * b / (f64::from(k) + offered * b);
    }
    b
}

/// Erlang's C-formula: the probability that a call waits (all `servers` operators busy on
/// arrival) when they are offered `offered` erlangs and callers never give up:
/// C = c·B / (c − A·(1 − B)). `None` when `offered` ≥ `servers` (the queue grows without
/// bound) or `servers` is 0.
pub fn erlang_c(servers: u32, offered: f64) -> Option<f64> {
    let c = f64::from(servers);
    if servers == 0 || offered >= c || offered < 0.0 {
        return None;
    }
    let b = erlang_b(servers, offered);
    Some(c * b / (c - offered * (1.0 - b)))
}

/// The M/M/c queue with callers who never give up (Erlang C).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErlangC {
    servers: u32,
    arrival_rate: f64,
    handling_s: f64,
    p_wait: f64,
}

impl ErlangC {
    /// `servers` operators, calls arriving at `arrival_rate` per second, each handled for
    /// `handling_s` seconds on average. `None` when the load is not below the number of
    /// operators (no stationary state) or a figure is not positive.
    pub fn new(servers: u32, arrival_rate: f64, handling_s: f64) -> Option<Self> {
        if !(arrival_rate > 0.0 && handling_s > 0.0) {
            return None;
        }
        let p_wait = erlang_c(servers, arrival_rate * handling_s)?;
        Some(ErlangC {
            servers,
            arrival_rate,
            handling_s,
            p_wait,
        })
    }

    /// The offered load A = λ / μ, in erlangs.
    pub fn offered(&self) -> f64 {
        self.arrival_rate * self.handling_s
    }

    /// The operators' occupancy ρ = A / c (share of their time on calls).
    pub fn occupancy(&self) -> f64 {
        self.offered() / f64::from(self.servers)
    }

    /// The probability that a call waits at all (Erlang C).
    pub fn p_wait(&self) -> f64 {
        self.p_wait
    }

    /// The rate at which the queue drains while all operators are busy, cμ − λ (1/s).
    fn drain_rate(&self) -> f64 {
        f64::from(self.servers) / self.handling_s - self.arrival_rate
    }

    /// The mean wait of all calls, in seconds: C / (cμ − λ).
    pub fn mean_wait_s(&self) -> f64 {
        self.p_wait / self.drain_rate()
    }

    /// The share of calls answered within `t_s` seconds: 1 − C·e^{−(cμ−λ)t}.
    pub fn answered_within(&self, t_s: f64) -> f64 {
        1.0 - self.p_wait * (-self.drain_rate() * t_s.max(0.0)).exp()
    }
}

/// The M/M/c+M queue (Erlang A): callers give up after an exponential patience while they
/// wait (never once answered).
#[derive(Clone, Debug, PartialEq)]
pub struct ErlangA {
    servers: u32,
    arrival_rate: f64,
    service_rate: f64,
    abandon_rate: f64,
    /// The stationary probabilities of n = 0, 1, … calls in the system (normalized,
    /// truncated where negligible).
    stationary: Vec<f64>,
}

/// The largest chain the truncation may keep (calls in the system).
const MAX_STATES: usize = 1_000_000;

impl ErlangA {
    /// `servers` operators, calls arriving at `arrival_rate` per second, handled for
    /// `handling_s` seconds and abandoned after `patience_s` seconds of waiting, both on
    /// average. Stable at any load (waiting callers give up). `None` when a figure is not
    /// positive, `servers` is 0, or the chain would need more than 10⁶ states.
    pub fn new(servers: u32, arrival_rate: f64, handling_s: f64, patience_s: f64) -> Option<Self> {
        if servers == 0 || !(arrival_rate > 0.0 && handling_s > 0.0 && patience_s > 0.0) {
            return None;
        }
        let service_rate = 1.0 / handling_s;
        let abandon_rate = 1.0 / patience_s;
        let c = servers as usize;
        // ln π_n up to a constant, π_n = π_{n−1}·λ / d_n, in logs so that large loads do not
        // overflow.
        let mut logs = vec![0.0_f64];
        let mut max = 0.0_f64;
        let mut n = 0usize;
        loop {
            n += 1;
            let death = if n <= c {
                n as f64 * service_rate
            } else {
                c as f64 * service_rate + (n - c) as f64 * abandon_rate
            };
            let ratio = arrival_rate / death;
            let log = logs[n - 1] + ratio.ln();
            logs.push(log);
            max = max.max(log);
            // Past the servers, once the terms shrink and are negligible, the rest (each
            // smaller than the last by a factor that keeps falling) is too.
            if n > c && ratio < 1.0 && log - max < (1e-18_f64).ln() {
                break;
            }
            if n >= MAX_STATES {
                return None;
            }
        }
        let weights: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        let stationary = weights.into_iter().map(|w| w / total).collect();
        Some(ErlangA {
            servers,
            arrival_rate,
            service_rate,
            abandon_rate,
            stationary,
        })
    }

    /// The offered load A = λ / μ, in erlangs.
    pub fn offered(&self) -> f64 {
        self.arrival_rate / self.service_rate
    }

    /// The probability that a call finds every operator busy and waits (P(n ≥ c), PASTA);
    /// it may then be answered or give up.
    pub fn p_wait(&self) -> f64 {
        self.stationary[self.servers as usize..].iter().sum()
    }

    /// The mean number of calls waiting, E[L_q].
    fn mean_waiting(&self) -> f64 {
        let c = self.servers as usize;
        self.stationary
            .iter()
            .enumerate()
            .skip(c)
            .map(|(n, p)| (n - c) as f64 * p)
            .sum()
    }

    /// The share of calls that give up before an operator answers: θ·E[L_q] / λ.
    pub fn abandoned(&self) -> f64 {
        self.abandon_rate * self.mean_waiting() / self.arrival_rate
    }

    /// The mean time a call waits, answered or not, in seconds: E[L_q] / λ (Little).
    pub fn mean_wait_s(&self) -> f64 {
        self.mean_waiting() / self.arrival_rate
    }

    /// The share of all calls answered within `t_s` seconds (those that give up first are
    /// not answered; NENA counts them against the target).
    pub fn answered_within(&self, t_s: f64) -> f64 {
        let c = self.servers as usize;
        let at_once: f64 = self.stationary[..c].iter().sum();
        let t = t_s.max(0.0);
        // The tagged caller's state: j calls ahead of it (j = n − c for an arrival seeing
        // n ≥ c in the system).
        let mut mass: Vec<f64> = self.stationary[c..].to_vec();
        let busy = c as f64 * self.service_rate;
        let theta = self.abandon_rate;
        let leave = |j: usize| busy + j as f64 * theta + theta;
        let uniform = leave(mass.len());
        let lt = uniform * t;
        // Poisson(lt) weights, step by step in logs (e^{−lt} underflows for large lt).
        let mut log_weight = -lt;
        let mut served = 0.0;
        let mut answered = 0.0;
        let mut summed = 0.0;
        let mut step = 0u64;
        let mut next = vec![0.0; mass.len()];
        loop {
            let weight = log_weight.exp();
            answered += weight * served;
            summed += weight;
            // Past the mode the weights fall at least geometrically (ratio lt/(m+1)): stop
            // once what is left of the tail is below 1e-13.
            let ratio = lt / (step + 1) as f64;
            if ratio < 1.0 && weight / (1.0 - ratio) < 1e-13 {
                break;
            }
            // One step of the uniformized chain: from j, to j − 1 (or answered from 0) with
            // probability busy + jθ over the uniform rate, abandoned with θ, stay otherwise.
            next.iter_mut().for_each(|x| *x = 0.0);
            for (j, &p) in mass.iter().enumerate() {
                if p == 0.0 {
                    continue;
                }
                let forward = (busy + j as f64 * theta) / uniform;
                if j == 0 {
                    served += p * forward;
                } else {
                    next[j - 1] += p * forward;
                }
                next[j] += p * (1.0 - leave(j) / uniform);
            }
            std::mem::swap(&mut mass, &mut next);
            step += 1;
            log_weight += lt.ln() - (step as f64).ln();
        }
        // The weights not summed (below 1e-13, and rounding) go with the last, largest,
        // answered mass.
        at_once + answered + (1.0 - summed).max(0.0) * served
    }
}

/// The fewest operators with whom calls arriving at `arrival_rate` per second, handled for
/// `handling_s` seconds on average, meet every `(seconds, share)` target of answering within
/// `seconds` (Erlang C: callers never give up). E.g. [`NENA_ANSWER_TARGETS`].
pub fn operators_needed(arrival_rate: f64, handling_s: f64, targets: &[(f64, f64)]) -> u32 {
    let least = (arrival_rate * handling_s).floor() as u32 + 1;
    (least..)
        .find(|&c| {
            ErlangC::new(c, arrival_rate, handling_s).is_some_and(|q| {
                targets
                    .iter()
                    .all(|&(t, share)| q.answered_within(t) >= share)
            })
        })
        .expect("a finite number of operators meets any target below 100 %")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Erlang C by its textbook sum, P_W = (A^c/c!·c/(c−A)) / (Σ_{k<c} A^k/k! + A^c/c!·c/(c−A)),
    /// computed apart from the recursion.
    fn erlang_c_by_sum(c: u32, a: f64) -> f64 {
        let mut term = 1.0;
        let mut sum = 0.0;
        for k in 0..c {
            sum += term;
            term *= a / f64::from(k + 1);
        }
        let tail = term * f64::from(c) / (f64::from(c) - a);
        tail / (sum + tail)
    }

    #[test]
    fn erlang_b_matches_tables_and_exact_cases() {
        // A/(1+A) for one server; A²/2 / (1 + A + A²/2) for two.
        assert!(close(erlang_b(1, 3.0), 0.75, 1e-15));
        assert!(close(erlang_b(2, 1.0), 0.2, 1e-15));
        // Erlang B tables (e.g. Iversen, Teletraffic Engineering Handbook, Table of the
        // Erlang B formula): E(10 lines, 5 erl) = 0.01838, E(5, 3) = 0.1101.
        assert!(close(erlang_b(10, 5.0), 0.018385, 5e-6));
        assert!(close(erlang_b(5, 3.0), 0.1101, 5e-5));
        assert_eq!(erlang_b(0, 2.0), 1.0);
    }

    #[test]
    fn erlang_c_matches_exact_cases_and_published_examples() {
        // M/M/1: P(wait) = ρ, mean wait ρ/(μ − λ).
        let mm1 = ErlangC::new(1, 0.5, 1.0).unwrap();
        assert!(close(mm1.p_wait(), 0.5, 1e-15));
        assert!(close(mm1.mean_wait_s(), 1.0, 1e-12));
        // M/M/2 at A = 1: 2ρ²/(1 + ρ) = 1/3.
        assert!(close(erlang_c(2, 1.0).unwrap(), 1.0 / 3.0, 1e-15));
        // 120 calls an hour, 3 min each, 10 assistants (A = 6 erl): "about 0.10"
        // (Zukerman, Introduction to Queueing Theory and Stochastic Teletraffic Models,
        // the Erlang C example); 0.1013 by the formula.
        assert!(close(erlang_c(10, 6.0).unwrap(), 0.1013, 5e-5));
        // The benchmark's case: 6 operators at 80 % (A = 4.8 erl).
        let c = erlang_c(6, 4.8).unwrap();
        assert!(close(c, erlang_c_by_sum(6, 4.8), 1e-12));
        assert!(close(c, 0.5178, 5e-5));
        for (servers, a) in [(3, 2.5), (12, 10.0), (50, 45.0), (300, 290.0)] {
            assert!(close(
                erlang_c(servers, a).unwrap(),
                erlang_c_by_sum(servers, a),
                1e-9
            ));
        }
        assert_eq!(erlang_c(6, 6.0), None);
        assert_eq!(ErlangC::new(0, 1.0, 1.0), None);
    }

    #[test]
    fn erlang_c_waiting_time_distribution() {
        let q = ErlangC::new(6, 4.8 / 90.0, 90.0).unwrap();
        assert!(close(q.occupancy(), 0.8, 1e-12));
        // Mean wait = C / (cμ − λ) = C·90 / 1.2.
        assert!(close(q.mean_wait_s(), q.p_wait() * 75.0, 1e-9));
        assert!(close(q.answered_within(0.0), 1.0 - q.p_wait(), 1e-15));
        assert!(close(
            q.answered_within(15.0),
            1.0 - q.p_wait() * (-15.0 / 75.0_f64).exp(),
            1e-15
        ));
        assert!(q.answered_within(1e6) > 1.0 - 1e-12);
    }

    #[test]
    fn erlang_a_with_patience_equal_to_handling_is_an_infinite_server_queue() {
        // θ = μ: every call leaves at rate μ whatever it does, so the number in the system
        // is Poisson(A) (M/M/∞).
        let (c, a) = (6u32, 4.8);
        let q = ErlangA::new(c, a / 90.0, 90.0, 90.0).unwrap();
        let poisson: Vec<f64> = (0..200)
            .scan(1.0, |term, k| {
                let p = *term;
                *term *= a / f64::from(k + 1);
                Some(p * (-a).exp())
            })
            .collect();
        let p_wait: f64 = poisson[c as usize..].iter().sum();
        assert!(close(q.p_wait(), p_wait, 1e-12));
        let lq: f64 = poisson
            .iter()
            .enumerate()
            .skip(c as usize)
            .map(|(n, p)| (n - c as usize) as f64 * p)
            .sum();
        assert!(close(q.abandoned(), lq / a, 1e-12));
    }

    #[test]
    fn erlang_a_with_endless_patience_is_erlang_c() {
        let c = ErlangC::new(6, 4.8 / 90.0, 90.0).unwrap();
        let a = ErlangA::new(6, 4.8 / 90.0, 90.0, 1e9).unwrap();
        assert!(close(a.p_wait(), c.p_wait(), 1e-6));
        assert!(close(a.mean_wait_s(), c.mean_wait_s(), 1e-3));
        for t in [0.0, 5.0, 15.0, 20.0, 120.0] {
            assert!(
                close(a.answered_within(t), c.answered_within(t), 1e-6),
                "{t}"
            );
        }
    }

    #[test]
    fn erlang_a_is_consistent_with_itself() {
        // 6 operators at 80 %, 60 s mean patience: the benchmark's case.
        let q = ErlangA::new(6, 4.8 / 90.0, 90.0, 60.0).unwrap();
        // Fewer wait than with endless patience (callers who gave up free the queue).
        assert!(q.p_wait() < erlang_c(6, 4.8).unwrap());
        // P(Ab) = θ·E[W_q].
        assert!(close(q.abandoned(), q.mean_wait_s() / 60.0, 1e-15));
        // Everyone not abandoned is answered at last; nobody waiting is answered at once.
        assert!(close(q.answered_within(1e4), 1.0 - q.abandoned(), 1e-9));
        assert!(close(q.answered_within(0.0), 1.0 - q.p_wait(), 1e-12));
        let mut last = 0.0;
        for t in [0.0, 1.0, 15.0, 20.0, 60.0, 600.0] {
            let within = q.answered_within(t);
            assert!(within >= last && within <= 1.0, "{t}: {within}");
            last = within;
        }
        // Overloaded (A = 9 erl on 6 operators): still stationary, and the operators answer
        // at most cμ of the λ calls a second, so at least 1 − cμ/λ = 1/3 give up.
        let over = ErlangA::new(6, 9.0 / 90.0, 90.0, 60.0).unwrap();
        assert!(over.abandoned() > 1.0 / 3.0 && over.abandoned() < 0.4);
        assert!(over.p_wait() > over.abandoned());
        assert_eq!(ErlangA::new(6, 0.0, 90.0, 60.0), None);
    }

    #[test]
    fn nena_targets_need_a_few_more_operators_than_the_load() {
        let rate = 4.8 / 90.0;
        let c = operators_needed(rate, 90.0, &NENA_ANSWER_TARGETS);
        let q = ErlangC::new(c, rate, 90.0).unwrap();
        assert!(q.answered_within(15.0) >= 0.90 && q.answered_within(20.0) >= 0.95);
        let fewer = ErlangC::new(c - 1, rate, 90.0);
        assert!(
            fewer.is_none_or(|q| q.answered_within(15.0) < 0.90 || q.answered_within(20.0) < 0.95)
        );
    }
}
