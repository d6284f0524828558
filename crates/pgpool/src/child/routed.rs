//! The load-balancing relay: a session bound to the primary and one load-balance
//! node. Client messages are grouped into batches (a simple Query, or extended-protocol
//! messages up to Sync/Flush), each batch is routed as a whole, from the classification
//! of its statements, to the primary, the load-balance node or both, and the answers
//! are passed back in the order the client sent the batches. A named statement used on
//! a node where it was not parsed is parsed there first (and the ParseComplete hidden),
//! so prepared statements follow their executions wherever these go. Statements sent to
//! both nodes are answered to the client from the primary; the other node's answers are
//! read and dropped.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags};
use protocol::message::parse_error_fields;
use protocol::{build, scan_header};
use rustc_hash::FxHashMap;
use sql::{ClassifierCache, Route, Rules, StatementKind};

use crate::backend::BackendConn;
use crate::child::catalog::{bare, Catalog};
use crate::child::dml_adaptive::{Relationships, WrittenObjects};
use crate::child::local_ext;
use crate::child::relay::{
    aborted_answer, ends_failed_transaction, idle_timeout, prepare_poll, read_some, signalled_end,
    LocalAnswer, LocalCommands, RelayEnd, READABLE,
};
use crate::child::replicate::{self, HiddenAnswers, Replicated, ReplicationNeeds};
use crate::net::Stream;
use crate::sys::Waker;

/// Index of the primary among the session's connections (the others are load-balance
/// candidates: one, or with statement_level_load_balance every usable node).
pub const PRIMARY: usize = 0;

const READ_CHUNK: usize = 64 * 1024;

/// Where a batch goes (connection indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Primary,
    /// The load-balance connection with this index (never the primary's).
    Lb(usize),
    /// Every connection of the session.
    All,
}

impl Target {
    fn includes(self, k: usize) -> bool {
        match self {
            Target::Primary => k == PRIMARY,
            Target::Lb(j) => k == j,
            Target::All => true,
        }
    }

    /// The connection whose answers the client sees.
    fn answering(self) -> usize {
        match self {
            Target::Lb(j) => j,
            _ => PRIMARY,
        }
    }
}

/// What a node owes for one batch it was sent.
#[derive(Debug, Default)]
struct Expect {
    /// Answers go to the client (else they are read and dropped).
    forward: bool,
    /// Answers to hide (of messages pgpool added).
    hide: HiddenAnswers,
    /// The batch ends with a ReadyForQuery (Query, Sync, FunctionCall); a Flush-ended
    /// batch does not, and stays at the head until a later Sync's ReadyForQuery.
    synced: bool,
    /// pgpool's own query whose answer it reads.
    capture: Capture,
    /// NoticeResponses (notice_per_node_statement) the client sees before the answers.
    notices: Vec<u8>,
    /// The batch writes (a read must not overtake it on another node).
    writes: bool,
}

/// pgpool's own queries on the main node, read by the relay.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Capture {
    #[default]
    None,
    /// Its rows fill the child's [`Catalog`].
    Catalog,
    /// Native replication: the timestamp time functions are replaced by.
    Now,
}

/// Native replication: where a write sent to every node stands. Nothing else is sent
/// until it is done, so that each node sees the session's writes in the same order and
/// locks are taken on the main node first and held there until every node has them.
enum Replicating {
    /// The main node has the batch; the others get it once it has answered.
    Main {
        bytes: Vec<u8>,
        starts_tx: bool,
        commit_after: bool,
    },
    /// The other nodes have it too.
    Others { commit_after: bool },
    /// pgpool's COMMIT of the transaction it wrapped the write in, on every node.
    Commit,
}

/// Per-backend side of the relay.
struct NodeIo {
    out: Vec<u8>,
    out_from: usize,
    inbuf: Vec<u8>,
    in_from: usize,
    in_to: usize,
    /// Body bytes of the message being passed (or dropped) still to come.
    remaining: usize,
    remaining_forward: bool,
    queue: VecDeque<Expect>,
    tx: u8,
    /// Replayed Parses whose ParseComplete the batch being dispatched must hide.
    batch_hide: u32,
    /// Sent a BEGIN whose answer may still be on its way, or inside a transaction.
    joined_tx: bool,
}

impl NodeIo {
    fn new() -> Self {
        NodeIo {
            out: Vec::with_capacity(8192),
            out_from: 0,
            inbuf: vec![0; READ_CHUNK],
            in_from: 0,
            in_to: 0,
            remaining: 0,
            remaining_forward: false,
            queue: VecDeque::new(),
            tx: b'I',
            batch_hide: 0,
            joined_tx: false,
        }
    }

    fn has_output(&self) -> bool {
        self.out_from < self.out.len()
    }
}

/// A statement prepared by the client (named or the unnamed one).
struct Statement {
    /// The Parse message as the client sent it, to replay on another node.
    parse: Vec<u8>,
    route: Route,
    is_write: bool,
    kind: StatementKind,
    /// Executing it changes what routing knows (temp tables, DDL, dml_adaptive writes):
    /// each Bind looks at its classification again.
    has_effects: bool,
    /// Connections (bit per index) where it is prepared.
    on: u128,
}

impl Statement {
    fn is_on(&self, k: usize) -> bool {
        self.on & (1 << k) != 0
    }

    fn set_on(&mut self, k: usize, on: bool) {
        if on {
            self.on |= 1 << k;
        } else {
            self.on &= !(1 << k);
        }
    }
}

/// Settings of the load-balancing session.
pub struct RoutedConfig<'a> {
    pub rules: &'a Rules,
    pub disable_load_balance_on_write: &'a str,
    pub dml_relations: &'a Relationships,
    pub database: &'a str,
    pub check_temp_table: bool,
    pub check_unlogged_table: bool,
    pub log_statement: bool,
    pub log_per_node_statement: bool,
    pub notice_per_node_statement: bool,
    /// Native replication: writes go to every connection of the session.
    pub replicate: bool,
    /// Native replication mode: writes go to the main node first, then to the others
    /// (insert_lock and time functions made constant on the way).
    pub main_first: bool,
    pub insert_lock: bool,
    pub client_idle_limit: u64,
    /// Node id of each connection; index 0 is the primary.
    pub node_ids: Vec<usize>,
    /// statement_level_load_balance: backend_weight of each connection, to pick the
    /// load-balance connection again for each statement outside transactions (empty: the
    /// session keeps connection 1).
    pub statement_weights: Vec<f64>,
    /// delay_threshold in bytes (0 = off).
    pub delay_threshold: u64,
    /// prefer_lower_delay_standby: backend_weight of each connection; when the session's
    /// load-balance node falls behind, reads outside transactions move to the least
    /// delayed standby among them (empty: they go to the primary).
    pub lower_delay_weights: Vec<f64>,
}

/// Per-session routing state.
pub struct Router {
    statements: FxHashMap<Vec<u8>, Statement>,
    /// Index of the current load-balance connection.
    lb: usize,
    /// Portal name → node pair index it lives on (both: PRIMARY).
    portals: FxHashMap<Vec<u8>, Target>,
    /// SQL-level prepared statement (PREPARE name) → where it was prepared.
    sql_prepared: FxHashMap<String, (Target, bool)>,
    /// A write was sent in the current transaction.
    write_in_tx: bool,
    /// A write was sent in some explicit transaction of this session.
    wrote_in_any_tx: bool,
    /// A write was sent at all in this session.
    wrote: bool,
    /// The transaction asked for SERIALIZABLE: everything stays on the primary.
    serializable_tx: bool,
    /// An extended batch that was flushed but not yet synced keeps its target.
    open: Option<Target>,
    /// `open` ended with a Flush (not with an overflowing message).
    open_flushed: bool,
    /// Node of the last batch (COPY data follows it).
    last: Target,
    pub client_remaining: usize,
    remaining_target: Target,
    /// Temporary tables this session created (check_temp_table), bare names.
    temp_tables: HashSet<String>,
    /// dml_adaptive: what the current transaction wrote.
    written: WrittenObjects,
    /// DDL ran in the current transaction: other children's catalog facts go stale when
    /// it ends.
    ddl_in_tx: bool,
    /// Batches wait for the answer to pgpool's catalog query.
    catalog_wait: bool,
    catalog_failed: bool,
    /// The catalog's answer was just read: held batches go out without waiting for more.
    catalog_arrived: bool,
    /// The batch being routed contains a BEGIN.
    batch_starts_tx: bool,
    /// The batch being routed writes.
    batch_writes: bool,
    /// Session-state statements (SET, BEGIN, COMMIT …) of the batch being routed, for
    /// the session's connections it does not go to.
    batch_echo: Vec<String>,
    /// Snapshot isolation: the batch being routed commits / takes a snapshot.
    batch_commits: bool,
    batch_takes_snapshot: bool,
    /// Snapshot isolation: the current transaction took its snapshot; this child marks
    /// a step until everything sent so far is answered.
    snapshot_taken: bool,
    snapshot_step_held: bool,
    /// Native replication: the main node's timestamp for the current transaction (or
    /// autocommit statement), and its query's progress.
    now: Option<String>,
    now_wait: bool,
    now_failed: bool,
    now_arrived: bool,
    replicating: Option<Replicating>,
}

