#!/usr/bin/env bash
# regress/run.sh - run pgpool-rs regression scenarios against real clusters.
#
# usage: regress/run.sh [-t SECONDS] [-k] [test ...]
#   test      a directory name under regress/tests (001.basic), its number
#             (001) or its name (basic); default: all of them, in order
#   -t SECS   per-test timeout (default $TEST_TIMEOUT or 300)
#   -k        keep every test directory, also on success
#
# Each test runs as "bash test.sh" in a fresh directory (mktemp -d under
# /tmp, mode 755 so the postgres user can traverse it) with its own ports:
# TEST_BASE_PORT = 20000 + 100 * NNN (pgpool), +1 PCP, +2.. PostgreSQL nodes.
# The directory is removed when the test passes and kept (path printed) when
# it fails.  Output goes to regress/results/NNN.name.log; on failure the
# cluster's pgpool log is copied beside it.
#
# Environment passed to the tests: PGPOOL_BIN, PGPOOL_SETUP, PGBIN,
# TEST_BASE_PORT, TEST_DIR, REGRESS_LIB.  REGRESS_RESULTS moves the logs.
# Two runs on one machine (two checkouts) would fight over a test's ports:
# each test holds /tmp/pgpool-regress.port-BASE.lock (flock) while it runs,
# so the second run waits for that test instead of failing strangely.
set -u
set -o pipefail

REGRESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$REGRESS_DIR/.." && pwd)
TESTS_DIR=$REGRESS_DIR/tests
RESULTS_DIR=${REGRESS_RESULTS:-$REGRESS_DIR/results}

TIMEOUT=${TEST_TIMEOUT:-300}
KEEP=false
while getopts "t:kh" opt; do
    case "$opt" in
        t) TIMEOUT=$OPTARG ;;
        k) KEEP=true ;;
        h) sed -n '2,20p' "$0"; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))

export PGPOOL_BIN=${PGPOOL_BIN:-$REPO_DIR/target/release/pgpool}
export PGPOOL_SETUP=${PGPOOL_SETUP:-$REPO_DIR/scripts/pgpool_setup}
if [ -z "${PGBIN:-}" ]; then
    if command -v pg_config >/dev/null 2>&1 && PGBIN=$(pg_config --bindir 2>/dev/null) \
        && [ -x "$PGBIN/initdb" ]; then
        :
    else
        PGBIN=/usr/lib/postgresql/15/bin
    fi
fi
export PGBIN
export REGRESS_LIB=$REGRESS_DIR/lib.sh

[ -x "$PGPOOL_BIN" ] || { echo "run.sh: $PGPOOL_BIN not found: run 'cargo build --release -p pgpool' first" >&2; exit 2; }
[ -x "$PGPOOL_SETUP" ] || { echo "run.sh: $PGPOOL_SETUP not found or not executable" >&2; exit 2; }
[ -x "$PGBIN/initdb" ] || { echo "run.sh: no initdb in PGBIN=$PGBIN" >&2; exit 2; }
command -v timeout >/dev/null || { echo "run.sh: 'timeout' (coreutils) is required" >&2; exit 2; }

# Which tests.
all=()
for d in "$TESTS_DIR"/[0-9][0-9][0-9].*/; do
    [ -f "$d/test.sh" ] && all+=("$(basename "$d")")
done
selected=()
if [ "$#" -eq 0 ]; then
    selected=("${all[@]}")
