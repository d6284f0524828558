//! One backend node as every process sees it: its status and role, the figures
//! SHOW POOL_NODES / POOL_BACKEND_STATS / POOL_HEALTH_CHECK_STATS print, and the
//! quarantine flag, changed through methods that keep them consistent.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::text::ShmText;
/// Node status as Pgpool-II numbers it (pcp_node_info prints these numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BackendStatus {
    Unused = 0,
    ConnectWait = 1,
    Up = 2,
    Down = 3,
}

impl BackendStatus {
    pub fn from_u8(v: u8) -> BackendStatus {
        match v {
            1 => BackendStatus::ConnectWait,
            2 => BackendStatus::Up,
            3 => BackendStatus::Down,
            _ => BackendStatus::Unused,
        }
    }

    /// Usable for new sessions.
    pub fn is_alive(self) -> bool {
        matches!(self, BackendStatus::ConnectWait | BackendStatus::Up)
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendStatus::Unused => "unused",
            BackendStatus::ConnectWait => "waiting",
            BackendStatus::Up => "up",
            BackendStatus::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BackendRole {
    Unknown = 0,
    Primary = 1,
    Standby = 2,
}

impl BackendRole {
    pub fn from_u8(v: u8) -> BackendRole {
        match v {
            1 => BackendRole::Primary,
            2 => BackendRole::Standby,
            _ => BackendRole::Unknown,
        }
    }
}

/// One backend node as every process sees it.
#[repr(C)]
pub struct BackendState {
    pub status: AtomicU8,
    role: AtomicU8,
    /// Role the node itself reports (pg_is_in_recovery), for SHOW POOL_NODES pg_role.
    pg_role: AtomicU8,
    /// 1 when the last check reached the node (pg_status).
    pub pg_up: AtomicU8,
    /// 1 when `replication_delay` is a time (microseconds, from the primary's replay_lag:
    /// delay_threshold_by_time), 0 when it is bytes of WAL.
    pub delay_by_time: AtomicU8,
    pub select_cnt: AtomicU64,
    pub last_status_change: AtomicI64,
    /// Replication delay behind the primary (sr_check): bytes, or microseconds when
    /// `delay_by_time` is 1.
    pub replication_delay: AtomicU64,
    pub replication_state: ShmText<32>,
    pub replication_sync_state: ShmText<32>,
    pub stats: StatementStats,
    pub health: HealthStats,
    /// Pid of this node's health-check process (0 = none).
    pub health_check_pid: AtomicI32,
    /// Bumped by a child that saw this node fail, to wake its health check early.
    pub suspect: AtomicU32,
    /// 1 when an administrator detached the node (pcp_detach_node): auto_failback
    /// leaves it alone.
    pub admin_detached: AtomicU8,
    /// 1 while the node is down here only because this pgpool alone saw it fail
    /// (watchdog quarantine): no failover_command ran, health checks go on and bring it
    /// back when it answers again.
    quarantined: AtomicU8,
}

/// Per-node statement counters (SHOW POOL_BACKEND_STATS).
#[repr(C)]
pub struct StatementStats {
    pub insert_cnt: AtomicU64,
    pub update_cnt: AtomicU64,
    pub delete_cnt: AtomicU64,
    pub ddl_cnt: AtomicU64,
    pub other_cnt: AtomicU64,
    pub panic_cnt: AtomicU64,
    pub fatal_cnt: AtomicU64,
    pub error_cnt: AtomicU64,
}

/// Health-check statistics of one node (SHOW POOL_HEALTH_CHECK_STATS,
/// pcp_health_check_stats). Durations in milliseconds, times in Unix seconds.
#[repr(C)]
pub struct HealthStats {
    pub total_count: AtomicU64,
    pub success_count: AtomicU64,
    pub fail_count: AtomicU64,
    pub skip_count: AtomicU64,
    pub retry_count: AtomicU64,
    pub max_retry_count: AtomicU64,
    pub total_duration_ms: AtomicU64,
    pub max_duration_ms: AtomicU64,
    pub min_duration_ms: AtomicU64,
    pub last_health_check: AtomicI64,
    pub last_successful_health_check: AtomicI64,
    pub last_skip_health_check: AtomicI64,
    pub last_failed_health_check: AtomicI64,
}

impl BackendState {
    pub fn status(&self) -> BackendStatus {
        BackendStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub fn set_status(&self, s: BackendStatus) {
        self.status.store(s as u8, Ordering::Release);
        self.last_status_change
            .store(crate::now_secs(), Ordering::Relaxed);
    }

    /// Is the node no further behind the primary than `limit` (delay_threshold, or
    /// delay_threshold_by_time in microseconds; 0: no limit)?
    pub fn within_delay(&self, limit: u64) -> bool {
        limit == 0 || self.replication_delay.load(Ordering::Relaxed) <= limit
    }

    /// The one answer to "may reads go to this node now": it is up and not beyond the
    /// delay limit (its weight is the caller's business: a redirect may name a node
    /// whose weight is 0).
    pub fn usable_for_reads(&self, delay_limit: u64) -> bool {
        self.status().is_alive() && self.within_delay(delay_limit)
    }

    pub fn quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Acquire) != 0
    }

    /// Down locally (quarantine) or back (`false`), with the status to match.
    pub fn set_quarantine(&self, on: bool, status: BackendStatus) {
        self.quarantined.store(u8::from(on), Ordering::Release);
        self.set_status(status);
    }

    pub fn role(&self) -> BackendRole {
        BackendRole::from_u8(self.role.load(Ordering::Acquire))
    }

    /// The role pgpool gives the node (SHOW POOL_NODES role).
    pub fn set_role(&self, role: BackendRole) {
        self.role.store(role as u8, Ordering::Release);
    }

    /// The role the node itself reported (pg_is_in_recovery), SHOW POOL_NODES pg_role.
    pub fn pg_role(&self) -> BackendRole {
        BackendRole::from_u8(self.pg_role.load(Ordering::Acquire))
    }

    pub fn set_pg_role(&self, role: BackendRole) {
        self.pg_role.store(role as u8, Ordering::Release);
    }

    /// A role given and confirmed by the node at once (after a promotion).
    pub fn set_roles(&self, role: BackendRole) {
        self.set_role(role);
        self.set_pg_role(role);
    }

    /// A node id taken into use (or out of it) by a reload: the counters and facts of
    /// whatever node had the id before are forgotten.
    pub fn reset(&self, status: BackendStatus) {
        for a in [
            &self.role,
            &self.pg_role,
            &self.pg_up,
            &self.delay_by_time,
            &self.admin_detached,
            &self.quarantined,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.select_cnt.store(0, Ordering::Relaxed);
        self.replication_delay.store(0, Ordering::Relaxed);
        self.replication_state.set("");
        self.replication_sync_state.set("");
        let s = &self.stats;
        let h = &self.health;
        for a in [
            &s.insert_cnt,
            &s.update_cnt,
            &s.delete_cnt,
            &s.ddl_cnt,
            &s.other_cnt,
            &s.panic_cnt,
            &s.fatal_cnt,
            &s.error_cnt,
            &h.total_count,
            &h.success_count,
            &h.fail_count,
            &h.skip_count,
            &h.retry_count,
            &h.max_retry_count,
            &h.total_duration_ms,
            &h.max_duration_ms,
            &h.min_duration_ms,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        for a in [
            &h.last_health_check,
            &h.last_successful_health_check,
            &h.last_skip_health_check,
            &h.last_failed_health_check,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.set_status(status);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Layout, Shmem};

    use super::*;

    #[test]
    fn reads_go_only_to_live_nodes_within_the_delay_limit() {
        let shm = Shmem::create(Layout {
            num_children: 1,
            max_pool: 1,
        })
        .expect("shmem");
        let b = shm.backend(1);
        b.set_status(BackendStatus::Up);
        b.replication_delay.store(500, Ordering::Relaxed);
        assert!(b.usable_for_reads(0), "no limit");
        assert!(b.usable_for_reads(500), "at the limit");
        assert!(!b.usable_for_reads(499), "beyond it");
        b.set_status(BackendStatus::Down);
        assert!(!b.usable_for_reads(0), "down");
        assert!(b.within_delay(0));
    }
}
