//! The session-level policy of the load-balancing relay: whether a read may go to the
//! load-balance node (transactions, writes, delay, serializable), which node that is, the
//! snapshot-isolation steps, the catalog and timestamp queries pgpool sends itself, native
//! replication's preparation of writes, SQL-level prepared statements, and the route of one
//! statement text.
use super::*;
use config::LoadBalanceOnWrite;

impl Relay<'_> {
    pub(super) fn lb_allowed(&self, io: &[NodeIo], lb: usize) -> bool {
        let r = &*self.router;
        if r.serializable_tx {
            return false;
        }
        if !self
            .shm
            .backend(self.cfg.node_ids[lb])
            .within_delay(self.cfg.delay_threshold)
        {
            return false;
        }
        let in_tx = io[PRIMARY].tx != b'I';
        let wrote_block = match self.cfg.disable_load_balance_on_write {
            // Decided per statement by the tables it reads.
            LoadBalanceOnWrite::Off | LoadBalanceOnWrite::DmlAdaptive => false,
            LoadBalanceOnWrite::Always => r.wrote,
            LoadBalanceOnWrite::TransTransaction => r.write_in_tx || r.wrote_in_any_tx,
            LoadBalanceOnWrite::Transaction => r.write_in_tx,
        };
        if wrote_block {
            return false;
        }
        // A write still in flight on the primary (pipelined): the read would not see it.
        if io[PRIMARY].queue.iter().any(|e| e.writes) {
            return false;
        }
        // In a transaction, a statement still in flight on the primary may fail and abort
        // the transaction there; the read must then fail too (25P02), as on one server.
        let tx_under_way = in_tx || io[PRIMARY].joined_tx;
        if tx_under_way && io[PRIMARY].queue.iter().any(|e| e.may_abort) {
            return false;
        }
        // Inside a transaction the standby must be in it too (BEGIN went to all); its
        // answer to the BEGIN may not have been read yet.
        !in_tx
            || io[lb].tx == io[PRIMARY].tx
            || (io[lb].joined_tx && io[lb].tx == b'I' && io[PRIMARY].tx == b'T')
    }

    /// The load-balance connection for the next batch: the session's, or with
    /// statement_level_load_balance a new weighted choice among the usable connections
    /// (the primary's included) while no transaction is open (inside one, its nodes stay).
    pub(super) fn pick_lb(&mut self, io: &[NodeIo]) -> usize {
        let w = &self.cfg.statement_weights;
        if io.iter().any(|n| n.tx != b'I') {
            return self.router.lb;
        }
        if w.is_empty() {
            return self.least_delayed_if_behind();
        }
        let usable = |k: usize| {
            w[k] > 0.0
                && self
                    .shm
                    .backend(self.cfg.node_ids[k])
                    .usable_for_reads(self.cfg.delay_threshold)
        };
        let candidates: Vec<(usize, f64)> = (0..w.len())
            .filter(|&k| usable(k))
            .map(|k| (k, w[k]))
            .collect();
        let chosen = crate::child::weighted_choice(&candidates);
        if let Some(k) = chosen {
            crate::child::log_lb_choice(self.cfg.node_ids[k]);
        }
        match chosen {
            Some(PRIMARY) => PRIMARY,
            Some(k) => {
                self.router.lb = k;
                k
            }
            None => self.router.lb,
        }
    }

    pub(super) fn note_snapshot_kind(&mut self, kind: StatementKind) {
        use sql::TransactionKind as T;
        match kind {
            StatementKind::Transaction(T::Commit | T::PrepareTransaction) => {
                self.router.batch_commits = true
            }
            StatementKind::Transaction(_)
            | StatementKind::Set
            | StatementKind::Show
            | StatementKind::Empty
            | StatementKind::ParseError => {}
            _ => self.router.batch_takes_snapshot = true,
        }
    }

    /// Snapshot isolation mode: before a batch goes to every node, wait for the step it
    /// takes (a transaction's snapshot, or a commit) to be safe beside other children's.
    pub(super) fn order_snapshot_step(&mut self, io: &[NodeIo]) {
        let Some(me) = self.snapshot_child else {
            return;
        };
        let r = &mut *self.router;
        if io[PRIMARY].tx == b'I' {
            // Between transactions: the next one takes a snapshot of its own.
            r.snapshot_taken = false;
        }
        let in_tx = io[PRIMARY].tx != b'I' || r.batch_starts_tx;
        let step = if r.batch_commits || (!in_tx && r.batch_takes_snapshot) {
            Some(shmem::SnapshotStep::Commit)
        } else if in_tx && r.batch_takes_snapshot && !r.snapshot_taken {
            r.snapshot_taken = true;
            Some(shmem::SnapshotStep::Snapshot)
        } else {
            None
        };
        if let Some(step) = step {
            self.shm.snapshot_step_begin(me, step);
            r.snapshot_step_held = true;
        }
    }

    /// The marked step is over once every node answered everything sent so far.
    pub(super) fn end_snapshot_step(&mut self, io: &[NodeIo], answered: bool) {
        if let Some(me) = self.snapshot_child {
            if self.router.snapshot_step_held && answered && io.iter().all(|n| n.queue.is_empty()) {
                self.shm.snapshot_step_done(me);
                self.router.snapshot_step_held = false;
            }
        }
    }

    pub(super) fn delay(&self, k: usize) -> u64 {
        self.shm
            .backend(self.cfg.node_ids[k])
            .replication_delay
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// prefer_lower_delay_standby, as Pgpool-II: the session's load-balance node is
    /// behind delay_threshold, so the least delayed standby with a weight takes its reads
    /// (a random one, by weight, among equally delayed ones).
    pub(super) fn least_delayed_if_behind(&mut self) -> usize {
        let lb = self.router.lb;
        let w = &self.cfg.lower_delay_weights;
        let t = self.cfg.delay_threshold;
        if w.is_empty() || t == 0 || lb == PRIMARY || self.delay(lb) <= t {
            return lb;
        }
        let usable: Vec<usize> = (1..w.len())
            .filter(|&k| w[k] > 0.0 && self.shm.backend(self.cfg.node_ids[k]).status().is_alive())
            .collect();
        let Some(lowest) = usable.iter().map(|&k| self.delay(k)).min() else {
            return lb;
        };
        let candidates: Vec<(usize, f64)> = usable
            .into_iter()
            .filter(|&k| self.delay(k) == lowest)
            .map(|k| (k, w[k]))
            .collect();
        match crate::child::weighted_choice(&candidates) {
            Some(k) => {
                crate::child::log_lb_choice(self.cfg.node_ids[k]);
                self.router.lb = k;
                k
            }
            None => lb,
        }
    }

    pub(super) fn note_write(&mut self, is_write: bool, in_tx: bool) {
        if is_write {
            self.router.wrote = true;
            self.router.batch_writes = true;
            if in_tx {
                self.router.write_in_tx = true;
                self.router.wrote_in_any_tx = true;
            }
        }
    }

    pub(super) fn dml_adaptive(&self) -> bool {
        self.cfg.disable_load_balance_on_write == LoadBalanceOnWrite::DmlAdaptive
    }

    /// Must the catalog facts be (re)loaded before the next batch is routed? Not while
    /// the primary's transaction is aborted: the query would fail there.
    pub(super) fn catalog_stale(&self, io: &[NodeIo]) -> bool {
        let needed = !self.cfg.fixed
            && (self.cfg.rules.functions_need_catalog()
                || self.router.settings.check_unlogged_table
                || self.cfg.main_first
                || self.cfg.cache.is_some());
        needed
            && !self.router.catalog_wait
            && io[self.catalog_conn()].tx != b'E'
            && !self
                .catalog
                .is_current(self.cfg.database, self.catalog_generation())
    }

    pub(super) fn catalog_generation(&self) -> u64 {
        self.shm
            .cluster()
            .catalog_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The connection the catalog query goes to: the primary, or with
    /// relcache_query_target = load_balance_node the load-balance connection. The query
    /// cache's relation facts and native replication's are always the primary's: a
    /// standby behind it could miss a new table, and its cached results would then
    /// escape invalidation.
    pub(super) fn catalog_conn(&self) -> usize {
        if self.cfg.catalog_from_lb && self.cfg.cache.is_none() && !self.cfg.main_first {
            self.router.lb
        } else {
            PRIMARY
        }
    }

    /// Sends the catalog query to its connection (batches wait for its answer), unless
    /// another child shared its answer (enable_shared_relcache).
    pub(super) fn start_catalog_load(&mut self, io: &mut [NodeIo]) {
        let generation = self.catalog_generation();
        let mut query = Vec::new();
        self.catalog.start_load(
            self.cfg.database,
            generation,
            self.cfg.main_first,
            self.cfg.cache.is_some(),
            &mut query,
        );
        if let Some((store, expire)) = self.cfg.relcache {
            let key = self.relcache_key(generation);
            let mut rows = Vec::new();
            if store.lookup(&key, expire, &mut rows) {
                self.catalog.replay(&rows);
                self.catalog.finish_load(true);
                self.router.catalog_arrived = true;
                return;
            }
        }
        let k = self.catalog_conn();
        io[k].out.extend_from_slice(&query);
        io[k].queue.push_back(Expect {
            synced: true,
            capture: Capture::Catalog,
            ..Expect::default()
        });
        self.router.catalog_wait = true;
        self.router.catalog_failed = false;
    }

    /// The shared relation cache's key of a catalog load: the query for the database
    /// at a generation of the catalog (a change of it makes every older entry unreachable).
    fn relcache_key(&self, generation: u64) -> Vec<u8> {
        let query = Catalog::load_query(self.cfg.main_first, self.cfg.cache.is_some());
        format!("relcache\0{}\0{generation}\0{query}", self.cfg.database).into_bytes()
    }

    /// The catalog query's answer arrived: shared with the other children
    /// (enable_shared_relcache) when it came without an error.
    pub(super) fn catalog_loaded(&mut self) {
        let ok = !self.router.catalog_failed;
        self.catalog.finish_load(ok);
        self.router.catalog_wait = false;
        self.router.catalog_arrived = true;
        let Some((store, expire)) = self.cfg.relcache.filter(|_| ok) else {
            return;
        };
        if let Some(stamp) = store.counters.stamp(std::iter::empty()) {
            log::debug!("committing relation cache to cache storage");
            let key = self.relcache_key(self.catalog.generation());
            store.keep(&key, &stamp, self.catalog.rows(), expire);
        }
    }

    pub(super) fn replication_needs(&mut self) -> ReplicationNeeds<'_> {
        ReplicationNeeds {
            cache: self.cache,
            rules: self.router.rules(self.cfg.rules),
            catalog: self.catalog,
            insert_lock: self.cfg.insert_lock,
        }
    }

    /// Native replication: must the main node's timestamp be asked for before this batch
    /// (a Query, or the statements an extended batch binds) can go out?
    pub(super) fn timestamp_missing(&mut self, batch: &[u8]) -> bool {
        if !self.cfg.main_first
            || self.cfg.fixed
            || self.router.now.is_some()
            || self.router.now_failed
        {
            return false;
        }
        let mut texts: Vec<String> = Vec::new();
        let mut parsed: Vec<(&[u8], &[u8])> = Vec::new();
        for (tag, body) in Messages(batch) {
            match tag {
                b'Q' => texts.push(String::from_utf8_lossy(cstr(body).0).into_owned()),
                b'P' => parsed.push((cstr(body).0, cstr(cstr(body).1).0)),
                b'B' => {
                    let stmt = cstr(cstr(body).1).0;
                    let text = match parsed.iter().rev().find(|(n, _)| *n == stmt) {
                        Some((_, t)) => Some(String::from_utf8_lossy(t).into_owned()),
                        None => self
                            .router
                            .statements
                            .get(stmt)
                            .map(|st| statement_text(&st.parse).to_string()),
                    };
                    texts.extend(text);
                }
                _ => {}
            }
        }
        let mut needs = self.replication_needs();
        texts.iter().any(|t| needs.needs_timestamp(t))
    }

    /// Sends the timestamp query to the main node; batches wait for its answer.
    pub(super) fn start_timestamp_fetch(&mut self, io: &mut [NodeIo]) {
        build::query(&mut io[PRIMARY].out, replicate::NOW_QUERY);
        io[PRIMARY].queue.push_back(Expect {
            synced: true,
            capture: Capture::Now,
            ..Expect::default()
        });
        self.router.now_wait = true;
    }

    /// A replicated batch as every node must get it (None: as the client sent it).
    pub(super) fn prepare_replicated(&mut self, batch: &[u8], in_tx: bool) -> Option<Replicated> {
        if batch.first() == Some(&b'Q') {
            let text = std::str::from_utf8(cstr(batch.get(5..).unwrap_or(&[])).0).unwrap_or("");
            let now = self.router.now.clone();
            return self
                .replication_needs()
                .prepare_query(text, now.as_deref(), in_tx);
        }
        let statements = &self.router.statements;
        let parse_of = |name: &[u8]| {
            statements
                .get(name)
                .map(|st| st.parse[5.min(st.parse.len())..].to_vec())
        };
        let mut needs = ReplicationNeeds {
            cache: self.cache,
            rules: self.router.rules(self.cfg.rules),
            catalog: self.catalog,
            insert_lock: self.cfg.insert_lock,
        };
        let now = self.router.now.as_deref();
        needs.prepare_extended(batch, &parse_of, now, in_tx)
    }

    /// Might the batch run a COPY (of a Query, a Parse, or a statement it binds)?
    pub(super) fn batch_mentions_copy(&self, batch: &[u8]) -> bool {
        Messages(batch).any(|(tag, body)| match tag {
            b'Q' => replicate::mentions_copy(body),
            b'P' => replicate::mentions_copy(cstr(cstr(body).1).0),
            b'B' => self
                .router
                .statements
                .get(cstr(cstr(body).1).0)
                .is_some_and(|st| replicate::mentions_copy(&st.parse)),
            _ => false,
        })
    }

    /// SQL-level PREPARE / EXECUTE / DEALLOCATE, as Pgpool-II: a PREPARE lives where its
    /// batch runs (noted in `prepared_here`); EXECUTE and DEALLOCATE go there, and
    /// EXECUTE writes (and counts) as the prepared statement does. An unknown name is left
    /// to the usual route (it errs on the primary). Without `prepared_here` the statement
    /// is only parsed: nothing changes.
    pub(super) fn sql_prepared_use(
        &mut self,
        r: &StatementRoute,
        prepared_here: Option<&mut Vec<(String, PreparedSql)>>,
    ) -> PreparedUse {
        let prepared = &mut self.router.sql_prepared;
        let runs = prepared_here.is_some();
        let mut u = PreparedUse {
            pin: None,
            is_write: r.is_write,
            counts_as: r.kind,
        };
        match (r.kind, &r.prepared_name) {
            (StatementKind::Prepare, Some(name)) => {
                if let Some(here) = prepared_here {
                    let p = PreparedSql {
                        target: Target::Primary,
                        is_write: r.is_write,
                        kind: r.prepared_kind.unwrap_or(StatementKind::Other),
                    };
                    here.push((name.clone(), p));
                }
            }
            (StatementKind::Execute | StatementKind::Deallocate, Some(name)) => {
                if let Some(p) = prepared.get(name).copied() {
                    u.pin = Some(p.target);
                    u.is_write = p.is_write && r.kind == StatementKind::Execute;
                    if r.kind == StatementKind::Execute {
                        u.counts_as = p.kind;
                    }
                }
                if r.kind == StatementKind::Deallocate && runs {
                    prepared.remove(name);
                }
            }
            (StatementKind::Deallocate | StatementKind::Discard, None) if runs => prepared.clear(),
            _ => {}
        }
        u
    }

    /// DISCARD ALL, DEALLOCATE ALL and DEALLOCATE name drop protocol-level statements
    /// too (one namespace in PostgreSQL): forgotten here, a later Bind of one goes to
    /// the primary and fails there as it would on one server, instead of having its
    /// Parse replayed on a node where it was never parsed.
    pub(super) fn forget_statements(
        &mut self,
        text: &str,
        kind: StatementKind,
        name: Option<&str>,
    ) {
        let statements = &mut self.router.statements;
        match (kind, name) {
            (StatementKind::Deallocate, Some(n)) => {
                statements.remove(n.as_bytes());
            }
            (StatementKind::Deallocate, None) => statements.clear(),
            (StatementKind::Discard, _) if sql::mentions_any(text, std::iter::once("all")) => {
                statements.clear()
            }
            _ => {}
        }
    }

    /// Where one statement text may run, with what the session and the catalog know;
    /// `execute`: it runs now (Query, Bind), so what it changes is recorded.
    pub(super) fn statement_route(
        &mut self,
        text: &str,
        in_tx: bool,
        execute: bool,
    ) -> StatementRoute {
        if self.cfg.fixed {
            return StatementRoute::counted(sql::leading_kind(text.as_bytes()));
        }
        let dml_adaptive = self.dml_adaptive();
        let Relay {
            cfg,
            cache,
            catalog,
            router,
            shm,
            ..
        } = self;
        // Each check applies only when the text names something it looks for.
        let unlogged = router.settings.check_unlogged_table && catalog.mentions_unlogged(text);
        let temps = cfg.check_temp_table
            && sql::mentions_any(text, router.temp_tables.iter().map(String::as_str));
        let adaptive = dml_adaptive && in_tx && router.written.mentioned_in(text);
        let rules = router.rules(cfg.rules);
        if !unlogged && !temps && !adaptive && sql::plain_select(text, rules) {
            // A lone read without functions: no parse needed (texts with literal values
            // never repeat, so the cache would not help).
            return StatementRoute::plain_select();
        }
        let c = cache.classify(text, rules);
        let (mut route, is_write) = c.resolve(|f| catalog.is_volatile(f));
        if route == Route::LoadBalance {
            let touches = |f: &dyn Fn(&str) -> bool| c.tables.iter().any(|t| f(bare(t)));
            if (temps && touches(&|t| router.temp_tables.contains(t)))
                || (unlogged && touches(&|t| catalog.is_unlogged(t)))
                || (adaptive && router.written.touched_by(c))
            {
                route = Route::Primary;
            }
        }
        // SQL-level PREPARE / EXECUTE / DEALLOCATE through the extended protocol too: each
        // Bind looks again (the session's prepared names change).
        let has_effects = !c.temp_created.is_empty()
            || !c.dropped.is_empty()
            || c.discards_temp
            || c.changes_catalog_facts
            || (dml_adaptive && is_write)
            || matches!(
                c.kind,
                StatementKind::Prepare
                    | StatementKind::Execute
                    | StatementKind::Deallocate
                    | StatementKind::Discard
            );
        if execute && has_effects {
            for t in &c.temp_created {
                router.temp_tables.insert(t.clone());
            }
            for t in &c.dropped {
                router.temp_tables.remove(t);
            }
            if c.discards_temp {
                router.temp_tables.clear();
            }
            if c.changes_catalog_facts {
                // Stale for everyone now, and again when it commits (others may have
                // reloaded in between).
                shm.cluster()
                    .catalog_generation
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                router.ddl_in_tx = true;
            }
            if dml_adaptive && is_write && (in_tx || c.starts_transaction) {
                let rules = cfg.rules;
                router.written.note_write(
                    c,
                    |f| {
                        rules
                            .listed_function_is_write(f)
                            .unwrap_or_else(|| catalog.is_volatile(f))
                    },
                    cfg.dml_relations,
                );
            }
        }
        StatementRoute {
            route,
            is_write,
            kind: c.kind,
            has_effects,
            serializable_begin: c.starts_transaction && c.serializable,
            starts_tx: c.starts_transaction,
            prepared_name: c.prepared_name.clone(),
            prepared_kind: c.prepared_kind,
            cursor_name: c.cursor_name.clone(),
            session_statements: c.session_statements.clone(),
        }
    }
}

impl Router {
    /// The rules the session classifies by: its child's, or its own once PGPOOL SET
    /// allow_sql_comments made them differ.
    pub(super) fn rules<'r>(&'r self, child: &'r sql::Rules) -> &'r sql::Rules {
        self.comment_rules.as_ref().unwrap_or(child)
    }

    /// Takes in the session's settings after a PGPOOL SET or RESET.
    pub(super) fn apply_settings(&mut self, s: SessionSettings, child: &sql::Rules) {
        self.settings = s;
        if s.allow_sql_comments == child.allows_sql_comments() {
            self.comment_rules = None;
        } else if self.comment_rules.is_none() {
            // (new rules are a new generation: the classifier cache starts over)
            self.comment_rules = Some(child.clone().with_allow_sql_comments(s.allow_sql_comments));
        }
    }
}
