#!/usr/bin/env bash
# 040.configs_4x: Pgpool-II's own pgpool.conf.sample-stream of the newest 4.4, 4.5, 4.6
# and 4.7 release (read from the pgpool2 mirror at test time, never copied into this
# repository) starts pgpool-rs unchanged, with only the cluster's backend, port and path
# lines of pgpool_setup appended:
# - as shipped (every parameter commented out but backend_clustering_mode), and with every
#   `#name = value` example line uncommented (each parameter set to the sample's value);
# - pgpool-rs then serves queries, `PGPOOL SHOW ALL` lists every parameter name the sample
#   contains (indexed ones when they are set), and the start-up log's "not supported yet"
#   warnings name only parameters of README.md's list of those not implemented.
# Without the mirror (PGPOOL2_MIRROR, default /work/.mirror/pgpool+pgpool2/repo) the test
# is skipped.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

MIRROR=${PGPOOL2_MIRROR:-/work/.mirror/pgpool+pgpool2/repo}
if ! git -C "$MIRROR" rev-parse --git-dir >/dev/null 2>&1; then
    echo "SKIP: no pgpool2 git mirror at $MIRROR (set PGPOOL2_MIRROR): nothing to test"
    exit 0
fi
SAMPLE=src/sample/pgpool.conf.sample-stream

tags=()
for minor in 4 5 6 7; do
    t=$(git -C "$MIRROR" tag -l "V4_${minor}_*" | grep -E "^V4_${minor}_[0-9]+$" | sort -V | tail -n 1)
    [ -n "$t" ] || fail "the mirror has no V4_${minor}_N tag"
    tags+=("$t")
done
log "samples of: ${tags[*]}"

setup_cluster 2 s

# The part pgpool_setup appended to its sample: the cluster's own settings.
APPENDED=$WORK_DIR/appended.conf
sed -n '/^# Added by pgpool_setup/,$p' "$PGPOOL_CONF" >"$APPENDED"
[ -s "$APPENDED" ] || fail "no pgpool_setup block in $PGPOOL_CONF"

# Parameter names pgpool-rs may report as not supported: README's list.
ALLOWED=$WORK_DIR/allowed
sed -n '/^## Parameters recognised but not implemented yet/,/^## /p' "$REPO_DIR/README.md" \
    | grep -o '`[A-Za-z_0-9]*`' | tr -d '`' | sed 's/N$//' | sort -u >"$ALLOWED"
[ "$(grep -c . "$ALLOWED")" -gt 5 ] || fail "README.md's list of parameters not implemented not found"

stop_pgpool() {
    local pid
    pid=$(pgpool_main_pid) || return 0
    "$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1
    wait_until 20 dead "$pid" || fail "pgpool (pid $pid) did not stop"
}

# uncomment FILE: every `#name = value` line as `name = value`.
uncomment() { sed -E 's/^#([A-Za-z_][A-Za-z_0-9]*[[:space:]]*=)/\1/' "$1"; }

# check_config TAG VARIANT SAMPLE_FILE
check_config() {
    local tag=$1 variant=$2 sample=$3 names shown name base missing=() warned n
    stop_pgpool
    { cat "$sample"; echo; cat "$APPENDED"; } >"$PGPOOL_CONF"
    "$TEST_DIR/startall" >>"$TEST_DIR/startall.out" 2>&1 \
        || { tail -n 20 "$PGPOOL_LOG" >&2; pgpool_bug "$tag ($variant): pgpool-rs did not start"; }
    wait_until 30 pgpool_answers || pgpool_bug "$tag ($variant): no answer to 'select 1'"
    assert_eq "2" "$(psql_pgpool -c 'select count(*) from (values (1), (2)) v')" "$tag ($variant): a query"
    assert_eq "t" "$(psql_pgpool -c 'select count(*) > 0 from pg_class')" "$tag ($variant): a catalog read"

    shown=$(psql_pgpool -c 'PGPOOL SHOW ALL' | cut -d'|' -f1 | sort -u)
    [ -n "$shown" ] || pgpool_bug "$tag ($variant): PGPOOL SHOW ALL is empty"
    if [ "$variant" = uncommented ]; then
        names=$(grep -oE '^[A-Za-z_][A-Za-z_0-9]*[[:space:]]*=' "$sample" | tr -d ' =\t' | sort -u)
    else
        # commented out, indexed parameters (backend_hostname1...) name nodes that are not
        # configured: only the plain names must be listed
        names=$(grep -oE '^#?[A-Za-z_][A-Za-z_0-9]*[[:space:]]*=' "$sample" | tr -d '# =\t' \
            | grep -vE '[0-9]$' | sort -u)
    fi
    n=0
    for name in $names; do
        n=$((n + 1))
        grep -qxF "$name" <<<"$shown" || missing+=("$name")
    done
    [ "${#missing[@]}" -eq 0 ] || pgpool_bug "$tag ($variant): PGPOOL SHOW ALL lacks: ${missing[*]}"
    log "ok: $tag ($variant): PGPOOL SHOW ALL lists all $n parameter names of the sample"

    warned=$(grep -o 'parameter "[^"]*" is set but not supported yet' "$PGPOOL_LOG" | cut -d'"' -f2 | sort -u)
    for name in $warned; do
        base=${name%%[0-9]*}
        grep -qxF "$name" "$ALLOWED" || grep -qxF "$base" "$ALLOWED" \
            || pgpool_bug "$tag ($variant): \"$name\" reported as not supported, but README.md does not list it"
    done
    log "ok: $tag ($variant): not supported: [$(echo $warned)] (all listed in README.md)"
    if [ "$variant" = "as shipped" ]; then
        # defaults of the release the header names, where the sample leaves them out
        local minor=${tag#V4_}
        minor=${minor%%_*}
        local pcp=off db=postgres
        [ "$minor" -lt 7 ] && pcp=on db=template1
        assert_eq "$pcp" "$(psql_pgpool -c 'PGPOOL SHOW log_pcp_processes')" "$tag: log_pcp_processes"
        assert_eq "$db" "$(psql_pgpool -c 'PGPOOL SHOW recovery_database')" "$tag: recovery_database"
    fi
    if grep -q 'unrecognized configuration parameter' "$PGPOOL_LOG"; then
        pgpool_bug "$tag ($variant): an unrecognized parameter: $(grep 'unrecognized' "$PGPOOL_LOG" | head -n 1)"
    fi
}

for tag in "${tags[@]}"; do
    git -C "$MIRROR" show "$tag:$SAMPLE" >"$WORK_DIR/$tag.conf" 2>/dev/null \
        || fail "$tag has no $SAMPLE"
    check_config "$tag" "as shipped" "$WORK_DIR/$tag.conf"
    uncomment "$WORK_DIR/$tag.conf" >"$WORK_DIR/$tag.uncommented.conf"
    check_config "$tag" uncommented "$WORK_DIR/$tag.uncommented.conf"
done

# The last start (4.7, whose header makes logdir an old name): Pgpool-II 4.7's warning
# about pgpool_setup's logdir line is logged.
assert_contains "$(cat "$PGPOOL_LOG")" "logdir is changed to work_dir" "4.7 start-up log"
stop_pgpool
