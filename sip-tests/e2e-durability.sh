#!/usr/bin/env bash
# End-to-end test of the call record's durability (issue 6 point 3), everything on
# 127.0.0.1, against a PostgreSQL this script starts itself (postgres.sh's initdb path, on a
# free port; the cluster on 5432, if any, is never used nor stopped):
#
#   outage     10 operators (one SIPp process, answering at once) and a trunk placing
#              E2E_DUR_CALLS calls (default 60) at E2E_DUR_RATE calls/s (default 4), each held
#              2 s. A few seconds in, PostgreSQL is stopped (fast shutdown, by its pid) for
#              E2E_DUR_OUTAGE_S seconds (default 6), then started again on the same data.
#              Calls keep being answered meanwhile; siaga journals their events
#              (database.journal) and replays them. Checked afterwards: siaga logged the
#              spill and the replay; the database holds one ended, answered call per call
#              SIPp completed; and as many events (call_events + agent_events) as siaga
#              says it handed to the store (its shutdown line "call and agent events handed
#              to the store events=N"), none twice, each call's timeline complete
#              (received ... ended).
#   kill -9    a new siaga on the same database; one call answered and held; siaga is
#              killed with SIGKILL mid-call; the record is open. siaga restarted: at start
#              it closes the call as interrupted (disposition interrupted, ended by siaga)
#              with an `interrupted` event whose last_state is on_call.
#   down at start  kill -9 mid-call again, then PostgreSQL is stopped and siaga started
#              while it is down: it starts on its journal (/readyz 503, "has not
#              answered"), answers E2E_DUR_DOWN_CALLS calls (default 10); PostgreSQL is
#              started again. Checked: the writer migrates, closes the killed process's
#              call as interrupted and only then replays this process's events; every
#              call of this process is in the database answered and ended (none
#              interrupted), every event siaga handed over is stored (plus the restart's
#              own), and /readyz says ready.
#
# Usage: bash sip-tests/e2e-durability.sh
# Env:   SIPTESTS_KEEP=1 keeps the log directory even when everything passed.
#        SIAGA_BIN=PATH uses that siaga binary instead of building one.
# Exit:  0 all checks passed, 1 some failed, 2 could not run. Last line:
#        "e2e-durability: N passed, M failed".
# Needs: sipp, python3, ss; PostgreSQL's binaries (Debian postgresql, installed when
#        missing and root).
set -uo pipefail

# shellcheck source=sip-tests/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=sip-tests/postgres.sh
source "$(dirname "$0")/postgres.sh"

CALLS=${E2E_DUR_CALLS:-60}
DOWN_CALLS=${E2E_DUR_DOWN_CALLS:-10}
RATE=${E2E_DUR_RATE:-4}
OUTAGE_S=${E2E_DUR_OUTAGE_S:-6}
OPERATORS=10

lib_init e2e-durability
# Our PostgreSQL goes with the rest, by its pid; lib_cleanup keeps the exit status.
trap 'rc=$?; pg_stop_ours; (exit $rc); lib_cleanup' EXIT
ensure_tools nocapture
echo "e2e-durability: work dir $WORK"
build_siaga

