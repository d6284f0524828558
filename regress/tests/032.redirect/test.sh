#!/usr/bin/env bash
# 032.redirect: app_name_redirect_preference_list wins over
# database_redirect_preference_list, which wins over
# user_redirect_preference_list; targets primary, standby and a node id.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 3 s \
    "database_redirect_preference_list = 'test:2'" \
    "app_name_redirect_preference_list = 'writer.*:primary,reporting:standby,app1:1'" \
    "user_redirect_preference_list = 'ruser:primary'"

port_as() { PGAPPNAME=$1 psql_pgpool -c 'select inet_server_port()'; }
p0=$(node_port 0); p1=$(node_port 1); p2=$(node_port 2)
for i in 1 2 3 4 5; do
    assert_eq "$p2" "$(port_as psql)" "database test -> node 2 (session $i)"
    assert_eq "$p0" "$(port_as writer-7)" "application writer-7 -> primary (session $i)"
    assert_eq "$p1" "$(port_as app1)" "application app1 -> node 1 (session $i)"
    got=$(port_as reporting)
    [ "$got" = "$p1" ] || [ "$got" = "$p2" ] || fail "application reporting went to $got, not a standby"
done
log "ok: reporting sessions went to standbys"

psql_pgpool -q -c 'create role ruser login' -c 'create database other' || fail "role and database"
wait_replay
as_ruser() {
    "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U ruser -d "$1" -c 'select inet_server_port()'
}
for i in 1 2 3 4 5; do
    assert_eq "$p0" "$(as_ruser other)" "user ruser, database other -> primary (session $i)"
    assert_eq "$p2" "$(as_ruser test)" "user ruser, database test -> node 2 (database rule first)"
done
log "ok: user_redirect_preference_list, after the database list"
