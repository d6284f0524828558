#!/usr/bin/env bash
# 037.native_replication: backend_clustering_mode = native_replication over
# two independent clusters (pgpool_setup -m r): DDL, INSERT/UPDATE/DELETE,
# COPY FROM and pgbench's writes reach both nodes (checked on each node
# directly), also from sessions that quit right after writing; reads are load balanced over both (weights 1:1); inside a
# transaction a read after a write sees it. Concurrent sessions inserting into
# SERIAL and identity tables with time-dependent defaults (simple, extended and
# prepared protocol; LOCK TABLE, then pgpool_catalog.insert_lock) leave the
# same rows on both nodes; the client sees only its own statements' answers.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 r 'load_balance_mode = on' 'backend_weight0 = 1' 'backend_weight1 = 1'

psql_pgpool -q -c 'create table nr (id int primary key, v text)' \
    -c "insert into nr select i, 'v' || i from generate_series(1, 100) i" \
    -c "update nr set v = 'u' where id <= 10" -c 'delete from nr where id > 90' \
    || fail "writes through pgpool"
printf '1001\tc1\n1002\tc2\n' >"$WORK_DIR/rows.tsv"
psql_pgpool -q -c "\\copy nr from '$WORK_DIR/rows.tsv'" || fail "copy from through pgpool"
for n in 0 1; do
    assert_eq "92 10" "$(psql_node "$n" -c "select count(*), count(*) filter (where v = 'u') from nr" | tr '|' ' ')" \
        "rows on node $n"
done

# Short sessions that quit right after a write: the other node must still get it.
# (The slow first update keeps the other node busy while the second is queued.)
for i in $(seq 1 20); do
    psql_pgpool -q -c "update nr set v = v || 'x' where id = 1 and pg_sleep(0.02) is not null" \
        -c "update nr set v = v || 'y' where id = 2" || fail "update session $i"
done
for n in 0 1; do
    assert_eq "u$(printf 'x%.0s' $(seq 1 20)) u$(printf 'y%.0s' $(seq 1 20))" \
        "$(psql_node "$n" -c 'select v from nr where id in (1, 2) order by id' | tr '\n' ' ' | sed 's/ $//')" \
        "20 sessions' updates on node $n"
done

p0=$(node_port 0); p1=$(node_port 1)
c0=0; c1=0
for i in $(seq 1 30); do
    case "$(psql_pgpool -c 'select inet_server_port() from nr limit 1')" in
    "$p0") c0=$((c0 + 1)) ;;
    "$p1") c1=$((c1 + 1)) ;;
    *) fail "read went nowhere known" ;;
    esac
done
log "30 read sessions: node 0 $c0, node 1 $c1"
[ "$c0" -ge 5 ] && [ "$c1" -ge 5 ] || fail "reads not balanced: $c0 / $c1"

got=$(psql_pgpool -q -c 'begin' -c "insert into nr values (2000, 'tx')" -c 'select count(*) from nr where id = 2000' -c 'commit')
assert_eq 1 "$got" "read after write inside a transaction"

"$PGBIN/pgbench" -i -s 1 -q -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" test >"$WORK_DIR/init.out" 2>&1 \
    || { cat "$WORK_DIR/init.out"; fail "pgbench -i through pgpool"; }
pgbench_pgpool -n -c 1 -t 200 >"$WORK_DIR/run.out" 2>&1 || { cat "$WORK_DIR/run.out"; fail "pgbench through pgpool"; }
assert_contains "$(cat "$WORK_DIR/run.out")" "number of failed transactions: 0" "pgbench tpcb-like"
sums=()
for n in 0 1; do
    sums[n]=$(psql_node "$n" -c 'select sum(abalance), count(*) from pgbench_accounts' | tr '|' ' ')
    assert_eq 200 "$(psql_node "$n" -c 'select count(*) from pgbench_history')" "pgbench_history rows on node $n"
done
assert_eq "${sums[0]}" "${sums[1]}" "pgbench_accounts on node 1 equals node 0"

# insert_lock and constant time functions under concurrency.
psql_pgpool -q -c 'create table s1 (i serial, j timestamptz default current_timestamp, k int)' \
    -c 'create table s2 (i serial, d date default current_date, t time default localtime(3))' \
    -c "create table s3 (i int generated always as identity, j timestamp default now() + interval '1 day')" \
    || fail "create serial tables"
cat >"$WORK_DIR/ins.sql" <<'EOF'
insert into s1 (k) values (:client_id);
insert into s2 values (default);
insert into s3 default values;
update s1 set j = now() where k = :client_id;
EOF
compare_nodes() {
    local q="select * from s1 order by i; select * from s2 order by i; select * from s3 order by i"
    local a b
    a=$(psql_node 0 -c "$q" | md5sum) b=$(psql_node 1 -c "$q" | md5sum)
    assert_eq "$a" "$b" "$1: rows of s1, s2, s3 on node 1 equal node 0"
}
for mode in simple extended prepared; do
    pgbench_pgpool -n -M "$mode" -c 6 -t 15 -f "$WORK_DIR/ins.sql" >"$WORK_DIR/ins.out" 2>&1 \
        || { cat "$WORK_DIR/ins.out"; fail "pgbench -M $mode inserts"; }
    compare_nodes "6 clients, -M $mode, LOCK TABLE"
done
assert_eq 270 "$(psql_node 1 -c 'select count(*) from s1')" "rows in s1"
psql_pgpool -q -c 'create schema pgpool_catalog' \
    -c 'create table pgpool_catalog.insert_lock (reloid oid primary key)' \
    -c 'insert into pgpool_catalog.insert_lock values (0)' || fail "create insert_lock table"
pgbench_pgpool -n -M prepared -c 6 -t 15 -f "$WORK_DIR/ins.sql" >"$WORK_DIR/ins.out" 2>&1 \
    || { cat "$WORK_DIR/ins.out"; fail "pgbench inserts with the insert_lock table"; }
compare_nodes "6 clients, -M prepared, pgpool_catalog.insert_lock"
assert_eq 4 "$(psql_node 1 -c 'select count(*) from pgpool_catalog.insert_lock')" \
    "insert_lock rows (0 and the 3 tables)"
# The client sees its own answers only; an autocommit insert leaves no transaction open.
out=$(psql_pgpool -c 'insert into s1 (k) values (-1) returning k' -c 'begin' \
    -c 'insert into s2 values (default)' -c 'commit' 2>&1)
assert_eq "$(printf -- '-1\nINSERT 0 1\nBEGIN\nINSERT 0 1\nCOMMIT')" "$out" \
    "answers of an autocommit and an explicit insert"
compare_nodes "after the last inserts"
log "ok: native replication writes reach every node, reads are balanced, serial and time values match"
