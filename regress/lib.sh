# shellcheck shell=bash
# regress/lib.sh - helpers shared by the regression scenarios (regress/tests/*/test.sh).
#
# A test does:
#     source "$REGRESS_LIB"
#     setup_cluster 2 s 'num_init_children = 4'
#     assert_eq "1" "$(psql_pgpool -c 'select 1')" "select 1 through pgpool"
#
# Environment (set by regress/run.sh; defaults let a test run by hand):
#   TEST_DIR        empty scratch directory (traversable by the postgres user)
#   TEST_BASE_PORT  pgpool port; PCP is +1, PostgreSQL node N is +2+N
#   PGPOOL_BIN, PGPOOL_SETUP, PGBIN
#
# setup_cluster installs an EXIT trap (also reached on INT/TERM) that always
# stops everything it started: ./shutdownall, then, by pid only, whatever is
# left (pgpool's pid file, each dataN/postmaster.pid).  Background jobs of the
# test are killed by pid too.
#
# shellcheck disable=SC2317  # functions are reached through traps
# shellcheck disable=SC2034  # variables for the tests (PCP_PORT, PGPOOL_LOG, ...)

# Loaded once (a test may source another test's scenarios, which source this too).
[ -n "${_REGRESS_LIB_LOADED:-}" ] && return 0
_REGRESS_LIB_LOADED=1

set -u
set -o pipefail

REGRESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$REGRESS_DIR/.." && pwd)

: "${TEST_DIR:=$(pwd -P)}"
: "${TEST_BASE_PORT:=20000}"
: "${PGPOOL_BIN:=$REPO_DIR/target/release/pgpool}"
: "${PGPOOL_SETUP:=$REPO_DIR/scripts/pgpool_setup}"
if [ -z "${PGBIN:-}" ]; then
    if command -v pg_config >/dev/null 2>&1 && PGBIN=$(pg_config --bindir 2>/dev/null) \
        && [ -x "$PGBIN/initdb" ]; then
        :
    else
        PGBIN=/usr/lib/postgresql/15/bin
    fi
fi
export TEST_DIR TEST_BASE_PORT PGPOOL_BIN PGPOOL_SETUP PGBIN

PGPOOL_PORT=$TEST_BASE_PORT
PCP_PORT=$((TEST_BASE_PORT + 1))
# The pcp_* tools of this build.
PCP_BIN=${PCP_BIN:-$REPO_DIR/target/release}
# pgpool_setup: as root PostgreSQL runs as "postgres", which is then the
# superuser; otherwise the invoking user is.
if [ "$(id -u)" = 0 ]; then PGSUPERUSER=postgres; else PGSUPERUSER=$(id -un); fi
PGPOOL_CONF=$TEST_DIR/etc/pgpool.conf
PGPOOL_PIDFILE=$TEST_DIR/run/pgpool.pid
PGPOOL_LOG=$TEST_DIR/log/pgpool.log
CLUSTER_NODES=0
# Scratch space for the test's own files (pgpool_setup wants $TEST_DIR empty).
WORK_DIR=$TEST_DIR/work
# Keep libpq from picking up settings of the caller.
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGPASSWORD PGAPPNAME
export PGCONNECT_TIMEOUT=10
export PYTHONDONTWRITEBYTECODE=1

#---------------------------------------------------------------------------
# Messages and assertions
#---------------------------------------------------------------------------
log() { echo "[$(date +%H:%M:%S)] $*"; }

# fail MSG: print and exit 1.  _FAILED also tells the cleanup to exit 1
# even if a test's own EXIT trap ran something else before _cleanup.
_FAILED=false
fail() {
    _FAILED=true
    echo "FAIL: $*" >&2
    exit 1
}

# A failure caused by pgpool (not by the test): same exit, marked for the reader.
pgpool_bug() {
    _FAILED=true
    echo "FAIL (pgpool bug): $*" >&2
    exit 1
}

# assert_eq EXPECTED GOT [what]
assert_eq() {
    if [ "$1" != "$2" ]; then
        fail "${3:-value}: expected [$1], got [$2]"
    fi
    log "ok: ${3:-value} = [$2]"
}

# assert_contains HAYSTACK NEEDLE [what]
assert_contains() {
    case "$1" in
        *"$2"*) log "ok: ${3:-output} contains [$2]" ;;
        *) fail "${3:-output}: [$2] not found in: $1" ;;
    esac
}

