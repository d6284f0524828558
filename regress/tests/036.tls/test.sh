#!/usr/bin/env bash
# 036.tls: ssl = on with a self-signed certificate (openssl): psql with
# sslmode=require gets a TLS session (\conninfo), sslmode=disable still works;
# pgbench -M simple/extended/prepared over TLS through the load-balancing
# relay and the single-node relay (app name redirected to the primary) with no
# failed transaction; a 1M-row \copy out and in over TLS are byte-identical;
# the backends then demand SSL (ssl = on, pg_hba hostssl only): every pooled
# backend connection, health check included, is TLS (pg_stat_ssl) and the
# relays still work; with an unreadable certificate pgpool logs file:reason and
# answers SSL requests 'N' (sslmode=require fails, sslmode=prefer connects in
# clear).
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

# pgpool_setup wants an empty directory: the certificate lives beside it.
CERTS=$(mktemp -d "${TMPDIR:-/tmp}/pgpool-regress-tls.XXXXXX") || fail "mktemp"
add_cleanup rm -rf "$CERTS"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$CERTS/server.key" \
    -out "$CERTS/server.crt" -subj "/CN=localhost" -days 2 >/dev/null 2>&1 \
    || fail "openssl could not make a certificate"
setup_cluster 2 s \
    'ssl = on' \
    "ssl_cert = '$CERTS/server.crt'" \
    "ssl_key = '$CERTS/server.key'" \
    'backend_weight0 = 0' \
    "app_name_redirect_preference_list = 'single:primary'"

conn() { echo "host=127.0.0.1 port=$PGPOOL_PORT user=$PGSUPERUSER dbname=test sslmode=$1"; }
info=$("$PGBIN/psql" -X "$(conn require)" -c '\conninfo')
assert_contains "$info" "SSL connection (protocol: TLSv1." "psql sslmode=require"
assert_eq 2 "$("$PGBIN/psql" -X -At "$(conn require)" -c 'show pool_nodes' | grep -c .)" "SHOW POOL_NODES (answered by pgpool) over TLS"
info=$("$PGBIN/psql" -X "$(conn disable)" -c '\conninfo')
assert_not_contains "$info" "SSL connection" "psql sslmode=disable"

"$PGBIN/pgbench" -i -s 2 -q "$(conn require)" >"$WORK_DIR/init.out" 2>&1 || { cat "$WORK_DIR/init.out"; fail "pgbench -i over TLS"; }
wait_replay
for app in lb single; do
    for m in simple extended prepared; do
        PGAPPNAME=$app "$PGBIN/pgbench" -n -S -M "$m" -c 4 -j 2 -t 300 "$(conn require)" >"$WORK_DIR/$app.$m.out" 2>&1 \
            || { cat "$WORK_DIR/$app.$m.out"; fail "pgbench -M $m ($app) over TLS"; }
        assert_contains "$(cat "$WORK_DIR/$app.$m.out")" "number of failed transactions: 0" "pgbench -M $m ($app relay) over TLS"
    done
done

for app in lb single; do
    PGAPPNAME=$app "$PGBIN/psql" -X -q "$(conn require)" -c "\\copy (select * from pgbench_accounts order by aid) to '$WORK_DIR/out.$app'" \
        || fail "copy out over TLS ($app)"
done
psql_node 0 -c "\\copy (select * from pgbench_accounts order by aid) to '$WORK_DIR/direct.out'" || fail "copy out directly"
cmp "$WORK_DIR/direct.out" "$WORK_DIR/out.lb" || fail "copy out through the load-balancing relay differs"
cmp "$WORK_DIR/direct.out" "$WORK_DIR/out.single" || fail "copy out through the single-node relay differs"
"$PGBIN/psql" -X -q "$(conn require)" -c 'create table acc (like pgbench_accounts)' \
    -c "\\copy acc from '$WORK_DIR/direct.out'" || fail "copy in over TLS"
assert_eq 200000 "$(psql_node 0 -c 'select count(*) from acc')" "rows copied in over TLS"
log "ok: TLS sessions, both relays, large transfers"

# The backends demand SSL: pgpool's connections to them must use it.
"$TEST_DIR/shutdownall" >/dev/null 2>&1
for k in 0 1; do
    d=$TEST_DIR/data$k
    cp "$CERTS/server.crt" "$CERTS/server.key" "$d/" && chown postgres "$d/server.crt" "$d/server.key" \
        && chmod 600 "$d/server.key" || fail "certificate for node $k"
    printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" >>"$d/postgresql.conf"
    printf 'local all all trust\nlocal replication all trust\nhostssl all all all trust\nhostssl replication all all trust\n' >"$d/pg_hba.conf"
done
start_cluster
plain=$("$PGBIN/psql" -X "host=127.0.0.1 port=$(node_port 0) user=$PGSUPERUSER dbname=test sslmode=disable" -c 'select 1' 2>&1) \
    && fail "node 0 accepted a connection without SSL"
assert_contains "$plain" "no pg_hba.conf entry" "node 0 refuses clear-text connections"
for app in lb single; do
    got=$(PGAPPNAME=$app "$PGBIN/psql" -X -At "$(conn require)" -c 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')
    assert_eq t "$got" "backend connection of a $app session is TLS"
    PGAPPNAME=$app "$PGBIN/pgbench" -n -S -M extended -c 4 -j 2 -t 300 "$(conn disable)" >"$WORK_DIR/b.$app.out" 2>&1 \
        || { cat "$WORK_DIR/b.$app.out"; fail "pgbench ($app) over TLS backends"; }
    assert_contains "$(cat "$WORK_DIR/b.$app.out")" "number of failed transactions: 0" "pgbench ($app relay) to TLS backends"
done
PGAPPNAME=lb "$PGBIN/psql" -X -q "$(conn disable)" -c "\\copy (select * from pgbench_accounts order by aid) to '$WORK_DIR/out.tlsb'" \
    || fail "copy out from TLS backends"
cmp "$WORK_DIR/direct.out" "$WORK_DIR/out.tlsb" || fail "copy out from TLS backends differs"
assert_eq "up up" "$(psql_pgpool -c 'show pool_nodes' | awk -F'|' '{printf "%s ", $4}' | sed 's/ $//')" "nodes up (health check over TLS)"
log "ok: TLS to the backends"

# A certificate pgpool cannot read: logged, and SSL requests are refused.
"$TEST_DIR/shutdownall" >/dev/null 2>&1
echo "ssl_cert = '$CERTS/missing.crt'" >>"$PGPOOL_CONF"
start_cluster
grep -q "could not load ssl_cert \"$CERTS/missing.crt\"" "$PGPOOL_LOG" || fail "no log line naming the missing certificate"
out=$("$PGBIN/psql" -X "$(conn require)" -c 'select 1' 2>&1) && fail "sslmode=require connected without a certificate"
assert_contains "$out" "server does not support SSL" "sslmode=require without a certificate"
assert_eq 1 "$("$PGBIN/psql" -X -At "$(conn prefer)" -c 'select 1')" "sslmode=prefer falls back to clear text"
log "ok: unusable certificate reported, SSL refused"
