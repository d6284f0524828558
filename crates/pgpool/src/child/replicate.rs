//! What native replication adds to a write before it goes to every node, so that the nodes
//! end up with the same rows: `insert_lock` (an INSERT into a table with a SERIAL or
//! identity column first takes a lock, on the main node before any other, so concurrent
//! sessions draw sequence values in the same order everywhere) and constant time functions
//! (`now()`, `CURRENT_DATE`, time-dependent column defaults, replaced by the main node's
//! timestamp: see `sql::rewrite_time_functions`). The lock is pgpool's own statement placed
//! ahead of the client's in the same implicit or explicit transaction: a prefix of a simple
//! Query, or a Parse/Bind/Execute/Close group ahead of an extended batch; its answers are
//! hidden from the client ([`HiddenAnswers`]). Which tables have sequences or time defaults,
//! and whether `pgpool_catalog.insert_lock` exists, comes from the child's [`Catalog`].

use protocol::build;
use protocol::message::scan_header;
use sql::{ClassifierCache, Rules, StatementKind};

use super::catalog::Catalog;

/// Leading answers of a batch that belong to messages pgpool added (replayed Parses,
/// insert_lock statements), dropped before the client sees them. Counted per message type:
/// answers of one type carry no name, so which one is dropped does not matter, except for
/// CommandComplete, whose text differs: pgpool's statements come first in the batch, so
/// the first ones are theirs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HiddenAnswers {
    pub parse: u32,
    pub bind: u32,
    pub close: u32,
    pub commands: u32,
    /// The ReadyForQuery too (the transaction pgpool opened goes on).
    pub ready: bool,
}

impl HiddenAnswers {
    /// Is a backend message with this tag one to hide? (Counts it if so.)
    pub fn take(&mut self, tag: u8) -> bool {
        let n = match tag {
            b'1' => &mut self.parse,
            b'2' => &mut self.bind,
            b'3' => &mut self.close,
            b'C' => &mut self.commands,
            b'Z' => return std::mem::take(&mut self.ready),
            _ => return false,
        };
        if *n == 0 {
            return false;
        }
        *n -= 1;
        true
    }
}

/// A batch as it must go to every node, when it differs from what the client sent.
pub struct Replicated {
    pub bytes: Vec<u8>,
    pub hidden: HiddenAnswers,
    /// pgpool opened a transaction around it (an autocommit INSERT that locks: the main
    /// node keeps its lock until every node has taken it), to be committed once every
    /// node has answered.
    pub commit_after: bool,
}

/// What a batch needs from the native-replication layer.
pub struct ReplicationNeeds<'a> {
    pub cache: &'a mut ClassifierCache,
    pub rules: &'a Rules,
    pub catalog: &'a Catalog,
    pub insert_lock: bool,
}

/// Name of pgpool's own statement and portal for the lock (never a client's).
const LOCK_NAME: &[u8] = b"pgpool_insert_lock";

