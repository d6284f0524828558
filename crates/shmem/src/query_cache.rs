//! The query cache's shared storage: result bytes in fixed-size blocks reused oldest
//! first, an open-addressing index over them, and the invalidation counters. Readers
//! take no lock: an index slot and a block each carry a sequence number that a writer
//! changes around every change, and a reader that saw it move while copying retries,
//! so readers never wait for readers (nor for writers, beyond a retry). Writers (stores,
//! which are far rarer than hits) take one lock word holding the owner's pid; a waiter
//! takes over a lock whose owner died.
//!
//! Invalidation never touches entries: each relation name (bare, so every schema's
//! table of that name counts) hashes to one of [`GENERATION_SLOTS`] counters, an entry
//! records the counters of the relations it read when its query was sent, and a hit
//! is served only while they are unchanged. A write bumps its relations' counters after
//! it committed; a collision of two names only invalidates more than needed.

use std::io;

use crate::mapping::Mapping;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Invalidation counters (power of two).
pub const GENERATION_SLOTS: usize = 8192;
/// Most relations one cached result may depend on.
pub const MAX_TABLES: usize = 16;
/// Index slots probed from a key's home slot.
const PROBES: usize = 8;

/// Sizes from memqcache_total_size, memqcache_cache_block_size, memqcache_max_num_cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheLayout {
    pub total_size: usize,
    pub block_size: usize,
    pub max_entries: usize,
}

#[repr(C)]
struct Header {
    lock: AtomicU32,
    hand: AtomicU32,
    global: AtomicU64,
    hits: AtomicU64,
    selects: AtomicU64,
    used_slots: AtomicU64,
    started: AtomicU64,
    /// Names this pgpool's entries in a memcached shared with others (and with this
    /// pgpool's earlier lives, whose counters are gone).
    instance: AtomicU64,
}

#[repr(C)]
struct Slot {
    seq: AtomicU64,
    hash: AtomicU64,
    block: AtomicU32,
    offset: AtomicU32,
    len: AtomicU32,
    _pad: AtomicU32,
    block_gen: AtomicU64,
}

#[repr(C)]
struct Block {
    gen: AtomicU64,
    used: AtomicU32,
    entries: AtomicU32,
}

/// The invalidation counters a result depends on, read before its query was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp {
    global: u64,
    tables: Vec<(u32, u64)>,
}

/// Figures for SHOW POOL_CACHE.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub selects: u64,
    pub hash_entries: u64,
    pub used_hash_entries: u64,
    pub cache_entries: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub started: i64,
}

/// Handle on the mapped cache; created by the main process, inherited through fork.
pub struct QueryCache {
    base: *mut u8,
    len: usize,
    /// Owns the region (all-zero is a valid state of every field).
    _map: Mapping,
    slots: usize,
    blocks: usize,
    block_size: usize,
    off_gens: usize,
    off_slots: usize,
    off_blocks: usize,
    off_data: usize,
}

// SAFETY: the mapping holds atomics and bytes guarded by the sequence protocol above; the
// handle is shared between processes the same way.
unsafe impl Send for QueryCache {}
unsafe impl Sync for QueryCache {}

fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1 // 0 marks an empty slot
}

/// The counter slot of a relation (bare name).
fn generation_slot(table: &str) -> u32 {
    (fnv(&[table.as_bytes()]) as usize & (GENERATION_SLOTS - 1)) as u32
}

const META: usize = 8 + 8 + 4 + 4; // created, global, key length, table count

impl QueryCache {
    pub fn create(layout: CacheLayout) -> io::Result<QueryCache> {
        let block_size = layout.block_size.max(512);
        let blocks = (layout.total_size / block_size).max(1);
        let slots = layout.max_entries.clamp(64, 1 << 24).next_power_of_two();
        let off_gens = std::mem::size_of::<Header>();
        let off_slots = off_gens + GENERATION_SLOTS * 8;
        let off_blocks = off_slots + slots * std::mem::size_of::<Slot>();
        let off_data = off_blocks + blocks * std::mem::size_of::<Block>();
        let map = Mapping::new(off_data + blocks * block_size)?;
        let cache = QueryCache {
            base: map.base,
            len: map.len,
            _map: map,
            slots,
            blocks,
            block_size,
            off_gens,
            off_slots,
            off_blocks,
            off_data,
        };
        let started = crate::now_secs() as u64;
        let h = cache.header();
        h.started.store(started, Ordering::Relaxed);
        h.instance.store(
            fnv(&[&started.to_be_bytes(), &std::process::id().to_be_bytes()]),
            Ordering::Relaxed,
        );
        Ok(cache)
    }

