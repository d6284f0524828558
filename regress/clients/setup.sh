#!/usr/bin/env bash
# regress/clients/setup.sh - install/build what the driver suites need.
#
#   bash regress/clients/setup.sh [psycopg] [asyncpg] [node] [jdbc] [rust]   (default: all)
#
# - psycopg, asyncpg: a venv in regress/clients/.venv (gitignored) with
#   psycopg[binary] and asyncpg from PyPI (latest; CLIENTS_PIP_UPGRADE=1 upgrades
#   an existing venv)
# - node: npm install of package.json (pg) into regress/clients/node/node_modules
# - jdbc: javac of jdbc/Suite.java against Debian's /usr/share/java/postgresql.jar
#   into jdbc/build (packages: default-jdk-headless libpostgresql-jdbc-java,
#   installed by scripts/check_deps test)
# - rust: cargo build (debug, --locked) of the standalone project rust/ (not
#   part of the root workspace) into rust/target: tokio-postgres from crates.io
# Prints one "version: ..." line per driver.
set -euo pipefail
DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 0 ] && set -- psycopg asyncpg node jdbc rust
want() { local d; for d in "${drivers[@]}"; do [ "$d" = "$1" ] && return 0; done; return 1; }
drivers=("$@")

if want psycopg || want asyncpg; then
    venv=$DIR/.venv
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import psycopg, asyncpg' 2>/dev/null \
        || [ "${CLIENTS_PIP_UPGRADE:-0}" = 1 ]; then
        [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -U 'psycopg[binary]' asyncpg
    fi
    "$venv/bin/python" -c 'import psycopg; print("version: psycopg", psycopg.__version__, "(libpq", str(psycopg.pq.version()) + ",", psycopg.pq.__impl__ + ")")'
    "$venv/bin/python" -c 'import asyncpg; print("version: asyncpg", asyncpg.__version__)'
fi

if want node; then
    command -v npm >/dev/null || { echo "setup.sh: npm is missing (scripts/check_deps test installs it)" >&2; exit 1; }
    if [ ! -f "$DIR/node/node_modules/pg/package.json" ]; then
        (cd "$DIR/node" && npm install --no-audit --no-fund --loglevel=error)
    fi
    echo "version: node-postgres $(node -p 'require(process.argv[1]).version' "$DIR/node/node_modules/pg/package.json") (node $(node --version))"
fi

if want jdbc; then
    jar=/usr/share/java/postgresql.jar
    [ -f "$jar" ] || { echo "setup.sh: $jar missing (apt-get install libpostgresql-jdbc-java)" >&2; exit 1; }
    command -v javac >/dev/null || { echo "setup.sh: javac missing (apt-get install default-jdk-headless)" >&2; exit 1; }
    if [ ! -f "$DIR/jdbc/build/Suite.class" ] || [ "$DIR/jdbc/Suite.java" -nt "$DIR/jdbc/build/Suite.class" ]; then
        mkdir -p "$DIR/jdbc/build"
        javac -encoding UTF-8 -d "$DIR/jdbc/build" -cp "$jar" "$DIR/jdbc/Suite.java"
    fi
    echo "version: pgjdbc $(java -cp "$jar" org.postgresql.util.PGJDBCMain 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n 1) ($(readlink -f "$jar" | xargs basename); java $(java -version 2>&1 | head -n 1 | grep -o '"[^"]*"' | tr -d '"'))"
fi

if want rust; then
    command -v cargo >/dev/null || { echo "setup.sh: cargo is missing" >&2; exit 1; }
    # its own target dir whatever the environment says: lib.sh runs rust/target/debug/
    (cd "$DIR/rust" && CARGO_TARGET_DIR="$DIR/rust/target" cargo build --quiet --locked)
    echo "version: tokio-postgres $(awk '/^name = "tokio-postgres"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$DIR/rust/Cargo.lock") ($(rustc --version | cut -d' ' -f1-2))"
fi