impl ReplicationNeeds<'_> {
    /// Does this statement text need the main node's timestamp before it can go out?
    pub fn needs_timestamp(&mut self, text: &str) -> bool {
        let mentions = sql::mentions_time_function(text);
        if !mentions && !self.catalog.has_time_defaults() {
            return false;
        }
        let c = self.cache.classify(text, self.rules);
        let dml = matches!(
            c.kind,
            StatementKind::Insert | StatementKind::Update | StatementKind::Delete
        );
        dml && (mentions
            || c.written_tables
                .iter()
                .any(|t| self.catalog.time_columns(None, t).is_some()))
    }

    /// May pgpool wrap `text` in a transaction of its own? (Not when it controls
    /// transactions itself.)
    fn wrappable(&mut self, text: &str) -> bool {
        let c = self.cache.classify(text, self.rules);
        !c.starts_transaction
            && !c.ends_transaction
            && !matches!(c.kind, StatementKind::Transaction(_))
    }

    /// Lock statements an INSERT text needs (one per table with a sequence it inserts into).
    fn lock_statements(&mut self, text: &str) -> Vec<String> {
        let hinted = |hint: &str| text.trim_start().starts_with(hint);
        let wanted = if self.insert_lock {
            !hinted("/*NO INSERT LOCK*/")
        } else {
            hinted("/*INSERT LOCK*/")
        };
        let inserts = text
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"insert"));
        if !wanted || !inserts {
            return Vec::new();
        }
        let c = self.cache.classify(text, self.rules);
        let catalog = self.catalog;
        c.insert_targets
            .iter()
            .filter(|(_, relname)| catalog.has_sequence(relname))
            .map(|(quoted, _)| {
                if catalog.has_insert_lock_table() {
                    // A row lock per table (created on first use); WHERE false locks the
                    // row without writing a new version of it.
                    format!(
                        "INSERT INTO pgpool_catalog.insert_lock VALUES ('{}'::pg_catalog.regclass) \
                         ON CONFLICT (reloid) DO UPDATE SET reloid = EXCLUDED.reloid WHERE false",
                        quoted.replace('\'', "''")
                    )
                } else {
                    format!("LOCK TABLE {quoted} IN SHARE ROW EXCLUSIVE MODE")
                }
            })
            .collect()
    }

    /// The simple Query `text` as it must go to every node: locks ahead of it (in a
    /// transaction of pgpool's when `in_tx` is false), time functions made constant with
    /// `now` (when known). None: send it as it is.
    pub fn prepare_query(
        &mut self,
        text: &str,
        now: Option<&str>,
        in_tx: bool,
    ) -> Option<Replicated> {
        let locks = self.lock_statements(text);
        let wrap = !locks.is_empty() && !in_tx && self.wrappable(text);
        let catalog = self.catalog;
        let rewritten = now.and_then(|now| {
            sql::rewrite_time_functions(text, now, &|s, t| catalog.time_columns(s, t))
        });
        if locks.is_empty() && rewritten.is_none() {
            return None;
        }
        let mut sql = String::new();
        if wrap {
            sql.push_str("BEGIN;\n");
        }
        for l in &locks {
            sql.push_str(l);
            sql.push_str(";\n");
        }
        sql.push_str(rewritten.as_deref().unwrap_or(text));
        let mut bytes = Vec::with_capacity(sql.len() + 6);
        build::query(&mut bytes, &sql);
        Some(Replicated {
            bytes,
            hidden: HiddenAnswers {
                commands: u32::try_from(locks.len() + usize::from(wrap)).unwrap_or(u32::MAX),
                ready: wrap,
                ..HiddenAnswers::default()
            },
            commit_after: wrap,
        })
    }

    /// An extended batch as every node must get it: the locks its INSERTs need run first,
    /// in the same implicit (or explicit) transaction, and each Bind of a statement with
    /// time functions made constant (`now`, when known) bound instead to a copy of the
    /// statement parsed with them replaced (pgpool's own name; the client's statement
    /// stays as it is, for later executions). `statement_parse` gives the Parse message
    /// (body) of a statement the batch binds but did not parse itself.
    pub fn prepare_extended(
        &mut self,
        batch: &[u8],
        statement_parse: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
        now: Option<&str>,
        in_tx: bool,
    ) -> Option<Replicated> {
        let mut parsed: Vec<(&[u8], &[u8])> = Vec::new();
        let mut locks: Vec<String> = Vec::new();
        let mut wrappable = !in_tx;
        let mut body_out = Vec::with_capacity(batch.len() + 64);
        let mut rewrites = 0u32;
        let mut i = 0;
        while let Ok(Some(h)) = scan_header(batch.get(i..).unwrap_or(&[])) {
            let end = (i + h.total_len()).min(batch.len());
            let body = &batch[(i + 5).min(end)..end];
            let mut copied = false;
            match h.tag {
                b'P' => {
                    let name = cstr(body).0;
                    parsed.retain(|(n, _)| *n != name);
                    parsed.push((name, body));
                }
                b'B' => {
                    let (portal, rest) = cstr(body);
                    let (stmt, bind_rest) = cstr(rest);
                    let parse = match parsed.iter().rev().find(|(n, _)| *n == stmt) {
                        Some((_, p)) => Some(p.to_vec()),
                        None => statement_parse(stmt),
                    };
                    if let Some(parse) = parse {
                        let (_, after_name) = cstr(&parse);
                        let (query, types) = cstr(after_name);
                        let text = std::str::from_utf8(query).unwrap_or("");
                        wrappable &= self.wrappable(text);
                        for l in self.lock_statements(text) {
                            if !locks.contains(&l) {
                                locks.push(l);
                            }
                        }
                        let catalog = self.catalog;
                        let rewritten = now.and_then(|now| {
                            sql::rewrite_time_functions(text, now, &|s, t| {
                                catalog.time_columns(s, t)
                            })
                        });
                        if let Some(rewritten) = rewritten {
                            let name = format!("pgpool_time_{rewrites}");
                            rebind(
                                &mut body_out,
                                name.as_bytes(),
                                &rewritten,
                                types,
                                portal,
                                bind_rest,
                            );
                            rewrites += 1;
                            copied = true;
                        }
                    }
                }
                _ => {}
            }
            if !copied {
                body_out.extend_from_slice(&batch[i..end]);
            }
            if end <= i {
                break;
            }
            i = end;
        }
        if locks.is_empty() && rewrites == 0 {
            return None;
        }
        let wrap =
            !locks.is_empty() && wrappable && batch.last_chunk::<5>() == Some(b"S\0\0\0\x04");
        let mut bytes = Vec::with_capacity(body_out.len() + 256 * (locks.len() + 1));
        if wrap {
            statement_messages(&mut bytes, "BEGIN");
        }
        for l in &locks {
            statement_messages(&mut bytes, l);
        }
        bytes.append(&mut body_out);
        let n = u32::try_from(locks.len() + usize::from(wrap)).unwrap_or(u32::MAX);
        Some(Replicated {
            bytes,
            hidden: HiddenAnswers {
                parse: n + rewrites,
                bind: n,
                close: 2 * n + rewrites,
                commands: n,
                ready: wrap,
            },
            commit_after: wrap,
        })
    }
}