pg_start_ours || die "could not start a PostgreSQL of our own"
PG_BIN=$(pg_bindir)
echo "e2e-durability: our PostgreSQL on 127.0.0.1:$PG_OURS_PORT (pid $PG_OURS_PID)"
DB=siaga_durability
psql_q() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_OURS_PORT" -U postgres -d "$DB" -Atqc "$1"; }
# readyz: /readyz's status code and body, on one line.
readyz() { curl -s -m 10 -w ' %{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz"; }

read -r SIP_PORT HTTP_PORT TRUNK_PORT TRUNK_MP OP_PORT OP_MP UNREG_PORT RTP_LO <<<"$(free_ports 2 2 2 4 2 4 2 200)"
[ -n "${RTP_LO:-}" ] || die "no free ports"
pairs=()
for ((i = 0; i < OPERATORS; i++)); do pairs+=("$((2000 + i)):dur"); done
CONF="$WORK/siaga.toml"
write_config "$CONF" "$SIP_PORT" "$RTP_LO" "$((RTP_LO + 199))" "$HTTP_PORT" "info" \
    "$(operators_toml "${pairs[@]}")" $'ring_timeout_s = 15\nreject_retry_delay_s = 5\nwrap_up_s = 0'
export SIAGA_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_OURS_PORT/$DB"
JOURNAL="$WORK/spool/siaga.journal"
sed -i "s|^url = \"sqlite://.*\"|url = \"$SIAGA_DATABASE_URL\"\njournal = \"$JOURNAL\"|" "$CONF"
users_csv "$WORK/users.csv" "${pairs[@]}"
check_config "PostgreSQL with a journal" || exit 1

# start_operators: the operators' SIPp process, all registered (OPS_PID).
start_operators() {
    local n i
    sipp_bg "operators-$1" "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/operator-register.xml" \
        -oocsf "$SCENARIOS/bench-operator-answer.xml" -inf users.csv -m "$OPERATORS" -r 50 \
        -l "$((OPERATORS + 5))" -d 600000 -p "$OP_PORT" -mp "$OP_MP" \
        -default_behaviors all,-bye -deadcall_wait 1 -trace_logs -log_file "$WORK/operators-$1.log" \
        -timeout 660s -timeout_error
    OPS_PID=$SIPP_PID
    for i in $(seq 100); do
        n=$(grep -c '^REGISTERED' "$WORK/operators-$1.log" 2>/dev/null)
        [ "${n:-0}" -ge "$OPERATORS" ] && return 0
        sleep 0.1
    done
    fail "only ${n:-0} of $OPERATORS operators registered"
    sipp_explain "operators-$1"
    return 1
}

# ====================================================================== outage

section "PostgreSQL stopped in the middle of $CALLS calls ($RATE calls/s, held 2 s)"
start_siaga_checked || exit 1
start_operators outage || exit 1
trunk_rc=0
sipp_bg trunk-outage "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/bench-trunk-call.xml" -s 112 \
    -key ani_prefix "+62811" -r "$RATE" -m "$CALLS" -l "$CALLS" -d 2000 \
    -p "$TRUNK_PORT" -mp "$TRUNK_MP" -cid_str "dur-%u-%p@%s" \
    -timeout 120s -timeout_error -trace_stat -stf "$WORK/trunk-outage.stat.csv" -fd 1
TRUNK_PID=$SIPP_PID
sleep 3
pg_halt_ours
note "PostgreSQL stopped for $OUTAGE_S s while calls go on"
sleep "$OUTAGE_S"
pg_serve "$PG_BIN" "$PG_OURS_PORT" || die "our PostgreSQL did not start again"
note "PostgreSQL started again (pid $PG_OURS_PID)"
wait_pid "$TRUNK_PID" 120 || trunk_rc=$?
stat=$(python3 "$CHECKS" sipp-stat --csv "$WORK/trunk-outage.stat.csv")
read -r ok failed <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("successful",0), d.get("failed",0))' "$stat" 2>/dev/null || echo "0 0")"
if [ "$trunk_rc" -eq 0 ] && [ "$ok" -eq "$CALLS" ]; then
    pass "SIPp trunk: $ok of $CALLS calls completed through the outage, $failed failed"
else
    fail "SIPp trunk: $ok of $CALLS calls completed, $failed failed (exit $trunk_rc)"
    sipp_explain trunk-outage
fi
if grep -q "events go to the journal" "$WORK/siaga.log"; then
    pass "siaga journaled events while PostgreSQL was down ($JOURNAL)"
else
    fail "siaga never journaled events: the outage did not reach the writer"
    siaga_log_tail "$WORK/siaga.log" 20
fi
if wait_log "$WORK/siaga.log" "journal replayed" 30 "$SIAGA_PID"; then
    pass "siaga replayed the journal once PostgreSQL was back"
else
    fail "no 'journal replayed' within 30 s of the end of the calls"
