#!/usr/bin/env bash
# 071.watchdog_partition: three pgpool nodes and the PostgreSQL servers, each in a
# network namespace of this test's own, joined by one veth pair per pair of hosts (so
# a link going down cuts exactly that pair). Every host has its service address on
# its loopback; the virtual IP is a real address that if_up_cmd / if_down_cmd add to
# and remove from the leader's loopback, and a sampler reads it in every namespace
# every 100 ms for the whole test.
#  - 1 | 2 partition: the lone leader gives the VIP up, the pair takes it; no
#    failover_command runs anywhere; healed, one leader and one backend view.
#  - one pgpool loses its route to backend node 1: it quarantines node 1, the others
#    keep it; the route returns: the quarantine is lifted.
#  - two pgpools lose it: node 1 is failed over, failover_command runs once, and all
#    three SHOW POOL_NODES agree.
# Never two VIP holders in any sample.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ "$(id -u)" = 0 ] || fail "this scenario needs root (network namespaces)"
command -v ip >/dev/null || fail "ip (iproute2) is missing"

setup_cluster 2 s 'num_init_children = 4'
"$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1 || fail "pgpool stop"
wait_until 15 gone "$PGPOOL_PIDFILE" || fail "pgpool did not stop"
as_pg() { runuser -u postgres -- "$@"; }
for n in 1 0; do
    as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data$n" -m fast -w stop >/dev/null || fail "stop node $n"
done

# Hosts: db (both PostgreSQL servers) and pgpool nodes 0, 1, 2.
TAG=w71$$
NS_DB=${TAG}db
ns() { echo "${TAG}n$1"; }
svc() { echo "10.72.0.$((10 + $1))"; }
PG_ADDR=(10.72.0.100 10.72.0.101)
VIP=10.72.0.200
DEADTIME=3
VIPS=$WORK_DIR/vip
mkdir -p "$VIPS"
drop_namespaces() {
    local k
    for k in 0 1 2; do ip netns del "$(ns "$k")" 2>/dev/null; done
    ip netns del "$NS_DB" 2>/dev/null
    return 0
}
add_cleanup drop_namespaces
ip netns add "$NS_DB" || fail "ip netns add"
for k in 0 1 2; do ip netns add "$(ns "$k")" || fail "ip netns add"; done
for h in "$NS_DB" "$(ns 0)" "$(ns 1)" "$(ns 2)"; do ip -n "$h" link set lo up; done
ip -n "$NS_DB" addr add "${PG_ADDR[0]}/32" dev lo
ip -n "$NS_DB" addr add "${PG_ADDR[1]}/32" dev lo
for k in 0 1 2; do ip -n "$(ns "$k")" addr add "$(svc "$k")/32" dev lo; done

# link A B IFA IFB: a veth pair between namespaces A and B, up.
link() {
    ip link add "$3" type veth peer name "$4" || fail "veth $3"
    ip link set "$3" netns "$1" && ip link set "$4" netns "$2" || fail "veth $3 into namespaces"
    ip -n "$1" link set "$3" up && ip -n "$2" link set "$4" up
}
for k in 0 1 2; do
    link "$(ns "$k")" "$NS_DB" "${TAG}${k}d" "${TAG}d${k}"
    ip -n "$(ns "$k")" route add "${PG_ADDR[0]}/32" dev "${TAG}${k}d"
    ip -n "$(ns "$k")" route add "${PG_ADDR[1]}/32" dev "${TAG}${k}d"
    ip -n "$NS_DB" route add "$(svc "$k")/32" dev "${TAG}d${k}"
done
for pair in "0 1" "0 2" "1 2"; do
    set -- $pair
    link "$(ns "$1")" "$(ns "$2")" "${TAG}$1$2" "${TAG}$2$1"
    ip -n "$(ns "$1")" route add "$(svc "$2")/32" dev "${TAG}$1$2"
    ip -n "$(ns "$2")" route add "$(svc "$1")/32" dev "${TAG}$2$1"
done
# cut_pair A B down|up (a link going down takes its routes with it: up puts them back)
cut_pair() {
    ip -n "$(ns "$1")" link set "${TAG}$1$2" "$3"
    ip -n "$(ns "$2")" link set "${TAG}$2$1" "$3"
    if [ "$3" = up ]; then
        ip -n "$(ns "$1")" route replace "$(svc "$2")/32" dev "${TAG}$1$2"
        ip -n "$(ns "$2")" route replace "$(svc "$1")/32" dev "${TAG}$2$1"
    fi
}

# PostgreSQL in its namespace (streaming between the two stays on its loopback).
for n in 0 1; do
    ip netns exec "$NS_DB" runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TEST_DIR/data$n" \
        -l "$TEST_DIR/data$n/ns.log" -w start >/dev/null || fail "start PostgreSQL $n in $NS_DB"
