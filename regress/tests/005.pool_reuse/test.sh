#!/usr/bin/env bash
# 005.pool_reuse: with num_init_children = 4, sequential sessions reuse at
# most 4 backends, and nothing of one session (SET, temp table, prepared
# statement, LISTEN, application_name) is visible to a later one.
# load_balance_mode = off: every session then reports its primary backend, so
# 4 children mean at most 4 pids (with load balancing a child holds one
# backend per node).
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s 'num_init_children = 4' 'max_pool = 4' 'load_balance_mode = off'

# 20 sequential sessions: at most 4 distinct backend pids (one pooled
# connection per child for the same user/database).
pids=$WORK_DIR/pids
: >"$pids"
for i in $(seq 1 20); do
    psql_pgpool -c 'select pg_backend_pid()' >>"$pids" || fail "session $i failed"
done
distinct=$(sort -u "$pids" | grep -c .)
log "backend pids of 20 sessions: $(sort "$pids" | uniq -c | tr -s ' \n' ' ')"
if [ "$distinct" -lt 1 ] || [ "$distinct" -gt 4 ]; then
    fail "20 sequential sessions used $distinct distinct backend pids (at most 4 expected)"
fi
log "ok: $distinct distinct backend pids"
# They are real backends of the primary, still connected (pooled).
while read -r p; do
    assert_eq 1 "$(psql_node 0 -c "select count(*) from pg_stat_activity where pid = $p")" \
        "backend $p alive on node 0"
done < <(sort -u "$pids")

# One session leaves state behind; the session holds its pooled backend.
log "polluting session"
psql_pgpool -c "SET work_mem = '77MB'" \
    -c "CREATE TEMP TABLE leak_tmp (x int)" \
    -c "INSERT INTO leak_tmp VALUES (1)" \
    -c "PREPARE leak_stmt AS SELECT 1" \
    -c "LISTEN leak_channel" \
    -c "SET application_name = 'polluter'" \
    -c "select pg_backend_pid()" >"$WORK_DIR/polluter.out" \
    || fail "polluting session failed"
polluter_pid=$(tail -n 1 "$WORK_DIR/polluter.out")
log "polluting session used backend $polluter_pid"

# The default work_mem the backends start with.
default_wm=$(psql_node 0 -c 'show work_mem')
[ "$default_wm" != 77MB ] || fail "node 0 default work_mem is already 77MB"

# Later sessions: at least 16, and on until one of them got the polluted
# backend (at most 60).
seen_polluter=false
for ((i = 1; i <= 60; i++)); do
    [ "$i" -gt 16 ] && $seen_polluter && break
    out=$(PGAPPNAME="app_$i" psql_pgpool -F ' ' \
        -c 'select pg_backend_pid()' \
        -c 'show work_mem' \
        -c "select count(*) from pg_class where relname = 'leak_tmp'" \
        -c "select count(*) from pg_namespace n where n.oid = pg_my_temp_schema() and exists (select 1 from pg_class c where c.relnamespace = n.oid)" \
        -c "select count(*) from pg_prepared_statements" \
        -c "select count(*) from pg_listening_channels()" \
        -c 'show application_name') || fail "session $i failed"
    mapfile -t v <<<"$out"
    [ "${v[0]}" = "$polluter_pid" ] && seen_polluter=true
    assert_eq "$default_wm" "${v[1]}" "session $i (backend ${v[0]}) work_mem"
    assert_eq 0 "${v[2]}" "session $i: leak_tmp visible in pg_class"
    assert_eq 0 "${v[3]}" "session $i: relations in its pg_temp schema"
    assert_eq 0 "${v[4]}" "session $i: pg_prepared_statements"
    assert_eq 0 "${v[5]}" "session $i: pg_listening_channels()"
    assert_eq "app_$i" "${v[6]}" "session $i: application_name"
done
# Make sure the check really covered the polluted backend (else the check
# above proved nothing).
$seen_polluter || fail "no later session got backend $polluter_pid: the reset was not exercised"
log "ok: the polluted backend $polluter_pid was reused and came back clean"

# The temp table is gone on the backend too, and nothing listens there.
assert_eq 0 "$(psql_node 0 -c "select count(*) from pg_class where relname = 'leak_tmp'")" \
    "leak_tmp on node 0"

# Extended protocol leftovers: a named prepared statement via pgbench
# -M prepared lives only in its session.
"$PGBIN/pgbench" -n -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -M prepared -t 5 -c 2 \
    -f <(echo 'select 1;') test >"$WORK_DIR/pgbench.out" 2>&1 \
    || { cat "$WORK_DIR/pgbench.out"; fail "pgbench -M prepared"; }
for i in $(seq 1 8); do
    assert_eq 0 "$(psql_pgpool -c 'select count(*) from pg_prepared_statements')" \
        "prepared statements seen after pgbench -M prepared (session $i)"
done

# application_name set in the startup packet of a session that reuses a
# pooled connection, then the default (empty: psql sets "psql") again.
assert_eq "psql" "$(psql_pgpool -c 'show application_name')" "default application_name"
assert_eq "other app" "$(PGAPPNAME='other app' psql_pgpool -c 'show application_name')" "application_name with a space"
# Seen on the backend as well.
assert_eq seen_on_backend "$(PGAPPNAME=seen_on_backend psql_pgpool \
    -c 'select application_name from pg_stat_activity where pid = pg_backend_pid()')" \
    "application_name in pg_stat_activity"
