#!/usr/bin/env bash
# 001.basic: psql over TCP and the Unix socket; pgbench through pgpool with
# every query mode and with a new connection per transaction.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s

# Reads may be load balanced: a select answers from one of the nodes.
node_ports="$(node_port 0) $(node_port 1)"
# TCP
got=$(psql_pgpool -c "select 'tcp', inet_server_port()") || fail "psql over TCP failed"
assert_contains " $node_ports " " ${got#tcp|} " "port of the node that answered over TCP ($got)"
assert_eq "tcp" "${got%%|*}" "select over TCP"
# Unix socket in /tmp
sock=/tmp/.s.PGSQL.$PGPOOL_PORT
[ -S "$sock" ] || fail "no Unix socket $sock"
got=$("$PGBIN/psql" -X -At -h /tmp -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test \
    -c "select 'unix', inet_server_port()") || fail "psql over the Unix socket failed"
assert_contains " $node_ports " " ${got#unix|} " "port of the node that answered over the Unix socket ($got)"
assert_eq "unix" "${got%%|*}" "select over the Unix socket"

log "pgbench -i -s 5"
# pgbench -i loads with COPY FROM STDIN; it hung with the load-balancing
# relay in progress at 1bcb92a (see 002.copy): 120 s is a hang detector.
timeout 120 "$PGBIN/pgbench" -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -i -s 5 -q test \
    >"$WORK_DIR/init.out" 2>&1
rc=$?
cat "$WORK_DIR/init.out"
[ "$rc" = 124 ] && pgpool_bug "pgbench -i -s 5 (COPY FROM STDIN) hangs through pgpool (120 s)"
[ "$rc" = 0 ] || fail "pgbench -i failed ($rc)"
assert_eq 500000 "$(psql_node 0 -c 'select count(*) from pgbench_accounts')" \
    "pgbench_accounts rows on node 0"

# run_pgbench LABEL ARGS...: 5 s, 8 clients, 2 threads; zero failed
# transactions, some processed, tps > 0.
run_pgbench() {
    local label=$1 out
    shift
    out=$WORK_DIR/pgbench.$label.out
    log "pgbench $* -n -T 5 -c 8 -j 2"
    pgbench_pgpool "$@" -n -T 5 -c 8 -j 2 >"$out" 2>&1
    local rc=$?
    cat "$out"
    [ "$rc" = 0 ] || fail "pgbench $label exited with $rc"
    grep -q '^number of failed transactions: 0 ' "$out" \
        || fail "pgbench $label: failed transactions (or no such line)"
    local processed tps
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    if [ -z "$processed" ] || [ "$processed" -le 0 ]; then
        fail "pgbench $label: no transaction processed"
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
    if [ -z "$tps" ] || ! awk -v t="$tps" 'BEGIN { exit !(t > 0) }'; then
        fail "pgbench $label: tps is [$tps]"
    fi
    grep -qi 'error' "$out" && fail "pgbench $label printed an error"
    log "ok: pgbench $label: $processed transactions, tps $tps"
}

run_pgbench simple -M simple
run_pgbench extended -M extended
run_pgbench prepared -M prepared
run_pgbench connect-select -C -S

# pgbench wrote through pgpool: history rows exist on the primary and reached
# the standby by streaming; pgpool answers the same count.
h0=$(psql_node 0 -c 'select count(*) from pgbench_history')
[ "$h0" -gt 0 ] || fail "no pgbench_history rows on node 0"
log "ok: $h0 pgbench_history rows on node 0"
wait_replay
assert_eq "$h0" "$(psql_node 1 -c 'select count(*) from pgbench_history')" "pgbench_history on node 1"
assert_eq "$h0" "$(psql_pgpool -c 'select count(*) from pgbench_history')" \
    "pgbench_history through pgpool"
