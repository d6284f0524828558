//! Rows describing nodes, child processes and pooled connections, read from shared
//! memory. Both the SQL admin commands (SHOW POOL_NODES / POOL_PROCESSES / POOL_POOLS /
//! POOL_HEALTH_CHECK_STATS / POOL_BACKEND_STATS / POOL_CACHE / POOL_STATUS) and the PCP
//! requests (pcp_node_info, pcp_proc_info, pcp_health_check_stats, pcp_pool_status)
//! format from here, so the two views never disagree. Values are Pgpool-II's text forms.

use std::sync::atomic::Ordering;

use config::{ClusteringMode, Config};
use shmem::{BackendRole, BackendStatus, ChildState, Shmem};

use crate::logging::format_time;

pub use crate::pool_status::pool_status;
pub use crate::report_cache::{pool_cache, CACHE_COLUMNS};

/// SHOW POOL_NODES columns.
pub const NODES_COLUMNS: [&str; 14] = [
    "node_id",
    "hostname",
    "port",
    "status",
    "pg_status",
    "lb_weight",
    "role",
    "pg_role",
    "select_cnt",
    "load_balance_node",
    "replication_delay",
    "replication_state",
    "replication_sync_state",
    "last_status_change",
];

/// SHOW POOL_HEALTH_CHECK_STATS columns (pcp_health_check_stats sends the same fields).
pub const HEALTH_CHECK_STATS_COLUMNS: [&str; 20] = [
    "node_id",
    "hostname",
    "port",
    "status",
    "role",
    "last_status_change",
    "total_count",
    "success_count",
    "fail_count",
    "skip_count",
    "retry_count",
    "average_retry_count",
    "max_retry_count",
    "max_duration",
    "min_duration",
    "average_duration",
    "last_health_check",
    "last_successful_health_check",
    "last_skip_health_check",
    "last_failed_health_check",
];

/// SHOW POOL_BACKEND_STATS columns.
pub const BACKEND_STATS_COLUMNS: [&str; 14] = [
    "node_id",
    "hostname",
    "port",
    "status",
    "role",
    "select_cnt",
    "insert_cnt",
    "update_cnt",
    "delete_cnt",
    "ddl_cnt",
    "other_cnt",
    "panic_cnt",
    "fatal_cnt",
    "error_cnt",
];

/// SHOW POOL_STATUS columns.
pub const STATUS_COLUMNS: [&str; 3] = ["item", "value", "description"];

/// A node's status as the reports print it. A node pgpool-rs has not yet confirmed
/// (connect-wait) is shown "up", as Pgpool-II shows it once a child has connected.
pub fn shown_status(status: BackendStatus) -> &'static str {
    match status {
        BackendStatus::ConnectWait => "up",
        s => s.name(),
    }
}

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
    /// Bytes, or microseconds when `delay_by_time`.
    pub delay: u64,
    pub delay_by_time: bool,
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

impl Node {
    /// The replication delay as Pgpool-II 4.4 shows it: bytes, or with
    /// delay_threshold_by_time seconds with six decimals (`with_unit`: followed by
    /// " second" / " seconds", as in SHOW POOL_NODES).
    pub fn delay_text(&self, with_unit: bool) -> String {
        if !self.delay_by_time {
            return self.delay.to_string();
        }
        // Pgpool-II divides in single precision
        let secs = format!("{:.6}", self.delay as f32 / 1_000_000.0);
        match (with_unit, self.delay >= 2_000_000) {
            (false, _) => secs,
            (true, true) => format!("{secs} seconds"),
            (true, false) => format!("{secs} second"),
        }
    }
}

