# shellcheck shell=bash
# Shared by sip-tests/e2e.sh and sip-tests/bench-calls.sh (sourced, not run): a work
# directory, processes tracked by pid and stopped on exit, free ports, the tools the
# scripts need, siaga's test configuration, starting siaga and SIPp, and PASS/FAIL lines.
#
# Everything runs on 127.0.0.1. Every process a script starts is recorded with lib_track
# and stopped by its pid when the script exits, however it exits.

SIPTESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SIPTESTS_DIR/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
SCENARIOS="$SIPTESTS_DIR/scenarios"
CHECKS="$SIPTESTS_DIR/checks.py"
# shellcheck disable=SC2034 # used by the scripts that source this file
G711A_PCAP=/usr/share/sip-tester/g711a.pcap

LIB_PIDS=()
LIB_KEEP_WORK=0
PASSED=0
FAILED=0
WORK=""

# ---------------------------------------------------------------- output and counters

# Colour only on a terminal.
if [ -t 1 ]; then
    C_OK=$'\e[32m' C_BAD=$'\e[31m' C_DIM=$'\e[2m' C_OFF=$'\e[0m'
else
    C_OK="" C_BAD="" C_DIM="" C_OFF=""
fi

section() { printf '\n== %s\n' "$*"; }
note() { printf '   %s%s%s\n' "$C_DIM" "$*" "$C_OFF"; }
pass() { PASSED=$((PASSED + 1)); printf '%sPASS%s  %s\n' "$C_OK" "$C_OFF" "$*"; }
fail() { FAILED=$((FAILED + 1)); LIB_KEEP_WORK=1; printf '%sFAIL%s  %s\n' "$C_BAD" "$C_OFF" "$*"; }
die() { printf '%sFATAL%s %s\n' "$C_BAD" "$C_OFF" "$*" >&2; exit 2; }

# Runs checks.py and turns its "OK ..."/"BAD ..." lines into PASS/FAIL; other lines are
# detail, indented. Returns 1 if any line was BAD.
run_checks() {
    local line status=0 out
    out=$(python3 "$CHECKS" "$@" 2>&1) || { fail "checks.py $1 crashed"; printf '%s\n' "$out" | sed 's/^/   /'; return 1; }
    while IFS= read -r line; do
        case "$line" in
            "OK "*) pass "${line#OK }" ;;
            "BAD "*) fail "${line#BAD }"; status=1 ;;
            *) printf '   %s\n' "$line" ;;
        esac
    done <<<"$out"
    return $status
}

# ------------------------------------------------------------- work dir and processes

# lib_init NAME: creates the work directory and installs the exit trap.
lib_init() {
    WORK=$(mktemp -d "/tmp/siaga-$1.XXXXXX")
    trap lib_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

lib_track() { LIB_PIDS+=("$1"); }

# Forgets a process that has ended (so that its pid, once reused, is left alone).
lib_untrack() {
    local pid kept=()
    for pid in "${LIB_PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
    LIB_PIDS=("${kept[@]}")
}

# Stops one tracked process: TERM, up to 5 s, then KILL.
lib_stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    lib_untrack "$pid"
}

