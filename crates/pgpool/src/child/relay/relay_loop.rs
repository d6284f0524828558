//! The relay's event loop, as a session's state between two waits ([`LoopState`]) and
//! the steps that move it: dispatch complete client batches, answer local commands in
//! order, pass backend answers to the client in batch order, write, say what to wait
//! for ([`Wait`]), and take in what the wait reported. [`relay_loop`] drives one
//! session with its own poll; the steps never block, so one poll could drive several.
use super::*;

/// A session's place in the relay between two waits.
pub(super) struct LoopState {
    /// Client bytes read and not yet dispatched: `bufs.client[cfrom..cto]`.
    pub(super) cfrom: usize,
    pub(super) cto: usize,
    /// The batches whose answers the client sees, in order: the answering node of each.
    pub(super) order: VecDeque<usize>,
    /// How much of `bufs.to_client` was written.
    to_client_from: usize,
    /// A local command waiting for its turn, and how it is answered.
    pub(super) pending_local: Option<(Vec<u8>, LocalAnswer)>,
    /// The client sent Terminate or closed its socket.
    pub(super) terminated: bool,
    /// Per backend: what it is waited for, what the wait reported, and whether its
    /// stream held bytes already (no wait needed).
    bflags: Vec<PollFlags>,
    bev: Vec<PollFlags>,
    bready: Vec<bool>,
    /// The client is waited for input, and its stream held bytes already.
    client_readable: bool,
    client_ready: bool,
}

/// What a session waits for: the client's events (the backends' are in
/// [`LoopState`]), how long, and whether bytes are buffered already (then the wait
/// only looks).
pub(super) struct Wait {
    pub cflags: PollFlags,
    pub timeout: nix::poll::PollTimeout,
    pub ready: bool,
}

/// What a step of a session's relay works on besides its routing ([`Relay`]): the
/// client, the session's connections, the local commands, the buffers, the outcome.
pub struct StepIo<'a, 'c> {
    pub client: &'a mut Stream,
    pub backends: &'a mut [&'c mut BackendConn],
    pub local: &'a mut dyn LocalCommands,
    pub bufs: &'a mut RelayBuffers,
    pub outcome: &'a mut RelayOutcome,
}

impl<'c> StepIo<'_, 'c> {
    /// Each part on its own, for a step that works on several at once: the client, the
    /// connections, the local commands, the connections' buffers, the client's read
    /// buffer, the bytes for the client, the outcome.
    #[allow(clippy::type_complexity)]
    pub(super) fn split(
        &mut self,
    ) -> (
        &mut Stream,
        &mut [&'c mut BackendConn],
        &mut dyn LocalCommands,
        &mut Vec<NodeIo>,
        &mut Vec<u8>,
        &mut Vec<u8>,
        &mut RelayOutcome,
    ) {
        let RelayBuffers {
            nodes,
            client,
            to_client,
        } = &mut *self.bufs;
        (
            &mut *self.client,
            &mut *self.backends,
            &mut *self.local,
            nodes,
            client,
            to_client,
            &mut *self.outcome,
        )
    }
}

/// Relays one session until it ends, waiting in its own poll.
#[allow(clippy::too_many_arguments)]
pub(super) fn relay_loop(
    s: &mut LoopState,
    step: &mut StepIo<'_, '_>,
    waker: &Waker,
    relay: &mut Relay<'_>,
) -> RelayEnd {
    loop {
        let wait = match s.advance(step, relay) {
            Ok(w) => w,
            Err(end) => return end,
        };
        let cev = match poll_session(
            step.client,
            wait.cflags,
            step.backends,
            &s.bflags,
            waker,
            wait.timeout,
            &mut s.bev,
        ) {
            Ok(None) if !wait.ready => return RelayEnd::IdleTimeout,
            Ok(None) => PollFlags::empty(),
            Ok(Some(ev)) => ev,
            Err(e) => return RelayEnd::BackendFailed(format!("poll failed: {e}")),
        };
        if let Err(end) = s.absorb(cev, step, relay) {
            return end;
        }
    }
}

impl LoopState {
    /// A session's relay at its start: its sockets non-blocking, the buffers ready;
    /// `initial` holds client bytes read with the start-up.
    pub(super) fn start(
        client: &mut Stream,
        backends: &mut [&mut BackendConn],
        initial: &[u8],
        bufs: &mut RelayBuffers,
    ) -> Self {
        let _ = client.set_nonblocking(true);
        for c in backends.iter_mut() {
            let _ = c.stream.set_nonblocking(true);
        }
        bufs.start_session(backends.len());
        let cto = initial.len().min(bufs.client.len());
        bufs.client[..cto].copy_from_slice(&initial[..cto]);
        let nodes = bufs.nodes.len();
        LoopState {
            cfrom: 0,
            cto,
            order: VecDeque::new(),
            to_client_from: 0,
            pending_local: None,
            terminated: false,
            bflags: vec![PollFlags::empty(); nodes],
            bev: vec![PollFlags::empty(); nodes],
            bready: vec![false; nodes],
            client_readable: false,
            client_ready: false,
        }
    }

