# shellcheck shell=bash
# regress/lib/watchdog.sh - three pgpool nodes on loopback, watching each other over
# the test's streaming cluster (sourced after regress/lib.sh by the watchdog tests).
#
#     setup_cluster 2 s 'num_init_children = 4'
#     wd_extra_conf() { echo "wd_lifecheck_method = query"; }   # optional, per node $1
#     wd_configure 4          # wd_heartbeat_deadtime; stops the cluster's own pgpool
#     wd_start_sampler        # the "VIP" is a file per holder under $VIPS
#     start_node 0; ...
#     wd_finish_sampler       # asserts no sample saw two holders
#
# Node 0 is the cluster's own pgpool (its directory is $TEST_DIR); node K > 0 lives
# in $TEST_DIR/pgpoolK with its own ports. wd_priority is 3 - K, so node 0 leads.
# shellcheck disable=SC2034  # VIPS, WD_BASE are for the tests

WD_BASE=$((TEST_BASE_PORT + 50))
VIPS=$WORK_DIR/vip
pgpool_port_of() { echo $((TEST_BASE_PORT + 10 * $1)); }
pcp_port_of() { echo $(($(pgpool_port_of "$1") + 1)); }
node_dir() { if [ "$1" = 0 ]; then echo "$TEST_DIR"; else echo "$TEST_DIR/pgpool$1"; fi; }
node_log() { echo "$(node_dir "$1")/log/pgpool.log"; }
# A test may override it to add lines to node $1's pgpool.conf.
declare -F wd_extra_conf >/dev/null || wd_extra_conf() { :; }

wd_configure() {
    local deadtime=$1 k n d
    "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1 || fail "pgpool stop"
    wait_until 15 gone "$PGPOOL_PIDFILE" || fail "pgpool did not stop"
    mkdir -p "$VIPS"
    chmod 777 "$VIPS"
    # pgpool_setup's pcppass names node 0's PCP port only.
    export PCPPASSFILE=$WORK_DIR/pcppass
    sed 's/^\([^:]*\):[0-9]*:/\1:*:/' "$TEST_DIR/etc/pcppass" >"$PCPPASSFILE"
    chmod 600 "$PCPPASSFILE"
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
            echo "wd_heartbeat_deadtime = $deadtime"
            echo "wd_authkey = 'regress-wd'"
            echo "wd_ipc_socket_dir = '$WORK_DIR'"
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
            wd_extra_conf "$k"
        } >>"$d/etc/pgpool.conf"
    done
    for k in 1 2; do add_cleanup "stop_node $k"; done
}

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

wd_info() { "$PCP_BIN/pcp_watchdog_info" -h localhost -p "$(pcp_port_of "$1")" -w "${@:2}" 2>&1; }
# The pgpool port of the node whose state is LEADER in node K's view (plain output:
# name host pgpool_port wd_port state state_name ...).
leader_seen_by() { wd_info "$1" | awk '$0 ~ / 4 LEADER / { print $(NF-5) }'; }
standbys_seen_by() { wd_info "$1" | grep -c ' 7 STANDBY '; }
all_agree_leader_is() {
    local port k
    port=$(pgpool_port_of "$1")
    for k in "${@:2}"; do
        [ "$(leader_seen_by "$k")" = "$port" ] || return 1
    done
}
# Node K's state name for node J in K's view ("LOST", "STANDBY", ...).
state_seen_by() {
    wd_info "$1" | grep "^[^ ]*:$(pgpool_port_of "$2") " \
        | sed -E 's/.* [0-9]+ ([A-Z][A-Z ]*[A-Z]) [0-9]+ [A-Z]+$/\1/'
}
holds_vip() { [ -e "$VIPS/held.$1" ] && [ "$(ls "$VIPS" | grep -c '^held\.')" = 1 ]; }
no_vip() { [ "$(ls "$VIPS" | grep -c '^held\.')" = 0 ]; }

# Every 100 ms, how many nodes hold the VIP, for the whole test.
wd_start_sampler() {
    WD_SAMPLES=$WORK_DIR/vip_samples
    (
        while :; do
            ls "$VIPS" | grep -c '^held\.' >>"$WD_SAMPLES"
            sleep 0.1
        done
    ) &
    WD_SAMPLER=$!
    add_cleanup "kill $WD_SAMPLER 2>/dev/null"
}
wd_finish_sampler() {
    local samples double
    kill "$WD_SAMPLER" 2>/dev/null
    wait "$WD_SAMPLER" 2>/dev/null
    samples=$(grep -c . "$WD_SAMPLES")
    double=$(grep -c '^[2-9]' "$WD_SAMPLES")
    log "VIP samples: $samples, with two or more holders: $double"
    [ "$samples" -gt "${1:-100}" ] || fail "too few VIP samples ($samples)"
    assert_eq 0 "$double" "never two VIP holders"
}