lib_cleanup() {
    local rc=$? i
    for ((i = ${#LIB_PIDS[@]} - 1; i >= 0; i--)); do
        lib_stop "${LIB_PIDS[$i]}"
    done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$LIB_KEEP_WORK" = 1 ] || [ "${SIPTESTS_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
            echo "logs kept in $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

# ---------------------------------------------------------------------------- tools

# ensure_tools [capture|nocapture]: installs what is missing (Debian, as root): SIPp, and
# with "capture" a packet capture tool. Without root, says what is missing and goes on.
ensure_tools() {
    local want=()
    command -v sipp >/dev/null || want+=(sip-tester)
    command -v ss >/dev/null || want+=(iproute2)
    command -v python3 >/dev/null || want+=(python3)
    if [ "${1:-}" = capture ] && ! command -v tcpdump >/dev/null && ! command -v dumpcap >/dev/null; then
        want+=(tcpdump)
    fi
    [ ${#want[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing ${want[*]}"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}"; } >"${WORK:-/tmp}/apt.log" 2>&1 ||
            { tail -5 "${WORK:-/tmp}/apt.log"; echo "could not install ${want[*]}"; }
    else
        echo "missing (run as root to install): ${want[*]}"
    fi
    command -v sipp >/dev/null || die "sipp not found (Debian package sip-tester)"
}

# A capture command for `capture_start`, or nothing.
capture_tool() {
    if [ "$(id -u)" -ne 0 ]; then return 0; fi
    if command -v tcpdump >/dev/null; then echo tcpdump; elif command -v dumpcap >/dev/null; then echo dumpcap; fi
}

# capture_start NAME FILTER: captures UDP on lo into $WORK/NAME.pcap (libpcap format).
# Sets CAPTURE_PID (empty when no tool). Stop with capture_stop.
CAPTURE_PID=""
capture_start() {
    local name=$1 filter=$2 tool i
    tool=$(capture_tool)
    CAPTURE_PID=""
    case "$tool" in
        tcpdump) tcpdump -i lo -n -s 0 -B 16384 -U --immediate-mode -Z root -w "$WORK/$name.pcap" "$filter" >"$WORK/$name.capture.log" 2>&1 & ;;
        dumpcap) dumpcap -q -i lo -s 0 -B 16 -P -w "$WORK/$name.pcap" -f "$filter" >"$WORK/$name.capture.log" 2>&1 & ;;
        *) return 1 ;;
    esac
    CAPTURE_PID=$!
    lib_track "$CAPTURE_PID"
    # Both tools say so on stderr once the socket is open.
    for i in $(seq 50); do
        grep -qiE 'listening on|capturing on' "$WORK/$name.capture.log" 2>/dev/null && return 0
        kill -0 "$CAPTURE_PID" 2>/dev/null || { CAPTURE_PID=""; return 1; }
        sleep 0.1
    done
    return 0
}

capture_stop() {
    [ -n "$CAPTURE_PID" ] || return 0
    sleep 1 # the last packets reach the capture file
    kill -INT "$CAPTURE_PID" 2>/dev/null || true
    local i
    for i in $(seq 50); do kill -0 "$CAPTURE_PID" 2>/dev/null || break; sleep 0.1; done
    lib_stop "$CAPTURE_PID"
    CAPTURE_PID=""
}

# ---------------------------------------------------------------------------- ports

# free_ports N1 N2 ...: prints the first port of free blocks of N1, N2 ... ports.
free_ports() { python3 "$CHECKS" ports "$@" || die "no free ports on 127.0.0.1"; }

# Waits until something listens on 127.0.0.1:$1 over UDP and TCP ($2 s at most).
wait_listening() {
    local port=$1 secs=${2:-10} pid=${3:-} i
    for i in $(seq $((secs * 10))); do
        if [ -n "$(ss -Hlnu "sport = :$port")" ] && [ -n "$(ss -Hlnt "sport = :$port")" ]; then
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------- siaga

# Builds siaga (debug unless $1 is "release") and sets SIAGA_BIN; a SIAGA_BIN already
# set in the environment is used as it is, without building.
build_siaga() {
    local profile=${1:-debug}
    if [ -n "${SIAGA_BIN:-}" ]; then
        [ -x "$SIAGA_BIN" ] || die "SIAGA_BIN=$SIAGA_BIN is not an executable"
        return 0
    fi
    local args=(build --quiet)
    [ "$profile" = release ] && args+=(--release)
    (cd "$REPO_ROOT" && cargo "${args[@]}") >"$WORK/cargo-build.log" 2>&1 ||
        { tail -30 "$WORK/cargo-build.log"; die "cargo build failed"; }
    SIAGA_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$profile/siaga"
    [ -x "$SIAGA_BIN" ] || die "no siaga binary at $SIAGA_BIN"
}

# write_config FILE SIP_PORT RTP_LOW RTP_HIGH HTTP_PORT LOG_LEVEL OPERATORS_TOML [QUEUE_TOML]
# Writes a test configuration in the shape of config/siaga.toml plus the call-model
# sections ([trunk], [queue], [[operators]]) and exports the SIAGA_* overrides so that
# `siaga calls` sees the same database.
write_config() {
    local file=$1 sip_port=$2 rtp_lo=$3 rtp_hi=$4 http_port=$5 level=$6 operators=$7
    # No wrap-up and no no-answer limit by default: the first-call checks ring the same
    # operators call after call (issue 5: "their test config sets wrap-up to 0").
    local queue=${8:-$'ring_timeout_s = 2\nreject_retry_delay_s = 1\nwrap_up_s = 0\nno_answer_limit = 0'}
    local dir
    dir=$(dirname "$file")
    export SIAGA_SIP_LISTEN="127.0.0.1:$sip_port"
    export SIAGA_RTP_PORTS="$rtp_lo-$rtp_hi"
    export SIAGA_DATABASE_URL="sqlite://$dir/test.db"
    export SIAGA_HTTP_LISTEN="127.0.0.1:$http_port"
    # shellcheck disable=SC2034 # read by e2e.sh
    SIAGA_DB_PATH="$dir/test.db"
    cat >"$file" <<EOF
# siaga test configuration written by sip-tests (shape of config/siaga.toml).
[node]
id = "e2e-1"

[sip]
listen = "127.0.0.1:$sip_port"
domains = ["e2e.siaga.test"]

[sip.timers]
t1_ms = 500
t2_ms = 4000
t4_ms = 5000

[media]
rtp_ports = "$rtp_lo-$rtp_hi"

[database]
url = "sqlite://$dir/test.db"

[http]
listen = "127.0.0.1:$http_port"

[log]
level = "$level"
show_personal_data = true

# ---- call model (issue: first 112 call) ----
[trunk]
# Where trunk INVITEs may come from, and the numbers that are emergency calls.
sources = ["127.0.0.0/8"]
emergency_numbers = ["112"]

[queue]
$queue

$operators
EOF
}

# operators_toml ID:PASSWORD ...
operators_toml() {
    local pair
    for pair in "$@"; do
        printf '[[operators]]\nid = "%s"\npassword = "%s"\n\n' "${pair%%:*}" "${pair#*:}"
    done
}

# Removes the call-model sections (everything from the marker on): the configuration
# siaga accepted before the call model, to check the plumbing with it.
strip_call_model() {
    sed -i '/^# ---- call model/,$d' "$1"
}

# start_siaga CONFIG LOG: starts `siaga run`, sets SIAGA_PID; waits until it listens.
start_siaga() {
    local config=$1 log=$2
    "$SIAGA_BIN" run --config "$config" >"$log" 2>&1 &
    SIAGA_PID=$!
    lib_track "$SIAGA_PID"
    wait_listening "${SIAGA_SIP_LISTEN##*:}" 15 "$SIAGA_PID"
}

# siaga_log_tail FILE [N]: the last N lines of siaga's log, without the transport's
# per-datagram debug lines.
siaga_log_tail() {
    note "siaga log (last ${2:-25} lines of $1, transport debug lines left out):"
    grep -v 'DEBUG siaga::transport' "$1" | tail -n "${2:-25}" | cut -c1-300 | sed 's/^/     /'
}

# CPU ticks (utime + stime, see getconf CLK_TCK) a process used, from /proc/PID/stat.
proc_cpu_ticks() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}

proc_status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }

# ----------------------------------------------------------------------------- SIPp

# Common SIPp options: loopback only, bounded, no stdin, errors traced.
SIPP_COMMON=(-i 127.0.0.1 -mi 127.0.0.1 -nostdin -trace_err)

# sipp_fg NAME ARGS...: runs SIPp in $WORK (screen to NAME.out, errors to NAME.err) and
# waits for it; returns its exit code. (Started in the background and waited for, so that
# a SIGTERM or SIGINT to the script stops everything at once, not after SIPp ends.)
sipp_fg() {
    local name=$1 pid rc=0
    shift
    (cd "$WORK" && exec sipp "${SIPP_COMMON[@]}" -error_file "$WORK/$name.err" "$@") >"$WORK/$name.out" 2>&1 &
    pid=$!
    lib_track "$pid"
    wait "$pid" || rc=$?
    lib_untrack "$pid"
    return $rc
}

# sipp_bg NAME ARGS...: the same in the background; sets SIPP_PID (tracked).
sipp_bg() {
    local name=$1
    shift
    (cd "$WORK" && exec sipp "${SIPP_COMMON[@]}" -error_file "$WORK/$name.err" "$@") >"$WORK/$name.out" 2>&1 &
    SIPP_PID=$!
    lib_track "$SIPP_PID"
}

# Prints the last message table of a SIPp run and the end of its error file.
sipp_explain() {
    local name=$1
    if [ -f "$WORK/$name.out" ]; then
        note "SIPp $name, last screen ($WORK/$name.out):"
        awk '/Messages +Retrans +Timeout/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$WORK/$name.out" |
            sed -n '1,/Test Terminated/p' | grep -v '^ *$' | sed 's/^/     /' | head -30
    fi
    if [ -s "$WORK/$name.err" ]; then
        # One line per event (the date, then what happened: a message received is
        # shown by its start line); the full messages stay in the file.
        note "SIPp $name errors (last events; all in $WORK/$name.err):"
        grep -aE '^[0-9]{4}-[0-9]{2}-[0-9]{2}' "$WORK/$name.err" |
            grep -v 'out-of-call INVITE message, using the out-of-call scenario' |
            sed -E 's/^[^:]*:[^:]*:[^:]*: //; s/\r$//' | cut -c1-240 | tail -n 4 | sed 's/^/     /'
    fi
}

# wait_log FILE PATTERN SECONDS [PID]: waits for a line matching PATTERN in FILE; fails
# early if PID exits.
wait_log() {
    local file=$1 pattern=$2 secs=$3 pid=${4:-} i
    for i in $(seq $((secs * 10))); do
        grep -qE "$pattern" "$file" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            grep -qE "$pattern" "$file" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# wait_pid PID SECONDS: waits for a tracked background process; its exit code, or 124
# after SECONDS (the process is then stopped).
wait_pid() {
    local pid=$1 secs=$2 i rc
    for i in $(seq $((secs * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" || rc=$?
            lib_untrack "$pid"
            return $rc
        fi
        sleep 0.1
    done
    lib_stop "$pid"
    return 124
}

# users_csv FILE USER:PASSWORD ...: a SIPp injection file.
users_csv() {
    local file=$1 pair
    shift
    echo SEQUENTIAL >"$file"
    for pair in "$@"; do echo "${pair%%:*};${pair#*:}" >>"$file"; done
}
