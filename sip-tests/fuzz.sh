#!/usr/bin/env bash
# Coverage-guided fuzzing for a bounded time (default 60 s), seeded with the RFC 4475
# torture messages. Targets: `parse` (the message layer, default) and `engine` (the whole
# engine in virtual time). Prints libFuzzer's final stats (executions, exec/s) and fails if
# the target does not build or any input crashes it.
#   bash sip-tests/fuzz.sh [SECONDS] [TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
target="${2:-parse}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus="fuzz/corpus/$target"
log=$(mktemp)
mkdir -p "$corpus"
cp tests/data/rfc4475/*.dat "$corpus"/
# cargo fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
status=0
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
  -max_total_time="$seconds" -max_len=70000 -print_final_stats=1 >"$log" 2>&1 || status=$?
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done|^#[0-9]+ +DONE' "$log" || true
if [ "$status" -ne 0 ]; then
  tail -n 40 "$log"
  echo "fuzzing failed (exit $status); full log: $log" >&2
  exit "$status"
fi
echo "fuzzing $target OK for ${seconds}s; full log: $log"
