#!/usr/bin/env bash
# 031.delay_threshold: the sr_check worker measures each standby's delay; a
# standby whose replay is paused (pg_wal_replay_pause) while the primary writes
# past delay_threshold stops getting reads within two sr_check_periods, and
# gets them back after pg_wal_replay_resume. SHOW POOL_NODES shows the delay and
# the replication state. log_standby_delay: 'if_over_threshold' (the default) logs
# the paused standby's delay; after a reload with 'none' no delay is logged; with
# 'always' and delay_threshold = 0 a delay is logged although no threshold is set.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'backend_weight0 = 0' 'backend_weight2 = 0' \
    'sr_check_period = 1' 'delay_threshold = 10000'

port() { psql_pgpool -c 'select inet_server_port()'; }
p0=$(node_port 0); p1=$(node_port 1)
streaming() { [ "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $12 "/" $13}')" = streaming/async ]; }
wait_until 10 streaming || fail "SHOW POOL_NODES does not show node 1 streaming: $(psql_pgpool -c 'show pool_nodes')"
log "ok: node 1 shown as streaming/async"
for i in 1 2 3; do assert_eq "$p1" "$(port)" "read $i before the pause"; done

psql_node 1 -q -c 'select pg_wal_replay_pause()' || fail "pause replay on node 1"
psql_pgpool -q -c 'create table big (v text)' -c "insert into big select repeat('x', 100) from generate_series(1, 2000)" \
    || fail "writes on the primary"
t0=$(now_ms)
reads_on_primary() { [ "$(port)" = "$p0" ]; }
wait_until 10 reads_on_primary || fail "reads still go to the paused standby: $(psql_pgpool -c 'show pool_nodes')"
log "reads moved to the primary $(($(now_ms) - t0)) ms after the write"
[ $(($(now_ms) - t0)) -lt 3500 ] || fail "took more than two sr_check_periods (+ margin)"
delay=$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $11}')
[ "$delay" -gt 10000 ] || fail "replication_delay of node 1 is $delay, expected > 10000"
log "ok: node 1 replication_delay = $delay bytes"
for i in 1 2 3; do assert_eq "$p0" "$(port)" "read $i while node 1 lags"; done

psql_node 1 -q -c 'select pg_wal_replay_resume()' || fail "resume replay on node 1"
reads_on_standby() { [ "$(port)" = "$p1" ]; }
wait_until 10 reads_on_standby || fail "reads did not return to node 1 after resume"
log "ok: reads back on node 1 after resume"
assert_eq 0 "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $11}')" "node 1 delay after catching up"

behind() { grep -c "Replication of node: 1 is behind" "$PGPOOL_LOG"; }
[ "$(behind)" -gt 0 ] || pgpool_bug "the delay past delay_threshold was not logged (log_standby_delay = if_over_threshold)"
echo "log_standby_delay = 'none'" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 1
psql_node 1 -q -c 'select pg_wal_replay_pause()' || fail "pause replay on node 1"
psql_pgpool -q -c "insert into big select repeat('y', 100) from generate_series(1, 2000)" || fail "writes"
lagging() { [ "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $11}')" -gt 10000 ]; }
wait_until 10 lagging || fail "node 1 does not lag"
before=$(behind)
sleep 2.5
assert_eq "$before" "$(behind)" "delay lines with log_standby_delay = none"
{ echo "log_standby_delay = 'always'"; echo 'delay_threshold = 0'; } >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
more() { [ "$(behind)" -gt "$before" ]; }
wait_until 10 more || pgpool_bug "log_standby_delay = always logged no delay"
log "ok: log_standby_delay none / always"
psql_node 1 -q -c 'select pg_wal_replay_resume()' || fail "resume replay on node 1"
