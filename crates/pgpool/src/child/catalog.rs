//! Catalog facts the load-balancing relay needs from the database and caches per child:
//! which function names are volatile (they count as writes when `write_function_list` and
//! `read_only_function_list` are both empty, as in Pgpool-II) and which tables are unlogged
//! (`check_unlogged_table`: a standby cannot read them). Both come from one query sent on the
//! session's primary connection before the first statement that needs them is routed; the
//! answer holds for the database until any child runs a statement that can change it
//! (`sql::Classification::changes_catalog_facts`: CREATE/ALTER FUNCTION, an unlogged table,
//! ...; a generation counter in shared memory) or the child serves another database. Names are compared bare (no schema), which
//! errs towards the primary when two schemas share a name. In native replication the same
//! query also reads which tables draw from a sequence (SERIAL, identity), whether
//! `pgpool_catalog.insert_lock` exists, and the columns of tables with a time-dependent
//! default (see `replicate`).

use std::collections::{HashMap, HashSet};

use protocol::build;
use protocol::message::DataRowFields;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Loading,
    Loaded,
    /// The query failed (e.g. the transaction was aborted): judge by the built-in list.
    Failed,
}

pub struct Catalog {
    database: String,
    generation: u64,
    state: State,
    volatile: HashSet<String>,
    unlogged: HashSet<String>,
    replication: ReplicationFacts,
    cache: CacheFacts,
    /// The load query's DataRow bodies, each after its length (u32, big-endian): what
    /// enable_shared_relcache shares with the other children.
    rows: Vec<u8>,
}

/// The query cache's facts (empty without it).
#[derive(Default)]
struct CacheFacts {
    /// Stable functions (with the volatile ones: what a cached result must not call).
    stable: HashSet<String>,
    /// Views and materialized views (bare names).
    views: HashSet<String>,
    /// Inheritance and partitioning: (child, parent), bare names.
    inherits: Vec<(String, String)>,
}

/// (schema, table) of a catalog row.
type TableKey = (String, String);
/// A column while loading: attnum, name, time-dependent default.
type LoadingColumn = (i32, String, Option<String>);

/// Native replication's facts (empty in the other modes).
#[derive(Default)]
struct ReplicationFacts {
    /// Bare names of tables with a column drawing from a sequence.
    sequenced: HashSet<String>,
    insert_lock_table: bool,
    /// (schema, table) → columns in order (with their attnum while loading).
    time_tables: HashMap<TableKey, Vec<LoadingColumn>>,
    /// Loaded form of `time_tables`.
    columns: HashMap<TableKey, sql::TableColumns>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            database: String::new(),
            generation: 0,
            state: State::Empty,
            volatile: HashSet::new(),
            unlogged: HashSet::new(),
            replication: ReplicationFacts::default(),
            cache: CacheFacts::default(),
            rows: Vec::new(),
        }
    }
}

