//! Answers that need no parse tree. [`plain_select`] recognises the commonest read,
//! a lone SELECT without function calls, locking clauses, INTO or catalog tables, so
//! that texts that never repeat (simple-protocol queries with literal values) are
//! routed without running the parser; anything it is unsure of goes to the full
//! classifier. [`leading_kind`] names a statement by its first keyword, for the
//! statistics of sessions that are not classified at all.

use crate::classify::StatementKind;
use crate::rules::Rules;

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

fn starts_with_word(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len()
        && s[..word.len()].eq_ignore_ascii_case(word)
        && s.get(word.len())
            .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// True when `sql` is certainly a load-balanceable read under `rules`: it starts with
/// SELECT (after blanks, as ignore_leading_white_space allows), has no `(` (so no
/// function call or subquery), no `;` except at the end, none of the words INTO, FOR,
/// and no `pg_` (catalog tables stay on the primary), and no
/// primary_routing_query_pattern_list is set. False means "ask the classifier".
pub fn plain_select(sql: &str, rules: &Rules) -> bool {
    if rules.has_primary_routing_patterns() {
        return false;
    }
    let bytes = sql.as_bytes();
    let text = if rules.ignore_leading_white_space {
        skip_blanks(bytes)
    } else {
        bytes
    };
    if !starts_with_word(text, b"select") {
        return false;
    }
    let body = {
        let mut end = text.len();
        while end > 0 && (text[end - 1].is_ascii_whitespace() || text[end - 1] == b';') {
            end -= 1;
        }
        &text[..end]
    };
    if body
        .iter()
        .any(|&b| matches!(b, b'(' | b';' | b'\\' | b'$'))
    {
        return false;
    }
    !(contains_ci(body, b"into") || contains_ci(body, b"for") || contains_ci(body, b"pg_"))
}

/// The statement kind named by the first keyword (SELECT, WITH, VALUES, TABLE count
/// as reads; CREATE, ALTER, DROP, TRUNCATE, GRANT, REVOKE, COMMENT as DDL).
/// Does `sql` mention any of `names` (case-insensitively, anywhere)? A cheap, conservative
/// test: a text that does not can skip the checks that only those names would trigger.
pub fn mentions_any<'a>(sql: &str, mut names: impl Iterator<Item = &'a str>) -> bool {
    names.any(|n| !n.is_empty() && contains_ci(sql.as_bytes(), n.as_bytes()))
}

pub fn leading_kind(sql: &[u8]) -> StatementKind {
    let t = skip_blanks(sql);
    let kinds: &[(&[u8], StatementKind)] = &[
        (b"select", StatementKind::Select),
        (b"with", StatementKind::Select),
        (b"values", StatementKind::Select),
        (b"table", StatementKind::Select),
        (b"insert", StatementKind::Insert),
        (b"update", StatementKind::Update),
        (b"delete", StatementKind::Delete),
        (b"merge", StatementKind::Merge),
        (b"create", StatementKind::Ddl),
        (b"alter", StatementKind::Ddl),
        (b"drop", StatementKind::Ddl),
        (b"truncate", StatementKind::Ddl),
        (b"grant", StatementKind::Ddl),
        (b"revoke", StatementKind::Ddl),
        (b"comment", StatementKind::Ddl),
    ];
    kinds
        .iter()
        .find(|(w, _)| starts_with_word(t, w))
        .map_or(StatementKind::Other, |(_, k)| *k)
}

/// The backend pid of a `pg_terminate_backend(<integer constant>)` call in `sql`, as
/// Pgpool-II recognises it (a pid computed at run time is not).
pub fn terminate_backend_pid(sql: &[u8]) -> Option<u32> {
    const NAME: &[u8] = b"pg_terminate_backend";
    let b = sql;
    // Every query passes here: look closer only at "_t" / "_T" (rare in texts).
    let at = memchr::memchr_iter(b'_', b).find(|&i| {
        i >= 2
            && b.get(i + 1).is_some_and(|c| (c | 0x20) == b't')
            && b.get(i - 2..i - 2 + NAME.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(NAME))
    })? - 2;
    let rest = b[at + NAME.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b"(")?.trim_ascii_start();
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let after = rest[digits..].trim_ascii_start();
    if digits == 0 || !(after.starts_with(b")") || after.starts_with(b",")) {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminate_backend_calls() {
        let t = |q: &str| super::terminate_backend_pid(q.as_bytes());
        assert_eq!(t("SELECT pg_terminate_backend(1234)"), Some(1234));
        assert_eq!(t("select PG_TERMINATE_BACKEND ( 42 , 1000)"), Some(42));
        assert_eq!(
            t("select pg_terminate_backend(pid) from pg_stat_activity"),
            None
        );
        assert_eq!(t("select pg_terminate_backend(12 + 1)"), None);
        assert_eq!(t("select 1"), None);
    }

    use super::*;
    use crate::classify::{classify, Route};

    #[test]
    fn plain_selects_agree_with_the_classifier() {
        let r = Rules::default();
        for q in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            "  select a, b from t where c = 'x'",
            "select * from t1 join t2 using (id)",
        ] {
            if plain_select(q, &r) {
                assert_eq!(classify(q, &r).route, Route::LoadBalance, "{q}");
            }
        }
        assert!(plain_select(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            &r
        ));
    }

    #[test]
    fn unsure_texts_go_to_the_classifier() {
        let r = Rules::default();
        for q in [
            "select nextval('s')",
            "select * from t for update",
            "select * into x from t",
            "select 1; delete from t",
            "select * from pg_class",
            "/*NO LOAD BALANCE*/ select 1",
            "with x as (delete from t returning *) select * from x",
            "select $1",
            "selectx from t",
        ] {
            assert!(!plain_select(q, &r), "{q}");
        }
    }

    #[test]
    fn kinds_by_first_word() {
        assert_eq!(
            leading_kind(b"  INSERT into t values (1)"),
            StatementKind::Insert
        );
        assert_eq!(leading_kind(b"select 1"), StatementKind::Select);
        assert_eq!(leading_kind(b"drop table t"), StatementKind::Ddl);
        assert_eq!(leading_kind(b"vacuum"), StatementKind::Other);
        assert_eq!(leading_kind(b"selected"), StatementKind::Other);
    }
}
