//! The main process: creates shared memory and the listening sockets, forks
//! `num_init_children` children and re-forks any that exit (with
//! `process_management_mode = dynamic` it keeps the spare count instead, see
//! [`crate::spare`]), reloads on SIGHUP and shuts
//! down in smart, fast or immediate mode on SIGTERM, SIGINT or SIGQUIT. It waits for
//! signals with mio on its self-pipe.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::Config;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmem::{BackendStatus, Layout, Shmem};

use crate::child;
use crate::cli::Options;
use crate::net::Listeners;
use crate::sys::{self, Waker};
use crate::{primary, status_file};

mod spawn;

const MAIN_SIGNALS: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Detaches from the terminal: fork (parent exits), new session, stdin/stdout to
/// /dev/null. stderr stays, so `pgpool > log 2>&1` keeps its log.
pub fn daemonize() -> std::io::Result<()> {
    if sys::fork()?.is_some() {
        sys::exit_now(0);
    }
    nix::unistd::setsid()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2(null.as_raw_fd(), 0)?;
    nix::unistd::dup2(null.as_raw_fd(), 1)?;
    Ok(())
}

/// Kinds of processes the main process supervises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proc {
    Child(usize),
    HealthCheck(usize),
    Pcp,
    SrCheck,
    CacheFeed,
    Watchdog,
    /// Runs one failover's follow_primary_command lines, then exits.
    FollowPrimary,
}

struct Supervisor<'a> {
    cfg: Config,
    opts: &'a Options,
    shm: &'a Shmem,
    qcache: Option<&'a shmem::QueryCache>,
    listeners: &'a Listeners,
    /// Every process the main process forked, by pid.
    procs: HashMap<i32, Proc>,
    shutdown: Option<Signal>,
    /// Frontend TLS (ssl = on), handed to every child.
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Dynamic process management: the spare-count keeper and its last cycle.
    spares: crate::spare::Keeper,
    last_spare_cycle: Instant,
    /// This node's watchdog id (`pgpool_node_id`) when use_watchdog is on.
    watchdog_id: Option<usize>,
    /// Requests handed to the watchdog, reported done (to a waiting PCP worker) when
    /// the decision for the same node comes back or after `FORWARD_LIMIT`.
    forwarded: Vec<(u64, shmem::RequestKind, i32, Instant)>,
    /// Follows waiting for the running follow primary process to end (two follows
    /// must not rebuild the same standbys at once).
    follow_queue: std::collections::VecDeque<Vec<String>>,
    /// logging_collector: the logger (not in `procs`: it outlives every other process,
    /// leaving when the last of them has closed the pipe).
    collector: Option<crate::log_collector::Collector>,
}

const FORWARD_LIMIT: Duration = Duration::from_secs(15);

