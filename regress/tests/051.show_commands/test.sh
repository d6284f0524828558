#!/usr/bin/env bash
# 051.show_commands: the SQL admin commands answered by pgpool itself.
# - SHOW POOL_NODES / POOL_PROCESSES / POOL_POOLS / POOL_VERSION / POOL_STATUS /
#   POOL_HEALTH_CHECK_STATS / POOL_BACKEND_STATS / POOL_CACHE: the column names of
#   Pgpool-II 4.3.5 (psql header line), one row per node, sane values;
# - health-check counters grow with health_check_period = 1;
# - backend stats count the statements sent;
# - the same commands in the extended protocol (Parse/Bind/Describe/Execute/Sync,
#   and a named statement executed again) are answered without a backend;
# - PGPOOL SET changes the session's own log_per_node_statement, log_client_messages
#   and client_idle_limit (and only that session's), PGPOOL RESET gives the configured
#   value back; PGPOOL SET allow_sql_comments = on lets a commented read go to the
#   session's standby, client_min_messages = warning keeps pgpool's notices
#   (notice_per_node_statement) from the client.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 s \
    'health_check_period = 1' \
    'sr_check_period = 1' \
    'load_balance_mode = on' \
    "app_name_redirect_preference_list = 'commented:1'"

header() { "$PGBIN/psql" -X -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test -c "$1" | head -1 | tr -d ' '; }
cols() { echo "$*" | tr ' ' '|'; }

assert_eq "$(cols node_id hostname port status pg_status lb_weight role pg_role select_cnt \
    load_balance_node replication_delay replication_state replication_sync_state last_status_change)" \
    "$(header 'SHOW POOL_NODES')" "SHOW POOL_NODES columns"
assert_eq "$(cols pool_pid start_time client_connection_count database username \
    backend_connection_time pool_counter status)" "$(header 'SHOW POOL_PROCESSES')" "SHOW POOL_PROCESSES columns"
assert_contains "$(header 'SHOW POOL_POOLS')" "$(cols pool_pid start_time client_connection_count pool_id \
    backend_id database username backend_connection_time client_connection_time client_disconnection_time \
    client_idle_duration majorversion minorversion pool_counter pool_backendpid pool_connected status)" \
    "SHOW POOL_POOLS columns"
assert_eq "pool_version" "$(header 'SHOW POOL_VERSION')" "SHOW POOL_VERSION column"
assert_eq "item|value|description" "$(header 'SHOW POOL_STATUS')" "SHOW POOL_STATUS columns"
assert_eq "$(cols num_cache_hits num_selects cache_hit_ratio num_hash_entries used_hash_entries \
    num_cache_entries used_cache_entries_size free_cache_entries_size fragment_cache_entries_size)" \
    "$(header 'SHOW POOL_CACHE')" "SHOW POOL_CACHE columns"
assert_eq "$(cols node_id hostname port status role last_status_change total_count success_count \
    fail_count skip_count retry_count average_retry_count max_retry_count max_duration min_duration \
    average_duration last_health_check last_successful_health_check last_skip_health_check \
    last_failed_health_check)" "$(header 'SHOW POOL_HEALTH_CHECK_STATS')" "SHOW POOL_HEALTH_CHECK_STATS columns"
assert_eq "$(cols node_id hostname port status role select_cnt insert_cnt update_cnt delete_cnt \
    ddl_cnt other_cnt panic_cnt fatal_cnt error_cnt)" "$(header 'SHOW POOL_BACKEND_STATS')" \
    "SHOW POOL_BACKEND_STATS columns"
log "ok: column names as Pgpool-II 4.3.5"

# Values.
nodes=$(psql_pgpool -c 'SHOW POOL_NODES')
assert_eq 2 "$(echo "$nodes" | grep -c .)" "SHOW POOL_NODES rows"
assert_contains "$nodes" "0|127.0.0.1|$(node_port 0)|up|up|0.500000|primary|" "node 0 row"
assert_contains "$nodes" "1|127.0.0.1|$(node_port 1)|up|up|0.500000|standby|" "node 1 row"
assert_eq "0|0|0.00|0|0|0|0|0|0" "$(psql_pgpool -c 'SHOW POOL_CACHE')" "SHOW POOL_CACHE row"
status=$(psql_pgpool -c 'SHOW POOL_STATUS')
assert_eq "backend_clustering_mode|1|clustering mode" "$(echo "$status" | head -1)" "first POOL_STATUS row"
assert_contains "$status" "port|$PGPOOL_PORT|pgpool accepting port number" "POOL_STATUS port"
assert_contains "$status" "health_check_period|1|health check period" "POOL_STATUS health_check_period"
assert_contains "$status" "backend_port1|$(node_port 1)|backend #1 port number" "POOL_STATUS backend_port1"
assert_contains "$(psql_pgpool -c 'SHOW POOL_VERSION')" "4.3.5" "SHOW POOL_VERSION"
assert_eq 2 "$(psql_pgpool -c 'SHOW POOL_HEALTH_CHECK_STATS' | grep -c .)" "health check stats rows"

