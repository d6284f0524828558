//! The queue of requests (detach, attach, promote, quarantine) that any process may add
//! to and only the main process takes from: slots claimed with a compare-and-swap, so a
//! producer that dies mid-write blocks only its own slot.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// What a queued request asks the main process to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RequestKind {
    /// Detach a node (failover). `flags`: REQUEST_GRACEFUL, REQUEST_FROM_HEALTH_CHECK...
    Detach = 1,
    /// Attach a node (failback).
    Attach = 2,
    /// Make a node the primary. `flags`: REQUEST_SWITCHOVER to demote the old one.
    Promote = 3,
    /// Mark a node down without running failover_command (quarantine).
    Quarantine = 4,
}

impl RequestKind {
    pub fn from_u8(v: u8) -> Option<RequestKind> {
        match v {
            1 => Some(RequestKind::Detach),
            2 => Some(RequestKind::Attach),
            3 => Some(RequestKind::Promote),
            4 => Some(RequestKind::Quarantine),
            _ => None,
        }
    }
}

pub const REQUEST_GRACEFUL: u32 = 1;
pub const REQUEST_SWITCHOVER: u32 = 2;
pub const REQUEST_FROM_HEALTH_CHECK: u32 = 4;
pub const REQUEST_FROM_CHILD: u32 = 8;
pub const REQUEST_FROM_PCP: u32 = 16;
/// Decided by the watchdog cluster (or needing no decision): the main process applies it.
pub const REQUEST_CONFIRMED: u32 = 32;
/// Apply the node state only: another pgpool (the watchdog leader) runs the commands.
pub const REQUEST_NO_COMMANDS: u32 = 64;

/// A request taken from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub kind: RequestKind,
    pub node: i32,
    pub flags: u32,
    pub seq: u64,
}

const REQUEST_SLOTS: usize = 64;
const SLOT_FREE: u8 = 0;
const SLOT_WRITING: u8 = 1;
const SLOT_READY: u8 = 2;

#[repr(C)]
struct RequestSlot {
    state: AtomicU8,
    kind: AtomicU8,
    node: AtomicI32,
    flags: AtomicU32,
    seq: AtomicU64,
}

/// Lock-free queue of failover/failback/promote requests: any process may add one,
/// only the main process takes them. A slot is claimed with a compare-and-swap, so a
/// producer that dies mid-write blocks only its own slot.
#[repr(C)]
pub struct RequestQueue {
    next_seq: AtomicU64,
    slots: [RequestSlot; REQUEST_SLOTS],
    /// Bumped by the main process each time it finished a request.
    pub done_seq: AtomicU64,
}

impl RequestQueue {
    /// Queues a request; returns its sequence number, or None when the queue is full.
    pub fn push(&self, kind: RequestKind, node: i32, flags: u32) -> Option<u64> {
        for slot in &self.slots {
            if slot
                .state
                .compare_exchange(SLOT_FREE, SLOT_WRITING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let seq = self.next_seq.fetch_add(1, Ordering::AcqRel) + 1;
                slot.kind.store(kind as u8, Ordering::Relaxed);
                slot.node.store(node, Ordering::Relaxed);
                slot.flags.store(flags, Ordering::Relaxed);
                slot.seq.store(seq, Ordering::Relaxed);
                slot.state.store(SLOT_READY, Ordering::Release);
                return Some(seq);
            }
        }
        None
    }

    /// Waits (polling, at most `limit`) until the main process finished request `seq`
    /// or `settled` says the wait is over; true when it finished.
    pub fn wait_done(
        &self,
        seq: u64,
        limit: std::time::Duration,
        settled: impl Fn() -> bool,
    ) -> bool {
        let start = std::time::Instant::now();
        loop {
            if self.done_seq.load(Ordering::Acquire) >= seq {
                return true;
            }
            if settled() || start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Takes every ready request, oldest first.
    pub fn take_all(&self) -> Vec<Request> {
        let mut out = Vec::new();
        for slot in &self.slots {
            if slot.state.load(Ordering::Acquire) == SLOT_READY {
                let kind = RequestKind::from_u8(slot.kind.load(Ordering::Relaxed));
                let r = kind.map(|kind| Request {
                    kind,
                    node: slot.node.load(Ordering::Relaxed),
                    flags: slot.flags.load(Ordering::Relaxed),
                    seq: slot.seq.load(Ordering::Relaxed),
                });
                slot.state.store(SLOT_FREE, Ordering::Release);
                out.extend(r);
            }
        }
        out.sort_by_key(|r| r.seq);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layout, Shmem};

    #[test]
    fn request_queue_keeps_order() {
        let shm = Shmem::create(Layout {
            num_children: 1,
            max_pool: 1,
        })
        .unwrap();
        let q = shm.requests();
        q.push(RequestKind::Detach, 1, REQUEST_FROM_HEALTH_CHECK)
            .unwrap();
        q.push(RequestKind::Attach, 0, 0).unwrap();
        let all = q.take_all();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kind, RequestKind::Detach);
        assert_eq!(all[0].node, 1);
        assert_eq!(all[1].kind, RequestKind::Attach);
        assert!(q.take_all().is_empty());
        for _ in 0..REQUEST_SLOTS {
            assert!(q.push(RequestKind::Detach, 0, 0).is_some());
        }
        assert!(q.push(RequestKind::Detach, 0, 0).is_none());
    }
}