impl Supervisor<'_> {
    fn dynamic(&self) -> bool {
        self.cfg.process_management_mode == config::ProcessManagementMode::Dynamic
    }

    /// One cycle of process management (see [`crate::spare::cycle`]).
    fn manage_children(&mut self) {
        for i in crate::spare::cycle(self.shm, &self.cfg, &mut self.spares) {
            self.spawn_child(i);
        }
    }

    fn configured(&self, node: usize) -> bool {
        self.cfg.backends.get(node).is_some_and(|b| b.configured)
    }

    /// Secret from pool_passwd usable to log in as `user` (health/sr checks).
    fn passwd_secret(&self, user: &str) -> Option<crate::backend::Secret> {
        crate::passwd_secret(&self.cfg, user)
    }

    fn signal_children(&self, sig: Signal) {
        for &pid in self.procs.keys() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Tells pooled children that node states changed.
    fn notify_children(&self) {
        for (&pid, proc) in &self.procs {
            if matches!(proc, Proc::Child(_)) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGUSR1);
            }
        }
    }

    fn handle_requests(&mut self) {
        let mut requests = self.shm.requests().take_all();
        if self.watchdog_id.is_some() && self.shm.watchdog().pid() > 0 {
            requests.retain(|r| !self.pass_to_watchdog(r));
        }
        if !requests.is_empty() {
            let ops = crate::failover::ClusterOps {
                shm: self.shm,
                secret: self.passwd_secret(&self.cfg.sr_check_user),
                follows: Default::default(),
            };
            if ops.handle(&self.cfg, requests.clone()) {
                self.save_status();
                self.notify_children();
            }
            self.follow_queue.extend(ops.follows.take());
            self.start_follow();
        }
        self.settle_forwarded(&requests);
    }

    /// With the watchdog, a node's failover, failback or promotion is the cluster's
    /// decision: the request goes to the watchdog process, which hands back what was
    /// decided (REQUEST_CONFIRMED). A quarantine is this node's own business.
    fn pass_to_watchdog(&mut self, r: &shmem::Request) -> bool {
        let lifts_quarantine = r.kind == shmem::RequestKind::Attach
            && usize::try_from(r.node)
                .is_ok_and(|n| n < self.cfg.backends.len() && self.shm.backend(n).quarantined());
        if r.flags & shmem::REQUEST_CONFIRMED != 0
            || r.kind == shmem::RequestKind::Quarantine
            || lifts_quarantine
        {
            return false;
        }
        let wd = self.shm.watchdog();
        if wd.proposals.push(r.kind, r.node, r.flags).is_none() {
            log::error!(
                "watchdog request queue is full: {:?} of node {} dropped",
                r.kind,
                r.node
            );
        }
        let _ = kill(Pid::from_raw(wd.pid()), Signal::SIGUSR1);
        self.forwarded.push((r.seq, r.kind, r.node, Instant::now()));
        true
    }

    /// Forwarded requests whose decision came back in `confirmed` (or that waited too
    /// long) are done: a PCP worker waiting on them may answer.
    fn settle_forwarded(&mut self, confirmed: &[shmem::Request]) {
        let done = &self.shm.requests().done_seq;
        self.forwarded.retain(|&(seq, kind, node, at)| {
            let answered = confirmed.iter().any(|c| c.kind == kind && c.node == node);
            if answered || at.elapsed() >= FORWARD_LIMIT {
                done.fetch_max(seq, Ordering::AcqRel);
                false
            } else {
                true
            }
        });
    }

    fn begin_shutdown(&mut self, sig: Signal) {
        if self.shutdown == Some(Signal::SIGQUIT) || self.shutdown == Some(sig) {
            return;
        }
        let mode = match sig {
            Signal::SIGTERM => "smart",
            Signal::SIGINT => "fast",
            _ => "immediate",
        };
        log::info!("received {mode} shutdown request");
        self.shutdown = Some(sig);
        if sig != Signal::SIGTERM {
            self.shm.cluster().shutting_down.store(1, Ordering::Release);
        }
        self.signal_children(sig);
    }

    fn reload(&mut self) {
        log::info!("reload config files.");
        let mut newer = match Config::load(&self.opts.config_file) {
            Ok(c) => c,
            Err(e) => {
                log::error!("reload failed, configuration unchanged: {e}");
                return;
            }
        };
        crate::logging::configure(&newer);
        log_notices(&newer);
        for name in self.cfg.restart_required_changes(&newer) {
            log::warn!("parameter \"{name}\" changed but takes effect only after a restart");
        }
        let plan = crate::node_table::plan_reload(&self.cfg.backends, &newer.backends, |i| {
            self.shm.backend(i).status()
        });
        for why in &plan.refused {
            log::warn!("{why}");
        }
        newer.backends = plan.nodes;
        newer.num_init_children = self.cfg.num_init_children;
        newer.max_pool = self.cfg.max_pool;
        self.cfg = newer;
        for &node in &plan.removed {
            self.shm.backend(node).reset(BackendStatus::Unused);
            let hc = self
                .procs
                .iter()
                .find(|(_, p)| **p == Proc::HealthCheck(node))
                .map(|(&pid, _)| pid);
            if let Some(pid) = hc {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            log::info!("backend node {node} removed from the configuration");
        }
        for &node in &plan.added {
            // As Pgpool-II: a node added by reload is down until attached or recovered.
            self.shm.backend(node).reset(BackendStatus::Down);
            let b = &self.cfg.backends[node];
            log::info!(
                "backend node {node} ({}:{}) added with status \"down\"",
                b.hostname,
                b.port
            );
        }
        crate::node_table::publish(self.shm, &self.cfg.backends);
        if !plan.added.is_empty() || !plan.removed.is_empty() {
            self.save_status();
        }
        // Every process re-reads the files and takes the node table from shared memory.
        self.signal_children(Signal::SIGHUP);
        if let Some(c) = &self.collector {
            let _ = kill(c.pid(), Signal::SIGHUP);
        }
        for node in plan.added {
            self.spawn_health_check(node);
        }
    }

    fn save_status(&self) {
        // A quarantine is this pgpool's passing view, not the cluster's: a restart
        // checks the node afresh.
        let states: Vec<BackendStatus> = (0..self.cfg.backends.len())
            .map(|i| match self.shm.backend(i) {
                b if b.quarantined() => BackendStatus::Up,
                b => b.status(),
            })
            .collect();
        let p = status_file::path(&self.cfg.work_dir);
        if let Err(e) = status_file::write(&p, &states) {
            log::warn!("could not write \"{}\": {e}", p.display());
        }
    }
}

