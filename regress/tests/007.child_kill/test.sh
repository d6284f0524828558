#!/usr/bin/env bash
# 007.child_kill: kill -9 of pgpool children (one idle with a pooled
# connection, one in the middle of a session): the main process re-forks
# them, the number of children comes back, and clients keep connecting.
# Process titles as Pgpool-II's: "pgpool: wait for connection request" for
# idle children, "pgpool: USER DB HOST(PORT) SELECT" for one running a query,
# "... idle in transaction" for one waiting inside a transaction.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s 'num_init_children = 4'

main=$(pgpool_main_pid) || fail "no pgpool main process"
nchildren=$(settled_child_count)
log "pgpool main $main has $nchildren children (num_init_children = 4, plus other processes)"
[ "$nchildren" -ge 4 ] || fail "pgpool has $nchildren children, fewer than num_init_children = 4"

# find_child_of_session: run a session in the background and return the pid
# of the child serving it (the pgpool process holding its connection).
session_child() {
    local i pids
    for ((i = 0; i < 50; i++)); do
        pids=$(busy_children)
        if [ "$(grep -c . <<<"$pids")" = 1 ]; then
            echo "$pids"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

#--- 0. the title of a session left idle inside a transaction
(echo 'begin;'; echo 'select 1;'; sleep 2; echo 'commit;') | psql_pgpool -q >/dev/null &
s0=$!
in_tx() { for c in $(pgpool_children); do ps -o args= -p "$c"; done | grep -q ') idle in transaction$'; }
wait_until 5 in_tx || fail "no child titled '... idle in transaction'"
wait "$s0" || fail "the transaction session failed"
log "ok: a child shows 'idle in transaction'"

#--- 1. an idle child that holds a pooled backend connection
psql_pgpool -c 'select pg_sleep(1)' >/dev/null &
s1=$!
victim=$(session_child) || fail "cannot find the child serving a session (ss)"
title=$(ps -o args= -p "$victim")
assert_contains "$title" "pgpool: $PGSUPERUSER test 127.0.0.1(" "title of the child in a session"
assert_contains "$title" ") SELECT" "title while the query runs"
waiting=$(for c in $(pgpool_children); do ps -o args= -p "$c"; done | grep -c '^pgpool: wait for connection request$')
[ "$waiting" -ge 3 ] || fail "$waiting children titled 'pgpool: wait for connection request', expected at least 3"
wait "$s1" || fail "the first session failed"
ppid=$(ps -o ppid= -p "$victim" | tr -d ' ')
assert_eq "$main" "$ppid" "parent of the idle child $victim"
log "kill -9 idle child $victim"
kill -KILL "$victim"
wait_until 5 dead "$victim" || fail "child $victim did not die"
wait_for_children "$nchildren" 5 \
    || fail "children: $(child_count) 5 s after the kill, expected $nchildren"
log "ok: back to $nchildren children"
assert_eq "$main" "$(pgpool_main_pid)" "main pid after the kill"

for i in $(seq 1 20); do
    psql_pgpool -c 'select 1' >/dev/null || fail "connection $i after killing an idle child failed"
done
log "ok: 20 new connections after killing an idle child"

#--- 2. a child in the middle of a session
out=$WORK_DIR/victim_session.out
psql_pgpool -c 'select pg_sleep(5)' >"$out" 2>&1 &
s2=$!
victim=$(session_child) || fail "cannot find the child serving the second session"
log "kill -9 busy child $victim"
kill -KILL "$victim"
# The client sees its connection go away (and does not hang).
wait_until 5 dead "$s2" || fail "psql still running 5 s after its child was killed"
wait "$s2" && fail "psql succeeded although its pgpool child was killed"
log "ok: the client of the killed child got: $(tr '\n' ' ' <"$out")"
wait_for_children "$nchildren" 5 \
    || fail "children: $(child_count) 5 s after the second kill, expected $nchildren"
log "ok: back to $nchildren children"

pids=$WORK_DIR/pids
: >"$pids"
for i in $(seq 1 20); do
    psql_pgpool -c 'select pg_backend_pid()' >>"$pids" || fail "connection $i after killing a busy child failed"
done
log "ok: 20 new connections after killing a busy child ($(sort -u "$pids" | grep -c .) distinct backends)"

#--- 3. several children at once, while clients connect
victims=$(pgpool_children | head -n 3)
log "kill -9 $(tr '\n' ' ' <<<"$victims")"
# shellcheck disable=SC2086  # one pid per word
kill -KILL $victims
for i in $(seq 1 20); do
    psql_pgpool -c 'select 1' >/dev/null || fail "connection $i after killing 3 children failed"
done
log "ok: 20 connections while children are replaced"
wait_for_children "$nchildren" 5 \
    || fail "children: $(child_count) 5 s after killing 3, expected $nchildren"
assert_eq "$main" "$(pgpool_main_pid)" "main pid after all the kills"
# No zombie children left behind.
# shellcheck disable=SC2009  # pgrep cannot select zombies
zombies=$(ps -o stat= --ppid "$main" | grep -c '^Z')
assert_eq 0 "$zombies" "zombie children of pgpool"
