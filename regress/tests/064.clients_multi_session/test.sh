#!/usr/bin/env bash
# 064.clients_multi_session: the real drivers of 060 (psycopg 3, asyncpg,
# node-postgres, PgJDBC; regress/clients/) through children that each serve
# four sessions from one event loop (sessions_per_child = 4, a pgpool-rs
# option), streaming mode, 3 nodes, load_balance_mode = on: every scenario's
# answers are PostgreSQL's own, as with one client per child.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# shellcheck source=regress/clients/lib.sh
source "$REPO_DIR/regress/clients/lib.sh"

setup_cluster 3 s 'load_balance_mode = on' \
    'backend_weight0 = 1' 'backend_weight1 = 1' 'backend_weight2 = 1' \
    'num_init_children = 3' 'max_pool = 4' 'sessions_per_child = 4'
clients_setup
clients_sync_standbys
clients_compare "streaming, load_balance_mode = on, sessions_per_child = 4"
