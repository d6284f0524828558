//! The query cache in the relay: a simple Query whose answer is stored is answered by
//! pgpool in its place in the stream (like a local command); a cacheable one that is
//! not has its answer captured on the way to the client and stored once its
//! ReadyForQuery says it ran outside a transaction, stamped with the invalidation
//! counters read when it was sent; writes invalidate their relations (and their
//! inheritance relatives) once they committed, before the client hears so.
use super::*;

/// The query cache's storage, when memory_cache_enabled asks for one (created by the
/// main process before the first fork).
pub fn open_query_cache(cfg: &config::Config) -> Result<Option<shmem::QueryCache>, String> {
    if !cfg.memory_cache_enabled && !cfg.enable_shared_relcache {
        return Ok(None);
    }
    let size = |v: i64| usize::try_from(v).unwrap_or(0);
    if cfg.memqcache_maxcache > cfg.memqcache_cache_block_size {
        return Err(format!(
            "invalid memory cache configuration: memqcache_maxcache ({}) must be at most memqcache_cache_block_size ({})",
            cfg.memqcache_maxcache, cfg.memqcache_cache_block_size
        ));
    }
    let memcached = cfg.memqcache_method == config::CacheMethod::Memcached;
    let layout = if memcached {
        // The entries live in memcached: shared memory keeps the counters and figures.
        shmem::CacheLayout {
            total_size: 0,
            block_size: 0,
            max_entries: 0,
        }
    } else {
        shmem::CacheLayout {
            total_size: size(cfg.memqcache_total_size),
            block_size: size(cfg.memqcache_cache_block_size),
            max_entries: size(cfg.memqcache_max_num_cache),
        }
    };
    let cache = shmem::QueryCache::create(layout)
        .map_err(|e| format!("could not create the query cache's shared memory: {e}"))?;
    if memcached {
        log::info!(
            "query cache: entries in memcached at {}:{}, invalidation counters in {} bytes of shared memory",
            cfg.memqcache_memcached_host,
            cfg.memqcache_memcached_port,
            cache.size()
        );
    } else {
        log::info!(
            "query cache: {} bytes of shared memory ({} bytes in blocks of {})",
            cache.size(),
            layout.total_size,
            layout.block_size
        );
    }
    Ok(Some(cache))
}

/// Where entries are kept: pgpool's shared memory, or memcached with the validity
/// counters in shared memory (the query cache's results and the shared relation cache).
#[derive(Clone, Copy)]
pub struct CacheStore<'a> {
    /// The entries (shmem) or, with memcached, the invalidation counters and figures.
    pub counters: &'a shmem::QueryCache,
    /// memqcache_method = memcached: where the entries are.
    pub remote: Option<&'a crate::memcached::Memcached>,
}

/// The query cache as one session uses it.
pub struct CacheConfig<'a> {
    pub store: CacheStore<'a>,
    /// The session's user (part of every key, with the database).
    pub user: &'a str,
    /// memqcache_expire (seconds, 0: no limit).
    pub expire: i64,
    /// memqcache_maxcache: larger answers are not stored.
    pub maxcache: usize,
    /// memqcache_auto_cache_invalidation.
    pub auto_invalidation: bool,
    /// cache_safe_memqcache_table_list / cache_unsafe_memqcache_table_list.
    pub safe_tables: &'a [String],
    pub unsafe_tables: &'a [String],
}

impl CacheStore<'_> {
    /// The answer stored under `key`, into `out`, when it is still right and younger
    /// than `expire` seconds (0: no limit).
    pub(super) fn lookup(&self, key: &[u8], expire: i64, out: &mut Vec<u8>) -> bool {
        let now = shmem::now_secs();
        match self.remote {
            None => self.counters.lookup(key, now, expire, out),
            Some(m) => {
                let mut raw = Vec::new();
                m.get(&self.counters.entry_name(key), &mut raw)
                    && self.counters.open_entry(&raw, key, now, expire, out)
            }
        }
    }

    /// Keeps `answer` under `key` unless what it read changed since `stamp`.
    pub(super) fn keep(&self, key: &[u8], stamp: &shmem::Stamp, answer: &[u8], expire: i64) {
        let now = shmem::now_secs();
        match self.remote {
            None => {
                self.counters.store(key, stamp, now, answer);
            }
            Some(m) => {
                let entry = shmem::QueryCache::entry(key, stamp, now, answer);
                if self.counters.is_current(stamp) {
                    let expire = u32::try_from(expire).unwrap_or(0);
                    m.set(&self.counters.entry_name(key), &entry, expire);
                }
            }
        }
    }

    /// Forgets the answer under `key`; true when there was one.
    fn forget(&self, key: &[u8]) -> bool {
        match self.remote {
            None => self.counters.remove(key),
            Some(m) => m.delete(&self.counters.entry_name(key)),
        }
    }

    /// Largest entry kept.
    fn room(&self) -> usize {
        match self.remote {
            None => self.counters.max_entry(),
            Some(_) => crate::memcached::MAX_ITEM - 4096,
        }
    }
}

