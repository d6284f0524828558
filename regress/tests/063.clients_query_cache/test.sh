#!/usr/bin/env bash
# 063.clients_query_cache: the drivers' scenarios (psycopg 3, asyncpg, node-postgres,
# PgJDBC; regress/clients/) through pgpool with the query cache on
# (memory_cache_enabled = on, shmem) and load balancing over 3 nodes: every answer
# equals the primary's, whatever the cache kept from the runs before (each scenario
# writes, reads back, and runs again in the next run). Issue 13.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# 060 runs each program twice direct and three times through pgpool; the other
# modes keep CI short with one direct run (060 checks the scenarios are
# deterministic) and two through pgpool (the second meets the first one's pool).
: "${CLIENTS_DIRECT_RUNS:=1}"
: "${CLIENTS_PGPOOL_RUNS:=2}"
# shellcheck source=regress/clients/lib.sh
source "$REPO_DIR/regress/clients/lib.sh"

setup_cluster 3 s 'load_balance_mode = on' \
    'backend_weight0 = 1' 'backend_weight1 = 1' 'backend_weight2 = 1' \
    'memory_cache_enabled = on'
clients_setup
clients_sync_standbys
clients_compare "streaming, load_balance_mode = on, memory_cache_enabled = on"
hits=$(psql_pgpool -c 'SHOW POOL_CACHE' | cut -d'|' -f1)
log "query cache hits during the runs: $hits (SHOW POOL_CACHE: $(psql_pgpool -c 'SHOW POOL_CACHE'))"
[ "$hits" -gt 0 ] || fail "the drivers' runs never hit the cache"
