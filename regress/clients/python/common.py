"""Shared plumbing of the Python driver suites (psycopg_suite.py, asyncpg_suite.py).

Environment (set by regress/clients/lib.sh):
  CLIENT_HOST (127.0.0.1), CLIENT_PORT, CLIENT_USER, CLIENT_DB (test)
  CLIENT_AFTER   skip every scenario up to and including this one (resume after a hang)
  CLIENT_ONLY    comma separated scenario names to run (default: all)
  CLIENT_SCENARIO_TIMEOUT  seconds one scenario may take (default 30): past it the
                 program prints "!! HUNG" and exits with status 3, and the harness
                 runs it again from the next scenario.

Output: one block per scenario, "== name" then canonical lines; nothing in it
may depend on which server answered (pids, ports, timestamps are normalised).
"""
import hashlib
import os
import sys
import threading

HOST = os.environ.get("CLIENT_HOST", "127.0.0.1")
PORT = int(os.environ.get("CLIENT_PORT", "5432"))
USER = os.environ.get("CLIENT_USER", "postgres")
DB = os.environ.get("CLIENT_DB", "test")
SCENARIO_TIMEOUT = float(os.environ.get("CLIENT_SCENARIO_TIMEOUT", "30"))


def out(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")


def md5(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.md5(data).hexdigest()


def selected(names):
    only = [n for n in os.environ.get("CLIENT_ONLY", "").split(",") if n]
    after = os.environ.get("CLIENT_AFTER", "")
    if only:
        names = [n for n in names if n in only]
    if after and after in names:
        names = names[names.index(after) + 1:]
    return names


class Watchdog:
    """Kills the whole program when one scenario takes too long (a hung driver)."""

    def __init__(self):
        self.timer = None

    def arm(self, name):
        self.disarm()

        def fire():
            sys.stdout.write("!! HUNG: no answer within %gs\n" % SCENARIO_TIMEOUT)
            sys.stdout.flush()
            os._exit(3)

        self.timer = threading.Timer(SCENARIO_TIMEOUT, fire)
        self.timer.daemon = True
        self.timer.start()

    def disarm(self):
        if self.timer:
            self.timer.cancel()
            self.timer = None


def fmt_value(v):
    """Canonical text of a Python value returned by a driver."""
    import datetime
    import decimal
    import uuid
    if v is None:
        return "NULL"
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return "bytes[%d]:%s" % (len(b), b.hex() if len(b) <= 32 else md5(b))
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, decimal.Decimal):
        return "dec:" + str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join("%s:%s" % (k, fmt_value(v[k])) for k in sorted(v)) + "}"
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta)):
        return type(v).__name__ + ":" + str(v)
    if isinstance(v, uuid.UUID):
        return "uuid:" + str(v)
    if isinstance(v, str) and len(v) > 200:
        return "str[%d]:%s" % (len(v), md5(v))
    return type(v).__name__ + ":" + str(v)


def fmt_row(row):
    return "|".join(fmt_value(v) for v in row)
