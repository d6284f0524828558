//! tokio-postgres scenarios: run against PostgreSQL directly and through
//! pgpool, outputs compared (regress/clients/lib.sh).  Environment and output
//! format as in ../python/common.py: CLIENT_HOST, CLIENT_PORT, CLIENT_USER,
//! CLIENT_DB, CLIENT_ONLY, CLIENT_AFTER, CLIENT_SCENARIO_TIMEOUT; one
//! "== name" block per scenario, errors as "ERROR <SQLSTATE> <message>", pids
//! only as own-pid/other-pid, big results as count + md5.
//!
//! tokio-postgres uses the extended protocol with binary parameters and
//! results for query/execute (a named statement "sN" is prepared, used and
//! closed per call with a &str), the simple protocol for
//! simple_query/batch_execute, and pipelines requests that are in flight
//! together on one connection.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{future::join_all, pin_mut, SinkExt, StreamExt};
use md5::{Digest, Md5};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{
    AsyncMessage, Client, Error, NoTls, Notification, Row, SimpleQueryMessage, Statement,
};

type Res = Result<(), Error>;
type Scenario = fn() -> Pin<Box<dyn Future<Output = Res>>>;

// ---------------------------------------------------------------- output

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
}

fn md5hex(data: impl AsRef<[u8]>) -> String {
    Md5::digest(data.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// tokio-postgres names its statements "s<N>" and portals "p<N>" from a
/// process-wide counter: keep the messages independent of it.
fn normalize(msg: &str) -> String {
    let mut res = String::with_capacity(msg.len());
    let b = msg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"'
            && i + 2 < b.len()
            && (b[i + 1] == b's' || b[i + 1] == b'p')
            && b[i + 2].is_ascii_digit()
        {
            let mut j = i + 2;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                res.push('"');
                res.push(b[i + 1] as char);
                res.push_str("N\"");
                i = j + 1;
                continue;
            }
        }
        let ch = msg[i..].chars().next().unwrap();
        res.push(ch);
        i += ch.len_utf8();
    }
    res
}

fn fmt_err(e: &Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("ERROR {} {}", db.code().code(), normalize(db.message())),
        None => {
            let s = e.to_string();
            format!("EXC {}", normalize(s.lines().next().unwrap_or("")))
        }
    }
}

fn err(e: &Error) {
    out(&fmt_err(e));
}

/// Any value, as its raw (binary format) bytes.
struct Raw(Vec<u8>);
impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn fmt_bytes(b: &[u8]) -> String {
    format!(
        "bytes[{}]:{}",
        b.len(),
        if b.len() <= 32 { hex(b) } else { md5hex(b) }
    )
}

fn fmt_str(s: &str) -> String {
    if s.chars().count() > 200 {
        format!("str[{}]:{}", s.chars().count(), md5hex(s))
    } else {
        format!("str:{s}")
    }
}

fn fmt_time(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => format!("time:{}.{:06}", d.as_secs(), d.subsec_micros()),
        Err(e) => {
            let d = e.duration();
            format!("time:-{}.{:06}", d.as_secs(), d.subsec_micros())
        }
    }
}

fn fmt_opt<T>(v: &Option<T>, f: impl Fn(&T) -> String) -> String {
    match v {
        None => "NULL".into(),
        Some(x) => f(x),
    }
}

fn fmt_arr<T>(v: &[Option<T>], f: impl Fn(&T) -> String) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| fmt_opt(x, &f))
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The canonical text of column `i` of a row (binary format results).
fn fmt_col(row: &Row, i: usize) -> String {
    let ty = row.columns()[i].type_();
    macro_rules! get {
        ($t:ty, $f:expr) => {
            match row.try_get::<_, Option<$t>>(i) {
                Ok(v) => fmt_opt(&v, $f),
                Err(_) => fmt_raw(row, i),
            }
        };
    }
    macro_rules! arr {
        ($t:ty, $f:expr) => {
            match row.try_get::<_, Option<Vec<Option<$t>>>>(i) {
                Ok(v) => fmt_opt(&v, |a| fmt_arr(a, $f)),
                Err(_) => fmt_raw(row, i), // e.g. a 2-dimensional array
            }
        };
    }
    if *ty == Type::INT2 {
        get!(i16, |v| format!("i16:{v}"))
    } else if *ty == Type::INT4 {
        get!(i32, |v| format!("i32:{v}"))
    } else if *ty == Type::INT8 {
        get!(i64, |v| format!("i64:{v}"))
    } else if *ty == Type::OID {
        get!(u32, |v| format!("oid:{v}"))
    } else if *ty == Type::CHAR {
        get!(i8, |v| format!("i8:{v}"))
    } else if *ty == Type::FLOAT4 {
        get!(f32, |v| format!("f32:{v:?}"))
    } else if *ty == Type::FLOAT8 {
        get!(f64, |v| format!("f64:{v:?}"))
    } else if *ty == Type::BOOL {
        get!(bool, |v| (if *v { "t" } else { "f" }).to_string())
    } else if [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
    ]
    .contains(ty)
    {
        get!(String, |v| fmt_str(v))
    } else if *ty == Type::BYTEA {
        get!(Vec<u8>, |v| fmt_bytes(v))
    } else if *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ {
        get!(SystemTime, |v| fmt_time(*v))
    } else if *ty == Type::INET {
        get!(std::net::IpAddr, |v| format!("ip:{v}"))
    } else if *ty == Type::INT4_ARRAY {
        arr!(i32, |v| format!("i32:{v}"))
    } else if *ty == Type::INT8_ARRAY {
        arr!(i64, |v| format!("i64:{v}"))
    } else if *ty == Type::FLOAT8_ARRAY {
        arr!(f64, |v| format!("f64:{v:?}"))
    } else if *ty == Type::BOOL_ARRAY {
        arr!(bool, |v| (if *v { "t" } else { "f" }).to_string())
    } else if *ty == Type::TEXT_ARRAY {
        arr!(String, |v| fmt_str(v))
    } else if *ty == Type::BYTEA_ARRAY {
        arr!(Vec<u8>, |v| fmt_bytes(v))
    } else {
        fmt_raw(row, i)
    }
}

