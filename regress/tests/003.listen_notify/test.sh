#!/usr/bin/env bash
# 003.listen_notify: LISTEN in one client, NOTIFY from another, both through
# pgpool; the listener receives the notification with its payload. The pid
# in BackendKeyData is the backend's, so a client knows its own notifications.
# shellcheck source=regress/lib.sh
source "${REGRESS_LIB:-$(dirname "$0")/../../lib.sh}" || exit 2

setup_cluster 2 s

# Client A listens, then sleeps 3 s in a second statement: psql prints
# notifications that arrive while it waits for that statement.
outA=$WORK_DIR/listener.out
psql_pgpool -c 'LISTEN ch' -c 'select pg_sleep(3)' -c "select 'listener done'" >"$outA" 2>&1 &
listener=$!
wait_active 'select pg_sleep(3)' || fail "the listener's pg_sleep(3) is not running"
# Client B notifies (simple query), and once more with pg_notify (extended
# protocol is not needed for that; a second payload checks ordering).
psql_pgpool -c "NOTIFY ch, 'hello'" >"$WORK_DIR/notifier.out" 2>&1 || { cat "$WORK_DIR/notifier.out"; fail "NOTIFY failed"; }
psql_pgpool -c "select pg_notify('ch', 'world')" >/dev/null || fail "pg_notify failed"
psql_pgpool -c "NOTIFY other, 'not for A'" >/dev/null || fail "NOTIFY other failed"
wait "$listener" || { cat "$outA"; fail "listener psql exited with an error"; }
cat "$outA"
out=$(cat "$outA")
assert_contains "$out" 'Asynchronous notification "ch" with payload "hello" received from server process with PID' "listener output"
assert_contains "$out" 'Asynchronous notification "ch" with payload "world"' "listener output"
assert_not_contains "$out" '"other"' "listener output"
assert_contains "$out" 'listener done' "listener output"
# hello arrives before world.
first=$(grep -o 'payload "[a-z]*"' "$outA" | head -n 1)
assert_eq 'payload "hello"' "$first" "first notification"

# The notification names the notifying backend's PID.
pid=$(sed -n 's/.*with payload "hello" received from server process with PID \([0-9]*\).*/\1/p' "$outA")
[ -n "$pid" ] || fail "no PID in the notification"
log "notifier backend pid: $pid"

# A notification sent in a transaction is delivered at commit only, and not
# at all on rollback.
outA2=$WORK_DIR/listener2.out
psql_pgpool -c 'LISTEN ch2' -c 'select pg_sleep(3)' >"$outA2" 2>&1 &
listener=$!
wait_active 'select pg_sleep(3)' || fail "the second listener's pg_sleep(3) is not running"
psql_pgpool -c "begin" -c "NOTIFY ch2, 'rolled back'" -c "rollback" >/dev/null || fail "rollback NOTIFY"
psql_pgpool -c "begin" -c "NOTIFY ch2, 'committed'" -c "commit" >/dev/null || fail "commit NOTIFY"
wait "$listener" || { cat "$outA2"; fail "second listener failed"; }
out=$(cat "$outA2")
assert_contains "$out" 'Asynchronous notification "ch2" with payload "committed"' "second listener"
assert_not_contains "$out" 'rolled back' "second listener"

# BackendKeyData carries the main node backend's pid (as Pgpool-II): a client
# tells its own notifications by it. A raw protocol client compares the key's
# pid with pg_backend_pid() and the pid of a NOTIFY it sends itself.
own=$(python3 - "$PGPOOL_PORT" "$PGSUPERUSER" <<'EOF'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
params = b"user\0" + sys.argv[2].encode() + b"\0database\0test\0\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
buf = b""
def messages():
    global buf
    while True:
        while len(buf) >= 5:
            tag, n = buf[0:1], struct.unpack("!i", buf[1:5])[0]
            if len(buf) < 1 + n:
                break
            body, buf = buf[5:1 + n], buf[1 + n:]
            yield tag, body
        data = s.recv(65536)
        if not data:
            return
        buf += data
def until_ready(seen):
    for tag, body in messages():
        seen.append((tag, body))
        if tag == b"Z":
            return seen
seen = until_ready([])
key_pid = [struct.unpack("!i", b[:4])[0] for t, b in seen if t == b"K"][0]
q = b"LISTEN own; NOTIFY own; SELECT pg_backend_pid()\0"
s.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
seen = until_ready([])
row = [b for t, b in seen if t == b"D"][0]
backend = int(row[6:].decode())
notified = [struct.unpack("!i", b[:4])[0] for t, b in seen if t == b"A"]
print(key_pid == backend, notified == [backend])
EOF
)
assert_eq "True True" "$own" "BackendKeyData pid = pg_backend_pid() = own NOTIFY pid"
