//! The fourth step of a session: the relay over the nodes it talks to, configured from
//! pgpool.conf for this session's user, database and backend set (the local commands
//! answered by [`Admin`], the query cache, load balancing and replication settings).

use super::backends::SessionBackends;
use super::Session;
use crate::backend::BackendConn;
use crate::child::admin::Admin;
use crate::child::relay::{
    self, CacheConfig, CacheStore, Relay, RelayConfig, RelayOutcome, Router,
};
use crate::child::relay_shared::RelayEnd;
use crate::child::ChildContext;
use crate::net::Stream;

/// Relays the session until it ends; `initial` holds client bytes that came with its
/// start-up.
pub(super) fn relay_session(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    s: &Session,
    b: &mut SessionBackends,
    initial: &[u8],
) -> Result<(RelayEnd, RelayOutcome), String> {
    let mut admin = Admin::new(&ctx.cfg, ctx.shm, ctx.index, b.lb.unwrap_or(b.node));
    // (The storage may exist for the shared relation cache alone.)
    admin.qcache = ctx.qcache.filter(|_| ctx.cfg.memory_cache_enabled);
    let wanted = b.wanted();
    let lower_delay = ctx.cfg.prefer_lower_delay_standby && ctx.cfg.delay_limit() > 0;
    // Connection 1 is the session's load-balance node; without one, reads stay on the
    // main node (index 0).
    let mut router = Router::with_lb(usize::from(b.lb.is_some()));
    let mut outcome = RelayOutcome::default();
    let snapshot_isolation =
        ctx.cfg.backend_clustering_mode == config::ClusteringMode::SnapshotIsolation;
    let store = ctx.qcache.map(|counters| CacheStore {
        counters,
        remote: ctx.memcached.as_ref(),
    });
    let conn_info = wanted
        .iter()
        .map(|&n| ctx.shm.conn(ctx.index, b.slot, n))
        .collect();
    let weights: Vec<f64> = wanted.iter().map(|&n| ctx.cfg.backends[n].weight).collect();
    let mut relay = Relay {
        cfg: RelayConfig {
            relcache: store
                .filter(|_| ctx.cfg.enable_shared_relcache)
                .map(|s| (s, ctx.cfg.relcache_expire)),
            rules: &ctx.rules,
            disable_load_balance_on_write: ctx.cfg.disable_load_balance_on_write,
            dml_relations: &ctx.dml_relations,
            database: &s.database,
            check_temp_table: ctx.cfg.check_temp_table.enabled(),
            check_unlogged_table: ctx.cfg.check_unlogged_table,
            log_statement: ctx.cfg.log_statement,
            log_per_node_statement: ctx.cfg.log_per_node_statement,
            notice_per_node_statement: ctx.cfg.notice_per_node_statement,
            // One connection and nothing that orders steps across children: every
            // batch goes to it, and no statement needs classifying.
            fixed: wanted.len() == 1 && !snapshot_isolation && !ctx.cfg.memory_cache_enabled,
            cache: store
                .filter(|_| ctx.cfg.memory_cache_enabled)
                .map(|store| CacheConfig {
                    store,
                    user: &s.user,
                    expire: ctx.cfg.memqcache_expire,
                    maxcache: usize::try_from(ctx.cfg.memqcache_maxcache).unwrap_or(0),
                    auto_invalidation: ctx.cfg.memqcache_auto_cache_invalidation,
                    safe_tables: &ctx.cfg.cache_safe_memqcache_table_list,
                    unsafe_tables: &ctx.cfg.cache_unsafe_memqcache_table_list,
                }),
            replicate: ctx.replicating(),
            main_first: ctx.cfg.backend_clustering_mode
                == config::ClusteringMode::NativeReplication,
            insert_lock: ctx.cfg.insert_lock,
            client_idle_limit: ctx.cfg.client_idle_limit,
            node_ids: wanted,
            conn_info,
            statement_weights: if ctx.cfg.statement_level_load_balance {
                weights.clone()
            } else {
                Vec::new()
            },
            // bytes, or microseconds with delay_threshold_by_time (as the delays)
            delay_threshold: ctx.cfg.delay_limit(),
            lower_delay_weights: if lower_delay { weights } else { Vec::new() },
        },
        cache: &mut ctx.classifier,
        catalog: &mut ctx.catalog,
        router: &mut router,
        shm: ctx.shm,
        client_log: ctx.cfg.log_client_messages.then(Default::default),
        snapshot_child: snapshot_isolation.then_some(ctx.index),
    };
    let mut slots: Vec<Option<&mut BackendConn>> =
        b.set.conns.iter_mut().map(Option::as_mut).collect();
    let conns: Option<Vec<&mut BackendConn>> = (relay.cfg.node_ids.iter())
        .map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();
    let Some(conns) = conns else {
        return Err("internal error: the session's connections are missing".into());
    };
    let end = relay::relay(
        stream,
        conns,
        initial,
        &ctx.waker,
        &mut admin,
        &mut relay,
        &mut ctx.bufs,
        &mut outcome,
    );
    Ok((end, outcome))
}
