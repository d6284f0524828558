//! Time functions made constant for native replication. Each node evaluating `now()` or
//! `CURRENT_DATE` itself would store different values, so before a write is sent to every
//! node its time functions are replaced by one timestamp the main node gave (Pgpool-II does
//! the same), and so are the DEFAULTs of columns whose default is time-dependent when an
//! INSERT leaves them out or asks for DEFAULT (the table's columns come from the caller's
//! catalog). Only INSERT, UPDATE and DELETE statements are touched: a DDL statement must
//! keep `now()` as written. The rewrite works on the scanner's tokens, so string literals,
//! comments and identifiers are never mistaken for function calls, and the rest of the text
//! stays byte for byte what the client sent.

use pg_query::protobuf::{self, ScanToken, Token};
use pg_query::NodeEnum;

/// A table's columns in order, with the default expression of those whose default
/// depends on the time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableColumns {
    pub columns: Vec<(String, Option<String>)>,
}

impl TableColumns {
    fn time_default(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .and_then(|(_, d)| d.as_deref())
    }

    fn has_time_defaults(&self) -> bool {
        self.columns.iter().any(|(_, d)| d.is_some())
    }
}

/// Might `text` call a time function? (A cheap test before [`rewrite`] parses.)
pub fn mentions_time_function(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "now",
        "current_date",
        "current_time",
        "localtime",
        "_timestamp",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// Is a default expression (as `pg_get_expr` prints it) time-dependent?
pub fn is_time_expression(expr: &str) -> bool {
    let Ok(tokens) = pg_query::scan_tokens(expr) else {
        return false;
    };
    !time_edits(expr, &tokens, 0, expr.len(), "x").is_empty()
}

/// `text` with its time functions (and time-dependent column defaults) replaced by the
/// timestamp `now` (ISO 8601 with zone, e.g. `2026-12-01T12:00:00.123456Z`); None when
/// nothing needed replacing or the text does not parse. `table` finds a table's columns by
/// schema (None: as the search path finds it) and name.
pub fn rewrite<'a>(
    text: &str,
    now: &str,
    table: &dyn Fn(Option<&str>, &str) -> Option<&'a TableColumns>,
) -> Option<String> {
    let parsed = pg_query::parse(text, 0).ok()?;
    let tokens = pg_query::scan_tokens(text).ok()?;
    let mut edits: Vec<Edit> = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let end = match usize::try_from(raw.stmt_len).unwrap_or(0) {
            0 => text.len(),
            len => (start + len).min(text.len()),
        };
        match node {
            NodeEnum::InsertStmt(ins) => {
                edits.extend(time_edits(text, &tokens, start, end, now));
                if let Some(t) = ins.relation.as_ref().and_then(|r| lookup(table, r)) {
                    edits.extend(insert_default_edits(&tokens, start, end, ins, t, now));
                }
            }
            NodeEnum::UpdateStmt(up) => {
                edits.extend(time_edits(text, &tokens, start, end, now));
                if let Some(t) = up.relation.as_ref().and_then(|r| lookup(table, r)) {
                    edits.extend(update_default_edits(text, &tokens, start, end, up, t, now));
                }
            }
            NodeEnum::DeleteStmt(_) => edits.extend(time_edits(text, &tokens, start, end, now)),
            _ => {}
        }
    }
    (!edits.is_empty()).then(|| apply(text, edits))
}

fn lookup<'a>(
    table: &dyn Fn(Option<&str>, &str) -> Option<&'a TableColumns>,
    rel: &protobuf::RangeVar,
) -> Option<&'a TableColumns> {
    let schema = (!rel.schemaname.is_empty()).then_some(rel.schemaname.as_str());
    table(schema, &rel.relname).filter(|t| t.has_time_defaults())
}

/// Replace bytes `start..end` of the text by `with` (an insertion when they are equal).
struct Edit {
    start: usize,
    end: usize,
    with: String,
}

fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len() + 64 * edits.len());
    let mut at = 0;
    for e in edits {
        if e.start < at {
            continue;
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.with);
        at = e.end;
    }
    out.push_str(&text[at..]);
    out
}

fn tok(t: &ScanToken) -> Token {
    Token::try_from(t.token).unwrap_or(Token::Nul)
}

fn span(t: &ScanToken) -> (usize, usize) {
    (
        usize::try_from(t.start).unwrap_or(0),
        usize::try_from(t.end).unwrap_or(0),
    )
}

/// The tokens inside bytes `start..end`.
fn within(tokens: &[ScanToken], start: usize, end: usize) -> &[ScanToken] {
    let from = tokens.partition_point(|t| span(t).0 < start);
    let to = tokens.partition_point(|t| span(t).0 < end);
    &tokens[from..to]
}

