#!/usr/bin/env bash
# 025.false_failover: failures that must not detach a node.
# - pg_terminate_backend of a session's backend (FATAL 57P01 to that session only)
#   with failover_on_backend_error and failover_on_backend_shutdown on: the node
#   is still fine, so it stays up (Pgpool-II 3.7 would fail it over);
# - a node flagged DISALLOW_TO_FAILOVER whose server stops is not detached.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 s \
    'health_check_period = 1' 'health_check_max_retries = 1' 'health_check_retry_delay = 1' \
    'connect_timeout = 1000' 'failover_on_backend_error = on' 'failover_on_backend_shutdown = on' \
    "backend_flag1 = 'DISALLOW_TO_FAILOVER'" 'load_balance_mode = off'

status_of() { psql_pgpool -c 'show pool_nodes' | awk -F'|' -v n="$1" '$1==n {print $4}'; }

# A session whose backend is terminated by an administrator.
psql_pgpool -c 'select pg_sleep(5)' >"$WORK_DIR/victim.out" 2>&1 &
victim=$!
wait_active() { [ "$(psql_node 0 -c "select count(*) from pg_stat_activity where query = 'select pg_sleep(5)'")" = 1 ]; }
wait_until 10 wait_active || fail "victim session not running"
psql_node 0 -q -c "select pg_terminate_backend(pid) from pg_stat_activity where query = 'select pg_sleep(5)'" \
    || fail "pg_terminate_backend"
wait "$victim" && fail "the terminated session should have ended with an error"
assert_contains "$(cat "$WORK_DIR/victim.out")" "terminating connection due to administrator command" "victim's error"
sleep 3
assert_eq up "$(status_of 0)" "primary after pg_terminate_backend of one session"
assert_eq 1 "$(psql_pgpool -c 'select 1')" "service after pg_terminate_backend"

# DISALLOW_TO_FAILOVER: node 1 stops but stays attached.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data1" -m immediate stop >/dev/null || fail "stop node 1"
sleep 5
assert_eq up "$(status_of 1)" "node 1 (DISALLOW_TO_FAILOVER) after its server stopped"
grep -q "DISALLOW_TO_FAILOVER" "$PGPOOL_LOG" || fail "no DISALLOW_TO_FAILOVER log line"
log "ok: failover of node 1 refused and logged"
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data1" -w -l "$TEST_DIR/log/data1.restart.log" start >/dev/null || fail "restart node 1"
