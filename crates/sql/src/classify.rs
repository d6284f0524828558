//! Statement classification: parses one query string with `pg_query` (the PostgreSQL 18
//! grammar) and decides where it may run in streaming-replication mode, following Pgpool-II's
//! `send_to_where()` / `is_select_query()` rules: plain reads may be load balanced, writes and
//! anything unsure go to the primary, session-state statements go to every node. The parse
//! tree gives the statement kinds and their options; `pg_query::summary` (PostgreSQL's own
//! complete expression walker, in C) gives the tables and the called functions.

use pg_query::protobuf;
use pg_query::protobuf::summary_result::Context;
use pg_query::NodeEnum;

use crate::rules::{FunctionVerdict, Rules};
use crate::statement::classify_stmt;

/// Where a statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Only on the primary.
    Primary,
    /// On the session's load-balance node (any node), subject to the transaction state.
    LoadBalance,
    /// On every node (session state such as SET, BEGIN, SAVEPOINT).
    All,
}

/// Transaction-control statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT.
    Savepoint,
    /// RELEASE [SAVEPOINT].
    Release,
    /// ROLLBACK TO [SAVEPOINT].
    RollbackTo,
    /// PREPARE TRANSACTION.
    PrepareTransaction,
    /// COMMIT PREPARED.
    CommitPrepared,
    /// ROLLBACK PREPARED.
    RollbackPrepared,
}

/// What kind of statement it is (the first one for a multi-statement query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// SELECT, WITH … SELECT, VALUES, TABLE.
    Select,
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// CREATE / ALTER / DROP / GRANT / TRUNCATE / COMMENT and other schema changes.
    Ddl,
    /// SET / RESET / SET TRANSACTION.
    Set,
    /// SHOW.
    Show,
    /// Transaction control.
    Transaction(TransactionKind),
    /// COPY.
    Copy,
    /// EXPLAIN.
    Explain,
    /// LOCK.
    Lock,
    /// LISTEN.
    Listen,
    /// UNLISTEN.
    Unlisten,
    /// NOTIFY.
    Notify,
    /// PREPARE name AS ….
    Prepare,
    /// EXECUTE name.
    Execute,
    /// DEALLOCATE name / ALL.
    Deallocate,
    /// DISCARD.
    Discard,
    /// DECLARE / FETCH / MOVE / CLOSE of a cursor.
    Cursor,
    /// CALL / DO.
    Call,
    /// VACUUM / ANALYZE / CLUSTER / REINDEX / CHECKPOINT.
    Maintenance,
    /// An empty query (only whitespace, comments or semicolons).
    Empty,
    /// The text did not parse.
    ParseError,
    /// Any other statement.
    Other,
}

/// The routing decision for one query text and what was learnt on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Where the query may run.
    pub route: Route,
    /// The statement kind (of the first statement).
    pub kind: StatementKind,
    /// The query changes data or otherwise needs the primary by its meaning (not merely
    /// because of a hint comment or a pattern): after it, a transaction counts as writing.
    pub is_write: bool,
    /// Relations referenced, as written (schema-qualified when written so), sorted, no CTE names.
    pub tables: Vec<String>,
    /// Functions called, as written, sorted.
    pub functions: Vec<String>,
    /// More than one statement in the text (always routed to the primary).
    pub multi_statement: bool,
    /// Contains BEGIN / START TRANSACTION.
    pub starts_transaction: bool,
    /// Contains COMMIT / ROLLBACK / PREPARE TRANSACTION (not ROLLBACK TO).
    pub ends_transaction: bool,
    /// BEGIN / SET TRANSACTION / SET [default_]transaction_isolation asking for SERIALIZABLE.
    pub serializable: bool,
    /// BEGIN READ WRITE / SET TRANSACTION READ WRITE / SET transaction_read_only = off
    /// (Pgpool-II sends such a BEGIN to standbys as a plain BEGIN).
    pub read_write: bool,
    /// Tables the statement writes (INSERT/UPDATE/DELETE/MERGE targets), bare names, sorted.
    pub written_tables: Vec<String>,
    /// Temporary tables (or views, sequences) the statement creates, bare names.
    pub temp_created: Vec<String>,
    /// Tables, views and sequences the statement drops, bare names.
    pub dropped: Vec<String>,
    /// DISCARD ALL / DISCARD TEMP: the session's temporary tables are gone.
    pub discards_temp: bool,
    /// May change what the catalog says about function volatility, unlogged tables or
    /// column defaults (CREATE/ALTER FUNCTION or EXTENSION, CREATE/ALTER TABLE, renames,
    /// DO blocks). Temporary tables and other DDL do not; nor do drops, which leave a
    /// stale name that only errs towards the primary.
    pub changes_catalog_facts: bool,
    /// Set when the verdict depends on the volatility of called functions, which only the
    /// database knows (both function lists empty): see [`CatalogVerdicts`].
    pub catalog: Option<Box<CatalogVerdicts>>,
    /// The SQL-level prepared statement a PREPARE creates, or an EXECUTE or DEALLOCATE
    /// names (None for DEALLOCATE ALL): EXECUTE and DEALLOCATE go where PREPARE went.
    pub prepared_name: Option<String>,
    /// PREPARE: the kind of the statement it prepares (an EXECUTE counts as that).
    pub prepared_kind: Option<StatementKind>,
    /// The cursor (or protocol portal) a FETCH, MOVE or CLOSE names: it runs where that
    /// portal lives.
    pub cursor_name: Option<String>,
    /// A multi-statement text (which runs on the primary) with statements that change
    /// session or transaction state (SET, BEGIN, COMMIT, DISCARD …): those statements'
    /// text, for the session's other connections, as if each had come alone.
    pub session_statements: Option<String>,
    /// Tables the text INSERTs into: quoted as written (`"public"."t"`) and bare, for
    /// insert_lock.
    pub insert_targets: Vec<(String, String)>,
    /// The query cache's facts when the text is one SELECT whose result may be kept
    /// (from the same parse as the rest); only worked out under rules
    /// [`crate::Rules::with_query_cache_facts`].
    pub cache: Option<Box<crate::cacheable::CacheFacts>>,
}