/// Edits replacing each time function call among the tokens of `start..end`.
fn time_edits(text: &str, tokens: &[ScanToken], start: usize, end: usize, now: &str) -> Vec<Edit> {
    let toks = within(tokens, start, end);
    let mut edits = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (s, e) = span(&toks[i]);
        // (type the value is cast to, may take a precision)
        let keyword = match tok(&toks[i]) {
            Token::CurrentDate => Some(("date", false)),
            Token::CurrentTime => Some(("timetz", true)),
            Token::CurrentTimestamp => Some(("", true)),
            Token::Localtime => Some(("time", true)),
            Token::Localtimestamp => Some(("timestamp", true)),
            _ => None,
        };
        if let Some((cast, takes_precision)) = keyword {
            // CURRENT_TIME(2): the precision goes to the cast.
            let precise = takes_precision
                && matches!(
                    toks.get(i + 1..i + 4),
                    Some([a, n, b]) if tok(a) == Token::Ascii40
                        && tok(n) == Token::Iconst
                        && tok(b) == Token::Ascii41
                );
            let (end_at, precision) = if precise {
                let (ns, ne) = span(&toks[i + 2]);
                (span(&toks[i + 3]).1, format!("({})", &text[ns..ne]))
            } else {
                (e, String::new())
            };
            let with = if cast.is_empty() {
                format!("('{now}'::timestamptz{precision})")
            } else {
                format!("('{now}'::timestamptz::{cast}{precision})")
            };
            edits.push(Edit {
                start: s,
                end: end_at,
                with,
            });
            i += if precise { 4 } else { 1 };
            continue;
        }
        let is_call = tok(&toks[i]) == Token::Ident
            && matches!(
                toks.get(i + 1..i + 3),
                Some([a, b]) if tok(a) == Token::Ascii40 && tok(b) == Token::Ascii41
            )
            && matches!(
                text[s..e].to_ascii_lowercase().as_str(),
                "now" | "transaction_timestamp" | "statement_timestamp" | "clock_timestamp"
            );
        if is_call {
            // pg_catalog.now(): the schema goes too.
            let qualified = i >= 2
                && tok(&toks[i - 1]) == Token::Ascii46
                && text[span(&toks[i - 2]).0..span(&toks[i - 2]).1]
                    .eq_ignore_ascii_case("pg_catalog");
            let from = if qualified { span(&toks[i - 2]).0 } else { s };
            edits.push(Edit {
                start: from,
                end: span(&toks[i + 2]).1,
                with: format!("('{now}'::timestamptz)"),
            });
            i += 3;
            continue;
        }
        i += 1;
    }
    edits
}