impl Router {
    /// A router whose reads go to connection `lb` (0: the main node).
    pub fn with_lb(lb: usize) -> Self {
        Router {
            lb,
            ..Router::default()
        }
    }
}

impl Default for Router {
    fn default() -> Self {
        Router {
            statements: FxHashMap::default(),
            lb: 1,
            portals: FxHashMap::default(),
            sql_prepared: FxHashMap::default(),
            write_in_tx: false,
            wrote_in_any_tx: false,
            wrote: false,
            serializable_tx: false,
            open: None,
            open_flushed: false,
            last: Target::Primary,
            client_remaining: 0,
            remaining_target: Target::Primary,
            temp_tables: HashSet::new(),
            written: WrittenObjects::default(),
            ddl_in_tx: false,
            catalog_wait: false,
            catalog_failed: false,
            catalog_arrived: false,
            batch_starts_tx: false,
            batch_writes: false,
            batch_echo: Vec::new(),
            batch_commits: false,
            batch_takes_snapshot: false,
            snapshot_taken: false,
            snapshot_step_held: false,
            now: None,
            now_wait: false,
            now_failed: false,
            now_arrived: false,
            replicating: None,
        }
    }
}

fn cstr(buf: &[u8]) -> (&[u8], &[u8]) {
    match buf.iter().position(|&b| b == 0) {
        Some(p) => (&buf[..p], &buf[p + 1..]),
        None => (buf, &[]),
    }
}

/// The outcome of scanning the client's bytes for one batch.
enum Scan {
    /// Not enough bytes for a complete batch yet.
    Incomplete,
    /// A batch `range` (client buffer offsets) ends at a boundary.
    Batch { end: usize, kind: BatchEnd },
    /// A local command (its Query body, or with `extended` the whole batch of
    /// messages) at `start..end`.
    Local {
        start: usize,
        end: usize,
        extended: bool,
    },
    /// Terminate at `start`.
    Terminate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchEnd {
    /// Query, Sync or FunctionCall: one ReadyForQuery follows.
    Synced,
    /// Flush: answers without ReadyForQuery.
    Flushed,
    /// COPY data (or other messages) that follow the last batch.
    Copy,
    /// The buffer filled without a boundary: forward what is there.
    Overflow,
}

pub struct Routed<'s> {
    pub cfg: RoutedConfig<'s>,
    pub cache: &'s mut ClassifierCache,
    pub catalog: &'s mut Catalog,
    pub router: &'s mut Router,
    pub shm: &'s shmem::Shmem,
    /// log_client_messages.
    pub client_log: Option<crate::child::client_log::ClientLog>,
    /// Snapshot isolation mode: this child's index (its step mark in shared memory).
    pub snapshot_child: Option<usize>,
}

