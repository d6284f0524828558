#!/usr/bin/env bash
# 028.clear_text_frontend_auth: a backend that asks for SCRAM or md5, a user pool_passwd
# does not know, pool_hba.conf off. With allow_clear_text_frontend_auth = off (the
# default) the session is refused and says why; after a reload with it on, pgpool asks
# the client for its password in clear text, logs in to the backend with it (SCRAM and
# md5 users), and a wrong password is refused by the backend.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 2 s 'enable_pool_hba = off'
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

psql_node 0 -c "SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_user LOGIN PASSWORD 'scram_pw'" >/dev/null \
    || fail "create scram_user"
psql_node 0 -c "SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5_pw'" >/dev/null \
    || fail "create md5_user"
psql_node 0 -c "GRANT ALL ON SCHEMA public TO scram_user, md5_user" >/dev/null || true
wait_replay
# Both users must give a password to the backends (first matching line wins).
for n in 0 1; do
    hba=$TEST_DIR/data$n/pg_hba.conf
    {
        echo "local all scram_user scram-sha-256"
        echo "host all scram_user 127.0.0.1/32 scram-sha-256"
        echo "local all md5_user md5"
        echo "host all md5_user 127.0.0.1/32 md5"
        cat "$hba"
    } >"$hba.new"
    mv "$hba.new" "$hba"
    [ "$(id -u)" = 0 ] && chown postgres: "$hba"
    as_pg "$PGBIN/pg_ctl" -D "$TEST_DIR/data$n" reload >/dev/null || fail "reload node $n"
done
sleep 1

as() { # as USER PASSWORD: select current_user through pgpool
    PGPASSWORD=$2 "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$1" -d test \
        -c 'select current_user' 2>&1
}
out=$(as scram_user scram_pw)
assert_contains "$out" "requires a password for user \"scram_user\" and pool_passwd has none" \
    "scram_user with allow_clear_text_frontend_auth = off"
out=$(as md5_user md5_pw)
assert_contains "$out" "pool_passwd has none" "md5_user with allow_clear_text_frontend_auth = off"

echo 'allow_clear_text_frontend_auth = on' >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 1
assert_eq scram_user "$(as scram_user scram_pw)" "scram_user, password asked in clear text"
assert_eq md5_user "$(as md5_user md5_pw)" "md5_user, password asked in clear text"
out=$(as scram_user wrong_pw)
assert_contains "$out" "password authentication failed for user \"scram_user\"" "a wrong password"
grep -q "using clear text authentication with frontend" "$PGPOOL_LOG" \
    || pgpool_bug "pgpool did not log that it asked in clear text"
grep -q "backend will still use SCRAM auth" "$PGPOOL_LOG" \
    || pgpool_bug "the log does not say the backend still uses SCRAM"
log "ok: 028.clear_text_frontend_auth"