/// Close, Parse (`text`, with the original parameter `types` part) and Bind of the
/// statement `name` in place of a client's Bind (`portal`, then `bind_rest`: everything
/// after the statement name). The Close comes first: a copy left over by an earlier batch
/// that failed before using it goes, and closing a name that does not exist is no error.
fn rebind(
    out: &mut Vec<u8>,
    name: &[u8],
    text: &str,
    types: &[u8],
    portal: &[u8],
    bind_rest: &[u8],
) {
    let s = build::begin(out, b'C');
    out.push(b'S');
    build::put_cstr(out, name);
    build::finish(out, s);
    let s = build::begin(out, b'P');
    build::put_cstr(out, name);
    build::put_cstr(out, text.as_bytes());
    out.extend_from_slice(types);
    build::finish(out, s);
    let s = build::begin(out, b'B');
    build::put_cstr(out, portal);
    build::put_cstr(out, name);
    out.extend_from_slice(bind_rest);
    build::finish(out, s);
}

/// Parse, Bind, Execute and Close (portal and statement) of one statement of pgpool's.
fn statement_messages(out: &mut Vec<u8>, sql: &str) {
    let s = build::begin(out, b'P');
    build::put_cstr(out, LOCK_NAME);
    build::put_cstr(out, sql.as_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    build::finish(out, s);
    let s = build::begin(out, b'B');
    build::put_cstr(out, LOCK_NAME);
    build::put_cstr(out, LOCK_NAME);
    // No parameter formats, no parameters, no result formats.
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    build::finish(out, s);
    let s = build::begin(out, b'E');
    build::put_cstr(out, LOCK_NAME);
    out.extend_from_slice(&0u32.to_be_bytes());
    build::finish(out, s);
    for kind in [b'P', b'S'] {
        let s = build::begin(out, b'C');
        out.push(kind);
        build::put_cstr(out, LOCK_NAME);
        build::finish(out, s);
    }
}

/// Might the batch start a COPY? (Then it cannot wait for the main node's answer before
/// the other nodes get it: the main node would wait for the client's data.)
pub fn mentions_copy(text: &[u8]) -> bool {
    text.windows(4).any(|w| w.eq_ignore_ascii_case(b"copy"))
}

use crate::child::relay::cstr;

/// The ISO 8601 text of the main node's `now()` that [`sql::rewrite_time_functions`]
/// needs: read by this query (UTC, microseconds; valid input whatever the DateStyle).
pub const NOW_QUERY: &str =
    "SELECT pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_answers_count_per_type() {
        let mut h = HiddenAnswers {
            parse: 1,
            commands: 1,
            ..HiddenAnswers::default()
        };
        assert!(!h.take(b'3'));
        assert!(h.take(b'1') && !h.take(b'1'));
        assert!(h.take(b'C') && !h.take(b'C'));
        assert!(!h.take(b'D') && !h.take(b'Z'));
        h.ready = true;
        assert!(h.take(b'Z') && !h.take(b'Z'));
    }

    #[test]
    fn lock_group_is_five_whole_messages() {
        let mut out = Vec::new();
        statement_messages(&mut out, "LOCK TABLE t IN SHARE ROW EXCLUSIVE MODE");
        let mut tags = Vec::new();
        let mut i = 0;
        while let Ok(Some(h)) = scan_header(&out[i..]) {
            tags.push(h.tag);
            i += h.total_len();
            if i >= out.len() {
                break;
            }
        }
        assert_eq!(tags, b"PBECC");
        assert_eq!(i, out.len());
        assert!(mentions_copy(b"Copy t from stdin") && !mentions_copy(b"insert"));
    }
}
