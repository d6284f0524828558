#!/usr/bin/env bash
# 072.watchdog_setup: scripts/watchdog_setup -wn 2 builds two pgpool nodes over one
# streaming cluster the way Pgpool-II's tool does (pgpool0 owns the PostgreSQL
# clusters, pgpool1 links to them); ./startall brings them up, pcp_watchdog_info on
# either node lists two members, one LEADER (node 0, the higher wd_priority) and
# one STANDBY, and clients get answers through both; ./shutdownall stops every
# process it started.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

install_cleanup
W=$TEST_DIR/wd
mkdir -p "$W"
[ "$(id -u)" = 0 ] && chown postgres "$W"
add_cleanup "(cd '$W' && timeout 60 ./shutdownall >/dev/null 2>&1)"
(cd "$W" && "$REPO_DIR/scripts/watchdog_setup" -wn 2 -wp "$TEST_BASE_PORT" -pg $((TEST_BASE_PORT + 50))) \
    >"$TEST_DIR/watchdog_setup.out" 2>&1 || { tail -20 "$TEST_DIR/watchdog_setup.out"; fail "watchdog_setup failed"; }
for k in 0 1; do
    [ -f "$W/pgpool$k/etc/pgpool_node_id" ] || fail "pgpool$k has no pgpool_node_id"
    assert_contains "$(cat "$W/pgpool$k/etc/pgpool.conf")" "use_watchdog = on" "pgpool$k has the watchdog on"
done
[ -L "$W/pgpool1/data0" ] || fail "pgpool1/data0 is not a link to pgpool0's cluster"
(cd "$W" && ./startall) >"$TEST_DIR/startall.out" 2>&1 || fail "startall failed"
export PCPPASSFILE=$WORK_DIR/pcppass
mkdir -p "$WORK_DIR"
sed 's/^\([^:]*\):[0-9]*:/\1:*:/' "$W/pgpool0/etc/pcppass" >"$PCPPASSFILE"
chmod 600 "$PCPPASSFILE"
info() { "$PCP_BIN/pcp_watchdog_info" -h localhost -p $(($1 + 1)) -w 2>&1; }
settled() { [ "$(info "$1" | grep -c ' 4 LEADER ')" = 1 ] && [ "$(info "$1" | grep -c ' 7 STANDBY ')" = 1 ]; }
for p in "$TEST_BASE_PORT" $((TEST_BASE_PORT + 4)); do
    wait_until 30 settled "$p" || fail "node on port $p: no leader and standby: $(info "$p")"
    assert_contains "$(info "$p" | head -1)" "2 2 " "two members seen from port $p"
    assert_contains "$(info "$p" | grep ' 4 LEADER ')" "localhost:$TEST_BASE_PORT " "node 0 leads (seen from port $p)"
    assert_eq 1 "$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$p" -U "$PGSUPERUSER" -d test -c 'select 1')" "a client through port $p"
done
pids=$(for k in 0 1; do read_pid "$W/pgpool$k/run/pgpool.pid"; done)
(cd "$W" && ./shutdownall) >"$TEST_DIR/shutdownall.out" 2>&1 || fail "shutdownall failed"
for pid in $pids; do wait_until 15 dead "$pid" || fail "pgpool $pid survived shutdownall"; done
log "ok"
