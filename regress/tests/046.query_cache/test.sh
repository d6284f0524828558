#!/usr/bin/env bash
# 046.query_cache: memory_cache_enabled = on with memqcache_method = shmem (or, when
# 047.query_cache_memcached runs this file, memcached), over a primary and a standby
# with load balancing on.
# - a repeated SELECT is answered from the cache: the log says so, SHOW POOL_CACHE
#   counts the hits, and the table's seq_scan counters on both nodes do not move;
# - the same through the extended protocol (pgbench -M extended and -M prepared);
# - after a write from another client (UPDATE / INSERT / DELETE / TRUNCATE / MERGE, by
#   bare name, schema-qualified, through search_path; a partition written through its
#   parent and the parent read after a write to the partition) the SELECT returns the
#   new data every time;
# - an UPDATE in a transaction is not seen by others before COMMIT, and seen after;
# - clock, session and volatile values are never cached; the safe / unsafe lists;
# - temporary tables are never cached, with check_temp_table = off too;
# - shmem: a 1 MB cache under 600 distinct results evicts, stays within its size, and
#   every answer equals the primary's; memcached: 047 goes on (memcached killed).
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

: "${CACHE_METHOD:=shmem}" "${MEMCACHED_PORT:=0}"
setup_cluster 2 s \
    'load_balance_mode = on' \
    'memory_cache_enabled = on' \
    'log_per_node_statement = on' \
    "memqcache_method = '$CACHE_METHOD'" \
    "memqcache_memcached_host = '127.0.0.1'" \
    "memqcache_memcached_port = $MEMCACHED_PORT" \
    'memqcache_total_size = 1048576' \
    'memqcache_cache_block_size = 65536' \
    'memqcache_maxcache = 32768' \
    "cache_safe_memqcache_table_list = 'safe_v'" \
    "cache_unsafe_memqcache_table_list = 'unsafe_t'"

LOG_FILE=$TEST_DIR/log/pgpool.log
hits_of() { grep "fetched from cache" "$LOG_FILE" | grep -cF "statement: $1" || true; }

psql_pgpool -q <<'SQL'
CREATE SCHEMA other;
CREATE TABLE t (i int);
INSERT INTO t VALUES (1);
CREATE TABLE unsafe_t (i int);
CREATE TABLE big AS SELECT g, repeat('x', 120) AS pad FROM generate_series(1, 100) g;
CREATE VIEW plain_v AS SELECT * FROM t;
CREATE VIEW safe_v AS SELECT * FROM t;
CREATE TABLE parted (i int) PARTITION BY RANGE (i);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
INSERT INTO parted VALUES (1);
CREATE FUNCTION other.vol(int) RETURNS int AS 'SELECT $1' LANGUAGE sql VOLATILE;
CREATE FUNCTION imm(int) RETURNS int AS 'SELECT $1' LANGUAGE sql IMMUTABLE;
SQL
wait_replay

# Hits, and the backends are not asked.
seq_scans() {
    local n total=0 c
    for n in 0 1; do
        c=$(psql_node "$n" -c "select coalesce(sum(seq_scan), 0) from pg_stat_user_tables where relname = 't'")
        total=$((total + c))
    done
    echo "$total"
}
# (An idle backend reports its counters within 10 s.)
initial=$(seq_scans)
assert_eq 1 "$(psql_pgpool -c 'SELECT * FROM t')" "first read"
_scanned() { [ "$(seq_scans)" -gt "$initial" ]; }
wait_until 15 _scanned || fail "the first read of t did not reach a node"
before=$(seq_scans)
for _ in $(seq 10); do assert_eq 1 "$(psql_pgpool -c 'SELECT * FROM t')" "cached read"; done
sleep 11
after=$(seq_scans)
assert_eq "$before" "$after" "seq_scan of t on the nodes during 10 cached reads"
assert_eq 10 "$(hits_of 'SELECT * FROM t')" "hits logged"
cache=$(psql_pgpool -c 'SHOW POOL_CACHE')
hits=$(echo "$cache" | cut -d'|' -f1)
[ "$hits" -ge 10 ] || fail "SHOW POOL_CACHE num_cache_hits = $hits: $cache"
log "ok: 10 reads from the cache, seq_scan $before -> $after, SHOW POOL_CACHE $cache"

# The extended protocol: unnamed (-M extended) and named (-M prepared) statements.
echo 'SELECT i FROM t WHERE i > 0;' >"$WORK_DIR/read.sql"
for mode in extended prepared; do
    pgbench_pgpool -n -c 1 -t 20 -M "$mode" -f "$WORK_DIR/read.sql" >"$WORK_DIR/pgbench.out" 2>&1 \
        || fail "pgbench -M $mode: $(cat "$WORK_DIR/pgbench.out")"
