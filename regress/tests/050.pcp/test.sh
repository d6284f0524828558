#!/usr/bin/env bash
# 050.pcp: the PCP process and the pcp_* tools. On a 3-node streaming cluster:
# our tools against our pgpool; Debian's Pgpool-II 4.3 tools against our server
# print what they print against Debian's Pgpool-II on the same backends (and
# our tools against Debian's server likewise), masking times and the
# replication state columns pgpool-rs does not fill yet; detach/attach show in
# SHOW POOL_NODES; a wrong password fails like Pgpool-II's; 1000 wrong
# attempts leave the PCP process with the same fds and a right one works;
# pcp_stop_pgpool stops the server and removes the PCP socket.
# shellcheck disable=SC2015,SC2012  # "A && B || fail" is meant; fd dirs hold numbers
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_node_info" ] || fail "$PCP_BIN/pcp_node_info missing: cargo build --release -p pcp"

setup_cluster 3 s 'num_init_children = 4' 'max_pool = 2' 'health_check_period = 5'

export PCPPASSFILE=$TEST_DIR/etc/pcppass
U=(-U "$PGSUPERUSER" -w)
ours() { local t=$1; shift; "$PCP_BIN/$t" "$@"; }
mask() { sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}/TIME/g'; }
# Replication state columns (sr_check is not implemented in pgpool-rs yet).
mask_rep() {
    mask | awk '/^Replication (Sync )?State/ { sub(/: .*/, ": R") } { print }' \
        | awk 'NF == 12 && $1 ~ /^[0-9.]+$/ { $10 = "R"; $11 = "R" } { print }'
}

