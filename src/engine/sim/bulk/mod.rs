//! The ACD alone at scale (tests only): the real [`Acd`] driven by a seeded model of what
//! the call model (`crate::engine::call`) does with it, hundreds of calls per seed, with
//! the rules of `check::acd` checked after every step.
//!
//! The model does what the call model does with the ACD, without SIP: a call arrives and is
//! routed (`Acd::route`) and enqueued at its priority (the route's, raised by a drawn
//! trunk signalling level and by the real repeat-caller memory); dispatch takes
//! `next_offer` until there is none, then `next_overflow`. Each phone offered a call draws
//! a reaction: answer after a while (sometimes at the very instant the caller hangs up),
//! reject, fail, or ring until the queue's ring timeout; the ring-all losers are withdrawn
//! when one answers; a call nobody rings any more goes back to its place. Callers give up
//! while waiting, ringing or overflowing (`forget`, `offer_ended(withdrawn)`); answered
//! calls end (`call_ended`, wrap-up) or lose their operator leg mid-call
//! (`call_ended` + `requeue(head)`). The backup centre answers or fails an overflow.
//! Each operator's phone registers, sometimes lets its binding lapse (while ringing: the
//! offer is withdrawn) and registers again; each operator's desk issues `ready`,
//! `not_ready`, `end_wrap_up`, `logout` and takes callbacks (`start_callback`) at drawn
//! times. Virtual time steps to the next event or to `Acd::poll_timeout`, whichever is
//! first (a tie is drawn). Queues (1–3), strategies, login policies, ring timeouts,
//! wrap-ups, no-answer limits, reject delays, widening, overflow, routes with skills and
//! priorities, and operators (2–8, each serving some queues with some skills) are drawn
//! per seed.
//!
//! The model predicts every operator's state (the table of `acd::agent`, restated) and
//! the exact next offer (the order of service in `check::acd`, the eligibility rules and
//! each strategy), and compares the ACD with it after every step; see [`Run::check`].
//! Once every call has arrived the run drains: operators come back and phones answer,
//! until every call has its one disposition.

use super::check::acd::{self as rules, AgentTrack, HeadRank, ServiceOrder};
use crate::engine::acd::{
    Acd, AcdSettings, AgentCommand, AgentState, CallHandle, LoginPolicy, Overflow,
};
use crate::engine::time::MonoTime;
use draw::draw_settings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Calls per seed.
pub const CALLS_PER_SEED: usize = 250;

const SKILLS: [&str; 3] = ["id", "en", "jv"];
const NUMBERS: [&str; 4] = ["112", "110", "113", "119"];
/// Handles of callbacks start here (emergency calls count from 1).
const CALLBACK_BASE: u64 = 1 << 32;

fn t(ms: u64) -> MonoTime {
    MonoTime::from_millis(ms)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// How a call ended: exactly one per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    /// Answered by an operator, then hung up.
    Answered,
    /// The caller gave up while waiting.
    AbandonedInQueue,
    /// The caller gave up while an operator's phone rang.
    AbandonedWhileRinging,
    /// The caller gave up while the backup centre rang.
    AbandonedOverflowing,
    /// Answered by the backup centre.
    Overflowed,
}

/// Where a call is, as the model knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Waiting,
    Ringing(BTreeSet<String>),
    Talking(String),
    Overflowing,
    Overflowed,
    /// A callback an operator placed.
    Callback(String),
}

#[derive(Clone, Debug)]
struct CallM {
    /// Since when its overflow wait counts: its arrival, or when its answered leg failed
    /// and it waited again (`Acd::requeue`).
    overflow_from: u64,
    /// Enqueue index: the call's place.
    seq: u64,
    caller: String,
    dialled: &'static str,
    signalled: u8,
    priority: u8,
    queue: usize,
    skills: Vec<String>,
    widen_at: Option<u64>,
    widened: bool,
    head: Option<u64>,
    abandon_at: Option<u64>,
    talk_ms: u64,
    /// Offers and overflows so far: events of an earlier one are stale.
    attempt: u32,
    overflow_not_before: Option<u64>,
    status: Status,
}

#[derive(Clone, Debug)]
struct OpM {
    id: String,
    queues: Vec<usize>,
    skills: Vec<String>,
    wrap_up: u64,
    no_answer_limit: u32,
    reject_delay: u64,
    login_on_register: bool,
    registered: bool,
    explicit_out: bool,
    no_answers: u32,
    blocked_until: Option<u64>,
    idle_since: Option<u64>,
    /// The state the model expects the ACD to report.
    state: AgentState,
    /// Registration lapses are drawn until the run drains.
    lapses: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Arrive(CallHandle),
    Abandon(CallHandle),
    Answer(CallHandle, usize, u32),
    Reject(CallHandle, usize, u32),
    Fail(CallHandle, usize, u32),
    RingTimeout(CallHandle, usize, u32),
    Hangup(CallHandle, u32),
    LegLost(CallHandle, u32),
    BackupAnswer(CallHandle, u32),
    BackupFail(CallHandle, u32),
    CallbackEnd(CallHandle, bool),
    Register(usize),
    Lapse(usize),
    Desk(usize),
}