/// The two verdicts of a statement whose routing depends on function volatility. `route` /
/// `is_write` of the [`Classification`] itself judge by [`crate::BUILTIN_READ_ONLY_FUNCTIONS`]
/// (for callers without a catalog); a caller that knows which functions are volatile picks
/// `if_volatile` when any of `functions` is, else `if_not_volatile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogVerdicts {
    /// Bare names of the functions to look up, sorted, no duplicates.
    pub functions: Vec<String>,
    /// (route, is_write) when at least one of them is volatile.
    pub if_volatile: (Route, bool),
    /// (route, is_write) when none is.
    pub if_not_volatile: (Route, bool),
}

impl Classification {
    /// Route and write flag given the set of volatile functions known for the database.
    pub fn resolve(&self, is_volatile: impl Fn(&str) -> bool) -> (Route, bool) {
        match &self.catalog {
            Some(v) if v.functions.iter().any(|f| is_volatile(f)) => v.if_volatile,
            Some(v) => v.if_not_volatile,
            None => (self.route, self.is_write),
        }
    }
}

impl Classification {
    pub(crate) fn new(route: Route, kind: StatementKind) -> Self {
        Classification {
            route,
            kind,
            is_write: route == Route::Primary,
            tables: Vec::new(),
            functions: Vec::new(),
            multi_statement: false,
            starts_transaction: false,
            ends_transaction: false,
            serializable: false,
            read_write: false,
            written_tables: Vec::new(),
            temp_created: Vec::new(),
            dropped: Vec::new(),
            discards_temp: false,
            changes_catalog_facts: false,
            catalog: None,
            prepared_name: None,
            prepared_kind: None,
            cursor_name: None,
            session_statements: None,
            insert_targets: Vec::new(),
            cache: None,
        }
    }
}

/// Facts about the whole text, from the summary walker.
pub(crate) struct TextFacts {
    pub(crate) write_function: bool,
    pub(crate) dml_table: bool,
    pub(crate) system_catalog: bool,
}

