//! One health-check process per backend node. Each runs on its own clock with its own
//! (possibly per-node) parameters, so a node whose connect hangs never delays the
//! detection of another. A check is a full log-in (start-up, authentication, ready)
//! bounded by health_check_timeout; failures are retried health_check_max_retries
//! times, health_check_retry_delay apart, and then a failover request is queued for
//! the main process. A child that sees the node fail wakes the process (SIGUSR2) so
//! that detection costs only the retries, not the rest of the period.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::Config;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use shmem::{BackendStatus, RequestKind, Shmem, REQUEST_FROM_HEALTH_CHECK};

use crate::backend::{self, BackendError, MessageReader, NodeAddr, Secret};
use crate::sys::{self, Waker};

pub struct HealthCheckSetup<'a> {
    pub node: usize,
    pub cfg: Config,
    pub shm: &'a Shmem,
    pub passwd_secret: Option<Secret>,
}

/// Sleeps up to `d`, returning early on a signal. Returns the signals received.
fn nap(waker: &Waker, d: Duration) -> u32 {
    let ms = d.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(waker.fd(), PollFlags::POLLIN)];
    let _ = poll(
        &mut fds,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
    );
    waker.drain();
    sys::take_pending()
}

/// Sleeps the whole of `d` (a retry delay is not cut short by children's wake-ups,
/// so transient blips get the time the user configured); only shutdown ends it.
fn nap_fully(waker: &Waker, d: Duration) -> u32 {
    let deadline = Instant::now() + d;
    let mut seen = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() {
            break;
        }
        seen |= nap(waker, left);
        if wants_exit(seen) {
            break;
        }
    }
    seen
}

fn wants_exit(sigs: u32) -> bool {
    sys::has(sigs, Signal::SIGTERM)
        || sys::has(sigs, Signal::SIGINT)
        || sys::has(sigs, Signal::SIGQUIT)
}

/// One log-in attempt against the node, bounded by health_check_timeout (and by
/// `limit` when given).
pub fn check_once(
    cfg: &Config,
    node: usize,
    secret: Option<&Secret>,
    limit: Option<Duration>,
) -> Result<(), BackendError> {
    let hc = cfg.health_check(node);
    let mut timeout = Duration::from_secs(hc.timeout.max(1));
    if let Some(l) = limit {
        timeout = timeout.min(l);
    }
    let connect = if hc.connect_timeout_ms == 0 {
        timeout
    } else {
        Duration::from_millis(hc.connect_timeout_ms).min(timeout)
    };
    let mut addr = NodeAddr::of(cfg, node);
    addr.connect_timeout = connect;
    let db = if hc.database.is_empty() {
        "postgres".to_string()
    } else {
        hc.database.clone()
    };
    let mut reader = MessageReader::default();
    let mut password = |_| {
        if !hc.password.is_empty() {
            return Ok(Secret::Plain(hc.password.clone()));
        }
        secret.cloned().ok_or(BackendError::NeedPassword)
    };
    let deadline = Instant::now() + timeout;
    let mut conn = backend::connect_with_deadline(
        &addr,
        &[
            ("user", &hc.user),
            ("database", &db),
            ("application_name", "pgpool_health_check"),
        ],
        &mut reader,
        &mut password,
        deadline,
    )?;
    let mut out = Vec::new();
    protocol::build::terminate(&mut out);
    let _ = std::io::Write::write_all(&mut conn.stream, &out);
    if cfg.health_check_test && fake_down_requested(cfg, node) {
        return Err(BackendError::Protocol(
            "simulated failure: backend_down_request names this node".into(),
        ));
    }
    Ok(())
}

/// health_check_test: `work_dir/backend_down_request` lines `N<TAB>down` make every
/// health check of node N fail (the test hook Pgpool-II's regression suite drives).
fn fake_down_requested(cfg: &Config, node: usize) -> bool {
    let path = std::path::Path::new(&cfg.work_dir).join("backend_down_request");
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines().any(|l| {
            let mut f = l.split('\t');
            f.next().and_then(|n| n.trim().parse::<usize>().ok()) == Some(node)
                && f.next().map(str::trim) == Some("down")
        })
    })
}

fn record(shm: &Shmem, node: usize, ok: bool, started: Instant, retries: u64) {
    let h = &shm.backend(node).health;
    let now = shmem::now_secs();
    let ms = started.elapsed().as_millis() as u64;
    h.total_count.fetch_add(1, Ordering::Relaxed);
    h.last_health_check.store(now, Ordering::Relaxed);
    h.total_duration_ms.fetch_add(ms, Ordering::Relaxed);
    h.max_duration_ms.fetch_max(ms, Ordering::Relaxed);
    let min = h.min_duration_ms.load(Ordering::Relaxed);
    if min == 0 || ms < min {
        h.min_duration_ms.store(ms.max(1), Ordering::Relaxed);
    }
    h.max_retry_count.fetch_max(retries, Ordering::Relaxed);
    if ok {
        h.success_count.fetch_add(1, Ordering::Relaxed);
        h.last_successful_health_check.store(now, Ordering::Relaxed);
    } else {
        h.fail_count.fetch_add(1, Ordering::Relaxed);
        h.last_failed_health_check.store(now, Ordering::Relaxed);
    }
}

