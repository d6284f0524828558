"""psycopg 3 scenarios: run against PostgreSQL directly and through pgpool, outputs compared.

See common.py for the environment and the output format.
"""
import datetime
import decimal
import sys
import threading
import time
import uuid

import psycopg
from psycopg import sql  # noqa: F401

from common import (DB, HOST, PORT, USER, Watchdog, fmt_row, fmt_value, md5, out,
                    selected)

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def connect(autocommit=True, **kw):
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB,
                           autocommit=autocommit, **kw)


def err(e):
    if isinstance(e, psycopg.Error) and e.sqlstate:
        out("ERROR", e.sqlstate, e.diag.message_primary)
    else:
        out("EXC", type(e).__name__, str(e).splitlines()[0] if str(e) else "")


def q(conn, query, params=None, **kw):
    """Run one statement, print its rows or command status, or its error."""
    try:
        cur = conn.execute(query, params, **kw)
        show(cur)
        return True
    except psycopg.Error as e:
        err(e)
        return False


def show(cur):
    while True:
        if cur.description is not None:
            for row in cur.fetchall():
                out(" ", fmt_row(row))
        else:
            out(" ", cur.statusmessage)
        if not cur.nextset():
            break


def tbl(name):
    return "cl_psycopg_" + name


def fresh(conn, name, cols="id int primary key, v text"):
    t = tbl(name)
    conn.execute("DROP TABLE IF EXISTS %s" % t)
    conn.execute("CREATE TABLE %s (%s)" % (t, cols))
    return t


@scenario
def protocol_32():
    # libpq 18 asking for protocol 3.2 (4.7's protocol) is told "3.0" and goes on.
    try:
        with connect(max_protocol_version="3.2") as c:
            out("protocol", c.info.pgconn.protocol_version)
            q(c, "SELECT 1")
    except psycopg.Error as e:  # noqa: BLE001
        out("EXC", str(e).split(":")[-1].strip())


@scenario
def sql_prepare():
    with connect() as c:
        t = fresh(c, "sql_prepare")
        c.execute("INSERT INTO %s VALUES (1, 'one'), (2, 'two')" % t)
        q(c, "PREPARE p(int) AS SELECT v FROM %s WHERE id = $1" % t)
        q(c, "EXECUTE p(1)")
        q(c, "EXECUTE p(2)")
        q(c, "DEALLOCATE p")
        q(c, "PREPARE p(int) AS SELECT v || '!' FROM %s WHERE id = $1" % t)
        q(c, "EXECUTE p(2)")
        q(c, "DEALLOCATE p")
        q(c, "EXECUTE p(2)")
        q(c, "PREPARE w(int, text) AS INSERT INTO %s VALUES ($1, $2)" % t)
        q(c, "EXECUTE w(3, 'three')")
        # A write's PREPARE lives on the primary, where catalog reads go (a read-only
        # one lives on the load-balance node: see README, known differences).
        q(c, "SELECT name, statement LIKE 'PREPARE w%' FROM pg_prepared_statements ORDER BY name")
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "DEALLOCATE ALL")
        q(c, "SELECT count(*) FROM pg_prepared_statements")
        c.execute("DROP TABLE %s" % t)


@scenario
def multi_set_show():
    with connect() as c:
        q(c, "SET work_mem='8MB'; SHOW work_mem; SET work_mem='9MB'; SHOW work_mem")
        q(c, "SHOW work_mem")
        q(c, "SELECT current_setting('work_mem')")
        q(c, "SET search_path = public, pg_catalog; SELECT 1")
        for _ in range(3):
            q(c, "SHOW search_path")
        q(c, "RESET ALL; SHOW work_mem")
    with connect(autocommit=False) as c:
        q(c, "SET work_mem='10MB'")
        c.commit()
        q(c, "SHOW work_mem")
        c.rollback()


