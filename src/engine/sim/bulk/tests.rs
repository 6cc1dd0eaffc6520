//! The bulk suite: batches of seeds (each asserting the calls it ended and the paths it
//! reached), one seed with its trace, replay, and a check that the checks can fail.

use super::{CALLS_PER_SEED, End, Run, Tally};

/// Seeds per batch; `SIAGA_ACD_SEEDS` overrides (to hunt: a large number, `--release`).
const SEEDS_PER_BATCH: u64 = 200;
/// Batches (one test each).
const BATCHES: u64 = 2;
/// The calls the suite simulates at the default seed count: each batch asserts it ended
/// its share, counted from the runs' own dispositions.
const SUITE_CALLS: u64 = 100_000;
const _: () = assert!(SEEDS_PER_BATCH * BATCHES * CALLS_PER_SEED as u64 >= SUITE_CALLS);

/// What every batch must reach, or the checks check nothing.
const MUST_REACH: [&str; 15] = [
    "offered",
    "answered",
    "rejected",
    "failed",
    "ring timeout",
    "ring-all: one answered, others withdrawn",
    "answer races the caller's hang-up",
    "late answer ignored",
    "leg lost: requeued at the head",
    "registration lapsed while ringing",
    "not ready after no answers",
    "command refused",
    "callback placed",
    "overflow answered",
    "overflow failed",
];

/// Runs `seed`; on a broken rule, replays it with the trace and returns the failure.
fn run_seed(seed: u64) -> Result<Tally, String> {
    let mut r = Run::new(seed, false);
    r.run();
    if r.broken.is_empty() {
        return Ok(std::mem::take(&mut r.tally));
    }
    let mut traced = Run::new(seed, true);
    traced.run();
    let trace = traced.trace().unwrap_or_default();
    let tail = &trace[trace.len().saturating_sub(400)..];
    Err(format!(
        "seed {seed}: {}\n--- trace (last {} lines; SIAGA_ACD_SEED={seed} cargo test --lib sim::bulk::tests::one_seed -- --nocapture for all) ---\n{}",
        r.broken.join("\n"),
        tail.len(),
        tail.join("\n")
    ))
}

fn batch(n: u64) {
    let per = std::env::var("SIAGA_ACD_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_PER_BATCH);
    let mut tally = Tally::default();
    for seed in n * per..(n + 1) * per {
        match run_seed(seed) {
            Ok(t) => tally.merge(&t),
            Err(e) => panic!("{e}"),
        }
    }
    if per < SEEDS_PER_BATCH {
        return;
    }
    let missed: Vec<&str> = MUST_REACH
        .into_iter()
        .filter(|what| !tally.seen.contains_key(what))
        .collect();
    assert!(
        missed.is_empty(),
        "batch {n} never reached {missed:?}: {tally:?}"
    );
    for end in [
        End::Answered,
        End::AbandonedInQueue,
        End::AbandonedWhileRinging,
        End::AbandonedOverflowing,
        End::Overflowed,
    ] {
        assert!(
            tally.ends.contains_key(&end),
            "batch {n}: no call ended {end:?}"
        );
    }
    assert!(
        tally.calls() >= SUITE_CALLS / BATCHES,
        "batch {n} ended {} calls, short of {}",
        tally.calls(),
        SUITE_CALLS / BATCHES
    );
}

#[test]
fn acd_seeds_batch_0() {
    batch(0);
}

#[test]
fn acd_seeds_batch_1() {
    batch(1);
}

/// `SIAGA_ACD_SEED=N`: runs seed N and prints its trace and what it reached.
#[test]
fn one_seed() {
    let Some(seed) = std::env::var("SIAGA_ACD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    let mut r = Run::new(seed, true);
    r.run();
    println!("{}", r.trace().unwrap_or_default().join("\n"));
    println!("{:?}", r.tally());
    assert!(r.broken.is_empty(), "{}", r.broken.join("\n"));
}

/// An operator made not ready behind the model's back is caught at that step.
#[test]
fn the_checks_catch_an_acd_that_strays() {
    let mut r = Run::new(11, false);
    r.tamper_from = Some(500);
    r.run();
    assert!(
        r.broken.iter().any(|b| b.contains("the model expects")),
        "{:?}",
        r.broken
    );
}

#[test]
fn a_seed_replays_exactly() {
    let trace = || {
        let mut r = Run::new(7, true);
        r.run();
        r.trace().unwrap_or_default().to_vec()
    };
    let (a, b) = (trace(), trace());
    assert!(a.len() > 1_000, "seed 7 did something");
    assert_eq!(a, b);
}