fn init_backend_status(cfg: &Config, shm: &Shmem, discard: bool) {
    let p = status_file::path(&cfg.work_dir);
    let saved = if discard {
        let _ = std::fs::remove_file(&p);
        None
    } else {
        status_file::read(&p)
    };
    for (i, b) in cfg.backends.iter().enumerate() {
        let s = match saved.as_ref().and_then(|v| v.get(i)) {
            _ if !b.configured => BackendStatus::Unused,
            Some(BackendStatus::Down) => BackendStatus::Down,
            _ => BackendStatus::ConnectWait,
        };
        shm.backend(i).set_status(s);
        if s == BackendStatus::Down {
            log::info!("node {i} is kept down as recorded in \"{}\"", p.display());
        }
    }
    // Every node down is no way to start: Pgpool-II then brings all back up.
    let configured = || (0..cfg.backends.len()).filter(|&i| cfg.backends[i].configured);
    if configured().all(|i| shm.backend(i).status() == BackendStatus::Down) {
        for i in configured() {
            shm.backend(i).set_status(BackendStatus::ConnectWait);
        }
    }
}

/// Warnings about old parameter names, at start and on reload as Pgpool-II gives them.
fn log_notices(cfg: &Config) {
    for n in cfg.notices() {
        // Pgpool-II's words; where it was found goes last.
        log::warn!(
            "{}\nDETAIL:  {} ({}:{})",
            n.message,
            n.detail,
            cfg.config_file.display(),
            n.line
        );
    }
}