    fn header(&self) -> &Header {
        // SAFETY: offset 0 of a live mapping sized for the header; atomics only.
        unsafe { &*(self.base as *const Header) }
    }

    fn generation(&self, i: u32) -> &AtomicU64 {
        // SAFETY: i < GENERATION_SLOTS (masked by generation_slot); inside the mapping.
        unsafe { &*(self.base.add(self.off_gens + i as usize * 8) as *const AtomicU64) }
    }

    fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.slots);
        // SAFETY: i checked; the index lies inside the mapping; atomics only.
        unsafe {
            &*(self
                .base
                .add(self.off_slots + i * std::mem::size_of::<Slot>())
                as *const Slot)
        }
    }

    fn block(&self, i: usize) -> &Block {
        assert!(i < self.blocks);
        // SAFETY: i checked; the block headers lie inside the mapping; atomics only.
        unsafe {
            &*(self
                .base
                .add(self.off_blocks + i * std::mem::size_of::<Block>())
                as *const Block)
        }
    }

    /// Largest entry (key and answer included) a block holds.
    pub fn max_entry(&self) -> usize {
        self.block_size - META - MAX_TABLES * 12
    }

    /// The counters `tables` (bare names) depend on now; None with too many tables.
    pub fn stamp<'a>(&self, tables: impl IntoIterator<Item = &'a str>) -> Option<Stamp> {
        let mut s = Stamp {
            global: self.header().global.load(Ordering::Acquire),
            tables: Vec::new(),
        };
        for t in tables {
            let i = generation_slot(t);
            if !s.tables.iter().any(|(j, _)| *j == i) {
                s.tables
                    .push((i, self.generation(i).load(Ordering::Acquire)));
            }
        }
        (s.tables.len() <= MAX_TABLES).then_some(s)
    }

    /// Whether a result stamped `s` is still right (nothing it read changed since).
    pub fn is_current(&self, s: &Stamp) -> bool {
        s.global == self.header().global.load(Ordering::Acquire)
            && s.tables
                .iter()
                .all(|&(i, g)| self.generation(i).load(Ordering::Acquire) == g)
    }

    /// Results that read these relations (bare names) are stale from now on.
    pub fn invalidate<'a>(&self, tables: impl IntoIterator<Item = &'a str>) {
        for t in tables {
            self.generation(generation_slot(t))
                .fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Every result is stale from now on (pcp_invalidate_query_cache, unknown writes).
    pub fn invalidate_all(&self) {
        self.header().global.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a cacheable SELECT: answered by the cache (`hit`) or sent to a backend
    /// (SHOW POOL_CACHE's num_cache_hits and num_selects, as Pgpool-II counts them).
    pub fn count_select(&self, hit: bool) {
        let counter = if hit {
            &self.header().hits
        } else {
            &self.header().selects
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the answer stored under `key` into `out` (cleared first) when there is
    /// one that is current and younger than `expire` seconds (0: no limit).
    pub fn lookup(&self, key: &[u8], now: i64, expire: i64, out: &mut Vec<u8>) -> bool {
        let hash = fnv(&[key]);
        let home = hash as usize & (self.slots - 1);
        let mut raw = Vec::new();
        for p in 0..PROBES {
            let slot = self.slot((home + p) & (self.slots - 1));
            if slot.hash.load(Ordering::Acquire) != hash {
                continue;
            }
            for _attempt in 0..3 {
                if self.read_slot(slot, hash, &mut raw) {
                    return self.open_entry(&raw, key, now, expire, out);
                }
            }
        }
        false
    }

    /// One consistent copy of a slot's entry into `raw`; false when it changed meanwhile.
    fn read_slot(&self, slot: &Slot, hash: u64, raw: &mut Vec<u8>) -> bool {
        let seq = slot.seq.load(Ordering::Acquire);
        if !seq.is_multiple_of(2) || slot.hash.load(Ordering::Relaxed) != hash {
            return false;
        }
        let (b, off, len) = (
            slot.block.load(Ordering::Relaxed) as usize,
            slot.offset.load(Ordering::Relaxed) as usize,
            slot.len.load(Ordering::Relaxed) as usize,
        );
        let block_gen = slot.block_gen.load(Ordering::Relaxed);
        if b >= self.blocks || off + len > self.block_size {
            return false;
        }
        let block = self.block(b);
        if block.gen.load(Ordering::Acquire) != block_gen {
            return false;
        }
        raw.clear();
        raw.reserve(len);
        // SAFETY: the range lies inside block `b` (checked above). A writer may be
        // reusing the block concurrently; then its generation (bumped before the writer
        // touches the bytes) differs below and the copy is thrown away (seqlock).
        unsafe {
            let src = self.base.add(self.off_data + b * self.block_size + off);
            std::ptr::copy_nonoverlapping(src, raw.as_mut_ptr(), len);
            raw.set_len(len);
        }
        fence(Ordering::Acquire);
        block.gen.load(Ordering::Relaxed) == block_gen && slot.seq.load(Ordering::Relaxed) == seq
    }

    /// Copies the answer of a stored entry into `out` when it is `key`'s, younger than
    /// `expire` seconds (0: no limit) and nothing it read changed since.
    pub fn open_entry(
        &self,
        raw: &[u8],
        key: &[u8],
        now: i64,
        expire: i64,
        out: &mut Vec<u8>,
    ) -> bool {
        let num = |at: usize, n: usize| -> u64 {
            raw.get(at..at + n).map_or(0, |b| {
                b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
            })
        };
        let created = num(0, 8) as i64;
        let stamp_tables = num(20, 4) as usize;
        let key_len = num(16, 4) as usize;
        let tables_at = META;
        let key_at = tables_at + stamp_tables * 12;
        let answer_at = key_at + key_len;
        if raw.len() < answer_at || raw.get(key_at..answer_at) != Some(key) {
            return false;
        }
        if expire > 0 && now - created >= expire {
            return false;
        }
        let stamp = Stamp {
            global: num(8, 8),
            tables: (0..stamp_tables)
                .map(|k| {
                    let at = tables_at + k * 12;
                    (num(at, 4) as u32, num(at + 4, 8))
                })
                .collect(),
        };
        if !self.is_current(&stamp) {
            return false;
        }
        out.clear();
        out.extend_from_slice(&raw[answer_at..]);
        true
    }

    /// Stores `answer` under `key`, stamped with the counters read before its query was
    /// sent (so a write that committed meanwhile leaves it unserved). False when it does
    /// not fit in a block or the stamp is already stale.
    pub fn store(&self, key: &[u8], stamp: &Stamp, now: i64, answer: &[u8]) -> bool {
        let entry = Self::entry(key, stamp, now, answer);
        if entry.len() > self.block_size || !self.is_current(stamp) {
            return false;
        }
        self.put(key, &entry);
        true
    }

    /// The stored form of an answer: when, the stamp, the full key, the answer (what
    /// [`QueryCache::open_entry`] reads back, here or from memcached).
    pub fn entry(key: &[u8], stamp: &Stamp, now: i64, answer: &[u8]) -> Vec<u8> {
        let mut entry =
            Vec::with_capacity(META + stamp.tables.len() * 12 + key.len() + answer.len());
        entry.extend_from_slice(&(now as u64).to_be_bytes());
        entry.extend_from_slice(&stamp.global.to_be_bytes());
        entry.extend_from_slice(&(key.len() as u32).to_be_bytes());
        entry.extend_from_slice(&(stamp.tables.len() as u32).to_be_bytes());
        for (i, g) in &stamp.tables {
            entry.extend_from_slice(&i.to_be_bytes());
            entry.extend_from_slice(&g.to_be_bytes());
        }
        entry.extend_from_slice(key);
        entry.extend_from_slice(answer);
        entry
    }

    fn put(&self, key: &[u8], entry: &[u8]) {
        let _guard = self.lock();
        let (b, off) = self.allocate(entry.len());
        // SAFETY: `allocate` returned room for the entry inside block `b`, which only the
        // lock holder writes; readers of its previous contents see its new generation.
        unsafe {
            let dst = self.base.add(self.off_data + b * self.block_size + off);
            std::ptr::copy_nonoverlapping(entry.as_ptr(), dst, entry.len());
        }
        let block_gen = self.block(b).gen.load(Ordering::Relaxed);
        let hash = fnv(&[key]);
        let slot = self.slot(self.slot_for(hash));
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        if slot.hash.load(Ordering::Relaxed) == 0 {
            self.header().used_slots.fetch_add(1, Ordering::Relaxed);
        }
        slot.hash.store(hash, Ordering::Relaxed);
        slot.block.store(b as u32, Ordering::Relaxed);
        slot.offset.store(off as u32, Ordering::Relaxed);
        slot.len.store(entry.len() as u32, Ordering::Relaxed);
        slot.block_gen.store(block_gen, Ordering::Relaxed);
        slot.seq.store((seq | 1) + 1, Ordering::Release);
    }

    /// Forgets the answer stored under `key` (PGPOOL SET CACHE DELETE); false when there
    /// was none.
    pub fn remove(&self, key: &[u8]) -> bool {
        let hash = fnv(&[key]);
        let home = hash as usize & (self.slots - 1);
        let _guard = self.lock();
        for p in 0..PROBES {
            let slot = self.slot((home + p) & (self.slots - 1));
            if slot.hash.load(Ordering::Relaxed) != hash {
                continue;
            }
            let seq = slot.seq.load(Ordering::Relaxed);
            slot.seq.store(seq | 1, Ordering::Relaxed);
            fence(Ordering::Release);
            slot.hash.store(0, Ordering::Relaxed);
            self.header().used_slots.fetch_sub(1, Ordering::Relaxed);
            slot.seq.store((seq | 1) + 1, Ordering::Release);
            return true;
        }
        false
    }

    /// The name of `key`'s entry in memcached (at most 250 printable bytes, as memcached
    /// wants): this pgpool's instance and two hashes of the key, which the entry holds in
    /// full and [`QueryCache::open_entry`] compares.
    pub fn entry_name(&self, key: &[u8]) -> String {
        let instance = self.header().instance.load(Ordering::Relaxed);
        format!(
            "pgpoolrs-{instance:016x}-{:016x}{:016x}",
            fnv(&[key]),
            fnv(&[b"2", key])
        )
    }

    /// The slot a new entry of `hash` takes: its own, else a free or stale one among the
    /// probed, else its home slot.
    fn slot_for(&self, hash: u64) -> usize {
        let home = hash as usize & (self.slots - 1);
        let mut free = None;
        for p in 0..PROBES {
            let i = (home + p) & (self.slots - 1);
            let s = self.slot(i);
            let h = s.hash.load(Ordering::Relaxed);
            if h == hash {
                return i;
            }
            let b = s.block.load(Ordering::Relaxed) as usize;
            let stale = h == 0
                || b >= self.blocks
                || self.block(b).gen.load(Ordering::Relaxed) != s.block_gen.load(Ordering::Relaxed);
            if stale && free.is_none() {
                free = Some(i);
            }
        }
        free.unwrap_or(home)
    }

    /// Room for `len` bytes: in the current block, else in the next one, whose old
    /// entries are dropped (its generation moves first, so readers notice).
    fn allocate(&self, len: usize) -> (usize, usize) {
        let h = self.header();
        let mut b = h.hand.load(Ordering::Relaxed) as usize % self.blocks;
        let mut block = self.block(b);
        let used = block.used.load(Ordering::Relaxed) as usize;
        if used + len > self.block_size {
            b = (b + 1) % self.blocks;
            h.hand.store(b as u32, Ordering::Relaxed);
            block = self.block(b);
            block.gen.fetch_add(1, Ordering::Relaxed);
            fence(Ordering::Release);
            block.used.store(0, Ordering::Relaxed);
            block.entries.store(0, Ordering::Relaxed);
        }
        let off = block.used.load(Ordering::Relaxed) as usize;
        block.used.store((off + len) as u32, Ordering::Relaxed);
        block.entries.fetch_add(1, Ordering::Relaxed);
        (b, off)
    }

    fn lock(&self) -> LockGuard<'_> {
        let me = std::process::id();
        let word = &self.header().lock;
        let mut spins = 0u32;
        loop {
            match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return LockGuard { word },
                Err(owner) => {
                    spins += 1;
                    if spins.is_multiple_of(1000) && !process_alive(owner) {
                        // Its owner died mid-store: what it left is at worst one entry
                        // no reader accepts.
                        let _ =
                            word.compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed);
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let h = self.header();
        let mut entries = 0u64;
        let mut used = 0u64;
        for b in 0..self.blocks {
            entries += u64::from(self.block(b).entries.load(Ordering::Relaxed));
            used += u64::from(self.block(b).used.load(Ordering::Relaxed));
        }
        CacheStats {
            hits: h.hits.load(Ordering::Relaxed),
            selects: h.selects.load(Ordering::Relaxed),
            hash_entries: self.slots as u64,
            used_hash_entries: h.used_slots.load(Ordering::Relaxed),
            cache_entries: entries,
            used_bytes: used,
            free_bytes: (self.blocks * self.block_size) as u64 - used,
            started: h.started.load(Ordering::Relaxed) as i64,
        }
    }

    /// Bytes mapped.
    pub fn size(&self) -> usize {
        self.len
    }
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

struct LockGuard<'a> {
    word: &'a AtomicU32,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.word.store(0, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "query_cache_tests.rs"]
mod tests;
