//! The classification cache: hits, eviction, and staying bounded under many texts.

use sql::{ClassifierCache, Route, Rules};

#[test]
fn cache_hits_and_eviction() {
    let rules = Rules::default();
    let mut cache = ClassifierCache::new(2);
    assert_eq!(cache.classify("select 1", &rules).route, Route::LoadBalance);
    assert_eq!(
        cache.classify("insert into t values (1)", &rules).route,
        Route::Primary
    );
    assert_eq!(cache.classify("select 1", &rules).route, Route::LoadBalance);
    assert_eq!(cache.stats(), (1, 2));
    // evicts the least recently used: the insert
    assert_eq!(cache.classify("begin", &rules).route, Route::All);
    assert_eq!(cache.len(), 2);
    cache.classify("select 1", &rules);
    assert_eq!(cache.stats(), (2, 3));
    cache.classify("insert into t values (1)", &rules);
    assert_eq!(cache.stats(), (2, 4));
    assert_eq!(cache.len(), 2);
    // now "begin" was the oldest and is gone, "select 1" stays
    cache.classify("select 1", &rules);
    assert_eq!(cache.stats(), (3, 4));

    // new rules: entries dropped and recomputed
    let w = Rules::default()
        .with_primary_routing_query_pattern_list(&["select 1"])
        .unwrap();
    assert_eq!(cache.classify("select 1", &w).route, Route::Primary);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.stats(), (3, 5));
}

#[test]
fn cache_many_entries_stays_bounded_and_consistent() {
    let rules = Rules::default();
    let mut cache = ClassifierCache::new(50);
    for round in 0..3 {
        for i in 0..200 {
            let q = if i % 2 == 0 {
                format!("select {i}")
            } else {
                format!("insert into t values ({i})")
            };
            let want = if i % 2 == 0 {
                Route::LoadBalance
            } else {
                Route::Primary
            };
            assert_eq!(cache.classify(&q, &rules).route, want, "round {round} {q}");
            assert!(cache.len() <= 50);
        }
    }
    assert_eq!(cache.capacity(), 50);
    assert!(!cache.is_empty());
    cache.clear();
    assert!(cache.is_empty());
}
