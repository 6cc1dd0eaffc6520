//! Service level of the real ACD in virtual time, held to queueing theory (issue 5, point
//! 10). Not a test of speed: a check that the ACD serves a queue the way Erlang C and Erlang
//! A say an ideal call centre does, and the figures a 112 centre sizes its staff by.
//!
//! Each scenario draws one trace from the seed: Poisson arrivals, exponential handling times
//! (mean 90 s), and for Erlang A an exponential patience per caller (mean 60 s). The trace is
//! played twice in virtual time (`MonoTime`, nanoseconds) by the same event loop:
//! - through the real [`Acd`]: `enqueue` on arrival, then `next_offer` / `offer` while it
//!   finds pairs; the phone answers at once (ring time 0: `answered`; for ring-all one of
//!   the operators rung, drawn from the seed, answers and the others' offers are
//!   `Withdrawn`), `call_ended` + `forget` when the handling time is over (wrap-up 0), and
//!   `forget` when a waiting caller's patience runs out; `handle_timeout` at every
//!   `poll_timeout`, agent transitions drained as the engine does;
//! - through an ideal FIFO queue with `c` identical operators (a counter and a `VecDeque`).
//!
//! With identical operators and handling times drawn per call, every work-conserving FIFO
//! centre gives each call the same wait, whatever operator it picks: the ACD must match the
//! ideal queue call for call (exactly, in nanoseconds). The measured figures are then held
//! to theory (`siaga::engine::acd::erlang`): P(wait), mean wait, the shares answered within
//! 15 s and 20 s (NENA-STA-020.1: 90 % and 95 %) and, with patience, the share abandoned.
//! Each figure's standard error comes from batch means (consecutive calls in equal batches,
//! so that the correlation between neighbouring callers' waits is counted); the first 2 % of
//! calls (an empty centre at the start) are not counted.
//!
//! The process exits 1 when a figure is more than `Z_LIMIT` standard errors from theory or
//! the ACD differs from the ideal queue for any call.
//!
//! Run: `cargo bench --bench service_level` (1,000,000 calls per scenario, seed 1), or
//! `cargo bench --bench service_level -- --calls 200000 --seed 7` (also
//! `SIAGA_BENCH_CALLS`, `SIAGA_BENCH_SEED`). Without `--bench` (as `cargo test
//! --all-targets` runs it) a smoke run: 20,000 calls per scenario, seed 1 whatever the
//! options, the same checks with a wider limit; deterministic, so it cannot flake.
//!
//! "µs per call" is the run's wall time through the ACD minus the same event loop through
//! the ideal queue, per call: the ACD's own work (enqueue, offers, answers, ends, timers).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siaga::engine::MonoTime;
use siaga::engine::acd::erlang::{ErlangA, ErlangC, NENA_ANSWER_TARGETS, operators_needed};
use siaga::engine::acd::{Acd, AcdSettings, CallHandle, OfferEnd, Strategy};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Mean handling time, seconds.
const HANDLING_S: f64 = 90.0;
/// Mean patience of callers who give up (Erlang A), seconds.
const PATIENCE_S: f64 = 60.0;
/// A figure further than this many standard errors from theory fails the run.
const Z_LIMIT: f64 = 4.0;
/// The smoke run's limit: fewer, shorter batches estimate the error less well.
const Z_LIMIT_SMOKE: f64 = 5.0;

// ---- options --------------------------------------------------------------------------

struct Options {
    calls: usize,
    seed: u64,
    batches: usize,
    z_limit: f64,
    smoke: bool,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let smoke = !args.iter().any(|a| a == "--bench");
        let value = |name: &str, env: &str| -> Result<Option<u64>, String> {
            let flag = format!("--{name}");
            let mut found = std::env::var(env).ok();
            for (i, arg) in args.iter().enumerate() {
                if let Some(v) = arg.strip_prefix(&format!("{flag}=")) {
                    found = Some(v.to_owned());
                } else if *arg == flag {
                    found = args.get(i + 1).cloned();
                }
            }
            found
                .map(|v| {
                    v.replace('_', "")
                        .parse()
                        .map_err(|_| format!("{flag}: not a number: {v}"))
                })
                .transpose()
        };
        if smoke {
            return Ok(Options {
                calls: 20_000,
                seed: 1,
                batches: 20,
                z_limit: Z_LIMIT_SMOKE,
                smoke,
            });
        }
        let calls = value("calls", "SIAGA_BENCH_CALLS")?.unwrap_or(1_000_000) as usize;
        if !(10_000..=50_000_000).contains(&calls) {
            return Err("--calls: between 10000 and 50000000".to_owned());
        }
        Ok(Options {
            calls,
            seed: value("seed", "SIAGA_BENCH_SEED")?.unwrap_or(1),
            batches: 50,
            z_limit: Z_LIMIT,
            smoke,
        })
    }
}

