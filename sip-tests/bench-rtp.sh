#!/usr/bin/env bash
# RTP relay benchmark: relays G.711 RTP (160-byte payload every 20 ms, both directions)
# for CALLS concurrent calls on 127.0.0.1 for SECONDS, with the relay in its own process,
# and prints the relay's CPU per relayed packet and the loss (sent vs received).
#
# Usage: sip-tests/bench-rtp.sh [CALLS=100] [SECONDS=20] [RUNTIME=multi|current|dedicated]
# Bounded: CALLS <= 2000, SECONDS <= 600; the relay is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

calls=${1:-100}
seconds=${2:-20}
runtime=${3:-multi}
if [ "$calls" -gt 2000 ] || [ "$seconds" -gt 600 ]; then
    echo "bench-rtp.sh: CALLS <= 2000 and SECONDS <= 600" >&2
    exit 2
fi

cargo build --release --example rtp_load
bin=target/release/examples/rtp_load
ready=$(mktemp)
"$bin" relay --calls "$calls" --runtime "$runtime" >"$ready" &
relay_pid=$!
trap 'kill "$relay_pid" 2>/dev/null || true; rm -f "$ready"' EXIT

for _ in $(seq 50); do
    grep -q ready "$ready" && break
    sleep 0.1
done
grep -q ready "$ready" || { echo "bench-rtp.sh: relay did not start" >&2; exit 1; }

echo "== $calls calls, ${seconds} s, relay runtime: $runtime"
timeout $((seconds + 60)) "$bin" load --calls "$calls" --seconds "$seconds" \
    --relay-pid "$relay_pid" --clk-tck "$(getconf CLK_TCK)"
kill -TERM "$relay_pid"
wait "$relay_pid" || true
cat "$ready"
