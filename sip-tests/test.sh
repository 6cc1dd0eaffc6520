#!/usr/bin/env bash
# Runs all of siaga's tests. Installs what the tests need when it is missing (Debian):
# SIPp (package sip-tester), iproute2 (ip) and util-linux (unshare) for the tests that run
# in a loopback-only network namespace. Then runs `cargo test --all-targets`, whose
# summary lines ("test result: ...") are what CI reads, and then the end-to-end test
# (sip-tests/e2e.sh: SIPp trunk and operators against a running siaga; it ends with
# "e2e: N passed, M failed" and installs tcpdump for its RTP capture when missing) and the
# ACD's (sip-tests/e2e-acd.sh, ending with "e2e-acd: N passed, M failed") and the call
# record's durability (sip-tests/e2e-durability.sh, against a PostgreSQL of its own that it
# stops and starts mid-run; "e2e-durability: N passed, M failed").
#
# The store tests run on SQLite and on PostgreSQL: the PostgreSQL on 127.0.0.1:5432 when
# one answers, else one this script installs (Debian postgresql), starts on a free port
# and stops at its end (sip-tests/postgres.sh; SIAGA_TEST_POSTGRES_URL overrides both).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v sipp >/dev/null || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    else
        SUDO=(sudo)
    fi
    echo "test.sh: installing test tools (sip-tester iproute2 util-linux)" >&2
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q sip-tester iproute2 util-linux
fi

# The deployment files, checked offline (no Docker engine runs here): docker-compose.yml
# with Debian's docker-compose (the compose file must validate with a database password
# and refuse to without one), the Dockerfile with sip-tests/dockerfile_lint.py.
if ! command -v docker-compose >/dev/null; then
    echo "test.sh: installing docker-compose" >&2
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends docker-compose
fi
no_env_file=$(mktemp) # so that a developer's .env does not answer for the password
SIAGA_DB_PASSWORD=check docker-compose --env-file "$no_env_file" -f docker-compose.yml config -q
if env -u SIAGA_DB_PASSWORD docker-compose --env-file "$no_env_file" -f docker-compose.yml config -q 2>/dev/null; then
    echo "test.sh: docker-compose.yml validates without SIAGA_DB_PASSWORD" >&2
    exit 1
fi
rm -f "$no_env_file"
python3 sip-tests/dockerfile_lint.py Dockerfile

# shellcheck source=sip-tests/postgres.sh
source sip-tests/postgres.sh
pg_for_tests || { echo "test.sh: no PostgreSQL for the store tests" >&2; exit 1; }

cargo test --all-targets "$@"

# End-to-end 112 calls through siaga; run it alone with `bash sip-tests/e2e.sh`. Then the
# ACD's end-to-end scenarios (ring-all, skills, registration expiry, feature codes,
# callback, overflow: `bash sip-tests/e2e-acd.sh`), run even when the first failed; the
# script fails if either did.
status=0
bash sip-tests/e2e.sh || status=$?
bash sip-tests/e2e-acd.sh || status=$?
bash sip-tests/e2e-durability.sh || status=$?
exit "$status"