impl Routed<'_> {
    fn lb_allowed(&self, io: &[NodeIo], lb: usize) -> bool {
        let r = &*self.router;
        if r.serializable_tx {
            return false;
        }
        let t = self.cfg.delay_threshold;
        if t > 0
            && self
                .shm
                .backend(self.cfg.node_ids[lb])
                .replication_delay
                .load(std::sync::atomic::Ordering::Relaxed)
                > t
        {
            return false;
        }
        let in_tx = io[PRIMARY].tx != b'I';
        let wrote_block = match self.cfg.disable_load_balance_on_write {
            // Decided per statement by the tables it reads.
            "off" | "dml_adaptive" => false,
            "always" => r.wrote,
            "trans_transaction" => r.write_in_tx || r.wrote_in_any_tx,
            _ => r.write_in_tx,
        };
        if wrote_block {
            return false;
        }
        // A write still in flight on the primary (pipelined): the read would not see it.
        if io[PRIMARY].queue.iter().any(|e| e.writes) {
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
    fn pick_lb(&mut self, io: &[NodeIo]) -> usize {
        let w = &self.cfg.statement_weights;
        if io.iter().any(|n| n.tx != b'I') {
            return self.router.lb;
        }
        if w.is_empty() {
            return self.least_delayed_if_behind();
        }
        let usable = |k: usize| {
            let b = self.shm.backend(self.cfg.node_ids[k]);
            w[k] > 0.0
                && b.status().is_alive()
                && (self.cfg.delay_threshold == 0
                    || b.replication_delay
                        .load(std::sync::atomic::Ordering::Relaxed)
                        <= self.cfg.delay_threshold)
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

    fn note_snapshot_kind(&mut self, kind: StatementKind) {
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
    fn order_snapshot_step(&mut self, io: &[NodeIo]) {
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
    fn end_snapshot_step(&mut self, io: &[NodeIo], answered: bool) {
        if let Some(me) = self.snapshot_child {
            if self.router.snapshot_step_held && answered && io.iter().all(|n| n.queue.is_empty()) {
                self.shm.snapshot_step_done(me);
                self.router.snapshot_step_held = false;
            }
        }
    }

    fn delay(&self, k: usize) -> u64 {
        self.shm
            .backend(self.cfg.node_ids[k])
            .replication_delay
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// prefer_lower_delay_standby, as Pgpool-II: the session's load-balance node is
    /// behind delay_threshold, so the least delayed standby with a weight takes its reads
    /// (a random one, by weight, among equally delayed ones).
    fn least_delayed_if_behind(&mut self) -> usize {
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

    fn note_write(&mut self, is_write: bool, in_tx: bool) {
        if is_write {
            self.router.wrote = true;
            self.router.batch_writes = true;
            if in_tx {
                self.router.write_in_tx = true;
                self.router.wrote_in_any_tx = true;
            }
        }
    }

    fn dml_adaptive(&self) -> bool {
        self.cfg.disable_load_balance_on_write == "dml_adaptive"
    }

    /// Must the catalog facts be (re)loaded before the next batch is routed? Not while
    /// the primary's transaction is aborted: the query would fail there.
    fn catalog_stale(&self, io: &[NodeIo]) -> bool {
        let needed = self.cfg.rules.functions_need_catalog()
            || self.cfg.check_unlogged_table
            || self.cfg.main_first;
        needed
            && !self.router.catalog_wait
            && io[PRIMARY].tx != b'E'
            && !self
                .catalog
                .is_current(self.cfg.database, self.catalog_generation())
    }

    fn catalog_generation(&self) -> u64 {
        self.shm
            .cluster()
            .catalog_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sends the catalog query to the primary; batches wait for its answer.
    fn start_catalog_load(&mut self, io: &mut [NodeIo]) {
        let generation = self.catalog_generation();
        self.catalog.start_load(
            self.cfg.database,
            generation,
            self.cfg.main_first,
            &mut io[PRIMARY].out,
        );
        io[PRIMARY].queue.push_back(Expect {
            synced: true,
            capture: Capture::Catalog,
            ..Expect::default()
        });
        self.router.catalog_wait = true;
        self.router.catalog_failed = false;
    }

    fn replication_needs(&mut self) -> ReplicationNeeds<'_> {
        ReplicationNeeds {
            cache: self.cache,
            rules: self.cfg.rules,
            catalog: self.catalog,
            insert_lock: self.cfg.insert_lock,
        }
    }

    /// Native replication: must the main node's timestamp be asked for before this batch
    /// (a Query, or the statements an extended batch binds) can go out?
    fn timestamp_missing(&mut self, batch: &[u8]) -> bool {
        if !self.cfg.main_first || self.router.now.is_some() || self.router.now_failed {
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
    fn start_timestamp_fetch(&mut self, io: &mut [NodeIo]) {
        build::query(&mut io[PRIMARY].out, replicate::NOW_QUERY);
        io[PRIMARY].queue.push_back(Expect {
            synced: true,
            capture: Capture::Now,
            ..Expect::default()
        });
        self.router.now_wait = true;
    }

    /// A replicated batch as every node must get it (None: as the client sent it).
    fn prepare_replicated(&mut self, batch: &[u8], in_tx: bool) -> Option<Replicated> {
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
            rules: self.cfg.rules,
            catalog: self.catalog,
            insert_lock: self.cfg.insert_lock,
        };
        let now = self.router.now.as_deref();
        needs.prepare_extended(batch, &parse_of, now, in_tx)
    }

    /// Might the batch run a COPY (of a Query, a Parse, or a statement it binds)?
    fn batch_mentions_copy(&self, batch: &[u8]) -> bool {
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
    /// batch runs (noted in `prepared_here`); EXECUTE and DEALLOCATE go there (the pin),
    /// and EXECUTE writes when the prepared statement does. An unknown name is left to
    /// the usual route (it errs on the primary). Returns the pin and whether it writes.
    /// Without `prepared_here` the statement is only parsed: nothing changes.
    fn sql_prepared_pin(
        &mut self,
        kind: StatementKind,
        name: Option<String>,
        is_write: bool,
        prepared_here: Option<&mut Vec<(String, bool)>>,
    ) -> (Option<Target>, bool) {
        let prepared = &mut self.router.sql_prepared;
        let runs = prepared_here.is_some();
        match (kind, name) {
            (StatementKind::Prepare, Some(name)) => {
                if let Some(here) = prepared_here {
                    here.push((name, is_write));
                }
                (None, is_write)
            }
            (StatementKind::Execute | StatementKind::Deallocate, Some(name)) => {
                let found = prepared.get(&name).copied();
                if kind == StatementKind::Deallocate && runs {
                    prepared.remove(&name);
                }
                match found {
                    Some((t, w)) => (Some(t), w && kind == StatementKind::Execute),
                    None => (None, is_write),
                }
            }
            (StatementKind::Deallocate | StatementKind::Discard, None) => {
                if runs {
                    prepared.clear();
                }
                (None, is_write)
            }
            _ => (None, is_write),
        }
    }

    /// Where one statement text may run, with what the session and the catalog know;
    /// `execute`: it runs now (Query, Bind), so what it changes is recorded.
    fn statement_route(&mut self, text: &str, in_tx: bool, execute: bool) -> StatementRoute {
        let dml_adaptive = self.dml_adaptive();
        let Routed {
            cfg,
            cache,
            catalog,
            router,
            shm,
            ..
        } = self;
        // Each check applies only when the text names something it looks for.
        let unlogged = cfg.check_unlogged_table && catalog.mentions_unlogged(text);
        let temps = cfg.check_temp_table
            && sql::mentions_any(text, router.temp_tables.iter().map(String::as_str));
        let adaptive = dml_adaptive && in_tx && router.written.mentioned_in(text);
        if !unlogged && !temps && !adaptive && sql::plain_select(text, cfg.rules) {
            // A lone read without functions: no parse needed (texts with literal values
            // never repeat, so the cache would not help).
            return StatementRoute::plain_select();
        }
        let c = cache.classify(text, cfg.rules);
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
            cursor_name: c.cursor_name.clone(),
            session_statements: c.session_statements.clone(),
        }
    }

    /// Decides the target of the batch `buf` (complete messages) and records the
    /// statements and portals it creates.
    fn route_batch(&mut self, buf: &[u8], io: &[NodeIo]) -> (Target, Counts) {
        let mut counts = Counts::default();
        self.router.batch_starts_tx = false;
        self.router.batch_writes = false;
        self.router.batch_echo.clear();
        self.router.batch_commits = false;
        self.router.batch_takes_snapshot = false;
        // A batch continuing a flushed one goes where that one went, but what it does
        // (writes, portals, prepared statements) is recorded all the same.
        let open = self.router.open;
        // In a transaction, or a BEGIN is on its way (pipelined).
        let mut in_tx = io[PRIMARY].tx != b'I' || io[PRIMARY].joined_tx;
        let mut need_primary = false;
        let mut need_both = false;
        // A portal of an earlier batch lives on this load-balance connection.
        let mut need_lb: Option<usize> = None;
        let mut unnamed_bound = false;
        let mut bound: Vec<&[u8]> = Vec::new();
        // Native replication: a write goes to every node, whatever else the batch holds.
        let mut need_replicated = false;
        // SQL-level statements this batch PREPAREs: they live where it runs.
        let mut prepared_here: Vec<(String, bool)> = Vec::new();
        // pg_terminate_backend() of a backend on this connection.
        let mut forced: Option<usize> = None;
        let mut i = 0;
        while i + 5 <= buf.len() {
            let Ok(Some(h)) = scan_header(&buf[i..]) else {
                break;
            };
            let body = &buf[i + 5..(i + h.total_len()).min(buf.len())];
            match h.tag {
                b'Q' => {
                    crate::sys::set_title_command(cstr(body).0);
                    let text = std::str::from_utf8(cstr(body).0).unwrap_or("");
                    if let Some(node) = crate::child::terminate_request(self.shm, text.as_bytes()) {
                        // Sent to the node the victim lives on, when it is in this session.
                        forced = self.cfg.node_ids.iter().position(|&n| n == node);
                    }
                    let StatementRoute {
                        route,
                        is_write,
                        kind,
                        serializable_begin,
                        starts_tx,
                        prepared_name,
                        cursor_name,
                        session_statements,
                        ..
                    } = self.statement_route(text, in_tx, true);
                    self.router.batch_echo.extend(session_statements);
                    let (pin, is_write) = self.sql_prepared_pin(
                        kind,
                        prepared_name,
                        is_write,
                        Some(&mut prepared_here),
                    );
                    let mut pinned = pin.is_some();
                    match pin {
                        Some(Target::Lb(j)) => need_lb = Some(j),
                        Some(Target::All) => need_both = true,
                        Some(Target::Primary) => need_primary = true,
                        None => {}
                    }
                    // FETCH / MOVE / CLOSE of a protocol portal: where the portal lives.
                    if let Some(t) = cursor_name.and_then(|n| self.router.portals.get(n.as_bytes()))
                    {
                        match *t {
                            Target::Lb(j) => need_lb = Some(j),
                            Target::All => need_both = true,
                            Target::Primary => need_primary = true,
                        }
                        pinned = true;
                    }
                    self.router.batch_starts_tx |= starts_tx;
                    let was_in_tx = in_tx;
                    in_tx |= starts_tx;
                    if serializable_begin {
                        self.router.serializable_tx = true;
                    }
                    need_replicated |= self.cfg.replicate && route == Route::Primary && is_write;
                    if !pinned {
                        note_route(route, &mut need_primary, &mut need_both);
                    }
                    self.note_write(is_write, was_in_tx || starts_tx);
                    counts.add(kind);
                    self.note_snapshot_kind(kind);
                }
                b'P' => {
                    let (name, rest) = cstr(body);
                    let (query, _) = cstr(rest);
                    let text = std::str::from_utf8(query).unwrap_or("");
                    let StatementRoute {
                        route,
                        is_write,
                        kind,
                        has_effects,
                        prepared_name,
                        ..
                    } = self.statement_route(text, in_tx, false);
                    // Parsing EXECUTE p needs p: where the PREPARE went.
                    let (pin, _) = self.sql_prepared_pin(kind, prepared_name, is_write, None);
                    match pin {
                        Some(Target::Lb(j)) => need_lb = Some(j),
                        Some(Target::All) => need_both = true,
                        Some(Target::Primary) => need_primary = true,
                        None => note_route(route, &mut need_primary, &mut need_both),
                    }
                    let parse = &buf[i..i + h.total_len()];
                    // The unnamed statement is parsed again batch after batch: reuse its
                    // entry and buffer rather than allocate per query.
                    match self.router.statements.get_mut(name) {
                        Some(st) => {
                            st.parse.clear();
                            st.parse.extend_from_slice(parse);
                            st.route = route;
                            st.is_write = is_write;
                            st.kind = kind;
                            st.has_effects = has_effects;
                            st.on = 0;
                        }
                        None => {
                            let st = Statement {
                                parse: parse.to_vec(),
                                route,
                                is_write,
                                kind,
                                has_effects,
                                on: 0,
                            };
                            self.router.statements.insert(name.to_vec(), st);
                        }
                    }
                }
                b'B' => {
                    let (portal, rest) = cstr(body);
                    if portal.is_empty() {
                        unnamed_bound = true;
                    } else {
                        bound.push(portal);
                    }
                    let (stmt, _) = cstr(rest);
                    let looked_again = self.router.statements.get(stmt).and_then(|st| {
                        let again = st.has_effects
                            || (self.cfg.check_temp_table && !self.router.temp_tables.is_empty())
                            || (self.dml_adaptive() && in_tx && !self.router.written.is_empty());
                        again.then(|| statement_text(&st.parse).to_string())
                    });
                    let known = match looked_again {
                        Some(text) => {
                            let r = self.statement_route(&text, in_tx, true);
                            Some((r.route, r.is_write, r.kind, r.prepared_name))
                        }
                        None => self
                            .router
                            .statements
                            .get(stmt)
                            .map(|st| (st.route, st.is_write, st.kind, None)),
                    };
                    if let Some((route, w, k, prepared_name)) = known {
                        let (pin, w) =
                            self.sql_prepared_pin(k, prepared_name, w, Some(&mut prepared_here));
                        if route == Route::All
                            && matches!(
                                k,
                                StatementKind::Set
                                    | StatementKind::Transaction(_)
                                    | StatementKind::Discard
                            )
                        {
                            let text = self
                                .router
                                .statements
                                .get(stmt)
                                .map(|st| statement_text(&st.parse).to_string());
                            self.router.batch_echo.extend(text);
                        }
                        let begins = k == StatementKind::Transaction(sql::TransactionKind::Begin);
                        self.router.batch_starts_tx |= begins;
                        in_tx |= begins;
                        need_replicated |= self.cfg.replicate && route == Route::Primary && w;
                        match pin {
                            Some(Target::Lb(j)) => need_lb = Some(j),
                            Some(Target::All) => need_both = true,
                            Some(Target::Primary) => need_primary = true,
                            None => note_route(route, &mut need_primary, &mut need_both),
                        }
                        self.note_write(w, in_tx);
                        counts.add(k);
                        self.note_snapshot_kind(k);
                    } else {
                        need_primary = true;
                    }
                }
                b'E' | b'D' | b'C' => {
                    let (kind, name) = if h.tag == b'E' {
                        (b'P', cstr(body).0)
                    } else {
                        (
                            body.first().copied().unwrap_or(b'S'),
                            cstr(body.get(1..).unwrap_or(&[])).0,
                        )
                    };
                    // A portal bound in this batch runs where the batch goes; only
                    // portals of earlier batches pin the target.
                    let bound_here = if name.is_empty() {
                        unnamed_bound
                    } else {
                        bound.contains(&name)
                    };
                    if kind == b'P' && !bound_here {
                        match self.router.portals.get(name) {
                            Some(Target::Lb(j)) => need_lb = Some(*j),
                            Some(_) => need_primary = true,
                            None => {}
                        }
                    }
                }
                b'F' => need_primary = true,
                _ => {}
            }
            i += h.total_len();
        }
        let target = if let Some(t) = open {
            t
        } else if let Some(k) = forced {
            if k == PRIMARY {
                Target::Primary
            } else {
                Target::Lb(k)
            }
        } else if need_replicated {
            Target::All
        } else if need_primary || (need_lb.is_some() && need_both) {
            Target::Primary
        } else if need_both {
            Target::All
        } else if let Some(j) = need_lb {
            Target::Lb(j)
        } else {
            let lb = self.pick_lb(io);
            if lb != PRIMARY && self.lb_allowed(io, lb) {
                Target::Lb(lb)
            } else {
                Target::Primary
            }
        };
        for (name, is_write) in prepared_here {
            self.router.sql_prepared.insert(name, (target, is_write));
        }
        // Portals created by this batch live where it runs.
        let mut i = 0;
        while i + 5 <= buf.len() {
            let Ok(Some(h)) = scan_header(&buf[i..]) else {
                break;
            };
            if h.tag == b'B' {
                let body = &buf[i + 5..(i + h.total_len()).min(buf.len())];
                let (portal, _) = cstr(body);
                match self.router.portals.get_mut(portal) {
                    Some(t) => *t = target,
                    None => {
                        self.router.portals.insert(portal.to_vec(), target);
                    }
                }
            }
            i += h.total_len();
        }
        (target, counts)
    }
}

/// What one statement's route asks of its batch: the primary, or every node.
fn note_route(route: Route, need_primary: &mut bool, need_all: &mut bool) {
    match route {
        Route::Primary => *need_primary = true,
        Route::All => *need_all = true,
        Route::LoadBalance => {}
    }
}

/// Where one statement goes and what it is.
struct StatementRoute {
    route: Route,
    is_write: bool,
    kind: StatementKind,
    has_effects: bool,
    serializable_begin: bool,
    starts_tx: bool,
    /// PREPARE / EXECUTE / DEALLOCATE name.
    prepared_name: Option<String>,
    /// FETCH / MOVE / CLOSE name.
    cursor_name: Option<String>,
    session_statements: Option<String>,
}

impl StatementRoute {
    fn plain_select() -> Self {
        StatementRoute {
            route: Route::LoadBalance,
            is_write: false,
            kind: StatementKind::Select,
            has_effects: false,
            serializable_begin: false,
            starts_tx: false,
            prepared_name: None,
            cursor_name: None,
            session_statements: None,
        }
    }
}

/// The query text of a Parse message (whole message, header included).
fn statement_text(parse: &[u8]) -> &str {
    let body = parse.get(5..).unwrap_or(&[]);
    std::str::from_utf8(cstr(cstr(body).1).0).unwrap_or("")
}

/// Statements of a batch by kind, for SHOW POOL_NODES / POOL_BACKEND_STATS.
#[derive(Default)]
struct Counts {
    select: u64,
    insert: u64,
    update: u64,
    delete: u64,
    ddl: u64,
    other: u64,
}

impl Counts {
    fn add(&mut self, kind: StatementKind) {
        match kind {
            StatementKind::Select => self.select += 1,
            StatementKind::Insert => self.insert += 1,
            StatementKind::Update => self.update += 1,
            StatementKind::Delete => self.delete += 1,
            StatementKind::Ddl => self.ddl += 1,
            _ => self.other += 1,
        }
    }

    fn record(&self, state: &shmem::BackendState) {
        use crate::child::admin::count_kind;
        use StatementKind as K;
        count_kind(state, K::Select, self.select);
        count_kind(state, K::Insert, self.insert);
        count_kind(state, K::Update, self.update);
        count_kind(state, K::Delete, self.delete);
        count_kind(state, K::Ddl, self.ddl);
        count_kind(state, K::Other, self.other);
    }
}

/// Appends the batch to each target connection's output, replaying Parse messages of
/// named statements the node lacks; counts the answers each must hide in `batch_hide`.
/// Only the connections in `nodes` are sent to now (native replication sends the main
/// node's share first).
fn dispatch(
    router: &mut Router,
    batch: &[u8],
    target: Target,
    io: &mut [NodeIo],
    nodes: std::ops::Range<usize>,
) {
    for (k, node) in io.iter_mut().enumerate() {
        node.batch_hide = 0;
        if !target.includes(k) || !nodes.contains(&k) {
            continue;
        }
        // Statements bound in this batch but parsed elsewhere: parse them here first (a
        // Parse earlier in the batch counts as done, since the batch goes out whole).
        for (tag, body) in Messages(batch) {
            let (name, replay) = match tag {
                b'P' => (cstr(body).0, false),
                b'B' => (cstr(cstr(body).1).0, true),
                _ => continue,
            };
            if let Some(st) = router.statements.get_mut(name) {
                if replay && !st.is_on(k) {
                    node.out.extend_from_slice(&st.parse);
                    node.batch_hide += 1;
                }
                st.set_on(k, true);
            }
        }
        node.out.extend_from_slice(batch);
        // Close of a statement: it is gone from this node.
        for (tag, body) in Messages(batch) {
            if tag == b'C' && body.first() == Some(&b'S') {
                if let Some(st) = router.statements.get_mut(cstr(&body[1..]).0) {
                    st.set_on(k, false);
                }
            }
        }
    }
    // A statement closed on the nodes of this batch but still prepared on others is
    // closed there too, so its name can be reused anywhere.
    for (tag, body) in Messages(batch) {
        if tag != b'C' || body.first() != Some(&b'S') {
            continue;
        }
        let name = cstr(&body[1..]).0;
        let Some(st) = router.statements.get_mut(name) else {
            continue;
        };
        for (k, node) in io.iter_mut().enumerate() {
            if st.is_on(k) && !target.includes(k) {
                // Close + Sync so the node answers CloseComplete and ReadyForQuery,
                // both hidden.
                let s = build::begin(&mut node.out, b'C');
                node.out.push(b'S');
                build::put_cstr(&mut node.out, name);
                build::finish(&mut node.out, s);
                let s = build::begin(&mut node.out, b'S');
                build::finish(&mut node.out, s);
                node.queue.push_back(Expect {
                    synced: true,
                    ..Expect::default()
                });
                st.set_on(k, false);
            }
        }
        if st.on == 0 {
            router.statements.remove(name);
        }
    }
}

/// The (tag, body) of each complete message in a buffer of whole messages.
struct Messages<'a>(&'a [u8]);

impl<'a> Iterator for Messages<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.len() < 5 {
            return None;
        }
        let Ok(Some(h)) = scan_header(self.0) else {
            return None;
        };
        let end = h.total_len().min(self.0.len());
        let body = &self.0[5..end];
        self.0 = &self.0[end..];
        Some((h.tag, body))
    }
}

fn write_some(stream: &mut Stream, buf: &mut Vec<u8>, from: &mut usize) -> io::Result<()> {
    while *from < buf.len() {
        match stream.write(&buf[*from..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
            Ok(n) => *from += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.clear();
    *from = 0;
    Ok(())
}

/// Finds the next batch in `buf[from..to]`.
fn scan_client(
    buf: &[u8],
    from: usize,
    to: usize,
    local: &mut dyn LocalCommands,
    open: bool,
) -> Result<Scan, String> {
    // A batch of local commands in the extended protocol is answered locally.
    if !open && matches!(buf.get(from), Some(b'P' | b'B')) {
        match local_ext::scan(&buf[from..to], local) {
            local_ext::Batch::Local(n) => {
                return Ok(Scan::Local {
                    start: from,
                    end: from + n,
                    extended: true,
                })
            }
            local_ext::Batch::Incomplete if to - from < buf.len() => return Ok(Scan::Incomplete),
            _ => {}
        }
    }
    let mut i = from;
    while i < to {
        if to - i < 5 {
            break;
        }
        let h = scan_header(&buf[i..to])
            .map_err(|e| e.to_string())?
            .ok_or("short header")?;
        if !protocol::message::is_frontend_tag(h.tag) {
            return Err(protocol::message::invalid_frontend_tag(h.tag));
        }
        if to - i < h.total_len() {
            if h.total_len() > buf.len() || (i == from && to - from == buf.len()) {
                return Ok(Scan::Batch {
                    end: to,
                    kind: BatchEnd::Overflow,
                });
            }
            break;
        }
        let end = i + h.total_len();
        match h.tag {
            b'X' => {
                if i > from {
                    return Ok(Scan::Batch {
                        end: i,
                        kind: BatchEnd::Copy,
                    });
                }
                return Ok(Scan::Terminate);
            }
            b'Q' => {
                if i > from {
                    // Extended messages before a Query without Sync: send them first.
                    return Ok(Scan::Batch {
                        end: i,
                        kind: if open {
                            BatchEnd::Flushed
                        } else {
                            BatchEnd::Copy
                        },
                    });
                }
                if local.is_local(&buf[i + 5..end]) {
                    return Ok(Scan::Local {
                        start: i + 5,
                        end,
                        extended: false,
                    });
                }
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Synced,
                });
            }
            b'S' | b'F' => {
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Synced,
                })
            }
            b'H' => {
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Flushed,
                })
            }
            b'd' | b'c' | b'f' => {
                return Ok(Scan::Batch {
                    end,
                    kind: BatchEnd::Copy,
                })
            }
            b'P' => local_ext::note_parse(&buf[i + 5..end], local),
            _ => {}
        }
        i = end;
    }
    let _ = open;
    if to - from == buf.len() {
        // The buffer is full and holds no boundary: pass on what is complete.
        return Ok(Scan::Batch {
            end: if i > from { i } else { to },
            kind: BatchEnd::Overflow,
        });
    }
    Ok(Scan::Incomplete)
}

/// Relays a session over the primary (`conns[0]`) and load-balance connections
/// (`conns[1..]`, node ids in `routed.cfg.node_ids`). Sockets are left in blocking mode
/// on return.
pub fn relay(
    client: &mut Stream,
    mut conns: Vec<&mut BackendConn>,
    initial: &[u8],
    waker: &Waker,
    local: &mut dyn LocalCommands,
    routed: &mut Routed<'_>,
    state: &mut RoutedState,
) -> RelayEnd {
    let _ = client.set_nonblocking(true);
    for c in conns.iter_mut() {
        let _ = c.stream.set_nonblocking(true);
    }
    let end = relay_loop(client, &mut conns, initial, waker, local, routed, state);
    let _ = client.set_nonblocking(false);
    for c in conns.iter_mut() {
        let _ = c.stream.set_nonblocking(false);
    }
    end
}

/// What the session learnt, for the release decision.
#[derive(Debug, Default)]
pub struct RoutedState {
    pub reusable: bool,
    pub backend_fatal: bool,
    pub backend_shutdown: bool,
    pub failed_node: Option<usize>,
}

fn relay_loop(
    client: &mut Stream,
    backends: &mut [&mut BackendConn],
    initial: &[u8],
    waker: &Waker,
    local: &mut dyn LocalCommands,
    routed: &mut Routed<'_>,
    state: &mut RoutedState,
) -> RelayEnd {
    let mut io: Vec<NodeIo> = backends.iter().map(|_| NodeIo::new()).collect();
    // Client bytes: read buffer with [from..to) not yet dispatched.
    let mut cbuf = vec![0u8; READ_CHUNK];
    let mut cfrom = 0usize;
    let mut cto = 0usize;
    if !initial.is_empty() {
        let n = initial.len().min(cbuf.len());
        cbuf[..n].copy_from_slice(&initial[..n]);
        cto = n;
    }
    // Order of batches whose answers the client sees: the answering node of each.
    let mut order: VecDeque<usize> = VecDeque::new();
    let mut to_client: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut to_client_from = 0usize;
    // A local command waiting for its turn, and whether it is an extended batch.
    let mut pending_local: Option<(Vec<u8>, LocalAnswer)> = None;
    let mut terminated = false;
    let node_ids = routed.cfg.node_ids.clone();
    let mut bflags = vec![PollFlags::empty(); io.len()];
    let mut bev = vec![PollFlags::empty(); io.len()];
    let mut bready = vec![false; io.len()];
    loop {
        routed.end_snapshot_step(&io, order.is_empty());
        // 1. Dispatch complete client batches (not while a local command waits).
        // (Snapshot isolation: while a step is marked, its batch must be answered by every
        // node before anything else goes out.)
        while pending_local.is_none()
            && !routed.router.catalog_wait
            && !routed.router.now_wait
            && routed.router.replicating.is_none()
            && !routed.router.snapshot_step_held
            && !terminated
            && cfrom < cto
        {
            if routed.router.client_remaining > 0 {
                // The tail of a message larger than the buffer.
                let take = routed.router.client_remaining.min(cto - cfrom);
                let t = routed.router.remaining_target;
                for (k, n) in io.iter_mut().enumerate() {
                    if t.includes(k) {
                        n.out.extend_from_slice(&cbuf[cfrom..cfrom + take]);
                    }
                }
                routed.router.client_remaining -= take;
                cfrom += take;
                continue;
            }
            let scan = match scan_client(&cbuf, cfrom, cto, local, routed.router.open.is_some()) {
                Ok(s) => s,
                Err(e) => return RelayEnd::ClientProtocol(e),
            };
            match scan {
                Scan::Incomplete => break,
                Scan::Terminate => {
                    if let Some(l) = routed.client_log.as_mut() {
                        l.one(b'X', &[]);
                    }
                    terminated = true;
                    cfrom = cto;
                }
                Scan::Local {
                    start,
                    end,
                    extended,
                } => {
                    let answer = if extended {
                        LocalAnswer::Extended
                    } else {
                        LocalAnswer::Simple
                    };
                    pending_local = Some((cbuf[start..end].to_vec(), answer));
                    cfrom = end;
                }
                // A failed transaction with nothing in flight (its state is certain): a
                // lone Query that does not end it is refused here, as Pgpool-II does. The
                // error may have come from any node of the session (a read that failed on
                // a standby fails the whole transaction, as on one server).
                Scan::Batch { end, .. }
                    if cbuf[cfrom] == b'Q'
                        && order.is_empty()
                        && io.iter().all(|n| n.queue.is_empty())
                        && io.iter().any(|n| n.tx == b'E')
                        && scan_header(&cbuf[cfrom..end])
                            .ok()
                            .flatten()
                            .is_some_and(|h| cfrom + h.total_len() == end)
                        && !ends_failed_transaction(&cbuf[cfrom + 5..end]) =>
                {
                    pending_local = Some((cbuf[cfrom + 5..end].to_vec(), LocalAnswer::Aborted));
                    cfrom = end;
                }
                Scan::Batch { end, kind } => {
                    if cbuf[cfrom] == b'Q' && routed.router.open_flushed {
                        // A Query after flushed extended messages: they end here (the
                        // Query would end their implicit transaction anyway), so the
                        // Query is routed on its own.
                        close_flushed_batch(routed.router, &mut io);
                    }
                    let continuing = routed.router.open.is_some();
                    if !continuing && kind != BatchEnd::Copy && routed.catalog_stale(&io) {
                        // Routing needs the database's facts: ask, and hold the batch.
                        routed.start_catalog_load(&mut io);
                        break;
                    }
                    if !continuing
                        && kind == BatchEnd::Synced
                        && routed.timestamp_missing(&cbuf[cfrom..end])
                    {
                        routed.start_timestamp_fetch(&mut io);
                        break;
                    }
                    let batch = &cbuf[cfrom..end];
                    let mut hidden = HiddenAnswers::default();
                    let mut main_only = false;
                    if let Some(l) = routed.client_log.as_mut() {
                        l.frames(batch);
                    }
                    // COPY data (also a CopyData larger than the buffer) follows its COPY.
                    let copy_data = kind == BatchEnd::Copy
                        || (kind == BatchEnd::Overflow
                            && !continuing
                            && matches!(batch.first(), Some(b'd' | b'c' | b'f')));
                    let target = if copy_data {
                        routed.router.last
                    } else {
                        let (t, counts) = routed.route_batch(batch, &io);
                        counts.record(routed.shm.backend(node_ids[t.answering()]));
                        t
                    };
                    routed.order_snapshot_step(&io);
                    if routed.cfg.main_first
                        && target == Target::All
                        && kind == BatchEnd::Synced
                        && !continuing
                        && !routed.batch_mentions_copy(batch)
                    {
                        // Native replication: the main node first, the others once it
                        // has answered.
                        let in_tx = io[PRIMARY].tx != b'I';
                        let (bytes, commit_after) = match routed.prepare_replicated(batch, in_tx) {
                            Some(r) => {
                                hidden = r.hidden;
                                (r.bytes, r.commit_after)
                            }
                            None => (batch.to_vec(), false),
                        };
                        dispatch(routed.router, &bytes, target, &mut io, 0..1);
                        routed.router.replicating = Some(Replicating::Main {
                            bytes,
                            starts_tx: routed.router.batch_starts_tx,
                            commit_after,
                        });
                        main_only = true;
                    } else {
                        let all = 0..io.len();
                        dispatch(routed.router, batch, target, &mut io, all);
                        echo_session_statements(routed.router, target, &mut io);
                    }
                    if routed.router.batch_starts_tx {
                        for (k, n) in io.iter_mut().enumerate() {
                            n.joined_tx |= target.includes(k) && (k == PRIMARY || !main_only);
                        }
                    }
                    let mut notices = Vec::new();
                    if routed.cfg.log_statement
                        || routed.cfg.log_per_node_statement
                        || routed.cfg.notice_per_node_statement
                    {
                        log_statements(
                            batch,
                            target,
                            &node_ids,
                            backends,
                            &routed.cfg,
                            &mut notices,
                        );
                    }
                    if kind == BatchEnd::Overflow {
                        // Part of a message that does not fit: the rest follows it.
                        let mut j = cfrom;
                        while j + 5 <= end {
                            match scan_header(&cbuf[j..end]) {
                                Ok(Some(h)) if j + h.total_len() <= end => j += h.total_len(),
                                Ok(Some(h)) => {
                                    routed.router.client_remaining = j + h.total_len() - end;
                                    routed.router.remaining_target = target;
                                    break;
                                }
                                _ => break,
                            }
                        }
                    }
                    routed.router.last = target;
                    let answering = target.answering();
                    // Replayed Parses are hidden among the answers of the batch they
                    // precede (the last one queued on that node).
                    let add_hide = |io: &mut [NodeIo]| {
                        for n in io.iter_mut() {
                            if n.batch_hide > 0 {
                                let h = n.batch_hide;
                                if let Some(e) = n.queue.back_mut() {
                                    e.hide.parse += h;
                                }
                            }
                        }
                    };
                    // COPY data and the rest of an overflowing message join the batch
                    // before them; a boundary of an open batch closes it; anything else
                    // starts a batch (an overflowing one stays open, like a Flush).
                    let joins = copy_data || (continuing && kind == BatchEnd::Overflow);
                    if joins || continuing {
                        add_hide(&mut io);
                        if let Some(e) = io[answering].queue.back_mut() {
                            e.notices.append(&mut notices);
                        }
                    }
                    if joins {
                        // Nothing more: answers come with the batch joined.
                    } else if continuing {
                        if kind == BatchEnd::Synced {
                            for (k, n) in io.iter_mut().enumerate() {
                                if target.includes(k) {
                                    if let Some(e) = n.queue.back_mut() {
                                        e.synced = true;
                                    }
                                }
                            }
                            routed.router.open = None;
                        }
                    } else {
                        let synced = kind == BatchEnd::Synced;
                        for (k, n) in io.iter_mut().enumerate() {
                            if target.includes(k) && (k == PRIMARY || !main_only) {
                                let mut hide = hidden;
                                hide.parse += n.batch_hide;
                                n.queue.push_back(Expect {
                                    forward: k == answering,
                                    writes: routed.router.batch_writes,
                                    hide,
                                    synced,
                                    notices: if k == answering {
                                        std::mem::take(&mut notices)
                                    } else {
                                        Vec::new()
                                    },
                                    ..Expect::default()
                                });
                            }
                        }
                        order.push_back(answering);
                        routed.router.open = if synced { None } else { Some(target) };
                        routed.router.open_flushed = kind == BatchEnd::Flushed;
                    }
                    cfrom = end;
                }
            }
        }
        if cfrom == cto {
            cfrom = 0;
            cto = 0;
        } else if cfrom > 0 {
            // Keep the partial message at the front so the buffer has room to read.
            cbuf.copy_within(cfrom..cto, 0);
            cto -= cfrom;
            cfrom = 0;
        }
        // 2. Answer a local command once everything before it was answered.
        if pending_local.is_some() && order.is_empty() && to_client_from >= to_client.len() {
            if let Some((q, answer)) = pending_local.take() {
                to_client.clear();
                to_client_from = 0;
                match answer {
                    LocalAnswer::Extended => {
                        local_ext::answer(&q, local, &mut to_client, io[PRIMARY].tx)
                    }
                    LocalAnswer::Aborted => aborted_answer(&q, &mut to_client),
                    LocalAnswer::Simple => {
                        local.answer(&q, &mut to_client);
                        build::ready_for_query(&mut to_client, io[PRIMARY].tx);
                    }
                }
            }
        }
        // 3. Backend answers → client, in batch order.
        for (k, &id) in node_ids.iter().enumerate() {
            if let Err(e) = drain_node(
                k,
                &mut io,
                &mut order,
                &mut to_client,
                backends,
                state,
                routed,
            ) {
                state.failed_node = Some(id);
                return RelayEnd::BackendFailed(format!("node {id}: {e}"));
            }
        }
        let replicated = advance_replication(routed.router, &mut io, &mut order);
        // 4. Writes.
        for (k, n) in io.iter_mut().enumerate() {
            if n.has_output() {
                let NodeIo { out, out_from, .. } = n;
                if let Err(e) = write_some(&mut backends[k].stream, out, out_from) {
                    state.failed_node = Some(node_ids[k]);
                    return RelayEnd::BackendFailed(format!(
                        "unable to forward message to backend node {}: {e}",
                        node_ids[k]
                    ));
                }
            }
        }
        if to_client_from < to_client.len() {
            if let Err(e) = write_some(client, &mut to_client, &mut to_client_from) {
                state.reusable = false;
                return RelayEnd::ClientError(e);
            }
        }
        let idle = order.is_empty()
            && io
                .iter()
                .all(|n| n.queue.is_empty() && !n.has_output() && n.remaining == 0)
            && routed.router.client_remaining == 0
            && routed.router.open.is_none()
            && routed.router.replicating.is_none();
        if terminated {
            // Nobody reads answers any more.
            to_client.clear();
            to_client_from = 0;
        }
        // Native replication: the other nodes finish what they were sent first (closing a
        // socket with unread answers resets it, and the node would drop the writes still
        // queued behind them).
        if terminated && !io.iter().any(NodeIo::has_output) && (idle || !routed.cfg.replicate) {
            state.reusable = idle && !state.backend_fatal;
            return RelayEnd::ClientClosed;
        }
        let arrived = std::mem::take(&mut routed.router.catalog_arrived)
            | std::mem::take(&mut routed.router.now_arrived)
            | replicated;
        if arrived && cfrom < cto {
            // The batches held for the catalog's (or timestamp's) answer can be routed now.
            continue;
        }
        if routed.router.snapshot_step_held && cfrom < cto {
            // Held batches go out as soon as the marked step is answered everywhere.
            routed.end_snapshot_step(&io, order.is_empty());
            if !routed.router.snapshot_step_held {
                continue;
            }
        }
        // 5. Wait.
        let client_readable = !terminated && pending_local.is_none() && cto < cbuf.len();
        let mut cflags = PollFlags::empty();
        if client_readable {
            cflags |= PollFlags::POLLIN;
        }
        if to_client_from < to_client.len() {
            cflags |= PollFlags::POLLOUT;
        }
        let want_read = |k: usize, io: &[NodeIo], order: &VecDeque<usize>| -> bool {
            match io[k].queue.front() {
                Some(e) if !e.forward => true,
                Some(_) => order.front() == Some(&k),
                // Unsolicited messages (NOTIFY, notices) while idle.
                None => true,
            }
        };
        for (k, f) in bflags.iter_mut().enumerate() {
            *f = PollFlags::empty();
            if to_client_from >= to_client.len() && want_read(k, &io, &order) {
                *f |= PollFlags::POLLIN;
            }
            if io[k].has_output() {
                *f |= PollFlags::POLLOUT;
            }
        }
        let client_ready = match prepare_poll(client, &mut cflags) {
            Ok(r) => r,
            Err(e) => return RelayEnd::ClientError(e),
        };
        let mut ready = client_ready;
        for (k, b) in backends.iter_mut().enumerate() {
            match prepare_poll(&mut b.stream, &mut bflags[k]) {
                Ok(r) => {
                    bready[k] = r;
                    ready |= r;
                }
                Err(e) => {
                    state.failed_node = Some(node_ids[k]);
                    return RelayEnd::BackendFailed(format!(
                        "unable to write to backend node {}: {e}",
                        node_ids[k]
                    ));
                }
            }
        }
        let timeout = if ready {
            nix::poll::PollTimeout::ZERO
        } else {
            idle_timeout(routed.cfg.client_idle_limit, idle)
        };
        let cev = match poll_session(client, cflags, backends, &bflags, waker, timeout, &mut bev) {
            Ok(None) if !ready => return RelayEnd::IdleTimeout,
            Ok(None) => PollFlags::empty(),
            Ok(Some(ev)) => ev,
            Err(e) => return RelayEnd::BackendFailed(format!("poll failed: {e}")),
        };
        let cev = if client_ready {
            cev | PollFlags::POLLIN
        } else {
            cev
        };
        for (e, r) in bev.iter_mut().zip(&bready) {
            if *r {
                *e |= PollFlags::POLLIN;
            }
        }
        if let Some(end) = signalled_end(local) {
            return end;
        }
        if client_readable && cev.intersects(READABLE) {
            match read_some(client, &mut cbuf[cto..]) {
                Ok(Some(0)) => {
                    terminated = true;
                }
                Ok(Some(n)) => cto += n,
                Ok(None) => {}
                Err(e) => return RelayEnd::ClientError(e),
            }
        }
        for k in 0..io.len() {
            if bflags[k].contains(PollFlags::POLLIN) && bev[k].intersects(READABLE) {
                let n = &mut io[k];
                if n.in_from > 0 {
                    n.inbuf.copy_within(n.in_from..n.in_to, 0);
                    n.in_to -= n.in_from;
                    n.in_from = 0;
                }
                if n.in_to == n.inbuf.len() {
                    n.inbuf.resize(n.inbuf.len() * 2, 0);
                }
                match read_some(&mut backends[k].stream, &mut n.inbuf[n.in_to..]) {
                    Ok(Some(0)) => {
                        state.failed_node = Some(node_ids[k]);
                        return RelayEnd::BackendFailed(format!(
                            "backend node {} closed the connection",
                            node_ids[k]
                        ));
                    }
                    Ok(Some(r)) => n.in_to += r,
                    Ok(None) => {}
                    Err(e) => {
                        state.failed_node = Some(node_ids[k]);
                        return RelayEnd::BackendFailed(format!(
                            "unable to read data from backend node {}: {e}",
                            node_ids[k]
                        ));
                    }
                }
            }
        }
    }
}

/// Waits for the client, the session's backends (`bflags`, events into `bev`) or the
/// waker; the client's events, or None on timeout. Two backends (the usual session) poll
/// from an array, more from a vector.
fn poll_session(
    client: &Stream,
    cflags: PollFlags,
    backends: &[&mut BackendConn],
    bflags: &[PollFlags],
    waker: &Waker,
    timeout: nix::poll::PollTimeout,
    bev: &mut [PollFlags],
) -> nix::Result<Option<PollFlags>> {
    fn finish(fds: &[PollFd<'_>], waker: &Waker, bev: &mut [PollFlags]) -> PollFlags {
        let ev = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
        if fds.last().is_some_and(|f| !ev(f).is_empty()) {
            waker.drain();
        }
        for (k, e) in bev.iter_mut().enumerate() {
            *e = ev(&fds[k + 1]);
        }
        ev(&fds[0])
    }
    let n = if let [p, s] = backends {
        let mut fds = [
            PollFd::new(client.as_fd(), cflags),
            PollFd::new(p.stream.as_fd(), bflags[0]),
            PollFd::new(s.stream.as_fd(), bflags[1]),
            PollFd::new(waker.fd(), PollFlags::POLLIN),
        ];
        let n = match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => 1,
            r => r?,
        };
        (n, finish(&fds, waker, bev))
    } else {
        let mut fds = Vec::with_capacity(backends.len() + 2);
        fds.push(PollFd::new(client.as_fd(), cflags));
        for (b, f) in backends.iter().zip(bflags) {
            fds.push(PollFd::new(b.stream.as_fd(), *f));
        }
        fds.push(PollFd::new(waker.fd(), PollFlags::POLLIN));
        let n = match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => 1,
            r => r?,
        };
        (n, finish(&fds, waker, bev))
    };
    Ok((n.0 != 0).then_some(n.1))
}