impl Catalog {
    /// Are the cached facts those of `database` at `generation` (or did loading them fail
    /// there, which is not retried until something changes)?
    /// The catalog generation the facts were (or are being) loaded at.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn is_current(&self, database: &str, generation: u64) -> bool {
        matches!(self.state, State::Loaded | State::Failed)
            && self.generation == generation
            && self.database == database
    }

    /// Appends the Query that loads the facts to `out` and starts collecting its rows
    /// (`replication`: native replication's facts too; `cache`: the query cache's).
    pub fn start_load(
        &mut self,
        database: &str,
        generation: u64,
        replication: bool,
        cache: bool,
        out: &mut Vec<u8>,
    ) {
        self.database.clear();
        self.database.push_str(database);
        self.generation = generation;
        self.state = State::Loading;
        self.volatile.clear();
        self.unlogged.clear();
        self.replication = ReplicationFacts::default();
        self.cache = CacheFacts::default();
        self.rows.clear();
        build::query(out, &Self::load_query(replication, cache));
    }

    /// The Query that loads the facts (`replication`: native replication's facts too;
    /// `cache`: the query cache's).
    pub fn load_query(replication: bool, cache: bool) -> String {
        let mut q = String::from(
            "SELECT 'f', proname, NULL::name, NULL::int2, NULL::name, NULL::text \
             FROM pg_catalog.pg_proc WHERE provolatile = 'v' \
             UNION SELECT 'u', relname, NULL, NULL, NULL, NULL \
             FROM pg_catalog.pg_class WHERE relpersistence = 'u'",
        );
        if replication {
            q.push_str(REPLICATION_FACTS);
        }
        if cache {
            q.push_str(CACHE_FACTS);
        }
        q
    }

    /// One DataRow body of the load query: (kind, name, schema, attnum, column, default).
    pub fn add_row(&mut self, body: &[u8]) {
        self.rows
            .extend_from_slice(&(body.len() as u32).to_be_bytes());
        self.rows.extend_from_slice(body);
        let mut fields = DataRowFields::new(body);
        let mut text = || {
            fields
                .next()
                .flatten()
                .and_then(|f| std::str::from_utf8(f).ok())
        };
        let (Some(kind), name) = (text(), text()) else {
            return;
        };
        let name = name.unwrap_or("").to_string();
        match kind {
            "f" => {
                self.volatile.insert(name);
            }
            "u" => {
                self.unlogged.insert(name);
            }
            "s" => {
                self.replication.sequenced.insert(name);
            }
            "l" => self.replication.insert_lock_table = true,
            "t" => {
                self.cache.stable.insert(name);
            }
            "w" => {
                self.cache.views.insert(name);
            }
            "i" => {
                let parent = text().unwrap_or("").to_string();
                self.cache.inherits.push((name, parent));
            }
            "c" => {
                let schema = text().unwrap_or("").to_string();
                let attnum = text().and_then(|n| n.parse().ok()).unwrap_or(0);
                let column = text().unwrap_or("").to_string();
                let default = text()
                    .filter(|d| sql::is_time_expression(d))
                    .map(str::to_string);
                self.replication
                    .time_tables
                    .entry((schema, name))
                    .or_default()
                    .push((attnum, column, default));
            }
            _ => {}
        }
    }

    /// The rows the load query returned (for [`Catalog::replay`] in another child).
    pub fn rows(&self) -> &[u8] {
        &self.rows
    }

    /// Takes the rows another child's load returned, in place of the query's answer.
    pub fn replay(&mut self, rows: &[u8]) {
        let mut at = 0;
        while let Some(len) = rows.get(at..at + 4) {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(body) = rows.get(at + 4..at + 4 + len) else {
                break;
            };
            self.add_row(body);
            at += 4 + len;
        }
    }

    /// The load query ended (`ok`: without an error).
    pub fn finish_load(&mut self, ok: bool) {
        let r = &mut self.replication;
        for (table, mut cols) in std::mem::take(&mut r.time_tables) {
            cols.sort_by_key(|c| c.0);
            let columns = cols.into_iter().map(|(_, n, d)| (n, d)).collect();
            r.columns.insert(table, sql::TableColumns { columns });
        }
        if ok {
            self.state = State::Loaded;
            log::debug!(
                "catalog of database \"{}\": {} volatile function names, {} unlogged tables",
                self.database,
                self.volatile.len(),
                self.unlogged.len()
            );
        } else {
            self.state = State::Failed;
            self.volatile.clear();
            self.unlogged.clear();
            self.replication = ReplicationFacts::default();
            self.cache = CacheFacts::default();
            log::warn!(
                "could not read function volatility from database \"{}\": judging functions by the built-in list",
                self.database
            );
        }
    }

    /// Is a function (bare name) volatile, i.e. a write?
    pub fn is_volatile(&self, name: &str) -> bool {
        match self.state {
            State::Loaded => self.volatile.contains(name),
            _ => !sql::BUILTIN_READ_ONLY_FUNCTIONS.contains(&name),
        }
    }

    /// May `text` read an unlogged table? (It names one; with very many of them, any text
    /// may.)
    pub fn mentions_unlogged(&self, text: &str) -> bool {
        match self.unlogged.len() {
            0 => false,
            1..=64 => sql::mentions_any(text, self.unlogged.iter().map(String::as_str)),
            _ => true,
        }
    }

    /// May a cached result call this function (bare name)? Only when the catalog says
    /// it is immutable.
    pub fn is_immutable(&self, name: &str) -> bool {
        self.state == State::Loaded
            && !self.volatile.contains(name)
            && !self.cache.stable.contains(name)
    }

    /// Is this relation (bare name) a view? (Unknown without the catalog: yes.)
    pub fn is_view(&self, bare_table: &str) -> bool {
        self.state != State::Loaded || self.cache.views.contains(bare_table)
    }

    /// The inheritance ancestors and descendants of a relation (bare names): a write to
    /// one changes what a read of the others returns.
    pub fn relatives(&self, bare_table: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for up in [true, false] {
            let mut frontier = vec![bare_table.to_string()];
            while let Some(t) = frontier.pop() {
                for (child, parent) in &self.cache.inherits {
                    let (from, to) = if up { (child, parent) } else { (parent, child) };
                    if *from == t && !found.contains(to) && to != bare_table {
                        found.push(to.clone());
                        frontier.push(to.clone());
                    }
                }
            }
        }
        found
    }

    pub fn is_unlogged(&self, bare_table: &str) -> bool {
        self.unlogged.contains(bare_table)
    }

    /// Does an INSERT into this table (bare name) draw from a sequence?
    pub fn has_sequence(&self, bare_table: &str) -> bool {
        self.replication.sequenced.contains(bare_table)
    }

    pub fn has_insert_lock_table(&self) -> bool {
        self.replication.insert_lock_table
    }

    pub fn has_time_defaults(&self) -> bool {
        !self.replication.columns.is_empty()
    }

    /// The columns of a table with a time-dependent default; a bare name must be the only
    /// table of that name with one (else which one the search path finds is unknown).
    pub fn time_columns(&self, schema: Option<&str>, table: &str) -> Option<&sql::TableColumns> {
        let columns = &self.replication.columns;
        match schema {
            Some(s) => columns.get(&(s.to_string(), table.to_string())),
            None => {
                let mut found = columns.iter().filter(|((_, t), _)| t == table);
                match (found.next(), found.next()) {
                    (Some((_, c)), None) => Some(c),
                    _ => None,
                }
            }
        }
    }
}