/// What a run reached, for the suite's totals.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls that ended, by how.
    pub ends: BTreeMap<End, u64>,
    /// Things that happened, by name (offers, rejects, races …).
    pub seen: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// Calls ended in all.
    pub fn calls(&self) -> u64 {
        self.ends.values().sum()
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.ends {
            *self.ends.entry(*k).or_default() += n;
        }
        for (k, n) in &other.seen {
            *self.seen.entry(k).or_default() += n;
        }
    }
}

/// One seed's run.
pub struct Run {
    seed: u64,
    acd: Acd,
    settings: AcdSettings,
    rng: StdRng,
    now: u64,
    /// Events by (time, drawn tie-break, insertion).
    agenda: BTreeMap<(u64, u64, u64), Ev>,
    next_seq: u64,
    /// Calls not arrived yet.
    pending: BTreeMap<CallHandle, CallM>,
    /// Live calls (and callbacks).
    calls: BTreeMap<CallHandle, CallM>,
    /// Calls ended, each with its one disposition.
    ended: BTreeMap<CallHandle, End>,
    ops: Vec<OpM>,
    /// The operator last offered a call of each queue (round-robin's cursor).
    last_offered: BTreeMap<usize, String>,
    waiting: BTreeSet<ServiceOrder>,
    heads: u64,
    /// Calls enqueued so far: the next one's place.
    arrived: u64,
    callbacks: u64,
    /// The last `handle_timeout`.
    handled: Option<u64>,
    last_arrival: u64,
    draining: bool,
    track: AgentTrack,
    tally: Tally,
    /// Broken rules; the run stops at the first step that breaks any.
    pub broken: Vec<String>,
    trace: Option<Vec<String>>,
    /// From this step on, until it takes, an operator is sent `not_ready` behind the
    /// model's back (to show that the checks catch an ACD that strays).
    tamper_from: Option<u64>,
}

