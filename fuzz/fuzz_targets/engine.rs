//! Coverage-guided fuzzing of the whole engine in virtual time, fed sequences of messages:
//! templates of real call flows (the trunk's INVITE, CANCEL, ACK, BYE; phones' REGISTER
//! with digest, 180/200/486, BYE; the gateway's answers to OPTIONS) with fuzzed fields,
//! replays and splices, raw bytes, TCP closes and passing time. The input format and the
//! invariants are in `fuzz/src/engine_script.rs`. Run with
//! `bash sip-tests/fuzz.sh SECONDS engine`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/engine_script.rs"]
#[allow(dead_code)] // the seed writers are used by siaga's tests, not here
mod engine_script;

fuzz_target!(|data: &[u8]| {
    engine_script::run(data);
});