# assert_not_contains HAYSTACK NEEDLE [what]
assert_not_contains() {
    case "$1" in
        *"$2"*) fail "${3:-output}: unexpected [$2] in: $1" ;;
        *) log "ok: ${3:-output} does not contain [$2]" ;;
    esac
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

#---------------------------------------------------------------------------
# Clients
#---------------------------------------------------------------------------
node_port() { echo $((TEST_BASE_PORT + 2 + $1)); }

# psql through pgpool (TCP); extra arguments are passed on.
psql_pgpool() {
    "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPOOL_PORT" \
        -U "$PGSUPERUSER" -d test "$@"
}

# psql_node N [args...]: directly to PostgreSQL node N.
psql_node() {
    local n=$1
    shift
    "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(node_port "$n")" \
        -U "$PGSUPERUSER" -d test "$@"
}

# active_count SQL [NODE...]: backends running exactly SQL right now, summed
# over the given nodes (default: every node of the cluster).  Reads may be
# load balanced, so by default every node is looked at.
active_count() {
    local sql=${1//\'/\'\'} n c total=0 nodes
    shift
    if [ "$#" -gt 0 ]; then nodes=("$@"); else mapfile -t nodes < <(seq 0 $((CLUSTER_NODES - 1))); fi
    for n in "${nodes[@]}"; do
        c=$(psql_node "$n" -c "select count(*) from pg_stat_activity where query = '$sql' and state = 'active'" 2>/dev/null)
        [ -n "$c" ] && total=$((total + c))
    done
    echo "$total"
}

# wait_active SQL [NODE...]: wait (10 s at most) until a backend runs exactly
# SQL (on any node by default).
wait_active() {
    local args=("$@")
    _is_active() { [ "$(active_count "${args[@]}")" -ge 1 ]; }
    wait_until 10 _is_active
}

# wait_replay: every standby has replayed the primary's (node 0) current WAL
# position, within 30 s (streaming mode; nodes not in recovery are skipped).
wait_replay() {
    local secs=30 lsn n
    lsn=$(psql_node 0 -c 'select pg_current_wal_lsn()') || fail "cannot read the WAL position of node 0"
    for ((n = 1; n < CLUSTER_NODES; n++)); do
        [ "$(psql_node "$n" -c 'select pg_is_in_recovery()')" = t ] || continue
        _replayed() { [ "$(psql_node "$n" -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" 2>/dev/null)" = t ]; }
        wait_until "$secs" _replayed || fail "node $n did not replay up to $lsn within ${secs}s"
    done
}

pgbench_pgpool() {
    "$PGBIN/pgbench" -h 127.0.0.1 -p "$PGPOOL_PORT" -U "$PGSUPERUSER" "$@" test
}

#---------------------------------------------------------------------------
# Processes
#---------------------------------------------------------------------------
# alive PID: exists and is not a zombie (works for other users' processes).
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

dead() { ! alive "$1"; }
gone() { [ ! -e "$1" ]; }

# read_pid FILE: first line of a pid file, digits only.
read_pid() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(head -n 1 "$1" 2>/dev/null | tr -cd '0-9')
    [ -n "$pid" ] || return 1
    echo "$pid"
}

pgpool_main_pid() {
    local pid
    pid=$(read_pid "$PGPOOL_PIDFILE") || return 1
    alive "$pid" || return 1
    echo "$pid"
}

# Live (not zombie) children of pgpool's main process, one pid per line.
pgpool_children() {
    local pid
    pid=$(pgpool_main_pid) || return 1
    ps -o pid=,stat= --ppid "$pid" | awk '$2 !~ /^Z/ { print $1 }'
}

# wait_until SECONDS COMMAND...: poll every 0.2 s; false on timeout.
wait_until() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    "$@"
}

pgpool_answers() { psql_pgpool -c 'select 1' >/dev/null 2>&1; }

# kill_pid_of PID COMM_PATTERN: kill one process (and then its children) by
# pid, only if its command name matches (a stale pid file may point to a
# reused pid).
kill_pid_of() {
    local pid=$1 pattern=$2 comm kids i
    alive "$pid" || return 0
    comm=$(ps -o comm= -p "$pid" 2>/dev/null) || return 0
    # shellcheck disable=SC2254  # the pattern is a glob on purpose
    case "$comm" in
        $pattern) ;;
        *) echo "not killing pid $pid: it is '$comm', not $pattern" >&2; return 0 ;;
    esac
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ')
    echo "killing leftover $comm (pid $pid)" >&2
    kill -QUIT "$pid" 2>/dev/null
    for ((i = 0; i < 25; i++)); do
        alive "$pid" || break
        sleep 0.2
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    for k in $kids; do
        alive "$k" && kill -KILL "$k" 2>/dev/null
    done
    return 0
}

