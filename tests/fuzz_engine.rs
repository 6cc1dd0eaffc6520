//! The engine fuzz target's interpreter (`fuzz/src/engine_script.rs`) run in the test
//! suite: the committed seeds in `fuzz/seeds/engine/` are what `seed_flows` writes and
//! reach what they are meant to (answered calls, ring timeouts, rejects); every input in
//! `fuzz/regressions/engine/` (crashes the fuzzer found, now fixed) passes every invariant.
//!
//! `SIAGA_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_engine` rewrites the seeds: each flow
//! in its template form and as the raw messages of a recorded run.

#[path = "../fuzz/src/engine_script.rs"]
mod engine_script;

use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(name)
        .join("engine")
}

/// Every seed: `NAME.flow` (templates) and `NAME.raw` (the recorded messages).
fn seeds() -> Vec<(String, Vec<u8>, engine_script::Summary)> {
    let mut out = Vec::new();
    for (name, flow) in engine_script::seed_flows() {
        let summary = engine_script::run(&flow);
        let raw = engine_script::recorded(&summary);
        out.push((format!("{name}.raw"), raw, summary.clone()));
        out.push((format!("{name}.flow"), flow, summary));
    }
    out
}

#[test]
fn seed_flows_reach_answered_calls_timeouts_and_rejects() {
    let summaries: Vec<(String, engine_script::Summary)> = seeds()
        .into_iter()
        .filter(|(name, ..)| name.ends_with(".flow"))
        .map(|(name, _, s)| (name, s))
        .collect();
    let get = |name: &str| {
        &summaries
            .iter()
            .find(|(n, _)| n == &format!("{name}.flow"))
            .unwrap_or_else(|| panic!("no seed {name}"))
            .1
    };
    for name in [
        "answered-caller-hangs-up",
        "answered-operator-hangs-up",
        "ring-timeout-next-operator",
    ] {
        let s = get(name);
        assert_eq!((s.received, s.answered), (1, 1), "{name}: {s:?}");
    }
    assert_eq!(get("ring-timeout-next-operator").not_answered, 1);
    assert!(get("reject-and-late-offer-over-tcp").not_answered >= 1);
    assert_eq!(get("cancel-in-queue").answered, 0);
    assert_eq!(get("cancel-in-queue").received, 1);
    assert!(get("gateway-stranger-shutdown").answered >= 1);
}

#[test]
fn recorded_flows_replay_the_same_way() {
    for (name, raw, summary) in seeds() {
        if !name.ends_with(".raw") {
            continue;
        }
        let again = engine_script::run(&raw);
        assert_eq!(
            (again.received, again.answered, again.not_answered),
            (summary.received, summary.answered, summary.not_answered),
            "{name}"
        );
    }
}

#[test]
fn committed_seeds_are_current() {
    let seeds = seeds();
    let dir = dir("seeds");
    if std::env::var_os("SIAGA_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).expect("seeds dir");
        for (name, bytes, _) in &seeds {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
    for (name, bytes, _) in &seeds {
        let committed = std::fs::read(dir.join(name)).unwrap_or_else(|e| {
            panic!("{name}: {e}; write the seeds with SIAGA_WRITE_FUZZ_SEEDS=1")
        });
        assert!(
            &committed == bytes,
            "fuzz/seeds/engine/{name} is stale; rewrite with SIAGA_WRITE_FUZZ_SEEDS=1"
        );
    }
}

#[test]
fn fuzzer_findings_stay_fixed() {
    let Ok(entries) = std::fs::read_dir(dir("regressions")) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let name = path.display().to_string();
        let outcome = std::panic::catch_unwind(|| engine_script::run(&data));
        assert!(outcome.is_ok(), "{name} fails again");
    }
}