    /// The end of a session's relay: its sockets blocking again, and whether its
    /// connections can be pooled again (only when they owe nothing and are between
    /// messages, whatever ended the session).
    pub(super) fn finish(
        self,
        end: RelayEnd,
        client: &mut Stream,
        backends: &mut [&mut BackendConn],
        router: &Router,
        bufs: &RelayBuffers,
        outcome: &mut RelayOutcome,
    ) -> RelayEnd {
        outcome.reusable = match end {
            RelayEnd::ClientClosed | RelayEnd::ClientError(_) | RelayEnd::IdleTimeout => {
                bufs.idle(router) && !outcome.backend_fatal
            }
            _ => false,
        };
        let _ = client.set_nonblocking(false);
        for c in backends.iter_mut() {
            let _ = c.stream.set_nonblocking(false);
        }
        end
    }

    /// Everything the session can do without waiting; then what it waits for, or how
    /// it ended.
    pub(super) fn advance(
        &mut self,
        step: &mut StepIo<'_, '_>,
        relay: &mut Relay<'_>,
    ) -> Result<Wait, RelayEnd> {
        loop {
            relay.end_snapshot_step(&step.bufs.nodes, self.order.is_empty());
            self.dispatch_batches(step, relay)?;
            let (client, backends, local, io, cbuf, to_client, state) = step.split();
            if self.cfrom == self.cto {
                self.cfrom = 0;
                self.cto = 0;
            } else if self.cfrom > 0 {
                // Keep the partial message at the front so the buffer has room to read.
                cbuf.copy_within(self.cfrom..self.cto, 0);
                self.cto -= self.cfrom;
                self.cfrom = 0;
            }
            // 2. Answer a local command once everything before it was answered.
            let mut answered_locally = false;
            if self.pending_local.is_some()
                && self.order.is_empty()
                && self.to_client_from >= to_client.len()
            {
                if let Some((q, answer)) = self.pending_local.take() {
                    answered_locally = true;
                    to_client.clear();
                    self.to_client_from = 0;
                    match answer {
                        LocalAnswer::Extended => {
                            local_ext::answer(&q, local, to_client, io[PRIMARY].tx)
                        }
                        LocalAnswer::Aborted => aborted_answer(&q, to_client),
                        LocalAnswer::Cached => {
                            to_client.extend_from_slice(&q);
                            build::ready_for_query(to_client, io[PRIMARY].tx);
                        }
                        LocalAnswer::Simple => {
                            if !relay.cache_delete_command(&q, to_client) {
                                local.answer(&q, to_client);
                            }
                            build::ready_for_query(to_client, io[PRIMARY].tx);
                        }
                    }
                    if let Some(s) = local.take_changed_settings() {
                        relay.router.apply_settings(s, relay.cfg.rules);
                        if s.log_client_messages != relay.client_log.is_some() {
                            *relay.client_log = s.log_client_messages.then(Default::default);
                        }
                    }
                }
            }
            // 3. Backend answers → client, in batch order. A batch answered by one node can
            // let another node's answers, already read and waiting their turn, go: drain
            // again until nothing moves (no socket event would come for bytes already read).
            loop {
                let pending = self.order.len();
                for k in 0..relay.cfg.node_ids.len() {
                    if let Err(e) =
                        drain_node(k, io, &mut self.order, to_client, backends, state, relay)
                    {
                        let id = relay.cfg.node_ids[k];
                        state.failed_node = Some(id);
                        return Err(RelayEnd::BackendFailed(format!("node {id}: {e}")));
                    }
                }
                if self.order.len() == pending {
                    break;
                }
            }
            let replicated = advance_replication(relay.router, io, &mut self.order);
            // Before anything is written: busy from before a request goes out, idle before
            // the client can see the last answer. Busy means running what the client waits
            // for: the node answering the first batch in order (a Sync or a replayed Parse
            // owed by another node must not draw a cancel meant for it), every node owing
            // answers under native replication (they all run the statement).
            for (k, (n, info)) in io.iter().zip(relay.cfg.conn_info).enumerate() {
                let running = if relay.cfg.replicate {
                    !n.queue.is_empty()
                } else {
                    self.order.front() == Some(&k)
                };
                info.set_busy(running);
            }
            // 4. Writes.
            if io[PRIMARY].held_from.is_some() {
                let reading = others_reading(io);
                io[PRIMARY].release_writes(reading);
            }
            for (k, n) in io.iter_mut().enumerate() {
                if n.has_sendable() {
                    if let Err(e) = n.write_sendable(&mut backends[k].stream) {
                        state.failed_node = Some(relay.cfg.node_ids[k]);
                        return Err(RelayEnd::BackendFailed(format!(
                            "unable to forward message to backend node {}: {e}",
                            relay.cfg.node_ids[k]
                        )));
                    }
                }
            }
            if self.to_client_from < to_client.len() {
                if let Err(e) = write_some(client, to_client, &mut self.to_client_from) {
                    state.reusable = false;
                    return Err(RelayEnd::ClientError(e));
                }
            }
            let idle = self.order.is_empty()
                && io
                    .iter()
                    .all(|n| n.queue.is_empty() && !n.has_output() && n.remaining == 0)
                && relay.router.client_remaining == 0
                && relay.router.open.is_none()
                && relay.router.replicating.is_none();
            if self.terminated {
                // Nobody reads answers any more.
                to_client.clear();
                self.to_client_from = 0;
            }
            // Native replication: the other nodes finish what they were sent first (closing a
            // socket with unread answers resets it, and the node would drop the writes still
            // queued behind them).
            if self.terminated
                && !io.iter().any(NodeIo::has_output)
                && (idle || !relay.cfg.replicate)
            {
                state.reusable = idle && !state.backend_fatal;
                return Err(RelayEnd::ClientClosed);
            }
            let arrived = std::mem::take(&mut relay.router.catalog_arrived)
                | std::mem::take(&mut relay.router.now_arrived)
                | replicated
                | answered_locally;
            if arrived && self.cfrom < self.cto {
                // The batches held for the catalog's (or timestamp's) answer, or behind a local
                // answer, can be routed now: they were read already, no socket event will come.
                continue;
            }
            if self.pending_local.is_some()
                && self.order.is_empty()
                && self.to_client_from >= to_client.len()
            {
                // The last answer before a local command went out in this pass: its turn
                // came, and no socket event will say so.
                continue;
            }
            if relay.router.snapshot_step_held && self.cfrom < self.cto {
                // Held batches go out as soon as the marked step is answered everywhere.
                relay.end_snapshot_step(io, self.order.is_empty());
                if !relay.router.snapshot_step_held {
                    continue;
                }
            }
            return self.wait_for(step, relay, idle);
        }
    }

