//! The query cache's change feed (`memqcache_logical_invalidation`, a pgpool-rs addition,
//! off by default): a worker that reads the primary's logical decoding of every committed
//! write and invalidates the cache entries of the relations written and of their
//! inheritance ancestors, so that writes which bypass pgpool (another client, a trigger,
//! a function, a cron job) stop being served from the cache too. Logical decoding is per
//! database: the feed keeps one connection per database of the primary, each with a
//! temporary `test_decoding` slot (`memqcache_logical_slot` + `_` + the database's oid;
//! temporary, so that a pgpool that goes away leaves no slot holding WAL back), and reads
//! them every `memqcache_logical_interval`. Staleness is bounded: an entry that such a
//! write made wrong is served at most one interval (plus one read) after the write
//! committed. A new slot knows nothing of the writes before it, and a failed read may
//! have lost some: then every entry is invalidated; while the feed cannot read (no
//! primary, `wal_level` below logical, no permission) it does so every interval, so
//! the cache answers only what was stored within the last interval, the same bound.

use std::collections::HashMap;

use config::Config;
use nix::sys::signal::Signal;
use shmem::{QueryCache, Shmem};

use crate::backend::{BackendConn, BackendError, MessageReader, Secret};
use crate::sys;

pub struct CacheFeedSetup<'a> {
    pub cfg: Config,
    pub shm: &'a Shmem,
    pub cache: &'a QueryCache,
    pub secret: Option<Secret>,
}

struct Feed<'a> {
    cfg: Config,
    shm: &'a Shmem,
    cache: &'a QueryCache,
    secret: Option<Secret>,
    /// The node the connections are to (the primary).
    node: Option<usize>,
    /// One connection per database of the primary, each holding its slot.
    conns: HashMap<String, BackendConn>,
    reader: MessageReader,
    /// The last read failed (logged once until a read succeeds again).
    failing: bool,
}

/// One row per relation the slot's pending changes wrote: ('w', the qualified name as
/// test_decoding prints it) for each, and ('r', relname) for each one that still exists and
/// for its inheritance / partitioning ancestors (a read of a parent reads its children).
fn changes_query(slot: &str) -> String {
    format!(
        "WITH RECURSIVE changed AS (\
           SELECT DISTINCT substring(data FROM '^table (.+?): [A-Z]+:') AS qname \
           FROM pg_catalog.pg_logical_slot_get_changes({slot}, NULL, NULL, 'skip-empty-xacts', '1') \
           WHERE data LIKE 'table %'), \
         ancestors(oid) AS (\
           SELECT pg_catalog.to_regclass(qname)::oid FROM changed \
           WHERE pg_catalog.to_regclass(qname) IS NOT NULL \
           UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN ancestors a ON i.inhrelid = a.oid) \
         SELECT 'w', qname FROM changed WHERE qname IS NOT NULL \
         UNION ALL SELECT 'r', c.relname FROM ancestors a JOIN pg_catalog.pg_class c ON c.oid = a.oid",
        slot = sql::literal::quote(slot)
    )
}

/// The relation name of a qualified name as PostgreSQL's quote_identifier prints it
/// (`public."My Table"` → `My Table`): the cache keys its counters by bare names.
fn bare_name(qualified: &str) -> String {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = qualified.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push('"');
                }
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => {
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    parts.pop().unwrap_or_default()
}

