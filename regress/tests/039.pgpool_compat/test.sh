#!/usr/bin/env bash
# 039.pgpool_compat: behaviours Pgpool-II users and scripts rely on, with load balancing
# on (3 nodes, reads weighted to the standbys only):
# - SQL-level PREPARE / EXECUTE / DEALLOCATE: EXECUTE and DEALLOCATE run on the node the
#   PREPARE ran on (a read on a standby, a write on the primary), for many sessions in
#   a row, with no "does not exist" error; DEALLOCATE ALL reaches every node of the session;
#   EXECUTE counts (SHOW POOL_BACKEND_STATS) as the statement it runs;
# - "BEGIN; SELECT 1;" as one query opens the transaction everywhere (SAVEPOINT works);
# - a query in a failed transaction is refused with 25P02 and "DETAIL: statement: ...",
#   ROLLBACK TO SAVEPOINT and ROLLBACK still work;
# - log_client_messages writes "<Kind> message from frontend." with the DETAIL lines;
# - pg_terminate_backend(pid) through pgpool reaches the node of that backend, ends only
#   that session and fails nothing over;
# - a standby whose server stops is seen down by the very next session (no health
#   check needed), and the session carries on on the other nodes.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'backend_weight0 = 0' \
    'load_balance_mode = on' \
    'log_per_node_statement = on' \
    'log_client_messages = on' \
    'health_check_period = 0' \
    'sr_check_period = 0'

psql_pgpool -q -c 'create table pe (id int)' -c 'insert into pe values (1)' || fail "schema"
wait_replay

# PREPARE / EXECUTE / DEALLOCATE, 20 sessions.
errors=0
for i in $(seq 1 20); do
    out=$(psql_pgpool -c "prepare r$i as select count(*) from pe" -c "execute r$i" \
        -c "deallocate r$i" -c "prepare w$i as update pe set id = id" -c "execute w$i" \
        -c "deallocate w$i" 2>&1) || errors=$((errors + 1))
    case "$out" in *"does not exist"*) errors=$((errors + 1)) ;; esac
done
assert_eq 0 "$errors" "PREPARE/EXECUTE/DEALLOCATE sessions with an error"
# The nodes a statement ran on, by log_per_node_statement ($1: the whole text).
node_of() {
    awk -v s="statement: $1" 'length($0) >= length(s) && substr($0, length($0) - length(s) + 1) == s' "$PGPOOL_LOG" \
        | sed -n 's/.*DB node id: \([0-9]*\) .*/\1/p' | sort -u | tr '\n' ' '
}
mismatch=0
for i in $(seq 1 20); do
    p=$(node_of "prepare r$i as select count(*) from pe"); e=$(node_of "execute r$i"); d=$(node_of "deallocate r$i")
    [ -n "$p" ] && [ "$p" = "$e" ] && [ "$p" = "$d" ] || mismatch=$((mismatch + 1))
    case "$p" in 0*) mismatch=$((mismatch + 1)) ;; esac
    [ "$(node_of "execute w$i")" = "0 " ] || mismatch=$((mismatch + 1))
done
assert_eq 0 "$mismatch" "sessions whose EXECUTE/DEALLOCATE ran elsewhere than PREPARE (reads on standbys, writes on the primary)"
psql_pgpool -q -c 'prepare a as select 1' -c 'deallocate all' || fail "deallocate all"
# Statements only live on the nodes of the session: the primary and its standby.
case "$(node_of 'deallocate all')" in
    "0 1 " | "0 2 ") log "ok: DEALLOCATE ALL on the primary and the session's standby" ;;
    *) fail "DEALLOCATE ALL ran on: $(node_of 'deallocate all')" ;;
esac

# EXECUTE counts as the statement it runs (SHOW POOL_BACKEND_STATS): a read on the
# session's standby, an INSERT on the primary.
stats() { psql_pgpool -c 'show pool_backend_stats' | awk -F'|' -v c="$1" '{print $1 ":" $c}' | tr '\n' ' '; }
cnt() { echo "$1" | tr ' ' '\n' | awk -F: -v n="$2" '$1 == n {print $2}'; }
sel0=$(stats 6); ins0=$(stats 7)
psql_pgpool -q -c 'prepare ps as select count(*) from pe' -c 'execute ps' -c 'execute ps' -c 'execute ps' \
    -c 'prepare pi as insert into pe values (9)' -c 'execute pi' -c 'deallocate all' >/dev/null \
    || fail "prepared read and insert"
