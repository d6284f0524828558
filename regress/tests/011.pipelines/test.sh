#!/usr/bin/env bash
# 011.pipelines: pipelined client input over three nodes with load balancing on,
# answered exactly as one PostgreSQL server answers it.
# - A transaction fails mid-pipeline; when a read, COMMIT and another read then arrive
#   in one packet, pgpool refuses the first read itself (25P02, as Pgpool-II does in an
#   aborted transaction) and must still route the two queries it has already read: no
#   socket event will come for them (this hung before 2f653f8).
# - regress/lib/pipeline_fuzz.py: seeded random pipelines (reads, writes, transaction
#   control, savepoints, SET/SHOW, errors; sent whole, per message or in slices) run
#   directly and through pgpool; answers must be identical. The standbys are synchronous
#   with remote_apply, so a read may differ only if pgpool reorders the session's
#   statements (a read sent before a write saw it, before the write was held back).
#   Then again with statement_level_load_balance = on.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2
# shellcheck source=regress/clients/lib.sh
source "$REPO_DIR/regress/clients/lib.sh"

setup_cluster 3 s 'load_balance_mode = on' \
    'backend_weight0 = 1' 'backend_weight1 = 1' 'backend_weight2 = 1'
clients_sync_standbys
: "${PIPELINE_ROUNDS:=150}"

python3 "$REGRESS_DIR/lib/pgwire.py" aborted-pipeline 127.0.0.1 "$PGPOOL_PORT" "$PGSUPERUSER" test 10 \
    || pgpool_bug "pipelined queries after a refused read were not all answered"

fuzz() {
    python3 "$REGRESS_DIR/lib/pipeline_fuzz.py" 127.0.0.1 "$(node_port 0)" "$PGPOOL_PORT" \
        "$PGSUPERUSER" test "$1" "$PIPELINE_ROUNDS" \
        || pgpool_bug "pipelines answered differently through pgpool ($2)"
}
fuzz 1 "load_balance_mode = on"

echo "statement_level_load_balance = on" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >"$WORK_DIR/reload.out" 2>&1 \
    || { cat "$WORK_DIR/reload.out"; fail "pgpool reload failed"; }
statement_lb_on() { [ "$(psql_pgpool -c 'pgpool show statement_level_load_balance')" = on ]; }
wait_until 10 statement_lb_on || fail "statement_level_load_balance did not become on"
fuzz 2 "statement_level_load_balance = on"

assert_eq 1 "$(psql_pgpool -c 'select 1')" "a new session after the pipelines"
