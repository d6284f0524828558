#!/usr/bin/env bash
# 027.logging_collector: log_line_prefix, and logging_collector = on (as in
# Pgpool-II's setup examples)
# writes every process's log lines to files in log_directory named by log_filename,
# created with log_file_mode; a file past log_rotation_size is followed by a new one;
# pcp_log_rotate starts a new file; a reload that changes log_directory moves the log
# there; a logger killed is replaced without losing later lines; at shutdown the
# logger writes the last line and leaves; a log_directory that cannot be written is
# reported on stderr, which stays the log. log_line_prefix's escapes name the process
# (%P), the client's application (%a, changed by SET application_name), user (%u),
# database (%d), pid (%p) and line number (%l); a reload changes the prefix.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}"

[ -x "$PCP_BIN/pcp_log_rotate" ] || fail "$PCP_BIN/pcp_log_rotate missing: cargo build --release"

LOGDIR=$TEST_DIR/pglog
setup_cluster 1 s 'logging_collector = on' "log_directory = '$LOGDIR'" \
    "log_filename = 'pgpool-%Y%m%d-%H%M%S.log'" 'log_file_mode = 0640' \
    'log_rotation_size = 1' 'log_rotation_age = 0' 'log_statement = on' \
    "log_line_prefix = '%t [%P:%a] %u@%d pid=%p line=%l: '"
export PCPPASSFILE=$TEST_DIR/etc/pcppass

files() { find "$1" -maxdepth 1 -name 'pgpool-*.log' 2>/dev/null | sort; }
all_logs() { cat "$LOGDIR"/pgpool-*.log "$TEST_DIR"/pglog2/pgpool-*.log 2>/dev/null || true; }
in_logs() { all_logs | grep -F -- "$1" >/dev/null; }

first=$(files "$LOGDIR" | head -1)
[ -n "$first" ] || fail "no log file in $LOGDIR"
assert_eq 640 "$(stat -c %a "$first")" "mode of $first"
in_logs "successfully started" || pgpool_bug "the start-up line is not in $first"
[ ! -s "$PGPOOL_LOG" ] || ! grep -q "successfully started" "$PGPOOL_LOG" \
    || pgpool_bug "the start-up line went to stderr too"

# Size: more than 1 kB of statements, then more a second later: a second file.
for i in $(seq 1 20); do psql_pgpool -c "select $i as first_batch_padding_padding_padding" >/dev/null; done
sleep 1.2
psql_pgpool -c "select 'after the size limit'" >/dev/null
in_logs "statement: select 'after the size limit'" || pgpool_bug "a child's statement is not logged"
count=$(files "$LOGDIR" | wc -l)
[ "$count" -ge 2 ] || pgpool_bug "no new file after 1 kB (log_rotation_size = 1): $(files "$LOGDIR")"
log "ok: $count files after the size limit"

# log_line_prefix: a child's line names its client.
PGAPPNAME=prefix_app psql_pgpool -c "select 'prefix check'" >/dev/null
line=$(all_logs | grep -F "statement: select 'prefix check'" | tail -1)
[[ "$line" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9:]{8}\ \[child:prefix_app\]\ $PGSUPERUSER@test\ pid=[0-9]+\ line=[0-9]+:\ LOG:\ \ statement: ]] \
    || pgpool_bug "log_line_prefix not applied: [$line]"
log "ok: prefixed line: $line"
psql_pgpool -c "set application_name = 'renamed_app'" -c "select 'after set'" >/dev/null
line=$(all_logs | grep -F "statement: select 'after set'" | tail -1)
assert_contains "$line" "[child:renamed_app]" "the line after SET application_name"
main_line=$(all_logs | grep -F "successfully started" | tail -1)
assert_contains "$main_line" "[main:main] @ pid=" "the main process's line"

