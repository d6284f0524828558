//! SHOW POOL_CACHE: the query cache's figures in Pgpool-II's columns.

/// SHOW POOL_CACHE columns.
pub const CACHE_COLUMNS: [&str; 9] = [
    "num_cache_hits",
    "num_selects",
    "cache_hit_ratio",
    "num_hash_entries",
    "used_hash_entries",
    "num_cache_entries",
    "used_cache_entries_size",
    "free_cache_entries_size",
    "fragment_cache_entries_size",
];

/// SHOW POOL_CACHE: the query cache's figures (zeros with memory_cache_enabled = off, as
/// Pgpool-II answers).
pub fn pool_cache(stats: Option<shmem::CacheStats>) -> Vec<Vec<String>> {
    let s = stats.unwrap_or_default();
    // num_selects counts the SELECTs the cache did not answer (Pgpool-II's meaning).
    let all = s.hits + s.selects;
    let ratio = if all == 0 {
        0.0
    } else {
        s.hits as f64 / all as f64
    };
    vec![vec![
        s.hits.to_string(),
        s.selects.to_string(),
        format!("{ratio:.2}"),
        s.hash_entries.to_string(),
        s.used_hash_entries.to_string(),
        s.cache_entries.to_string(),
        s.used_bytes.to_string(),
        s.free_bytes.to_string(),
        "0".to_string(),
    ]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_without_a_cache_and_a_ratio_with_one() {
        let off = pool_cache(None);
        assert_eq!(off[0].len(), CACHE_COLUMNS.len());
        assert_eq!(off[0][2], "0.00");
        let on = pool_cache(Some(shmem::CacheStats {
            hits: 891703,
            selects: 99995,
            ..Default::default()
        }));
        assert_eq!(on[0][..3], ["891703", "99995", "0.90"]);
    }
}
