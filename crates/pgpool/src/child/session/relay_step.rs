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
    pub(super) fixed: FixedSettings,
}

/// The relay's settings that stay as they are for the whole session, read from
/// pgpool.conf once at its start: a step then reads none of the configuration (its
/// fields lie far apart, and a child serving many sessions would touch them per step).
pub(super) struct FixedSettings {
    disable_load_balance_on_write: config::LoadBalanceOnWrite,
    check_temp_table: bool,
    one_connection: bool,
    cache_on: bool,
    relcache: Option<i64>,
    memqcache_expire: i64,
    maxcache: usize,
    auto_invalidation: bool,
    main_first: bool,
    catalog_from_lb: bool,
    insert_lock: bool,
    statement_level: bool,
    delay_threshold: u64,
    lower_delay: bool,
}

impl FixedSettings {
    fn of(cfg: &Config, b: &SessionBackends) -> Self {
        let snapshot_isolation = cfg.backend_clustering_mode == ClusteringMode::SnapshotIsolation;
        FixedSettings {
            disable_load_balance_on_write: cfg.disable_load_balance_on_write,
            check_temp_table: cfg.check_temp_table.enabled(),
            // One connection and nothing that orders steps across children: every batch
            // goes to it, and no statement needs classifying.
            one_connection: b.nodes.len() == 1 && !snapshot_isolation && !cfg.memory_cache_enabled,
            cache_on: cfg.memory_cache_enabled,
            relcache: cfg.enable_shared_relcache.then_some(cfg.relcache_expire),
            memqcache_expire: cfg.memqcache_expire,
            maxcache: usize::try_from(cfg.memqcache_maxcache).unwrap_or(0),
            auto_invalidation: cfg.memqcache_auto_cache_invalidation,
            main_first: cfg.backend_clustering_mode == ClusteringMode::NativeReplication,
            catalog_from_lb: cfg.relcache_query_target == config::RelcacheTarget::LoadBalanceNode,
            insert_lock: cfg.insert_lock,
            statement_level: cfg.statement_level_load_balance,
            // bytes, or microseconds with delay_threshold_by_time (as the delays)
            delay_threshold: cfg.delay_limit(),
            lower_delay: cfg.prefer_lower_delay_standby && cfg.delay_limit() > 0,
        }
    }
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
            fixed: FixedSettings::of(&ctx.cfg, b),
        }
    }
}

/// The relay's settings for one session, from the child's configuration and caches'
/// storage and the session's own parts (`cfg` only lends the table lists' places).
#[allow(clippy::too_many_arguments)]
pub(super) fn relay_config<'c>(
    cfg: &'c Config,
    rules: &'c sql::Rules,
    dml_relations: &'c Relationships,
    store: Option<CacheStore<'c>>,
    s: &'c Session,
    nodes: &'c [usize],
    conns: &'c SessionConns<'_>,
    fixed: &FixedSettings,
    titles: bool,
) -> RelayConfig<'c> {
    RelayConfig {
        relcache: store.zip(fixed.relcache),
        rules,
        disable_load_balance_on_write: fixed.disable_load_balance_on_write,
        dml_relations,
        database: &s.database,
        check_temp_table: fixed.check_temp_table,
        titles,
        fixed: fixed.one_connection,
        cache: store.filter(|_| fixed.cache_on).map(|store| CacheConfig {
            store,
            user: &s.user,
            expire: fixed.memqcache_expire,
            maxcache: fixed.maxcache,
            auto_invalidation: fixed.auto_invalidation,
            safe_tables: &cfg.cache_safe_memqcache_table_list,
            unsafe_tables: &cfg.cache_unsafe_memqcache_table_list,
        }),
        replicate: conns.replicate,
        main_first: fixed.main_first,
        catalog_from_lb: fixed.catalog_from_lb,
        insert_lock: fixed.insert_lock,
        node_ids: nodes,
        conn_info: &conns.info,
        statement_weights: if fixed.statement_level {
            &conns.weights
        } else {
            &[]
        },
        delay_threshold: fixed.delay_threshold,
        lower_delay_weights: if fixed.lower_delay {
            &conns.weights
        } else {
            &[]
        },
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
        fixed,
    } = &mut parts;
    let cfg = relay_config(
        &ctx.cfg,
        &ctx.rules,
        &ctx.dml_relations,
        store,
        s,
        &b.nodes,
        figures,
        fixed,
        ctx.serves_alone,
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
