#!/usr/bin/env bash
# 037.native_replication: backend_clustering_mode = native_replication over
# two independent clusters (pgpool_setup -m r): DDL, INSERT/UPDATE/DELETE,
# COPY FROM and pgbench's writes reach both nodes (checked on each node
# directly), also from sessions that quit right after writing; reads are load balanced over both (weights 1:1); inside a
# transaction a read after a write sees it.
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
log "ok: native replication writes reach every node, reads are balanced"
