//! Layout and creation of the shared segment, and the structures that live in it.

use std::io;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

pub use crate::backend_state::{
    BackendRole, BackendState, BackendStatus, HealthStats, StatementStats,
};
use crate::mapping::Mapping;
use crate::nodes::NodeTable;
use crate::requests::{RequestKind, RequestQueue};
use crate::text::ShmText;
use crate::MAX_BACKENDS;

/// Cluster-wide facts.
#[repr(C)]
pub struct Cluster {
    /// Node id of the primary, -1 when none is known (see [`Cluster::set_primary`]).
    primary_node_id: AtomicI32,
    /// Lowest-numbered live node (the one raw mode uses).
    pub main_node_id: AtomicI32,
    /// Process id of the main (supervisor) process.
    pub main_pid: AtomicI32,
    /// Set by the main process when a shutdown has begun; children stop accepting.
    pub shutting_down: AtomicU8,
    pub start_time: AtomicI64,
    /// Pid of the PCP worker running an online recovery, 0 when none (one recovery
    /// at a time, as in Pgpool-II).
    pub recovery_pid: AtomicI32,
    /// Bumped by a child that ran DDL: every child's cached catalog facts (volatile
    /// functions, unlogged tables) are stale from then on.
    pub catalog_generation: AtomicU64,
    /// Pid of the logging collector's logger process, 0 when there is none.
    pub logger_pid: AtomicI32,
}

impl Cluster {
    /// The primary's node id as Pgpool-II shows it: -1 when none is known.
    pub fn primary_node_id(&self) -> i32 {
        self.primary_node_id.load(Ordering::Acquire)
    }

    /// The primary's node id, when one is known.
    pub fn primary(&self) -> Option<usize> {
        usize::try_from(self.primary_node_id()).ok()
    }

