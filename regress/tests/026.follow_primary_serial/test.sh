#!/usr/bin/env bash
# 026.follow_primary_serial: follows run one at a time. On 3 streaming nodes with a
# slow follow_primary_command, the primary (node 0) is detached: node 1 is promoted
# and a follow starts for nodes 0 and 2; its command for node 2 attaches node 2 at
# once and then takes 4 s more. Meanwhile node 1, the new primary, is detached too:
# node 2 is promoted and a second follow (nodes 0 and 1) is due. It must start only
# after every command of the first one has ended, and pgpool says it waits.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_detach_node" ] || fail "$PCP_BIN/pcp_detach_node missing: cargo build --release"

FOLLOW_LOG=$TEST_DIR/log/follow.log
FOLLOW=$TEST_DIR/etc/slow_follow.sh
setup_cluster 3 s 'health_check_period = 0' "follow_primary_command = '$FOLLOW %d %m'"
export PCPPASSFILE=$TEST_DIR/etc/pcppass
cat >"$FOLLOW" <<SCRIPT
#!/usr/bin/env bash
# slow_follow.sh NODE NEW_PRIMARY (written by 026.follow_primary_serial)
echo "start \$1 \$2 \$(date +%s%N)" >>"$FOLLOW_LOG"
if [ "\$1" = 2 ] && [ "\$2" = 1 ]; then
    PCPPASSFILE=$PCPPASSFILE "$PCP_BIN/pcp_attach_node" -h 127.0.0.1 -p $PCP_PORT \
        -U "$PGSUPERUSER" -w -n 2 >/dev/null 2>&1
    sleep 4
else
    sleep 1
fi
echo "end \$1 \$2 \$(date +%s%N)" >>"$FOLLOW_LOG"
SCRIPT
chmod 755 "$FOLLOW"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 1
pcp() { local t=$1; shift; "$PCP_BIN/$t" -h 127.0.0.1 -p "$PCP_PORT" -U "$PGSUPERUSER" -w "$@"; }
status_of() { psql_pgpool -c 'show pool_nodes' | awk -F'|' -v n="$1" '$1 == n { print $4 }'; }
role_of() { psql_pgpool -c 'show pool_nodes' | awk -F'|' -v n="$1" '$1 == n { print $7 }'; }

pcp pcp_detach_node -n 0 >/dev/null || fail "pcp_detach_node -n 0"
node1_primary() { [ "$(role_of 1)" = primary ]; }
wait_until 30 node1_primary || fail "node 1 not promoted: $(psql_pgpool -c 'show pool_nodes')"
node2_up() { [ "$(status_of 2)" = up ] || [ "$(status_of 2)" = waiting ]; }
wait_until 20 node2_up || fail "the first follow did not attach node 2: $(cat "$FOLLOW_LOG")"
log "first follow running: $(tr '\n' ';' <"$FOLLOW_LOG")"
pcp pcp_detach_node -n 1 >/dev/null || fail "pcp_detach_node -n 1"
both_done() {
    [ "$(grep -c '^end [02] 1 ' "$FOLLOW_LOG" 2>/dev/null)" = 2 ] \
        && [ "$(grep -c '^end [01] 2 ' "$FOLLOW_LOG" 2>/dev/null)" = 2 ]
}
wait_until 40 both_done || fail "the follows did not both run: $(cat "$FOLLOW_LOG")"
log "follow log: $(tr '\n' ';' <"$FOLLOW_LOG")"

last_end_first=$(awk '$1 == "end" && $3 == 1 { print $4 }' "$FOLLOW_LOG" | sort -n | tail -1)
first_start_second=$(awk '$1 == "start" && $3 == 2 { print $4 }' "$FOLLOW_LOG" | sort -n | head -1)
[ -n "$last_end_first" ] && [ -n "$first_start_second" ] || fail "follow log incomplete"
[ "$first_start_second" -gt "$last_end_first" ] \
    || pgpool_bug "the second follow started $(((last_end_first - first_start_second) / 1000000)) ms before the first ended"
grep -q "follow primary commands wait for the running follow primary process" "$PGPOOL_LOG" \
    || pgpool_bug "pgpool's log does not say the second follow waits"
log "ok: 026.follow_primary_serial (second follow started $(((first_start_second - last_end_first) / 1000000)) ms after the first ended)"
