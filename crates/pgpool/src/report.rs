//! Rows describing nodes, child processes and pooled connections, read from shared
//! memory. Both the SQL admin commands (SHOW POOL_PROCESSES / POOL_POOLS) and the PCP
//! requests (pcp_node_info, pcp_proc_info, pcp_health_check_stats) format from here,
//! so the two views never disagree. Values are Pgpool-II's text forms.

use std::sync::atomic::Ordering;

use config::{ClusteringMode, Config};
use shmem::{BackendRole, BackendStatus, ChildState, Shmem};

use crate::logging::format_time;

/// Unix seconds as local time, or "" for 0 (never).
pub fn time_or_empty(secs: i64) -> String {
    if secs == 0 {
        String::new()
    } else {
        format_time(secs)
    }
}

/// Pgpool-II's role numbers (SERVER_ROLE) as pcp_node_info sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Main = 0,
    Replica = 1,
    Primary = 2,
    Standby = 3,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Replica => "replica",
            Role::Primary => "primary",
            Role::Standby => "standby",
        }
    }
}

/// One backend node.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: usize,
    pub hostname: String,
    pub port: u16,
    pub status: BackendStatus,
    /// "up" / "down" from the health check, "unknown" when it is disabled.
    pub pg_status: &'static str,
    /// Load-balance weight normalized to a fraction of the total.
    pub weight: f64,
    pub role: Role,
    pub pg_role: &'static str,
    pub delay: u64,
    pub replication_state: String,
    pub replication_sync_state: String,
    pub last_status_change: i64,
}

fn streaming(cfg: &Config) -> bool {
    matches!(
        cfg.backend_clustering_mode,
        ClusteringMode::StreamingReplication | ClusteringMode::LogicalReplication
    )
}

/// Every configured node, in id order.
pub fn nodes(cfg: &Config, shm: &Shmem) -> Vec<Node> {
    let total: f64 = cfg.backends.iter().map(|b| b.weight).sum();
    let stream = streaming(cfg);
    let primary = shm.cluster().primary_node_id.load(Ordering::Acquire);
    let main = shm.cluster().main_node_id.load(Ordering::Acquire);
    cfg.backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let st = shm.backend(i);
            let status = st.status();
            // Pgpool-II pings the node only when its health check is enabled, and
            // asks it for its role only when sr_check is.
            let pg_status = if cfg.health_check(i).period == 0 {
                "unknown"
            } else if st.pg_up.load(Ordering::Acquire) == 1 || status.is_alive() {
                "up"
            } else {
                "down"
            };
            let role = match (stream, i as i32 == primary, i as i32 == main) {
                (true, true, _) => Role::Primary,
                (true, false, _) => Role::Standby,
                (false, _, true) => Role::Main,
                (false, _, false) => Role::Replica,
            };
            let pg_role = if !stream {
                role.name()
            } else if pg_status != "up" || cfg.sr_check_period == 0 {
                "unknown"
            } else {
                match BackendRole::from_u8(st.pg_role.load(Ordering::Acquire)) {
                    BackendRole::Primary => "primary",
                    BackendRole::Standby => "standby",
                    BackendRole::Unknown => role.name(),
                }
            };
            Node {
                id: i,
                hostname: b.hostname.clone(),
                port: b.port,
                status,
                pg_status,
                weight: if total > 0.0 { b.weight / total } else { 0.0 },
                role,
                pg_role,
                delay: if role == Role::Standby {
                    st.replication_delay.load(Ordering::Relaxed)
                } else {
                    0
                },
                replication_state: st.replication_state.get(),
                replication_sync_state: st.replication_sync_state.get(),
                last_status_change: st.last_status_change.load(Ordering::Relaxed),
            }
        })
        .collect()
}

/// `start_time` column of a child: its start, and while it waits for a client the
/// time left before child_life_time restarts it.
pub fn child_start_time(cfg: &Config, shm: &Shmem, i: usize) -> String {
    let c = shm.child(i);
    let start = c.start_time.load(Ordering::Relaxed);
    let life = cfg.child_life_time;
    let mut s = time_or_empty(start);
    if life > 0 && c.state() == ChildState::WaitForConnection && start > 0 {
        let left = life as i64;
        s.push_str(&format!(
            " ({}:{:02} before process restarting)",
            left / 60,
            left % 60
        ));
    }
    s
}

pub fn child_status(shm: &Shmem, i: usize) -> &'static str {
    match shm.child(i).state() {
        ChildState::WaitForConnection => "Wait for connection",
        ChildState::Active => "Execute command",
        ChildState::Unused => "",
    }
}

/// Pids of the connection children (pcp_proc_count), in slot order.
pub fn child_pids(shm: &Shmem) -> Vec<i32> {
    (0..shm.layout().num_children)
        .map(|i| shm.child(i).pid.load(Ordering::Relaxed))
        .filter(|&p| p > 0)
        .collect()
}