fn fmt_raw(row: &Row, i: usize) -> String {
    match row.try_get::<_, Option<Raw>>(i) {
        Ok(v) => fmt_opt(&v, |v| {
            format!(
                "raw:{}:{}",
                row.columns()[i].type_().name(),
                fmt_bytes(&v.0)
            )
        }),
        Err(e) => format!("decode-error:{e}"),
    }
}

fn fmt_row(row: &Row) -> String {
    (0..row.len())
        .map(|i| fmt_col(row, i))
        .collect::<Vec<_>>()
        .join("|")
}

fn fmt_rows(rows: &[Row]) -> String {
    rows.iter().map(fmt_row).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------- connections

struct Conn {
    client: Client,
    notes: Arc<Mutex<Vec<Notification>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn config() -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(env("CLIENT_HOST", "127.0.0.1"))
        .port(env("CLIENT_PORT", "5432").parse().expect("CLIENT_PORT"))
        .user(env("CLIENT_USER", "postgres"))
        .dbname(env("CLIENT_DB", "test"));
    cfg
}

/// Connect, and drive the connection in a task that keeps the
/// notifications (AsyncMessage::Notification) it receives.
async fn connect() -> Result<Conn, Error> {
    let (client, mut conn) = config().connect(NoTls).await?;
    let notes = Arc::new(Mutex::new(Vec::new()));
    let keep = notes.clone();
    let task = tokio::spawn(async move {
        let mut msgs = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = msgs.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => keep.lock().unwrap().push(n),
                Ok(_) => {} // notices
                Err(e) => {
                    out(&format!("  connection error: {}", fmt_err(&e)));
                    break;
                }
            }
        }
    });
    Ok(Conn {
        client,
        notes,
        task,
    })
}

impl Conn {
    async fn close(self) {
        drop(self.client);
        let _ = self.task.await;
    }
}

// ---------------------------------------------------------------- helpers

/// query(): extended protocol, binary; prints the rows or the error.
async fn q(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> bool {
    match c.query(sql, params).await {
        Ok(rows) => {
            for r in &rows {
                out(&format!("  {}", fmt_row(r)));
            }
            true
        }
        Err(e) => {
            err(&e);
            false
        }
    }
}

/// execute(): extended protocol; prints the affected row count or the error.
async fn ex(c: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> bool {
    match c.execute(sql, params).await {
        Ok(n) => {
            out(&format!("  rows {n}"));
            true
        }
        Err(e) => {
            err(&e);
            false
        }
    }
}

fn show_simple(msgs: &[SimpleQueryMessage]) {
    for m in msgs {
        match m {
            SimpleQueryMessage::Row(r) => {
                let vals: Vec<String> = (0..r.len())
                    .map(|i| r.get(i).map(fmt_str).unwrap_or_else(|| "NULL".into()))
                    .collect();
                out(&format!("  {}", vals.join("|")));
            }
            SimpleQueryMessage::CommandComplete(n) => out(&format!("  complete {n}")),
            SimpleQueryMessage::RowDescription(cols) => {
                let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
                out(&format!("  columns {}", names.join(",")));
            }
            _ => out("  other message"),
        }
    }
}

/// simple_query(): the simple protocol, text results; prints every message.
async fn sq(c: &Client, sql: &str) -> bool {
    match c.simple_query(sql).await {
        Ok(msgs) => {
            show_simple(&msgs);
            true
        }
        Err(e) => {
            err(&e);
            false
        }
    }
}

/// batch_execute(): the simple protocol, results dropped; prints ok or the error.
async fn be(c: &Client, sql: &str) -> bool {
    match c.batch_execute(sql).await {
        Ok(()) => {
            out("  ok");
            true
        }
        Err(e) => {
            err(&e);
            false
        }
    }
}

fn tbl(name: &str) -> String {
    format!("cl_rust_{name}")
}

async fn fresh(c: &Client, name: &str, cols: &str) -> Result<String, Error> {
    let t = tbl(name);
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} ({cols})"
    ))
    .await?;
    Ok(t)
}

const COLS: &str = "id int primary key, v text";

type Outcome<'a> = Pin<Box<dyn Future<Output = String> + 'a>>;

fn o_exec<'a>(f: impl Future<Output = Result<u64, Error>> + 'a) -> Outcome<'a> {
    Box::pin(async move {
        match f.await {
            Ok(n) => format!("rows {n}"),
            Err(e) => format!("error\n{}", fmt_err(&e)),
        }
    })
}

fn o_query<'a>(f: impl Future<Output = Result<Vec<Row>, Error>> + 'a) -> Outcome<'a> {
    Box::pin(async move {
        match f.await {
            Ok(rows) => format!("result {}", fmt_rows(&rows)),
            Err(e) => format!("error\n{}", fmt_err(&e)),
        }
    })
}

fn o_simple<'a>(
    f: impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + 'a,
) -> Outcome<'a> {
    Box::pin(async move {
        match f.await {
            Ok(msgs) => {
                let n = msgs
                    .iter()
                    .filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_)))
                    .count();
                format!("simple ok, {n} complete")
            }
            Err(e) => format!("error\n{}", fmt_err(&e)),
        }
    })
}

/// execute(st, [v]) as a pipelined outcome.
fn exec_one<'a>(c: &'a Client, st: &'a Statement, v: &'a i32) -> Outcome<'a> {
    o_exec(async move { c.execute(st, &[v as &(dyn ToSql + Sync)]).await })
}

/// Run the futures together (pipelined on the connection: each sends its
/// messages when first polled, in order) and print each outcome in order.
async fn settle(futs: Vec<Outcome<'_>>) {
    for (i, s) in join_all(futs).await.into_iter().enumerate() {
        out(&format!("  q{i} {s}"));
    }
}

// ---------------------------------------------------------------- scenarios

