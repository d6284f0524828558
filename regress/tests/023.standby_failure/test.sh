#!/usr/bin/env bash
# 023.standby_failure: 4 clients run read-only sessions whose reads go to
# standby node 2; standby node 1 is killed meanwhile. Node 1 is detached and
# the 4 sessions run to the end without an error.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'backend_weight0 = 0' 'backend_weight1 = 0' \
    'health_check_period = 1' 'health_check_max_retries = 1' 'health_check_retry_delay = 1' \
    'connect_timeout = 1000' "read_only_function_list = 'inet_server_port,pg_sleep'"

p2=$(node_port 2)
for i in $(seq 1 80); do echo "select inet_server_port(), pg_sleep(0.05);"; done >"$WORK_DIR/reads.sql"
for c in 1 2 3 4; do
    psql_pgpool -f "$WORK_DIR/reads.sql" >"$WORK_DIR/reader.$c.out" 2>&1 &
    pids[c]=$!
done
sleep 1
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
log "stopping standby node 1"
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data1" -m immediate stop >/dev/null || fail "pg_ctl stop node 1"
for c in 1 2 3 4; do
    wait "${pids[c]}" || fail "reader $c failed: $(tail -n 3 "$WORK_DIR/reader.$c.out")"
    assert_eq "80" "$(grep -c "^$p2|" "$WORK_DIR/reader.$c.out")" "reader $c: rows from node 2"
done
node1_down() { [ "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $4}')" = down ]; }
wait_until 10 node1_down || fail "node 1 was not detached"
log "ok: node 1 detached"
assert_eq "$p2" "$(psql_pgpool -c 'select inet_server_port()')" "new sessions read from node 2"