impl Feed<'_> {
    /// Where writes happen: the primary, or without one (raw, native replication) the
    /// main node, the first one up.
    fn primary(&self) -> Option<usize> {
        let alive =
            |n: usize| n < self.cfg.backends.len() && self.shm.backend(n).status().is_alive();
        let id = self.shm.cluster().primary_node_id();
        match usize::try_from(id) {
            Ok(n) => Some(n).filter(|&n| alive(n)),
            Err(_) => (0..self.cfg.backends.len()).find(|&n| alive(n)),
        }
    }

    fn connect(&self, node: usize, db: &str) -> Result<BackendConn, BackendError> {
        let secret = self.secret.as_ref();
        crate::sr_check::connect_as_sr_check_user(&self.cfg, secret, node, db, "pgpool_cache_feed")
    }

    /// Runs `sql` in database `db` of the primary (connecting first, and creating the
    /// connection's slot, when needed); the rows, or why not.
    fn query(&mut self, db: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let primary = self.primary().ok_or("no primary node is up")?;
        if self.node != Some(primary) {
            self.conns.clear();
            self.node = Some(primary);
        }
        if !self.conns.contains_key(db) {
            let mut c = self.connect(primary, db).map_err(|e| {
                format!("cannot connect to database \"{db}\" of the primary (node {primary}): {e}")
            })?;
            self.create_slot(&mut c, db)?;
            self.conns.insert(db.to_string(), c);
        }
        let Some(conn) = self.conns.get_mut(db) else {
            return Err("no connection".into());
        };
        match conn.simple_query(&mut self.reader, sql) {
            Ok(r) => match r.error {
                None => Ok(r.rows),
                Some(e) => Err(format!("node {primary}, database \"{db}\": {}", e.message)),
            },
            Err(e) => {
                self.conns.remove(db);
                Err(format!("node {primary}, database \"{db}\": {e}"))
            }
        }
    }

    /// Where the list of databases is read.
    fn home_db(&self) -> &str {
        crate::sr_check::sr_check_database(&self.cfg)
    }

    fn slot_name(&self, oid: &str) -> String {
        format!("{}_{oid}", self.cfg.memqcache_logical_slot)
    }

    /// Creates the connection's temporary slot. It knows nothing of the writes before
    /// it: every entry goes.
    fn create_slot(&mut self, conn: &mut BackendConn, db: &str) -> Result<(), String> {
        let r = conn
            .simple_query(
                &mut self.reader,
                &format!(
                    "SELECT pg_catalog.pg_create_logical_replication_slot({} || '_' || oid, 'test_decoding', true) \
                     FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()",
                    sql::literal::quote(&self.cfg.memqcache_logical_slot)
                ),
            )
            .map_err(|e| format!("database \"{db}\": {e}"))?;
        if let Some(e) = r.error {
            return Err(format!(
                "database \"{db}\": cannot create a logical replication slot: {}",
                e.message
            ));
        }
        self.cache.invalidate_all();
        log::info!("query cache feed: created temporary logical replication slot for database \"{db}\" (test_decoding)");
        Ok(())
    }

    /// Reads every database's slot once and invalidates what was written.
    fn read_changes(&mut self) -> Result<usize, String> {
        let home = self.home_db().to_string();
        let dbs = self.query(
            &home,
            "SELECT datname, oid FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate",
        )?;
        let dbs: Vec<(String, String)> = dbs
            .into_iter()
            .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
            .collect();
        // Databases dropped since: their connections go.
        self.conns
            .retain(|name, _| *name == home || dbs.iter().any(|(d, _)| d == name));
        let mut names: Vec<String> = Vec::new();
        for (db, oid) in &dbs {
            let rows = self.query(db, &changes_query(&self.slot_name(oid)))?;
            names.extend(rows.iter().filter_map(|r| {
                match (r.first()?.as_deref()?, r.get(1)?.as_deref()?) {
                    ("w", q) => Some(bare_name(q)),
                    (_, name) => Some(name.to_string()),
                }
            }));
        }
        names.sort();
        names.dedup();
        if !names.is_empty() {
            log::debug!("query cache feed: invalidating {}", names.join(", "));
            self.cache.invalidate(names.iter().map(String::as_str));
        }
        Ok(names.len())
    }

    fn step(&mut self) {
        match self.read_changes() {
            Ok(_) if self.failing => {
                self.failing = false;
                log::info!("query cache feed: reading the primary's changes again");
            }
            Ok(_) => {}
            Err(e) => {
                // A failed read may have consumed changes, and writes go on unseen. The
                // next try starts afresh (connection, and the slot if it was dropped).
                self.cache.invalidate_all();
                self.conns.clear();
                if !self.failing {
                    self.failing = true;
                    log::error!(
                        "query cache feed: cannot read logical replication slot \"{}\": {e}; the query cache is invalidated every {} ms until it can",
                        self.cfg.memqcache_logical_slot,
                        self.cfg.memqcache_logical_interval
                    );
                }
            }
        }
    }
}

pub fn run(setup: CacheFeedSetup<'_>) -> ! {
    let waker = sys::enter_process(
        crate::logging::ProcessKind::CacheFeed,
        &[
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGHUP,
        ],
    );
    sys::set_title("pgpool: query cache feed");
    let mut feed = Feed {
        cfg: setup.cfg,
        shm: setup.shm,
        cache: setup.cache,
        secret: setup.secret,
        node: None,
        conns: HashMap::new(),
        reader: MessageReader::default(),
        failing: false,
    };
    loop {
        feed.step();
        let wait = feed
            .cfg
            .memqcache_logical_interval
            .clamp(100, i32::MAX as i64) as i32;
        if sys::wait_for_signals(&waker, wait as u64) == sys::Wakeup::Reload {
            if let Ok(newer) = Config::load(&feed.cfg.config_file) {
                crate::logging::configure(&newer);
                feed.cfg = newer;
            }
            crate::node_table::adopt(&mut feed.cfg, feed.shm);
            feed.conns.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bare_name;

    #[test]
    fn bare_names_of_quoted_qualified_names() {
        assert_eq!(bare_name("public.accounts"), "accounts");
        assert_eq!(bare_name("public.\"My Table\""), "My Table");
        assert_eq!(bare_name("\"odd.schema\".\"a\"\"b\""), "a\"b");
        assert_eq!(bare_name("plain"), "plain");
    }
}
