#!/usr/bin/env bash
# 043.dynamic_children: process_management_mode = dynamic (Pgpool-II 4.4) with the
# aggressive strategy, num_init_children 20, min_spare_children 2, max_spare_children 4.
# - at start max_spare_children (4) children wait for clients;
# - 200 short sessions (10 at a time) all succeed, then the spare count is back
#   between min and max;
# - 16 sessions held at once (fewer than num_init_children) are all served (waiting in
#   the listen queue, not refused): children are forked on demand, never more than 20;
# - once they end, the surplus idle children are retired (aggressive: after ~50 s)
#   until at most max_spare_children wait; never fewer than min_spare_children.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

setup_cluster 1 s \
    'num_init_children = 20' \
    'process_management_mode = dynamic' \
    'process_management_strategy = aggressive' \
    'min_spare_children = 2' \
    'max_spare_children = 4'

# Connection children of the main process (not PCP, health check or worker), and
# those of them waiting for a client.
conn_children() {
    local pid
    pid=$(pgpool_main_pid) || return 1
    ps -o args= --ppid "$pid" | grep '^pgpool: ' | grep -vE 'PCP|health check|worker process'
}
n_children() { conn_children | grep -c .; }
n_idle() { conn_children | grep -cx 'pgpool: wait for connection request'; }
spare_in_bounds() { local i; i=$(n_idle); [ "$i" -ge 2 ] && [ "$i" -le 4 ]; }

assert_eq "dynamic" "$(psql_pgpool -c 'PGPOOL SHOW process_management_mode')" "process_management_mode"
grep -q 'process_management_mode" is set but not supported' "$PGPOOL_LOG" \
    && pgpool_bug "dynamic mode reported as not supported"
wait_until 10 spare_in_bounds || pgpool_bug "idle children at start: $(n_idle), expected 2..4"
log "ok: at start $(n_children) children, $(n_idle) idle"

# 200 short sessions, 10 at a time.
: >"$WORK_DIR/short.err"
for w in $(seq 1 10); do
    (for i in $(seq 1 20); do
        psql_pgpool -c 'select 1' >/dev/null 2>>"$WORK_DIR/short.err" || echo "worker $w session $i failed" >>"$WORK_DIR/short.err"
    done) &
done
wait
[ -s "$WORK_DIR/short.err" ] && pgpool_bug "short sessions failed: $(head -n 3 "$WORK_DIR/short.err")"
log "ok: 200 short sessions served"
wait_until 10 spare_in_bounds || pgpool_bug "idle children after the short sessions: $(n_idle), expected 2..4"
log "ok: after the short sessions $(n_children) children, $(n_idle) idle"

# 16 sessions at once, held for 6 s.
: >"$WORK_DIR/long.err"
pids=()
for i in $(seq 1 16); do
    (psql_pgpool -c 'select pg_sleep(6)' >/dev/null 2>>"$WORK_DIR/long.err" || echo "held session $i failed" >>"$WORK_DIR/long.err") &
    pids+=($!)
done
sleep 3
max_seen=$(n_children)
log "children while 16 sessions are held: $max_seen ($(n_idle) idle)"
[ "$max_seen" -le 20 ] || pgpool_bug "$max_seen children: more than num_init_children"
for p in "${pids[@]}"; do wait "$p"; done
[ -s "$WORK_DIR/long.err" ] && pgpool_bug "held sessions refused: $(head -n 3 "$WORK_DIR/long.err")"
log "ok: 16 sessions held at once were all served"
# forked on demand: min - idle + max/4 = 3 more every 2 s cycle while none is idle
[ "$(n_children)" -gt 4 ] || pgpool_bug "no child forked on demand: $(n_children) children"
log "ok: $(n_children) children after 16 concurrent sessions"

# Scale-down: aggressive waits 25 cycles of 2 s, then retires up to 8 every 2 cycles.
t0=$(now_ms)
wait_until 90 spare_in_bounds || pgpool_bug "surplus idle children not retired: $(n_idle) idle, $(n_children) children"
log "ok: surplus retired after $(($(now_ms) - t0)) ms: $(n_children) children, $(n_idle) idle"
assert_eq 1 "$(psql_pgpool -c 'select 1')" "a session after the scale-down"
