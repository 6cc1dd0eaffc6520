#!/usr/bin/env bash
# End-to-end test of siaga's 112 call path with SIPp, everything on 127.0.0.1:
#
#   trunk (SIPp UAC) --INVITE 112--> siaga --INVITE--> operator softphones (SIPp, registered
#   with digest auth) ; RTP both ways through siaga's relay ; records in SQLite.
#
# Stage 1, scenario self-test: every scenario in sip-tests/scenarios runs against a SIPp
#   peer standing in for siaga (fake-siaga-*.xml) and must load and complete.
# Stage 2, siaga: builds siaga (cargo build, debug), writes a test config into a temp dir,
#   starts siaga, and checks in order:
#     plumbing        config accepted, UDP+TCP listening, OPTIONS answered over both
#     trunk health    siaga's OPTIONS to a trunk gateway (SIPp UAS) answered -> logged up;
#                       (checked last) a gateway nobody listens at -> logged down
#     cancel          a caller who cancels while queued (no operator registered yet)
#                       -> record abandoned_in_queue
#     ring timeout    operator 1001 never answers, 1002 registers meanwhile
#                       -> 1002 answers after the ring timeout; timeline shows both offers
#     reject          operator 1001 answers 486, 1002 registers meanwhile
#                       -> 1002 answers; timeline shows the rejection
#     100rel          the trunk requires 100rel (RFC 3262): reliable 180 with RSeq, the
#                       trunk's PRACK gets 200, 1002 answers -> record answered
#     20 calls        20 calls at 5 calls/s to 1001 and 1002 (both answer after 500 ms,
#                       send RTP; the trunk hangs up after 2 s) -> all answered, all
#                       recorded with operator and timestamps, RTP both ways through the
#                       relay (relay counters in the records, and a capture on lo)
#     operator bye    the operator hangs up -> siaga BYEs the trunk; ended_by operator
#     hold            the trunk re-INVITEs a=sendonly then a=sendrecv; each offer reaches the
#                       operator rewritten to the relay and the answer crosses back
#     route set       the trunk's SBC record-routes (a second SIPp on its own port): the
#                       operator hangs up -> siaga's BYE reaches the SBC, loose-routed
#                       (Route: the SBC, Request-URI: the trunk's Contact), not the trunk
#     tcp             operator 1001 registers over TCP, the trunk calls over TCP -> answered,
#                       every request reaches the phone on its own connection (siaga opens
#                       no connection), recorded as answered by 1001
#     shutdown        siaga still running, then stops on SIGTERM
#
# Usage: bash sip-tests/e2e.sh [--selftest-only | --no-selftest]
# Env:   SIPTESTS_KEEP=1 keeps the log directory even when everything passed.
#        SIAGA_BIN=PATH uses that siaga binary instead of building one.
#        E2E_LOG_LEVEL (default "info,siaga=debug") is siaga's log.level.
# Exit:  0 all checks passed, 1 some failed, 2 could not run. Last line:
#        "e2e: N passed, M failed". Logs are kept in /tmp/siaga-e2e.* on failure.
# Needs: sipp (Debian sip-tester; installed when missing and root), python3, ss; root for
#        play_pcap_audio (RTP) and the packet capture (tcpdump or dumpcap).
set -uo pipefail

# shellcheck source=sip-tests/lib.sh
source "$(dirname "$0")/lib.sh"

lib_stages "$@"

lib_init e2e
ensure_tools capture
echo "e2e: work dir $WORK"
if [ "$(id -u)" -ne 0 ]; then
    note "not root: SIPp cannot send RTP (play_pcap_audio) and nothing is captured; RTP checks will fail"
fi
[ -f "$G711A_PCAP" ] || note "$G711A_PCAP is missing (SIPp's RTP source): RTP checks will fail"

# ======================================================================= self-test

