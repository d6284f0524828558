#!/usr/bin/env bash
# 024.auto_failback: a standby that was detached (its server was stopped) is
# attached again by itself once it streams from the primary again; a node an
# administrator detached with pcp_detach_node is left alone.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'health_check_period = 1' 'health_check_max_retries = 0' 'connect_timeout = 1000' \
    'sr_check_period = 1' 'auto_failback = on' 'auto_failback_interval = 1'

status_of() { psql_pgpool -c 'show pool_nodes' | awk -F'|' -v n="$1" '$1==n {print $4}'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -m immediate stop >/dev/null || fail "stop node 2"
down2() { [ "$(status_of 2)" = down ]; }
wait_until 15 down2 || fail "node 2 not detached"
log "ok: node 2 detached after its server stopped"
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -w -l "$TEST_DIR/log/data2.restart.log" start >/dev/null || fail "start node 2"
up2() { [ "$(status_of 2)" = up ]; }
wait_until 20 up2 || fail "node 2 not attached again by auto_failback: $(psql_pgpool -c 'show pool_nodes')"
log "ok: auto_failback attached node 2"
grep -q "auto_failback: node 2" "$PGPOOL_LOG" || fail "no auto_failback log line"

PCPPASSFILE=$TEST_DIR/etc/pcppass "$PCP_BIN/pcp_detach_node" -h 127.0.0.1 -p "$PCP_PORT" -U "$PGSUPERUSER" -w -n 1 >/dev/null \
    || fail "pcp_detach_node -n 1"
wait_until 10 eval '[ "$(status_of 1)" = down ]' || fail "node 1 not detached by pcp"
sleep 4
assert_eq down "$(status_of 1)" "node 1 detached by an administrator stays down"