/// Every configured node, in id order.
pub fn nodes(cfg: &Config, shm: &Shmem) -> Vec<Node> {
    let total: f64 = cfg.backends.iter().map(|b| b.weight).sum();
    let stream = streaming(cfg);
    let primary = shm.cluster().primary_node_id();
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
                match st.pg_role() {
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
                delay_by_time: role == Role::Standby
                    && st.delay_by_time.load(Ordering::Relaxed) != 0,
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

/// SHOW POOL_POOLS rows (one per child, pool slot and node), 4.7's 21 columns:
/// pool_pid start_time client_connection_count pool_id backend_id database username
/// backend_connection_time client_connection_time client_disconnection_time
/// client_idle_duration majorversion minorversion pool_counter pool_backendpid
/// pool_connected status load_balance_node client_host client_port statement.
/// As in 4.7, the client's address and the last statement (on the rows of the nodes it
/// was sent to) are the child's, shown on each of its rows; load_balance_node is 1 on
/// the row of the connection the child's current session reads from. pcp_proc_info
/// sends the same fields: Pgpool-II 4.3 and 4.4 send the first 17 (pool_pid .. status),
/// 4.5 and 4.6 add load_balance_node, 4.7 the last three; a client copies the fields
/// it knows and skips the rest, so all 21 go to every client.
pub fn pools(cfg: &Config, shm: &Shmem) -> Vec<Vec<String>> {
    let layout = shm.layout();
    let mut rows = Vec::new();
    for i in 0..layout.num_children {
        let c = shm.child(i);
        let current = c.current_pool.load(Ordering::Acquire);
        let lb_node = c.activity.load_balance_node();
        for slot in 0..layout.max_pool {
            let p = shm.pool(i, slot);
            let major = p.major.load(Ordering::Relaxed);
            for node in 0..cfg.backends.len() {
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
                let connected = active && conn.connected.load(Ordering::Relaxed) != 0;
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
                    u8::from(connected).to_string(),
                    child_status(shm, i).to_string(),
                    u8::from(connected && Some(node) == lb_node).to_string(),
                    c.client_host.get(),
                    c.client_port.get(),
                    c.activity.statement_for(node).unwrap_or_default(),
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
        shown_status(node.status).to_string(),
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

/// SHOW POOL_NODES rows. `session_node` is the asking session's load-balance node.
pub fn pool_nodes(cfg: &Config, shm: &Shmem, session_node: Option<usize>) -> Vec<Vec<String>> {
    nodes(cfg, shm)
        .into_iter()
        .map(|n| {
            let st = shm.backend(n.id);
            let delay = n.delay_text(true);
            vec![
                n.id.to_string(),
                n.hostname,
                n.port.to_string(),
                shown_status(n.status).to_string(),
                n.pg_status.to_string(),
                format!("{:.6}", n.weight),
                n.role.name().to_string(),
                n.pg_role.to_string(),
                st.select_cnt.load(Ordering::Relaxed).to_string(),
                (Some(n.id) == session_node).to_string(),
                delay,
                n.replication_state,
                n.replication_sync_state,
                format_time(n.last_status_change),
            ]
        })
        .collect()
}

/// SHOW POOL_HEALTH_CHECK_STATS rows, one per node.
pub fn health_check_rows(cfg: &Config, shm: &Shmem) -> Vec<Vec<String>> {
    nodes(cfg, shm)
        .iter()
        .map(|n| health_check_stats(cfg, shm, n))
        .collect()
}

/// SHOW POOL_BACKEND_STATS rows, one per node.
pub fn backend_stats(cfg: &Config, shm: &Shmem) -> Vec<Vec<String>> {
    nodes(cfg, shm)
        .into_iter()
        .map(|n| {
            let st = shm.backend(n.id);
            let s = &st.stats;
            let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed).to_string();
            vec![
                n.id.to_string(),
                n.hostname,
                n.port.to_string(),
                shown_status(n.status).to_string(),
                n.role.name().to_string(),
                c(&st.select_cnt),
                c(&s.insert_cnt),
                c(&s.update_cnt),
                c(&s.delete_cnt),
                c(&s.ddl_cnt),
                c(&s.other_cnt),
                c(&s.panic_cnt),
                c(&s.fatal_cnt),
                c(&s.error_cnt),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Config, Shmem) {
        let cfg = Config::parse(
            "backend_hostname0 = 'h0'\nbackend_port0 = 5432\n\
             backend_hostname1 = 'h1'\nbackend_port1 = 5433\nhealth_check_period = 1\n",
            std::path::Path::new("pgpool.conf"),
        )
        .expect("config");
        let shm = Shmem::create(shmem::Layout {
            num_children: 2,
            max_pool: 1,
        })
        .expect("shmem");
        shm.cluster().set_primary(Some(0));
        (cfg, shm)
    }

    #[test]
    fn every_row_has_its_columns() {
        let (cfg, shm) = setup();
        let nodes = pool_nodes(&cfg, &shm, Some(1));
        assert_eq!(nodes.len(), 2);
        assert!(nodes.iter().all(|r| r.len() == NODES_COLUMNS.len()));
        assert_eq!(nodes[1][9], "true");
        assert_eq!(nodes[0][6], "primary");
        assert_eq!(nodes[1][6], "standby");
        assert_eq!(nodes[0][5], "0.500000");
        let hc = health_check_rows(&cfg, &shm);
        assert!(hc
            .iter()
            .all(|r| r.len() == HEALTH_CHECK_STATS_COLUMNS.len()));
        let bs = backend_stats(&cfg, &shm);
        assert!(bs.iter().all(|r| r.len() == BACKEND_STATS_COLUMNS.len()));
        assert_eq!(processes(&cfg, &shm).len(), 2);
    }

    #[test]
    fn health_check_averages_and_counters() {
        let (cfg, shm) = setup();
        let h = &shm.backend(1).health;
        h.total_count.store(7, Ordering::Relaxed);
        h.success_count.store(7, Ordering::Relaxed);
        h.total_duration_ms.store(54, Ordering::Relaxed);
        h.max_duration_ms.store(15, Ordering::Relaxed);
        h.min_duration_ms.store(5, Ordering::Relaxed);
        let r = &health_check_rows(&cfg, &shm)[1];
        assert_eq!(
            &r[6..16],
            ["7", "7", "0", "0", "0", "0.000000", "0", "15", "5", "7.714286"]
        );
        assert_eq!(r[16], "", "never checked: empty time");
        shm.backend(0).stats.insert_cnt.store(3, Ordering::Relaxed);
        shm.backend(0).select_cnt.store(9, Ordering::Relaxed);
        let b = &backend_stats(&cfg, &shm)[0];
        assert_eq!(&b[5..7], ["9", "3"]);
    }

    #[test]
    fn delay_in_bytes_or_seconds() {
        let (cfg, shm) = setup();
        let b = shm.backend(1);
        b.replication_delay.store(123_456, Ordering::Release);
        let node = |shm: &Shmem| nodes(&cfg, shm).remove(1);
        assert_eq!(node(&shm).delay_text(true), "123456");
        b.delay_by_time.store(1, Ordering::Release);
        assert_eq!(node(&shm).delay_text(true), "0.123456 second");
        assert_eq!(node(&shm).delay_text(false), "0.123456");
        b.replication_delay.store(2_500_000, Ordering::Release);
        assert_eq!(node(&shm).delay_text(true), "2.500000 seconds");
        let rows = pool_nodes(&cfg, &shm, None);
        assert_eq!(rows[1][10], "2.500000 seconds");
        // the primary has no delay
        assert_eq!(rows[0][10], "0");
    }

    #[test]
    fn pools_show_the_child_session() {
        let (cfg, shm) = setup();
        let c = shm.child(1);
        c.pid.store(4242, Ordering::Relaxed);
        c.current_pool.store(0, Ordering::Release);
        shm.pool(1, 0).major.store(3, Ordering::Relaxed);
        shm.conn(1, 0, 0).connected.store(1, Ordering::Relaxed);
        shm.conn(1, 0, 1).connected.store(1, Ordering::Relaxed);
        c.client_host.set("127.0.0.1");
        c.client_port.set("50000");
        c.activity.set_load_balance_node(Some(1));
        c.activity.set_statement(b"SELECT 1", [1]);
        let rows = pools(&cfg, &shm);
        let mine: Vec<_> = rows.iter().filter(|r| r[0] == "4242").collect();
        assert_eq!(mine.len(), 2, "one row per node");
        assert!(rows.iter().all(|r| r.len() == 21));
        // load_balance_node, client_host, client_port, statement
        assert_eq!(&mine[0][17..], ["0", "127.0.0.1", "50000", ""]);
        assert_eq!(&mine[1][17..], ["1", "127.0.0.1", "50000", "SELECT 1"]);
        // no session: no load-balance node, the last client and statement stay (4.7)
        c.current_pool.store(-1, Ordering::Release);
        let rows = pools(&cfg, &shm);
        let r = rows
            .iter()
            .find(|r| r[0] == "4242" && r[4] == "1")
            .expect("row");
        assert_eq!(&r[15..], ["0", "", "0", "127.0.0.1", "50000", "SELECT 1"]);
    }
}
