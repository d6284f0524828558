//! One client session from its first byte to its last: start-up packet (answering
//! SSLRequest/GSSENCRequest with 'N', forwarding CancelRequest), authentication,
//! taking a pooled backend set or logging in a new one (see `session_conns`), the
//! start-up reply with BackendKeyData (the main node backend's pid, pgpool's own secret),
//! and the relay.

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::startup::{parse_startup, startup_body_len, StartupPacket};
use protocol::{auth::random_u32, build};
use shmem::ChildState;

use crate::backend::{BackendConn, MessageReader};
use crate::child::admin::Admin;
use crate::child::client_auth::{self, AuthFailure};
use crate::child::pool::PoolKey;
use crate::child::relay::{
    self, CacheConfig, CacheStore, Relay, RelayConfig, RelayOutcome, Router,
};
use crate::child::relay_shared::RelayEnd;
use crate::child::session_conns::{acquire, attach_node, join_live_nodes, release};
use crate::child::ChildContext;
use crate::net::Stream;

/// Sends a FATAL error to the client (best effort: it may already be gone).
pub fn send_fatal(stream: &mut Stream, code: &str, message: &str) {
    send_fatal_detail(stream, code, message, None);
}

pub fn send_fatal_detail(stream: &mut Stream, code: &str, message: &str, detail: Option<&str>) {
    let mut out = Vec::new();
    build::error_with_detail(&mut out, "FATAL", code, message, detail);
    let _ = stream.write_all(&out);
}

pub(super) fn read_exact_timeout(stream: &mut Stream, buf: &mut [u8]) -> std::io::Result<()> {
    stream.read_exact(buf)
}

/// Reads the start-up packet: an SSL request over TCP with `ssl = on` is answered 'S' and
/// the stream becomes TLS (the handshake runs as the packet is read); other SSL and GSS
/// encryption requests are answered 'N'.
fn read_startup(ctx: &ChildContext<'_>, stream: Stream) -> (Stream, Result<StartupPacket, String>) {
    let mut stream = stream;
    for _ in 0..3 {
        match read_one_startup(ctx, &mut stream) {
            Ok(StartupPacket::SslRequest) if !stream.is_tls() && !stream.is_unix() => {
                let conn = ctx
                    .tls
                    .clone()
                    .and_then(|t| rustls::ServerConnection::new(t).ok());
                let answer: &[u8] = if conn.is_some() { b"S" } else { b"N" };
                if let Err(e) = stream.write_all(answer) {
                    return (stream, Err(format!("could not answer SSL request: {e}")));
                }
                if let Some(conn) = conn {
                    stream = stream.into_tls(conn);
                }
            }
            Ok(StartupPacket::SslRequest | StartupPacket::GssEncRequest) => {
                if let Err(e) = stream.write_all(b"N") {
                    return (
                        stream,
                        Err(format!("could not answer encryption request: {e}")),
                    );
                }
            }
            other => return (stream, other),
        }
    }
    (stream, Err("too many encryption requests".into()))
}

fn read_one_startup(ctx: &ChildContext<'_>, stream: &mut Stream) -> Result<StartupPacket, String> {
    let timeout = match ctx.cfg.authentication_timeout {
        0 => None,
        t => Some(Duration::from_secs(t)),
    };
    stream
        .set_read_timeout(timeout)
        .map_err(|e| format!("could not set timeout: {e}"))?;
    let mut len = [0u8; 4];
    read_exact_timeout(stream, &mut len)
        .map_err(|e| format!("could not read startup packet length: {e}"))?;
    let body_len = startup_body_len(len).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; body_len];
    read_exact_timeout(stream, &mut body).map_err(|e| format!("incomplete startup packet: {e}"))?;
    parse_startup(&body).map_err(|e| e.to_string())
}

