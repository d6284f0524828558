#!/usr/bin/env python3
"""Minimal PostgreSQL v3 wire-protocol client for pgpool-rs regression tests.

Standard library only.  Used as a module (Conn, cancel) or as a command:

    pgwire.py cancel-session HOST PORT USER DB
    pgwire.py bad-input CASE HOST PORT USER DB
    pgwire.py query-ext HOST PORT USER DB SQL   (prints rows, '|'-separated)
    pgwire.py ext-tags HOST PORT USER DB SQL [STMT]   (prints reply message tags)
    pgwire.py aborted-pipeline HOST PORT USER DB ROUNDS

Every scenario prints "ok: ..." lines and exits 0, or prints "FAIL: ..." and
exits 1.  Authentication: trust, cleartext or md5 (password from PGPASSWORD).
"""

import hashlib
import os
import select
import socket
import struct
import sys
import time

PROTO_3_0 = 196608
CANCEL_CODE = 80877102


class ProtocolError(Exception):
    pass


class Closed(Exception):
    """The server closed the connection."""


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg, flush=True)


def startup_packet(user, db, extra=None, code=PROTO_3_0):
    params = {"user": user, "database": db}
    params.update(extra or {})
    body = struct.pack("!I", code)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def message(tag, body=b""):
    return tag + struct.pack("!I", len(body) + 4) + body