# One block of ports for the self-test: SIP ports at +0, +2, +4, media at +10, +20, +30.
selftest() {
    local base
    read -r base <<<"$(free_ports 40)"
    local UAS=$base UAC=$((base + 2)) OP=$((base + 4))
    local UAS_MP=$((base + 10)) UAC_MP=$((base + 20)) OP_MP=$((base + 30))
    users_csv "$WORK/users.csv" 1001:demo-1001 1002:demo-1002 1003:demo-1003

    # selftest_trunk NAME FAKE SCENARIO CALLS: a trunk scenario against a fake siaga UAS.
    selftest_trunk() {
        local name=$1 fake=$2 scn=$3 n=$4 rc_uas=0 rc_uac=0 pid
        sipp_bg "st-$name-siaga" -sf "$SCENARIOS/$fake" -p "$UAS" -mp "$UAS_MP" -rtp_echo \
            -m "$n" -deadcall_wait 1 -timeout 40s -timeout_error
        pid=$SIPP_PID
        sleep 0.3
        sipp_fg "st-$name-trunk" "127.0.0.1:$UAS" -sf "$SCENARIOS/$scn" -s 112 -key ani_prefix +62811 \
            -m "$n" -r 5 -p "$UAC" -mp "$UAC_MP" -timeout 30s -timeout_error || rc_uac=$?
        wait_pid "$pid" 10 || rc_uas=$?
        if [ $rc_uac -eq 0 ] && [ $rc_uas -eq 0 ]; then
            pass "self-test: $scn ($n calls) against $fake"
        else
            fail "self-test: $scn against $fake (trunk exit $rc_uac, fake siaga exit $rc_uas)"
            sipp_explain "st-$name-trunk"
            sipp_explain "st-$name-siaga"
        fi
    }

    # selftest_operator NAME OOCSF FAKE EXPECT [USERS]: operator-register.xml + OOCSF
    # registers to a fake registrar, then a fake siaga offers it a call; EXPECT is a regex
    # the operator's log must show. With USERS > 1 the process registers that many users
    # (the benchmark's shape) and the call goes to the last one.
    selftest_operator() {
        local name=$1 oocsf=$2 fake=$3 expect=$4 users=${5:-1} rc_reg=0 rc_op=0 rc_offer=0 reg op
        local log="$WORK/st-$name-operator.log"
        sipp_bg "st-$name-registrar" -sf "$SCENARIOS/fake-siaga-registrar.xml" -inf users.csv \
            -infindex users.csv 0 -p "$UAS" -m "$users" -timeout 20s -timeout_error
        reg=$SIPP_PID
        sleep 0.3
        sipp_bg "st-$name-operator" "127.0.0.1:$UAS" -sf "$SCENARIOS/operator-register.xml" \
            -oocsf "$SCENARIOS/$oocsf" -inf users.csv -m "$users" -r 50 -d 10000 -p "$OP" -mp "$OP_MP" \
            -default_behaviors all,-bye -trace_logs -log_file "$log" -timeout 30s -timeout_error
        op=$SIPP_PID
        if ! wait_log "$log" "REGISTERED 100$users" 10 "$op"; then
            fail "self-test: operator-register.xml ($users user(s)) against fake-siaga-registrar.xml"
            sipp_explain "st-$name-operator"
            sipp_explain "st-$name-registrar"
            lib_stop "$op"
            lib_stop "$reg"
            return
        fi
        wait_pid "$reg" 5 || rc_reg=$?
        sipp_fg "st-$name-siaga" "127.0.0.1:$OP" -sf "$SCENARIOS/$fake" -s "100$users" -m 1 \
            -p "$UAC" -mp "$UAC_MP" -rtp_echo -timeout 20s -timeout_error || rc_offer=$?
        wait_log "$log" "$expect" 5 || rc_op=1
        lib_stop "$op"
        if [ $rc_reg -eq 0 ] && [ $rc_offer -eq 0 ] && [ $rc_op -eq 0 ]; then
            pass "self-test: operator-register.xml ($users user(s)) + $oocsf against $fake"
        else
            fail "self-test: operator-register.xml + $oocsf against $fake (registrar exit $rc_reg, fake siaga exit $rc_offer, operator log has /$expect/: $([ $rc_op -eq 0 ] && echo yes || echo no))"
            sipp_explain "st-$name-siaga"
            sipp_explain "st-$name-operator"
            note "operator log: $(tr '\n' ' ' <"$log" 2>/dev/null)"
        fi
    }

    section "scenario self-test (SIPp against SIPp standing in for siaga)"
    selftest_trunk call fake-siaga-trunk-uas.xml trunk-call.xml 3
    selftest_trunk waitbye fake-siaga-trunk-uas-bye.xml trunk-call-wait-bye.xml 2
    selftest_trunk cancel fake-siaga-trunk-uas-cancel.xml trunk-cancel.xml 2
    selftest_trunk prack fake-siaga-trunk-uas-100rel.xml trunk-call-100rel.xml 2
    selftest_trunk bench fake-siaga-trunk-uas.xml bench-trunk-call.xml 3
    selftest_operator answer-opbye operator-answer.xml fake-siaga-offer.xml 'HUNGUP_BY_OPERATOR'
    selftest_operator answer-peerbye operator-answer.xml fake-siaga-offer-bye.xml 'HUNGUP_BY_PEER'
    selftest_operator noanswer operator-noanswer.xml fake-siaga-offer-cancel.xml 'CANCELLED'
    selftest_operator reject operator-reject.xml fake-siaga-offer-reject.xml 'REJECTED'
    selftest_operator bench bench-operator-answer.xml fake-siaga-offer-bye.xml 'REGISTERED 1003' 3

    # A trunk record-routed by an SBC: the fake siaga BYEs via the SBC (sbc-bye.xml).
    local sbc rc_sbc=0 rc_fake=0 rc_trunk=0 fake SBC=$((base + 6))
    sipp_bg st-sbc-siaga -sf "$SCENARIOS/fake-siaga-trunk-uas-sbc.xml" -p "$UAS" -mp "$UAS_MP" \
        -m 1 -timeout 30s -timeout_error
    fake=$SIPP_PID
    sipp_bg st-sbc-sbc -sf "$SCENARIOS/sbc-bye.xml" -p "$SBC" -m 1 -trace_logs \
        -log_file "$WORK/st-sbc.log" -timeout 30s -timeout_error
    sbc=$SIPP_PID
    sleep 0.3
    sipp_fg st-sbc-trunk "127.0.0.1:$UAS" -sf "$SCENARIOS/trunk-call-sbc.xml" -s 112 \
        -key ani_prefix +62811 -key sbc "127.0.0.1:$SBC" -m 1 -p "$UAC" -mp "$UAC_MP" \
        -timeout 30s -timeout_error || rc_trunk=$?
    wait_pid "$fake" 10 || rc_fake=$?
    wait_pid "$sbc" 10 || rc_sbc=$?
    if [ $rc_trunk -eq 0 ] && [ $rc_fake -eq 0 ] && [ $rc_sbc -eq 0 ] && grep -q BYE_VIA_SBC "$WORK/st-sbc.log"; then
        pass "self-test: trunk-call-sbc.xml + sbc-bye.xml against fake-siaga-trunk-uas-sbc.xml"
    else
        fail "self-test: trunk-call-sbc.xml + sbc-bye.xml (trunk exit $rc_trunk, fake siaga exit $rc_fake, SBC exit $rc_sbc)"
        sipp_explain st-sbc-trunk
        sipp_explain st-sbc-siaga
        sipp_explain st-sbc-sbc
    fi

    # Unregistration (Contact: *) against the fake registrar.
    local reg rc=0 rc_reg=0
    sipp_bg st-unreg-registrar -sf "$SCENARIOS/fake-siaga-registrar.xml" -inf users.csv \
        -infindex users.csv 0 -p "$UAS" -m 1 -timeout 20s -timeout_error
    reg=$SIPP_PID
    sleep 0.3
    sipp_fg st-unreg "127.0.0.1:$UAS" -sf "$SCENARIOS/operator-unregister.xml" -inf users.csv -m 1 \
        -p "$OP" -default_behaviors all,-bye -timeout 10s -timeout_error || rc=$?
    wait_pid "$reg" 5 || rc_reg=$?
    if [ $rc -eq 0 ] && [ $rc_reg -eq 0 ]; then
        pass "self-test: operator-unregister.xml against fake-siaga-registrar.xml"
    else
        fail "self-test: operator-unregister.xml (exit $rc, registrar exit $rc_reg)"
        sipp_explain st-unreg
    fi

    # A trunk gateway answering OPTIONS, probed as siaga probes it.
    local gw rc_gw=0
    rc=0
    sipp_bg st-gateway -sf "$SCENARIOS/trunk-gateway-options.xml" -p "$UAS" -m 1 \
        -timeout 20s -timeout_error
    gw=$SIPP_PID
    sleep 0.3
    sipp_fg st-gateway-ping "127.0.0.1:$UAS" -sf "$SCENARIOS/options-ping.xml" -m 1 -p "$UAC" \
        -timeout 10s -timeout_error || rc=$?
    wait_pid "$gw" 5 || rc_gw=$?
    if [ $rc -eq 0 ] && [ $rc_gw -eq 0 ]; then
        pass "self-test: options-ping.xml against trunk-gateway-options.xml"
    else
        fail "self-test: trunk-gateway-options.xml (gateway exit $rc_gw, pinger exit $rc)"
        sipp_explain st-gateway
        sipp_explain st-gateway-ping
    fi

    # A wrong password must not register (the fake registrar really checks the digest).
    users_csv "$WORK/bad.csv" 1001:wrong
    rc=0
    sipp_bg st-badpw-registrar -sf "$SCENARIOS/fake-siaga-registrar.xml" -inf users.csv \
        -infindex users.csv 0 -p "$UAS" -m 1 -timeout 20s -timeout_error
    reg=$SIPP_PID
    sleep 0.3
    sipp_fg st-badpw "127.0.0.1:$UAS" -sf "$SCENARIOS/operator-register.xml" -inf bad.csv -m 1 -d 1 \
        -p "$OP" -default_behaviors all,-bye -timeout 10s -timeout_error || rc=$?
    wait_pid "$reg" 5 || true
    if [ $rc -ne 0 ]; then
        pass "self-test: a wrong digest password is refused by fake-siaga-registrar.xml"
    else
        fail "self-test: fake-siaga-registrar.xml accepted a wrong password"
    fi
}