@scenario
def read_your_writes():
    with connect() as c:
        t = fresh(c, "ryw")
        for i in range(1, 6):
            c.execute("INSERT INTO %s VALUES (%%s, 'x')" % t, (i,))
            q(c, "SELECT count(*) FROM %s" % t)
    with connect(autocommit=False) as c:
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "INSERT INTO %s VALUES (100, 'tx')" % t)
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "UPDATE %s SET v = 'u' WHERE id = 1" % t)
        q(c, "SELECT v FROM %s WHERE id = 1" % t)
        c.commit()
        q(c, "SELECT count(*), min(v) FROM %s" % t)
        c.commit()
    with connect() as c:
        c.execute("DROP TABLE %s" % t)


def pipeline_body(c, t):
    # The error of statement 3 may surface at any later execute() or at the
    # end of the block (psycopg reads results as they come): only the
    # statements before it and the error itself are reported.
    stmts = [("INSERT INTO %s VALUES (1, 'a')" % t, None),
             ("INSERT INTO %s VALUES (%%s, %%s)" % t, (2, "b")),
             ("SELECT count(*) FROM %s" % t, None),
             ("INSERT INTO %s VALUES (1, 'dup')" % t, None),
             ("INSERT INTO %s VALUES (3, 'c')" % t, None),
             ("SELECT count(*) FROM %s" % t, None)]
    cursors = []
    try:
        with c.pipeline():
            for query, params in stmts:
                cursors.append(c.execute(query, params))
    except psycopg.Error as e:
        err(e)
    for i, cur in enumerate(cursors[:3]):
        try:
            if cur.description is not None:
                out("  stmt", i, "rows", [fmt_row(r) for r in cur.fetchall()])
            else:
                out("  stmt", i, cur.statusmessage)
        except psycopg.Error as e:
            out("  stmt", i, "error")
            err(e)


@scenario
def pipeline_autocommit():
    with connect() as c:
        t = fresh(c, "pipe_ac")
        pipeline_body(c, t)
        q(c, "SELECT id, v FROM %s ORDER BY id" % t)
        # a clean pipeline: writes then reads in one go
        with c.pipeline():
            c.cursor().executemany("INSERT INTO %s VALUES (%%s, 'm')" % t, [(i,) for i in range(10, 30)])
            cur = c.execute("SELECT count(*) FROM %s" % t)
        out("  after executemany", fmt_row(cur.fetchone()))
        c.execute("DROP TABLE %s" % t)


@scenario
def pipeline_transaction():
    with connect(autocommit=False) as c:
        t = fresh(c, "pipe_tx")
        c.commit()
        pipeline_body(c, t)
        out("  status", c.info.transaction_status.name)
        c.rollback()
        q(c, "SELECT count(*) FROM %s" % t)
        c.rollback()
        with c.pipeline():
            c.cursor().executemany("INSERT INTO %s VALUES (%%s, 'm')" % t, [(i,) for i in range(1, 51)])
            cur = c.execute("SELECT count(*) FROM %s" % t)
            cur2 = c.execute("SELECT sum(id) FROM %s" % t)
        out("  in tx", fmt_row(cur.fetchone()), fmt_row(cur2.fetchone()))
        c.commit()
        q(c, "SELECT count(*) FROM %s" % t)
        c.commit()
        c.execute("DROP TABLE %s" % t)
        c.commit()