# stop_everything DIR: ./shutdownall, then kill by pid whatever survived.
stop_everything() {
    local dir=$1 pid d
    if [ -x "$dir/shutdownall" ]; then
        timeout -k 5 60 "$dir/shutdownall" >>"$dir/cleanup.log" 2>&1 \
            || echo "shutdownall failed (see $dir/cleanup.log)" >&2
    fi
    if pid=$(read_pid "$dir/run/pgpool.pid"); then
        kill_pid_of "$pid" 'pgpool*'
    fi
    for d in "$dir"/data*; do
        [ -f "$d/postmaster.pid" ] || continue
        pid=$(read_pid "$d/postmaster.pid") || continue
        kill_pid_of "$pid" 'postgres*'
    done
    return 0
}

# add_cleanup CMD...: run CMD (eval'd) at cleanup, before the cluster is
# stopped; e.g. add_cleanup "kill -CONT $pid".  Use this rather than a trap
# of the test's own: the EXIT trap belongs to this library.
_CLEANUP_HOOKS=()
add_cleanup() { _CLEANUP_HOOKS+=("$*"); }

_cleanup_done=false
_cleanup() {
    local rc=$? j h
    $_cleanup_done && return
    _cleanup_done=true
    $_FAILED && rc=1
    trap - INT TERM
    for h in "${_CLEANUP_HOOKS[@]}"; do
        eval "$h" || true
    done
    # Background jobs of the test (psql, python), by pid.
    for j in $(jobs -p); do
        kill "$j" 2>/dev/null
    done
    stop_everything "$TEST_DIR"
    exit "$rc"
}

install_cleanup() {
    trap _cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

#---------------------------------------------------------------------------
# Cluster
#---------------------------------------------------------------------------
# setup_cluster N [mode] [pgpool.conf lines...]
#   pgpool_setup -n N -m MODE (s streaming, n raw, r native, ...) in $TEST_DIR,
#   the extra lines appended to etc/pgpool.conf, then ./startall and a wait
#   until "select 1" works through pgpool.
setup_cluster() {
    local n=$1 mode=${2:-s} line
    shift
    [ "$#" -gt 0 ] && shift
    install_cleanup
    CLUSTER_NODES=$n
    log "pgpool_setup -n $n -m $mode -p $PGPOOL_PORT in $TEST_DIR"
    (cd "$TEST_DIR" && "$PGPOOL_SETUP" -n "$n" -m "$mode" -p "$PGPOOL_PORT") \
        >"$TEST_DIR/.pgpool_setup.out" 2>&1 \
        || { cat "$TEST_DIR/.pgpool_setup.out" >&2; fail "pgpool_setup failed"; }
    for line in "$@"; do
        printf '%s\n' "$line" >>"$PGPOOL_CONF"
        log "pgpool.conf: $line"
    done
    start_cluster
    mkdir -p "$WORK_DIR"
}

start_cluster() {
    "$TEST_DIR/startall" >>"$TEST_DIR/startall.out" 2>&1 \
        || { cat "$TEST_DIR/startall.out" >&2; fail "startall failed"; }
    wait_until 30 pgpool_answers || fail "pgpool does not answer 'select 1' on port $PGPOOL_PORT"
    log "cluster up: pgpool pid $(pgpool_main_pid), port $PGPOOL_PORT"
}

# Processes the main process forked: connection children, and (depending on
# the build and the configuration) health check, PCP and worker processes.
# They all look alike from outside, so tests compare counts with a baseline.
child_count() { pgpool_children | grep -c .; }

# settled_child_count: the number of children once it has not changed for 1 s
# (at most 15 s).
settled_child_count() {
    local prev cur i
    prev=$(child_count)
    for ((i = 0; i < 15; i++)); do
        sleep 1
        cur=$(child_count)
        [ "$cur" = "$prev" ] && break
        prev=$cur
    done
    echo "$prev"
}

# wait_for_children N [SECONDS]: pgpool has exactly N children.
wait_for_children() {
    local want=$1 secs=${2:-10}
    _have_children() { [ "$(child_count)" = "$want" ]; }
    wait_until "$secs" _have_children
}

# busy_children: pids of pgpool processes holding an accepted client
# connection on the pgpool port (connection children serving a client).
busy_children() {
    ss -Htnp state established "( sport = :$PGPOOL_PORT )" 2>/dev/null \
        | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}
