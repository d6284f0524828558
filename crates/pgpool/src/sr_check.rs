//! The streaming-replication check worker: every sr_check_period it asks the primary
//! for its WAL position and its pg_stat_replication rows, and each live standby for
//! its replay position and whether it is in recovery. It stores each standby's delay
//! (bytes of WAL, or with delay_threshold_by_time the primary's replay_lag for it in
//! microseconds) and its replication state / sync state in shared memory (SHOW
//! POOL_NODES, pcp_node_info, and the load balancer, which sends no reads to a standby
//! delayed beyond delay_threshold / delay_threshold_by_time). A standby that is not in recovery is a false primary: it
//! is reported, and detached when detach_false_primary is on. Connections are kept
//! open between checks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use config::{Config, StandbyDelayLogging};
use nix::sys::signal::Signal;
use shmem::{BackendRole, RequestKind, Shmem, REQUEST_FROM_HEALTH_CHECK};

use crate::backend::{self, BackendConn, BackendError, MessageReader, NodeAddr, Secret};
use crate::sys;

pub struct SrCheckSetup<'a> {
    pub cfg: Config,
    pub shm: &'a Shmem,
    pub secret: Option<Secret>,
}

struct Worker<'a> {
    cfg: Config,
    shm: &'a Shmem,
    secret: Option<Secret>,
    conns: Vec<Option<BackendConn>>,
    reader: MessageReader,
    /// When auto_failback last attached each node.
    last_failback: Vec<Option<std::time::Instant>>,
}

impl Worker<'_> {
    /// auto_failback: a detached standby that streams from the primary again (it is
    /// in the primary's pg_stat_replication as `streaming`) is attached, at most once
    /// per auto_failback_interval.
    fn maybe_auto_failback(&mut self, node: usize, repl: &[Vec<Option<String>>]) {
        if !self.cfg.auto_failback
            || self
                .shm
                .backend(node)
                .admin_detached
                .load(Ordering::Acquire)
                != 0
        {
            return;
        }
        let app = &self.cfg.backends[node].application_name;
        let streaming = !app.is_empty()
            && repl.iter().any(|r| {
                r.first().cloned().flatten().as_deref() == Some(app.as_str())
                    && r.get(1).cloned().flatten().as_deref() == Some("streaming")
            });
        if !streaming {
            return;
        }
        let interval = Duration::from_secs(self.cfg.auto_failback_interval.max(0) as u64);
        if self.last_failback[node].is_some_and(|t| t.elapsed() < interval) {
            return;
        }
        log::info!("auto_failback: node {node} streams from the primary again: attaching it");
        self.last_failback[node] = Some(std::time::Instant::now());
        let _ = self.shm.request(RequestKind::Attach, node as i32, 0);
    }

    fn connect(&self, node: usize) -> Result<BackendConn, BackendError> {
        let db = sr_check_database(&self.cfg);
        connect_as_sr_check_user(&self.cfg, self.secret.as_ref(), node, db, "pgpool_sr_check")
    }

    /// Runs `sql` on `node` over the kept connection (reconnecting once).
    fn query(&mut self, node: usize, sql: &str) -> Option<Vec<Vec<Option<String>>>> {
        for _ in 0..2 {
            if self.conns[node].is_none() {
                match self.connect(node) {
                    Ok(c) => self.conns[node] = Some(c),
                    Err(e) => {
                        log::debug!("sr_check: cannot connect to node {node}: {e}");
                        return None;
                    }
                }
            }
            let conn = self.conns[node].as_mut()?;
            self.reader.clear();
            match conn.simple_query(&mut self.reader, sql) {
                Ok(r) => match r.error {
                    None => return Some(r.rows),
                    Some(e) => {
                        log::warn!("sr_check: query on node {node} failed: {}", e.message);
                        return None;
                    }
                },
                Err(_) => self.conns[node] = None,
            }
        }
        None
    }

    fn check(&mut self) {
        let n = self.cfg.backends.len();
        let primary = self.shm.cluster().primary_node_id();
        if primary < 0 || primary as usize >= n {
            return;
        }
        let p = primary as usize;
        let Some(rows) = self.query(p, "SELECT pg_current_wal_lsn() - '0/0'") else {
            return;
        };
        let Some(primary_lsn) = rows
            .first()
            .and_then(|r| r.first())
            .cloned()
            .flatten()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            return;
        };
        let by_time = self.cfg.delay_by_time();
        let repl = self
            .query(
                p,
                if by_time {
                    "SELECT application_name, state, sync_state, \
                     (EXTRACT(EPOCH FROM replay_lag) * 1000000)::BIGINT FROM pg_stat_replication"
                } else {
                    "SELECT application_name, state, sync_state FROM pg_stat_replication"
                },
            )
            .unwrap_or_default();
        for node in 0..n {
            let st = self.shm.backend(node);
            if node != p && st.status() == shmem::BackendStatus::Down {
                self.maybe_auto_failback(node, &repl);
                continue;
            }
            if node == p || !st.status().is_alive() {
                continue;
            }
            let Some(rows) = self.query(
                node,
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'",
            ) else {
                continue;
            };
            let row = rows.into_iter().next().unwrap_or_default();
            let in_recovery = row.first().cloned().flatten().as_deref() == Some("t");
            if !in_recovery {
                st.set_pg_role(BackendRole::Primary);
                log::warn!(
                    "sr_check: node {node} is not in recovery although node {p} is the primary: false primary"
                );
                if self.cfg.detach_false_primary {
                    log::warn!("sr_check: detaching false primary node {node}");
                    let _ = self.shm.request(
                        RequestKind::Detach,
                        node as i32,
                        REQUEST_FROM_HEALTH_CHECK,
                    );
                }
                continue;
            }
            st.set_pg_role(BackendRole::Standby);
            let replay: f64 = row
                .get(1)
                .cloned()
                .flatten()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let app = &self.cfg.backends[node].application_name;
            let found = repl.iter().find(|r| {
                !app.is_empty() && r.first().cloned().flatten().as_deref() == Some(app.as_str())
            });
            let delay = if by_time {
                // replay_lag in microseconds; NULL (nothing to replay lately) is none
                found
                    .and_then(|r| r.get(3).cloned().flatten())
                    .and_then(|v| v.parse::<i64>().ok())
                    .map_or(0, |us| us.max(0) as u64)
            } else {
                (primary_lsn - replay).max(0.0) as u64
            };
            st.replication_delay.store(delay, Ordering::Release);
            st.delay_by_time.store(u8::from(by_time), Ordering::Release);
            match found {
                Some(r) => {
                    st.replication_state
                        .set(r.get(1).cloned().flatten().as_deref().unwrap_or(""));
                    st.replication_sync_state
                        .set(r.get(2).cloned().flatten().as_deref().unwrap_or(""));
                }
                None => {
                    st.replication_state.set("");
                    st.replication_sync_state.set("");
                }
            }
            let threshold = self.cfg.delay_limit();
            // log_standby_delay: every delay, those past the threshold, or none.
            let log_delay = match self.cfg.log_standby_delay {
                StandbyDelayLogging::Always => delay > 0,
                StandbyDelayLogging::None => false,
                StandbyDelayLogging::IfOverThreshold => threshold > 0 && delay > threshold,
            };
            if log_delay {
                if by_time {
                    log::info!(
                        "Replication of node: {node} is behind {:.6} second(s) from the primary server (node: {p})",
                        delay as f32 / 1_000_000.0
                    );
                } else {
                    log::info!(
                        "Replication of node: {node} is behind {delay} bytes from the primary server (node: {p})"
                    );
                }
            }
        }
        self.shm
            .backend(p)
            .replication_delay
            .store(0, Ordering::Release);
        self.shm.backend(p).set_pg_role(BackendRole::Primary);
    }
}

