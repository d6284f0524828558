//! Classification cost. Run: `cargo bench -p sql --bench classify`
//! (criterion, built without its default plotting/rayon features).
//! Measures a cached hit (the per-query cost of a repeated statement), uncached `classify`,
//! and the two pg_query calls it makes, for a pgbench point select and a 3-table join.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sql::{classify, ClassifierCache, Rules};

const POINT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";
const JOIN3: &str = "SELECT a.aid, b.bbalance, t.tbalance FROM pgbench_accounts a \
     JOIN pgbench_branches b ON a.bid = b.bid JOIN pgbench_tellers t ON t.bid = b.bid \
     WHERE a.aid = $1 AND t.tid = $2 ORDER BY a.aid LIMIT 10";

fn bench(c: &mut Criterion) {
    let rules = Rules::default();

    let mut cache = ClassifierCache::new(1024);
    // fill with some other texts so the hit is not the only entry
    for i in 0..500 {
        cache.classify(&format!("select {i} from t"), &rules);
    }
    cache.classify(POINT, &rules);
    cache.classify(JOIN3, &rules);
    c.bench_function("cached_hit/point_select", |b| {
        b.iter(|| cache.classify(black_box(POINT), &rules).route)
    });
    c.bench_function("cached_hit/join3", |b| {
        b.iter(|| cache.classify(black_box(JOIN3), &rules).route)
    });

    c.bench_function("uncached/point_select", |b| {
        b.iter(|| classify(black_box(POINT), &rules).route)
    });
    c.bench_function("uncached/join3", |b| {
        b.iter(|| classify(black_box(JOIN3), &rules).route)
    });

    c.bench_function("pg_query_parse/point_select", |b| {
        b.iter(|| pg_query::parse(black_box(POINT), 0).is_ok())
    });
    c.bench_function("pg_query_summary/point_select", |b| {
        b.iter(|| pg_query::summary(black_box(POINT), 0, -1).is_ok())
    });
    c.bench_function("pg_query_parse/join3", |b| {
        b.iter(|| pg_query::parse(black_box(JOIN3), 0).is_ok())
    });
    c.bench_function("pg_query_summary/join3", |b| {
        b.iter(|| pg_query::summary(black_box(JOIN3), 0, -1).is_ok())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