done
n=$(hits_of 'SELECT i FROM t WHERE i > 0;')
[ "$n" -ge 38 ] || fail "hits of the extended-protocol reads: $n of 40"
log "ok: pgbench -M extended / prepared: $n of 40 reads from the cache"

# Writes from another client invalidate, however they name the table.
value=1
for step in \
    "UPDATE t SET i = 2" \
    "UPDATE public.t SET i = 3" \
    "SET search_path = other, public; UPDATE t SET i = 4" \
    "DELETE FROM t" \
    "INSERT INTO t VALUES (5)" \
    "TRUNCATE t" \
    "INSERT INTO public.t VALUES (6)" \
    "MERGE INTO t USING (SELECT 7 AS v) s ON true WHEN MATCHED THEN UPDATE SET i = s.v" \
    "WITH w AS (UPDATE t SET i = 8 RETURNING i) SELECT count(*) FROM w"; do
    psql_pgpool -c 'SELECT * FROM t' >/dev/null
    psql_pgpool -c 'SELECT * FROM t' >/dev/null
    psql_pgpool -c "$step" >/dev/null
    expected=$(psql_node 0 -c 'SELECT * FROM t')
    got=$(psql_pgpool -c 'SELECT * FROM t')
    assert_eq "$expected" "$got" "read after: $step"
    [ "$got" != "$value" ] || [ "$step" = "TRUNCATE t" ] || fail "unchanged after $step: $got"
    value=$got
done
log "ok: reads after every write see it"

psql_pgpool -c 'SELECT * FROM parted' >/dev/null
psql_pgpool -c 'SELECT * FROM parted' >/dev/null
psql_pgpool -c 'UPDATE parted_1 SET i = 42' >/dev/null
assert_eq 42 "$(psql_pgpool -c 'SELECT * FROM parted')" "parent read after a write to its partition"
psql_pgpool -c 'SELECT * FROM parted_1' >/dev/null
psql_pgpool -c 'SELECT * FROM parted_1' >/dev/null
psql_pgpool -c 'UPDATE parted SET i = 43' >/dev/null
assert_eq 43 "$(psql_pgpool -c 'SELECT * FROM parted_1')" "partition read after a write through its parent"
log "ok: partitions and parents invalidate each other"

# A transaction's write is seen by others after COMMIT, not before.
psql_pgpool -c 'UPDATE t SET i = 10' >/dev/null
psql_pgpool -c 'SELECT * FROM t' >/dev/null
coproc TX { "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" -d test 2>&1; }
echo "BEGIN; UPDATE t SET i = 11; SELECT 'updated';" >&"${TX[1]}"
read -r -t 10 line <&"${TX[0]}" && read -r -t 10 line <&"${TX[0]}" && read -r -t 10 line <&"${TX[0]}"
assert_eq updated "$line" "transaction updated"
assert_eq 10 "$(psql_pgpool -c 'SELECT * FROM t')" "others during the transaction"
echo "COMMIT; SELECT 'committed';" >&"${TX[1]}"
read -r -t 10 line <&"${TX[0]}" && read -r -t 10 line <&"${TX[0]}"
assert_eq committed "$line" "transaction committed"
assert_eq 11 "$(psql_pgpool -c 'SELECT * FROM t')" "others after COMMIT"
echo '\q' >&"${TX[1]}"
wait "$TX_PID" 2>/dev/null || true
log "ok: a transaction's write shows after its COMMIT"

# What must not be cached, and the lists.
for q in "SELECT random()" "SELECT now()" "SELECT CURRENT_TIMESTAMP" "SELECT CURRENT_USER" \
    "SELECT other.vol(1)" "SELECT '2024-01-01'::timestamptz" "SELECT * FROM unsafe_t" \
    "SELECT * FROM plain_v" "SELECT count(*) FROM pg_class" "/*NO QUERY CACHE*/ SELECT * FROM t"; do
    psql_pgpool -c "$q" >/dev/null
    psql_pgpool -c "$q" >/dev/null
    assert_eq 0 "$(hits_of "$q")" "hits of: $q"
done
for q in "SELECT imm(1)" "SELECT * FROM safe_v" "SELECT '2024-01-01'::timestamp"; do
    psql_pgpool -c "$q" >/dev/null
    psql_pgpool -c "$q" >/dev/null
    assert_eq 1 "$(hits_of "$q")" "hits of: $q"
done
r1=$(psql_pgpool -c 'SELECT random()')
r2=$(psql_pgpool -c 'SELECT random()')
[ "$r1" != "$r2" ] || fail "random() answered twice alike: $r1"
log "ok: volatile, stable, session and clock values, views, catalogs and the unsafe list are not cached; immutable functions and the safe list are"

