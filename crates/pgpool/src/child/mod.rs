//! A pre-forked child process: waits for a client on the inherited listening sockets
//! (epoll with EPOLLEXCLUSIVE, so one connection wakes one child), serves it to the
//! end, keeps its backend connections pooled, and honours child_life_time,
//! child_max_connections, connection_life_time and the shutdown signals.

mod admin;
mod cancel;
mod catalog;
mod client_auth;
mod client_log;
mod dml_adaptive;
mod lb_choice;
mod local_ext;
mod multi;
mod pool;
mod redirect;
mod relay;
mod relay_shared;
mod replicate;
mod session;
mod session_conns;
mod session_set;

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use config::hba::HbaLine;
use config::passwd::PoolPasswd;
use config::{ClusteringMode, Config};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::Signal;
use shmem::{BackendRole, ChildState, Shmem};

use crate::net::{Listeners, Stream};
use crate::sys::{self, Waker};

pub(crate) use lb_choice::{log_lb_choice, weighted_choice};
pub use pool::ConnectionPool;
pub use relay::open_query_cache;
use relay::RelayBuffers;

/// Everything a child needs, inherited from the main process at fork.
pub struct ChildContext<'a> {
    pub index: usize,
    /// Shared with the sessions it serves (their local commands answer from it), so a
    /// reload replaces it without changing what a running session sees.
    pub cfg: std::sync::Arc<Config>,
    pub shm: &'a Shmem,
    /// memory_cache_enabled: the query cache's storage.
    pub qcache: Option<&'a shmem::QueryCache>,
    /// memqcache_method = memcached: this child's connection to it.
    pub memcached: Option<crate::memcached::Memcached>,
    pub hba: Vec<HbaLine>,
    pub passwd: PoolPasswd,
    pub aes_key: Option<String>,
    /// Frontend TLS configuration (ssl = on).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Shared by the threads of a child serving several sessions at once.
    pub pool: &'a std::sync::Mutex<ConnectionPool>,
    pub bufs: RelayBuffers,
    pub waker: &'a Waker,
    /// Routing decisions by query text (load balancing).
    pub classifier: sql::ClassifierCache,
    pub rules: sql::Rules,
    /// Volatile functions and unlogged tables of the database last served.
    pub catalog: catalog::Catalog,
    /// app_name_redirect_preference_list and database_redirect_preference_list.
    pub app_redirects: Vec<redirect::Rule>,
    pub db_redirects: Vec<redirect::Rule>,
    /// user_redirect_preference_list.
    pub user_redirects: Vec<redirect::Rule>,
    /// dml_adaptive_object_relationship_list.
    pub dml_relations: dml_adaptive::Relationships,
    /// Sequence number of the failover this child last asked for (report_node_failure),
    /// so a session start can wait for its outcome.
    pub failover_requested: std::cell::Cell<Option<u64>>,
    /// This thread serves the child's only session (one client per child, as
    /// Pgpool-II): the process title and the log prefix's session names are its own.
    pub serves_alone: bool,
    smart_shutdown: bool,
}

/// The process title of a child between sessions (as Pgpool-II's).
pub const WAITING_TITLE: &str = "pgpool: wait for connection request";

/// Builds the classification rules from the configuration; a bad pattern is logged
/// and its list ignored.
pub fn rules_from(cfg: &Config) -> sql::Rules {
    let mut r = sql::Rules::default()
        .with_allow_sql_comments(cfg.allow_sql_comments)
        .with_ignore_leading_white_space(cfg.ignore_leading_white_space)
        .with_query_cache_facts(cfg.memory_cache_enabled);
    match r.clone().with_write_function_list(&cfg.write_function_list) {
        Ok(x) => r = x,
        Err(e) => log::error!("write_function_list: {e}"),
    }
    match r
        .clone()
        .with_read_only_function_list(&cfg.read_only_function_list)
    {
        Ok(x) => r = x,
        Err(e) => log::error!("read_only_function_list: {e}"),
    }
    // Only the modes with a primary have somewhere to send those queries (in native
    // replication Pgpool-II load-balances them like any read).
    let with_primary = matches!(
        cfg.backend_clustering_mode,
        ClusteringMode::StreamingReplication | ClusteringMode::LogicalReplication
    );
    let patterns: &[String] = if with_primary {
        &cfg.primary_routing_query_pattern_list
    } else {
        &[]
    };
    match r.clone().with_primary_routing_query_pattern_list(patterns) {
        Ok(x) => r = x,
        Err(e) => log::error!("primary_routing_query_pattern_list: {e}"),
    }
    r
}

