#!/usr/bin/env bash
# ACD service-level benchmark: the real ACD in virtual time (Poisson arrivals, exponential
# handling, 6 operators at 80 % and 90 % occupancy, callers with and without patience) held
# to Erlang C / Erlang A, with NENA-STA-020.1's answer-time shares and the ACD's µs per call.
# Exits 1 when a figure is more than 4 standard errors from theory or the ACD serves any call
# otherwise than an ideal FIFO queue would (see benches/service_level.rs).
#
# Usage: sip-tests/bench-acd.sh [CALLS=1000000] [SEED=1]
# Bounded: 10000 <= CALLS <= 5000000 per scenario (six scenarios), at most 30 min.
set -euo pipefail
cd "$(dirname "$0")/.."

calls=${1:-1000000}
seed=${2:-1}
if ! [[ "$calls" =~ ^[0-9]+$ && "$seed" =~ ^[0-9]+$ ]] || [ "$calls" -lt 10000 ] || [ "$calls" -gt 5000000 ]; then
    echo "bench-acd.sh: 10000 <= CALLS <= 5000000, SEED a number" >&2
    exit 2
fi

nice -n 10 cargo bench --bench service_level --no-run
timeout 1800 nice -n 10 cargo bench --bench service_level -- --calls "$calls" --seed "$seed"
