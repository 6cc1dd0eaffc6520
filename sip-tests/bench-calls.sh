#!/usr/bin/env bash
# Signalling benchmark of siaga's full 112 call path, everything on 127.0.0.1:
#
#   trunk (SIPp, bench-trunk-call.xml) --INVITE 112--> siaga --INVITE--> N operators
#   (one SIPp process, operator-register.xml -inf users.csv + bench-operator-answer.xml:
#   registered with digest auth, each answering at once). No RTP.
#
# The call rate goes up in steps (BENCH_RATES calls/s, BENCH_STEP_S seconds each) and
# stops after the first step with a failed call. It reports:
#   - the highest call rate sustained for a whole step: 0 failed calls, on time, and p99
#     INVITE-to-INVITE latency at most BENCH_MAX_P99_MS;
#   - siaga's CPU milliseconds per call (utime + stime from /proc/PID/stat, per step);
#   - p50 / p99 time from the trunk INVITE reaching siaga to siaga sending the operator
#     INVITE (a capture of INVITEs on lo; a trunk INVITE and an operator INVITE are paired
#     by the caller's number in From / P-Asserted-Identity, else by order);
#   - siaga's peak resident memory (VmHWM from /proc/PID/status).
#
# Env (defaults):
#   BENCH_RATES="50 100 200 400 800"  calls/s of each step
#   BENCH_STEP_S=60                     seconds per step (a quick run: BENCH_STEP_S=10)
#   BENCH_OPERATORS=200                 registered operators (users 2000, 2001, ...)
#   BENCH_HOLD_MS=100                   talk time before the trunk hangs up
#   BENCH_MAX_P99_MS=500                a step whose INVITE-to-INVITE p99 is above this is
#                                       not sustained (siaga is saturated)
#   BENCH_RTP_PORTS=4000                size of siaga's RTP port range
#   BENCH_PROFILE=release               cargo profile of the siaga binary (or debug)
#   BENCH_OUT=                          also write the results as JSON to this file
#   SIPTESTS_KEEP=1                     keep the work directory (captures, SIPp logs)
#   SIAGA_BIN=PATH                      use that siaga binary instead of building one
#
# Usage: bash sip-tests/bench-calls.sh
# Exit:  0 when at least the first step was sustained, 1 when not, 2 when it could not run.
# Needs: sipp, python3, ss; root and tcpdump or dumpcap for the latency percentiles (the
#        rest works without).
set -uo pipefail

# shellcheck source=sip-tests/lib.sh
source "$(dirname "$0")/lib.sh"

RATES=${BENCH_RATES:-"50 100 200 400 800"}
STEP_S=${BENCH_STEP_S:-60}
OPERATORS=${BENCH_OPERATORS:-200}
HOLD_MS=${BENCH_HOLD_MS:-100}
RTP_SIZE=${BENCH_RTP_PORTS:-4000}
PROFILE=${BENCH_PROFILE:-release}
OUT=${BENCH_OUT:-}

for v in "$STEP_S" "$OPERATORS" "$RTP_SIZE" $RATES; do
    if ! [[ "$v" =~ ^[0-9]+$ ]] || [ "$v" -eq 0 ]; then die "not a positive whole number: $v"; fi
done
[[ "$HOLD_MS" =~ ^[0-9]+$ ]] || die "BENCH_HOLD_MS: not a whole number: $HOLD_MS"
[ "$OPERATORS" -le 9000 ] || die "BENCH_OPERATORS: at most 9000"

lib_init bench
ensure_tools capture
echo "bench: work dir $WORK"
echo "bench: rates [$RATES] calls/s, $STEP_S s per step, $OPERATORS operators, hold $HOLD_MS ms, $PROFILE build"

build_siaga "$PROFILE"
echo "bench: siaga binary $SIAGA_BIN"
# SIPp wants its open calls (-l below) plus sockets under the open-file limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
MAX_OPEN_CALLS=$(($(ulimit -n) - 1000))
[ "$MAX_OPEN_CALLS" -gt 30000 ] && MAX_OPEN_CALLS=30000
read -r SIP_PORT HTTP_PORT TRUNK_PORT TRUNK_MP OP_PORT OP_MP RTP_LO <<<"$(free_ports 2 2 2 4 2 4 "$RTP_SIZE")"
[ -n "${RTP_LO:-}" ] || die "no free ports"
RTP_HI=$((RTP_LO + RTP_SIZE - 1))
CLK_TCK=$(getconf CLK_TCK)

