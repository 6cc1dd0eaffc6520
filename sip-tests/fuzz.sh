#!/usr/bin/env bash
# Coverage-guided fuzzing of the SIP parser for a bounded time (default 60 s), seeded with
# the RFC 4475 torture messages. Prints libFuzzer's final stats (executions, exec/s).
#   bash sip-tests/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=fuzz/corpus/parse
mkdir -p "$corpus"
cp tests/data/rfc4475/*.dat "$corpus"/
# cargo fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
RUSTC_BOOTSTRAP=1 cargo fuzz run parse "$corpus" -- \
  -max_total_time="$seconds" -max_len=70000 -print_final_stats=1 2>&1 |
  tee /tmp/siaga-fuzz.log | grep -E 'stat::|Done|ERROR|panicked|SUMMARY' || true
grep -q 'stat::number_of_executed_units' /tmp/siaga-fuzz.log
! grep -qE 'panicked|ERROR: libFuzzer' /tmp/siaga-fuzz.log
