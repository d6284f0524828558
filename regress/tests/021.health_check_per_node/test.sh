#!/usr/bin/env bash
# 021.health_check_per_node: each node has its own health-check process and
# parameters. Node 2's postmaster is frozen (SIGSTOP: connects are accepted by
# the kernel but never answered, so its check hangs until its own, long,
# timeout); node 1 is then killed and must still be detected and detached on
# its own schedule. `PGPOOL SHOW health_check` shows the per-node values.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'health_check_period = 1' \
    'health_check_max_retries = 1' \
    'health_check_retry_delay = 1' \
    'health_check_timeout = 5' \
    'connect_timeout = 1000' \
    'health_check_timeout2 = 60' \
    'health_check_period0 = 0'

shown=$(psql_pgpool -c 'pgpool show health_check')
assert_eq 32 "$(echo "$shown" | grep -c .)" "rows of PGPOOL SHOW health_check (8 global + 8 per node)"
assert_contains "$shown" "health_check_timeout2|60|" "per-node override shown"
assert_contains "$shown" "health_check_period0|0|" "node 0 checks disabled"
assert_contains "$shown" "health_check_period1|1|" "node 1 falls back to the global period"

pm2=$(read_pid "$TEST_DIR/data2/postmaster.pid") || fail "no postmaster pid for node 2"
log "freezing node 2's postmaster (pid $pm2)"
kill -STOP "$pm2"
resume2() { kill -CONT "$pm2" 2>/dev/null; }
add_cleanup resume2
sleep 2   # node 2's check is now hanging in its 60 s timeout

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
t0=$(now_ms)
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data1" -m immediate stop >/dev/null || fail "pg_ctl stop node 1"
node1_down() { [ "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $4}')" = down ]; }
wait_until 20 node1_down || fail "node 1 not detached while node 2 hangs"
elapsed=$(($(now_ms) - t0))
log "node 1 detached ${elapsed} ms after it was stopped (node 2 still frozen)"
[ "$elapsed" -lt 8000 ] || fail "node 1 detection took ${elapsed} ms: delayed by node 2's hanging check?"
assert_eq "up" "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==2 {print $4}')" "node 2 not failed over during its long timeout"
assert_eq 1 "$(psql_pgpool -c 'select 1')" "service continues on the primary"
resume2
