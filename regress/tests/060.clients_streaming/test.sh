#!/usr/bin/env bash
# 060.clients_streaming: real drivers (psycopg 3, asyncpg, node-postgres,
# PgJDBC; regress/clients/) see through pgpool exactly what PostgreSQL sends:
# streaming mode, 3 nodes, load_balance_mode = on, weights 1:1:1, both
# standbys synchronous with synchronous_commit = remote_apply (so replication
# lag explains nothing).  Each driver's program runs twice directly against the
# primary (the scenarios must be deterministic) and 3 times through pgpool (the
# load-balance node is drawn at random per session); any difference fails the
# test with a diff per scenario.  Issue 10.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# shellcheck source=regress/clients/lib.sh
source "$REPO_DIR/regress/clients/lib.sh"

setup_cluster 3 s 'load_balance_mode = on' \
    'backend_weight0 = 1' 'backend_weight1 = 1' 'backend_weight2 = 1'
clients_setup
clients_sync_standbys
clients_compare "streaming, load_balance_mode = on"
