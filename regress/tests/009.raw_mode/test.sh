#!/usr/bin/env bash
# 009.raw_mode: backend_clustering_mode = raw with 2 independent nodes: every
# query (simple and extended, reads and writes) goes to node 0 only, as the
# notices of notice_per_node_statement say too.
# (Failover parts are left out: health check is not implemented yet.)
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 n 'notice_per_node_statement = on'

grep -Eq "^[[:space:]]*backend_clustering_mode[[:space:]]*=[[:space:]]*'?raw" "$PGPOOL_CONF" \
    || fail "pgpool_setup -m n did not configure raw mode"
# Two independent clusters, both primaries.
assert_eq f "$(psql_node 0 -c 'select pg_is_in_recovery()')" "node 0 in recovery"
assert_eq f "$(psql_node 1 -c 'select pg_is_in_recovery()')" "node 1 in recovery"
[ "$(psql_node 0 -c 'select system_identifier from pg_control_system()')" != \
  "$(psql_node 1 -c 'select system_identifier from pg_control_system()')" ] \
    || fail "nodes 0 and 1 are the same cluster"

port0=$(node_port 0)
for i in $(seq 1 10); do
    assert_eq "$port0" "$(psql_pgpool -c 'select inet_server_port()')" "server port, session $i"
done
assert_eq "$port0" "$(psql_pgpool -c 'begin' -c 'select inet_server_port()' -c 'commit' | sed -n 2p)" \
    "server port inside a transaction"
assert_eq "$port0" "$(python3 "$REGRESS_DIR/lib/pgwire.py" query-ext 127.0.0.1 "$PGPOOL_PORT" \
    "$PGSUPERUSER" test 'select inet_server_port()')" "server port with the extended protocol"

notices=$(psql_pgpool -c 'select 1' -c 'select 2' 2>&1 >/dev/null)
assert_eq "NOTICE:  DB node id: 0 statement: select 1
NOTICE:  DB node id: 0 statement: select 2" "$notices" "statement notices name node 0"

# A write through pgpool lands on node 0 only.
psql_pgpool -q -c 'create table raw_t (id int)' -c 'insert into raw_t select generate_series(1, 10)' \
    || fail "create/insert through pgpool"
assert_eq 10 "$(psql_node 0 -c 'select count(*) from raw_t')" "raw_t rows on node 0"
assert_eq 0 "$(psql_node 1 -c "select count(*) from pg_class where relname = 'raw_t'")" \
    "raw_t on node 1 (must not exist)"
assert_eq 10 "$(psql_pgpool -c 'select count(*) from raw_t')" "raw_t through pgpool"

# A little load through raw mode.
"$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -M extended -c 4 -j 2 -t 50 \
    -f <(echo 'select count(*) from raw_t;') test >"$WORK_DIR/pgbench.out" 2>&1 \
    || { cat "$WORK_DIR/pgbench.out"; fail "pgbench in raw mode"; }
grep -q '^number of failed transactions: 0 ' "$WORK_DIR/pgbench.out" \
    || { cat "$WORK_DIR/pgbench.out"; fail "pgbench in raw mode: failed transactions"; }
log "ok: pgbench -M extended in raw mode"
