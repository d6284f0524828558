#!/usr/bin/env bash
# 010.streaming: 3 nodes, streaming replication, load_balance_mode = off:
# every query, reads included, goes to the primary (node 0); writes reach the
# standbys by streaming replication.  (Load balancing has its own tests; with
# it off, Pgpool-II sends everything to the primary.)
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 3 s 'load_balance_mode = off'

# The cluster is what we think: node 0 primary, 1 and 2 standbys.
assert_eq f "$(psql_node 0 -c 'select pg_is_in_recovery()')" "node 0 in recovery"
assert_eq t "$(psql_node 1 -c 'select pg_is_in_recovery()')" "node 1 in recovery"
assert_eq t "$(psql_node 2 -c 'select pg_is_in_recovery()')" "node 2 in recovery"
assert_eq 2 "$(psql_node 0 -c 'select count(*) from pg_stat_replication')" "standbys streaming from node 0"

port0=$(node_port 0)
for i in $(seq 1 10); do
    assert_eq "f|$port0" "$(psql_pgpool -c 'select pg_is_in_recovery(), inet_server_port()')" \
        "read, session $i"
done
got=$(psql_pgpool -c 'begin read only' -c 'select pg_is_in_recovery(), inet_server_port()' -c 'commit' | sed -n 2p)
assert_eq "f|$port0" "$got" "read in a read-only transaction"
got=$(python3 "$REGRESS_DIR/lib/pgwire.py" query-ext 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test \
    'select pg_is_in_recovery(), inet_server_port()') || fail "extended query failed"
assert_eq "f|$port0" "$got" "read with the extended protocol"
# Concurrent sessions too.
for i in $(seq 1 8); do
    psql_pgpool -c 'select inet_server_port(), pg_sleep(0.5)' >"$WORK_DIR/conc.$i" 2>&1 &
done
wait
assert_eq "$port0|" "$(sort -u "$WORK_DIR"/conc.*)" "ports of 8 concurrent sessions"

# Writes through pgpool go to the primary and stream to both standbys.
psql_pgpool -q -c 'create table sr_t (id int primary key, v text)' \
    -c "insert into sr_t select i, 'v' || i from generate_series(1, 1000) i" \
    || fail "create/insert through pgpool"
assert_eq 1000 "$(psql_node 0 -c 'select count(*) from sr_t')" "sr_t rows on node 0"
wait_replay
for n in 1 2; do
    assert_eq 1000 "$(psql_node "$n" -c 'select count(*) from sr_t')" "sr_t rows on node $n"
done
assert_eq 1000 "$(psql_pgpool -c 'select count(*) from sr_t')" "sr_t through pgpool"
# A read right after a write in the same session sees it (primary).
assert_eq "1001" "$(psql_pgpool -c "insert into sr_t values (1001, 'x')" -c 'select count(*) from sr_t' | tail -n 1)" \
    "read-your-write through pgpool"