// ---- scenarios and traces -------------------------------------------------------------

/// One load to play.
struct Scenario {
    name: String,
    operators: u32,
    /// Offered load, erlangs.
    offered: f64,
    strategy: Strategy,
    /// Callers give up after an exponential patience with this mean (Erlang A).
    patience_s: Option<f64>,
}

impl Scenario {
    fn arrival_rate(&self) -> f64 {
        self.offered / HANDLING_S
    }

    fn theory(&self) -> Theory {
        match self.patience_s {
            None => Theory::C(
                ErlangC::new(self.operators, self.arrival_rate(), HANDLING_S)
                    .expect("every patient scenario is below 100 % occupancy"),
            ),
            Some(patience) => Theory::A(
                ErlangA::new(self.operators, self.arrival_rate(), HANDLING_S, patience)
                    .expect("positive rates"),
            ),
        }
    }
}

enum Theory {
    C(ErlangC),
    A(ErlangA),
}

impl Theory {
    fn p_wait(&self) -> f64 {
        match self {
            Theory::C(q) => q.p_wait(),
            Theory::A(q) => q.p_wait(),
        }
    }
    fn mean_wait_s(&self) -> f64 {
        match self {
            Theory::C(q) => q.mean_wait_s(),
            Theory::A(q) => q.mean_wait_s(),
        }
    }
    fn answered_within(&self, t: f64) -> f64 {
        match self {
            Theory::C(q) => q.answered_within(t),
            Theory::A(q) => q.answered_within(t),
        }
    }
    fn abandoned(&self) -> f64 {
        match self {
            Theory::C(_) => 0.0,
            Theory::A(q) => q.abandoned(),
        }
    }
    fn meets_nena(&self) -> bool {
        NENA_ANSWER_TARGETS
            .iter()
            .all(|&(t, share)| self.answered_within(t) >= share)
    }
}

/// The draws of every call, in nanoseconds.
struct Trace {
    arrival: Vec<u64>,
    handling: Vec<u64>,
    /// How long each caller waits before giving up (`u64::MAX`: never).
    patience: Vec<u64>,
}

fn exponential(rng: &mut StdRng, mean_s: f64) -> u64 {
    let u: f64 = rng.random();
    (-(1.0 - u).ln() * mean_s * 1e9).round() as u64
}

impl Trace {
    fn draw(scenario: &Scenario, calls: usize, seed: u64) -> Trace {
        let mut rng = StdRng::seed_from_u64(seed);
        let gap_s = 1.0 / scenario.arrival_rate();
        let mut at = 0u64;
        let mut trace = Trace {
            arrival: Vec::with_capacity(calls),
            handling: Vec::with_capacity(calls),
            patience: Vec::with_capacity(calls),
        };
        for _ in 0..calls {
            at += exponential(&mut rng, gap_s);
            trace.arrival.push(at);
            trace.handling.push(exponential(&mut rng, HANDLING_S));
            let patience = scenario
                .patience_s
                .map_or(u64::MAX, |p| exponential(&mut rng, p));
            trace.patience.push(patience);
        }
        trace
    }
}

// ---- the two centres ------------------------------------------------------------------