done
add_cleanup "for n in 1 0; do as_pg $PGBIN/pg_ctl -D $TEST_DIR/data\$n -m immediate -w stop >/dev/null 2>&1; done"

pgpool_port_of() { echo $((TEST_BASE_PORT + 10 * $1)); }
pcp_port_of() { echo $(($(pgpool_port_of "$1") + 1)); }
WD_BASE=$((TEST_BASE_PORT + 50))
for k in 0 1 2; do
    d=$TEST_DIR/pgpool$k
    mkdir -p "$d/log" "$d/run" "$d/sock"
    cp -r "$TEST_DIR/etc" "$d/etc"
    echo "$k" >"$d/etc/pgpool_node_id"
    echo "host all all 10.72.0.0/24 trust" >>"$d/etc/pool_hba.conf"
    {
        echo "listen_addresses = '*'"
        echo "port = $(pgpool_port_of "$k")"
        echo "pcp_listen_addresses = '*'"
        echo "pcp_port = $(pcp_port_of "$k")"
        echo "unix_socket_directories = '$d/sock'"
        echo "pcp_socket_dir = '$d/sock'"
        echo "pid_file_name = '$d/run/pgpool.pid'"
        echo "logdir = '$d/log'"
        echo "backend_hostname0 = '${PG_ADDR[0]}'"
        echo "backend_hostname1 = '${PG_ADDR[1]}'"
        echo "health_check_period = 1"
        echo "health_check_max_retries = 0"
        echo "health_check_timeout = 2"
        echo "connect_timeout = 1000"
        echo "failover_command = '/bin/sh -c \"echo %d >> $VIPS/failover.$k\"'"
        echo "follow_primary_command = ''"
        echo "use_watchdog = on"
        echo "wd_priority = $((3 - k))"
        echo "wd_heartbeat_deadtime = $DEADTIME"
        echo "delegate_ip = '$VIP'"
        echo "if_up_cmd = '/usr/sbin/ip addr add \$_IP_\$/32 dev lo'"
        echo "if_down_cmd = '/usr/sbin/ip addr del \$_IP_\$/32 dev lo'"
        echo "arping_cmd = ''"
        echo "wd_heartbeat_keepalive = 1"
        for n in 0 1 2; do
            echo "hostname$n = '$(svc "$n")'"
            echo "wd_port$n = $((WD_BASE + n))"
            echo "pgpool_port$n = $(pgpool_port_of "$n")"
            echo "heartbeat_hostname$n = '$(svc "$n")'"
            echo "heartbeat_port$n = $((WD_BASE + 10 + n))"
        done
    } >>"$d/etc/pgpool.conf"
done
export PCPPASSFILE=$WORK_DIR/pcppass
sed 's/^[^:]*:[0-9]*:/*:*:/' "$TEST_DIR/etc/pcppass" >"$PCPPASSFILE"
chmod 600 "$PCPPASSFILE"

start_node() {
    local d=$TEST_DIR/pgpool$1
    ip netns exec "$(ns "$1")" "$PGPOOL_BIN" -n -f "$d/etc/pgpool.conf" -F "$d/etc/pcp.conf" \
        -a "$d/etc/pool_hba.conf" >>"$d/log/pgpool.log" 2>&1 &
}
stop_node() {
    local pid
    pid=$(read_pid "$TEST_DIR/pgpool$1/run/pgpool.pid") || return 0
    kill -INT "$pid" 2>/dev/null
    wait_until 15 dead "$pid" || kill_pid_of "$pid" 'pgpool*'
}
for k in 2 1 0; do add_cleanup "stop_node $k"; done
in_ns() { local k=$1; shift; ip netns exec "$(ns "$k")" "$@"; }
wd_info() { in_ns "$1" "$PCP_BIN/pcp_watchdog_info" -h "$(svc "$1")" -p "$(pcp_port_of "$1")" -w "${@:2}" 2>&1; }
leader_port_seen_by() { wd_info "$1" | awk '/ 4 LEADER / { print $(NF-5) }'; }
all_agree_leader_is() {
    local k
    for k in "${@:2}"; do [ "$(leader_port_seen_by "$k")" = "$(pgpool_port_of "$1")" ] || return 1; done
}
vip_holders() {
    local k out="" addrs try
    for k in 0 1 2; do
        # A failed listing is not an absent VIP: under load `ip` now and then fails
        # (an interrupted netlink dump), so it is asked again.
        for try in 1 2 3 4 5; do
            addrs=$(ip -n "$(ns "$k")" -o addr show dev lo 2>/dev/null) && break
            sleep 0.02
        done
        grep -q " $VIP/" <<<"$addrs" && out="$out$k"
    done
    echo "$out"
}
holds_vip() { [ "$(vip_holders)" = "$1" ]; }
node1_status_on() {
    in_ns "$1" "$PGBIN/psql" -X -At -h "$(svc "$1")" -p "$(pgpool_port_of "$1")" -U "$PGSUPERUSER" \
        -d test -c 'show pool_nodes' 2>/dev/null | awk -F'|' '$1 == 1 { print $4 }'
}
failover_runs() { cat "$VIPS"/failover.* 2>/dev/null | grep -c .; }

