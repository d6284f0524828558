# shellcheck shell=bash
# regress/clients/lib.sh - driver compatibility suites (issue 10), sourced by
# regress/tests/06x.clients_*/test.sh after regress/lib.sh.
#
# Each driver program (psycopg, asyncpg, node-postgres, PgJDBC, tokio-postgres)
# runs a list of named scenarios against one port and prints "== scenario"
# blocks of canonical text.  The test runs every program directly against the
# primary (node 0) and several times through pgpool, and fails with a diff per
# scenario when an output differs.  Nothing in an output may depend on which
# server answered.
#
#   clients_setup          install/build what the programs need (setup.sh)
#   clients_sync_standbys  synchronous_commit = remote_apply, every standby synchronous
#   clients_compare LABEL  run all drivers direct and through pgpool, compare
#
# Knobs (environment):
#   CLIENTS_DRIVERS        drivers to run (default: psycopg asyncpg node jdbc rust)
#   CLIENTS_PGPOOL_RUNS    runs through pgpool per driver (default 3)
#   CLIENTS_DIRECT_RUNS    runs direct per driver (default 2: the second checks the
#                          scenarios themselves are deterministic)
#   CLIENT_ONLY            comma separated scenarios to run (default all)
#   CLIENT_SCENARIO_TIMEOUT  seconds one scenario may take (default 20)
#   CLIENTS_PROGRAM_TIMEOUT  seconds one program run may take (default 120)

CLIENTS_DIR=$REPO_DIR/regress/clients
: "${CLIENTS_DRIVERS:=psycopg asyncpg node jdbc rust}"
: "${CLIENTS_PGPOOL_RUNS:=3}"
: "${CLIENTS_DIRECT_RUNS:=2}"
: "${CLIENT_SCENARIO_TIMEOUT:=20}"
: "${CLIENTS_PROGRAM_TIMEOUT:=120}"
export CLIENT_SCENARIO_TIMEOUT

clients_setup() {
    log "clients: installing/building the driver programs (regress/clients/setup.sh)"
    bash "$CLIENTS_DIR/setup.sh" $CLIENTS_DRIVERS >"$WORK_DIR/clients_setup.out" 2>&1 \
        || { tail -n 40 "$WORK_DIR/clients_setup.out" >&2; fail "regress/clients/setup.sh failed"; }
    grep '^version:' "$WORK_DIR/clients_setup.out" | while read -r line; do log "clients: $line"; done
}

# The command line of one driver's program.
clients_cmd() {
    case "$1" in
        psycopg) echo "$CLIENTS_DIR/.venv/bin/python $CLIENTS_DIR/python/psycopg_suite.py" ;;
        asyncpg) echo "$CLIENTS_DIR/.venv/bin/python $CLIENTS_DIR/python/asyncpg_suite.py" ;;
        node) echo "node $CLIENTS_DIR/node/suite.js" ;;
        jdbc) echo "java -Xss4m -cp $CLIENTS_DIR/jdbc/build:/usr/share/java/postgresql.jar Suite" ;;
        rust) echo "$CLIENTS_DIR/rust/target/debug/tokio-postgres-suite" ;;
        *) fail "unknown driver $1" ;;
    esac
}

clients_sync_standbys() {
    local n=$((CLUSTER_NODES - 1)) got
    psql_node 0 -q -c "alter system set synchronous_standby_names = 'ANY $n (*)'" \
        -c "alter system set synchronous_commit = 'remote_apply'" -c 'select pg_reload_conf()' >/dev/null \
        || fail "cannot make the standbys synchronous"
    _all_sync() {
        got=$(psql_node 0 -c "select count(*) from pg_stat_replication where sync_state in ('sync', 'quorum') and state = 'streaming'")
        [ "$got" = "$n" ]
    }
    wait_until 30 _all_sync || fail "only $got of $n standbys synchronous: $(psql_node 0 -c 'select application_name, state, sync_state from pg_stat_replication')"
    log "clients: $n synchronous standbys (remote_apply): $(psql_node 0 -c "select string_agg(application_name || ' ' || sync_state, ', ') from pg_stat_replication")"
}

