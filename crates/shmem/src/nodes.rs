//! The backend node table: where each configured node is (host, port, data directory),
//! its weight, flags and application name. The main process publishes it before the first
//! fork and again after a reload that adds, removes or changes nodes; every other process
//! reads a consistent copy of the whole table (a sequence lock: the writer makes the
//! counter odd while it writes, readers retry until they saw one even value on both sides),
//! so all processes agree on the node list without re-reading pgpool.conf themselves.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::text::ShmText;
use crate::MAX_BACKENDS;

/// `backend_flag` bits as stored in the table.
pub const NODE_DISALLOW_TO_FAILOVER: u32 = 1;
pub const NODE_ALWAYS_PRIMARY: u32 = 2;

/// One node as the table holds it, in process memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSpec {
    pub configured: bool,
    pub hostname: String,
    pub port: u16,
    pub data_directory: String,
    pub application_name: String,
    pub weight: f64,
    pub flags: u32,
}

#[repr(C)]
struct NodeDescriptor {
    configured: AtomicU8,
    port: AtomicU32,
    flags: AtomicU32,
    weight_bits: AtomicU64,
    hostname: ShmText<128>,
    data_directory: ShmText<256>,
    application_name: ShmText<64>,
}

#[repr(C)]
pub struct NodeTable {
    seq: AtomicU64,
    count: AtomicU32,
    nodes: [NodeDescriptor; MAX_BACKENDS],
}

impl NodeTable {
    /// Replaces the table with `specs` (node id = index). Only the main process writes.
    pub fn publish(&self, specs: &[NodeSpec]) {
        let specs = &specs[..specs.len().min(MAX_BACKENDS)];
        self.seq.fetch_add(1, Ordering::AcqRel); // odd: write in progress
        for (d, s) in self.nodes.iter().zip(specs) {
            d.configured
                .store(u8::from(s.configured), Ordering::Relaxed);
            d.port.store(u32::from(s.port), Ordering::Relaxed);
            d.flags.store(s.flags, Ordering::Relaxed);
            d.weight_bits.store(s.weight.to_bits(), Ordering::Relaxed);
            d.hostname.set(&s.hostname);
            d.data_directory.set(&s.data_directory);
            d.application_name.set(&s.application_name);
        }
        for d in &self.nodes[specs.len()..] {
            d.configured.store(0, Ordering::Relaxed);
        }
        self.count.store(specs.len() as u32, Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// Bumped twice by every publish: a process compares it with the generation of its
    /// own copy to know whether the node list changed.
    pub fn generation(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// A consistent copy of the table and the generation it belongs to.
    pub fn snapshot(&self) -> (u64, Vec<NodeSpec>) {
        let mut out = Vec::new();
        for attempt in 0.. {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 && attempt < 10_000 {
                std::thread::yield_now();
                continue;
            }
            out.clear();
            let count = (self.count.load(Ordering::Relaxed) as usize).min(MAX_BACKENDS);
            out.extend(self.nodes[..count].iter().map(|d| NodeSpec {
                configured: d.configured.load(Ordering::Relaxed) != 0,
                hostname: d.hostname.get(),
                port: d.port.load(Ordering::Relaxed) as u16,
                data_directory: d.data_directory.get(),
                application_name: d.application_name.get(),
                weight: f64::from_bits(d.weight_bits.load(Ordering::Relaxed)),
                flags: d.flags.load(Ordering::Relaxed),
            }));
            // A writer that died mid-update (the main process) ends pgpool anyway: after
            // many tries take what was read.
            if self.seq.load(Ordering::Acquire) == before || attempt >= 10_000 {
                return (before, out);
            }
        }
        unreachable!("the retry loop returns")
    }
}