/// What the event loop drives: a call centre with operators `0..c`.
trait Centre {
    fn arrive(&mut self, call: u32, now: MonoTime);
    /// The caller of `call` hangs up; true when it was still waiting (abandoned).
    fn give_up(&mut self, call: u32, now: MonoTime) -> bool;
    fn finish(&mut self, call: u32, operator: u32, now: MonoTime);
    /// The next call an operator answers now, and who.
    fn next_answer(&mut self, now: MonoTime) -> Option<(u32, u32)>;
    fn deadline(&self) -> Option<MonoTime>;
    fn timeout(&mut self, now: MonoTime);
}

/// The real ACD, driven as the call model drives it.
struct AcdCentre {
    acd: Acd,
    ids: Vec<String>,
    /// Draws which ring-all operator answers first.
    first_to_answer: StdRng,
    transitions: u64,
}

impl AcdCentre {
    fn new(operators: u32, strategy: Strategy, seed: u64) -> Self {
        let ids: Vec<String> = (0..operators).map(|i| format!("op{i:03}")).collect();
        let mut settings = AcdSettings::single_queue(ids.iter().map(String::as_str));
        settings.queues[0].strategy = strategy;
        settings.queues[0].wrap_up = Duration::ZERO;
        let mut acd = Acd::new(&settings, ids.iter().map(String::as_str));
        for id in &ids {
            acd.registered(id, MonoTime::ZERO);
        }
        let mut centre = AcdCentre {
            acd,
            ids,
            first_to_answer: StdRng::seed_from_u64(seed ^ 0x5eed_f00d),
            transitions: 0,
        };
        centre.drain();
        assert_eq!(centre.acd.logged_in(), operators as usize);
        centre
    }

    fn drain(&mut self) {
        while self.acd.poll_transition().is_some() {
            self.transitions += 1;
        }
    }

    fn index(&self, id: &str) -> u32 {
        self.ids
            .binary_search_by(|i| i.as_str().cmp(id))
            .expect("the ACD offers only its own operators") as u32
    }
}

impl Centre for AcdCentre {
    fn arrive(&mut self, call: u32, now: MonoTime) {
        let routing = self.acd.route(&["112"]);
        let record = Uuid::from_u128(u128::from(call) + 1);
        self.acd
            .enqueue(CallHandle(call.into()), record, &routing, 0, now);
    }

    fn give_up(&mut self, call: u32, _now: MonoTime) -> bool {
        let handle = CallHandle(call.into());
        let waiting = self.acd.is_waiting(handle);
        if waiting {
            self.acd.forget(handle);
        }
        waiting
    }

    fn finish(&mut self, call: u32, operator: u32, now: MonoTime) {
        let handle = CallHandle(call.into());
        self.acd
            .call_ended(handle, &self.ids[operator as usize], now);
        self.acd.forget(handle);
        self.drain();
    }

    fn next_answer(&mut self, now: MonoTime) -> Option<(u32, u32)> {
        let offer = self.acd.next_offer(now, |_| true, |_| true)?;
        let rung = self.acd.offer(&offer, now);
        if rung.is_empty() {
            return None;
        }
        let first = if rung.len() == 1 {
            0
        } else {
            self.first_to_answer.random_range(0..rung.len())
        };
        self.acd.answered(offer.call, &rung[first], now);
        for (i, id) in rung.iter().enumerate() {
            if i != first {
                self.acd
                    .offer_ended(offer.call, id, OfferEnd::Withdrawn, now);
            }
        }
        self.drain();
        let call = u32::try_from(offer.call.0).expect("handles are call indices");
        Some((call, self.index(&rung[first])))
    }

    fn deadline(&self) -> Option<MonoTime> {
        self.acd.poll_timeout()
    }

    fn timeout(&mut self, now: MonoTime) {
        self.acd.handle_timeout(now);
        while self.acd.poll_widened().is_some() {}
        self.drain();
    }
}

/// The textbook centre: `c` identical operators and one FIFO line.
struct IdealCentre {
    free: Vec<u32>,
    line: VecDeque<u32>,
    /// Calls that gave up while in `line` (removed lazily).
    gone: Vec<bool>,
}

impl IdealCentre {
    fn new(operators: u32, calls: usize) -> Self {
        IdealCentre {
            free: (0..operators).rev().collect(),
            line: VecDeque::new(),
            gone: vec![false; calls],
        }
    }
}