sel1=$(stats 6); ins1=$(stats 7)
standby_reads=$(( $(cnt "$sel1" 1) + $(cnt "$sel1" 2) - $(cnt "$sel0" 1) - $(cnt "$sel0" 2) ))
assert_eq 3 "$standby_reads" "EXECUTE of a read counted as select_cnt on the standbys"
assert_eq 1 "$(( $(cnt "$ins1" 0) - $(cnt "$ins0" 0) ))" "EXECUTE of an INSERT counted as insert_cnt on the primary"
psql_pgpool -q -c 'delete from pe where id = 9' || fail "cleanup"

# Pgpool-II 4.5's multi-statement BEGIN: "BEGIN; SELECT 1;" opens the transaction on every
# node of the session, so a SAVEPOINT and a read after it work, and COMMIT leaves no
# standby idle in transaction.
out=$(psql_pgpool -c 'BEGIN; SELECT 1;' -c 'SAVEPOINT a' -c 'select count(*) from pe' \
    -c 'ROLLBACK TO a' -c 'COMMIT' 2>&1) || fail "BEGIN; SELECT 1; then a savepoint: $out"
assert_eq "$(printf 'BEGIN\n1\nSAVEPOINT\n1\nROLLBACK\nCOMMIT')" "$out" "answers after BEGIN; SELECT 1;"
for n in 1 2; do
    assert_eq 0 "$(psql_node "$n" -c "select count(*) from pg_stat_activity where state like 'idle in transaction%'")" \
        "sessions idle in transaction on node $n"
done

# A failed transaction (psql going on after errors).
psql_on() { "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test "$@"; }
out=$(printf '%s\n' 'begin;' 'select * from no_such_table;' 'select 1;' 'rollback;' | psql_on 2>&1)
assert_contains "$out" "ERROR:  current transaction is aborted, commands ignored until end of transaction block" "refused query"
assert_contains "$out" "DETAIL:  statement: select 1" "DETAIL of the refused query"
out=$(printf '%s\n' 'begin;' 'savepoint s1;' 'select * from no_such_table;' 'rollback to s1;' \
    'select 41 + 1;' 'commit;' | psql_on 2>&1)
assert_contains "$out" "42" "ROLLBACK TO SAVEPOINT recovers the transaction"

# log_client_messages.
for m in "Query message from frontend." "DETAIL:  query: \"select 41 + 1;\"" "Terminate message from frontend."; do
    assert_contains "$(cat "$PGPOOL_LOG")" "$m" "log_client_messages"
done

# pg_terminate_backend through pgpool: the victim's node, that session only, no failover.
"$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
    -c 'select pg_sleep(30)' >"$WORK_DIR/victim.out" 2>&1 &
victim=$!
add_cleanup "kill $victim 2>/dev/null"
victim_node() {
    for n in 0 1 2; do
        pid=$(psql_node "$n" -c "select pid from pg_stat_activity where query = 'select pg_sleep(30)'")
        [ -n "$pid" ] && { echo "$n $pid"; return 0; }
    done
    return 1
}
wait_until 10 victim_node || fail "the sleeping session is on no node"
read -r vnode vpid < <(victim_node)
assert_eq t "$(psql_pgpool -c "select pg_terminate_backend($vpid)")" "pg_terminate_backend($vpid) through pgpool"
wait "$victim"
assert_contains "$(cat "$WORK_DIR/victim.out")" "terminating connection due to administrator command" "the victim's session ended"
assert_contains "$(cat "$PGPOOL_LOG")" "found the pg_terminate_backend request for backend pid:$vpid on backend node:$vnode" "pgpool's log"
sleep 2
assert_not_contains "$(grep -i 'degeneration' "$PGPOOL_LOG")" "shutdown host" "no failover after pg_terminate_backend"
assert_eq "up up up" "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{printf "%s%s", sep, $4; sep=" "}')" "all nodes up"

# A standby stops: the next session sees it down at once, and works.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -m fast -w stop >/dev/null || fail "stop node 2"
out=$(psql_pgpool -c 'select count(*) from pe' -c 'show pool_nodes') || fail "session after node 2 stopped: $out"
assert_eq "1" "$(echo "$out" | head -n 1)" "the session read its row"
assert_eq down "$(echo "$out" | awk -F'|' '$1 == 2 {print $4}')" "node 2 down in the same session's SHOW POOL_NODES"
