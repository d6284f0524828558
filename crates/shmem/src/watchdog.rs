//! What the watchdog process shares: its pid, the cluster view it publishes for PCP
//! (`pcp_watchdog_info`) and SHOW commands, and the queue through which the main process
//! hands it backend requests that need the cluster's agreement.

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::requests::RequestQueue;
use crate::text::ShmText;

/// Bytes of the published cluster view (a few hundred per watchdog node).
pub const WATCHDOG_INFO_LEN: usize = 16384;

#[repr(C)]
pub struct WatchdogArea {
    pid: AtomicI32,
    escalated: AtomicU8,
    /// The encoded cluster view (`watchdog::info::ClusterInfo::encode`).
    info: ShmText<WATCHDOG_INFO_LEN>,
    /// Requests the main process passes on for the cluster to decide.
    pub proposals: RequestQueue,
}

impl WatchdogArea {
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::Release);
    }

    pub fn publish(&self, info: &str, escalated: bool) {
        self.info.set(info);
        self.escalated.store(u8::from(escalated), Ordering::Release);
    }

    pub fn info(&self) -> String {
        self.info.get()
    }

    /// This node holds the leader's duties (virtual IP, failover commands).
    pub fn escalated(&self) -> bool {
        self.escalated.load(Ordering::Acquire) != 0
    }
}
