#!/usr/bin/env bash
# 044.pool_activity: what Pgpool-II 4.5 and 4.7 added to SHOW POOL_POOLS and
# pcp_proc_info, and the pcp_node_info record of 4.4-4.7, on 3 nodes whose reads all
# go to node 1 (backend_weight 0, 1, 0):
# - SHOW POOL_POOLS has 4.7's 21 columns; a session running a read shows, on its
#   child's row for node 1, load_balance_node 1, client_host 127.0.0.1, its psql's own
#   port as client_port and the statement it runs; its rows for nodes 0 and 2 show
#   load_balance_node 0 and no statement (the read went to node 1 only);
# - a write running in another session shows on that child's node 0 row (where it
#   went), while its load-balance node stays node 1; a statement longer than 1023
#   bytes is cut to 1023 as in Pgpool-II;
# - the last statement stays on the child's rows once the client is gone (4.7);
# - pgbench -M prepared shows "Execute: SELECT abalance ..." (4.7's form for the
#   extended protocol) on its node 1 row, and one whose reads go to the primary (a
#   session on one node) on its node 0 row;
# - Debian's Pgpool-II 4.3.5 pcp_proc_info (if installed) still reads the longer
#   records: database, user, pids and status as SHOW POOL_POOLS shows them;
# - pcp_node_info: with no release header (4.3's sample has none) the 4.3 record,
#   which Debian's 4.3.5 tool prints right; after a reload with a 4.7 header line the
#   4.4-4.7 record (delay-by-time flag before the delay), which our pcp_node_info
#   still prints right.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_proc_info" ] || fail "$PCP_BIN/pcp_proc_info missing: cargo build --release"

setup_cluster 3 s 'backend_weight0 = 0' 'backend_weight1 = 1' 'backend_weight2 = 0' \
    'num_init_children = 4' 'max_pool = 1' 'health_check_period = 1' 'sr_check_period = 1' \
    "read_only_function_list = 'pg_sleep'" "app_name_redirect_preference_list = 'single044:primary'"
export PCPPASSFILE=$TEST_DIR/etc/pcppass
U=(-h 127.0.0.1 -p "$PCP_PORT" -U "$PGSUPERUSER" -w)

psql_pgpool -c 'create table t044 (i int)' >/dev/null || fail "create table"
wait_replay