/// Entry point for an accepted connection.
pub fn handle_connection(ctx: &mut ChildContext<'_>, stream: Stream) {
    let (host, port) = stream.peer();
    let (mut stream, packet) = read_startup(ctx, stream);
    let packet = match packet {
        Ok(p) => p,
        Err(e) => {
            log::info!("invalid startup packet from host={host} port={port}: {e}");
            send_fatal(&mut stream, "08P01", &e);
            return;
        }
    };
    match packet {
        StartupPacket::Cancel { pid, key } => crate::child::cancel::forward(ctx, pid, key),
        StartupPacket::Startup {
            major,
            minor,
            params,
        } => {
            let started = Instant::now();
            let slot = ctx.shm.child(ctx.index);
            slot.client_host.set(&host);
            slot.client_port.set(&port);
            slot.set_state(ChildState::Active);
            // Pgpool-II's debug lines (its regression tests compare their counts).
            log::debug!(
                "connection_count_up: number of connected children: {}",
                ctx.connected_children()
            );
            slot.client_connection_count.fetch_add(1, Ordering::Relaxed);
            if ctx.cfg.log_connections {
                log::info!("new connection received: host={host} port={port}");
            }
            let user = params
                .iter()
                .find(|(n, _)| n == "user")
                .map(|(_, v)| v.clone());
            let outcome = match user {
                Some(user) if !user.is_empty() => {
                    let database = params
                        .iter()
                        .find(|(n, _)| n == "database")
                        .map(|(_, v)| v.clone())
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| user.clone());
                    let s = Session {
                        user,
                        database,
                        major,
                        minor,
                        params,
                    };
                    let client = if port.is_empty() {
                        host.clone()
                    } else {
                        format!("{host}({port})")
                    };
                    crate::sys::set_title(&format!("pgpool: {} {} {client}", s.user, s.database));
                    crate::sys::set_title_status("idle");
                    let r = run_session(ctx, &mut stream, &s);
                    if ctx.cfg.log_disconnections {
                        let t = started.elapsed();
                        log::info!(
                            "frontend disconnection: session time: {}:{:02}:{:02}.{:03} user={} database={} host={host} port={port}",
                            t.as_secs() / 3600,
                            t.as_secs() / 60 % 60,
                            t.as_secs() % 60,
                            t.subsec_millis(),
                            s.user,
                            s.database
                        );
                    }
                    r
                }
                _ => {
                    send_fatal(
                        &mut stream,
                        "28000",
                        "no PostgreSQL user name specified in startup packet",
                    );
                    Ok(())
                }
            };
            if let Err(e) = outcome {
                log::debug!("session ended: {e}");
            }
            slot.publish_cancel_key(0, 0);
            slot.current_pool.store(-1, Ordering::Release);
            slot.set_state(ChildState::WaitForConnection);
            log::debug!(
                "connection_count_down: number of connected children: {}",
                ctx.connected_children()
            );
            crate::sys::set_title(crate::child::WAITING_TITLE);
        }
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {}
    }
}

pub(super) struct Session {
    pub(super) user: String,
    pub(super) database: String,
    pub(super) major: u16,
    pub(super) minor: u16,
    pub(super) params: Vec<(String, String)>,
}

