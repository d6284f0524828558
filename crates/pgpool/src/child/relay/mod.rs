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
use crate::child::relay_shared::{
    aborted_answer, ends_failed_transaction, idle_timeout, prepare_poll, read_some, signalled_end,
    LocalAnswer, LocalCommands, RelayEnd, READABLE,
};
use crate::child::replicate::{self, HiddenAnswers, Replicated, ReplicationNeeds};
use crate::net::Stream;
use crate::sys::Waker;

mod cache;
mod client_batches;
mod dispatch;
mod drain;
mod input;
mod node_io;
mod policy;
mod relay_loop;
mod route;
mod stepped;

use cache::CacheCapture;
pub use cache::{open_query_cache, CacheConfig, CacheStore};
use dispatch::*;
use drain::*;
use input::*;
pub use node_io::RelayBuffers;
use node_io::*;
pub use relay_loop::StepIo;
use relay_loop::*;
pub use stepped::SteppedRelay;

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
    /// The batch runs statements that could fail and so abort the transaction there
    /// (everything but a batch that only starts one).
    may_abort: bool,
    /// The query cache: the answer to store, and the relations (bare names; or all)
    /// to invalidate once the batch committed.
    cache: Option<Box<CacheCapture>>,
    invalidates: Vec<String>,
    invalidate_all: bool,
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

/// The relay settings a session may change with PGPOOL SET / RESET (Pgpool-II's
/// "session" context); the router keeps the session's current ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionSettings {
    pub log_statement: bool,
    pub log_per_node_statement: bool,
    pub notice_per_node_statement: bool,
    pub check_unlogged_table: bool,
    pub client_idle_limit: u64,
    pub log_client_messages: bool,
    pub allow_sql_comments: bool,
}

impl SessionSettings {
    pub fn of(cfg: &config::Config) -> Self {
        SessionSettings {
            log_statement: cfg.log_statement,
            log_per_node_statement: cfg.log_per_node_statement,
            // (pgpool's notices reach the client only if client_min_messages lets them)
            notice_per_node_statement: cfg.notice_per_node_statement && cfg.client_sees_notices(),
            check_unlogged_table: cfg.check_unlogged_table,
            client_idle_limit: cfg.client_idle_limit,
            log_client_messages: cfg.log_client_messages,
            allow_sql_comments: cfg.allow_sql_comments,
        }
    }
}

/// Settings of the load-balancing session.
pub struct RelayConfig<'a> {
    pub rules: &'a Rules,
    pub disable_load_balance_on_write: config::LoadBalanceOnWrite,
    pub dml_relations: &'a Relationships,
    pub database: &'a str,
    pub check_temp_table: bool,
    /// The process title follows this session's commands (its child serves it alone).
    pub titles: bool,
    /// The session has one connection: every batch goes there, statements are not
    /// classified (only counted by their leading keyword) and no catalog is read.
    pub fixed: bool,
    /// memory_cache_enabled (and its storage).
    pub cache: Option<CacheConfig<'a>>,
    /// enable_shared_relcache: the catalog facts are shared through the cache's storage
    /// for relcache_expire seconds (0: until a change of the catalog).
    pub relcache: Option<(CacheStore<'a>, i64)>,
    /// Native replication: writes go to every connection of the session.
    pub replicate: bool,
    /// Native replication mode: writes go to the main node first, then to the others
    /// (insert_lock and time functions made constant on the way).
    pub main_first: bool,
    /// relcache_query_target = load_balance_node: the catalog query goes to the
    /// load-balance connection (see `Relay::catalog_conn`).
    pub catalog_from_lb: bool,
    pub insert_lock: bool,
    /// Node id of each connection; index 0 is the primary.
    pub node_ids: &'a [usize],
    /// Each connection's entry in shared memory (busy flags for cancel forwarding).
    pub conn_info: &'a [&'a shmem::BackendConnInfo],
    /// statement_level_load_balance: backend_weight of each connection, to pick the
    /// load-balance connection again for each statement outside transactions (empty: the
    /// session keeps connection 1).
    pub statement_weights: &'a [f64],
    /// delay_threshold in bytes (0 = off).
    pub delay_threshold: u64,
    /// prefer_lower_delay_standby: backend_weight of each connection; when the session's
    /// load-balance node falls behind, reads outside transactions move to the least
    /// delayed standby among them (empty: they go to the primary).
    pub lower_delay_weights: &'a [f64],
}

/// Per-session routing state.
pub struct Router {
    /// The session's current log_statement, client_idle_limit ... (PGPOOL SET).
    pub settings: SessionSettings,
    statements: FxHashMap<Vec<u8>, Statement>,
    /// The session's rules after PGPOOL SET allow_sql_comments made them the child's no more.
    comment_rules: Option<Rules>,
    /// Index of the current load-balance connection.
    lb: usize,
    /// Portal name → node pair index it lives on (both: PRIMARY).
    portals: FxHashMap<Vec<u8>, Target>,
    /// SQL-level prepared statement (PREPARE name) → where it was prepared.
    sql_prepared: FxHashMap<String, PreparedSql>,
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
    /// The batch being routed needs the primary, which the open batch (flushed on a
    /// standby) does not include: that one is closed first with a Sync of pgpool's own.
    close_open: bool,
    /// The last batch was extended messages ending with a Sync (if it started a COPY IN,
    /// the server ignores that Sync)...
    last_extended_synced: bool,
    /// ...and COPY data followed it: the client's next lone Sync belongs to that batch.
    copy_sync_owed: bool,
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
    /// The query cache: the last SET search_path (part of the keys), what the batch
    /// being routed and the current transaction wrote, and a key buffer.
    search_path: String,
    /// The batch being routed is a SELECT whose result the cache will keep.
    batch_needs_primary: bool,
    batch_invalidates: Vec<String>,
    batch_invalidate_all: bool,
    tx_invalidates: Vec<String>,
    tx_invalidate_all: bool,
    cache_key: Vec<u8>,
    /// Statements parsed (and not closed, deallocated or discarded since): the only
    /// ones a Bind without its Parse may be answered from the cache for.
    cache_prepared: HashSet<Vec<u8>>,
}

