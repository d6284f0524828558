#!/usr/bin/env bash
# 008.shutdown: smart stop waits for open sessions, fast stop does not; the
# pid file comes and goes with the process; a stale pid file does not stop a
# start, a live one does; reload (command and SIGHUP) keeps serving.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s

pgpool_cmd() { "$PGPOOL_BIN" -f "$PGPOOL_CONF" -F "$TEST_DIR/etc/pcp.conf" -a "$TEST_DIR/etc/pool_hba.conf" "$@"; }

#--- smart stop waits for the session
main=$(pgpool_main_pid) || fail "pgpool not running"
[ -f "$PGPOOL_PIDFILE" ] || fail "no pid file $PGPOOL_PIDFILE"
out=$WORK_DIR/smart_session.out
psql_pgpool -c 'select pg_sleep(3), 42' >"$out" 2>&1 &
sess=$!
wait_active 'select pg_sleep(3), 42' || fail "the session's query is not running"
log "pgpool -m smart stop (a session is in pg_sleep(3))"
t0=$(now_ms)
timeout 30 "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m smart stop >"$WORK_DIR/smart_stop.out" 2>&1 &
stopper=$!
sleep 1
alive "$main" || fail "pgpool exited at smart stop although a session was open"
log "ok: pgpool still running 1 s into the smart stop"
wait "$sess" || { cat "$out"; fail "the session failed during smart shutdown"; }
assert_eq "|42" "$(cat "$out")" "the session's result during smart shutdown"
wait "$stopper"
rc=$?
cat "$WORK_DIR/smart_stop.out"
[ "$rc" = 0 ] || fail "pgpool -m smart stop exited with $rc"
log "smart stop returned after $(($(now_ms) - t0)) ms"
wait_until 10 dead "$main" || fail "pgpool (pid $main) still running after the smart stop returned"
wait_until 5 gone "$PGPOOL_PIDFILE" || fail "pid file still there after smart stop"
log "ok: pgpool gone, pid file removed"
if [ -n "$(pgpool_children 2>/dev/null)" ] || pgrep -P "$main" >/dev/null 2>&1; then
    fail "children of pgpool $main survived"
fi
"$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test -c 'select 1' >/dev/null 2>&1 \
    && fail "a connection to the pgpool port still works after shutdown"
[ -e "/tmp/.s.PGSQL.$PGPOOL_PORT" ] && fail "Unix socket /tmp/.s.PGSQL.$PGPOOL_PORT left behind"
log "ok: port closed, Unix socket removed"

#--- start again (nodes are still up: startall only starts pgpool)
start_cluster
main2=$(pgpool_main_pid) || fail "pgpool did not restart"
[ "$main2" != "$main" ] || fail "same pid after restart?"
assert_eq "$main2" "$(read_pid "$PGPOOL_PIDFILE")" "pid file after restart"

#--- a second pgpool with the same configuration refuses to start
log "starting a second pgpool with the same pid file"
timeout 20 "$PGPOOL_BIN" -D -n -f "$PGPOOL_CONF" -F "$TEST_DIR/etc/pcp.conf" \
    -a "$TEST_DIR/etc/pool_hba.conf" >"$WORK_DIR/second.out" 2>&1
rc=$?
cat "$WORK_DIR/second.out"
[ "$rc" = 124 ] && fail "a second pgpool started next to the running one (it was still running after 20 s)"
[ "$rc" != 0 ] || fail "a second pgpool exited with 0 while another one runs"
assert_eq "$main2" "$(read_pid "$PGPOOL_PIDFILE")" "pid file after the refused second start"
assert_eq 1 "$(psql_pgpool -c 'select 1')" "the first pgpool still serves"

#--- reload: pgpool reload and SIGHUP keep serving, sessions survive
out=$WORK_DIR/reload_session.out
psql_pgpool -c 'select pg_sleep(2), 7' >"$out" 2>&1 &
sess=$!
wait_active 'select pg_sleep(2), 7' || fail "the session's query is not running"
echo "log_statement = on" >>"$PGPOOL_CONF"
pgpool_cmd reload >"$WORK_DIR/reload.out" 2>&1 || { cat "$WORK_DIR/reload.out"; fail "pgpool reload failed"; }
log "ok: pgpool reload"
wait "$sess" || { cat "$out"; fail "a session failed across reload"; }
assert_eq "|7" "$(cat "$out")" "session across reload"
assert_eq "$main2" "$(pgpool_main_pid)" "main pid after reload"
for i in 1 2 3 4 5; do
    assert_eq "$i" "$(psql_pgpool -c "select $i")" "query after reload"
done
kill -HUP "$main2"
sleep 0.5
assert_eq "$main2" "$(pgpool_main_pid)" "main pid after SIGHUP"
for i in 1 2 3 4 5; do
    assert_eq "$i" "$(psql_pgpool -c "select $i")" "query after SIGHUP"
done

#--- fast stop ends open sessions and exits promptly
out=$WORK_DIR/fast_session.out
psql_pgpool -c 'select pg_sleep(30)' >"$out" 2>&1 &
sess=$!
wait_active 'select pg_sleep(30)' || fail "the session's query is not running"
log "pgpool -m fast stop (a session is in pg_sleep(30))"
t0=$(now_ms)
timeout 30 "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >"$WORK_DIR/fast_stop.out" 2>&1
rc=$?
ms=$(($(now_ms) - t0))
cat "$WORK_DIR/fast_stop.out"
log "fast stop returned after $ms ms (status $rc)"
[ "$rc" = 0 ] || fail "pgpool -m fast stop exited with $rc"
[ "$ms" -lt 10000 ] || fail "fast stop took $ms ms (hang detector: 10 s)"
wait_until 5 dead "$main2" || fail "pgpool still running after fast stop"
wait_until 5 gone "$PGPOOL_PIDFILE" || fail "pid file still there after fast stop"
wait_until 5 dead "$sess" || fail "the session's psql still runs after fast stop"
wait "$sess" && fail "the pg_sleep(30) session succeeded although pgpool was stopped"
log "ok: the open session was ended: $(tr '\n' ' ' <"$out")"

#--- a stale pid file (no such process) does not prevent a start
stale=999999
while alive "$stale" || [ -d "/proc/$stale" ]; do stale=$((stale - 1)); done
echo "$stale" >"$PGPOOL_PIDFILE"
log "stale pid file with pid $stale"
start_cluster
main3=$(pgpool_main_pid) || fail "pgpool did not start over a stale pid file"
assert_eq "$main3" "$(read_pid "$PGPOOL_PIDFILE")" "pid file rewritten"

#--- immediate stop
timeout 30 "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m immediate stop >/dev/null 2>&1 \
    || fail "pgpool -m immediate stop failed"
wait_until 10 dead "$main3" || fail "pgpool still running after immediate stop"
wait_until 5 gone "$PGPOOL_PIDFILE" || fail "pid file still there after immediate stop"
log "ok: immediate stop"
# stop when nothing runs: an error, not a hang
timeout 20 "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >"$WORK_DIR/stop_none.out" 2>&1
rc=$?
cat "$WORK_DIR/stop_none.out"
[ "$rc" = 124 ] && fail "pgpool stop hangs when pgpool is not running"
[ "$rc" != 0 ] || fail "pgpool stop exited with 0 although no pgpool was running"
log "ok: stop without a running pgpool fails with status $rc"
