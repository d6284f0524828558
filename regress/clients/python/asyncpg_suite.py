"""asyncpg scenarios: run against PostgreSQL directly and through pgpool, outputs compared.

See common.py for the environment and the output format.
"""
import asyncio
import datetime
import decimal
import io
import sys
import time
import uuid

import asyncpg

from common import (DB, HOST, PORT, USER, Watchdog, fmt_row, fmt_value, md5, out,
                    selected)

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


async def connect(**kw):
    return await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DB, **kw)


def err(e):
    if isinstance(e, asyncpg.PostgresError):
        out("ERROR", e.sqlstate, e.args[0] if e.args else "")
    else:
        out("EXC", type(e).__name__, str(e).splitlines()[0] if str(e) else "")


async def q(c, query, *args):
    """fetch() (extended protocol) and print the rows, or the error."""
    try:
        for r in await c.fetch(query, *args):
            out(" ", fmt_row(tuple(r)))
        return True
    except Exception as e:  # noqa: BLE001
        err(e)
        return False


async def ex(c, query, *args):
    """execute(): the simple protocol without arguments; prints the status."""
    try:
        out(" ", await c.execute(query, *args))
        return True
    except Exception as e:  # noqa: BLE001
        err(e)
        return False


def tbl(name):
    return "cl_asyncpg_" + name


async def fresh(c, name, cols="id int primary key, v text"):
    t = tbl(name)
    await c.execute("DROP TABLE IF EXISTS %s" % t)
    await c.execute("CREATE TABLE %s (%s)" % (t, cols))
    return t


@scenario
async def sql_prepare():
    c = await connect()
    t = await fresh(c, "sql_prepare")
    await c.execute("INSERT INTO %s VALUES (1, 'one'), (2, 'two')" % t)
    await ex(c, "PREPARE p(int) AS SELECT v FROM %s WHERE id = $1" % t)
    await q(c, "EXECUTE p(1)")
    await q(c, "EXECUTE p(2)")
    await ex(c, "DEALLOCATE p")
    await ex(c, "PREPARE p(int) AS SELECT v || '!' FROM %s WHERE id = $1" % t)
    await q(c, "EXECUTE p(2)")
    await ex(c, "DEALLOCATE p")
    await q(c, "EXECUTE p(2)")
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def multi_set_show():
    c = await connect()
    try:
        out(" ", await c.execute("SET work_mem='8MB'; SHOW work_mem; SET work_mem='9MB'; SHOW work_mem"))
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SHOW work_mem")
    await q(c, "SELECT current_setting('work_mem')")
    await q(c, "SHOW work_mem")
    await c.close()


@scenario
async def read_your_writes():
    c = await connect()
    t = await fresh(c, "ryw")
    for i in range(1, 4):
        await c.execute("INSERT INTO %s VALUES ($1, 'x')" % t, i)
        await q(c, "SELECT count(*) FROM %s" % t)
    async with c.transaction():
        await q(c, "SELECT count(*) FROM %s" % t)
        await c.execute("INSERT INTO %s VALUES (100, 'tx')" % t)
        await q(c, "SELECT count(*) FROM %s" % t)
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def executemany_transaction():
    c = await connect()
    t = await fresh(c, "executemany")
    async with c.transaction():
        await c.executemany("INSERT INTO %s VALUES ($1, $2)" % t, [(i, "v%d" % i) for i in range(1, 101)])
        await q(c, "SELECT count(*) FROM %s" % t)
    await q(c, "SELECT count(*), sum(id) FROM %s" % t)
    # an error in the middle of the batch: nothing of it stays
    try:
        async with c.transaction():
            await c.executemany("INSERT INTO %s VALUES ($1, 'x')" % t, [(1000,), (1001,), (50,), (1002,)])
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SELECT count(*) FROM %s" % t)
    # outside a transaction
    try:
        await c.executemany("INSERT INTO %s VALUES ($1, 'y')" % t, [(2000,), (2001,), (60,), (2002,)])
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SELECT count(*) FROM %s" % t)
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def savepoints():
    c = await connect()
    t = await fresh(c, "savepoints")
    async with c.transaction():
        await c.execute("INSERT INTO %s VALUES (1, 'a')" % t)
        try:
            async with c.transaction():
                await c.execute("INSERT INTO %s VALUES (2, 'b')" % t)
                await c.execute("INSERT INTO %s VALUES (1, 'dup')" % t)
        except Exception as e:  # noqa: BLE001
            err(e)
        await q(c, "SELECT count(*) FROM %s" % t)
        async with c.transaction():
            await c.execute("INSERT INTO %s VALUES (3, 'c')" % t)
        await q(c, "SELECT id FROM %s ORDER BY id" % t)
    await q(c, "SELECT id FROM %s ORDER BY id" % t)
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def prepared_reuse():
    c = await connect()
    t = await fresh(c, "prep_reuse")
    await c.execute("INSERT INTO %s SELECT i, 'v' || i FROM generate_series(1, 100) i" % t)
    st = await c.prepare("SELECT v FROM %s WHERE id = $1" % t)
    total = 0
    for i in range(1, 51):
        total += len(await st.fetchval(i))
    out("  50 executions, total length", total)
    await ex(c, "DISCARD ALL")
    try:
        out("  old statement after DISCARD ALL", await st.fetchval(1))
    except Exception as e:  # noqa: BLE001
        err(e)
    st = await c.prepare("SELECT v FROM %s WHERE id = $1" % t)
    total = 0
    for i in range(1, 11):
        total += len(await st.fetchval(i))
    out("  new statement, total length", total)
    ins = await c.prepare("INSERT INTO %s VALUES ($1, 'w')" % t)
    for i in range(5):
        await ins.fetch(1000 + i)
    await q(c, "SELECT count(*) FROM %s" % t)
    await c.execute("DROP TABLE %s" % t)
    await c.close()