impl Centre for IdealCentre {
    fn arrive(&mut self, call: u32, _now: MonoTime) {
        self.line.push_back(call);
    }

    fn give_up(&mut self, call: u32, _now: MonoTime) -> bool {
        // Still in line when it has not been answered: answered calls left the line.
        let waiting = self.line.contains(&call);
        if waiting {
            self.gone[call as usize] = true;
        }
        waiting
    }

    fn finish(&mut self, _call: u32, operator: u32, _now: MonoTime) {
        self.free.push(operator);
    }

    fn next_answer(&mut self, _now: MonoTime) -> Option<(u32, u32)> {
        if self.free.is_empty() {
            return None;
        }
        while let Some(call) = self.line.pop_front() {
            if !self.gone[call as usize] {
                let operator = self.free.pop().expect("checked above");
                return Some((call, operator));
            }
        }
        None
    }

    fn deadline(&self) -> Option<MonoTime> {
        None
    }

    fn timeout(&mut self, _now: MonoTime) {}
}

// ---- the event loop -------------------------------------------------------------------

/// A call's fate: its wait in ns, with the top bit set when the caller gave up.
const ABANDONED: u64 = 1 << 63;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Done { call: u32, operator: u32 },
    GiveUp { call: u32 },
}

struct Run {
    fate: Vec<u64>,
    answered_by: Vec<u64>,
    elapsed: Duration,
}

fn at(ns: u64) -> MonoTime {
    MonoTime::from_origin(Duration::from_nanos(ns))
}

fn play<C: Centre>(centre: &mut C, trace: &Trace, operators: u32) -> Run {
    let started = Instant::now();
    let calls = trace.arrival.len();
    let mut fate = vec![u64::MAX; calls];
    let mut answered_by = vec![0u64; operators as usize];
    let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut next_call = 0usize;
    loop {
        let event_at = events.peek().map(|Reverse((t, _, _))| *t);
        let arrival_at = trace.arrival.get(next_call).copied();
        let deadline = centre
            .deadline()
            .map(|t| t.since_origin().as_nanos() as u64);
        // At one instant: calls ending or giving up, then arrivals, then the ACD's timers.
        let Some(now) = [event_at, arrival_at, deadline].into_iter().flatten().min() else {
            break;
        };
        if event_at == Some(now) {
            let Some(Reverse((_, _, event))) = events.pop() else {
                unreachable!("peeked")
            };
            match event {
                Event::Done { call, operator } => centre.finish(call, operator, at(now)),
                Event::GiveUp { call } => {
                    if centre.give_up(call, at(now)) {
                        fate[call as usize] = (now - trace.arrival[call as usize]) | ABANDONED;
                    }
                }
            }
        } else if arrival_at == Some(now) {
            let call = next_call as u32;
            next_call += 1;
            centre.arrive(call, at(now));
            let patience = trace.patience[call as usize];
            if patience != u64::MAX {
                seq += 1;
                events.push(Reverse((now + patience, seq, Event::GiveUp { call })));
            }
        } else {
            centre.timeout(at(now));
        }
        while let Some((call, operator)) = centre.next_answer(at(now)) {
            fate[call as usize] = now - trace.arrival[call as usize];
            answered_by[operator as usize] += 1;
            seq += 1;
            let done = now + trace.handling[call as usize];
            events.push(Reverse((done, seq, Event::Done { call, operator })));
        }
    }
    Run {
        fate,
        answered_by,
        elapsed: started.elapsed(),
    }
}

// ---- figures --------------------------------------------------------------------------

/// One figure measured over batches of consecutive calls.
struct Figure {
    name: &'static str,
    theory: f64,
    mean: f64,
    /// Standard error of the mean, from the batch means.
    se: f64,
}

impl Figure {
    fn z(&self) -> f64 {
        let diff = self.mean - self.theory;
        if diff == 0.0 { 0.0 } else { diff / self.se }
    }
}