pairs=()
for ((i = 0; i < OPERATORS; i++)); do pairs+=("$((2000 + i)):bench"); done
CONF="$WORK/siaga.toml"
write_config "$CONF" "$SIP_PORT" "$RTP_LO" "$RTP_HI" "$HTTP_PORT" "${BENCH_LOG_LEVEL:-warn}" \
    "$(operators_toml "${pairs[@]}")" $'ring_timeout_s = 15\nreject_retry_delay_s = 5\nwrap_up_s = 0'
users_csv "$WORK/users.csv" "${pairs[@]}"

out=$("$SIAGA_BIN" check-config --config "$CONF" 2>&1) ||
    { printf '%s\n' "$out"; die "check-config rejects the bench config"; }
start_siaga "$CONF" "$WORK/siaga.log" || { siaga_log_tail "$WORK/siaga.log" 30; die "siaga did not start"; }
echo "bench: siaga pid $SIAGA_PID on 127.0.0.1:$SIP_PORT, rtp $RTP_LO-$RTP_HI"

# All operators in one SIPp process: one REGISTER "call" per user, each then paused for
# the whole benchmark, answering siaga's INVITEs with bench-operator-answer.xml.
nsteps=$(wc -w <<<"$RATES")
life_s=$((nsteps * (STEP_S + 60) + 120))
sipp_bg operators "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/operator-register.xml" \
    -oocsf "$SCENARIOS/bench-operator-answer.xml" -inf users.csv -m "$OPERATORS" -r 200 \
    -l "$((OPERATORS + 10))" -d "$((life_s * 1000))" -p "$OP_PORT" -mp "$OP_MP" \
    -default_behaviors all,-bye -deadcall_wait 1 -trace_logs -log_file "$WORK/operators.log" \
    -trace_stat -stf "$WORK/operators.stat.csv" -fd 1 -timeout "$((life_s + 60))s" -timeout_error
OPS_PID=$SIPP_PID
for i in $(seq 600); do
    n=$(grep -c '^REGISTERED' "$WORK/operators.log" 2>/dev/null)
    [ "${n:-0}" -ge "$OPERATORS" ] && break
    kill -0 "$OPS_PID" 2>/dev/null || break
    sleep 0.1
done
if [ "${n:-0}" -lt "$OPERATORS" ]; then
    sipp_explain operators
    die "only ${n:-0} of $OPERATORS operators registered"
fi
echo "bench: $OPERATORS operators registered"

capturing=0
[ -n "$(capture_tool)" ] && capturing=1
[ $capturing = 1 ] || echo "bench: no capture tool or not root: no latency percentiles"