# --- our tools against our server -------------------------------------------
assert_eq 3 "$(ours pcp_node_count -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}")" "pcp_node_count"
got=$(ours pcp_node_info -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -n 0)
assert_contains "$got" "127.0.0.1 $(node_port 0) 2 0.333333 up up primary primary 0 none none " "node 0"
got=$(ours pcp_node_info -p "$PCP_PORT" "${U[@]}" -a)   # Unix socket in /tmp
assert_eq 3 "$(echo "$got" | grep -c ' up up ')" "pcp_node_info -a over the Unix socket"
got=$(ours pcp_node_info -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -v -n 1)
assert_contains "$got" "Role                   : standby" "pcp_node_info -v"
pids=$(ours pcp_proc_count -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}")
assert_eq 4 "$(echo "$pids" | wc -w)" "pcp_proc_count"
got=$(ours pcp_pool_status -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}")
assert_contains "$got" "name : backend_port0
value: $(node_port 0)" "pcp_pool_status"
got=$(ours pcp_health_check_stats -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -n 2)
assert_contains "$got" "2 127.0.0.1 $(node_port 2) up standby " "pcp_health_check_stats"
got=$(ours pcp_watchdog_info -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" 2>&1)
assert_contains "$got" "DETAIL:  watchdog is not enabled" "pcp_watchdog_info"

# --- Debian's Pgpool-II on the same backends ----------------------------------
DEB_PORT=$((TEST_BASE_PORT + 50))
DEB_PCP=$((TEST_BASE_PORT + 51))
deb_pid=
stop_debian() {
    [ -n "$deb_pid" ] || return 0
    /usr/sbin/pgpool -f "$WORK_DIR/deb.conf" -m fast stop >/dev/null 2>&1
    for ((i = 0; i < 50; i++)); do alive "$deb_pid" || break; sleep 0.2; done
    alive "$deb_pid" && kill -KILL "$deb_pid" 2>/dev/null
    deb_pid=
}
trap 'rc=$?; stop_debian; (exit $rc); _cleanup' EXIT
if [ -x /usr/sbin/pgpool ] && [ -x /usr/sbin/pcp_node_info ]; then
    mkdir -p "$WORK_DIR/deblog"
    { cat "$PGPOOL_CONF"
      echo "port = $DEB_PORT"
      echo "pcp_port = $DEB_PCP"
      echo "pid_file_name = '$WORK_DIR/deb.pid'"
      echo "logdir = '$WORK_DIR/deblog'"
      echo "failover_command = ''"
      echo "follow_primary_command = ''"
    } >"$WORK_DIR/deb.conf"
    /usr/sbin/pgpool -D -n -f "$WORK_DIR/deb.conf" -F "$TEST_DIR/etc/pcp.conf" \
        -a "$TEST_DIR/etc/pool_hba.conf" </dev/null >"$WORK_DIR/deb.log" 2>&1 &
    deb_pid=$!
    sed "s/:$PCP_PORT:/:$DEB_PCP:/" "$PCPPASSFILE" >"$WORK_DIR/deb.pcppass"
    chmod 600 "$WORK_DIR/deb.pcppass"
    deb_up() { PCPPASSFILE=$WORK_DIR/deb.pcppass /usr/sbin/pcp_node_count -h 127.0.0.1 -p "$DEB_PCP" "${U[@]}" >/dev/null 2>&1; }
    wait_until 20 deb_up || fail "Debian's pgpool did not start (see $WORK_DIR/deb.log)"
    log "Debian's Pgpool-II up: pid $deb_pid, pcp port $DEB_PCP"
    # Pgpool-II shows nodes as "waiting" until a first client session.
    "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$DEB_PORT" -U "$PGSUPERUSER" -d test -c 'select 1' >/dev/null \
        || fail "select 1 through Debian's pgpool"
    # run TOOLDIR PORT tool args...: stdout+stderr and exit status.
    run() {
        local dir=$1 port=$2 tool=$3 pass=$PCPPASSFILE
        shift 3
        [ "$port" = "$DEB_PCP" ] && pass=$WORK_DIR/deb.pcppass
        PCPPASSFILE=$pass "$dir/$tool" -h 127.0.0.1 -p "$port" "${U[@]}" "$@" 2>&1
        echo "[exit $?]"
    }
    compare() {
        local what=$1 ref ours_srv ours_cli
        shift
        ref=$(run /usr/sbin "$DEB_PCP" "$@" | mask_rep)
        ours_srv=$(run /usr/sbin "$PCP_PORT" "$@" | mask_rep)
        ours_cli=$(run "$PCP_BIN" "$DEB_PCP" "$@" | mask_rep)
        assert_eq "$ref" "$ours_srv" "Debian's $what against pgpool-rs"
        assert_eq "$ref" "$ours_cli" "our $what against Pgpool-II"
    }
    compare "pcp_node_count" pcp_node_count
    compare "pcp_node_count -v" pcp_node_count -v
    compare "pcp_node_info" pcp_node_info
    compare "pcp_node_info -a -v" pcp_node_info -a -v
    compare "pcp_node_info -n 1" pcp_node_info -n 1
    compare "pcp_node_info -n 9 (error)" pcp_node_info -n 9
    compare "pcp_health_check_stats -n 3 (error)" pcp_health_check_stats -n 3
    compare "pcp_watchdog_info" pcp_watchdog_info
    compare "pcp_recovery_node -n 0 (error)" pcp_recovery_node -n 0
    compare "pcp_promote_node -n 0 (error)" pcp_promote_node -n 0
    compare "pcp_proc_info -P 1 (error)" pcp_proc_info -P 1
    compare "pcp_attach_node -n 7" pcp_attach_node -n 7
    # Health-check counters differ between two servers; the columns do not.
    a=$(run /usr/sbin "$DEB_PCP" pcp_health_check_stats -n 1 | mask | cut -d' ' -f1-6)
    b=$(run /usr/sbin "$PCP_PORT" pcp_health_check_stats -n 1 | mask | cut -d' ' -f1-6)
    assert_eq "$a" "$b" "pcp_health_check_stats -n 1 (node, host, port, status, role)"
    a=$(run /usr/sbin "$DEB_PCP" pcp_health_check_stats -n 1 | head -1 | wc -w)
    b=$(run /usr/sbin "$PCP_PORT" pcp_health_check_stats -n 1 | head -1 | wc -w)
    assert_eq "$a" "$b" "pcp_health_check_stats field count"
    a=$(run /usr/sbin "$DEB_PCP" pcp_proc_count | wc -w)
    b=$(run /usr/sbin "$PCP_PORT" pcp_proc_count | wc -w)
    assert_eq "$a" "$b" "pcp_proc_count: number of pids"
    a=$(run /usr/sbin "$DEB_PCP" pcp_proc_info -a | wc -l)
    b=$(run /usr/sbin "$PCP_PORT" pcp_proc_info -a | wc -l)
    assert_eq "$a" "$b" "pcp_proc_info -a: one line per child, pool slot and node"
    a=$(run /usr/sbin "$DEB_PCP" pcp_proc_info -a -v | grep -c ' : ')
    b=$(run /usr/sbin "$PCP_PORT" pcp_proc_info -a -v | grep -c ' : ')
    assert_eq "$a" "$b" "pcp_proc_info -a -v: titled lines"
    # Item lists differ (pgpool-rs reports its PGPOOL SHOW ALL rows); the record
    # format does not.
    for port in "$DEB_PCP" "$PCP_PORT"; do
        out=$(run /usr/sbin "$port" pcp_pool_status)
        n=$(echo "$out" | grep -c '^name : ')
        [ "$n" -gt 50 ] && [ "$n" = "$(echo "$out" | grep -c '^desc : ')" ] \
            || fail "pcp_pool_status on port $port: $n records, malformed"
        log "ok: pcp_pool_status on port $port: $n name/value/desc records"
    done
    # Wrong password: same message and exit status as Pgpool-II's.
    a=$(PCPPASSFILE=/dev/null /usr/sbin/pcp_node_count -h 127.0.0.1 -p "$DEB_PCP" "${U[@]}" 2>&1; echo "[exit $?]")
    b=$(PCPPASSFILE=/dev/null /usr/sbin/pcp_node_count -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" 2>&1; echo "[exit $?]")
    assert_eq "$a" "$b" "wrong password, Debian's tool"
    c=$(PCPPASSFILE=/dev/null "$PCP_BIN/pcp_node_count" -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" 2>&1; echo "[exit $?]")
    assert_eq "$a" "$c" "wrong password, our tool"
    stop_debian
else
    log "Debian's Pgpool-II is not installed: interoperability checks skipped"
fi

# --- detach / attach ----------------------------------------------------------
node1() { psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1 == 1 { print $4 }'; }
assert_eq "pcp_detach_node -- Command Successful" \
    "$(ours pcp_detach_node -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -n 1)" "pcp_detach_node -n 1"
is_down() { [ "$(node1)" = down ]; }
wait_until 10 is_down || fail "node 1 not down after pcp_detach_node: $(node1)"
log "ok: SHOW POOL_NODES shows node 1 down"
p1=$(node_port 1)
for i in $(seq 1 20); do
    [ "$(psql_pgpool -c 'select inet_server_port()')" != "$p1" ] || fail "a read reached detached node 1"
done
log "ok: 20 sessions, no read on detached node 1"
assert_eq "pcp_attach_node -- Command Successful" \
    "$(ours pcp_attach_node -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" 1)" "pcp_attach_node 1 (positional)"
is_up() { [ "$(node1)" = up ]; }
wait_until 10 is_up || fail "node 1 not up after pcp_attach_node: $(node1)"
log "ok: SHOW POOL_NODES shows node 1 up"
reads_on_1=0
for i in $(seq 1 30); do
    [ "$(psql_pgpool -c 'select inet_server_port()')" = "$p1" ] && reads_on_1=$((reads_on_1 + 1))
done
[ "$reads_on_1" -gt 0 ] || fail "no read reached node 1 after pcp_attach_node (30 sessions)"
log "ok: reads return to node 1 after attach ($reads_on_1 of 30 sessions)"
# Graceful detach returns once the node is down.
ours pcp_detach_node -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -g -n 2 >/dev/null
assert_eq down "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '$1 == 2 { print $4 }')" "node 2 right after pcp_detach_node -g"
ours pcp_attach_node -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -n 2 >/dev/null

# --- 1000 wrong passwords ------------------------------------------------------
pcp_pid=$(ss -Hxlp 2>/dev/null | grep "\.s\.PGSQL\.$PCP_PORT " | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$pcp_pid" ] || fail "no process listens on the PCP socket"
fds_before=$(ls /proc/"$pcp_pid"/fd | wc -l)
echo "127.0.0.1:$PCP_PORT:$PGSUPERUSER:wrong" >"$WORK_DIR/bad.pcppass"
chmod 600 "$WORK_DIR/bad.pcppass"
fails=0
for ((i = 0; i < 1000; i++)); do
    PCPPASSFILE=$WORK_DIR/bad.pcppass "$PCP_BIN/pcp_node_count" -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" >/dev/null 2>&1 \
        || fails=$((fails + 1))
done
assert_eq 1000 "$fails" "wrong-password attempts refused"
sleep 0.5
assert_eq "$fds_before" "$(ls /proc/"$pcp_pid"/fd | wc -l)" "PCP process fds after 1000 failures"
assert_eq 0 "$(ps -o stat= --ppid "$pcp_pid" | grep -c '^Z')" "zombie PCP workers"
assert_eq 3 "$(ours pcp_node_count -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}")" "right password after the failures"
assert_contains "$(cat "$PGPOOL_LOG")" 'authentication failed for user "' "failures are logged"

# --- stop through PCP ----------------------------------------------------------
main=$(pgpool_main_pid)
assert_eq "pcp_stop_pgpool -- Command Successful" \
    "$(ours pcp_stop_pgpool -h 127.0.0.1 -p "$PCP_PORT" "${U[@]}" -m fast)" "pcp_stop_pgpool -m fast"
wait_until 20 dead "$main" || fail "pgpool still running after pcp_stop_pgpool"
gone "/tmp/.s.PGSQL.$PCP_PORT" || fail "PCP socket file left behind"
log "ok: pgpool stopped, PCP socket removed"