fn measure(
    name: &'static str,
    theory: f64,
    fate: &[u64],
    batches: usize,
    value: impl Fn(u64) -> f64,
) -> Figure {
    let size = fate.len() / batches;
    let means: Vec<f64> = fate
        .chunks_exact(size)
        .take(batches)
        .map(|batch| batch.iter().map(|&f| value(f)).sum::<f64>() / size as f64)
        .collect();
    let mean = means.iter().sum::<f64>() / batches as f64;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (batches - 1) as f64;
    Figure {
        name,
        theory,
        mean,
        se: (var / batches as f64).sqrt(),
    }
}

fn figures(theory: &Theory, fate: &[u64], batches: usize, patient: bool) -> Vec<Figure> {
    let waited = |f: u64| f64::from(u8::from(f != 0));
    let wait_s = |f: u64| (f & !ABANDONED) as f64 / 1e9;
    let within = |t: f64| move |f: u64| f64::from(u8::from(f & ABANDONED == 0 && wait_s(f) <= t));
    let mut out = vec![
        measure("P(wait)", theory.p_wait(), fate, batches, waited),
        measure("mean wait (s)", theory.mean_wait_s(), fate, batches, wait_s),
        measure(
            "answered <= 15 s",
            theory.answered_within(15.0),
            fate,
            batches,
            within(15.0),
        ),
        measure(
            "answered <= 20 s",
            theory.answered_within(20.0),
            fate,
            batches,
            within(20.0),
        ),
    ];
    if !patient {
        out.push(measure(
            "abandoned",
            theory.abandoned(),
            fate,
            batches,
            |f| f64::from(u8::from(f & ABANDONED != 0)),
        ));
    }
    out
}

// ---- main -----------------------------------------------------------------------------

fn scenarios() -> Vec<Scenario> {
    let six = |name: &str, occupancy: f64, strategy, patience_s| Scenario {
        name: name.to_owned(),
        operators: 6,
        offered: 6.0 * occupancy,
        strategy,
        patience_s,
    };
    let mut list = vec![
        six(
            "Erlang C, 80 %, longest-idle",
            0.8,
            Strategy::LongestIdle,
            None,
        ),
        six(
            "Erlang C, 80 %, round-robin",
            0.8,
            Strategy::RoundRobin,
            None,
        ),
        six("Erlang C, 80 %, ring-all", 0.8, Strategy::RingAll, None),
        six(
            "Erlang C, 90 %, longest-idle",
            0.9,
            Strategy::LongestIdle,
            None,
        ),
        six(
            "Erlang A, 80 %, patience 60 s",
            0.8,
            Strategy::LongestIdle,
            Some(PATIENCE_S),
        ),
    ];
    // The staff NENA's targets need at the 80 % load of six operators.
    let offered = 6.0 * 0.8;
    let needed = operators_needed(offered / HANDLING_S, HANDLING_S, &NENA_ANSWER_TARGETS);
    list.push(Scenario {
        name: format!("Erlang C, {offered:.1} erl, {needed} operators (NENA)"),
        operators: needed,
        offered,
        strategy: Strategy::LongestIdle,
        patience_s: None,
    });
    list
}