    /// Records the primary (None: none is known).
    pub fn set_primary(&self, node: Option<usize>) {
        let id = node.and_then(|n| i32::try_from(n).ok()).unwrap_or(-1);
        self.primary_node_id.store(id, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChildState {
    Unused = 0,
    WaitForConnection = 1,
    Active = 2,
}

/// One pre-forked child process.
#[repr(C)]
pub struct ChildSlot {
    pub pid: AtomicI32,
    pub start_time: AtomicI64,
    pub client_connection_count: AtomicU64,
    pub state: AtomicU8,
    /// Pool slot serving the current client, -1 when idle.
    pub current_pool: AtomicI32,
    pub client_host: ShmText<64>,
    pub client_port: ShmText<8>,
    /// Snapshot isolation mode: the step this child is taking on every node (0: none).
    pub snapshot_step: AtomicU8,
    /// Load-balance node and last statement of the session (SHOW POOL_POOLS).
    pub activity: crate::ChildActivity,
}

impl ChildSlot {
    pub fn state(&self) -> ChildState {
        match self.state.load(Ordering::Acquire) {
            1 => ChildState::WaitForConnection,
            2 => ChildState::Active,
            _ => ChildState::Unused,
        }
    }

    pub fn set_state(&self, s: ChildState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// One backend connection of a pooled set, for cancel forwarding and SHOW POOL_POOLS.
#[repr(C)]
pub struct BackendConnInfo {
    pub pid: AtomicU32,
    pub key: AtomicU32,
    pub connected: AtomicU8,
    /// Set by the child that forwards a pg_terminate_backend() of this connection's
    /// backend: its FATAL ends one session, it says nothing about the node.
    pub terminating: AtomicU8,
    /// The session has requests on this connection not yet answered (see
    /// [`BackendConnInfo::set_busy`]).
    busy: AtomicU8,
}

impl BackendConnInfo {
    /// Kept by the relay: a CancelRequest is forwarded to the connections that are
    /// running something, so that a late cancel does not hit the next statement of an
    /// idle one.
    pub fn set_busy(&self, busy: bool) {
        if self.is_busy() != busy {
            self.busy.store(u8::from(busy), Ordering::Release);
        }
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) != 0
    }
}

/// One pooled backend connection set of a child.
#[repr(C)]
pub struct PoolSlotInfo {
    pub database: ShmText<64>,
    pub user: ShmText<64>,
    pub major: AtomicU32,
    pub minor: AtomicU32,
    pub create_time: AtomicI64,
    pub client_connect_time: AtomicI64,
    pub client_disconnect_time: AtomicI64,
    /// Times this set was reused by a new client.
    pub pool_counter: AtomicU64,
    pub in_use: AtomicU8,
    /// BackendKeyData pgpool gave the client this set serves: the pid is the main node
    /// backend's (as Pgpool-II, so a client can tell its own notifications), the secret
    /// pgpool's own. Kept per set, not per child, so that a child serving several
    /// sessions has a key for each. Set and cleared through
    /// [`PoolSlotInfo::publish_cancel_key`].
    cancel_pid: AtomicU32,
    cancel_key: AtomicU32,
}

impl PoolSlotInfo {
    /// The key a CancelRequest for the client of this set must present (key 0: none).
    pub fn publish_cancel_key(&self, pid: u32, key: u32) {
        self.cancel_key.store(0, Ordering::Release);
        self.cancel_pid.store(pid, Ordering::Release);
        self.cancel_key.store(key, Ordering::Release);
    }

    /// The client of this set has gone: the set is not in use and no cancel reaches it.
    pub fn end_session(&self) {
        self.client_disconnect_time
            .store(crate::now_secs(), Ordering::Relaxed);
        self.in_use.store(0, Ordering::Relaxed);
        self.publish_cancel_key(0, 0);
    }

    fn presents(&self, pid: u32, key: u32) -> bool {
        key != 0
            && self.cancel_key.load(Ordering::Acquire) == key
            && self.cancel_pid.load(Ordering::Acquire) == pid
    }
}

/// Sizes of the variable parts of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub num_children: usize,
    pub max_pool: usize,
}

struct Offsets {
    cluster: usize,
    requests: usize,
    nodes: usize,
    backends: usize,
    children: usize,
    pools: usize,
    conns: usize,
    watchdog: usize,
    total: usize,
}

fn align_up(off: usize, align: usize) -> usize {
    off.div_ceil(align) * align
}

impl Layout {
    fn offsets(&self) -> Offsets {
        let mut off = 0;
        let mut place = |size: usize, align: usize, count: usize| {
            off = align_up(off, align);
            let at = off;
            off += size * count;
            at
        };
        let cluster = place(size_of::<Cluster>(), align_of::<Cluster>(), 1);
        let requests = place(size_of::<RequestQueue>(), align_of::<RequestQueue>(), 1);
        let nodes = place(size_of::<NodeTable>(), align_of::<NodeTable>(), 1);
        let backends = place(
            size_of::<BackendState>(),
            align_of::<BackendState>(),
            MAX_BACKENDS,
        );
        let children = place(
            size_of::<ChildSlot>(),
            align_of::<ChildSlot>(),
            self.num_children,
        );
        let pools = place(
            size_of::<PoolSlotInfo>(),
            align_of::<PoolSlotInfo>(),
            self.num_children * self.max_pool,
        );
        let conns = place(
            size_of::<BackendConnInfo>(),
            align_of::<BackendConnInfo>(),
            self.num_children * self.max_pool * MAX_BACKENDS,
        );
        let watchdog = place(
            size_of::<crate::WatchdogArea>(),
            align_of::<crate::WatchdogArea>(),
            1,
        );
        Offsets {
            cluster,
            requests,
            nodes,
            backends,
            children,
            pools,
            conns,
            watchdog,
            total: off,
        }
    }

    pub fn size(&self) -> usize {
        self.offsets().total
    }
}

/// Handle on the mapped segment. Created once by the main process; children inherit
/// the mapping (and a copy of this handle) through fork.
pub struct Shmem {
    base: *mut u8,
    len: usize,
    /// Owns the region (unmapped on drop); accessors borrow `self`, so no reference into
    /// it outlives the handle.
    _map: Mapping,
    layout: Layout,
    off: Offsets,
}

// SAFETY: the segment only holds atomics, so sharing the handle between threads is as safe as
// sharing it between processes.
unsafe impl Send for Shmem {}
unsafe impl Sync for Shmem {}

impl Shmem {
    /// Maps a zeroed `MAP_SHARED | MAP_ANONYMOUS` segment for `layout`.
    pub fn create(layout: Layout) -> io::Result<Shmem> {
        let off = layout.offsets();
        let map = Mapping::new(off.total)?;
        let shm = Shmem {
            base: map.base,
            len: map.len,
            _map: map,
            layout,
            off,
        };
        shm.cluster().set_primary(None);
        shm.cluster().main_node_id.store(-1, Ordering::Relaxed);
        for c in 0..layout.num_children {
            shm.child(c).current_pool.store(-1, Ordering::Relaxed);
        }
        Ok(shm)
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// # Safety contract (internal)
    /// `offset + index * size_of::<T>()` must lie inside the segment and be aligned for T;
    /// callers pass offsets computed by `Layout::offsets` and indices checked against it.
    fn at<T>(&self, offset: usize, index: usize) -> &T {
        let at = offset + index * size_of::<T>();
        assert!(
            at + size_of::<T>() <= self.len,
            "shared memory index out of range"
        );
        // SAFETY: bounds checked above; alignment holds because offsets are aligned for
        // T by Layout::offsets and size_of::<T>() is a multiple of align_of::<T>(); the
        // memory lives as long as the mapping, which lives as long as `self`; T consists
        // of atomics only, so shared references from several processes are sound.
        unsafe { &*(self.base.add(at) as *const T) }
    }

    pub fn cluster(&self) -> &Cluster {
        self.at(self.off.cluster, 0)
    }

    pub fn watchdog(&self) -> &crate::WatchdogArea {
        self.at(self.off.watchdog, 0)
    }

    pub fn requests(&self) -> &RequestQueue {
        self.at(self.off.requests, 0)
    }

    /// Queues a request for the main process and wakes it with SIGUSR1.
    pub fn request(&self, kind: RequestKind, node: i32, flags: u32) -> Option<u64> {
        let seq = self.requests().push(kind, node, flags)?;
        let main = self.cluster().main_pid.load(Ordering::Acquire);
        if main > 0 {
            // SAFETY: kill(2) with a pid read from shared memory; at worst the signal
            // goes nowhere (ESRCH), which the caller tolerates.
            unsafe {
                libc::kill(main, libc::SIGUSR1);
            }
        }
        Some(seq)
    }

    /// Where the configured nodes are (published by the main process).
    pub fn nodes(&self) -> &NodeTable {
        self.at(self.off.nodes, 0)
    }

    pub fn backend(&self, node: usize) -> &BackendState {
        assert!(node < MAX_BACKENDS);
        self.at(self.off.backends, node)
    }

    pub fn child(&self, index: usize) -> &ChildSlot {
        assert!(index < self.layout.num_children, "child index out of range");
        self.at(self.off.children, index)
    }

    pub fn pool(&self, child: usize, slot: usize) -> &PoolSlotInfo {
        assert!(child < self.layout.num_children && slot < self.layout.max_pool);
        self.at(self.off.pools, child * self.layout.max_pool + slot)
    }

    pub fn conn(&self, child: usize, slot: usize, node: usize) -> &BackendConnInfo {
        assert!(
            child < self.layout.num_children && slot < self.layout.max_pool && node < MAX_BACKENDS
        );
        self.at(
            self.off.conns,
            (child * self.layout.max_pool + slot) * MAX_BACKENDS + node,
        )
    }

    /// The node whose pooled connection (of any child) has backend process `pid`, and that
    /// connection's record.
    pub fn find_backend_pid(&self, pid: u32) -> Option<(usize, &BackendConnInfo)> {
        if pid == 0 {
            return None;
        }
        for child in 0..self.layout.num_children {
            for slot in 0..self.layout.max_pool {
                for node in 0..MAX_BACKENDS {
                    let c = self.conn(child, slot, node);
                    if c.connected.load(Ordering::Acquire) != 0
                        && c.pid.load(Ordering::Relaxed) == pid
                    {
                        return Some((node, c));
                    }
                }
            }
        }
        None
    }

    /// Finds the session (child, pool slot) whose client holds BackendKeyData (pid, key).
    pub fn find_cancel_target(&self, pid: u32, key: u32) -> Option<(usize, usize)> {
        (0..self.layout.num_children)
            .flat_map(|c| (0..self.layout.max_pool).map(move |s| (c, s)))
            .find(|&(c, s)| self.pool(c, s).presents(pid, key))
    }

    /// A child is gone: no cancel key of its sessions is valid any more.
    pub fn forget_cancel_keys(&self, child: usize) {
        for slot in 0..self.layout.max_pool {
            self.pool(child, slot).publish_cancel_key(0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_across_fork() {
        let shm = Shmem::create(Layout {
            num_children: 4,
            max_pool: 2,
        })
        .unwrap();
        assert_eq!(shm.cluster().primary_node_id(), -1);
        assert_eq!(shm.cluster().primary(), None);
        // SAFETY: test-only fork; the child only touches atomics and exits immediately.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            shm.backend(2).select_cnt.fetch_add(7, Ordering::Relaxed);
            shm.pool(3, 1).database.set("bench");
            shm.conn(3, 1, 2).pid.store(99, Ordering::Relaxed);
            // SAFETY: terminate the forked test child without running destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child we just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(shm.backend(2).select_cnt.load(Ordering::Relaxed), 7);
        assert_eq!(shm.pool(3, 1).database.get(), "bench");
        assert_eq!(shm.conn(3, 1, 2).pid.load(Ordering::Relaxed), 99);
    }

    #[test]
    fn cancel_lookup() {
        let shm = Shmem::create(Layout {
            num_children: 2,
            max_pool: 2,
        })
        .unwrap();
        shm.pool(1, 0).publish_cancel_key(1234, 55);
        // A second session of the same child has a key of its own.
        shm.pool(1, 1).publish_cancel_key(1240, 77);
        assert_eq!(shm.find_cancel_target(1234, 55), Some((1, 0)));
        assert_eq!(shm.find_cancel_target(1240, 77), Some((1, 1)));
        assert_eq!(shm.find_cancel_target(1234, 56), None);
        assert_eq!(shm.find_cancel_target(1235, 55), None);
        shm.pool(1, 0).end_session();
        assert_eq!(shm.find_cancel_target(1234, 55), None);
        assert_eq!(shm.find_cancel_target(1240, 77), Some((1, 1)));
        shm.pool(1, 0).publish_cancel_key(1234, 0);
        assert_eq!(shm.find_cancel_target(1234, 0), None);
        shm.forget_cancel_keys(1);
        assert_eq!(shm.find_cancel_target(1240, 77), None);
    }

    #[test]
    fn text_truncates_on_char_boundary() {
        let shm = Shmem::create(Layout {
            num_children: 1,
            max_pool: 1,
        })
        .unwrap();
        let long = "é".repeat(40);
        shm.child(0).client_host.set(&long);
        assert_eq!(shm.child(0).client_host.get(), "é".repeat(32));
    }
}