/// Classifies one query string (simple-protocol `Query` text or an extended `Parse` text).
/// Never fails: text that does not parse is routed to the primary as a write.
pub fn classify(sql: &str, rules: &Rules) -> Classification {
    let summary = match pg_query::summary(sql, 0, -1) {
        Ok(s) => s,
        Err(_) => return Classification::new(Route::Primary, StatementKind::ParseError),
    };
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(_) => return Classification::new(Route::Primary, StatementKind::ParseError),
    };

    let mut tables: Vec<String> = summary.tables.iter().map(|t| t.name.clone()).collect();
    tables.sort_unstable();
    tables.dedup();
    let mut written_tables: Vec<String> = summary
        .tables
        .iter()
        .filter(|t| t.context == Context::Dml)
        .map(|t| t.table_name.clone())
        .collect();
    written_tables.sort_unstable();
    written_tables.dedup();
    let mut functions = Vec::new();
    let mut catalog_functions = Vec::new();
    let mut write_function = false;
    let mut builtin_write_function = false;
    for f in summary
        .functions
        .iter()
        .filter(|f| f.context == Context::Call)
    {
        functions.push(f.name.clone());
        match rules.function_verdict(&f.name, &f.function_name, f.schema_name.as_deref()) {
            FunctionVerdict::Write => write_function = true,
            FunctionVerdict::ReadOnly => {}
            FunctionVerdict::Catalog { builtin_read_only } => {
                builtin_write_function |= !builtin_read_only;
                catalog_functions.push(f.function_name.clone());
            }
        }
    }
    functions.sort_unstable();
    functions.dedup();
    catalog_functions.sort_unstable();
    catalog_functions.dedup();
    let facts = |write_function: bool| TextFacts {
        write_function,
        dml_table: summary.tables.iter().any(|t| t.context == Context::Dml),
        system_catalog: summary.tables.iter().any(|t| {
            t.schema_name == "pg_catalog"
                || (t.schema_name.is_empty() && t.table_name.starts_with("pg_"))
        }),
    };

    let stmts: Vec<&NodeEnum> = parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|s| s.stmt.as_ref().and_then(|n| n.node.as_ref()))
        .collect();

    let mut c = decide(
        sql,
        &stmts,
        &facts(write_function || builtin_write_function),
        rules,
    );
    if !catalog_functions.is_empty() {
        let strict = decide(sql, &stmts, &facts(true), rules);
        let relaxed = decide(sql, &stmts, &facts(write_function), rules);
        c.catalog = Some(Box::new(CatalogVerdicts {
            functions: catalog_functions,
            if_volatile: (strict.route, strict.is_write),
            if_not_volatile: (relaxed.route, relaxed.is_write),
        }));
    }
    if stmts.len() > 1 {
        let session: Vec<&str> = parsed
            .protobuf
            .stmts
            .iter()
            .filter(|raw| {
                raw.stmt
                    .as_ref()
                    .and_then(|n| n.node.as_ref())
                    .is_some_and(|n| {
                        let one = classify_stmt(n, &facts(false));
                        one.route == Route::All
                            && matches!(
                                one.kind,
                                StatementKind::Set
                                    | StatementKind::Transaction(_)
                                    | StatementKind::Discard
                            )
                    })
            })
            .filter_map(|raw| {
                let start = usize::try_from(raw.stmt_location).ok()?;
                let len = usize::try_from(raw.stmt_len).ok()?;
                let end = if len == 0 { sql.len() } else { start + len };
                sql.get(start..end)
            })
            .collect();
        if !session.is_empty() {
            c.session_statements = Some(session.join(";"));
        }
    }
    for s in &stmts {
        note_temp_and_drops(s, &mut c);
        c.changes_catalog_facts |= changes_catalog_facts(s);
        if let NodeEnum::InsertStmt(ins) = s {
            if let Some(rel) = ins.relation.as_ref() {
                let quote = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
                let quoted = match rel.schemaname.as_str() {
                    "" => quote(&rel.relname),
                    schema => format!("{}.{}", quote(schema), quote(&rel.relname)),
                };
                c.insert_targets.push((quoted, rel.relname.clone()));
            }
        }
    }
    c.tables = tables;
    c.functions = functions;
    c.written_tables = written_tables;
    if rules.query_cache_facts {
        c.cache = crate::cacheable::facts_from(sql, &parsed, &summary).map(Box::new);
    }
    c
}

/// The verdict for the statements of one text under the given facts.
fn decide(sql: &str, stmts: &[&NodeEnum], facts: &TextFacts, rules: &Rules) -> Classification {
    match stmts {
        [] => {
            let mut c = Classification::new(Route::Primary, StatementKind::Empty);
            c.is_write = false;
            c
        }
        [one] => {
            let mut c = classify_stmt(one, facts);
            if c.route == Route::LoadBalance && load_balance_vetoed(sql, c.kind, rules) {
                c.route = Route::Primary;
            }
            c
        }
        [first, rest @ ..] => {
            let mut c = classify_stmt(first, facts);
            for s in rest {
                let o = classify_stmt(s, facts);
                c.is_write |= o.is_write;
                c.starts_transaction |= o.starts_transaction;
                c.ends_transaction |= o.ends_transaction;
                c.serializable |= o.serializable;
                c.read_write |= o.read_write;
            }
            c.multi_statement = true;
            c.route = Route::Primary;
            c
        }
    }
}

