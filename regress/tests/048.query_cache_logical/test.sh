#!/usr/bin/env bash
# 048.query_cache_logical: memqcache_logical_invalidation = on (pgpool-rs's change feed:
# the primary's logical decoding, read from a test_decoding slot every
# memqcache_logical_interval) over a primary and a standby with load balancing on.
# The feed holds a temporary slot per database (gone with its connection).
# Writes that bypass pgpool invalidate the cache too, within the interval:
# - an UPDATE sent to the primary directly, not through pgpool;
# - a write made by a trigger of another table written through pgpool (pgpool sees
#   only the table the statement names);
# - a write straight into a partition, read through its parent;
# and when its connection is terminated (its slot goes with it), the feed logs it,
# invalidates everything meanwhile, creates the slot again and goes on.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

INTERVAL_MS=300
setup_cluster 2 s \
    'load_balance_mode = on' \
    'memory_cache_enabled = on' \
    'log_per_node_statement = on' \
    'memqcache_logical_invalidation = on' \
    "memqcache_logical_interval = $INTERVAL_MS"
# Logical decoding needs wal_level = logical on the primary (a later line wins).
echo "wal_level = logical" >>"$TEST_DIR/data0/postgresql.conf"
"$TEST_DIR/shutdownall" >>"$TEST_DIR/shutdownall.out" 2>&1 || fail "shutdownall failed"
start_cluster

_slot_made() { grep -q 'created temporary logical replication slot for database "test"' "$PGPOOL_LOG"; }
wait_until 15 _slot_made || fail "the feed did not create its slot: $(grep -i 'cache feed' "$PGPOOL_LOG" | tail -3)"
TEST_OID=$(psql_node 0 -c "SELECT oid FROM pg_database WHERE datname = 'test'")
assert_eq "test_decoding t" "$(psql_node 0 -c "SELECT plugin, temporary FROM pg_replication_slots WHERE slot_name = 'pgpool_rs_cache_$TEST_OID'" | tr '|' ' ')" "slot of database test"
log "ok: the feed holds temporary slot pgpool_rs_cache_$TEST_OID (test_decoding)"

psql_pgpool -q <<'SQL'
CREATE TABLE f (i int);
INSERT INTO f VALUES (1);
CREATE TABLE g (i int);
CREATE FUNCTION g_to_f() RETURNS trigger AS $$
BEGIN UPDATE f SET i = NEW.i; RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER g_to_f AFTER INSERT ON g FOR EACH ROW EXECUTE FUNCTION g_to_f();
CREATE TABLE parted (i int) PARTITION BY RANGE (i);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
INSERT INTO parted VALUES (1);
SQL
wait_replay

LOG_FILE=$PGPOOL_LOG
hits_of() { grep "fetched from cache" "$LOG_FILE" | grep -cF "statement: $1" || true; }

# cached READ: the SELECT is read twice, the second time from the cache.
cached() {
    local q=$1 before
    psql_pgpool -c "$q" >/dev/null || fail "$q"
    before=$(hits_of "$q")
    psql_pgpool -c "$q" >/dev/null || fail "$q"
    [ "$(hits_of "$q")" -gt "$before" ] || fail "$q was not answered from the cache"
}
# fresh READ WANT WHAT: READ through pgpool returns WANT within the interval and a
# second of slack; prints the milliseconds it took.
fresh() {
    local q=$1 want=$2 what=$3 t0 got
    t0=$(now_ms)
    while :; do
        got=$(psql_pgpool -c "$q")
        [ "$got" = "$want" ] && break
        [ $(($(now_ms) - t0)) -le $((INTERVAL_MS + 1000)) ] \
            || fail "$what: '$q' still answers '$got' (want '$want') $(($(now_ms) - t0)) ms later"
        sleep 0.05
    done
    log "ok: $what: '$q' answers '$want' $(($(now_ms) - t0)) ms after the write"
}

cached 'SELECT i FROM f'
psql_node 0 -c 'UPDATE f SET i = 2' >/dev/null || fail "direct update"
fresh 'SELECT i FROM f' 2 "UPDATE on the primary directly"

cached 'SELECT i FROM f'
psql_pgpool -c 'INSERT INTO g VALUES (3)' >/dev/null || fail "insert into g"
fresh 'SELECT i FROM f' 3 "UPDATE by a trigger of g"

cached 'SELECT i FROM parted'
psql_node 0 -c 'UPDATE parted_1 SET i = 4' >/dev/null || fail "direct update of the partition"
fresh 'SELECT i FROM parted' 4 "partition written directly, read through its parent"

# So far every write was seen through the slot, not by invalidating everything.
assert_not_contains "$(cat "$PGPOOL_LOG")" "query cache feed: cannot read" "feed errors before its connection is terminated"

# The feed's connection terminated (a primary restart looks the same to it): logged,
# everything invalidated meanwhile, a new slot made.
psql_node 0 -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgpool_cache_feed' AND datname = 'test'" >/dev/null \
    || fail "terminate the feed's connection"
_logged_failure() { grep -q 'query cache feed: cannot read logical replication slot' "$PGPOOL_LOG"; }
wait_until 10 _logged_failure || fail "the lost connection was not logged"
_made_again() { [ "$(grep -c 'created temporary logical replication slot for database "test"' "$PGPOOL_LOG")" -ge 2 ]; }
wait_until 10 _made_again || fail "the feed did not create its slot again"
_reading_again() { grep -q "query cache feed: reading the primary's changes again" "$PGPOOL_LOG"; }
wait_until 10 _reading_again || fail "the feed did not say it reads again"
cached 'SELECT i FROM f'
psql_node 0 -c 'UPDATE f SET i = 5' >/dev/null || fail "direct update"
fresh 'SELECT i FROM f' 5 "UPDATE on the primary directly, after the slot was made again"