/// A statement whose answer the cache may serve or keep.
struct Candidate {
    text: Vec<u8>,
    /// What else makes the answer: for the extended protocol, the Parse's parameter
    /// types, the Bind's parameters and formats, and whether a Describe asks for the
    /// RowDescription.
    key_tail: Vec<u8>,
    /// The batch parses the statement (its answer starts with ParseComplete).
    parse_complete: bool,
    extended: bool,
}

/// An answer on its way to the client that will be stored.
#[derive(Debug)]
pub(super) struct CacheCapture {
    key: Vec<u8>,
    stamp: shmem::Stamp,
    answer: Vec<u8>,
    /// Still storable (no error, not too large).
    ok: bool,
}

impl CacheCapture {
    pub(super) fn wants(&self, tag: u8) -> bool {
        self.ok && matches!(tag, b'T' | b'D' | b'C')
    }

    /// A whole message of the answer (or, with `whole` false, one that will not be kept).
    pub(super) fn add(&mut self, message: &[u8], whole: bool, limit: usize) {
        if !whole || self.answer.len() + message.len() > limit {
            self.ok = false;
            self.answer = Vec::new();
        } else {
            self.answer.extend_from_slice(message);
        }
    }

    pub(super) fn fail(&mut self) {
        self.ok = false;
    }
}

/// The quoted query of `PGPOOL SET CACHE DELETE '...'` (words in any case, any blanks).
fn cache_delete_argument(q: &[u8]) -> Option<&str> {
    let mut rest = std::str::from_utf8(cstr(q).0).ok()?.trim();
    for word in ["pgpool", "set", "cache", "delete"] {
        let head = rest.get(..word.len())?;
        let tail = &rest[word.len()..];
        if !head.eq_ignore_ascii_case(word) || !tail.starts_with(char::is_whitespace) {
            return None;
        }
        rest = tail.trim_start();
    }
    Some(rest.trim_end().trim_end_matches(';').trim_end())
}

fn listed(list: &[String], qualified: &str) -> bool {
    list.iter()
        .any(|t| t.eq_ignore_ascii_case(qualified) || t.eq_ignore_ascii_case(bare(qualified)))
}

fn is_system(qualified: &str) -> bool {
    let lower = qualified.to_ascii_lowercase();
    lower.starts_with("pg_catalog.")
        || lower.starts_with("information_schema.")
        || bare(&lower).starts_with("pg_")
}