/// Native replication's part of the catalog query: tables with a sequence-drawing column,
/// the insert_lock table, and every column of tables with a time-dependent default.
/// The query cache's facts: stable functions, views, inheritance (child, parent).
const CACHE_FACTS: &str = " UNION ALL SELECT 't', proname, NULL, NULL, NULL, NULL \
     FROM pg_catalog.pg_proc WHERE provolatile = 's' \
     UNION ALL SELECT 'w', relname, NULL, NULL, NULL, NULL \
     FROM pg_catalog.pg_class WHERE relkind IN ('v', 'm') \
     UNION ALL SELECT 'i', c.relname, p.relname, NULL, NULL, NULL \
     FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
     JOIN pg_catalog.pg_class p ON p.oid = i.inhparent";

const REPLICATION_FACTS: &str = " UNION ALL SELECT 's', c.relname, NULL, NULL, NULL, NULL \
     FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') AND EXISTS (SELECT 1 \
     FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d \
     ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     AND (a.attidentity <> '' OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%')) \
     UNION ALL SELECT 'l', NULL, NULL, NULL, NULL, NULL \
     WHERE pg_catalog.to_regclass('pgpool_catalog.insert_lock') IS NOT NULL \
     UNION ALL SELECT 'c', c.relname, n.nspname, a.attnum, a.attname, \
     pg_catalog.pg_get_expr(d.adbin, d.adrelid) \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     WHERE c.relkind IN ('r', 'p') AND c.oid IN (SELECT adrelid FROM pg_catalog.pg_attrdef \
     WHERE pg_catalog.pg_get_expr(adbin, adrelid) ~* '(now|current_date|current_time|localtime|_timestamp)')";

/// The bare name of a relation as written (`schema.table` → `table`).
pub fn bare(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (fields.len() as u16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    #[test]
    fn rows_fill_the_sets_and_failure_falls_back_to_the_builtin_list() {
        let mut c = Catalog::default();
        let mut q = Vec::new();
        c.start_load("db", 3, true, false, &mut q);
        assert_eq!(q[0], b'Q');
        assert!(!c.is_current("db", 3));
        c.add_row(&row(&[Some(b"f"), Some(b"random")]));
        c.add_row(&row(&[Some(b"u"), Some(b"ut")]));
        c.add_row(&row(&[Some(b"u"), None]));
        c.add_row(&[0, 2, 0]);
        c.add_row(&row(&[Some(b"s"), Some(b"t1")]));
        c.add_row(&row(&[Some(b"l"), None]));
        for (n, col, d) in [
            (b"2", b"j" as &[u8], Some(b"now()" as &[u8])),
            (b"1", b"i", Some(b"nextval('s')")),
        ] {
            c.add_row(&row(&[
                Some(b"c"),
                Some(b"t1"),
                Some(b"public"),
                Some(n),
                Some(col),
                d,
            ]));
        }
        c.finish_load(true);
        assert!(c.has_sequence("t1") && !c.has_sequence("t2") && c.has_insert_lock_table());
        let cols = c.time_columns(None, "t1").map(|t| t.columns.clone());
        assert_eq!(
            cols,
            Some(vec![
                ("i".to_string(), None),
                ("j".to_string(), Some("now()".to_string()))
            ])
        );
        assert!(c.time_columns(Some("other"), "t1").is_none());
        assert!(c.is_current("db", 3) && !c.is_current("db", 4) && !c.is_current("x", 3));
        assert!(c.is_volatile("random") && !c.is_volatile("my_func"));
        assert!(c.is_unlogged("ut") && c.mentions_unlogged("select * from UT"));
        assert!(!c.mentions_unlogged("select * from pt"));
        // Another child takes the same facts from the shared rows (enable_shared_relcache).
        let mut other = Catalog::default();
        other.start_load("db", 3, true, false, &mut Vec::new());
        other.replay(c.rows());
        other.finish_load(true);
        assert_eq!(other.rows(), c.rows());
        assert!(other.has_sequence("t1") && other.has_insert_lock_table());
        assert!(other.is_volatile("random") && other.is_unlogged("ut"));
        assert!(other.time_columns(None, "t1").is_some());
        c.start_load("db", 4, false, false, &mut q);
        c.finish_load(false);
        assert!(!c.has_sequence("t1") && !c.has_time_defaults());
        assert!(c.is_current("db", 4));
        assert!(c.is_volatile("my_func") && !c.is_volatile("count"));
        assert!(!c.mentions_unlogged("select * from ut"));
        assert_eq!(bare("s.t"), "t");
        assert_eq!(bare("t"), "t");
    }
}