# SHOW POOL_POOLS as "pid|node|lb|host|port|statement" lines (columns by name).
pools() {
    "$PGBIN/psql" -X -A -F '|' -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
        -c 'show pool_pools' | awk -F'|' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        /^\(/ { next }
        { print $col["pool_pid"] "|" $col["backend_id"] "|" $col["load_balance_node"] "|" \
                $col["client_host"] "|" $col["client_port"] "|" $col["statement"] }'
}
header=$("$PGBIN/psql" -X -A -F '|' -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
    -c 'show pool_pools' | head -1)
assert_eq "pool_pid|start_time|client_connection_count|pool_id|backend_id|database|username|backend_connection_time|client_connection_time|client_disconnection_time|client_idle_duration|majorversion|minorversion|pool_counter|pool_backendpid|pool_connected|status|load_balance_node|client_host|client_port|statement" \
    "$header" "SHOW POOL_POOLS columns (Pgpool-II 4.7)"

# --- a read and a write running in two sessions ------------------------------------
READ="select pg_sleep(6) /* 044 read */"
WRITE="insert into t044 select 1 from pg_sleep(6) /* 044 write */"
psql_pgpool -c "$READ" >"$WORK_DIR/read.out" 2>&1 &
read_job=$!
psql_pgpool -c "$WRITE" >"$WORK_DIR/write.out" 2>&1 &
write_job=$!
wait_active "$READ" 1 || fail "the read is not running on node 1"
wait_active "$WRITE" 0 || fail "the write is not running on node 0"
rows=$(pools)
log "SHOW POOL_POOLS:"$'\n'"$rows"
read_pid=$(awk -F'|' -v s="$READ" '$6 == s { print $1 }' <<<"$rows")
write_pid=$(awk -F'|' -v s="$WRITE" '$6 == s { print $1 }' <<<"$rows")
[ -n "$read_pid" ] || pgpool_bug "no SHOW POOL_POOLS row shows the read's statement"
[ -n "$write_pid" ] || pgpool_bug "no SHOW POOL_POOLS row shows the write's statement"
row() { awk -F'|' -v p="$1" -v n="$2" '$1 == p && $2 == n { print $3 "|" $4 "|" $6 }' <<<"$rows"; }
assert_eq "1|127.0.0.1|$READ" "$(row "$read_pid" 1)" "read session, node 1: load-balance node, host, statement"
assert_eq "0|127.0.0.1|" "$(row "$read_pid" 0)" "read session, node 0: no statement"
assert_eq "0|127.0.0.1|" "$(row "$read_pid" 2)" "read session, node 2: no statement"
assert_eq "0|127.0.0.1|$WRITE" "$(row "$write_pid" 0)" "write session, node 0: the write"
assert_eq "1|127.0.0.1|" "$(row "$write_pid" 1)" "write session, node 1: its load-balance node"
# client_port: the port of one of the two psql connections to pgpool.
ports=$(ss -Htn state established "( dport = :$PGPOOL_PORT )" | awk '{ sub(/.*:/, "", $3); print $3 }')
for p in "$read_pid" "$write_pid"; do
    cport=$(awk -F'|' -v p="$p" '$1 == p && $2 == 1 { print $5 }' <<<"$rows")
    grep -qxF "$cport" <<<"$ports" || pgpool_bug "client_port [$cport] of child $p is no client's port ($(echo $ports))"
    log "ok: child $p: client_port $cport is its client's"
done

# Debian's 4.3.5 pcp_proc_info reads the 21-field records (it copies 17).
if [ -x /usr/sbin/pcp_proc_info ]; then
    deb=$(/usr/sbin/pcp_proc_info "${U[@]}" -P "$read_pid" 2>&1) || fail "Debian's pcp_proc_info: $deb"
    log "Debian's pcp_proc_info -P $read_pid:"$'\n'"$deb"
    assert_eq 3 "$(grep -c "^test $PGSUPERUSER " <<<"$deb")" "Debian's pcp_proc_info: database and user on each node's line"
    assert_eq 3 "$(grep -c " $read_pid [012] Execute command\$" <<<"$deb")" "Debian's pcp_proc_info: pid, node and status end each line"
    ours=$("$PCP_BIN/pcp_proc_info" "${U[@]}" -P "$read_pid" 2>&1) || fail "our pcp_proc_info: $ours"
    ends() { awk '{ print $1, $2, $(NF-6), $(NF-5), $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF }'; }
    assert_eq "$(ends <<<"$deb")" "$(ends <<<"$ours")" "our pcp_proc_info prints what Debian's does"
else
    log "Debian's pcp_proc_info is not installed: the 4.3 client check is skipped"
fi
wait "$read_job" || fail "the read failed: $(cat "$WORK_DIR/read.out")"
wait "$write_job" || fail "the write failed: $(cat "$WORK_DIR/write.out")"

# The statement stays on the child's rows after its client left (as in 4.7; the child
# may be serving the SHOW's own session by now, which sends nothing to a node).
rows=$(pools)
assert_eq "127.0.0.1|$READ" "$(row "$read_pid" 1 | cut -d'|' -f2-)" "after the session: the last statement stays"

# --- a statement longer than Pgpool-II keeps ----------------------------------------
long="select pg_sleep(4), '$(printf 'x%.0s' $(seq 1 1500))' /* 044 long */"
psql_pgpool -c "$long" >/dev/null 2>&1 &
long_job=$!
long_row() { pools | awk -F'|' '$2 == 1 && $6 ~ /^select pg_sleep\(4\), .xxx/ { print $6 }'; }
has_long() { [ -n "$(long_row)" ]; }
wait_until 10 has_long || pgpool_bug "no SHOW POOL_POOLS row shows the long statement"
got=$(long_row)
assert_eq 1023 "${#got}" "statement cut to 1023 bytes"
assert_eq "${long:0:1023}" "$got" "statement: the first 1023 bytes"
wait "$long_job" || fail "the long read failed"

# --- the extended protocol: "Execute: <statement>" as Pgpool-II 4.7 shows it -----------
pgbench_pgpool -i -q >"$WORK_DIR/init.out" 2>&1 || fail "pgbench -i: $(tail -3 "$WORK_DIR/init.out")"
wait_replay
pgbench_pgpool -n -S -M prepared -c 1 -T 4 >"$WORK_DIR/bench.out" 2>&1 &
bench_job=$!
# reads of this one go to the primary: a session on one node (the single-node relay)
PGAPPNAME=single044 pgbench_pgpool -n -S -M prepared -c 1 -T 4 >"$WORK_DIR/bench0.out" 2>&1 &
bench0_job=$!
exec_rows() { pools | awk -F'|' '$6 ~ /^Execute: / { print $2 "|" $3 "|" $6 }' | sort -u; }
has_exec() { [ -n "$(exec_rows)" ]; }
has_both() { [ "$(exec_rows | grep -c '^\([01]\)|1|')" = 2 ]; }
wait_until 10 has_both || pgpool_bug "no two SHOW POOL_POOLS rows show an Execute: $(exec_rows)"
assert_eq 'Execute: SELECT abalance FROM pgbench_accounts WHERE aid = $1;' \
    "$(exec_rows | sed -n 's/^1|1|//p')" "pgbench -M prepared: its Execute on its load-balance node's row"
assert_eq 'Execute: SELECT abalance FROM pgbench_accounts WHERE aid = $1;' \
    "$(exec_rows | sed -n 's/^0|1|//p')" "pgbench -M prepared reading from the primary: its Execute on node 0's row"
wait "$bench_job" || fail "pgbench -M prepared: $(tail -3 "$WORK_DIR/bench.out")"
wait "$bench0_job" || fail "pgbench -M prepared (primary): $(tail -3 "$WORK_DIR/bench0.out")"

# --- pcp_node_info records ----------------------------------------------------------
expect_node1="127.0.0.1 $(node_port 1) 2 1.000000 up up standby standby 0 streaming async"
mask() { sed -E 's/ [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$//'; }
streaming() { "$PCP_BIN/pcp_node_info" "${U[@]}" -n 1 | grep -q ' streaming async '; }
wait_until 10 streaming || fail "node 1 not streaming: $("$PCP_BIN/pcp_node_info" "${U[@]}" -n 1)"
node1() { "$1/pcp_node_info" "${U[@]}" -n 1 2>&1 | mask; }
assert_eq "$expect_node1" "$(node1 "$PCP_BIN")" "our pcp_node_info, 4.3 record"
if [ -x /usr/sbin/pcp_node_info ]; then
    assert_eq "$expect_node1" "$(node1 /usr/sbin)" "Debian's 4.3.5 pcp_node_info, 4.3 record"
fi
sed -i '1i # Pgpool-II 4.7 configuration file' "$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >"$WORK_DIR/reload.out" 2>&1 || fail "pgpool reload: $(cat "$WORK_DIR/reload.out")"
has_flag() { [ "$(node1 "$PCP_BIN")" = "$expect_node1" ] && [ -x /usr/sbin/pcp_node_info ] \
    && [ "$(node1 /usr/sbin)" != "$expect_node1" ]; }
if [ -x /usr/sbin/pcp_node_info ]; then
    # the 4.3 tool reads the 4.4 record's flag as the delay: the record changed
    wait_until 10 has_flag || pgpool_bug "no 4.4 record after the reload: ours [$(node1 "$PCP_BIN")], Debian's [$(node1 /usr/sbin)]"
    log "ok: Debian's 4.3.5 tool misreads the 4.4-4.7 record, as with Pgpool-II 4.7: $(node1 /usr/sbin)"
fi
assert_eq "$expect_node1" "$(node1 "$PCP_BIN")" "our pcp_node_info, 4.4-4.7 record"
log "ok: 044.pool_activity"
