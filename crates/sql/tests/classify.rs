//! Rule-by-rule tests of the classifier and its cache.

use sql::{classify, Route, Rules, StatementKind as K, TransactionKind as T};

fn c(q: &str) -> sql::Classification {
    classify(q, &Rules::default())
}

fn route(q: &str) -> Route {
    c(q).route
}

#[track_caller]
fn lb(q: &str) {
    let x = c(q);
    assert_eq!(x.route, Route::LoadBalance, "{q}: {x:?}");
    assert!(!x.is_write, "{q}: {x:?}");
}

#[track_caller]
fn primary_write(q: &str) {
    let x = c(q);
    assert_eq!(x.route, Route::Primary, "{q}: {x:?}");
    assert!(x.is_write, "{q}: {x:?}");
}

#[track_caller]
fn all(q: &str) {
    let x = c(q);
    assert_eq!(x.route, Route::All, "{q}: {x:?}");
    assert!(!x.is_write, "{q}: {x:?}");
}

#[test]
fn plain_reads_are_load_balanced() {
    lb("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
    lb("select 1");
    lb("  SELECT * FROM t");
    lb("(select 1) union (select 2)");
    lb("with x as (select * from t) select * from x");
    lb("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 3) SELECT * FROM r");
    lb("table t");
    lb("select count(*), max(a), now() from t");
    lb("select version(), pg_is_in_recovery(), current_setting('port'), pg_backend_pid()");
    lb("select lower(name) from t where id in (select id from u)");
    assert_eq!(c("select 1").kind, K::Select);
}

#[test]
fn select_for_update_share_and_into() {
    primary_write("select * from t for update");
    primary_write("select * from t for share");
    primary_write("select * from t for no key update");
    primary_write("select * from t for key share nowait");
    primary_write("select * from (select * from t for update) s");
    primary_write("select * into newt from t");
    assert_eq!(c("select * from t for update").kind, K::Select);
}

#[test]
fn sequence_functions_are_writes() {
    primary_write("select nextval('s')");
    primary_write("SELECT setval('s', 10)");
    primary_write("select pg_catalog.nextval('s')");
    primary_write("select array[nextval('s')]");
    primary_write("select * from t where id = (select nextval('s'))");
    // even when listed as read-only
    let r = Rules::default()
        .with_read_only_function_list(&["nextval", "setval"])
        .unwrap();
    assert_eq!(classify("select nextval('s')", &r).route, Route::Primary);
    assert_eq!(c("select nextval('s')").functions, vec!["nextval"]);
}

#[test]
fn writable_cte() {
    primary_write("with x as (insert into t values (1) returning *) select * from x");
    primary_write("with x as (delete from t returning *) select count(*) from x");
    primary_write("with x as (update t set a = 1 returning *) select * from x");
    let x = c("with x as (insert into t values (1) returning *) select * from x");
    assert_eq!(x.kind, K::Select);
    assert_eq!(x.tables, vec!["t"]);
}

#[test]
fn function_lists() {
    // both lists empty: unknown functions count as volatile
    primary_write("select f1(1)");
    primary_write("select public.f2(1)");
    primary_write("select random()");
    lb("select count(*) from t");
    lb("select pg_catalog.lower('A')");
    // a user schema shadowing a builtin name is not trusted
    primary_write("select myschema.lower('A')");

    let w = Rules::default()
        .with_write_function_list(&["f1", "public\\.f2", "log_.*"])
        .unwrap();
    assert_eq!(classify("select f1(1)", &w).route, Route::Primary);
    assert_eq!(classify("select public.f2(1)", &w).route, Route::Primary);
    assert_eq!(classify("select LOG_it(1)", &w).route, Route::Primary);
    assert_eq!(
        classify("select f10(1)", &w).route,
        Route::LoadBalance,
        "anchored: f1 must not match f10"
    );
    assert_eq!(classify("select random()", &w).route, Route::LoadBalance);
    assert_eq!(classify("select nextval('s')", &w).route, Route::Primary);

    let ro = Rules::default()
        .with_read_only_function_list(&["ro_.*", "count"])
        .unwrap();
    assert_eq!(
        classify("select ro_a(1), count(*) from t", &ro).route,
        Route::LoadBalance
    );
    assert_eq!(
        classify("select now()", &ro).route,
        Route::Primary,
        "read_only list set: others are writes"
    );
    // read_only list wins over write list
    let both = Rules::default()
        .with_write_function_list(&["ro_a"])
        .unwrap()
        .with_read_only_function_list(&["ro_a"])
        .unwrap();
    assert_eq!(classify("select ro_a()", &both).route, Route::LoadBalance);

    assert!(Rules::default().with_write_function_list(&["("]).is_err());
    let e = Rules::default()
        .with_write_function_list(&["ok", "(bad"])
        .unwrap_err();
    assert_eq!(e.list, "write_function_list");
    assert_eq!(e.pattern, "(bad");
}

#[test]
fn dml_and_ddl() {
    for q in [
        "insert into t values (1)",
        "update t set a = 1",
        "delete from t",
        "merge into t using u on t.id = u.id when matched then update set a = u.a",
        "insert into t select * from u",
    ] {
        primary_write(q);
    }
    assert_eq!(c("insert into t values (1)").kind, K::Insert);
    assert_eq!(c("update t set a = 1").kind, K::Update);
    assert_eq!(c("delete from t").kind, K::Delete);
    for q in [
        "create table t (a int)",
        "create temp table t (a int)",
        "drop table t",
        "alter table t add column b int",
        "create index on t (a)",
        "truncate t",
        "grant select on t to u",
        "create view v as select 1",
        "create table t2 as select * from t",
        "comment on table t is 'x'",
    ] {
        primary_write(q);
        assert_eq!(c(q).kind, K::Ddl, "{q}");
    }
    primary_write("vacuum t");
    assert_eq!(c("analyze t").kind, K::Maintenance);
    primary_write("call p()");
    primary_write("do $$ begin end $$");
}

#[test]
fn lock() {
    primary_write("lock table t");
    primary_write("lock t in row exclusive mode");
    assert_eq!(c("lock table t").kind, K::Lock);
    // Pgpool-II: weaker modes are taken on every node
    assert_eq!(route("lock t in access share mode"), Route::All);
}

#[test]
fn cursors_listen_notify_two_phase() {
    primary_write("declare c cursor for select 1");
    primary_write("fetch 10 from c");
    primary_write("close c");
    assert_eq!(c("declare c cursor for select 1").kind, K::Cursor);
    primary_write("listen ch");
    primary_write("notify ch, 'x'");
    primary_write("unlisten *");
    assert_eq!(c("listen ch").kind, K::Listen);
    assert_eq!(c("notify ch").kind, K::Notify);
    let p = c("prepare transaction 'g1'");
    assert_eq!(
        (p.route, p.kind),
        (Route::Primary, K::Transaction(T::PrepareTransaction))
    );
    assert!(p.ends_transaction);
    assert_eq!(route("commit prepared 'g1'"), Route::Primary);
    assert_eq!(route("rollback prepared 'g1'"), Route::Primary);
}

#[test]
fn session_state_goes_everywhere() {
    all("set search_path to a, b");
    all("set local work_mem = '64MB'");
    all("reset all");
    all("discard all");
    all("deallocate all");
    all("savepoint s1");
    all("release savepoint s1");
    all("rollback to savepoint s1");
    all("begin");
    all("start transaction");
    all("commit");
    all("end");
    all("rollback");
    all("abort");
    assert_eq!(c("set a = 1").kind, K::Set);
    assert_eq!(c("discard all").kind, K::Discard);
    assert_eq!(c("savepoint s").kind, K::Transaction(T::Savepoint));
    assert_eq!(c("release s").kind, K::Transaction(T::Release));
    assert_eq!(c("rollback to s").kind, K::Transaction(T::RollbackTo));
    let b = c("begin");
    assert!(b.starts_transaction && !b.ends_transaction && !b.serializable);
    assert_eq!(b.kind, K::Transaction(T::Begin));
    let e = c("commit");
    assert!(e.ends_transaction && !e.starts_transaction);
    assert!(c("rollback").ends_transaction);
    assert!(!c("rollback to s").ends_transaction);
}

#[test]
fn serializable_and_read_write() {
    let b = c("BEGIN ISOLATION LEVEL SERIALIZABLE");
    assert_eq!(b.route, Route::All);
    assert!(b.serializable && b.starts_transaction);
    assert!(c("start transaction isolation level serializable, read write").serializable);
    assert!(!c("begin isolation level repeatable read").serializable);
    let rw = c("begin read write");
    assert!(rw.read_write && !rw.serializable);
    assert!(!c("begin read only").read_write);

    for q in [
        "set transaction isolation level serializable",
        "set session characteristics as transaction isolation level serializable",
        "set default_transaction_isolation = 'serializable'",
        "set transaction_isolation to serializable",
    ] {
        let x = c(q);
        assert_eq!(x.route, Route::Primary, "{q}");
        assert!(x.serializable && !x.is_write, "{q}");
    }
    assert_eq!(
        route("set transaction isolation level read committed"),
        Route::All
    );
    for q in [
        "set transaction read write",
        "set transaction_read_only = off",
    ] {
        let x = c(q);
        assert_eq!(x.route, Route::Primary, "{q}");
        assert!(x.read_write, "{q}");
    }
    assert_eq!(route("set transaction read only"), Route::All);
}

#[test]
fn prepare_execute_deallocate() {
    let p = c("prepare p(int) as select * from t where a = $1");
    assert_eq!((p.route, p.kind), (Route::LoadBalance, K::Prepare));
    primary_write("prepare p as insert into t values (1)");
    primary_write("prepare p as select nextval('s')");
    assert_eq!(c("prepare p as insert into t values (1)").kind, K::Prepare);
    // the server routes EXECUTE / DEALLOCATE name where the PREPARE went
    let e = c("execute p(1)");
    assert_eq!((e.route, e.kind), (Route::Primary, K::Execute));
    let d = c("deallocate p");
    assert_eq!(
        (d.route, d.kind, d.is_write),
        (Route::Primary, K::Deallocate, false)
    );
    assert_eq!(route("deallocate all"), Route::All);
}

#[test]
fn show_explain_copy() {
    lb("show work_mem");
    assert_eq!(c("show all").kind, K::Show);
    lb("explain select * from t");
    lb("explain delete from t");
    lb("explain analyze select * from t");
    lb("explain (analyze false) delete from t");
    primary_write("explain analyze delete from t");
    primary_write("explain (analyze, buffers) insert into t values (1)");
    primary_write("explain analyze select nextval('s')");
    assert_eq!(c("explain analyze delete from t").kind, K::Explain);

    lb("copy t to stdout");
    lb("copy (select * from t where a > 1) to stdout with csv");
    primary_write("copy t from stdin");
    primary_write("copy (insert into t values (1) returning *) to stdout");
    primary_write("copy (select nextval('s')) to stdout");
    let f = c("copy t to '/tmp/x'");
    assert_eq!((f.route, f.is_write), (Route::Primary, false));
    assert_eq!(c("copy t from stdin").kind, K::Copy);
}

#[test]
fn multi_statement_goes_to_primary() {
    let m = c("select 1; select 2");
    assert_eq!(m.route, Route::Primary);
    assert!(m.multi_statement && !m.is_write);
    assert_eq!(m.kind, K::Select);
    let t = c("begin; insert into t values (1); commit");
    assert!(t.multi_statement && t.is_write && t.starts_transaction && t.ends_transaction);
    assert_eq!(t.kind, K::Transaction(T::Begin));
    assert!(!c("select 1;").multi_statement);
}

#[test]
fn no_load_balance_comment() {
    assert_eq!(route("/*NO LOAD BALANCE*/ select 1"), Route::Primary);
    assert_eq!(route("  /* NO LOAD BALANCE */ SELECT 1"), Route::Primary);
    assert_eq!(
        route("-- hello\n/*NO LOAD BALANCE*/ select 1"),
        Route::Primary
    );
    // allow_sql_comments = on ignores every comment, that one too (Pgpool-II's
    // regression test 009 checks it).
    let on = Rules::default().with_allow_sql_comments(true);
    assert_eq!(
        classify("/*NO LOAD BALANCE*/ select 1", &on).route,
        Route::LoadBalance
    );
    assert_eq!(
        classify("/* other */ select 1", &on).route,
        Route::LoadBalance
    );
    // not a read: not a write either
    assert!(!c("/*NO LOAD BALANCE*/ select 1").is_write);
    // later in the text it is not a hint
    assert_eq!(
        classify("select 1 /*NO LOAD BALANCE*/", &on).route,
        Route::LoadBalance
    );
}

#[test]
fn allow_sql_comments_and_leading_white_space() {
    // Pgpool-II: with allow_sql_comments off a commented SELECT is not load balanced
    assert_eq!(route("/* app */ select 1"), Route::Primary);
    assert_eq!(route("-- app\nselect 1"), Route::Primary);
    let on = Rules::default().with_allow_sql_comments(true);
    assert_eq!(
        classify("/* app */ select 1", &on).route,
        Route::LoadBalance
    );
    let ws = Rules::default().with_ignore_leading_white_space(false);
    assert_eq!(classify("  select 1", &ws).route, Route::Primary);
    assert_eq!(classify("select 1", &ws).route, Route::LoadBalance);
    // only SELECT is subject to the first-character test
    assert_eq!(route("/* app */ show work_mem"), Route::LoadBalance);
}

#[test]
fn primary_routing_query_patterns() {
    let r = Rules::default()
        .with_primary_routing_query_pattern_list(&["SELECT \\* FROM t1", ".*reports.*"])
        .unwrap();
    assert_eq!(
        classify("select * from t1", &r).route,
        Route::Primary,
        "case-insensitive"
    );
    assert_eq!(
        classify("select * from t1 where a = 1", &r).route,
        Route::LoadBalance,
        "anchored"
    );
    assert_eq!(
        classify("select count(*) from reports", &r).route,
        Route::Primary
    );
    assert_eq!(classify("select 1", &r).route, Route::LoadBalance);
    assert!(!classify("select * from t1", &r).is_write);
}

#[test]
fn system_catalogs_stay_on_primary() {
    let x = c("select * from pg_class where relname = 't1'");
    assert_eq!((x.route, x.is_write), (Route::Primary, false));
    assert_eq!(
        route("select * from pg_catalog.pg_namespace"),
        Route::Primary
    );
    assert_eq!(route("select * from pgbench_accounts"), Route::LoadBalance);
}

#[test]
fn parse_errors_and_empty() {
    for q in [
        "selec 1",
        "select * from",
        "select 'unterminated",
        "select 1\0",
    ] {
        let x = c(q);
        assert_eq!((x.route, x.kind), (Route::Primary, K::ParseError), "{q}");
        assert!(x.is_write);
    }
    for q in ["", "  ", ";", "-- only a comment"] {
        let x = c(q);
        assert_eq!(x.kind, K::Empty, "{q:?}");
        assert!(!x.is_write);
    }
}

#[test]
fn tables_and_functions_are_reported() {
    let x = c(
        "select a.x, lower(b.y) from public.a join b on a.id = b.id join c using (id) where f(a.z)",
    );
    assert_eq!(x.tables, vec!["b", "c", "public.a"]);
    assert_eq!(x.functions, vec!["f", "lower"]);
    let w = c("with q as (select * from s) select * from q");
    assert_eq!(w.tables, vec!["s"]);
    assert_eq!(
        c("update t set a = 1 from u where t.id = u.id").tables,
        vec!["t", "u"]
    );
}

#[test]
fn function_volatility_is_left_to_the_catalog_when_no_list_is_set() {
    let r = Rules::default();
    let q = classify("select f1(a), count(*) from t", &r);
    // Without a catalog: f1 is not a known read-only built-in, so it counts as a write.
    assert_eq!((q.route, q.is_write), (Route::Primary, true));
    let v = q.catalog.as_ref().expect("verdict depends on the catalog");
    assert_eq!(v.functions, vec!["count", "f1"]);
    assert_eq!(q.resolve(|f| f == "f1"), (Route::Primary, true));
    assert_eq!(q.resolve(|_| false), (Route::LoadBalance, false));
    // A volatile built-in (pg_is_in_recovery is volatile in pg_proc) follows the catalog too.
    let q = classify("select pg_is_in_recovery()", &r);
    assert_eq!(q.route, Route::LoadBalance);
    assert_eq!(
        q.resolve(|f| f == "pg_is_in_recovery"),
        (Route::Primary, true)
    );
    // nextval is always a write; listed functions never ask the catalog.
    assert!(classify("select nextval('s')", &r).catalog.is_none());
    let w = Rules::default().with_write_function_list(&["f1"]).unwrap();
    assert!(classify("select f1(1)", &w).catalog.is_none());
    // An INSERT is a write whatever its functions are.
    let q = classify("insert into t values (f1(1))", &r);
    assert_eq!(q.resolve(|_| false), (Route::Primary, true));
}

#[test]
fn temp_tables_drops_discard_and_written_tables() {
    let r = Rules::default();
    assert_eq!(
        classify("create temp table tt (a int)", &r).temp_created,
        vec!["tt"]
    );
    assert_eq!(
        classify("create temporary table tt as select 1", &r).temp_created,
        vec!["tt"]
    );
    assert_eq!(
        classify("select 1 into temp tt", &r).temp_created,
        vec!["tt"]
    );
    assert!(classify("create table pt (a int)", &r)
        .temp_created
        .is_empty());
    assert_eq!(classify("drop table tt, s.u", &r).dropped, vec!["tt", "u"]);
    assert!(classify("discard all", &r).discards_temp);
    assert!(classify("discard temp", &r).discards_temp);
    assert!(!classify("discard plans", &r).discards_temp);
    let q = classify("insert into public.t1 select * from t2", &r);
    assert_eq!(q.written_tables, vec!["t1"]);
    assert!(classify("select * from t1", &r).written_tables.is_empty());
}

#[test]
fn statements_that_change_catalog_facts() {
    let r = Rules::default();
    for q in [
        "create function f() returns int language sql as 'select 1'",
        "create or replace function f() returns int language sql stable as 'select 1'",
        "alter function f() volatile",
        "create extension pgcrypto",
        "create unlogged table u (a int)",
        "alter table t set unlogged",
        "alter table t set logged",
        "alter function f() rename to g",
        "do $$ begin end $$",
        "select 1; create function f() returns int language sql as 'select 1'",
        "create table t (a serial)",
        "alter table t alter column b set default now()",
    ] {
        assert!(classify(q, &r).changes_catalog_facts, "{q}");
    }
    for q in [
        "create temp table tt (a int)",
        "drop table t",
        "create index on t (a)",
        "select 1",
    ] {
        assert!(!classify(q, &r).changes_catalog_facts, "{q}");
    }
}

#[test]
fn insert_targets_are_quoted_as_written() {
    let r = Rules::default();
    assert_eq!(
        classify(
            "insert into public.T1 values (1); insert into \"Q\"\"x\" select 1",
            &r
        )
        .insert_targets,
        vec![
            ("\"public\".\"t1\"".to_string(), "t1".to_string()),
            ("\"Q\"\"x\"".to_string(), "Q\"x".to_string())
        ]
    );
    assert!(classify("update t set a = 1", &r).insert_targets.is_empty());
}

#[test]
fn session_statements_of_a_multi_statement_text() {
    let r = Rules::default();
    let c = classify(
        "SET work_mem='8MB'; SHOW work_mem; SET work_mem = '9MB'; SHOW work_mem",
        &r,
    );
    assert_eq!(c.route, Route::Primary);
    assert_eq!(
        c.session_statements.as_deref(),
        Some("SET work_mem='8MB';SET work_mem = '9MB'")
    );
    let c = classify("insert into t values (1); commit", &r);
    assert_eq!(c.session_statements.as_deref(), Some("commit"));
    assert_eq!(classify("set a = 1", &r).session_statements, None);
    assert_eq!(classify("select 1; select 2", &r).session_statements, None);
}