    /// What the session waits for next.
    fn wait_for(
        &mut self,
        step: &mut StepIo<'_, '_>,
        relay: &mut Relay<'_>,
        idle: bool,
    ) -> Result<Wait, RelayEnd> {
        let (client, backends, _, io, cbuf, to_client, state) = step.split();
        self.client_readable =
            !self.terminated && self.pending_local.is_none() && self.cto < cbuf.len();
        let mut cflags = PollFlags::empty();
        if self.client_readable {
            cflags |= PollFlags::POLLIN;
        }
        if self.to_client_from < to_client.len() {
            cflags |= PollFlags::POLLOUT;
        }
        let want_read = |k: usize, io: &[NodeIo], order: &VecDeque<usize>| -> bool {
            match io[k].queue.front() {
                Some(e) if !e.forward => true,
                Some(_) => order.front() == Some(&k),
                // Unsolicited messages (NOTIFY, notices) while idle.
                None => true,
            }
        };
        for (k, f) in self.bflags.iter_mut().enumerate() {
            *f = PollFlags::empty();
            if self.to_client_from >= to_client.len() && want_read(k, io, &self.order) {
                *f |= PollFlags::POLLIN;
            }
            if io[k].has_sendable() {
                *f |= PollFlags::POLLOUT;
            }
        }
        self.client_ready = match prepare_poll(client, &mut cflags) {
            Ok(r) => r,
            Err(e) => return Err(RelayEnd::ClientError(e)),
        };
        let mut ready = self.client_ready;
        for (k, b) in backends.iter_mut().enumerate() {
            match prepare_poll(&mut b.stream, &mut self.bflags[k]) {
                Ok(r) => {
                    self.bready[k] = r;
                    ready |= r;
                }
                Err(e) => {
                    state.failed_node = Some(relay.cfg.node_ids[k]);
                    return Err(RelayEnd::BackendFailed(format!(
                        "unable to write to backend node {}: {e}",
                        relay.cfg.node_ids[k]
                    )));
                }
            }
        }
        let timeout = if ready {
            nix::poll::PollTimeout::ZERO
        } else {
            idle_timeout(relay.router.settings.client_idle_limit, idle)
        };
        Ok(Wait {
            cflags,
            timeout,
            ready,
        })
    }