/// SHOW POOL_PROCESSES rows: pool_pid start_time client_connection_count database
/// username backend_connection_time pool_counter status.
pub fn processes(cfg: &Config, shm: &Shmem) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for i in 0..shm.layout().num_children {
        let c = shm.child(i);
        let current = c.current_pool.load(Ordering::Acquire);
        let (db, user, conn_time, counter) = if current >= 0 {
            let p = shm.pool(i, current as usize);
            (
                p.database.get(),
                p.user.get(),
                time_or_empty(p.create_time.load(Ordering::Relaxed)),
                p.pool_counter.load(Ordering::Relaxed).to_string(),
            )
        } else {
            Default::default()
        };
        rows.push(vec![
            c.pid.load(Ordering::Relaxed).to_string(),
            child_start_time(cfg, shm, i),
            c.client_connection_count
                .load(Ordering::Relaxed)
                .to_string(),
            db,
            user,
            conn_time,
            counter,
            child_status(shm, i).to_string(),
        ]);
    }
    rows
}

/// Number of leading SHOW POOL_POOLS columns Pgpool-II 4.3 has (and pcp_proc_info
/// sends): pool_pid .. status.
pub const POOLS_43_COLUMNS: usize = 17;

/// SHOW POOL_POOLS rows (one per child, pool slot and node): pool_pid start_time
/// client_connection_count pool_id backend_id database username
/// backend_connection_time client_connection_time client_disconnection_time
/// client_idle_duration majorversion minorversion pool_counter pool_backendpid
/// pool_connected status load_balance_node client_host client_port.
/// `session_node` is the asking session's load-balance node, if any.
pub fn pools(cfg: &Config, shm: &Shmem, session_node: Option<usize>) -> Vec<Vec<String>> {
    let layout = shm.layout();
    let mut rows = Vec::new();
    for i in 0..layout.num_children {
        let c = shm.child(i);
        let current = c.current_pool.load(Ordering::Acquire);
        for slot in 0..layout.max_pool {
            let p = shm.pool(i, slot);
            let major = p.major.load(Ordering::Relaxed);
            for node in 0..layout.num_backends {
                let conn = shm.conn(i, slot, node);
                let used = major != 0;
                let active = current == slot as i32;
                let idle = if used && !active {
                    let d = p.client_disconnect_time.load(Ordering::Relaxed);
                    if d > 0 {
                        (shmem::now_secs() - d).max(0)
                    } else {
                        0
                    }
                } else {
                    0
                };
                let (host, port) = if active {
                    (c.client_host.get(), c.client_port.get())
                } else {
                    (String::new(), String::new())
                };
                let if_used = |s: String| if used { s } else { String::new() };
                rows.push(vec![
                    c.pid.load(Ordering::Relaxed).to_string(),
                    child_start_time(cfg, shm, i),
                    c.client_connection_count
                        .load(Ordering::Relaxed)
                        .to_string(),
                    slot.to_string(),
                    node.to_string(),
                    if_used(p.database.get()),
                    if_used(p.user.get()),
                    if_used(time_or_empty(p.create_time.load(Ordering::Relaxed))),
                    if_used(time_or_empty(p.client_connect_time.load(Ordering::Relaxed))),
                    if_used(time_or_empty(
                        p.client_disconnect_time.load(Ordering::Relaxed),
                    )),
                    idle.to_string(),
                    major.to_string(),
                    p.minor.load(Ordering::Relaxed).to_string(),
                    if used {
                        p.pool_counter.load(Ordering::Relaxed).to_string()
                    } else {
                        "0".into()
                    },
                    conn.pid.load(Ordering::Relaxed).to_string(),
                    u8::from(active && conn.connected.load(Ordering::Relaxed) != 0).to_string(),
                    child_status(shm, i).to_string(),
                    u8::from(active && Some(node) == session_node).to_string(),
                    host,
                    port,
                ]);
            }
        }
    }
    rows
}

/// SHOW POOL_HEALTH_CHECK_STATS / pcp_health_check_stats fields of one node.
pub fn health_check_stats(cfg: &Config, shm: &Shmem, node: &Node) -> Vec<String> {
    let h = &shm.backend(node.id).health;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let total = load(&h.total_count);
    let skip = load(&h.skip_count);
    let checked = total.saturating_sub(skip);
    let period = cfg.health_check(node.id).period;
    let avg = |v: u64| {
        if period > 0 && checked > 0 {
            format!("{:.6}", v as f64 / checked as f64)
        } else {
            "0.000000".to_string()
        }
    };
    let t = |a: &std::sync::atomic::AtomicI64| time_or_empty(a.load(Ordering::Relaxed));
    vec![
        node.id.to_string(),
        node.hostname.clone(),
        node.port.to_string(),
        node.status.name().to_string(),
        node.role.name().to_string(),
        format_time(node.last_status_change),
        total.to_string(),
        load(&h.success_count).to_string(),
        load(&h.fail_count).to_string(),
        skip.to_string(),
        load(&h.retry_count).to_string(),
        avg(load(&h.retry_count)),
        load(&h.max_retry_count).to_string(),
        load(&h.max_duration_ms).to_string(),
        load(&h.min_duration_ms).to_string(),
        avg(load(&h.total_duration_ms)),
        t(&h.last_health_check),
        t(&h.last_successful_health_check),
        t(&h.last_skip_health_check),
        t(&h.last_failed_health_check),
    ]
}