# Temporary tables are never cached, whatever check_temp_table says (off from here on,
# so the reads name the primary): two sessions each read their own tt, and a temporary
# t that hides the table t, which is cached by now.
echo "check_temp_table = off" >>"$PGPOOL_CONF"
kill -HUP "$(pgpool_main_pid)"
sleep 2
real=$(psql_node 0 -c 'SELECT * FROM t')
psql_pgpool -c 'SELECT * FROM t' >/dev/null
for v in 101 102; do
    got=$(psql_pgpool -q 2>&1 <<SQL
CREATE TEMP TABLE tt (i int);
INSERT INTO tt VALUES ($v);
/*NO LOAD BALANCE*/ SELECT * FROM tt;
/*NO LOAD BALANCE*/ SELECT * FROM tt;
CREATE TEMP TABLE t (i int);
INSERT INTO t VALUES ($v);
/*NO LOAD BALANCE*/ SELECT * FROM t;
SQL
    )
    assert_eq "$v $v $v" "$(echo $got)" "session $v's temporary tables"
done
assert_eq "$real" "$(psql_pgpool -c 'SELECT * FROM t')" "t after the sessions with a temporary t"
assert_eq 0 "$(hits_of '/*NO LOAD BALANCE*/ SELECT * FROM tt')" "hits of a temporary table"
log "ok: temporary tables are not cached with check_temp_table = off"

# PGPOOL SET CACHE DELETE forgets one entry; pcp_invalidate_query_cache all of them.
psql_pgpool -c 'SELECT imm(2)' >/dev/null
psql_pgpool -c 'SELECT imm(2)' >/dev/null
assert_eq 1 "$(hits_of 'SELECT imm(2)')" "hits of SELECT imm(2) before the delete"
out=$(psql_pgpool -c "PGPOOL SET CACHE DELETE 'SELECT imm(2)'" 2>&1)
assert_contains "$out" 'NOTICE:  query cache deleted. query: "SELECT imm(2)"' "PGPOOL SET CACHE DELETE"
assert_contains "$out" SET "PGPOOL SET CACHE DELETE's command tag"
psql_pgpool -c 'SELECT imm(2)' >/dev/null
assert_eq 1 "$(hits_of 'SELECT imm(2)')" "hits of SELECT imm(2) right after the delete"
psql_pgpool -c 'SELECT imm(2)' >/dev/null
assert_eq 2 "$(hits_of 'SELECT imm(2)')" "hits of SELECT imm(2) once stored again"
out=$(psql_pgpool -c "pgpool set cache delete 'SELECT ''never'''" 2>&1)
assert_contains "$out" "query cache does not exist for query: \"SELECT 'never'\"" "deleting what is not there"
psql_pgpool -c 'SELECT imm(3)' >/dev/null
PCPPASSFILE=$TEST_DIR/etc/pcppass "$PCP_BIN/pcp_invalidate_query_cache" -h 127.0.0.1 -p "$PCP_PORT" \
    -U "$PGSUPERUSER" -w >"$WORK_DIR/pcp.out" 2>&1 || fail "pcp_invalidate_query_cache: $(cat "$WORK_DIR/pcp.out")"
psql_pgpool -c 'SELECT imm(3)' >/dev/null
psql_pgpool -c 'SELECT imm(2)' >/dev/null
assert_eq 0 "$(hits_of 'SELECT imm(3)')" "hits of SELECT imm(3) after pcp_invalidate_query_cache"
assert_eq 2 "$(hits_of 'SELECT imm(2)')" "hits of SELECT imm(2) after pcp_invalidate_query_cache"
log "ok: PGPOOL SET CACHE DELETE and pcp_invalidate_query_cache"

# memcached: evictions are memcached's business (047 goes on).
[ "$CACHE_METHOD" = shmem ] || return 0
# A 1 MB cache under 600 distinct ~12 kB results.
for i in $(seq 1 600); do
    q="SELECT g, pad FROM big WHERE g > $((i % 50)) AND $i > 0"
    psql_pgpool -c "$q" >/dev/null
done
for i in 1 300 599 600; do
    q="SELECT g, pad FROM big WHERE g > $((i % 50)) AND $i > 0"
    assert_eq "$(psql_node 0 -c "$q" | md5sum)" "$(psql_pgpool -c "$q" | md5sum)" "answer of result $i"
done
cache=$(psql_pgpool -c 'SHOW POOL_CACHE')
used=$(echo "$cache" | cut -d'|' -f7)
[ "$used" -le 1048576 ] || fail "used_cache_entries_size $used > 1 MB: $cache"
q="SELECT g, pad FROM big WHERE g > $((1 % 50)) AND 1 > 0"
assert_eq 0 "$(hits_of "$q")" "hits of the oldest result (evicted)"
q="SELECT g, pad FROM big WHERE g > $((600 % 50)) AND 600 > 0"
assert_eq 1 "$(hits_of "$q")" "hits of the newest result"
log "ok: 1 MB cache: $cache"
