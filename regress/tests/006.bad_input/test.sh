#!/usr/bin/env bash
# 006.bad_input: malformed client input (garbage or huge startup packets,
# clients vanishing mid-message, huge message lengths) gets an error or a
# closed socket; a session opened before is not disturbed, new sessions work.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s 'num_init_children = 8'

pgwire() { python3 "$REGRESS_DIR/lib/pgwire.py" "$@"; }
children_before=$(pgpool_children | sort | tr '\n' ' ')
nchildren=$(settled_child_count)
log "pgpool has $nchildren children (num_init_children = 8, plus other processes)"

# A long-running session opened before the bad clients.
long=$WORK_DIR/long.out
psql_pgpool -c 'select 1 as before' -c 'select pg_sleep(6), 1' -c "select 'after'" >"$long" 2>&1 &
long_pid=$!
wait_active 'select pg_sleep(6), 1' || fail "the long session's query is not running"

for case in garbage-startup huge-startup half-startup half-query huge-message; do
    log "bad input: $case"
    t0=$(now_ms)
    pgwire bad-input "$case" 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test \
        || fail "bad input case $case (see the FAIL line above)"
    log "$case done in $(($(now_ms) - t0)) ms"
    # pgpool keeps serving, through a raw client and psql.
    pgwire bad-input sessions-work 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test \
        || fail "a new session failed after $case"
    assert_eq 1 "$(psql_pgpool -c 'select 1')" "psql after $case"
done

# Same on the Unix socket side: garbage there too (through socat-free
# python: AF_UNIX).
python3 - "/tmp/.s.PGSQL.$PGPOOL_PORT" <<'PY' || fail "garbage on the Unix socket"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\x7f\xff\xff\xff\x00\x03\x00\x00garbage")
s.settimeout(10)
try:
    data = s.recv(100)
    print("ok: unix socket: %s" % ("closed" if not data else "reply %r" % data[:60]))
except (ConnectionResetError, socket.timeout) as e:
    if isinstance(e, socket.timeout):
        print("FAIL: no answer within 10 s")
        sys.exit(1)
    print("ok: unix socket: reset")
PY

wait "$long_pid" || { cat "$long"; fail "the long-running session failed"; }
cat "$long"
assert_eq "1
|1
after" "$(cat "$long")" "the long-running session's output"

# pgpool's main process is the same and no child crashed with a signal.
main=$(pgpool_main_pid) || fail "pgpool's main process is gone"
log "pgpool main pid $main"
children_after=$(pgpool_children | sort | tr '\n' ' ')
if [ "$children_before" != "$children_after" ]; then
    log "children before: $children_before"
    log "children after:  $children_after"
fi
if grep -Ei 'panick|segfault|signal 11|SIGSEGV|signal 6|SIGABRT' "$PGPOOL_LOG"; then
    pgpool_bug "pgpool log shows a crash (lines above)"
fi
wait_for_children "$nchildren" 10 || fail "pgpool has $(child_count) children, expected $nchildren as at the start"

# And new sessions still work, many of them.
for i in $(seq 1 10); do
    psql_pgpool -c 'select 1' >/dev/null || fail "new session $i after the bad input"
done
log "ok: 10 new sessions after the bad input"