/// Runs the server until shutdown; returns the exit code.
pub fn run(cfg: Config, opts: &Options) -> i32 {
    // Before anything connects to a backend (primary detection included).
    crate::tls::init_backend(&cfg);
    crate::logging::set_process_kind(crate::logging::ProcessKind::Main);
    sys::ignore(&[Signal::SIGPIPE]);
    let collector = match crate::log_collector::Collector::start(&cfg) {
        Ok(c) => c,
        Err(e) => {
            log::error!("could not start the logging collector: {e}");
            None
        }
    };
    log_notices(&cfg);
    if cfg.sessions_per_child as usize != cfg.child_sessions() {
        log::warn!(
            "sessions_per_child = {}: each child serves at most {} sessions at once (one per pool slot, max_pool = {}; 1 in snapshot isolation mode)",
            cfg.sessions_per_child,
            cfg.child_sessions(),
            cfg.max_pool
        );
    }
    for name in cfg.unsupported_in_use() {
        log::warn!("parameter \"{name}\" is set but not supported yet by pgpool-rs; it is ignored");
    }
    if cfg.memory_cache_enabled {
        // Pgpool-II keeps the table oids of cached results in files there.
        log::info!(
            "memqcache_oiddir \"{}\" is not used: pgpool-rs keeps what invalidates cached results in shared memory",
            cfg.memqcache_oiddir
        );
    }
    let watchdog_id = if cfg.use_watchdog {
        match config::node_id::read_node_id(&cfg) {
            Ok(id) => Some(id),
            Err(e) => {
                log::error!("{e}");
                return 3;
            }
        }
    } else {
        None
    };
    let layout = Layout {
        num_children: cfg.num_init_children as usize,
        max_pool: cfg.max_pool.max(1) as usize,
    };
    let shm = match Shmem::create(layout) {
        Ok(s) => s,
        Err(e) => {
            log::error!(
                "could not create shared memory ({} bytes): {e}",
                layout.size()
            );
            return 3;
        }
    };
    let qcache = match child::open_query_cache(&cfg) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return 3;
        }
    };
    shm.cluster()
        .main_pid
        .store(std::process::id() as i32, Ordering::Relaxed);
    if let Some(c) = &collector {
        shm.cluster()
            .logger_pid
            .store(c.pid().as_raw(), Ordering::Release);
    }
    crate::node_table::publish(&shm, &cfg.backends);
    shm.cluster()
        .start_time
        .store(shmem::now_secs(), Ordering::Relaxed);
    init_backend_status(&cfg, &shm, opts.discard_status);
    let passwd = crate::load_passwd(&cfg).unwrap_or_default();
    primary::detect(&cfg, &shm, |user| match passwd.get(user) {
        Some(config::passwd::PasswordEntry::Plain(p)) => {
            Some(crate::backend::Secret::Plain(p.clone()))
        }
        Some(config::passwd::PasswordEntry::Md5(h)) => {
            Some(crate::backend::Secret::Md5Stored(h.clone()))
        }
        _ => None,
    });
    let backlog = (cfg.num_init_children.max(1) * cfg.listen_backlog_multiplier.max(1)) as i32;
    let listeners = match Listeners::bind(
        &cfg.listen_addresses,
        cfg.port,
        &cfg.unix_socket_directories,
        &crate::net::UnixSocketMode {
            group: cfg.unix_socket_group.clone(),
            permissions: cfg.unix_socket_permissions,
        },
        backlog,
    ) {
        Ok(l) => l,
        Err(e) => {
            log::error!("failed to create listening sockets: {e}");
            return 3;
        }
    };
    let waker = match Waker::new() {
        Ok(w) => w,
        Err(e) => {
            log::error!("could not create wake-up pipe: {e}");
            return 3;
        }
    };
    sys::catch(MAIN_SIGNALS);
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            log::error!("could not create poller: {e}");
            return 3;
        }
    };
    let wake_fd = waker.fd().as_raw_fd();
    if let Err(e) = poll
        .registry()
        .register(&mut SourceFd(&wake_fd), Token(0), Interest::READABLE)
    {
        log::error!("could not watch wake-up pipe: {e}");
        return 3;
    }
    let mut sup = Supervisor {
        cfg,
        opts,
        shm: &shm,
        qcache: qcache.as_ref(),
        listeners: &listeners,
        procs: HashMap::new(),
        shutdown: None,
        tls: None,
        spares: crate::spare::Keeper::default(),
        last_spare_cycle: Instant::now(),
        watchdog_id,
        forwarded: Vec::new(),
        follow_queue: Default::default(),
        collector,
    };
    sup.tls = match crate::tls::server_config(&sup.cfg) {
        Ok(t) => t,
        Err(e) => {
            log::error!("{e}; SSL connections will be refused");
            None
        }
    };
    let initial = if sup.dynamic() {
        crate::spare::Keeper::initial(
            sup.cfg.process_management_strategy,
            sup.cfg.min_spare_children as usize,
            sup.cfg.max_spare_children as usize,
            layout.num_children,
        )
    } else {
        layout.num_children
    };
    for i in 0..initial {
        sup.spawn_child(i);
    }
    for node in 0..sup.cfg.backends.len() {
        if sup.configured(node) {
            sup.spawn_health_check(node);
        }
    }
    sup.spawn_pcp();
    sup.spawn_watchdog();
    if matches!(
        sup.cfg.backend_clustering_mode,
        config::ClusteringMode::StreamingReplication
    ) {
        sup.spawn_sr_check();
    }
    sup.spawn_cache_feed();
    log::info!(
        "pgpool-rs {} successfully started, listening on {}:{} ({} children)",
        env!("CARGO_PKG_VERSION"),
        sup.cfg.listen_addresses,
        sup.cfg.port,
        initial
    );
    let mut events = Events::with_capacity(4);
    let mut shutdown_started: Option<Instant> = None;
    loop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_secs(1))) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                log::error!("poll failed: {e}");
            }
        }
        waker.drain();
        let pending = sys::take_pending();
        if sys::has(pending, Signal::SIGQUIT) {
            sup.begin_shutdown(Signal::SIGQUIT);
        } else if sys::has(pending, Signal::SIGINT) {
            sup.begin_shutdown(Signal::SIGINT);
        } else if sys::has(pending, Signal::SIGTERM) {
            sup.begin_shutdown(Signal::SIGTERM);
        }
        if sys::has(pending, Signal::SIGHUP) && sup.shutdown.is_none() {
            sup.reload();
        }
        if sup.shutdown.is_none() {
            sup.handle_requests();
        }
        sup.reap();
        if sup.shutdown.is_none() && sup.last_spare_cycle.elapsed() >= crate::spare::CYCLE {
            sup.last_spare_cycle = Instant::now();
            sup.manage_children();
        }
        if let Some(sig) = sup.shutdown {
            let started = *shutdown_started.get_or_insert_with(Instant::now);
            if sup.procs.is_empty() {
                break;
            }
            // Fast/immediate: children that ignore the request for long are killed.
            if sig != Signal::SIGTERM && started.elapsed() > Duration::from_secs(10) {
                sup.signal_children(Signal::SIGKILL);
            }
        }
    }
    sup.save_status();
    listeners.remove_socket_files();
    log::info!("pgpool-rs shut down");
    0
}
