#!/usr/bin/env bash
# 038.add_nodes_by_reload: a cluster grows without a restart, the way Pgpool-II's
# pgpool_setup builds every streaming cluster and DBAs add standbys. pgpool starts
# with node 0 only (nodes 1 and 2 stopped and wiped); while `pgbench -c 4` runs
# through pgpool, backend_*1 and backend_*2 are appended to pgpool.conf and
# `pgpool reload` makes them known: SHOW POOL_NODES / pcp_node_info list them as
# "down", SHOW POOL_STATUS has three backend_data lines, each gets its own health
# check process. `pcp_recovery_node -n 1` and `-n 2` build them from the primary and
# attach them. pgbench ends with zero failed transactions, and new sessions read from
# the new standbys. A node id skipped in the file (a gap) is accepted as "unused";
# changing the port of a node in service is refused with a warning until a restart;
# a node removed from the file goes away on reload once it is detached.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'health_check_period = 1' \
    'health_check_max_retries = 1' \
    'health_check_retry_delay = 1' \
    'connect_timeout = 1000' \
    'recovery_timeout = 60' \
    'num_init_children = 8' \
    'backend_weight0 = 0'

export PCPPASSFILE=$TEST_DIR/etc/pcppass
pcp() { local tool=$1; shift; "$PCP_BIN/$tool" -h localhost -p "$PCP_PORT" -w "$@" 2>&1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
node_status() { psql_pgpool -c 'show pool_nodes' 2>/dev/null | awk -F'|' -v n="$1" '$1 == n {print $4}'; }
backend_lines() { grep -E "^backend_[a-z_]+$1[[:space:]]*=" "$PGPOOL_CONF"; }

# Down to node 0: pgpool and the standbys stopped, their data wiped, their lines gone.
saved_lines=$WORK_DIR/backend_lines
{ backend_lines 1; backend_lines 2; } >"$saved_lines"
[ "$(grep -c . "$saved_lines")" -ge 6 ] || fail "pgpool.conf has no backend lines for nodes 1 and 2"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1 || fail "pgpool stop"
for n in 1 2; do
    as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data$n" -m fast -w stop >/dev/null || fail "stop node $n"
    as_pg find "$TEST_DIR/data$n" -mindepth 1 -delete || fail "wipe data$n"
done
sed -i -E '/^backend_[a-z_]+[12][[:space:]]*=/d' "$PGPOOL_CONF"
"$PGPOOL_BIN" -D -n -f "$PGPOOL_CONF" -F "$TEST_DIR/etc/pcp.conf" -a "$TEST_DIR/etc/pool_hba.conf" \
    >>"$PGPOOL_LOG" 2>&1 &
wait_until 30 pgpool_answers || fail "pgpool with node 0 only does not answer"
assert_eq 1 "$(psql_pgpool -c 'show pool_nodes' | grep -c .)" "SHOW POOL_NODES lists node 0 only"
hc_procs() { ps -o args= --ppid "$(pgpool_main_pid)" | grep -c 'health check process'; }
assert_eq 1 "$(hc_procs)" "one health check process"

log "pgbench -c 4 through pgpool while nodes are added"
pgbench_pgpool -i -s 1 -q >/dev/null 2>&1 || fail "pgbench -i"
pgbench_pgpool -c 4 -T 20 -n >"$WORK_DIR/pgbench.out" 2>&1 &
bench_pid=$!
add_cleanup "kill $bench_pid 2>/dev/null"
sleep 2

cat "$saved_lines" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload || fail "pgpool reload"
three() { [ "$(psql_pgpool -c 'show pool_status' | grep -c '^backend_data')" = 3 ]; }
wait_until 20 three || fail "SHOW POOL_STATUS does not list 3 backends: $(psql_pgpool -c 'show pool_status' | grep backend_data)"
assert_eq down "$(node_status 1)" "node 1 added by reload is down"
assert_eq down "$(node_status 2)" "node 2 added by reload is down"
out=$(pcp pcp_node_info -n 2)
assert_contains "$out" " $(node_port 2) 3 " "pcp_node_info of node 2 (status 3 = down)"
assert_eq 3 "$(pcp pcp_node_count)" "pcp_node_count"
wait_until 10 eval '[ "$(hc_procs)" = 3 ]' || fail "health check processes for the new nodes: $(hc_procs)"
log "ok: nodes 1 and 2 known after reload, down, with health checks"

for n in 1 2; do
    t0=$(now_ms)
    out=$(pcp pcp_recovery_node -n "$n") || fail "pcp_recovery_node -n $n: $out"
    assert_eq "pcp_recovery_node -- Command Successful" "$out" "pcp_recovery_node -n $n"
    log "node $n recovered in $(($(now_ms) - t0)) ms"
done
psql_pgpool -c 'select 1' >/dev/null || fail "select 1 after recovery"
up() { [ "$(node_status 1)" = up ] && [ "$(node_status 2)" = up ]; }
wait_until 20 up || fail "nodes not up: $(psql_pgpool -c 'show pool_nodes')"
assert_eq t "$(psql_node 2 -c 'select pg_is_in_recovery()')" "node 2 is a standby"

wait "$bench_pid"
rc=$?
cat "$WORK_DIR/pgbench.out"
[ "$rc" = 0 ] || fail "pgbench exited with $rc"
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK_DIR/pgbench.out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$WORK_DIR/pgbench.out")
[ -n "$processed" ] && [ "$processed" -gt 0 ] || fail "pgbench processed no transactions"
assert_eq 0 "${failed:-0}" "failed transactions while nodes were added"

# Reads reach the new standbys (weight 0 on node 0).
wait_replay
ports=$(for i in $(seq 1 30); do psql_pgpool -c 'select inet_server_port()'; done | sort | uniq -c)
log "30 one-read sessions by port: $(echo $ports)"
assert_contains "$ports" " $(node_port 1)" "reads on node 1"
assert_contains "$ports" " $(node_port 2)" "reads on node 2"
assert_not_contains "$ports" " $(node_port 0)" "no reads on node 0 (weight 0)"

# A node in service keeps its address until a restart; a gap is "unused".
sed -i -E "s/^(backend_port2[[:space:]]*=).*/\1 1025/" "$PGPOOL_CONF"
echo "backend_hostname4 = 'localhost'" >>"$PGPOOL_CONF"
echo "backend_port4 = $(node_port 4)" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload || fail "second reload"
five() { [ "$(psql_pgpool -c 'show pool_nodes' | grep -c .)" = 5 ]; }
wait_until 20 five || fail "SHOW POOL_NODES after the second reload: $(psql_pgpool -c 'show pool_nodes')"
assert_eq unused "$(node_status 3)" "node 3 (not configured) is unused"
assert_eq down "$(node_status 4)" "node 4 added as down"
assert_eq up "$(node_status 2)" "node 2 still up"
assert_contains "$(cat "$PGPOOL_LOG")" 'backend_port2 changed but takes effect only after a restart' "port change refused"
assert_eq "$(node_port 2)" "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1 == 2 {print $3}')" "node 2 keeps its port"
assert_contains "$(cat "$TEST_DIR/log/pgpool_status")" "unused" "pgpool_status records the unused slot"

# Node 4 leaves the file and, being down, the node list.
sed -i -E '/^backend_[a-z_]+4[[:space:]]*=/d' "$PGPOOL_CONF"
sed -i -E "s/^(backend_port2[[:space:]]*=).*/\1 $(node_port 2)/" "$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload || fail "third reload"
wait_until 20 eval '[ "$(psql_pgpool -c "show pool_nodes" | grep -c .)" = 3 ]' \
    || fail "node 4 not removed: $(psql_pgpool -c 'show pool_nodes')"
assert_eq 3 "$(pcp pcp_node_count)" "pcp_node_count after removal"
log "ok: node 4 removed by reload"