/// Passes (or drops) node `k`'s buffered answers while they belong to a batch that may
/// be answered now.
/// The session-state statements of a batch that does not go to every connection, sent
/// (answers hidden) to those it does not go to: a SET inside a multi-statement query, or
/// the COMMIT of a pipeline whose writes went to the primary, reaches the standbys too.
fn echo_session_statements(router: &mut Router, target: Target, io: &mut [NodeIo]) {
    if target == Target::All || router.batch_echo.is_empty() {
        return;
    }
    let text = router.batch_echo.join(";");
    for (k, n) in io.iter_mut().enumerate() {
        if !target.includes(k) {
            build::query(&mut n.out, &text);
            n.queue.push_back(Expect {
                synced: true,
                ..Expect::default()
            });
            n.joined_tx |= router.batch_starts_tx;
        }
    }
}

/// Ends the open (flushed, not synced) batch with a Sync on the nodes it went to; its
/// ReadyForQuery is pgpool's, not the client's.
fn close_flushed_batch(router: &mut Router, io: &mut [NodeIo]) {
    let Some(t) = router.open.take() else {
        return;
    };
    router.open_flushed = false;
    for (k, n) in io.iter_mut().enumerate() {
        if t.includes(k) {
            let s = build::begin(&mut n.out, b'S');
            build::finish(&mut n.out, s);
            if let Some(e) = n.queue.back_mut() {
                e.synced = true;
                e.hide.ready = true;
            }
        }
    }
}