fi
lib_stop "$OPS_PID"
lib_stop "$SIAGA_PID" # SIGTERM: graceful, flushes the store
handed=$(grep -oE 'handed to the store events=[0-9]+' "$WORK/siaga.log" | grep -oE '[0-9]+$' | tail -1)
journaled=$(grep -oE 'call records flushed.*journaled=[0-9]+' "$WORK/siaga.log" | grep -oE '[0-9]+$' | tail -1)
calls_db=$(psql_q "SELECT COUNT(*) FROM calls WHERE trunk_call_id LIKE 'dur-%' AND disposition = 'answered' AND ended_at IS NOT NULL")
events_db=$(psql_q "SELECT (SELECT COUNT(*) FROM call_events WHERE node_id = 'e2e-1') + (SELECT COUNT(*) FROM agent_events WHERE node_id = 'e2e-1')")
dupes=$(psql_q "SELECT COUNT(*) FROM (SELECT call_id, seq FROM call_events GROUP BY call_id, seq HAVING COUNT(*) > 1) d")
incomplete=$(psql_q "SELECT COUNT(*) FROM calls c WHERE trunk_call_id LIKE 'dur-%' AND NOT (EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'received') AND EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'answered') AND EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'ended'))")
note "siaga handed $handed events to the store (journal left: ${journaled:-?}); the database holds $events_db; $calls_db answered calls"
if [ -n "$handed" ] && [ "$handed" -gt 0 ] && [ "$events_db" = "$handed" ] && [ "${journaled:-1}" = 0 ]; then
    pass "every event is in PostgreSQL: $events_db stored = $handed handed to the store by siaga"
else
    fail "events: $events_db in PostgreSQL, siaga handed ${handed:-?} to the store, ${journaled:-?} left in the journal"
fi
if [ "$calls_db" = "$ok" ] && [ "$ok" -gt 0 ]; then
    pass "every call is in PostgreSQL: $calls_db answered and ended = $ok completed by SIPp"
else
    fail "calls: $calls_db answered and ended in PostgreSQL, SIPp completed $ok"
fi
if [ "$dupes" = 0 ] && [ "$incomplete" = 0 ]; then
    pass "no event stored twice (call_id, seq unique), every timeline has received, answered and ended"
else
    fail "$dupes duplicated (call_id, seq), $incomplete calls missing received/answered/ended"
fi
events_per_call=$(python3 -c "print(round($events_db / $CALLS, 2))" 2>/dev/null)
note "events per answered call (call and agent events): $events_per_call"

# ====================================================================== kill -9

section "kill -9 mid-call, then restart"
start_siaga_checked || exit 1
start_operators kill || exit 1
sipp_bg trunk-kill "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/bench-trunk-call.xml" -s 112 \
    -key ani_prefix "+62822" -r 1 -m 1 -l 1 -d 60000 \
    -p "$TRUNK_PORT" -mp "$TRUNK_MP" -cid_str "kill-%u-%p@%s" -timeout 90s
TRUNK_PID=$SIPP_PID
answered=""
for i in $(seq 100); do
    answered=$(psql_q "SELECT id FROM calls WHERE trunk_call_id LIKE 'kill-%' AND answered_at IS NOT NULL")
    [ -n "$answered" ] && break
    sleep 0.1
done
if [ -z "$answered" ]; then
    fail "the call was not answered and recorded within 10 s"
    sipp_explain trunk-kill
    exit 1
fi
kill -KILL "$SIAGA_PID"
wait "$SIAGA_PID" 2>/dev/null
lib_untrack "$SIAGA_PID"
open=$(psql_q "SELECT COUNT(*) FROM calls WHERE id = '$answered' AND ended_at IS NULL")
if [ "$open" = 1 ]; then
    pass "siaga killed with SIGKILL mid-call: call $answered is recorded answered and still open"
else
    fail "after SIGKILL call $answered is not an open record (open: $open)"
