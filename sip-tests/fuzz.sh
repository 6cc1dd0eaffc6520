#!/usr/bin/env bash
# Coverage-guided fuzzing for a bounded time (default 60 s). Targets:
#   parse   the message layer (default), seeded with the RFC 4475 torture messages;
#   engine  the whole engine in virtual time fed sequences of messages (format and
#           invariants: fuzz/src/engine_script.rs), seeded with the call flows in
#           fuzz/seeds/engine/ (templates and recorded messages) and the RFC 4475 messages
#           sent by the trunk.
# The corpus grows in fuzz/corpus/TARGET (not in git); crashes land in
# fuzz/artifacts/TARGET. Prints libFuzzer's final stats (executions, exec/s, coverage)
# and fails if the target does not build or any input crashes it. Installs cargo-fuzz
# when missing; runs on the stable toolchain (RUSTC_BOOTSTRAP). A crash is reproduced
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
#   bash sip-tests/fuzz.sh [SECONDS] [TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
target="${2:-parse}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus="fuzz/corpus/$target"
log=$(mktemp)
mkdir -p "$corpus"
case "$target" in
    parse)
        cp tests/data/rfc4475/*.dat "$corpus"/
        max_len=70000
        ;;
    engine)
        cp fuzz/seeds/engine/* "$corpus"/
        # Each torture message as one datagram from the trunk: op 0x00 (raw, no time
        # passes), peer 0 (the trunk over UDP), then the message.
        for f in tests/data/rfc4475/*.dat; do
            { printf '\000\000'; cat "$f"; } >"$corpus/rfc4475-$(basename "$f" .dat)"
        done
        max_len=32768
        ;;
    *)
        echo "unknown target $target (parse, engine)" >&2
        exit 2
        ;;
esac
# cargo fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
status=0
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$PWD/$corpus" -- \
  -max_total_time="$seconds" -max_len="$max_len" -dict="$PWD/fuzz/sip.dict" -print_final_stats=1 \
  >"$log" 2>&1 || status=$?
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^Done|^#[0-9]+ +DONE' "$log" || true
if [ "$status" -ne 0 ]; then
  tail -n 40 "$log"
  echo "fuzzing failed (exit $status); full log: $log" >&2
  exit "$status"
fi
echo "fuzzing $target OK for ${seconds}s; corpus $(find "$corpus" -type f | wc -l) inputs; full log: $log"
