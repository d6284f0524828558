#!/usr/bin/env bash
# 062.clients_raw: the driver suites of regress/clients/ (direct vs through
# pgpool, as 060.clients_streaming) in raw mode (pgpool_setup -m n, 2 nodes):
# everything goes to node 0, so pgpool must be a transparent relay.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"
# 060 runs each program twice direct and three times through pgpool; the other
# modes keep CI short with one direct run (060 checks the scenarios are
# deterministic) and two through pgpool (the second meets the first one's pool).
: "${CLIENTS_DIRECT_RUNS:=1}"
: "${CLIENTS_PGPOOL_RUNS:=2}"
# shellcheck source=regress/clients/lib.sh
source "$REPO_DIR/regress/clients/lib.sh"

setup_cluster 2 n
clients_setup
CLIENTS_DIRECT_RUNS=${CLIENTS_DIRECT_RUNS_062:-1}
# raw mode draws no node: one run through pgpool is enough
CLIENTS_PGPOOL_RUNS=${CLIENTS_PGPOOL_RUNS_062:-1}
clients_compare "raw mode"