@scenario
def pipeline_tx_no_lingering_lock():
    # A pipeline that ran a transaction (a read, a write, a read, COMMIT); afterwards no
    # node may still hold it open. Seen from the client: the transaction status is idle,
    # later autocommit reads each run in a transaction of their own (now() is their own
    # start), and a DROP of the table from another session does not wait for a standby's
    # recovery conflict (synchronous_commit = remote_apply: the DROP's commit waits until
    # every standby replayed it, which a lock held there delays).
    with connect() as c0:
        t = fresh(c0, "pipe_lock")
        t2 = fresh(c0, "pipe_lock2")
        c0.execute("INSERT INTO %s VALUES (1, 'a')" % t)
        c0.execute("INSERT INTO %s VALUES (1, 'a')" % t2)
    c = connect(autocommit=False)

    def after_pipeline(table):
        out("  transaction status", c.info.transaction_status.name)
        try:
            c.autocommit = True
        except psycopg.Error as e:
            err(e)
            c.rollback()
            c.autocommit = True
        for _ in range(3):
            q(c, "SELECT now() = statement_timestamp(), (SELECT count(*) FROM %s)" % table)
        with connect() as c2:
            c2.execute("SET statement_timeout = '8s'")
            t0 = time.monotonic()
            q(c2, "DROP TABLE %s" % table)
            out("  drop finished within 5s:", time.monotonic() - t0 < 5)
        c.autocommit = False

    with c.pipeline():
        c.execute("SELECT count(*) FROM %s" % t)
        c.execute("INSERT INTO %s VALUES (2, 'b')" % t)
        cur = c.execute("SELECT count(*) FROM %s" % t)
        c.commit()
    out("  pipeline count", fmt_row(cur.fetchone()))
    after_pipeline(t)
    with c.pipeline():
        cur = c.execute("SELECT v FROM %s WHERE id = 1" % t2)
        c.commit()
    out("  read", fmt_row(cur.fetchone()))
    after_pipeline(t2)
    q(c, "SELECT 1")
    c.rollback()
    c.close()


@scenario
def savepoints():
    with connect(autocommit=False) as c:
        t = fresh(c, "savepoints")
        c.commit()
        q(c, "INSERT INTO %s VALUES (1, 'a')" % t)
        q(c, "SAVEPOINT s1")
        q(c, "INSERT INTO %s VALUES (2, 'b')" % t)
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "SAVEPOINT s2")
        q(c, "INSERT INTO %s VALUES (1, 'dup')" % t)
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "ROLLBACK TO SAVEPOINT s2")
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "ROLLBACK TO s1")
        q(c, "SELECT count(*) FROM %s" % t)
        q(c, "RELEASE s1")
        q(c, "INSERT INTO %s VALUES (3, 'c')" % t)
        c.commit()
        q(c, "SELECT id FROM %s ORDER BY id" % t)
        c.commit()
        # psycopg's own transaction() blocks (savepoints when nested)
        c.autocommit = True
        try:
            with c.transaction():
                c.execute("INSERT INTO %s VALUES (4, 'd')" % t)
                try:
                    with c.transaction():
                        c.execute("INSERT INTO %s VALUES (4, 'dup')" % t)
                except psycopg.Error as e:
                    err(e)
                q(c, "SELECT count(*) FROM %s" % t)
        except psycopg.Error as e:
            err(e)
        q(c, "SELECT id FROM %s ORDER BY id" % t)
        c.execute("DROP TABLE %s" % t)


@scenario
def prepared_reuse():
    with connect(prepare_threshold=0) as c:
        t = fresh(c, "prep_reuse")
        c.execute("INSERT INTO %s SELECT i, 'v' || i FROM generate_series(1, 100) i" % t)
        total = 0
        for i in range(1, 51):
            total += len(c.execute("SELECT v FROM %s WHERE id = %%s" % t, (i,)).fetchone()[0])
        out("  50 executions, total length", total)
        q(c, "DISCARD ALL")
        total = 0
        for i in range(1, 11):
            try:
                total += len(c.execute("SELECT v FROM %s WHERE id = %%s" % t, (i,)).fetchone()[0])
            except psycopg.Error as e:
                err(e)
        out("  after DISCARD ALL, total length", total)
        for i in range(5):
            try:
                c.execute("INSERT INTO %s VALUES (%%s, 'w')" % t, (1000 + i,), prepare=True)
            except psycopg.Error as e:
                err(e)
        q(c, "SELECT count(*) FROM %s" % t)
        c.execute("DROP TABLE %s" % t)


