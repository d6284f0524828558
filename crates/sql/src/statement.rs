//! The verdict for one top-level statement, by its kind and options: SELECT (load
//! balanced unless it writes or reads a system catalog), transaction control, SET, COPY,
//! EXPLAIN, PREPARE / EXECUTE / DEALLOCATE, cursors, DDL and the rest, following
//! Pgpool-II's rules. The facts about the whole text (write functions, DML tables, system
//! catalogs) come from the caller.

use pg_query::protobuf::{self, a_const, TransactionStmtKind, VariableSetKind};
use pg_query::{NodeEnum, NodeRef};

use crate::classify::{Classification, Route, StatementKind, TextFacts, TransactionKind};

/// Classifies one top-level statement (tables/functions are filled in by the caller).
pub(crate) fn classify_stmt(node: &NodeEnum, facts: &TextFacts) -> Classification {
    use StatementKind as K;
    match node {
        NodeEnum::SelectStmt(_) => select(node, facts),
        NodeEnum::InsertStmt(_) => Classification::new(Route::Primary, K::Insert),
        NodeEnum::UpdateStmt(_) => Classification::new(Route::Primary, K::Update),
        NodeEnum::DeleteStmt(_) => Classification::new(Route::Primary, K::Delete),
        NodeEnum::MergeStmt(_) => Classification::new(Route::Primary, K::Merge),
        NodeEnum::VariableSetStmt(s) => set(s),
        NodeEnum::VariableShowStmt(_) => Classification::new(Route::LoadBalance, K::Show),
        NodeEnum::TransactionStmt(s) => transaction(s),
        NodeEnum::CopyStmt(s) => copy(s, facts),
        NodeEnum::ExplainStmt(s) => explain(s, facts),
        NodeEnum::LockStmt(s) => {
            // Pgpool-II: modes weaker than ROW EXCLUSIVE are taken on every node.
            if s.mode >= pg_query::LockMode::RowExclusiveLock as i32 {
                Classification::new(Route::Primary, K::Lock)
            } else {
                Classification::new(Route::All, K::Lock)
            }
        }
        NodeEnum::ListenStmt(_) => Classification::new(Route::Primary, K::Listen),
        NodeEnum::UnlistenStmt(_) => Classification::new(Route::Primary, K::Unlisten),
        NodeEnum::NotifyStmt(_) => Classification::new(Route::Primary, K::Notify),
        NodeEnum::PrepareStmt(s) => {
            // Routed like the statement it prepares; EXECUTE follows it (server's job).
            let inner = match s.query.as_ref().and_then(|q| q.node.as_ref()) {
                Some(q) => classify_stmt(q, facts),
                None => Classification::new(Route::Primary, K::Other),
            };
            let mut c = Classification::new(inner.route, K::Prepare);
            c.is_write = inner.is_write;
            c.prepared_name = Some(s.name.clone());
            c.prepared_kind = Some(inner.kind);
            c
        }
        // Pgpool-II: "temporary decision", the relay sends it where its PREPARE went.
        NodeEnum::ExecuteStmt(s) => {
            let mut c = Classification::new(Route::Primary, K::Execute);
            c.prepared_name = Some(s.name.clone());
            c
        }
        NodeEnum::DeallocateStmt(s) => {
            if s.isall || s.name.is_empty() {
                Classification::new(Route::All, K::Deallocate)
            } else {
                let mut c = Classification::new(Route::Primary, K::Deallocate);
                c.is_write = false;
                c.prepared_name = Some(s.name.clone());
                c
            }
        }
        NodeEnum::DiscardStmt(_) => Classification::new(Route::All, K::Discard),
        NodeEnum::DeclareCursorStmt(_) => Classification::new(Route::Primary, K::Cursor),
        NodeEnum::FetchStmt(s) => {
            let mut c = Classification::new(Route::Primary, K::Cursor);
            c.cursor_name = Some(s.portalname.clone());
            c
        }
        NodeEnum::ClosePortalStmt(s) => {
            let mut c = Classification::new(Route::Primary, K::Cursor);
            // CLOSE ALL: every node.
            if s.portalname.is_empty() {
                c.route = Route::All;
            } else {
                c.cursor_name = Some(s.portalname.clone());
            }
            c
        }
        NodeEnum::CallStmt(_) | NodeEnum::DoStmt(_) => Classification::new(Route::Primary, K::Call),
        NodeEnum::VacuumStmt(_)
        | NodeEnum::ClusterStmt(_)
        | NodeEnum::ReindexStmt(_)
        | NodeEnum::CheckPointStmt(_) => Classification::new(Route::Primary, K::Maintenance),
        n if is_ddl(n) => Classification::new(Route::Primary, K::Ddl),
        _ => Classification::new(Route::Primary, K::Other),
    }
}

