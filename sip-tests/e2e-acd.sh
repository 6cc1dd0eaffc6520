#!/usr/bin/env bash
# End-to-end test of siaga's ACD (issue 5) with SIPp, everything on 127.0.0.1: ONE siaga
# with four queues, three operators, a trunk gateway and a backup centre:
#
#   queue "main"        ring-all, wrap-up 0             <- 112 (no route: the first queue)
#   queue "police"      skills, widen_after_s 3         <- 110 (route needs skill "police")
#   queue "expiry"      longest-idle, ring timeout 30 s <- 115
#   queue "backup-test" served by no operator, overflow <- 113
#                       to sip:112@127.0.0.1:<backup SIPp> at once (nobody logged in
#                       serves it), ringing it 5 s; 3 s pause after a failed overflow
#   operators 1001, 1002, 1003 serve main, police and expiry; 1003 has the skill "police"
#   trunk.gateways      one SIPp UAS (gateway-callee.xml): answers OPTIONS, and plays the
#                       caller siaga calls back
#   registrar.min_expires_s = 2 so that a binding can expire within the test.
#
# Stage 1, scenario self-test: each scenario this script adds runs against a SIPp peer
#   standing in for siaga (fake-siaga-*.xml) and must load and complete.
# Stage 2, siaga (each check passes only when SIPp's exit code AND the records agree:
#   `siaga calls --json`, the call_events timeline, `siaga agents --json`):
#     ring-all        1001, 1002, 1003 registered; one 112 call rings all three in one
#                       instant; 1002 answers, 1001 and 1003 get CANCEL (200, 487, ACK);
#                       record answered by 1002; 1001/1003 ringing -> available
#     feature codes   1003 dials *71 (401, INVITE with Authorization, 200, ACK, siaga's BYE)
#                       -> not_ready (requested); *72 (end wrap-up) while not ready -> 403;
#                       *70 -> available again
#     skills          a 110 call while only 1001 (no "police" skill) is logged in: not
#                       offered before widen_after_s; then widened, offered, answered
#     reg. expiry     1001 registers for 5 s and never refreshes, 1002 for an hour; a 115
#                       call rings 1001 (longest idle); its binding expires while ringing
#                       -> siaga CANCELs 1001, 1002 gets the call and answers
#     callback        a 112 call abandoned in queue (nobody logged in); 1003 dials *73 ->
#                       siaga calls the caller back through the gateway (INVITE with
#                       Priority: psap-callback), bridged; 1003 hangs up -> the gateway gets
#                       BYE; callback_started, callback_ended (answered) on the abandoned
#                       call's record
#     api-callback    another 112 call abandoned in queue; 1003 (an operator with an API
#                       password) POSTs /api/callbacks/next -> 202; siaga rings 1003's phone
#                       (From "CALLBACK <number>"), which answers; then siaga calls the
#                       caller back through a new gateway SIPp (Priority: psap-callback),
#                       bridged; 1003 hangs up after 6 s -> the gateway gets BYE;
#                       callback_started, callback_ended (answered) on the abandoned call's
#                       record
#     overflow        a 113 call -> INVITE to the backup centre, which answers -> record
#                       overflowed; a second one whose backup answers 486 -> back in the
#                       queue (overflow_failed), then the caller cancels -> abandoned
#     transfer        a 112 call answered by 1003; a supervisor POSTs
#                       /api/calls/{id}/transfer {"agency":"damkar"} -> INVITE to the agency's
#                       transfer_uri (a SIPp UAS on the backup centre's port), which answers;
#                       siaga BYEs 1003; the agency hangs up later -> the trunk gets BYE;
#                       record answered by 1003, timeline transfer_offered, transfer_answered
#
# Usage: bash sip-tests/e2e-acd.sh [--selftest-only | --no-selftest]
# Env:   SIPTESTS_KEEP=1 keeps the log directory even when everything passed.
#        SIAGA_BIN=PATH uses that siaga binary instead of building one.
#        E2E_LOG_LEVEL (default "info,siaga=debug") is siaga's log.level.
#        E2E_ACD_ONLY=ring-all,features,skills,expiry,callback,api-callback,overflow,transfer runs only those
#        of siaga's checks (default: all).
# Exit:  0 all checks passed, 1 some failed, 2 could not run. Last line:
#        "e2e-acd: N passed, M failed". Logs are kept in /tmp/siaga-e2e-acd.* on failure.
# Needs: sipp (Debian sip-tester; installed when missing and root), python3, ss.
set -uo pipefail

# shellcheck source=sip-tests/lib.sh
source "$(dirname "$0")/lib.sh"

lib_stages "$@"

lib_init e2e-acd
ensure_tools nocapture
echo "e2e-acd: work dir $WORK"

# The widening wait of queue "police" and the short binding of the expiry check, in s.
WIDEN_AFTER_S=3
SHORT_EXPIRES_S=5

# Now, as RFC 3339 UTC with milliseconds: marks the start of a check, so that only the
# agent events after it are read.
now_utc() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

# ======================================================================= self-test

# st_listen NAME ARGS...: starts the listening side of a self-test pair (SIPp in the
# background, bounded by -m 1 -timeout 20s unless ARGS say otherwise), named st-NAME.
st_listen() {
    local name=$1
    shift
    sipp_bg "st-$name" -m 1 -timeout 20s -timeout_error -trace_logs -log_file "$WORK/st-$name.log" "$@"
    ST_LISTENER=$SIPP_PID
    sleep 0.3
}