hc_total() { psql_pgpool -c 'SHOW POOL_HEALTH_CHECK_STATS' | awk -F'|' -v n="$1" '$1==n {print $7}'; }
hc_success() { psql_pgpool -c 'SHOW POOL_HEALTH_CHECK_STATS' | awk -F'|' -v n="$1" '$1==n {print $8}'; }
t0=$(hc_total 1)
sleep 3
t1=$(hc_total 1)
[ "$t1" -ge $((t0 + 2)) ] || fail "health check total_count of node 1 went from $t0 to $t1 in 3 s"
[ "$(hc_success 1)" -ge "$t1" ] || [ "$(hc_success 1)" -ge $((t1 - 1)) ] || fail "health checks failed"
row=$(psql_pgpool -c 'SHOW POOL_HEALTH_CHECK_STATS' | awk -F'|' '$1==0')
avg=$(echo "$row" | cut -d'|' -f16)
[[ "$avg" =~ ^[0-9]+\.[0-9]{6}$ ]] || fail "average_duration '$avg' is not %f"
[[ "$(echo "$row" | cut -d'|' -f17)" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9:]{8}$ ]] \
    || fail "last_health_check is not a time: $row"
log "ok: health check counters grow ($t0 -> $t1)"

ins() { psql_pgpool -c 'SHOW POOL_BACKEND_STATS' | awk -F'|' '$1==0 {print $7}'; }
i0=$(ins)
psql_pgpool -q -c 'create table t51 (id int)' -c 'insert into t51 values (1)' -c 'insert into t51 values (2)' \
    || fail "inserts"
i1=$(ins)
assert_eq $((i0 + 2)) "$i1" "insert_cnt of the primary after 2 inserts"
assert_eq 2 "$(psql_pgpool -c 'SHOW POOL_BACKEND_STATS' | grep -c .)" "backend stats rows"
log "ok: backend stats count statements"

# Extended protocol.
pgwire() { python3 "$REGRESS_DIR/lib/pgwire.py" "$@"; }
ext=$(pgwire query-ext 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 'SHOW POOL_NODES') \
    || fail "SHOW POOL_NODES (extended): $ext"
assert_eq 2 "$(echo "$ext" | grep -c .)" "SHOW POOL_NODES rows (extended)"
assert_contains "$ext" "1|127.0.0.1|$(node_port 1)|up|" "SHOW POOL_NODES node 1 (extended)"
for cmd in 'SHOW POOL_VERSION' 'SHOW POOL_CACHE' 'SHOW POOL_STATUS' 'SHOW POOL_HEALTH_CHECK_STATS' \
    'SHOW POOL_BACKEND_STATS' 'SHOW POOL_PROCESSES' 'SHOW POOL_POOLS' 'PGPOOL SHOW port'; do
    got=$(pgwire query-ext 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test "$cmd") || fail "$cmd (extended): $got"
    assert_eq "$(psql_pgpool -c "$cmd" | head -1 | cut -d"|" -f1-2)" "$(echo "$got" | head -1 | cut -d"|" -f1-2)" \
        "$cmd: first row, extended like simple"
done
# P B D(S) D(P) E C(P) S: ParseComplete BindComplete ParameterDescription RowDescription
# RowDescription DataRow CommandComplete CloseComplete ReadyForQuery.
tags=$(pgwire ext-tags 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 'SHOW POOL_VERSION' s51) \
    || fail "ext-tags: $tags"
assert_eq "12tTTDC3Z" "$(echo "$tags" | head -1)" "extended SHOW POOL_VERSION reply"
assert_eq "2DCZ" "$(echo "$tags" | sed -n 2p)" "named local statement executed again"
tags=$(pgwire ext-tags 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 'PGPOOL SET client_min_messages = debug1') \
    || fail "ext-tags: $tags"