impl Relay<'_> {
    /// The statement of a batch whose answer the cache may serve or keep in the
    /// session's state: exactly one Query, or one execution in the extended protocol
    /// ([Parse] Bind [Describe portal] Execute Sync, all rows).
    fn cache_candidate(&self, batch: &[u8], io: &[NodeIo]) -> Option<Candidate> {
        self.cfg.cache.as_ref()?;
        if self.router.write_in_tx || io[PRIMARY].tx == b'E' || self.router.open.is_some() {
            return None;
        }
        let c = match batch.first() {
            Some(b'Q') => {
                let h = scan_header(batch).ok().flatten()?;
                (h.total_len() == batch.len()).then(|| Candidate {
                    text: cstr(&batch[5..]).0.to_vec(),
                    key_tail: Vec::new(),
                    parse_complete: false,
                    extended: false,
                })?
            }
            _ => self.extended_candidate(batch)?,
        };
        let text = std::str::from_utf8(&c.text).ok()?;
        let temps = &self.router.temp_tables;
        (!sql::mentions_any(text, temps.iter().map(String::as_str))).then_some(c)
    }

    fn extended_candidate(&self, batch: &[u8]) -> Option<Candidate> {
        let mut msgs = Messages(batch).peekable();
        let mut key_tail = vec![b'X'];
        let mut text = None;
        let mut parse_complete = false;
        if let Some((b'P', body)) = msgs.peek().copied() {
            msgs.next();
            let (name, rest) = cstr(body);
            text = Some((name.to_vec(), cstr(rest).0.to_vec()));
            key_tail.extend_from_slice(rest);
            parse_complete = true;
        }
        let (b'B', bind) = msgs.next()? else {
            return None;
        };
        let (portal, rest) = cstr(bind);
        let (stmt, params) = cstr(rest);
        let text = match text {
            Some((name, t)) if name == stmt => t,
            Some(_) => return None,
            None => {
                if !self.router.cache_prepared.contains(stmt) {
                    return None;
                }
                let st = self.router.statements.get(stmt)?;
                let (_, rest) = cstr(st.parse.get(5..)?);
                key_tail.extend_from_slice(rest);
                cstr(rest).0.to_vec()
            }
        };
        key_tail.push(0);
        key_tail.extend_from_slice(params);
        let mut next = msgs.next()?;
        if next.0 == b'D' {
            if next.1.first() != Some(&b'P') || cstr(&next.1[1..]).0 != portal {
                return None;
            }
            key_tail.push(b'D');
            next = msgs.next()?;
        }
        let (b'E', exec) = next else {
            return None;
        };
        let (exec_portal, max_rows) = cstr(exec);
        if exec_portal != portal || max_rows != [0, 0, 0, 0] {
            return None;
        }
        matches!(msgs.next(), Some((b'S', _)))
            .then_some(())
            .filter(|_| msgs.next().is_none())?;
        Some(Candidate {
            text,
            key_tail,
            parse_complete,
            extended: true,
        })
    }

    fn cache_key(&self, c: &Candidate, out: &mut Vec<u8>) {
        out.clear();
        if let Some(cache) = &self.cfg.cache {
            for part in [
                cache.user.as_bytes(),
                self.cfg.database.as_bytes(),
                self.router.search_path.as_bytes(),
                &c.key_tail,
            ] {
                out.extend_from_slice(part);
                out.push(0);
            }
        }
        out.extend_from_slice(&c.text);
    }

    /// The answer (without ReadyForQuery) to a batch the cache has, counting the hit;
    /// None to send the batch on.
    pub(super) fn cached_answer(&mut self, batch: &[u8], io: &[NodeIo]) -> Option<Vec<u8>> {
        let c = self.cache_candidate(batch, io)?;
        let mut key = std::mem::take(&mut self.router.cache_key);
        self.cache_key(&c, &mut key);
        let cache = self.cfg.cache.as_ref()?;
        let mut stored = Vec::new();
        let hit = cache.store.lookup(&key, cache.expire, &mut stored);
        self.router.cache_key = key;
        if !hit {
            return None;
        }
        cache.store.counters.count_select(true);
        // Logged with log_per_node_statement, as Pgpool-II does (scripts grep it).
        if self.router.settings.log_per_node_statement {
            log::info!(
                "fetch from memory cache: query result fetched from cache. statement: {}",
                String::from_utf8_lossy(&c.text)
            );
        }
        if !c.extended {
            return Some(stored);
        }
        // The statement and portal the batch creates are the session's now, on no node
        // yet (a later Bind parses it where it runs).
        let _ = self.route_batch(batch, io);
        let mut answer = Vec::with_capacity(stored.len() + 10);
        if c.parse_complete {
            answer.extend_from_slice(&[b'1', 0, 0, 0, 4]);
        }
        answer.extend_from_slice(&[b'2', 0, 0, 0, 4]);
        answer.extend_from_slice(&stored);
        Some(answer)
    }

    /// For a batch about to be routed (which then goes to the primary): the capture of
    /// its answer when the result may be stored, counting the cacheable SELECT that
    /// missed.
    pub(super) fn cache_prepare(
        &mut self,
        batch: &[u8],
        io: &[NodeIo],
    ) -> Option<Box<CacheCapture>> {
        if io[PRIMARY].tx != b'I' || io[PRIMARY].joined_tx {
            return None;
        }
        let candidate = self.cache_candidate(batch, io)?;
        let text = std::str::from_utf8(&candidate.text).ok()?;
        // The classifier's parse, kept per text: a repeated miss parses nothing.
        let rules = self.router.rules(self.cfg.rules);
        let facts = self.cache.classify(text, rules).cache.as_deref()?;
        let c = self.cfg.cache.as_ref()?;
        let catalog_says_no = || {
            facts.qualified_tables.iter().any(|t| {
                is_system(t)
                    || listed(c.unsafe_tables, t)
                    || self.catalog.is_unlogged(bare(t))
                    || (self.catalog.is_view(bare(t)) && !listed(c.safe_tables, t))
            }) || facts
                .functions
                .iter()
                .any(|f| !self.catalog.is_immutable(f))
        };
        if !facts.forced && catalog_says_no() {
            return None;
        }
        let stamp = c
            .store
            .counters
            .stamp(facts.tables.iter().map(String::as_str))?;
        c.store.counters.count_select(false);
        let mut key = Vec::new();
        self.cache_key(&candidate, &mut key);
        Some(Box::new(CacheCapture {
            key,
            stamp,
            answer: Vec::new(),
            ok: true,
        }))
    }

    /// `PGPOOL SET CACHE DELETE 'query'` (Pgpool-II 4.6): forgets what this session's
    /// user, database and search_path would be answered for that exact query text.
    /// False when `q` (a Query's text) is not that command.
    pub(super) fn cache_delete_command(&self, q: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(quoted) = cache_delete_argument(q) else {
            return false;
        };
        let Some(text) = sql::literal::unquote(quoted) else {
            build::error_response(
                out,
                "ERROR",
                "42601",
                "syntax error in PGPOOL SET CACHE DELETE: the query must be a quoted string",
            );
            return true;
        };
        let found = self.cfg.cache.as_ref().is_some_and(|cache| {
            let candidate = Candidate {
                text: text.as_bytes().to_vec(),
                key_tail: Vec::new(),
                parse_complete: false,
                extended: false,
            };
            let mut key = Vec::new();
            self.cache_key(&candidate, &mut key);
            cache.store.forget(&key)
        });
        let message = if found {
            format!("query cache deleted. query: \"{text}\"")
        } else {
            format!("query cache does not exist for query: \"{text}\"")
        };
        build::notice_or_error(out, b'N', "NOTICE", "00000", &message);
        build::command_complete(out, "SET");
        true
    }

    /// Largest answer stored.
    pub(super) fn cache_limit(&self) -> usize {
        self.cfg
            .cache
            .as_ref()
            .map_or(0, |c| c.maxcache.min(c.store.room()))
    }

    /// A statement of the batch being routed writes (or changes) `text`'s relations:
    /// they are invalidated once it committed.
    pub(super) fn note_cache_write(&mut self, text: &str) {
        if !self.cfg.cache.as_ref().is_some_and(|c| c.auto_invalidation) {
            return;
        }
        let c = self.cache.classify(text, self.router.rules(self.cfg.rules));
        if c.tables.is_empty() {
            // A function that writes, or a statement whose relations are unknown.
            self.router.batch_invalidate_all |= c.is_write;
        }
        for t in &c.tables {
            let t = bare(t);
            if !self.router.batch_invalidates.iter().any(|x| x == t) {
                self.router.batch_invalidates.push(t.to_string());
            }
        }
    }

    /// What the batch just queued wrote is invalidated when the primary's answer to it
    /// (the last batch it was sent) says it committed.
    pub(super) fn attach_invalidations(&mut self, io: &mut [NodeIo]) {
        let r = &mut *self.router;
        if r.batch_invalidates.is_empty() && !r.batch_invalidate_all {
            return;
        }
        match io[PRIMARY].queue.back_mut() {
            Some(e) => {
                e.invalidates.append(&mut r.batch_invalidates);
                e.invalidate_all |= std::mem::take(&mut r.batch_invalidate_all);
            }
            None => {
                r.tx_invalidates.append(&mut r.batch_invalidates);
                r.tx_invalidate_all |= std::mem::take(&mut r.batch_invalidate_all);
            }
        }
    }

    /// The session's SET search_path is part of the keys (the same text may read other
    /// tables under another one).
    /// DISCARD and DEALLOCATE drop prepared statements on the server: a later Bind of
    /// one is not answered from the cache until it is parsed again.
    pub(super) fn note_cache_session(&mut self, text: &str, kind: StatementKind) {
        if self.cfg.cache.is_none() {
            return;
        }
        match kind {
            StatementKind::Set if sql::mentions_any(text, std::iter::once("search_path")) => {
                self.router.search_path = text.to_string();
            }
            StatementKind::Discard | StatementKind::Deallocate => {
                self.router.cache_prepared.clear();
            }
            _ => {}
        }
    }

    /// The primary answered a batch with ReadyForQuery `status`: its answer is stored,
    /// and what it wrote (with what the transaction wrote before) is invalidated once
    /// nothing is left uncommitted.
    pub(super) fn cache_batch_done(&mut self, e: &mut Expect, status: u8) {
        let Some(c) = self.cfg.cache.as_ref() else {
            return;
        };
        let r = &mut *self.router;
        r.tx_invalidates.append(&mut e.invalidates);
        r.tx_invalidate_all |= e.invalidate_all;
        if status == b'I' && (r.tx_invalidate_all || !r.tx_invalidates.is_empty()) {
            let mut tables: Vec<String> = Vec::new();
            for t in r.tx_invalidates.drain(..) {
                tables.extend(self.catalog.relatives(&t));
                tables.push(t);
            }
            c.store
                .counters
                .invalidate(tables.iter().map(String::as_str));
            if std::mem::take(&mut r.tx_invalidate_all) {
                c.store.counters.invalidate_all();
            }
        }
        if let Some(cap) = e.cache.take() {
            if cap.ok && status == b'I' {
                c.store.keep(&cap.key, &cap.stamp, &cap.answer, c.expire);
            }
        }
    }
}
