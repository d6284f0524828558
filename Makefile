# pgpool-rs: build, test, demo, bench.
#   make demo    build, create a 3-node PostgreSQL cluster behind pgpool, start it
#   make test    unit tests + regression scenarios against real PostgreSQL clusters
#   make bench   pgbench: direct PostgreSQL vs Pgpool-II vs PgBouncer vs pgpool-rs; LB; query cache

CARGO ?= cargo
DEMO_DIR ?= /tmp/pgpool-rs-demo
DEMO_PORT ?= 11000
DEMO_NODES ?= 3
PREFIX ?= /usr/local

.PHONY: all build release test unit regress lint fmt clippy demo demo-stop bench install clean deps

all: release

deps:
	scripts/check_deps build test

build:
	$(CARGO) build --workspace

release:
	scripts/check_deps build
	$(CARGO) build --release --workspace

unit:
	scripts/check_deps test
	$(CARGO) test --release --workspace

regress: release
	scripts/check_deps test
	bash regress/run.sh $(TESTS)

test: release unit regress

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

demo: release
	scripts/check_deps test
	@if [ -x $(DEMO_DIR)/shutdownall ]; then $(DEMO_DIR)/shutdownall >/dev/null 2>&1 || true; fi
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR) && chmod 755 $(DEMO_DIR)
	cd $(DEMO_DIR) && $(CURDIR)/scripts/pgpool_setup -n $(DEMO_NODES) -p $(DEMO_PORT) --no-stop
	@echo
	@echo "pgpool-rs is running in front of $(DEMO_NODES) PostgreSQL nodes ($(DEMO_DIR))."
	@echo "  connect:  psql -h 127.0.0.1 -p $(DEMO_PORT) -U $$( [ "$$(id -u)" = 0 ] && echo postgres || id -un ) test"
	@echo "  logs:     $(DEMO_DIR)/log/pgpool.log"
	@echo "  stop:     make demo-stop   (or $(DEMO_DIR)/shutdownall)"

demo-stop:
	@if [ -x $(DEMO_DIR)/shutdownall ]; then $(DEMO_DIR)/shutdownall; fi

bench: release
	scripts/check_deps bench
	bash scripts/bench

install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/pgpool-rs
	install -m 755 target/release/pgpool target/release/pcp_* target/release/pg_md5 \
		target/release/pg_enc target/release/wd_cli $(DESTDIR)$(PREFIX)/bin/
	install -m 644 etc/*.sample $(DESTDIR)$(PREFIX)/share/pgpool-rs/

clean:
	$(CARGO) clean
