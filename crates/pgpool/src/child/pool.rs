//! A child's cache of authenticated backend connection sets, at most `max_pool` of
//! them, keyed like Pgpool-II's by user, database and protocol major version (plus the
//! `options` startup parameter, which cannot be changed after start-up). Each set holds
//! one connection per backend node it has used. Slots are mirrored in shared memory
//! for SHOW POOL_POOLS and cancel forwarding.

use std::sync::atomic::Ordering;
use std::time::Instant;

use shmem::Shmem;

use crate::backend::{BackendConn, Secret};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    pub user: String,
    pub database: String,
    pub major: u16,
    pub options: String,
    /// Names of the run-time parameters the client sent at start-up, sorted: they are
    /// in the backends' start-up packets, so a set is only reused by clients that name
    /// the same ones (their values are adjusted with SET when they differ).
    pub guc_names: String,
}

pub struct PooledSet {
    pub key: PoolKey,
    /// Index = node id.
    pub conns: Vec<Option<BackendConn>>,
    /// The credential that logged these connections in, when the backend asked for
    /// one: a later client must present the same password to reuse them.
    pub credential: Option<Secret>,
    pub last_release: Instant,
}

impl PooledSet {
    pub fn any_connected(&self) -> bool {
        self.conns.iter().any(Option::is_some)
    }
}

pub struct ConnectionPool {
    slots: Vec<Option<PooledSet>>,
    /// Slots a session holds (taken, or chosen for a new set) until it puts its set
    /// back or discards it: no other session of the child may choose them.
    busy: Vec<bool>,
    child_index: usize,
    /// Node ids a set may hold a connection to (the node table's length).
    num_nodes: usize,
}

impl ConnectionPool {
    pub fn new(max_pool: usize, child_index: usize, num_nodes: usize) -> Self {
        ConnectionPool {
            slots: (0..max_pool.max(1)).map(|_| None).collect(),
            busy: vec![false; max_pool.max(1)],
            child_index,
            num_nodes,
        }
    }

    /// The node list changed (a reload added or removed nodes): every set gets room for
    /// `num_nodes` connections, and connections to node ids beyond it are closed.
    pub fn resize_nodes(&mut self, num_nodes: usize, shm: &Shmem) {
        let old = self.num_nodes;
        self.num_nodes = num_nodes;
        for i in 0..self.slots.len() {
            if let Some(set) = self.slots[i].as_mut() {
                set.conns.resize_with(num_nodes, || None);
            }
            let empty = self.slots[i].as_ref().is_some_and(|s| !s.any_connected());
            if empty {
                self.discard(i, shm);
            } else if let Some(set) = self.slots[i].as_ref() {
                self.publish(i, set, shm);
            }
            if i < shm.layout().max_pool {
                for node in num_nodes..old {
                    let c = shm.conn(self.child_index, i, node);
                    c.pid.store(0, Ordering::Relaxed);
                    c.key.store(0, Ordering::Relaxed);
                    c.connected.store(0, Ordering::Release);
                }
            }
        }
    }

