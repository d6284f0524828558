//! The one shared-memory segment pgpool creates before its first fork, and the typed
//! views every process uses on it: per-backend-node status and counters, the cluster's
//! primary/main node, and per-child process slots with their pooled connection
//! descriptions (user, database, backend pids and cancel keys). Everything in it is
//! `#[repr(C)]`, holds no pointers, and is read and written through atomics, so a
//! process that dies mid-update can never leave a lock held.

mod activity;
mod backend_state;
mod mapping;
mod nodes;
mod query_cache;
mod requests;
mod segment;
mod snapshot_gate;
mod text;
mod watchdog;

pub use activity::{ChildActivity, STATEMENT_LEN};
pub use nodes::{NodeSpec, NodeTable, NODE_ALWAYS_PRIMARY, NODE_DISALLOW_TO_FAILOVER};
pub use query_cache::{CacheLayout, CacheStats, QueryCache, Stamp};
pub use requests::{
    Request, RequestKind, RequestQueue, REQUEST_CONFIRMED, REQUEST_FROM_CHILD,
    REQUEST_FROM_HEALTH_CHECK, REQUEST_FROM_PCP, REQUEST_GRACEFUL, REQUEST_NO_COMMANDS,
    REQUEST_SWITCHOVER,
};
pub use segment::{
    BackendConnInfo, BackendRole, BackendState, BackendStatus, ChildSlot, ChildState, Cluster,
    HealthStats, Layout, PoolSlotInfo, Shmem, StatementStats,
};
pub use snapshot_gate::SnapshotStep;
pub use text::ShmText;
pub use watchdog::{WatchdogArea, WATCHDOG_INFO_LEN};

/// Most backend nodes a configuration may name (backend_hostname0 .. 127).
pub const MAX_BACKENDS: usize = 128;

/// Seconds since the Unix epoch, for the timestamps kept in shared memory.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
