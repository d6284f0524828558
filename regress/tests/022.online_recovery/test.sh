#!/usr/bin/env bash
# 022.online_recovery: pcp_recovery_node brings a failed standby back as a
# streaming standby that receives reads again. 3 nodes (pgpool_setup wires
# recovery_1st_stage / pgpool_remote_start and the pgpool_recovery extension; the
# recovery_database is created from template1 after a first request failed without it),
# health_check_period 1, max_retries 1; reads weighted to node 2 only. Node 2 is
# stopped with `pg_ctl -m immediate` and detached; rows are written before and
# while it is down; `pcp_recovery_node -n 2` rebuilds it from the primary
# (pg_basebackup), starts it and attaches it: SHOW POOL_NODES shows it up, it
# streams from node 0 as server2, it has every row (also the ones written after),
# and `select inet_server_port()` through pgpool answers with its port. Requests
# that must fail (the primary, a live node, a bad id) fail as in Pgpool-II.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_recovery_node" ] || fail "$PCP_BIN/pcp_recovery_node missing: cargo build --release"

setup_cluster 3 s \
    'health_check_period = 1' \
    'health_check_max_retries = 1' \
    'health_check_retry_delay = 1' \
    'health_check_timeout = 5' \
    'connect_timeout = 1000' \
    'recovery_timeout = 60' \
    "recovery_database = 'recdb'" \
    'backend_weight0 = 0' \
    'backend_weight1 = 0' \
    'backend_weight2 = 1'

