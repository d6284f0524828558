#!/usr/bin/env bash
# 061.clients_statement_lb: as 060.clients_streaming (the driver suites of
# regress/clients/, direct vs through pgpool), with
# statement_level_load_balance = on: every read may go to another node.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# 060 runs each program twice direct and three times through pgpool; the other
# modes keep CI short with one direct run (060 checks the scenarios are
# deterministic) and two through pgpool (the second meets the first one's pool).
: "${CLIENTS_DIRECT_RUNS:=1}"
: "${CLIENTS_PGPOOL_RUNS:=2}"
# shellcheck source=regress/clients/lib.sh
source "$REPO_DIR/regress/clients/lib.sh"

setup_cluster 3 s 'load_balance_mode = on' 'statement_level_load_balance = on' \
    'backend_weight0 = 1' 'backend_weight1 = 1' 'backend_weight2 = 1'
clients_setup
clients_sync_standbys
CLIENTS_DIRECT_RUNS=${CLIENTS_DIRECT_RUNS_061:-1}
clients_compare "streaming, statement_level_load_balance = on"