impl ChildContext<'_> {
    /// The child's pooled connection sets (held only between two pool operations,
    /// never across a network wait).
    pub fn pool(&self) -> std::sync::MutexGuard<'_, ConnectionPool> {
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node a new session is sent to: the primary in streaming/logical
    /// replication mode, the first live node otherwise.
    pub fn target_node(&self) -> Option<usize> {
        let n = self.cfg.backends.len();
        let alive = |i: usize| self.shm.backend(i).status().is_alive();
        if matches!(
            self.cfg.backend_clustering_mode,
            ClusteringMode::StreamingReplication | ClusteringMode::LogicalReplication
        ) {
            let p = self.shm.cluster().primary_node_id();
            if p >= 0 && (p as usize) < n && alive(p as usize) {
                return Some(p as usize);
            }
            if let Some(i) =
                (0..n).find(|&i| alive(i) && self.shm.backend(i).role() == BackendRole::Primary)
            {
                return Some(i);
            }
        }
        (0..n).find(|&i| alive(i))
    }

    fn load_routing_rules(&mut self) {
        self.rules = rules_from(&self.cfg);
        self.app_redirects = redirect::parse_list(
            &self.cfg.app_name_redirect_preference_list,
            "app_name_redirect_preference_list",
        );
        self.db_redirects = redirect::parse_list(
            &self.cfg.database_redirect_preference_list,
            "database_redirect_preference_list",
        );
        self.user_redirects = redirect::parse_list(
            &self.cfg.user_redirect_preference_list,
            "user_redirect_preference_list",
        );
        self.dml_relations = match dml_adaptive::Relationships::parse(
            &self.cfg.dml_adaptive_object_relationship_list,
        ) {
            Ok(r) => r,
            Err(e) => {
                log::error!("dml_adaptive_object_relationship_list: {e}");
                dml_adaptive::Relationships::default()
            }
        };
    }

    /// Does load balancing apply (load_balance_mode in a mode with several readable
    /// nodes)?
    pub fn load_balancing(&self) -> bool {
        self.cfg.load_balance_mode && self.cfg.backend_clustering_mode != ClusteringMode::Raw
    }

    /// Does a session connect to every live node (every mode but raw, as Pgpool-II)?
    pub fn joins_every_node(&self) -> bool {
        self.cfg.backend_clustering_mode != ClusteringMode::Raw
    }

    /// Native replication (and snapshot isolation) mode: pgpool itself replicates, so
    /// writes go to every live node.
    pub fn replicating(&self) -> bool {
        matches!(
            self.cfg.backend_clustering_mode,
            ClusteringMode::NativeReplication | ClusteringMode::SnapshotIsolation
        )
    }

    /// May reads go to `node` now (up, and within delay_threshold or
    /// delay_threshold_by_time)?
    pub fn usable_for_reads(&self, node: usize) -> bool {
        self.shm
            .backend(node)
            .usable_for_reads(self.cfg.delay_limit())
    }

    /// reserved_connections: refuse when too few children are left free.
    pub fn too_many_clients(&self) -> bool {
        let reserved = self.cfg.reserved_connections as usize;
        if reserved == 0 {
            return false;
        }
        let total = self.shm.layout().num_children;
        self.connected_children() > total.saturating_sub(reserved)
    }

    /// Children serving a client now.
    pub fn connected_children(&self) -> usize {
        (0..self.shm.layout().num_children)
            .filter(|&i| self.shm.child(i).state() == ChildState::Active)
            .count()
    }

    pub fn shutdown_requested(&self) -> bool {
        self.smart_shutdown || self.shm.cluster().shutting_down.load(Ordering::Acquire) != 0
    }

    /// A session saw `node` fail. A node that refused a new connection is not listening:
    /// the child checks once more itself (a fresh log-in) and requests failover if that
    /// fails too, as Pgpool-II fails over at once. Other failures (a reset or a timeout)
    /// are ambiguous: with health checks on for the node, its health-check process is
    /// woken to confirm with its retries; without them the child checks once: one broken
    /// socket is not a dead server.
    pub fn report_node_failure(&self, node: usize, refused: bool) {
        let state = self.shm.backend(node);
        if !state.status().is_alive() {
            return;
        }
        let hc_pid = state.health_check_pid.load(Ordering::Acquire);
        if !refused && self.cfg.health_check(node).period > 0 && hc_pid > 0 {
            state.suspect.fetch_add(1, Ordering::Relaxed);
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(hc_pid), Signal::SIGUSR2);
        } else {
            let user = self.cfg.health_check(node).user;
            let secret = client_auth::backend_secret_from_passwd(self, &user);
            // Bounded: the client of this child is waiting.
            let limit = Some(std::time::Duration::from_secs(3));
            if crate::health_check::check_once(&self.cfg, node, secret.as_ref(), limit).is_ok() {
                log::info!("node {node} still accepts connections: no failover");
                return;
            }
            log::warn!("node {node} does not accept connections: requesting failover");
            match self.shm.request(
                shmem::RequestKind::Detach,
                node as i32,
                shmem::REQUEST_FROM_CHILD,
            ) {
                Some(seq) => self.failover_requested.set(Some(seq)),
                None => log::error!("failover request queue is full"),
            }
        }
    }

    /// After a failed connection to `node`: waits (at most `limit`) for the failover this
    /// child requested to be done, or for the node to be marked down; true if it was.
    pub fn await_failover(&self, node: usize, limit: std::time::Duration) -> bool {
        let Some(seq) = self.failover_requested.take() else {
            return false;
        };
        self.shm.requests().wait_done(seq, limit, || false);
        !self.shm.backend(node).status().is_alive()
    }

    /// The session's connection to `node` in pool `slot` was the target of a
    /// pg_terminate_backend() sent through pgpool.
    pub fn terminated_on_request(&self, slot: usize, node: usize) -> bool {
        slot < self.shm.layout().max_pool
            && node < shmem::MAX_BACKENDS
            && self
                .shm
                .conn(self.index, slot, node)
                .terminating
                .load(Ordering::Acquire)
                != 0
    }

    /// Decrypts the AES pool_passwd entry of `user` with the key file contents.
    pub fn decrypt_entry(&self, user: &str) -> Option<String> {
        let key = self.aes_key.as_deref()?;
        match self.passwd.get(user)? {
            config::passwd::PasswordEntry::Aes(data) => config::passwd::decrypt_aes(data, key).ok(),
            _ => None,
        }
    }
}

