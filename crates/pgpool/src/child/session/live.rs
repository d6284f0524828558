//! A session the relay thread of a child serving several sessions drives
//! ([`LiveSession`]): everything its relay keeps is its own (the open session, its
//! routing state and figures, its local commands, catalog facts, buffers, outcome), and
//! what it borrows from the child for a step is lent per step ([`StepShare`]), so one
//! poll can step many sessions in turn.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Instant;

use config::Config;
use nix::poll::PollFlags;

use super::relay_step::{relay_config, SessionParts};
use super::OpenSession;
use crate::backend::BackendConn;
use crate::child::admin::Admin;
use crate::child::catalog::Catalog;
use crate::child::dml_adaptive::Relationships;
use crate::child::relay::{CacheStore, Relay, RelayBuffers, RelayOutcome, StepIo, SteppedRelay};
use crate::child::relay_shared::{LocalCommands, RelayEnd};
use crate::child::ChildContext;

/// What a session borrows from the thread that steps it, for one step.
pub struct StepShare<'w, 'a> {
    pub rules: &'w sql::Rules,
    pub dml_relations: &'w Relationships,
    pub qcache: Option<&'a shmem::QueryCache>,
    pub memcached: Option<&'w crate::memcached::Memcached>,
    pub classifier: &'w mut sql::ClassifierCache,
    pub shm: &'a shmem::Shmem,
}

/// One session being relayed by a driver that serves several.
pub struct LiveSession<'a> {
    open: OpenSession,
    /// The configuration the session started with (its local commands answer from it).
    cfg: Arc<Config>,
    parts: SessionParts<'a>,
    admin: Admin<'a>,
    catalog: Catalog,
    bufs: RelayBuffers,
    outcome: RelayOutcome,
    relay: SteppedRelay,
    /// client_idle_limit: when the session's idle wait runs out.
    pub deadline: Option<Instant>,
}

impl<'a> LiveSession<'a> {
    /// The relay of an opened session begins (nothing is read or written yet), with
    /// buffers an ended session left in `spare` if there are any.
    pub fn start(
        ctx: &ChildContext<'a>,
        mut open: OpenSession,
        spare: &mut Vec<RelayBuffers>,
    ) -> Self {
        let parts = SessionParts::new(ctx, &open.b);
        let mut admin = Admin::new(
            ctx.cfg.clone(),
            ctx.shm,
            ctx.index,
            open.b.lb.unwrap_or(open.b.node),
        );
        admin.qcache = ctx.qcache.filter(|_| ctx.cfg.memory_cache_enabled);
        let mut bufs = spare.pop().unwrap_or_default();
        let relay = {
            let OpenSession {
                stream, b, initial, ..
            } = &mut open;
            with_session_conns(&mut b.set.conns, &b.nodes, |conns| {
                SteppedRelay::start(stream, conns, initial, &mut bufs)
            })
        };
        LiveSession {
            open,
            cfg: ctx.cfg.clone(),
            parts,
            admin,
            catalog: Catalog::default(),
            bufs,
            outcome: RelayOutcome::default(),
            relay,
            deadline: None,
        }
    }