async fn sql_prepare() -> Res {
    let c = connect().await?;
    let t = fresh(&c, "sql_prepare", COLS).await?;
    c.batch_execute(&format!("INSERT INTO {t} VALUES (1, 'one'), (2, 'two')"))
        .await?;
    sq(
        &c,
        &format!("PREPARE p(int) AS SELECT v FROM {t} WHERE id = $1"),
    )
    .await;
    sq(&c, "EXECUTE p(1)").await;
    sq(&c, "EXECUTE p(2)").await;
    // EXECUTE through the extended protocol (Parse of "EXECUTE p(1)")
    q(&c, "EXECUTE p(1)", &[]).await;
    sq(&c, "DEALLOCATE p").await;
    sq(
        &c,
        &format!("PREPARE p(int) AS SELECT v || '!' FROM {t} WHERE id = $1"),
    )
    .await;
    sq(&c, "EXECUTE p(2)").await;
    sq(&c, "DEALLOCATE p").await;
    sq(&c, "EXECUTE p(2)").await;
    // a write PREPARE: listed in pg_prepared_statements
    sq(
        &c,
        &format!("PREPARE w(int) AS INSERT INTO {t} VALUES ($1, 'w')"),
    )
    .await;
    sq(&c, "EXECUTE w(3)").await;
    q(
        &c,
        "SELECT name, statement FROM pg_prepared_statements WHERE name IN ('p', 'w') ORDER BY name",
        &[],
    )
    .await;
    sq(&c, "DEALLOCATE w").await;
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

async fn multi_set_show() -> Res {
    let c = connect().await?;
    sq(
        &c,
        "SET work_mem='8MB'; SHOW work_mem; SET work_mem='9MB'; SHOW work_mem",
    )
    .await;
    sq(&c, "SHOW work_mem").await;
    q(&c, "SELECT current_setting('work_mem')", &[]).await;
    q(&c, "SHOW work_mem", &[]).await;
    be(&c, "SET work_mem='10MB'; SET work_mem='11MB'").await;
    sq(&c, "SHOW work_mem").await;
    c.close().await;
    Ok(())
}

async fn batch_execute_error() -> Res {
    let c = connect().await?;
    let t = fresh(&c, "batch", COLS).await?;
    // one implicit transaction: the error undoes the whole batch
    be(&c, &format!("INSERT INTO {t} VALUES (1, 'a'); INSERT INTO {t} VALUES (1, 'dup'); INSERT INTO {t} VALUES (2, 'b')")).await;
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    be(
        &c,
        &format!("INSERT INTO {t} VALUES (1, 'a'); INSERT INTO {t} VALUES (2, 'b')"),
    )
    .await;
    sq(
        &c,
        &format!("SELECT id FROM {t} ORDER BY id; SELECT 1/0; SELECT 'never'"),
    )
    .await;
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

async fn read_your_writes() -> Res {
    let mut c = connect().await?;
    let t = fresh(&c, "ryw", COLS).await?;
    for i in 1..=3i32 {
        ex(&c, &format!("INSERT INTO {t} VALUES ($1, 'x')"), &[&i]).await;
        q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    }
    let tx = c.client.transaction().await?;
    q(tx.client(), &format!("SELECT count(*) FROM {t}"), &[]).await;
    ex(
        tx.client(),
        &format!("INSERT INTO {t} VALUES ($1, 'tx')"),
        &[&100i32],
    )
    .await;
    q(tx.client(), &format!("SELECT count(*) FROM {t}"), &[]).await;
    tx.commit().await?;
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

async fn pipelined_autocommit() -> Res {
    let c = connect().await?;
    let t = fresh(&c, "pipe_ac", COLS).await?;
    let ins = c
        .prepare(&format!("INSERT INTO {t} VALUES ($1, 'p')"))
        .await?;
    let count = c.prepare(&format!("SELECT count(*) FROM {t}")).await?;
    let ids: Vec<i32> = (1..=50).collect();
    let mut futs: Vec<Outcome> = ids.iter().map(|i| exec_one(&c, &ins, i)).collect();
    futs.push(o_query(c.query(&count, &[])));
    settle(futs).await;
    // an error in the middle, nothing awaited in between (prepared statements)
    let more = [100i32, 1, 101];
    let mut futs: Vec<Outcome> = more.iter().map(|i| exec_one(&c, &ins, i)).collect();
    futs.push(o_query(c.query(&count, &[])));
    settle(futs).await;
    // the same with unprepared statements (each prepares, runs and closes its own)
    let s1 = format!("INSERT INTO {t} VALUES (200, 'a')");
    let s2 = format!("INSERT INTO {t} VALUES (2, 'dup')");
    let s3 = format!("INSERT INTO {t} VALUES (201, 'b')");
    let s4 = format!("SELECT count(*) FROM {t}");
    settle(vec![
        o_exec(c.execute(&s1, &[])),
        o_exec(c.execute(&s2, &[])),
        o_exec(c.execute(&s3, &[])),
        o_query(c.query(&s4, &[])),
    ])
    .await;
    q(&c, &format!("SELECT count(*), max(id) FROM {t}"), &[]).await;
    drop((ins, count));
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

async fn pipelined_transaction() -> Res {
    let mut c = connect().await?;
    let t = fresh(&c, "pipe_tx", COLS).await?;
    let ins = c
        .prepare(&format!("INSERT INTO {t} VALUES ($1, 'p')"))
        .await?;
    let count = c.prepare(&format!("SELECT count(*) FROM {t}")).await?;
    {
        let tx = c.client.transaction().await?;
        let cl = tx.client();
        let ids: Vec<i32> = (1..=50).collect();
        let mut futs: Vec<Outcome> = ids.iter().map(|i| exec_one(cl, &ins, i)).collect();
        futs.push(o_query(cl.query(&count, &[])));
        settle(futs).await;
        tx.commit().await?;
    }
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    {
        // an error in the middle of a transaction: the rest fails, COMMIT rolls back
        let tx = c.client.transaction().await?;
        let cl = tx.client();
        let more = [100i32, 1, 101];
        let mut futs: Vec<Outcome> = more.iter().map(|i| exec_one(cl, &ins, i)).collect();
        futs.push(o_query(cl.query(&count, &[])));
        settle(futs).await;
        match tx.commit().await {
            Ok(()) => out("  commit ok"),
            Err(e) => err(&e),
        }
    }
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    // BEGIN and COMMIT in the pipeline itself (simple queries between extended ones)
    let cl = &c.client;
    let more = [300i32, 301, 302];
    let mut futs: Vec<Outcome> = vec![o_simple(cl.simple_query("BEGIN"))];
    futs.extend(more.iter().map(|i| exec_one(cl, &ins, i)));
    futs.push(o_query(cl.query(&count, &[])));
    futs.push(o_simple(cl.simple_query("COMMIT")));
    futs.push(o_query(cl.query(&count, &[])));
    settle(futs).await;
    let more = [400i32, 2, 401];
    let mut futs: Vec<Outcome> = vec![o_simple(cl.simple_query("BEGIN"))];
    futs.extend(more.iter().map(|i| exec_one(cl, &ins, i)));
    futs.push(o_query(cl.query(&count, &[])));
    futs.push(o_simple(cl.simple_query("COMMIT")));
    futs.push(o_query(cl.query(&count, &[])));
    settle(futs).await;
    drop((ins, count));
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

async fn savepoints() -> Res {
    let mut c = connect().await?;
    let t = fresh(&c, "savepoints", COLS).await?;
    {
        let mut tx = c.client.transaction().await?;
        ex(
            tx.client(),
            &format!("INSERT INTO {t} VALUES (1, 'a')"),
            &[],
        )
        .await;
        {
            let sp = tx.savepoint("s1").await?;
            ex(
                sp.client(),
                &format!("INSERT INTO {t} VALUES (2, 'b')"),
                &[],
            )
            .await;
            ex(
                sp.client(),
                &format!("INSERT INTO {t} VALUES (1, 'dup')"),
                &[],
            )
            .await;
            q(sp.client(), &format!("SELECT count(*) FROM {t}"), &[]).await;
            sp.rollback().await?;
        }
        q(tx.client(), &format!("SELECT count(*) FROM {t}"), &[]).await;
        {
            let sp = tx.savepoint("s2").await?;
            ex(
                sp.client(),
                &format!("INSERT INTO {t} VALUES (3, 'c')"),
                &[],
            )
            .await;
            sp.commit().await?; // RELEASE
        }
        {
            // dropped without commit: ROLLBACK TO
            let mut sp = tx.transaction().await?;
            ex(
                sp.client(),
                &format!("INSERT INTO {t} VALUES (4, 'd')"),
                &[],
            )
            .await;
            let _ = &mut sp;
        }
        q(tx.client(), &format!("SELECT id FROM {t} ORDER BY id"), &[]).await;
        tx.commit().await?;
    }
    q(&c, &format!("SELECT id FROM {t} ORDER BY id"), &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

async fn prepared_reuse() -> Res {
    let c = connect().await?;
    let t = fresh(&c, "prep_reuse", COLS).await?;
    c.batch_execute(&format!(
        "INSERT INTO {t} SELECT i, 'v' || i FROM generate_series(1, 100) i"
    ))
    .await?;
    let st = c
        .prepare(&format!("SELECT v FROM {t} WHERE id = $1"))
        .await?;
    let mut total = 0;
    for i in 1..=50i32 {
        let v: String = c.query_one(&st, &[&i]).await?.get(0);
        total += v.len();
    }
    out(&format!("  50 executions, total length {total}"));
    sq(&c, "DISCARD ALL").await;
    match c.query_one(&st, &[&1i32]).await {
        Ok(r) => out(&format!(
            "  old statement after DISCARD ALL {}",
            fmt_row(&r)
        )),
        Err(e) => err(&e),
    }
    let st = c
        .prepare(&format!("SELECT v FROM {t} WHERE id = $1"))
        .await?;
    let mut total = 0;
    for i in 1..=10i32 {
        let v: String = c.query_one(&st, &[&i]).await?.get(0);
        total += v.len();
    }
    out(&format!("  new statement, total length {total}"));
    let ins = c
        .prepare_typed(&format!("INSERT INTO {t} VALUES ($1, 'w')"), &[Type::INT4])
        .await?;
    for i in 0..5i32 {
        match c.execute(&ins, &[&(1000 + i)]).await {
            Ok(n) => out(&format!("  inserted {n}")),
            Err(e) => err(&e),
        }
    }
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    drop((st, ins));
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

fn ts(secs: u64, micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros)
}

async fn types_binary() -> Res {
    let c = connect().await?;
    c.batch_execute("SET TimeZone = 'UTC'").await?;
    let cases: Vec<(&str, &str, Box<dyn ToSql + Sync + Send>)> = vec![
        ("int2", "$1::int2", Box::new(7i16)),
        ("int4", "$1::int4", Box::new(i32::MIN)),
        ("int8", "$1::int8", Box::new(i64::MAX)),
        ("float4", "$1::float4", Box::new(0.25f32)),
        ("float8", "$1::float8", Box::new(1.5e300f64)),
        ("float8 nan", "$1::float8", Box::new(f64::NAN)),
        (
            "numeric",
            "$1::text::numeric",
            Box::new("12345678901234567890.123456789"),
        ),
        (
            "numeric text",
            "$1::text::numeric::text",
            Box::new("-0.000123"),
        ),
        ("text", "$1::text", Box::new("plain 'quoted' \\ text")),
        ("varchar", "$1::varchar", Box::new("v".to_string())),
        ("bytea", "$1::bytea", Box::new(vec![0u8, 1, 2, 0xfe, 0xff])),
        ("bool", "$1::bool", Box::new(true)),
        ("oid", "$1::oid", Box::new(4_000_000_000u32)),
        ("char", "$1::\"char\"", Box::new(65i8)),
        (
            "timestamptz",
            "$1::timestamptz",
            Box::new(ts(981_173_106, 0)),
        ),
        ("timestamp", "$1::timestamp", Box::new(ts(981_173_106, 789))),
        (
            "timestamptz 1900",
            "$1::timestamptz",
            Box::new(UNIX_EPOCH - Duration::from_secs(2_208_988_800)),
        ),
        ("date", "$1::text::date", Box::new("2024-02-29")),
        (
            "interval",
            "$1::text::interval",
            Box::new("3 days 00:00:07.000005"),
        ),
        (
            "uuid",
            "$1::text::uuid",
            Box::new("12345678-1234-5678-1234-567812345678"),
        ),
        (
            "jsonb",
            "$1::text::jsonb",
            Box::new(r#"{"a": [1, 2, {"b": null}]}"#),
        ),
        (
            "inet",
            "$1::inet",
            Box::new("192.0.2.1".parse::<std::net::IpAddr>().unwrap()),
        ),
        ("int4[]", "$1::int4[]", Box::new(vec![1i32, 2, 3])),
        (
            "int8[]",
            "$1::int8[]",
            Box::new(vec![Some(1i64), None, Some(-3)]),
        ),
        ("float8[]", "$1::float8[]", Box::new(vec![0.5f64, -1e-300])),
        ("bool[]", "$1::bool[]", Box::new(vec![true, false])),
        (
            "text[]",
            "$1::text[]",
            Box::new(vec![Some("a".to_string()), Some("b c".to_string()), None]),
        ),
        ("bytea[]", "$1::bytea[]", Box::new(vec![vec![1u8], vec![]])),
        ("int4[][]", "$1::text::int4[]", Box::new("{{1,2},{3,4}}")),
        ("null int4", "$1::int4", Box::new(None::<i32>)),
        ("null text", "$1::text", Box::new(None::<String>)),
    ];
    for (label, expr, val) in &cases {
        let sql = format!("SELECT {expr}, pg_typeof({expr})::text");
        let v: &(dyn ToSql + Sync) = val.as_ref();
        match c.query_one(&sql, &[v]).await {
            Ok(r) => out(&format!("  {label} {}", fmt_row(&r))),
            Err(e) => {
                out(&format!("  {label}"));
                err(&e);
            }
        }
    }
    // a type mismatch caught by tokio-postgres before sending (no round trip)
    match c.query_one("SELECT $1::int8", &[&1i32]).await {
        Ok(r) => out(&format!("  mismatch {}", fmt_row(&r))),
        Err(e) => out(&format!(
            "  mismatch {}",
            if e.as_db_error().is_some() {
                fmt_err(&e)
            } else {
                "client-side error".into()
            }
        )),
    }
    c.close().await;
    Ok(())
}

async fn query_typed() -> Res {
    // query_typed: Parse (unnamed, with types) + Bind + Execute + Sync in one go
    let c = connect().await?;
    let t = fresh(&c, "qtyped", COLS).await?;
    for i in 1..=3i32 {
        let v = format!("t{i}");
        match c
            .query_typed(
                &format!("INSERT INTO {t} VALUES ($1, $2) RETURNING id, v"),
                &[(&i, Type::INT4), (&v, Type::TEXT)],
            )
            .await
        {
            Ok(rows) => out(&format!("  {}", fmt_rows(&rows))),
            Err(e) => err(&e),
        }
    }
    match c
        .query_typed(
            &format!("SELECT id, v FROM {t} WHERE id >= $1 ORDER BY id"),
            &[(&2i64, Type::INT8)],
        )
        .await
    {
        Ok(rows) => out(&format!("  {}", fmt_rows(&rows))),
        Err(e) => err(&e),
    }
    match c.query_typed("SELECT 1/$1", &[(&0i32, Type::INT4)]).await {
        Ok(rows) => out(&format!("  {}", fmt_rows(&rows))),
        Err(e) => err(&e),
    }
    // pipelined unnamed statements
    let ids = [10i32, 11, 1, 12];
    let sql = format!("INSERT INTO {t} VALUES ($1, 'p')");
    let futs: Vec<Outcome> = ids
        .iter()
        .map(|i| -> Outcome {
            let (c, sql) = (&c.client, &sql);
            o_query(async move {
                c.query_typed(sql, &[(i as &(dyn ToSql + Sync), Type::INT4)])
                    .await
            })
        })
        .collect();
    settle(futs).await;
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

async fn types_text() -> Res {
    let c = connect().await?;
    c.batch_execute("SET TimeZone = 'UTC'").await?;
    sq(
        &c,
        "SELECT 7::int2, (-2147483648)::int4, 9223372036854775807::int8, 0.25::float4, 1.5e300::float8, \
         12345678901234567890.123456789::numeric, 'plain ''quoted'' \\ text'::text, '\\x0001feff'::bytea, true, \
         '2024-02-29'::date, '2001-02-03 04:05:06.000789'::timestamp, '2001-02-03 04:05:06+00'::timestamptz, \
         '3 days 00:00:07.000005'::interval, '12345678-1234-5678-1234-567812345678'::uuid, \
         '{\"a\": [1, 2, {\"b\": null}]}'::jsonb, '{1,2,3}'::int4[], '{a,\"b c\",NULL}'::text[], NULL::text",
    )
    .await;
    c.close().await;
    Ok(())
}

/// COPY text-format rows id 1..=n: "r<id>", every 1000th 70 KB + id long
/// (a row larger than 64 KiB), some with escapes.
fn copy_rows(from: i32, to: i32) -> Vec<u8> {
    let mut buf = Vec::new();
    for id in from..=to {
        if id % 1000 == 0 {
            buf.extend_from_slice(format!("{id}\t").as_bytes());
            buf.extend(std::iter::repeat_n(b'x', 70_000 + id as usize));
            buf.push(b'\n');
        } else if id % 777 == 0 {
            buf.extend_from_slice(format!("{id}\ttab\\there \\\\ back ünï\n").as_bytes());
        } else if id % 999 == 0 {
            buf.extend_from_slice(format!("{id}\t\\N\n").as_bytes());
        } else {
            buf.extend_from_slice(format!("{id}\tr{id}\n").as_bytes());
        }
    }
    buf
}

async fn copy_in_sink(c: &Client, sql: &str, data: &[u8], chunk: usize) -> Result<u64, Error> {
    let sink = c.copy_in(sql).await?;
    pin_mut!(sink);
    for part in data.chunks(chunk) {
        sink.send(Bytes::copy_from_slice(part)).await?;
    }
    sink.finish().await
}

async fn copy_check(c: &Client, t: &str) {
    q(c, &format!("SELECT count(*), count(v), sum(length(v)), md5(string_agg(coalesce(v, '-'), ',' ORDER BY id)) FROM {t}"), &[]).await;
}

async fn copy_in() -> Res {
    let mut c = connect().await?;
    let t = fresh(&c, "copy_in", COLS).await?;
    let sql = format!("COPY {t} (id, v) FROM STDIN");
    // 10k rows in CopyData chunks of 64 KiB (rows split across messages)
    match copy_in_sink(&c, &sql, &copy_rows(1, 10_000), 65_536).await {
        Ok(n) => out(&format!("  copied {n}")),
        Err(e) => err(&e),
    }
    copy_check(&c, &t).await;
    // one CopyData message per row, and a message larger than 64 KiB
    let one: Vec<u8> = copy_rows(10_001, 11_000);
    {
        let sink = c.copy_in::<_, Bytes>(&sql).await?;
        pin_mut!(sink);
        let mut ok = true;
        for line in one.split_inclusive(|b| *b == b'\n') {
            if let Err(e) = sink.send(Bytes::copy_from_slice(line)).await {
                err(&e);
                ok = false;
                break;
            }
        }
        if ok {
            match sink.finish().await {
                Ok(n) => out(&format!("  copied {n}")),
                Err(e) => err(&e),
            }
        }
    }
    copy_check(&c, &t).await;
    // a duplicate key: the error comes with finish()
    match copy_in_sink(&c, &sql, b"20001\ta\n5\tdup\n20002\tb\n", 1 << 20).await {
        Ok(n) => out(&format!("  copied {n}")),
        Err(e) => err(&e),
    }
    // bad data
    match copy_in_sink(&c, &sql, b"20003\ta\nnot-a-number\tb\n", 1 << 20).await {
        Ok(n) => out(&format!("  copied {n}")),
        Err(e) => err(&e),
    }
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    // the sink dropped before finish(): tokio-postgres sends CopyFail
    {
        let sink = c.copy_in::<_, Bytes>(&sql).await?;
        pin_mut!(sink);
        sink.send(Bytes::from_static(b"30001\tabandoned\n")).await?;
    }
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    // inside a transaction, rolled back
    {
        let tx = c.client.transaction().await?;
        match copy_in_sink(tx.client(), &sql, &copy_rows(40_001, 40_100), 4096).await {
            Ok(n) => out(&format!("  copied {n}")),
            Err(e) => err(&e),
        }
        q(tx.client(), &format!("SELECT count(*) FROM {t}"), &[]).await;
        tx.rollback().await?;
    }
    // inside a transaction, committed
    {
        let tx = c.client.transaction().await?;
        match copy_in_sink(tx.client(), &sql, &copy_rows(50_001, 50_100), 4096).await {
            Ok(n) => out(&format!("  copied {n}")),
            Err(e) => err(&e),
        }
        tx.commit().await?;
    }
    copy_check(&c, &t).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

async fn copy_out_stream(c: &Client, sql: &str) {
    let stream = match c.copy_out(sql).await {
        Ok(s) => s,
        Err(e) => return err(&e),
    };
    pin_mut!(stream);
    let mut data = Vec::new();
    let mut chunks = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => {
                chunks += 1;
                data.extend_from_slice(&b);
            }
            Err(e) => {
                out(&format!("  after {chunks} chunks, {} bytes:", data.len()));
                return err(&e);
            }
        }
    }
    out(&format!(
        "  chunks {chunks} bytes {} {}",
        data.len(),
        md5hex(&data)
    ));
}

async fn copy_out() -> Res {
    let c = connect().await?;
    let t = fresh(&c, "copy_out", COLS).await?;
    c.batch_execute(&format!(
        "INSERT INTO {t} SELECT i, CASE WHEN i % 1000 = 0 THEN repeat('y', 70000 + i) ELSE 'v' || i END FROM generate_series(1, 10000) i"
    ))
    .await?;
    copy_out_stream(&c, &format!("COPY {t} TO STDOUT")).await;
    copy_out_stream(&c, &format!("COPY (SELECT * FROM {t} WHERE id <= 500 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)")).await;
    copy_out_stream(
        &c,
        &format!(
            "COPY (SELECT id, v FROM {t} ORDER BY id LIMIT 100) TO STDOUT WITH (FORMAT binary)"
        ),
    )
    .await;
    // an error in the middle of the stream
    copy_out_stream(
        &c,
        "COPY (SELECT 1 / (500 - i) FROM generate_series(1, 1000) i) TO STDOUT",
    )
    .await;
    copy_out_stream(&c, "COPY cl_rust_no_such_table TO STDOUT").await;
    q(&c, "SELECT 'after' AS x", &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

async fn cursor_sql() -> Res {
    let mut c = connect().await?;
    {
        let tx = c.client.transaction().await?;
        let cl = tx.client();
        be(
            cl,
            "DECLARE cur CURSOR FOR SELECT i FROM generate_series(1, 10) i",
        )
        .await;
        q(cl, "FETCH 3 FROM cur", &[]).await;
        sq(cl, "MOVE 2 IN cur").await;
        q(cl, "FETCH 2 FROM cur", &[]).await;
        sq(cl, "FETCH 2 FROM cur").await;
        sq(cl, "CLOSE cur").await;
        q(cl, "FETCH 1 FROM cur", &[]).await;
        match tx.commit().await {
            Ok(()) => out("  commit ok"),
            Err(e) => err(&e),
        }
    }
    {
        let tx = c.client.transaction().await?;
        be(
            tx.client(),
            "DECLARE hc CURSOR WITH HOLD FOR SELECT i FROM generate_series(1, 5) i",
        )
        .await;
        tx.commit().await?;
    }
    q(&c, "FETCH ALL FROM hc", &[]).await;
    sq(&c, "CLOSE hc").await;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

async fn cursor_portal() -> Res {
    let mut c = connect().await?;
    let t = fresh(&c, "portal", COLS).await?;
    c.batch_execute(&format!(
        "INSERT INTO {t} SELECT i, 'v' || i FROM generate_series(1, 1000) i"
    ))
    .await?;
    {
        let tx = c.client.transaction().await?;
        let st = tx
            .prepare(&format!("SELECT id FROM {t} WHERE id <= $1 ORDER BY id"))
            .await?;
        let p = tx.bind(&st, &[&1000i32]).await?;
        let (mut sizes, mut sum) = (Vec::new(), 0i64);
        loop {
            let rows = tx.query_portal(&p, 300).await?;
            sizes.push(rows.len().to_string());
            sum += rows.iter().map(|r| r.get::<_, i32>(0) as i64).sum::<i64>();
            if rows.is_empty() {
                break;
            }
        }
        out(&format!("  portal chunks {} sum {sum}", sizes.join(",")));
        // two portals of one statement, interleaved
        let a = tx.bind(&st, &[&10i32]).await?;
        let b = tx.bind(&st, &[&20i32]).await?;
        for _ in 0..3 {
            let ra = tx.query_portal(&a, 4).await?;
            let rb = tx.query_portal(&b, 7).await?;
            out(&format!("  a {} b {}", fmt_rows(&ra), fmt_rows(&rb)));
        }
        // an unprepared statement bound as a portal, and an error while fetching
        let e = tx
            .bind("SELECT 10 / (3 - i) FROM generate_series(1, 5) i", &[])
            .await?;
        for _ in 0..3 {
            match tx.query_portal(&e, 1).await {
                Ok(rows) => out(&format!("  e {}", fmt_rows(&rows))),
                Err(er) => {
                    err(&er);
                    break;
                }
            }
        }
        drop((p, a, b, e));
        match tx.commit().await {
            Ok(()) => out("  commit ok"),
            Err(e) => err(&e),
        }
    }
    q(&c, &format!("SELECT count(*) FROM {t}"), &[]).await;
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

/// The session's backend pid, read in a transaction after a write (LISTEN or
/// NOTIFY), so that through pgpool it comes from the node the notifications do.
async fn pid_after(c: &mut Conn, write: &str) -> Result<i32, Error> {
    let tx = c.client.transaction().await?;
    tx.batch_execute(write).await?;
    let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    tx.commit().await?;
    Ok(pid)
}

async fn listen_notify() -> Res {
    let mut c = connect().await?;
    let mut other = connect().await?;
    let me = pid_after(&mut c, "LISTEN cl_rust_ch").await?;
    sq(&c, "NOTIFY cl_rust_ch, 'from me'").await;
    let them = pid_after(&mut other, "NOTIFY cl_rust_ch, 'from other'").await?;
    q(
        &c,
        "SELECT pg_notify('cl_rust_ch', 'from me via function')",
        &[],
    )
    .await;
    for _ in 0..60 {
        if c.notes.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got: Vec<(String, String, i32)> = c
        .notes
        .lock()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n.payload().to_string(),
                n.channel().to_string(),
                n.process_id(),
            )
        })
        .collect();
    if got.len() != 3 {
        out(&format!("  got {} notifications", got.len()));
    }
    got.sort();
    for (payload, channel, pid) in &got {
        let who = if *pid == me {
            "own-pid"
        } else if *pid == them {
            "other-pid"
        } else {
            "unknown-pid"
        };
        out(&format!("  notify {payload} {channel} {who}"));
    }
    sq(&c, "UNLISTEN *").await;
    other.close().await;
    c.close().await;
    Ok(())
}

async fn cancel_and_timeout() -> Res {
    let c = connect().await?;
    let token = c.cancel_token();
    let (r, cr) = tokio::join!(c.query("SELECT pg_sleep(5)", &[]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(NoTls).await
    });
    if let Err(e) = cr {
        out(&format!("  cancel_query: {}", fmt_err(&e)));
    }
    match r {
        Ok(_) => out("  not cancelled"),
        Err(e) => err(&e),
    }
    q(&c, "SELECT 1 AS one", &[]).await;
    // a cancel while idle: nothing to cancel
    if let Err(e) = c.cancel_token().cancel_query(NoTls).await {
        out(&format!("  cancel_query: {}", fmt_err(&e)));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    q(&c, "SELECT 2 AS two", &[]).await;
    // a query future dropped by a client-side timeout: the server still runs it
    match tokio::time::timeout(
        Duration::from_millis(300),
        c.query("SELECT pg_sleep(1)", &[]),
    )
    .await
    {
        Ok(Ok(_)) => out("  finished"),
        Ok(Err(e)) => err(&e),
        Err(_) => out("  client-side timeout, future dropped"),
    }
    q(&c, "SELECT 3 AS three", &[]).await;
    sq(&c, "SET statement_timeout = '300ms'").await;
    q(&c, "SELECT pg_sleep(3)", &[]).await;
    sq(&c, "SELECT pg_sleep(3)").await;
    sq(&c, "SHOW statement_timeout").await;
    c.close().await;
    Ok(())
}

async fn temp_table() -> Res {
    let c = connect().await?;
    sq(&c, "CREATE TEMP TABLE cl_rust_tmp (id int, v text)").await;
    ex(
        &c,
        "INSERT INTO cl_rust_tmp VALUES ($1, $2), (2, 'b')",
        &[&1i32, &"a"],
    )
    .await;
    sq(&c, "SELECT count(*) FROM cl_rust_tmp").await;
    q(&c, "SELECT v FROM cl_rust_tmp WHERE id = $1", &[&2i32]).await;
    sq(&c, "DROP TABLE cl_rust_tmp").await;
    q(&c, "SELECT count(*) FROM cl_rust_tmp", &[]).await;
    c.close().await;
    Ok(())
}

async fn big_value_and_result() -> Res {
    let c = connect().await?;
    let t = fresh(&c, "big", COLS).await?;
    let big = "0123456789abcdef".repeat(10 * 1024 * 1024 / 16);
    ex(&c, &format!("INSERT INTO {t} VALUES (1, $1)"), &[&big]).await;
    q(&c, &format!("SELECT length(v), md5(v) FROM {t}"), &[]).await;
    let v: String = c
        .query_one(&format!("SELECT v FROM {t}"), &[])
        .await?
        .get(0);
    out(&format!(
        "  fetched {} {}",
        v.len(),
        md5hex(&v) == md5hex(&big)
    ));
    let rows = c
        .query(
            "SELECT i, md5(i::text) FROM generate_series(1, 100000) i",
            &[],
        )
        .await?;
    let mut all = String::new();
    for r in &rows {
        all.push_str(&format!("{} {}\n", r.get::<_, i32>(0), r.get::<_, &str>(1)));
    }
    out(&format!("  rows {} {}", rows.len(), md5hex(&all)));
    let msgs = c
        .simple_query("SELECT i, md5(i::text) FROM generate_series(1, 100000) i")
        .await?;
    let mut all = String::new();
    let mut n = 0;
    for m in &msgs {
        if let SimpleQueryMessage::Row(r) = m {
            n += 1;
            all.push_str(&format!("{} {}\n", r.get(0).unwrap(), r.get(1).unwrap()));
        }
    }
    out(&format!("  simple rows {n} {}", md5hex(&all)));
    c.batch_execute(&format!("DROP TABLE {t}")).await?;
    c.close().await;
    Ok(())
}

async fn unicode() -> Res {
    let c = connect().await?;
    let s = "héllo wörld 日本語 🐘 ñ";
    q(
        &c,
        "SELECT $1::text, length($1::text), octet_length($1::text)",
        &[&s],
    )
    .await;
    let r = c.query_one("SELECT 1 AS \"çolümn 名\"", &[]).await?;
    out(&format!(
        "  column {} {}",
        r.columns()[0].name(),
        fmt_row(&r)
    ));
    sq(&c, "SELECT 'ünï 🐘' AS \"名前\", length('ünï 🐘')").await;
    q(&c, "SELECT 'ab' || $1 || 'cd'", &[&"\u{0}"]).await;
    c.close().await;
    Ok(())
}

async fn large_objects() -> Res {
    let mut c = connect().await?;
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 256) as u8).collect();
    let oid: u32 = {
        let tx = c.client.transaction().await?;
        let oid: u32 = tx
            .query_one("SELECT lo_from_bytea(0, $1)", &[&data])
            .await?
            .get(0);
        q(
            tx.client(),
            "SELECT length(lo_get($1)), md5(lo_get($1))",
            &[&oid],
        )
        .await;
        tx.commit().await?;
        oid
    };
    let got: Vec<u8> = c.query_one("SELECT lo_get($1)", &[&oid]).await?.get(0);
    out(&format!(
        "  read back {} {}",
        got.len(),
        md5hex(&got) == md5hex(&data)
    ));
    q(&c, "SELECT lo_unlink($1)", &[&oid]).await;
    let _ = &mut c;
    c.close().await;
    Ok(())
}

// ---------------------------------------------------------------- main

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|| Box::pin($name()) as Pin<Box<dyn Future<Output = Res>>>) as Scenario)),*]
    };
}

fn driver_version() -> &'static str {
    // the locked version, from Cargo.lock at build time
    let lock = include_str!("../Cargo.lock");
    let mut it = lock.lines();
    while let Some(l) = it.next() {
        if l == "name = \"tokio-postgres\"" {
            if let Some(v) = it.next().and_then(|v| v.strip_prefix("version = \"")) {
                return v.trim_end_matches('"');
            }
        }
    }
    "?"
}

/// Kills the whole program when one scenario takes too long (a hung driver).
fn watchdog(secs: f64) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(Duration::from_secs_f64(secs))
        {
            out(&format!("!! HUNG: no answer within {secs}s"));
            let _ = std::io::stdout().flush();
            std::process::exit(3);
        }
    });
    tx
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let all: Vec<(&str, Scenario)> = scenarios![
        sql_prepare,
        multi_set_show,
        batch_execute_error,
        read_your_writes,
        pipelined_autocommit,
        pipelined_transaction,
        savepoints,
        prepared_reuse,
        types_binary,
        query_typed,
        types_text,
        copy_in,
        copy_out,
        cursor_sql,
        cursor_portal,
        listen_notify,
        cancel_and_timeout,
        temp_table,
        big_value_and_result,
        unicode,
        large_objects,
    ];
    let mut names: Vec<&str> = all.iter().map(|s| s.0).collect();
    let only = env("CLIENT_ONLY", "");
    if !only.is_empty() {
        let only: Vec<&str> = only.split(',').filter(|s| !s.is_empty()).collect();
        names.retain(|n| only.contains(n));
    }
    let after = env("CLIENT_AFTER", "");
    if let Some(pos) = names.iter().position(|n| *n == after) {
        names.drain(..=pos);
    }
    let secs: f64 = env("CLIENT_SCENARIO_TIMEOUT", "30").parse().unwrap_or(30.0);
    out(&format!("# tokio-postgres {}", driver_version()));
    for (name, f) in &all {
        if !names.contains(name) {
            continue;
        }
        out(&format!("== {name}"));
        let wd = watchdog(secs);
        if let Err(e) = f().await {
            out("!! scenario aborted:");
            err(&e);
        }
        drop(wd);
        let _ = std::io::stdout().flush();
    }
}