SAMPLES=$WORK_DIR/vip_samples
(
    while :; do
        vip_holders >>"$SAMPLES"
        sleep 0.1
    done
) &
SAMPLER=$!
add_cleanup "kill $SAMPLER 2>/dev/null"

for k in 0 1 2; do start_node "$k"; done
wait_until 40 all_agree_leader_is 0 0 1 2 || { for k in 0 1 2; do wd_info "$k"; done; fail "no agreement that node 0 leads"; }
wait_until 10 holds_vip 0 || fail "node 0 did not bring up the VIP (holders: $(vip_holders))"
log "node 0 leads and holds $VIP"

# 1 | 2: node 0 alone.
cut_pair 0 1 down
cut_pair 0 2 down
t0=$(now_ms)
wait_until 15 holds_vip 1 || fail "the pair did not take the VIP (holders: $(vip_holders))"
log "partition 0 | 1 2: VIP on node 1 after $(($(now_ms) - t0)) ms"
wait_until $((DEADTIME + 5)) bash -c "$PCP_BIN/pcp_watchdog_info -h $(svc 0) -p $(pcp_port_of 0) -w -v 2>&1 | grep -q 'QUORUM ABSENT'" 2>/dev/null \
    || wait_until $((DEADTIME + 5)) bash -c "ip netns exec $(ns 0) $PCP_BIN/pcp_watchdog_info -h $(svc 0) -p $(pcp_port_of 0) -w -v | grep -q 'QUORUM ABSENT'" \
    || fail "the lone node does not report QUORUM ABSENT: $(wd_info 0 -v)"
sleep 2
assert_eq 1 "$(vip_holders)" "only node 1 holds the VIP during the partition"
assert_eq 0 "$(failover_runs)" "no failover_command during the partition"
cut_pair 0 1 up
cut_pair 0 2 up
wait_until 40 all_agree_leader_is 0 0 1 2 || fail "healed: no single leader ($(wd_info 0) / $(wd_info 1))"
wait_until 10 holds_vip 0 || fail "healed: the VIP did not settle on the leader (holders: $(vip_holders))"
for k in 0 1 2; do assert_eq up "$(node1_status_on "$k")" "healed: node $k sees backend 1 up"; done
log "healed: one leader, one view"

# Only node 0 loses its route to backend node 1: quarantine there, nothing elsewhere.
ip -n "$(ns 0)" route del "${PG_ADDR[1]}/32"
quarantined_on_0() { [ "$(node1_status_on 0)" = down ]; }
wait_until 20 quarantined_on_0 || fail "node 0 did not quarantine backend 1"
grep -q "changed to quarantine node request" "$TEST_DIR/pgpool0/log/pgpool.log" \
    || fail "node 0 did not log the quarantine"
sleep 3
for k in 1 2; do assert_eq up "$(node1_status_on "$k")" "node $k keeps backend 1"; done
assert_eq 0 "$(failover_runs)" "a failure one node sees runs no failover_command"
ip -n "$(ns 0)" route add "${PG_ADDR[1]}/32" dev "${TAG}0d"
back_on_0() { [ "$(node1_status_on 0)" = up ]; }
wait_until 20 back_on_0 || fail "the quarantine of backend 1 was not lifted on node 0"
log "one node's broken route: quarantine, lifted when the route returned"

# Two of three lose it: failover, once.
ip -n "$(ns 0)" route del "${PG_ADDR[1]}/32"
ip -n "$(ns 1)" route del "${PG_ADDR[1]}/32"
all_down() { local k; for k in 0 1 2; do [ "$(node1_status_on "$k")" = down ] || return 1; done; }
wait_until 30 all_down || fail "backend 1 is not down everywhere ($(node1_status_on 0) $(node1_status_on 1) $(node1_status_on 2))"
sleep 3
assert_eq 1 "$(failover_runs)" "failover_command ran once in the whole cluster"
log "two nodes' broken routes: one failover"

kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
samples=$(grep -c '' "$SAMPLES")
double=$(grep -c '..' "$SAMPLES")
log "VIP samples: $samples, with two or more holders: $double"
[ "$samples" -gt 100 ] || fail "too few VIP samples ($samples)"
assert_eq 0 "$double" "never two VIP holders"
log "ok"
