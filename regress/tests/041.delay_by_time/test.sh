#!/usr/bin/env bash
# 041.delay_by_time: delay_threshold_by_time (Pgpool-II 4.4). sr_check reads each
# standby's replay_lag from the primary's pg_stat_replication; a standby whose replay
# is paused (pg_wal_replay_pause) while writes go on stops getting reads within two
# sr_check_periods of lagging more than the threshold, writes keep working on the
# primary, and the standby gets its reads back after pg_wal_replay_resume. SHOW
# POOL_NODES and pcp_node_info show the delay in seconds, as 4.4 does.
# The cluster's pgpool.conf uses 4.4 parameters only, so as in 4.4 a bare
# `delay_threshold_by_time = 1` is one second (4.5 and later would read 1 ms).
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_node_info" ] || fail "$PCP_BIN/pcp_node_info missing: cargo build --release"

setup_cluster 2 s \
    'backend_weight0 = 0' \
    'sr_check_period = 1' \
    'delay_threshold_by_time = 1'
export PCPPASSFILE=$TEST_DIR/etc/pcppass

assert_eq "1s" "$(psql_pgpool -c 'PGPOOL SHOW delay_threshold_by_time')" "delay_threshold_by_time of a 4.4 file"
port() { psql_pgpool -c 'select inet_server_port()'; }
delay_of_1() { psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $11}'; }
p0=$(node_port 0); p1=$(node_port 1)
streaming() { [ "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1==1 {print $12}')" = streaming ]; }
wait_until 10 streaming || fail "SHOW POOL_NODES does not show node 1 streaming: $(psql_pgpool -c 'show pool_nodes')"
for i in 1 2 3; do assert_eq "$p1" "$(port)" "read $i before the pause"; done
case "$(delay_of_1)" in
    [0-9].[0-9][0-9][0-9][0-9][0-9][0-9]" second") log "ok: node 1 delay shown in seconds: $(delay_of_1)" ;;
    *) pgpool_bug "node 1 replication_delay is [$(delay_of_1)], expected seconds (N.NNNNNN second)" ;;
esac

# Writes every 0.1 s for the rest of the test: WAL the paused standby does not replay.
psql_pgpool -q -c 'create table ticks (t timestamptz default now())' || fail "create table"
(while :; do psql_node 0 -q -c 'insert into ticks default values' >/dev/null 2>&1; sleep 0.1; done) &
writer=$!
add_cleanup "kill $writer 2>/dev/null"

psql_node 1 -q -c 'select pg_wal_replay_pause()' || fail "pause replay on node 1"
t0=$(now_ms)
log "replay paused on node 1"
reads_on_primary() { [ "$(port)" = "$p0" ]; }
wait_until 15 reads_on_primary || pgpool_bug "reads still go to the paused standby: $(psql_pgpool -c 'show pool_nodes')"
took=$(($(now_ms) - t0))
log "reads moved to the primary $took ms after the pause"
# 1 s to fall behind the threshold, then at most two sr_check periods (+ margin).
[ "$took" -lt 4500 ] || pgpool_bug "took $took ms: more than 1 s + two sr_check_periods"
for i in 1 2 3; do assert_eq "$p0" "$(port)" "read $i while node 1 lags"; done
before=$(psql_pgpool -c 'select count(*) from ticks')
psql_pgpool -q -c 'insert into ticks default values' || pgpool_bug "a write through pgpool while node 1 lags"
[ "$(psql_pgpool -c 'select count(*) from ticks')" -gt "$before" ] || pgpool_bug "the write is not seen"
log "ok: writes go on while node 1 lags"
delay=$(delay_of_1)
case "$delay" in
    [1-9]*.[0-9][0-9][0-9][0-9][0-9][0-9]" second"*) log "ok: SHOW POOL_NODES delay of node 1: $delay" ;;
    *) pgpool_bug "SHOW POOL_NODES delay of node 1 is [$delay], expected at least 1 second" ;;
esac
info=$("$PCP_BIN/pcp_node_info" -h 127.0.0.1 -p "$PCP_PORT" -U "$PGSUPERUSER" -w -n 1) \
    || fail "pcp_node_info -n 1: $info"
assert_eq standby "$(awk '{print $7}' <<<"$info")" "pcp_node_info -n 1: role"
pcp_delay=$(awk '{print $9}' <<<"$info")
case "$pcp_delay" in
    [1-9]*.[0-9][0-9][0-9][0-9][0-9][0-9]) log "ok: pcp_node_info delay of node 1 in seconds: $pcp_delay" ;;
    *) pgpool_bug "pcp_node_info delay of node 1 is [$pcp_delay] ($info)" ;;
esac
grep -q 'Replication of node: 1 is behind [0-9.]* second(s) from the primary server (node: 0)' "$PGPOOL_LOG" \
    || pgpool_bug "no 'Replication of node: 1 is behind ... second(s)' in the log"
log "ok: the delay is logged as Pgpool-II logs it"

psql_node 1 -q -c 'select pg_wal_replay_resume()' || fail "resume replay on node 1"
t0=$(now_ms)
reads_on_standby() { [ "$(port)" = "$p1" ]; }
wait_until 15 reads_on_standby || pgpool_bug "reads did not return to node 1 after resume: $(psql_pgpool -c 'show pool_nodes')"
log "ok: reads back on node 1 $(($(now_ms) - t0)) ms after resume"
for i in 1 2 3; do assert_eq "$p1" "$(port)" "read $i after resume"; done
kill "$writer" 2>/dev/null
