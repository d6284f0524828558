#!/usr/bin/env bash
# 047.query_cache_memcached: memqcache_method = memcached against a real memcached
# (Debian's, started here on a port of this test and stopped by pid): every scenario
# of 046.query_cache (hits that do not reach the nodes, the extended protocol, writes
# by every name invalidating, a transaction's write after COMMIT, what is never cached,
# PGPOOL SET CACHE DELETE, pcp_invalidate_query_cache). Then memcached is killed in
# the middle of writes and reads: every answer stays the primary's, pgpool logs the
# outage once, and once a new memcached listens the cache hits again.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

MEMCACHED_PORT=$((TEST_BASE_PORT + 50))
CACHE_METHOD=memcached
MEMCACHED_BIN=${MEMCACHED_BIN:-/usr/bin/memcached}
[ -x "$MEMCACHED_BIN" ] || fail "memcached is not installed ($MEMCACHED_BIN)"
install_cleanup
start_memcached() {
    local as=()
    [ "$(id -u)" = 0 ] && as=(-u nobody)
    # A background job: the library's cleanup kills it by pid whatever happens.
    "$MEMCACHED_BIN" -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 16 "${as[@]}" \
        >/dev/null 2>&1 &
    MEMCACHED_PID=$!
    _listening() { (exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT") 2>/dev/null; }
    wait_until 10 _listening || fail "memcached did not listen on $MEMCACHED_PORT"
    log "memcached pid $MEMCACHED_PID on 127.0.0.1:$MEMCACHED_PORT"
}
start_memcached

# shellcheck source=regress/tests/046.query_cache/test.sh
source "$REPO_DIR/regress/tests/046.query_cache/test.sh"
assert_contains "$(cat "$PGPOOL_LOG")" "query cache: entries in memcached at 127.0.0.1:$MEMCACHED_PORT" "start-up line"

# memcached killed between writes and reads: the answers stay right.
psql_pgpool -q -c 'CREATE TABLE k (i int)' -c 'INSERT INTO k VALUES (0)' || fail "create k"
wait_replay
for step in $(seq 1 30); do
    if [ "$step" = 10 ]; then
        kill -KILL "$MEMCACHED_PID"
        wait "$MEMCACHED_PID" 2>/dev/null
        log "memcached killed (step $step)"
    fi
    [ "$step" = 20 ] && start_memcached
    psql_pgpool -c 'SELECT * FROM k' >/dev/null
    [ $((step % 3)) = 0 ] && psql_pgpool -c "UPDATE k SET i = $step" >/dev/null
    assert_eq "$(psql_node 0 -c 'SELECT * FROM k')" "$(psql_pgpool -c 'SELECT * FROM k')" "read of k at step $step"
done
assert_contains "$(cat "$PGPOOL_LOG")" "memcached 127.0.0.1:$MEMCACHED_PORT failed" "outage logged"
log "ok: 30 steps of reads and writes across a memcached kill and restart, every answer the primary's"
# pgpool leaves memcached alone for 5 s after a failure, then uses the new one.
sleep 6
before=$(hits_of 'SELECT * FROM k')
for _ in 1 2 3; do psql_pgpool -c 'SELECT * FROM k' >/dev/null; done
psql_pgpool -c 'SELECT * FROM k' >/dev/null
after=$(hits_of 'SELECT * FROM k')
[ "$after" -gt "$before" ] || fail "no hit from the restarted memcached ($before -> $after)"
log "ok: the restarted memcached serves hits again ($before -> $after)"
