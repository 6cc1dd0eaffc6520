# shellcheck shell=bash
# A PostgreSQL server for the store tests (sourced by sip-tests/test.sh, not run).
#
# pg_for_tests exports SIAGA_TEST_POSTGRES_URL (a superuser URL of the server's
# `postgres` database; each test creates and drops a database of its own) and
# SIAGA_TEST_POSTGRES_REQUIRED=1 (a test that finds no server then fails, not skips):
#   1. SIAGA_TEST_POSTGRES_URL already set: used as it is.
#   2. Else a server answering on 127.0.0.1:5432 (trust auth, user postgres): used as it
#      is, and never stopped.
#   3. Else a server of our own: Debian's `postgresql` installed when its binaries are
#      missing (as root, without the package's default cluster), `initdb` into a
#      temporary directory, `postgres` started on a free port of 127.0.0.1 (as the
#      `postgres` user when we are root: initdb and postgres refuse root), and stopped
#      by its pid when the sourcing shell exits (pg_stop_ours, from the EXIT trap).
# SIAGA_TEST_PG_PORT_PROBE=none pretends nothing answers on 5432, to test step 3.

PG_OURS_PID=""
PG_OURS_DIR=""
PG_OURS_PORT=""

# True when a PostgreSQL server accepts connections on 127.0.0.1:$1.
pg_answers() {
    [ "${SIAGA_TEST_PG_PORT_PROBE:-}" = none ] && [ "$1" = 5432 ] && return 1
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p "$1" -t 2
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin).
pg_bindir() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# Installs Debian's postgresql without the cluster its package would create and start.
pg_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres.sh: PostgreSQL is not installed; run as root to install it" >&2
        return 1
    fi
    echo "postgres.sh: installing postgresql (Debian)" >&2
    mkdir -p /etc/postgresql-common
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
}

# Runs a command as the postgres user when we are root, else as ourselves.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Starts a server of our own; sets PG_OURS_PORT, PG_OURS_PID and PG_OURS_DIR.
pg_start_ours() {
    local bin port
    bin=$(pg_bindir) || { pg_install && bin=$(pg_bindir); } || {
        echo "postgres.sh: no PostgreSQL binaries" >&2
        return 1
    }
    port=$(python3 "$(dirname "${BASH_SOURCE[0]}")/checks.py" ports 1) || return 1
    PG_OURS_DIR=$(mktemp -d /tmp/siaga-pg.XXXXXX)
    [ "$(id -u)" -eq 0 ] && chown postgres: "$PG_OURS_DIR"
    pg_as_owner "$bin/initdb" -D "$PG_OURS_DIR/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$PG_OURS_DIR/initdb.log" 2>&1 || {
        echo "postgres.sh: initdb failed:" >&2
        tail -5 "$PG_OURS_DIR/initdb.log" >&2
        return 1
    }
    pg_serve "$bin" "$port"
}

# pg_serve BIN PORT: starts `postgres` on $PG_OURS_DIR/data, port PORT of 127.0.0.1, and
# waits until it answers; sets PG_OURS_PORT and PG_OURS_PID. Used to start our server,
# and again after pg_halt_ours (sip-tests/e2e-durability.sh stops it mid-run).
pg_serve() {
    local bin=$1 port=$2 i
    # A throw-away server: no fsync; sockets only in its own directory and on loopback.
    pg_as_owner "$bin/postgres" -D "$PG_OURS_DIR/data" -p "$port" \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories="$PG_OURS_DIR" \
        -c fsync=off -c max_connections=200 >>"$PG_OURS_DIR/postgres.log" 2>&1 &
    # $! is runuser's pid when we are root; the server's own is in postmaster.pid.
    for i in $(seq 300); do
        if [ -s "$PG_OURS_DIR/data/postmaster.pid" ]; then
            PG_OURS_PID=$(head -1 "$PG_OURS_DIR/data/postmaster.pid")
            if pg_answers "$port"; then
                PG_OURS_PORT=$port
                return 0
            fi
        fi
        sleep 0.1
    done
    echo "postgres.sh: our PostgreSQL did not start:" >&2
    tail -5 "$PG_OURS_DIR/postgres.log" >&2
    return 1
}

# Stops the server pg_serve started (fast shutdown, by its pid), keeping its directory.
pg_halt_ours() {
    local i
    [ -n "$PG_OURS_PID" ] || return 0
    kill -INT "$PG_OURS_PID" 2>/dev/null || true
    for i in $(seq 300); do
        kill -0 "$PG_OURS_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$PG_OURS_PID" 2>/dev/null || true
    echo "postgres.sh: stopped our PostgreSQL (pid $PG_OURS_PID)" >&2
    PG_OURS_PID=""
}

# Stops the server pg_start_ours started (fast shutdown, by its pid) and removes its
# directory. Nothing else is ever stopped.
pg_stop_ours() {
    pg_halt_ours
    if [ -n "$PG_OURS_DIR" ]; then
        rm -rf "$PG_OURS_DIR"
        PG_OURS_DIR=""
    fi
}

pg_for_tests() {
    if [ -z "${SIAGA_TEST_POSTGRES_URL:-}" ]; then
        if pg_answers 5432; then
            echo "postgres.sh: using the PostgreSQL on 127.0.0.1:5432" >&2
            SIAGA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
        else
            trap pg_stop_ours EXIT
            pg_start_ours || return 1
            echo "postgres.sh: started our PostgreSQL on 127.0.0.1:$PG_OURS_PORT (pid $PG_OURS_PID)" >&2
            SIAGA_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_OURS_PORT/postgres"
        fi
    fi
    export SIAGA_TEST_POSTGRES_URL
    export SIAGA_TEST_POSTGRES_REQUIRED=1
}
