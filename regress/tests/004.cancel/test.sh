#!/usr/bin/env bash
# 004.cancel: psql's cancel (SIGINT -> CancelRequest through pgpool) stops a
# running statement on the backend; the session stays usable.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s

# cancel_once LABEL PSQL-ARGS...: run "select pg_sleep(30)" in psql in the
# background, SIGINT it after 1 s, expect the cancel error and psql to exit.
cancel_once() {
    local label=$1 out t0 t1 ms psql_pid rc
    shift
    out=$WORK_DIR/cancel.$label.out
    "$PGBIN/psql" -X -At "$@" -c 'select pg_sleep(30)' >"$out" 2>&1 &
    psql_pid=$!
    # The statement is running on a backend (any node: reads may be load
    # balanced, and the cancel must reach the right one).
    wait_active 'select pg_sleep(30)' || fail "$label: pg_sleep(30) is not running on any node"
    sleep 0.5
    t0=$(date +%s%N)
    kill -INT "$psql_pid"
    for ((i = 0; i < 50; i++)); do
        alive "$psql_pid" || break
        sleep 0.1
    done
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    if alive "$psql_pid"; then
        kill -KILL "$psql_pid"
        cat "$out"
        fail "$label: psql still running 5 s after SIGINT (cancel not delivered?)"
    fi
    wait "$psql_pid"
    rc=$?
    cat "$out"
    log "$label: psql exited ${ms} ms after SIGINT (status $rc)"
    assert_contains "$(cat "$out")" 'canceling statement due to user request' "$label psql output"
    [ "$rc" != 0 ] || fail "$label: psql exited with 0 after a cancelled statement"
    # Nothing keeps sleeping on any backend.
    assert_eq 0 "$(active_count 'select pg_sleep(30)')" "$label: backends still in pg_sleep(30) after the cancel"
}

cancel_once tcp -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test
cancel_once unix -h /tmp -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test

# Cancelling one client's query must not touch another client's query.
other=$WORK_DIR/other.out
psql_pgpool -c 'select pg_sleep(3), 42' >"$other" 2>&1 &
other_pid=$!
cancel_once while-other-runs -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test
wait "$other_pid" || { cat "$other"; fail "the other session's query failed"; }
assert_eq "|42" "$(cat "$other")" "the other session's result"

# After all that, pooled connections work.
assert_eq 1 "$(psql_pgpool -c 'select 1')" "select after the cancels"

# Raw protocol: the session whose query was cancelled goes on (the next
# query on the same connection works), and a CancelRequest with a wrong key
# cancels nothing.
python3 "$REGRESS_DIR/lib/pgwire.py" cancel-session 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test \
    || fail "cancel-session scenario (pgwire.py) failed"
