#!/usr/bin/env bash
# 045.failover_session: Pgpool-II 4.5's "fewer session drops on failover". On 3
# streaming nodes where node 2 is nobody's load-balance node, 10 pgbench clients
# (select-only, 5 s) run to the end without an error while node 2 goes away:
# 1. backend_weight2 = 0, persistent sessions, node 2's server stopped: its health
#    check fails it over meanwhile;
# 2. the same with a new connection per transaction (-C), node 2 detached with
#    pcp_detach_node first, then stopped;
# 3. load_balance_mode = off (reads on the primary), persistent sessions,
#    pcp_detach_node 2 while they run;
# 4. load_balance_mode = off, -C, detach then stop.
# Between the cases node 2 is started again and attached. The cases are those of
# Pgpool-II 4.5's own regression test 037.failover_session.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_detach_node" ] || fail "$PCP_BIN/pcp_detach_node missing: cargo build --release"

setup_cluster 3 s 'backend_weight2 = 0' 'num_init_children = 12' 'max_pool = 1' \
    'health_check_period = 1' 'health_check_max_retries = 0' 'connect_timeout = 1000' \
    "failover_command = ''" "follow_primary_command = ''"
export PCPPASSFILE=$TEST_DIR/etc/pcppass
pcp() { local t=$1; shift; "$PCP_BIN/$t" -h 127.0.0.1 -p "$PCP_PORT" -U "$PGSUPERUSER" -w "$@"; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pgbench_pgpool -i -q >"$WORK_DIR/init.out" 2>&1 || fail "pgbench -i: $(tail -3 "$WORK_DIR/init.out")"
wait_replay

status2() { psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1 == 2 { print $4 }'; }
node2_down() { [ "$(status2)" = down ]; }
node2_up() { [ "$(status2)" = up ] || [ "$(status2)" = waiting ]; }
stop2() {
    as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -m fast -w stop >/dev/null || fail "stop node 2"
}
restore2() {
    if ! as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" status >/dev/null 2>&1; then
        as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -w -l "$TEST_DIR/log/data2.restart.log" start \
            >/dev/null || fail "start node 2"
    fi
    node2_down && { pcp pcp_attach_node -n 2 >/dev/null || fail "pcp_attach_node -n 2"; }
    wait_until 20 node2_up || fail "node 2 not back: $(status2)"
}
# run_case NAME PGBENCH_OPTS ACTION: pgbench for 5 s, ACTION after 1 s; pgbench
# must end with status 0 and no client aborted.
run_case() {
    local name=$1 opts=$2 action=$3 out=$WORK_DIR/$1.out job
    # shellcheck disable=SC2086  # options are words
    pgbench_pgpool -n -S $opts -c 10 -T 5 >"$out" 2>&1 &
    job=$!
    sleep 1
    $action
    if ! wait "$job"; then
        tail -n 5 "$out"
        pgpool_bug "$name: pgbench failed while node 2 went away"
    fi
    if grep -q '^number of failed transactions' "$out"; then
        grep -q '^number of failed transactions: 0 ' "$out" \
            || pgpool_bug "$name: $(grep '^number of failed' "$out")"
    fi
    log "ok: $name: $(grep -E '^number of transactions actually processed' "$out")"
    wait_until 20 node2_down || fail "$name: node 2 is not down: $(status2)"
}

run_case "1 weight 0, stop" "" stop2
restore2
detach_then_stop() { pcp pcp_detach_node -n 2 >/dev/null || fail "pcp_detach_node"; sleep 2; stop2; }
run_case "2 weight 0, -C, detach and stop" "-C" detach_then_stop
restore2

{ echo 'backend_weight2 = 1'; echo 'load_balance_mode = off'; } >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 1
detach() { pcp pcp_detach_node -n 2 >/dev/null || fail "pcp_detach_node"; }
run_case "3 load_balance_mode off, detach" "" detach
restore2
run_case "4 load_balance_mode off, -C, detach and stop" "-C" detach_then_stop
restore2
# New sessions work on all three nodes again.
assert_eq 1 "$(psql_pgpool -c 'select 1')" "a session after the cases"
log "ok: 045.failover_session"