export PCPPASSFILE=$TEST_DIR/etc/pcppass
recovery_node() { "$PCP_BIN/pcp_recovery_node" -h localhost -p "$PCP_PORT" -w "$@" 2>&1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
node_status() { psql_pgpool -c 'show pool_nodes' 2>/dev/null | awk -F'|' -v n="$1" '$1 == n {print $4}'; }
P2=$(node_port 2)

# pgpool_setup's part: the command, the scripts in the data directories, the
# extension in template1 of the primary.
assert_contains "$(grep '^recovery_1st_stage_command' "$PGPOOL_CONF")" "'recovery_1st_stage'" "recovery_1st_stage_command"
for d in data0 data1 data2; do
    for s in recovery_1st_stage pgpool_remote_start; do
        [ -x "$TEST_DIR/$d/$s" ] || fail "$d/$s missing or not executable"
    done
done
funcs=$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$(node_port 0)" -U "$PGSUPERUSER" -d template1 \
    -c "select pg_get_function_identity_arguments(oid) from pg_proc where proname = 'pgpool_recovery' order by pronargs desc limit 1")
log "pgpool_recovery($funcs)"
assert_contains "$funcs" "remote_port text, primary_host text" "7-argument pgpool_recovery in template1"

# Requests that fail before anything is done.
out=$(recovery_node -n 0)
assert_contains "$out" "primary server cannot be recovered by online recovery." "recovery of the primary"
out=$(recovery_node -n 1)
assert_contains "$out" "node recovery failed, node id: 1 is alive" "recovery of a live node"
out=$(recovery_node -n 7)
assert_contains "$out" "node id 7 is not valid" "recovery of a bad node id"

psql_pgpool -q -c 'create table rec (id int primary key, phase text)' || fail "create table"
psql_pgpool -q -c "insert into rec select g, 'before' from generate_series(1, 100) g" || fail "insert before"
wait_replay
assert_eq "$P2" "$(psql_pgpool -c 'select inet_server_port()')" "reads go to node 2 (weights 0, 0, 1)"

log "stopping standby node 2 with pg_ctl -m immediate"
as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -m immediate stop >/dev/null || fail "pg_ctl stop"
is_down() { [ "$(node_status 2)" = down ]; }
wait_until 20 is_down || fail "node 2 was not detached: $(psql_pgpool -c 'show pool_nodes')"
log "ok: node 2 is down"
psql_pgpool -q -c "insert into rec select g, 'while down' from generate_series(101, 200) g" || fail "insert while down"
# Reads still work (they go elsewhere while node 2 is down).
assert_eq 200 "$(psql_pgpool -c 'select count(*) from rec')" "rows through pgpool while node 2 is down"

# recovery_database (4.7): the recovery functions are called in that database; it does
# not exist yet, so the request fails without touching node 2, ...
out=$(recovery_node -n 2)
assert_contains "$out" "unable to connect to main node" "recovery with a missing recovery_database"
assert_contains "$out" '"recdb"' "recovery with a missing recovery_database"
# ... and once it exists (a copy of template1: it has the extension), recovery works.
psql_node 0 -d template1 -q -c 'create database recdb' || fail "create database recdb"
log "pcp_recovery_node -n 2"
t0=$(now_ms)
out=$(recovery_node -n 2)
rc=$?
log "pcp_recovery_node took $(($(now_ms) - t0)) ms: $out"
[ "$rc" = 0 ] || fail "pcp_recovery_node failed (rc $rc): $out"
assert_eq "pcp_recovery_node -- Command Successful" "$out" "pcp_recovery_node output"
for m in "starting recovering node 2" "executing recovery" "node recovery, 1st stage is done" \
    "node recovery, node: 2 restarted" "recovery done"; do
    assert_contains "$(cat "$PGPOOL_LOG")" "$m" "pgpool log"
done

# Attached again; a session makes "waiting" "up".
psql_pgpool -c 'select 1' >/dev/null || fail "select 1 after recovery"
is_up() { [ "$(node_status 2)" = up ]; }
wait_until 10 is_up || fail "node 2 not up after recovery: $(psql_pgpool -c 'show pool_nodes')"
log "ok: SHOW POOL_NODES shows node 2 up"

streams() { [ "$(psql_node 0 -c "select count(*) from pg_stat_replication where application_name = 'server2' and state = 'streaming'")" = 1 ]; }
wait_until 20 streams || fail "node 2 does not stream from node 0: $(psql_node 0 -c 'select application_name, state from pg_stat_replication')"
log "ok: node 2 streams from node 0 as server2"
assert_eq t "$(psql_node 2 -c 'select pg_is_in_recovery()')" "node 2 is a standby"

psql_pgpool -q -c "insert into rec select g, 'after' from generate_series(201, 300) g" || fail "insert after"
wait_replay
assert_eq "before=100 while down=100 after=100" \
    "$(psql_node 2 -c "select string_agg(phase || '=' || n, ' ' order by min) from (select phase, count(*) n, min(id) from rec group by phase) s")" \
    "rows on node 2"

# Reads reach node 2 again.
for i in 1 2 3 4 5; do
    assert_eq "$P2" "$(psql_pgpool -c 'select inet_server_port()')" "read $i served by node 2"
done
assert_eq 300 "$(psql_pgpool -c 'select count(*) from rec')" "rows read through pgpool"

# A second recovery of the now live node is refused.
out=$(recovery_node -n 2)
assert_contains "$out" "node recovery failed, node id: 2 is alive" "recovery of the recovered node"

# Once more with Debian's Pgpool-II 4.3 tool (same wire protocol), when installed:
# a node recovered before is recovered again.
if [ -x /usr/sbin/pcp_recovery_node ]; then
    as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data2" -m immediate stop >/dev/null || fail "pg_ctl stop (2nd time)"
    wait_until 20 is_down || fail "node 2 was not detached the 2nd time"
    psql_pgpool -q -c "insert into rec select g, 'down again' from generate_series(301, 350) g" || fail "insert down again"
    out=$(/usr/sbin/pcp_recovery_node -h localhost -p "$PCP_PORT" -w -n 2 2>&1) || fail "Debian's pcp_recovery_node failed: $out"
    assert_eq "pcp_recovery_node -- Command Successful" "$out" "Debian's pcp_recovery_node output"
    wait_until 20 streams || fail "node 2 does not stream after the 2nd recovery"
    wait_replay
    assert_eq 350 "$(psql_node 2 -c 'select count(*) from rec')" "rows on node 2 after the 2nd recovery"
    assert_eq "$P2" "$(psql_pgpool -c 'select inet_server_port()')" "reads served by node 2 after the 2nd recovery"
fi