fn main() {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("service_level: {e}");
            std::process::exit(2);
        }
    };
    let warm_up = options.calls / 50;
    println!(
        "ACD service level: {} calls per scenario ({} not counted: warm-up), seed {}, handling 90 s \
         (exponential), Poisson arrivals, ring time 0, wrap-up 0, {} batches{}",
        options.calls,
        warm_up,
        options.seed,
        options.batches,
        if options.smoke {
            " (smoke run: `cargo bench --bench service_level` for the full one)"
        } else {
            ""
        }
    );
    println!(
        "NENA-STA-020.1: 90 % answered within 15 s, 95 % within 20 s; fail when |z| > {}\n",
        options.z_limit
    );
    let offered = 6.0 * 0.8;
    let patient = operators_needed(offered / HANDLING_S, HANDLING_S, &NENA_ANSWER_TARGETS);
    let impatient = (1..)
        .find(|&c| {
            ErlangA::new(c, offered / HANDLING_S, HANDLING_S, PATIENCE_S)
                .is_some_and(|q| Theory::A(q).meets_nena())
        })
        .expect("enough operators meet any target");
    println!(
        "operators who meet NENA-STA-020.1 at {offered:.1} erl (theory): {patient} with callers who \
         never give up (Erlang C), {impatient} with 60 s mean patience (Erlang A)\n"
    );
    let mut failures = Vec::new();
    for (index, scenario) in scenarios().iter().enumerate() {
        // Common random numbers: scenarios of one load share the trace (the strategies
        // differ only in who answers, never in how long a caller waits).
        let trace_seed = options.seed.wrapping_mul(1000)
            + u64::from(scenario.operators) * 10
            + (scenario.offered * 10.0) as u64
            + u64::from(scenario.patience_s.is_some());
        let trace = Trace::draw(scenario, options.calls, trace_seed);
        let mut acd = AcdCentre::new(
            scenario.operators,
            scenario.strategy,
            options.seed + index as u64,
        );
        let real = play(&mut acd, &trace, scenario.operators);
        let mut ideal_centre = IdealCentre::new(scenario.operators, options.calls);
        let ideal = play(&mut ideal_centre, &trace, scenario.operators);
        let theory = scenario.theory();

        println!(
            "== {} ({} operators, {:.2} erl, occupancy {:.0} %)",
            scenario.name,
            scenario.operators,
            scenario.offered,
            100.0 * scenario.offered / f64::from(scenario.operators)
        );
        println!(
            "   {:<18} {:>9} {:>9} {:>10} {:>7}",
            "figure", "theory", "measured", "±95 % CI", "z"
        );
        let counted = &real.fate[warm_up..];
        for figure in figures(
            &theory,
            counted,
            options.batches,
            scenario.patience_s.is_none(),
        ) {
            let z = figure.z();
            println!(
                "   {:<18} {:>9.4} {:>9.4} {:>10.4} {:>+7.2}",
                figure.name,
                figure.theory,
                figure.mean,
                1.96 * figure.se,
                z
            );
            if z.is_nan() || z.abs() > options.z_limit {
                failures.push(format!("{}: {} z = {z:+.2}", scenario.name, figure.name));
            }
        }
        let differ = real
            .fate
            .iter()
            .zip(&ideal.fate)
            .filter(|(a, b)| a != b)
            .count();
        let unresolved = real.fate.iter().filter(|&&f| f == u64::MAX).count();
        if differ > 0 || unresolved > 0 {
            failures.push(format!(
                "{}: {differ} calls fared otherwise than in the ideal FIFO queue, {unresolved} never resolved",
                scenario.name
            ));
        }
        let total: u64 = real.answered_by.iter().sum();
        let share = |n: u64| 100.0 * n as f64 / total as f64;
        let (least, most) = (
            real.answered_by.iter().min().copied().unwrap_or(0),
            real.answered_by.iter().max().copied().unwrap_or(0),
        );
        let work_us =
            real.elapsed.saturating_sub(ideal.elapsed).as_secs_f64() * 1e6 / options.calls as f64;
        println!(
            "   same wait as the ideal FIFO queue: {} of {} calls; calls per operator {:.1}–{:.1} %; \
             {} agent transitions",
            options.calls - differ,
            options.calls,
            share(least),
            share(most),
            acd.transitions
        );
        println!(
            "   NENA targets met: {} (theory: {}); ACD work {:.2} µs per call ({:.2} µs per call \
             with the event loop)\n",
            if meets(&real.fate[warm_up..]) {
                "yes"
            } else {
                "no"
            },
            if theory.meets_nena() { "yes" } else { "no" },
            work_us,
            real.elapsed.as_secs_f64() * 1e6 / options.calls as f64,
        );
    }
    if failures.is_empty() {
        println!(
            "all figures within {} standard errors of theory",
            options.z_limit
        );
    } else {
        for f in &failures {
            eprintln!("FAIL {f}");
        }
        std::process::exit(1);
    }
}

/// Whether the measured shares meet NENA-STA-020.1's targets.
fn meets(fate: &[u64]) -> bool {
    NENA_ANSWER_TARGETS.iter().all(|&(t, share)| {
        let within = fate
            .iter()
            .filter(|&&f| f & ABANDONED == 0 && (f as f64) / 1e9 <= t)
            .count();
        within as f64 / fate.len() as f64 >= share
    })
}