/// Native replication: the next step of the write in progress once the nodes it waits
/// for have answered everything they were sent. True when the write is done (held
/// batches may go).
fn advance_replication(
    router: &mut Router,
    io: &mut [NodeIo],
    order: &mut VecDeque<usize>,
) -> bool {
    let all_done = |io: &[NodeIo]| io.iter().all(|n| n.queue.is_empty());
    let was = router.replicating.is_some();
    router.replicating = match router.replicating.take() {
        Some(Replicating::Main {
            bytes,
            starts_tx,
            commit_after,
        }) if io[PRIMARY].queue.is_empty() => {
            let others = PRIMARY + 1..io.len();
            dispatch(router, &bytes, Target::All, io, others.clone());
            for n in &mut io[others] {
                let hide = HiddenAnswers {
                    parse: n.batch_hide,
                    ..HiddenAnswers::default()
                };
                n.queue.push_back(Expect {
                    hide,
                    synced: true,
                    ..Expect::default()
                });
                n.joined_tx |= starts_tx;
            }
            Some(Replicating::Others { commit_after })
        }
        Some(Replicating::Others { commit_after: true }) if all_done(io) => {
            for (k, n) in io.iter_mut().enumerate() {
                build::query(&mut n.out, "COMMIT");
                n.queue.push_back(Expect {
                    forward: k == PRIMARY,
                    hide: HiddenAnswers {
                        commands: 1,
                        ..HiddenAnswers::default()
                    },
                    synced: true,
                    ..Expect::default()
                });
            }
            order.push_back(PRIMARY);
            Some(Replicating::Commit)
        }
        Some(Replicating::Others { .. } | Replicating::Commit) if all_done(io) => None,
        other => other,
    };
    was && router.replicating.is_none()
}