assert_eq "12tnnC3Z" "$tags" "extended PGPOOL SET reply (NoData)"
tags=$(pgwire ext-tags 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 'PGPOOL SHOW nosuchparam') \
    || fail "ext-tags: $tags"
assert_eq "12tEZ" "$tags" "extended error: skipped to Sync"
# Ordinary statements still go to the backend.
assert_eq "1|2" "$(pgwire query-ext 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 'select 1, 2')" \
    "ordinary extended query"
tags=$(pgwire ext-tags 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 'select 1') || fail "ext-tags: $tags"
assert_eq "12tTTDC3Z" "$tags" "ordinary statement, same message sequence from PostgreSQL"
if [ -x "$PGBIN/pgbench" ]; then
    echo 'SHOW POOL_NODES;' >"$WORK_DIR/show.sql"
    for mode in extended prepared; do
        "$PGBIN/pgbench" -n -M "$mode" -c 2 -t 20 -f "$WORK_DIR/show.sql" \
            -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" test >"$WORK_DIR/pgbench.out" 2>&1 \
            || { cat "$WORK_DIR/pgbench.out"; fail "pgbench -M $mode SHOW POOL_NODES"; }
        assert_contains "$(cat "$WORK_DIR/pgbench.out")" "number of transactions actually processed: 40" \
            "pgbench -M $mode SHOW POOL_NODES"
    done
fi
log "ok: extended protocol answered locally"

# PGPOOL SET / RESET act on the session that sets them.

psql_pgpool -c "PGPOOL SET log_per_node_statement = on" -c "select 'logged per node'" \
    -c "PGPOOL RESET log_per_node_statement" -c "select 'not logged after reset'" >/dev/null \
    || fail "PGPOOL SET / RESET session"
psql_pgpool -c "select 'another session'" >/dev/null
sleep 0.5
grep -q "statement: select 'logged per node'" "$PGPOOL_LOG" \
    || pgpool_bug "PGPOOL SET log_per_node_statement = on did not log the next statement"
! grep -q "statement: select 'not logged after reset'" "$PGPOOL_LOG" \
    || pgpool_bug "PGPOOL RESET log_per_node_statement did not stop the logging"
! grep -q "DB node id: [0-9]* backend pid: [0-9]* statement: select 'another session'" "$PGPOOL_LOG" \
    || pgpool_bug "another session logged per node too"
psql_pgpool -c "PGPOOL SET log_client_messages = on" -c "select 'client message logged'" >/dev/null \
    || fail "PGPOOL SET log_client_messages"
sleep 0.5
grep -qF "query: \"select 'client message logged'\"" "$PGPOOL_LOG" \
    || pgpool_bug "PGPOOL SET log_client_messages = on did not log the client's next message"
start=$(now_ms)
out=$(psql_pgpool -c "PGPOOL SET client_idle_limit = 1" -c "select pg_sleep(0)" -c '\! sleep 3' \
    -c "select 'after idle'" 2>&1)
assert_contains "$out" "client_idle_limit" "a session idle past its PGPOOL SET client_idle_limit"
log "ok: PGPOOL SET applies to the session ($(($(now_ms) - start)) ms)"

# allow_sql_comments: a read starting with a comment stays on the primary unless the
# session allows comments (application "commented" reads from node 1, a standby).
ro_q="/* a comment */ select current_setting('transaction_read_only')"
out=$(PGAPPNAME=commented psql_pgpool -At -c "$ro_q" -c "PGPOOL SET allow_sql_comments = on" \
    -c "$ro_q" -c "PGPOOL RESET allow_sql_comments" -c "$ro_q") || fail "PGPOOL SET allow_sql_comments"
assert_eq "$(printf 'off\non\noff')" "$(echo "$out" | grep -E '^(on|off)$')" \
    "a commented read: primary, standby after PGPOOL SET allow_sql_comments = on, primary after RESET"
# client_min_messages: pgpool's NOTICE (notice_per_node_statement) reaches the client
# only while client_min_messages lets notices through.
out=$(psql_pgpool -c "PGPOOL SET notice_per_node_statement = on" -c "select 'noticed'" \
    -c "PGPOOL SET client_min_messages = warning" -c "select 'not noticed'" 2>&1) \
    || fail "PGPOOL SET client_min_messages"
assert_contains "$out" "statement: select 'noticed'" "notice_per_node_statement's NOTICE"
case $out in
*"statement: select 'not noticed'"*) pgpool_bug "a NOTICE reached the client with client_min_messages = warning" ;;
esac
log "ok: PGPOOL SET allow_sql_comments and client_min_messages"