    /// Runs `f` on the session's relay with what a step works on.
    fn with_step<R>(
        &mut self,
        share: &mut StepShare<'_, 'a>,
        f: impl FnOnce(&mut SteppedRelay, &mut StepIo<'_, '_>, &mut Relay<'_>) -> R,
    ) -> R {
        let OpenSession { stream, s, b, .. } = &mut self.open;
        let SessionParts {
            router,
            client_log,
            conns: figures,
            fixed,
        } = &mut self.parts;
        let store = share.qcache.map(|counters| CacheStore {
            counters,
            remote: share.memcached,
        });
        let cfg = relay_config(
            &self.cfg,
            share.rules,
            share.dml_relations,
            store,
            s,
            &b.nodes,
            figures,
            fixed,
            false,
        );
        let mut relay = Relay {
            cfg: &cfg,
            cache: share.classifier,
            catalog: &mut self.catalog,
            router,
            shm: share.shm,
            client_log,
            snapshot_child: None,
        };
        let (local, bufs, outcome) = (&mut self.admin, &mut self.bufs, &mut self.outcome);
        with_session_conns(&mut b.set.conns, &b.nodes, |backends| {
            let mut step = StepIo {
                client: stream,
                backends,
                local,
                bufs,
                outcome,
            };
            f(&mut self.relay, &mut step, &mut relay)
        })
    }

    /// Takes in what the wait reported (nothing, the first time), then does everything
    /// the session can do without waiting; how it ended, if it did.
    pub fn step(
        &mut self,
        share: &mut StepShare<'_, 'a>,
        events: Option<(PollFlags, &[PollFlags])>,
    ) -> Result<(), RelayEnd> {
        let r = self.with_step(share, |r, step, relay| {
            if let Some((cev, bev)) = events {
                r.absorb(cev, bev, step, relay)?;
            }
            r.advance(step, relay)
        });
        self.deadline = self.relay.idle_limit().map(|d| Instant::now() + d);
        r
    }

    /// Must be stepped without waiting (bytes buffered already).
    pub fn ready(&self) -> bool {
        self.relay.ready()
    }

    /// Hands each of the session's sockets, with what it is waited for, to `f`: the
    /// client (place 0), then each backend in connection order (the order of the
    /// events [`LiveSession::step`] takes).
    pub fn each_socket<E>(
        &self,
        mut f: impl FnMut(usize, BorrowedFd<'_>, PollFlags) -> Result<(), E>,
    ) -> Result<(), E> {
        let (cflags, bflags) = self.relay.interest();
        f(0, self.open.stream.as_fd(), cflags)?;
        let b = &self.open.b;
        let conns = b.nodes.iter().filter_map(|&n| b.set.conns.get(n)?.as_ref());
        for (k, (c, flags)) in conns.zip(bflags).enumerate() {
            f(k + 1, c.stream.as_fd(), *flags)?;
        }
        Ok(())
    }

    /// A failover detached one of the session's nodes.
    pub fn node_detached(&self) -> bool {
        self.admin.node_detached()
    }

    /// The end of the relay: the session as set-up handed it over, how it ended, and
    /// what it learnt for the release; its buffers go to `spare` for the next session
    /// (a session then allocates and clears none to start).
    pub fn finish(
        self,
        end: RelayEnd,
        spare: &mut Vec<RelayBuffers>,
    ) -> (OpenSession, RelayEnd, RelayOutcome) {
        let LiveSession {
            mut open,
            relay,
            parts,
            bufs,
            mut outcome,
            admin,
            ..
        } = self;
        let OpenSession { stream, b, .. } = &mut open;
        let end = with_session_conns(&mut b.set.conns, &b.nodes, |conns| {
            relay.finish(end, stream, conns, &parts.router, &bufs, &mut outcome)
        });
        if admin.session_cfg.is_some() {
            // PGPOOL SET changed this process's logging for the session: back to the
            // child's own.
            crate::logging::configure(&admin.cfg);
        }
        spare.push(bufs);
        (open, end, outcome)
    }
}

/// Runs `f` on the session's connections in its order (answering node first); one or
/// two connections (the usual sessions) without a vector, since a step takes them.
fn with_session_conns<R>(
    conns: &mut [Option<BackendConn>],
    nodes: &[usize],
    f: impl FnOnce(&mut [&mut BackendConn]) -> R,
) -> R {
    match *nodes {
        [a] => {
            if let Some(Some(c)) = conns.get_mut(a) {
                return f(&mut [c]);
            }
        }
        [a, b] if a != b && a.max(b) < conns.len() => {
            let (left, right) = conns.split_at_mut(a.max(b));
            if let (Some(low), Some(high)) = (left[a.min(b)].as_mut(), right[0].as_mut()) {
                return if a < b {
                    f(&mut [low, high])
                } else {
                    f(&mut [high, low])
                };
            }
        }
        _ => {}
    }
    f(&mut session_conns(conns, nodes))
}

/// The session's connections in its order (answering node first).
fn session_conns<'c>(
    conns: &'c mut [Option<BackendConn>],
    nodes: &[usize],
) -> Vec<&'c mut BackendConn> {
    // In connection order without a second vector: each node's place in `nodes`.
    let mut out: Vec<(usize, &mut BackendConn)> = conns
        .iter_mut()
        .enumerate()
        .filter_map(|(node, c)| Some((nodes.iter().position(|&n| n == node)?, c.as_mut()?)))
        .collect();
    out.sort_unstable_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, c)| c).collect()
}