TYPE_VALUES = [
    ("int2", 7), ("int4", -2147483648), ("int8", 9223372036854775807),
    ("float8", 1.5e300), ("float4", 0.25),
    ("numeric", decimal.Decimal("12345678901234567890.123456789")),
    ("text", "plain 'quoted' \\ text"), ("bytea", b"\x00\x01\x02\xfe\xff"), ("bool", True),
    ("date", datetime.date(2024, 2, 29)), ("time", datetime.time(23, 59, 58, 123456)),
    ("timestamp", datetime.datetime(2001, 2, 3, 4, 5, 6, 789)),
    ("timestamptz", datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)),
    ("interval", datetime.timedelta(days=3, seconds=7, microseconds=5)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("jsonb", '{"a": [1, 2, {"b": null}]}'), ("json", '{"k": "v"}'),
    ("int4[]", [1, 2, 3]), ("text[]", ["a", "b c", None]),
]


@scenario
async def types_binary():
    c = await connect()
    await c.execute("SET TimeZone = 'UTC'")
    for typ, val in TYPE_VALUES:
        try:
            r = await c.fetchrow("SELECT $1::%s, pg_typeof($1::%s)::text" % (typ, typ), val)
            out(" ", typ, fmt_value(r[0]), r[1])
        except Exception as e:  # noqa: BLE001
            out(" ", typ)
            err(e)
    await c.close()


TEXT_FORMS = {"bytea": "\\x0001fe", "int4[]": "{1,2,3}", "text[]": '{a,"b c",NULL}', "bool": "t"}


@scenario
async def types_text():
    c = await connect()
    await c.execute("SET TimeZone = 'UTC'")
    # values sent and read as text: the text codec for every type
    for typ, val in TYPE_VALUES:
        try:
            txt = TEXT_FORMS.get(typ, str(val))
            r = await c.fetchrow("SELECT ($1::text)::%s::text" % typ, txt)
            out(" ", typ, fmt_value(r[0]))
        except Exception as e:  # noqa: BLE001
            out(" ", typ)
            err(e)
    await c.close()


@scenario
async def copy_api():
    c = await connect()
    t = await fresh(c, "copy", "id int primary key, v text")
    # Parse/Describe of a SELECT first (asyncpg prepares every statement)
    await q(c, "SELECT count(*) FROM %s" % t)
    try:
        out(" ", await c.copy_records_to_table(t, records=[(i, "r%d" % i) for i in range(1, 1001)]))
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SELECT count(*), sum(id) FROM %s" % t)
    buf = io.BytesIO()
    try:
        out(" ", await c.copy_from_query("SELECT * FROM %s WHERE id <= $1 ORDER BY id" % t, 500, output=buf))
        out("  bytes", len(buf.getvalue()), md5(buf.getvalue()))
    except Exception as e:  # noqa: BLE001
        err(e)
    buf = io.BytesIO()
    try:
        out(" ", await c.copy_from_table(t, output=buf, format="csv"))
        out("  bytes", len(buf.getvalue()), md5(buf.getvalue()))
    except Exception as e:  # noqa: BLE001
        err(e)
    src = io.BytesIO(b"".join(b"%d\tt%d\n" % (i, i) for i in range(5001, 6001)))
    await q(c, "SELECT max(id) FROM %s" % t)
    try:
        out(" ", await c.copy_to_table(t, source=src))
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SELECT count(*) FROM %s" % t)
    async with c.transaction():
        await q(c, "SELECT count(*) FROM %s" % t)
        try:
            out(" ", await c.copy_records_to_table(t, records=[(9001, "x"), (9002, "y")]))
        except Exception as e:  # noqa: BLE001
            err(e)
        await q(c, "SELECT count(*) FROM %s" % t)
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def cursor_api():
    c = await connect()
    t = await fresh(c, "cursor")
    await c.execute("INSERT INTO %s SELECT i, 'v' || i FROM generate_series(1, 1000) i" % t)
    async with c.transaction():
        try:
            cur = await c.cursor("SELECT id FROM %s ORDER BY id" % t)
            out("  fetch", [r[0] for r in await cur.fetch(5)])
            await cur.forward(10)
            out("  fetchrow", (await cur.fetchrow())[0])
            out("  fetch", [r[0] for r in await cur.fetch(3)])
        except Exception as e:  # noqa: BLE001
            err(e)
    try:
        async with c.transaction():
            n = 0
            s = 0
            async for r in c.cursor("SELECT id FROM %s ORDER BY id" % t, prefetch=100):
                n += 1
                s += r[0]
            out("  iterated", n, s)
    except Exception as e:  # noqa: BLE001
        err(e)
    async with c.transaction():
        await ex(c, "DECLARE sc CURSOR FOR SELECT id FROM %s ORDER BY id" % t)
        await q(c, "FETCH 2 FROM sc")
        await ex(c, "MOVE 5 IN sc")
        await q(c, "FETCH 1 FROM sc")
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def listen_notify():
    c = await connect()
    other = await connect()
    got = []
    ev = asyncio.Event()

    def cb(conn, pid, channel, payload):
        got.append((payload, channel, pid))
        if len(got) == 3:
            ev.set()

    await c.add_listener("cl_asyncpg_ch", cb)
    await c.execute("NOTIFY cl_asyncpg_ch, 'from me'")
    await other.execute("NOTIFY cl_asyncpg_ch, 'from other'")
    await c.fetch("SELECT pg_notify('cl_asyncpg_ch', 'from me via function')")
    try:
        await asyncio.wait_for(ev.wait(), 3)
    except asyncio.TimeoutError:
        out("  only", len(got), "notifications")
    me, them = c.get_server_pid(), other.get_server_pid()
    for payload, channel, pid in sorted(got):
        out("  notify", payload, channel, "own-pid" if pid == me else "other-pid" if pid == them else "unknown-pid")
    await c.close()
    await other.close()


