#!/usr/bin/env bash
# 011.pipelines: pipelined client input whose answers pgpool partly writes itself.
# A transaction fails mid-pipeline; when a read, COMMIT and another read then arrive
# in one packet, pgpool refuses the first read itself (25P02, as Pgpool-II does in an
# aborted transaction) and must still route the two queries it has already read: no
# socket event will come for them (this hung before the fix). Load balancing on, so
# the reads have a standby to go to.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s 'load_balance_mode = on'

python3 "$REGRESS_DIR/lib/pgwire.py" aborted-pipeline 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 10 \
    || pgpool_bug "pipelined queries after a refused read were not all answered"
assert_eq 1 "$(psql_pgpool -c 'select 1')" "a new session after the pipelines"