fn is_ddl(n: &NodeEnum) -> bool {
    matches!(
        n,
        NodeEnum::CreateStmt(_)
            | NodeEnum::CreateTableAsStmt(_)
            | NodeEnum::AlterTableStmt(_)
            | NodeEnum::DropStmt(_)
            | NodeEnum::IndexStmt(_)
            | NodeEnum::ViewStmt(_)
            | NodeEnum::CreateSeqStmt(_)
            | NodeEnum::AlterSeqStmt(_)
            | NodeEnum::CreateFunctionStmt(_)
            | NodeEnum::AlterFunctionStmt(_)
            | NodeEnum::CreateSchemaStmt(_)
            | NodeEnum::RenameStmt(_)
            | NodeEnum::TruncateStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::GrantStmt(_)
            | NodeEnum::GrantRoleStmt(_)
            | NodeEnum::CreateRoleStmt(_)
            | NodeEnum::AlterRoleStmt(_)
            | NodeEnum::DropRoleStmt(_)
            | NodeEnum::CreateTrigStmt(_)
            | NodeEnum::RuleStmt(_)
            | NodeEnum::CreateExtensionStmt(_)
            | NodeEnum::CompositeTypeStmt(_)
            | NodeEnum::CreateEnumStmt(_)
            | NodeEnum::DefineStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterDatabaseStmt(_)
            | NodeEnum::RefreshMatViewStmt(_)
            | NodeEnum::CreateDomainStmt(_)
            | NodeEnum::AlterOwnerStmt(_)
            | NodeEnum::AlterObjectSchemaStmt(_)
            | NodeEnum::CreatePolicyStmt(_)
            | NodeEnum::AlterDefaultPrivilegesStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
    )
}

/// SELECT: load balanced unless it writes (INTO, FOR UPDATE/SHARE anywhere, a data-modifying
/// CTE, a write function) or reads a system catalog (Pgpool-II prefers the primary there).
fn select(node: &NodeEnum, facts: &TextFacts) -> Classification {
    let writes = facts.write_function || facts.dml_table || select_tree_writes(node);
    if writes {
        return Classification::new(Route::Primary, StatementKind::Select);
    }
    let mut c = Classification::new(Route::LoadBalance, StatementKind::Select);
    if facts.system_catalog {
        c.route = Route::Primary;
    }
    c
}

/// INTO, a locking clause or a data-modifying statement anywhere in the SELECT's tree.
pub(crate) fn select_tree_writes(node: &NodeEnum) -> bool {
    if let NodeEnum::SelectStmt(s) = node {
        if s.into_clause.is_some() || !s.locking_clause.is_empty() {
            return true;
        }
    }
    node.nodes().iter().any(|(n, _, _, _)| match n {
        NodeRef::SelectStmt(x) => x.into_clause.is_some() || !x.locking_clause.is_empty(),
        NodeRef::InsertStmt(_)
        | NodeRef::UpdateStmt(_)
        | NodeRef::DeleteStmt(_)
        | NodeRef::MergeStmt(_) => true,
        _ => false,
    })
}

fn const_str(n: Option<&protobuf::Node>) -> Option<&str> {
    match n.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(a_const::Val::Sval(s)) => Some(s.sval.as_str()),
            _ => None,
        },
        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
        _ => None,
    }
}

/// A boolean-ish constant: integers (the grammar's encoding of READ ONLY/WRITE), booleans, and
/// the strings on/off/true/false/t/f.
fn const_bool(n: Option<&protobuf::Node>) -> Option<bool> {
    match n.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::AConst(c)) => match &c.val {
            Some(a_const::Val::Ival(i)) => Some(i.ival != 0),
            Some(a_const::Val::Boolval(b)) => Some(b.boolval),
            Some(a_const::Val::Sval(s)) => str_bool(&s.sval),
            _ => None,
        },
        Some(NodeEnum::Boolean(b)) => Some(b.boolval),
        Some(NodeEnum::Integer(i)) => Some(i.ival != 0),
        Some(NodeEnum::String(s)) => str_bool(&s.sval),
        _ => None,
    }
}

fn str_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "t" | "1" | "yes" => Some(true),
        "off" | "false" | "f" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Transaction options (BEGIN … / SET TRANSACTION …): (serializable, read_write).
fn transaction_options(options: &[protobuf::Node]) -> (bool, bool) {
    let mut serializable = false;
    let mut read_write = false;
    for o in options {
        if let Some(NodeEnum::DefElem(d)) = o.node.as_ref() {
            let arg = d.arg.as_deref();
            match d.defname.as_str() {
                "transaction_isolation" | "default_transaction_isolation" => {
                    serializable |=
                        const_str(arg).is_some_and(|v| v.eq_ignore_ascii_case("serializable"));
                }
                "transaction_read_only" => read_write |= const_bool(arg) == Some(false),
                _ => {}
            }
        }
    }
    (serializable, read_write)
}