else
    for want in "$@"; do
        want=${want%/}
        want=${want##*/}
        found=false
        for t in "${all[@]}"; do
            if [ "$t" = "$want" ] || [ "${t%%.*}" = "$want" ] || [ "${t#*.}" = "$want" ]; then
                selected+=("$t")
                found=true
            fi
        done
        $found || { echo "run.sh: no such test: $want" >&2; exit 2; }
    done
fi

mkdir -p "$RESULTS_DIR"
# shellcheck source=regress/lib.sh
source "$REGRESS_LIB"   # for stop_everything (a safety net after each test)
trap - EXIT INT TERM

# Ctrl-C: stop the running test (it cleans up on TERM), then give up.
interrupted=false
test_pid=
on_signal() {
    interrupted=true
    # timeout(1) runs in its own process group: pass the signal on; it
    # forwards it to the test, whose trap stops the cluster.
    [ -n "$test_pid" ] && kill -TERM "$test_pid" 2>/dev/null
}
trap on_signal INT TERM

passed=()
failed=()
suite_start=$(date +%s)
echo "pgpool: $PGPOOL_BIN"
echo "PostgreSQL: $PGBIN"
echo "results: $RESULTS_DIR"
for t in "${selected[@]}"; do
    $interrupted && break
    num=$((10#${t%%.*}))
    base=$((20000 + 100 * num))
    if [ "$base" -gt 29900 ]; then
        echo "run.sh: test number of $t too large for the port range 20000-29999" >&2
        failed+=("$t")
        continue
    fi
    lock_fd=
    if command -v flock >/dev/null 2>&1; then
        exec {lock_fd}>"/tmp/pgpool-regress.port-$base.lock"
        if ! flock -n "$lock_fd"; then
            echo "($t: ports $base.. in use by another run, waiting)" >&2
            flock -w "$TIMEOUT" "$lock_fd" || { echo "run.sh: gave up waiting for the lock of ports $base.." >&2; }
        fi
    fi
    dir=$(mktemp -d "/tmp/pgpool-regress.$t.XXXXXX") || { echo "run.sh: mktemp failed" >&2; exit 2; }
    chmod 755 "$dir"
    logf=$RESULTS_DIR/$t.log
    rm -f "$RESULTS_DIR/$t".*
    printf 'testing %s...' "$t"
    start=$(date +%s)
    {
        echo "test $t: TEST_DIR=$dir TEST_BASE_PORT=$base timeout=${TIMEOUT}s"
        echo "started $(date '+%F %T')"
    } >"$logf"
    # The test gets TERM at the timeout (its trap cleans up), KILL 60 s later.
    # (The lock fd is closed in the test: daemons must not inherit it.)
    (if [ -n "$lock_fd" ]; then exec {lock_fd}>&-; fi
     cd "$dir" && TEST_DIR=$dir TEST_BASE_PORT=$base exec timeout -k 60 "$TIMEOUT" \
        bash "$TESTS_DIR/$t/test.sh") >>"$logf" 2>&1 </dev/null &
    test_pid=$!
    wait "$test_pid" 2>/dev/null
    rc=$?
    if $interrupted; then
        # wait was interrupted by our trap: let the test finish cleaning up.
        wait "$test_pid" 2>/dev/null
        rc=130
    fi
    test_pid=
    elapsed=$(($(date +%s) - start))
    [ "$rc" = 124 ] && echo "TIMEOUT after ${TIMEOUT}s" >>"$logf"
    echo "exit status $rc" >>"$logf"
    # Safety net: nothing of this test may survive it.
    TEST_DIR=$dir stop_everything "$dir" >>"$logf" 2>&1
    if [ "$rc" = 0 ]; then
        echo "ok (${elapsed}s)"
        passed+=("$t")
        $KEEP || rm -rf "$dir"
    else
        reason="failed"
        [ "$rc" = 124 ] && reason="failed (timeout)"
        echo "$reason (${elapsed}s)"
        failed+=("$t")
        [ -f "$dir/log/pgpool.log" ] && cp "$dir/log/pgpool.log" "$RESULTS_DIR/$t.pgpool.log"
        echo "    kept $dir; log $logf"
        grep -E '^FAIL' "$logf" | head -n 5 | sed 's/^/    /'
    fi
    [ -n "$lock_fd" ] && exec {lock_fd}>&-
done

total=$(($(date +%s) - suite_start))
echo "========================================"
echo "${#passed[@]} of ${#selected[@]} tests passed in ${total}s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed: ${failed[*]}"
fi
$interrupted && { echo "interrupted"; exit 130; }
[ "${#failed[@]}" -eq 0 ] && [ "${#passed[@]}" -eq "${#selected[@]}" ]
