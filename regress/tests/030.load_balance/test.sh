#!/usr/bin/env bash
# 030.load_balance: read/write split over 3 nodes with weights 0:1:1.
# - 1000 sessions of one SELECT each: none reach node 0, nodes 1 and 2 get
#   40-60% each, by pgpool's select_cnt and by the backends' own counters;
# - writes, nextval(), a function in write_function_list, SELECT ... FOR
#   UPDATE and /*NO LOAD BALANCE*/ run on the primary (checked on the nodes);
# - BEGIN; SELECT; INSERT; SELECT; COMMIT: the last SELECT sees the insert;
# - pgbench -S -M prepared: no failed transaction, selects on the standbys.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'backend_weight0 = 0' \
    "write_function_list = 'wf'" \
    'load_balance_mode = on'

psql_pgpool -q -c 'create table lbt (id int primary key, v text)' \
    -c "insert into lbt select i, 'v' || i from generate_series(1, 100) i" \
    -c 'create table t_forupdate (id int)' -c 'insert into t_forupdate values (1)' \
    -c 'create table t_nlb (id int)' -c 'create table t_rf (id int)' -c 'create table t_w (id int)' \
    -c 'create table t_ins (id int)' \
    -c 'create sequence s1' \
    -c 'create function wf() returns int language sql as $$ insert into t_w values (1) returning 1 $$' \
    -c 'create function rf() returns int language sql stable as $$ select count(*)::int from t_rf $$' \
    || fail "schema"