fi
lib_stop "$TRUNK_PID"
lib_stop "$OPS_PID"
mv "$WORK/siaga.log" "$WORK/siaga-before-kill.log"
start_siaga_checked || exit 1
if wait_log "$WORK/siaga.log" "closed as interrupted" 10 "$SIAGA_PID"; then
    pass "at restart siaga logs the call left open as closed as interrupted"
else
    fail "no 'closed as interrupted' in the restarted siaga's log"
fi
row=$(psql_q "SELECT disposition || ' ' || ended_by FROM calls WHERE id = '$answered'")
last=$(psql_q "SELECT kind || ' ' || COALESCE(detail, '') FROM call_events WHERE call_id = '$answered' ORDER BY seq DESC LIMIT 2" | tr '\n' '|')
if [ "$row" = "interrupted siaga" ] && [[ "$last" == 'ended {"by":"siaga","disposition":"interrupted"}|interrupted {"last_state":"on_call"}|' ]]; then
    pass "the call is closed: disposition interrupted, ended by siaga; timeline ends interrupted (last_state on_call), ended"
else
    fail "the call after restart: calls row '$row', last events '$last'"
fi
lib_stop "$SIAGA_PID"

# ====================================================================== down at start

section "kill -9 mid-call, then a restart while PostgreSQL is down ($DOWN_CALLS calls)"
start_siaga_checked || exit 1
start_operators down-kill || exit 1
sipp_bg trunk-down-kill "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/bench-trunk-call.xml" -s 112 \
    -key ani_prefix "+62833" -r 1 -m 1 -l 1 -d 60000 \
    -p "$TRUNK_PORT" -mp "$TRUNK_MP" -cid_str "dkill-%u-%p@%s" -timeout 90s
TRUNK_PID=$SIPP_PID
killed=""
for i in $(seq 100); do
    killed=$(psql_q "SELECT id FROM calls WHERE trunk_call_id LIKE 'dkill-%' AND answered_at IS NOT NULL")
    [ -n "$killed" ] && break
    sleep 0.1
done
[ -n "$killed" ] || { fail "the call to be killed was not answered and recorded within 10 s"; exit 1; }
kill -KILL "$SIAGA_PID"
wait "$SIAGA_PID" 2>/dev/null
lib_untrack "$SIAGA_PID"
lib_stop "$TRUNK_PID"
lib_stop "$OPS_PID"
events_before=$(psql_q "SELECT (SELECT COUNT(*) FROM call_events WHERE node_id = 'e2e-1') + (SELECT COUNT(*) FROM agent_events WHERE node_id = 'e2e-1')")
pg_halt_ours
note "siaga killed mid-call $killed ($events_before events of node e2e-1 stored); PostgreSQL stopped"
mv "$WORK/siaga.log" "$WORK/siaga-before-down-start.log"
if start_siaga_checked; then
    pass "siaga starts while PostgreSQL is down"
else
    exit 1
fi
ready=$(readyz)
if [[ "$ready" == *'"ready":false'*'has not answered'*' 503' ]]; then
    pass "/readyz while the database has not answered: 503, $ready"
else
    fail "/readyz while the database has not answered: $ready"
fi
start_operators down || exit 1
trunk_rc=0
sipp_bg trunk-down "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/bench-trunk-call.xml" -s 112 \
    -key ani_prefix "+62844" -r 5 -m "$DOWN_CALLS" -l "$DOWN_CALLS" -d 1000 \
    -p "$TRUNK_PORT" -mp "$TRUNK_MP" -cid_str "down-%u-%p@%s" \
    -timeout 60s -timeout_error -trace_stat -stf "$WORK/trunk-down.stat.csv" -fd 1
wait_pid "$SIPP_PID" 60 || trunk_rc=$?
stat=$(python3 "$CHECKS" sipp-stat --csv "$WORK/trunk-down.stat.csv")
read -r ok failed <<<"$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("successful",0), d.get("failed",0))' "$stat" 2>/dev/null || echo "0 0")"
if [ "$trunk_rc" -eq 0 ] && [ "$ok" -eq "$DOWN_CALLS" ]; then
    pass "SIPp trunk: $ok of $DOWN_CALLS calls answered and completed with the database down"
