#!/usr/bin/env bash
# 049.multi_session_child: sessions_per_child = 4 with num_init_children = 1
# (a pgpool-rs option): one child serves four clients at once from one event
# loop.
# - four sessions run at the same time on the one child (three in pg_sleep(2),
#   a fourth answers meanwhile), and a fifth client waits for a free place;
# - a client that connects and says nothing holds no other session;
# - psql's cancel (SIGINT -> CancelRequest) stops its own statement only, while
#   another session of the same child runs;
# - pooled sets are reused by later sessions (SHOW POOL_POOLS pool_counter);
# - client_idle_limit ends an idle session while another one stays;
# - pgbench -c 4 with load balancing: no failed transaction;
# - the query cache answers a repeated SELECT from the child, and an UPDATE from
#   another session of the same child invalidates it;
# - the start-up log says when sessions_per_child is above max_pool.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 s 'num_init_children = 1' 'max_pool = 4' 'sessions_per_child = 4' \
    'load_balance_mode = on' 'client_idle_limit = 4' 'memory_cache_enabled = on'

assert_eq 1 "$(psql_pgpool -c 'select 1')" "a session through the one child"

# 1. Concurrency inside one child.
t0=$(now_ms)
pids=()
for i in 1 2 3; do
    psql_pgpool -c "select pg_sleep(2), $i" >"$WORK_DIR/sleep.$i" 2>&1 &
    pids+=($!)
done
wait_active 'select pg_sleep(2), 1' || fail "the first sleeping session does not run"
assert_eq 42 "$(psql_pgpool -c 'select 42')" "a fourth session while three sleep"
t1=$(now_ms)
for p in "${pids[@]}"; do wait "$p" || fail "a sleeping session failed"; done
t2=$(now_ms)
for i in 1 2 3; do assert_eq "|$i" "$(cat "$WORK_DIR/sleep.$i")" "sleeping session $i"; done
[ $((t1 - t0)) -lt 1900 ] || fail "the fourth session waited for the sleeping ones ($((t1 - t0)) ms)"
[ $((t2 - t0)) -lt 4000 ] || fail "the three sleeps did not run at the same time ($((t2 - t0)) ms)"
log "ok: four sessions at once on one child (fourth answered after $((t1 - t0)) ms, all done after $((t2 - t0)) ms)"

# A fifth client waits until one of four ends.
for i in 1 2 3 4; do
    psql_pgpool -c "select pg_sleep(2), $i" >/dev/null 2>&1 &
    pids+=($!)
done
_four_sleep() { [ "$(active_count 'select pg_sleep(2), 1')$(active_count 'select pg_sleep(2), 4')" = 11 ]; }
wait_until 10 _four_sleep || fail "the four sleeping sessions do not run"
t0=$(now_ms)
assert_eq 5 "$(psql_pgpool -c 'select 5')" "a fifth client once a place is free"
t1=$(now_ms)
wait
[ $((t1 - t0)) -ge 500 ] || fail "the fifth client was served while four sessions ran ($((t1 - t0)) ms)"
log "ok: a fifth client waited $((t1 - t0)) ms for a free place"

# 2. A silent client.
exec 7<>"/dev/tcp/127.0.0.1/$PGPOOL_PORT" || fail "open a silent connection"
sleep 0.3
t0=$(now_ms)
assert_eq 7 "$(psql_pgpool -c 'select 7')" "a session while a client says nothing"
t1=$(now_ms)
[ $((t1 - t0)) -lt 2000 ] || fail "the silent client held the others ($((t1 - t0)) ms)"
exec 7>&-
log "ok: a silent client holds nobody ($((t1 - t0)) ms)"

# 3. Cancel, with another session of the child running.
psql_pgpool -c 'select pg_sleep(3), 42' >"$WORK_DIR/other.out" 2>&1 &
other=$!
"$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
    -c 'select pg_sleep(30)' >"$WORK_DIR/cancel.out" 2>&1 &
