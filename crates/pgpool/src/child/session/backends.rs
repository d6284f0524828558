//! The third step of a session: the backend set it runs on. A pooled set is taken or a
//! new one logged in on the session's node (once more on the node that serves after a
//! failover this child caused), the other live nodes join it (every mode but raw), the
//! load-balance node is drawn, and with statement-level load balancing, lower-delay
//! preference or native replication the other usable nodes join the session too. Then
//! the client gets its start-up reply.

use std::io::Write;
use std::sync::atomic::Ordering;

use protocol::{auth::random_u32, build};

use super::{refuse, session_node, Session, FAILOVER_WAIT};
use crate::backend::MessageReader;
use crate::child::client_auth::{AuthFailure, ClientCredential};
use crate::child::pool::{PoolKey, PooledSet};
use crate::child::session_conns::{acquire, attach_node, join_live_nodes, release};
use crate::child::ChildContext;
use crate::net::Stream;

/// The backend side of a session, from its set-up to its release.
pub(super) struct SessionBackends {
    /// The pool slot the set lives in.
    pub slot: usize,
    pub set: PooledSet,
    /// The node answering the session (primary, else the main node).
    pub node: usize,
    /// The session's load-balance node, when it is another one.
    pub lb: Option<usize>,
    /// The nodes the session talks to: the answering node first, then the load-balance
    /// node, then the further nodes the relay may send to (statement-level load
    /// balancing, native replication). The other nodes of the set stay untouched.
    pub nodes: Vec<usize>,
}

pub(super) fn open(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    reader: &mut MessageReader,
    s: &Session,
    cred: &mut ClientCredential,
) -> Result<SessionBackends, String> {
    let Some(mut node) = session_node(ctx) else {
        return Err(refuse(
            stream,
            AuthFailure {
                code: "08006",
                message: "pgpool is not accepting any new connections: all backend nodes are down"
                    .into(),
                detail: None,
            },
        ));
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
    let mut acquired = acquire(ctx, stream, reader, s, &key, node, cred);
    // The session's node did not answer and this child asked for its failover: once that
    // is decided the session goes on with the node that serves now (a new primary).
    if acquired.is_err() && ctx.await_failover(node, FAILOVER_WAIT) {
        if let Some(next) = session_node(ctx) {
            node = next;
            acquired = acquire(ctx, stream, reader, s, &key, node, cred);
        }
    }
    let (slot, mut set, reused) = match acquired {
        Ok(x) => x,
        Err(f) => return Err(refuse(stream, f)),
    };
    if ctx.joins_every_node() {
        join_live_nodes(ctx, stream, reader, s, cred, &mut set, slot, node);
    }
    ctx.pool().publish(slot, &set, ctx.shm);
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
    ctx.shm
        .child(ctx.index)
        .current_pool
        .store(slot as i32, Ordering::Release);

    // Load balancing: a second backend when the chosen node is not the primary.
    let mut lb = ctx
        .load_balance_node(&s.user, &s.database, s.param("application_name"))
        .filter(|&n| n != node)
        .filter(|&n| attach_node(ctx, stream, reader, s, cred, &mut set, slot, n));
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
                && if replicate {
                    ctx.shm.backend(n).status().is_alive()
                } else {
                    ctx.cfg.backends[n].weight > 0.0 && ctx.usable_for_reads(n)
                };
            if usable && attach_node(ctx, stream, reader, s, cred, &mut set, slot, n) {
                others.push(n);
            }
        }
        if lb.is_none() && !others.is_empty() && ctx.cfg.statement_level_load_balance && !replicate
        {
            lb = Some(others.remove(0));
        }
    }
    Ok(SessionBackends {
        slot,
        set,
        node,
        lb,
        nodes: std::iter::once(node).chain(lb).chain(others).collect(),
    })
}

/// The start-up reply: authentication done, the answering node's parameters, its
/// backend's pid (NOTIFY carries it) with pgpool's own cancel secret, ready. On failure
/// the set is released unused.
pub(super) fn greet(
    ctx: &mut ChildContext<'_>,
    stream: &mut Stream,
    b: SessionBackends,
) -> Result<SessionBackends, String> {
    let Some(conn) = b.set.conns.get(b.node).and_then(Option::as_ref) else {
        return Err("internal error: pooled set lost its connection".into());
    };
    let our_key = loop {
        let k = random_u32();
        if k != 0 {
            break k;
        }
    };
    let mut out = Vec::with_capacity(512);
    build::auth_ok(&mut out);
    for (n, v) in &conn.params {
        build::parameter_status(&mut out, n.as_bytes(), v.as_bytes());
    }
    ctx.shm
        .pool(ctx.index, b.slot)
        .publish_cancel_key(conn.pid, our_key);
    build::backend_key_data(&mut out, conn.pid, our_key);
    build::ready_for_query(&mut out, b'I');
    if let Err(e) = stream.write_all(&out) {
        release(ctx, b.slot, b.set, false, &[]);
        return Err(format!("could not send start-up reply: {e}"));
    }
    Ok(b)
}