fn transaction(s: &protobuf::TransactionStmt) -> Classification {
    use TransactionKind as T;
    let Ok(kind) = TransactionStmtKind::try_from(s.kind) else {
        return Classification::new(Route::Primary, StatementKind::Other);
    };
    let (tk, route) = match kind {
        TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => {
            (T::Begin, Route::All)
        }
        TransactionStmtKind::TransStmtCommit => (T::Commit, Route::All),
        TransactionStmtKind::TransStmtRollback => (T::Rollback, Route::All),
        TransactionStmtKind::TransStmtSavepoint => (T::Savepoint, Route::All),
        TransactionStmtKind::TransStmtRelease => (T::Release, Route::All),
        TransactionStmtKind::TransStmtRollbackTo => (T::RollbackTo, Route::All),
        TransactionStmtKind::TransStmtPrepare => (T::PrepareTransaction, Route::Primary),
        TransactionStmtKind::TransStmtCommitPrepared => (T::CommitPrepared, Route::Primary),
        TransactionStmtKind::TransStmtRollbackPrepared => (T::RollbackPrepared, Route::Primary),
        TransactionStmtKind::Undefined => {
            return Classification::new(Route::Primary, StatementKind::Other)
        }
    };
    let mut c = Classification::new(route, StatementKind::Transaction(tk));
    match tk {
        T::Begin => {
            c.starts_transaction = true;
            (c.serializable, c.read_write) = transaction_options(&s.options);
        }
        T::Commit | T::Rollback | T::PrepareTransaction => c.ends_transaction = true,
        _ => {}
    }
    c
}

/// SET: every node, except what Pgpool-II keeps on the primary: asking for SERIALIZABLE or
/// for a read-write transaction.
fn set(s: &protobuf::VariableSetStmt) -> Classification {
    let mut c = Classification::new(Route::All, StatementKind::Set);
    let kind = VariableSetKind::try_from(s.kind).unwrap_or(VariableSetKind::Undefined);
    match kind {
        VariableSetKind::VarSetMulti
            if s.name == "TRANSACTION" || s.name == "SESSION CHARACTERISTICS" =>
        {
            (c.serializable, c.read_write) = transaction_options(&s.args);
        }
        VariableSetKind::VarSetValue => match s.name.as_str() {
            "transaction_isolation" | "default_transaction_isolation" => {
                c.serializable = s.args.iter().any(|a| {
                    const_str(Some(a)).is_some_and(|v| v.eq_ignore_ascii_case("serializable"))
                });
            }
            "transaction_read_only" | "default_transaction_read_only" => {
                c.read_write = s.args.iter().any(|a| const_bool(Some(a)) == Some(false));
            }
            _ => {}
        },
        _ => {}
    }
    if c.serializable || c.read_write {
        c.route = Route::Primary;
        c.is_write = false;
    }
    c
}

/// COPY: FROM and server-side files go to the primary; TO STDOUT of a table or a read-only
/// SELECT is load balanced; TO STDOUT of a DML … RETURNING is a write.
fn copy(s: &protobuf::CopyStmt, facts: &TextFacts) -> Classification {
    use StatementKind as K;
    if s.is_from {
        return Classification::new(Route::Primary, K::Copy);
    }
    let inner = s.query.as_ref().and_then(|q| q.node.as_ref());
    let inner_writes = match inner {
        None => false,
        Some(sel @ NodeEnum::SelectStmt(_)) => {
            facts.write_function || facts.dml_table || select_tree_writes(sel)
        }
        Some(_) => true,
    };
    if inner_writes {
        return Classification::new(Route::Primary, K::Copy);
    }
    if !s.filename.is_empty() || s.is_program {
        let mut c = Classification::new(Route::Primary, K::Copy);
        c.is_write = false;
        return c;
    }
    Classification::new(Route::LoadBalance, K::Copy)
}

/// EXPLAIN: load balanced unless ANALYZE runs a statement that needs the primary.
fn explain(s: &protobuf::ExplainStmt, facts: &TextFacts) -> Classification {
    let analyze = s.options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) => {
            d.defname == "analyze" && const_bool(d.arg.as_deref()) != Some(false)
        }
        _ => false,
    });
    let mut c = Classification::new(Route::LoadBalance, StatementKind::Explain);
    if analyze {
        if let Some(q) = s.query.as_ref().and_then(|q| q.node.as_ref()) {
            let inner = classify_stmt(q, facts);
            if inner.is_write {
                c.route = Route::Primary;
                c.is_write = true;
            }
        }
    }
    c
}