printf '\n%8s %8s %8s %7s %9s %10s %9s %9s %8s  %s\n' rate calls ok failed retrans wall_s cpu_ms/c p50_ms p99_ms result
results=()
best=0
hwm_kb=""
for rate in $RATES; do
    calls=$((rate * STEP_S))
    # At most 30 s of calls open at once (SIPp slows down beyond -l: a backlog that long
    # means siaga is not keeping up, and the step then fails on time).
    limit=$((rate * 30 < MAX_OPEN_CALLS ? rate * 30 : MAX_OPEN_CALLS))
    [ $capturing = 1 ] && capture_start "step-$rate" "udp port $SIP_PORT and udp[8:4] = 0x494e5649"
    ticks0=$(proc_cpu_ticks "$SIAGA_PID")
    t0=$(date +%s.%N)
    rc=0
    sipp_fg "trunk-$rate" "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/bench-trunk-call.xml" -s 112 \
        -key ani_prefix "+628$rate" -r "$rate" -m "$calls" -l "$limit" -d "$HOLD_MS" \
        -p "$TRUNK_PORT" -mp "$TRUNK_MP" -cid_str "bench-$rate-%u-%p@%s" \
        -timeout "$((STEP_S + 60))s" -timeout_error -trace_stat -stf "$WORK/trunk-$rate.stat.csv" -fd 1 || rc=$?
    t1=$(date +%s.%N)
    ticks1=$(proc_cpu_ticks "$SIAGA_PID")
    [ $capturing = 1 ] && capture_stop

    stat=$(python3 "$CHECKS" sipp-stat --csv "$WORK/trunk-$rate.stat.csv")
    read -r ok failed retrans <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("successful",0), d.get("failed",0), d.get("retransmissions",0))' "$stat" 2>/dev/null || echo "0 0 0")"
    wall=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
    alive=1
    kill -0 "$SIAGA_PID" 2>/dev/null || alive=0
    if [ $alive = 1 ]; then
        cpu_ms=$(python3 -c "print(f'{($ticks1 - $ticks0) * 1000 / $CLK_TCK / max($calls, 1):.3f}')")
        hwm_kb=$(proc_status_kb "$SIAGA_PID" VmHWM)
    else
        cpu_ms=null
    fi
    p50="-" p99="-" lat="{}"
    if [ $capturing = 1 ]; then
        lat=$(python3 "$CHECKS" latency --pcap "$WORK/step-$rate.pcap" --siaga-port "$SIP_PORT" --trunk-port "$TRUNK_PORT")
        read -r p50 p99 <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("p50_ms","-"), d.get("p99_ms","-"))' "$lat")"
        [ "${SIPTESTS_KEEP:-0}" = 1 ] || rm -f "$WORK/step-$rate.pcap"
    fi
    # Sustained: every call succeeded, none failed, the step did not run late (calls are
    # placed over STEP_S s; allow 5% + the hold time + 3 s for the last ones), and siaga
    # kept up: p99 from trunk INVITE to operator INVITE below BENCH_MAX_P99_MS (when
    # measured). A saturated siaga still completes every call, but late.
    late_limit=$(python3 -c "print($STEP_S * 1.05 + $HOLD_MS / 1000 + 3)")
    p99_ok=$(python3 -c "import sys; p='$p99'; sys.exit(0 if p == '-' or float(p) <= ${BENCH_MAX_P99_MS:-500} else 1)" && echo 1 || echo 0)
    if [ $rc -eq 0 ] && [ "$failed" = 0 ] && [ "$ok" = "$calls" ] && [ $alive = 1 ] && [ "$p99_ok" = 1 ] &&
        python3 -c "import sys; sys.exit(0 if $wall <= $late_limit else 1)"; then
        result=sustained
        best=$rate
    else
        result="NOT sustained (sipp exit $rc$([ $alive = 0 ] && echo ', siaga died')$([ "$p99_ok" = 0 ] && echo ', p99 too high'))"
    fi
    printf '%8s %8s %8s %7s %9s %10s %9s %9s %8s  %s\n' "$rate" "$calls" "$ok" "$failed" "$retrans" "$wall" "$cpu_ms" "$p50" "$p99" "$result"
    results+=("{\"rate\": $rate, \"calls\": $calls, \"successful\": $ok, \"failed\": $failed, \"retransmissions\": $retrans, \"wall_s\": $wall, \"cpu_ms_per_call\": $cpu_ms, \"latency\": $lat, \"sustained\": $([ "$result" = sustained ] && echo true || echo false)}")
    if [ "$result" != sustained ]; then
        sipp_explain "trunk-$rate"
        [ $alive = 0 ] && siaga_log_tail "$WORK/siaga.log" 30
        break
    fi
    sleep 3 # let the last calls end before the next step
done

if kill -0 "$SIAGA_PID" 2>/dev/null; then hwm_kb=$(proc_status_kb "$SIAGA_PID" VmHWM); fi
echo
echo "bench: highest call rate sustained for $STEP_S s with 0 failed calls: $best calls/s"
echo "bench: siaga peak resident memory (VmHWM): ${hwm_kb:-?} kB"
echo "bench: (cpu_ms/c: siaga's CPU time per call; p50/p99: trunk INVITE in -> operator INVITE out)"

if [ -n "$OUT" ]; then
    printf '{"step_s": %s, "operators": %s, "hold_ms": %s, "profile": "%s", "best_rate": %s, "vm_hwm_kb": %s, "steps": [%s]}\n' \
        "$STEP_S" "$OPERATORS" "$HOLD_MS" "$PROFILE" "$best" "${hwm_kb:-null}" "$(IFS=,; echo "${results[*]}")" >"$OUT"
    echo "bench: results in $OUT"
fi
[ "$best" -gt 0 ]
