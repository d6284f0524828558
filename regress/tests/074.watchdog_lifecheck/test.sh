#!/usr/bin/env bash
# 074.watchdog_lifecheck: the lifechecks beyond heartbeats, on three pgpool nodes on
# loopback. wd_lifecheck_method = query (wd_interval 1 s, wd_life_point 2): node 2's
# pgpool children are frozen (SIGSTOP; its watchdog process still runs and its links
# look fine): nodes 0 and 1 find it not answering the lifecheck query and mark it
# LOST, node 2 finds itself not answering and goes LOST too; thawed, it is back.
# trusted_servers with trusted_server_command (a per-node file stands for the
# upstream router): node 0, the leader, loses its upstream, goes LOST and gives up
# the VIP, node 1 takes it; the upstream returns and node 0 leads again. As root,
# wd_monitoring_interfaces_list on node 1 names one end of a veth pair the test
# creates: the far end down (carrier lost) puts node 1 IN NETWORK TROUBLE, up brings
# it back. No VIP
# sample ever shows two holders.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# shellcheck source=regress/lib/watchdog.sh
source "$REGRESS_DIR/lib/watchdog.sh"

IFACE=pgrwd074a
PEER=pgrwd074b
WATCH_IFACE=false
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
    ip link del "$IFACE" 2>/dev/null
    ip link add "$IFACE" type veth peer name "$PEER" && ip link set "$IFACE" up \
        && ip link set "$PEER" up && WATCH_IFACE=true
fi
wd_extra_conf() {
    echo "wd_lifecheck_method = query"
    echo "wd_interval = 1"
    echo "wd_life_point = 2"
    echo "wd_lifecheck_user = '$PGSUPERUSER'"
    echo "wd_lifecheck_dbname = 'postgres'"
    echo "trusted_servers = 'gw'"
    echo "trusted_server_command = 'test -e $WORK_DIR/reach.$1.%h'"
    if [ "$1" = 1 ] && $WATCH_IFACE; then echo "wd_monitoring_interfaces_list = '$IFACE'"; fi
}
setup_cluster 2 s 'num_init_children = 4'
$WATCH_IFACE && add_cleanup "ip link del $IFACE"
wd_configure 4
for k in 0 1 2; do touch "$WORK_DIR/reach.$k.gw"; done
wd_start_sampler

for k in 0 1 2; do start_node "$k"; done
wait_until 30 all_agree_leader_is 0 0 1 2 || {
    for k in 0 1 2; do wd_info "$k"; done
    fail "the three nodes do not agree that node 0 leads"
}
wait_until 10 holds_vip 0 || fail "node 0 did not bring up the VIP"
two_standbys() { [ "$(standbys_seen_by 0)" = 2 ]; }
wait_until 10 two_standbys || fail "node 0 does not see two standbys: $(wd_info 0)"
grep -E '"(wd_|trusted_)[a-z_]*" is set but not supported' "$PGPOOL_LOG" \
    && fail "a lifecheck parameter is reported unsupported"

# Node 2's pgpool hangs while its watchdog runs on.
frozen=$(ps -o pid=,args= --ppid "$(node_pid 2)" | grep -v 'watchdog' | awk '{ print $1 }' | tr '\n' ' ')
[ -n "$frozen" ] || fail "node 2 has no children to freeze"
# shellcheck disable=SC2086
add_cleanup "kill -CONT $frozen 2>/dev/null"
t0=$(now_ms)
# shellcheck disable=SC2086
kill -STOP $frozen
lost_on_both() { [ "$(state_seen_by 0 2)" = LOST ] && [ "$(state_seen_by 1 2)" = LOST ]; }
wait_until 20 lost_on_both || fail "node 2 is not LOST on nodes 0 and 1: $(wd_info 0)"
log "nodes 0 and 1 found node 2's pgpool not answering in $(($(now_ms) - t0)) ms"
grep -q "lifecheck failed 2 times. pgpool 2 " "$PGPOOL_LOG" || fail "node 0 did not log the failed lifecheck"
wait_until 10 grep -q "we are disconnected from the network" "$(node_log 2)" \
    || fail "node 2 did not find itself unresponsive"
holds_vip 0 || fail "node 0 lost the VIP over a standby's hang"
# shellcheck disable=SC2086
kill -CONT $frozen
wait_until 20 two_standbys || fail "node 2 did not come back after it thawed: $(wd_info 0)"
log "a hung pgpool is LOST by query lifecheck, and back when it answers"

# The leader loses its upstream.
t0=$(now_ms)
rm -f "$WORK_DIR/reach.0.gw"
wait_until 15 holds_vip 1 || fail "node 1 did not take the VIP from the leader cut off upstream"
log "node 1 took the VIP $(($(now_ms) - t0)) ms after node 0 lost its trusted server"
grep -q "failed to connect to any trusted servers" "$PGPOOL_LOG" || fail "node 0 did not log the lost upstream"
assert_eq LOST "$(state_seen_by 0 0)" "node 0 reports itself LOST"
touch "$WORK_DIR/reach.0.gw"
wait_until 30 all_agree_leader_is 0 0 1 2 || fail "node 0 did not lead again: $(wd_info 1)"
wait_until 10 holds_vip 0 || fail "the VIP did not return to node 0"
log "a leader cut off upstream resigns, and leads again when it is reachable"

if $WATCH_IFACE; then
    ip link set "$PEER" down
    in_trouble() { [ "$(state_seen_by 1 1)" = "IN NETWORK TROUBLE" ]; }
    wait_until 10 in_trouble || fail "node 1 is not IN NETWORK TROUBLE: $(wd_info 1)"
    wait_until 15 bash -c "[ \"\$(PCPPASSFILE=$PCPPASSFILE $PCP_BIN/pcp_watchdog_info -h localhost -p $(pcp_port_of 0) -w | grep -c ' 8 LOST ')\" = 1 ]" \
        || fail "node 0 does not see node 1 lost: $(wd_info 0)"
    grep -q "all monitored interfaces are down" "$(node_log 1)" || fail "node 1 did not log its interfaces down"
    ip link set "$PEER" up
    wait_until 20 two_standbys || fail "node 1 did not come back with its interface: $(wd_info 0)"
    log "a node whose monitored interfaces are down is IN NETWORK TROUBLE until one is up"
else
    log "not root or no iproute2: wd_monitoring_interfaces_list not exercised"
fi

wd_finish_sampler
log "ok"
