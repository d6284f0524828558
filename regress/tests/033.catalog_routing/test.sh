#!/usr/bin/env bash
# 033.catalog_routing: routing that needs facts only the database or the
# session knows, checked with notice_per_node_statement (the node each
# statement went to, as the client sees it) and log_statement.
# - both function lists empty: a VOLATILE function (and random(),
#   pg_is_in_recovery()) runs on the primary, a STABLE one is load balanced;
#   a function created, then altered from VOLATILE to STABLE, moves from the
#   primary to the standby in sessions of any child (catalog invalidation);
# - an unlogged table is read on the primary; a temporary table is read on
#   the primary while it exists (check_temp_table);
# - disable_load_balance_on_write = dml_adaptive with
#   dml_adaptive_object_relationship_list = 't1:t2,f1():tf': Pgpool-II's
#   sequence (writes to t1 keep t1 and t2 reads on the primary inside the
#   transaction, t3 stays balanced; f1() makes tf a primary table);
# - the extended protocol (pgbench -M extended) routes alike;
# - log_statement writes "statement: <text>";
# - relcache_query_target = load_balance_node (by reload): the catalog query
#   reaches the standby's log and no longer the primary's, routes unchanged;
# - enable_shared_relcache with memory_cache_enabled = off: the catalog facts
#   are shared through the cache's storage (Pgpool-II's debug line).
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 s \
    'backend_weight0 = 0' \
    'notice_per_node_statement = on' \
    'log_statement = on' \
    "disable_load_balance_on_write = 'dml_adaptive'" \
    "dml_adaptive_object_relationship_list = 't1:t2,f1():tf'"

psql_pgpool -q \
    -c 'create table t1 (i int)' -c 'create table t2 (i int)' -c 'create table t3 (i int)' \
    -c 'create table tf (i int)' -c 'create table pt (i int)' -c 'create unlogged table ut (i int)' \
    -c 'create function f1(int) returns int language sql as $$ select $1 $$' \
    -c 'create function sf(int) returns int language sql stable as $$ select $1 $$' \
    || fail "schema"
wait_replay