# pcp_log_rotate, with size rotation off (reload).
{ echo 'log_rotation_size = 0'; echo "log_line_prefix = 'reloaded pid %p: '"; } >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
sleep 1.2
before=$(files "$LOGDIR" | wc -l)
"$PCP_BIN/pcp_log_rotate" -h 127.0.0.1 -p "$PCP_PORT" -U "$PGSUPERUSER" -w >/dev/null \
    || pgpool_bug "pcp_log_rotate failed"
one_more() { [ "$(files "$LOGDIR" | wc -l)" -gt "$before" ]; }
wait_until 10 one_more || pgpool_bug "pcp_log_rotate made no new file: $(files "$LOGDIR")"
log "ok: pcp_log_rotate: $before -> $(files "$LOGDIR" | wc -l) files"
psql_pgpool -c "select 'after the prefix reload'" >/dev/null
line=$(all_logs | grep -F "statement: select 'after the prefix reload'" | tail -1)
[[ "$line" =~ ^reloaded\ pid\ [0-9]+:\ LOG: ]] || pgpool_bug "the reloaded log_line_prefix is not applied: [$line]"

# A reload that changes log_directory.
echo "log_directory = '$TEST_DIR/pglog2'" >>"$PGPOOL_CONF"
"$PGPOOL_BIN" -f "$PGPOOL_CONF" reload >/dev/null 2>&1 || fail "pgpool reload"
moved() { [ -n "$(files "$TEST_DIR/pglog2")" ]; }
wait_until 10 moved || pgpool_bug "no log file in the new log_directory"
psql_pgpool -c "select 'in the new directory'" >/dev/null
in_new() { cat "$TEST_DIR"/pglog2/pgpool-*.log | grep -F "select 'in the new directory'" >/dev/null; }
wait_until 5 in_new || pgpool_bug "the statement is not in the new log_directory"

# The logger killed: a new one takes over.
main=$(pgpool_main_pid) || fail "pgpool is not running"
logger=$(ps -o pid= --ppid "$main" -o args= | awk '/pgpool: logger/ { print $1 }' | head -1)
[ -n "$logger" ] || fail "no logger process among pgpool's children"
kill -9 "$logger"
replaced() {
    local l
    l=$(ps -o pid= --ppid "$main" -o args= | awk '/pgpool: logger/ { print $1 }' | head -1)
    [ -n "$l" ] && [ "$l" != "$logger" ]
}
wait_until 10 replaced || pgpool_bug "the logger was not replaced"
psql_pgpool -c "select 'after the logger was replaced'" >/dev/null
after_kill() { in_logs "select 'after the logger was replaced'"; }
wait_until 5 after_kill || pgpool_bug "lines are lost after the logger was replaced"
logger=$(ps -o pid= --ppid "$main" -o args= | awk '/pgpool: logger/ { print $1 }' | head -1)

# Shutdown: the last line is written and the logger leaves.
"$PGPOOL_BIN" -f "$PGPOOL_CONF" -m fast stop >/dev/null 2>&1 || fail "pgpool stop"
logger_gone() { ! kill -0 "$logger" 2>/dev/null; }
wait_until 20 logger_gone || pgpool_bug "the logger (pid $logger) outlived pgpool"
in_logs "shut down" || pgpool_bug "the shutdown line is not in the log"

# A log_directory that cannot be written: said on stderr, which stays the log.
echo "log_directory = '/dev/null/pglog'" >>"$PGPOOL_CONF"
start_cluster
grep -q "could not start the logging collector: could not open a log file in \"/dev/null/pglog\"" \
    "$PGPOOL_LOG" || pgpool_bug "an unwritable log_directory was not reported on stderr"
psql_pgpool -c "select 'still logged'" >/dev/null || fail "select through pgpool"
on_stderr() { grep -qF "statement: select 'still logged'" "$PGPOOL_LOG"; }
wait_until 5 on_stderr || pgpool_bug "without a collector the log did not stay on stderr"
log "ok: 027.logging_collector"