# ========================================================================== siaga

# Ports: siaga SIP and HTTP, the trunk (SIP, media), 2 operators (SIP, media), one for
# unregistering, and siaga's RTP relay range.
setup_siaga() {
    local ports
    read -ra ports <<<"$(free_ports 2 2 2 4 2 4 2 4 2 200 2 2)"
    [ ${#ports[@]} -eq 12 ] || return 1
    SIP_PORT=${ports[0]}
    HTTP_PORT=${ports[1]}
    TRUNK_PORT=${ports[2]}
    TRUNK_MP=${ports[3]}
    OP1_PORT=${ports[4]}
    OP1_MP=${ports[5]}
    OP2_PORT=${ports[6]}
    OP2_MP=${ports[7]}
    UNREG_PORT=${ports[8]}
    RTP_LO=${ports[9]}
    RTP_HI=$((RTP_LO + 199))
    GW_PORT=${ports[10]}
    DEAD_GW_PORT=${ports[11]}
    CONF="$WORK/siaga.toml"
    write_config "$CONF" "$SIP_PORT" "$RTP_LO" "$RTP_HI" "$HTTP_PORT" "${E2E_LOG_LEVEL:-info,siaga=debug}" \
        "$(operators_toml 1001:demo-1001 1002:demo-1002 1003:demo-1003)"
    RING_TIMEOUT_S=2
    # Two trunk gateways: a SIPp UAS that answers OPTIONS, and a port nobody listens at.
    sed -i "s|^emergency_numbers = \[\"112\"\]\$|&\ngateways = [\"sip:127.0.0.1:$GW_PORT\", \"sip:127.0.0.1:$DEAD_GW_PORT\"]\noptions_interval_s = 5\noptions_failures = 1|" "$CONF"
    note "siaga sip 127.0.0.1:$SIP_PORT, rtp $RTP_LO-$RTP_HI, db $SIAGA_DB_PATH"
    note "trunk 127.0.0.1:$TRUNK_PORT (media $TRUNK_MP), operators at $OP1_PORT (media $OP1_MP), $OP2_PORT (media $OP2_MP)"
}

siaga_checks() {
    section "siaga: build and configuration"
    build_siaga debug
    note "binary $SIAGA_BIN"
    setup_siaga || { fail "no free ports"; return; }

    local out rc=0
    if ! check_config "the e2e config ([trunk], [queue], [[operators]])"; then
        note "the call-model keys are not there yet? going on with the configuration without [trunk], [queue] and [[operators]] to check the plumbing"
        strip_call_model "$CONF"
        out=$("$SIAGA_BIN" check-config --config "$CONF" 2>&1) ||
            { fail "check-config rejects even the base config"; printf '%s\n' "$out" | sed 's/^/     /'; return; }
    fi

    section "siaga: start, listen, OPTIONS"
    sipp_bg gateway -sf "$SCENARIOS/trunk-gateway-options.xml" -p "$GW_PORT" -m 1000 \
        -timeout 600s -timeout_error
    GW_PID=$SIPP_PID
    start_siaga_checked || return
    rc=0
    sipp_fg options-udp "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/options-ping.xml" -m 1 -p "$TRUNK_PORT" \
        -timeout 10s -timeout_error || rc=$?
    if [ $rc -eq 0 ]; then pass "OPTIONS over UDP answered 200"; else fail "OPTIONS over UDP (SIPp exit $rc)"; sipp_explain options-udp; fi
    rc=0
    sipp_fg options-tcp "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/options-ping.xml" -t t1 -m 1 -p "$TRUNK_PORT" \
        -timeout 10s -timeout_error || rc=$?
    if [ $rc -eq 0 ]; then pass "OPTIONS over TCP answered 200"; else fail "OPTIONS over TCP (SIPp exit $rc)"; sipp_explain options-tcp; fi

    check_gateway_up
    check_cancel_in_queue
    check_alive_or_stop || return
    check_ring_timeout
    check_alive_or_stop || return
    check_reject
    check_alive_or_stop || return
    check_100rel
    check_alive_or_stop || return
    check_twenty_calls
    check_alive_or_stop || return
    check_operator_hangs_up
    check_alive_or_stop || return
    check_hold_and_resume
    check_alive_or_stop || return
    check_bye_through_sbc
    check_alive_or_stop || return
    check_tcp
    check_alive_or_stop || return
    check_gateway_down
    check_alive_or_stop || return

    section "siaga: shutdown"
    kill -TERM "$SIAGA_PID" 2>/dev/null
    rc=0
    wait_pid "$SIAGA_PID" 15 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "siaga stopped on SIGTERM with exit code 0"
    else
        fail "siaga on SIGTERM: exit code $rc (124: still running after 15 s)"
        siaga_log_tail "$WORK/siaga.log" 20
    fi
}

# The gateway nobody listens at: its first OPTIONS is given up after 64*T1 (32 s), and
# with options_failures = 1 it is logged down. Checked last, when that time has passed.
check_gateway_down() {
    section "trunk health: a gateway that does not answer"
    if wait_log "$WORK/siaga.log" "trunk gateway down.*gateway=udp:127\.0\.0\.1:$DEAD_GW_PORT " 40 "$SIAGA_PID"; then
        pass "gateway udp:127.0.0.1:$DEAD_GW_PORT (nothing listening) is logged down after 64*T1"
    else
        fail "gateway udp:127.0.0.1:$DEAD_GW_PORT is not logged down"
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    if grep -qE "trunk gateway down.*gateway=udp:127\.0\.0\.1:$GW_PORT " "$WORK/siaga.log"; then
        fail "the answering gateway udp:127.0.0.1:$GW_PORT was logged down"
    else
        pass "the answering gateway stayed up"
    fi
    lib_stop "$GW_PID"
}

check_cancel_in_queue() {
    section "caller cancels while queued (no operator registered)"
    local rc=0
    trunk_call cancel trunk-cancel.xml 1 1 e2e-cancel- 30 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: INVITE, 100, CANCEL after 1.5 s, 200, 487, ACK"
    else
        fail "trunk: cancelled call did not go INVITE, 100, CANCEL, 200, 487, ACK (SIPp exit $rc)"
        sipp_explain cancel
        siaga_log_tail "$WORK/siaga.log" 15
    fi
    fetch_records e2e-cancel- 1 || return
    run_checks records --json "$CALLS_JSON" --prefix e2e-cancel- --count 1 --disposition abandoned_in_queue \
        --operators "" --need-times received_at,queued_at,ended_at --null-times answered_at --show
}

check_ring_timeout() {
    section "first operator never answers -> second answers after the ring timeout (${RING_TIMEOUT_S} s)"
    local rc=0
    start_operator op-noanswer 1001 operator-noanswer.xml "$OP1_PORT" "$OP1_MP" || return
    trunk_call ringto trunk-call.xml 1 1 e2e-ringto- 60 background
    if wait_log "$WORK/op-noanswer.log" "OFFERED" 10 "$TRUNK_PID"; then
        pass "operator 1001 was offered the call (INVITE to its Contact, 180)"
    else
        fail "operator 1001 was not offered the call within 10 s"
        sipp_explain ringto
        sipp_explain op-noanswer
        siaga_log_tail "$WORK/siaga.log" 20
        wait_pid "$TRUNK_PID" 5 || true
        stop_operator op-noanswer 1001
        return
    fi
    start_operator op-answer 1002 operator-answer.xml "$OP2_PORT" "$OP2_MP"
    wait_pid "$TRUNK_PID" 60 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: call answered, RTP, caller hung up"
    else
        fail "trunk: call not completed (SIPp exit $rc)"
        sipp_explain ringto
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if grep -q CANCELLED "$WORK/op-noanswer.log"; then
        pass "operator 1001 got CANCEL (answered 200 and 487, got ACK)"
    else
        fail "operator 1001 was never cancelled"
        sipp_explain op-noanswer
    fi
    if grep -q ANSWERED "$WORK/op-answer.log" 2>/dev/null; then pass "operator 1002 answered"; else fail "operator 1002 did not answer"; sipp_explain op-answer; fi
    if fetch_records e2e-ringto- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-ringto- --count 1 --disposition answered \
            --operators 1002 --need-times received_at,first_offered_at,answered_at,ended_at \
            --min-wait-s "$(python3 -c "print($RING_TIMEOUT_S - 0.2)")"
        run_checks timeline --json "$CALLS_JSON" --prefix e2e-ringto- --db "$SIAGA_DB_PATH" \
            --expect received,offered:1001,no_answer:1001,offered:1002,answered:1002,ended
    fi
    stop_operator op-noanswer 1001
    stop_operator op-answer 1002
}

check_reject() {
    section "first operator rejects (486) -> second answers"
    local rc=0
    start_operator op-reject 1001 operator-reject.xml "$OP1_PORT" "$OP1_MP" || return
    trunk_call reject trunk-call.xml 1 1 e2e-reject- 60 background
    if wait_log "$WORK/op-reject.log" "REJECTED" 10 "$TRUNK_PID"; then
        pass "operator 1001 was offered the call and rejected it (486, ACK)"
    else
        fail "operator 1001 did not reject an offer within 10 s"
        sipp_explain reject
        sipp_explain op-reject
        siaga_log_tail "$WORK/siaga.log" 20
        wait_pid "$TRUNK_PID" 5 || true
        stop_operator op-reject 1001
        return
    fi
    start_operator op-answer 1002 operator-answer.xml "$OP2_PORT" "$OP2_MP"
    wait_pid "$TRUNK_PID" 60 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: call answered, RTP, caller hung up"
    else
        fail "trunk: call not completed (SIPp exit $rc)"
        sipp_explain reject
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if fetch_records e2e-reject- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-reject- --count 1 --disposition answered \
            --operators 1002 --need-times received_at,first_offered_at,answered_at,ended_at
        run_checks timeline --json "$CALLS_JSON" --prefix e2e-reject- --db "$SIAGA_DB_PATH" \
            --expect received,offered:1001,rejected:1001,offered:1002,answered:1002,ended
    fi
    stop_operator op-reject 1001
    stop_operator op-answer 1002
}

check_100rel() {
    section "trunk requires 100rel -> reliable 180 (Require, RSeq), PRACK, 200; operator answers"
    local rc=0
    start_operator op-answer 1002 operator-answer.xml "$OP2_PORT" "$OP2_MP" || return
    trunk_call prack trunk-call-100rel.xml 1 1 e2e-prack- 60 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: no 420; 180 with Require: 100rel and RSeq, PRACK with RAck answered 200, then 200, ACK, BYE"
    else
        fail "trunk: the 100rel call did not go INVITE, reliable 180, PRACK/200, 200, ACK, BYE (SIPp exit $rc)"
        sipp_explain prack
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if fetch_records e2e-prack- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-prack- --count 1 --disposition answered \
            --operators 1002 --need-times received_at,first_offered_at,answered_at,ended_at
    fi
    stop_operator op-answer 1002
}

check_twenty_calls() {
    section "20 calls at 5 calls/s to 2 operators, RTP both ways"
    local rc=0 capturing=0
    start_operator op-a 1001 operator-answer.xml "$OP1_PORT" "$OP1_MP" || return
    start_operator op-b 1002 operator-answer.xml "$OP2_PORT" "$OP2_MP" || { stop_operator op-a 1001; return; }
    if capture_start rtp "udp portrange $RTP_LO-$RTP_HI"; then
        capturing=1
    else
        note "no packet capture (needs root and tcpdump or dumpcap): relay counters only"
    fi
    trunk_call main trunk-call.xml 20 5 e2e-main- 120 || rc=$?
    capture_stop
    if [ $rc -eq 0 ]; then
        pass "trunk: 20/20 calls answered and completed (INVITE, 180, 200, ACK, RTP, BYE)"
    else
        fail "trunk: not all 20 calls completed (SIPp exit $rc)"
        sipp_explain main
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    local answered
    answered=$(cat "$WORK/op-a.log" "$WORK/op-b.log" 2>/dev/null | grep -c '^ANSWERED')
    note "operators answered $answered call(s): 1001 $(grep -c '^ANSWERED' "$WORK/op-a.log"), 1002 $(grep -c '^ANSWERED' "$WORK/op-b.log")"
    if fetch_records e2e-main- 20; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-main- --count 20 --disposition answered \
            --operators 1001,1002 --all-operators 1001,1002 \
            --need-times received_at,first_offered_at,answered_at,ended_at --min-packets 20
    fi
    if [ $capturing = 1 ]; then
        # 20 calls x >= 2 s of 30 ms packets each way: at least 20 x 20 per direction.
        run_checks rtp --pcap "$WORK/rtp.pcap" --relay "$RTP_LO-$RTP_HI" \
            --group "trunk=$TRUNK_MP" --group "operators=$OP1_MP,$OP2_MP" --min 400
    fi
}

check_operator_hangs_up() {
    section "operator hangs up -> siaga hangs up the trunk"
    local rc=0
    if [ -z "${OP_REGISTERED[op-a]:-}" ] || [ -z "${OP_REGISTERED[op-b]:-}" ]; then
        fail "skipped: operators 1001 and 1002 are not registered (see the 20-call check)"
        return
    fi
    trunk_call opbye trunk-call-wait-bye.xml 1 1 e2e-opbye- 60 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: call answered, then got BYE from siaga and answered 200"
    else
        fail "trunk: no BYE from siaga after the operator hung up (SIPp exit $rc)"
        sipp_explain opbye
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if cat "$WORK/op-a.log" "$WORK/op-b.log" 2>/dev/null | grep -q HUNGUP_BY_OPERATOR; then
        pass "an operator hung up (BYE to siaga, 200)"
    else
        fail "no operator hung up"
    fi
    if fetch_records e2e-opbye- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-opbye- --count 1 --disposition answered \
            --operators 1001,1002 --need-times received_at,answered_at,ended_at --ended-by operator --min-packets 20
    fi
    stop_operator op-a 1001
    stop_operator op-b 1002
}

check_hold_and_resume() {
    section "the caller is put on hold and resumed (re-INVITE across siaga)"
    local rc=0
    start_operator op-hold 1001 operator-answer-hold.xml "$OP1_PORT" "$OP1_MP" || return
    trunk_call hold trunk-hold.xml 1 1 e2e-hold- 60 || rc=$?
    if [ $rc -eq 0 ]; then
        pass "trunk: re-INVITE sendonly answered recvonly, re-INVITE sendrecv answered sendrecv, BYE"
    else
        fail "trunk: hold or resume did not cross siaga (SIPp exit $rc)"
        sipp_explain hold
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if grep -q '^HELD' "$WORK/op-hold.log" && grep -q '^RESUMED' "$WORK/op-hold.log"; then
        pass "operator: got the hold (a=sendonly) and the resume (a=sendrecv) as re-INVITEs"
    else
        fail "operator: the hold and resume offers did not arrive"
    fi
    if fetch_records e2e-hold- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-hold- --count 1 --disposition answered \
            --operators 1001 --need-times received_at,answered_at,ended_at --ended-by caller
    fi
    stop_operator op-hold 1001
}

check_bye_through_sbc() {
    section "trunk SBC record-routes -> siaga's BYE goes through it (RFC 3261 §12.2.1.1)"
    local rc=0 rc_sbc=0 sbc_port sbc_pid line
    read -r sbc_port <<<"$(free_ports 2)" || { fail "no free port for the SBC"; return; }
    start_operator op-sbc 1001 operator-answer.xml "$OP1_PORT" "$OP1_MP" || return
    sipp_bg sbc -sf "$SCENARIOS/sbc-bye.xml" -p "$sbc_port" -m 1 -trace_logs \
        -log_file "$WORK/sbc.log" -timeout 40s -timeout_error
    sbc_pid=$SIPP_PID
    sleep 0.3
    sipp_fg sbc-trunk "127.0.0.1:$SIP_PORT" -sf "$SCENARIOS/trunk-call-sbc.xml" -s 112 \
        -key ani_prefix "+62813$((RANDOM % 9000 + 1000))" -key sbc "127.0.0.1:$sbc_port" -m 1 \
        -p "$TRUNK_PORT" -mp "$TRUNK_MP" -cid_str "e2e-sbc-%u-%p@%s" -trace_logs \
        -log_file "$WORK/sbc-trunk.log" -timeout 40s -timeout_error || rc=$?
    if [ $rc -eq 0 ] && grep -q "Record-Route <sip:127.0.0.1:$sbc_port;lr>" "$WORK/sbc-trunk.log"; then
        pass "trunk: call answered, siaga's 2xx copied the SBC's Record-Route, no BYE came to the trunk itself"
    else
        fail "trunk: record-routed call not completed as expected (SIPp exit $rc)"
        sipp_explain sbc-trunk
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    wait_pid "$sbc_pid" 15 || rc_sbc=$?
    line=$(grep -m1 BYE_VIA_SBC "$WORK/sbc.log" 2>/dev/null)
    if [ $rc_sbc -eq 0 ] && [[ "$line" == *"R-URI sip:+62813"*"@127.0.0.1:$TRUNK_PORT Route <sip:127.0.0.1:$sbc_port;lr>"* ]]; then
        pass "SBC got siaga's BYE, loose-routed: ${line#BYE_VIA_SBC }"
    else
        fail "SBC did not get a loose-routed BYE (SIPp exit $rc_sbc): ${line:-nothing}"
        sipp_explain sbc
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if grep -q HUNGUP_BY_OPERATOR "$WORK/op-sbc.log"; then
        pass "the operator hung up (BYE to siaga, 200)"
    else
        fail "the operator did not hang up"
        sipp_explain op-sbc
    fi
    if fetch_records e2e-sbc- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-sbc- --count 1 --disposition answered \
            --operators 1001 --need-times received_at,answered_at,ended_at --ended-by operator
    fi
    stop_operator op-sbc 1001
}

check_tcp() {
    section "over TCP: operator registered over TCP, trunk over TCP"
    local rc=0 opened
    opened=$(grep -c "tcp connection opened" "$WORK/siaga.log" || true)
    start_operator op-tcp 1001 operator-answer.xml "$OP1_PORT" "$OP1_MP" -t t1 || return
    TRUNK_ARGS=(-t t1)
    trunk_call tcp trunk-call.xml 1 1 e2e-tcp- 60 || rc=$?
    TRUNK_ARGS=()
    if [ $rc -eq 0 ]; then
        pass "trunk over TCP: call answered, caller hung up"
    else
        fail "trunk over TCP: call not completed (SIPp exit $rc)"
        sipp_explain tcp
        sipp_explain op-tcp
        siaga_log_tail "$WORK/siaga.log" 20
    fi
    if grep -q ANSWERED "$WORK/op-tcp.log" 2>/dev/null; then
        pass "operator 1001 answered over TCP"
    else
        fail "operator 1001 did not answer over TCP"
        sipp_explain op-tcp
    fi
    if [ "$(grep -c "tcp connection opened" "$WORK/siaga.log" || true)" -eq "$opened" ]; then
        pass "siaga reached the phone and the trunk on their own connections (opened none)"
    else
        fail "siaga opened a TCP connection instead of using the phone's or the trunk's"
        grep "tcp connection opened" "$WORK/siaga.log" | tail -3 | sed 's/^/     /'
    fi
    if fetch_records e2e-tcp- 1; then
        run_checks records --json "$CALLS_JSON" --prefix e2e-tcp- --count 1 --disposition answered \
            --operators 1001 --need-times received_at,answered_at,ended_at
    fi
    stop_operator op-tcp 1001
}

# ========================================================================= main

[ $SELFTEST = 1 ] && selftest
[ $SIAGA_CHECKS = 1 ] && siaga_checks

lib_finish e2e