/// A query that calls pg_terminate_backend(pid) of a backend pgpool holds: logged in
/// Pgpool-II's words, the victim's connection is flagged (its FATAL is not a node
/// failure), and the node it lives on is returned, for the query to go there.
pub fn terminate_request(shm: &Shmem, text: &[u8]) -> Option<usize> {
    let pid = sql::terminate_backend_pid(text)?;
    match shm.find_backend_pid(pid) {
        Some((node, conn)) => {
            log::info!("found the pg_terminate_backend request for backend pid:{pid} on backend node:{node}\nDETAIL:  setting the connection flag");
            conn.terminating.store(1, Ordering::Release);
            Some(node)
        }
        None => {
            log::info!("found the pg_terminate_backend request for backend pid:{pid}, but the backend connection does not belong to pgpool-II");
            None
        }
    }
}

/// Inputs for [`run`].
pub struct ChildSetup<'a> {
    pub index: usize,
    pub cfg: Config,
    pub shm: &'a Shmem,
    pub qcache: Option<&'a shmem::QueryCache>,
    pub listeners: &'a Listeners,
    pub hba: Vec<HbaLine>,
    pub passwd: PoolPasswd,
    pub aes_key: Option<String>,
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// The child's main loop; never returns.
pub fn run(setup: ChildSetup<'_>) -> ! {
    let waker = sys::enter_process(crate::logging::ProcessKind::Child, sys::WORKER_SIGNALS);
    sys::keep_heap_between_sessions();
    let num_backends = setup.cfg.backends.len();
    let max_pool = setup.cfg.max_pool as usize;
    let pool = std::sync::Mutex::new(ConnectionPool::new(max_pool, setup.index, num_backends));
    let memcached = setup
        .qcache
        .and_then(|_| crate::memcached::Memcached::configured(&setup.cfg));
    let mut ctx = ChildContext {
        index: setup.index,
        pool: &pool,
        cfg: std::sync::Arc::new(setup.cfg),
        shm: setup.shm,
        memcached,
        qcache: setup.qcache,
        hba: setup.hba,
        passwd: setup.passwd,
        aes_key: setup.aes_key,
        tls: setup.tls,
        bufs: RelayBuffers::default(),
        waker: &waker,
        classifier: sql::ClassifierCache::new(4096),
        catalog: catalog::Catalog::default(),
        rules: sql::Rules::default(),
        app_redirects: Vec::new(),
        db_redirects: Vec::new(),
        user_redirects: Vec::new(),
        dml_relations: dml_adaptive::Relationships::default(),
        failover_requested: std::cell::Cell::new(None),
        serves_alone: true,
        smart_shutdown: false,
    };
    ctx.load_routing_rules();
    let slot = ctx.shm.child(ctx.index);
    slot.start_time.store(shmem::now_secs(), Ordering::Relaxed);
    slot.client_connection_count.store(0, Ordering::Relaxed);
    slot.set_state(ChildState::WaitForConnection);
    sys::set_title(WAITING_TITLE);
    let sessions = ctx.cfg.child_sessions();
    let served = if sessions > 1 {
        multi::serve_many(&mut ctx, setup.listeners, sessions)
    } else {
        accept_loop(&mut ctx, setup.listeners)
    };
    let code = match served {
        Ok(code) => code,
        Err(e) => {
            log::error!("child process failed: {e}");
            1
        }
    };
    leave(&ctx, code);
}