/// The database workers connect to: sr_check_database, or postgres.
pub(crate) fn sr_check_database(cfg: &Config) -> &str {
    if cfg.sr_check_database.is_empty() {
        "postgres"
    } else {
        &cfg.sr_check_database
    }
}

/// Logs in to `node`'s database `db` as sr_check_user (sr_check_password, else the
/// pool_passwd secret), as the workers that watch the backends do.
pub(crate) fn connect_as_sr_check_user(
    cfg: &Config,
    secret: Option<&Secret>,
    node: usize,
    db: &str,
    application_name: &str,
) -> Result<BackendConn, BackendError> {
    let mut addr = NodeAddr::of(cfg, node);
    addr.connect_timeout = addr.connect_timeout.max(Duration::from_secs(1));
    let mut reader = MessageReader::default();
    let mut password = |_| {
        if !cfg.sr_check_password.is_empty() {
            return Ok(Secret::Plain(cfg.sr_check_password.clone()));
        }
        secret.cloned().ok_or(BackendError::NeedPassword)
    };
    backend::connect(
        &addr,
        &[
            ("user", &cfg.sr_check_user),
            ("database", db),
            ("application_name", application_name),
        ],
        &mut reader,
        &mut password,
    )
}

pub fn run(setup: SrCheckSetup<'_>) -> ! {
    let waker = sys::enter_process(
        crate::logging::ProcessKind::SrCheck,
        &[
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
            Signal::SIGHUP,
        ],
    );
    sys::set_title("pgpool: worker process");
    let n = setup.cfg.backends.len();
    let mut w = Worker {
        cfg: setup.cfg,
        shm: setup.shm,
        secret: setup.secret,
        conns: (0..n).map(|_| None).collect(),
        reader: MessageReader::default(),
        last_failback: vec![None; n],
    };
    loop {
        let period = w.cfg.sr_check_period;
        if period > 0 {
            w.check();
        }
        let wait = if period > 0 {
            period as u64 * 1000
        } else {
            3_600_000
        };
        if sys::wait_for_signals(&waker, wait) == sys::Wakeup::Reload {
            if let Ok(newer) = Config::load(&w.cfg.config_file) {
                crate::logging::configure(&newer);
                w.cfg = newer;
            }
            crate::node_table::adopt(&mut w.cfg, w.shm);
            let n = w.cfg.backends.len();
            // Connections to nodes whose id changed meaning are closed.
            w.conns.resize_with(n, || None);
            w.last_failback.resize(n, None);
        }
    }
}