else
    fail "SIPp trunk: $ok of $DOWN_CALLS calls completed, $failed failed (exit $trunk_rc)"
    sipp_explain trunk-down
fi
if wait_log "$WORK/siaga.log" "events go to the journal until start-up recovery is done" 10 "$SIAGA_PID"; then
    pass "siaga journals the events while the database has not answered"
else
    fail "siaga did not journal events at start"
fi
pg_serve "$PG_BIN" "$PG_OURS_PORT" || die "our PostgreSQL did not start again"
note "PostgreSQL started again (pid $PG_OURS_PID)"
if wait_log "$WORK/siaga.log" "journal replayed" 30 "$SIAGA_PID"; then
    pass "once PostgreSQL answers: start-up recovery, then the journal replayed"
else
    fail "no 'journal replayed' within 30 s of PostgreSQL's return"
    siaga_log_tail "$WORK/siaga.log" 30
fi
order=$(grep -noE "start-up recovery done|journal replayed|closed as interrupted" "$WORK/siaga.log" | cut -d: -f2 | uniq | tr '\n' '|')
if [ "$order" = "closed as interrupted|start-up recovery done|journal replayed|" ]; then
    pass "in order: the killed call closed as interrupted, start-up recovery done, then this process's journal replayed"
else
    fail "order of the start-up log lines: $order"
fi
ready=$(readyz)
if [[ "$ready" == *'"ready":true'*' 200' ]]; then
    pass "/readyz once the database answered: 200"
else
    fail "/readyz once the database answered: $ready"
fi
lib_stop "$OPS_PID"
lib_stop "$SIAGA_PID"
handed=$(grep -oE 'handed to the store events=[0-9]+' "$WORK/siaga.log" | grep -oE '[0-9]+$' | tail -1)
logged_out=$(grep -c "logged out as interrupted" "$WORK/siaga.log")
interrupted_lines=$(grep -c "closed as interrupted" "$WORK/siaga.log")
row=$(psql_q "SELECT disposition || ' ' || ended_by FROM calls WHERE id = '$killed'")
if [ "$row" = "interrupted siaga" ] && [ "$interrupted_lines" = 1 ]; then
    pass "the killed process's call $killed is closed: interrupted, ended by siaga (and only it)"
else
    fail "the killed call after the restart: '$row'; $interrupted_lines calls closed as interrupted"
fi
down_ok=$(psql_q "SELECT COUNT(*) FROM calls WHERE trunk_call_id LIKE 'down-%' AND disposition = 'answered' AND ended_at IS NOT NULL")
down_bad=$(psql_q "SELECT COUNT(*) FROM calls WHERE trunk_call_id LIKE 'down-%' AND (disposition IS DISTINCT FROM 'answered' OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = calls.id AND e.kind = 'interrupted'))")
if [ "$down_ok" = "$ok" ] && [ "$ok" -gt 0 ] && [ "$down_bad" = 0 ]; then
    pass "every call taken while the database was down is stored answered and ended: $down_ok; none interrupted"
else
    fail "calls taken while the database was down: $down_ok answered and ended (SIPp: $ok), $down_bad otherwise or interrupted"
fi
events_after=$(psql_q "SELECT (SELECT COUNT(*) FROM call_events WHERE node_id = 'e2e-1') + (SELECT COUNT(*) FROM agent_events WHERE node_id = 'e2e-1')")
expected=$((events_before + ${handed:-0} + 2 * interrupted_lines + logged_out))
note "events of node e2e-1: $events_before before, $events_after after; siaga handed $handed, the restart wrote $((2 * interrupted_lines)) call and $logged_out agent events"
if [ -n "$handed" ] && [ "$handed" -gt 0 ] && [ "$events_after" = "$expected" ]; then
    pass "every event is stored: $events_after = $events_before + $handed handed over + $((2 * interrupted_lines + logged_out)) of the restart"
else
    fail "events: $events_after stored, expected $expected"
fi

lib_finish e2e-durability