lsn=$(psql_node 0 -c 'select pg_current_wal_lsn()')
for n in 1 2; do
    caught_up() { [ "$(psql_node "$n" -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ]; }
    wait_until 30 caught_up || fail "node $n did not catch up"
done

scans() { psql_node "$1" -c "select coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) from pg_stat_user_tables where relname = '$2'"; }
# Pooled backends stay alive, so PostgreSQL flushes their statistics only when
# they have been idle for a while (at most 10 s): let them settle first.
sleep 11
before=()
for n in 0 1 2; do before[n]=$(scans "$n" lbt); done
sel_before=$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{printf "%s ", $9}')

# 1000 sessions, one SELECT each (pgbench -C: a new connection per transaction).
echo 'select v from lbt where id = 1;' >"$WORK_DIR/one_select.sql"
"$PGBIN/pgbench" -n -C -c 4 -j 2 -t 250 -f "$WORK_DIR/one_select.sql" \
    -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" test >"$WORK_DIR/pgbench_c.out" 2>&1 \
    || { cat "$WORK_DIR/pgbench_c.out"; fail "pgbench -C"; }
assert_contains "$(cat "$WORK_DIR/pgbench_c.out")" "number of failed transactions: 0" "1000 sessions"
standby_scans() { echo $(($(scans 1 lbt) + $(scans 2 lbt) - before[1] - before[2])); }
all_flushed() { [ "$(standby_scans)" -ge 1000 ]; }
wait_until 25 all_flushed || log "standby statistics still at $(standby_scans) of 1000"
read -r -a sb <<<"$sel_before"
nodes=$(psql_pgpool -c 'show pool_nodes')
for n in 0 1 2; do
    cnt=$(echo "$nodes" | awk -F'|' -v n="$n" '$1==n {print $9}')
    pool_sel[n]=$((cnt - sb[n]))
    own[n]=$(($(scans "$n" lbt) - before[n]))
    log "node $n: select_cnt +${pool_sel[n]}, scans of lbt on the node +${own[n]}"
done
assert_eq 0 "${pool_sel[0]}" "selects sent to node 0 (weight 0)"
assert_eq 0 "${own[0]}" "scans of lbt on node 0"
for n in 1 2; do
    [ "${pool_sel[n]}" -ge 400 ] && [ "${pool_sel[n]}" -le 600 ] \
        || fail "node $n got ${pool_sel[n]} of 1000 selects (want 40-60%)"
    [ "${own[n]}" -ge 400 ] && [ "${own[n]}" -le 600 ] \
        || fail "node $n scanned lbt ${own[n]} times (want 40-60% of 1000)"
    assert_eq "${pool_sel[n]}" "${own[n]}" "node $n: pgpool's count and the node's own"
done

# Statements that must run on the primary (a standby would refuse the writes;
# for the reads, the node's own scan counters tell where they ran).
for q in "insert into t_ins values (1)" "update t_ins set id = id + 1" \
    "select nextval('s1')" "select wf()"; do
    for i in 1 2 3 4 5; do
        psql_pgpool -q -c "$q" >/dev/null 2>"$WORK_DIR/err" || fail "[$q] failed: $(cat "$WORK_DIR/err")"
    done
    log "ok: [$q] x5 through pgpool"
done
assert_eq 5 "$(psql_node 0 -c 'select count(*) from t_ins')" "inserts on the primary"
assert_eq 30 "$(psql_node 0 -c 'select sum(id) from t_ins')" "updates on the primary"
assert_eq 5 "$(psql_node 0 -c 'select last_value from s1')" "nextval ran 5 times on the primary"
assert_eq 5 "$(psql_node 0 -c 'select count(*) from t_w')" "wf() ran on the primary"
for q in "select * from t_forupdate for update" "/*NO LOAD BALANCE*/ select * from t_nlb"; do
    tbl=$(echo "$q" | grep -o 't_[a-z]*' | head -n 1)
    b0=$(scans 0 "$tbl"); b1=$(scans 1 "$tbl"); b2=$(scans 2 "$tbl")
    for i in 1 2 3 4 5 6; do psql_pgpool -q -c "$q" >/dev/null || fail "[$q]"; done
    six_on_primary() { [ "$(($(scans 0 "$tbl") - b0))" -ge 6 ]; }
    wait_until 25 six_on_primary
    assert_eq 6 "$(($(scans 0 "$tbl") - b0))" "[$q] scans on the primary"
    assert_eq 0 "$(($(scans 1 "$tbl") + $(scans 2 "$tbl") - b1 - b2))" "[$q] scans on the standbys"
done
# A function not in write_function_list is a read: it may go to a standby.
b=$(($(scans 1 t_rf) + $(scans 2 t_rf)))
for i in 1 2 3 4 5 6; do psql_pgpool -q -c 'select rf()' >/dev/null || fail "select rf()"; done
rf_on_standby() { [ $(($(scans 1 t_rf) + $(scans 2 t_rf) - b)) -gt 0 ]; }
wait_until 25 rf_on_standby || fail "rf() (read-only) never ran on a standby"
log "ok: rf() load balanced"

# Read-your-write inside a transaction.
got=$(psql_pgpool -q -c 'begin' -c 'select count(*) from lbt' -c "insert into lbt values (2001, 'z')" \
    -c 'select count(*) from lbt where id = 2001' -c 'commit' | tail -n 1)
assert_eq 1 "$got" "last SELECT of BEGIN; SELECT; INSERT; SELECT; COMMIT"

# pgbench -S -M prepared over the standbys (16 sessions: each draws its standby at random,
# so 8 would all draw the same one in 1 run of 128).
"$PGBIN/pgbench" -i -s 2 -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" test >/dev/null 2>&1 || fail "pgbench -i"
lsn=$(psql_node 0 -c 'select pg_current_wal_lsn()')
for n in 1 2; do
    caught_up() { [ "$(psql_node "$n" -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ]; }
    wait_until 30 caught_up || fail "node $n did not catch up after pgbench -i"
done
sel_before=$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{printf "%s ", $9}')
out=$("$PGBIN/pgbench" -n -S -M prepared -c 16 -j 2 -T 8 -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" test 2>&1)
assert_contains "$out" "number of failed transactions: 0" "pgbench -S -M prepared"
assert_not_contains "$out" "aborted" "pgbench -S -M prepared"
read -r -a sb <<<"$sel_before"
nodes=$(psql_pgpool -c 'show pool_nodes')
for n in 1 2; do
    d=$(($(echo "$nodes" | awk -F'|' -v n="$n" '$1==n {print $9}') - sb[n]))
    [ "$d" -gt 1000 ] || fail "node $n got only $d selects from pgbench -S -M prepared"
    log "ok: node $n served $d selects of pgbench -S -M prepared"
done