/// The child exits (`code` 0: shutdown, 1: replace me), its pooled connections closed.
fn leave(ctx: &ChildContext<'_>, code: i32) -> ! {
    ctx.pool().clear(ctx.shm);
    ctx.shm.child(ctx.index).set_state(ChildState::Unused);
    sys::exit_now(code);
}

fn epoll_setup(listeners: &Listeners, waker: &Waker) -> nix::Result<Epoll> {
    let ep = listener_epoll(listeners)?;
    ep.add(waker.fd(), EpollEvent::new(EpollFlags::EPOLLIN, u64::MAX))?;
    Ok(ep)
}

/// An epoll set of the listening sockets (EPOLLEXCLUSIVE: a connection wakes one child).
fn listener_epoll(listeners: &Listeners) -> nix::Result<Epoll> {
    let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let mut token = 0u64;
    for l in &listeners.tcp {
        ep.add(
            l.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, token),
        )?;
        token += 1;
    }
    for (l, _) in &listeners.unix {
        ep.add(
            l.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, token),
        )?;
        token += 1;
    }
    Ok(ep)
}

fn try_accept(listeners: &Listeners) -> Option<Stream> {
    for l in &listeners.tcp {
        if let Ok((s, _)) = l.accept() {
            let _ = s.set_nodelay(true);
            let _ = s.set_nonblocking(false);
            return Some(Stream::Tcp(s));
        }
    }
    for (l, _) in &listeners.unix {
        if let Ok((s, _)) = l.accept() {
            let _ = s.set_nonblocking(false);
            return Some(Stream::Unix(s));
        }
    }
    None
}

