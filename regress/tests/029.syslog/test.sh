#!/usr/bin/env bash
# 029.syslog: log_destination = 'syslog' sends every process's log lines to the local
# syslog socket (/dev/log) with syslog_facility and syslog_ident, and nothing to
# stderr; after a reload with 'stderr,syslog' they go to both. The test plays the
# syslog daemon: it binds /dev/log itself (only where no daemon has it) and removes it.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

if [ -e /dev/log ]; then
    echo "SKIP: /dev/log belongs to this machine's syslog daemon"
    exit 0
fi
[ -w /dev ] || { echo "SKIP: /dev is not writable: cannot play the syslog daemon"; exit 0; }
# (pgpool_setup wants an empty test directory: what the daemon got is kept beside it.)
GOT=$(mktemp /tmp/pgpool-regress-syslog.XXXXXX)
install_cleanup
python3 - "$GOT" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
PY
listener=$!
add_cleanup "kill $listener 2>/dev/null; rm -f /dev/log $GOT"
wait_until 5 test -S /dev/log || fail "could not bind /dev/log"

setup_cluster 1 s "log_destination = 'syslog'" "syslog_facility = 'LOCAL5'" \
    "syslog_ident = 'pgpool_test'" 'log_statement = on'
psql_pgpool -c "select 'to syslog'" >/dev/null || fail "select through pgpool"
arrived() { grep -qF "statement: select 'to syslog'" "$GOT"; }
wait_until 5 arrived || pgpool_bug "the statement did not reach syslog: $(tail -3 "$GOT")"
line=$(grep -F "statement: select 'to syslog'" "$GOT" | tail -1)
# LOCAL5 (21) * 8 + info (6) = 174
[[ "$line" =~ ^\<174\>[A-Z][a-z]{2}\ [\ 0-9]{2}\ [0-9:]{8}\ pgpool_test\[[0-9]+\]:\ .*LOG:\ \ statement:\ select\ \'to\ syslog\'$ ]] \
    || pgpool_bug "not in syslog form: [$line]"
log "ok: syslog line: $line"
grep -q "successfully started" "$GOT" || pgpool_bug "the main process's start-up line is not in syslog"
! grep -qF "select 'to syslog'" "$PGPOOL_LOG" || pgpool_bug "with 'syslog' alone the line went to stderr too"

echo "log_destination = 'stderr,syslog'" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 1
psql_pgpool -c "select 'to both'" >/dev/null || fail "select through pgpool"
both() { grep -qF "select 'to both'" "$GOT" && grep -qF "select 'to both'" "$PGPOOL_LOG"; }
wait_until 5 both || pgpool_bug "with 'stderr,syslog' the line is not in both"
log "ok: 029.syslog"
