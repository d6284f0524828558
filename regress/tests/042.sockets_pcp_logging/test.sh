#!/usr/bin/env bash
# 042.sockets_pcp_logging: the listening sockets of Pgpool-II 4.4-4.5 and
# log_pcp_processes (4.5).
# - listen_addresses and pcp_listen_addresses as comma lists (127.0.0.1, 127.0.0.2):
#   pgpool and PCP answer on both, not on 127.0.0.3;
# - unix_socket_directories and pcp_socket_dir with two directories each: a socket in
#   every one, psql and pcp_node_count work through each;
# - unix_socket_group / unix_socket_permissions (0770) on pgpool's sockets; the PCP
#   sockets keep 0777 as in Pgpool-II;
# - pcp_listen_addresses = '*' answers on any address; a unix_socket_group that does
#   not exist keeps pgpool from starting;
# - log_pcp_processes = on: "forked new pcp worker, pid=N socket=S" and "PCP process
#   with pid: N exit with SUCCESS." for each PCP request; after a reload with it off,
#   no more such lines (an error exit would still be logged).
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_node_count" ] || fail "$PCP_BIN/pcp_node_count missing: cargo build --release"

SOCKS=$(mktemp -d /tmp/pgpool-regress-042-sock.XXXXXX) || fail "mktemp"
add_cleanup "rm -rf '$SOCKS'"
mkdir -p "$SOCKS/a" "$SOCKS/b" "$SOCKS/pa" "$SOCKS/pb"
chmod 755 "$SOCKS" "$SOCKS"/*
# A group other than the process's own, when the user may use one.
if [ "$(id -u)" = 0 ]; then
    GROUP=daemon
else
    GROUP=$(id -Gn | tr ' ' '\n' | grep -vxF "$(id -gn)" | head -n 1)
    [ -n "$GROUP" ] || GROUP=$(id -gn)
fi

setup_cluster 1 s \
    "listen_addresses = '127.0.0.1, 127.0.0.2'" \
    "pcp_listen_addresses = '127.0.0.1,127.0.0.2'" \
    "unix_socket_directories = '$SOCKS/a, $SOCKS/b'" \
    "pcp_socket_dir = '$SOCKS/pa,$SOCKS/pb'" \
    "unix_socket_group = '$GROUP'" \
    'unix_socket_permissions = 0770' \
    'log_pcp_processes = on'

export PCPPASSFILE=$TEST_DIR/etc/pcppass
pcp_count() { "$PCP_BIN/pcp_node_count" -h "$1" -p "$PCP_PORT" -U "$PGSUPERUSER" -w 2>&1; }
psql_at() { "$PGBIN/psql" -X -At -h "$1" -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test -c 'select 1' 2>&1; }

# TCP: both addresses of each list, and not a third one.
for h in 127.0.0.1 127.0.0.2; do
    assert_eq 1 "$(psql_at $h)" "psql through pgpool at $h"
    assert_eq 1 "$(pcp_count $h)" "pcp_node_count at $h"
done
"$PGBIN/psql" -X -At -h 127.0.0.3 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test -c 'select 1' >/dev/null 2>&1 \
    && pgpool_bug "pgpool answers on 127.0.0.3, which listen_addresses does not name"
log "ok: no answer on 127.0.0.3"

# Unix sockets: one per directory, with the configured group and mode.
for d in a b; do
    s=$SOCKS/$d/.s.PGSQL.$PGPOOL_PORT
    [ -S "$s" ] || pgpool_bug "no socket $s"
    assert_eq "770 $GROUP" "$(stat -c '%a %G' "$s")" "mode and group of $s"
    assert_eq 1 "$(psql_at "$SOCKS/$d")" "psql through $s"
done
for d in pa pb; do
    s=$SOCKS/$d/.s.PGSQL.$PCP_PORT
    [ -S "$s" ] || pgpool_bug "no PCP socket $s"
    assert_eq 777 "$(stat -c '%a' "$s")" "mode of $s"
    assert_eq 1 "$(pcp_count "$SOCKS/$d")" "pcp_node_count through $s"
done

# log_pcp_processes: every request above was logged, fork and exit.
forks=$(grep -c 'forked new pcp worker, pid=[0-9]* socket=[0-9]*' "$PGPOOL_LOG")
exits=$(grep -c 'PCP process with pid: [0-9]* exit with SUCCESS\.' "$PGPOOL_LOG")
assert_eq "4 4" "$forks $exits" "PCP worker forks and exits logged (4 requests)"
pid=$(grep -o 'forked new pcp worker, pid=[0-9]*' "$PGPOOL_LOG" | head -n 1 | cut -d= -f2)
assert_contains "$(cat "$PGPOOL_LOG")" "PCP process with pid: $pid exits with status 0" "exit status of worker $pid"

echo "log_pcp_processes = off" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 2
before=$(grep -c 'pcp worker\|PCP process with pid' "$PGPOOL_LOG")
assert_eq 1 "$(pcp_count 127.0.0.1)" "pcp_node_count after the reload"
sleep 1
assert_eq "$before" "$(grep -c 'pcp worker\|PCP process with pid' "$PGPOOL_LOG")" \
    "PCP process log lines after log_pcp_processes = off"

# Restarted with pcp_listen_addresses = '*': PCP answers on any address.
restart_with() {
    local pid
    pid=$(pgpool_main_pid) && "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1
    [ -n "${pid:-}" ] && { wait_until 20 dead "$pid" || fail "pgpool did not stop"; }
    printf '%s\n' "$@" >>"$PGPOOL_CONF"
    "$TEST_DIR/startall" >>"$TEST_DIR/startall.out" 2>&1
}
restart_with "pcp_listen_addresses = '*'" || fail "restart with pcp_listen_addresses = '*'"
wait_until 20 pgpool_answers || fail "pgpool does not answer after the restart"
assert_eq 1 "$(pcp_count 127.0.0.3)" "pcp_node_count at 127.0.0.3 with pcp_listen_addresses = '*'"

# A unix_socket_group that does not exist stops pgpool from starting, as in Pgpool-II.
restart_with "unix_socket_group = 'no_such_group_042'" \
    && pgpool_bug "pgpool started with a unix_socket_group that does not exist"
wait_until 10 gone "$PGPOOL_PIDFILE" || true
assert_contains "$(cat "$PGPOOL_LOG")" 'unix_socket_group "no_such_group_042" does not exist' "pgpool log"