@scenario
async def cancel_and_timeout():
    c = await connect()
    try:
        await c.fetch("SELECT pg_sleep(5)", timeout=0.5)
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SELECT 1")
    task = asyncio.ensure_future(c.fetch("SELECT pg_sleep(5)"))
    await asyncio.sleep(0.5)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        out("  task cancelled")
    except Exception as e:  # noqa: BLE001
        err(e)
    await q(c, "SELECT 2")
    await ex(c, "SET statement_timeout = '300ms'")
    await q(c, "SELECT pg_sleep(3)")
    await q(c, "SHOW statement_timeout")
    await c.close()


@scenario
async def temp_table():
    c = await connect()
    await ex(c, "CREATE TEMP TABLE cl_asyncpg_tmp (id int, v text)")
    await ex(c, "INSERT INTO cl_asyncpg_tmp VALUES (1, 'a'), (2, 'b')")
    await q(c, "SELECT count(*) FROM cl_asyncpg_tmp")
    await q(c, "SELECT v FROM cl_asyncpg_tmp WHERE id = $1", 2)
    await ex(c, "DROP TABLE cl_asyncpg_tmp")
    await q(c, "SELECT count(*) FROM cl_asyncpg_tmp")
    await c.close()


@scenario
async def big_value_and_result():
    big = "0123456789abcdef" * (10 * 1024 * 1024 // 16)
    c = await connect()
    t = await fresh(c, "big")
    await c.execute("INSERT INTO %s VALUES (1, $1)" % t, big)
    await q(c, "SELECT length(v), md5(v) FROM %s" % t)
    v = await c.fetchval("SELECT v FROM %s" % t)
    out("  fetched", len(v), md5(v) == md5(big))
    rows = await c.fetch("SELECT i, md5(i::text) FROM generate_series(1, 100000) i")
    out("  rows", len(rows), md5("".join("%d %s\n" % tuple(r) for r in rows)))
    await c.execute("DROP TABLE %s" % t)
    await c.close()


@scenario
async def unicode():
    s = "héllo wörld 日本語 🐘 ñ"
    c = await connect()
    await q(c, "SELECT $1::text, length($1::text), octet_length($1::text)", s)
    await q(c, 'SELECT 1 AS "çolümn 名"')
    await c.close()


@scenario
async def large_objects():
    data = bytes(range(256)) * 4096
    c = await connect()
    async with c.transaction():
        oid = await c.fetchval("SELECT lo_from_bytea(0, $1)", data)
        await q(c, "SELECT length(lo_get($1)), md5(lo_get($1))", oid)
    got = await c.fetchval("SELECT lo_get($1)", oid)
    out("  read back", len(got), md5(got) == md5(data))
    await q(c, "SELECT lo_unlink($1)", oid)
    await c.close()


async def main():
    names = selected([f.__name__ for f in SCENARIOS])
    wd = Watchdog()
    out("# asyncpg", asyncpg.__version__)
    for f in SCENARIOS:
        if f.__name__ not in names:
            continue
        out("==", f.__name__)
        sys.stdout.flush()
        wd.arm(f.__name__)
        try:
            await f()
        except Exception as e:  # noqa: BLE001
            out("!! scenario aborted:")
            err(e)
        wd.disarm()
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