/// Returns the exit code for the main process: 0 normal, 1 please re-fork.
fn accept_loop(ctx: &mut ChildContext<'_>, listeners: &Listeners) -> nix::Result<i32> {
    let ep = epoll_setup(listeners, ctx.waker)?;
    let mut served: u64 = 0;
    let mut idle_since = Instant::now();
    let mut events = [EpollEvent::empty(); 8];
    loop {
        let pending = sys::take_pending();
        if sys::has(pending, Signal::SIGINT) || sys::has(pending, Signal::SIGQUIT) {
            return Ok(0);
        }
        if sys::has(pending, Signal::SIGTERM) {
            ctx.smart_shutdown = true;
        }
        if ctx.shutdown_requested() {
            return Ok(0);
        }
        if sys::has(pending, Signal::SIGHUP) {
            reload(ctx);
        }
        if sys::has(pending, Signal::SIGUSR1) {
            // Backend status changed: drop connections to nodes that went away.
            let shm = ctx.shm;
            ctx.pool()
                .drop_dead_nodes(|n| shm.backend(n).status().is_alive(), shm);
        }
        ctx.pool().expire(ctx.cfg.connection_life_time, ctx.shm);
        let life = ctx.cfg.child_life_time;
        if life > 0 && idle_since.elapsed().as_secs() >= life {
            log::debug!("child_life_time ({life} s) expired; exiting to be replaced");
            return Ok(1);
        }
        // Wake up at least once a second to honour the timers above.
        let n = match ep.wait(&mut events, EpollTimeout::from(1000u16)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        let mut got_listener = false;
        for ev in &events[..n] {
            if ev.data() == u64::MAX {
                ctx.waker.drain();
            } else {
                got_listener = true;
            }
        }
        if !got_listener {
            continue;
        }
        while let Some(stream) = try_accept(listeners) {
            // A reload may have changed the nodes since the last signal was seen.
            if crate::node_table::refresh(std::sync::Arc::make_mut(&mut ctx.cfg), ctx.shm) {
                ctx.pool().resize_nodes(ctx.cfg.backends.len(), ctx.shm);
            }
            session::handle_connection(ctx, stream);
            served += 1;
            idle_since = Instant::now();
            let max = ctx.cfg.child_max_connections;
            if max > 0 && served >= max {
                log::info!("child_max_connections ({max}) reached; exiting to be replaced");
                return Ok(1);
            }
            let p = sys::peek_pending();
            if sys::has(p, Signal::SIGTERM)
                || sys::has(p, Signal::SIGINT)
                || sys::has(p, Signal::SIGQUIT)
            {
                break;
            }
        }
    }
}

fn reload(ctx: &mut ChildContext<'_>) {
    match Config::load(&ctx.cfg.config_file) {
        Ok(newer) => {
            crate::logging::configure(&newer);
            let hba_path = crate::hba_path(&newer);
            if newer.enable_pool_hba {
                match config::hba::load_hba(&hba_path) {
                    Ok(h) => ctx.hba = h,
                    Err(e) => log::warn!("keeping old pool_hba.conf: {e}"),
                }
            }
            match crate::load_passwd(&newer) {
                Ok(p) => ctx.passwd = p,
                Err(e) => log::warn!("keeping old pool_passwd: {e}"),
            }
            // The pool size stays as the child was started with (the main process warns
            // about it); the node list is the main process's.
            let mut newer = newer;
            newer.max_pool = ctx.cfg.max_pool;
            crate::node_table::adopt(&mut newer, ctx.shm);
            ctx.cfg = std::sync::Arc::new(newer);
            ctx.pool().resize_nodes(ctx.cfg.backends.len(), ctx.shm);
            ctx.load_routing_rules();
        }
        Err(e) => log::warn!("reload failed, keeping old configuration: {e}"),
    }
}