    /// Takes the set for `key` out of the cache, if there is one.
    pub fn take(&mut self, key: &PoolKey) -> Option<(usize, PooledSet)> {
        let idx = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| &s.key == key))?;
        let set = self.slots[idx].take()?;
        self.busy[idx] = true;
        Some((idx, set))
    }

    /// Chooses (and holds) the slot a new set will occupy: a free one, else the one
    /// released longest ago (whose connections are closed); None when every slot is
    /// held by a session.
    pub fn free_slot(&mut self, shm: &Shmem) -> Option<usize> {
        let unheld = |i: &usize| !self.busy[*i];
        let chosen = (0..self.slots.len())
            .filter(unheld)
            .find(|&i| self.slots[i].is_none())
            .or_else(|| {
                (0..self.slots.len())
                    .filter(unheld)
                    .min_by_key(|&i| self.slots[i].as_ref().map(|s| s.last_release))
            })?;
        self.discard(chosen, shm);
        self.busy[chosen] = true;
        Some(chosen)
    }

    /// Puts a set back after a client session.
    pub fn put(&mut self, slot: usize, set: PooledSet) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(set);
            self.busy[slot] = false;
        }
    }

    /// Closes the set in `slot` and clears its shared-memory record.
    pub fn discard(&mut self, slot: usize, shm: &Shmem) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
            self.busy[slot] = false;
        }
        self.clear_shm(slot, shm);
    }

    pub fn clear_shm(&self, slot: usize, shm: &Shmem) {
        if slot >= shm.layout().max_pool {
            return;
        }
        let info = shm.pool(self.child_index, slot);
        info.database.set("");
        info.user.set("");
        info.major.store(0, Ordering::Relaxed);
        info.in_use.store(0, Ordering::Relaxed);
        info.publish_cancel_key(0, 0);
        for node in 0..self.num_nodes {
            let c = shm.conn(self.child_index, slot, node);
            c.pid.store(0, Ordering::Relaxed);
            c.key.store(0, Ordering::Relaxed);
            c.connected.store(0, Ordering::Relaxed);
        }
    }

    /// Publishes the set's identity and backend keys for other processes.
    pub fn publish(&self, slot: usize, set: &PooledSet, shm: &Shmem) {
        if slot >= shm.layout().max_pool {
            return;
        }
        let info = shm.pool(self.child_index, slot);
        info.database.set(&set.key.database);
        info.user.set(&set.key.user);
        info.major.store(set.key.major as u32, Ordering::Relaxed);
        for node in 0..self.num_nodes {
            let c = shm.conn(self.child_index, slot, node);
            match set.conns.get(node).and_then(Option::as_ref) {
                Some(b) => {
                    if c.pid.load(Ordering::Relaxed) != b.pid {
                        c.terminating.store(0, Ordering::Relaxed);
                    }
                    c.pid.store(b.pid, Ordering::Relaxed);
                    c.key.store(b.key, Ordering::Relaxed);
                    c.set_busy(false);
                    c.connected.store(1, Ordering::Release);
                }
                None => {
                    c.pid.store(0, Ordering::Relaxed);
                    c.key.store(0, Ordering::Relaxed);
                    c.connected.store(0, Ordering::Release);
                }
            }
        }
    }

    /// Closes sets idle longer than `max_idle_secs` (connection_life_time).
    pub fn expire(&mut self, max_idle_secs: u64, shm: &Shmem) {
        if max_idle_secs == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            let expired = self.slots[i]
                .as_ref()
                .is_some_and(|s| s.last_release.elapsed().as_secs() >= max_idle_secs);
            if expired {
                log::debug!(
                    "closing pooled connection set in slot {i}: connection_life_time expired"
                );
                self.discard(i, shm);
            }
        }
    }

    /// Closes every cached set (SIGUSR1, shutdown, backend status change).
    pub fn clear(&mut self, shm: &Shmem) {
        for i in 0..self.slots.len() {
            if self.slots[i].is_some() {
                self.discard(i, shm);
            }
        }
    }

    /// Drops connections to nodes that are no longer alive.
    pub fn drop_dead_nodes(&mut self, alive: impl Fn(usize) -> bool, shm: &Shmem) {
        for i in 0..self.slots.len() {
            let mut changed = false;
            if let Some(set) = self.slots[i].as_mut() {
                for (node, c) in set.conns.iter_mut().enumerate() {
                    if c.is_some() && !alive(node) {
                        *c = None;
                        changed = true;
                    }
                }
            }
            if changed {
                let empty = self.slots[i].as_ref().is_some_and(|s| !s.any_connected());
                if empty {
                    self.discard(i, shm);
                } else if let Some(set) = self.slots[i].as_ref() {
                    self.publish(i, set, shm);
                }
            }
        }
    }
}