fn drain_node(
    k: usize,
    io: &mut [NodeIo],
    order: &mut VecDeque<usize>,
    to_client: &mut Vec<u8>,
    backends: &mut [&mut BackendConn],
    state: &mut RoutedState,
    routed: &mut Routed<'_>,
) -> Result<(), String> {
    loop {
        let n = &mut io[k];
        if n.in_from == n.in_to {
            n.in_from = 0;
            n.in_to = 0;
            return Ok(());
        }
        // May this node's data be consumed now?
        let (forward, may) = match n.queue.front() {
            Some(e) if !e.forward => (false, true),
            Some(_) => (true, order.front() == Some(&k)),
            // Unsolicited: NOTIFY/notice/ParameterStatus from the primary reach the
            // client between batches; the standby's are dropped.
            None => (k == PRIMARY, order.is_empty()),
        };
        if !may {
            return Ok(());
        }
        if n.remaining > 0 {
            let take = n.remaining.min(n.in_to - n.in_from);
            if n.remaining_forward {
                to_client.extend_from_slice(&n.inbuf[n.in_from..n.in_from + take]);
            }
            n.in_from += take;
            n.remaining -= take;
            continue;
        }
        // Between messages: the batch's statement notices go first.
        if forward {
            if let Some(e) = n.queue.front_mut() {
                if !e.notices.is_empty() {
                    to_client.append(&mut e.notices);
                }
            }
        }
        let avail = n.in_to - n.in_from;
        if avail < 5 {
            return Ok(());
        }
        let h = match scan_header(&n.inbuf[n.in_from..n.in_to]) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let capture = n.queue.front().map_or(Capture::None, |e| e.capture);
        let inspect = matches!(h.tag, b'Z' | b'E' | b'S' | b'1' | b'3')
            || (capture != Capture::None && h.tag == b'D');
        if inspect && avail < h.total_len() {
            // Small messages are looked at whole.
            if h.total_len() > n.inbuf.len() {
                n.inbuf.resize(h.total_len(), 0);
            }
            return Ok(());
        }
        let start = n.in_from;
        let hide = n.queue.front_mut().is_some_and(|e| e.hide.take(h.tag));
        let pass = forward && !hide;
        if avail >= h.total_len() {
            if pass {
                to_client.extend_from_slice(&n.inbuf[start..start + h.total_len()]);
            }
            n.in_from += h.total_len();
        } else {
            if pass {
                to_client.extend_from_slice(&n.inbuf[start..n.in_to]);
            }
            n.remaining = h.total_len() - avail;
            n.remaining_forward = pass;
            n.in_from = n.in_to;
        }
        match h.tag {
            b'Z' => {
                let status = n.inbuf.get(start + 5).copied().unwrap_or(b'I');
                n.tx = status;
                // A BEGIN sent after this batch may still be on its way.
                n.joined_tx = status != b'I' || (n.joined_tx && n.queue.len() > 1);
                backends[k].tx_status = status;
                // A flushed (unsynced) batch ends with the ReadyForQuery of its Sync.
                let mut popped = Capture::None;
                if let Some(e) = n.queue.pop_front() {
                    popped = e.capture;
                    if e.forward {
                        order.pop_front();
                        if order.is_empty() {
                            crate::sys::set_title_status(crate::sys::idle_status(status));
                        }
                    }
                    match e.capture {
                        Capture::Catalog => {
                            routed.catalog.finish_load(!routed.router.catalog_failed);
                            routed.router.catalog_wait = false;
                            routed.router.catalog_arrived = true;
                        }
                        Capture::Now => {
                            routed.router.now_failed = routed.router.now.is_none();
                            routed.router.now_wait = false;
                            routed.router.now_arrived = true;
                        }
                        Capture::None => {}
                    }
                }
                if k == PRIMARY && status == b'I' && popped != Capture::Now {
                    routed.router.now = None;
                    routed.router.now_failed = false;
                }
                if k == PRIMARY && status == b'I' {
                    routed.router.write_in_tx = false;
                    routed.router.serializable_tx = false;
                    routed.router.written.clear();
                    if std::mem::take(&mut routed.router.ddl_in_tx) {
                        routed
                            .shm
                            .cluster()
                            .catalog_generation
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    }
                    // Portals end with the transaction; the unnamed one's entry is kept
                    // (it is rebound before any use) to spare an allocation per query.
                    routed.router.portals.retain(|name, _| name.is_empty());
                }
            }
            b'D' if capture == Capture::Catalog => {
                routed
                    .catalog
                    .add_row(&n.inbuf[start + 5..start + h.total_len()]);
            }
            b'D' if capture == Capture::Now => {
                let body = &n.inbuf[start + 5..start + h.total_len()];
                routed.router.now = protocol::message::DataRowFields::new(body)
                    .next()
                    .flatten()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_string);
            }
            b'E' if capture == Capture::Catalog => {
                let f = parse_error_fields(&n.inbuf[start + 5..start + h.total_len()]);
                log::debug!("catalog query failed: {}", f.message);
                routed.router.catalog_failed = true;
            }
            b'E' if capture == Capture::Now => {
                let f = parse_error_fields(&n.inbuf[start + 5..start + h.total_len()]);
                log::debug!("timestamp query failed: {}", f.message);
            }
            b'E' => {
                let body = &n.inbuf[start + 5..start + h.total_len()];
                let f = parse_error_fields(body);
                let stats = &routed.shm.backend(routed.cfg.node_ids[k]).stats;
                match f.severity.as_str() {
                    "FATAL" => {
                        stats
                            .fatal_cnt
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        state.backend_fatal = true;
                    }
                    "PANIC" => {
                        stats
                            .panic_cnt
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        state.backend_fatal = true;
                    }
                    _ => {
                        stats
                            .error_cnt
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                if f.code == "57P01" {
                    state.backend_shutdown = true;
                }
                if !forward && k != PRIMARY && routed.cfg.replicate {
                    // The main node succeeded (or will say so): this node now differs.
                    log::warn!(
                        "node {} failed a statement sent to all nodes: {} (it may no longer match node {})",
                        routed.cfg.node_ids[k],
                        f.message,
                        routed.cfg.node_ids[PRIMARY]
                    );
                } else if !forward && k != PRIMARY {
                    log::debug!(
                        "error on load-balance node {} for a statement sent to all nodes: {}",
                        routed.cfg.node_ids[k],
                        f.message
                    );
                }
            }
            b'S' => {
                let body = n.inbuf[start + 5..start + h.total_len()].to_vec();
                backends[k].note_parameter(&body);
            }
            _ => {}
        }
    }
}

/// log_statement, log_per_node_statement and notice_per_node_statement for a batch sent
/// to `target`; notices are appended to `notices` for the client.
fn log_statements(
    batch: &[u8],
    target: Target,
    node_ids: &[usize],
    backends: &[&mut BackendConn],
    cfg: &RoutedConfig<'_>,
    notices: &mut Vec<u8>,
) {
    let mut i = 0;
    while i + 5 <= batch.len() {
        let Ok(Some(h)) = scan_header(&batch[i..]) else {
            break;
        };
        let end = (i + h.total_len()).min(batch.len());
        let body = &batch[i + 5..end];
        let text = match h.tag {
            b'Q' => Some(cstr(body).0),
            b'P' => Some(cstr(cstr(body).1).0),
            _ => None,
        };
        if let Some(t) = text {
            if cfg.log_statement {
                crate::child::relay::log_statement_text(t);
            }
            for k in 0..node_ids.len() {
                if target.includes(k) {
                    if cfg.log_per_node_statement {
                        crate::child::relay::log_statement(node_ids[k], backends[k].pid, t);
                    }
                    if cfg.notice_per_node_statement {
                        crate::child::relay::statement_notice(notices, node_ids[k], t);
                    }
                }
            }
        }
        i = end;
    }
}