impl Router {
    /// A session's router: reads go to connection `lb` (0: the main node); the
    /// session's settings.
    pub fn new(lb: usize, settings: SessionSettings) -> Self {
        Router {
            lb,
            settings,
            ..Router::default()
        }
    }
}

impl Default for Router {
    fn default() -> Self {
        Router {
            settings: SessionSettings::default(),
            statements: FxHashMap::default(),
            comment_rules: None,
            lb: 1,
            portals: FxHashMap::default(),
            sql_prepared: FxHashMap::default(),
            write_in_tx: false,
            wrote_in_any_tx: false,
            wrote: false,
            serializable_tx: false,
            open: None,
            open_flushed: false,
            close_open: false,
            last_extended_synced: false,
            copy_sync_owed: false,
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
            search_path: String::new(),
            batch_needs_primary: false,
            batch_invalidates: Vec::new(),
            batch_invalidate_all: false,
            tx_invalidates: Vec::new(),
            tx_invalidate_all: false,
            cache_key: Vec::new(),
            cache_prepared: HashSet::new(),
        }
    }
}

/// A NUL-terminated string off the front of `buf` and what follows (all of `buf` and
/// nothing after it when the NUL is missing).
pub(crate) fn cstr(buf: &[u8]) -> (&[u8], &[u8]) {
    protocol::message::take_cstr(buf).unwrap_or((buf, &[]))
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

pub struct Relay<'s> {
    pub cfg: &'s RelayConfig<'s>,
    pub cache: &'s mut ClassifierCache,
    pub catalog: &'s mut Catalog,
    pub router: &'s mut Router,
    pub shm: &'s shmem::Shmem,
    /// log_client_messages.
    pub client_log: &'s mut Option<crate::child::client_log::ClientLog>,
    /// Snapshot isolation mode: this child's index (its step mark in shared memory).
    pub snapshot_child: Option<usize>,
}

/// A SQL-level prepared statement of the session (also what a batch PREPAREs).
#[derive(Debug, Clone, Copy)]
struct PreparedSql {
    /// Where it was prepared (filled in once the batch is routed).
    target: Target,
    is_write: bool,
    /// The kind of the statement prepared: its EXECUTE counts as one.
    kind: StatementKind,
}

/// What a SQL-level PREPARE / EXECUTE / DEALLOCATE asks of its batch.
struct PreparedUse {
    /// Where it must run (EXECUTE / DEALLOCATE of a known name).
    pin: Option<Target>,
    is_write: bool,
    /// The kind the statement counts as in the backend statistics.
    counts_as: StatementKind,
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
    prepared_kind: Option<StatementKind>,
    /// FETCH / MOVE / CLOSE name.
    cursor_name: Option<String>,
    session_statements: Option<String>,
}

impl StatementRoute {
    fn plain_select() -> Self {
        Self::counted(StatementKind::Select)
    }

    /// A statement known only by its kind (the one connection of a fixed session runs
    /// everything).
    fn counted(kind: StatementKind) -> Self {
        StatementRoute {
            route: Route::LoadBalance,
            is_write: false,
            kind,
            has_effects: false,
            serializable_begin: false,
            starts_tx: false,
            prepared_name: None,
            prepared_kind: None,
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

/// Relays a session over the primary (`conns[0]`) and load-balance connections
/// (`conns[1..]`, node ids in `relay.cfg.node_ids`). Sockets are left in blocking mode
/// on return.
#[allow(clippy::too_many_arguments)]
pub fn relay(
    client: &mut Stream,
    mut conns: Vec<&mut BackendConn>,
    initial: &[u8],
    waker: &Waker,
    local: &mut dyn LocalCommands,
    relay: &mut Relay<'_>,
    bufs: &mut RelayBuffers,
    outcome: &mut RelayOutcome,
) -> RelayEnd {
    let mut state = LoopState::start(client, &mut conns, initial, bufs);
    let mut step = StepIo {
        client,
        backends: &mut conns,
        local,
        bufs,
        outcome,
    };
    let end = relay_loop(&mut state, &mut step, waker, relay);
    state.finish(end, client, &mut conns, relay.router, bufs, outcome)
}

/// What the session learnt, for the release decision.
#[derive(Debug, Default)]
pub struct RelayOutcome {
    pub reusable: bool,
    pub backend_fatal: bool,
    pub backend_shutdown: bool,
    pub failed_node: Option<usize>,
}

#[cfg(test)]
mod tests;