# nodes_of SQL...: runs the statements in one session; prints, for each
# statement's notice, "node-id statement" (BEGIN/COMMIT go to both nodes).
nodes_of() {
    local args=() q
    for q in "$@"; do args+=(-c "$q"); done
    psql_pgpool "${args[@]}" 2>&1 >/dev/null | sed -n 's/^NOTICE:  DB node id: \([0-9]*\) statement: /\1 /p'
}
# node_of SQL: the node a lone statement ran on.
node_of() { nodes_of "$1" | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//'; }

assert_eq 1 "$(node_of 'select sf(1)')" "stable function -> standby"
assert_eq 0 "$(node_of 'select f1(1)')" "volatile function -> primary"
assert_eq 0 "$(node_of 'select random()')" "random() (volatile) -> primary"
assert_eq 0 "$(node_of 'select pg_is_in_recovery()')" "pg_is_in_recovery() (volatile) -> primary"
assert_eq 1 "$(node_of 'select count(*), now() from pt')" "count(*) and now() -> standby"
assert_eq 0 "$(node_of 'select * from ut')" "unlogged table -> primary"
assert_eq 1 "$(node_of 'select * from pt')" "plain table -> standby"
log "ok: function volatility from pg_proc, unlogged table on the primary"

# Catalog invalidation: sessions land on random children; every one must see
# the function's current volatility.
psql_pgpool -q -c 'create function g() returns int language sql volatile as $$ select 1 $$' || fail "create g"
for i in 1 2 3 4 5 6; do assert_eq 0 "$(node_of 'select g()')" "volatile g() -> primary (session $i)"; done
psql_pgpool -q -c 'alter function g() stable' || fail "alter g"
wait_replay
for i in 1 2 3 4 5 6; do assert_eq 1 "$(node_of 'select g()')" "g() now stable -> standby (session $i)"; done
log "ok: DDL invalidates every child's catalog facts"

out=$(nodes_of 'create temp table tt (i int)' 'select * from tt' 'select * from pt' 'drop table tt' 'select 1')
assert_eq "0 create temp table tt (i int)
0 select * from tt
1 select * from pt
0 drop table tt
1 select 1" "$out" "temporary table reads stay on the primary"
log "ok: temporary table traced"

out=$(nodes_of 'BEGIN' "SELECT i, 'T1-1' FROM t2" 'INSERT INTO t1 VALUES (1)' "SELECT i, 'T1-2' FROM t1" \
    "SELECT i, 'T1-3' FROM t3" "SELECT i, 'T1-4' FROM t2" 'COMMIT' | grep "'T1-\|INSERT")
assert_eq "1 SELECT i, 'T1-1' FROM t2
0 INSERT INTO t1 VALUES (1)
0 SELECT i, 'T1-2' FROM t1
1 SELECT i, 'T1-3' FROM t3
0 SELECT i, 'T1-4' FROM t2" "$out" "dml_adaptive: t1 written, t2 depends on it"
out=$(nodes_of 'BEGIN' "SELECT i, 'T2-5' FROM tf" "SELECT f1(190), 'T2-6'" "SELECT i, 'T2-7' FROM tf" \
    "SELECT i, 'T2-8' FROM t1" "SELECT i, 'T2-9' FROM t3" 'COMMIT' | grep "'T2-")
assert_eq "1 SELECT i, 'T2-5' FROM tf
0 SELECT f1(190), 'T2-6'
0 SELECT i, 'T2-7' FROM tf
1 SELECT i, 'T2-8' FROM t1
1 SELECT i, 'T2-9' FROM t3" "$out" "dml_adaptive: f1() writes tf"
out=$(nodes_of "SELECT i, 'after' FROM t1")
assert_eq "1 SELECT i, 'after' FROM t1" "$out" "after COMMIT t1 is balanced again"
log "ok: dml_adaptive follows Pgpool-II's sequence"

printf 'select sf(1);\nselect f1(2);\nselect * from ut;\n' >"$WORK_DIR/ext.sql"
pgbench_pgpool -n -M extended -t 2 -f "$WORK_DIR/ext.sql" >"$WORK_DIR/ext.out" 2>&1 \
    || { cat "$WORK_DIR/ext.out"; fail "pgbench -M extended"; }
ext=$(sed -n 's/.*NOTICE:  DB node id: \([0-9]*\) statement: /\1 /p' "$WORK_DIR/ext.out" | sort | uniq -c | awk '{$1=$1; print}')
assert_eq "2 0 select * from ut;
2 0 select f1(2);
2 1 select sf(1);" "$ext" "extended protocol: same routes"
log "ok: extended protocol"

grep -q 'LOG:  statement: select sf(1)$' "$PGPOOL_LOG" || fail "log_statement line missing from $PGPOOL_LOG"
log "ok: log_statement"

# relcache_query_target: where the catalog query (pg_proc's volatile functions)
# runs, read from the backends' own statement logs.
catalog_queries() { cat "$TEST_DIR/data$1"/log/* | grep -c "FROM pg_catalog.pg_proc WHERE provolatile" || true; }
assert_eq 0 "$(catalog_queries 1)" "catalog queries on the standby with relcache_query_target = primary"
echo "relcache_query_target = 'load_balance_node'" >>"$PGPOOL_CONF"
echo "log_min_messages = debug1" >>"$PGPOOL_CONF"
"$TEST_DIR/pgpool_reload" >/dev/null 2>&1 || fail "pgpool_reload"
sleep 1
# DDL makes every child load the catalog again.
psql_pgpool -q -c 'create function h() returns int language sql volatile as $$ select 1 $$' || fail "create h"
wait_replay
before=$(catalog_queries 0)
for i in 1 2 3 4; do
    assert_eq 1 "$(node_of 'select sf(1)')" "stable function -> standby (relcache on the standby, session $i)"
    assert_eq 0 "$(node_of 'select h()')" "volatile h() -> primary (relcache on the standby, session $i)"
done
assert_eq "$before" "$(catalog_queries 0)" "no catalog query on the primary with relcache_query_target = load_balance_node"
[ "$(catalog_queries 1)" -gt 0 ] || fail "no catalog query reached the standby"
log "ok: relcache_query_target = load_balance_node"
# enable_shared_relcache (on by default) with the query cache off: a child that
# loaded the catalog shares it through the cache's storage.
grep -q "committing relation cache to cache storage" "$PGPOOL_LOG" \
    || fail "no child shared its catalog facts (enable_shared_relcache with memory_cache_enabled = off)"
log "ok: enable_shared_relcache with the query cache off"