/// A column's time-dependent default with its own time functions replaced.
fn constant_default(expr: &str, now: &str) -> Option<String> {
    let tokens = pg_query::scan_tokens(expr).ok()?;
    let edits = time_edits(expr, &tokens, 0, expr.len(), now);
    Some(format!("({})", apply(expr, edits)))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One VALUES row as the scanner sees it: where its closing parenthesis is and, per item,
/// whether the item is the lone keyword DEFAULT (and where).
struct Row {
    close: usize,
    items: Vec<Option<(usize, usize)>>,
}

/// The rows after the VALUES token at `toks[at]`.
fn values_rows(toks: &[ScanToken], mut at: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    while toks.get(at + 1).map(tok) == Some(Token::Ascii40) {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut item_tokens: Vec<&ScanToken> = Vec::new();
        let mut j = at + 1;
        let mut close = None;
        while let Some(t) = toks.get(j) {
            match tok(t) {
                Token::Ascii40 => {
                    depth += 1;
                    if depth > 1 {
                        item_tokens.push(t);
                    }
                }
                Token::Ascii41 => {
                    depth -= 1;
                    if depth == 0 {
                        items.push(lone_default(&item_tokens));
                        close = Some((j, span(t).0));
                        break;
                    }
                    item_tokens.push(t);
                }
                Token::Ascii44 if depth == 1 => {
                    items.push(lone_default(&item_tokens));
                    item_tokens.clear();
                }
                _ => item_tokens.push(t),
            }
            j += 1;
        }
        let Some((j, pos)) = close else {
            return Vec::new();
        };
        rows.push(Row { close: pos, items });
        if toks.get(j + 1).map(tok) != Some(Token::Ascii44) {
            break;
        }
        at = j + 1;
    }
    rows
}

fn lone_default(item: &[&ScanToken]) -> Option<(usize, usize)> {
    match item {
        [t] if tok(t) == Token::Default => Some(span(t)),
        _ => None,
    }
}

/// INSERT: DEFAULT items of time-defaulted columns, and such columns left out, get the
/// default's constant value.
fn insert_default_edits(
    tokens: &[ScanToken],
    start: usize,
    end: usize,
    ins: &protobuf::InsertStmt,
    table: &TableColumns,
    now: &str,
) -> Vec<Edit> {
    let toks = within(tokens, start, end);
    let named: Vec<String> = ins
        .cols
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
            _ => None,
        })
        .collect();
    let mut edits = Vec::new();
    // Depth-0 VALUES token, and the ')' closing the column list before it.
    let mut depth = 0i32;
    let mut cols_close = None;
    let mut values_at = None;
    for (i, t) in toks.iter().enumerate() {
        match tok(t) {
            Token::Ascii40 => depth += 1,
            Token::Ascii41 => {
                depth -= 1;
                if depth == 0 && values_at.is_none() {
                    cols_close = Some(span(t).0);
                }
            }
            Token::Values if depth == 0 => {
                values_at = Some(i);
                break;
            }
            Token::Select | Token::With if depth == 0 => return edits,
            _ => {}
        }
    }
    let Some(v) = values_at else {
        return edits;
    };
    let defaults_of = |cols: &[&(String, Option<String>)]| -> Option<Vec<String>> {
        cols.iter()
            .map(|(_, d)| d.as_deref().and_then(|d| constant_default(d, now)))
            .collect()
    };
    if ins.select_stmt.is_none() {
        // DEFAULT VALUES: name the time-defaulted columns with their values.
        if v == 0 || tok(&toks[v - 1]) != Token::Default {
            return edits;
        }
        let cols: Vec<&(String, Option<String>)> =
            table.columns.iter().filter(|(_, d)| d.is_some()).collect();
        let Some(values) = defaults_of(&cols) else {
            return edits;
        };
        let names: Vec<String> = cols.iter().map(|(n, _)| quote_ident(n)).collect();
        edits.push(Edit {
            start: span(&toks[v - 1]).0,
            end: span(&toks[v]).1,
            with: format!("({}) VALUES ({})", names.join(", "), values.join(", ")),
        });
        return edits;
    }
    let rows = values_rows(toks, v);
    let expected_rows = match ins.select_stmt.as_ref().and_then(|s| s.node.as_ref()) {
        Some(NodeEnum::SelectStmt(s)) => s.values_lists.len(),
        _ => 0,
    };
    if rows.is_empty() || rows.len() != expected_rows {
        return edits;
    }
    // The column each position fills.
    let width = rows[0].items.len();
    let position_column = |p: usize| -> Option<&str> {
        if named.is_empty() {
            table.columns.get(p).map(|(n, _)| n.as_str())
        } else {
            named.get(p).map(String::as_str)
        }
    };
    // Columns the statement leaves to their defaults.
    let missing: Vec<&(String, Option<String>)> = if named.is_empty() {
        let last_time = table.columns.iter().rposition(|(_, d)| d.is_some());
        match last_time {
            Some(l) if l >= width => table.columns[width..=l].iter().collect(),
            _ => Vec::new(),
        }
    } else {
        table
            .columns
            .iter()
            .filter(|(n, d)| d.is_some() && !named.contains(n))
            .collect()
    };
    if !named.is_empty() && !missing.is_empty() {
        let Some(close) = cols_close else {
            return edits;
        };
        let names: String = missing
            .iter()
            .map(|(n, _)| format!(", {}", quote_ident(n)))
            .collect();
        edits.push(Edit {
            start: close,
            end: close,
            with: names,
        });
    }
    let appended: Option<String> = missing
        .iter()
        .map(|(_, d)| match d {
            Some(d) => constant_default(d, now).map(|v| format!(", {v}")),
            None => Some(", DEFAULT".to_string()),
        })
        .collect();
    let Some(appended) = appended else {
        return Vec::new();
    };
    for row in &rows {
        if row.items.len() != width {
            return Vec::new();
        }
        for (p, item) in row.items.iter().enumerate() {
            let (Some((s, e)), Some(col)) = (item, position_column(p)) else {
                continue;
            };
            if let Some(value) = table
                .time_default(col)
                .and_then(|d| constant_default(d, now))
            {
                edits.push(Edit {
                    start: *s,
                    end: *e,
                    with: value,
                });
            }
        }
        if !appended.is_empty() {
            edits.push(Edit {
                start: row.close,
                end: row.close,
                with: appended.clone(),
            });
        }
    }
    edits
}