    /// What each backend is waited for (after `advance`).
    pub(super) fn backend_interest(&self) -> &[PollFlags] {
        &self.bflags
    }

    /// What a wait the session did not do itself reported for its backends.
    pub(super) fn set_backend_events(&mut self, events: &[PollFlags]) {
        for (e, r) in self.bev.iter_mut().zip(events) {
            *e = *r;
        }
    }

    /// Takes in what the wait reported (`cev`: the client's events): client and
    /// backend bytes read; a signal that ends the session ends it.
    pub(super) fn absorb(
        &mut self,
        cev: PollFlags,
        step: &mut StepIo<'_, '_>,
        relay: &mut Relay<'_>,
    ) -> Result<(), RelayEnd> {
        let (client, backends, local, io, cbuf, _, state) = step.split();
        let cev = if self.client_ready {
            cev | PollFlags::POLLIN
        } else {
            cev
        };
        for (e, r) in self.bev.iter_mut().zip(&self.bready) {
            if *r {
                *e |= PollFlags::POLLIN;
            }
        }
        if let Some(end) = signalled_end(local) {
            return Err(end);
        }
        if self.client_readable && cev.intersects(READABLE) {
            match read_some(client, &mut cbuf[self.cto..]) {
                Ok(Some(0)) => {
                    self.terminated = true;
                }
                Ok(Some(n)) => self.cto += n,
                Ok(None) => {}
                Err(e) => return Err(RelayEnd::ClientError(e)),
            }
        }
        for k in 0..io.len() {
            if self.bflags[k].contains(PollFlags::POLLIN) && self.bev[k].intersects(READABLE) {
                let n = &mut io[k];
                if n.in_from > 0 {
                    n.inbuf.copy_within(n.in_from..n.in_to, 0);
                    n.in_to -= n.in_from;
                    n.in_from = 0;
                }
                if n.in_to == n.inbuf.len() {
                    n.inbuf.resize(n.inbuf.len() * 2, 0);
                }
                match read_some(&mut backends[k].stream, &mut n.inbuf[n.in_to..]) {
                    Ok(Some(0)) => {
                        state.failed_node = Some(relay.cfg.node_ids[k]);
                        return Err(RelayEnd::BackendFailed(format!(
                            "backend node {} closed the connection",
                            relay.cfg.node_ids[k]
                        )));
                    }
                    Ok(Some(r)) => n.in_to += r,
                    Ok(None) => {}
                    Err(e) => {
                        state.failed_node = Some(relay.cfg.node_ids[k]);
                        return Err(RelayEnd::BackendFailed(format!(
                            "unable to read data from backend node {}: {e}",
                            relay.cfg.node_ids[k]
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Waits for the client, the session's backends (`bflags`, events into `bev`) or the
/// waker; the client's events, or None on timeout. Two backends (the usual session) poll
/// from an array, more from a vector.
pub(super) fn poll_session(
    client: &Stream,
    cflags: PollFlags,
    backends: &[&mut BackendConn],
    bflags: &[PollFlags],
    waker: &Waker,
    timeout: nix::poll::PollTimeout,
    bev: &mut [PollFlags],
) -> nix::Result<Option<PollFlags>> {
    fn finish(fds: &[PollFd<'_>], waker: &Waker, bev: &mut [PollFlags]) -> PollFlags {
        let ev = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
        if fds.last().is_some_and(|f| !ev(f).is_empty()) {
            waker.drain();
        }
        for (k, e) in bev.iter_mut().enumerate() {
            *e = ev(&fds[k + 1]);
        }
        ev(&fds[0])
    }
    let n = if let [p, s] = backends {
        let mut fds = [
            PollFd::new(client.as_fd(), cflags),
            PollFd::new(p.stream.as_fd(), bflags[0]),
            PollFd::new(s.stream.as_fd(), bflags[1]),
            PollFd::new(waker.fd(), PollFlags::POLLIN),
        ];
        let n = match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => 1,
            r => r?,
        };
        (n, finish(&fds, waker, bev))
    } else {
        let mut fds = Vec::with_capacity(backends.len() + 2);
        fds.push(PollFd::new(client.as_fd(), cflags));
        for (b, f) in backends.iter().zip(bflags) {
            fds.push(PollFd::new(b.stream.as_fd(), *f));
        }
        fds.push(PollFd::new(waker.fd(), PollFlags::POLLIN));
        let n = match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => 1,
            r => r?,
        };
        (n, finish(&fds, waker, bev))
    };
    Ok((n.0 != 0).then_some(n.1))
}