/// The health-check process body; never returns.
pub fn run(setup: HealthCheckSetup<'_>) -> ! {
    let waker = sys::enter_process(
        crate::logging::ProcessKind::HealthCheck,
        sys::WORKER_SIGNALS,
    );
    let node = setup.node;
    crate::logging::set_application_name(&format!("health_check{node}"));
    sys::set_title(&format!("pgpool: health check process({node})"));
    let shm = setup.shm;
    let mut cfg = setup.cfg;
    shm.backend(node)
        .health_check_pid
        .store(std::process::id() as i32, Ordering::Release);
    loop {
        if !cfg.backends.get(node).is_some_and(|b| b.configured) {
            // Removed by a reload.
            sys::exit_now(0);
        }
        let hc = cfg.health_check(node);
        if hc.period == 0 {
            // Disabled for this node: wait for a reload or shutdown.
            let sigs = nap(&waker, Duration::from_secs(3600));
            if wants_exit(sigs) {
                sys::exit_now(0);
            }
            if sys::has(sigs, Signal::SIGHUP) {
                cfg = reload(cfg, setup.shm);
            }
            continue;
        }
        let state = shm.backend(node);
        // A quarantined node is down here only: it is watched until it answers again.
        if !state.status().is_alive() && !state.quarantined() {
            state.health.skip_count.fetch_add(1, Ordering::Relaxed);
            state
                .health
                .last_skip_health_check
                .store(shmem::now_secs(), Ordering::Relaxed);
        } else {
            let started = Instant::now();
            let mut retries = 0u64;
            let mut ok = false;
            loop {
                match check_once(&cfg, node, setup.passwd_secret.as_ref(), None) {
                    Ok(()) => {
                        ok = true;
                        break;
                    }
                    Err(e) => {
                        log::warn!(
                            "health check failed on node {node} ({}:{}): {e}",
                            cfg.backends[node].hostname,
                            cfg.backends[node].port
                        );
                        if retries >= hc.max_retries as u64 {
                            break;
                        }
                        retries += 1;
                        shm.backend(node)
                            .health
                            .retry_count
                            .fetch_add(1, Ordering::Relaxed);
                        log::info!(
                            "health check retrying on node {node} ({retries} of {})",
                            hc.max_retries
                        );
                        let sigs = nap_fully(&waker, Duration::from_secs(hc.retry_delay));
                        if wants_exit(sigs) {
                            sys::exit_now(0);
                        }
                    }
                }
            }
            record(shm, node, ok, started, retries);
            if ok && state.quarantined() {
                log::info!(
                    "health check succeeded on quarantined node {node}: lifting the quarantine"
                );
                if shm
                    .request(RequestKind::Attach, node as i32, REQUEST_FROM_HEALTH_CHECK)
                    .is_none()
                {
                    log::error!("failover request queue is full");
                }
            } else if !ok && state.quarantined() {
                log::info!("health check failed on quarantine node {node}\nDETAIL:  ignoring..");
            }
            if ok {
                state.pg_up.store(1, Ordering::Relaxed);
                if state.status() == BackendStatus::ConnectWait {
                    state.set_status(BackendStatus::Up);
                }
            } else {
                state.pg_up.store(0, Ordering::Relaxed);
                // A node already marked down is not failed over twice.
                if state.status().is_alive() {
                    log::error!("health check failed on node {node}: requesting failover");
                    log::info!(
                        "received degenerate backend request for node_id: {node} from pid [{}]",
                        std::process::id()
                    );
                    if shm
                        .request(RequestKind::Detach, node as i32, REQUEST_FROM_HEALTH_CHECK)
                        .is_none()
                    {
                        log::error!("failover request queue is full");
                    }
                }
            }
        }
        let sigs = nap(&waker, Duration::from_secs(hc.period));
        if wants_exit(sigs) {
            sys::exit_now(0);
        }
        if sys::has(sigs, Signal::SIGHUP) {
            cfg = reload(cfg, setup.shm);
        }
    }
}

fn reload(cfg: Config, shm: &Shmem) -> Config {
    match Config::load(&cfg.config_file) {
        Ok(mut newer) => {
            crate::node_table::adopt(&mut newer, shm);
            crate::logging::configure(&newer);
            newer
        }
        Err(e) => {
            log::warn!("reload failed, keeping old configuration: {e}");
            cfg
        }
    }
}
