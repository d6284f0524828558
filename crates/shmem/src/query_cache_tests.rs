//! The cache's storage on its own: hits, staleness through the counters, expiry, key
//! comparison beyond the hash, eviction under a small size, and readers racing a writer.

use super::*;

fn cache(total: usize, block: usize) -> QueryCache {
    QueryCache::create(CacheLayout {
        total_size: total,
        block_size: block,
        max_entries: 1024,
    })
    .expect("cache")
}

#[test]
fn stored_answer_is_found_until_its_table_is_written() {
    let c = cache(1 << 20, 8192);
    let stamp = c.stamp(["t1"]).expect("stamp");
    assert!(c.store(b"user\0db\0select * from t1", &stamp, 100, b"ANSWER"));
    let mut out = Vec::new();
    assert!(c.lookup(b"user\0db\0select * from t1", 101, 0, &mut out));
    assert_eq!(out, b"ANSWER");
    assert!(!c.lookup(b"user\0db\0select * from t2", 101, 0, &mut out));
    c.invalidate(["other"]);
    assert!(c.lookup(b"user\0db\0select * from t1", 101, 0, &mut out));
    c.invalidate(["t1"]);
    assert!(!c.lookup(b"user\0db\0select * from t1", 101, 0, &mut out));
}

#[test]
fn a_write_between_send_and_store_leaves_the_answer_unserved() {
    let c = cache(1 << 20, 8192);
    let stamp = c.stamp(["t1"]).expect("stamp");
    c.invalidate(["t1"]);
    assert!(!c.store(b"k", &stamp, 1, b"old rows"));
    let mut out = Vec::new();
    assert!(!c.lookup(b"k", 1, 0, &mut out));
}

#[test]
fn expiry_and_invalidate_all() {
    let c = cache(1 << 20, 8192);
    let stamp = c.stamp(["t"]).expect("stamp");
    assert!(c.store(b"k", &stamp, 100, b"a"));
    let mut out = Vec::new();
    assert!(c.lookup(b"k", 159, 60, &mut out));
    assert!(!c.lookup(b"k", 160, 60, &mut out));
    assert!(c.lookup(b"k", 160, 0, &mut out));
    c.invalidate_all();
    assert!(!c.lookup(b"k", 160, 0, &mut out));
}

#[test]
fn small_cache_evicts_oldest_blocks_and_stays_right() {
    let c = cache(4 * 4096, 4096);
    let mut out = Vec::new();
    for i in 0..500u32 {
        let key = format!("query {i}");
        let stamp = c.stamp(["t"]).expect("stamp");
        let answer = vec![(i % 251) as u8; 100 + (i as usize % 300)];
        assert!(c.store(key.as_bytes(), &stamp, 1, &answer));
        assert!(c.lookup(key.as_bytes(), 1, 0, &mut out));
        assert_eq!(out, answer);
    }
    // The oldest are gone, the newest are there, every hit is its own answer.
    assert!(!c.lookup(b"query 0", 1, 0, &mut out));
    let mut hits = 0;
    for i in 0..500u32 {
        if c.lookup(format!("query {i}").as_bytes(), 1, 0, &mut out) {
            hits += 1;
            assert_eq!(out, vec![(i % 251) as u8; 100 + (i as usize % 300)]);
        }
    }
    assert!(hits > 10 && hits < 500, "{hits}");
    assert!(c.stats().used_bytes <= 4 * 4096);
    let too_big = vec![0u8; 5000];
    assert!(!c.store(b"big", &c.stamp(["t"]).expect("stamp"), 1, &too_big));
}

#[test]
fn readers_racing_a_writer_see_whole_answers_only() {
    let c = cache(8 * 4096, 4096);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..20000u32 {
                let stamp = c.stamp(["t"]).expect("stamp");
                let v = (i % 200) as u8;
                c.store(format!("k{}", i % 50).as_bytes(), &stamp, 1, &[v; 300]);
            }
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut out = Vec::new();
                for i in 0..20000u32 {
                    if c.lookup(format!("k{}", i % 50).as_bytes(), 1, 0, &mut out) {
                        assert_eq!(out.len(), 300);
                        assert!(out.iter().all(|&b| b == out[0]), "torn answer");
                    }
                }
            });
        }
    });
}