fn changes_catalog_facts(node: &NodeEnum) -> bool {
    let unlogged = |rel: Option<&protobuf::RangeVar>| rel.is_some_and(|r| r.relpersistence == "u");
    match node {
        NodeEnum::CreateFunctionStmt(_)
        | NodeEnum::AlterFunctionStmt(_)
        | NodeEnum::CreateExtensionStmt(_)
        | NodeEnum::AlterExtensionStmt(_)
        | NodeEnum::AlterExtensionContentsStmt(_)
        | NodeEnum::RenameStmt(_)
        | NodeEnum::AlterObjectSchemaStmt(_)
        | NodeEnum::DoStmt(_) => true,
        // Columns and their defaults (native replication's insert_lock and time defaults).
        NodeEnum::CreateStmt(s) => s.relation.as_ref().is_some_and(|r| r.relpersistence != "t"),
        NodeEnum::CreateTableAsStmt(s) => unlogged(s.into.as_ref().and_then(|i| i.rel.as_ref())),
        NodeEnum::AlterTableStmt(_) => true,
        _ => false,
    }
}

fn is_temp(rel: Option<&protobuf::RangeVar>) -> Option<String> {
    rel.filter(|r| r.relpersistence == "t")
        .map(|r| r.relname.clone())
}

/// Temporary objects created, objects dropped and DISCARD, for the server's temp-table trace.
fn note_temp_and_drops(node: &NodeEnum, c: &mut Classification) {
    let created = match node {
        NodeEnum::CreateStmt(s) => is_temp(s.relation.as_ref()),
        NodeEnum::CreateTableAsStmt(s) => is_temp(s.into.as_ref().and_then(|i| i.rel.as_ref())),
        NodeEnum::SelectStmt(s) => is_temp(s.into_clause.as_ref().and_then(|i| i.rel.as_ref())),
        NodeEnum::ViewStmt(s) => is_temp(s.view.as_ref()),
        NodeEnum::CreateSeqStmt(s) => is_temp(s.sequence.as_ref()),
        NodeEnum::DropStmt(s) => {
            for o in &s.objects {
                // Each object is a list of name parts; the last one is the bare name.
                if let Some(NodeEnum::List(l)) = o.node.as_ref() {
                    if let Some(NodeEnum::String(n)) = l.items.last().and_then(|i| i.node.as_ref())
                    {
                        c.dropped.push(n.sval.clone());
                    }
                }
            }
            None
        }
        NodeEnum::DiscardStmt(s) => {
            // DISCARD ALL = 1, DISCARD PLANS = 2, DISCARD SEQUENCES = 3, DISCARD TEMP = 4.
            let target = s.target;
            c.discards_temp |= target == protobuf::DiscardMode::DiscardAll as i32
                || target == protobuf::DiscardMode::DiscardTemp as i32;
            None
        }
        _ => None,
    };
    if let Some(name) = created {
        c.temp_created.push(name);
    }
}

/// Hints that keep an otherwise load-balanceable statement on the primary.
fn load_balance_vetoed(sql: &str, kind: StatementKind, rules: &Rules) -> bool {
    // With allow_sql_comments on, Pgpool-II ignores comments, that one included.
    if !rules.allow_sql_comments && has_no_load_balance_hint(sql) {
        return true;
    }
    if kind == StatementKind::Select && !rules.allow_sql_comments {
        // Pgpool-II's is_select_query(): with comments not allowed, the text itself must
        // start like a SELECT; anything else (typically a leading comment) stays on the primary.
        let text = if rules.ignore_leading_white_space {
            sql.trim_start()
        } else {
            sql
        };
        let ok = matches!(
            text.as_bytes().first(),
            None | Some(b's' | b'S' | b'(' | b'w' | b'W' | b't' | b'T' | b';')
        );
        if !ok {
            return true;
        }
    }
    rules.query_forced_to_primary(sql)
}

/// Is there a `/*NO LOAD BALANCE*/` comment among the comments that lead the text?
fn has_no_load_balance_hint(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/*") {
            let Some(end) = after.find("*/") else {
                return false;
            };
            if after[..end].trim().eq_ignore_ascii_case("NO LOAD BALANCE") {
                return true;
            }
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else {
            return false;
        }
    }
}
