//! A per-process, bounded LRU cache of classifications keyed by query text, so that routing a
//! repeated statement costs one hash lookup and no allocation. Entries live in a slab with an
//! intrusive doubly-linked recency list; the map from text to slot uses the Fx hasher. The
//! cache remembers the [`Rules`] generation it was filled under and empties itself when
//! classification is asked for under different rules (e.g. after a configuration reload).

use rustc_hash::FxHashMap;

use crate::classify::{classify, Classification};
use crate::rules::Rules;

const NIL: usize = usize::MAX;

struct Entry {
    key: Box<str>,
    value: Classification,
    prev: usize,
    next: usize,
}

/// Bounded LRU of `query text → Classification`. Not thread-safe by design: one per child
/// process (or per thread).
pub struct ClassifierCache {
    map: FxHashMap<Box<str>, usize>,
    slots: Vec<Entry>,
    head: usize,
    tail: usize,
    capacity: usize,
    generation: u64,
    hits: u64,
    misses: u64,
}

impl ClassifierCache {
    /// A cache holding at most `capacity` query texts (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ClassifierCache {
            map: FxHashMap::with_capacity_and_hasher(capacity.min(1 << 16), Default::default()),
            slots: Vec::with_capacity(capacity.min(1 << 16)),
            head: NIL,
            tail: NIL,
            capacity,
            generation: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The classification of `sql` under `rules`, computed at most once per text while it
    /// stays among the `capacity` most recently used ones.
    pub fn classify(&mut self, sql: &str, rules: &Rules) -> &Classification {
        if self.generation != rules.generation() {
            self.clear();
            self.generation = rules.generation();
        }
        let idx = match self.map.get(sql) {
            Some(&idx) => {
                self.hits += 1;
                self.touch(idx);
                idx
            }
            None => {
                self.misses += 1;
                let value = classify(sql, rules);
                self.insert(sql, value)
            }
        };
        &self.slots[idx].value
    }

    /// Number of cached texts.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No cached texts.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Maximum number of cached texts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// (hits, misses) since creation.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    fn unlink(&mut self, idx: usize) {
        let (prev, next) = (self.slots[idx].prev, self.slots[idx].next);
        if prev != NIL {
            self.slots[prev].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn push_front(&mut self, idx: usize) {
        self.slots[idx].prev = NIL;
        self.slots[idx].next = self.head;
        if self.head != NIL {
            self.slots[self.head].prev = idx;
        }
        self.head = idx;
        if self.tail == NIL {
            self.tail = idx;
        }
    }

    fn touch(&mut self, idx: usize) {
        if self.head != idx {
            self.unlink(idx);
            self.push_front(idx);
        }
    }

    fn insert(&mut self, sql: &str, value: Classification) -> usize {
        let key: Box<str> = sql.into();
        let idx = if self.slots.len() < self.capacity {
            self.slots.push(Entry {
                key: key.clone(),
                value,
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        } else {
            let idx = self.tail;
            self.unlink(idx);
            let old = std::mem::replace(
                &mut self.slots[idx],
                Entry {
                    key: key.clone(),
                    value,
                    prev: NIL,
                    next: NIL,
                },
            );
            self.map.remove(&old.key);
            idx
        };
        self.map.insert(key, idx);
        self.push_front(idx);
        idx
    }
}
