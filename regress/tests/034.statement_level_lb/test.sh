#!/usr/bin/env bash
# 034.statement_level_lb: statement_level_load_balance = on over 3 nodes with
# weights 0:1:1: within one session, reads outside transactions spread over
# both standbys; a transaction keeps its reads on one node; SET reaches every
# node of the session; prepared statements (pgbench -M prepared) follow their
# executions to whichever standby (Parse replayed there) without failures.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    'backend_weight0 = 0' \
    'statement_level_load_balance = on' \
    'notice_per_node_statement = on'

psql_pgpool -q -c 'create table slt (i int)' -c 'insert into slt values (1)' || fail "schema"
wait_replay

args=()
for i in $(seq 1 40); do args+=(-c "select i, $i from slt"); done
nodes=$(psql_pgpool "${args[@]}" 2>&1 >/dev/null | sed -n 's/^NOTICE:  DB node id: \([0-9]*\) statement: .*/\1/p')
for n in 0 1 2; do cnt[n]=$(grep -c "^$n\$" <<<"$nodes"); done
log "40 selects in one session: node0 ${cnt[0]} node1 ${cnt[1]} node2 ${cnt[2]}"
assert_eq 0 "${cnt[0]}" "selects on node 0 (weight 0)"
[ "${cnt[1]}" -ge 8 ] && [ "${cnt[2]}" -ge 8 ] || fail "reads did not spread over the standbys: ${cnt[1]} / ${cnt[2]}"

for t in 1 2 3 4 5; do
    tx=$(psql_pgpool -c 'begin' -c 'select i, 1 from slt' -c 'select i, 2 from slt' -c 'select i, 3 from slt' -c 'commit' \
        2>&1 >/dev/null | sed -n "s/^NOTICE:  DB node id: \([0-9]*\) statement: select i, .*/\1/p" | sort -u | wc -l)
    assert_eq 1 "$tx" "reads of transaction $t on one node"
done

# SET goes to every node of the session: the setting holds wherever reads go.
args=(-q -c "set application_name = 'sl_check'")
for i in $(seq 1 12); do args+=(-c 'show application_name'); done
vals=$(psql_pgpool "${args[@]}" 2>/dev/null | sort -u)
assert_eq "sl_check" "$vals" "SET seen by every read"

before=$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{printf "%s ", $9}')
printf 'select i from slt;\n' >"$WORK_DIR/p.sql"
pgbench_pgpool -n -M prepared -c 2 -t 100 -f "$WORK_DIR/p.sql" >"$WORK_DIR/p.out" 2>&1 \
    || { cat "$WORK_DIR/p.out"; fail "pgbench -M prepared"; }
assert_contains "$(cat "$WORK_DIR/p.out")" "number of failed transactions: 0" "prepared statements"
read -r -a b <<<"$before"
after=$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{printf "%s ", $9}')
read -r -a a <<<"$after"
d1=$((a[1] - b[1])); d2=$((a[2] - b[2])); d0=$((a[0] - b[0]))
log "pgbench -M prepared, 2 sessions x 100: select_cnt +$d0 / +$d1 / +$d2"
assert_eq 0 "$d0" "prepared selects on node 0"
[ "$d1" -ge 40 ] && [ "$d2" -ge 40 ] || fail "prepared executions did not spread: $d1 / $d2"
log "ok: statement level load balancing"