TYPE_VALUES = [
    ("int2", 7),
    ("int4", -2147483648),
    ("int8", 9223372036854775807),
    ("float8", 1.5e300),
    ("float4", 0.25),
    ("numeric", decimal.Decimal("12345678901234567890.123456789")),
    ("text", "plain 'quoted' \\ text"),
    ("varchar", "vc"),
    ("bytea", b"\x00\x01\x02\xfe\xff"),
    ("bool", True),
    ("date", datetime.date(2024, 2, 29)),
    ("time", datetime.time(23, 59, 58, 123456)),
    ("timestamp", datetime.datetime(2001, 2, 3, 4, 5, 6, 789)),
    ("timestamptz", datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)),
    ("interval", datetime.timedelta(days=3, seconds=7, microseconds=5)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("jsonb", psycopg.types.json.Jsonb({"a": [1, 2, {"b": None}]})),
    ("json", psycopg.types.json.Json({"k": "v"})),
    ("int4[]", [1, 2, 3]),
    ("text[]", ["a", "b c", None]),
    ("inet", __import__("ipaddress").ip_address("192.168.0.1")),
]


def types(binary):
    with connect() as c:
        c.execute("SET TimeZone = 'UTC'")
        cur = c.cursor(binary=binary)
        ph = "%b" if binary else "%t"
        for typ, val in TYPE_VALUES:
            try:
                cur.execute("SELECT %s::%s, pg_typeof(%s::%s)::text" % (ph, typ, ph, typ), (val, val))
                row = cur.fetchone()
                out(" ", typ, fmt_value(row[0]), row[1])
            except psycopg.Error as e:
                out(" ", typ)
                err(e)
        cur.execute("SELECT NULL::int, %s::int" % ph, (None,))
        out("  null", fmt_row(cur.fetchone()))


@scenario
def types_text():
    types(False)


@scenario
def types_binary():
    types(True)


