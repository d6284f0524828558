//! The fourth step of a session: the relay over the nodes it talks to, configured from
//! pgpool.conf for this session's user, database and backend set (the local commands
//! answered by [`Admin`], the query cache, load balancing and replication settings).
//! What the session keeps of its own ([`SessionParts`]: routing state, per-connection
//! figures, the client log) is apart from what it borrows from its child for a step
//! ([`relay_config`], the classifier and catalog caches), so the relay's settings are
//! assembled from split borrows and a child could hold several sessions at once.

use config::{ClusteringMode, Config};

use super::backends::SessionBackends;
use super::Session;
use crate::backend::BackendConn;
use crate::child::admin::Admin;
use crate::child::client_log::ClientLog;
use crate::child::dml_adaptive::Relationships;
use crate::child::relay::{
    self, CacheConfig, CacheStore, Relay, RelayConfig, RelayOutcome, Router, SessionSettings,
};
use crate::child::relay_shared::RelayEnd;
use crate::child::ChildContext;
use crate::net::Stream;

/// What a session's relay keeps of its own from its start to its end.
pub(super) struct SessionParts<'a> {
    pub(super) router: Router,
    pub(super) client_log: Option<ClientLog>,
    pub(super) conns: SessionConns<'a>,
}

/// Figures of the session's connections, in the order of `SessionBackends::nodes`.
pub(super) struct SessionConns<'a> {
    /// Each connection's entry in shared memory.
    info: Vec<&'a shmem::BackendConnInfo>,
    /// backend_weight of each connection.
    weights: Vec<f64>,
    /// Native replication: writes go to every connection.
    replicate: bool,
}

impl<'a> SessionParts<'a> {
    pub(super) fn new(ctx: &ChildContext<'a>, b: &SessionBackends) -> Self {
        SessionParts {
            // Connection 1 is the session's load-balance node; without one, reads stay
            // on the main node (index 0).
            router: Router::new(usize::from(b.lb.is_some()), SessionSettings::of(&ctx.cfg)),
            client_log: ctx.cfg.log_client_messages.then(Default::default),
            conns: SessionConns {
                info: b
                    .nodes
                    .iter()
                    .map(|&n| ctx.shm.conn(ctx.index, b.slot, n))
                    .collect(),
                weights: b
                    .nodes
                    .iter()
                    .map(|&n| ctx.cfg.backends[n].weight)
                    .collect(),
                replicate: ctx.replicating(),
            },
        }
    }
}

/// The relay's settings for one session, from the child's configuration and caches'
/// storage and the session's own parts.
pub(super) fn relay_config<'c>(
    cfg: &'c Config,
    rules: &'c sql::Rules,
    dml_relations: &'c Relationships,
    store: Option<CacheStore<'c>>,
    s: &'c Session,
    nodes: &'c [usize],
    conns: &'c SessionConns<'_>,
) -> RelayConfig<'c> {
    let snapshot_isolation = cfg.backend_clustering_mode == ClusteringMode::SnapshotIsolation;
    let lower_delay = cfg.prefer_lower_delay_standby && cfg.delay_limit() > 0;
    RelayConfig {
        relcache: store
            .filter(|_| cfg.enable_shared_relcache)
            .map(|s| (s, cfg.relcache_expire)),
        rules,
        disable_load_balance_on_write: cfg.disable_load_balance_on_write,
        dml_relations,
        database: &s.database,
        check_temp_table: cfg.check_temp_table.enabled(),
        // One connection and nothing that orders steps across children: every batch
        // goes to it, and no statement needs classifying.
        fixed: nodes.len() == 1 && !snapshot_isolation && !cfg.memory_cache_enabled,
        cache: store
            .filter(|_| cfg.memory_cache_enabled)
            .map(|store| CacheConfig {
                store,
                user: &s.user,
                expire: cfg.memqcache_expire,
                maxcache: usize::try_from(cfg.memqcache_maxcache).unwrap_or(0),
                auto_invalidation: cfg.memqcache_auto_cache_invalidation,
                safe_tables: &cfg.cache_safe_memqcache_table_list,
                unsafe_tables: &cfg.cache_unsafe_memqcache_table_list,
            }),
        replicate: conns.replicate,
        main_first: cfg.backend_clustering_mode == ClusteringMode::NativeReplication,
        catalog_from_lb: cfg.relcache_query_target == config::RelcacheTarget::LoadBalanceNode,
        insert_lock: cfg.insert_lock,
        node_ids: nodes,
        conn_info: &conns.info,
        statement_weights: if cfg.statement_level_load_balance {
            &conns.weights
        } else {
            &[]
        },
        // bytes, or microseconds with delay_threshold_by_time (as the delays)
        delay_threshold: cfg.delay_limit(),
        lower_delay_weights: if lower_delay { &conns.weights } else { &[] },
    }
}

/// Relays the session until it ends; `initial` holds client bytes that came with its
/// start-up.
pub(super) fn relay_session(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    s: &Session,
    b: &mut SessionBackends,
    initial: &[u8],
) -> Result<(RelayEnd, RelayOutcome), String> {
    let mut parts = SessionParts::new(ctx, b);
    let mut admin = Admin::new(ctx.cfg.clone(), ctx.shm, ctx.index, b.lb.unwrap_or(b.node));
    // (The storage may exist for the shared relation cache alone.)
    admin.qcache = ctx.qcache.filter(|_| ctx.cfg.memory_cache_enabled);
    let mut outcome = RelayOutcome::default();
    let store = ctx.qcache.map(|counters| CacheStore {
        counters,
        remote: ctx.memcached.as_ref(),
    });
    let mut slots: Vec<Option<&mut BackendConn>> =
        b.set.conns.iter_mut().map(Option::as_mut).collect();
    let conns: Option<Vec<&mut BackendConn>> = b
        .nodes
        .iter()
        .map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();
    let Some(conns) = conns else {
        return Err("internal error: the session's connections are missing".into());
    };
    let SessionParts {
        router,
        client_log,
        conns: figures,
    } = &mut parts;
    let cfg = relay_config(
        &ctx.cfg,
        &ctx.rules,
        &ctx.dml_relations,
        store,
        s,
        &b.nodes,
        figures,
    );
    let snapshot_child =
        (ctx.cfg.backend_clustering_mode == ClusteringMode::SnapshotIsolation).then_some(ctx.index);
    let mut relay = Relay {
        cfg: &cfg,
        cache: &mut ctx.classifier,
        catalog: &mut ctx.catalog,
        router,
        shm: ctx.shm,
        client_log,
        snapshot_child,
    };
    let end = relay::relay(
        stream,
        conns,
        initial,
        ctx.waker,
        &mut admin,
        &mut relay,
        &mut ctx.bufs,
        &mut outcome,
    );
    // PGPOOL SET may have changed this process's logging for the session.
    if admin.session_cfg.is_some() {
        crate::logging::configure(&ctx.cfg);
    }
    Ok((end, outcome))
}