victim=$!
wait_active 'select pg_sleep(30)' || fail "pg_sleep(30) is not running"
sleep 0.3
kill -INT "$victim"
wait_until 5 dead "$victim" || fail "psql still running 5 s after SIGINT"
wait "$victim" && fail "psql exited with 0 after a cancelled statement"
assert_contains "$(cat "$WORK_DIR/cancel.out")" 'canceling statement due to user request' "cancelled psql"
wait "$other" || { cat "$WORK_DIR/other.out"; fail "the other session failed"; }
assert_eq "|42" "$(cat "$WORK_DIR/other.out")" "the other session's result"
assert_eq 0 "$(active_count 'select pg_sleep(30)')" "pg_sleep(30) still running after the cancel"
log "ok: cancel reaches its own session only"

# 4. Pooled sets reused.
for i in 1 2 3; do psql_pgpool -c 'select 1' >/dev/null || fail "session $i"; done
# pool_counter is SHOW POOL_POOLS' 14th column (found by name in the header).
reused=$("$PGBIN/psql" -X -A -F '|' -P footer=off -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
    -c 'show pool_pools' | awk -F'|' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "pool_counter") c = i; next }
        c && $c + 0 > 1' | wc -l)
[ "$reused" -ge 1 ] || { psql_pgpool -c 'show pool_pools'; fail "no pooled set was reused"; }
log "ok: pooled sets reused ($reused rows with pool_counter > 1)"

# 5. client_idle_limit per session.
"$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
    -c 'select 1' -c 'select pg_sleep(6)' -c 'select 2' >"$WORK_DIR/busy.out" 2>&1 &
busy=$!
{ echo 'select 11;'; sleep 6; echo 'select 12;'; } | "$PGBIN/psql" -X -At -h 127.0.0.1 \
    -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test >"$WORK_DIR/idle.out" 2>&1
wait "$busy" || { cat "$WORK_DIR/busy.out"; fail "the busy session failed"; }
assert_eq "1

2" "$(cat "$WORK_DIR/busy.out")" "a running statement is not idle"
assert_contains "$(cat "$WORK_DIR/idle.out")" "client_idle_limit" "the idle session's end"
assert_not_contains "$(cat "$WORK_DIR/idle.out")" "12" "the idle session's late query"
log "ok: client_idle_limit ends only the idle session"

# 6. pgbench with load balancing over the multi-session child.
pgbench_pgpool -i -q -s 1 >"$WORK_DIR/init.out" 2>&1 || { cat "$WORK_DIR/init.out"; fail "pgbench -i"; }
for m in simple extended prepared; do
    pgbench_pgpool -n -S -M "$m" -c 4 -j 2 -t 300 >"$WORK_DIR/pgbench.$m" 2>&1 \
        || { cat "$WORK_DIR/pgbench.$m"; fail "pgbench -M $m"; }
    assert_contains "$(cat "$WORK_DIR/pgbench.$m")" "number of transactions actually processed: 1200/1200" "pgbench -M $m"
done
pgbench_pgpool -n -c 4 -j 2 -t 100 >"$WORK_DIR/pgbench.tpcb" 2>&1 \
    || { cat "$WORK_DIR/pgbench.tpcb"; fail "pgbench tpcb-like"; }
assert_contains "$(cat "$WORK_DIR/pgbench.tpcb")" "actually processed: 400/400" "pgbench tpcb-like"
log "ok: pgbench through one child serving four sessions"

# 7. The query cache through the relay thread.
psql_pgpool -q -c 'create table qc (i int)' -c 'insert into qc values (1)' || fail "create qc"
wait_replay
hits0=$(psql_pgpool -F '|' -c 'show pool_cache' | cut -d'|' -f1)
for i in 1 2 3; do assert_eq 1 "$(psql_pgpool -c 'select i from qc')" "cached select $i"; done
hits1=$(psql_pgpool -F '|' -c 'show pool_cache' | cut -d'|' -f1)
[ "$hits1" -gt "$hits0" ] || fail "no cache hit ($hits0 -> $hits1)"
psql_pgpool -c 'select pg_sleep(1)' >/dev/null &
psql_pgpool -q -c 'update qc set i = 2' || fail "update qc"
assert_eq 2 "$(psql_pgpool -c 'select i from qc')" "the select after the update"
wait
log "ok: query cache hits ($hits0 -> $hits1) and invalidation"

grep -q 'sessions_per_child' "$PGPOOL_LOG" && fail "a warning about sessions_per_child though it fits max_pool"
log "ok"
