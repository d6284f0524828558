//! Whether a query's result may be kept by the query cache, judged from its text: one
//! SELECT (or WITH … SELECT) that writes nothing, locks nothing, and calls nothing whose
//! value changes with the clock, the session or the time zone (CURRENT_TIMESTAMP,
//! CURRENT_USER, casts to timestamptz / timetz, 'now'); with the relations it reads and
//! the functions it calls, for the checks only the database can answer (views, unlogged
//! and temporary tables, function volatility). Pgpool-II's hint comments decide first:
//! `/*NO QUERY CACHE*/` never, `/*FORCE QUERY CACHE*/` (4.6) always for a SELECT.

use pg_query::{NodeEnum, NodeRef};

use crate::statement::select_tree_writes;

/// What a cacheable SELECT reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheFacts {
    /// Relations read, bare names, sorted, no CTE names.
    pub tables: Vec<String>,
    /// Relations read as written (schema-qualified when written so), sorted.
    pub qualified_tables: Vec<String>,
    /// Functions called, bare names, sorted.
    pub functions: Vec<String>,
    /// `/*FORCE QUERY CACHE*/`: the caller's own checks are skipped too.
    pub forced: bool,
}

fn has_hint(sql: &str, hint: &str) -> bool {
    let t = sql.trim_start().as_bytes();
    t.get(..hint.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(hint.as_bytes()))
}

/// Literals that the date/time input functions read as the current moment.
fn is_moment_literal(s: &str) -> bool {
    ["now", "today", "tomorrow", "yesterday", "current"]
        .iter()
        .any(|m| s.trim().eq_ignore_ascii_case(m))
}

/// The facts of a cacheable text; None when its result must not be cached.
pub fn cache_facts(sql: &str) -> Option<CacheFacts> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let summary = pg_query::summary(sql, 0, -1).ok()?;
    facts_from(sql, &parsed, &summary)
}

/// [`cache_facts`] from a text's parse tree and summary (the classifier's).
pub(crate) fn facts_from(
    sql: &str,
    parsed: &pg_query::ParseResult,
    summary: &pg_query::SummaryResult,
) -> Option<CacheFacts> {
    if has_hint(sql, "/*NO QUERY CACHE*/") {
        return None;
    }
    let forced = has_hint(sql, "/*FORCE QUERY CACHE*/");
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let stmt = raw.stmt.as_ref()?.node.as_ref()?;
    if !matches!(stmt, NodeEnum::SelectStmt(_)) || select_tree_writes(stmt) {
        return None;
    }
    if !forced {
        let unsafe_node = stmt.nodes().iter().any(|(n, _, _, _)| match n {
            NodeRef::SqlvalueFunction(_) => true,
            NodeRef::TypeCast(c) => c.type_name.as_ref().is_some_and(|t| {
                t.names.iter().any(|n| match n.node.as_ref() {
                    Some(NodeEnum::String(s)) => {
                        matches!(s.sval.as_str(), "timestamptz" | "timetz")
                    }
                    _ => false,
                })
            }),
            NodeRef::AConst(c) => matches!(
                &c.val,
                Some(pg_query::protobuf::a_const::Val::Sval(s)) if is_moment_literal(&s.sval)
            ),
            _ => false,
        });
        if unsafe_node {
            return None;
        }
    }
    let mut facts = CacheFacts {
        forced,
        ..CacheFacts::default()
    };
    for t in &summary.tables {
        facts.tables.push(t.table_name.clone());
        facts.qualified_tables.push(t.name.clone());
    }
    for f in &summary.functions {
        facts.functions.push(f.function_name.clone());
    }
    for v in [
        &mut facts.tables,
        &mut facts.qualified_tables,
        &mut facts.functions,
    ] {
        v.sort_unstable();
        v.dedup();
    }
    Some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_are_cacheable_with_their_tables() {
        let f = cache_facts("SELECT * FROM other_schema.t1 JOIN t2 USING (i)").expect("facts");
        assert_eq!(f.tables, vec!["t1", "t2"]);
        assert_eq!(f.qualified_tables, vec!["other_schema.t1", "t2"]);
        let f =
            cache_facts("WITH c AS (SELECT i FROM t) SELECT public.f(i) FROM c").expect("facts");
        assert_eq!(f.tables, vec!["t"]);
        assert_eq!(f.functions, vec!["f"]);
        assert!(cache_facts("SELECT '2022-07-05 10:00:00'::TIMESTAMP").is_some());
        assert!(cache_facts("SELECT '2022-07-05'::DATE").is_some());
        assert!(cache_facts("SELECT 'ünï🐘' AS \"çolümn 名\"").is_some());
        assert!(cache_facts("日本語").is_none());
    }

    #[test]
    fn writes_locks_clock_and_session_values_are_not() {
        for q in [
            "INSERT INTO t VALUES (1)",
            "WITH cte AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM t",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO t2 FROM t",
            "SELECT CURRENT_TIMESTAMP",
            "SELECT CURRENT_USER",
            "SELECT '2022-07-05 10:00:00'::TIMESTAMPTZ",
            "SELECT '10:00:00'::TIMETZ",
            "SELECT 'now'::timestamp",
            "SELECT 1; SELECT 2",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            "/*NO QUERY CACHE*/ SELECT * FROM t",
            "SELEC nothing",
        ] {
            assert!(cache_facts(q).is_none(), "{q}");
        }
        let f = cache_facts("/*FORCE QUERY CACHE*/ SELECT now()").expect("forced");
        assert!(f.forced);
    }

    #[test]
    fn the_classification_carries_the_same_facts() {
        let rules = crate::Rules::default().with_query_cache_facts(true);
        let without = crate::Rules::default();
        for q in [
            "SELECT * FROM s.t JOIN u USING (i)",
            "INSERT INTO t VALUES (1)",
            "/*NO QUERY CACHE*/ SELECT 1",
            "SELECT CURRENT_USER",
        ] {
            let c = crate::classify(q, &rules);
            assert_eq!(c.cache.map(|f| *f), cache_facts(q), "{q}");
            assert!(crate::classify(q, &without).cache.is_none(), "{q}");
        }
    }
}