/// UPDATE … SET col = DEFAULT of a time-defaulted column.
fn update_default_edits(
    text: &str,
    tokens: &[ScanToken],
    start: usize,
    end: usize,
    up: &protobuf::UpdateStmt,
    table: &TableColumns,
    now: &str,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    for target in &up.target_list {
        let Some(NodeEnum::ResTarget(r)) = target.node.as_ref() else {
            continue;
        };
        let Some(NodeEnum::SetToDefault(d)) = r.val.as_ref().and_then(|v| v.node.as_ref()) else {
            continue;
        };
        let Some(value) = table
            .time_default(&r.name)
            .and_then(|def| constant_default(def, now))
        else {
            continue;
        };
        let at = usize::try_from(d.location).unwrap_or(usize::MAX);
        let is_default_token = within(tokens, start, end)
            .iter()
            .any(|t| span(t).0 == at && tok(t) == Token::Default);
        if is_default_token && at < text.len() {
            edits.push(Edit {
                start: at,
                end: at + "default".len(),
                with: value,
            });
        }
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-01T12:00:00.5Z";

    fn t1() -> TableColumns {
        TableColumns {
            columns: vec![
                ("i".into(), None),
                ("j".into(), Some("CURRENT_TIMESTAMP".into())),
                ("k".into(), None),
                ("d".into(), Some("(CURRENT_DATE + 1)".into())),
            ],
        }
    }

    fn rw(text: &str) -> Option<String> {
        let t = t1();
        rewrite(text, NOW, &|_, name| (name == "t1").then_some(&t))
    }

    #[test]
    fn time_functions_become_the_constant() {
        assert_eq!(
            rw("UPDATE x SET a = now(), b = CURRENT_DATE, c = 'now()' -- now()").as_deref(),
            Some(
                "UPDATE x SET a = ('2026-12-01T12:00:00.5Z'::timestamptz), \
                 b = ('2026-12-01T12:00:00.5Z'::timestamptz::date), c = 'now()' -- now()"
            )
        );
        assert_eq!(
            rw("delete from x where t < pg_catalog.NOW() - interval '1 day' and u < localtime(2)")
                .as_deref(),
            Some(
                "delete from x where t < ('2026-12-01T12:00:00.5Z'::timestamptz) - interval '1 day' \
                 and u < ('2026-12-01T12:00:00.5Z'::timestamptz::time(2))"
            )
        );
        // DDL and reads keep their time functions; texts without any stay as they are.
        assert_eq!(rw("CREATE TABLE y (t timestamptz DEFAULT now())"), None);
        assert_eq!(rw("SELECT now()"), None);
        assert_eq!(rw("INSERT INTO x VALUES (1)"), None);
        assert_eq!(rw("INSERT INTO x VALUES (now("), None);
    }

    #[test]
    fn insert_defaults_become_the_constant() {
        let ts = "('2026-12-01T12:00:00.5Z'::timestamptz)";
        let date = "((('2026-12-01T12:00:00.5Z'::timestamptz::date) + 1))";
        assert_eq!(
            rw("INSERT INTO t1 VALUES (DEFAULT)"),
            Some(format!(
                "INSERT INTO t1 VALUES (DEFAULT, ({ts}), DEFAULT, {date})"
            ))
        );
        assert_eq!(
            rw("INSERT INTO public.t1 (i) VALUES (1), (2) RETURNING *"),
            Some(format!(
                "INSERT INTO public.t1 (i, \"j\", \"d\") VALUES (1, ({ts}), {date}), (2, ({ts}), {date}) RETURNING *"
            ))
        );
        assert_eq!(
            rw("insert into t1 (j, i, d) values (default, f(1, 2), '2020-01-01')"),
            Some(format!(
                "insert into t1 (j, i, d) values (({ts}), f(1, 2), '2020-01-01')"
            ))
        );
        assert_eq!(
            rw("INSERT INTO t1 DEFAULT VALUES"),
            Some(format!(
                "INSERT INTO t1 (\"j\", \"d\") VALUES (({ts}), {date})"
            ))
        );
        assert_eq!(
            rw("UPDATE t1 SET j = DEFAULT, i = 3"),
            Some(format!("UPDATE t1 SET j = ({ts}), i = 3"))
        );
        // INSERT … SELECT cannot name the values: left alone.
        assert_eq!(rw("INSERT INTO t1 (i) SELECT 1"), None);
        assert!(is_time_expression("(CURRENT_DATE + 1)"));
        assert!(is_time_expression("now()"));
        assert!(!is_time_expression("nextval('s'::regclass)"));
        assert!(mentions_time_function("select NOW()"));
        assert!(!mentions_time_function("select 1"));
    }
}