def parse_error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.pid = None
        self.key = None
        self.params = {}
        self.notices = []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise Closed("connection reset")
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk

    def read_message(self):
        """Return (tag, body) of the next message."""
        self._fill(5)
        tag = self.buf[:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 1 << 30:
            raise ProtocolError("bad message length %d from server (tag %r)" % (length, tag))
        self._fill(1 + length)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return tag, body

    def startup(self, user, db, extra=None):
        self.send(startup_packet(user, db, extra))
        while True:
            tag, body = self.read_message()
            if tag == b"R":
                (code,) = struct.unpack("!I", body[:4])
                if code == 0:
                    continue
                password = os.environ.get("PGPASSWORD", "")
                if code == 3:
                    self.send(message(b"p", password.encode() + b"\0"))
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(message(b"p", b"md5" + outer.encode() + b"\0"))
                else:
                    raise ProtocolError("unsupported authentication request %d" % code)
            elif tag == b"K":
                self.pid, self.key = struct.unpack("!II", body[:8])
            elif tag == b"S":
                k, v = body.split(b"\0")[:2]
                self.params[k.decode()] = v.decode()
            elif tag == b"E":
                raise ProtocolError("startup failed: %s" % parse_error_fields(body).get("M"))
            elif tag == b"N":
                self.notices.append(parse_error_fields(body))
            elif tag == b"Z":
                return
            else:
                raise ProtocolError("unexpected message %r during startup" % tag)

    def send_query(self, sql):
        self.send(message(b"Q", sql.encode() + b"\0"))

    def read_result(self):
        """Read up to ReadyForQuery: (rows, error fields or None)."""
        rows, error = [], None
        while True:
            tag, body = self.read_message()
            if tag == b"D":
                (n,) = struct.unpack("!H", body[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", body[pos:pos + 4])
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)
            elif tag == b"E":
                error = parse_error_fields(body)
            elif tag == b"N":
                self.notices.append(parse_error_fields(body))
            elif tag == b"Z":
                return rows, error
            # T, C, S, A, I ... are not needed here

    def query(self, sql):
        self.send_query(sql)
        return self.read_result()

    def query_extended(self, sql, name=b""):
        """Parse/Bind/Describe/Execute/Sync with no parameters, text results."""
        self.send(message(b"P", name + b"\0" + sql.encode() + b"\0\0\0")
                  + message(b"B", b"\0" + name + b"\0\0\0\0\0\0\0")
                  + message(b"D", b"P\0")
                  + message(b"E", b"\0\0\0\0\0")
                  + message(b"S"))
        return self.read_result()

    def tags_until_ready(self):
        """Tags of the messages up to and including ReadyForQuery, as one string."""
        tags = b""
        while True:
            tag, _ = self.read_message()
            tags += tag
            if tag == b"Z":
                return tags.decode()

    def ext_tags(self, sql, name=b""):
        """Parse/Bind/Describe S/Describe P/Execute/Close P/Sync; the reply's tags."""
        self.send(message(b"P", name + b"\0" + sql.encode() + b"\0\0\0")
                  + message(b"B", b"\0" + name + b"\0\0\0\0\0\0\0")
                  + message(b"D", b"S" + name + b"\0")
                  + message(b"D", b"P\0")
                  + message(b"E", b"\0\0\0\0\0")
                  + message(b"C", b"P\0")
                  + message(b"S"))
        return self.tags_until_ready()

    def rebind_tags(self, name):
        """Bind/Execute/Sync of an already prepared statement; the reply's tags."""
        self.send(message(b"B", b"\0" + name + b"\0\0\0\0\0\0\0")
                  + message(b"E", b"\0\0\0\0\0")
                  + message(b"S"))
        return self.tags_until_ready()

    def readable(self, timeout):
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)


def cancel(host, port, pid, key):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(struct.pack("!IIII", 16, CANCEL_CODE, pid, key))
    # The server closes the connection without answering.
    s.settimeout(10)
    try:
        s.recv(1)
    except OSError:
        pass
    s.close()


def must_query(c, sql, expect):
    rows, err = c.query(sql)
    if err:
        fail("%s: error %s" % (sql, err.get("M")))
    if rows != expect:
        fail("%s: expected %r, got %r" % (sql, expect, rows))
    ok("%s -> %r" % (sql, rows))


#---------------------------------------------------------------------------
# Scenarios
#---------------------------------------------------------------------------
def scenario_cancel_session(host, port, user, db):
    c = Conn(host, port)
    c.startup(user, db)
    if c.pid is None:
        fail("no BackendKeyData from pgpool")
    ok("BackendKeyData pid %d" % c.pid)
    must_query(c, "select 1", [["1"]])

    c.send_query("select pg_sleep(10), 'not cancelled'")
    time.sleep(0.5)
    # Wrong key: nothing happens.
    cancel(host, port, c.pid, (c.key + 1) & 0xFFFFFFFF)
    if c.readable(1.5):
        tag, body = c.read_message()
        fail("a CancelRequest with a wrong key got the query answered: %r %r" % (tag, body[:200]))
    ok("CancelRequest with a wrong key ignored")
    # Right key: the statement ends with 57014 quickly.
    t0 = time.time()
    cancel(host, port, c.pid, c.key)
    rows, err = c.read_result()
    dt = time.time() - t0
    if not err or err.get("C") != "57014":
        fail("expected SQLSTATE 57014 after the cancel, got rows %r error %r" % (rows, err))
    ok("query cancelled (57014: %s) in %.3f s" % (err.get("M"), dt))
    if dt > 5:
        fail("the cancel took %.1f s" % dt)
    # The same session goes on.
    must_query(c, "select 2", [["2"]])
    must_query(c, "select pg_sleep(0.2)::text, 'after'", [["", "after"]])
    c.close()


def expect_rejected(c, what, timeout=10.0):
    """The server answers with an ErrorResponse or closes the socket."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not c.readable(0.2):
            continue
        try:
            tag, body = c.read_message()
        except Closed as e:
            ok("%s: server closed the connection (%s)" % (what, e))
            return
        except (ProtocolError, ConnectionResetError) as e:
            ok("%s: %s" % (what, e))
            return
        if tag == b"E":
            f = parse_error_fields(body)
            ok("%s: ErrorResponse %s %s" % (what, f.get("C"), f.get("M")))
            return
        if tag == b"N":
            continue
        fail("%s: unexpected reply %r %r" % (what, tag, body[:200]))
    fail("%s: neither an error nor a closed socket within %.0f s" % (what, timeout))


def scenario_bad_input(case, host, port, user, db):
    if case == "garbage-startup":
        c = Conn(host, port)
        # A plausible length, an unknown protocol code, junk.
        c.send(struct.pack("!II", 16, 0x12345678) + b"\xde\xad\xbe\xef\x00\x01\x02\x03")
        expect_rejected(c, "startup with unknown protocol 0x12345678")
        c.close()
        c = Conn(host, port)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect_rejected(c, "HTTP request as startup packet")
        c.close()
        c = Conn(host, port)
        c.send(struct.pack("!I", 3) + b"\x00" * 8)
        expect_rejected(c, "startup length 3")
        c.close()
        c = Conn(host, port)
        # Protocol 3.0 with a parameter list that is not NUL terminated.
        body = struct.pack("!I", PROTO_3_0) + b"user\0" + user.encode() + b"\0databa"
        c.send(struct.pack("!I", len(body) + 4) + body)
        expect_rejected(c, "startup with an unterminated parameter list")
        c.close()
    elif case == "huge-startup":
        for length in (0x80000000, 0x7FFFFFFF, 0xFFFFFFFF):
            c = Conn(host, port)
            c.send(struct.pack("!II", length, PROTO_3_0) + b"user\0" + user.encode() + b"\0\0")
            expect_rejected(c, "startup length 0x%08x" % length)
            c.close()
    elif case == "half-startup":
        c = Conn(host, port)
        pkt = startup_packet(user, db)
        c.send(pkt[: len(pkt) // 2])
        time.sleep(0.3)
        c.close()
        ok("sent half a startup packet and closed")
        c = Conn(host, port)
        c.send(b"\x00\x00")
        time.sleep(0.3)
        c.close()
        ok("sent 2 bytes of a length and closed")
    elif case == "half-query":
        c = Conn(host, port)
        c.startup(user, db)
        must_query(c, "select 1", [["1"]])
        sql = b"select 'this query is never finished'\0"
        c.send(b"Q" + struct.pack("!I", len(sql) + 4) + sql[:10])
        time.sleep(0.3)
        c.close()
        ok("sent half a Query message after a good startup and closed")
        c = Conn(host, port)
        c.startup(user, db)
        c.send(b"Q\x00")
        time.sleep(0.3)
        c.close()
        ok("sent a tag and half a length and closed")
        # Half an extended-protocol batch: Parse+Bind complete, Execute cut.
        c = Conn(host, port)
        c.startup(user, db)
        parse = message(b"P", b"\0select 42\0\0\0")
        bind = message(b"B", b"\0\0\0\0\0\0\0\0")
        execute = message(b"E", b"\0\0\0\0\0")
        c.send(parse + bind + execute[:4])
        time.sleep(0.3)
        c.close()
        ok("sent Parse, Bind and half an Execute and closed")
    elif case == "huge-message":
        for tag in (b"Q", b"P", b"X"):
            c = Conn(host, port)
            c.startup(user, db)
            must_query(c, "select 1", [["1"]])
            c.send(tag + struct.pack("!I", 0x7FFFFFFF) + b"select 1")
            expect_rejected(c, "%s message with length 0x7fffffff" % tag.decode())
            c.close()
        c = Conn(host, port)
        c.startup(user, db)
        c.send(b"Q" + struct.pack("!I", 2) + b"xx")
        expect_rejected(c, "Q message with length 2")
        c.close()
        # An unknown message type: PostgreSQL answers FATAL 08P01 "invalid
        # frontend message type", Pgpool-II FATAL "unknown message type".
        # (pgpool-rs at 540bc67 stays silent here: a pgpool bug.)
        c = Conn(host, port)
        c.startup(user, db)
        c.send(b"\x00" + struct.pack("!I", 8) + b"junk")
        expect_rejected(c, "message with tag 0x00 (unknown message type)")
        c.close()
    elif case == "sessions-work":
        c = Conn(host, port)
        c.startup(user, db)
        must_query(c, "select 'still fine'", [["still fine"]])
        c.close()
    else:
        fail("unknown bad-input case " + case)


def ext_message(sql):
    """Parse/Bind/Execute/Sync of an unnamed statement without parameters."""
    return (message(b"P", b"\0" + sql.encode() + b"\0\0\0")
            + message(b"B", b"\0\0\0\0\0\0\0\0")
            + message(b"E", b"\0\0\0\0\0")
            + message(b"S"))


def scenario_aborted_pipeline(host, port, user, db, rounds):
    """A transaction fails mid-pipeline; once its answers are in, four simple queries
    arrive in one packet: two reads (each refused by pgpool itself: the transaction is
    aborted), COMMIT and a read. All must be answered as PostgreSQL would."""
    for r in range(int(rounds)):
        c = Conn(host, port)
        c.startup(user, db)
        table = "pgwire_aborted_%d" % os.getpid()
        rows, err = c.query("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int primary key)"
                            % (table, table))
        if err:
            fail("create table: %s" % err.get("M"))
        c.send(message(b"Q", b"BEGIN\0")
               + ext_message("INSERT INTO %s VALUES (1)" % table)
               + ext_message("INSERT INTO %s VALUES (1)" % table))
        got = [c.read_result()[1] for _ in range(3)]
        if got[0] or got[1] or not got[2] or got[2].get("C") != "23505":
            fail("round %d: BEGIN, INSERT, duplicate INSERT answered %r" % (r, got))
        c.send(message(b"Q", ("SELECT count(*) FROM %s\0" % table).encode())
               + message(b"Q", b"SHOW work_mem\0")
               + message(b"Q", b"COMMIT\0")
               + message(b"Q", ("SELECT count(*) FROM %s\0" % table).encode()))
        try:
            refused = [c.read_result(), c.read_result()]
            second = c.read_result()
            third = c.read_result()
        except socket.timeout:
            fail("round %d: no answer within 10 s to the queries after the refused read" % r)
        for first in refused:
            if not first[1] or first[1].get("C") != "25P02":
                fail("round %d: read in the aborted transaction answered %r" % (r, first))
        if second[1] or third != ([["0"]], None):
            fail("round %d: COMMIT answered %r, the read after it %r" % (r, second, third))
        c.query("DROP TABLE %s" % table)
        c.close()
    ok("%s rounds: refused reads, COMMIT and the read after it all answered" % rounds)


def main(argv):
    if len(argv) >= 5 and argv[0] == "cancel-session":
        scenario_cancel_session(*argv[1:5])
    elif len(argv) >= 6 and argv[0] == "bad-input":
        scenario_bad_input(*argv[1:6])
    elif len(argv) >= 6 and argv[0] == "aborted-pipeline":
        scenario_aborted_pipeline(*argv[1:6])
    elif len(argv) >= 6 and argv[0] == "query-ext":
        c = Conn(argv[1], argv[2])
        c.startup(argv[3], argv[4])
        rows, err = c.query_extended(argv[5])
        c.close()
        if err:
            fail("%s: %s" % (err.get("C"), err.get("M")))
        for row in rows:
            print("|".join("" if v is None else v for v in row))
    elif len(argv) >= 6 and argv[0] == "ext-tags":
        # ext-tags HOST PORT USER DB SQL [STMT]: tags of the extended-protocol reply,
        # then (with STMT) of a second Bind/Execute/Sync of the named statement.
        c = Conn(argv[1], argv[2])
        c.startup(argv[3], argv[4])
        name = argv[6].encode() if len(argv) > 6 else b""
        print(c.ext_tags(argv[5], name))
        if name:
            print(c.rebind_tags(name))
        c.close()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ProtocolError, Closed, OSError) as e:
        fail("%s: %s" % (type(e).__name__, e))
