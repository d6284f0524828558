#!/usr/bin/env bash
# 035.logical_mode: backend_clustering_mode = logical_replication over two
# independent clusters (pgpool_setup -m l: node 0 ALWAYS_PRIMARY), weights
# 0:1: SHOW POOL_NODES calls node 0 the primary and node 1 a standby although
# neither is in recovery; reads go to node 1, writes, nextval() and DDL to
# node 0 only (checked on each node directly); a table replicated with a
# publication/subscription is read through pgpool from node 1.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 l 'backend_weight0 = 0' 'backend_weight1 = 1'

assert_eq f "$(psql_node 0 -c 'select pg_is_in_recovery()')" "node 0 in recovery"
assert_eq f "$(psql_node 1 -c 'select pg_is_in_recovery()')" "node 1 in recovery"
roles=$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{print $1 ":" $7}' | tr '\n' ' ')
assert_eq "0:primary 1:standby " "$roles" "roles in SHOW POOL_NODES"

p1=$(node_port 1)
for i in 1 2 3 4 5; do
    assert_eq "$p1" "$(psql_pgpool -c 'select inet_server_port()')" "read of session $i on node 1"
done

# Writes and DDL reach node 0 only (the clusters are independent).
psql_pgpool -q -c 'create table lt (id int primary key, v text)' -c "insert into lt values (1, 'a')" \
    -c 'create sequence ls' -c "select nextval('ls')" >/dev/null || fail "DDL/DML through pgpool"
assert_eq 1 "$(psql_node 0 -c 'select count(*) from lt')" "row on node 0"
assert_eq f "$(psql_node 1 -c "select to_regclass('lt') is not null")" "table lt on node 1"
assert_eq 1 "$(psql_node 0 -c 'select last_value from ls')" "nextval ran on node 0"

# Logical replication of lt to node 1: reads through pgpool then see it there.
psql_node 1 -q -c 'create table lt (id int primary key, v text)' || fail "table on node 1"
psql_node 0 -q -c 'create publication lpub for table lt' || fail "publication"
psql_node 1 -q -c "create subscription lsub connection 'host=127.0.0.1 port=$(node_port 0) user=$PGSUPERUSER dbname=test' publication lpub" \
    || fail "subscription"
add_cleanup psql_node 1 -q -c "drop subscription if exists lsub"
psql_pgpool -q -c "insert into lt values (2, 'b')" || fail "insert through pgpool"
replicated() { [ "$(psql_pgpool -c 'select count(*) from lt')" = 2 ]; }
wait_until 20 replicated || fail "rows never reached node 1 through logical replication"
assert_eq "$p1" "$(psql_pgpool -c 'select inet_server_port() from lt limit 1')" "read of lt on node 1"
log "ok: logical replication mode routes writes to node 0 and reads to node 1"