impl Session {
    pub(super) fn options(&self) -> &str {
        self.params
            .iter()
            .find(|(n, _)| n == "options")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Run-time parameters the client asked for, applied with SET on the backend.
    pub(super) fn gucs(&self) -> impl Iterator<Item = &(String, String)> {
        self.params.iter().filter(|(n, _)| {
            !matches!(n.as_str(), "user" | "database" | "options" | "replication")
                && !n.starts_with("_pq_.")
        })
    }
}

/// Double-quotes each dot-separated part of a parameter name.
pub(super) fn quote_guc_name(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

pub(super) fn refuse(stream: &mut Stream, f: AuthFailure) -> Result<(), String> {
    // An empty code means the backend's own error was relayed already.
    if !f.code.is_empty() {
        send_fatal_detail(stream, f.code, &f.message, f.detail.as_deref());
    }
    Err(f.message)
}

/// How long a session start waits for a failover it caused.
pub(super) const FAILOVER_WAIT: Duration = Duration::from_secs(10);

/// Picks the node sessions are sent to (foundation: the primary, else the main node).
pub(super) fn session_node(ctx: &ChildContext<'_>) -> Option<usize> {
    ctx.target_node()
}

fn run_session(ctx: &mut ChildContext<'_>, stream: &mut Stream, s: &Session) -> Result<(), String> {
    if s.params
        .iter()
        .any(|(n, v)| n == "replication" && !v.is_empty() && v != "false" && v != "0")
    {
        return refuse(
            stream,
            AuthFailure {
                code: "08P01",
                message: "replication connections are not supported by pgpool".into(),
                detail: None,
            },
        );
    }
    if ctx.too_many_clients() {
        return refuse(
            stream,
            AuthFailure {
                code: "53300",
                message: "Sorry, too many clients already".into(),
                detail: None,
            },
        );
    }
    // A client asking for a newer 3.x minor version or for protocol options is told
    // what pgpool speaks (3.0, no options), as PostgreSQL does.
    let unknown_options: Vec<&str> = s
        .params
        .iter()
        .filter(|(n, _)| n.starts_with("_pq_."))
        .map(|(n, _)| n.as_str())
        .collect();
    if s.minor > 0 || !unknown_options.is_empty() {
        let mut out = Vec::new();
        build::negotiate_protocol_version(&mut out, (3, 0), &unknown_options);
        if let Err(e) = stream.write_all(&out) {
            return Err(format!("could not send NegotiateProtocolVersion: {e}"));
        }
    }
    let mut reader = MessageReader::default();
    let mut cred = match client_auth::authenticate(ctx, stream, &mut reader, &s.user, &s.database) {
        Ok(c) => c,
        Err(f) => {
            log::info!(
                "authentication failed for user \"{}\" database \"{}\": {}",
                s.user,
                s.database,
                f.message
            );
            return refuse(stream, f);
        }
    };
    let Some(node) = session_node(ctx) else {
        return refuse(
            stream,
            AuthFailure {
                code: "08006",
                message: "pgpool is not accepting any new connections: all backend nodes are down"
                    .into(),
                detail: None,
            },
        );
    };
    let key = PoolKey {
        user: s.user.clone(),
        database: s.database.clone(),
        major: s.major,
        options: s.options().to_string(),
        guc_names: {
            let mut names: Vec<&str> = s.gucs().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.join(",")
        },
    };
    let mut node = node;
    let mut acquired = acquire(ctx, stream, &mut reader, s, &key, node, &mut cred);
    // The session's node did not answer and this child asked for its failover: once that
    // is decided the session goes on with the node that serves now (a new primary).
    if acquired.is_err() && ctx.await_failover(node, FAILOVER_WAIT) {
        if let Some(next) = session_node(ctx) {
            node = next;
            acquired = acquire(ctx, stream, &mut reader, s, &key, node, &mut cred);
        }
    }
    let (slot, mut set, reused) = match acquired {
        Ok(x) => x,
        Err(f) => return refuse(stream, f),
    };
    if ctx.joins_every_node() {
        join_live_nodes(ctx, stream, &mut reader, s, &mut cred, &mut set, slot, node);
    }
    ctx.pool.publish(slot, &set, ctx.shm);
    let info = ctx.shm.pool(ctx.index, slot);
    info.minor.store(s.minor as u32, Ordering::Relaxed);
    info.in_use.store(1, Ordering::Relaxed);
    info.client_connect_time
        .store(shmem::now_secs(), Ordering::Relaxed);
    if reused {
        info.pool_counter.fetch_add(1, Ordering::Relaxed);
    } else {
        info.pool_counter.store(1, Ordering::Relaxed);
        info.create_time.store(shmem::now_secs(), Ordering::Relaxed);
    }
    let our_key = loop {
        let k = random_u32();
        if k != 0 {
            break k;
        }
    };
    let child = ctx.shm.child(ctx.index);
    child.current_pool.store(slot as i32, Ordering::Release);

    // Load balancing: a second backend when the chosen node is not the primary.
    let app_name = s
        .params
        .iter()
        .find(|(n, _)| n == "application_name")
        .map_or("", |(_, v)| v.as_str());
    let mut lb = ctx
        .load_balance_node(&s.user, &s.database, app_name)
        .filter(|&n| n != node)
        .filter(|&n| attach_node(ctx, stream, &mut reader, s, &mut cred, &mut set, slot, n));
    // statement_level_load_balance: every usable node with a weight joins the session,
    // and the relay picks one per statement (prefer_lower_delay_standby: when the
    // load-balance node falls behind). Native replication: every live node joins, for
    // the writes.
    let replicate = ctx.replicating();
    let mut others: Vec<usize> = Vec::new();
    let lower_delay = ctx.cfg.prefer_lower_delay_standby && ctx.cfg.delay_limit() > 0;
    if ((ctx.cfg.statement_level_load_balance || lower_delay) && ctx.load_balancing()) || replicate
    {
        for n in 0..ctx.cfg.backends.len() {
            let usable = n != node
                && Some(n) != lb
                && ctx.shm.backend(n).status().is_alive()
                && (replicate || (ctx.cfg.backends[n].weight > 0.0 && !ctx.delayed(n)));
            if usable && attach_node(ctx, stream, &mut reader, s, &mut cred, &mut set, slot, n) {
                others.push(n);
            }
        }
        if lb.is_none() && !others.is_empty() && ctx.cfg.statement_level_load_balance && !replicate
        {
            lb = Some(others.remove(0));
        }
    }
    let Some(conn) = set.conns.get(node).and_then(Option::as_ref) else {
        return Err("internal error: pooled set lost its connection".into());
    };
    // The start-up reply: authentication done, parameters, our key, ready.
    let mut out = Vec::with_capacity(512);
    build::auth_ok(&mut out);
    for (n, v) in &conn.params {
        build::parameter_status(&mut out, n.as_bytes(), v.as_bytes());
    }
    // The main node backend's pid (NOTIFY carries it) with pgpool's own secret.
    child.publish_cancel_key(conn.pid, our_key);
    build::backend_key_data(&mut out, conn.pid, our_key);
    build::ready_for_query(&mut out, b'I');
    if let Err(e) = stream.write_all(&out) {
        release(ctx, slot, set, false, &[]);
        return Err(format!("could not send start-up reply: {e}"));
    }
    let initial = reader.pending().to_vec();
    let mut admin = Admin::new(&ctx.cfg, ctx.shm, ctx.index, lb.unwrap_or(node));
    // (The storage may exist for the shared relation cache alone.)
    admin.qcache = ctx.qcache.filter(|_| ctx.cfg.memory_cache_enabled);
    // The nodes this session talks to (the others of the set stay untouched).
    let wanted: Vec<usize> = std::iter::once(node)
        .chain(lb)
        .chain(others.iter().copied())
        .collect();
    // Connection 1 is the session's load-balance node; without one, reads stay on the
    // main node (index 0).
    let mut router = Router::with_lb(usize::from(lb.is_some()));
    let mut outcome = RelayOutcome::default();
    let snapshot_isolation =
        ctx.cfg.backend_clustering_mode == config::ClusteringMode::SnapshotIsolation;
    let store = ctx.qcache.map(|counters| CacheStore {
        counters,
        remote: ctx.memcached.as_ref(),
    });
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
            replicate,
            main_first: ctx.cfg.backend_clustering_mode
                == config::ClusteringMode::NativeReplication,
            insert_lock: ctx.cfg.insert_lock,
            client_idle_limit: ctx.cfg.client_idle_limit,
            node_ids: wanted.clone(),
            conn_info: wanted
                .iter()
                .map(|&n| ctx.shm.conn(ctx.index, slot, n))
                .collect(),
            statement_weights: if ctx.cfg.statement_level_load_balance {
                wanted.iter().map(|&n| ctx.cfg.backends[n].weight).collect()
            } else {
                Vec::new()
            },
            // bytes, or microseconds with delay_threshold_by_time (as the delays)
            delay_threshold: ctx.cfg.delay_limit(),
            lower_delay_weights: if lower_delay {
                wanted.iter().map(|&n| ctx.cfg.backends[n].weight).collect()
            } else {
                Vec::new()
            },
        },
        cache: &mut ctx.classifier,
        catalog: &mut ctx.catalog,
        router: &mut router,
        shm: ctx.shm,
        client_log: ctx.cfg.log_client_messages.then(Default::default),
        snapshot_child: snapshot_isolation.then_some(ctx.index),
    };
    let mut slots: Vec<Option<&mut BackendConn>> =
        set.conns.iter_mut().map(Option::as_mut).collect();
    let conns: Option<Vec<&mut BackendConn>> = wanted
        .iter()
        .map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();
    let Some(conns) = conns else {
        return Err("internal error: the session's connections are missing".into());
    };
    let end = relay::relay(
        stream,
        conns,
        &initial,
        &ctx.waker,
        &mut admin,
        &mut relay,
        &mut ctx.bufs,
        &mut outcome,
    );
    // A session that ends mid-step leaves no mark behind.
    ctx.shm.snapshot_step_done(ctx.index);
    info.client_disconnect_time
        .store(shmem::now_secs(), Ordering::Relaxed);
    info.in_use.store(0, Ordering::Relaxed);
    let failed = outcome.failed_node.unwrap_or(node);
    let reusable = match &end {
        RelayEnd::ClientClosed => outcome.reusable,
        RelayEnd::ClientError(e) => {
            log::debug!("client connection failed: {e}");
            outcome.reusable
        }
        RelayEnd::ClientProtocol(e) => {
            log::info!("closing client connection: invalid message from frontend: {e}");
            send_fatal(stream, "08P01", &format!("invalid frontend message: {e}"));
            false
        }
        RelayEnd::IdleTimeout => {
            log::info!(
                "closing client connection: idle for {} seconds (client_idle_limit)",
                ctx.cfg.client_idle_limit
            );
            send_fatal(
                stream,
                "57P01",
                "terminating connection due to client_idle_limit",
            );
            outcome.reusable
        }
        RelayEnd::NodeDetached => {
            log::info!("node {node} was detached: closing the client session that used it");
            send_fatal(
                stream,
                "57P01",
                &format!(
                    "terminating connection because backend node {node} was detached (failover)"
                ),
            );
            false
        }
        RelayEnd::BackendFailed(e) => {
            log::warn!("backend node {failed} failed during session: {e}");
            // A backend that said FATAL first (e.g. pg_terminate_backend) ended this
            // session only; the node itself is fine.
            if ctx.cfg.failover_on_backend_error && !outcome.backend_fatal {
                ctx.report_node_failure(failed, false);
            }
            if !outcome.backend_fatal {
                send_fatal(
                    stream,
                    "08006",
                    &format!("unable to forward data to backend node {failed}: {e}"),
                );
            }
            false
        }
        RelayEnd::Shutdown => {
            send_fatal(
                stream,
                "57P01",
                "terminating connection due to administrator command",
            );
            false
        }
    };
    // A pg_terminate_backend() sent through pgpool ended this session, not the node.
    if outcome.backend_shutdown && ctx.terminated_on_request(slot, failed) {
        log::info!("backend node {failed} ended this session on a pg_terminate_backend request");
        outcome.backend_shutdown = false;
    }
    if outcome.backend_shutdown && ctx.cfg.failover_on_backend_shutdown {
        log::warn!("backend node {failed} reported an administrator shutdown (57P01)");
        ctx.report_node_failure(failed, false);
    }
    release(ctx, slot, set, reusable, &wanted);
    Ok(())
}
