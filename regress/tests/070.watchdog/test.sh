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

setup_cluster 2 s 'num_init_children = 4'
"$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1 || fail "pgpool stop"
wait_until 15 gone "$PGPOOL_PIDFILE" || fail "pgpool did not stop"

WD_BASE=$((TEST_BASE_PORT + 50))
DEADTIME=4
VIPS=$WORK_DIR/vip
mkdir -p "$VIPS"
chmod 777 "$VIPS"
# pgpool_setup's pcppass names node 0's PCP port only.
export PCPPASSFILE=$WORK_DIR/pcppass
sed 's/^\([^:]*\):[0-9]*:/\1:*:/' "$TEST_DIR/etc/pcppass" >"$PCPPASSFILE"
chmod 600 "$PCPPASSFILE"
pgpool_port_of() { echo $((TEST_BASE_PORT + 10 * $1)); }
pcp_port_of() { echo $(($(pgpool_port_of "$1") + 1)); }
node_dir() { if [ "$1" = 0 ]; then echo "$TEST_DIR"; else echo "$TEST_DIR/pgpool$1"; fi; }

# Node K's pgpool.conf: the cluster's, plus the watchdog lines.
for k in 0 1 2; do
    d=$(node_dir "$k")
    if [ "$k" != 0 ]; then
        mkdir -p "$d/log" "$d/run"
        cp -r "$TEST_DIR/etc" "$d/etc"
        {
            echo "port = $(pgpool_port_of "$k")"
            echo "pcp_port = $(pcp_port_of "$k")"
            echo "pid_file_name = '$d/run/pgpool.pid'"
            echo "logdir = '$d/log'"
        } >>"$d/etc/pgpool.conf"
    fi
    echo "$k" >"$d/etc/pgpool_node_id"
    {
        echo "use_watchdog = on"
        echo "wd_priority = $((3 - k))"
        echo "wd_heartbeat_deadtime = $DEADTIME"
        echo "wd_authkey = 'regress-070'"
        echo "delegate_ip = '10.250.70.1'"
        echo "if_up_cmd = '/usr/bin/touch $VIPS/held.$k'"
        echo "if_down_cmd = '/bin/rm -f $VIPS/held.$k'"
        echo "arping_cmd = ''"
        echo "wd_escalation_command = '/usr/bin/touch $VIPS/escalated.$k'"
        echo "wd_heartbeat_keepalive = 1"
        for n in 0 1 2; do
            echo "hostname$n = 'localhost'"
            echo "wd_port$n = $((WD_BASE + n))"
            echo "pgpool_port$n = $(pgpool_port_of "$n")"
            echo "heartbeat_hostname$n = '127.0.0.1'"
            echo "heartbeat_port$n = $((WD_BASE + 10 + n))"
        done
    } >>"$d/etc/pgpool.conf"
done

start_node() {
    local d
    d=$(node_dir "$1")
    "$PGPOOL_BIN" -n -f "$d/etc/pgpool.conf" -F "$d/etc/pcp.conf" -a "$d/etc/pool_hba.conf" \
        >>"$d/log/pgpool.log" 2>&1 &
}
node_pid() { read_pid "$(node_dir "$1")/run/pgpool.pid"; }
stop_node() {
    local pid
    pid=$(node_pid "$1") || return 0
    "$PGPOOL_BIN" -f "$(node_dir "$1")/etc/pgpool.conf" -m fast stop >/dev/null 2>&1
    wait_until 15 dead "$pid" || kill_pid_of "$pid" 'pgpool*'
}
# The whole node at once, as when its host dies: the main process and every child.
crash_node() {
    local pid kids
    pid=$(node_pid "$1") || fail "node $1 is not running"
    kids=$(ps -o pid= --ppid "$pid" | tr -d ' ')
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids
    rm -f "$VIPS/held.$1"
}
for k in 1 2; do add_cleanup "stop_node $k"; done

wd_info() { "$PCP_BIN/pcp_watchdog_info" -h localhost -p "$(pcp_port_of "$1")" -w "${@:2}" 2>&1; }
# The node id whose state is LEADER in node K's view (plain output: name host
# pgpool_port wd_port state state_name ...).
leader_seen_by() { wd_info "$1" | awk '$0 ~ / 4 LEADER / { print $(NF-5) }'; }
standbys_seen_by() { wd_info "$1" | grep -c ' 7 STANDBY '; }
all_agree_leader_is() {
    local port k
    port=$(pgpool_port_of "$1")
    for k in "${@:2}"; do
        [ "$(leader_seen_by "$k")" = "$port" ] || return 1
    done
}
holds_vip() { [ -e "$VIPS/held.$1" ] && [ "$(ls "$VIPS" | grep -c '^held\.')" = 1 ]; }

# Sampler: every 100 ms, how many nodes hold the VIP.
SAMPLES=$WORK_DIR/vip_samples
(
    while :; do
        ls "$VIPS" | grep -c '^held\.' >>"$SAMPLES"
        sleep 0.1
    done
) &
SAMPLER=$!
add_cleanup "kill $SAMPLER 2>/dev/null"

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
grep -q "successfully joined the watchdog cluster as standby node" "$TEST_DIR/pgpool1/log/pgpool.log" \
    || fail "node 1 did not log that it joined as standby"
[ -e "$VIPS/escalated.0" ] || fail "wd_escalation_command did not run on node 0"
for k in 0 1 2; do
    grep -q "sending and receiving heartbeats on port $((WD_BASE + 10 + k))" "$(node_dir "$k")/log/pgpool.log" \
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
wait_until 10 grep -q "is shutting down" "$TEST_DIR/pgpool1/log/pgpool.log" \
    || fail "node 1 did not hear that node 0 shuts down"
wait_until 10 holds_vip 1 || fail "node 1 did not take the VIP after node 0 stopped"

# One of three: no quorum, no VIP, but still a leader by Pgpool-II's rule.
stop_node 1
wait_until 10 bash -c "[ ! -e '$VIPS/held.1' ]" || fail "node 1 kept the VIP after stopping"
sleep 2
verbose=$(wd_info 2 -v)
assert_contains "$verbose" "QUORUM ABSENT" "one node of three has no quorum"
[ -e "$VIPS/held.2" ] && fail "node 2 took the VIP without a quorum"

kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
samples=$(grep -c . "$SAMPLES")
double=$(grep -c '^[2-9]' "$SAMPLES")
log "VIP samples: $samples, with two or more holders: $double"
[ "$samples" -gt 100 ] || fail "too few VIP samples ($samples)"
assert_eq 0 "$double" "never two VIP holders"
log "ok"
