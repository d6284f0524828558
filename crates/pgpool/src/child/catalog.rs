//! Catalog facts the load-balancing relay needs from the database and caches per child:
//! which function names are volatile (they count as writes when `write_function_list` and
//! `read_only_function_list` are both empty, as in Pgpool-II) and which tables are unlogged
//! (`check_unlogged_table`: a standby cannot read them). Both come from one query sent on the
//! session's primary connection before the first statement that needs them is routed; the
//! answer holds for the database until any child runs a statement that can change it
//! (`sql::Classification::changes_catalog_facts`: CREATE/ALTER FUNCTION, an unlogged table,
//! ...; a generation counter in shared memory) or the child serves another database. Names are compared bare (no schema), which
//! errs towards the primary when two schemas share a name.

use std::collections::HashSet;

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
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            database: String::new(),
            generation: 0,
            state: State::Empty,
            volatile: HashSet::new(),
            unlogged: HashSet::new(),
        }
    }
}

impl Catalog {
    /// Are the cached facts those of `database` at `generation` (or did loading them fail
    /// there, which is not retried until something changes)?
    pub fn is_current(&self, database: &str, generation: u64) -> bool {
        matches!(self.state, State::Loaded | State::Failed)
            && self.generation == generation
            && self.database == database
    }

    /// Appends the Query that loads the facts to `out` and starts collecting its rows.
    pub fn start_load(&mut self, database: &str, generation: u64, out: &mut Vec<u8>) {
        self.database.clear();
        self.database.push_str(database);
        self.generation = generation;
        self.state = State::Loading;
        self.volatile.clear();
        self.unlogged.clear();
        build::query(
            out,
            "SELECT 'f', proname FROM pg_catalog.pg_proc WHERE provolatile = 'v' \
             UNION SELECT 'u', relname FROM pg_catalog.pg_class WHERE relpersistence = 'u'",
        );
    }

    /// One DataRow body of the load query: (kind, name).
    pub fn add_row(&mut self, body: &[u8]) {
        let mut fields = DataRowFields::new(body);
        let (Some(Some(kind)), Some(Some(name))) = (fields.next(), fields.next()) else {
            return;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        match kind {
            b"f" => self.volatile.insert(name.to_string()),
            b"u" => self.unlogged.insert(name.to_string()),
            _ => false,
        };
    }

    /// The load query ended (`ok`: without an error).
    pub fn finish_load(&mut self, ok: bool) {
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

    pub fn is_unlogged(&self, bare_table: &str) -> bool {
        self.unlogged.contains(bare_table)
    }
}

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
        c.start_load("db", 3, &mut q);
        assert_eq!(q[0], b'Q');
        assert!(!c.is_current("db", 3));
        c.add_row(&row(&[Some(b"f"), Some(b"random")]));
        c.add_row(&row(&[Some(b"u"), Some(b"ut")]));
        c.add_row(&row(&[Some(b"u"), None]));
        c.add_row(&[0, 2, 0]);
        c.finish_load(true);
        assert!(c.is_current("db", 3) && !c.is_current("db", 4) && !c.is_current("x", 3));
        assert!(c.is_volatile("random") && !c.is_volatile("my_func"));
        assert!(c.is_unlogged("ut") && c.mentions_unlogged("select * from UT"));
        assert!(!c.mentions_unlogged("select * from pt"));
        c.start_load("db", 4, &mut q);
        c.finish_load(false);
        assert!(c.is_current("db", 4));
        assert!(c.is_volatile("my_func") && !c.is_volatile("count"));
        assert!(!c.mentions_unlogged("select * from ut"));
        assert_eq!(bare("s.t"), "t");
        assert_eq!(bare("t"), "t");
    }
}
