#!/usr/bin/env bash
# 070.watchdog: three pgpool nodes over one streaming cluster, on loopback, watch
# each other. Node 0 (highest wd_priority) leads; pcp_watchdog_info on every node
# names the same leader, two STANDBY nodes and QUORUM EXIST; the "virtual IP" is a
# file each node's if_up_cmd / if_down_cmd creates and removes, and a sampler reads
# the holders every 100 ms for the whole test. Node 0 is killed with SIGKILL (its
# address goes with it): node 1 takes the VIP within wd_heartbeat_deadtime + 5 s.
# Node 0 comes back: leadership returns to it by priority, the VIP follows. Node 0
# stops cleanly: the others log that it is shutting down and node 1 leads again.
# With one node left of three there is no quorum: it reports QUORUM ABSENT and
# holds no VIP. No sample ever shows two holders. Debian's pcp_watchdog_info, where
# installed, prints what ours prints.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

# shellcheck source=regress/lib/watchdog.sh
source "$REGRESS_DIR/lib/watchdog.sh"

setup_cluster 2 s 'num_init_children = 4'
DEADTIME=4
wd_configure "$DEADTIME"
wd_start_sampler

for k in 0 1 2; do start_node "$k"; done
wait_until 30 pgpool_answers || fail "node 0 does not answer"
wait_until 30 all_agree_leader_is 0 0 1 2 || {
    for k in 0 1 2; do wd_info "$k"; done
    fail "the three nodes do not agree that node 0 leads"
}
two_standbys() { [ "$(standbys_seen_by 0)" = 2 ]; }
wait_until 10 two_standbys || fail "node 0 does not see two standbys: $(wd_info 0)"
first=$(wd_info 0 | head -1)
assert_contains "$first" "3 3 " "pcp_watchdog_info's cluster line counts three members"
verbose=$(wd_info 1 -v)
assert_contains "$verbose" "Quorum state             : QUORUM EXIST" "quorum with three nodes"
assert_contains "$verbose" "Leader Node Name         : localhost:$(pgpool_port_of 0) " "leader name"
wait_until 10 holds_vip 0 || fail "node 0 did not bring up the VIP"
grep -q "I am the cluster leader node. Starting escalation process" "$PGPOOL_LOG" \
    || fail "node 0 did not log its escalation"
grep -q "successfully joined the watchdog cluster as standby node" "$(node_log 1)" \
    || fail "node 1 did not log that it joined as standby"
[ -e "$VIPS/escalated.0" ] || fail "wd_escalation_command did not run on node 0"
for k in 0 1 2; do
    grep -q "sending and receiving heartbeats on port $((WD_BASE + 10 + k))" "$(node_log "$k")" \
        || fail "node $k does not run its UDP heartbeat"
done
assert_not_contains "$(cat "$PGPOOL_LOG")" "heartbeat_port\" is set but not supported" "heartbeat parameters are implemented"
log "node 0 leads and holds the VIP"

if [ -x /usr/sbin/pcp_watchdog_info ]; then
    theirs=$(/usr/sbin/pcp_watchdog_info -h localhost -p "$(pcp_port_of 0)" -w -v 2>&1)
    ours=$(wd_info 0 -v)
    assert_eq "$ours" "$theirs" "Debian's pcp_watchdog_info -v shows what ours shows"
fi

# The leader's host dies.
t0=$(now_ms)
crash_node 0
wait_until $((DEADTIME + 5)) holds_vip 1 || fail "node 1 did not take the VIP within deadtime + 5 s"
log "node 1 took the VIP $(($(now_ms) - t0)) ms after node 0 died"
wait_until 10 all_agree_leader_is 1 1 2 || fail "nodes 1 and 2 do not agree that node 1 leads"
assert_contains "$(wd_info 2 -v)" "QUORUM EXIST" "two of three keep the quorum"

# It comes back: priority gives it the lead again, and the VIP follows.
start_node 0
wait_until 30 all_agree_leader_is 0 0 1 2 || fail "node 0 did not lead again after its return"
wait_until 10 holds_vip 0 || fail "the VIP did not return to node 0"
[ -e "$VIPS/held.1" ] && fail "node 1 still holds the VIP"
log "node 0 leads again"

# A clean stop is announced.
stop_node 0
wait_until 10 grep -q "is shutting down" "$(node_log 1)" \
    || fail "node 1 did not hear that node 0 shuts down"
wait_until 10 holds_vip 1 || fail "node 1 did not take the VIP after node 0 stopped"

# One of three: no quorum, no VIP, but still a leader by Pgpool-II's rule.
stop_node 1
wait_until 10 bash -c "[ ! -e '$VIPS/held.1' ]" || fail "node 1 kept the VIP after stopping"
sleep 2
verbose=$(wd_info 2 -v)
assert_contains "$verbose" "QUORUM ABSENT" "one node of three has no quorum"
[ -e "$VIPS/held.2" ] && fail "node 2 took the VIP without a quorum"

wd_finish_sampler
log "ok"