# st_verdict LABEL RC LOG PATTERN NAMES...: waits for the listener; PASS "self-test: LABEL"
# when RC (the other side's exit code) and the listener's are 0 and $WORK/LOG.log has
# PATTERN, else FAIL with the screens of the SIPp runs NAMES.
st_verdict() {
    local label=$1 rc=$2 log=$3 pattern=$4 rc_listener=0 name
    shift 4
    wait_pid "$ST_LISTENER" 10 || rc_listener=$?
    if [ "$rc" -eq 0 ] && [ $rc_listener -eq 0 ] && grep -qE "$pattern" "$WORK/$log.log" 2>/dev/null; then
        pass "self-test: $label"
        return
    fi
    fail "self-test: $label (exit $rc, listener exit $rc_listener, /$pattern/ in $log.log: $(grep -qE "$pattern" "$WORK/$log.log" 2>/dev/null && echo yes || echo no))"
    for name in "$@"; do sipp_explain "$name"; done
}

selftest() {
    local base rc code expect pair uas uac
    read -r base <<<"$(free_ports 40)"
    local UAS=$base UAC=$((base + 2)) UAS_MP=$((base + 10)) UAC_MP=$((base + 20))
    users_csv "$WORK/users.csv" 1001:demo-1001 1002:demo-1002 1003:demo-1003

    section "scenario self-test (SIPp against SIPp standing in for siaga)"

    # A short registration against the fake registrar (which checks the digest).
    st_listen expires-registrar -sf "$SCENARIOS/fake-siaga-registrar.xml" -inf users.csv \
        -infindex users.csv 0 -p "$UAS"
    rc=0
    sipp_fg st-expires "127.0.0.1:$UAS" -sf "$SCENARIOS/operator-register-expires.xml" \
        -key expires "$SHORT_EXPIRES_S" -oocsf "$SCENARIOS/operator-noanswer.xml" -inf users.csv \
        -m 1 -d 1000 -p "$UAC" -default_behaviors all,-bye -trace_logs \
        -log_file "$WORK/st-expires.log" -timeout 10s -timeout_error || rc=$?
    st_verdict "operator-register-expires.xml (Expires: $SHORT_EXPIRES_S) against fake-siaga-registrar.xml" \
        $rc st-expires "^REGISTERED 1001 EXPIRES $SHORT_EXPIRES_S" st-expires st-expires-registrar

    # operator-dial.xml: each outcome against the fake feature-code UAS.
    for code in '*71:HUNGUP_BY_PEER' '*72:REFUSED 403 399 siaga' '*73:HUNGUP_BY_OPERATOR'; do
        expect=${code#*:}
        code=${code%%:*}
        st_listen feature-siaga -sf "$SCENARIOS/fake-siaga-feature.xml" -inf users.csv \
            -infindex users.csv 0 -p "$UAS" -mp "$UAS_MP"
        rc=0
        sipp_fg st-dial "127.0.0.1:$UAS" -sf "$SCENARIOS/operator-dial.xml" -s "$code" \
            -auth_uri "$code@127.0.0.1:$UAS" -inf users.csv -m 1 -p "$UAC" -mp "$UAC_MP" \
            -trace_logs -log_file "$WORK/st-dial-${code#\*}.log" -timeout 15s -timeout_error || rc=$?
        st_verdict "operator-dial.xml -s '$code' against fake-siaga-feature.xml: $expect" \
            $rc "st-dial-${code#\*}" "^$expect" st-dial st-feature-siaga
    done

    # gateway-callee.xml: probes answered, then one callback, after which it stops itself.
    st_listen gateway -sf "$SCENARIOS/gateway-callee.xml" -p "$UAS" -mp "$UAS_MP" -m 100
    rc=0
    sipp_fg st-gateway-ping "127.0.0.1:$UAS" -sf "$SCENARIOS/options-ping.xml" -m 2 -p "$UAC" \
        -timeout 10s -timeout_error || rc=$?
    sipp_fg st-callback "127.0.0.1:$UAS" -sf "$SCENARIOS/fake-siaga-callback.xml" -s +6281299990001 \
        -m 1 -p "$UAC" -mp "$UAC_MP" -timeout 10s -timeout_error || rc=$?
    st_verdict "gateway-callee.xml answered 2 OPTIONS and fake-siaga-callback.xml's callback, then stopped" \
        $rc st-gateway '^CALLBACK_INVITE sip:\+6281299990001@.* PRIORITY psap-callback' \
        st-gateway st-gateway-ping st-callback
    grep -q '^CALLBACK_BYE' "$WORK/st-gateway.log" ||
        fail "self-test: gateway-callee.xml did not log the callback's BYE"

    # The backup centre: operator-answer.xml and operator-reject.xml as plain UASs.
    for pair in operator-answer.xml:fake-siaga-offer-bye.xml:HUNGUP_BY_PEER operator-reject.xml:fake-siaga-offer-reject.xml:REJECTED; do
        IFS=: read -r uas uac expect <<<"$pair"
        st_listen "backup-$uas" -sf "$SCENARIOS/$uas" -p "$UAS" -mp "$UAS_MP"
        rc=0
        sipp_fg st-backup-offer "127.0.0.1:$UAS" -sf "$SCENARIOS/$uac" -s 112 -m 1 -p "$UAC" \
            -mp "$UAC_MP" -timeout 15s -timeout_error || rc=$?
        st_verdict "$uas as a backup centre UAS against $uac" $rc "st-backup-$uas" "^$expect" \
            "st-backup-$uas" st-backup-offer
    done
}

# ========================================================================== siaga

# Ports: siaga (SIP, HTTP), the trunk, three operators, unregistering, the phone that
# dials feature codes, the gateway, the backup centre (SIP and media each), and the relay.
setup_siaga() {
    local ports
    read -ra ports <<<"$(free_ports 2 2 2 4 2 4 2 4 2 4 2 2 4 2 4 2 4 200)"
    [ ${#ports[@]} -eq 18 ] || return 1
    SIP_PORT=${ports[0]} HTTP_PORT=${ports[1]}
    TRUNK_PORT=${ports[2]} TRUNK_MP=${ports[3]}
    OP1_PORT=${ports[4]} OP1_MP=${ports[5]}
    OP2_PORT=${ports[6]} OP2_MP=${ports[7]}
    OP3_PORT=${ports[8]} OP3_MP=${ports[9]}
    UNREG_PORT=${ports[10]}
    DIAL_PORT=${ports[11]} DIAL_MP=${ports[12]}
    GW_PORT=${ports[13]} GW_MP=${ports[14]}
    BACKUP_PORT=${ports[15]} BACKUP_MP=${ports[16]}
    RTP_LO=${ports[17]}
    RTP_HI=$((RTP_LO + 199))
    BACKUP_URI="sip:112@127.0.0.1:$BACKUP_PORT"
    AGENCY_URI="sip:113@127.0.0.1:$BACKUP_PORT"
    CONF="$WORK/siaga.toml"
    local op operators=""
    for op in 1001 1002 1003; do
        operators+="[[operators]]
id = \"$op\"
password = \"demo-$op\"
queues = [\"main\", \"police\", \"expiry\"]
$([ $op = 1003 ] && echo 'skills = ["police"]')
$([ $op = 1003 ] && echo "api_password_hash = \"$(printf '%s\n' "$OP3_API_PASSWORD" | "$SIAGA_BIN" hash-password)\"")

"
    done
    write_config "$CONF" "$SIP_PORT" "$RTP_LO" "$RTP_HI" "$HTTP_PORT" "${E2E_LOG_LEVEL:-info,siaga=debug}" \
        "$operators" $'ring_timeout_s = 5\nreject_retry_delay_s = 1\nwrap_up_s = 0\nno_answer_limit = 0'
    sed -i "s|^emergency_numbers = \[\"112\"\]\$|emergency_numbers = [\"112\", \"110\", \"113\", \"115\"]\ngateways = [\"sip:127.0.0.1:$GW_PORT\"]\noptions_interval_s = 30|" "$CONF"
    cat >>"$CONF" <<EOF
[[queues]]
name = "main"
strategy = "ring-all"
wrap_up_s = 0

[[queues]]
name = "police"
strategy = "skills"
widen_after_s = $WIDEN_AFTER_S

[[queues]]
name = "expiry"
strategy = "longest-idle"
ring_timeout_s = 30

[[queues]]
name = "backup-test"
overflow_uri = "$BACKUP_URI"
# Also the pause after a failed overflow: longer than the busy check's caller waits
# after the 486 (trunk-cancel.xml cancels 1.5 s after its INVITE).
overflow_after_s = 3
overflow_ring_timeout_s = 5

[[routes]]
numbers = ["110"]
queue = "police"
skills = ["police"]

[[routes]]
numbers = ["113"]
queue = "backup-test"

[[routes]]
numbers = ["115"]
queue = "expiry"

[acd]
callback_ring_timeout_s = 10

[feature_codes]
ready = "*70"
not_ready = "*71"
end_wrap_up = "*72"
next_callback = "*73"
logout = "*74"

[registrar]
min_expires_s = 2

# The transfer check: a supervisor for the API, and the agencies (the built-in four ids,
# which the built-in categories name), the fire brigade reachable on the backup port.
[[users]]
id = "sup"
role = "supervisor"
api_password_hash = "$(printf '%s\n' "$SUP_PASSWORD" | "$SIAGA_BIN" hash-password)"

[[agencies]]
id = "psc119"
name = "PSC 119"

[[agencies]]
id = "damkar"
name = "Damkar"
transfer_uri = "$AGENCY_URI"

[[agencies]]
id = "bpbd"
name = "BPBD"

[[agencies]]
id = "polri"
name = "Polri"
EOF
    note "siaga sip 127.0.0.1:$SIP_PORT, rtp $RTP_LO-$RTP_HI, db $SIAGA_DB_PATH"
    note "trunk $TRUNK_PORT, operators $OP1_PORT $OP2_PORT $OP3_PORT, dialling phone $DIAL_PORT, gateway $GW_PORT, backup centre $BACKUP_PORT"
}

# The supervisor's API password (the transfer check).
SUP_PASSWORD=sup-e2e-transfer
# Operator 1003's API password (the api-callback check).
OP3_API_PASSWORD=op-1003-e2e-api

# retry SECS CMD...: runs CMD every 0.5 s until it succeeds or SECS seconds have passed.
retry() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.5
    done
}

# agents_hold SINCE EXPECT: `siaga agents --json` into $WORK/agents.json; true when the
# agent events after SINCE hold EXPECT (see check_agents).
agents_hold() {
    "$SIAGA_BIN" agents --config "$CONF" --json --since 1h >"$WORK/agents.json" 2>"$WORK/agents.err" &&
        python3 "$CHECKS" agents --json "$WORK/agents.json" --since "$1" --expect "$2" --probe
}

# check_agents SINCE EXPECT: the agent events after SINCE (RFC 3339) must hold EXPECT
# (operator:state[/reason],... in order per operator, see checks.py agents); polled for up
# to 4 s (the store writes in batches), then PASS/FAIL lines.
check_agents() {
    retry 4 agents_hold "$1" "$2"
    if [ -s "$WORK/agents.err" ]; then
        fail "agents: \`siaga agents --config FILE --json --since 1h\` failed"
        sed 's/^/     /' "$WORK/agents.err" | head -5
        return
    fi
    run_checks agents --json "$WORK/agents.json" --since "$1" --expect "$2"
}

# check_timeline PREFIX EXPECT [CHECKS_ARGS...]: the timeline of the call whose record
# fetch_records just read must hold EXPECT (see checks.py timeline); polled for up to 4 s
# (events written after the call ended, such as a callback's, come later), then PASS/FAIL
# lines.
check_timeline() {
    local prefix=$1 expect=$2
    shift 2
    retry 4 python3 "$CHECKS" timeline --json "$CALLS_JSON" --prefix "$prefix" --db "$SIAGA_DB_PATH" \
        --expect "$expect" --probe "$@"
    run_checks timeline --json "$CALLS_JSON" --prefix "$prefix" --db "$SIAGA_DB_PATH" --expect "$expect" "$@"
}

# dial_code NAME USER CODE: USER's phone dials the feature code CODE (operator-dial.xml,
# from DIAL_PORT); log in $WORK/NAME.log. Returns SIPp's exit code.
dial_code() {
    local name=$1 user=$2 code=$3
    users_csv "$WORK/$name.csv" "$user:demo-$user"
    sipp_fg "$name" "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/operator-dial.xml" -s "$code" \
        -auth_uri "$code@127.0.0.1:$SIP_PORT" -inf "$name.csv" -m 1 -p "$DIAL_PORT" -mp "$DIAL_MP" \
        -trace_logs -log_file "$WORK/$name.log" -timeout 20s -timeout_error
}

# expect_dial NAME USER CODE PATTERN WHAT: dial_code, then PASS when SIPp succeeded and
# its log has PATTERN, else FAIL naming the step.
expect_dial() {
    local name=$1 user=$2 code=$3 pattern=$4 what=$5 rc=0
    dial_code "$name" "$user" "$code" || rc=$?
    if [ $rc -eq 0 ] && grep -qE "$pattern" "$WORK/$name.log"; then
        pass "$user dials $code: $what"
        return 0
    fi
    fail "$user dials $code: expected $what (SIPp exit $rc; log: $(tr '\n' ' ' <"$WORK/$name.log" 2>/dev/null))"
    sipp_explain "$name"
    siaga_log_tail "$WORK/siaga.log" 12
    return 1
}

# trunk_calls NUMBER NAME SCENARIO PREFIX OK FAILED: the trunk places one call to NUMBER
# (trunk_call NAME SCENARIO, Call-ID PREFIX...), as a PASS line "trunk: OK" or a FAIL line
# "trunk: FAILED" with SIPp's screen and siaga's log. Returns SIPp's exit code.
trunk_calls() {
    local number=$1 name=$2 scn=$3 prefix=$4 ok=$5 failed=$6 rc=0
    TRUNK_NUMBER=$number
    trunk_call "$name" "$scn" 1 1 "$prefix" 40 || rc=$?
    TRUNK_NUMBER=112
    if [ $rc -eq 0 ]; then
        pass "trunk: $ok"
        return 0
    fi
    fail "trunk: $failed (SIPp exit $rc)"
    sipp_explain "$name"
    siaga_log_tail "$WORK/siaga.log" 20
    return $rc
}

# expect_log NAME PATTERN WHAT: PASS when $WORK/NAME.log has PATTERN, else FAIL.
expect_log() {
    if grep -qE "$2" "$WORK/$1.log" 2>/dev/null; then
        pass "$3"
    else
        fail "$3: not in $1's log ($(tr '\n' ' ' <"$WORK/$1.log" 2>/dev/null))"
        sipp_explain "$1"
    fi
}

check_ring_all() {
    section "ring-all: one 112 call rings 1001, 1002 and 1003; 1002 answers, the others are cancelled"
    local since
    start_operator ra-1001 1001 operator-noanswer.xml "$OP1_PORT" "$OP1_MP" || return
    start_operator ra-1002 1002 operator-answer.xml "$OP2_PORT" "$OP2_MP" || return
    start_operator ra-1003 1003 operator-noanswer.xml "$OP3_PORT" "$OP3_MP" || return
    since=$(now_utc)
    trunk_calls 112 ringall trunk-call.xml e2e-acd-ringall- "112 call answered (200, ACK, RTP), caller hung up" \
        "112 call not answered and completed"
    expect_log ra-1002 '^ANSWERED' "operator 1002 answered (180, 200, ACK)"
    expect_log ra-1001 '^CANCELLED' "operator 1001 rang and was cancelled (CANCEL: 200, 487, ACK)"
    expect_log ra-1003 '^CANCELLED' "operator 1003 rang and was cancelled (CANCEL: 200, 487, ACK)"
    if fetch_records e2e-acd-ringall- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-acd-ringall- --count 1 --disposition answered \
            --operators 1002 --need-times received_at,first_offered_at,answered_at,ended_at
        check_timeline e2e-acd-ringall- received,offered:1001,offered:1002,offered:1003,answered:1002,ended \
            --same-time offered
    fi
    check_agents "$since" 1001:ringing,1001:available,1002:ringing,1002:on_call,1003:ringing,1003:available
}

check_feature_codes() {
    section "feature codes: 1003 dials *71 (not ready), *72 (refused while not ready), *70 (ready)"
    local since
    if [ -z "${OP_REGISTERED[ra-1003]:-}" ]; then
        start_operator ra-1003 1003 operator-noanswer.xml "$OP3_PORT" "$OP3_MP" || return
    fi
    since=$(now_utc)
    expect_dial feat-71 1003 '*71' '^HUNGUP_BY_PEER' "401, INVITE with Authorization, 200, ACK, then siaga's BYE"
    check_agents "$since" 1003:not_ready/requested
    expect_dial feat-72 1003 '*72' '^REFUSED 403' "end wrap-up while not ready is refused: 403 with a Warning"
    since=$(now_utc)
    expect_dial feat-70 1003 '*70' '^HUNGUP_BY_PEER' "401, INVITE with Authorization, 200, ACK, then siaga's BYE"
    check_agents "$since" 1003:available/ready
}

check_skills() {
    section "skills: a 110 call needs \"police\"; only 1001 (without it) is logged in -> widened after ${WIDEN_AFTER_S} s, then answered"
    start_operator sk-1001 1001 operator-answer.xml "$OP1_PORT" "$OP1_MP" || return
    trunk_calls 110 skills trunk-call.xml e2e-acd-skills- "110 call answered after the widening, caller hung up" \
        "110 call not answered and completed"
    expect_log sk-1001 '^ANSWERED' "operator 1001 answered the widened call"
    if fetch_records e2e-acd-skills- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-acd-skills- --count 1 --disposition answered \
            --operators 1001 --need-times received_at,queued_at,first_offered_at,answered_at,ended_at \
            --min-offer-delay-s "$(python3 -c "print($WIDEN_AFTER_S - 0.2)")"
        check_timeline e2e-acd-skills- received,queued:skills=police,widened,offered:1001,answered:1001,ended
    fi
    stop_operator sk-1001 1001
}

check_registration_expiry() {
    section "registration expires while ringing: 1001's binding (${SHORT_EXPIRES_S} s) lapses -> CANCEL, 1002 answers"
    local rc=0 since
    OP_REGISTER=operator-register-expires.xml
    start_operator ex-1001 1001 operator-noanswer.xml "$OP1_PORT" "$OP1_MP" -key expires "$SHORT_EXPIRES_S"
    rc=$?
    OP_REGISTER=operator-register.xml
    [ $rc -eq 0 ] || return
    # 1002 registers after 1001, so 1001 is the longest idle and rings first.
    start_operator ex-1002 1002 operator-answer.xml "$OP2_PORT" "$OP2_MP" || return
    since=$(now_utc)
    trunk_calls 115 expiry trunk-call.xml e2e-acd-expiry- "115 call answered, caller hung up" \
        "115 call not answered and completed"
    expect_log ex-1001 '^CANCELLED' "operator 1001 rang, then was cancelled when its binding expired"
    expect_log ex-1002 '^ANSWERED' "operator 1002 answered the re-offered call"
    if fetch_records e2e-acd-expiry- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-acd-expiry- --count 1 --disposition answered \
            --operators 1002 --need-times received_at,first_offered_at,answered_at,ended_at
        check_timeline e2e-acd-expiry- "received,offered:1001,leg_failed:1001:reason=registration expired,offered:1002,answered:1002,ended"
    fi
    check_agents "$since" 1001:ringing,1001:logged_out/unregistered,1002:ringing,1002:on_call
    stop_operator ex-1001 1001
    stop_operator ex-1002 1002
}

# classify_dropped: the answered calls of the earlier checks that the caller hung up are on
# the callback worklist until classified (issue 6: an answered call that drops before it is
# classified is called back). As a supervisor would, classify each over the HTTP API
# (test_call), then check that the worklist holds none of them any more, so the callback
# checks below take the call they abandon. Prints what it did; returns 0 when it worked.
classify_dropped() {
    PYTHONPATH="$SIPTESTS_DIR" python3 - "$HTTP_PORT" "$SUP_PASSWORD" <<'PY'
import json, sys
from api_client import call, login
port, password = sys.argv[1], sys.argv[2]
token = login(port, "sup", password)
status, items = call(port, "GET", "/api/callbacks", token)
if status != 200:
    print(f"GET /api/callbacks {status} {items}")
    sys.exit(1)
dropped = [i["call"] for i in items if i["reason"] == "dropped_unclassified"]
for c in dropped:
    status, body = call(port, "POST", f"/api/calls/{c}/incident", token, {"category": "test_call"})
    if status != 201:
        print(f"classify {c}: {status} {body}")
        sys.exit(1)
status, items = call(port, "GET", "/api/callbacks", token)
left = [i["call"] for i in items if i["reason"] == "dropped_unclassified"]
print(f"{len(dropped)} dropped call(s) classified, {len(left)} left on the worklist, {len(items)} item(s) in all")
sys.exit(0 if not left and not items else 1)
PY
}

check_callback() {
    section "callback: a 112 call abandoned in queue; 1003 dials *73 -> siaga calls the caller back through the gateway"
    local rc_gw=0 since caller
    trunk_calls 112 cb-abandon trunk-cancel.xml e2e-acd-cb- \
        "112 call cancelled by the caller while queued (nobody logged in)" \
        "the call to abandon did not go INVITE, CANCEL, 200, 487, ACK"
    fetch_records e2e-acd-cb- 1 || return
    run_checks records --json "$CALLS_JSON" --prefix e2e-acd-cb- --count 1 --disposition abandoned_in_queue
    caller=$(python3 -c 'import json,sys
print(next((r.get("caller") or "" for r in json.load(open(sys.argv[1])) if str(r.get("trunk_call_id")).startswith(sys.argv[2])), ""))' "$CALLS_JSON" e2e-acd-cb-)
    start_operator cb-1003 1003 operator-answer.xml "$OP3_PORT" "$OP3_MP" || return
    since=$(now_utc)
    local wait_gw=10
    expect_dial cb-dial 1003 '*73' '^HUNGUP_BY_OPERATOR' \
        "401, INVITE with Authorization, 200 once the caller answered, ACK, then the operator's BYE" ||
        wait_gw=2
    # The gateway ends itself after the callback's BYE.
    wait_pid "$GW_PID" "$wait_gw" || rc_gw=$?
    GW_PID=""
    if [ $rc_gw -eq 0 ] && grep -qF "CALLBACK_INVITE sip:${caller:-?}@" "$WORK/gateway.log" &&
        grep -q '^CALLBACK_BYE' "$WORK/gateway.log"; then
        pass "gateway: $(grep -m1 '^CALLBACK_INVITE' "$WORK/gateway.log"), answered, then got the BYE"
    else
        fail "gateway: expected an INVITE to the caller ${caller:-?} with Priority: psap-callback, then a BYE (gateway exit $rc_gw, 124: no callback came; log: $(tr '\n' ' ' <"$WORK/gateway.log" 2>/dev/null))"
        sipp_explain gateway
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    check_timeline e2e-acd-cb- received,ended,callback_started:1003,callback_ended:1003:outcome=answered
    check_agents "$since" 1003:on_call
    stop_operator cb-1003 1003
}

# api_take_callback USER PASSWORD: as operator USER, takes the next callback over the HTTP
# API; prints the POST's status and body. Returns 0 on 202.
api_take_callback() {
    PYTHONPATH="$SIPTESTS_DIR" python3 - "$HTTP_PORT" "$1" "$2" <<'PY'
import json, sys
from api_client import call, login
port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
token = login(port, user, password)
status, body = call(port, "POST", "/api/callbacks/next", token)
print(f"{status} {json.dumps(body)}")
sys.exit(0 if status == 202 else 1)
PY
}

check_api_callback() {
    section "api-callback: a 112 call abandoned in queue; 1003 POSTs /api/callbacks/next -> siaga rings 1003's phone, then calls the caller back through the gateway"
    local rc_gw=0 since caller answer
    # The *73 check's gateway stopped itself after its callback: a new one on its port.
    [ -n "${GW_PID:-}" ] && lib_stop "$GW_PID"
    sipp_bg gateway-api -sf "$SCENARIOS/gateway-callee.xml" -p "$GW_PORT" -mp "$GW_MP" -m 1000 \
        -trace_logs -log_file "$WORK/gateway-api.log" -timeout 120s -timeout_error
    GW_PID=$SIPP_PID
    trunk_calls 112 acb-abandon trunk-cancel.xml e2e-acd-acb- \
        "112 call cancelled by the caller while queued (nobody logged in)" \
        "the call to abandon did not go INVITE, CANCEL, 200, 487, ACK"
    fetch_records e2e-acd-acb- 1 || return
    run_checks records --json "$CALLS_JSON" --prefix e2e-acd-acb- --count 1 --disposition abandoned_in_queue
    caller=$(python3 -c 'import json,sys
print(next((r.get("caller") or "" for r in json.load(open(sys.argv[1])) if str(r.get("trunk_call_id")).startswith(sys.argv[2])), ""))' "$CALLS_JSON" e2e-acd-acb-)
    start_operator acb-1003 1003 operator-answer.xml "$OP3_PORT" "$OP3_MP" \
        -trace_msg -message_file "$WORK/acb-1003.msg" || return
    since=$(now_utc)
    if answer=$(api_take_callback 1003 "$OP3_API_PASSWORD" 2>&1); then
        pass "POST /api/callbacks/next as operator 1003: $answer"
    else
        fail "POST /api/callbacks/next as operator 1003: $answer"
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    if wait_log "$WORK/acb-1003.log" ANSWERED 8 "${OP_PIDS[acb-1003]}" &&
        grep -qaF "From: \"CALLBACK ${caller:-?}\"" "$WORK/acb-1003.msg"; then
        pass "1003's phone rang first ($(grep -m1 -aoE 'From: "CALLBACK [^"]*"' "$WORK/acb-1003.msg")) and answered"
    else
        fail "1003's phone: expected siaga's INVITE from \"CALLBACK ${caller:-?}\", answered (log: $(tr '\n' ' ' <"$WORK/acb-1003.log" 2>/dev/null))"
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    # operator-answer.xml hangs up 6 s after answering; the gateway stops after that BYE.
    wait_pid "$GW_PID" 15 || rc_gw=$?
    GW_PID=""
    if [ $rc_gw -eq 0 ] && grep -qF "CALLBACK_INVITE sip:${caller:-?}@" "$WORK/gateway-api.log" &&
        grep -q '^CALLBACK_BYE' "$WORK/gateway-api.log"; then
        pass "gateway: $(grep -m1 '^CALLBACK_INVITE' "$WORK/gateway-api.log"), answered, then got the BYE"
    else
        fail "gateway: expected an INVITE to the caller ${caller:-?} with Priority: psap-callback, then a BYE (gateway exit $rc_gw, 124: no callback came; log: $(tr '\n' ' ' <"$WORK/gateway-api.log" 2>/dev/null))"
        sipp_explain gateway-api
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    expect_log acb-1003 '^HUNGUP_BY_OPERATOR' "1003 hung up the answered callback (its BYE, 200)"
    check_timeline e2e-acd-acb- received,ended,callback_started:1003,callback_ended:1003:outcome=answered
    check_agents "$since" 1003:on_call
    stop_operator acb-1003 1003
}

check_overflow() {
    section "overflow: a 113 call (queue served by nobody) -> the backup centre answers"
    local rc=0 rc_b=0 backup
    sipp_bg backup-answer -sf "$SCENARIOS/operator-answer.xml" -p "$BACKUP_PORT" -mp "$BACKUP_MP" -m 1 \
        -trace_logs -log_file "$WORK/backup-answer.log" -trace_msg -message_file "$WORK/backup-answer.msg" \
        -timeout 30s -timeout_error
    backup=$SIPP_PID
    TRUNK_NUMBER=113
    trunk_call overflow trunk-call.xml 1 1 e2e-acd-ovf- 30 background
    TRUNK_NUMBER=112
    if wait_log "$WORK/backup-answer.log" OFFERED 8 "$TRUNK_PID"; then
        pass "backup centre got the INVITE: $(grep -m1 -aoE '^INVITE [^ ]+' "$WORK/backup-answer.msg")"
    else
        fail "backup centre got no INVITE within 8 s (overflow to $BACKUP_URI)"
        siaga_log_tail "$WORK/siaga.log" 15
        lib_stop "$TRUNK_PID"
        lib_stop "$backup"
        return
    fi
    wait_pid "$TRUNK_PID" 20 || rc=$?
    wait_pid "$backup" 10 || rc_b=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: 113 call answered by the backup centre, caller hung up"
    else
        fail "trunk: 113 call not answered and completed (SIPp exit $rc)"
        sipp_explain overflow
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if [ $rc_b -eq 0 ] && grep -q '^HUNGUP_BY_PEER' "$WORK/backup-answer.log"; then
        pass "backup centre: 180, 200, ACK, then siaga's BYE (the caller hung up)"
    else
        fail "backup centre: expected 180, 200, ACK, then siaga's BYE (SIPp exit $rc_b)"
        sipp_explain backup-answer
    fi
    if fetch_records e2e-acd-ovf- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-acd-ovf- --count 1 --disposition overflowed \
            --operators "" --need-times received_at,queued_at,ended_at
        check_timeline e2e-acd-ovf- "received,queued,overflow_offered:target=$BACKUP_URI,overflow_answered,ended"
    fi
}

check_overflow_busy() {
    section "overflow fails: the backup centre answers 486 -> back in the queue; the caller then cancels"
    local rc_b=0 backup
    sipp_bg backup-busy -sf "$SCENARIOS/operator-reject.xml" -p "$BACKUP_PORT" -mp "$BACKUP_MP" -m 1 \
        -trace_logs -log_file "$WORK/backup-busy.log" -timeout 30s -timeout_error
    backup=$SIPP_PID
    trunk_calls 113 overflow-busy trunk-cancel.xml e2e-acd-ovfbusy- \
        "113 call cancelled by the caller 1.5 s after the INVITE (200, 487, ACK)" \
        "the call did not go INVITE, CANCEL, 200, 487, ACK"
    wait_pid "$backup" 3 || rc_b=$?
    if [ $rc_b -eq 0 ] && grep -q '^REJECTED' "$WORK/backup-busy.log"; then
        pass "backup centre: INVITE answered 180, 486, ACK"
    else
        fail "backup centre: expected an INVITE to answer 486 (SIPp exit $rc_b, 124: no INVITE came)"
        sipp_explain backup-busy
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    if fetch_records e2e-acd-ovfbusy- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-acd-ovfbusy- --count 1 \
            --disposition abandoned_in_queue --operators ""
        check_timeline e2e-acd-ovfbusy- "received,queued,overflow_offered:target=$BACKUP_URI,overflow_failed,ended"
    fi
}

# api_transfer AGENCY: as supervisor, transfers the only answered call in progress to
# AGENCY over the HTTP API; prints the POST's status and body. Returns 0 on 202.
api_transfer() {
    PYTHONPATH="$SIPTESTS_DIR" python3 - "$HTTP_PORT" "$SUP_PASSWORD" "$1" <<'PY'
import json, sys
from api_client import call, login
port, password, agency = sys.argv[1], sys.argv[2], sys.argv[3]
token = login(port, "sup", password)
status, live = call(port, "GET", "/api/supervisor/live", token)
calls = [c["call"] for c in live.get("in_progress", []) if c.get("stage") == "answered"]
if len(calls) != 1:
    print(f"live {status}: {len(calls)} answered calls in progress: {live}")
    sys.exit(1)
status, body = call(port, "POST", f"/api/calls/{calls[0]}/transfer", token, {"agency": agency})
print(f"{status} {json.dumps(body)}")
sys.exit(0 if status == 202 else 1)
PY
}

check_transfer() {
    section "transfer: 1003 answers a 112 call; a supervisor transfers it to the agency damkar, which answers"
    local rc=0 rc_a=0 agency answer
    start_operator tr-1003 1003 operator-answer.xml "$OP3_PORT" "$OP3_MP" || return
    sipp_bg agency -sf "$SCENARIOS/operator-answer.xml" -p "$BACKUP_PORT" -mp "$BACKUP_MP" -m 1 \
        -trace_logs -log_file "$WORK/agency.log" -trace_msg -message_file "$WORK/agency.msg" \
        -timeout 30s -timeout_error
    agency=$SIPP_PID
    trunk_call transfer trunk-call-wait-bye.xml 1 1 e2e-acd-xfer- 40 background
    if ! wait_log "$WORK/tr-1003.log" ANSWERED 8 "$TRUNK_PID"; then
        fail "1003 did not answer the call within 8 s"
        siaga_log_tail "$WORK/siaga.log" 15
        lib_stop "$TRUNK_PID"
        lib_stop "$agency"
        stop_operator tr-1003 1003
        return
    fi
    # operator-answer.xml hangs up by itself 6 s after answering: the transfer must be
    # answered before that (the agency answers 500 ms after the INVITE).
    if answer=$(api_transfer damkar 2>&1); then
        pass "POST /api/calls/{id}/transfer {\"agency\":\"damkar\"} as supervisor: $answer"
    else
        fail "POST /api/calls/{id}/transfer: $answer"
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    if wait_log "$WORK/agency.log" OFFERED 5 "$agency"; then
        pass "agency got the INVITE: $(grep -m1 -aoE '^INVITE [^ ]+' "$WORK/agency.msg")"
    else
        fail "agency got no INVITE within 5 s (transfer to $AGENCY_URI)"
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    wait_pid "$TRUNK_PID" 20 || rc=$?
    wait_pid "$agency" 10 || rc_a=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: call answered, then siaga's BYE once the agency hung up"
    else
        fail "trunk: expected an answered call ended by siaga's BYE (SIPp exit $rc)"
        sipp_explain transfer
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    expect_log tr-1003 '^HUNGUP_BY_PEER' "1003: siaga's BYE once the agency answered (its leg ended)"
    if [ $rc_a -eq 0 ] && grep -q '^HUNGUP_BY_OPERATOR' "$WORK/agency.log"; then
        pass "agency: 180, 200, ACK, then its own BYE (200)"
    else
        fail "agency: expected 180, 200, ACK, then its own BYE (SIPp exit $rc_a)"
        sipp_explain agency
    fi
    if fetch_records e2e-acd-xfer- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-acd-xfer- --count 1 --disposition answered \
            --operators 1003 --need-times received_at,answered_at,ended_at
        check_timeline e2e-acd-xfer- "received,offered:1003,answered:1003,transfer_offered:1003:agency=damkar,transfer_answered:agency=damkar,ended"
    fi
    stop_operator tr-1003 1003
}

siaga_checks() {
    section "siaga: build, ACD configuration, start"
    build_siaga debug
    note "binary $SIAGA_BIN"
    setup_siaga || { fail "no free ports"; return; }
    check_config "the ACD config ([[queues]], [[routes]], [feature_codes], operators' queues/skills)" || return
    # The gateway first: siaga probes it at start.
    sipp_bg gateway -sf "$SCENARIOS/gateway-callee.xml" -p "$GW_PORT" -mp "$GW_MP" -m 1000 \
        -trace_logs -log_file "$WORK/gateway.log" -timeout 300s -timeout_error
    GW_PID=$SIPP_PID
    start_siaga_checked || return
    check_gateway_up
    if only ring-all; then check_ring_all; fi
    if only features; then check_feature_codes; fi
    stop_operator ra-1001 1001
    stop_operator ra-1002 1002
    stop_operator ra-1003 1003
    check_alive_or_stop || return
    if only skills; then check_skills; check_alive_or_stop || return; fi
    if only expiry; then check_registration_expiry; check_alive_or_stop || return; fi
    if only callback || only api-callback; then
        local out
        # The earlier checks' callers hung up on answered calls: listed until classified.
        if out=$(classify_dropped); then
            pass "worklist: the earlier checks' dropped calls were listed, and left it once a supervisor classified them ($out)"
        else
            fail "worklist: classifying the dropped calls over the API did not empty it ($out)"
        fi
    fi
    if only callback; then check_callback; check_alive_or_stop || return; fi
    if only api-callback; then check_api_callback; check_alive_or_stop || return; fi
    if only overflow; then
        check_overflow
        check_overflow_busy
    fi
    if only transfer; then check_alive_or_stop || return; check_transfer; fi
    check_alive_or_stop || return
    pass "siaga still running after all checks"
}

# only NAME: whether E2E_ACD_ONLY (a comma-separated list; empty: all) names the check.
only() { [ -z "${E2E_ACD_ONLY:-}" ] || [[ ",$E2E_ACD_ONLY," == *",$1,"* ]]; }

# ========================================================================= main

[ $SELFTEST = 1 ] && selftest
[ $SIAGA_CHECKS = 1 ] && siaga_checks

lib_finish e2e-acd
