#!/usr/bin/env bash
# 073.watchdog_wd_cli: wd_lifecheck_method = external. Three pgpool nodes on loopback
# leave the verdict on who is alive to an outside system, which reports through
# wd_cli and the watchdog's command socket (wd_ipc_socket_dir). wd_cli --info lists
# the nodes (Debian's wd_cli, where installed, prints the same against ours); a node
# reported DEAD to two nodes is LOST there and its links are cut, ALIVE brings it
# back; the leader told that it is itself dead gives up the VIP and node 1 takes it,
# and it leads again once reported ALIVE. A wrong auth key is refused. No VIP
# sample ever shows two holders.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# shellcheck source=regress/lib/watchdog.sh
source "$REGRESS_DIR/lib/watchdog.sh"

wd_extra_conf() { echo "wd_lifecheck_method = external"; }
setup_cluster 2 s 'num_init_children = 4'
wd_configure 4
wd_start_sampler

WD_CLI=$PCP_BIN/wd_cli
cli() { "$WD_CLI" -f "$(node_dir "$1")/etc/pgpool.conf" "${@:2}"; }

for k in 0 1 2; do start_node "$k"; done
wait_until 30 all_agree_leader_is 0 0 1 2 || {
    for k in 0 1 2; do wd_info "$k"; done
    fail "the three nodes do not agree that node 0 leads"
}
wait_until 10 holds_vip 0 || fail "node 0 did not bring up the VIP"
grep -q "IPC socket path: \"$WORK_DIR/.s.PGPOOLWD_CMD.$WD_BASE\"" "$PGPOOL_LOG" \
    || fail "node 0 did not open its command socket"
for k in 0 1 2; do
    grep -q "sending and receiving heartbeats" "$(node_log "$k")" \
        && fail "node $k sends heartbeats although the lifecheck is external"
done

# --info, plain and verbose, ours and Pgpool-II's.
info=$(cli 0 --info --all -v)
assert_contains "$info" "Total Watchdog nodes configured for lifecheck:    3" "wd_cli counts three nodes"
assert_contains "$info" "Node Status:       LEADER" "wd_cli shows the leader"
assert_eq 2 "$(grep -c 'Node Status:       STANDBY' <<<"$info")" "wd_cli shows two standbys"
one=$(cli 1 --info -n 2)
assert_contains "$one" "2 0 \"STANDBY\"\"localhost:$(pgpool_port_of 2) " "wd_cli -n picks one node"
if [ -x /usr/sbin/wd_cli ]; then
    # Pgpool-II 4.3.5's wd_cli needs a pgpool.conf (without one it stops on an
    # internal error); a minimal one its parser knows, naming node 0.
    mkdir -p "$WORK_DIR/theirs"
    {
        echo "use_watchdog = on"
        echo "wd_ipc_socket_dir = '$WORK_DIR'"
        echo "wd_authkey = 'regress-wd'"
        echo "hostname0 = 'localhost'"
        echo "wd_port0 = $WD_BASE"
        echo "pgpool_port0 = $(pgpool_port_of 0)"
    } >"$WORK_DIR/theirs/pgpool.conf"
    echo 0 >"$WORK_DIR/theirs/pgpool_node_id"
    theirs=$(/usr/sbin/wd_cli -f "$WORK_DIR/theirs/pgpool.conf" --info --all -v 2>/dev/null)
    assert_eq "$(cli 0 --info --all -v 2>/dev/null)" "$theirs" "Debian's wd_cli --info prints what ours prints"
    /usr/sbin/wd_cli -f "$WORK_DIR/theirs/pgpool.conf" -k wrong --info --all >/dev/null 2>&1 \
        && fail "Debian's wd_cli got the node list with a wrong key"
fi
"$WD_CLI" -s "$WORK_DIR" -p "$WD_BASE" -k wrong --info --all >/dev/null 2>&1 \
    && fail "a wrong auth key was accepted"
out=$("$WD_CLI" -I maybe -n 1 2>&1) && fail "wd_cli accepted a status of 'maybe'"
assert_contains "$out" "Allowed options are DEAD or ALIVE" "bad status message"
log "wd_cli lists the nodes"

# The outside system finds node 2 dead and tells nodes 0 and 1.
for k in 0 1; do
    cli "$k" --inform DEAD -n 2 -m "node 2 does not answer the monitor" 2>/dev/null \
        || fail "wd_cli could not inform node $k"
done
lost_on_both() { [ "$(state_seen_by 0 2)" = LOST ] && [ "$(state_seen_by 1 2)" = LOST ]; }
wait_until 10 lost_on_both || fail "node 2 is not LOST on nodes 0 and 1: $(wd_info 0)"
grep -q "received node status change ipc message" "$PGPOOL_LOG" || fail "node 0 did not log the report"
grep -q "node 2 does not answer the monitor" "$PGPOOL_LOG" || fail "node 0 did not log the message"
assert_contains "$(wd_info 0 -v)" "QUORUM EXIST" "two of three keep the quorum"
holds_vip 0 || fail "node 0 lost the VIP over a standby's death"
for k in 0 1; do cli "$k" --inform ALIVE -n 2 2>/dev/null || fail "inform ALIVE on $k"; done
back() { [ "$(standbys_seen_by 0)" = 2 ]; }
wait_until 15 back || fail "node 2 did not come back: $(wd_info 0)"
log "a node reported dead is LOST, and back when reported alive"

# The leader is told that it is itself cut off.
t0=$(now_ms)
cli 0 --inform DEAD -n 0 -m "this host lost its uplink" 2>/dev/null || fail "inform node 0 about itself"
wait_until 15 holds_vip 1 || fail "node 1 did not take the VIP from the cut-off leader"
log "node 1 took the VIP $(($(now_ms) - t0)) ms after node 0 was reported dead"
assert_eq LOST "$(state_seen_by 0 0)" "node 0 reports itself LOST"
grep -q "we are disconnected from the network" "$PGPOOL_LOG" || fail "node 0 did not log its trouble"
cli 0 --inform ALIVE -n 0 2>/dev/null || fail "inform node 0 alive"
wait_until 30 all_agree_leader_is 0 0 1 2 || fail "node 0 did not lead again: $(wd_info 1)"
wait_until 10 holds_vip 0 || fail "the VIP did not return to node 0"
log "a cut-off leader resigns, and leads again when reported alive"

wd_finish_sampler
log "ok"