# clients_run DRIVER PORT OUT: one run of a driver's program; a scenario that
# hangs (the program exits 3 after printing "!! HUNG", or the whole program
# times out) is marked in OUT and the program runs again from the next one.
clients_run() {
    local driver=$1 port=$2 outf=$3 cmd rc last after="" tries=0
    cmd=$(clients_cmd "$driver")
    : >"$outf"
    while :; do
        tries=$((tries + 1))
        # shellcheck disable=SC2086  # cmd is a word list on purpose
        CLIENT_HOST=127.0.0.1 CLIENT_PORT=$port CLIENT_USER=$PGSUPERUSER CLIENT_DB=test CLIENT_AFTER=$after \
            timeout -k 5 "$CLIENTS_PROGRAM_TIMEOUT" $cmd >>"$outf" 2>>"$outf.stderr" </dev/null
        rc=$?
        [ "$rc" = 0 ] && break
        last=$(grep '^== ' "$outf" | tail -n 1 | cut -c4-)
        case "$rc" in
            3) ;;                                            # "!! HUNG" already printed
            124 | 137) echo "!! HUNG: program killed after ${CLIENTS_PROGRAM_TIMEOUT}s" >>"$outf" ;;
            *) echo "!! program exited with status $rc" >>"$outf" ;;
        esac
        # resume after the scenario that hung / crashed, unless it made no progress
        if [ -z "$last" ] || [ "$last" = "$after" ] || [ "$tries" -gt 40 ]; then
            break
        fi
        after=$last
    done
}

# clients_compare LABEL: every driver direct ($CLIENTS_DIRECT_RUNS) and through
# pgpool ($CLIENTS_PGPOOL_RUNS; all drivers' first run, then the second, ...);
# fails listing each differing scenario with its diff.  Runs not started within
# CLIENTS_BUDGET seconds of the test's start (default 250: run.sh's per-test
# timeout is 300) are skipped and the test fails saying so.
clients_compare() {
    local label=$1 driver i n_scen outd=$WORK_DIR/clients bad=0 bad_direct=0 skipped=""
    local report=$WORK_DIR/clients/report.txt budget=${CLIENTS_BUDGET:-250}
    mkdir -p "$outd"
    : >"$report"
    for driver in $CLIENTS_DRIVERS; do
        for ((i = 1; i <= CLIENTS_DIRECT_RUNS; i++)); do
            clients_run "$driver" "$(node_port 0)" "$outd/$driver.direct$i.out"
        done
        n_scen=$(grep -c '^== ' "$outd/$driver.direct1.out")
        [ "$n_scen" -gt 0 ] || { cat "$outd/$driver.direct1.out.stderr" >&2; fail "$driver: no scenario ran directly"; }
        log "clients: $driver direct: $n_scen scenarios ($(head -n 1 "$outd/$driver.direct1.out" | sed 's/^# //'))"
        for ((i = 2; i <= CLIENTS_DIRECT_RUNS; i++)); do
            if ! python3 "$CLIENTS_DIR/compare.py" "$driver direct run 1" "$outd/$driver.direct1.out" \
                "$driver direct run $i" "$outd/$driver.direct$i.out" >>"$report"; then
                bad_direct=1
                log "clients: $driver: direct run $i differs from direct run 1 in: $(python3 "$CLIENTS_DIR/compare.py" --names "$outd/$driver.direct1.out" "$outd/$driver.direct$i.out") (not deterministic: a test bug)"
            fi
        done
    done
    for ((i = 1; i <= CLIENTS_PGPOOL_RUNS; i++)); do
        for driver in $CLIENTS_DRIVERS; do
            if [ "$SECONDS" -gt "$budget" ]; then
                skipped="$skipped $driver#$i"
                continue
            fi
            clients_run "$driver" "$PGPOOL_PORT" "$outd/$driver.pgpool$i.out"
            n_scen=$(grep -c '^== ' "$outd/$driver.direct1.out")
            if python3 "$CLIENTS_DIR/compare.py" "$driver direct" "$outd/$driver.direct1.out" \
                "$driver pgpool ($label) run $i" "$outd/$driver.pgpool$i.out" >>"$report"; then
                log "clients: $driver ($label) run $i: $n_scen scenarios identical"
            else
                bad=1
                log "clients: $driver ($label) run $i: DIFFERS in: $(python3 "$CLIENTS_DIR/compare.py" --names "$outd/$driver.direct1.out" "$outd/$driver.pgpool$i.out")"
            fi
        done
    done
    if [ -n "$skipped" ]; then
        log "clients: out of time (${budget}s), runs not done:$skipped"
    fi
    if [ "$bad" != 0 ] || [ "$bad_direct" != 0 ]; then
        cat "$report"
        [ "$bad_direct" = 0 ] || fail "a scenario gives different answers directly against PostgreSQL (fix the scenario; outputs in $outd)"
        pgpool_bug "driver outputs through pgpool ($label) differ from PostgreSQL's (diffs above; outputs in $outd)"
    fi
    [ -z "$skipped" ] || fail "runs skipped for lack of time:$skipped"
    log "ok: every driver's scenarios identical direct and through pgpool ($label)"
}
