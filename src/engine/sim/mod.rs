//! Deterministic simulation (tests only): whole 112 calls through the real [`Engine`] in
//! virtual time, against simulated peers over a simulated network, from a seed; and the
//! real ACD alone at 100,000 calls (`bulk`).
//!
//! # Pieces
//!
//! - `net`: UDP on 127.0.0.0/8 that loses, duplicates, delays and reorders datagrams and
//!   cuts nodes off for a while, all drawn from the seed.
//! - `ua`: the peers' own transaction layer (RFC 3261 §17 client and server machines with
//!   Timers A/B/D/E/F/G/H/K, RFC 6026's Accepted states, the UAS core's 2xx retransmission
//!   of §13.3.1.4), written apart from siaga's so that a mistake in one is not mirrored in
//!   the other. Peers share only siaga's message parser and builder.
//! - `trunk`: the telco gateway: one UAC per caller, who waits, hangs up early (CANCEL) or
//!   talks and hangs up (BYE), ACKs every 2xx, and answers siaga's BYE.
//! - `phone`: an operator's softphone: registers with digest authentication, then for each
//!   INVITE draws a plan (answer after a while, reject, ring until CANCEL or give up with
//!   480, or ignore it), hangs up after a hold time, BYEs a 2xx nobody ACKed.
//! - `desk`: operators' commands (`ready`, `not_ready`, `end_wrap_up`, `logout`) through
//!   `Engine::agent_command` at drawn times (ACD seeds only), each outcome checked against
//!   the agent table.
//! - `world`: the engine, the peers, the network and a stand-in for the media relay (it
//!   binds nothing; it answers each `MediaCommand::Close` with a `MediaReport` a few ms
//!   later, as `crate::media` does). It steps virtual time to the next deadline of anyone,
//!   logs the wire (every copy's delivery time), each call event with what caused it, and
//!   the media commands.
//! - `check`: what every run must satisfy (see its docs): no state left in the engine, a
//!   consistent call record whose every step has the cause the RFCs give it, agreement with
//!   what the peers saw, retransmissions on RFC 3261's exact schedules, media pointed at
//!   the right parties; and (`check::acd`) the engine's `Output::AgentEvent`s: each move
//!   in `acd::agent`'s table, chained per operator, ringing or on call only for a call
//!   recorded offered to or answered by that operator at that instant, every operator
//!   logged out at the end.
//! - `bulk`: the ACD alone, without SIP: the real [`crate::engine::acd::Acd`] driven by a
//!   seeded model of what `call` does with it (arrivals routed by called number with
//!   signalled and repeat-caller priority; offers; phones that answer — sometimes at the
//!   instant the caller hangs up —, reject, fail or ring out; ring-all losers withdrawn;
//!   callers who give up while waiting, ringing or overflowing; mid-call operator leg loss
//!   re-queued at the head; overflow answered or failed; registrations lapsing, also while
//!   ringing; operators' commands and callbacks), several queues, strategies, login
//!   policies, skills and widening drawn per seed. After every step it compares the ACD
//!   with the model's prediction of every operator's state and of the exact next offer
//!   (`check::acd` states the order of service it promises), checks every transition
//!   against the table, that no eligible operator idles beside a waiting call, that a due
//!   overflow is made, and that `poll_timeout` is no later than anything that falls due;
//!   at the end every call has exactly one disposition and nothing waits or is held.
//!   2 batches × 200 seeds × 250 calls: each batch asserts it ended its 50,000 calls
//!   (from the runs' own count). `SIAGA_ACD_SEED=N cargo test --lib sim::bulk::tests::one_seed
//!   -- --nocapture` prints seed N's trace; `SIAGA_ACD_SEEDS=N` sets the seeds per batch
//!   (to hunt: `SIAGA_ACD_SEEDS=20000 cargo test --release --lib sim::bulk::tests::acd_seeds_batch_0`).
//!
//! # A run
//!
//! `Scenario::from_seed` picks the operators and their phones, the calls and what each
//! caller does, T1, the ring timeout, the RTP port range (sometimes too small) and the
//! network (loss 0–30 %, duplicates, jitter up to 300 ms, sometimes an outage of one node).
//! The run has three phases: until every caller is done; until siaga holds no call and
//! every phone is idle (phones now answer whatever is still offered; calls whose every
//! hang-up was lost are ended by `Engine::shutdown` and must be recorded `interrupted`);
//! then every phone unregisters and time runs on until no timer is left anywhere.
//!
//! Everything is drawn from the seed and every table iterates in order, so a seed replays
//! exactly. `SIAGA_SIM_SEED=N cargo test --lib sim::tests::one_seed -- --nocapture` runs
//! seed N and prints its trace (every datagram with its fate, every peer decision, every
//! call event and media command); a failing seed in the suite panics with the same trace.
//! `SIAGA_SIM_SEEDS=N` runs N seeds per batch instead of the default. ACD seeds
//! (`Scenario::acd_from_seed`, batches `acd_seeds_batch_*`, 2 × 300, `SIAGA_SIM_ACD_SEEDS`)
//! take a first-call seed's calls and network and staff it with 3–8 operators, a wrap-up,
//! and drawn operator commands. To hunt, run
//! `SIAGA_SIM_SEEDS=100000 cargo test --release --lib sim::tests::survey -- --ignored
//! --nocapture`, which lists every broken rule of every seed and how often each outcome
//! came up.
//!
//! A seed's scenario changes whenever the generator or a peer's draws change (a new
//! behaviour re-rolls them all), so a bug a seed finds is kept as a directed scenario in
//! `tests` (a fixed `Scenario`, `PhonePlan`s fixed per phone, a `NetProfile::drop` rule
//! that loses just the messages that matter), with the seed that found it in its doc.
//!
//! # Adding behaviours
//!
//! A new SIP feature is a new peer behaviour plus, where the RFC fixes an outcome, a check:
//! - **Hold (re-INVITE/UPDATE, RFC 3261 §14, RFC 3311)**: give `PhonePlan::Answer` and
//!   `CallerPlan` an optional hold step: at a drawn time the peer sends a re-INVITE or
//!   UPDATE in its dialog through [`ua::Ua::send_request`] (CSeq + 1; the trunk's dialog
//!   keeps `to` and `remote_target`, the phone's its INVITE) and answers siaga's with
//!   [`ua::Ua::respond`] (the 2xx retransmission is already the UAS core's). Check that
//!   the other leg got the re-offer with the relay's address and the right direction
//!   attribute, and that glare draws 491 (§14.1).
//! - **Session timers (RFC 4028)**: the trunk sends `Session-Expires`; a caller plan that
//!   stops refreshing lets the session lapse. Check the call ends with BYE on both legs at
//!   the expiry and is recorded with that reason; calls whose every BYE was lost (today
//!   ended by `Engine::shutdown`) should then end by themselves, and the shutdown in
//!   `World::run` can become a check failure.
//! - **PRACK (RFC 3262)**: a `CallSpec` flag for `Supported/Require: 100rel`; on a
//!   reliable 1xx (`RSeq`) the trunk sends PRACK as a new client transaction. Check that
//!   siaga resends the reliable 1xx on T1 doubling until the PRACK (a new group in
//!   `check::wire::retransmissions`) and never answers such a trunk 420.
//!
//! Draw new behaviours from the same RNGs, add their outcomes to `tests::Tally` and, once
//! common enough, to `tests::MUST_REACH`. The engine is read by the simulation only
//! through its outputs and the read-only `Engine::residue` (in `check`).

mod bulk;
mod check;
mod desk;
mod net;
mod phone;
mod scenario;
mod trunk;
mod ua;
mod world;

mod tests;

use rand::rngs::StdRng;

/// What a peer gets when it acts: the time, the run's RNG for its decisions, the trace.
pub struct Ctx<'a> {
    /// Virtual time, in ms.
    pub now: u64,
    /// The behaviour RNG (seeded; the network has its own).
    pub rng: &'a mut StdRng,
    /// The trace, when kept.
    pub trace: &'a mut Option<Vec<String>>,
}

impl Ctx<'_> {
    /// Adds a line to the trace, when one is kept.
    pub fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("{:>9.3}s  {}", self.now as f64 / 1000.0, line()));
        }
    }
}