@scenario
def copy_in_out():
    with connect() as c:
        t = fresh(c, "copy", "id int primary key, v text, b bytea")
        with c.cursor() as cur:
            with cur.copy("COPY %s (id, v, b) FROM STDIN" % t) as cp:
                for i in range(1, 5001):
                    cp.write_row((i, "row %d ünï" % i, bytes([i % 256])))
            out("  copy in", cur.rowcount)
            q(c, "SELECT count(*), sum(id), md5(string_agg(v, ',' ORDER BY id)) FROM %s" % t)
            data = bytearray()
            with cur.copy("COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % t) as cp:
                for chunk in cp:
                    data += chunk
            out("  copy out bytes", len(data), md5(bytes(data)))
            with cur.copy("COPY (SELECT * FROM %s ORDER BY id) TO STDOUT (FORMAT BINARY)" % t) as cp:
                cp.set_types(["int4", "text", "bytea"])
                rows = list(cp.rows())
            out("  copy out binary rows", len(rows), md5(repr(rows[:3] + rows[-3:])))
            try:
                with cur.copy("COPY %s (id, v) FROM STDIN" % t) as cp:
                    cp.write_row((1, "dup"))
            except psycopg.Error as e:
                err(e)
            q(c, "SELECT count(*) FROM %s" % t)
        # COPY inside a transaction, then read it back in the same transaction
        c.autocommit = False
        with c.cursor() as cur:
            cur.execute("SELECT count(*) FROM %s" % t)
            with cur.copy("COPY %s (id, v) FROM STDIN" % t) as cp:
                cp.write(b"9001\tx\n9002\ty\n")
            q(c, "SELECT count(*) FROM %s" % t)
        c.commit()
        c.autocommit = True
        c.execute("DROP TABLE %s" % t)


@scenario
def cursor_sql():
    with connect(autocommit=False) as c:
        q(c, "DECLARE cur CURSOR FOR SELECT i FROM generate_series(1, 10) i")
        q(c, "FETCH 3 FROM cur")
        q(c, "MOVE 2 IN cur")
        q(c, "FETCH NEXT FROM cur")
        q(c, "FETCH ALL FROM cur")
        q(c, "CLOSE cur")
        c.commit()
    with connect() as c:
        q(c, "DECLARE h CURSOR WITH HOLD FOR SELECT i FROM generate_series(1, 5) i")
        q(c, "FETCH 2 FROM h")
        q(c, "FETCH 2 FROM h")
        q(c, "CLOSE h")
        q(c, "FETCH 1 FROM h")


@scenario
def cursor_server_side():
    with connect(autocommit=False) as c:
        t = fresh(c, "ss_cursor")
        c.execute("INSERT INTO %s SELECT i, 'v' || i FROM generate_series(1, 1000) i" % t)
        c.commit()
        with c.cursor(name="sscur") as cur:
            cur.itersize = 100
            cur.execute("SELECT id, v FROM %s ORDER BY id" % t)
            first = cur.fetchmany(5)
            out("  first", [fmt_row(r) for r in first])
            cur.scroll(100)
            out("  after scroll", fmt_row(cur.fetchone()))
            n = len(first) + 1 + sum(1 for _ in cur)
            out("  fetched", n)
        c.commit()
        with c.cursor(name="sscur2", withhold=True) as cur:
            cur.execute("SELECT count(*) FROM %s" % t)
            c.commit()
            out("  withhold", fmt_row(cur.fetchone()))
        c.commit()
        c.execute("DROP TABLE %s" % t)
        c.commit()


@scenario
def listen_notify():
    with connect() as c, connect() as other:
        mypid = c.info.backend_pid
        c.execute("LISTEN cl_psycopg_ch")
        c.execute("NOTIFY cl_psycopg_ch, 'from me'")
        other.execute("NOTIFY cl_psycopg_ch, 'from other'")
        c.execute("SELECT pg_notify('cl_psycopg_ch', 'from me via function')")
        got = []
        for n in c.notifies(timeout=3, stop_after=3):
            got.append((n.payload, n.channel, n.pid == mypid, n.pid == other.info.backend_pid))
        for g in sorted(got):
            out("  notify", g[0], g[1], "own-pid" if g[2] else "other-pid" if g[3] else "unknown-pid")
        c.execute("UNLISTEN *")


@scenario
def cancel():
    with connect() as c:
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        q(c, "SELECT pg_sleep(5)")
        timer.join()
        q(c, "SELECT 1")
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        q(c, "SELECT 1 FROM pg_sleep(5) UNION ALL SELECT 2")
        timer.join()
        q(c, "SELECT 2")


@scenario
def statement_timeout():
    with connect() as c:
        q(c, "SET statement_timeout = '300ms'")
        q(c, "SELECT pg_sleep(3)")
        q(c, "SHOW statement_timeout")
        q(c, "SELECT pg_sleep(0.01)")
        q(c, "RESET statement_timeout")
    with connect(autocommit=False) as c:
        q(c, "SET LOCAL statement_timeout = '300ms'")
        q(c, "SELECT pg_sleep(3)")
        c.rollback()
        q(c, "SHOW statement_timeout")
        c.rollback()


@scenario
def temp_table():
    with connect() as c:
        q(c, "CREATE TEMP TABLE cl_psycopg_tmp (id int, v text)")
        q(c, "INSERT INTO cl_psycopg_tmp VALUES (1, 'a'), (2, 'b')")
        q(c, "SELECT count(*) FROM cl_psycopg_tmp")
        q(c, "SELECT v FROM cl_psycopg_tmp WHERE id = %s", (2,))
        q(c, "SELECT count(*) FROM pg_class WHERE relname = 'cl_psycopg_tmp'")
        q(c, "DROP TABLE cl_psycopg_tmp")
        q(c, "SELECT count(*) FROM cl_psycopg_tmp")


@scenario
def big_value():
    big = ("0123456789abcdef" * (10 * 1024 * 1024 // 16))
    with connect() as c:
        t = fresh(c, "big_value")
        c.execute("INSERT INTO %s VALUES (1, %%s)" % t, (big,))
        q(c, "SELECT length(v), md5(v) FROM %s" % t)
        v = c.execute("SELECT v FROM %s" % t).fetchone()[0]
        out("  fetched", len(v), md5(v), md5(big))
        v = c.execute("SELECT repeat('x', 10485760)").fetchone()[0]
        out("  repeat", len(v), md5(v))
        c.execute("DROP TABLE %s" % t)


@scenario
def big_result():
    with connect() as c:
        rows = c.execute("SELECT i, md5(i::text) FROM generate_series(1, 100000) i").fetchall()
        out("  rows", len(rows), md5("".join("%d %s\n" % r for r in rows)))
        cur = c.cursor(binary=True)
        cur.execute("SELECT i, i::text FROM generate_series(1, 100000) i")
        rows = cur.fetchall()
        out("  binary rows", len(rows), md5("".join("%d %s\n" % r for r in rows)))


@scenario
def unicode():
    s = "héllo wörld 日本語 🐘 ñ"
    with connect() as c:
        t = fresh(c, "unicode")
        c.execute("INSERT INTO %s VALUES (1, %%s)" % t, (s,))
        q(c, "SELECT v, length(v), octet_length(v) FROM %s" % t)
        q(c, "SELECT %s::text = v FROM " + t, (s,))
        q(c, 'SELECT 1 AS "çolümn 名"')
        q(c, "SELECT upper('straße ǆ'), lower('ÀÉÎ')")
        q(c, "SELECT 'ünï' || chr(128024)")
        c.execute("DROP TABLE %s" % t)


@scenario
def large_objects():
    data = bytes(range(256)) * 4096
    with connect(autocommit=False) as c:
        oid = c.execute("SELECT lo_from_bytea(0, %s)", (data,)).fetchone()[0]
        q(c, "SELECT length(lo_get(%s)), md5(lo_get(%s))", (oid, oid))
        c.commit()
        got = c.execute("SELECT lo_get(%s)", (oid,)).fetchone()[0]
        out("  read back", len(got), md5(got) == md5(data))
        fd = c.execute("SELECT lo_open(%s, 262144)", (oid,)).fetchone()[0]
        q(c, "SELECT lo_lseek(%s, 1000, 0)", (fd,))
        q(c, "SELECT encode(loread(%s, 8), 'hex')", (fd,))
        q(c, "SELECT lo_close(%s)", (fd,))
        c.commit()
        q(c, "SELECT lo_unlink(%s)", (oid,))
        c.commit()
        q(c, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = %s", (oid,))
        c.rollback()
    with connect() as c:
        q(c, "SELECT lo_unlink(lo_from_bytea(0, 'auto'))")


@scenario
def error_then_continue():
    with connect(autocommit=False) as c:
        q(c, "SELECT 1/0")
        q(c, "SELECT 1")
        c.rollback()
        q(c, "SELECT 2")
        c.commit()
    with connect() as c:
        q(c, "SELECT * FROM cl_psycopg_no_such_table")
        q(c, "SELECT 3; SELECT 1/0; SELECT 4")
        q(c, "SELECT 5")


def main():
    names = selected([f.__name__ for f in SCENARIOS])
    wd = Watchdog()
    out("# psycopg", psycopg.__version__, "libpq", psycopg.pq.version(), psycopg.pq.__impl__)
    for f in SCENARIOS:
        if f.__name__ not in names:
            continue
        out("==", f.__name__)
        sys.stdout.flush()
        wd.arm(f.__name__)
        try:
            f()
        except Exception as e:  # noqa: BLE001 - printed, compared
            out("!! scenario aborted:")
            err(e)
        wd.disarm()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