impl Run {
    /// The run of `seed` (its settings, operators and calls drawn), with a trace if asked.
    pub fn new(seed: u64, traced: bool) -> Run {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xacd0_5eed);
        let settings = draw_settings(&mut rng);
        let ids: Vec<String> = settings.agents.iter().map(|a| a.id.clone()).collect();
        let acd = Acd::new(&settings, ids.iter().map(String::as_str));
        let ops = settings
            .agents
            .iter()
            .map(|a| {
                let mut queues: Vec<usize> = a
                    .queues
                    .iter()
                    .filter_map(|q| settings.queues.iter().position(|s| &s.name == q))
                    .collect();
                if queues.is_empty() {
                    queues = (0..settings.queues.len()).collect();
                }
                let first = &settings.queues[queues[0]];
                OpM {
                    id: a.id.clone(),
                    login_on_register: queues
                        .iter()
                        .any(|q| settings.queues[*q].login == LoginPolicy::OnRegister),
                    queues,
                    skills: a.skills.clone(),
                    wrap_up: ms(a.wrap_up.unwrap_or(first.wrap_up)),
                    no_answer_limit: first.no_answer_limit,
                    reject_delay: ms(first.reject_delay),
                    registered: false,
                    explicit_out: false,
                    no_answers: 0,
                    blocked_until: None,
                    idle_since: None,
                    state: AgentState::LoggedOut,
                    lapses: true,
                }
            })
            .collect();
        let mut run = Run {
            seed,
            acd,
            settings,
            rng,
            now: 0,
            agenda: BTreeMap::new(),
            next_seq: 0,
            pending: BTreeMap::new(),
            calls: BTreeMap::new(),
            ended: BTreeMap::new(),
            ops,
            last_offered: BTreeMap::new(),
            waiting: BTreeSet::new(),
            heads: 0,
            arrived: 0,
            callbacks: 0,
            handled: None,
            last_arrival: 0,
            draining: false,
            track: AgentTrack::default(),
            tally: Tally::default(),
            broken: Vec::new(),
            trace: traced.then(Vec::new),
            tamper_from: None,
        };
        run.draw_calls();
        for i in 0..run.ops.len() {
            let at = run.rng.random_range(0..5_000);
            run.at(at, Ev::Register(i));
            let at = run.rng.random_range(1_000..60_000);
            run.at(at, Ev::Desk(i));
        }
        run
    }

    /// The trace, when kept.
    pub fn trace(&self) -> Option<&[String]> {
        self.trace.as_deref()
    }

    /// What the run reached.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("{:>10.3}s  {}", self.now as f64 / 1000.0, line()));
        }
    }

    fn seen(&mut self, what: &'static str) {
        *self.tally.seen.entry(what).or_default() += 1;
    }

    fn at(&mut self, time: u64, ev: Ev) {
        let tie = self.rng.random();
        self.next_seq += 1;
        self.agenda.insert((time, tie, self.next_seq), ev);
    }

    fn draw_calls(&mut self) {
        let ops = self.ops.len() as f64;
        let load = self.rng.random_range(0.4..1.4);
        let talk_mean = self.rng.random_range(10_000.0..90_000.0);
        let gap_mean = (talk_mean + 8_000.0) / (ops * load);
        let callers = self.rng.random_range(20..200);
        let mut now = 5_000.0;
        for n in 1..=CALLS_PER_SEED as u64 {
            now += -gap_mean * (1.0 - self.rng.random::<f64>()).ln();
            let arrival = now as u64;
            let patience = match self.rng.random_range(0..10) {
                0..4 => None,
                4..8 => Some(self.rng.random_range(1_000..120_000)),
                _ => Some(self.rng.random_range(100..5_000)),
            };
            let call = CallM {
                overflow_from: arrival,
                seq: n,
                caller: format!("08{}", self.rng.random_range(0..callers)),
                dialled: if self.rng.random_bool(0.6) {
                    "112"
                } else {
                    NUMBERS[self.rng.random_range(0..NUMBERS.len())]
                },
                signalled: if self.rng.random_bool(0.8) {
                    0
                } else {
                    self.rng.random_range(1..=5)
                },
                priority: 0,
                queue: 0,
                skills: Vec::new(),
                widen_at: None,
                widened: false,
                head: None,
                abandon_at: patience.map(|p| arrival + p),
                talk_ms: (-talk_mean * (1.0 - self.rng.random::<f64>()).ln()) as u64 + 500,
                attempt: 0,
                overflow_not_before: None,
                status: Status::Waiting,
            };
            let handle = CallHandle(n);
            if let Some(at) = call.abandon_at {
                self.at(at, Ev::Abandon(handle));
            }
            self.pending.insert(handle, call);
            self.at(arrival, Ev::Arrive(handle));
            self.last_arrival = arrival;
        }
    }

    /// Runs to the end: every call has its disposition and nothing is left to do.
    pub fn run(&mut self) {
        let limit = self.last_arrival + 6 * 3_600_000;
        let mut steps = 0u64;
        while self.broken.is_empty() {
            let event = self.agenda.keys().next().map(|k| k.0);
            let timer = self.acd.poll_timeout().map(|t| ms(t.since_origin()));
            let take_timer = match (event, timer) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(e), Some(t)) => t < e || (t == e && self.rng.random_bool(0.5)),
            };
            steps += 1;
            if steps > 20_000_000 || self.now > limit {
                self.broken.push(format!(
                    "seed {}: the run does not end: step {steps} at {} ms",
                    self.seed, self.now
                ));
                break;
            }
            if take_timer {
                let at = timer.expect("a timer was chosen");
                self.now = self.now.max(at);
                self.timer();
            } else {
                let (key, ev) = self.agenda.pop_first().expect("an event was chosen");
                self.now = self.now.max(key.0);
                self.event(ev);
            }
            if self.tamper_from.is_some_and(|from| steps >= from) {
                self.tamper();
            }
            self.dispatch();
            self.check();
            self.maybe_drain();
        }
        if self.broken.is_empty() {
            self.check_end();
        }
    }

    fn tamper(&mut self) {
        let now = t(self.now);
        for op in &self.ops {
            let idle = matches!(
                op.state,
                AgentState::Available { .. } | AgentState::WrapUp { .. }
            );
            if idle
                && self
                    .acd
                    .command(&op.id, AgentCommand::NotReady, now)
                    .is_ok()
            {
                self.tamper_from = None;
                return;
            }
        }
    }

    /// Once every call arrived, operators come back and answer: every call ends.
    fn maybe_drain(&mut self) {
        if self.draining || self.now < self.last_arrival {
            return;
        }
        self.draining = true;
        self.note(|| "draining: operators come back and answer".to_owned());
        for op in &mut self.ops {
            op.lapses = false;
        }
        for i in 0..self.ops.len() {
            if !self.ops[i].registered {
                let at = self.now + self.rng.random_range(0..2_000);
                self.at(at, Ev::Register(i));
            }
        }
    }

    fn calls_left(&self) -> bool {
        !self.calls.is_empty() || !self.pending.is_empty()
    }

    // ---- dispatch -------------------------------------------------------------------

    /// What the call model does after each input: offers while the ACD finds pairs, then
    /// overflows.
    fn dispatch(&mut self) {
        let now = self.now;
        loop {
            let expected = self.expected_offer();
            let ops = &self.ops;
            let offer = self.acd.next_offer(
                t(now),
                |_| true,
                |id| ops.iter().any(|o| o.id == id && o.registered),
            );
            let got = offer.as_ref().map(|o| (o.call, o.operators.clone()));
            if got != expected {
                self.broken.push(format!(
                    "next offer {got:?}, the model expects {expected:?}"
                ));
                return;
            }
            let Some(offer) = offer else {
                break;
            };
            let reserved = self.acd.offer(&offer, t(now));
            if reserved != offer.operators {
                self.broken
                    .push(format!("offer {offer:?} reserved only {reserved:?}"));
                return;
            }
            self.note(|| format!("offer {:?} to {:?}", offer.call, offer.operators));
            self.seen("offered");
            let queue = self.calls[&offer.call].queue;
            self.last_offered
                .insert(queue, reserved.last().expect("reserved").clone());
            let attempt = self.bump(offer.call);
            self.set(
                offer.call,
                Status::Ringing(reserved.iter().cloned().collect()),
            );
            let ring = ms(self.settings.queues[queue].ring_timeout);
            let abandon_at = self.calls[&offer.call].abandon_at;
            for id in &reserved {
                let i = self.index(id);
                let op = &mut self.ops[i];
                if let AgentState::Available { since } = op.state {
                    op.idle_since = Some(ms(since.since_origin()));
                }
                op.state = AgentState::Ringing { call: offer.call };
                self.phone(offer.call, i, attempt, ring, abandon_at);
            }
        }
        loop {
            let due = self.due_overflows();
            let got = self.acd.next_overflow(t(now), |_| true);
            let Some((call, _)) = got else {
                if let Some(call) = due.first() {
                    self.broken.push(format!(
                        "{call:?} is due to overflow, the ACD does not say so"
                    ));
                }
                break;
            };
            if !due.contains(&call) {
                self.broken.push(format!(
                    "{call:?} overflows, the model has it not due: {due:?}"
                ));
                return;
            }
            self.seen("overflowing");
            self.acd.overflowing(call);
            let attempt = self.bump(call);
            self.set(call, Status::Overflowing);
            let ring = self
                .overflow_of(call)
                .map(|o| ms(o.ring_timeout))
                .unwrap_or(0);
            if self.rng.random_bool(0.6) {
                let at = now + self.rng.random_range(100..ring.max(200));
                self.at(at, Ev::BackupAnswer(call, attempt));
            } else {
                let at = now + self.rng.random_range(50..=ring.max(100));
                self.at(at, Ev::BackupFail(call, attempt));
            }
        }
    }

    /// What the phone of operator `i`, rung for `call`, does.
    fn phone(&mut self, call: CallHandle, i: usize, attempt: u32, ring: u64, abandon: Option<u64>) {
        let now = self.now;
        self.at(now + ring, Ev::RingTimeout(call, i, attempt));
        let draining = self.draining;
        let race = abandon.filter(|a| *a > now && *a < now + ring && self.rng.random_bool(0.3));
        if let Some(at) = race {
            // The operator answers at the very instant the caller hangs up.
            self.seen("answer races the caller's hang-up");
            return self.at(at, Ev::Answer(call, i, attempt));
        }
        let r = self.rng.random_range(0..100);
        let after = |rng: &mut StdRng, max: u64| rng.random_range(50..max.max(100));
        match r {
            _ if draining => {
                let at = now + after(&mut self.rng, 3_000);
                self.at(at, Ev::Answer(call, i, attempt));
            }
            0..60 => {
                let at = now + after(&mut self.rng, ring + ring / 3);
                self.at(at, Ev::Answer(call, i, attempt));
            }
            60..72 => {
                let at = now + after(&mut self.rng, 3_000);
                self.at(at, Ev::Reject(call, i, attempt));
            }
            72..78 => {
                let at = now + after(&mut self.rng, 2_000);
                self.at(at, Ev::Fail(call, i, attempt));
            }
            _ => {}
        }
    }
}

/// A waiting call's rank in the order of service the ACD promises (`check::acd`).
fn order(call: CallHandle, c: &CallM) -> ServiceOrder {
    ServiceOrder {
        priority: Reverse(c.priority),
        head: c
            .head
            .map_or(HeadRank::Place, |h| HeadRank::Head(Reverse(h))),
        arrival: c.seq,
        call,
    }
}

fn error_kind(e: &crate::engine::acd::AgentError) -> &'static str {
    match e {
        crate::engine::acd::AgentError::UnknownOperator(_) => "unknown_operator",
        crate::engine::acd::AgentError::NotRegistered => "not_registered",
        crate::engine::acd::AgentError::NotAllowed { .. } => "not_allowed",
    }
}

mod draw;
mod events;
mod expect;
mod tests;
